/*
 * The subscription index (see sub_index.h). Trie nodes are found through
 * one chained hash table of edges keyed by (parent node, level bytes), so a
 * node costs no per-node table and an exact level costs one lookup; '+' and
 * '#' children are also reachable through dedicated pointers. Subscriptions
 * (entries) sit on two lists at once: their trie node's (or share group's)
 * and their subscriber's. A subscriber record, found through a second hash
 * table keyed by the caller's pointer, holds the match generation stamp
 * that dedupes deliveries. The hash is seeded per index, and every table
 * holds at most what the limits allow, so crafted levels cannot grow
 * chains without bound.
 */
#include "node/core/sub_index.h"
#include "node/core/htab.h"

#include "proto/mqtt/topic.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SUB_ID_MAX   268435455u
#define SHARE_PREFIX "$share/"
#define NO_SLOT      UINT32_MAX

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

static uint64_t ptr_hash(uint64_t seed, const void *p)
{
	return mix64((uint64_t)(uintptr_t)p ^ seed);
}

struct node;
struct group;

struct subscriber {
	struct hnode hn; /* in idx->subscribers, keyed by key */
	void *key;
	struct entry *entries; /* via sub_prev/sub_next */
	uint32_t n;
	uint32_t slot;  /* delivery index in the match of generation stamp */
	uint64_t stamp; /* the last match generation that saw this subscriber */
};

/*
 * One subscription: (filter, subscriber) with its options. There is one a
 * subscriber and filter, so it is kept to 56 bytes (a 64-byte malloc
 * chunk): where it sits is one word, its trie node (a plain subscription)
 * or its share group (bit 0 set), whose node is the group's.
 */
struct entry {
	struct entry *prev, *next;         /* in node->subs or group->members */
	struct entry *sub_prev, *sub_next; /* in subscriber->entries */
	struct subscriber *sub;
	uintptr_t at; /* see entry_node(), entry_group() */
	struct bw_sub_opts opts;
};

struct group {
	struct group *next; /* in node->groups */
	struct node *node;
	struct entry *members;
	struct entry *rr; /* the member the next publish goes to; NULL: the first */
	uint32_t n_members;
	uint32_t name_len;
	uint8_t name[];
};

struct node {
	struct hnode hn; /* in idx->edges, keyed by (parent, level); not the root */
	struct node *parent;
	struct node *plus, *hash; /* also in idx->edges, as "+" and "#" */
	struct entry *subs;       /* plain subscriptions */
	struct group *groups;
	uint32_t n_subs;
	uint32_t n_children;
	uint16_t level_len; /* a topic is at most 65535 bytes */
	uint8_t level[];
};

/* The share group of e, or NULL for a plain subscription. */
static struct group *entry_group(const struct entry *e)
{
	return e->at & 1 ? (struct group *)(e->at - 1) : NULL;
}

/* The trie node of e's filter. */
static struct node *entry_node(const struct entry *e)
{
	struct group *g = entry_group(e);
	return g ? g->node : (struct node *)e->at;
}

/* Places e on node n, or in share group g (of n) when g is not NULL. */
static void entry_place(struct entry *e, struct node *n, struct group *g)
{
	e->at = g ? (uintptr_t)g | 1 : (uintptr_t)n;
}

struct bw_sub_index {
	struct bw_sub_index_limits lim;
	struct bw_sub_index_stats st;
	uint64_t seed;
	uint64_t gen; /* match generation */
	struct htab edges;
	struct htab subscribers;
	struct node *root;
	uint8_t *scratch; /* remove_all's filter strings: the longest filter added */
	size_t scratch_cap;
};

/* The two entry lists: doubly linked, NULL-terminated, with a head pointer. */
static void list_add(struct entry **head, struct entry *e)
{
	e->prev = NULL;
	e->next = *head;
	if (*head)
		(*head)->prev = e;
	*head = e;
}

static void list_del(struct entry **head, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		*head = e->next;
	if (e->next)
		e->next->prev = e->prev;
}

static void sublist_add(struct subscriber *s, struct entry *e)
{
	e->sub_prev = NULL;
	e->sub_next = s->entries;
	if (s->entries)
		s->entries->sub_prev = e;
	s->entries = e;
	s->n++;
}

static void sublist_del(struct subscriber *s, struct entry *e)
{
	if (e->sub_prev)
		e->sub_prev->sub_next = e->sub_next;
	else
		s->entries = e->sub_next;
	if (e->sub_next)
		e->sub_next->sub_prev = e->sub_prev;
	s->n--;
}

static struct subscriber *subscriber_find(const struct bw_sub_index *idx, const void *key)
{
	uint64_t h = ptr_hash(idx->seed, key);

	for (struct hnode *p = idx->subscribers.b[h & idx->subscribers.mask]; p; p = p->next) {
		struct subscriber *s = container_of(p, struct subscriber, hn);
		if (p->hash == h && s->key == key)
			return s;
	}
	return NULL;
}

static struct subscriber *subscriber_new(struct bw_sub_index *idx, void *key)
{
	struct subscriber *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->key = key;
	s->slot = NO_SLOT;
	s->hn.hash = ptr_hash(idx->seed, key);
	htab_insert(&idx->subscribers, &s->hn);
	idx->st.subscribers++;
	return s;
}

static void subscriber_free(struct bw_sub_index *idx, struct subscriber *s)
{
	htab_remove(&idx->subscribers, &s->hn);
	idx->st.subscribers--;
	free(s);
}

static struct node *child_find(const struct bw_sub_index *idx, const struct node *parent,
                               const uint8_t *level, size_t len)
{
	uint64_t h = edge_hash(idx->seed, parent, level, len);

	for (struct hnode *p = idx->edges.b[h & idx->edges.mask]; p; p = p->next) {
		struct node *n = container_of(p, struct node, hn);
		if (p->hash == h && n->parent == parent && n->level_len == len &&
		    memcmp(n->level, level, len) == 0)
			return n;
	}
	return NULL;
}

static struct node *node_new(size_t level_len)
{
	/*
	 * The level starts inside the struct's tail padding: sized by offset,
	 * a level of up to 6 bytes costs an 80-byte malloc chunk, not 96.
	 */
	size_t size = offsetof(struct node, level) + level_len;
	struct node *n = calloc(1, size > sizeof(*n) ? size : sizeof(*n));
	if (n)
		n->level_len = (uint16_t)level_len;
	return n;
}

static struct node *child_get(struct bw_sub_index *idx, struct node *parent, const uint8_t *level,
                              size_t len)
{
	struct node *n = child_find(idx, parent, level, len);

	if (n)
		return n;
	n = node_new(len);
	if (!n)
		return NULL;
	memcpy(n->level, level, len);
	n->parent = parent;
	n->hn.hash = edge_hash(idx->seed, parent, level, len);
	htab_insert(&idx->edges, &n->hn);
	if (len == 1 && level[0] == '+')
		parent->plus = n;
	else if (len == 1 && level[0] == '#')
		parent->hash = n;
	parent->n_children++;
	idx->st.nodes++;
	return n;
}

/* Frees n and then its ancestors for as long as they hold nothing. */
static void node_prune(struct bw_sub_index *idx, struct node *n)
{
	while (n != idx->root && n->n_subs == 0 && !n->groups && n->n_children == 0) {
		struct node *parent = n->parent;
		htab_remove(&idx->edges, &n->hn);
		if (parent->plus == n)
			parent->plus = NULL;
		if (parent->hash == n)
			parent->hash = NULL;
		parent->n_children--;
		idx->st.nodes--;
		free(n);
		n = parent;
	}
}

/* The node of a plain filter, or NULL when it has none. */
static struct node *path_find(const struct bw_sub_index *idx, const uint8_t *f, size_t len)
{
	struct node *n = idx->root;

	for (size_t s = 0; s <= len && n;) {
		size_t e = bw_topic_level_end(f, len, s);
		n = child_find(idx, n, f + s, e - s);
		s = e + 1;
	}
	return n;
}

/* The node of a plain filter, created as needed; NULL when out of memory. */
static struct node *path_get(struct bw_sub_index *idx, const uint8_t *f, size_t len)
{
	struct node *n = idx->root;

	for (size_t s = 0; s <= len;) {
		size_t e = bw_topic_level_end(f, len, s);
		struct node *c = child_get(idx, n, f + s, e - s);
		if (!c) {
			node_prune(idx, n);
			return NULL;
		}
		n = c;
		s = e + 1;
	}
	return n;
}

static struct group *group_find(const struct node *n, const uint8_t *name, size_t len)
{
	for (struct group *g = n->groups; g; g = g->next) {
		if (g->name_len == len && memcmp(g->name, name, len) == 0)
			return g;
	}
	return NULL;
}

/* The subscription (n, g, s), walking whichever list is shorter. */
static struct entry *entry_find(struct subscriber *s, struct node *n, struct group *g)
{
	uint32_t other = g ? g->n_members : n->n_subs;

	if (s->n <= other) {
		for (struct entry *e = s->entries; e; e = e->sub_next) {
			if (entry_node(e) == n && entry_group(e) == g)
				return e;
		}
		return NULL;
	}
	for (struct entry *e = g ? g->members : n->subs; e; e = e->next) {
		if (e->sub == s)
			return e;
	}
	return NULL;
}

struct bw_sub_index *bw_sub_index_new(const struct bw_sub_index_limits *limits)
{
	struct bw_sub_index *idx = calloc(1, sizeof(*idx));

	if (!idx)
		return NULL;
	idx->lim = *limits;
	if (getrandom(&idx->seed, sizeof(idx->seed), GRND_NONBLOCK) != sizeof(idx->seed))
		idx->seed = mix64((uint64_t)(uintptr_t)idx ^ 0x9e3779b97f4a7c15ULL);
	idx->root = node_new(0);
	if (!idx->root || htab_init(&idx->edges, 16) < 0 || htab_init(&idx->subscribers, 16) < 0) {
		bw_sub_index_free(&idx);
		return NULL;
	}
	idx->st.nodes = 1;
	return idx;
}

static void groups_free(struct node *n)
{
	struct group *g, *next;

	for (g = n->groups; g; g = next) {
		next = g->next;
		free(g);
	}
}

void bw_sub_index_free(struct bw_sub_index **pidx)
{
	struct bw_sub_index *idx = *pidx;

	if (!idx)
		return;
	*pidx = NULL;
	for (size_t i = 0; idx->subscribers.b && i <= idx->subscribers.mask; i++) {
		struct hnode *p, *pnext;
		for (p = idx->subscribers.b[i]; p; p = pnext) {
			struct subscriber *s = container_of(p, struct subscriber, hn);
			struct entry *e, *enext;
			pnext = p->next;
			for (e = s->entries; e; e = enext) {
				enext = e->sub_next;
				free(e);
			}
			free(s);
		}
	}
	for (size_t i = 0; idx->edges.b && i <= idx->edges.mask; i++) {
		struct hnode *p, *pnext;
		for (p = idx->edges.b[i]; p; p = pnext) {
			struct node *n = container_of(p, struct node, hn);
			pnext = p->next;
			groups_free(n);
			free(n);
		}
	}
	if (idx->root) {
		groups_free(idx->root);
		free(idx->root);
	}
	htab_fini(&idx->edges);
	htab_fini(&idx->subscribers);
	free(idx->scratch);
	free(idx);
}

static bool opts_valid(const struct bw_sub_opts *o)
{
	return o->qos <= 2 && o->retain_handling <= 2 && o->sub_id <= SUB_ID_MAX;
}

/* Splits filter into its plain part and, when shared, the group name. */
static bool filter_parse(const uint8_t *filter, size_t len, const uint8_t **f, size_t *flen,
                         struct bw_topic_share *sh)
{
	bool shared = bw_topic_share_split(filter, len, sh);

	*f = shared ? sh->filter : filter;
	*flen = shared ? sh->filter_len : len;
	return shared;
}

int bw_sub_index_add(struct bw_sub_index *idx, const uint8_t *filter, size_t len, void *subscriber,
                     const struct bw_sub_opts *opts, bool *filter_new)
{
	struct bw_topic_share sh;
	const uint8_t *f;
	size_t flen;

	if (filter_new)
		*filter_new = false;
	if (!opts_valid(opts) || len > UINT16_MAX || bw_topic_filter_check(filter, len) != 0)
		return -EINVAL;
	bool shared = filter_parse(filter, len, &f, &flen, &sh);
	if (shared && opts->no_local)
		return -EINVAL;
	if (bw_topic_levels(f, flen) > idx->lim.levels_max)
		return -E2BIG;

	/* Look everything up first, so the limits are judged before any change. */
	struct node *n = path_find(idx, f, flen);
	struct group *g = n && shared ? group_find(n, sh.group, sh.group_len) : NULL;
	struct subscriber *s = subscriber_find(idx, subscriber);
	if (s && n && (!shared || g)) {
		struct entry *e = entry_find(s, n, g);
		if (e) {
			e->opts = *opts;
			return 1;
		}
	}
	bool is_new = shared ? !g : !n || n->n_subs == 0;
	if (idx->st.subs >= idx->lim.subs_max ||
	    (is_new && idx->st.filters >= idx->lim.filters_max))
		return -ENOSPC;
	if (len > idx->scratch_cap) {
		uint8_t *p = realloc(idx->scratch, len);
		if (!p)
			return -ENOMEM;
		idx->scratch = p;
		idx->scratch_cap = len;
	}

	struct entry *e = calloc(1, sizeof(*e));
	bool s_new = !s;
	if (!e)
		return -ENOMEM;
	if (s_new && !(s = subscriber_new(idx, subscriber)))
		goto undo_entry;
	if (!n && !(n = path_get(idx, f, flen)))
		goto undo_subscriber;
	if (shared && !g) {
		g = calloc(1, sizeof(*g) + sh.group_len);
		if (!g)
			goto undo_path;
		memcpy(g->name, sh.group, sh.group_len);
		g->name_len = (uint32_t)sh.group_len;
		g->node = n;
		g->next = n->groups;
		n->groups = g;
		idx->st.groups++;
	}
	e->sub = s;
	entry_place(e, n, g);
	e->opts = *opts;
	if (g) {
		list_add(&g->members, e);
		g->n_members++;
	} else {
		list_add(&n->subs, e);
		n->n_subs++;
	}
	sublist_add(s, e);
	idx->st.subs++;
	if (is_new)
		idx->st.filters++;
	if (filter_new)
		*filter_new = is_new;
	return 0;

undo_path:
	node_prune(idx, n);
undo_subscriber:
	if (s_new)
		subscriber_free(idx, s);
undo_entry:
	free(e);
	return -ENOMEM;
}

/* Unlinks and frees e; frees what it leaves empty. True when its filter is gone. */
static bool entry_remove(struct bw_sub_index *idx, struct entry *e)
{
	struct node *n = entry_node(e);
	struct group *g = entry_group(e);
	struct subscriber *s = e->sub;
	bool gone;

	if (g) {
		if (g->rr == e)
			g->rr = e->next;
		list_del(&g->members, e);
		gone = --g->n_members == 0;
		if (gone) {
			struct group **p = &n->groups;
			while (*p != g)
				p = &(*p)->next;
			*p = g->next;
			free(g);
			idx->st.groups--;
		}
	} else {
		list_del(&n->subs, e);
		gone = --n->n_subs == 0;
	}
	sublist_del(s, e);
	if (s->n == 0)
		subscriber_free(idx, s);
	free(e);
	idx->st.subs--;
	if (gone) {
		idx->st.filters--;
		node_prune(idx, n);
	}
	return gone;
}

int bw_sub_index_remove(struct bw_sub_index *idx, const uint8_t *filter, size_t len,
                        void *subscriber, bool *filter_gone)
{
	struct bw_topic_share sh;
	const uint8_t *f;
	size_t flen;

	if (filter_gone)
		*filter_gone = false;
	if (bw_topic_filter_check(filter, len) != 0)
		return -ENOENT;
	bool shared = filter_parse(filter, len, &f, &flen, &sh);
	struct node *n = path_find(idx, f, flen);
	struct group *g = n && shared ? group_find(n, sh.group, sh.group_len) : NULL;
	struct subscriber *s = subscriber_find(idx, subscriber);
	if (!n || !s || (shared && !g))
		return -ENOENT;
	struct entry *e = entry_find(s, n, g);
	if (!e)
		return -ENOENT;
	bool gone = entry_remove(idx, e);
	if (filter_gone)
		*filter_gone = gone;
	return 0;
}

/*
 * Writes the full filter of (n, g) into idx->scratch and returns its
 * length. It was added once, so it fits: scratch holds the longest filter.
 */
static size_t filter_string(struct bw_sub_index *idx, const struct node *n, const struct group *g)
{
	size_t len = 0, pos;

	for (const struct node *p = n; p != idx->root; p = p->parent)
		len += p->level_len + (p->parent != idx->root);
	if (g)
		len += strlen(SHARE_PREFIX) + g->name_len + 1;
	pos = len;
	for (const struct node *p = n; p != idx->root; p = p->parent) {
		pos -= p->level_len;
		memcpy(idx->scratch + pos, p->level, p->level_len);
		if (p->parent != idx->root)
			idx->scratch[--pos] = '/';
	}
	if (g) {
		idx->scratch[--pos] = '/';
		pos -= g->name_len;
		memcpy(idx->scratch + pos, g->name, g->name_len);
		memcpy(idx->scratch, SHARE_PREFIX, strlen(SHARE_PREFIX));
	}
	return len;
}

uint32_t bw_sub_index_remove_all(struct bw_sub_index *idx, void *subscriber, bw_sub_gone_fn gone,
                                 void *arg)
{
	struct subscriber *s = subscriber_find(idx, subscriber);
	uint32_t removed = 0;
	bool last = !s;

	while (!last) {
		struct entry *e = s->entries;
		struct group *g = entry_group(e);
		uint32_t left = (g ? g->n_members : entry_node(e)->n_subs) - 1;
		bool tell = gone && (left == 0 || g);
		size_t flen = tell ? filter_string(idx, entry_node(e), g) : 0;

		last = s->n == 1; /* entry_remove frees s with its last entry */
		entry_remove(idx, e);
		removed++;
		if (tell)
			gone(arg, idx->scratch, flen, left);
	}
	return removed;
}

int bw_sub_index_each(struct bw_sub_index *idx, void *subscriber, bw_sub_each_fn fn, void *arg)
{
	struct subscriber *s = subscriber_find(idx, subscriber);
	int rc;

	for (struct entry *e = s ? s->entries : NULL; e; e = e->sub_next) {
		size_t len = filter_string(idx, entry_node(e), entry_group(e));
		if ((rc = fn(arg, idx->scratch, len, &e->opts)) != 0)
			return rc;
	}
	return 0;
}

uint32_t bw_sub_index_count(struct bw_sub_index *idx, const uint8_t *filter, size_t len)
{
	struct bw_topic_share sh;
	const uint8_t *f;
	size_t flen;

	if (bw_topic_filter_check(filter, len) != 0)
		return 0;
	bool shared = filter_parse(filter, len, &f, &flen, &sh);
	struct node *n = path_find(idx, f, flen);
	if (!n)
		return 0;
	if (!shared)
		return n->n_subs;
	struct group *g = group_find(n, sh.group, sh.group_len);
	return g ? g->n_members : 0;
}

void bw_sub_index_stats(const struct bw_sub_index *idx, struct bw_sub_index_stats *st)
{
	*st = idx->st;
}

void bw_match_init(struct bw_match *m, uint32_t max)
{
	memset(m, 0, sizeof(*m));
	m->max = max > INT_MAX ? INT_MAX : max;
}

void bw_match_fini(struct bw_match *m)
{
	free(m->v);
	free(m->sub_ids);
	bw_match_init(m, m->max);
}

/* State of one bw_sub_index_match(). */
struct walk {
	struct bw_sub_index *idx;
	const uint8_t *topic;
	size_t len;
	const void *publisher;
	struct bw_match *m;
	int err;
};

/* A fresh delivery slot, or NULL when capped (counted) or out of memory. */
static struct bw_match_delivery *delivery_new(struct walk *w, struct entry *e)
{
	struct bw_match *m = w->m;

	if (m->n >= m->max) {
		m->dropped++;
		return NULL;
	}
	if (m->n == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 16;
		if (cap > m->max || cap < m->cap)
			cap = m->max;
		struct bw_match_delivery *v = realloc(m->v, (size_t)cap * sizeof(*v));
		if (!v) {
			w->err = -ENOMEM;
			return NULL;
		}
		m->v = v;
		m->cap = cap;
	}
	struct bw_match_delivery *d = &m->v[m->n++];
	d->subscriber = e->sub->key;
	d->qos = e->opts.qos;
	d->retain_as_published = e->opts.retain_as_published;
	d->group = entry_group(e);
	d->shared = d->group != NULL;
	d->n_sub_ids = 0;
	d->sub_ids_at = 0;
	return d;
}

/* Adds a subscription identifier to d, once. */
static void sub_id_add(struct walk *w, struct bw_match_delivery *d, uint32_t id)
{
	struct bw_match *m = w->m;

	if (id == 0)
		return;
	if (d->n_sub_ids == 0) {
		/* The delivery's first id reserves its block of slots. */
		if (m->ids_used + BW_MATCH_SUB_IDS > m->ids_cap) {
			size_t cap = m->ids_cap ? (size_t)m->ids_cap * 2 : 16 * BW_MATCH_SUB_IDS;
			uint32_t *p =
			        cap <= UINT32_MAX ? realloc(m->sub_ids, cap * sizeof(*p)) : NULL;
			if (!p) {
				w->err = -ENOMEM;
				return;
			}
			m->sub_ids = p;
			m->ids_cap = (uint32_t)cap;
		}
		d->sub_ids_at = m->ids_used;
		m->ids_used += BW_MATCH_SUB_IDS;
	}
	uint32_t *ids = m->sub_ids + d->sub_ids_at;
	for (uint8_t i = 0; i < d->n_sub_ids; i++) {
		if (ids[i] == id)
			return;
	}
	if (d->n_sub_ids == BW_MATCH_SUB_IDS) {
		m->sub_ids_dropped++;
		return;
	}
	ids[d->n_sub_ids++] = id;
}

/* A plain subscription matched: merge into its subscriber's delivery. */
static void deliver_plain(struct walk *w, struct entry *e)
{
	struct subscriber *s = e->sub;
	struct bw_match_delivery *d;

	if (s->stamp == w->idx->gen) {
		if (s->slot == NO_SLOT)
			return; /* capped */
		d = &w->m->v[s->slot];
		if (e->opts.qos > d->qos)
			d->qos = e->opts.qos;
		d->retain_as_published |= e->opts.retain_as_published;
	} else {
		s->stamp = w->idx->gen;
		d = delivery_new(w, e);
		s->slot = d ? (uint32_t)(d - w->m->v) : NO_SLOT;
		if (!d)
			return;
	}
	sub_id_add(w, d, e->opts.sub_id);
}

/* The next member of g gets a delivery. */
static void pick(struct walk *w, struct group *g)
{
	struct entry *e = g->rr ? g->rr : g->members;
	struct bw_match_delivery *d;

	g->rr = e->next;
	d = delivery_new(w, e);
	if (d)
		sub_id_add(w, d, e->opts.sub_id);
}

/* Every subscription of n matches: plain ones and one member a group. */
static void collect(struct walk *w, struct node *n)
{
	for (struct entry *e = n->subs; e && !w->err; e = e->next) {
		if (e->opts.no_local && e->sub->key == w->publisher)
			continue;
		deliver_plain(w, e);
	}
	if (w->m->plain_only)
		return;
	for (struct group *g = n->groups; g && !w->err; g = g->next)
		pick(w, g);
}

/*
 * n matches the levels before topic[s]; s > len when all are consumed.
 * Recursion depth is bounded by the trie's, that is by levels_max.
 */
static void walk_node(struct walk *w, struct node *n, size_t s, bool root_dollar)
{
	if (s > w->len) {
		collect(w, n);
		if (n->hash)
			collect(w, n->hash); /* "a/#" matches "a" */
		return;
	}
	if (n->n_children == 0)
		return;
	if (n->hash && !root_dollar)
		collect(w, n->hash);
	size_t e = bw_topic_level_end(w->topic, w->len, s);
	const uint8_t *lvl = w->topic + s;
	size_t ll = e - s;
	/* A name never holds '+' or '#'; do not let a bad one reach those nodes twice. */
	if (!(ll == 1 && (lvl[0] == '+' || lvl[0] == '#'))) {
		struct node *c = child_find(w->idx, n, lvl, ll);
		if (c && !w->err)
			walk_node(w, c, e + 1, false);
	}
	if (n->plus && !root_dollar && !w->err)
		walk_node(w, n->plus, e + 1, false);
}

static void match_reset(struct bw_match *out)
{
	out->n = 0;
	out->ids_used = 0;
	out->dropped = 0;
	out->sub_ids_dropped = 0;
}

int bw_sub_index_pick(struct bw_sub_index *idx, const uint8_t *filter, size_t len,
                      struct bw_match *out)
{
	struct walk w = { idx, filter, len, NULL, out, 0 };
	struct bw_topic_share sh;
	const uint8_t *f;
	size_t flen;

	match_reset(out);
	if (bw_topic_filter_check(filter, len) != 0 || !filter_parse(filter, len, &f, &flen, &sh))
		return 0;
	struct node *n = path_find(idx, f, flen);
	struct group *g = n ? group_find(n, sh.group, sh.group_len) : NULL;
	if (!g)
		return 0;
	pick(&w, g);
	return w.err ? w.err : (int)out->n;
}

const uint8_t *bw_sub_index_group_filter(struct bw_sub_index *idx, const void *group, size_t *len)
{
	const struct group *g = group;

	*len = filter_string(idx, g->node, g);
	return idx->scratch;
}

int bw_sub_index_match(struct bw_sub_index *idx, const uint8_t *topic, size_t len,
                       const void *publisher, struct bw_match *out)
{
	struct walk w = { idx, topic, len, publisher, out, 0 };

	match_reset(out);
	if (len == 0)
		return 0;
	idx->gen++;
	walk_node(&w, idx->root, 0, topic[0] == '$');
	return w.err ? w.err : (int)out->n;
}
