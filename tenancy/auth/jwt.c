/*
 * JWT verification (see jwt.h): the algorithm table, a strict base64url
 * decoder, key selection, signature checks through OpenSSL's EVP interface,
 * the claim checks and the claims accessors. Keys are loaded by jwks.c.
 *
 * The order of the checks matters and is fixed: size, shape, header, key,
 * signature, and only then the payload's JSON and claims, so that nothing
 * a forger controls beyond the header is parsed before the signature
 * holds, and so that a forged token is always reported as forged rather
 * than as, say, expired.
 */
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/jwt_keys.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

/* 9999-12-31T23:59:59Z: NumericDates past it (or before 1970) are refused. */
#define DATE_MAX 253402300799LL
/* now_s is clamped to this magnitude so that now +- leeway cannot overflow. */
#define NOW_LIMIT (INT64_C(1) << 62)
/* Deepest dotted claim path bw_jwt_claim_string() follows. */
#define CLAIM_PATH_MAX 8

struct bw_jwt_claims {
	json_t *payload; /* the verified payload object; one reference */
	int64_t exp;     /* 0: absent */
};

static const struct bw__jwt_alg_info algs[BW__JWT_ALG_COUNT] = {
	[BW__JWT_HS256] = { "HS256", BW__JWT_FAM_HMAC, "SHA256", 32, NULL, 32 },
	[BW__JWT_HS384] = { "HS384", BW__JWT_FAM_HMAC, "SHA384", 48, NULL, 48 },
	[BW__JWT_HS512] = { "HS512", BW__JWT_FAM_HMAC, "SHA512", 64, NULL, 64 },
	[BW__JWT_RS256] = { "RS256", BW__JWT_FAM_RSA, "SHA256", 32, NULL, 0 },
	[BW__JWT_RS384] = { "RS384", BW__JWT_FAM_RSA, "SHA384", 48, NULL, 0 },
	[BW__JWT_RS512] = { "RS512", BW__JWT_FAM_RSA, "SHA512", 64, NULL, 0 },
	[BW__JWT_PS256] = { "PS256", BW__JWT_FAM_RSA_PSS, "SHA256", 32, NULL, 0 },
	[BW__JWT_PS384] = { "PS384", BW__JWT_FAM_RSA_PSS, "SHA384", 48, NULL, 0 },
	[BW__JWT_PS512] = { "PS512", BW__JWT_FAM_RSA_PSS, "SHA512", 64, NULL, 0 },
	[BW__JWT_ES256] = { "ES256", BW__JWT_FAM_EC, "SHA256", 32, "prime256v1", 64 },
	[BW__JWT_ES384] = { "ES384", BW__JWT_FAM_EC, "SHA384", 48, "secp384r1", 96 },
	[BW__JWT_EDDSA] = { "EdDSA", BW__JWT_FAM_ED, NULL, 0, NULL, 64 },
};

const struct bw__jwt_alg_info *bw__jwt_alg(enum bw__jwt_alg alg)
{
	return &algs[alg];
}

int bw__jwt_alg_find(const char *name, size_t len)
{
	for (int i = 0; i < BW__JWT_ALG_COUNT; i++) {
		if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
			return i;
	}
	return -1;
}

/* ---- base64url --------------------------------------------------------------- */

/* The 6-bit value of a base64url character, or -1. ASCII ranges, not ctype. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int bw_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	static const size_t tail[4] = { 0, 0, 1, 2 };
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	*out_len = 0;
	if (len % 4 == 1)
		return -EINVAL;
	if (len / 4 * 3 + tail[len % 4] > cap)
		return -ENOBUFS;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* 2 or 4 bits are left over after a partial quantum; they must be 0. */
	if (acc != 0)
		return -EINVAL;
	*out_len = o;
	return 0;
}

/* ---- key selection ------------------------------------------------------------ */

/*
 * The one key for alg and kid[0..kid_len) (kid NULL: none in the token),
 * as the top of jwt.h describes, or NULL with *why set. The load rules in
 * jwks.c guarantee at most one key has a given kid for an alg and at most
 * one kid-less key exists for an alg, so the first match is the only one.
 */
static const struct bw__jwt_key *select_key(const struct bw_jwt_keys *keys, int alg,
                                            const char *kid, size_t kid_len, const char **why)
{
	const struct bw__jwt_key *named = NULL, *kidless = NULL, *only = NULL;
	uint32_t bit = BW__JWT_ALG_BIT(alg);
	bool kid_other_alg = false;
	size_t fit = 0;

	for (size_t i = 0; i < keys->n; i++) {
		const struct bw__jwt_key *k = &keys->keys[i];
		bool same_kid = kid && k->kid && strlen(k->kid) == kid_len &&
		                memcmp(k->kid, kid, kid_len) == 0;
		if (!(k->algs & bit)) {
			kid_other_alg |= same_kid;
			continue;
		}
		fit++;
		only = k;
		if (same_kid && !named)
			named = k;
		if (!k->kid && !kidless)
			kidless = k;
	}
	if (kid) {
		if (named)
			return named;
		if (kid_other_alg) {
			*why = "the key with this kid does not allow this alg";
			return NULL;
		}
		if (kidless)
			return kidless;
		*why = fit ? "unknown kid" : "no key for this alg";
		return NULL;
	}
	if (fit == 1)
		return only;
	*why = fit ? "kid required: several keys for this alg" : "no key for this alg";
	return NULL;
}

/* ---- signatures --------------------------------------------------------------- */

static int check_hmac(const struct bw__jwt_alg_info *info, const struct bw__jwt_key *key,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const char **why)
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;
	int rc = 0;

	if (key->secret_len < info->hash_len) {
		/* A JWK "oct" key without "alg" may be shorter than HS512 wants. */
		*why = "HMAC secret shorter than the hash";
		return -ENOKEY;
	}
	if (!EVP_Q_mac(NULL, "HMAC", NULL, info->md, NULL, key->secret, key->secret_len, msg,
	               msg_len, mac, sizeof(mac), &mac_len)) {
		ERR_clear_error();
		*why = "HMAC computation failed";
		return -ENOMEM;
	}
	if (mac_len != sig_len || CRYPTO_memcmp(mac, sig, sig_len) != 0) {
		*why = "bad signature";
		rc = -EKEYREJECTED;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

/*
 * JOSE ECDSA signatures are r || s, each the curve's size (RFC 7518 3.4);
 * OpenSSL verifies DER ECDSA-Sig-Value. Returns the DER in *der (the caller
 * frees it with OPENSSL_free) or -ENOMEM.
 */
static int ecdsa_raw_to_der(const uint8_t *sig, size_t sig_len, uint8_t **der, size_t *der_len)
{
	size_t half = sig_len / 2;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
	BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
	int rc = -ENOMEM, n;

	*der = NULL;
	if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
		goto out_free_bn;
	r = s = NULL; /* es owns them now */
	n = i2d_ECDSA_SIG(es, der);
	if (n > 0) {
		*der_len = (size_t)n;
		rc = 0;
	}
out_free_bn:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

static int check_pkey(const struct bw__jwt_alg_info *info, const struct bw__jwt_key *key,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const char **why)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	int rc = -ENOMEM;

	*why = "out of memory";
	if (!md)
		goto out;
	if (info->family == BW__JWT_FAM_EC) {
		if (ecdsa_raw_to_der(sig, sig_len, &der, &sig_len) != 0)
			goto out;
		sig = der;
	}
	*why = "signature check could not start";
	if (EVP_DigestVerifyInit_ex(md, &pctx, info->md, NULL, NULL, key->pkey, NULL) != 1)
		goto out;
	if (info->family == BW__JWT_FAM_RSA &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
		goto out;
	/* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash. */
	if (info->family == BW__JWT_FAM_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, info->md, NULL) <= 0))
		goto out;
	if (EVP_DigestVerify(md, sig, sig_len, msg, msg_len) == 1) {
		rc = 0;
		*why = "ok";
	} else {
		rc = -EKEYREJECTED;
		*why = "bad signature";
	}
out:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return rc;
}

/*
 * Checks sig over msg with key for alg: the length first (exact, from the
 * table or the RSA modulus), then the signature. 0, -EBADMSG (length),
 * -EKEYREJECTED or -ENOMEM (OpenSSL failed to start), with *why.
 */
static int check_signature(int alg, const struct bw__jwt_key *key, const uint8_t *msg,
                           size_t msg_len, const uint8_t *sig, size_t sig_len, const char **why)
{
	const struct bw__jwt_alg_info *info = &algs[alg];
	size_t want = info->sig_len;

	if (info->family == BW__JWT_FAM_RSA || info->family == BW__JWT_FAM_RSA_PSS)
		want = (size_t)EVP_PKEY_get_size(key->pkey);
	if (sig_len != want) {
		*why = "signature has the wrong length for its alg";
		return -EBADMSG;
	}
	if (info->family == BW__JWT_FAM_HMAC)
		return check_hmac(info, key, msg, msg_len, sig, sig_len, why);
	return check_pkey(info, key, msg, msg_len, sig, sig_len, why);
}

/* ---- claims ------------------------------------------------------------------- */

/*
 * A NumericDate (RFC 7519 2): a JSON number of seconds in [0, DATE_MAX].
 * Fractions round toward the stricter answer: down for exp, up for nbf and
 * iat (round_up). Returns 0 or -EBADMSG.
 */
static int numeric_date(const json_t *v, bool round_up, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || i > DATE_MAX)
			return -EBADMSG;
		*out = (int64_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		/* Written so that NaN fails too (jansson never yields one today). */
		if (!(d >= 0.0 && d <= (double)DATE_MAX))
			return -EBADMSG;
		int64_t t = (int64_t)d;
		if (round_up && (double)t < d)
			t++;
		*out = t;
		return 0;
	}
	return -EBADMSG;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (list[i] && strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

/*
 * "aud" is a string or an array of strings (RFC 7519 4.1.3). Returns 0 when
 * one of them is in the policy, -EACCES when none is, -EBADMSG for another
 * shape.
 */
static int check_aud(const json_t *aud, const struct bw_jwt_policy *policy)
{
	bool found = false;

	if (json_is_string(aud))
		return in_list(json_string_value(aud), policy->audiences, policy->audiences_n)
		               ? 0
		               : -EACCES;
	if (!json_is_array(aud))
		return -EBADMSG;
	/* Every element is type-checked, even after a match. */
	for (size_t i = 0; i < json_array_size(aud); i++) {
		const json_t *a = json_array_get(aud, i);
		if (!json_is_string(a))
			return -EBADMSG;
		found |= in_list(json_string_value(a), policy->audiences, policy->audiences_n);
	}
	return found ? 0 : -EACCES;
}

/*
 * The claim checks of bw_jwt_verify() on the verified payload: member
 * types first, then times, then issuer and audience. Sets *exp (0: none).
 */
static int check_claims(const json_t *payload, const struct bw_jwt_policy *policy, int64_t now_s,
                        int64_t *exp, const char **why)
{
	const json_t *v_exp = json_object_get(payload, "exp");
	const json_t *v_nbf = json_object_get(payload, "nbf");
	const json_t *v_iat = json_object_get(payload, "iat");
	const json_t *v_iss = json_object_get(payload, "iss");
	const json_t *v_sub = json_object_get(payload, "sub");
	const json_t *v_aud = json_object_get(payload, "aud");
	int64_t nbf = 0, iat = 0, leeway = policy->leeway_s;
	int rc;

	*exp = 0;
	if (v_exp && numeric_date(v_exp, false, exp) != 0) {
		*why = "exp is not a NumericDate";
		return -EBADMSG;
	}
	if (v_nbf && numeric_date(v_nbf, true, &nbf) != 0) {
		*why = "nbf is not a NumericDate";
		return -EBADMSG;
	}
	if (v_iat && numeric_date(v_iat, true, &iat) != 0) {
		*why = "iat is not a NumericDate";
		return -EBADMSG;
	}
	if (v_iss && !json_is_string(v_iss)) {
		*why = "iss is not a string";
		return -EBADMSG;
	}
	if (v_sub && !json_is_string(v_sub)) {
		*why = "sub is not a string";
		return -EBADMSG;
	}

	if (now_s > NOW_LIMIT)
		now_s = NOW_LIMIT;
	if (now_s < -NOW_LIMIT)
		now_s = -NOW_LIMIT;
	if (v_exp && now_s - leeway >= *exp) {
		*why = "token expired";
		return -EKEYEXPIRED;
	}
	if (!v_exp && !policy->exp_optional) {
		*why = "exp missing";
		return -EACCES;
	}
	if (v_nbf && nbf > now_s + leeway) {
		*why = "token not valid yet (nbf)";
		return -EACCES;
	}
	if (v_iat && iat > now_s + leeway) {
		*why = "token issued in the future (iat)";
		return -EACCES;
	}

	if (policy->issuers_n) {
		if (!v_iss) {
			*why = "iss missing";
			return -EACCES;
		}
		if (!in_list(json_string_value(v_iss), policy->issuers, policy->issuers_n)) {
			*why = "issuer not allowed";
			return -EACCES;
		}
	}
	if (v_aud) {
		rc = check_aud(v_aud, policy);
		if (rc == -EBADMSG) {
			*why = "aud is not a string or an array of strings";
			return rc;
		}
		if (rc != 0) {
			*why = policy->audiences_n ? "audience not allowed"
			                           : "aud present but no audience configured";
			return rc;
		}
	} else if (policy->audiences_n) {
		*why = "aud missing";
		return -EACCES;
	}
	return 0;
}

/* ---- verification ------------------------------------------------------------- */

/* Parses bytes[0..len) as a JSON object with distinct member names, or NULL. */
static json_t *parse_object(const uint8_t *bytes, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, &jerr);

	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The token's three segments and their decoded bytes (in one allocation). */
struct segments {
	const char *seg[3];
	size_t seg_len[3];
	uint8_t *bytes[3];
	size_t bytes_len[3];
	uint8_t *buf;
};

/* Splits at the two dots; -EBADMSG unless there are exactly two. */
static int split(const char *token, size_t len, struct segments *s)
{
	size_t start = 0, n = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && token[i] != '.')
			continue;
		if (n == 3)
			return -EBADMSG;
		s->seg[n] = token + start;
		s->seg_len[n] = i - start;
		n++;
		start = i + 1;
	}
	return n == 3 ? 0 : -EBADMSG;
}

/* Decodes segment i into its slice of s->buf. */
static int decode(struct segments *s, int i)
{
	size_t cap = BW_JWT_B64URL_DECODED_MAX(s->seg_len[i]);

	return bw_jwt_b64url_decode(s->seg[i], s->seg_len[i], s->bytes[i], cap, &s->bytes_len[i]);
}

static int check_policy(const struct bw_jwt_policy *policy, size_t *max)
{
	if (policy->leeway_s < 0 || policy->leeway_s > BW_JWT_LEEWAY_MAX_S)
		return -EINVAL;
	if (policy->token_max > BW_JWT_TOKEN_MAX_LIMIT)
		return -EINVAL;
	if ((policy->issuers_n && !policy->issuers) || (policy->audiences_n && !policy->audiences))
		return -EINVAL;
	*max = policy->token_max ? policy->token_max : BW_JWT_TOKEN_MAX_DEFAULT;
	return 0;
}

/* "none" in any case, which deserves its own message in the logs. */
static bool alg_is_none(const char *s, size_t len)
{
	static const char none[] = "none";

	if (len != 4)
		return false;
	for (size_t i = 0; i < 4; i++) {
		char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
		if (c != none[i])
			return false;
	}
	return true;
}

#define FAIL(code, msg)                                                                            \
	do {                                                                                       \
		rc = (code);                                                                       \
		reason = (msg);                                                                    \
		goto out;                                                                          \
	} while (0)

int bw_jwt_verify(const struct bw_jwt_keys *keys, const struct bw_jwt_policy *policy,
                  const char *token, size_t len, int64_t now_s, struct bw_jwt_claims **out,
                  const char **why)
{
	const char *reason = "ok";
	struct segments s = { 0 };
	json_t *header = NULL, *payload = NULL;
	const struct bw__jwt_key *key;
	size_t max = 0;
	int64_t exp = 0;
	int rc, alg;

	if (out)
		*out = NULL;
	if (!keys || !policy || (!token && len))
		FAIL(-EINVAL, "invalid arguments");
	if (check_policy(policy, &max) != 0)
		FAIL(-EINVAL, "policy out of range");
	if (len > max)
		FAIL(-EMSGSIZE, "token too long");
	if (split(token, len, &s) != 0)
		FAIL(-EBADMSG, "not three dot-separated segments");
	if (s.seg_len[0] == 0 || s.seg_len[1] == 0)
		FAIL(-EBADMSG, "empty header or payload");

	s.buf = malloc(len + 6); /* holds BW_JWT_B64URL_DECODED_MAX() of all three */
	if (!s.buf)
		FAIL(-ENOMEM, "out of memory");
	s.bytes[0] = s.buf;
	s.bytes[1] = s.bytes[0] + BW_JWT_B64URL_DECODED_MAX(s.seg_len[0]);
	s.bytes[2] = s.bytes[1] + BW_JWT_B64URL_DECODED_MAX(s.seg_len[1]);
	if (decode(&s, 0) != 0 || decode(&s, 1) != 0 || decode(&s, 2) != 0)
		FAIL(-EBADMSG, "bad base64url");

	header = parse_object(s.bytes[0], s.bytes_len[0]);
	if (!header)
		FAIL(-EBADMSG, "header is not a JSON object");
	const json_t *v_alg = json_object_get(header, "alg");
	if (!json_is_string(v_alg))
		FAIL(-EBADMSG, "alg missing or not a string");
	const char *alg_s = json_string_value(v_alg);
	size_t alg_len = json_string_length(v_alg);
	if (alg_is_none(alg_s, alg_len))
		FAIL(-ENOTSUP, "alg none refused");
	alg = bw__jwt_alg_find(alg_s, alg_len);
	if (alg < 0)
		FAIL(-ENOTSUP, "unsupported alg");
	if (json_object_get(header, "crit"))
		FAIL(-ENOTSUP, "crit header not supported");
	const json_t *v_kid = json_object_get(header, "kid");
	if (v_kid && !json_is_string(v_kid))
		FAIL(-EBADMSG, "kid is not a string");

	key = select_key(keys, alg, v_kid ? json_string_value(v_kid) : NULL,
	                 v_kid ? json_string_length(v_kid) : 0, &reason);
	if (!key)
		FAIL(-ENOKEY, reason);
	if (s.seg_len[2] == 0)
		FAIL(-EBADMSG, "empty signature");
	/* The signing input is the first two segments with the dot between. */
	rc = check_signature(alg, key, (const uint8_t *)token, s.seg_len[0] + 1 + s.seg_len[1],
	                     s.bytes[2], s.bytes_len[2], &reason);
	if (rc != 0)
		goto out;

	payload = parse_object(s.bytes[1], s.bytes_len[1]);
	if (!payload)
		FAIL(-EBADMSG, "payload is not a JSON object");
	rc = check_claims(payload, policy, now_s, &exp, &reason);
	if (rc != 0)
		goto out;
	if (out) {
		struct bw_jwt_claims *c = malloc(sizeof(*c));
		if (!c)
			FAIL(-ENOMEM, "out of memory");
		c->payload = payload;
		c->exp = exp;
		payload = NULL;
		*out = c;
	}
	reason = "ok";
out:
	json_decref(header);
	json_decref(payload);
	free(s.buf);
	if (why)
		*why = reason;
	return rc;
}

/* ---- claims accessors --------------------------------------------------------- */

/* Follows name as a dotted path; NULL when any step is missing or empty. */
static const json_t *claim_path(const json_t *obj, const char *name)
{
	const char *p = name;

	for (int depth = 0; depth < CLAIM_PATH_MAX; depth++) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || !json_is_object(obj))
			return NULL;
		obj = json_object_getn(obj, p, n);
		if (!obj || !dot)
			return obj;
		p = dot + 1;
	}
	return NULL;
}

const char *bw_jwt_claim_string(const struct bw_jwt_claims *claims, const char *name)
{
	const json_t *v;

	if (!claims || !name)
		return NULL;
	v = json_object_get(claims->payload, name);
	if (!v && strchr(name, '.'))
		v = claim_path(claims->payload, name);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *bw_jwt_claims_sub(const struct bw_jwt_claims *claims)
{
	return bw_jwt_claim_string(claims, "sub");
}

int64_t bw_jwt_claims_exp(const struct bw_jwt_claims *claims)
{
	return claims ? claims->exp : 0;
}

void bw_jwt_claims_free(struct bw_jwt_claims **claims)
{
	if (!claims || !*claims)
		return;
	json_decref((*claims)->payload);
	free(*claims);
	*claims = NULL;
}
