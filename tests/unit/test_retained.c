/*
 * Unit tests for the retained index (node/core/retained.h): set, replace
 * (the old message released once), clear, lookup, wildcard matching with
 * the '$' rule, stopping a walk, the count, bytes and depth limits, release
 * of everything on free, and a randomized cross-check of
 * bw_retained_match() against bw_topic_match(). Messages are heap blocks
 * the release callback frees, so the sanitizer build sees any leak or
 * double release.
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

#include "node/core/retained.h"
#include "proto/mqtt/topic.h"

#define U(s) ((const uint8_t *)(s))

struct msg {
	int id;
};

static int released;

static void release(void *arg, void *p)
{
	(void)arg;
	released++;
	free(p);
}

static struct msg *msg_new(int id)
{
	struct msg *m = malloc(sizeof(*m));
	assert_non_null(m);
	m->id = id;
	return m;
}

static const struct bw_retained_limits LIM = { 10000, 1u << 20, 16 };

static struct bw_retained *r_new(const struct bw_retained_limits *lim)
{
	struct bw_retained *r = bw_retained_new(lim, release, NULL);
	assert_non_null(r);
	released = 0;
	return r;
}

/* Sets topic to a new message with id (freed here when refused). */
static int set(struct bw_retained *r, const char *t, int id, size_t size)
{
	struct msg *m = msg_new(id);
	int rc = bw_retained_set(r, U(t), strlen(t), m, size);
	if (rc < 0)
		free(m);
	return rc;
}

static int get_id(struct bw_retained *r, const char *t)
{
	struct msg *m = bw_retained_get(r, U(t), strlen(t));
	return m ? m->id : -1;
}

/* What a walk saw. */
struct seen {
	char t[64][32];
	int n;
	int stop_after; /* 0: never stop */
};

static int visit(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct seen *s = arg;

	assert_true(s->n < 64 && len < 32);
	assert_non_null(msg);
	memcpy(s->t[s->n], topic, len);
	s->t[s->n][len] = 0;
	s->n++;
	return s->n == s->stop_after ? 7 : 0;
}

static bool seen_has(const struct seen *s, const char *t)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->t[i], t) == 0)
			return true;
	}
	return false;
}

static void test_set_replace_clear(void **state)
{
	struct bw_retained *r = r_new(&LIM);
	struct bw_retained_stats st;

	(void)state;
	assert_int_equal(set(r, "a/b", 1, 10), 0);
	assert_int_equal(get_id(r, "a/b"), 1);
	assert_int_equal(get_id(r, "a"), -1);
	assert_int_equal(get_id(r, "a/b/c"), -1);
	assert_int_equal(get_id(r, ""), -1);
	assert_int_equal(set(r, "a/b", 2, 30), 1);
	assert_int_equal(released, 1);
	assert_int_equal(get_id(r, "a/b"), 2);
	assert_int_equal(set(r, "a", 3, 5), 0);
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 2);
	assert_int_equal(st.bytes, 35);
	assert_int_equal(st.nodes, 3);

	assert_int_equal(bw_retained_clear(r, U("a/b"), 3), 0);
	assert_int_equal(released, 2);
	assert_int_equal(bw_retained_clear(r, U("a/b"), 3), -ENOENT);
	assert_int_equal(bw_retained_clear(r, U("x"), 1), -ENOENT);
	assert_int_equal(bw_retained_clear(r, U(""), 0), -ENOENT);
	assert_int_equal(released, 2);
	assert_int_equal(get_id(r, "a/b"), -1);
	assert_int_equal(get_id(r, "a"), 3);
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 1);
	assert_int_equal(st.bytes, 5);
	assert_int_equal(st.nodes, 2); /* "a/b" pruned, "a" kept */
	assert_int_equal(bw_retained_clear(r, U("a"), 1), 0);
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.nodes, 1);

	/* Free releases what is left. */
	assert_int_equal(set(r, "x/y", 4, 1), 0);
	assert_int_equal(set(r, "x", 5, 1), 0);
	assert_int_equal(set(r, "/", 6, 1), 0);
	bw_retained_free(&r);
	assert_null(r);
	assert_int_equal(released, 6);
	bw_retained_free(&r);
}

static const char *const stored[] = { "a",  "a/b",  "a/b/c",  "a/c",  "b",     "/",
	                              "/x", "a//b", "$SYS/x", "$SYS", "x/$SYS" };
#define N_STORED (int)(sizeof(stored) / sizeof(stored[0]))

/* Walks filter f and checks the visits against bw_topic_match(); returns how many. */
static int walk_check(struct bw_retained *r, const char *f)
{
	struct seen s = { .n = 0 };
	int expect = 0;

	assert_int_equal(bw_retained_match(r, U(f), strlen(f), visit, &s), 0);
	for (int i = 0; i < N_STORED; i++) {
		bool m = bw_topic_match(U(f), strlen(f), U(stored[i]), strlen(stored[i]));
		if (m != seen_has(&s, stored[i]))
			fail_msg("filter \"%s\", topic \"%s\": walk %d, expected %d", f, stored[i],
			         !m, m);
		expect += m;
	}
	assert_int_equal(s.n, expect); /* each once */
	return s.n;
}

static void test_match_wildcards(void **state)
{
	struct bw_retained *r = r_new(&LIM);
	struct seen s = { .n = 0 };

	(void)state;
	for (int i = 0; i < N_STORED; i++)
		assert_int_equal(set(r, stored[i], i, 1), 0);
	assert_int_equal(walk_check(r, "a/#"), 5);
	assert_int_equal(walk_check(r, "a/+"), 2);
	assert_int_equal(walk_check(r, "+"), 2);
	assert_int_equal(walk_check(r, "#"), 9);
	assert_int_equal(walk_check(r, "+/+"), 5); /* a/b a/c / /x x/$SYS */
	assert_int_equal(walk_check(r, "+/x"), 1);
	assert_int_equal(walk_check(r, "$SYS/#"), 2);
	assert_int_equal(walk_check(r, "$SYS/+"), 1);
	assert_int_equal(walk_check(r, "+/#"), 9);
	assert_int_equal(walk_check(r, "a/+/c"), 1);
	assert_int_equal(walk_check(r, "a//b"), 1);
	assert_int_equal(walk_check(r, "a/+/b"), 1);
	assert_int_equal(walk_check(r, "+/+/+"), 2);
	assert_int_equal(walk_check(r, "a/b/c/#"), 1);
	assert_int_equal(walk_check(r, "a/b/c/d"), 0);
	assert_int_equal(walk_check(r, "zz/#"), 0);
	assert_int_equal(walk_check(r, "/"), 1);
	assert_int_equal(walk_check(r, "/#"), 2);

	/* The visitor's non-zero value stops the walk. */
	s.stop_after = 2;
	assert_int_equal(bw_retained_match(r, U("#"), 1, visit, &s), 7);
	assert_int_equal(s.n, 2);
	s.n = 0;
	s.stop_after = 1;
	assert_int_equal(bw_retained_match(r, U("a/#"), 3, visit, &s), 7);
	assert_int_equal(s.n, 1);

	/* Invalid and shared filters are refused. */
	assert_int_equal(bw_retained_match(r, U("a/#/b"), 5, visit, &s), -EINVAL);
	assert_int_equal(bw_retained_match(r, U(""), 0, visit, &s), -EINVAL);
	assert_int_equal(bw_retained_match(r, U("$share/g/a"), 10, visit, &s), -EINVAL);
	bw_retained_free(&r);
	assert_int_equal(released, N_STORED);
}

static void test_limits(void **state)
{
	struct bw_retained_limits lim = { .count_max = 3, .bytes_max = 100, .levels_max = 3 };
	struct bw_retained *r = r_new(&lim);
	struct bw_retained_stats st;

	(void)state;
	assert_int_equal(set(r, "a", 1, 40), 0);
	assert_int_equal(set(r, "b", 2, 40), 0);
	assert_int_equal(set(r, "c", 3, 21), -EDQUOT); /* bytes */
	assert_int_equal(set(r, "c", 3, 20), 0);
	assert_int_equal(set(r, "d", 4, 0), -EDQUOT);  /* count */
	assert_int_equal(set(r, "a", 5, 41), -EDQUOT); /* a bigger replacement */
	assert_int_equal(get_id(r, "a"), 1);
	assert_int_equal(released, 0);
	assert_int_equal(set(r, "a", 5, 10), 1); /* a smaller one */
	assert_int_equal(released, 1);
	assert_int_equal(set(r, "b", 6, 70), 1);
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 3);
	assert_int_equal(st.bytes, 100);
	assert_int_equal(set(r, "x", 7, 1000), -EDQUOT);
	assert_int_equal(bw_retained_clear(r, U("c"), 1), 0);
	assert_int_equal(set(r, "d/e/f", 8, 20), 0);
	assert_int_equal(set(r, "d/e/f/g", 9, 1), -E2BIG);
	assert_int_equal(set(r, "d/+", 9, 1), -EINVAL);
	assert_int_equal(set(r, "", 9, 1), -EINVAL);
	assert_int_equal(bw_retained_set(r, U("d"), 1, NULL, 1), -EINVAL);
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 3);
	assert_int_equal(st.bytes, 100);
	assert_int_equal(st.nodes, 6); /* root a b d e f */
	bw_retained_free(&r);
	assert_int_equal(released, 6);
}

/* The randomized cross-check: random topics and filters over a few levels. */
#define R_TOPICS  300
#define R_FILTERS 300

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 33) % n;
}

static void rand_name(char *out, size_t cap, bool filter)
{
	static const char *const words[] = { "a", "b", "c", "", "$x" };
	int levels = 1 + (int)rnd(5);
	size_t n = 0;

	for (int l = 0; l < levels; l++) {
		const char *w = words[rnd(5)];
		if (filter && rnd(4) == 0)
			w = "+";
		if (filter && l == levels - 1 && rnd(6) == 0)
			w = "#";
		n += (size_t)snprintf(out + n, cap - n, "%s%s", l ? "/" : "", w);
	}
}

struct tally {
	char (*topics)[32];
	int n_topics;
	const char *filter;
	int visits;
};

static int tally_visit(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct tally *t = arg;
	struct msg *m = msg;

	/* The message is the one set for exactly this topic, and it matches. */
	assert_true(m->id >= 0 && m->id < t->n_topics);
	assert_int_equal(strlen(t->topics[m->id]), len);
	assert_memory_equal(t->topics[m->id], topic, len);
	assert_true(bw_topic_match(U(t->filter), strlen(t->filter), topic, len));
	t->visits++;
	return 0;
}

static void test_random_cross_check(void **state)
{
	static char topics[R_TOPICS][32];
	struct bw_retained *r = r_new(&LIM);
	struct bw_retained_stats st;
	int n = 0, total = 0;

	(void)state;
	for (int i = 0; i < R_TOPICS; i++) {
		char t[32];
		bool dup = false;
		rand_name(t, sizeof(t), false);
		for (int j = 0; j < n; j++)
			dup |= strcmp(topics[j], t) == 0;
		if (t[0] == 0 || dup)
			continue;
		strcpy(topics[n], t);
		assert_int_equal(set(r, t, n, strlen(t)), 0);
		n++;
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < R_FILTERS; i++) {
			char f[32];
			struct tally t = { topics, n, f, 0 };
			int expect = 0;
			do
				rand_name(f, sizeof(f), true);
			while (f[0] == 0);
			for (int j = 0; j < n; j++) {
				expect += topics[j][0] &&
				          bw_topic_match(U(f), strlen(f), U(topics[j]),
				                         strlen(topics[j]));
			}
			assert_int_equal(bw_retained_match(r, U(f), strlen(f), tally_visit, &t), 0);
			if (t.visits != expect)
				fail_msg("filter \"%s\": %d visits, expected %d", f, t.visits,
				         expect);
			total += expect;
		}
		/* Round two: clear every other topic ("" marks it gone). */
		for (int j = 0; round == 0 && j < n; j += 2) {
			assert_int_equal(bw_retained_clear(r, U(topics[j]), strlen(topics[j])), 0);
			topics[j][0] = 0;
		}
	}
	assert_true(total > 1000);
	for (int j = 0; j < n; j++) {
		if (topics[j][0])
			assert_int_equal(bw_retained_clear(r, U(topics[j]), strlen(topics[j])), 0);
	}
	bw_retained_stats(r, &st);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.nodes, 1);
	assert_int_equal(released, n);
	bw_retained_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_replace_clear),
		cmocka_unit_test(test_match_wildcards),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_random_cross_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
