/*
 * TLS over memory (see tls.h). Each connection's SSL talks to one BIO of
 * our own (node/net/membio.h): reads come straight from the receive buffer
 * the worker passes to bw_tls_conn_input(), and writes append to the
 * connection's output buffer, which the worker takes out whole, sends and
 * gives back; nothing is held while the connection is idle, and the output
 * is bounded (OUT_MAX).
 *
 * The SSL_CTX of a listener sits behind a mutex only for the moment a
 * connection takes a reference to it (SSL_new) or a reload swaps it, so a
 * worker can never start from a context another thread is freeing. Tenant
 * CAs are parsed once into X509 objects that every rebuilt SSL_CTX shares
 * (their extensions cached up front, so verifying only reads them). A
 * verified client's chain outlives its handshake in the session ticket's
 * application data, so a resumed connection still knows its trust anchor.
 */
#include "node/net/tls.h"

#include "node/net/membio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Ciphertext a connection may have waiting before it is failed. */
#define OUT_MAX (1u << 20)
/* The largest plaintext of one record. */
#define RECORD_MAX 16384u

/* STACK_OF(X509) under a name clang-format takes for a type. */
typedef STACK_OF(X509) cert_list;

struct bw_tls_ctx {
	pthread_mutex_t mu;
	SSL_CTX *ssl_ctx; /* under mu; each SSL holds its own reference */
	/*
	 * Held from building a context to swapping it in, by reloads and
	 * tenant CA changes, which would otherwise lose one another's work:
	 * 1. a reload builds from tenant set S;
	 * 2. bw_tls_ctx_set_tenant_cas() builds from S', swaps, records S';
	 * 3. the reload swaps its context in: S is in force, S' recorded.
	 * Workers never take it.
	 */
	pthread_mutex_t build_mu;
	cert_list *tenant_cas; /* under build_mu; NULL: none */
	char *name, *cert, *key, *ca, *crl, *ciphers, *suites, *groups;
	enum bw_tls_client_auth auth;
	bool tls13;
};

struct bw_tls_conn {
	SSL *ssl;
	struct bw_membio io; /* in: during bw_tls_conn_input(); out: ciphertext to take */
	size_t lent_cap;     /* capacity of the buffer the caller took */
	char *sni;
	bool established; /* the handshake finished (whatever happened since) */
	bool shut;        /* close_notify queued */
};

/* ---- errors -------------------------------------------------------------- */

/* "what file: OpenSSL's reason" into err; returns NULL for the caller. */
static SSL_CTX *fail_file(SSL_CTX *x, char *err, size_t cap, const char *what, const char *file)
{
	char why[BW_TLS_WHY_MAX];

	bw_ossl_reason(why, sizeof(why));
	snprintf(err, cap, "%s %s: %s", what, file, why);
	SSL_CTX_free(x);
	return NULL;
}

/* ---- the context --------------------------------------------------------- */

/* ALPN: "mqtt" when the client offers it; otherwise go on without ALPN. */
static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)s;
	(void)arg;
	/* in is a list of length-prefixed names; each step moves past one. */
	for (unsigned i = 0; i < inlen;) {
		unsigned n = in[i];
		if (n == 0 || i + 1 + n > inlen)
			break;
		if (n == 4 && !memcmp(in + i + 1, "mqtt", 4)) {
			*out = in + i + 1;
			*outlen = 4;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * SNI: acknowledged and kept with the connection (tenant resolution will
 * read it). When it cannot be kept the handshake fails rather than go on
 * as if the client had sent no name.
 */
static int on_servername(SSL *s, int *al, void *arg)
{
	struct bw_tls_conn *c = SSL_get_app_data(s);
	const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

	(void)arg;
	if (!c || !name || c->sni)
		return SSL_TLSEXT_ERR_OK;
	c->sni = strdup(name);
	if (!c->sni) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
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

static bool set(const char *s)
{
	return s && *s;
}

/*
 * The fingerprints of s's verified client chain above the leaf (the leaf's
 * own when it is the anchor), at most cap; 0 without a verified client
 * certificate.
 */
static size_t verified_fps(SSL *s, uint8_t (*fps)[32], size_t cap)
{
	cert_list *ch = SSL_get0_verified_chain(s);
	int n = ch ? sk_X509_num(ch) : 0;
	size_t k = 0;

	if (n <= 0 || !SSL_get0_peer_certificate(s) || SSL_get_verify_result(s) != X509_V_OK)
		return 0;
	for (int i = n > 1 ? 1 : 0; i < n && k < cap && k < BW_TLS_CHAIN_MAX; i++) {
		unsigned int len = 0;
		if (!X509_digest(sk_X509_value(ch, i), EVP_sha256(), fps[k], &len) || len != 32) {
			ERR_clear_error();
			return 0; /* no half chain: the anchor must not look like another */
		}
		k++;
	}
	return k;
}

/*
 * A new ticket carries the verified chain's fingerprints, since a resumed
 * handshake verifies nothing. A resumed session's ticket is made from a
 * copy of that session, which carries them already.
 */
static int on_ticket_new(SSL *s, void *arg)
{
	uint8_t fps[BW_TLS_CHAIN_MAX][32];
	size_t n;

	(void)arg;
	if (SSL_session_reused(s))
		return 1;
	n = verified_fps(s, fps, BW_TLS_CHAIN_MAX);
	if (n == 0)
		return 1;
	return SSL_SESSION_set1_ticket_appdata(SSL_get_session(s), fps, n * 32);
}

/* OpenSSL's default choices, plus: a ticket whose data is not ours is not used. */
static SSL_TICKET_RETURN on_ticket_open(SSL *s, SSL_SESSION *ss, const unsigned char *name,
                                        size_t name_len, SSL_TICKET_STATUS status, void *arg)
{
	void *data = NULL;
	size_t len = 0;

	(void)s;
	(void)name;
	(void)name_len;
	(void)arg;
	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		if (!SSL_SESSION_get0_ticket_appdata(ss, &data, &len) || len % 32 != 0 ||
		    len > BW_TLS_CHAIN_MAX * 32)
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
		                                    : SSL_TICKET_RETURN_USE_RENEW;
	case SSL_TICKET_FATAL_ERR_MALLOC:
	case SSL_TICKET_FATAL_ERR_OTHER:
		return SSL_TICKET_RETURN_ABORT;
	default: /* none, empty, or not one of our keys: a full handshake */
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
}

/*
 * A new SSL_CTX from t's files and settings with the tenant CAs cas (NULL:
 * none; the context takes its own references), or NULL with err set.
 */
static SSL_CTX *build(const struct bw_tls_ctx *t, cert_list *cas, char *err, size_t cap)
{
	SSL_CTX *x;

	ERR_clear_error();
	x = SSL_CTX_new(TLS_server_method());
	if (!x) {
		char why[BW_TLS_WHY_MAX];
		bw_ossl_reason(why, sizeof(why));
		snprintf(err, cap, "cannot create a TLS context: %s", why);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(x, t->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION))
		return fail_file(x, err, cap, "tls_min_version", t->tls13 ? "1.3" : "1.2");
	/*
	 * No renegotiation (a client could make the server redo handshakes
	 * at will); the server's cipher order wins.
	 */
	SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                               SSL_OP_NO_COMPRESSION);
	/* Idle connections give their record buffers back. */
	SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
	/*
	 * Resumption by session tickets only: they are stateless, so the
	 * server keeps no cache a client can fill. The ticket keys are the
	 * context's own, so a reload (which may revoke a client) starts every
	 * client on a full handshake.
	 */
	SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(x, 1);
	unsigned sid_len = (unsigned)strlen(t->name);
	if (sid_len > SSL_MAX_SID_CTX_LENGTH)
		sid_len = SSL_MAX_SID_CTX_LENGTH;
	SSL_CTX_set_session_id_context(x, (const unsigned char *)t->name, sid_len);
	SSL_CTX_set_default_passwd_cb(x, no_password);
	if (set(t->ciphers) && !SSL_CTX_set_cipher_list(x, t->ciphers))
		return fail_file(x, err, cap, "tls_ciphers", t->ciphers);
	if (set(t->suites) && !SSL_CTX_set_ciphersuites(x, t->suites))
		return fail_file(x, err, cap, "tls_ciphersuites", t->suites);
	if (set(t->groups) && !SSL_CTX_set1_groups_list(x, t->groups))
		return fail_file(x, err, cap, "tls_groups", t->groups);
	if (!SSL_CTX_use_certificate_chain_file(x, t->cert))
		return fail_file(x, err, cap, "tls_cert", t->cert);
	/* Loading the key checks it against the certificate already. */
	bool loaded = SSL_CTX_use_PrivateKey_file(x, t->key, SSL_FILETYPE_PEM);
	if (!loaded && ERR_GET_REASON(ERR_peek_error()) != X509_R_KEY_VALUES_MISMATCH)
		return fail_file(x, err, cap, "tls_key", t->key);
	if (!loaded || !SSL_CTX_check_private_key(x)) {
		ERR_clear_error();
		snprintf(err, cap, "tls_key %s: does not match the certificate in %s", t->key,
		         t->cert);
		SSL_CTX_free(x);
		return NULL;
	}
	if (t->auth != BW_TLS_AUTH_NONE) {
		if (!SSL_CTX_load_verify_locations(x, t->ca, NULL))
			return fail_file(x, err, cap, "tls_client_ca", t->ca);
		/* The CA names sent in CertificateRequest, so clients pick a cert. */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);
		if (!names)
			return fail_file(x, err, cap, "tls_client_ca", t->ca);
		SSL_CTX_set_client_CA_list(x, names);
		/*
		 * Tenant CAs are trusted but not named: with many tenants the
		 * CertificateRequest would grow without bound.
		 */
		X509_STORE *st = SSL_CTX_get_cert_store(x);
		for (int i = 0; i < sk_X509_num(cas); i++) {
			if (!X509_STORE_add_cert(st, sk_X509_value(cas, i))) {
				char why[BW_TLS_WHY_MAX];
				bw_ossl_reason(why, sizeof(why));
				snprintf(err, cap, "tenant CAs: %s", why);
				SSL_CTX_free(x);
				return NULL;
			}
		}
		if (set(t->crl)) {
			X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());
			if (!lu || X509_load_crl_file(lu, t->crl, X509_FILETYPE_PEM) <= 0)
				return fail_file(x, err, cap, "tls_crl", t->crl);
			/*
			 * Every certificate of a client's chain is checked, so
			 * the file needs a CRL from each CA that issues one;
			 * a missing or expired CRL refuses the client. That
			 * holds for chains to tenant CAs too.
			 */
			X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
		}
		int mode = SSL_VERIFY_PEER;
		if (t->auth == BW_TLS_AUTH_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(x, mode, NULL);
	}
	SSL_CTX_set_alpn_select_cb(x, on_alpn, NULL);
	SSL_CTX_set_tlsext_servername_callback(x, on_servername);
	if (!SSL_CTX_set_session_ticket_cb(x, on_ticket_new, on_ticket_open, NULL))
		return fail_file(x, err, cap, "session tickets", "callbacks");
	return x;
}

static char *dup_or_null(const char *s)
{
	return set(s) ? strdup(s) : NULL;
}

void bw_tls_ctx_free(struct bw_tls_ctx **tp)
{
	struct bw_tls_ctx *t = *tp;

	if (!t)
		return;
	SSL_CTX_free(t->ssl_ctx);
	sk_X509_pop_free(t->tenant_cas, X509_free);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->build_mu);
	free(t->name);
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->crl);
	free(t->ciphers);
	free(t->suites);
	free(t->groups);
	free(t);
	*tp = NULL;
}

int bw_tls_ctx_new(struct bw_tls_ctx **out, const struct bw_tls_config *cfg, char *err, size_t cap)
{
	*out = NULL;
	if (!set(cfg->cert_file) || !set(cfg->key_file)) {
		snprintf(err, cap, "%s: a TLS listener needs tls_cert and tls_key", cfg->name);
		return -1;
	}
	if (cfg->client_auth != BW_TLS_AUTH_NONE && !set(cfg->client_ca_file)) {
		snprintf(err, cap, "%s: tls_client_auth needs tls_client_ca", cfg->name);
		return -1;
	}
	struct bw_tls_ctx *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->build_mu, NULL);
	t->name = strdup(cfg->name ? cfg->name : "tls");
	t->cert = strdup(cfg->cert_file);
	t->key = strdup(cfg->key_file);
	t->ca = dup_or_null(cfg->client_ca_file);
	t->crl = dup_or_null(cfg->crl_file);
	t->ciphers = dup_or_null(cfg->ciphers);
	t->suites = dup_or_null(cfg->ciphersuites);
	t->groups = dup_or_null(cfg->groups);
	t->auth = cfg->client_auth;
	t->tls13 = cfg->min_tls13;
	if (!t->name || !t->cert || !t->key || (set(cfg->client_ca_file) && !t->ca) ||
	    (set(cfg->crl_file) && !t->crl) || (set(cfg->ciphers) && !t->ciphers) ||
	    (set(cfg->ciphersuites) && !t->suites) || (set(cfg->groups) && !t->groups)) {
		snprintf(err, cap, "out of memory");
		bw_tls_ctx_free(&t);
		return -1;
	}
	t->ssl_ctx = build(t, NULL, err, cap);
	if (!t->ssl_ctx) {
		bw_tls_ctx_free(&t);
		return -1;
	}
	*out = t;
	return 0;
}

/* Builds a context with the tenant CAs cas and swaps it in; build_mu held. */
static int rebuild(struct bw_tls_ctx *t, cert_list *cas, char *err, size_t cap)
{
	SSL_CTX *x = build(t, cas, err, cap);

	if (!x)
		return -1;
	pthread_mutex_lock(&t->mu);
	SSL_CTX *old = t->ssl_ctx;
	t->ssl_ctx = x;
	pthread_mutex_unlock(&t->mu);
	SSL_CTX_free(old); /* connections made from it hold their own references */
	return 0;
}

int bw_tls_ctx_reload(struct bw_tls_ctx *t, char *err, size_t cap)
{
	pthread_mutex_lock(&t->build_mu);
	int rc = rebuild(t, t->tenant_cas, err, cap);
	pthread_mutex_unlock(&t->build_mu);
	return rc;
}

/*
 * Appends the certificates of tenant bundle i (pem) to cas. Returns 0, or
 * -1 with err set when it holds none or one does not parse (err counts
 * certificates from 1).
 */
static int parse_bundle(cert_list *cas, const char *pem, size_t i, char *err, size_t cap)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	unsigned at = 0; /* the certificate being read */
	char why[BW_TLS_WHY_MAX];

	ERR_clear_error();
	if (!b)
		goto fail;
	for (;;) {
		at++;
		x = PEM_read_bio_X509(b, NULL, no_password, NULL);
		if (!x)
			break;
		/*
		 * Caches the extensions now, while only this thread sees x;
		 * it fails on extensions that do not parse.
		 */
		if (X509_check_purpose(x, -1, 0) != 1 || !sk_X509_push(cas, x)) {
			X509_free(x);
			goto fail;
		}
	}
	/* The end of the bundle: no further "-----BEGIN CERTIFICATE-----". */
	unsigned long e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
		goto fail;
	ERR_clear_error();
	BIO_free(b);
	if (at > 1)
		return 0;
	snprintf(err, cap, "tenant CA bundle %zu: no certificate", i);
	return -1;
fail:
	bw_ossl_reason(why, sizeof(why));
	if (at)
		snprintf(err, cap, "tenant CA bundle %zu, certificate %u: %s", i, at, why);
	else
		snprintf(err, cap, "tenant CA bundle %zu: %s", i, why);
	BIO_free(b);
	return -1;
}

int bw_tls_ctx_set_tenant_cas(struct bw_tls_ctx *t, const char *const *pems, size_t n, char *err,
                              size_t cap)
{
	cert_list *cas = sk_X509_new_null();

	if (!cas) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (set(pems[i]) && parse_bundle(cas, pems[i], i, err, cap)) {
			sk_X509_pop_free(cas, X509_free);
			return -1;
		}
	}
	pthread_mutex_lock(&t->build_mu);
	int rc = rebuild(t, cas, err, cap);
	if (rc == 0) {
		cert_list *old = t->tenant_cas;
		t->tenant_cas = cas;
		cas = old;
	}
	pthread_mutex_unlock(&t->build_mu);
	sk_X509_pop_free(cas, X509_free); /* the old set, or the refused one */
	return rc;
}

const char *bw_tls_library(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

const char *bw_tls_ctx_name(const struct bw_tls_ctx *t)
{
	return t->name;
}

/* ---- a connection -------------------------------------------------------- */

/*
 * Notes the end of the handshake as it happens: after a later fatal error
 * SSL_is_init_finished() is false again, yet the failure was not one of
 * the handshake (and a bad first record may follow the handshake in the
 * very read that finished it).
 */
static void on_info(const SSL *s, int where, int ret)
{
	struct bw_tls_conn *c = SSL_get_app_data(s);

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) && c)
		c->established = true;
}

struct bw_tls_conn *bw_tls_conn_new(struct bw_tls_ctx *t)
{
	struct bw_tls_conn *c = calloc(1, sizeof(*c));
	BIO *b = c ? bw_membio_new(&c->io) : NULL;

	if (!b) {
		free(c);
		return NULL;
	}
	/* The reference SSL_new takes keeps the context alive past a reload. */
	pthread_mutex_lock(&t->mu);
	c->ssl = SSL_new(t->ssl_ctx);
	pthread_mutex_unlock(&t->mu);
	if (!c->ssl) {
		ERR_clear_error();
		BIO_free(b);
		free(c);
		return NULL;
	}
	c->io.out_max = OUT_MAX;
	SSL_set_bio(c->ssl, b, b); /* the SSL owns b (one reference for both ends) */
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, on_info);
	SSL_set_accept_state(c->ssl);
	return c;
}

void bw_tls_conn_free(struct bw_tls_conn **cp)
{
	struct bw_tls_conn *c = *cp;

	if (!c)
		return;
	SSL_free(c->ssl);
	free(c->io.out);
	free(c->sni);
	free(c);
	*cp = NULL;
}

/* Why the connection failed, into why[0..BW_TLS_WHY_MAX). */
static void conn_reason(const struct bw_tls_conn *c, char *why)
{
	long v = SSL_get_verify_result(c->ssl);

	if (c->io.out_full) {
		ERR_clear_error();
		snprintf(why, BW_TLS_WHY_MAX, "output backlog over %u bytes", OUT_MAX);
	} else if (v != X509_V_OK) {
		ERR_clear_error();
		snprintf(why, BW_TLS_WHY_MAX, "client certificate: %s",
		         X509_verify_cert_error_string(v));
	} else {
		bw_ossl_reason(why, BW_TLS_WHY_MAX);
	}
}

int bw_tls_conn_input(struct bw_tls_conn *c, const uint8_t *in, size_t len,
                      int (*sink)(void *arg, const uint8_t *p, size_t n), void *arg, char *why)
{
	uint8_t plain[RECORD_MAX];
	int rc = -EPROTO;

	c->io.in = in;
	c->io.in_len = len;
	snprintf(why, BW_TLS_WHY_MAX, "too many records in one read");
	ERR_clear_error();
	/*
	 * Each read that returns data used up a record of at least 6 bytes
	 * of the input (or the one record OpenSSL held before), and a record
	 * fits in plain[], so len + 2 rounds cover every record.
	 */
	for (size_t round = 0; round <= len + 2; round++) {
		int n = SSL_read(c->ssl, plain, (int)sizeof(plain));
		if (n > 0) {
			rc = sink(arg, plain, (size_t)n);
			if (rc < 0)
				break;
			rc = -EPROTO; /* if the rounds run out */
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ) {
			rc = 0;
		} else if (e == SSL_ERROR_ZERO_RETURN) {
			rc = BW_TLS_CLOSED;
		} else if (c->io.out_oom) {
			rc = -ENOMEM;
		} else {
			conn_reason(c, why);
			rc = -EPROTO;
		}
		break;
	}
	c->io.in = NULL;
	c->io.in_len = 0;
	ERR_clear_error();
	return rc;
}

bool bw_tls_conn_ready(const struct bw_tls_conn *c)
{
	return c->established;
}

int bw_tls_conn_write(struct bw_tls_conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (c->shut || !SSL_is_init_finished(c->ssl))
		return -EPROTO;
	ERR_clear_error();
	/* Without partial writes a successful SSL_write takes everything. */
	while (n > 0) {
		int k = n > (size_t)INT_MAX ? INT_MAX : (int)n;
		int r = SSL_write(c->ssl, b, k);
		if (r <= 0) {
			bool oom = c->io.out_oom;
			ERR_clear_error();
			return oom ? -ENOMEM : -EPROTO;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

void bw_tls_conn_shutdown(struct bw_tls_conn *c)
{
	if (c->shut || !SSL_is_init_finished(c->ssl))
		return;
	c->shut = true;
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl); /* 0: sent, not yet answered; that is enough */
	ERR_clear_error();
}

size_t bw_tls_conn_output_bytes(const struct bw_tls_conn *c)
{
	return c->io.out_len;
}

bool bw_tls_conn_take_output(struct bw_tls_conn *c, uint8_t **buf, size_t *len)
{
	if (c->io.out_len == 0)
		return false;
	*buf = c->io.out;
	*len = c->io.out_len;
	c->lent_cap = c->io.out_cap;
	c->io.out = NULL;
	c->io.out_len = c->io.out_cap = 0;
	return true;
}

void bw_tls_conn_give_back(struct bw_tls_conn *c, uint8_t *buf, bool more)
{
	if (more && !c->io.out) {
		c->io.out = buf;
		c->io.out_cap = c->lent_cap;
	} else {
		free(buf);
	}
	c->lent_cap = 0;
}

/* ---- what the handshake established -------------------------------------- */

const char *bw_tls_conn_sni(const struct bw_tls_conn *c)
{
	return c->sni;
}

const char *bw_tls_conn_alpn(const struct bw_tls_conn *c)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(c->ssl, &p, &n);
	return n == 4 && !memcmp(p, "mqtt", 4) ? "mqtt" : NULL;
}

void bw_tls_conn_describe(const struct bw_tls_conn *c, char *buf, size_t cap)
{
	const char *cipher = SSL_get_cipher_name(c->ssl);

	snprintf(buf, cap, "%s %s", SSL_get_version(c->ssl), cipher ? cipher : "(none)");
}

bool bw_tls_conn_has_peer_cert(const struct bw_tls_conn *c)
{
	return SSL_get0_peer_certificate(c->ssl) != NULL;
}

int bw_tls_conn_peer_cn(const struct bw_tls_conn *c, char *buf, size_t cap)
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;

	if (i < 0)
		return -ENOENT;
	ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, s);
	int rc;
	if (n < 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	if (memchr(utf8, 0, (size_t)n))
		rc = -EINVAL;
	else if ((size_t)n >= cap)
		rc = -ENOSPC;
	else {
		memcpy(buf, utf8, (size_t)n);
		buf[n] = 0;
		rc = n;
	}
	OPENSSL_free(utf8);
	return rc;
}

/* One general name as text into buf; 0 for kinds that are skipped. */
static int san_text(const GENERAL_NAME *g, char *buf, size_t cap)
{
	const char *prefix;
	const ASN1_STRING *s;
	char ip[INET6_ADDRSTRLEN];
	const char *text;
	size_t len;

	switch (g->type) {
	case GEN_DNS:
		prefix = "DNS:";
		s = g->d.dNSName;
		break;
	case GEN_URI:
		prefix = "URI:";
		s = g->d.uniformResourceIdentifier;
		break;
	case GEN_EMAIL:
		prefix = "email:";
		s = g->d.rfc822Name;
		break;
	case GEN_IPADD:
		prefix = "IP:";
		s = g->d.iPAddress;
		break;
	default:
		return 0;
	}
	if (g->type == GEN_IPADD) {
		int af = s->length == 4 ? AF_INET : s->length == 16 ? AF_INET6 : 0;
		if (!af || !inet_ntop(af, s->data, ip, sizeof(ip)))
			return 0;
		text = ip;
		len = strlen(ip);
	} else {
		text = (const char *)s->data;
		len = (size_t)s->length;
		if (memchr(text, 0, len))
			return 0; /* an IA5String with a NUL: not a name to match on */
	}
	size_t plen = strlen(prefix);
	if (plen + len >= cap)
		return -ENOSPC;
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, text, len);
	buf[plen + len] = 0;
	return (int)(plen + len);
}

int bw_tls_conn_peer_san(const struct bw_tls_conn *c, unsigned i, char *buf, size_t cap)
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	GENERAL_NAMES *names = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	int rc = -ENOENT;

	if (!names) {
		ERR_clear_error();
		return -ENOENT;
	}
	int n = sk_GENERAL_NAME_num(names);
	unsigned seen = 0;
	for (int k = 0; k < n; k++) {
		char tmp[1024];
		int len = san_text(sk_GENERAL_NAME_value(names, k), tmp, sizeof(tmp));
		if (len == 0)
			continue; /* a kind that is skipped */
		if (seen++ < i)
			continue;
		if (len < 0 || (size_t)len >= cap) {
			rc = -ENOSPC;
		} else {
			memcpy(buf, tmp, (size_t)len + 1);
			rc = len;
		}
		break;
	}
	GENERAL_NAMES_free(names);
	return rc;
}

int bw_tls_conn_peer_sha256(const struct bw_tls_conn *c, uint8_t out[32])
{
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	unsigned int n = 0;

	if (!x)
		return -ENOENT;
	if (!X509_digest(x, EVP_sha256(), out, &n) || n != 32) {
		ERR_clear_error();
		return -ENOENT;
	}
	return 0;
}

int bw_tls_conn_chain_fps(const struct bw_tls_conn *c, uint8_t (*fps)[32], size_t cap)
{
	void *data = NULL;
	size_t len = 0;

	if (!c->established)
		return 0;
	if (!SSL_session_reused(c->ssl))
		return (int)verified_fps(c->ssl, fps, cap);
	/* Resumed: what the ticket carried (on_ticket_open checked its size). */
	if (!SSL_get0_peer_certificate(c->ssl) || SSL_get_verify_result(c->ssl) != X509_V_OK ||
	    !SSL_SESSION_get0_ticket_appdata(SSL_get_session(c->ssl), &data, &len))
		return 0;
	size_t n = len / 32;
	if (n > cap)
		n = cap;
	if (n > BW_TLS_CHAIN_MAX)
		n = BW_TLS_CHAIN_MAX;
	if (n)
		memcpy(fps, data, n * 32);
	return (int)n;
}
