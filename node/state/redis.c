/*
 * The worker's Redis client (see redis.h). A connection is a struct link:
 * the hiredis async context plus the two one-shot polls that stand for
 * hiredis's read and write interest. The rules that keep it memory-safe:
 *
 * - hiredis frees its context itself on an error (EOF, a failed connect),
 *   from inside redisAsyncHandleRead/Write: in 0.14 it first gives every
 *   pending request its NULL reply, then calls ev.cleanup (later versions
 *   call it earlier too, and twice). Cleanup only marks the link gone and
 *   cancels its polls; the link is freed later, at the top of the loop
 *   (depth 0), once it is gone and neither poll is still with the kernel.
 *   A cancelled or late completion finds a link still allocated and does
 *   nothing.
 * - This file frees a context only with redisAsyncFree(), and never from
 *   the connect or disconnect callbacks (0.14 does not defer a free from
 *   there). From a reply callback hiredis defers it to when the callback
 *   returns; then the requests left get their NULL reply.
 * - Whoever sees a connection end first (drop(), the first NULL reply, or
 *   ev.cleanup) takes it off r->link and marks the client down, so the
 *   callbacks that follow see it down and a request they make is refused
 *   instead of reaching a context that is going away.
 *
 * Every request is a struct req in a FIFO list, oldest first; with one
 * timeout for all, deadlines are in order, and the tick looks at the head.
 *
 * With a master holder (redis_sentinel), connect_now() copies the
 * holder's address into cfg.host and cfg.port and keeps its generation;
 * the tick compares it with the holder's. A READONLY reply is the other
 * sign of a failover (the old master, demoted, still answering): the
 * reply callback drops the connection as the tick would (hiredis frees
 * the context once the callback returns), so that request and those
 * behind it fail as ones on a lost connection do, and the callers send
 * them again once the client is up, on the new master if the sentinels
 * said so meanwhile.
 */
#include "node/state/redis.h"

#include "node/io/ring.h"
#include "node/state/master.h"

#include <hiredis/async.h>

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum state {
	ST_DOWN,       /* no connection: requests are refused; retry_at says when to try */
	ST_CONNECTING, /* connecting, or the handshake not answered yet: requests queue */
	ST_UP,
};

struct bw_redis;

struct link {
	struct bw_redis *r;    /* NULL once r was freed: the link frees itself */
	redisAsyncContext *ac; /* valid until gone */
	struct bw_op rd, wr;   /* POLLIN, POLLOUT */
	int fd;
	bool want_rd, want_wr;        /* hiredis's interest */
	bool rd_armed, wr_armed;      /* a poll is with the kernel */
	bool gone;                    /* ev.cleanup ran: hiredis is freeing or freed ac */
	bool connected;               /* the connect callback said yes */
	bool cancel_failed;           /* retry the cancels from the tick */
	int arm_error;                /* a poll could not be armed (SQ full): the tick retries */
	uint32_t hs_left;             /* handshake replies to come */
	char why[BW_REDIS_ERROR_MAX]; /* why it ended, for the requests it fails */
	struct link *next;            /* r->dead */
};

struct req {
	struct req *prev, *next;
	struct bw_redis *r;
	bw_redis_cb cb;
	void *arg;
	uint64_t deadline_ms;
	bool timed_out;
};

struct bw_redis {
	struct bw_redis_config cfg;
	struct bw_ring *ring;
	bool ring_ok;
	enum state state;
	struct link *link; /* the connection, while not down */
	struct link *dead; /* ended links whose polls the kernel still holds */
	struct req *head, *tail;
	uint32_t n_pending;
	uint32_t depth; /* > 0: inside hiredis; no tick, no reaping */
	bool tried;     /* a connect was tried: the next ones are reconnects */
	uint32_t backoff_ms;
	uint64_t retry_at;
	uint64_t connect_deadline;
	uint64_t master_gen; /* cfg.master's generation at the last connect */
	struct bw_redis_stats stats;
	pthread_mutex_t err_mu; /* last_error, read by other threads */
	char last_error[BW_REDIS_ERROR_MAX];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now(const struct bw_redis *r)
{
	return r->cfg.now_ms ? r->cfg.now_ms() : mono_ms();
}

static void stat_add(_Atomic uint64_t *c, int64_t d)
{
	atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

/* snprintf(), cut to fit on purpose: error texts quote what they are given. */
__attribute__((format(printf, 3, 4))) static void textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void set_error(struct bw_redis *r, const char *text)
{
	pthread_mutex_lock(&r->err_mu);
	textf(r->last_error, sizeof(r->last_error), "%s", text);
	pthread_mutex_unlock(&r->err_mu);
}

/* Where cfg points, for messages. */
static void addr_text(const struct bw_redis *r, char *buf, size_t len)
{
	if (r->cfg.path[0])
		textf(buf, len, "%s", r->cfg.path);
	else if (strchr(r->cfg.host, ':'))
		textf(buf, len, "[%s]:%u", r->cfg.host, r->cfg.port);
	else
		textf(buf, len, "%s:%u", r->cfg.host, r->cfg.port);
}

/* ---- down and up ---------------------------------------------------------- */

/* The next connect waits the backoff, which doubles up to its maximum. */
static void schedule_retry(struct bw_redis *r)
{
	r->retry_at = now(r) + r->backoff_ms;
	r->backoff_ms = r->backoff_ms >= r->cfg.backoff_max_ms / 2 ? r->cfg.backoff_max_ms
	                                                           : r->backoff_ms * 2;
}

static void go_down(struct bw_redis *r, const char *why)
{
	r->state = ST_DOWN;
	atomic_store_explicit(&r->stats.up, 0, memory_order_relaxed);
	set_error(r, why);
	schedule_retry(r);
}

/*
 * l stops being r's connection: r is down from here on, and l waits on
 * r->dead until hiredis let go of its context and the kernel of its polls.
 */
static void link_down(struct bw_redis *r, struct link *l, const char *why)
{
	assert(r->link == l);
	if (!l->why[0])
		textf(l->why, sizeof(l->why), "%s", why);
	r->link = NULL;
	l->next = r->dead;
	r->dead = l;
	go_down(r, l->why);
}

/* hiredis's own reason, once the context failed. */
static void link_reason(struct link *l, const redisAsyncContext *ac)
{
	char addr[BW_REDIS_PATH_MAX + 8];
	const char *e = ac->c.err ? ac->c.errstr : "closed";

	if (l->why[0])
		return;
	if (l->connected || !l->r) {
		textf(l->why, sizeof(l->why), "connection lost: %s", e);
	} else {
		addr_text(l->r, addr, sizeof(addr));
		textf(l->why, sizeof(l->why), "connect %s: %s", addr, e);
	}
}

/* hiredis is ending l on its own (an error): the client is down from now. */
static void hiredis_ending(struct link *l, const redisAsyncContext *ac)
{
	if (l->r && l->r->link == l) {
		link_reason(l, ac);
		link_down(l->r, l, l->why);
	}
}

/*
 * Ends r's connection on this side's initiative: the requests it carries
 * fail (now, or when the reply callback running returns) and a reconnect
 * is scheduled. Not from the connect or disconnect callbacks.
 */
static void drop(struct bw_redis *r, const char *why)
{
	struct link *l = r->link;

	if (!l)
		return;
	link_down(r, l, why);
	r->depth++;
	redisAsyncFree(l->ac);
	r->depth--;
}

/* ---- the event adapter ---------------------------------------------------- */

static void arm(struct link *l, bool write)
{
	struct bw_redis *r = l->r;
	bool *armed = write ? &l->wr_armed : &l->rd_armed;

	if (*armed || l->gone || !r || !r->ring_ok)
		return;
	int rc = bw_ring_poll(r->ring, write ? &l->wr : &l->rd, l->fd, write ? POLLOUT : POLLIN);
	if (rc == 0)
		*armed = true;
	else
		l->arm_error = rc;
}

/*
 * The hooks. A removed interest leaves its poll armed: its completion
 * finds no interest and is dropped, which costs less than a cancel (a
 * socket is nearly always writable) and is what makes a del followed by an
 * add cheap.
 */
static void ev_add_read(void *data)
{
	struct link *l = data;

	l->want_rd = true;
	arm(l, false);
}

static void ev_del_read(void *data)
{
	struct link *l = data;

	l->want_rd = false;
}

static void ev_add_write(void *data)
{
	struct link *l = data;

	l->want_wr = true;
	arm(l, true);
}

static void ev_del_write(void *data)
{
	struct link *l = data;

	l->want_wr = false;
}

static void cancel_polls(struct link *l)
{
	struct bw_redis *r = l->r;

	l->cancel_failed = false;
	if (!r || !r->ring_ok) {
		/* bw_ring_exit() dropped them: no completion will come. */
		l->rd_armed = l->wr_armed = false;
		return;
	}
	if (l->rd_armed && bw_ring_cancel(r->ring, &l->rd) < 0)
		l->cancel_failed = true;
	if (l->wr_armed && bw_ring_cancel(r->ring, &l->wr) < 0)
		l->cancel_failed = true;
}

/*
 * hiredis is about to free the context. Idempotent: hiredis 1.x calls it
 * twice. A failed connect without requests is first seen here.
 */
static void ev_cleanup(void *data)
{
	struct link *l = data;

	l->want_rd = l->want_wr = false;
	if (l->gone)
		return;
	hiredis_ending(l, l->ac);
	l->gone = true;
	l->ac = NULL;
	cancel_polls(l);
}

static void link_free(struct link *l)
{
	assert(l->gone && !l->rd_armed && !l->wr_armed);
	free(l);
}

/* Frees the ended links the kernel is done with. Only at depth 0. */
static void reap(struct bw_redis *r)
{
	struct link **pp = &r->dead;

	assert(r->depth == 0);
	while (*pp) {
		struct link *l = *pp;

		if (l->gone && l->cancel_failed)
			cancel_polls(l);
		if (l->gone && !l->rd_armed && !l->wr_armed) {
			*pp = l->next;
			link_free(l);
		} else {
			pp = &l->next;
		}
	}
}

static void on_poll(struct link *l, bool write, int32_t res)
{
	struct bw_redis *r = l->r;

	*(write ? &l->wr_armed : &l->rd_armed) = false;
	if (!r) {
		/* Orphaned by bw_redis_free(): the last completion frees it. */
		if (!l->rd_armed && !l->wr_armed)
			link_free(l);
		return;
	}
	if (!l->gone && res < 0 && res != -ECANCELED) {
		char why[BW_REDIS_ERROR_MAX];

		textf(why, sizeof(why), "poll: %s", strerror(-res));
		if (r->link == l)
			drop(r, why);
	} else if (!l->gone && res >= 0 && (write ? l->want_wr : l->want_rd)) {
		r->depth++;
		if (write)
			redisAsyncHandleWrite(l->ac);
		else
			redisAsyncHandleRead(l->ac);
		r->depth--;
	}
	/* hiredis may have freed the context: l->gone says so. */
	if (!l->gone) {
		if (l->want_rd)
			arm(l, false);
		if (l->want_wr)
			arm(l, true);
	}
	if (r->depth == 0)
		reap(r);
}

static void on_read_poll(struct bw_op *op, int32_t res, uint32_t flags)
{
	on_poll(BW_CONTAINER_OF(op, struct link, rd), false, res);
}

static void on_write_poll(struct bw_op *op, int32_t res, uint32_t flags)
{
	on_poll(BW_CONTAINER_OF(op, struct link, wr), true, res);
}

/* ---- requests and the handshake ------------------------------------------ */

static void req_unlink(struct bw_redis *r, struct req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		r->tail = q->prev;
	r->n_pending--;
	stat_add(&r->stats.pending, -1);
}

bool bw_redis_error_demoted(const char *str, size_t len)
{
	static const char wrapped[] = ": -READONLY ";
	size_t wlen = sizeof(wrapped) - 1;

	if (!str)
		return false;
	if (len >= 8 && memcmp(str, "READONLY", 8) == 0)
		return len == 8 || str[8] == ' ';
	/* Redis 6 ends a script whose write a replica refused with ERR, quoting it. */
	if (len < 4 || memcmp(str, "ERR ", 4) != 0)
		return false;
	for (size_t i = 0; i + wlen <= len; i++) {
		if (memcmp(str + i, wrapped, wlen) == 0)
			return true;
	}
	return false;
}

static bool demoted(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ERROR && bw_redis_error_demoted(reply->str, reply->len);
}

/* hiredis's callback for every request: a reply, or NULL when it ends. */
static void req_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct req *q = privdata;
	struct bw_redis *r = q->r;
	struct link *l = ac->data;

	req_unlink(r, q);
	if (reply && demoted(reply)) {
		if (r->link == l) {
			char addr[BW_REDIS_PATH_MAX + 8];
			char why[BW_REDIS_ERROR_MAX];

			addr_text(r, addr, sizeof(addr));
			textf(why, sizeof(why),
			      "connection dropped: %s answered READONLY, a replica now", addr);
			drop(r, why); /* freed when this callback returns */
		}
		reply = NULL; /* ends as a request on a lost connection */
	}
	if (reply) {
		q->cb(q->arg, reply, NULL);
	} else {
		stat_add(&r->stats.errors, 1);
		if (q->timed_out)
			stat_add(&r->stats.timeouts, 1);
		hiredis_ending(l, ac);
		link_reason(l, ac);
		q->cb(q->arg, NULL, q->timed_out ? "timeout" : l->why);
	}
	free(q);
}

static void handshake_reply(redisAsyncContext *ac, redisReply *reply, struct link *l,
                            const char *what)
{
	struct bw_redis *r = l->r;
	char why[BW_REDIS_ERROR_MAX];

	if (!reply) {
		hiredis_ending(l, ac);
		return;
	}
	if (!r || r->link != l)
		return; /* dropped already */
	if (reply->type == REDIS_REPLY_ERROR) {
		textf(why, sizeof(why), "%s failed: %.*s", what, (int)reply->len, reply->str);
		drop(r, why); /* freed when this callback returns */
		return;
	}
	if (--l->hs_left == 0) {
		r->state = ST_UP;
		r->backoff_ms = r->cfg.backoff_min_ms;
		atomic_store_explicit(&r->stats.up, 1, memory_order_relaxed);
	}
}

static void auth_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	handshake_reply(ac, reply, privdata, "AUTH");
}

static void select_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	handshake_reply(ac, reply, privdata, "SELECT");
}

static void ping_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	handshake_reply(ac, reply, privdata, "PING");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;

	/* A failure is seen in ev_cleanup(), which hiredis calls next. */
	if (status == REDIS_OK)
		l->connected = true;
}

/*
 * AUTH, SELECT, or PING when neither is needed: queued before anything
 * else, so hiredis writes them first once connected, and the client is up
 * when the last of them answers. 0 or -ENOMEM.
 */
static int send_handshake(struct bw_redis *r, struct link *l)
{
	const struct bw_redis_config *c = &r->cfg;
	int rc = REDIS_OK;

	if (c->password[0]) {
		const char *argv[3] = { "AUTH" };
		size_t len[3] = { 4 };
		int n = 1;

		if (c->user[0]) {
			argv[n] = c->user;
			len[n++] = strlen(c->user);
		}
		argv[n] = c->password;
		len[n++] = strlen(c->password);
		rc |= redisAsyncCommandArgv(l->ac, auth_reply, l, n, argv, len);
		l->hs_left++;
	}
	if (c->db != 0) {
		char db[16];
		int dlen = snprintf(db, sizeof(db), "%u", c->db);
		const char *argv[2] = { "SELECT", db };
		size_t len[2] = { 6, (size_t)dlen };

		rc |= redisAsyncCommandArgv(l->ac, select_reply, l, 2, argv, len);
		l->hs_left++;
	}
	if (l->hs_left == 0) {
		const char *argv[1] = { "PING" };
		size_t len[1] = { 4 };

		rc |= redisAsyncCommandArgv(l->ac, ping_reply, l, 1, argv, len);
		l->hs_left++;
	}
	return rc == REDIS_OK ? 0 : -ENOMEM;
}

static void connect_failed(struct bw_redis *r, const char *what)
{
	char addr[BW_REDIS_PATH_MAX + 8];
	char why[BW_REDIS_ERROR_MAX];

	addr_text(r, addr, sizeof(addr));
	textf(why, sizeof(why), "connect %s: %s", addr, what);
	go_down(r, why);
}

static bool numeric(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

/*
 * The master's address now, from the holder, into cfg: 0, or -1 when it
 * knows none yet (r is down then, a retry scheduled).
 */
static int take_master(struct bw_redis *r)
{
	char host[BW_REDIS_HOST_MAX];
	uint16_t port;

	r->master_gen = bw_master_get(r->cfg.master, host, sizeof(host), &port);
	if (!host[0] || port == 0 || !numeric(host)) {
		/* A name would block in getaddrinfo(): the state thread resolves them. */
		go_down(r, host[0] ? "the Redis master's address is not numeric"
		                   : "no Redis master known yet: the sentinels are being asked");
		return -1;
	}
	memcpy(r->cfg.host, host, sizeof(host));
	r->cfg.port = port;
	return 0;
}

/* Starts a connection; a failure leaves r down with a retry scheduled. */
static void connect_now(struct bw_redis *r)
{
	redisAsyncContext *ac;
	struct link *l;

	assert(!r->link);
	if (r->tried)
		stat_add(&r->stats.reconnects, 1);
	r->tried = true;
	if (r->cfg.master && take_master(r) < 0)
		return;
	/* Non-blocking connect: a numeric host is not looked up (see bw_redis_new()). */
	if (r->cfg.path[0])
		ac = redisAsyncConnectUnix(r->cfg.path);
	else
		ac = redisAsyncConnect(r->cfg.host, r->cfg.port);
	if (!ac) {
		connect_failed(r, "out of memory");
		return;
	}
	if (ac->err) {
		char what[128];

		textf(what, sizeof(what), "%s", ac->errstr);
		redisAsyncFree(ac);
		connect_failed(r, what);
		return;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		redisAsyncFree(ac);
		connect_failed(r, "out of memory");
		return;
	}
	l->r = r;
	l->ac = ac;
	l->fd = ac->c.fd;
	l->rd.done = on_read_poll;
	l->wr.done = on_write_poll;
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	r->link = l;
	r->state = ST_CONNECTING;
	r->connect_deadline = now(r) + r->cfg.connect_timeout_ms;
	/* Asks for write interest: the first POLLOUT says the connect is done. */
	redisAsyncSetConnectCallback(ac, on_connect);
	if (send_handshake(r, l) < 0)
		drop(r, "out of memory");
	if (r->depth == 0)
		reap(r);
}

/* ---- the interface -------------------------------------------------------- */

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static int check_config(const struct bw_redis_config *c)
{
	if (!terminated(c->host, sizeof(c->host)) || !terminated(c->path, sizeof(c->path)) ||
	    !terminated(c->user, sizeof(c->user)) || !terminated(c->password, sizeof(c->password)))
		return -EINVAL;
	if (c->user[0] && !c->password[0])
		return -EINVAL;
	if (c->master)
		return c->path[0] ? -EINVAL : 0; /* host and port come from it */
	if (!c->host[0] == !c->path[0])
		return -EINVAL; /* exactly one of them */
	if (c->path[0])
		return c->path[0] == '/' ? 0 : -EINVAL;
	if (c->port == 0)
		return -EINVAL;
	if (!numeric(c->host))
		return -EINVAL; /* a name: hiredis would block in getaddrinfo() */
	return 0;
}

int bw_redis_new(struct bw_redis **out, const struct bw_redis_config *cfg, struct bw_ring *ring)
{
	struct bw_redis *r;
	int rc;

	*out = NULL;
	rc = check_config(cfg);
	if (rc < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	struct bw_redis_config *c = &r->cfg;
	c->connect_timeout_ms =
	        c->connect_timeout_ms ? c->connect_timeout_ms : BW_REDIS_CONNECT_TIMEOUT_MS;
	c->request_timeout_ms =
	        c->request_timeout_ms ? c->request_timeout_ms : BW_REDIS_REQUEST_TIMEOUT_MS;
	c->backoff_min_ms = c->backoff_min_ms ? c->backoff_min_ms : BW_REDIS_BACKOFF_MIN_MS;
	c->backoff_max_ms = c->backoff_max_ms ? c->backoff_max_ms : BW_REDIS_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->pending_max = c->pending_max ? c->pending_max : BW_REDIS_PENDING_MAX;
	r->ring = ring;
	r->ring_ok = true;
	r->backoff_ms = c->backoff_min_ms;
	rc = pthread_mutex_init(&r->err_mu, NULL);
	if (rc != 0) {
		free(r);
		return -rc;
	}
	connect_now(r);
	*out = r;
	return 0;
}

int bw_redis_cmd(struct bw_redis *r, bw_redis_cb cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen)
{
	struct link *l = r->link;
	struct req *q;

	if (argc <= 0 || !cb)
		return -EINVAL;
	stat_add(&r->stats.requests, 1);
	if (r->state == ST_DOWN || !l || l->gone) {
		stat_add(&r->stats.errors, 1);
		return -ENOTCONN;
	}
	if (r->n_pending >= r->cfg.pending_max) {
		stat_add(&r->stats.errors, 1);
		return -ENOBUFS;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		stat_add(&r->stats.errors, 1);
		return -ENOMEM;
	}
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->deadline_ms = now(r) + r->cfg.request_timeout_ms;
	if (redisAsyncCommandArgv(l->ac, req_reply, q, argc, argv, argvlen) != REDIS_OK) {
		bool closing = l->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING);

		free(q);
		stat_add(&r->stats.errors, 1);
		return closing ? -ENOTCONN : -ENOMEM;
	}
	q->prev = r->tail;
	if (r->tail)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	r->n_pending++;
	stat_add(&r->stats.pending, 1);
	return 0;
}

void bw_redis_tick(struct bw_redis *r, uint64_t now_ms)
{
	struct link *l = r->link;
	char why[BW_REDIS_ERROR_MAX];

	if (r->depth > 0)
		return; /* called from a callback: the next tick does it */
	if (l && l->arm_error) {
		int rc = l->arm_error;

		l->arm_error = 0;
		if (l->want_rd)
			arm(l, false);
		if (l->want_wr)
			arm(l, true);
		if (l->arm_error) {
			textf(why, sizeof(why), "cannot poll: %s", strerror(-rc));
			drop(r, why);
		}
	}
	if (r->cfg.master && bw_master_generation(r->cfg.master) != r->master_gen) {
		/* The sentinels named another master: go there now, without a backoff. */
		r->master_gen = bw_master_generation(r->cfg.master);
		drop(r, "connection dropped: the Redis master changed");
		r->backoff_ms = r->cfg.backoff_min_ms;
		r->retry_at = now_ms;
	}
	if (r->head && now_ms >= r->head->deadline_ms) {
		/* Those past their deadline fail as timed out, the rest as dropped. */
		for (struct req *q = r->head; q && now_ms >= q->deadline_ms; q = q->next)
			q->timed_out = true;
		textf(why, sizeof(why), "connection dropped: a request got no reply within %u ms",
		      r->cfg.request_timeout_ms);
		drop(r, why);
	} else if (r->state == ST_CONNECTING && now_ms >= r->connect_deadline) {
		textf(why, sizeof(why), "connect timeout: not up within %u ms",
		      r->cfg.connect_timeout_ms);
		drop(r, why);
	}
	reap(r);
	if (r->state == ST_DOWN && !r->link && now_ms >= r->retry_at)
		connect_now(r);
}

bool bw_redis_up(const struct bw_redis *r)
{
	return atomic_load_explicit(&r->stats.up, memory_order_relaxed) != 0;
}

const struct bw_redis_stats *bw_redis_stats(const struct bw_redis *r)
{
	return &r->stats;
}

void bw_redis_last_error(struct bw_redis *r, char *buf, size_t len)
{
	if (len == 0)
		return;
	pthread_mutex_lock(&r->err_mu);
	textf(buf, len, "%s", r->last_error);
	pthread_mutex_unlock(&r->err_mu);
}

void bw_redis_free(struct bw_redis **rp, bool ring_ok)
{
	struct bw_redis *r = *rp;

	if (!r)
		return;
	assert(r->depth == 0 && "bw_redis_free() called from a callback");
	*rp = NULL;
	r->ring_ok = ring_ok;
	drop(r, "client closed");
	/* At depth 0 every context is freed, so every request has had its end. */
	assert(!r->head && r->n_pending == 0);
	while (r->dead) {
		struct link *l = r->dead;

		r->dead = l->next;
		if (!ring_ok)
			l->rd_armed = l->wr_armed = false;
		else if (l->cancel_failed)
			cancel_polls(l);
		l->r = NULL;
		if (!l->rd_armed && !l->wr_armed)
			link_free(l);
	}
	pthread_mutex_destroy(&r->err_mu);
	free(r);
}
