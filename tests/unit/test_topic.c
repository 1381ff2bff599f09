/*
 * Unit tests for topic names and filters (proto/mqtt/topic.h): name and
 * filter validation (shared subscriptions included), splitting a
 * "$share/{group}/{filter}" filter, level counting, wildcard detection, and
 * the matcher. The match table holds every example of MQTT 5.0 section 4.7
 * (and 3.1.1 section 4.7) plus the edge cases around empty levels, the '$'
 * rule, case and trailing slashes; a brute-force cross-check then compares
 * bw_topic_match() with a naive reference matcher over every small filter
 * and name built from a handful of levels.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/topic.h"

#define U(s) ((const uint8_t *)(s))

static void name_is(int line, const char *name, int expect)
{
	int rc = bw_topic_name_check(U(name), strlen(name));

	if (rc != expect)
		fail_msg("line %d: bw_topic_name_check(\"%s\") = %d, expected %d", line, name, rc,
		         expect);
}

static void filter_is(int line, const char *filter, int expect)
{
	int rc = bw_topic_filter_check(U(filter), strlen(filter));

	if (rc != expect)
		fail_msg("line %d: bw_topic_filter_check(\"%s\") = %d, expected %d", line, filter,
		         rc, expect);
}

#define NAME_OK(n)    name_is(__LINE__, n, 0)
#define NAME_BAD(n)   name_is(__LINE__, n, -BW_RC_TOPIC_NAME_INVALID)
#define FILTER_OK(f)  filter_is(__LINE__, f, 0)
#define FILTER_BAD(f) filter_is(__LINE__, f, -BW_RC_TOPIC_FILTER_INVALID)

static void test_name_check(void **state)
{
	(void)state;
	NAME_BAD("");
	NAME_BAD("+");
	NAME_BAD("#");
	NAME_BAD("a/+");
	NAME_BAD("+/a");
	NAME_BAD("a#");
	NAME_BAD("a/#");
	NAME_BAD("a+b");
	NAME_BAD("a/b/c#");
	NAME_OK("a");
	NAME_OK("/");
	NAME_OK("//");
	NAME_OK("a/b/c");
	NAME_OK("a//b/");
	NAME_OK("$SYS/x");
	NAME_OK("$SYS");
	NAME_OK("sport/tennis/player1");
	NAME_OK(" ");
	NAME_OK("caf\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x98\x80");
}

static void test_filter_check(void **state)
{
	(void)state;
	FILTER_OK("#");
	FILTER_OK("+");
	FILTER_OK("a");
	FILTER_OK("/");
	FILTER_OK("a/#");
	FILTER_OK("/#");
	FILTER_OK("+/+");
	FILTER_OK("+/+/+");
	FILTER_OK("/+");
	FILTER_OK("+/");
	FILTER_OK("a//b");
	FILTER_OK("+/tennis/#");
	FILTER_OK("sport/+/player1");
	FILTER_OK("$SYS/#");
	FILTER_OK("$share/g/a/#");
	FILTER_OK("$share/g/#");
	FILTER_OK("$share/group1/+/b");
	FILTER_OK("$share/g//");
	FILTER_OK("$sharex/a");
	FILTER_OK("caf\xC3\xA9/+");

	FILTER_BAD("");
	FILTER_BAD("a#");
	FILTER_BAD("#a");
	FILTER_BAD("##");
	FILTER_BAD("a/#/b");
	FILTER_BAD("#/a");
	FILTER_BAD("#/");
	FILTER_BAD("a+");
	FILTER_BAD("+a");
	FILTER_BAD("++");
	FILTER_BAD("a/b+");
	FILTER_BAD("a/+b/c");
	FILTER_BAD("sport/tennis#");
	FILTER_BAD("$share/g");
	FILTER_BAD("$share/");
	FILTER_BAD("$share//a");
	FILTER_BAD("$share/g/");
	FILTER_BAD("$share/+/a");
	FILTER_BAD("$share/#/a");
	FILTER_BAD("$share/g+/a");
	FILTER_BAD("$share/g#/a");
	FILTER_BAD("$share/g/a/#/b");
	FILTER_BAD("$share/g/a+");
}

static void share_is(int line, const char *f, const char *group, const char *rest)
{
	struct bw_topic_share sh;
	bool shared;

	if (bw_topic_filter_check(U(f), strlen(f)) != 0)
		fail_msg("line %d: \"%s\" should be a valid filter", line, f);
	memset(&sh, 0, sizeof(sh));
	shared = bw_topic_share_split(U(f), strlen(f), &sh);
	if (group == NULL) {
		if (shared)
			fail_msg("line %d: \"%s\" is not a shared subscription", line, f);
		return;
	}
	if (!shared)
		fail_msg("line %d: \"%s\" is a shared subscription", line, f);
	if (sh.group_len != strlen(group) || sh.group != U(f) + 7 ||
	    memcmp(sh.group, group, sh.group_len) != 0)
		fail_msg("line %d: \"%s\": group should be \"%s\" at offset 7", line, f, group);
	if (sh.filter_len != strlen(rest) || sh.filter != U(f) + strlen(f) - strlen(rest) ||
	    memcmp(sh.filter, rest, sh.filter_len) != 0)
		fail_msg("line %d: \"%s\": filter should be \"%s\"", line, f, rest);
}

static void test_share_split(void **state)
{
	(void)state;
	share_is(__LINE__, "$share/g/a/#", "g", "a/#");
	share_is(__LINE__, "$share/g/#", "g", "#");
	share_is(__LINE__, "$share/group1/+", "group1", "+");
	share_is(__LINE__, "$share/g/a/b/c", "g", "a/b/c");
	share_is(__LINE__, "$share/g//x", "g", "/x");
	share_is(__LINE__, "a/b", NULL, NULL);
	share_is(__LINE__, "#", NULL, NULL);
	share_is(__LINE__, "$SYS/#", NULL, NULL);
	share_is(__LINE__, "$sharex/a", NULL, NULL);
	share_is(__LINE__, "a/$share/g/b", NULL, NULL);
}

static void levels_are(int line, const char *t, size_t expect)
{
	size_t n = bw_topic_levels(U(t), strlen(t));

	if (n != expect)
		fail_msg("line %d: bw_topic_levels(\"%s\") = %zu, expected %zu", line, t, n,
		         expect);
}

static void test_is_sys(void **state)
{
	assert_true(bw_topic_is_sys(U("$SYS"), 4));
	assert_true(bw_topic_is_sys(U("$SYS/broker/uptime"), 18));
	assert_false(bw_topic_is_sys(U("$SYSX/a"), 7));
	assert_false(bw_topic_is_sys(U("$SY"), 3));
	assert_false(bw_topic_is_sys(U("a/$SYS"), 6));
	assert_false(bw_topic_is_sys(U("$aws/things"), 11));
}

static void test_levels(void **state)
{
	(void)state;
	levels_are(__LINE__, "a", 1);
	levels_are(__LINE__, "#", 1);
	levels_are(__LINE__, "a/b", 2);
	levels_are(__LINE__, "/", 2);
	levels_are(__LINE__, "//", 3);
	levels_are(__LINE__, "a/b/c/", 4);
	levels_are(__LINE__, "/a", 2);
	levels_are(__LINE__, "sport/tennis/player1/#", 4);
	levels_are(__LINE__, "caf\xC3\xA9/x", 2);
}

static void test_has_wildcard(void **state)
{
	(void)state;
	assert_true(bw_topic_has_wildcard(U("#"), 1));
	assert_true(bw_topic_has_wildcard(U("+"), 1));
	assert_true(bw_topic_has_wildcard(U("a/+"), 3));
	assert_true(bw_topic_has_wildcard(U("a/b/#"), 5));
	assert_true(bw_topic_has_wildcard(U("+/b/c"), 5));
	assert_true(bw_topic_has_wildcard(U("$share/g/+"), 10));
	assert_false(bw_topic_has_wildcard(U("a"), 1));
	assert_false(bw_topic_has_wildcard(U("a/b/c"), 5));
	assert_false(bw_topic_has_wildcard(U("/"), 1));
	assert_false(bw_topic_has_wildcard(U("$SYS/x"), 6));
	assert_false(bw_topic_has_wildcard(U("$share/g/a"), 10));
	/* Only the first len bytes count. */
	assert_false(bw_topic_has_wildcard(U("a/b/#"), 4));
}

static const struct {
	const char *filter;
	const char *name;
	bool match;
} match_table[] = {
	/* MQTT 5.0 4.7.1.2, multi-level wildcard. */
	{ "sport/tennis/player1/#", "sport/tennis/player1", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
	{ "sport/tennis/player1/#", "sport/tennis/player2", false },
	{ "sport/tennis/player1/#", "sport/tennis", false },
	{ "sport/tennis/player1/#", "sport/tennis/player10", false },
	{ "sport/#", "sport", true },
	{ "sport/#", "sport/", true },
	{ "sport/#", "sport/tennis/player1", true },
	{ "sport/#", "sports", false },
	{ "sport/#", "spor", false },
	{ "#", "sport", true },
	{ "#", "a/b/c/d/e", true },
	{ "#", "/", true },
	{ "#", "/finance", true },
	{ "#", "a", true },
	/* 4.7.1.3, single-level wildcard. */
	{ "sport/tennis/+", "sport/tennis/player1", true },
	{ "sport/tennis/+", "sport/tennis/player2", true },
	{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
	{ "sport/tennis/+", "sport/tennis", false },
	{ "sport/tennis/+", "sport/tennis/", true },
	{ "sport/+", "sport", false },
	{ "sport/+", "sport/", true },
	{ "+", "sport", true },
	{ "+", "/finance", false },
	{ "+", "/", false },
	{ "+/+", "/finance", true },
	{ "+/+", "/", true },
	{ "+/+", "a", false },
	{ "+/+", "a/b/c", false },
	{ "/+", "/finance", true },
	{ "/+", "finance", false },
	{ "/+", "/", true },
	{ "+/tennis/#", "sport/tennis/player1", true },
	{ "+/tennis/#", "sport/tennis", true },
	{ "+/tennis/#", "sport/golf", false },
	{ "sport/+/player1", "sport/tennis/player1", true },
	{ "sport/+/player1", "sport/tennis/player2", false },
	/* 4.7.2, topics beginning with '$'. */
	{ "#", "$SYS", false },
	{ "#", "$SYS/x", false },
	{ "#", "$x", false },
	{ "+", "$x", false },
	{ "+/#", "$x", false },
	{ "+/#", "$x/y", false },
	{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
	{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
	{ "$SYS/#", "$SYS", true },
	{ "$SYS/#", "$SYS/a/b", true },
	{ "$SYS/+", "$SYS", false },
	{ "$SYS", "$SYS", true },
	{ "a/+", "a/$x", true },
	{ "a/#", "a/$x/y", true },
	{ "#", "a$", true },
	/* Case sensitivity. */
	{ "ACCOUNTS", "Accounts", false },
	{ "Accounts", "Accounts", true },
	{ "sport/Tennis/+", "sport/tennis/x", false },
	{ "$sys/#", "$SYS/x", false },
	/* Trailing slashes and prefixes. */
	{ "a/b", "a/b/", false },
	{ "a/b/", "a/b", false },
	{ "a/b/", "a/b/", true },
	{ "a/b", "a/b", true },
	{ "a/b", "a/bc", false },
	{ "a/bc", "a/b", false },
	{ "ab", "a", false },
	{ "a", "ab", false },
	{ "a/b", "a", false },
	{ "a", "a/b", false },
	/* Empty levels. */
	{ "a/+/b", "a//b", true },
	{ "a//b", "a//b", true },
	{ "a//b", "a/b", false },
	{ "a/+/b", "a/b", false },
	{ "+/+/+", "//", true },
	{ "/", "/", true },
	{ "//", "/", false },
	{ "a/+", "a/", true },
	{ "a/#", "a", true },
	{ "a/#", "a/", true },
	{ "a/#", "a//", true },
	{ "/#", "/", true },
	{ "/#", "a", false },
};

static void test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_table) / sizeof(match_table[0]); i++) {
		const char *f = match_table[i].filter;
		const char *n = match_table[i].name;

		assert_int_equal(bw_topic_filter_check(U(f), strlen(f)), 0);
		assert_int_equal(bw_topic_name_check(U(n), strlen(n)), 0);
		if (bw_topic_match(U(f), strlen(f), U(n), strlen(n)) != match_table[i].match)
			fail_msg("bw_topic_match(\"%s\", \"%s\") should be %s", f, n,
			         match_table[i].match ? "true" : "false");
	}
}

/* Filters and names are passed with lengths: bytes past them must not count. */
static void test_match_lengths(void **state)
{
	(void)state;
	assert_true(bw_topic_match(U("a/b/c"), 3, U("a/b"), 3));
	assert_true(bw_topic_match(U("a/b"), 3, U("a/b/c"), 3));
	assert_false(bw_topic_match(U("a/b/c"), 5, U("a/b/c"), 3));
	assert_true(bw_topic_match(U("a/+x"), 3, U("a/bx"), 3));
	assert_true(bw_topic_match(U("#"), 1, U("a/b"), 3));
}

/* Splits s on '/' into lv; returns the number of levels. */
static size_t split(const char *s, char lv[][8])
{
	size_t n = 0, k = 0;

	for (;; s++) {
		if (*s == '/' || *s == '\0') {
			lv[n++][k] = '\0';
			k = 0;
			if (*s == '\0')
				return n;
		} else {
			lv[n][k++] = *s;
		}
	}
}

/* The matching rules, level by level, as the spec states them. */
static bool ref_match(const char *f, const char *n)
{
	char fl[8][8], nl[8][8];
	size_t fc = split(f, fl), nc = split(n, nl);
	bool dollar = n[0] == '$';

	for (size_t i = 0; i < fc; i++) {
		if (strcmp(fl[i], "#") == 0)
			return !(i == 0 && dollar);
		if (i >= nc)
			return false;
		if (strcmp(fl[i], "+") == 0) {
			if (i == 0 && dollar)
				return false;
			continue;
		}
		if (strcmp(fl[i], nl[i]) != 0)
			return false;
	}
	return fc == nc;
}

/* Appends every join of 1..3 levels from set (set0 at level 1) to out. */
static size_t build(char out[][16], const char *const *set0, size_t n0, const char *const *set,
                    size_t n)
{
	size_t count = 0;

	for (size_t a = 0; a < n0; a++) {
		snprintf(out[count++], 16, "%s", set0[a]);
		for (size_t b = 0; b < n; b++) {
			snprintf(out[count++], 16, "%s/%s", set0[a], set[b]);
			for (size_t c = 0; c < n; c++)
				snprintf(out[count++], 16, "%s/%s/%s", set0[a], set[b], set[c]);
		}
	}
	return count;
}

static void test_match_brute_force(void **state)
{
	static const char *const f0[] = { "a", "b", "+", "#", "", "$x" };
	static const char *const fn[] = { "a", "b", "+", "#", "" };
	static const char *const n0[] = { "a", "b", "", "$x" };
	static const char *const nn[] = { "a", "b", "" };
	static char filters[6 * (1 + 5 + 25)][16];
	static char names[4 * (1 + 3 + 9)][16];
	size_t nf = build(filters, f0, 6, fn, 5);
	size_t nn_count = build(names, n0, 4, nn, 3);
	size_t valid_filters = 0, valid_names = 0, pairs = 0, matches = 0, bad = 0;

	(void)state;
	for (size_t j = 0; j < nn_count; j++) {
		const char *n = names[j];

		if (n[0] == '\0') {
			assert_int_equal(bw_topic_name_check(U(n), 0), -BW_RC_TOPIC_NAME_INVALID);
			continue;
		}
		assert_int_equal(bw_topic_name_check(U(n), strlen(n)), 0);
		valid_names++;
	}
	for (size_t i = 0; i < nf; i++) {
		const char *f = filters[i];

		if (bw_topic_filter_check(U(f), strlen(f)) != 0)
			continue;
		valid_filters++;
		for (size_t j = 0; j < nn_count; j++) {
			const char *n = names[j];
			bool want, got;

			if (n[0] == '\0')
				continue;
			want = ref_match(f, n);
			got = bw_topic_match(U(f), strlen(f), U(n), strlen(n));
			pairs++;
			matches += want;
			if (want != got && bad++ < 10)
				print_error(
				        "bw_topic_match(\"%s\", \"%s\") = %d, reference says %d\n",
				        f, n, got, want);
		}
	}
	/*
	 * A one-level filter is any first level but "" (5); a first level
	 * followed by more is anything but '#' (5), a middle level anything
	 * but '#' or "$x" (4), a last level anything but "$x" (5).
	 */
	assert_int_equal(valid_filters, 5 + 5 * 5 + 5 * 4 * 5);
	assert_int_equal(valid_names, 3 + 4 * 3 + 4 * 3 * 3);
	assert_true(matches > 100);
	if (bad)
		fail_msg("%zu of %zu (filter, name) pairs disagree with the reference", bad, pairs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_check),    cmocka_unit_test(test_filter_check),
		cmocka_unit_test(test_share_split),   cmocka_unit_test(test_levels),
		cmocka_unit_test(test_has_wildcard),  cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_lengths), cmocka_unit_test(test_match_brute_force),
		cmocka_unit_test(test_is_sys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
