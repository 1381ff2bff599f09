/*
 * The admin socket's questions to the brokers (see admin_queries.h). A
 * question goes to every worker, or to the one home worker of a client id,
 * as a struct bw_worker_call; each worker answers into its own part (no
 * lock while it walks its sessions) and the admin thread, woken when the
 * last has answered, merges the parts.
 */
#include "node/admin_queries.h"

#include "node/core/broker.h"
#include "node/core/hub.h"
#include "node/core/msg.h"
#include "node/io/ring.h"
#include "node/worker.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum ask { ASK_LIST, ASK_ONE, ASK_KICK, ASK_DRAIN, ASK_SYNC, ASK_RETAINED_DEL };

/* One question, asked of some workers. */
struct question {
	enum ask ask;
	uint32_t tenant;
	const char *glob;
	struct bw_str id;
	bool discard;
	size_t max; /* rows a worker answers at most (one more tells truncation) */
	uint64_t now_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t waiting; /* workers yet to answer */
};

/* A worker's part of the answer. */
struct part {
	struct bw_worker_call call;
	struct question *q;
	struct bw_admin_sessions sessions;
	int rc; /* ASK_ONE, ASK_KICK: the broker's; ASK_DRAIN: how many left */
	bool nomem;
};

/* ---- on the workers ---------------------------------------------------------- */

static int copy_sub(void *arg, const uint8_t *filter, size_t len, const struct bw_sub_opts *o)
{
	struct bw_admin_session *s = arg;
	struct bw_admin_sub *v = realloc(s->subs, (s->subs_n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->subs = v;
	char *f = strndup((const char *)filter, len);
	if (!f)
		return -ENOMEM;
	v[s->subs_n++] = (struct bw_admin_sub){
		.filter = f,
		.qos = o->qos,
		.retain_handling = o->retain_handling,
		.no_local = o->no_local,
		.retain_as_published = o->retain_as_published,
		.id = o->sub_id,
	};
	return 0;
}

struct copy_ctx {
	struct part *p;
	struct bw_broker *b;
	bool subs;
};

static int copy_client(void *arg, const struct bw_broker_client *c)
{
	struct copy_ctx *x = arg;
	struct bw_admin_sessions *out = &x->p->sessions;
	if (out->n > x->p->q->max) {
		out->truncated = true;
		return 1;
	}
	struct bw_admin_session *v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	out->v = v;
	struct bw_admin_session *s = &v[out->n];
	uint64_t now = x->p->q->now_ms;
	*s = (struct bw_admin_session){
		.client_id = strndup((const char *)c->client_id.p, c->client_id.len),
		.user = c->user ? strdup(c->user) : NULL,
		.connected = c->connected,
		.persistent = c->persistent,
		.will = c->will,
		.version = c->version,
		.expiry_s = c->expiry_s,
		.expires_in_s = !c->expires_at_ms ? -1
		                : c->expires_at_ms > now
		                        ? (int64_t)((c->expires_at_ms - now) / 1000)
		                        : 0,
		.subscriptions = c->subscriptions,
		.queued = c->queued,
		.inflight = c->inflight,
	};
	out->n++; /* counted before the checks: freed with the rest */
	if (!s->client_id || (c->user && !s->user))
		return -ENOMEM;
	if (x->subs && bw_broker_client_subs(x->b, c, copy_sub, s) < 0)
		return -ENOMEM;
	return 0;
}

static void answer(struct bw_worker_call *call, struct bw_worker *w, void *arg)
{
	struct part *p = BW_CONTAINER_OF(call, struct part, call);
	struct question *q = p->q;
	struct bw_broker *b = arg;
	struct copy_ctx x = { .p = p, .b = b };
	struct bw_broker_client c;

	switch (q->ask) {
	case ASK_LIST:
		p->nomem = bw_broker_clients(b, q->tenant, q->glob, copy_client, &x) < 0;
		break;
	case ASK_ONE:
		x.subs = true;
		p->rc = bw_broker_client(b, q->tenant, q->id, &c);
		p->nomem = p->rc == 0 && copy_client(&x, &c) < 0;
		break;
	case ASK_KICK:
		p->rc = bw_broker_kick(b, q->tenant, q->id, q->discard);
		break;
	case ASK_DRAIN:
		bw_worker_drain(w);
		p->rc = (int)bw_broker_drain(b);
		break;
	case ASK_SYNC:
		bw_broker_sync(b);
		break;
	case ASK_RETAINED_DEL: /* q->id is the topic */
		p->rc = bw_broker_retained_clear(b, q->tenant, q->id.p, q->id.len);
		break;
	}
	pthread_mutex_lock(&q->mu);
	if (--q->waiting == 0)
		pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* ---- on the admin thread ----------------------------------------------------- */

/*
 * Asks workers [from, to) and waits for their answers in parts[from..to).
 * Workers answer at their next pass: within a tick (100 ms) at worst.
 */
static void ask(struct bw_node_admin *na, struct question *q, struct part *parts, uint32_t from,
                uint32_t to)
{
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->waiting = to - from;
	q->now_ms = bw_worker_now_ms();
	for (uint32_t i = from; i < to; i++) {
		parts[i] = (struct part){ .call.fn = answer, .q = q };
		bw_worker_call(na->workers[i], &parts[i].call);
	}
	pthread_mutex_lock(&q->mu);
	while (q->waiting)
		pthread_cond_wait(&q->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
}

/* The hub id of tenant: 0 with *id; -EAGAIN still starting, -ENOENT never met. */
static int tenant_id(struct bw_node_admin *na, const char *tenant, uint32_t *id)
{
	if (!atomic_load_explicit(na->started, memory_order_acquire))
		return -EAGAIN;
	int t = bw_hub_tenant_find(na->hub, tenant);
	if (t < 0)
		return -ENOENT;
	*id = (uint32_t)t;
	return 0;
}

/* The parts' sessions into out, at most max; -ENOMEM when a part ran out of memory. */
static int merge(struct part *parts, uint32_t n, size_t max, struct bw_admin_sessions *out)
{
	struct bw_admin_sessions found[BW_HUB_WORKERS_MAX];
	bool nomem = false;
	for (uint32_t i = 0; i < n; i++) {
		found[i] = parts[i].sessions;
		nomem |= parts[i].nomem;
	}
	int rc = bw_admin_sessions_merge(out, found, n, max);
	if (nomem)
		bw_admin_sessions_free(out);
	return nomem ? -ENOMEM : rc;
}

int bw_node_admin_sessions(void *arg, const char *tenant, const char *glob, const char *id,
                           size_t max, struct bw_admin_sessions *out)
{
	struct bw_node_admin *na = arg;
	struct part parts[BW_HUB_WORKERS_MAX];
	struct question q = { .glob = glob, .max = max };
	uint32_t t;
	int rc = tenant_id(na, tenant, &t);

	if (rc < 0)
		return rc;
	q.tenant = t;
	if (id && strlen(id) > UINT16_MAX)
		return 0; /* no client id is that long */
	if (id) {
		q.ask = ASK_ONE;
		q.id = (struct bw_str){ (const uint8_t *)id, (uint16_t)strlen(id) };
		uint32_t home = bw_hub_home(na->hub, t, id, strlen(id));
		ask(na, &q, parts, home, home + 1);
		return merge(parts + home, 1, max, out);
	}
	q.ask = ASK_LIST;
	ask(na, &q, parts, 0, na->n);
	return merge(parts, na->n, max, out);
}

int bw_node_admin_kick(void *arg, const char *tenant, const char *id, bool discard)
{
	struct bw_node_admin *na = arg;
	struct part parts[BW_HUB_WORKERS_MAX];
	struct question q = { .ask = ASK_KICK, .discard = discard };
	size_t len = strlen(id);
	uint32_t t;
	int rc = tenant_id(na, tenant, &t);

	if (rc < 0)
		return rc;
	if (len > UINT16_MAX)
		return -ESRCH;
	q.tenant = t;
	q.id = (struct bw_str){ (const uint8_t *)id, (uint16_t)len };
	uint32_t home = bw_hub_home(na->hub, t, id, len);
	ask(na, &q, parts, home, home + 1);
	return parts[home].rc == -ENOENT ? -ESRCH : parts[home].rc;
}

uint32_t bw_node_admin_drain(void *arg)
{
	struct bw_node_admin *na = arg;
	struct part parts[BW_HUB_WORKERS_MAX];
	struct question q = { .ask = ASK_DRAIN };
	uint32_t gone = 0;

	atomic_store(&na->draining, true);
	if (!atomic_load_explicit(na->started, memory_order_acquire))
		return 0;
	ask(na, &q, parts, 0, na->n);
	for (uint32_t i = 0; i < na->n; i++)
		gone += (uint32_t)parts[i].rc;
	return gone;
}

void bw_node_admin_sync(void *arg)
{
	struct bw_node_admin *na = arg;
	struct part parts[BW_HUB_WORKERS_MAX];
	struct question q = { .ask = ASK_SYNC };

	if (atomic_load_explicit(na->started, memory_order_acquire))
		ask(na, &q, parts, 0, na->n);
}

struct bw_node_admin_nudge {
	struct bw_worker_call call;
	atomic_bool pending;
};

static void nudged(struct bw_worker_call *call, struct bw_worker *w, void *arg)
{
	struct bw_node_admin_nudge *n = BW_CONTAINER_OF(call, struct bw_node_admin_nudge, call);
	(void)w;
	atomic_store(&n->pending, false); /* before: a change after this is not lost */
	bw_broker_sync(arg);
}

void bw_node_admin_nudge(struct bw_node_admin *na)
{
	for (uint32_t i = 0; na->nudges && i < na->n; i++) {
		struct bw_node_admin_nudge *n = &na->nudges[i];
		if (atomic_exchange(&n->pending, true))
			continue;
		n->call.fn = nudged;
		bw_worker_call(na->workers[i], &n->call);
	}
}

int bw_node_admin_retained(void *arg, const char *tenant, const char *filter, size_t max,
                           struct bw_admin_retained **v, size_t *n, bool *truncated)
{
	struct bw_node_admin *na = arg;
	struct bw_msg **msgs = NULL;
	size_t got = 0, cap = 0;
	uint32_t t;
	int rc = tenant_id(na, tenant, &t);

	*v = NULL;
	*n = 0;
	*truncated = false;
	if (rc < 0)
		return rc;
	rc = bw_hub_retained_get(na->hub, t, (const uint8_t *)filter, strlen(filter), &msgs, &got,
	                         &cap);
	uint64_t now = bw_worker_now_ms();
	struct bw_admin_retained *out = calloc(got ? got : 1, sizeof(*out));
	if (!out)
		rc = -ENOMEM;
	for (size_t i = 0; i < got; i++) {
		struct bw_msg *m = msgs[i];
		bool live = !m->expires_at_ms || now < m->expires_at_ms;
		if (rc >= 0 && live && *n == max)
			*truncated = true;
		else if (rc >= 0 && live) {
			out[*n] = (struct bw_admin_retained){
				.topic = strndup((const char *)m->topic.p, m->topic.len),
				.bytes = m->payload.len,
				.qos = m->qos,
			};
			if (!out[(*n)++].topic)
				rc = -ENOMEM;
		}
		bw_msg_unref(&m);
	}
	free(msgs);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			free(out[i].topic);
		free(out);
		*n = 0;
		return rc;
	}
	*v = out;
	return 0;
}

int bw_node_admin_retained_del(void *arg, const char *tenant, const char *topic)
{
	struct bw_node_admin *na = arg;
	struct bw_msg **msgs = NULL;
	size_t got = 0, cap = 0, len = strlen(topic);
	uint32_t t;
	int rc = tenant_id(na, tenant, &t);

	if (rc < 0)
		return rc;
	/* A topic name is a filter that matches only itself. */
	rc = bw_hub_retained_get(na->hub, t, (const uint8_t *)topic, len, &msgs, &got, &cap);
	for (size_t i = 0; i < got; i++)
		bw_msg_unref(&msgs[i]);
	free(msgs);
	if (rc < 0)
		return rc;
	if (got == 0)
		return -ESRCH;
	/* Through a broker: with Redis, the write goes there too, from a worker's client. */
	struct part parts[BW_HUB_WORKERS_MAX];
	struct question q = { .ask = ASK_RETAINED_DEL, .tenant = t };
	q.id = (struct bw_str){ (const uint8_t *)topic, (uint16_t)len };
	ask(na, &q, parts, 0, 1);
	return parts[0].rc;
}

/* ---- rates ---------------------------------------------------------------------- */

enum { R_MSGS_IN, R_MSGS_OUT, R_BYTES_IN, R_BYTES_OUT, R_DROPPED, R_KINDS };

struct bw_node_admin_sample {
	uint64_t at_ms;
	uint64_t v[R_KINDS];
};

int bw_node_admin_init(struct bw_node_admin *na)
{
	size_t n = (size_t)bw_hub_tenants_max(na->hub) * BW_NODE_ADMIN_SAMPLES;
	na->samples = calloc(n, sizeof(*na->samples));
	na->nudges = calloc(na->n, sizeof(*na->nudges));
	if (!na->samples || !na->nudges) {
		free(na->samples);
		free(na->nudges);
		na->samples = NULL;
		na->nudges = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&na->rate_mu, NULL);
	return 0;
}

void bw_node_admin_fini(struct bw_node_admin *na)
{
	if (!na->samples)
		return;
	pthread_mutex_destroy(&na->rate_mu);
	free(na->samples);
	free(na->nudges);
	na->samples = NULL;
	na->nudges = NULL;
}

void bw_node_admin_sample(struct bw_node_admin *na, uint64_t now_ms)
{
	uint32_t slot = na->sampled % BW_NODE_ADMIN_SAMPLES;
	pthread_mutex_lock(&na->rate_mu);
	for (uint32_t i = 0; i < bw_hub_tenants(na->hub); i++) {
		struct bw_tenant_totals t;
		bw_hub_totals(na->hub, i, &t);
		na->samples[(size_t)i * BW_NODE_ADMIN_SAMPLES + slot] =
		        (struct bw_node_admin_sample){
			        .at_ms = now_ms,
			        .v = { t.msgs_in, t.msgs_out, t.bytes_in, t.bytes_out, t.dropped },
		        };
	}
	na->sampled++;
	pthread_mutex_unlock(&na->rate_mu);
}

void bw_node_admin_rates(struct bw_node_admin *na, uint32_t i, struct bw_admin_tenant_stats *s)
{
	double r[R_KINDS] = { 0 };
	pthread_mutex_lock(&na->rate_mu);
	uint32_t n = na->sampled;
	if (na->samples && n >= 2 && i < bw_hub_tenants_max(na->hub)) {
		const struct bw_node_admin_sample *row =
		        &na->samples[(size_t)i * BW_NODE_ADMIN_SAMPLES];
		const struct bw_node_admin_sample *last = &row[(n - 1) % BW_NODE_ADMIN_SAMPLES];
		/* The oldest sample of the tenant (one met lately has fewer). */
		uint32_t back = n < BW_NODE_ADMIN_SAMPLES ? n - 1 : BW_NODE_ADMIN_SAMPLES - 1;
		const struct bw_node_admin_sample *first =
		        &row[(n - 1 - back) % BW_NODE_ADMIN_SAMPLES];
		while (back > 1 && !first->at_ms) {
			back--;
			first = &row[(n - 1 - back) % BW_NODE_ADMIN_SAMPLES];
		}
		if (first->at_ms && last->at_ms > first->at_ms) {
			double secs = (double)(last->at_ms - first->at_ms) / 1000.0;
			for (int k = 0; k < R_KINDS; k++) /* to a tenth: noise beyond */
				r[k] = round((double)(last->v[k] - first->v[k]) / secs * 10.0) /
				       10.0;
		}
	}
	pthread_mutex_unlock(&na->rate_mu);
	s->msgs_in_per_s = r[R_MSGS_IN];
	s->msgs_out_per_s = r[R_MSGS_OUT];
	s->bytes_in_per_s = r[R_BYTES_IN];
	s->bytes_out_per_s = r[R_BYTES_OUT];
	s->dropped_per_s = r[R_DROPPED];
}
