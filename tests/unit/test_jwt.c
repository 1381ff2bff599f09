/*
 * Unit tests for JWT verification (tenancy/auth/jwt.h). The group setup
 * makes a scratch directory and mints every key there with the openssl
 * command line (RSA 2048 and 1024, EC P-256 and P-384, Ed25519, an HMAC
 * secret, a self-signed certificate); tokens are signed in the tests with
 * `openssl dgst` and `openssl pkeyutl`, so the verifier is checked against
 * an independent signer rather than against itself. ES* signatures come
 * out of openssl as DER and are turned into JOSE r || s here.
 *
 * Every negative case starts from a token that verifies, shown to verify
 * in the same test, and changes one thing: so a failure can only come from
 * the check under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenancy/auth/jwt.h"

#ifndef BW_OPENSSL_BIN
#define BW_OPENSSL_BIN "openssl"
#endif

/* The clock every test runs at: 2023-11-14T22:13:20Z. */
#define NOW INT64_C(1700000000)

static char dir[64];

/* dir/name in a static ring of buffers, so a call can use a few at once. */
static const char *at(const char *name)
{
	static char ring[8][256];
	static unsigned next;
	char *p = ring[next++ % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s", dir, name);
	return p;
}

/* Runs a shell command (stderr to dir/openssl.log); fails the test unless it exits 0. */
static void run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 64, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(cmd) - 64);
	snprintf(cmd + n, 64, " 2>>'%s'", at("openssl.log"));
	if (system(cmd) != 0)
		fail_msg("command failed (see %s): %.300s", at("openssl.log"), cmd);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);
	size_t n;

	assert_non_null(fp);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	*len = n;
	return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Writes data to path through a new file and rename(), as deployments should. */
static void replace_file(const char *path, const char *data)
{
	char tmp[300];

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	spit(tmp, data, strlen(data));
	assert_int_equal(rename(tmp, path), 0);
}

/* ---- base64url, written here from RFC 4648 ---------------------------------- */

static char *b64url(const uint8_t *in, size_t len)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;

	assert_non_null(out);
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = abc[v >> 18];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (len - i == 1) {
		out[o++] = abc[in[i] >> 2];
		out[o++] = abc[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
		out[o++] = abc[v >> 10];
		out[o++] = abc[v >> 4 & 63];
		out[o++] = abc[(v & 15) << 2];
	}
	out[o] = 0;
	return out;
}

static char *b64s(const char *s)
{
	return b64url((const uint8_t *)s, strlen(s));
}

static char *cat3(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "%s.%s.%s", a, b, c);
	return s;
}

/* ---- minting tokens with the openssl command line ---------------------------- */

/* DER ECDSA-Sig-Value in sig[0..*len) to JOSE r || s of half bytes each. */
static void der_to_raw(uint8_t *sig, size_t *len, int half)
{
	const uint8_t *p = sig;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)*len);
	const BIGNUM *r, *s;
	uint8_t raw[2 * 66];

	assert_non_null(es);
	ECDSA_SIG_get0(es, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, half), half);
	assert_int_equal(BN_bn2binpad(s, raw + half, half), half);
	ECDSA_SIG_free(es);
	memcpy(sig, raw, 2 * (size_t)half);
	*len = 2 * (size_t)half;
}

/*
 * The JOSE signature of input for alg with key: a private key PEM, or for
 * HS* a file whose bytes are the secret.
 */
/* The PSS salt length sign() asks openssl for: RFC 7518 3.5 wants "digest". */
static const char *pss_saltlen = "digest";

static uint8_t *sign(const char *alg, const char *key, const char *input, size_t *sig_len)
{
	const char *in = at("input"), *out = at("sig");
	uint8_t *sig;
	char md[8];

	spit(in, input, strlen(input));
	unlink(out);
	snprintf(md, sizeof(md), "-sha%s", alg + 2);
	if (alg[0] == 'H') {
		size_t n;
		uint8_t *secret = slurp(key, &n);
		char *hex = malloc(2 * n + 1);
		assert_non_null(hex);
		for (size_t i = 0; i < n; i++)
			snprintf(hex + 2 * i, 3, "%02x", secret[i]);
		run("%s dgst %s -mac HMAC -macopt hexkey:%s -binary -out '%s' '%s'", BW_OPENSSL_BIN,
		    md, hex, out, in);
		free(hex);
		free(secret);
	} else if (alg[0] == 'R') {
		run("%s dgst %s -sign '%s' -out '%s' '%s'", BW_OPENSSL_BIN, md, key, out, in);
	} else if (alg[0] == 'P') {
		run("%s dgst %s -sign '%s' -sigopt rsa_padding_mode:pss "
		    "-sigopt rsa_pss_saltlen:%s -out '%s' '%s'",
		    BW_OPENSSL_BIN, md, key, pss_saltlen, out, in);
	} else if (strncmp(alg, "ES", 2) == 0) {
		run("%s dgst %s -sign '%s' -out '%s' '%s'", BW_OPENSSL_BIN, md, key, out, in);
	} else {
		assert_string_equal(alg, "EdDSA");
		run("%s pkeyutl -sign -inkey '%s' -rawin -in '%s' -out '%s'", BW_OPENSSL_BIN, key,
		    in, out);
	}
	sig = slurp(out, sig_len);
	if (strcmp(alg, "ES256") == 0)
		der_to_raw(sig, sig_len, 32);
	if (strcmp(alg, "ES384") == 0)
		der_to_raw(sig, sig_len, 48);
	return sig;
}

/* header.payload (already base64url) signed by sign(); the caller frees it. */
static char *mint_b64(const char *alg, const char *key, const char *h, const char *p)
{
	char *input = malloc(strlen(h) + strlen(p) + 2), *s64, *token;
	uint8_t *sig;
	size_t sig_len;

	assert_non_null(input);
	sprintf(input, "%s.%s", h, p);
	sig = sign(alg, key, input, &sig_len);
	s64 = b64url(sig, sig_len);
	token = cat3(h, p, s64);
	free(s64);
	free(sig);
	free(input);
	return token;
}

/* A token with header and payload as given (JSON text). */
static char *mint(const char *alg, const char *key, const char *header, const char *payload)
{
	char *h = b64s(header), *p = b64s(payload);
	char *token = mint_b64(alg, key, h, p);

	free(h);
	free(p);
	return token;
}

/* The usual header ({"alg", "typ"} and "kid" when kid is not NULL). */
static char *mint_kid(const char *alg, const char *key, const char *kid, const char *payload)
{
	char header[300];

	if (kid)
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		         alg, kid);
	else
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	return mint(alg, key, header, payload);
}

/* A payload that passes the default policy at NOW, with extra members. */
static const char *claims(const char *extra)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
	         "{\"sub\":\"alice\",\"iss\":\"https://idp.example\",\"exp\":%lld,"
	         "\"iat\":%lld,\"nbf\":%lld%s%s}",
	         (long long)(NOW + 3600), (long long)(NOW - 10), (long long)(NOW - 10),
	         extra && extra[0] ? "," : "", extra ? extra : "");
	return buf;
}

/* ---- verifying ---------------------------------------------------------------- */

static const struct bw_jwt_policy default_policy;

static int verify_line(int line, const struct bw_jwt_keys *keys, const struct bw_jwt_policy *pol,
                       const char *token, size_t len, int expect)
{
	struct bw_jwt_claims *c = (struct bw_jwt_claims *)&c; /* must be overwritten */
	const char *why = NULL;
	int rc = bw_jwt_verify(keys, pol ? pol : &default_policy, token, len, NOW, &c, &why);

	if (rc != expect)
		fail_msg("line %d: bw_jwt_verify = %d (%s), expected %d", line, rc,
		         why ? why : "(no why)", expect);
	assert_non_null(why);
	if (rc == 0)
		assert_non_null(c);
	else
		assert_null(c);
	bw_jwt_claims_free(&c);
	assert_null(c);
	return rc;
}

#define VERIFY(keys, pol, token, expect)                                                           \
	verify_line(__LINE__, keys, pol, token, strlen(token), expect)

/* A set holding the one key at path for alg (kid may be NULL). */
static struct bw_jwt_keys *keys_with(const char *path, const char *alg, const char *kid)
{
	struct bw_jwt_keys *keys = bw_jwt_keys_new();
	char err[256] = "";

	assert_non_null(keys);
	if (bw_jwt_keys_add_pem(keys, path, alg, kid, err, sizeof(err)) != 0)
		fail_msg("bw_jwt_keys_add_pem(%s, %s): %s", path, alg, err);
	return keys;
}

static EVP_PKEY *load_private(const char *pem)
{
	BIO *bio = BIO_new_file(pem, "r");
	EVP_PKEY *pkey;

	assert_non_null(bio);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pkey);
	return pkey;
}

static char *bn_b64(const EVP_PKEY *pkey, const char *param, int pad)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	assert_true(EVP_PKEY_get_bn_param(pkey, param, &bn));
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	BN_free(bn);
	return b64url(buf, (size_t)n);
}

/*
 * The public JWK of the private key in pem, as JSON text, with kid (NULL:
 * none) and extra members ("" for none) appended; the caller frees it.
 */
static char *jwk_of(const char *pem, const char *kid, const char *extra)
{
	EVP_PKEY *pkey = load_private(pem);
	char *a = NULL, *b = NULL, *out = malloc(4096), kidm[300] = "";

	assert_non_null(out);
	if (kid)
		snprintf(kidm, sizeof(kidm), ",\"kid\":\"%s\"", kid);
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		a = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_N, 0);
		b = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
		snprintf(out, 4096, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s%s}", a, b, kidm,
		         extra[0] ? "," : "", extra);
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		int size = EVP_PKEY_get_bits(pkey) == 256 ? 32 : 48;
		a = bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size);
		b = bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size);
		snprintf(out, 4096,
		         "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s%s}",
		         size == 32 ? "P-256" : "P-384", a, b, kidm, extra[0] ? "," : "", extra);
	} else {
		uint8_t raw[32];
		size_t n = sizeof(raw);
		assert_true(EVP_PKEY_is_a(pkey, "ED25519"));
		assert_true(EVP_PKEY_get_raw_public_key(pkey, raw, &n));
		a = b64url(raw, n);
		snprintf(out, 4096, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s%s%s}", a,
		         kidm, extra[0] ? "," : "", extra);
	}
	free(a);
	free(b);
	EVP_PKEY_free(pkey);
	return out;
}

/* The oct JWK of the secret file at path. */
static char *jwk_oct(const char *path, const char *kid, const char *extra)
{
	size_t n;
	uint8_t *secret = slurp(path, &n);
	char *k = b64url(secret, n), *out = malloc(4096);

	assert_non_null(out);
	snprintf(out, 4096, "{\"kty\":\"oct\",\"k\":\"%s\",\"kid\":\"%s\"%s%s}", k, kid,
	         extra[0] ? "," : "", extra);
	free(k);
	free(secret);
	return out;
}

static int setup(void **state)
{
	const char *o = BW_OPENSSL_BIN;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bw-test-jwt-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	run("%s genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s'", o,
	    at("rsa.pem"));
	run("%s pkey -in '%s' -pubout -out '%s'", o, at("rsa.pem"), at("rsa.pub"));
	run("%s req -new -x509 -key '%s' -subj /CN=bulwark-test -days 2 -out '%s'", o,
	    at("rsa.pem"), at("rsa.crt"));
	run("%s genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out '%s'", o,
	    at("rsa1024.pem"));
	run("%s pkey -in '%s' -pubout -out '%s'", o, at("rsa1024.pem"), at("rsa1024.pub"));
	run("%s genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s'", o,
	    at("ec256.pem"));
	run("%s pkey -in '%s' -pubout -out '%s'", o, at("ec256.pem"), at("ec256.pub"));
	run("%s genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out '%s'", o,
	    at("ec384.pem"));
	run("%s pkey -in '%s' -pubout -out '%s'", o, at("ec384.pem"), at("ec384.pub"));
	run("%s genpkey -algorithm ED25519 -out '%s'", o, at("ed.pem"));
	run("%s pkey -in '%s' -pubout -out '%s'", o, at("ed.pem"), at("ed.pub"));
	run("%s rand -out '%s' 64", o, at("hs.key"));
	run("%s rand -out '%s' 16", o, at("hs16.key"));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- base64url ------------------------------------------------------------------ */

static void b64_is(int line, const char *in, size_t len, int expect, const char *want,
                   size_t want_len)
{
	uint8_t out[64];
	size_t n = 99;
	int rc = bw_jwt_b64url_decode(in, len, out, sizeof(out), &n);

	if (rc != expect)
		fail_msg("line %d: decode(\"%.*s\") = %d, expected %d", line, (int)len, in, rc,
		         expect);
	if (rc == 0 && (n != want_len || memcmp(out, want, n) != 0))
		fail_msg("line %d: decode(\"%.*s\") gave the wrong bytes", line, (int)len, in);
	if (rc != 0)
		assert_int_equal(n, 0);
}

#define B64_OK(in, want) b64_is(__LINE__, in, strlen(in), 0, want, sizeof(want) - 1)
#define B64_BAD(in)      b64_is(__LINE__, in, sizeof(in) - 1, -EINVAL, NULL, 0)

static void test_b64url_vectors(void **state)
{
	(void)state;
	/* RFC 4648 10, without padding. */
	B64_OK("", "");
	B64_OK("Zg", "f");
	B64_OK("Zm8", "fo");
	B64_OK("Zm9v", "foo");
	B64_OK("Zm9vYg", "foob");
	B64_OK("Zm9vYmE", "fooba");
	B64_OK("Zm9vYmFy", "foobar");
	/* The two characters that differ from base64. */
	B64_OK("-_-_", "\xfb\xff\xbf");
	B64_OK("AAAA", "\0\0\0");

	B64_BAD("Zg=="); /* padding */
	B64_BAD("Zm8=");
	B64_BAD("Zm9v====");
	B64_BAD("Z"); /* 4n + 1 characters */
	B64_BAD("Zm9vY");
	B64_BAD("Zh");   /* non-zero unused bits: "f" is only ever "Zg" */
	B64_BAD("Zm9");  /* "fo" is only ever "Zm8" */
	B64_BAD("Zm+v"); /* base64, not base64url */
	B64_BAD("Zm/v");
	B64_BAD("Zm9 v");
	B64_BAD("Zm9\nv");
	B64_BAD("Zm\0v");      /* a NUL inside the length */
	B64_BAD("Zm\xc3\xa9"); /* bytes outside ASCII */
	B64_BAD("Zm.v");
}

static void test_b64url_bounds(void **state)
{
	uint8_t out[8];
	size_t n;

	(void)state;
	assert_int_equal(bw_jwt_b64url_decode("Zm9v", 4, out, 2, &n), -ENOBUFS);
	assert_int_equal(bw_jwt_b64url_decode("Zm9v", 4, out, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(bw_jwt_b64url_decode("Zm8", 3, out, 1, &n), -ENOBUFS);
	assert_int_equal(bw_jwt_b64url_decode("Zm8", 3, out, 2, &n), 0);
	assert_int_equal(bw_jwt_b64url_decode(NULL, 0, out, 0, &n), 0);
	assert_int_equal(n, 0);
	for (size_t len = 0; len < 64; len++)
		assert_true(BW_JWT_B64URL_DECODED_MAX(len) >= len * 3 / 4);
}

/* Every byte string of lengths 0..40 with varied contents round-trips. */
static void test_b64url_roundtrip(void **state)
{
	uint8_t in[40], out[40];
	size_t n;

	(void)state;
	for (unsigned seed = 0; seed < 64; seed++) {
		for (size_t len = 0; len <= sizeof(in); len++) {
			for (size_t i = 0; i < len; i++)
				in[i] = (uint8_t)(seed * 131 + i * 29 + (seed ? i * i : 0xff));
			char *enc = b64url(in, len);
			assert_int_equal(
			        bw_jwt_b64url_decode(enc, strlen(enc), out, sizeof(out), &n), 0);
			assert_int_equal(n, len);
			assert_memory_equal(out, in, len);
			free(enc);
		}
	}
}

/* ---- one valid token per algorithm ---------------------------------------------- */

static void valid_for(const char *alg, const char *private_key, const char *public_key)
{
	struct bw_jwt_keys *keys = keys_with(public_key, alg, NULL);
	char *token = mint_kid(alg, private_key, NULL, claims("\"tenant\":\"acme\""));
	struct bw_jwt_claims *c = NULL;
	const char *why = NULL;
	int rc = bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, &c, &why);

	if (rc != 0)
		fail_msg("%s: %d (%s)", alg, rc, why);
	assert_string_equal(why, "ok");
	assert_string_equal(bw_jwt_claims_sub(c), "alice");
	assert_string_equal(bw_jwt_claim_string(c, "tenant"), "acme");
	assert_int_equal(bw_jwt_claims_exp(c), NOW + 3600);
	bw_jwt_claims_free(&c);
	/* out may be NULL: verify only. */
	assert_int_equal(
	        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, NULL), 0);
	free(token);
	bw_jwt_keys_free(&keys);
	assert_null(keys);
}

static void test_valid_hs(void **state)
{
	(void)state;
	valid_for("HS256", at("hs.key"), at("hs.key"));
	valid_for("HS384", at("hs.key"), at("hs.key"));
	valid_for("HS512", at("hs.key"), at("hs.key"));
}

static void test_valid_rs(void **state)
{
	(void)state;
	valid_for("RS256", at("rsa.pem"), at("rsa.pub"));
	valid_for("RS384", at("rsa.pem"), at("rsa.pub"));
	valid_for("RS512", at("rsa.pem"), at("rsa.pub"));
	/* A certificate is only a container for the key. */
	valid_for("RS256", at("rsa.pem"), at("rsa.crt"));
}

static void test_valid_ps(void **state)
{
	(void)state;
	valid_for("PS256", at("rsa.pem"), at("rsa.pub"));
	valid_for("PS384", at("rsa.pem"), at("rsa.pub"));
	valid_for("PS512", at("rsa.pem"), at("rsa.pub"));
}

/* RFC 7518 3.5: the salt is as long as the hash; other lengths are refused. */
static void test_ps_salt_length(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("rsa.pub"), "PS256", NULL);
	char *digest = mint_kid("PS256", at("rsa.pem"), NULL, claims(NULL));
	char *max, *zero;

	(void)state;
	pss_saltlen = "max";
	max = mint_kid("PS256", at("rsa.pem"), NULL, claims(NULL));
	pss_saltlen = "0";
	zero = mint_kid("PS256", at("rsa.pem"), NULL, claims(NULL));
	pss_saltlen = "digest";
	VERIFY(keys, NULL, digest, 0);
	VERIFY(keys, NULL, max, -EKEYREJECTED);
	VERIFY(keys, NULL, zero, -EKEYREJECTED);
	free(digest);
	free(max);
	free(zero);
	bw_jwt_keys_free(&keys);
}

static void test_valid_es_eddsa(void **state)
{
	(void)state;
	valid_for("ES256", at("ec256.pem"), at("ec256.pub"));
	valid_for("ES384", at("ec384.pem"), at("ec384.pub"));
	valid_for("EdDSA", at("ed.pem"), at("ed.pub"));
}

/* ---- time claims ------------------------------------------------------------------ */

/* An HS256 token at hs.key with exactly these claims (JSON members). */
static char *hs_token(const char *members)
{
	size_t n = strlen(members) + 3;
	char *payload = malloc(n), *token;

	assert_non_null(payload);
	snprintf(payload, n, "{%s}", members);
	token = mint_kid("HS256", at("hs.key"), NULL, payload);
	free(payload);
	return token;
}

static void time_case(int line, struct bw_jwt_keys *keys, const char *fmt, long long t,
                      int expect_strict, int64_t leeway_ok)
{
	struct bw_jwt_policy lenient = { .leeway_s = leeway_ok };
	char members[256];
	char *token;

	snprintf(members, sizeof(members), fmt, t);
	token = hs_token(members);
	verify_line(line, keys, NULL, token, strlen(token), expect_strict);
	verify_line(line, keys, &lenient, token, strlen(token), 0);
	free(token);
}

static void test_times(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	long long now = NOW;

	(void)state;
	/* The baseline passes: each case below changes one claim. */
	time_case(__LINE__, keys, "\"exp\":%lld", now + 1, 0, 0);
	/* exp: the token is valid strictly before exp (RFC 7519 4.1.4). */
	time_case(__LINE__, keys, "\"exp\":%lld", now, -EKEYEXPIRED, 1);
	time_case(__LINE__, keys, "\"exp\":%lld", now - 10, -EKEYEXPIRED, 11);
	/* nbf: valid from nbf on. */
	time_case(__LINE__, keys, "\"exp\":9999999999,\"nbf\":%lld", now, 0, 0);
	time_case(__LINE__, keys, "\"exp\":9999999999,\"nbf\":%lld", now + 1, -EACCES, 1);
	time_case(__LINE__, keys, "\"exp\":9999999999,\"nbf\":%lld", now + 100, -EACCES, 100);
	/* iat in the future beyond the leeway. */
	time_case(__LINE__, keys, "\"exp\":9999999999,\"iat\":%lld", now, 0, 0);
	time_case(__LINE__, keys, "\"exp\":9999999999,\"iat\":%lld", now + 100, -EACCES, 100);
	/* Fractions round toward refusal: exp down, nbf and iat up. */
	time_case(__LINE__, keys, "\"exp\":%lld.5", now, -EKEYEXPIRED, 1);
	time_case(__LINE__, keys, "\"exp\":%lld.5", now + 1, 0, 0);
	time_case(__LINE__, keys, "\"exp\":9999999999,\"nbf\":%lld.25", now, -EACCES, 1);
	time_case(__LINE__, keys, "\"exp\":9999999999,\"iat\":%lld.25", now, -EACCES, 1);
	bw_jwt_keys_free(&keys);
}

static void test_exp_required(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	struct bw_jwt_policy optional = { .exp_optional = true };
	struct bw_jwt_claims *c = NULL;
	char *token = hs_token("\"sub\":\"bob\"");

	(void)state;
	VERIFY(keys, NULL, token, -EACCES);
	VERIFY(keys, &optional, token, 0);
	assert_int_equal(bw_jwt_verify(keys, &optional, token, strlen(token), NOW, &c, NULL), 0);
	assert_int_equal(bw_jwt_claims_exp(c), 0);
	assert_string_equal(bw_jwt_claims_sub(c), "bob");
	bw_jwt_claims_free(&c);
	free(token);
	bw_jwt_keys_free(&keys);
}

/* Numeric claims that are not NumericDates, and string claims that are not strings. */
static void test_claim_types(void **state)
{
	static const char *const bad[] = {
		"\"exp\":\"9999999999\"",
		"\"exp\":true",
		"\"exp\":null",
		"\"exp\":[9999999999]",
		"\"exp\":{}",
		"\"exp\":-1",
		"\"exp\":1e300",
		"\"exp\":253402300800",
		"\"exp\":9999999999,\"nbf\":\"0\"",
		"\"exp\":9999999999,\"nbf\":false",
		"\"exp\":9999999999,\"iat\":null",
		"\"exp\":9999999999,\"iat\":-0.5",
		"\"exp\":9999999999,\"sub\":5",
		"\"exp\":9999999999,\"sub\":null",
		"\"exp\":9999999999,\"iss\":[\"a\"]",
		"\"exp\":9999999999,\"aud\":5",
		"\"exp\":9999999999,\"aud\":[\"mqtt\",5]",
		"\"exp\":9999999999,\"aud\":{\"a\":\"mqtt\"}",
	};
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	const char *aud[] = { "mqtt" };
	struct bw_jwt_policy pol = { .audiences = aud, .audiences_n = 1 };
	char *token = hs_token("\"exp\":9999999999.0,\"sub\":\"x\",\"iss\":\"y\",\"aud\":\"mqtt\"");

	(void)state;
	VERIFY(keys, &pol, token, 0);
	free(token);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		token = hs_token(bad[i]);
		if (bw_jwt_verify(keys, &pol, token, strlen(token), NOW, NULL, NULL) != -EBADMSG)
			fail_msg("claims {%s} not refused as malformed", bad[i]);
		free(token);
	}
	bw_jwt_keys_free(&keys);
}

/* ---- issuer and audience ------------------------------------------------------------ */

static void test_issuer(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	const char *iss[] = { "https://other.example", "https://idp.example" };
	struct bw_jwt_policy pol = { .issuers = iss, .issuers_n = 2 };
	char *good = hs_token("\"exp\":9999999999,\"iss\":\"https://idp.example\"");
	char *evil = hs_token("\"exp\":9999999999,\"iss\":\"https://evil.example\"");
	char *prefix = hs_token("\"exp\":9999999999,\"iss\":\"https://idp.example.evil\"");
	char *none = hs_token("\"exp\":9999999999");

	(void)state;
	VERIFY(keys, &pol, good, 0);
	VERIFY(keys, &pol, evil, -EACCES);
	VERIFY(keys, &pol, prefix, -EACCES);
	VERIFY(keys, &pol, none, -EACCES);
	/* Without a configured issuer, any (and none) passes. */
	VERIFY(keys, NULL, evil, 0);
	VERIFY(keys, NULL, none, 0);
	free(good);
	free(evil);
	free(prefix);
	free(none);
	bw_jwt_keys_free(&keys);
}

static void test_audience(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	const char *aud[] = { "mqtt.example" };
	struct bw_jwt_policy pol = { .audiences = aud, .audiences_n = 1 };
	char *one = hs_token("\"exp\":9999999999,\"aud\":\"mqtt.example\"");
	char *wrong = hs_token("\"exp\":9999999999,\"aud\":\"web.example\"");
	char *in_array = hs_token("\"exp\":9999999999,\"aud\":[\"web.example\",\"mqtt.example\"]");
	char *first = hs_token("\"exp\":9999999999,\"aud\":[\"mqtt.example\",\"web\",\"api\"]");
	char *not_in_array = hs_token("\"exp\":9999999999,\"aud\":[\"web.example\",\"api\"]");
	char *empty_array = hs_token("\"exp\":9999999999,\"aud\":[]");
	char *none = hs_token("\"exp\":9999999999");

	(void)state;
	VERIFY(keys, &pol, one, 0);
	VERIFY(keys, &pol, wrong, -EACCES);
	VERIFY(keys, &pol, in_array, 0);
	VERIFY(keys, &pol, first, 0);
	VERIFY(keys, &pol, not_in_array, -EACCES);
	VERIFY(keys, &pol, empty_array, -EACCES);
	VERIFY(keys, &pol, none, -EACCES);
	/* No audience configured: a token meant for someone is refused (RFC 7519 4.1.3). */
	VERIFY(keys, NULL, one, -EACCES);
	VERIFY(keys, NULL, none, 0);
	free(one);
	free(wrong);
	free(in_array);
	free(first);
	free(not_in_array);
	free(empty_array);
	free(none);
	bw_jwt_keys_free(&keys);
}

/* ---- algorithm attacks ---------------------------------------------------------------- */

/* An unsigned token: alg spelled as given, empty signature (or sig). */
static char *unsigned_token(const char *alg, const char *sig)
{
	char header[128];
	char *h, *p, *token;

	snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
	h = b64s(header);
	p = b64s(claims(NULL));
	token = cat3(h, p, sig);
	free(h);
	free(p);
	return token;
}

static void test_alg_none(void **state)
{
	static const char *const spellings[] = { "none", "None", "NONE", "nOnE", "NoNe" };
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	char err[256];
	const char *why;

	(void)state;
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("rsa.pub"), "RS256", NULL, err, sizeof(err)),
	                 0);
	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		char *token = unsigned_token(spellings[i], "");
		VERIFY(keys, NULL, token, -ENOTSUP);
		assert_int_equal(
		        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, &why),
		        -ENOTSUP);
		assert_string_equal(why, "alg none refused");
		free(token);
		/* A signature does not make "none" acceptable either. */
		token = unsigned_token(spellings[i], "c2lnbmF0dXJl");
		VERIFY(keys, NULL, token, -ENOTSUP);
		free(token);
	}
	/* Near misses are simply unknown algorithms. */
	static const char *const unknown[] = { "none ", "nonE\\u0000", "hs256",
		                               "HS1",   "ES512",       "RSA-OAEP",
		                               "",      "EDDSA",       "Ed25519" };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		char *token = unsigned_token(unknown[i], "c2lnbmF0dXJl");
		int rc =
		        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, NULL);
		if (rc != -ENOTSUP && rc != -EBADMSG)
			fail_msg("alg \"%s\": %d", unknown[i], rc);
		free(token);
	}
	bw_jwt_keys_free(&keys);
}

/*
 * The classic confusion: the RSA public key is public, so a forger HMACs a
 * token with its PEM bytes as the secret and sets alg HS256, hoping the
 * verifier feeds the RSA key's bytes to HMAC.
 */
static void test_alg_confusion(void **state)
{
	struct bw_jwt_keys *rsa = keys_with(at("rsa.pub"), "RS256", NULL);
	struct bw_jwt_keys *ec = keys_with(at("ec256.pub"), "ES256", NULL);
	/* The same file taken as an HMAC secret: what the forger hopes for. */
	struct bw_jwt_keys *as_secret = keys_with(at("rsa.pub"), "HS256", NULL);
	struct bw_jwt_keys *ec_secret = keys_with(at("ec256.pub"), "HS256", NULL);
	char *forged = mint_kid("HS256", at("rsa.pub"), NULL, claims(NULL));
	char *forged_ec = mint_kid("HS256", at("ec256.pub"), NULL, claims(NULL));
	char *honest = mint_kid("RS256", at("rsa.pem"), NULL, claims(NULL));

	(void)state;
	/* The forged tokens are correct HMACs... */
	VERIFY(as_secret, NULL, forged, 0);
	VERIFY(ec_secret, NULL, forged_ec, 0);
	/* ...and still refused by the keys loaded as what they are, because no
	 * key allows HS256 (not because, say, the RSA key has no secret). */
	const char *why = NULL;
	VERIFY(rsa, NULL, forged, -ENOKEY);
	bw_jwt_verify(rsa, &default_policy, forged, strlen(forged), NOW, NULL, &why);
	assert_string_equal(why, "no key for this alg");
	VERIFY(ec, NULL, forged_ec, -ENOKEY);
	bw_jwt_verify(ec, &default_policy, forged_ec, strlen(forged_ec), NOW, NULL, &why);
	assert_string_equal(why, "no key for this alg");
	VERIFY(rsa, NULL, honest, 0);
	/* A key for RS256 does not verify PS256 either, nor the reverse. */
	char *ps = mint_kid("PS256", at("rsa.pem"), NULL, claims(NULL));
	VERIFY(rsa, NULL, ps, -ENOKEY);
	free(ps);
	free(forged);
	free(forged_ec);
	free(honest);
	bw_jwt_keys_free(&rsa);
	bw_jwt_keys_free(&ec);
	bw_jwt_keys_free(&as_secret);
	bw_jwt_keys_free(&ec_secret);
}

/* ---- kid selection -------------------------------------------------------------------- */

static void test_kid(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("rsa.pub"), "RS256", "rsa-a");
	char err[256] = "";
	char *a = mint_kid("RS256", at("rsa.pem"), "rsa-a", claims(NULL));
	char *b = mint_kid("RS256", at("rsa.pem"), "rsa-b", claims(NULL));
	char *none = mint_kid("RS256", at("rsa.pem"), NULL, claims(NULL));
	char *bad_kid = mint("RS256", at("rsa.pem"), "{\"alg\":\"RS256\",\"kid\":7}", claims(NULL));

	(void)state;
	VERIFY(keys, NULL, a, 0);
	VERIFY(keys, NULL, b, -ENOKEY); /* unknown kid */
	VERIFY(keys, NULL, none, 0);    /* one key for RS256: no kid needed */
	VERIFY(keys, NULL, bad_kid, -EBADMSG);

	/* A second RS256 key (the same file suffices): now a kid is required. */
	assert_int_equal(
	        bw_jwt_keys_add_pem(keys, at("rsa.crt"), "RS256", "rsa-c", err, sizeof(err)), 0);
	VERIFY(keys, NULL, none, -ENOKEY);
	VERIFY(keys, NULL, a, 0);
	VERIFY(keys, NULL, b, -ENOKEY);

	/* The kid of a key for another alg does not reach this one. */
	assert_int_equal(
	        bw_jwt_keys_add_pem(keys, at("ec256.pub"), "ES256", "ec", err, sizeof(err)), 0);
	char *wrong = mint_kid("RS256", at("rsa.pem"), "ec", claims(NULL));
	VERIFY(keys, NULL, wrong, -ENOKEY);
	free(wrong);

	/* A kid-less key takes tokens whose kid no key has (and only those). */
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("rsa.pub"), "RS256", NULL, err, sizeof(err)),
	                 0);
	VERIFY(keys, NULL, b, 0);
	VERIFY(keys, NULL, a, 0);
	free(a);
	free(b);
	free(none);
	free(bad_kid);
	bw_jwt_keys_free(&keys);
}

/* ---- damaged tokens --------------------------------------------------------------------- */

/* Replaces the payload of token (keeping header and signature) with payload. */
static char *swap_payload(const char *token, const char *payload)
{
	const char *d1 = strchr(token, '.'), *d2 = strrchr(token, '.');
	char *h = strndup(token, (size_t)(d1 - token)), *p = b64s(payload);
	char *out = cat3(h, p, d2 + 1);

	free(h);
	free(p);
	return out;
}

static void tamper_case(const char *alg, const char *priv, const char *pub)
{
	struct bw_jwt_keys *keys = keys_with(pub, alg, NULL);
	char *token = mint_kid(alg, priv, NULL, claims("\"role\":\"user\""));
	char *tampered = swap_payload(token, claims("\"role\":\"admin\""));
	char *sig = strrchr(token, '.') + 1, was = sig[4];
	size_t len = strlen(token);

	VERIFY(keys, NULL, token, 0);
	VERIFY(keys, NULL, tampered, -EKEYREJECTED);
	/* One bit of the signature: flip a middle character between A and B. */
	sig[4] = was == 'A' ? 'B' : 'A';
	VERIFY(keys, NULL, token, -EKEYREJECTED);
	sig[4] = was;
	/* One bit of the header. */
	token[1] ^= 1;
	verify_line(__LINE__, keys, NULL, token, len, -EBADMSG);
	token[1] ^= 1;
	VERIFY(keys, NULL, token, 0);
	free(token);
	free(tampered);
	bw_jwt_keys_free(&keys);
}

static void test_tampered(void **state)
{
	(void)state;
	tamper_case("HS256", at("hs.key"), at("hs.key"));
	tamper_case("RS256", at("rsa.pem"), at("rsa.pub"));
	tamper_case("PS384", at("rsa.pem"), at("rsa.pub"));
	tamper_case("ES256", at("ec256.pem"), at("ec256.pub"));
	tamper_case("ES384", at("ec384.pem"), at("ec384.pub"));
	tamper_case("EdDSA", at("ed.pem"), at("ed.pub"));
}

static void test_truncated(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("ec256.pub"), "ES256", NULL);
	char *token = mint_kid("ES256", at("ec256.pem"), NULL, claims(NULL));
	size_t len = strlen(token);

	(void)state;
	verify_line(__LINE__, keys, NULL, token, len, 0);
	/* Every proper prefix fails, and never by reading past its length. */
	for (size_t n = 0; n < len; n++) {
		char *copy = malloc(n ? n : 1);
		assert_non_null(copy);
		memcpy(copy, token, n);
		if (bw_jwt_verify(keys, &default_policy, copy, n, NOW, NULL, NULL) == 0)
			fail_msg("prefix of %zu bytes verified", n);
		free(copy);
	}
	/* And so does the token with one more byte of signature. */
	char *longer = malloc(len + 2);
	snprintf(longer, len + 2, "%sA", token);
	verify_line(__LINE__, keys, NULL, longer, len + 1, -EBADMSG);
	free(longer);
	free(token);
	bw_jwt_keys_free(&keys);
}

/* ES* signatures are r || s of exactly the curve's size: not DER, not shorter. */
static void test_ecdsa_signature_form(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("ec256.pub"), "ES256", NULL);
	char *token = mint_kid("ES256", at("ec256.pem"), NULL, claims(NULL));
	char *dot = strrchr(token, '.');
	size_t len = strlen(token);
	const char *why = NULL;

	(void)state;
	verify_line(__LINE__, keys, NULL, token, len, 0);
	/* One byte short: 64 bytes are 86 characters, 63 are 84 (canonical). */
	assert_int_equal(strlen(dot + 1), 86);
	verify_line(__LINE__, keys, NULL, token, len - 2, -EBADMSG);
	bw_jwt_verify(keys, &default_policy, token, len - 2, NOW, NULL, &why);
	assert_string_equal(why, "signature has the wrong length for its alg");
	/* The same signature as openssl's DER, which JOSE does not use. */
	size_t der_len;
	uint8_t *der;
	*dot = 0;
	spit(at("input"), token, strlen(token));
	run("%s dgst -sha256 -sign '%s' -out '%s' '%s'", BW_OPENSSL_BIN, at("ec256.pem"), at("sig"),
	    at("input"));
	der = slurp(at("sig"), &der_len);
	char *s64 = b64url(der, der_len);
	char *h = strndup(token, (size_t)(strchr(token, '.') - token));
	char *der_token = cat3(h, strchr(token, '.') + 1, s64);
	VERIFY(keys, NULL, der_token, -EBADMSG);
	free(der_token);
	free(h);
	free(s64);
	free(der);
	free(token);
	bw_jwt_keys_free(&keys);
}

static void test_junk(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	struct bw_jwt_policy big = { .token_max = BW_JWT_TOKEN_MAX_LIMIT };
	struct bw_jwt_policy too_big = { .token_max = BW_JWT_TOKEN_MAX_LIMIT + 1 };
	size_t len = 64 * 1024;
	char *junk = malloc(len);

	(void)state;
	assert_non_null(junk);
	for (size_t i = 0; i < len; i++)
		junk[i] = (char)(i * 7919 % 251);
	verify_line(__LINE__, keys, NULL, junk, len, -EMSGSIZE);
	verify_line(__LINE__, keys, &big, junk, len, -EBADMSG);
	verify_line(__LINE__, keys, &too_big, junk, len, -EINVAL);
	/* Well-formed base64url in three segments, 64 KiB of it. */
	memset(junk, 'A', len);
	junk[100] = '.';
	junk[200] = '.';
	verify_line(__LINE__, keys, NULL, junk, len, -EMSGSIZE);
	verify_line(__LINE__, keys, &big, junk, len, -EBADMSG);
	/* A real token near the default limit: the limit is inclusive. */
	free(junk);
	junk = malloc(8192);
	assert_non_null(junk);
	for (int round = 0; round < 2; round++) {
		size_t pad = round == 0 ? 5900 : 6100; /* about 7.9 KiB, 8.2 KiB of token */
		int n = snprintf(junk, 8192, "\"exp\":9999999999,\"pad\":\"");
		memset(junk + n, 'x', pad);
		snprintf(junk + n + pad, 8192 - (size_t)n - pad, "\"");
		char *token = hs_token(junk);
		size_t tl = strlen(token);
		struct bw_jwt_policy exact = { .token_max = tl };
		struct bw_jwt_policy short_by_one = { .token_max = tl - 1 };
		assert_true(round == 0 ? tl <= BW_JWT_TOKEN_MAX_DEFAULT
		                       : tl > BW_JWT_TOKEN_MAX_DEFAULT);
		verify_line(__LINE__, keys, NULL, token, tl, round == 0 ? 0 : -EMSGSIZE);
		verify_line(__LINE__, keys, &exact, token, tl, 0);
		verify_line(__LINE__, keys, &short_by_one, token, tl, -EMSGSIZE);
		free(token);
	}
	free(junk);
	bw_jwt_keys_free(&keys);
}

/* Segments built by hand around a good header and payload. */
static void test_bad_shape(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	char *good = hs_token("\"exp\":9999999999");
	char *h = strndup(good, (size_t)(strchr(good, '.') - good));
	char *p = strndup(strchr(good, '.') + 1,
	                  (size_t)(strrchr(good, '.') - strchr(good, '.') - 1));
	char *s = strdup(strrchr(good, '.') + 1);
	char buf[1024];

	(void)state;
	VERIFY(keys, NULL, good, 0);
#define SHAPE(fmt, ...)                                                                            \
	do {                                                                                       \
		snprintf(buf, sizeof(buf), fmt, __VA_ARGS__);                                      \
		VERIFY(keys, NULL, buf, -EBADMSG);                                                 \
	} while (0)
	SHAPE("%s.%s", h, p);                   /* two segments */
	SHAPE("%s.%s.%s.%s", h, p, s, s);       /* four */
	SHAPE("%s.%s.%s.%s.%s", h, p, s, s, s); /* five, as JWE has */
	SHAPE("%s..%s", h, s);                  /* empty payload */
	SHAPE(".%s.%s", p, s);                  /* empty header */
	SHAPE("%s.%s.", h, p);                  /* empty signature */
	SHAPE("%s", "..");
	SHAPE("%s", "");
	/* Padding on any segment. */
	SHAPE("%s=.%s.%s", h, p, s);
	SHAPE("%s.%s==.%s", h, p, s);
	SHAPE("%s.%s.%s=", h, p, s);
	/* Characters outside base64url. */
	SHAPE("%s.%s+.%s", h, p, s);
	SHAPE("%s.%s.%s/", h, p, s);
	SHAPE(" %s.%s.%s", h, p, s);
	SHAPE("%s.%s.%s\n", h, p, s);
	SHAPE("%s.%s*.%s", h, p, s);
	/* The signature one character longer or shorter. */
	SHAPE("%s.%s.%sA", h, p, s);
	buf[strlen(buf) - 2] = 0;
	VERIFY(keys, NULL, buf, -EBADMSG);
#undef SHAPE
	/* A NUL byte in the middle, with the length past it. */
	size_t len = strlen(good);
	char *nul = strdup(good);
	nul[len / 2] = 0;
	verify_line(__LINE__, keys, NULL, nul, len, -EBADMSG);
	free(nul);
	free(h);
	free(p);
	free(s);
	free(good);
	bw_jwt_keys_free(&keys);
}

/* Headers and payloads that are not what they must be, correctly signed. */
static void test_bad_json(void **state)
{
	static const char *const headers[] = {
		"[\"alg\",\"HS256\"]",
		"\"HS256\"",
		"123",
		"null",
		"true",
		"{",
		"{\"alg\":\"HS256\"} x",
		"{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
		"{\"alg\":\"none\",\"alg\":\"HS256\"}",
		"{\"typ\":\"JWT\"}",
		"{\"alg\":256}",
		"{\"alg\":null}",
		"{\"alg\":[\"HS256\"]}",
		"{\"alg\":\"HS256\",\"kid\":{}}",
		"{\"alg\":\"HS256\",\"kid\":\"\\ud800\"}",
		"{\"alg\":\"HS\\u0000256\"}",
		"",
		"{\"alg\":\"HS256\"\xff}",
	};
	static const char *const payloads[] = {
		"[]",
		"\"sub\"",
		"9999999999",
		"null",
		"{\"exp\":9999999999",
		"{\"exp\":9999999999,\"exp\":1}",
		"{\"exp\":9999999999} {}",
		"{\"exp\":9999999999,\"sub\":\"\\u0000\"}",
		"{\"exp\":9999999999,\"sub\":\"\xc3\"}",
	};
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);

	(void)state;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *token = mint("HS256", at("hs.key"), headers[i], "{\"exp\":9999999999}");
		int rc =
		        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, NULL);
		if (rc != -EBADMSG)
			fail_msg("header %s: %d, expected -EBADMSG", headers[i], rc);
		free(token);
	}
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		char *token = mint("HS256", at("hs.key"), "{\"alg\":\"HS256\"}", payloads[i]);
		int rc =
		        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, NULL);
		if (rc != -EBADMSG)
			fail_msg("payload %s: %d, expected -EBADMSG", payloads[i], rc);
		free(token);
	}
	/* crit, even naming nothing, is refused: no extension is understood. */
	char *crit = mint("HS256", at("hs.key"), "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
	                  "{\"exp\":9999999999}");
	char *crit_empty = mint("HS256", at("hs.key"), "{\"alg\":\"HS256\",\"crit\":[]}",
	                        "{\"exp\":9999999999}");
	char *b64false =
	        mint("HS256", at("hs.key"), "{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}",
	             "{\"exp\":9999999999}");
	char *ok = mint("HS256", at("hs.key"), "{\"alg\":\"HS256\",\"jku\":\"https://evil/\"}",
	                "{\"exp\":9999999999}");
	VERIFY(keys, NULL, crit, -ENOTSUP);
	VERIFY(keys, NULL, crit_empty, -ENOTSUP);
	VERIFY(keys, NULL, b64false, -ENOTSUP);
	VERIFY(keys, NULL, ok, 0); /* jku is ignored, never fetched */
	free(crit);
	free(crit_empty);
	free(b64false);
	free(ok);
	bw_jwt_keys_free(&keys);
}

/* ---- JWK Sets ----------------------------------------------------------------------- */

/* Writes {"keys":[members...]} to dir/name; returns the path (the caller frees it). */
static char *write_jwks(const char *name, const char *const *jwks, size_t n)
{
	char *json = malloc(64 * 1024);
	size_t o = 0;
	char *path = strdup(at(name));

	assert_non_null(json);
	o += (size_t)snprintf(json + o, 64 * 1024 - o, "{\"keys\":[");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(json + o, 64 * 1024 - o, "%s%s", i ? "," : "", jwks[i]);
	snprintf(json + o, 64 * 1024 - o, "]}");
	replace_file(path, json);
	free(json);
	return path;
}

static void test_jwks_select_by_kid(void **state)
{
	char *jwk[] = {
		jwk_of(at("rsa.pem"), "rsa1", "\"use\":\"sig\""),
		jwk_of(at("ec256.pem"), "ec1", "\"alg\":\"ES256\""),
		jwk_of(at("ec384.pem"), "ec2", "\"key_ops\":[\"verify\"]"),
		jwk_of(at("ed.pem"), "ed1", ""),
		jwk_oct(at("hs.key"), "hs1", "\"alg\":\"HS512\""),
		/* Skipped: an encryption key, an unsupported curve and alg. */
		jwk_of(at("rsa.pem"), "enc1", "\"use\":\"enc\""),
		strdup("{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":"
		       "\"p521\"}"),
		jwk_of(at("rsa.pem"), "oaep", "\"alg\":\"RSA-OAEP\""),
		strdup("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}"),
		strdup("{\"kty\":\"dilithium\"}"),
	};
	size_t n = sizeof(jwk) / sizeof(jwk[0]);
	char *path = write_jwks("select.jwks", (const char *const *)jwk, n);
	struct bw_jwt_keys *keys = bw_jwt_keys_new();
	char err[256] = "";
	struct {
		const char *alg, *priv, *kid;
		int expect;
	} cases[] = {
		{ "RS256", "rsa.pem", "rsa1", 0 },
		{ "PS512", "rsa.pem", "rsa1", 0 }, /* no alg in the JWK: any RSA alg */
		{ "ES256", "ec256.pem", "ec1", 0 },
		{ "ES384", "ec384.pem", "ec2", 0 },
		{ "EdDSA", "ed.pem", "ed1", 0 },
		{ "HS512", "hs.key", "hs1", 0 },
		{ "HS256", "hs.key", "hs1", -ENOKEY },     /* the JWK says HS512 */
		{ "ES256", "ec256.pem", "rsa1", -ENOKEY }, /* kid of a key of another kind */
		{ "RS256", "rsa.pem", "ec1", -ENOKEY },
		{ "RS256", "rsa.pem", "enc1", -ENOKEY }, /* skipped, so unknown */
		{ "RS256", "rsa.pem", "oaep", -ENOKEY },
		{ "RS256", "rsa.pem", NULL, 0 },                /* the only RSA key */
		{ "ES384", "ec256.pem", "ec2", -EKEYREJECTED }, /* P-256 signature, padded */
	};

	(void)state;
	if (bw_jwt_keys_load_jwks(keys, path, err, sizeof(err)) != 0)
		fail_msg("load_jwks: %s", err);
	assert_int_equal(bw_jwt_keys_count(keys), 5);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *token = mint_kid(cases[i].alg, at(cases[i].priv), cases[i].kid, claims(NULL));
		const char *why = NULL;
		int rc =
		        bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, NULL, &why);
		if (rc != cases[i].expect)
			fail_msg("case %zu (%s kid %s): %d (%s), expected %d", i, cases[i].alg,
			         cases[i].kid ? cases[i].kid : "-", rc, why, cases[i].expect);
		free(token);
	}
	/* Loading the same file twice is refused, and changes nothing. */
	assert_int_equal(bw_jwt_keys_load_jwks(keys, path, err, sizeof(err)), -EEXIST);
	assert_int_equal(bw_jwt_keys_count(keys), 5);
	/* The same keys from memory collide with those from the file. */
	size_t len;
	uint8_t *json = slurp(path, &len);
	assert_int_equal(bw_jwt_keys_parse_jwks(keys, (const char *)json, len, err, sizeof(err)),
	                 -EEXIST);
	struct bw_jwt_keys *mem = bw_jwt_keys_new();
	assert_int_equal(bw_jwt_keys_parse_jwks(mem, (const char *)json, len, err, sizeof(err)), 0);
	assert_int_equal(bw_jwt_keys_count(mem), 5);
	bw_jwt_keys_free(&mem);
	free(json);
	for (size_t i = 0; i < n; i++)
		free(jwk[i]);
	free(path);
	bw_jwt_keys_free(&keys);
}

static void test_jwks_refused(void **state)
{
	uint8_t ones[32];
	memset(ones, 1, sizeof(ones));
	char *one = b64url(ones, sizeof(ones)); /* (1...1, 1...1) is not on P-256 */
	char *rsa = jwk_of(at("rsa.pem"), "r", "");
	char *rsa2 = jwk_of(at("rsa.pem"), "r", "\"alg\":\"PS256\"");
	char *rsa_nokid = jwk_of(at("rsa.pem"), NULL, "");
	char *rsa_priv = jwk_of(at("rsa.pem"), "r", "\"d\":\"AQAB\"");
	char *rsa_small = jwk_of(at("rsa1024.pem"), "small", "");
	char *ec_alg = jwk_of(at("ec256.pem"), "e", "\"alg\":\"RS256\"");
	char *ec_ops = jwk_of(at("ec256.pem"), "e", "\"key_ops\":\"verify\"");
	char *ec_use = jwk_of(at("ec256.pem"), "e", "\"use\":5");
	char *ed_priv = jwk_of(at("ed.pem"), "d", "\"d\":\"AAAA\"");
	char *ed_kid = jwk_of(at("ed.pem"), "", "");
	char off_curve[256], hs_short[128];
	snprintf(off_curve, sizeof(off_curve),
	         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", one, one);
	snprintf(hs_short, sizeof(hs_short), "{\"kty\":\"oct\",\"k\":\"%s\",\"alg\":\"HS512\"}",
	         one); /* 32 bytes: enough for HS256, not HS512 */
	struct {
		const char *json;
		int expect;
	} cases[] = {
		{ "", -EINVAL },
		{ "not json", -EINVAL },
		{ "[]", -EINVAL },
		{ "{\"keys\":{}}", -EINVAL },
		{ "{\"keys\":[]}", -EINVAL },
		{ "{\"keys\":[5]}", -EINVAL },
		{ "{\"keys\":[{}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":5}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"RSA\",\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
		  -EINVAL },
		{ "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AA==\",\"e\":\"AQAB\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
		  -EINVAL },
		{ "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", -EINVAL },
		{ "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
		  -EINVAL }, /* nothing usable */
		{ off_curve, -EINVAL },
		{ hs_short, -EINVAL },
		{ rsa_priv, -EINVAL },
		{ rsa_small, -EINVAL },
		{ ec_alg, -EINVAL },
		{ ec_ops, -EINVAL },
		{ ec_use, -EINVAL },
		{ ed_priv, -EINVAL },
		{ ed_kid, -EINVAL },
		{ NULL, -EEXIST }, /* rsa twice with one kid (filled in below) */
		{ NULL, -EEXIST }, /* rsa without a kid twice */
		{ NULL, 0 },       /* the same kid for keys of disjoint algs is fine */
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	char dup[8192], dup_nokid[8192], disjoint[8192];
	snprintf(dup, sizeof(dup), "{\"keys\":[%s,%s]}", rsa, rsa2);
	snprintf(dup_nokid, sizeof(dup_nokid), "{\"keys\":[%s,%s]}", rsa_nokid, rsa_nokid);
	char *ec_r = jwk_of(at("ec256.pem"), "r", "");
	snprintf(disjoint, sizeof(disjoint), "{\"keys\":[%s,%s]}", rsa, ec_r);
	cases[n - 3].json = dup;
	cases[n - 2].json = dup_nokid;
	cases[n - 1].json = disjoint;

	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	char *token = hs_token("\"exp\":9999999999");
	char err[256];

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *json = cases[i].json;
		char path[256];
		snprintf(path, sizeof(path), "%s", at("refused.jwks"));
		char wrapped[8192];
		if (json[0] == '{' && strncmp(json, "{\"keys\"", 7) != 0) {
			snprintf(wrapped, sizeof(wrapped), "{\"keys\":[%s]}", json);
			json = wrapped;
		}
		struct bw_jwt_keys *fresh = keys_with(at("hs.key"), "HS256", NULL);
		replace_file(path, json);
		err[0] = 0;
		int rc = bw_jwt_keys_load_jwks(fresh, path, err, sizeof(err));
		if (rc != cases[i].expect)
			fail_msg("case %zu: %d (%s), expected %d", i, rc, err, cases[i].expect);
		if (rc != 0) {
			/* Said why, and left the set as it was. */
			assert_true(strlen(err) > 0);
			assert_int_equal(bw_jwt_keys_count(fresh), 1);
			VERIFY(fresh, NULL, token, 0);
			/* The message names the file, never key material. */
			assert_non_null(strstr(err, "refused.jwks"));
			assert_null(strstr(err, one));
		}
		rc = bw_jwt_keys_parse_jwks(keys, json, strlen(json), err, sizeof(err));
		assert_int_equal(rc, cases[i].expect);
		if (rc == 0) {
			bw_jwt_keys_free(&keys);
			keys = keys_with(at("hs.key"), "HS256", NULL);
		}
		bw_jwt_keys_free(&fresh);
	}
	assert_int_equal(bw_jwt_keys_count(keys), 1);
	assert_int_equal(bw_jwt_keys_load_jwks(keys, at("missing.jwks"), err, sizeof(err)),
	                 -ENOENT);
	free(token);
	free(one);
	free(rsa);
	free(rsa2);
	free(rsa_nokid);
	free(rsa_priv);
	free(rsa_small);
	free(ec_alg);
	free(ec_ops);
	free(ec_use);
	free(ed_priv);
	free(ed_kid);
	free(ec_r);
	bw_jwt_keys_free(&keys);
}

/* ---- PEM and secret files --------------------------------------------------------------- */

static void test_pem_refused(void **state)
{
	struct {
		const char *file, *alg, *kid;
		int expect;
	} cases[] = {
		{ "rsa.pub", "ES256", NULL, -EINVAL }, /* RSA key for an EC alg */
		{ "ec256.pub", "RS256", NULL, -EINVAL },
		{ "ec256.pub", "ES384", NULL, -EINVAL }, /* wrong curve */
		{ "ec384.pub", "ES256", NULL, -EINVAL },
		{ "ed.pub", "ES256", NULL, -EINVAL },
		{ "rsa.pub", "EdDSA", NULL, -EINVAL },
		{ "rsa1024.pub", "RS256", NULL, -EINVAL }, /* under 2048 bits */
		{ "rsa.pem", "RS256", NULL, -EINVAL },     /* a private key is not read */
		{ "hs.key", "RS256", NULL, -EINVAL },      /* not PEM at all */
		{ "hs16.key", "HS256", NULL, -EINVAL },    /* 16 bytes: under 32 */
		{ "hs.key", "none", NULL, -ENOTSUP },
		{ "hs.key", "NONE", NULL, -ENOTSUP },
		{ "hs.key", "hs256", NULL, -ENOTSUP },
		{ "hs.key", "ES512", NULL, -ENOTSUP },
		{ "hs.key", "HS256", "", -EINVAL }, /* empty kid */
		{ "missing.pem", "RS256", NULL, -ENOENT },
		{ "", "RS256", NULL, -EINVAL }, /* the directory itself */
	};
	struct bw_jwt_keys *keys = bw_jwt_keys_new();
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		int rc = bw_jwt_keys_add_pem(keys, at(cases[i].file), cases[i].alg, cases[i].kid,
		                             err, sizeof(err));
		if (rc != cases[i].expect)
			fail_msg("case %zu (%s as %s): %d (%s), expected %d", i, cases[i].file,
			         cases[i].alg, rc, err, cases[i].expect);
		assert_true(strlen(err) > 0);
		assert_int_equal(bw_jwt_keys_count(keys), 0);
	}
	/* HS512 needs 64 bytes; hs.key has exactly that. */
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("hs.key"), "HS512", NULL, err, sizeof(err)),
	                 0);
	/* Ambiguity is refused at load time: a second kid-less key for an alg... */
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("hs.key"), "HS512", NULL, err, sizeof(err)),
	                 -EEXIST);
	/* ...but not for another alg, and not with a kid. */
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("hs.key"), "HS384", NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("hs.key"), "HS512", "k", err, sizeof(err)),
	                 0);
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("rsa.pub"), "RS256", "k", err, sizeof(err)),
	                 0);
	assert_int_equal(bw_jwt_keys_add_pem(keys, at("hs.key"), "HS512", "k", err, sizeof(err)),
	                 -EEXIST);
	assert_int_equal(bw_jwt_keys_count(keys), 4);
	bw_jwt_keys_free(&keys);
	/* NULL arguments. */
	assert_int_equal(bw_jwt_keys_add_pem(NULL, at("hs.key"), "HS256", NULL, err, sizeof(err)),
	                 -EINVAL);
	bw_jwt_keys_free(&keys); /* NULL *keys is fine */
	bw_jwt_keys_free(NULL);
}

static void test_refcount(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	struct bw_jwt_keys *other = bw_jwt_keys_ref(keys);
	char *token = hs_token("\"exp\":9999999999");

	(void)state;
	assert_ptr_equal(other, keys);
	bw_jwt_keys_free(&keys);
	assert_null(keys);
	VERIFY(other, NULL, token, 0); /* still alive through the second reference */
	bw_jwt_keys_free(&other);
	free(token);
}

static void test_bad_arguments(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	struct bw_jwt_keys *empty = bw_jwt_keys_new();
	struct bw_jwt_policy neg = { .leeway_s = -1 };
	struct bw_jwt_policy far = { .leeway_s = BW_JWT_LEEWAY_MAX_S + 1 };
	struct bw_jwt_policy null_list = { .issuers_n = 1 };
	char *token = hs_token("\"exp\":9999999999");
	const char *why = NULL;

	(void)state;
	assert_int_equal(
	        bw_jwt_verify(NULL, &default_policy, token, strlen(token), NOW, NULL, &why),
	        -EINVAL);
	assert_non_null(why);
	assert_int_equal(bw_jwt_verify(keys, NULL, token, strlen(token), NOW, NULL, NULL), -EINVAL);
	assert_int_equal(bw_jwt_verify(keys, &default_policy, NULL, 5, NOW, NULL, NULL), -EINVAL);
	VERIFY(keys, &neg, token, -EINVAL);
	VERIFY(keys, &far, token, -EINVAL);
	VERIFY(keys, &null_list, token, -EINVAL);
	VERIFY(empty, NULL, token, -ENOKEY);
	/* Extreme clocks neither overflow nor pass. */
	assert_int_equal(
	        bw_jwt_verify(keys, &default_policy, token, strlen(token), INT64_MAX, NULL, NULL),
	        -EKEYEXPIRED);
	assert_int_equal(
	        bw_jwt_verify(keys, &default_policy, token, strlen(token), INT64_MIN, NULL, NULL),
	        0);
	free(token);
	bw_jwt_keys_free(&keys);
	bw_jwt_keys_free(&empty);
}

/* ---- reload ------------------------------------------------------------------------------ */

static void test_jwks_reload(void **state)
{
	char *ec1 = jwk_of(at("ec256.pem"), "k1", "");
	char *ed2 = jwk_of(at("ed.pem"), "k2", "");
	char *path = write_jwks("reload.jwks", (const char *const *)&ec1, 1);
	struct bw_jwt_keys *cur = bw_jwt_keys_new(), *fresh = (struct bw_jwt_keys *)&fresh;
	char *t1 = mint_kid("ES256", at("ec256.pem"), "k1", claims(NULL));
	char *t2 = mint_kid("EdDSA", at("ed.pem"), "k2", claims(NULL));
	char *t_fixed = mint_kid("HS256", at("hs.key"), "fixed", claims(NULL));
	char err[256] = "";

	(void)state;
	assert_int_equal(bw_jwt_keys_add_pem(cur, at("hs.key"), "HS256", "fixed", err, sizeof(err)),
	                 0);
	assert_int_equal(bw_jwt_keys_load_jwks(cur, path, err, sizeof(err)), 0);
	VERIFY(cur, NULL, t1, 0);
	VERIFY(cur, NULL, t2, -ENOKEY);

	/* Nothing changed. */
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 0);
	assert_null(fresh);

	/* A bad file: an error saying why, no new set, the old keys still work. */
	replace_file(path, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"!\"}]}");
	err[0] = 0;
	int rc = bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_null(fresh);
	assert_non_null(strstr(err, "reload.jwks"));
	VERIFY(cur, NULL, t1, 0);
	VERIFY(cur, NULL, t_fixed, 0);
	/* Reported once: the same bad file is not an error again. */
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 0);
	assert_null(fresh);

	/* The file removed: reported once too. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), -ENOENT);
	assert_null(fresh);
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 0);
	VERIFY(cur, NULL, t1, 0);

	/* A good file with another key: a new set; the old one is untouched. */
	free(write_jwks("reload.jwks", (const char *const *)&ed2, 1));
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 1);
	assert_non_null(fresh);
	assert_ptr_not_equal(fresh, cur);
	VERIFY(fresh, NULL, t2, 0);
	VERIFY(fresh, NULL, t1, -ENOKEY);
	VERIFY(fresh, NULL, t_fixed, 0); /* the PEM key came along */
	VERIFY(cur, NULL, t1, 0);
	VERIFY(cur, NULL, t2, -ENOKEY);
	/* cur is replaced: drop it, keep going with fresh. */
	bw_jwt_keys_free(&cur);
	cur = fresh;
	fresh = NULL;
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 0);

	/* Rewriting in place with other content (same inode) is seen too. */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "{\"keys\":[%s, %s]}", ed2, ec1);
	fclose(fp);
	assert_int_equal(bw_jwt_keys_reload_if_changed(cur, &fresh, err, sizeof(err)), 1);
	VERIFY(fresh, NULL, t1, 0);
	VERIFY(fresh, NULL, t2, 0);
	bw_jwt_keys_free(&fresh);

	/* No JWKS file at all: never a change. */
	struct bw_jwt_keys *pem_only = keys_with(at("hs.key"), "HS256", NULL);
	assert_int_equal(bw_jwt_keys_reload_if_changed(pem_only, &fresh, err, sizeof(err)), 0);
	assert_null(fresh);
	bw_jwt_keys_free(&pem_only);

	free(ec1);
	free(ed2);
	free(t1);
	free(t2);
	free(t_fixed);
	free(path);
	bw_jwt_keys_free(&cur);
}

/* ---- claims --------------------------------------------------------------------------------- */

static void test_claims_access(void **state)
{
	struct bw_jwt_keys *keys = keys_with(at("hs.key"), "HS256", NULL);
	char *token =
	        hs_token("\"exp\":9999999999,\"sub\":\"dev-42\",\"realm\":{\"tenant\":\"acme\","
	                 "\"deep\":{\"er\":\"x\"},\"n\":1},\"https://acme.io/tenant\":\"t1\","
	                 "\"num\":5,\"a.b\":\"dotted\",\"a\":{\"b\":\"nested\"},"
	                 "\"l1\":{\"l2\":{\"l3\":{\"l4\":{\"l5\":{\"l6\":{\"l7\":{\"l8\":{"
	                 "\"l9\":\"too deep\"},\"v\":\"8\"}}}}}}}");
	struct bw_jwt_claims *c = NULL;

	(void)state;
	assert_int_equal(bw_jwt_verify(keys, &default_policy, token, strlen(token), NOW, &c, NULL),
	                 0);
	assert_string_equal(bw_jwt_claims_sub(c), "dev-42");
	assert_int_equal(bw_jwt_claims_exp(c), 9999999999LL);
	assert_string_equal(bw_jwt_claim_string(c, "realm.tenant"), "acme");
	assert_string_equal(bw_jwt_claim_string(c, "realm.deep.er"), "x");
	assert_string_equal(bw_jwt_claim_string(c, "https://acme.io/tenant"), "t1");
	assert_string_equal(bw_jwt_claim_string(c, "a.b"), "dotted"); /* the member wins */
	assert_null(bw_jwt_claim_string(c, "num"));
	assert_null(bw_jwt_claim_string(c, "realm"));
	assert_null(bw_jwt_claim_string(c, "realm.n"));
	assert_null(bw_jwt_claim_string(c, "realm..tenant"));
	assert_null(bw_jwt_claim_string(c, "realm.tenant."));
	assert_null(bw_jwt_claim_string(c, ".realm"));
	assert_null(bw_jwt_claim_string(c, "realm.tenant.x"));
	assert_null(bw_jwt_claim_string(c, "missing.x"));
	assert_null(bw_jwt_claim_string(c, "missing"));
	assert_null(bw_jwt_claim_string(c, NULL));
	assert_null(bw_jwt_claim_string(NULL, "sub"));
	assert_string_equal(bw_jwt_claim_string(c, "l1.l2.l3.l4.l5.l6.l7.v"), "8");
	assert_null(bw_jwt_claim_string(c, "l1.l2.l3.l4.l5.l6.l7.l8.l9")); /* past 8 levels */
	bw_jwt_claims_free(&c);
	assert_null(c);
	bw_jwt_claims_free(&c);
	bw_jwt_claims_free(NULL);
	free(token);
	bw_jwt_keys_free(&keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_vectors),
		cmocka_unit_test(test_b64url_bounds),
		cmocka_unit_test(test_b64url_roundtrip),
		cmocka_unit_test(test_valid_hs),
		cmocka_unit_test(test_valid_rs),
		cmocka_unit_test(test_valid_ps),
		cmocka_unit_test(test_ps_salt_length),
		cmocka_unit_test(test_valid_es_eddsa),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_exp_required),
		cmocka_unit_test(test_claim_types),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_kid),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_ecdsa_signature_form),
		cmocka_unit_test(test_junk),
		cmocka_unit_test(test_bad_shape),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_jwks_select_by_kid),
		cmocka_unit_test(test_jwks_refused),
		cmocka_unit_test(test_pem_refused),
		cmocka_unit_test(test_jwks_reload),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_claims_access),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
