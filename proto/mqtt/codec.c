/*
 * The MQTT packet codec (see codec.h): variable byte integers, framing,
 * decoding every packet of 3.1.1 and 5.0 into views with the spec's
 * validation, and encoding them back. Decoding reads through a bounded
 * cursor (struct rd) so that no field can be read past the packet's end.
 */
#include "proto/mqtt/codec.h"

#include "proto/mqtt/props.h"
#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"
#include "proto/mqtt/wire.h"

#include <errno.h>
#include <string.h>

/* ---- variable byte integers ------------------------------------------- */

int bw_varint_decode(const uint8_t *buf, size_t len, uint32_t *v)
{
	uint32_t value = 0;

	for (size_t i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		value |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
		if (!(buf[i] & 0x80)) {
			/* [MQTT-1.5.5-1]: a zero last byte after the first is
			 * a longer encoding than needed. */
			if (i > 0 && buf[i] == 0)
				return -BW_RC_MALFORMED;
			*v = value;
			return (int)i + 1;
		}
	}
	return -BW_RC_MALFORMED;
}

int bw_varint_size(uint32_t v)
{
	return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

int bw_varint_encode(uint8_t *buf, uint32_t v)
{
	int n = 0;
	do {
		uint8_t b = v & 0x7F;
		v >>= 7;
		buf[n++] = b | (v ? 0x80 : 0);
	} while (v);
	return n;
}

/* ---- framing ------------------------------------------------------------ */

int bw_codec_frame(const uint8_t *buf, size_t len, uint32_t max_packet_size, struct bw_frame *frame,
                   const char **why)
{
	uint32_t rl;

	frame->size = 0;
	if (len < 1)
		return BW_CODEC_AGAIN;
	frame->type = buf[0] >> 4;
	frame->flags = buf[0] & 0x0F;
	if (frame->type == 0)
		FAIL(BW_RC_MALFORMED, "reserved packet type 0");
	int n = bw_varint_decode(buf + 1, len - 1, &rl);
	if (n == 0)
		return BW_CODEC_AGAIN;
	if (n < 0)
		FAIL(BW_RC_MALFORMED, "bad remaining length");
	frame->header_len = (uint8_t)(1 + n);
	frame->remaining_len = rl;
	frame->size = frame->header_len + rl;
	if (frame->size > max_packet_size)
		FAIL(BW_RC_PACKET_TOO_LARGE, "packet exceeds the maximum packet size");
	return len < frame->size ? BW_CODEC_AGAIN : 0;
}

/* ---- decoding ----------------------------------------------------------- */

/* A bounded read cursor over one packet's variable header and payload. */
struct rd {
	const uint8_t *b;
	uint32_t len;
	uint32_t off;
};

static inline uint32_t left(const struct rd *r)
{
	return r->len - r->off;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
	if (left(r) < 1)
		return false;
	*v = r->b[r->off++];
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	if (left(r) < 2)
		return false;
	*v = get16(r->b + r->off);
	r->off += 2;
	return true;
}

static bool rd_bin(struct rd *r, struct bw_bin *out)
{
	uint16_t n;
	if (!rd_u16(r, &n) || left(r) < n)
		return false;
	out->p = r->b + r->off;
	out->len = n;
	r->off += n;
	return true;
}

/* A UTF-8 string: -BW_RC_MALFORMED when truncated or invalid. */
static int rd_str(struct rd *r, struct bw_str *out, const char **why)
{
	struct bw_bin b;
	if (!rd_bin(r, &b))
		FAIL(BW_RC_MALFORMED, "truncated string");
	if (!bw_utf8_valid(b.p, b.len))
		FAIL(BW_RC_MALFORMED, "string is not valid UTF-8");
	out->p = b.p;
	out->len = (uint16_t)b.len;
	return 0;
}

/* A 5.0 property block (length prefix included) found in `where`. */
static int rd_props(struct rd *r, unsigned where, struct bw_props *p, const char **why)
{
	uint32_t n;
	int k = bw_varint_decode(r->b + r->off, left(r), &n);
	if (k <= 0)
		FAIL(BW_RC_MALFORMED, "bad property length");
	r->off += (uint32_t)k;
	if (left(r) < n)
		FAIL(BW_RC_MALFORMED, "property length exceeds the packet");
	int rc = bw_props_decode(r->b + r->off, n, where, p, why);
	r->off += n;
	return rc;
}

/*
 * Authentication Data needs its Authentication Method (MQTT 5.0 3.1.2.11.10,
 * 3.2.2.3.18, 3.15.2.2.3): a rule of the packets that carry both.
 */
static int check_auth_props(const struct bw_props *p, const char **why)
{
	if ((p->has & BW_PROP_BIT(BW_PROP_AUTH_DATA)) &&
	    !(p->has & BW_PROP_BIT(BW_PROP_AUTH_METHOD)))
		FAIL(BW_RC_PROTOCOL_ERROR, "Authentication Data without Authentication Method");
	return 0;
}

static int rd_packet_id(struct rd *r, uint16_t *id, const char **why)
{
	if (!rd_u16(r, id))
		FAIL(BW_RC_MALFORMED, "truncated packet identifier");
	if (*id == 0)
		FAIL(BW_RC_PROTOCOL_ERROR, "packet identifier 0");
	return 0;
}

static int rd_end(const struct rd *r, const char **why)
{
	if (left(r) != 0)
		FAIL(BW_RC_MALFORMED, "bytes after the last field");
	return 0;
}

/* Reason codes each 5.0 packet may carry, as a 256-bit set. */
struct code_set {
	uint64_t w[4];
};

static bool code_in(const struct code_set *s, uint8_t c)
{
	return s->w[c >> 6] >> (c & 63) & 1;
}

/* Bit for code c within word c >> 6. */
#define CB(c) (UINT64_C(1) << ((c)&63))

static const struct code_set connack_codes = { {
	CB(0x00),
	0,
	CB(0x80) | CB(0x81) | CB(0x82) | CB(0x83) | CB(0x84) | CB(0x85) | CB(0x86) | CB(0x87) |
	        CB(0x88) | CB(0x89) | CB(0x8A) | CB(0x8C) | CB(0x90) | CB(0x95) | CB(0x97) |
	        CB(0x99) | CB(0x9A) | CB(0x9B) | CB(0x9C) | CB(0x9D) | CB(0x9F),
	0,
} };
static const struct code_set puback_codes = { {
	CB(0x00) | CB(0x10),
	0,
	CB(0x80) | CB(0x83) | CB(0x87) | CB(0x90) | CB(0x91) | CB(0x97) | CB(0x99),
	0,
} };
static const struct code_set pubrel_codes = { { CB(0x00), 0, CB(0x92), 0 } };
static const struct code_set suback_codes = { {
	CB(0x00) | CB(0x01) | CB(0x02),
	0,
	CB(0x80) | CB(0x83) | CB(0x87) | CB(0x8F) | CB(0x91) | CB(0x97) | CB(0x9E) | CB(0xA1) |
	        CB(0xA2),
	0,
} };
static const struct code_set suback311_codes = { { CB(0x00) | CB(0x01) | CB(0x02), 0, CB(0x80),
	                                           0 } };
static const struct code_set unsuback_codes = { {
	CB(0x00) | CB(0x11),
	0,
	CB(0x80) | CB(0x83) | CB(0x87) | CB(0x8F) | CB(0x91),
	0,
} };
static const struct code_set disconnect_codes = { {
	CB(0x00) | CB(0x04),
	0,
	CB(0x80) | CB(0x81) | CB(0x82) | CB(0x83) | CB(0x87) | CB(0x89) | CB(0x8B) | CB(0x8D) |
	        CB(0x8E) | CB(0x8F) | CB(0x90) | CB(0x93) | CB(0x94) | CB(0x95) | CB(0x96) |
	        CB(0x97) | CB(0x98) | CB(0x99) | CB(0x9A) | CB(0x9B) | CB(0x9C) | CB(0x9D) |
	        CB(0x9E) | CB(0x9F) | CB(0xA0) | CB(0xA1) | CB(0xA2),
	0,
} };
static const struct code_set auth_codes = { { CB(0x00) | CB(0x18) | CB(0x19), 0, 0, 0 } };

static int decode_connect(struct rd *r, struct bw_connect *c, const char **why)
{
	struct bw_str name;
	uint8_t flags;
	int rc;

	memset(c, 0, sizeof(*c));
	if (rd_str(r, &name, why))
		FAIL(BW_RC_MALFORMED, "bad protocol name");
	if (!(name.len == 4 && memcmp(name.p, "MQTT", 4) == 0)) {
		if (name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0)
			FAIL(BW_RC_UNSUPPORTED_VERSION, "MQTT 3.1 is not supported");
		FAIL(BW_RC_PROTOCOL_ERROR, "protocol name is not MQTT");
	}
	if (!rd_u8(r, &c->version))
		FAIL(BW_RC_MALFORMED, "truncated CONNECT");
	if (c->version != BW_MQTT_311 && c->version != BW_MQTT_5)
		FAIL(BW_RC_UNSUPPORTED_VERSION, "protocol level is not 4 (3.1.1) or 5 (5.0)");
	if (!rd_u8(r, &flags) || !rd_u16(r, &c->keep_alive))
		FAIL(BW_RC_MALFORMED, "truncated CONNECT");
	if (flags & 0x01)
		FAIL(BW_RC_MALFORMED, "reserved CONNECT flag set");
	c->clean_start = flags & 0x02;
	c->will = flags & 0x04;
	c->will_qos = (flags >> 3) & 0x03;
	c->will_retain = flags & 0x20;
	c->has_password = flags & 0x40;
	c->has_username = flags & 0x80;
	if (c->will_qos == 3)
		FAIL(BW_RC_MALFORMED, "will QoS 3");
	if (!c->will && (c->will_qos || c->will_retain))
		FAIL(BW_RC_MALFORMED, "will QoS or retain set without a will");
	if (c->version == BW_MQTT_311 && c->has_password && !c->has_username)
		FAIL(BW_RC_MALFORMED, "password without user name");

	bool v5 = c->version == BW_MQTT_5;
	if (v5) {
		if ((rc = rd_props(r, BW_CONNECT, &c->props, why)) ||
		    (rc = check_auth_props(&c->props, why)))
			return rc;
	}
	if ((rc = rd_str(r, &c->client_id, why)))
		return rc;
	if (c->will) {
		if (v5 && (rc = rd_props(r, BW_PROPS_WILL, &c->will_props, why)))
			return rc;
		if ((rc = rd_str(r, &c->will_topic, why)))
			return rc;
		if (bw_topic_name_check(c->will_topic.p, c->will_topic.len))
			FAIL(BW_RC_TOPIC_NAME_INVALID, "will topic is not a valid topic name");
		if (!rd_bin(r, &c->will_payload))
			FAIL(BW_RC_MALFORMED, "truncated will payload");
	}
	if (c->has_username && (rc = rd_str(r, &c->username, why)))
		return rc;
	if (c->has_password && !rd_bin(r, &c->password))
		FAIL(BW_RC_MALFORMED, "truncated password");
	return rd_end(r, why);
}

static int decode_connack(struct rd *r, uint8_t version, struct bw_connack *c, const char **why)
{
	uint8_t flags;
	int rc;

	memset(c, 0, sizeof(*c));
	if (!rd_u8(r, &flags) || !rd_u8(r, &c->code))
		FAIL(BW_RC_MALFORMED, "truncated CONNACK");
	if (flags & 0xFE)
		FAIL(BW_RC_MALFORMED, "reserved CONNACK flag set");
	c->session_present = flags & 0x01;
	if (version == BW_MQTT_5) {
		if (!code_in(&connack_codes, c->code))
			FAIL(BW_RC_PROTOCOL_ERROR, "reason code not valid for CONNACK");
		if ((rc = rd_props(r, BW_CONNACK, &c->props, why)) ||
		    (rc = check_auth_props(&c->props, why)))
			return rc;
	} else if (c->code > BW_CONNACK_311_NOT_AUTHORIZED) {
		FAIL(BW_RC_PROTOCOL_ERROR, "return code not valid for CONNACK");
	}
	if (c->session_present && c->code != 0)
		FAIL(BW_RC_PROTOCOL_ERROR, "session present on a refused connection");
	return rd_end(r, why);
}

static int decode_publish(struct rd *r, uint8_t version, uint8_t flags, struct bw_publish *p,
                          const char **why)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->retain = flags & 0x01;
	p->qos = (flags >> 1) & 0x03;
	p->dup = flags & 0x08;
	if (p->qos == 3)
		FAIL(BW_RC_MALFORMED, "PUBLISH QoS 3");
	if (p->dup && p->qos == 0)
		FAIL(BW_RC_MALFORMED, "DUP set on a QoS 0 PUBLISH");
	if ((rc = rd_str(r, &p->topic, why)))
		return rc;
	if (p->topic.len > 0 && bw_topic_name_check(p->topic.p, p->topic.len))
		FAIL(BW_RC_TOPIC_NAME_INVALID, "wildcard in a topic name");
	if (p->qos > 0 && (rc = rd_packet_id(r, &p->packet_id, why)))
		return rc;
	if (version == BW_MQTT_5) {
		if ((rc = rd_props(r, BW_PUBLISH, &p->props, why)))
			return rc;
		if (p->topic.len == 0 && !(p->props.has & BW_PROP_BIT(BW_PROP_TOPIC_ALIAS)))
			FAIL(BW_RC_PROTOCOL_ERROR, "empty topic without a Topic Alias");
	} else if (p->topic.len == 0) {
		FAIL(BW_RC_TOPIC_NAME_INVALID, "empty topic name");
	}
	p->payload.p = r->b + r->off;
	p->payload.len = left(r);
	return 0;
}

static int decode_ack(struct rd *r, uint8_t version, uint8_t type, struct bw_ack *a,
                      const char **why)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if ((rc = rd_packet_id(r, &a->packet_id, why)))
		return rc;
	if (version != BW_MQTT_5 || left(r) == 0)
		return rd_end(r, why);
	rd_u8(r, &a->code);
	const struct code_set *ok =
	        type == BW_PUBACK || type == BW_PUBREC ? &puback_codes : &pubrel_codes;
	if (!code_in(ok, a->code))
		FAIL(BW_RC_PROTOCOL_ERROR, "reason code not valid for this acknowledgement");
	/* Remaining length 3: a reason code and no property length. */
	if (left(r) == 0)
		return 0;
	if ((rc = rd_props(r, type, &a->props, why)))
		return rc;
	return rd_end(r, why);
}

static int decode_subscribe(struct rd *r, uint8_t version, struct bw_subscribe *s, const char **why)
{
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = rd_packet_id(r, &s->packet_id, why)))
		return rc;
	if (version == BW_MQTT_5 && (rc = rd_props(r, BW_SUBSCRIBE, &s->props, why)))
		return rc;
	s->entries.p = r->b + r->off;
	s->entries.len = left(r);
	while (left(r) > 0) {
		struct bw_str f;
		struct bw_topic_share share;
		uint8_t o;
		if ((rc = rd_str(r, &f, why)))
			return rc;
		if (!rd_u8(r, &o))
			FAIL(BW_RC_MALFORMED, "truncated subscription options");
		if (version == BW_MQTT_5) {
			if (o & 0xC0)
				FAIL(BW_RC_MALFORMED, "reserved subscription option bits set");
			if ((o & 0x03) == 3)
				FAIL(BW_RC_PROTOCOL_ERROR, "subscription QoS 3");
			if (((o >> 4) & 0x03) == 3)
				FAIL(BW_RC_PROTOCOL_ERROR, "Retain Handling 3");
			if ((o & 0x04) && bw_topic_share_split(f.p, f.len, &share))
				FAIL(BW_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
		} else if ((o & 0xFC) || (o & 0x03) == 3) {
			FAIL(BW_RC_MALFORMED, "bad subscription QoS byte");
		}
		s->count++;
	}
	if (s->count == 0)
		FAIL(BW_RC_PROTOCOL_ERROR, "SUBSCRIBE without topic filters");
	return 0;
}

static int decode_unsubscribe(struct rd *r, uint8_t version, struct bw_unsubscribe *u,
                              const char **why)
{
	int rc;

	memset(u, 0, sizeof(*u));
	if ((rc = rd_packet_id(r, &u->packet_id, why)))
		return rc;
	if (version == BW_MQTT_5 && (rc = rd_props(r, BW_UNSUBSCRIBE, &u->props, why)))
		return rc;
	u->entries.p = r->b + r->off;
	u->entries.len = left(r);
	while (left(r) > 0) {
		struct bw_str f;
		if ((rc = rd_str(r, &f, why)))
			return rc;
		u->count++;
	}
	if (u->count == 0)
		FAIL(BW_RC_PROTOCOL_ERROR, "UNSUBSCRIBE without topic filters");
	return 0;
}

static int decode_suback(struct rd *r, uint8_t version, uint8_t type, struct bw_suback *s,
                         const char **why)
{
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = rd_packet_id(r, &s->packet_id, why)))
		return rc;
	if (type == BW_UNSUBACK && version != BW_MQTT_5)
		return rd_end(r, why);
	if (version == BW_MQTT_5 && (rc = rd_props(r, type, &s->props, why)))
		return rc;
	s->codes.p = r->b + r->off;
	s->codes.len = left(r);
	if (s->codes.len == 0)
		FAIL(BW_RC_PROTOCOL_ERROR, "acknowledgement without reason codes");
	const struct code_set *ok = type == BW_UNSUBACK    ? &unsuback_codes
	                            : version == BW_MQTT_5 ? &suback_codes
	                                                   : &suback311_codes;
	for (uint32_t i = 0; i < s->codes.len; i++) {
		if (!code_in(ok, s->codes.p[i]))
			FAIL(BW_RC_PROTOCOL_ERROR,
			     "reason code not valid for this acknowledgement");
	}
	return 0;
}

/* DISCONNECT and AUTH. */
static int decode_disconnect(struct rd *r, uint8_t version, uint8_t type, struct bw_disconnect *d,
                             const char **why)
{
	int rc;

	memset(d, 0, sizeof(*d));
	if (version != BW_MQTT_5 || left(r) == 0)
		return rd_end(r, why);
	rd_u8(r, &d->code);
	if (!code_in(type == BW_AUTH ? &auth_codes : &disconnect_codes, d->code))
		FAIL(BW_RC_PROTOCOL_ERROR, "reason code not valid for this packet");
	if (left(r) == 0) {
		/* DISCONNECT may stop after the reason code; AUTH may not. */
		if (type == BW_AUTH)
			FAIL(BW_RC_MALFORMED, "AUTH without a property length");
		return 0;
	}
	if ((rc = rd_props(r, type, &d->props, why)) || (rc = rd_end(r, why)))
		return rc;
	/* 3.15.2.2.2: only the empty AUTH (success, no properties) may omit it. */
	if (type == BW_AUTH && !(d->props.has & BW_PROP_BIT(BW_PROP_AUTH_METHOD)))
		FAIL(BW_RC_PROTOCOL_ERROR, "AUTH without an Authentication Method");
	return check_auth_props(&d->props, why);
}

/* Fixed-header flags each packet type must carry ([MQTT-2.2.2-1]). */
static bool flags_ok(uint8_t type, uint8_t flags)
{
	switch (type) {
	case BW_PUBLISH:
		return true; /* judged by decode_publish() */
	case BW_PUBREL:
	case BW_SUBSCRIBE:
	case BW_UNSUBSCRIBE:
		return flags == 0x2;
	default:
		return flags == 0;
	}
}

int bw_codec_decode(const uint8_t *buf, size_t len, uint8_t version, struct bw_packet *pkt,
                    const char **why)
{
	struct bw_frame f;
	int rc = bw_codec_frame(buf, len, BW_PACKET_SIZE_MAX, &f, why);

	if (rc < 0)
		return rc;
	if (rc == BW_CODEC_AGAIN || f.size != len)
		FAIL(BW_RC_MALFORMED, "packet length does not match its remaining length");
	pkt->type = f.type;
	pkt->flags = f.flags;
	if (f.type == BW_AUTH && version != BW_MQTT_5)
		FAIL(BW_RC_MALFORMED, "AUTH is not a 3.1.1 packet");
	if (!flags_ok(f.type, f.flags))
		FAIL(BW_RC_MALFORMED, "reserved fixed header flags set");
	if (f.type != BW_CONNECT && version != BW_MQTT_311 && version != BW_MQTT_5)
		FAIL(BW_RC_UNSUPPORTED_VERSION, "unknown protocol version");

	struct rd r = { buf + f.header_len, f.remaining_len, 0 };
	switch (f.type) {
	case BW_CONNECT:
		return decode_connect(&r, &pkt->connect, why);
	case BW_CONNACK:
		return decode_connack(&r, version, &pkt->connack, why);
	case BW_PUBLISH:
		return decode_publish(&r, version, f.flags, &pkt->publish, why);
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		return decode_ack(&r, version, f.type, &pkt->ack, why);
	case BW_SUBSCRIBE:
		return decode_subscribe(&r, version, &pkt->subscribe, why);
	case BW_UNSUBSCRIBE:
		return decode_unsubscribe(&r, version, &pkt->unsubscribe, why);
	case BW_SUBACK:
	case BW_UNSUBACK:
		return decode_suback(&r, version, f.type, &pkt->suback, why);
	case BW_PINGREQ:
	case BW_PINGRESP:
		return rd_end(&r, why);
	case BW_DISCONNECT:
	case BW_AUTH:
		return decode_disconnect(&r, version, f.type, &pkt->disconnect, why);
	}
	FAIL(BW_RC_MALFORMED, "unknown packet type");
}

/* ---- list iterators and builders --------------------------------------- */

bool bw_codec_next_sub(const struct bw_subscribe *s, uint8_t version, uint32_t *off,
                       struct bw_sub_entry *e)
{
	if (*off >= s->entries.len)
		return false;
	const uint8_t *b = s->entries.p + *off;
	uint16_t n = get16(b);
	uint8_t o = b[2 + n];

	e->filter.p = b + 2;
	e->filter.len = n;
	e->qos = o & 0x03;
	if (version == BW_MQTT_5) {
		e->no_local = o & 0x04;
		e->retain_as_published = o & 0x08;
		e->retain_handling = (o >> 4) & 0x03;
	} else {
		e->no_local = false;
		e->retain_as_published = false;
		e->retain_handling = 0;
	}
	*off += 3u + n;
	return true;
}

bool bw_codec_next_unsub(const struct bw_unsubscribe *u, uint32_t *off, struct bw_str *filter)
{
	if (*off >= u->entries.len)
		return false;
	const uint8_t *b = u->entries.p + *off;
	filter->len = get16(b);
	filter->p = b + 2;
	*off += 2u + filter->len;
	return true;
}

int bw_codec_put_sub(uint8_t *buf, size_t cap, uint32_t *len, const struct bw_sub_entry *e,
                     uint8_t version)
{
	size_t need = 3u + e->filter.len;

	if (*len > cap || cap - *len < need)
		return -ENOSPC;
	uint8_t o = e->qos & 0x03;
	if (version == BW_MQTT_5)
		o |= (e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
		     (uint8_t)((e->retain_handling & 0x03) << 4);
	uint8_t *b = put_lp(buf + *len, e->filter.p, e->filter.len);
	*b = o;
	*len += (uint32_t)need;
	return 0;
}

int bw_codec_put_unsub(uint8_t *buf, size_t cap, uint32_t *len, struct bw_str filter)
{
	size_t need = 2u + filter.len;

	if (*len > cap || cap - *len < need)
		return -ENOSPC;
	put_lp(buf + *len, filter.p, filter.len);
	*len += (uint32_t)need;
	return 0;
}

/* ---- encoding ----------------------------------------------------------- */

/*
 * Size of a property block with its length prefix. A block too big for the
 * wire yields a size that makes the whole packet too big, so body_size()
 * refuses it.
 */
static uint64_t props_wire(const struct bw_props *p)
{
	uint32_t n = bw_props_size(p);
	if (n > BW_VARINT_MAX)
		return (uint64_t)BW_VARINT_MAX + 1;
	return (uint64_t)bw_varint_size(n) + n;
}

static uint8_t *put_props(uint8_t *b, const struct bw_props *p)
{
	uint32_t n = bw_props_size(p);
	b += bw_varint_encode(b, n);
	return b + bw_props_encode(p, b);
}

/* The ack-style tail shared by PUBACK..PUBCOMP, DISCONNECT and AUTH. */
static bool short_form(uint8_t code, const struct bw_props *p)
{
	return code == 0 && bw_props_size(p) == 0;
}

static bool lp_ok(uint32_t n)
{
	return n <= UINT16_MAX;
}

static uint64_t publish_body_size(const struct bw_publish *p, bool v5)
{
	uint64_t n = 2 + (uint64_t)p->topic.len + (p->qos ? 2 : 0) + p->payload.len;
	if (v5)
		n += props_wire(&p->props);
	return n;
}

/*
 * The encoded remaining length of pkt, or UINT64_MAX when the packet cannot
 * be encoded in `version`.
 */
static uint64_t body_size(const struct bw_packet *pkt, uint8_t version)
{
	bool v5 = version == BW_MQTT_5;
	uint64_t n = 0;

	if (version != BW_MQTT_311 && !v5)
		return UINT64_MAX;
	switch (pkt->type) {
	case BW_CONNECT: {
		const struct bw_connect *c = &pkt->connect;
		n = 2 + 4 + 1 + 1 + 2 + 2 + (uint64_t)c->client_id.len;
		if (v5)
			n += props_wire(&c->props);
		if (c->will) {
			if (!lp_ok(c->will_payload.len))
				return UINT64_MAX;
			if (v5)
				n += props_wire(&c->will_props);
			n += 2 + (uint64_t)c->will_topic.len + 2 + c->will_payload.len;
		}
		if (c->has_username)
			n += 2 + (uint64_t)c->username.len;
		if (c->has_password) {
			if (!lp_ok(c->password.len))
				return UINT64_MAX;
			n += 2 + (uint64_t)c->password.len;
		}
		break;
	}
	case BW_CONNACK:
		n = 2;
		if (v5)
			n += props_wire(&pkt->connack.props);
		break;
	case BW_PUBLISH:
		n = publish_body_size(&pkt->publish, v5);
		break;
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP: {
		const struct bw_ack *a = &pkt->ack;
		n = 2;
		if (v5 && !short_form(a->code, &a->props))
			n += 1 + (bw_props_size(&a->props) ? props_wire(&a->props) : 0);
		break;
	}
	case BW_SUBSCRIBE:
		n = 2 + (uint64_t)pkt->subscribe.entries.len;
		if (v5)
			n += props_wire(&pkt->subscribe.props);
		break;
	case BW_UNSUBSCRIBE:
		n = 2 + (uint64_t)pkt->unsubscribe.entries.len;
		if (v5)
			n += props_wire(&pkt->unsubscribe.props);
		break;
	case BW_SUBACK:
	case BW_UNSUBACK:
		n = 2;
		if (v5)
			n += props_wire(&pkt->suback.props) + pkt->suback.codes.len;
		else if (pkt->type == BW_SUBACK)
			n += pkt->suback.codes.len;
		break;
	case BW_PINGREQ:
	case BW_PINGRESP:
		n = 0;
		break;
	case BW_DISCONNECT:
	case BW_AUTH: {
		const struct bw_disconnect *d = &pkt->disconnect;
		if (!v5)
			return pkt->type == BW_AUTH ? UINT64_MAX : 0;
		if (!short_form(d->code, &d->props)) {
			n = 1;
			if (pkt->type == BW_AUTH || bw_props_size(&d->props))
				n += props_wire(&d->props);
		}
		break;
	}
	default:
		return UINT64_MAX;
	}
	return n > BW_VARINT_MAX ? UINT64_MAX : n;
}

size_t bw_codec_size(const struct bw_packet *pkt, uint8_t version)
{
	uint64_t n = body_size(pkt, version);
	if (n == UINT64_MAX)
		return 0;
	return 1 + (size_t)bw_varint_size((uint32_t)n) + (size_t)n;
}

static uint8_t fixed_flags(const struct bw_packet *pkt)
{
	switch (pkt->type) {
	case BW_PUBLISH:
		return (uint8_t)((pkt->publish.dup ? 0x08 : 0) | (pkt->publish.qos & 0x03) << 1 |
		                 (pkt->publish.retain ? 0x01 : 0));
	case BW_PUBREL:
	case BW_SUBSCRIBE:
	case BW_UNSUBSCRIBE:
		return 0x2;
	default:
		return 0;
	}
}

int bw_codec_encode(const struct bw_packet *pkt, uint8_t version, uint8_t *buf, size_t cap)
{
	uint64_t body = body_size(pkt, version);
	bool v5 = version == BW_MQTT_5;

	if (body == UINT64_MAX)
		return -EINVAL;
	size_t total = 1 + (size_t)bw_varint_size((uint32_t)body) + (size_t)body;
	if (total > cap)
		return -ENOSPC;

	uint8_t *b = buf;
	*b++ = (uint8_t)(pkt->type << 4 | fixed_flags(pkt));
	b += bw_varint_encode(b, (uint32_t)body);
	switch (pkt->type) {
	case BW_CONNECT: {
		const struct bw_connect *c = &pkt->connect;
		b = put_lp(b, (const uint8_t *)"MQTT", 4);
		*b++ = version;
		uint8_t flags = (c->clean_start ? 0x02 : 0);
		if (c->will)
			flags |= 0x04 | (uint8_t)((c->will_qos & 3) << 3) |
			         (c->will_retain ? 0x20 : 0);
		flags |= (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0);
		*b++ = flags;
		b = put16(b, c->keep_alive);
		if (v5)
			b = put_props(b, &c->props);
		b = put_lp(b, c->client_id.p, c->client_id.len);
		if (c->will) {
			if (v5)
				b = put_props(b, &c->will_props);
			b = put_lp(b, c->will_topic.p, c->will_topic.len);
			b = put_lp(b, c->will_payload.p, c->will_payload.len);
		}
		if (c->has_username)
			b = put_lp(b, c->username.p, c->username.len);
		if (c->has_password)
			b = put_lp(b, c->password.p, c->password.len);
		break;
	}
	case BW_CONNACK:
		*b++ = pkt->connack.session_present ? 1 : 0;
		*b++ = pkt->connack.code;
		if (v5)
			b = put_props(b, &pkt->connack.props);
		break;
	case BW_PUBLISH: {
		const struct bw_publish *p = &pkt->publish;
		b = put_lp(b, p->topic.p, p->topic.len);
		if (p->qos)
			b = put16(b, p->packet_id);
		if (v5)
			b = put_props(b, &p->props);
		if (p->payload.len)
			memcpy(b, p->payload.p, p->payload.len);
		b += p->payload.len;
		break;
	}
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP: {
		const struct bw_ack *a = &pkt->ack;
		b = put16(b, a->packet_id);
		if (v5 && !short_form(a->code, &a->props)) {
			*b++ = a->code;
			if (bw_props_size(&a->props))
				b = put_props(b, &a->props);
		}
		break;
	}
	case BW_SUBSCRIBE:
	case BW_UNSUBSCRIBE: {
		const struct bw_subscribe *s = &pkt->subscribe;
		const struct bw_unsubscribe *u = &pkt->unsubscribe;
		bool sub = pkt->type == BW_SUBSCRIBE;
		b = put16(b, sub ? s->packet_id : u->packet_id);
		if (v5)
			b = put_props(b, sub ? &s->props : &u->props);
		const struct bw_bin *e = sub ? &s->entries : &u->entries;
		if (e->len)
			memcpy(b, e->p, e->len);
		b += e->len;
		break;
	}
	case BW_SUBACK:
	case BW_UNSUBACK: {
		const struct bw_suback *s = &pkt->suback;
		b = put16(b, s->packet_id);
		if (v5)
			b = put_props(b, &s->props);
		if (v5 || pkt->type == BW_SUBACK) {
			if (s->codes.len)
				memcpy(b, s->codes.p, s->codes.len);
			b += s->codes.len;
		}
		break;
	}
	case BW_PINGREQ:
	case BW_PINGRESP:
		break;
	case BW_DISCONNECT:
	case BW_AUTH: {
		const struct bw_disconnect *d = &pkt->disconnect;
		if (v5 && !short_form(d->code, &d->props)) {
			*b++ = d->code;
			if (pkt->type == BW_AUTH || bw_props_size(&d->props))
				b = put_props(b, &d->props);
		}
		break;
	}
	}
	return (int)(b - buf);
}

int bw_codec_publish_head(const struct bw_publish *pub, uint8_t version, uint8_t *buf, size_t cap)
{
	bool v5 = version == BW_MQTT_5;

	if (version != BW_MQTT_311 && !v5)
		return -EINVAL;
	uint64_t body = publish_body_size(pub, v5);
	if (body > BW_VARINT_MAX)
		return -EINVAL;
	size_t tail = pub->payload.len + (v5 ? pub->props.raw.len : 0);
	size_t head = 1 + (size_t)bw_varint_size((uint32_t)body) + (size_t)body - tail;
	if (head > cap)
		return -ENOSPC;

	uint8_t *b = buf;
	*b++ = (uint8_t)(BW_PUBLISH << 4 | (pub->dup ? 0x08 : 0) | (pub->qos & 0x03) << 1 |
	                 (pub->retain ? 0x01 : 0));
	b += bw_varint_encode(b, (uint32_t)body);
	b = put_lp(b, pub->topic.p, pub->topic.len);
	if (pub->qos)
		b = put16(b, pub->packet_id);
	if (v5) {
		/* The property length counts raw, which the caller sends after. */
		b += bw_varint_encode(b, bw_props_size(&pub->props));
		b += bw_props_encode_head(&pub->props, b);
	}
	return (int)(b - buf);
}
