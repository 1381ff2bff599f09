/*
 * Unit tests for bulwark-bench's log-linear histogram (bench/hist.h): the
 * bucket index is continuous and monotonic and each bucket's bounds hold
 * its values; small values are exact, large ones within 2^-SUB_BITS;
 * percentiles follow the ranks of known distributions, p0 and p100 are the
 * exact minimum and maximum; merging equals recording everything in one;
 * an empty histogram answers 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "bench/hist.h"

static struct bw_bench_hist *new_hist(void)
{
	struct bw_bench_hist *h = malloc(sizeof(*h));

	assert_non_null(h);
	bw_bench_hist_init(h);
	return h;
}

static void test_index_bounds(void **state)
{
	(void)state;
	unsigned prev = 0;
	/* Every value below 2^20, then powers of two and their neighbours up to 2^64-1. */
	for (uint64_t v = 0; v < (1u << 20); v++) {
		unsigned i = bw_bench_hist_index(v);
		assert_true(i >= prev && i <= prev + 1);
		assert_true(bw_bench_hist_lowest(i) <= v && v <= bw_bench_hist_highest(i));
		prev = i;
	}
	for (unsigned b = 20; b < 64; b++) {
		uint64_t p = UINT64_C(1) << b;
		uint64_t vs[] = { p - 1, p, p + 1, p + p / 3 };
		for (unsigned k = 0; k < 4; k++) {
			unsigned i = bw_bench_hist_index(vs[k]);
			assert_true(i < BW_BENCH_HIST_BUCKETS);
			assert_true(bw_bench_hist_lowest(i) <= vs[k]);
			assert_true(vs[k] <= bw_bench_hist_highest(i));
		}
	}
	assert_int_equal(bw_bench_hist_index(UINT64_MAX), BW_BENCH_HIST_BUCKETS - 1);
	assert_true(bw_bench_hist_highest(BW_BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
	/* Consecutive buckets tile the range with no gap. */
	for (unsigned i = 0; i + 1 < BW_BENCH_HIST_BUCKETS; i++)
		assert_true(bw_bench_hist_highest(i) + 1 == bw_bench_hist_lowest(i + 1));
}

static void test_exact_small(void **state)
{
	struct bw_bench_hist *h = new_hist();

	(void)state;
	for (uint64_t v = 1; v <= 100; v++)
		bw_bench_hist_record(h, v);
	assert_int_equal(h->count, 100);
	assert_int_equal(bw_bench_hist_percentile(h, 50), 50);
	assert_int_equal(bw_bench_hist_percentile(h, 90), 90);
	assert_int_equal(bw_bench_hist_percentile(h, 99), 99);
	assert_int_equal(bw_bench_hist_percentile(h, 99.9), 100);
	assert_int_equal(bw_bench_hist_percentile(h, 0), 1);
	assert_int_equal(bw_bench_hist_percentile(h, 100), 100);
	assert_true(bw_bench_hist_mean(h) == 50.5);
	free(h);
}

/* Uniform 1..1e6 (a microsecond each, in ns): each percentile within 1 %. */
static void test_uniform_large(void **state)
{
	struct bw_bench_hist *h = new_hist();
	const double ps[] = { 1, 10, 50, 90, 99, 99.9, 99.99 };

	(void)state;
	for (uint64_t v = 1; v <= 1000000; v++)
		bw_bench_hist_record(h, v * 1000);
	for (unsigned i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		double want = ps[i] / 100 * 1e6 * 1000;
		double got = (double)bw_bench_hist_percentile(h, ps[i]);
		assert_true(got >= want * 0.999);
		assert_true(got <= want * (1 + 1.0 / BW_BENCH_HIST_SUB) + 1000);
	}
	assert_int_equal(bw_bench_hist_percentile(h, 100), 1000000000);
	assert_int_equal(h->min, 1000);
	free(h);
}

/* A few huge outliers among many small values: the tail shows them exactly. */
static void test_outliers(void **state)
{
	struct bw_bench_hist *h = new_hist();

	(void)state;
	for (int i = 0; i < 9990; i++)
		bw_bench_hist_record(h, 40000); /* 40 us */
	for (int i = 0; i < 10; i++)
		bw_bench_hist_record(h, 2000000000); /* 2 s */
	uint64_t p99 = bw_bench_hist_percentile(h, 99);
	assert_true(p99 >= 40000 && p99 <= 40000 + 40000 / BW_BENCH_HIST_SUB);
	assert_true(bw_bench_hist_percentile(h, 99.9) == p99);
	uint64_t p9995 = bw_bench_hist_percentile(h, 99.95);
	assert_true(p9995 <= 2000000000 && p9995 >= 2000000000 - 2000000000 / BW_BENCH_HIST_SUB);
	assert_int_equal(bw_bench_hist_percentile(h, 100), 2000000000);
	free(h);
}

static void test_merge(void **state)
{
	struct bw_bench_hist *a = new_hist(), *b = new_hist(), *all = new_hist();

	(void)state;
	for (uint64_t v = 0; v < 50000; v++) {
		uint64_t x = (v * 2654435761u) % 10000000;
		bw_bench_hist_record(v % 3 ? a : b, x);
		bw_bench_hist_record(all, x);
	}
	bw_bench_hist_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	for (double p = 0; p <= 100; p += 0.5)
		assert_int_equal(bw_bench_hist_percentile(a, p), bw_bench_hist_percentile(all, p));
	/* Merging an empty one changes nothing. */
	bw_bench_hist_init(b);
	bw_bench_hist_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->min, all->min);
	free(a);
	free(b);
	free(all);
}

static void test_empty(void **state)
{
	struct bw_bench_hist *h = new_hist();

	(void)state;
	assert_int_equal(bw_bench_hist_percentile(h, 50), 0);
	assert_int_equal(bw_bench_hist_percentile(h, 100), 0);
	assert_true(bw_bench_hist_mean(h) == 0);
	bw_bench_hist_record(h, 0);
	assert_int_equal(bw_bench_hist_percentile(h, 50), 0);
	assert_int_equal(h->count, 1);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_bounds),  cmocka_unit_test(test_exact_small),
		cmocka_unit_test(test_uniform_large), cmocka_unit_test(test_outliers),
		cmocka_unit_test(test_merge),         cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
