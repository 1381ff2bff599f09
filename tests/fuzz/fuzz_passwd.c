/*
 * libFuzzer target for password files and hashes (tenancy/auth/passwd.h,
 * password.h). The input is a password file. It is parsed; an error must
 * be -EINVAL with a "<fuzz>:LINE: " message. Then every line is split as
 * the format says (username before the first ':', hash after it, trailing
 * "\r" and blanks dropped) and, for the first few:
 *   - bw_password_hash_check() on the hash must agree with the parse: a
 *     file that parsed holds only hashes that pass it, and lookup finds
 *     each line's user with that hash;
 *   - hashes passing are verified against a fixed password under tiny cost
 *     limits (PBKDF2 1000 iterations, Argon2 64 KiB, 2 passes, 2 lanes), so
 *     each input stays fast: the answer must be 0 or -EACCES, or -EINVAL
 *     exactly when the tiny limits refuse it.
 * bw_passwd_check() is not called: its decoy verify of an unknown user
 * uses the default limits, which allow seconds of work by design.
 */
#include "tenancy/auth/passwd.h"
#include "tenancy/auth/password.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lines whose hash is checked and verified, per input. */
#define LINES_MAX 8

static const struct bw_password_limits tiny = {
	.pbkdf2_iterations_max = 1000,
	.argon2_m_kib_max = 64,
	.argon2_t_max = 2,
	.argon2_p_max = 2,
};

static void check_failed(int line, const char *what) __attribute__((noreturn));

static void check_failed(int line, const char *what)
{
	fprintf(stderr, "fuzz_passwd: check failed (fuzz_passwd.c:%d): %s\n", line, what);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond);                                             \
	} while (0)

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One line [s, s + len): the user and hash fields, if it has a ':' and is not a comment. */
static void check_line(const struct bw_passwd *pw, const char *s, size_t len)
{
	char hash[BW_PASSWORD_ENCODED_MAX + 2];
	const char *why = NULL;
	size_t i = 0;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	while (len > 0 && blank(s[len - 1]))
		len--;
	while (i < len && blank(s[i]))
		i++;
	if (i == len || s[i] == '#')
		return;
	const char *colon = memchr(s, ':', len);
	if (!colon)
		return;
	size_t ulen = (size_t)(colon - s), hlen = len - ulen - 1;
	int ok = bw_password_hash_check(colon + 1, hlen, &bw_password_limits_default, &why);
	CHECK(ok == 0 || (ok == -EINVAL && why && why[0]));
	if (pw) {
		/* The file parsed: so did this line, and it is the user's. */
		const char *stored = bw_passwd_lookup(pw, s, ulen);
		CHECK(ok == 0);
		CHECK(stored && strlen(stored) == hlen && memcmp(stored, colon + 1, hlen) == 0);
	}
	if (ok != 0 || hlen > BW_PASSWORD_ENCODED_MAX)
		return;
	memcpy(hash, colon + 1, hlen);
	hash[hlen] = '\0';
	bool cheap = bw_password_hash_check(hash, hlen, &tiny, NULL) == 0;
	int rc = bw_password_verify_limited("fuzz", 4, hash, &tiny);
	CHECK(cheap ? (rc == 0 || rc == -EACCES) : rc == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct bw_passwd *pw = NULL;
	char err[256];
	int rc = bw_passwd_parse(text, size, "<fuzz>", &pw, err, sizeof(err));

	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(rc == 0 ? pw != NULL : (pw == NULL && strncmp(err, "<fuzz>:", 7) == 0));
	if (rc == 0)
		CHECK(bw_passwd_count(pw) <= size / 2);

	size_t at = 0, lines = 0;
	while (at < size && lines < LINES_MAX) {
		const char *nl = memchr(text + at, '\n', size - at);
		size_t end = nl ? (size_t)(nl - text) : size;
		check_line(pw, text + at, end - at);
		lines++;
		at = end + 1;
	}
	bw_passwd_free(&pw);
	CHECK(pw == NULL);
	return 0;
}
