/*
 * Unit tests for MQTT 5.0 properties (proto/mqtt/props.h): the property
 * table (wire type and the packets that may carry each identifier, checked
 * against MQTT 5.0 section 2.2.2.2), decoding every type, every identifier
 * in every place, and every refusal (repeats of single-valued properties,
 * properties in the wrong place, unknown identifiers, truncated values, bad
 * UTF-8, out-of-range values); the walkers for the repeatable user
 * properties and subscription identifiers; exact bytes of single encoded
 * properties, encode/decode round trips of blocks holding many, and the user
 * property helpers bw_props_put_user(), bw_props_user_size() and
 * bw_props_copy_user().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/props.h"

/* A property block and its length, for pd(). */
#define BLK(...)                                                                                   \
	(const uint8_t[]){ __VA_ARGS__ }, (uint32_t)sizeof((const uint8_t[]){ __VA_ARGS__ })

#define PD_OK(where, p, ...)   pd(__LINE__, where, 0, p, BLK(__VA_ARGS__))
#define PD_ERR(where, rc, ...) pd(__LINE__, where, -(rc), NULL, BLK(__VA_ARGS__))

#define W(t)    (UINT32_C(1) << (t))
#define WILL    W(BW_PROPS_WILL)
#define HAS(id) BW_PROP_BIT(id)

static struct bw_str S(const char *s) {
	return (struct bw_str){ (const uint8_t *)s, (uint16_t)strlen(s) };
}

static void
hex(char *out, size_t cap, const uint8_t *s, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02X ", s[i]);
}

/*
 * Decodes b[0..n) in `where` and checks the result is `expect`; an error
 * must come with a non-empty why. p may be NULL.
 */
static void pd(int line, unsigned where, int expect, struct bw_props *p, const uint8_t *b,
               uint32_t n)
{
	struct bw_props local;
	const char *why = NULL;
	char buf[512];
	int rc;

	if (p == NULL)
		p = &local;
	memset(p, 0xA5, sizeof(*p));
	rc = bw_props_decode(b, n, where, p, &why);
	if (rc != expect) {
		hex(buf, sizeof(buf), b, n);
		fail_msg("line %d: bw_props_decode(%s) in place %u = %d, expected %d (why: %s)",
		         line, buf, where, rc, expect, why ? why : "(null)");
	}
	if (expect != 0 && (why == NULL || why[0] == '\0'))
		fail_msg("line %d: error %d without a why", line, rc);
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

#define STR_IS(v, s)    str_is(__LINE__, v, s)
#define BIN_IS(v, p, n) bin_is(__LINE__, v, p, n)

/* MQTT 5.0 table 2-4, Properties. */
static const struct {
	uint8_t id;
	enum bw_prop_type type;
	uint32_t where;
} table[] = {
	{ BW_PROP_PAYLOAD_FORMAT, BW_PT_BYTE, W(BW_PUBLISH) | WILL },
	{ BW_PROP_MESSAGE_EXPIRY, BW_PT_U32, W(BW_PUBLISH) | WILL },
	{ BW_PROP_CONTENT_TYPE, BW_PT_UTF8, W(BW_PUBLISH) | WILL },
	{ BW_PROP_RESPONSE_TOPIC, BW_PT_UTF8, W(BW_PUBLISH) | WILL },
	{ BW_PROP_CORRELATION_DATA, BW_PT_BINARY, W(BW_PUBLISH) | WILL },
	{ BW_PROP_SUBSCRIPTION_ID, BW_PT_VARINT, W(BW_PUBLISH) | W(BW_SUBSCRIBE) },
	{ BW_PROP_SESSION_EXPIRY, BW_PT_U32, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_DISCONNECT) },
	{ BW_PROP_ASSIGNED_CLIENT_ID, BW_PT_UTF8, W(BW_CONNACK) },
	{ BW_PROP_SERVER_KEEP_ALIVE, BW_PT_U16, W(BW_CONNACK) },
	{ BW_PROP_AUTH_METHOD, BW_PT_UTF8, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_AUTH) },
	{ BW_PROP_AUTH_DATA, BW_PT_BINARY, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_AUTH) },
	{ BW_PROP_REQUEST_PROBLEM_INFO, BW_PT_BYTE, W(BW_CONNECT) },
	{ BW_PROP_WILL_DELAY, BW_PT_U32, WILL },
	{ BW_PROP_REQUEST_RESPONSE_INFO, BW_PT_BYTE, W(BW_CONNECT) },
	{ BW_PROP_RESPONSE_INFO, BW_PT_UTF8, W(BW_CONNACK) },
	{ BW_PROP_SERVER_REFERENCE, BW_PT_UTF8, W(BW_CONNACK) | W(BW_DISCONNECT) },
	{ BW_PROP_REASON_STRING, BW_PT_UTF8,
	  W(BW_CONNACK) | W(BW_PUBACK) | W(BW_PUBREC) | W(BW_PUBREL) | W(BW_PUBCOMP) |
	          W(BW_SUBACK) | W(BW_UNSUBACK) | W(BW_DISCONNECT) | W(BW_AUTH) },
	{ BW_PROP_RECEIVE_MAX, BW_PT_U16, W(BW_CONNECT) | W(BW_CONNACK) },
	{ BW_PROP_TOPIC_ALIAS_MAX, BW_PT_U16, W(BW_CONNECT) | W(BW_CONNACK) },
	{ BW_PROP_TOPIC_ALIAS, BW_PT_U16, W(BW_PUBLISH) },
	{ BW_PROP_MAX_QOS, BW_PT_BYTE, W(BW_CONNACK) },
	{ BW_PROP_RETAIN_AVAILABLE, BW_PT_BYTE, W(BW_CONNACK) },
	{ BW_PROP_USER, BW_PT_UTF8_PAIR,
	  W(BW_CONNECT) | W(BW_CONNACK) | W(BW_PUBLISH) | WILL | W(BW_PUBACK) | W(BW_PUBREC) |
	          W(BW_PUBREL) | W(BW_PUBCOMP) | W(BW_SUBSCRIBE) | W(BW_SUBACK) |
	          W(BW_UNSUBSCRIBE) | W(BW_UNSUBACK) | W(BW_DISCONNECT) | W(BW_AUTH) },
	{ BW_PROP_MAX_PACKET_SIZE, BW_PT_U32, W(BW_CONNECT) | W(BW_CONNACK) },
	{ BW_PROP_WILDCARD_SUB_AVAILABLE, BW_PT_BYTE, W(BW_CONNACK) },
	{ BW_PROP_SUB_ID_AVAILABLE, BW_PT_BYTE, W(BW_CONNACK) },
	{ BW_PROP_SHARED_SUB_AVAILABLE, BW_PT_BYTE, W(BW_CONNACK) },
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

/* Every place a property block can sit (PINGREQ and PINGRESP have none). */
static const unsigned places[] = {
	BW_CONNECT,  BW_CONNACK,    BW_PUBLISH,   BW_PUBACK,     BW_PUBREC,
	BW_PUBREL,   BW_PUBCOMP,    BW_SUBSCRIBE, BW_SUBACK,     BW_UNSUBSCRIBE,
	BW_UNSUBACK, BW_DISCONNECT, BW_AUTH,      BW_PROPS_WILL,
};

/* The numeric value of a fixed-size property. */
static uint32_t num_of(const struct bw_props *p, uint8_t id)
{
	switch (id) {
	case BW_PROP_PAYLOAD_FORMAT:
		return p->payload_format;
	case BW_PROP_MESSAGE_EXPIRY:
		return p->message_expiry;
	case BW_PROP_SUBSCRIPTION_ID:
		return p->sub_id;
	case BW_PROP_SESSION_EXPIRY:
		return p->session_expiry;
	case BW_PROP_SERVER_KEEP_ALIVE:
		return p->server_keep_alive;
	case BW_PROP_REQUEST_PROBLEM_INFO:
		return p->request_problem_info;
	case BW_PROP_WILL_DELAY:
		return p->will_delay;
	case BW_PROP_REQUEST_RESPONSE_INFO:
		return p->request_response_info;
	case BW_PROP_RECEIVE_MAX:
		return p->receive_max;
	case BW_PROP_TOPIC_ALIAS_MAX:
		return p->topic_alias_max;
	case BW_PROP_TOPIC_ALIAS:
		return p->topic_alias;
	case BW_PROP_MAX_QOS:
		return p->max_qos;
	case BW_PROP_RETAIN_AVAILABLE:
		return p->retain_available;
	case BW_PROP_MAX_PACKET_SIZE:
		return p->max_packet_size;
	case BW_PROP_WILDCARD_SUB_AVAILABLE:
		return p->wildcard_sub_available;
	case BW_PROP_SUB_ID_AVAILABLE:
		return p->sub_id_available;
	case BW_PROP_SHARED_SUB_AVAILABLE:
		return p->shared_sub_available;
	}
	fail_msg("property 0x%02X has no numeric field", id);
	return 0;
}

/* The bytes of a string or binary property. */
static struct bw_bin bytes_of(const struct bw_props *p, uint8_t id)
{
	struct bw_str s = { NULL, 0 };

	switch (id) {
	case BW_PROP_CORRELATION_DATA:
		return p->correlation_data;
	case BW_PROP_AUTH_DATA:
		return p->auth_data;
	case BW_PROP_CONTENT_TYPE:
		s = p->content_type;
		break;
	case BW_PROP_RESPONSE_TOPIC:
		s = p->response_topic;
		break;
	case BW_PROP_ASSIGNED_CLIENT_ID:
		s = p->assigned_client_id;
		break;
	case BW_PROP_AUTH_METHOD:
		s = p->auth_method;
		break;
	case BW_PROP_RESPONSE_INFO:
		s = p->response_info;
		break;
	case BW_PROP_SERVER_REFERENCE:
		s = p->server_reference;
		break;
	case BW_PROP_REASON_STRING:
		s = p->reason_string;
		break;
	default:
		fail_msg("property 0x%02X has no byte field", id);
	}
	return (struct bw_bin){ s.p, s.len };
}

/* Writes id and a valid sample value of type t to out; returns its length. */
static uint32_t sample(uint8_t id, enum bw_prop_type t, uint8_t *out)
{
	static const uint8_t v[][8] = {
		[BW_PT_BYTE] = { 1, 0x01 },
		[BW_PT_U16] = { 2, 0x01, 0x02 },
		[BW_PT_U32] = { 4, 0x01, 0x02, 0x03, 0x04 },
		[BW_PT_VARINT] = { 2, 0x81, 0x01 },
		[BW_PT_UTF8] = { 5, 0x00, 0x03, 'v', 'a', 'l' },
		[BW_PT_BINARY] = { 5, 0x00, 0x03, 0x00, 0xFF, 0x7F },
		[BW_PT_UTF8_PAIR] = { 7, 0x00, 0x01, 'k', 0x00, 0x02, 'v', 'v' },
	};

	out[0] = id;
	memcpy(out + 1, v[t] + 1, v[t][0]);
	return 1u + v[t][0];
}

/* The first place in a mask. */
static unsigned home(uint32_t where)
{
	for (unsigned i = 0; i < 32; i++)
		if (where & W(i))
			return i;
	fail_msg("empty place mask");
	return 0;
}

static void test_prop_type_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TABLE_LEN; i++) {
		uint32_t where = 0xDEADBEEF;
		enum bw_prop_type t = bw_prop_type(table[i].id, &where);

		if (t != table[i].type)
			fail_msg("property 0x%02X: type %d, expected %d", table[i].id, t,
			         table[i].type);
		if (where != table[i].where)
			fail_msg("property 0x%02X: places 0x%05X, expected 0x%05X", table[i].id,
			         where, table[i].where);
		assert_int_equal(bw_prop_type(table[i].id, NULL), table[i].type);
	}
	for (unsigned id = 0; id < 256; id++) {
		bool known = false;

		for (size_t i = 0; i < TABLE_LEN; i++)
			known |= table[i].id == id;
		if (!known && bw_prop_type((uint8_t)id, NULL) != 0)
			fail_msg("unknown property 0x%02X has a type", id);
	}
	assert_int_equal(bw_prop_type(0x00, NULL), 0);
	assert_int_equal(bw_prop_type(0x04, NULL), 0);
	assert_int_equal(bw_prop_type(0x2B, NULL), 0);
	assert_int_equal(bw_prop_type(0x7F, NULL), 0);
}

static void test_prop_names(void **state)
{
	(void)state;
	assert_string_equal(bw_prop_name(BW_PROP_TOPIC_ALIAS), "Topic Alias");
	assert_string_equal(bw_prop_name(0x00), "?");
	assert_string_equal(bw_prop_name(0x04), "?");
	assert_string_equal(bw_prop_name(0x2B), "?");
	for (size_t i = 0; i < TABLE_LEN; i++) {
		const char *n = bw_prop_name(table[i].id);

		assert_non_null(n);
		if (n[0] == '\0' || strcmp(n, "?") == 0)
			fail_msg("property 0x%02X has no name", table[i].id);
	}
}

static void test_decode_empty(void **state)
{
	static const uint8_t none[1] = { 0 };
	struct bw_props p;

	(void)state;
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		memset(&p, 0xA5, sizeof(p));
		assert_int_equal(bw_props_decode(none, 0, places[i], &p, NULL), 0);
		assert_true(p.has == 0);
		assert_int_equal(p.user_count, 0);
		assert_int_equal(p.sub_id_count, 0);
		assert_int_equal(p.raw.len, 0);
		assert_int_equal(p.block.len, 0);
		assert_int_equal(p.message_expiry, 0);
		assert_int_equal(p.topic_alias, 0);
		assert_int_equal(p.content_type.len, 0);
		assert_null(p.sub_ids);
	}
}

/* Every property decodes in the first place that may carry it. */
static void test_decode_each(void **state)
{
	uint8_t b[16];
	struct bw_props p;

	(void)state;
	for (size_t i = 0; i < TABLE_LEN; i++) {
		uint8_t id = table[i].id;
		uint32_t n = sample(id, table[i].type, b);

		pd(__LINE__, home(table[i].where), 0, &p, b, n);
		assert_ptr_equal(p.block.p, b);
		assert_int_equal(p.block.len, n);
		assert_int_equal(p.raw.len, 0);
		switch (table[i].type) {
		case BW_PT_BYTE:
			assert_int_equal(num_of(&p, id), 1);
			break;
		case BW_PT_U16:
			assert_int_equal(num_of(&p, id), 0x0102);
			break;
		case BW_PT_U32:
			assert_int_equal(num_of(&p, id), 0x01020304);
			break;
		case BW_PT_VARINT:
			assert_int_equal(num_of(&p, id), 129);
			assert_int_equal(p.sub_id_count, 1);
			break;
		case BW_PT_UTF8:
			BIN_IS(bytes_of(&p, id), "val", 3);
			break;
		case BW_PT_BINARY:
			BIN_IS(bytes_of(&p, id), "\x00\xFF\x7F", 3);
			break;
		case BW_PT_UTF8_PAIR:
			assert_int_equal(p.user_count, 1);
			break;
		}
		if (id != BW_PROP_USER && id != BW_PROP_SUBSCRIPTION_ID && p.has != HAS(id))
			fail_msg("property 0x%02X: has = 0x%llx", id, (unsigned long long)p.has);
		if (id != BW_PROP_USER)
			assert_int_equal(p.user_count, 0);
	}
}

static void test_decode_values(void **state)
{
	struct bw_props p;
	struct bw_str k, v;
	uint32_t off = 0;

	(void)state;
	PD_OK(BW_PUBLISH, &p, 0x02, 0xFF, 0xFF, 0xFF, 0xFF);
	assert_int_equal(p.message_expiry, 0xFFFFFFFFu);
	PD_OK(BW_PUBLISH, &p, 0x01, 0x00);
	assert_int_equal(p.payload_format, 0);
	assert_true(p.has & HAS(BW_PROP_PAYLOAD_FORMAT));
	PD_OK(BW_PUBLISH, &p, 0x23, 0xFF, 0xFF);
	assert_int_equal(p.topic_alias, 0xFFFF);
	PD_OK(BW_PUBLISH, &p, 0x0B, 0x01);
	assert_int_equal(p.sub_id, 1);
	PD_OK(BW_PUBLISH, &p, 0x0B, 0xFF, 0x7F);
	assert_int_equal(p.sub_id, 16383);
	PD_OK(BW_PUBLISH, &p, 0x0B, 0x80, 0x80, 0x01);
	assert_int_equal(p.sub_id, 16384);
	PD_OK(BW_SUBSCRIBE, &p, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F);
	assert_int_equal(p.sub_id, BW_VARINT_MAX);
	PD_OK(BW_CONNACK, &p, 0x24, 0x00);
	assert_int_equal(p.max_qos, 0);
	assert_true(p.has & HAS(BW_PROP_MAX_QOS));
	PD_OK(BW_CONNECT, &p, 0x27, 0xFF, 0xFF, 0xFF, 0xFF);
	assert_int_equal(p.max_packet_size, 0xFFFFFFFFu);
	PD_OK(BW_CONNECT, &p, 0x11, 0x00, 0x00, 0x00, 0x00);
	assert_int_equal(p.session_expiry, 0);
	assert_true(p.has & HAS(BW_PROP_SESSION_EXPIRY));
	/* Empty strings and binary data are fine. */
	PD_OK(BW_PUBLISH, &p, 0x03, 0x00, 0x00, 0x09, 0x00, 0x00);
	assert_int_equal(p.content_type.len, 0);
	assert_int_equal(p.correlation_data.len, 0);
	assert_true(p.has & HAS(BW_PROP_CONTENT_TYPE));
	assert_true(p.has & HAS(BW_PROP_CORRELATION_DATA));
	PD_OK(BW_PUBLISH, &p, 0x26, 0x00, 0x00, 0x00, 0x00);
	assert_int_equal(p.user_count, 1);
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	assert_int_equal(k.len, 0);
	assert_int_equal(v.len, 0);
	assert_false(bw_props_next_user(&p, &off, &k, &v));
	/* Binary data is not UTF-8 and may hold anything. */
	PD_OK(BW_PUBLISH, &p, 0x09, 0x00, 0x04, 0x00, 0xC0, 0x80, 0xFF);
	BIN_IS(p.correlation_data, "\x00\xC0\x80\xFF", 4);
	/* A multibyte UTF-8 string. */
	PD_OK(BW_CONNACK, &p, 0x1F, 0x00, 0x05, 'c', 'a', 'f', 0xC3, 0xA9);
	STR_IS(p.reason_string, "caf\xC3\xA9");
}

/* Every property in every place: allowed exactly where the table says. */
static void test_every_place(void **state)
{
	uint8_t b[16];

	(void)state;
	for (size_t i = 0; i < TABLE_LEN; i++) {
		uint32_t n = sample(table[i].id, table[i].type, b);

		for (size_t j = 0; j < sizeof(places) / sizeof(places[0]); j++) {
			bool ok = table[i].where & W(places[j]);
			struct bw_props p;
			const char *why = NULL;
			int rc = bw_props_decode(b, n, places[j], &p, &why);

			if (rc != (ok ? 0 : -BW_RC_PROTOCOL_ERROR))
				fail_msg("property 0x%02X in place %u: %d, expected %d",
				         table[i].id, places[j], rc,
				         ok ? 0 : -BW_RC_PROTOCOL_ERROR);
			if (!ok && (why == NULL || why[0] == '\0'))
				fail_msg("property 0x%02X in place %u: no why", table[i].id,
				         places[j]);
		}
	}
}

/* Every single-valued property twice is a Protocol Error. */
static void test_duplicates(void **state)
{
	uint8_t b[32];
	struct bw_props p;

	(void)state;
	for (size_t i = 0; i < TABLE_LEN; i++) {
		uint8_t id = table[i].id;
		uint32_t n;

		if (id == BW_PROP_USER)
			continue;
		n = sample(id, table[i].type, b);
		n += sample(id, table[i].type, b + n);
		/* Subscription identifiers repeat only in PUBLISH. */
		if (id == BW_PROP_SUBSCRIPTION_ID) {
			pd(__LINE__, BW_PUBLISH, 0, &p, b, n);
			assert_int_equal(p.sub_id_count, 2);
			pd(__LINE__, BW_SUBSCRIBE, -BW_RC_PROTOCOL_ERROR, NULL, b, n);
			continue;
		}
		pd(__LINE__, home(table[i].where), -BW_RC_PROTOCOL_ERROR, NULL, b, n);
	}
	/* Apart, with another property between them. */
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x23, 0x00, 0x01, 0x01, 0x01, 0x23, 0x00, 0x02);
	/* Same value twice is still twice. */
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x21, 0x00, 0x05, 0x21, 0x00, 0x05);
}

static void test_user_repeat(void **state)
{
	struct bw_props p;
	struct bw_str k, v;
	uint32_t off = 0;

	(void)state;
	PD_OK(BW_PUBLISH, &p,
	      /* user "a" = "1" */
	      0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',
	      /* content type "ct" */
	      0x03, 0x00, 0x02, 'c', 't',
	      /* user "a" = "2": the same key again is allowed */
	      0x26, 0x00, 0x01, 'a', 0x00, 0x01, '2',
	      /* topic alias 9 */
	      0x23, 0x00, 0x09,
	      /* user "key" = "" */
	      0x26, 0x00, 0x03, 'k', 'e', 'y', 0x00, 0x00);
	assert_int_equal(p.user_count, 3);
	STR_IS(p.content_type, "ct");
	assert_int_equal(p.topic_alias, 9);
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	STR_IS(k, "a");
	STR_IS(v, "1");
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	STR_IS(k, "a");
	STR_IS(v, "2");
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	STR_IS(k, "key");
	STR_IS(v, "");
	assert_false(bw_props_next_user(&p, &off, &k, &v));
	assert_false(bw_props_next_user(&p, &off, &k, &v));

	/* Repeats are allowed in every place that carries user properties. */
	for (size_t j = 0; j < sizeof(places) / sizeof(places[0]); j++) {
		static const uint8_t two[] = { 0x26, 0x00, 0x01, 'x', 0x00, 0x00,
			                       0x26, 0x00, 0x01, 'x', 0x00, 0x00 };

		pd(__LINE__, places[j], 0, &p, two, sizeof(two));
		assert_int_equal(p.user_count, 2);
	}

	/* A block without user properties walks nothing. */
	PD_OK(BW_PUBLISH, &p, 0x23, 0x00, 0x09);
	off = 0;
	assert_int_equal(p.user_count, 0);
	assert_false(bw_props_next_user(&p, &off, &k, &v));
}

static void test_sub_ids(void **state)
{
	struct bw_props p;
	uint32_t off = 0, id;

	(void)state;
	PD_OK(BW_PUBLISH, &p, 0x0B, 0x01, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x0B, 0x80, 0x01,
	      0x0B, 0xFF, 0xFF, 0xFF, 0x7F);
	assert_int_equal(p.sub_id_count, 3);
	assert_int_equal(p.sub_id, 1);
	assert_int_equal(p.user_count, 1);
	assert_true(bw_props_next_sub_id(&p, &off, &id));
	assert_int_equal(id, 1);
	assert_true(bw_props_next_sub_id(&p, &off, &id));
	assert_int_equal(id, 128);
	assert_true(bw_props_next_sub_id(&p, &off, &id));
	assert_int_equal(id, BW_VARINT_MAX);
	assert_false(bw_props_next_sub_id(&p, &off, &id));

	PD_OK(BW_SUBSCRIBE, &p, 0x0B, 0x2A);
	off = 0;
	assert_int_equal(p.sub_id_count, 1);
	assert_true(bw_props_next_sub_id(&p, &off, &id));
	assert_int_equal(id, 42);
	assert_false(bw_props_next_sub_id(&p, &off, &id));

	PD_OK(BW_PUBLISH, &p, 0x23, 0x00, 0x01);
	off = 0;
	assert_int_equal(p.sub_id_count, 0);
	assert_false(bw_props_next_sub_id(&p, &off, &id));
}

static void test_not_allowed(void **state)
{
	struct bw_props p;

	(void)state;
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x11, 0x00, 0x00, 0x00, 0x0A);
	PD_ERR(BW_PROPS_WILL, BW_RC_PROTOCOL_ERROR, 0x23, 0x00, 0x01);
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x18, 0x00, 0x00, 0x00, 0x05);
	PD_OK(BW_PROPS_WILL, &p, 0x18, 0x00, 0x00, 0x00, 0x05);
	assert_int_equal(p.will_delay, 5);
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x18, 0x00, 0x00, 0x00, 0x05);
	PD_ERR(BW_PROPS_WILL, BW_RC_PROTOCOL_ERROR, 0x0B, 0x01);
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x1F, 0x00, 0x01, 'x');
	PD_ERR(BW_SUBSCRIBE, BW_RC_PROTOCOL_ERROR, 0x1F, 0x00, 0x01, 'x');
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x24, 0x01);
	PD_ERR(BW_AUTH, BW_RC_PROTOCOL_ERROR, 0x11, 0x00, 0x00, 0x00, 0x01);
	/* A good property first does not excuse a bad one after it. */
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x01, 0x01, 0x26, 0x00, 0x00, 0x00, 0x00, 0x13,
	       0x00, 0x0A);
}

static void test_unknown_id(void **state)
{
	(void)state;
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x00, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x04, 0x00);
	PD_ERR(BW_CONNACK, BW_RC_MALFORMED, 0x2B, 0x00);
	PD_ERR(BW_CONNACK, BW_RC_MALFORMED, 0x7F, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x23, 0x00, 0x01, 0x04, 0x00, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0A);
}

static void test_truncated(void **state)
{
	(void)state;
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x01);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x23);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x23, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x02, 0x00, 0x00, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0B);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0B, 0x80);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0B, 0xFF, 0xFF, 0xFF);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x03, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x03, 0x00, 0x05, 'a', 'b');
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x09, 0x00, 0x03, 0x01, 0x02);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 'k');
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 'k', 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 'k', 0x00, 0x02, 'v');
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x02, 'k');
	/* A good property, then a cut one. */
	PD_ERR(BW_CONNACK, BW_RC_MALFORMED, 0x24, 0x01, 0x27, 0x00, 0x00, 0x01);
	/* Bad variable byte integers in a subscription identifier. */
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x0B, 0x80, 0x00);
	PD_ERR(BW_SUBSCRIBE, BW_RC_MALFORMED, 0x0B, 0x81, 0x80, 0x00);
}

static void test_bad_utf8(void **state)
{
	(void)state;
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x03, 0x00, 0x02, 0xC0, 0x80);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x03, 0x00, 0x01, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x08, 0x00, 0x03, 0xED, 0xA0, 0x80);
	PD_ERR(BW_PROPS_WILL, BW_RC_MALFORMED, 0x08, 0x00, 0x01, 0xFF);
	PD_ERR(BW_CONNACK, BW_RC_MALFORMED, 0x12, 0x00, 0x01, 0x80);
	PD_ERR(BW_CONNECT, BW_RC_MALFORMED, 0x15, 0x00, 0x02, 'a', 0xC3);
	PD_ERR(BW_CONNACK, BW_RC_MALFORMED, 0x1A, 0x00, 0x04, 0xF4, 0x90, 0x80, 0x80);
	PD_ERR(BW_DISCONNECT, BW_RC_MALFORMED, 0x1C, 0x00, 0x01, 0x00);
	PD_ERR(BW_PUBACK, BW_RC_MALFORMED, 0x1F, 0x00, 0x02, 0xC1, 0xBF);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 0x80, 0x00, 0x01, 'v');
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0x80);
	PD_ERR(BW_PUBLISH, BW_RC_MALFORMED, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0x00);
}

static void test_out_of_range(void **state)
{
	(void)state;
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x21, 0x00, 0x00);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x21, 0x00, 0x00);
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x27, 0x00, 0x00, 0x00, 0x00);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x27, 0x00, 0x00, 0x00, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x01, 0x02);
	PD_ERR(BW_PROPS_WILL, BW_RC_PROTOCOL_ERROR, 0x01, 0xFF);
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x17, 0x02);
	PD_ERR(BW_CONNECT, BW_RC_PROTOCOL_ERROR, 0x19, 0x02);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x24, 0x02);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x25, 0x02);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x28, 0x02);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x29, 0x02);
	PD_ERR(BW_CONNACK, BW_RC_PROTOCOL_ERROR, 0x2A, 0x02);
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x0B, 0x00);
	PD_ERR(BW_SUBSCRIBE, BW_RC_PROTOCOL_ERROR, 0x0B, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_PROTOCOL_ERROR, 0x0B, 0x05, 0x0B, 0x00);
	PD_ERR(BW_PUBLISH, BW_RC_TOPIC_ALIAS_INVALID, 0x23, 0x00, 0x00);
}

/* Encodes p and checks the bytes are exactly want[0..n). */
static void enc_is(int line, const struct bw_props *p, const uint8_t *want, uint32_t n)
{
	uint8_t buf[256];
	uint32_t size = bw_props_size(p), wrote;
	char a[512], b[512];

	if (size != n)
		fail_msg("line %d: bw_props_size = %u, expected %u", line, size, n);
	memset(buf, 0xEE, sizeof(buf));
	wrote = bw_props_encode(p, buf);
	if (wrote != n || memcmp(buf, want, n) != 0) {
		hex(a, sizeof(a), buf, wrote < sizeof(buf) ? wrote : sizeof(buf));
		hex(b, sizeof(b), want, n);
		fail_msg("line %d: encoded %s, expected %s", line, a, b);
	}
	for (size_t i = n; i < sizeof(buf); i++)
		if (buf[i] != 0xEE)
			fail_msg("line %d: bw_props_encode wrote past its size at %zu", line, i);
}

#define ENC_IS(p, ...) enc_is(__LINE__, p, BLK(__VA_ARGS__))

static void test_encode_single(void **state)
{
	static const uint32_t ids[] = { 1, 16384 };
	static const uint8_t user[] = { 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v' };
	static const uint8_t corr[] = { 0x00, 0xFF };
	struct bw_props p;
	uint8_t none[4];

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(bw_props_size(&p), 0);
	assert_int_equal(bw_props_encode(&p, none), 0);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_TOPIC_ALIAS);
	p.topic_alias = 0x1234;
	ENC_IS(&p, 0x23, 0x12, 0x34);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SESSION_EXPIRY);
	p.session_expiry = 0x01020304;
	ENC_IS(&p, 0x11, 0x01, 0x02, 0x03, 0x04);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_CONTENT_TYPE);
	p.content_type = S("ab");
	ENC_IS(&p, 0x03, 0x00, 0x02, 'a', 'b');

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_CORRELATION_DATA);
	p.correlation_data = (struct bw_bin){ corr, sizeof(corr) };
	ENC_IS(&p, 0x09, 0x00, 0x02, 0x00, 0xFF);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_MAX_QOS);
	p.max_qos = 0;
	ENC_IS(&p, 0x24, 0x00);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SUBSCRIPTION_ID);
	p.sub_id = 128;
	ENC_IS(&p, 0x0B, 0x80, 0x01);

	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SUBSCRIPTION_ID);
	p.sub_id = 7;
	p.sub_ids = ids;
	p.sub_id_count = 2;
	ENC_IS(&p, 0x0B, 0x01, 0x0B, 0x80, 0x80, 0x01);

	memset(&p, 0, sizeof(p));
	p.raw = (struct bw_bin){ user, sizeof(user) };
	ENC_IS(&p, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v');

	/* Fields first, then sub_ids, then raw. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_TOPIC_ALIAS) | HAS(BW_PROP_SUBSCRIPTION_ID);
	p.topic_alias = 10;
	p.sub_ids = ids;
	p.sub_id_count = 1;
	p.raw = (struct bw_bin){ user, sizeof(user) };
	ENC_IS(&p, 0x23, 0x00, 0x0A, 0x0B, 0x01, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v');
}

/* Every field of want whose bit is set matches got. */
static void props_same(int line, const struct bw_props *want, const struct bw_props *got)
{
	const uint64_t mask = ~(HAS(BW_PROP_USER) | HAS(BW_PROP_SUBSCRIPTION_ID));

	if ((want->has & mask) != (got->has & mask))
		fail_msg("line %d: has 0x%llx, expected 0x%llx", line, (unsigned long long)got->has,
		         (unsigned long long)want->has);
	for (size_t i = 0; i < TABLE_LEN; i++) {
		uint8_t id = table[i].id;

		if (!(want->has & HAS(id)) || id == BW_PROP_USER || id == BW_PROP_SUBSCRIPTION_ID)
			continue;
		switch (table[i].type) {
		case BW_PT_UTF8:
		case BW_PT_BINARY: {
			struct bw_bin a = bytes_of(want, id), b = bytes_of(got, id);

			if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
				fail_msg("line %d: property 0x%02X differs", line, id);
			break;
		}
		default:
			if (num_of(want, id) != num_of(got, id))
				fail_msg("line %d: property 0x%02X is %u, expected %u", line, id,
				         num_of(got, id), num_of(want, id));
		}
	}
}

/* Encodes p, checks sizes, and decodes it back in `where` into *out. */
static void round_trip(int line, const struct bw_props *p, unsigned where, uint8_t *buf, size_t cap,
                       struct bw_props *out)
{
	uint32_t size = bw_props_size(p), wrote;

	if (size == 0 || size + 8 > cap)
		fail_msg("line %d: bw_props_size = %u", line, size);
	memset(buf, 0xEE, cap);
	wrote = bw_props_encode(p, buf);
	if (wrote != size)
		fail_msg("line %d: bw_props_encode wrote %u, bw_props_size said %u", line, wrote,
		         size);
	for (size_t i = size; i < cap; i++)
		if (buf[i] != 0xEE)
			fail_msg("line %d: bw_props_encode wrote past its size", line);
	pd(line, where, 0, out, buf, size);
	props_same(line, p, out);
}

static void test_round_trip(void **state)
{
	static const uint8_t adata[] = { 0x00, 0x01, 0xFE };
	static const uint8_t corr[] = { 0xDE, 0xAD, 0xBE, 0xEF };
	static const uint32_t ids[] = { 1, 300, BW_VARINT_MAX };
	uint8_t users[64], buf[512];
	uint32_t ulen = 0, off, id;
	struct bw_props p, q;
	struct bw_str k, v;

	(void)state;
	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("region"), S("eu-1")), 0);
	assert_int_equal(bw_props_put_user(users, sizeof(users), &ulen, S("k"), S("")), 0);

	/* A CONNACK telling the client everything. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SESSION_EXPIRY) | HAS(BW_PROP_ASSIGNED_CLIENT_ID) |
	        HAS(BW_PROP_SERVER_KEEP_ALIVE) | HAS(BW_PROP_AUTH_METHOD) | HAS(BW_PROP_AUTH_DATA) |
	        HAS(BW_PROP_RESPONSE_INFO) | HAS(BW_PROP_SERVER_REFERENCE) |
	        HAS(BW_PROP_REASON_STRING) | HAS(BW_PROP_RECEIVE_MAX) |
	        HAS(BW_PROP_TOPIC_ALIAS_MAX) | HAS(BW_PROP_MAX_QOS) |
	        HAS(BW_PROP_RETAIN_AVAILABLE) | HAS(BW_PROP_MAX_PACKET_SIZE) |
	        HAS(BW_PROP_WILDCARD_SUB_AVAILABLE) | HAS(BW_PROP_SUB_ID_AVAILABLE) |
	        HAS(BW_PROP_SHARED_SUB_AVAILABLE);
	p.session_expiry = 0xFFFFFFFF;
	p.assigned_client_id = S("auto-1234");
	p.server_keep_alive = 45;
	p.auth_method = S("SCRAM-SHA-256");
	p.auth_data = (struct bw_bin){ adata, sizeof(adata) };
	p.response_info = S("resp/");
	p.server_reference = S("other:1883");
	p.reason_string = S("welcome");
	p.receive_max = 65535;
	p.topic_alias_max = 100;
	p.max_qos = 1;
	p.retain_available = 0;
	p.max_packet_size = 1048576;
	p.wildcard_sub_available = 1;
	p.sub_id_available = 0;
	p.shared_sub_available = 1;
	p.raw = (struct bw_bin){ users, ulen };
	round_trip(__LINE__, &p, BW_CONNACK, buf, sizeof(buf), &q);
	assert_int_equal(q.user_count, 2);
	off = 0;
	assert_true(bw_props_next_user(&q, &off, &k, &v));
	STR_IS(k, "region");
	STR_IS(v, "eu-1");
	assert_true(bw_props_next_user(&q, &off, &k, &v));
	STR_IS(k, "k");
	STR_IS(v, "");
	assert_false(bw_props_next_user(&q, &off, &k, &v));

	/* A PUBLISH as fanned out, with three subscription identifiers. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_PAYLOAD_FORMAT) | HAS(BW_PROP_MESSAGE_EXPIRY) |
	        HAS(BW_PROP_CONTENT_TYPE) | HAS(BW_PROP_RESPONSE_TOPIC) |
	        HAS(BW_PROP_CORRELATION_DATA) | HAS(BW_PROP_TOPIC_ALIAS) |
	        HAS(BW_PROP_SUBSCRIPTION_ID);
	p.payload_format = 1;
	p.message_expiry = 3600;
	p.content_type = S("application/json");
	p.response_topic = S("reply/to/me");
	p.correlation_data = (struct bw_bin){ corr, sizeof(corr) };
	p.topic_alias = 7;
	p.sub_ids = ids;
	p.sub_id_count = 3;
	p.raw = (struct bw_bin){ users, ulen };
	round_trip(__LINE__, &p, BW_PUBLISH, buf, sizeof(buf), &q);
	assert_int_equal(q.user_count, 2);
	assert_int_equal(q.sub_id_count, 3);
	assert_int_equal(q.sub_id, 1);
	off = 0;
	for (size_t i = 0; i < 3; i++) {
		assert_true(bw_props_next_sub_id(&q, &off, &id));
		assert_int_equal(id, ids[i]);
	}
	assert_false(bw_props_next_sub_id(&q, &off, &id));

	/* A CONNECT asking for everything. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SESSION_EXPIRY) | HAS(BW_PROP_RECEIVE_MAX) |
	        HAS(BW_PROP_MAX_PACKET_SIZE) | HAS(BW_PROP_TOPIC_ALIAS_MAX) |
	        HAS(BW_PROP_REQUEST_RESPONSE_INFO) | HAS(BW_PROP_REQUEST_PROBLEM_INFO) |
	        HAS(BW_PROP_AUTH_METHOD) | HAS(BW_PROP_AUTH_DATA);
	p.session_expiry = 0;
	p.receive_max = 1;
	p.max_packet_size = 268435460;
	p.topic_alias_max = 0;
	p.request_response_info = 1;
	p.request_problem_info = 0;
	p.auth_method = S("");
	p.auth_data = (struct bw_bin){ adata, 0 };
	round_trip(__LINE__, &p, BW_CONNECT, buf, sizeof(buf), &q);
	assert_int_equal(q.user_count, 0);

	/* A will. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_WILL_DELAY) | HAS(BW_PROP_PAYLOAD_FORMAT) |
	        HAS(BW_PROP_MESSAGE_EXPIRY) | HAS(BW_PROP_CONTENT_TYPE);
	p.will_delay = 86400;
	p.payload_format = 0;
	p.message_expiry = 1;
	p.content_type = S("text/plain; charset=\xC3\xA9");
	p.raw = (struct bw_bin){ users, ulen };
	round_trip(__LINE__, &p, BW_PROPS_WILL, buf, sizeof(buf), &q);
	assert_int_equal(q.user_count, 2);

	/* A DISCONNECT. */
	memset(&p, 0, sizeof(p));
	p.has = HAS(BW_PROP_SESSION_EXPIRY) | HAS(BW_PROP_REASON_STRING) |
	        HAS(BW_PROP_SERVER_REFERENCE);
	p.session_expiry = 30;
	p.reason_string = S("bye");
	p.server_reference = S("b");
	round_trip(__LINE__, &p, BW_DISCONNECT, buf, sizeof(buf), &q);
}

static void test_put_user(void **state)
{
	static const uint8_t want[] = {
		0x26, 0x00, 0x03, 'k',  'e',  'y',  0x00, 0x05, 'v',  'a',
		'l',  'u',  'e',  0x26, 0x00, 0x00, 0x00, 0x02, 0xC3, 0xA9
	};
	uint8_t buf[32];
	uint32_t len = 0;
	struct bw_props p;
	struct bw_str k, v;
	uint32_t off = 0;

	(void)state;
	memset(buf, 0xEE, sizeof(buf));
	assert_int_equal(bw_props_put_user(buf, sizeof(buf), &len, S("key"), S("value")), 0);
	assert_int_equal(len, 13);
	assert_int_equal(bw_props_put_user(buf, sizeof(buf), &len, S(""), S("\xC3\xA9")), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	pd(__LINE__, BW_PUBLISH, 0, &p, buf, len);
	assert_int_equal(p.user_count, 2);
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	STR_IS(k, "key");
	STR_IS(v, "value");
	assert_true(bw_props_next_user(&p, &off, &k, &v));
	STR_IS(k, "");
	STR_IS(v, "\xC3\xA9");
	assert_false(bw_props_next_user(&p, &off, &k, &v));
}

static void test_put_user_nospace(void **state)
{
	uint8_t buf[32], copy[32];
	uint32_t len = 5;

	(void)state;
	/* "a" = "bc" takes 1 + 2 + 1 + 2 + 2 = 8 bytes: 5 + 8 = 13. */
	memset(buf, 0xEE, sizeof(buf));
	memcpy(copy, buf, sizeof(buf));
	assert_int_equal(bw_props_put_user(buf, 12, &len, S("a"), S("bc")), -ENOSPC);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, copy, sizeof(buf));
	assert_int_equal(bw_props_put_user(buf, 5, &len, S("a"), S("bc")), -ENOSPC);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, copy, sizeof(buf));
	assert_int_equal(bw_props_put_user(buf, 13, &len, S("a"), S("bc")), 0);
	assert_int_equal(len, 13);
	assert_memory_equal(buf + 5,
	                    "\x26\x00\x01"
	                    "a"
	                    "\x00\x02"
	                    "bc",
	                    8);
	assert_int_equal(buf[13], 0xEE);
}

static void test_copy_user(void **state)
{
	static const uint8_t block[] = {
		0x01, 0x01,                                         /* payload format */
		0x26, 0x00, 0x02, 'k',  '1',  0x00, 0x02, 'v', '1', /* user */
		0x02, 0x00, 0x00, 0x00, 0x0A,                       /* message expiry */
		0x0B, 0x05,                                         /* subscription id */
		0x26, 0x00, 0x02, 'k',  '2',  0x00, 0x00,           /* user */
		0x23, 0x00, 0x03,                                   /* topic alias */
	};
	static const uint8_t users[] = {
		0x26, 0x00, 0x02, 'k',  '1', 0x00, 0x02, 'v',
		'1',  0x26, 0x00, 0x02, 'k', '2',  0x00, 0x00,
	};
	uint8_t out[64], enc[64];
	struct bw_props p, q;

	(void)state;
	pd(__LINE__, BW_PUBLISH, 0, &p, block, sizeof(block));
	assert_int_equal(p.user_count, 2);
	assert_int_equal(bw_props_user_size(&p), sizeof(users));
	memset(out, 0xEE, sizeof(out));
	assert_int_equal(bw_props_copy_user(&p, out), sizeof(users));
	assert_memory_equal(out, users, sizeof(users));
	assert_int_equal(out[sizeof(users)], 0xEE);

	/* The copy forwards verbatim through raw. */
	memset(&q, 0, sizeof(q));
	q.raw = (struct bw_bin){ out, sizeof(users) };
	assert_int_equal(bw_props_size(&q), sizeof(users));
	assert_int_equal(bw_props_encode(&q, enc), sizeof(users));
	assert_memory_equal(enc, users, sizeof(users));

	/* No user properties: nothing to copy. */
	pd(__LINE__, BW_PUBLISH, 0, &p, block, 2);
	assert_int_equal(bw_props_user_size(&p), 0);
	assert_int_equal(bw_props_copy_user(&p, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prop_type_table), cmocka_unit_test(test_prop_names),
		cmocka_unit_test(test_decode_empty),    cmocka_unit_test(test_decode_each),
		cmocka_unit_test(test_decode_values),   cmocka_unit_test(test_every_place),
		cmocka_unit_test(test_duplicates),      cmocka_unit_test(test_user_repeat),
		cmocka_unit_test(test_sub_ids),         cmocka_unit_test(test_not_allowed),
		cmocka_unit_test(test_unknown_id),      cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_utf8),        cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_encode_single),   cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_put_user),        cmocka_unit_test(test_put_user_nospace),
		cmocka_unit_test(test_copy_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
