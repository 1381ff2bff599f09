/*
 * OpenSSL over memory, for both ends of our TLS (the node's listeners,
 * node/net/tls.c, and the load client, bench/tls.c): a BIO of our own
 * method over a struct bw_membio. Reads come straight from in[0..in_len),
 * the ciphertext the caller just received (no copy into a memory BIO);
 * writes append to out, grown on demand up to out_max. A stock memory BIO
 * would do, but it keeps its largest allocation for the connection's life;
 * this one holds nothing the owner did not leave in out.
 */
#ifndef BW_NET_MEMBIO_H
#define BW_NET_MEMBIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

struct bw_membio {
	const uint8_t *in; /* what reads serve; the owner sets it around SSL calls */
	size_t in_len;
	uint8_t *out; /* ciphertext written, waiting to be taken (the owner frees it) */
	size_t out_len, out_cap;
	size_t out_max; /* a write past it fails and sets out_full */
	bool out_oom;   /* a write found no memory */
	bool out_full;  /* a write would have passed out_max */
};

/* A BIO over m (for SSL_set_bio, which takes it), or NULL when out of memory. */
BIO *bw_membio_new(struct bw_membio *m);

/*
 * OpenSSL's reason for the failure just seen, from the first error queued
 * (the deepest: "No such file or directory", "no start line"), into
 * buf[0..cap); the queue is emptied.
 */
void bw_ossl_reason(char *buf, size_t cap);

#endif
