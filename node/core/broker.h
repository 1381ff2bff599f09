/*
 * The broker of one worker: tenants (each with its subscription index,
 * retained index and client-id space), sessions and their lifetimes
 * (clean, persistent, session expiry, takeover), wills (with delay),
 * routing of publishes to subscribers, and the struct bw_conn_ops that
 * connections use. It is not thread-safe: it lives on its worker's thread.
 *
 * A node runs one broker a worker. They share a struct bw_hub (hub.h): a
 * publish is matched against the worker's replica of the node's interest
 * (which workers want which filters), routed to local subscribers here and
 * posted once to each other interested worker, whose broker routes it with
 * bw_broker_mail(). Share groups are decided at node level: the replica
 * picks a worker, that worker's index picks the member. Sessions live on
 * their client id's home worker (bw_hub_home()); a connection that arrives
 * elsewhere is moved there before its CONNECT is handled (ops->place).
 *
 * Authentication: a client without a username needs a listener with
 * allow_anonymous=true (else 0x87 / 3.1.1 code 5); one with a username
 * needs a password file holding it and the right password (else 0x86 / 4),
 * checked on the job pool. An ACL file, when set, decides every publish,
 * subscription, will and delivery (deny beats allow, no rule denies).
 */
#ifndef BW_CORE_BROKER_H
#define BW_CORE_BROKER_H

#include "node/config.h"
#include "node/core/backoff.h"
#include "node/core/conn.h"
#include "node/core/hub.h"
#include "node/jobs.h"
#include "tenancy/model.h"
#include "tenancy/policy.h"
#include "node/core/sub_index.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_broker;

struct bw_broker_config {
	const struct bw_listener_config *listeners; /* the MQTT listeners served */
	uint32_t n_listeners;
	uint16_t max_inflight; /* outbound window cap and inbound QoS 2 limit */
	uint32_t max_topic_levels;
	bool queue_drop_oldest; /* a full session queue drops its oldest, not the new one */
	uint32_t filters_max;   /* distinct filters a tenant */
	size_t out_budget;      /* output_queue_budget; 0: none */
	struct bw_hub *hub;     /* shared with the node's other brokers */
	/*
	 * Who may connect and what they may do (tenancy/policy.h): the
	 * password file (none: clients with a username are refused, 0x86),
	 * the ACL file (none: every topic but $SYS) and the JWT keys. A new
	 * policy published in the slot takes effect at the next tick:
	 * connected sessions are re-checked (a password user no longer in
	 * the file is disconnected, 0x87; subscriptions the ACL no longer
	 * allows are dropped), offline ones when they resume. NULL: no
	 * passwords, ACL or tokens.
	 */
	struct bw_policy_slot *policy;
	/*
	 * JWT access tokens in the password field (the policy's keys; none:
	 * no tokens): verified with those keys and this policy; the username is the claim named
	 * jwt_username_claim (a username the client sends must equal it), and
	 * the connection ends (0x87) when the token expires.
	 */
	/*
	 * The ways a client may authenticate, in order (config auth_chain:
	 * 4 bits each, enum bw_config_method + 1; 0: certificate, token,
	 * password): the first that applies to a CONNECT decides.
	 */
	uint32_t auth_chain;
	const struct bw_jwt_policy *jwt_policy;
	const char *jwt_username_claim;
	/*
	 * How long past its exp a token's connection lives: time for the
	 * client to re-authenticate (5.0 AUTH, method JWT) with a fresh one.
	 */
	uint32_t jwt_grace_ms;
	/*
	 * Failed logins slow their source address down (NULL: never): a
	 * CONNECT from an address that must wait is refused with 0x9F before
	 * any check. source() gives a connection's peer address (0 or
	 * -errno); it may be NULL.
	 */
	struct bw_backoff *backoff;
	int (*source)(void *conn_user, struct bw_addr *addr);
	/*
	 * Told of every refused authentication (the audit log), on the
	 * worker's thread, after it is logged: the tenant, the client id, the
	 * username ("" without one), the source address and why. Never a
	 * secret. May be NULL.
	 */
	void (*auth_failed)(const char *tenant, struct bw_str client_id, const char *user,
	                    const char *from, const char *why);
	/* Where password checks run (NULL: on the caller's thread; tests). */
	struct bw_jobs *jobs;
	/* Keeps a connection alive while a job about it runs (on) and lets it go. */
	void (*hold)(void *conn_user, bool on);
	/*
	 * Client certificates: identity[i] (enum bw_config_identity) says
	 * which field of listener i's verified client certificates names the
	 * user (NULL or NONE: none does); peer() copies that field (or, for
	 * BW_CONFIG_IDENTITY_CN, the subject CN that ACLs see as %cn) of the
	 * connection's certificate into buf and returns its length, or a
	 * negative errno (no certificate, no such field). May be NULL.
	 */
	const uint32_t *identity;
	int (*peer)(void *conn_user, uint32_t field, char *buf, size_t cap);
	/*
	 * The tenancy store (tenancy/service.h): tenancy(arg) returns the
	 * snapshot in force with a reference of its own (NULL fn: no store;
	 * every client is of its listener's tenant, checked by the policy's
	 * files). Clients of a tenant the store holds are resolved (resolve.h),
	 * authenticated by its principals, CA and JWT keys, and held to its
	 * rules and quotas; a new snapshot is taken at the next tick, and the
	 * connected clients of each changed tenant are re-checked: a suspended
	 * or deleted tenant's are disconnected (0x98), a disabled or deleted
	 * principal's too (0x87), a subscription no longer allowed dropped.
	 */
	struct bw_tenancy *(*tenancy)(void *arg);
	void *tenancy_arg;
	const char *tenant_claim; /* the JWT claim naming the tenant; NULL: "tenant" */
	/* The connection's TLS SNI (length, or -errno) and its verified chain's CA fingerprints
	 * (count). */
	int (*sni)(void *conn_user, char *buf, size_t cap);
	int (*chain)(void *conn_user, uint8_t (*fps)[BW_TENANCY_CA_FP_LEN], size_t cap);
	/*
	 * The node's quotas, what a tenant's zero fields mean (0 here: no
	 * limit; max_qos 0..2). Tenants the store lacks have exactly these:
	 * client_subscriptions and session_queued_msgs are the limits of every
	 * session of theirs.
	 */
	struct bw_quotas quotas;
	uint32_t worker;          /* this broker's worker index in the hub */
	uint32_t sys_interval_ms; /* $SYS/broker/... statistics; 0: none */
	const char *version;      /* for $SYS/broker/version */
	uint64_t (*now_ms)(void);
	/* Called when a connection has new output (fan-out from another one). */
	void (*wants_send)(void *conn_user);
	/*
	 * The shared store of retained messages (node/state/store.h; NULL:
	 * the hub is the only place they live). Every retained set or clear
	 * but $SYS is written through it after the hub took it. store_may
	 * says whether a write of the topic can be taken now (a "no" is
	 * counted by the store); a client's retained PUBLISH it refuses is
	 * refused: QoS 1/2 with 0x97 (3.1.1: the connection is closed), QoS 0
	 * dropped; a will's retained part is dropped (the will is still
	 * delivered). store_write writes msg (NULL: a clear).
	 */
	void *store;
	bool (*store_may)(void *store, uint32_t tenant, const uint8_t *topic, size_t len);
	int (*store_write)(void *store, uint32_t tenant, const uint8_t *topic, size_t len,
	                   struct bw_msg *msg);
	/* Deletes a deleted tenant's retained messages from the store (worker 0 calls it). */
	int (*store_purge)(void *store, uint32_t tenant);
	/*
	 * Persistent sessions in Redis (node/state/sessions.h: this worker's
	 * calls, on its own Redis client; NULL: sessions live here and in
	 * the snapshot). Every CONNECT claims its session there before
	 * CONNACK and resumes what Redis holds, so a session moves with its
	 * client from node to node; the session's record (subscriptions,
	 * will, expiry) is written when it changes and when the client goes;
	 * QoS 1/2 messages of persistent sessions are pushed, marked and
	 * acknowledged there as durability says (enum bw_config_durability).
	 * A session another node took is let go: its connection ends (0x8E).
	 * node_id is this node's (BW_KEYS_NODE_LEN hex digits).
	 */
	struct bw_sessions *sessions;
	uint32_t durability;
	const char *node_id;
	/*
	 * Called when a publisher fed a congested subscriber (its output
	 * queue above the soft limit, or its session queue half full): the
	 * worker stops reading that publisher until bw_broker_congested()
	 * says no subscriber is congested any more. May be NULL.
	 */
	void (*pause)(void *conn_user);
};

/*
 * A broker for the configured listeners, or NULL (errno: ENOMEM, or
 * ENOENT for a listener whose tenant the hub does not know).
 */
struct bw_broker *bw_broker_new(const struct bw_broker_config *cfg);

/*
 * Frees every session, message and index; NULLs *b. Wills still waiting
 * are dropped: bw_broker_shutdown() first publishes what must go out.
 */
void bw_broker_free(struct bw_broker **b);

/*
 * The node is stopping and its clients were closed: publishes the wills
 * that are due (no delay, or their session ends with the connection) and
 * ends the sessions whose expiry is 0. Persistent sessions, with any
 * delayed will, stay for the snapshot.
 */
void bw_broker_shutdown(struct bw_broker *b);

/*
 * Routes a letter another worker posted to this one (BW_LETTER_MSG or
 * BW_LETTER_SHARE), consuming it.
 */
void bw_broker_mail(struct bw_broker *b, uintptr_t letter);

/*
 * The counter of output bytes queued for all the broker's connections:
 * the worker puts it in their output queue limits (bw_outq_limits.pool).
 */
size_t *bw_broker_out_pool(struct bw_broker *b);

/* Frees a letter without routing it (the node is going away). */
void bw_broker_mail_drop(uintptr_t letter);

/* The connection operations for clients of MQTT listener i. */
const struct bw_conn_ops *bw_broker_ops(struct bw_broker *b, uint32_t listener);

/*
 * Fires due wills, ends expired sessions and publishes the $SYS statistics
 * when they are due; call often (every 100 ms).
 */
void bw_broker_tick(struct bw_broker *b, uint64_t now_ms);

/*
 * Takes the policy and the tenancy snapshot in force now, as the next tick
 * would (connected clients re-checked): an admin change is then in force
 * here when its command answers.
 */
void bw_broker_sync(struct bw_broker *b);

/*
 * Whether a connected subscriber is still congested, or letters to other
 * workers wait in this worker's overflow. Walks only the subscribers found
 * congested since the last call and forgets those that drained (or went
 * away), so it is cheap to call after every send. A subscriber congested
 * for longer than BW_BROKER_STALL_MS is deemed stalled (a client that
 * stopped acknowledging, say): it no longer holds publishers back, and its
 * session queue overflows by its policy instead, counted.
 */
#define BW_BROKER_STALL_MS 5000
bool bw_broker_congested(struct bw_broker *b);

/* ---- snapshots (node/core/snapshot.c) ---------------------------------- */

/* A persistent session as a snapshot saves and restores it. */
struct bw_session_info {
	uint32_t tenant;
	struct bw_str client_id;
	uint32_t expiry_s;      /* Session Expiry Interval; UINT32_MAX: never */
	uint64_t expires_at_ms; /* offline: when it ends; 0: no deadline */
	struct bw_msg *will;    /* NULL: none */
	uint32_t will_delay_s;
	uint32_t will_expiry_s; /* the will's Message Expiry Interval; 0: none */
	uint64_t will_at_ms;    /* offline: when the will goes out; 0: not due */
	struct bw_session *state;
	void *handle; /* the broker's */
};

/*
 * Calls fn for each persistent session (expiry above 0, connected or
 * not) until it returns non-zero, which is returned.
 */
int bw_broker_sessions(struct bw_broker *b, int (*fn)(void *arg, const struct bw_session_info *s),
                       void *arg);

/* Walks the subscriptions of a session from bw_broker_sessions(). */
int bw_broker_session_subs(struct bw_broker *b, const struct bw_session_info *s, bw_sub_each_fn fn,
                           void *arg);

/*
 * Restores an offline session (its home must be this worker; no session
 * of that client id may exist): takes a reference to si->will. Returns the
 * session state to refill (inflight, queue), or NULL (errno EEXIST,
 * ENOMEM).
 */
struct bw_session *bw_broker_session_restore(struct bw_broker *b, const struct bw_session_info *si);

/* Restores one subscription of a restored session; 0 or -errno. */
int bw_broker_sub_restore(struct bw_broker *b, struct bw_session *state, const uint8_t *filter,
                          size_t len, const struct bw_sub_opts *o);

/*
 * Another node took (or dropped) the session of tenant's client id with
 * token (its takeover note): the session here, if it holds an older token,
 * is let go without its will, its connection ended with 0x8E. On the
 * broker's worker thread.
 */
void bw_broker_session_taken(struct bw_broker *b, const char *tenant, struct bw_str id,
                             uint64_t token);

/* ---- what the admin socket asks (on the broker's worker thread) ---------------- */

/* A session, connected or not, as the admin socket shows it. */
struct bw_broker_client {
	struct bw_str client_id;
	const char *user; /* who authenticated; NULL: anonymous */
	bool connected;
	bool persistent;        /* outlives its connection (expiry above 0) */
	uint8_t version;        /* the connection's protocol level (4, 5); 0: offline */
	uint32_t expiry_s;      /* Session Expiry Interval; UINT32_MAX: never */
	uint64_t expires_at_ms; /* offline: when it ends; 0: no deadline */
	uint32_t subscriptions, queued, inflight;
	bool will;
	void *handle; /* for bw_broker_client_subs(), during the same call */
};

/*
 * Calls fn for each session of tenant whose client id matches glob
 * (fnmatch(3); NULL: every one) until fn returns non-zero, which is
 * returned. A broker holds the sessions whose client ids are at home on
 * its worker (bw_hub_home()): ask every worker for the node's.
 */
int bw_broker_clients(struct bw_broker *b, uint32_t tenant, const char *glob,
                      int (*fn)(void *arg, const struct bw_broker_client *c), void *arg);

/* The session of client id in tenant: 0 with *out, or -ENOENT. */
int bw_broker_client(struct bw_broker *b, uint32_t tenant, struct bw_str id,
                     struct bw_broker_client *out);

/* Walks the subscriptions of a session the two calls above gave. */
int bw_broker_client_subs(struct bw_broker *b, const struct bw_broker_client *c, bw_sub_each_fn fn,
                          void *arg);

/*
 * Disconnects the client of id in tenant (5.0: DISCONNECT 0x98) and, with
 * discard, ends its session too, with its will. Returns what was done
 * (BW_BROKER_KICKED: it was connected; BW_BROKER_DISCARDED: its session
 * ends), or -ENOENT when tenant has no session of that id here.
 */
/*
 * Clears the retained message of topic (a name) of tenant, as a retained
 * PUBLISH with an empty payload would, store included: 0, -ENOBUFS when
 * the store cannot take the write now (Redis down past its queue), or
 * -errno.
 */
int bw_broker_retained_clear(struct bw_broker *b, uint32_t tenant, const uint8_t *topic,
                             size_t len);

#define BW_BROKER_KICKED    1
#define BW_BROKER_DISCARDED 2
int bw_broker_kick(struct bw_broker *b, uint32_t tenant, struct bw_str id, bool discard);

/*
 * The node drains: every connected client is disconnected (5.0: DISCONNECT
 * 0x9C, Use another server; 3.1.1: closed) and every CONNECT from now on is
 * refused the same way (3.1.1: code 3). Sessions stay, with their wills,
 * for the snapshot or another node. Returns how many were disconnected.
 */
uint32_t bw_broker_drain(struct bw_broker *b);

/*
 * Prometheus text of every tenant's counters, summed over the hub's
 * workers, into buf; returns its length.
 */
size_t bw_broker_metrics(struct bw_hub *h, char *buf, size_t cap);

#endif
