/*
 * Unit tests for the subscription index (node/core/sub_index.h): exact, '+'
 * and '#' matching on the MQTT 5.0 section 4.7 examples, one delivery a
 * subscriber at the maximum QoS with every subscription identifier,
 * no_local, share groups (round-robin, member removal), filter events,
 * option replacement, the '$' rule, limits, remove_all, and a randomized
 * cross-check of bw_sub_index_match() against bw_topic_match().
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

#include "node/core/sub_index.h"
#include "proto/mqtt/topic.h"

#define U(s) ((const uint8_t *)(s))

static int subs[256]; /* subscriber keys: &subs[i] */
#define S(i) ((void *)&subs[i])

static const struct bw_sub_index_limits LIM = { 10000, 100000, 16 };

static struct bw_sub_opts qos(uint8_t q)
{
	struct bw_sub_opts o = { .qos = q };
	return o;
}

static struct bw_sub_opts qid(uint8_t q, uint32_t id)
{
	struct bw_sub_opts o = { .qos = q, .sub_id = id };
	return o;
}

static int add(struct bw_sub_index *idx, const char *f, void *s, struct bw_sub_opts o)
{
	return bw_sub_index_add(idx, U(f), strlen(f), s, &o, NULL);
}

static int match(struct bw_sub_index *idx, const char *t, const void *pub, struct bw_match *m)
{
	return bw_sub_index_match(idx, U(t), strlen(t), pub, m);
}

/* The delivery for subscriber s (shared or plain), or NULL. */
static const struct bw_match_delivery *find(const struct bw_match *m, void *s, bool shared)
{
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->v[i].subscriber == s && m->v[i].shared == shared)
			return &m->v[i];
	}
	return NULL;
}

static bool has_id(const struct bw_match *m, const struct bw_match_delivery *d, uint32_t id)
{
	for (uint8_t i = 0; i < d->n_sub_ids; i++) {
		if (bw_match_sub_ids(m, d)[i] == id)
			return true;
	}
	return false;
}

/* One filter, one name: does it match? Every example of MQTT 5.0 4.7. */
static void spec_case(int line, const char *f, const char *t, bool expect)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_match m;
	int n;

	bw_match_init(&m, 16);
	assert_int_equal(add(idx, f, S(0), qos(1)), 0);
	n = match(idx, t, NULL, &m);
	if (n != (expect ? 1 : 0))
		fail_msg("line %d: filter \"%s\" name \"%s\": %d deliveries", line, f, t, n);
	assert_int_equal(bw_topic_match(U(f), strlen(f), U(t), strlen(t)), expect);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
	assert_null(idx);
}

#define YES(f, t) spec_case(__LINE__, f, t, true)
#define NO(f, t)  spec_case(__LINE__, f, t, false)

static void test_spec_examples(void **state)
{
	(void)state;
	YES("sport/tennis/player1/#", "sport/tennis/player1");
	YES("sport/tennis/player1/#", "sport/tennis/player1/ranking");
	YES("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon");
	YES("sport/#", "sport");
	YES("#", "sport/tennis");
	YES("#", "/");
	YES("sport/tennis/+", "sport/tennis/player1");
	YES("sport/tennis/+", "sport/tennis/player2");
	NO("sport/tennis/+", "sport/tennis/player1/ranking");
	NO("sport/+", "sport");
	YES("sport/+", "sport/");
	YES("+/+", "/finance");
	YES("/+", "/finance");
	NO("+", "/finance");
	YES("+/tennis/#", "sport/tennis/player1/ranking");
	YES("+/tennis/#", "sport/tennis");
	YES("a//b", "a//b");
	NO("a//b", "a/b");
	YES("a/+/b", "a//b");
	YES("/", "/");
	NO("/", "a");
	YES("+", "a");
	NO("a", "A");
	NO("a/b", "a/b/");
	YES("a/b/", "a/b/");
	YES("a/+/#", "a/x");
	NO("a/+/#", "a");
}

static void test_overlap_once(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_match m;
	struct bw_sub_opts rap = { .qos = 1, .retain_as_published = true, .sub_id = 2 };
	const struct bw_match_delivery *d;

	(void)state;
	bw_match_init(&m, 16);
	assert_int_equal(add(idx, "a/b", S(0), qid(0, 1)), 0);
	assert_int_equal(add(idx, "a/+", S(0), qid(2, 2)), 0);
	assert_int_equal(add(idx, "#", S(0), qos(1)), 0);
	assert_int_equal(add(idx, "a/#", S(0), rap), 0);
	assert_int_equal(add(idx, "a/b", S(1), qos(1)), 0);

	assert_int_equal(match(idx, "a/b", NULL, &m), 2);
	d = find(&m, S(0), false);
	assert_non_null(d);
	assert_int_equal(d->qos, 2);
	assert_true(d->retain_as_published);
	assert_int_equal(d->n_sub_ids, 2); /* id 2 twice counts once */
	assert_true(has_id(&m, d, 1));
	assert_true(has_id(&m, d, 2));
	d = find(&m, S(1), false);
	assert_non_null(d);
	assert_int_equal(d->qos, 1);
	assert_false(d->retain_as_published);
	assert_int_equal(d->n_sub_ids, 0);

	/* Only "#" and "a/#" match "a": no ids but 2 from "a/#". */
	assert_int_equal(match(idx, "a", NULL, &m), 1);
	assert_int_equal(m.v[0].qos, 1);
	assert_int_equal(m.v[0].n_sub_ids, 1);
	assert_true(has_id(&m, &m.v[0], 2));

	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_sub_ids_overflow(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	const char *lv[4] = { "a", "b", "c", "d" };
	const char *tails[4] = { "#", "a/#", "a/b/#", "a/b/c/d/#" };
	struct bw_match m;
	char f[32];
	uint32_t id = 1;

	(void)state;
	bw_match_init(&m, 16);
	/* 16 filters: each level of "a/b/c/d" exact or '+'; then 4 with '#'. */
	for (int mask = 0; mask < 16; mask++, id++) {
		snprintf(f, sizeof(f), "%s/%s/%s/%s", mask & 1 ? "+" : lv[0],
		         mask & 2 ? "+" : lv[1], mask & 4 ? "+" : lv[2], mask & 8 ? "+" : lv[3]);
		assert_int_equal(add(idx, f, S(0), qid(0, id)), 0);
	}
	for (int i = 0; i < 4; i++, id++)
		assert_int_equal(add(idx, tails[i], S(0), qid(0, id)), 0);
	assert_int_equal(match(idx, "a/b/c/d", NULL, &m), 1);
	assert_int_equal(m.v[0].n_sub_ids, BW_MATCH_SUB_IDS);
	assert_int_equal(m.sub_ids_dropped, 20 - BW_MATCH_SUB_IDS);
	/* The counters are per match. */
	assert_int_equal(match(idx, "a/b/c", NULL, &m), 1);
	assert_int_equal(m.v[0].n_sub_ids, 3); /* "#", "a/#", "a/b/#" */
	assert_int_equal(m.sub_ids_dropped, 0);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_no_local(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_sub_opts nl = { .qos = 1, .no_local = true };
	struct bw_match m;

	(void)state;
	bw_match_init(&m, 16);
	assert_int_equal(add(idx, "t", S(0), nl), 0);
	assert_int_equal(add(idx, "t", S(1), nl), 0);
	assert_int_equal(match(idx, "t", S(0), &m), 1);
	assert_ptr_equal(m.v[0].subscriber, S(1));
	assert_int_equal(match(idx, "t", NULL, &m), 2);
	/* Another matching subscription without no_local still delivers. */
	assert_int_equal(add(idx, "#", S(0), qos(0)), 0);
	assert_int_equal(match(idx, "t", S(0), &m), 2);
	assert_int_equal(find(&m, S(0), false)->qos, 0);
	/* Shared subscriptions forbid no_local (MQTT-3.8.3-4). */
	assert_int_equal(add(idx, "$share/g/t", S(2), nl), -EINVAL);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_shared_round_robin(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_match m;
	int got[4] = { 0 };
	bool gone;

	(void)state;
	bw_match_init(&m, 16);
	for (int i = 0; i < 3; i++)
		assert_int_equal(add(idx, "$share/g/t/+", S(i), qid(1, 10 + i)), 0);
	assert_int_equal(add(idx, "t/+", S(3), qos(0)), 0);
	for (int p = 0; p < 9; p++) {
		assert_int_equal(match(idx, "t/x", NULL, &m), 2);
		assert_non_null(find(&m, S(3), false));
		for (int i = 0; i < 3; i++) {
			const struct bw_match_delivery *d = find(&m, S(i), true);
			if (d) {
				got[i]++;
				assert_int_equal(d->qos, 1);
				assert_int_equal(d->n_sub_ids, 1);
				assert_int_equal(bw_match_sub_ids(&m, d)[0], 10 + i);
			}
		}
	}
	assert_int_equal(got[0], 3);
	assert_int_equal(got[1], 3);
	assert_int_equal(got[2], 3);

	/* Member 1 leaves: the other two alternate. */
	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/t/+"), 12, S(1), &gone), 0);
	assert_false(gone);
	memset(got, 0, sizeof(got));
	for (int p = 0; p < 6; p++) {
		assert_int_equal(match(idx, "t/x", NULL, &m), 2);
		for (int i = 0; i < 3; i++)
			got[i] += find(&m, S(i), true) != NULL;
	}
	assert_int_equal(got[0], 3);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[2], 3);

	/* A second group on the same filter gets its own copy. */
	assert_int_equal(add(idx, "$share/h/t/+", S(1), qos(2)), 0);
	assert_int_equal(match(idx, "t/x", NULL, &m), 3);
	assert_int_equal(find(&m, S(1), true)->qos, 2);
	/* A subscriber in a group and also plain gets both copies. */
	assert_int_equal(add(idx, "t/x", S(1), qos(0)), 0);
	assert_int_equal(match(idx, "t/x", NULL, &m), 4);
	assert_non_null(find(&m, S(1), false));

	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/t/+"), 12, S(0), &gone), 0);
	assert_false(gone);
	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/t/+"), 12, S(2), &gone), 0);
	assert_true(gone);
	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/t/+"), 12, S(2), &gone), -ENOENT);
	assert_int_equal(match(idx, "t/x", NULL, &m), 3);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_filter_events(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_sub_index_stats st;
	struct bw_sub_opts o = qos(1);
	bool ev;

	(void)state;
	assert_int_equal(bw_sub_index_add(idx, U("a/b"), 3, S(0), &o, &ev), 0);
	assert_true(ev);
	assert_int_equal(bw_sub_index_add(idx, U("a/b"), 3, S(1), &o, &ev), 0);
	assert_false(ev);
	/* "a" exists as an inner node but had no subscription: new. */
	assert_int_equal(bw_sub_index_add(idx, U("a"), 1, S(1), &o, &ev), 0);
	assert_true(ev);
	/* The shared filter is a filter of its own. */
	assert_int_equal(bw_sub_index_add(idx, U("$share/g/a/b"), 12, S(0), &o, &ev), 0);
	assert_true(ev);
	assert_int_equal(bw_sub_index_add(idx, U("$share/g/a/b"), 12, S(1), &o, &ev), 0);
	assert_false(ev);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.filters, 3);
	assert_int_equal(st.subs, 5);
	assert_int_equal(st.subscribers, 2);
	assert_int_equal(st.groups, 1);
	assert_int_equal(st.nodes, 3);

	assert_int_equal(bw_sub_index_remove(idx, U("a/b"), 3, S(0), &ev), 0);
	assert_false(ev);
	assert_int_equal(bw_sub_index_remove(idx, U("a/b"), 3, S(0), &ev), -ENOENT);
	assert_false(ev);
	assert_int_equal(bw_sub_index_remove(idx, U("a/b"), 3, S(1), &ev), 0);
	assert_true(ev);
	assert_int_equal(bw_sub_index_remove(idx, U("a/c"), 3, S(1), &ev), -ENOENT);
	assert_int_equal(bw_sub_index_remove(idx, U("a/#/b"), 5, S(1), &ev), -ENOENT);
	assert_int_equal(bw_sub_index_remove(idx, U("$share/h/a/b"), 12, S(1), &ev), -ENOENT);
	assert_int_equal(bw_sub_index_remove(idx, U("a"), 1, S(7), &ev), -ENOENT);
	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/a/b"), 12, S(0), &ev), 0);
	assert_false(ev);
	assert_int_equal(bw_sub_index_remove(idx, U("$share/g/a/b"), 12, S(1), &ev), 0);
	assert_true(ev);
	assert_int_equal(bw_sub_index_remove(idx, U("a"), 1, S(1), &ev), 0);
	assert_true(ev);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.filters, 0);
	assert_int_equal(st.subs, 0);
	assert_int_equal(st.subscribers, 0);
	assert_int_equal(st.groups, 0);
	assert_int_equal(st.nodes, 1); /* pruned back to the root */
	bw_sub_index_free(&idx);
}

static void test_replace_options(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_sub_index_stats st;
	struct bw_sub_opts o = qid(2, 7);
	struct bw_match m;
	bool ev;

	(void)state;
	bw_match_init(&m, 4);
	assert_int_equal(add(idx, "x/+", S(0), qos(0)), 0);
	assert_int_equal(bw_sub_index_add(idx, U("x/+"), 3, S(0), &o, &ev), 1);
	assert_false(ev);
	assert_int_equal(match(idx, "x/y", NULL, &m), 1);
	assert_int_equal(m.v[0].qos, 2);
	assert_int_equal(m.v[0].n_sub_ids, 1);
	assert_int_equal(bw_match_sub_ids(&m, &m.v[0])[0], 7);
	/* Shared: replace too, and the share group still has one member. */
	assert_int_equal(add(idx, "$share/g/x/+", S(0), qos(0)), 0);
	assert_int_equal(add(idx, "$share/g/x/+", S(0), qos(1)), 1);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.subs, 2);
	assert_int_equal(st.filters, 2);
	assert_int_equal(match(idx, "x/y", NULL, &m), 2);
	assert_int_equal(find(&m, S(0), true)->qos, 1);
	/* Invalid options are refused and change nothing. */
	o.qos = 3;
	assert_int_equal(bw_sub_index_add(idx, U("x/+"), 3, S(0), &o, NULL), -EINVAL);
	o = qos(0);
	o.retain_handling = 3;
	assert_int_equal(bw_sub_index_add(idx, U("x/+"), 3, S(0), &o, NULL), -EINVAL);
	o = qid(0, 268435456);
	assert_int_equal(bw_sub_index_add(idx, U("x/+"), 3, S(0), &o, NULL), -EINVAL);
	assert_int_equal(match(idx, "x/y", NULL, &m), 2);
	assert_int_equal(find(&m, S(0), false)->qos, 2);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_dollar_rule(void **state)
{
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_match m;

	(void)state;
	bw_match_init(&m, 16);
	assert_int_equal(add(idx, "#", S(0), qos(0)), 0);
	assert_int_equal(add(idx, "+/info", S(1), qos(0)), 0);
	assert_int_equal(add(idx, "+/#", S(2), qos(0)), 0);
	assert_int_equal(add(idx, "$share/g/#", S(3), qos(0)), 0);
	assert_int_equal(add(idx, "$SYS/#", S(4), qos(0)), 0);
	assert_int_equal(add(idx, "$SYS/+", S(5), qos(0)), 0);
	assert_int_equal(add(idx, "$SYS/info", S(6), qos(0)), 0);
	assert_int_equal(match(idx, "$SYS/info", NULL, &m), 3);
	assert_non_null(find(&m, S(4), false));
	assert_non_null(find(&m, S(5), false));
	assert_non_null(find(&m, S(6), false));
	assert_int_equal(match(idx, "$SYS", NULL, &m), 1);
	assert_non_null(find(&m, S(4), false));
	/* '$' only counts at the start of the name. */
	assert_int_equal(match(idx, "a/$SYS", NULL, &m), 3);
	assert_int_equal(match(idx, "x/info", NULL, &m), 4);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

static void test_limits(void **state)
{
	struct bw_sub_index_limits lim = { .filters_max = 2, .subs_max = 3, .levels_max = 3 };
	struct bw_sub_index *idx = bw_sub_index_new(&lim);
	struct bw_sub_index_stats st;
	struct bw_match m;

	(void)state;
	assert_int_equal(add(idx, "a/b/c/d", S(0), qos(0)), -E2BIG);
	assert_int_equal(add(idx, "a/b/c/#", S(0), qos(0)), -E2BIG);
	assert_int_equal(add(idx, "a/b/", S(0), qos(0)), 0);
	/* Levels are counted on the filter inside "$share/{group}/". */
	assert_int_equal(add(idx, "$share/g/a/b/c", S(0), qos(0)), 0);
	assert_int_equal(add(idx, "c", S(0), qos(0)), -ENOSPC);              /* filters */
	assert_int_equal(add(idx, "$share/h/c", S(0), qos(0)), -ENOSPC);     /* filters */
	assert_int_equal(add(idx, "a/b/", S(1), qos(0)), 0);                 /* not new */
	assert_int_equal(add(idx, "$share/g/a/b/c", S(1), qos(0)), -ENOSPC); /* subs */
	assert_int_equal(add(idx, "a/b/", S(1), qos(2)), 1); /* a replace still works */
	assert_int_equal(add(idx, "a/+b", S(1), qos(0)), -EINVAL);
	assert_int_equal(add(idx, "", S(1), qos(0)), -EINVAL);
	assert_int_equal(add(idx, "$share/g", S(1), qos(0)), -EINVAL);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.filters, 2);
	assert_int_equal(st.subs, 3);
	assert_int_equal(st.nodes, 5); /* root a b "" c */
	bw_sub_index_free(&idx);

	/* The match cap: extra deliveries are counted, not stored. */
	idx = bw_sub_index_new(&LIM);
	bw_match_init(&m, 2);
	for (int i = 0; i < 5; i++)
		assert_int_equal(add(idx, i % 2 ? "t" : "#", S(i), qos(0)), 0);
	assert_int_equal(add(idx, "+", S(0), qos(1)), 0);
	assert_int_equal(match(idx, "t", NULL, &m), 2);
	assert_int_equal(m.dropped, 3);
	assert_int_equal(match(idx, "u", NULL, &m), 2);
	assert_int_equal(m.dropped, 1);
	assert_int_equal(match(idx, "$u", NULL, &m), 0);
	assert_int_equal(m.dropped, 0);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

struct gone_log {
	char f[16][32];
	int n;
};

static void on_gone(void *arg, const uint8_t *filter, size_t len, uint32_t left)
{
	struct gone_log *g = arg;

	if (left > 0)
		return; /* a share group member; the group lives on */
	assert_true(g->n < 16 && len < 32);
	memcpy(g->f[g->n], filter, len);
	g->f[g->n++][len] = 0;
}

static bool gone_has(const struct gone_log *g, const char *f)
{
	for (int i = 0; i < g->n; i++) {
		if (strcmp(g->f[i], f) == 0)
			return true;
	}
	return false;
}

static void test_remove_all(void **state)
{
	static const char *const mine[] = { "a/b",
		                            "/",
		                            "a//b",
		                            "#",
		                            "$share/grp/a/b",
		                            "$share/g2/+/x/",
		                            "shared/kept",
		                            "$share/s/$share/t/u" };
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_sub_index_stats st;
	struct gone_log log = { .n = 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		assert_int_equal(add(idx, mine[i], S(0), qos(1)), 0);
	assert_int_equal(add(idx, "shared/kept", S(1), qos(1)), 0);
	assert_int_equal(add(idx, "a/b/c", S(1), qos(1)), 0);
	assert_int_equal(bw_sub_index_remove_all(idx, S(0), on_gone, &log), 8);
	assert_int_equal(log.n, 7);
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		assert_int_equal(gone_has(&log, mine[i]), strcmp(mine[i], "shared/kept") != 0);
	assert_int_equal(bw_sub_index_remove_all(idx, S(0), on_gone, &log), 0);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.filters, 2);
	assert_int_equal(st.subs, 2);
	assert_int_equal(st.subscribers, 1);
	assert_int_equal(st.nodes, 6); /* root shared kept a b c */
	assert_int_equal(bw_sub_index_remove_all(idx, S(1), NULL, NULL), 2);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.nodes, 1);
	assert_int_equal(st.filters, 0);
	bw_sub_index_free(&idx);
	bw_sub_index_free(&idx); /* NULL is fine */
}

/* The randomized cross-check: a model of the subscriptions, matched by brute force. */
#define R_SUBS    40
#define R_FILTERS 200
#define R_TOPICS  500

struct rec {
	char f[64];
	int sub;
	struct bw_sub_opts o;
	bool live;
};

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 33) % n;
}

static const char *const words[] = { "a", "b", "c", "", "$x" };

static void rand_name(char *out, size_t cap, bool filter)
{
	int levels = 1 + (int)rnd(5);
	size_t n = 0;

	out[0] = 0;
	for (int l = 0; l < levels; l++) {
		const char *w = words[rnd(5)];
		if (filter && rnd(4) == 0)
			w = "+";
		if (filter && l == levels - 1 && rnd(6) == 0)
			w = "#";
		n += (size_t)snprintf(out + n, cap - n, "%s%s", l ? "/" : "", w);
	}
}

/* The plain filter inside f ("$share/g/x" -> "x"), and whether it is shared. */
static const char *inner(const char *f, bool *shared)
{
	struct bw_topic_share sh;

	*shared = bw_topic_share_split(U(f), strlen(f), &sh);
	return *shared ? (const char *)sh.filter : f;
}

static bool rmatch(const struct rec *r, const char *t)
{
	bool shared;
	const char *f = inner(r->f, &shared);
	return bw_topic_match(U(f), strlen(f), U(t), strlen(t));
}

/* True when some live record other than skip has filter f. */
static bool filter_used(const struct rec *rs, int n, const char *f, int skip)
{
	for (int i = 0; i < n; i++) {
		if (i != skip && rs[i].live && strcmp(rs[i].f, f) == 0)
			return true;
	}
	return false;
}

/* Deliveries checked, so a vacuous cross-check fails. */
static uint32_t checked_plain, checked_shared;

static void check_topic(struct bw_sub_index *idx, const struct rec *rs, int n, const char *t,
                        const void *pub, struct bw_match *m)
{
	int exp_plain = 0, exp_shared = 0, got_shared = 0;
	int rc = match(idx, t, pub, m);

	assert_int_equal(rc, (int)m->n);
	assert_int_equal(m->dropped, 0);
	for (int s = 0; s < R_SUBS; s++) {
		bool any = false, rap = false, shared;
		uint8_t q = 0;
		uint32_t ids[8];
		int nids = 0;
		for (int i = 0; i < n; i++) {
			const struct rec *r = &rs[i];
			inner(r->f, &shared);
			if (!r->live || r->sub != s || shared || !rmatch(r, t) ||
			    (r->o.no_local && S(s) == pub))
				continue;
			any = true;
			q = r->o.qos > q ? r->o.qos : q;
			rap |= r->o.retain_as_published;
			bool dup = r->o.sub_id == 0;
			for (int k = 0; k < nids; k++)
				dup |= ids[k] == r->o.sub_id;
			if (!dup)
				ids[nids++] = r->o.sub_id;
		}
		const struct bw_match_delivery *d = find(m, S(s), false);
		if (!any) {
			if (d)
				fail_msg("topic \"%s\": subscriber %d delivered, no match", t, s);
			continue;
		}
		if (!d)
			fail_msg("topic \"%s\": subscriber %d not delivered", t, s);
		exp_plain++;
		assert_int_equal(d->qos, q);
		assert_int_equal(d->retain_as_published, rap);
		assert_int_equal(d->n_sub_ids, nids);
		for (int k = 0; k < nids; k++)
			assert_true(has_id(m, d, ids[k]));
	}
	for (int i = 0; i < n; i++) {
		bool shared, first = true;
		inner(rs[i].f, &shared);
		if (!rs[i].live || !shared || !rmatch(&rs[i], t))
			continue;
		for (int j = 0; j < i; j++)
			first &= !(rs[j].live && strcmp(rs[j].f, rs[i].f) == 0);
		exp_shared += first;
	}
	for (uint32_t k = 0; k < m->n; k++) {
		bool member = false, shared;
		if (!m->v[k].shared)
			continue;
		got_shared++;
		for (int i = 0; i < n; i++) {
			inner(rs[i].f, &shared);
			member |= rs[i].live && shared && S(rs[i].sub) == m->v[k].subscriber &&
			          rmatch(&rs[i], t);
		}
		assert_true(member);
	}
	checked_plain += (uint32_t)exp_plain;
	checked_shared += (uint32_t)exp_shared;
	if (got_shared != exp_shared || m->n != (uint32_t)(exp_plain + exp_shared))
		fail_msg("topic \"%s\": %u deliveries, %d shared; expected %d + %d", t, m->n,
		         got_shared, exp_plain, exp_shared);
}

static void check_topics(struct bw_sub_index *idx, const struct rec *rs, int n, struct bw_match *m)
{
	char t[48];

	for (int i = 0; i < R_TOPICS; i++) {
		do
			rand_name(t, sizeof(t), false);
		while (t[0] == 0);
		check_topic(idx, rs, n, t, rnd(3) == 0 ? S(rnd(R_SUBS)) : NULL, m);
	}
}

static void test_random_cross_check(void **state)
{
	static struct rec rs[R_FILTERS];
	struct bw_sub_index *idx = bw_sub_index_new(&LIM);
	struct bw_sub_index_stats st;
	struct bw_match m;
	int n = 0, distinct = 0;
	uint32_t live_of[R_SUBS] = { 0 };

	(void)state;
	bw_match_init(&m, 1000);
	for (int i = 0; i < R_FILTERS; i++) {
		struct rec *r = &rs[n];
		char f[48];
		bool shared = rnd(5) == 0, ev;
		int ex = -1, rc;

		do
			rand_name(f, sizeof(f), true);
		while (f[0] == 0);
		if (shared)
			snprintf(r->f, sizeof(r->f), "$share/g%u/%s", rnd(2), f);
		else
			snprintf(r->f, sizeof(r->f), "%s", f);
		assert_int_equal(bw_topic_filter_check(U(r->f), strlen(r->f)), 0);
		r->sub = (int)rnd(R_SUBS);
		r->o = qid((uint8_t)rnd(3), rnd(6));
		r->o.retain_as_published = rnd(2);
		r->o.no_local = !shared && rnd(4) == 0;
		for (int j = 0; j < n; j++) {
			if (rs[j].live && rs[j].sub == r->sub && strcmp(rs[j].f, r->f) == 0)
				ex = j;
		}
		rc = bw_sub_index_add(idx, U(r->f), strlen(r->f), S(r->sub), &r->o, &ev);
		if (ex >= 0) {
			assert_int_equal(rc, 1);
			assert_false(ev);
			rs[ex].o = r->o;
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(ev, !filter_used(rs, n, r->f, -1));
		distinct += ev;
		r->live = true;
		live_of[r->sub]++;
		n++;
	}
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.subs, n);
	assert_int_equal(st.filters, distinct);
	check_topics(idx, rs, n, &m);
	/* About 12 plain and 2 shared deliveries a topic with this seed. */
	assert_true(checked_plain > 2000 && checked_shared > 300);

	for (int i = 0; i < n; i++) {
		bool ev;
		if (rnd(2))
			continue;
		assert_int_equal(
		        bw_sub_index_remove(idx, U(rs[i].f), strlen(rs[i].f), S(rs[i].sub), &ev),
		        0);
		rs[i].live = false;
		live_of[rs[i].sub]--;
		assert_int_equal(ev, !filter_used(rs, n, rs[i].f, -1));
	}
	check_topics(idx, rs, n, &m);

	for (int s = 0; s < R_SUBS; s++)
		assert_int_equal(bw_sub_index_remove_all(idx, S(s), NULL, NULL), live_of[s]);
	bw_sub_index_stats(idx, &st);
	assert_int_equal(st.subs, 0);
	assert_int_equal(st.filters, 0);
	assert_int_equal(st.subscribers, 0);
	assert_int_equal(st.groups, 0);
	assert_int_equal(st.nodes, 1);
	bw_match_fini(&m);
	bw_sub_index_free(&idx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_examples),
		cmocka_unit_test(test_overlap_once),
		cmocka_unit_test(test_sub_ids_overflow),
		cmocka_unit_test(test_no_local),
		cmocka_unit_test(test_shared_round_robin),
		cmocka_unit_test(test_filter_events),
		cmocka_unit_test(test_replace_options),
		cmocka_unit_test(test_dollar_rule),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_remove_all),
		cmocka_unit_test(test_random_cross_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
