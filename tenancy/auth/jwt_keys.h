/*
 * Internals shared by jwt.c (verification) and jwks.c (loading keys): the
 * algorithm table and the layout of a key set. Nothing outside
 * tenancy/auth/ includes this; the public interface is jwt.h.
 */
#ifndef BW_JWT_KEYS_H
#define BW_JWT_KEYS_H

#include "tenancy/auth/jwt.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The algorithms a key may verify; bit (1u << alg) in a key's mask. */
enum bw__jwt_alg {
	BW__JWT_HS256,
	BW__JWT_HS384,
	BW__JWT_HS512,
	BW__JWT_RS256,
	BW__JWT_RS384,
	BW__JWT_RS512,
	BW__JWT_PS256,
	BW__JWT_PS384,
	BW__JWT_PS512,
	BW__JWT_ES256,
	BW__JWT_ES384,
	BW__JWT_EDDSA,
	BW__JWT_ALG_COUNT
};

#define BW__JWT_ALG_BIT(a) (1u << (a))
#define BW__JWT_HS_ALL                                                                             \
	(BW__JWT_ALG_BIT(BW__JWT_HS256) | BW__JWT_ALG_BIT(BW__JWT_HS384) |                         \
	 BW__JWT_ALG_BIT(BW__JWT_HS512))
#define BW__JWT_RSA_ALL                                                                            \
	(BW__JWT_ALG_BIT(BW__JWT_RS256) | BW__JWT_ALG_BIT(BW__JWT_RS384) |                         \
	 BW__JWT_ALG_BIT(BW__JWT_RS512) | BW__JWT_ALG_BIT(BW__JWT_PS256) |                         \
	 BW__JWT_ALG_BIT(BW__JWT_PS384) | BW__JWT_ALG_BIT(BW__JWT_PS512))

enum bw__jwt_family {
	BW__JWT_FAM_HMAC,
	BW__JWT_FAM_RSA,     /* RSASSA-PKCS1-v1_5 */
	BW__JWT_FAM_RSA_PSS, /* RSASSA-PSS, MGF1 with the same hash, salt = hash length */
	BW__JWT_FAM_EC,      /* ECDSA, JOSE r || s */
	BW__JWT_FAM_ED,      /* Ed25519 (pure, no prehash) */
};

struct bw__jwt_alg_info {
	const char *name; /* JOSE "alg", exact spelling */
	enum bw__jwt_family family;
	const char *md;    /* OpenSSL digest name; NULL for EdDSA */
	size_t hash_len;   /* digest bytes: HMAC minimum secret, PSS salt */
	const char *group; /* EC: the OpenSSL group name the key must have */
	size_t sig_len;    /* exact signature bytes; 0: the RSA modulus size */
};

/* The table entry for alg (which must be < BW__JWT_ALG_COUNT). */
const struct bw__jwt_alg_info *bw__jwt_alg(enum bw__jwt_alg alg);

/* The alg named name[0..len) exactly, or -1. */
int bw__jwt_alg_find(const char *name, size_t len);

/* One trusted key. Immutable once in a published set. */
struct bw__jwt_key {
	char *kid;       /* NUL-terminated, or NULL: no kid */
	uint32_t algs;   /* BW__JWT_ALG_BIT()s this key may verify */
	EVP_PKEY *pkey;  /* RSA, EC, Ed25519; NULL for HMAC */
	uint8_t *secret; /* HMAC secret; NULL otherwise */
	size_t secret_len;
	int source; /* index in bw_jwt_keys.sources, or -1 (PEM, secret file) */
};

/* A JWKS file a set was loaded from, and the stamp it had. */
struct bw__jwt_source {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

struct bw_jwt_keys {
	atomic_uint refs;
	size_t n;
	struct bw__jwt_key keys[BW_JWT_KEYS_MAX];
	size_t sources_n;
	struct bw__jwt_source sources[BW_JWT_SOURCES_MAX];
};

#endif
