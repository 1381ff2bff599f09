/*
 * Sequence accounting (see seq.h). The common case, the next number in
 * order with nothing early waiting, only moves the floor: no bitmap is
 * ever allocated for a publisher whose messages all arrive in order.
 */
#include "bench/seq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bw_bench_seq_init(struct bw_bench_seq *t, uint32_t first_pub, uint32_t n_pubs)
{
	memset(t, 0, sizeof(*t));
	t->first_pub = first_pub;
	if (n_pubs == 0)
		return 0;
	t->pubs = calloc(n_pubs, sizeof(*t->pubs));
	if (!t->pubs)
		return -ENOMEM;
	t->n_pubs = n_pubs;
	return 0;
}

void bw_bench_seq_free(struct bw_bench_seq *t)
{
	for (uint32_t i = 0; i < t->n_pubs; i++)
		free(t->pubs[i].win);
	free(t->pubs);
	t->pubs = NULL;
	t->n_pubs = 0;
}

static bool bit_get(const struct bw_bench_seq_pub *p, uint64_t s)
{
	uint64_t i = s & (p->win_bits - 1);

	return (p->win[i / 64] >> (i % 64)) & 1;
}

static void bit_set(struct bw_bench_seq_pub *p, uint64_t s)
{
	uint64_t i = s & (p->win_bits - 1);

	p->win[i / 64] |= UINT64_C(1) << (i % 64);
	p->pending++;
}

static void bit_clear(struct bw_bench_seq_pub *p, uint64_t s)
{
	uint64_t i = s & (p->win_bits - 1);

	p->win[i / 64] &= ~(UINT64_C(1) << (i % 64));
	p->pending--;
}

/* Moves the floor over the numbers that arrived early and are now contiguous. */
static void advance(struct bw_bench_seq_pub *p)
{
	while (p->pending && bit_get(p, p->floor)) {
		bit_clear(p, p->floor);
		p->floor++;
	}
}

/*
 * Makes the window at least `span` bits (a power of two, at most
 * WINDOW_MAX), keeping what it holds. Returns 0, or -ENOMEM with the
 * window unchanged.
 */
static int grow(struct bw_bench_seq_pub *p, uint64_t span)
{
	uint32_t bits = p->win_bits ? p->win_bits : BW_BENCH_SEQ_WINDOW_MIN;

	while (bits < span && bits < BW_BENCH_SEQ_WINDOW_MAX)
		bits *= 2;
	if (bits == p->win_bits)
		return 0;
	uint64_t *w = calloc(bits / 64, sizeof(uint64_t));
	if (!w)
		return -ENOMEM;
	struct bw_bench_seq_pub np = *p;
	np.win = w;
	np.win_bits = bits;
	np.pending = 0;
	for (uint64_t s = p->floor; p->pending && s < (uint64_t)p->floor + p->win_bits; s++) {
		if (bit_get(p, s)) {
			bit_set(&np, s);
			bit_clear(p, s);
		}
	}
	free(p->win);
	*p = np;
	return 0;
}

/* Gives up every number below new_floor that has not arrived. */
static void slide(struct bw_bench_seq_pub *p, uint64_t new_floor)
{
	uint64_t end = (uint64_t)p->floor + p->win_bits;
	uint64_t s = p->floor;

	for (; s < new_floor && s < end; s++) {
		if (bit_get(p, s))
			bit_clear(p, s);
		else
			p->given_up++;
	}
	if (new_floor > s)
		p->given_up += new_floor - s;
	p->floor = (uint32_t)new_floor;
	advance(p);
}

enum bw_bench_seq_result bw_bench_seq_add(struct bw_bench_seq *t, uint32_t pub, uint32_t seq,
                                          bool dup_flag)
{
	if (pub < t->first_pub || pub - t->first_pub >= t->n_pubs) {
		t->unexpected++;
		return BW_BENCH_SEQ_UNEXPECTED;
	}
	struct bw_bench_seq_pub *p = &t->pubs[pub - t->first_pub];

	t->received++;
	if (seq < p->floor)
		goto dup;
	if (seq == p->floor && p->pending == 0) {
		/* In order, nothing early waiting: the fast path. */
		p->floor++;
		goto fresh;
	}
	uint64_t span = (uint64_t)seq - p->floor + 1;
	if (span > p->win_bits) {
		if (grow(p, span) < 0) {
			t->nomem++;
			return BW_BENCH_SEQ_NOMEM;
		}
		if (span > p->win_bits)
			slide(p, (uint64_t)seq + 1 - p->win_bits);
	}
	if (seq < p->floor)
		goto dup; /* the slide's advance passed it */
	if (bit_get(p, seq))
		goto dup;
	if (seq == p->floor) {
		p->floor++;
		advance(p);
	} else {
		bit_set(p, seq);
	}
fresh:
	p->unique++;
	t->unique++;
	if (seq < p->max_seen)
		p->reordered++;
	else
		p->max_seen = seq + 1;
	return BW_BENCH_SEQ_NEW;
dup:
	p->dups++;
	t->dups++;
	if (dup_flag) {
		p->dups_flag++;
		t->dups_flag++;
	}
	return BW_BENCH_SEQ_DUP;
}

uint64_t bw_bench_seq_unique(const struct bw_bench_seq *t, uint32_t pub)
{
	if (pub < t->first_pub || pub - t->first_pub >= t->n_pubs)
		return 0;
	return t->pubs[pub - t->first_pub].unique;
}
