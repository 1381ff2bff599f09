/*
 * node/net/tls.c against an in-memory OpenSSL client: the test makes its
 * own CAs, certificates and CRL with OpenSSL's API in a temporary
 * directory, then pumps records between a client SSL (memory BIOs) and a
 * bw_tls_conn. Covers the context's errors (missing, garbage and
 * mismatched files), the handshake with ALPN and SNI, data both ways,
 * client certificates (valid, missing, expired, from another CA, revoked),
 * version limits, session tickets, reload, close_notify, the output
 * buffer's hand-off, and tenant CAs (trust, the verified chain's
 * fingerprints across resumption, bad bundles, CRLs, changes from other
 * threads). Every pump is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "node/net/tls.h"

/* ---- a small PKI in a temporary directory ---------------------------------- */

static char dir[64];
static char path_buf[32][128];
static unsigned n_paths;

static const char *path(const char *name)
{
	char *p = path_buf[n_paths++ % 32];
	snprintf(p, 128, "%s/%s", dir, name);
	return p;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v;
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer (NULL: self-signed), valid from..to seconds. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer,
                       EVP_PKEY *issuer_key, bool ca, long from, long to, const char *san)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
	        ca ? "critical,CA:TRUE" : "CA:FALSE");
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (ca)
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san)
		add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *key, X509_CRL *crl)
{
	FILE *f = fopen(path(name), "w");
	assert_non_null(f);
	if (x)
		assert_true(PEM_write_X509(f, x));
	if (key)
		assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
	if (crl)
		assert_true(PEM_write_X509_CRL(f, crl));
	fclose(f);
}

static void write_text(const char *name, const char *text)
{
	FILE *f = fopen(path(name), "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A CRL of ca revoking serial. */
static X509_CRL *make_crl(X509 *ca, EVP_PKEY *ca_key, long serial)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 1, 0);
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *s = ASN1_INTEGER_new();
	ASN1_INTEGER_set(s, serial);
	X509_REVOKED_set_serialNumber(r, s);
	X509_REVOKED_set_revocationDate(r, last);
	X509_CRL_add0_revoked(crl, r);
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	X509_CRL_set1_lastUpdate(crl, last);
	X509_CRL_set1_nextUpdate(crl, next);
	X509_CRL_sort(crl);
	assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0);
	ASN1_INTEGER_free(s);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	return crl;
}

/*
 * ca.pem; server.pem/server.key (serial 2) and server2.pem/server2.key
 * (serial 22, for reloads); client.pem/client.key (valid, serial 3),
 * revoked.pem (serial 4, in crl.pem), expired.pem, other.pem (from
 * another CA, other-ca.pem). For tenants: tenant-c.pem, a bundle of a root
 * and its issuing CA, which issued device-c.pem; self.pem, a self-signed
 * device; crl-both.pem, crl.pem's CRL and one of the other CA.
 */
static int make_pki(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bw-test-tls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
	EVP_PKEY *key = EVP_EC_gen("P-256"), *key2 = EVP_EC_gen("P-256");
	assert_non_null(ca_key);
	assert_non_null(key2);
	X509 *ca = make_cert(ca_key, "Test CA", 1, NULL, NULL, true, -60, 86400, NULL);
	X509 *other = make_cert(other_key, "Other CA", 1, NULL, NULL, true, -60, 86400, NULL);
	X509 *srv = make_cert(key, "localhost", 2, ca, ca_key, false, -60, 86400,
	                      "DNS:localhost,IP:127.0.0.1");
	X509 *srv2 = make_cert(key2, "localhost", 22, ca, ca_key, false, -60, 86400,
	                       "DNS:localhost,IP:127.0.0.1");
	X509 *cli = make_cert(key, "device-1", 3, ca, ca_key, false, -60, 86400,
	                      "DNS:device-1.example,URI:spiffe://acme/device-1,"
	                      "email:ops@example.com,IP:10.0.0.1");
	X509 *rev = make_cert(key, "device-2", 4, ca, ca_key, false, -60, 86400, NULL);
	X509 *exp = make_cert(key, "device-3", 5, ca, ca_key, false, -7200, -3600, NULL);
	X509 *oth = make_cert(key, "device-4", 6, other, other_key, false, -60, 86400, NULL);
	X509_CRL *crl = make_crl(ca, ca_key, 4);
	X509_CRL *crl_other = make_crl(other, other_key, 99);
	EVP_PKEY *c_key = EVP_EC_gen("P-256");
	X509 *c_root = make_cert(c_key, "Tenant C root", 1, NULL, NULL, true, -60, 86400, NULL);
	X509 *c_issuing =
	        make_cert(c_key, "Tenant C issuing", 2, c_root, c_key, true, -60, 86400, NULL);
	X509 *dev_c = make_cert(key, "device-c", 3, c_issuing, c_key, false, -60, 86400, NULL);
	X509 *self = make_cert(key, "device-self", 7, NULL, NULL, false, -60, 86400, NULL);
	write_pem("other-ca.pem", other, NULL, NULL);
	write_pem("tenant-c-root.pem", c_root, NULL, NULL);
	write_pem("tenant-c-issuing.pem", c_issuing, NULL, NULL);
	write_pem("device-c.pem", dev_c, NULL, NULL);
	write_pem("self.pem", self, NULL, NULL);
	FILE *f = fopen(path("crl-both.pem"), "w");
	assert_non_null(f);
	assert_true(PEM_write_X509_CRL(f, crl) && PEM_write_X509_CRL(f, crl_other));
	fclose(f);
	X509_CRL_free(crl_other);
	X509_free(c_root);
	X509_free(c_issuing);
	X509_free(dev_c);
	X509_free(self);
	EVP_PKEY_free(c_key);
	write_pem("ca.pem", ca, NULL, NULL);
	write_pem("server.pem", srv, NULL, NULL);
	write_pem("server.key", NULL, key, NULL);
	write_pem("server2.pem", srv2, NULL, NULL);
	write_pem("server2.key", NULL, key2, NULL);
	write_pem("client.pem", cli, NULL, NULL);
	write_pem("client.key", NULL, key, NULL);
	write_pem("revoked.pem", rev, NULL, NULL);
	write_pem("expired.pem", exp, NULL, NULL);
	write_pem("other.pem", oth, NULL, NULL);
	write_pem("crl.pem", NULL, NULL, crl);
	write_text("garbage.pem", "this is not a certificate\n");
	X509_CRL_free(crl);
	X509 *all[] = { ca, other, srv, srv2, cli, rev, exp, oth };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		X509_free(all[i]);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
	return 0;
}

static int remove_pki(void **state)
{
	const char *names[] = { "ca.pem",
		                "server.pem",
		                "server.key",
		                "server2.pem",
		                "server2.key",
		                "client.pem",
		                "client.key",
		                "revoked.pem",
		                "expired.pem",
		                "other.pem",
		                "crl.pem",
		                "garbage.pem",
		                "swap.pem",
		                "swap.key",
		                "other-ca.pem",
		                "tenant-c-root.pem",
		                "tenant-c-issuing.pem",
		                "device-c.pem",
		                "self.pem",
		                "crl-both.pem" };
	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path(names[i]));
	rmdir(dir);
	return 0;
}

/* ---- an in-memory client and the pump between it and a bw_tls_conn ------- */

struct got {
	uint8_t data[1 << 17];
	size_t len;
};

static int sink(void *arg, const uint8_t *p, size_t n)
{
	struct got *g = arg;
	assert_true(g->len + n <= sizeof(g->data));
	memcpy(g->data + g->len, p, n);
	g->len += n;
	return 0;
}

/* A client context trusting ca.pem; cert/key NULL: no client certificate. */
static SSL_CTX *client_ctx(const char *cert, const char *key, int max_version)
{
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());
	assert_non_null(x);
	assert_true(SSL_CTX_load_verify_locations(x, path("ca.pem"), NULL));
	SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
	if (max_version) {
		/* Old versions need the security level lowered to be offered at all. */
		SSL_CTX_set_min_proto_version(x, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(x, max_version);
		SSL_CTX_set_cipher_list(x, "DEFAULT:@SECLEVEL=0");
	}
	if (cert) {
		assert_true(SSL_CTX_use_certificate_file(x, path(cert), SSL_FILETYPE_PEM));
		assert_true(SSL_CTX_use_PrivateKey_file(x, path(key), SSL_FILETYPE_PEM));
	}
	return x;
}

/* alpn: a wire-format ALPN list, or NULL. */
static SSL *client_new(SSL_CTX *x, const char *sni, const char *alpn, SSL_SESSION *sess)
{
	SSL *s = SSL_new(x);
	assert_non_null(s);
	SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	SSL_set_connect_state(s);
	SSL_set1_host(s, "localhost");
	if (sni)
		SSL_set_tlsext_host_name(s, sni);
	if (alpn)
		SSL_set_alpn_protos(s, (const unsigned char *)alpn, (unsigned)strlen(alpn));
	if (sess)
		SSL_set_session(s, sess);
	return s;
}

/*
 * Moves records both ways until neither side has anything to say (at most
 * 16 rounds). Returns the first non-zero bw_tls_conn_input() result, or 0.
 */
static int pump(SSL *cl, struct bw_tls_conn *sv, struct got *got, char *why)
{
	for (int round = 0; round < 16; round++) {
		char buf[65536];
		int n;
		bool moved = false;
		if (!SSL_is_init_finished(cl))
			(void)SSL_do_handshake(cl);
		while ((n = BIO_read(SSL_get_wbio(cl), buf, sizeof(buf))) > 0) {
			int rc = bw_tls_conn_input(sv, (const uint8_t *)buf, (size_t)n, sink, got,
			                           why);
			moved = true;
			if (rc != 0)
				return rc;
		}
		uint8_t *out;
		size_t len;
		if (bw_tls_conn_take_output(sv, &out, &len)) {
			assert_int_equal(BIO_write(SSL_get_rbio(cl), out, (int)len), (int)len);
			bw_tls_conn_give_back(sv, out, false);
			moved = true;
		}
		if (!moved)
			return 0;
	}
	fail_msg("the pump did not settle");
	return -1;
}

/* What the client can read now (it also takes session tickets this way). */
static size_t client_read(SSL *cl, uint8_t *buf, size_t cap)
{
	size_t len = 0;
	for (int i = 0; i < 64 && len < cap; i++) {
		int n = SSL_read(cl, buf + len, (int)(cap - len));
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	ERR_clear_error();
	return len;
}

static struct bw_tls_ctx *server_with(const char *cert, const char *key,
                                      enum bw_tls_client_auth auth, bool crl, bool tls13)
{
	struct bw_tls_config cfg = {
		.name = "127.0.0.1:8883",
		.cert_file = path(cert),
		.key_file = path(key),
		.client_ca_file = auth != BW_TLS_AUTH_NONE ? path("ca.pem") : NULL,
		.crl_file = crl ? path("crl.pem") : NULL,
		.client_auth = auth,
		.min_tls13 = tls13,
	};
	struct bw_tls_ctx *t;
	char err[512];
	if (bw_tls_ctx_new(&t, &cfg, err, sizeof(err)))
		fail_msg("bw_tls_ctx_new: %s", err);
	return t;
}

static struct bw_tls_ctx *server(enum bw_tls_client_auth auth, bool crl, bool tls13)
{
	return server_with("server.pem", "server.key", auth, crl, tls13);
}

/* One client against a new connection of t: the server's input result and why. */
static int try_client(struct bw_tls_ctx *t, const char *cert, const char *key, int max_version,
                      char *why)
{
	SSL_CTX *x = client_ctx(cert, key, max_version);
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	assert_non_null(sv);
	why[0] = 0;
	int rc = pump(cl, sv, &got, why);
	if (rc == 0) {
		/* TLS 1.3: the client is done first; its data shows the server agrees. */
		assert_int_equal(SSL_write(cl, "x", 1), 1);
		got.len = 0;
		rc = pump(cl, sv, &got, why);
		if (rc == 0 && !(bw_tls_conn_ready(sv) && got.len == 1))
			rc = -EAGAIN;
	}
	if (rc == -EPROTO)
		assert_true(bw_tls_conn_output_bytes(sv) > 0 || max_version); /* the alert */
	bw_tls_conn_free(&sv);
	assert_null(sv);
	SSL_free(cl);
	SSL_CTX_free(x);
	return rc;
}

/* ---- the cases ------------------------------------------------------------ */

static void expect_ctx_error(const struct bw_tls_config *cfg, const char *a, const char *b)
{
	struct bw_tls_ctx *t = (struct bw_tls_ctx *)1;
	char err[512] = "";
	assert_int_equal(bw_tls_ctx_new(&t, cfg, err, sizeof(err)), -1);
	assert_null(t);
	if (!strstr(err, a) || (b && !strstr(err, b)))
		fail_msg("error '%s' lacks '%s' or '%s'", err, a, b ? b : "");
}

static void test_context_errors_name_the_file(void **state)
{
	struct bw_tls_config cfg = { .name = "l",
		                     .cert_file = "/nonexistent/cert.pem",
		                     .key_file = path("server.key") };
	(void)state;
	expect_ctx_error(&cfg, "tls_cert /nonexistent/cert.pem", "No such file or directory");
	cfg.cert_file = path("garbage.pem");
	expect_ctx_error(&cfg, path("garbage.pem"), "no start line");
	cfg.cert_file = path("server.pem");
	cfg.key_file = path("garbage.pem");
	expect_ctx_error(&cfg, "tls_key", path("garbage.pem"));
	cfg.key_file = path("server2.key");
	expect_ctx_error(&cfg, "does not match the certificate", path("server.pem"));
	cfg.key_file = NULL;
	expect_ctx_error(&cfg, "needs tls_cert and tls_key", NULL);
	cfg.key_file = path("server.key");
	cfg.ciphers = "NOT-A-CIPHER";
	expect_ctx_error(&cfg, "tls_ciphers NOT-A-CIPHER", "no cipher match");
	cfg.ciphers = NULL;
	cfg.groups = "NOT-A-GROUP";
	expect_ctx_error(&cfg, "tls_groups NOT-A-GROUP", NULL);
	cfg.groups = "X25519:P-256";
	cfg.client_auth = BW_TLS_AUTH_REQUIRED;
	expect_ctx_error(&cfg, "tls_client_auth needs tls_client_ca", NULL);
	cfg.client_ca_file = path("garbage.pem");
	expect_ctx_error(&cfg, "tls_client_ca", path("garbage.pem"));
	cfg.client_ca_file = path("ca.pem");
	cfg.crl_file = path("garbage.pem");
	expect_ctx_error(&cfg, "tls_crl", path("garbage.pem"));
	cfg.crl_file = path("crl.pem");
	struct bw_tls_ctx *t;
	char err[512];
	assert_int_equal(bw_tls_ctx_new(&t, &cfg, err, sizeof(err)), 0);
	assert_string_equal(bw_tls_ctx_name(t), "l");
	bw_tls_ctx_free(&t);
	assert_null(t);
	bw_tls_ctx_free(&t); /* NULL: nothing */
}

static void test_handshake_alpn_sni_and_data(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	static struct got got;
	char why[BW_TLS_WHY_MAX], desc[128];
	uint8_t buf[256];
	(void)state;

	/* ALPN offering h2 and mqtt, and an SNI name. */
	SSL *cl = client_new(x, "broker.example", "\x02h2\x04mqtt", NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	assert_false(bw_tls_conn_ready(sv));
	assert_int_equal(bw_tls_conn_write(sv, "early", 5), -EPROTO);
	got.len = 0;
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_true(bw_tls_conn_ready(sv));
	assert_true(SSL_is_init_finished(cl));
	assert_string_equal(bw_tls_conn_alpn(sv), "mqtt");
	assert_string_equal(bw_tls_conn_sni(sv), "broker.example");
	bw_tls_conn_describe(sv, desc, sizeof(desc));
	assert_non_null(strstr(desc, "TLSv1.3"));
	assert_false(bw_tls_conn_has_peer_cert(sv));
	assert_int_equal(bw_tls_conn_peer_cn(sv, (char *)buf, sizeof(buf)), -ENOENT);
	assert_int_equal(bw_tls_conn_peer_san(sv, 0, (char *)buf, sizeof(buf)), -ENOENT);
	assert_int_equal(bw_tls_conn_peer_sha256(sv, buf), -ENOENT);

	assert_int_equal(SSL_write(cl, "\x10\x0c hello", 8), 8);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_int_equal(got.len, 8);
	assert_memory_equal(got.data, "\x10\x0c hello", 8);
	assert_int_equal(bw_tls_conn_write(sv, "world", 5), 0);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_int_equal(client_read(cl, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "world", 5);

	/* Garbage after the handshake is a bad record. */
	assert_int_equal(bw_tls_conn_input(sv, (const uint8_t *)"\x17\x03\x03\x00\x05hello", 10,
	                                   sink, &got, why),
	                 -EPROTO);
	assert_true(why[0]);
	assert_true(bw_tls_conn_ready(sv)); /* a failure after the handshake */
	assert_int_equal(bw_tls_conn_write(sv, "x", 1), -EPROTO);
	bw_tls_conn_free(&sv);
	SSL_free(cl);

	/* No ALPN, no SNI; and an ALPN list without mqtt: both go on. */
	const char *lists[] = { NULL, "\x08http/1.1" };
	for (int i = 0; i < 2; i++) {
		cl = client_new(x, NULL, lists[i], NULL);
		sv = bw_tls_conn_new(t);
		assert_int_equal(pump(cl, sv, &got, why), 0);
		assert_true(bw_tls_conn_ready(sv));
		assert_null(bw_tls_conn_alpn(sv));
		assert_null(bw_tls_conn_sni(sv));
		bw_tls_conn_free(&sv);
		SSL_free(cl);
	}
	SSL_CTX_free(x);
	bw_tls_ctx_free(&t);
}

static void test_not_tls(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	char why[BW_TLS_WHY_MAX];
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	(void)state;
	assert_int_equal(
	        bw_tls_conn_input(sv, (const uint8_t *)http, strlen(http), sink, &got, why),
	        -EPROTO);
	assert_non_null(strstr(why, "http request"));
	assert_int_equal(got.len, 0);
	bw_tls_conn_free(&sv);
	bw_tls_ctx_free(&t);
}

static void test_versions(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	char why[BW_TLS_WHY_MAX];
	(void)state;
	assert_int_equal(try_client(t, NULL, NULL, TLS1_2_VERSION, why), 0);
	assert_int_equal(try_client(t, NULL, NULL, TLS1_1_VERSION, why), -EPROTO);
	assert_non_null(strstr(why, "unsupported protocol"));
	bw_tls_ctx_free(&t);
	t = server(BW_TLS_AUTH_NONE, false, true); /* tls_min_version 1.3 */
	assert_int_equal(try_client(t, NULL, NULL, TLS1_2_VERSION, why), -EPROTO);
	assert_int_equal(try_client(t, NULL, NULL, 0, why), 0);
	bw_tls_ctx_free(&t);
}

static void test_client_certificates(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_REQUIRED, true, false);
	char why[BW_TLS_WHY_MAX];
	(void)state;
	assert_int_equal(try_client(t, "client.pem", "client.key", 0, why), 0);
	assert_int_equal(try_client(t, "client.pem", "client.key", TLS1_2_VERSION, why), 0);
	assert_int_equal(try_client(t, NULL, NULL, 0, why), -EPROTO);
	assert_non_null(strstr(why, "certificate"));
	assert_int_equal(try_client(t, "expired.pem", "client.key", 0, why), -EPROTO);
	assert_non_null(strstr(why, "certificate has expired"));
	assert_int_equal(try_client(t, "other.pem", "client.key", 0, why), -EPROTO);
	assert_non_null(strstr(why, "unable to get local issuer certificate"));
	assert_int_equal(try_client(t, "revoked.pem", "client.key", 0, why), -EPROTO);
	assert_non_null(strstr(why, "certificate revoked"));
	assert_int_equal(try_client(t, "revoked.pem", "client.key", TLS1_2_VERSION, why), -EPROTO);
	bw_tls_ctx_free(&t);

	/* Optional: none is fine, a bad one is not. Without the CRL, revoked passes. */
	t = server(BW_TLS_AUTH_OPTIONAL, false, false);
	assert_int_equal(try_client(t, NULL, NULL, 0, why), 0);
	assert_int_equal(try_client(t, "revoked.pem", "client.key", 0, why), 0);
	assert_int_equal(try_client(t, "other.pem", "client.key", 0, why), -EPROTO);
	bw_tls_ctx_free(&t);
}

static void test_peer_certificate_accessors(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_REQUIRED, true, false);
	SSL_CTX *x = client_ctx("client.pem", "client.key", 0);
	SSL *cl = client_new(x, NULL, "\x04mqtt", NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	char why[BW_TLS_WHY_MAX], s[128];
	uint8_t fp[32], want[32];
	unsigned n = 0;
	(void)state;
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_true(bw_tls_conn_has_peer_cert(sv));
	assert_int_equal(bw_tls_conn_peer_cn(sv, s, sizeof(s)), 8);
	assert_string_equal(s, "device-1");
	assert_int_equal(bw_tls_conn_peer_cn(sv, s, 8), -ENOSPC);
	const char *sans[] = { "DNS:device-1.example", "URI:spiffe://acme/device-1",
		               "email:ops@example.com", "IP:10.0.0.1" };
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(bw_tls_conn_peer_san(sv, i, s, sizeof(s)), (int)strlen(sans[i]));
		assert_string_equal(s, sans[i]);
	}
	assert_int_equal(bw_tls_conn_peer_san(sv, 4, s, sizeof(s)), -ENOENT);
	assert_int_equal(bw_tls_conn_peer_san(sv, 0, s, 5), -ENOSPC);
	assert_int_equal(bw_tls_conn_peer_sha256(sv, fp), 0);
	FILE *f = fopen(path("client.pem"), "r");
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_true(X509_digest(cert, EVP_sha256(), want, &n));
	assert_memory_equal(fp, want, 32);
	X509_free(cert);
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	SSL_CTX_free(x);
	bw_tls_ctx_free(&t);
}

/* A full handshake, then one resuming its session: whether it was resumed. */
static bool resumes(struct bw_tls_ctx *t, SSL_CTX *x, SSL_SESSION **sess)
{
	static struct got got;
	char why[BW_TLS_WHY_MAX];
	uint8_t buf[64];
	SSL *cl = client_new(x, NULL, NULL, *sess);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_true(bw_tls_conn_ready(sv));
	bool reused = SSL_session_reused(cl);
	client_read(cl, buf, sizeof(buf)); /* TLS 1.3 tickets come after the handshake */
	SSL_SESSION_free(*sess);
	*sess = SSL_get1_session(cl);
	(void)SSL_shutdown(cl); /* else freeing it marks the session not resumable */
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	return reused;
}

static void test_session_tickets(void **state)
{
	int versions[] = { 0, TLS1_2_VERSION };
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct bw_tls_ctx *t = server(BW_TLS_AUTH_REQUIRED, true, false);
		SSL_CTX *x = client_ctx("client.pem", "client.key", versions[i]);
		SSL_SESSION *sess = NULL;
		assert_false(resumes(t, x, &sess));
		assert_non_null(sess);
		assert_true(resumes(t, x, &sess));
		/* After a reload the ticket keys are new: a full handshake. */
		char err[512];
		assert_int_equal(bw_tls_ctx_reload(t, err, sizeof(err)), 0);
		assert_false(resumes(t, x, &sess));
		SSL_SESSION_free(sess);
		SSL_CTX_free(x);
		bw_tls_ctx_free(&t);
	}
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(path(from), "r"), *out = fopen(path(to), "w");
	assert_non_null(in);
	assert_non_null(out);
	size_t n = fread(buf, 1, sizeof(buf), in);
	assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
}

/* The serial of the certificate a new connection of t is served. */
static long served_serial(struct bw_tls_ctx *t)
{
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	char why[BW_TLS_WHY_MAX];
	assert_int_equal(pump(cl, sv, &got, why), 0);
	X509 *peer = SSL_get1_peer_certificate(cl);
	assert_non_null(peer);
	long serial = ASN1_INTEGER_get(X509_get0_serialNumber(peer));
	X509_free(peer);
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	SSL_CTX_free(x);
	return serial;
}

static void test_reload(void **state)
{
	char err[512], why[BW_TLS_WHY_MAX];
	static struct got got;
	(void)state;
	copy_file("server.pem", "swap.pem");
	copy_file("server.key", "swap.key");
	struct bw_tls_ctx *t = server_with("swap.pem", "swap.key", BW_TLS_AUTH_NONE, false, false);
	assert_int_equal(served_serial(t), 2);

	/* An established connection outlives the reload on its old context. */
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	got.len = 0;
	assert_int_equal(pump(cl, sv, &got, why), 0);

	copy_file("server2.pem", "swap.pem");
	copy_file("server2.key", "swap.key");
	assert_int_equal(bw_tls_ctx_reload(t, err, sizeof(err)), 0);
	assert_int_equal(served_serial(t), 22);
	assert_int_equal(SSL_write(cl, "still here", 10), 10);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_int_equal(got.len, 10);

	/* A bad file keeps what was loaded, and says why. */
	copy_file("garbage.pem", "swap.pem");
	assert_int_equal(bw_tls_ctx_reload(t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path("swap.pem")));
	assert_non_null(strstr(err, "no start line"));
	assert_int_equal(served_serial(t), 22);
	copy_file("server.pem", "swap.pem"); /* with server2.key: a mismatch */
	assert_int_equal(bw_tls_ctx_reload(t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match"));
	assert_int_equal(served_serial(t), 22);

	/* The context may go before its connections. */
	bw_tls_ctx_free(&t);
	assert_int_equal(bw_tls_conn_write(sv, "bye", 3), 0);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	SSL_CTX_free(x);
}

static void test_close_notify(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	static struct got got;
	char why[BW_TLS_WHY_MAX];
	uint8_t buf[16];
	(void)state;

	/* The server's close_notify reaches the client. */
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	bw_tls_conn_shutdown(sv);
	bw_tls_conn_shutdown(sv); /* once */
	assert_int_equal(bw_tls_conn_write(sv, "x", 1), -EPROTO);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_int_equal(SSL_read(cl, buf, sizeof(buf)), 0);
	assert_int_equal(SSL_get_error(cl, 0), SSL_ERROR_ZERO_RETURN);
	bw_tls_conn_free(&sv);
	SSL_free(cl);

	/* The client's reaches the server as BW_TLS_CLOSED. */
	cl = client_new(x, NULL, NULL, NULL);
	sv = bw_tls_conn_new(t);
	assert_int_equal(pump(cl, sv, &got, why), 0);
	client_read(cl, buf, sizeof(buf));
	assert_int_equal(SSL_shutdown(cl), 0);
	assert_int_equal(pump(cl, sv, &got, why), BW_TLS_CLOSED);
	bw_tls_conn_free(&sv);
	SSL_free(cl);

	/* Before the handshake, shutting down queues nothing. */
	sv = bw_tls_conn_new(t);
	bw_tls_conn_shutdown(sv);
	assert_int_equal(bw_tls_conn_output_bytes(sv), 0);
	bw_tls_conn_free(&sv);
	SSL_CTX_free(x);
	bw_tls_ctx_free(&t);
}

/* 64 KiB out as one buffer, whose memory is reused while more follows. */
static void test_output_hand_off(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	static uint8_t big[65536], back[65536];
	char why[BW_TLS_WHY_MAX];
	uint8_t *out, *out2;
	size_t len;
	(void)state;
	assert_int_equal(pump(cl, sv, &got, why), 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	assert_false(bw_tls_conn_take_output(sv, &out, &len));
	assert_int_equal(bw_tls_conn_write(sv, big, sizeof(big)), 0);
	assert_true(bw_tls_conn_output_bytes(sv) > sizeof(big));
	assert_true(bw_tls_conn_take_output(sv, &out, &len));
	assert_true(len > sizeof(big));
	assert_int_equal(bw_tls_conn_output_bytes(sv), 0);
	assert_int_equal(BIO_write(SSL_get_rbio(cl), out, (int)len), (int)len);
	bw_tls_conn_give_back(sv, out, true);
	assert_int_equal(bw_tls_conn_write(sv, "tail", 4), 0);
	assert_true(bw_tls_conn_take_output(sv, &out2, &len));
	assert_ptr_equal(out2, out); /* kept for the next output */
	assert_int_equal(BIO_write(SSL_get_rbio(cl), out2, (int)len), (int)len);
	bw_tls_conn_give_back(sv, out2, false);
	assert_int_equal(client_read(cl, back, sizeof(back)), sizeof(back));
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(client_read(cl, back, sizeof(back)), 4);
	assert_memory_equal(back, "tail", 4);
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	SSL_CTX_free(x);
	bw_tls_ctx_free(&t);
}

/* A sink's error stops the feed and comes back. */
static int refusing_sink(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return -ENOMEM;
}

static void test_sink_error(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_NONE, false, false);
	SSL_CTX *x = client_ctx(NULL, NULL, 0);
	SSL *cl = client_new(x, NULL, NULL, NULL);
	struct bw_tls_conn *sv = bw_tls_conn_new(t);
	static struct got got;
	char why[BW_TLS_WHY_MAX], buf[256];
	(void)state;
	assert_int_equal(pump(cl, sv, &got, why), 0);
	assert_int_equal(SSL_write(cl, "abc", 3), 3);
	int n = BIO_read(SSL_get_wbio(cl), buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(bw_tls_conn_input(sv, (uint8_t *)buf, (size_t)n, refusing_sink, NULL, why),
	                 -ENOMEM);
	bw_tls_conn_free(&sv);
	SSL_free(cl);
	SSL_CTX_free(x);
	bw_tls_ctx_free(&t);
}

/* ---- tenant CAs ------------------------------------------------------------ */

/* The file's text (the caller frees it). */
static char *read_text(const char *name)
{
	FILE *f = fopen(path(name), "r");
	assert_non_null(f);
	char *s = calloc(1, 16384);
	assert_non_null(s);
	size_t n = fread(s, 1, 16383, f);
	assert_true(n > 0 && n < 16383);
	fclose(f);
	return s;
}

/* The SHA-256 of the first certificate of the file. */
static void fingerprint(const char *name, uint8_t out[32])
{
	unsigned n = 0;
	FILE *f = fopen(path(name), "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	assert_true(X509_digest(x, EVP_sha256(), out, &n) && n == 32);
	X509_free(x);
}

/* A client of x on a new connection of t, kept open for the test to look at. */
struct pair {
	SSL *cl;
	struct bw_tls_conn *sv;
};

/*
 * The handshake and one byte of data (as try_client()), resuming sess
 * (NULL: none). Returns the server's input result; close_pair() either way.
 */
static int open_pair(struct pair *p, struct bw_tls_ctx *t, SSL_CTX *x, SSL_SESSION *sess, char *why)
{
	static struct got got;
	p->cl = client_new(x, NULL, NULL, sess);
	p->sv = bw_tls_conn_new(t);
	assert_non_null(p->sv);
	why[0] = 0;
	got.len = 0;
	int rc = pump(p->cl, p->sv, &got, why);
	if (rc == 0) {
		assert_int_equal(SSL_write(p->cl, "x", 1), 1);
		rc = pump(p->cl, p->sv, &got, why);
		if (rc == 0 && !(bw_tls_conn_ready(p->sv) && got.len == 1))
			rc = -EAGAIN;
	}
	return rc;
}

static void close_pair(struct pair *p)
{
	bw_tls_conn_free(&p->sv);
	SSL_free(p->cl);
	p->cl = NULL;
}

/* The one fingerprint a verified client's chain has. */
static void expect_one_fp(struct bw_tls_conn *sv, const uint8_t want[32])
{
	uint8_t fps[4][32];
	assert_int_equal(bw_tls_conn_chain_fps(sv, fps, 4), 1);
	assert_memory_equal(fps[0], want, 32);
}

static void test_tenant_cas(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_REQUIRED, false, false);
	SSL_CTX *xa = client_ctx("client.pem", "client.key", 0);
	SSL_CTX *xb = client_ctx("other.pem", "client.key", 0);
	char *b = read_text("other-ca.pem");
	char err[512], why[BW_TLS_WHY_MAX];
	uint8_t fps[4][32], fp_a[32], fp_b[32];
	struct pair before, p;
	static struct got got;
	(void)state;
	fingerprint("ca.pem", fp_a);
	fingerprint("other-ca.pem", fp_b);

	/* Only the listener's CA A: B's client is refused. */
	assert_int_equal(open_pair(&p, t, xb, NULL, why), -EPROTO);
	assert_non_null(strstr(why, "unable to get local issuer certificate"));
	assert_int_equal(bw_tls_conn_chain_fps(p.sv, fps, 4), 0);
	close_pair(&p);
	assert_int_equal(open_pair(&before, t, xa, NULL, why), 0);

	/* B as one tenant's CA, the others without any. */
	const char *bundles[] = { NULL, "", b };
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, bundles, 3, err, sizeof(err)), 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), 0);
	expect_one_fp(p.sv, fp_b);
	assert_int_equal(bw_tls_conn_chain_fps(p.sv, fps, 0), 0);
	/* The CertificateRequest names A only. */
	STACK_OF(X509_NAME) *names = SSL_get_client_CA_list(p.cl);
	assert_int_equal(sk_X509_NAME_num(names), 1);
	char cn[64];
	X509_NAME_get_text_by_NID(sk_X509_NAME_value(names, 0), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "Test CA");
	close_pair(&p);
	assert_int_equal(open_pair(&p, t, xa, NULL, why), 0);
	expect_one_fp(p.sv, fp_a);
	close_pair(&p);

	/* The connection from before the change goes on. */
	assert_int_equal(SSL_write(before.cl, "still", 5), 5);
	got.len = 0;
	assert_int_equal(pump(before.cl, before.sv, &got, why), 0);
	assert_int_equal(got.len, 5);
	expect_one_fp(before.sv, fp_a);
	close_pair(&before);

	/* A bundle that does not parse is refused by its index; B stays. */
	const char *no_cert[] = { b, "not PEM at all\n" };
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, no_cert, 2, err, sizeof(err)), -1);
	assert_string_equal(err, "tenant CA bundle 1: no certificate");
	char *broken = calloc(1, strlen(b) + 128);
	assert_non_null(broken);
	strcpy(broken, b);
	strcat(broken, "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n");
	const char *bad[] = { b, "", broken };
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, bad, 3, err, sizeof(err)), -1);
	if (!strstr(err, "tenant CA bundle 2, certificate 2: "))
		fail_msg("err: %s", err);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), 0);
	close_pair(&p);

	/* A reload keeps them. */
	assert_int_equal(bw_tls_ctx_reload(t, err, sizeof(err)), 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), 0);
	expect_one_fp(p.sv, fp_b);
	close_pair(&p);

	/* None: B's client is refused again, A's is not. */
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), -EPROTO);
	close_pair(&p);
	assert_int_equal(open_pair(&p, t, xa, NULL, why), 0);
	close_pair(&p);
	free(broken);
	free(b);
	SSL_CTX_free(xa);
	SSL_CTX_free(xb);
	bw_tls_ctx_free(&t);
}

/*
 * A tenant bundle of an issuing CA and its root: the chain is reported
 * issuer first, root last, and resumed sessions (twice over) report it
 * too; a tenant change ends resumption. A self-signed device registered
 * as its own anchor reports itself.
 */
static void test_tenant_chain_and_resumption(void **state)
{
	int versions[] = { 0, TLS1_2_VERSION };
	char err[512], why[BW_TLS_WHY_MAX];
	uint8_t buf[64], fps[4][32], fp_issuing[32], fp_root[32], fp_self[32];
	(void)state;
	fingerprint("tenant-c-issuing.pem", fp_issuing);
	fingerprint("tenant-c-root.pem", fp_root);
	fingerprint("self.pem", fp_self);
	char *issuing = read_text("tenant-c-issuing.pem"), *root = read_text("tenant-c-root.pem");
	char *bundle = calloc(1, strlen(issuing) + strlen(root) + 1);
	assert_non_null(bundle);
	strcat(strcat(bundle, issuing), root);
	for (int v = 0; v < 2; v++) {
		struct bw_tls_ctx *t = server(BW_TLS_AUTH_OPTIONAL, false, false);
		SSL_CTX *x = client_ctx("device-c.pem", "client.key", versions[v]);
		SSL_SESSION *sess = NULL;
		struct pair p;
		const char *one[] = { bundle };
		assert_int_equal(bw_tls_ctx_set_tenant_cas(t, one, 1, err, sizeof(err)), 0);
		for (int round = 0; round < 4; round++) {
			if (round == 3) /* new ticket keys: a full handshake */
				assert_int_equal(
				        bw_tls_ctx_set_tenant_cas(t, one, 1, err, sizeof(err)), 0);
			assert_int_equal(open_pair(&p, t, x, sess, why), 0);
			assert_int_equal(SSL_session_reused(p.cl), round == 1 || round == 2);
			assert_int_equal(bw_tls_conn_chain_fps(p.sv, fps, 4), 2);
			assert_memory_equal(fps[0], fp_issuing, 32);
			assert_memory_equal(fps[1], fp_root, 32);
			assert_int_equal(bw_tls_conn_chain_fps(p.sv, fps, 1), 1);
			assert_memory_equal(fps[0], fp_issuing, 32);
			client_read(p.cl, buf, sizeof(buf)); /* TLS 1.3 tickets */
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(p.cl);
			(void)SSL_shutdown(p.cl);
			close_pair(&p);
		}
		SSL_SESSION_free(sess);
		SSL_CTX_free(x);

		/* Without a client certificate, resumed or not: none. */
		x = client_ctx(NULL, NULL, versions[v]);
		sess = NULL;
		for (int round = 0; round < 2; round++) {
			assert_int_equal(open_pair(&p, t, x, sess, why), 0);
			assert_int_equal(SSL_session_reused(p.cl), round == 1);
			assert_int_equal(bw_tls_conn_chain_fps(p.sv, fps, 4), 0);
			client_read(p.cl, buf, sizeof(buf));
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(p.cl);
			(void)SSL_shutdown(p.cl);
			close_pair(&p);
		}
		SSL_SESSION_free(sess);
		SSL_CTX_free(x);

		/* A device trusted as itself. */
		char *self = read_text("self.pem");
		const char *selfs[] = { self };
		assert_int_equal(bw_tls_ctx_set_tenant_cas(t, selfs, 1, err, sizeof(err)), 0);
		x = client_ctx("self.pem", "client.key", versions[v]);
		assert_int_equal(open_pair(&p, t, x, NULL, why), 0);
		expect_one_fp(p.sv, fp_self);
		close_pair(&p);
		SSL_CTX_free(x);
		free(self);
		bw_tls_ctx_free(&t);
	}
	free(issuing);
	free(root);
	free(bundle);
}

/* With tls_crl, a chain to a tenant CA needs that CA's CRL in the file too. */
static void test_tenant_cas_and_crls(void **state)
{
	struct bw_tls_config cfg = {
		.name = "127.0.0.1:8883",
		.cert_file = path("server.pem"),
		.key_file = path("server.key"),
		.client_ca_file = path("ca.pem"),
		.crl_file = path("crl.pem"),
		.client_auth = BW_TLS_AUTH_REQUIRED,
	};
	SSL_CTX *xb = client_ctx("other.pem", "client.key", 0);
	char *b = read_text("other-ca.pem");
	const char *one[] = { b };
	char err[512], why[BW_TLS_WHY_MAX];
	struct bw_tls_ctx *t;
	struct pair p;
	(void)state;
	assert_int_equal(bw_tls_ctx_new(&t, &cfg, err, sizeof(err)), 0);
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, one, 1, err, sizeof(err)), 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), -EPROTO);
	assert_non_null(strstr(why, "unable to get certificate CRL"));
	close_pair(&p);
	bw_tls_ctx_free(&t);

	cfg.crl_file = path("crl-both.pem");
	assert_int_equal(bw_tls_ctx_new(&t, &cfg, err, sizeof(err)), 0);
	assert_int_equal(bw_tls_ctx_set_tenant_cas(t, one, 1, err, sizeof(err)), 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), 0);
	close_pair(&p);
	assert_int_equal(try_client(t, "revoked.pem", "client.key", 0, why), -EPROTO);
	assert_non_null(strstr(why, "certificate revoked"));
	bw_tls_ctx_free(&t);
	free(b);
	SSL_CTX_free(xb);
}

struct churn {
	struct bw_tls_ctx *t;
	const char *b;
	int failures; /* cmocka's asserts are for the main thread */
};

/* Tenant changes, ending with B in force. */
static void *churn_tenants(void *arg)
{
	struct churn *ch = arg;
	char err[512];
	for (int i = 0; i < 20; i++) {
		const char *one[] = { i % 2 ? ch->b : NULL };
		if (bw_tls_ctx_set_tenant_cas(ch->t, one, 1, err, sizeof(err)))
			ch->failures++;
	}
	return NULL;
}

static void *churn_reloads(void *arg)
{
	struct churn *ch = arg;
	char err[512];
	for (int i = 0; i < 20; i++) {
		if (bw_tls_ctx_reload(ch->t, err, sizeof(err)))
			ch->failures++;
	}
	return NULL;
}

/*
 * Tenant changes and reloads from two threads while connections are made
 * (for TSan): every A client gets through, and the last tenant set is the
 * one in force.
 */
static void test_tenant_cas_across_threads(void **state)
{
	struct bw_tls_ctx *t = server(BW_TLS_AUTH_REQUIRED, false, false);
	SSL_CTX *xa = client_ctx("client.pem", "client.key", 0);
	SSL_CTX *xb = client_ctx("other.pem", "client.key", 0);
	char *b = read_text("other-ca.pem");
	struct churn tenants = { .t = t, .b = b }, reloads = { .t = t, .b = b };
	char why[BW_TLS_WHY_MAX];
	uint8_t fp_a[32];
	pthread_t th[2];
	struct pair p;
	(void)state;
	fingerprint("ca.pem", fp_a);
	assert_int_equal(pthread_create(&th[0], NULL, churn_tenants, &tenants), 0);
	assert_int_equal(pthread_create(&th[1], NULL, churn_reloads, &reloads), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(open_pair(&p, t, xa, NULL, why), 0);
		expect_one_fp(p.sv, fp_a);
		close_pair(&p);
	}
	assert_int_equal(pthread_join(th[0], NULL), 0);
	assert_int_equal(pthread_join(th[1], NULL), 0);
	assert_int_equal(tenants.failures + reloads.failures, 0);
	assert_int_equal(open_pair(&p, t, xb, NULL, why), 0);
	close_pair(&p);
	free(b);
	SSL_CTX_free(xa);
	SSL_CTX_free(xb);
	bw_tls_ctx_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_context_errors_name_the_file),
		cmocka_unit_test(test_handshake_alpn_sni_and_data),
		cmocka_unit_test(test_not_tls),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_client_certificates),
		cmocka_unit_test(test_peer_certificate_accessors),
		cmocka_unit_test(test_session_tickets),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_close_notify),
		cmocka_unit_test(test_output_hand_off),
		cmocka_unit_test(test_sink_error),
		cmocka_unit_test(test_tenant_cas),
		cmocka_unit_test(test_tenant_chain_and_resumption),
		cmocka_unit_test(test_tenant_cas_and_crls),
		cmocka_unit_test(test_tenant_cas_across_threads),
	};
	return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
