/*
 * A worker's side of the Redis state store: the retained writes its broker
 * makes, written through to Redis with the worker's own client
 * (node/state/redis.h, on the worker's ring) and held in a bounded queue
 * while Redis is down or slow.
 *
 * A write sets (a message) or clears (none) the retained message of one
 * topic of one tenant. It is one EVAL: HSET or HDEL of the tenant's hash
 * and a PUBLISH of a note naming this node, the tenant and the topic, so
 * the hash and the announcement change together (node/state/keys.h,
 * docs/state-layout.md). Writes are sent in the order they were made,
 * pipelined; one stays in the queue until Redis answered it, and every
 * one that failed (the connection dropped, Redis answered an error) is
 * sent again from the tick once the client is up, still in order. A write
 * to a topic that has one waiting (not sent) replaces it in place, and a
 * failed write that a newer one of its topic follows is dropped, not
 * retried: so the last write of a topic is the one Redis keeps.
 *
 * The queue holds at most queue_max writes, sent or not: past it,
 * bw_store_may_write() says no (and counts a refusal), unless the topic
 * has a write waiting that the new one would replace.
 *
 * Threads: everything but bw_store_stats() belongs to the worker's
 * thread once attached; before (bw_store_new() on the main thread) and
 * after detaching, to whoever holds it. The stats are atomics any thread
 * may read until bw_store_free().
 */
#ifndef BW_STATE_STORE_H
#define BW_STATE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/state/keys.h"
#include "node/state/redis.h"

struct bw_hub;
struct bw_msg;
struct bw_ring;
struct bw_store;

struct bw_store_config {
	const struct bw_redis_config *redis; /* copied */
	const char *prefix;                  /* of the keys; copied */
	const char *node;                    /* this node's id, BW_KEYS_NODE_LEN hex digits */
	uint32_t queue_max;                  /* writes held, sent or waiting; at least 1 */
	struct bw_hub *hub;                  /* the tenants' names */
};

/*
 * Counters and gauges for /metrics and /readyz: written by the worker's
 * thread (the client's own are copied each tick), read by any thread.
 */
struct bw_store_stats {
	_Atomic uint64_t up;         /* the client is connected and answering */
	_Atomic uint64_t queued;     /* writes held: sent and unanswered, or waiting */
	_Atomic uint64_t written;    /* writes Redis answered OK */
	_Atomic uint64_t replaced;   /* waiting writes a newer one of their topic replaced */
	_Atomic uint64_t refused;    /* writes bw_store_may_write() refused: the queue was full */
	_Atomic uint64_t failed;     /* sends that failed (and were retried or superseded) */
	_Atomic uint64_t requests;   /* the client's: see struct bw_redis_stats */
	_Atomic uint64_t errors;     /* requests that failed, and Redis error replies */
	_Atomic uint64_t timeouts;   /* requests past their deadline */
	_Atomic uint64_t reconnects; /* connection attempts after the first */
};

/*
 * A store that holds writes and sends nothing until bw_store_attach().
 * Returns 0 and *out, -EINVAL for a bad config (prefix, node, queue_max),
 * -ENOMEM. Free it with bw_store_free().
 */
int bw_store_new(struct bw_store **out, const struct bw_store_config *cfg);

/*
 * On the worker's thread, once its ring runs: the Redis client starts
 * connecting (without blocking) and held writes go out once it is up.
 * 0, or the errors of bw_redis_new().
 */
int bw_store_attach(struct bw_store *s, struct bw_ring *ring);

/*
 * Whether a write of topic (len bytes) of tenant may be made now: the
 * queue has room, or the topic has a write waiting that it replaces. A
 * "no" is counted as a refusal: the caller refuses the write.
 */
bool bw_store_may_write(struct bw_store *s, uint32_t tenant, const uint8_t *topic, size_t len);

/*
 * Writes msg (NULL: clears) as the retained message of topic of tenant:
 * queued, and sent at once when the client is up. msg gets a reference of
 * the store's; its bytes are encoded when sent. 0, -ENOBUFS past the
 * bound (bw_store_may_write() said no), -EINVAL for an empty topic,
 * -ENOMEM.
 */
int bw_store_write(struct bw_store *s, uint32_t tenant, const uint8_t *topic, size_t len,
                   struct bw_msg *msg);

/*
 * Deletes tenant's whole hash (the tenant was deleted): queued behind the
 * writes already held, like one, but never refused for the bound (a
 * tenant is deleted once). 0 or -ENOMEM.
 */
int bw_store_purge(struct bw_store *s, uint32_t tenant);

/*
 * Every 100 ms or so on the worker's thread (never from a callback): the
 * client's tick (deadlines, reconnects), then the waiting writes go out
 * while it is up.
 */
void bw_store_tick(struct bw_store *s, uint64_t now_ms);

/* The worker's Redis client while attached (others share it: sessions.h), else NULL. */
struct bw_redis *bw_store_client(struct bw_store *s);

/* Writes held, sent or waiting (the stats' queued, on the owner's thread). */
size_t bw_store_pending(const struct bw_store *s);

const struct bw_store_stats *bw_store_stats(const struct bw_store *s);

/* Why the client last failed ("" if never) into buf. Any thread while attached. */
void bw_store_last_error(struct bw_store *s, char *buf, size_t len);

/*
 * On the worker's thread: frees the client (writes in flight fail and
 * stay held); ring_ok as for bw_redis_free(). The store holds writes
 * again and sends nothing.
 */
void bw_store_detach(struct bw_store *s, bool ring_ok);

/* Frees a detached store and the writes it holds (a log line says how many); NULLs *sp. */
void bw_store_free(struct bw_store **sp);

#endif
