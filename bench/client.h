/*
 * The client engine of bulwark-bench's load scenarios: one thread a ring
 * (node/io/ring.h), each driving thousands of MQTT connections
 * (publishers, subscribers, idle or churning clients) through their
 * handshakes, ack flows and keep-alives. The main thread (load.c) moves
 * every thread through the phases by storing plan->phase and waking its
 * ring, and reads each thread's counters as they are published after every
 * batch of completions; the rest of a thread's state is its own until it
 * has been joined.
 */
#ifndef BW_BENCH_CLIENT_H
#define BW_BENCH_CLIENT_H

#include "bench/hist.h"
#include "bench/load.h"
#include "bench/seq.h"
#include "bench/tls.h"
#include "node/io/ring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum bw_bench_phase {
	BW_BENCH_PH_INIT,
	BW_BENCH_PH_CONNECT, /* connect and subscribe every client */
	BW_BENCH_PH_RUN,     /* publish (or churn) */
	BW_BENCH_PH_STOP,    /* no new messages; finish ack flows and deliveries */
	BW_BENCH_PH_CLOSE,   /* DISCONNECT, wait for the broker to close */
	BW_BENCH_PH_EXIT,    /* leave: the rest is closed without waiting */
};

/* A thread's counters, totals since it started. */
enum bw_bench_count {
	BW_BENCH_C_SENT,      /* PUBLISHes written whole to the socket */
	BW_BENCH_C_ACKED,     /* QoS 1/2 flows completed (PUBACK, PUBCOMP, refusals) */
	BW_BENCH_C_REFUSED,   /* ... of which the broker refused (reason >= 0x80) */
	BW_BENCH_C_RECEIVED,  /* PUBLISHes received by subscribers */
	BW_BENCH_C_UNIQUE,    /* ... counted once a publisher and sequence number */
	BW_BENCH_C_CONNECTS,  /* CONNACKs accepting a connection */
	BW_BENCH_C_READY,     /* clients connected (and subscribed) */
	BW_BENCH_C_FAILED,    /* connections that failed (refused, reset, broken) */
	BW_BENCH_C_OPEN,      /* sockets open now (a gauge) */
	BW_BENCH_C_PUBS_BUSY, /* publishers with output or acks outstanding (a gauge) */
	BW_BENCH_C_BYTES_IN,
	BW_BENCH_C_BYTES_OUT,
	BW_BENCH_C_TLS_FULL,    /* TLS handshakes completed in full */
	BW_BENCH_C_TLS_RESUMED, /* ... and resuming a session */
	BW_BENCH_C_N,
};

/* A PUBLISH to one topic, copied for each message and patched. */
struct bw_bench_tmpl {
	uint8_t *bytes;
	uint32_t len;
	uint32_t pid_off; /* packet identifier; 0 at QoS 0 */
	uint32_t pay_off; /* payload */
};

/* What every thread shares; read-only once they start, but the atomics. */
struct bw_bench_plan {
	const struct bw_bench_load_opts *o;
	uint32_t n_pub;               /* publishers */
	uint32_t n_sub;               /* subscribers */
	uint32_t n_other;             /* idle or churning clients */
	struct bw_bench_tmpl *tmpls;  /* one a topic: n_pub for pairs, else 1 */
	double interval_ns;           /* paced: between a publisher's messages; 0: flat out */
	uint32_t batch_bytes;         /* QoS 0 output a publisher builds ahead */
	struct bw_bench_tls_ctx *tls; /* NULL: plain TCP */
	char sub_tag[24];             /* persistent subscribers' id suffix: the run's start */
	/* Per publisher, written by its thread before it ends. */
	uint64_t *pub_sent;
	uint64_t *pub_refused;
	uint64_t *pub_acked;
	_Atomic int phase;
	_Atomic uint64_t t0_ns;        /* publishing starts: the pacing schedule's origin */
	_Atomic uint64_t win_start_ns; /* latencies count for messages sent (or */
	_Atomic uint64_t win_end_ns;   /* handshakes started) in [start, end) */
};

struct bw_bench_conn;

struct bw_bench_thread {
	struct bw_bench_plan *plan;
	unsigned idx;
	pthread_t tid;
	_Atomic int state;      /* 0 starting, 1 running, < 0 -errno: failed to start */
	_Atomic int seen_phase; /* the phase entered, after its counters were published */
	struct bw_ring ring;
	struct bw_bench_conn *conns;
	uint32_t n_conns;
	uint32_t next_connect; /* connect phase: conns[] index of the next to start */
	uint32_t connecting;   /* handshakes in progress */
	uint32_t concurrency;  /* this thread's share of --concurrency */
	uint32_t *restart;     /* connect: failed slots to start again, conns[] indexes */
	uint32_t n_restart;
	struct bw_bench_seq *trk; /* one a subscriber, or one for a shared group */
	uint32_t n_trk;
	struct bw_bench_hist *lat; /* delivery latency, ns */
	struct bw_bench_hist *hs;  /* handshake latency (connect), ns */
	uint64_t now_ns;           /* read once a completion batch */
	uint64_t next_ka_ns;       /* next keep-alive scan */
	int timer_fd;              /* paced publishing */
	bool timer_armed;
	uint64_t timer_at_ns; /* when the armed timer fires */
	struct bw_op timer_op;
	uint64_t c[BW_BENCH_C_N];
	_Atomic uint64_t pub[BW_BENCH_C_N]; /* c, as of the last batch */
	uint64_t protocol_errors;           /* also in C_FAILED */
	uint64_t seq_nomem;
	char err[256];     /* the first failure, for the report */
	char tls_desc[64]; /* the first TLS handshake's version and cipher */
	_Atomic bool has_err;
};

uint64_t bw_bench_now_ns(void);

/*
 * Creates thread idx's clients from the plan: subscribers, publishers and
 * others are dealt round robin over o->threads threads, but a shared group's
 * subscribers all go to thread 0, which owns the group's one tracker.
 * Returns 0 or -ENOMEM; free with bw_bench_thread_free() either way.
 */
int bw_bench_thread_setup(struct bw_bench_thread *t, struct bw_bench_plan *plan, unsigned idx);

/* Starts the thread; it sets t->state once its ring is up. Returns 0 or -errno. */
int bw_bench_thread_start(struct bw_bench_thread *t);

/* Frees what setup allocated (after the thread was joined, if it ran). */
void bw_bench_thread_free(struct bw_bench_thread *t);

/* Wakes the thread's ring: call after changing plan->phase. */
void bw_bench_thread_wake(struct bw_bench_thread *t);

#endif
