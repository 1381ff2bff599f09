/*
 * Unit tests for bulwark-bench's per-subscriber sequence accounting
 * (bench/seq.h): in-order delivery from several publishers, gaps that stay
 * lost, duplicates with and without the DUP flag, early arrivals that fill
 * in later (as in a shared group's interleaving), publishers outside the
 * tracker's range, a window that grows, and one that slides past a gap
 * that never fills, giving it up as lost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "bench/seq.h"

static void test_in_order(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 3), 0);
	for (uint32_t s = 0; s < 100000; s++)
		for (uint32_t p = 0; p < 3; p++)
			assert_int_equal(bw_bench_seq_add(&t, p, s, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.received, 300000);
	assert_int_equal(t.unique, 300000);
	assert_int_equal(t.dups, 0);
	for (uint32_t p = 0; p < 3; p++) {
		assert_int_equal(bw_bench_seq_unique(&t, p), 100000);
		assert_int_equal(t.pubs[p].floor, 100000);
		assert_null(t.pubs[p].win); /* in order: no bitmap at all */
		assert_int_equal(t.pubs[p].reordered, 0);
	}
	bw_bench_seq_free(&t);
	bw_bench_seq_free(&t); /* twice is harmless */
}

/* QoS 0 loss: every other message of a run is missing and stays missing. */
static void test_gaps(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 1), 0);
	for (uint32_t s = 0; s < 10000; s += 2)
		assert_int_equal(bw_bench_seq_add(&t, 0, s, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 5000);
	assert_int_equal(t.pubs[0].floor, 1); /* 1 never came */
	assert_int_equal(t.pubs[0].given_up, 0);
	/* A late arrival fills its gap and is not a duplicate. */
	assert_int_equal(bw_bench_seq_add(&t, 0, 1, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].floor, 3);
	assert_int_equal(t.pubs[0].reordered, 1);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 5001);
	bw_bench_seq_free(&t);
}

static void test_duplicates(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 1), 0);
	assert_int_equal(bw_bench_seq_add(&t, 0, 0, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(bw_bench_seq_add(&t, 0, 1, false), BW_BENCH_SEQ_NEW);
	/* Below the floor. */
	assert_int_equal(bw_bench_seq_add(&t, 0, 0, true), BW_BENCH_SEQ_DUP);
	/* Above the floor, in the bitmap. */
	assert_int_equal(bw_bench_seq_add(&t, 0, 5, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(bw_bench_seq_add(&t, 0, 5, false), BW_BENCH_SEQ_DUP);
	assert_int_equal(bw_bench_seq_add(&t, 0, 1, false), BW_BENCH_SEQ_DUP);
	assert_int_equal(t.dups, 3);
	assert_int_equal(t.dups_flag, 1);
	assert_int_equal(t.received, 6);
	assert_int_equal(t.unique, 3);
	bw_bench_seq_free(&t);
}

/* A shared group: two members' streams interleaved in blocks; nothing lost. */
static void test_interleaved(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 2), 0);
	for (uint32_t base = 0; base < 100000; base += 200) {
		for (uint32_t s = base + 1; s < base + 200; s += 2) /* member B, odd */
			assert_int_equal(bw_bench_seq_add(&t, 1, s, false), BW_BENCH_SEQ_NEW);
		for (uint32_t s = base; s < base + 200; s += 2) /* member A, even */
			assert_int_equal(bw_bench_seq_add(&t, 1, s, false), BW_BENCH_SEQ_NEW);
	}
	assert_int_equal(bw_bench_seq_unique(&t, 1), 100000);
	assert_int_equal(t.pubs[1].floor, 100000);
	assert_int_equal(t.pubs[1].pending, 0);
	assert_int_equal(t.dups, 0);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 0);
	bw_bench_seq_free(&t);
}

static void test_unexpected(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 5, 1), 0); /* pairs: publisher 5 only */
	assert_int_equal(bw_bench_seq_add(&t, 5, 0, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(bw_bench_seq_add(&t, 4, 0, false), BW_BENCH_SEQ_UNEXPECTED);
	assert_int_equal(bw_bench_seq_add(&t, 6, 0, false), BW_BENCH_SEQ_UNEXPECTED);
	assert_int_equal(bw_bench_seq_add(&t, UINT32_MAX, 0, false), BW_BENCH_SEQ_UNEXPECTED);
	assert_int_equal(t.unexpected, 3);
	assert_int_equal(t.received, 1);
	assert_int_equal(bw_bench_seq_unique(&t, 4), 0);
	bw_bench_seq_free(&t);
	/* No publishers at all. */
	assert_int_equal(bw_bench_seq_init(&t, 0, 0), 0);
	assert_int_equal(bw_bench_seq_add(&t, 0, 0, false), BW_BENCH_SEQ_UNEXPECTED);
	bw_bench_seq_free(&t);
}

/* An early arrival far ahead grows the window and keeps what it held. */
static void test_window_grows(void **state)
{
	struct bw_bench_seq t;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 1), 0);
	assert_int_equal(bw_bench_seq_add(&t, 0, 3, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].win_bits, BW_BENCH_SEQ_WINDOW_MIN);
	assert_int_equal(bw_bench_seq_add(&t, 0, 100000, false), BW_BENCH_SEQ_NEW);
	assert_true(t.pubs[0].win_bits >= 100001);
	assert_int_equal(bw_bench_seq_add(&t, 0, 3, false), BW_BENCH_SEQ_DUP);
	assert_int_equal(bw_bench_seq_add(&t, 0, 100000, false), BW_BENCH_SEQ_DUP);
	for (uint32_t s = 0; s < 100000; s++)
		if (s != 3)
			assert_int_equal(bw_bench_seq_add(&t, 0, s, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].floor, 100001);
	assert_int_equal(t.pubs[0].pending, 0);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 100001);
	assert_int_equal(t.pubs[0].given_up, 0);
	bw_bench_seq_free(&t);
}

/* A gap older than the largest window is given up; counts stay right. */
static void test_window_slides(void **state)
{
	struct bw_bench_seq t;
	const uint32_t max = BW_BENCH_SEQ_WINDOW_MAX;

	(void)state;
	assert_int_equal(bw_bench_seq_init(&t, 0, 1), 0);
	/* 0 and 1 never arrive; everything from 2 to 2 max does. */
	for (uint32_t s = 2; s < 2 * max; s++)
		assert_int_equal(bw_bench_seq_add(&t, 0, s, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].win_bits, max);
	assert_int_equal(t.pubs[0].given_up, 2);
	assert_int_equal(t.pubs[0].floor, 2 * max);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 2 * max - 2);
	/* Too late to tell: counted as a duplicate (documented). */
	assert_int_equal(bw_bench_seq_add(&t, 0, 1, false), BW_BENCH_SEQ_DUP);
	/*
	 * A jump far beyond the window gives up what falls out of it: 2 max ..
	 * 4 max; the window's max numbers below 5 max may still arrive.
	 */
	assert_int_equal(bw_bench_seq_add(&t, 0, 5 * max, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].given_up, 2 + 2 * max + 1);
	assert_int_equal(t.pubs[0].floor, 4 * max + 1);
	assert_int_equal(bw_bench_seq_add(&t, 0, 4 * max + 1, false), BW_BENCH_SEQ_NEW);
	assert_int_equal(t.pubs[0].floor, 4 * max + 2);
	assert_int_equal(t.pubs[0].pending, 1);
	assert_int_equal(bw_bench_seq_unique(&t, 0), 2 * max);
	bw_bench_seq_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),      cmocka_unit_test(test_gaps),
		cmocka_unit_test(test_duplicates),    cmocka_unit_test(test_interleaved),
		cmocka_unit_test(test_unexpected),    cmocka_unit_test(test_window_grows),
		cmocka_unit_test(test_window_slides),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
