/*
 * Unit tests for tenant names (tenancy/tenant.h): a table of names that are
 * and are not lower-case RFC 1123 DNS labels, including the length edges
 * (0, 1, 63, 64 bytes), hyphen placement, upper case (refused, never
 * folded), bytes outside ASCII and a NUL inside the length, which must be
 * refused rather than end the name early.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "tenancy/tenant.h"

static void name_is(int line, const char *name, size_t len, int expect)
{
	int rc = bw_tenant_name_check(name, len);

	if (rc != expect)
		fail_msg("line %d: bw_tenant_name_check(\"%.*s\", %zu) = %d, expected %d", line,
		         (int)len, name ? name : "", len, rc, expect);
}

#define OK(n)  name_is(__LINE__, n, strlen(n), 0)
#define BAD(n) name_is(__LINE__, n, strlen(n), -EINVAL)

static void test_valid(void **state)
{
	(void)state;
	OK("a");
	OK("z");
	OK("0");
	OK("9");
	OK("acme");
	OK("acme-corp");
	OK("a-b-c");
	OK("a--b");
	OK("0acme");
	OK("123");
	OK("xn--bcher-kva"); /* a punycode label is still a label */
	OK("abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz");
}

static void test_invalid(void **state)
{
	(void)state;
	BAD("");
	BAD("-");
	BAD("-acme");
	BAD("acme-");
	BAD("--");
	BAD("Acme");
	BAD("ACME");
	BAD("acmE");
	BAD("acme corp");
	BAD(" acme");
	BAD("acme_corp");
	BAD("acme.corp");
	BAD("acme@corp");
	BAD("acme/corp");
	BAD("{acme}"); /* would break a Redis hash tag */
	BAD("acme\n");
	BAD("\xc3\xa9t\xc3\xa9");
	BAD("acme\x80");
	BAD("\xff");
}

static void test_lengths(void **state)
{
	char name[65];

	(void)state;
	memset(name, 'a', sizeof(name));
	name_is(__LINE__, name, 1, 0);
	name_is(__LINE__, name, BW_TENANT_NAME_MAX, 0);
	name_is(__LINE__, name, BW_TENANT_NAME_MAX + 1, -EINVAL);
	name_is(__LINE__, name, SIZE_MAX, -EINVAL);
	name_is(__LINE__, NULL, 0, -EINVAL);
	name_is(__LINE__, "", 0, -EINVAL);
	/* The length decides, not a NUL: a NUL inside is one more bad byte. */
	name_is(__LINE__, "ab\0cd", 5, -EINVAL);
	name_is(__LINE__, "ab\0", 3, -EINVAL);
	name_is(__LINE__, "abc-", 3, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
