/*
 * One load run's phases as separate steps (load.c), for a scenario made of
 * several runs at once: noisy.c keeps a flooding tenant's run publishing
 * while it measures a quiet tenant's latency with another. A run owns its
 * plan, its client threads (each with its own ring) and their counts; two
 * runs share nothing but the broker. bw_bench_load_run() is the plain
 * sequence new, connect, measure, drain, finish, print.
 */
#ifndef BW_BENCH_LOAD_RUN_H
#define BW_BENCH_LOAD_RUN_H

#include "bench/hist.h"
#include "bench/load.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct bw__bench_run;

/* What a finished run counted and measured: plain data. */
struct bw__bench_totals {
	uint64_t sent, acked, refused, expected, received, unique, lost, extra;
	uint64_t dups, dups_flag, reordered, given_up, unexpected, nomem, failed;
	uint64_t w_sent, w_received, w_connects; /* in the window */
	uint64_t tls_full, tls_resumed, w_tls_full, w_tls_resumed;
	double msgs_per_s, pub_per_s, connects_per_s, mb_in_per_s, mb_out_per_s;
	double window_s;
	double cpu_s, cpu_us_per_msg; /* < 0: not measured */
	double rss_per_conn;          /* bytes; < 0: not measured */
	uint64_t hwm_kb;              /* the broker's peak RSS; 0: not measured */
	bool still_arriving;          /* --drain ran out with deliveries coming in */
	struct bw_bench_hist lat, hs;
};

/*
 * Sets up a run of o, which must outlive it: the plan, the TLS context and
 * the client threads, started, each with its ring up. Returns 0 with *out
 * (free with bw__bench_run_free()), or the exit code after saying on
 * stderr what went wrong: 1, or 2 when a TLS file or name cannot be used.
 */
int bw__bench_run_new(const struct bw_bench_load_opts *o, struct bw__bench_run **out);

/* Connects every client (and subscribes); false when not all were ready. */
bool bw__bench_run_connect(struct bw__bench_run *r);

/*
 * Starts publishing and returns at once, with no window of its own: a
 * peer's bw__bench_run_measure() gives it one. For a load that runs
 * behind another's measurement.
 */
void bw__bench_run_start(struct bw__bench_run *r);

/*
 * Publishes through the warmup and the window and returns at the window's
 * end. With a peer (started, or NULL), the peer's counts are taken at the
 * same edges, its latencies kept for messages sent in the same window, and
 * a connection of the peer that fails ends the window as one of r would.
 */
void bw__bench_run_measure(struct bw__bench_run *r, struct bw__bench_run *peer);

/* Stops the publishers and waits for the deliveries, within o->drain. */
void bw__bench_run_drain(struct bw__bench_run *r);

/*
 * Closes every connection, joins the threads, adds up into *tt and
 * decides. Returns the exit code: 0, or 1 when the run failed its checks.
 */
int bw__bench_run_finish(struct bw__bench_run *r, struct bw__bench_totals *tt);

/* The i-th reason the run failed, or NULL past the last. */
const char *bw__bench_run_failure(const struct bw__bench_run *r, unsigned i);

/* Prints a finished run's result table on stdout. */
void bw__bench_run_print(const struct bw__bench_run *r, const struct bw__bench_totals *tt, int rc);

/*
 * Writes a finished run's figures to f as one JSON object, without a
 * newline; the caller closes f.
 */
void bw__bench_run_json(FILE *f, const struct bw__bench_run *r, const struct bw__bench_totals *tt,
                        int rc);

/*
 * JSON pieces that follow an object's first member: bw__bench_json_num()
 * and bw__bench_json_hist() write `,"key":value` (null for v < 0 or an
 * empty histogram); bw__bench_json_str() a quoted, escaped string.
 */
void bw__bench_json_str(FILE *f, const char *s);
void bw__bench_json_num(FILE *f, const char *key, double v, int decimals);
void bw__bench_json_hist(FILE *f, const char *key, const struct bw_bench_hist *h);

/* Stops what is still running and frees the run; NULLs *r. */
void bw__bench_run_free(struct bw__bench_run **r);

/* The noisy scenario (noisy.c): returns the exit code as bw_bench_load_run(). */
int bw__bench_noisy_run(const struct bw_bench_load_opts *o);

#endif
