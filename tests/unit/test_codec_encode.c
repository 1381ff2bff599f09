/*
 * Unit tests for the encoding side of the MQTT packet codec
 * (proto/mqtt/codec.h): variable byte integers at every length boundary,
 * framing of whole, partial, back-to-back and oversized packets, encode /
 * frame / decode round trips of every packet type in MQTT 3.1.1 and 5.0
 * with every field compared, exact bytes of the short forms (acks,
 * DISCONNECT, AUTH, PINGREQ, PINGRESP), re-encoding a decoded packet with
 * and without its user properties, the fan-out PUBLISH head, the wire's
 * size limits, and the packet and reason names. Property blocks on their
 * own are covered by test_props.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/mqtt/codec.h"
#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/props.h"

/* A byte array literal and its length. */
#define BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

#define HAS(id) BW_PROP_BIT(id)

static struct bw_str S(const char *s) {
	return (struct bw_str){ (const uint8_t *)s, (uint16_t)strlen(s) };
}

static struct bw_bin
B(const char *s) {
	return (struct bw_bin){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static void
hex(char *out, size_t cap, const uint8_t *s, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02X ", s[i]);
}

/* Checks got[0..n) equals exp[0..en), printing both on a mismatch. */
static void bytes_is(int line, const uint8_t *got, size_t n, const uint8_t *exp, size_t en)
{
	char g[1024], e[1024];

	if (n == en && (n == 0 || memcmp(got, exp, n) == 0))
		return;
	hex(g, sizeof(g), got, n);
	hex(e, sizeof(e), exp, en);
	fail_msg("line %d: bytes\n  got      %s(%zu)\n  expected %s(%zu)", line, g, n, e, en);
}

#define BYTES_IS(got, n, ...) bytes_is(__LINE__, got, n, BYTES(__VA_ARGS__))

static void str_eq(int line, struct bw_str a, struct bw_str b)
{
	if (a.len != b.len || (a.len && memcmp(a.p, b.p, a.len) != 0))
		fail_msg("line %d: string \"%.*s\" != \"%.*s\"", line, (int)a.len,
		         a.p ? (const char *)a.p : "", (int)b.len, b.p ? (const char *)b.p : "");
}

static void bin_eq(int line, struct bw_bin a, struct bw_bin b)
{
	if (a.len != b.len || (a.len && memcmp(a.p, b.p, a.len) != 0))
		fail_msg("line %d: binary of %u bytes != binary of %u bytes", line, a.len, b.len);
}

#define STR_EQ(a, b) str_eq(__LINE__, a, b)
#define BIN_EQ(a, b) bin_eq(__LINE__, a, b)

/*
 * Compares the single-valued properties of a decoded block (got) with the
 * ones encoded (want): the same `has` bits and equal values for each.
 */
static void props_eq(int line, const struct bw_props *got, const struct bw_props *want)
{
	uint64_t h = want->has;

	if (got->has != h)
		fail_msg("line %d: props.has %#llx, expected %#llx", line,
		         (unsigned long long)got->has, (unsigned long long)h);
#define NUM(id, f)                                                                                 \
	if ((h & HAS(id)) && got->f != want->f)                                                    \
		fail_msg("line %d: property " #f " = %u, expected %u", line, (unsigned)got->f,     \
		         (unsigned)want->f);
#define STRF(id, f)                                                                                \
	if (h & HAS(id))                                                                           \
		str_eq(line, got->f, want->f);
#define BINF(id, f)                                                                                \
	if (h & HAS(id))                                                                           \
		bin_eq(line, got->f, want->f);
	NUM(BW_PROP_PAYLOAD_FORMAT, payload_format)
	NUM(BW_PROP_MESSAGE_EXPIRY, message_expiry)
	NUM(BW_PROP_SESSION_EXPIRY, session_expiry)
	NUM(BW_PROP_WILL_DELAY, will_delay)
	NUM(BW_PROP_MAX_PACKET_SIZE, max_packet_size)
	NUM(BW_PROP_SUBSCRIPTION_ID, sub_id)
	NUM(BW_PROP_SERVER_KEEP_ALIVE, server_keep_alive)
	NUM(BW_PROP_RECEIVE_MAX, receive_max)
	NUM(BW_PROP_TOPIC_ALIAS_MAX, topic_alias_max)
	NUM(BW_PROP_TOPIC_ALIAS, topic_alias)
	NUM(BW_PROP_REQUEST_PROBLEM_INFO, request_problem_info)
	NUM(BW_PROP_REQUEST_RESPONSE_INFO, request_response_info)
	NUM(BW_PROP_MAX_QOS, max_qos)
	NUM(BW_PROP_RETAIN_AVAILABLE, retain_available)
	NUM(BW_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available)
	NUM(BW_PROP_SUB_ID_AVAILABLE, sub_id_available)
	NUM(BW_PROP_SHARED_SUB_AVAILABLE, shared_sub_available)
	STRF(BW_PROP_CONTENT_TYPE, content_type)
	STRF(BW_PROP_RESPONSE_TOPIC, response_topic)
	BINF(BW_PROP_CORRELATION_DATA, correlation_data)
	STRF(BW_PROP_ASSIGNED_CLIENT_ID, assigned_client_id)
	STRF(BW_PROP_AUTH_METHOD, auth_method)
	BINF(BW_PROP_AUTH_DATA, auth_data)
	STRF(BW_PROP_RESPONSE_INFO, response_info)
	STRF(BW_PROP_SERVER_REFERENCE, server_reference)
	STRF(BW_PROP_REASON_STRING, reason_string)
#undef NUM
#undef STRF
#undef BINF
}

#define PROPS_EQ(got, want) props_eq(__LINE__, got, want)

/*
 * Encodes pkt in `version` into buf (cap bytes), checking that
 * bw_codec_size() is exact and that one byte less is refused, then frames
 * and decodes the bytes into *out. Returns the encoded size. out's views
 * point into buf.
 */
static size_t round_trip(int line, const struct bw_packet *pkt, uint8_t version, uint8_t *buf,
                         size_t cap, struct bw_packet *out)
{
	struct bw_frame f;
	const char *why = NULL;
	size_t n = bw_codec_size(pkt, version);
	int rc;

	if (n == 0 || n > cap)
		fail_msg("line %d: bw_codec_size = %zu (cap %zu)", line, n, cap);
	rc = bw_codec_encode(pkt, version, buf, n - 1);
	if (rc != -ENOSPC)
		fail_msg("line %d: encode into %zu bytes = %d, expected -ENOSPC", line, n - 1, rc);
	memset(buf, 0xEE, cap);
	rc = bw_codec_encode(pkt, version, buf, n);
	if (rc != (int)n)
		fail_msg("line %d: bw_codec_encode = %d, expected %zu", line, rc, n);
	rc = bw_codec_frame(buf, n, BW_PACKET_SIZE_MAX, &f, &why);
	if (rc != 0 || f.size != n || f.type != pkt->type)
		fail_msg("line %d: frame = %d size %u type %u (why: %s)", line, rc, f.size, f.type,
		         why ? why : "(null)");
	memset(out, 0xA5, sizeof(*out));
	rc = bw_codec_decode(buf, n, version, out, &why);
	if (rc != 0)
		fail_msg("line %d: bw_codec_decode = %d (why: %s)", line, rc, why ? why : "(null)");
	if (out->type != pkt->type)
		fail_msg("line %d: decoded type %u, expected %u", line, out->type, pkt->type);
	return n;
}

#define ROUND_TRIP(pkt, v, buf, out) round_trip(__LINE__, pkt, v, buf, sizeof(buf), out)

/* ---- variable byte integers ------------------------------------------- */

/* MQTT 5.0 section 1.5.5: every length boundary and its exact bytes. */
static const struct {
	uint32_t v;
	int n;
	uint8_t b[4];
} varints[] = {
	{ 0, 1, { 0x00 } },
	{ 127, 1, { 0x7F } },
	{ 128, 2, { 0x80, 0x01 } },
	{ 16383, 2, { 0xFF, 0x7F } },
	{ 16384, 3, { 0x80, 0x80, 0x01 } },
	{ 2097151, 3, { 0xFF, 0xFF, 0x7F } },
	{ 2097152, 4, { 0x80, 0x80, 0x80, 0x01 } },
	{ 268435455, 4, { 0xFF, 0xFF, 0xFF, 0x7F } },
};

#define NVARINTS (sizeof(varints) / sizeof(varints[0]))

static void test_varint_boundaries(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVARINTS; i++) {
		uint8_t buf[8];
		uint32_t v = 0xDEADBEEF;

		memset(buf, 0xEE, sizeof(buf));
		assert_int_equal(bw_varint_size(varints[i].v), varints[i].n);
		assert_int_equal(bw_varint_encode(buf, varints[i].v), varints[i].n);
		bytes_is(__LINE__, buf, (size_t)varints[i].n, varints[i].b, (size_t)varints[i].n);
		assert_int_equal(buf[varints[i].n], 0xEE);
		assert_int_equal(bw_varint_decode(buf, (size_t)varints[i].n, &v), varints[i].n);
		assert_int_equal(v, varints[i].v);
		/* Trailing bytes are not read as part of the integer. */
		assert_int_equal(bw_varint_decode(buf, sizeof(buf), &v), varints[i].n);
		assert_int_equal(v, varints[i].v);
		/* Every strict prefix asks for more. */
		for (int k = 0; k < varints[i].n; k++)
			assert_int_equal(bw_varint_decode(buf, (size_t)k, &v), 0);
	}
}

static void test_varint_bad(void **state)
{
	uint32_t v = 0;

	(void)state;
	assert_int_equal(bw_varint_decode(BYTES(0x80), &v), 0);
	assert_int_equal(bw_varint_decode(BYTES(0xFF, 0xFF, 0xFF), &v), 0);
	/* A fifth byte would be needed: [MQTT-1.5.5] allows four. */
	assert_int_equal(bw_varint_decode(BYTES(0x80, 0x80, 0x80, 0x80, 0x01), &v),
	                 -BW_RC_MALFORMED);
	assert_int_equal(bw_varint_decode(BYTES(0xFF, 0xFF, 0xFF, 0xFF), &v), -BW_RC_MALFORMED);
	/* Non-minimal encodings ([MQTT-1.5.5-1]). */
	assert_int_equal(bw_varint_decode(BYTES(0x80, 0x00), &v), -BW_RC_MALFORMED);
	assert_int_equal(bw_varint_decode(BYTES(0xFF, 0x80, 0x00), &v), -BW_RC_MALFORMED);
	assert_int_equal(bw_varint_decode(BYTES(0x80, 0x80, 0x80, 0x00), &v), -BW_RC_MALFORMED);
}

/* ---- framing ------------------------------------------------------------ */

/* PUBLISH QoS 1 retain, topic "a/b", packet id 10, payload "hi" (3.1.1). */
static const uint8_t publish_311[] = {
	0x33, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'
};

static void test_frame_whole(void **state)
{
	struct bw_frame f;
	const char *why = NULL;

	(void)state;
	memset(&f, 0xA5, sizeof(f));
	assert_int_equal(
	        bw_codec_frame(publish_311, sizeof(publish_311), BW_PACKET_SIZE_MAX, &f, &why), 0);
	assert_int_equal(f.type, BW_PUBLISH);
	assert_int_equal(f.flags, 0x3);
	assert_int_equal(f.header_len, 2);
	assert_int_equal(f.remaining_len, 9);
	assert_int_equal(f.size, sizeof(publish_311));
}

static void test_frame_prefixes(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(publish_311); k++) {
		struct bw_frame f;

		memset(&f, 0xA5, sizeof(f));
		assert_int_equal(bw_codec_frame(publish_311, k, BW_PACKET_SIZE_MAX, &f, NULL),
		                 BW_CODEC_AGAIN);
		/* The fixed header is two bytes here. */
		assert_int_equal(f.size, k < 2 ? 0 : sizeof(publish_311));
		if (k >= 2) {
			assert_int_equal(f.type, BW_PUBLISH);
			assert_int_equal(f.header_len, 2);
			assert_int_equal(f.remaining_len, 9);
		}
	}
}

static void test_frame_back_to_back(void **state)
{
	uint8_t buf[64];
	struct bw_frame f;
	size_t n = sizeof(publish_311);

	(void)state;
	memcpy(buf, publish_311, n);
	buf[n] = 0xC0; /* PINGREQ */
	buf[n + 1] = 0x00;
	memcpy(buf + n + 2, publish_311, n);
	size_t total = 2 * n + 2;

	assert_int_equal(bw_codec_frame(buf, total, BW_PACKET_SIZE_MAX, &f, NULL), 0);
	assert_int_equal(f.size, n);
	assert_int_equal(f.type, BW_PUBLISH);
	size_t off = f.size;
	assert_int_equal(bw_codec_frame(buf + off, total - off, BW_PACKET_SIZE_MAX, &f, NULL), 0);
	assert_int_equal(f.type, BW_PINGREQ);
	assert_int_equal(f.size, 2);
	assert_int_equal(f.remaining_len, 0);
	off += f.size;
	assert_int_equal(bw_codec_frame(buf + off, total - off, BW_PACKET_SIZE_MAX, &f, NULL), 0);
	assert_int_equal(f.size, n);
	assert_int_equal(f.flags, 0x3);
	off += f.size;
	assert_int_equal(off, total);
	assert_int_equal(bw_codec_frame(buf + off, 0, BW_PACKET_SIZE_MAX, &f, NULL),
	                 BW_CODEC_AGAIN);
	assert_int_equal(f.size, 0);
}

static void test_frame_header_only(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVARINTS; i++) {
		uint8_t buf[5] = { 0x30 };
		struct bw_frame f;
		const char *why = NULL;
		size_t hl = 1 + (size_t)varints[i].n;
		uint32_t rl = varints[i].v;

		memcpy(buf + 1, varints[i].b, (size_t)varints[i].n);
		memset(&f, 0xA5, sizeof(f));
		assert_int_equal(bw_codec_frame(buf, hl, BW_PACKET_SIZE_MAX, &f, &why),
		                 rl == 0 ? 0 : BW_CODEC_AGAIN);
		assert_int_equal(f.type, BW_PUBLISH);
		assert_int_equal(f.flags, 0);
		assert_int_equal(f.header_len, hl);
		assert_int_equal(f.remaining_len, rl);
		assert_int_equal(f.size, hl + rl);
	}
}

static void test_frame_max_size(void **state)
{
	struct bw_frame f;
	const char *why = NULL;

	(void)state;
	/* publish_311 is 11 bytes: a limit of 11 admits it, 10 does not. */
	assert_int_equal(bw_codec_frame(publish_311, sizeof(publish_311), 11, &f, NULL), 0);
	assert_int_equal(bw_codec_frame(publish_311, 2, 11, &f, NULL), BW_CODEC_AGAIN);
	assert_int_equal(f.size, 11);
	assert_int_equal(bw_codec_frame(publish_311, 2, 10, &f, &why), -BW_RC_PACKET_TOO_LARGE);
	assert_non_null(why);

	/* The largest packet the wire allows, known from its header alone. */
	why = NULL;
	assert_int_equal(
	        bw_codec_frame(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), BW_PACKET_SIZE_MAX, &f, &why),
	        BW_CODEC_AGAIN);
	assert_int_equal(f.size, BW_PACKET_SIZE_MAX);
	assert_int_equal(bw_codec_frame(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), BW_PACKET_SIZE_MAX - 1,
	                                &f, &why),
	                 -BW_RC_PACKET_TOO_LARGE);
	assert_non_null(why);

	/* A 3-byte header: 1 + 2 + 200 = 203 bytes. */
	assert_int_equal(bw_codec_frame(BYTES(0x30, 0xC8, 0x01), 203, &f, NULL), BW_CODEC_AGAIN);
	assert_int_equal(f.size, 203);
	assert_int_equal(bw_codec_frame(BYTES(0x30, 0xC8, 0x01), 202, &f, NULL),
	                 -BW_RC_PACKET_TOO_LARGE);
}

static void test_frame_bad(void **state)
{
	struct bw_frame f;
	const char *why = NULL;

	(void)state;
	assert_int_equal(bw_codec_frame(BYTES(0x00, 0x00), BW_PACKET_SIZE_MAX, &f, &why),
	                 -BW_RC_MALFORMED);
	assert_non_null(why);
	why = NULL;
	assert_int_equal(bw_codec_frame(BYTES(0x0F), BW_PACKET_SIZE_MAX, &f, &why),
	                 -BW_RC_MALFORMED);
	assert_non_null(why);
	why = NULL;
	assert_int_equal(bw_codec_frame(BYTES(0x30, 0x80, 0x80, 0x80, 0x80, 0x01),
	                                BW_PACKET_SIZE_MAX, &f, &why),
	                 -BW_RC_MALFORMED);
	assert_non_null(why);
	assert_int_equal(bw_codec_frame(BYTES(0x30, 0x80, 0x00), BW_PACKET_SIZE_MAX, &f, NULL),
	                 -BW_RC_MALFORMED);
}

/* ---- round trips: CONNECT and CONNACK ---------------------------------- */

static void connect_common(struct bw_packet *p, uint8_t version)
{
	memset(p, 0, sizeof(*p));
	p->type = BW_CONNECT;
	p->connect.version = version;
	p->connect.clean_start = true;
	p->connect.will = true;
	p->connect.will_qos = 1;
	p->connect.will_retain = true;
	p->connect.has_username = true;
	p->connect.has_password = true;
	p->connect.keep_alive = 0x1234;
	p->connect.client_id = S("client-1");
	p->connect.will_topic = S("last/will");
	p->connect.will_payload = B("gone");
	p->connect.username = S("alice");
	p->connect.password = (struct bw_bin){ (const uint8_t *)"s\0cret", 6 };
}

static void connect_eq(const struct bw_connect *g, const struct bw_connect *w)
{
	assert_int_equal(g->version, w->version);
	assert_int_equal(g->clean_start, w->clean_start);
	assert_int_equal(g->will, w->will);
	assert_int_equal(g->will_qos, w->will_qos);
	assert_int_equal(g->will_retain, w->will_retain);
	assert_int_equal(g->has_username, w->has_username);
	assert_int_equal(g->has_password, w->has_password);
	assert_int_equal(g->keep_alive, w->keep_alive);
	STR_EQ(g->client_id, w->client_id);
	STR_EQ(g->will_topic, w->will_topic);
	BIN_EQ(g->will_payload, w->will_payload);
	STR_EQ(g->username, w->username);
	BIN_EQ(g->password, w->password);
	PROPS_EQ(&g->props, &w->props);
	PROPS_EQ(&g->will_props, &w->will_props);
}

static void test_connect_311(void **state)
{
	struct bw_packet p, d;
	uint8_t buf[128];

	(void)state;
	connect_common(&p, BW_MQTT_311);
	size_t n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	/* 10 header + 10 id + 11 will topic + 6 will payload + 7 user + 8 pass. */
	assert_int_equal(n, 2 + 10 + 10 + 11 + 6 + 7 + 8);
	BYTES_IS(buf, 12, 0x10, 0x34, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEE, 0x12, 0x34);
	assert_int_equal(d.flags, 0);
	connect_eq(&d.connect, &p.connect);
	assert_int_equal(d.connect.props.block.len, 0);

	/* No will, no credentials, no clean start. */
	memset(&p.connect, 0, sizeof(p.connect));
	p.connect.version = BW_MQTT_311;
	p.connect.client_id = S("c");
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x00, 0x00,
	         0x01, 'c');
	connect_eq(&d.connect, &p.connect);
}

/* Walks the user properties of a decoded block and checks them in order. */
static void users_are(int line, const struct bw_props *p, const char *const *kv, unsigned n)
{
	uint32_t off = 0;
	struct bw_str k, v;
	unsigned i = 0;

	if (p->user_count != n)
		fail_msg("line %d: user_count %u, expected %u", line, p->user_count, n);
	while (bw_props_next_user(p, &off, &k, &v)) {
		if (i >= n)
			fail_msg("line %d: more than %u user properties", line, n);
		str_eq(line, k, S(kv[2 * i]));
		str_eq(line, v, S(kv[2 * i + 1]));
		i++;
	}
	if (i != n)
		fail_msg("line %d: walked %u user properties, expected %u", line, i, n);
}

#define USERS_ARE(p, n, ...) users_are(__LINE__, p, (const char *const[]){ __VA_ARGS__ }, n)

static void test_connect_5(void **state)
{
	struct bw_packet p, d;
	uint8_t buf[256], raw[64];
	uint32_t rawlen = 0;

	(void)state;
	connect_common(&p, BW_MQTT_5);
	p.connect.props.has = HAS(BW_PROP_SESSION_EXPIRY) | HAS(BW_PROP_RECEIVE_MAX) |
	                      HAS(BW_PROP_MAX_PACKET_SIZE) | HAS(BW_PROP_AUTH_METHOD);
	p.connect.props.session_expiry = 3600;
	p.connect.props.receive_max = 20;
	p.connect.props.max_packet_size = 65536;
	p.connect.props.auth_method = S("SCRAM-SHA-1");
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("k1"), S("v1")), 0);
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("k2"), S("")), 0);
	p.connect.will_props.has = HAS(BW_PROP_WILL_DELAY) | HAS(BW_PROP_MESSAGE_EXPIRY);
	p.connect.will_props.will_delay = 30;
	p.connect.will_props.message_expiry = 0x01020304;
	p.connect.will_props.raw = (struct bw_bin){ raw, rawlen };

	size_t n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf + 2, 8, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xEE);
	connect_eq(&d.connect, &p.connect);
	assert_int_equal(d.connect.props.user_count, 0);
	/* 5 + 3 + 5 + 14 bytes of connect properties. */
	assert_int_equal(d.connect.props.block.len, 27);
	assert_int_equal(d.connect.will_props.block.len, 5 + 5 + rawlen);
	USERS_ARE(&d.connect.will_props, 2, "k1", "v1", "k2", "");
	/* The will's user properties are the last bytes of its block. */
	bytes_is(__LINE__, d.connect.will_props.block.p + 10, rawlen, raw, rawlen);
	assert_true(n > 0);

	/* The same CONNECT in 3.1.1 drops the properties. */
	size_t n311 = bw_codec_size(&p, BW_MQTT_311);
	assert_int_equal(n311, n - 1 - 27 - 1 - (10 + rawlen));
}

static void test_connack(void **state)
{
	struct bw_packet p, d;
	uint8_t buf[128];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_CONNACK;
	p.connack.session_present = true;
	p.connack.code = BW_CONNACK_311_ACCEPTED;
	size_t n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0x20, 0x02, 0x01, 0x00);
	assert_true(d.connack.session_present);
	assert_int_equal(d.connack.code, 0);

	p.connack.session_present = false;
	p.connack.code = BW_CONNACK_311_NOT_AUTHORIZED;
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0x20, 0x02, 0x00, 0x05);
	assert_false(d.connack.session_present);
	assert_int_equal(d.connack.code, 5);

	/* 5.0 without properties still carries a zero property length. */
	p.connack.code = BW_RC_SUCCESS;
	p.connack.session_present = true;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0x20, 0x03, 0x01, 0x00, 0x00);
	assert_true(d.connack.session_present);

	p.connack.session_present = false;
	p.connack.code = BW_RC_BAD_AUTH_METHOD;
	p.connack.props.has = HAS(BW_PROP_ASSIGNED_CLIENT_ID) | HAS(BW_PROP_SERVER_KEEP_ALIVE) |
	                      HAS(BW_PROP_REASON_STRING) | HAS(BW_PROP_RECEIVE_MAX) |
	                      HAS(BW_PROP_TOPIC_ALIAS_MAX) | HAS(BW_PROP_MAX_QOS) |
	                      HAS(BW_PROP_RETAIN_AVAILABLE) | HAS(BW_PROP_MAX_PACKET_SIZE);
	p.connack.props.assigned_client_id = S("auto-7");
	p.connack.props.server_keep_alive = 60;
	p.connack.props.reason_string = S("no such method");
	p.connack.props.receive_max = 100;
	p.connack.props.topic_alias_max = 10;
	p.connack.props.max_qos = 1;
	p.connack.props.retain_available = 0;
	p.connack.props.max_packet_size = 1u << 20;
	ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	assert_false(d.connack.session_present);
	assert_int_equal(d.connack.code, BW_RC_BAD_AUTH_METHOD);
	PROPS_EQ(&d.connack.props, &p.connack.props);
	assert_int_equal(d.connack.props.user_count, 0);
}

/* ---- round trips: PUBLISH ---------------------------------------------- */

static void publish_eq(const struct bw_packet *d, const struct bw_publish *w)
{
	const struct bw_publish *g = &d->publish;

	assert_int_equal(d->flags, (w->dup ? 8 : 0) | w->qos << 1 | (w->retain ? 1 : 0));
	assert_int_equal(g->qos, w->qos);
	assert_int_equal(g->dup, w->dup);
	assert_int_equal(g->retain, w->retain);
	assert_int_equal(g->packet_id, w->packet_id);
	STR_EQ(g->topic, w->topic);
	BIN_EQ(g->payload, w->payload);
}

static void test_publish_qos(void **state)
{
	static const struct {
		uint8_t qos;
		bool dup, retain;
		uint16_t id;
		uint8_t b0;
	} cases[] = {
		{ 0, false, false, 0, 0x30 },     { 0, false, true, 0, 0x31 },
		{ 1, false, false, 1, 0x32 },     { 1, true, true, 0xFFFF, 0x3B },
		{ 2, false, true, 0x0102, 0x35 }, { 2, true, false, 7, 0x3C },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
			struct bw_packet p, d;
			uint8_t buf[64];

			memset(&p, 0, sizeof(p));
			p.type = BW_PUBLISH;
			p.publish.qos = cases[i].qos;
			p.publish.dup = cases[i].dup;
			p.publish.retain = cases[i].retain;
			p.publish.packet_id = cases[i].id;
			p.publish.topic = S("t/x");
			p.publish.payload = B("payload");
			size_t n = ROUND_TRIP(&p, v, buf, &d);
			size_t rl = 5 + (cases[i].qos ? 2 : 0) + (v == BW_MQTT_5) + 7;
			assert_int_equal(n, 2 + rl);
			assert_int_equal(buf[0], cases[i].b0);
			assert_int_equal(buf[1], rl);
			publish_eq(&d, &p.publish);
			assert_int_equal(d.publish.props.has, 0);
		}
	}

	/* An empty payload and, in 5.0, an empty topic standing for an alias. */
	struct bw_packet p, d;
	uint8_t buf[64];
	memset(&p, 0, sizeof(p));
	p.type = BW_PUBLISH;
	p.publish.topic = S("a");
	size_t n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0x30, 0x03, 0x00, 0x01, 'a');
	assert_int_equal(d.publish.payload.len, 0);
	p.publish.topic = S("");
	p.publish.props.has = HAS(BW_PROP_TOPIC_ALIAS);
	p.publish.props.topic_alias = 3;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03);
	publish_eq(&d, &p.publish);
	PROPS_EQ(&d.publish.props, &p.publish.props);
}

static void test_publish_5_props(void **state)
{
	static const uint32_t ids[] = { 1, 300, 268435455 };
	struct bw_packet p, d;
	uint8_t buf[256], raw[64];
	uint32_t rawlen = 0, off = 0, id = 0;

	(void)state;
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("a"), S("1")), 0);
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("a"), S("2")), 0);
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("b"), S("x y")), 0);
	memset(&p, 0, sizeof(p));
	p.type = BW_PUBLISH;
	p.publish.qos = 1;
	p.publish.retain = true;
	p.publish.packet_id = 99;
	p.publish.topic = S("sensors/1/temp");
	p.publish.payload = (struct bw_bin){ (const uint8_t *)"\x00\x01\xFF", 3 };
	p.publish.props.has = HAS(BW_PROP_MESSAGE_EXPIRY) | HAS(BW_PROP_CONTENT_TYPE) |
	                      HAS(BW_PROP_RESPONSE_TOPIC) | HAS(BW_PROP_CORRELATION_DATA) |
	                      HAS(BW_PROP_PAYLOAD_FORMAT);
	p.publish.props.message_expiry = 86400;
	p.publish.props.content_type = S("application/octet-stream");
	p.publish.props.response_topic = S("reply/here");
	p.publish.props.correlation_data = (struct bw_bin){ (const uint8_t *)"\x00\x2A", 2 };
	p.publish.props.payload_format = 0;
	p.publish.props.raw = (struct bw_bin){ raw, rawlen };
	p.publish.props.sub_ids = ids;
	p.publish.props.sub_id_count = 3;

	ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	publish_eq(&d, &p.publish);
	/* The decoder also notes the first subscription identifier. */
	struct bw_props want = p.publish.props;
	want.has |= HAS(BW_PROP_SUBSCRIPTION_ID);
	want.sub_id = 1;
	PROPS_EQ(&d.publish.props, &want);
	assert_int_equal(d.publish.props.sub_id_count, 3);
	assert_int_equal(d.publish.props.sub_id, 1);
	assert_null(d.publish.props.sub_ids);
	assert_int_equal(d.publish.props.raw.len, 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(bw_props_next_sub_id(&d.publish.props, &off, &id));
		assert_int_equal(id, ids[i]);
	}
	assert_false(bw_props_next_sub_id(&d.publish.props, &off, &id));
	USERS_ARE(&d.publish.props, 3, "a", "1", "a", "2", "b", "x y");
	/* 5 + 27 + 13 + 5 + 2 fields, 2 + 3 + 5 identifiers, then raw. */
	assert_int_equal(d.publish.props.block.len, 52 + 10 + rawlen);
	bytes_is(__LINE__, d.publish.props.block.p + 62, rawlen, raw, rawlen);
}

/* ---- round trips: PUBACK, PUBREC, PUBREL, PUBCOMP ----------------------- */

static void test_acks(void **state)
{
	static const uint8_t types[] = { BW_PUBACK, BW_PUBREC, BW_PUBREL, BW_PUBCOMP };

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		uint8_t t = types[i];
		uint8_t b0 = (uint8_t)(t << 4 | (t == BW_PUBREL ? 2 : 0));
		/* 0x10 is for PUBACK and PUBREC only; PUBREL and PUBCOMP get 0x92. */
		uint8_t code = t == BW_PUBACK || t == BW_PUBREC ? 0x10 : 0x92;
		struct bw_packet p, d;
		uint8_t buf[64];
		size_t n;

		memset(&p, 0, sizeof(p));
		p.type = t;
		p.ack.packet_id = 0x0107;
		n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
		BYTES_IS(buf, n, b0, 0x02, 0x01, 0x07);
		assert_int_equal(d.flags, b0 & 0x0F);
		assert_int_equal(d.ack.packet_id, 0x0107);
		assert_int_equal(d.ack.code, 0);

		/* A 3.1.1 ack has no room for a code: it is dropped. */
		p.ack.code = code;
		n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
		BYTES_IS(buf, n, b0, 0x02, 0x01, 0x07);

		/* 5.0, success and no properties: remaining length 2. */
		p.ack.code = 0;
		n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
		BYTES_IS(buf, n, b0, 0x02, 0x01, 0x07);
		assert_int_equal(d.ack.code, 0);
		assert_int_equal(d.ack.props.has, 0);

		/* A code and no properties: remaining length 3. */
		p.ack.code = code;
		n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
		BYTES_IS(buf, n, b0, 0x03, 0x01, 0x07, code);
		assert_int_equal(d.ack.packet_id, 0x0107);
		assert_int_equal(d.ack.code, code);
		assert_int_equal(d.ack.props.has, 0);

		/* A code and a reason string. */
		p.ack.props.has = HAS(BW_PROP_REASON_STRING);
		p.ack.props.reason_string = S("why");
		n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
		BYTES_IS(buf, n, b0, 0x0A, 0x01, 0x07, code, 0x06, 0x1F, 0x00, 0x03, 'w', 'h', 'y');
		assert_int_equal(d.ack.code, code);
		PROPS_EQ(&d.ack.props, &p.ack.props);

		/* Success with a property still writes the code. */
		p.ack.code = 0;
		n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
		BYTES_IS(buf, n, b0, 0x0A, 0x01, 0x07, 0x00, 0x06, 0x1F, 0x00, 0x03, 'w', 'h', 'y');
		assert_int_equal(d.ack.code, 0);
		PROPS_EQ(&d.ack.props, &p.ack.props);
	}
}

/* ---- round trips: SUBSCRIBE and UNSUBSCRIBE ----------------------------- */

static const struct bw_sub_entry sub_entries[] = {
	{ { (const uint8_t *)"a/+", 3 }, 0, false, false, 0 },
	{ { (const uint8_t *)"b/#", 3 }, 1, true, false, 1 },
	{ { (const uint8_t *)"$share/g/c", 10 }, 2, false, true, 2 },
};

static void test_subscribe(void **state)
{
	(void)state;
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		struct bw_packet p, d;
		struct bw_sub_entry e;
		uint8_t entries[64], buf[128];
		uint32_t len = 0, off = 0;

		for (size_t i = 0; i < 3; i++)
			assert_int_equal(bw_codec_put_sub(entries, sizeof(entries), &len,
			                                  &sub_entries[i], v),
			                 0);
		assert_int_equal(len, 6 + 6 + 13);
		/* Options bytes: in 3.1.1 only the QoS. */
		assert_int_equal(entries[5], 0x00);
		assert_int_equal(entries[11], v == BW_MQTT_5 ? 0x15 : 0x01);
		assert_int_equal(entries[24], v == BW_MQTT_5 ? 0x2A : 0x02);

		memset(&p, 0, sizeof(p));
		p.type = BW_SUBSCRIBE;
		p.subscribe.packet_id = 42;
		p.subscribe.entries = (struct bw_bin){ entries, len };
		p.subscribe.count = 3;
		if (v == BW_MQTT_5) {
			p.subscribe.props.has = HAS(BW_PROP_SUBSCRIPTION_ID);
			p.subscribe.props.sub_id = 77;
		}
		size_t n = ROUND_TRIP(&p, v, buf, &d);
		assert_int_equal(buf[0], 0x82);
		assert_int_equal(n, 2 + 2 + (v == BW_MQTT_5 ? 3 : 0) + len);
		assert_int_equal(d.flags, 2);
		assert_int_equal(d.subscribe.packet_id, 42);
		assert_int_equal(d.subscribe.count, 3);
		BIN_EQ(d.subscribe.entries, p.subscribe.entries);
		PROPS_EQ(&d.subscribe.props, &p.subscribe.props);
		for (size_t i = 0; i < 3; i++) {
			const struct bw_sub_entry *w = &sub_entries[i];
			assert_true(bw_codec_next_sub(&d.subscribe, v, &off, &e));
			STR_EQ(e.filter, w->filter);
			assert_int_equal(e.qos, w->qos);
			assert_int_equal(e.no_local, v == BW_MQTT_5 && w->no_local);
			assert_int_equal(e.retain_as_published,
			                 v == BW_MQTT_5 && w->retain_as_published);
			assert_int_equal(e.retain_handling,
			                 v == BW_MQTT_5 ? w->retain_handling : 0);
		}
		assert_false(bw_codec_next_sub(&d.subscribe, v, &off, &e));
	}
}

static void test_unsubscribe(void **state)
{
	static const char *const filters[] = { "a/+", "b/#", "plain" };

	(void)state;
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		struct bw_packet p, d;
		struct bw_str f;
		uint8_t entries[64], buf[128], raw[32];
		uint32_t len = 0, off = 0, rawlen = 0;

		for (size_t i = 0; i < 3; i++)
			assert_int_equal(
			        bw_codec_put_unsub(entries, sizeof(entries), &len, S(filters[i])),
			        0);
		assert_int_equal(len, 5 + 5 + 7);
		BYTES_IS(entries, 5, 0x00, 0x03, 'a', '/', '+');

		memset(&p, 0, sizeof(p));
		p.type = BW_UNSUBSCRIBE;
		p.unsubscribe.packet_id = 0xFFFF;
		p.unsubscribe.entries = (struct bw_bin){ entries, len };
		p.unsubscribe.count = 3;
		if (v == BW_MQTT_5) {
			assert_int_equal(
			        bw_props_put_user(raw, sizeof(raw), &rawlen, S("u"), S("v")), 0);
			p.unsubscribe.props.raw = (struct bw_bin){ raw, rawlen };
		}
		size_t n = ROUND_TRIP(&p, v, buf, &d);
		assert_int_equal(buf[0], 0xA2);
		assert_int_equal(n, 2 + 2 + (v == BW_MQTT_5 ? 1 + rawlen : 0) + len);
		assert_int_equal(d.flags, 2);
		assert_int_equal(d.unsubscribe.packet_id, 0xFFFF);
		assert_int_equal(d.unsubscribe.count, 3);
		BIN_EQ(d.unsubscribe.entries, p.unsubscribe.entries);
		if (v == BW_MQTT_5)
			USERS_ARE(&d.unsubscribe.props, 1, "u", "v");
		for (size_t i = 0; i < 3; i++) {
			assert_true(bw_codec_next_unsub(&d.unsubscribe, &off, &f));
			STR_EQ(f, S(filters[i]));
		}
		assert_false(bw_codec_next_unsub(&d.unsubscribe, &off, &f));
	}
}

static void test_put_nospace(void **state)
{
	uint8_t buf[16];
	uint32_t len = 0;

	(void)state;
	memset(buf, 0xEE, sizeof(buf));
	/* "a/+" takes 6 bytes as an entry: two fit in 12, a third does not. */
	assert_int_equal(bw_codec_put_sub(buf, 12, &len, &sub_entries[0], BW_MQTT_5), 0);
	assert_int_equal(bw_codec_put_sub(buf, 12, &len, &sub_entries[1], BW_MQTT_5), 0);
	assert_int_equal(len, 12);
	assert_int_equal(bw_codec_put_sub(buf, 12, &len, &sub_entries[0], BW_MQTT_5), -ENOSPC);
	assert_int_equal(len, 12);
	assert_int_equal(buf[12], 0xEE);
	/* One byte short is still refused. */
	len = 7;
	assert_int_equal(bw_codec_put_sub(buf, 12, &len, &sub_entries[0], BW_MQTT_311), -ENOSPC);
	assert_int_equal(len, 7);
	len = 6;
	assert_int_equal(bw_codec_put_sub(buf, 12, &len, &sub_entries[0], BW_MQTT_311), 0);
	assert_int_equal(len, 12);

	/* UNSUBSCRIBE filters take 2 + length. */
	memset(buf, 0xEE, sizeof(buf));
	len = 0;
	assert_int_equal(bw_codec_put_unsub(buf, 10, &len, S("abc")), 0);
	assert_int_equal(bw_codec_put_unsub(buf, 10, &len, S("abc")), 0);
	assert_int_equal(len, 10);
	assert_int_equal(bw_codec_put_unsub(buf, 10, &len, S("")), -ENOSPC);
	assert_int_equal(len, 10);
	len = 7;
	assert_int_equal(bw_codec_put_unsub(buf, 10, &len, S("ab")), -ENOSPC);
	assert_int_equal(len, 7);
	assert_int_equal(buf[7], 'a'); /* unchanged */
	/* A length past cap is refused, not wrapped. */
	len = 11;
	assert_int_equal(bw_codec_put_unsub(buf, 10, &len, S("")), -ENOSPC);
	assert_int_equal(len, 11);
}

/* ---- round trips: SUBACK, UNSUBACK, PINGREQ, PINGRESP ------------------- */

static void test_suback(void **state)
{
	static const uint8_t codes311[] = { 0x00, 0x01, 0x02, 0x80 };
	static const uint8_t codes5[] = { 0x00, 0x02, 0x87, 0xA2 };
	struct bw_packet p, d;
	uint8_t buf[64];
	size_t n;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_SUBACK;
	p.suback.packet_id = 9;
	p.suback.codes = (struct bw_bin){ codes311, 4 };
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0x90, 0x06, 0x00, 0x09, 0x00, 0x01, 0x02, 0x80);
	assert_int_equal(d.suback.packet_id, 9);
	BIN_EQ(d.suback.codes, p.suback.codes);

	p.suback.codes = (struct bw_bin){ codes5, 4 };
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0x90, 0x07, 0x00, 0x09, 0x00, 0x00, 0x02, 0x87, 0xA2);
	BIN_EQ(d.suback.codes, p.suback.codes);
	assert_int_equal(d.suback.props.has, 0);

	p.suback.props.has = HAS(BW_PROP_REASON_STRING);
	p.suback.props.reason_string = S("r");
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0x90, 0x0B, 0x00, 0x09, 0x04, 0x1F, 0x00, 0x01, 'r', 0x00, 0x02, 0x87,
	         0xA2);
	BIN_EQ(d.suback.codes, p.suback.codes);
	PROPS_EQ(&d.suback.props, &p.suback.props);
}

static void test_unsuback(void **state)
{
	static const uint8_t codes[] = { 0x00, 0x11, 0x87 };
	struct bw_packet p, d;
	uint8_t buf[64];
	size_t n;

	(void)state;
	/* 3.1.1 UNSUBACK is a packet id only: the codes are not written. */
	memset(&p, 0, sizeof(p));
	p.type = BW_UNSUBACK;
	p.suback.packet_id = 0x0203;
	p.suback.codes = (struct bw_bin){ codes, 3 };
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0xB0, 0x02, 0x02, 0x03);
	assert_int_equal(d.suback.packet_id, 0x0203);
	assert_int_equal(d.suback.codes.len, 0);

	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xB0, 0x06, 0x02, 0x03, 0x00, 0x00, 0x11, 0x87);
	assert_int_equal(d.suback.packet_id, 0x0203);
	BIN_EQ(d.suback.codes, p.suback.codes);

	p.suback.props.has = HAS(BW_PROP_REASON_STRING);
	p.suback.props.reason_string = S("gone");
	ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BIN_EQ(d.suback.codes, p.suback.codes);
	PROPS_EQ(&d.suback.props, &p.suback.props);
}

static void test_ping(void **state)
{
	(void)state;
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		struct bw_packet p, d;
		uint8_t buf[8];
		size_t n;

		memset(&p, 0, sizeof(p));
		p.type = BW_PINGREQ;
		n = ROUND_TRIP(&p, v, buf, &d);
		BYTES_IS(buf, n, 0xC0, 0x00);
		p.type = BW_PINGRESP;
		n = ROUND_TRIP(&p, v, buf, &d);
		BYTES_IS(buf, n, 0xD0, 0x00);
		assert_int_equal(d.flags, 0);
	}
}

/* ---- round trips: DISCONNECT and AUTH ----------------------------------- */

static void test_disconnect(void **state)
{
	struct bw_packet p, d;
	uint8_t buf[64];
	size_t n;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_DISCONNECT;
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x00);
	/* 3.1.1 has no reason code: it is dropped. */
	p.disconnect.code = BW_RC_DISCONNECT_WITH_WILL;
	n = ROUND_TRIP(&p, BW_MQTT_311, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x00);

	p.disconnect.code = 0;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x00);
	assert_int_equal(d.disconnect.code, 0);
	assert_int_equal(d.disconnect.props.has, 0);

	p.disconnect.code = BW_RC_DISCONNECT_WITH_WILL;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x01, 0x04);
	assert_int_equal(d.disconnect.code, BW_RC_DISCONNECT_WITH_WILL);
	assert_int_equal(d.disconnect.props.has, 0);

	p.disconnect.code = BW_RC_SERVER_MOVED;
	p.disconnect.props.has = HAS(BW_PROP_SERVER_REFERENCE) | HAS(BW_PROP_SESSION_EXPIRY);
	p.disconnect.props.server_reference = S("b:1883");
	p.disconnect.props.session_expiry = 0;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x10, 0x9D, 0x0E, 0x11, 0x00, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x06,
	         'b', ':', '1', '8', '8', '3');
	assert_int_equal(d.disconnect.code, BW_RC_SERVER_MOVED);
	PROPS_EQ(&d.disconnect.props, &p.disconnect.props);

	/* Normal disconnection with a property keeps the code byte. */
	p.disconnect.code = 0;
	p.disconnect.props.has = HAS(BW_PROP_SESSION_EXPIRY);
	p.disconnect.props.session_expiry = 5;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x05);
	PROPS_EQ(&d.disconnect.props, &p.disconnect.props);
}

static void test_auth(void **state)
{
	struct bw_packet p, d;
	uint8_t buf[64];
	size_t n;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_AUTH;
	p.disconnect.code = BW_RC_CONTINUE_AUTH;
	p.disconnect.props.has = HAS(BW_PROP_AUTH_METHOD) | HAS(BW_PROP_AUTH_DATA);
	p.disconnect.props.auth_method = S("K");
	p.disconnect.props.auth_data = (struct bw_bin){ (const uint8_t *)"\x01\x00", 2 };
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xF0, 0x0B, 0x18, 0x09, 0x15, 0x00, 0x01, 'K', 0x16, 0x00, 0x02, 0x01,
	         0x00);
	assert_int_equal(d.disconnect.code, BW_RC_CONTINUE_AUTH);
	PROPS_EQ(&d.disconnect.props, &p.disconnect.props);

	/*
	 * A non-zero code without properties still carries a property length.
	 * The encoder writes what it is given; the decoder refuses it, since an
	 * AUTH with a reason code must name its method (3.15.2.2.2).
	 */
	p.disconnect.code = BW_RC_REAUTHENTICATE;
	p.disconnect.props.has = 0;
	n = (size_t)bw_codec_encode(&p, BW_MQTT_5, buf, sizeof(buf));
	BYTES_IS(buf, n, 0xF0, 0x02, 0x19, 0x00);
	assert_int_equal(bw_codec_decode(buf, n, BW_MQTT_5, &d, NULL), -BW_RC_PROTOCOL_ERROR);
	p.disconnect.props.has = HAS(BW_PROP_AUTH_METHOD);
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	assert_int_equal(d.disconnect.code, BW_RC_REAUTHENTICATE);
	p.disconnect.props.has = 0;

	p.disconnect.code = 0;
	n = ROUND_TRIP(&p, BW_MQTT_5, buf, &d);
	BYTES_IS(buf, n, 0xF0, 0x00);
	assert_int_equal(d.disconnect.code, 0);

	/* AUTH does not exist in 3.1.1. */
	p.disconnect.code = BW_RC_CONTINUE_AUTH;
	assert_int_equal(bw_codec_size(&p, BW_MQTT_311), 0);
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_311, buf, sizeof(buf)), -EINVAL);
	p.disconnect.code = 0;
	assert_int_equal(bw_codec_size(&p, BW_MQTT_311), 0);
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_311, buf, sizeof(buf)), -EINVAL);
}

static void test_bad_version(void **state)
{
	static const uint8_t versions[] = { 0, 3, 6, 255 };
	uint8_t buf[64];

	(void)state;
	for (uint8_t t = BW_CONNECT; t <= BW_AUTH; t++) {
		for (size_t i = 0; i < sizeof(versions); i++) {
			struct bw_packet p;

			memset(&p, 0, sizeof(p));
			p.type = t;
			p.publish.topic = S("t");
			assert_int_equal(bw_codec_size(&p, versions[i]), 0);
			assert_int_equal(bw_codec_encode(&p, versions[i], buf, sizeof(buf)),
			                 -EINVAL);
		}
	}
	/* Unknown packet types are refused in both versions. */
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		struct bw_packet p;

		memset(&p, 0, sizeof(p));
		assert_int_equal(bw_codec_size(&p, v), 0);
		assert_int_equal(bw_codec_encode(&p, v, buf, sizeof(buf)), -EINVAL);
		p.type = 16;
		assert_int_equal(bw_codec_size(&p, v), 0);
		assert_int_equal(bw_codec_encode(&p, v, buf, sizeof(buf)), -EINVAL);
	}
}

/* ---- re-encoding a decoded packet --------------------------------------- */

/*
 * A 5.0 PUBLISH QoS 1, topic "t/1", id 5, whose single-valued properties
 * come in ascending identifier order (Payload Format, Message Expiry,
 * Content Type) before two user properties, as bw_codec_encode() writes
 * them.
 */
static const uint8_t publish_users[] = {
	0x32, 0x29, 0x00, 0x03, 't',  '/', '1',  0x00, 0x05, 0x1C, 0x01, 0x01, 0x02, 0x00, 0x00,
	0x00, 0x3C, 0x03, 0x00, 0x04, 't', 'e',  'x',  't',  0x26, 0x00, 0x01, 'k',  0x00, 0x01,
	'v',  0x26, 0x00, 0x02, 'k',  '2', 0x00, 0x00, 'h',  'e',  'l',  'l',  'o',
};

static void test_reencode(void **state)
{
	struct bw_packet d, d2;
	uint8_t buf[128], users[64];
	const char *why = NULL;
	size_t n = sizeof(publish_users);

	(void)state;
	assert_int_equal(bw_codec_decode(publish_users, n, BW_MQTT_5, &d, &why), 0);
	assert_int_equal(d.publish.props.user_count, 2);
	assert_int_equal(d.publish.props.raw.len, 0);
	assert_null(d.publish.props.sub_ids);

	/* Without help, the user properties (14 bytes) are lost. */
	int rc = bw_codec_encode(&d, BW_MQTT_5, buf, sizeof(buf));
	assert_int_equal(rc, (int)n - 14);
	assert_int_equal(buf[1], 0x29 - 14);
	assert_int_equal(bw_codec_decode(buf, (size_t)rc, BW_MQTT_5, &d2, &why), 0);
	assert_int_equal(d2.publish.props.user_count, 0);
	publish_eq(&d2, &d.publish);
	PROPS_EQ(&d2.publish.props, &d.publish.props);

	/* With the users copied into raw, the bytes are the original ones. */
	assert_int_equal(bw_props_user_size(&d.publish.props), 14);
	uint32_t un = bw_props_copy_user(&d.publish.props, users);
	assert_int_equal(un, 14);
	d.publish.props.raw = (struct bw_bin){ users, un };
	assert_int_equal(bw_codec_size(&d, BW_MQTT_5), n);
	rc = bw_codec_encode(&d, BW_MQTT_5, buf, sizeof(buf));
	assert_int_equal(rc, (int)n);
	bytes_is(__LINE__, buf, (size_t)rc, publish_users, n);
}

/* ---- the fan-out PUBLISH head ------------------------------------------- */

static void test_publish_head_311(void **state)
{
	struct bw_packet p;
	uint8_t head[BW_PUBLISH_HEAD_MAX], whole[128];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_PUBLISH;
	p.publish.qos = 1;
	p.publish.dup = true;
	p.publish.packet_id = 300;
	p.publish.topic = S("fan/out");
	p.publish.payload = B("shared body");
	int n = bw_codec_encode(&p, BW_MQTT_311, whole, sizeof(whole));
	assert_int_equal(n, 2 + 9 + 2 + 11);
	int h = bw_codec_publish_head(&p.publish, BW_MQTT_311, head, sizeof(head));
	assert_int_equal(h, n - 11);
	bytes_is(__LINE__, head, (size_t)h, whole, (size_t)h);
	bytes_is(__LINE__, whole + h, (size_t)(n - h), p.publish.payload.p, 11);

	assert_int_equal(bw_codec_publish_head(&p.publish, BW_MQTT_311, head, (size_t)h - 1),
	                 -ENOSPC);
	assert_int_equal(bw_codec_publish_head(&p.publish, BW_MQTT_311, head, (size_t)h), h);
	assert_int_equal(bw_codec_publish_head(&p.publish, 3, head, sizeof(head)), -EINVAL);
	assert_int_equal(bw_codec_publish_head(&p.publish, 6, head, sizeof(head)), -EINVAL);
}

static void test_publish_head_5(void **state)
{
	static const uint32_t ids[] = { 5, 70000 };
	struct bw_packet p, d;
	uint8_t head[BW_PUBLISH_HEAD_MAX], whole[256], joined[256], raw[64];
	uint32_t rawlen = 0;
	const char *why = NULL;

	(void)state;
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("from"), S("node-1")), 0);
	assert_int_equal(bw_props_put_user(raw, sizeof(raw), &rawlen, S("trace"), S("abc")), 0);
	memset(&p, 0, sizeof(p));
	p.type = BW_PUBLISH;
	p.publish.qos = 2;
	p.publish.retain = true;
	p.publish.packet_id = 7;
	p.publish.topic = S("fan/out/5");
	p.publish.payload = B("body bytes");
	p.publish.props.has = HAS(BW_PROP_MESSAGE_EXPIRY) | HAS(BW_PROP_TOPIC_ALIAS);
	p.publish.props.message_expiry = 10;
	p.publish.props.topic_alias = 2;
	p.publish.props.sub_ids = ids;
	p.publish.props.sub_id_count = 2;
	p.publish.props.raw = (struct bw_bin){ raw, rawlen };

	int n = bw_codec_encode(&p, BW_MQTT_5, whole, sizeof(whole));
	assert_true(n > 0);
	int h = bw_codec_publish_head(&p.publish, BW_MQTT_5, head, sizeof(head));
	assert_int_equal(h, n - (int)rawlen - 10);
	memcpy(joined, head, (size_t)h);
	memcpy(joined + h, raw, rawlen);
	memcpy(joined + h + rawlen, p.publish.payload.p, 10);
	bytes_is(__LINE__, joined, (size_t)n, whole, (size_t)n);
	assert_int_equal(bw_codec_decode(joined, (size_t)n, BW_MQTT_5, &d, &why), 0);
	publish_eq(&d, &p.publish);
	assert_int_equal(d.publish.props.sub_id_count, 2);
	USERS_ARE(&d.publish.props, 2, "from", "node-1", "trace", "abc");

	assert_int_equal(bw_codec_publish_head(&p.publish, BW_MQTT_5, head, (size_t)h - 1),
	                 -ENOSPC);
	assert_int_equal(bw_codec_publish_head(&p.publish, 3, head, sizeof(head)), -EINVAL);
}

/* A dummy body for sizes that are never written: the codec must not read it. */
static const uint8_t dummy[1];

static void test_publish_head_max(void **state)
{
	static const uint32_t ids[] = { 5, 70000 };
	char topic[65];
	uint8_t head[2 * BW_PUBLISH_HEAD_MAX];
	struct bw_publish pub;

	(void)state;
	memset(topic, 'x', 64);
	topic[64] = '\0';
	memset(&pub, 0, sizeof(pub));
	pub.qos = 2;
	pub.packet_id = 1;
	pub.topic = S(topic);
	pub.props.has = HAS(BW_PROP_MESSAGE_EXPIRY) | HAS(BW_PROP_TOPIC_ALIAS);
	pub.props.message_expiry = 0xFFFFFFFF;
	pub.props.topic_alias = 0xFFFF;
	pub.props.sub_ids = ids;
	pub.props.sub_id_count = 2;
	/* A tail big enough for a 4-byte remaining length; never read. */
	pub.payload = (struct bw_bin){ dummy, 200000000 };
	pub.props.raw = (struct bw_bin){ dummy, 100000 };
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		int h = bw_codec_publish_head(&pub, v, head, sizeof(head));
		assert_true(h > 0);
		assert_true(h <= BW_PUBLISH_HEAD_MAX);
		/* 1 + 4 + 66 + 2, then in 5.0 3 + 5 + 3 + 2 + 4. */
		assert_int_equal(h, v == BW_MQTT_5 ? 73 + 17 : 73);
		assert_int_equal(bw_codec_publish_head(&pub, v, head, BW_PUBLISH_HEAD_MAX), h);
	}
}

/* ---- limits ------------------------------------------------------------- */

static void test_limits(void **state)
{
	struct bw_packet p;
	uint8_t buf[64];

	(void)state;
	memset(&p, 0, sizeof(p));
	p.type = BW_PUBLISH;
	p.publish.topic = S("a");
	/* Remaining length 3 + payload: the largest fits, one more does not. */
	p.publish.payload = (struct bw_bin){ dummy, BW_VARINT_MAX - 3 };
	assert_int_equal(bw_codec_size(&p, BW_MQTT_311), BW_PACKET_SIZE_MAX);
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_311, buf, sizeof(buf)), -ENOSPC);
	assert_int_equal(bw_codec_size(&p, BW_MQTT_5), 0); /* + property length */
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_5, buf, sizeof(buf)), -EINVAL);
	p.publish.payload.len = BW_VARINT_MAX - 2;
	assert_int_equal(bw_codec_size(&p, BW_MQTT_311), 0);
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_311, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bw_codec_publish_head(&p.publish, BW_MQTT_311, buf, sizeof(buf)), -EINVAL);
	p.publish.payload.len = UINT32_MAX;
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		assert_int_equal(bw_codec_size(&p, v), 0);
		assert_int_equal(bw_codec_encode(&p, v, buf, sizeof(buf)), -EINVAL);
		assert_int_equal(bw_codec_publish_head(&p.publish, v, buf, sizeof(buf)), -EINVAL);
	}
	/* A property block too big for the wire. */
	p.publish.payload.len = 0;
	p.publish.props.raw = (struct bw_bin){ dummy, BW_VARINT_MAX };
	assert_int_equal(bw_codec_size(&p, BW_MQTT_5), 0);
	assert_int_equal(bw_codec_encode(&p, BW_MQTT_5, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bw_codec_publish_head(&p.publish, BW_MQTT_5, buf, sizeof(buf)), -EINVAL);

	/* Password and will payload are two-byte length prefixed. */
	for (uint8_t v = BW_MQTT_311; v <= BW_MQTT_5; v++) {
		connect_common(&p, v);
		p.connect.password = (struct bw_bin){ dummy, 65535 };
		assert_true(bw_codec_size(&p, v) > 65535);
		p.connect.password.len = 65536;
		assert_int_equal(bw_codec_size(&p, v), 0);
		assert_int_equal(bw_codec_encode(&p, v, buf, sizeof(buf)), -EINVAL);
		connect_common(&p, v);
		p.connect.will_payload = (struct bw_bin){ dummy, 65536 };
		assert_int_equal(bw_codec_size(&p, v), 0);
		assert_int_equal(bw_codec_encode(&p, v, buf, sizeof(buf)), -EINVAL);
	}
}

/* ---- names -------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(bw_packet_name(BW_PUBLISH), "PUBLISH");
	assert_string_equal(bw_packet_name(BW_CONNECT), "CONNECT");
	assert_string_equal(bw_packet_name(BW_AUTH), "AUTH");
	assert_string_equal(bw_packet_name(0), "?");
	assert_string_equal(bw_packet_name(16), "?");
	assert_string_equal(bw_packet_name(255), "?");
	assert_string_equal(bw_reason_name(0x81), "Malformed Packet");
	assert_string_equal(bw_reason_name(0x05), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_boundaries),
		cmocka_unit_test(test_varint_bad),
		cmocka_unit_test(test_frame_whole),
		cmocka_unit_test(test_frame_prefixes),
		cmocka_unit_test(test_frame_back_to_back),
		cmocka_unit_test(test_frame_header_only),
		cmocka_unit_test(test_frame_max_size),
		cmocka_unit_test(test_frame_bad),
		cmocka_unit_test(test_connect_311),
		cmocka_unit_test(test_connect_5),
		cmocka_unit_test(test_connack),
		cmocka_unit_test(test_publish_qos),
		cmocka_unit_test(test_publish_5_props),
		cmocka_unit_test(test_acks),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_put_nospace),
		cmocka_unit_test(test_suback),
		cmocka_unit_test(test_unsuback),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_disconnect),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_reencode),
		cmocka_unit_test(test_publish_head_311),
		cmocka_unit_test(test_publish_head_5),
		cmocka_unit_test(test_publish_head_max),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
