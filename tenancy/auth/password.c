/*
 * Password hashing and verification (see password.h). An encoded hash is
 * first parsed into a struct parsed (kind, costs, salt, hash) and checked
 * against the limits, so nothing is computed for a hash that would be
 * refused; the password is then hashed with the same parameters and the two
 * hashes compared with CRYPTO_memcmp(). Base64 is done here rather than with
 * OpenSSL's BIOs, which accept many spellings of the same bytes.
 */
#include "tenancy/auth/password.h"

#include <argon2.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

const struct bw_password_limits bw_password_limits_default = {
	.pbkdf2_iterations_max = 10000000,
	.argon2_m_kib_max = 1048576,
	.argon2_t_max = 16,
	.argon2_p_max = 16,
};

/* Salt and hash sizes accepted from an encoded hash. */
#define SALT_MAX        64u
#define HASH_MAX        64u
#define SHA512_LEN      64u
#define ARGON2_SALT_MIN 8u
#define ARGON2_HASH_MIN 16u

enum algo { ALGO_SHA512, ALGO_PBKDF2, ALGO_ARGON2 };

struct parsed {
	enum algo algo;
	argon2_type argon2_type;
	uint32_t iterations; /* PBKDF2 */
	uint32_t m_kib, t, p;
	uint8_t salt[SALT_MAX];
	size_t salt_len;
	uint8_t hash[HASH_MAX];
	size_t hash_len;
};

/* ---- base64 ---------------------------------------------------------------- */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Length of the encoding of n bytes, without the NUL. */
static size_t b64_len(size_t n, bool pad)
{
	return pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Writes the encoding of in[0..n) and a NUL to out, which holds b64_len() + 1. */
static void b64_encode(const uint8_t *in, size_t n, bool pad, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		if (left > 1)
			out[o++] = b64_alphabet[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (left > 2)
			out[o++] = b64_alphabet[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

/*
 * Decodes s[0..len) into out[0..cap); *n gets the byte count. Only the
 * canonical spelling is accepted: padding exactly when pad (and then a
 * multiple of four characters), no stray characters, and zero bits where
 * the last character holds more bits than bytes. Returns 0 or -EINVAL.
 */
static int b64_decode(const char *s, size_t len, bool pad, uint8_t *out, size_t cap, size_t *n)
{
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (pad) {
		if (len % 4)
			return -EINVAL;
		for (int k = 0; k < 2 && len > 0 && s[len - 1] == '='; k++)
			len--;
	}
	if (len % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -EINVAL;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Bits left over must be zero, or two strings would give these bytes. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -EINVAL;
	*n = o;
	return 0;
}

/* ---- parsing ---------------------------------------------------------------- */

/* A cursor over the encoded hash: fields are separated by '$'. */
struct cursor {
	const char *p, *end;
};

/* The field up to the next '$' or the end; moves past the '$'. True when a '$' ended it. */
static bool field(struct cursor *c, const char **f, size_t *flen)
{
	const char *d = memchr(c->p, '$', (size_t)(c->end - c->p));
	const char *stop = d ? d : c->end;

	*f = c->p;
	*flen = (size_t)(stop - c->p);
	c->p = d ? d + 1 : c->end;
	return d != NULL;
}

/* Decimal 1..max, no sign, no leading zero. Returns 0 or -EINVAL (-ERANGE above max). */
static int parse_u32(const char *s, size_t len, uint32_t max, uint32_t *v)
{
	uint64_t x = 0;

	if (len == 0 || len > 10 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x > max)
		return -ERANGE;
	*v = (uint32_t)x;
	return 0;
}

static bool take(const char **s, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0)
		return false;
	*s += n;
	return true;
}

/* "<key>=<number>" up to ',' or end; *s moves past it and the ','. */
static int param(const char **s, const char *end, const char *key, uint32_t max, uint32_t *v)
{
	if (!take(s, end, key))
		return -EINVAL;
	const char *comma = memchr(*s, ',', (size_t)(end - *s));
	const char *stop = comma ? comma : end;
	int rc = parse_u32(*s, (size_t)(stop - *s), max, v);
	*s = comma ? comma + 1 : end;
	return rc;
}

/* Salt and hash fields: base64 of 1..SALT_MAX and exactly want (or 16..64 if 0) bytes. */
static int salt_hash(struct cursor *c, bool pad, size_t salt_min, size_t want, struct parsed *h,
                     const char **why)
{
	const char *f;
	size_t flen;

	bool more = field(c, &f, &flen);
	if (b64_decode(f, flen, pad, h->salt, sizeof(h->salt), &h->salt_len) != 0) {
		*why = "salt is not canonical base64 or longer than 64 bytes";
		return -EINVAL;
	}
	if (h->salt_len < salt_min) {
		*why = "salt is too short";
		return -EINVAL;
	}
	if (!more) {
		*why = "hash field missing";
		return -EINVAL;
	}
	if (field(c, &f, &flen)) {
		*why = "extra '$' field after the hash";
		return -EINVAL;
	}
	if (b64_decode(f, flen, pad, h->hash, sizeof(h->hash), &h->hash_len) != 0) {
		*why = "hash is not canonical base64 or longer than 64 bytes";
		return -EINVAL;
	}
	if (want ? h->hash_len != want : h->hash_len < ARGON2_HASH_MIN) {
		*why = want ? "hash is not 64 bytes" : "hash is shorter than 16 bytes";
		return -EINVAL;
	}
	return 0;
}

static int parse_argon2(struct cursor *c, const struct bw_password_limits *lim, struct parsed *h,
                        const char **why)
{
	const char *f, *s, *end;
	size_t flen;
	int rc;

	field(c, &f, &flen);
	if (flen != 4 || memcmp(f, "v=19", 4) != 0) {
		*why = "argon2 version is not v=19";
		return -EINVAL;
	}
	field(c, &f, &flen);
	s = f;
	end = f + flen;
	rc = param(&s, end, "m=", lim->argon2_m_kib_max, &h->m_kib);
	if (rc == 0)
		rc = param(&s, end, "t=", lim->argon2_t_max, &h->t);
	if (rc == 0)
		rc = param(&s, end, "p=", lim->argon2_p_max, &h->p);
	if (rc == -ERANGE) {
		*why = "argon2 cost above the limit";
		return -EINVAL;
	}
	if (rc != 0 || s != end || (end > f && end[-1] == ',')) {
		*why = "argon2 parameters are not m=<KiB>,t=<passes>,p=<lanes>";
		return -EINVAL;
	}
	if (h->m_kib < 8 * h->p) {
		*why = "argon2 memory below 8 KiB a lane";
		return -EINVAL;
	}
	return salt_hash(c, false, ARGON2_SALT_MIN, 0, h, why);
}

/* Parses encoded[0..len) into *h, refusing costs above lim. Returns 0 or -EINVAL (*why set). */
static int parse(const char *encoded, size_t len, const struct bw_password_limits *lim,
                 struct parsed *h, const char **why)
{
	struct cursor c = { encoded, encoded + len };
	const char *f;
	size_t flen;
	int rc;

	memset(h, 0, sizeof(*h));
	if (len > BW_PASSWORD_ENCODED_MAX) {
		*why = "hash too long";
		return -EINVAL;
	}
	if (memchr(encoded, '\0', len)) {
		*why = "hash holds a NUL byte";
		return -EINVAL;
	}
	if (len == 0 || encoded[0] != '$') {
		*why = "not a hash ($7$, $6$ or $argon2id$); plain-text passwords are refused";
		return -EINVAL;
	}
	c.p++;
	field(&c, &f, &flen);
	if (flen == 1 && f[0] == '7') {
		h->algo = ALGO_PBKDF2;
		field(&c, &f, &flen);
		rc = parse_u32(f, flen, lim->pbkdf2_iterations_max, &h->iterations);
		if (rc == -ERANGE) {
			*why = "PBKDF2 iterations above the limit";
			return -EINVAL;
		}
		if (rc != 0) {
			*why = "PBKDF2 iterations are not a number from 1";
			return -EINVAL;
		}
		return salt_hash(&c, true, 1, SHA512_LEN, h, why);
	}
	if (flen == 1 && f[0] == '6') {
		h->algo = ALGO_SHA512;
		return salt_hash(&c, true, 1, SHA512_LEN, h, why);
	}
	h->algo = ALGO_ARGON2;
	if (flen == 8 && memcmp(f, "argon2id", 8) == 0)
		h->argon2_type = Argon2_id;
	else if (flen == 7 && memcmp(f, "argon2i", 7) == 0)
		h->argon2_type = Argon2_i;
	else if (flen == 7 && memcmp(f, "argon2d", 7) == 0)
		h->argon2_type = Argon2_d;
	else {
		*why = "unknown hash kind (want $7$, $6$ or $argon2id$)";
		return -EINVAL;
	}
	return parse_argon2(&c, lim, h, why);
}

int bw_password_hash_check(const char *encoded, size_t len, const struct bw_password_limits *lim,
                           const char **why)
{
	struct parsed h;
	const char *dummy;
	int rc = parse(encoded, len, lim, &h, why ? why : &dummy);

	OPENSSL_cleanse(&h, sizeof(h));
	return rc;
}

/* ---- hashing ----------------------------------------------------------------- */

/* Hashes pw with h's algorithm, costs and salt into out[0..h->hash_len). Returns 0 or -errno. */
static int compute(const char *pw, size_t len, const struct parsed *h, uint8_t *out)
{
	int ok;

	switch (h->algo) {
	case ALGO_SHA512: {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned int n = 0;
		if (!ctx)
			return -ENOMEM;
		ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) && EVP_DigestUpdate(ctx, pw, len) &&
		     EVP_DigestUpdate(ctx, h->salt, h->salt_len) &&
		     EVP_DigestFinal_ex(ctx, out, &n) && n == SHA512_LEN;
		EVP_MD_CTX_free(ctx);
		return ok ? 0 : -EIO;
	}
	case ALGO_PBKDF2:
		ok = PKCS5_PBKDF2_HMAC(pw, (int)len, h->salt, (int)h->salt_len, (int)h->iterations,
		                       EVP_sha512(), (int)h->hash_len, out);
		return ok ? 0 : -EIO;
	case ALGO_ARGON2:
		ok = argon2_hash(h->t, h->m_kib, h->p, pw, len, h->salt, h->salt_len, out,
		                 h->hash_len, NULL, 0, h->argon2_type, ARGON2_VERSION_13);
		if (ok == ARGON2_MEMORY_ALLOCATION_ERROR)
			return -ENOMEM;
		return ok == ARGON2_OK ? 0 : -EIO;
	}
	return -EINVAL;
}

/* Fills buf[0..n) from getrandom(); retries on EINTR and short reads, a bounded number of times. */
static int random_bytes(uint8_t *buf, size_t n)
{
	size_t got = 0;

	for (int tries = 0; got < n && tries < 16; tries++) {
		ssize_t r = getrandom(buf + got, n - got, 0);
		if (r < 0 && errno != EINTR)
			return -EIO;
		if (r > 0)
			got += (size_t)r;
	}
	return got == n ? 0 : -EIO;
}

/* Writes h (salt and hash filled in) encoded to out[0..cap). */
static int encode(const struct parsed *h, char *out, size_t cap)
{
	char salt[b64_len(SALT_MAX, true) + 1], hash[b64_len(HASH_MAX, true) + 1];
	bool pad = h->algo != ALGO_ARGON2;
	int n;

	b64_encode(h->salt, h->salt_len, pad, salt);
	b64_encode(h->hash, h->hash_len, pad, hash);
	if (h->algo == ALGO_PBKDF2)
		n = snprintf(out, cap, "$7$%u$%s$%s", (unsigned)h->iterations, salt, hash);
	else
		n = snprintf(out, cap, "$argon2id$v=19$m=%u,t=%u,p=%u$%s$%s", (unsigned)h->m_kib,
		             (unsigned)h->t, (unsigned)h->p, salt, hash);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int bw_password_hash(const char *pw, size_t len, enum bw_hash_kind kind, char *out, size_t cap)
{
	struct parsed h;
	int rc;

	if (len > BW_PASSWORD_LEN_MAX)
		return -EINVAL;
	memset(&h, 0, sizeof(h));
	if (kind == BW_HASH_PBKDF2) {
		h.algo = ALGO_PBKDF2;
		h.iterations = BW_PBKDF2_ITERATIONS;
		h.salt_len = BW_PBKDF2_SALT_LEN;
		h.hash_len = SHA512_LEN;
	} else if (kind == BW_HASH_ARGON2ID) {
		h.algo = ALGO_ARGON2;
		h.argon2_type = Argon2_id;
		h.t = BW_ARGON2_T;
		h.m_kib = BW_ARGON2_M_KIB;
		h.p = BW_ARGON2_P;
		h.salt_len = BW_ARGON2_SALT_LEN;
		h.hash_len = BW_ARGON2_HASH_LEN;
	} else {
		return -EINVAL;
	}
	rc = random_bytes(h.salt, h.salt_len);
	if (rc == 0)
		rc = compute(pw, len, &h, h.hash);
	if (rc == 0)
		rc = encode(&h, out, cap);
	OPENSSL_cleanse(&h, sizeof(h));
	return rc;
}

int bw_password_verify_limited(const char *pw, size_t len, const char *encoded,
                               const struct bw_password_limits *lim)
{
	struct parsed h;
	uint8_t got[HASH_MAX];
	const char *why;
	size_t elen = strnlen(encoded, BW_PASSWORD_ENCODED_MAX + 1);
	int rc;

	if (len > BW_PASSWORD_LEN_MAX)
		return -EINVAL;
	rc = parse(encoded, elen, lim, &h, &why);
	if (rc == 0)
		rc = compute(pw, len, &h, got);
	if (rc == 0 && CRYPTO_memcmp(got, h.hash, h.hash_len) != 0)
		rc = -EACCES;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(&h, sizeof(h));
	return rc;
}

int bw_password_verify(const char *pw, size_t len, const char *encoded)
{
	return bw_password_verify_limited(pw, len, encoded, &bw_password_limits_default);
}

/* ---- bulwark --hash-password ------------------------------------------------ */

/*
 * Reads one line into buf (which holds BW_PASSWORD_LEN_MAX + 2 bytes), at
 * most that many bytes, so a missing newline cannot make it read forever.
 */
static int read_line(FILE *in, char *buf, size_t *len)
{
	size_t n = 0;
	int c = EOF;

	while (n < BW_PASSWORD_LEN_MAX + 2) {
		c = getc(in);
		if (c == EOF || c == '\n')
			break;
		buf[n++] = (char)c;
	}
	if (c == EOF && ferror(in))
		return -EIO;
	if (c != EOF && c != '\n')
		return -E2BIG; /* the buffer filled before the line ended */
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n > BW_PASSWORD_LEN_MAX)
		return -E2BIG;
	if (n == 0)
		return -EINVAL;
	*len = n;
	return 0;
}

int bw_password_hash_cli(FILE *in, FILE *out, enum bw_hash_kind kind)
{
	char hash[BW_PASSWORD_HASH_MAX];
	struct termios saved, quiet;
	bool tty = isatty(fileno(in)) && tcgetattr(fileno(in), &saved) == 0;
	char *buf = malloc(BW_PASSWORD_LEN_MAX + 2);
	size_t len = 0;
	int rc;

	if (!buf)
		return -ENOMEM;
	if (tty) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(fileno(in), TCSAFLUSH, &quiet);
		fputs("Password: ", stderr);
		fflush(stderr);
	}
	rc = read_line(in, buf, &len);
	if (tty)
		tcsetattr(fileno(in), TCSAFLUSH, &saved);
	if (rc == 0)
		rc = bw_password_hash(buf, len, kind, hash, sizeof(hash));
	OPENSSL_cleanse(buf, BW_PASSWORD_LEN_MAX + 2);
	free(buf);
	if (rc == 0 && (fprintf(out, "%s\n", hash) < 0 || fflush(out) != 0))
		rc = -EIO;
	return rc;
}
