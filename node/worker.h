/*
 * A worker: one thread running one bw_ring that serves a set of listeners.
 * It accepts MQTT connections and drives each one's protocol engine
 * (struct bw_conn) with multishot receives into provided buffers and one
 * sendmsg in flight a socket; it enforces the connect timeout and keep
 * alive, calls the broker's timer hook every 100 ms, and serves the HTTP
 * probes (/healthz, /readyz, /metrics) on HTTP listeners. An mqtts
 * listener's connections run TLS (node/net/tls.h) between the socket and
 * the engine. Everything a worker owns is touched only by its thread,
 * except bw_worker_stop().
 */
#ifndef BW_NODE_WORKER_H
#define BW_NODE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/config.h"
#include "node/core/conn.h"
#include "node/core/hub.h"
#include "node/jobs.h"

struct bw_worker;
struct bw_tls_ctx;
struct bw_sessions;

struct bw_worker_config {
	const struct bw_listener_config *listeners; /* the caller's; must outlive the worker */
	uint32_t n_listeners;
	/*
	 * The TLS context of each listener (n_listeners entries, NULL for a
	 * plain one), shared by the workers; the caller's, to outlive them.
	 * Every mqtts listener needs one. May be NULL when none is mqtts.
	 */
	struct bw_tls_ctx *const *tls;
	struct bw_conn_limits conn_limits;
	uint32_t max_connections; /* MQTT connections at once; 0: no limit */
	/* The node's count of them, shared by its workers; NULL: this worker's alone. */
	_Atomic uint32_t *node_connections;
	uint32_t connect_timeout_ms; /* CONNECT must arrive within; 0: 10000 */
	/* The broker's ops for connections on listener l (MQTT only). */
	const struct bw_conn_ops *(*ops_for)(void *arg, const struct bw_listener_config *l);
	void *ops_arg;
	/* Every 100 ms, on the worker's thread, for the broker's timers. May be NULL. */
	void (*tick)(void *arg, uint64_t now_ms);
	/* Prometheus text for GET /metrics into buf[0..cap); returns its length. May be NULL. */
	size_t (*metrics)(void *arg, char *buf, size_t cap);
	/*
	 * Whether a subscriber is still congested (see bw_worker_pause()).
	 * NULL: connections are never paused.
	 */
	bool (*congested)(void *arg);
	/*
	 * Whether /readyz answers 200, with detail lines for its body written
	 * into detail[0..cap) (NUL-terminated). NULL: always ready.
	 */
	bool (*ready)(void *arg, char *detail, size_t cap);
	/*
	 * The node's hub and this worker's index in it. NULL: a worker alone,
	 * which takes no mail and moves no connection.
	 */
	struct bw_hub *hub;
	uint32_t index;
	/* A letter another worker posted for the broker (not BW_LETTER_CONN). */
	void (*mail)(void *arg, uintptr_t letter);
	/*
	 * Once the node stops and this worker's clients are closed, before
	 * the hub quiesces: the broker publishes its wills. May be NULL.
	 */
	void (*shutdown)(void *arg);
	/* The job pool whose finished jobs this worker completes. May be NULL. */
	struct bw_jobs *jobs;
	/*
	 * The worker's side of the Redis state store (node/state/store.h):
	 * attached to the ring once it runs, ticked with the broker, given up
	 * to two seconds at stop (after the wills) to send what it holds,
	 * and detached once the ring is gone. The caller's; it frees it after
	 * the worker stopped. NULL: none.
	 */
	struct bw_store *store;
	/*
	 * The worker's persistent sessions in Redis (node/state/sessions.h;
	 * its broker's cfg.sessions), on the store's client: attached with
	 * it, ticked, flushed at stop like the store, detached before it. The
	 * caller's. NULL: none.
	 */
	struct bw_sessions *sessions;
};

/*
 * Starts a worker thread, which binds every listener (SO_REUSEADDR,
 * SO_REUSEPORT, backlog 4096) before this returns. Returns 0 with *out
 * set (free it with bw_worker_stop()), or -errno: from socket/bind/listen
 * (e.g. -EADDRINUSE), from the ring's set-up, or from pthread_create. The
 * config is copied; the listeners array is not.
 */
int bw_worker_start(struct bw_worker **out, const struct bw_worker_config *cfg);

/*
 * From another thread: tells every MQTT client the server is shutting down
 * (5.0 DISCONNECT 0x8B), flushes output for at most a second, closes every
 * socket, joins the thread and frees *w (NULL: nothing). *w is NULLed.
 * Workers sharing a hub wait for each other while stopping: request the
 * stop of all of them first (bw_worker_request_stop), then stop each.
 */
void bw_worker_stop(struct bw_worker **w);

/* From another thread: starts the stop without waiting for it. */
void bw_worker_request_stop(struct bw_worker *w);

/*
 * The hub's wake hook: from and to are workers (their peer pointers). On
 * from's thread, sends one msg_ring to to's ring.
 */
void bw_worker_wake_peer(void *from, void *to);

/*
 * Frees a BW_LETTER_CONN letter nobody took (the hub is freed with it
 * queued): closes its socket and frees its TLS state.
 */
void bw_worker_letter_free(void *letter);

/* The bound port of listener i (host order), or 0 when i is out of range. */
uint16_t bw_worker_port(const struct bw_worker *w, uint32_t i);

/*
 * The broker queued output on a connection outside that connection's own
 * callbacks (fan-out): conn_user is bw_conn_user() of it. Marks it so its
 * worker sends once the current batch of completions has been handled.
 * Call only on the connection's worker thread.
 */
void bw_worker_wants_send(void *conn_user);

/*
 * Stops reading the connection whose bw_conn user pointer is conn_user (a
 * publisher feeding a congested subscriber), on the connection's own
 * worker thread, so TCP pushes back on the client. Paused connections
 * resume together once cfg->congested says nothing is congested; their
 * keep alive does not run while the worker is not reading them.
 */
void bw_worker_pause(void *conn_user);

/*
 * Keeps the client of conn_user alive while a job about it runs (on), and
 * lets it go (off). On the client's worker thread.
 */
void bw_worker_hold(void *conn_user, bool on);

/*
 * The broker's peer() hook (see struct bw_broker_config): a field of the
 * verified client certificate of conn_user's connection (mqtts).
 */
int bw_worker_peer(void *conn_user, uint32_t field, char *buf, size_t cap);

/* The broker's sni() and chain() hooks: the TLS SNI and the verified chain's CA fingerprints. */
int bw_worker_sni(void *conn_user, char *buf, size_t cap);
int bw_worker_chain(void *conn_user, uint8_t (*fps)[32], size_t cap);

/* The broker's source() hook: the peer address of conn_user's connection. */
struct bw_addr;
int bw_worker_source(void *conn_user, struct bw_addr *addr);

/*
 * Work another thread hands a worker (the admin socket's questions to the
 * brokers): fn runs on w's thread at its next pass, with the worker and
 * its cfg.ops_arg (the broker). The struct is the caller's and must live
 * until fn has run; fn may free it. Any thread, never blocks.
 */
struct bw_worker_call {
	struct bw_worker_call *next;
	void (*fn)(struct bw_worker_call *call, struct bw_worker *w, void *arg);
};
void bw_worker_call(struct bw_worker *w, struct bw_worker_call *call);

/*
 * On w's thread (from a call): stops accepting MQTT connections for good;
 * the listening sockets are closed, so new connections are refused and go
 * to another node. HTTP listeners (/readyz) stay.
 */
void bw_worker_drain(struct bw_worker *w);

/* Wakes w's loop: from any thread (a finished job). */
void bw_worker_wake(struct bw_worker *w);

/* CLOCK_MONOTONIC in milliseconds: the clock the worker's timers use. */
uint64_t bw_worker_now_ms(void);

/* Counters: written by the worker's thread only, readable from any thread. */
struct bw_worker_stats {
	_Atomic uint64_t connections;        /* MQTT connections open (a gauge) */
	_Atomic uint64_t refused;            /* closed at accept: over max_connections */
	_Atomic uint64_t keepalive_timeouts; /* kicked for silence past keep alive x 1.5 */
	_Atomic uint64_t connect_timeouts;   /* closed without CONNECT in time */
	_Atomic uint64_t http_requests;
	_Atomic uint64_t pauses;         /* publishers paused for a congested subscriber */
	_Atomic uint64_t throttles;      /* reads stopped: a client held too much unhandled input */
	_Atomic uint64_t moved;          /* connections handed to their client id's worker */
	_Atomic uint64_t tls_handshakes; /* TLS handshakes completed */
	_Atomic uint64_t tls_handshake_failures; /* refused: bad version, certificate, ... */
};
const struct bw_worker_stats *bw_worker_stats(const struct bw_worker *w);

/*
 * Prometheus text of the workers' counters: node totals and a series a
 * worker. Returns its length.
 */
size_t bw_worker_metrics(struct bw_worker *const *w, uint32_t n, char *buf, size_t cap);

#endif
