/*
 * The noisy scenario (see load.h): one broker, two tenants told apart by
 * the listener they connect to. The quiet tenant runs the latency
 * scenario's open loop (a fixed schedule, the scheduled time in the
 * payload, so no coordinated omission) on --host/--port twice: alone, the
 * baseline, then while the flooding tenant's publishers write QoS 0 as
 * fast as the broker takes it (or at --flood-rate) on
 * --flood-host/--flood-port, to topics its own subscribers hold, so the
 * broker routes every message. Each is a run of its own (load_run.h) with
 * its own client threads; the flood's counts are taken at the edges of
 * the quiet tenant's flooded window. The report: both phases' percentiles,
 * their ratio (with/without) and the flood's rate.
 */
#include "bench/load_run.h"
#include "bw_version.h"
#include "proto/mqtt/mqtt_types.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BASE, FLOODED, FLOOD, N_PHASES };

static const char *const phase_name[N_PHASES] = { "baseline", "flooded", "flood" };

struct phase {
	struct bw__bench_run *run;
	struct bw__bench_totals tt;
	int rc; /* the run's exit code; -1: it did not run */
};

struct noisy {
	const struct bw_bench_load_opts *o;
	struct bw_bench_load_opts quiet, flood; /* each run's own options */
	char quiet_topic[600], flood_topic[600];
	char quiet_id[80], flood_id[80];
	struct phase ph[N_PHASES];
	char failures[8][320];
	unsigned n_failures;
};

static void fail(struct noisy *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct noisy *n, const char *fmt, ...)
{
	va_list ap;

	if (n->n_failures == sizeof(n->failures) / sizeof(n->failures[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(n->failures[n->n_failures++], sizeof(n->failures[0]), fmt, ap);
	va_end(ap);
}

/*
 * Each tenant's options from the command line's: the quiet tenant is a
 * latency run; the flood a BW_BENCH_FLOOD run on the flood's endpoint. The
 * topics and client identifiers differ too, so that a broker without
 * tenants (one namespace for both listeners) runs the same load.
 */
static void derive(struct noisy *n)
{
	const struct bw_bench_load_opts *o = n->o;
	struct bw_bench_load_opts *q = &n->quiet, *f = &n->flood;

	*q = *o;
	q->scenario = BW_BENCH_LATENCY;
	q->json_path = NULL;
	snprintf(n->quiet_topic, sizeof(n->quiet_topic), "%s/quiet", o->topic);
	q->topic = n->quiet_topic;
	snprintf(n->quiet_id, sizeof(n->quiet_id), "%s-q", o->client_id);
	q->client_id = n->quiet_id;

	*f = *o;
	f->scenario = BW_BENCH_FLOOD;
	f->json_path = NULL;
	f->host = o->flood_host;
	f->port = o->flood_port;
	f->dst = o->flood_dst;
	f->publishers = o->flood_publishers;
	f->subscribers = o->flood_subscribers;
	f->qos = 0;
	f->size = o->flood_size;
	f->rate = o->flood_rate;
	f->threads = o->flood_threads;
	f->nice = o->flood_nice;
	f->username = o->flood_username;
	f->password = o->flood_password;
	f->session_expiry = 0; /* the flood's subscribers stay clean */
	f->pid = 0;            /* the broker is measured over the quiet tenant's windows */
	f->progress = false;   /* one progress line: the quiet tenant's */
	snprintf(n->flood_topic, sizeof(n->flood_topic), "%s/flood", o->topic);
	f->topic = n->flood_topic;
	snprintf(n->flood_id, sizeof(n->flood_id), "%s-f", o->client_id);
	f->client_id = n->flood_id;
}

/*
 * The quiet tenant's latency run, alone or beside a flood that publishes.
 * Returns 0 once it ran (its verdict is in p->rc), or the exit code of a
 * run that could not be set up.
 */
static int quiet_phase(struct noisy *n, struct phase *p, struct bw__bench_run *flood)
{
	int rc = bw__bench_run_new(&n->quiet, &p->run);

	if (rc)
		return rc;
	if (bw__bench_run_connect(p->run)) {
		bw__bench_run_measure(p->run, flood);
		bw__bench_run_drain(p->run);
	}
	p->rc = bw__bench_run_finish(p->run, &p->tt);
	return 0;
}

/* Collects the phases' failures; returns the exit code. */
static int verdict(struct noisy *n)
{
	for (int i = 0; i < N_PHASES; i++) {
		const struct phase *p = &n->ph[i];
		if (p->rc < 0) {
			fail(n, "%s: did not run (the flood's clients did not all connect)",
			     phase_name[i]);
			continue;
		}
		const char *why;
		for (unsigned k = 0; p->run && (why = bw__bench_run_failure(p->run, k)); k++)
			fail(n, "%s: %s", phase_name[i], why);
		if (p->rc && !bw__bench_run_failure(p->run, 0))
			fail(n, "%s: failed", phase_name[i]);
	}
	return n->n_failures ? 1 : 0;
}

/* Latency percentile p of a phase in µs; -1 when it has none. */
static double pct(const struct noisy *n, int phase, double p)
{
	const struct phase *ph = &n->ph[phase];

	if (ph->rc < 0 || ph->tt.lat.count == 0)
		return -1;
	return (double)bw_bench_hist_percentile(&ph->tt.lat, p) / 1e3;
}

/* Flooded over baseline at percentile p; -1 when either is missing. */
static double ratio(const struct noisy *n, double p)
{
	double a = pct(n, FLOODED, p), b = pct(n, BASE, p);

	return a >= 0 && b > 0 ? a / b : -1;
}

/* The broker's CPU in cores over a phase's window; -1 when not measured. */
static double cores(const struct noisy *n, int phase)
{
	const struct phase *ph = &n->ph[phase];

	if (ph->rc < 0 || ph->tt.cpu_s < 0 || ph->tt.window_s <= 0)
		return -1;
	return ph->tt.cpu_s / ph->tt.window_s;
}

static const double pcts[] = { 50, 90, 99, 99.9, 100 };
static const char *const pct_keys[] = { "p50_ratio", "p90_ratio", "p99_ratio", "p99_9_ratio",
	                                "max_ratio" };
#define N_PCTS (sizeof(pcts) / sizeof(pcts[0]))

/* One line of the summary: a phase's percentiles, or their ratios (phase < 0). */
static void print_row(const struct noisy *n, const char *label, int phase)
{
	printf("%-22s", label);
	for (size_t i = 0; i < N_PCTS; i++) {
		double v = phase < 0 ? ratio(n, pcts[i]) : pct(n, phase, pcts[i]);
		if (v < 0)
			printf(" %10s", "-");
		else
			printf(phase < 0 ? " %10.2f" : " %10.1f", v);
	}
	printf("\n");
}

/* The broker's peak RSS over both phases, kB; 0 when not measured. */
static uint64_t peak_kb(const struct noisy *n)
{
	uint64_t kb = 0;

	for (int i = 0; i < N_PHASES; i++)
		if (n->ph[i].rc >= 0 && n->ph[i].tt.hwm_kb > kb)
			kb = n->ph[i].tt.hwm_kb;
	return kb;
}

static void report(const struct noisy *n, int rc)
{
	const struct bw_bench_load_opts *o = n->o;
	const struct phase *fl = &n->ph[FLOOD];
	char how[48] = "flat out";

	if (o->flood_rate > 0)
		snprintf(how, sizeof(how), "paced at %.0f msg/s", o->flood_rate);
	printf("\nnoisy: quiet tenant %s:%u, %u -> %u at %.0f msg/s, QoS %u, %u-byte payloads; "
	       "flood tenant %s:%u, %u -> %u, QoS 0, %u-byte payloads, %s; MQTT %s%s\n",
	       o->host, o->port, o->publishers, o->subscribers, o->rate, o->qos, o->size,
	       o->flood_host, o->flood_port, o->flood_publishers, o->flood_subscribers,
	       o->flood_size, how, o->version == BW_MQTT_5 ? "5.0" : "3.1.1",
	       o->tls ? " over TLS" : "");
	printf("%-22s %10s %10s %10s %10s %10s\n", "latency (us)", "p50", "p90", "p99", "p99.9",
	       "max");
	print_row(n, "without the flood", BASE);
	print_row(n, "with the flood", FLOODED);
	print_row(n, "with/without", -1);
	if (fl->rc >= 0) {
		printf("%-22s %.0f deliveries/s, %.0f publishes/s in the window", "flood",
		       fl->tt.msgs_per_s, fl->tt.pub_per_s);
		if (fl->tt.expected && fl->tt.still_arriving)
			printf(" (%" PRIu64 " still arriving at the end)", fl->tt.lost);
		else if (fl->tt.expected)
			printf(" (%.3f %% lost)",
			       100.0 * (double)fl->tt.lost / (double)fl->tt.expected);
		printf("\n");
	}
	if (o->pid) {
		printf("%-22s pid %d", "broker", (int)o->pid);
		if (cores(n, BASE) >= 0 && cores(n, FLOODED) >= 0)
			printf(", CPU %.2f cores without the flood, %.2f with it", cores(n, BASE),
			       cores(n, FLOODED));
		printf(", peak RSS %.1f MB\n", (double)peak_kb(n) / 1024);
	}
	printf("%-22s %s\n", "result", rc ? "FAILED" : "ok");
	for (unsigned i = 0; i < n->n_failures; i++)
		printf("  - %s\n", n->failures[i]);
	fflush(stdout);
}

static void json_params(FILE *f, const struct noisy *n)
{
	const struct bw_bench_load_opts *o = n->o;

	fputs(",\"params\":{\"host\":", f);
	bw__bench_json_str(f, o->host);
	fprintf(f,
	        ",\"port\":%u,\"mqtt\":\"%s\",\"qos\":%u,\"publishers\":%u,\"subscribers\":%u,"
	        "\"size\":%u,\"seconds\":%g,\"warmup\":%g,\"rate\":%g,\"threads\":%u,\"tls\":%s,"
	        "\"topic\":",
	        o->port, o->version == BW_MQTT_5 ? "5.0" : "3.1.1", o->qos, o->publishers,
	        o->subscribers, o->size, o->seconds, o->warmup, o->rate, o->threads,
	        o->tls ? "true" : "false");
	bw__bench_json_str(f, n->quiet_topic);
	fputs(",\"flood\":{\"host\":", f);
	bw__bench_json_str(f, o->flood_host);
	fprintf(f,
	        ",\"port\":%u,\"publishers\":%u,\"subscribers\":%u,\"size\":%u,\"threads\":%u,"
	        "\"nice\":%d",
	        o->flood_port, o->flood_publishers, o->flood_subscribers, o->flood_size,
	        o->flood_threads, o->flood_nice);
	bw__bench_json_num(f, "rate", o->flood_rate > 0 ? o->flood_rate : -1,
	                   1); /* null: flat out */
	fputs(",\"topic\":", f);
	bw__bench_json_str(f, n->flood_topic);
	fputs("}}", f);
}

/* Writes the figures to f, which it closes. Returns 0 or -errno. */
static int write_json(FILE *f, const struct noisy *n, int rc)
{
	const struct bw_bench_load_opts *o = n->o;

	fprintf(f,
	        "{\"bench\":\"load\",\"scenario\":\"noisy\",\"bulwark_bench\":\"%s\",\"commit\":",
	        BW_VERSION);
	bw__bench_json_str(f, BW_GIT_COMMIT);
	fprintf(f, ",\"ok\":%s,\"exit_code\":%d", rc ? "false" : "true", rc);
	json_params(f, n);
	fputs(",\"noisy\":{", f);
	for (int i = 0; i < N_PHASES; i++) {
		const struct phase *p = &n->ph[i];
		fprintf(f, "%s\"%s\":", i ? "," : "", phase_name[i]);
		if (p->rc >= 0)
			bw__bench_run_json(f, p->run, &p->tt, p->rc);
		else
			fputs("null", f);
	}
	for (size_t i = 0; i < N_PCTS; i++)
		bw__bench_json_num(f, pct_keys[i], ratio(n, pcts[i]), 4);
	bw__bench_json_num(f, "broker_cpu_cores_baseline", cores(n, BASE), 3);
	bw__bench_json_num(f, "broker_cpu_cores_flooded", cores(n, FLOODED), 3);
	fprintf(f, "},\"broker_pid\":%d", (int)o->pid);
	bw__bench_json_num(f, "broker_rss_kb", o->pid ? (double)peak_kb(n) : -1, 0);
	fputs(",\"failures\":[", f);
	for (unsigned i = 0; i < n->n_failures; i++) {
		if (i)
			fputc(',', f);
		bw__bench_json_str(f, n->failures[i]);
	}
	fputs("]}\n", f);
	int err = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}

/* A finished phase's own result table, under a title. */
static void print_phase(const struct noisy *n, int phase, const char *title)
{
	const struct phase *p = &n->ph[phase];

	printf("== %s ==\n", title);
	bw__bench_run_print(p->run, &p->tt, p->rc);
	printf("\n");
}

int bw__bench_noisy_run(const struct bw_bench_load_opts *o)
{
	struct noisy *n = calloc(1, sizeof(*n));
	FILE *json = NULL;
	int rc = 1;

	if (!n) {
		fprintf(stderr, "bulwark-bench: out of memory\n");
		return 1;
	}
	n->o = o;
	derive(n);
	for (int i = 0; i < N_PHASES; i++)
		n->ph[i].rc = -1;
	/* Opened first so that a bad path fails before the run, not after. */
	if (o->json_path && !(json = fopen(o->json_path, "w"))) {
		fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(errno));
		goto out;
	}
	/* 1. The quiet tenant alone. */
	if ((rc = quiet_phase(n, &n->ph[BASE], NULL)) != 0)
		goto out;
	print_phase(n, BASE, "noisy 1/2: the quiet tenant alone (baseline)");
	/*
	 * 2. The flood connects and publishes first; the quiet tenant's
	 * connect and warmup are then the flood's warmup too.
	 */
	struct phase *fl = &n->ph[FLOOD];
	if ((rc = bw__bench_run_new(&n->flood, &fl->run)) != 0)
		goto out;
	if (bw__bench_run_connect(fl->run)) {
		bw__bench_run_start(fl->run);
		if ((rc = quiet_phase(n, &n->ph[FLOODED], fl->run)) != 0)
			goto out;
		bw__bench_run_drain(fl->run);
	}
	fl->rc = bw__bench_run_finish(fl->run, &fl->tt);
	if (n->ph[FLOODED].rc >= 0)
		print_phase(n, FLOODED, "noisy 2/2: the quiet tenant under the flood");
	print_phase(n, FLOOD, "noisy 2/2: the flooding tenant");
	rc = verdict(n);
	report(n, rc);
	if (json) {
		int err = write_json(json, n, rc);
		json = NULL;
		if (err) {
			fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(-err));
			rc = 1;
		}
	}
out:
	if (json)
		fclose(json);
	for (int i = 0; i < N_PHASES; i++)
		bw__bench_run_free(&n->ph[i].run);
	free(n);
	return rc;
}
