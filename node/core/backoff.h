/*
 * Per-source-address backoff after failed logins, shared by the node's
 * workers: after `after` failures in a row from one address, that address
 * waits 1 s before it may try again, then 2 s, 4 s, ... up to max_ms; a
 * success forgets it, and so does a quiet spell twice the longest wait
 * (at least a minute). A connection that tries while it waits is refused
 * (5.0 0x9F Connection rate exceeded) before any password is checked.
 *
 * The table is fixed-size (slots addresses, least recently failed ones
 * evicted first), so an attacker with many addresses costs no memory; it
 * is striped over a few mutexes, since every CONNECT looks it up.
 */
#ifndef BW_CORE_BACKOFF_H
#define BW_CORE_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

struct bw_backoff;

/* IPv4 addresses are v4-mapped IPv6 ones (::ffff:a.b.c.d). */
struct bw_addr {
	uint8_t b[16];
};

/* The address as text (a.b.c.d for a v4-mapped one) into buf. */
void bw_addr_text(const struct bw_addr *a, char *buf, size_t cap);

/* Fills a from a struct sockaddr_in or _in6; -EAFNOSUPPORT for others. */
int bw_addr_from_sockaddr(struct bw_addr *a, const void *sa);

/* NULL when out of memory (or after is 0: no backoff). */
struct bw_backoff *bw_backoff_new(uint32_t after, uint32_t max_ms, uint32_t slots);
void bw_backoff_free(struct bw_backoff **bo);

/* Milliseconds addr must still wait before it may try; 0: it may. */
uint64_t bw_backoff_wait(struct bw_backoff *bo, const struct bw_addr *addr, uint64_t now_ms);

/* Counts a failure from addr; returns the wait it now has (0: none). */
uint64_t bw_backoff_fail(struct bw_backoff *bo, const struct bw_addr *addr, uint64_t now_ms);

/* A success from addr: its failures are forgotten. */
void bw_backoff_ok(struct bw_backoff *bo, const struct bw_addr *addr);

#endif
