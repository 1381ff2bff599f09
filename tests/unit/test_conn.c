/*
 * The connection protocol engine, driven like a worker drives it: bytes in
 * (built with the codec), bytes out of the output queue (decoded with the
 * codec), and a fake broker behind struct bw_conn_ops that records what the
 * connection asked of it. Covers CONNECT in both versions, PINGREQ,
 * SUBSCRIBE codes, PUBLISH at every QoS with duplicates and topic aliases,
 * refusals, Receive Maximum, deliveries with the client's window and
 * Maximum Packet Size, redelivery on reconnect, wills on every kind of
 * end, enhanced authentication (the broker's method only; AUTH
 * re-authentication answered now or later; AUTH protocol errors), and
 * PUBACK/PUBREC made to wait (bw_conn_wait: PUBLISH order, refusals in
 * both versions, what the end of the connection does with them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/conn.h"
#include "node/core/msg.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define S(lit) ((struct bw_str){ (const uint8_t *)(lit), (uint16_t)(sizeof(lit) - 1) })

/* ---- a fake broker -------------------------------------------------------- */

struct env {
	uint64_t now;
	struct bw_session *session; /* survives connections, like a persistent one */
	bool session_present;
	int connect_rc;
	int connects, publishes, subscribes, unsubscribes, closes;
	bool last_will;
	struct bw_msg *last_pub;
	uint32_t last_sub_id;
	int sub_rc;
	int reauth_rc, reauths; /* ops->reauth's answer; calls */
	uint8_t reauth_data[16];
	/*
	 * ops->publish makes the acknowledgement of a PUBLISH whose payload
	 * starts with 'w' wait (bw_conn_wait_ack), and with done_at_once
	 * completes it there (bw_conn_wait_done, done_reason). waits[] holds
	 * ours in PUBLISH order, NULL once released.
	 */
	struct bw_conn_wait *waits[8];
	int n_waits;
	bool done_at_once;
	uint8_t done_reason;
	int releases, bad_releases; /* bad: not ours, twice, linked or not ready */
	uint16_t released_id[8];
	size_t released_bytes[8]; /* output queued when it was released */
};

static uint64_t env_now(void *ctx)
{
	return ((struct env *)ctx)->now;
}

static int env_connect(void *ctx, struct bw_conn *c, const struct bw_connect *pkt)
{
	struct env *e = ctx;
	e->connects++;
	if (e->connect_rc)
		return e->connect_rc;
	if (!e->session) {
		struct bw_session_limits lim = { .inflight_max = 16,
			                         .inbound_max = 2,
			                         .queue_max = 100 };
		e->session = bw_session_new(&lim);
	}
	bw_conn_attach(c, e->session, e->session_present);
	return 0;
}

static void env_release(struct bw_conn_wait *w);

static void env_publish(void *ctx, struct bw_conn *c, struct bw_msg *m)
{
	struct env *e = ctx;
	e->publishes++;
	bw_msg_unref(&e->last_pub);
	e->last_pub = bw_msg_ref(m);
	if (m->payload.len == 0 || m->payload.p[0] != 'w')
		return;
	assert_true(e->n_waits < 8);
	struct bw_conn_wait *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->release = env_release;
	e->waits[e->n_waits++] = w;
	bw_conn_wait_ack(c, w);
	if (e->done_at_once && w->c)
		bw_conn_wait_done(w, e->done_reason);
}

static int env_subscribe(void *ctx, struct bw_conn *c, const struct bw_sub_entry *en,
                         uint32_t sub_id)
{
	struct env *e = ctx;
	e->subscribes++;
	e->last_sub_id = sub_id;
	return e->sub_rc ? e->sub_rc : en->qos;
}

static int env_unsubscribe(void *ctx, struct bw_conn *c, struct bw_str f)
{
	struct env *e = ctx;
	e->unsubscribes++;
	return f.len == 1 && f.p[0] == 'x' ? -BW_RC_NO_SUBSCRIPTION_EXISTED : 0;
}

static int env_reauth(void *ctx, struct bw_conn *c, struct bw_bin data)
{
	struct env *e = ctx;
	e->reauths++;
	memcpy(e->reauth_data, data.p, data.len < 16 ? data.len : 16);
	return e->reauth_rc;
}

static void env_closed(void *ctx, struct bw_conn *c, bool send_will)
{
	struct env *e = ctx;
	e->closes++;
	e->last_will = send_will;
}

static struct env env;
static struct bw_conn *conn;

/*
 * The connection is done with one of ours: exactly once, so it is freed
 * here. Counts what is wrong rather than failing: it runs inside the
 * connection, which must be left whole for teardown.
 */
static void env_release(struct bw_conn_wait *w)
{
	int i = 0;
	while (i < env.n_waits && env.waits[i] != w)
		i++;
	if (i == env.n_waits || env.releases == 8) {
		env.bad_releases++;
		return;
	}
	if (w->c || !w->ready)
		env.bad_releases++;
	env.released_id[env.releases] = w->packet_id;
	env.released_bytes[env.releases] = conn ? bw_outq_bytes(bw_conn_outq(conn)) : 0;
	env.releases++;
	env.waits[i] = NULL;
	free(w);
}

static const struct bw_conn_limits limits = {
	.max_packet_size = 4096,
	.max_keepalive = 600,
	.receive_max = 2,
	.topic_alias_max = 4,
	.max_topic_length = 64,
	.max_topic_levels = 4,
	.outq = { .soft_bytes = 1 << 20, .hard_bytes = 2 << 20 },
};

static struct bw_conn *new_conn_with(const char *auth_method)
{
	/* The connection borrows its ops: one set a method, alive for the program. */
	static struct bw_conn_ops ops[2];
	struct bw_conn_ops *o = &ops[auth_method != NULL];
	*o = (struct bw_conn_ops){
		.ctx = &env,
		.now_ms = env_now,
		.connect = env_connect,
		.auth_method = auth_method,
		.reauth = env_reauth,
		.publish = env_publish,
		.subscribe = env_subscribe,
		.unsubscribe = env_unsubscribe,
		.closed = env_closed,
	};
	struct bw_conn *c = bw_conn_new(&limits, o, NULL);
	assert_non_null(c);
	return c;
}

static struct bw_conn *new_conn(void)
{
	return new_conn_with(NULL);
}

static int setup(void **state)
{
	memset(&env, 0, sizeof(env));
	env.now = 1000;
	conn = new_conn();
	return 0;
}

static int teardown(void **state)
{
	bw_conn_free(&conn);
	/* What the connection did not release is its owner's to free. */
	for (int i = 0; i < env.n_waits; i++)
		free(env.waits[i]);
	bw_msg_unref(&env.last_pub);
	bw_session_free(&env.session);
	return 0;
}

/* ---- bytes in, packets out ------------------------------------------------ */

static int feed(struct bw_conn *c, const struct bw_packet *p, uint8_t version)
{
	uint8_t buf[8192];
	int n = bw_codec_encode(p, version, buf, sizeof(buf));
	assert_true(n > 0);
	return bw_conn_input(c, buf, (size_t)n);
}

static uint8_t out[65536];
static size_t out_len, out_off;

/* Drains the output queue into out[]. */
static void drain(struct bw_conn *c)
{
	struct iovec iov[64];
	struct bw_outq *q = bw_conn_outq(c);
	out_len = out_off = 0;
	size_t n;
	while ((n = bw_outq_iov(q, iov, 64)) > 0) {
		size_t total = 0;
		for (size_t i = 0; i < n; i++) {
			assert_true(out_len + iov[i].iov_len <= sizeof(out));
			memcpy(out + out_len, iov[i].iov_base, iov[i].iov_len);
			out_len += iov[i].iov_len;
			total += iov[i].iov_len;
		}
		bw_outq_consume(q, total);
	}
}

/* The next packet of out[] (the views point into out). False at the end. */
static bool next_packet(uint8_t version, struct bw_packet *p)
{
	struct bw_frame f;
	if (out_off == out_len)
		return false;
	assert_int_equal(
	        bw_codec_frame(out + out_off, out_len - out_off, BW_PACKET_SIZE_MAX, &f, NULL), 0);
	assert_int_equal(bw_codec_decode(out + out_off, f.size, version, p, NULL), 0);
	out_off += f.size;
	return true;
}

static void expect(uint8_t version, uint8_t type, struct bw_packet *p)
{
	assert_true(next_packet(version, p));
	if (p->type != type)
		fail_msg("got %s, expected %s", bw_packet_name(p->type), bw_packet_name(type));
}

static void connect_as(uint8_t version, const char *client_id, uint16_t keep_alive)
{
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.keep_alive = keep_alive;
	p.connect.client_id.p = (const uint8_t *)client_id;
	p.connect.client_id.len = (uint16_t)strlen(client_id);
	assert_int_equal(feed(conn, &p, version), 0);
	drain(conn);
	expect(version, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, 0);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);
}

/* ---- CONNECT --------------------------------------------------------------- */

static void test_connect_311(void **state)
{
	connect_as(BW_MQTT_311, "dev-1", 60);
	assert_int_equal(env.connects, 1);
	assert_int_equal(bw_conn_version(conn), BW_MQTT_311);
	assert_memory_equal(bw_conn_client_id(conn).p, "dev-1", 5);
	assert_int_equal(bw_conn_deadline_ms(conn), 1000 + 90000); /* keep alive x 1.5 */
	assert_false(next_packet(BW_MQTT_311, &(struct bw_packet){ 0 }));
}

static void test_connect_5_assigns_id_and_caps_keep_alive(void **state)
{
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.keep_alive = 0; /* none asked: the server sets one */
	assert_int_equal(feed(conn, &p, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	const struct bw_props *pr = &p.connack.props;
	assert_true(pr->has & BW_PROP_BIT(BW_PROP_ASSIGNED_CLIENT_ID));
	assert_int_equal(pr->assigned_client_id.len, 27);
	assert_memory_equal(pr->assigned_client_id.p, "bw-", 3);
	assert_memory_equal(pr->assigned_client_id.p, bw_conn_client_id(conn).p, 27);
	assert_true(pr->has & BW_PROP_BIT(BW_PROP_SERVER_KEEP_ALIVE));
	assert_int_equal(pr->server_keep_alive, 600);
	assert_int_equal(pr->receive_max, 2);
	assert_int_equal(pr->max_packet_size, 4096);
	assert_int_equal(pr->topic_alias_max, 4);
}

static void test_connect_refusals(void **state)
{
	struct bw_packet p = { .type = BW_CONNECT };
	/* 3.1.1: an empty client id needs a clean session. */
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
	drain(conn);
	expect(BW_MQTT_311, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_CONNACK_311_ID_REJECTED);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
	assert_int_equal(env.connects, 0);

	/* The broker refuses: 5.0 gets its reason code, 3.1.1 the mapped one. */
	bw_conn_free(&conn);
	conn = new_conn();
	env.connect_rc = BW_RC_BAD_USERNAME_PASSWORD;
	p = (struct bw_packet){ .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.client_id = S("x");
	assert_int_equal(feed(conn, &p, BW_MQTT_5), -EPROTO);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_RC_BAD_USERNAME_PASSWORD);

	bw_conn_free(&conn);
	conn = new_conn();
	p = (struct bw_packet){ .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.client_id = S("x");
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
	drain(conn);
	expect(BW_MQTT_311, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_CONNACK_311_BAD_USER_PASS);

	/* 3.1.1 keep alive beyond the maximum. */
	bw_conn_free(&conn);
	conn = new_conn();
	env.connect_rc = 0;
	p = (struct bw_packet){ .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.client_id = S("x");
	p.connect.keep_alive = 601;
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
	assert_int_equal(env.connects, 2);
}

static void test_first_packet_must_be_connect(void **state)
{
	struct bw_packet p = { .type = BW_PINGREQ };
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
	drain(conn);
	assert_int_equal(out_len, 0);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
}

static void test_unsupported_version_gets_311_connack(void **state)
{
	/* CONNECT "MQTT" level 6. */
	const uint8_t bytes[] = { 0x10, 0x0D, 0x00, 0x04, 'M',  'Q',  'T', 'T',
		                  0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, 'x' };
	assert_int_equal(bw_conn_input(conn, bytes, sizeof(bytes)), -EPROTO);
	drain(conn);
	struct bw_packet p;
	expect(BW_MQTT_311, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_CONNACK_311_BAD_VERSION);
}

static void test_malformed_5_connect_is_told_why(void **state)
{
	/* A 5.0 CONNECT with the reserved flag set. */
	const uint8_t bytes[] = { 0x10, 0x0E, 0x00, 0x04, 'M',  'Q',  'T',  'T',
		                  0x05, 0x03, 0x00, 0x3C, 0x00, 0x00, 0x01, 'x' };
	assert_int_equal(bw_conn_input(conn, bytes, sizeof(bytes)), -EPROTO);
	drain(conn);
	struct bw_packet p;
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_RC_MALFORMED);
	assert_true(p.connack.props.has & BW_PROP_BIT(BW_PROP_REASON_STRING));
}

static void test_connect_byte_by_byte(void **state)
{
	struct bw_packet p = { .type = BW_CONNECT };
	uint8_t buf[64];
	p.connect.clean_start = true;
	p.connect.client_id = S("slow");
	int n = bw_codec_encode(&p, BW_MQTT_5, buf, sizeof(buf));
	for (int i = 0; i < n; i++)
		assert_int_equal(bw_conn_input(conn, buf + i, 1), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(env.connects, 1);
}

/* n QoS 0 PUBLISHes to "t" of 7 bytes each (3.1.1) into buf; returns the bytes. */
static size_t publishes(uint8_t *buf, size_t n)
{
	static const uint8_t pub[] = { 0x30, 0x05, 0, 1, 't', 'h', 'i' };
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * sizeof(pub), pub, sizeof(pub));
	return n * sizeof(pub);
}

static void test_input_some_stops_at_its_budget(void **state)
{
	uint8_t buf[70];
	(void)state;
	connect_as(BW_MQTT_311, "some", 10);
	size_t len = publishes(buf, 10);

	/* Whole packets until 15 bytes were handled: three of them. */
	assert_int_equal(bw_conn_input_some(conn, buf, len, 15), 21);
	assert_int_equal(env.publishes, 3);
	/* A budget of 0 still handles one packet. */
	assert_int_equal(bw_conn_input_some(conn, buf + 21, len - 21, 0), 7);
	assert_int_equal(env.publishes, 4);
	/* The rest, ending in a partial packet: that is kept, all is taken. */
	assert_int_equal(bw_conn_input_some(conn, buf + 28, 40, 1000), 40);
	assert_int_equal(env.publishes, 9);
	/* The partial packet is finished with just the 2 bytes it lacks. */
	uint8_t next[14];
	memcpy(next, buf + 68, 2);
	publishes(next + 2, 1);
	assert_int_equal(bw_conn_input_some(conn, next, 9, 1000), 2);
	assert_int_equal(env.publishes, 10);
	assert_int_equal(bw_conn_input_some(conn, next + 2, 7, 1000), 7);
	assert_int_equal(env.publishes, 11);
}

static void test_input_some_header_split(void **state)
{
	uint8_t buf[700];
	(void)state;
	connect_as(BW_MQTT_311, "split", 10);
	size_t len = publishes(buf, 100);

	/* One byte of a packet: not even its length is known yet. */
	assert_int_equal(bw_conn_input_some(conn, buf, 1, 1000), 1);
	/* Then 8 bytes, enough to see its header (and finish it, here). */
	assert_int_equal(bw_conn_input_some(conn, buf + 1, len - 1, 1000), 8);
	assert_int_equal(env.publishes, 1);
	/* It kept 2 bytes of the second: their header says 5 more. */
	assert_int_equal(bw_conn_input_some(conn, buf + 9, len - 9, 1000), 5);
	assert_int_equal(env.publishes, 2);
	assert_int_equal(bw_conn_input_some(conn, buf + 14, len - 14, 1 << 20), (long)(len - 14));
	assert_int_equal(env.publishes, 100);
}

static void test_input_some_held_and_closing(void **state)
{
	static const uint8_t disconnect[] = { 0xe0, 0x00 };
	uint8_t buf[70];
	(void)state;
	connect_as(BW_MQTT_311, "held", 10);
	size_t len = publishes(buf, 10);

	/* Held: everything is taken and kept, nothing handled. */
	bw_conn_hold(conn);
	assert_true(bw_conn_holding(conn));
	assert_int_equal(bw_conn_input_some(conn, buf, len, 7), (long)len);
	assert_int_equal(env.publishes, 0);
	assert_int_equal(bw_conn_release(conn), 0);
	assert_false(bw_conn_holding(conn));
	assert_int_equal(env.publishes, 10);
	/* A DISCONNECT ends it: what follows is never handled. */
	uint8_t tail[2 + 14];
	memcpy(tail, disconnect, 2);
	publishes(tail + 2, 2);
	assert_int_equal(bw_conn_input_some(conn, tail, sizeof(tail), 1000), -EPROTO);
	assert_int_equal(env.publishes, 10);
	assert_int_equal(bw_conn_input_some(conn, buf, 7, 1000), -EPROTO);
}

static void test_second_connect_is_a_protocol_error(void **state)
{
	connect_as(BW_MQTT_5, "a", 10);
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.client_id = S("a");
	assert_int_equal(feed(conn, &p, BW_MQTT_5), -EPROTO);
	drain(conn);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_PROTOCOL_ERROR);
	assert_int_equal(env.closes, 1);
	assert_true(env.last_will);
}

static void test_ping(void **state)
{
	connect_as(BW_MQTT_311, "p", 10);
	env.now = 5000;
	struct bw_packet p = { .type = BW_PINGREQ };
	assert_int_equal(feed(conn, &p, BW_MQTT_311), 0);
	drain(conn);
	expect(BW_MQTT_311, BW_PINGRESP, &p);
	assert_int_equal(bw_conn_deadline_ms(conn), 5000 + 15000);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------ */

static void subscribe(uint8_t version, uint32_t sub_id, const char *const *filters, size_t n,
                      struct bw_packet *ack)
{
	uint8_t entries[512];
	uint32_t len = 0;
	for (size_t i = 0; i < n; i++) {
		struct bw_sub_entry e = { .qos = 1 };
		e.filter.p = (const uint8_t *)filters[i];
		e.filter.len = (uint16_t)strlen(filters[i]);
		assert_int_equal(bw_codec_put_sub(entries, sizeof(entries), &len, &e, version), 0);
	}
	struct bw_packet p = { .type = BW_SUBSCRIBE };
	p.subscribe.packet_id = 7;
	p.subscribe.entries.p = entries;
	p.subscribe.entries.len = len;
	if (sub_id) {
		p.subscribe.props.has = BW_PROP_BIT(BW_PROP_SUBSCRIPTION_ID);
		p.subscribe.props.sub_id = sub_id;
	}
	assert_int_equal(feed(conn, &p, version), 0);
	drain(conn);
	expect(version, BW_SUBACK, ack);
	assert_int_equal(ack->suback.packet_id, 7);
}

static void test_subscribe_codes(void **state)
{
	static const char *const f[] = { "a/+", "a/#/b", "a/b/c/d/e", "ok" };
	struct bw_packet ack;

	connect_as(BW_MQTT_5, "s", 10);
	subscribe(BW_MQTT_5, 42, f, 4, &ack);
	assert_int_equal(ack.suback.codes.len, 4);
	assert_int_equal(ack.suback.codes.p[0], 1);
	assert_int_equal(ack.suback.codes.p[1], BW_RC_TOPIC_FILTER_INVALID);
	assert_int_equal(ack.suback.codes.p[2], BW_RC_TOPIC_FILTER_INVALID); /* too deep */
	assert_int_equal(ack.suback.codes.p[3], 1);
	assert_int_equal(env.subscribes, 2);
	assert_int_equal(env.last_sub_id, 42);

	env.sub_rc = -BW_RC_NOT_AUTHORIZED;
	subscribe(BW_MQTT_5, 0, f, 1, &ack);
	assert_int_equal(ack.suback.codes.p[0], BW_RC_NOT_AUTHORIZED);
}

static void test_subscribe_codes_311(void **state)
{
	static const char *const f[] = { "a/#/b", "a" };
	struct bw_packet ack;

	connect_as(BW_MQTT_311, "s", 10);
	subscribe(BW_MQTT_311, 0, f, 2, &ack);
	assert_int_equal(ack.suback.codes.p[0], 0x80);
	assert_int_equal(ack.suback.codes.p[1], 1);
}

static void test_unsubscribe_codes(void **state)
{
	connect_as(BW_MQTT_5, "u", 10);
	uint8_t entries[64];
	uint32_t len = 0;
	bw_codec_put_unsub(entries, sizeof(entries), &len, S("a/b"));
	bw_codec_put_unsub(entries, sizeof(entries), &len, S("x"));
	bw_codec_put_unsub(entries, sizeof(entries), &len, S("a/#/c"));
	struct bw_packet p = { .type = BW_UNSUBSCRIBE };
	p.unsubscribe.packet_id = 9;
	p.unsubscribe.entries.p = entries;
	p.unsubscribe.entries.len = len;
	assert_int_equal(feed(conn, &p, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_UNSUBACK, &p);
	assert_int_equal(p.suback.codes.len, 3);
	assert_int_equal(p.suback.codes.p[0], 0);
	assert_int_equal(p.suback.codes.p[1], BW_RC_NO_SUBSCRIPTION_EXISTED);
	assert_int_equal(p.suback.codes.p[2], BW_RC_TOPIC_FILTER_INVALID);
	assert_int_equal(env.unsubscribes, 2);
}

/* ---- PUBLISH from the client ------------------------------------------------ */

static int publish(uint8_t version, const char *topic, uint8_t qos, uint16_t id, bool dup,
                   uint16_t alias)
{
	struct bw_packet p = { .type = BW_PUBLISH };
	p.publish.topic.p = (const uint8_t *)topic;
	p.publish.topic.len = (uint16_t)strlen(topic);
	p.publish.qos = qos;
	p.publish.packet_id = id;
	p.publish.dup = dup;
	p.publish.payload.p = (const uint8_t *)"hello";
	p.publish.payload.len = 5;
	if (alias) {
		p.publish.props.has = BW_PROP_BIT(BW_PROP_TOPIC_ALIAS);
		p.publish.props.topic_alias = alias;
	}
	int rc = feed(conn, &p, version);
	drain(conn);
	return rc;
}

static void test_publish_qos0_and_1(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_311, "pub", 10);
	assert_int_equal(publish(BW_MQTT_311, "a/b", 0, 0, false, 0), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(env.publishes, 1);
	assert_memory_equal(env.last_pub->topic.p, "a/b", 3);
	assert_memory_equal(env.last_pub->payload.p, "hello", 5);

	assert_int_equal(publish(BW_MQTT_311, "a/b", 1, 5, false, 0), 0);
	expect(BW_MQTT_311, BW_PUBACK, &p);
	assert_int_equal(p.ack.packet_id, 5);
	assert_int_equal(env.publishes, 2);
	assert_int_equal(env.last_pub->qos, 1);
}

static void test_publish_qos2_exactly_once(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "q2", 10);
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 3, false, 0), 0);
	expect(BW_MQTT_5, BW_PUBREC, &p);
	/* The client did not see PUBREC and sends again with DUP. */
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 3, true, 0), 0);
	expect(BW_MQTT_5, BW_PUBREC, &p);
	assert_int_equal(env.publishes, 1);

	struct bw_packet rel = { .type = BW_PUBREL };
	rel.ack.packet_id = 3;
	assert_int_equal(feed(conn, &rel, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBCOMP, &p);
	assert_int_equal(p.ack.code, 0);
	/* A PUBREL for nothing: 5.0 says so. */
	assert_int_equal(feed(conn, &rel, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBCOMP, &p);
	assert_int_equal(p.ack.code, BW_RC_PACKET_ID_NOT_FOUND);
	/* After the release the same id is a new message. */
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 3, false, 0), 0);
	assert_int_equal(env.publishes, 2);
}

static void test_receive_maximum_exceeded(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "rm", 10);
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 1, false, 0), 0);
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 2, false, 0), 0);
	assert_int_equal(publish(BW_MQTT_5, "a", 2, 3, false, 0), -EPROTO);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_RECEIVE_MAX_EXCEEDED);
	assert_int_equal(env.publishes, 2);
}

static void test_topic_aliases(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "al", 10);
	assert_int_equal(publish(BW_MQTT_5, "x/y", 0, 0, false, 2), 0);
	assert_int_equal(publish(BW_MQTT_5, "", 0, 0, false, 2), 0);
	assert_int_equal(env.publishes, 2);
	assert_int_equal(env.last_pub->topic.len, 3);
	assert_memory_equal(env.last_pub->topic.p, "x/y", 3);
	/* Redefined. */
	assert_int_equal(publish(BW_MQTT_5, "z", 0, 0, false, 2), 0);
	assert_int_equal(publish(BW_MQTT_5, "", 0, 0, false, 2), 0);
	assert_memory_equal(env.last_pub->topic.p, "z", 1);
	/* Never defined. */
	assert_int_equal(publish(BW_MQTT_5, "", 0, 0, false, 3), -EPROTO);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_PROTOCOL_ERROR);
}

static void test_topic_alias_above_maximum(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "al", 10);
	assert_int_equal(publish(BW_MQTT_5, "x", 0, 0, false, 5), -EPROTO);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_TOPIC_ALIAS_INVALID);
}

static void test_publish_refusals(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "r", 10);
	assert_int_equal(publish(BW_MQTT_5, "$SYS/x", 1, 1, false, 0), 0);
	expect(BW_MQTT_5, BW_PUBACK, &p);
	assert_int_equal(p.ack.code, BW_RC_NOT_AUTHORIZED);
	assert_int_equal(publish(BW_MQTT_5, "a/b/c/d/e", 2, 2, false, 0), 0);
	expect(BW_MQTT_5, BW_PUBREC, &p);
	assert_int_equal(p.ack.code, BW_RC_TOPIC_NAME_INVALID);
	assert_int_equal(env.publishes, 0);

	/* Payload Format Indicator 1 with a payload that is not UTF-8. */
	struct bw_packet bad = { .type = BW_PUBLISH };
	bad.publish.topic = S("t");
	bad.publish.qos = 1;
	bad.publish.packet_id = 3;
	bad.publish.payload.p = (const uint8_t *)"\xff";
	bad.publish.payload.len = 1;
	bad.publish.props.has = BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT);
	bad.publish.props.payload_format = 1;
	assert_int_equal(feed(conn, &bad, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBACK, &p);
	assert_int_equal(p.ack.code, BW_RC_PAYLOAD_FORMAT_INVALID);
	assert_int_equal(env.publishes, 0);
}

static void test_oversized_packet(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "big", 10);
	/* A PUBLISH header announcing 5000 bytes, over the 4096 limit. */
	const uint8_t head[] = { 0x30, 0x88, 0x27, 0x00, 0x01, 't' };
	assert_int_equal(bw_conn_input(conn, head, sizeof(head)), -EPROTO);
	drain(conn);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_PACKET_TOO_LARGE);
}

/* ---- deliveries to the client ---------------------------------------------- */

static struct bw_delivery delivery(struct bw_msg *m, uint8_t qos)
{
	struct bw_delivery d = { .msg = m, .qos = qos };
	return d;
}

static void test_delivery_window_and_acks(void **state)
{
	struct bw_packet p;
	struct bw_packet c = { .type = BW_CONNECT };
	c.connect.clean_start = true;
	c.connect.client_id = S("sub");
	c.connect.props.has = BW_PROP_BIT(BW_PROP_RECEIVE_MAX);
	c.connect.props.receive_max = 1; /* the client takes one at a time */
	assert_int_equal(feed(conn, &c, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);

	struct bw_msg *m = bw_msg_new("t/1", 3, NULL, "abc", 3, 1, false, env.now);
	struct bw_delivery d = delivery(m, 1);
	d.n_sub_ids = 2;
	d.sub_ids[0] = 5;
	d.sub_ids[1] = 900;
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBLISH, &p);
	assert_int_equal(p.publish.packet_id, 1);
	assert_int_equal(p.publish.qos, 1);
	assert_memory_equal(p.publish.topic.p, "t/1", 3);
	assert_memory_equal(p.publish.payload.p, "abc", 3);
	assert_int_equal(p.publish.props.sub_id_count, 2);
	uint32_t off = 0, id;
	assert_true(bw_props_next_sub_id(&p.publish.props, &off, &id));
	assert_int_equal(id, 5);
	assert_true(bw_props_next_sub_id(&p.publish.props, &off, &id));
	assert_int_equal(id, 900);
	assert_false(next_packet(BW_MQTT_5, &p)); /* the second waits for the window */

	struct bw_packet ack = { .type = BW_PUBACK };
	ack.ack.packet_id = 1;
	assert_int_equal(feed(conn, &ack, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBLISH, &p);
	assert_int_equal(p.publish.packet_id, 2);
	bw_msg_unref(&m);
}

static void test_delivery_respects_client_max_packet_size(void **state)
{
	struct bw_packet p;
	struct bw_packet c = { .type = BW_CONNECT };
	c.connect.clean_start = true;
	c.connect.client_id = S("small");
	c.connect.props.has = BW_PROP_BIT(BW_PROP_MAX_PACKET_SIZE);
	c.connect.props.max_packet_size = 32;
	assert_int_equal(feed(conn, &c, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);

	char big[64];
	memset(big, 'x', sizeof(big));
	struct bw_msg *m = bw_msg_new("t", 1, NULL, big, sizeof(big), 0, false, env.now);
	struct bw_msg *small = bw_msg_new("t", 1, NULL, "ok", 2, 0, false, env.now);
	struct bw_delivery d = delivery(m, 0);
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	d = delivery(small, 0);
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBLISH, &p);
	assert_memory_equal(p.publish.payload.p, "ok", 2); /* the big one was dropped */
	assert_false(next_packet(BW_MQTT_5, &p));
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
	bw_msg_unref(&small);
}

static void test_expired_messages_are_not_sent(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "exp", 10);
	struct bw_props props = { .has = BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY),
		                  .message_expiry = 10 };
	struct bw_msg *m = bw_msg_new("t", 1, &props, "x", 1, 0, false, env.now);
	env.now += 4000;
	struct bw_delivery d = delivery(m, 0);
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBLISH, &p);
	assert_int_equal(p.publish.props.message_expiry, 6); /* what remains */
	env.now += 7000;
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	drain(conn);
	assert_int_equal(out_len, 0);
	bw_msg_unref(&m);
}

static void test_broker_assigned_topic_aliases(void **state)
{
	struct bw_packet p;
	struct bw_packet c = { .type = BW_CONNECT };
	c.connect.clean_start = true;
	c.connect.client_id = S("alias");
	c.connect.props.has = BW_PROP_BIT(BW_PROP_TOPIC_ALIAS_MAX);
	c.connect.props.topic_alias_max = 2;
	assert_int_equal(feed(conn, &c, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);

	static const char *const topics[] = { "long/topic/a", "long/topic/b", "long/topic/c",
		                              "long/topic/a", "long/topic/c" };
	/* Expected: alias defined, defined, none left, reused, still none. */
	static const uint16_t alias[] = { 1, 2, 0, 1, 0 };
	static const bool empty[] = { false, false, false, true, false };
	for (int i = 0; i < 5; i++) {
		struct bw_msg *m =
		        bw_msg_new(topics[i], strlen(topics[i]), NULL, "x", 1, 0, false, env.now);
		struct bw_delivery d = delivery(m, 0);
		assert_int_equal(bw_conn_deliver(conn, &d), 0);
		bw_msg_unref(&m);
		drain(conn);
		expect(BW_MQTT_5, BW_PUBLISH, &p);
		bool has = p.publish.props.has & BW_PROP_BIT(BW_PROP_TOPIC_ALIAS);
		assert_int_equal(has ? p.publish.props.topic_alias : 0, alias[i]);
		assert_int_equal(p.publish.topic.len == 0, empty[i]);
		if (!empty[i])
			assert_memory_equal(p.publish.topic.p, topics[i], strlen(topics[i]));
	}
}

static void test_no_topic_aliases_unless_the_client_allows_them(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "plain", 10);
	for (int i = 0; i < 2; i++) {
		struct bw_msg *m = bw_msg_new("t", 1, NULL, "x", 1, 0, false, env.now);
		struct bw_delivery d = delivery(m, 0);
		bw_conn_deliver(conn, &d);
		bw_msg_unref(&m);
		drain(conn);
		expect(BW_MQTT_5, BW_PUBLISH, &p);
		assert_false(p.publish.props.has & BW_PROP_BIT(BW_PROP_TOPIC_ALIAS));
		assert_int_equal(p.publish.topic.len, 1);
	}
}

static void test_redelivery_on_reconnect(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_311, "persist", 10);
	struct bw_msg *m1 = bw_msg_new("a", 1, NULL, "1", 1, 1, false, env.now);
	struct bw_msg *m2 = bw_msg_new("b", 1, NULL, "2", 1, 2, false, env.now);
	struct bw_delivery d = delivery(m1, 1);
	bw_conn_deliver(conn, &d);
	d = delivery(m2, 2);
	bw_conn_deliver(conn, &d);
	drain(conn);
	expect(BW_MQTT_311, BW_PUBLISH, &p);
	expect(BW_MQTT_311, BW_PUBLISH, &p);
	/* The client acknowledges the QoS 2 PUBLISH, then the network fails. */
	struct bw_packet rec = { .type = BW_PUBREC };
	rec.ack.packet_id = 2;
	assert_int_equal(feed(conn, &rec, BW_MQTT_311), 0);
	drain(conn);
	expect(BW_MQTT_311, BW_PUBREL, &p);
	bw_conn_free(&conn);

	/* The same session on a new connection: PUBLISH again with DUP, PUBREL again. */
	conn = new_conn();
	env.session_present = true;
	struct bw_packet c = { .type = BW_CONNECT };
	c.connect.client_id = S("persist");
	assert_int_equal(feed(conn, &c, BW_MQTT_311), 0);
	drain(conn);
	expect(BW_MQTT_311, BW_CONNACK, &p);
	assert_true(p.connack.session_present);
	expect(BW_MQTT_311, BW_PUBLISH, &p);
	assert_true(p.publish.dup);
	assert_int_equal(p.publish.packet_id, 1);
	expect(BW_MQTT_311, BW_PUBREL, &p);
	assert_int_equal(p.ack.packet_id, 2);
	bw_msg_unref(&m1);
	bw_msg_unref(&m2);
}

/* ---- endings and wills ------------------------------------------------------- */

static void test_normal_disconnect_drops_the_will(void **state)
{
	connect_as(BW_MQTT_311, "w", 10);
	struct bw_packet p = { .type = BW_DISCONNECT };
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
	assert_int_equal(env.closes, 1);
	assert_false(env.last_will);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
	/* Nothing is read after DISCONNECT. */
	p.type = BW_PINGREQ;
	assert_int_equal(feed(conn, &p, BW_MQTT_311), -EPROTO);
}

static void test_disconnect_with_will(void **state)
{
	connect_as(BW_MQTT_5, "w", 10);
	struct bw_packet p = { .type = BW_DISCONNECT };
	p.disconnect.code = BW_RC_DISCONNECT_WITH_WILL;
	assert_int_equal(feed(conn, &p, BW_MQTT_5), -EPROTO);
	assert_true(env.last_will);
}

static void test_kick_and_protocol_errors_send_the_will(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "k", 10);
	bw_conn_kick(conn, BW_RC_SESSION_TAKEN_OVER);
	drain(conn);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, BW_RC_SESSION_TAKEN_OVER);
	assert_true(p.disconnect.props.has & BW_PROP_BIT(BW_PROP_REASON_STRING));
	assert_int_equal(env.closes, 1);
	assert_true(env.last_will);
	bw_conn_kick(conn, BW_RC_SERVER_SHUTTING_DOWN); /* once is enough */
	assert_int_equal(env.closes, 1);
}

/* ---- enhanced authentication: method JWT, AUTH re-authentication ---------- */

/* A 5.0 CONNECT naming method with data; returns what feed() did. */
static int connect_with_method(const char *method, const char *data)
{
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.client_id = S("ea");
	p.connect.props.has = BW_PROP_BIT(BW_PROP_AUTH_METHOD) | BW_PROP_BIT(BW_PROP_AUTH_DATA);
	p.connect.props.auth_method =
	        (struct bw_str){ (const uint8_t *)method, (uint16_t)strlen(method) };
	p.connect.props.auth_data =
	        (struct bw_bin){ (const uint8_t *)data, (uint32_t)strlen(data) };
	return feed(conn, &p, BW_MQTT_5);
}

static int send_auth(uint8_t code, const char *method, const char *data)
{
	struct bw_packet p = { .type = BW_AUTH };
	p.disconnect.code = code;
	p.disconnect.props.has = BW_PROP_BIT(BW_PROP_AUTH_METHOD) | BW_PROP_BIT(BW_PROP_AUTH_DATA);
	p.disconnect.props.auth_method =
	        (struct bw_str){ (const uint8_t *)method, (uint16_t)strlen(method) };
	p.disconnect.props.auth_data =
	        (struct bw_bin){ (const uint8_t *)data, (uint32_t)strlen(data) };
	return feed(conn, &p, BW_MQTT_5);
}

static void expect_disconnect(uint8_t code)
{
	struct bw_packet p;
	drain(conn);
	expect(BW_MQTT_5, BW_DISCONNECT, &p);
	assert_int_equal(p.disconnect.code, code);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
}

static void test_auth_method_refused_unless_the_brokers(void **state)
{
	struct bw_packet p;
	/* No method configured: 0x8C, and the broker is never asked. */
	assert_int_equal(connect_with_method("JWT", "t"), -EPROTO);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_RC_BAD_AUTH_METHOD);
	assert_int_equal(env.connects, 0);
	/* Another method than the broker's: 0x8C too. */
	bw_conn_free(&conn);
	conn = new_conn_with("JWT");
	assert_int_equal(connect_with_method("SCRAM-SHA-1", "t"), -EPROTO);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, BW_RC_BAD_AUTH_METHOD);
	assert_int_equal(env.connects, 0);
}

static void test_reauth_accepted_and_refused(void **state)
{
	struct bw_packet p;
	bw_conn_free(&conn);
	conn = new_conn_with("JWT");
	assert_int_equal(connect_with_method("JWT", "token-1"), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_CONNACK, &p);
	assert_int_equal(p.connack.code, 0);
	assert_true(p.connack.props.has & BW_PROP_BIT(BW_PROP_AUTH_METHOD));
	assert_memory_equal(p.connack.props.auth_method.p, "JWT", 3);

	/* Accepted at once: AUTH 0x00 naming the method. */
	assert_int_equal(send_auth(BW_RC_REAUTHENTICATE, "JWT", "token-2"), 0);
	assert_int_equal(env.reauths, 1);
	assert_memory_equal(env.reauth_data, "token-2", 7);
	drain(conn);
	expect(BW_MQTT_5, BW_AUTH, &p);
	assert_int_equal(p.disconnect.code, BW_RC_SUCCESS);
	assert_memory_equal(p.disconnect.props.auth_method.p, "JWT", 3);

	/* In progress: packets flow meanwhile; a second AUTH is an error. */
	env.reauth_rc = -EINPROGRESS;
	assert_int_equal(send_auth(BW_RC_REAUTHENTICATE, "JWT", "token-3"), 0);
	struct bw_packet ping = { .type = BW_PINGREQ };
	assert_int_equal(feed(conn, &ping, BW_MQTT_5), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PINGRESP, &p);
	/* Refused later: DISCONNECT with the broker's code. */
	assert_int_equal(bw_conn_reauth_done(conn, BW_RC_NOT_AUTHORIZED), -EPROTO);
	expect_disconnect(BW_RC_NOT_AUTHORIZED);
	assert_int_equal(env.closes, 1);
	assert_int_equal(bw_conn_reauth_done(conn, 0), -EPROTO); /* closed: nothing */
}

static void test_auth_protocol_errors(void **state)
{
	/* AUTH from a client that connected without a method. */
	connect_as(BW_MQTT_5, "plain", 10);
	assert_int_equal(send_auth(BW_RC_REAUTHENTICATE, "JWT", "t"), -EPROTO);
	expect_disconnect(BW_RC_PROTOCOL_ERROR);

	struct {
		uint8_t code;
		const char *method;
	} bad[] = { { BW_RC_CONTINUE_AUTH, "JWT" }, /* the broker never asked */
		    { BW_RC_REAUTHENTICATE, "SCRAM" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bw_conn_free(&conn);
		conn = new_conn_with("JWT");
		assert_int_equal(connect_with_method("JWT", "t"), 0);
		drain(conn);
		assert_int_equal(send_auth(bad[i].code, bad[i].method, "t"), -EPROTO);
		expect_disconnect(BW_RC_PROTOCOL_ERROR);
	}
	/* A second re-authentication while one runs. */
	bw_conn_free(&conn);
	conn = new_conn_with("JWT");
	assert_int_equal(connect_with_method("JWT", "t"), 0);
	drain(conn);
	env.reauth_rc = -EINPROGRESS;
	assert_int_equal(send_auth(BW_RC_REAUTHENTICATE, "JWT", "a"), 0);
	assert_int_equal(send_auth(BW_RC_REAUTHENTICATE, "JWT", "b"), -EPROTO);
	expect_disconnect(BW_RC_PROTOCOL_ERROR);
}

/* ---- acknowledgements that wait (bw_conn_wait) ------------------------------ */

/* A PUBLISH to "t" with payload (one starting with 'w' waits), drained. */
static int publish_payload(uint8_t version, uint8_t qos, uint16_t id, const char *payload)
{
	struct bw_packet p = { .type = BW_PUBLISH };
	p.publish.topic = S("t");
	p.publish.qos = qos;
	p.publish.packet_id = id;
	p.publish.payload.p = (const uint8_t *)payload;
	p.publish.payload.len = (uint32_t)strlen(payload);
	int rc = feed(conn, &p, version);
	drain(conn);
	return rc;
}

/* Exactly n of ours were released, each once, unlinked and ready. */
static void expect_releases(int n)
{
	assert_int_equal(env.releases, n);
	assert_int_equal(env.bad_releases, 0);
}

static void expect_ack(uint8_t version, uint8_t type, uint16_t id, uint8_t code)
{
	struct bw_packet p;
	expect(version, type, &p);
	assert_int_equal(p.ack.packet_id, id);
	assert_int_equal(p.ack.code, code);
}

static void test_waiting_acks_go_in_publish_order(void **state)
{
	connect_as(BW_MQTT_311, "sync", 10);
	/* Waits, need not wait (but is behind one that does), waits. */
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 1, "wait"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 2, "now"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 3, "wait"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(env.publishes, 3);
	assert_int_equal(env.n_waits, 2);
	struct bw_conn_wait *w1 = env.waits[0], *w3 = env.waits[1];
	assert_ptr_equal(w1->c, conn);
	assert_int_equal(w1->packet_id, 1);
	assert_int_equal(w1->type, BW_PUBACK);
	assert_false(w1->ready);
	assert_ptr_equal(w3->c, conn);
	assert_int_equal(w3->packet_id, 3);

	/* The third is stored first: it still waits behind the first. */
	bw_conn_wait_done(w3, 0);
	drain(conn);
	assert_int_equal(out_len, 0);
	assert_true(w3->ready);
	assert_ptr_equal(w3->c, conn);
	expect_releases(0);

	/* Then the first: all three go, in order, each of ours released once sent. */
	bw_conn_wait_done(w1, 0);
	drain(conn);
	expect_ack(BW_MQTT_311, BW_PUBACK, 1, 0);
	size_t first = out_off;
	expect_ack(BW_MQTT_311, BW_PUBACK, 2, 0);
	expect_ack(BW_MQTT_311, BW_PUBACK, 3, 0);
	assert_false(next_packet(BW_MQTT_311, &(struct bw_packet){ 0 }));
	expect_releases(2);
	assert_int_equal(env.released_id[0], 1);
	assert_int_equal(env.released_bytes[0], first);
	assert_int_equal(env.released_id[1], 3);
	assert_int_equal(env.released_bytes[1], out_len);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);

	/* Nothing waits any more: the next one goes at once. */
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 4, "now"), 0);
	expect_ack(BW_MQTT_311, BW_PUBACK, 4, 0);
	expect_releases(2);
}

static void test_waiting_pubrec_and_qos0(void **state)
{
	connect_as(BW_MQTT_5, "sync2", 10);
	assert_int_equal(publish_payload(BW_MQTT_5, 2, 1, "wait"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(publish_payload(BW_MQTT_5, 2, 2, "now"), 0);
	assert_int_equal(out_len, 0);
	/* QoS 0 has no acknowledgement to wait: w is left alone. */
	assert_int_equal(publish_payload(BW_MQTT_5, 0, 0, "wait"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(env.publishes, 3);
	assert_int_equal(env.n_waits, 2);
	struct bw_conn_wait *w1 = env.waits[0], *q0 = env.waits[1];
	assert_int_equal(w1->type, BW_PUBREC);
	assert_int_equal(w1->packet_id, 1);
	assert_null(q0->c);
	assert_null(q0->next);

	bw_conn_wait_done(w1, 0);
	drain(conn);
	expect_ack(BW_MQTT_5, BW_PUBREC, 1, 0);
	expect_ack(BW_MQTT_5, BW_PUBREC, 2, 0);
	assert_false(next_packet(BW_MQTT_5, &(struct bw_packet){ 0 }));
	expect_releases(1);
	assert_int_equal(env.released_id[0], 1);
	assert_ptr_equal(env.waits[1], q0); /* never the connection's */

	/* The exchange goes on as ever. */
	struct bw_packet rel = { .type = BW_PUBREL };
	rel.ack.packet_id = 1;
	assert_int_equal(feed(conn, &rel, BW_MQTT_5), 0);
	drain(conn);
	expect_ack(BW_MQTT_5, BW_PUBCOMP, 1, 0);
}

static void test_waiting_ack_refused_5(void **state)
{
	struct bw_packet p;
	connect_as(BW_MQTT_5, "full", 10);
	assert_int_equal(publish_payload(BW_MQTT_5, 1, 1, "wait"), 0);
	assert_int_equal(publish_payload(BW_MQTT_5, 1, 2, "now"), 0);
	assert_int_equal(out_len, 0);
	bw_conn_wait_done(env.waits[0], BW_RC_QUOTA_EXCEEDED);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBACK, &p);
	assert_int_equal(p.ack.packet_id, 1);
	assert_int_equal(p.ack.code, BW_RC_QUOTA_EXCEEDED);
	assert_true(p.ack.props.has & BW_PROP_BIT(BW_PROP_REASON_STRING));
	expect_ack(BW_MQTT_5, BW_PUBACK, 2, 0);
	assert_false(next_packet(BW_MQTT_5, &p));
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);
	assert_int_equal(env.closes, 0);
	expect_releases(1);
}

static void test_waiting_ack_refused_311_disconnects(void **state)
{
	connect_as(BW_MQTT_311, "full", 10);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 1, "wait"), 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 2, "now"), 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 3, "wait"), 0);
	assert_int_equal(out_len, 0);
	struct bw_conn_wait *w3 = env.waits[1];

	/* 3.1.1 has no refusal: the client is disconnected to send it again. */
	bw_conn_wait_done(env.waits[0], BW_RC_QUOTA_EXCEEDED);
	drain(conn);
	assert_int_equal(out_len, 0); /* no PUBACK, neither 1 nor 2 behind it */
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
	assert_int_equal(bw_conn_end_reason(conn), BW_RC_QUOTA_EXCEEDED);
	assert_int_equal(env.closes, 1);
	assert_true(env.last_will);
	expect_releases(1);
	assert_ptr_equal(w3->c, conn); /* still linked */

	/* What completes later goes nowhere, and is released. */
	bw_conn_wait_done(w3, 0);
	drain(conn);
	assert_int_equal(out_len, 0);
	expect_releases(2);
	assert_int_equal(env.released_id[1], 3);
	assert_int_equal(env.closes, 1);
}

static void test_waiting_ack_done_at_once(void **state)
{
	/* bw_conn_wait_done() from ops->publish itself: the ack goes at once. */
	env.done_at_once = true;
	connect_as(BW_MQTT_5, "fast", 10);
	assert_int_equal(publish_payload(BW_MQTT_5, 1, 1, "wait"), 0);
	expect_ack(BW_MQTT_5, BW_PUBACK, 1, 0);
	assert_false(next_packet(BW_MQTT_5, &(struct bw_packet){ 0 }));
	expect_releases(1);
	assert_int_equal(publish_payload(BW_MQTT_5, 1, 2, "now"), 0);
	expect_ack(BW_MQTT_5, BW_PUBACK, 2, 0);

	/* Refused at once on 3.1.1: the PUBLISH ends the connection. */
	bw_conn_free(&conn);
	conn = new_conn();
	env.done_reason = BW_RC_QUOTA_EXCEEDED;
	connect_as(BW_MQTT_311, "fast", 10);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 1, "wait"), -EPROTO);
	assert_int_equal(out_len, 0);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
	assert_int_equal(env.closes, 1);
	expect_releases(2);
}

static void test_free_releases_only_ready_waits(void **state)
{
	connect_as(BW_MQTT_311, "gone", 10);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 1, "wait"), 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 2, "wait"), 0);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 3, "now"), 0);
	struct bw_conn_wait *w1 = env.waits[0];
	bw_conn_wait_done(env.waits[1], 0); /* ready, behind the first */
	drain(conn);
	assert_int_equal(out_len, 0);
	expect_releases(0);

	bw_conn_free(&conn);
	expect_releases(1);
	assert_int_equal(env.released_id[0], 2);
	/* Not ready: unlinked, not released; its owner frees it when done. */
	assert_ptr_equal(env.waits[0], w1);
	assert_null(w1->c);
	assert_null(w1->next);
	assert_false(w1->ready);
}

static void observe(void *owner, enum bw_session_event ev, const struct bw_inflight *f)
{
	uint8_t *heard = owner;
	heard[heard[0]++ + 1] = (uint8_t)ev;
	assert_int_equal(f->d.seq, 42);
}

static void test_refusing_pubrec_completes_a_stored_delivery(void **state)
{
	struct bw_packet p;
	uint8_t heard[8] = { 0 };
	connect_as(BW_MQTT_5, "obs", 10);
	bw_session_set_owner(env.session, heard);
	bw_session_set_observer(env.session, observe);
	struct bw_msg *m = bw_msg_new("t", 1, NULL, "x", 1, 2, false, env.now);
	struct bw_delivery d = { .msg = m, .qos = 2, .seq = 42 };
	assert_int_equal(bw_conn_deliver(conn, &d), 0);
	drain(conn);
	expect(BW_MQTT_5, BW_PUBLISH, &p);
	uint16_t id = p.publish.packet_id;
	assert_int_equal(heard[0], 1);
	assert_int_equal(heard[1], BW_SESSION_SENT);

	struct bw_packet rec = { .type = BW_PUBREC };
	rec.ack.packet_id = id;
	rec.ack.code = BW_RC_UNSPECIFIED;
	assert_int_equal(feed(conn, &rec, BW_MQTT_5), 0);
	drain(conn);
	assert_int_equal(out_len, 0); /* no PUBREL: the exchange ended */
	assert_int_equal(heard[0], 3);
	assert_int_equal(heard[2], BW_SESSION_PUBREC);
	assert_int_equal(heard[3], BW_SESSION_DONE);
	assert_int_equal(bw_session_inflight(env.session), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_refused_pubrec_frees_the_packet_id(void **state)
{
	/*
	 * 5.0 4.3.3: a PUBREC of 0x80 or above frees the packet id; the
	 * client may send a new message with it at once, which is published.
	 */
	connect_as(BW_MQTT_5, "again", 10);
	assert_int_equal(publish_payload(BW_MQTT_5, 2, 1, "wait"), 0);
	bw_conn_wait_done(env.waits[0], BW_RC_QUOTA_EXCEEDED);
	drain(conn);
	expect_ack(BW_MQTT_5, BW_PUBREC, 1, BW_RC_QUOTA_EXCEEDED);
	assert_int_equal(publish_payload(BW_MQTT_5, 2, 1, "new"), 0);
	expect_ack(BW_MQTT_5, BW_PUBREC, 1, 0);
	assert_int_equal(env.publishes, 2);
	assert_memory_equal(env.last_pub->payload.p, "new", 3);
	/* Refused ones take none of the 2 QoS 2 messages it may have unreleased. */
	for (uint16_t id = 2; id <= 4; id++) {
		assert_int_equal(publish_payload(BW_MQTT_5, 2, id, "wait"), 0);
		bw_conn_wait_done(env.waits[id - 1], BW_RC_QUOTA_EXCEEDED);
		drain(conn);
		expect_ack(BW_MQTT_5, BW_PUBREC, id, BW_RC_QUOTA_EXCEEDED);
	}
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);
	expect_releases(4);
}

static void test_refused_pubrec_311_resend_is_published(void **state)
{
	struct bw_packet p;
	/* 3.1.1 is disconnected so that it sends the message again... */
	connect_as(BW_MQTT_311, "again", 10);
	assert_int_equal(publish_payload(BW_MQTT_311, 2, 1, "wait"), 0);
	bw_conn_wait_done(env.waits[0], BW_RC_QUOTA_EXCEEDED);
	drain(conn);
	assert_int_equal(out_len, 0);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CLOSING);
	bw_conn_free(&conn);

	/* ...which, on its session, is handled again rather than taken for a duplicate. */
	conn = new_conn();
	env.session_present = true;
	struct bw_packet c = { .type = BW_CONNECT };
	c.connect.client_id = S("again");
	c.connect.keep_alive = 10;
	assert_int_equal(feed(conn, &c, BW_MQTT_311), 0);
	drain(conn);
	expect(BW_MQTT_311, BW_CONNACK, &p);
	struct bw_packet pub = { .type = BW_PUBLISH };
	pub.publish.topic = S("t");
	pub.publish.qos = 2;
	pub.publish.packet_id = 1;
	pub.publish.dup = true;
	pub.publish.payload.p = (const uint8_t *)"wait";
	pub.publish.payload.len = 4;
	assert_int_equal(feed(conn, &pub, BW_MQTT_311), 0);
	drain(conn);
	assert_int_equal(out_len, 0); /* its PUBREC waits again */
	assert_int_equal(env.publishes, 2);
	assert_int_equal(env.n_waits, 2);
	bw_conn_wait_done(env.waits[1], 0);
	drain(conn);
	expect_ack(BW_MQTT_311, BW_PUBREC, 1, 0);
	expect_releases(2);
}

static void test_refusals_wait_their_turn(void **state)
{
	struct bw_packet p;
	/* PUBLISH order holds for refusals too ([MQTT-4.6.0-2], [MQTT-4.6.0-3]). */
	connect_as(BW_MQTT_5, "turn", 10);
	assert_int_equal(publish_payload(BW_MQTT_5, 1, 1, "wait"), 0);
	assert_int_equal(publish(BW_MQTT_5, "$SYS/x", 1, 2, false, 0), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(publish(BW_MQTT_5, "a/b/c/d/e", 2, 3, false, 0), 0);
	assert_int_equal(out_len, 0);
	bw_conn_wait_done(env.waits[0], 0);
	drain(conn);
	expect_ack(BW_MQTT_5, BW_PUBACK, 1, 0);
	expect(BW_MQTT_5, BW_PUBACK, &p);
	assert_int_equal(p.ack.packet_id, 2);
	assert_int_equal(p.ack.code, BW_RC_NOT_AUTHORIZED);
	/* With its own Reason String, not the store's. */
	assert_true(p.ack.props.has & BW_PROP_BIT(BW_PROP_REASON_STRING));
	assert_int_equal(p.ack.props.reason_string.len, strlen("$SYS is the broker's"));
	assert_memory_equal(p.ack.props.reason_string.p, "$SYS is the broker's",
	                    p.ack.props.reason_string.len);
	expect_ack(BW_MQTT_5, BW_PUBREC, 3, BW_RC_TOPIC_NAME_INVALID);
	assert_false(next_packet(BW_MQTT_5, &p));
	assert_int_equal(env.publishes, 1);
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);

	/* 3.1.1 acknowledges what it drops: in turn as well. */
	bw_conn_free(&conn);
	conn = new_conn();
	connect_as(BW_MQTT_311, "turn", 10);
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 1, "wait"), 0);
	assert_int_equal(publish(BW_MQTT_311, "$SYS/x", 1, 2, false, 0), 0);
	assert_int_equal(out_len, 0);
	bw_conn_wait_done(env.waits[1], 0);
	drain(conn);
	expect_ack(BW_MQTT_311, BW_PUBACK, 1, 0);
	expect_ack(BW_MQTT_311, BW_PUBACK, 2, 0);
	assert_false(next_packet(BW_MQTT_311, &p));
	assert_int_equal(bw_conn_state(conn), BW_CONN_CONNECTED);
	expect_releases(2);
}

static void test_duplicate_qos2_waits_for_the_original(void **state)
{
	connect_as(BW_MQTT_311, "dup", 10);
	/* A resend while its PUBREC waits: that PUBREC answers both, once stored. */
	assert_int_equal(publish_payload(BW_MQTT_311, 2, 1, "wait"), 0);
	struct bw_packet pub = { .type = BW_PUBLISH };
	pub.publish.topic = S("t");
	pub.publish.qos = 2;
	pub.publish.packet_id = 1;
	pub.publish.dup = true;
	pub.publish.payload.p = (const uint8_t *)"wait";
	pub.publish.payload.len = 4;
	assert_int_equal(feed(conn, &pub, BW_MQTT_311), 0);
	drain(conn);
	assert_int_equal(out_len, 0);
	assert_int_equal(env.publishes, 1);
	bw_conn_wait_done(env.waits[0], 0);
	drain(conn);
	expect_ack(BW_MQTT_311, BW_PUBREC, 1, 0);
	assert_false(next_packet(BW_MQTT_311, &(struct bw_packet){ 0 }));

	/* A resend of one acknowledged already: again, but behind one that waits. */
	assert_int_equal(publish_payload(BW_MQTT_311, 1, 2, "wait"), 0);
	assert_int_equal(feed(conn, &pub, BW_MQTT_311), 0);
	drain(conn);
	assert_int_equal(out_len, 0);
	bw_conn_wait_done(env.waits[1], 0);
	drain(conn);
	expect_ack(BW_MQTT_311, BW_PUBACK, 2, 0);
	expect_ack(BW_MQTT_311, BW_PUBREC, 1, 0);
	assert_false(next_packet(BW_MQTT_311, &(struct bw_packet){ 0 }));
	assert_int_equal(env.publishes, 2);
	expect_releases(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_311, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_5_assigns_id_and_caps_keep_alive,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_packet_must_be_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_version_gets_311_connack, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_malformed_5_connect_is_told_why, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_connect_byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_some_stops_at_its_budget, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_input_some_header_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_some_held_and_closing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_connect_is_a_protocol_error, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_codes_311, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_qos0_and_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_qos2_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_maximum_exceeded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_aliases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_alias_above_maximum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_packet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_window_and_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_respects_client_max_packet_size,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_messages_are_not_sent, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_broker_assigned_topic_aliases, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_no_topic_aliases_unless_the_client_allows_them,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_redelivery_on_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_normal_disconnect_drops_the_will, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_with_will, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_method_refused_unless_the_brokers, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_reauth_accepted_and_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_protocol_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kick_and_protocol_errors_send_the_will, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_waiting_acks_go_in_publish_order, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_waiting_pubrec_and_qos0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_ack_refused_5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_ack_refused_311_disconnects, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_waiting_ack_done_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_releases_only_ready_waits, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_refusing_pubrec_completes_a_stored_delivery,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_pubrec_frees_the_packet_id, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_refused_pubrec_311_resend_is_published, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_refusals_wait_their_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_qos2_waits_for_the_original, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
