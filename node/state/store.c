/*
 * A worker's retained writes to Redis (see store.h). The queue is a FIFO
 * of struct write, oldest first, plus a hash table that finds the newest
 * write of a (tenant, topic): the one a new write may replace (while it
 * waits) and the one that tells a failed older write it is superseded.
 *
 * A write is "waiting" until bw_redis_cmd() took it, then "sent" until its
 * callback. The callback always finds it allocated: writes are freed only
 * from their own callback, or by bw_store_free() once the client (and so
 * every callback) is gone. `cursor` is the oldest write that may be
 * waiting: every one before it is sent, so a pump does not walk the sent
 * head of a long queue; a failure moves it back to the head.
 */
#include "node/state/store.h"

#include "node/core/htab.h"
#include "node/core/hub.h"
#include "node/core/msg.h"
#include "node/core/msgrec.h"
#include "node/io/ring.h"
#include "node/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * KEYS[1] the tenant's hash; ARGV: topic, value ("" clears), channel, note.
 * A value is never empty: a record holds at least its version.
 */
static const char WRITE_SCRIPT[] = "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) "
                                   "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
                                   "redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1";

#define ERROR_LOG_MS 10000u /* a streak of failures is logged once in this */

struct write {
	struct write *prev, *next; /* the FIFO */
	struct hnode h;            /* in s->newest while it is its topic's newest */
	struct bw_store *s;
	struct bw_msg *msg; /* NULL: a clear */
	uint64_t made_ms;   /* wall clock, the record's created_at_ms */
	uint32_t tenant;
	bool sent;
	bool newest;
	bool purge; /* DEL of the tenant's hash; no topic */
	uint16_t len;
	uint8_t topic[];
};

struct bw_store {
	struct bw_store_config cfg;
	struct bw_redis_config redis_cfg;
	char prefix[BW_KEYS_PREFIX_MAX + 1];
	char node[BW_KEYS_NODE_LEN + 1];
	char channel[BW_KEYS_MAX];
	struct bw_redis *r; /* while attached */
	struct write *head, *tail, *cursor;
	size_t n;
	struct htab newest;
	uint64_t seed;
	uint64_t errors_seen; /* the client's errors counter, last copied */
	bool detaching;       /* failures are the client closing: not logged */
	uint64_t logged_ms;   /* when a failure was last logged */
	uint64_t unlogged;    /* failures since */
	struct bw_store_stats stats;
	pthread_mutex_t err_mu;
	char last_error[BW_REDIS_ERROR_MAX];
};

static void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static void stat_add(_Atomic uint64_t *c, uint64_t d)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
	                      memory_order_relaxed);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t topic_hash(const struct bw_store *s, uint32_t tenant, const uint8_t *topic,
                           size_t len)
{
	return edge_hash(s->seed, (const void *)(uintptr_t)(tenant + 1u), topic, len);
}

static struct write *find_newest(struct bw_store *s, uint32_t tenant, const uint8_t *topic,
                                 size_t len)
{
	uint64_t h = topic_hash(s, tenant, topic, len);

	for (struct hnode *n = s->newest.b[h & s->newest.mask]; n; n = n->next) {
		struct write *w = BW_CONTAINER_OF(n, struct write, h);
		if (n->hash == h && w->tenant == tenant && w->len == len &&
		    !memcmp(w->topic, topic, len))
			return w;
	}
	return NULL;
}

static void not_newest(struct bw_store *s, struct write *w)
{
	if (w->newest) {
		htab_remove(&s->newest, &w->h);
		w->newest = false;
	}
}

/* Takes w out of the queue and frees it. */
static void write_free(struct bw_store *s, struct write *w)
{
	not_newest(s, w);
	if (s->cursor == w)
		s->cursor = w->next;
	if (w->prev)
		w->prev->next = w->next;
	else
		s->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		s->tail = w->prev;
	s->n--;
	stat_set(&s->stats.queued, s->n);
	bw_msg_unref(&w->msg);
	free(w);
}

static void set_error(struct bw_store *s, const char *text)
{
	pthread_mutex_lock(&s->err_mu);
	snprintf(s->last_error, sizeof(s->last_error), "%s", text);
	pthread_mutex_unlock(&s->err_mu);
}

/* A failure, logged once an ERROR_LOG_MS with how many there were. */
static void log_failure(struct bw_store *s, const char *why)
{
	uint64_t now = mono_ms();

	s->unlogged++;
	if (s->logged_ms && now - s->logged_ms < ERROR_LOG_MS)
		return;
	bw_log_warn("redis: retained writes failing (%llu since the last report), %zu held: %s",
	            (unsigned long long)s->unlogged, s->n, why);
	s->logged_ms = now;
	s->unlogged = 0;
}

static void on_written(void *arg, const redisReply *reply, const char *error)
{
	struct write *w = arg;
	struct bw_store *s = w->s;
	char why[BW_REDIS_ERROR_MAX];

	if (reply && reply->type != REDIS_REPLY_ERROR) {
		stat_add(&s->stats.written, 1);
		write_free(s, w);
		return;
	}
	if (reply) {
		snprintf(why, sizeof(why), "Redis answered: %.*s", (int)reply->len, reply->str);
		stat_add(&s->stats.errors, 1); /* the client counts only failed requests */
		set_error(s, why);
		error = why;
	}
	stat_add(&s->stats.failed, 1);
	if (!s->detaching)
		log_failure(s, error);
	if (!w->newest && !w->purge) {
		/* A newer write of the topic follows: this one is obsolete. */
		write_free(s, w);
		return;
	}
	w->sent = false;
	s->cursor = s->head; /* sent again, in order, from the tick */
}

/*
 * Sends w: 0, 1 when it was dropped (a record the rules refuse: it could
 * never be written), or the client's -errno (not sent; try later).
 */
static int send_write(struct bw_store *s, struct write *w)
{
	const char *tenant = bw_hub_tenant_name(s->cfg.hub, w->tenant);
	char key[BW_KEYS_MAX];
	uint8_t *value = NULL;
	size_t value_len = 0, note_len = 0;
	char *note;
	int rc;

	rc = bw_keys_retained(key, sizeof(key), s->prefix, tenant);
	if (rc >= 0 && w->purge) {
		const char *argv[] = { "DEL", key };
		size_t lens[] = { 3, strlen(key) };
		rc = bw_redis_cmd(s->r, on_written, w, 2, argv, lens);
		if (rc == 0)
			w->sent = true;
		return rc;
	}
	if (rc >= 0 && w->msg)
		rc = bw_msgrec_encode(w->msg, tenant, s->node, w->made_ms, bw_msgrec_wall_offset(),
		                      &value, &value_len);
	if (rc == -EINVAL || rc == -EMSGSIZE || rc == -ENAMETOOLONG) {
		bw_log_error("redis: tenant %s: retained message of '%.*s' not written: %s", tenant,
		             (int)w->len, (const char *)w->topic,
		             rc == -EMSGSIZE ? "too large for a record"
		                             : "refused by the record rules");
		write_free(s, w);
		return 1;
	}
	if (rc < 0)
		return rc;
	note = bw_keys_note(s->node, tenant, w->topic, w->len, &note_len);
	if (!note) {
		free(value);
		return -ENOMEM;
	}
	const char *argv[] = { "EVAL",
		               WRITE_SCRIPT,
		               "1",
		               key,
		               (const char *)w->topic,
		               value ? (const char *)value : "",
		               s->channel,
		               note };
	size_t lens[] = { 4,         sizeof(WRITE_SCRIPT) - 1, 1,       strlen(key), w->len,
		          value_len, strlen(s->channel),       note_len };
	rc = bw_redis_cmd(s->r, on_written, w, 8, argv, lens);
	free(value);
	free(note);
	if (rc == 0)
		w->sent = true;
	return rc;
}

/* Sends the waiting writes, oldest first, while the client takes them. */
static void pump(struct bw_store *s)
{
	if (!s->r || !bw_redis_up(s->r))
		return;
	while (s->cursor) {
		struct write *w = s->cursor;
		if (w->sent) {
			s->cursor = w->next;
			continue;
		}
		struct write *next = w->next;
		int rc = send_write(s, w); /* may free w (and move the cursor) */
		if (rc < 0)
			return;
		if (rc == 0)
			s->cursor = next;
	}
}

int bw_store_new(struct bw_store **out, const struct bw_store_config *cfg)
{
	struct bw_store *s;

	*out = NULL;
	if (!cfg->redis || !cfg->hub || cfg->queue_max == 0 || bw_keys_prefix_check(cfg->prefix) ||
	    !cfg->node || strlen(cfg->node) != BW_KEYS_NODE_LEN)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->redis_cfg = *cfg->redis;
	s->cfg.redis = &s->redis_cfg;
	snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->prefix);
	snprintf(s->node, sizeof(s->node), "%s", cfg->node);
	s->cfg.prefix = s->prefix;
	s->cfg.node = s->node;
	s->seed = mix64((uint64_t)(uintptr_t)s ^ wall_ms());
	if (bw_keys_retained_channel(s->channel, sizeof(s->channel), s->prefix) < 0 ||
	    htab_init(&s->newest, 64) < 0) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->err_mu, NULL);
	*out = s;
	return 0;
}

int bw_store_attach(struct bw_store *s, struct bw_ring *ring)
{
	if (s->r)
		return -EALREADY;
	return bw_redis_new(&s->r, &s->redis_cfg, ring);
}

bool bw_store_may_write(struct bw_store *s, uint32_t tenant, const uint8_t *topic, size_t len)
{
	if (s->n < s->cfg.queue_max)
		return true;
	struct write *w = find_newest(s, tenant, topic, len);
	if (w && !w->sent)
		return true;
	stat_add(&s->stats.refused, 1);
	return false;
}

/* Appends w to the queue. */
static void enqueue(struct bw_store *s, struct write *w)
{
	w->prev = s->tail;
	if (s->tail)
		s->tail->next = w;
	else
		s->head = w;
	s->tail = w;
	if (!s->cursor)
		s->cursor = w;
	s->n++;
	stat_set(&s->stats.queued, s->n);
}

int bw_store_purge(struct bw_store *s, uint32_t tenant)
{
	struct write *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->tenant = tenant;
	w->purge = true;
	enqueue(s, w);
	pump(s);
	return 0;
}

int bw_store_write(struct bw_store *s, uint32_t tenant, const uint8_t *topic, size_t len,
                   struct bw_msg *msg)
{
	if (len == 0 || len > UINT16_MAX)
		return -EINVAL;
	struct write *w = find_newest(s, tenant, topic, len);
	if (w && !w->sent) {
		/* Waiting: the new value takes its place in the queue. */
		bw_msg_unref(&w->msg);
		w->msg = msg ? bw_msg_ref(msg) : NULL;
		w->made_ms = wall_ms();
		stat_add(&s->stats.replaced, 1);
		pump(s);
		return 0;
	}
	if (s->n >= s->cfg.queue_max)
		return -ENOBUFS;
	struct write *nw = calloc(1, sizeof(*nw) + len);
	if (!nw)
		return -ENOMEM;
	nw->s = s;
	nw->msg = msg ? bw_msg_ref(msg) : NULL;
	nw->made_ms = wall_ms();
	nw->tenant = tenant;
	nw->len = (uint16_t)len;
	memcpy(nw->topic, topic, len);
	if (w)
		not_newest(s, w); /* in flight: it stays, and is not retried if it fails */
	nw->h.hash = topic_hash(s, tenant, topic, len);
	htab_insert(&s->newest, &nw->h);
	nw->newest = true;
	enqueue(s, nw);
	pump(s);
	return 0;
}

/* The client's state and counters into the store's stats. */
static void copy_stats(struct bw_store *s)
{
	const struct bw_redis_stats *rs = bw_redis_stats(s->r);
	char why[BW_REDIS_ERROR_MAX];

	uint64_t errors = atomic_load_explicit(&rs->errors, memory_order_relaxed);

	stat_set(&s->stats.up, bw_redis_up(s->r));
	/* The client's failed requests; Redis error replies are counted as they come. */
	stat_add(&s->stats.errors, errors - s->errors_seen);
	s->errors_seen = errors;
	stat_set(&s->stats.requests, atomic_load_explicit(&rs->requests, memory_order_relaxed));
	stat_set(&s->stats.timeouts, atomic_load_explicit(&rs->timeouts, memory_order_relaxed));
	stat_set(&s->stats.reconnects, atomic_load_explicit(&rs->reconnects, memory_order_relaxed));
	bw_redis_last_error(s->r, why, sizeof(why));
	if (why[0])
		set_error(s, why);
}

void bw_store_tick(struct bw_store *s, uint64_t now_ms)
{
	if (!s->r)
		return;
	bw_redis_tick(s->r, now_ms);
	pump(s);
	copy_stats(s);
}

struct bw_redis *bw_store_client(struct bw_store *s)
{
	return s->r;
}

size_t bw_store_pending(const struct bw_store *s)
{
	return s->n;
}

const struct bw_store_stats *bw_store_stats(const struct bw_store *s)
{
	return &s->stats;
}

void bw_store_last_error(struct bw_store *s, char *buf, size_t len)
{
	if (len == 0)
		return;
	pthread_mutex_lock(&s->err_mu);
	snprintf(buf, len, "%s", s->last_error);
	pthread_mutex_unlock(&s->err_mu);
}

void bw_store_detach(struct bw_store *s, bool ring_ok)
{
	if (!s->r)
		return;
	copy_stats(s);
	/* Writes in flight fail ("client closed") and stay held, or go as superseded. */
	s->detaching = true;
	bw_redis_free(&s->r, ring_ok);
	s->detaching = false;
	s->errors_seen = 0;
	stat_set(&s->stats.up, 0);
}

void bw_store_free(struct bw_store **sp)
{
	struct bw_store *s = *sp;

	if (!s)
		return;
	bw_store_detach(s, false);
	if (s->n)
		bw_log_error("redis: %zu retained writes were not written to Redis: they are lost",
		             s->n);
	while (s->head)
		write_free(s, s->head);
	htab_fini(&s->newest);
	pthread_mutex_destroy(&s->err_mu);
	free(s);
	*sp = NULL;
}
