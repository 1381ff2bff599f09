/*
 * The worker's Redis client against real redis-server processes, each on
 * its own unix socket (or loopback port) in a temporary directory, with
 * the test driving a bw_ring itself: 10,000 pipelined SET/GET pairs, AUTH
 * and SELECT, a wrong password, a request past its deadline, the server
 * killed under traffic and restarted, no server at the start, freeing the
 * client with the ring alive and after it exited; and the address parser.
 * And the failover cases: a READONLY answer (a replica) ending the
 * connection, and the master holder of redis_sentinel moving the client
 * from one server to another. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/io/ring.h"
#include "node/state/master.h"
#include "node/state/redis.h"
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Runs ring (and ticks r, when given) until cond holds or ms pass. */
#define RUN_UNTIL(ring, r, cond, ms)                                                               \
	do {                                                                                       \
		uint64_t dl_ = bw_test_now_ms() + (ms);                                            \
		while (!(cond) && bw_test_now_ms() < dl_) {                                        \
			assert_true(bw_ring_run((ring), 10) >= 0);                                 \
			if (r)                                                                     \
				bw_redis_tick((r), bw_test_now_ms());                              \
		}                                                                                  \
	} while (0)

/* ---- redis-server --------------------------------------------------------- */

static pid_t redis_start(const char *sock, uint16_t port, const char *password)
{
	return bw_test_redis_start(bw_test_dir, sock, port, password);
}

static void redis_kill(pid_t pid)
{
	bw_test_redis_kill(pid);
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.sock", bw_test_dir, name);
}

static uint16_t free_port(void)
{
	return bw_test_free_port();
}

static void unix_config(struct bw_redis_config *cfg, const char *sock)
{
	memset(cfg, 0, sizeof(*cfg));
	assert_true(strlen(sock) < sizeof(cfg->path));
	memcpy(cfg->path, sock, strlen(sock) + 1);
}

/* ---- requests ------------------------------------------------------------- */

struct rec {
	int n, errors;
	int type;
	char str[256];
	char err[BW_REDIS_ERROR_MAX];
};

static void rec_cb(void *arg, const redisReply *reply, const char *error)
{
	struct rec *c = arg;

	c->n++;
	if (error) {
		assert_null(reply);
		c->errors++;
		snprintf(c->err, sizeof(c->err), "%s", error);
		return;
	}
	assert_non_null(reply);
	c->type = reply->type;
	c->str[0] = '\0';
	if (reply->str)
		snprintf(c->str, sizeof(c->str), "%.*s", (int)reply->len, reply->str);
}

/*
 * A callback that makes a request of its own (a GET of "k") and, with
 * tick set, calls bw_redis_tick() far in the future, which must wait for
 * the loop instead of dropping the connection under hiredis.
 */
struct chain {
	struct rec rec;
	struct bw_redis *r;
	bool tick;
	int rc;
	struct rec next;
};

static void chain_cb(void *arg, const redisReply *reply, const char *error)
{
	struct chain *ch = arg;
	const char *argv[2] = { "GET", "k" };
	size_t len[2] = { 3, 1 };

	rec_cb(&ch->rec, reply, error);
	ch->rc = bw_redis_cmd(ch->r, rec_cb, &ch->next, 2, argv, len);
	if (ch->tick)
		bw_redis_tick(ch->r, UINT64_MAX / 2);
}

/* Sends the NULL-terminated words; returns bw_redis_cmd()'s result. */
static int cmd(struct bw_redis *r, struct rec *c, ...)
{
	const char *argv[8];
	size_t len[8];
	int n = 0;
	va_list ap;

	va_start(ap, c);
	for (const char *w; (w = va_arg(ap, const char *)) != NULL && n < 8; n++) {
		argv[n] = w;
		len[n] = strlen(w);
	}
	va_end(ap);
	return bw_redis_cmd(r, rec_cb, c, n, argv, len);
}

/* One request, waited for (3 s at most). */
static void roundtrip(struct bw_ring *ring, struct bw_redis *r, struct rec *c, const char *a,
                      const char *b, const char *d)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(cmd(r, c, a, b, d, NULL), 0);
	RUN_UNTIL(ring, r, c->n == 1, 3000);
	assert_int_equal(c->n, 1);
}

static void wait_up(struct bw_ring *ring, struct bw_redis *r, uint64_t ms)
{
	RUN_UNTIL(ring, r, bw_redis_up(r), ms);
	assert_true(bw_redis_up(r));
}

/* Frees r with the ring alive, then lets the cancelled polls come back. */
static void client_free(struct bw_ring *ring, struct bw_redis **r)
{
	bw_redis_free(r, true);
	assert_null(*r);
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(ring, 10) >= 0);
}

static uint64_t stat_of(const struct bw_redis *r, size_t off)
{
	return atomic_load((_Atomic uint64_t *)((char *)bw_redis_stats(r) + off));
}
#define STAT(r, f) stat_of((r), offsetof(struct bw_redis_stats, f))

/* ---- pipelining ----------------------------------------------------------- */

#define PAIRS 10000

struct pipe {
	uint32_t next;
	uint32_t out_of_order;
	uint32_t bad_reply;
	uint8_t *calls;
};

struct pipe_req {
	struct pipe *p;
	uint32_t i;
};

static void pipe_cb(void *arg, const redisReply *reply, const char *error)
{
	struct pipe_req *q = arg;
	struct pipe *p = q->p;
	char want[32];

	p->calls[q->i]++;
	if (q->i != p->next)
		p->out_of_order++;
	p->next++;
	if (error || !reply) {
		p->bad_reply++;
		return;
	}
	if (q->i % 2 == 0) {
		if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0)
			p->bad_reply++;
	} else {
		snprintf(want, sizeof(want), "value-%u", q->i / 2);
		if (reply->type != REDIS_REPLY_STRING || reply->len != strlen(want) ||
		    memcmp(reply->str, want, reply->len) != 0)
			p->bad_reply++;
	}
}

static void test_pipeline(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128];
	struct rec early;
	struct pipe p = { 0 };
	struct pipe_req *reqs = calloc(2 * PAIRS, sizeof(*reqs));

	p.calls = calloc(2 * PAIRS, 1);
	assert_non_null(reqs);
	assert_non_null(p.calls);
	sock_path(sock, sizeof(sock), "pipe");
	pid_t pid = redis_start(sock, 0, NULL);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	unix_config(&cfg, sock);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);

	/* A request made while connecting queues behind the handshake. */
	memset(&early, 0, sizeof(early));
	assert_false(bw_redis_up(r));
	assert_int_equal(cmd(r, &early, "PING", NULL), 0);
	RUN_UNTIL(&ring, r, early.n == 1, 3000);
	assert_int_equal(early.errors, 0);
	assert_string_equal(early.str, "PONG");
	assert_true(bw_redis_up(r));

	/* From a callback: a request of its own, and a tick that waits. */
	struct chain ch = { .r = r, .tick = true, .rc = 1 };
	const char *ping[1] = { "PING" };
	size_t ping_len[1] = { 4 };
	assert_int_equal(bw_redis_cmd(r, chain_cb, &ch, 1, ping, ping_len), 0);
	RUN_UNTIL(&ring, r, ch.next.n == 1, 3000);
	assert_int_equal(ch.rec.errors, 0);
	assert_int_equal(ch.rc, 0);
	assert_int_equal(ch.next.errors, 0);
	assert_int_equal(ch.next.type, REDIS_REPLY_NIL);
	assert_true(bw_redis_up(r));

	/* All 20,000 queued before the ring runs once. */
	for (uint32_t i = 0; i < 2 * PAIRS; i++) {
		char key[32], val[32];
		const char *argv[3];
		size_t len[3];
		int n;

		snprintf(key, sizeof(key), "key-%u", i / 2);
		snprintf(val, sizeof(val), "value-%u", i / 2);
		reqs[i].p = &p;
		reqs[i].i = i;
		argv[0] = i % 2 == 0 ? "SET" : "GET";
		argv[1] = key;
		argv[2] = val;
		n = i % 2 == 0 ? 3 : 2;
		for (int k = 0; k < n; k++)
			len[k] = strlen(argv[k]);
		assert_int_equal(bw_redis_cmd(r, pipe_cb, &reqs[i], n, argv, len), 0);
	}
	assert_int_equal(STAT(r, pending), 2 * PAIRS);
	RUN_UNTIL(&ring, r, p.next == 2 * PAIRS, 10000);
	assert_int_equal(p.next, 2 * PAIRS);
	assert_int_equal(p.out_of_order, 0);
	assert_int_equal(p.bad_reply, 0);
	for (uint32_t i = 0; i < 2 * PAIRS; i++)
		assert_int_equal(p.calls[i], 1);
	assert_int_equal(STAT(r, pending), 0);
	assert_int_equal(STAT(r, requests), 2 * PAIRS + 3);
	assert_int_equal(STAT(r, errors), 0);
	assert_int_equal(STAT(r, reconnects), 0);

	/* A Redis error reply is a reply. */
	struct rec c;
	roundtrip(&ring, r, &c, "NOSUCHCOMMAND", "x", NULL);
	assert_int_equal(c.errors, 0);
	assert_int_equal(c.type, REDIS_REPLY_ERROR);
	assert_int_equal(bw_redis_cmd(r, rec_cb, &c, 0, NULL, NULL), -EINVAL);

	/* Nothing arrives after the last callback. */
	for (int i = 0; i < 5; i++)
		assert_true(bw_ring_run(&ring, 10) >= 0);
	assert_int_equal(p.next, 2 * PAIRS);
	client_free(&ring, &r);

	/* pending_max bounds what one connection carries. */
	cfg.pending_max = 5;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);
	struct rec five[5];
	memset(five, 0, sizeof(five));
	for (int i = 0; i < 5; i++)
		assert_int_equal(cmd(r, &five[i], "PING", NULL), 0);
	assert_int_equal(cmd(r, &c, "PING", NULL), -ENOBUFS);
	assert_int_equal(STAT(r, errors), 1);
	RUN_UNTIL(&ring, r, five[4].n == 1, 3000);
	assert_int_equal(five[4].errors, 0);
	assert_int_equal(STAT(r, pending), 0);
	client_free(&ring, &r);
	bw_ring_exit(&ring);
	redis_kill(pid);
	free(p.calls);
	free(reqs);
}

/* ---- AUTH and SELECT ------------------------------------------------------ */

static void test_auth(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128], err[BW_REDIS_ERROR_MAX];
	struct rec c, queued;

	sock_path(sock, sizeof(sock), "auth");
	pid_t pid = redis_start(sock, 0, "s3cret pass");
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);

	/* The right password, and db 3. */
	unix_config(&cfg, sock);
	snprintf(cfg.password, sizeof(cfg.password), "s3cret pass");
	cfg.db = 3;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);
	roundtrip(&ring, r, &c, "SET", "k", "in-db-3");
	assert_int_equal(c.errors, 0);
	roundtrip(&ring, r, &c, "CLIENT", "INFO", NULL);
	assert_int_equal(c.type, REDIS_REPLY_STRING);
	assert_non_null(strstr(c.str, " db=3 "));
	memset(&c, 0, sizeof(c));
	assert_int_equal(cmd(r, &c, "ACL", "SETUSER", "app", "on", ">app pw", "~*", "+@all", NULL),
	                 0);
	RUN_UNTIL(&ring, r, c.n == 1, 3000);
	assert_string_equal(c.str, "OK");
	client_free(&ring, &r);

	/* An ACL user (AUTH user password). */
	snprintf(cfg.user, sizeof(cfg.user), "app");
	snprintf(cfg.password, sizeof(cfg.password), "app pw");
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);
	roundtrip(&ring, r, &c, "ACL", "WHOAMI", NULL);
	assert_string_equal(c.str, "app");
	client_free(&ring, &r);
	cfg.user[0] = '\0';

	/* A wrong password: down with the server's error; requests fail. */
	snprintf(cfg.password, sizeof(cfg.password), "wrong");
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	memset(&queued, 0, sizeof(queued));
	assert_int_equal(cmd(r, &queued, "GET", "k", NULL), 0); /* behind the AUTH */
	RUN_UNTIL(&ring, r, queued.n == 1, 3000);
	assert_int_equal(queued.errors, 1);
	assert_non_null(strstr(queued.err, "AUTH failed: WRONGPASS"));
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "AUTH failed: WRONGPASS"));
	assert_null(strstr(err, "wrong"));
	/* It keeps trying, backing off, and keeps failing cleanly. */
	RUN_UNTIL(&ring, r, STAT(r, reconnects) >= 2, 3000);
	assert_true(STAT(r, reconnects) >= 2);
	assert_false(bw_redis_up(r));
	memset(&c, 0, sizeof(c));
	int rc = cmd(r, &c, "PING", NULL);
	if (rc == 0) {
		RUN_UNTIL(&ring, r, c.n == 1, 3000);
		assert_int_equal(c.errors, 1);
	} else {
		assert_int_equal(rc, -ENOTCONN);
	}
	client_free(&ring, &r);

	/* No password at all: the handshake's PING is refused. */
	unix_config(&cfg, sock);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	RUN_UNTIL(&ring, r, STAT(r, reconnects) >= 1, 3000);
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "PING failed: NOAUTH"));
	assert_false(bw_redis_up(r));
	client_free(&ring, &r);

	bw_ring_exit(&ring);
	redis_kill(pid);
}

/* ---- deadlines ------------------------------------------------------------ */

static void test_timeout(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128], err[BW_REDIS_ERROR_MAX];
	struct rec slow, behind, c;

	sock_path(sock, sizeof(sock), "timeout");
	pid_t pid = redis_start(sock, 0, NULL);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	unix_config(&cfg, sock);
	cfg.request_timeout_ms = 200;
	cfg.connect_timeout_ms = 500;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);

	memset(&slow, 0, sizeof(slow));
	memset(&behind, 0, sizeof(behind));
	uint64_t t0 = bw_test_now_ms();
	assert_int_equal(cmd(r, &slow, "DEBUG", "SLEEP", "3", NULL), 0);
	RUN_UNTIL(&ring, r, false, 100);
	assert_int_equal(cmd(r, &behind, "PING", NULL), 0);
	RUN_UNTIL(&ring, r, slow.n == 1, 2000);
	uint64_t took = bw_test_now_ms() - t0;
	assert_int_equal(slow.n, 1);
	assert_string_equal(slow.err, "timeout");
	assert_true(took >= 200 && took < 1000);
	/* The one behind it was not late yet: it fails with the drop. */
	assert_int_equal(behind.n, 1);
	assert_int_equal(behind.errors, 1);
	assert_non_null(strstr(behind.err, "no reply within 200 ms"));
	assert_int_equal(STAT(r, timeouts), 1);
	assert_int_equal(STAT(r, errors), 2);
	assert_int_equal(STAT(r, pending), 0);
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "no reply within 200 ms"));

	/* Reconnects, and a request succeeds once Redis answers again. */
	bool pinging = false, done = false;
	memset(&c, 0, sizeof(c));
	uint64_t dl = bw_test_now_ms() + 8000;
	while (!done && bw_test_now_ms() < dl) {
		if (!pinging) {
			memset(&c, 0, sizeof(c));
			pinging = cmd(r, &c, "PING", NULL) == 0;
		}
		assert_true(bw_ring_run(&ring, 10) >= 0);
		bw_redis_tick(r, bw_test_now_ms());
		if (pinging && c.n == 1) {
			pinging = false;
			done = c.errors == 0;
		}
	}
	assert_true(done);
	assert_string_equal(c.str, "PONG");
	assert_true(bw_test_now_ms() - t0 >= 2900); /* Redis slept 3 s */
	assert_true(STAT(r, reconnects) >= 1);
	assert_true(bw_redis_up(r));
	client_free(&ring, &r);
	bw_ring_exit(&ring);
	redis_kill(pid);
}

/* A server that takes connections and never answers: the connect times out. */
static void test_connect_timeout(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[BW_REDIS_ERROR_MAX];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sock_path(sa.sun_path, sizeof(sa.sun_path), "mute");
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	unix_config(&cfg, sa.sun_path);
	cfg.connect_timeout_ms = 300;
	uint64_t t0 = bw_test_now_ms();
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	RUN_UNTIL(&ring, r, STAT(r, reconnects) >= 1, 3000);
	assert_true(bw_test_now_ms() - t0 >= 300);
	bw_redis_last_error(r, err, sizeof(err));
	assert_string_equal(err, "connect timeout: not up within 300 ms");
	assert_false(bw_redis_up(r));
	client_free(&ring, &r);
	bw_ring_exit(&ring);
	close(fd);
	unlink(sa.sun_path);
}

/* ---- the server killed under traffic ------------------------------------- */

#define KILL_BATCH 2000

static void test_killed(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128], err[BW_REDIS_ERROR_MAX];
	struct rec *recs = calloc(2 * KILL_BATCH, sizeof(*recs));
	struct rec c;
	int issued = 0;

	assert_non_null(recs);
	sock_path(sock, sizeof(sock), "killed");
	pid_t pid = redis_start(sock, 0, NULL);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	unix_config(&cfg, sock);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);

	/* Traffic: a batch on its way, then one not even written, then the kill. */
	for (; issued < KILL_BATCH; issued++)
		assert_int_equal(cmd(r, &recs[issued], "SET", "k", "v", NULL), 0);
	assert_true(bw_ring_run(&ring, 0) >= 0);
	assert_true(bw_ring_run(&ring, 0) >= 0);
	for (; issued < 2 * KILL_BATCH; issued++)
		assert_int_equal(cmd(r, &recs[issued], "SET", "k", "v", NULL), 0);
	/* The last one asks again from its failure: refused, the client is down. */
	struct chain ch = { .r = r, .rc = 1 };
	const char *argv[1] = { "PING" };
	size_t argvlen[1] = { 4 };
	assert_int_equal(bw_redis_cmd(r, chain_cb, &ch, 1, argv, argvlen), 0);
	assert_true(STAT(r, pending) >= KILL_BATCH);
	redis_kill(pid);

	/* Every request ends exactly once, in order; those left fail. */
	RUN_UNTIL(&ring, r, STAT(r, pending) == 0, 3000);
	assert_int_equal(STAT(r, pending), 0);
	uint64_t t_down = bw_test_now_ms();
	int errors = 0;
	for (int i = 0; i < issued; i++) {
		assert_int_equal(recs[i].n, 1);
		errors += recs[i].errors;
		if (i > 0 && recs[i - 1].errors)
			assert_int_equal(recs[i].errors, 1); /* once one failed, the rest did */
	}
	assert_true(errors >= KILL_BATCH);
	assert_int_equal(ch.rec.n, 1);
	assert_int_equal(ch.rec.errors, 1);
	assert_non_null(strstr(ch.rec.err, "connection lost"));
	assert_int_equal(ch.rc, -ENOTCONN);
	assert_int_equal(STAT(r, errors), errors + 2);
	assert_false(bw_redis_up(r));
	assert_int_equal(cmd(r, &c, "PING", NULL), -ENOTCONN);

	/* The reconnects back off: 100, 200, 400, 800 ms apart. */
	uint64_t seen = STAT(r, reconnects), at[16];
	int n = 0;
	while (bw_test_now_ms() - t_down < 1700) {
		assert_true(bw_ring_run(&ring, 10) >= 0);
		bw_redis_tick(r, bw_test_now_ms());
		if (STAT(r, reconnects) != seen && n < 16) {
			seen = STAT(r, reconnects);
			at[n++] = bw_test_now_ms();
		}
	}
	assert_true(n >= 3 && n <= 5);
	for (int i = 2; i < n; i++)
		assert_true(at[i] - at[i - 1] > at[i - 1] - at[i - 2]);
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "Connection refused"));
	assert_false(bw_redis_up(r));

	/* Back on the same socket: up again within the backoff. */
	pid = redis_start(sock, 0, NULL);
	wait_up(&ring, r, 8000);
	roundtrip(&ring, r, &c, "SET", "after", "restart");
	assert_int_equal(c.errors, 0);
	roundtrip(&ring, r, &c, "GET", "after", NULL);
	assert_string_equal(c.str, "restart");
	client_free(&ring, &r);
	bw_ring_exit(&ring);
	redis_kill(pid);
	free(recs);
}

/* ---- no server at the start ----------------------------------------------- */

/* A request made while down fails, at once or through its callback. */
static void expect_fail(struct bw_ring *ring, struct bw_redis *r)
{
	struct rec c = { 0 };
	int rc = cmd(r, &c, "PING", NULL);

	if (rc == 0) {
		RUN_UNTIL(ring, r, c.n == 1, 3000);
		assert_int_equal(c.errors, 1);
	} else {
		assert_int_equal(rc, -ENOTCONN);
	}
}

static void test_unreachable(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128], err[BW_REDIS_ERROR_MAX];
	struct rec c;

	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);

	/* A unix socket that is not there yet. */
	sock_path(sock, sizeof(sock), "later");
	unix_config(&cfg, sock);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	RUN_UNTIL(&ring, r, false, 150);
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, sock));
	expect_fail(&ring, r);
	pid_t pid = redis_start(sock, 0, NULL);
	wait_up(&ring, r, 8000);
	roundtrip(&ring, r, &c, "PING", NULL, NULL);
	assert_string_equal(c.str, "PONG");
	client_free(&ring, &r);
	redis_kill(pid);

	/* TCP to a port nobody listens on yet. */
	uint16_t port = free_port();
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	cfg.port = port;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	RUN_UNTIL(&ring, r, false, 150);
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "Connection refused"));
	expect_fail(&ring, r);
	pid = redis_start(NULL, port, NULL);
	wait_up(&ring, r, 8000);
	roundtrip(&ring, r, &c, "PING", NULL, NULL);
	assert_string_equal(c.str, "PONG");
	assert_true(STAT(r, reconnects) >= 1);
	client_free(&ring, &r);
	bw_ring_exit(&ring);
	redis_kill(pid);
}

/* ---- freeing -------------------------------------------------------------- */

static void test_free_client(void **state)
{
	struct bw_ring ring, ring2;
	struct bw_redis *r;
	struct bw_redis_config cfg;
	char sock[128];
	struct rec recs[100];

	sock_path(sock, sizeof(sock), "free");
	pid_t pid = redis_start(sock, 0, NULL);
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	unix_config(&cfg, sock);

	/* With the ring alive: pending requests fail in the free, once. */
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);
	memset(recs, 0, sizeof(recs));
	for (int i = 0; i < 100; i++)
		assert_int_equal(cmd(r, &recs[i], "GET", "k", NULL), 0);
	client_free(&ring, &r);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(recs[i].n, 1);
		assert_string_equal(recs[i].err, "client closed");
	}

	/* Freed while connecting. */
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	memset(recs, 0, sizeof(recs));
	assert_int_equal(cmd(r, &recs[0], "PING", NULL), 0);
	client_free(&ring, &r);
	assert_int_equal(recs[0].n, 1);
	assert_int_equal(recs[0].errors, 1);

	/* After the ring exited (a worker's teardown): nothing touches it. */
	assert_int_equal(bw_ring_init(&ring2, &bw_test_ring_small), 0);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring2), 0);
	wait_up(&ring2, r, 3000);
	memset(recs, 0, sizeof(recs));
	for (int i = 0; i < 10; i++)
		assert_int_equal(cmd(r, &recs[i], "GET", "k", NULL), 0);
	assert_true(bw_ring_run(&ring2, 0) >= 0);
	bw_ring_exit(&ring2);
	bw_redis_free(&r, false);
	assert_null(r);
	for (int i = 0; i < 10; i++)
		assert_int_equal(recs[i].n, 1);
	bw_redis_free(&r, false); /* NULL: nothing */

	bw_ring_exit(&ring);
	redis_kill(pid);
}

/* ---- failover ------------------------------------------------------------- */

/* A blocking command on 127.0.0.1:port: the reply as text into out ("" for none). */
static void blocking(uint16_t port, char *out, size_t cap, const char *fmt, ...)
{
	struct timeval tv = { .tv_sec = 2 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	va_list ap;

	out[0] = '\0';
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	redisSetTimeout(c, tv);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->str)
		snprintf(out, cap, "%.*s", (int)r->len, r->str);
	freeReplyObject(r);
	redisFree(c);
}

static void test_demoted_text(void **state)
{
	static const char wrapped[] =
	        "ERR Error running script (call to f_0123): @user_script:1: @user_script: 1: "
	        "-READONLY You can't write against a read only replica.";
	static const char *const no[] = {
		"READONLYX",
		"ERR unknown command 'READONLY'",
		"FENCED not the owner",
		"LOADING Redis is loading",
		"ERR",
		"",
	};

	(void)state;
	assert_true(bw_redis_error_demoted("READONLY You can't write against a read only replica.",
	                                   54));
	assert_true(bw_redis_error_demoted("READONLY", 8));
	assert_true(bw_redis_error_demoted(wrapped, strlen(wrapped)));
	assert_false(bw_redis_error_demoted(wrapped, strlen(wrapped) - 50)); /* cut in it */
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(bw_redis_error_demoted(no[i], strlen(no[i])));
	assert_false(bw_redis_error_demoted(NULL, 0));
}

/*
 * A client on a replica (an old master, demoted): reads are answered, a
 * write's READONLY ends the connection like a drop, failing it and the
 * requests behind it, and the client reconnects. Other error replies stay
 * replies.
 */
static void test_readonly(void **state)
{
	uint16_t mport = free_port(), rport = free_port();
	pid_t master = redis_start(NULL, mport, NULL);
	pid_t replica = bw_test_redis_start_replica(bw_test_dir, NULL, rport, NULL, mport);
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_redis_config cfg = { .port = rport };
	struct rec c[4] = { 0 };
	char err[BW_REDIS_ERROR_MAX];

	(void)state;
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	wait_up(&ring, r, 3000);

	/* An error that is not READONLY is a reply; the connection stays. */
	roundtrip(&ring, r, &c[0], "NOSUCHCOMMAND", NULL, NULL);
	assert_int_equal(c[0].errors, 0);
	assert_int_equal(c[0].type, REDIS_REPLY_ERROR);
	assert_true(bw_redis_up(r));
	assert_int_equal(STAT(r, reconnects), 0);

	/* A read, a write, a read, pipelined: the write's READONLY ends them. */
	memset(c, 0, sizeof(c));
	assert_int_equal(cmd(r, &c[0], "GET", "k", NULL), 0);
	assert_int_equal(cmd(r, &c[1], "SET", "k", "v", NULL), 0);
	assert_int_equal(cmd(r, &c[2], "GET", "k", NULL), 0);
	RUN_UNTIL(&ring, r, c[2].n == 1, 3000);
	assert_int_equal(c[0].n, 1);
	assert_int_equal(c[0].errors, 0);
	assert_int_equal(c[0].type, REDIS_REPLY_NIL);
	assert_int_equal(c[1].n, 1);
	assert_int_equal(c[1].errors, 1);
	assert_non_null(strstr(c[1].err, "answered READONLY"));
	assert_int_equal(c[2].n, 1);
	assert_int_equal(c[2].errors, 1);
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "READONLY"));
	assert_int_equal(STAT(r, pending), 0);

	/* It reconnects; a script's write is refused the same way. */
	wait_up(&ring, r, 3000);
	assert_int_equal(STAT(r, reconnects), 1);
	assert_int_equal(
	        cmd(r, &c[3], "EVAL", "redis.call('SET', KEYS[1], 'x') return 1", "1", "k", NULL),
	        0);
	RUN_UNTIL(&ring, r, c[3].n == 1, 3000);
	assert_int_equal(c[3].errors, 1);
	assert_non_null(strstr(c[3].err, "READONLY"));
	wait_up(&ring, r, 3000);
	assert_int_equal(STAT(r, reconnects), 2);

	client_free(&ring, &r);
	bw_ring_exit(&ring);
	redis_kill(replica);
	redis_kill(master);
}

/*
 * With a master holder: no address yet, then one, then another while a
 * request is on its way (it fails; the client goes to the new master at
 * once, without its backoff).
 */
static void test_master_moves(void **state)
{
	uint16_t pa = free_port(), pb = free_port();
	pid_t a = redis_start(NULL, pa, NULL), b = redis_start(NULL, pb, NULL);
	struct bw_ring ring;
	struct bw_redis *r;
	struct bw_master *m;
	struct bw_redis_config cfg = { .backoff_min_ms = 1000, .backoff_max_ms = 5000 };
	struct rec c = { 0 }, slow = { 0 };
	char err[BW_REDIS_ERROR_MAX], text[64];

	(void)state;
	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	assert_int_equal(bw_master_new(&m), 0);
	cfg.master = m;
	snprintf(cfg.path, sizeof(cfg.path), "/tmp/x.sock");
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL); /* a path and a holder */
	cfg.path[0] = '\0';

	/* No master known: down, saying so. */
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), 0);
	RUN_UNTIL(&ring, r, false, 100);
	assert_false(bw_redis_up(r));
	bw_redis_last_error(r, err, sizeof(err));
	assert_non_null(strstr(err, "no Redis master known yet"));

	/* Known: connected at the next tick, not after the 1 s backoff. */
	uint64_t t0 = bw_test_now_ms();
	assert_true(bw_master_set(m, "127.0.0.1", pa, NULL, 0));
	wait_up(&ring, r, 3000);
	assert_true(bw_test_now_ms() - t0 < 600);
	roundtrip(&ring, r, &c, "SET", "where", "a");
	assert_int_equal(c.errors, 0);
	blocking(pa, text, sizeof(text), "GET where");
	assert_string_equal(text, "a");

	/* Moved while a request is on its way: it fails, the next lands on b. */
	assert_int_equal(cmd(r, &slow, "DEBUG", "SLEEP", "0.3", NULL), 0);
	assert_true(bw_ring_run(&ring, 0) >= 0);
	t0 = bw_test_now_ms();
	assert_true(bw_master_set(m, "127.0.0.1", pb, NULL, 0));
	bw_redis_tick(r, bw_test_now_ms());
	assert_int_equal(slow.n, 1);
	assert_int_equal(slow.errors, 1);
	assert_non_null(strstr(slow.err, "the Redis master changed"));
	wait_up(&ring, r, 3000);
	assert_true(bw_test_now_ms() - t0 < 600);
	roundtrip(&ring, r, &c, "SET", "where", "b");
	assert_int_equal(c.errors, 0);
	blocking(pb, text, sizeof(text), "GET where");
	assert_string_equal(text, "b");
	blocking(pa, text, sizeof(text), "GET where");
	assert_string_equal(text, "a");

	/* The same address again is no move: the connection stays. */
	uint64_t reconnects = STAT(r, reconnects);
	assert_false(bw_master_set(m, "127.0.0.1", pb, NULL, 0));
	RUN_UNTIL(&ring, r, false, 200);
	assert_int_equal(STAT(r, reconnects), reconnects);
	assert_true(bw_redis_up(r));

	client_free(&ring, &r);
	bw_master_free(&m);
	bw_ring_exit(&ring);
	redis_kill(a);
	redis_kill(b);
}

/* ---- configuration -------------------------------------------------------- */

static void test_config_checks(void **state)
{
	struct bw_ring ring;
	struct bw_redis *r = (struct bw_redis *)&r;
	struct bw_redis_config cfg;
	char err[128];

	assert_int_equal(bw_ring_init(&ring, &bw_test_ring_small), 0);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL); /* neither */
	assert_null(r);
	snprintf(cfg.host, sizeof(cfg.host), "localhost");
	cfg.port = 6379;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL); /* a name */
	snprintf(cfg.path, sizeof(cfg.path), "/tmp/x.sock");
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL); /* both */
	cfg.path[0] = '\0';
	cfg.port = 0;
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL); /* no port */
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.path, sizeof(cfg.path), "relative.sock");
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL);
	snprintf(cfg.path, sizeof(cfg.path), "/tmp/x.sock");
	snprintf(cfg.user, sizeof(cfg.user), "u"); /* a user without a password */
	assert_int_equal(bw_redis_new(&r, &cfg, &ring), -EINVAL);

	/* A name becomes a numeric address off the worker. */
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.host, sizeof(cfg.host), "localhost");
	cfg.port = 6379;
	assert_int_equal(bw_redis_resolve(&cfg, err, sizeof(err)), 0);
	assert_true(strcmp(cfg.host, "127.0.0.1") == 0 || strcmp(cfg.host, "::1") == 0);
	snprintf(cfg.host, sizeof(cfg.host), "no-such-host.invalid");
	assert_int_equal(bw_redis_resolve(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "redis: cannot resolve no-such-host.invalid"));
	bw_ring_exit(&ring);
}

/* ---- addresses ------------------------------------------------------------ */

static void parse_ok(const char *url, struct bw_redis_config *cfg)
{
	char err[160] = "";

	if (bw_redis_url_parse(cfg, url, err, sizeof(err)) != 0)
		fail_msg("%s: %s", url, err);
	assert_string_equal(err, "");
}

static void parse_bad(const char *url, const char *want)
{
	struct bw_redis_config cfg;
	char err[160] = "";

	assert_int_equal(bw_redis_url_parse(&cfg, url, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("%s: got \"%s\", want \"%s\"", url, err, want);
	assert_string_equal(cfg.host, "");
	assert_string_equal(cfg.password, "");
}

static void test_url(void **state)
{
	struct bw_redis_config cfg;

	parse_ok("redis://127.0.0.1:6380/2", &cfg);
	assert_string_equal(cfg.host, "127.0.0.1");
	assert_int_equal(cfg.port, 6380);
	assert_int_equal(cfg.db, 2);
	assert_string_equal(cfg.path, "");
	assert_string_equal(cfg.password, "");
	assert_int_equal(cfg.request_timeout_ms, 0); /* the default, taken by bw_redis_new() */

	parse_ok("redis://redis.example", &cfg);
	assert_string_equal(cfg.host, "redis.example");
	assert_int_equal(cfg.port, 6379);
	assert_int_equal(cfg.db, 0);

	parse_ok("redis://h/", &cfg);
	assert_int_equal(cfg.db, 0);

	parse_ok("redis://:s%40cret@redis.example:6379/15", &cfg);
	assert_string_equal(cfg.password, "s@cret");
	assert_string_equal(cfg.user, "");
	assert_string_equal(cfg.host, "redis.example");
	assert_int_equal(cfg.db, 15);

	parse_ok("redis://:p@ss@h", &cfg); /* the last '@' ends the password */
	assert_string_equal(cfg.password, "p@ss");
	assert_string_equal(cfg.host, "h");

	parse_ok("redis://app:pw@[::1]:7000/1", &cfg);
	assert_string_equal(cfg.user, "app");
	assert_string_equal(cfg.password, "pw");
	assert_string_equal(cfg.host, "::1");
	assert_int_equal(cfg.port, 7000);

	parse_ok("redis://[fe80::1]", &cfg);
	assert_string_equal(cfg.host, "fe80::1");
	assert_int_equal(cfg.port, 6379);

	parse_ok("unix:///run/redis/redis.sock?db=4&password=x%26y", &cfg);
	assert_string_equal(cfg.path, "/run/redis/redis.sock");
	assert_string_equal(cfg.host, "");
	assert_int_equal(cfg.db, 4);
	assert_string_equal(cfg.password, "x&y");

	parse_ok("unix://:pw@/tmp/r.sock", &cfg);
	assert_string_equal(cfg.path, "/tmp/r.sock");
	assert_string_equal(cfg.password, "pw");
	assert_int_equal(cfg.db, 0);

	parse_ok("unix:///tmp/r.sock?user=u&password=p", &cfg);
	assert_string_equal(cfg.user, "u");
	assert_string_equal(cfg.password, "p");

	parse_bad("redis://h:70000", "redis: port 70000 is out of range (1 to 65535)");
	parse_bad("redis://h:0", "redis: port 0 is out of range");
	parse_bad("redis://h:99999999999999", "is out of range");
	parse_bad("redis://h:abc", "redis: port 'abc' is not a number");
	parse_bad("redis://h:", "redis: port '' is not a number");
	parse_bad("redis://h:-1", "is not a number");
	parse_bad("redis://:6379", "redis: the address has no host");
	parse_bad("redis://", "redis: the address has no host");
	parse_bad("redis://:pw@", "redis: the address has no host");
	parse_bad("redis://h/x", "redis: db 'x' is not a number");
	parse_bad("redis://h/1/2", "redis: db '1/2' is not a number");
	parse_bad("redis://h/99999999999", "redis: db 99999999999 is out of range");
	parse_bad("redis://h/4294967295", "redis: db 4294967295 is out of range");
	parse_bad("redis://h?db=1", "unexpected '?'");
	parse_bad("redis://pw@h", "needs a ':' before it");
	parse_bad("redis://:@h", "the password is empty");
	parse_bad("redis://:%zz@h", "redis: bad %-escape in the password");
	parse_bad("redis://:ab%4@h", "bad %-escape");
	parse_bad("redis://:a%00b@h", "bad %-escape");
	parse_bad("redis://[::1:6379", "without ']'");
	parse_bad("redis://[::1]x", "after ']'");
	parse_bad("redis://h%20x", "a character it may not have");
	parse_bad("http://h", "redis: the address must start with redis:// or unix://");
	parse_bad("", "must start with");
	parse_bad("rediss://h", "redis: rediss:// (TLS) is not supported");
	parse_bad("unix://relative.sock", "redis: unix:// needs an absolute path");
	parse_bad("unix://host/tmp/x", "needs an absolute path");
	parse_bad("unix://:pw@host/tmp/x", "unix:// takes no host");
	parse_bad("unix:///", "needs a socket path");
	parse_bad("unix:///tmp/r.sock?foo=1", "redis: unknown parameter 'foo'");
	parse_bad("unix:///tmp/r.sock?db", "parameter 'db' has no value");
	parse_bad("unix:///tmp/r.sock?db=", "db '' is not a number");
	parse_bad("unix:///tmp/r.sock?db=x", "db 'x' is not a number");
	parse_bad("unix:///tmp/r.sock?user=u", "a user needs a password");

	char long_url[300];
	snprintf(long_url, sizeof(long_url), "unix:///%0200d", 0);
	parse_bad(long_url, "the socket path is too long (107 bytes at most)");
	snprintf(long_url, sizeof(long_url), "redis://:%0280d@h", 0);
	parse_bad(long_url, "the password is too long (255 bytes at most)");

	/* A password is never quoted back. */
	char err[160];
	assert_int_equal(bw_redis_url_parse(&cfg, "redis://:hunter2@h:70000", err, sizeof(err)),
	                 -EINVAL);
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(bw_redis_url_parse(&cfg, "redis://:hunter2@", err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "hunter2"));
}

/* ---- main ----------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),         cmocka_unit_test(test_config_checks),
		cmocka_unit_test(test_pipeline),    cmocka_unit_test(test_auth),
		cmocka_unit_test(test_timeout),     cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_killed),      cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_free_client), cmocka_unit_test(test_demoted_text),
		cmocka_unit_test(test_readonly),    cmocka_unit_test(test_master_moves),
	};

	/* hiredis writes with write(2): a closed peer must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, bw_test_dir_setup, bw_test_dir_teardown);
}
