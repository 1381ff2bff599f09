/*
 * The broker of one worker (see broker.h). Sessions are found by client id
 * in a per-tenant chained hash table; offline sessions with a deadline
 * (will delay, session expiry) sit on one list that the tick walks, so the
 * cost of a tick grows with sessions waiting for something, not with all
 * sessions.
 */
#include "node/core/broker.h"

#include "node/core/msg.h"
#include "node/core/retained.h"
#include "node/core/session.h"
#include "node/core/sub_index.h"
#include "node/log.h"
#include "proto/mqtt/topic.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVER UINT32_MAX /* a session expiry interval that never elapses */

struct pending_retained {
	struct pending_retained *next;
	uint8_t granted;
	uint32_t sub_id;
	uint16_t len;
	uint8_t filter[];
};

struct sess {
	struct tenant *t;
	struct sess *hnext;         /* tenant's client-id table */
	struct sess *tnext, *tprev; /* broker's timed list */
	bool timed;
	bool congested; /* on the broker\'s congested list */
	struct sess *cnext;
	uint64_t hash;
	struct bw_session *state;
	struct bw_conn *conn; /* NULL while offline */
	uint32_t expiry_s;    /* Session Expiry Interval; NEVER */
	uint64_t expires_at;  /* offline: when it ends (0: no deadline) */
	struct bw_msg *will;
	uint32_t will_delay_s;
	uint64_t will_at; /* offline: when the will goes out (0: not due) */
	uint32_t n_subs;
	struct pending_retained *pending;
	uint16_t id_len;
	char id[];
};

struct tenant {
	struct tenant *next;
	struct bw_sub_index *index;
	struct bw_retained *retained;
	struct sess **tab;
	uint32_t tab_mask, n_sessions, n_connected;
	uint64_t msgs_in, msgs_out, dropped;
	char name[BW_CONFIG_NAME_MAX];
};

struct listener_ctx {
	struct bw_broker *b;
	struct tenant *t;
	bool allow_anonymous;
};

struct bw_broker {
	struct bw_broker_config cfg;
	struct tenant *tenants;
	struct listener_ctx *lctx;
	struct bw_conn_ops *ops; /* one a listener, ctx = &lctx[i] */
	struct sess *timed;      /* head of the timed list */
	struct sess *congested;  /* subscribers found congested, see bw_broker_congested() */
	bool pressure;           /* the current publish fed a congested subscriber */
	uint64_t started_ms, next_sys_ms;
	struct bw_match match; /* reused by every route */
};

static uint64_t hash_id(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void release_msg(void *arg, void *msg)
{
	struct bw_msg *m = msg;
	bw_msg_unref(&m);
}

static struct tenant *tenant_get(struct bw_broker *b, const char *name)
{
	for (struct tenant *t = b->tenants; t; t = t->next) {
		if (!strcmp(t->name, name))
			return t;
	}
	struct tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	struct bw_sub_index_limits il = { .filters_max = b->cfg.filters_max,
		                          .subs_max = b->cfg.filters_max * 4,
		                          .levels_max = b->cfg.max_topic_levels };
	struct bw_retained_limits rl = { .count_max = b->cfg.retained_max,
		                         .bytes_max = b->cfg.retained_bytes_max,
		                         .levels_max = b->cfg.max_topic_levels };
	t->index = bw_sub_index_new(&il);
	t->retained = bw_retained_new(&rl, release_msg, NULL);
	t->tab_mask = 63;
	t->tab = calloc(t->tab_mask + 1, sizeof(*t->tab));
	if (!t->index || !t->retained || !t->tab) {
		bw_sub_index_free(&t->index);
		bw_retained_free(&t->retained);
		free(t->tab);
		free(t);
		return NULL;
	}
	t->next = b->tenants;
	b->tenants = t;
	return t;
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
		                         .queue_max = b->cfg.max_queued_messages };
	s->state = bw_session_new(&lim);
	if (!s->state) {
		free(s);
		return NULL;
	}
	bw_session_set_owner(s->state, s);
	s->t = t;
	memcpy(s->id, id.p, id.len);
	s->id_len = id.len;
	s->hash = hash_id(id.p, id.len);
	if (t->n_sessions > t->tab_mask)
		tab_grow(t);
	s->hnext = t->tab[s->hash & t->tab_mask];
	t->tab[s->hash & t->tab_mask] = s;
	t->n_sessions++;
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
	size_t soft = q->lim.soft_bytes;
	uint32_t max = b->cfg.max_queued_messages, queued = bw_session_queued(s->state);
	if (s->congested)
		return (soft && bw_outq_bytes(q) > soft / 2) ||
		       (max > 0 && queued >= (max + 3) / 4);
	return bw_outq_over_soft(q) || (max > 0 && queued >= (max + 1) / 2);
}

static void deliver(struct bw_broker *b, struct sess *s, const struct bw_delivery *d)
{
	if (s->conn) {
		if (bw_conn_deliver(s->conn, d))
			s->t->dropped++;
		b->cfg.wants_send(bw_conn_user(s->conn));
		s->t->msgs_out++;
		if (s->conn && is_congested(b, s)) {
			b->pressure = true;
			if (!s->congested) {
				s->congested = true;
				s->cnext = b->congested;
				b->congested = s;
			}
		}
	} else if (d->qos > 0) {
		/* Offline persistent sessions queue QoS 1/2; QoS 0 is not kept. */
		if (bw_session_enqueue(s->state, d))
			s->t->dropped++;
	}
}

/* Routes m (with its retain flag) to the subscribers of its tenant. */
static void route(struct bw_broker *b, struct tenant *t, struct bw_msg *m, const void *publisher)
{
	int n = bw_sub_index_match(t->index, m->topic.p, m->topic.len, publisher, &b->match);
	if (n < 0) {
		t->dropped++;
		return;
	}
	t->dropped += b->match.dropped;
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

/* An application message enters the tenant: retained state, then routing. */
static void publish(struct bw_broker *b, struct tenant *t, struct bw_msg *m, const void *publisher)
{
	t->msgs_in++;
	if (m->retain) {
		if (m->payload.len == 0) {
			/* [MQTT-3.3.1-6]: an empty retained message clears the topic. */
			bw_retained_clear(t->retained, m->topic.p, m->topic.len);
		} else {
			size_t size = m->topic.len + m->props.len + m->payload.len;
			int rc = bw_retained_set(t->retained, m->topic.p, m->topic.len,
			                         bw_msg_ref(m), size);
			if (rc < 0) {
				struct bw_msg *mine = m;
				bw_msg_unref(&mine); /* the reference it did not take */
				t->dropped++;
				bw_log_warn("tenant %s: retained message for '%.*s' refused (%s)",
				            t->name, (int)m->topic.len, (const char *)m->topic.p,
				            rc == -EDQUOT ? "retained quota" : strerror(-rc));
			}
		}
	}
	route(b, t, m, publisher);
}

/* Publishes the will and forgets it. */
static void send_will(struct bw_broker *b, struct sess *s)
{
	if (!s->will)
		return;
	publish(b, s->t, s->will, NULL);
	bw_msg_unref(&s->will);
	s->will_at = 0;
}

/* Ends a session: a will still waiting goes out ([MQTT-3.1.2-8]). */
static void sess_end(struct bw_broker *b, struct sess *s)
{
	struct tenant *t = s->t;
	send_will(b, s);
	bw_sub_index_remove_all(t->index, s, NULL, NULL);
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
	t->n_sessions--;
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

static int op_connect(void *ctx, struct bw_conn *c, const struct bw_connect *pkt)
{
	struct listener_ctx *l = ctx;
	struct bw_broker *b = l->b;
	struct tenant *t = l->t;
	bool v5 = pkt->version == BW_MQTT_5;

	/* Fail closed until authentication exists: see broker.h. */
	if (pkt->has_username || pkt->has_password)
		return BW_RC_BAD_USERNAME_PASSWORD;
	if (!l->allow_anonymous)
		return BW_RC_NOT_AUTHORIZED;

	struct bw_msg *will = NULL;
	if (pkt->will) {
		if (bw_topic_is_sys(pkt->will_topic.p, pkt->will_topic.len))
			return BW_RC_NOT_AUTHORIZED;
		will = bw_msg_new(pkt->will_topic.p, pkt->will_topic.len,
		                  v5 ? &pkt->will_props : NULL, pkt->will_payload.p,
		                  pkt->will_payload.len, pkt->will_qos, pkt->will_retain,
		                  b->cfg.now_ms());
		if (!will)
			return BW_RC_UNSPECIFIED;
	}
	uint32_t expiry = 0;
	if (v5 && (pkt->props.has & BW_PROP_BIT(BW_PROP_SESSION_EXPIRY)))
		expiry = pkt->props.session_expiry;
	else if (!v5 && !pkt->clean_start)
		expiry = NEVER;

	struct bw_str id = bw_conn_client_id(c);
	struct sess *s = sess_find(t, id);
	if (s && s->conn) {
		/* [MQTT-3.1.4-3]: the old connection goes (0x8E); its closed()
		 * only schedules work, so s stays valid. */
		struct bw_conn *old = s->conn;
		bw_conn_kick(old, BW_RC_SESSION_TAKEN_OVER);
		b->cfg.wants_send(bw_conn_user(old));
	}
	bool present = false;
	if (s && (pkt->clean_start || s->expiry_s == 0)) {
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
		bw_msg_unref(&will);
		return BW_RC_UNSPECIFIED;
	}
	s->conn = c;
	s->expiry_s = expiry;
	s->will = will;
	s->will_delay_s = v5 ? pkt->will_props.will_delay : 0;
	t->n_connected++;
	bw_conn_attach(c, s->state, present);
	return 0;
}

static void op_publish(void *ctx, struct bw_conn *c, struct bw_msg *m)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	m->tenant = l->t;
	m->publisher = s;
	l->b->pressure = false;
	publish(l->b, l->t, m, s);
	if (l->b->pressure && l->b->cfg.pause)
		l->b->cfg.pause(bw_conn_user(c));
}

static int op_subscribe(void *ctx, struct bw_conn *c, const struct bw_sub_entry *e, uint32_t sub_id)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	struct bw_sub_opts o = { .qos = e->qos,
		                 .no_local = e->no_local,
		                 .retain_as_published = e->retain_as_published,
		                 .retain_handling = e->retain_handling,
		                 .sub_id = sub_id };
	bool fresh_filter;
	int rc = bw_sub_index_add(l->t->index, e->filter.p, e->filter.len, s, &o, &fresh_filter);
	if (rc == 0 && s->n_subs >= l->b->cfg.max_subscriptions) {
		bw_sub_index_remove(l->t->index, e->filter.p, e->filter.len, s, &fresh_filter);
		return -BW_RC_QUOTA_EXCEEDED;
	}
	switch (rc) {
	case 0:
		s->n_subs++;
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
	struct bw_topic_share share;
	bool shared = bw_topic_share_split(e->filter.p, e->filter.len, &share);
	/* [MQTT-3.8.4-4]: retained messages per Retain Handling; none for
	 * shared subscriptions ([MQTT-3.8.4-?] 4.8.2). */
	if (!shared && (e->retain_handling == 0 || (e->retain_handling == 1 && rc == 0))) {
		struct pending_retained *p = malloc(sizeof(*p) + e->filter.len);
		if (p) {
			p->granted = e->qos;
			p->sub_id = sub_id;
			p->len = e->filter.len;
			memcpy(p->filter, e->filter.p, e->filter.len);
			p->next = s->pending;
			s->pending = p;
		}
	}
	return e->qos;
}

struct retained_visit {
	struct bw_broker *b;
	struct sess *s;
	const struct pending_retained *p;
};

static int visit_retained(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct retained_visit *v = arg;
	struct bw_msg *m = msg;
	struct bw_delivery d = { .msg = m, .retain = true };
	d.qos = m->qos < v->p->granted ? m->qos : v->p->granted;
	if (v->p->sub_id) {
		d.n_sub_ids = 1;
		d.sub_ids[0] = v->p->sub_id;
	}
	deliver(v->b, v->s, &d);
	return 0;
}

static void op_subscribed(void *ctx, struct bw_conn *c)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	struct pending_retained *p = s->pending;
	s->pending = NULL;
	while (p) {
		struct pending_retained *next = p->next;
		struct retained_visit v = { l->b, s, p };
		bw_retained_match(l->t->retained, p->filter, p->len, visit_retained, &v);
		free(p);
		p = next;
	}
}

static int op_unsubscribe(void *ctx, struct bw_conn *c, struct bw_str f)
{
	struct listener_ctx *l = ctx;
	struct sess *s = owner(c);
	bool gone;
	if (bw_sub_index_remove(l->t->index, f.p, f.len, s, &gone))
		return -BW_RC_NO_SUBSCRIPTION_EXISTED;
	s->n_subs--;
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
	l->t->n_connected--;
	if (!with_will)
		bw_msg_unref(&s->will);
	if (s->will)
		s->will_at = now + (uint64_t)s->will_delay_s * 1000 + 1;
	if (s->expiry_s != NEVER)
		s->expires_at = now + (uint64_t)s->expiry_s * 1000 + 1;
	if (s->will || s->expires_at)
		timed_add(b, s);
}

/* ---- the broker ----------------------------------------------------------- */

struct bw_broker *bw_broker_new(const struct bw_broker_config *cfg)
{
	struct bw_broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = *cfg;
	b->lctx = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*b->lctx));
	b->ops = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*b->ops));
	if (!b->lctx || !b->ops)
		goto fail;
	bw_match_init(&b->match, UINT32_MAX);
	b->started_ms = cfg->now_ms();
	b->next_sys_ms = b->started_ms + cfg->sys_interval_ms;
	for (uint32_t i = 0; i < cfg->n_listeners; i++) {
		struct listener_ctx *l = &b->lctx[i];
		l->b = b;
		l->allow_anonymous = cfg->listeners[i].allow_anonymous;
		if (!(l->t = tenant_get(b, cfg->listeners[i].tenant)))
			goto fail;
		b->ops[i] = (struct bw_conn_ops){
			.ctx = l,
			.now_ms = now_ms,
			.connect = op_connect,
			.publish = op_publish,
			.subscribe = op_subscribe,
			.subscribed = op_subscribed,
			.unsubscribe = op_unsubscribe,
			.closed = op_closed,
		};
	}
	return b;
fail:
	bw_broker_free(&b);
	errno = ENOMEM;
	return NULL;
}

void bw_broker_free(struct bw_broker **bp)
{
	struct bw_broker *b = *bp;
	if (!b)
		return;
	for (struct tenant *t = b->tenants, *tn; t; t = tn) {
		tn = t->next;
		for (uint32_t i = 0; i <= t->tab_mask; i++) {
			for (struct sess *s = t->tab[i], *next; s; s = next) {
				next = s->hnext;
				bw_msg_unref(&s->will); /* a node going away sends no wills here */
				sess_end(b, s);
			}
		}
		bw_sub_index_free(&t->index);
		bw_retained_free(&t->retained);
		free(t->tab);
		free(t);
	}
	bw_match_fini(&b->match);
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
	m->tenant = t;
	publish(b, t, m, NULL);
	t->msgs_in--; /* the broker's own messages are not traffic */
	bw_msg_unref(&m);
}

/*
 * $SYS/broker/... for each tenant, about that tenant only: a client of one
 * tenant sees no other's numbers.
 */
static void sys_stats(struct bw_broker *b, uint64_t now)
{
	for (struct tenant *t = b->tenants; t; t = t->next) {
		struct bw_retained_stats rs;
		struct bw_sub_index_stats ss;
		bw_retained_stats(t->retained, &rs);
		bw_sub_index_stats(t->index, &ss);
		sys_publish(b, t, "$SYS/broker/version", "bulwark %s", b->cfg.version);
		sys_publish(b, t, "$SYS/broker/uptime", "%llu seconds",
		            (unsigned long long)((now - b->started_ms) / 1000));
		sys_publish(b, t, "$SYS/broker/clients/connected", "%u", t->n_connected);
		sys_publish(b, t, "$SYS/broker/sessions/count", "%u", t->n_sessions);
		sys_publish(b, t, "$SYS/broker/subscriptions/count", "%u", ss.subs);
		sys_publish(b, t, "$SYS/broker/retained messages/count", "%u", rs.count);
		sys_publish(b, t, "$SYS/broker/messages/received", "%llu",
		            (unsigned long long)t->msgs_in);
		sys_publish(b, t, "$SYS/broker/messages/sent", "%llu",
		            (unsigned long long)t->msgs_out);
		sys_publish(b, t, "$SYS/broker/messages/dropped", "%llu",
		            (unsigned long long)t->dropped);
	}
}

void bw_broker_tick(struct bw_broker *b, uint64_t now)
{
	if (b->cfg.sys_interval_ms && now >= b->next_sys_ms) {
		b->next_sys_ms = now + b->cfg.sys_interval_ms;
		sys_stats(b, now);
	}
	for (struct sess *s = b->timed, *next; s; s = next) {
		next = s->tnext;
		if (s->conn)
			continue;
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
	for (struct sess **pp = &b->congested; *pp;) {
		struct sess *s = *pp;
		if (is_congested(b, s)) {
			pp = &s->cnext;
		} else {
			s->congested = false;
			*pp = s->cnext;
		}
	}
	return b->congested != NULL;
}

size_t bw_broker_metrics(struct bw_broker *b, char *buf, size_t cap)
{
	size_t n = 0;
	for (struct tenant *t = b->tenants; t && n < cap; t = t->next) {
		struct bw_retained_stats rs;
		struct bw_sub_index_stats ss;
		bw_retained_stats(t->retained, &rs);
		bw_sub_index_stats(t->index, &ss);
		int k = snprintf(buf + n, cap - n,
		                 "bulwark_tenant_connections{tenant=\"%s\"} %u\n"
		                 "bulwark_tenant_sessions{tenant=\"%s\"} %u\n"
		                 "bulwark_tenant_subscriptions{tenant=\"%s\"} %u\n"
		                 "bulwark_tenant_retained_messages{tenant=\"%s\"} %u\n"
		                 "bulwark_tenant_messages_in_total{tenant=\"%s\"} %llu\n"
		                 "bulwark_tenant_messages_out_total{tenant=\"%s\"} %llu\n"
		                 "bulwark_tenant_messages_dropped_total{tenant=\"%s\"} %llu\n",
		                 t->name, t->n_connected, t->name, t->n_sessions, t->name, ss.subs,
		                 t->name, rs.count, t->name, (unsigned long long)t->msgs_in,
		                 t->name, (unsigned long long)t->msgs_out, t->name,
		                 (unsigned long long)t->dropped);
		if (k < 0 || (size_t)k >= cap - n)
			break;
		n += (size_t)k;
	}
	return n;
}
