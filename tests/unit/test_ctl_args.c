/*
 * bulwarkctl's global option parsing: every path to run, help, version and
 * usage error, and the socket path's precedence (flag over environment over
 * default).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "admin/ctl_args.h"

#include <string.h>

#define ARGV(...) ((char *[]){ "bulwarkctl", __VA_ARGS__, NULL })

static enum bw_ctl_action parse(char **argv, int argc, const char *env, struct bw_ctl_args *a)
{
	return bw_ctl_args_parse(argc, argv, env, a);
}

static void test_command_with_defaults(void **state)
{
	char **v = ARGV("tenant", "list");
	struct bw_ctl_args a;
	assert_int_equal(parse(v, 3, NULL, &a), BW_CTL_RUN);
	assert_int_equal(a.cmd_index, 1);
	assert_false(a.json);
	assert_string_equal(a.socket_path, BW_ADMIN_SOCKET_DEFAULT);
}

static void test_socket_precedence(void **state)
{
	struct bw_ctl_args a;
	char **v1 = ARGV("stats");
	assert_int_equal(parse(v1, 2, "/env.sock", &a), BW_CTL_RUN);
	assert_string_equal(a.socket_path, "/env.sock");

	char **v2 = ARGV("--socket", "/flag.sock", "--json", "stats");
	assert_int_equal(parse(v2, 5, "/env.sock", &a), BW_CTL_RUN);
	assert_string_equal(a.socket_path, "/flag.sock");
	assert_true(a.json);
	assert_int_equal(a.cmd_index, 4);

	char **v3 = ARGV("--socket=/eq.sock", "stats");
	assert_int_equal(parse(v3, 3, "", &a), BW_CTL_RUN);
	assert_string_equal(a.socket_path, "/eq.sock");

	char **v4 = ARGV("stats");
	assert_int_equal(parse(v4, 2, "", &a), BW_CTL_RUN);
	assert_string_equal(a.socket_path, BW_ADMIN_SOCKET_DEFAULT);
}

static void test_help_and_version(void **state)
{
	struct bw_ctl_args a;
	char **v1 = ARGV("--help");
	assert_int_equal(parse(v1, 2, NULL, &a), BW_CTL_HELP);
	char **v2 = ARGV("--json", "-V");
	assert_int_equal(parse(v2, 3, NULL, &a), BW_CTL_VERSION);
}

static void test_usage_errors(void **state)
{
	struct bw_ctl_args a;
	char *none[] = { "bulwarkctl", NULL };
	assert_int_equal(parse(none, 1, NULL, &a), BW_CTL_USAGE);
	assert_string_equal(a.error, "no command given");

	char **v1 = ARGV("--socket");
	assert_int_equal(parse(v1, 2, NULL, &a), BW_CTL_USAGE);
	assert_string_equal(a.error, "--socket needs a path");

	char **v2 = ARGV("--socket=", "stats");
	assert_int_equal(parse(v2, 3, NULL, &a), BW_CTL_USAGE);

	char **v3 = ARGV("--bogus", "stats");
	assert_int_equal(parse(v3, 3, NULL, &a), BW_CTL_USAGE);
	assert_string_equal(a.error_arg, "--bogus");
}

static void test_timeout(void **state)
{
	struct bw_ctl_args a;
	char **v1 = ARGV("stats");
	assert_int_equal(parse(v1, 2, NULL, &a), BW_CTL_RUN);
	assert_int_equal(a.timeout_s, BW_CTL_TIMEOUT_S_DEFAULT);

	char **v2 = ARGV("--timeout", "5", "stats");
	assert_int_equal(parse(v2, 4, NULL, &a), BW_CTL_RUN);
	assert_int_equal(a.timeout_s, 5);
	assert_int_equal(a.cmd_index, 3);

	char **v3 = ARGV("--timeout=3600", "stats");
	assert_int_equal(parse(v3, 3, NULL, &a), BW_CTL_RUN);
	assert_int_equal(a.timeout_s, 3600);

	const char *bad[] = { "0", "3601", "1.5", "-1", "", "5s", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *v[] = { "bulwarkctl", "--timeout", (char *)bad[i], "stats", NULL };
		assert_int_equal(parse(v, 4, NULL, &a), BW_CTL_USAGE);
		assert_string_equal(a.error, "--timeout needs whole seconds, 1..3600");
	}
	char **v4 = ARGV("--timeout");
	assert_int_equal(parse(v4, 2, NULL, &a), BW_CTL_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_with_defaults),
		cmocka_unit_test(test_socket_precedence),
		cmocka_unit_test(test_help_and_version),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
