/*
 * The broker of one worker: tenants (each with its subscription index,
 * retained index and client-id space), sessions and their lifetimes
 * (clean, persistent, session expiry, takeover), wills (with delay),
 * routing of publishes to subscribers, and the struct bw_conn_ops that
 * connections use. It is not thread-safe: it lives on its worker's thread.
 *
 * This is the single-worker stage of the design in docs/architecture.md:
 * routing across workers (node interest replicas, message passing) builds
 * on it, one broker a worker.
 *
 * Authentication is not in it yet: a listener with allow_anonymous=true
 * takes clients without credentials, and every other client is refused
 * (fail closed: 0x87 / 3.1.1 return code 5 without credentials, 0x86 / 4
 * with credentials nobody can check).
 */
#ifndef BW_CORE_BROKER_H
#define BW_CORE_BROKER_H

#include "node/config.h"
#include "node/core/conn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_broker;

struct bw_broker_config {
	const struct bw_listener_config *listeners; /* the MQTT listeners served */
	uint32_t n_listeners;
	uint16_t max_inflight;        /* outbound window cap and inbound QoS 2 limit */
	uint32_t max_queued_messages; /* a session */
	uint32_t max_subscriptions;   /* a session */
	uint32_t max_topic_levels;
	uint32_t retained_max;       /* a tenant */
	uint64_t retained_bytes_max; /* a tenant */
	uint32_t filters_max;        /* distinct filters a tenant */
	uint32_t sys_interval_ms;    /* $SYS/broker/... statistics; 0: none */
	const char *version;         /* for $SYS/broker/version */
	uint64_t (*now_ms)(void);
	/* Called when a connection has new output (fan-out from another one). */
	void (*wants_send)(void *conn_user);
	/*
	 * Called when a publisher fed a congested subscriber (its output
	 * queue above the soft limit, or its session queue half full): the
	 * worker stops reading that publisher until bw_broker_congested()
	 * says no subscriber is congested any more. May be NULL.
	 */
	void (*pause)(void *conn_user);
};

/* A broker for the configured listeners, or NULL (errno set). */
struct bw_broker *bw_broker_new(const struct bw_broker_config *cfg);

/* Frees every session, message and index; NULLs *b. */
void bw_broker_free(struct bw_broker **b);

/* The connection operations for clients of MQTT listener i. */
const struct bw_conn_ops *bw_broker_ops(struct bw_broker *b, uint32_t listener);

/*
 * Fires due wills, ends expired sessions and publishes the $SYS statistics
 * when they are due; call often (every 100 ms).
 */
void bw_broker_tick(struct bw_broker *b, uint64_t now_ms);

/*
 * Whether a connected subscriber is still congested. Walks only the
 * subscribers found congested since the last call and forgets those that
 * drained (or went away), so it is cheap to call after every send.
 */
bool bw_broker_congested(struct bw_broker *b);

/* Prometheus text of the broker's counters into buf; returns its length. */
size_t bw_broker_metrics(struct bw_broker *b, char *buf, size_t cap);

#endif
