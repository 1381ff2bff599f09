/*
 * JSON Web Tokens (RFC 7519) as MQTT passwords: a set of trusted public keys
 * and HMAC secrets (PEM files, raw secret files, RFC 7517 JWK Sets), a
 * verifier for compact JWS tokens (RFC 7515) signed with HS256/384/512,
 * RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA (Ed25519), the claim
 * checks a broker needs (exp, nbf, iat, iss, aud) and read-only access to
 * the verified claims. All cryptography is OpenSSL 3's; JSON is jansson's.
 *
 * Key selection, which is where JWT verifiers usually go wrong:
 *
 * 1. Every key carries the set of algorithms it may verify, fixed when it is
 *    loaded: the alg named for a PEM or secret file; a JWK's "alg", or, when
 *    it has none, every algorithm of its kty (RSA: RS* and PS*; oct: HS*)
 *    and curve (P-256: ES256; P-384: ES384; Ed25519: EdDSA). The token's
 *    "alg" only ever narrows that set, so an RSA or EC key can never be
 *    used as an HMAC secret (algorithm confusion) and "none" is never
 *    accepted.
 * 2. A token with a "kid" uses the key with that kid, or, when no key has
 *    it, the one kid-less key for its alg. No such key, or a kid naming a
 *    key for other algs: -ENOKEY.
 * 3. A token without a "kid" uses the one key for its alg; when there are
 *    several, the token must name one (-ENOKEY "kid required").
 * 4. Loading refuses a kid that an existing key with an overlapping
 *    algorithm set already has, and a second kid-less key for an algorithm,
 *    so steps 2 and 3 always find at most one key: one signature check per
 *    token, whatever it claims.
 *
 * Keys are immutable once published: load them into a new set, then hand
 * it to the threads that verify; bw_jwt_verify() only reads the set and may
 * run on any number of threads at once. Sets are reference counted so a
 * reload can replace one while verifications against the old one finish.
 */
#ifndef BW_JWT_H
#define BW_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted when the policy says 0, and the most it may say. */
#define BW_JWT_TOKEN_MAX_DEFAULT 8192
#define BW_JWT_TOKEN_MAX_LIMIT   65536
/* Most clock leeway a policy may allow (a day). */
#define BW_JWT_LEEWAY_MAX_S 86400
/* Most keys in one set, JWKS sources a set may track, bytes of a key file. */
#define BW_JWT_KEYS_MAX     64
#define BW_JWT_SOURCES_MAX  8
#define BW_JWT_KEY_FILE_MAX (256 * 1024)
/* Longest kid kept; a longer one in a file or token is refused. */
#define BW_JWT_KID_MAX 256

struct bw_jwt_keys;
struct bw_jwt_claims;

/*
 * What a valid token must also satisfy. A zeroed policy is the default:
 * any issuer, no audience (so a token carrying "aud" is refused, as RFC
 * 7519 4.1.3 asks), no leeway, BW_JWT_TOKEN_MAX_DEFAULT bytes, exp
 * required. The lists are borrowed for the duration of each call.
 */
struct bw_jwt_policy {
	/* Non-empty: "iss" must be present and equal one of these. */
	const char *const *issuers;
	size_t issuers_n;
	/* Non-empty: "aud" (a string or an array of strings) must hold one. */
	const char *const *audiences;
	size_t audiences_n;
	/* Clock skew allowed on exp, nbf and iat; 0..BW_JWT_LEEWAY_MAX_S. */
	int64_t leeway_s;
	/* Longest token; 0: BW_JWT_TOKEN_MAX_DEFAULT; at most _LIMIT. */
	size_t token_max;
	/* A token without "exp" passes (it never expires). */
	bool exp_optional;
};

/* ---- keys ------------------------------------------------------------------- */

/* A new empty set with one reference, or NULL when out of memory. */
struct bw_jwt_keys *bw_jwt_keys_new(void);

/* Takes another reference to keys (thread-safe); returns keys. */
struct bw_jwt_keys *bw_jwt_keys_ref(struct bw_jwt_keys *keys);

/*
 * Drops the caller's reference and NULLs *keys; the set is freed with its
 * last reference. Thread-safe. NULL and *keys == NULL are accepted.
 */
void bw_jwt_keys_free(struct bw_jwt_keys **keys);

/* Number of keys in the set. */
size_t bw_jwt_keys_count(const struct bw_jwt_keys *keys);

/*
 * Adds one key from the file at path for algorithm alg ("RS256", "PS384",
 * "ES256", "EdDSA", "HS512", ...; exact spelling), with key id kid (NULL:
 * none). RS, PS, ES and EdDSA read the first "PUBLIC KEY" or "CERTIFICATE"
 * PEM block (a certificate only carries the key: its dates and issuer are
 * not checked) and require the key's type to fit the alg: RSA of at least
 * 2048 bits, EC on P-256 (ES256) or P-384 (ES384), Ed25519. HS* takes the
 * file's bytes exactly as they are (a trailing newline is part of the
 * secret), at least the hash's length (32, 48 or 64 bytes, RFC 7518 3.2).
 * Private keys are never read. Returns 0, or -errno with a message (path
 * and reason, never key bytes) in err[0..cap): -ENOENT and friends from
 * the file, -EFBIG over BW_JWT_KEY_FILE_MAX, -EINVAL for a bad kid or key
 * (or a path that is not a regular file), -ENOTSUP for "none" or an alg not
 * listed above, -EEXIST when the
 * kid (or, without one, the alg) is taken, -E2BIG when the set is full,
 * -ENOMEM. On failure the set is unchanged. Not thread-safe: load a set
 * before publishing it.
 */
int bw_jwt_keys_add_pem(struct bw_jwt_keys *keys, const char *path, const char *alg,
                        const char *kid, char *err, size_t cap);

/*
 * Adds the signing keys of the JWK Set (RFC 7517) in the file at path and
 * remembers the file for bw_jwt_keys_reload_if_changed(). Understood: kty
 * RSA (n, e; at least 2048 bits), EC (crv P-256 or P-384; x and y of the
 * curve's full size), OKP (crv Ed25519; x) and oct (k, at least 32 bytes),
 * each with an optional "kid", "alg" (which must fit the kty and curve),
 * "use" and "key_ops". Skipped, as RFC 7517 5 suggests: keys whose "use"
 * is not "sig", whose "key_ops" lacks "verify", of another kty, curve or
 * alg (RSA-OAEP, ES512, X25519, Ed448, ...). Refused, with the whole file:
 * anything malformed in a key of an understood kind, private key members
 * (d, p, q, ...), a duplicate kid (see the top of this file), a set with no
 * usable key. Returns 0 or -errno like bw_jwt_keys_add_pem(), plus -E2BIG
 * when the set tracks BW_JWT_SOURCES_MAX files already. On failure the set
 * is unchanged. Not thread-safe.
 */
int bw_jwt_keys_load_jwks(struct bw_jwt_keys *keys, const char *path, char *err, size_t cap);

/*
 * The same from json[0..len) in memory (no file is remembered). For keys
 * that come from somewhere other than a file, and for the fuzz driver.
 */
int bw_jwt_keys_parse_jwks(struct bw_jwt_keys *keys, const char *json, size_t len, char *err,
                           size_t cap);

/*
 * Checks the JWKS files cur was loaded from (device, inode, size, mtime and
 * ctime). None changed: returns 0 and sets *fresh = NULL. Some changed:
 * builds a new set holding cur's PEM and secret keys (shared) and every
 * JWKS file read afresh; on success returns 1 with the new set (one
 * reference, the caller's) in *fresh, and cur is left as it was for the
 * caller to drop once it has published the new one. When a changed file
 * is bad, returns -errno with a message in err, sets *fresh = NULL and
 * keeps nothing from the attempt: cur stays valid and in use. cur then
 * remembers the bad file's stamp, so a bad file is reported once, not on
 * every call, until it changes again. Call from one thread at a time; it
 * writes only those stamps, which bw_jwt_verify() never reads.
 */
int bw_jwt_keys_reload_if_changed(struct bw_jwt_keys *cur, struct bw_jwt_keys **fresh, char *err,
                                  size_t cap);

/* ---- verification ------------------------------------------------------------ */

/*
 * Verifies the compact JWS token[0..len) (not NUL-terminated; no
 * whitespace) against keys and policy at time now_s (seconds since the
 * epoch). Accepts exactly three base64url segments (no padding, canonical
 * trailing bits) whose first two are JSON objects without duplicate
 * members; a header without "crit", whose "alg" is one of those above
 * (exact spelling) and fits the key chosen as the top of this file says;
 * a signature of the alg's exact length that verifies over the first two
 * segments; then claims where "exp", "nbf" and "iat", when present, are
 * numbers with exp > now - leeway, nbf <= now + leeway and iat <= now +
 * leeway; "iss", "sub" and "aud", when present, have their RFC 7519 types;
 * and the policy's issuer, audience and exp rules hold. Header members
 * "jku", "jwk", "x5u" and "x5c" are ignored: keys come only from keys.
 *
 * Returns 0 with the claims in *out (the caller frees them with
 * bw_jwt_claims_free(); out may be NULL to only check), or a negative
 * errno with *out = NULL:
 *   -EINVAL       keys, policy or token NULL, or a policy out of range;
 *   -EMSGSIZE     longer than the policy allows;
 *   -EBADMSG      malformed: segments, base64url, JSON, member types,
 *                 signature length;
 *   -ENOTSUP      alg "none" (any spelling), an unknown alg, "crit";
 *   -ENOKEY       no key for the token's kid and alg (or an HMAC secret
 *                 too short for the alg), or kid required;
 *   -EKEYREJECTED the signature does not verify;
 *   -EKEYEXPIRED  expired;
 *   -EACCES       not yet valid, issued in the future, exp missing, wrong
 *                 issuer or audience;
 *   -ENOMEM.
 * In every case *why (why may be NULL) is a static string for logs saying
 * which check decided, "ok" on success; it never holds token content or key
 * material. Thread-safe for a published keys set.
 */
int bw_jwt_verify(const struct bw_jwt_keys *keys, const struct bw_jwt_policy *policy,
                  const char *token, size_t len, int64_t now_s, struct bw_jwt_claims **out,
                  const char **why);

/* ---- claims ------------------------------------------------------------------ */

/*
 * The string claim name, or NULL when it is absent or not a string. A name
 * that is not a top-level member but holds dots is followed as a path
 * through nested objects ("realm.tenant" is payload.realm.tenant), at most
 * 8 levels; a top-level member whose name holds dots ("https://x.io/t")
 * wins over the path. Claim strings never hold a NUL byte (JSON \u0000 is
 * refused). The string belongs to claims.
 */
const char *bw_jwt_claim_string(const struct bw_jwt_claims *claims, const char *name);

/* "sub", or NULL when absent. Belongs to claims. */
const char *bw_jwt_claims_sub(const struct bw_jwt_claims *claims);

/* "exp" in whole seconds (rounded down), or 0 when absent (exp_optional). */
int64_t bw_jwt_claims_exp(const struct bw_jwt_claims *claims);

/* Frees *claims and NULLs it; NULL and *claims == NULL are accepted. */
void bw_jwt_claims_free(struct bw_jwt_claims **claims);

/* ---- base64url --------------------------------------------------------------- */

/* Bytes that decoding len base64url characters can produce, at most. */
#define BW_JWT_B64URL_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/*
 * Decodes in[0..len), unpadded base64url (RFC 4648 5, as RFC 7515 2 uses
 * it), into out[0..cap) and sets *out_len. Refuses "=" padding, characters
 * outside A-Z a-z 0-9 - _, a length of 4n + 1, and a last character whose
 * unused low bits are not zero (so each byte string has one encoding).
 * Returns 0, -EINVAL for bad input, or -ENOBUFS when cap is less than the
 * decoded length (judged from len alone, before anything is written); out
 * may hold a partial result after -EINVAL. in may be NULL when len is 0.
 */
int bw_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
