/*
 * Unit tests for the packets the MQTT codec (proto/mqtt/codec.h) refuses:
 * one test a family of malformed or forbidden input (truncation, trailing
 * bytes, bad UTF-8, bad topic names, reserved fixed-header flags, bad
 * packet identifiers, CONNECT header and flag rules, forbidden or repeated
 * properties, bad subscription options, reason codes a packet may not
 * carry, wrong lengths, framing errors), each checked for the exact
 * negative reason code of docs/codec.md and a non-empty `why`; and a
 * "never crash" sweep that decodes every truncation and every single-byte
 * corruption of a set of valid vectors under the sanitizers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqtt/codec.h"
#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/props.h"

#define V3 BW_MQTT_311
#define V5 BW_MQTT_5

/* A packet as a compound literal and its size. */
#define PKT(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Decoding the vector in `ver` must fail with -(rc) and a why. */
#define ERR(ver, rc, ...) err(__LINE__, ver, -(rc), PKT(__VA_ARGS__))

/* Shorthands for the codes most rules yield. */
#define MAL   BW_RC_MALFORMED
#define PROTO BW_RC_PROTOCOL_ERROR

/* The fixed part of a CONNECT variable header: name "MQTT" and a level. */
#define MQTT_HDR(level) 0x00, 0x04, 'M', 'Q', 'T', 'T', (level)

static void hex(char *out, size_t cap, const uint8_t *s, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02X ", s[i]);
}

static void why_set(int line, const char *why)
{
	if (why == NULL || why[0] == '\0')
		fail_msg("line %d: error without a why", line);
}

/*
 * Decodes b[0..n) in `version` and checks it returns `expect` (negative)
 * with a non-empty why. The bytes are copied to a heap block of exactly n
 * bytes so that ASan sees any read past the end.
 */
static void err(int line, uint8_t version, int expect, const uint8_t *b, size_t n)
{
	struct bw_packet pkt;
	const char *why = NULL;
	char buf[512];
	uint8_t *copy = malloc(n ? n : 1);

	assert_non_null(copy);
	if (n)
		memcpy(copy, b, n);
	int rc = bw_codec_decode(copy, n, version, &pkt, &why);
	free(copy);
	if (rc != expect) {
		hex(buf, sizeof(buf), b, n);
		fail_msg("line %d: bw_codec_decode(%s) in version %u = %d, expected %d (why: %s)",
		         line, buf, version, rc, expect, why ? why : "(null)");
	}
	why_set(line, why);
}

/* bw_codec_frame() on b[0..n) must fail with -(rc) and a why. */
static void frame_err(int line, uint32_t max, int expect, const uint8_t *b, size_t n)
{
	struct bw_frame f;
	const char *why = NULL;
	int rc = bw_codec_frame(b, n, max, &f, &why);

	if (rc != expect)
		fail_msg("line %d: bw_codec_frame = %d, expected %d (why: %s)", line, rc, expect,
		         why ? why : "(null)");
	why_set(line, why);
}

#define FRAME_ERR(max, rc, ...) frame_err(__LINE__, max, -(rc), PKT(__VA_ARGS__))

/* ---- lengths ------------------------------------------------------------ */

/* A length prefix running past the end of the packet. */
static void test_field_past_end(void **state)
{
	ERR(V3, MAL, 0x30, 0x03, 0x00, 0x05, 't');
	ERR(V5, MAL, 0x30, 0x03, 0x00, 0x05, 't');
	/* Client id of 5 bytes with 2 there. */
	ERR(V3, MAL, 0x10, 0x0E, MQTT_HDR(4), 0x02, 0x00, 0x00, 0x00, 0x05, 'a', 'b');
	/* Will payload, user name and password running past the end. */
	ERR(V3, MAL, 0x10, 0x11, MQTT_HDR(4), 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 't', 0x00,
	    0x09);
	ERR(V3, MAL, 0x10, 0x0F, MQTT_HDR(4), 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 'u');
	ERR(V3, MAL, 0x10, 0x12, MQTT_HDR(4), 0xC2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 'u', 0x00,
	    0x09, 'p');
	/* A SUBSCRIBE filter and an UNSUBSCRIBE filter. */
	ERR(V3, MAL, 0x82, 0x05, 0x00, 0x01, 0x00, 0x04, 'a');
	ERR(V3, MAL, 0xA2, 0x05, 0x00, 0x01, 0x00, 0x04, 'a');
	/* A property length larger than what is left. */
	ERR(V5, MAL, 0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x23);
	ERR(V5, MAL, 0x40, 0x05, 0x00, 0x01, 0x10, 0x03, 0x1F);
}

static void test_missing_packet_id(void **state)
{
	ERR(V3, MAL, 0x32, 0x03, 0x00, 0x01, 't');
	ERR(V5, MAL, 0x34, 0x04, 0x00, 0x01, 't', 0x00);
	ERR(V3, MAL, 0x40, 0x01, 0x00);
	ERR(V5, MAL, 0x62, 0x00);
	ERR(V3, MAL, 0x82, 0x00);
	ERR(V5, MAL, 0xA2, 0x01, 0x00);
	ERR(V3, MAL, 0x90, 0x01, 0x00);
	ERR(V5, MAL, 0xB0, 0x00);
}

/* 5.0 packets whose property length is missing. */
static void test_missing_props_len(void **state)
{
	ERR(V5, MAL, 0x10, 0x0A, MQTT_HDR(5), 0x02, 0x00, 0x00);
	ERR(V5, MAL, 0x20, 0x02, 0x00, 0x00);
	ERR(V5, MAL, 0x30, 0x03, 0x00, 0x01, 't');
	ERR(V5, MAL, 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x01);
	ERR(V5, MAL, 0x82, 0x02, 0x00, 0x01);
	ERR(V5, MAL, 0xA2, 0x02, 0x00, 0x01);
	ERR(V5, MAL, 0x90, 0x02, 0x00, 0x01);
	/* A will without its will properties. */
	ERR(V5, MAL, 0x10, 0x0D, MQTT_HDR(5), 0x06, 0x00, 0x00, 0x00, 0x00, 0x00);
}

/* A remaining length that ends before the mandatory fields do. */
static void test_remaining_too_short(void **state)
{
	ERR(V3, MAL, 0x10, 0x00);
	ERR(V3, MAL, 0x10, 0x07, MQTT_HDR(4));
	ERR(V3, MAL, 0x10, 0x09, MQTT_HDR(4), 0x02, 0x00);
	ERR(V3, MAL, 0x10, 0x0A, MQTT_HDR(4), 0x02, 0x00, 0x00);
	ERR(V3, MAL, 0x20, 0x01, 0x00);
	ERR(V5, MAL, 0x20, 0x00);
	ERR(V3, MAL, 0x30, 0x00);
	ERR(V3, MAL, 0x30, 0x01, 0x00);
	ERR(V3, MAL, 0x82, 0x04, 0x00, 0x01, 0x00, 0x00);
	ERR(V3, MAL, 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
}

static void test_trailing_bytes(void **state)
{
	ERR(V3, MAL, 0x10, 0x0D, MQTT_HDR(4), 0x02, 0x00, 0x00, 0x00, 0x00, 0xFF);
	ERR(V5, MAL, 0x10, 0x0E, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF);
	ERR(V3, MAL, 0x20, 0x03, 0x00, 0x00, 0x00);
	ERR(V5, MAL, 0x20, 0x04, 0x00, 0x00, 0x00, 0x00);
	ERR(V5, MAL, 0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF);
	ERR(V5, MAL, 0xE0, 0x03, 0x00, 0x00, 0xFF);
	ERR(V5, MAL, 0xF0, 0x03, 0x00, 0x00, 0xFF);
}

/* ---- strings and topic names -------------------------------------------- */

/* Ill-formed UTF-8 (a lone continuation, an overlong NUL) in each place. */
static void test_bad_utf8(void **state)
{
	/* Client id. */
	ERR(V3, MAL, 0x10, 0x0E, MQTT_HDR(4), 0x02, 0x00, 0x00, 0x00, 0x02, 'a', 0x80);
	ERR(V5, MAL, 0x10, 0x0F, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0xC0, 0x80);
	/* Will topic. */
	ERR(V3, MAL, 0x10, 0x12, MQTT_HDR(4), 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 'a', 0xFF,
	    0x00, 0x00);
	/* PUBLISH topic. */
	ERR(V3, MAL, 0x30, 0x05, 0x00, 0x02, 0xFF, 'x', 'p');
	ERR(V5, MAL, 0x30, 0x05, 0x00, 0x02, 0xC0, 0x80, 0x00);
	/* User name. */
	ERR(V3, MAL, 0x10, 0x10, MQTT_HDR(4), 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 'u', 0xFE);
	ERR(V5, MAL, 0x10, 0x11, MQTT_HDR(5), 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xED,
	    0xA0);
	/* SUBSCRIBE filter. */
	ERR(V3, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFE, 0x00);
	ERR(V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x80, 0x00);
	/* UNSUBSCRIBE filter, the bad one second. */
	ERR(V3, MAL, 0xA2, 0x08, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x01, 0xFF);
	ERR(V5, MAL, 0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0xC1);
}

/* U+0000 is forbidden in every MQTT string ([MQTT-1.5.4-2]). */
static void test_nul_in_topic(void **state)
{
	ERR(V3, MAL, 0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b');
	ERR(V5, MAL, 0x30, 0x06, 0x00, 0x03, 'a', 0x00, 'b', 0x00);
}

static void test_publish_wildcard_topic(void **state)
{
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x30, 0x05, 0x00, 0x03, 'a', '/', '+');
	ERR(V5, BW_RC_TOPIC_NAME_INVALID, 0x30, 0x06, 0x00, 0x03, 'a', '/', '+', 0x00);
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x32, 0x05, 0x00, 0x01, '#', 0x00, 0x01);
}

/* Empty topic: 3.1.1 has no aliases; 5.0 needs a Topic Alias to stand in. */
static void test_publish_empty_topic(void **state)
{
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x30, 0x02, 0x00, 0x00);
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x30, 0x03, 0x00, 0x00, 'p');
	ERR(V5, PROTO, 0x30, 0x03, 0x00, 0x00, 0x00);
	/* Another property does not stand in for the alias. */
	ERR(V5, PROTO, 0x30, 0x05, 0x00, 0x00, 0x02, 0x01, 0x01);
}

/* ---- fixed header flags ------------------------------------------------- */

/* [MQTT-2.2.2-1] / [MQTT-2.2.2-2]: reserved flags must be exactly as listed. */
static void test_bad_fixed_flags(void **state)
{
	for (int v = V3; v <= V5; v++) {
		ERR(v, MAL, 0x11, 0x0C, MQTT_HDR(4), 0x02, 0x00, 0x00, 0x00, 0x00);
		ERR(v, MAL, 0x18, 0x0C, MQTT_HDR(4), 0x02, 0x00, 0x00, 0x00, 0x00);
		ERR(v, MAL, 0x21, 0x03, 0x00, 0x00, 0x00);
		ERR(v, MAL, 0x42, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0x51, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0x60, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0x63, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0x72, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00);
		ERR(v, MAL, 0x8A, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00);
		ERR(v, MAL, 0xA0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a');
		ERR(v, MAL, 0xA3, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a');
		ERR(v, MAL, 0x92, 0x04, 0x00, 0x01, 0x00, 0x00);
		ERR(v, MAL, 0xB1, 0x02, 0x00, 0x01);
		ERR(v, MAL, 0xC1, 0x00);
		ERR(v, MAL, 0xC8, 0x00);
		ERR(v, MAL, 0xD4, 0x00);
		ERR(v, MAL, 0xE1, 0x00);
		ERR(v, MAL, 0xE8, 0x00);
	}
	ERR(V5, MAL, 0xF1, 0x00);
}

static void test_publish_bad_flags(void **state)
{
	/* QoS 3 ([MQTT-3.3.1-4]), with and without DUP and RETAIN. */
	ERR(V3, MAL, 0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01);
	ERR(V5, MAL, 0x3F, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0x00);
	/* DUP on QoS 0 ([MQTT-3.3.1-2]). */
	ERR(V3, MAL, 0x38, 0x03, 0x00, 0x01, 't');
	ERR(V5, MAL, 0x39, 0x04, 0x00, 0x01, 't', 0x00);
}

/* ---- packet identifiers ------------------------------------------------- */

/* [MQTT-2.3.1-1]: a packet identifier, where present, is non-zero. */
static void test_packet_id_zero(void **state)
{
	for (int v = V3; v <= V5; v++) {
		/* The identifier is judged before any 5.0 property length. */
		ERR(v, PROTO, 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00);
		ERR(v, PROTO, 0x34, 0x05, 0x00, 0x01, 't', 0x00, 0x00);
		ERR(v, PROTO, 0x40, 0x02, 0x00, 0x00);
		ERR(v, PROTO, 0x50, 0x02, 0x00, 0x00);
		ERR(v, PROTO, 0x62, 0x02, 0x00, 0x00);
		ERR(v, PROTO, 0x70, 0x02, 0x00, 0x00);
		ERR(v, PROTO, 0x90, 0x03, 0x00, 0x00, 0x00);
		ERR(v, PROTO, 0xB0, 0x02, 0x00, 0x00);
	}
	ERR(V3, PROTO, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
	ERR(V5, PROTO, 0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
	ERR(V3, PROTO, 0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a');
	ERR(V5, PROTO, 0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 'a');
}

/* ---- CONNECT ------------------------------------------------------------ */

static void test_connect_protocol(void **state)
{
	/* A name other than "MQTT" ([MQTT-3.1.2-1]). */
	ERR(V3, PROTO, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x00, 0x00,
	    0x00);
	ERR(V3, PROTO, 0x10, 0x0B, 0x00, 0x03, 'M', 'Q', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00);
	/* MQTT 3.1 ("MQIsdp", level 3) is an unsupported version. */
	ERR(V3, BW_RC_UNSUPPORTED_VERSION, 0x10, 0x0E, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p',
	    0x03, 0x02, 0x00, 0x00, 0x00, 0x00);
	/* Levels other than 4 and 5 ([MQTT-3.1.2-2]). */
	ERR(V3, BW_RC_UNSUPPORTED_VERSION, 0x10, 0x0C, MQTT_HDR(3), 0x02, 0x00, 0x00, 0x00, 0x00);
	ERR(V5, BW_RC_UNSUPPORTED_VERSION, 0x10, 0x0C, MQTT_HDR(6), 0x02, 0x00, 0x00, 0x00, 0x00);
	/* A bad protocol name string is malformed, not a wrong name. */
	ERR(V3, MAL, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 0xC0, 0x80, 0x04, 0x02, 0x00, 0x00, 0x00,
	    0x00);
}

/* CONNECT flags ([MQTT-3.1.2-3], -11, -13, -22 in 3.1.1). */
static void test_connect_flags(void **state)
{
	for (uint8_t lvl = 4; lvl <= 5; lvl++) {
		/* Reserved bit 0. */
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x03, 0x00, 0x00, 0x00, 0x00);
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x01, 0x00, 0x00, 0x00, 0x00);
		/* Will QoS 3, with the will flag. */
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x1E, 0x00, 0x00, 0x00, 0x00);
		/* Will QoS 1 or 2, or will retain, without the will flag. */
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x0A, 0x00, 0x00, 0x00, 0x00);
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x12, 0x00, 0x00, 0x00, 0x00);
		ERR(lvl, MAL, 0x10, 0x0C, MQTT_HDR(lvl), 0x22, 0x00, 0x00, 0x00, 0x00);
	}
	/* 3.1.1 only: a password without a user name. */
	ERR(V3, MAL, 0x10, 0x10, MQTT_HDR(4), 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 'x', 'y');
}

/* The will topic is a topic name: no wildcards, not empty. */
static void test_connect_will_topic(void **state)
{
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x10, 0x13, MQTT_HDR(4), 0x06, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x03, 'a', '/', '#', 0x00, 0x00);
	ERR(V5, BW_RC_TOPIC_NAME_INVALID, 0x10, 0x13, MQTT_HDR(5), 0x06, 0x00, 0x00,
	    /* properties, client id, will properties, will topic "+", payload */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, '+', 0x00, 0x00);
	ERR(V3, BW_RC_TOPIC_NAME_INVALID, 0x10, 0x10, MQTT_HDR(4), 0x06, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x00, 0x00);
}

/* [MQTT-3.1.3.2.17]: Authentication Data needs an Authentication Method. */
static void test_connect_auth_data_alone(void **state)
{
	ERR(V5, PROTO, 0x10, 0x11, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x04, 0x16, 0x00, 0x01, 'x', 0x00,
	    0x00);
}

/*
 * The same rule on the other packets that carry authentication properties
 * (MQTT 5.0 3.2.2.3.18 and 3.15.2.2.3). The codec once checked it only in
 * CONNECT.
 */
static void test_auth_data_alone_elsewhere(void **state)
{
	ERR(V5, PROTO, 0xF0, 0x06, 0x18, 0x04, 0x16, 0x00, 0x01, 'x');
	ERR(V5, PROTO, 0x20, 0x07, 0x00, 0x00, 0x04, 0x16, 0x00, 0x01, 'x');
}

/*
 * An AUTH with a reason code must name its method (3.15.2.2.2); only the
 * empty AUTH (f0 00: success, no properties) goes without.
 */
static void test_auth_without_method(void **state)
{
	ERR(V5, PROTO, 0xF0, 0x02, 0x18, 0x00);
	ERR(V5, PROTO, 0xF0, 0x02, 0x00, 0x00);
}

/* ---- properties on packets ---------------------------------------------- */

static void test_duplicate_property(void **state)
{
	/* Two Session Expiry Intervals in CONNECT. */
	ERR(V5, PROTO, 0x10, 0x17, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x0A, 0x11, 0x00, 0x00, 0x00,
	    0x01, 0x11, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00);
	/* Two Topic Aliases in PUBLISH; two Reason Strings in PUBACK. */
	ERR(V5, PROTO, 0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02);
	ERR(V5, PROTO, 0x40, 0x0C, 0x00, 0x01, 0x10, 0x08, 0x1F, 0x00, 0x01, 'a', 0x1F, 0x00, 0x01,
	    'b');
}

static void test_property_not_allowed(void **state)
{
	/* Topic Alias in CONNECT. */
	ERR(V5, PROTO, 0x10, 0x10, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 0x00,
	    0x00);
	/* Will Delay Interval in PUBLISH. */
	ERR(V5, PROTO, 0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x18, 0x00, 0x00, 0x00, 0x01);
	/* Session Expiry in the will properties. */
	ERR(V5, PROTO, 0x10, 0x18, MQTT_HDR(5), 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x11,
	    0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't', 0x00, 0x00);
	/* Subscription Identifier in UNSUBSCRIBE. */
	ERR(V5, PROTO, 0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 'a');
}

static void test_unknown_property(void **state)
{
	ERR(V5, MAL, 0x30, 0x05, 0x00, 0x01, 't', 0x01, 0x7F);
	ERR(V5, MAL, 0x10, 0x0E, MQTT_HDR(5), 0x02, 0x00, 0x00, 0x01, 0x7F, 0x00, 0x00);
	ERR(V5, MAL, 0xE0, 0x03, 0x00, 0x01, 0x7F);
}

/* ---- SUBSCRIBE and UNSUBSCRIBE ------------------------------------------ */

/* [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one filter. */
static void test_no_entries(void **state)
{
	ERR(V3, PROTO, 0x82, 0x02, 0x00, 0x01);
	ERR(V5, PROTO, 0x82, 0x03, 0x00, 0x01, 0x00);
	ERR(V3, PROTO, 0xA2, 0x02, 0x00, 0x01);
	ERR(V5, PROTO, 0xA2, 0x03, 0x00, 0x01, 0x00);
}

/* [MQTT-3-8.3-4] in 3.1.1: the upper six bits are reserved, QoS 3 is bad. */
static void test_subscribe_311_options(void **state)
{
	ERR(V3, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);
	ERR(V3, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x80);
	ERR(V3, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03);
	/* The bad byte on the second entry. */
	ERR(V3, MAL, 0x82, 0x0A, 0x00, 0x01, 0x00, 0x01, 'a', 0x01, 0x00, 0x01, 'b', 0x21);
}

static void test_subscribe_5_options(void **state)
{
	/* Reserved bits 6 and 7. */
	ERR(V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
	ERR(V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x80);
	/* QoS 3 and Retain Handling 3. */
	ERR(V5, PROTO, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
	ERR(V5, PROTO, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
	/* [MQTT-3.8.3-4]: No Local on a shared subscription. */
	ERR(V5, PROTO, 0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/',
	    'g', '/', 'x', 0x04);
	/* Two Subscription Identifiers. */
	ERR(V5, PROTO, 0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 'a', 0x00);
}

/* ---- CONNACK ------------------------------------------------------------ */

static void test_connack(void **state)
{
	/* [MQTT-3.2.2-4] / [MQTT-3.2.2-6]: session present on a refusal. */
	ERR(V3, PROTO, 0x20, 0x02, 0x01, 0x05);
	ERR(V5, PROTO, 0x20, 0x03, 0x01, 0x80, 0x00);
	/* Reserved acknowledge flags. */
	ERR(V3, MAL, 0x20, 0x02, 0x02, 0x00);
	ERR(V5, MAL, 0x20, 0x03, 0x02, 0x00, 0x00);
	ERR(V5, MAL, 0x20, 0x03, 0x80, 0x00, 0x00);
	/* 3.1.1 return codes stop at 5. */
	ERR(V3, PROTO, 0x20, 0x02, 0x00, 0x06);
	ERR(V3, PROTO, 0x20, 0x02, 0x00, 0x80);
	/* 0x8B (Server shutting down) is a DISCONNECT code, not a CONNACK one. */
	ERR(V5, PROTO, 0x20, 0x03, 0x00, 0x8B, 0x00);
	ERR(V5, PROTO, 0x20, 0x03, 0x00, 0x01, 0x00);
}

/* ---- reason codes ------------------------------------------------------- */

/* Codes outside the packet's table in MQTT 5.0 section 3.x. */
static void test_reason_not_for_packet(void **state)
{
	ERR(V5, PROTO, 0x40, 0x03, 0x00, 0x01, 0x04);
	ERR(V5, PROTO, 0x50, 0x03, 0x00, 0x01, 0x92);
	ERR(V5, PROTO, 0x62, 0x03, 0x00, 0x01, 0x10);
	ERR(V5, PROTO, 0x70, 0x04, 0x00, 0x01, 0x80, 0x00);
	ERR(V5, PROTO, 0x90, 0x04, 0x00, 0x01, 0x00, 0x03);
	/* The bad code after good ones. */
	ERR(V5, PROTO, 0x90, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x11);
	/* 3.1.1 SUBACK knows only 0, 1, 2 and 0x80. */
	ERR(V3, PROTO, 0x90, 0x03, 0x00, 0x01, 0x87);
	ERR(V5, PROTO, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x01);
	ERR(V5, PROTO, 0xE0, 0x01, 0x01);
	ERR(V5, PROTO, 0xE0, 0x02, 0x18, 0x00);
	ERR(V5, PROTO, 0xF0, 0x02, 0x01, 0x00);
	ERR(V5, PROTO, 0xF0, 0x02, 0x87, 0x00);
}

/* [MQTT-3.9.3-1] and 5.0 UNSUBACK: one code a filter, so at least one. */
static void test_ack_without_codes(void **state)
{
	ERR(V3, PROTO, 0x90, 0x02, 0x00, 0x01);
	ERR(V5, PROTO, 0x90, 0x03, 0x00, 0x01, 0x00);
	ERR(V5, PROTO, 0xB0, 0x03, 0x00, 0x01, 0x00);
}

/* ---- lengths fixed by the spec ------------------------------------------ */

static void test_fixed_lengths(void **state)
{
	for (int v = V3; v <= V5; v++) {
		ERR(v, MAL, 0xC0, 0x01, 0x00);
		ERR(v, MAL, 0xD0, 0x01, 0x00);
		ERR(v, MAL, 0xC0, 0x02, 0x00, 0x00);
	}
	/* 3.1.1 DISCONNECT, PUBACK..PUBCOMP and UNSUBACK have fixed sizes. */
	ERR(V3, MAL, 0xE0, 0x01, 0x00);
	ERR(V3, MAL, 0x40, 0x03, 0x00, 0x01, 0x00);
	ERR(V3, MAL, 0x50, 0x03, 0x00, 0x01, 0x00);
	ERR(V3, MAL, 0x62, 0x03, 0x00, 0x01, 0x00);
	ERR(V3, MAL, 0x70, 0x04, 0x00, 0x01, 0x00, 0x00);
	ERR(V3, MAL, 0xB0, 0x03, 0x00, 0x01, 0x00);
}

static void test_auth_bad(void **state)
{
	/* AUTH does not exist in 3.1.1. */
	ERR(V3, MAL, 0xF0, 0x00);
	ERR(V3, MAL, 0xF0, 0x02, 0x00, 0x00);
	/* 5.0: a reason code must be followed by a property length. */
	ERR(V5, MAL, 0xF0, 0x01, 0x00);
	ERR(V5, MAL, 0xF0, 0x01, 0x18);
}

static void test_packet_type_zero(void **state)
{
	ERR(V3, MAL, 0x00, 0x00);
	ERR(V5, MAL, 0x0F, 0x02, 0x00, 0x01);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x00, 0x00);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x00);
}

/* The length given to bw_codec_decode() must be the frame's size. */
static void test_length_mismatch(void **state)
{
	static const uint8_t b[] = { 0x30, 0x03, 0x00, 0x01, 't', 0xEE, 0xEE };

	for (size_t n = 0; n <= sizeof(b); n++) {
		if (n == 5)
			continue;
		err(__LINE__, V3, -MAL, b, n);
		err(__LINE__, V5, -MAL, b, n);
	}
	/* The same bytes with the right length decode. */
	struct bw_packet pkt;
	assert_int_equal(bw_codec_decode(b, 5, V3, &pkt, NULL), 0);
}

/* ---- framing ------------------------------------------------------------ */

/* [MQTT-1.5.5]: at most four bytes, minimally encoded. */
static void test_frame_varint(void **state)
{
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x30, 0x80, 0x80, 0x80, 0x80, 0x01);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x30, 0x80, 0x00);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x30, 0xFF, 0x80, 0x00);
	FRAME_ERR(BW_PACKET_SIZE_MAX, MAL, 0x30, 0x80, 0x80, 0x80, 0x00);
	/* bw_codec_decode() frames too. */
	ERR(V3, MAL, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F);
	ERR(V5, MAL, 0x30, 0x80, 0x00);
}

/* Refused from the header alone, before the body is buffered. */
static void test_frame_too_large(void **state)
{
	struct bw_frame f;

	/* Remaining length 16383: 16386 bytes in all. */
	FRAME_ERR(1024, BW_RC_PACKET_TOO_LARGE, 0x30, 0xFF, 0x7F);
	FRAME_ERR(16385, BW_RC_PACKET_TOO_LARGE, 0x30, 0xFF, 0x7F);
	FRAME_ERR(1024, BW_RC_PACKET_TOO_LARGE, 0x30, 0xFF, 0xFF, 0xFF, 0x7F);
	/* Exactly the maximum is fine: more bytes are needed. */
	assert_int_equal(bw_codec_frame(PKT(0x30, 0xFF, 0x7F), 16386, &f, NULL), BW_CODEC_AGAIN);
	assert_int_equal(f.size, 16386);
	/* An incomplete header is not an error. */
	assert_int_equal(bw_codec_frame(PKT(0x30, 0xFF), 16, &f, NULL), BW_CODEC_AGAIN);
	assert_int_equal(f.size, 0);
}

/* ---- never crash -------------------------------------------------------- */

struct vec {
	uint8_t version;
	const uint8_t *b;
	size_t n;
};

#define VEC(ver, ...)                                                                              \
	{                                                                                          \
		ver, PKT(__VA_ARGS__)                                                              \
	}

/* Valid packets of every kind; each must decode as is. */
static const struct vec valid[] = {
	VEC(V3, 0x10, 0x28, MQTT_HDR(4), 0xc6, 0x00, 0x3c, 0x00, 0x08, 's', 'm', 'o', 'k', 'e', '3',
	    '1', '1', 0x00, 0x03, 'w', '/', 't', 0x00, 0x03, 'b', 'y', 'e', 0x00, 0x04, 'u', 's',
	    'e', 'r', 0x00, 0x02, 'p', 'w'),
	VEC(V5, 0x10, 0x2D, MQTT_HDR(5), 0x2E, 0x00, 0x1E, 0x08, 0x11, 0x00, 0x00, 0x00, 0x78, 0x21,
	    0x00, 0x0A, 0x00, 0x02, 'c', '5', 0x0C, 0x18, 0x00, 0x00, 0x00, 0x05, 0x03, 0x00, 0x04,
	    't', 'e', 'x', 't', 0x00, 0x02, 'w', 't', 0x00, 0x03, 0x01, 0x02, 0x03),
	VEC(V5, 0x20, 0x11, 0x00, 0x00, 0x0E, 0x12, 0x00, 0x03, 'a', 'b', 'c', 0x13, 0x00, 0x3C,
	    0x24, 0x01, 0x22, 0x00, 0x05),
	VEC(V5, 0x32, 0x2F, 0x00, 0x03, 't', '/', '1', 0x00, 0x0A, 0x25, 0x02, 0x00, 0x00, 0x00,
	    0x3C, 0x03, 0x00, 0x02, 'j', 's', 0x08, 0x00, 0x03, 'r', '/', 'q', 0x09, 0x00, 0x02,
	    0xCA, 0xFE, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x26, 0x00, 0x02, 'k', '2', 0x00,
	    0x02, 'v', '2', 'P', 'L'),
	VEC(V3, 0x3C, 0x05, 0x00, 0x01, 't', 0x12, 0x34),
	VEC(V5, 0x40, 0x09, 0x00, 0x05, 0x10, 0x05, 0x1F, 0x00, 0x02, 'n', 'o'),
	VEC(V5, 0x62, 0x03, 0x00, 0x05, 0x92),
	VEC(V3, 0x82, 0x12, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x00, 0x03, 'c', '/', '+',
	    0x01, 0x00, 0x01, '#', 0x02),
	VEC(V5, 0x82, 0x0D, 0x00, 0x02, 0x02, 0x0B, 0x05, 0x00, 0x01, 'x', 0x2D, 0x00, 0x01, 'y',
	    0x00),
	VEC(V5, 0x90, 0x0D, 0x00, 0x02, 0x05, 0x1F, 0x00, 0x02, 'o', 'k', 0x00, 0x01, 0x02, 0x8F,
	    0x9E),
	VEC(V5, 0xA2, 0x12, 0x00, 0x04, 0x07, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x00, 0x01,
	    'a', 0x00, 0x03, 'b', '/', 'c'),
	VEC(V5, 0xB0, 0x05, 0x00, 0x07, 0x00, 0x00, 0x11),
	VEC(V3, 0xC0, 0x00),
	VEC(V5, 0xE0, 0x0D, 0x00, 0x0B, 0x1F, 0x00, 0x03, 'b', 'y', 'e', 0x11, 0x00, 0x00, 0x00,
	    0x0A),
	VEC(V5, 0xF0, 0x10, 0x18, 0x0E, 0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', 0x16, 0x00, 0x03,
	    0x01, 0x02, 0x03),
};

/* Walks the repeatable properties of an accepted block; counts must agree. */
static void walk_props(const struct bw_props *p)
{
	struct bw_str k, v;
	uint32_t off = 0, n = 0, id;

	while (bw_props_next_user(p, &off, &k, &v))
		n++;
	assert_int_equal(n, p->user_count);
	off = n = 0;
	while (bw_props_next_sub_id(p, &off, &id))
		n++;
	assert_int_equal(n, p->sub_id_count);
}

/* Touches everything an accepted packet exposes, so ASan sees each view. */
static void walk(const struct bw_packet *pkt, uint8_t version)
{
	struct bw_sub_entry e;
	struct bw_str f;
	uint32_t off = 0, n = 0;

	switch (pkt->type) {
	case BW_CONNECT:
		walk_props(&pkt->connect.props);
		walk_props(&pkt->connect.will_props);
		break;
	case BW_CONNACK:
		walk_props(&pkt->connack.props);
		break;
	case BW_PUBLISH:
		walk_props(&pkt->publish.props);
		break;
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		walk_props(&pkt->ack.props);
		break;
	case BW_SUBSCRIBE:
		walk_props(&pkt->subscribe.props);
		while (bw_codec_next_sub(&pkt->subscribe, version, &off, &e))
			n++;
		assert_int_equal(n, pkt->subscribe.count);
		break;
	case BW_UNSUBSCRIBE:
		walk_props(&pkt->unsubscribe.props);
		while (bw_codec_next_unsub(&pkt->unsubscribe, &off, &f))
			n++;
		assert_int_equal(n, pkt->unsubscribe.count);
		break;
	case BW_SUBACK:
	case BW_UNSUBACK:
		walk_props(&pkt->suback.props);
		break;
	case BW_DISCONNECT:
	case BW_AUTH:
		walk_props(&pkt->disconnect.props);
		break;
	}
}

/* Decodes b[0..n) from an exact-size heap copy; returns the result. */
static int try_decode(const uint8_t *b, size_t n, uint8_t version)
{
	struct bw_packet pkt;
	const char *why = NULL;
	uint8_t *copy = malloc(n ? n : 1);

	assert_non_null(copy);
	if (n)
		memcpy(copy, b, n);
	int rc = bw_codec_decode(copy, n, version, &pkt, &why);
	if (rc == 0)
		walk(&pkt, version);
	else
		assert_true(rc < 0 && why != NULL && why[0] != '\0');
	free(copy);
	return rc;
}

static void test_valid_vectors_decode(void **state)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (try_decode(valid[i].b, valid[i].n, valid[i].version) != 0)
			fail_msg("valid vector %zu does not decode", i);
	}
}

/* Every prefix of a valid packet is refused: its remaining length lies. */
static void test_never_crash_truncated(void **state)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		for (size_t n = 0; n < valid[i].n; n++) {
			int rc = try_decode(valid[i].b, n, valid[i].version);
			if (rc >= 0)
				fail_msg("vector %zu cut to %zu bytes: %d", i, n, rc);
		}
	}
}

/*
 * Every prefix of the body with the remaining length rewritten to match:
 * some are valid packets (a shorter payload), so any result will do.
 */
static void test_never_crash_short_body(void **state)
{
	uint8_t b[256];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct vec *v = &valid[i];
		assert_true(v->b[1] < 0x80 && v->n <= sizeof(b));
		for (size_t m = 0; m < v->b[1]; m++) {
			b[0] = v->b[0];
			b[1] = (uint8_t)m;
			memcpy(b + 2, v->b + 2, m);
			try_decode(b, m + 2, v->version);
		}
	}
}

/* Every byte inverted, and every single bit flipped, one at a time. */
static void test_never_crash_flips(void **state)
{
	uint8_t b[256];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct vec *v = &valid[i];
		for (size_t pos = 0; pos < v->n; pos++) {
			for (int bit = -1; bit < 8; bit++) {
				memcpy(b, v->b, v->n);
				b[pos] ^= bit < 0 ? 0xFF : (uint8_t)(1u << bit);
				try_decode(b, v->n, v->version);
				/* And in the other version. */
				try_decode(b, v->n, v->version == V5 ? V3 : V5);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_past_end),
		cmocka_unit_test(test_missing_packet_id),
		cmocka_unit_test(test_missing_props_len),
		cmocka_unit_test(test_remaining_too_short),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_bad_utf8),
		cmocka_unit_test(test_nul_in_topic),
		cmocka_unit_test(test_publish_wildcard_topic),
		cmocka_unit_test(test_publish_empty_topic),
		cmocka_unit_test(test_bad_fixed_flags),
		cmocka_unit_test(test_publish_bad_flags),
		cmocka_unit_test(test_packet_id_zero),
		cmocka_unit_test(test_connect_protocol),
		cmocka_unit_test(test_connect_flags),
		cmocka_unit_test(test_connect_will_topic),
		cmocka_unit_test(test_connect_auth_data_alone),
		cmocka_unit_test(test_auth_data_alone_elsewhere),
		cmocka_unit_test(test_auth_without_method),
		cmocka_unit_test(test_duplicate_property),
		cmocka_unit_test(test_property_not_allowed),
		cmocka_unit_test(test_unknown_property),
		cmocka_unit_test(test_no_entries),
		cmocka_unit_test(test_subscribe_311_options),
		cmocka_unit_test(test_subscribe_5_options),
		cmocka_unit_test(test_connack),
		cmocka_unit_test(test_reason_not_for_packet),
		cmocka_unit_test(test_ack_without_codes),
		cmocka_unit_test(test_fixed_lengths),
		cmocka_unit_test(test_auth_bad),
		cmocka_unit_test(test_packet_type_zero),
		cmocka_unit_test(test_length_mismatch),
		cmocka_unit_test(test_frame_varint),
		cmocka_unit_test(test_frame_too_large),
		cmocka_unit_test(test_valid_vectors_decode),
		cmocka_unit_test(test_never_crash_truncated),
		cmocka_unit_test(test_never_crash_short_body),
		cmocka_unit_test(test_never_crash_flips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
