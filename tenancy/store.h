/*
 * The tenancy store interface: one operations table, implemented by the
 * embedded file store (tenancy/store_file.c) and the PostgreSQL store
 * (tenancy/store_pg.c), with the same semantics. The tenancy service
 * (tenancy/service.h) owns a store and the thread it runs on; nothing else
 * calls these directly except tests and tools.
 *
 * A store:
 *   - loads the whole model into a new snapshot (load);
 *   - applies writes (struct bw_tenancy_op), each validated and atomic: it
 *     takes effect whole or not at all, and when it returns 0 the change is
 *     durable and the service's snapshot already shows it;
 *   - tells the service about changes, its own and (PostgreSQL) those of
 *     other nodes, by building a new snapshot on the service thread and
 *     handing it to host->publish(), which computes the delta and calls the
 *     service's change callback;
 *   - reports its status (struct bw_tenancy_status).
 *
 * Threads: open, close and run are called on the service thread (open and
 * close also before it starts and after it ends); write and load on any
 * thread but a worker's, one write at a time (the service serializes
 * them), concurrently with run.
 */
#ifndef BW_TENANCY_STORE_H
#define BW_TENANCY_STORE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenancy/model.h"

struct bw_tenancy_store;

/* The writes an admin command can make. */
enum bw_tenancy_op_kind {
	BW_OP_TENANT_PUT,        /* t: create or replace (keeps groups and principals) */
	BW_OP_TENANT_DELETE,     /* tenant: with its groups and principals */
	BW_OP_TENANT_STATUS,     /* tenant, t->status */
	BW_OP_TENANT_ANONYMOUS,  /* tenant, t->allow_anonymous */
	BW_OP_TENANT_QUOTAS,     /* tenant, t->quotas */
	BW_OP_TENANT_SNI,        /* tenant, t->sni, t->sni_n */
	BW_OP_TENANT_CA,         /* tenant, t->ca_pem */
	BW_OP_TENANT_JWT,        /* tenant, t->jwt_issuers, _audiences, jwks, jwt_tenant_claim */
	BW_OP_GROUP_PUT,         /* g: create or replace */
	BW_OP_GROUP_DELETE,      /* tenant, name: also leaves every principal's list */
	BW_OP_PRINCIPAL_PUT,     /* p: create or replace; its groups must exist */
	BW_OP_PRINCIPAL_DELETE,  /* tenant, name */
	BW_OP_PRINCIPAL_ENABLED, /* tenant, name, p->enabled */
	BW_OP_PRINCIPAL_GROUPS,  /* tenant, name, p->groups, p->groups_n */
};

/*
 * One write. tenant and name say which record (name: a group's or
 * principal's); t, g or p carry the values, and of t and p only the fields
 * the kind names are read (for the *_PUT kinds: all of them, and their own
 * tenant and name fields instead of tenant and name).
 */
struct bw_tenancy_op {
	enum bw_tenancy_op_kind kind;
	const char *tenant;
	const char *name;
	const struct bw_tenant *t;
	const struct bw_group *g;
	const struct bw_principal *p;
};

/* "tenant put", "principal groups", ... for messages. */
const char *bw_tenancy_op_name(enum bw_tenancy_op_kind kind);

/*
 * Checks op's fields (not whether its records exist). Returns 0 or -EINVAL
 * with err saying which field and why.
 */
int bw_tenancy_op_check(const struct bw_tenancy_op *op, char *err, size_t cap);

/* For /readyz and metrics. */
struct bw_tenancy_status {
	const char *backend;  /* "file" or "postgres" */
	bool up;              /* the store answers: file read, or database connected */
	bool loaded;          /* a snapshot read from the store is in force */
	char last_error[256]; /* the latest error ("" when none), kept after recovery */
	uint64_t version;     /* of the snapshot in force */
	size_t tenants, groups, principals;
	uint64_t publishes;     /* snapshots published */
	uint64_t reloads;       /* full loads (start, reconnect) */
	uint64_t notifications; /* PostgreSQL notifications received */
	uint64_t reconnects;    /* PostgreSQL connections made after the first */
	uint64_t errors;        /* failed loads, connections, queries */
	uint64_t skipped;       /* rows refused when loaded (bad data put by SQL) */
	uint64_t clashes;       /* SNI hostnames and CAs two tenants claim (resolve to none) */
};

/* What a store may ask of its service. */
struct bw_tenancy_store_host {
	void *arg;
	/* Any thread: the snapshot in force, with a reference for the caller. */
	struct bw_tenancy *(*current)(void *arg);
	/*
	 * Service thread only: makes snap (consumed; the store keeps no
	 * reference) the snapshot in force and calls the change callback with
	 * the delta from the previous one. full: everything was read again.
	 */
	void (*publish)(void *arg, struct bw_tenancy *snap, bool full);
	/* Any thread: has the service thread call run() soon. */
	void (*wake)(void *arg);
	/* Any thread: one line for the node's log (level: 0 error, 1 warning, 2 info). */
	void (*log)(void *arg, int level, const char *msg);
};

struct bw_tenancy_store_cfg {
	const char *state_dir;    /* file: where tenancy.json lives */
	const char *postgres_url; /* postgres: a libpq URL or conninfo string */
	int connect_timeout_ms;   /* postgres: 0 = 5000 */
	int backoff_max_ms;       /* postgres: reconnect backoff cap; 0 = 5000 */
	int write_wait_ms;        /* a write waits this long for its snapshot; 0 = 10000 */
};

struct bw_tenancy_store_ops {
	const char *name;
	/*
	 * Opens a store for cfg; host stays valid until close. The file store
	 * reads its file here (a damaged file fails the open, naming the file
	 * and the position); the PostgreSQL store only checks the URL and
	 * connects from run(). Returns 0 or -errno with err.
	 */
	int (*open)(const struct bw_tenancy_store_cfg *cfg,
	            const struct bw_tenancy_store_host *host, struct bw_tenancy_store **out,
	            char *err, size_t cap);
	/* Reads the whole model into *out (one reference, the caller's). Blocks. */
	int (*load)(struct bw_tenancy_store *st, struct bw_tenancy **out, char *err, size_t cap);
	/* Applies one write (checked already). Blocks until it is published. */
	int (*write)(struct bw_tenancy_store *st, const struct bw_tenancy_op *op, char *err,
	             size_t cap);
	/*
	 * Service thread: the descriptors to poll (at most cap; returns how
	 * many) and how long at most until run() must be called (*timeout_ms,
	 * -1: no limit, lower it only).
	 */
	size_t (*poll_fds)(struct bw_tenancy_store *st, struct pollfd *fds, size_t cap,
	                   int *timeout_ms);
	/* Service thread: does what is due (fds: the polled ones, with revents). */
	void (*run)(struct bw_tenancy_store *st, const struct pollfd *fds, size_t n);
	/*
	 * Any thread but the service's: reads the store again and has the
	 * service publish what it found (a full load), or fails leaving the
	 * snapshot in force. May be NULL: the store keeps itself current
	 * (PostgreSQL's notifications).
	 */
	int (*reload)(struct bw_tenancy_store *st, char *err, size_t cap);
	/* Any thread: fills *out (backend, up, last_error, counters; not the counts). */
	void (*status)(struct bw_tenancy_store *st, struct bw_tenancy_status *out);
	/* Service thread, or after it ended: closes *st and NULLs it. */
	void (*close)(struct bw_tenancy_store **st);
};

extern const struct bw_tenancy_store_ops bw_tenancy_store_file;
extern const struct bw_tenancy_store_ops bw_tenancy_store_pg;

/*
 * Applies op to builder b (internal, for the file store and tests): the
 * partial kinds copy the record as b has it and change the named fields.
 * Returns 0 or -EINVAL, -ENOENT, -ENOMEM with err.
 */
struct bw__tbuild;
int bw__tenancy_op_apply(struct bw__tbuild *b, const struct bw_tenancy_op *op, char *err,
                         size_t cap);

#endif
