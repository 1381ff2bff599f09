/*
 * Retained messages (see retained.h). The trie finds exact children through
 * one chained hash table of edges keyed by (parent node, level bytes),
 * seeded per index; each node also links its children in a list, which '+'
 * and '#' walk. Topic strings are not stored: a walk rebuilds each visited
 * topic in one path buffer as long as the longest topic retained. The hash
 * table is htab.h, shared with sub_index.c.
 */
#include "node/core/retained.h"
#include "node/core/htab.h"

#include "proto/mqtt/topic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

struct rnode {
	struct hnode hn; /* in r->edges, keyed by (parent, level); not the root */
	struct rnode *parent;
	struct rnode *first, *prev_sib, *next_sib; /* children */
	void *msg;                                 /* NULL: no message here */
	size_t size;
	uint32_t n_children;
	uint32_t level_len;
	uint8_t level[];
};

struct bw_retained {
	struct bw_retained_limits lim;
	struct bw_retained_stats st;
	bw_retained_release_fn release;
	void *release_arg;
	uint64_t seed;
	struct htab edges;
	struct rnode *root;
	uint8_t *path; /* a walk's current topic; as long as the longest retained */
	size_t path_cap;
};

struct bw_retained *bw_retained_new(const struct bw_retained_limits *limits,
                                    bw_retained_release_fn release, void *release_arg)
{
	struct bw_retained *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->lim = *limits;
	r->release = release;
	r->release_arg = release_arg;
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) != sizeof(r->seed))
		r->seed = mix64((uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL);
	r->root = calloc(1, sizeof(*r->root));
	if (!r->root || htab_init(&r->edges, 16) < 0) {
		bw_retained_free(&r);
		return NULL;
	}
	r->st.nodes = 1;
	return r;
}

void bw_retained_free(struct bw_retained **pr)
{
	struct bw_retained *r = *pr;

	if (!r)
		return;
	*pr = NULL;
	for (size_t i = 0; r->edges.b && i <= r->edges.mask; i++) {
		struct hnode *p, *next;
		for (p = r->edges.b[i]; p; p = next) {
			struct rnode *n = container_of(p, struct rnode, hn);
			next = p->next;
			if (n->msg)
				r->release(r->release_arg, n->msg);
			free(n);
		}
	}
	free(r->root);
	htab_fini(&r->edges);
	free(r->path);
	free(r);
}

int bw_retained_clear_all(struct bw_retained *r)
{
	struct bw_retained *fresh = bw_retained_new(&r->lim, r->release, r->release_arg);
	if (!fresh)
		return -ENOMEM;
	struct bw_retained old = *r;
	*r = *fresh;
	*fresh = old;
	bw_retained_free(&fresh); /* the old contents */
	return 0;
}

static struct rnode *child_find(const struct bw_retained *r, const struct rnode *parent,
                                const uint8_t *level, size_t len)
{
	uint64_t h = edge_hash(r->seed, parent, level, len);

	for (struct hnode *p = r->edges.b[h & r->edges.mask]; p; p = p->next) {
		struct rnode *n = container_of(p, struct rnode, hn);
		if (p->hash == h && n->parent == parent && n->level_len == len &&
		    memcmp(n->level, level, len) == 0)
			return n;
	}
	return NULL;
}

static struct rnode *child_get(struct bw_retained *r, struct rnode *parent, const uint8_t *level,
                               size_t len)
{
	struct rnode *n = child_find(r, parent, level, len);

	if (n)
		return n;
	n = calloc(1, sizeof(*n) + len);
	if (!n)
		return NULL;
	memcpy(n->level, level, len);
	n->level_len = (uint32_t)len;
	n->parent = parent;
	n->hn.hash = edge_hash(r->seed, parent, level, len);
	htab_insert(&r->edges, &n->hn);
	n->next_sib = parent->first;
	if (parent->first)
		parent->first->prev_sib = n;
	parent->first = n;
	parent->n_children++;
	r->st.nodes++;
	return n;
}

/* Frees n and then its ancestors for as long as they hold nothing. */
static void node_prune(struct bw_retained *r, struct rnode *n)
{
	while (n != r->root && !n->msg && n->n_children == 0) {
		struct rnode *parent = n->parent;
		htab_remove(&r->edges, &n->hn);
		if (n->prev_sib)
			n->prev_sib->next_sib = n->next_sib;
		else
			parent->first = n->next_sib;
		if (n->next_sib)
			n->next_sib->prev_sib = n->prev_sib;
		parent->n_children--;
		r->st.nodes--;
		free(n);
		n = parent;
	}
}

static struct rnode *path_find(const struct bw_retained *r, const uint8_t *t, size_t len)
{
	struct rnode *n = r->root;

	for (size_t s = 0; s <= len && n;) {
		size_t e = bw_topic_level_end(t, len, s);
		n = child_find(r, n, t + s, e - s);
		s = e + 1;
	}
	return n;
}

void bw_retained_set_limits(struct bw_retained *r, const struct bw_retained_limits *limits)
{
	r->lim = *limits;
}

bool bw_retained_fits(struct bw_retained *r, const uint8_t *topic, size_t len, size_t size)
{
	struct rnode *n = path_find(r, topic, len);
	bool replace = n && n->msg;
	uint64_t bytes = r->st.bytes - (replace ? n->size : 0);
	return (replace || r->st.count < r->lim.count_max) && size <= r->lim.bytes_max &&
	       bytes <= r->lim.bytes_max - size;
}

int bw_retained_set(struct bw_retained *r, const uint8_t *topic, size_t len, void *msg, size_t size)
{
	if (!msg || bw_topic_name_check(topic, len) != 0)
		return -EINVAL;
	if (bw_topic_levels(topic, len) > r->lim.levels_max)
		return -E2BIG;

	struct rnode *n = path_find(r, topic, len);
	bool replace = n && n->msg;
	uint64_t bytes = r->st.bytes - (replace ? n->size : 0);
	if ((!replace && r->st.count >= r->lim.count_max) || size > r->lim.bytes_max ||
	    bytes > r->lim.bytes_max - size)
		return -EDQUOT;
	if (len > r->path_cap) {
		uint8_t *p = realloc(r->path, len);
		if (!p)
			return -ENOMEM;
		r->path = p;
		r->path_cap = len;
	}
	if (!n) {
		n = r->root;
		for (size_t s = 0; s <= len;) {
			size_t e = bw_topic_level_end(topic, len, s);
			struct rnode *c = child_get(r, n, topic + s, e - s);
			if (!c) {
				node_prune(r, n);
				return -ENOMEM;
			}
			n = c;
			s = e + 1;
		}
	}
	void *old = n->msg;
	n->msg = msg;
	n->size = size;
	r->st.bytes = bytes + size;
	if (old)
		r->release(r->release_arg, old);
	else
		r->st.count++;
	return replace ? 1 : 0;
}

int bw_retained_clear(struct bw_retained *r, const uint8_t *topic, size_t len)
{
	struct rnode *n = len ? path_find(r, topic, len) : NULL;
	void *old;

	if (!n || !n->msg)
		return -ENOENT;
	old = n->msg;
	r->st.count--;
	r->st.bytes -= n->size;
	n->msg = NULL;
	n->size = 0;
	node_prune(r, n);
	r->release(r->release_arg, old);
	return 0;
}

void *bw_retained_get(const struct bw_retained *r, const uint8_t *topic, size_t len)
{
	struct rnode *n = len ? path_find(r, topic, len) : NULL;
	return n ? n->msg : NULL;
}

/* State of one bw_retained_match(). */
struct walk {
	struct bw_retained *r;
	const uint8_t *filter;
	size_t len;
	bw_retained_visit_fn visit;
	void *arg;
};

/* Appends child c's level to the path of its parent (plen bytes long). */
static size_t path_push(struct walk *w, const struct rnode *c, size_t plen)
{
	if (c->parent != w->r->root)
		w->r->path[plen++] = '/';
	memcpy(w->r->path + plen, c->level, c->level_len);
	return plen + c->level_len;
}

/* A first-level wildcard skips '$' topics (MQTT-4.7.2-1). */
static bool dollar_skip(const struct walk *w, const struct rnode *c)
{
	return c->parent == w->r->root && c->level_len > 0 && c->level[0] == '$';
}

/* Visits n's message and every one below it. */
static int walk_subtree(struct walk *w, struct rnode *n, size_t plen)
{
	int rc;

	if (n->msg && (rc = w->visit(w->arg, w->r->path, plen, n->msg)) != 0)
		return rc;
	for (struct rnode *c = n->first; c; c = c->next_sib) {
		if ((rc = walk_subtree(w, c, path_push(w, c, plen))) != 0)
			return rc;
	}
	return 0;
}

/* n matches the filter levels before filter[s]; s > len when all are consumed. */
static int walk_node(struct walk *w, struct rnode *n, size_t s, size_t plen)
{
	int rc;

	if (s > w->len)
		return n->msg ? w->visit(w->arg, w->r->path, plen, n->msg) : 0;
	size_t e = bw_topic_level_end(w->filter, w->len, s);
	const uint8_t *lvl = w->filter + s;
	size_t ll = e - s;
	if (ll == 1 && lvl[0] == '#') {
		/* This level and below, and the parent: "a/#" matches "a". */
		if (n != w->r->root && n->msg &&
		    (rc = w->visit(w->arg, w->r->path, plen, n->msg)) != 0)
			return rc;
		for (struct rnode *c = n->first; c; c = c->next_sib) {
			if (!dollar_skip(w, c) &&
			    (rc = walk_subtree(w, c, path_push(w, c, plen))) != 0)
				return rc;
		}
		return 0;
	}
	if (ll == 1 && lvl[0] == '+') {
		for (struct rnode *c = n->first; c; c = c->next_sib) {
			if (!dollar_skip(w, c) &&
			    (rc = walk_node(w, c, e + 1, path_push(w, c, plen))) != 0)
				return rc;
		}
		return 0;
	}
	struct rnode *c = child_find(w->r, n, lvl, ll);
	return c ? walk_node(w, c, e + 1, path_push(w, c, plen)) : 0;
}

int bw_retained_match(struct bw_retained *r, const uint8_t *filter, size_t len,
                      bw_retained_visit_fn visit, void *arg)
{
	struct bw_topic_share sh;
	struct walk w = { r, filter, len, visit, arg };

	if (bw_topic_filter_check(filter, len) != 0 || bw_topic_share_split(filter, len, &sh))
		return -EINVAL;
	return walk_node(&w, r->root, 0, 0);
}

int bw_retained_each(struct bw_retained *r, bw_retained_visit_fn visit, void *arg)
{
	struct walk w = { r, NULL, 0, visit, arg };

	return walk_subtree(&w, r->root, 0);
}

void bw_retained_stats(const struct bw_retained *r, struct bw_retained_stats *st)
{
	*st = r->st;
}
