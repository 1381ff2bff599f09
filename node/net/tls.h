/*
 * TLS for MQTT listeners (mqtts), with OpenSSL 3 kept off the socket: the
 * worker's ring receives and sends, and OpenSSL only ever sees memory. A
 * bw_tls_ctx is one listener's material (certificate chain, key, client CA
 * bundle, CRL, ciphers, minimum version) as an SSL_CTX that SIGHUP can
 * replace; a bw_tls_conn is one client's SSL object with its in-memory
 * transport. Ciphertext goes in with bw_tls_conn_input(), which hands the
 * plaintext to a sink; plaintext goes out with bw_tls_conn_write(), and the
 * ciphertext it (and the handshake) produced is taken out as one buffer
 * with bw_tls_conn_take_output(), sent, and given back.
 *
 * Threads: a bw_tls_ctx is shared by every worker (creating connections
 * and reloading are safe from any thread). A bw_tls_conn is used by one
 * thread at a time: its worker's. Handing it to another worker is allowed
 * as a clean hand-off (the first never touches it again once it posted it,
 * and the post publishes everything written before it), which is how a
 * connection moves to its client id's worker.
 */
#ifndef BW_NET_TLS_H
#define BW_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_tls_ctx;
struct bw_tls_conn;

enum bw_tls_client_auth {
	BW_TLS_AUTH_NONE,     /* no client certificate is asked for */
	BW_TLS_AUTH_OPTIONAL, /* asked for; one that is sent must verify */
	BW_TLS_AUTH_REQUIRED, /* a verified client certificate is required */
};

/* A listener's TLS settings. Strings may be NULL or "" when unset. */
struct bw_tls_config {
	const char *name;           /* for messages: the listener, e.g. "0.0.0.0:8883" */
	const char *cert_file;      /* PEM chain: the server certificate first (required) */
	const char *key_file;       /* PEM private key of that certificate (required) */
	const char *client_ca_file; /* PEM bundle client certificates must chain to */
	const char *crl_file;       /* PEM CRLs, checked for every certificate of a chain */
	const char *ciphers;        /* TLS 1.2 cipher list; unset: OpenSSL's */
	const char *ciphersuites;   /* TLS 1.3 suites; unset: OpenSSL's */
	const char *groups;         /* key exchange groups; unset: OpenSSL's */
	enum bw_tls_client_auth client_auth;
	bool min_tls13; /* false: TLS 1.2 and 1.3; true: 1.3 only */
};

/* What bw_tls_conn_input() returns once the peer sent close_notify. */
#define BW_TLS_CLOSED 1

/* Longest reason bw_tls_conn_input() writes (a message for a debug log). */
#define BW_TLS_WHY_MAX 256

/*
 * Builds a listener's context from cfg (copied, so bw_tls_ctx_reload() can
 * read the same files again). Returns 0 with *out set, or -1 with a
 * message in err naming the file and OpenSSL's reason ("tls_cert
 * /etc/bulwark/server.pem: no start line"), or the setting at fault.
 */
int bw_tls_ctx_new(struct bw_tls_ctx **out, const struct bw_tls_config *cfg, char *err, size_t cap);

/*
 * Reads the context's files again into a new SSL_CTX and makes it the one
 * new connections use; established connections keep the one they started
 * with (each SSL holds a reference). On any error the current material
 * stays and err says why (as bw_tls_ctx_new). Returns 0 or -1. Any thread.
 */
int bw_tls_ctx_reload(struct bw_tls_ctx *t, char *err, size_t cap);

/*
 * Replaces the tenants' client CAs: pems[0..n) are PEM bundles, one a
 * tenant (NULL or "": none), each one or more CA certificates (any other
 * PEM block is skipped). With tls_client_auth optional or required they
 * are trust anchors for client certificates besides tls_client_ca; their
 * names are not sent in CertificateRequest. Like a reload, this builds a
 * new SSL_CTX (reading the files again) for new connections, and the set
 * is kept for later reloads; the old ticket keys go with the old context.
 * Returns 0, or -1 with err saying why and nothing changed: "tenant CA
 * bundle 3: ..." with OpenSSL's reason for a bundle without a certificate
 * or that does not parse, or a file's error as bw_tls_ctx_reload(). Any
 * thread; serialised with reloads. The pems are not kept.
 */
int bw_tls_ctx_set_tenant_cas(struct bw_tls_ctx *t, const char *const *pems, size_t n, char *err,
                              size_t cap);

/* Frees the context (NULL: nothing); live connections keep what they use. */
void bw_tls_ctx_free(struct bw_tls_ctx **t);

/* The TLS library in use, e.g. "OpenSSL 3.0.19 27 Jan 2026". */
const char *bw_tls_library(void);

/* The listener name the context was made for. */
const char *bw_tls_ctx_name(const struct bw_tls_ctx *t);

/*
 * A server-side connection of context t, before its handshake; NULL when
 * out of memory. Any thread; the connection then belongs to the caller.
 */
struct bw_tls_conn *bw_tls_conn_new(struct bw_tls_ctx *t);

/* Frees it without a close_notify (NULL: nothing); *c is NULLed. */
void bw_tls_conn_free(struct bw_tls_conn **c);

/*
 * Feeds ciphertext in[0..len) (len 0: only what OpenSSL holds already),
 * runs the handshake as far as it goes, and calls sink(arg, p, n) with
 * every piece of plaintext (p is valid only during the call). Records the
 * handshake or a read must answer (alerts, session tickets) are queued as
 * output. Returns 0 when all was taken and more is needed; BW_TLS_CLOSED
 * when the peer sent close_notify; -EPROTO when the handshake failed or a
 * record was bad (why[0..BW_TLS_WHY_MAX) holds OpenSSL's reason and any
 * alert is queued as output); -ENOMEM; or a negative value sink returned,
 * which stops the feed (the rest of the input is lost).
 */
int bw_tls_conn_input(struct bw_tls_conn *c, const uint8_t *in, size_t len,
                      int (*sink)(void *arg, const uint8_t *p, size_t n), void *arg, char *why);

/*
 * Whether the handshake finished (application data can flow, unless the
 * connection failed since: a failure while this is true is not one of the
 * handshake).
 */
bool bw_tls_conn_ready(const struct bw_tls_conn *c);

/*
 * Encrypts p[0..n) into the output (records of up to 16 KiB). Only once
 * the connection is ready. Returns 0, -EPROTO (the connection failed or is
 * shut down) or -ENOMEM.
 */
int bw_tls_conn_write(struct bw_tls_conn *c, const void *p, size_t n);

/* Queues close_notify once (after the handshake only; else nothing). */
void bw_tls_conn_shutdown(struct bw_tls_conn *c);

/* Ciphertext waiting to be taken. */
size_t bw_tls_conn_output_bytes(const struct bw_tls_conn *c);

/*
 * Takes the waiting ciphertext as one buffer the caller owns until it gives
 * it back with bw_tls_conn_give_back() (or frees it with free()). Returns
 * false, leaving *buf and *len alone, when nothing waits.
 */
bool bw_tls_conn_take_output(struct bw_tls_conn *c, uint8_t **buf, size_t *len);

/*
 * Returns a buffer from bw_tls_conn_take_output() once it was sent. With
 * more (the caller is about to write again) it is kept for the next output;
 * otherwise it is freed, so an idle connection holds no output buffer.
 */
void bw_tls_conn_give_back(struct bw_tls_conn *c, uint8_t *buf, bool more);

/* ---- what the handshake established (for logs and identity) ------------- */

/* The SNI host name the client sent, or NULL. */
const char *bw_tls_conn_sni(const struct bw_tls_conn *c);

/* The ALPN protocol agreed ("mqtt"), or NULL when none was. */
const char *bw_tls_conn_alpn(const struct bw_tls_conn *c);

/* The protocol version and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384". */
void bw_tls_conn_describe(const struct bw_tls_conn *c, char *buf, size_t cap);

/* Whether the client presented a certificate (it verified, or no handshake). */
bool bw_tls_conn_has_peer_cert(const struct bw_tls_conn *c);

/*
 * The client certificate's subject common name into buf[0..cap) (NUL
 * terminated). Returns its length, or -ENOENT (no certificate or no CN),
 * -ENOSPC (too long), -EINVAL (it holds a NUL byte).
 */
int bw_tls_conn_peer_cn(const struct bw_tls_conn *c, char *buf, size_t cap);

/*
 * The i-th subject alternative name of the client certificate as text
 * ("DNS:device-1.example", "URI:spiffe://...", "email:...", "IP:10.0.0.1";
 * other kinds are skipped). Returns the length written, -ENOENT past the
 * last one, -ENOSPC when it does not fit in buf[0..cap).
 */
int bw_tls_conn_peer_san(const struct bw_tls_conn *c, unsigned i, char *buf, size_t cap);

/* The SHA-256 of the client certificate (DER). 0, or -ENOENT without one. */
int bw_tls_conn_peer_sha256(const struct bw_tls_conn *c, uint8_t out[32]);

/* The most fingerprints bw_tls_conn_chain_fps() reports. */
#define BW_TLS_CHAIN_MAX 16

/*
 * After a handshake that verified a client certificate: the SHA-256 (of
 * the DER) of each certificate of the verified chain above the leaf, the
 * leaf's issuer first and the trust anchor last, into fps[0..cap). When
 * the leaf is itself the trust anchor, its own. Returns how many were
 * written (at most cap and BW_TLS_CHAIN_MAX; a chain longer than that is
 * cut short of its anchor); 0 without a verified client certificate. A
 * resumed session reports the chain of the handshake it resumes (carried
 * in the session ticket, which only the listener can read).
 */
int bw_tls_conn_chain_fps(const struct bw_tls_conn *c, uint8_t (*fps)[32], size_t cap);

#endif
