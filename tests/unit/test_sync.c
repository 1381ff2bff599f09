/*
 * The state thread (node/state/sync.h) against real redis-server
 * processes: the load at start (every tenant's hash, expired records
 * skipped and removed, values the record checks refuse skipped, keys of
 * other prefixes and types left alone); other nodes' notes set and clear
 * the hub while this node's own are ignored; Redis unreachable at start
 * (not loaded until it is there); Redis restarted empty: the reload
 * removes what Redis lost, unless the workers still hold writes, and never
 * undoes a local write made since the reload began. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/hub.h"
#include "node/core/msg.h"
#include "node/core/msgrec.h"
#include "node/state/keys.h"
#include "node/state/sync.h"
#include "redis_server.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SELF  "00000000000000000000000000000001"
#define OTHER "ffffffffffffffffffffffffffffffff"
#define U(s)  ((const uint8_t *)(s))

static const char *tenants[] = { "default" };

#define WAIT_FOR(cond, ms)                                                                         \
	do {                                                                                       \
		uint64_t dl_ = bw_test_now_ms() + (ms);                                            \
		while (!(cond) && bw_test_now_ms() < dl_)                                          \
			usleep(5000);                                                              \
	} while (0)

#define STAT(s, f) atomic_load(&bw_sync_stats(s)->f)

static struct bw_hub *hub_new(void)
{
	struct bw_hub_config c = {
		.n_workers = 1, .tenant = tenants, .n_tenants = 1, .retained = { 100, 1 << 20, 16 }
	};
	struct bw_hub *h = bw_hub_new(&c);
	assert_non_null(h);
	return h;
}

static atomic_size_t held;

static size_t held_fn(void *arg)
{
	(void)arg;
	return atomic_load(&held);
}

static struct bw_sync *sync_new(struct bw_hub *hub, const char *sock)
{
	struct bw_redis_config rc = { .backoff_min_ms = 20, .backoff_max_ms = 100 };
	struct bw_sync_config c = { .redis = &rc,
		                    .prefix = "bw",
		                    .node = SELF,
		                    .hub = hub,
		                    .held = held_fn,
		                    .drain_wait_ms = 300,
		                    .batch = 2 };
	struct bw_sync *s;
	char err[256];

	memcpy(rc.path, sock, strlen(sock) + 1);
	assert_int_equal(bw_sync_start(&s, &c, err, sizeof(err)), 0);
	return s;
}

static redisContext *look(const char *sock)
{
	redisContext *c = redisConnectUnix(sock);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static void run(redisContext *c, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

/* Stores a retained message of tenant as another node would, announced by node (NULL: not). */
static void store(redisContext *c, const char *tenant, const char *topic, const char *payload,
                  int64_t expires_in_ms, const char *node)
{
	char key[BW_KEYS_MAX];
	assert_true(bw_keys_retained(key, sizeof(key), "bw", tenant) > 0);
	if (payload) {
		struct bw_msg *m = bw_msg_new(topic, strlen(topic), NULL, payload, strlen(payload),
		                              0, true, 0);
		assert_non_null(m);
		if (expires_in_ms)
			m->expires_at_ms = (uint64_t)((int64_t)bw_test_now_ms() + expires_in_ms);
		uint8_t *v;
		size_t vlen;
		assert_int_equal(
		        bw_msgrec_encode(m, tenant, OTHER, 0, bw_msgrec_wall_offset(), &v, &vlen),
		        0);
		bw_msg_unref(&m);
		const char *argv[] = { "HSET", key, topic, (const char *)v };
		size_t lens[] = { 4, strlen(key), strlen(topic), vlen };
		run(c, 4, argv, lens);
		free(v);
	} else {
		const char *argv[] = { "HDEL", key, topic };
		size_t lens[] = { 4, strlen(key), strlen(topic) };
		run(c, 3, argv, lens);
	}
	if (node) {
		size_t nlen;
		char *note = bw_keys_note(node, tenant, U(topic), strlen(topic), &nlen);
		const char *argv[] = { "PUBLISH", "bw:retained", note };
		size_t lens[] = { 7, 11, nlen };
		run(c, 3, argv, lens);
		free(note);
	}
}

/* The payload the hub holds for topic of tenant, into buf ("" when none). */
static const char *hub_payload(struct bw_hub *h, const char *tenant, const char *topic, char *buf,
                               size_t cap)
{
	int t = bw_hub_tenant_find(h, tenant);
	struct bw_msg **v = NULL;
	size_t n = 0, vcap = 0;

	buf[0] = '\0';
	if (t < 0)
		return buf;
	if (bw_hub_retained_get(h, (uint32_t)t, U(topic), strlen(topic), &v, &n, &vcap) == 1)
		snprintf(buf, cap, "%.*s", (int)v[0]->payload.len, (const char *)v[0]->payload.p);
	for (size_t i = 0; i < n; i++)
		bw_msg_unref(&v[i]);
	free(v);
	return buf;
}

static bool hub_is(struct bw_hub *h, const char *tenant, const char *topic, const char *want)
{
	char buf[64];
	return !strcmp(hub_payload(h, tenant, topic, buf, sizeof(buf)), want);
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.sock", bw_test_dir, name);
}

static void test_load_and_notes(void **state)
{
	struct bw_hub *hub = hub_new();
	char sock[128];
	(void)state;

	sock_path(sock, sizeof(sock), "load");
	pid_t pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	redisContext *c = look(sock);
	for (int i = 0; i < 7; i++) {
		char topic[16];
		snprintf(topic, sizeof(topic), "d/%d", i);
		store(c, "default", topic, "v", 0, NULL);
	}
	store(c, "acme", "a/1", "hello", 0, NULL);
	store(c, "acme", "old", "gone", -1000, NULL);   /* expired */
	store(c, "acme", "later", "soon", 60000, NULL); /* not yet */
	const char *junk[][4] = {
		{ "HSET", "bw:{acme}:retained", "bad", "not a record" },
		{ "HSET", "bw:{acme}:retained", "bad/+", "wildcard topic" },
		{ "SET", "bw:{str}:retained", "a string", NULL },
		{ "HSET", "other:{acme}:retained", "x", "another prefix" },
		{ "HSET", "bw:{NOT-A-TENANT}:retained", "x", "y" },
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		int n = junk[i][3] ? 4 : 3;
		size_t lens[4];
		for (int k = 0; k < n; k++)
			lens[k] = strlen(junk[i][k]);
		run(c, n, junk[i], lens);
	}
	/* A record of another tenant under acme's key is not acme's. */
	store(c, "zeta", "z", "zz", 0, NULL);
	redisReply *r = redisCommand(c, "HGET bw:{zeta}:retained z");
	char *zeta = malloc(r->len);
	memcpy(zeta, r->str, r->len);
	const char *argv[] = { "HSET", "bw:{acme}:retained", "z", zeta };
	size_t lens[] = { 4, 18, 1, r->len };
	run(c, 4, argv, lens);
	free(zeta);
	freeReplyObject(r);

	struct bw_sync *s = sync_new(hub, sock);
	assert_true(bw_sync_wait_loaded(s, 5000));
	assert_int_equal(STAT(s, loaded), 1);
	assert_int_equal(STAT(s, up), 1);
	assert_int_equal(STAT(s, loads), 1);
	for (int i = 0; i < 7; i++) {
		char topic[16];
		snprintf(topic, sizeof(topic), "d/%d", i);
		assert_true(hub_is(hub, "default", topic, "v"));
	}
	assert_true(hub_is(hub, "acme", "a/1", "hello"));
	assert_true(hub_is(hub, "acme", "later", "soon"));
	assert_true(hub_is(hub, "acme", "old", ""));
	assert_true(hub_is(hub, "acme", "bad", ""));
	assert_true(hub_is(hub, "acme", "z", ""));
	assert_true(hub_is(hub, "zeta", "z", "zz"));
	assert_int_equal(bw_hub_tenant_find(hub, "str"), -1);
	assert_int_equal(STAT(s, messages), 7 + 2 + 1);
	assert_int_equal(STAT(s, bad), 3); /* not a record, a wildcard, another tenant's */
	assert_int_equal(STAT(s, expired), 1);
	r = redisCommand(c, "HEXISTS bw:{acme}:retained old");
	assert_int_equal(r->integer, 0);
	freeReplyObject(r);

	/* Another node's notes: set, replace, clear; a tenant new to the node. */
	store(c, "default", "n/1", "first", 0, OTHER);
	WAIT_FOR(hub_is(hub, "default", "n/1", "first"), 10000);
	assert_true(hub_is(hub, "default", "n/1", "first"));
	store(c, "default", "n/1", "second", 0, OTHER);
	store(c, "newco", "n/2", "x", 0, OTHER);
	WAIT_FOR(hub_is(hub, "newco", "n/2", "x"), 10000);
	assert_true(hub_is(hub, "default", "n/1", "second"));
	assert_true(hub_is(hub, "newco", "n/2", "x"));
	store(c, "default", "n/1", NULL, 0, OTHER);
	WAIT_FOR(hub_is(hub, "default", "n/1", ""), 10000);
	assert_true(hub_is(hub, "default", "n/1", ""));
	/* An expired value a note points at is not taken, and removed. */
	store(c, "default", "n/3", "late", -5, OTHER);
	WAIT_FOR(STAT(s, expired) == 2, 2000);
	assert_int_equal(STAT(s, expired), 2);
	assert_true(hub_is(hub, "default", "n/3", ""));
	/* This node's own notes are ignored: its workers set the hub already. */
	uint64_t applied = STAT(s, applied);
	store(c, "default", "own", "mine", 0, SELF);
	store(c, "default", "n/4", "after", 0, OTHER);
	WAIT_FOR(hub_is(hub, "default", "n/4", "after"), 10000);
	assert_true(hub_is(hub, "default", "own", ""));
	assert_int_equal(STAT(s, applied), applied + 1);
	/* Notes that are not notes. */
	const char *pub[] = { "PUBLISH", "bw:retained", "nonsense" };
	size_t plens[] = { 7, 11, 8 };
	run(c, 3, pub, plens);
	WAIT_FOR(STAT(s, bad) == 4, 2000);
	assert_int_equal(STAT(s, bad), 4);
	assert_int_equal(STAT(s, errors), 1); /* HSCAN of the string: WRONGTYPE */

	bw_sync_stop(&s);
	assert_null(s);
	redisFree(c);
	bw_test_redis_kill(pid);
	bw_hub_free(&hub, NULL, NULL);
}

static void test_unreachable_then_restarted(void **state)
{
	struct bw_hub *hub = hub_new();
	char sock[128], why[BW_REDIS_ERROR_MAX];
	(void)state;

	sock_path(sock, sizeof(sock), "later");
	struct bw_sync *s = sync_new(hub, sock);
	assert_false(bw_sync_wait_loaded(s, 200));
	assert_int_equal(STAT(s, up), 0);
	bw_sync_last_error(s, why, sizeof(why));
	assert_non_null(strstr(why, "connect"));
	assert_true(STAT(s, reconnects) >= 1);

	pid_t pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	redisContext *c = look(sock);
	store(c, "default", "x/1", "one", 0, NULL);
	store(c, "default", "x/2", "two", 0, NULL);
	redisFree(c);
	assert_true(bw_sync_wait_loaded(s, 5000));
	assert_true(hub_is(hub, "default", "x/1", "one"));

	/* Locally, as a worker would: a message Redis has not taken yet. */
	struct bw_msg *m = bw_msg_new("x/3", 3, NULL, "three", 5, 0, true, 0);
	assert_int_equal(bw_hub_retained_put(hub, 0, U("x/3"), 3, m), 0);
	bw_msg_unref(&m);

	/* Restarted empty while the workers hold writes: the reload removes nothing. */
	atomic_store(&held, 1);
	bw_test_redis_kill(pid);
	WAIT_FOR(STAT(s, up) == 0, 5000);
	assert_int_equal(STAT(s, up), 0);
	pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	WAIT_FOR(STAT(s, loads) == 2, 5000);
	assert_int_equal(STAT(s, loads), 2);
	assert_true(hub_is(hub, "default", "x/1", "one"));
	assert_true(hub_is(hub, "default", "x/3", "three"));

	/* Restarted again, nothing held: what Redis lost goes, what it has is taken. */
	atomic_store(&held, 0);
	bw_test_redis_kill(pid);
	WAIT_FOR(STAT(s, up) == 0, 5000);
	pid = bw_test_redis_start(bw_test_dir, sock, 0, NULL);
	c = look(sock);
	store(c, "default", "x/2", "two again", 0, NULL);
	WAIT_FOR(STAT(s, loads) == 3, 5000);
	assert_int_equal(STAT(s, loads), 3);
	assert_true(hub_is(hub, "default", "x/1", ""));
	assert_true(hub_is(hub, "default", "x/3", ""));
	assert_true(hub_is(hub, "default", "x/2", "two again"));
	assert_true(STAT(s, reconnects) >= 3);
	/* And it listens again. */
	store(c, "default", "x/4", "four", 0, OTHER);
	WAIT_FOR(hub_is(hub, "default", "x/4", "four"), 10000);
	assert_true(hub_is(hub, "default", "x/4", "four"));
	redisFree(c);

	bw_sync_stop(&s);
	bw_test_redis_kill(pid);
	bw_hub_free(&hub, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_and_notes),
		cmocka_unit_test(test_unreachable_then_restarted),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, bw_test_dir_setup, bw_test_dir_teardown);
}
