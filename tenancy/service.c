/*
 * The tenancy service (service.h): the snapshot in force behind a mutex
 * held only for a pointer swap or a reference, a thread that polls the
 * store's descriptors and an eventfd, publication with deltas, and the
 * write helpers.
 *
 * Publishing (service thread only, so versions and callbacks are ordered):
 *   1. the store hands over a snapshot nobody else holds;
 *   2. it is stamped with the version after the current one and diffed
 *      against it; an empty delta drops it (nothing changed);
 *   3. under the mutex the pointer is swapped; readers that took the old
 *      one keep it until they release it;
 *   4. on_change runs with the new snapshot and the delta, no lock held.
 */
#include "tenancy/service.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tenancy/model_build.h"

#define POLL_FDS_MAX 8

struct bw_tenancy_service {
	struct bw_tenancy_service_cfg cfg;
	const struct bw_tenancy_store_ops *ops;
	struct bw_tenancy_store *store;
	struct bw_tenancy_store_host host;
	pthread_t thread;
	bool started;
	int evfd;
	atomic_bool stop;

	pthread_mutex_t cur_mu; /* guards cur and the counters below */
	pthread_cond_t cur_cond;
	struct bw_tenancy *cur;
	uint64_t publishes;

	pthread_mutex_t write_mu; /* one write at a time */
};

static void svc_log(void *arg, int level, const char *msg)
{
	struct bw_tenancy_service *s = arg;

	if (s->cfg.log)
		s->cfg.log(s->cfg.log_arg, level, msg);
}

static struct bw_tenancy *svc_current(void *arg)
{
	return bw_tenancy_service_current(arg);
}

static void svc_wake(void *arg)
{
	struct bw_tenancy_service *s = arg;
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so a wakeup is pending anyway. */
	if (write(s->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		svc_log(s, 0, "tenancy: eventfd write failed");
}

static void svc_publish(void *arg, struct bw_tenancy *snap, bool full)
{
	struct bw_tenancy_service *s = arg;
	struct bw_tenancy_delta *delta = NULL;
	struct bw_tenancy *old;

	/* Only this thread swaps cur, so reading it without the lock here is safe. */
	old = s->cur;
	bw__tenancy_set_version(snap, bw_tenancy_version(old) + 1);
	if (bw_tenancy_diff(old, snap, &delta) != 0) {
		svc_log(s, 0, "tenancy: out of memory computing a change; snapshot kept as it was");
		bw_tenancy_release(&snap);
		return;
	}
	if (delta->n == 0) {
		bw_tenancy_delta_free(&delta);
		bw_tenancy_release(&snap);
		return;
	}
	delta->full = full;
	pthread_mutex_lock(&s->cur_mu);
	s->cur = snap;
	s->publishes++;
	pthread_cond_broadcast(&s->cur_cond);
	pthread_mutex_unlock(&s->cur_mu);
	if (s->cfg.on_change)
		s->cfg.on_change(s->cfg.on_change_arg, snap, delta);
	bw_tenancy_delta_free(&delta);
	bw_tenancy_release(&old);
}

static void *svc_main(void *arg)
{
	struct bw_tenancy_service *s = arg;
	struct pollfd fds[POLL_FDS_MAX + 1];

	while (!atomic_load(&s->stop)) {
		int timeout = -1;
		size_t n = s->ops->poll_fds(s->store, fds + 1, POLL_FDS_MAX, &timeout);
		fds[0] = (struct pollfd){ .fd = s->evfd, .events = POLLIN };
		if (poll(fds, n + 1, timeout) < 0 && errno != EINTR) {
			svc_log(s, 0, "tenancy: poll failed");
			for (size_t i = 0; i <= n; i++)
				fds[i].revents = 0;
		}
		if (fds[0].revents & POLLIN) {
			uint64_t v;
			if (read(s->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				svc_log(s, 0, "tenancy: eventfd read failed");
		}
		if (atomic_load(&s->stop))
			break;
		s->ops->run(s->store, fds + 1, n);
	}
	return NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bw_tenancy_service_start(const struct bw_tenancy_service_cfg *cfg,
                             struct bw_tenancy_service **out, char *err, size_t cap)
{
	struct bw_tenancy_service *s;
	struct bw_tenancy_store_cfg sc = { 0 };
	int rc;

	*out = NULL;
	if (!cfg->postgres_url && !cfg->state_dir) {
		snprintf(err, cap, "tenancy: neither state_dir nor a PostgreSQL URL is set");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, cap, "tenancy: out of memory");
		return -ENOMEM;
	}
	s->cfg = *cfg;
	s->ops = cfg->postgres_url ? &bw_tenancy_store_pg : &bw_tenancy_store_file;
	s->host = (struct bw_tenancy_store_host){ .arg = s,
		                                  .current = svc_current,
		                                  .publish = svc_publish,
		                                  .wake = svc_wake,
		                                  .log = svc_log };
	pthread_mutex_init(&s->cur_mu, NULL);
	pthread_cond_init(&s->cur_cond, NULL);
	pthread_mutex_init(&s->write_mu, NULL);
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->cur = bw_tenancy_empty();
	if (s->evfd < 0 || !s->cur) {
		rc = s->evfd < 0 ? -errno : -ENOMEM;
		snprintf(err, cap, "tenancy: %s", strerror(-rc));
		goto fail;
	}
	sc.state_dir = cfg->state_dir;
	sc.postgres_url = cfg->postgres_url;
	sc.connect_timeout_ms = cfg->connect_timeout_ms;
	sc.backoff_max_ms = cfg->backoff_max_ms;
	sc.write_wait_ms = cfg->write_wait_ms;
	rc = s->ops->open(&sc, &s->host, &s->store, err, cap);
	if (rc != 0)
		goto fail;
	rc = -pthread_create(&s->thread, NULL, svc_main, s);
	if (rc != 0) {
		snprintf(err, cap, "tenancy: cannot start the service thread: %s", strerror(-rc));
		goto fail;
	}
	s->started = true;
	svc_wake(s); /* the store may have something to do at once (the file store: publish) */
	/* The file store is loaded already: wait for it to be in force. */
	int64_t wait = cfg->postgres_url ? cfg->start_wait_ms : 10000;
	int64_t deadline = now_ms() + (wait > 0 ? wait : 0);
	for (;;) {
		struct bw_tenancy_status st;
		s->ops->status(s->store, &st);
		if (st.loaded || now_ms() >= deadline)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	}
	*out = s;
	return 0;
fail:
	bw_tenancy_service_stop(&s);
	return rc;
}

void bw_tenancy_service_stop(struct bw_tenancy_service **sp)
{
	struct bw_tenancy_service *s = sp ? *sp : NULL;

	if (!s)
		return;
	if (s->started) {
		atomic_store(&s->stop, true);
		svc_wake(s);
		pthread_join(s->thread, NULL);
	}
	if (s->store)
		s->ops->close(&s->store);
	if (s->evfd >= 0)
		close(s->evfd);
	bw_tenancy_release(&s->cur);
	pthread_mutex_destroy(&s->cur_mu);
	pthread_cond_destroy(&s->cur_cond);
	pthread_mutex_destroy(&s->write_mu);
	free(s);
	*sp = NULL;
}

struct bw_tenancy *bw_tenancy_service_current(struct bw_tenancy_service *s)
{
	struct bw_tenancy *snap;

	pthread_mutex_lock(&s->cur_mu);
	snap = bw_tenancy_ref(s->cur);
	pthread_mutex_unlock(&s->cur_mu);
	return snap;
}

void bw_tenancy_service_release(struct bw_tenancy **snap)
{
	bw_tenancy_release(snap);
}

void bw_tenancy_service_status(struct bw_tenancy_service *s, struct bw_tenancy_status *out)
{
	struct bw_tenancy *snap;

	memset(out, 0, sizeof(*out));
	s->ops->status(s->store, out);
	pthread_mutex_lock(&s->cur_mu);
	snap = bw_tenancy_ref(s->cur);
	out->publishes = s->publishes;
	pthread_mutex_unlock(&s->cur_mu);
	out->version = bw_tenancy_version(snap);
	out->tenants = bw_tenancy_tenant_count(snap);
	out->groups = bw_tenancy_group_count(snap);
	out->principals = bw_tenancy_principal_count(snap);
	bw_tenancy_release(&snap);
}

int bw_tenancy_service_write(struct bw_tenancy_service *s, const struct bw_tenancy_op *op,
                             char *err, size_t cap)
{
	char msg[512];
	int rc;

	if (err && cap)
		err[0] = '\0';
	rc = bw_tenancy_op_check(op, msg, sizeof(msg));
	if (rc == 0) {
		pthread_mutex_lock(&s->write_mu);
		rc = s->ops->write(s->store, op, msg, sizeof(msg));
		pthread_mutex_unlock(&s->write_mu);
	}
	if (rc != 0 && err && cap)
		snprintf(err, cap, "%s: %s", bw_tenancy_op_name(op->kind), msg);
	return rc;
}

int bw_tenancy_service_reload(struct bw_tenancy_service *s, char *err, size_t cap)
{
	int rc = 0;
	if (err && cap)
		err[0] = '\0';
	if (!s->ops->reload)
		return 0;
	pthread_mutex_lock(&s->write_mu); /* not in the middle of a write */
	rc = s->ops->reload(s->store, err, cap);
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

/* ---- one function a write ----------------------------------------------------------- */

static int op_write(struct bw_tenancy_service *s, enum bw_tenancy_op_kind kind, const char *tenant,
                    const char *name, const struct bw_tenant *t, const struct bw_principal *p,
                    char *err, size_t cap)
{
	struct bw_tenancy_op op = { .kind = kind, .tenant = tenant, .name = name, .t = t, .p = p };

	return bw_tenancy_service_write(s, &op, err, cap);
}

int bw_tenancy_service_tenant_put(struct bw_tenancy_service *s, const struct bw_tenant *t,
                                  char *err, size_t cap)
{
	return op_write(s, BW_OP_TENANT_PUT, t->name, NULL, t, NULL, err, cap);
}

int bw_tenancy_service_tenant_delete(struct bw_tenancy_service *s, const char *tenant, char *err,
                                     size_t cap)
{
	return op_write(s, BW_OP_TENANT_DELETE, tenant, NULL, NULL, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_status(struct bw_tenancy_service *s, const char *tenant,
                                         enum bw_tenant_status status, char *err, size_t cap)
{
	struct bw_tenant t = { .status = status };

	return op_write(s, BW_OP_TENANT_STATUS, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_anonymous(struct bw_tenancy_service *s, const char *tenant,
                                            bool allow, char *err, size_t cap)
{
	struct bw_tenant t = { .allow_anonymous = allow };

	return op_write(s, BW_OP_TENANT_ANONYMOUS, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_quotas(struct bw_tenancy_service *s, const char *tenant,
                                         const struct bw_quotas *q, char *err, size_t cap)
{
	struct bw_tenant t = { .quotas = *q };

	return op_write(s, BW_OP_TENANT_QUOTAS, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_sni(struct bw_tenancy_service *s, const char *tenant,
                                      const char *const *hosts, size_t n, char *err, size_t cap)
{
	struct bw_tenant t = { .sni = hosts, .sni_n = n };

	return op_write(s, BW_OP_TENANT_SNI, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_ca(struct bw_tenancy_service *s, const char *tenant,
                                     const char *ca_pem, char *err, size_t cap)
{
	struct bw_tenant t = { .ca_pem = ca_pem };

	return op_write(s, BW_OP_TENANT_CA, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_tenant_set_jwt(struct bw_tenancy_service *s, const char *tenant,
                                      const char *const *issuers, size_t issuers_n,
                                      const char *const *audiences, size_t audiences_n,
                                      const char *jwks, const char *tenant_claim, char *err,
                                      size_t cap)
{
	struct bw_tenant t = { .jwt_issuers = issuers,
		               .jwt_issuers_n = issuers_n,
		               .jwt_audiences = audiences,
		               .jwt_audiences_n = audiences_n,
		               .jwks = jwks,
		               .jwt_tenant_claim = tenant_claim };

	return op_write(s, BW_OP_TENANT_JWT, tenant, NULL, &t, NULL, err, cap);
}

int bw_tenancy_service_group_put(struct bw_tenancy_service *s, const struct bw_group *g, char *err,
                                 size_t cap)
{
	struct bw_tenancy_op op = {
		.kind = BW_OP_GROUP_PUT, .tenant = g->tenant, .name = g->name, .g = g
	};

	return bw_tenancy_service_write(s, &op, err, cap);
}

int bw_tenancy_service_group_delete(struct bw_tenancy_service *s, const char *tenant,
                                    const char *name, char *err, size_t cap)
{
	return op_write(s, BW_OP_GROUP_DELETE, tenant, name, NULL, NULL, err, cap);
}

int bw_tenancy_service_principal_put(struct bw_tenancy_service *s, const struct bw_principal *p,
                                     char *err, size_t cap)
{
	return op_write(s, BW_OP_PRINCIPAL_PUT, p->tenant, p->name, NULL, p, err, cap);
}

int bw_tenancy_service_principal_delete(struct bw_tenancy_service *s, const char *tenant,
                                        const char *name, char *err, size_t cap)
{
	return op_write(s, BW_OP_PRINCIPAL_DELETE, tenant, name, NULL, NULL, err, cap);
}

int bw_tenancy_service_principal_set_enabled(struct bw_tenancy_service *s, const char *tenant,
                                             const char *name, bool enabled, char *err, size_t cap)
{
	struct bw_principal p = { .enabled = enabled };

	return op_write(s, BW_OP_PRINCIPAL_ENABLED, tenant, name, NULL, &p, err, cap);
}

int bw_tenancy_service_principal_set_groups(struct bw_tenancy_service *s, const char *tenant,
                                            const char *name, const char *const *groups, size_t n,
                                            char *err, size_t cap)
{
	struct bw_principal p = { .groups = groups, .groups_n = n };

	return op_write(s, BW_OP_PRINCIPAL_GROUPS, tenant, name, NULL, &p, err, cap);
}
