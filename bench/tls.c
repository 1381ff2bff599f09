/*
 * Client TLS over memory (see tls.h). The SSL of a connection talks to the
 * node's memory BIO (node/net/membio.h): reads come straight from the
 * ring's receive buffer passed to bw_bench_tls_input(), writes append to
 * the slot's output buffer, which bw_bench_tls_flush() swaps into the
 * stream as the buffer to send. The node's TLS module is server-only and
 * keeps reload state the bench has no use for, so the rest is the client's
 * own.
 */
#include "bench/tls.h"

#include "node/net/membio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Ciphertext a connection may have waiting: a whole 64 MiB stream buffer and its records. */
#define OUT_MAX (80u << 20)
/* The largest plaintext of one record. */
#define RECORD_MAX 16384u

struct bw_bench_tls_ctx {
	SSL_CTX *ssl_ctx;
	char *sni; /* the server name sent; NULL for an IP address */
	bool resume;
};

struct bw_bench_tls {
	SSL *ssl;            /* of the current TCP connection; NULL between them */
	SSL_SESSION *sess;   /* resumption: the last session the broker gave this slot */
	struct bw_membio io; /* in: during bw_bench_tls_input(); out: ciphertext to send */
	bool established;    /* the handshake finished (whatever happened since) */
};

/* "what file: OpenSSL's reason" into err; frees x; returns -1. */
static int fail_file(SSL_CTX *x, char *err, size_t cap, const char *what, const char *file)
{
	char why[BW_BENCH_TLS_WHY_MAX];

	bw_ossl_reason(why, sizeof(why));
	snprintf(err, cap, "%s %s: %s", what, file, why);
	SSL_CTX_free(x);
	return -1;
}

/* ---- the context --------------------------------------------------------- */

/* Resumption: keeps the newest session of each slot (TLS 1.3 may send several). */
static int on_new_session(SSL *s, SSL_SESSION *sess)
{
	struct bw_bench_tls *t = SSL_get_app_data(s);

	if (!t)
		return 0;
	SSL_SESSION_free(t->sess);
	t->sess = sess;
	return 1; /* the reference is ours now */
}

/* An encrypted key is refused instead of prompting on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static bool is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int bw_bench_tls_ctx_new(struct bw_bench_tls_ctx **out, const struct bw_bench_tls_config *cfg,
                         char *err, size_t cap)
{
	const char *name = cfg->servername ? cfg->servername : cfg->host;
	int v = cfg->version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	*out = NULL;
	ERR_clear_error();
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());
	if (!x) {
		char why[BW_BENCH_TLS_WHY_MAX];
		bw_ossl_reason(why, sizeof(why));
		snprintf(err, cap, "cannot create a TLS context: %s", why);
		return -1;
	}
	if (!SSL_CTX_set_min_proto_version(x, v) ||
	    (cfg->version && !SSL_CTX_set_max_proto_version(x, v)))
		return fail_file(x, err, cap, "--tls-version", cfg->version == 13 ? "1.3" : "1.2");
	SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Thousands of idle connections give their record buffers back. */
	if (cfg->lean)
		SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(x, no_password);
	if (cfg->insecure) {
		SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
	} else {
		if (cfg->cafile && !SSL_CTX_load_verify_locations(x, cfg->cafile, NULL))
			return fail_file(x, err, cap, "--cafile", cfg->cafile);
		if (!cfg->cafile && !SSL_CTX_set_default_verify_paths(x))
			return fail_file(x, err, cap, "the system's trust store", "");
		/* The certificate must name the server: as an IP address or a host name. */
		X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(x);
		if (is_ip(name) ? !X509_VERIFY_PARAM_set1_ip_asc(vp, name)
		                : !X509_VERIFY_PARAM_set1_host(vp, name, 0))
			return fail_file(x, err, cap, "--servername", name);
		SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
	}
	if (cfg->cert) {
		if (!SSL_CTX_use_certificate_chain_file(x, cfg->cert))
			return fail_file(x, err, cap, "--cert", cfg->cert);
		if (!SSL_CTX_use_PrivateKey_file(x, cfg->key, SSL_FILETYPE_PEM))
			return fail_file(x, err, cap, "--key", cfg->key);
		if (!SSL_CTX_check_private_key(x))
			return fail_file(x, err, cap, "--key", cfg->key);
	}
	/*
	 * Sessions live with their slot, not in OpenSSL's cache: each client
	 * offers the ticket its own last connection got, as a device
	 * reconnecting would.
	 */
	if (cfg->resume) {
		SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT |
		                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(x, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
	}
	struct bw_bench_tls_ctx *c = calloc(1, sizeof(*c));
	if (!c || (!is_ip(name) && !(c->sni = strdup(name)))) {
		free(c);
		SSL_CTX_free(x);
		snprintf(err, cap, "out of memory");
		return -1;
	}
	c->ssl_ctx = x;
	c->resume = cfg->resume;
	*out = c;
	return 0;
}

void bw_bench_tls_ctx_free(struct bw_bench_tls_ctx **cp)
{
	struct bw_bench_tls_ctx *c = *cp;

	if (!c)
		return;
	SSL_CTX_free(c->ssl_ctx);
	free(c->sni);
	free(c);
	*cp = NULL;
}

const char *bw_bench_tls_library(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

/* ---- a connection -------------------------------------------------------- */

/*
 * Notes the end of the handshake as it happens: after a later fatal error
 * SSL_is_init_finished() is false again, yet the failure was not one of
 * the handshake.
 */
static void on_info(const SSL *s, int where, int ret)
{
	struct bw_bench_tls *t = SSL_get_app_data(s);

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) && t)
		t->established = true;
}

/* Why the connection failed, into why[0..BW_BENCH_TLS_WHY_MAX). */
static void conn_reason(const struct bw_bench_tls *t, char *why)
{
	long v = SSL_get_verify_result(t->ssl);

	if (t->io.out_full) {
		ERR_clear_error();
		snprintf(why, BW_BENCH_TLS_WHY_MAX, "output backlog over %u bytes", OUT_MAX);
	} else if (v != X509_V_OK) {
		ERR_clear_error();
		snprintf(why, BW_BENCH_TLS_WHY_MAX, "server certificate: %s",
		         X509_verify_cert_error_string(v));
	} else {
		bw_ossl_reason(why, BW_BENCH_TLS_WHY_MAX);
	}
}

int bw_bench_tls_start(struct bw_bench_tls **tp, struct bw_bench_tls_ctx *ctx, char *why)
{
	struct bw_bench_tls *t = *tp;

	if (!t && !(t = *tp = calloc(1, sizeof(*t))))
		return -ENOMEM;
	bw_bench_tls_end(t, false);
	BIO *b = bw_membio_new(&t->io);
	t->ssl = b ? SSL_new(ctx->ssl_ctx) : NULL;
	if (!t->ssl) {
		BIO_free(b);
		ERR_clear_error();
		return -ENOMEM;
	}
	t->io.out_max = OUT_MAX;
	SSL_set_bio(t->ssl, b, b); /* the SSL owns b (one reference for both ends) */
	SSL_set_app_data(t->ssl, t);
	SSL_set_info_callback(t->ssl, on_info);
	if ((ctx->sni && !SSL_set_tlsext_host_name(t->ssl, ctx->sni)) ||
	    (ctx->resume && t->sess && !SSL_set_session(t->ssl, t->sess))) {
		bw_ossl_reason(why, BW_BENCH_TLS_WHY_MAX);
		return -EPROTO;
	}
	SSL_set_connect_state(t->ssl);
	ERR_clear_error();
	/* Queues the ClientHello; it then waits for the server (WANT_READ). */
	int n = SSL_do_handshake(t->ssl);
	if (n <= 0 && SSL_get_error(t->ssl, n) != SSL_ERROR_WANT_READ) {
		bool oom = t->io.out_oom;
		conn_reason(t, why);
		return oom ? -ENOMEM : -EPROTO;
	}
	return 0;
}

int bw_bench_tls_input(struct bw_bench_tls *t, const uint8_t *in, size_t len,
                       int (*sink)(void *arg, const uint8_t *p, size_t n), void *arg, char *why)
{
	uint8_t plain[RECORD_MAX];
	int rc = -EPROTO;

	t->io.in = in;
	t->io.in_len = len;
	snprintf(why, BW_BENCH_TLS_WHY_MAX, "too many records in one read");
	ERR_clear_error();
	/*
	 * Each read that returns data used up a record of at least 6 bytes
	 * of the input (or the one record OpenSSL held before), and a record
	 * fits in plain[], so len + 2 rounds cover every record.
	 */
	for (size_t round = 0; round <= len + 2; round++) {
		int n = SSL_read(t->ssl, plain, (int)sizeof(plain));
		if (n > 0) {
			rc = sink(arg, plain, (size_t)n);
			if (rc < 0)
				break;
			rc = -EPROTO; /* if the rounds run out */
			continue;
		}
		int e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ) {
			rc = 0;
		} else if (e == SSL_ERROR_ZERO_RETURN) {
			rc = BW_BENCH_TLS_CLOSED;
		} else if (t->io.out_oom) {
			rc = -ENOMEM;
		} else {
			conn_reason(t, why);
			rc = -EPROTO;
		}
		break;
	}
	t->io.in = NULL;
	t->io.in_len = 0;
	ERR_clear_error();
	return rc;
}

bool bw_bench_tls_ready(const struct bw_bench_tls *t)
{
	return t->established;
}

bool bw_bench_tls_resumed(const struct bw_bench_tls *t)
{
	return t->ssl && SSL_session_reused(t->ssl);
}

void bw_bench_tls_describe(const struct bw_bench_tls *t, char *buf, size_t cap)
{
	const char *cipher = t->ssl ? SSL_get_cipher_name(t->ssl) : NULL;

	snprintf(buf, cap, "%s %s", t->ssl ? SSL_get_version(t->ssl) : "-",
	         cipher ? cipher : "(none)");
}

int bw_bench_tls_flush(struct bw_bench_tls *t, struct bw_bench_out *o, struct bw_ring *r,
                       struct bw_op *op, int fd)
{
	uint32_t msgs = 0;

	if (o->busy)
		return 0;
	if (t->established && o->pend_len) {
		ERR_clear_error();
		/* Without partial writes a successful SSL_write takes everything. */
		int n = SSL_write(t->ssl, o->pend, (int)o->pend_len);
		if (n <= 0) {
			bool oom = t->io.out_oom;
			ERR_clear_error();
			return oom ? -ENOMEM : -EPROTO;
		}
		msgs = o->pend_msgs;
		o->pend_len = o->pend_msgs = 0;
	}
	/* The stream's buffers count in 32 bits: out_max keeps these within. */
	uint32_t len = (uint32_t)t->io.out_len, cap = (uint32_t)t->io.out_cap;
	t->io.out_len = 0;
	int rc = bw_bench_out_flush_buf(o, &t->io.out, len, &cap, msgs, r, op, fd);
	t->io.out_cap = cap;
	return rc;
}

void bw_bench_tls_end(struct bw_bench_tls *t, bool clean)
{
	if (!t)
		return;
	/*
	 * OpenSSL marks the session of an SSL freed before a shutdown as not
	 * resumable. A connection that ended with DISCONNECT and the
	 * broker's close ended well: since TLS 1.1 a missing close_notify
	 * need not forbid resumption (RFC 5246, 7.2.1), and the bench does
	 * not spend a record on it.
	 */
	if (t->ssl && clean)
		SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(t->ssl);
	t->ssl = NULL;
	free(t->io.out);
	t->io.out = NULL;
	t->io.out_len = t->io.out_cap = 0;
	t->io.out_oom = t->io.out_full = t->established = false;
}

void bw_bench_tls_free(struct bw_bench_tls **tp)
{
	struct bw_bench_tls *t = *tp;

	if (!t)
		return;
	bw_bench_tls_end(t, false);
	SSL_SESSION_free(t->sess);
	free(t);
	*tp = NULL;
}
