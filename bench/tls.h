/*
 * TLS for bulwark-bench's clients, with OpenSSL 3 kept off the socket as
 * the node does it (node/net/tls.h, server side): the ring receives and
 * sends, and OpenSSL only ever sees memory through a BIO of our own. Input
 * is read straight from the ring's receive buffer; output (handshake
 * records, and the ciphertext of the plaintext an MQTT client appended to
 * its bw_bench_out) accumulates in a buffer that is swapped with the
 * stream's in-flight buffer when a send can start, so a connection still
 * has one send in flight and everything written meanwhile leaves in one
 * batch. No call blocks: a handshake moves forward with each receive.
 *
 * A bw_bench_tls_ctx is the client SSL_CTX (trust anchors, client
 * certificate, version) shared by every client thread. A bw_bench_tls
 * belongs to one connection slot of one thread: it holds the SSL of the
 * slot's current TCP connection and, with resumption on, the session
 * (ticket) the last one received, which the next connection of that slot
 * offers.
 */
#ifndef BW_BENCH_TLS_H
#define BW_BENCH_TLS_H

#include "bench/stream.h"
#include "node/io/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_bench_tls_ctx;
struct bw_bench_tls;

/* Client TLS settings; strings may be NULL when unset. */
struct bw_bench_tls_config {
	const char *cafile;     /* PEM trust anchors; NULL: the system's */
	const char *cert;       /* PEM client certificate (chain), with key */
	const char *key;        /* PEM private key of cert */
	const char *servername; /* SNI and the name verified; NULL: host */
	const char *host;       /* --host: verified as an IP address or a name */
	bool insecure;          /* no verification of the server at all */
	bool resume;            /* keep each slot's session for its next connection */
	bool lean;              /* release record buffers when idle (idle, connect) */
	uint8_t version;        /* 0: 1.2 or 1.3; 12 or 13: only that one */
};

/* What bw_bench_tls_input() returns once the broker sent close_notify. */
#define BW_BENCH_TLS_CLOSED 1

/* Longest reason bw_bench_tls_input() writes. */
#define BW_BENCH_TLS_WHY_MAX 200

/*
 * Builds the client context. Returns 0 with *out set, or -1 with a message
 * in err naming the file or setting at fault and OpenSSL's reason.
 */
int bw_bench_tls_ctx_new(struct bw_bench_tls_ctx **out, const struct bw_bench_tls_config *cfg,
                         char *err, size_t cap);

/* Frees the context (NULL: nothing) once no connection uses it; NULLs *c. */
void bw_bench_tls_ctx_free(struct bw_bench_tls_ctx **c);

/* The TLS library in use, e.g. "OpenSSL 3.0.19 27 Jan 2026". */
const char *bw_bench_tls_library(void);

/*
 * Starts a handshake on a new TCP connection of the slot *tp (allocated on
 * first use; the caller frees it with bw_bench_tls_free()): a new SSL,
 * offering the slot's last session when resumption is on, with the
 * ClientHello queued as output. Returns 0, -ENOMEM or -EPROTO (why set).
 */
int bw_bench_tls_start(struct bw_bench_tls **tp, struct bw_bench_tls_ctx *ctx, char *why);

/*
 * Feeds ciphertext in[0..len), runs the handshake as far as it goes and
 * calls sink(arg, p, n) with each piece of plaintext. Records the
 * handshake must answer are queued as output. Returns 0 when all was taken;
 * BW_BENCH_TLS_CLOSED when the broker sent close_notify; -EPROTO when the
 * handshake failed or a record was bad (why[0..BW_BENCH_TLS_WHY_MAX) says
 * why); -ENOMEM; or a negative value sink returned, which stops the feed.
 */
int bw_bench_tls_input(struct bw_bench_tls *t, const uint8_t *in, size_t len,
                       int (*sink)(void *arg, const uint8_t *p, size_t n), void *arg, char *why);

/* Whether the current connection's handshake has finished. */
bool bw_bench_tls_ready(const struct bw_bench_tls *t);

/* Whether that handshake resumed a session. */
bool bw_bench_tls_resumed(const struct bw_bench_tls *t);

/* The protocol version and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384". */
void bw_bench_tls_describe(const struct bw_bench_tls *t, char *buf, size_t cap);

/*
 * The TLS form of bw_bench_out_flush(): when no send is in flight, encrypts
 * what is pending in o (once the handshake is over) and sends it with
 * whatever handshake records are queued, in one buffer. Returns 1 when a
 * send was started, 0 when there was nothing to do, -ENOMEM, -EPROTO or
 * -errno from the ring. The completion goes to bw_bench_out_sent() as for
 * plain TCP.
 */
int bw_bench_tls_flush(struct bw_bench_tls *t, struct bw_bench_out *o, struct bw_ring *r,
                       struct bw_op *op, int fd);

/*
 * The TCP connection is closed: frees its SSL and buffers, keeping the
 * session for the next one when the connection ended cleanly (clean: it
 * did not fail). NULL: nothing.
 */
void bw_bench_tls_end(struct bw_bench_tls *t, bool clean);

/* Frees everything, the kept session too (NULL: nothing); NULLs *tp. */
void bw_bench_tls_free(struct bw_bench_tls **tp);

#endif
