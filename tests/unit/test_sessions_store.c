/*
 * Persistent sessions in Redis, the store layer (node/state/sessions.h).
 * Without Redis: the entry encoding both ways (its exact bytes, every rule,
 * every truncation), the stored record's shape, the requests the builders
 * make (keys, arguments, TTLs, refusals) and claim replies of every wrong
 * shape. Against a real redis-server (a unix socket in a temporary
 * directory, the test driving a bw_ring, two "nodes" each with its own
 * client): a claim on a fresh id; a second node's claim raising the token,
 * announcing the takeover and fencing the first node's every write; the
 * queue's bound by both policies; acks in and out of order and marks;
 * release's TTLs (PTTL), kept by later writes and lifted by a claim; clean
 * start; drop; corrupt values refused without harm; odd client ids up to
 * 64 KiB, all of a session's keys in one hash slot. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/store/record.h"
#include "node/io/ring.h"
#include "node/state/keys.h"
#include "node/state/redis.h"
#include "node/state/sessions.h"
#include "redis_server.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define NODE_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define U(s)   ((const uint8_t *)(s))

static struct bw_sessions_key key_of(const char *tenant, const char *id)
{
	return (struct bw_sessions_key){ .tenant = tenant, .id = U(id), .id_len = strlen(id) };
}

/* ---- records to store ---------------------------------------------------------------- */

/* A message of tenant on topic with payload at qos (the strings are the caller's). */
static StoredMessage message(const char *tenant, const char *topic, const char *payload,
                             uint32_t qos)
{
	StoredMessage m;

	stored_message__init(&m);
	m.tenant = (char *)tenant;
	m.topic = (char *)topic;
	m.has_payload = 1;
	m.payload.data = (uint8_t *)payload;
	m.payload.len = strlen(payload);
	m.has_qos = 1;
	m.qos = qos;
	return m;
}

/* A session record with one subscription and an incoming QoS 2 id. */
struct session_rec {
	StoredSession s;
	StoredSubscription sub, *subs[1];
	StoredInflight in, *ins[1];
};

static void session_rec(struct session_rec *r, const char *tenant, const char *id,
                        const char *filter)
{
	stored_session__init(&r->s);
	stored_subscription__init(&r->sub);
	stored_inflight__init(&r->in);
	r->s.tenant = (char *)tenant;
	r->s.client_id = (char *)id;
	r->s.has_protocol_version = 1;
	r->s.protocol_version = 5;
	r->s.has_session_expiry_interval_s = 1;
	r->s.session_expiry_interval_s = 300;
	r->s.has_next_packet_id = 1;
	r->s.next_packet_id = 42;
	r->sub.filter = (char *)filter;
	r->sub.has_qos = 1;
	r->sub.qos = 1;
	r->subs[0] = &r->sub;
	r->s.subscriptions = r->subs;
	r->s.n_subscriptions = 1;
	r->in.has_packet_id = 1;
	r->in.packet_id = 7;
	r->in.has_direction = 1;
	r->in.direction = STORED_INFLIGHT__DIRECTION__INCOMING;
	r->in.has_state = 1;
	r->in.state = STORED_INFLIGHT__STATE__PUBREC_SENT;
	r->ins[0] = &r->in;
	r->s.inflight = r->ins;
	r->s.n_inflight = 1;
}

static struct bw_sessions_head head(uint64_t seq, uint16_t pid, uint8_t state)
{
	return (struct bw_sessions_head){ .seq = seq, .packet_id = pid, .state = state };
}

/* ---- without Redis: the entry encoding ------------------------------------------------- */

static void test_entry_encoding(void **state)
{
	StoredMessage m = message("acme", "a/b", "hello", 1);
	struct bw_sessions_head h = { .seq = 0x0102030405060708ull,
		                      .packet_id = 0x0a0b,
		                      .state = BW_SESSIONS_PUBLISH_SENT,
		                      .sent_at_ms = 0x1112131415161718ull };
	struct bw_sessions_entry e;
	uint8_t *buf;
	size_t len;
	(void)state;

	/* Above 2^53: refused; the bytes of the head otherwise. */
	assert_int_equal(bw_sessions_entry_encode(&h, &m, &buf, &len), -EINVAL);
	assert_null(buf);
	h.seq = 0x0002030405060708ull;
	assert_int_equal(bw_sessions_entry_encode(&h, &m, &buf, &len), 0);
	const uint8_t want[] = { 1,    0, 2,    3,    4,    5,    6,    7,    8,    0x0a,
		                 0x0b, 1, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18 };
	assert_int_equal(sizeof(want), BW_SESSIONS_HEAD_LEN);
	assert_memory_equal(buf, want, sizeof(want));
	uint8_t packed[BW_SESSIONS_HEAD_LEN];
	bw_sessions_head_pack(&h, packed);
	assert_memory_equal(packed, want, sizeof(want));

	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), 0);
	assert_true(e.h.seq == h.seq && e.h.sent_at_ms == h.sent_at_ms);
	assert_int_equal(e.h.packet_id, 0x0a0b);
	assert_int_equal(e.h.state, BW_SESSIONS_PUBLISH_SENT);
	assert_string_equal(e.msg->topic, "a/b");
	assert_int_equal(e.msg->payload.len, 5);
	bw_sessions_entry_fini(&e);
	assert_null(e.msg);

	/* Another tenant's session, a newer or a zero format, a bad head. */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "other", &e), -EINVAL);
	assert_int_equal(bw_sessions_entry_decode(buf, len, NULL, &e), -EINVAL);
	buf[0] = 2;
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EPROTONOSUPPORT);
	buf[0] = 0;
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[0] = 1;
	buf[11] = 3; /* no such state */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[11] = 0; /* queued with a packet id */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[11] = 2; /* PUBREC received on a QoS 1 message */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[11] = 1;
	buf[9] = buf[10] = 0; /* sent without a packet id */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[10] = 1;
	memset(buf + 1, 0, 8); /* seq 0 */
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EINVAL);
	buf[8] = 1;
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), 0);
	bw_sessions_entry_fini(&e);

	/* Every truncation is refused, none crashes. */
	for (size_t n = 0; n < len; n++) {
		int rc = bw_sessions_entry_decode(buf, n, "acme", &e);
		assert_true(rc < 0);
		assert_null(e.msg);
		if (n < BW_SESSIONS_HEAD_LEN)
			assert_int_equal(rc, -EBADMSG);
	}
	/* Not protobuf after the head. */
	memset(buf + BW_SESSIONS_HEAD_LEN, 0xff, len - BW_SESSIONS_HEAD_LEN);
	assert_int_equal(bw_sessions_entry_decode(buf, len, "acme", &e), -EBADMSG);
	free(buf);

	/* The rules on the way in: heads, and the qos a state needs. */
	struct bw_sessions_head bad[] = {
		head(0, 0, BW_SESSIONS_QUEUED),
		head(BW_SESSIONS_SEQ_MAX + 1, 0, BW_SESSIONS_QUEUED),
		head(1, 5, BW_SESSIONS_QUEUED),
		head(1, 0, BW_SESSIONS_PUBLISH_SENT),
		head(1, 1, 3),
		head(1, 1, BW_SESSIONS_PUBREC_RECEIVED), /* m is QoS 1 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bw_sessions_entry_encode(&bad[i], &m, &buf, &len), -EINVAL);
	struct bw_sessions_head top = head(BW_SESSIONS_SEQ_MAX, 65535, BW_SESSIONS_PUBLISH_SENT);
	assert_int_equal(bw_sessions_head_check(&top), 0);
	m.qos = 0;
	assert_int_equal(bw_sessions_entry_encode(&top, &m, &buf, &len), -EINVAL);
	struct bw_sessions_head q = head(9, 0, BW_SESSIONS_QUEUED);
	assert_int_equal(bw_sessions_entry_encode(&q, &m, &buf, &len), 0); /* QoS 0 queued */
	free(buf);
	m.topic = "a/+"; /* not a topic name */
	assert_int_equal(bw_sessions_entry_encode(&q, &m, &buf, &len), -EINVAL);
}

static void test_record_shape(void **state)
{
	struct session_rec r;
	StoredSession *out;
	uint8_t *buf;
	size_t len;
	(void)state;

	session_rec(&r, "acme", "dev 1", "a/#");
	r.s.owner_node = NODE_A;
	r.s.has_fencing_token = 1;
	r.s.fencing_token = 9;
	assert_int_equal(bw_sessions_record_encode(&r.s, &buf, &len), 0);
	/* The owner is not stored (the hash holds it); the caller's record is as it was. */
	assert_string_equal(r.s.owner_node, NODE_A);
	assert_int_equal(r.s.fencing_token, 9);
	assert_int_equal(r.s.version, 1);
	struct bw_sessions_key k = key_of("acme", "dev 1");
	assert_int_equal(bw_sessions_record_decode(buf, len, &k, &out), 0);
	assert_null(out->owner_node);
	assert_false(out->has_fencing_token);
	assert_int_equal(out->next_packet_id, 42);
	assert_int_equal(out->n_inflight, 1);
	bw_record_session_free(&out);

	/* Read under another tenant's or client's key: refused. */
	struct bw_sessions_key other[] = { key_of("acme", "dev 2"), key_of("acme", "dev 10"),
		                           key_of("acme", "dev "), key_of("beta", "dev 1") };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		assert_int_equal(bw_sessions_record_decode(buf, len, &other[i], &out), -EINVAL);
		assert_null(out);
	}
	assert_int_equal(bw_sessions_record_decode(buf, len - 1, &k, &out), -EBADMSG);
	free(buf);

	/* Messages live in entries: a record with a queue or outgoing inflight is refused. */
	StoredMessage m = message("acme", "t", "x", 1), *mp = &m;
	r.s.offline_queue = &mp;
	r.s.n_offline_queue = 1;
	assert_int_equal(bw_sessions_record_encode(&r.s, &buf, &len), -EINVAL);
	r.s.n_offline_queue = 0;
	r.in.direction = STORED_INFLIGHT__DIRECTION__OUTGOING;
	r.in.state = STORED_INFLIGHT__STATE__PUBLISH_SENT;
	r.in.message = &m;
	assert_int_equal(bw_sessions_record_encode(&r.s, &buf, &len), -EINVAL);
	/* The same record packed by the plain encoder is refused when read. */
	assert_int_equal(bw_record_session_encode(&r.s, &buf, &len), 0);
	assert_int_equal(bw_sessions_record_decode(buf, len, &k, &out), -EINVAL);
	free(buf);
}

/* ---- without Redis: requests and replies ---------------------------------------------- */

static void test_requests(void **state)
{
	struct bw_sessions_req q;
	struct bw_sessions_key k = key_of("acme", "a b{c}:d");
	(void)state;

	assert_int_equal(bw_sessions_req_claim(&q, "bw", NODE_A, &k, true), 0);
	assert_int_equal(q.argc, 12);
	assert_memory_equal(q.argv[0], "EVAL", 4);
	assert_memory_equal(q.argv[2], "4", 1);
	const char *keys[] = { "bw:{acme}:session:a b{c}:d", "bw:{acme}:queue:a b{c}:d",
		               "bw:{acme}:inflight:a b{c}:d", "bw:{acme}:epoch" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(q.lens[3 + i], strlen(keys[i]));
		assert_memory_equal(q.argv[3 + i], keys[i], strlen(keys[i]));
	}
	const char *args[] = { NODE_A, "1", "bw:sessions", "acme", "a b{c}:d" };
	for (int i = 0; i < 5; i++) {
		assert_int_equal(q.lens[7 + i], strlen(args[i]));
		assert_memory_equal(q.argv[7 + i], args[i], strlen(args[i]));
	}
	bw_sessions_req_fini(&q);

	/* Release: the TTL argument, and the record only when the keys stay. */
	struct session_rec r;
	session_rec(&r, "acme", "a b{c}:d", "x");
	assert_int_equal(bw_sessions_req_release(&q, "bw", &k, 5, 100, &r.s), 0);
	assert_int_equal(q.argc, 9);
	assert_memory_equal(q.argv[2], "3", 1);
	assert_memory_equal(q.argv[6], "5", 1);
	assert_int_equal(q.lens[7], 6);
	assert_memory_equal(q.argv[7], "160000", 6);
	assert_true(q.lens[8] > 0);
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_release(&q, "bw", &k, 5, 0, &r.s), 0);
	assert_memory_equal(q.argv[7], "0", 1);
	assert_int_equal(q.lens[8], 0);
	bw_sessions_req_fini(&q);
	assert_true(bw_sessions_ttl_ms(0) == 0);
	assert_true(bw_sessions_ttl_ms(1) == 1000 + BW_SESSIONS_TTL_MARGIN_MS);
	assert_true(bw_sessions_ttl_ms(BW_SESSIONS_EXPIRY_NEVER) == -1);
	assert_true(bw_sessions_ttl_ms(0xFFFFFFFEu) ==
	            (int64_t)0xFFFFFFFEu * 1000 + BW_SESSIONS_TTL_MARGIN_MS);

	/* Push: seq, entry, bound, policy, and which set. */
	StoredMessage m = message("acme", "t", "p", 2);
	struct bw_sessions_head h = head(17, 0, BW_SESSIONS_QUEUED);
	assert_int_equal(bw_sessions_req_push(&q, "bw", &k, 5, &h, &m, 10, BW_SESSIONS_REFUSE_NEW),
	                 0);
	assert_int_equal(q.argc, 12);
	assert_memory_equal(q.argv[7], "17", 2);
	assert_int_equal(q.lens[8] > BW_SESSIONS_HEAD_LEN, 1);
	assert_memory_equal(q.argv[9], "10", 2);
	assert_memory_equal(q.argv[10], "r", 1);
	assert_memory_equal(q.argv[11], "q", 1);
	bw_sessions_req_fini(&q);
	h = head(18, 3, BW_SESSIONS_PUBLISH_SENT);
	assert_int_equal(bw_sessions_req_push(&q, "bw", &k, 5, &h, &m, 1, BW_SESSIONS_DROP_OLDEST),
	                 0);
	assert_memory_equal(q.argv[9], "1", 1);
	assert_memory_equal(q.argv[10], "d", 1);
	assert_memory_equal(q.argv[11], "i", 1);
	bw_sessions_req_fini(&q);

	/* Mark: the new head as the script's last argument. */
	h = head(18, 3, BW_SESSIONS_PUBREC_RECEIVED);
	assert_int_equal(bw_sessions_req_mark(&q, "bw", &k, 5, &h), 0);
	assert_int_equal(q.argc, 9);
	assert_int_equal(q.lens[8], BW_SESSIONS_HEAD_LEN);
	uint8_t packed[BW_SESSIONS_HEAD_LEN];
	bw_sessions_head_pack(&h, packed);
	assert_memory_equal(q.argv[8], packed, BW_SESSIONS_HEAD_LEN);
	bw_sessions_req_fini(&q);

	/* Drop: token 0 is "whoever owns it". */
	assert_int_equal(bw_sessions_req_drop(&q, "bw", NODE_B, &k, 0), 0);
	assert_int_equal(q.argc, 12);
	assert_memory_equal(q.argv[7], "0", 1);
	bw_sessions_req_fini(&q);

	/* Refusals: each leaves q safe to finish. */
	struct bw_sessions_key bad_id = key_of("acme", "");
	struct bw_sessions_key bad_tenant = key_of("Acme", "x");
	struct bw_sessions_key bad_utf8 = { "acme", U("a\xff"), 2 };
	struct bw_sessions_key nul = { "acme", U("a\0b"), 3 };
	const struct bw_sessions_key *bad_keys[] = { &bad_id, &bad_tenant, &bad_utf8, &nul, NULL };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(bw_sessions_req_claim(&q, "bw", NODE_A, bad_keys[i], false),
		                 -EINVAL);
		bw_sessions_req_fini(&q);
	}
	assert_int_equal(bw_sessions_req_claim(&q, "b:w", NODE_A, &k, false), -EINVAL);
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_claim(&q, "bw", "node", &k, false), -EINVAL);
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_ack(&q, "bw", &k, 0, 1), -EINVAL); /* token 0 */
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_ack(&q, "bw", &k, 1, 0), -EINVAL); /* seq 0 */
	bw_sessions_req_fini(&q);
	h = head(1, 0, BW_SESSIONS_QUEUED);
	assert_int_equal(bw_sessions_req_mark(&q, "bw", &k, 1, &h), -EINVAL); /* not sent */
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_push(&q, "bw", &k, 1, &h, &m, 0, BW_SESSIONS_REFUSE_NEW),
	                 -EINVAL); /* max 0 */
	bw_sessions_req_fini(&q);
	assert_int_equal(bw_sessions_req_save(&q, "bw", &k, 1, NULL), -EINVAL);
	bw_sessions_req_fini(&q);
	m.tenant = "beta"; /* not the session's tenant: the entry would be refused when read */
	assert_int_equal(bw_sessions_req_push(&q, "bw", &k, 1, &h, &m, 5, BW_SESSIONS_REFUSE_NEW),
	                 0);
	bw_sessions_req_fini(&q);

	/* Error replies. */
	struct {
		const char *s;
		int rc;
	} errs[] = { { "FENCED not the owner of the session", -ESTALE },
		     { "ERR FENCED not the owner", -ESTALE },
		     { "FULL session queue full", -ENOBUFS },
		     { "BADSEQ x", -EINVAL },
		     { "FENCED", -EIO },
		     { "WRONGTYPE Operation against a key", -EIO },
		     { "", -EIO } };
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		assert_int_equal(bw_sessions_reply_error(errs[i].s, strlen(errs[i].s)), errs[i].rc);
}

/* A reply tree, built by hand. */
static redisReply rs(const char *s)
{
	return (redisReply){ .type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s) };
}

static redisReply ri(long long v)
{
	return (redisReply){ .type = REDIS_REPLY_INTEGER, .integer = v };
}

static void test_claim_parse_shapes(void **state)
{
	struct bw_sessions_key k = key_of("acme", "c");
	struct bw_sessions_claim *c;
	(void)state;

	redisReply tok = ri(3), prev = rs(NODE_A), ex = ri(1), rec = rs(""), seq = rs("12");
	redisReply none = { .type = REDIS_REPLY_ARRAY };
	redisReply *el[7] = { &tok, &prev, &ex, &rec, &seq, &none, &none };
	redisReply top = { .type = REDIS_REPLY_ARRAY, .elements = 7, .element = el };

	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), 0);
	assert_int_equal(c->token, 3);
	assert_string_equal(c->prev_owner, NODE_A);
	assert_true(c->existed);
	assert_null(c->record);
	assert_int_equal(c->last_seq, 12);
	assert_int_equal(c->n_inflight + c->n_queue + c->n_bad, 0);
	bw_sessions_claim_free(&c);
	assert_null(c);

	/* A previous owner that is not a node id reads as none. */
	prev = rs("not a node");
	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), 0);
	assert_string_equal(c->prev_owner, "");
	bw_sessions_claim_free(&c);
	prev = rs("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), 0);
	assert_string_equal(c->prev_owner, "");
	bw_sessions_claim_free(&c);

	/* A record that is not one: the claim stands (token), the error says why. */
	rec = rs("\xff\xff\xff");
	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), -EBADMSG);
	assert_non_null(c);
	assert_int_equal(c->token, 3);
	assert_null(c->record);
	bw_sessions_claim_free(&c);
	rec = rs("");

	/* Wrong shapes. */
	redisReply *saved;
	struct {
		int i;
		redisReply v;
	} wrong[] = { { 0, ri(0) },    { 0, rs("3") }, { 1, ri(1) },
		      { 2, rs("1") },  { 3, ri(0) },   { 4, ri(12) },
		      { 4, rs("-1") }, { 4, rs("") },  { 4, rs("1x") },
		      { 5, rs("[]") }, { 6, ri(0) },   { 4, rs("99999999999999999999") } };
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		saved = el[wrong[i].i];
		el[wrong[i].i] = &wrong[i].v;
		assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), -EPROTO);
		assert_null(c);
		el[wrong[i].i] = saved;
	}
	redisReply num = ri(1);
	redisReply *bad_el[1] = { &num };
	redisReply bad_set = { .type = REDIS_REPLY_ARRAY, .elements = 1, .element = bad_el };
	el[6] = &bad_set;
	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), -EPROTO);
	el[6] = &none;
	top.elements = 6;
	assert_int_equal(bw_sessions_claim_parse(&top, &k, &c), -EPROTO);
	redisReply err = { .type = REDIS_REPLY_ERROR, .str = (char *)"FENCED x", .len = 8 };
	assert_int_equal(bw_sessions_claim_parse(&err, &k, &c), -ESTALE);
	assert_null(c);
	redisReply nil = { .type = REDIS_REPLY_NIL };
	assert_int_equal(bw_sessions_claim_parse(&nil, &k, &c), -EPROTO);
}

/* ---- against Redis ---------------------------------------------------------------------- */

/* A node: its own client and store layer, on the test's ring. */
struct node {
	struct bw_redis *r;
	struct bw_sessions *s;
};

struct world {
	struct bw_ring ring;
	pid_t pid;
	char sock[128];
	redisContext *c; /* the test's own view */
	struct node a, b;
	int fenced; /* writes of node a Redis fenced, and the last one's token */
	uint64_t fenced_token;
};

static void tick(struct world *w)
{
	assert_true(bw_ring_run(&w->ring, 10) >= 0);
	bw_redis_tick(w->a.r, bw_test_now_ms());
	bw_redis_tick(w->b.r, bw_test_now_ms());
}

#define RUN_UNTIL(w, cond, ms)                                                                     \
	do {                                                                                       \
		uint64_t dl_ = bw_test_now_ms() + (ms);                                            \
		while (!(cond) && bw_test_now_ms() < dl_)                                          \
			tick(w);                                                                   \
	} while (0)

static void node_start(struct world *w, struct node *n, const char *id)
{
	struct bw_redis_config rc = { .backoff_min_ms = 20, .backoff_max_ms = 100 };
	struct bw_sessions_config sc = { .prefix = "bw", .node = id };

	memcpy(rc.path, w->sock, strlen(w->sock) + 1);
	assert_int_equal(bw_redis_new(&n->r, &rc, &w->ring), 0);
	assert_int_equal(bw_sessions_new(&n->s, &sc), 0);
	bw_sessions_attach(n->s, n->r);
}

static void on_fenced(void *arg, const struct bw_sessions_key *k, uint64_t token)
{
	struct world *w = arg;
	assert_true(k->tenant[0] != '\0');
	w->fenced++;
	w->fenced_token = token;
}

static void world_start(struct world *w, const char *name)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->sock, sizeof(w->sock), "%s/%s.sock", bw_test_dir, name);
	w->pid = bw_test_redis_start(bw_test_dir, w->sock, 0, NULL);
	w->c = redisConnectUnix(w->sock);
	assert_non_null(w->c);
	assert_int_equal(w->c->err, 0);
	assert_int_equal(bw_ring_init(&w->ring, &bw_test_ring_small), 0);
	node_start(w, &w->a, NODE_A);
	node_start(w, &w->b, NODE_B);
	bw_sessions_on_fenced(w->a.s, on_fenced, w);
	RUN_UNTIL(w, bw_redis_up(w->a.r) && bw_redis_up(w->b.r), 3000);
	assert_true(bw_redis_up(w->a.r) && bw_redis_up(w->b.r));
}

static void world_end(struct world *w)
{
	bw_redis_free(&w->a.r, true);
	bw_redis_free(&w->b.r, true);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(&w->ring, 10) >= 0); /* the cancelled polls come back */
	bw_sessions_free(&w->a.s);
	bw_sessions_free(&w->b.s);
	bw_ring_exit(&w->ring);
	redisFree(w->c);
	bw_test_redis_kill(w->pid);
}

/* A connection subscribed to the takeover channel; reads wait 3 s at most. */
static redisContext *subscriber(struct world *w)
{
	redisContext *sub = redisConnectUnix(w->sock);
	struct timeval tv = { .tv_sec = 3 };

	assert_non_null(sub);
	assert_int_equal(redisSetTimeout(sub, tv), REDIS_OK);
	redisReply *r = redisCommand(sub, "SUBSCRIBE bw:sessions");
	assert_non_null(r);
	freeReplyObject(r);
	return sub;
}

/* One call's end. */
struct res {
	int n, rc;
	uint64_t value;
	struct bw_sessions_claim *c;
};

static void on_done(void *arg, int rc, uint64_t value)
{
	struct res *r = arg;

	r->n++;
	r->rc = rc;
	r->value = value;
}

static void on_claimed(void *arg, int rc, struct bw_sessions_claim *c)
{
	struct res *r = arg;

	r->n++;
	r->rc = rc;
	r->c = c;
}

/* Waits for r's callback (once). */
static void wait_for(struct world *w, struct res *r)
{
	RUN_UNTIL(w, r->n > 0, 3000);
	assert_int_equal(r->n, 1);
}

static struct bw_sessions_claim *claim(struct world *w, struct node *n,
                                       const struct bw_sessions_key *k, bool clean, int want)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_claim(n->s, k, clean, on_claimed, &r), 0);
	wait_for(w, &r);
	assert_int_equal(r.rc, want);
	return r.c;
}

/* Each waits for the call's end: rc, and the answer in *value when given. */
static int save(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
                StoredSession *rec)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_save(n->s, k, token, rec, on_done, &r), 0);
	wait_for(w, &r);
	return r.rc;
}

static int push(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
                struct bw_sessions_head h, const char *payload, uint32_t max,
                enum bw_sessions_policy policy, uint64_t *value)
{
	StoredMessage m = message(k->tenant, "t/x", payload, 2);
	struct res r = { 0 };

	assert_int_equal(bw_sessions_push(n->s, k, token, &h, &m, max, policy, on_done, &r), 0);
	wait_for(w, &r);
	if (value)
		*value = r.value;
	return r.rc;
}

static int ack(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
               uint64_t seq, uint64_t *value)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_ack(n->s, k, token, seq, on_done, &r), 0);
	wait_for(w, &r);
	if (value)
		*value = r.value;
	return r.rc;
}

static int mark(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
                struct bw_sessions_head h, uint64_t *value)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_mark(n->s, k, token, &h, on_done, &r), 0);
	wait_for(w, &r);
	if (value)
		*value = r.value;
	return r.rc;
}

static int release(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
                   uint32_t expiry_s, StoredSession *rec)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_release(n->s, k, token, expiry_s, rec, on_done, &r), 0);
	wait_for(w, &r);
	return r.rc;
}

static int drop(struct world *w, struct node *n, const struct bw_sessions_key *k, uint64_t token,
                uint64_t *value)
{
	struct res r = { 0 };

	assert_int_equal(bw_sessions_drop(n->s, k, token, on_done, &r), 0);
	wait_for(w, &r);
	if (value)
		*value = r.value;
	return r.rc;
}

/* A key of session k as a string the test's own commands can use. */
static size_t key(char *buf, const struct bw_sessions_key *k, enum bw_keys_session_kind kind)
{
	int n = bw_keys_session(buf, BW_KEYS_SESSION_MAX, "bw", k->tenant, kind, k->id, k->id_len);
	assert_true(n > 0);
	return (size_t)n;
}

static long long pttl(struct world *w, const struct bw_sessions_key *k,
                      enum bw_keys_session_kind kind)
{
	static char buf[BW_KEYS_SESSION_MAX];
	size_t n = key(buf, k, kind);
	redisReply *r = redisCommand(w->c, "PTTL %b", buf, n);

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

static long long exists(struct world *w, const struct bw_sessions_key *k,
                        enum bw_keys_session_kind kind)
{
	static char buf[BW_KEYS_SESSION_MAX];
	size_t n = key(buf, k, kind);
	redisReply *r = redisCommand(w->c, "EXISTS %b", buf, n);

	assert_non_null(r);
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

/* The payload of entry e. */
static void expect_entry(const struct bw_sessions_entry *e, uint64_t seq, uint16_t pid,
                         uint8_t state, const char *payload)
{
	assert_int_equal(e->h.seq, seq);
	assert_int_equal(e->h.packet_id, pid);
	assert_int_equal(e->h.state, state);
	assert_int_equal(e->msg->payload.len, strlen(payload));
	assert_memory_equal(e->msg->payload.data, payload, strlen(payload));
}

#define STAT(n, f) atomic_load(&bw_sessions_stats((n)->s)->f)

static void test_claim_fresh_and_resume(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "sensor-1");
	(void)state;

	world_start(&w, "fresh");
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	assert_int_equal(c->token, 1);
	assert_string_equal(c->prev_owner, "");
	assert_false(c->existed);
	assert_null(c->record);
	assert_int_equal(c->last_seq, 0);
	assert_int_equal(c->n_inflight + c->n_queue, 0);
	uint64_t tok = c->token;
	bw_sessions_claim_free(&c);

	/* The hash names the owner; the tenant's counter gave the token. */
	redisReply *r = redisCommand(w.c, "HGETALL bw:{acme}:session:sensor-1");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 4);
	assert_string_equal(r->element[0]->str, "owner");
	assert_string_equal(r->element[1]->str, NODE_A);
	assert_string_equal(r->element[2]->str, "token");
	assert_string_equal(r->element[3]->str, "1");
	freeReplyObject(r);
	r = redisCommand(w.c, "GET bw:{acme}:epoch");
	assert_string_equal(r->str, "1");
	freeReplyObject(r);
	assert_int_equal(pttl(&w, &k, BW_KEYS_SESSION), -1);

	/* Saved, queued, then claimed again by the same node: all of it back. */
	struct session_rec rec;
	session_rec(&rec, "acme", "sensor-1", "cmd/#");
	assert_int_equal(save(&w, &w.a, &k, tok, &rec.s), 0);
	uint64_t dropped = 99;
	assert_int_equal(
	        push(&w, &w.a, &k, tok, head(1, 0, 0), "one", 10, BW_SESSIONS_REFUSE_NEW, &dropped),
	        0);
	assert_int_equal(dropped, 0);
	assert_int_equal(push(&w, &w.a, &k, tok, head(2, 5, BW_SESSIONS_PUBLISH_SENT), "two", 10,
	                      BW_SESSIONS_REFUSE_NEW, NULL),
	                 0);
	c = claim(&w, &w.a, &k, false, 0);
	assert_int_equal(c->token, 2);
	assert_string_equal(c->prev_owner, NODE_A);
	assert_true(c->existed);
	assert_non_null(c->record);
	assert_string_equal(c->record->subscriptions[0]->filter, "cmd/#");
	assert_int_equal(c->record->next_packet_id, 42);
	assert_int_equal(c->record->inflight[0]->packet_id, 7);
	assert_int_equal(c->last_seq, 2);
	assert_int_equal(c->n_inflight, 1);
	expect_entry(&c->inflight[0], 2, 5, BW_SESSIONS_PUBLISH_SENT, "two");
	assert_int_equal(c->n_queue, 1);
	expect_entry(&c->queue[0], 1, 0, BW_SESSIONS_QUEUED, "one");
	assert_int_equal(c->n_bad, 0);
	bw_sessions_claim_free(&c);
	/* The old token is fenced now, even on the same node. */
	assert_int_equal(save(&w, &w.a, &k, tok, &rec.s), -ESTALE);
	assert_int_equal(STAT(&w.a, claims), 2);
	assert_int_equal(STAT(&w.a, takeovers), 0);
	assert_int_equal(STAT(&w.a, fenced), 1);
	world_end(&w);
}

static void test_takeover_fences(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "dev 7");
	(void)state;

	world_start(&w, "takeover");
	redisContext *sub = subscriber(&w);
	redisReply *r;

	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t ta = c->token;
	bw_sessions_claim_free(&c);
	struct session_rec rec;
	session_rec(&rec, "acme", "dev 7", "a/b");
	assert_int_equal(save(&w, &w.a, &k, ta, &rec.s), 0);
	for (uint64_t i = 1; i <= 3; i++)
		assert_int_equal(push(&w, &w.a, &k, ta, head(i, 0, 0), "q", 10,
		                      BW_SESSIONS_REFUSE_NEW, NULL),
		                 0);
	assert_int_equal(mark(&w, &w.a, &k, ta, head(1, 1, BW_SESSIONS_PUBLISH_SENT), NULL), 0);

	/* B takes it over: a higher token, A named, everything handed on. */
	c = claim(&w, &w.b, &k, false, 0);
	uint64_t tb = c->token;
	assert_true(tb > ta);
	assert_string_equal(c->prev_owner, NODE_A);
	assert_non_null(c->record);
	assert_int_equal(c->n_inflight, 1);
	assert_int_equal(c->n_queue, 2);
	assert_int_equal(c->last_seq, 3);
	bw_sessions_claim_free(&c);
	assert_int_equal(STAT(&w.b, takeovers), 1);

	/* The note A hears. */
	assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
	assert_int_equal(r->elements, 3);
	assert_string_equal(r->element[1]->str, "bw:sessions");
	struct bw_keys_takeover t;
	assert_int_equal(bw_keys_takeover_parse(r->element[2]->str, r->element[2]->len, &t), 0);
	assert_memory_equal(t.node, NODE_B, BW_KEYS_NODE_LEN);
	assert_int_equal(t.tenant_len, 4);
	assert_memory_equal(t.tenant, "acme", 4);
	assert_int_equal(t.token, tb);
	assert_int_equal(t.id_len, 5);
	assert_memory_equal(t.id, "dev 7", 5);
	freeReplyObject(r);

	/* Every late write of A is fenced and changes nothing. */
	const char *qkey = "bw:{acme}:queue:dev 7";
	redisReply *qdump = redisCommand(w.c, "DUMP %s", qkey);
	assert_int_equal(qdump->type, REDIS_REPLY_STRING);
	assert_int_equal(save(&w, &w.a, &k, ta, &rec.s), -ESTALE);
	assert_int_equal(
	        push(&w, &w.a, &k, ta, head(9, 0, 0), "late", 10, BW_SESSIONS_DROP_OLDEST, NULL),
	        -ESTALE);
	assert_int_equal(ack(&w, &w.a, &k, ta, 2, NULL), -ESTALE);
	assert_int_equal(mark(&w, &w.a, &k, ta, head(2, 2, BW_SESSIONS_PUBLISH_SENT), NULL),
	                 -ESTALE);
	assert_int_equal(release(&w, &w.a, &k, ta, 0, NULL), -ESTALE);
	assert_int_equal(release(&w, &w.a, &k, ta, 60, NULL), -ESTALE);
	assert_int_equal(drop(&w, &w.a, &k, ta, NULL), -ESTALE);
	assert_int_equal(STAT(&w.a, fenced), 7);
	r = redisCommand(w.c, "DUMP %s", qkey);
	assert_int_equal(r->len, qdump->len);
	assert_memory_equal(r->str, qdump->str, r->len);
	freeReplyObject(r);
	freeReplyObject(qdump);
	assert_int_equal(pttl(&w, &k, BW_KEYS_SESSION), -1);

	/* B's writes go through; A claiming back fences B in turn. */
	assert_int_equal(ack(&w, &w.b, &k, tb, 2, NULL), 0);
	c = claim(&w, &w.a, &k, false, 0);
	assert_string_equal(c->prev_owner, NODE_B);
	assert_int_equal(c->n_queue, 1);
	bw_sessions_claim_free(&c);
	assert_int_equal(ack(&w, &w.b, &k, tb, 3, NULL), -ESTALE);
	redisFree(sub);
	world_end(&w);
}

static void test_queue_bound(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "bounded");
	uint64_t dropped;
	(void)state;

	world_start(&w, "bound");
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);

	/* drop_oldest at 3: each push past it drops the oldest, counted. */
	const char *p[] = { "", "p1", "p2", "p3", "p4", "p5" };
	for (uint64_t i = 1; i <= 5; i++) {
		assert_int_equal(push(&w, &w.a, &k, t, head(i, 0, 0), p[i], 3,
		                      BW_SESSIONS_DROP_OLDEST, &dropped),
		                 0);
		assert_int_equal(dropped, i > 3 ? 1 : 0);
	}
	assert_int_equal(STAT(&w.a, dropped), 2);
	/* A smaller bound (a quota lowered) drops down to it at once. */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(6, 0, 0), "p6", 2, BW_SESSIONS_DROP_OLDEST, &dropped),
	        0);
	assert_int_equal(dropped, 2);
	/* refuse_new at the bound: -ENOBUFS, nothing changes. */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(7, 0, 0), "p7", 2, BW_SESSIONS_REFUSE_NEW, &dropped),
	        -ENOBUFS);
	assert_int_equal(STAT(&w.a, refused), 1);
	/* Sent entries go to the window, which the bound does not count. */
	assert_int_equal(push(&w, &w.a, &k, t, head(8, 1, BW_SESSIONS_PUBLISH_SENT), "p8", 2,
	                      BW_SESSIONS_REFUSE_NEW, &dropped),
	                 0);
	/* A seq not above the last (7 was refused, so 7 is free, but 8 was taken). */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(8, 0, 0), "dup", 9, BW_SESSIONS_REFUSE_NEW, NULL),
	        -EINVAL);
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(3, 0, 0), "old", 9, BW_SESSIONS_REFUSE_NEW, NULL),
	        -EINVAL);
	c = claim(&w, &w.a, &k, false, 0);
	assert_int_equal(c->n_queue, 2);
	expect_entry(&c->queue[0], 5, 0, 0, "p5");
	expect_entry(&c->queue[1], 6, 0, 0, "p6");
	assert_int_equal(c->n_inflight, 1);
	expect_entry(&c->inflight[0], 8, 1, BW_SESSIONS_PUBLISH_SENT, "p8");
	assert_int_equal(c->last_seq, 8);
	t = c->token;
	bw_sessions_claim_free(&c);
	/* A bound of 1 keeps the new one alone: the window is not counted. */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(9, 0, 0), "p9", 1, BW_SESSIONS_DROP_OLDEST, &dropped),
	        0);
	assert_int_equal(dropped, 2);
	world_end(&w);
}

static void test_ack_and_mark(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "acker");
	uint64_t v;
	(void)state;

	world_start(&w, "ack");
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);
	const char *p[] = { "", "m1", "m2", "m3", "m4", "m5", "m6" };
	for (uint64_t i = 1; i <= 6; i++)
		assert_int_equal(push(&w, &w.a, &k, t, head(i, 0, 0), p[i], 100,
		                      BW_SESSIONS_REFUSE_NEW, NULL),
		                 0);
	/* Sent in order: 1..4 into the window with packet ids 11..14. */
	for (uint64_t i = 1; i <= 4; i++) {
		struct bw_sessions_head h = head(i, (uint16_t)(10 + i), BW_SESSIONS_PUBLISH_SENT);
		h.sent_at_ms = 1000 + i;
		assert_int_equal(mark(&w, &w.a, &k, t, h, &v), 0);
		assert_int_equal(v, 1);
	}
	/* In order (the head), then out of order, then one gone already. */
	assert_int_equal(ack(&w, &w.a, &k, t, 1, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(ack(&w, &w.a, &k, t, 3, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(ack(&w, &w.a, &k, t, 3, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(ack(&w, &w.a, &k, t, 77, &v), 0);
	assert_int_equal(v, 0);
	/* A queued one acknowledged (a QoS 0 message sent): gone from the queue. */
	assert_int_equal(ack(&w, &w.a, &k, t, 5, &v), 0);
	assert_int_equal(v, 1);
	/* PUBREC: 2 moves on to PUBREC_RECEIVED, in place in the window. */
	struct bw_sessions_head h = head(2, 12, BW_SESSIONS_PUBREC_RECEIVED);
	h.sent_at_ms = 5000;
	assert_int_equal(mark(&w, &w.a, &k, t, h, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(mark(&w, &w.a, &k, t, head(99, 1, BW_SESSIONS_PUBLISH_SENT), &v), 0);
	assert_int_equal(v, 0);

	c = claim(&w, &w.a, &k, false, 0);
	assert_int_equal(c->n_inflight, 2);
	expect_entry(&c->inflight[0], 2, 12, BW_SESSIONS_PUBREC_RECEIVED, "m2");
	assert_int_equal(c->inflight[0].h.sent_at_ms, 5000);
	expect_entry(&c->inflight[1], 4, 14, BW_SESSIONS_PUBLISH_SENT, "m4");
	assert_int_equal(c->inflight[1].h.sent_at_ms, 1004);
	assert_int_equal(c->n_queue, 1);
	expect_entry(&c->queue[0], 6, 0, 0, "m6");
	assert_int_equal(c->n_bad, 0);
	t = c->token;
	bw_sessions_claim_free(&c);
	/* PUBCOMP and the last PUBACK: the window is empty, and so is its key. */
	assert_int_equal(ack(&w, &w.a, &k, t, 2, &v), 0);
	assert_int_equal(ack(&w, &w.a, &k, t, 4, &v), 0);
	assert_int_equal(exists(&w, &k, BW_KEYS_INFLIGHT), 0);
	world_end(&w);
}

static void test_release_ttl(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "sleeper");
	struct session_rec rec;
	(void)state;

	world_start(&w, "release");
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);
	session_rec(&rec, "acme", "sleeper", "s/#");
	assert_int_equal(save(&w, &w.a, &k, t, &rec.s), 0);
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(1, 0, 0), "x", 10, BW_SESSIONS_REFUSE_NEW, NULL), 0);

	/* Released with 100 s: every key that exists gets 100 s + the margin. */
	rec.s.has_last_seen_ms = 1;
	rec.s.last_seen_ms = 123456;
	assert_int_equal(release(&w, &w.a, &k, t, 100, &rec.s), 0);
	long long want = 100000 + BW_SESSIONS_TTL_MARGIN_MS;
	long long s = pttl(&w, &k, BW_KEYS_SESSION), q = pttl(&w, &k, BW_KEYS_QUEUE);
	assert_true(s > want - 2000 && s <= want);
	assert_true(q > want - 2000 && q <= want);
	assert_int_equal(pttl(&w, &k, BW_KEYS_INFLIGHT), -2); /* none yet */

	/* Still the owner: writes to the offline session keep (and give) the TTL. */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(2, 0, 0), "y", 10, BW_SESSIONS_REFUSE_NEW, NULL), 0);
	assert_int_equal(mark(&w, &w.a, &k, t, head(1, 1, BW_SESSIONS_PUBLISH_SENT), NULL), 0);
	long long f = pttl(&w, &k, BW_KEYS_INFLIGHT);
	assert_true(f > want - 2000 && f <= want);
	assert_true(pttl(&w, &k, BW_KEYS_QUEUE) > want - 2000);
	assert_int_equal(save(&w, &w.a, &k, t, &rec.s), 0);
	assert_true(pttl(&w, &k, BW_KEYS_SESSION) > want - 2000);

	/* A claim (here by B) makes it live: no TTLs, and the record saved at release. */
	c = claim(&w, &w.b, &k, false, 0);
	assert_int_equal(c->record->last_seen_ms, 123456);
	assert_int_equal(c->n_inflight, 1);
	assert_int_equal(c->n_queue, 1);
	t = c->token;
	bw_sessions_claim_free(&c);
	assert_int_equal(pttl(&w, &k, BW_KEYS_SESSION), -1);
	assert_int_equal(pttl(&w, &k, BW_KEYS_QUEUE), -1);
	assert_int_equal(pttl(&w, &k, BW_KEYS_INFLIGHT), -1);

	/* The owner's lease on the live session: TTLs as a release's, the record kept. */
	struct res tr = { 0 };
	assert_int_equal(bw_sessions_touch(w.b.s, &k, t, 200, on_done, &tr), 0);
	wait_for(&w, &tr);
	assert_int_equal(tr.rc, 0);
	want = 200000 + BW_SESSIONS_TTL_MARGIN_MS;
	s = pttl(&w, &k, BW_KEYS_SESSION);
	assert_true(s > want - 2000 && s <= want);
	f = pttl(&w, &k, BW_KEYS_INFLIGHT);
	assert_true(f > want - 2000 && f <= want);
	assert_true(pttl(&w, &k, BW_KEYS_QUEUE) > want - 2000);
	/* Only the owner's, and never 0 (that would delete it). */
	memset(&tr, 0, sizeof(tr));
	assert_int_equal(bw_sessions_touch(w.a.s, &k, t - 1, 300, on_done, &tr), 0);
	wait_for(&w, &tr);
	assert_int_equal(tr.rc, -ESTALE);
	assert_int_equal(bw_sessions_touch(w.b.s, &k, t, 0, on_done, &tr), -EINVAL);
	assert_true(pttl(&w, &k, BW_KEYS_SESSION) <= want);
	c = claim(&w, &w.b, &k, false, 0);
	assert_int_equal(c->record->last_seen_ms, 123456);
	t = c->token;
	bw_sessions_claim_free(&c);

	/* Never expires: released without TTLs. */
	assert_int_equal(release(&w, &w.b, &k, t, BW_SESSIONS_EXPIRY_NEVER, NULL), 0);
	assert_int_equal(pttl(&w, &k, BW_KEYS_SESSION), -1);
	assert_int_equal(pttl(&w, &k, BW_KEYS_QUEUE), -1);

	/* Expiry 0 (or a clean session): everything goes, and later writes are fenced. */
	assert_int_equal(release(&w, &w.b, &k, t, 0, &rec.s), 0);
	assert_int_equal(exists(&w, &k, BW_KEYS_SESSION), 0);
	assert_int_equal(exists(&w, &k, BW_KEYS_QUEUE), 0);
	assert_int_equal(exists(&w, &k, BW_KEYS_INFLIGHT), 0);
	assert_int_equal(
	        push(&w, &w.b, &k, t, head(5, 0, 0), "z", 10, BW_SESSIONS_REFUSE_NEW, NULL),
	        -ESTALE);
	assert_int_equal(exists(&w, &k, BW_KEYS_QUEUE), 0);

	/* A session whose keys expired is new to the next claim, and fences its old owner. */
	c = claim(&w, &w.a, &k, false, 0);
	t = c->token;
	bw_sessions_claim_free(&c);
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(1, 0, 0), "x", 10, BW_SESSIONS_REFUSE_NEW, NULL), 0);
	redisReply *r = redisCommand(w.c, "PEXPIRE bw:{acme}:session:sleeper 1");
	freeReplyObject(r);
	usleep(20000);
	c = claim(&w, &w.b, &k, false, 0);
	assert_false(c->existed);
	assert_int_equal(c->n_queue, 0); /* the queue that outlived its hash is gone too */
	bw_sessions_claim_free(&c);
	assert_int_equal(ack(&w, &w.a, &k, t, 1, NULL), -ESTALE);
	world_end(&w);
}

static void test_clean_start_and_drop(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "cleaner");
	struct session_rec rec;
	uint64_t v;
	(void)state;

	world_start(&w, "clean");
	redisContext *sub = subscriber(&w);
	redisReply *r;
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);
	session_rec(&rec, "acme", "cleaner", "c");
	assert_int_equal(save(&w, &w.a, &k, t, &rec.s), 0);
	assert_int_equal(push(&w, &w.a, &k, t, head(1, 4, BW_SESSIONS_PUBLISH_SENT), "x", 10,
	                      BW_SESSIONS_REFUSE_NEW, NULL),
	                 0);
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(2, 0, 0), "y", 10, BW_SESSIONS_REFUSE_NEW, NULL), 0);

	/* Clean start: what it held is gone, atomically with the claim. */
	c = claim(&w, &w.a, &k, true, 0);
	assert_true(c->existed);
	assert_null(c->record);
	assert_int_equal(c->n_inflight + c->n_queue, 0);
	assert_int_equal(c->last_seq, 0);
	t = c->token;
	bw_sessions_claim_free(&c);
	assert_int_equal(exists(&w, &k, BW_KEYS_QUEUE), 0);
	assert_int_equal(exists(&w, &k, BW_KEYS_INFLIGHT), 0);
	/* The sequence starts again. */
	assert_int_equal(
	        push(&w, &w.a, &k, t, head(1, 0, 0), "z", 10, BW_SESSIONS_REFUSE_NEW, NULL), 0);

	/* Dropped by the owner with its token: gone, no note (nobody else held it). */
	assert_int_equal(drop(&w, &w.a, &k, t, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(exists(&w, &k, BW_KEYS_SESSION) + exists(&w, &k, BW_KEYS_QUEUE), 0);
	assert_int_equal(drop(&w, &w.a, &k, t, &v), -ESTALE);
	assert_int_equal(drop(&w, &w.a, &k, 0, &v), 0);
	assert_int_equal(v, 0);

	/* Dropped by B with token 0 (kick --discard) while A owns it: A is told. */
	c = claim(&w, &w.a, &k, false, 0);
	t = c->token;
	bw_sessions_claim_free(&c);
	assert_int_equal(drop(&w, &w.b, &k, 0, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(exists(&w, &k, BW_KEYS_SESSION), 0);
	assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
	struct bw_keys_takeover n;
	assert_int_equal(bw_keys_takeover_parse(r->element[2]->str, r->element[2]->len, &n), 0);
	assert_memory_equal(n.node, NODE_B, BW_KEYS_NODE_LEN);
	assert_true(n.token > t);
	freeReplyObject(r);
	assert_int_equal(save(&w, &w.a, &k, t, &rec.s), -ESTALE);
	redisFree(sub);
	world_end(&w);
}

static void test_corrupt_values(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "broken");
	char skey[64], qkey[64], ikey[64];
	(void)state;

	world_start(&w, "corrupt");
	key(skey, &k, BW_KEYS_SESSION);
	key(qkey, &k, BW_KEYS_QUEUE);
	key(ikey, &k, BW_KEYS_INFLIGHT);
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);
	for (uint64_t i = 1; i <= 3; i++)
		assert_int_equal(push(&w, &w.a, &k, t, head(i, 0, 0), "ok", 10,
		                      BW_SESSIONS_REFUSE_NEW, NULL),
		                 0);
	assert_int_equal(push(&w, &w.a, &k, t, head(4, 9, BW_SESSIONS_PUBLISH_SENT), "ok", 10,
	                      BW_SESSIONS_REFUSE_NEW, NULL),
	                 0);

	/* Entries that are not entries, one of the wrong set, a packet id twice. */
	uint8_t hb[BW_SESSIONS_HEAD_LEN];
	struct bw_sessions_head h = head(5, 0, 0);
	bw_sessions_head_pack(&h, hb);
	redisReply *r = redisCommand(w.c, "ZADD %s 1.5 %b", qkey, hb, sizeof(hb)); /* no message */
	freeReplyObject(r);
	r = redisCommand(w.c, "ZADD %s 1.6 short", qkey);
	freeReplyObject(r);
	StoredMessage m = message("acme", "t", "q", 1);
	uint8_t *buf;
	size_t len;
	h = head(6, 0, 0);
	assert_int_equal(bw_sessions_entry_encode(&h, &m, &buf, &len), 0);
	r = redisCommand(w.c, "ZADD %s 6 %b", ikey, buf, len); /* queued, in the window */
	freeReplyObject(r);
	free(buf);
	h = head(7, 9, BW_SESSIONS_PUBLISH_SENT); /* packet id 9 again */
	assert_int_equal(bw_sessions_entry_encode(&h, &m, &buf, &len), 0);
	r = redisCommand(w.c, "ZADD %s 7 %b", ikey, buf, len);
	freeReplyObject(r);
	free(buf);
	m.tenant = "beta";
	h = head(8, 0, 0);
	assert_int_equal(bw_sessions_entry_encode(&h, &m, &buf, &len), 0);
	r = redisCommand(w.c, "ZADD %s 8 %b", qkey, buf, len); /* another tenant's message */
	freeReplyObject(r);
	free(buf);

	c = claim(&w, &w.a, &k, false, 0);
	assert_int_equal(c->n_bad, 5);
	assert_int_equal(c->n_queue, 3);
	assert_int_equal(c->n_inflight, 1);
	expect_entry(&c->inflight[0], 4, 9, BW_SESSIONS_PUBLISH_SENT, "ok");
	t = c->token;
	bw_sessions_claim_free(&c);
	assert_int_equal(STAT(&w.a, bad), 5);

	/* A record that is not one: the claim stands, with its error and token. */
	r = redisCommand(w.c, "HSET %s record %b", skey, "\x08\x01\x12\xff", (size_t)4);
	freeReplyObject(r);
	c = claim(&w, &w.a, &k, false, -EBADMSG);
	assert_non_null(c);
	assert_true(c->token > t);
	assert_null(c->record);
	assert_int_equal(c->n_queue + c->n_inflight, 0);
	t = c->token;
	bw_sessions_claim_free(&c);
	/* One the rules refuse: another client's. */
	struct session_rec rec;
	session_rec(&rec, "acme", "someone-else", "x");
	assert_int_equal(bw_record_session_encode(&rec.s, &buf, &len), 0);
	r = redisCommand(w.c, "HSET %s record %b", skey, buf, len);
	freeReplyObject(r);
	free(buf);
	c = claim(&w, &w.a, &k, false, -EINVAL);
	t = c->token;
	bw_sessions_claim_free(&c);
	/* The owner saves over it, and all is well again. */
	session_rec(&rec, "acme", "broken", "x");
	assert_int_equal(save(&w, &w.a, &k, t, &rec.s), 0);
	c = claim(&w, &w.a, &k, false, 0);
	assert_non_null(c->record);
	bw_sessions_claim_free(&c);
	/* Not a hash at all: an error reply, counted. */
	r = redisCommand(w.c, "DEL %s", skey);
	freeReplyObject(r);
	r = redisCommand(w.c, "SET %s x", skey);
	freeReplyObject(r);
	c = claim(&w, &w.a, &k, false, -EIO);
	assert_null(c);
	assert_true(STAT(&w.a, failed) >= 1);
	world_end(&w);
}

/* Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, or of it all. */
static unsigned slot(const char *key, size_t len)
{
	size_t s = 0, e = len;
	const char *open = memchr(key, '{', len);

	if (open) {
		const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
		if (close && close > open + 1) {
			s = (size_t)(open + 1 - key);
			e = (size_t)(close - key);
		}
	}
	uint16_t crc = 0;
	for (size_t i = s; i < e; i++) {
		crc ^= (uint16_t)((uint8_t)key[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc & 16383;
}

static void test_odd_client_ids(void **state)
{
	struct world w;
	static char big[BW_KEYS_CLIENT_ID_MAX + 2];
	static char kb[BW_KEYS_SESSION_MAX];
	(void)state;

	/* 65535 bytes: the largest id; one more is refused. */
	memset(big, 'x', BW_KEYS_CLIENT_ID_MAX);
	big[0] = '{';
	big[BW_KEYS_CLIENT_ID_MAX - 1] = '}';
	const char *ids[] = { "a b c",       "{x}",      "}{",     "a:b:c", "{acme}",
		              "x}:retained", "é ü 漢字", "*?[]\\", big };
	assert_int_equal(slot("123456789", 9), 0x31c3 & 16383); /* the CRC's check value */

	world_start(&w, "odd");
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct bw_sessions_key k = key_of("other", ids[i]);
		char epoch[BW_KEYS_MAX];
		int en = bw_keys_session_epoch(epoch, sizeof(epoch), "bw", "other");
		unsigned want = slot(epoch, (size_t)en);

		/* The id as it is, after the tag; every key in the tenant's slot. */
		for (int kind = BW_KEYS_SESSION; kind <= BW_KEYS_INFLIGHT; kind++) {
			size_t n = key(kb, &k, (enum bw_keys_session_kind)kind);
			assert_int_equal(n, strlen(kb));
			assert_memory_equal(kb + n - k.id_len, ids[i], k.id_len);
			assert_int_equal(slot(kb, n), want);
		}
		/* Read back from the session's key; never taken for a retained hash. */
		size_t n = key(kb, &k, BW_KEYS_SESSION);
		const uint8_t *id;
		size_t id_len;
		assert_int_equal(bw_keys_session_client(kb, n, "bw", "other", &id, &id_len), 0);
		assert_int_equal(id_len, k.id_len);
		assert_memory_equal(id, ids[i], id_len);
		char tenant[BW_TENANT_NAME_MAX + 1];
		assert_int_equal(bw_keys_retained_tenant(kb, n, "bw", tenant, sizeof(tenant)),
		                 -EINVAL);

		/* A round trip through Redis. */
		struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
		uint64_t t = c->token;
		bw_sessions_claim_free(&c);
		struct session_rec rec;
		session_rec(&rec, "other", ids[i], "f");
		assert_int_equal(save(&w, &w.a, &k, t, &rec.s), 0);
		assert_int_equal(push(&w, &w.a, &k, t, head(1, 0, 0), ids[i], 10,
		                      BW_SESSIONS_REFUSE_NEW, NULL),
		                 0);
		c = claim(&w, &w.b, &k, false, 0);
		assert_string_equal(c->prev_owner, NODE_A);
		assert_string_equal(c->record->client_id, ids[i]);
		assert_int_equal(c->n_queue, 1);
		expect_entry(&c->queue[0], 1, 0, 0, ids[i]);
		bw_sessions_claim_free(&c);
		assert_int_equal(exists(&w, &k, BW_KEYS_SESSION), 1);
	}
	/* The tenant's sessions, by SCAN: one hash each, and nothing else. */
	char match[BW_KEYS_MAX];
	bw_keys_session_match(match, sizeof(match), "bw", "other");
	redisReply *r = redisCommand(w.c, "SCAN 0 MATCH %s COUNT 1000", match);
	assert_int_equal(r->element[1]->elements, sizeof(ids) / sizeof(ids[0]));
	freeReplyObject(r);

	/* Too long, empty, not UTF-8, a NUL inside: no key, no call. */
	big[BW_KEYS_CLIENT_ID_MAX] = 'x';
	struct bw_sessions_key bad[] = { key_of("other", big),
		                         key_of("other", ""),
		                         { "other", U("\xc0\x80"), 2 },
		                         { "other", U("a\0"), 2 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct res res = { 0 };
		assert_int_equal(bw_keys_session(kb, sizeof(kb), "bw", "other", BW_KEYS_SESSION,
		                                 bad[i].id, bad[i].id_len),
		                 -EINVAL);
		assert_int_equal(bw_sessions_claim(w.a.s, &bad[i], false, on_claimed, &res),
		                 -EINVAL);
		RUN_UNTIL(&w, false, 20);
		assert_int_equal(res.n, 0);
	}
	big[BW_KEYS_CLIENT_ID_MAX] = '\0';
	world_end(&w);
}

/*
 * Calls made faster than Redis answers batch: a session's pushes, acks and
 * marks that wait go as one script, in order, each answered on its own;
 * a refusal inside a batch is that call's alone, a fence is every call's.
 */
static void test_batches(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "busy");
	enum { N = 300 };
	static struct res r[N + 8];
	(void)state;

	memset(r, 0, sizeof(r));
	world_start(&w, "batch");
	struct bw_sessions_claim *c = claim(&w, &w.a, &k, false, 0);
	uint64_t t = c->token;
	bw_sessions_claim_free(&c);

	/* N pushes and an ack of every third, made at once: no answer comes between. */
	StoredMessage m = message("acme", "t/x", "payload", 1);
	int n = 0;
	for (uint64_t i = 1; i <= N; i++) {
		struct bw_sessions_head h = head(i, 0, 0);
		assert_int_equal(bw_sessions_push(w.a.s, &k, t, &h, &m, 1000,
		                                  BW_SESSIONS_REFUSE_NEW, on_done, &r[n++]),
		                 0);
		if (i % 3 == 0)
			assert_int_equal(bw_sessions_ack(w.a.s, &k, t, i, NULL, NULL), 0);
	}
	/* One marked sent, and one refused past a bound: the others still go. */
	struct bw_sessions_head h = head(1, 7, BW_SESSIONS_PUBLISH_SENT);
	assert_int_equal(bw_sessions_mark(w.a.s, &k, t, &h, on_done, &r[n++]), 0);
	h = head(N + 1, 0, 0);
	assert_int_equal(bw_sessions_push(w.a.s, &k, t, &h, &m, N - N / 3 - 1,
	                                  BW_SESSIONS_REFUSE_NEW, on_done, &r[n++]),
	                 0);
	h = head(N + 2, 0, 0);
	assert_int_equal(bw_sessions_push(w.a.s, &k, t, &h, &m, 1000, BW_SESSIONS_REFUSE_NEW,
	                                  on_done, &r[n++]),
	                 0);
	RUN_UNTIL(&w, r[n - 1].n > 0, 5000);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].n, 1);
		assert_int_equal(r[i].rc, 0);
	}
	assert_int_equal(r[N].rc, 0);
	assert_int_equal(r[N].value, 1); /* the mark found its entry */
	assert_int_equal(r[N + 1].rc, -ENOBUFS);
	assert_int_equal(r[N + 2].rc, 0);
	assert_true(STAT(&w.a, batched) > 0);
	assert_true(STAT(&w.a, requests) < (uint64_t)N);
	assert_int_equal(bw_sessions_held(w.a.s), 0);

	/* What Redis holds: every push but the acked and the refused, in order. */
	c = claim(&w, &w.b, &k, false, 0);
	assert_int_equal(c->last_seq, N + 2);
	assert_int_equal(c->n_inflight, 1);
	expect_entry(&c->inflight[0], 1, 7, BW_SESSIONS_PUBLISH_SENT, "payload");
	assert_int_equal(c->n_queue, N - N / 3);
	uint64_t prev = 1;
	for (size_t i = 0; i < c->n_queue; i++) {
		assert_true(c->queue[i].h.seq > prev);
		assert_true(c->queue[i].h.seq % 3 != 0);
		prev = c->queue[i].h.seq;
	}
	assert_int_equal(prev, N + 2);
	bw_sessions_claim_free(&c);

	/* An ack whose push still waits unsent takes it out: neither reaches Redis. */
	k = key_of("acme", "quick");
	c = claim(&w, &w.a, &k, false, 0);
	uint64_t tq = c->token, elided = STAT(&w.a, elided);
	bw_sessions_claim_free(&c);
	memset(r, 0, sizeof(r));
	for (uint64_t i = 1; i <= 20; i++) {
		h = head(i, 0, 0);
		assert_int_equal(bw_sessions_push(w.a.s, &k, tq, &h, &m, 1000,
		                                  BW_SESSIONS_REFUSE_NEW, on_done, &r[i]),
		                 0);
	}
	assert_int_equal(bw_sessions_ack(w.a.s, &k, tq, 20, on_done, &r[0]), 0);
	assert_int_equal(r[0].n + r[20].n, 0); /* never from inside the call */
	RUN_UNTIL(&w, r[19].n > 0 && r[20].n > 0 && r[0].n > 0, 5000);
	assert_int_equal(STAT(&w.a, elided), elided + 1);
	assert_int_equal(r[20].rc, 0);
	assert_int_equal(r[0].rc, 0);
	assert_int_equal(r[0].value, 1);
	c = claim(&w, &w.b, &k, false, 0);
	assert_int_equal(c->n_queue, 19);
	assert_int_equal(c->queue[18].h.seq, 19);
	bw_sessions_claim_free(&c);
	k = key_of("acme", "busy");

	/* A's calls, batched or not, are fenced now: every one of them. */
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 40; i++)
		assert_int_equal(bw_sessions_ack(w.a.s, &k, t, (uint64_t)i + 1, on_done, &r[i]), 0);
	RUN_UNTIL(&w, r[39].n > 0, 5000);
	for (int i = 0; i < 40; i++)
		assert_int_equal(r[i].rc, -ESTALE);
	world_end(&w);
}

/*
 * No client, or a client that is down: a claim is refused at once and
 * never called back; a write is held, and called back with -ECANCELED
 * when the store is freed.
 */
static void test_not_connected(void **state)
{
	struct bw_sessions *s;
	struct bw_sessions_config cfg = { .prefix = "bw", .node = NODE_A };
	struct bw_sessions_key k = key_of("acme", "x");
	struct res r = { 0 };
	struct bw_ring ring;
	struct bw_redis *rd;
	char sock[128];
	(void)state;

	assert_int_equal(bw_sessions_new(&s, &cfg), 0);
	assert_int_equal(bw_sessions_claim(s, &k, false, on_claimed, &r), -ENOTCONN);
	assert_int_equal(bw_sessions_ack(s, &k, 1, 1, on_done, &r), 0);
	assert_int_equal(bw_sessions_held(s), 1);
	/* A bad request is refused for what it is, before the connection. */
	assert_int_equal(bw_sessions_ack(s, &k, 0, 1, on_done, &r), -EINVAL);

	snprintf(sock, sizeof(sock), "%s/nobody.sock", bw_test_dir);
	struct bw_redis_config rc = { 0 };
	memcpy(rc.path, sock, strlen(sock) + 1);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	assert_int_equal(bw_redis_new(&rd, &rc, &ring), 0);
	bw_sessions_attach(s, rd);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(&ring, 10) >= 0);
	assert_int_equal(bw_sessions_claim(s, &k, false, on_claimed, &r), -ENOTCONN);
	assert_int_equal(bw_sessions_drop(s, &k, 0, on_done, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(bw_sessions_held(s), 2);
	assert_int_equal(atomic_load(&bw_sessions_stats(s)->requests), 0);
	bw_sessions_attach(s, NULL);
	bw_redis_free(&rd, true);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(&ring, 10) >= 0);
	bw_ring_exit(&ring);
	bw_sessions_free(&s);
	assert_null(s);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.rc, -ECANCELED);

	/* At most held_max calls held: past it, -EAGAIN, counted. */
	cfg.held_max = 2;
	assert_int_equal(bw_sessions_new(&s, &cfg), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bw_sessions_ack(s, &k, 1, 1, on_done, &r), 0);
	assert_int_equal(bw_sessions_ack(s, &k, 1, 2, NULL, NULL), 0);
	assert_int_equal(bw_sessions_ack(s, &k, 1, 3, on_done, &r), -EAGAIN);
	assert_int_equal(atomic_load(&bw_sessions_stats(s)->overflow), 1);
	assert_int_equal(atomic_load(&bw_sessions_stats(s)->held), 2);
	bw_sessions_free(&s);
	assert_int_equal(r.n, 1); /* the one with a callback */
	cfg.held_max = 0;

	cfg.node = "xyz";
	assert_int_equal(bw_sessions_new(&s, &cfg), -EINVAL);
	cfg.node = NODE_A;
	cfg.prefix = "a b";
	assert_int_equal(bw_sessions_new(&s, &cfg), -EINVAL);
}

/*
 * Calls in flight when the client goes: the claim is called back once,
 * with an error; the writes are held and go again on the next client, in
 * order, and a push whose first send was made counts as done.
 */
static void test_client_gone(void **state)
{
	struct world w;
	struct bw_sessions_key k = key_of("acme", "inflight");
	struct res r[3] = { 0 };
	(void)state;

	world_start(&w, "gone");
	assert_int_equal(bw_sessions_claim(w.a.s, &k, false, on_claimed, &r[0]), 0);
	assert_int_equal(bw_sessions_ack(w.a.s, &k, 1, 1, on_done, &r[1]), 0);
	assert_int_equal(bw_sessions_drop(w.a.s, &k, 0, on_done, &r[2]), 0);
	bw_sessions_attach(w.a.s, NULL);
	bw_redis_free(&w.a.r, true);
	assert_int_equal(r[0].n, 1);
	assert_int_equal(r[0].rc, -ECONNRESET);
	assert_null(r[0].c);
	assert_int_equal(r[1].n + r[2].n, 0);
	assert_int_equal(bw_sessions_held(w.a.s), 2);

	/* A new client: the held ack (fenced: nobody claimed) and drop go out. */
	struct bw_redis_config rc = { .backoff_min_ms = 20, .backoff_max_ms = 100 };
	memcpy(rc.path, w.sock, strlen(w.sock) + 1);
	assert_int_equal(bw_redis_new(&w.a.r, &rc, &w.ring), 0);
	bw_sessions_attach(w.a.s, w.a.r);
	RUN_UNTIL(&w, r[2].n > 0 || (bw_redis_up(w.a.r) && (bw_sessions_tick(w.a.s), false)), 3000);
	assert_int_equal(r[1].n, 1);
	assert_int_equal(r[1].rc, -ESTALE);
	assert_int_equal(r[2].n, 1);
	assert_int_equal(r[2].rc, 0);
	assert_int_equal(bw_sessions_held(w.a.s), 0);

	/* The fenced hook named the held ack's session and token. */
	assert_int_equal(w.fenced, 1);
	assert_int_equal(w.fenced_token, 1);
	world_end(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_encoding),
		cmocka_unit_test(test_record_shape),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_claim_parse_shapes),
		cmocka_unit_test(test_claim_fresh_and_resume),
		cmocka_unit_test(test_takeover_fences),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_ack_and_mark),
		cmocka_unit_test(test_release_ttl),
		cmocka_unit_test(test_clean_start_and_drop),
		cmocka_unit_test(test_corrupt_values),
		cmocka_unit_test(test_odd_client_ids),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_not_connected),
		cmocka_unit_test(test_client_gone),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, bw_test_dir_setup, bw_test_dir_teardown);
}
