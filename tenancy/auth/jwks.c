/*
 * Key sets for JWT verification (see jwt.h): reading PEM public keys,
 * certificates and raw HMAC secrets from files, parsing RFC 7517 JWK Sets
 * into OpenSSL keys, the rules that keep key selection unambiguous, and
 * reloading JWKS files when they change.
 *
 * Every loader parses into a staging area first and commits only when the
 * whole input was good, so a failed load leaves the set as it was. Key
 * material never reaches an error message: messages name the file, the
 * key's index and the member, and JSON errors give a line and column but
 * not jansson's text, which quotes the input.
 */
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/jwt_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RSA keys: at least RFC 7518's 2048 bits; at most 16384 bits and a 64-bit
 * exponent, so that one verification stays cheap whatever a JWKS holds. */
#define RSA_BITS_MIN   2048
#define RSA_BITS_MAX   16384
#define RSA_E_BITS_MAX 64
/* RFC 7518 3.2: an HMAC key at least as long as the smallest hash. */
#define OCT_MIN 32

/* Keys parsed but not yet in a set. */
struct staged {
	size_t n;
	struct bw__jwt_key keys[BW_JWT_KEYS_MAX];
};

static int errf(char *err, size_t cap, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Writes the message to err[0..cap) (when there is room) and returns rc. */
static int errf(char *err, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && cap) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void key_clear(struct bw__jwt_key *k)
{
	free(k->kid);
	EVP_PKEY_free(k->pkey);
	if (k->secret)
		OPENSSL_clear_free(k->secret, k->secret_len);
	memset(k, 0, sizeof(*k));
}

static void staged_clear(struct staged *st)
{
	for (size_t i = 0; i < st->n; i++)
		key_clear(&st->keys[i]);
	st->n = 0;
}

/* ---- sets ------------------------------------------------------------------- */

struct bw_jwt_keys *bw_jwt_keys_new(void)
{
	struct bw_jwt_keys *keys = calloc(1, sizeof(*keys));

	if (keys)
		atomic_init(&keys->refs, 1);
	return keys;
}

struct bw_jwt_keys *bw_jwt_keys_ref(struct bw_jwt_keys *keys)
{
	atomic_fetch_add_explicit(&keys->refs, 1, memory_order_relaxed);
	return keys;
}

void bw_jwt_keys_free(struct bw_jwt_keys **keys)
{
	struct bw_jwt_keys *k;

	if (!keys || !*keys)
		return;
	k = *keys;
	*keys = NULL;
	/* acq_rel: the last owner sees every other owner's use finished. */
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < k->n; i++)
		key_clear(&k->keys[i]);
	for (size_t i = 0; i < k->sources_n; i++)
		free(k->sources[i].path);
	free(k);
}

size_t bw_jwt_keys_count(const struct bw_jwt_keys *keys)
{
	return keys ? keys->n : 0;
}

/* Whether s is short printable ASCII, fit to quote in a log line. */
static bool printable(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < 0x20 || s[n] > 0x7e || s[n] == '"' || n >= 64)
			return false;
	}
	return true;
}

/*
 * Two keys a token could not tell apart: algorithms in common, and the same
 * kid or neither a kid (see the top of jwt.h).
 */
static bool ambiguous(const struct bw__jwt_key *a, const struct bw__jwt_key *b)
{
	if (!(a->algs & b->algs))
		return false;
	if (!a->kid || !b->kid)
		return !a->kid && !b->kid;
	return strcmp(a->kid, b->kid) == 0;
}

/*
 * Moves the staged keys into keys, tagged with source, unless one would be
 * ambiguous with a key already there or staged before it, or they would
 * not fit. On failure nothing moves and the staged keys stay the caller's.
 */
static int commit(struct bw_jwt_keys *keys, struct staged *st, int source, const char *what,
                  char *err, size_t cap)
{
	if (st->n > BW_JWT_KEYS_MAX - keys->n)
		return errf(err, cap, -E2BIG, "%s: more than %d keys in the set", what,
		            BW_JWT_KEYS_MAX);
	for (size_t i = 0; i < st->n; i++) {
		const struct bw__jwt_key *k = &st->keys[i];
		bool clash = false;
		for (size_t j = 0; j < keys->n && !clash; j++)
			clash = ambiguous(k, &keys->keys[j]);
		for (size_t j = 0; j < i && !clash; j++)
			clash = ambiguous(k, &st->keys[j]);
		if (clash && k->kid)
			return errf(err, cap, -EEXIST,
			            "%s: kid \"%s\" is taken for one of its algs", what,
			            printable(k->kid) ? k->kid : "(unprintable)");
		if (clash)
			return errf(err, cap, -EEXIST,
			            "%s: a second key without a kid for one of its algs (give each "
			            "a kid)",
			            what);
	}
	for (size_t i = 0; i < st->n; i++) {
		keys->keys[keys->n] = st->keys[i];
		keys->keys[keys->n].source = source;
		keys->n++;
		memset(&st->keys[i], 0, sizeof(st->keys[i]));
	}
	st->n = 0;
	return 0;
}

/* ---- files ------------------------------------------------------------------- */

static void stamp_of(struct bw__jwt_source *src, const struct stat *st)
{
	src->dev = st->st_dev;
	src->ino = st->st_ino;
	src->size = st->st_size;
	src->mtim = st->st_mtim;
	src->ctim = st->st_ctim;
}

/* A stamp no file has: what a source remembers when stat() failed. */
static void stamp_missing(struct bw__jwt_source *src)
{
	src->dev = 0;
	src->ino = 0;
	src->size = -1;
	memset(&src->mtim, 0, sizeof(src->mtim));
	memset(&src->ctim, 0, sizeof(src->ctim));
}

static bool stamp_equal(const struct bw__jwt_source *a, const struct bw__jwt_source *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/*
 * Reads the regular file at path, at most BW_JWT_KEY_FILE_MAX bytes, into
 * *data (the caller frees it with OPENSSL_clear_free(*data, *len): it may
 * hold a secret; one NUL byte follows the data) and its stamp into *stamp
 * (may be NULL). The stamp is the open file's, so it matches the bytes.
 */
static int read_file(const char *path, uint8_t **data, size_t *len, struct bw__jwt_source *stamp,
                     char *err, size_t cap)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc, fd;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, cap, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = errf(err, cap, -errno, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = errf(err, cap, -EINVAL, "%s: not a regular file", path);
		goto out_close;
	}
	if (st.st_size > BW_JWT_KEY_FILE_MAX) {
		rc = errf(err, cap, -EFBIG, "%s: larger than %d bytes", path, BW_JWT_KEY_FILE_MAX);
		goto out_close;
	}
	/* One byte more than the limit, to notice a file that grew meanwhile. */
	buf = malloc(BW_JWT_KEY_FILE_MAX + 2);
	if (!buf) {
		rc = errf(err, cap, -ENOMEM, "%s: out of memory", path);
		goto out_close;
	}
	while (n <= BW_JWT_KEY_FILE_MAX) {
		ssize_t r = read(fd, buf + n, BW_JWT_KEY_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = errf(err, cap, -errno, "%s: %s", path, strerror(errno));
			goto out_free;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > BW_JWT_KEY_FILE_MAX) {
		rc = errf(err, cap, -EFBIG, "%s: larger than %d bytes", path, BW_JWT_KEY_FILE_MAX);
		goto out_free;
	}
	buf[n] = 0;
	if (stamp)
		stamp_of(stamp, &st);
	*data = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out_free:
	if (buf)
		OPENSSL_clear_free(buf, BW_JWT_KEY_FILE_MAX + 2);
out_close:
	close(fd);
	return rc;
}

/* ---- key checks ----------------------------------------------------------------- */

/* RSA of RSA_BITS_MIN..RSA_BITS_MAX bits with an odd exponent of 3..2^64. */
static const char *rsa_unfit(const EVP_PKEY *pkey)
{
	BIGNUM *e = NULL;
	const char *why = NULL;
	int bits = EVP_PKEY_get_bits(pkey);

	if (!EVP_PKEY_is_a(pkey, "RSA"))
		return "not an RSA key";
	if (bits < RSA_BITS_MIN)
		return "RSA key shorter than 2048 bits";
	if (bits > RSA_BITS_MAX)
		return "RSA key longer than 16384 bits";
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e))
		why = "RSA key without an exponent";
	else if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > RSA_E_BITS_MAX)
		why = "RSA exponent out of range";
	BN_free(e);
	ERR_clear_error();
	return why;
}

/* NULL when pkey can verify alg (of a family other than HMAC), or why not. */
static const char *pkey_unfit(const EVP_PKEY *pkey, int alg)
{
	const struct bw__jwt_alg_info *info = bw__jwt_alg(alg);
	char group[64];

	switch (info->family) {
	case BW__JWT_FAM_RSA:
	case BW__JWT_FAM_RSA_PSS:
		return rsa_unfit(pkey);
	case BW__JWT_FAM_EC:
		if (!EVP_PKEY_is_a(pkey, "EC"))
			return "not an EC key";
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL)) {
			ERR_clear_error();
			return "EC key without a named curve";
		}
		return strcmp(group, info->group) == 0 ? NULL : "EC key on the wrong curve";
	case BW__JWT_FAM_ED:
		return EVP_PKEY_is_a(pkey, "ED25519") ? NULL : "not an Ed25519 key";
	case BW__JWT_FAM_HMAC:
		break;
	}
	return "not a public key algorithm";
}

/* ---- PEM and secret files -------------------------------------------------------- */

/* Never asks for a passphrase: only public material is read. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* The first PUBLIC KEY block of data, else the first CERTIFICATE's key. */
static EVP_PKEY *pem_public_key(const uint8_t *data, size_t len)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new_mem_buf(data, (int)len);

	if (bio)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!pkey) {
		bio = BIO_new_mem_buf(data, (int)len);
		X509 *x = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
		if (x)
			pkey = X509_get_pubkey(x);
		X509_free(x);
		BIO_free(bio);
	}
	ERR_clear_error();
	return pkey;
}

static int check_kid(const char *kid, const char *what, char *err, size_t cap)
{
	size_t n = strlen(kid);

	if (n == 0 || n > BW_JWT_KID_MAX)
		return errf(err, cap, -EINVAL, "%s: kid must be 1..%d bytes", what, BW_JWT_KID_MAX);
	return 0;
}

int bw_jwt_keys_add_pem(struct bw_jwt_keys *keys, const char *path, const char *alg,
                        const char *kid, char *err, size_t cap)
{
	struct staged *st = NULL;
	struct bw__jwt_key *k;
	uint8_t *data = NULL;
	size_t len = 0;
	const char *why;
	int rc, a;

	if (!keys || !path || !alg)
		return errf(err, cap, -EINVAL, "bw_jwt_keys_add_pem: missing argument");
	a = bw__jwt_alg_find(alg, strlen(alg));
	if (a < 0)
		return errf(err, cap, -ENOTSUP, "%s: unsupported alg \"%.16s\"", path, alg);
	if (kid && (rc = check_kid(kid, path, err, cap)) != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return errf(err, cap, -ENOMEM, "%s: out of memory", path);
	rc = read_file(path, &data, &len, NULL, err, cap);
	if (rc != 0)
		goto out;
	k = &st->keys[0];
	st->n = 1;
	k->algs = BW__JWT_ALG_BIT(a);
	if (bw__jwt_alg(a)->family == BW__JWT_FAM_HMAC) {
		if (len < bw__jwt_alg(a)->hash_len) {
			rc = errf(err, cap, -EINVAL, "%s: an %s secret needs at least %zu bytes",
			          path, alg, bw__jwt_alg(a)->hash_len);
			goto out;
		}
		k->secret = OPENSSL_memdup(data, len);
		if (!k->secret) {
			rc = errf(err, cap, -ENOMEM, "%s: out of memory", path);
			goto out;
		}
		k->secret_len = len;
	} else {
		k->pkey = pem_public_key(data, len);
		if (!k->pkey) {
			rc = errf(err, cap, -EINVAL, "%s: no PUBLIC KEY or CERTIFICATE PEM block",
			          path);
			goto out;
		}
		why = pkey_unfit(k->pkey, a);
		if (why) {
			rc = errf(err, cap, -EINVAL, "%s: %s, which %s cannot use", path, why, alg);
			goto out;
		}
	}
	if (kid && !(k->kid = strdup(kid))) {
		rc = errf(err, cap, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	rc = commit(keys, st, -1, path, err, cap);
out:
	if (data)
		OPENSSL_clear_free(data, len + 1);
	if (st)
		staged_clear(st);
	free(st);
	return rc;
}

/* ---- JWK Sets ------------------------------------------------------------------- */

/* Where a JWKS being parsed came from, for messages. */
struct jwks_ctx {
	const char *what; /* the path, or "JWKS" */
	size_t idx;       /* the key's index in "keys" */
	char *err;
	size_t cap;
};

/* Decodes the base64url string member of jwk into *out (malloc'd). */
static int jwk_bytes(const json_t *jwk, const char *member, uint8_t **out, size_t *len,
                     const struct jwks_ctx *c)
{
	const json_t *v = json_object_get(jwk, member);
	size_t slen, cap;
	uint8_t *buf;

	*out = NULL;
	if (!json_is_string(v))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"%s\" missing or not a string",
		            c->what, c->idx, member);
	slen = json_string_length(v);
	cap = BW_JWT_B64URL_DECODED_MAX(slen);
	buf = malloc(cap);
	if (!buf)
		return errf(c->err, c->cap, -ENOMEM, "%s: out of memory", c->what);
	if (bw_jwt_b64url_decode(json_string_value(v), slen, buf, cap, len) != 0 || *len == 0) {
		OPENSSL_clear_free(buf, cap);
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"%s\" is not base64url",
		            c->what, c->idx, member);
	}
	*out = buf;
	return 0;
}

static EVP_PKEY *rsa_from_jwk(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
	BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (!bld || !bn_n || !bn_e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	ERR_clear_error();
	return pkey;
}

/*
 * An EC public key on group from x and y (each size bytes), checked to be
 * a valid point of the curve's prime-order group, or NULL.
 */
static EVP_PKEY *ec_from_jwk(const char *group, const uint8_t *x, const uint8_t *y, size_t size)
{
	uint8_t point[1 + 2 * 66];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), *check = NULL;
	EVP_PKEY *pkey = NULL;

	/* SEC 1 uncompressed point: 0x04 || x || y. */
	point[0] = 0x04;
	memcpy(point + 1, x, size);
	memcpy(point + 1 + size, y, size);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size);
	params[2] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		pkey = NULL;
		goto out;
	}
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return pkey;
}

/* Private key members of RSA, EC and OKP JWKs (RFC 7518 6.2.2, 6.3.2; 8037 2). */
static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth" };

/* 1 when the optional "use" and "key_ops" let the key verify signatures. */
static int for_signatures(const json_t *jwk, const struct jwks_ctx *c)
{
	const json_t *use = json_object_get(jwk, "use");
	const json_t *ops = json_object_get(jwk, "key_ops");
	bool verify = false;

	if (use && !json_is_string(use))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"use\" is not a string",
		            c->what, c->idx);
	if (use && strcmp(json_string_value(use), "sig") != 0)
		return 0;
	if (!ops)
		return 1;
	if (!json_is_array(ops))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"key_ops\" is not an array",
		            c->what, c->idx);
	for (size_t i = 0; i < json_array_size(ops); i++) {
		const json_t *op = json_array_get(ops, i);
		if (!json_is_string(op))
			return errf(c->err, c->cap, -EINVAL,
			            "%s: key %zu: \"key_ops\" holds a non-string", c->what, c->idx);
		verify |= strcmp(json_string_value(op), "verify") == 0;
	}
	return verify;
}

/* The key material of an RSA, EC or OKP JWK into k->pkey. */
static int jwk_pkey(const json_t *jwk, const char *kty, int curve_alg, struct bw__jwt_key *k,
                    const struct jwks_ctx *c)
{
	uint8_t *a = NULL, *b = NULL;
	size_t a_len = 0, b_len = 0, size;
	const char *why = NULL;
	int rc;

	if (strcmp(kty, "RSA") == 0) {
		rc = jwk_bytes(jwk, "n", &a, &a_len, c);
		if (rc == 0)
			rc = jwk_bytes(jwk, "e", &b, &b_len, c);
		if (rc == 0 && !(k->pkey = rsa_from_jwk(a, a_len, b, b_len)))
			why = "not a valid RSA public key";
		if (rc == 0 && k->pkey)
			why = rsa_unfit(k->pkey);
	} else if (strcmp(kty, "EC") == 0) {
		size = bw__jwt_alg(curve_alg)->sig_len / 2;
		rc = jwk_bytes(jwk, "x", &a, &a_len, c);
		if (rc == 0)
			rc = jwk_bytes(jwk, "y", &b, &b_len, c);
		/* RFC 7518 6.2.1.2: coordinates are the full size of the field. */
		if (rc == 0 && (a_len != size || b_len != size))
			why = "\"x\" or \"y\" is not the curve's size";
		else if (rc == 0 &&
		         !(k->pkey = ec_from_jwk(bw__jwt_alg(curve_alg)->group, a, b, size)))
			why = "not a point of the curve";
	} else {
		rc = jwk_bytes(jwk, "x", &a, &a_len, c);
		if (rc == 0 && a_len != 32)
			why = "\"x\" is not 32 bytes";
		else if (rc == 0 && !(k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519",
		                                                               NULL, a, a_len)))
			why = "not a valid Ed25519 public key";
		ERR_clear_error();
	}
	free(a);
	free(b);
	if (rc == 0 && why)
		rc = errf(c->err, c->cap, -EINVAL, "%s: key %zu: %s", c->what, c->idx, why);
	return rc;
}

/*
 * The algorithms a JWK's kty (and crv) allow, and for EC and OKP the one
 * curve alg in *curve_alg; 0 for a kind this code does not understand.
 * Sets *bad on a crv of the wrong type.
 */
static uint32_t kty_algs(const json_t *jwk, const char *kty, int *curve_alg, bool *bad)
{
	const json_t *crv = json_object_get(jwk, "crv");
	const char *name = json_string_value(crv); /* NULL unless a string */

	*curve_alg = -1;
	*bad = false;
	if (strcmp(kty, "RSA") == 0)
		return BW__JWT_RSA_ALL;
	if (strcmp(kty, "oct") == 0)
		return BW__JWT_HS_ALL;
	if (strcmp(kty, "EC") != 0 && strcmp(kty, "OKP") != 0)
		return 0;
	if (!name) {
		*bad = true;
		return 0;
	}
	if (strcmp(kty, "EC") == 0 && strcmp(name, "P-256") == 0)
		*curve_alg = BW__JWT_ES256;
	else if (strcmp(kty, "EC") == 0 && strcmp(name, "P-384") == 0)
		*curve_alg = BW__JWT_ES384;
	else if (strcmp(kty, "OKP") == 0 && strcmp(name, "Ed25519") == 0)
		*curve_alg = BW__JWT_EDDSA;
	return *curve_alg < 0 ? 0 : BW__JWT_ALG_BIT(*curve_alg);
}

/*
 * Stages one JWK. Returns 1 when it was staged, 0 when it was skipped (a
 * kind, use or alg this code leaves alone) or -errno with a message.
 */
static int parse_jwk(const json_t *jwk, struct staged *st, const struct jwks_ctx *c)
{
	const json_t *v_kty = json_object_get(jwk, "kty");
	const json_t *v_alg = json_object_get(jwk, "alg");
	const json_t *v_kid = json_object_get(jwk, "kid");
	struct bw__jwt_key k = { .source = -1 };
	const char *kty;
	uint32_t fits;
	int rc, alg = -1, curve_alg;
	bool bad_crv;

	if (!json_is_object(jwk))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu is not an object", c->what,
		            c->idx);
	if (!json_is_string(v_kty))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"kty\" missing or not a string",
		            c->what, c->idx);
	kty = json_string_value(v_kty);
	fits = kty_algs(jwk, kty, &curve_alg, &bad_crv);
	if (bad_crv)
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"crv\" missing or not a string",
		            c->what, c->idx);
	if (!fits)
		return 0;
	rc = for_signatures(jwk, c);
	if (rc <= 0)
		return rc;
	if (v_alg && !json_is_string(v_alg))
		return errf(c->err, c->cap, -EINVAL, "%s: key %zu: \"alg\" is not a string",
		            c->what, c->idx);
	if (v_alg) {
		alg = bw__jwt_alg_find(json_string_value(v_alg), json_string_length(v_alg));
		if (alg < 0)
			return 0; /* RSA-OAEP, ES512, "none", ...: never used */
		if (!(fits & BW__JWT_ALG_BIT(alg)))
			return errf(c->err, c->cap, -EINVAL,
			            "%s: key %zu: \"alg\" does not fit its kty or crv", c->what,
			            c->idx);
	}
	if (v_kid && (!json_is_string(v_kid) || json_string_length(v_kid) == 0 ||
	              json_string_length(v_kid) > BW_JWT_KID_MAX))
		return errf(c->err, c->cap, -EINVAL,
		            "%s: key %zu: \"kid\" is not a string of 1..%d bytes", c->what, c->idx,
		            BW_JWT_KID_MAX);
	if (st->n == BW_JWT_KEYS_MAX)
		return errf(c->err, c->cap, -E2BIG, "%s: more than %d keys", c->what,
		            BW_JWT_KEYS_MAX);

	k.algs = alg >= 0 ? BW__JWT_ALG_BIT(alg) : fits;
	if (strcmp(kty, "oct") == 0) {
		size_t min = alg >= 0 ? bw__jwt_alg(alg)->hash_len : OCT_MIN;
		rc = jwk_bytes(jwk, "k", &k.secret, &k.secret_len, c);
		if (rc == 0 && k.secret_len < min)
			rc = errf(c->err, c->cap, -EINVAL,
			          "%s: key %zu: \"k\" shorter than %zu bytes", c->what, c->idx,
			          min);
	} else {
		rc = 0;
		for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
			if (json_object_get(jwk, private_members[i]))
				rc = errf(c->err, c->cap, -EINVAL,
				          "%s: key %zu: holds private key material (\"%s\"); "
				          "publish only public keys",
				          c->what, c->idx, private_members[i]);
		}
		if (rc == 0)
			rc = jwk_pkey(jwk, kty, curve_alg, &k, c);
	}
	if (rc == 0 && v_kid && !(k.kid = strdup(json_string_value(v_kid))))
		rc = errf(c->err, c->cap, -ENOMEM, "%s: out of memory", c->what);
	if (rc != 0) {
		key_clear(&k);
		return rc;
	}
	st->keys[st->n++] = k;
	return 1;
}

/* Stages every usable key of the JWK Set json[0..len). */
static int parse_jwks(const char *json, size_t len, struct staged *st, const char *what, char *err,
                      size_t cap)
{
	struct jwks_ctx c = { .what = what, .err = err, .cap = cap };
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *list;
	size_t skipped = 0;
	int rc = 0;

	if (!root)
		return errf(err, cap, -EINVAL, "%s: not valid JSON (line %d, column %d)", what,
		            jerr.line, jerr.column);
	list = json_object_get(root, "keys");
	if (!json_is_array(list)) {
		rc = errf(err, cap, -EINVAL, "%s: no \"keys\" array", what);
		goto out;
	}
	for (c.idx = 0; c.idx < json_array_size(list); c.idx++) {
		rc = parse_jwk(json_array_get(list, c.idx), st, &c);
		if (rc < 0)
			goto out;
		skipped += rc == 0;
	}
	rc = 0;
	if (st->n == 0)
		rc = errf(err, cap, -EINVAL, "%s: no usable signing key (%zu skipped)", what,
		          skipped);
out:
	json_decref(root);
	return rc;
}

int bw_jwt_keys_parse_jwks(struct bw_jwt_keys *keys, const char *json, size_t len, char *err,
                           size_t cap)
{
	struct staged *st;
	int rc;

	if (!keys || (!json && len))
		return errf(err, cap, -EINVAL, "bw_jwt_keys_parse_jwks: missing argument");
	st = calloc(1, sizeof(*st));
	if (!st)
		return errf(err, cap, -ENOMEM, "JWKS: out of memory");
	rc = parse_jwks(json, len, st, "JWKS", err, cap);
	if (rc == 0)
		rc = commit(keys, st, -1, "JWKS", err, cap);
	staged_clear(st);
	free(st);
	return rc;
}

/* Reads, parses and commits the JWKS file at path as a new source of keys. */
static int load_jwks_file(struct bw_jwt_keys *keys, const char *path, char *err, size_t cap)
{
	struct bw__jwt_source src = { 0 };
	struct staged *st = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (keys->sources_n == BW_JWT_SOURCES_MAX)
		return errf(err, cap, -E2BIG, "%s: more than %d JWKS files", path,
		            BW_JWT_SOURCES_MAX);
	for (size_t i = 0; i < keys->sources_n; i++) {
		if (strcmp(keys->sources[i].path, path) == 0)
			return errf(err, cap, -EEXIST, "%s: loaded already", path);
	}
	st = calloc(1, sizeof(*st));
	src.path = strdup(path);
	if (!st || !src.path) {
		rc = errf(err, cap, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	rc = read_file(path, &data, &len, &src, err, cap);
	if (rc == 0)
		rc = parse_jwks((const char *)data, len, st, path, err, cap);
	if (rc == 0)
		rc = commit(keys, st, (int)keys->sources_n, path, err, cap);
	if (rc == 0) {
		keys->sources[keys->sources_n++] = src;
		src.path = NULL;
	}
out:
	if (data)
		OPENSSL_clear_free(data, len + 1);
	if (st)
		staged_clear(st);
	free(st);
	free(src.path);
	return rc;
}

int bw_jwt_keys_load_jwks(struct bw_jwt_keys *keys, const char *path, char *err, size_t cap)
{
	if (!keys || !path)
		return errf(err, cap, -EINVAL, "bw_jwt_keys_load_jwks: missing argument");
	return load_jwks_file(keys, path, err, cap);
}

/* ---- reload ----------------------------------------------------------------------- */

/* Copies the stamp of src into dst, keeping dst's path. */
static void stamp_copy(struct bw__jwt_source *dst, const struct bw__jwt_source *src)
{
	char *path = dst->path;

	*dst = *src;
	dst->path = path;
}

/* Shares cur's keys that came from no JWKS file with next (empty so far). */
static int share_fixed_keys(struct bw_jwt_keys *next, const struct bw_jwt_keys *cur)
{
	for (size_t i = 0; i < cur->n; i++) {
		const struct bw__jwt_key *from = &cur->keys[i];
		struct bw__jwt_key *to = &next->keys[next->n];
		if (from->source >= 0)
			continue;
		to->algs = from->algs;
		to->source = -1;
		next->n++; /* from here on, freeing next frees what to holds */
		if (from->kid && !(to->kid = strdup(from->kid)))
			return -ENOMEM;
		if (from->pkey) {
			if (!EVP_PKEY_up_ref(from->pkey))
				return -ENOMEM;
			to->pkey = from->pkey;
		}
		if (from->secret) {
			to->secret = OPENSSL_memdup(from->secret, from->secret_len);
			if (!to->secret)
				return -ENOMEM;
			to->secret_len = from->secret_len;
		}
	}
	return 0;
}

int bw_jwt_keys_reload_if_changed(struct bw_jwt_keys *cur, struct bw_jwt_keys **fresh, char *err,
                                  size_t cap)
{
	struct bw__jwt_source seen[BW_JWT_SOURCES_MAX];
	struct bw_jwt_keys *next = NULL;
	bool changed = false;
	int rc = 0;

	if (fresh)
		*fresh = NULL;
	if (!cur || !fresh)
		return errf(err, cap, -EINVAL, "bw_jwt_keys_reload_if_changed: missing argument");
	for (size_t i = 0; i < cur->sources_n; i++) {
		struct stat st;
		if (stat(cur->sources[i].path, &st) == 0)
			stamp_of(&seen[i], &st);
		else
			stamp_missing(&seen[i]);
		changed |= !stamp_equal(&seen[i], &cur->sources[i]);
	}
	if (!changed)
		return 0;

	next = bw_jwt_keys_new();
	if (!next)
		rc = errf(err, cap, -ENOMEM, "JWKS reload: out of memory");
	if (rc == 0 && share_fixed_keys(next, cur) != 0)
		rc = errf(err, cap, -ENOMEM, "JWKS reload: out of memory");
	for (size_t i = 0; rc == 0 && i < cur->sources_n; i++)
		rc = load_jwks_file(next, cur->sources[i].path, err, cap);
	if (rc != 0) {
		/* Keep cur; remember what was seen so one bad file is one report. */
		bw_jwt_keys_free(&next);
		for (size_t i = 0; i < cur->sources_n; i++)
			stamp_copy(&cur->sources[i], &seen[i]);
		return rc;
	}
	/* cur is being replaced; if the caller keeps it anyway, it stays quiet. */
	for (size_t i = 0; i < cur->sources_n; i++)
		stamp_copy(&cur->sources[i], &next->sources[i]);
	*fresh = next;
	return 1;
}
