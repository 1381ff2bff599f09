/*
 * Unit tests for the Redis key layout (node/state/keys.h): the retained
 * hash and channel names, the SCAN pattern, a tenant read back from a key
 * (and every way a key can fail to be one), prefixes, and the change note
 * both ways, including topics with spaces and notes that are not notes;
 * the session keys (client ids of every odd kind, as they are after the
 * tag, read back from a key), the epoch, the SCAN pattern, and the takeover
 * note as the claim script writes it, and what is not one.
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

#define K(s) ((const uint8_t *)(s))

static void test_session_keys(void **state)
{
	static char buf[BW_KEYS_SESSION_MAX];
	const uint8_t *id;
	size_t id_len;
	(void)state;

	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION, K("c1"), 2), 20);
	assert_string_equal(buf, "bw:{acme}:session:c1");
	assert_int_equal(bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_QUEUE, K("c1"), 2),
	                 18);
	assert_string_equal(buf, "bw:{acme}:queue:c1");
	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_INFLIGHT, K("c1"), 2), 21);
	assert_string_equal(buf, "bw:{acme}:inflight:c1");
	assert_int_equal(bw_keys_session_epoch(buf, sizeof(buf), "bw", "acme"), 15);
	assert_string_equal(buf, "bw:{acme}:epoch");
	assert_int_equal(bw_keys_session_match(buf, sizeof(buf), "bw", "acme"), 19);
	assert_string_equal(buf, "bw:{acme}:session:*");
	assert_int_equal(bw_keys_sessions_channel(buf, sizeof(buf), "bw"), 11);
	assert_string_equal(buf, "bw:sessions");

	/* Ids as they are, after the tag: braces, colons, spaces, globs, UTF-8. */
	const char *ids[] = { "a b", "{x}", "}", "{", "a:b", "*", "x}:retained", "é漢" };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		size_t n = strlen(ids[i]);
		int len = bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION,
		                          K(ids[i]), n);
		assert_int_equal(len, 18 + (int)n);
		assert_memory_equal(buf, "bw:{acme}:session:", 18);
		assert_memory_equal(buf + 18, ids[i], n);
		assert_int_equal(
		        bw_keys_session_client(buf, (size_t)len, "bw", "acme", &id, &id_len), 0);
		assert_int_equal(id_len, n);
		assert_true(id == (const uint8_t *)buf + 18);
		/* Never a retained hash, whatever the id ends with. */
		char t[BW_TENANT_NAME_MAX + 1];
		assert_int_equal(bw_keys_retained_tenant(buf, (size_t)len, "bw", t, sizeof(t)),
		                 -EINVAL);
	}

	/* The longest id fits BW_KEYS_SESSION_MAX with the longest prefix and tenant. */
	char prefix[BW_KEYS_PREFIX_MAX + 1], tenant[BW_TENANT_NAME_MAX + 1];
	memset(prefix, 'P', BW_KEYS_PREFIX_MAX);
	prefix[BW_KEYS_PREFIX_MAX] = '\0';
	memset(tenant, 't', BW_TENANT_NAME_MAX);
	tenant[BW_TENANT_NAME_MAX] = '\0';
	uint8_t *big = malloc(BW_KEYS_CLIENT_ID_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', BW_KEYS_CLIENT_ID_MAX + 1);
	assert_true(bw_keys_session(buf, sizeof(buf), prefix, tenant, BW_KEYS_INFLIGHT, big,
	                            BW_KEYS_CLIENT_ID_MAX) > (int)BW_KEYS_CLIENT_ID_MAX);
	assert_int_equal(bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION, big,
	                                 BW_KEYS_CLIENT_ID_MAX + 1),
	                 -EINVAL);
	free(big);
	/* Room for the key and its NUL, exactly. */
	assert_int_equal(bw_keys_session(buf, 20, "bw", "acme", BW_KEYS_SESSION, K("c1"), 2),
	                 -ENAMETOOLONG);
	assert_int_equal(bw_keys_session(buf, 21, "bw", "acme", BW_KEYS_SESSION, K("c1"), 2), 20);
	assert_int_equal(bw_keys_session(buf, 10, "bw", "acme", BW_KEYS_SESSION, K("c1"), 2),
	                 -ENAMETOOLONG);

	/* Refused: an empty id, not UTF-8, a NUL, a bad tenant, prefix or kind. */
	assert_int_equal(bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION, K(""), 0),
	                 -EINVAL);
	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION, K("\xff"), 1),
	        -EINVAL);
	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "bw", "acme", BW_KEYS_SESSION, K("a\0b"), 3),
	        -EINVAL);
	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "bw", "ACME", BW_KEYS_SESSION, K("a"), 1),
	        -EINVAL);
	assert_int_equal(
	        bw_keys_session(buf, sizeof(buf), "b:w", "acme", BW_KEYS_SESSION, K("a"), 1),
	        -EINVAL);
	assert_int_equal(bw_keys_session(buf, sizeof(buf), "bw", "acme",
	                                 (enum bw_keys_session_kind)7, K("a"), 1),
	                 -EINVAL);
	assert_int_equal(bw_keys_session_epoch(buf, sizeof(buf), "bw", NULL), -EINVAL);
	assert_int_equal(bw_keys_session_match(buf, sizeof(buf), "", "acme"), -EINVAL);
	assert_int_equal(bw_keys_sessions_channel(buf, sizeof(buf), "a b"), -EINVAL);

	/* Not a session hash of this tenant. */
	const char *bad[] = { "bw:{acme}:session:",    "bw:{acme}:queue:c1",
		              "bw:{beta}:session:c1",  "bx:{acme}:session:c1",
		              "bw:{acme}:sessionc1",   "bw:{acme}:retained",
		              "bw:{acme}:session:\xff" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		        bw_keys_session_client(bad[i], strlen(bad[i]), "bw", "acme", &id, &id_len),
		        -EINVAL);
}

static void test_takeover_note(void **state)
{
	struct bw_keys_takeover t;
	(void)state;

	const char *note = NODE " acme 42 dev 1 {x}";
	assert_int_equal(bw_keys_takeover_parse(note, strlen(note), &t), 0);
	assert_memory_equal(t.node, NODE, BW_KEYS_NODE_LEN);
	assert_int_equal(t.tenant_len, 4);
	assert_memory_equal(t.tenant, "acme", 4);
	assert_true(t.token == 42);
	assert_int_equal(t.id_len, 9);
	assert_memory_equal(t.id, "dev 1 {x}", 9);
	note = NODE " a 18446744073709551615 x";
	assert_int_equal(bw_keys_takeover_parse(note, strlen(note), &t), 0);
	assert_true(t.token == UINT64_MAX);

	const char *bad[] = {
		"",
		NODE " acme 1",
		NODE " acme 1 ",
		NODE " acme 0 x",
		NODE " acme 01 x",
		NODE " acme -1 x",
		NODE " acme x x",
		NODE " acme 18446744073709551616 x",
		NODE " acme 1x x",
		NODE " Acme 1 x",
		NODE " acme",
		"0123456789abcdef0123456789abcdeg acme 1 x",
		NODE "xacme 1 x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bw_keys_takeover_parse(bad[i], strlen(bad[i]), &t), -EINVAL);

	/* An id of 65535 bytes, and one too many. */
	size_t head = BW_KEYS_NODE_LEN + 8, n = head + BW_KEYS_CLIENT_ID_MAX + 1;
	char *p = malloc(n);
	assert_non_null(p);
	memcpy(p, NODE " acme 7 ", head);
	memset(p + head, 'x', n - head);
	assert_int_equal(bw_keys_takeover_parse(p, n - 1, &t), 0);
	assert_int_equal(t.id_len, BW_KEYS_CLIENT_ID_MAX);
	assert_int_equal(bw_keys_takeover_parse(p, n, &t), -EINVAL);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),           cmocka_unit_test(test_prefix_check),
		cmocka_unit_test(test_tenant_from_key), cmocka_unit_test(test_note),
		cmocka_unit_test(test_session_keys),    cmocka_unit_test(test_takeover_note),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
