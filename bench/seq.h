/*
 * Per-subscriber sequence accounting for bulwark-bench. Every PUBLISH the
 * bench sends carries its publisher's index and a sequence number that
 * starts at 0 and counts up by one. A tracker stands for one receiver (a
 * subscriber, or a whole shared-subscription group) and the contiguous
 * range of publishers it expects to hear from; for each of them it counts
 * the distinct sequence numbers received, the duplicates (telling apart
 * those that carried the DUP flag), and the ones out of order.
 *
 * Memory stays small when delivery is in order: per publisher a floor (every
 * number below it was received) and a circular bitmap of the numbers above
 * it that arrived early, which grows by doubling up to
 * BW_BENCH_SEQ_WINDOW_MAX bits. A gap older than that is given up as lost and
 * the window slides past it; a number that arrives after its gap was given
 * up counts as a duplicate (it would have to be millions of messages late).
 * A tracker belongs to one thread.
 */
#ifndef BW_BENCH_SEQ_H
#define BW_BENCH_SEQ_H

#include <stdbool.h>
#include <stdint.h>

#define BW_BENCH_SEQ_WINDOW_MIN 256u       /* bits, the first allocation */
#define BW_BENCH_SEQ_WINDOW_MAX (1u << 23) /* bits: 1 MiB a publisher at most */

/* What one publisher's messages did at one receiver. */
struct bw_bench_seq_pub {
	uint32_t floor;     /* every sequence number below was received or given up */
	uint32_t win_bits;  /* bitmap size, a power of two; 0: none yet */
	uint64_t *win;      /* bit (s % win_bits) set: s >= floor was received */
	uint32_t pending;   /* bits set in win */
	uint64_t max_seen;  /* highest number received + 1; 0: none */
	uint64_t unique;    /* distinct numbers received */
	uint64_t dups;      /* numbers received again, DUP flag or not */
	uint64_t dups_flag; /* ... of which carried the DUP flag */
	uint64_t reordered; /* new numbers that arrived below max_seen */
	uint64_t given_up;  /* numbers the window slid past, not received */
};

struct bw_bench_seq {
	uint32_t first_pub; /* publishers first_pub .. first_pub + n_pubs - 1 */
	uint32_t n_pubs;
	struct bw_bench_seq_pub *pubs;
	uint64_t received;   /* every message, duplicates included */
	uint64_t unique;     /* sum of pubs[].unique */
	uint64_t dups;       /* sum of pubs[].dups */
	uint64_t dups_flag;  /* sum of pubs[].dups_flag */
	uint64_t unexpected; /* from a publisher outside the range */
	uint64_t nomem;      /* messages not tracked for want of memory */
};

enum bw_bench_seq_result {
	BW_BENCH_SEQ_NEW,
	BW_BENCH_SEQ_DUP,
	BW_BENCH_SEQ_UNEXPECTED,
	BW_BENCH_SEQ_NOMEM,
};

/*
 * Sets up *t for publishers first_pub .. first_pub + n_pubs - 1. Returns 0
 * or -ENOMEM; release with bw_bench_seq_free() either way.
 */
int bw_bench_seq_init(struct bw_bench_seq *t, uint32_t first_pub, uint32_t n_pubs);

/* Frees what *t holds; *t is then empty but may be freed again. */
void bw_bench_seq_free(struct bw_bench_seq *t);

/* Counts message seq of publisher pub; dup_flag is the PUBLISH's DUP bit. */
enum bw_bench_seq_result bw_bench_seq_add(struct bw_bench_seq *t, uint32_t pub, uint32_t seq,
                                          bool dup_flag);

/*
 * The distinct messages of publisher pub received (0 for one outside the
 * range), to compare with what that publisher sent.
 */
uint64_t bw_bench_seq_unique(const struct bw_bench_seq *t, uint32_t pub);

#endif
