/*
 * Unit tests for the shared application message (node/core/msg.h):
 * construction copies everything that must outlive the receive buffer, the
 * shared property bytes are exactly the single-valued shared properties plus
 * bw_props_copy_user() (per-subscriber ones left out), topic override for
 * alias-resolved topics, the size limits, the atomic reference count under
 * several threads, and the Message Expiry arithmetic.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "node/core/msg.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"

static struct bw_str S(const char *s) {
	return (struct bw_str){ (const uint8_t *)s, (uint16_t)strlen(s) };
}

#define HAS(id) BW_PROP_BIT(id)

/* Receive buffer and the PUBLISH decoded in place from it. */
struct rx {
	uint8_t buf[1024];
	size_t len;
	struct bw_packet pkt;
};

/*
 * Encodes a 5.0 PUBLISH carrying every property a client may send with one
 * (shared ones, per-subscriber ones and two user properties) into r->buf and
 * decodes it back in place.
 */
static void rx_publish(struct rx *r, const char *topic, bool alias)
{
	uint8_t users[128];
	uint32_t ulen = 0;
	struct bw_packet p = { .type = BW_PUBLISH };

	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("k1"), S("v1")), 0);
	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("k2"), S("value 2")), 0);
	p.publish.qos = 1;
	p.publish.retain = true;
	p.publish.packet_id = 7;
	p.publish.topic = S(topic);
	p.publish.payload = (struct bw_bin){ (const uint8_t *)"hello payload", 13 };
	struct bw_props *pr = &p.publish.props;
	pr->has = HAS(BW_PROP_PAYLOAD_FORMAT) | HAS(BW_PROP_MESSAGE_EXPIRY) |
	          HAS(BW_PROP_CONTENT_TYPE) | HAS(BW_PROP_RESPONSE_TOPIC) |
	          HAS(BW_PROP_CORRELATION_DATA);
	if (alias) {
		pr->has |= HAS(BW_PROP_TOPIC_ALIAS);
		pr->topic_alias = 3;
	}
	pr->payload_format = 1;
	pr->message_expiry = 60;
	pr->content_type = S("text/plain");
	pr->response_topic = S("reply/here");
	pr->correlation_data = (struct bw_bin){ (const uint8_t *)"\x00\x01\x02", 3 };
	pr->raw = (struct bw_bin){ users, ulen };

	int n = bw_codec_encode(&p, BW_MQTT_5, r->buf, sizeof(r->buf));
	assert_true(n > 0);
	r->len = (size_t)n;
	assert_int_equal(bw_codec_decode(r->buf, r->len, BW_MQTT_5, &r->pkt, NULL), 0);
	assert_int_equal(r->pkt.publish.props.user_count, 2);
}

/* The bytes a message built from props must share: shared fields + users. */
static uint32_t expected_shared(const struct bw_props *src, uint8_t *out)
{
	struct bw_props s = { 0 };

	s.has = src->has & (HAS(BW_PROP_PAYLOAD_FORMAT) | HAS(BW_PROP_CONTENT_TYPE) |
	                    HAS(BW_PROP_RESPONSE_TOPIC) | HAS(BW_PROP_CORRELATION_DATA));
	s.payload_format = src->payload_format;
	s.content_type = src->content_type;
	s.response_topic = src->response_topic;
	s.correlation_data = src->correlation_data;
	uint32_t n = bw_props_encode(&s, out);
	return n + bw_props_copy_user(src, out + n);
}

static void test_from_publish_copies(void **state)
{
	struct rx r;
	uint8_t want[256];

	rx_publish(&r, "a/b/c", false);
	uint32_t want_len = expected_shared(&r.pkt.publish.props, want);
	struct bw_msg *m = bw_msg_from_publish(&r.pkt.publish, (struct bw_str){ 0 }, 1000);
	assert_non_null(m);

	/* The receive buffer is reused: the message must not notice. */
	memset(r.buf, 0xEE, sizeof(r.buf));
	memset(&r.pkt, 0xEE, sizeof(r.pkt));

	assert_int_equal(bw_msg_refs(m), 1);
	assert_int_equal(m->qos, 1);
	assert_true(m->retain);
	assert_null(m->tenant);
	assert_null(m->publisher);
	assert_int_equal(m->topic.len, 5);
	assert_memory_equal(m->topic.p, "a/b/c", 5);
	assert_int_equal(m->topic.p[5], '\0');
	assert_int_equal(m->payload.len, 13);
	assert_memory_equal(m->payload.p, "hello payload", 13);
	assert_int_equal(m->expires_at_ms, 1000 + 60 * 1000);
	assert_int_equal(m->props.len, want_len);
	assert_memory_equal(m->props.p, want, want_len);
	/* One allocation: props then payload, contiguous. */
	assert_ptr_equal(m->props.p + m->props.len, m->payload.p);
	bw_msg_unref(&m);
	assert_null(m);
}

/* The shared bytes decode to the shared properties and nothing else. */
static void test_shared_props_decode(void **state)
{
	struct rx r;
	struct bw_props d;
	struct bw_str k, v;
	uint32_t off = 0;

	rx_publish(&r, "t", true);
	struct bw_msg *m = bw_msg_from_publish(&r.pkt.publish, S("x/y"), 0);
	assert_non_null(m);
	memset(r.buf, 0, sizeof(r.buf));

	assert_int_equal(bw_props_decode(m->props.p, m->props.len, BW_PUBLISH, &d, NULL), 0);
	assert_int_equal(d.has, HAS(BW_PROP_PAYLOAD_FORMAT) | HAS(BW_PROP_CONTENT_TYPE) |
	                                HAS(BW_PROP_RESPONSE_TOPIC) |
	                                HAS(BW_PROP_CORRELATION_DATA));
	assert_int_equal(d.payload_format, 1);
	assert_memory_equal(d.content_type.p, "text/plain", 10);
	assert_memory_equal(d.response_topic.p, "reply/here", 10);
	assert_int_equal(d.correlation_data.len, 3);
	assert_memory_equal(d.correlation_data.p, "\x00\x01\x02", 3);
	assert_int_equal(d.user_count, 2);
	assert_true(bw_props_next_user(&d, &off, &k, &v));
	assert_memory_equal(k.p, "k1", 2);
	assert_memory_equal(v.p, "v1", 2);
	assert_true(bw_props_next_user(&d, &off, &k, &v));
	assert_memory_equal(k.p, "k2", 2);
	assert_int_equal(v.len, 7);
	assert_false(bw_props_next_user(&d, &off, &k, &v));
	/* The alias-resolved topic replaces the received one. */
	assert_int_equal(m->topic.len, 3);
	assert_memory_equal(m->topic.p, "x/y", 4);
	bw_msg_unref(&m);
}

/* A 5.0 PUBLISH with an empty topic and an alias: the override is used. */
static void test_topic_override_empty(void **state)
{
	struct bw_publish pub = { 0 };

	pub.props.has = HAS(BW_PROP_TOPIC_ALIAS);
	pub.props.topic_alias = 1;
	pub.payload = (struct bw_bin){ (const uint8_t *)"p", 1 };
	struct bw_msg *m = bw_msg_from_publish(&pub, S("resolved/topic"), 5);
	assert_non_null(m);
	assert_int_equal(m->topic.len, 14);
	assert_memory_equal(m->topic.p, "resolved/topic", 14);
	assert_int_equal(m->props.len, 0);
	assert_int_equal(m->expires_at_ms, 0);
	bw_msg_unref(&m);

	/* Without an override there is no topic: refused. */
	errno = 0;
	assert_null(bw_msg_from_publish(&pub, (struct bw_str){ 0 }, 5));
	assert_int_equal(errno, EINVAL);
}

/* bw_msg_new() with a hand-built struct: raw (pre-encoded users) appended. */
static void test_new_raw_props(void **state)
{
	uint8_t users[64], want[128];
	uint32_t ulen = 0;
	struct bw_props p = { 0 };

	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("src"), S("will")), 0);
	p.has = HAS(BW_PROP_CONTENT_TYPE) | HAS(BW_PROP_WILL_DELAY);
	p.content_type = S("json");
	p.will_delay = 30; /* not a message property: ignored */
	p.raw = (struct bw_bin){ users, ulen };
	uint32_t n = expected_shared(&p, want);
	memcpy(want + n, users, ulen);
	n += ulen;

	char topic[] = "will/topic", payload[] = "gone";
	struct bw_msg *m = bw_msg_new(topic, strlen(topic), &p, payload, 4, 2, false, 0);
	assert_non_null(m);
	memset(users, 0, sizeof(users));
	memset(topic, 0, sizeof(topic));
	memset(payload, 0, sizeof(payload));
	assert_int_equal(m->qos, 2);
	assert_false(m->retain);
	assert_int_equal(m->props.len, n);
	assert_memory_equal(m->props.p, want, n);
	assert_memory_equal(m->topic.p, "will/topic", 10);
	assert_memory_equal(m->payload.p, "gone", 4);
	bw_msg_unref(&m);
}

/* No properties, empty payload: both tails empty and still contiguous. */
static void test_new_plain(void **state)
{
	struct bw_msg *m = bw_msg_new("$SYS/x", 6, NULL, NULL, 0, 0, true, 0);

	assert_non_null(m);
	assert_int_equal(m->props.len, 0);
	assert_int_equal(m->payload.len, 0);
	assert_ptr_equal(m->props.p, m->payload.p);
	assert_int_equal(m->expires_at_ms, 0);
	assert_ptr_equal(bw_msg_ref(m), m);
	assert_int_equal(bw_msg_refs(m), 2);
	struct bw_msg *a = m;
	bw_msg_unref(&a);
	assert_null(a);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
	bw_msg_unref(&m); /* NULL: nothing */
	assert_null(m);
}

static void test_limits(void **state)
{
	static uint8_t big[UINT16_MAX + 1];
	const uint8_t pl[1] = { 0 };

	memset(big, 'a', sizeof(big));
	struct bw_msg *m = bw_msg_new(big, UINT16_MAX, NULL, pl, 1, 0, false, 0);
	assert_non_null(m);
	assert_int_equal(m->topic.len, UINT16_MAX);
	bw_msg_unref(&m);

	errno = 0;
	assert_null(bw_msg_new(big, UINT16_MAX + 1, NULL, pl, 1, 0, false, 0));
	assert_int_equal(errno, EMSGSIZE);
	/* Sizes are checked before any byte is read. */
	errno = 0;
	assert_null(bw_msg_new("t", 1, NULL, pl, (size_t)BW_VARINT_MAX + 1, 0, false, 0));
	assert_int_equal(errno, EMSGSIZE);
	errno = 0;
	assert_null(bw_msg_new(big, 100, NULL, pl, BW_VARINT_MAX - 50, 0, false, 0));
	assert_int_equal(errno, EMSGSIZE);
	errno = 0;
	assert_null(bw_msg_new("t", 0, NULL, pl, 1, 0, false, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(bw_msg_new("t", 1, NULL, pl, 1, 3, false, 0));
	assert_int_equal(errno, EINVAL);
}

#define THREADS 4
#define ROUNDS  100000

static void *hammer(void *arg)
{
	struct bw_msg *m = arg;

	for (int i = 0; i < ROUNDS; i++) {
		struct bw_msg *r = bw_msg_ref(m);
		/* Read the shared bytes while holding the reference. */
		if (r->payload.p[0] != 'x')
			abort();
		bw_msg_unref(&r);
	}
	/* Drop the reference the main thread gave this thread. */
	bw_msg_unref(&m);
	return NULL;
}

/*
 * Several threads take and drop references concurrently; each also drops one
 * handed to it. The count ends exactly at the main thread's one, whose unref
 * frees (ASan reports a leak or a double free otherwise).
 */
static void test_refcount_threads(void **state)
{
	pthread_t t[THREADS];
	struct bw_msg *m = bw_msg_new("t", 1, NULL, "xyz", 3, 0, false, 0);

	assert_non_null(m);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, bw_msg_ref(m)), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
	assert_null(m);
}

static struct bw_msg *with_expiry(uint32_t seconds, uint64_t now_ms)
{
	struct bw_props p = { 0 };

	p.has = HAS(BW_PROP_MESSAGE_EXPIRY);
	p.message_expiry = seconds;
	struct bw_msg *m = bw_msg_new("t", 1, &p, NULL, 0, 1, false, now_ms);
	assert_non_null(m);
	/* Message Expiry is per subscriber: not in the shared bytes. */
	assert_int_equal(m->props.len, 0);
	return m;
}

static void rem_is(const struct bw_msg *m, uint64_t now, bool ok, uint32_t want)
{
	uint32_t s = 12345;

	assert_int_equal(bw_msg_remaining_expiry(m, now, &s), ok);
	if (ok)
		assert_int_equal(s, want);
}

static void test_expiry(void **state)
{
	struct bw_msg *m = with_expiry(10, 1000);

	assert_int_equal(m->expires_at_ms, 11000);
	rem_is(m, 1000, true, 10);
	rem_is(m, 1001, true, 10); /* 9.999 s left: rounded up */
	rem_is(m, 2000, true, 9);
	rem_is(m, 2001, true, 9);
	rem_is(m, 10999, true, 1);
	rem_is(m, 11000, true, 0); /* the last millisecond forwards 0 */
	rem_is(m, 11001, false, 0);
	rem_is(m, UINT64_MAX, false, 0);
	assert_true(bw_msg_remaining_expiry(m, 0, NULL));
	bw_msg_unref(&m);

	/* Never expires: true, 0 seconds, whatever the clock. */
	m = bw_msg_new("t", 1, NULL, NULL, 0, 0, false, 5);
	rem_is(m, 0, true, 0);
	rem_is(m, UINT64_MAX, true, 0);
	bw_msg_unref(&m);

	/* An interval of 0 at clock 0 must not read as "never". */
	m = with_expiry(0, 0);
	assert_int_equal(m->expires_at_ms, 1);
	rem_is(m, 2, false, 0);
	bw_msg_unref(&m);

	/* The largest interval. */
	m = with_expiry(UINT32_MAX, 7);
	assert_int_equal(m->expires_at_ms, 7 + (uint64_t)UINT32_MAX * 1000);
	rem_is(m, 7, true, UINT32_MAX);
	rem_is(m, 8, true, UINT32_MAX);
	rem_is(m, 1007, true, UINT32_MAX - 1);
	bw_msg_unref(&m);

	/* A deadline past the clock's range saturates. */
	m = with_expiry(UINT32_MAX, UINT64_MAX - 10);
	assert_int_equal(m->expires_at_ms, UINT64_MAX);
	rem_is(m, UINT64_MAX, true, 0);
	bw_msg_unref(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_publish_copies),
		cmocka_unit_test(test_shared_props_decode),
		cmocka_unit_test(test_topic_override_empty),
		cmocka_unit_test(test_new_raw_props),
		cmocka_unit_test(test_new_plain),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_refcount_threads),
		cmocka_unit_test(test_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
