/*
 * The codec micro-benchmark (see codec_bench.h). A case is one protocol
 * version, QoS, payload size and operation; each runs for an equal share of
 * the time in batches of BATCH calls, timed with CLOCK_MONOTONIC around
 * every batch. Every call's result feeds a checksum that is printed, so the
 * compiler cannot drop the work. Throughput in MB/s counts whole-packet wire
 * bytes (MB = 10^6 bytes) for all three operations, so that the head-only
 * fan-out path reads as the packets a subscriber gets per second, not as the
 * few bytes it writes.
 */
#include "bench/codec_bench.h"

#include "bw_version.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 256

static const char topic[] = "sensors/building-7/floor-3/temp";

enum op { OP_DECODE, OP_ENCODE, OP_HEAD, OP_COUNT };

static const char *const op_names[OP_COUNT] = { "decode", "encode", "head" };

/* One PUBLISH as a struct and on the wire. */
struct fixture {
	uint8_t version;
	struct bw_packet pkt;
	uint8_t *payload;
	uint8_t user[64]; /* 5.0: pre-encoded user property, the shared props.raw */
	uint8_t *wire;
	size_t wire_len;
};

struct result {
	double pps[OP_COUNT];
	double mbps[OP_COUNT];
};

void bw_bench_codec_defaults(struct bw_bench_codec_opts *o)
{
	static const uint32_t sizes[] = { 16, 64, 256, 1024, 4096 };

	memset(o, 0, sizeof(*o));
	o->seconds = 6.0;
	o->n_sizes = sizeof(sizes) / sizeof(sizes[0]);
	memcpy(o->sizes, sizes, sizeof(sizes));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Builds a QoS qos PUBLISH of payload_len bytes of JSON-ish text in
 * `version`: 5.0 carries a Message Expiry Interval and one user property.
 * Returns 0 or -ENOMEM / -EINVAL; release with fixture_free().
 */
static int fixture_init(struct fixture *fx, uint8_t version, uint8_t qos, uint32_t payload_len)
{
	struct bw_publish *p = &fx->pkt.publish;
	static const char text[] = "{\"t\":21.5,\"unit\":\"C\",\"ok\":true}";

	memset(fx, 0, sizeof(*fx));
	fx->version = version;
	fx->payload = malloc(payload_len ? payload_len : 1);
	if (!fx->payload)
		return -ENOMEM;
	for (uint32_t i = 0; i < payload_len; i++)
		fx->payload[i] = (uint8_t)text[i % (sizeof(text) - 1)];

	fx->pkt.type = BW_PUBLISH;
	p->qos = qos;
	p->packet_id = qos ? 0x1234 : 0;
	p->topic.p = (const uint8_t *)topic;
	p->topic.len = (uint16_t)(sizeof(topic) - 1);
	p->payload.p = fx->payload;
	p->payload.len = payload_len;
	if (version == BW_MQTT_5) {
		struct bw_str k = { (const uint8_t *)"unit", 4 },
		              v = { (const uint8_t *)"celsius", 7 };
		uint32_t n = 0;
		p->props.has = BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY);
		p->props.message_expiry = 3600;
		if (bw_props_put_user(fx->user, sizeof(fx->user), &n, k, v))
			return -EINVAL;
		p->props.raw.p = fx->user;
		p->props.raw.len = n;
	}

	size_t len = bw_codec_size(&fx->pkt, version);
	if (len == 0)
		return -EINVAL;
	fx->wire = malloc(len);
	if (!fx->wire)
		return -ENOMEM;
	if (bw_codec_encode(&fx->pkt, version, fx->wire, len) != (int)len)
		return -EINVAL;
	fx->wire_len = len;
	return 0;
}

static void fixture_free(struct fixture *fx)
{
	free(fx->payload);
	free(fx->wire);
	fx->payload = NULL;
	fx->wire = NULL;
}

/* One batch of op on fx; returns what feeds the checksum. */
static uint64_t batch(const struct fixture *fx, enum op op, uint8_t *out, size_t cap)
{
	uint64_t sum = 0;

	for (int i = 0; i < BATCH; i++) {
		switch (op) {
		case OP_DECODE: {
			struct bw_frame f;
			struct bw_packet pkt;
			if (bw_codec_frame(fx->wire, fx->wire_len, BW_PACKET_SIZE_MAX, &f, NULL) ==
			            0 &&
			    bw_codec_decode(fx->wire, f.size, fx->version, &pkt, NULL) == 0)
				sum += f.size + pkt.publish.payload.len + pkt.publish.packet_id;
			break;
		}
		case OP_ENCODE: {
			int n = bw_codec_encode(&fx->pkt, fx->version, out, cap);
			sum += (uint64_t)n + (n > 0 ? out[n - 1] : 0);
			break;
		}
		case OP_HEAD: {
			int n = bw_codec_publish_head(&fx->pkt.publish, fx->version, out, cap);
			sum += (uint64_t)n + (n > 0 ? out[n - 1] : 0);
			break;
		}
		default:
			break;
		}
	}
	return sum;
}

/* Checks once, untimed, that op works on fx at all. */
static bool op_works(const struct fixture *fx, enum op op, uint8_t *out, size_t cap)
{
	struct bw_frame f;
	struct bw_packet pkt;

	switch (op) {
	case OP_DECODE:
		return bw_codec_frame(fx->wire, fx->wire_len, BW_PACKET_SIZE_MAX, &f, NULL) == 0 &&
		       bw_codec_decode(fx->wire, f.size, fx->version, &pkt, NULL) == 0;
	case OP_ENCODE:
		return bw_codec_encode(&fx->pkt, fx->version, out, cap) == (int)fx->wire_len;
	case OP_HEAD:
		return bw_codec_publish_head(&fx->pkt.publish, fx->version, out, cap) > 0;
	default:
		return false;
	}
}

/* Runs op on fx for `seconds`; fills r and adds to *sum. */
static void run_case(const struct fixture *fx, enum op op, double seconds, uint8_t *out, size_t cap,
                     struct result *r, uint64_t *sum)
{
	uint64_t calls = 0;
	double start = now(), elapsed;

	*sum += batch(fx, op, out, cap); /* warm caches and branch predictors */
	start = now();
	do {
		*sum += batch(fx, op, out, cap);
		calls += BATCH;
		elapsed = now() - start;
	} while (elapsed < seconds);
	r->pps[op] = (double)calls / elapsed;
	r->mbps[op] = (double)calls * (double)fx->wire_len / elapsed / 1e6;
}

/* "12.3M" style packets per second. */
static void fmt_rate(char *buf, size_t cap, double v)
{
	if (v >= 1e6)
		snprintf(buf, cap, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, cap, "%.1fk", v / 1e3);
	else
		snprintf(buf, cap, "%.0f", v);
}

/* Writes the results to fp, which it closes; returns 0 or -errno. */
static int write_json(FILE *fp, const struct bw_bench_codec_opts *o, double case_s,
                      const struct result *res, const size_t *wire_lens, uint64_t sum)
{
	unsigned row = 0;

	fprintf(fp,
	        "{\"bench\":\"codec\",\"bulwark\":\"%s\",\"commit\":\"%s\",\"seconds\":%.3f,"
	        "\"case_seconds\":%.4f,\"mb\":1000000,\"checksum\":%llu,\"results\":[",
	        BW_VERSION, BW_GIT_COMMIT, o->seconds, case_s, (unsigned long long)sum);
	for (unsigned v = 0; v < 2; v++) {
		for (unsigned q = 0; q < 2; q++) {
			for (unsigned s = 0; s < o->n_sizes; s++, row++) {
				fprintf(fp,
				        "%s\n "
				        "{\"mqtt\":\"%s\",\"qos\":%u,\"payload\":%u,\"packet\":%zu",
				        row ? "," : "", v ? "5.0" : "3.1.1", q, o->sizes[s],
				        wire_lens[row]);
				for (int op = 0; op < OP_COUNT; op++)
					fprintf(fp, ",\"%s_pps\":%.0f,\"%s_mbps\":%.1f",
					        op_names[op], res[row].pps[op], op_names[op],
					        res[row].mbps[op]);
				fputc('}', fp);
			}
		}
	}
	fputs("\n]}\n", fp);
	int rc = ferror(fp) ? -EIO : 0;
	if (fclose(fp) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int bw_bench_codec_run(const struct bw_bench_codec_opts *o)
{
	unsigned rows = 2 * 2 * o->n_sizes;
	unsigned cases = rows * OP_COUNT;
	double case_s = o->seconds / cases;
	struct result *res = calloc(rows, sizeof(*res));
	size_t *wire_lens = calloc(rows, sizeof(*wire_lens));
	uint8_t *out = NULL;
	FILE *json = NULL;
	uint64_t sum = 0;
	unsigned row = 0;
	int rc = 0;

	if (!res || !wire_lens) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* Opened first so that a bad path fails before the run, not after. */
	if (o->json_path && !(json = fopen(o->json_path, "w"))) {
		rc = -errno;
		fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(-rc));
		goto out_free;
	}
	printf("bulwark-bench codec: %u cases of %.3f s; PUBLISH to \"%s\"; MB = 10^6 bytes of "
	       "whole packets\n\n",
	       cases, case_s, topic);
	printf("%-5s %3s %7s %7s | %13s %9s | %13s %9s | %13s %9s\n", "mqtt", "qos", "payload",
	       "packet", "decode pkt/s", "MB/s", "encode pkt/s", "MB/s", "head pkt/s", "MB/s");
	for (unsigned v = 0; v < 2; v++) {
		for (unsigned q = 0; q < 2; q++) {
			for (unsigned s = 0; s < o->n_sizes; s++, row++) {
				struct fixture fx;
				uint8_t version = v ? BW_MQTT_5 : BW_MQTT_311;
				rc = fixture_init(&fx, version, (uint8_t)q, o->sizes[s]);
				if (rc) {
					fprintf(stderr,
					        "bulwark-bench: cannot build a %u-byte PUBLISH: "
					        "%s\n",
					        o->sizes[s], strerror(-rc));
					fixture_free(&fx);
					goto out_free;
				}
				free(out);
				out = malloc(fx.wire_len);
				if (!out) {
					rc = -ENOMEM;
					fixture_free(&fx);
					goto out_free;
				}
				wire_lens[row] = fx.wire_len;
				for (int op = 0; op < OP_COUNT; op++) {
					if (!op_works(&fx, op, out, fx.wire_len)) {
						fprintf(stderr,
						        "bulwark-bench: %s fails on a %u-byte "
						        "PUBLISH\n",
						        op_names[op], o->sizes[s]);
						rc = -EINVAL;
						fixture_free(&fx);
						goto out_free;
					}
					run_case(&fx, op, case_s, out, fx.wire_len, &res[row],
					         &sum);
				}
				fixture_free(&fx);

				char r[OP_COUNT][16];
				for (int op = 0; op < OP_COUNT; op++)
					fmt_rate(r[op], sizeof(r[op]), res[row].pps[op]);
				printf("%-5s %3u %7u %7zu | %13s %9.1f | %13s %9.1f | %13s %9.1f\n",
				       v ? "5.0" : "3.1.1", q, o->sizes[s], wire_lens[row],
				       r[OP_DECODE], res[row].mbps[OP_DECODE], r[OP_ENCODE],
				       res[row].mbps[OP_ENCODE], r[OP_HEAD],
				       res[row].mbps[OP_HEAD]);
				fflush(stdout);
			}
		}
	}
	printf("\nchecksum %llu\n", (unsigned long long)sum);
	if (json) {
		rc = write_json(json, o, case_s, res, wire_lens, sum);
		json = NULL;
		if (rc)
			fprintf(stderr, "bulwark-bench: %s: %s\n", o->json_path, strerror(-rc));
	}
out_free:
	if (json)
		fclose(json);
	free(out);
	free(wire_lens);
	free(res);
	return rc;
}
