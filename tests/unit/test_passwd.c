/*
 * Unit tests for password files (tenancy/auth/passwd.h): a file as
 * mosquitto_passwd 2.0.11 wrote it (with comments, blank and CRLF lines
 * added), lookups and checks including unknown users, every error with the
 * file:line it must name, the size limits, thousands of users (table
 * growth) and loading from disk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenancy/auth/passwd.h"

#define ALICE_7                                                                                    \
	"$7$101$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK2UGceW8rQpYMz"   \
	"OL/cyPWZoSuckzBL+Tt9ca2Q=="
#define BOB_7                                                                                      \
	"$7$101$ChWHTvef6i7yr5cn$up8c4u3nKuwKII0F35jVZKKJL4EMXCTwwTVL6NlxUCMO3/NlHqZmFM5Zhkg4rgw"  \
	"PZGTYqVH/8Jsf/g21CXh43w=="
#define CAROL_6                                                                                    \
	"$6$ztvo1PKwCWhqcU39$chHZQuJDqyglCnPxo3vc0rAE6oItDaVm0ge9Dwl4QRLfsHYlHvgVWKIpKibSWbFnBeU"  \
	"PJ2sm0YFUwKNaXc+nuw=="

/* mosquitto_passwd's output, then lines a person might add. */
static const char file[] = "alice:" ALICE_7 "\n"
                           "bob:" BOB_7 "\n"
                           "# imported from 1.6\n"
                           "   # indented comment\n"
                           "\n"
                           "  \t \n"
                           "carol:" CAROL_6 "\r\n"
                           "d\xc3\xa9j\xc3\xa0 vu:" CAROL_6 "  \t\n"
                           "last:" CAROL_6;

static struct bw_passwd *parse_ok(const char *text)
{
	struct bw_passwd *pw = NULL;
	char err[256];
	int rc = bw_passwd_parse(text, strlen(text), "test", &pw, err, sizeof(err));

	if (rc != 0)
		fail_msg("parse failed (%d): %s", rc, err);
	return pw;
}

static void test_mosquitto_file(void **state)
{
	struct bw_passwd *pw = parse_ok(file);

	(void)state;
	assert_int_equal(bw_passwd_count(pw), 5);
	assert_string_equal(bw_passwd_lookup(pw, "alice", 5), ALICE_7);
	assert_string_equal(bw_passwd_lookup(pw, "carol", 5), CAROL_6);
	assert_string_equal(bw_passwd_lookup(pw, "d\xc3\xa9j\xc3\xa0 vu", 9), CAROL_6);
	assert_string_equal(bw_passwd_lookup(pw, "last", 4), CAROL_6);
	assert_null(bw_passwd_lookup(pw, "alic", 4));
	assert_null(bw_passwd_lookup(pw, "alice ", 6));
	assert_null(bw_passwd_lookup(pw, "", 0));
	assert_null(bw_passwd_lookup(pw, "# imported from 1.6", 19));

	assert_int_equal(bw_passwd_check(pw, "alice", 5, "secret", 6), 0);
	assert_int_equal(bw_passwd_check(pw, "bob", 3, "hunter2", 7), 0);
	assert_int_equal(bw_passwd_check(pw, "carol", 5, "secret", 6), 0);
	assert_int_equal(bw_passwd_check(pw, "bob", 3, "secret", 6), -EACCES);
	/* An unknown user is refused even with the decoy's (alice's) password. */
	assert_int_equal(bw_passwd_check(pw, "mallory", 7, "secret", 6), -EACCES);
	bw_passwd_free(&pw);
	assert_null(pw);
	bw_passwd_free(&pw);
}

static void test_empty(void **state)
{
	struct bw_passwd *pw = parse_ok("# nobody yet\n\n");

	(void)state;
	assert_int_equal(bw_passwd_count(pw), 0);
	assert_null(bw_passwd_lookup(pw, "alice", 5));
	assert_int_equal(bw_passwd_check(pw, "alice", 5, "secret", 6), -EACCES);
	bw_passwd_free(&pw);
	pw = parse_ok("");
	assert_int_equal(bw_passwd_count(pw), 0);
	bw_passwd_free(&pw);
	assert_null(bw_passwd_lookup(NULL, "a", 1));
}

/* Parses text, which must fail with rc and an error naming want. */
static void bad(int line, const char *text, size_t len, int rc, const char *want)
{
	struct bw_passwd *pw = (struct bw_passwd *)&pw; /* must be reset to NULL */
	char err[256];
	int got = bw_passwd_parse(text, len, "pw.txt", &pw, err, sizeof(err));

	if (got != rc || pw != NULL || !strstr(err, want))
		fail_msg("line %d: got %d \"%s\", expected %d \"%s\"", line, got, err, rc, want);
}

#define BAD(text, want) bad(__LINE__, text, sizeof(text) - 1, -EINVAL, want)

static void test_errors(void **state)
{
	(void)state;
	BAD("alice\n", "pw.txt:1: no ':' between username and hash");
	BAD("# c\nalice " ALICE_7 "\n", "pw.txt:2: no ':'");
	BAD(":" ALICE_7 "\n", "pw.txt:1: empty username");
	BAD("alice:secret\n", "pw.txt:1: user \"alice\": bad hash: not a hash");
	BAD("alice:\n", "pw.txt:1: user \"alice\": bad hash");
	BAD("alice:$7$101$cR2JDGEzLxF+FoXU$\n", "pw.txt:1: user \"alice\": bad hash: hash is not");
	BAD("alice:$7$20000000$cR2JDGEzLxF+FoXU$Z3zONKHoNCGYLA+VFfsGICOaOKvUkhB6bObEcPLIjfnd9s+VK"
	    "2UGceW8rQpYMzOL/cyPWZoSuckzBL+Tt9ca2Q==\n",
	    "pw.txt:1: user \"alice\": bad hash: PBKDF2 iterations above the limit");
	BAD("a:b:" ALICE_7 "\n", "pw.txt:1: more than one ':'");
	BAD("alice:" ALICE_7 ":\n", "pw.txt:1: more than one ':'");
	BAD("al\xffice:" ALICE_7 "\n", "pw.txt:1: username is not valid UTF-8");
	BAD("al\xc0\x80ice:" ALICE_7 "\n", "pw.txt:1: username is not valid UTF-8");
	BAD("al\0ice:" ALICE_7 "\n", "pw.txt:1: username is not valid UTF-8");
	BAD("alice:" ALICE_7 "\n\nbob:" BOB_7 "\nalice:" BOB_7 "\n",
	    "pw.txt:4: duplicate user \"alice\" (first on line 1)");
	BAD("bob:" BOB_7 "\nbob:" BOB_7 "\n", "pw.txt:2: duplicate user \"bob\"");
	BAD("a\tb:secret\n", "pw.txt:1: user \"a?b\": bad hash");
	BAD("alice:" ALICE_7 " x\n", "pw.txt:1: user \"alice\": bad hash");

	/* A long username is shown cut short. */
	char text[300];
	memset(text, 'u', 100);
	strcpy(text + 100, ":x\n");
	bad(__LINE__, text, strlen(text), -EINVAL,
	    "pw.txt:1: user "
	    "\"uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu...\"");

	/* Lines: BW_PASSWD_LINE_MAX bytes are fine, one more is not. */
	size_t max = BW_PASSWD_LINE_MAX;
	char *big = malloc(max + 3);
	assert_non_null(big);
	memset(big, 'u', max + 2);
	memcpy(big + max - 6,
	       ":"
	       "$6$x",
	       5); /* bad hash, but a line within the limit */
	big[max] = '\n';
	bad(__LINE__, big, max + 1, -EINVAL, "pw.txt:1: user \"uuu");
	memcpy(big + max - 6, "uuuuu", 5);
	bad(__LINE__, big, max + 1, -EINVAL, "pw.txt:1: no ':'");
	big[max] = 'u';
	bad(__LINE__, big, max + 2, -EINVAL, "pw.txt:1: line longer than 4096 bytes");
	free(big);

	/* The size limit is checked before anything is read. */
	struct bw_passwd *pw;
	char err[128];
	assert_int_equal(bw_passwd_parse("", BW_PASSWD_FILE_MAX + 1, NULL, &pw, err, sizeof(err)),
	                 -EFBIG);
	assert_string_equal(err, "<input>:0: larger than 67108864 bytes");
	/* No room for a message is fine too. */
	assert_int_equal(bw_passwd_parse("x\n", 2, NULL, &pw, NULL, 0), -EINVAL);
	assert_int_equal(bw_passwd_parse("x\n", 2, NULL, &pw, err, 5), -EINVAL);
	assert_string_equal(err, "<inp");
}

static void test_many_users(void **state)
{
	const size_t n = 5000;
	const size_t line = 16 + sizeof(CAROL_6) + 1;
	char *text = malloc(n * line);
	size_t len = 0;
	char name[16];

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "user%zu:%s\n", i, CAROL_6);
	struct bw_passwd *pw = NULL;
	char err[128];
	assert_int_equal(bw_passwd_parse(text, len, NULL, &pw, err, sizeof(err)), 0);
	assert_int_equal(bw_passwd_count(pw), n);
	for (size_t i = 0; i < n; i++) {
		int k = sprintf(name, "user%zu", i);
		assert_non_null(bw_passwd_lookup(pw, name, (size_t)k));
	}
	assert_null(bw_passwd_lookup(pw, "user5000", 8));
	assert_int_equal(bw_passwd_check(pw, "user4999", 8, "secret", 6), 0);
	bw_passwd_free(&pw);
	free(text);
}

static void test_load(void **state)
{
	char path[] = "/tmp/bw-test-passwd-XXXXXX";
	int fd = mkstemp(path);
	struct bw_passwd *pw = NULL;
	char err[256];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, file, sizeof(file) - 1), (ssize_t)(sizeof(file) - 1));
	close(fd);
	assert_int_equal(bw_passwd_load(path, &pw, err, sizeof(err)), 0);
	assert_int_equal(bw_passwd_count(pw), 5);
	assert_int_equal(bw_passwd_check(pw, "alice", 5, "secret", 6), 0);
	bw_passwd_free(&pw);

	/* Errors name the path. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\nalice:secret\n", 14), 14);
	close(fd);
	assert_int_equal(bw_passwd_load(path, &pw, err, sizeof(err)), -EINVAL);
	assert_null(pw);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: user \"alice\": bad hash", path);
	assert_non_null(strstr(err, want));
	unlink(path);

	assert_int_equal(bw_passwd_load(path, &pw, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_int_equal(bw_passwd_load("/tmp", &pw, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "/tmp: not a regular file");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mosquitto_file), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_errors),         cmocka_unit_test(test_many_users),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
