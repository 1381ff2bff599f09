/*
 * The two halves of an MQTT byte stream for bulwark-bench's clients and
 * sink, over node/io/ring.h. Input: received bytes are cut into whole
 * packets with bw_codec_frame(), in place in the receive buffer when
 * possible; only a packet split across receives is copied. Output: bytes
 * are appended to a pending buffer while at most one sendmsg is in flight
 * on another; when it completes, the two swap. So a connection has one
 * send in flight, and everything written meanwhile leaves in one batch.
 */
#ifndef BW_BENCH_STREAM_H
#define BW_BENCH_STREAM_H

#include "node/io/ring.h"
#include "proto/mqtt/codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Bytes of an incomplete packet, kept until the rest arrives. */
struct bw_bench_in {
	uint8_t *buf;
	uint32_t len;
	uint32_t cap;
};

/*
 * Called for each whole packet: p[0..f->size) is the packet, valid only
 * during the call. Returns 0 to go on, or a negative value that stops the
 * feed and is returned by it.
 */
typedef int (*bw_bench_packet_fn)(void *ctx, const uint8_t *p, const struct bw_frame *f);

/*
 * Feeds data[0..n) into the stream: calls fn for every packet completed and
 * keeps the incomplete tail in *in. Returns 0, fn's negative value, the
 * framing error (-BW_RC_MALFORMED, -BW_RC_PACKET_TOO_LARGE above
 * max_packet) or -ENOMEM.
 */
int bw_bench_in_feed(struct bw_bench_in *in, const uint8_t *data, uint32_t n, uint32_t max_packet,
                     bw_bench_packet_fn fn, void *ctx);

void bw_bench_in_free(struct bw_bench_in *in);

struct bw_bench_out {
	uint8_t *pend; /* appended to; not in flight */
	uint32_t pend_len;
	uint32_t pend_cap;
	uint32_t pend_msgs; /* PUBLISHes the caller counted into pend */
	uint8_t *fly;       /* being sent */
	uint32_t fly_len;
	uint32_t fly_off; /* bytes of fly already sent */
	uint32_t fly_cap;
	uint32_t fly_msgs;
	uint32_t cap_max; /* neither buffer grows beyond; 0: 64 MiB */
	bool busy;        /* a sendmsg is in flight */
	struct iovec iov;
	struct msghdr msg;
};

/*
 * Room for n more bytes at the end of the pending buffer (growing it), to
 * fill and then bw_bench_out_commit(). NULL when it would pass cap_max or
 * memory is short.
 */
uint8_t *bw_bench_out_reserve(struct bw_bench_out *o, uint32_t n);

static inline void bw_bench_out_commit(struct bw_bench_out *o, uint32_t n, uint32_t msgs)
{
	o->pend_len += n;
	o->pend_msgs += msgs;
}

/* Appends bytes; returns 0 or -ENOBUFS. */
int bw_bench_out_put(struct bw_bench_out *o, const void *p, uint32_t n);

/*
 * When no send is in flight and something is pending, swaps the buffers
 * and sends with op on fd. Returns 1 when a send was started, 0 when there
 * was nothing to do, or -errno from the ring (nothing started).
 */
int bw_bench_out_flush(struct bw_bench_out *o, struct bw_ring *r, struct bw_op *op, int fd);

/*
 * The TLS path: when no send is in flight, starts sending (*buf)[0..len),
 * which holds msgs PUBLISHes, instead of the pending buffer; *buf (of *cap
 * bytes allocated) becomes the stream's in-flight buffer and the one it
 * held before is handed back in *buf and *cap, empty, to be filled again.
 * Returns 1 when a send was started, 0 when a send is in flight or len is
 * 0 (nothing changes), or -errno from the ring (nothing started; the
 * buffers are swapped all the same).
 */
int bw_bench_out_flush_buf(struct bw_bench_out *o, uint8_t **buf, uint32_t len, uint32_t *cap,
                           uint32_t msgs, struct bw_ring *r, struct bw_op *op, int fd);

/*
 * Handles the completion (res) of the send started by flush. Sends the
 * rest of a partial write and returns 0; when the whole buffer is gone,
 * returns 1 with *msgs set to the PUBLISHes it held (the caller then
 * flushes what became pending). A failed send returns its -errno (or
 * -EPIPE for a write of 0 bytes).
 */
int bw_bench_out_sent(struct bw_bench_out *o, int32_t res, struct bw_ring *r, struct bw_op *op,
                      int fd, uint32_t *msgs);

void bw_bench_out_free(struct bw_bench_out *o);

#endif
