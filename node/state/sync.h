/*
 * The state thread: keeps the node's retained index (the hub's) in step
 * with Redis. It is not a worker, so it uses blocking hiredis, on two
 * connections of its own, with a timeout on every call:
 *
 *   - the listener SUBSCRIBEs to PREFIX:retained and reads the notes of
 *     every node's writes (node/state/keys.h);
 *   - the reader loads and reads the hashes.
 *
 * At start it subscribes first, then loads every tenant's retained hash
 * (SCAN for the hashes of the prefix, HSCAN each, every value through the
 * record checks) into the hub, so nothing written meanwhile is missed; the
 * node waits for that load before its listeners accept (or not ready).
 * It also listens to PREFIX:sessions and hands each takeover note of
 * another node to cfg.taken, so the node lets that session go.
 * Then each note of another node makes it read the topic's value (HGET)
 * and set or clear it in the hub; notes of its own node are ignored, its
 * workers having set the hub already. A record whose expiry has passed is
 * skipped and removed from Redis (only if it is still the value read).
 *
 * A lost connection is retried with backoff (100 ms doubling to 5 s), and
 * every reconnect reloads, since notes may have been missed: once the
 * node's workers hold no write for Redis any more (or after drain_wait_ms,
 * and then without removing anything), it sets what Redis holds and
 * removes the local messages Redis no longer has, each through a
 * compare-and-set (bw_hub_retained_cas()) against what the hub held when
 * the reload began, so a write a worker makes meanwhile is never undone.
 *
 * With redis_sentinel it is also the one thread that asks the sentinels
 * where the master is, after the main thread's first ask at start: every
 * second or so, and at once when one of its connections fails. A new
 * answer goes to the holder (master.h), where the workers' clients see
 * it, and the thread reconnects (and so reloads) there itself. Its own
 * connections are only kept with a server whose ROLE says master.
 */
#ifndef BW_STATE_SYNC_H
#define BW_STATE_SYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/state/redis.h"
#include "node/state/sentinel.h"

struct bw_hub;
struct bw_sync;

struct bw_sync_config {
	const struct bw_redis_config *redis; /* a numeric host or a unix socket; copied */
	const char *prefix;                  /* copied */
	const char *node;                    /* this node's id (BW_KEYS_NODE_LEN hex); copied */
	/*
	 * The sentinels to ask where the master is, with redis->master set
	 * (its holder) instead of a host; copied. NULL: redis's address.
	 */
	const struct bw_sentinel_config *sentinel;
	struct bw_hub *hub;
	/*
	 * The writes the node's workers hold for Redis (sent or waiting), from
	 * the state thread. NULL: none ever.
	 */
	size_t (*held)(void *arg);
	void *held_arg;
	uint32_t drain_wait_ms; /* a reload waits this long for held() to reach 0; 0: 10000 */
	/*
	 * Another node took (or dropped) the session of id (id_len bytes) of
	 * tenant with token (the takeover notes of PREFIX:sessions, keys.h):
	 * from the state thread. NULL: not listened to.
	 */
	void (*taken)(void *arg, const char *tenant, const uint8_t *id, size_t id_len,
	              uint64_t token);
	void *taken_arg;
	uint32_t batch; /* SCAN and HSCAN COUNT; 0: 256 */
};

/* For /readyz and /metrics: any thread, relaxed. */
struct bw_sync_stats {
	_Atomic uint64_t loaded;     /* 1 once the first load finished */
	_Atomic uint64_t up;         /* subscribed, and the last call answered */
	_Atomic uint64_t loads;      /* loads finished (the first and every reload) */
	_Atomic uint64_t messages;   /* retained messages the last load found */
	_Atomic uint64_t applied;    /* other nodes' changes applied */
	_Atomic uint64_t takeovers;  /* other nodes' session takeover notes handed on */
	_Atomic uint64_t expired;    /* expired records removed from Redis */
	_Atomic uint64_t bad;        /* values the record checks refused (skipped) */
	_Atomic uint64_t requests;   /* commands sent */
	_Atomic uint64_t errors;     /* commands or connections that failed */
	_Atomic uint64_t timeouts;   /* of those, past their timeout */
	_Atomic uint64_t reconnects; /* connection attempts after the first */
	_Atomic uint64_t failovers;  /* the sentinels named a new master (not the first one) */
	_Atomic uint64_t unanswered; /* asks of the sentinels that none answered */
};

/*
 * Starts the state thread, which starts connecting at once. Returns 0 and
 * *out, or -EINVAL (bad prefix or node) or -errno with why in err.
 */
int bw_sync_start(struct bw_sync **out, const struct bw_sync_config *cfg, char *err, size_t cap);

/* Waits up to ms for the first load; true when it is done. */
bool bw_sync_wait_loaded(struct bw_sync *s, uint32_t ms);

const struct bw_sync_stats *bw_sync_stats(const struct bw_sync *s);

/* Why Redis last failed ("" if never) into buf. Any thread. */
void bw_sync_last_error(struct bw_sync *s, char *buf, size_t len);

/* Stops the thread (it leaves any blocking call within its timeout), frees *sp, NULLs it. */
void bw_sync_stop(struct bw_sync **sp);

#endif
