/*
 * Unit tests for the output queue (node/core/outq.h): iovec filling over
 * owned and message segments, partial sends at every byte offset, message
 * references released exactly when their bytes are sent, the soft and hard
 * limits, ring growth and wrap-around, large copies, bw_outq_push_publish()
 * against bw_codec_encode() of the same PUBLISH in 3.1.1 and 5.0, and
 * bw_outq_clear().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/msg.h"
#include "node/core/outq.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"

static const struct bw_outq_limits unlimited = { .soft_bytes = 0 };

static struct bw_str S(const char *s) {
	return (struct bw_str){ (const uint8_t *)s, (uint16_t)strlen(s) };
}

static struct bw_msg *
msg(const char *topic, const char *payload)
{
	struct bw_msg *m =
	        bw_msg_new(topic, strlen(topic), NULL, payload, strlen(payload), 1, false, 0);
	assert_non_null(m);
	return m;
}

/* Copies what bw_outq_iov() offers (at most max bytes) into out. */
static size_t gather(const struct bw_outq *q, uint8_t *out, size_t max)
{
	struct iovec iov[64];
	size_t n = bw_outq_iov(q, iov, 64), len = 0;

	for (size_t i = 0; i < n && len < max; i++) {
		size_t k = iov[i].iov_len < max - len ? iov[i].iov_len : max - len;
		assert_true(iov[i].iov_len > 0);
		memcpy(out + len, iov[i].iov_base, k);
		len += k;
	}
	return len;
}

/* Sends everything in sends of at most `step` bytes; returns bytes sent. */
static size_t drain(struct bw_outq *q, uint8_t *out, size_t step)
{
	size_t len = 0;

	while (bw_outq_bytes(q)) {
		size_t before = bw_outq_bytes(q);
		size_t n = gather(q, out + len, step);
		assert_true(n > 0);
		bw_outq_consume(q, n);
		assert_int_equal(bw_outq_bytes(q), before - n);
		len += n;
	}
	struct iovec iov[1];
	assert_int_equal(bw_outq_iov(q, iov, 1), 0);
	return len;
}

static void test_empty(void **state)
{
	struct bw_outq q;
	struct iovec iov[4];

	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_bytes(&q), 0);
	assert_int_equal(bw_outq_iov(&q, iov, 4), 0);
	assert_false(bw_outq_over_soft(&q));
	assert_int_equal(bw_outq_push_copy(&q, "x", 0), 0);
	struct bw_msg *m = msg("t", "abc");
	assert_int_equal(bw_outq_push_msg(&q, m, m->payload.p, 0), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	assert_int_equal(bw_outq_bytes(&q), 0);
	bw_outq_consume(&q, 0);
	bw_outq_clear(&q);
	bw_outq_clear(&q);
	bw_msg_unref(&m);
}

/* Owned pushes in a row share a segment; a message segment splits them. */
static void test_iov_mixed(void **state)
{
	struct bw_outq q;
	struct iovec iov[8];
	struct bw_msg *m = msg("topic", "PAYLOAD");

	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_copy(&q, "AB", 2), 0);
	assert_int_equal(bw_outq_push_copy(&q, "CD", 2), 0);
	assert_int_equal(bw_outq_push_msg(&q, m, m->payload.p, m->payload.len), 0);
	assert_int_equal(bw_outq_push_copy(&q, "EF", 2), 0);
	assert_int_equal(bw_outq_push_msg(&q, m, m->topic.p, m->topic.len), 0);
	assert_int_equal(bw_msg_refs(m), 3);
	assert_int_equal(bw_outq_bytes(&q), 4 + 7 + 2 + 5);

	assert_int_equal(bw_outq_iov(&q, iov, 8), 4);
	assert_int_equal(iov[0].iov_len, 4);
	assert_memory_equal(iov[0].iov_base, "ABCD", 4);
	assert_ptr_equal(iov[1].iov_base, m->payload.p); /* by reference */
	assert_int_equal(iov[1].iov_len, 7);
	assert_memory_equal(iov[2].iov_base, "EF", 2);
	assert_ptr_equal(iov[3].iov_base, m->topic.p);
	assert_int_equal(bw_outq_iov(&q, iov, 2), 2);

	/* Partly sent: the first iovec starts at the first unsent byte. */
	bw_outq_consume(&q, 3);
	assert_int_equal(bw_outq_iov(&q, iov, 8), 4);
	assert_int_equal(iov[0].iov_len, 1);
	assert_memory_equal(iov[0].iov_base, "D", 1);
	bw_outq_consume(&q, 1 + 3);
	assert_int_equal(bw_outq_iov(&q, iov, 8), 3);
	assert_int_equal(iov[0].iov_len, 4);
	assert_memory_equal(iov[0].iov_base, "LOAD", 4);
	assert_int_equal(bw_msg_refs(m), 3);
	bw_outq_consume(&q, 4);
	assert_int_equal(bw_msg_refs(m), 2);
	bw_outq_clear(&q);
	assert_int_equal(bw_msg_refs(m), 1);
	assert_int_equal(bw_outq_bytes(&q), 0);
	bw_msg_unref(&m);
}

/* "head:" + a message payload + ":tail": three segments, 22 bytes. */
static void three(struct bw_outq *q, struct bw_msg *m)
{
	bw_outq_init(q, &unlimited);
	assert_int_equal(bw_outq_push_copy(q, "head:", 5), 0);
	assert_int_equal(bw_outq_push_msg(q, m, m->payload.p, m->payload.len), 0);
	assert_int_equal(bw_outq_push_copy(q, ":tail", 5), 0);
	struct iovec iov[4];
	assert_int_equal(bw_outq_iov(q, iov, 4), 3);
}

/*
 * Sends cut at every pair of byte offsets (a send of 0 included) reproduce
 * exactly the concatenated bytes, and the message reference goes exactly
 * when the last payload byte has been consumed.
 */
static void test_partial_every_offset(void **state)
{
	static const char want[] = "head:shared-bytes:tail";
	const size_t total = sizeof(want) - 1, msg_end = 5 + 12;
	struct bw_msg *m = msg("t", "shared-bytes");
	struct bw_outq q;
	uint8_t out[64];

	for (size_t a = 0; a <= total; a++) {
		for (size_t b = a; b <= total; b++) {
			three(&q, m);
			size_t len = gather(&q, out, a);
			assert_int_equal(len, a);
			bw_outq_consume(&q, a);
			assert_int_equal(bw_msg_refs(m), a >= msg_end ? 1 : 2);
			len += gather(&q, out + len, b - a);
			assert_int_equal(len, b);
			bw_outq_consume(&q, b - a);
			assert_int_equal(bw_msg_refs(m), b >= msg_end ? 1 : 2);
			assert_int_equal(bw_outq_bytes(&q), total - b);
			len += drain(&q, out + len, SIZE_MAX);
			assert_int_equal(len, total);
			assert_memory_equal(out, want, total);
			assert_int_equal(bw_msg_refs(m), 1);
			bw_outq_clear(&q);
		}
	}

	/* One byte at a time. */
	three(&q, m);
	for (size_t i = 0; i < total; i++) {
		assert_int_equal(gather(&q, out + i, 1), 1);
		bw_outq_consume(&q, 1);
		assert_int_equal(bw_msg_refs(m), i + 1 >= msg_end ? 1 : 2);
	}
	assert_memory_equal(out, want, total);
	bw_outq_clear(&q);
	bw_msg_unref(&m);
}

static void test_limits(void **state)
{
	const struct bw_outq_limits lim = { .soft_bytes = 10, .hard_bytes = 20 };
	static const uint8_t z[32];
	struct bw_msg *m = msg("t", "0123456789");
	struct bw_outq q;

	bw_outq_init(&q, &lim);
	assert_int_equal(bw_outq_push_copy(&q, z, 10), 0);
	assert_false(bw_outq_over_soft(&q)); /* at the soft limit, not over */
	assert_int_equal(bw_outq_push_copy(&q, z, 1), 0);
	assert_true(bw_outq_over_soft(&q));
	assert_int_equal(bw_outq_push_copy(&q, z, 9), 0);
	assert_int_equal(bw_outq_bytes(&q), 20); /* exactly the hard limit */

	/* Refused, and nothing changes. */
	assert_int_equal(bw_outq_push_copy(&q, z, 1), -ENOBUFS);
	assert_int_equal(bw_outq_push_msg(&q, m, m->payload.p, 1), -ENOBUFS);
	assert_int_equal(bw_outq_push_publish(&q, m, BW_MQTT_311, 0, 0, false, false, NULL, false),
	                 -ENOBUFS);
	assert_int_equal(bw_msg_refs(m), 1);
	assert_int_equal(bw_outq_bytes(&q), 20);
	struct iovec iov[4];
	assert_int_equal(bw_outq_iov(&q, iov, 4), 1);

	/* Sending makes room again. */
	bw_outq_consume(&q, 15);
	assert_false(bw_outq_over_soft(&q));
	assert_int_equal(bw_outq_push_msg(&q, m, m->payload.p, 10), 0);
	assert_true(bw_outq_over_soft(&q));
	assert_int_equal(bw_outq_push_copy(&q, z, 6), -ENOBUFS);
	assert_int_equal(bw_outq_push_copy(&q, z, SIZE_MAX), -ENOBUFS);
	assert_int_equal(bw_msg_refs(m), 2);
	bw_outq_clear(&q);
	assert_int_equal(bw_msg_refs(m), 1);

	/* A packet larger than the wire allows is refused outright. */
	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_copy(&q, z, (size_t)BW_PACKET_SIZE_MAX + 1), -EINVAL);
	bw_msg_unref(&m);
}

/*
 * Many segments: the ring spills to the heap, wraps while pushes and sends
 * interleave, and goes back inline when empty. A copy larger than a chunk
 * gets its own. Every byte comes out in order.
 */
static void test_many_segments(void **state)
{
	enum { N = 3000 };
	struct bw_msg *m = msg("t", "MSG");
	struct bw_outq q;
	uint8_t *want = malloc(N * 8 + 20000), *out = malloc(N * 8 + 20000);
	uint8_t big[9000];
	size_t wlen = 0, olen = 0;
	unsigned seed = 1;

	assert_non_null(want);
	assert_non_null(out);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	bw_outq_init(&q, &unlimited);
	for (int i = 0; i < N; i++) {
		uint8_t ack[4] = { 0x40, 2, (uint8_t)(i >> 8), (uint8_t)i };
		assert_int_equal(bw_outq_push_copy(&q, ack, 4), 0);
		memcpy(want + wlen, ack, 4);
		wlen += 4;
		assert_int_equal(bw_outq_push_msg(&q, m, m->payload.p, 3), 0);
		memcpy(want + wlen, "MSG", 3);
		wlen += 3;
		if (i == N / 2) {
			assert_int_equal(bw_outq_push_copy(&q, big, sizeof(big)), 0);
			memcpy(want + wlen, big, sizeof(big));
			wlen += sizeof(big);
		}
		if (i % 3 == 0) { /* send a pseudo-random amount */
			seed = seed * 1103515245 + 12345;
			size_t n = gather(&q, out + olen, (seed >> 16) % 40);
			bw_outq_consume(&q, n);
			olen += n;
		}
		assert_int_equal(bw_outq_bytes(&q), wlen - olen);
	}
	olen += drain(&q, out + olen, 100);
	assert_int_equal(olen, wlen);
	assert_memory_equal(out, want, wlen);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_outq_clear(&q);
	free(want);
	free(out);
	bw_msg_unref(&m);
}

/* After the first, an ack reuses the chunk the previous one was sent from. */
static void test_chunk_reuse(void **state)
{
	struct bw_outq q;
	struct iovec iov[2];
	const uint8_t ack[4] = { 0x40, 2, 0, 1 };

	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_copy(&q, ack, 4), 0);
	assert_int_equal(bw_outq_iov(&q, iov, 2), 1);
	void *first = iov[0].iov_base;
	bw_outq_consume(&q, 4);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(bw_outq_push_copy(&q, ack, 4), 0);
		assert_int_equal(bw_outq_iov(&q, iov, 2), 1);
		assert_ptr_equal(iov[0].iov_base, first);
		bw_outq_consume(&q, 4);
	}
	bw_outq_clear(&q);
}

/* A 5.0 message with every shared property and two user properties. */
static struct bw_msg *msg5(void)
{
	uint8_t users[64];
	uint32_t ulen = 0;
	struct bw_props p = { 0 };

	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("a"), S("1")), 0);
	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("b"), S("22")), 0);
	p.has = BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT) | BW_PROP_BIT(BW_PROP_CONTENT_TYPE) |
	        BW_PROP_BIT(BW_PROP_RESPONSE_TOPIC) | BW_PROP_BIT(BW_PROP_CORRELATION_DATA);
	p.payload_format = 1;
	p.content_type = S("text/plain");
	p.response_topic = S("re/sp");
	p.correlation_data = (struct bw_bin){ (const uint8_t *)"cd", 2 };
	p.raw = (struct bw_bin){ users, ulen };
	struct bw_msg *m = bw_msg_new("sensors/42/temp", 15, &p, "21.5C", 5, 2, true, 0);
	assert_non_null(m);
	return m;
}

/*
 * Queues one PUBLISH (after an ack, to check it shares the ack's segment)
 * and checks the bytes equal bw_codec_encode() of the whole packet and
 * decode back; *pkt gets the decoded PUBLISH, which points into out.
 */
static void check_publish(struct bw_msg *m, uint8_t version, uint8_t qos, uint16_t id, bool dup,
                          bool retain, const struct bw_props *per, bool omit, uint8_t *out,
                          struct bw_packet *pkt)
{
	static const uint8_t ack[4] = { 0x40, 2, 0x12, 0x34 };
	uint8_t want[2048];
	struct bw_packet full = { .type = BW_PUBLISH };
	struct bw_outq q;
	struct iovec iov[4];
	unsigned refs = bw_msg_refs(m);

	full.publish.qos = qos;
	full.publish.packet_id = id;
	full.publish.dup = dup;
	full.publish.retain = retain;
	if (!omit)
		full.publish.topic = m->topic;
	if (version == BW_MQTT_5) {
		if (per)
			full.publish.props = *per;
		full.publish.props.raw = m->props;
	}
	full.publish.payload = m->payload;
	int n = bw_codec_encode(&full, version, want, sizeof(want));
	assert_true(n > 0);

	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_copy(&q, ack, 4), 0);
	assert_int_equal(bw_outq_push_publish(&q, m, version, qos, id, dup, retain, per, omit), 0);
	assert_int_equal(bw_outq_publish_size(m, version, qos, per, omit), (size_t)n);
	assert_int_equal(bw_outq_bytes(&q), 4 + (size_t)n);
	const uint8_t *tail = version == BW_MQTT_5 ? m->props.p : m->payload.p;
	size_t tail_len = m->payload.len + (version == BW_MQTT_5 ? m->props.len : 0);
	if (tail_len <= BW_OUTQ_COPY_MAX) {
		/* A small tail is copied: ack, head and tail are one segment. */
		assert_int_equal(bw_outq_iov(&q, iov, 4), 1);
		assert_int_equal(bw_msg_refs(m), refs);
	} else {
		/* The ack and the head share a segment; the tail is the message's. */
		assert_int_equal(bw_outq_iov(&q, iov, 4), 2);
		assert_ptr_equal(iov[1].iov_base, tail);
		assert_int_equal(bw_msg_refs(m), refs + 1);
	}

	uint8_t all[2100];
	assert_int_equal(drain(&q, all, SIZE_MAX), 4 + (size_t)n);
	assert_memory_equal(all, ack, 4);
	assert_memory_equal(all + 4, want, (size_t)n);
	assert_int_equal(bw_msg_refs(m), refs);
	bw_outq_clear(&q);

	memcpy(out, want, (size_t)n);
	assert_int_equal(bw_codec_decode(out, (size_t)n, version, pkt, NULL), 0);
	assert_int_equal(pkt->type, BW_PUBLISH);
	assert_int_equal(pkt->publish.qos, qos);
	assert_int_equal(pkt->publish.packet_id, qos ? id : 0);
	assert_int_equal(pkt->publish.dup, dup);
	assert_int_equal(pkt->publish.retain, retain);
	assert_int_equal(pkt->publish.payload.len, m->payload.len);
	assert_memory_equal(pkt->publish.payload.p, m->payload.p, m->payload.len);
	if (omit) {
		assert_int_equal(pkt->publish.topic.len, 0);
	} else {
		assert_int_equal(pkt->publish.topic.len, m->topic.len);
		assert_memory_equal(pkt->publish.topic.p, m->topic.p, m->topic.len);
	}
}

static void test_publish_311(void **state)
{
	struct bw_msg *m = msg5();
	struct bw_props per = { .has = BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY), .message_expiry = 9 };
	struct bw_packet pkt;
	uint8_t out[512];

	/* 3.1.1 carries no properties: per_sub and the shared bytes are left out. */
	check_publish(m, BW_MQTT_311, 0, 0, false, false, &per, false, out, &pkt);
	check_publish(m, BW_MQTT_311, 1, 77, true, true, NULL, false, out, &pkt);
	check_publish(m, BW_MQTT_311, 2, 65535, false, true, &per, false, out, &pkt);
	assert_int_equal(bw_outq_publish_size(m, BW_MQTT_311, 1, NULL, false), 2 + 2 + 15 + 2 + 5);
	bw_msg_unref(&m);
}

static void test_publish_5(void **state)
{
	static const uint32_t ids[2] = { 1, 300000 };
	struct bw_msg *m = msg5();
	struct bw_props per = { 0 };
	struct bw_packet pkt;
	uint8_t out[512];
	struct bw_str k, v;
	uint32_t off = 0, id;

	per.has = BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY) | BW_PROP_BIT(BW_PROP_TOPIC_ALIAS);
	per.message_expiry = 42;
	per.topic_alias = 5;
	per.sub_ids = ids;
	per.sub_id_count = 2;
	check_publish(m, BW_MQTT_5, 1, 1000, false, false, &per, false, out, &pkt);
	const struct bw_props *d = &pkt.publish.props;
	assert_int_equal(d->message_expiry, 42);
	assert_int_equal(d->topic_alias, 5);
	assert_int_equal(d->payload_format, 1);
	assert_int_equal(d->content_type.len, 10);
	assert_memory_equal(d->content_type.p, "text/plain", 10);
	assert_memory_equal(d->response_topic.p, "re/sp", 5);
	assert_memory_equal(d->correlation_data.p, "cd", 2);
	assert_int_equal(d->user_count, 2);
	assert_true(bw_props_next_user(d, &off, &k, &v));
	assert_memory_equal(k.p, "a", 1);
	assert_true(bw_props_next_user(d, &off, &k, &v));
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.p, "22", 2);
	off = 0;
	assert_true(bw_props_next_sub_id(d, &off, &id));
	assert_int_equal(id, 1);
	assert_true(bw_props_next_sub_id(d, &off, &id));
	assert_int_equal(id, 300000);
	assert_false(bw_props_next_sub_id(d, &off, &id));

	/* The alias is known: the topic is left out. */
	check_publish(m, BW_MQTT_5, 2, 9, true, true, &per, true, out, &pkt);
	assert_int_equal(pkt.publish.props.topic_alias, 5);

	/* No per-subscriber properties at all: only the shared ones. */
	check_publish(m, BW_MQTT_5, 0, 0, false, true, NULL, false, out, &pkt);
	assert_int_equal(pkt.publish.props.has & BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY), 0);
	assert_int_equal(pkt.publish.props.user_count, 2);
	bw_msg_unref(&m);

	/* A message with no properties and an empty payload: no tail at all. */
	struct bw_outq q;
	struct iovec iov[2];
	m = bw_msg_new("e", 1, NULL, NULL, 0, 0, false, 0);
	assert_non_null(m);
	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_publish(&q, m, BW_MQTT_5, 0, 0, false, false, NULL, false),
	                 0);
	assert_int_equal(bw_outq_iov(&q, iov, 2), 1);
	assert_int_equal(bw_outq_bytes(&q), 2 + 3 + 1);
	assert_memory_equal(iov[0].iov_base,
	                    "\x30\x04\x00\x01"
	                    "e\x00",
	                    6);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_outq_clear(&q);
	bw_msg_unref(&m);
}

/* Clear drops every reference, mid-segment included, and the queue works on. */
static void test_clear_releases(void **state)
{
	char big[BW_OUTQ_COPY_MAX + 100]; /* a tail the queue references, not copies */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct bw_msg *a = msg("a", "aaaa"), *b = msg("b", big), *c = msg("c", "cc");
	struct bw_outq q;
	uint8_t out[2048];

	bw_outq_init(&q, &unlimited);
	assert_int_equal(bw_outq_push_publish(&q, a, BW_MQTT_5, 1, 1, false, false, NULL, false),
	                 0);
	assert_int_equal(bw_outq_push_publish(&q, b, BW_MQTT_5, 1, 2, false, false, NULL, false),
	                 0);
	assert_int_equal(bw_outq_push_msg(&q, c, c->payload.p, 2), 0);
	assert_int_equal(bw_outq_push_msg(&q, c, c->topic.p, 1), 0);
	assert_int_equal(bw_outq_push_publish(&q, b, BW_MQTT_311, 0, 0, false, false, NULL, false),
	                 0);
	assert_int_equal(bw_msg_refs(b), 3);
	assert_int_equal(bw_msg_refs(c), 3);
	/* Into the middle of b's first tail. */
	size_t n = bw_outq_publish_size(a, BW_MQTT_5, 1, NULL, false) + 10;
	assert_int_equal(gather(&q, out, n), n);
	bw_outq_consume(&q, n);
	assert_int_equal(bw_msg_refs(a), 1);
	bw_outq_clear(&q);
	assert_int_equal(bw_outq_bytes(&q), 0);
	assert_int_equal(bw_msg_refs(b), 1);
	assert_int_equal(bw_msg_refs(c), 1);

	assert_int_equal(bw_outq_push_msg(&q, c, c->payload.p, 2), 0);
	assert_int_equal(drain(&q, out, 1), 2);
	assert_memory_equal(out, "cc", 2);
	assert_int_equal(bw_msg_refs(c), 1);
	bw_outq_clear(&q);
	bw_msg_unref(&a);
	bw_msg_unref(&b);
	bw_msg_unref(&c);
}

/* Queues sharing a pool keep it equal to the sum of their bytes. */
static void test_pool_counts_every_queue(void **state)
{
	size_t pool = 0;
	struct bw_outq_limits lim = { .pool = &pool };
	struct bw_outq a, b;
	struct bw_msg *m = msg("p", "payload");

	(void)state;
	bw_outq_init(&a, &lim);
	bw_outq_init(&b, &lim);
	assert_int_equal(bw_outq_push_copy(&a, "12345", 5), 0);
	assert_int_equal(bw_outq_push_publish(&b, m, BW_MQTT_311, 0, 0, false, false, NULL, false),
	                 0);
	assert_int_equal(pool, bw_outq_bytes(&a) + bw_outq_bytes(&b));
	bw_outq_consume(&a, 2);
	bw_outq_consume(&b, bw_outq_bytes(&b));
	assert_int_equal(pool, 3);
	bw_outq_clear(&a);
	assert_int_equal(pool, 0);
	bw_outq_clear(&b);
	bw_msg_unref(&m);
}

static int trim(void **state)
{
	bw_outq_cache_trim();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_empty, trim),
		cmocka_unit_test_teardown(test_pool_counts_every_queue, trim),
		cmocka_unit_test_teardown(test_iov_mixed, trim),
		cmocka_unit_test_teardown(test_partial_every_offset, trim),
		cmocka_unit_test_teardown(test_limits, trim),
		cmocka_unit_test_teardown(test_many_segments, trim),
		cmocka_unit_test_teardown(test_chunk_reuse, trim),
		cmocka_unit_test_teardown(test_publish_311, trim),
		cmocka_unit_test_teardown(test_publish_5, trim),
		cmocka_unit_test_teardown(test_clear_releases, trim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
