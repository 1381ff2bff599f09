/*
 * The tenancy service: owns a tenancy store (tenancy/store.h; the embedded
 * file or PostgreSQL) and the thread it runs on, keeps the snapshot in
 * force, and tells the node about every change.
 *
 *   - bw_tenancy_service_current() hands any thread, workers included, the
 *     snapshot in force with a reference of its own: a mutex held for a
 *     pointer copy and a reference count increment, never across I/O.
 *     Release it with bw_tenancy_release().
 *   - Writes (bw_tenancy_service_write() and the helpers below) block on
 *     the store: call them from admin threads, never from a worker. Each
 *     is checked field by field, then applied whole or not at all; when it
 *     returns 0 the change is durable and current() already shows it (for
 *     PostgreSQL: unless the service lost its connection meanwhile, when
 *     it shows once it is back).
 *   - on_change(arg, snap, delta) runs on the service thread, one call at a
 *     time, in version order, after snap is in force: for writes through
 *     this service, for changes another node or plain SQL made
 *     (PostgreSQL), and after every full load (start, reconnect) that
 *     found a difference. snap and delta are borrowed for the call (take a
 *     reference to keep snap). It must not call the write functions (they
 *     wait for this thread).
 *   - With PostgreSQL down the snapshot in force stays; status says down,
 *     with the error; the service reconnects on its own with exponential
 *     backoff and reloads everything.
 */
#ifndef BW_TENANCY_SERVICE_H
#define BW_TENANCY_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "tenancy/model.h"
#include "tenancy/store.h"

struct bw_tenancy_service;

struct bw_tenancy_service_cfg {
	/* The embedded store's directory (tenancy.json), used when postgres_url is NULL. */
	const char *state_dir;
	/* The PostgreSQL store: "postgresql://user@host:port/db" or a conninfo string. */
	const char *postgres_url;
	/* start waits this long for the first load from PostgreSQL (0: not at all). */
	int start_wait_ms;
	int connect_timeout_ms; /* PostgreSQL; 0 = 5000 */
	int backoff_max_ms;     /* PostgreSQL reconnect backoff cap; 0 = 5000 */
	int write_wait_ms;      /* a write waits this long for its snapshot; 0 = 10000 */
	void (*on_change)(void *arg, const struct bw_tenancy *snap,
	                  const struct bw_tenancy_delta *delta);
	void *on_change_arg;
	/* One line for the log (level 0 error, 1 warning, 2 info); NULL: none. */
	void (*log)(void *arg, int level, const char *msg);
	void *log_arg;
};

/*
 * Opens the store and starts the service thread. Returns 0 with *out, or
 * -errno with err[0..cap) saying why: a bad configuration, a state_dir or
 * tenancy.json that cannot be read, a damaged tenancy.json (naming the file
 * and the position). PostgreSQL being down is not an error: the service
 * starts with an empty snapshot (every tenant unknown: fail closed) and
 * keeps trying; start_wait_ms bounds how long start waits for it.
 */
int bw_tenancy_service_start(const struct bw_tenancy_service_cfg *cfg,
                             struct bw_tenancy_service **out, char *err, size_t cap);

/* Stops the thread, closes the store, frees *svc and NULLs it. NULL is fine. */
void bw_tenancy_service_stop(struct bw_tenancy_service **svc);

/* The snapshot in force with a new reference (never NULL). Any thread; never waits on I/O. */
struct bw_tenancy *bw_tenancy_service_current(struct bw_tenancy_service *svc);

/* Drops a snapshot reference from current() (bw_tenancy_release()). */
void bw_tenancy_service_release(struct bw_tenancy **snap);

/*
 * Reads the store again (SIGHUP): the embedded file, edited by hand, is
 * parsed and put in force whole, or refused (err names the file and the
 * position) leaving the snapshot in force. PostgreSQL keeps itself
 * current: nothing to do. Returns 0 or -errno. Not on the service thread.
 */
int bw_tenancy_service_reload(struct bw_tenancy_service *svc, char *err, size_t cap);

/* Fills *out for /readyz and metrics. Any thread. */
void bw_tenancy_service_status(struct bw_tenancy_service *svc, struct bw_tenancy_status *out);

/*
 * Applies one write. Returns 0, or -errno with err[0..cap) saying what and
 * why: -EINVAL (a field; the message names it), -ENOENT (no such tenant,
 * group or principal), -EEXIST (a hostname or CA another tenant has),
 * -EIO, -ECONNREFUSED, -ETIMEDOUT (the store failed), -ENOMEM.
 */
int bw_tenancy_service_write(struct bw_tenancy_service *svc, const struct bw_tenancy_op *op,
                             char *err, size_t cap);

/* The writes, one function each (see enum bw_tenancy_op_kind). */
int bw_tenancy_service_tenant_put(struct bw_tenancy_service *svc, const struct bw_tenant *t,
                                  char *err, size_t cap);
int bw_tenancy_service_tenant_delete(struct bw_tenancy_service *svc, const char *tenant, char *err,
                                     size_t cap);
int bw_tenancy_service_tenant_set_status(struct bw_tenancy_service *svc, const char *tenant,
                                         enum bw_tenant_status status, char *err, size_t cap);
int bw_tenancy_service_tenant_set_anonymous(struct bw_tenancy_service *svc, const char *tenant,
                                            bool allow, char *err, size_t cap);
int bw_tenancy_service_tenant_set_quotas(struct bw_tenancy_service *svc, const char *tenant,
                                         const struct bw_quotas *q, char *err, size_t cap);
int bw_tenancy_service_tenant_set_sni(struct bw_tenancy_service *svc, const char *tenant,
                                      const char *const *hosts, size_t n, char *err, size_t cap);
int bw_tenancy_service_tenant_set_ca(struct bw_tenancy_service *svc, const char *tenant,
                                     const char *ca_pem, char *err, size_t cap);
/* tenant_claim: the tenant's own jwt_tenant_claim; NULL or "": the node's tenant_claim. */
int bw_tenancy_service_tenant_set_jwt(struct bw_tenancy_service *svc, const char *tenant,
                                      const char *const *issuers, size_t issuers_n,
                                      const char *const *audiences, size_t audiences_n,
                                      const char *jwks, const char *tenant_claim, char *err,
                                      size_t cap);
int bw_tenancy_service_group_put(struct bw_tenancy_service *svc, const struct bw_group *g,
                                 char *err, size_t cap);
int bw_tenancy_service_group_delete(struct bw_tenancy_service *svc, const char *tenant,
                                    const char *name, char *err, size_t cap);
int bw_tenancy_service_principal_put(struct bw_tenancy_service *svc, const struct bw_principal *p,
                                     char *err, size_t cap);
int bw_tenancy_service_principal_delete(struct bw_tenancy_service *svc, const char *tenant,
                                        const char *name, char *err, size_t cap);
int bw_tenancy_service_principal_set_enabled(struct bw_tenancy_service *svc, const char *tenant,
                                             const char *name, bool enabled, char *err, size_t cap);
int bw_tenancy_service_principal_set_groups(struct bw_tenancy_service *svc, const char *tenant,
                                            const char *name, const char *const *groups, size_t n,
                                            char *err, size_t cap);

#endif
