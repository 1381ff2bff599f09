/*
 * Unit tests for stored records (cluster/store/record.h). A message and a
 * session with every field set go through protobuf-c's pack and
 * bw_record_*_decode() and come back field for field and byte for byte;
 * the encode helpers round-trip the same way. Each rule of record.h has a
 * case that breaks it, checked through decode and, where the version is not
 * what is broken, through encode too. Then the hostile inputs: every prefix
 * and every single-byte corruption of a full record, unknown fields, wrong
 * wire types, an oversized buffer and payload, a record whose unpacking
 * would need more memory than the budget, and a memory budget stepped up
 * from zero so that each allocation of a decode fails in turn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/store/record.h"

/* 65536 'a's, one past the longest MQTT string. */
static char long_str[BW_RECORD_STRING_MAX + 2];
static uint8_t long_bin[BW_RECORD_STRING_MAX + 1];

static const uint8_t payload_bytes[] = { 0x00, 0x01, 0xff, 'h', 'i' };
static const uint8_t corr_bytes[] = { 0x00, 'c', 'o', 'r', 'r' };

/*
 * A message with every field set. Its pointers point into the fixture, so
 * a fixture stays where it was initialised.
 */
struct msg_fixture {
	StoredMessage m;
	StoredProperties props;
	StoredUserProperty up[2];
	StoredUserProperty *ups[2];
	uint32_t sub_ids[2];
};

static void msg_fixture_init(struct msg_fixture *f, uint32_t qos)
{
	stored_message__init(&f->m);
	stored_properties__init(&f->props);
	for (int i = 0; i < 2; i++) {
		stored_user_property__init(&f->up[i]);
		f->ups[i] = &f->up[i];
	}
	f->up[0].key = "unit";
	f->up[0].value = "celsius";
	f->up[1].key = "empty";
	f->up[1].value = ""; /* present and empty, not absent */
	f->props.has_payload_format_indicator = 1;
	f->props.payload_format_indicator = 1;
	f->props.content_type = "application/json";
	f->props.response_topic = "plant/7/reply";
	f->props.has_correlation_data = 1;
	f->props.correlation_data.data = (uint8_t *)corr_bytes;
	f->props.correlation_data.len = sizeof(corr_bytes);
	f->props.n_user_properties = 2;
	f->props.user_properties = f->ups;

	f->m.has_version = 1;
	f->m.version = 1;
	f->m.tenant = "acme";
	f->m.topic = "plant/7/temp";
	f->m.has_payload = 1;
	f->m.payload.data = (uint8_t *)payload_bytes;
	f->m.payload.len = sizeof(payload_bytes);
	f->m.has_qos = 1;
	f->m.qos = qos;
	f->m.has_retain = 1;
	f->m.retain = 1;
	f->m.properties = &f->props;
	f->m.has_expiry_at_ms = 1;
	f->m.expiry_at_ms = UINT64_C(1700000060000);
	f->m.has_created_at_ms = 1;
	f->m.created_at_ms = UINT64_C(1700000000000);
	f->m.origin_node = "bulwark-0";
	f->m.publisher_client_id = "sensor-7";
	f->sub_ids[0] = 1;
	f->sub_ids[1] = BW_RECORD_SUB_ID_MAX;
	f->m.n_subscription_identifiers = 2;
	f->m.subscription_identifiers = f->sub_ids;
}

/* A session with every field set, every inflight state among them. */
struct sess_fixture {
	StoredSession s;
	StoredSubscription sub[3];
	StoredSubscription *subs[3];
	StoredWill will;
	struct msg_fixture will_msg;
	StoredInflight inf[3];
	StoredInflight *infs[3];
	struct msg_fixture inf_msg[2];
	struct msg_fixture queue_msg[2];
	StoredMessage *queue[2];
};

static void sess_fixture_init(struct sess_fixture *f)
{
	stored_session__init(&f->s);
	f->s.has_version = 1;
	f->s.version = 1;
	f->s.tenant = "acme";
	f->s.client_id = "sensor-7";
	f->s.has_protocol_version = 1;
	f->s.protocol_version = 5;
	f->s.has_session_expiry_interval_s = 1;
	f->s.session_expiry_interval_s = 3600;
	f->s.has_expires_at_ms = 1;
	f->s.expires_at_ms = UINT64_C(1700003600000);
	f->s.has_next_packet_id = 1;
	f->s.next_packet_id = 65535;
	f->s.owner_node = "bulwark-1";
	f->s.has_fencing_token = 1;
	f->s.fencing_token = UINT64_C(0x8000000000000001);
	f->s.has_last_seen_ms = 1;
	f->s.last_seen_ms = UINT64_C(1700000000123);

	for (int i = 0; i < 3; i++) {
		stored_subscription__init(&f->sub[i]);
		f->subs[i] = &f->sub[i];
	}
	f->sub[0].filter = "plant/+/temp";
	f->sub[0].has_qos = 1;
	f->sub[0].qos = 2;
	f->sub[0].has_no_local = 1;
	f->sub[0].no_local = 1;
	f->sub[0].has_retain_as_published = 1;
	f->sub[0].retain_as_published = 1;
	f->sub[0].has_retain_handling = 1;
	f->sub[0].retain_handling = 2;
	f->sub[0].has_subscription_identifier = 1;
	f->sub[0].subscription_identifier = BW_RECORD_SUB_ID_MAX;
	/* The same filter in a share group is another subscription. */
	f->sub[1].filter = "plant/+/temp";
	f->sub[1].has_qos = 1;
	f->sub[1].qos = 1;
	f->sub[1].share_group = "workers";
	f->sub[2].filter = "#";
	f->s.n_subscriptions = 3;
	f->s.subscriptions = f->subs;

	stored_will__init(&f->will);
	msg_fixture_init(&f->will_msg, 1);
	f->will_msg.m.topic = "plant/7/status";
	f->will_msg.m.expiry_at_ms = 0;
	f->will_msg.m.has_version = 0; /* nested: the session's version covers it */
	f->will_msg.m.version = 0;
	f->will.message = &f->will_msg.m;
	f->will.has_delay_interval_s = 1;
	f->will.delay_interval_s = 30;
	f->will.has_message_expiry_interval_s = 1;
	f->will.message_expiry_interval_s = 0; /* present and 0, not absent */
	f->s.will = &f->will;

	for (int i = 0; i < 3; i++) {
		stored_inflight__init(&f->inf[i]);
		f->infs[i] = &f->inf[i];
		f->inf[i].has_packet_id = 1;
		f->inf[i].has_direction = 1;
		f->inf[i].has_state = 1;
		f->inf[i].has_sent_at_ms = 1;
		f->inf[i].sent_at_ms = UINT64_C(1700000000100) + (uint64_t)i;
	}
	msg_fixture_init(&f->inf_msg[0], 1);
	msg_fixture_init(&f->inf_msg[1], 2);
	f->inf[0].packet_id = 1;
	f->inf[0].direction = STORED_INFLIGHT__DIRECTION__OUTGOING;
	f->inf[0].state = STORED_INFLIGHT__STATE__PUBLISH_SENT;
	f->inf[0].message = &f->inf_msg[0].m;
	f->inf[1].packet_id = 65535;
	f->inf[1].direction = STORED_INFLIGHT__DIRECTION__OUTGOING;
	f->inf[1].state = STORED_INFLIGHT__STATE__PUBREC_RECEIVED;
	/* Incoming ids are another space: 1 again is fine. */
	f->inf[2].packet_id = 1;
	f->inf[2].direction = STORED_INFLIGHT__DIRECTION__INCOMING;
	f->inf[2].state = STORED_INFLIGHT__STATE__PUBREC_SENT;
	f->inf[2].message = &f->inf_msg[1].m;
	f->s.n_inflight = 3;
	f->s.inflight = f->infs;

	msg_fixture_init(&f->queue_msg[0], 0);
	msg_fixture_init(&f->queue_msg[1], 2);
	f->queue_msg[1].m.properties = NULL; /* an MQTT 3.1.1 publish */
	f->queue_msg[1].m.n_subscription_identifiers = 0;
	f->queue[0] = &f->queue_msg[0].m;
	f->queue[1] = &f->queue_msg[1].m;
	f->s.n_offline_queue = 2;
	f->s.offline_queue = f->queue;
}

/* protobuf-c's own pack, so that records the helpers would refuse get out. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

static void assert_str_same(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_bin_same(protobuf_c_boolean has_a, ProtobufCBinaryData a,
                            protobuf_c_boolean has_b, ProtobufCBinaryData b)
{
	assert_int_equal(has_a, has_b);
	assert_int_equal(a.len, b.len);
	if (a.len)
		assert_memory_equal(a.data, b.data, a.len);
}

static void assert_props_same(const StoredProperties *a, const StoredProperties *b)
{
	if (!a || !b) {
		assert_ptr_equal(a, b);
		return;
	}
	assert_int_equal(a->has_payload_format_indicator, b->has_payload_format_indicator);
	assert_int_equal(a->payload_format_indicator, b->payload_format_indicator);
	assert_str_same(a->content_type, b->content_type);
	assert_str_same(a->response_topic, b->response_topic);
	assert_bin_same(a->has_correlation_data, a->correlation_data, b->has_correlation_data,
	                b->correlation_data);
	assert_int_equal(a->n_user_properties, b->n_user_properties);
	for (size_t i = 0; i < a->n_user_properties; i++) {
		assert_str_same(a->user_properties[i]->key, b->user_properties[i]->key);
		assert_str_same(a->user_properties[i]->value, b->user_properties[i]->value);
	}
}

static void assert_msg_same(const StoredMessage *a, const StoredMessage *b)
{
	if (!a || !b) {
		assert_ptr_equal(a, b);
		return;
	}
	assert_int_equal(a->has_version, b->has_version);
	assert_int_equal(a->version, b->version);
	assert_str_same(a->tenant, b->tenant);
	assert_str_same(a->topic, b->topic);
	assert_bin_same(a->has_payload, a->payload, b->has_payload, b->payload);
	assert_int_equal(a->has_qos, b->has_qos);
	assert_int_equal(a->qos, b->qos);
	assert_int_equal(a->has_retain, b->has_retain);
	assert_int_equal(a->retain, b->retain);
	assert_props_same(a->properties, b->properties);
	assert_int_equal(a->has_expiry_at_ms, b->has_expiry_at_ms);
	assert_int_equal(a->expiry_at_ms, b->expiry_at_ms);
	assert_int_equal(a->has_created_at_ms, b->has_created_at_ms);
	assert_int_equal(a->created_at_ms, b->created_at_ms);
	assert_str_same(a->origin_node, b->origin_node);
	assert_str_same(a->publisher_client_id, b->publisher_client_id);
	assert_int_equal(a->n_subscription_identifiers, b->n_subscription_identifiers);
	for (size_t i = 0; i < a->n_subscription_identifiers; i++)
		assert_int_equal(a->subscription_identifiers[i], b->subscription_identifiers[i]);
}

static void assert_sess_same(const StoredSession *a, const StoredSession *b)
{
	assert_int_equal(a->has_version, b->has_version);
	assert_int_equal(a->version, b->version);
	assert_str_same(a->tenant, b->tenant);
	assert_str_same(a->client_id, b->client_id);
	assert_int_equal(a->has_protocol_version, b->has_protocol_version);
	assert_int_equal(a->protocol_version, b->protocol_version);
	assert_int_equal(a->has_session_expiry_interval_s, b->has_session_expiry_interval_s);
	assert_int_equal(a->session_expiry_interval_s, b->session_expiry_interval_s);
	assert_int_equal(a->has_expires_at_ms, b->has_expires_at_ms);
	assert_int_equal(a->expires_at_ms, b->expires_at_ms);
	assert_int_equal(a->n_subscriptions, b->n_subscriptions);
	for (size_t i = 0; i < a->n_subscriptions; i++) {
		const StoredSubscription *x = a->subscriptions[i], *y = b->subscriptions[i];
		assert_str_same(x->filter, y->filter);
		assert_int_equal(x->has_qos, y->has_qos);
		assert_int_equal(x->qos, y->qos);
		assert_int_equal(x->has_no_local, y->has_no_local);
		assert_int_equal(x->no_local, y->no_local);
		assert_int_equal(x->has_retain_as_published, y->has_retain_as_published);
		assert_int_equal(x->retain_as_published, y->retain_as_published);
		assert_int_equal(x->has_retain_handling, y->has_retain_handling);
		assert_int_equal(x->retain_handling, y->retain_handling);
		assert_int_equal(x->has_subscription_identifier, y->has_subscription_identifier);
		assert_int_equal(x->subscription_identifier, y->subscription_identifier);
		assert_str_same(x->share_group, y->share_group);
	}
	if (!a->will || !b->will) {
		assert_ptr_equal(a->will, b->will);
	} else {
		assert_msg_same(a->will->message, b->will->message);
		assert_int_equal(a->will->has_delay_interval_s, b->will->has_delay_interval_s);
		assert_int_equal(a->will->delay_interval_s, b->will->delay_interval_s);
		assert_int_equal(a->will->has_message_expiry_interval_s,
		                 b->will->has_message_expiry_interval_s);
		assert_int_equal(a->will->message_expiry_interval_s,
		                 b->will->message_expiry_interval_s);
	}
	assert_int_equal(a->n_inflight, b->n_inflight);
	for (size_t i = 0; i < a->n_inflight; i++) {
		const StoredInflight *x = a->inflight[i], *y = b->inflight[i];
		assert_int_equal(x->has_packet_id, y->has_packet_id);
		assert_int_equal(x->packet_id, y->packet_id);
		assert_int_equal(x->has_direction, y->has_direction);
		assert_int_equal(x->direction, y->direction);
		assert_int_equal(x->has_state, y->has_state);
		assert_int_equal(x->state, y->state);
		assert_msg_same(x->message, y->message);
		assert_int_equal(x->has_sent_at_ms, y->has_sent_at_ms);
		assert_int_equal(x->sent_at_ms, y->sent_at_ms);
	}
	assert_int_equal(a->n_offline_queue, b->n_offline_queue);
	for (size_t i = 0; i < a->n_offline_queue; i++)
		assert_msg_same(a->offline_queue[i], b->offline_queue[i]);
	assert_int_equal(a->has_next_packet_id, b->has_next_packet_id);
	assert_int_equal(a->next_packet_id, b->next_packet_id);
	assert_str_same(a->owner_node, b->owner_node);
	assert_int_equal(a->has_fencing_token, b->has_fencing_token);
	assert_int_equal(a->fencing_token, b->fencing_token);
	assert_int_equal(a->has_last_seen_ms, b->has_last_seen_ms);
	assert_int_equal(a->last_seen_ms, b->last_seen_ms);
}

/* Re-packing what decode returned gives the input back, bit for bit. */
static void assert_repacks_to(const ProtobufCMessage *m, const uint8_t *buf, size_t len)
{
	size_t len2;
	uint8_t *buf2 = pack(m, &len2);

	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	free(buf2);
}

static void test_message_round_trip(void **state)
{
	struct msg_fixture f;
	StoredMessage *out = NULL;
	size_t len;

	(void)state;
	msg_fixture_init(&f, 2);
	uint8_t *buf = pack(&f.m.base, &len);
	assert_int_equal(bw_record_message_decode(buf, len, &out), 0);
	assert_non_null(out);
	assert_msg_same(&f.m, out);
	assert_repacks_to(&out->base, buf, len);
	bw_record_message_free(&out);
	assert_null(out);
	free(buf);
}

static void test_message_minimal(void **state)
{
	StoredMessage m = STORED_MESSAGE__INIT;
	StoredMessage *out = NULL;
	size_t len;

	(void)state;
	m.has_version = 1;
	m.version = 1;
	m.tenant = "t";
	m.topic = "/";
	uint8_t *buf = pack(&m.base, &len);
	assert_int_equal(bw_record_message_decode(buf, len, &out), 0);
	assert_msg_same(&m, out);
	assert_null(out->properties);
	assert_int_equal(out->payload.len, 0);
	bw_record_message_free(&out);
	free(buf);
}

static void test_message_encode(void **state)
{
	struct msg_fixture f;
	StoredMessage *out = NULL;
	uint8_t *buf = (uint8_t *)"stale";
	size_t len = 99;

	(void)state;
	msg_fixture_init(&f, 1);
	f.m.has_version = 0;
	f.m.version = 0;
	assert_int_equal(bw_record_message_encode(&f.m, &buf, &len), 0);
	assert_int_equal(f.m.has_version, 1);
	assert_int_equal(f.m.version, BW_RECORD_VERSION);
	assert_int_equal(bw_record_message_decode(buf, len, &out), 0);
	assert_msg_same(&f.m, out);
	bw_record_message_free(&out);
	free(buf);

	f.m.qos = 3;
	buf = (uint8_t *)"stale";
	len = 99;
	assert_int_equal(bw_record_message_encode(&f.m, &buf, &len), -EINVAL);
	assert_null(buf);
	assert_int_equal(len, 0);
}

static void test_session_round_trip(void **state)
{
	struct sess_fixture f;
	StoredSession *out = NULL;
	size_t len;

	(void)state;
	sess_fixture_init(&f);
	uint8_t *buf = pack(&f.s.base, &len);
	assert_int_equal(bw_record_session_decode(buf, len, &out), 0);
	assert_non_null(out);
	assert_sess_same(&f.s, out);
	/* An unset share group reads as "", never NULL. */
	assert_string_equal(out->subscriptions[0]->share_group, "");
	assert_repacks_to(&out->base, buf, len);
	bw_record_session_free(&out);
	assert_null(out);
	free(buf);
}

static void test_session_minimal(void **state)
{
	StoredSession s = STORED_SESSION__INIT;
	StoredSession *out = NULL;
	size_t len;

	(void)state;
	s.has_version = 1;
	s.version = 1;
	s.tenant = "t";
	s.client_id = "c";
	s.has_protocol_version = 1;
	s.protocol_version = 4;
	uint8_t *buf = pack(&s.base, &len);
	assert_int_equal(bw_record_session_decode(buf, len, &out), 0);
	assert_sess_same(&s, out);
	assert_null(out->will);
	assert_null(out->owner_node);
	assert_int_equal(out->next_packet_id, 0);
	bw_record_session_free(&out);
	free(buf);
}

static void test_session_encode(void **state)
{
	struct sess_fixture f;
	StoredSession *out = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	sess_fixture_init(&f);
	f.s.version = 0;
	assert_int_equal(bw_record_session_encode(&f.s, &buf, &len), 0);
	assert_int_equal(f.s.version, BW_RECORD_VERSION);
	/* Nested messages are left alone. */
	assert_int_equal(f.will_msg.m.has_version, 0);
	assert_int_equal(bw_record_session_decode(buf, len, &out), 0);
	assert_sess_same(&f.s, out);
	bw_record_session_free(&out);
	free(buf);

	f.inf[1].packet_id = 1; /* now a duplicate of inf[0] */
	assert_int_equal(bw_record_session_encode(&f.s, &buf, &len), -EINVAL);
	assert_null(buf);
}

static void test_free_null(void **state)
{
	StoredMessage *m = NULL;
	StoredSession *s = NULL;

	(void)state;
	bw_record_message_free(NULL);
	bw_record_message_free(&m);
	bw_record_session_free(NULL);
	bw_record_session_free(&s);
	assert_null(m);
	assert_null(s);
}

static void check_msg_case(int line, const StoredMessage *m, int expect, bool try_encode)
{
	StoredMessage *out = (StoredMessage *)(uintptr_t)1;
	size_t len;
	uint8_t *buf = pack(&m->base, &len);
	int rc = bw_record_message_decode(buf, len, &out);

	free(buf);
	if (rc != expect)
		fail_msg("line %d: decode = %d, expected %d", line, rc, expect);
	if (rc == 0)
		bw_record_message_free(&out);
	if (out)
		fail_msg("line %d: *out not NULL after decode", line);
	if (!try_encode)
		return;
	rc = bw_record_message_encode((StoredMessage *)m, &buf, &len);
	if (rc != expect)
		fail_msg("line %d: encode = %d, expected %d", line, rc, expect);
	if (rc == 0)
		free(buf);
	else if (buf)
		fail_msg("line %d: *out not NULL after encode", line);
}

/* Each case starts from the full fixture, runs the statements, then checks. */
#define MSG_CASE_(expect, try_encode, ...)                                                         \
	do {                                                                                       \
		struct msg_fixture f;                                                              \
		msg_fixture_init(&f, 1);                                                           \
		__VA_ARGS__;                                                                       \
		check_msg_case(__LINE__, &f.m, expect, try_encode);                                \
	} while (0)
#define MSG_OK(...)         MSG_CASE_(0, true, __VA_ARGS__)
#define MSG_BAD(...)        MSG_CASE_(-EINVAL, true, __VA_ARGS__)
#define MSG_DECODE(rc, ...) MSG_CASE_(rc, false, __VA_ARGS__)

static void test_message_rules(void **state)
{
	(void)state;
	/* Version: decode only, as encode stamps it. */
	MSG_DECODE(-EINVAL, f.m.has_version = 0);
	MSG_DECODE(-EINVAL, f.m.version = 0);
	MSG_DECODE(-EPROTONOSUPPORT, f.m.version = 2);
	MSG_DECODE(-EPROTONOSUPPORT, f.m.version = UINT32_MAX);

	MSG_BAD(f.m.tenant = NULL);
	MSG_BAD(f.m.tenant = "");
	/* Tenant names are DNS labels, as the tenancy layer defines them. */
	MSG_BAD(f.m.tenant = "Acme");
	MSG_BAD(f.m.tenant = "-acme");
	MSG_BAD(f.m.tenant = "\xff");
	MSG_BAD(f.m.topic = NULL);
	MSG_BAD(f.m.topic = "");
	MSG_BAD(f.m.topic = "a/+");
	MSG_BAD(f.m.topic = "a/#");
	MSG_BAD(f.m.topic = "a\xc0\xaf");     /* overlong '/' */
	MSG_BAD(f.m.topic = "a\xed\xa0\x80"); /* UTF-16 surrogate */
	MSG_BAD(f.m.topic = "a\x80");
	MSG_BAD(f.m.topic = long_str);
	MSG_OK(f.m.topic = long_str + 1); /* 65535 bytes: the longest allowed */
	MSG_OK(f.m.topic = "$SYS/x");
	MSG_OK(f.m.topic = "\xc3\xa9t\xc3\xa9");
	MSG_OK(f.m.qos = 0);
	MSG_OK(f.m.qos = 2);
	MSG_BAD(f.m.qos = 3);
	MSG_BAD(f.m.qos = UINT32_MAX);
	MSG_OK(f.m.properties = NULL);
	MSG_OK(f.m.has_payload = 0; f.m.payload.len = 0; f.m.payload.data = NULL);
	MSG_OK(f.m.origin_node = NULL; f.m.publisher_client_id = NULL);
	MSG_BAD(f.m.origin_node = "\xff");
	MSG_BAD(f.m.publisher_client_id = "\xfe");
	MSG_BAD(f.m.publisher_client_id = long_str);
	MSG_OK(f.m.n_subscription_identifiers = 0);
	MSG_BAD(f.sub_ids[0] = 0);
	MSG_BAD(f.sub_ids[1] = BW_RECORD_SUB_ID_MAX + 1);

	MSG_OK(f.props.payload_format_indicator = 0);
	MSG_BAD(f.props.payload_format_indicator = 2);
	MSG_OK(f.props.content_type = "");
	MSG_BAD(f.props.content_type = "\xff");
	MSG_BAD(f.props.content_type = long_str);
	MSG_OK(f.props.response_topic = NULL);
	MSG_BAD(f.props.response_topic = "");
	MSG_BAD(f.props.response_topic = "reply/+");
	MSG_BAD(f.props.response_topic = "\xed\xbf\xbf");
	MSG_OK(f.props.correlation_data.data = long_bin;
	       f.props.correlation_data.len = BW_RECORD_STRING_MAX);
	MSG_BAD(f.props.correlation_data.data = long_bin;
	        f.props.correlation_data.len = BW_RECORD_STRING_MAX + 1);
	MSG_OK(f.props.n_user_properties = 0);
	MSG_OK(f.up[0].key = "");
	MSG_BAD(f.up[0].key = NULL);
	MSG_BAD(f.up[1].value = NULL);
	MSG_BAD(f.up[1].key = "\xc1\xbf");
	MSG_BAD(f.up[0].value = "\xf4\x90\x80\x80"); /* above U+10FFFF */
	MSG_BAD(f.up[0].value = long_str);
}

static void check_sess_case(int line, const StoredSession *s, int expect, bool try_encode)
{
	StoredSession *out = (StoredSession *)(uintptr_t)1;
	size_t len;
	uint8_t *buf = pack(&s->base, &len);
	int rc = bw_record_session_decode(buf, len, &out);

	free(buf);
	if (rc != expect)
		fail_msg("line %d: decode = %d, expected %d", line, rc, expect);
	if (rc == 0)
		bw_record_session_free(&out);
	if (out)
		fail_msg("line %d: *out not NULL after decode", line);
	if (!try_encode)
		return;
	rc = bw_record_session_encode((StoredSession *)s, &buf, &len);
	if (rc != expect)
		fail_msg("line %d: encode = %d, expected %d", line, rc, expect);
	if (rc == 0)
		free(buf);
	else if (buf)
		fail_msg("line %d: *out not NULL after encode", line);
}

#define SESS_CASE_(expect, try_encode, ...)                                                        \
	do {                                                                                       \
		struct sess_fixture f;                                                             \
		sess_fixture_init(&f);                                                             \
		__VA_ARGS__;                                                                       \
		check_sess_case(__LINE__, &f.s, expect, try_encode);                               \
	} while (0)
#define SESS_OK(...)         SESS_CASE_(0, true, __VA_ARGS__)
#define SESS_BAD(...)        SESS_CASE_(-EINVAL, true, __VA_ARGS__)
#define SESS_DECODE(rc, ...) SESS_CASE_(rc, false, __VA_ARGS__)

static void test_session_rules(void **state)
{
	(void)state;
	SESS_DECODE(-EINVAL, f.s.has_version = 0);
	SESS_DECODE(-EINVAL, f.s.version = 0);
	SESS_DECODE(-EPROTONOSUPPORT, f.s.version = 2);

	SESS_BAD(f.s.tenant = NULL);
	SESS_BAD(f.s.tenant = "");
	SESS_BAD(f.s.tenant = "acme corp");
	SESS_BAD(f.s.tenant = "\xff");
	SESS_BAD(f.s.client_id = NULL);
	SESS_BAD(f.s.client_id = "");
	SESS_BAD(f.s.client_id = "\xc0\x80"); /* overlong U+0000 */
	SESS_BAD(f.s.client_id = long_str);
	SESS_OK(f.s.protocol_version = 4);
	SESS_BAD(f.s.protocol_version = 3);
	SESS_BAD(f.s.protocol_version = 6);
	SESS_BAD(f.s.has_protocol_version = 0; f.s.protocol_version = 0);
	SESS_OK(f.s.session_expiry_interval_s = UINT32_MAX; f.s.expires_at_ms = 0);
	SESS_OK(f.s.next_packet_id = 0);
	SESS_BAD(f.s.next_packet_id = 65536);
	SESS_OK(f.s.owner_node = NULL);
	SESS_BAD(f.s.owner_node = "\xff");

	/* Subscriptions. */
	SESS_OK(f.s.n_subscriptions = 0);
	SESS_BAD(f.sub[0].filter = NULL);
	SESS_BAD(f.sub[0].filter = "");
	SESS_BAD(f.sub[0].filter = "a/b#");
	SESS_BAD(f.sub[0].filter = "a+/b");
	SESS_BAD(f.sub[0].filter = "#/a");
	SESS_BAD(f.sub[0].filter = "a/\xff");
	SESS_BAD(f.sub[0].filter = long_str);
	SESS_BAD(f.sub[2].filter = "$share/g/a");
	SESS_BAD(f.sub[2].filter = "$share/g/a"; f.sub[2].share_group = "g");
	SESS_OK(f.sub[2].filter = "$share");
	SESS_OK(f.sub[2].filter = "$sharex/a");
	SESS_BAD(f.sub[0].qos = 3);
	SESS_BAD(f.sub[0].retain_handling = 3);
	SESS_OK(f.sub[0].subscription_identifier = 0);
	SESS_BAD(f.sub[0].subscription_identifier = BW_RECORD_SUB_ID_MAX + 1);
	SESS_BAD(f.sub[1].share_group = "a/b");
	SESS_BAD(f.sub[1].share_group = "+");
	SESS_BAD(f.sub[1].share_group = "g#");
	SESS_BAD(f.sub[1].share_group = "\xff");
	SESS_BAD(f.sub[1].share_group = long_str);
	SESS_BAD(f.sub[1].has_no_local = 1; f.sub[1].no_local = 1);
	SESS_OK(f.sub[1].share_group = NULL; f.sub[1].filter = "x");
	SESS_OK(f.sub[1].share_group = ""; f.sub[1].filter = "x");
	/* At most one subscription a (share group, filter); NULL and "" are one group. */
	SESS_BAD(f.sub[2].filter = "plant/+/temp");
	SESS_BAD(f.sub[2].filter = "plant/+/temp"; f.sub[2].share_group = "workers");
	SESS_BAD(f.sub[1].share_group = "");
	SESS_BAD(f.sub[1].share_group = NULL);
	SESS_OK(f.sub[2].filter = "plant/+/temp"; f.sub[2].share_group = "others");

	/* Will. */
	SESS_OK(f.s.will = NULL);
	SESS_BAD(f.will.message = NULL);
	SESS_BAD(f.will_msg.m.tenant = "other");
	SESS_BAD(f.will_msg.m.tenant = NULL);
	SESS_BAD(f.will_msg.m.expiry_at_ms = 1);
	SESS_BAD(f.will_msg.m.topic = "a/+");
	SESS_OK(f.will_msg.m.has_version = 1; f.will_msg.m.version = 1);
	SESS_BAD(f.will_msg.m.has_version = 1; f.will_msg.m.version = 0);
	SESS_CASE_(-EPROTONOSUPPORT, true, f.will_msg.m.has_version = 1; f.will_msg.m.version = 2);

	/* Inflight. */
	SESS_OK(f.s.n_inflight = 0);
	SESS_BAD(f.inf[0].packet_id = 0);
	SESS_BAD(f.inf[0].packet_id = 65536);
	SESS_BAD(f.inf[1].packet_id = 1);
	SESS_OK(f.inf[2].packet_id = 65535);
	SESS_BAD(f.inf[0].direction = STORED_INFLIGHT__DIRECTION__DIRECTION_UNSPECIFIED);
	SESS_BAD(f.inf[0].direction = (StoredInflight__Direction)7);
	SESS_BAD(f.inf[0].direction = (StoredInflight__Direction)-1);
	SESS_BAD(f.inf[0].state = STORED_INFLIGHT__STATE__STATE_UNSPECIFIED);
	SESS_BAD(f.inf[0].state = (StoredInflight__State)9);
	SESS_BAD(f.inf[0].state = STORED_INFLIGHT__STATE__PUBREC_SENT);
	SESS_BAD(f.inf[2].state = STORED_INFLIGHT__STATE__PUBLISH_SENT);
	SESS_BAD(f.inf[2].state = STORED_INFLIGHT__STATE__PUBREC_RECEIVED);
	SESS_BAD(f.inf[0].message = NULL);
	SESS_OK(f.inf[2].message = NULL);
	SESS_OK(f.inf[1].message = &f.inf_msg[1].m);
	SESS_BAD(f.inf[1].message = &f.inf_msg[0].m); /* QoS 1 in a QoS 2 state */
	SESS_BAD(f.inf_msg[1].m.qos = 1);
	SESS_BAD(f.inf_msg[0].m.qos = 0);
	SESS_OK(f.inf_msg[0].m.qos = 2);
	SESS_BAD(f.inf_msg[0].m.tenant = "other");
	SESS_BAD(f.inf_msg[0].m.topic = "");

	/* Offline queue. */
	SESS_OK(f.s.n_offline_queue = 0);
	SESS_BAD(f.queue_msg[1].m.tenant = "acme2");
	SESS_BAD(f.queue_msg[1].m.tenant = NULL);
	SESS_BAD(f.queue_msg[1].m.topic = "#");
	SESS_BAD(f.queue_msg[0].sub_ids[0] = 0);
	SESS_BAD(f.queue_msg[0].up[0].key = NULL);
}

/* Every prefix of a valid record: an error, or a record that passed the rules. */
static void decode_prefixes(const ProtobufCMessage *m, bool session)
{
	size_t len;
	uint8_t *full = pack(m, &len);
	size_t ok = 0;

	for (size_t n = 0; n < len; n++) {
		/* A copy of exactly n bytes, so that ASan sees any read past it. */
		uint8_t *buf = malloc(n ? n : 1);
		assert_non_null(buf);
		memcpy(buf, full, n);
		StoredSession *so = (StoredSession *)(uintptr_t)1;
		StoredMessage *mo = (StoredMessage *)(uintptr_t)1;
		int rc = session ? bw_record_session_decode(buf, n, &so)
		                 : bw_record_message_decode(buf, n, &mo);
		void *out = session ? (void *)so : (void *)mo;
		if (rc == 0) {
			assert_non_null(out);
			ok++;
		} else {
			assert_null(out);
			assert_true(rc == -EBADMSG || rc == -EINVAL);
		}
		if (session)
			bw_record_session_free(&so);
		else
			bw_record_message_free(&mo);
		free(buf);
	}
	/* Dropping trailing optional fields leaves valid records. */
	assert_true(ok > 0);
	free(full);
}

static void test_truncated(void **state)
{
	struct msg_fixture mf;
	struct sess_fixture sf;

	(void)state;
	msg_fixture_init(&mf, 1);
	decode_prefixes(&mf.m.base, false);
	sess_fixture_init(&sf);
	decode_prefixes(&sf.s.base, true);
}

/* Every byte of a valid session replaced by a few values: no crash, no leak. */
static void test_corrupted(void **state)
{
	static const uint8_t values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
	struct sess_fixture f;
	size_t len;

	(void)state;
	sess_fixture_init(&f);
	uint8_t *buf = pack(&f.s.base, &len);
	for (size_t i = 0; i < len; i++) {
		uint8_t saved = buf[i];
		for (size_t v = 0; v < sizeof(values); v++) {
			StoredSession *out = NULL;
			buf[i] = values[v];
			int rc = bw_record_session_decode(buf, len, &out);
			if (rc == 0) {
				assert_non_null(out);
				bw_record_session_free(&out);
			} else {
				assert_null(out);
			}
		}
		buf[i] = saved;
	}
	free(buf);
}

static void test_bad_bytes(void **state)
{
	/* field 3 (topic) as a varint: the wrong wire type */
	static const uint8_t wrong_wire[] = { 0x08, 0x01, 0x18, 0x01 };
	/* a length prefix running past the end */
	static const uint8_t overrun[] = { 0x08, 0x01, 0x12, 0x05, 'a' };
	/* an unterminated varint */
	static const uint8_t varint[] = { 0x08, 0xff, 0xff };
	/* wire type 7 does not exist */
	static const uint8_t wire7[] = { 0x0f };
	StoredMessage *m = NULL;
	StoredSession *s = NULL;

	(void)state;
	assert_int_equal(bw_record_message_decode(wrong_wire, sizeof(wrong_wire), &m), -EBADMSG);
	assert_int_equal(bw_record_message_decode(overrun, sizeof(overrun), &m), -EBADMSG);
	assert_int_equal(bw_record_message_decode(varint, sizeof(varint), &m), -EBADMSG);
	assert_int_equal(bw_record_message_decode(wire7, sizeof(wire7), &m), -EBADMSG);
	assert_int_equal(bw_record_session_decode(wrong_wire, sizeof(wrong_wire), &s), -EBADMSG);
	assert_null(m);
	assert_null(s);
	/*
	 * Field 0 (not protobuf), its tag written in two bytes, which
	 * protobuf-c would take and keep: at the top and nested in a session.
	 */
	static const uint8_t zero_top[] = { 0x08, 0x01, 0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_int_equal(bw_record_message_decode(zero_top, sizeof(zero_top), &m), -EBADMSG);
	static const uint8_t zero_nested[] = {
		0x08, 0x01, 0x12, 0x01, 'a',  0x1a, 0x01, 'c',  0x20,
		0x05, 0x3a, 0x06, 0x0a, 0x01, 'f',  0x80, 0x00, 0x05
	};
	assert_int_equal(bw_record_session_decode(zero_nested, sizeof(zero_nested), &s), -EBADMSG);
	/* The same session without it is fine. */
	static const uint8_t nested_ok[] = { 0x08, 0x01, 0x12, 0x01, 'a',  0x1a, 0x01, 'c',
		                             0x20, 0x05, 0x3a, 0x03, 0x0a, 0x01, 'f' };
	assert_int_equal(bw_record_session_decode(nested_ok, sizeof(nested_ok), &s), 0);
	bw_record_session_free(&s);
	/* Nothing at all is a record without a version. */
	assert_int_equal(bw_record_message_decode(NULL, 0, &m), -EINVAL);
	assert_int_equal(bw_record_session_decode(NULL, 0, &s), -EINVAL);
	assert_null(m);
	assert_null(s);
}

/* A newer writer's extra fields are skipped and kept, not refused. */
static void test_unknown_fields(void **state)
{
	struct msg_fixture f;
	StoredMessage *out = NULL;
	size_t len;

	(void)state;
	msg_fixture_init(&f, 1);
	uint8_t *packed = pack(&f.m.base, &len);
	/* field 100, varint 5; field 101, length-prefixed "xy" */
	static const uint8_t extra[] = { 0xa0, 0x06, 0x05, 0xaa, 0x06, 0x02, 'x', 'y' };
	uint8_t *buf = malloc(len + sizeof(extra));
	assert_non_null(buf);
	memcpy(buf, packed, len);
	memcpy(buf + len, extra, sizeof(extra));
	assert_int_equal(bw_record_message_decode(buf, len + sizeof(extra), &out), 0);
	assert_msg_same(&f.m, out);
	assert_int_equal(out->base.n_unknown_fields, 2);
	bw_record_message_free(&out);
	free(buf);
	free(packed);
}

static void test_oversize(void **state)
{
	StoredMessage *m = (StoredMessage *)(uintptr_t)1;
	StoredSession *s = (StoredSession *)(uintptr_t)1;
	struct msg_fixture f;
	uint8_t *out;
	size_t len;

	(void)state;
	/* calloc maps it lazily; decode must refuse it before reading a byte. */
	uint8_t *big = calloc(1, BW_RECORD_MAX_BYTES + 1);
	assert_non_null(big);
	assert_int_equal(bw_record_message_decode(big, BW_RECORD_MAX_BYTES + 1, &m), -EMSGSIZE);
	assert_int_equal(bw_record_session_decode(big, BW_RECORD_MAX_BYTES + 1, &s), -EMSGSIZE);
	assert_null(m);
	assert_null(s);

	/* A payload that would make the record too big is refused on encode. */
	msg_fixture_init(&f, 1);
	f.m.payload.data = big;
	f.m.payload.len = BW_RECORD_MAX_BYTES;
	assert_int_equal(bw_record_message_encode(&f.m, &out, &len), -EMSGSIZE);
	assert_null(out);
	free(big);
}

/*
 * Empty offline_queue entries cost two bytes each on the wire and a
 * StoredMessage each in memory. Unchecked, a few MiB of them would unpack
 * into more than BW_RECORD_DECODE_MEM_MAX; the budget refuses them first.
 */
static void test_memory_budget(void **state)
{
	ProtobufCMessage *out = NULL;

	(void)state;
	size_t n = BW_RECORD_DECODE_MEM_MAX / sizeof(StoredMessage) + 1;
	uint8_t *buf = malloc(2 * n);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = (10 << 3) | 2; /* field 10, length-prefixed */
		buf[2 * i + 1] = 0;
	}
	assert_true(2 * n <= BW_RECORD_MAX_BYTES);
	StoredSession *s = (StoredSession *)(uintptr_t)1;
	assert_int_equal(bw_record_session_decode(buf, 2 * n, &s), -EMSGSIZE);
	assert_null(s);
	/* The same with a small budget, and one small enough to let it through. */
	assert_int_equal(
	        bw__record_decode(&stored_session__descriptor, buf, 2 * 1000, 64 * 1024, &out),
	        -EMSGSIZE);
	assert_null(out);
	assert_int_equal(
	        bw__record_decode(&stored_session__descriptor, buf, 2 * 10, 64 * 1024, &out),
	        -EINVAL); /* unpacked, then refused: no version */
	assert_null(out);
	free(buf);
}

/*
 * A budget of 0, 1, 2, ... bytes fails each allocation of a decode (protobuf-c's
 * and the rules' own) in turn; every failure must be clean, which ASan checks.
 */
static void step_budget(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *m)
{
	size_t len;
	uint8_t *buf = pack(m, &len);
	size_t mem;
	int rc = -EMSGSIZE;

	for (mem = 0; rc == -EMSGSIZE; mem++) {
		ProtobufCMessage *out = (ProtobufCMessage *)(uintptr_t)1;
		rc = bw__record_decode(desc, buf, len, mem, &out);
		if (rc == 0) {
			assert_non_null(out);
			protobuf_c_message_free_unpacked(out, NULL);
		} else {
			assert_null(out);
		}
	}
	assert_int_equal(rc, 0);
	assert_true(mem > 1);
	free(buf);
}

static void test_allocation_failures(void **state)
{
	struct msg_fixture mf;
	struct sess_fixture sf;

	(void)state;
	msg_fixture_init(&mf, 1);
	step_budget(&stored_message__descriptor, &mf.m.base);
	sess_fixture_init(&sf);
	step_budget(&stored_session__descriptor, &sf.s.base);
}

int main(void)
{
	memset(long_str, 'a', BW_RECORD_STRING_MAX + 1);
	long_str[BW_RECORD_STRING_MAX + 1] = '\0';
	memset(long_bin, 0xab, sizeof(long_bin));

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_round_trip),
		cmocka_unit_test(test_message_minimal),
		cmocka_unit_test(test_message_encode),
		cmocka_unit_test(test_session_round_trip),
		cmocka_unit_test(test_session_minimal),
		cmocka_unit_test(test_session_encode),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_message_rules),
		cmocka_unit_test(test_session_rules),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_corrupted),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_memory_budget),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
