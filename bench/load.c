/*
 * The load scenarios' run (see load.h): builds the plan, starts the client
 * threads (client.h) and moves them through the phases: connect every
 * client; publish for the warmup and the measured window; stop the
 * publishers and drain the subscribers until every expected message is in,
 * or nothing more arrives for QUIET_MS, or --drain runs out; close. Counts
 * are taken from the threads' published counters at the window's edges,
 * and the loss and duplicate accounting from their trackers once they have
 * been joined. Every wait is bounded. The phases are also steps of their
 * own (load_run.h), for scenarios that run two loads at once (noisy.c).
 */
#include "bench/load.h"

#include "bench/client.h"
#include "bench/load_run.h"
#include "bench/procstat.h"
#include "bw_version.h"
#include "proto/mqtt/codec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define QUIET_MS      500  /* a drain ends when nothing arrives for this long */
#define CLOSE_WAIT_MS 3000 /* for the broker to close after DISCONNECT */
#define START_WAIT_MS 5000 /* for the threads to set up their rings */
#define TICK_MS       50
#define BATCH_MAX     (64u << 10)
#define BATCH_MIN     (4u << 10)
#define THREAD_BUDGET (4u << 20) /* QoS 0 output built ahead, a thread */

struct bw__bench_run {
	const struct bw_bench_load_opts *o;
	struct bw_bench_plan plan;
	struct bw_bench_thread *th;
	unsigned n_th;
	unsigned started;           /* threads running, not yet joined */
	struct bw__bench_run *peer; /* measured alongside: its window is ours */
	bool tty;
	uint64_t t_start_ns;
	/* Snapshots at the window's edges. */
	uint64_t w0[BW_BENCH_C_N], w1[BW_BENCH_C_N];
	double window_s;
	/* Broker. */
	bool have_cpu;
	uint64_t cpu0_ns, cpu1_ns;
	uint64_t hwm_kb, rss_kb, rss_before_kb;
	/* Progress. */
	uint64_t last[BW_BENCH_C_N];
	uint64_t last_ns;
	/* Outcome. */
	bool connect_timeout;
	bool drain_timeout;
	bool still_arriving; /* --drain ran out with deliveries coming in during the drain */
	double drain_s;
	char failures[8][256];
	unsigned n_failures;
};

static void fail(struct bw__bench_run *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void fail(struct bw__bench_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->n_failures == sizeof(r->failures) / sizeof(r->failures[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(r->failures[r->n_failures++], sizeof(r->failures[0]), fmt, ap);
	va_end(ap);
}

/*
 * Encodes the PUBLISH template for topic: QoS o->qos, packet id 0 (patched
 * per message), an empty property block in 5.0, and o->size payload bytes
 * whose first 16 each message overwrites. Returns 0 or -ENOMEM/-EINVAL.
 */
static int make_tmpl(struct bw_bench_tmpl *tm, const struct bw_bench_load_opts *o,
                     const char *topic)
{
	struct bw_packet pkt;
	uint8_t *payload = malloc(o->size);

	if (!payload)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->size; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = BW_PUBLISH;
	pkt.publish.qos = o->qos;
	pkt.publish.packet_id = o->qos ? 1 : 0;
	pkt.publish.topic = (struct bw_str){ (const uint8_t *)topic, (uint16_t)strlen(topic) };
	pkt.publish.payload = (struct bw_bin){ payload, o->size };
	size_t n = bw_codec_size(&pkt, o->version);
	tm->bytes = n ? malloc(n) : NULL;
	if (!tm->bytes || bw_codec_encode(&pkt, o->version, tm->bytes, n) != (int)n) {
		free(payload);
		free(tm->bytes);
		tm->bytes = NULL;
		return n ? -ENOMEM : -EINVAL;
	}
	free(payload);
	tm->len = (uint32_t)n;
	tm->pay_off = (uint32_t)(n - o->size);
	/* Before the payload: [packet id] [5.0: property length 0]. */
	tm->pid_off = o->qos ? tm->pay_off - 2 - (o->version == BW_MQTT_5 ? 1 : 0) : 0;
	return 0;
}

static void free_plan(struct bw_bench_plan *pl, uint32_t n_tmpls)
{
	for (uint32_t i = 0; pl->tmpls && i < n_tmpls; i++)
		free(pl->tmpls[i].bytes);
	free(pl->tmpls);
	free(pl->pub_sent);
	free(pl->pub_refused);
	free(pl->pub_acked);
	bw_bench_tls_ctx_free(&pl->tls);
	memset(pl, 0, sizeof(*pl));
}

/* Topics published to: one a publisher (pairs), one a flood topic, or one. */
static uint32_t n_tmpls(const struct bw_bench_plan *pl)
{
	if (pl->o->scenario == BW_BENCH_PAIRS)
		return pl->n_pub;
	if (pl->o->scenario == BW_BENCH_FLOOD)
		return pl->n_sub ? pl->n_sub : pl->n_pub;
	return pl->n_pub ? 1 : 0;
}

static int make_plan(struct bw_bench_plan *pl, const struct bw_bench_load_opts *o)
{
	bool conns_only = o->scenario == BW_BENCH_CONNECT || o->scenario == BW_BENCH_IDLE;
	char topic[600];

	memset(pl, 0, sizeof(*pl));
	pl->o = o;
	pl->n_pub = conns_only ? 0 : o->publishers;
	pl->n_sub = conns_only ? 0 : o->subscribers;
	pl->n_other = conns_only ? o->connections : 0;
	if (o->rate > 0 && pl->n_pub)
		pl->interval_ns = 1e9 * pl->n_pub / o->rate;
	if (o->session_expiry) {
		/* The run's start in ms: no run resumes a session an earlier one left. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(pl->sub_tag, sizeof(pl->sub_tag), ".%" PRIx64,
		         (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	}
	/* QoS 0 output built ahead: 64 KiB a publisher, less when there are many. */
	uint32_t per_thread = (pl->n_pub + o->threads - 1) / o->threads;
	uint32_t batch = per_thread ? THREAD_BUDGET / per_thread : BATCH_MAX;
	batch = batch > BATCH_MAX ? BATCH_MAX : batch < BATCH_MIN ? BATCH_MIN : batch;
	pl->batch_bytes = batch;
	uint32_t nt = n_tmpls(pl);
	pl->tmpls = calloc(nt ? nt : 1, sizeof(*pl->tmpls));
	pl->pub_sent = calloc(pl->n_pub ? pl->n_pub : 1, sizeof(uint64_t));
	pl->pub_refused = calloc(pl->n_pub ? pl->n_pub : 1, sizeof(uint64_t));
	pl->pub_acked = calloc(pl->n_pub ? pl->n_pub : 1, sizeof(uint64_t));
	if (!pl->tmpls || !pl->pub_sent || !pl->pub_refused || !pl->pub_acked)
		return -ENOMEM;
	for (uint32_t i = 0; i < nt; i++) {
		if (o->scenario == BW_BENCH_PAIRS)
			snprintf(topic, sizeof(topic), "%s/pair/%u", o->topic, i);
		else if (o->scenario == BW_BENCH_SHARED)
			snprintf(topic, sizeof(topic), "%s/shared", o->topic);
		else if (o->scenario == BW_BENCH_FLOOD)
			snprintf(topic, sizeof(topic), "%s/%u", o->topic, i);
		else
			snprintf(topic, sizeof(topic), "%s/all", o->topic);
		int rc = make_tmpl(&pl->tmpls[i], o, topic);
		if (rc)
			return rc;
	}
	atomic_init(&pl->phase, BW_BENCH_PH_INIT);
	atomic_init(&pl->t0_ns, 0);
	atomic_init(&pl->win_start_ns, 0);
	atomic_init(&pl->win_end_ns, 0);
	return 0;
}

static uint64_t sum(const struct bw__bench_run *r, enum bw_bench_count k)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < r->n_th; i++)
		s += atomic_load_explicit(&r->th[i].pub[k], memory_order_relaxed);
	return s;
}

static void snapshot(const struct bw__bench_run *r, uint64_t *v)
{
	for (int k = 0; k < BW_BENCH_C_N; k++)
		v[k] = sum(r, (enum bw_bench_count)k);
}

static void set_phase(struct bw__bench_run *r, enum bw_bench_phase ph)
{
	atomic_store_explicit(&r->plan.phase, ph, memory_order_release);
	if (ph == BW_BENCH_PH_EXIT)
		return; /* threads see it within a ring timeout; their rings may be gone */
	for (unsigned i = 0; i < r->n_th; i++)
		bw_bench_thread_wake(&r->th[i]);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "1.23M" style. */
static const char *human(char *buf, size_t cap, double v)
{
	if (v >= 1e9)
		snprintf(buf, cap, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, cap, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, cap, "%.1fk", v / 1e3);
	else
		snprintf(buf, cap, "%.0f", v);
	return buf;
}

/* Once a second on a terminal: what happened in the last second. */
static void progress(struct bw__bench_run *r, const char *what, bool force)
{
	uint64_t now = bw_bench_now_ns(), v[BW_BENCH_C_N];
	char a[16], b[16], c[16];

	if (!r->tty || (!force && now - r->last_ns < 1000000000u))
		return;
	snapshot(r, v);
	double dt = (double)(now - r->last_ns) / 1e9;
	if (r->last_ns == 0)
		dt = 0;
	if (dt > 0)
		fprintf(stderr,
		        "\r[%6.1fs %-8s] sent %7s/s  received %7s/s  connects %7s/s  open %" PRIu64
		        "  failed %" PRIu64 "\033[K",
		        (double)(now - r->t_start_ns) / 1e9, what,
		        human(a, sizeof(a),
		              (double)(v[BW_BENCH_C_SENT] - r->last[BW_BENCH_C_SENT]) / dt),
		        human(b, sizeof(b),
		              (double)(v[BW_BENCH_C_RECEIVED] - r->last[BW_BENCH_C_RECEIVED]) / dt),
		        human(c, sizeof(c),
		              (double)(v[BW_BENCH_C_CONNECTS] - r->last[BW_BENCH_C_CONNECTS]) / dt),
		        v[BW_BENCH_C_OPEN], v[BW_BENCH_C_FAILED]);
	memcpy(r->last, v, sizeof(v));
	r->last_ns = now;
}

static void broker_cpu(struct bw__bench_run *r, uint64_t *ns)
{
	if (!r->o->pid)
		return;
	if (bw_bench_proc_cpu_ns(r->o->pid, ns) < 0)
		r->have_cpu = false;
}

/* Sleeps until the monotonic clock reaches until_ns, showing progress. */
static void wait_until(struct bw__bench_run *r, uint64_t until_ns, const char *what)
{
	for (;;) {
		uint64_t now = bw_bench_now_ns();
		if (now >= until_ns)
			return;
		if (sum(r, BW_BENCH_C_FAILED) > 0 && r->o->scenario != BW_BENCH_CONNECT)
			return; /* a broken connection ends the run early */
		if (r->peer && sum(r->peer, BW_BENCH_C_FAILED) > 0)
			return; /* so does one of the load measured alongside */
		uint64_t left_ms = (until_ns - now) / 1000000u;
		sleep_ms(left_ms < TICK_MS ? (unsigned)left_ms + 1 : TICK_MS);
		progress(r, what, false);
	}
}

static bool threads_in(const struct bw__bench_run *r, enum bw_bench_phase ph)
{
	for (unsigned i = 0; i < r->n_th; i++)
		if (atomic_load(&r->th[i].seen_phase) != (int)ph)
			return false;
	return true;
}

/* Deliveries the subscribers should see for what the publishers sent. */
static uint64_t expected_now(const struct bw__bench_run *r)
{
	uint64_t net = sum(r, BW_BENCH_C_SENT) - sum(r, BW_BENCH_C_REFUSED);
	const struct bw_bench_load_opts *o = r->o;

	if (r->plan.n_sub == 0)
		return 0;
	if (o->scenario == BW_BENCH_PAIRS || o->scenario == BW_BENCH_SHARED ||
	    o->scenario == BW_BENCH_FLOOD)
		return net;
	return net * r->plan.n_sub;
}

/* Connects every client but the churning ones; false when not all made it. */
static bool phase_connect(struct bw__bench_run *r)
{
	uint64_t want = (uint64_t)r->plan.n_pub + r->plan.n_sub +
	                (r->o->scenario == BW_BENCH_IDLE ? r->plan.n_other : 0);
	uint64_t deadline = bw_bench_now_ns() + (uint64_t)(r->o->connect_timeout * 1e9);

	set_phase(r, BW_BENCH_PH_CONNECT);
	for (;;) {
		uint64_t ready = sum(r, BW_BENCH_C_READY);
		if (ready >= want)
			return true;
		if (sum(r, BW_BENCH_C_FAILED) > 0)
			return false;
		if (bw_bench_now_ns() >= deadline) {
			r->connect_timeout = true;
			fail(r, "only %" PRIu64 " of %" PRIu64 " clients were ready after %.1f s",
			     ready, want, r->o->connect_timeout);
			return false;
		}
		sleep_ms(10);
		progress(r, "connect", false);
	}
}

void bw__bench_run_start(struct bw__bench_run *r)
{
	atomic_store(&r->plan.t0_ns, bw_bench_now_ns());
	set_phase(r, BW_BENCH_PH_RUN);
}

/* Publishes (or churns) through the warmup and the window. */
static void phase_run(struct bw__bench_run *r)
{
	const struct bw_bench_load_opts *o = r->o;
	struct bw__bench_run *peer = r->peer;
	uint64_t t0 = bw_bench_now_ns();
	uint64_t ws = t0 + (uint64_t)(o->warmup * 1e9);
	uint64_t we = ws + (uint64_t)(o->seconds * 1e9);

	atomic_store(&r->plan.t0_ns, t0);
	atomic_store(&r->plan.win_start_ns, ws);
	atomic_store(&r->plan.win_end_ns, we);
	if (peer) {
		atomic_store(&peer->plan.win_start_ns, ws);
		atomic_store(&peer->plan.win_end_ns, we);
	}
	set_phase(r, BW_BENCH_PH_RUN);
	wait_until(r, ws, "warmup");
	uint64_t a = bw_bench_now_ns();
	snapshot(r, r->w0);
	if (peer)
		snapshot(peer, peer->w0);
	broker_cpu(r, &r->cpu0_ns);
	wait_until(r, we, "measure");
	broker_cpu(r, &r->cpu1_ns);
	snapshot(r, r->w1);
	if (peer)
		snapshot(peer, peer->w1);
	r->window_s = (double)(bw_bench_now_ns() - a) / 1e9;
	if (peer)
		peer->window_s = r->window_s;
	if (o->pid) {
		(void)bw_bench_proc_status_kb(o->pid, "VmRSS", &r->rss_kb);
		(void)bw_bench_proc_status_kb(o->pid, "VmHWM", &r->hwm_kb);
	}
}

void bw__bench_run_measure(struct bw__bench_run *r, struct bw__bench_run *peer)
{
	r->peer = peer;
	phase_run(r);
	r->peer = NULL;
}

/*
 * Stops the publishers and waits until every one has written all it built
 * and has its acks, then until the subscribers have every message, or
 * received nothing for QUIET_MS; all within --drain.
 */
static void phase_stop(struct bw__bench_run *r)
{
	uint64_t start = bw_bench_now_ns();
	uint64_t deadline = start + (uint64_t)(r->o->drain * 1e9);
	uint64_t last_rx = UINT64_MAX, quiet_since = start;
	uint64_t rx0 = sum(r, BW_BENCH_C_RECEIVED);

	set_phase(r, BW_BENCH_PH_STOP);
	for (;;) {
		uint64_t now = bw_bench_now_ns();
		bool idle = threads_in(r, BW_BENCH_PH_STOP) && sum(r, BW_BENCH_C_PUBS_BUSY) == 0;
		uint64_t rx = sum(r, BW_BENCH_C_RECEIVED);
		if (rx != last_rx) {
			last_rx = rx;
			quiet_since = now;
		}
		if (idle && sum(r, BW_BENCH_C_UNIQUE) >= expected_now(r))
			break;
		if (idle && now - quiet_since >= QUIET_MS * 1000000ull)
			break;
		if (now >= deadline) {
			/*
			 * Deliveries came during the drain but not all of them: a
			 * backlog (which may come in bursts), not a loss rate.
			 */
			r->drain_timeout = true;
			r->still_arriving = rx != rx0;
			break;
		}
		sleep_ms(5);
		progress(r, "drain", false);
	}
	r->drain_s = (double)(bw_bench_now_ns() - start) / 1e9;
	if (r->o->pid) {
		uint64_t kb;
		if (bw_bench_proc_status_kb(r->o->pid, "VmHWM", &kb) == 0 && kb > r->hwm_kb)
			r->hwm_kb = kb;
	}
}

/* DISCONNECT everyone; the broker closes; whatever is left is closed by the threads. */
static void phase_close(struct bw__bench_run *r)
{
	uint64_t deadline = bw_bench_now_ns() + CLOSE_WAIT_MS * 1000000ull;

	set_phase(r, BW_BENCH_PH_CLOSE);
	while (bw_bench_now_ns() < deadline &&
	       !(threads_in(r, BW_BENCH_PH_CLOSE) && sum(r, BW_BENCH_C_OPEN) == 0))
		sleep_ms(5);
	progress(r, "close", true);
	if (r->tty)
		fputc('\n', stderr);
	set_phase(r, BW_BENCH_PH_EXIT);
}

/* Open files: a connection is one; raise the soft limit to the hard one. */
static void raise_nofile(const struct bw_bench_load_opts *o, uint64_t conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && conns + 64 > rl.rlim_cur)
		fprintf(stderr,
		        "bulwark-bench: warning: %" PRIu64 " connections but only %llu open files "
		        "allowed (ulimit -n)\n",
		        conns, (unsigned long long)rl.rlim_cur);
	(void)o;
}

/* Adds up the joined threads' counts and trackers. */
static void add_up(struct bw__bench_run *r, struct bw__bench_totals *tt)
{
	const struct bw_bench_plan *pl = &r->plan;

	memset(tt, 0, sizeof(*tt));
	bw_bench_hist_init(&tt->lat);
	bw_bench_hist_init(&tt->hs);
	for (uint32_t p = 0; p < pl->n_pub; p++) {
		tt->sent += pl->pub_sent[p];
		tt->acked += pl->pub_acked[p];
		tt->refused += pl->pub_refused[p];
	}
	for (unsigned i = 0; i < r->n_th; i++) {
		struct bw_bench_thread *t = &r->th[i];
		tt->failed += t->c[BW_BENCH_C_FAILED];
		tt->nomem += t->seq_nomem;
		bw_bench_hist_merge(&tt->lat, t->lat);
		bw_bench_hist_merge(&tt->hs, t->hs);
		for (uint32_t j = 0; j < t->n_trk; j++) {
			const struct bw_bench_seq *s = &t->trk[j];
			tt->received += s->received;
			tt->unique += s->unique;
			tt->dups += s->dups;
			tt->dups_flag += s->dups_flag;
			tt->unexpected += s->unexpected;
			for (uint32_t k = 0; k < s->n_pubs; k++) {
				uint32_t p = s->first_pub + k;
				uint64_t exp = pl->pub_sent[p] - pl->pub_refused[p];
				uint64_t got = s->pubs[k].unique;
				tt->expected += exp;
				if (got < exp)
					tt->lost += exp - got;
				else
					tt->extra += got - exp;
				tt->reordered += s->pubs[k].reordered;
				tt->given_up += s->pubs[k].given_up;
			}
		}
	}
	double w = r->window_s > 0 ? r->window_s : 1;
	tt->w_sent = r->w1[BW_BENCH_C_SENT] - r->w0[BW_BENCH_C_SENT];
	tt->w_received = r->w1[BW_BENCH_C_RECEIVED] - r->w0[BW_BENCH_C_RECEIVED];
	tt->w_connects = r->w1[BW_BENCH_C_CONNECTS] - r->w0[BW_BENCH_C_CONNECTS];
	for (unsigned i = 0; i < r->n_th; i++) {
		tt->tls_full += r->th[i].c[BW_BENCH_C_TLS_FULL];
		tt->tls_resumed += r->th[i].c[BW_BENCH_C_TLS_RESUMED];
	}
	tt->w_tls_full = r->w1[BW_BENCH_C_TLS_FULL] - r->w0[BW_BENCH_C_TLS_FULL];
	tt->w_tls_resumed = r->w1[BW_BENCH_C_TLS_RESUMED] - r->w0[BW_BENCH_C_TLS_RESUMED];
	tt->msgs_per_s = (double)tt->w_received / w;
	tt->pub_per_s = (double)tt->w_sent / w;
	tt->connects_per_s = (double)tt->w_connects / w;
	tt->mb_in_per_s =
	        (double)(r->w1[BW_BENCH_C_BYTES_IN] - r->w0[BW_BENCH_C_BYTES_IN]) / w / 1e6;
	tt->mb_out_per_s =
	        (double)(r->w1[BW_BENCH_C_BYTES_OUT] - r->w0[BW_BENCH_C_BYTES_OUT]) / w / 1e6;
	tt->cpu_s = tt->cpu_us_per_msg = tt->rss_per_conn = -1;
	if (r->have_cpu && r->cpu1_ns >= r->cpu0_ns) {
		tt->cpu_s = (double)(r->cpu1_ns - r->cpu0_ns) / 1e9;
		/* A message is a delivery; without subscribers a publish; for connect a handshake.
		 */
		uint64_t per = r->o->scenario == BW_BENCH_CONNECT ? tt->w_connects
		               : tt->w_received                   ? tt->w_received
		                                                  : tt->w_sent;
		if (per)
			tt->cpu_us_per_msg = tt->cpu_s * 1e6 / (double)per;
	}
	tt->window_s = r->window_s;
	tt->hwm_kb = r->hwm_kb;
	tt->still_arriving = r->still_arriving;
	if (r->o->scenario == BW_BENCH_IDLE && r->o->pid && r->rss_kb && r->rss_before_kb)
		tt->rss_per_conn = ((double)r->rss_kb - (double)r->rss_before_kb) * 1024.0 /
		                   (double)r->o->connections;
}

/* Decides whether the run failed; returns its exit code. */
static int verdict(struct bw__bench_run *r, const struct bw__bench_totals *tt)
{
	const struct bw_bench_load_opts *o = r->o;
	bool conns_only = o->scenario == BW_BENCH_CONNECT || o->scenario == BW_BENCH_IDLE;

	if (tt->failed) {
		const char *first = "";
		for (unsigned i = 0; i < r->n_th && !*first; i++)
			if (atomic_load(&r->th[i].has_err))
				first = r->th[i].err;
		fail(r, "%" PRIu64 " connection(s) failed; first: %s", tt->failed, first);
	}
	if (!conns_only && o->qos > 0 && tt->acked < tt->sent)
		fail(r, "%" PRIu64 " QoS %u message(s) never acknowledged", tt->sent - tt->acked,
		     o->qos);
	if (r->plan.n_sub && o->qos > 0 && tt->lost && r->still_arriving)
		fail(r,
		     "QoS %u: %" PRIu64 " of %" PRIu64 " expected deliveries still missing when "
		     "--drain ran out, with deliveries still arriving (a backlog: try a longer "
		     "--drain)",
		     o->qos, tt->lost, tt->expected);
	else if (r->plan.n_sub && o->qos > 0 && tt->lost)
		fail(r, "QoS %u: %" PRIu64 " of %" PRIu64 " expected deliveries lost", o->qos,
		     tt->lost, tt->expected);
	if (o->qos == 1 && tt->dups > tt->dups_flag)
		fail(r, "QoS 1: %" PRIu64 " duplicate(s) without the DUP flag",
		     tt->dups - tt->dups_flag);
	if (o->qos != 1 && tt->dups)
		fail(r, "QoS %u: %" PRIu64 " duplicate(s)", o->qos, tt->dups);
	if (tt->unexpected || tt->extra)
		fail(r, "%" PRIu64 " message(s) this run's publishers did not send",
		     tt->unexpected + tt->extra);
	if (tt->nomem)
		fail(r, "%" PRIu64 " message(s) not tracked for want of memory", tt->nomem);
	if (o->scenario == BW_BENCH_CONNECT && tt->w_connects == 0)
		fail(r, "no connection was accepted in the window");
	if (o->tls && tt->tls_full + tt->tls_resumed == 0)
		fail(r, "no TLS handshake completed");
	return r->n_failures ? 1 : 0;
}

static const double cdf_points[] = { 0,  10, 20, 30, 40, 50,   60,   70,    75,    80,     85,
	                             90, 95, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100 };

static void print_hist(const char *name, const struct bw_bench_hist *h)
{
	if (h->count == 0) {
		printf("%-22s none in the window\n", name);
		return;
	}
	printf("%-22s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f  (%" PRIu64
	       " samples)\n",
	       name, (double)bw_bench_hist_percentile(h, 50) / 1e3,
	       (double)bw_bench_hist_percentile(h, 90) / 1e3,
	       (double)bw_bench_hist_percentile(h, 99) / 1e3,
	       (double)bw_bench_hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3,
	       bw_bench_hist_mean(h) / 1e3, h->count);
}

/* The first TLS handshake's version and cipher, or "". */
static const char *tls_desc(const struct bw__bench_run *r)
{
	for (unsigned i = 0; i < r->n_th; i++)
		if (r->th[i].tls_desc[0])
			return r->th[i].tls_desc;
	return "";
}

/* Resumed handshakes in the window, in percent; -1 without any. */
static double resumed_pct(const struct bw__bench_totals *tt)
{
	uint64_t n = tt->w_tls_full + tt->w_tls_resumed;

	return n ? 100.0 * (double)tt->w_tls_resumed / (double)n : -1;
}

static void print_tls(const struct bw__bench_run *r, const struct bw__bench_totals *tt)
{
	const struct bw_bench_load_opts *o = r->o;
	double w = r->window_s > 0 ? r->window_s : 1;
	char a[16];

	printf("%-22s %s: %" PRIu64 " handshakes, %" PRIu64 " resumed", "tls",
	       tls_desc(r)[0] ? tls_desc(r) : "no handshake", tt->tls_full + tt->tls_resumed,
	       tt->tls_resumed);
	if (o->scenario == BW_BENCH_CONNECT)
		printf("; in the window %s/s, %.1f %% resumed",
		       human(a, sizeof(a), (double)(tt->w_tls_full + tt->w_tls_resumed) / w),
		       resumed_pct(tt) < 0 ? 0.0 : resumed_pct(tt));
	printf("\n");
	if (o->tls_resume && tt->w_tls_full && !tt->w_tls_resumed)
		printf("%-22s the broker resumed no session: every handshake was a full one\n",
		       "note");
}

static void print_table(const struct bw__bench_run *r, const struct bw__bench_totals *tt, int rc)
{
	const struct bw_bench_load_opts *o = r->o;
	char a[16];

	printf("bulwark-bench %s: ", bw_bench_scenario_name(o->scenario));
	if (o->scenario == BW_BENCH_CONNECT || o->scenario == BW_BENCH_IDLE)
		printf("%u connections", o->connections);
	else
		printf("%u publisher(s) -> %u %ssubscriber(s), QoS %u, %u-byte payloads%s",
		       o->publishers, o->subscribers, o->session_expiry ? "persistent " : "",
		       o->qos, o->size, o->rate > 0 ? ", paced" : "");
	printf(", MQTT %s%s, %s:%u, %u thread(s)\n", o->version == BW_MQTT_5 ? "5.0" : "3.1.1",
	       o->tls ? (o->tls_resume ? " over TLS, resuming" : " over TLS") : "", o->host,
	       o->port, o->threads);
	printf("window %.2f s after %.2f s warmup; drain %.2f s%s\n\n", r->window_s, o->warmup,
	       r->drain_s,
	       r->still_arriving  ? " (hit --drain with deliveries still arriving)"
	       : r->drain_timeout ? " (hit --drain)"
	                          : "");
	if (o->scenario == BW_BENCH_CONNECT) {
		printf("%-22s %s/s (%" PRIu64 " in the window)\n", "connects",
		       human(a, sizeof(a), tt->connects_per_s), tt->w_connects);
		print_hist("handshake (us)", &tt->hs);
	} else if (o->scenario == BW_BENCH_IDLE) {
		printf("%-22s %u\n", "connections held", o->connections);
		if (tt->rss_per_conn >= 0)
			printf("%-22s %.0f bytes (RSS %" PRIu64 " kB before, %" PRIu64
			       " kB with them)\n",
			       "broker RSS a conn", tt->rss_per_conn, r->rss_before_kb, r->rss_kb);
	} else {
		printf("%-22s %s/s (%" PRIu64 " in the window)\n", "published",
		       human(a, sizeof(a), tt->pub_per_s), tt->w_sent);
		printf("%-22s %s/s (%" PRIu64 " in the window)\n", "delivered",
		       human(a, sizeof(a), tt->msgs_per_s), tt->w_received);
		printf("%-22s %.1f MB/s to the broker, %.1f MB/s from it\n", "client traffic",
		       tt->mb_out_per_s, tt->mb_in_per_s);
		printf("%-22s sent %" PRIu64 ", acked %" PRIu64 ", refused %" PRIu64 "\n",
		       "publishes in all", tt->sent, tt->acked, tt->refused);
		if (r->plan.n_sub)
			printf("%-22s expected %" PRIu64 ", received %" PRIu64 ", unique %" PRIu64
			       ", lost %" PRIu64 " (%.3f %%), duplicates %" PRIu64 " (%" PRIu64
			       " with DUP), out of order %" PRIu64 "\n",
			       "deliveries in all", tt->expected, tt->received, tt->unique,
			       tt->lost,
			       tt->expected ? 100.0 * (double)tt->lost / (double)tt->expected : 0.0,
			       tt->dups, tt->dups_flag, tt->reordered);
		if (r->plan.n_sub && r->still_arriving)
			printf("%-22s the %" PRIu64 " missing were still arriving when --drain ran "
			       "out: a backlog, not a measure of loss\n",
			       "note", tt->lost);
		/* Flat out, latency is mostly time queued in the broker and the sockets. */
		if (o->rate > 0 || tt->lat.count)
			print_hist(o->rate > 0 ? "latency (us)" : "latency (us, unpaced)",
			           &tt->lat);
	}
	if (o->tls)
		print_tls(r, tt);
	if (o->pid) {
		printf("%-22s pid %d", "broker", (int)o->pid);
		if (tt->cpu_us_per_msg >= 0)
			printf(", CPU %.3f us a %s (%.2f s in the window)", tt->cpu_us_per_msg,
			       o->scenario == BW_BENCH_CONNECT ? "connect" : "message", tt->cpu_s);
		printf(", peak RSS %.1f MB\n", (double)r->hwm_kb / 1024);
	}
	printf("%-22s %s\n", "result", rc ? "FAILED" : "ok");
	for (unsigned i = 0; i < r->n_failures; i++)
		printf("  - %s\n", r->failures[i]);
	fflush(stdout);
}

void bw__bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* A number, or null when not measured (< 0). */
void bw__bench_json_num(FILE *f, const char *key, double v, int decimals)
{
	if (v < 0 || !isfinite(v))
		fprintf(f, ",\"%s\":null", key);
	else
		fprintf(f, ",\"%s\":%.*f", key, decimals, v);
}

void bw__bench_json_hist(FILE *f, const char *key, const struct bw_bench_hist *h)
{
	if (h->count == 0) {
		fprintf(f, ",\"%s\":null", key);
		return;
	}
	fprintf(f,
	        ",\"%s\":{\"count\":%" PRIu64 ",\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,"
	        "\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f,\"cdf\":[",
	        key, h->count, (double)h->min / 1e3, bw_bench_hist_mean(h) / 1e3,
	        (double)bw_bench_hist_percentile(h, 50) / 1e3,
	        (double)bw_bench_hist_percentile(h, 90) / 1e3,
	        (double)bw_bench_hist_percentile(h, 99) / 1e3,
	        (double)bw_bench_hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3);
	for (size_t i = 0; i < sizeof(cdf_points) / sizeof(cdf_points[0]); i++)
		fprintf(f, "%s[%g,%.3f]", i ? "," : "", cdf_points[i],
		        (double)bw_bench_hist_percentile(h, cdf_points[i]) / 1e3);
	fputs("]}", f);
}

void bw__bench_run_json(FILE *f, const struct bw__bench_run *r, const struct bw__bench_totals *tt,
                        int rc)
{
	const struct bw_bench_load_opts *o = r->o;

	fprintf(f, "{\"bench\":\"load\",\"scenario\":\"%s\",\"bulwark_bench\":\"%s\",\"commit\":",
	        bw_bench_scenario_name(o->scenario), BW_VERSION);
	bw__bench_json_str(f, BW_GIT_COMMIT);
	fprintf(f, ",\"ok\":%s,\"exit_code\":%d,\"params\":{\"host\":", rc ? "false" : "true", rc);
	bw__bench_json_str(f, o->host);
	fprintf(f,
	        ",\"port\":%u,\"mqtt\":\"%s\",\"qos\":%u,\"publishers\":%u,\"subscribers\":%u,"
	        "\"connections\":%u,\"size\":%u,\"seconds\":%g,\"warmup\":%g,\"rate\":%g,"
	        "\"inflight\":%u,\"threads\":%u,\"sources\":%u,\"concurrency\":%u,\"topic\":",
	        o->port, o->version == BW_MQTT_5 ? "5.0" : "3.1.1", o->qos, r->plan.n_pub,
	        r->plan.n_sub, r->plan.n_other, o->size, o->seconds, o->warmup, o->rate,
	        o->inflight, o->threads, o->n_sources, o->concurrency);
	bw__bench_json_str(f, o->topic);
	fprintf(f, ",\"session_expiry\":%" PRIu32, o->session_expiry);
	fprintf(f, ",\"tls\":%s,\"tls_resume\":%s,\"tls_version\":\"%s\",\"client_cert\":%s",
	        o->tls ? "true" : "false", o->tls_resume ? "true" : "false",
	        o->tls_version == 12   ? "1.2"
	        : o->tls_version == 13 ? "1.3"
	                               : "any",
	        o->cert ? "true" : "false");
	fprintf(f,
	        "},\"window_s\":%.4f,\"drain_s\":%.4f,\"drain_timeout\":%s,\"still_arriving\":%s,"
	        "\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"refused\":%" PRIu64
	        ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"unique\":%" PRIu64
	        ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"duplicates_dup_flag\":%" PRIu64
	        ",\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64
	        ",\"failed_connections\":%" PRIu64 ",\"window_sent\":%" PRIu64
	        ",\"window_received\":%" PRIu64 ",\"window_connects\":%" PRIu64,
	        r->window_s, r->drain_s, r->drain_timeout ? "true" : "false",
	        r->still_arriving ? "true" : "false", tt->sent, tt->acked, tt->refused,
	        tt->expected, tt->received, tt->unique, tt->lost, tt->dups, tt->dups_flag,
	        tt->reordered, tt->unexpected + tt->extra, tt->failed, tt->w_sent, tt->w_received,
	        tt->w_connects);
	/* Missing messages still arriving at the end are a backlog, not a loss rate. */
	bw__bench_json_num(f, "loss_pct",
	                   tt->expected && !r->still_arriving
	                           ? 100.0 * (double)tt->lost / (double)tt->expected
	                           : -1,
	                   4);
	bw__bench_json_num(f, "msgs_per_s", tt->msgs_per_s, 1);
	bw__bench_json_num(f, "pub_msgs_per_s", tt->pub_per_s, 1);
	bw__bench_json_num(f, "mb_to_broker_per_s", tt->mb_out_per_s, 3);
	bw__bench_json_num(f, "mb_from_broker_per_s", tt->mb_in_per_s, 3);
	bw__bench_json_num(f, "connects_per_s",
	                   o->scenario == BW_BENCH_CONNECT ? tt->connects_per_s : -1, 1);
	fprintf(f, ",\"broker_pid\":%d", (int)o->pid);
	bw__bench_json_num(f, "broker_cpu_s", tt->cpu_s, 3);
	bw__bench_json_num(f, "broker_cpu_us_per_msg", tt->cpu_us_per_msg, 4);
	bw__bench_json_num(f, "broker_rss_kb", o->pid ? (double)r->hwm_kb : -1, 0);
	bw__bench_json_num(f, "broker_rss_now_kb", o->pid ? (double)r->rss_kb : -1, 0);
	bw__bench_json_num(f, "broker_rss_before_kb",
	                   o->scenario == BW_BENCH_IDLE && o->pid ? (double)r->rss_before_kb : -1,
	                   0);
	bw__bench_json_num(f, "rss_per_conn_bytes", tt->rss_per_conn, 1);
	if (o->tls) {
		double w = r->window_s > 0 ? r->window_s : 1;
		fputs(",\"tls\":{\"protocol\":", f);
		bw__bench_json_str(f, tls_desc(r));
		fputs(",\"library\":", f);
		bw__bench_json_str(f, bw_bench_tls_library());
		fprintf(f,
		        ",\"handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64
		        ",\"window_handshakes\":%" PRIu64 ",\"window_resumed\":%" PRIu64,
		        tt->tls_full + tt->tls_resumed, tt->tls_resumed,
		        tt->w_tls_full + tt->w_tls_resumed, tt->w_tls_resumed);
		bw__bench_json_num(f, "handshakes_per_s",
		                   o->scenario == BW_BENCH_CONNECT
		                           ? (double)(tt->w_tls_full + tt->w_tls_resumed) / w
		                           : -1,
		                   1);
		bw__bench_json_num(f, "resumed_pct", resumed_pct(tt), 2);
		fputc('}', f);
	} else {
		fputs(",\"tls\":null", f);
	}
	bw__bench_json_hist(f, "latency_us", &tt->lat);
	bw__bench_json_hist(f, "handshake_us", &tt->hs);
	fputs(",\"failures\":[", f);
	for (unsigned i = 0; i < r->n_failures; i++) {
		if (i)
			fputc(',', f);
		bw__bench_json_str(f, r->failures[i]);
	}
	fputs("]}", f);
}

/* Writes every figure to f, which it closes. Returns 0 or -errno. */
static int write_json(FILE *f, const struct bw__bench_run *r, const struct bw__bench_totals *tt,
                      int rc)
{
	bw__bench_run_json(f, r, tt, rc);
	fputc('\n', f);
	int err = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}

/* Joins the threads that started; they leave at once in the EXIT phase. */
static void join_all(struct bw__bench_run *r)
{
	for (; r->started > 0; r->started--)
		pthread_join(r->th[r->started - 1].tid, NULL);
}

void bw__bench_run_free(struct bw__bench_run **rp)
{
	struct bw__bench_run *r = *rp;

	if (!r)
		return;
	if (r->started) {
		/* Not finished: stop the threads that did start. */
		set_phase(r, BW_BENCH_PH_EXIT);
		join_all(r);
	}
	for (unsigned i = 0; r->th && i < r->n_th; i++)
		bw_bench_thread_free(&r->th[i]);
	free(r->th);
	if (r->plan.o)
		free_plan(&r->plan, n_tmpls(&r->plan));
	free(r);
	*rp = NULL;
}

/* The TLS context of the run's clients; returns 0, or 2 after saying why not. */
static int tls_setup(struct bw__bench_run *r)
{
	const struct bw_bench_load_opts *o = r->o;
	char why[300];
	struct bw_bench_tls_config tc = {
		.cafile = o->cafile,
		.cert = o->cert,
		.key = o->key,
		.servername = o->servername,
		.host = o->host,
		.insecure = o->tls_insecure,
		.resume = o->tls_resume,
		.lean = o->scenario == BW_BENCH_IDLE || o->scenario == BW_BENCH_CONNECT,
		.version = o->tls_version,
	};

	if (bw_bench_tls_ctx_new(&r->plan.tls, &tc, why, sizeof(why)) < 0) {
		fprintf(stderr, "bulwark-bench: %s\n", why);
		return 2; /* a file or name given on the command line */
	}
	return 0;
}

/* Sets up and starts the client threads; returns 0, or 1 after saying why not. */
static int threads_up(struct bw__bench_run *r)
{
	int err;

	r->n_th = r->o->threads;
	r->th = calloc(r->n_th, sizeof(*r->th));
	if (!r->th) {
		fprintf(stderr, "bulwark-bench: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < r->n_th; i++) {
		if (bw_bench_thread_setup(&r->th[i], &r->plan, i) < 0) {
			fprintf(stderr, "bulwark-bench: out of memory for the clients\n");
			return 1;
		}
	}
	for (; r->started < r->n_th; r->started++) {
		if ((err = bw_bench_thread_start(&r->th[r->started])) < 0) {
			fprintf(stderr, "bulwark-bench: cannot start a thread: %s\n",
			        strerror(-err));
			return 1;
		}
	}
	uint64_t deadline = bw_bench_now_ns() + START_WAIT_MS * 1000000ull;
	for (unsigned i = 0; i < r->n_th; i++) {
		while (atomic_load(&r->th[i].state) == 0 && bw_bench_now_ns() < deadline)
			sleep_ms(1);
		if (atomic_load(&r->th[i].state) != 1) {
			int st = atomic_load(&r->th[i].state);
			fprintf(stderr, "bulwark-bench: thread %u could not set up io_uring: %s\n",
			        i, st < 0 ? strerror(-st) : "timed out");
			return 1;
		}
	}
	return 0;
}

int bw__bench_run_new(const struct bw_bench_load_opts *o, struct bw__bench_run **out)
{
	struct bw__bench_run *r = calloc(1, sizeof(*r));
	int rc = 1;

	*out = NULL;
	if (!r) {
		fprintf(stderr, "bulwark-bench: out of memory\n");
		return 1;
	}
	r->o = o;
	r->tty = o->progress && isatty(STDERR_FILENO);
	r->have_cpu = o->pid != 0;
	if (o->pid) {
		uint64_t ns;
		if (bw_bench_proc_cpu_ns(o->pid, &ns) < 0) {
			fprintf(stderr, "bulwark-bench: no process %d to measure (--pid)\n",
			        (int)o->pid);
			goto fail;
		}
	}
	int err = make_plan(&r->plan, o);
	if (err) {
		fprintf(stderr, "bulwark-bench: cannot set up the run: %s\n", strerror(-err));
		goto fail;
	}
	if (o->tls && (rc = tls_setup(r)) != 0)
		goto fail;
	raise_nofile(o, (uint64_t)r->plan.n_pub + r->plan.n_sub + r->plan.n_other);
	if ((rc = threads_up(r)) != 0)
		goto fail;
	r->t_start_ns = r->last_ns = bw_bench_now_ns();
	if (o->scenario == BW_BENCH_IDLE && o->pid)
		(void)bw_bench_proc_status_kb(o->pid, "VmRSS", &r->rss_before_kb);
	*out = r;
	return 0;
fail:
	bw__bench_run_free(&r);
	return rc;
}

bool bw__bench_run_connect(struct bw__bench_run *r)
{
	return phase_connect(r);
}

void bw__bench_run_drain(struct bw__bench_run *r)
{
	phase_stop(r);
}

int bw__bench_run_finish(struct bw__bench_run *r, struct bw__bench_totals *tt)
{
	phase_close(r);
	join_all(r);
	add_up(r, tt);
	return verdict(r, tt);
}

const char *bw__bench_run_failure(const struct bw__bench_run *r, unsigned i)
{
	return i < r->n_failures ? r->failures[i] : NULL;
}

void bw__bench_run_print(const struct bw__bench_run *r, const struct bw__bench_totals *tt, int rc)
{
	print_table(r, tt, rc);
}

int bw_bench_load_run(const struct bw_bench_load_opts *o)
{
	struct bw__bench_run *r = NULL;
	struct bw__bench_totals *tt = NULL;
	FILE *json = NULL;
	int rc;

	if (o->scenario == BW_BENCH_NOISY)
		return bw__bench_noisy_run(o);
	/* Opened first so that a bad path fails before the run, not after. */
	if (o->json_path && !(json = fopen(o->json_path, "w"))) {
		fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(errno));
		return 1;
	}
	if (!(tt = calloc(1, sizeof(*tt)))) {
		fprintf(stderr, "bulwark-bench: out of memory\n");
		rc = 1;
		goto out;
	}
	if ((rc = bw__bench_run_new(o, &r)) != 0)
		goto out;
	if (phase_connect(r)) {
		phase_run(r);
		phase_stop(r);
	}
	rc = bw__bench_run_finish(r, tt);
	print_table(r, tt, rc);
	if (json) {
		int err = write_json(json, r, tt, rc);
		json = NULL;
		if (err) {
			fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(-err));
			rc = 1;
		}
	}
out:
	if (json)
		fclose(json);
	bw__bench_run_free(&r);
	free(tt);
	return rc;
}
