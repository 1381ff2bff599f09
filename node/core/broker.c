/*
 * The broker of one worker (see broker.h). Sessions are found by client id
 * in a per-tenant chained hash table; offline sessions with a deadline
 * (will delay, session expiry) sit on one list that the tick walks, so the
 * cost of a tick grows with sessions waiting for something, not with all
 * sessions.
 *
 * Each tenant has two indexes here: `index`, this worker's subscriptions
 * (subscribers are sessions), and `replica`, the node's interest (the
 * subscribers are workers, as WORKER_KEY(i, member)). Every filter event of
 * `index` is posted to the other workers' replicas through the hub. This
 * worker's own replica holds the other workers' plain filters and every
 * worker's share group members, not its own plain filters: `index` already
 * answers for those, and a second copy of each would cost an idle
 * subscriber a trie node and an entry more.
 */
#include "node/core/broker.h"
#include "node/core/msgrec.h"
#include "node/core/sessrec.h"
#include "node/state/sessions.h"

#include "tenancy/acl.h"
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/passwd.h"
#include "tenancy/auth/password.h"
#include "tenancy/model.h"
#include "tenancy/policy.h"

#include "node/core/msg.h"
#include "node/core/resolve.h"
#include "node/core/retained.h"
#include "node/core/session.h"
#include "node/core/sub_index.h"
#include "node/log.h"
#include "proto/mqtt/topic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NEVER      UINT32_MAX /* a session expiry interval that never elapses */
#define SYS_TOPICS 9          /* $SYS/broker/... topics sys_stats() publishes, retained */
/*
 * Replica keys: worker i's plain interest is member 0; its share group
 * members are 1..n, one key each, so a group's round-robin over keys
 * weighs each worker by its members.
 */
#define WORKER_KEY(i, member) ((void *)((((uintptr_t)(member) << 8) | (i)) + 1))
#define KEY_WORKER(k)         ((uint32_t)(((uintptr_t)(k)-1) & 0xff))

/*
 * A token bucket: rate a second, a burst of one second's worth. Tokens
 * are kept in thousandths, so rates below 1000 a second stay exact.
 */
struct bucket {
	uint64_t milli; /* tokens x 1000 */
	uint64_t at_ms; /* last refill */
};

/* Takes n tokens of a bucket of rate a second (0: no limit); false: over the rate. */
static bool bucket_take(struct bucket *k, uint64_t rate, uint64_t n, uint64_t now)
{
	if (!rate)
		return true;
	uint64_t cap = rate * 1000, dt = now - k->at_ms;
	if (k->at_ms == 0 || dt >= 1000)
		k->milli = cap;
	else
		k->milli = k->milli + dt * rate > cap ? cap : k->milli + dt * rate;
	k->at_ms = now;
	if (k->milli < n * 1000)
		return false;
	k->milli -= n * 1000;
	return true;
}

struct pending_retained {
	struct pending_retained *next;
	uint8_t granted;
	uint32_t sub_id;
	uint16_t len;
	uint8_t filter[];
};

/* Fields by size, so an idle session carries no padding. */
struct sess {
	struct tenant *t;
	struct sess *hnext;         /* tenant's client-id table */
	struct sess *tnext, *tprev; /* broker's timed list */
	uint64_t congested_ms;
	struct sess *cnext;
	uint64_t hash;
	struct bw_session *state;
	struct bw_conn *conn; /* NULL while offline */
	uint64_t expires_at;  /* offline: when it ends (0: no deadline) */
	struct bw_msg *will;
	uint64_t will_at;            /* offline: when the will goes out (0: not due) */
	struct bw_acl_compiled *acl; /* NULL: no ACL file, everything allowed */
	uint64_t token_exp;          /* connected with a JWT: when it expires (0: never) */
	char *user;                  /* who authenticated (NUL-terminated); NULL: anonymous */
	char *cert_cn;               /* the client certificate's CN (ACL %cn); NULL: none */
	uint64_t token;              /* its fencing token in Redis; 0: not there */
	uint64_t seq;                /* the last sequence number pushed there */
	uint64_t lease_at;           /* connected: when its keys' TTL is renewed */
	struct bucket msgs, bytes;   /* the client's publish rates */
	struct pending_retained *pending;
	uint32_t expiry_s; /* Session Expiry Interval; NEVER */
	uint32_t will_delay_s;
	uint32_t will_expiry_s; /* its Message Expiry Interval: runs from publication */
	uint32_t n_subs;
	bool timed;
	bool congested;     /* on the broker's congested list */
	bool stalled;       /* congested for too long: no longer holds publishers back */
	uint8_t how;        /* enum auth_how: how the client authenticated */
	bool stored;        /* authenticated by the tenancy store, not the files */
	bool persistent;    /* counted in its tenant's persistent sessions */
	bool taken;         /* another node took it: nothing goes elsewhere */
	bool check_receive; /* a subscription needs each delivery checked */
	uint16_t id_len;
	char id[];
};

/* How a session's client proved who it is (a policy reload re-checks it). */
enum auth_how { AUTH_ANONYMOUS, AUTH_PASSWORD, AUTH_CERTIFICATE, AUTH_TOKEN };

struct tenant {
	struct bw_broker *b;
	uint32_t id; /* the hub's */
	bool ready;  /* initialised (on first use) */
	/* Its record in the broker's tenancy snapshot; NULL: a listener's
	 * tenant the store does not hold, whose clients the files check. */
	const struct bw_tenant *rec;
	struct bw_quotas q;        /* in force: the record's, or the node's defaults */
	struct bucket msgs, bytes; /* the tenant's rates: this worker's share */
	struct bw_tenant_stats *stats;
	struct bw_sub_index *index;   /* this worker's subscriptions */
	struct bw_sub_index *replica; /* the node's interest: which workers want what */
	struct sess **tab;
	uint32_t tab_mask;
};

/* A share group delivery for another worker. */
struct share_letter {
	struct bw_msg *msg; /* one reference */
	struct durable *d;  /* a hold of it, or NULL */
	uint8_t hops;       /* workers it was passed on by, when the member had left */
	uint16_t len;
	uint8_t filter[]; /* "$share/{group}/{filter}" */
};

struct listener_ctx {
	struct bw_broker *b;
	struct tenant *t; /* its own (tenant=, or "default") */
	const struct bw_listener_config *cfg;
	bool allow_anonymous;
	uint32_t identity; /* enum bw_config_identity */
};

struct bw_broker {
	struct bw_broker_config cfg;
	struct bw_hub *hub;
	uint32_t self;          /* worker index */
	struct tenant *tenants; /* [bw_hub_tenants_max()], by id; ready on first use */
	uint32_t n_tenants;     /* ids below it may be ready */
	struct listener_ctx *lctx;
	struct bw_conn_ops *ops; /* one a listener, ctx = &lctx[i] */
	struct sess *timed;      /* head of the timed list */
	struct sess *congested;  /* subscribers found congested, see bw_broker_congested() */
	bool pressure;           /* the current publish fed a congested subscriber */
	bool freeing;            /* bw_broker_free(): sessions end without routing */
	uint64_t started_ms, next_sys_ms;
	struct bw_match match;   /* local routing, reused */
	struct bw_match rmatch;  /* the replica's answer, reused */
	struct bw_match pmatch;  /* the replica's pick for a share group whose member left */
	struct bw_msg **rv;      /* retained messages for a new subscription */
	size_t out_pool;         /* output bytes queued for all connections (outq pool) */
	struct bw_policy *pol;   /* passwords, ACL, JWT keys in force here; NULL: none */
	uint32_t chain;          /* cfg.auth_chain, or the default */
	uint64_t pol_gen;        /* cfg.policy's generation pol came from */
	struct bw_tenancy *snap; /* the tenancy in force here (a reference); NULL: no store */
	bool draining;           /* bw_broker_drain(): CONNECTs are sent elsewhere */
	bool resuming;           /* attach_now() ends a session's old connection */
	uint32_t lease_tenant, lease_bucket; /* where the lease scan goes on */
	struct durable *durables;            /* publishes of this worker waiting to be stored */
	struct durable *cur_durable;         /* the one being routed now, or NULL */
	size_t rv_cap;
};

static uint64_t hash_id(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void tenant_quotas(struct bw_broker *b, struct tenant *t);
static struct tenant *tenant_here(struct bw_broker *b, uint32_t id);
static void on_session_event(void *owner, enum bw_session_event ev, const struct bw_inflight *f);

static int tenant_init(struct bw_broker *b, struct tenant *t, uint32_t id)
{
	struct bw_sub_index_limits il = { .filters_max = b->cfg.filters_max,
		                          .subs_max = b->cfg.filters_max * 4,
		                          .levels_max = b->cfg.max_topic_levels };
	struct bw_sub_index_limits rl = il;
	/* One entry a (filter, worker): as many as filters over all workers. */
	rl.subs_max = b->cfg.filters_max * bw_hub_workers(b->hub);
	t->id = id;
	t->b = b;
	t->stats = bw_hub_stats(b->hub, id, b->self);
	t->index = bw_sub_index_new(&il);
	t->replica = bw_sub_index_new(&rl);
	t->tab_mask = 63;
	t->tab = calloc(t->tab_mask + 1, sizeof(*t->tab));
	if (!t->index || !t->replica || !t->tab) {
		bw_sub_index_free(&t->index);
		bw_sub_index_free(&t->replica);
		free(t->tab);
		t->tab = NULL;
		return -ENOMEM;
	}
	t->ready = true;
	if (id >= b->n_tenants)
		b->n_tenants = id + 1;
	tenant_quotas(b, t);
	return 0;
}

/* Tenant id of the hub, made ready here on first use; NULL: no such id, or out of memory. */
static struct tenant *tenant_get(struct bw_broker *b, uint32_t id)
{
	if (id >= bw_hub_tenants(b->hub))
		return NULL;
	struct tenant *t = &b->tenants[id];
	if (!t->ready && tenant_init(b, t, id) < 0) {
		bw_log_error("tenant %s: out of memory", bw_hub_tenant_name(b->hub, id));
		return NULL;
	}
	return t;
}

/* a, or b where a is 0 (the node's default). */
static uint64_t or_default(uint64_t a, uint64_t b)
{
	return a ? a : b;
}

/*
 * The quotas in force for t: its record's, each zero field the node's.
 * Its retained limits go to the hub (any worker may; they agree).
 */
static void tenant_quotas(struct bw_broker *b, struct tenant *t)
{
	const struct bw_quotas *d = &b->cfg.quotas;
	const struct bw_quotas *r = t->rec ? &t->rec->quotas : NULL;
	struct bw_quotas q = *d;
	if (r) {
		q.connections = (uint32_t)or_default(r->connections, d->connections);
		q.persistent_sessions =
		        (uint32_t)or_default(r->persistent_sessions, d->persistent_sessions);
		q.tenant_msgs_per_s =
		        (uint32_t)or_default(r->tenant_msgs_per_s, d->tenant_msgs_per_s);
		q.tenant_bytes_per_s = or_default(r->tenant_bytes_per_s, d->tenant_bytes_per_s);
		q.client_msgs_per_s =
		        (uint32_t)or_default(r->client_msgs_per_s, d->client_msgs_per_s);
		q.client_bytes_per_s = or_default(r->client_bytes_per_s, d->client_bytes_per_s);
		q.client_subscriptions =
		        (uint32_t)or_default(r->client_subscriptions, d->client_subscriptions);
		q.retained_msgs = (uint32_t)or_default(r->retained_msgs, d->retained_msgs);
		q.retained_bytes = or_default(r->retained_bytes, d->retained_bytes);
		q.max_qos = r->max_qos <= 2 ? r->max_qos : d->max_qos;
		q.max_packet_bytes = (uint32_t)or_default(r->max_packet_bytes, d->max_packet_bytes);
		q.max_session_expiry_s =
		        (uint32_t)or_default(r->max_session_expiry_s, d->max_session_expiry_s);
		q.session_queued_msgs =
		        (uint32_t)or_default(r->session_queued_msgs, d->session_queued_msgs);
	}
	if (q.max_qos > 2)
		q.max_qos = 2;
	/* The tenant's rates are shared out evenly over the node's workers. */
	uint32_t w = bw_hub_workers(b->hub);
	if (q.tenant_msgs_per_s)
		q.tenant_msgs_per_s = q.tenant_msgs_per_s / w ? q.tenant_msgs_per_s / w : 1;
	if (q.tenant_bytes_per_s)
		q.tenant_bytes_per_s = q.tenant_bytes_per_s / w ? q.tenant_bytes_per_s / w : 1;
	t->q = q;
	if (q.retained_msgs || q.retained_bytes) {
		/* The broker's own $SYS statistics (retained) come on top of the quota. */
		uint32_t sys = b->cfg.sys_interval_ms ? SYS_TOPICS : 0;
		struct bw_retained_limits rl = { .count_max = q.retained_msgs > UINT32_MAX - sys
			                                              ? UINT32_MAX
			                                              : q.retained_msgs + sys,
			                         .bytes_max =
			                                 q.retained_bytes > UINT64_MAX / 2
			                                         ? q.retained_bytes
			                                         : q.retained_bytes + sys * 256u,
			                         .levels_max = b->cfg.max_topic_levels };
		bw_hub_tenant_limits(b->hub, t->id, &rl);
	}
}

/* The tenant's connections over the whole node (each worker's count, summed). */
static uint64_t tenant_connected(const struct bw_broker *b, const struct tenant *t)
{
	uint64_t n = 0;
	for (uint32_t w = 0; w < bw_hub_workers(b->hub); w++)
		n += atomic_load_explicit(&bw_hub_stats(b->hub, t->id, w)->connected,
		                          memory_order_relaxed);
	return n;
}

static uint64_t tenant_persistent(const struct bw_broker *b, const struct tenant *t)
{
	uint64_t n = 0;
	for (uint32_t w = 0; w < bw_hub_workers(b->hub); w++)
		n += atomic_load_explicit(&bw_hub_stats(b->hub, t->id, w)->persistent,
		                          memory_order_relaxed);
	return n;
}

/* A quota said no: counted, and logged at debug level (it can be frequent). */
static void quota_hit(struct bw_broker *b, struct tenant *t, const char *what)
{
	bw_stat_add(&t->stats->quota_hits, 1);
	bw_log_debug("tenant %s: over its %s quota", bw_hub_tenant_name(b->hub, t->id), what);
}

/* ---- sessions by client id ---------------------------------------------- */

static struct sess *sess_find(struct tenant *t, struct bw_str id)
{
	uint64_t h = hash_id(id.p, id.len);
	for (struct sess *s = t->tab[h & t->tab_mask]; s; s = s->hnext) {
		if (s->hash == h && s->id_len == id.len && !memcmp(s->id, id.p, id.len))
			return s;
	}
	return NULL;
}

static void tab_grow(struct tenant *t)
{
	uint32_t nmask = t->tab_mask * 2 + 1;
	struct sess **n = calloc((size_t)nmask + 1, sizeof(*n));
	if (!n)
		return; /* chains just get longer */
	for (uint32_t i = 0; i <= t->tab_mask; i++) {
		for (struct sess *s = t->tab[i], *next; s; s = next) {
			next = s->hnext;
			s->hnext = n[s->hash & nmask];
			n[s->hash & nmask] = s;
		}
	}
	free(t->tab);
	t->tab = n;
	t->tab_mask = nmask;
}

static struct sess *sess_new(struct bw_broker *b, struct tenant *t, struct bw_str id)
{
	struct sess *s = calloc(1, sizeof(*s) + id.len + 1);
	if (!s)
		return NULL;
	struct bw_session_limits lim = { .inflight_max = b->cfg.max_inflight,
		                         .inbound_max = b->cfg.max_inflight,
		                         .queue_max = t->q.session_queued_msgs,
		                         .drop_oldest = b->cfg.queue_drop_oldest };
	s->state = bw_session_new(&lim);
	if (!s->state) {
		free(s);
		return NULL;
	}
	bw_session_set_owner(s->state, s);
	if (b->cfg.sessions)
		bw_session_set_observer(s->state, on_session_event);
	s->t = t;
	memcpy(s->id, id.p, id.len);
	s->id_len = id.len;
	s->hash = hash_id(id.p, id.len);
	uint64_t n = atomic_load_explicit(&t->stats->sessions, memory_order_relaxed);
	if (n > t->tab_mask)
		tab_grow(t);
	s->hnext = t->tab[s->hash & t->tab_mask];
	t->tab[s->hash & t->tab_mask] = s;
	bw_stat_add(&t->stats->sessions, 1);
	return s;
}

static void timed_add(struct bw_broker *b, struct sess *s)
{
	if (s->timed)
		return;
	s->timed = true;
	s->tprev = NULL;
	s->tnext = b->timed;
	if (b->timed)
		b->timed->tprev = s;
	b->timed = s;
}

static void timed_del(struct bw_broker *b, struct sess *s)
{
	if (!s->timed)
		return;
	if (s->tprev)
		s->tprev->tnext = s->tnext;
	else
		b->timed = s->tnext;
	if (s->tnext)
		s->tnext->tprev = s->tprev;
	s->timed = false;
}

/* ---- the node's interest ---------------------------------------------------- */

/*
 * Applies one interest event to this worker's replica of tenant: every
 * event but this worker's own plain filters, which its index holds.
 */
static void replica_apply(struct bw_broker *b, uint32_t worker, uint32_t tenant, bool add,
                          uint32_t member, const uint8_t *filter, size_t len)
{
	void *key = WORKER_KEY(worker, member);
	if (worker == b->self && member == 0)
		return;
	struct tenant *t = tenant_get(b, tenant);
	if (!t)
		return;
	if (!add) {
		bw_sub_index_remove(t->replica, filter, len, key, NULL);
		return;
	}
	static const struct bw_sub_opts any = { .qos = 2 };
	int rc = bw_sub_index_add(t->replica, filter, len, key, &any, NULL);
	if (rc < 0) {
		/* Publishes to this filter will not reach that worker from here. */
		bw_stat_add(&t->stats->dropped, 1);
		bw_log_error("tenant %s: interest of worker %u in '%.*s' lost: %s",
		             bw_hub_tenant_name(b->hub, tenant), worker, (int)len,
		             (const char *)filter, strerror(-rc));
	}
}

static void on_interest(void *arg, uint32_t from, uint32_t tenant, bool add, uint32_t member,
                        const uint8_t *filter, size_t len)
{
	replica_apply(arg, from, tenant, add, member, filter, len);
}

/* Catches up with what the other workers subscribed and unsubscribed. */
static void interest_sync(struct bw_broker *b)
{
	bw_hub_interest_take(b->hub, b->self, on_interest, b);
}

/*
 * This worker's interest in filter started (add) or ended (member: see
 * bw_hub_interest_post()): every other worker's replica, then its own.
 * 0, or -ENOMEM for an add nobody was told of.
 */
static int interest_change(struct bw_broker *b, struct tenant *t, bool add, uint32_t member,
                           const uint8_t *filter, size_t len)
{
	int rc = bw_hub_interest_post(b->hub, b->self, t->id, add, member, filter, len);
	if (rc < 0 && add)
		return rc;
	if (rc < 0) /* an end not told: the others forward a little in vain */
		bw_log_warn("tenant %s: end of interest in '%.*s' not told: %s",
		            bw_hub_tenant_name(b->hub, t->id), (int)len, (const char *)filter,
		            strerror(-rc));
	replica_apply(b, b->self, t->id, add, member, filter, len);
	return 0;
}

static bool is_shared(const uint8_t *filter, size_t len)
{
	struct bw_topic_share sh;
	return bw_topic_share_split(filter, len, &sh);
}

struct gone_ctx {
	struct bw_broker *b;
	struct tenant *t;
};

static void on_filter_gone(void *arg, const uint8_t *filter, size_t len, uint32_t left)
{
	struct gone_ctx *g = arg;
	interest_change(g->b, g->t, false, is_shared(filter, len) ? left + 1 : 0, filter, len);
}

/* ---- routing -------------------------------------------------------------- */

/*
 * A connected subscriber that should slow its publishers down: its output
 * above the soft limit or its session queue half full. Once congested it
 * stays so until it has drained to half the soft limit and a quarter of
 * the queue, so paused publishers do not flap between pause and resume.
 */
static bool is_congested(const struct bw_broker *b, const struct sess *s)
{
	if (!s->conn)
		return false;
	const struct bw_outq *q = bw_conn_outq(s->conn);
	size_t soft = q->lim->soft_bytes, budget = b->cfg.out_budget;
	uint32_t max = s->t->q.session_queued_msgs, queued = bw_session_queued(s->state);
	if (s->congested)
		return (soft && bw_outq_bytes(q) > soft / 2) ||
		       (max > 0 && queued >= (max + 3) / 4) ||
		       (budget && b->out_pool > budget / 2 && bw_outq_bytes(q) > 0);
	return bw_outq_over_soft(q) || (max > 0 && queued >= (max + 1) / 2) ||
	       (budget && b->out_pool > budget);
}

/* ---- persistent sessions in Redis (cfg.sessions) ---------------------------- */

/*
 * A QoS 1/2 PUBLISH whose PUBACK/PUBREC waits until the message is in
 * Redis for every persistent session it went to (session_durability
 * sync). holds counts what it waits for: its publisher's routing (one),
 * each letter to another worker until that worker routed it, each push
 * until Redis answered. The one that drops the last hold has the
 * publisher's worker finish it: there directly, elsewhere through a
 * STORED letter (or, if that cannot be posted, the publisher's tick).
 * Only the publisher's worker touches w, the list and finished.
 */
struct durable {
	struct bw_conn_wait w; /* first: the acknowledgement waiting */
	struct durable *next, *prev;
	struct bw_broker *b; /* the publisher's */
	_Atomic uint32_t holds;
	_Atomic uint8_t reason; /* 0, or why a write was refused */
	_Atomic int state;      /* enum durable_state */
	bool finished;
};

enum durable_state {
	DURABLE_WAITING,
	DURABLE_MAILED, /* the last hold went elsewhere; a STORED letter is on its way */
	DURABLE_DONE,   /* the last hold went and no letter could go: the tick finishes it */
};

/* A push a durable waits for. */
struct push_wait {
	struct bw_broker *b; /* the pushing worker's */
	struct durable *d;
};

static void durable_free(struct bw_conn_wait *w)
{
	struct durable *d = (struct durable *)w;
	struct bw_broker *b = d->b;
	if (d->prev)
		d->prev->next = d->next;
	else
		b->durables = d->next;
	if (d->next)
		d->next->prev = d->prev;
	free(d);
}

static struct durable *durable_new(struct bw_broker *b)
{
	struct durable *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->w.release = durable_free;
	d->b = b;
	atomic_init(&d->holds, 1);
	d->next = b->durables;
	if (d->next)
		d->next->prev = d;
	b->durables = d;
	return d;
}

/* On the publisher's worker: the acknowledgement may go. */
static void durable_finish(struct durable *d)
{
	d->finished = true;
	if (!d->w.c) {
		durable_free(&d->w); /* the connection went */
		return;
	}
	struct bw_broker *b = d->b;
	void *user = bw_conn_user(d->w.c);
	bw_conn_wait_done(&d->w, atomic_load(&d->reason)); /* may release d */
	b->cfg.wants_send(user);
}

static void durable_hold(struct durable *d)
{
	atomic_fetch_add(&d->holds, 1);
}

/*
 * Drops a hold of d on worker here (NULL: no worker, a letter dropped);
 * rc < 0 says the write failed for want of Redis: the acknowledgement
 * refuses (0x97).
 */
static void durable_release(struct bw_broker *here, struct durable *d, int rc)
{
	if (rc == -EAGAIN || rc == -ECANCELED)
		atomic_store(&d->reason, BW_RC_QUOTA_EXCEEDED);
	if (atomic_fetch_sub(&d->holds, 1) != 1)
		return;
	if (here == d->b) {
		durable_finish(d);
		return;
	}
	atomic_store(&d->state, DURABLE_MAILED);
	if (!here ||
	    bw_hub_post(here->hub, here->self, d->b->self, bw_letter(d, BW_LETTER_STORED)) < 0)
		atomic_store(&d->state, DURABLE_DONE);
}

static void on_pushed(void *arg, int rc, uint64_t dropped)
{
	struct push_wait *p = arg;
	(void)dropped;
	durable_release(p->b, p->d, rc);
	free(p);
}

static struct bw_sessions_key skey(const struct bw_broker *b, const struct sess *s)
{
	return (struct bw_sessions_key){ .tenant = bw_hub_tenant_name(b->hub, s->t->id),
		                         .id = (const uint8_t *)s->id,
		                         .id_len = s->id_len };
}

static void redis_failed(const struct bw_broker *b, const struct sess *s, const char *what, int rc)
{
	bw_log_warn("tenant %s: session '%.*s': %s not written to Redis: %s",
	            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id, what,
	            strerror(-rc));
}

/*
 * Pushes delivery d of persistent session s to Redis ahead of delivering
 * it here: its sequence number, or 0 when it is not stored (a QoS 0
 * message, a clean session, durability none, a refusal).
 */
static uint64_t sess_push(struct bw_broker *b, struct sess *s, const struct bw_delivery *d)
{
	if (!s->token || !s->persistent || d->qos == 0 ||
	    b->cfg.durability == BW_CONFIG_DURABILITY_NONE || s->seq + 1 >= BW_SESSIONS_SEQ_MAX)
		return 0;
	struct bw_sessions_key k = skey(b, s);
	struct bw_arena a = { 0 };
	StoredMessage *rec =
	        bw_msgrec_build(&a, d->msg, d, k.tenant, bw_msgrec_wall_offset(), true);
	struct bw_sessions_head h = { .seq = s->seq + 1 };
	/* The queue there also holds QoS 1 messages sent and not yet acknowledged. */
	uint64_t max = s->t->q.session_queued_msgs
	                       ? (uint64_t)s->t->q.session_queued_msgs + b->cfg.max_inflight
	                       : UINT32_MAX;
	struct durable *dur =
	        b->cfg.durability == BW_CONFIG_DURABILITY_SYNC ? b->cur_durable : NULL;
	struct push_wait *pw = dur ? malloc(sizeof(*pw)) : NULL;
	int rc = rec && (!dur || pw) ? 0 : -ENOMEM;
	if (rc == 0) {
		if (pw) {
			*pw = (struct push_wait){ b, dur };
			durable_hold(dur);
		}
		rc = bw_sessions_push(b->cfg.sessions, &k, s->token, &h, rec,
		                      max > UINT32_MAX ? UINT32_MAX : (uint32_t)max,
		                      b->cfg.queue_drop_oldest ? BW_SESSIONS_DROP_OLDEST
		                                               : BW_SESSIONS_REFUSE_NEW,
		                      pw ? on_pushed : NULL, pw);
	}
	bw_arena_free(&a);
	if (rc < 0) {
		if (pw) /* never called back: the hold goes here (-EAGAIN refuses the ack) */
			durable_release(b, dur, rc);
		else if (dur)
			atomic_store(&dur->reason, BW_RC_QUOTA_EXCEEDED); /* no memory to wait */
		if (rc != -EAGAIN)
			redis_failed(b, s, "a message", rc);
		free(pw);
		return 0;
	}
	if (bw_sessions_busy(b->cfg.sessions))
		b->pressure = true; /* Redis is behind: the publisher waits */
	return s->seq = h.seq;
}

/*
 * A live session's keys in Redis carry a lease: its expiry plus
 * SESSION_LEASE_S, renewed every half lease while it is connected here.
 * So the keys of a node that dies with the session connected expire
 * between its expiry plus half a lease and its expiry plus a lease after
 * the death, as the release of a clean end would have them: never sooner.
 */
#define SESSION_LEASE_S 3600u
/* Sessions looked at a tick for their lease: a pass over 100,000 takes 5 s. */
#define LEASE_SCAN_TICK 2000u

static void sess_lease(struct bw_broker *b, struct sess *s, uint64_t now)
{
	if (!s->token || !s->persistent || s->expiry_s == NEVER)
		return;
	uint64_t e = (uint64_t)s->expiry_s + SESSION_LEASE_S;
	struct bw_sessions_key k = skey(b, s);
	int rc = bw_sessions_touch(b->cfg.sessions, &k, s->token,
	                           e >= NEVER ? NEVER - 1 : (uint32_t)e, NULL, NULL);
	if (rc < 0 && rc != -EAGAIN)
		redis_failed(b, s, "the session's lease", rc);
	s->lease_at = now + SESSION_LEASE_S * 1000u / 2;
}

/* Removes a pushed delivery that was not taken here after all. */
static void sess_unpush(struct bw_broker *b, struct sess *s, uint64_t seq)
{
	struct bw_sessions_key k = skey(b, s);
	int rc = bw_sessions_ack(b->cfg.sessions, &k, s->token, seq, NULL, NULL);
	if (rc < 0)
		redis_failed(b, s, "an acknowledgement", rc);
}

/* The window of a session told us what happened to a stored delivery. */
static void on_session_event(void *owner, enum bw_session_event ev, const struct bw_inflight *f)
{
	struct sess *s = owner;
	struct bw_broker *b = s->t->b;
	if (!s->token)
		return;
	if (ev == BW_SESSION_DONE) {
		sess_unpush(b, s, f->d.seq);
		return;
	}
	/*
	 * QoS 1 stays queued there until acknowledged: a node that dies sends
	 * it again as a new PUBLISH, which QoS 1 allows. QoS 2 must keep its
	 * packet id, so that the client knows the message again.
	 */
	if (ev == BW_SESSION_SENT && f->d.qos < 2)
		return;
	struct bw_sessions_key k = skey(b, s);
	struct bw_sessions_head h = {
		.seq = f->d.seq,
		.packet_id = f->packet_id,
		.state = ev == BW_SESSION_SENT ? BW_SESSIONS_PUBLISH_SENT
		                               : BW_SESSIONS_PUBREC_RECEIVED,
		.sent_at_ms = bw_msgrec_to_wall(f->sent_at_ms, bw_msgrec_wall_offset()),
	};
	int rc = bw_sessions_mark(b->cfg.sessions, &k, s->token, &h, NULL, NULL);
	if (rc < 0)
		redis_failed(b, s, "a delivery's state", rc);
}

static void deliver(struct bw_broker *b, struct sess *s, const struct bw_delivery *d)
{
	struct bw_tenant_stats *st = s->t->stats;

	/* A subscription an ACL deny rule partly overlaps: each message is checked. */
	if (s->check_receive && s->acl &&
	    !bw_acl_can_receive(s->acl, d->msg->topic.p, d->msg->topic.len))
		return;

	/* Stored first, so that what happens to it here can follow there. */
	struct bw_delivery sd;
	if (s->token && (sd.seq = sess_push(b, s, d)) != 0) {
		uint64_t seq = sd.seq;
		sd = *d;
		sd.seq = seq;
		d = &sd;
	}
	if (s->conn) {
		if (bw_conn_deliver(s->conn, d)) {
			bw_stat_add(&st->dropped, 1);
			if (d->seq)
				sess_unpush(b, s, d->seq);
		}
		b->cfg.wants_send(bw_conn_user(s->conn));
		bw_stat_add(&st->msgs_out, 1);
		bw_stat_add(&st->bytes_out, (int64_t)(d->msg->topic.len + d->msg->payload.len));
		if (!s->conn)
			return; /* cut off: over the hard limit */
		if (!is_congested(b, s)) {
			s->stalled = false;
		} else if (!s->stalled) {
			b->pressure = true;
			if (!s->congested) {
				s->congested = true;
				s->congested_ms = b->cfg.now_ms();
				s->cnext = b->congested;
				b->congested = s;
			}
		}
	} else if (d->qos > 0) {
		/* Offline persistent sessions queue QoS 1/2; QoS 0 is not kept. */
		if (bw_session_enqueue(s->state, d)) {
			bw_stat_add(&st->dropped, 1);
			if (d->seq)
				sess_unpush(b, s, d->seq);
		}
	}
}

/* Delivers the match results in b->match of message m. */
static void deliver_matched(struct bw_broker *b, struct bw_msg *m)
{
	for (uint32_t i = 0; i < b->match.n; i++) {
		const struct bw_match_delivery *md = &b->match.v[i];
		struct bw_delivery d = { .msg = m };
		d.qos = m->qos < md->qos ? m->qos : md->qos;
		/* [MQTT-3.3.1-12]: RETAIN is cleared unless Retain As Published. */
		d.retain = md->retain_as_published && m->retain;
		d.n_sub_ids =
		        md->n_sub_ids > BW_DELIVERY_SUB_IDS ? BW_DELIVERY_SUB_IDS : md->n_sub_ids;
		if (d.n_sub_ids) /* the id array is NULL while no delivery had ids */
			memcpy(d.sub_ids, bw_match_sub_ids(&b->match, md),
			       d.n_sub_ids * sizeof(uint32_t));
		deliver(b, md->subscriber, &d);
	}
}

/* Routes m to this worker's plain subscriptions. */
static void route_local(struct bw_broker *b, struct tenant *t, struct bw_msg *m,
                        const void *publisher)
{
	b->match.plain_only = true;
	int n = bw_sub_index_match(t->index, m->topic.p, m->topic.len, publisher, &b->match);
	if (n < 0) {
		bw_stat_add(&t->stats->dropped, 1);
		return;
	}
	bw_stat_add(&t->stats->dropped, b->match.dropped);
	deliver_matched(b, m);
}

/* A message for another worker whose publisher waits for it to be stored. */
struct stored_letter {
	struct bw_msg *msg; /* one reference */
	struct durable *d;  /* a hold */
};

static void post(struct bw_broker *b, struct tenant *t, uint32_t to, uintptr_t letter)
{
	if (bw_hub_post(b->hub, b->self, to, letter) == 0)
		return;
	bw_stat_add(&t->stats->dropped, 1);
	/* Its hold of a stored publish goes (the message was not taken). */
	struct durable *d = NULL;
	if (bw_letter_tag(letter) == BW_LETTER_STORED_MSG)
		d = ((struct stored_letter *)bw_letter_ptr(letter))->d;
	else if (bw_letter_tag(letter) == BW_LETTER_SHARE)
		d = ((struct share_letter *)bw_letter_ptr(letter))->d;
	if (d)
		durable_release(b, d, 0);
	bw_broker_mail_drop(letter);
}

static void post_share(struct bw_broker *b, struct tenant *t, uint32_t to, struct bw_msg *m,
                       const uint8_t *filter, size_t len, uint8_t hops)
{
	struct share_letter *l = malloc(sizeof(*l) + len);
	if (!l) {
		bw_stat_add(&t->stats->dropped, 1);
		return;
	}
	l->msg = bw_msg_ref(m);
	if ((l->d = b->cur_durable) != NULL)
		durable_hold(l->d);
	l->hops = hops;
	l->len = (uint16_t)len;
	memcpy(l->filter, filter, len);
	post(b, t, to, bw_letter(l, BW_LETTER_SHARE));
}

static void post_stored(struct bw_broker *b, struct tenant *t, uint32_t to, struct bw_msg *m)
{
	struct stored_letter *l = malloc(sizeof(*l));
	if (!l) {
		bw_stat_add(&t->stats->dropped, 1);
		return;
	}
	l->msg = bw_msg_ref(m);
	l->d = b->cur_durable;
	durable_hold(l->d);
	post(b, t, to, bw_letter(l, BW_LETTER_STORED_MSG));
}

/*
 * A share group's delivery the node picked this worker for: the group's
 * next connected member here gets it. When none here is connected (the
 * last one just left, say), the node picks again, another worker (at most
 * once a worker); failing that an offline member's session queues it.
 */
static void route_share(struct bw_broker *b, struct tenant *t, struct bw_msg *m,
                        const uint8_t *filter, size_t len, uint8_t hops)
{
	uint32_t n = bw_sub_index_count(t->index, filter, len);
	struct sess *offline = NULL;
	for (uint32_t i = 0; i < n; i++) {
		if (bw_sub_index_pick(t->index, filter, len, &b->match) <= 0)
			break;
		struct sess *s = b->match.v[0].subscriber;
		if (s->conn) {
			deliver_matched(b, m);
			return;
		}
		offline = offline ? offline : s;
	}
	n = hops < bw_hub_workers(b->hub) ? bw_sub_index_count(t->replica, filter, len) : 0;
	for (uint32_t i = 0; i < n; i++) {
		if (bw_sub_index_pick(t->replica, filter, len, &b->pmatch) <= 0)
			break;
		uint32_t w = KEY_WORKER(b->pmatch.v[0].subscriber);
		if (w != b->self) {
			post_share(b, t, w, m, filter, len, (uint8_t)(hops + 1));
			return;
		}
	}
	if (offline) {
		/* Picks again for that member's own options, then queues. */
		while (bw_sub_index_pick(t->index, filter, len, &b->match) > 0) {
			if (b->match.v[0].subscriber == offline) {
				deliver_matched(b, m);
				return;
			}
		}
	}
	bw_stat_add(&t->stats->dropped, 1);
}

/*
 * Routes m (with its retain flag) to the subscribers of its tenant on
 * every worker: this worker's index answers for its own plain
 * subscriptions, the replica says which other workers want it (and which
 * worker each matching share group's next member is on).
 */
static void route(struct bw_broker *b, struct tenant *t, struct bw_msg *m, const void *publisher)
{
	route_local(b, t, m, publisher);
	interest_sync(b);
	int n = bw_sub_index_match(t->replica, m->topic.p, m->topic.len, NULL, &b->rmatch);
	if (n < 0) {
		bw_stat_add(&t->stats->dropped, 1);
		return;
	}
	for (uint32_t i = 0; i < b->rmatch.n; i++) {
		const struct bw_match_delivery *md = &b->rmatch.v[i];
		uint32_t w = KEY_WORKER(md->subscriber);
		if (md->shared) {
			size_t len;
			const uint8_t *f = bw_sub_index_group_filter(t->replica, md->group, &len);
			if (w == b->self)
				route_share(b, t, m, f, len, 0);
			else
				post_share(b, t, w, m, f, len, 0);
		} else if (!b->cur_durable) {
			post(b, t, w, bw_letter(bw_msg_ref(m), BW_LETTER_MSG));
		} else {
			post_stored(b, t, w, m);
		}
	}
	if (bw_hub_backlog(b->hub, b->self))
		b->pressure = true;
}

void bw_broker_mail(struct bw_broker *b, uintptr_t letter)
{
	struct bw_msg *m;
	if (bw_letter_tag(letter) == BW_LETTER_STORED) {
		struct durable *d = bw_letter_ptr(letter);
		if (!d->finished)
			durable_finish(d);
		return;
	}
	if (bw_letter_tag(letter) == BW_LETTER_STORED_MSG) {
		struct stored_letter *l = bw_letter_ptr(letter);
		struct tenant *t = tenant_get(b, l->msg->tenant);
		b->cur_durable = l->d;
		if (t)
			route_local(b, t, l->msg, NULL);
		b->cur_durable = NULL;
		durable_release(b, l->d, 0);
		bw_msg_unref(&l->msg);
		free(l);
		return;
	}
	if (bw_letter_tag(letter) == BW_LETTER_MSG) {
		m = bw_letter_ptr(letter);
		struct tenant *t = tenant_get(b, m->tenant);
		if (t)
			route_local(b, t, m, NULL);
		bw_msg_unref(&m);
		return;
	}
	struct share_letter *l = bw_letter_ptr(letter);
	m = l->msg;
	struct tenant *t = tenant_get(b, m->tenant);
	if (t) {
		interest_sync(b);
		b->cur_durable = l->d;
		route_share(b, t, m, l->filter, l->len, l->hops);
		b->cur_durable = NULL;
	}
	if (l->d)
		durable_release(b, l->d, 0);
	bw_msg_unref(&l->msg);
	free(l);
}

void bw_broker_mail_drop(uintptr_t letter)
{
	if (bw_letter_tag(letter) == BW_LETTER_MSG) {
		struct bw_msg *m = bw_letter_ptr(letter);
		bw_msg_unref(&m);
	} else if (bw_letter_tag(letter) == BW_LETTER_SHARE) {
		struct share_letter *l = bw_letter_ptr(letter);
		bw_msg_unref(&l->msg);
		free(l);
	} else if (bw_letter_tag(letter) == BW_LETTER_STORED_MSG) {
		struct stored_letter *l = bw_letter_ptr(letter);
		bw_msg_unref(&l->msg);
		free(l);
	}
	/* Durables are their publisher's broker's, freed with it: not touched here. */
}

/* Whether retained writes of topic go to the shared store: all but $SYS, when there is one. */
static bool stored(const struct bw_broker *b, const uint8_t *topic, size_t len)
{
	return b->cfg.store && !bw_topic_is_sys(topic, len);
}

/*
 * The retained message of m's topic set or cleared: in the hub (what this
 * node's subscribers see at once), then written through to the store.
 */
static void retain(struct bw_broker *b, struct tenant *t, struct bw_msg *m)
{
	struct bw_msg *value = m->payload.len ? m : NULL; /* [MQTT-3.3.1-6]: empty clears */
	bool store = stored(b, m->topic.p, m->topic.len);

	if (store && !b->cfg.store_may(b->cfg.store, t->id, m->topic.p, m->topic.len)) {
		/* A will's (a client's was refused before it got here). */
		bw_stat_add(&t->stats->dropped, 1);
		bw_log_warn("tenant %s: retained message for '%.*s' dropped: the Redis write "
		            "queue is full",
		            bw_hub_tenant_name(b->hub, t->id), (int)m->topic.len,
		            (const char *)m->topic.p);
		return;
	}
	int rc = bw_hub_retained_put(b->hub, t->id, m->topic.p, m->topic.len, value);
	if (rc == 0 && store)
		rc = b->cfg.store_write(b->cfg.store, t->id, m->topic.p, m->topic.len, value);
	if (rc < 0) {
		bw_stat_add(&t->stats->dropped, 1);
		if (rc == -EDQUOT)
			bw_stat_add(&t->stats->quota_hits, 1);
		bw_log_warn("tenant %s: retained message for '%.*s' refused (%s)",
		            bw_hub_tenant_name(b->hub, t->id), (int)m->topic.len,
		            (const char *)m->topic.p,
		            rc == -EDQUOT ? "retained quota" : strerror(-rc));
	}
}

int bw_broker_retained_clear(struct bw_broker *b, uint32_t tenant, const uint8_t *topic, size_t len)
{
	bool store = stored(b, topic, len);

	if (store && !b->cfg.store_may(b->cfg.store, tenant, topic, len))
		return -ENOBUFS;
	int rc = bw_hub_retained_put(b->hub, tenant, topic, len, NULL);
	if (rc == 0 && store)
		rc = b->cfg.store_write(b->cfg.store, tenant, topic, len, NULL);
	return rc;
}

/* An application message enters the tenant: retained state, then routing. */
static void publish(struct bw_broker *b, struct tenant *t, struct bw_msg *m, const void *publisher)
{
	bw_stat_add(&t->stats->msgs_in, 1);
	if (m->retain)
		retain(b, t, m);
	route(b, t, m, publisher);
}

/* Publishes the will and forgets it. */
static void send_will(struct bw_broker *b, struct sess *s)
{
	if (!s->will)
		return;
	/* Only the session holds the will until now, so it may still change:
	 * its expiry starts when it is published, not at CONNECT. */
	if (s->will_expiry_s) {
		uint64_t at = b->cfg.now_ms() + (uint64_t)s->will_expiry_s * 1000;
		s->will->expires_at_ms = at ? at : 1;
	}
	publish(b, s->t, s->will, NULL);
	bw_msg_unref(&s->will);
	s->will_at = 0;
}

/* A session's filters, split into its share groups and its plain ones. */
struct filters {
	size_t n;
	struct {
		bool shared;
		uint16_t len;
		uint8_t *f;
	} v[64];
};

static int collect_filter(void *arg, const uint8_t *filter, size_t len, const struct bw_sub_opts *o)
{
	struct filters *fs = arg;
	(void)o;
	if (fs->n == sizeof(fs->v) / sizeof(fs->v[0]) || !(fs->v[fs->n].f = malloc(len)))
		return 1;
	memcpy(fs->v[fs->n].f, filter, len);
	fs->v[fs->n].len = (uint16_t)len;
	fs->v[fs->n].shared = is_shared(filter, len);
	fs->n++;
	return 0;
}

/*
 * A QoS 1/2 message a session that ends still held (queued or unacknowledged)
 * goes to another member of the share group it came through (MQTT 5.0
 * 4.8.2: the Server SHOULD send it to another subscribed Client). It came
 * through a group when one of the session's group filters matches its topic
 * and none of its plain filters does.
 */
static void share_redeliver(struct bw_broker *b, struct sess *s, const struct filters *fs,
                            struct bw_msg *m)
{
	const struct filters *f = fs;
	int group = -1;
	for (size_t i = 0; i < f->n; i++) {
		const uint8_t *p = f->v[i].f;
		size_t len = f->v[i].len;
		struct bw_topic_share sh;
		if (f->v[i].shared && bw_topic_share_split(p, len, &sh)) {
			p = sh.filter;
			len = sh.filter_len;
		}
		if (!bw_topic_match(p, len, m->topic.p, m->topic.len))
			continue;
		if (!f->v[i].shared)
			return; /* the session wanted it for itself too */
		if (group < 0)
			group = (int)i;
	}
	if (group >= 0)
		route_share(b, s->t, m, f->v[group].f, f->v[group].len, 0);
}

/* Ends a session: a will still waiting goes out ([MQTT-3.1.2-8]). */
static void sess_end(struct bw_broker *b, struct sess *s)
{
	struct tenant *t = s->t;
	struct gone_ctx g = { b, t };
	struct filters fs = { .n = 0 };
	if (b->freeing)
		bw_msg_unref(&s->will);
	else
		send_will(b, s);
	bool held = !b->freeing && !s->taken &&
	            (bw_session_inflight(s->state) || bw_session_queued(s->state));
	if (s->token && !b->freeing) {
		/* It ends here, so there too (what this node owns of it). */
		struct bw_sessions_key k = skey(b, s);
		int rc = bw_sessions_drop(b->cfg.sessions, &k, s->token, NULL, NULL);
		if (rc < 0)
			redis_failed(b, s, "the end of the session", rc);
		s->token = 0;
	}
	if (held)
		bw_sub_index_each(t->index, s, collect_filter, &fs);
	uint32_t n = bw_sub_index_remove_all(t->index, s, on_filter_gone, &g);
	bw_stat_add(&t->stats->subscriptions, -(int64_t)n);
	bool any_group = false;
	for (size_t i = 0; i < fs.n; i++)
		any_group |= fs.v[i].shared;
	if (any_group) {
		uint32_t cur = 0;
		const struct bw_inflight *f;
		while ((f = bw_session_inflight_at(s->state, &cur)) != NULL) {
			if (f->state == BW_INFLIGHT_PUBLISHED) /* not yet received */
				share_redeliver(b, s, &fs, f->d.msg);
		}
		const struct bw_delivery *d;
		for (uint32_t i = 0; (d = bw_session_queued_at(s->state, i)) != NULL; i++) {
			if (d->qos > 0)
				share_redeliver(b, s, &fs, d->msg);
		}
	}
	for (size_t i = 0; i < fs.n; i++)
		free(fs.v[i].f);
	for (struct pending_retained *p = s->pending, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	timed_del(b, s);
	if (s->congested) {
		struct sess **cp = &b->congested;
		while (*cp != s)
			cp = &(*cp)->cnext;
		*cp = s->cnext;
	}
	struct sess **pp = &t->tab[s->hash & t->tab_mask];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	bw_stat_add(&t->stats->sessions, -1);
	if (s->persistent)
		bw_stat_add(&t->stats->persistent, -1);
	bw_acl_compiled_free(&s->acl);
	free(s->user);
	free(s->cert_cn);
	bw_session_free(&s->state);
	free(s);
}

/* ---- connection operations ------------------------------------------------ */

static struct sess *owner(struct bw_conn *c)
{
	return bw_session_owner(bw_conn_session(c));
}

static uint64_t now_ms(void *ctx)
{
	return ((struct listener_ctx *)ctx)->b->cfg.now_ms();
}

/* Who a CONNECT is from, as far as its tenant goes. */
struct who {
	struct tenant *t;
	const struct bw_tenant *rec; /* in b->snap; NULL: a listener's tenant the files check */
	size_t user_len;             /* the principal's part of the username */
	bool by_ca;                  /* the certificate's CA named the tenant */
	char why[160];
};

/* A JWT the CONNECT carries (5.0 Authentication Data, or the password), or NULL. */
static const uint8_t *connect_token(const struct bw_connect *pkt, size_t *len);

/*
 * The tenant of a CONNECT (resolve.h): one the store holds and that is
 * active, or the listener's own. Returns 0, or -EACCES with w->why.
 */
static int identify(struct listener_ctx *l, struct bw_conn *c, const struct bw_connect *pkt,
                    struct who *w)
{
	struct bw_broker *b = l->b;
	void *u = bw_conn_user(c);
	uint8_t fps[8][BW_TENANCY_CA_FP_LEN];
	char sni[256];
	struct bw_resolve_in in = {
		.allowed = l->cfg->resolve,
		.snap = b->snap,
		.fps = (const uint8_t(*)[BW_TENANCY_CA_FP_LEN])fps,
		.claim = b->cfg.tenant_claim ? b->cfg.tenant_claim : "tenant",
		.user = pkt->has_username ? (const char *)pkt->username.p : NULL,
		.user_len = pkt->has_username ? pkt->username.len : 0,
		.listener = l->cfg->tenant,
		.listener_set = l->cfg->tenant_set,
	};
	struct bw_resolve_out out;
	int n;
	memset(w, 0, sizeof(*w));
	if (b->snap && b->cfg.chain && (n = b->cfg.chain(u, fps, 8)) > 0)
		in.n_fps = (size_t)n;
	if (b->snap && b->cfg.sni && (n = b->cfg.sni(u, sni, sizeof(sni))) > 0) {
		in.sni = sni;
		in.sni_len = (size_t)n;
	}
	in.token = connect_token(pkt, &in.token_len);
	if (bw_resolve_tenant(&in, &out) < 0) {
		snprintf(w->why, sizeof(w->why), "%s", out.why);
		return -EACCES;
	}
	w->user_len = out.user_len;
	w->by_ca = out.by_ca;
	w->rec = b->snap ? bw_tenancy_tenant(b->snap, out.tenant, strlen(out.tenant)) : NULL;
	if (!w->rec) {
		if (strcmp(out.tenant, l->cfg->tenant)) {
			snprintf(w->why, sizeof(w->why), "unknown tenant '%s'", out.tenant);
			return -EACCES;
		}
		w->t = l->t;
		return 0;
	}
	if (w->rec->status != BW_TENANT_ACTIVE) {
		snprintf(w->why, sizeof(w->why), "tenant '%s' is suspended", out.tenant);
		return -EACCES;
	}
	int id = bw_hub_tenant_add(b->hub, out.tenant);
	if (id < 0 || !(w->t = tenant_get(b, (uint32_t)id))) {
		snprintf(w->why, sizeof(w->why), "tenant '%s': %s", out.tenant,
		         id == -ENOSPC ? "the node serves max_tenants already" : "out of memory");
		return -EACCES;
	}
	if (w->t->rec != w->rec) {
		w->t->rec = w->rec;
		tenant_quotas(b, w->t);
	}
	return 0;
}

static int op_place(void *ctx, struct bw_conn *c, const struct bw_connect *pkt,
                    struct bw_str client_id)
{
	struct listener_ctx *l = ctx;
	struct who w;
	if (identify(l, c, pkt, &w) < 0)
		return -1; /* refused here, by op_connect */
	uint32_t home = bw_hub_home(l->b->hub, w.t->id, client_id.p, client_id.len);
	return home == l->b->self ? -1 : (int)home;
}

/* What a CONNECT asks for, kept while its password is checked elsewhere. */
struct connect_args {
	bool clean_start;
	uint32_t expiry;     /* Session Expiry Interval; NEVER */
	struct bw_msg *will; /* one reference; NULL: none */
	uint32_t will_delay_s, will_expiry_s;
	char *username; /* NUL-terminated copy; NULL: none */
	uint16_t username_len;
	char *cert_cn;      /* the client certificate's CN, for %cn; NULL: none */
	uint64_t token_exp; /* a JWT's exp as a monotonic deadline; 0: none */
	uint8_t how;        /* enum auth_how */
	struct tenant *t;
	/* A tenant of the store: the snapshot (a reference) its record and
	 * the principal are in; p NULL: anonymous. */
	struct bw_tenancy *snap;
	const struct bw_tenant *rec;
	const struct bw_principal *p;
};

static void args_free(struct connect_args *a)
{
	bw_tenancy_release(&a->snap);
	bw_msg_unref(&a->will);
	free(a->username);
	a->username = NULL;
	free(a->cert_cn);
	a->cert_cn = NULL;
}

/* Removes one subscription of s; -ENOENT when it has none on filter. */
static int sub_drop(struct bw_broker *b, struct sess *s, const uint8_t *filter, size_t len)
{
	struct tenant *t = s->t;
	bool gone;
	if (bw_sub_index_remove(t->index, filter, len, s, &gone))
		return -ENOENT;
	if (is_shared(filter, len))
		interest_change(b, t, false, bw_sub_index_count(t->index, filter, len) + 1, filter,
		                len);
	else if (gone)
		interest_change(b, t, false, 0, filter, len);
	s->n_subs--;
	bw_stat_add(&t->stats->subscriptions, -1);
	return 0;
}

/* The filters of a session's subscriptions its ACL no longer allows. */
struct recheck {
	const struct bw_acl_compiled *acl;
	bool check_each; /* some allowed one needs each message checked */
	uint32_t n, cap;
	struct {
		uint8_t *f;
		uint16_t len;
	} * v;
};

static int recheck_one(void *arg, const uint8_t *filter, size_t len, const struct bw_sub_opts *o)
{
	struct recheck *r = arg;
	uint8_t max_qos = 2;
	bool each = false;
	(void)o;
	if (bw_acl_can_subscribe(r->acl, filter, len, &max_qos, &each) == 0) {
		r->check_each |= each;
		return 0;
	}
	if (r->n == r->cap) {
		uint32_t cap = r->cap ? 2 * r->cap : 8;
		void *v = realloc(r->v, cap * sizeof(*r->v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	if (!(r->v[r->n].f = malloc(len)))
		return -ENOMEM;
	memcpy(r->v[r->n].f, filter, len);
	r->v[r->n++].len = (uint16_t)len;
	return 0;
}

/*
 * Drops the subscriptions s->acl no longer allows (each counted as an ACL
 * denial) and works out again whether deliveries need checking. Out of
 * memory, every delivery is checked: fail closed.
 */
static void subs_recheck(struct bw_broker *b, struct sess *s)
{
	struct recheck r = { .acl = s->acl };
	int rc = bw_sub_index_each(s->t->index, s, recheck_one, &r);
	for (uint32_t i = 0; i < r.n; i++) {
		bw_log_info("tenant %s: client '%.*s': subscription '%.*s' no longer allowed: "
		            "removed",
		            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id,
		            (int)r.v[i].len, (const char *)r.v[i].f);
		sub_drop(b, s, r.v[i].f, r.v[i].len);
		bw_stat_add(&s->t->stats->denied, 1);
		free(r.v[i].f);
	}
	free(r.v);
	s->check_receive = rc < 0 || r.check_each;
}

/*
 * A session under a new policy: a password user no longer in the password
 * file is disconnected (0x87), the ACL is compiled again and what it no
 * longer allows is dropped. Returns false when the session was kicked.
 */
static bool sess_recheck(struct bw_broker *b, struct sess *s)
{
	const struct bw_policy *pol = b->pol;
	struct bw_conn *c = s->conn;
	bool revoked =
	        s->how == AUTH_PASSWORD &&
	        (!pol || !pol->passwd || !bw_passwd_lookup(pol->passwd, s->user, strlen(s->user)));
	struct bw_acl_compiled *acl = NULL;
	if (!revoked && pol && pol->acl) {
		struct bw_acl_subject who = { .username = s->user,
			                      .username_len = s->user ? strlen(s->user) : 0,
			                      .client_id = s->id,
			                      .client_id_len = s->id_len,
			                      .cert_cn = s->cert_cn,
			                      .cert_cn_len = s->cert_cn ? strlen(s->cert_cn) : 0 };
		revoked = !(acl = bw_acl_compile(pol->acl, &who)); /* fail closed */
	}
	if (revoked) {
		bw_log_info("tenant %s: client '%.*s' (user '%s'): no longer allowed: disconnected",
		            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id,
		            s->user ? s->user : "");
		bw_conn_kick(c, BW_RC_NOT_AUTHORIZED);
		b->cfg.wants_send(bw_conn_user(c));
		return false;
	}
	bw_acl_compiled_free(&s->acl);
	s->acl = acl;
	if (acl)
		subs_recheck(b, s);
	else
		s->check_receive = false;
	return true;
}

/* The principal kind each way of logging in needs. */
static const enum bw_principal_kind kind_of[] = {
	[AUTH_PASSWORD] = BW_PRINCIPAL_PASSWORD,
	[AUTH_CERTIFICATE] = BW_PRINCIPAL_CERTIFICATE,
	[AUTH_TOKEN] = BW_PRINCIPAL_TOKEN,
};

/* The enabled principal of rec named user[0..len) that logs in by how, or NULL. */
static const struct bw_principal *principal_for(const struct bw_tenancy *snap,
                                                const struct bw_tenant *rec, const char *user,
                                                size_t len, uint8_t how)
{
	const struct bw_principal *p = bw_tenancy_principal(snap, rec, user, len);
	return p && p->enabled && how != AUTH_ANONYMOUS && p->kind == kind_of[how] ? p : NULL;
}

/*
 * A store client's rules compiled for who: its principal's groups and own
 * rules, or for an anonymous client (p NULL) the tenant's group named
 * "anonymous" (none: nothing is allowed). NULL when out of memory: refuse.
 */
static struct bw_acl_compiled *store_acl(const struct bw_tenancy *snap, const struct bw_tenant *rec,
                                         const struct bw_principal *p,
                                         const struct bw_acl_subject *who)
{
	if (p) {
		const struct bw_acl *acl = bw_tenancy_principal_acl(snap, p);
		return acl ? bw_acl_compile(acl, who) : NULL;
	}
	const struct bw_group *g = bw_tenancy_group(snap, rec, "anonymous", 9);
	const char *rules = g && g->rules ? g->rules : "";
	struct bw_acl *acl = NULL;
	if (bw_acl_parse_rules(rules, strlen(rules), "anonymous", &acl, NULL, 0) < 0)
		return NULL;
	struct bw_acl_compiled *c = bw_acl_compile(acl, who);
	bw_acl_free(&acl);
	return c;
}

static struct bw_acl_subject subject_of(const struct sess *s)
{
	return (struct bw_acl_subject){ .username = s->user,
		                        .username_len = s->user ? strlen(s->user) : 0,
		                        .client_id = s->id,
		                        .client_id_len = s->id_len,
		                        .cert_cn = s->cert_cn,
		                        .cert_cn_len = s->cert_cn ? strlen(s->cert_cn) : 0 };
}

/*
 * A connected client of a store tenant that changed: disconnected when its
 * tenant is gone or suspended (0x98) or its principal gone or disabled
 * (0x87); else its rules are compiled again and what they no longer allow
 * is dropped.
 */
static void store_recheck(struct bw_broker *b, struct sess *s, const struct bw_tenant *rec)
{
	const char *why = NULL;
	uint8_t reason = BW_RC_NOT_AUTHORIZED;
	const struct bw_principal *p = NULL;
	struct bw_acl_compiled *acl = NULL;
	if (!rec || rec->status != BW_TENANT_ACTIVE) {
		why = rec ? "its tenant is suspended" : "its tenant was deleted";
		reason = BW_RC_ADMIN_ACTION;
	} else if (s->user &&
	           !(p = principal_for(b->snap, rec, s->user, strlen(s->user), s->how))) {
		why = "its principal was disabled or deleted";
	} else if (!s->user && !rec->allow_anonymous) {
		why = "its tenant no longer allows anonymous clients";
	} else {
		struct bw_acl_subject who = subject_of(s);
		if (!(acl = store_acl(b->snap, rec, p, &who)))
			why = "out of memory compiling its rules";
	}
	if (why) {
		bw_log_info("tenant %s: client '%.*s' (user '%s'): %s: disconnected",
		            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id,
		            s->user ? s->user : "", why);
		struct bw_conn *c = s->conn; /* the kick detaches it from s */
		bw_conn_kick(c, reason);
		b->cfg.wants_send(bw_conn_user(c));
		return;
	}
	bw_acl_compiled_free(&s->acl);
	s->acl = acl;
	subs_recheck(b, s);
	bw_session_set_queue_max(s->state, s->t->q.session_queued_msgs);
}

/*
 * A tenant was deleted from the store: its sessions here end without their
 * wills (whoever would read them goes too), connected ones as their
 * connections close. Its retained messages: retained_purge().
 */
static void tenant_purge(struct bw_broker *b, struct tenant *t)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i <= t->tab_mask; i++) {
		for (struct sess *s = t->tab[i], *next; s; s = next) {
			next = s->hnext;
			bw_msg_unref(&s->will);
			s->expiry_s = 0;
			if (s->conn) {
				struct bw_conn *c = s->conn;
				bw_conn_kick(c,
				             BW_RC_ADMIN_ACTION); /* op_closed: ends at the tick */
				b->cfg.wants_send(bw_conn_user(c));
			} else {
				sess_end(b, s);
			}
			n++;
		}
	}
	bw_log_info("tenant %s: deleted: %u sessions ended here", bw_hub_tenant_name(b->hub, t->id),
	            n);
}

/*
 * Worker 0 clears the retained messages (the node's, and the shared
 * store's) of every tenant the store deleted, whether or not any of its
 * clients ever came to this worker.
 */
static void retained_purge(struct bw_broker *b, const struct bw_tenancy *old,
                           const struct bw_tenancy *snap)
{
	for (uint32_t id = 0; b->self == 0 && old && id < bw_hub_tenants(b->hub); id++) {
		const char *name = bw_hub_tenant_name(b->hub, id);
		size_t len = strlen(name);
		if (!bw_tenancy_tenant(old, name, len) || bw_tenancy_tenant(snap, name, len))
			continue;
		if (bw_hub_retained_purge(b->hub, id) < 0 ||
		    (b->cfg.store && b->cfg.store_purge(b->cfg.store, id) < 0))
			bw_log_error("tenant %s: deleted, but out of memory clearing its retained "
			             "messages",
			             name);
		else
			bw_log_info("tenant %s: deleted: its retained messages cleared", name);
	}
}

/*
 * Takes the tenancy snapshot in force when it moved on: every tenant whose
 * record changed gets its quotas again and its connected store clients
 * re-checked; offline sessions are checked when they resume. A tenant the
 * snapshots share (the same record) costs nothing.
 */
static void tenancy_sync(struct bw_broker *b)
{
	if (!b->cfg.tenancy)
		return;
	struct bw_tenancy *snap = b->cfg.tenancy(b->cfg.tenancy_arg);
	if (!snap || snap == b->snap) {
		bw_tenancy_release(&snap);
		return;
	}
	struct bw_tenancy *old = b->snap; /* keeps the old records alive for the compare */
	b->snap = snap;
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		const char *name = bw_hub_tenant_name(b->hub, t->id);
		const struct bw_tenant *rec = bw_tenancy_tenant(snap, name, strlen(name));
		if (rec == t->rec && rec)
			continue;
		bool was = t->rec != NULL;
		t->rec = rec;
		tenant_quotas(b, t);
		if (!was && !rec)
			continue;
		for (uint32_t i = 0; i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i]; s; s = s->hnext) {
				if (s->stored && s->conn &&
				    bw_conn_state(s->conn) == BW_CONN_CONNECTED)
					store_recheck(b, s, rec);
			}
		}
		if (was && !rec && old && bw_tenancy_tenant(old, name, strlen(name)))
			tenant_purge(b, t);
	}
	retained_purge(b, old, snap);
	bw_tenancy_release(&old);
}

/*
 * Takes a new policy when cfg.policy has one (a reload): connected sessions
 * are re-checked now, offline ones when they resume.
 */
static void policy_sync(struct bw_broker *b)
{
	if (!b->cfg.policy || bw_policy_slot_gen(b->cfg.policy) == b->pol_gen)
		return;
	bw_policy_unref(&b->pol);
	b->pol = bw_policy_slot_get(b->cfg.policy, &b->pol_gen);
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		for (uint32_t i = 0; i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i]; s; s = s->hnext) {
				if (!s->stored && s->conn &&
				    bw_conn_state(s->conn) == BW_CONN_CONNECTED)
					sess_recheck(b, s);
			}
		}
	}
}

/*
 * The client is who it says: attach its session (new, resumed or taken
 * over) with its ACL compiled. Returns 0 or a reason code; a->will passes
 * to the session.
 */
static int attach_now(struct listener_ctx *l, struct bw_conn *c, struct connect_args *a)
{
	struct bw_broker *b = l->b;
	struct tenant *t = a->t;
	struct bw_str id = bw_conn_client_id(c);
	struct bw_acl_compiled *acl = NULL;
	struct bw_acl_subject who = { .username = a->username,
		                      .username_len = a->username_len,
		                      .client_id = (const char *)id.p,
		                      .client_id_len = id.len,
		                      .cert_cn = a->cert_cn,
		                      .cert_cn_len = a->cert_cn ? strlen(a->cert_cn) : 0 };

	if (a->snap && a->snap != b->snap) {
		/* The check ran on an older snapshot: what it found must still hold. */
		const struct bw_tenant *rec = t->rec;
		const struct bw_principal *p = NULL;
		if (!rec || rec->status != BW_TENANT_ACTIVE ||
		    (a->p &&
		     !(p = principal_for(b->snap, rec, a->p->name, a->p->name_len, a->how))) ||
		    (!a->p && !rec->allow_anonymous))
			return BW_RC_NOT_AUTHORIZED;
		bw_tenancy_release(&a->snap);
		a->snap = bw_tenancy_ref(b->snap);
		a->rec = rec;
		a->p = p;
	}
	if (a->snap) {
		if (!(acl = store_acl(a->snap, a->rec, a->p, &who)))
			return BW_RC_UNSPECIFIED;
	} else if (b->pol && b->pol->acl && !(acl = bw_acl_compile(b->pol->acl, &who))) {
		return BW_RC_UNSPECIFIED;
	}
	if (acl && a->will &&
	    !bw_acl_can_publish(acl, a->will->topic.p, a->will->topic.len, a->will->qos,
	                        a->will->retain)) {
		bw_acl_compiled_free(&acl);
		bw_stat_add(&t->stats->denied, 1);
		return BW_RC_NOT_AUTHORIZED; /* the will is checked like a publish */
	}
	/* The tenant's quotas: session expiry capped, persistent sessions counted. */
	struct bw_conn_grant grant = { .max_packet_size = t->q.max_packet_bytes,
		                       .max_qos = t->q.max_qos,
		                       .tenant = t->id + 1 };
	if (t->q.max_session_expiry_s && a->expiry > t->q.max_session_expiry_s) {
		a->expiry = t->q.max_session_expiry_s;
		grant.expiry_capped = true;
		grant.session_expiry = a->expiry;
	}
	struct sess *s = sess_find(t, id);
	bool counted = s && s->persistent && !a->clean_start;
	if (a->expiry > 0 && !counted && t->q.persistent_sessions &&
	    tenant_persistent(b, t) >= t->q.persistent_sessions) {
		bw_acl_compiled_free(&acl);
		quota_hit(b, t, "persistent sessions");
		return BW_RC_QUOTA_EXCEEDED;
	}
	if (s && s->conn) {
		/* [MQTT-3.1.4-3]: the old connection goes (0x8E); its closed()
		 * only schedules work, so s stays valid. */
		struct bw_conn *old = s->conn;
		b->resuming = true; /* the session goes on: not released in Redis */
		bw_conn_kick(old, BW_RC_SESSION_TAKEN_OVER);
		b->resuming = false;
		b->cfg.wants_send(bw_conn_user(old));
	}
	bool present = false;
	if (s && (a->clean_start || s->expiry_s == 0)) {
		sess_end(b, s);
		s = NULL;
	}
	if (s) {
		/* Resumed before the will delay elapsed: no will ([MQTT-3.1.3-9]). */
		bw_msg_unref(&s->will);
		s->will_at = 0;
		s->expires_at = 0;
		timed_del(b, s);
		present = true;
	} else if (!(s = sess_new(b, t, id))) {
		bw_acl_compiled_free(&acl);
		return BW_RC_UNSPECIFIED;
	}
	bw_acl_compiled_free(&s->acl);
	s->acl = acl;
	s->check_receive = false;
	free(s->user);
	s->user = a->username;
	a->username = NULL;
	free(s->cert_cn);
	s->cert_cn = a->cert_cn;
	a->cert_cn = NULL;
	s->how = a->how;
	s->stored = a->snap != NULL;
	if (present && s->acl)
		subs_recheck(b, s); /* made under rules that may have changed since */
	s->conn = c;
	s->expiry_s = a->expiry;
	if (s->persistent != (a->expiry > 0)) {
		s->persistent = a->expiry > 0;
		bw_stat_add(&t->stats->persistent, s->persistent ? 1 : -1);
	}
	s->will = a->will;
	a->will = NULL;
	s->will_delay_s = a->will_delay_s;
	s->will_expiry_s = a->will_expiry_s;
	s->token_exp = a->token_exp;
	if (s->token_exp)
		timed_add(b, s);
	bw_session_set_queue_max(s->state, t->q.session_queued_msgs);
	bw_stat_add(&t->stats->connected, 1);
	bw_conn_grant(c, &grant);
	bw_conn_attach(c, s->state, present);
	return 0;
}

/* A session's record as the snapshot would see it. */
static struct bw_session_info info_of(struct sess *s)
{
	return (struct bw_session_info){
		.tenant = s->t->id,
		.client_id = { (const uint8_t *)s->id, s->id_len },
		.expiry_s = s->expiry_s,
		.expires_at_ms = s->conn ? 0 : s->expires_at,
		.will = s->will,
		.will_delay_s = s->will_delay_s,
		.will_expiry_s = s->will_expiry_s,
		.will_at_ms = s->conn ? 0 : s->will_at,
		.state = s->state,
		.handle = s,
	};
}

/*
 * Writes s's record (subscriptions, will, expiry, next packet id, incoming
 * QoS 2 ids) to Redis; release: the client went, the keys get the TTL of
 * its expiry.
 */
static void sess_save(struct bw_broker *b, struct sess *s, bool release)
{
	if (!s->token || !s->persistent)
		return;
	struct bw_arena a = { 0 };
	StoredSession r;
	struct bw_session_info si = info_of(s);
	struct bw_sessions_key k = skey(b, s);
	int rc = bw_sessrec_build(&a, b, &si, k.tenant, bw_msgrec_wall_offset(), false, &r);
	if (rc == 0 && release)
		rc = bw_sessions_release(b->cfg.sessions, &k, s->token, s->expiry_s, &r, NULL,
		                         NULL);
	else if (rc == 0)
		rc = bw_sessions_save(b->cfg.sessions, &k, s->token, &r, NULL, NULL);
	bw_arena_free(&a);
	if (rc < 0)
		redis_failed(b, s, "the session", rc);
}

/*
 * Lets a session go that another node took (or that Redis fenced): its
 * connection ends with 0x8E and a will without a delay goes out, as for a
 * takeover here; nothing is redelivered or written (the session lives on
 * there).
 */
static void sess_taken(struct bw_broker *b, struct sess *s)
{
	bw_log_info("tenant %s: client '%.*s': the session was taken over by another node",
	            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id);
	s->token = 0;
	s->taken = true;
	/* Its connection closes: a will without a delay goes now (5.0 3.1.2.5);
	 * one with a delay does not, the client being back elsewhere. */
	if (s->conn && s->will && s->will_delay_s == 0)
		send_will(b, s);
	bw_msg_unref(&s->will);
	if (s->conn) {
		struct bw_conn *c = s->conn;
		bw_conn_kick(c, BW_RC_SESSION_TAKEN_OVER); /* detaches c: op_closed */
		b->cfg.wants_send(bw_conn_user(c));
	}
	sess_end(b, s);
}

void bw_broker_session_taken(struct bw_broker *b, const char *tenant, struct bw_str id,
                             uint64_t token)
{
	int tid = bw_hub_tenant_find(b->hub, tenant);
	struct tenant *t = tid < 0 ? NULL : tenant_here(b, (uint32_t)tid);
	struct sess *s = t ? sess_find(t, id) : NULL;
	if (s && s->token && s->token < token)
		sess_taken(b, s);
}

static void on_fenced(void *arg, const struct bw_sessions_key *k, uint64_t token)
{
	struct bw_broker *b = arg;
	int tid = bw_hub_tenant_find(b->hub, k->tenant);
	struct tenant *t = tid < 0 ? NULL : tenant_here(b, (uint32_t)tid);
	struct sess *s = t ? sess_find(t, (struct bw_str){ k->id, (uint16_t)k->id_len }) : NULL;
	if (s && s->token == token)
		sess_taken(b, s);
}

/* A CONNECT waiting for its session's claim in Redis. */
struct claim_wait {
	struct listener_ctx *l;
	struct bw_conn *c;
	struct connect_args a;
};

/*
 * Redis could not be asked (down, or too much held): a clean session goes
 * on without it, a persistent one this node holds resumes (its writes wait
 * for Redis), any other persistent one is refused: another node may hold
 * it.
 */
static int claim_failed(struct listener_ctx *l, struct bw_conn *c, struct connect_args *a, int rc)
{
	struct bw_broker *b = l->b;
	struct bw_str id = bw_conn_client_id(c);
	struct sess *s = sess_find(a->t, id);
	if (a->expiry == 0 || (s && s->token && !a->clean_start))
		return attach_now(l, c, a);
	bw_log_warn("tenant %s: client '%.*s' refused: its session cannot be claimed in Redis "
	            "(%s)",
	            bw_hub_tenant_name(b->hub, a->t->id), (int)id.len, id.p, strerror(-rc));
	return BW_RC_SERVER_UNAVAILABLE;
}

/* The stored messages of a claim into session state st. */
static void claim_entries(struct bw_session *st, uint32_t tenant,
                          const struct bw_sessions_claim *cl, int64_t off)
{
	for (size_t i = 0; i < cl->n_inflight + cl->n_queue; i++) {
		bool sent = i < cl->n_inflight;
		const struct bw_sessions_entry *e =
		        sent ? &cl->inflight[i] : &cl->queue[i - cl->n_inflight];
		struct bw_msg *m = bw_msgrec_msg(e->msg, tenant, off);
		if (!m)
			continue;
		struct bw_delivery d = bw_sessrec_delivery(m, e->msg);
		d.seq = e->h.seq;
		int rc = sent ? bw_session_restore(st, &d, e->h.packet_id,
		                                   e->h.state == BW_SESSIONS_PUBREC_RECEIVED
		                                           ? BW_INFLIGHT_RELEASED
		                                           : BW_INFLIGHT_PUBLISHED,
		                                   bw_msgrec_to_mono(e->h.sent_at_ms, off), 0)
		              : bw_session_enqueue(st, &d);
		if (rc < 0)
			bw_log_warn("redis: a stored message of a session not restored: %s",
			            strerror(-rc));
		bw_msg_unref(&m);
	}
}

/*
 * What the claim found becomes the session here, before the CONNECT
 * attaches: what this node holds is kept when it owned the session last
 * or Redis had none (it is the newest), else it gives way to Redis's copy.
 */
static void claim_adopt(struct bw_broker *b, struct tenant *t, struct bw_str id,
                        const struct bw_sessions_claim *cl, bool clean_start)
{
	struct sess *s = sess_find(t, id);
	/* This node owned it last, or Redis never had it (made while Redis was away). */
	bool ours = !cl->existed || strcmp(cl->prev_owner, b->cfg.node_id) == 0;
	if (s && ours && !clean_start) {
		s->token = cl->token;
		s->seq = s->seq > cl->last_seq ? s->seq : cl->last_seq;
		return;
	}
	if (s && !clean_start) {
		sess_taken(b, s); /* a copy older than Redis's */
		s = NULL;
	} else if (s) {
		s->token = 0; /* the claim deleted it there: the CONNECT ends it here */
	}
	if (clean_start || !(cl->record || cl->n_queue || cl->n_inflight))
		return;
	int64_t off = bw_msgrec_wall_offset();
	const StoredSession *r = cl->record;
	struct bw_session_info si = { .tenant = t->id,
		                      .client_id = id,
		                      .expiry_s = r ? r->session_expiry_interval_s : 0 };
	struct bw_session *st = bw_broker_session_restore(b, &si);
	if (!st)
		return;
	s = bw_session_owner(st);
	if (r)
		bw_sessrec_restore(b, st, r, t->id, off, false, "redis");
	claim_entries(st, t->id, cl, off);
	s->token = cl->token;
	s->seq = cl->last_seq;
	if (si.expiry_s && !s->persistent) {
		s->persistent = true;
		bw_stat_add(&t->stats->persistent, 1);
	}
}

static void on_claimed(void *arg, int rc, struct bw_sessions_claim *cl)
{
	struct claim_wait *w = arg;
	struct listener_ctx *l = w->l;
	struct bw_broker *b = l->b;
	struct bw_conn *c = w->c;
	void *user = bw_conn_user(c);
	bool alive = bw_conn_state(c) == BW_CONN_AWAIT_CONNECT;
	struct tenant *t = w->a.t;
	struct bw_str id = bw_conn_client_id(c);
	int r = 0;

	if (!cl) {
		r = alive ? claim_failed(l, c, &w->a, rc) : 0;
	} else {
		if (rc)
			bw_log_warn(
			        "tenant %s: client '%.*s': its stored session is unreadable (%s): "
			        "it starts afresh",
			        bw_hub_tenant_name(b->hub, t->id), (int)id.len, id.p,
			        strerror(-rc));
		claim_adopt(b, t, id, cl, w->a.clean_start);
		r = alive ? attach_now(l, c, &w->a) : -ECONNRESET;
		struct sess *s = sess_find(t, id);
		if (r == 0 && s) {
			s->token = cl->token;
			s->seq = s->seq > cl->last_seq ? s->seq : cl->last_seq;
			sess_save(b, s, false); /* its will, expiry and subscriptions now */
			sess_lease(b, s, b->cfg.now_ms());
		} else if (s && s->token == cl->token && !s->conn) {
			/* Claimed for a connection that is gone: it waits offline here. */
			uint64_t now = b->cfg.now_ms();
			if (s->expiry_s != NEVER && !s->expires_at)
				s->expires_at = now + (uint64_t)s->expiry_s * 1000 + 1;
			timed_add(b, s);
			sess_save(b, s, true);
		} else {
			struct bw_sessions_key k = { bw_hub_tenant_name(b->hub, t->id), id.p,
				                     id.len };
			(void)bw_sessions_release(b->cfg.sessions, &k, cl->token, 0, NULL, NULL,
			                          NULL);
		}
		bw_sessions_claim_free(&cl);
	}
	if (alive && r != -EINPROGRESS) {
		bw_conn_connect_done(c, r);
		b->cfg.wants_send(user);
	}
	b->cfg.hold(user, false);
	args_free(&w->a);
	free(w);
}

/*
 * Attaches a CONNECT to its session: with Redis, once the claim answered
 * (-EINPROGRESS: the connection is held until then; a takes a's contents).
 */
static int attach(struct listener_ctx *l, struct bw_conn *c, struct connect_args *a)
{
	struct bw_broker *b = l->b;
	if (!b->cfg.sessions)
		return attach_now(l, c, a);
	struct bw_str id = bw_conn_client_id(c);
	struct bw_sessions_key k = { bw_hub_tenant_name(b->hub, a->t->id), id.p, id.len };
	struct claim_wait *w = calloc(1, sizeof(*w));
	if (!w)
		return BW_RC_UNSPECIFIED;
	int rc = bw_sessions_claim(b->cfg.sessions, &k, a->clean_start, on_claimed, w);
	if (rc < 0) {
		free(w);
		return claim_failed(l, c, a, rc);
	}
	*w = (struct claim_wait){ .l = l, .c = c, .a = *a };
	memset(a, 0, sizeof(*a));
	b->cfg.hold(bw_conn_user(c), true);
	return -EINPROGRESS;
}

/*
 * A password or token check running on the job pool: for a CONNECT, or for
 * an AUTH that re-authenticates a connected client.
 */
struct auth_job {
	struct bw_job job;
	struct listener_ctx *l;
	struct bw_conn *c;
	struct connect_args a;
	char *password; /* or the token */
	size_t password_len;
	bool jwt;              /* the password is a JWT */
	bool enhanced;         /* the token came as 5.0 Authentication Data (method JWT) */
	bool reauth;           /* AUTH 0x19: a->username is the session's user */
	struct bw_policy *pol; /* a reference: what the check uses, on the job's thread */
	/* A store tenant's client: a.snap and a.rec say which; the check finds a.p. */
	const char *why; /* the refusal, for the log */
	int verdict;     /* 0 or a reason code */
	uint64_t now_ms;
};

static void auth_free(struct auth_job *j)
{
	if (j->password)
		explicit_bzero(j->password, j->password_len);
	free(j->password);
	args_free(&j->a);
	bw_policy_unref(&j->pol);
	free(j);
}

/* A JWT: valid, and naming the user the client says it is (if it says). */
static int jwt_check(struct auth_job *j)
{
	const struct bw_broker_config *cfg = &j->l->b->cfg;
	struct bw_jwt_claims *claims = NULL;
	const char *why = NULL;
	struct timespec ts;
	const struct bw_jwt_keys *keys = j->pol ? j->pol->jwt_keys : NULL;
	struct bw_jwt_policy pol = cfg->jwt_policy ? *cfg->jwt_policy : (struct bw_jwt_policy){ 0 };
	if (j->a.snap) { /* the tenant's own keys, issuers and audiences */
		keys = bw_tenancy_tenant_jwt_keys(j->a.snap, j->a.rec);
		pol.issuers = j->a.rec->jwt_issuers;
		pol.issuers_n = j->a.rec->jwt_issuers_n;
		pol.audiences = j->a.rec->jwt_audiences;
		pol.audiences_n = j->a.rec->jwt_audiences_n;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	int rc = bw_jwt_verify(keys, &pol, j->password, j->password_len, ts.tv_sec, &claims, &why);
	if (rc < 0) {
		j->why = why ? why : "token refused";
		return BW_RC_BAD_USERNAME_PASSWORD;
	}
	const char *user = bw_jwt_claim_string(claims, cfg->jwt_username_claim);
	/* The claim that names this tenant: its own, else the node's (resolve.h). */
	const char *node_claim = cfg->tenant_claim ? cfg->tenant_claim : "tenant";
	const char *tclaim = bw_jwt_claim_string(
	        claims, j->a.snap ? bw_resolve_claim_name(j->a.rec, node_claim) : node_claim);
	size_t len = user ? strlen(user) : 0;
	rc = 0;
	if (!user || len == 0 || len > UINT16_MAX ||
	    (j->a.username && (len != j->a.username_len || memcmp(user, j->a.username, len)))) {
		j->why = "the token names no user, or another one than the username";
		rc = BW_RC_BAD_USERNAME_PASSWORD; /* no user, or not the one the client named */
	} else if (j->a.snap && tclaim && strcmp(tclaim, j->a.rec->name)) {
		j->why = "the token names another tenant";
		rc = BW_RC_NOT_AUTHORIZED;
	} else if (j->a.snap &&
	           !(j->a.p = principal_for(j->a.snap, j->a.rec, user, len, AUTH_TOKEN))) {
		j->why = "no enabled token principal of that name";
		rc = BW_RC_NOT_AUTHORIZED;
	} else {
		char *copy = strdup(user);
		if (!copy) {
			rc = BW_RC_UNSPECIFIED;
		} else {
			free(j->a.username);
			j->a.username = copy;
			j->a.username_len = (uint16_t)len;
			int64_t exp = bw_jwt_claims_exp(claims);
			if (exp > 0) /* as a monotonic deadline, with the grace */
				j->a.token_exp =
				        j->now_ms +
				        (uint64_t)(exp > ts.tv_sec ? exp - ts.tv_sec : 0) * 1000 +
				        cfg->jwt_grace_ms + 1;
		}
	}
	bw_jwt_claims_free(&claims);
	return rc;
}

/* The password of a store tenant's principal; an unknown one still costs a hash. */
static int store_password_check(struct auth_job *j)
{
	const struct bw_principal *p =
	        principal_for(j->a.snap, j->a.rec, j->a.username, j->a.username_len, AUTH_PASSWORD);
	if (p && p->password_hash &&
	    bw_password_verify(j->password, j->password_len, p->password_hash) == 0) {
		j->a.p = p;
		return 0;
	}
	if (!p) { /* the decoy: a hash of the tenant's, as costly as a real check */
		for (size_t i = 0; (p = bw_tenancy_principal_at(j->a.snap, j->a.rec, i)); i++) {
			if (p->password_hash) {
				bw_password_verify(j->password, j->password_len, p->password_hash);
				break;
			}
		}
	}
	j->why = "bad username or password";
	return BW_RC_BAD_USERNAME_PASSWORD;
}

static void auth_run(struct bw_job *job)
{
	struct auth_job *j = (struct auth_job *)job;
	const struct bw_passwd *pw = j->pol ? j->pol->passwd : NULL;
	if (j->jwt) {
		j->verdict = jwt_check(j);
		return;
	}
	if (j->a.snap) {
		j->verdict = store_password_check(j);
		return;
	}
	int rc =
	        bw_passwd_check(pw, j->a.username, j->a.username_len, j->password, j->password_len);
	j->verdict = rc == 0 ? 0 : BW_RC_BAD_USERNAME_PASSWORD;
}

static void auth_drop(struct bw_job *job)
{
	auth_free((struct auth_job *)job);
}

/*
 * A client failed to authenticate: counted, logged (who and why, never a
 * secret). Returns the reason code to refuse with.
 */
static int auth_failed(struct listener_ctx *l, struct tenant *t, struct bw_conn *c,
                       const char *user, int reason, const char *why)
{
	const struct bw_broker_config *cfg = &l->b->cfg;
	struct bw_str id = bw_conn_client_id(c);
	struct bw_addr from;
	char text[INET6_ADDRSTRLEN] = "?";
	uint64_t wait = 0;

	bw_stat_add(&t->stats->auth_failures, 1);
	if (cfg->source && cfg->source(bw_conn_user(c), &from) == 0) {
		bw_addr_text(&from, text, sizeof(text));
		if (cfg->backoff)
			wait = bw_backoff_fail(cfg->backoff, &from, cfg->now_ms());
	}
	bw_log_info("tenant %s: client '%.*s' (user '%s') from %s: %s%s",
	            bw_hub_tenant_name(l->b->hub, t->id), (int)id.len, (const char *)id.p,
	            user ? user : "", text, why,
	            wait ? "; the address waits before it may retry" : "");
	if (cfg->auth_failed)
		cfg->auth_failed(bw_hub_tenant_name(l->b->hub, t->id), id, user ? user : "", text,
		                 why);
	return reason;
}

/* Whether the client's address must wait after failed logins (counted). */
static bool backing_off(struct listener_ctx *l, struct bw_conn *c)
{
	const struct bw_broker_config *cfg = &l->b->cfg;
	struct bw_addr from;
	if (!cfg->backoff || !cfg->source || cfg->source(bw_conn_user(c), &from) < 0 ||
	    !bw_backoff_wait(cfg->backoff, &from, cfg->now_ms()))
		return false;
	bw_stat_add(&l->t->stats->auth_backoffs, 1); /* before its tenant is known */
	return true;
}

/* A client authenticated: its address's failures are forgotten. */
static void auth_passed(struct listener_ctx *l, struct bw_conn *c)
{
	const struct bw_broker_config *cfg = &l->b->cfg;
	struct bw_addr from;
	if (cfg->backoff && cfg->source && cfg->source(bw_conn_user(c), &from) == 0)
		bw_backoff_ok(cfg->backoff, &from);
}

/*
 * The verdict of a finished check put into effect: a CONNECT attaches its
 * session, a re-authentication moves the token's deadline. Returns 0 or
 * the reason code to refuse (CONNECT) or disconnect (AUTH) with.
 */
static int auth_apply(struct auth_job *j)
{
	struct listener_ctx *l = j->l;

	if (j->reauth) {
		struct sess *s = owner(j->c);
		if (!s)
			return BW_RC_NOT_AUTHORIZED;
		if (j->verdict)
			return auth_failed(l, s->t, j->c, s->user, BW_RC_NOT_AUTHORIZED,
			                   j->why ? j->why : "re-authentication refused");
		s->token_exp = j->a.token_exp;
		if (s->token_exp)
			timed_add(l->b, s);
		return 0;
	}
	if (j->verdict)
		return auth_failed(l, j->a.t, j->c, j->a.username,
		                   j->enhanced ? BW_RC_NOT_AUTHORIZED : j->verdict,
		                   j->why   ? j->why
		                   : j->jwt ? "token refused"
		                            : "bad username or password");
	auth_passed(l, j->c);
	return attach(l, j->c, &j->a);
}

static void auth_done(struct bw_job *job)
{
	struct auth_job *j = (struct auth_job *)job;
	struct bw_broker *b = j->l->b;
	void *user = bw_conn_user(j->c);
	enum bw_conn_state st = bw_conn_state(j->c);

	if (j->reauth ? st == BW_CONN_CONNECTED : st == BW_CONN_AWAIT_CONNECT) {
		int rc = auth_apply(j);
		if (j->reauth)
			bw_conn_reauth_done(j->c, rc);
		else if (rc != -EINPROGRESS) /* else the session's claim answers */
			bw_conn_connect_done(j->c, rc);
		b->cfg.wants_send(user);
	}
	b->cfg.hold(user, false);
	auth_free(j);
}

/*
 * Checks j on the job pool (the caller holds the connection until
 * auth_done), or here when there is no pool (tests). Returns -EINPROGRESS,
 * or the verdict put into effect (0 or a reason code). Takes j.
 */
static int auth_submit(struct listener_ctx *l, struct auth_job *j)
{
	struct bw_broker *b = l->b;

	j->now_ms = b->cfg.now_ms();
	j->job = (struct bw_job){
		.run = auth_run, .done = auth_done, .drop = auth_drop, .worker = b->self
	};
	if (!b->cfg.jobs) {
		auth_run(&j->job);
		int rc = auth_apply(j);
		auth_free(j);
		return rc;
	}
	if (bw_jobs_submit(b->cfg.jobs, &j->job) < 0) {
		auth_free(j);
		return BW_RC_SERVER_BUSY;
	}
	b->cfg.hold(bw_conn_user(j->c), true);
	return -EINPROGRESS;
}

/* A job checking password (or token) for user (NULL: none), or NULL. */
static struct auth_job *auth_job_new(struct listener_ctx *l, struct bw_conn *c, const void *user,
                                     size_t user_len, const void *password, size_t password_len)
{
	struct auth_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->l = l;
	j->c = c;
	j->pol = bw_policy_ref(l->b->pol);
	j->password = malloc(password_len ? password_len : 1);
	if (user && (j->a.username = malloc(user_len + 1)) != NULL) {
		memcpy(j->a.username, user, user_len);
		j->a.username[user_len] = '\0';
		j->a.username_len = (uint16_t)user_len;
	}
	if (!j->password || (user && !j->a.username)) {
		auth_free(j);
		return NULL;
	}
	memcpy(j->password, password, password_len);
	j->password_len = password_len;
	return j;
}

/* AUTH 0x19: a fresh token for the same user, checked like a CONNECT's. */
static int op_reauth(void *ctx, struct bw_conn *c, struct bw_bin data)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	if (!s || !s->user)
		return BW_RC_NOT_AUTHORIZED;
	if (s->stored && !s->t->rec)
		return BW_RC_NOT_AUTHORIZED; /* its tenant is gone */
	struct auth_job *j = auth_job_new(l, c, s->user, strlen(s->user), data.p, data.len);
	if (!j)
		return BW_RC_UNSPECIFIED;
	j->jwt = j->enhanced = j->reauth = true;
	j->a.t = s->t;
	if (s->stored) {
		j->a.snap = bw_tenancy_ref(l->b->snap);
		j->a.rec = s->t->rec;
	}
	return auth_submit(l, j);
}

/*
 * The user a verified client certificate names on this listener (a copy
 * the caller frees), or NULL: none configured, no certificate, no such
 * field. A SAN identity is the first SAN of that kind, without its prefix.
 */
static char *cert_identity(const struct listener_ctx *l, struct bw_conn *c)
{
	const struct bw_broker_config *cfg = &l->b->cfg;
	char buf[512];

	if (l->identity == BW_CONFIG_IDENTITY_NONE || !cfg->peer)
		return NULL;
	int n = cfg->peer(bw_conn_user(c), l->identity, buf, sizeof(buf));
	return n > 0 && n <= UINT16_MAX ? strdup(buf) : NULL;
}

/* Whether the auth chain lists method (enum bw_config_method). */
static bool chain_has(const struct bw_broker *b, uint32_t method)
{
	for (uint32_t ch = b->chain; ch; ch >>= 4)
		if ((ch & 0xf) == method + 1)
			return true;
	return false;
}

/* Three base64url segments: a JWS compact token, not a password. */
static bool looks_like_jwt(const uint8_t *p, size_t len)
{
	int dots = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.')
			dots++;
		else if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
		           (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'))
			return false;
	}
	return dots == 2 && len >= 5;
}

static const uint8_t *connect_token(const struct bw_connect *pkt, size_t *len)
{
	if (pkt->version == BW_MQTT_5 && (pkt->props.has & BW_PROP_BIT(BW_PROP_AUTH_METHOD))) {
		*len = pkt->props.auth_data.len;
		return pkt->props.auth_data.p;
	}
	if (pkt->has_password && looks_like_jwt(pkt->password.p, pkt->password.len)) {
		*len = pkt->password.len;
		return pkt->password.p;
	}
	*len = 0;
	return NULL;
}

/* The will, session expiry and certificate CN a CONNECT asks for. 0 or a reason code. */
static int connect_args_fill(struct bw_broker *b, struct bw_conn *c, const struct bw_connect *pkt,
                             struct connect_args *a)
{
	bool v5 = pkt->version == BW_MQTT_5;
	if (pkt->will) {
		if (bw_topic_is_sys(pkt->will_topic.p, pkt->will_topic.len))
			return BW_RC_NOT_AUTHORIZED;
		a->will = bw_msg_new(pkt->will_topic.p, pkt->will_topic.len,
		                     v5 ? &pkt->will_props : NULL, pkt->will_payload.p,
		                     pkt->will_payload.len, pkt->will_qos, pkt->will_retain,
		                     b->cfg.now_ms());
		if (!a->will)
			return BW_RC_UNSPECIFIED;
		if (pkt->will_qos > a->t->q.max_qos)
			return BW_RC_QOS_NOT_SUPPORTED;
		a->will->tenant = a->t->id;
		a->will_delay_s = v5 ? pkt->will_props.will_delay : 0;
		a->will_expiry_s = v5 && (pkt->will_props.has & BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY))
		                           ? pkt->will_props.message_expiry
		                           : 0;
	}
	if (v5 && (pkt->props.has & BW_PROP_BIT(BW_PROP_SESSION_EXPIRY)))
		a->expiry = pkt->props.session_expiry;
	else if (!v5 && !pkt->clean_start)
		a->expiry = NEVER;
	char field[512];
	if (b->cfg.peer &&
	    b->cfg.peer(bw_conn_user(c), BW_CONFIG_IDENTITY_CN, field, sizeof(field)) > 0 &&
	    !(a->cert_cn = strdup(field)))
		return BW_RC_UNSPECIFIED;
	return 0;
}

/* args_free(a) and returns rc: a CONNECT's way out. */
static int connect_end(struct connect_args *a, int rc)
{
	args_free(a);
	return rc;
}

/*
 * The password or token of a CONNECT, checked on the job pool (a good hash
 * costs ~100 ms): the job takes a (its will, snapshot and names). user
 * NULL: a JWT alone, whose claim names the user.
 */
static int connect_check(struct listener_ctx *l, struct bw_conn *c, struct connect_args *a,
                         const char *user, size_t user_len, struct bw_bin secret, bool jwt,
                         bool enhanced)
{
	struct auth_job *j = auth_job_new(l, c, user, user_len, secret.p, secret.len);
	if (!j)
		return connect_end(a, BW_RC_UNSPECIFIED);
	a->username = j->a.username;
	a->username_len = j->a.username_len;
	a->how = jwt ? AUTH_TOKEN : AUTH_PASSWORD;
	j->a = *a;
	j->jwt = jwt;
	j->enhanced = enhanced;
	return auth_submit(l, j);
}

/*
 * A client of a tenant the store holds: the first way of the auth chain
 * that applies decides, against the tenant's principals (a certificate
 * only when its CA is the tenant's), keys and rules. Anonymous only where
 * the tenant allows it.
 */
static int store_connect(struct listener_ctx *l, struct bw_conn *c, const struct bw_connect *pkt,
                         struct connect_args *a, const struct who *w)
{
	struct bw_broker *b = l->b;
	const struct bw_tenant *rec = w->rec;
	bool enhanced =
	        pkt->version == BW_MQTT_5 && (pkt->props.has & BW_PROP_BIT(BW_PROP_AUTH_METHOD));
	struct bw_bin secret = enhanced ? pkt->props.auth_data : pkt->password;
	const char *user = pkt->has_username ? (const char *)pkt->username.p : NULL;
	char *cert_user = NULL;
	bool jwt = false, applied = false;

	for (uint32_t ch = b->chain; ch && !applied; ch >>= 4) {
		switch ((ch & 0xf) - 1) {
		case BW_CONFIG_METHOD_CERTIFICATE:
			applied =
			        w->by_ca && !enhanced && (cert_user = cert_identity(l, c)) != NULL;
			break;
		case BW_CONFIG_METHOD_TOKEN:
			applied = jwt =
			        enhanced ||
			        (bw_tenancy_tenant_jwt_keys(b->snap, rec) && pkt->has_password &&
			         looks_like_jwt(pkt->password.p, pkt->password.len));
			break;
		case BW_CONFIG_METHOD_PASSWORD:
			applied = user && pkt->has_password;
			break;
		}
	}
	a->snap = bw_tenancy_ref(b->snap);
	a->rec = rec;
	if (!applied && user)
		return connect_end(a, auth_failed(l, a->t, c, NULL, BW_RC_BAD_USERNAME_PASSWORD,
		                                  pkt->has_password ? "no way to check the password"
		                                                    : "no password"));
	if (!applied && !rec->allow_anonymous)
		return connect_end(a, auth_failed(l, a->t, c, NULL, BW_RC_NOT_AUTHORIZED,
		                                  "anonymous not allowed"));
	int rc = connect_args_fill(b, c, pkt, a);
	if (rc) {
		free(cert_user);
		return connect_end(a, rc);
	}
	if (cert_user) {
		size_t n = strlen(cert_user);
		a->username = cert_user;
		a->username_len = (uint16_t)n;
		a->how = AUTH_CERTIFICATE;
		if (user && (w->user_len != n || memcmp(user, cert_user, n)))
			return connect_end(
			        a, auth_failed(l, a->t, c, NULL, BW_RC_BAD_USERNAME_PASSWORD,
			                       "username is not the certificate's identity"));
		if (!(a->p = principal_for(b->snap, rec, cert_user, n, AUTH_CERTIFICATE)))
			return connect_end(a,
			                   auth_failed(l, a->t, c, cert_user, BW_RC_NOT_AUTHORIZED,
			                               "no enabled certificate principal of that "
			                               "identity"));
	}
	if (cert_user || !applied) {
		auth_passed(l, c);
		return connect_end(a, attach(l, c, a));
	}
	return connect_check(l, c, a, user, w->user_len, secret, jwt, enhanced);
}

static int op_connect(void *ctx, struct bw_conn *c, const struct bw_connect *pkt)
{
	struct listener_ctx *l = ctx;
	struct bw_broker *b = l->b;
	struct connect_args a = { .clean_start = pkt->clean_start };
	const char *user = pkt->has_username ? (const char *)pkt->username.p : NULL;
	struct who w;

	/* 5.0 enhanced authentication (the connection let only method JWT
	 * through): the token is the Authentication Data. */
	bool enhanced =
	        pkt->version == BW_MQTT_5 && (pkt->props.has & BW_PROP_BIT(BW_PROP_AUTH_METHOD));
	struct bw_bin secret = enhanced ? pkt->props.auth_data : pkt->password;
	if (b->draining)
		return BW_RC_USE_ANOTHER_SERVER;
	if (backing_off(l, c))
		return BW_RC_CONNECTION_RATE_EXCEEDED;
	if (identify(l, c, pkt, &w) < 0)
		return auth_failed(l, l->t, c, NULL, BW_RC_NOT_AUTHORIZED, w.why);
	struct tenant *t = a.t = w.t;
	struct bw_str id = bw_conn_client_id(c);
	if (bw_hub_home(b->hub, t->id, id.p, id.len) != b->self)
		return BW_RC_SERVER_BUSY; /* the tenancy changed while it moved here: retry */
	if (t->q.connections && tenant_connected(b, t) >= t->q.connections) {
		quota_hit(b, t, "connections");
		return BW_RC_QUOTA_EXCEEDED;
	}
	if (w.rec)
		return store_connect(l, c, pkt, &a, &w);

	/* The first way of the auth chain that applies decides. Anonymous only
	 * where the listener allows it; credentials only where a certificate, a
	 * password file or JWT keys can check them: fail closed. */
	const struct bw_policy *pol = b->pol;
	char *cert_user = NULL;
	bool jwt = false, password = false;
	bool can_hash = user && pkt->has_password && pol && pol->passwd;
	for (uint32_t ch = b->chain; ch && !cert_user && !jwt && !password; ch >>= 4) {
		switch ((ch & 0xf) - 1) {
		case BW_CONFIG_METHOD_CERTIFICATE:
			cert_user = enhanced ? NULL : cert_identity(l, c);
			break;
		case BW_CONFIG_METHOD_TOKEN:
			jwt = enhanced || (pol && pol->jwt_keys && pkt->has_password &&
			                   looks_like_jwt(pkt->password.p, pkt->password.len));
			break;
		case BW_CONFIG_METHOD_PASSWORD:
			password =
			        can_hash && bw_passwd_lookup(pol->passwd, user, pkt->username.len);
			break;
		}
	}
	/* A user the file lacks still costs a hash: timing tells nobody who exists. */
	password |= !cert_user && !jwt && can_hash && chain_has(b, BW_CONFIG_METHOD_PASSWORD);
	if (!cert_user && !jwt && !password && user)
		return auth_failed(l, t, c, NULL, BW_RC_BAD_USERNAME_PASSWORD,
		                   pkt->has_password ? "no way to check the password"
		                                     : "no password");
	if (!cert_user && !jwt && !password && !l->allow_anonymous)
		return auth_failed(l, t, c, NULL, BW_RC_NOT_AUTHORIZED, "anonymous not allowed");
	int rc = connect_args_fill(b, c, pkt, &a);
	if (rc) {
		free(cert_user);
		return connect_end(&a, rc);
	}
	if (cert_user) {
		/* A verified certificate names the user: no password needed, and a
		 * username the client sends must be that name. */
		size_t n = strlen(cert_user);
		if (user && (pkt->username.len != n || memcmp(user, cert_user, n))) {
			free(cert_user);
			return connect_end(&a,
			                   auth_failed(l, t, c, NULL, BW_RC_BAD_USERNAME_PASSWORD,
			                               "username is not the certificate's "
			                               "identity"));
		}
		a.username = cert_user;
		a.username_len = (uint16_t)n;
		a.how = AUTH_CERTIFICATE;
		auth_passed(l, c);
	}
	if (cert_user || (!user && !jwt))
		return connect_end(&a, attach(l, c, &a));

	return connect_check(l, c, &a, user, user ? pkt->username.len : 0, secret, jwt, enhanced);
}

/*
 * A PUBLISH within the client's quotas and rules: a QoS above the
 * tenant's, or a rate above the client's or the tenant's, ends the
 * connection (0x9B, 0x96); a topic its rules do not allow is refused.
 */
static int op_may_publish(void *ctx, struct bw_conn *c, struct bw_str topic, uint8_t qos,
                          bool retain, size_t size)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	if (!s)
		return 0;
	struct tenant *t = s->t;
	const struct bw_quotas *q = &t->q;
	if (qos > q->max_qos) {
		quota_hit(l->b, t, "QoS");
		return -BW_RC_QOS_NOT_SUPPORTED;
	}
	if (q->client_msgs_per_s || q->client_bytes_per_s || q->tenant_msgs_per_s ||
	    q->tenant_bytes_per_s) {
		uint64_t now = l->b->cfg.now_ms();
		if (!bucket_take(&s->msgs, q->client_msgs_per_s, 1, now) ||
		    !bucket_take(&s->bytes, q->client_bytes_per_s, size, now) ||
		    !bucket_take(&t->msgs, q->tenant_msgs_per_s, 1, now) ||
		    !bucket_take(&t->bytes, q->tenant_bytes_per_s, size, now)) {
			quota_hit(l->b, t, "message rate");
			return -BW_RC_MESSAGE_RATE_TOO_HIGH;
		}
	}
	if (s->acl && !bw_acl_can_publish(s->acl, topic.p, topic.len, qos, retain)) {
		bw_stat_add(&t->stats->denied, 1);
		return BW_RC_NOT_AUTHORIZED;
	}
	/* A retained message (not a clearing one) over the tenant's retained quota. */
	if (retain && size > topic.len &&
	    !bw_hub_retained_fits(l->b->hub, t->id, topic.p, topic.len, size)) {
		quota_hit(l->b, t, "retained");
		return BW_RC_QUOTA_EXCEEDED;
	}
	/*
	 * Redis down (or slow) past what the store may hold: refused rather
	 * than acknowledged and then lost. 3.1.1 has no reason code to say
	 * so: the connection is closed. QoS 0 is dropped either way.
	 */
	if (retain && stored(l->b, topic.p, topic.len) &&
	    !l->b->cfg.store_may(l->b->cfg.store, t->id, topic.p, topic.len)) {
		bw_stat_add(&t->stats->dropped, 1);
		bw_log_debug("tenant %s: retained PUBLISH to '%.*s' refused: the Redis write queue "
		             "is full",
		             bw_hub_tenant_name(l->b->hub, t->id), (int)topic.len,
		             (const char *)topic.p);
		if (qos > 0 && bw_conn_version(c) != BW_MQTT_5)
			return -BW_RC_QUOTA_EXCEEDED;
		return BW_RC_QUOTA_EXCEEDED;
	}
	return 0;
}

static void op_publish(void *ctx, struct bw_conn *c, struct bw_msg *m)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	m->tenant = s->t->id;
	m->publisher = s;
	l->b->pressure = false;
	bw_stat_add(&s->t->stats->bytes_in, (int64_t)(m->topic.len + m->payload.len));
	struct bw_broker *b = l->b;
	struct durable *d = NULL;
	if (b->cfg.sessions && b->cfg.durability == BW_CONFIG_DURABILITY_SYNC && m->qos > 0)
		d = durable_new(b); /* none (no memory): the ack does not wait */
	b->cur_durable = d;
	publish(b, s->t, m, s);
	b->cur_durable = NULL;
	if (d && atomic_load(&d->holds) == 1 && !atomic_load(&d->reason)) {
		durable_free(&d->w); /* nothing to wait for: the ack goes at once */
	} else if (d) {
		bw_conn_wait_ack(c, &d->w);
		durable_release(b, d, 0);
	}
	if (b->pressure && b->cfg.pause)
		b->cfg.pause(bw_conn_user(c));
}

static int op_subscribe(void *ctx, struct bw_conn *c, const struct bw_sub_entry *e, uint32_t sub_id)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	struct tenant *t = s->t;
	struct bw_sub_opts o = { .qos = e->qos,
		                 .no_local = e->no_local,
		                 .retain_as_published = e->retain_as_published,
		                 .retain_handling = e->retain_handling,
		                 .sub_id = sub_id };
	if (o.qos > t->q.max_qos)
		o.qos = t->q.max_qos;
	if (s->acl) {
		uint8_t max_qos = 2;
		bool check_each = false;
		if (bw_acl_can_subscribe(s->acl, e->filter.p, e->filter.len, &max_qos,
		                         &check_each) < 0) {
			bw_stat_add(&t->stats->denied, 1);
			return -BW_RC_NOT_AUTHORIZED;
		}
		if (o.qos > max_qos)
			o.qos = max_qos;
		s->check_receive |= check_each;
	}
	bool fresh_filter, gone;
	struct bw_topic_share share;
	bool shared = bw_topic_share_split(e->filter.p, e->filter.len, &share);
	int rc = bw_sub_index_add(t->index, e->filter.p, e->filter.len, s, &o, &fresh_filter);
	if (rc == 0 && t->q.client_subscriptions && s->n_subs >= t->q.client_subscriptions) {
		bw_sub_index_remove(t->index, e->filter.p, e->filter.len, s, &gone);
		quota_hit(l->b, t, "subscriptions");
		return -BW_RC_QUOTA_EXCEEDED;
	}
	if (rc == 0 && (shared || fresh_filter)) {
		uint32_t member =
		        shared ? bw_sub_index_count(t->index, e->filter.p, e->filter.len) : 0;
		if (interest_change(l->b, t, true, member, e->filter.p, e->filter.len) < 0) {
			bw_sub_index_remove(t->index, e->filter.p, e->filter.len, s, &gone);
			return -BW_RC_UNSPECIFIED;
		}
	}
	switch (rc) {
	case 0:
		s->n_subs++;
		bw_stat_add(&t->stats->subscriptions, 1);
		break;
	case 1:
		break;
	case -ENOSPC:
		return -BW_RC_QUOTA_EXCEEDED;
	case -EINVAL:
	case -E2BIG:
		return -BW_RC_TOPIC_FILTER_INVALID;
	default:
		return -BW_RC_UNSPECIFIED;
	}
	/* [MQTT-3.8.4-4]: retained messages per Retain Handling; none for
	 * shared subscriptions (MQTT 5.0 4.8.2). */
	if (!shared && (e->retain_handling == 0 || (e->retain_handling == 1 && rc == 0))) {
		struct pending_retained *p = malloc(sizeof(*p) + e->filter.len);
		if (p) {
			p->granted = o.qos;
			p->sub_id = sub_id;
			p->len = e->filter.len;
			memcpy(p->filter, e->filter.p, e->filter.len);
			p->next = s->pending;
			s->pending = p;
		}
	}
	return o.qos;
}

static void op_subscribed(void *ctx, struct bw_conn *c)
{
	struct listener_ctx *l = ctx;
	struct bw_broker *b = l->b;
	struct sess *s = owner(c);
	struct pending_retained *p = s->pending;
	s->pending = NULL;
	sess_save(b, s, false); /* its subscriptions, before what they bring */
	while (p) {
		struct pending_retained *next = p->next;
		size_t n = 0;
		if (bw_hub_retained_get(b->hub, s->t->id, p->filter, p->len, &b->rv, &n,
		                        &b->rv_cap) < 0)
			bw_stat_add(&s->t->stats->dropped, 1);
		for (size_t i = 0; i < n; i++) {
			struct bw_msg *m = b->rv[i];
			struct bw_delivery d = { .msg = m, .retain = true };
			d.qos = m->qos < p->granted ? m->qos : p->granted;
			if (p->sub_id) {
				d.n_sub_ids = 1;
				d.sub_ids[0] = p->sub_id;
			}
			if (s->conn) /* a hard limit may cut it off mid-way */
				deliver(b, s, &d);
			bw_msg_unref(&b->rv[i]);
		}
		free(p);
		p = next;
	}
}

static int op_unsubscribe(void *ctx, struct bw_conn *c, struct bw_str f)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	if (sub_drop(l->b, s, f.p, f.len))
		return -BW_RC_NO_SUBSCRIPTION_EXISTED;
	sess_save(l->b, s, false);
	return 0;
}

/*
 * The client's DISCONNECT changes its Session Expiry Interval (5.0
 * 3.14.2.2.2): 0 ends the session with the connection; a non-zero one
 * after 0 in the CONNECT is a protocol error. Capped like the CONNECT's.
 */
static int op_set_expiry(void *ctx, struct bw_conn *c, uint32_t expiry)
{
	struct sess *s = owner(c);
	(void)ctx;
	if (!s || s->conn != c)
		return 0;
	if (s->expiry_s == 0 && expiry > 0)
		return BW_RC_PROTOCOL_ERROR;
	if (s->t->q.max_session_expiry_s && expiry > s->t->q.max_session_expiry_s)
		expiry = s->t->q.max_session_expiry_s;
	s->expiry_s = expiry;
	if (s->persistent && expiry == 0) {
		/* It ends with the connection (here, and in Redis when it is dropped). */
		s->persistent = false;
		bw_stat_add(&s->t->stats->persistent, -1);
	}
	return 0;
}

/*
 * The connection ended. Nothing is published or freed here: this may run
 * inside a delivery (a slow consumer cut off mid fan-out), so the will and
 * the end of the session are scheduled for the next tick.
 */
static void op_closed(void *ctx, struct bw_conn *c, bool with_will)
{
	struct listener_ctx *l = ctx;
	struct bw_broker *b = l->b;
	struct sess *s = owner(c);
	if (!s || s->conn != c)
		return;
	uint64_t now = b->cfg.now_ms();
	s->conn = NULL;
	bw_stat_add(&s->t->stats->connected, -1);
	if (bw_conn_end_reason(c) == BW_RC_PACKET_TOO_LARGE && s->t->q.max_packet_bytes)
		quota_hit(b, s->t, "packet size"); /* the CONNACK told it the tenant's */
	if (!with_will)
		bw_msg_unref(&s->will);
	if (s->will)
		s->will_at = now + (uint64_t)s->will_delay_s * 1000 + 1;
	if (s->expiry_s != NEVER)
		s->expires_at = now + (uint64_t)s->expiry_s * 1000 + 1;
	if (s->will || s->expires_at)
		timed_add(b, s);
	if (!b->resuming)
		sess_save(b, s, true); /* its keys in Redis live as long as it does */
}

/* ---- the broker ----------------------------------------------------------- */

struct bw_broker *bw_broker_new(const struct bw_broker_config *cfg)
{
	struct bw_broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = *cfg;
	b->chain = cfg->auth_chain ? cfg->auth_chain : BW_CONFIG_CHAIN_DEFAULT;
	if (cfg->policy)
		b->pol = bw_policy_slot_get(cfg->policy, &b->pol_gen);
	b->hub = cfg->hub;
	b->self = cfg->worker;
	if (cfg->sessions)
		bw_sessions_on_fenced(cfg->sessions, on_fenced, b);
	if (cfg->tenancy)
		b->snap = cfg->tenancy(cfg->tenancy_arg);
	b->tenants = calloc(bw_hub_tenants_max(b->hub), sizeof(*b->tenants));
	b->lctx = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*b->lctx));
	b->ops = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*b->ops));
	if (!b->tenants || !b->lctx || !b->ops)
		goto fail;
	bw_match_init(&b->match, UINT32_MAX);
	bw_match_init(&b->rmatch, UINT32_MAX);
	bw_match_init(&b->pmatch, 1);
	b->started_ms = cfg->now_ms();
	b->next_sys_ms = b->started_ms + cfg->sys_interval_ms;
	for (uint32_t i = 0; i < cfg->n_listeners; i++) {
		struct listener_ctx *l = &b->lctx[i];
		int id = bw_hub_tenant_find(b->hub, cfg->listeners[i].tenant);
		if (id < 0) {
			bw_broker_free(&b);
			errno = ENOENT;
			return NULL;
		}
		l->b = b;
		l->cfg = &cfg->listeners[i];
		l->allow_anonymous = cfg->listeners[i].allow_anonymous;
		l->identity = cfg->identity ? cfg->identity[i] : BW_CONFIG_IDENTITY_NONE;
		if (!(l->t = tenant_get(b, (uint32_t)id)))
			goto fail;
		b->ops[i] = (struct bw_conn_ops){
			.ctx = l,
			.now_ms = now_ms,
			.place = op_place,
			.connect = op_connect,
			.auth_method =
			        b->pol && b->pol->jwt_keys && chain_has(b, BW_CONFIG_METHOD_TOKEN)
			                ? "JWT"
			                : NULL,
			.reauth = op_reauth,
			.may_publish = op_may_publish,
			.publish = op_publish,
			.subscribe = op_subscribe,
			.subscribed = op_subscribed,
			.unsubscribe = op_unsubscribe,
			.closed = op_closed,
			.set_expiry = op_set_expiry,
		};
	}
	return b;
fail:
	bw_broker_free(&b);
	errno = ENOMEM;
	return NULL;
}

static void end_sessions(struct bw_broker *b)
{
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		for (uint32_t i = 0; t->tab && i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i], *next; s; s = next) {
				next = s->hnext;
				sess_end(b, s);
			}
		}
	}
}

void bw_broker_shutdown(struct bw_broker *b)
{
	/*
	 * The server closed every connection: wills without a delay go out
	 * now, and so do those of sessions that end with their connection. A
	 * delayed will of a session the snapshot keeps waits in it.
	 */
	for (struct sess *s = b->timed, *next; s; s = next) {
		next = s->tnext;
		if (s->will && (s->will_delay_s == 0 || s->expiry_s == 0))
			send_will(b, s);
	}
	/* A session expiry of 0 ends with the connection; others wait for the snapshot. */
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		for (uint32_t i = 0; i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i], *next; s; s = next) {
				next = s->hnext;
				if (!s->conn && s->expiry_s == 0)
					sess_end(b, s);
			}
		}
	}
}

void bw_broker_free(struct bw_broker **bp)
{
	struct bw_broker *b = *bp;
	if (!b)
		return;
	b->freeing = true; /* no wills (see bw_broker_shutdown()), no redelivery */
	end_sessions(b);
	while (b->durables) /* their connections are gone; other workers' holds too */
		durable_free(&b->durables->w);
	bw_policy_unref(&b->pol);
	bw_tenancy_release(&b->snap);
	for (uint32_t k = 0; b->tenants && k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		bw_sub_index_free(&t->index);
		bw_sub_index_free(&t->replica);
		free(t->tab);
	}
	free(b->rv); /* holds no references between calls */
	free(b->tenants);
	bw_match_fini(&b->match);
	bw_match_fini(&b->rmatch);
	bw_match_fini(&b->pmatch);
	free(b->lctx);
	free(b->ops);
	free(b);
	*bp = NULL;
}

const struct bw_conn_ops *bw_broker_ops(struct bw_broker *b, uint32_t listener)
{
	return listener < b->cfg.n_listeners ? &b->ops[listener] : NULL;
}

/* Publishes one $SYS value as a retained message of the tenant. */
static void sys_publish(struct bw_broker *b, struct tenant *t, const char *topic, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

static void sys_publish(struct bw_broker *b, struct tenant *t, const char *topic, const char *fmt,
                        ...)
{
	char value[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	struct bw_msg *m = bw_msg_new(topic, strlen(topic), NULL, value,
	                              (size_t)n < sizeof(value) ? (size_t)n : sizeof(value) - 1, 0,
	                              true, b->cfg.now_ms());
	if (!m)
		return;
	m->tenant = t->id;
	publish(b, t, m, NULL);
	bw_stat_add(&t->stats->msgs_in, -1); /* the broker's own messages are not traffic */
	bw_msg_unref(&m);
}

/*
 * $SYS/broker/... for each tenant, about that tenant only (a client of one
 * tenant sees no other's numbers), summed over the node's workers; worker
 * 0 publishes them.
 */
static void sys_stats(struct bw_broker *b, uint64_t now)
{
	for (uint32_t k = 0; k < bw_hub_tenants(b->hub); k++) {
		struct tenant *t = tenant_get(b, k);
		if (!t)
			continue;
		struct bw_tenant_totals tt;
		bw_hub_totals(b->hub, t->id, &tt);
		sys_publish(b, t, "$SYS/broker/version", "bulwark %s", b->cfg.version);
		sys_publish(b, t, "$SYS/broker/uptime", "%llu seconds",
		            (unsigned long long)((now - b->started_ms) / 1000));
		sys_publish(b, t, "$SYS/broker/clients/connected", "%llu",
		            (unsigned long long)tt.connected);
		sys_publish(b, t, "$SYS/broker/sessions/count", "%llu",
		            (unsigned long long)tt.sessions);
		sys_publish(b, t, "$SYS/broker/subscriptions/count", "%llu",
		            (unsigned long long)tt.subscriptions);
		sys_publish(b, t, "$SYS/broker/retained messages/count", "%u", tt.retained);
		sys_publish(b, t, "$SYS/broker/messages/received", "%llu",
		            (unsigned long long)tt.msgs_in);
		sys_publish(b, t, "$SYS/broker/messages/sent", "%llu",
		            (unsigned long long)tt.msgs_out);
		sys_publish(b, t, "$SYS/broker/messages/dropped", "%llu",
		            (unsigned long long)tt.dropped);
	}
}

void bw_broker_sync(struct bw_broker *b)
{
	policy_sync(b);
	tenancy_sync(b);
}

/* Renews the leases due of the next LEASE_SCAN_TICK sessions, round and round. */
static void lease_scan(struct bw_broker *b, uint64_t now)
{
	uint32_t left = LEASE_SCAN_TICK;
	while (left > 0 && b->n_tenants > 0) {
		if (b->lease_tenant >= b->n_tenants) {
			b->lease_tenant = b->lease_bucket = 0;
			if (left < LEASE_SCAN_TICK)
				return; /* one pass a tick at most */
		}
		struct tenant *t = &b->tenants[b->lease_tenant];
		if (!t->ready || !t->tab || b->lease_bucket > t->tab_mask) {
			b->lease_tenant++;
			b->lease_bucket = 0;
			left--;
			continue;
		}
		left--; /* a bucket costs one, and each session in it one more */
		for (struct sess *s = t->tab[b->lease_bucket++]; s; s = s->hnext) {
			if (s->conn && s->token && now >= s->lease_at)
				sess_lease(b, s, now);
			left = left ? left - 1 : 0;
		}
	}
}

void bw_broker_tick(struct bw_broker *b, uint64_t now)
{
	/* Stored publishes whose last hold went where no letter could come from. */
	for (struct durable *d = b->durables; d;) {
		if (!d->finished && atomic_load(&d->state) == DURABLE_DONE) {
			durable_finish(d); /* may free others of the list */
			d = b->durables;
		} else {
			d = d->next;
		}
	}
	interest_sync(b);
	bw_broker_sync(b);
	if (b->cfg.sessions)
		lease_scan(b, now);
	if (b->self == 0 && b->cfg.sys_interval_ms && now >= b->next_sys_ms) {
		b->next_sys_ms = now + b->cfg.sys_interval_ms;
		sys_stats(b, now);
	}
	for (struct sess *s = b->timed, *next; s; s = next) {
		next = s->tnext;
		if (s->conn) {
			/* A JWT that expired ends its connection (5.0: DISCONNECT 0x87). */
			if (s->token_exp && now >= s->token_exp) {
				struct bw_conn *c = s->conn;
				s->token_exp = 0;
				bw_conn_kick(c, BW_RC_NOT_AUTHORIZED);
				b->cfg.wants_send(bw_conn_user(c));
			}
			continue;
		}
		s->token_exp = 0;
		if (s->will_at && now >= s->will_at)
			send_will(b, s);
		if (s->expires_at && now >= s->expires_at) {
			sess_end(b, s);
			continue;
		}
		if (!s->will && !s->expires_at)
			timed_del(b, s);
	}
}

bool bw_broker_congested(struct bw_broker *b)
{
	uint64_t now = b->congested ? b->cfg.now_ms() : 0;
	for (struct sess **pp = &b->congested; *pp;) {
		struct sess *s = *pp;
		bool still = is_congested(b, s);
		if (still && now - s->congested_ms > BW_BROKER_STALL_MS) {
			s->stalled = true;
			bw_log_warn("tenant %s: client '%.*s' stalled: congested for over %u ms, "
			            "publishers no longer wait for it",
			            bw_hub_tenant_name(b->hub, s->t->id), (int)s->id_len, s->id,
			            BW_BROKER_STALL_MS);
			still = false;
		}
		if (still) {
			pp = &s->cnext;
		} else {
			s->congested = false;
			*pp = s->cnext;
		}
	}
	return b->congested != NULL || bw_hub_backlog(b->hub, b->self) > 0 ||
	       (b->cfg.sessions && bw_sessions_busy(b->cfg.sessions));
}

/* ---- snapshots -------------------------------------------------------------- */

int bw_broker_sessions(struct bw_broker *b, int (*fn)(void *arg, const struct bw_session_info *s),
                       void *arg)
{
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		if (!t->ready)
			continue;
		for (uint32_t i = 0; i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i]; s; s = s->hnext) {
				if (s->expiry_s == 0)
					continue;
				struct bw_session_info si = info_of(s);
				int rc = fn(arg, &si);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}

int bw_broker_session_subs(struct bw_broker *b, const struct bw_session_info *si, bw_sub_each_fn fn,
                           void *arg)
{
	struct sess *s = si->handle;
	(void)b;
	return bw_sub_index_each(s->t->index, s, fn, arg);
}

struct bw_session *bw_broker_session_restore(struct bw_broker *b, const struct bw_session_info *si)
{
	struct tenant *t = tenant_get(b, si->tenant);
	if (!t || sess_find(t, si->client_id)) {
		errno = EEXIST;
		return NULL;
	}
	struct sess *s = sess_new(b, t, si->client_id);
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->expiry_s = si->expiry_s;
	s->expires_at = si->expires_at_ms;
	s->will = si->will ? bw_msg_ref(si->will) : NULL;
	s->will_delay_s = si->will_delay_s;
	s->will_expiry_s = si->will_expiry_s;
	s->will_at = si->will ? si->will_at_ms : 0;
	if (s->will || s->expires_at)
		timed_add(b, s);
	return s->state;
}

int bw_broker_sub_restore(struct bw_broker *b, struct bw_session *state, const uint8_t *filter,
                          size_t len, const struct bw_sub_opts *o)
{
	struct sess *s = bw_session_owner(state);
	struct tenant *t = s->t;
	bool fresh;
	int rc = bw_sub_index_add(t->index, filter, len, s, o, &fresh);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;
	bool shared = is_shared(filter, len);
	if (shared || fresh) {
		uint32_t member = shared ? bw_sub_index_count(t->index, filter, len) : 0;
		if (interest_change(b, t, true, member, filter, len) < 0) {
			bw_sub_index_remove(t->index, filter, len, s, &fresh);
			return -ENOMEM;
		}
	}
	s->n_subs++;
	bw_stat_add(&t->stats->subscriptions, 1);
	return 0;
}

size_t *bw_broker_out_pool(struct bw_broker *b)
{
	return &b->out_pool;
}

size_t bw_broker_metrics(struct bw_hub *h, char *buf, size_t cap)
{
	size_t n = 0;
	for (uint32_t k = 0; k < bw_hub_tenants(h) && n < cap; k++) {
		struct bw_tenant_totals tt;
		const char *name = bw_hub_tenant_name(h, k);
		bw_hub_totals(h, k, &tt);
		int r = snprintf(
		        buf + n, cap - n,
		        "bulwark_tenant_connections{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_sessions{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_subscriptions{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_retained_messages{tenant=\"%s\"} %u\n"
		        "bulwark_tenant_retained_bytes{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_messages_in_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_messages_out_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_messages_dropped_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_auth_failures_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_auth_backoffs_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_acl_denials_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_bytes_in_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_bytes_out_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_quota_hits_total{tenant=\"%s\"} %llu\n"
		        "bulwark_tenant_persistent_sessions{tenant=\"%s\"} %llu\n",
		        name, (unsigned long long)tt.connected, name,
		        (unsigned long long)tt.sessions, name, (unsigned long long)tt.subscriptions,
		        name, tt.retained, name, (unsigned long long)tt.retained_bytes, name,
		        (unsigned long long)tt.msgs_in, name, (unsigned long long)tt.msgs_out, name,
		        (unsigned long long)tt.dropped, name, (unsigned long long)tt.auth_failures,
		        name, (unsigned long long)tt.auth_backoffs, name,
		        (unsigned long long)tt.denied, name, (unsigned long long)tt.bytes_in, name,
		        (unsigned long long)tt.bytes_out, name, (unsigned long long)tt.quota_hits,
		        name, (unsigned long long)tt.persistent);
		if (r < 0 || (size_t)r >= cap - n)
			break;
		n += (size_t)r;
	}
	return n;
}

/* ---- what the admin socket asks ------------------------------------------------ */

static void client_of(struct sess *s, struct bw_broker_client *out)
{
	bool on = s->conn && bw_conn_state(s->conn) == BW_CONN_CONNECTED;
	*out = (struct bw_broker_client){
		.client_id = { (const uint8_t *)s->id, s->id_len },
		.user = s->user,
		.connected = on,
		.persistent = s->expiry_s > 0,
		.version = on ? bw_conn_version(s->conn) : 0,
		.expiry_s = s->expiry_s,
		.expires_at_ms = s->conn ? 0 : s->expires_at,
		.subscriptions = s->n_subs,
		.queued = bw_session_queued(s->state),
		.inflight = bw_session_inflight(s->state),
		.will = s->will != NULL,
		.handle = s,
	};
}

/* A session whose connection closed and whose expiry is 0: it ends at the tick. */
static bool sess_ending(const struct sess *s)
{
	return !s->conn && s->expiry_s == 0;
}

/* The broker's state of tenant id, or NULL when it has none here. */
static struct tenant *tenant_here(struct bw_broker *b, uint32_t id)
{
	return id < b->n_tenants && b->tenants[id].ready ? &b->tenants[id] : NULL;
}

int bw_broker_clients(struct bw_broker *b, uint32_t tenant, const char *glob,
                      int (*fn)(void *arg, const struct bw_broker_client *c), void *arg)
{
	struct tenant *t = tenant_here(b, tenant);
	for (uint32_t i = 0; t && i <= t->tab_mask; i++) {
		for (struct sess *s = t->tab[i]; s; s = s->hnext) {
			/* ids hold no NUL: s->id is their whole text */
			if (sess_ending(s) || (glob && fnmatch(glob, s->id, 0) != 0))
				continue;
			struct bw_broker_client c;
			client_of(s, &c);
			int rc = fn(arg, &c);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static struct sess *sess_lookup(struct bw_broker *b, uint32_t tenant, struct bw_str id)
{
	struct tenant *t = tenant_here(b, tenant);
	return t ? sess_find(t, id) : NULL;
}

int bw_broker_client(struct bw_broker *b, uint32_t tenant, struct bw_str id,
                     struct bw_broker_client *out)
{
	struct sess *s = sess_lookup(b, tenant, id);
	if (!s || sess_ending(s))
		return -ENOENT;
	client_of(s, out);
	return 0;
}

int bw_broker_client_subs(struct bw_broker *b, const struct bw_broker_client *c, bw_sub_each_fn fn,
                          void *arg)
{
	struct sess *s = c->handle;
	(void)b;
	return bw_sub_index_each(s->t->index, s, fn, arg);
}

int bw_broker_kick(struct bw_broker *b, uint32_t tenant, struct bw_str id, bool discard)
{
	struct sess *s = sess_lookup(b, tenant, id);
	if (!s || sess_ending(s))
		return -ENOENT;
	int done = discard ? BW_BROKER_DISCARDED : 0;
	bw_log_info("tenant %s: client '%.*s' %s by an admin", bw_hub_tenant_name(b->hub, tenant),
	            (int)s->id_len, s->id,
	            !s->conn  ? "discarded"
	            : discard ? "kicked and discarded"
	                      : "kicked");
	if (s->conn) {
		struct bw_conn *c = s->conn;
		bw_conn_kick(c, BW_RC_ADMIN_ACTION); /* detaches c: op_closed */
		b->cfg.wants_send(bw_conn_user(c));
		done |= BW_BROKER_KICKED;
	}
	if (discard)
		sess_end(b, s); /* its will goes out now; the closing c no longer uses it */
	return done;
}

uint32_t bw_broker_drain(struct bw_broker *b)
{
	uint32_t n = 0;
	b->draining = true;
	for (uint32_t k = 0; k < b->n_tenants; k++) {
		struct tenant *t = &b->tenants[k];
		for (uint32_t i = 0; t->ready && i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i]; s; s = s->hnext) {
				if (!s->conn || bw_conn_state(s->conn) != BW_CONN_CONNECTED)
					continue;
				struct bw_conn *c = s->conn;
				bw_conn_kick(c, BW_RC_USE_ANOTHER_SERVER);
				b->cfg.wants_send(bw_conn_user(c));
				n++;
			}
		}
	}
	return n;
}
