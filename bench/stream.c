/*
 * Stream halves (see stream.h). The input side completes a split packet
 * by copying only the bytes it lacks, then goes back to framing in place
 * in the receive buffer.
 */
#include "bench/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CAP_MAX (64u << 20)

/* Makes in->buf hold at least need bytes. */
static int in_reserve(struct bw_bench_in *in, uint32_t need)
{
	if (need <= in->cap)
		return 0;
	uint32_t cap = in->cap ? in->cap : 256;
	while (cap < need)
		cap *= 2;
	uint8_t *b = realloc(in->buf, cap);
	if (!b)
		return -ENOMEM;
	in->buf = b;
	in->cap = cap;
	return 0;
}

static int in_append(struct bw_bench_in *in, const uint8_t *p, uint32_t n)
{
	int rc = in_reserve(in, in->len + n);

	if (rc)
		return rc;
	memcpy(in->buf + in->len, p, n);
	in->len += n;
	return 0;
}

int bw_bench_in_feed(struct bw_bench_in *in, const uint8_t *data, uint32_t n, uint32_t max_packet,
                     bw_bench_packet_fn fn, void *ctx)
{
	struct bw_frame f;
	uint32_t off = 0;
	int rc;

	/* First finish the packet an earlier receive started. */
	while (in->len > 0 && off < n) {
		rc = bw_codec_frame(in->buf, in->len, max_packet, &f, NULL);
		if (rc < 0)
			return rc;
		uint32_t take;
		if (rc == BW_CODEC_AGAIN && f.size == 0)
			take = 1; /* the length bytes, one at a time: at most 4 */
		else
			take = f.size - in->len < n - off ? f.size - in->len : n - off;
		if ((rc = in_append(in, data + off, take)) < 0)
			return rc;
		off += take;
		rc = bw_codec_frame(in->buf, in->len, max_packet, &f, NULL);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			in->len = 0;
			if ((rc = fn(ctx, in->buf, &f)) < 0)
				return rc;
		}
	}
	if (in->len > 0)
		return 0; /* all of data went into the split packet */
	while (off < n) {
		rc = bw_codec_frame(data + off, n - off, max_packet, &f, NULL);
		if (rc < 0)
			return rc;
		if (rc == BW_CODEC_AGAIN)
			return in_append(in, data + off, n - off);
		if ((rc = fn(ctx, data + off, &f)) < 0)
			return rc;
		off += f.size;
	}
	return 0;
}

void bw_bench_in_free(struct bw_bench_in *in)
{
	free(in->buf);
	in->buf = NULL;
	in->len = in->cap = 0;
}

uint8_t *bw_bench_out_reserve(struct bw_bench_out *o, uint32_t n)
{
	uint32_t max = o->cap_max ? o->cap_max : OUT_CAP_MAX;
	uint64_t need = (uint64_t)o->pend_len + n;

	if (need > max)
		return NULL;
	if (need > o->pend_cap) {
		uint64_t cap = o->pend_cap ? o->pend_cap : 256;
		while (cap < need)
			cap *= 2;
		if (cap > max)
			cap = max;
		uint8_t *b = realloc(o->pend, cap);
		if (!b)
			return NULL;
		o->pend = b;
		o->pend_cap = (uint32_t)cap;
	}
	return o->pend + o->pend_len;
}

int bw_bench_out_put(struct bw_bench_out *o, const void *p, uint32_t n)
{
	uint8_t *d = bw_bench_out_reserve(o, n);

	if (!d)
		return -ENOBUFS;
	memcpy(d, p, n);
	bw_bench_out_commit(o, n, 0);
	return 0;
}

static int send_rest(struct bw_bench_out *o, struct bw_ring *r, struct bw_op *op, int fd)
{
	o->iov.iov_base = o->fly + o->fly_off;
	o->iov.iov_len = o->fly_len - o->fly_off;
	memset(&o->msg, 0, sizeof(o->msg));
	o->msg.msg_iov = &o->iov;
	o->msg.msg_iovlen = 1;
	int rc = bw_ring_sendmsg(r, op, fd, &o->msg);
	if (rc == 0)
		o->busy = true;
	return rc;
}

int bw_bench_out_flush(struct bw_bench_out *o, struct bw_ring *r, struct bw_op *op, int fd)
{
	if (o->busy || o->pend_len == 0)
		return 0;
	uint8_t *b = o->fly;
	uint32_t cap = o->fly_cap;

	o->fly = o->pend;
	o->fly_cap = o->pend_cap;
	o->fly_len = o->pend_len;
	o->fly_msgs = o->pend_msgs;
	o->fly_off = 0;
	o->pend = b;
	o->pend_cap = cap;
	o->pend_len = 0;
	o->pend_msgs = 0;
	int rc = send_rest(o, r, op, fd);
	return rc < 0 ? rc : 1;
}

int bw_bench_out_flush_buf(struct bw_bench_out *o, uint8_t **buf, uint32_t len, uint32_t *cap,
                           uint32_t msgs, struct bw_ring *r, struct bw_op *op, int fd)
{
	if (o->busy || len == 0)
		return 0;
	uint8_t *b = o->fly;
	uint32_t c = o->fly_cap;

	o->fly = *buf;
	o->fly_cap = *cap;
	o->fly_len = len;
	o->fly_msgs = msgs;
	o->fly_off = 0;
	*buf = b;
	*cap = c;
	int rc = send_rest(o, r, op, fd);
	return rc < 0 ? rc : 1;
}

int bw_bench_out_sent(struct bw_bench_out *o, int32_t res, struct bw_ring *r, struct bw_op *op,
                      int fd, uint32_t *msgs)
{
	o->busy = false;
	*msgs = 0;
	if (res < 0)
		return res;
	if (res == 0)
		return -EPIPE;
	o->fly_off += (uint32_t)res;
	if (o->fly_off < o->fly_len) {
		int rc = send_rest(o, r, op, fd);
		return rc < 0 ? rc : 0;
	}
	*msgs = o->fly_msgs;
	o->fly_len = o->fly_off = o->fly_msgs = 0;
	return 1;
}

void bw_bench_out_free(struct bw_bench_out *o)
{
	free(o->pend);
	free(o->fly);
	memset(o, 0, sizeof(*o));
}
