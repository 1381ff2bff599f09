/*
 * The `bulwark-bench` executable: benchmarks for Bulwark. `codec` is a
 * micro-benchmark of the MQTT codec (codec_bench.c); fanin, fanout, pairs,
 * shared, connect, idle, latency and noisy drive a running broker with
 * io_uring clients (load.c, noisy.c); `sink` is a do-nothing MQTT server
 * that measures the bench's own ceiling (sink.c).
 * Exit codes: 0 success, 1 error (or a failed run), 2 usage error.
 */
#include "bench/args.h"
#include "bench/codec_bench.h"
#include "bench/load.h"
#include "bench/sink.h"
#include "bw_version.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: bulwark-bench [--help] [--version]\n"
	             "       bulwark-bench SCENARIO [options]\n"
	             "       bulwark-bench sink [--host ADDR] [--port N] [--seconds S]\n"
	             "       bulwark-bench codec [--seconds S] [--sizes N,N,...] [--json FILE]\n"
	             "\n"
	             "Benchmarks for Bulwark (and any MQTT broker).\n"
	             "\n"
	             "  -h, --help     show this help and exit\n"
	             "  -V, --version  show the version and exit\n"
	             "\n");
	bw_bench_load_usage(out);
	fprintf(out,
	        "\n"
	        "sink: a minimal MQTT server that acknowledges and discards everything and\n"
	        "relays nothing, to measure the bench's own ceiling (fanin against it is the\n"
	        "publishers' maximum rate). Prints \"sink: listening on ADDR:PORT\".\n"
	        "    --host ADDR     address to listen on (default 127.0.0.1)\n"
	        "    --port N        port; 0 for an ephemeral one (default 1883)\n"
	        "    --seconds S     stop after S seconds (default: at SIGINT or SIGTERM)\n"
	        "\n"
	        "codec: micro-benchmark of the MQTT codec on PUBLISH packets (3.1.1 and 5.0,\n"
	        "QoS 0 and 1, at each payload size): packets/s and MB/s of frame+decode, of\n"
	        "whole-packet encode and of the fan-out head encode (bw_codec_publish_head)\n"
	        "    --seconds S     total run time, shared by all cases (default 6)\n"
	        "    --sizes N,...   payload sizes in bytes (default 16,64,256,1024,4096;\n"
	        "                    at most %d sizes of at most %u bytes)\n"
	        "    --json FILE     also write the results to FILE as JSON\n"
	        "\n"
	        "Exit codes: 0 ok; 1 error, or a run that failed its checks (a connection\n"
	        "failed, QoS 1/2 loss, duplicates beyond the spec); 2 usage error.\n"
	        "\n"
	        "Examples:\n"
	        "  bulwark-bench fanin --port 1883 --publishers 10 --qos 1 --seconds 5\n"
	        "  bulwark-bench latency --port 1883 --rate 50000 --json lat.json\n"
	        "  bulwark-bench noisy --port 1884 --flood-port 1883 --rate 5000\n"
	        "  bulwark-bench codec --seconds 6 --sizes 16,256,4096 --json codec.json\n",
	        BW_BENCH_SIZES_MAX, BW_BENCH_PAYLOAD_MAX);
}

/* Parses "16,64,256" into o->sizes; returns false on anything else. */
static bool parse_sizes(const char *s, struct bw_bench_codec_opts *o)
{
	unsigned n = 0;

	for (;;) {
		char *end;
		if (*s < '0' || *s > '9' || n == BW_BENCH_SIZES_MAX)
			return false;
		errno = 0;
		unsigned long v = strtoul(s, &end, 10);
		if (errno || v > BW_BENCH_PAYLOAD_MAX)
			return false;
		o->sizes[n++] = (uint32_t)v;
		if (*end == '\0')
			break;
		if (*end != ',')
			return false;
		s = end + 1;
	}
	o->n_sizes = n;
	return true;
}

static int cmd_codec(int argc, char **argv)
{
	struct bw_bench_codec_opts o;

	bw_bench_codec_defaults(&o);
	for (int i = 2; i < argc; i++) {
		const char *v;
		bool missing = false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if ((v = bw_bench_opt_value(argc, argv, &i, "--seconds", &missing))) {
			if (!bw_bench_parse_double(v, 1e-9, BW_BENCH_SECONDS_MAX, &o.seconds))
				return bw_bench_usage_error(
				        "--seconds needs a number of seconds in (0, 3600]", v);
		} else if ((v = bw_bench_opt_value(argc, argv, &i, "--sizes", &missing))) {
			if (!parse_sizes(v, &o))
				return bw_bench_usage_error(
				        "--sizes needs a comma-separated list of byte counts", v);
		} else if ((v = bw_bench_opt_value(argc, argv, &i, "--json", &missing))) {
			if (*v == '\0')
				return bw_bench_usage_error("--json needs a file name", NULL);
			o.json_path = v;
		} else if (missing) {
			return bw_bench_usage_error("option needs a value", argv[i]);
		} else {
			return bw_bench_usage_error("unknown option for codec", argv[i]);
		}
	}
	return bw_bench_codec_run(&o) ? 1 : 0;
}

static int cmd_sink(int argc, char **argv)
{
	struct bw_bench_sink_opts o = { .host = "127.0.0.1", .port = 1883 };
	uint32_t u;

	for (int i = 2; i < argc; i++) {
		const char *v;
		bool missing = false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if ((v = bw_bench_opt_value(argc, argv, &i, "--host", &missing))) {
			o.host = v;
		} else if ((v = bw_bench_opt_value(argc, argv, &i, "--port", &missing))) {
			if (!bw_bench_parse_u32(v, 0, 65535, &u))
				return bw_bench_usage_error("--port needs a port number (0..65535)",
				                            v);
			o.port = (uint16_t)u;
		} else if ((v = bw_bench_opt_value(argc, argv, &i, "--seconds", &missing))) {
			if (!bw_bench_parse_double(v, 0.001, 86400, &o.seconds))
				return bw_bench_usage_error(
				        "--seconds needs a number in (0, 86400]", v);
		} else if (missing) {
			return bw_bench_usage_error("option needs a value", argv[i]);
		} else {
			return bw_bench_usage_error("unknown option for sink", argv[i]);
		}
	}
	return bw_bench_sink_run(&o);
}

static int cmd_load(int argc, char **argv)
{
	struct bw_bench_load_opts o;
	int rc = bw_bench_load_parse(argc - 1, argv + 1, &o);

	if (rc == 1) {
		usage(stdout);
		return 0;
	}
	if (rc)
		return rc;
	rc = bw_bench_load_run(&o);
	bw_bench_load_opts_free(&o);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *a = argv[1];
	if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
		printf("bulwark-bench %s (%s)\n", BW_VERSION, BW_GIT_COMMIT);
		return 0;
	}
	if (!strcmp(a, "codec"))
		return cmd_codec(argc, argv);
	if (!strcmp(a, "sink"))
		return cmd_sink(argc, argv);
	if (bw_bench_scenario_parse(a) >= 0)
		return cmd_load(argc, argv);
	if (a[0] == '-')
		return bw_bench_usage_error("unknown option", a);
	return bw_bench_usage_error("unknown scenario", a);
}
