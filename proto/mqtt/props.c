/*
 * MQTT 5.0 property blocks (see props.h). One table row a property gives its
 * wire type and the places it may appear; decode enforces that table, the
 * single-occurrence rule and each value's range, and never allocates.
 */
#include "proto/mqtt/props.h"

#include "proto/mqtt/codec.h"
#include "proto/mqtt/utf8.h"
#include "proto/mqtt/wire.h"

#include <errno.h>
#include <string.h>

#define W(t)   (UINT32_C(1) << (t))
#define W_WILL W(BW_PROPS_WILL)
#define W_ACKS (W(BW_PUBACK) | W(BW_PUBREC) | W(BW_PUBREL) | W(BW_PUBCOMP))

struct prop_def {
	uint8_t type; /* enum bw_prop_type; 0 = no such property */
	uint32_t where;
	const char *name;
};

static const struct prop_def props[BW_PROP_SHARED_SUB_AVAILABLE + 1] = {
	[BW_PROP_PAYLOAD_FORMAT] = { BW_PT_BYTE, W(BW_PUBLISH) | W_WILL,
	                             "Payload Format Indicator" },
	[BW_PROP_MESSAGE_EXPIRY] = { BW_PT_U32, W(BW_PUBLISH) | W_WILL, "Message Expiry Interval" },
	[BW_PROP_CONTENT_TYPE] = { BW_PT_UTF8, W(BW_PUBLISH) | W_WILL, "Content Type" },
	[BW_PROP_RESPONSE_TOPIC] = { BW_PT_UTF8, W(BW_PUBLISH) | W_WILL, "Response Topic" },
	[BW_PROP_CORRELATION_DATA] = { BW_PT_BINARY, W(BW_PUBLISH) | W_WILL, "Correlation Data" },
	[BW_PROP_SUBSCRIPTION_ID] = { BW_PT_VARINT, W(BW_PUBLISH) | W(BW_SUBSCRIBE),
	                              "Subscription Identifier" },
	[BW_PROP_SESSION_EXPIRY] = { BW_PT_U32, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_DISCONNECT),
	                             "Session Expiry Interval" },
	[BW_PROP_ASSIGNED_CLIENT_ID] = { BW_PT_UTF8, W(BW_CONNACK), "Assigned Client Identifier" },
	[BW_PROP_SERVER_KEEP_ALIVE] = { BW_PT_U16, W(BW_CONNACK), "Server Keep Alive" },
	[BW_PROP_AUTH_METHOD] = { BW_PT_UTF8, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_AUTH),
	                          "Authentication Method" },
	[BW_PROP_AUTH_DATA] = { BW_PT_BINARY, W(BW_CONNECT) | W(BW_CONNACK) | W(BW_AUTH),
	                        "Authentication Data" },
	[BW_PROP_REQUEST_PROBLEM_INFO] = { BW_PT_BYTE, W(BW_CONNECT),
	                                   "Request Problem Information" },
	[BW_PROP_WILL_DELAY] = { BW_PT_U32, W_WILL, "Will Delay Interval" },
	[BW_PROP_REQUEST_RESPONSE_INFO] = { BW_PT_BYTE, W(BW_CONNECT),
	                                    "Request Response Information" },
	[BW_PROP_RESPONSE_INFO] = { BW_PT_UTF8, W(BW_CONNACK), "Response Information" },
	[BW_PROP_SERVER_REFERENCE] = { BW_PT_UTF8, W(BW_CONNACK) | W(BW_DISCONNECT),
	                               "Server Reference" },
	[BW_PROP_REASON_STRING] = { BW_PT_UTF8,
	                            W(BW_CONNACK) | W_ACKS | W(BW_SUBACK) | W(BW_UNSUBACK) |
	                                    W(BW_DISCONNECT) | W(BW_AUTH),
	                            "Reason String" },
	[BW_PROP_RECEIVE_MAX] = { BW_PT_U16, W(BW_CONNECT) | W(BW_CONNACK), "Receive Maximum" },
	[BW_PROP_TOPIC_ALIAS_MAX] = { BW_PT_U16, W(BW_CONNECT) | W(BW_CONNACK),
	                              "Topic Alias Maximum" },
	[BW_PROP_TOPIC_ALIAS] = { BW_PT_U16, W(BW_PUBLISH), "Topic Alias" },
	[BW_PROP_MAX_QOS] = { BW_PT_BYTE, W(BW_CONNACK), "Maximum QoS" },
	[BW_PROP_RETAIN_AVAILABLE] = { BW_PT_BYTE, W(BW_CONNACK), "Retain Available" },
	[BW_PROP_USER] = { BW_PT_UTF8_PAIR,
	                   W(BW_CONNECT) | W(BW_CONNACK) | W(BW_PUBLISH) | W_WILL | W_ACKS |
	                           W(BW_SUBSCRIBE) | W(BW_SUBACK) | W(BW_UNSUBSCRIBE) |
	                           W(BW_UNSUBACK) | W(BW_DISCONNECT) | W(BW_AUTH),
	                   "User Property" },
	[BW_PROP_MAX_PACKET_SIZE] = { BW_PT_U32, W(BW_CONNECT) | W(BW_CONNACK),
	                              "Maximum Packet Size" },
	[BW_PROP_WILDCARD_SUB_AVAILABLE] = { BW_PT_BYTE, W(BW_CONNACK),
	                                     "Wildcard Subscription Available" },
	[BW_PROP_SUB_ID_AVAILABLE] = { BW_PT_BYTE, W(BW_CONNACK),
	                               "Subscription Identifier Available" },
	[BW_PROP_SHARED_SUB_AVAILABLE] = { BW_PT_BYTE, W(BW_CONNACK),
	                                   "Shared Subscription Available" },
};

enum bw_prop_type bw_prop_type(uint8_t id, uint32_t *where)
{
	if (id >= sizeof(props) / sizeof(props[0]) || props[id].type == 0)
		return 0;
	if (where)
		*where = props[id].where;
	return props[id].type;
}

const char *bw_prop_name(uint8_t id)
{
	if (!bw_prop_type(id, NULL))
		return "?";
	return props[id].name;
}

/*
 * Reads a two-byte-length-prefixed field at buf[*off..len). Returns false
 * when it runs past len.
 */
static bool get_lp(const uint8_t *buf, uint32_t len, uint32_t *off, const uint8_t **p, uint16_t *n)
{
	if (len - *off < 2)
		return false;
	uint16_t l = get16(buf + *off);
	if (len - *off - 2 < l)
		return false;
	*p = buf + *off + 2;
	*n = l;
	*off += 2 + l;
	return true;
}

/* Checks a 0/1 byte property. */
static int bool_prop(uint8_t v, const char **why)
{
	if (v > 1)
		FAIL(BW_RC_PROTOCOL_ERROR, "property value must be 0 or 1");
	return 0;
}

int bw_props_decode(const uint8_t *buf, uint32_t len, unsigned where, struct bw_props *p,
                    const char **why)
{
	uint32_t off = 0;

	memset(p, 0, sizeof(*p));
	p->block.p = buf;
	p->block.len = len;
	while (off < len) {
		uint8_t id = buf[off++];
		uint32_t allowed;
		enum bw_prop_type t = bw_prop_type(id, &allowed);
		/* Identifiers >= 0x80 would be multi-byte varints: none exist. */
		if (t == 0)
			FAIL(BW_RC_MALFORMED, "unknown property identifier");
		if (!(allowed & W(where)))
			FAIL(BW_RC_PROTOCOL_ERROR, "property not allowed on this packet");
		bool repeatable = id == BW_PROP_USER ||
		                  (id == BW_PROP_SUBSCRIPTION_ID && where == BW_PUBLISH);
		if (!repeatable && (p->has & BW_PROP_BIT(id)))
			FAIL(BW_RC_PROTOCOL_ERROR, "property appears more than once");

		uint32_t v = 0;
		struct bw_str s = { 0 };
		struct bw_bin b = { 0 };
		switch (t) {
		case BW_PT_BYTE:
			if (len - off < 1)
				FAIL(BW_RC_MALFORMED, "truncated property");
			v = buf[off++];
			break;
		case BW_PT_U16:
			if (len - off < 2)
				FAIL(BW_RC_MALFORMED, "truncated property");
			v = get16(buf + off);
			off += 2;
			break;
		case BW_PT_U32:
			if (len - off < 4)
				FAIL(BW_RC_MALFORMED, "truncated property");
			v = get32(buf + off);
			off += 4;
			break;
		case BW_PT_VARINT: {
			int n = bw_varint_decode(buf + off, len - off, &v);
			if (n <= 0)
				FAIL(BW_RC_MALFORMED, "bad variable byte integer in property");
			off += (uint32_t)n;
			break;
		}
		case BW_PT_UTF8:
			if (!get_lp(buf, len, &off, &s.p, &s.len))
				FAIL(BW_RC_MALFORMED, "truncated property");
			if (!bw_utf8_valid(s.p, s.len))
				FAIL(BW_RC_MALFORMED, "property string is not valid UTF-8");
			break;
		case BW_PT_BINARY: {
			uint16_t n;
			if (!get_lp(buf, len, &off, &b.p, &n))
				FAIL(BW_RC_MALFORMED, "truncated property");
			b.len = n;
			break;
		}
		case BW_PT_UTF8_PAIR: {
			struct bw_str k, val;
			if (!get_lp(buf, len, &off, &k.p, &k.len) ||
			    !get_lp(buf, len, &off, &val.p, &val.len))
				FAIL(BW_RC_MALFORMED, "truncated user property");
			if (!bw_utf8_valid(k.p, k.len) || !bw_utf8_valid(val.p, val.len))
				FAIL(BW_RC_MALFORMED, "user property is not valid UTF-8");
			p->user_count++;
			continue;
		}
		}

		int rc = 0;
		switch (id) {
		case BW_PROP_PAYLOAD_FORMAT:
			rc = bool_prop((uint8_t)v, why);
			p->payload_format = (uint8_t)v;
			break;
		case BW_PROP_MESSAGE_EXPIRY:
			p->message_expiry = v;
			break;
		case BW_PROP_CONTENT_TYPE:
			p->content_type = s;
			break;
		case BW_PROP_RESPONSE_TOPIC:
			/* [MQTT-3.3.2-14]: a topic name, so no wildcards. */
			if (s.len == 0 || memchr(s.p, '+', s.len) || memchr(s.p, '#', s.len))
				FAIL(BW_RC_PROTOCOL_ERROR,
				     "Response Topic is not a valid topic name");
			p->response_topic = s;
			break;
		case BW_PROP_CORRELATION_DATA:
			p->correlation_data = b;
			break;
		case BW_PROP_SUBSCRIPTION_ID:
			if (v == 0)
				FAIL(BW_RC_PROTOCOL_ERROR, "Subscription Identifier 0");
			if (p->sub_id_count++ == 0)
				p->sub_id = v;
			break;
		case BW_PROP_SESSION_EXPIRY:
			p->session_expiry = v;
			break;
		case BW_PROP_ASSIGNED_CLIENT_ID:
			p->assigned_client_id = s;
			break;
		case BW_PROP_SERVER_KEEP_ALIVE:
			p->server_keep_alive = (uint16_t)v;
			break;
		case BW_PROP_AUTH_METHOD:
			p->auth_method = s;
			break;
		case BW_PROP_AUTH_DATA:
			p->auth_data = b;
			break;
		case BW_PROP_REQUEST_PROBLEM_INFO:
			rc = bool_prop((uint8_t)v, why);
			p->request_problem_info = (uint8_t)v;
			break;
		case BW_PROP_WILL_DELAY:
			p->will_delay = v;
			break;
		case BW_PROP_REQUEST_RESPONSE_INFO:
			rc = bool_prop((uint8_t)v, why);
			p->request_response_info = (uint8_t)v;
			break;
		case BW_PROP_RESPONSE_INFO:
			p->response_info = s;
			break;
		case BW_PROP_SERVER_REFERENCE:
			p->server_reference = s;
			break;
		case BW_PROP_REASON_STRING:
			p->reason_string = s;
			break;
		case BW_PROP_RECEIVE_MAX:
			if (v == 0)
				FAIL(BW_RC_PROTOCOL_ERROR, "Receive Maximum 0");
			p->receive_max = (uint16_t)v;
			break;
		case BW_PROP_TOPIC_ALIAS_MAX:
			p->topic_alias_max = (uint16_t)v;
			break;
		case BW_PROP_TOPIC_ALIAS:
			if (v == 0)
				FAIL(BW_RC_TOPIC_ALIAS_INVALID, "Topic Alias 0");
			p->topic_alias = (uint16_t)v;
			break;
		case BW_PROP_MAX_QOS:
			rc = bool_prop((uint8_t)v, why);
			p->max_qos = (uint8_t)v;
			break;
		case BW_PROP_RETAIN_AVAILABLE:
			rc = bool_prop((uint8_t)v, why);
			p->retain_available = (uint8_t)v;
			break;
		case BW_PROP_MAX_PACKET_SIZE:
			if (v == 0)
				FAIL(BW_RC_PROTOCOL_ERROR, "Maximum Packet Size 0");
			p->max_packet_size = v;
			break;
		case BW_PROP_WILDCARD_SUB_AVAILABLE:
			rc = bool_prop((uint8_t)v, why);
			p->wildcard_sub_available = (uint8_t)v;
			break;
		case BW_PROP_SUB_ID_AVAILABLE:
			rc = bool_prop((uint8_t)v, why);
			p->sub_id_available = (uint8_t)v;
			break;
		case BW_PROP_SHARED_SUB_AVAILABLE:
			rc = bool_prop((uint8_t)v, why);
			p->shared_sub_available = (uint8_t)v;
			break;
		}
		if (rc)
			return rc;
		p->has |= BW_PROP_BIT(id);
	}
	return 0;
}

/* The single-valued properties bw_props_encode() writes from fields. */
static uint32_t value_size(const struct bw_props *p, uint8_t id)
{
	switch (props[id].type) {
	case BW_PT_BYTE:
		return 1;
	case BW_PT_U16:
		return 2;
	case BW_PT_U32:
		return 4;
	default:
		break;
	}
	switch (id) {
	case BW_PROP_SUBSCRIPTION_ID:
		return (uint32_t)bw_varint_size(p->sub_id);
	case BW_PROP_CONTENT_TYPE:
		return 2u + p->content_type.len;
	case BW_PROP_RESPONSE_TOPIC:
		return 2u + p->response_topic.len;
	case BW_PROP_CORRELATION_DATA:
		return 2u + p->correlation_data.len;
	case BW_PROP_ASSIGNED_CLIENT_ID:
		return 2u + p->assigned_client_id.len;
	case BW_PROP_AUTH_METHOD:
		return 2u + p->auth_method.len;
	case BW_PROP_AUTH_DATA:
		return 2u + p->auth_data.len;
	case BW_PROP_RESPONSE_INFO:
		return 2u + p->response_info.len;
	case BW_PROP_SERVER_REFERENCE:
		return 2u + p->server_reference.len;
	case BW_PROP_REASON_STRING:
		return 2u + p->reason_string.len;
	}
	return 0;
}

/*
 * The properties bw_props_encode() writes from fields: known and
 * single-valued (user properties travel in raw), and the subscription
 * identifier only when no sub_ids list replaces it.
 */
static inline uint64_t field_mask(const struct bw_props *p)
{
	static const uint64_t single =
	        BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT) | BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY) |
	        BW_PROP_BIT(BW_PROP_CONTENT_TYPE) | BW_PROP_BIT(BW_PROP_RESPONSE_TOPIC) |
	        BW_PROP_BIT(BW_PROP_CORRELATION_DATA) | BW_PROP_BIT(BW_PROP_SUBSCRIPTION_ID) |
	        BW_PROP_BIT(BW_PROP_SESSION_EXPIRY) | BW_PROP_BIT(BW_PROP_ASSIGNED_CLIENT_ID) |
	        BW_PROP_BIT(BW_PROP_SERVER_KEEP_ALIVE) | BW_PROP_BIT(BW_PROP_AUTH_METHOD) |
	        BW_PROP_BIT(BW_PROP_AUTH_DATA) | BW_PROP_BIT(BW_PROP_REQUEST_PROBLEM_INFO) |
	        BW_PROP_BIT(BW_PROP_WILL_DELAY) | BW_PROP_BIT(BW_PROP_REQUEST_RESPONSE_INFO) |
	        BW_PROP_BIT(BW_PROP_RESPONSE_INFO) | BW_PROP_BIT(BW_PROP_SERVER_REFERENCE) |
	        BW_PROP_BIT(BW_PROP_REASON_STRING) | BW_PROP_BIT(BW_PROP_RECEIVE_MAX) |
	        BW_PROP_BIT(BW_PROP_TOPIC_ALIAS_MAX) | BW_PROP_BIT(BW_PROP_TOPIC_ALIAS) |
	        BW_PROP_BIT(BW_PROP_MAX_QOS) | BW_PROP_BIT(BW_PROP_RETAIN_AVAILABLE) |
	        BW_PROP_BIT(BW_PROP_MAX_PACKET_SIZE) | BW_PROP_BIT(BW_PROP_WILDCARD_SUB_AVAILABLE) |
	        BW_PROP_BIT(BW_PROP_SUB_ID_AVAILABLE) | BW_PROP_BIT(BW_PROP_SHARED_SUB_AVAILABLE);
	uint64_t m = p->has & single;
	if (p->sub_ids)
		m &= ~BW_PROP_BIT(BW_PROP_SUBSCRIPTION_ID);
	return m;
}

/* Visits each set bit of a mask in ascending order: cost per property set. */
#define FOR_EACH_SET(id, mask)                                                                     \
	for (uint64_t m_ = (mask), id = 0; m_ && (id = (uint64_t)__builtin_ctzll(m_), 1);          \
	     m_ &= m_ - 1)

uint32_t bw_props_size(const struct bw_props *p)
{
	uint32_t n = 0;

	FOR_EACH_SET(id, field_mask(p))
	{
		n += 1 + value_size(p, (uint8_t)id);
	}
	if (p->sub_ids) {
		for (uint32_t i = 0; i < p->sub_id_count; i++)
			n += 1 + (uint32_t)bw_varint_size(p->sub_ids[i]);
	}
	return n + p->raw.len;
}

uint32_t bw_props_encode(const struct bw_props *p, uint8_t *buf)
{
	uint32_t n = bw_props_encode_head(p, buf);

	if (p->raw.len)
		memcpy(buf + n, p->raw.p, p->raw.len);
	return n + p->raw.len;
}

uint32_t bw_props_encode_head(const struct bw_props *p, uint8_t *buf)
{
	uint8_t *b = buf;

	FOR_EACH_SET(id, field_mask(p))
	{
		*b++ = (uint8_t)id;
		switch (id) {
		case BW_PROP_PAYLOAD_FORMAT:
			*b++ = p->payload_format;
			break;
		case BW_PROP_REQUEST_PROBLEM_INFO:
			*b++ = p->request_problem_info;
			break;
		case BW_PROP_REQUEST_RESPONSE_INFO:
			*b++ = p->request_response_info;
			break;
		case BW_PROP_MAX_QOS:
			*b++ = p->max_qos;
			break;
		case BW_PROP_RETAIN_AVAILABLE:
			*b++ = p->retain_available;
			break;
		case BW_PROP_WILDCARD_SUB_AVAILABLE:
			*b++ = p->wildcard_sub_available;
			break;
		case BW_PROP_SUB_ID_AVAILABLE:
			*b++ = p->sub_id_available;
			break;
		case BW_PROP_SHARED_SUB_AVAILABLE:
			*b++ = p->shared_sub_available;
			break;
		case BW_PROP_SERVER_KEEP_ALIVE:
			b = put16(b, p->server_keep_alive);
			break;
		case BW_PROP_RECEIVE_MAX:
			b = put16(b, p->receive_max);
			break;
		case BW_PROP_TOPIC_ALIAS_MAX:
			b = put16(b, p->topic_alias_max);
			break;
		case BW_PROP_TOPIC_ALIAS:
			b = put16(b, p->topic_alias);
			break;
		case BW_PROP_MESSAGE_EXPIRY:
		case BW_PROP_SESSION_EXPIRY:
		case BW_PROP_WILL_DELAY:
		case BW_PROP_MAX_PACKET_SIZE: {
			uint32_t v = id == BW_PROP_MESSAGE_EXPIRY   ? p->message_expiry
			             : id == BW_PROP_SESSION_EXPIRY ? p->session_expiry
			             : id == BW_PROP_WILL_DELAY     ? p->will_delay
			                                            : p->max_packet_size;
			b = put32(b, v);
			break;
		}
		case BW_PROP_SUBSCRIPTION_ID:
			b += bw_varint_encode(b, p->sub_id);
			break;
		case BW_PROP_CONTENT_TYPE:
			b = put_lp(b, p->content_type.p, p->content_type.len);
			break;
		case BW_PROP_RESPONSE_TOPIC:
			b = put_lp(b, p->response_topic.p, p->response_topic.len);
			break;
		case BW_PROP_CORRELATION_DATA:
			b = put_lp(b, p->correlation_data.p, p->correlation_data.len);
			break;
		case BW_PROP_ASSIGNED_CLIENT_ID:
			b = put_lp(b, p->assigned_client_id.p, p->assigned_client_id.len);
			break;
		case BW_PROP_AUTH_METHOD:
			b = put_lp(b, p->auth_method.p, p->auth_method.len);
			break;
		case BW_PROP_AUTH_DATA:
			b = put_lp(b, p->auth_data.p, p->auth_data.len);
			break;
		case BW_PROP_RESPONSE_INFO:
			b = put_lp(b, p->response_info.p, p->response_info.len);
			break;
		case BW_PROP_SERVER_REFERENCE:
			b = put_lp(b, p->server_reference.p, p->server_reference.len);
			break;
		case BW_PROP_REASON_STRING:
			b = put_lp(b, p->reason_string.p, p->reason_string.len);
			break;
		}
	}
	if (p->sub_ids) {
		for (uint32_t i = 0; i < p->sub_id_count; i++) {
			*b++ = BW_PROP_SUBSCRIPTION_ID;
			b += bw_varint_encode(b, p->sub_ids[i]);
		}
	}
	return (uint32_t)(b - buf);
}

/*
 * Steps over one property of a block that bw_props_decode() accepted,
 * returning its identifier and the offset of its value.
 */
static uint8_t step(const struct bw_props *p, uint32_t *off, uint32_t *val_off)
{
	const uint8_t *b = p->block.p;
	uint8_t id = b[(*off)++];
	uint32_t v;

	*val_off = *off;
	switch (props[id].type) {
	case BW_PT_BYTE:
		*off += 1;
		break;
	case BW_PT_U16:
		*off += 2;
		break;
	case BW_PT_U32:
		*off += 4;
		break;
	case BW_PT_VARINT:
		*off += (uint32_t)bw_varint_decode(b + *off, p->block.len - *off, &v);
		break;
	case BW_PT_UTF8:
	case BW_PT_BINARY:
		*off += 2u + get16(b + *off);
		break;
	case BW_PT_UTF8_PAIR:
		*off += 2u + get16(b + *off);
		*off += 2u + get16(b + *off);
		break;
	}
	return id;
}

bool bw_props_next_user(const struct bw_props *p, uint32_t *off, struct bw_str *key,
                        struct bw_str *val)
{
	while (*off < p->block.len) {
		uint32_t v;
		if (step(p, off, &v) != BW_PROP_USER)
			continue;
		const uint8_t *b = p->block.p;
		key->len = get16(b + v);
		key->p = b + v + 2;
		v += 2u + key->len;
		val->len = get16(b + v);
		val->p = b + v + 2;
		return true;
	}
	return false;
}

bool bw_props_next_sub_id(const struct bw_props *p, uint32_t *off, uint32_t *id)
{
	while (*off < p->block.len) {
		uint32_t v;
		if (step(p, off, &v) != BW_PROP_SUBSCRIPTION_ID)
			continue;
		bw_varint_decode(p->block.p + v, p->block.len - v, id);
		return true;
	}
	return false;
}

uint32_t bw_props_user_size(const struct bw_props *p)
{
	uint32_t off = 0, n = 0;
	struct bw_str k, v;

	while (bw_props_next_user(p, &off, &k, &v))
		n += 5u + k.len + v.len;
	return n;
}

uint32_t bw_props_copy_user(const struct bw_props *p, uint8_t *out)
{
	uint32_t off = 0;
	uint8_t *b = out;
	struct bw_str k, v;

	while (bw_props_next_user(p, &off, &k, &v)) {
		*b++ = BW_PROP_USER;
		b = put_lp(b, k.p, k.len);
		b = put_lp(b, v.p, v.len);
	}
	return (uint32_t)(b - out);
}

int bw_props_put_user(uint8_t *buf, size_t cap, uint32_t *len, struct bw_str key, struct bw_str val)
{
	size_t need = 5u + key.len + val.len;

	if (*len > cap || cap - *len < need)
		return -ENOSPC;
	uint8_t *b = buf + *len;
	*b++ = BW_PROP_USER;
	b = put_lp(b, key.p, key.len);
	put_lp(b, val.p, val.len);
	*len += (uint32_t)need;
	return 0;
}
