/*
 * Session message state (see session.h). The window and the queue are
 * rings that grow by doubling up to their limits, so an idle session costs
 * a few dozen bytes, not a window's worth. An acknowledgement that arrives
 * out of order leaves a hole (msg NULL) in the window ring; holes at the
 * head are popped, so the ring always starts at the oldest live delivery.
 */
#include "node/core/session.h"

#include "node/core/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Pointers first, then the counts, so a session carries no padding. */
struct bw_session {
	struct bw_session_stats stats;
	struct bw_inflight *win; /* ring: send order; msg == NULL is a hole */
	struct bw_delivery *q;   /* ring: arrival order */
	uint16_t *inbound;       /* QoS 2 packet ids awaiting PUBREL, unordered */
	void *owner;
	bw_session_observer obs;
	uint64_t *used; /* packet ids in use, once the window passes SCAN_MAX */
	struct bw_session_limits lim;
	uint32_t win_cap, win_head, win_len, win_live; /* of win */
	uint32_t q_cap, q_head, q_len;                 /* of q */
	uint32_t in_cap, in_len;                       /* of inbound */
	uint16_t next_id;
};

/*
 * Up to this many deliveries inflight, a packet id is checked against the
 * window by a scan; past it the session keeps an 8 KiB bitmap of the ids in
 * use, so a client with a large Receive Maximum costs O(1) a delivery.
 */
#define SCAN_MAX 64

struct bw_session *bw_session_new(const struct bw_session_limits *limits)
{
	struct bw_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->lim = *limits;
	s->next_id = 1;
	return s;
}

void bw_session_free(struct bw_session **sp)
{
	struct bw_session *s = *sp;
	if (!s)
		return;
	for (uint32_t i = 0; i < s->win_len; i++) {
		struct bw_inflight *f = &s->win[(s->win_head + i) & (s->win_cap - 1)];
		bw_msg_unref(&f->d.msg);
	}
	for (uint32_t i = 0; i < s->q_len; i++)
		bw_msg_unref(&s->q[(s->q_head + i) & (s->q_cap - 1)].msg);
	free(s->used);
	free(s->win);
	free(s->q);
	free(s->inbound);
	free(s);
	*sp = NULL;
}

void bw_session_set_queue_max(struct bw_session *s, uint32_t queue_max)
{
	s->lim.queue_max = queue_max;
}

void bw_session_set_inflight_max(struct bw_session *s, uint16_t inflight_max)
{
	s->lim.inflight_max = inflight_max;
}

/*
 * Doubles a ring of `size`-byte elements (at least to 4), keeping element
 * order with the head moved to index 0. Returns 0 or -ENOMEM.
 */
static int ring_grow(void **ring, size_t size, uint32_t *cap, uint32_t *head, uint32_t len)
{
	uint32_t ncap = *cap ? *cap * 2 : 4;
	char *n = malloc((size_t)ncap * size);
	if (!n)
		return -ENOMEM;
	for (uint32_t i = 0; i < len; i++)
		memcpy(n + i * size, (char *)*ring + ((*head + i) & (*cap - 1)) * size, size);
	free(*ring);
	*ring = n;
	*cap = ncap;
	*head = 0;
	return 0;
}

int bw_session_enqueue(struct bw_session *s, const struct bw_delivery *d)
{
	if (s->q_len >= s->lim.queue_max) {
		if (!s->lim.drop_oldest || s->q_len == 0) {
			s->stats.queued_dropped++;
			return -ENOBUFS;
		}
		bw_msg_unref(&s->q[s->q_head].msg);
		s->q_head = (s->q_head + 1) & (s->q_cap - 1);
		s->q_len--;
		s->stats.queued_dropped++;
	}
	if (s->q_len == s->q_cap &&
	    ring_grow((void **)&s->q, sizeof(*s->q), &s->q_cap, &s->q_head, s->q_len))
		return -ENOMEM;
	struct bw_delivery *slot = &s->q[(s->q_head + s->q_len) & (s->q_cap - 1)];
	*slot = *d;
	bw_msg_ref(slot->msg);
	s->q_len++;
	return 0;
}

uint32_t bw_session_queued(const struct bw_session *s)
{
	return s->q_len;
}

uint32_t bw_session_inflight(const struct bw_session *s)
{
	return s->win_live;
}

static struct bw_inflight *win_at(const struct bw_session *s, uint32_t i)
{
	return &s->win[(s->win_head + i) & (s->win_cap - 1)];
}

/*
 * Squeezes the holes out of a full window, keeping send order, so a client
 * that acknowledges all but its oldest delivery cannot make the ring grow:
 * it never holds more than win_live entries when it must grow.
 */
static void compact(struct bw_session *s)
{
	uint32_t out = 0;
	for (uint32_t i = 0; i < s->win_len; i++) {
		struct bw_inflight *f = win_at(s, i);
		if (f->d.msg)
			*win_at(s, out++) = *f;
	}
	s->win_len = out;
}

static void mark_id(struct bw_session *s, uint16_t id, bool in_use)
{
	if (!s->used)
		return;
	if (in_use)
		s->used[id >> 6] |= UINT64_C(1) << (id & 63);
	else
		s->used[id >> 6] &= ~(UINT64_C(1) << (id & 63));
}

static bool id_in_use(const struct bw_session *s, uint16_t id)
{
	if (s->used)
		return s->used[id >> 6] >> (id & 63) & 1;
	for (uint32_t i = 0; i < s->win_len; i++) {
		const struct bw_inflight *f = win_at(s, i);
		if (f->d.msg && f->packet_id == id)
			return true;
	}
	return false;
}

/* The next free packet id; the window is below 65535 entries, so one exists. */
static uint16_t alloc_id(struct bw_session *s)
{
	if (!s->used && s->win_live >= SCAN_MAX && (s->used = calloc(1024, sizeof(uint64_t)))) {
		for (uint32_t i = 0; i < s->win_len; i++) {
			const struct bw_inflight *f = win_at(s, i);
			if (f->d.msg)
				mark_id(s, f->packet_id, true);
		}
	}
	for (;;) {
		uint16_t id = s->next_id;
		s->next_id = id == UINT16_MAX ? 1 : (uint16_t)(id + 1);
		if (!id_in_use(s, id))
			return id;
	}
}

bool bw_session_next(struct bw_session *s, uint64_t now_ms, struct bw_delivery *d,
                     const struct bw_inflight **out)
{
	*out = NULL;
	if (s->q_len == 0)
		return false;
	struct bw_delivery *head = &s->q[s->q_head];
	if (head->qos > 0) {
		if (s->win_live >= s->lim.inflight_max)
			return false;
		if (s->win_len == s->win_cap && s->win_live < s->win_len)
			compact(s);
		else if (s->win_len == s->win_cap &&
		         ring_grow((void **)&s->win, sizeof(*s->win), &s->win_cap, &s->win_head,
		                   s->win_len))
			return false;
	}
	*d = *head;
	s->q_head = (s->q_head + 1) & (s->q_cap - 1);
	s->q_len--;
	if (d->qos == 0)
		return true; /* the queue's reference passes to the caller */

	struct bw_inflight *f = win_at(s, s->win_len);
	f->d = *d; /* the queue's reference passes to the window */
	f->packet_id = alloc_id(s);
	mark_id(s, f->packet_id, true);
	f->state = BW_INFLIGHT_PUBLISHED;
	f->sent_at_ms = now_ms;
	s->win_len++;
	s->win_live++;
	*d = f->d;
	*out = f;
	if (s->obs && f->d.seq)
		s->obs(s->owner, BW_SESSION_SENT, f);
	return true;
}

static struct bw_inflight *find(struct bw_session *s, uint16_t id)
{
	for (uint32_t i = 0; i < s->win_len; i++) {
		struct bw_inflight *f = win_at(s, i);
		if (f->d.msg && f->packet_id == id)
			return f;
	}
	return NULL;
}

/* Completes f, then pops the holes at the head of the window. */
static void complete(struct bw_session *s, struct bw_inflight *f)
{
	if (s->obs && f->d.seq)
		s->obs(s->owner, BW_SESSION_DONE, f);
	mark_id(s, f->packet_id, false);
	bw_msg_unref(&f->d.msg);
	s->win_live--;
	while (s->win_len > 0 && s->win[s->win_head].d.msg == NULL) {
		s->win_head = (s->win_head + 1) & (s->win_cap - 1);
		s->win_len--;
	}
}

int bw_session_puback(struct bw_session *s, uint16_t packet_id)
{
	struct bw_inflight *f = find(s, packet_id);
	if (!f || f->d.qos != 1)
		return -ENOENT;
	complete(s, f);
	return 0;
}

int bw_session_pubrec(struct bw_session *s, uint16_t packet_id, uint64_t now_ms)
{
	struct bw_inflight *f = find(s, packet_id);
	if (!f || f->d.qos != 2)
		return -ENOENT;
	/* A repeated PUBREC (after our PUBREL was lost) is answered again. */
	bool first = f->state != BW_INFLIGHT_RELEASED;
	f->state = BW_INFLIGHT_RELEASED;
	f->sent_at_ms = now_ms;
	if (first && s->obs && f->d.seq)
		s->obs(s->owner, BW_SESSION_PUBREC, f);
	return 0;
}

int bw_session_pubcomp(struct bw_session *s, uint16_t packet_id)
{
	struct bw_inflight *f = find(s, packet_id);
	if (!f || f->d.qos != 2 || f->state != BW_INFLIGHT_RELEASED)
		return -ENOENT;
	complete(s, f);
	return 0;
}

const struct bw_inflight *bw_session_inflight_at(const struct bw_session *s, uint32_t *cursor)
{
	while (*cursor < s->win_len) {
		const struct bw_inflight *f = win_at(s, (*cursor)++);
		if (f->d.msg)
			return f;
	}
	return NULL;
}

int bw_session_inbound_qos2(struct bw_session *s, uint16_t packet_id)
{
	for (uint32_t i = 0; i < s->in_len; i++) {
		if (s->inbound[i] == packet_id)
			return 0;
	}
	if (s->in_len >= s->lim.inbound_max)
		return -ENOBUFS;
	if (s->in_len == s->in_cap) {
		uint32_t ncap = s->in_cap ? s->in_cap * 2 : 4;
		uint16_t *n = realloc(s->inbound, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->inbound = n;
		s->in_cap = ncap;
	}
	s->inbound[s->in_len++] = packet_id;
	return 1;
}

int bw_session_inbound_release(struct bw_session *s, uint16_t packet_id)
{
	for (uint32_t i = 0; i < s->in_len; i++) {
		if (s->inbound[i] == packet_id) {
			s->inbound[i] = s->inbound[--s->in_len];
			return 0;
		}
	}
	return -ENOENT;
}

const struct bw_delivery *bw_session_queued_at(const struct bw_session *s, uint32_t i)
{
	return i < s->q_len ? &s->q[(s->q_head + i) & (s->q_cap - 1)] : NULL;
}

uint32_t bw_session_inbound_ids(const struct bw_session *s, const uint16_t **ids)
{
	*ids = s->inbound;
	return s->in_len;
}

uint16_t bw_session_next_id(const struct bw_session *s)
{
	return s->next_id;
}

int bw_session_restore(struct bw_session *s, const struct bw_delivery *d, uint16_t packet_id,
                       uint8_t state, uint64_t sent_at_ms, uint16_t next_id)
{
	if (next_id)
		s->next_id = next_id;
	if (!d)
		return 0;
	if (d->qos == 0 || packet_id == 0 || state > BW_INFLIGHT_RELEASED ||
	    (state == BW_INFLIGHT_RELEASED && d->qos != 2) || id_in_use(s, packet_id))
		return -EINVAL;
	if (s->win_len == s->win_cap &&
	    ring_grow((void **)&s->win, sizeof(*s->win), &s->win_cap, &s->win_head, s->win_len))
		return -ENOMEM;
	struct bw_inflight *f = win_at(s, s->win_len);
	f->d = *d;
	bw_msg_ref(f->d.msg);
	f->packet_id = packet_id;
	f->state = state;
	f->sent_at_ms = sent_at_ms;
	s->win_len++;
	s->win_live++;
	if (!s->used && s->win_live >= SCAN_MAX && (s->used = calloc(1024, sizeof(uint64_t)))) {
		for (uint32_t i = 0; i < s->win_len; i++) {
			const struct bw_inflight *g = win_at(s, i);
			if (g->d.msg)
				mark_id(s, g->packet_id, true);
		}
	}
	mark_id(s, packet_id, true);
	return 0;
}

const struct bw_session_stats *bw_session_stats(const struct bw_session *s)
{
	return &s->stats;
}

void bw_session_set_owner(struct bw_session *s, void *owner)
{
	s->owner = owner;
}

void bw_session_set_observer(struct bw_session *s, bw_session_observer fn)
{
	s->obs = fn;
}

void *bw_session_owner(const struct bw_session *s)
{
	return s->owner;
}
