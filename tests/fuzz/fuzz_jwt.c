/*
 * libFuzzer target for tenancy/auth/jwt.h. The input's shape picks what it
 * drives:
 *
 * - starting with '{': a JWK Set, parsed into an empty key set with
 *   bw_jwt_keys_parse_jwks(); a set that loads then verifies a fixed token;
 * - holding a 0xFF byte: a header and a payload (JSON text, either side of
 *   the first 0xFF) that the driver encodes and signs itself with the fixed
 *   HS256 secret, so the checks behind the signature (kid and alg against
 *   the keys, claim types, times, issuer, audience) see fuzzed JSON too;
 * - anything else: a compact token for bw_jwt_verify().
 *
 * The fixed keys, loaded once: an HMAC secret (kid "hs", no alg, so HS384
 * and HS512 meet a secret too short for them) and a P-256 key (kid "ec",
 * ES256) whose private half only tests/fuzz/make-seeds.py knows, which
 * mints the seeds in corpus/jwt/. The clock is fixed at JWT_NOW.
 *
 * Checked on every input: the return code is one jwt.h documents; *why is
 * set; claims come back exactly on success and then satisfy the policy;
 * verifying twice gives the same answer; a token the driver signed is
 * never refused for its signature. A failed check prints and aborts.
 */
#include "tenancy/auth/jwt.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define JWT_NOW INT64_C(1700000000)
#define LEEWAY  30

/* The HMAC secret is b64url("bulwark fuzz_jwt HS256 secret 32"). */
static const char fixed_jwks[] =
        "{\"keys\":["
        "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"YnVsd2FyayBmdXp6X2p3dCBIUzI1NiBzZWNyZXQgMzI\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"alg\":\"ES256\","
        "\"x\":\"Td-3-_rrsoARNf9en1_tcrnkEsZJIERAntVlP8x7LV0\","
        "\"y\":\"JJn5OBOMkDjrDbB3AODyNlOUm7_bWS_vOPVJsBu_P0M\"}]}";
static const uint8_t hs_secret[] = "bulwark fuzz_jwt HS256 secret 32";

static const char *const issuers[] = { "https://idp.example" };
static const char *const audiences[] = { "mqtt" };
static const struct bw_jwt_policy policy = {
	.issuers = issuers,
	.issuers_n = 1,
	.audiences = audiences,
	.audiences_n = 1,
	.leeway_s = LEEWAY,
};

static struct bw_jwt_keys *fixed_keys;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_jwt: check failed (fuzz_jwt.c:%d): %s\n", __LINE__,  \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void load_fixed_keys(void)
{
	char err[256];

	fixed_keys = bw_jwt_keys_new();
	CHECK(fixed_keys);
	if (bw_jwt_keys_parse_jwks(fixed_keys, fixed_jwks, strlen(fixed_jwks), err, sizeof(err))) {
		fprintf(stderr, "fuzz_jwt: fixed keys: %s\n", err);
		abort();
	}
	CHECK(bw_jwt_keys_count(fixed_keys) == 2);
}

static char *b64url(const uint8_t *in, size_t len)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;

	CHECK(out);
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

/* Whether rc is one of the codes bw_jwt_verify() documents. */
static bool documented(int rc)
{
	switch (rc) {
	case 0:
	case -EINVAL:
	case -EMSGSIZE:
	case -EBADMSG:
	case -ENOTSUP:
	case -ENOKEY:
	case -EKEYREJECTED:
	case -EKEYEXPIRED:
	case -EACCES:
	case -ENOMEM:
		return true;
	default:
		return false;
	}
}

/* h64.p64.HMAC-SHA256(h64.p64) with the fixed secret; the caller frees it. */
static char *sign_hs256(const char *h64, const char *p64)
{
	size_t hl = strlen(h64), pl = strlen(p64), mac_len = 0;
	char *token = malloc(hl + pl + 64);
	uint8_t mac[32];

	CHECK(token);
	memcpy(token, h64, hl);
	token[hl] = '.';
	memcpy(token + hl + 1, p64, pl);
	CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hs_secret, sizeof(hs_secret) - 1,
	                (const uint8_t *)token, hl + 1 + pl, mac, sizeof(mac), &mac_len));
	CHECK(mac_len == 32);
	char *s64 = b64url(mac, mac_len);
	snprintf(token + hl + 1 + pl, 64, ".%s", s64);
	free(s64);
	return token;
}

static char *sign_json(const uint8_t *header, size_t hlen, const uint8_t *payload, size_t plen)
{
	char *h64 = b64url(header, hlen), *p64 = b64url(payload, plen);
	char *token = sign_hs256(h64, p64);

	free(h64);
	free(p64);
	return token;
}

/* A token the fixed keys (and any set with their "hs" key) accept. */
static char *good_token;

/* bw_jwt_verify() with every check in the header comment; returns its code. */
static int verify_checked(const struct bw_jwt_keys *keys, const char *token, size_t len)
{
	struct bw_jwt_claims *c = (struct bw_jwt_claims *)&c; /* must be overwritten */
	const char *why = NULL, *why2 = NULL;
	int rc = bw_jwt_verify(keys, &policy, token, len, JWT_NOW, &c, &why);

	CHECK(documented(rc));
	CHECK(rc != -EINVAL); /* the arguments are always fine here */
	CHECK(why && why[0]);
	CHECK((rc == 0) == (c != NULL));
	if (rc == 0) {
		const char *iss = bw_jwt_claim_string(c, "iss");
		CHECK(bw_jwt_claims_exp(c) > JWT_NOW - LEEWAY);
		CHECK(iss && strcmp(iss, issuers[0]) == 0);
		(void)bw_jwt_claims_sub(c);
		(void)bw_jwt_claim_string(c, "tenant");
		(void)bw_jwt_claim_string(c, "realm.tenant.id");
		bw_jwt_claims_free(&c);
		CHECK(!c);
		/* One byte under the size limit must refuse it for its size. */
		struct bw_jwt_policy tight = policy;
		tight.token_max = len - 1;
		if (tight.token_max)
			CHECK(bw_jwt_verify(keys, &tight, token, len, JWT_NOW, NULL, NULL) ==
			      -EMSGSIZE);
	}
	CHECK(bw_jwt_verify(keys, &policy, token, len, JWT_NOW, NULL, &why2) == rc);
	CHECK(why2 && strcmp(why, why2) == 0);
	return rc;
}

static void fuzz_jwks(const uint8_t *data, size_t size)
{
	struct bw_jwt_keys *keys = bw_jwt_keys_new();
	char err[256] = "";
	int rc;

	CHECK(keys);
	rc = bw_jwt_keys_parse_jwks(keys, (const char *)data, size, err, sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL || rc == -EEXIST || rc == -E2BIG || rc == -ENOMEM);
	if (rc == 0) {
		CHECK(bw_jwt_keys_count(keys) > 0);
		verify_checked(keys, good_token, strlen(good_token));
	} else {
		CHECK(bw_jwt_keys_count(keys) == 0);
		CHECK(err[0]);
	}
	bw_jwt_keys_free(&keys);
	CHECK(!keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char header[] = "{\"alg\":\"HS256\",\"kid\":\"hs\"}";
	static const char payload[] =
	        "{\"iss\":\"https://idp.example\",\"aud\":\"mqtt\",\"exp\":4102444800}";
	const uint8_t *sep;

	if (!fixed_keys) {
		load_fixed_keys();
		good_token = sign_json((const uint8_t *)header, sizeof(header) - 1,
		                       (const uint8_t *)payload, sizeof(payload) - 1);
		CHECK(verify_checked(fixed_keys, good_token, strlen(good_token)) == 0);
	}
	if (size > 0 && data[0] == '{') {
		fuzz_jwks(data, size);
		return 0;
	}
	sep = size ? memchr(data, 0xFF, size) : NULL;
	if (sep) {
		size_t hlen = (size_t)(sep - data);
		char *token = sign_json(data, hlen, sep + 1, size - hlen - 1);
		/* The driver signed it: refusing the signature would be a bug. */
		CHECK(verify_checked(fixed_keys, token, strlen(token)) != -EKEYREJECTED);
		free(token);
		return 0;
	}
	verify_checked(fixed_keys, (const char *)data, size);
	return 0;
}
