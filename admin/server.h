/*
 * The node's admin socket (docs/admin-protocol.md): a Unix stream socket
 * served by a thread of its own. It checks each peer's credentials
 * (SO_PEERCRED), reads one JSON request a line and answers one line each,
 * in order, through the command dispatcher (admin/commands.h). Writes go
 * through the tenancy service on this thread, never on a worker's.
 *
 * Limits: BW_ADMIN_CONNS_MAX connections at once (one more is told
 * "unavailable" and closed), BW_ADMIN_LINE_MAX bytes a request (a longer
 * one gets "usage" and the connection is closed), an idle timeout.
 *
 * What the commands need from the node (its version, listeners, counters,
 * a reload) comes through struct bw_admin_node, which node/main.c fills in.
 */
#ifndef BW_ADMIN_SERVER_H
#define BW_ADMIN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tenancy/model.h"

struct bw_tenancy_service;
struct bw_admin_audit;
struct bw_admin_server;

#define BW_ADMIN_LINE_MAX      (1u << 20) /* bytes of one request, without the '\n' */
#define BW_ADMIN_CONNS_MAX     16u        /* admin connections at once */
#define BW_ADMIN_IDLE_MS       60000      /* an idle connection is closed after this */
#define BW_ADMIN_ID_NONE       UINT32_MAX /* admin_uid or admin_gid not set */
#define BW_ADMIN_LISTENERS_MAX 16u
#define BW_ADMIN_RELOAD_MAX    8u

/* ---- what the node tells the commands ---------------------------------------- */

struct bw_admin_listener {
	const char *kind;   /* "mqtt", "mqtts", "http" */
	const char *addr;   /* as configured: "127.0.0.1:1883" */
	uint16_t port;      /* bound (differs from addr's for port 0) */
	const char *tenant; /* the listener's tenant; NULL for http */
};

struct bw_admin_node_info {
	const char *version, *commit;
	const char *name; /* the host's name (a pod's name on Kubernetes) */
	uint64_t uptime_s;
	uint32_t workers;
	bool draining; /* node.drain was done */
	size_t listeners_n;
	struct bw_admin_listener listeners[BW_ADMIN_LISTENERS_MAX];
};

/* One tenant's counters on this node, summed over its workers (the hub's). */
struct bw_admin_tenant_stats {
	const char *tenant; /* lives as long as the node */
	uint64_t connections, sessions, persistent, subscriptions;
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out, dropped;
	uint64_t quota_hits, auth_failures, acl_denials;
	/* A second, over the last few seconds (0 until the node has sampled twice). */
	double msgs_in_per_s, msgs_out_per_s, bytes_in_per_s, bytes_out_per_s, dropped_per_s;
};

/* What a reload read again, each part with its outcome. */
struct bw_admin_reload {
	size_t n;
	struct {
		const char *what; /* "tls", "auth_files", "tenancy", ... */
		int rc;           /* 0 or -errno */
		char error[256];  /* why, when rc < 0 */
	} items[BW_ADMIN_RELOAD_MAX];
};

/* One subscription of a session. */
struct bw_admin_sub {
	char *filter; /* malloc'd */
	uint8_t qos, retain_handling;
	bool no_local, retain_as_published;
	uint32_t id; /* Subscription Identifier; 0: none */
};

/* A session on this node, connected or not (malloc'd strings). */
struct bw_admin_session {
	char *client_id;
	char *user; /* NULL: anonymous */
	bool connected, persistent, will;
	uint8_t version;      /* 4 (3.1.1), 5; 0: offline */
	uint32_t expiry_s;    /* UINT32_MAX: never */
	int64_t expires_in_s; /* offline with a deadline: seconds left; -1: none */
	uint32_t subscriptions, queued, inflight;
	struct bw_admin_sub *subs; /* sessions.show only */
	size_t subs_n;
};

struct bw_admin_sessions {
	struct bw_admin_session *v;
	size_t n;
	bool truncated; /* more matched than were asked for */
};

/* Frees what a sessions callback filled in and zeroes it. */
void bw_admin_sessions_free(struct bw_admin_sessions *s);

/*
 * Moves the sessions of parts[0..n) (one a worker) to the end of out, at
 * most max in all (out->truncated when some were left), and frees the
 * parts. 0, or -ENOMEM (out freed).
 */
int bw_admin_sessions_merge(struct bw_admin_sessions *out, struct bw_admin_sessions *parts,
                            size_t n, size_t max);

/* A retained message. */
struct bw_admin_retained {
	char *topic; /* malloc'd */
	size_t bytes;
	uint8_t qos;
};

/*
 * The node, for node.info, stats, config.reload and quota.show. Every
 * callback runs on the admin thread and may be NULL (that part is then
 * left out or, for reload, only the tenancy store is read again).
 */
struct bw_admin_node {
	void *arg;
	void (*info)(void *arg, struct bw_admin_node_info *out);
	/* Tenant i (0, 1, ... as the node met them): 0, or -ENOENT past the last. */
	int (*tenant_stats)(void *arg, uint32_t i, struct bw_admin_tenant_stats *out);
	/* What SIGHUP does: certificates, CRLs, auth files, JWK Sets, the tenancy store. */
	void (*reload)(void *arg, struct bw_admin_reload *out);
	/*
	 * The sessions of tenant whose client id matches glob (NULL: all), at
	 * most max, in out; or with id the one session of that exact client
	 * id, its subscriptions too. 0, or -ENOENT: the node never met the
	 * tenant (or, with id, has no such session).
	 */
	int (*sessions)(void *arg, const char *tenant, const char *glob, const char *id, size_t max,
	                struct bw_admin_sessions *out);
	/*
	 * Disconnects the client (5.0: 0x98) and with discard ends its session:
	 * BW_ADMIN_KICKED | BW_ADMIN_DISCARDED for what was done; -ENOENT: the
	 * node never met the tenant; -ESRCH: no such client or session.
	 */
	int (*kick)(void *arg, const char *tenant, const char *id, bool discard);
	/*
	 * The retained messages of tenant matching filter, at most max (the
	 * caller frees each topic and *v); -ENOENT: tenant unknown here.
	 */
	int (*retained)(void *arg, const char *tenant, const char *filter, size_t max,
	                struct bw_admin_retained **v, size_t *n, bool *truncated);
	/*
	 * Clears the retained message of topic: 0, -ENOENT (tenant unknown
	 * here), -ESRCH (none), -ENOBUFS (the Redis write queue is full).
	 */
	int (*retained_del)(void *arg, const char *tenant, const char *topic);
	/* Stops accepting and sends every client away (5.0: 0x9C); the count disconnected. */
	uint32_t (*drain)(void *arg);
	/*
	 * After a change: every broker takes the tenancy in force now, so the
	 * change is in force on this node (clients re-checked) when its
	 * command answers, not at the brokers' next tick.
	 */
	void (*sync)(void *arg);
	/* The node's quotas: what a tenant's 0 means (0 here: no limit; max_qos 0..2). */
	struct bw_quotas quotas;
};

#define BW_ADMIN_KICKED    1
#define BW_ADMIN_DISCARDED 2

/* ---- the peer check --------------------------------------------------------- */

/* A peer's credentials: SO_PEERCRED, and SO_PEERGROUPS for its groups. */
struct bw_admin_peer {
	uint32_t uid, gid;
	pid_t pid;
	const uint32_t *groups; /* supplementary groups */
	size_t groups_n;
};

/*
 * Whether peer may use the socket: uid 0, uid admin_uid, or gid admin_gid
 * as its group or one of its supplementary groups. BW_ADMIN_ID_NONE for
 * either: that way is closed.
 */
bool bw_admin_peer_allowed(const struct bw_admin_peer *peer, uint32_t admin_uid,
                           uint32_t admin_gid);

/* ---- the server ------------------------------------------------------------- */

struct bw_admin_server_cfg {
	const char *path;   /* the socket; a stale one is replaced */
	uint32_t admin_uid; /* BW_ADMIN_ID_NONE: only root (and see path's owner) */
	uint32_t admin_gid; /* BW_ADMIN_ID_NONE: none; else the socket is 0660, this group */
	struct bw_tenancy_service *tenancy;
	const struct bw_admin_node *node; /* may be NULL */
	struct bw_admin_audit *audit;     /* may be NULL: nothing audited */
	int idle_ms;                      /* 0: BW_ADMIN_IDLE_MS */
};

/*
 * Creates the socket at cfg->path (mode 0600, or 0660 with group
 * admin_gid; owned by admin_uid when it is set and the node may give it),
 * and starts the thread. A socket file nobody serves is replaced; one
 * another process serves, or a file that is no socket, is an error.
 * Returns 0 with *out, or -errno with err[0..cap) naming the path.
 * cfg's pointers must outlive the server.
 */
int bw_admin_server_start(const struct bw_admin_server_cfg *cfg, struct bw_admin_server **out,
                          char *err, size_t cap);

/* Stops the thread, closes every connection, removes the socket, frees *s, NULLs it. */
void bw_admin_server_stop(struct bw_admin_server **s);

#endif
