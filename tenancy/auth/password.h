/*
 * Password hashes: making them, checking a password against one, and the
 * `bulwark --hash-password` helper. Three encodings are understood:
 *
 *   $7$<iterations>$<salt>$<hash>     Mosquitto 2.x (mosquitto_passwd's
 *       default): PBKDF2-HMAC-SHA512, a 64-byte hash, salt and hash in
 *       standard base64 with '=' padding. Written with a 12-byte salt, as
 *       mosquitto_passwd does, and BW_PBKDF2_ITERATIONS iterations.
 *   $6$<salt>$<hash>                  Mosquitto 1.x: SHA-512(password ||
 *       salt), same base64. Verified for import, never written.
 *   $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
 *       the PHC string of libargon2 (base64 without padding). Written with
 *       BW_ARGON2_* below; $argon2i$ and $argon2d$ are verified too.
 *
 * A hash is data from a file, and a hostile or careless file must not be
 * able to stall the broker or exhaust its memory: costs are checked against
 * a struct bw_password_limits before any work (defaults below) and a hash
 * above them is refused as malformed. Salts, hashes and numbers have exactly
 * one spelling: base64 must be canonical, numbers carry no sign or leading
 * zero.
 *
 * Passwords are bytes (MQTT's Password field is binary data); NUL bytes are
 * hashed like any other, with one exception that comes with HMAC: PBKDF2
 * pads a password shorter than 128 bytes with zeros, so "pw" and "pw\0"
 * give the same $7$ hash. Nothing here keeps a pointer to its arguments.
 */
#ifndef BW_AUTH_PASSWORD_H
#define BW_AUTH_PASSWORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum bw_hash_kind {
	BW_HASH_PBKDF2,   /* "$7$", readable by Mosquitto 2.x */
	BW_HASH_ARGON2ID, /* "$argon2id$" */
};

/* Longest password: MQTT's Password field is at most 65535 bytes. */
#define BW_PASSWORD_LEN_MAX 65535u

/* Room enough for any hash bw_password_hash() writes, NUL included. */
#define BW_PASSWORD_HASH_MAX 256u

/* Longest encoded hash bw_password_verify() parses (longer is malformed). */
#define BW_PASSWORD_ENCODED_MAX 512u

/*
 * What bw_password_hash() writes. PBKDF2: 210,000 iterations of
 * HMAC-SHA512 (OWASP's 2023 figure; mosquitto_passwd 2.0 writes 101, which
 * is verified all the same), a 12-byte salt. Argon2id: 3 passes over
 * 64 MiB in one lane (RFC 9106's second recommended option), 16-byte salt,
 * 32-byte hash.
 */
#define BW_PBKDF2_ITERATIONS 210000u
#define BW_PBKDF2_SALT_LEN   12u
#define BW_ARGON2_T          3u
#define BW_ARGON2_M_KIB      65536u
#define BW_ARGON2_P          1u
#define BW_ARGON2_SALT_LEN   16u
#define BW_ARGON2_HASH_LEN   32u

/*
 * Costs a hash may ask for. bw_password_verify() uses
 * bw_password_limits_default: PBKDF2 at most 10,000,000 iterations (some
 * seconds of one core), Argon2 at most 1 GiB (1048576 KiB), 16 passes and 16
 * lanes.
 */
struct bw_password_limits {
	uint32_t pbkdf2_iterations_max;
	uint32_t argon2_m_kib_max;
	uint32_t argon2_t_max;
	uint32_t argon2_p_max;
};

extern const struct bw_password_limits bw_password_limits_default;

/*
 * Hashes pw[0..len) with a fresh salt from getrandom() and writes the
 * encoded hash, NUL-terminated, to out[0..cap). Returns 0, -EINVAL (unknown
 * kind, len above BW_PASSWORD_LEN_MAX), -ENOSPC (cap too small; use
 * BW_PASSWORD_HASH_MAX), -ENOMEM, or -EIO (random source or crypto library
 * failed). Takes about as long as a verify of the same hash.
 */
int bw_password_hash(const char *pw, size_t len, enum bw_hash_kind kind, char *out, size_t cap);

/*
 * Checks pw[0..len) against the NUL-terminated encoded hash. Returns 0 on a
 * match, -EACCES on a mismatch, -EINVAL when the hash is malformed, of an
 * unknown kind or costs more than bw_password_limits_default allows (or len
 * is above BW_PASSWORD_LEN_MAX), -ENOMEM or -EIO. Hash bytes are compared
 * in constant time.
 */
int bw_password_verify(const char *pw, size_t len, const char *encoded);

/* bw_password_verify() with other limits (tests, fuzzing, a config). */
int bw_password_verify_limited(const char *pw, size_t len, const char *encoded,
                               const struct bw_password_limits *lim);

/*
 * Checks that encoded[0..len) is a well-formed hash within lim without
 * hashing anything. Returns 0, or -EINVAL with *why (when why is not NULL)
 * set to a static phrase saying what is wrong ("salt is not canonical
 * base64", ...).
 */
int bw_password_hash_check(const char *encoded, size_t len, const struct bw_password_limits *lim,
                           const char **why);

/*
 * `bulwark --hash-password`: reads one line from in (at most
 * BW_PASSWORD_LEN_MAX bytes, without echo when in is a terminal, after a
 * "Password: " prompt on stderr), strips a trailing "\n" or "\r\n", and
 * writes its hash and "\n" to out. Returns 0, -EINVAL (empty password or end
 * of input before any byte), -E2BIG (line too long), -EIO (read or write
 * failed), or an error of bw_password_hash(). The password is wiped from
 * memory before returning.
 */
int bw_password_hash_cli(FILE *in, FILE *out, enum bw_hash_kind kind);

#endif
