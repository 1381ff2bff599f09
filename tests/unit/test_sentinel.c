/*
 * Redis Sentinel support (node/state/sentinel.h, node/state/master.h):
 * the redis_sentinel setting's parser and resolver; the master holder,
 * alone and under a writer and readers on other threads; and the blocking
 * client against real processes started here (redis-server, and
 * redis-server --sentinel on a configuration file of the test's own): the
 * master named, an unknown name, dead sentinels skipped in turn, none
 * answering, a sentinel's password, and a failover followed. Every wait
 * is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/state/master.h"
#include "node/state/sentinel.h"
#include "redis_server.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME "bw-master"

/* ---- the setting ---------------------------------------------------------- */

static void parse_ok(const char *text, struct bw_sentinel_config *cfg)
{
	char err[256] = "";

	if (bw_sentinel_parse(cfg, text, err, sizeof(err)) != 0)
		fail_msg("'%s': %s", text, err);
	assert_string_equal(err, "");
}

static void parse_bad(const char *text, const char *want)
{
	struct bw_sentinel_config cfg;
	char err[256] = "";

	assert_int_equal(bw_sentinel_parse(&cfg, text, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("'%s': got \"%s\", want \"%s\"", text, err, want);
}

static void test_parse(void **state)
{
	struct bw_sentinel_config cfg;
	char text[1024];
	size_t n = 0;

	(void)state;
	parse_ok("mymaster 127.0.0.1:26380", &cfg);
	assert_string_equal(cfg.name, "mymaster");
	assert_int_equal(cfg.n, 1);
	assert_string_equal(cfg.addr[0].host, "127.0.0.1");
	assert_int_equal(cfg.addr[0].port, 26380);
	assert_string_equal(cfg.password, "");

	/* Names, [IPv6], the default port, blanks around the commas. */
	parse_ok("  m.1   s1.example:1, [::1]:2 ,s3,[fe80::1]\t", &cfg);
	assert_string_equal(cfg.name, "m.1");
	assert_int_equal(cfg.n, 4);
	assert_string_equal(cfg.addr[0].host, "s1.example");
	assert_int_equal(cfg.addr[0].port, 1);
	assert_string_equal(cfg.addr[1].host, "::1");
	assert_int_equal(cfg.addr[1].port, 2);
	assert_string_equal(cfg.addr[2].host, "s3");
	assert_int_equal(cfg.addr[2].port, BW_SENTINEL_PORT);
	assert_string_equal(cfg.addr[3].host, "fe80::1");
	assert_int_equal(cfg.addr[3].port, 26379);

	/* Sixteen at most. */
	n = (size_t)snprintf(text, sizeof(text), "m ");
	for (int i = 0; i < BW_SENTINEL_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s10.0.0.%d:%d", i ? "," : "",
		                      i + 1, 26379 + i);
	parse_ok(text, &cfg);
	assert_int_equal(cfg.n, BW_SENTINEL_MAX);
	assert_string_equal(cfg.addr[15].host, "10.0.0.16");
	assert_int_equal(cfg.addr[15].port, 26394);
	snprintf(text + n, sizeof(text) - n, ",10.0.0.17");
	parse_bad(text, "more than 16 sentinels");

	parse_bad("", "expected `MASTER_NAME HOST:PORT[,HOST:PORT...]`");
	parse_bad("   ", "expected `MASTER_NAME");
	parse_bad("mymaster", "names no sentinel");
	parse_bad("mymaster   ", "names no sentinel");
	parse_bad("m h:0", "sentinel 'h:0': port 0 is out of range (1 to 65535)");
	parse_bad("m h:70000", "port 70000 is out of range");
	parse_bad("m h:x1", "sentinel 'h:x1': port 'x1' is not a number");
	parse_bad("m h:", "port '' is not a number");
	parse_bad("m h:1,,h:2", "an empty sentinel address (a comma too many)");
	parse_bad("m h:1,", "an empty sentinel address");
	parse_bad("m ,h:1", "an empty sentinel address");
	parse_bad("m [::1:2", "'[' without ']' around an IPv6 address");
	parse_bad("m h 1", "the host has a character it may not have");
	parse_bad("m :1", "the address has no host");
	parse_bad("m\x01 h", "the master name has a character it may not have");
	memset(text, 'n', 200);
	snprintf(text + 200, sizeof(text) - 200, " h:1");
	parse_bad(text, "the master name is longer than 127 bytes");
	(void)n;
}

static void test_resolve(void **state)
{
	struct bw_sentinel_config cfg;
	char err[256];

	(void)state;
	parse_ok("m localhost:1,127.0.0.2:2,[::1]:3", &cfg);
	assert_int_equal(bw_sentinel_resolve(&cfg, err, sizeof(err)), 0);
	assert_true(strcmp(cfg.addr[0].host, "127.0.0.1") == 0 ||
	            strcmp(cfg.addr[0].host, "::1") == 0);
	assert_int_equal(cfg.addr[0].port, 1);
	assert_string_equal(cfg.addr[1].host, "127.0.0.2");
	assert_string_equal(cfg.addr[2].host, "::1");
	parse_ok("m 127.0.0.1:1,no-such-host.invalid:2", &cfg);
	assert_int_equal(bw_sentinel_resolve(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot resolve no-such-host.invalid"));
	assert_null(strstr(err, "redis: "));
}

/* ---- the holder ----------------------------------------------------------- */

static void test_holder(void **state)
{
	struct bw_master *m;
	char host[64], was[64];
	uint16_t port = 1;

	(void)state;
	assert_int_equal(bw_master_new(&m), 0);
	assert_int_equal(bw_master_get(m, host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 0);
	assert_int_equal(bw_master_generation(m), 0);

	assert_true(bw_master_set(m, "127.0.0.1", 6379, was, sizeof(was)));
	assert_string_equal(was, "");
	assert_int_equal(bw_master_generation(m), 1);
	assert_int_equal(bw_master_get(m, host, sizeof(host), &port), 1);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6379);

	/* The same address again is no change. */
	strcpy(was, "untouched");
	assert_false(bw_master_set(m, "127.0.0.1", 6379, was, sizeof(was)));
	assert_string_equal(was, "untouched");
	assert_int_equal(bw_master_generation(m), 1);

	/* Another port, another host: each a new generation, saying what was. */
	assert_true(bw_master_set(m, "127.0.0.1", 6380, was, sizeof(was)));
	assert_string_equal(was, "127.0.0.1:6379");
	assert_true(bw_master_set(m, "::1", 6380, NULL, 0));
	assert_true(bw_master_set(m, "10.0.0.1", 6380, was, sizeof(was)));
	assert_string_equal(was, "[::1]:6380");
	assert_int_equal(bw_master_get(m, host, sizeof(host), &port), 4);
	assert_string_equal(host, "10.0.0.1");

	/* A host cut to fit the caller's buffer, never overrun. */
	assert_int_equal(bw_master_get(m, host, 4, &port), 4);
	assert_string_equal(host, "10.");

	bw_master_free(&m);
	assert_null(m);
	bw_master_free(&m); /* NULL: nothing */
}

/*
 * One thread switches the address between two pairs while readers check
 * that they never see one pair's host with the other's port, and that the
 * generation never goes back.
 */
#define SWITCHES 200000

struct race {
	struct bw_master *m;
	atomic_bool done;
	atomic_int torn;
	atomic_int backwards;
};

static void *writer(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < SWITCHES; i++) {
		if (i % 2)
			bw_master_set(r->m, "10.0.0.1", 1111, NULL, 0);
		else
			bw_master_set(r->m, "fd00::2:2", 2222, NULL, 0);
	}
	atomic_store(&r->done, true);
	return NULL;
}

static void *reader(void *arg)
{
	struct race *r = arg;
	uint64_t last = 0;
	char host[64];
	uint16_t port;

	while (!atomic_load(&r->done)) {
		uint64_t quick = bw_master_generation(r->m);
		uint64_t gen = bw_master_get(r->m, host, sizeof(host), &port);

		if (gen < last || gen < quick)
			atomic_fetch_add(&r->backwards, 1);
		last = gen;
		if (gen > 0 && !(strcmp(host, "10.0.0.1") == 0 && port == 1111) &&
		    !(strcmp(host, "fd00::2:2") == 0 && port == 2222))
			atomic_fetch_add(&r->torn, 1);
	}
	return NULL;
}

static void test_holder_threads(void **state)
{
	struct race r = { 0 };
	pthread_t w, rd[3];

	(void)state;
	assert_int_equal(bw_master_new(&r.m), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&rd[i], NULL, reader, &r), 0);
	assert_int_equal(pthread_create(&w, NULL, writer, &r), 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(rd[i], NULL);
	assert_int_equal(atomic_load(&r.torn), 0);
	assert_int_equal(atomic_load(&r.backwards), 0);
	assert_int_equal(bw_master_generation(r.m), SWITCHES);
	bw_master_free(&r.m);
}

/* ---- asking real sentinels ------------------------------------------------ */

static void config_of(struct bw_sentinel_config *cfg, const char *name, const uint16_t *ports,
                      int n)
{
	char text[512];
	size_t len = (size_t)snprintf(text, sizeof(text), "%s ", name);
	char err[256];

	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s127.0.0.1:%u",
		                        i ? "," : "", ports[i]);
	parse_ok(text, cfg);
	assert_int_equal(bw_sentinel_resolve(cfg, err, sizeof(err)), 0);
}

static int ask(struct bw_sentinel *s, char *host, uint16_t *port, char *err, size_t cap)
{
	return bw_sentinel_ask(s, host, BW_REDIS_HOST_MAX, port, err, cap);
}

static void test_ask(void **state)
{
	uint16_t mport = bw_test_free_port(), sport = bw_test_free_port();
	uint16_t dead = bw_test_free_port();
	pid_t master = bw_test_redis_start(bw_test_dir, NULL, mport, NULL);
	pid_t sentinel = bw_test_sentinel_start(bw_test_dir, sport, NAME, mport, NULL);
	struct bw_sentinel_config cfg;
	struct bw_sentinel *s;
	char host[BW_REDIS_HOST_MAX], err[256];
	uint16_t port = 0;

	(void)state;
	/* The one sentinel. */
	config_of(&cfg, NAME, &sport, 1);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, mport);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0); /* its connection kept */
	assert_int_equal(port, mport);
	bw_sentinel_free(&s);
	assert_null(s);

	/* A name it does not monitor. */
	config_of(&cfg, "other", &sport, 1);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no sentinel knows a master named other"));
	assert_string_equal(host, "");
	bw_sentinel_free(&s);

	/* A dead sentinel first: the next is asked, then asked first. */
	uint16_t two[2] = { dead, sport };
	config_of(&cfg, NAME, two, 2);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_int_equal(port, mport);
	uint64_t t0 = bw_test_now_ms();
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_int_equal(port, mport);
	assert_true(bw_test_now_ms() - t0 < 400);
	bw_sentinel_free(&s);

	/* A master's port is no sentinel: it answers with an error, and is passed over. */
	uint16_t wrong[2] = { mport, sport };
	config_of(&cfg, NAME, wrong, 2);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_int_equal(port, mport);
	bw_sentinel_free(&s);

	/* None answering: in bounded time, and a stop cuts it short. */
	uint16_t none[3] = { dead, bw_test_free_port(), bw_test_free_port() };
	config_of(&cfg, NAME, none, 3);
	cfg.timeout_ms = 200;
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	t0 = bw_test_now_ms();
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), -EHOSTUNREACH);
	assert_true(bw_test_now_ms() - t0 < 3000);
	assert_non_null(strstr(err, "no sentinel answered"));
	bw_sentinel_free(&s);
	atomic_bool stop = true;
	assert_int_equal(bw_sentinel_new(&s, &cfg, &stop), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), -EHOSTUNREACH);
	bw_sentinel_free(&s);

	/* No sentinel at all is refused. */
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), -EINVAL);
	assert_null(s);

	bw_test_redis_kill(sentinel);
	bw_test_redis_kill(master);
}

static void test_password(void **state)
{
	uint16_t mport = bw_test_free_port(), sport = bw_test_free_port();
	pid_t master = bw_test_redis_start(bw_test_dir, NULL, mport, NULL);
	pid_t sentinel = bw_test_sentinel_start(bw_test_dir, sport, NAME, mport, "s3ntinel-pw");
	struct bw_sentinel_config cfg;
	struct bw_sentinel *s;
	char host[BW_REDIS_HOST_MAX], err[256];
	uint16_t port = 0;

	(void)state;
	config_of(&cfg, NAME, &sport, 1);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), -EHOSTUNREACH);
	assert_non_null(strstr(err, "NOAUTH"));
	bw_sentinel_free(&s);

	snprintf(cfg.password, sizeof(cfg.password), "not-the-pw");
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), -EHOSTUNREACH);
	assert_non_null(strstr(err, "AUTH"));
	assert_null(strstr(err, "not-the-pw"));
	bw_sentinel_free(&s);

	snprintf(cfg.password, sizeof(cfg.password), "s3ntinel-pw");
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_int_equal(port, mport);
	bw_sentinel_free(&s);

	bw_test_redis_kill(sentinel);
	bw_test_redis_kill(master);
}

/* A blocking command on 127.0.0.1:port; the reply, freed by the caller (NULL: failed). */
static redisReply *command(uint16_t port, const char *fmt, ...)
{
	struct timeval tv = { .tv_sec = 2 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	va_list ap;

	if (c && !c->err) {
		redisSetTimeout(c, tv);
		va_start(ap, fmt);
		r = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	if (c)
		redisFree(c);
	return r;
}

/* Whether the sentinel on sport knows a replica of NAME it could promote. */
static bool replica_known(uint16_t sport)
{
	redisReply *r = command(sport, "SENTINEL replicas %s", NAME);
	bool ok = false;

	/* Each replica is a flat list of field, value; its flags must be "slave" alone. */
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i];
		for (size_t j = 0; e->type == REDIS_REPLY_ARRAY && j + 1 < e->elements; j += 2) {
			if (!strcmp(e->element[j]->str, "flags") &&
			    !strcmp(e->element[j + 1]->str, "slave"))
				ok = true;
		}
	}
	if (r)
		freeReplyObject(r);
	return ok;
}

static void test_failover(void **state)
{
	uint16_t mport = bw_test_free_port(), rport = bw_test_free_port();
	uint16_t sport = bw_test_free_port();
	pid_t master = bw_test_redis_start(bw_test_dir, NULL, mport, NULL);
	pid_t replica = bw_test_redis_start_replica(bw_test_dir, NULL, rport, NULL, mport);
	pid_t sentinel = bw_test_sentinel_start(bw_test_dir, sport, NAME, mport, NULL);
	struct bw_sentinel_config cfg;
	struct bw_sentinel *s;
	char host[BW_REDIS_HOST_MAX], err[256];
	uint16_t port = 0;
	uint64_t dl;

	(void)state;
	config_of(&cfg, NAME, &sport, 1);
	assert_int_equal(bw_sentinel_new(&s, &cfg, NULL), 0);
	assert_int_equal(ask(s, host, &port, err, sizeof(err)), 0);
	assert_int_equal(port, mport);

	/* The sentinel learns of the replica from the master's INFO. */
	dl = bw_test_now_ms() + 20000;
	while (!replica_known(sport) && bw_test_now_ms() < dl)
		usleep(100000);
	assert_true(replica_known(sport));
	/* SENTINEL failover: the replica is promoted without a vote. */
	dl = bw_test_now_ms() + 10000;
	for (;;) {
		redisReply *r = command(sport, "SENTINEL failover %s", NAME);
		bool ok = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
		if (ok)
			break;
		assert_true(bw_test_now_ms() < dl);
		usleep(200000);
	}
	dl = bw_test_now_ms() + 20000;
	while (bw_test_now_ms() < dl) {
		if (ask(s, host, &port, err, sizeof(err)) == 0 && port == rport)
			break;
		usleep(100000);
	}
	assert_int_equal(port, rport);
	assert_string_equal(host, "127.0.0.1");
	bw_sentinel_free(&s);

	bw_test_redis_kill(sentinel);
	bw_test_redis_kill(replica);
	bw_test_redis_kill(master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),    cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_holder),   cmocka_unit_test(test_holder_threads),
		cmocka_unit_test(test_ask),      cmocka_unit_test(test_password),
		cmocka_unit_test(test_failover),
	};

	/* hiredis writes with write(2): a closed peer must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, bw_test_dir_setup, bw_test_dir_teardown);
}
