/*
 * The hub: what the workers of one node share, and the only place where
 * they meet. Workers never lock each other's state; they exchange letters
 * through the hub and share three things in it:
 *
 *   - Tenants: the node's tenant ids (an index) and names, and per tenant
 *     and worker a block of counters that only that worker writes and
 *     anyone may read (relaxed atomics), for metrics and $SYS.
 *   - Mail: a bounded single-producer single-consumer ring for each ordered
 *     pair of workers, carrying tagged words (a message to route, a share
 *     group delivery, a connection handed over). A full ring spills into
 *     the sender's own overflow list, which later flushes retry, so a post
 *     never blocks and never loses a letter. A flush wakes each receiver it
 *     wrote to once (the wake hook: a msg_ring from ring to ring).
 *   - Interest: which worker wants which filter of a tenant. A worker posts
 *     its 0 -> 1 and 1 -> 0 filter events to every other worker's interest
 *     inbox (a short mutex-held list, never on the publish path); a worker
 *     applies its inbox to its replica before each routing decision, which
 *     is what keeps "SUBACK, then a publish on another connection"
 *     causally ordered: the inbox entry was queued before the SUBACK left.
 *   - Retained messages: one index per tenant under a mutex, touched only
 *     by retained publishes and by subscribes, not by ordinary routing.
 *
 * And one rule: a client id lives on one worker, its home, so sessions,
 * takeover and wills of one client id never cross workers
 * (bw_hub_home()).
 */
#ifndef BW_CORE_HUB_H
#define BW_CORE_HUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/retained.h"

struct bw_hub;
struct bw_msg;

#define BW_HUB_WORKERS_MAX 256
#define BW_HUB_TENANTS_MAX 1024

/*
 * Letters are words with a tag in the low bits (pointers are at least 8
 * aligned). A plain message letter is the struct bw_msg pointer itself and
 * carries one reference for the receiver.
 */
enum bw_letter_tag {
	BW_LETTER_MSG = 0,        /* struct bw_msg *: route to plain subscriptions */
	BW_LETTER_SHARE = 1,      /* the broker's share delivery */
	BW_LETTER_CONN = 2,       /* the worker's connection hand-over */
	BW_LETTER_STORED = 3,     /* the broker's: a message stored (session_durability sync) */
	BW_LETTER_STORED_MSG = 4, /* the broker's: a message to route that waits to be stored */
	BW_LETTER_TAGS = 7,
};

static inline uintptr_t bw_letter(const void *p, enum bw_letter_tag tag)
{
	return (uintptr_t)p | (uintptr_t)tag;
}

static inline enum bw_letter_tag bw_letter_tag(uintptr_t l)
{
	return (enum bw_letter_tag)(l & BW_LETTER_TAGS);
}

static inline void *bw_letter_ptr(uintptr_t l)
{
	return (void *)(l & ~(uintptr_t)BW_LETTER_TAGS);
}

/* Counters of one tenant on one worker: written by that worker only. */
struct bw_tenant_stats {
	_Atomic uint64_t connected, sessions, subscriptions;
	_Atomic uint64_t msgs_in, msgs_out, dropped;
	_Atomic uint64_t auth_failures, denied; /* bad credentials; ACL refusals */
	_Atomic uint64_t auth_backoffs;         /* CONNECTs refused: their address waits */
	_Atomic uint64_t bytes_in, bytes_out;   /* PUBLISH topic and payload bytes */
	_Atomic uint64_t quota_hits;            /* refusals for a quota (connections, rates, ...) */
	_Atomic uint64_t persistent;            /* sessions with an expiry above 0 */
} __attribute__((aligned(64)));

/* Adds n to a counter the calling worker owns: a plain add, no bus lock. */
static inline void bw_stat_add(_Atomic uint64_t *c, int64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)n,
	                      memory_order_relaxed);
}

static inline void bw_stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* The sums over workers of a tenant's counters. */
struct bw_tenant_totals {
	uint64_t connected, sessions, subscriptions;
	uint64_t msgs_in, msgs_out, dropped;
	uint64_t auth_failures, denied, auth_backoffs;
	uint64_t bytes_in, bytes_out, quota_hits, persistent;
	uint32_t retained;
	uint64_t retained_bytes;
};

struct bw_hub_config {
	uint32_t n_workers;                 /* 1..BW_HUB_WORKERS_MAX */
	const char *const *tenant;          /* names known at start; a tenant's id is its index */
	uint32_t n_tenants;                 /* 0..tenants_max */
	uint32_t tenants_max;               /* 0: BW_HUB_TENANTS_MAX; at most that */
	struct bw_retained_limits retained; /* a tenant, unless bw_hub_tenant_limits() says */
	uint32_t mail_slots;                /* a ring, a power of two; 0: 1024 */
	/*
	 * Wakes worker `to` (its peer pointer, see bw_hub_attach) from worker
	 * `from`'s thread. NULL: receivers are never woken (tests poll).
	 */
	void (*wake)(void *from_peer, void *to_peer);
};

/* A hub, or NULL (errno: EINVAL for a bad config, ENOMEM). */
struct bw_hub *bw_hub_new(const struct bw_hub_config *cfg);

/*
 * Frees the hub: undelivered letters are handed to drop(arg, letter) (NULL:
 * plain message letters are unreferenced, others leak), retained messages
 * are unreferenced. NULLs *h.
 */
void bw_hub_free(struct bw_hub **h, void (*drop)(void *arg, uintptr_t letter), void *arg);

uint32_t bw_hub_workers(const struct bw_hub *h);

/*
 * Tenants the hub knows: ids 0 .. bw_hub_tenants() - 1, never more than
 * bw_hub_tenants_max(). The count only grows: a tenant is added the first
 * time the node meets it (a listener, a restored session, a client of a
 * tenant from the tenancy store) and keeps its id, so a letter or a
 * session naming an id stays meaningful. Any thread, without a lock.
 */
uint32_t bw_hub_tenants(const struct bw_hub *h);
uint32_t bw_hub_tenants_max(const struct bw_hub *h);

/* The id of the named tenant, or -1. Any thread, without a lock. */
int bw_hub_tenant_find(const struct bw_hub *h, const char *name);

/*
 * The id of the named tenant, added when new: the id, or -ENOSPC (the hub
 * holds tenants_max already) or -ENOMEM. Any thread.
 */
int bw_hub_tenant_add(struct bw_hub *h, const char *name);
const char *bw_hub_tenant_name(const struct bw_hub *h, uint32_t tenant);

/*
 * The tenant's own retained limits (its quotas); messages already held
 * stay, new ones must fit. Any thread.
 */
void bw_hub_tenant_limits(struct bw_hub *h, uint32_t tenant, const struct bw_retained_limits *l);

/* The worker that owns client id (id, len) of tenant. */
uint32_t bw_hub_home(const struct bw_hub *h, uint32_t tenant, const void *id, size_t len);

/* ---- workers coming and going -------------------------------------------- */

/*
 * Worker i's thread announces itself with its wake target (peer), before
 * it first takes mail. A flush that finds no peer yet skips the wake; the
 * receiver then finds the letter when it first takes mail.
 */
void bw_hub_attach(struct bw_hub *h, uint32_t i, void *peer);

/*
 * Called by each attached worker once it will post nothing more; returns
 * when every attached worker has called it. After it, nobody wakes anybody,
 * so a worker may tear its ring down (and drop what mail is left).
 */
void bw_hub_quiesce(struct bw_hub *h, uint32_t i);

/* ---- mail ------------------------------------------------------------------ */

/* Posts a letter from worker `from` to worker `to`; 0 or -ENOMEM (not posted). */
int bw_hub_post(struct bw_hub *h, uint32_t from, uint32_t to, uintptr_t letter);

/*
 * On from's thread, at the end of each pass: retries its overflow and wakes
 * every worker it wrote to since the last flush. Returns the letters still
 * waiting in its overflow (the caller then holds its publishers back and
 * flushes again soon).
 */
size_t bw_hub_flush(struct bw_hub *h, uint32_t from);

/* Letters waiting in from's overflow. */
size_t bw_hub_backlog(const struct bw_hub *h, uint32_t from);

/* On to's thread: takes up to max letters for worker `to`; returns how many. */
uint32_t bw_hub_take(struct bw_hub *h, uint32_t to, uintptr_t *out, uint32_t max);

/* ---- interest ---------------------------------------------------------------- */

/*
 * Tells every worker but `from` that from's interest in filter (of tenant)
 * started (add) or ended. member is 0 for a plain filter; for a share group
 * it numbers from's members (1..n: the n-th joined, or the n-th left), so
 * the node can weigh its picks by members. 0 or -ENOMEM (then nobody was
 * told).
 */
int bw_hub_interest_post(struct bw_hub *h, uint32_t from, uint32_t tenant, bool add,
                         uint32_t member, const uint8_t *filter, size_t len);

typedef void (*bw_hub_interest_fn)(void *arg, uint32_t from, uint32_t tenant, bool add,
                                   uint32_t member, const uint8_t *filter, size_t len);

/* On to's thread: applies to's inbox in order; one atomic load when empty. */
void bw_hub_interest_take(struct bw_hub *h, uint32_t to, bw_hub_interest_fn fn, void *arg);

/* ---- retained messages --------------------------------------------------------- */

/*
 * Sets (msg with a payload) or clears (msg NULL) the retained message of a
 * topic. Set takes a reference of its own. 0, or -EDQUOT over the tenant's
 * quota, -ENOMEM.
 */
int bw_hub_retained_put(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                        struct bw_msg *msg);

/*
 * As bw_hub_retained_put(), only when the topic's retained message is
 * still expect (NULL: none), compared by pointer under the tenant's lock:
 * the state store applies what it read from Redis this way, so a local
 * write made meanwhile (a new message) is never overwritten by an older
 * value. 0 when applied, 1 when the topic holds something else, or the
 * errors of bw_hub_retained_put().
 */
int bw_hub_retained_cas(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                        const struct bw_msg *expect, struct bw_msg *msg);

/* Clears every retained message of tenant (it was deleted). 0 or -ENOMEM. */
int bw_hub_retained_purge(struct bw_hub *h, uint32_t tenant);

/*
 * The retained messages matching filter, each with a reference the caller
 * drops: appended to *v (grown with realloc; *n used, *cap size). Returns
 * the count appended, or -ENOMEM (what was appended stays valid).
 */
int bw_hub_retained_get(struct bw_hub *h, uint32_t tenant, const uint8_t *filter, size_t len,
                        struct bw_msg ***v, size_t *n, size_t *cap);

/* Whether a retained message of size bytes on topic would fit the tenant's limits now. */
bool bw_hub_retained_fits(struct bw_hub *h, uint32_t tenant, const uint8_t *topic, size_t len,
                          size_t size);

/* Visits every retained message of tenant under its lock (snapshots). */
int bw_hub_retained_each(struct bw_hub *h, uint32_t tenant, bw_retained_visit_fn visit, void *arg);

/* ---- counters -------------------------------------------------------------------- */

struct bw_tenant_stats *bw_hub_stats(struct bw_hub *h, uint32_t tenant, uint32_t worker);

/* Sums of every worker's counters of tenant, and its retained figures. */
void bw_hub_totals(struct bw_hub *h, uint32_t tenant, struct bw_tenant_totals *t);

#endif
