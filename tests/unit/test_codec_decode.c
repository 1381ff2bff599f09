/*
 * Unit tests for decoding well-formed MQTT packets (proto/mqtt/codec.h):
 * hand-written wire vectors of every control packet in MQTT 3.1.1 (level 4)
 * and 5.0 (level 5), each framed with bw_codec_frame() and decoded with
 * bw_codec_decode(), checking every field of the resulting view, the
 * SUBSCRIBE and UNSUBSCRIBE walkers, user properties walked with
 * bw_props_next_user(), and that views point into the input buffer. Refusals
 * are in test_codec_errors.c; UTF-8, topic and property-block rules have
 * their own files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/mqtt/codec.h"
#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/props.h"
#include "proto/mqtt/topic.h"

#define V3 BW_MQTT_311
#define V5 BW_MQTT_5

#define HAS(id) BW_PROP_BIT(id)

/* A packet as a compound literal and its size, for dec(). */
#define PKT(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

#define DEC(ver, pkt, ...) dec(__LINE__, ver, pkt, PKT(__VA_ARGS__))

/*
 * Frames b[0..n) and decodes it in `version`: both must return 0, the frame
 * must cover exactly n bytes and the packet type must match the first byte.
 */
static void dec(int line, uint8_t version, struct bw_packet *pkt, const uint8_t *b, size_t n)
{
	struct bw_frame f;
	const char *why = NULL;
	int rc;

	rc = bw_codec_frame(b, n, BW_PACKET_SIZE_MAX, &f, &why);
	if (rc != 0)
		fail_msg("line %d: bw_codec_frame = %d (why: %s)", line, rc, why ? why : "(null)");
	if (f.size != n)
		fail_msg("line %d: frame size %u, vector has %zu bytes", line, f.size, n);
	if (f.type != b[0] >> 4 || f.flags != (b[0] & 0x0F))
		fail_msg("line %d: frame type/flags %u/%u", line, f.type, f.flags);
	memset(pkt, 0xA5, sizeof(*pkt));
	rc = bw_codec_decode(b, f.size, version, pkt, &why);
	if (rc != 0)
		fail_msg("line %d: bw_codec_decode = %d (why: %s)", line, rc, why ? why : "(null)");
	if (pkt->type != f.type || pkt->flags != f.flags)
		fail_msg("line %d: packet type/flags %u/%u", line, pkt->type, pkt->flags);
}

static void str_is(int line, struct bw_str v, const char *s)
{
	if (v.len != strlen(s) || (v.len && memcmp(v.p, s, v.len) != 0))
		fail_msg("line %d: string is \"%.*s\", expected \"%s\"", line, (int)v.len,
		         v.p ? (const char *)v.p : "", s);
}

static void bin_is(int line, struct bw_bin v, const void *p, size_t n)
{
	if (v.len != n || (n && memcmp(v.p, p, n) != 0))
		fail_msg("line %d: binary of %u bytes differs from the %zu expected", line, v.len,
		         n);
}

/* True when the view [p, p + n) lies inside the buffer [b, b + len). */
static bool inside(const uint8_t *p, size_t n, const uint8_t *b, size_t len)
{
	return p >= b && p + n <= b + len;
}

#define STR_IS(v, s)    str_is(__LINE__, v, s)
#define BIN_IS(v, p, n) bin_is(__LINE__, v, p, n)

/* ---- CONNECT ------------------------------------------------------------ */

/* Exactly what mosquitto_pub -V mqttv311 sends with a will and credentials. */
static void test_connect_311_mosquitto(void **state)
{
	static const uint8_t b[] = {
		0x10, 0x28, 0x00, 0x04, 'M',  'Q',  'T', 'T', 0x04, 0xc6, 0x00, 0x3c, 0x00, 0x08,
		's',  'm',  'o',  'k',  'e',  '3',  '1', '1', 0x00, 0x03, 'w',  '/',  't',  0x00,
		0x03, 'b',  'y',  'e',  0x00, 0x04, 'u', 's', 'e',  'r',  0x00, 0x02, 'p',  'w',
	};
	struct bw_packet pkt;

	/* A CONNECT carries its own version whatever the caller says. */
	dec(__LINE__, V5, &pkt, b, sizeof(b));
	assert_int_equal(pkt.type, BW_CONNECT);
	const struct bw_connect *c = &pkt.connect;
	assert_int_equal(c->version, BW_MQTT_311);
	assert_true(c->clean_start);
	assert_true(c->will);
	assert_int_equal(c->will_qos, 0);
	assert_false(c->will_retain);
	assert_true(c->has_username);
	assert_true(c->has_password);
	assert_int_equal(c->keep_alive, 60);
	assert_int_equal(c->props.has, 0);
	assert_int_equal(c->will_props.has, 0);
	STR_IS(c->client_id, "smoke311");
	STR_IS(c->will_topic, "w/t");
	BIN_IS(c->will_payload, "bye", 3);
	STR_IS(c->username, "user");
	BIN_IS(c->password, "pw", 2);
	/* Views point into the buffer: decoding copies nothing. */
	assert_ptr_equal(c->client_id.p, b + 14);
	assert_ptr_equal(c->password.p, b + sizeof(b) - 2);
	assert_true(inside(c->will_payload.p, c->will_payload.len, b, sizeof(b)));
	assert_true(inside(c->username.p, c->username.len, b, sizeof(b)));
}

/* 5.0 with Session Expiry and Receive Maximum, and a QoS 1 retained will. */
static void test_connect_5_will_props(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x10, 0x2D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x2E, 0x00, 0x1E,
	    /* properties */
	    0x08, 0x11, 0x00, 0x00, 0x00, 0x78, 0x21, 0x00, 0x0A,
	    /* client id */
	    0x00, 0x02, 'c', '5',
	    /* will properties: Will Delay 5, Content Type "text" */
	    0x0C, 0x18, 0x00, 0x00, 0x00, 0x05, 0x03, 0x00, 0x04, 't', 'e', 'x', 't',
	    /* will topic, will payload */
	    0x00, 0x02, 'w', 't', 0x00, 0x03, 0x01, 0x02, 0x03);
	const struct bw_connect *c = &pkt.connect;
	assert_int_equal(c->version, BW_MQTT_5);
	assert_true(c->clean_start);
	assert_true(c->will);
	assert_int_equal(c->will_qos, 1);
	assert_true(c->will_retain);
	assert_false(c->has_username);
	assert_false(c->has_password);
	assert_int_equal(c->keep_alive, 30);
	assert_int_equal(c->props.has, HAS(BW_PROP_SESSION_EXPIRY) | HAS(BW_PROP_RECEIVE_MAX));
	assert_int_equal(c->props.session_expiry, 120);
	assert_int_equal(c->props.receive_max, 10);
	assert_int_equal(c->props.block.len, 8);
	STR_IS(c->client_id, "c5");
	assert_int_equal(c->will_props.has, HAS(BW_PROP_WILL_DELAY) | HAS(BW_PROP_CONTENT_TYPE));
	assert_int_equal(c->will_props.will_delay, 5);
	STR_IS(c->will_props.content_type, "text");
	assert_int_equal(c->will_props.block.len, 12);
	STR_IS(c->will_topic, "wt");
	BIN_IS(c->will_payload, "\x01\x02\x03", 3);
	assert_int_equal(c->username.len, 0);
	assert_int_equal(c->password.len, 0);
}

/* 5.0 without a will: the will fields stay empty. */
static void test_connect_5_no_will(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x10, 0x14, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x05,
	    0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 'n', 'w');
	const struct bw_connect *c = &pkt.connect;
	assert_int_equal(c->version, BW_MQTT_5);
	assert_true(c->clean_start);
	assert_false(c->will);
	assert_int_equal(c->will_qos, 0);
	assert_false(c->will_retain);
	assert_int_equal(c->keep_alive, 0);
	assert_int_equal(c->props.has, HAS(BW_PROP_SESSION_EXPIRY));
	assert_int_equal(c->props.session_expiry, UINT32_MAX);
	STR_IS(c->client_id, "nw");
	assert_int_equal(c->will_props.has, 0);
	assert_int_equal(c->will_topic.len, 0);
	assert_int_equal(c->will_payload.len, 0);
	assert_false(c->has_username);
	assert_false(c->has_password);
}

/* The smallest CONNECT: empty client id, clean session, no flags else. */
static void test_connect_minimal(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00,
	    0x00);
	const struct bw_connect *c = &pkt.connect;
	assert_int_equal(c->version, BW_MQTT_311);
	assert_true(c->clean_start);
	assert_false(c->will);
	assert_false(c->has_username);
	assert_false(c->has_password);
	assert_int_equal(c->keep_alive, 0);
	assert_int_equal(c->client_id.len, 0);
	assert_int_equal(c->props.has, 0);
}

/* MQTT 5.0 3.1.2.9 dropped the 3.1.1 rule that a password needs a user name. */
static void test_connect_5_password_only(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x42, 0x00, 0x0A, 0x00,
	    0x00, 0x01, 'p', 0x00, 0x02, 'x', 'y');
	const struct bw_connect *c = &pkt.connect;
	assert_int_equal(c->version, BW_MQTT_5);
	assert_true(c->clean_start);
	assert_false(c->has_username);
	assert_true(c->has_password);
	assert_int_equal(c->keep_alive, 10);
	assert_int_equal(c->props.has, 0);
	assert_int_equal(c->props.block.len, 0);
	STR_IS(c->client_id, "p");
	assert_int_equal(c->username.len, 0);
	BIN_IS(c->password, "xy", 2);
}

/* ---- CONNACK ------------------------------------------------------------ */

static void test_connack_311(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x20, 0x02, 0x01, 0x00);
	assert_int_equal(pkt.type, BW_CONNACK);
	assert_true(pkt.connack.session_present);
	assert_int_equal(pkt.connack.code, BW_CONNACK_311_ACCEPTED);
	assert_int_equal(pkt.connack.props.has, 0);

	/* A refusal without session present. */
	DEC(V3, &pkt, 0x20, 0x02, 0x00, 0x05);
	assert_false(pkt.connack.session_present);
	assert_int_equal(pkt.connack.code, BW_CONNACK_311_NOT_AUTHORIZED);
}

static void test_connack_5(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x20, 0x11, 0x00, 0x00, 0x0E,
	    /* Assigned Client Identifier "abc" */
	    0x12, 0x00, 0x03, 'a', 'b', 'c',
	    /* Server Keep Alive 60, Maximum QoS 1, Topic Alias Maximum 5 */
	    0x13, 0x00, 0x3C, 0x24, 0x01, 0x22, 0x00, 0x05);
	const struct bw_connack *c = &pkt.connack;
	assert_false(c->session_present);
	assert_int_equal(c->code, BW_RC_SUCCESS);
	assert_int_equal(c->props.has, HAS(BW_PROP_ASSIGNED_CLIENT_ID) |
	                                       HAS(BW_PROP_SERVER_KEEP_ALIVE) |
	                                       HAS(BW_PROP_MAX_QOS) | HAS(BW_PROP_TOPIC_ALIAS_MAX));
	STR_IS(c->props.assigned_client_id, "abc");
	assert_int_equal(c->props.server_keep_alive, 60);
	assert_int_equal(c->props.max_qos, 1);
	assert_int_equal(c->props.topic_alias_max, 5);

	/* A 5.0 refusal with an empty property block. */
	DEC(V5, &pkt, 0x20, 0x03, 0x00, 0x87, 0x00);
	assert_int_equal(pkt.connack.code, BW_RC_NOT_AUTHORIZED);
	assert_int_equal(pkt.connack.props.has, 0);
}

/* ---- PUBLISH ------------------------------------------------------------ */

static void test_publish_311_qos0(void **state)
{
	static const uint8_t b[] = { 0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i' };
	struct bw_packet pkt;

	dec(__LINE__, V3, &pkt, b, sizeof(b));
	const struct bw_publish *p = &pkt.publish;
	assert_int_equal(pkt.type, BW_PUBLISH);
	assert_int_equal(p->qos, 0);
	assert_false(p->dup);
	assert_false(p->retain);
	assert_int_equal(p->packet_id, 0);
	STR_IS(p->topic, "a/b");
	BIN_IS(p->payload, "hi", 2);
	assert_int_equal(p->props.has, 0);
	assert_ptr_equal(p->topic.p, b + 4);
	assert_ptr_equal(p->payload.p, b + 7);
	assert_true(inside(p->payload.p, p->payload.len, b, sizeof(b)));
}

static void test_publish_311_qos1_retain(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x33, 0x06, 0x00, 0x01, 't', 0x00, 0x07, 'x');
	const struct bw_publish *p = &pkt.publish;
	assert_int_equal(pkt.flags, 0x3);
	assert_int_equal(p->qos, 1);
	assert_false(p->dup);
	assert_true(p->retain);
	assert_int_equal(p->packet_id, 7);
	STR_IS(p->topic, "t");
	BIN_IS(p->payload, "x", 1);
}

/* QoS 2 with DUP and a zero-length payload. */
static void test_publish_311_qos2_dup(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x3C, 0x05, 0x00, 0x01, 't', 0x12, 0x34);
	const struct bw_publish *p = &pkt.publish;
	assert_int_equal(p->qos, 2);
	assert_true(p->dup);
	assert_false(p->retain);
	assert_int_equal(p->packet_id, 0x1234);
	STR_IS(p->topic, "t");
	assert_int_equal(p->payload.len, 0);
}

/* 5.0 QoS 1 with request/response properties and two user properties. */
static void test_publish_5_props(void **state)
{
	static const uint8_t b[] = {
		0x32,
		0x2F,
		0x00,
		0x03,
		't',
		'/',
		'1',
		0x00,
		0x0A,
		0x25,
		/* Message Expiry 60, Content Type "js" */
		0x02,
		0x00,
		0x00,
		0x00,
		0x3C,
		0x03,
		0x00,
		0x02,
		'j',
		's',
		/* Response Topic "r/q", Correlation Data CA FE */
		0x08,
		0x00,
		0x03,
		'r',
		'/',
		'q',
		0x09,
		0x00,
		0x02,
		0xCA,
		0xFE,
		/* User Properties k=v and k2=v2 */
		0x26,
		0x00,
		0x01,
		'k',
		0x00,
		0x01,
		'v',
		0x26,
		0x00,
		0x02,
		'k',
		'2',
		0x00,
		0x02,
		'v',
		'2',
		/* payload */
		'P',
		'L',
	};
	struct bw_packet pkt;
	struct bw_str k, v;
	uint32_t off = 0;

	dec(__LINE__, V5, &pkt, b, sizeof(b));
	const struct bw_publish *p = &pkt.publish;
	assert_int_equal(p->qos, 1);
	assert_false(p->dup);
	assert_false(p->retain);
	assert_int_equal(p->packet_id, 10);
	STR_IS(p->topic, "t/1");
	assert_int_equal(p->props.has, HAS(BW_PROP_MESSAGE_EXPIRY) | HAS(BW_PROP_CONTENT_TYPE) |
	                                       HAS(BW_PROP_RESPONSE_TOPIC) |
	                                       HAS(BW_PROP_CORRELATION_DATA));
	assert_int_equal(p->props.message_expiry, 60);
	STR_IS(p->props.content_type, "js");
	STR_IS(p->props.response_topic, "r/q");
	BIN_IS(p->props.correlation_data, "\xCA\xFE", 2);
	assert_int_equal(p->props.user_count, 2);
	assert_ptr_equal(p->props.block.p, b + 10);
	assert_int_equal(p->props.block.len, 0x25);

	assert_true(bw_props_next_user(&p->props, &off, &k, &v));
	STR_IS(k, "k");
	STR_IS(v, "v");
	assert_true(bw_props_next_user(&p->props, &off, &k, &v));
	STR_IS(k, "k2");
	STR_IS(v, "v2");
	assert_true(inside(v.p, v.len, b, sizeof(b)));
	assert_false(bw_props_next_user(&p->props, &off, &k, &v));

	BIN_IS(p->payload, "PL", 2);
	assert_ptr_equal(p->payload.p, b + sizeof(b) - 2);
}

/* 5.0: an empty topic name is allowed when a Topic Alias stands for it. */
static void test_publish_5_alias(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07, 'z');
	const struct bw_publish *p = &pkt.publish;
	assert_int_equal(p->qos, 0);
	assert_int_equal(p->packet_id, 0);
	assert_int_equal(p->topic.len, 0);
	assert_int_equal(p->props.has, HAS(BW_PROP_TOPIC_ALIAS));
	assert_int_equal(p->props.topic_alias, 7);
	BIN_IS(p->payload, "z", 1);
}

static void test_publish_empty_payload(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x30, 0x04, 0x00, 0x01, 't', 0x00);
	STR_IS(pkt.publish.topic, "t");
	assert_int_equal(pkt.publish.props.has, 0);
	assert_int_equal(pkt.publish.payload.len, 0);

	DEC(V3, &pkt, 0x31, 0x03, 0x00, 0x01, 't');
	STR_IS(pkt.publish.topic, "t");
	assert_true(pkt.publish.retain);
	assert_int_equal(pkt.publish.payload.len, 0);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP ------------------------------------ */

/* Each acknowledgement's first byte; PUBREL carries flags 0010. */
static const uint8_t ack_first[] = { 0x40, 0x50, 0x62, 0x70 };
static const uint8_t ack_type[] = { BW_PUBACK, BW_PUBREC, BW_PUBREL, BW_PUBCOMP };
/* A reason code other than 0 that each may carry. */
static const uint8_t ack_code[] = { 0x10, 0x10, 0x92, 0x92 };

static void test_ack_311(void **state)
{
	struct bw_packet pkt;

	for (size_t i = 0; i < sizeof(ack_first); i++) {
		uint8_t b[] = { ack_first[i], 0x02, 0xBE, 0xEF };
		dec(__LINE__, V3, &pkt, b, sizeof(b));
		assert_int_equal(pkt.type, ack_type[i]);
		assert_int_equal(pkt.ack.packet_id, 0xBEEF);
		assert_int_equal(pkt.ack.code, 0);
		assert_int_equal(pkt.ack.props.has, 0);
	}
}

/* 5.0 remaining length 2: reason code 0 and no properties are implied. */
static void test_ack_5_short(void **state)
{
	struct bw_packet pkt;

	for (size_t i = 0; i < sizeof(ack_first); i++) {
		uint8_t b[] = { ack_first[i], 0x02, 0x00, 0x01 };
		dec(__LINE__, V5, &pkt, b, sizeof(b));
		assert_int_equal(pkt.type, ack_type[i]);
		assert_int_equal(pkt.ack.packet_id, 1);
		assert_int_equal(pkt.ack.code, 0);
		assert_int_equal(pkt.ack.props.has, 0);
		assert_int_equal(pkt.ack.props.user_count, 0);
	}
}

/* 5.0 remaining length 3: a reason code and no property length. */
static void test_ack_5_code(void **state)
{
	struct bw_packet pkt;

	for (size_t i = 0; i < sizeof(ack_first); i++) {
		uint8_t b[] = { ack_first[i], 0x03, 0x00, 0x05, ack_code[i] };
		dec(__LINE__, V5, &pkt, b, sizeof(b));
		assert_int_equal(pkt.type, ack_type[i]);
		assert_int_equal(pkt.ack.packet_id, 5);
		assert_int_equal(pkt.ack.code, ack_code[i]);
		assert_int_equal(pkt.ack.props.has, 0);
	}
}

/* 5.0 remaining length 4 and more: reason code and a property block. */
static void test_ack_5_props(void **state)
{
	struct bw_packet pkt;

	for (size_t i = 0; i < sizeof(ack_first); i++) {
		uint8_t b[] = { ack_first[i], 0x09, 0x00, 0x05, ack_code[i], 0x05,
			        0x1F,         0x00, 0x02, 'n',  'o' };
		dec(__LINE__, V5, &pkt, b, sizeof(b));
		assert_int_equal(pkt.type, ack_type[i]);
		assert_int_equal(pkt.ack.packet_id, 5);
		assert_int_equal(pkt.ack.code, ack_code[i]);
		assert_int_equal(pkt.ack.props.has, HAS(BW_PROP_REASON_STRING));
		STR_IS(pkt.ack.props.reason_string, "no");
		assert_true(inside(pkt.ack.props.reason_string.p, 2, b, sizeof(b)));

		/* Remaining length 4: the property length is there and 0. */
		uint8_t e[] = { ack_first[i], 0x04, 0x00, 0x06, 0x00, 0x00 };
		dec(__LINE__, V5, &pkt, e, sizeof(e));
		assert_int_equal(pkt.ack.packet_id, 6);
		assert_int_equal(pkt.ack.code, 0);
		assert_int_equal(pkt.ack.props.has, 0);
	}
}

/* ---- SUBSCRIBE, SUBACK -------------------------------------------------- */

static void test_subscribe_311(void **state)
{
	static const uint8_t b[] = {
		0x82, 0x12, 0x00, 0x01, 0x00, 0x03, 'a',  '/',  'b', 0x00,
		0x00, 0x03, 'c',  '/',  '+',  0x01, 0x00, 0x01, '#', 0x02,
	};
	static const char *const filter[] = { "a/b", "c/+", "#" };
	struct bw_packet pkt;
	struct bw_sub_entry e;
	uint32_t off = 0, n = 0;

	dec(__LINE__, V3, &pkt, b, sizeof(b));
	const struct bw_subscribe *s = &pkt.subscribe;
	assert_int_equal(pkt.type, BW_SUBSCRIBE);
	assert_int_equal(s->packet_id, 1);
	assert_int_equal(s->props.has, 0);
	assert_int_equal(s->count, 3);
	assert_ptr_equal(s->entries.p, b + 4);
	assert_int_equal(s->entries.len, sizeof(b) - 4);
	while (bw_codec_next_sub(s, V3, &off, &e)) {
		assert_true(n < 3);
		STR_IS(e.filter, filter[n]);
		assert_int_equal(e.qos, n);
		assert_false(e.no_local);
		assert_false(e.retain_as_published);
		assert_int_equal(e.retain_handling, 0);
		assert_true(inside(e.filter.p, e.filter.len, b, sizeof(b)));
		n++;
	}
	assert_int_equal(n, s->count);
}

/* 5.0 options: No Local, Retain As Published, Retain Handling 2, QoS 1. */
static void test_subscribe_5(void **state)
{
	struct bw_packet pkt;
	struct bw_sub_entry e;
	uint32_t off = 0, id = 0;

	DEC(V5, &pkt, 0x82, 0x0D, 0x00, 0x02, 0x02, 0x0B, 0x05, 0x00, 0x01, 'x', 0x2D, 0x00, 0x01,
	    'y', 0x00);
	const struct bw_subscribe *s = &pkt.subscribe;
	assert_int_equal(s->packet_id, 2);
	assert_int_equal(s->props.has, HAS(BW_PROP_SUBSCRIPTION_ID));
	assert_int_equal(s->props.sub_id, 5);
	assert_int_equal(s->props.sub_id_count, 1);
	assert_true(bw_props_next_sub_id(&s->props, &off, &id));
	assert_int_equal(id, 5);
	assert_int_equal(s->count, 2);

	off = 0;
	assert_true(bw_codec_next_sub(s, V5, &off, &e));
	STR_IS(e.filter, "x");
	assert_int_equal(e.qos, 1);
	assert_true(e.no_local);
	assert_true(e.retain_as_published);
	assert_int_equal(e.retain_handling, 2);
	assert_true(bw_codec_next_sub(s, V5, &off, &e));
	STR_IS(e.filter, "y");
	assert_int_equal(e.qos, 0);
	assert_false(e.no_local);
	assert_false(e.retain_as_published);
	assert_int_equal(e.retain_handling, 0);
	assert_false(bw_codec_next_sub(s, V5, &off, &e));
}

/*
 * Filter structure is judged per entry, not by the decoder, so that one bad
 * filter gets SUBACK 0x8F instead of closing the connection.
 */
static void test_subscribe_bad_filter_decodes(void **state)
{
	struct bw_packet pkt;
	struct bw_sub_entry e;
	uint32_t off = 0;

	DEC(V3, &pkt, 0x82, 0x0A, 0x00, 0x01, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x00);
	assert_int_equal(pkt.subscribe.count, 1);
	assert_true(bw_codec_next_sub(&pkt.subscribe, V3, &off, &e));
	STR_IS(e.filter, "a/#/b");
	assert_int_equal(bw_topic_filter_check(e.filter.p, e.filter.len),
	                 -BW_RC_TOPIC_FILTER_INVALID);
}

static void test_suback_311(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x80);
	assert_int_equal(pkt.type, BW_SUBACK);
	assert_int_equal(pkt.suback.packet_id, 1);
	assert_int_equal(pkt.suback.props.has, 0);
	BIN_IS(pkt.suback.codes, "\x00\x01\x02\x80", 4);
}

static void test_suback_5(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0x90, 0x0D, 0x00, 0x02, 0x05, 0x1F, 0x00, 0x02, 'o', 'k', 0x00, 0x01, 0x02,
	    0x8F, 0x9E);
	assert_int_equal(pkt.suback.packet_id, 2);
	assert_int_equal(pkt.suback.props.has, HAS(BW_PROP_REASON_STRING));
	STR_IS(pkt.suback.props.reason_string, "ok");
	BIN_IS(pkt.suback.codes, "\x00\x01\x02\x8F\x9E", 5);
}

/* ---- UNSUBSCRIBE, UNSUBACK ---------------------------------------------- */

static void test_unsubscribe_311(void **state)
{
	struct bw_packet pkt;
	struct bw_str f;
	uint32_t off = 0;

	DEC(V3, &pkt, 0xA2, 0x0A, 0x00, 0x03, 0x00, 0x01, 'a', 0x00, 0x03, 'b', '/', 'c');
	const struct bw_unsubscribe *u = &pkt.unsubscribe;
	assert_int_equal(pkt.type, BW_UNSUBSCRIBE);
	assert_int_equal(u->packet_id, 3);
	assert_int_equal(u->props.has, 0);
	assert_int_equal(u->count, 2);
	assert_true(bw_codec_next_unsub(u, &off, &f));
	STR_IS(f, "a");
	assert_true(bw_codec_next_unsub(u, &off, &f));
	STR_IS(f, "b/c");
	assert_false(bw_codec_next_unsub(u, &off, &f));
}

static void test_unsubscribe_5(void **state)
{
	struct bw_packet pkt;
	struct bw_str f, k, v;
	uint32_t off = 0;

	DEC(V5, &pkt, 0xA2, 0x12, 0x00, 0x04, 0x07, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x00,
	    0x01, 'a', 0x00, 0x03, 'b', '/', 'c');
	const struct bw_unsubscribe *u = &pkt.unsubscribe;
	assert_int_equal(u->packet_id, 4);
	assert_int_equal(u->props.has, 0);
	assert_int_equal(u->props.user_count, 1);
	assert_true(bw_props_next_user(&u->props, &off, &k, &v));
	STR_IS(k, "k");
	STR_IS(v, "v");
	assert_int_equal(u->count, 2);
	off = 0;
	assert_true(bw_codec_next_unsub(u, &off, &f));
	STR_IS(f, "a");
	assert_true(bw_codec_next_unsub(u, &off, &f));
	STR_IS(f, "b/c");
	assert_false(bw_codec_next_unsub(u, &off, &f));
}

/* 3.1.1 UNSUBACK is a packet identifier only; 5.0 adds a code per filter. */
static void test_unsuback(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0xB0, 0x02, 0x00, 0x07);
	assert_int_equal(pkt.type, BW_UNSUBACK);
	assert_int_equal(pkt.suback.packet_id, 7);
	assert_int_equal(pkt.suback.codes.len, 0);

	DEC(V5, &pkt, 0xB0, 0x05, 0x00, 0x07, 0x00, 0x00, 0x11);
	assert_int_equal(pkt.suback.packet_id, 7);
	assert_int_equal(pkt.suback.props.has, 0);
	BIN_IS(pkt.suback.codes, "\x00\x11", 2);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT, AUTH -------------------------------- */

static void test_ping(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0xC0, 0x00);
	assert_int_equal(pkt.type, BW_PINGREQ);
	DEC(V5, &pkt, 0xC0, 0x00);
	assert_int_equal(pkt.type, BW_PINGREQ);
	DEC(V3, &pkt, 0xD0, 0x00);
	assert_int_equal(pkt.type, BW_PINGRESP);
	DEC(V5, &pkt, 0xD0, 0x00);
	assert_int_equal(pkt.type, BW_PINGRESP);
}

static void test_disconnect_311(void **state)
{
	struct bw_packet pkt;

	DEC(V3, &pkt, 0xE0, 0x00);
	assert_int_equal(pkt.type, BW_DISCONNECT);
	assert_int_equal(pkt.disconnect.code, 0);
	assert_int_equal(pkt.disconnect.props.has, 0);
}

static void test_disconnect_5(void **state)
{
	struct bw_packet pkt;

	/* Remaining length 0: normal disconnection. */
	DEC(V5, &pkt, 0xE0, 0x00);
	assert_int_equal(pkt.disconnect.code, BW_RC_SUCCESS);
	assert_int_equal(pkt.disconnect.props.has, 0);

	/* Remaining length 1: a reason code without a property length. */
	DEC(V5, &pkt, 0xE0, 0x01, 0x04);
	assert_int_equal(pkt.disconnect.code, BW_RC_DISCONNECT_WITH_WILL);
	assert_int_equal(pkt.disconnect.props.has, 0);

	/* Reason String "bye" and Session Expiry Interval 10. */
	DEC(V5, &pkt, 0xE0, 0x0D, 0x00, 0x0B, 0x1F, 0x00, 0x03, 'b', 'y', 'e', 0x11, 0x00, 0x00,
	    0x00, 0x0A);
	assert_int_equal(pkt.disconnect.code, BW_RC_SUCCESS);
	assert_int_equal(pkt.disconnect.props.has,
	                 HAS(BW_PROP_REASON_STRING) | HAS(BW_PROP_SESSION_EXPIRY));
	STR_IS(pkt.disconnect.props.reason_string, "bye");
	assert_int_equal(pkt.disconnect.props.session_expiry, 10);
}

static void test_auth(void **state)
{
	struct bw_packet pkt;

	DEC(V5, &pkt, 0xF0, 0x10, 0x18, 0x0E, 0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', 0x16, 0x00,
	    0x03, 0x01, 0x02, 0x03);
	assert_int_equal(pkt.type, BW_AUTH);
	assert_int_equal(pkt.disconnect.code, BW_RC_CONTINUE_AUTH);
	assert_int_equal(pkt.disconnect.props.has,
	                 HAS(BW_PROP_AUTH_METHOD) | HAS(BW_PROP_AUTH_DATA));
	STR_IS(pkt.disconnect.props.auth_method, "SCRAM");
	BIN_IS(pkt.disconnect.props.auth_data, "\x01\x02\x03", 3);

	/* Remaining length 0: Success, no properties. */
	DEC(V5, &pkt, 0xF0, 0x00);
	assert_int_equal(pkt.type, BW_AUTH);
	assert_int_equal(pkt.disconnect.code, BW_RC_SUCCESS);
	assert_int_equal(pkt.disconnect.props.has, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_311_mosquitto),
		cmocka_unit_test(test_connect_5_will_props),
		cmocka_unit_test(test_connect_5_no_will),
		cmocka_unit_test(test_connect_minimal),
		cmocka_unit_test(test_connect_5_password_only),
		cmocka_unit_test(test_connack_311),
		cmocka_unit_test(test_connack_5),
		cmocka_unit_test(test_publish_311_qos0),
		cmocka_unit_test(test_publish_311_qos1_retain),
		cmocka_unit_test(test_publish_311_qos2_dup),
		cmocka_unit_test(test_publish_5_props),
		cmocka_unit_test(test_publish_5_alias),
		cmocka_unit_test(test_publish_empty_payload),
		cmocka_unit_test(test_ack_311),
		cmocka_unit_test(test_ack_5_short),
		cmocka_unit_test(test_ack_5_code),
		cmocka_unit_test(test_ack_5_props),
		cmocka_unit_test(test_subscribe_311),
		cmocka_unit_test(test_subscribe_5),
		cmocka_unit_test(test_subscribe_bad_filter_decodes),
		cmocka_unit_test(test_suback_311),
		cmocka_unit_test(test_suback_5),
		cmocka_unit_test(test_unsubscribe_311),
		cmocka_unit_test(test_unsubscribe_5),
		cmocka_unit_test(test_unsuback),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_disconnect_311),
		cmocka_unit_test(test_disconnect_5),
		cmocka_unit_test(test_auth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
