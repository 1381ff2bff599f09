/*
 * A log-linear latency histogram in the manner of HdrHistogram, written for
 * bulwark-bench: values (nanoseconds, or any uint64_t) below 2^SUB_BITS are
 * counted exactly; above, each power of two is split into 2^SUB_BITS equal
 * buckets, so a value is known to within 2^-SUB_BITS (0.8 %) of itself. The
 * whole uint64_t range fits in a fixed array: recording never allocates and
 * never fails, and two histograms merge by adding their buckets, which is
 * how per-thread histograms become one.
 */
#ifndef BW_BENCH_HIST_H
#define BW_BENCH_HIST_H

#include <stdbool.h>
#include <stdint.h>

#define BW_BENCH_HIST_SUB_BITS 7
#define BW_BENCH_HIST_SUB      (1u << BW_BENCH_HIST_SUB_BITS)
/* Group 0 holds 0..SUB-1 exactly; groups 1..64-SUB_BITS hold the rest. */
#define BW_BENCH_HIST_BUCKETS ((64 - BW_BENCH_HIST_SUB_BITS + 1) * BW_BENCH_HIST_SUB)

struct bw_bench_hist {
	uint64_t count;
	uint64_t min; /* exact; UINT64_MAX when empty */
	uint64_t max; /* exact; 0 when empty */
	double sum;   /* for the mean */
	uint64_t buckets[BW_BENCH_HIST_BUCKETS];
};

/* Empties *h. */
void bw_bench_hist_init(struct bw_bench_hist *h);

/* The bucket that counts v, and the lowest and highest values it stands for. */
unsigned bw_bench_hist_index(uint64_t v);
uint64_t bw_bench_hist_lowest(unsigned index);
uint64_t bw_bench_hist_highest(unsigned index);

static inline void bw_bench_hist_record(struct bw_bench_hist *h, uint64_t v)
{
	h->buckets[bw_bench_hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* Adds every value of src to dst. */
void bw_bench_hist_merge(struct bw_bench_hist *dst, const struct bw_bench_hist *src);

/*
 * The value at percentile p (0..100): the highest value of the bucket where
 * the ceil(p/100 x count)-th smallest value lies, clamped to [min, max], so
 * p = 100 is the exact maximum and p = 0 the exact minimum. 0 when empty.
 */
uint64_t bw_bench_hist_percentile(const struct bw_bench_hist *h, double p);

/* The mean of the recorded values, exactly (from their sum); 0 when empty. */
double bw_bench_hist_mean(const struct bw_bench_hist *h);

#endif
