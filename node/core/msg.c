/*
 * The shared, refcounted application message (see msg.h): construction in
 * one allocation, the atomic reference count, and expiry arithmetic.
 *
 * Memory order of the reference count:
 *
 * - bw_msg_ref() is relaxed. Only a thread that already holds a reference may
 *   take another, so the message cannot be freed under it and the increment
 *   orders nothing.
 * - bw_msg_unref() is acq_rel. Consider two holders:
 *   1. thread A reads m->payload, then drops its reference (release);
 *   2. thread B drops the last reference. Its decrement reads the value A's
 *      wrote (the decrements form one release sequence), so with acquire
 *      A's reads happen before B's free().
 *   The classic form is a release decrement plus an acquire fence taken only
 *   by the last holder. On x86 both are one `lock xadd`, and ThreadSanitizer
 *   does not model standalone fences, so acq_rel on every decrement is used.
 */
#include "node/core/msg.h"

#include "proto/mqtt/props.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The single-valued properties every subscriber gets verbatim. */
#define SHARED_MASK                                                                                \
	(BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT) | BW_PROP_BIT(BW_PROP_CONTENT_TYPE) |                 \
	 BW_PROP_BIT(BW_PROP_RESPONSE_TOPIC) | BW_PROP_BIT(BW_PROP_CORRELATION_DATA))

/* The part of src that is shared: its single-valued shared properties only. */
static void shared_view(const struct bw_props *src, struct bw_props *out)
{
	memset(out, 0, sizeof(*out));
	out->has = src->has & SHARED_MASK;
	out->payload_format = src->payload_format;
	out->content_type = src->content_type;
	out->response_topic = src->response_topic;
	out->correlation_data = src->correlation_data;
}

struct bw_msg *bw_msg_new(const void *topic, size_t topic_len, const struct bw_props *props,
                          const void *payload, size_t payload_len, uint8_t qos, bool retain,
                          uint64_t now_ms)
{
	struct bw_props shared;
	uint64_t props_len = 0;

	if (topic_len == 0 || qos > 2) {
		errno = EINVAL;
		return NULL;
	}
	if (props) {
		shared_view(props, &shared);
		props_len = (uint64_t)bw_props_size(&shared) + bw_props_user_size(props) +
		            props->raw.len;
	}
	/* Each bound alone keeps the sum below from overflowing. */
	if (topic_len > UINT16_MAX || payload_len > BW_VARINT_MAX || props_len > BW_VARINT_MAX ||
	    topic_len + props_len + payload_len > BW_VARINT_MAX) {
		errno = EMSGSIZE;
		return NULL;
	}

	struct bw_msg *m = malloc(sizeof(*m) + topic_len + 1 + props_len + payload_len);
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	atomic_init(&m->refs, 1);
	m->qos = qos;
	m->retain = retain;
	m->expires_at_ms = 0;
	m->tenant = 0;
	m->publisher = NULL;

	uint8_t *b = m->data;
	memcpy(b, topic, topic_len);
	b[topic_len] = '\0';
	m->topic = (struct bw_str){ b, (uint16_t)topic_len };
	b += topic_len + 1;

	m->props = (struct bw_bin){ b, (uint32_t)props_len };
	if (props) {
		b += bw_props_encode(&shared, b);
		b += bw_props_copy_user(props, b);
		if (props->raw.len)
			memcpy(b, props->raw.p, props->raw.len);
		b += props->raw.len;
		assert(b == m->props.p + props_len);
		if (props->has & BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY)) {
			/* At most 2^32 s * 1000 ahead: saturate rather than wrap. */
			uint64_t ahead = (uint64_t)props->message_expiry * 1000;
			uint64_t at = now_ms > UINT64_MAX - ahead ? UINT64_MAX : now_ms + ahead;
			m->expires_at_ms = at ? at : 1;
		}
	}

	m->payload = (struct bw_bin){ b, (uint32_t)payload_len };
	if (payload_len)
		memcpy(b, payload, payload_len);
	return m;
}

struct bw_msg *bw_msg_from_publish(const struct bw_publish *pub, struct bw_str topic,
                                   uint64_t now_ms)
{
	struct bw_str t = topic.len ? topic : pub->topic;

	return bw_msg_new(t.p, t.len, &pub->props, pub->payload.p, pub->payload.len, pub->qos,
	                  pub->retain, now_ms);
}

struct bw_msg *bw_msg_ref(struct bw_msg *m)
{
	unsigned old = atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);

	assert(old > 0 && old < UINT_MAX);
	(void)old;
	return m;
}

void bw_msg_unref(struct bw_msg **mp)
{
	struct bw_msg *m = *mp;

	if (!m)
		return;
	*mp = NULL;
	unsigned old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
	assert(old > 0);
	if (old == 1)
		free(m);
}

unsigned bw_msg_refs(const struct bw_msg *m)
{
	/* C11 atomic_load takes a pointer to non-const; the load does not write. */
	return atomic_load_explicit((atomic_uint *)&m->refs, memory_order_relaxed);
}

bool bw_msg_remaining_expiry(const struct bw_msg *m, uint64_t now_ms, uint32_t *seconds)
{
	uint32_t s = 0;

	if (m->expires_at_ms) {
		if (now_ms > m->expires_at_ms)
			return false;
		/* Rounded up; fits: the deadline was set at most 2^32 - 1 s ahead. */
		uint64_t left = (m->expires_at_ms - now_ms + 999) / 1000;
		s = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	}
	if (seconds)
		*seconds = s;
	return true;
}
