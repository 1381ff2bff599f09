/*
 * The `codec` scenario of bulwark-bench: a micro-benchmark of the MQTT codec
 * on typical PUBLISH packets, measuring framing + decoding, whole-packet
 * encoding and the fan-out head encoding (bw_codec_publish_head()).
 */
#ifndef BW_BENCH_CODEC_BENCH_H
#define BW_BENCH_CODEC_BENCH_H

#include <stdint.h>

#define BW_BENCH_SIZES_MAX   16
#define BW_BENCH_PAYLOAD_MAX (16u << 20) /* per packet, bytes */
#define BW_BENCH_SECONDS_MAX 3600.0

struct bw_bench_codec_opts {
	double seconds;                     /* total, shared evenly by all cases */
	uint32_t sizes[BW_BENCH_SIZES_MAX]; /* payload bytes */
	unsigned n_sizes;
	const char *json_path; /* NULL: no JSON file */
};

/* Fills *o with the defaults: 6 s, payloads of 16, 64, 256, 1024, 4096 bytes. */
void bw_bench_codec_defaults(struct bw_bench_codec_opts *o);

/*
 * Runs every case, prints the table to stdout and, with o->json_path, writes
 * the results there. Returns 0, or a negative errno when memory or the JSON
 * file fails (after saying so on stderr).
 */
int bw_bench_codec_run(const struct bw_bench_codec_opts *o);

#endif
