/*
 * The log-linear histogram (see hist.h). Bucket index of v >= SUB: with m
 * the position of v's highest set bit, the group is m - SUB_BITS + 1 and
 * the sub-bucket is the SUB_BITS bits below the highest one; so the index
 * is continuous with the exact range below SUB (v = SUB lands on index SUB).
 */
#include "bench/hist.h"

#include <math.h>
#include <string.h>

void bw_bench_hist_init(struct bw_bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned bw_bench_hist_index(uint64_t v)
{
	if (v < BW_BENCH_HIST_SUB)
		return (unsigned)v;
	unsigned m = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = m - BW_BENCH_HIST_SUB_BITS;
	unsigned sub = (unsigned)(v >> shift) & (BW_BENCH_HIST_SUB - 1);

	return (shift + 1) * BW_BENCH_HIST_SUB + sub;
}

uint64_t bw_bench_hist_lowest(unsigned index)
{
	unsigned group = index / BW_BENCH_HIST_SUB;
	uint64_t sub = index % BW_BENCH_HIST_SUB;

	if (group == 0)
		return sub;
	return (BW_BENCH_HIST_SUB + sub) << (group - 1);
}

uint64_t bw_bench_hist_highest(unsigned index)
{
	unsigned group = index / BW_BENCH_HIST_SUB;

	if (group == 0)
		return index;
	return bw_bench_hist_lowest(index) + ((UINT64_C(1) << (group - 1)) - 1);
}

void bw_bench_hist_merge(struct bw_bench_hist *dst, const struct bw_bench_hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < BW_BENCH_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t bw_bench_hist_percentile(const struct bw_bench_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* Multiplied first, so that whole ranks (p 90 of 100 values) come out whole. */
	uint64_t rank = (uint64_t)ceil(p * (double)h->count / 100.0 - 1e-9);
	uint64_t seen = 0;

	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < BW_BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = bw_bench_hist_highest(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double bw_bench_hist_mean(const struct bw_bench_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
