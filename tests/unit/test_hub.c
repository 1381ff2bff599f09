/*
 * The hub: mail rings keep order a pair and never lose a letter (a full
 * ring spills into the sender's overflow, flushed later), including with a
 * producer and a consumer on two threads; flushes wake each receiver once;
 * interest inboxes deliver in order to every worker but the sender; homes
 * spread client ids over workers and are stable; quiesce waits for every
 * attached worker; retained messages are shared.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/hub.h"
#include "node/core/msg.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const tenants[] = { "default", "acme" };

static int wakes[4][4];

static void count_wake(void *from, void *to)
{
	wakes[(uintptr_t)from - 1][(uintptr_t)to - 1]++;
}

static struct bw_hub *hub_of(uint32_t workers, uint32_t slots)
{
	struct bw_hub_config c = { .n_workers = workers,
		                   .tenant = tenants,
		                   .n_tenants = 2,
		                   .retained = { 100, 1 << 20, 16 },
		                   .mail_slots = slots,
		                   .wake = count_wake };
	struct bw_hub *h = bw_hub_new(&c);
	assert_non_null(h);
	memset(wakes, 0, sizeof(wakes));
	return h;
}

/* Letters in tests are numbers shifted past the tag bits, tagged CONN (never routed). */
#define L(n) (((uintptr_t)(n) << 3) | BW_LETTER_CONN)

static void drop_none(void *arg, uintptr_t l)
{
	(*(int *)arg)++;
	(void)l;
}

static void test_config_is_checked(void **state)
{
	struct bw_hub_config c = { .n_workers = 0, .tenant = tenants, .n_tenants = 1 };
	(void)state;
	assert_null(bw_hub_new(&c));
	c.n_workers = 2;
	c.mail_slots = 100; /* not a power of two */
	assert_null(bw_hub_new(&c));
	c.mail_slots = 0;
	c.tenants_max = BW_HUB_TENANTS_MAX + 1;
	assert_null(bw_hub_new(&c));
	c.tenants_max = 1;
	c.n_tenants = 2; /* more than it may hold */
	assert_null(bw_hub_new(&c));
}

/* Tenants come as the node meets them, keep their ids, and stop at tenants_max. */
static void test_tenants_are_added_once_up_to_the_limit(void **state)
{
	struct bw_hub_config c = {
		.n_workers = 2, .tenant = tenants, .n_tenants = 1, .tenants_max = 3
	};
	(void)state;
	struct bw_hub *h = bw_hub_new(&c);
	assert_non_null(h);
	assert_int_equal(bw_hub_tenants(h), 1);
	assert_int_equal(bw_hub_tenants_max(h), 3);
	assert_int_equal(bw_hub_tenant_find(h, "acme"), -1);
	assert_int_equal(bw_hub_tenant_add(h, "acme"), 1);
	assert_int_equal(bw_hub_tenant_add(h, "acme"), 1);
	assert_int_equal(bw_hub_tenant_find(h, "acme"), 1);
	assert_string_equal(bw_hub_tenant_name(h, 1), "acme");
	assert_int_equal(bw_hub_tenant_add(h, "globex"), 2);
	assert_int_equal(bw_hub_tenant_add(h, "initech"), -ENOSPC);
	assert_int_equal(bw_hub_tenant_find(h, tenants[0]), 0);
	assert_int_equal(bw_hub_tenants(h), 3);
	assert_null(bw_hub_tenant_name(h, 3));
	/* Each has its own counters and retained limits. */
	struct bw_retained_limits one = { .count_max = 1, .bytes_max = 1000, .levels_max = 8 };
	bw_hub_tenant_limits(h, 2, &one);
	bw_stat_add(&bw_hub_stats(h, 1, 0)->quota_hits, 3);
	struct bw_tenant_totals tt;
	bw_hub_totals(h, 1, &tt);
	assert_int_equal(tt.quota_hits, 3);
	bw_hub_totals(h, 2, &tt);
	assert_int_equal(tt.quota_hits, 0);
	bw_hub_free(&h, NULL, NULL);
}

static void test_mail_keeps_order_through_overflow(void **state)
{
	struct bw_hub *h = hub_of(3, 4);
	uintptr_t got[64];
	(void)state;
	bw_hub_attach(h, 0, (void *)1);
	bw_hub_attach(h, 1, (void *)2);
	bw_hub_attach(h, 2, (void *)3);
	for (int i = 0; i < 10; i++)
		assert_int_equal(bw_hub_post(h, 0, 1, L(i)), 0);
	assert_int_equal(bw_hub_backlog(h, 0), 6); /* 4 slots, 6 waiting */
	assert_int_equal(bw_hub_flush(h, 0), 6);
	assert_int_equal(wakes[0][1], 1);
	assert_int_equal(wakes[0][2], 0);
	assert_int_equal(bw_hub_take(h, 1, got, 64), 4);
	assert_int_equal(bw_hub_take(h, 2, got, 64), 0);
	assert_int_equal(bw_hub_flush(h, 0), 2); /* 4 more moved in */
	assert_int_equal(wakes[0][1], 2);
	assert_int_equal(bw_hub_take(h, 1, got + 4, 3), 3); /* max is honoured */
	assert_int_equal(bw_hub_take(h, 1, got + 7, 64), 1);
	assert_int_equal(bw_hub_flush(h, 0), 0);
	assert_int_equal(bw_hub_take(h, 1, got + 8, 64), 2);
	for (int i = 0; i < 10; i++)
		assert_int_equal(got[i], L(i));
	assert_int_equal(bw_hub_flush(h, 0), 0);
	assert_int_equal(wakes[0][1], 3); /* nothing new: no wake */
	/* Left-over letters are handed to drop() when the hub goes. */
	bw_hub_post(h, 2, 0, L(1));
	for (int i = 0; i < 6; i++)
		bw_hub_post(h, 1, 2, L(i));
	int dropped = 0;
	bw_hub_free(&h, drop_none, &dropped);
	assert_int_equal(dropped, 7);
	assert_null(h);
}

struct stress {
	struct bw_hub *h;
	uint32_t n;
};

static void *producer(void *arg)
{
	struct stress *s = arg;
	for (uint32_t i = 0; i < s->n; i++) {
		assert_int_equal(bw_hub_post(s->h, 0, 1, L(i)), 0);
		if ((i & 63) == 0)
			bw_hub_flush(s->h, 0);
	}
	while (bw_hub_flush(s->h, 0) > 0)
		;
	return NULL;
}

static void test_mail_between_threads(void **state)
{
	struct stress s = { hub_of(2, 64), 200000 };
	pthread_t t;
	uintptr_t got[128];
	uint32_t next = 0;
	(void)state;
	assert_int_equal(pthread_create(&t, NULL, producer, &s), 0);
	while (next < s.n) {
		uint32_t n = bw_hub_take(s.h, 1, got, 128);
		for (uint32_t i = 0; i < n; i++, next++) {
			if (got[i] != L(next))
				fail_msg("letter %u: got %lu", next, (unsigned long)(got[i] >> 3));
		}
	}
	pthread_join(t, NULL);
	assert_int_equal(bw_hub_take(s.h, 1, got, 128), 0);
	bw_hub_free(&s.h, NULL, NULL);
}

struct seen {
	int n;
	char log[16][40];
};

static void on_interest(void *arg, uint32_t from, uint32_t tenant, bool add, uint32_t member,
                        const uint8_t *filter, size_t len)
{
	struct seen *s = arg;
	snprintf(s->log[s->n++], 40, "%u %u %c%u %.*s", from, tenant, add ? '+' : '-', member,
	         (int)len, (const char *)filter);
}

static void test_interest_reaches_every_other_worker_in_order(void **state)
{
	struct bw_hub *h = hub_of(3, 0);
	struct seen s0 = { 0 }, s1 = { 0 }, s2 = { 0 };
	(void)state;
	assert_int_equal(bw_hub_interest_post(h, 1, 0, true, 0, (const uint8_t *)"a/#", 3), 0);
	assert_int_equal(bw_hub_interest_post(h, 1, 1, true, 2, (const uint8_t *)"$share/g/b", 10),
	                 0);
	assert_int_equal(bw_hub_interest_post(h, 2, 0, false, 0, (const uint8_t *)"c", 1), 0);
	bw_hub_interest_take(h, 0, on_interest, &s0);
	bw_hub_interest_take(h, 1, on_interest, &s1);
	bw_hub_interest_take(h, 2, on_interest, &s2);
	assert_int_equal(s0.n, 3);
	assert_string_equal(s0.log[0], "1 0 +0 a/#");
	assert_string_equal(s0.log[1], "1 1 +2 $share/g/b");
	assert_string_equal(s0.log[2], "2 0 -0 c");
	assert_int_equal(s1.n, 1); /* not its own */
	assert_string_equal(s1.log[0], "2 0 -0 c");
	assert_int_equal(s2.n, 2);
	bw_hub_interest_take(h, 0, on_interest, &s0); /* taken once */
	assert_int_equal(s0.n, 3);
	bw_hub_free(&h, NULL, NULL);
}

static void test_homes_spread_and_stay(void **state)
{
	struct bw_hub *h = hub_of(4, 0);
	int per[4] = { 0 };
	char id[32];
	(void)state;
	for (int i = 0; i < 4000; i++) {
		snprintf(id, sizeof(id), "sensor-%d", i);
		uint32_t w = bw_hub_home(h, 0, id, strlen(id));
		assert_true(w < 4);
		assert_int_equal(bw_hub_home(h, 0, id, strlen(id)), w);
		per[w]++;
	}
	for (int w = 0; w < 4; w++)
		assert_in_range(per[w], 800, 1200);
	assert_int_equal(bw_hub_tenant_find(h, "acme"), 1);
	assert_int_equal(bw_hub_tenant_find(h, "nobody"), -1);
	assert_string_equal(bw_hub_tenant_name(h, 0), "default");
	bw_hub_free(&h, NULL, NULL);
}

struct quiet {
	struct bw_hub *h;
	uint32_t i;
	_Atomic int *done;
};

static void *quiesce(void *arg)
{
	struct quiet *q = arg;
	bw_hub_quiesce(q->h, q->i);
	atomic_fetch_add(q->done, 1);
	return NULL;
}

static void test_quiesce_waits_for_every_attached_worker(void **state)
{
	struct bw_hub *h = hub_of(3, 0);
	_Atomic int done = 0;
	pthread_t t[2];
	struct quiet q[2] = { { h, 0, &done }, { h, 1, &done } };
	(void)state;
	for (uint32_t i = 0; i < 3; i++)
		bw_hub_attach(h, i, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, quiesce, &q[i]);
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	assert_int_equal(atomic_load(&done), 0); /* worker 2 has not come */
	bw_hub_quiesce(h, 2);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&done), 2);
	/* After it nobody is woken. */
	bw_hub_post(h, 0, 1, L(1));
	bw_hub_flush(h, 0);
	assert_int_equal(wakes[0][1], 0);
	bw_hub_free(&h, drop_none, &done);
}

static void test_retained_is_shared_and_counted(void **state)
{
	struct bw_hub *h = hub_of(2, 0);
	struct bw_msg **v = NULL;
	size_t n = 0, cap = 0;
	struct bw_tenant_totals tt;
	(void)state;
	struct bw_msg *m = bw_msg_new("r/1", 3, NULL, "x", 1, 1, true, 0);
	assert_int_equal(bw_hub_retained_put(h, 1, (const uint8_t *)"r/1", 3, m), 0);
	assert_int_equal(bw_msg_refs(m), 2);
	assert_int_equal(bw_hub_retained_get(h, 0, (const uint8_t *)"#", 1, &v, &n, &cap), 0);
	assert_int_equal(bw_hub_retained_get(h, 1, (const uint8_t *)"r/+", 3, &v, &n, &cap), 1);
	assert_ptr_equal(v[0], m);
	bw_msg_unref(&v[0]);
	bw_stat_add(&bw_hub_stats(h, 1, 0)->msgs_in, 5);
	bw_stat_add(&bw_hub_stats(h, 1, 1)->msgs_in, 2);
	bw_hub_totals(h, 1, &tt);
	assert_int_equal(tt.msgs_in, 7);
	assert_int_equal(tt.retained, 1);
	assert_int_equal(bw_hub_retained_put(h, 1, (const uint8_t *)"r/1", 3, NULL), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
	free(v);
	bw_hub_free(&h, NULL, NULL);
}

/* A compare-and-set applies only over what the caller saw. */
static void test_retained_cas(void **state)
{
	struct bw_hub *h = hub_of(1, 0);
	const uint8_t *t = (const uint8_t *)"c/1";
	struct bw_msg **v = NULL;
	size_t n = 0, cap = 0;
	(void)state;
	struct bw_msg *a = bw_msg_new("c/1", 3, NULL, "a", 1, 0, true, 0);
	struct bw_msg *b = bw_msg_new("c/1", 3, NULL, "b", 1, 0, true, 0);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, a, b), 1); /* none there, not a */
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, NULL, a), 0);
	assert_int_equal(bw_msg_refs(a), 2);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, NULL, b), 1); /* a is there */
	assert_int_equal(bw_msg_refs(b), 1);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, a, b), 0);
	assert_int_equal(bw_msg_refs(a), 1);
	assert_int_equal(bw_hub_retained_get(h, 0, t, 3, &v, &n, &cap), 1);
	assert_ptr_equal(v[0], b);
	bw_msg_unref(&v[0]);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, a, NULL), 1);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, b, NULL), 0); /* cleared */
	assert_int_equal(bw_msg_refs(b), 1);
	assert_int_equal(bw_hub_retained_cas(h, 0, t, 3, NULL, NULL), 0);
	bw_msg_unref(&a);
	bw_msg_unref(&b);
	free(v);
	bw_hub_free(&h, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_is_checked),
		cmocka_unit_test(test_tenants_are_added_once_up_to_the_limit),
		cmocka_unit_test(test_mail_keeps_order_through_overflow),
		cmocka_unit_test(test_mail_between_threads),
		cmocka_unit_test(test_interest_reaches_every_other_worker_in_order),
		cmocka_unit_test(test_homes_spread_and_stay),
		cmocka_unit_test(test_quiesce_waits_for_every_attached_worker),
		cmocka_unit_test(test_retained_is_shared_and_counted),
		cmocka_unit_test(test_retained_cas),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
