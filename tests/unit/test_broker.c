/*
 * The broker of one worker, end to end without sockets: clients are
 * connection engines fed with encoded packets, their output decoded. Covers
 * anonymous policy (fail closed), routing with wildcards and overlapping
 * subscriptions, retained set/replace/clear and delivery after SUBACK by
 * Retain Handling, wills (abnormal end, normal end, delay, resume cancels),
 * session takeover, persistent sessions queueing while offline, session
 * expiry, shared subscriptions round-robin, and no-local.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/broker.h"
#include "node/core/msg.h"
#include "tenancy/acl.h"
#include "tenancy/auth/passwd.h"
#include "tenancy/auth/password.h"
#include "tenancy/model_build.h"
#include "tenancy/policy.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

static uint64_t clock_ms = 1000;

static uint64_t fake_now(void)
{
	return clock_ms;
}

static void wants_send(void *user)
{
}

static int pauses;
static void *paused_user;

static void on_pause(void *user)
{
	pauses++;
	paused_user = user;
}

static const struct bw_conn_limits limits = {
	.max_packet_size = 65536,
	.max_keepalive = 600,
	.receive_max = 16,
	.topic_alias_max = 8,
	.max_topic_length = 256,
	.max_topic_levels = 16,
	.outq = { .soft_bytes = 1 << 20, .hard_bytes = 2 << 20 },
};

static struct bw_listener_config listeners[2];
#define WORKERS_MAX 3
static struct bw_hub *hub;
static struct bw_broker *brokers[WORKERS_MAX];
static uint32_t n_workers = 1;
static struct bw_passwd *passwd; /* setup_auth */
static struct bw_acl *acl;
static struct bw_policy_slot policy; /* passwd and acl, once setup() ran */
static struct bw_broker *broker;     /* brokers[0] */
static uint32_t sys_interval_ms;     /* set by setup_sys */
static uint32_t auth_chain;          /* 0: the default */

/* A tenancy store for the tests that want one (setup_node_tenancy): its snapshot in force. */
static bool with_tenancy;
static struct bw_tenancy *tenancy_now;

static struct bw_tenancy *fake_tenancy(void *arg)
{
	(void)arg;
	return tenancy_now ? bw_tenancy_ref(tenancy_now) : NULL;
}

/* A snapshot holding the tenants named (version: how many there are + 1). */
static struct bw_tenancy *tenancy_of(const char *const *names, size_t n, uint64_t version)
{
	char err[256];
	struct bw__tbuild *tb = bw__tbuild_new(NULL);
	struct bw_tenancy *out = NULL;
	assert_non_null(tb);
	for (size_t i = 0; i < n; i++) {
		struct bw_tenant t = { .name = names[i], .name_len = strlen(names[i]) };
		assert_int_equal(bw__tbuild_tenant_put(tb, &t, 0, err, sizeof(err)), 0);
	}
	assert_int_equal(bw__tbuild_finish(&tb, version, true, NULL, &out, err, sizeof(err)), 0);
	return out;
}

static bool drop_oldest;         /* queue_full drop_oldest */
static uint32_t queue_max = 100; /* the node's session_queued_msgs */

static int setup(void **state)
{
	memset(listeners, 0, sizeof(listeners));
	strcpy(listeners[0].tenant, "default");
	listeners[0].allow_anonymous = true;
	strcpy(listeners[1].tenant, "default"); /* a listener without anonymous */
	static const char *const tenants[] = { "default" };
	struct bw_hub_config hc = { .n_workers = n_workers,
		                    .tenant = tenants,
		                    .n_tenants = 1,
		                    .retained = { 100, 1 << 20, 16 } };
	hub = bw_hub_new(&hc);
	if (!hub)
		return -1;
	bw_policy_slot_init(&policy, bw_policy_new(passwd, acl, NULL));
	passwd = NULL; /* the policy's now */
	acl = NULL;
	struct bw_broker_config cfg = {
		.listeners = listeners,
		.n_listeners = 2,
		.max_inflight = 16,
		.quotas = { .max_qos = 2,
		            .client_subscriptions = 8,
		            .session_queued_msgs = queue_max },
		.queue_drop_oldest = drop_oldest,
		.max_topic_levels = 16,
		.filters_max = 1000,
		.hub = hub,
		.policy = &policy,
		.auth_chain = auth_chain,
		.sys_interval_ms = sys_interval_ms,
		.version = "test",
		.now_ms = fake_now,
		.wants_send = wants_send,
		.pause = on_pause,
		.tenancy = with_tenancy ? fake_tenancy : NULL,
	};
	pauses = 0;
	paused_user = NULL;
	clock_ms = 1000;
	for (uint32_t i = 0; i < n_workers; i++) {
		cfg.worker = i;
		if (!(brokers[i] = bw_broker_new(&cfg)))
			return -1;
	}
	broker = brokers[0];
	return 0;
}

static void drop_letter(void *arg, uintptr_t letter)
{
	(void)arg;
	bw_broker_mail_drop(letter);
}

static int teardown(void **state)
{
	for (uint32_t i = 0; i < n_workers; i++)
		bw_broker_free(&brokers[i]);
	broker = NULL;
	bw_hub_free(&hub, drop_letter, NULL);
	bw_policy_slot_destroy(&policy);
	sys_interval_ms = 0;
	auth_chain = 0;
	n_workers = 1;
	return 0;
}

/* A session queue of 2, refuse_new (the default) or drop_oldest. */
static int setup_small_queue(void **state)
{
	queue_max = 2;
	return setup(state);
}

static int setup_drop_oldest(void **state)
{
	drop_oldest = true;
	return setup_small_queue(state);
}

static int teardown_small_queue(void **state)
{
	drop_oldest = false;
	queue_max = 100;
	return teardown(state);
}

static int setup_sys(void **state)
{
	sys_interval_ms = 1000;
	return setup(state);
}

/* alice (password "pw-a") and bob ("pw-b"), and an ACL for them. */
static int setup_auth(void **state)
{
	char ha[BW_PASSWORD_HASH_MAX], hb[BW_PASSWORD_HASH_MAX], text[1024], err[256];
	if (bw_password_hash("pw-a", 4, BW_HASH_PBKDF2, ha, sizeof(ha)) < 0 ||
	    bw_password_hash("pw-b", 4, BW_HASH_ARGON2ID, hb, sizeof(hb)) < 0)
		return -1;
	int n = snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", ha, hb);
	if (bw_passwd_parse(text, (size_t)n, "test", &passwd, err, sizeof(err)) < 0)
		return -1;
	static const char rules[] = "user alice\n"
	                            "allow all data/#\n"
	                            "deny subscribe data/secret/#\n"
	                            "allow subscribe q1/# qos=1\n"
	                            "user bob\n"
	                            "allow subscribe data/#\n"
	                            "allow publish bob/%c/#\n";
	if (bw_acl_parse(rules, sizeof(rules) - 1, "test", &acl, err, sizeof(err)) < 0)
		return -1;
	return setup(state);
}

static int setup_node(void **state)
{
	n_workers = WORKERS_MAX;
	return setup(state);
}

static int setup_node_tenancy(void **state)
{
	static const char *const both[] = { "gamma", "other" };
	with_tenancy = true;
	tenancy_now = tenancy_of(both, 2, 1);
	return setup_node(state);
}

static int teardown_tenancy(void **state)
{
	int rc = teardown(state);
	with_tenancy = false;
	bw_tenancy_release(&tenancy_now);
	return rc;
}

/* Hands every letter the workers posted to its broker, until none is left. */
static void pump(void)
{
	for (bool any = true; any;) {
		any = false;
		for (uint32_t i = 0; i < n_workers; i++)
			bw_hub_flush(hub, i);
		for (uint32_t i = 0; i < n_workers; i++) {
			uintptr_t l;
			while (bw_hub_take(hub, i, &l, 1) == 1) {
				bw_broker_mail(brokers[i], l);
				any = true;
			}
		}
	}
}

/* A client id ("prefix-N") whose home is worker w. */
static const char *id_on(uint32_t w, const char *prefix)
{
	static char ids[16][32];
	static int next;
	char *id = ids[next++ % 16];
	for (int n = 0;; n++) {
		snprintf(id, 32, "%s-%d", prefix, n);
		if (bw_hub_home(hub, 0, id, strlen(id)) == w)
			return id;
	}
}

/* ---- a client ------------------------------------------------------------ */

struct client {
	struct bw_conn *c;
	uint8_t version;
	bool present; /* CONNACK's session present */
	uint8_t out[65536];
	size_t len, off;
};

static void send_pkt(struct client *cl, const struct bw_packet *p)
{
	uint8_t buf[4096];
	int n = bw_codec_encode(p, cl->version, buf, sizeof(buf));
	assert_true(n > 0);
	bw_conn_input(cl->c, buf, (size_t)n);
}

static void drain(struct client *cl)
{
	struct iovec iov[64];
	struct bw_outq *q = bw_conn_outq(cl->c);
	size_t n;
	cl->len = cl->off = 0;
	while ((n = bw_outq_iov(q, iov, 64)) > 0) {
		size_t total = 0;
		for (size_t i = 0; i < n; i++) {
			memcpy(cl->out + cl->len, iov[i].iov_base, iov[i].iov_len);
			cl->len += iov[i].iov_len;
			total += iov[i].iov_len;
		}
		bw_outq_consume(q, total);
	}
}

/* Next packet received; type 0 when none. */
static struct bw_packet recv_pkt(struct client *cl)
{
	struct bw_packet p = { 0 };
	struct bw_frame f;
	if (cl->off == cl->len)
		drain(cl);
	if (cl->off == cl->len)
		return p;
	assert_int_equal(
	        bw_codec_frame(cl->out + cl->off, cl->len - cl->off, BW_PACKET_SIZE_MAX, &f, NULL),
	        0);
	assert_int_equal(bw_codec_decode(cl->out + cl->off, f.size, cl->version, &p, NULL), 0);
	cl->off += f.size;
	return p;
}

static struct bw_packet expect(struct client *cl, uint8_t type)
{
	struct bw_packet p = recv_pkt(cl);
	if (p.type != type)
		fail_msg("got %s, expected %s", p.type ? bw_packet_name(p.type) : "nothing",
		         bw_packet_name(type));
	return p;
}

static void expect_nothing(struct client *cl)
{
	struct bw_packet p = recv_pkt(cl);
	if (p.type)
		fail_msg("unexpected %s", bw_packet_name(p.type));
}

struct opts {
	uint8_t version;
	bool persistent;
	uint32_t expiry; /* 5.0 Session Expiry Interval */
	const char *will_topic;
	uint32_t will_delay;
	uint32_t will_expiry; /* the will's Message Expiry Interval */
	uint32_t listener;
	uint32_t worker; /* whose broker the connection is on */
	bool with_user;
	const char *user, *pass;
	uint8_t expect_code;
};

static struct client *connect_client(const char *id, struct opts o)
{
	static struct client pool[8];
	static int next;
	struct client *cl = &pool[next++ % 8];
	memset(cl, 0, sizeof(*cl));
	cl->version = o.version ? o.version : BW_MQTT_5;
	cl->c = bw_conn_new(&limits, bw_broker_ops(brokers[o.worker], o.listener), cl);
	assert_non_null(cl->c);
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.clean_start = !o.persistent;
	p.connect.keep_alive = 60;
	p.connect.client_id.p = (const uint8_t *)id;
	p.connect.client_id.len = (uint16_t)strlen(id);
	if (o.expiry) {
		p.connect.props.has |= BW_PROP_BIT(BW_PROP_SESSION_EXPIRY);
		p.connect.props.session_expiry = o.expiry;
	}
	if (o.will_topic) {
		p.connect.will = true;
		p.connect.will_topic.p = (const uint8_t *)o.will_topic;
		p.connect.will_topic.len = (uint16_t)strlen(o.will_topic);
		p.connect.will_payload.p = (const uint8_t *)"gone";
		p.connect.will_payload.len = 4;
		if (o.will_delay) {
			p.connect.will_props.has = BW_PROP_BIT(BW_PROP_WILL_DELAY);
			p.connect.will_props.will_delay = o.will_delay;
		}
		if (o.will_expiry) {
			p.connect.will_props.has |= BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY);
			p.connect.will_props.message_expiry = o.will_expiry;
		}
	}
	if (o.user) {
		p.connect.has_username = p.connect.has_password = true;
		p.connect.username.p = (const uint8_t *)o.user;
		p.connect.username.len = (uint16_t)strlen(o.user);
		p.connect.password.p = (const uint8_t *)o.pass;
		p.connect.password.len = (uint32_t)strlen(o.pass);
	} else if (o.with_user) {
		p.connect.has_username = p.connect.has_password = true;
		p.connect.username.p = (const uint8_t *)"u";
		p.connect.username.len = 1;
	}
	send_pkt(cl, &p);
	p = expect(cl, BW_CONNACK);
	assert_int_equal(p.connack.code, o.expect_code);
	cl->present = p.connack.session_present;
	return cl;
}

static void subscribe(struct client *cl, const char *filter, uint8_t qos, uint8_t rh,
                      uint32_t sub_id, bool no_local)
{
	uint8_t e[256];
	uint32_t len = 0;
	struct bw_sub_entry en = { .qos = qos, .retain_handling = rh, .no_local = no_local };
	en.filter.p = (const uint8_t *)filter;
	en.filter.len = (uint16_t)strlen(filter);
	bw_codec_put_sub(e, sizeof(e), &len, &en, cl->version);
	struct bw_packet p = { .type = BW_SUBSCRIBE };
	p.subscribe.packet_id = 1;
	p.subscribe.entries.p = e;
	p.subscribe.entries.len = len;
	if (sub_id) {
		p.subscribe.props.has = BW_PROP_BIT(BW_PROP_SUBSCRIPTION_ID);
		p.subscribe.props.sub_id = sub_id;
	}
	send_pkt(cl, &p);
	p = expect(cl, BW_SUBACK);
	assert_int_equal(p.suback.codes.p[0], qos);
}

static void publish(struct client *cl, const char *topic, const char *payload, uint8_t qos,
                    bool retain)
{
	static uint16_t id = 1;
	struct bw_packet p = { .type = BW_PUBLISH };
	p.publish.topic.p = (const uint8_t *)topic;
	p.publish.topic.len = (uint16_t)strlen(topic);
	p.publish.payload.p = (const uint8_t *)payload;
	p.publish.payload.len = (uint32_t)strlen(payload);
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.packet_id = qos ? id++ : 0;
	send_pkt(cl, &p);
	if (qos == 1)
		expect(cl, BW_PUBACK);
}

static void expect_publish(struct client *cl, const char *topic, const char *payload)
{
	struct bw_packet p = expect(cl, BW_PUBLISH);
	if (p.publish.topic.len != strlen(topic) ||
	    memcmp(p.publish.topic.p, topic, p.publish.topic.len) != 0 ||
	    p.publish.payload.len != strlen(payload) ||
	    memcmp(p.publish.payload.p, payload, p.publish.payload.len) != 0)
		fail_msg("got %.*s '%.*s', expected %s '%s'", p.publish.topic.len,
		         (const char *)p.publish.topic.p, (int)p.publish.payload.len,
		         (const char *)p.publish.payload.p, topic, payload);
}

static void disconnect(struct client *cl, bool abnormal)
{
	if (!abnormal) {
		struct bw_packet p = { .type = BW_DISCONNECT };
		send_pkt(cl, &p);
	} else {
		bw_conn_kick(cl->c, BW_RC_UNSPECIFIED); /* the worker's view of a lost peer */
	}
	bw_conn_free(&cl->c);
}

/* ---- cases ----------------------------------------------------------------- */

static void test_anonymous_policy_fails_closed(void **state)
{
	struct client *a = connect_client(
	        "a", (struct opts){ .listener = 1, .expect_code = BW_RC_NOT_AUTHORIZED });
	bw_conn_free(&a->c);
	struct client *b =
	        connect_client("b", (struct opts){ .with_user = true,
	                                           .expect_code = BW_RC_BAD_USERNAME_PASSWORD });
	bw_conn_free(&b->c);
	struct client *c =
	        connect_client("c", (struct opts){ .version = BW_MQTT_311,
	                                           .listener = 1,
	                                           .expect_code = BW_CONNACK_311_NOT_AUTHORIZED });
	bw_conn_free(&c->c);
}

static void test_routing_and_overlap(void **state)
{
	struct client *s1 = connect_client("s1", (struct opts){ 0 });
	struct client *s2 = connect_client("s2", (struct opts){ .version = BW_MQTT_311 });
	struct client *p = connect_client("p", (struct opts){ 0 });
	subscribe(s1, "a/+", 0, 0, 1, false);
	subscribe(s1, "a/#", 1, 0, 2, false);
	subscribe(s2, "+/b", 1, 0, 0, false);
	publish(p, "a/b", "hi", 1, false);
	struct bw_packet m = expect(s1, BW_PUBLISH);
	assert_int_equal(m.publish.qos, 1);                /* the highest granted */
	assert_int_equal(m.publish.props.sub_id_count, 2); /* both identifiers */
	expect_nothing(s1);                                /* one copy */
	expect_publish(s2, "a/b", "hi");
	expect_nothing(p);
	publish(p, "x/y", "none", 0, false);
	expect_nothing(s1);
	expect_nothing(s2);
	disconnect(s1, false);
	disconnect(s2, false);
	disconnect(p, false);
}

static void test_retained_messages(void **state)
{
	struct client *p = connect_client("p", (struct opts){ 0 });
	publish(p, "r/1", "v1", 1, true);
	publish(p, "r/1", "v2", 0, true); /* replaces */
	publish(p, "r/2", "w", 0, true);
	publish(p, "r/2", "", 0, true); /* clears */

	struct client *s = connect_client("s", (struct opts){ 0 });
	subscribe(s, "r/#", 1, 0, 0, false); /* SUBACK first, then the retained */
	struct bw_packet m = expect(s, BW_PUBLISH);
	assert_true(m.publish.retain);
	assert_int_equal(m.publish.qos, 0);
	assert_memory_equal(m.publish.payload.p, "v2", 2);
	expect_nothing(s);
	subscribe(s, "r/#", 1, 1, 0, false); /* exists already: none with handling 1 */
	expect_nothing(s);
	subscribe(s, "r/+", 1, 2, 0, false); /* handling 2: never */
	expect_nothing(s);
	/* A live publish is not flagged retained unless Retain As Published. */
	publish(p, "r/1", "v3", 0, true);
	m = expect(s, BW_PUBLISH);
	assert_false(m.publish.retain);
	expect_nothing(s);
	disconnect(s, false);
	disconnect(p, false);
}

static void test_wills(void **state)
{
	struct client *w = connect_client("w", (struct opts){ 0 });
	subscribe(w, "will/#", 0, 0, 0, false);
	struct client *a = connect_client("a", (struct opts){ .will_topic = "will/a" });
	disconnect(a, true);
	expect_nothing(w); /* published by the next tick, not inside the close */
	bw_broker_tick(broker, clock_ms + 1);
	expect_publish(w, "will/a", "gone");

	struct client *b = connect_client("b", (struct opts){ .will_topic = "will/b" });
	disconnect(b, false); /* a normal DISCONNECT discards it */
	bw_broker_tick(broker, clock_ms + 10);
	expect_nothing(w);

	/* A delayed will is cancelled by a reconnect to the session. */
	struct client *c = connect_client("c", (struct opts){ .will_topic = "will/c",
	                                                      .will_delay = 5,
	                                                      .expiry = 60,
	                                                      .persistent = true });
	disconnect(c, true);
	clock_ms += 1000;
	bw_broker_tick(broker, clock_ms);
	expect_nothing(w);
	c = connect_client("c", (struct opts){ .persistent = true, .expiry = 60 });
	clock_ms += 10000;
	bw_broker_tick(broker, clock_ms);
	expect_nothing(w);
	disconnect(c, false);

	/* Not cancelled: it goes out once the delay has passed. */
	struct client *d = connect_client(
	        "d", (struct opts){ .will_topic = "will/d", .will_delay = 5, .expiry = 60 });
	disconnect(d, true);
	clock_ms += 4000;
	bw_broker_tick(broker, clock_ms);
	expect_nothing(w);
	clock_ms += 2000;
	bw_broker_tick(broker, clock_ms);
	expect_publish(w, "will/d", "gone");

	/* A will's expiry runs from its publication, not from the CONNECT. */
	struct client *e =
	        connect_client("e", (struct opts){ .will_topic = "will/e", .will_expiry = 5 });
	clock_ms += 60000;
	disconnect(e, true);
	bw_broker_tick(broker, clock_ms + 1);
	struct bw_packet p = expect(w, BW_PUBLISH);
	assert_true(p.publish.props.has & BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY));
	assert_int_equal(p.publish.props.message_expiry, 5);
	disconnect(w, false);
}

static void test_takeover(void **state)
{
	struct client *a = connect_client("x", (struct opts){ .persistent = true, .expiry = 60 });
	subscribe(a, "t", 1, 0, 0, false);
	struct client *b = connect_client("x", (struct opts){ .persistent = true, .expiry = 60 });
	struct bw_packet d = expect(a, BW_DISCONNECT);
	assert_int_equal(d.disconnect.code, BW_RC_SESSION_TAKEN_OVER);
	assert_int_equal(bw_conn_state(a->c), BW_CONN_CLOSING);
	bw_conn_free(&a->c);
	/* The subscription came along with the session. */
	struct client *p = connect_client("p", (struct opts){ 0 });
	publish(p, "t", "m", 0, false);
	expect_publish(b, "t", "m");
	disconnect(b, false);
	disconnect(p, false);
}

static void test_persistent_session_queues_while_offline(void **state)
{
	struct client *s = connect_client("q", (struct opts){ .persistent = true, .expiry = 60 });
	subscribe(s, "q/#", 1, 0, 0, false);
	disconnect(s, false);
	struct client *p = connect_client("p", (struct opts){ 0 });
	publish(p, "q/1", "one", 1, false);
	publish(p, "q/2", "two", 1, false);
	publish(p, "q/3", "zero", 0, false); /* QoS 0 is not kept for offline sessions */
	s = connect_client("q", (struct opts){ .persistent = true, .expiry = 60 });
	assert_true(s->present);
	expect_publish(s, "q/1", "one");
	expect_publish(s, "q/2", "two");
	expect_nothing(s);
	disconnect(s, false);
	disconnect(p, false);
}

static void test_session_expiry_and_clean_start(void **state)
{
	struct client *s = connect_client("e", (struct opts){ .persistent = true, .expiry = 2 });
	subscribe(s, "e", 1, 0, 0, false);
	disconnect(s, false);
	clock_ms += 1000;
	bw_broker_tick(broker, clock_ms);
	s = connect_client("e", (struct opts){ .persistent = true, .expiry = 2 });
	assert_true(s->present); /* within the interval */
	disconnect(s, false);
	clock_ms += 3000;
	bw_broker_tick(broker, clock_ms);
	s = connect_client("e", (struct opts){ .persistent = true, .expiry = 2 });
	assert_false(s->present); /* expired */
	disconnect(s, false);

	/* 3.1.1: clean session 0 keeps it; clean session 1 drops it. */
	s = connect_client("k", (struct opts){ .version = BW_MQTT_311, .persistent = true });
	disconnect(s, true);
	bw_broker_tick(broker, clock_ms + 100000);
	s = connect_client("k", (struct opts){ .version = BW_MQTT_311, .persistent = true });
	assert_true(s->present);
	disconnect(s, false);
	s = connect_client("k", (struct opts){ .version = BW_MQTT_311 });
	assert_false(s->present);
	disconnect(s, false);
}

/* A full queue: refuse_new keeps the first messages, drop_oldest the last. */
static void test_queue_full_policies(void **state)
{
	uint32_t max = queue_max;
	struct client *s = connect_client("qf", (struct opts){ .persistent = true, .expiry = 60 });
	subscribe(s, "qf", 1, 0, 0, false);
	disconnect(s, false);
	struct client *p = connect_client("qp", (struct opts){ 0 });
	char body[16];
	for (uint32_t i = 0; i < max + 2; i++) {
		snprintf(body, sizeof(body), "m%u", i);
		publish(p, "qf", body, 1, false);
	}
	s = connect_client("qf", (struct opts){ .persistent = true, .expiry = 60 });
	for (uint32_t i = 0; i < max; i++) {
		snprintf(body, sizeof(body), "m%u", drop_oldest ? i + 2 : i);
		expect_publish(s, "qf", body);
	}
	expect_nothing(s);
	disconnect(s, false);
	disconnect(p, false);
}

/* 5.0 3.14.2.2.2: a DISCONNECT's Session Expiry Interval is the session's new one. */
static void test_disconnect_changes_session_expiry(void **state)
{
	/* 60 s in the CONNECT, 0 in the DISCONNECT: the session ends with it. */
	struct client *s = connect_client("dx", (struct opts){ .persistent = true, .expiry = 60 });
	subscribe(s, "dx", 1, 0, 0, false);
	struct bw_packet d = { .type = BW_DISCONNECT };
	d.disconnect.props.has = BW_PROP_BIT(BW_PROP_SESSION_EXPIRY);
	d.disconnect.props.session_expiry = 0;
	send_pkt(s, &d);
	bw_conn_free(&s->c);
	bw_broker_tick(broker, ++clock_ms);
	s = connect_client("dx", (struct opts){ .persistent = true, .expiry = 60 });
	assert_false(s->present);
	disconnect(s, false);

	/* 0 in the CONNECT, then non-zero in the DISCONNECT: a protocol error (0x82). */
	s = connect_client("dy", (struct opts){ .persistent = false });
	d.disconnect.props.session_expiry = 30;
	send_pkt(s, &d);
	struct bw_packet e = expect(s, BW_DISCONNECT);
	assert_int_equal(e.disconnect.code, BW_RC_PROTOCOL_ERROR);
	bw_conn_free(&s->c);
	bw_broker_tick(broker, ++clock_ms);
	s = connect_client("dy", (struct opts){ .persistent = true, .expiry = 60 });
	assert_false(s->present); /* it ended with its connection, as a clean one does */
	disconnect(s, false);

	/* 60 then 120: kept. */
	s = connect_client("dz", (struct opts){ .persistent = true, .expiry = 60 });
	d.disconnect.props.session_expiry = 120;
	send_pkt(s, &d);
	bw_conn_free(&s->c);
	clock_ms += 90000; /* past the first interval, within the second */
	bw_broker_tick(broker, clock_ms);
	s = connect_client("dz", (struct opts){ .persistent = true, .expiry = 60 });
	assert_true(s->present);
	disconnect(s, false);
}

static void test_shared_subscriptions_round_robin(void **state)
{
	struct client *m[3];
	int got[3] = { 0 };
	m[0] = connect_client("m0", (struct opts){ 0 });
	m[1] = connect_client("m1", (struct opts){ 0 });
	m[2] = connect_client("m2", (struct opts){ .version = BW_MQTT_311 });
	for (int i = 0; i < 3; i++)
		subscribe(m[i], "$share/g/s/#", 0, 0, 0, false);
	struct client *p = connect_client("p", (struct opts){ 0 });
	for (int i = 0; i < 9; i++)
		publish(p, "s/x", "m", 0, false);
	for (int i = 0; i < 3; i++) {
		while (recv_pkt(m[i]).type == BW_PUBLISH)
			got[i]++;
	}
	assert_int_equal(got[0], 3);
	assert_int_equal(got[1], 3);
	assert_int_equal(got[2], 3);
	for (int i = 0; i < 3; i++)
		disconnect(m[i], false);
	disconnect(p, false);
}

static void test_shared_redelivery_when_a_member_leaves(void **state)
{
	struct client *a = connect_client("a", (struct opts){ 0 });
	struct client *b = connect_client("b", (struct opts){ 0 });
	subscribe(a, "$share/g/r", 1, 0, 0, false);
	subscribe(b, "$share/g/r", 1, 0, 0, false);
	struct client *p = connect_client("p", (struct opts){ 0 });
	for (int i = 0; i < 4; i++)
		publish(p, "r", "m", 1, false);
	int to_a = 0, to_b = 0;
	struct bw_packet r;
	while (recv_pkt(a).type == BW_PUBLISH)
		to_a++; /* never acknowledged */
	while ((r = recv_pkt(b)).type == BW_PUBLISH) {
		struct bw_packet ack = { .type = BW_PUBACK };
		ack.ack.packet_id = r.publish.packet_id;
		send_pkt(b, &ack);
		to_b++;
	}
	assert_int_equal(to_a, 2);
	assert_int_equal(to_b, 2);
	disconnect(a, false); /* a clean session: it ends at the next tick */
	bw_broker_tick(broker, clock_ms + 1);
	expect_publish(b, "r", "m");
	expect_publish(b, "r", "m");
	expect_nothing(b);
	disconnect(b, false);
	disconnect(p, false);
}

static void test_passwords(void **state)
{
	struct client *a = connect_client("a", (struct opts){ .user = "alice", .pass = "pw-a" });
	struct client *b = connect_client("b", (struct opts){ .user = "bob", .pass = "pw-b" });
	bw_conn_free(
	        &connect_client("x", (struct opts){ .user = "alice",
	                                            .pass = "pw-b",
	                                            .expect_code = BW_RC_BAD_USERNAME_PASSWORD })
	                 ->c);
	bw_conn_free(
	        &connect_client("y", (struct opts){ .user = "carol",
	                                            .pass = "pw-a",
	                                            .expect_code = BW_RC_BAD_USERNAME_PASSWORD })
	                 ->c);
	/* A listener without anonymous still takes clients with a password. */
	struct client *c = connect_client(
	        "c", (struct opts){ .listener = 1, .user = "alice", .pass = "pw-a" });
	disconnect(a, false);
	disconnect(b, false);
	disconnect(c, false);
}

/* An auth chain without password: a username and password is refused (0x86). */
static void test_auth_chain_leaves_passwords_out(void **state)
{
	auth_chain = BW_CONFIG_METHOD_TOKEN + 1;
	for (uint32_t i = 0; i < n_workers; i++) /* again, with that chain */
		bw_broker_free(&brokers[i]);
	bw_policy_slot_destroy(&policy);
	bw_hub_free(&hub, drop_letter, NULL);
	assert_int_equal(setup_auth(state), 0);
	bw_conn_free(
	        &connect_client("x", (struct opts){ .user = "alice",
	                                            .pass = "pw-a",
	                                            .expect_code = BW_RC_BAD_USERNAME_PASSWORD })
	                 ->c);
}

static void test_acls(void **state)
{
	struct client *a = connect_client("a", (struct opts){ .user = "alice", .pass = "pw-a" });
	struct client *b = connect_client("b7", (struct opts){ .user = "bob", .pass = "pw-b" });
	subscribe(b, "data/#", 0, 0, 0, false);
	/* bob may not publish to data/...: PUBACK 0x87, and nobody gets it. */
	struct bw_packet p = { .type = BW_PUBLISH };
	p.publish.topic = (struct bw_str){ (const uint8_t *)"data/x", 6 };
	p.publish.payload = (struct bw_bin){ (const uint8_t *)"no", 2 };
	p.publish.qos = 1;
	p.publish.packet_id = 9;
	send_pkt(b, &p);
	struct bw_packet ack = expect(b, BW_PUBACK);
	assert_int_equal(ack.ack.code, BW_RC_NOT_AUTHORIZED);
	expect_nothing(b);
	/* %c: bob may publish to bob/<his client id>/... only. */
	publish(b, "bob/b7/t", "mine", 0, false);
	publish(a, "data/y", "from alice", 0, false);
	expect_publish(b, "data/y", "from alice");
	/* alice: data/# minus data/secret/# to subscribe, q1/# capped at QoS 1. */
	uint8_t e[64];
	uint32_t len = 0;
	struct bw_sub_entry en = { .qos = 2 };
	en.filter = (struct bw_str){ (const uint8_t *)"q1/t", 4 };
	bw_codec_put_sub(e, sizeof(e), &len, &en, BW_MQTT_5);
	struct bw_packet sp = { .type = BW_SUBSCRIBE };
	sp.subscribe.packet_id = 3;
	sp.subscribe.entries = (struct bw_bin){ e, len };
	send_pkt(a, &sp);
	assert_int_equal(expect(a, BW_SUBACK).suback.codes.p[0], 1); /* granted QoS 1 */
	len = 0;
	en.qos = 0;
	en.filter = (struct bw_str){ (const uint8_t *)"data/secret/k", 13 };
	bw_codec_put_sub(e, sizeof(e), &len, &en, BW_MQTT_5);
	sp.subscribe.entries = (struct bw_bin){ e, len };
	send_pkt(a, &sp);
	assert_int_equal(expect(a, BW_SUBACK).suback.codes.p[0], BW_RC_NOT_AUTHORIZED);
	/* data/# overlaps the deny: allowed, but data/secret/... never arrives. */
	subscribe(a, "data/#", 0, 0, 0, false);
	publish(a, "data/secret/k", "hidden", 0, false);
	publish(a, "data/open", "seen", 0, false);
	expect_publish(a, "data/open", "seen");
	expect_nothing(a);
	expect_publish(b, "data/secret/k", "hidden"); /* bob's rules do allow it */
	expect_publish(b, "data/open", "seen");
	/* A will the ACL would not let it publish refuses the CONNECT. */
	bw_conn_free(&connect_client("w", (struct opts){ .user = "bob",
	                                                 .pass = "pw-b",
	                                                 .will_topic = "data/w",
	                                                 .expect_code = BW_RC_NOT_AUTHORIZED })
	                      ->c);
	disconnect(a, false);
	disconnect(b, false);
}

/*
 * A new policy (a SIGHUP reload) reaches live sessions at the next tick:
 * a subscription the new ACL no longer allows is dropped, and a user the
 * new password file no longer has is disconnected (0x87).
 */
static void test_policy_reload_rechecks_live_sessions(void **state)
{
	struct client *a = connect_client("a", (struct opts){ .user = "alice", .pass = "pw-a" });
	struct client *b = connect_client("b7", (struct opts){ .user = "bob", .pass = "pw-b" });
	subscribe(a, "data/#", 0, 0, 0, false);
	subscribe(b, "data/#", 0, 0, 0, false);
	publish(a, "data/1", "before", 0, false);
	expect_publish(a, "data/1", "before");
	expect_publish(b, "data/1", "before");

	char hb[BW_PASSWORD_HASH_MAX], text[512], err[256];
	assert_int_equal(bw_password_hash("pw-b", 4, BW_HASH_PBKDF2, hb, sizeof(hb)), 0);
	int n = snprintf(text, sizeof(text), "bob:%s\n", hb); /* alice is gone */
	struct bw_passwd *pw = NULL;
	struct bw_acl *rules = NULL;
	assert_int_equal(bw_passwd_parse(text, (size_t)n, "new", &pw, err, sizeof(err)), 0);
	static const char r[] = "user alice\nallow all data/#\nuser bob\nallow subscribe other/#\n"
	                        "allow publish #\n";
	assert_int_equal(bw_acl_parse(r, sizeof(r) - 1, "new", &rules, err, sizeof(err)), 0);
	bw_policy_slot_set(&policy, bw_policy_new(pw, rules, NULL));
	bw_broker_tick(broker, clock_ms);

	struct bw_packet d = expect(a, BW_DISCONNECT);
	assert_int_equal(d.disconnect.code, BW_RC_NOT_AUTHORIZED);
	assert_int_equal(bw_conn_state(a->c), BW_CONN_CLOSING);
	bw_conn_free(&a->c);
	bw_conn_free(
	        &connect_client("a2", (struct opts){ .user = "alice",
	                                             .pass = "pw-a",
	                                             .expect_code = BW_RC_BAD_USERNAME_PASSWORD })
	                 ->c);
	/* bob's data/# is no longer his to hold: his own publish does not come back. */
	publish(b, "data/2", "after", 0, false);
	expect_nothing(b);
	subscribe(b, "other/#", 0, 0, 0, false);
	publish(b, "other/1", "allowed", 0, false);
	expect_publish(b, "other/1", "allowed");
	disconnect(b, false);
}

static void test_no_local(void **state)
{
	struct client *a = connect_client("a", (struct opts){ 0 });
	struct client *b = connect_client("b", (struct opts){ 0 });
	subscribe(a, "n", 0, 0, 0, true);
	subscribe(b, "n", 0, 0, 0, false);
	publish(a, "n", "self", 0, false);
	expect_nothing(a);
	expect_publish(b, "n", "self");
	disconnect(a, false);
	disconnect(b, false);
}

static void test_subscription_limit(void **state)
{
	struct client *a = connect_client("a", (struct opts){ 0 });
	char f[16];
	for (int i = 0; i < 8; i++) {
		snprintf(f, sizeof(f), "f/%d", i);
		subscribe(a, f, 0, 0, 0, false);
	}
	uint8_t e[32];
	uint32_t len = 0;
	struct bw_sub_entry en = { .filter = { (const uint8_t *)"f/9", 3 } };
	bw_codec_put_sub(e, sizeof(e), &len, &en, BW_MQTT_5);
	struct bw_packet p = { .type = BW_SUBSCRIBE };
	p.subscribe.packet_id = 2;
	p.subscribe.entries.p = e;
	p.subscribe.entries.len = len;
	send_pkt(a, &p);
	p = expect(a, BW_SUBACK);
	assert_int_equal(p.suback.codes.p[0], BW_RC_QUOTA_EXCEEDED);
	subscribe(a, "f/0", 1, 0, 0, false); /* replacing one is fine */
	disconnect(a, false);
}

static void test_sys_statistics_per_tenant(void **state)
{
	struct client *s = connect_client("s", (struct opts){ 0 });
	struct client *all = connect_client("all", (struct opts){ 0 });
	subscribe(s, "$SYS/broker/clients/connected", 0, 0, 0, false);
	subscribe(all, "#", 0, 0, 0, false);
	bw_broker_tick(broker, clock_ms + 500);
	expect_nothing(s); /* not due yet */
	clock_ms += 1000;
	bw_broker_tick(broker, clock_ms);
	struct bw_packet m = expect(s, BW_PUBLISH);
	assert_int_equal(m.publish.payload.len, 1);
	assert_memory_equal(m.publish.payload.p, "2", 1);
	expect_nothing(s);
	expect_nothing(all); /* '#' does not match '$' topics */
	/* Retained: a late subscriber gets the last value at once. */
	subscribe(all, "$SYS/broker/version", 0, 0, 0, false);
	expect_publish(all, "$SYS/broker/version", "bulwark test");
	disconnect(s, false);
	disconnect(all, false);
}

static void test_publisher_paused_for_a_congested_subscriber(void **state)
{
	/* The window is min(the client's 65535, the node's 16); the queue
	 * holds 100, and half of it counts as congested. */
	struct client *s = connect_client("slow", (struct opts){ 0 });
	struct client *p = connect_client("fast", (struct opts){ 0 });
	subscribe(s, "c", 1, 0, 0, false);
	for (int i = 0; i < 60; i++)
		publish(p, "c", "m", 1, false);
	assert_int_equal(pauses, 0); /* 16 inflight + 44 queued: not yet */
	assert_false(bw_broker_congested(broker));
	for (int i = 0; i < 10; i++)
		publish(p, "c", "m", 1, false);
	assert_true(pauses > 0);
	assert_ptr_equal(paused_user, p);
	assert_true(bw_broker_congested(broker));
	/* The subscriber takes and acknowledges what is inflight: the queue
	 * moves into the window. Below half (38) it is still congested, with
	 * hysteresis; below a quarter (22) it is not. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 16; i++) {
			struct bw_packet m = expect(s, BW_PUBLISH);
			struct bw_packet ack = { .type = BW_PUBACK };
			ack.ack.packet_id = m.publish.packet_id;
			send_pkt(s, &ack);
		}
		assert_int_equal(bw_broker_congested(broker), round == 0);
	}
	disconnect(s, false);
	disconnect(p, false);
}

static void test_an_offline_subscriber_pauses_nobody(void **state)
{
	struct client *s = connect_client("off", (struct opts){ .persistent = true, .expiry = 60 });
	subscribe(s, "o", 1, 0, 0, false);
	disconnect(s, false);
	struct client *p = connect_client("pub", (struct opts){ 0 });
	for (int i = 0; i < 120; i++)
		publish(p, "o", "m", 1, false);
	assert_int_equal(pauses, 0);
	assert_false(bw_broker_congested(broker));
	disconnect(p, false);
}

/* ---- a node of three workers ---------------------------------------------- */

static struct client *on(uint32_t w, const char *prefix)
{
	return connect_client(id_on(w, prefix), (struct opts){ .worker = w });
}

static void test_node_routes_between_workers(void **state)
{
	struct client *s1 = on(1, "s1"), *s2 = on(2, "s2"), *s0 = on(0, "s0");
	subscribe(s1, "a/+", 1, 0, 0, false);
	subscribe(s2, "a/#", 1, 0, 0, false);
	subscribe(s0, "a/b", 0, 0, 0, false);
	struct client *p = on(0, "p");
	publish(p, "a/b", "m1", 1, false);
	expect_publish(s0, "a/b", "m1"); /* local: at once */
	expect_nothing(s1);              /* the others: once they take their mail */
	pump();
	expect_publish(s1, "a/b", "m1");
	expect_publish(s2, "a/b", "m1");
	expect_nothing(s1);
	expect_nothing(s2);

	/* A subscription is in force for a publish right after its SUBACK,
	 * before any mail was taken: the interest inbox is read at route time. */
	struct client *s3 = on(1, "s3");
	subscribe(s3, "z", 0, 0, 0, false);
	publish(p, "z", "m2", 0, false);
	pump();
	expect_publish(s3, "z", "m2");

	/* Unsubscribed on worker 1 (its last "a/+"): worker 1 gets nothing more. */
	struct bw_packet u = { .type = BW_UNSUBSCRIBE };
	uint8_t e[16];
	uint32_t len = 0;
	bw_codec_put_unsub(e, sizeof(e), &len, (struct bw_str){ (const uint8_t *)"a/+", 3 });
	u.unsubscribe.packet_id = 2;
	u.unsubscribe.entries.p = e;
	u.unsubscribe.entries.len = len;
	send_pkt(s1, &u);
	expect(s1, BW_UNSUBACK);
	publish(p, "a/c", "m3", 0, false);
	pump();
	expect_nothing(s1);
	expect_publish(s2, "a/c", "m3");
	assert_int_equal(bw_hub_backlog(hub, 0), 0);
	disconnect(s0, false);
	disconnect(s1, false);
	disconnect(s2, false);
	disconnect(s3, false);
	disconnect(p, false);
}

static void test_node_share_groups_weigh_members(void **state)
{
	struct client *m[3] = { on(1, "m"), on(1, "n"), on(2, "o") };
	int got[3] = { 0 };
	for (int i = 0; i < 3; i++)
		subscribe(m[i], "$share/g/s/#", 1, 0, 0, false);
	struct client *p = on(0, "p");
	for (int i = 0; i < 30; i++)
		publish(p, "s/x", "m", 1, false);
	pump();
	for (int i = 0; i < 3; i++) {
		struct bw_packet r;
		while ((r = recv_pkt(m[i])).type == BW_PUBLISH) {
			got[i]++;
			struct bw_packet ack = { .type = BW_PUBACK };
			ack.ack.packet_id = r.publish.packet_id;
			send_pkt(m[i], &ack);
		}
	}
	/* Two members on worker 1, one on worker 2: 10 each, not 7/8/15. */
	assert_int_equal(got[0], 10);
	assert_int_equal(got[1], 10);
	assert_int_equal(got[2], 10);

	/* One of worker 1's members leaves: once its session ended (a tick),
	 * the other two split evenly. */
	disconnect(m[0], false);
	bw_broker_tick(brokers[1], clock_ms + 1);
	got[1] = got[2] = 0;
	for (int i = 0; i < 20; i++)
		publish(p, "s/x", "m", 0, false);
	pump();
	for (int i = 1; i < 3; i++) {
		while (recv_pkt(m[i]).type == BW_PUBLISH)
			got[i]++;
	}
	assert_int_equal(got[1], 10);
	assert_int_equal(got[2], 10);
	disconnect(m[1], false);
	disconnect(m[2], false);
	disconnect(p, false);
}

static void test_node_share_delivery_follows_a_member_that_moved(void **state)
{
	struct client *a = on(1, "a");
	subscribe(a, "$share/g/t", 1, 0, 0, false);
	struct client *p = on(0, "p");
	publish(p, "t", "m", 1, false); /* a letter to worker 1 is on its way */
	disconnect(a, false);           /* worker 1's member leaves */
	struct client *b = on(2, "b");  /* and one joins on worker 2 */
	subscribe(b, "$share/g/t", 1, 0, 0, false);
	pump();
	expect_publish(b, "t", "m"); /* worker 1 passed it on */
	expect_nothing(b);
	disconnect(b, false);
	disconnect(p, false);
}

static void test_node_retained_and_wills_cross_workers(void **state)
{
	struct client *p = on(0, "p");
	publish(p, "r/1", "kept", 1, true);
	struct client *s = on(2, "s");
	subscribe(s, "r/#", 1, 0, 0, false);
	expect_publish(s, "r/1", "kept"); /* retained: shared by the node */

	struct client *w =
	        connect_client(id_on(1, "w"), (struct opts){ .worker = 1, .will_topic = "r/will" });
	disconnect(w, true);
	bw_broker_tick(brokers[1], clock_ms + 1);
	pump();
	expect_publish(s, "r/will", "gone");
	disconnect(s, false);
	disconnect(p, false);
}

/*
 * A deleted tenant's retained messages go, though no client of it ever came
 * to worker 0, which clears them; another tenant's stay.
 */
static void test_node_deleted_tenant_loses_its_retained(void **state)
{
	static const char *const other[] = { "other" };
	struct bw_msg **v = NULL;
	size_t n = 0, cap = 0;
	(void)state;
	for (uint32_t i = 0; i < n_workers; i++)
		bw_broker_sync(brokers[i]);
	int gamma = bw_hub_tenant_add(hub, "gamma"), keep = bw_hub_tenant_add(hub, "other");
	assert_true(gamma >= 0 && keep >= 0);
	struct bw_msg *m = bw_msg_new("r/1", 3, NULL, "old", 3, 1, true, clock_ms);
	assert_non_null(m);
	assert_int_equal(bw_hub_retained_put(hub, (uint32_t)gamma, (const uint8_t *)"r/1", 3, m),
	                 0);
	assert_int_equal(bw_hub_retained_put(hub, (uint32_t)keep, (const uint8_t *)"r/1", 3, m), 0);
	bw_msg_unref(&m);

	bw_tenancy_release(&tenancy_now);
	tenancy_now = tenancy_of(other, 1, 2); /* gamma deleted */
	for (uint32_t i = 0; i < n_workers; i++)
		bw_broker_sync(brokers[i]);
	assert_int_equal(
	        bw_hub_retained_get(hub, (uint32_t)gamma, (const uint8_t *)"#", 1, &v, &n, &cap),
	        0);
	assert_int_equal(
	        bw_hub_retained_get(hub, (uint32_t)keep, (const uint8_t *)"#", 1, &v, &n, &cap), 1);
	bw_msg_unref(&v[0]);
	free(v);
}

static void test_node_connection_moves_to_its_home_worker(void **state)
{
	const char *id = id_on(2, "far");
	struct client *cl = connect_client("x", (struct opts){ 0 }); /* for its buffers */
	bw_conn_free(&cl->c);
	cl->c = bw_conn_new(&limits, bw_broker_ops(brokers[0], 0), cl);
	struct bw_packet p = { .type = BW_CONNECT };
	p.connect.clean_start = true;
	p.connect.keep_alive = 60;
	p.connect.client_id.p = (const uint8_t *)id;
	p.connect.client_id.len = (uint16_t)strlen(id);
	send_pkt(cl, &p);
	struct bw_packet sub = { .type = BW_PINGREQ }; /* pipelined behind the CONNECT */
	send_pkt(cl, &sub);
	expect_nothing(cl);
	assert_int_equal(bw_conn_moving(cl->c), 2);
	assert_int_equal(bw_conn_state(cl->c), BW_CONN_AWAIT_CONNECT);
	uint8_t *data;
	size_t len;
	bw_conn_take_input(cl->c, &data, &len);
	bw_conn_free(&cl->c);
	/* Worker 2 takes the bytes over: CONNACK, then the PINGRESP. */
	cl->c = bw_conn_new(&limits, bw_broker_ops(brokers[2], 0), cl);
	bw_conn_pin(cl->c);
	assert_int_equal(bw_conn_input(cl->c, data, len), 0);
	free(data);
	expect(cl, BW_CONNACK);
	expect(cl, BW_PINGRESP);
	disconnect(cl, false);

	/* A client without an id gets one whose home is where it connected. */
	struct client *anon = connect_client("", (struct opts){ .worker = 1 });
	struct bw_str aid = bw_conn_client_id(anon->c);
	assert_true(aid.len > 0);
	assert_int_equal(bw_hub_home(hub, 0, aid.p, aid.len), 1);
	disconnect(anon, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_anonymous_policy_fails_closed, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_routing_and_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistent_session_queues_while_offline, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_session_expiry_and_clean_start, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_changes_session_expiry, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_queue_full_policies, setup_small_queue,
		                                teardown_small_queue),
		cmocka_unit_test_setup_teardown(test_queue_full_policies, setup_drop_oldest,
		                                teardown_small_queue),
		cmocka_unit_test_setup_teardown(test_shared_subscriptions_round_robin, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_shared_redelivery_when_a_member_leaves, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_no_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwords, setup_auth, teardown),
		cmocka_unit_test_setup_teardown(test_acls, setup_auth, teardown),
		cmocka_unit_test_setup_teardown(test_auth_chain_leaves_passwords_out, setup_auth,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_policy_reload_rechecks_live_sessions,
		                                setup_auth, teardown),
		cmocka_unit_test_setup_teardown(test_subscription_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sys_statistics_per_tenant, setup_sys,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_publisher_paused_for_a_congested_subscriber,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_node_routes_between_workers, setup_node,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_node_share_groups_weigh_members, setup_node,
		                                teardown),
		cmocka_unit_test_setup_teardown(
		        test_node_share_delivery_follows_a_member_that_moved, setup_node, teardown),
		cmocka_unit_test_setup_teardown(test_node_retained_and_wills_cross_workers,
		                                setup_node, teardown),
		cmocka_unit_test_setup_teardown(test_node_deleted_tenant_loses_its_retained,
		                                setup_node_tenancy, teardown_tenancy),
		cmocka_unit_test_setup_teardown(test_node_connection_moves_to_its_home_worker,
		                                setup_node, teardown),
		cmocka_unit_test_setup_teardown(test_an_offline_subscriber_pauses_nobody, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
