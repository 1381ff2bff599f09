/*
 * A tenant's trust material: ca.add, .list, .del (its device CA bundle)
 * and jwt.add, .list, .del (the issuers, audiences and JWK Set its tokens
 * are verified with).
 *
 * CAs are named by the SHA-256 of their DER encoding, in hex, as tenant
 * resolution names them (docs/tenancy.md). jwt.add merges: the issuer and
 * audience join the tenant's lists, the new JWK Set's keys join its set (a
 * key whose kid the set has replaces it). jwt.del removes an issuer; when
 * it was the last one the keys and audiences go too, since a tenant
 * without issuers accepts any issuer (fail closed: no tokens at all).
 *
 * jwt.add with tenant_claim names the claim whose value names this tenant
 * in its tokens (tenancy/model.h's jwt_tenant_claim), for identity
 * providers that put it elsewhere than the node's tenant_claim; "" gives
 * the node's back; without it, the tenant keeps the one it has. jwt.del
 * leaves it.
 *
 * jwt.add with key and alg takes one PEM public key (or a certificate,
 * for its key) and adds it as a JWK (RFC 7517, 7518, 8037) with that alg:
 * the tenant's keys are a JWK Set and nothing else. Its kid is the first
 * 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo unless the
 * request names one, so adding the same key again replaces it. HMAC
 * secrets are no PEM: they come as "oct" keys of a JWK Set. A private key
 * is refused, never used to derive the public one: it should not have
 * left its owner.
 */
#include "admin/cmd_internal.h"

#include "tenancy/auth/jwt.h"
#include "tenancy/service.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- CA certificates ------------------------------------------------------------ */

/* Calls visit(arg, cert, fingerprint) for each certificate of pem; stops at a nonzero answer. */
static int each_cert(const char *pem, int (*visit)(void *, X509 *, const uint8_t *), void *arg)
{
	BIO *bio = pem && *pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x;
	int rc = 0;

	while (bio && rc == 0 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		unsigned char *der = NULL;
		uint8_t fp[BW_TENANCY_CA_FP_LEN];
		int len = i2d_X509(x, &der);
		if (len <= 0 || bw_tenancy_ca_fingerprint(der, (size_t)len, fp) < 0)
			rc = -1;
		else
			rc = visit(arg, x, fp);
		OPENSSL_free(der);
		X509_free(x);
	}
	ERR_clear_error(); /* the end of the bundle reads as an error */
	BIO_free(bio);
	return rc;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* notAfter as "2124-10-31T22:28:53Z". */
static void not_after(X509 *x, char *buf, size_t cap)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		snprintf(buf, cap, "?");
	else
		strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The subject in RFC 2253 form ("CN=Test CA a"), malloc'd, or NULL. */
static char *subject(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	if (!b)
		return NULL;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
		long n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return out;
}

static int ca_visit_json(void *arg, X509 *x, const uint8_t *fp)
{
	char fph[2 * BW_TENANCY_CA_FP_LEN + 1], when[40];
	char *subj = subject(x);

	hex(fp, BW_TENANCY_CA_FP_LEN, fph);
	not_after(x, when, sizeof(when));
	int rc = json_array_append_new(arg,
	                               json_pack("{s:s, s:s, s:s}", "fingerprint", fph, "subject",
	                                         subj ? subj : "", "not_after", when));
	free(subj);
	return rc;
}

json_t *bw__admin_cas_json(const char *pem)
{
	json_t *a = json_array();
	if (a && each_cert(pem, ca_visit_json, a) < 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* Whether bundle holds the certificate with fingerprint fp. */
struct ca_find {
	const uint8_t *fp;
	bool found;
};

static int ca_visit_find(void *arg, X509 *x, const uint8_t *fp)
{
	struct ca_find *f = arg;
	(void)x;
	f->found |= !memcmp(fp, f->fp, BW_TENANCY_CA_FP_LEN);
	return 0;
}

/* First certificate of pem that bundle holds already: stops with its fingerprint in dup. */
struct ca_dup {
	const char *bundle;
	char dup[2 * BW_TENANCY_CA_FP_LEN + 1];
};

static int ca_visit_dup(void *arg, X509 *x, const uint8_t *fp)
{
	struct ca_dup *d = arg;
	struct ca_find f = { .fp = fp };
	(void)x;
	each_cert(d->bundle, ca_visit_find, &f);
	if (f.found)
		hex(fp, BW_TENANCY_CA_FP_LEN, d->dup);
	return f.found;
}

/*
 * The first certificate of a PEM whose subject is that of another tenant's
 * CA (not the same certificate: the store refuses that one): stops with
 * the subject and the tenant in found and other.
 */
struct ca_clash {
	const struct bw_tenancy *snap;
	const struct bw_tenant *self;
	X509_NAME *name;   /* the certificate looked at */
	const uint8_t *fp; /* its fingerprint */
	char other[72];    /* the tenant whose CA has that subject */
	char *found;       /* the subject, malloc'd */
};

static int ca_visit_same_name(void *arg, X509 *x, const uint8_t *fp)
{
	const struct ca_clash *c = arg;
	return memcmp(fp, c->fp, BW_TENANCY_CA_FP_LEN) &&
	       !X509_NAME_cmp(X509_get_subject_name(x), c->name);
}

static int ca_visit_clash(void *arg, X509 *x, const uint8_t *fp)
{
	struct ca_clash *c = arg;
	const struct bw_tenant *t;

	c->name = X509_get_subject_name(x);
	c->fp = fp;
	for (size_t i = 0; (t = bw_tenancy_tenant_at(c->snap, i)); i++) {
		if (!strcmp(t->name, c->self->name) ||
		    each_cert(t->ca_pem, ca_visit_same_name, c) <= 0)
			continue;
		snprintf(c->other, sizeof(c->other), "%s", t->name);
		c->found = subject(x);
		return 1;
	}
	return 0;
}

/* The bundle without the certificate of fingerprint fp, re-encoded as PEM. */
struct ca_drop {
	const uint8_t *fp;
	BIO *out;
	bool dropped;
};

static int ca_visit_drop(void *arg, X509 *x, const uint8_t *fp)
{
	struct ca_drop *d = arg;
	if (!memcmp(fp, d->fp, BW_TENANCY_CA_FP_LEN)) {
		d->dropped = true;
		return 0;
	}
	return PEM_write_bio_X509(d->out, x) == 1 ? 0 : -1;
}

static int cas_result(struct bw__admin_req *r)
{
	const struct bw_tenant *t;
	bw__admin_refresh(r);
	if (!(t = bw__admin_tenant(r, "tenant")))
		return -1;
	return bw__admin_ok(r, json_pack("{s:o}", "cas", bw__admin_cas_json(t->ca_pem)));
}

static int set_ca(struct bw__admin_req *r, const struct bw_tenant *t, const char *pem)
{
	char err[768];
	int rc = bw_tenancy_service_tenant_set_ca(r->ctx->tenancy, t->name, pem, err, sizeof(err));
	return rc < 0 ? bw__admin_fail_errno(r, rc, err) : cas_result(r);
}

static int ca_add(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *pem = bw__admin_str(r, "pem");
	char err[512];

	bw__admin_target(r, NULL, "ca");
	if (!t)
		return -1;
	/* The new PEM alone first, so that a message's numbers are its own. */
	struct bw_tenant alone = { .name = t->name, .name_len = t->name_len, .ca_pem = pem };
	if (!*pem)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "pem: empty");
	if (bw_tenancy_tenant_check(&alone, err, sizeof(err)) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "pem: %s", err);
	struct ca_dup d = { .bundle = t->ca_pem };
	if (each_cert(pem, ca_visit_dup, &d) > 0)
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS, "CA %s is in tenant \"%s\" already",
		                      d.dup, t->name);
	/*
	 * Every mqtts listener trusts every tenant's CAs in one store, where
	 * OpenSSL finds a certificate's issuer by its name: with two tenants'
	 * CAs of one subject, a device could be checked against the other
	 * tenant's CA and refused. (Within a tenant, a CA renewed under its
	 * old name is fine: its devices belong there either way.)
	 */
	struct ca_clash c = { .snap = r->snap, .self = t };
	if (each_cert(pem, ca_visit_clash, &c) > 0) {
		bw__admin_fail(r, BW_ADMIN_E_EXISTS,
		               "pem: tenant \"%s\" has a CA with the subject \"%s\" already: TLS "
		               "finds a certificate's issuer by that name, so devices could be "
		               "checked against the other tenant's CA and refused; give this CA a "
		               "subject of its own",
		               c.other, c.found ? c.found : "?");
		free(c.found);
		return -1;
	}
	size_t have = t->ca_pem ? strlen(t->ca_pem) : 0;
	char *bundle = malloc(have + strlen(pem) + 2);
	if (!bundle)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	sprintf(bundle, "%s%s%s", have ? t->ca_pem : "",
	        have && t->ca_pem[have - 1] != '\n' ? "\n" : "", pem);
	int rc = set_ca(r, t, bundle);
	free(bundle);
	return rc;
}

static int ca_list(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	return t ? bw__admin_ok(r, json_pack("{s:o}", "cas", bw__admin_cas_json(t->ca_pem))) : -1;
}

/* 64 hex digits (any case, ':' between bytes allowed) into fp; 0 or -1. */
static int parse_fp(const char *s, uint8_t fp[BW_TENANCY_CA_FP_LEN])
{
	size_t n = 0;
	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 2 * BW_TENANCY_CA_FP_LEN)
			return -1;
		int v = isdigit((unsigned char)*s) ? *s - '0'
		                                   : tolower((unsigned char)*s) - 'a' + 10;
		if (n % 2 == 0)
			fp[n / 2] = (uint8_t)(v << 4);
		else
			fp[n / 2] |= (uint8_t)v;
		n++;
	}
	return n == 2 * BW_TENANCY_CA_FP_LEN ? 0 : -1;
}

static int ca_del(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *fph = bw__admin_str(r, "fingerprint");
	uint8_t fp[BW_TENANCY_CA_FP_LEN];
	char *data;

	bw__admin_target(r, NULL, fph);
	if (!t)
		return -1;
	if (parse_fp(fph, fp) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "fingerprint: not a SHA-256 in hex (64 digits)");
	struct ca_drop d = { .fp = fp, .out = BIO_new(BIO_s_mem()) };
	if (!d.out || each_cert(t->ca_pem, ca_visit_drop, &d) < 0) {
		BIO_free(d.out);
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	}
	int rc;
	if (!d.dropped) {
		rc = bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no CA %s in tenant \"%s\"", fph,
		                    t->name);
	} else {
		long n = BIO_get_mem_data(d.out, &data);
		char *bundle = strndup(n > 0 ? data : "", n > 0 ? (size_t)n : 0);
		rc = bundle ? set_ca(r, t, bundle)
		            : bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		free(bundle);
	}
	BIO_free(d.out);
	return rc;
}

/* ---- JWT issuers, audiences and keys --------------------------------------------- */

/* The "keys" array of a JWK Set text (borrowed from *set, which the caller frees), or NULL. */
static json_t *jwks_keys(const char *text, json_t **set)
{
	*set = text && *text ? json_loads(text, 0, NULL) : NULL;
	json_t *keys = json_object_get(*set, "keys");
	return json_is_array(keys) ? keys : NULL;
}

static json_t *key_brief(json_t *k)
{
	json_t *kid = json_object_get(k, "kid"), *alg = json_object_get(k, "alg");
	return json_pack("{s:O?, s:O?, s:O?}", "kid", json_is_string(kid) ? kid : NULL, "alg",
	                 json_is_string(alg) ? alg : NULL, "kty", json_object_get(k, "kty"));
}

json_t *bw__admin_jwt_json(const struct bw_tenant *t)
{
	json_t *set, *list = json_array(), *k;
	json_t *keys = jwks_keys(t->jwks, &set); /* once: json_array_foreach evaluates it often */
	size_t i;
	json_array_foreach(keys, i, k)
	{
		if (list && json_array_append_new(list, key_brief(k)) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	json_decref(set);
	const char *claim =
	        t->jwt_tenant_claim && *t->jwt_tenant_claim ? t->jwt_tenant_claim : NULL;
	return json_pack("{s:o, s:o, s:s?, s:o}", "issuers",
	                 bw__admin_strings_json(t->jwt_issuers, t->jwt_issuers_n), "audiences",
	                 bw__admin_strings_json(t->jwt_audiences, t->jwt_audiences_n),
	                 "tenant_claim", claim, "keys", list);
}

/* Whether list[0..n) holds s. */
static bool has(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i], s))
			return true;
	}
	return false;
}

/* Whether a key of keys has the kid kid (a JSON string; NULL: none has). */
static bool kid_in(json_t *keys, json_t *kid)
{
	json_t *k;
	size_t i;
	json_array_foreach(keys, i, k)
	{
		if (kid && json_equal(kid, json_object_get(k, "kid")))
			return true;
	}
	return false;
}

/* {"keys": old's keys but those fresh replaces, then fresh's} as JSON text, or NULL. */
static char *merged_text(json_t *old, json_t *fresh)
{
	json_t *merged = json_array(), *k;
	size_t i;
	json_array_foreach(old, i, k)
	{
		if (merged && !kid_in(fresh, json_object_get(k, "kid")))
			json_array_append(merged, k);
	}
	if (merged)
		json_array_extend(merged, fresh);
	json_t *set = merged ? json_pack("{s:o}", "keys", merged) : NULL;
	char *text = set ? json_dumps(set, JSON_COMPACT) : NULL;
	json_decref(set);
	return text;
}

/*
 * The tenant's JWK Set with the keys of add merged in (same kid: replaced),
 * as JSON text (malloc'd), or NULL (r failed: invalid for a set without
 * keys or one the verifier refuses; field names the argument).
 */
static char *merge_jwks(struct bw__admin_req *r, const struct bw_tenant *t, const char *add,
                        const char *field)
{
	json_t *new_set, *old_set;
	json_t *fresh = jwks_keys(add, &new_set), *old = jwks_keys(t->jwks, &old_set);
	char err[256], *text = NULL;
	struct bw_jwt_keys *check = bw_jwt_keys_new();

	if (!fresh || json_array_size(fresh) == 0)
		bw__admin_fail(r, BW_ADMIN_E_INVALID,
		               "%s: not a JWK Set with keys ({\"keys\": [...]})", field);
	else if (!check)
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	else if (bw_jwt_keys_parse_jwks(check, add, strlen(add), err, sizeof(err)) < 0)
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "%s: %s", field, err);
	else if (!(text = merged_text(old, fresh)))
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	bw_jwt_keys_free(&check);
	json_decref(new_set);
	json_decref(old_set);
	return text;
}

/* ---- a PEM public key as a JWK ---------------------------------------------------- */

enum key_kind { KEY_RSA, KEY_EC, KEY_ED25519 };

/* The algorithms jwt.add takes with a PEM key, and the key each needs. */
static const struct pem_alg {
	const char *name;
	enum key_kind kind;
	bool pss;          /* RSA: an RSA-PSS key fits too */
	const char *group; /* EC: OpenSSL's name of the curve */
	const char *crv;   /* EC, Ed25519: the JWK's */
	size_t size;       /* EC: bytes of a coordinate */
	const char *needs; /* for messages */
} pem_algs[] = {
	{ "RS256", KEY_RSA, false, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "RS384", KEY_RSA, false, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "RS512", KEY_RSA, false, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "PS256", KEY_RSA, true, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "PS384", KEY_RSA, true, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "PS512", KEY_RSA, true, NULL, NULL, 0, "an RSA key of at least 2048 bits" },
	{ "ES256", KEY_EC, false, "prime256v1", "P-256", 32, "an EC key on P-256" },
	{ "ES384", KEY_EC, false, "secp384r1", "P-384", 48, "an EC key on P-384" },
	{ "EdDSA", KEY_ED25519, false, NULL, "Ed25519", 32, "an Ed25519 key" },
};

#define RSA_BITS_MIN 2048 /* RFC 7518 3.3 */

/* The PEM algorithm named name, or NULL (r failed: invalid, saying what is taken). */
static const struct pem_alg *find_pem_alg(struct bw__admin_req *r, const char *name)
{
	char show[BW__ADMIN_SHORT];

	for (size_t i = 0; i < sizeof(pem_algs) / sizeof(pem_algs[0]); i++) {
		if (!strcmp(pem_algs[i].name, name))
			return &pem_algs[i];
	}
	if (!strcmp(name, "HS256") || !strcmp(name, "HS384") || !strcmp(name, "HS512"))
		bw__admin_fail(r, BW_ADMIN_E_INVALID,
		               "alg: %s verifies with a shared secret, not a public key: give "
		               "the secret as an \"oct\" key of a JWK Set (jwks)",
		               name);
	else
		bw__admin_fail(r, BW_ADMIN_E_INVALID,
		               "alg: \"%s\" is not one of RS256, RS384, RS512, PS256, PS384, "
		               "PS512, ES256, ES384, EdDSA",
		               bw__admin_short(name, show));
	return NULL;
}

/* What key pk is, for messages: "an RSA key of 1024 bits", "an EC key on P-384". */
static void describe_key(EVP_PKEY *pk, char *buf, size_t cap)
{
	char group[64];

	if (EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_is_a(pk, "RSA-PSS"))
		snprintf(buf, cap, "an %s key of %d bits",
		         EVP_PKEY_is_a(pk, "RSA") ? "RSA" : "RSA-PSS", EVP_PKEY_get_bits(pk));
	else if (EVP_PKEY_is_a(pk, "EC") &&
	         EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
	                                        sizeof(group), NULL) == 1)
		snprintf(buf, cap, "an EC key on %s",
		         !strcmp(group, "prime256v1")  ? "P-256"
		         : !strcmp(group, "secp384r1") ? "P-384"
		         : !strcmp(group, "secp521r1") ? "P-521"
		                                       : group);
	else if (EVP_PKEY_is_a(pk, "ED25519"))
		snprintf(buf, cap, "an Ed25519 key");
	else
		snprintf(buf, cap, "a key of type %s", EVP_PKEY_get0_type_name(pk));
	ERR_clear_error();
}

/* Whether pk fits a. */
static bool key_fits(EVP_PKEY *pk, const struct pem_alg *a)
{
	char group[64];

	switch (a->kind) {
	case KEY_RSA:
		return (EVP_PKEY_is_a(pk, "RSA") || (a->pss && EVP_PKEY_is_a(pk, "RSA-PSS"))) &&
		       EVP_PKEY_get_bits(pk) >= RSA_BITS_MIN;
	case KEY_EC:
		return EVP_PKEY_is_a(pk, "EC") &&
		       EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                      sizeof(group), NULL) == 1 &&
		       !strcmp(group, a->group);
	case KEY_ED25519:
		return EVP_PKEY_is_a(pk, "ED25519");
	}
	return false;
}

/* in[0..n) in base64url without padding (RFC 7515 2), as a new JSON string, or NULL. */
static json_t *b64url_json(const uint8_t *in, size_t n)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(n / 3 * 4 + 5);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = abc[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = abc[v & 63];
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

/* The big-endian bytes of pk's parameter name (at least pad bytes, 0: as few as it takes). */
static json_t *bn_param_json(EVP_PKEY *pk, const char *name, size_t pad)
{
	BIGNUM *bn = NULL;
	json_t *j = NULL;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) == 1) {
		size_t n = (size_t)BN_num_bytes(bn);
		size_t len = pad > n ? pad : n;
		uint8_t *buf = malloc(len ? len : 1);
		if (buf && BN_bn2binpad(bn, buf, (int)len) == (int)len)
			j = b64url_json(buf, len);
		free(buf);
	}
	BN_free(bn);
	return j;
}

/* Sets member name of o to v (stolen); false when v is NULL or out of memory. */
static bool set_member(json_t *o, const char *name, json_t *v)
{
	return v && json_object_set_new(o, name, v) == 0;
}

/* The JWK of public key pk for alg a with key id kid, or NULL (out of memory, a bad key). */
static json_t *jwk_of(EVP_PKEY *pk, const struct pem_alg *a, const char *kid)
{
	json_t *k = json_pack("{s:s, s:s, s:s}", "use", "sig", "alg", a->name, "kid", kid);
	uint8_t raw[32];
	size_t raw_len = 0;
	bool good = k != NULL;

	switch (a->kind) {
	case KEY_RSA:
		good = good && set_member(k, "kty", json_string("RSA")) &&
		       set_member(k, "n", bn_param_json(pk, OSSL_PKEY_PARAM_RSA_N, 0)) &&
		       set_member(k, "e", bn_param_json(pk, OSSL_PKEY_PARAM_RSA_E, 0));
		break;
	case KEY_EC:
		/* RFC 7518 6.2.1.2: each coordinate the full size of the field. */
		good = good && set_member(k, "kty", json_string("EC")) &&
		       set_member(k, "crv", json_string(a->crv)) &&
		       set_member(k, "x", bn_param_json(pk, OSSL_PKEY_PARAM_EC_PUB_X, a->size)) &&
		       set_member(k, "y", bn_param_json(pk, OSSL_PKEY_PARAM_EC_PUB_Y, a->size));
		break;
	case KEY_ED25519:
		good = good &&
		       EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, raw,
		                                       sizeof(raw), &raw_len) == 1 &&
		       raw_len == sizeof(raw) && set_member(k, "kty", json_string("OKP")) &&
		       set_member(k, "crv", json_string(a->crv)) &&
		       set_member(k, "x", b64url_json(raw, raw_len));
		break;
	}
	ERR_clear_error();
	if (!good) {
		json_decref(k);
		return NULL;
	}
	return k;
}

/* The first 16 hex digits of the SHA-256 of pk's DER SubjectPublicKeyInfo into kid[17]; 0 or -1. */
static int kid_of(EVP_PKEY *pk, char kid[17])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int len = i2d_PUBKEY(pk, &der);
	int rc = len > 0 && EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL) == 1 ? 0
	                                                                                       : -1;
	OPENSSL_free(der);
	if (rc == 0)
		hex(md, 8, kid);
	return rc;
}

/*
 * The one public key of pem: a PUBLIC KEY block, or a CERTIFICATE's key.
 * NULL (r failed: invalid) for a private key, no block or more than one,
 * another kind of block, or one OpenSSL cannot read.
 */
static EVP_PKEY *read_public_key(struct bw__admin_req *r, const char *pem)
{
	static const char pub[] = "-----BEGIN PUBLIC KEY-----";
	static const char cert[] = "-----BEGIN CERTIFICATE-----";
	const char *begin = strstr(pem, "-----BEGIN ");
	EVP_PKEY *pk = NULL;

	if (strstr(pem, "PRIVATE KEY-----")) {
		bw__admin_fail(r, BW_ADMIN_E_INVALID,
		               "key: a private key; give its public key (openssl pkey -in KEY "
		               "-pubout): the node never takes private keys");
		return NULL;
	}
	if (!begin || strstr(begin + 1, "-----BEGIN ")) {
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "key: want one PEM block (%s), found %s", pub,
		               begin ? "several" : "none");
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(pem, -1);
	if (!bio) {
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		return NULL;
	}
	if (!strncmp(begin, pub, strlen(pub))) {
		pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	} else if (!strncmp(begin, cert, strlen(cert))) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		pk = x ? X509_get_pubkey(x) : NULL;
		X509_free(x);
	} else {
		BIO_free(bio);
		bw__admin_fail(r, BW_ADMIN_E_INVALID,
		               "key: want a PEM public key (%s) or a certificate (%s)", pub, cert);
		return NULL;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (!pk)
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "key: malformed PEM %s",
		               !strncmp(begin, pub, strlen(pub)) ? "public key" : "certificate");
	return pk;
}

/*
 * The JWK Set {"keys": [the key of pem for alg]} as JSON text (malloc'd),
 * kid the request's or the key's own; NULL (r failed).
 */
static char *jwks_from_pem(struct bw__admin_req *r, const char *pem, const char *alg,
                           const char *kid)
{
	const struct pem_alg *a = find_pem_alg(r, alg);
	char own_kid[17], have[96], *text = NULL;

	if (!a)
		return NULL;
	if (kid && (!*kid || strlen(kid) > BW_JWT_KID_MAX)) {
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "kid: must be 1..%d bytes", BW_JWT_KID_MAX);
		return NULL;
	}
	EVP_PKEY *pk = read_public_key(r, pem);
	if (!pk)
		return NULL;
	if (!key_fits(pk, a)) {
		describe_key(pk, have, sizeof(have));
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "key: %s needs %s, not %s", a->name, a->needs,
		               have);
	} else if (!kid && kid_of(pk, own_kid) < 0) {
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "key: cannot encode it");
	} else {
		json_t *jwk = jwk_of(pk, a, kid ? kid : own_kid);
		json_t *set = jwk ? json_pack("{s:[o]}", "keys", jwk) : NULL;
		text = set ? json_dumps(set, JSON_COMPACT) : NULL;
		json_decref(set);
		if (!text)
			bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "key: cannot make a JWK of it");
	}
	EVP_PKEY_free(pk);
	return text;
}

/* list[0..n) and s when list lacks it, as a new vector (borrowed strings); NULL: no memory. */
static const char **with(const char *const *list, size_t n, const char *s, size_t *out_n)
{
	const char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	if (n)
		memcpy(v, list, n * sizeof(*v));
	*out_n = n;
	if (s && !has(list, n, s))
		v[(*out_n)++] = s;
	return v;
}

static int jwt_result(struct bw__admin_req *r)
{
	const struct bw_tenant *t;
	bw__admin_refresh(r);
	if (!(t = bw__admin_tenant(r, "tenant")))
		return -1;
	return bw__admin_ok(r, json_pack("{s:o}", "jwt", bw__admin_jwt_json(t)));
}

static int set_jwt(struct bw__admin_req *r, const struct bw_tenant *t, const char **iss,
                   size_t iss_n, const char **aud, size_t aud_n, const char *jwks,
                   const char *claim)
{
	char err[768];
	int rc = bw_tenancy_service_tenant_set_jwt(r->ctx->tenancy, t->name, iss, iss_n, aud, aud_n,
	                                           jwks, claim, err, sizeof(err));
	return rc < 0 ? bw__admin_fail_errno(r, rc, err) : jwt_result(r);
}

static int jwt_add(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *issuer = bw__admin_str(r, "issuer"), *jwks = bw__admin_str(r, "jwks");
	const char *key = bw__admin_str(r, "key"), *alg = bw__admin_str(r, "alg");
	const char *kid = bw__admin_str(r, "kid"), *claim = bw__admin_str(r, "tenant_claim");
	size_t iss_n, aud_n;
	char err[512];

	bw__admin_target(r, NULL, issuer);
	if (!t)
		return -1;
	/* The claim name alone first, so that a bad one fails before the keys are looked at. */
	struct bw_tenant alone = { .name = t->name,
		                   .name_len = t->name_len,
		                   .jwt_tenant_claim = claim };
	if (claim && bw_tenancy_tenant_check(&alone, err, sizeof(err)) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "tenant_claim: %s", err);
	if (!jwks == !key)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "args: give jwks, or key and alg");
	if (!key != !alg)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "args: key and alg go together");
	if (kid && !key)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE,
		                      "args: kid goes with key (a JWK Set names its own)");
	char *set = key ? jwks_from_pem(r, key, alg, kid) : NULL;
	if (key && !set)
		return -1;
	char *text = merge_jwks(r, t, key ? set : jwks, key ? "key" : "jwks");
	free(set);
	if (!text)
		return -1;
	const char **iss = with(t->jwt_issuers, t->jwt_issuers_n, issuer, &iss_n);
	const char **aud =
	        with(t->jwt_audiences, t->jwt_audiences_n, bw__admin_str(r, "audience"), &aud_n);
	int rc = iss && aud ? set_jwt(r, t, iss, iss_n, aud, aud_n, text,
	                              claim ? claim : t->jwt_tenant_claim)
	                    : bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	free(iss);
	free(aud);
	free(text);
	return rc;
}

static int jwt_list(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	return t ? bw__admin_ok(r, json_pack("{s:o}", "jwt", bw__admin_jwt_json(t))) : -1;
}

static int jwt_del(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *issuer = bw__admin_str(r, "issuer");

	bw__admin_target(r, NULL, issuer);
	if (!t)
		return -1;
	if (!has(t->jwt_issuers, t->jwt_issuers_n, issuer))
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no issuer \"%s\" in tenant \"%s\"",
		                      issuer, t->name);
	const char **iss = calloc(t->jwt_issuers_n, sizeof(*iss));
	size_t n = 0;
	if (!iss)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	for (size_t i = 0; i < t->jwt_issuers_n; i++) {
		if (strcmp(t->jwt_issuers[i], issuer))
			iss[n++] = t->jwt_issuers[i];
	}
	/* No issuer left would accept any issuer: take the keys and audiences away too. */
	int rc = n ? set_jwt(r, t, iss, n, (const char **)t->jwt_audiences, t->jwt_audiences_n,
	                     t->jwks, t->jwt_tenant_claim)
	           : set_jwt(r, t, NULL, 0, NULL, 0, NULL, t->jwt_tenant_claim);
	free(iss);
	return rc;
}

#define TENANT                                                                                     \
	{                                                                                          \
		"tenant", ARG_STR, true                                                            \
	}

const struct bw__admin_cmd bw__admin_cmds_keys[] = {
	{ "ca.add", ca_add, true, { TENANT, { "pem", ARG_STR, true } } },
	{ "ca.list", ca_list, false, { TENANT } },
	{ "ca.del", ca_del, true, { TENANT, { "fingerprint", ARG_STR, true } } },
	{ "jwt.add",
	  jwt_add,
	  true,
	  { TENANT,
	    { "issuer", ARG_STR, true },
	    { "audience", ARG_STR, false },
	    { "jwks", ARG_STR, false },
	    { "key", ARG_STR, false },
	    { "alg", ARG_STR, false },
	    { "kid", ARG_STR, false },
	    { "tenant_claim", ARG_STR, false } } },
	{ "jwt.list", jwt_list, false, { TENANT } },
	{ "jwt.del", jwt_del, true, { TENANT, { "issuer", ARG_STR, true } } },
	{ NULL },
};
