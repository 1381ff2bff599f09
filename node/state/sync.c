/*
 * The state thread (see sync.h). One loop: connect both connections,
 * subscribe, load (or reload), then read notes until a call fails or the
 * node stops; then close both, back off and start again. Every blocking
 * call has a timeout: the connect, each command (the socket's SO_RCVTIMEO
 * and SO_SNDTIMEO), and the wait for notes, which is a poll(2) on the
 * listener with the stop pipe beside it, so a stop is seen at once. A
 * listener that hears nothing is PINGed, and dropped when the PONG does
 * not come within the request timeout.
 *
 * With sentinels, the waits are cut into slices of SENTINEL_ASK_MS, and
 * between two the sentinels are asked (discover()): the listening loop
 * ends when the master moved, the backoff after a failure too.
 */
#include "node/state/sync.h"

#include "cluster/store/record.h"
#include "node/core/htab.h"
#include "node/core/hub.h"
#include "node/core/msg.h"
#include "node/core/msgrec.h"
#include "node/io/ring.h"
#include "node/log.h"
#include "node/state/keys.h"
#include "node/state/master.h"
#include "proto/mqtt/topic.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PING_IDLE_MS    5000u /* a listener quiet this long is PINGed */
#define NOTES_BATCH     256u  /* notes whose values are read in one pipeline */
#define DRAIN_WAIT_MS   10000u
#define SCAN_BATCH      256u
#define DRAIN_POLL_MS   20u
#define SENTINEL_ASK_MS 1000u /* how often the sentinels are asked where the master is */

/*
 * KEYS[1] the hash; ARGV: topic, the value found expired, channel, note.
 * Removes the value only if it is still the one read, and says so.
 */
static const char EXPIRE_SCRIPT[] =
        "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
        "redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('PUBLISH', ARGV[3], ARGV[4]) "
        "return 1 end return 0";

struct bw_sync {
	struct bw_sync_config cfg;
	struct bw_redis_config rc;
	char prefix[BW_KEYS_PREFIX_MAX + 1];
	char node[BW_KEYS_NODE_LEN + 1];
	char channel[BW_KEYS_MAX];
	char takeovers[BW_KEYS_MAX]; /* PREFIX:sessions */
	char match[BW_KEYS_MAX];
	pthread_t thread;
	int wake[2]; /* the stop pipe */
	atomic_bool stop;
	redisContext *sub, *rd; /* the listener and the reader, while connected */
	bool tried;
	uint32_t backoff_ms;
	uint64_t heard_ms;   /* the listener's last reply */
	uint64_t ping_since; /* 0, or when the unanswered PING was sent */
	pthread_mutex_t mu;  /* loaded (with cv) and last_error */
	pthread_cond_t cv;
	char last_error[BW_REDIS_ERROR_MAX];
	struct bw_sync_stats stats;
	struct bw_sentinel_config scfg;
	struct bw_sentinel *sentinel; /* with sentinels: asks them (this thread only) */
	uint64_t asked_ms;            /* when they were last asked */
	bool sentinel_failing;        /* a streak of unanswered asks was logged */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stat_add(_Atomic uint64_t *c, uint64_t d)
{
	atomic_fetch_add_explicit(c, d, memory_order_relaxed);
}

static void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

__attribute__((format(printf, 2, 3))) static void set_error(struct bw_sync *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->mu);
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->mu);
}

static bool stopping(struct bw_sync *s)
{
	return atomic_load_explicit(&s->stop, memory_order_relaxed);
}

/* Sleeps ms, or less when the node stops. */
static void nap(struct bw_sync *s, uint32_t ms)
{
	struct pollfd p = { .fd = s->wake[0], .events = POLLIN };

	if (!stopping(s))
		(void)poll(&p, 1, (int)ms);
}

/* ---- commands ------------------------------------------------------------------ */

/* A failed context: counted, and why it failed kept. */
static void conn_failed(struct bw_sync *s, redisContext *c, const char *what)
{
	bool timeout = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);

	stat_add(&s->stats.errors, 1);
	if (timeout)
		stat_add(&s->stats.timeouts, 1);
	set_error(s, "%s: %s", what,
	          timeout        ? "no answer within the timeout"
	          : c->errstr[0] ? c->errstr
	                         : "closed");
}

/*
 * Sends a command and reads its reply: the reply (the caller frees it; a
 * Redis error reply is counted and kept as the last error), or NULL when
 * the connection failed (it must be closed).
 */
static redisReply *cmd(struct bw_sync *s, redisContext *c, int argc, const char **argv,
                       const size_t *lens)
{
	stat_add(&s->stats.requests, 1);
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	if (!r) {
		conn_failed(s, c, argv[0]);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		stat_add(&s->stats.errors, 1);
		set_error(s, "%s: %.*s", argv[0], (int)r->len, r->str);
	}
	return r;
}

/* A command whose reply is only checked: 0, or -1 (the connection failed, or an error reply). */
static int cmd_ok(struct bw_sync *s, redisContext *c, int argc, const char **argv,
                  const size_t *lens)
{
	redisReply *r = cmd(s, c, argc, argv, lens);
	int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;

	if (r)
		freeReplyObject(r);
	return rc;
}

static struct timeval tv_ms(uint32_t ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

/* "host:port" or "[v6]:port" of rc. */
static void addr_text(char *buf, size_t cap, const struct bw_redis_config *rc)
{
	snprintf(buf, cap, strchr(rc->host, ':') ? "[%s]:%u" : "%s:%u", rc->host, rc->port);
}

/* The master's address from the holder into s->rc: 0, or -1 when none is known. */
static int take_master(struct bw_sync *s)
{
	bw_master_get(s->rc.master, s->rc.host, sizeof(s->rc.host), &s->rc.port);
	if (s->rc.host[0] && s->rc.port)
		return 0;
	stat_add(&s->stats.errors, 1);
	set_error(s, "no Redis master known yet: no sentinel named one");
	return -1;
}

/* A connection, with AUTH and SELECT done: NULL when it failed (why is kept). */
static redisContext *open_conn(struct bw_sync *s, bool select)
{
	const struct bw_redis_config *rc = &s->rc;
	char addr[BW_REDIS_HOST_MAX + 8];
	redisContext *c;

	if (rc->master && take_master(s) < 0)
		return NULL;
	if (rc->path[0])
		c = redisConnectUnixWithTimeout(rc->path, tv_ms(rc->connect_timeout_ms));
	else
		c = redisConnectWithTimeout(rc->host, rc->port, tv_ms(rc->connect_timeout_ms));
	if (!c) {
		stat_add(&s->stats.errors, 1);
		set_error(s, "connect: out of memory");
		return NULL;
	}
	if (c->err) {
		stat_add(&s->stats.errors, 1);
		if (rc->path[0]) {
			set_error(s, "connect %s: %s", rc->path, c->errstr);
		} else {
			addr_text(addr, sizeof(addr), rc);
			set_error(s, "connect %s: %s", addr, c->errstr);
		}
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv_ms(rc->request_timeout_ms));
	if (!rc->path[0] && redisEnableKeepAlive(c) != REDIS_OK) {
		conn_failed(s, c, "keepalive");
		redisFree(c);
		return NULL;
	}
	if (rc->password[0]) {
		const char *argv[3] = { "AUTH" };
		size_t lens[3] = { 4 };
		int n = 1;
		if (rc->user[0]) {
			argv[n] = rc->user;
			lens[n++] = strlen(rc->user);
		}
		argv[n] = rc->password;
		lens[n++] = strlen(rc->password);
		if (cmd_ok(s, c, n, argv, lens) < 0) {
			redisFree(c);
			return NULL;
		}
	}
	if (select && rc->db) {
		char db[16];
		int n = snprintf(db, sizeof(db), "%u", rc->db);
		const char *argv[2] = { "SELECT", db };
		size_t lens[2] = { 6, (size_t)n };
		if (cmd_ok(s, c, 2, argv, lens) < 0) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

static void close_conns(struct bw_sync *s)
{
	if (s->sub)
		redisFree(s->sub);
	if (s->rd)
		redisFree(s->rd);
	s->sub = s->rd = NULL;
	stat_set(&s->stats.up, 0);
}

/* ---- values -------------------------------------------------------------------- */

/* Removes an expired value from Redis, if it is still the one read. */
static void remove_expired(struct bw_sync *s, const char *key, const char *tenant,
                           const uint8_t *topic, size_t len, const char *val, size_t vlen)
{
	size_t note_len;
	char *note = bw_keys_note(s->node, tenant, topic, len, &note_len);

	if (!note)
		return;
	const char *argv[] = { "EVAL", EXPIRE_SCRIPT, "1", key, (const char *)topic,
		               val,    s->channel,    note };
	size_t lens[] = { 4,    sizeof(EXPIRE_SCRIPT) - 1, 1,       strlen(key), len,
		          vlen, strlen(s->channel),        note_len };
	redisReply *r = cmd(s, s->rd, 8, argv, lens);
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
		stat_add(&s->stats.expired, 1);
	if (r)
		freeReplyObject(r);
	free(note);
}

/*
 * The message a stored value of tenant's topic stands for: 0 and *out
 * (NULL when it has expired: removed from Redis then), or -1 for a value
 * the record checks refuse, or one of another tenant or topic (counted,
 * logged, left alone).
 */
static int value_msg(struct bw_sync *s, const char *key, const char *tenant, uint32_t tid,
                     const uint8_t *topic, size_t len, const char *val, size_t vlen, int64_t off,
                     struct bw_msg **out)
{
	StoredMessage *r = NULL;
	int rc = bw_record_message_decode((const uint8_t *)val, vlen, &r);

	*out = NULL;
	if (rc == 0 &&
	    (strcmp(r->tenant, tenant) || strlen(r->topic) != len || memcmp(r->topic, topic, len)))
		rc = -EINVAL; /* another tenant's or topic's: not this field's */
	if (rc < 0) {
		bw_record_message_free(&r); /* NULL when it did not decode */
		stat_add(&s->stats.bad, 1);
		bw_log_warn("redis: %s: the value of '%.*s' is not a retained message of it (%s): "
		            "skipped",
		            key, (int)(len > 200 ? 200 : len), (const char *)topic,
		            rc == -EINVAL ? "invalid" : strerror(-rc));
		return -1;
	}
	if (r->has_expiry_at_ms && r->expiry_at_ms && r->expiry_at_ms <= wall_ms()) {
		bw_record_message_free(&r);
		remove_expired(s, key, tenant, topic, len, val, vlen);
		return 0;
	}
	*out = bw_msgrec_msg(r, tid, off);
	bw_record_message_free(&r);
	if (!*out) {
		bw_log_error("redis: %s: '%.*s' not loaded: out of memory", key, (int)len,
		             (const char *)topic);
		return -1;
	}
	return 0;
}

/* ---- loading ------------------------------------------------------------------- */

/* What the hub held when a load began: (tenant, topic) -> message. */
struct seen {
	struct hnode h;
	struct seen *next; /* all of them */
	struct bw_msg *msg;
	uint32_t tenant;
	bool found; /* Redis holds the topic */
	uint16_t len;
	uint8_t topic[];
};

struct before {
	struct htab tab;
	struct seen *all;
	uint64_t seed;
	uint32_t tenant; /* the one being visited */
	int rc;
};

static uint64_t seen_hash(const struct before *b, uint32_t tenant, const uint8_t *topic, size_t len)
{
	return edge_hash(b->seed, (const void *)(uintptr_t)(tenant + 1u), topic, len);
}

static int remember(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct before *b = arg;

	if (bw_topic_is_sys(topic, len))
		return 0; /* the node's own statistics: never in Redis */
	struct seen *e = malloc(sizeof(*e) + len);
	if (!e)
		return b->rc = -ENOMEM;
	e->msg = bw_msg_ref(msg);
	e->tenant = b->tenant;
	e->found = false;
	e->len = (uint16_t)len;
	memcpy(e->topic, topic, len);
	e->h.hash = seen_hash(b, b->tenant, topic, len);
	htab_insert(&b->tab, &e->h);
	e->next = b->all;
	b->all = e;
	return 0;
}

static struct seen *seen_find(struct before *b, uint32_t tenant, const uint8_t *topic, size_t len)
{
	uint64_t h = seen_hash(b, tenant, topic, len);

	for (struct hnode *n = b->tab.b[h & b->tab.mask]; n; n = n->next) {
		struct seen *e = BW_CONTAINER_OF(n, struct seen, h);
		if (n->hash == h && e->tenant == tenant && e->len == len &&
		    !memcmp(e->topic, topic, len))
			return e;
	}
	return NULL;
}

static void before_free(struct before *b)
{
	while (b->all) {
		struct seen *e = b->all;
		b->all = e->next;
		bw_msg_unref(&e->msg);
		free(e);
	}
	htab_fini(&b->tab);
}

struct load {
	struct before b;
	int64_t off;
	bool sweep;
	uint64_t messages, tenants;
};

/* Loads one tenant's hash (HSCAN): 0, or -1 when the connection failed. */
static int load_hash(struct bw_sync *s, struct load *ld, const char *key, size_t klen)
{
	char tenant[BW_TENANT_NAME_MAX + 1], cursor[32] = "0", count[16];
	int clen = snprintf(count, sizeof(count), "%u", s->cfg.batch);

	if (bw_keys_retained_tenant(key, klen, s->prefix, tenant, sizeof(tenant)) < 0)
		return 0; /* matched the pattern, but not a key of ours */
	int tid = bw_hub_tenant_find(s->cfg.hub, tenant); /* added with its first message */
	ld->tenants++;
	do {
		const char *argv[] = { "HSCAN", key, cursor, "COUNT", count };
		size_t lens[] = { 5, klen, strlen(cursor), 5, (size_t)clen };
		redisReply *r = cmd(s, s->rd, 5, argv, lens);
		if (!r)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements % 2) {
			if (r->type != REDIS_REPLY_ERROR)
				set_error(s, "HSCAN %.*s: an answer of an unexpected shape",
				          (int)klen, key);
			freeReplyObject(r);
			return 0; /* WRONGTYPE, say: nothing of ours there */
		}
		snprintf(cursor, sizeof(cursor), "%.*s", (int)r->element[0]->len,
		         r->element[0]->str);
		const redisReply *kv = r->element[1];
		for (size_t i = 0; i + 1 < kv->elements; i += 2) {
			const redisReply *f = kv->element[i], *v = kv->element[i + 1];
			const uint8_t *topic = (const uint8_t *)f->str;
			struct bw_msg *m;
			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
			    f->len == 0 || f->len > UINT16_MAX ||
			    bw_topic_name_check(topic, f->len) != 0) {
				stat_add(&s->stats.bad, 1);
				continue;
			}
			if (tid < 0 && (tid = bw_hub_tenant_add(s->cfg.hub, tenant)) < 0) {
				bw_log_error("redis: %.*s: tenant %s not loaded: %s", (int)klen,
				             key, tenant,
				             tid == -ENOSPC ? "the node holds max_tenants already"
				                            : strerror(-tid));
				freeReplyObject(r);
				return 0;
			}
			if (value_msg(s, key, tenant, (uint32_t)tid, topic, f->len, v->str, v->len,
			              ld->off, &m) < 0 ||
			    !m)
				continue;
			struct seen *e = seen_find(&ld->b, (uint32_t)tid, topic, f->len);
			if (e)
				e->found = true;
			int rc = bw_hub_retained_cas(s->cfg.hub, (uint32_t)tid, topic, f->len,
			                             e ? e->msg : NULL, m);
			if (rc < 0)
				bw_log_warn("redis: tenant %s: retained '%.*s' not loaded: %s",
				            tenant, (int)f->len, (const char *)topic,
				            rc == -EDQUOT ? "over the tenant's retained quota"
				                          : strerror(-rc));
			bw_msg_unref(&m);
			ld->messages++;
		}
		freeReplyObject(r);
		if (stopping(s))
			return -1;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/*
 * Waits (up to drain_wait_ms) until the workers hold no write for Redis:
 * true when they do not, so a reload may remove what Redis lacks.
 */
static bool drained(struct bw_sync *s)
{
	if (!s->cfg.held)
		return true;
	uint64_t end = mono_ms() + s->cfg.drain_wait_ms;
	while (s->cfg.held(s->cfg.held_arg) > 0) {
		if (mono_ms() >= end || stopping(s))
			return false;
		nap(s, DRAIN_POLL_MS);
	}
	return true;
}

/* Loads every tenant's hash into the hub: 0, or -1 when the connection failed. */
static int load_all(struct bw_sync *s, bool reload)
{
	struct load ld = { .off = bw_msgrec_wall_offset() };
	char cursor[32] = "0", count[16];
	int clen = snprintf(count, sizeof(count), "%u", s->cfg.batch);
	uint64_t t0 = mono_ms();
	int rc = 0;

	ld.sweep = drained(s);
	if (stopping(s))
		return -1;
	if (reload && !ld.sweep)
		bw_log_warn("redis: the workers still hold writes for Redis after %u ms: this "
		            "reload only adds, it removes nothing",
		            s->cfg.drain_wait_ms);
	ld.b.seed = mix64((uint64_t)t0 ^ (uint64_t)(uintptr_t)s);
	if (htab_init(&ld.b.tab, 1024) < 0)
		return -1;
	for (uint32_t t = 0; t < bw_hub_tenants(s->cfg.hub) && ld.b.rc == 0; t++) {
		ld.b.tenant = t;
		bw_hub_retained_each(s->cfg.hub, t, remember, &ld.b);
	}
	if (ld.b.rc < 0) {
		set_error(s, "load: out of memory");
		before_free(&ld.b);
		return -1;
	}
	do {
		const char *argv[] = { "SCAN", cursor, "MATCH", s->match, "COUNT", count };
		size_t lens[] = { 4, strlen(cursor), 5, strlen(s->match), 5, (size_t)clen };
		redisReply *r = cmd(s, s->rd, 6, argv, lens);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			if (r)
				freeReplyObject(r);
			rc = -1;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%.*s", (int)r->element[0]->len,
		         r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements && rc == 0; i++) {
			const redisReply *k = r->element[1]->element[i];
			if (k->type == REDIS_REPLY_STRING)
				rc = load_hash(s, &ld, k->str, k->len);
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	uint64_t removed = 0;
	if (rc == 0 && ld.sweep) {
		/* What the hub held and Redis no longer has, unless a worker changed it since. */
		for (struct seen *e = ld.b.all; e; e = e->next) {
			if (!e->found && bw_hub_retained_cas(s->cfg.hub, e->tenant, e->topic,
			                                     e->len, e->msg, NULL) == 0)
				removed++;
		}
	}
	before_free(&ld.b);
	if (rc < 0)
		return -1;
	stat_set(&s->stats.messages, ld.messages);
	stat_add(&s->stats.loads, 1);
	bw_log_info("redis: retained messages %s: %llu messages of %llu tenants in %llu ms%s",
	            reload ? "reloaded" : "loaded", (unsigned long long)ld.messages,
	            (unsigned long long)ld.tenants, (unsigned long long)(mono_ms() - t0),
	            removed ? ", some removed that Redis no longer holds" : "");
	return 0;
}

/* ---- the sentinels ------------------------------------------------------------- */

/*
 * With sentinels: whether the server s->rd is on says it is a master
 * (ROLE). A sentinel may name an old master for a moment, and a demoted
 * one still answers reads: its notes would stop when the workers write
 * elsewhere. An error reply (ROLE not allowed) cannot tell: it passes.
 */
static int check_role(struct bw_sync *s)
{
	const char *argv[] = { "ROLE" };
	size_t lens[] = { 4 };
	char addr[BW_REDIS_HOST_MAX + 8];
	redisReply *r = cmd(s, s->rd, 1, argv, lens);
	int rc = 0;

	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master")) {
		addr_text(addr, sizeof(addr), &s->rc);
		stat_add(&s->stats.errors, 1);
		set_error(s, "%s is a %.*s, not a master", addr,
		          (int)(r->element[0]->len > 16 ? 16 : r->element[0]->len),
		          r->element[0]->str);
		rc = -1;
	}
	freeReplyObject(r);
	return rc;
}

/*
 * Asks the sentinels where the master is: true when the answer differs
 * from the holder's (which then has it, and the workers follow). False
 * without sentinels, when it did not move, or when none answered (the
 * first of a streak of those is logged).
 */
static bool discover(struct bw_sync *s)
{
	char host[BW_REDIS_HOST_MAX], was[BW_REDIS_HOST_MAX + 8], err[BW_REDIS_ERROR_MAX];
	uint16_t port = 0;

	if (!s->sentinel)
		return false;
	s->asked_ms = mono_ms();
	if (bw_sentinel_ask(s->sentinel, host, sizeof(host), &port, err, sizeof(err)) < 0) {
		stat_add(&s->stats.unanswered, 1);
		if (!s->sentinel_failing && !stopping(s))
			bw_log_warn("redis: sentinel: master %s: %s", s->scfg.name, err);
		s->sentinel_failing = true;
		return false;
	}
	if (s->sentinel_failing)
		bw_log_info("redis: sentinel: the sentinels answer again");
	s->sentinel_failing = false;
	if (!bw_master_set(s->rc.master, host, port, was, sizeof(was)))
		return false;
	if (was[0])
		stat_add(&s->stats.failovers, 1);
	bw_log_warn(strchr(host, ':') ? "redis: sentinel: master %s is now [%s]:%u (was %s)"
	                              : "redis: sentinel: master %s is now %s:%u (was %s)",
	            s->scfg.name, host, port, was[0] ? was : "unknown");
	return true;
}

/* Whether the sentinels are due to be asked again. */
static bool ask_due(struct bw_sync *s)
{
	return s->sentinel && mono_ms() - s->asked_ms >= SENTINEL_ASK_MS;
}

/*
 * The backoff after a failure: the sentinels asked at once and then each
 * SENTINEL_ASK_MS, and the wait cut short when they name a new master.
 */
static void wait_retry(struct bw_sync *s)
{
	uint64_t end = mono_ms() + s->backoff_ms;
	bool moved = discover(s);

	while (!moved && !stopping(s)) {
		uint64_t now = mono_ms();

		if (now >= end)
			break;
		uint64_t left = end - now;
		nap(s, (uint32_t)(s->sentinel && left > SENTINEL_ASK_MS ? SENTINEL_ASK_MS : left));
		if (ask_due(s))
			moved = discover(s);
	}
	if (moved)
		s->backoff_ms = s->rc.backoff_min_ms;
	else
		s->backoff_ms = s->backoff_ms >= s->rc.backoff_max_ms / 2 ? s->rc.backoff_max_ms
		                                                          : s->backoff_ms * 2;
}

/* ---- notes --------------------------------------------------------------------- */

struct note {
	char tenant[BW_TENANT_NAME_MAX + 1];
	char key[BW_KEYS_MAX];
	uint16_t len;
	uint8_t topic[]; /* len bytes */
};

/*
 * A takeover note (PREFIX:sessions, keys.h) handed to cfg.taken unless it
 * is this node's own: true when r was one (acted on or not).
 */
static bool takeover(struct bw_sync *s, const redisReply *r)
{
	struct bw_keys_takeover t;
	char tenant[BW_TENANT_NAME_MAX + 1];

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[1]->type != REDIS_REPLY_STRING || strcmp(r->element[1]->str, s->takeovers) ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return false;
	if (bw_keys_takeover_parse(r->element[2]->str, r->element[2]->len, &t) < 0 ||
	    t.tenant_len > BW_TENANT_NAME_MAX) {
		stat_add(&s->stats.bad, 1);
		return true;
	}
	if (!memcmp(t.node, s->node, BW_KEYS_NODE_LEN) || !s->cfg.taken)
		return true;
	memcpy(tenant, t.tenant, t.tenant_len);
	tenant[t.tenant_len] = '\0';
	stat_add(&s->stats.takeovers, 1);
	s->cfg.taken(s->cfg.taken_arg, tenant, t.id, t.id_len, t.token);
	return true;
}

/* A note to act on, or NULL: not a note, or one of this node's. */
static struct note *note_of(struct bw_sync *s, const redisReply *r)
{
	struct bw_keys_note n;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return NULL;
	if (bw_keys_note_parse(r->element[2]->str, r->element[2]->len, &n) < 0) {
		stat_add(&s->stats.bad, 1);
		return NULL;
	}
	if (!memcmp(n.node, s->node, BW_KEYS_NODE_LEN))
		return NULL; /* our own: the worker set the hub already */
	if (bw_topic_name_check(n.topic, n.topic_len) != 0) {
		stat_add(&s->stats.bad, 1);
		return NULL;
	}
	struct note *e = malloc(sizeof(*e) + n.topic_len);
	if (!e)
		return NULL;
	memcpy(e->tenant, n.tenant, n.tenant_len);
	e->tenant[n.tenant_len] = '\0';
	e->len = (uint16_t)n.topic_len;
	memcpy(e->topic, n.topic, n.topic_len);
	if (bw_keys_retained(e->key, sizeof(e->key), s->prefix, e->tenant) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

/* Sets or clears the note's topic in the hub by the value read (r). */
static void apply(struct bw_sync *s, const struct note *e, const redisReply *r, int64_t off)
{
	int tid = bw_hub_tenant_find(s->cfg.hub, e->tenant);
	struct bw_msg *m = NULL;

	if (r->type == REDIS_REPLY_STRING) {
		if (tid < 0)
			tid = bw_hub_tenant_add(s->cfg.hub, e->tenant);
		if (tid < 0 || value_msg(s, e->key, e->tenant, (uint32_t)tid, e->topic, e->len,
		                         r->str, r->len, off, &m) < 0)
			return;
	} else if (r->type != REDIS_REPLY_NIL || tid < 0) {
		return;
	}
	int rc = bw_hub_retained_put(s->cfg.hub, (uint32_t)tid, e->topic, e->len, m);
	if (rc < 0)
		bw_log_warn("redis: tenant %s: retained '%.*s' from another node not applied: %s",
		            e->tenant, (int)e->len, (const char *)e->topic,
		            rc == -EDQUOT ? "over the tenant's retained quota" : strerror(-rc));
	else
		stat_add(&s->stats.applied, 1);
	bw_msg_unref(&m);
}

/*
 * Reads the values of n notes in one pipeline and applies each: 0, or -1
 * when the reader failed.
 */
static int apply_notes(struct bw_sync *s, struct note **v, size_t n)
{
	int64_t off = bw_msgrec_wall_offset();
	size_t sent = 0;
	int rc = 0;

	for (; sent < n; sent++) {
		const char *argv[] = { "HGET", v[sent]->key, (const char *)v[sent]->topic };
		size_t lens[] = { 4, strlen(v[sent]->key), v[sent]->len };
		if (redisAppendCommandArgv(s->rd, 3, argv, lens) != REDIS_OK)
			break;
		stat_add(&s->stats.requests, 1);
	}
	for (size_t i = 0; i < sent; i++) {
		redisReply *r;
		if (rc == 0 && redisGetReply(s->rd, (void **)&r) != REDIS_OK) {
			conn_failed(s, s->rd, "HGET");
			rc = -1;
		}
		if (rc == 0) {
			if (r->type == REDIS_REPLY_ERROR) {
				stat_add(&s->stats.errors, 1);
				set_error(s, "HGET: %.*s", (int)r->len, r->str);
			}
			apply(s, v[i], r, off);
			freeReplyObject(r);
		}
	}
	if (sent < n && rc == 0) {
		set_error(s, "HGET: out of memory");
		rc = -1;
	}
	return rc;
}

/*
 * Reads what the listener has: notes (batched), PONGs. 0, or -1 when a
 * connection failed.
 */
static int take_notes(struct bw_sync *s)
{
	struct note *v[NOTES_BATCH];
	size_t n = 0;
	int rc = 0;

	if (redisBufferRead(s->sub) != REDIS_OK) {
		conn_failed(s, s->sub, "listening");
		return -1;
	}
	s->heard_ms = mono_ms();
	for (;;) {
		redisReply *r = NULL;
		if (redisGetReplyFromReader(s->sub, (void **)&r) != REDIS_OK) {
			conn_failed(s, s->sub, "listening");
			rc = -1;
			break;
		}
		if (!r)
			break;
		if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    !strcmp(r->element[0]->str, "pong"))
			s->ping_since = 0;
		else if (takeover(s, r))
			;
		else if ((v[n] = note_of(s, r)))
			n++;
		freeReplyObject(r);
		if (n == NOTES_BATCH) {
			rc = apply_notes(s, v, n);
			while (n)
				free(v[--n]);
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && n)
		rc = apply_notes(s, v, n);
	while (n)
		free(v[--n]);
	return rc;
}

/*
 * Listens until a connection fails (-1), the node stops (0) or the
 * sentinels name a new master (1).
 */
static int listen_notes(struct bw_sync *s)
{
	struct pollfd p[2] = { { .fd = s->sub->fd, .events = POLLIN },
		               { .fd = s->wake[0], .events = POLLIN } };

	s->heard_ms = mono_ms();
	s->ping_since = 0;
	while (!stopping(s)) {
		int wait = 500;
		if (s->sentinel) {
			uint64_t since = mono_ms() - s->asked_ms;
			wait = since >= SENTINEL_ASK_MS         ? 0
			       : SENTINEL_ASK_MS - since < 500u ? (int)(SENTINEL_ASK_MS - since)
			                                        : 500;
		}
		int rc = poll(p, 2, wait);
		if (rc < 0 && errno != EINTR) {
			set_error(s, "poll: %s", strerror(errno));
			return -1;
		}
		if (stopping(s))
			return 0;
		if (rc > 0 && (p[0].revents & (POLLIN | POLLERR | POLLHUP)) && take_notes(s) < 0)
			return -1;
		if (ask_due(s) && discover(s))
			return 1;
		uint64_t now = mono_ms();
		if (s->ping_since && now - s->ping_since >= s->rc.request_timeout_ms) {
			stat_add(&s->stats.errors, 1);
			stat_add(&s->stats.timeouts, 1);
			set_error(s, "listening: no PONG within %u ms", s->rc.request_timeout_ms);
			return -1;
		}
		if (!s->ping_since && now - s->heard_ms >= PING_IDLE_MS) {
			const char *argv[] = { "PING" };
			size_t lens[] = { 4 };
			int done = 0;
			stat_add(&s->stats.requests, 1);
			if (redisAppendCommandArgv(s->sub, 1, argv, lens) != REDIS_OK)
				return -1;
			while (!done) /* a blocking write, within SO_SNDTIMEO */
				if (redisBufferWrite(s->sub, &done) != REDIS_OK) {
					conn_failed(s, s->sub, "PING");
					return -1;
				}
			s->ping_since = now;
		}
	}
	return 0;
}

/* ---- the thread ---------------------------------------------------------------- */

/* Connects, subscribes and loads: 0, or -1 (closed again; why is kept). */
static int connect_and_load(struct bw_sync *s)
{
	bool reload = atomic_load(&s->stats.loaded) != 0;

	if (s->tried)
		stat_add(&s->stats.reconnects, 1);
	s->tried = true;
	if (!(s->sub = open_conn(s, false)) || !(s->rd = open_conn(s, true)) ||
	    (s->rc.master && check_role(s) < 0)) {
		close_conns(s);
		return -1;
	}
	/* Subscribed before loading: a change made during the load is heard after it. */
	const char *argv[] = { "SUBSCRIBE", s->channel, s->takeovers };
	size_t lens[] = { 9, strlen(s->channel), strlen(s->takeovers) };
	redisReply *r = cmd(s, s->sub, 3, argv, lens);
	bool ok = r && r->type == REDIS_REPLY_ARRAY;
	if (r)
		freeReplyObject(r);
	r = NULL; /* the second channel's confirmation */
	ok = ok && redisGetReply(s->sub, (void **)&r) == REDIS_OK && r &&
	     r->type == REDIS_REPLY_ARRAY;
	if (r)
		freeReplyObject(r);
	if (!ok || load_all(s, reload) < 0) {
		close_conns(s);
		return -1;
	}
	stat_set(&s->stats.up, 1);
	if (!reload) {
		pthread_mutex_lock(&s->mu);
		stat_set(&s->stats.loaded, 1);
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return 0;
}

static void *sync_main(void *arg)
{
	struct bw_sync *s = arg;
	bool logged_down = false;

	while (!stopping(s)) {
		if (connect_and_load(s) < 0) {
			if (stopping(s))
				break;
			char why[BW_REDIS_ERROR_MAX];
			bw_sync_last_error(s, why, sizeof(why));
			if (!logged_down)
				bw_log_warn("redis: state store unreachable, retrying: %s", why);
			logged_down = true;
			wait_retry(s);
			continue;
		}
		if (logged_down || s->stats.reconnects)
			bw_log_info("redis: state store connected");
		logged_down = false;
		s->backoff_ms = s->rc.backoff_min_ms;
		int rc = listen_notes(s);
		if (rc < 0) {
			char why[BW_REDIS_ERROR_MAX];
			bw_sync_last_error(s, why, sizeof(why));
			bw_log_warn("redis: state store connection lost, reconnecting: %s", why);
			logged_down = true;
		}
		close_conns(s);
		if (rc < 0)
			discover(s); /* at once: a failover may be why */
	}
	close_conns(s);
	return NULL;
}

int bw_sync_start(struct bw_sync **out, const struct bw_sync_config *cfg, char *err, size_t cap)
{
	struct bw_sync *s;
	int rc;

	*out = NULL;
	if (!cfg->redis || !cfg->hub || bw_keys_prefix_check(cfg->prefix) || !cfg->node ||
	    strlen(cfg->node) != BW_KEYS_NODE_LEN || !cfg->sentinel != !cfg->redis->master) {
		snprintf(err, cap, "redis: bad state store settings");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, cap, "redis: out of memory");
		return -ENOMEM;
	}
	s->cfg = *cfg;
	s->rc = *cfg->redis;
	s->cfg.redis = &s->rc;
	snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->prefix);
	snprintf(s->node, sizeof(s->node), "%s", cfg->node);
	s->cfg.prefix = s->prefix;
	s->cfg.node = s->node;
	if (!s->cfg.drain_wait_ms)
		s->cfg.drain_wait_ms = DRAIN_WAIT_MS;
	if (!s->cfg.batch)
		s->cfg.batch = SCAN_BATCH;
	if (!s->rc.connect_timeout_ms)
		s->rc.connect_timeout_ms = BW_REDIS_CONNECT_TIMEOUT_MS;
	if (!s->rc.request_timeout_ms)
		s->rc.request_timeout_ms = BW_REDIS_REQUEST_TIMEOUT_MS;
	if (!s->rc.backoff_min_ms)
		s->rc.backoff_min_ms = BW_REDIS_BACKOFF_MIN_MS;
	if (!s->rc.backoff_max_ms)
		s->rc.backoff_max_ms = BW_REDIS_BACKOFF_MAX_MS;
	s->backoff_ms = s->rc.backoff_min_ms;
	atomic_init(&s->stop, false);
	if (cfg->sentinel) {
		s->scfg = *cfg->sentinel;
		s->cfg.sentinel = &s->scfg;
		rc = bw_sentinel_new(&s->sentinel, &s->scfg, &s->stop);
		if (rc < 0) {
			snprintf(err, cap, "redis: sentinel: %s", strerror(-rc));
			free(s);
			return rc;
		}
		s->asked_ms = mono_ms(); /* the main thread asked just now */
	}
	bw_keys_retained_channel(s->channel, sizeof(s->channel), s->prefix);
	bw_keys_sessions_channel(s->takeovers, sizeof(s->takeovers), s->prefix);
	bw_keys_retained_match(s->match, sizeof(s->match), s->prefix);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = -pthread_create(&s->thread, NULL, sync_main, s);
	if (rc < 0) {
		close(s->wake[0]);
		close(s->wake[1]);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	snprintf(err, cap, "redis: cannot start the state thread: %s", strerror(-rc));
	bw_sentinel_free(&s->sentinel);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

bool bw_sync_wait_loaded(struct bw_sync *s, uint32_t ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!atomic_load(&s->stats.loaded)) {
		if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
			break;
	}
	bool loaded = atomic_load(&s->stats.loaded) != 0;
	pthread_mutex_unlock(&s->mu);
	return loaded;
}

const struct bw_sync_stats *bw_sync_stats(const struct bw_sync *s)
{
	return &s->stats;
}

void bw_sync_last_error(struct bw_sync *s, char *buf, size_t len)
{
	if (len == 0)
		return;
	pthread_mutex_lock(&s->mu);
	snprintf(buf, len, "%s", s->last_error);
	pthread_mutex_unlock(&s->mu);
}

void bw_sync_stop(struct bw_sync **sp)
{
	struct bw_sync *s = *sp;

	if (!s)
		return;
	atomic_store(&s->stop, true);
	ssize_t w = write(s->wake[1], "x", 1);
	(void)w;
	pthread_join(s->thread, NULL);
	close(s->wake[0]);
	close(s->wake[1]);
	bw_sentinel_free(&s->sentinel);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	*sp = NULL;
}
