/*
 * A worker's retained writes to Redis (node/state/store.h): the queue's
 * bound, replacement of a waiting write and the refusals counted, with no
 * Redis at all; then against real redis-server processes (unix sockets in
 * a temporary directory), the test driving a bw_ring itself: writes reach
 * the tenant's hash as checked records, in order, each announced on the
 * channel with its note; writes made while Redis is not there yet go out
 * once it is; Redis killed under writes and started again (the writes
 * made meanwhile arrive, the last of each topic wins); an error reply
 * retried until Redis takes the write. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/store/record.h"
#include "node/core/hub.h"
#include "node/core/msg.h"
#include "node/io/ring.h"
#include "node/state/keys.h"
#include "node/state/store.h"
#include "redis_server.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE "00112233445566778899aabbccddeeff"
#define KEY  "bw:{default}:retained"
#define U(s) ((const uint8_t *)(s))

static const char *tenants[] = { "default", "acme" };

/* Runs ring, ticking s every 10 ms, until cond holds or ms pass. */
#define RUN_UNTIL(ring, s, cond, ms)                                                               \
	do {                                                                                       \
		uint64_t dl_ = bw_test_now_ms() + (ms);                                            \
		while (!(cond) && bw_test_now_ms() < dl_) {                                        \
			assert_true(bw_ring_run((ring), 10) >= 0);                                 \
			bw_store_tick((s), bw_test_now_ms());                                      \
		}                                                                                  \
	} while (0)

#define STAT(s, f) atomic_load(&bw_store_stats(s)->f)

static struct bw_hub *hub_new(void)
{
	struct bw_hub_config c = {
		.n_workers = 1, .tenant = tenants, .n_tenants = 2, .retained = { 100, 1 << 20, 16 }
	};
	struct bw_hub *h = bw_hub_new(&c);
	assert_non_null(h);
	return h;
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.sock", bw_test_dir, name);
}

static struct bw_store *store_new(struct bw_hub *hub, const char *sock, uint32_t max)
{
	struct bw_redis_config rc = { .backoff_min_ms = 20, .backoff_max_ms = 100 };
	struct bw_store_config c = {
		.redis = &rc, .prefix = "bw", .node = NODE, .queue_max = max, .hub = hub
	};
	struct bw_store *s;

	assert_true(strlen(sock) < sizeof(rc.path));
	memcpy(rc.path, sock, strlen(sock) + 1);
	assert_int_equal(bw_store_new(&s, &c), 0);
	return s;
}

static struct bw_msg *msg(const char *topic, const char *payload)
{
	struct bw_msg *m = bw_msg_new(topic, strlen(topic), NULL, payload, strlen(payload), 1, true,
	                              bw_test_now_ms());
	assert_non_null(m);
	return m;
}

static int put(struct bw_store *s, const char *topic, const char *payload)
{
	struct bw_msg *m = payload ? msg(topic, payload) : NULL;
	int rc = bw_store_write(s, 0, U(topic), strlen(topic), m);

	bw_msg_unref(&m);
	return rc;
}

/* ---- the test's own view of Redis (blocking hiredis) ------------------------------- */

static redisContext *look(const char *sock)
{
	redisContext *c = redisConnectUnix(sock);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

/* The hash's value of topic as a decoded record (NULL: none). */
static StoredMessage *stored(redisContext *c, const char *topic)
{
	redisReply *r = redisCommand(c, "HGET %s %s", KEY, topic);
	StoredMessage *m = NULL;

	assert_non_null(r);
	if (r->type == REDIS_REPLY_STRING)
		assert_int_equal(bw_record_message_decode((const uint8_t *)r->str, r->len, &m), 0);
	else
		assert_int_equal(r->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	return m;
}

static void expect_payload(redisContext *c, const char *topic, const char *payload)
{
	StoredMessage *m = stored(c, topic);

	if (!payload) {
		assert_null(m);
		return;
	}
	assert_non_null(m);
	assert_string_equal(m->tenant, "default");
	assert_string_equal(m->topic, topic);
	assert_int_equal(m->payload.len, strlen(payload));
	assert_memory_equal(m->payload.data, payload, strlen(payload));
	assert_string_equal(m->origin_node, NODE);
	assert_true(m->retain);
	assert_int_equal(m->qos, 1);
	bw_record_message_free(&m);
}

static long long hlen(redisContext *c)
{
	redisReply *r = redisCommand(c, "HLEN %s", KEY);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	long long n = r->integer;
	freeReplyObject(r);
	return n;
}

/* ---- without Redis ------------------------------------------------------------------- */

static void test_queue_bound_and_replacement(void **state)
{
	struct bw_hub *hub = hub_new();
	char sock[128];
	(void)state;

	sock_path(sock, sizeof(sock), "none");
	struct bw_store *s = store_new(hub, sock, 2);

	assert_true(bw_store_may_write(s, 0, U("a"), 1));
	assert_int_equal(put(s, "a", "1"), 0);
	assert_int_equal(put(s, "b", "1"), 0);
	assert_int_equal(bw_store_pending(s), 2);
	assert_int_equal(STAT(s, queued), 2);

	/* Full: a new topic is refused and counted; a waiting one may be replaced. */
	assert_false(bw_store_may_write(s, 0, U("c"), 1));
	assert_false(bw_store_may_write(s, 1, U("a"), 1)); /* another tenant's "a" */
	assert_int_equal(STAT(s, refused), 2);
	assert_true(bw_store_may_write(s, 0, U("a"), 1));
	assert_int_equal(put(s, "a", "2"), 0);
	assert_int_equal(put(s, "a", NULL), 0); /* a clear replaces too */
	assert_int_equal(STAT(s, replaced), 2);
	assert_int_equal(bw_store_pending(s), 2);
	assert_int_equal(put(s, "c", "1"), -ENOBUFS);
	assert_int_equal(bw_store_write(s, 0, U(""), 0, NULL), -EINVAL);
	assert_int_equal(STAT(s, up), 0);

	/* The writes hold their messages' references until freed. */
	struct bw_msg *m = msg("b", "3");
	assert_int_equal(bw_store_write(s, 0, U("b"), 1, m), 0);
	assert_int_equal(bw_msg_refs(m), 2);
	bw_store_free(&s);
	assert_null(s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);

	/* What the config must hold. */
	struct bw_redis_config rc = { .path = "/x" };
	struct bw_store_config c = {
		.redis = &rc, .prefix = "bw", .node = NODE, .queue_max = 1, .hub = hub
	};
	c.prefix = "a:b";
	assert_int_equal(bw_store_new(&s, &c), -EINVAL);
	c.prefix = "bw";
	c.node = "0123";
	assert_int_equal(bw_store_new(&s, &c), -EINVAL);
	c.node = NODE;
	c.queue_max = 0;
	assert_int_equal(bw_store_new(&s, &c), -EINVAL);
	bw_hub_free(&hub, NULL, NULL);
}

/* ---- against Redis --------------------------------------------------------------------- */

static void store_end(struct bw_ring *ring, struct bw_store **s)
{
	bw_store_detach(*s, true);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(ring, 10) >= 0); /* the cancelled polls come back */
	bw_store_free(s);
}

static void test_writes_reach_redis_announced(void **state)
{
	struct bw_hub *hub = hub_new();
	struct bw_ring ring;
	char sock[128];
	(void)state;

	sock_path(sock, sizeof(sock), "write");
	pid_t pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	redisContext *c = look(sock), *sub = look(sock);
	redisReply *r = redisCommand(sub, "SUBSCRIBE bw:retained");
	assert_non_null(r);
	freeReplyObject(r);

	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	struct bw_store *s = store_new(hub, sock, 100);
	assert_int_equal(bw_store_attach(s, &ring), 0);
	assert_int_equal(bw_store_attach(s, &ring), -EALREADY);
	/* Made while connecting: held, sent once up. */
	assert_int_equal(put(s, "a/1", "one"), 0);
	assert_int_equal(put(s, "a/2", "two"), 0);
	RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 3000);
	assert_int_equal(bw_store_pending(s), 0);
	assert_int_equal(STAT(s, up), 1);
	assert_int_equal(put(s, "a 3", "three"), 0);
	assert_int_equal(put(s, "a/1", NULL), 0);
	/* A message with an expiry is stored with its absolute time. */
	struct bw_msg *m = msg("e", "x");
	m->expires_at_ms = bw_test_now_ms() + 60000;
	assert_int_equal(bw_store_write(s, 1, U("e"), 1, m), 0);
	bw_msg_unref(&m);
	RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 3000);
	assert_int_equal(STAT(s, written), 5);
	assert_int_equal(STAT(s, queued), 0);
	assert_int_equal(STAT(s, errors), 0);

	expect_payload(c, "a/1", NULL);
	expect_payload(c, "a/2", "two");
	expect_payload(c, "a 3", "three");
	assert_int_equal(hlen(c), 2);
	r = redisCommand(c, "HGET bw:{acme}:retained e");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	StoredMessage *rec;
	assert_int_equal(bw_record_message_decode((const uint8_t *)r->str, r->len, &rec), 0);
	freeReplyObject(r);
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	uint64_t wall_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
	assert_true(rec->has_expiry_at_ms);
	assert_true(rec->expiry_at_ms > wall_ms + 58000 && rec->expiry_at_ms < wall_ms + 61000);
	assert_true(rec->has_created_at_ms);
	assert_string_equal(rec->tenant, "acme");
	bw_record_message_free(&rec);

	/* Each write announced, in order, with its note. */
	const char *want[][2] = { { "default", "a/1" },
		                  { "default", "a/2" },
		                  { "default", "a 3" },
		                  { "default", "a/1" },
		                  { "acme", "e" } };
	for (size_t i = 0; i < 5; i++) {
		struct bw_keys_note n;

		assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_ARRAY);
		assert_int_equal(r->elements, 3);
		assert_string_equal(r->element[0]->str, "message");
		assert_string_equal(r->element[1]->str, "bw:retained");
		assert_int_equal(bw_keys_note_parse(r->element[2]->str, r->element[2]->len, &n), 0);
		assert_memory_equal(n.node, NODE, BW_KEYS_NODE_LEN);
		assert_int_equal(n.tenant_len, strlen(want[i][0]));
		assert_memory_equal(n.tenant, want[i][0], n.tenant_len);
		assert_int_equal(n.topic_len, strlen(want[i][1]));
		assert_memory_equal(n.topic, want[i][1], n.topic_len);
		freeReplyObject(r);
	}

	/* A Redis error reply: the write is held and sent again until it is taken. */
	r = redisCommand(c, "SET bw:{acme}:retained not-a-hash");
	freeReplyObject(r);
	m = msg("f", "y");
	assert_int_equal(bw_store_write(s, 1, U("f"), 1, m), 0);
	bw_msg_unref(&m);
	RUN_UNTIL(&ring, s, STAT(s, failed) >= 2, 3000);
	assert_true(STAT(s, failed) >= 2);
	assert_true(STAT(s, errors) >= 2);
	assert_int_equal(bw_store_pending(s), 1);
	char why[BW_REDIS_ERROR_MAX];
	bw_store_last_error(s, why, sizeof(why));
	assert_non_null(strstr(why, "WRONGTYPE"));
	r = redisCommand(c, "DEL bw:{acme}:retained");
	freeReplyObject(r);
	RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 3000);
	assert_int_equal(bw_store_pending(s), 0);
	r = redisCommand(c, "HEXISTS bw:{acme}:retained f");
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);

	/* A deleted tenant's hash goes, behind the writes made before. */
	assert_int_equal(put(s, "p/1", "x"), 0);
	assert_int_equal(bw_store_purge(s, 0), 0);
	RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 3000);
	assert_int_equal(bw_store_pending(s), 0);
	assert_int_equal(hlen(c), 0);
	r = redisCommand(c, "EXISTS " KEY);
	assert_int_equal(r->integer, 0);
	freeReplyObject(r);

	store_end(&ring, &s);
	bw_ring_exit(&ring);
	redisFree(c);
	redisFree(sub);
	bw_test_redis_kill(pid);
	bw_hub_free(&hub, NULL, NULL);
}

static void test_redis_down_and_back(void **state)
{
	struct bw_hub *hub = hub_new();
	struct bw_ring ring;
	char sock[128];
	(void)state;

	/* No Redis at first: writes are held, in order, the newest of a topic kept. */
	sock_path(sock, sizeof(sock), "later");
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	struct bw_store *s = store_new(hub, sock, 1000);
	assert_int_equal(bw_store_attach(s, &ring), 0);
	RUN_UNTIL(&ring, s, false, 100);
	assert_int_equal(STAT(s, up), 0);
	char why[BW_REDIS_ERROR_MAX];
	bw_store_last_error(s, why, sizeof(why));
	assert_non_null(strstr(why, "connect"));
	for (int i = 0; i < 50; i++) {
		char topic[16], val[16];
		snprintf(topic, sizeof(topic), "t/%d", i % 10);
		snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(put(s, topic, val), 0);
	}
	assert_int_equal(bw_store_pending(s), 10);
	assert_int_equal(STAT(s, replaced), 40);
	pid_t pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 5000);
	assert_int_equal(bw_store_pending(s), 0);
	redisContext *c = look(sock);
	for (int i = 0; i < 10; i++) {
		char topic[16], val[16];
		snprintf(topic, sizeof(topic), "t/%d", i);
		snprintf(val, sizeof(val), "v%d", 40 + i);
		expect_payload(c, topic, val);
	}
	redisFree(c);

	/* Killed under writes, started again: what was written meanwhile arrives. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 200; i++) {
			char topic[16], val[16];
			snprintf(topic, sizeof(topic), "k/%d", i % 20);
			snprintf(val, sizeof(val), "r%d-%d", round, i);
			assert_int_equal(put(s, topic, val), 0);
			if (i == 100) {
				bw_test_redis_kill(pid);
				RUN_UNTIL(&ring, s, false, 30);
			}
		}
		RUN_UNTIL(&ring, s, STAT(s, up) == 0, 2000);
		assert_int_equal(STAT(s, up), 0);
		assert_true(bw_store_pending(s) > 0);
		assert_true(bw_store_pending(s) <= 200);
		pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
		RUN_UNTIL(&ring, s, bw_store_pending(s) == 0, 5000);
		assert_int_equal(bw_store_pending(s), 0);
		c = look(sock);
		for (int i = 180; i < 200; i++) {
			char topic[16], val[16];
			snprintf(topic, sizeof(topic), "k/%d", i % 20);
			snprintf(val, sizeof(val), "r%d-%d", round, i);
			expect_payload(c, topic, val);
		}
		redisFree(c);
	}
	assert_true(STAT(s, reconnects) >= 3);
	assert_true(STAT(s, failed) > 0);

	/* Writes in flight when the client goes stay held; freeing says they are lost. */
	assert_int_equal(put(s, "last", "x"), 0);
	bw_store_detach(s, true);
	assert_int_equal(bw_store_pending(s), 1);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(&ring, 10) >= 0);
	bw_store_free(&s);
	bw_ring_exit(&ring);
	bw_test_redis_kill(pid);
	bw_hub_free(&hub, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_bound_and_replacement),
		cmocka_unit_test(test_writes_reach_redis_announced),
		cmocka_unit_test(test_redis_down_and_back),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, bw_test_dir_setup, bw_test_dir_teardown);
}
