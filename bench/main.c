/*
 * The `bulwark-bench` executable: benchmarks for Bulwark. This build has
 * one scenario, `codec`, a micro-benchmark of the MQTT codec
 * (codec_bench.c); the MQTT load scenarios against running nodes (fanin,
 * fanout, ...) arrive with the bench issue.
 * Exit codes: 0 success, 1 error, 2 usage error.
 */
#include "bench/codec_bench.h"
#include "bw_version.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: bulwark-bench [--help] [--version]\n"
	        "       bulwark-bench codec [--seconds S] [--sizes N,N,...] [--json FILE]\n"
	        "\n"
	        "Benchmarks for Bulwark.\n"
	        "\n"
	        "  -h, --help     show this help and exit\n"
	        "  -V, --version  show the version and exit\n"
	        "\n"
	        "Scenarios:\n"
	        "  codec          micro-benchmark of the MQTT codec on PUBLISH packets (3.1.1\n"
	        "                 and 5.0, QoS 0 and 1, at each payload size): packets/s and\n"
	        "                 MB/s of frame+decode, of whole-packet encode and of the\n"
	        "                 fan-out head encode (bw_codec_publish_head)\n"
	        "    --seconds S     total run time, shared by all cases (default 6)\n"
	        "    --sizes N,...   payload sizes in bytes (default 16,64,256,1024,4096;\n"
	        "                    at most %d sizes of at most %u bytes)\n"
	        "    --json FILE     also write the results to FILE as JSON\n"
	        "\n"
	        "Only `codec` exists in this version. The MQTT load scenarios against running\n"
	        "nodes (fanin, fanout, ...) arrive with the bench issue.\n"
	        "\n"
	        "Example: bulwark-bench codec --seconds 6 --sizes 16,256,4096 --json codec.json\n",
	        BW_BENCH_SIZES_MAX, BW_BENCH_PAYLOAD_MAX);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "bulwark-bench: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "Try 'bulwark-bench --help'.\n");
	return 2;
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

static bool parse_seconds(const char *s, double *out)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v > 0) || v > BW_BENCH_SECONDS_MAX)
		return false;
	*out = v;
	return true;
}

/*
 * Takes the value of option argv[*i] ("--name VALUE" or "--name=VALUE");
 * returns NULL when this is not that option, and sets *missing when it is
 * but has no value.
 */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
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
		if ((v = opt_value(argc, argv, &i, "--seconds", &missing))) {
			if (!parse_seconds(v, &o.seconds))
				return usage_error(
				        "--seconds needs a number of seconds in (0, 3600]", v);
		} else if ((v = opt_value(argc, argv, &i, "--sizes", &missing))) {
			if (!parse_sizes(v, &o))
				return usage_error(
				        "--sizes needs a comma-separated list of byte counts", v);
		} else if ((v = opt_value(argc, argv, &i, "--json", &missing))) {
			if (*v == '\0')
				return usage_error("--json needs a file name", NULL);
			o.json_path = v;
		} else if (missing) {
			return usage_error("option needs a value", argv[i]);
		} else {
			return usage_error("unknown option for codec", argv[i]);
		}
	}
	return bw_bench_codec_run(&o) ? 1 : 0;
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
	if (a[0] == '-')
		return usage_error("unknown option", a);
	return usage_error("unknown scenario (this version has only 'codec')", a);
}
