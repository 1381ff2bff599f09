/*
 * Internal to the topic indexes (sub_index.c, retained.c): an intrusive
 * chained hash table whose buckets grow by doubling, and the hash of a trie
 * edge (parent node, level bytes) seeded per index so a client cannot
 * choose topics that collide.
 */
#ifndef BW_CORE_HTAB_H
#define BW_CORE_HTAB_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* An intrusive chained hash table; buckets grow by doubling. */
struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t mask; /* buckets - 1, a power of two minus one */
	size_t n;
};

static inline int htab_init(struct htab *t, size_t buckets)
{
	t->b = calloc(buckets, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->mask = buckets - 1;
	t->n = 0;
	return 0;
}

static inline void htab_fini(struct htab *t)
{
	free(t->b);
	t->b = NULL;
}

/* Doubles the buckets; on allocation failure chains just get longer. */
static inline void htab_grow(struct htab *t)
{
	size_t nb = (t->mask + 1) * 2;
	struct hnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		struct hnode *h = t->b[i], *next;
		for (; h; h = next) {
			next = h->next;
			h->next = b[h->hash & (nb - 1)];
			b[h->hash & (nb - 1)] = h;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

static inline void htab_insert(struct htab *t, struct hnode *h)
{
	if (t->n >= t->mask + 1)
		htab_grow(t);
	h->next = t->b[h->hash & t->mask];
	t->b[h->hash & t->mask] = h;
	t->n++;
}

static inline void htab_remove(struct htab *t, struct hnode *h)
{
	struct hnode **p = &t->b[h->hash & t->mask];

	while (*p != h)
		p = &(*p)->next;
	*p = h->next;
	t->n--;
}

static inline uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t edge_hash(uint64_t seed, const void *parent, const uint8_t *s, size_t len)
{
	uint64_t h = seed ^ mix64((uint64_t)(uintptr_t)parent);

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return mix64(h ^ len);
}

#endif
