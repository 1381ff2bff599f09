/*
 * The output queue (see outq.h). Segments live in a ring, inline in the
 * queue while few, on the heap while many. Owned bytes are appended to the
 * queue's current chunk; consecutive owned pushes into one chunk extend one
 * segment, so an ack followed by a PUBLISH head costs one iovec. A chunk
 * counts the segments pointing into it and goes back to the thread's cache
 * when the last is sent, so neither an idle connection nor a steady stream
 * of acks needs malloc. Owned pushes larger than a chunk get a chunk of
 * their own, freed as soon as it is sent.
 */
#include "node/core/outq.h"

#include "node/core/msg.h"
#include "proto/mqtt/codec.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Allocation size of a standard chunk, and how many a thread keeps. */
#define CHUNK_SIZE 4096
#define CACHE_MAX  32

struct bw__outq_chunk {
	struct bw__outq_chunk *next; /* in the thread's cache */
	uint32_t cap;                /* bytes of data[] */
	uint32_t used;               /* bytes of data[] handed out */
	uint32_t nseg;               /* queued segments pointing into data[] */
	uint8_t data[];
};

#define CHUNK_CAP (CHUNK_SIZE - sizeof(struct bw__outq_chunk))

/*
 * The calling thread's spare standard chunks. A queue is used by one thread,
 * but one cleared elsewhere puts its chunks in that thread's cache, which is
 * as good.
 */
static _Thread_local struct bw__outq_chunk *cache;
static _Thread_local unsigned cache_n;

/* A chunk with at least len free bytes, or NULL (out of memory). */
static struct bw__outq_chunk *chunk_get(size_t len)
{
	struct bw__outq_chunk *c;

	if (len <= CHUNK_CAP && cache) {
		c = cache;
		cache = c->next;
		cache_n--;
	} else {
		size_t cap = len <= CHUNK_CAP ? CHUNK_CAP : len;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = (uint32_t)cap;
	}
	c->next = NULL;
	c->used = 0;
	c->nseg = 0;
	return c;
}

static void chunk_put(struct bw__outq_chunk *c)
{
	if (c->cap == CHUNK_CAP && cache_n < CACHE_MAX) {
		c->next = cache;
		cache = c;
		cache_n++;
		return;
	}
	free(c);
}

void bw_outq_cache_trim(void)
{
	while (cache) {
		struct bw__outq_chunk *c = cache;
		cache = c->next;
		free(c);
	}
	cache_n = 0;
}

/* ---- the segment ring --------------------------------------------------- */

static struct bw__outq_seg *seg_at(struct bw_outq *q, uint32_t i)
{
	struct bw__outq_seg *r = q->heap ? q->heap : q->inl;
	return &r[(q->head + i) & (q->cap - 1)];
}

static const struct bw__outq_seg *cseg_at(const struct bw_outq *q, uint32_t i)
{
	const struct bw__outq_seg *r = q->heap ? q->heap : q->inl;
	return &r[(q->head + i) & (q->cap - 1)];
}

/* Makes room for n more segments. Returns 0 or -ENOMEM (queue unchanged). */
static int reserve_segs(struct bw_outq *q, uint32_t n)
{
	if (q->count + n <= q->cap)
		return 0;
	uint32_t cap = q->cap;
	while (cap < q->count + n) {
		if (cap > UINT32_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	struct bw__outq_seg *h = malloc((size_t)cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->count; i++)
		h[i] = *seg_at(q, i);
	free(q->heap);
	q->heap = h;
	q->cap = cap;
	q->head = 0;
	return 0;
}

/* Back to the inline ring; only when nothing is queued. */
static void ring_reset(struct bw_outq *q)
{
	assert(q->count == 0);
	free(q->heap);
	q->heap = NULL;
	q->cap = BW_OUTQ_INLINE;
	q->head = 0;
	q->off = 0;
}

/* Releases the head segment (its reference or its share of a chunk). */
static void pop(struct bw_outq *q)
{
	struct bw__outq_seg *s = seg_at(q, 0);

	if (s->is_msg) {
		struct bw_msg *m = s->owner;
		bw_msg_unref(&m);
	} else {
		struct bw__outq_chunk *c = s->owner;
		if (--c->nseg == 0) {
			if (c == q->chunk)
				q->chunk = NULL;
			chunk_put(c);
		}
	}
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->off = 0;
	if (q->count == 0)
		ring_reset(q);
}

void bw_outq_init(struct bw_outq *q, const struct bw_outq_limits *lim)
{
	memset(q, 0, sizeof(*q));
	q->lim = lim;
	q->cap = BW_OUTQ_INLINE;
}

void bw_outq_clear(struct bw_outq *q)
{
	while (q->count)
		pop(q);
	/* A push that failed after growing the ring may have left it on the heap. */
	ring_reset(q);
	if (q->lim->pool)
		*q->lim->pool -= q->bytes;
	q->bytes = 0;
	assert(q->chunk == NULL);
}

/* ---- pushing ------------------------------------------------------------ */

/* Whether len more bytes stay within the hard limit. */
static bool fits(const struct bw_outq *q, size_t len)
{
	size_t hard = q->lim->hard_bytes ? q->lim->hard_bytes : SIZE_MAX;
	return len <= hard && q->bytes <= hard - len;
}

/*
 * Where the next len owned bytes go, in *cp's data; NULL when out of memory.
 * Call after reserve_segs(), and always follow with owned_commit().
 */
static uint8_t *owned_space(struct bw_outq *q, size_t len, struct bw__outq_chunk **cp)
{
	struct bw__outq_chunk *c = q->chunk;

	if (len > CHUNK_CAP) {
		c = chunk_get(len); /* its own chunk, never appended to */
	} else if (!c || c->cap - c->used < len) {
		/* The old chunk lives on until its segments are sent. */
		c = chunk_get(len);
		if (c)
			q->chunk = c;
	}
	if (!c)
		return NULL;
	*cp = c;
	return c->data + c->used;
}

static void owned_commit(struct bw_outq *q, struct bw__outq_chunk *c, uint8_t *dst, size_t len)
{
	struct bw__outq_seg *t = q->count ? seg_at(q, q->count - 1) : NULL;

	c->used += (uint32_t)len;
	q->bytes += len;
	if (q->lim->pool)
		*q->lim->pool += len;
	if (t && !t->is_msg && t->owner == c && t->p + t->len == dst) {
		t->len += (uint32_t)len;
		return;
	}
	*seg_at(q, q->count) = (struct bw__outq_seg){ dst, c, (uint32_t)len, false };
	q->count++;
	c->nseg++;
}

static void msg_commit(struct bw_outq *q, struct bw_msg *m, const uint8_t *p, size_t len)
{
	*seg_at(q, q->count) = (struct bw__outq_seg){ p, bw_msg_ref(m), (uint32_t)len, true };
	q->count++;
	q->bytes += len;
	if (q->lim->pool)
		*q->lim->pool += len;
}

int bw_outq_push_copy(struct bw_outq *q, const void *p, size_t len)
{
	struct bw__outq_chunk *c;

	if (len == 0)
		return 0;
	if (!fits(q, len))
		return -ENOBUFS;
	if (len > BW_PACKET_SIZE_MAX)
		return -EINVAL;
	if (reserve_segs(q, 1))
		return -ENOMEM;
	uint8_t *dst = owned_space(q, len, &c);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, p, len);
	owned_commit(q, c, dst, len);
	return 0;
}

int bw_outq_push_msg(struct bw_outq *q, struct bw_msg *m, const void *p, size_t len)
{
	const uint8_t *b = p;

	if (len == 0)
		return 0;
	/* Inside the one allocation: topic, NUL, props, payload. */
	assert(b >= m->topic.p && b + len <= m->payload.p + m->payload.len);
	if (!fits(q, len))
		return -ENOBUFS;
	if (reserve_segs(q, 1))
		return -ENOMEM;
	msg_commit(q, m, b, len);
	return 0;
}

/* Fills *pkt with the PUBLISH to send; returns its size or 0. */
static size_t publish_view(struct bw_packet *pkt, const struct bw_msg *m, uint8_t version,
                           uint8_t qos, uint16_t packet_id, bool dup, bool retain,
                           const struct bw_props *per_sub, bool omit_topic)
{
	struct bw_publish *pub = &pkt->publish;

	memset(pkt, 0, sizeof(*pkt));
	pkt->type = BW_PUBLISH;
	pub->qos = qos;
	pub->dup = dup;
	pub->retain = retain;
	pub->packet_id = packet_id;
	if (!omit_topic)
		pub->topic = m->topic;
	if (version == BW_MQTT_5) {
		if (per_sub)
			pub->props = *per_sub;
		pub->props.raw = m->props;
	}
	pub->payload = m->payload;
	return bw_codec_size(pkt, version);
}

size_t bw_outq_publish_size(const struct bw_msg *m, uint8_t version, uint8_t qos,
                            const struct bw_props *per_sub, bool omit_topic)
{
	struct bw_packet pkt;

	return publish_view(&pkt, m, version, qos, 1, false, false, per_sub, omit_topic);
}

int bw_outq_push_publish(struct bw_outq *q, struct bw_msg *m, uint8_t version, uint8_t qos,
                         uint16_t packet_id, bool dup, bool retain, const struct bw_props *per_sub,
                         bool omit_topic)
{
	struct bw_packet pkt;
	struct bw__outq_chunk *c;

	assert(qos <= 2 && (qos == 0 || packet_id != 0));
	size_t total =
	        publish_view(&pkt, m, version, qos, packet_id, dup, retain, per_sub, omit_topic);
	if (total == 0)
		return -EINVAL;
	/* The tail is contiguous in m: property bytes (5.0), then payload. */
	assert(m->props.p + m->props.len == m->payload.p);
	bool v5 = version == BW_MQTT_5;
	const uint8_t *tail = v5 ? m->props.p : m->payload.p;
	size_t tail_len = (size_t)m->payload.len + (v5 ? m->props.len : 0);
	size_t head = total - tail_len;

	if (!fits(q, total))
		return -ENOBUFS;
	if (reserve_segs(q, 2))
		return -ENOMEM;
	/*
	 * A small tail is copied after its head: consecutive small messages
	 * then make one segment a chunk, so a send carries hundreds of them
	 * instead of 32 (two iovecs each), and no reference is taken.
	 */
	bool copy = tail_len <= BW_OUTQ_COPY_MAX;
	uint8_t *dst = owned_space(q, copy ? total : head, &c);
	if (!dst)
		return -ENOMEM;
	int n = bw_codec_publish_head(&pkt.publish, version, dst, head);
	assert(n == (int)head);
	(void)n;
	if (copy) {
		if (tail_len)
			memcpy(dst + head, tail, tail_len);
		owned_commit(q, c, dst, total);
		return 0;
	}
	owned_commit(q, c, dst, head);
	msg_commit(q, m, tail, tail_len);
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

size_t bw_outq_iov(const struct bw_outq *q, struct iovec *iov, size_t max_iov)
{
	size_t n;

	for (n = 0; n < q->count && n < max_iov; n++) {
		const struct bw__outq_seg *s = cseg_at(q, (uint32_t)n);
		size_t skip = n == 0 ? q->off : 0;
		iov[n].iov_base = (void *)(s->p + skip);
		iov[n].iov_len = s->len - skip;
	}
	return n;
}

void bw_outq_consume(struct bw_outq *q, size_t n)
{
	assert(n <= q->bytes);
	while (n) {
		size_t left = seg_at(q, 0)->len - q->off;
		if (n < left) {
			q->off += (uint32_t)n;
			q->bytes -= n;
			if (q->lim->pool)
				*q->lim->pool -= n;
			return;
		}
		n -= left;
		q->bytes -= left;
		if (q->lim->pool)
			*q->lim->pool -= left;
		pop(q);
	}
}

size_t bw_outq_bytes(const struct bw_outq *q)
{
	return q->bytes;
}

bool bw_outq_over_soft(const struct bw_outq *q)
{
	return q->lim->soft_bytes && q->bytes > q->lim->soft_bytes;
}
