/*
 * Redis Sentinel, as the node uses it: the redis_sentinel setting
 * (`MASTER_NAME HOST:PORT[,HOST:PORT...]`) parsed and its names resolved,
 * and a blocking client that asks the sentinels in turn where the master
 * is (SENTINEL get-master-addr-by-name). Blocking on purpose, with short
 * timeouts: only the main thread (at start) and the state thread (sync.h)
 * ask, never a worker; what they learn reaches the workers through the
 * holder of master.h.
 */
#ifndef BW_STATE_SENTINEL_H
#define BW_STATE_SENTINEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/state/redis.h"

#define BW_SENTINEL_MAX        16     /* sentinels one setting may name */
#define BW_SENTINEL_NAME_MAX   128    /* the master's name, its NUL included */
#define BW_SENTINEL_PORT       26379u /* a sentinel's port when none is given */
#define BW_SENTINEL_TIMEOUT_MS 500u   /* connect, and each reply, a sentinel */

/* Plain data: what redis_sentinel (and redis_sentinel_password) say. */
struct bw_sentinel_config {
	char name[BW_SENTINEL_NAME_MAX]; /* the master's name the sentinels monitor */
	uint32_t n;                      /* 1 to BW_SENTINEL_MAX */
	struct {
		char host[BW_REDIS_HOST_MAX]; /* numeric once bw_sentinel_resolve() ran */
		uint16_t port;
	} addr[BW_SENTINEL_MAX];
	char password[BW_REDIS_SECRET_MAX]; /* AUTH on each sentinel; "": none */
	uint32_t timeout_ms;                /* 0: BW_SENTINEL_TIMEOUT_MS */
};

/*
 * Parses `MASTER_NAME HOST[:PORT][,HOST[:PORT]...]` (a port defaults to
 * 26379; HOST may be a name, an IPv4 or a [IPv6] address; blanks around
 * the commas are allowed) into *cfg, zeroed first. Returns 0, or -EINVAL
 * with why in err ("more than 16 sentinels"), which quotes no password.
 */
int bw_sentinel_parse(struct bw_sentinel_config *cfg, const char *text, char *err, size_t errlen);

/*
 * Makes every sentinel's host numeric with getaddrinfo(3), which may
 * block: at start, on the main thread. 0, or -EINVAL with why in err.
 */
int bw_sentinel_resolve(struct bw_sentinel_config *cfg, char *err, size_t errlen);

struct bw_sentinel;

/*
 * A client for cfg (copied), of one thread at a time; it connects when
 * asked. stop, when not NULL, ends an ask between two sentinels once it
 * reads true. 0 and *out, -EINVAL (no sentinel), -ENOMEM.
 */
int bw_sentinel_new(struct bw_sentinel **out, const struct bw_sentinel_config *cfg,
                    const atomic_bool *stop);

/*
 * Asks the sentinels in turn, starting with the one that answered last
 * (its connection is kept), until one names the master: 0 with its
 * address, made numeric (getaddrinfo(3) for a name: this blocks), in host
 * (cap bytes) and *port. Or -ENOENT: those that answered know no master
 * of that name; -EHOSTUNREACH: none answered (or the node stops). Why is
 * in err either way. Each sentinel costs at most about twice timeout_ms.
 */
int bw_sentinel_ask(struct bw_sentinel *s, char *host, size_t cap, uint16_t *port, char *err,
                    size_t errlen);

/* Closes its connection, frees *sp and NULLs it. */
void bw_sentinel_free(struct bw_sentinel **sp);

#endif
