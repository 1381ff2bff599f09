/*
 * A connection's output queue: the bytes to send, in order, as a queue of
 * segments the io layer sends as one iovec batch (one send in flight a
 * socket). A segment is either bytes the queue owns (packet heads and acks,
 * copied into small chunks that are recycled through a per-thread cache, so
 * an ack costs no malloc in steady state) or a view of a shared bw_msg tail
 * (its property bytes and payload), for which the queue holds a reference
 * until the last of those bytes has been sent.
 *
 * Limits: bytes queued and not yet sent are bounded. Above soft_bytes the
 * caller stops feeding the queue (bw_outq_over_soft()); a push that would go
 * past hard_bytes is refused with -ENOBUFS, and the caller disconnects the
 * slow consumer.
 *
 * A queue is used by one thread (its connection's worker). Bytes handed out
 * by bw_outq_iov() stay valid and unmoved, whatever is pushed meanwhile,
 * until bw_outq_consume() or bw_outq_clear() releases them.
 */
#ifndef BW_CORE_OUTQ_H
#define BW_CORE_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto/mqtt/mqtt_types.h"

struct bw_msg;

struct bw_outq_limits {
	size_t soft_bytes; /* over this, stop queueing more; 0: no soft limit */
	size_t hard_bytes; /* pushes past this fail; 0: no limit (tests only) */
	size_t *pool;      /* bytes of every queue sharing it (a worker's); may be NULL */
};

/*
 * A PUBLISH tail (properties and payload) up to this many bytes is copied
 * into the queue's own chunk after its head rather than referenced.
 */
#define BW_OUTQ_COPY_MAX 512

/*
 * Segments kept inside struct bw_outq before spilling to the heap. Owned
 * bytes pushed one after another share a segment, so two hold an idle
 * connection's acks and one PUBLISH with a referenced payload; more is a
 * burst, whose ring is allocated and freed again once sent. Every
 * connection carries these, so they are few: 24 bytes each.
 */
#define BW_OUTQ_INLINE 2

/* Private to outq.c. */
struct bw__outq_chunk;
struct bw__outq_seg {
	const uint8_t *p;
	void *owner; /* struct bw_msg * (a reference) or struct bw__outq_chunk * */
	uint32_t len;
	bool is_msg;
};

/*
 * Embedded in its connection; all fields are private. The segment ring is
 * inl[] while at most BW_OUTQ_INLINE segments are queued, else heap, which
 * is freed again when the queue empties.
 */
struct bw_outq {
	const struct bw_outq_limits *lim; /* the caller's, shared by its queues */
	struct bw__outq_seg *heap;
	uint32_t cap, head, count;    /* ring of cap (a power of two) segments */
	uint32_t off;                 /* bytes of the head segment already sent */
	size_t bytes;                 /* queued, not yet consumed */
	struct bw__outq_chunk *chunk; /* where owned bytes are appended */
	struct bw__outq_seg inl[BW_OUTQ_INLINE];
};

/* Initialises an empty queue (no allocation); lim must outlive it. */
void bw_outq_init(struct bw_outq *q, const struct bw_outq_limits *lim);

/*
 * Releases every queued segment (dropping message references) and all the
 * queue's memory; the queue is empty and usable again.
 */
void bw_outq_clear(struct bw_outq *q);

/*
 * Appends a copy of p[0..len). Returns 0 (also for len 0, which queues
 * nothing), -ENOBUFS when bw_outq_bytes() + len would exceed hard_bytes,
 * -EINVAL when len exceeds BW_PACKET_SIZE_MAX, or -ENOMEM. On error the
 * queue is unchanged.
 */
int bw_outq_push_copy(struct bw_outq *q, const void *p, size_t len);

/*
 * Appends p[0..len), which lies inside m's allocation (its topic, property or
 * payload bytes), by reference: takes a new reference to m, dropped once
 * those bytes are consumed. The caller keeps its own. Returns as
 * bw_outq_push_copy() (len 0 queues nothing and takes no reference).
 */
int bw_outq_push_msg(struct bw_outq *q, struct bw_msg *m, const void *p, size_t len);

/*
 * Queues one PUBLISH of m to a subscriber: encodes only the head (fixed
 * header, topic, packet id, and in 5.0 the property length and the
 * per-subscriber properties) into owned bytes, then pushes m's shared
 * property bytes (5.0 only) and payload by reference, as one segment.
 *
 * qos is the delivered QoS (packet_id must be non-zero when qos > 0); dup
 * and retain are the flags to send. per_sub (may be NULL; ignored in 3.1.1)
 * holds the per-subscriber properties only: Message Expiry (the remaining
 * interval), Topic Alias, Subscription Identifiers; its raw is replaced by
 * m's shared property bytes. omit_topic sends an empty topic name, for an
 * alias the client already knows (per_sub must then carry the Topic Alias).
 *
 * The caller enforces the client's Maximum Packet Size: it compares
 * bw_outq_publish_size() first and skips the message when too large
 * ([MQTT-3.1.2-25]). Returns 0; -EINVAL when the packet cannot be encoded
 * (bw_outq_publish_size() returns 0); -ENOBUFS past the hard limit; -ENOMEM.
 * On error the queue is unchanged.
 */
int bw_outq_push_publish(struct bw_outq *q, struct bw_msg *m, uint8_t version, uint8_t qos,
                         uint16_t packet_id, bool dup, bool retain, const struct bw_props *per_sub,
                         bool omit_topic);

/*
 * The exact size of the packet bw_outq_push_publish() would queue with the
 * same arguments, or 0 when it cannot be encoded (too large for the wire).
 */
size_t bw_outq_publish_size(const struct bw_msg *m, uint8_t version, uint8_t qos,
                            const struct bw_props *per_sub, bool omit_topic);

/*
 * Fills iov[0..max_iov) with the queued bytes from the first unsent one, one
 * iovec a segment. Returns the number filled: 0 when the queue is empty.
 */
size_t bw_outq_iov(const struct bw_outq *q, struct iovec *iov, size_t max_iov);

/*
 * Marks the first n queued bytes sent (n <= bw_outq_bytes(); a send may stop
 * mid-segment), releasing every segment sent in full: its message reference
 * or its share of an owned chunk.
 */
void bw_outq_consume(struct bw_outq *q, size_t n);

/* Bytes queued and not yet consumed. */
size_t bw_outq_bytes(const struct bw_outq *q);

/* Whether more than soft_bytes are queued (never with soft_bytes 0). */
bool bw_outq_over_soft(const struct bw_outq *q);

/*
 * Frees the chunks cached by the calling thread for reuse by its queues. A
 * worker calls it as it exits; queues stay usable (the cache refills).
 */
void bw_outq_cache_trim(void);

#endif
