/*
 * Unit tests for password hashes (tenancy/auth/password.h): vectors written
 * by mosquitto_passwd 2.0.11 ($7$ and, with -H sha512, $6$) and by the
 * argon2 command line tool (the $argon2i$ one is libargon2's README
 * example); hashes made here round-trip; malformed, non-canonical and
 * over-limit hashes are refused as -EINVAL before any hashing; and the
 * --hash-password helper over fmemopen() streams. test_default_costs prints
 * how long the default hashes take to verify on this machine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tenancy/auth/password.h"

/* mosquitto_passwd -c -b pw alice secret; mosquitto_passwd -b pw bob hunter2 (2.0.11). */
static const char alice_7[] = "$7$101$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjf"
                              "nd9s+VK2UGceW8rQpYMzOL/cyPWZoSuckzBL+Tt9ca2Q==";
static const char bob_7[] = "$7$101$ChWHTvef6i7yr5cn$up8c4u3nKuwKII0F35jVZKKJL4EMXCTwwTVL6NlxUCMO"
                            "3/NlHqZmFM5Zhkg4rgwPZGTYqVH/8Jsf/g21CXh43w==";
/* mosquitto_passwd -H sha512 -c -b pw carol secret. */
static const char carol_6[] = "$6$ztvo1PKwCWhqcU39$chHZQuJDqyglCnPxo3vc0rAE6oItDaVm0ge9Dwl4QRLfsHY"
                              "lHvgVWKIpKibSWbFnBeUPJ2sm0YFUwKNaXc+nuw==";
/* echo -n secret | argon2 bulwarksaltsalt1 -id -t 3 -m 16 -p 1 -l 32 -e */
static const char secret_argon2id[] = "$argon2id$v=19$m=65536,t=3,p=1$YnVsd2Fya3NhbHRzYWx0MQ$5v7wWT"
                                      "d/8fCWogSgYY2qD8r/Hbt7qG2JnMLCtdJegco";
/* echo -n secret | argon2 shortsaltsalt -id -t 1 -m 10 -p 1 -l 32 -e */
static const char secret_argon2id_small[] = "$argon2id$v=19$m=1024,t=1,p=1$c2hvcnRzYWx0c2FsdA$oVPHc"
                                            "FYqCxCW68/GVMQegm/mQaQ2yK7zV2QjdMlwipI";
/* echo -n password | argon2 somesalt -t 2 -m 16 -p 4 -l 24 -e */
static const char password_argon2i[] =
        "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

static int verify(const char *pw, const char *encoded)
{
	return bw_password_verify(pw, strlen(pw), encoded);
}

static void test_mosquitto_vectors(void **state)
{
	(void)state;
	assert_int_equal(verify("secret", alice_7), 0);
	assert_int_equal(verify("hunter2", bob_7), 0);
	assert_int_equal(verify("secret", carol_6), 0);
	assert_int_equal(verify("Secret", alice_7), -EACCES);
	assert_int_equal(verify("secret", bob_7), -EACCES);
	assert_int_equal(verify("", carol_6), -EACCES);
	assert_int_equal(verify("secret\n", carol_6), -EACCES);
	/* A NUL inside the password is a byte like any other... */
	assert_int_equal(bw_password_verify("secret\0", 7, carol_6), -EACCES);
	assert_int_equal(bw_password_verify("sec\0ret", 7, alice_7), -EACCES);
	/* ...except at the end of a PBKDF2 one: HMAC pads short keys with zeros. */
	assert_int_equal(bw_password_verify("secret\0", 7, alice_7), 0);
}

static void test_argon2_vectors(void **state)
{
	(void)state;
	assert_int_equal(verify("secret", secret_argon2id), 0);
	assert_int_equal(verify("secret", secret_argon2id_small), 0);
	assert_int_equal(verify("password", password_argon2i), 0);
	assert_int_equal(verify("secreT", secret_argon2id_small), -EACCES);
	assert_int_equal(verify("passwore", password_argon2i), -EACCES);
}

static void round_trip(enum bw_hash_kind kind, const char *prefix, size_t len)
{
	char a[BW_PASSWORD_HASH_MAX], b[BW_PASSWORD_HASH_MAX];

	assert_int_equal(bw_password_hash("s3cret", 6, kind, a, sizeof(a)), 0);
	assert_int_equal(bw_password_hash("s3cret", 6, kind, b, sizeof(b)), 0);
	assert_memory_equal(a, prefix, strlen(prefix));
	assert_int_equal(strlen(a), len);
	assert_string_not_equal(a, b); /* fresh salt each time */
	assert_int_equal(bw_password_hash_check(a, strlen(a), &bw_password_limits_default, NULL),
	                 0);
	assert_int_equal(verify("s3cret", a), 0);
	assert_int_equal(verify("s3cret", b), 0);
	assert_int_equal(verify("s3creT", a), -EACCES);
	assert_int_equal(bw_password_verify("s3cret", 5, a), -EACCES);
}

static void test_round_trip(void **state)
{
	(void)state;
	/* "$7$210000$" + 16 salt + "$" + 88 hash. */
	round_trip(BW_HASH_PBKDF2, "$7$210000$", 10 + 16 + 1 + 88);
	/* "$argon2id$v=19$m=65536,t=3,p=1$" + 22 salt + "$" + 43 hash. */
	round_trip(BW_HASH_ARGON2ID, "$argon2id$v=19$m=65536,t=3,p=1$", 31 + 22 + 1 + 43);
}

static void test_hash_errors(void **state)
{
	char out[BW_PASSWORD_HASH_MAX];
	char *big = calloc(1, BW_PASSWORD_LEN_MAX + 1);

	(void)state;
	assert_non_null(big);
	assert_int_equal(bw_password_hash("x", 1, BW_HASH_PBKDF2, out, 100), -ENOSPC);
	assert_string_equal(out, "");
	assert_int_equal(bw_password_hash("x", 1, (enum bw_hash_kind)7, out, sizeof(out)), -EINVAL);
	assert_int_equal(
	        bw_password_hash(big, BW_PASSWORD_LEN_MAX + 1, BW_HASH_PBKDF2, out, sizeof(out)),
	        -EINVAL);
	assert_int_equal(bw_password_verify(big, BW_PASSWORD_LEN_MAX + 1, alice_7), -EINVAL);
	/* The longest password is fine (and wrong). */
	assert_int_equal(bw_password_verify(big, BW_PASSWORD_LEN_MAX, carol_6), -EACCES);
	free(big);
}

#define SALT7 "cR2JDGEzLxF+FoXU"
#define HASH7                                                                                      \
	"Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8rQpYMzOL/cyPWZoSuckzBL+Tt9ca2Q"
#define A2ID "$argon2id$v=19$"
#define A2S  "c2hvcnRzYWx0c2FsdA"
#define A2H  "oVPHcFYqCxCW68/GVMQegm/mQaQ2yK7zV2QjdMlwipI"

static void malformed(int line, const char *encoded)
{
	const char *why = NULL;
	int rc =
	        bw_password_hash_check(encoded, strlen(encoded), &bw_password_limits_default, &why);

	if (rc != -EINVAL || !why || !why[0])
		fail_msg("line %d: \"%s\": check gave %d", line, encoded, rc);
	rc = verify("secret", encoded);
	if (rc != -EINVAL)
		fail_msg("line %d: \"%s\": verify gave %d", line, encoded, rc);
}

#define BAD(s) malformed(__LINE__, s)

static void test_malformed(void **state)
{
	char big[BW_PASSWORD_ENCODED_MAX + 2];

	(void)state;
	BAD("");
	BAD("secret"); /* a plain-text password */
	BAD("$");
	BAD("$7");
	BAD("$7$");
	BAD("$7$101");
	BAD("$7$101$");
	BAD("$7$101$" SALT7);
	BAD("$7$101$" SALT7 "$");
	BAD("$7$0101$" SALT7 "$" HASH7 "==");
	BAD("$7$0$" SALT7 "$" HASH7 "==");
	BAD("$7$-1$" SALT7 "$" HASH7 "==");
	BAD("$7$+101$" SALT7 "$" HASH7 "==");
	BAD("$7$1x$" SALT7 "$" HASH7 "==");
	BAD("$7$99999999999$" SALT7 "$" HASH7 "==");
	BAD("$7$101$" SALT7 "$" HASH7);        /* padding missing */
	BAD("$7$101$" SALT7 "$" HASH7 "=");    /* half the padding */
	BAD("$7$101$" SALT7 "$" HASH7 "===");  /* too much */
	BAD("$7$101$" SALT7 "$" HASH7 "==$");  /* an extra field */
	BAD("$7$101$" SALT7 "$" HASH7 "==$x"); /* an extra field */
	BAD("$7$101$" SALT7 "$" HASH7 "== ");  /* a trailing space */
	BAD("$7$101$" SALT7 "$" HASH7 "A=");   /* 65 bytes */
	BAD("$7$101$" SALT7 "$" HASH7 "Qo");   /* 66 bytes, unpadded */
	BAD("$7$101$" SALT7
	    "$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8rQpYMzOL/cyPWZ"
	    "oSuckzBL+Tt9ca2R=="); /* low bits set in the last character */
	BAD("$7$101$cR2J*GEzLxF+FoXU$" HASH7 "==");
	BAD("$7$101$$" HASH7 "==");       /* no salt */
	BAD("$7$101$" SALT7 "$Z3zONKHo"); /* 6 bytes */
	BAD("$6$" SALT7);
	BAD("$6$" SALT7 "$");
	BAD("$6$" SALT7 "$" HASH7);
	BAD("$6$101$" SALT7 "$" HASH7 "==");
	BAD("$5$" SALT7 "$" HASH7 "==");
	BAD("$77$101$" SALT7 "$" HASH7 "==");
	BAD("$argon2$v=19$m=1024,t=1,p=1$" A2S "$" A2H);
	BAD("$argon2idx$v=19$m=1024,t=1,p=1$" A2S "$" A2H);
	BAD("$argon2id$m=1024,t=1,p=1$" A2S "$" A2H); /* no version */
	BAD("$argon2id$v=16$m=1024,t=1,p=1$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1$" A2S "$" A2H);
	BAD(A2ID "t=1,m=1024,p=1$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1,p=1,$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1,p=1,x=2$" A2S "$" A2H);
	BAD(A2ID "m=01024,t=1,p=1$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=0,p=1$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1,p=0$" A2S "$" A2H);
	BAD(A2ID "m=4,t=1,p=1$" A2S "$" A2H);       /* below 8 KiB a lane */
	BAD(A2ID "m=64,t=1,p=16$" A2S "$" A2H);     /* below 8 KiB a lane */
	BAD(A2ID "m=2097152,t=1,p=1$" A2S "$" A2H); /* 2 GiB */
	BAD(A2ID "m=1024,t=17,p=1$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1,p=17$" A2S "$" A2H);
	BAD(A2ID "m=1024,t=1,p=1$c2FsdA$" A2H);    /* 4-byte salt */
	BAD(A2ID "m=1024,t=1,p=1$" A2S "==$" A2H); /* PHC base64 has no padding */
	BAD(A2ID "m=1024,t=1,p=1$" A2S "$" A2H "=");
	BAD(A2ID "m=1024,t=1,p=1$" A2S "$oVPHcFYqCxCW68/GVMQ"); /* 14 bytes */
	BAD(A2ID "m=1024,t=1,p=1$" A2S);
	BAD(A2ID "m=1024,t=1,p=1$" A2S "$" A2H "$");
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "$6$", 3);
	BAD(big);

	/* Within the limits, however costly: checked, not computed. */
	const char *why = NULL;
	const char *costly = "$7$10000000$" SALT7 "$" HASH7 "==";
	assert_int_equal(
	        bw_password_hash_check(costly, strlen(costly), &bw_password_limits_default, &why),
	        0);
	BAD("$7$10000001$" SALT7 "$" HASH7 "==");
	const char *nul = "$6$" SALT7 "\0$" HASH7 "==";
	assert_int_equal(
	        bw_password_hash_check(nul, 3 + 16 + 1 + 1 + 88, &bw_password_limits_default, &why),
	        -EINVAL);
}

static void test_limits(void **state)
{
	struct bw_password_limits lim = bw_password_limits_default;

	(void)state;
	lim.pbkdf2_iterations_max = 100;
	assert_int_equal(bw_password_verify_limited("secret", 6, alice_7, &lim), -EINVAL);
	lim.pbkdf2_iterations_max = 101;
	assert_int_equal(bw_password_verify_limited("secret", 6, alice_7, &lim), 0);
	lim.argon2_m_kib_max = 1023;
	assert_int_equal(bw_password_verify_limited("secret", 6, secret_argon2id_small, &lim),
	                 -EINVAL);
	lim.argon2_m_kib_max = 1024;
	assert_int_equal(bw_password_verify_limited("secret", 6, secret_argon2id_small, &lim), 0);
	lim.argon2_p_max = 3;
	assert_int_equal(bw_password_verify_limited("password", 8, password_argon2i, &lim),
	                 -EINVAL);
	/* $6$ has no cost to limit. */
	memset(&lim, 0, sizeof(lim));
	assert_int_equal(bw_password_verify_limited("secret", 6, carol_6, &lim), 0);
}

/* Runs the CLI helper on input[0..len); returns its result, the output in out. */
static int cli(const char *input, size_t len, enum bw_hash_kind kind, char *out, size_t cap)
{
	FILE *in = fmemopen((void *)input, len, "r");
	FILE *o = fmemopen(out, cap, "w");
	int rc;

	assert_non_null(in);
	assert_non_null(o);
	memset(out, 0, cap);
	rc = bw_password_hash_cli(in, o, kind);
	fclose(in);
	fclose(o);
	return rc;
}

static void cli_ok(const char *input, enum bw_hash_kind kind, const char *pw, size_t pwlen)
{
	char out[BW_PASSWORD_HASH_MAX + 2];

	assert_int_equal(cli(input, strlen(input), kind, out, sizeof(out)), 0);
	size_t n = strlen(out);
	assert_true(n > 1 && out[n - 1] == '\n');
	out[n - 1] = '\0';
	assert_int_equal(bw_password_verify(pw, pwlen, out), 0);
}

static void test_cli(void **state)
{
	char out[BW_PASSWORD_HASH_MAX + 2];

	(void)state;
	cli_ok("secret\n", BW_HASH_PBKDF2, "secret", 6);
	cli_ok("secret\r\n", BW_HASH_PBKDF2, "secret", 6);
	cli_ok("secret", BW_HASH_PBKDF2, "secret", 6); /* no newline before the end */
	cli_ok("two words \nignored\n", BW_HASH_PBKDF2, "two words ", 10);
	cli_ok("secret\n", BW_HASH_ARGON2ID, "secret", 6);
	assert_int_equal(cli("\n", 1, BW_HASH_PBKDF2, out, sizeof(out)), -EINVAL);
	assert_int_equal(cli("\r\n", 2, BW_HASH_PBKDF2, out, sizeof(out)), -EINVAL);
	assert_int_equal(cli("", 0, BW_HASH_PBKDF2, out, sizeof(out)), -EINVAL);
	assert_string_equal(out, "");

	/* The longest password passes; one byte more is refused, with or without "\n". */
	size_t max = BW_PASSWORD_LEN_MAX;
	char *big = malloc(max + 3);
	assert_non_null(big);
	memset(big, 'p', max + 2);
	big[max] = '\n';
	assert_int_equal(cli(big, max + 1, BW_HASH_PBKDF2, out, sizeof(out)), 0);
	big[max] = 'p';
	big[max + 1] = '\n';
	assert_int_equal(cli(big, max + 2, BW_HASH_PBKDF2, out, sizeof(out)), -E2BIG);
	assert_int_equal(cli(big, max + 1, BW_HASH_PBKDF2, out, sizeof(out)), -E2BIG);
	memset(big, 'p', max + 3);
	assert_int_equal(cli(big, max + 3, BW_HASH_PBKDF2, out, sizeof(out)), -E2BIG);
	free(big);

	/* Output that does not fit is a write error. */
	assert_int_equal(cli("secret\n", 7, BW_HASH_PBKDF2, out, 20), -EIO);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Not a check: prints what a verify of each default hash costs here. */
static void test_default_costs(void **state)
{
	static const enum bw_hash_kind kinds[] = { BW_HASH_PBKDF2, BW_HASH_ARGON2ID };
	static const char *names[] = { "pbkdf2 (210000)", "argon2id (64 MiB, t=3)" };
	char h[BW_PASSWORD_HASH_MAX];

	(void)state;
	for (int k = 0; k < 2; k++) {
		assert_int_equal(bw_password_hash("secret", 6, kinds[k], h, sizeof(h)), 0);
		double t0 = now_ms();
		assert_int_equal(verify("secret", h), 0);
		print_message("verify %s: %.1f ms\n", names[k], now_ms() - t0);
	}
	double t0 = now_ms();
	assert_int_equal(verify("secret", alice_7), 0);
	print_message("verify mosquitto_passwd $7$101: %.3f ms\n", now_ms() - t0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mosquitto_vectors),
		cmocka_unit_test(test_argon2_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hash_errors),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_default_costs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
