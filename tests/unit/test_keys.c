/*
 * Unit tests for the Redis key layout (node/state/keys.h): the retained
 * hash and channel names, the SCAN pattern, a tenant read back from a key
 * (and every way a key can fail to be one), prefixes, and the change note
 * both ways, including topics with spaces and notes that are not notes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/state/keys.h"

#define NODE "0123456789abcdef0123456789abcdef"

static void test_names(void **state)
{
	char buf[BW_KEYS_MAX];
	(void)state;

	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "bw", "acme"), 18);
	assert_string_equal(buf, "bw:{acme}:retained");
	assert_int_equal(bw_keys_retained_match(buf, sizeof(buf), "bw"), 15);
	assert_string_equal(buf, "bw:{*}:retained");
	assert_int_equal(bw_keys_retained_channel(buf, sizeof(buf), "prod.eu-1"), 18);
	assert_string_equal(buf, "prod.eu-1:retained");

	/* The longest prefix and tenant fit BW_KEYS_MAX. */
	char prefix[BW_KEYS_PREFIX_MAX + 1], tenant[BW_TENANT_NAME_MAX + 1];
	memset(prefix, 'P', BW_KEYS_PREFIX_MAX);
	prefix[BW_KEYS_PREFIX_MAX] = '\0';
	memset(tenant, 't', BW_TENANT_NAME_MAX);
	tenant[BW_TENANT_NAME_MAX] = '\0';
	assert_true(bw_keys_retained(buf, sizeof(buf), prefix, tenant) > 0);
	assert_int_equal(bw_keys_retained(buf, 10, "bw", "acme"), -ENAMETOOLONG);
	assert_int_equal(bw_keys_retained(buf, 18, "bw", "acme"), -ENAMETOOLONG);
	assert_int_equal(bw_keys_retained(buf, 20, "bw", "acme"), 18);

	/* Bad prefixes and tenants. */
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "", "acme"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "a:b", "acme"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "a{b", "acme"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "a*", "acme"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "bw", "Acme"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "bw", "a}b"), -EINVAL);
	assert_int_equal(bw_keys_retained(buf, sizeof(buf), "bw", ""), -EINVAL);
	assert_int_equal(bw_keys_retained_match(buf, sizeof(buf), "a b"), -EINVAL);
	assert_int_equal(bw_keys_retained_channel(buf, sizeof(buf), NULL), -EINVAL);
}

static void test_prefix_check(void **state)
{
	char p[BW_KEYS_PREFIX_MAX + 2];
	(void)state;

	assert_int_equal(bw_keys_prefix_check("bw"), 0);
	assert_int_equal(bw_keys_prefix_check("A-z_0.9"), 0);
	memset(p, 'a', sizeof(p) - 1);
	p[BW_KEYS_PREFIX_MAX] = '\0';
	assert_int_equal(bw_keys_prefix_check(p), 0);
	p[BW_KEYS_PREFIX_MAX] = 'a';
	p[BW_KEYS_PREFIX_MAX + 1] = '\0';
	assert_int_equal(bw_keys_prefix_check(p), -EINVAL);
	const char *bad[] = { "", "a:b", "{a}", "a b", "a?", "a[1]", "a\\b", "é" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bw_keys_prefix_check(bad[i]), -EINVAL);
}

static int tenant_of(const char *key, char *out, size_t cap)
{
	return bw_keys_retained_tenant(key, strlen(key), "bw", out, cap);
}

static void test_tenant_from_key(void **state)
{
	char t[BW_TENANT_NAME_MAX + 1], key[BW_KEYS_MAX];
	(void)state;

	assert_int_equal(tenant_of("bw:{acme}:retained", t, sizeof(t)), 0);
	assert_string_equal(t, "acme");
	assert_int_equal(tenant_of("bw:{a}:retained", t, sizeof(t)), 0);
	assert_string_equal(t, "a");
	/* Every key the builder makes reads back. */
	assert_true(bw_keys_retained(key, sizeof(key), "bw", "x-1") > 0);
	assert_int_equal(tenant_of(key, t, sizeof(t)), 0);
	assert_string_equal(t, "x-1");
	assert_int_equal(tenant_of("bw:{acme}:retained", t, 4), -EINVAL); /* no room */
	const char *bad[] = {
		"bw:{}:retained",
		"bw:{acme}:sessions",
		"bx:{acme}:retained",
		"bw{acme}:retained",
		"bw:acme:retained",
		"bw:{acme:retained",
		"bw:{Acme}:retained",
		"bw:{ac}me}:retained",
		"bw:{acme}:retainedx",
		"bwx:{acme}:retained",
		"bw:{acme}retained",
		"bw:{-a}:retained",
		"bw",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tenant_of(bad[i], t, sizeof(t)), -EINVAL);
}

static void test_note(void **state)
{
	struct bw_keys_note n;
	size_t len;
	(void)state;

	char *p = bw_keys_note(NODE, "acme", (const uint8_t *)"a b/c", 5, &len);
	assert_non_null(p);
	assert_int_equal(len, 32 + 1 + 4 + 1 + 5);
	assert_memory_equal(p, NODE " acme a b/c", len);
	assert_int_equal(bw_keys_note_parse(p, len, &n), 0);
	assert_memory_equal(n.node, NODE, BW_KEYS_NODE_LEN);
	assert_int_equal(n.tenant_len, 4);
	assert_memory_equal(n.tenant, "acme", 4);
	assert_int_equal(n.topic_len, 5);
	assert_memory_equal(n.topic, "a b/c", 5);
	free(p);

	/* A topic of the largest size, and one too many. */
	uint8_t *big = malloc(65536);
	assert_non_null(big);
	memset(big, 'x', 65536);
	p = bw_keys_note(NODE, "t", big, 65535, &len);
	assert_non_null(p);
	assert_int_equal(bw_keys_note_parse(p, len, &n), 0);
	assert_int_equal(n.topic_len, 65535);
	free(p);
	errno = 0;
	assert_null(bw_keys_note(NODE, "t", big, 65536, &len));
	assert_int_equal(errno, EINVAL);
	free(big);

	/* What a node never writes. */
	assert_null(bw_keys_note("0123", "acme", (const uint8_t *)"a", 1, &len));
	assert_null(bw_keys_note("0123456789ABCDEF0123456789abcdef", "acme", (const uint8_t *)"a",
	                         1, &len));
	assert_null(bw_keys_note(NODE, "ACME", (const uint8_t *)"a", 1, &len));
	assert_null(bw_keys_note(NODE, "acme", (const uint8_t *)"", 0, &len));

	/* What is not a note. */
	const char *bad[] = {
		"",
		NODE,
		NODE " acme",
		NODE " acme ",
		NODE "  a",
		NODE " Acme a",
		"0123456789abcdef0123456789abcdeg acme a",
		"0123456789abcdef0123456789abcde acme a",
		NODE "xacme a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bw_keys_note_parse(bad[i], strlen(bad[i]), &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_prefix_check),
		cmocka_unit_test(test_tenant_from_key),
		cmocka_unit_test(test_note),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
