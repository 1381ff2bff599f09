/*
 * The backoff table (see backoff.h): the slots come in groups of PROBE; an
 * address hashes to one group and lives in one of its slots. A new address
 * takes a free or forgotten slot of its group, else the one that failed
 * longest ago. Group g is guarded by mutex g mod STRIPES.
 */
#include "node/core/backoff.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE   8
#define STRIPES 16

struct entry {
	struct bw_addr addr;
	uint32_t failures;
	uint64_t last_ms;  /* the last failure; 0: a free slot */
	uint64_t until_ms; /* may not try before */
};

struct bw_backoff {
	uint32_t after, max_ms;
	uint64_t forget_ms;
	uint32_t groups; /* slots / PROBE, a power of two */
	struct entry *slots;
	pthread_mutex_t mu[STRIPES];
};

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

void bw_addr_text(const struct bw_addr *a, char *buf, size_t cap)
{
	bool v4 = !memcmp(a->b, v4_mapped, sizeof(v4_mapped));
	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a->b + 12 : a->b, buf, (socklen_t)cap))
		snprintf(buf, cap, "?");
}

int bw_addr_from_sockaddr(struct bw_addr *a, const void *sa)
{
	sa_family_t family;
	memcpy(&family, sa, sizeof(family));
	if (family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof(in));
		memcpy(a->b, v4_mapped, sizeof(v4_mapped));
		memcpy(a->b + 12, &in.sin_addr, 4);
		return 0;
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof(in6));
		memcpy(a->b, &in6.sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

struct bw_backoff *bw_backoff_new(uint32_t after, uint32_t max_ms, uint32_t slots)
{
	if (!after)
		return NULL;
	struct bw_backoff *bo = calloc(1, sizeof(*bo));
	if (!bo)
		return NULL;
	uint32_t groups = STRIPES;
	while (groups * PROBE < slots && groups < (1u << 20))
		groups <<= 1;
	bo->slots = calloc((size_t)groups * PROBE, sizeof(*bo->slots));
	if (!bo->slots) {
		free(bo);
		return NULL;
	}
	bo->after = after;
	bo->max_ms = max_ms < 1000 ? 1000 : max_ms;
	bo->forget_ms = 2ull * bo->max_ms < 60000 ? 60000 : 2ull * bo->max_ms;
	bo->groups = groups;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&bo->mu[i], NULL);
	return bo;
}

void bw_backoff_free(struct bw_backoff **bop)
{
	struct bw_backoff *bo = *bop;
	if (!bo)
		return;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&bo->mu[i]);
	free(bo->slots);
	free(bo);
	*bop = NULL;
}

static uint32_t group_of(const struct bw_backoff *bo, const struct bw_addr *a)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ a->b[i]) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32)) & (bo->groups - 1);
}

static bool stale(const struct bw_backoff *bo, const struct entry *e, uint64_t now)
{
	return !e->last_ms ||
	       (now > e->last_ms && now - e->last_ms > bo->forget_ms && now >= e->until_ms);
}

/* The entry of addr in its group (locked), or NULL; *victim: where to add it. */
static struct entry *find(struct bw_backoff *bo, struct entry *g, const struct bw_addr *a,
                          uint64_t now, struct entry **victim)
{
	struct entry *v = NULL;
	for (int i = 0; i < PROBE; i++) {
		struct entry *e = &g[i];
		if (e->last_ms && !memcmp(&e->addr, a, sizeof(*a)))
			return e;
		if (!v || (!stale(bo, v, now) && (stale(bo, e, now) || e->last_ms < v->last_ms)))
			v = e;
	}
	if (victim)
		*victim = v;
	return NULL;
}

uint64_t bw_backoff_wait(struct bw_backoff *bo, const struct bw_addr *addr, uint64_t now)
{
	uint32_t gi = group_of(bo, addr);
	pthread_mutex_t *mu = &bo->mu[gi % STRIPES];
	pthread_mutex_lock(mu);
	struct entry *e = find(bo, &bo->slots[(size_t)gi * PROBE], addr, now, NULL);
	uint64_t wait = e && e->until_ms > now ? e->until_ms - now : 0;
	pthread_mutex_unlock(mu);
	return wait;
}

uint64_t bw_backoff_fail(struct bw_backoff *bo, const struct bw_addr *addr, uint64_t now)
{
	uint32_t gi = group_of(bo, addr);
	pthread_mutex_t *mu = &bo->mu[gi % STRIPES];
	struct entry *victim;
	pthread_mutex_lock(mu);
	struct entry *e = find(bo, &bo->slots[(size_t)gi * PROBE], addr, now, &victim);
	if (!e || stale(bo, e, now)) {
		e = e ? e : victim;
		*e = (struct entry){ .addr = *addr };
	}
	e->failures++;
	e->last_ms = now ? now : 1;
	uint64_t wait = 0;
	if (e->failures >= bo->after) {
		uint32_t doublings = e->failures - bo->after;
		wait = doublings >= 20 ? bo->max_ms : 1000ull << doublings;
		if (wait > bo->max_ms)
			wait = bo->max_ms;
		e->until_ms = now + wait;
	}
	pthread_mutex_unlock(mu);
	return wait;
}

void bw_backoff_ok(struct bw_backoff *bo, const struct bw_addr *addr)
{
	uint32_t gi = group_of(bo, addr);
	pthread_mutex_t *mu = &bo->mu[gi % STRIPES];
	pthread_mutex_lock(mu);
	struct entry *e = find(bo, &bo->slots[(size_t)gi * PROBE], addr, 0, NULL);
	if (e)
		*e = (struct entry){ 0 };
	pthread_mutex_unlock(mu);
}
