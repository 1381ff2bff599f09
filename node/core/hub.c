/*
 * The hub (see hub.h). The mail rings are Lamport single-producer
 * single-consumer queues: the producer owns `tail`, the consumer `head`,
 * each on its own cache line, each side caching the other's index so that
 * a busy queue costs one acquire load a wrap, not one a letter.
 */
#include "node/core/hub.h"

#include "node/core/msg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ring {
	_Alignas(64) _Atomic uint32_t head; /* consumer's */
	uint32_t tail_seen;                 /* consumer's cache of tail */
	_Alignas(64) _Atomic uint32_t tail; /* producer's */
	uint32_t head_seen;                 /* producer's cache of head */
	bool posted;                        /* producer: wrote since the last flush */
	_Alignas(64) uintptr_t slot[];
};

/* A sender's letters that found their ring full, oldest first. */
struct overflow {
	uintptr_t *v;
	size_t head, n, cap; /* a ring buffer over v[cap] */
};

/* One interest event in an inbox. */
struct interest {
	struct interest *next;
	uint32_t from, tenant, member;
	bool add;
	uint16_t len;
	uint8_t filter[];
};

struct inbox {
	_Alignas(64) atomic_bool pending;
	pthread_mutex_t mu;
	struct interest *head, **tailp;
};

struct tenant {
	char *name;
	pthread_mutex_t mu; /* guards retained */
	struct bw_retained *retained;
	struct bw_tenant_stats *stats; /* [n_workers] */
};

struct worker {
	_Atomic(void *) peer;
	struct overflow *over; /* [n_workers], indexed by receiver */
	size_t backlog;        /* sum of over[].n */
	uint32_t take_from;    /* the sender a take starts with, in turn */
	struct inbox inbox;
};

struct bw_hub {
	uint32_t n_workers, tenants_max, slots;
	_Atomic uint32_t n_tenants; /* ids below it are ready to read */
	void (*wake)(void *from_peer, void *to_peer);
	struct tenant *tenants;    /* [tenants_max] */
	_Atomic uint32_t *by_name; /* [by_name_mask + 1]: id + 1, 0 empty; open addressing */
	uint32_t by_name_mask;
	pthread_mutex_t tmu; /* serialises additions */
	struct bw_retained_limits retained;
	struct worker *workers;
	struct ring **rings; /* [from * n + to] */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	uint32_t attached, quiesced;
	uint64_t seed;
};

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static void release_retained(void *arg, void *msg)
{
	struct bw_msg *m = msg;
	(void)arg;
	bw_msg_unref(&m);
}

/* size bytes on a cache line of their own, or NULL. */
static void *line_alloc(size_t size)
{
	void *p;
	return posix_memalign(&p, 64, size) == 0 ? p : NULL;
}

static struct ring *ring_of(const struct bw_hub *h, uint32_t from, uint32_t to)
{
	return h->rings[(size_t)from * h->n_workers + to];
}

/* The name's slot in by_name: where it is, or the empty one it would take. */
static uint32_t name_slot(const struct bw_hub *h, const char *name, uint32_t *id)
{
	uint32_t mask = h->by_name_mask;
	uint32_t i = (uint32_t)hash_bytes(0xcbf29ce484222325ULL, name, strlen(name)) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t v = atomic_load_explicit(&h->by_name[i], memory_order_acquire);
		if (v == 0 || !strcmp(h->tenants[v - 1].name, name)) {
			*id = v;
			return i;
		}
	}
}

static int tenant_add_locked(struct bw_hub *h, const char *name)
{
	uint32_t v, slot = name_slot(h, name, &v);
	if (v)
		return (int)v - 1;
	uint32_t id = atomic_load_explicit(&h->n_tenants, memory_order_relaxed);
	if (id == h->tenants_max)
		return -ENOSPC;
	struct tenant *t = &h->tenants[id];
	t->name = strdup(name);
	t->retained = bw_retained_new(&h->retained, release_retained, NULL);
	t->stats = line_alloc(h->n_workers * sizeof(*t->stats));
	if (!t->name || !t->retained || !t->stats) {
		free(t->name);
		bw_retained_free(&t->retained);
		free(t->stats);
		memset(t, 0, sizeof(*t));
		return -ENOMEM;
	}
	memset(t->stats, 0, h->n_workers * sizeof(*t->stats));
	pthread_mutex_init(&t->mu, NULL);
	/* The record first, then the ways to find it. */
	atomic_store_explicit(&h->n_tenants, id + 1, memory_order_release);
	atomic_store_explicit(&h->by_name[slot], id + 1, memory_order_release);
	return (int)id;
}

struct bw_hub *bw_hub_new(const struct bw_hub_config *cfg)
{
	uint32_t slots = cfg->mail_slots ? cfg->mail_slots : 1024;
	uint32_t tmax = cfg->tenants_max ? cfg->tenants_max : BW_HUB_TENANTS_MAX;
	if (cfg->n_workers == 0 || cfg->n_workers > BW_HUB_WORKERS_MAX ||
	    tmax > BW_HUB_TENANTS_MAX || cfg->n_tenants > tmax || (slots & (slots - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct bw_hub *h = calloc(1, sizeof(*h));
	if (!h)
		goto nomem;
	h->n_workers = cfg->n_workers;
	h->slots = slots;
	h->wake = cfg->wake;
	h->seed = 0xcbf29ce484222325ULL;
	h->retained = cfg->retained;
	h->tenants_max = tmax;
	pthread_mutex_init(&h->qmu, NULL);
	pthread_cond_init(&h->qcv, NULL);
	pthread_mutex_init(&h->tmu, NULL);
	/* by_name: a power of two at least twice the tenants, so probes stay short. */
	uint32_t pow2 = 1;
	while (pow2 < tmax)
		pow2 <<= 1;
	h->tenants = calloc(tmax, sizeof(*h->tenants));
	h->by_name = calloc(2 * (size_t)pow2, sizeof(*h->by_name));
	h->workers = calloc(cfg->n_workers, sizeof(*h->workers));
	h->rings = calloc((size_t)cfg->n_workers * cfg->n_workers, sizeof(*h->rings));
	if (!h->tenants || !h->by_name || !h->workers || !h->rings)
		goto fail;
	h->by_name_mask = 2 * pow2 - 1;
	for (uint32_t i = 0; i < cfg->n_tenants; i++) {
		if (tenant_add_locked(h, cfg->tenant[i]) != (int)i) {
			bw_hub_free(&h, NULL, NULL);
			errno = EINVAL; /* a name given twice, or out of memory */
			return NULL;
		}
	}
	for (uint32_t i = 0; i < cfg->n_workers; i++) {
		struct worker *w = &h->workers[i];
		atomic_init(&w->peer, NULL);
		atomic_init(&w->inbox.pending, false);
		pthread_mutex_init(&w->inbox.mu, NULL);
		w->inbox.tailp = &w->inbox.head;
		w->over = calloc(cfg->n_workers, sizeof(*w->over));
		if (!w->over)
			goto fail;
		for (uint32_t j = 0; j < cfg->n_workers; j++) {
			if (i == j)
				continue;
			struct ring *r = line_alloc(sizeof(*r) + slots * sizeof(uintptr_t));
			if (!r)
				goto fail;
			memset(r, 0, sizeof(*r));
			atomic_init(&r->head, 0);
			atomic_init(&r->tail, 0);
			h->rings[(size_t)i * cfg->n_workers + j] = r;
		}
	}
	return h;
fail:
	bw_hub_free(&h, NULL, NULL);
nomem:
	errno = ENOMEM;
	return NULL;
}

static void drop_letter(void (*drop)(void *, uintptr_t), void *arg, uintptr_t l)
{
	if (drop) {
		drop(arg, l);
	} else if (bw_letter_tag(l) == BW_LETTER_MSG) {
		struct bw_msg *m = bw_letter_ptr(l);
		bw_msg_unref(&m);
	}
}

void bw_hub_free(struct bw_hub **hp, void (*drop)(void *arg, uintptr_t letter), void *arg)
{
	struct bw_hub *h = *hp;
	if (!h)
		return;
	*hp = NULL;
	for (uint32_t i = 0; h->workers && i < h->n_workers; i++) {
		struct worker *w = &h->workers[i];
		uintptr_t l;
		while (bw_hub_take(h, i, &l, 1) == 1)
			drop_letter(drop, arg, l);
		for (uint32_t j = 0; w->over && j < h->n_workers; j++) {
			struct overflow *o = &w->over[j];
			for (size_t k = 0; k < o->n; k++)
				drop_letter(drop, arg, o->v[(o->head + k) % o->cap]);
			free(o->v);
		}
		free(w->over);
		for (struct interest *e = w->inbox.head, *next; e; e = next) {
			next = e->next;
			free(e);
		}
		pthread_mutex_destroy(&w->inbox.mu);
	}
	for (size_t k = 0; h->rings && k < (size_t)h->n_workers * h->n_workers; k++)
		free(h->rings[k]);
	uint32_t n_tenants = atomic_load_explicit(&h->n_tenants, memory_order_acquire);
	for (uint32_t i = 0; h->tenants && i < n_tenants; i++) {
		struct tenant *t = &h->tenants[i];
		free(t->name);
		bw_retained_free(&t->retained);
		free(t->stats);
		pthread_mutex_destroy(&t->mu);
	}
	free(h->tenants);
	free(h->by_name);
	free(h->workers);
	free(h->rings);
	pthread_mutex_destroy(&h->qmu);
	pthread_cond_destroy(&h->qcv);
	pthread_mutex_destroy(&h->tmu);
	free(h);
}

uint32_t bw_hub_workers(const struct bw_hub *h)
{
	return h->n_workers;
}

uint32_t bw_hub_tenants(const struct bw_hub *h)
{
	return atomic_load_explicit(&((struct bw_hub *)h)->n_tenants, memory_order_acquire);
}

uint32_t bw_hub_tenants_max(const struct bw_hub *h)
{
	return h->tenants_max;
}

int bw_hub_tenant_find(const struct bw_hub *h, const char *name)
{
	uint32_t v;
	name_slot(h, name, &v);
	return (int)v - 1;
}

int bw_hub_tenant_add(struct bw_hub *h, const char *name)
{
	int id = bw_hub_tenant_find(h, name);
	if (id >= 0)
		return id;
	pthread_mutex_lock(&h->tmu);
	id = tenant_add_locked(h, name);
	pthread_mutex_unlock(&h->tmu);
	return id;
}

const char *bw_hub_tenant_name(const struct bw_hub *h, uint32_t tenant)
{
	return tenant < bw_hub_tenants(h) ? h->tenants[tenant].name : NULL;
}

void bw_hub_tenant_limits(struct bw_hub *h, uint32_t tenant, const struct bw_retained_limits *l)
{
	struct tenant *t = &h->tenants[tenant];
	pthread_mutex_lock(&t->mu);
	bw_retained_set_limits(t->retained, l);
	pthread_mutex_unlock(&t->mu);
}

uint32_t bw_hub_home(const struct bw_hub *h, uint32_t tenant, const void *id, size_t len)
{
	if (h->n_workers == 1)
		return 0;
	uint64_t x = hash_bytes(h->seed, &tenant, sizeof(tenant));
	x = hash_bytes(x, id, len);
	x ^= x >> 29; /* FNV's low bits are weak; fold the high ones in */
	return (uint32_t)(x % h->n_workers);
}

/* ---- workers coming and going -------------------------------------------- */

void bw_hub_attach(struct bw_hub *h, uint32_t i, void *peer)
{
	pthread_mutex_lock(&h->qmu);
	h->attached++;
	pthread_mutex_unlock(&h->qmu);
	/*
	 * Pairs with the fence in bw_hub_flush(): 1. a sender writes a letter,
	 * 2. fences, 3. reads peer. 1'. this stores peer, 2'. fences, 3'. the
	 * worker then takes mail. Either the sender sees the peer and wakes
	 * it, or the worker's first take sees the letter.
	 */
	atomic_store(&h->workers[i].peer, peer);
	atomic_thread_fence(memory_order_seq_cst);
}

void bw_hub_quiesce(struct bw_hub *h, uint32_t i)
{
	pthread_mutex_lock(&h->qmu);
	h->quiesced++;
	pthread_cond_broadcast(&h->qcv);
	while (h->quiesced < h->attached)
		pthread_cond_wait(&h->qcv, &h->qmu);
	pthread_mutex_unlock(&h->qmu);
	atomic_store(&h->workers[i].peer, NULL);
}

/* ---- mail ------------------------------------------------------------------ */

static bool ring_put(struct bw_hub *h, struct ring *r, uintptr_t l)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t - r->head_seen == h->slots) {
		r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
		if (t - r->head_seen == h->slots)
			return false;
	}
	r->slot[t & (h->slots - 1)] = l;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	r->posted = true;
	return true;
}

static int overflow_push(struct overflow *o, uintptr_t l)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uintptr_t *v = malloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t k = 0; k < o->n; k++)
			v[k] = o->v[(o->head + k) % o->cap];
		free(o->v);
		o->v = v;
		o->cap = cap;
		o->head = 0;
	}
	o->v[(o->head + o->n) % o->cap] = l;
	o->n++;
	return 0;
}

int bw_hub_post(struct bw_hub *h, uint32_t from, uint32_t to, uintptr_t letter)
{
	struct worker *w = &h->workers[from];
	struct overflow *o = &w->over[to];
	/* Behind an overflow, a letter waits its turn: order is kept a pair. */
	if (o->n == 0 && ring_put(h, ring_of(h, from, to), letter))
		return 0;
	if (overflow_push(o, letter))
		return -ENOMEM;
	w->backlog++;
	return 0;
}

size_t bw_hub_flush(struct bw_hub *h, uint32_t from)
{
	struct worker *w = &h->workers[from];
	bool any = false;

	for (uint32_t to = 0; to < h->n_workers; to++) {
		if (to == from)
			continue;
		struct ring *r = ring_of(h, from, to);
		struct overflow *o = &w->over[to];
		while (o->n && ring_put(h, r, o->v[o->head])) {
			o->head = (o->head + 1) % o->cap;
			o->n--;
			w->backlog--;
		}
		any |= r->posted;
	}
	if (!any || !h->wake)
		return w->backlog;
	atomic_thread_fence(memory_order_seq_cst); /* see bw_hub_attach() */
	void *self = atomic_load(&w->peer);
	for (uint32_t to = 0; to < h->n_workers; to++) {
		if (to == from)
			continue;
		struct ring *r = ring_of(h, from, to);
		if (!r->posted)
			continue;
		r->posted = false;
		void *peer = atomic_load(&h->workers[to].peer);
		if (peer && self)
			h->wake(self, peer);
	}
	return w->backlog;
}

size_t bw_hub_backlog(const struct bw_hub *h, uint32_t from)
{
	return h->workers[from].backlog;
}

uint32_t bw_hub_take(struct bw_hub *h, uint32_t to, uintptr_t *out, uint32_t max)
{
	uint32_t n = 0, first = h->workers[to].take_from;

	/* Each take starts with the next sender, so none waits behind a busy one. */
	h->workers[to].take_from = (first + 1) % h->n_workers;
	for (uint32_t k = 0; k < h->n_workers && n < max; k++) {
		uint32_t from = (first + k) % h->n_workers;
		if (from == to)
			continue;
		struct ring *r = ring_of(h, from, to);
		uint32_t hd = atomic_load_explicit(&r->head, memory_order_relaxed);
		if (hd == r->tail_seen) {
			r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (hd == r->tail_seen)
				continue;
		}
		while (hd != r->tail_seen && n < max)
			out[n++] = r->slot[hd++ & (h->slots - 1)];
		atomic_store_explicit(&r->head, hd, memory_order_release);
	}
	return n;
}

/* ---- interest ---------------------------------------------------------------- */

int bw_hub_interest_post(struct bw_hub *h, uint32_t from, uint32_t tenant, bool add,
                         uint32_t member, const uint8_t *filter, size_t len)
{
	uint32_t n = h->n_workers;
	struct interest **v;

	if (n == 1)
		return 0;
	if (len > UINT16_MAX || !(v = calloc(n, sizeof(*v))))
		return -ENOMEM;
	/* Everything first, so a failure tells nobody. */
	for (uint32_t to = 0; to < n; to++) {
		if (to == from)
			continue;
		if (!(v[to] = malloc(sizeof(struct interest) + len))) {
			for (uint32_t k = 0; k < to; k++)
				free(v[k]);
			free(v);
			return -ENOMEM;
		}
		*v[to] = (struct interest){ .from = from,
			                    .tenant = tenant,
			                    .member = member,
			                    .add = add,
			                    .len = (uint16_t)len };
		memcpy(v[to]->filter, filter, len);
	}
	for (uint32_t to = 0; to < n; to++) {
		if (to == from)
			continue;
		struct inbox *in = &h->workers[to].inbox;
		pthread_mutex_lock(&in->mu);
		*in->tailp = v[to];
		in->tailp = &v[to]->next;
		atomic_store_explicit(&in->pending, true, memory_order_release);
		pthread_mutex_unlock(&in->mu);
	}
	free(v);
	return 0;
}

void bw_hub_interest_take(struct bw_hub *h, uint32_t to, bw_hub_interest_fn fn, void *arg)
{
	struct inbox *in = &h->workers[to].inbox;

	if (!atomic_load_explicit(&in->pending, memory_order_acquire))
		return;
	pthread_mutex_lock(&in->mu);
	struct interest *e = in->head;
	in->head = NULL;
	in->tailp = &in->head;
	atomic_store_explicit(&in->pending, false, memory_order_relaxed);
	pthread_mutex_unlock(&in->mu);
	for (struct interest *next; e; e = next) {
		next = e->next;
		fn(arg, e->from, e->tenant, e->add, e->member, e->filter, e->len);
		free(e);
	}
}

/* ---- retained messages --------------------------------------------------------- */

/* Sets or clears (msg NULL) under t->mu: 0 or -errno. */
static int retained_put_locked(struct tenant *t, const uint8_t *topic, size_t len,
                               struct bw_msg *msg)
{
	if (!msg) {
		bw_retained_clear(t->retained, topic, len);
		return 0;
	}
	size_t size = msg->topic.len + msg->props.len + msg->payload.len;
	int rc = bw_retained_set(t->retained, topic, len, bw_msg_ref(msg), size);
	if (rc < 0) {
		struct bw_msg *mine = msg;
		bw_msg_unref(&mine); /* the reference the index did not take */
	}
	return rc < 0 ? rc : 0;
}

int bw_hub_retained_put(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                        struct bw_msg *msg)
{
	struct tenant *t = &h->tenants[tenant];

	pthread_mutex_lock(&t->mu);
	int rc = retained_put_locked(t, topic, len, msg);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int bw_hub_retained_cas(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                        const struct bw_msg *expect, struct bw_msg *msg)
{
	struct tenant *t = &h->tenants[tenant];
	int rc = 1;

	pthread_mutex_lock(&t->mu);
	if (bw_retained_get(t->retained, topic, len) == expect)
		rc = retained_put_locked(t, topic, len, msg);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int bw_hub_retained_purge(struct bw_hub *h, uint32_t tenant)
{
	struct tenant *t = &h->tenants[tenant];
	pthread_mutex_lock(&t->mu);
	int rc = bw_retained_clear_all(t->retained);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

struct collect {
	struct bw_msg ***v;
	size_t *n, *cap;
	int count;
};

static int collect_one(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct collect *c = arg;
	(void)topic;
	(void)len;
	if (*c->n == *c->cap) {
		size_t cap = *c->cap ? *c->cap * 2 : 16;
		struct bw_msg **v = realloc(*c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		*c->v = v;
		*c->cap = cap;
	}
	(*c->v)[(*c->n)++] = bw_msg_ref(msg);
	c->count++;
	return 0;
}

int bw_hub_retained_get(struct bw_hub *h, uint32_t tenant, const uint8_t *filter, size_t len,
                        struct bw_msg ***v, size_t *n, size_t *cap)
{
	struct tenant *t = &h->tenants[tenant];
	struct collect c = { v, n, cap, 0 };

	pthread_mutex_lock(&t->mu);
	int rc = bw_retained_match(t->retained, filter, len, collect_one, &c);
	pthread_mutex_unlock(&t->mu);
	return rc == -ENOMEM ? rc : c.count;
}

bool bw_hub_retained_fits(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                          size_t size)
{
	struct tenant *t = &h->tenants[tenant];
	pthread_mutex_lock(&t->mu);
	bool fits = bw_retained_fits(t->retained, topic, len, size);
	pthread_mutex_unlock(&t->mu);
	return fits;
}

int bw_hub_retained_each(struct bw_hub *h, uint32_t tenant, bw_retained_visit_fn visit, void *arg)
{
	struct tenant *t = &h->tenants[tenant];

	pthread_mutex_lock(&t->mu);
	int rc = bw_retained_each(t->retained, visit, arg);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* ---- counters -------------------------------------------------------------------- */

struct bw_tenant_stats *bw_hub_stats(struct bw_hub *h, uint32_t tenant, uint32_t worker)
{
	return &h->tenants[tenant].stats[worker];
}

void bw_hub_totals(struct bw_hub *h, uint32_t tenant, struct bw_tenant_totals *tt)
{
	struct tenant *t = &h->tenants[tenant];
	struct bw_retained_stats rs;

	memset(tt, 0, sizeof(*tt));
	for (uint32_t i = 0; i < h->n_workers; i++) {
		struct bw_tenant_stats *s = &t->stats[i];
		tt->connected += atomic_load_explicit(&s->connected, memory_order_relaxed);
		tt->sessions += atomic_load_explicit(&s->sessions, memory_order_relaxed);
		tt->subscriptions += atomic_load_explicit(&s->subscriptions, memory_order_relaxed);
		tt->msgs_in += atomic_load_explicit(&s->msgs_in, memory_order_relaxed);
		tt->msgs_out += atomic_load_explicit(&s->msgs_out, memory_order_relaxed);
		tt->dropped += atomic_load_explicit(&s->dropped, memory_order_relaxed);
		tt->auth_failures += atomic_load_explicit(&s->auth_failures, memory_order_relaxed);
		tt->denied += atomic_load_explicit(&s->denied, memory_order_relaxed);
		tt->auth_backoffs += atomic_load_explicit(&s->auth_backoffs, memory_order_relaxed);
		tt->bytes_in += atomic_load_explicit(&s->bytes_in, memory_order_relaxed);
		tt->bytes_out += atomic_load_explicit(&s->bytes_out, memory_order_relaxed);
		tt->quota_hits += atomic_load_explicit(&s->quota_hits, memory_order_relaxed);
		tt->persistent += atomic_load_explicit(&s->persistent, memory_order_relaxed);
	}
	pthread_mutex_lock(&t->mu);
	bw_retained_stats(t->retained, &rs);
	pthread_mutex_unlock(&t->mu);
	tt->retained = rs.count;
	tt->retained_bytes = rs.bytes;
}
