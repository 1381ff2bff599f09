/*
 * The `bulwark` node executable: reads the configuration (file, then
 * BULWARK_* environment variables, then --set), starts the broker and its
 * worker, and waits for signals: SIGHUP reopens the log and reloads every
 * mqtts listener's certificate, key, client CA bundle and CRL (a listener
 * whose new files are bad keeps what it had), SIGTERM and SIGINT stop the
 * node (MQTT 5 clients are told 0x8B) and exit 0.
 *
 * Exit codes: 0 clean stop, 1 the node could not start (configuration,
 * io_uring, listeners), 2 usage error.
 */
#include "admin/audit.h"
#include "admin/server.h"
#include "node/admin_queries.h"
#include "bw_version.h"
#include "node/config.h"
#include "node/core/broker.h"
#include "node/core/snapshot.h"
#include "node/jobs.h"
#include "tenancy/acl.h"
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/passwd.h"
#include "tenancy/policy.h"
#include "tenancy/service.h"
#include "tenancy/auth/password.h"
#include "node/io/features.h"
#include "node/log.h"
#include "node/net/tls.h"
#include "node/state/keys.h"
#include "node/state/master.h"
#include "node/state/sentinel.h"
#include "node/state/store.h"
#include "node/state/sessions.h"
#include "node/state/sync.h"
#include "node/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: bulwark [-c FILE] [--set KEY=VALUE]... [--check-config]\n"
	        "       bulwark --hash-password [--pbkdf2|--argon2id] < password\n"
	        "       bulwark --help-config | --version | --help\n"
	        "\n"
	        "Bulwark MQTT broker node.\n"
	        "\n"
	        "  -c, --config FILE   read the configuration from FILE (`key value` lines)\n"
	        "  --set KEY=VALUE     set one key, after the file and BULWARK_<KEY> variables\n"
	        "  --check-config      check the configuration and exit\n"
	        "  --help-config       list every configuration key with its default and exit\n"
	        "  -V, --version       show the version, libraries and io_uring support\n"
	        "  -h, --help          show this help\n"
	        "\n"
	        "See docs/configuration.md. SIGHUP reopens the log file and reloads the TLS\n"
	        "certificates, keys, CA bundles and CRLs; SIGTERM stops the node.\n");
}

static int version(void)
{
	struct bw_io_features f;

	printf("bulwark %s (%s)\n", BW_VERSION, BW_GIT_COMMIT);
	printf("liburing %s, protobuf-c %s, %s\n", BW_URING_VERSION, BW_PROTOBUFC_VERSION,
	       bw_tls_library());
	bw_io_features_probe(&f);
	if (f.ring_error) {
		printf("io_uring: unavailable on kernel %s (%s)\n", f.kernel,
		       strerror(-f.ring_error));
		return 0;
	}
	printf("io_uring on kernel %s: provided buffer rings %s, msg_ring %s, multishot %s, "
	       "single issuer %s: %s\n",
	       f.kernel, f.buf_ring ? "yes" : "no", f.msg_ring ? "yes" : "no",
	       f.multishot ? "yes" : "no", f.single_issuer ? "yes" : "no",
	       bw_io_features_sufficient(&f) ? "sufficient" : "INSUFFICIENT (need Linux 6.0+)");
	return 0;
}

/* ---- glue between the workers, their brokers and the hub ----------------- */

static const struct bw_listener_config *listeners_base;
static struct bw_hub *hub;
static struct bw_broker **brokers;
static struct bw_worker **workers;
static struct bw_tls_ctx *tls_ctx[BW_CONFIG_LISTENERS_MAX]; /* a listener's, or NULL */
static uint32_t n_workers;
static _Atomic uint32_t node_connections;
static atomic_bool started; /* workers[] is complete: metrics may read it */
static struct bw_jobs *jobs;
static struct bw_policy_slot policy; /* passwords, ACL, JWT keys; reloaded on SIGHUP */
static bool policy_ready;
static struct bw_tenancy_service *tenancy; /* tenants, groups, principals: the store */
static struct bw_admin_server *admin;      /* the admin socket; stopped first */
static struct bw_admin_audit *audit;       /* its audit log */
static struct bw_node_admin node_admin;    /* the brokers, for the admin socket's questions */
static struct stat jwks_seen; /* the jwt_jwks_file loaded last: reloaded when it changes */
static uint32_t identity[BW_CONFIG_LISTENERS_MAX]; /* a listener's tls_identity */
static struct bw_backoff *backoff;
static struct bw_jwt_policy jwt_policy;
#define JWT_LIST_MAX 16
static const char *jwt_issuers[JWT_LIST_MAX], *jwt_audiences[JWT_LIST_MAX];
/* The Redis state store, with `redis`: a store a worker, and the state thread. */
static struct bw_store **stores;
static struct bw_sessions **session_stores; /* a worker's persistent sessions in Redis */
static struct bw_sync *state_sync;
/* With redis_sentinel: the sentinels, and where they say the master is now. */
static struct bw_sentinel_config sentinel_cfg;
static struct bw_master *redis_master;
static char node_id[BW_KEYS_NODE_LEN + 1]; /* random, made at start */
#define REDIS_START_WAIT_MS 5000u          /* for the retained load before listening */
/* Job threads wake workers only while this says they run (under wake_mu). */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static bool wakeable;

static const struct bw_conn_ops *ops_for(void *arg, const struct bw_listener_config *l)
{
	return bw_broker_ops(arg, (uint32_t)(l - listeners_base));
}

static void tick(void *arg, uint64_t now_ms)
{
	bw_broker_tick(arg, now_ms);
}

static bool congested(void *arg)
{
	return bw_broker_congested(arg);
}

/* ---- the Redis state store ------------------------------------------------------ */

static bool store_may(void *store, uint32_t tenant, const uint8_t *topic, size_t len)
{
	return bw_store_may_write(store, tenant, topic, len);
}

static int store_write(void *store, uint32_t tenant, const uint8_t *topic, size_t len,
                       struct bw_msg *msg)
{
	return bw_store_write(store, tenant, topic, len, msg);
}

static int store_purge(void *store, uint32_t tenant)
{
	return bw_store_purge(store, tenant);
}

static uint64_t load_stat(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Writes the workers hold for Redis (the state thread waits for none before a reload). */
static size_t redis_held(void *arg)
{
	size_t n = 0;
	(void)arg;
	for (uint32_t i = 0; i < n_workers; i++)
		n += load_stat(&bw_store_stats(stores[i])->queued);
	return n;
}

/* Every Redis connection of the node answering: the state thread's and each worker's. */
static bool redis_up(void)
{
	bool up = load_stat(&bw_sync_stats(state_sync)->up) != 0;
	for (uint32_t i = 0; i < n_workers && up; i++)
		up = load_stat(&bw_store_stats(stores[i])->up) != 0;
	return up;
}

/*
 * A random 128-bit node id in hex: names this node's writes, so the
 * state thread knows its own changes from other nodes'.
 */
static int make_node_id(void)
{
	uint8_t b[BW_KEYS_NODE_LEN / 2];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(node_id + 2 * i, 3, "%02x", b[i]);
	return 0;
}

/* "host:port" or "[v6]:port". */
static void host_port(char *buf, size_t cap, const char *host, unsigned port)
{
	snprintf(buf, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/*
 * With `redis_sentinel`: the sentinels' names resolved, the holder of the
 * master's address made (rc points at it: every copy of rc shares it),
 * and the sentinels asked once, here on the main thread; from now on only
 * the state thread asks. None answering does not stop the start: the
 * node starts without a master, not ready, and the state thread asks
 * again every second. 0, or -1 (logged).
 */
static int sentinel_setup(const struct bw_config *cfg, struct bw_redis_config *rc)
{
	char err[BW_CONFIG_ERROR_MAX], host[BW_REDIS_HOST_MAX], addr[BW_REDIS_HOST_MAX + 8];
	struct bw_sentinel *s = NULL;
	uint16_t port = 0;
	if (bw_sentinel_parse(&sentinel_cfg, cfg->redis_sentinel, err, sizeof(err)) < 0 ||
	    bw_sentinel_resolve(&sentinel_cfg, err, sizeof(err)) < 0) {
		bw_log_error("redis_sentinel: %s", err);
		return -1;
	}
	snprintf(sentinel_cfg.password, sizeof(sentinel_cfg.password), "%s",
	         cfg->redis_sentinel_password);
	if (bw_master_new(&redis_master) < 0 || bw_sentinel_new(&s, &sentinel_cfg, NULL) < 0) {
		bw_log_error("redis: out of memory");
		return -1;
	}
	if (bw_sentinel_ask(s, host, sizeof(host), &port, err, sizeof(err)) == 0) {
		bw_master_set(redis_master, host, port, NULL, 0);
		host_port(addr, sizeof(addr), host, port);
		bw_log_info("redis: sentinel: master %s is at %s", sentinel_cfg.name, addr);
	} else {
		bw_log_warn("redis: sentinel: master %s: %s; the node starts without it and asks "
		            "again every second",
		            sentinel_cfg.name, err);
	}
	bw_sentinel_free(&s);
	memset(rc->host, 0, sizeof(rc->host)); /* redis's own host and port are not used */
	rc->port = 0;
	rc->master = redis_master;
	return 0;
}

/*
 * With `redis`: the address parsed and resolved (a host name, here on the
 * main thread, never on a worker), or the sentinels asked for it; a store
 * a worker. 0, or -1 (logged).
 */
static int redis_setup(const struct bw_config *cfg, struct bw_redis_config *rc)
{
	char err[BW_CONFIG_ERROR_MAX];
	bool sentinel = cfg->redis_sentinel[0] != '\0';
	if (bw_redis_url_parse(rc, cfg->redis, err, sizeof(err)) < 0 ||
	    (!sentinel && bw_redis_resolve(rc, err, sizeof(err)) < 0)) {
		bw_log_error("%s", err);
		return -1;
	}
	if (sentinel && sentinel_setup(cfg, rc) < 0)
		return -1;
	if (!(stores = calloc(n_workers, sizeof(*stores)))) {
		bw_log_error("redis: out of memory");
		return -1;
	}
	struct bw_store_config sc = { .redis = rc,
		                      .prefix = cfg->redis_prefix,
		                      .node = node_id,
		                      .queue_max = cfg->redis_retained_queue,
		                      .hub = hub };
	if (!(session_stores = calloc(n_workers, sizeof(*session_stores)))) {
		bw_log_error("redis: out of memory");
		return -1;
	}
	struct bw_sessions_config ssc = { .prefix = cfg->redis_prefix,
		                          .node = node_id,
		                          .held_max = cfg->redis_session_queue };
	for (uint32_t i = 0; i < n_workers; i++) {
		int r = bw_store_new(&stores[i], &sc);
		if (r == 0)
			r = bw_sessions_new(&session_stores[i], &ssc);
		if (r < 0) {
			bw_log_error("redis: %s", strerror(-r));
			return -1;
		}
	}
	return 0;
}

/* A takeover note for the session's home worker's broker. */
struct taken_call {
	struct bw_worker_call call;
	uint64_t token;
	char tenant[BW_TENANT_NAME_MAX + 1];
	uint16_t id_len;
	uint8_t id[];
};

static void taken_run(struct bw_worker_call *call, struct bw_worker *w, void *arg)
{
	struct taken_call *tc = (struct taken_call *)call;
	(void)w;
	bw_broker_session_taken(arg, tc->tenant, (struct bw_str){ tc->id, tc->id_len }, tc->token);
	free(tc);
}

/* From the state thread: another node took a session; its home worker lets it go. */
static void session_taken(void *arg, const char *tenant, const uint8_t *id, size_t id_len,
                          uint64_t token)
{
	(void)arg;
	int tid = bw_hub_tenant_find(hub, tenant);
	if (tid < 0 || id_len > UINT16_MAX || strlen(tenant) > BW_TENANT_NAME_MAX ||
	    !atomic_load_explicit(&started, memory_order_acquire))
		return; /* a tenant this node never served holds nothing here */
	struct taken_call *tc = calloc(1, sizeof(*tc) + id_len);
	if (!tc)
		return;
	tc->call.fn = taken_run;
	tc->token = token;
	memcpy(tc->tenant, tenant, strlen(tenant) + 1);
	tc->id_len = (uint16_t)id_len;
	memcpy(tc->id, id, id_len);
	bw_worker_call(workers[bw_hub_home(hub, (uint32_t)tid, id, id_len)], &tc->call);
}

/*
 * Starts the state thread and waits a while for its load of the retained
 * messages, so the listeners open with them. Redis not there: the node
 * starts anyway, not ready until the load is done. 0, or -1 (logged).
 */
static int redis_start(const struct bw_config *cfg, const struct bw_redis_config *rc)
{
	char err[BW_CONFIG_ERROR_MAX];
	struct bw_sync_config sc = { .redis = rc,
		                     .sentinel = rc->master ? &sentinel_cfg : NULL,
		                     .prefix = cfg->redis_prefix,
		                     .node = node_id,
		                     .hub = hub,
		                     .held = redis_held,
		                     .taken = session_taken };
	if (bw_sync_start(&state_sync, &sc, err, sizeof(err)) < 0) {
		bw_log_error("%s", err);
		return -1;
	}
	if (rc->master)
		bw_log_info("redis: the state store is master %s of %u sentinels, db %u, prefix %s",
		            sentinel_cfg.name, sentinel_cfg.n, rc->db, cfg->redis_prefix);
	else if (rc->path[0])
		bw_log_info("redis: the state store at %s, db %u, prefix %s", rc->path, rc->db,
		            cfg->redis_prefix);
	else
		bw_log_info("redis: the state store at %s:%u, db %u, prefix %s", rc->host, rc->port,
		            rc->db, cfg->redis_prefix);
	if (!bw_sync_wait_loaded(state_sync, REDIS_START_WAIT_MS)) {
		bw_sync_last_error(state_sync, err, sizeof(err));
		bw_log_warn("redis: retained messages not loaded within %u ms (%s): the node "
		            "starts, and /readyz says 503 until they are",
		            REDIS_START_WAIT_MS, err);
	}
	return 0;
}

/* The /readyz line about Redis; whether it lets the node be ready. */
static bool redis_ready(char *detail, size_t cap)
{
	char err[BW_REDIS_ERROR_MAX] = "", master[BW_REDIS_HOST_MAX + 32] = "";
	bool loaded = load_stat(&bw_sync_stats(state_sync)->loaded) != 0;
	bool up = redis_up();
	if (!up) {
		bw_sync_last_error(state_sync, err, sizeof(err));
		for (uint32_t i = 0; i < n_workers && !err[0]; i++)
			bw_store_last_error(stores[i], err, sizeof(err));
	}
	if (redis_master) {
		char host[BW_REDIS_HOST_MAX];
		uint16_t port;
		bw_master_get(redis_master, host, sizeof(host), &port);
		memcpy(master, ", master ", 10);
		if (host[0])
			host_port(master + 9, sizeof(master) - 9, host, port);
		else
			snprintf(master + 9, sizeof(master) - 9, "unknown");
	}
	snprintf(detail, cap, "redis: %s%s, retained messages %s, %llu writes held%s%s\n",
	         up ? "up" : "down", master, loaded ? "loaded" : "not loaded yet",
	         (unsigned long long)redis_held(NULL), err[0] ? "; last error: " : "", err);
	return loaded;
}

/* The persistent sessions' calls on Redis, summed over the workers. */
static size_t session_metrics(char *buf, size_t cap)
{
	static const struct {
		const char *name, *type;
		size_t off;
	} v[] = {
#define SM(f, t) { "bulwark_redis_session_" #f, t, offsetof(struct bw_sessions_stats, f) }
		SM(requests, "counter"), SM(failed, "counter"),    SM(fenced, "counter"),
		SM(claims, "counter"),   SM(takeovers, "counter"), SM(dropped, "counter"),
		SM(refused, "counter"),  SM(bad, "counter"),       SM(held, "gauge"),
		SM(overflow, "counter"), SM(batched, "counter"),   SM(elided, "counter"),
#undef SM
	};
	size_t n = 0;
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]) && n < cap; k++) {
		uint64_t sum = 0;
		for (uint32_t i = 0; i < n_workers; i++)
			sum += load_stat(
			        (_Atomic uint64_t *)((char *)bw_sessions_stats(session_stores[i]) +
			                             v[k].off));
		bool total = strcmp(v[k].type, "counter") == 0;
		int r = snprintf(buf + n, cap - n, "# TYPE %s%s %s\n%s%s %llu\n", v[k].name,
		                 total ? "_total" : "", v[k].type, v[k].name, total ? "_total" : "",
		                 (unsigned long long)sum);
		if (r < 0)
			break;
		n += (size_t)r < cap - n ? (size_t)r : cap - n - 1;
	}
	return n;
}

static size_t redis_metrics(char *buf, size_t cap)
{
	const struct bw_sync_stats *ss = bw_sync_stats(state_sync);
	uint64_t requests = load_stat(&ss->requests), errors = load_stat(&ss->errors);
	uint64_t timeouts = load_stat(&ss->timeouts), reconnects = load_stat(&ss->reconnects);
	uint64_t queued = 0, refused = 0, written = 0;
	for (uint32_t i = 0; i < n_workers; i++) {
		const struct bw_store_stats *st = bw_store_stats(stores[i]);
		requests += load_stat(&st->requests);
		errors += load_stat(&st->errors);
		timeouts += load_stat(&st->timeouts);
		reconnects += load_stat(&st->reconnects);
		queued += load_stat(&st->queued);
		refused += load_stat(&st->refused);
		written += load_stat(&st->written);
	}
	int n = snprintf(
	        buf, cap,
	        "# TYPE bulwark_redis_up gauge\nbulwark_redis_up %d\n"
	        "# TYPE bulwark_redis_retained_loaded gauge\nbulwark_redis_retained_loaded %llu\n"
	        "# TYPE bulwark_redis_requests_total counter\nbulwark_redis_requests_total %llu\n"
	        "# TYPE bulwark_redis_errors_total counter\nbulwark_redis_errors_total %llu\n"
	        "# TYPE bulwark_redis_timeouts_total counter\nbulwark_redis_timeouts_total %llu\n"
	        "# TYPE bulwark_redis_reconnects_total counter\n"
	        "bulwark_redis_reconnects_total %llu\n"
	        "# TYPE bulwark_redis_queued gauge\nbulwark_redis_queued %llu\n"
	        "# TYPE bulwark_redis_refused_total counter\nbulwark_redis_refused_total %llu\n"
	        "# TYPE bulwark_redis_retained_writes_total counter\n"
	        "bulwark_redis_retained_writes_total %llu\n"
	        "# TYPE bulwark_redis_retained_applied_total counter\n"
	        "bulwark_redis_retained_applied_total %llu\n"
	        "# TYPE bulwark_redis_retained_loads_total counter\n"
	        "bulwark_redis_retained_loads_total %llu\n"
	        "# TYPE bulwark_redis_sentinel_failovers_total counter\n"
	        "bulwark_redis_sentinel_failovers_total %llu\n"
	        "# TYPE bulwark_redis_sentinel_unanswered_total counter\n"
	        "bulwark_redis_sentinel_unanswered_total %llu\n",
	        redis_up() ? 1 : 0, (unsigned long long)load_stat(&ss->loaded),
	        (unsigned long long)requests, (unsigned long long)errors,
	        (unsigned long long)timeouts, (unsigned long long)reconnects,
	        (unsigned long long)queued, (unsigned long long)refused,
	        (unsigned long long)written, (unsigned long long)load_stat(&ss->applied),
	        (unsigned long long)load_stat(&ss->loads),
	        (unsigned long long)load_stat(&ss->failovers),
	        (unsigned long long)load_stat(&ss->unanswered));
	if (n < 0 || (size_t)n >= cap)
		return n < 0 ? 0 : cap - 1;
	return (size_t)n + session_metrics(buf + n, cap - (size_t)n);
}

static size_t metrics(void *arg, char *buf, size_t cap)
{
	(void)arg;
	size_t n = bw_broker_metrics(hub, buf, cap);
	/* A request during start-up reads workers[] only once it is whole. */
	if (!atomic_load_explicit(&started, memory_order_acquire))
		return n;
	n += bw_worker_metrics(workers, n_workers, buf + n, cap - n);
	if (state_sync && n < cap)
		n += redis_metrics(buf + n, cap - n);
	return n;
}

static void wake_worker(void *arg, uint32_t worker)
{
	(void)arg;
	pthread_mutex_lock(&wake_mu);
	if (wakeable)
		bw_worker_wake(workers[worker]);
	pthread_mutex_unlock(&wake_mu);
}

static void mail(void *arg, uintptr_t letter)
{
	bw_broker_mail(arg, letter);
}

static void shutdown_broker(void *arg)
{
	bw_broker_shutdown(arg);
}

/* Undelivered letters when the hub goes: messages are dropped, sockets closed. */
static void drop_letter(void *arg, uintptr_t letter)
{
	(void)arg;
	if (bw_letter_tag(letter) == BW_LETTER_CONN) {
		bw_worker_letter_free(bw_letter_ptr(letter));
		return;
	}
	bw_broker_mail_drop(letter);
}

/* The distinct tenants the listeners name, for the hub. */
static uint32_t listener_tenants(const struct bw_config *cfg, const char **names)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < cfg->listener_count; i++) {
		const char *t = cfg->listeners[i].tenant;
		uint32_t k = 0;
		while (k < n && strcmp(names[k], t))
			k++;
		if (k == n)
			names[n++] = t;
	}
	if (n == 0)
		names[n++] = "default";
	return n;
}

/*
 * Listeners on port 0 got an ephemeral port from worker 0's bind; the other
 * workers must bind that same port (SO_REUSEPORT), not one of their own.
 */
static void pin_ports(struct bw_config *cfg, const struct bw_worker *first)
{
	for (uint32_t i = 0; i < cfg->listener_count; i++) {
		struct bw_listener_config *l = &cfg->listeners[i];
		uint16_t port = htons(bw_worker_port(first, i));
		if (l->addr.ss_family == AF_INET)
			((struct sockaddr_in *)&l->addr)->sin_port = port;
		else if (l->addr.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&l->addr)->sin6_port = port;
	}
}

/* ---- the tenancy store ------------------------------------------------------- */

static struct bw_tenancy *tenancy_current(void *arg)
{
	(void)arg;
	return bw_tenancy_service_current(tenancy);
}

static void tenancy_log(void *arg, int level, const char *msg)
{
	(void)arg;
	if (!strncmp(msg, "tenancy: ", 9))
		msg += 9; /* the store's messages may say it already */
	if (level == 0)
		bw_log_error("tenancy: %s", msg);
	else if (level == 1)
		bw_log_warn("tenancy: %s", msg);
	else
		bw_log_info("tenancy: %s", msg);
}

/*
 * Every mqtts listener trusts the device CAs of every tenant too (a
 * certificate then names its tenant by its CA). A bundle OpenSSL refuses
 * leaves the listener's trust as it was, and says so.
 */
static void tenancy_cas(const struct bw_tenancy *snap)
{
	size_t n = bw_tenancy_tenant_count(snap), k = 0;
	const char **pems = calloc(n ? n : 1, sizeof(*pems));
	if (!pems) {
		bw_log_error("tenancy: tenant CAs not updated: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct bw_tenant *t = bw_tenancy_tenant_at(snap, i);
		if (t->ca_pem && *t->ca_pem && t->status == BW_TENANT_ACTIVE)
			pems[k++] = t->ca_pem;
	}
	for (uint32_t i = 0; i < BW_CONFIG_LISTENERS_MAX; i++) {
		char err[512];
		if (tls_ctx[i] && bw_tls_ctx_set_tenant_cas(tls_ctx[i], pems, k, err, sizeof(err)))
			bw_log_error("tenancy: %s: tenant CAs not updated: %s",
			             bw_tls_ctx_name(tls_ctx[i]), err);
	}
	free(pems);
}

/* On the service thread: the brokers take the snapshot at their next tick. */
static void tenancy_changed(void *arg, const struct bw_tenancy *snap,
                            const struct bw_tenancy_delta *delta)
{
	(void)arg;
	bool cas = delta->full;
	for (size_t i = 0; i < delta->n && !cas; i++)
		cas = delta->changes[i].kind == BW_TENANCY_TENANT;
	if (cas)
		tenancy_cas(snap);
	/* Every worker takes it now, not at its next tick: a change another
	 * node made is in force here as soon as its notification is. */
	pthread_mutex_lock(&wake_mu);
	if (wakeable)
		bw_node_admin_nudge(&node_admin);
	pthread_mutex_unlock(&wake_mu);
	bw_log_info("tenancy: version %llu in force (%zu changes%s)",
	            (unsigned long long)delta->to_version, delta->n,
	            delta->full ? ", full load" : "");
}

static int tenancy_start(const struct bw_config *cfg)
{
	char err[512];
	struct bw_tenancy_service_cfg tc = {
		.state_dir = cfg->state_dir,
		.postgres_url = cfg->postgres[0] ? cfg->postgres : NULL,
		.start_wait_ms = 5000,
		.on_change = tenancy_changed,
		.log = tenancy_log,
	};
	if (bw_tenancy_service_start(&tc, &tenancy, err, sizeof(err)) < 0) {
		bw_log_error("tenancy store: %s", err);
		return -1;
	}
	struct bw_tenancy_status st;
	bw_tenancy_service_status(tenancy, &st);
	bw_log_info("tenancy store: %s, %s: %zu tenants, %zu groups, %zu principals", st.backend,
	            st.loaded ? "loaded" : "not loaded yet", st.tenants, st.groups, st.principals);
	return 0;
}

/* /readyz: ready once the tenancy store was read and until node.drain; its state either way. */
static bool ready(void *arg, char *detail, size_t cap)
{
	struct bw_tenancy_status st;
	(void)arg;
	bw_tenancy_service_status(tenancy, &st);
	bool draining = atomic_load(&node_admin.draining);
	int n = snprintf(detail, cap, "tenancy: %s %s, version %llu, %zu tenants%s%s\n%s",
	                 st.backend, st.up ? "up" : "down", (unsigned long long)st.version,
	                 st.tenants, st.last_error[0] ? "; last error: " : "", st.last_error,
	                 draining ? "draining: this node takes no new clients\n" : "");
	bool redis = true;
	if (state_sync && n >= 0 && (size_t)n < cap)
		redis = redis_ready(detail + n, cap - (size_t)n);
	return st.loaded && !draining && redis;
}

static void free_tls(void)
{
	for (uint32_t i = 0; i < BW_CONFIG_LISTENERS_MAX; i++)
		bw_tls_ctx_free(&tls_ctx[i]);
}

/*
 * A TLS context for every mqtts listener of cfg, from its files. Returns 0,
 * or -1 with err naming the listener, the file and OpenSSL's reason.
 */
static int load_tls(const struct bw_config *cfg, char *err, size_t cap)
{
	for (uint32_t i = 0; i < cfg->listener_count; i++) {
		const struct bw_listener_config *l = &cfg->listeners[i];
		struct bw_tls_settings t;
		char why[BW_CONFIG_ERROR_MAX];
		if (!l->tls)
			continue;
		bw_config_listener_tls(cfg, l, &t);
		struct bw_tls_config tc = {
			.name = l->addr_text,
			.cert_file = t.cert,
			.key_file = t.key,
			.client_ca_file = t.client_ca,
			.crl_file = t.crl,
			.ciphers = t.ciphers,
			.ciphersuites = t.ciphersuites,
			.groups = t.groups,
			.client_auth =
			        t.client_auth == BW_CONFIG_AUTH_REQUIRED   ? BW_TLS_AUTH_REQUIRED
			        : t.client_auth == BW_CONFIG_AUTH_OPTIONAL ? BW_TLS_AUTH_OPTIONAL
			                                                   : BW_TLS_AUTH_NONE,
			.min_tls13 = t.min_version == 1,
		};
		if (bw_tls_ctx_new(&tls_ctx[i], &tc, why, sizeof(why))) {
			snprintf(err, cap, "%s: listen: mqtts %s: %s", l->origin, l->addr_text,
			         why);
			return -1;
		}
	}
	return 0;
}

/*
 * SIGHUP, config.reload: every mqtts listener reads its files again, or
 * keeps what it has. Returns how many could not, the first one's reason in
 * err.
 */
static int reload_tls(const char *why, char *err, size_t cap)
{
	int failed = 0;
	for (uint32_t i = 0; i < BW_CONFIG_LISTENERS_MAX; i++) {
		char e[BW_CONFIG_ERROR_MAX];
		if (!tls_ctx[i])
			continue;
		if (bw_tls_ctx_reload(tls_ctx[i], e, sizeof(e)) == 0) {
			bw_log_info("%s: mqtts %s: TLS material reloaded", why,
			            bw_tls_ctx_name(tls_ctx[i]));
			continue;
		}
		bw_log_error("%s: mqtts %s: TLS material not reloaded, the old stays in use: %s",
		             why, bw_tls_ctx_name(tls_ctx[i]), e);
		if (!failed++)
			snprintf(err, cap, "mqtts %.40s: %.200s", bw_tls_ctx_name(tls_ctx[i]), e);
	}
	return failed;
}

/*
 * Stops every worker that started (they wait for each other), saves the
 * snapshot into state_dir (when save_dir is not NULL), frees all. Returns
 * 0, or 1 when the snapshot could not be saved.
 */
static int stop_all(const char *save_dir)
{
	int rc = 0;
	bw_admin_server_stop(&admin); /* no admin request meets a node half stopped */
	pthread_mutex_lock(&wake_mu);
	wakeable = false; /* job threads may go on; they wake nobody now */
	pthread_mutex_unlock(&wake_mu);
	for (uint32_t i = 0; i < n_workers; i++) {
		if (workers[i])
			bw_worker_request_stop(workers[i]);
	}
	/*
	 * A worker ends only once every worker quiesced, so after the first
	 * join nobody serves /metrics (which reads workers[]) any more.
	 */
	for (uint32_t i = 0; i < n_workers; i++)
		bw_worker_stop(&workers[i]);
	bool redis = stores != NULL; /* retained messages live in Redis, not the snapshot */
	bw_sync_stop(&state_sync);   /* before the stores: it reads their counts */
	for (uint32_t i = 0; session_stores && i < n_workers; i++)
		bw_sessions_free(&session_stores[i]); /* before the brokers: it calls back */
	free(session_stores);
	session_stores = NULL;
	for (uint32_t i = 0; stores && i < n_workers; i++)
		bw_store_free(&stores[i]); /* says what Redis did not get */
	free(stores);
	stores = NULL;
	bw_master_free(&redis_master); /* no client is left to read it */
	if (save_dir) {
		struct bw_snapshot_counts n;
		char err[512];
		if (bw_snapshot_save(save_dir, hub, brokers, !redis, &n, err, sizeof(err)) < 0) {
			bw_log_error("snapshot not saved: %s", err);
			rc = 1;
		} else {
			bw_log_info("snapshot saved: %llu sessions, %llu retained messages",
			            (unsigned long long)n.sessions, (unsigned long long)n.retained);
		}
	}
	bw_jobs_free(&jobs); /* drops what no worker will finish */
	bw_backoff_free(&backoff);
	for (uint32_t i = 0; i < n_workers; i++)
		bw_broker_free(&brokers[i]);
	bw_hub_free(&hub, drop_letter, NULL);
	bw_tenancy_service_stop(&tenancy);
	bw_admin_audit_close(&audit);
	bw_node_admin_fini(&node_admin);
	if (policy_ready)
		bw_policy_slot_destroy(&policy);
	free(workers);
	free(brokers);
	free_tls();
	return rc;
}

/* Splits a comma-separated list in place into v[]; returns the count. */
static size_t split_list(char *s, const char **v, size_t max)
{
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max;
	     t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (*t)
			v[n++] = t;
	}
	return n;
}

/* The JWT verification policy (issuers, audiences, leeway): set once. */
static void jwt_policy_init(struct bw_config *cfg)
{
	jwt_policy.issuers = jwt_issuers;
	jwt_policy.issuers_n = split_list(cfg->jwt_issuers, jwt_issuers, JWT_LIST_MAX);
	jwt_policy.audiences = jwt_audiences;
	jwt_policy.audiences_n = split_list(cfg->jwt_audiences, jwt_audiences, JWT_LIST_MAX);
	jwt_policy.leeway_s = cfg->jwt_leeway;
}

/* The JWT keys of the configuration (*out NULL: none configured); 0 or -1 (logged). */
static int load_jwt_keys(const struct bw_config *cfg, struct bw_jwt_keys **out)
{
	char err[512];
	*out = NULL;
	if (!cfg->jwt_jwks_file[0] && !cfg->jwt_key_file[0])
		return 0;
	struct bw_jwt_keys *k = bw_jwt_keys_new();
	if (!k) {
		bw_log_error("jwt: out of memory");
		return -1;
	}
	if (cfg->jwt_jwks_file[0]) {
		stat(cfg->jwt_jwks_file, &jwks_seen); /* before reading: a change after is seen */
		if (bw_jwt_keys_load_jwks(k, cfg->jwt_jwks_file, err, sizeof(err)) < 0) {
			bw_log_error("jwt_jwks_file: %s", err);
			bw_jwt_keys_free(&k);
			return -1;
		}
	}
	if (cfg->jwt_key_file[0] && bw_jwt_keys_add_pem(k, cfg->jwt_key_file, cfg->jwt_key_alg,
	                                                NULL, err, sizeof(err)) < 0) {
		bw_log_error("jwt_key_file: %s", err);
		bw_jwt_keys_free(&k);
		return -1;
	}
	*out = k;
	return 0;
}

/*
 * The password file, ACL file and JWT keys the configuration names, read
 * now, as a policy; NULL when one cannot be read (logged, naming it).
 */
static struct bw_policy *load_policy(const struct bw_config *cfg)
{
	char err[512];
	struct bw_passwd *pw = NULL;
	struct bw_acl *acl = NULL;
	struct bw_jwt_keys *keys = NULL;

	if (cfg->password_file[0] &&
	    bw_passwd_load(cfg->password_file, &pw, err, sizeof(err)) < 0) {
		bw_log_error("password_file: %s", err);
		return NULL;
	}
	if (cfg->acl_file[0] && bw_acl_load(cfg->acl_file, &acl, err, sizeof(err)) < 0) {
		bw_log_error("acl_file: %s", err);
		bw_passwd_free(&pw);
		return NULL;
	}
	if (load_jwt_keys(cfg, &keys) < 0) {
		bw_passwd_free(&pw);
		bw_acl_free(&acl);
		return NULL;
	}
	if (pw)
		bw_log_info("password_file %s: %zu users", cfg->password_file, bw_passwd_count(pw));
	if (acl)
		bw_log_info("acl_file %s: %zu rules", cfg->acl_file, bw_acl_rule_count(acl));
	if (keys)
		bw_log_info("jwt: %zu keys, %zu issuers, %zu audiences", bw_jwt_keys_count(keys),
		            jwt_policy.issuers_n, jwt_policy.audiences_n);
	struct bw_policy *p = bw_policy_new(pw, acl, keys);
	if (!p)
		bw_log_error("policy: out of memory");
	return p;
}

/*
 * Reads the auth files again (why: what asked); the workers take the new
 * policy on their next tick. A file that cannot be read leaves the old
 * policy in force, whole (0, or -EINVAL: the log says why).
 */
static int reload_policy(const struct bw_config *cfg, const char *why)
{
	struct bw_policy *p = load_policy(cfg);
	if (!p) {
		bw_log_error("%s: auth files not reloaded, the old ones stay in force", why);
		return -EINVAL;
	}
	bw_policy_slot_set(&policy, p);
	bw_log_info("%s: auth files reloaded", why);
	return 0;
}

/* Whether the JWK Set file changed since it was read (a key rotation). */
static bool jwks_changed(const struct bw_config *cfg)
{
	struct stat st;
	if (!cfg->jwt_jwks_file[0] || stat(cfg->jwt_jwks_file, &st) < 0)
		return false;
	return st.st_mtim.tv_sec != jwks_seen.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != jwks_seen.st_mtim.tv_nsec || st.st_size != jwks_seen.st_size ||
	       st.st_ino != jwks_seen.st_ino;
}

/* Creates dir (and its parents) when missing; 0 or -errno. */
static int make_dir(const char *dir)
{
	char p[BW_CONFIG_PATH_MAX];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---- the admin socket ---------------------------------------------------------- */

static struct bw_admin_node admin_node;
static char host_name[256];
static const struct bw_config *node_cfg; /* for the admin thread's callbacks */
static struct timespec start_time;       /* CLOCK_MONOTONIC */
/* SIGHUP, a rotated JWK Set and config.reload take turns. */
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;

/* The node's quotas: what a tenant's 0 means (the brokers' and quota.show's). */
static struct bw_quotas node_quotas(const struct bw_config *cfg)
{
	return (struct bw_quotas){
		.connections = cfg->tenant_max_connections,
		.persistent_sessions = cfg->tenant_max_sessions,
		.tenant_msgs_per_s = cfg->tenant_msgs_per_s,
		.tenant_bytes_per_s = cfg->tenant_bytes_per_s,
		.client_msgs_per_s = cfg->client_msgs_per_s,
		.client_bytes_per_s = cfg->client_bytes_per_s,
		.client_subscriptions = cfg->max_subscriptions_per_client,
		.retained_msgs = cfg->max_retained_messages,
		.retained_bytes = cfg->max_retained_bytes,
		.max_qos = (uint8_t)cfg->max_qos,
		.max_packet_bytes = cfg->max_packet_size,
		.max_session_expiry_s = cfg->max_session_expiry,
		.session_queued_msgs = cfg->max_queued_messages,
	};
}

/*
 * SIGHUP and config.reload (why says which): the TLS material of every
 * mqtts listener, the auth files and JWK Sets, the tenancy store. Each part
 * that fails keeps what it had; out says which did.
 */
static void reload_all(const char *why, struct bw_admin_reload *out)
{
	pthread_mutex_lock(&reload_mu);
	out->n = 3;
	out->items[0].what = "tls";
	out->items[0].rc =
	        reload_tls(why, out->items[0].error, sizeof(out->items[0].error)) ? -EINVAL : 0;
	out->items[1].what = "auth_files";
	out->items[1].rc = reload_policy(node_cfg, why);
	snprintf(out->items[1].error, sizeof(out->items[1].error),
	         "an auth file (password_file, acl_file, jwt_*) could not be read: see the log");
	out->items[2].what = "tenancy";
	out->items[2].rc = bw_tenancy_service_reload(tenancy, out->items[2].error,
	                                             sizeof(out->items[2].error));
	if (out->items[2].rc < 0)
		bw_log_error("%s: tenancy store not reread: %s; the tenancy in force stays", why,
		             out->items[2].error);
	pthread_mutex_unlock(&reload_mu);
}

static void admin_reload(void *arg, struct bw_admin_reload *out)
{
	(void)arg;
	reload_all("config.reload", out);
}

static void admin_info(void *arg, struct bw_admin_node_info *out)
{
	struct timespec now;
	bool up = atomic_load_explicit(&started, memory_order_acquire);

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &now);
	out->version = BW_VERSION;
	out->commit = BW_GIT_COMMIT;
	out->name = host_name;
	out->draining = atomic_load(&node_admin.draining);
	out->uptime_s = (uint64_t)(now.tv_sec - start_time.tv_sec);
	out->workers = n_workers;
	for (uint32_t i = 0; i < node_cfg->listener_count && i < BW_ADMIN_LISTENERS_MAX; i++) {
		const struct bw_listener_config *l = &node_cfg->listeners[i];
		bool mqtt = l->kind == BW_LISTEN_MQTT;
		out->listeners[out->listeners_n++] = (struct bw_admin_listener){
			.kind = !mqtt    ? "http"
			        : l->tls ? "mqtts"
			                 : "mqtt",
			.addr = l->addr_text,
			.port = up ? bw_worker_port(workers[0], i) : 0, /* 0: still starting */
			.tenant = mqtt ? l->tenant : NULL,
		};
	}
}

/* The hub's counters of its tenant i, summed over the workers. */
static int admin_stats(void *arg, uint32_t i, struct bw_admin_tenant_stats *out)
{
	struct bw_tenant_totals tt;

	(void)arg;
	if (i >= bw_hub_tenants(hub))
		return -ENOENT;
	bw_hub_totals(hub, i, &tt);
	*out = (struct bw_admin_tenant_stats){
		.tenant = bw_hub_tenant_name(hub, i),
		.connections = tt.connected,
		.sessions = tt.sessions,
		.persistent = tt.persistent,
		.subscriptions = tt.subscriptions,
		.msgs_in = tt.msgs_in,
		.msgs_out = tt.msgs_out,
		.bytes_in = tt.bytes_in,
		.bytes_out = tt.bytes_out,
		.dropped = tt.dropped,
		.quota_hits = tt.quota_hits,
		.auth_failures = tt.auth_failures,
		.acl_denials = tt.denied,
	};
	bw_node_admin_rates(&node_admin, i, out);
	return 0;
}

/* A refused MQTT authentication, audited with actor "system". */
static void audit_auth_failed(const char *tenant, struct bw_str client_id, const char *user,
                              const char *from, const char *why)
{
	char target[320], reason[512];
	snprintf(target, sizeof(target), "%.*s", (int)client_id.len, (const char *)client_id.p);
	snprintf(reason, sizeof(reason), "user '%s' from %s: %s", user, from, why);
	bw_admin_audit_write(audit, &(struct bw_admin_audit_entry){
	                                    .uid = BW_ADMIN_ACTOR_SYSTEM,
	                                    .tenant = tenant,
	                                    .action = "connect",
	                                    .target = target,
	                                    .result = "refused",
	                                    .reason = reason,
	                            });
}

/* Opens the audit log and serves the admin socket; 0 or -1 (logged). */
static int admin_start(const struct bw_config *cfg)
{
	char err[512], path[2 * BW_CONFIG_PATH_MAX];

	if (bw_admin_audit_open(cfg->audit_log, &audit, err, sizeof(err)) < 0) {
		bw_log_error("%s", err);
		return -1;
	}
	bw_config_admin_socket(cfg, path, sizeof(path));
	if (gethostname(host_name, sizeof(host_name) - 1) < 0)
		snprintf(host_name, sizeof(host_name), "bulwark");
	node_admin = (struct bw_node_admin){
		.hub = hub,
		.workers = workers,
		.brokers = brokers,
		.n = n_workers,
		.started = &started,
	};
	if (bw_node_admin_init(&node_admin) < 0) {
		bw_log_error("admin socket: out of memory");
		return -1;
	}
	admin_node = (struct bw_admin_node){
		.arg = &node_admin,
		.info = admin_info,
		.tenant_stats = admin_stats,
		.reload = admin_reload,
		.sessions = bw_node_admin_sessions,
		.kick = bw_node_admin_kick,
		.retained = bw_node_admin_retained,
		.retained_del = bw_node_admin_retained_del,
		.drain = bw_node_admin_drain,
		.sync = bw_node_admin_sync,
		.quotas = node_quotas(cfg),
	};
	struct bw_admin_server_cfg ac = {
		.path = path,
		.admin_uid =
		        cfg->admin_uid == BW_CONFIG_ID_UNSET ? (uint32_t)geteuid() : cfg->admin_uid,
		.admin_gid =
		        cfg->admin_gid == BW_CONFIG_ID_UNSET ? BW_ADMIN_ID_NONE : cfg->admin_gid,
		.tenancy = tenancy,
		.node = &admin_node,
		.audit = audit,
	};
	if (bw_admin_server_start(&ac, &admin, err, sizeof(err)) < 0) {
		bw_log_error("%s", err);
		return -1;
	}
	char gid[32] = "";
	if (ac.admin_gid != BW_ADMIN_ID_NONE)
		snprintf(gid, sizeof(gid), ", gid %u", ac.admin_gid);
	bw_log_info("admin socket: %s (for root, uid %u%s); audit: %s", path, ac.admin_uid, gid,
	            cfg->audit_log[0] ? cfg->audit_log : "the log");
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int load_config(int argc, char **argv, struct bw_config *cfg, bool *check_only)
{
	char err[BW_CONFIG_ERROR_MAX];
	const char *file = NULL;

	bw_config_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "--set") && i + 1 < argc)
			i++; /* applied below, after the file and the environment */
		else if (!strcmp(argv[i], "--check-config"))
			*check_only = true;
		else {
			fprintf(stderr, "bulwark: unknown or incomplete argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if ((file && bw_config_load_file(cfg, file, err, sizeof(err))) ||
	    bw_config_load_env(cfg, environ, err, sizeof(err))) {
		fprintf(stderr, "bulwark: %s\n", err);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--set") && bw_config_set(cfg, argv[++i], err, sizeof(err))) {
			fprintf(stderr, "bulwark: %s\n", err);
			return 1;
		}
	}
	/* Its messages name the key, or where the listener at fault was configured. */
	if (bw_config_validate(cfg, err, sizeof(err))) {
		fprintf(stderr, "bulwark: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")))
		return version();
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "--hash-password")) {
		enum bw_hash_kind kind = BW_HASH_PBKDF2;
		if (argc == 3 && !strcmp(argv[2], "--argon2id"))
			kind = BW_HASH_ARGON2ID;
		else if (argc != 2 && !(argc == 3 && !strcmp(argv[2], "--pbkdf2"))) {
			usage(stderr);
			return 2;
		}
		int r = bw_password_hash_cli(stdin, stdout, kind);
		if (r < 0)
			fprintf(stderr, "bulwark: --hash-password: %s\n",
			        r == -EINVAL ? "empty password" : strerror(-r));
		return r < 0 ? 1 : 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--help-config")) {
		bw_config_describe(stdout);
		return 0;
	}

	static struct bw_config cfg;
	bool check_only = false;
	int rc = load_config(argc, argv, &cfg, &check_only);
	if (rc)
		return rc;
	char tls_err[2 * BW_CONFIG_ERROR_MAX];
	if (check_only) {
		/* The TLS files are read too: a bad one stops the check as it would the node. */
		rc = load_tls(&cfg, tls_err, sizeof(tls_err));
		free_tls();
		if (rc) {
			fprintf(stderr, "bulwark: %s\n", tls_err);
			return 1;
		}
		printf("configuration ok: %u listeners\n", cfg.listener_count);
		return 0;
	}

	rc = bw_log_open(cfg.log_level, cfg.log_format, cfg.log_file);
	if (rc) {
		fprintf(stderr, "bulwark: log_file %s: %s\n", cfg.log_file, strerror(-rc));
		return 1;
	}
	if (load_tls(&cfg, tls_err, sizeof(tls_err))) {
		bw_log_error("%s", tls_err);
		free_tls();
		return 1;
	}
	struct bw_io_features feat;
	bw_io_features_probe(&feat);
	if (!bw_io_features_sufficient(&feat)) {
		bw_log_error("io_uring on kernel %s lacks what the node needs (Linux 6.0+): see "
		             "bulwark --version",
		             feat.kernel);
		return 1;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	n_workers = cfg.workers ? cfg.workers : (uint32_t)(cpus > 0 ? cpus : 1);
	if (n_workers > BW_HUB_WORKERS_MAX)
		n_workers = BW_HUB_WORKERS_MAX;

	/* Signals go to this thread only: block them before threads start. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Every client is a file descriptor, and the usual soft limit (1024) is
	 * far below max_connections: take all the hard limit allows. Running
	 * with the soft limit still works, for fewer clients.
	 */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile))
			bw_log_warn("cannot raise the open files limit to %llu: %s",
			            (unsigned long long)nofile.rlim_max, strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &nofile) == 0)
			bw_log_info("open files limit: %llu", (unsigned long long)nofile.rlim_cur);
	} else {
		bw_log_warn("cannot read the open files limit: %s", strerror(errno));
	}

	listeners_base = cfg.listeners;
	const char *tenants[BW_CONFIG_LISTENERS_MAX + 1];
	struct bw_hub_config hc = {
		.n_workers = n_workers,
		.tenant = tenants,
		.n_tenants = listener_tenants(&cfg, tenants),
		.tenants_max = cfg.max_tenants,
		.retained = { .count_max = cfg.max_retained_messages,
		              .bytes_max = cfg.max_retained_bytes,
		              .levels_max = cfg.max_topic_levels },
		.wake = bw_worker_wake_peer,
	};
	hub = bw_hub_new(&hc);
	brokers = calloc(n_workers, sizeof(*brokers));
	workers = calloc(n_workers, sizeof(*workers));
	if (!hub || !brokers || !workers) {
		bw_log_error("cannot create the node: %s", strerror(errno));
		return 1;
	}
	for (uint32_t i = 0; i < cfg.listener_count; i++) {
		struct bw_tls_settings t;
		bw_config_listener_tls(&cfg, &cfg.listeners[i], &t);
		identity[i] = cfg.listeners[i].tls ? t.identity : BW_CONFIG_IDENTITY_NONE;
	}
	jwt_policy_init(&cfg);
	struct bw_policy *initial = load_policy(&cfg);
	if (!initial)
		return 1;
	bw_policy_slot_init(&policy, initial);
	policy_ready = true;
	if (!(jobs = bw_jobs_new(cfg.auth_threads, n_workers, wake_worker, NULL))) {
		bw_log_error("cannot start the auth threads: %s", strerror(errno));
		return 1;
	}
	if (cfg.auth_backoff_after &&
	    !(backoff = bw_backoff_new(cfg.auth_backoff_after, cfg.auth_backoff_max * 1000u,
	                               65536))) {
		bw_log_error("auth backoff: out of memory");
		return 1;
	}
	if ((rc = make_dir(cfg.state_dir)) < 0) {
		bw_log_error("state_dir %s: %s", cfg.state_dir, strerror(-rc));
		return 1;
	}
	if (tenancy_start(&cfg) < 0)
		return 1;
	if ((rc = make_node_id()) < 0) {
		bw_log_error("cannot make the node id: %s", strerror(-rc));
		return 1;
	}
	bw_log_info("node id %s", node_id);
	struct bw_redis_config redis_cfg;
	if (cfg.redis[0] && redis_setup(&cfg, &redis_cfg) < 0)
		return 1;
	node_cfg = &cfg;
	clock_gettime(CLOCK_MONOTONIC, &start_time);
	if (admin_start(&cfg) < 0) {
		stop_all(NULL);
		return 1;
	}
	struct bw_broker_config bc = {
		.tenancy = tenancy_current,
		.tenant_claim = cfg.tenant_claim,
		.sni = bw_worker_sni,
		.chain = bw_worker_chain,
		.quotas = node_quotas(&cfg),
		.listeners = cfg.listeners,
		.n_listeners = cfg.listener_count,
		.max_inflight = (uint16_t)cfg.max_inflight,
		.max_topic_levels = cfg.max_topic_levels,
		.queue_drop_oldest = cfg.queue_full == BW_CONFIG_QUEUE_DROP_OLDEST,
		.filters_max = 1000000,
		.out_budget = cfg.output_queue_budget,
		.hub = hub,
		.policy = &policy,
		.auth_chain = cfg.auth_chain,
		.jwt_policy = &jwt_policy,
		.jwt_username_claim = cfg.jwt_username_claim,
		.jwt_grace_ms = cfg.jwt_grace * 1000u,
		.identity = identity,
		.peer = bw_worker_peer,
		.backoff = backoff,
		.source = bw_worker_source,
		.auth_failed = audit_auth_failed,
		.jobs = jobs,
		.hold = bw_worker_hold,
		.sys_interval_ms = cfg.sys_interval * 1000,
		.version = BW_VERSION,
		.now_ms = bw_worker_now_ms,
		.wants_send = bw_worker_wants_send,
		.pause = bw_worker_pause,
	};
	struct bw_worker_config wc = {
		.listeners = cfg.listeners,
		.n_listeners = cfg.listener_count,
		.tls = tls_ctx,
		.conn_limits = {
			.max_packet_size = cfg.max_packet_size,
			.max_keepalive = (uint16_t)cfg.max_keepalive,
			.receive_max = (uint16_t)cfg.max_inflight,
			.topic_alias_max = (uint16_t)cfg.max_topic_aliases,
			.max_topic_length = (uint16_t)(cfg.max_topic_length > 65535 ? 65535
										   : cfg.max_topic_length),
			.max_topic_levels = (uint16_t)cfg.max_topic_levels,
			.outq = { .soft_bytes = cfg.output_queue_soft, .hard_bytes = cfg.output_queue_hard },
		},
		.max_connections = cfg.max_connections,
		.node_connections = &node_connections,
		.ops_for = ops_for,
		.tick = tick,
		.metrics = metrics,
		.ready = ready,
		.congested = congested,
		.hub = hub,
		.mail = mail,
		.shutdown = shutdown_broker,
		.jobs = jobs,
	};
	for (uint32_t i = 0; i < n_workers; i++) {
		bc.worker = i;
		if (stores) {
			bc.store = stores[i];
			bc.store_may = store_may;
			bc.store_write = store_write;
			bc.store_purge = store_purge;
			bc.sessions = session_stores[i];
			bc.durability = cfg.session_durability;
			bc.node_id = node_id;
		}
		if (!(brokers[i] = bw_broker_new(&bc))) {
			bw_log_error("cannot create the broker: %s", strerror(errno));
			stop_all(NULL);
			return 1;
		}
	}
	struct bw_snapshot_counts loaded;
	char err[512];
	if (bw_snapshot_load(cfg.state_dir, hub, brokers, !cfg.redis[0], &loaded, err,
	                     sizeof(err)) < 0) {
		bw_log_error("snapshot not loaded: %s; the node does not start rather than lose "
		             "it (move the file aside to start empty)",
		             err);
		stop_all(NULL);
		return 1;
	}
	bw_log_info("snapshot loaded from %s: %llu sessions, %llu retained messages, %llu skipped",
	            cfg.state_dir, (unsigned long long)loaded.sessions,
	            (unsigned long long)loaded.retained, (unsigned long long)loaded.skipped);
	if (stores && redis_start(&cfg, &redis_cfg) < 0) {
		stop_all(NULL);
		return 1;
	}
	for (uint32_t i = 0; i < n_workers; i++) {
		wc.index = i;
		wc.ops_arg = brokers[i];
		wc.store = stores ? stores[i] : NULL;
		wc.sessions = session_stores ? session_stores[i] : NULL;
		wc.conn_limits.outq.pool = bw_broker_out_pool(brokers[i]);
		rc = bw_worker_start(&workers[i], &wc);
		if (rc) {
			bw_log_error("cannot start worker %u: %s", i, strerror(-rc));
			stop_all(NULL);
			return 1;
		}
		if (i == 0)
			pin_ports(&cfg, workers[0]);
	}
	atomic_store_explicit(&started, true, memory_order_release);
	pthread_mutex_lock(&wake_mu);
	wakeable = true;
	pthread_mutex_unlock(&wake_mu);
	for (uint32_t i = 0; i < cfg.listener_count; i++) {
		const struct bw_listener_config *l = &cfg.listeners[i];
		bw_log_info("listening: %s %s (port %u)%s",
		            l->kind == BW_LISTEN_HTTP ? "http"
		            : l->tls                  ? "mqtts"
		                                      : "mqtt",
		            l->addr_text, bw_worker_port(workers[0], i),
		            l->kind == BW_LISTEN_MQTT && l->allow_anonymous
		                    ? ", anonymous clients allowed: for trying Bulwark out only"
		                    : "");
	}
	bw_log_info("bulwark %s (%s) started: %u workers", BW_VERSION, BW_GIT_COMMIT, n_workers);

	for (uint64_t second = 0;; second++) {
		/* Each second without a signal: the tenants' rates; every other
		 * one: has the JWK Set been rotated? */
		int sig = sigtimedwait(&sigs, NULL, &(struct timespec){ .tv_sec = 1 });
		if (sig < 0) {
			bw_node_admin_sample(&node_admin, bw_worker_now_ms());
			if (second % 2)
				continue;
			pthread_mutex_lock(&reload_mu);
			if (errno == EAGAIN && jwks_changed(&cfg))
				reload_policy(&cfg, "jwt_jwks_file changed");
			pthread_mutex_unlock(&reload_mu);
			continue;
		}
		if (sig == SIGHUP) {
			struct bw_admin_reload done;
			int r = bw_log_reopen();
			bw_log_info("SIGHUP: log reopened%s%s", r ? ": " : "",
			            r ? strerror(-r) : "");
			if ((r = bw_admin_audit_reopen(audit)) < 0)
				bw_log_error("SIGHUP: audit_log %s not reopened: %s", cfg.audit_log,
				             strerror(-r));
			reload_all("SIGHUP", &done);
			continue;
		}
		bw_log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	rc = stop_all(cfg.state_dir);
	bw_log_info("stopped");
	return rc;
}
