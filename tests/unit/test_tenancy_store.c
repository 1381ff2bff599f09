/*
 * The tenancy store suite (tenancy/service.h, store.h, model.h), built
 * twice: test_tenancy_store_file runs it against the embedded file store,
 * test_tenancy_store_pg against PostgreSQL (BW_TEST_PG), so that both
 * backends show the same semantics: writes and partial updates, validation
 * errors naming the field, tenants' own JWT tenant claims (kept, cleared,
 * checked, their number bounded), lookups by name, SNI and CA, effective ACLs
 * (union of groups and own rules, deny beats allow), change callbacks with
 * the right delta, group deletion leaving principals, and a restart over
 * the same file or database seeing everything.
 *
 * PostgreSQL only: a second service (another node) and plain SQL changing
 * the model, seen by the first within a second; two services migrating a
 * fresh database at once; the service's connections terminated and the
 * database refusing connections for a while: status down, the snapshot
 * kept, recovery on its own with changes made meanwhile; rows the model
 * refuses left out; a database of schema version 1 migrated with its rows. Each test uses its own
 * database in the server BW_TEST_POSTGRES names (scripts/pg-test starts one); without it the tests
 * fail, unless BW_TEST_POSTGRES_SKIP=1 says to skip them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tenancy/acl.h"
#include "tenancy/migrations.h"
#include "tenancy/model.h"
#include "tenancy/service.h"
#include "tenancy/store.h"
#include "tenancy_material.h"

#ifndef BW_TEST_PG
#define BW_TEST_PG 0
#endif

/* ---- recording changes ------------------------------------------------------------- */

struct seen {
	enum bw_tenancy_kind kind;
	bool deleted, full;
	char tenant[64], name[300];
};

struct recorder {
	pthread_mutex_t mu;
	struct seen v[4096];
	size_t n;
	unsigned calls;
	uint64_t last_version;
	bool out_of_order;
};

static void on_change(void *arg, const struct bw_tenancy *snap, const struct bw_tenancy_delta *d)
{
	struct recorder *r = arg;

	pthread_mutex_lock(&r->mu);
	r->calls++;
	if (bw_tenancy_version(snap) <= r->last_version ||
	    d->to_version != bw_tenancy_version(snap))
		r->out_of_order = true;
	r->last_version = bw_tenancy_version(snap);
	for (size_t i = 0; i < d->n && r->n < sizeof(r->v) / sizeof(r->v[0]); i++) {
		struct seen *s = &r->v[r->n++];
		s->kind = d->changes[i].kind;
		s->deleted = d->changes[i].deleted;
		s->full = d->full;
		snprintf(s->tenant, sizeof(s->tenant), "%s", d->changes[i].tenant);
		snprintf(s->name, sizeof(s->name), "%s", d->changes[i].name);
	}
	pthread_mutex_unlock(&r->mu);
}

static void rec_clear(struct recorder *r)
{
	pthread_mutex_lock(&r->mu);
	r->n = 0;
	r->calls = 0;
	pthread_mutex_unlock(&r->mu);
}

/* True when r saw the change (kind, tenant, name, deleted). */
static bool rec_has(struct recorder *r, enum bw_tenancy_kind kind, const char *tenant,
                    const char *name, bool deleted)
{
	bool found = false;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n && !found; i++) {
		const struct seen *s = &r->v[i];
		found = s->kind == kind && s->deleted == deleted &&
		        strcmp(s->tenant, tenant) == 0 && strcmp(s->name, name) == 0;
	}
	pthread_mutex_unlock(&r->mu);
	return found;
}

/* True when every change r saw is a deletion in tenant (printed when not). */
static bool rec_only_deletions_in(struct recorder *r, const char *tenant)
{
	bool only = true;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		const struct seen *s = &r->v[i];
		if (!s->deleted || strcmp(s->tenant, tenant) != 0) {
			print_message("unexpected change: kind %d %s/%s deleted %d\n", (int)s->kind,
			              s->tenant, s->name, (int)s->deleted);
			only = false;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return only;
}

static size_t rec_count(struct recorder *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

__attribute__((unused)) /* the PostgreSQL build's */
static bool
rec_any(void *arg)
{
	return rec_count(arg) > 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Waits at most timeout_ms for cond(arg); returns how long it took, or -1. */
__attribute__((unused)) /* the PostgreSQL build's */
static int64_t
wait_for(bool (*cond)(void *), void *arg, int timeout_ms)
{
	int64_t start = now_ms();

	for (;;) {
		if (cond(arg))
			return now_ms() - start;
		if (now_ms() - start > timeout_ms)
			return -1;
		sleep_ms(5);
	}
}

/* ---- where a test's model lives ---------------------------------------------------- */

struct env {
	char dir[64];   /* file: the state directory */
	char url[1024]; /* postgres: conninfo of the test's own database */
	char db[64];
	struct recorder rec;
};

static char admin_url[1024]; /* conninfo of the server's "postgres" database */
static atomic_int db_counter;

/* The server's conninfo with dbname replaced ("" when the URL is unusable). */
static void conninfo_for(const char *base, const char *db, char *out, size_t cap)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(base, &err);
	size_t len = 0;

	out[0] = '\0';
	if (!opts) {
		PQfreemem(err);
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
		if (!v || !*v)
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s='%s' ", o->keyword, v);
	}
	PQconninfoFree(opts);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Runs sql on conninfo; fails the test on an error. */
static void sql_on(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", conninfo, PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

/* Runs sql on conninfo; false when the server refuses it (the test goes on). */
__attribute__((unused)) /* the PostgreSQL build's */
static bool
sql_ok(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQexec(c, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	PQclear(r);
	PQfinish(c);
	return ok;
}

/* The first column of the first row of sql's answer, as a number. */
__attribute__((unused)) /* the PostgreSQL build's */
static long
sql_long(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQexec(c, sql);
	long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	pthread_mutex_init(&e->rec.mu, NULL);
	if (!BW_TEST_PG) {
		snprintf(e->dir, sizeof(e->dir), "/tmp/bw-tenancy-XXXXXX");
		assert_non_null(mkdtemp(e->dir));
	} else {
		const char *base = getenv("BW_TEST_POSTGRES");
		if (!base || !*base) {
			free(e);
			*state = NULL; /* each test skips (cmocka counts a skip in setup as a
			                  failure) */
			if (getenv("BW_TEST_POSTGRES_SKIP") &&
			    strcmp(getenv("BW_TEST_POSTGRES_SKIP"), "1") == 0)
				return 0;
			fail_msg("BW_TEST_POSTGRES is not set: run under scripts/pg-test run "
			         "(scripts/test does), or set BW_TEST_POSTGRES_SKIP=1 to skip "
			         "the PostgreSQL tests");
		}
		conninfo_for(base, "postgres", admin_url, sizeof(admin_url));
		assert_true(admin_url[0] != '\0');
		snprintf(e->db, sizeof(e->db), "bwt_%d_%d", (int)getpid(),
		         atomic_fetch_add(&db_counter, 1));
		char sql[128];
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", e->db);
		sql_on(admin_url, sql);
		conninfo_for(base, e->db, e->url, sizeof(e->url));
	}
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	if (!e)
		return 0;
	if (!BW_TEST_PG) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", e->dir);
	} else {
		snprintf(cmd, sizeof(cmd), "DROP DATABASE IF EXISTS %s WITH (FORCE)", e->db);
		sql_on(admin_url, cmd);
	}
	pthread_mutex_destroy(&e->rec.mu);
	free(e);
	return 0;
}

/* The test's environment; without one (PostgreSQL skipped on purpose) the test skips. */
static struct env *env_of(void **state)
{
	if (!*state)
		skip();
	return *state;
}

/* Starts a service over e's model (rec: where its changes go, may be NULL). */
static struct bw_tenancy_service *start(struct env *e, struct recorder *rec)
{
	struct bw_tenancy_service_cfg cfg = {
		.state_dir = BW_TEST_PG ? NULL : e->dir,
		.postgres_url = BW_TEST_PG ? e->url : NULL,
		.start_wait_ms = 15000,
		.backoff_max_ms = 500,
		.on_change = rec ? on_change : NULL,
		.on_change_arg = rec,
	};
	struct bw_tenancy_service *svc = NULL;
	struct bw_tenancy_status st;
	char err[512];
	int rc = bw_tenancy_service_start(&cfg, &svc, err, sizeof(err));

	if (rc != 0)
		fail_msg("start: %d %s", rc, err);
	bw_tenancy_service_status(svc, &st);
	if (!st.loaded)
		fail_msg("start: not loaded: %s", st.last_error);
	assert_string_equal(st.backend, BW_TEST_PG ? "postgres" : "file");
	return svc;
}

/* ---- helpers for writes ------------------------------------------------------------ */

static char err[1024];
#define E err, sizeof(err)

#define OK(call)                                                                                   \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != 0)                                                                      \
			fail_msg("%s: %d %s", #call, rc_, err);                                    \
	} while (0)

/* call must fail with rc and a message holding want. */
#define FAILS(call, rc, want)                                                                      \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != (rc) || !strstr(err, want))                                             \
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", #call, rc_, err, rc, want);  \
	} while (0)

static struct bw_tenant tenant(const char *name)
{
	return (struct bw_tenant){ .name = name,
		                   .name_len = strlen(name),
		                   .quotas.max_qos = BW_QUOTA_QOS_DEFAULT };
}

static struct bw_principal principal(const char *t, const char *name, const char *const *groups,
                                     size_t n, const char *rules)
{
	return (struct bw_principal){ .tenant = t,
		                      .name = name,
		                      .name_len = strlen(name),
		                      .kind = BW_PRINCIPAL_PASSWORD,
		                      .password_hash = HASH_SECRET,
		                      .enabled = true,
		                      .groups = groups,
		                      .groups_n = n,
		                      .rules = rules };
}

static void put_group(struct bw_tenancy_service *svc, const char *t, const char *name,
                      const char *rules)
{
	struct bw_group g = { .tenant = t, .name = name, .name_len = strlen(name), .rules = rules };

	OK(bw_tenancy_service_group_put(svc, &g, E));
}

static void fp_of(const char *hex, uint8_t fp[32])
{
	for (int i = 0; i < 32; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		fp[i] = (uint8_t)v;
	}
}

/* A model with two tenants, groups and principals; the suite's common start. */
static void populate(struct bw_tenancy_service *svc)
{
	static const char *const acme_sni[] = { "mqtt.acme.example", "acme.example" };
	static const char *const iss[] = { "https://id.acme.example" };
	static const char *const sensors[] = { "sensors" };
	static const char *const both[] = { "sensors", "dashboards" };
	struct bw_tenant a = tenant("acme"), g = tenant("globex");

	a.sni = acme_sni;
	a.sni_n = 2;
	a.ca_pem = CA_A_PEM;
	a.jwt_issuers = iss;
	a.jwt_issuers_n = 1;
	a.jwks = JWKS_OCT;
	a.quotas.connections = 100;
	a.quotas.client_bytes_per_s = 1u << 20;
	a.quotas.max_qos = 1;
	OK(bw_tenancy_service_tenant_put(svc, &a, E));
	g.status = BW_TENANT_SUSPENDED;
	g.allow_anonymous = true;
	OK(bw_tenancy_service_tenant_put(svc, &g, E));
	put_group(svc, "acme", "sensors", "allow publish data/%c/#\n");
	put_group(svc, "acme", "dashboards", "allow subscribe data/#\n");
	struct bw_principal p = principal("acme", "dev1", sensors, 1, NULL);
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	p = principal("acme", "ops", both, 2, "deny subscribe data/secret/#\n");
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	p = principal("acme", "cert-device", NULL, 0, "allow all devices/%c/#");
	p.kind = BW_PRINCIPAL_CERTIFICATE;
	p.password_hash = NULL;
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	p = principal("globex", "bob", NULL, 0, NULL);
	p.enabled = false;
	OK(bw_tenancy_service_principal_put(svc, &p, E));
}

/* Checks that snap holds what populate() wrote. */
static void check_populated(const struct bw_tenancy *s)
{
	uint8_t fp[32];

	assert_int_equal(bw_tenancy_tenant_count(s), 2);
	assert_int_equal(bw_tenancy_group_count(s), 2);
	assert_int_equal(bw_tenancy_principal_count(s), 4);
	const struct bw_tenant *a = bw_tenancy_tenant(s, "acme", 4);
	assert_non_null(a);
	assert_string_equal(a->name, "acme");
	assert_true(a->id > 0);
	assert_int_equal(a->status, BW_TENANT_ACTIVE);
	assert_false(a->allow_anonymous);
	assert_int_equal(a->sni_n, 2);
	assert_string_equal(a->sni[0], "acme.example"); /* sorted */
	assert_string_equal(a->sni[1], "mqtt.acme.example");
	assert_int_equal(a->quotas.connections, 100);
	assert_int_equal(a->quotas.client_bytes_per_s, 1u << 20);
	assert_int_equal(a->quotas.max_qos, 1);
	assert_int_equal(a->quotas.retained_msgs, 0);
	assert_string_equal(a->ca_pem, CA_A_PEM);
	assert_int_equal(a->jwt_issuers_n, 1);
	assert_string_equal(a->jwt_issuers[0], "https://id.acme.example");
	assert_int_equal(a->jwt_audiences_n, 0);
	assert_non_null(bw_tenancy_tenant_jwt_keys(s, a));
	assert_int_equal(a->groups_n, 2);
	assert_int_equal(a->principals_n, 3);

	const struct bw_tenant *g = bw_tenancy_tenant(s, "globex", 6);
	assert_non_null(g);
	assert_int_equal(g->status, BW_TENANT_SUSPENDED);
	assert_true(g->allow_anonymous);
	assert_int_equal(g->quotas.max_qos, BW_QUOTA_QOS_DEFAULT);
	assert_string_equal(g->ca_pem, "");
	assert_null(bw_tenancy_tenant_jwt_keys(s, g));
	assert_true(g->id != a->id);

	/* Lookups by SNI (any case, trailing dot) and CA. */
	assert_ptr_equal(bw_tenancy_tenant_by_sni(s, "mqtt.acme.example", 17), a);
	assert_ptr_equal(bw_tenancy_tenant_by_sni(s, "MQTT.Acme.Example.", 18), a);
	assert_null(bw_tenancy_tenant_by_sni(s, "other.example", 13));
	assert_null(bw_tenancy_tenant_by_sni(s, "", 0));
	fp_of(CA_A_FP_HEX, fp);
	assert_ptr_equal(bw_tenancy_tenant_by_ca(s, fp), a);
	fp_of(CA_B_FP_HEX, fp);
	assert_null(bw_tenancy_tenant_by_ca(s, fp));
	assert_null(bw_tenancy_tenant(s, "nobody", 6));

	const struct bw_principal *p = bw_tenancy_principal(s, a, "ops", 3);
	assert_non_null(p);
	assert_string_equal(p->tenant, "acme");
	assert_int_equal(p->kind, BW_PRINCIPAL_PASSWORD);
	assert_string_equal(p->password_hash, HASH_SECRET);
	assert_true(p->enabled);
	assert_int_equal(p->groups_n, 2);
	assert_string_equal(p->groups[0], "dashboards");
	assert_string_equal(p->groups[1], "sensors");
	assert_string_equal(p->rules, "deny subscribe data/secret/#\n");
	p = bw_tenancy_principal(s, a, "cert-device", 11);
	assert_non_null(p);
	assert_int_equal(p->kind, BW_PRINCIPAL_CERTIFICATE);
	assert_null(p->password_hash);
	assert_null(bw_tenancy_principal(s, a, "bob", 3)); /* bob is globex's */
	p = bw_tenancy_principal(s, g, "bob", 3);
	assert_non_null(p);
	assert_false(p->enabled);
	const struct bw_group *gr = bw_tenancy_group(s, a, "sensors", 7);
	assert_non_null(gr);
	assert_string_equal(gr->rules, "allow publish data/%c/#\n");
	assert_string_equal(bw_tenancy_group_at(s, a, 0)->name, "dashboards");
	assert_null(bw_tenancy_group_at(s, a, 2));
	assert_string_equal(bw_tenancy_principal_at(s, a, 0)->name, "cert-device");
	assert_string_equal(bw_tenancy_tenant_at(s, 1)->name, "globex");
	assert_null(bw_tenancy_tenant_at(s, 2));
}

/* ---- the common suite -------------------------------------------------------------- */

static void test_writes_and_lookups(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);

	assert_int_equal(bw_tenancy_tenant_count(s), 0);
	bw_tenancy_release(&s);
	populate(svc);
	s = bw_tenancy_service_current(svc);
	check_populated(s);
	uint64_t v = bw_tenancy_version(s);
	bw_tenancy_release(&s);
	assert_null(s);

	/* Putting the same record again changes nothing: no new version. */
	struct bw_principal p = principal("globex", "bob", NULL, 0, NULL);
	p.enabled = false;
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	s = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_version(s), v);
	bw_tenancy_release(&s);

	struct bw_tenancy_status st;
	bw_tenancy_service_status(svc, &st);
	assert_true(st.up);
	assert_true(st.loaded);
	assert_int_equal(st.tenants, 2);
	assert_int_equal(st.groups, 2);
	assert_int_equal(st.principals, 4);
	assert_int_equal(st.version, v);
	assert_true(st.publishes >= 8);
	bw_tenancy_service_stop(&svc);
	assert_null(svc);
	assert_false(e->rec.out_of_order);
}

static void test_validation(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, NULL);
	struct bw_tenant t = tenant("Acme");
	static const char *const bad_host[] = { "mqtt.acme.example", "x_y.example" };
	static const char *const upper_host[] = { "MQTT.example" };
	static const char *const dup_host[] = { "a.example", "a.example" };
	static const char *const taken[] = { "acme.example" };
	static const char *const nogroup[] = { "sensors", "nosuch" };

	populate(svc);
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "tenant put: tenant: tenant name \"Acme\" is not");
	t = tenant("newco");
	t.sni = bad_host;
	t.sni_n = 2;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "tenant \"newco\": sni[1]: \"x_y.example\" is not a hostname");
	t.sni = upper_host;
	t.sni_n = 1;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "sni[0]: \"MQTT.example\" must be "
	      "lower case");
	t.sni = dup_host;
	t.sni_n = 2;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "sni[1]: \"a.example\" is listed "
	      "twice");
	t.sni = taken;
	t.sni_n = 1;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EEXIST,
	      "\"acme.example\" already belongs "
	      "to tenant \"acme\"");
	t = tenant("newco");
	t.quotas.max_qos = 3;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "quotas.max_qos: 3");
	t.quotas.max_qos = BW_QUOTA_QOS_DEFAULT;
	t.quotas.max_packet_bytes = 300000000;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "quotas.max_packet_bytes");
	t.quotas.max_packet_bytes = 0;
	t.ca_pem = LEAF_PEM;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "ca_pem: certificate 1 is not a CA certificate");
	t.ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "ca_pem: certificate 1");
	t.ca_pem = "no pem here";
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "ca_pem: no PEM certificate");
	t.ca_pem = CA_B_PEM CA_A_PEM;
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EEXIST,
	      "CA certificate 2 of ca_pem already belongs to tenant \"acme\"");
	t.ca_pem = NULL;
	t.jwks = "{\"keys\": 5}";
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "tenant \"newco\": jwks: ");
	t.jwks = NULL;

	struct bw_group g = { .tenant = "acme", .name = "bad group", .name_len = 9 };
	FAILS(bw_tenancy_service_group_put(svc, &g, E), -EINVAL, "name: not 1..64 of");
	g = (struct bw_group){ .tenant = "acme",
		               .name = "g",
		               .name_len = 1,
		               .rules = "allow publish a/#\nuser bob\n" };
	FAILS(bw_tenancy_service_group_put(svc, &g, E), -EINVAL,
	      "group \"acme/g\": rules:2: \"user\": a rule list holds rules only");
	g.rules = "allow publish a/#\ntopic read b\n";
	FAILS(bw_tenancy_service_group_put(svc, &g, E), -EINVAL, "rules:2: a \"topic\" line");
	g.rules = "allow publish a/b#\n";
	FAILS(bw_tenancy_service_group_put(svc, &g, E), -EINVAL, "rules:1:");
	g = (struct bw_group){ .tenant = "nosuch", .name = "g", .name_len = 1 };
	FAILS(bw_tenancy_service_group_put(svc, &g, E), -ENOENT, "no tenant \"nosuch\"");

	struct bw_principal p = principal("acme", "eve", NULL, 0, NULL);
	p.password_hash = "secret";
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -EINVAL,
	      "principal \"acme/eve\": password_hash: ");
	p.password_hash = NULL;
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -EINVAL,
	      "password_hash: a password principal needs one");
	p.kind = BW_PRINCIPAL_TOKEN;
	p.password_hash = HASH_SECRET;
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -EINVAL,
	      "password_hash: a token principal has none");
	p = principal("acme", "eve", nogroup, 2, NULL);
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -ENOENT, "no group \"nosuch\"");
	p = principal("acme", "bad\xff", NULL, 0, NULL);
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -EINVAL, "name: not valid UTF-8");
	p = principal("nosuch", "eve", NULL, 0, NULL);
	FAILS(bw_tenancy_service_principal_put(svc, &p, E), -ENOENT, "no tenant \"nosuch\"");
	FAILS(bw_tenancy_service_principal_delete(svc, "acme", "nobody", E), -ENOENT,
	      "principal delete: no principal \"nobody\" in tenant \"acme\"");
	FAILS(bw_tenancy_service_group_delete(svc, "acme", "nogroup", E), -ENOENT,
	      "no group \"nogroup\" in tenant \"acme\"");
	FAILS(bw_tenancy_service_tenant_delete(svc, "nosuch", E), -ENOENT, "no tenant \"nosuch\"");
	FAILS(bw_tenancy_service_tenant_set_status(svc, "nosuch", BW_TENANT_ACTIVE, E), -ENOENT,
	      "no tenant \"nosuch\"");
	FAILS(bw_tenancy_service_principal_set_enabled(svc, "acme", "nobody", false, E), -ENOENT,
	      "no principal \"nobody\"");
	FAILS(bw_tenancy_service_principal_set_groups(svc, "acme", "dev1", nogroup, 2, E), -ENOENT,
	      "no group \"nosuch\"");

	/* Nothing of the above changed the model. */
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	check_populated(s);
	bw_tenancy_release(&s);
	bw_tenancy_service_stop(&svc);
}

static void test_partial_updates(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	static const char *const hosts[] = { "new.acme.example" };
	static const char *const aud[] = { "mqtt", "bulwark" };
	static const char *const dash[] = { "dashboards" };
	struct bw_quotas q = { .retained_msgs = 5000, .max_qos = 0 };

	populate(svc);
	struct bw_tenancy *before = bw_tenancy_service_current(svc);
	OK(bw_tenancy_service_tenant_set_status(svc, "acme", BW_TENANT_SUSPENDED, E));
	OK(bw_tenancy_service_tenant_set_anonymous(svc, "acme", true, E));
	OK(bw_tenancy_service_tenant_set_quotas(svc, "acme", &q, E));
	OK(bw_tenancy_service_tenant_set_sni(svc, "acme", hosts, 1, E));
	OK(bw_tenancy_service_tenant_set_ca(svc, "acme", CA_B_PEM, E));
	OK(bw_tenancy_service_tenant_set_jwt(svc, "acme", NULL, 0, aud, 2, NULL, NULL, E));
	OK(bw_tenancy_service_principal_set_enabled(svc, "acme", "dev1", false, E));
	OK(bw_tenancy_service_principal_set_groups(svc, "acme", "ops", dash, 1, E));

	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	const struct bw_tenant *a = bw_tenancy_tenant(s, "acme", 4);
	const struct bw_tenant *old = bw_tenancy_tenant(before, "acme", 4);
	uint8_t fp[32];
	assert_int_equal(a->id, old->id);
	assert_int_equal(a->status, BW_TENANT_SUSPENDED);
	assert_true(a->allow_anonymous);
	assert_int_equal(a->quotas.retained_msgs, 5000);
	assert_int_equal(a->quotas.connections, 0);
	assert_int_equal(a->quotas.max_qos, 0);
	assert_int_equal(a->sni_n, 1);
	assert_null(bw_tenancy_tenant_by_sni(s, "mqtt.acme.example", 17));
	assert_ptr_equal(bw_tenancy_tenant_by_sni(s, "new.acme.example", 16), a);
	fp_of(CA_A_FP_HEX, fp);
	assert_null(bw_tenancy_tenant_by_ca(s, fp));
	fp_of(CA_B_FP_HEX, fp);
	assert_ptr_equal(bw_tenancy_tenant_by_ca(s, fp), a);
	assert_int_equal(a->jwt_issuers_n, 0);
	assert_int_equal(a->jwt_audiences_n, 2);
	assert_string_equal(a->jwt_audiences[0], "bulwark");
	assert_null(bw_tenancy_tenant_jwt_keys(s, a));
	assert_int_equal(a->groups_n, 2); /* kept */
	assert_int_equal(a->principals_n, 3);
	assert_false(bw_tenancy_principal(s, a, "dev1", 4)->enabled);
	assert_string_equal(bw_tenancy_principal(s, a, "dev1", 4)->password_hash, HASH_SECRET);
	assert_int_equal(bw_tenancy_principal(s, a, "ops", 3)->groups_n, 1);
	/* The old snapshot is untouched. */
	check_populated(before);
	/* Another tenant may now take what acme gave up. */
	struct bw_tenant g = tenant("globex");
	static const char *const old_host[] = { "mqtt.acme.example" };
	g.sni = old_host;
	g.sni_n = 1;
	g.ca_pem = CA_A_PEM;
	OK(bw_tenancy_service_tenant_put(svc, &g, E));
	bw_tenancy_release(&s);
	s = bw_tenancy_service_current(svc);
	assert_string_equal(bw_tenancy_tenant_by_sni(s, "mqtt.acme.example", 17)->name, "globex");
	/* A put replaces the tenant's fields but keeps its principals. */
	assert_int_equal(bw_tenancy_tenant(s, "globex", 6)->principals_n, 1);
	assert_int_equal(bw_tenancy_tenant(s, "globex", 6)->status, BW_TENANT_ACTIVE);
	bw_tenancy_release(&s);
	bw_tenancy_release(&before);
	bw_tenancy_service_stop(&svc);
}

static void test_reload_after_restart(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, NULL);
	struct bw_tenancy_delta *d = NULL;

	populate(svc);
	struct bw_tenancy *first = bw_tenancy_service_current(svc);
	bw_tenancy_service_stop(&svc);

	/* A new service (a restarted node) over the same file or database. */
	svc = start(e, &e->rec);
	struct bw_tenancy *again = bw_tenancy_service_current(svc);
	check_populated(again);
	assert_int_equal(bw_tenancy_diff(first, again, &d), 0);
	assert_int_equal(d->n, 0);
	bw_tenancy_delta_free(&d);
	/* Its first snapshot came with a full delta naming everything. */
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "acme", "acme", false));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "globex", "bob", false));
	assert_true(e->rec.v[0].full);
	/* Ids survive, and a new tenant gets a new one. */
	struct bw_tenant n = tenant("initech");
	OK(bw_tenancy_service_tenant_put(svc, &n, E));
	bw_tenancy_release(&again);
	again = bw_tenancy_service_current(svc);
	uint32_t id = bw_tenancy_tenant(again, "initech", 7)->id;
	assert_true(id != bw_tenancy_tenant(again, "acme", 4)->id);
	assert_true(id != bw_tenancy_tenant(again, "globex", 6)->id);
	bw_tenancy_release(&again);
	/* The store's own full load agrees with the service. */
	bw_tenancy_release(&first);
	bw_tenancy_service_stop(&svc);
}

/* Compiles p's effective ACL from s for client id cid. */
static struct bw_acl_compiled *acl_for(const struct bw_tenancy *s, const char *tenant,
                                       const char *name, const char *cid)
{
	const struct bw_tenant *t = bw_tenancy_tenant(s, tenant, strlen(tenant));
	const struct bw_principal *p = bw_tenancy_principal(s, t, name, strlen(name));
	const struct bw_acl *acl = bw_tenancy_principal_acl(s, p);
	struct bw_acl_subject who = { .username = name,
		                      .username_len = strlen(name),
		                      .client_id = cid,
		                      .client_id_len = strlen(cid) };

	assert_non_null(acl);
	assert_ptr_equal(bw_tenancy_principal_acl(s, p), acl); /* cached */
	struct bw_acl_compiled *c = bw_acl_compile(acl, &who);
	assert_non_null(c);
	return c;
}

#define PUB(c, topic)  bw_acl_can_publish(c, (const uint8_t *)(topic), strlen(topic), 1, false)
#define RECV(c, topic) bw_acl_can_receive(c, (const uint8_t *)(topic), strlen(topic))

static int sub(const struct bw_acl_compiled *c, const char *filter, bool *check_each)
{
	uint8_t qos;

	return bw_acl_can_subscribe(c, (const uint8_t *)filter, strlen(filter), &qos, check_each);
}

static void test_effective_acl(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, NULL);
	bool each;

	populate(svc);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	/* dev1: sensors only. */
	struct bw_acl_compiled *c = acl_for(s, "acme", "dev1", "dev1");
	assert_true(PUB(c, "data/dev1/temp"));
	assert_false(PUB(c, "data/dev2/temp"));
	assert_int_equal(sub(c, "data/#", &each), -EACCES);
	bw_acl_compiled_free(&c);
	/* ops: sensors and dashboards, and its own deny beats the group's allow. */
	c = acl_for(s, "acme", "ops", "ops-1");
	assert_true(PUB(c, "data/ops-1/x"));
	assert_int_equal(sub(c, "data/#", &each), 0);
	assert_true(each);
	assert_true(RECV(c, "data/room/1"));
	assert_false(RECV(c, "data/secret/1"));
	assert_int_equal(sub(c, "data/secret/#", &each), -EACCES);
	bw_acl_compiled_free(&c);
	/* bob: no rules at all, so nothing is allowed. */
	c = acl_for(s, "globex", "bob", "b");
	assert_false(PUB(c, "a"));
	assert_false(RECV(c, "a"));
	assert_int_equal(bw_acl_compiled_rules(c), 0);
	bw_acl_compiled_free(&c);

	/* A group change reaches its members' ACLs in the next snapshot. */
	put_group(svc, "acme", "sensors", "allow publish data/%c/#\ndeny publish data/+/alarm\n");
	struct bw_tenancy *s2 = bw_tenancy_service_current(svc);
	c = acl_for(s2, "acme", "dev1", "dev1");
	assert_true(PUB(c, "data/dev1/temp"));
	assert_false(PUB(c, "data/dev1/alarm"));
	bw_acl_compiled_free(&c);
	/* The old snapshot still answers as before. */
	c = acl_for(s, "acme", "dev1", "dev1");
	assert_true(PUB(c, "data/dev1/alarm"));
	bw_acl_compiled_free(&c);
	/* Deleting a group takes it out of its members. */
	OK(bw_tenancy_service_group_delete(svc, "acme", "dashboards", E));
	struct bw_tenancy *s3 = bw_tenancy_service_current(svc);
	const struct bw_tenant *a = bw_tenancy_tenant(s3, "acme", 4);
	assert_int_equal(bw_tenancy_principal(s3, a, "ops", 3)->groups_n, 1);
	assert_null(bw_tenancy_group(s3, a, "dashboards", 10));
	c = acl_for(s3, "acme", "ops", "ops-1");
	assert_int_equal(sub(c, "data/#", &each), -EACCES);
	bw_acl_compiled_free(&c);
	bw_tenancy_release(&s3);
	bw_tenancy_release(&s2);
	bw_tenancy_release(&s);
	bw_tenancy_service_stop(&svc);
}

/* The tenant's own claim name in svc's snapshot ("" for none). */
static void claim_is(struct bw_tenancy_service *svc, const char *tenant, const char *want)
{
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	const struct bw_tenant *t = bw_tenancy_tenant(s, tenant, strlen(tenant));

	assert_non_null(t);
	assert_string_equal(t->jwt_tenant_claim, want);
	bw_tenancy_release(&s);
}

static void test_tenant_claim(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	static const char *const iss[] = { "https://id.acme.example" };
	char name[16], claim[16];
	size_t n;

	populate(svc);
	rec_clear(&e->rec);
	/* A put carries it, and so does a JWT write, which may clear it. */
	struct bw_tenant t = tenant("initech");
	t.jwt_tenant_claim = "org";
	OK(bw_tenancy_service_tenant_put(svc, &t, E));
	claim_is(svc, "initech", "org");
	OK(bw_tenancy_service_tenant_set_jwt(svc, "acme", iss, 1, NULL, 0, JWKS_OCT,
	                                     "https://example.com/tenant", E));
	claim_is(svc, "acme", "https://example.com/tenant");
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "acme", "acme", false));
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	const char *const *names = bw_tenancy_claim_names(s, &n);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "https://example.com/tenant");
	assert_string_equal(names[1], "org");
	assert_non_null(bw_tenancy_tenant_jwt_keys(s, bw_tenancy_tenant(s, "acme", 4)));
	bw_tenancy_release(&s);

	/* A restarted node reads them back; a tenant without one has none. */
	bw_tenancy_service_stop(&svc);
	svc = start(e, NULL);
	claim_is(svc, "acme", "https://example.com/tenant");
	claim_is(svc, "initech", "org");
	claim_is(svc, "globex", "");
	OK(bw_tenancy_service_tenant_set_jwt(svc, "acme", iss, 1, NULL, 0, JWKS_OCT, "", E));
	claim_is(svc, "acme", "");
	s = bw_tenancy_service_current(svc);
	bw_tenancy_claim_names(s, &n);
	assert_int_equal(n, 1);
	bw_tenancy_release(&s);

	/* Checked as a field. */
	FAILS(bw_tenancy_service_tenant_set_jwt(svc, "acme", iss, 1, NULL, 0, JWKS_OCT, "my org",
	                                        E),
	      -EINVAL,
	      "tenant \"acme\": jwt_tenant_claim: \"my org\" is not a claim name (printable "
	      "ASCII without spaces)");
	t = tenant("newco");
	t.jwt_tenant_claim = "\x01";
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL, "jwt_tenant_claim: \"?\"");

	/* At most 15 distinct names: "org" and 14 more fit, one more does not. */
	for (unsigned i = 1; i < BW_TENANCY_CLAIM_NAMES_MAX - 1; i++) {
		snprintf(name, sizeof(name), "t%02u", i);
		snprintf(claim, sizeof(claim), "c%02u", i);
		t = tenant(name);
		t.jwt_tenant_claim = claim;
		OK(bw_tenancy_service_tenant_put(svc, &t, E));
	}
	t = tenant("newco");
	t.jwt_tenant_claim = "one-more";
	FAILS(bw_tenancy_service_tenant_put(svc, &t, E), -EINVAL,
	      "tenant \"newco\": jwt_tenant_claim: \"one-more\" would be one claim name too "
	      "many: tenants may name at most 15");
	FAILS(bw_tenancy_service_tenant_set_jwt(svc, "acme", iss, 1, NULL, 0, NULL, "one-more", E),
	      -EINVAL, "\"one-more\" would be one claim name too many");
	/* A name in use fits; a tenant may change its own name to another. */
	t.jwt_tenant_claim = "c07";
	OK(bw_tenancy_service_tenant_put(svc, &t, E));
	OK(bw_tenancy_service_tenant_set_jwt(svc, "t01", NULL, 0, NULL, 0, NULL, "one-more", E));
	claim_is(svc, "t01", "one-more");
	s = bw_tenancy_service_current(svc);
	bw_tenancy_claim_names(s, &n);
	assert_int_equal(n, BW_TENANCY_CLAIM_NAMES_MAX - 1);
	assert_string_equal(bw_tenancy_tenant(s, "acme", 4)->jwt_tenant_claim, "");
	bw_tenancy_release(&s);
	bw_tenancy_service_stop(&svc);
}

static void test_change_callback(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	static const char *const sensors[] = { "sensors" };

	populate(svc);
	/* Each write's change is in force, and its callback done, when the write returns. */
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "acme", "acme", false));
	assert_true(rec_has(&e->rec, BW_TENANCY_GROUP, "acme", "sensors", false));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "ops", false));

	rec_clear(&e->rec);
	OK(bw_tenancy_service_principal_set_enabled(svc, "acme", "dev1", false, E));
	assert_int_equal(rec_count(&e->rec), 1);
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "dev1", false));

	/* A group's rules change every member: each is listed. */
	rec_clear(&e->rec);
	put_group(svc, "acme", "sensors", "allow publish data/%c/#\nallow publish up/%c\n");
	assert_int_equal(rec_count(&e->rec), 3);
	assert_true(rec_has(&e->rec, BW_TENANCY_GROUP, "acme", "sensors", false));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "dev1", false));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "ops", false));

	rec_clear(&e->rec);
	OK(bw_tenancy_service_tenant_set_quotas(
	        svc, "globex", &(struct bw_quotas){ .connections = 1, .max_qos = 2 }, E));
	assert_int_equal(rec_count(&e->rec), 1);
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "globex", "globex", false));

	rec_clear(&e->rec);
	OK(bw_tenancy_service_principal_delete(svc, "acme", "ops", E));
	assert_int_equal(rec_count(&e->rec), 1);
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "ops", true));

	rec_clear(&e->rec);
	OK(bw_tenancy_service_group_delete(svc, "acme", "sensors", E));
	assert_true(rec_has(&e->rec, BW_TENANCY_GROUP, "acme", "sensors", true));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "dev1", false));

	struct bw_principal p = principal("acme", "new", NULL, 0, NULL);
	rec_clear(&e->rec);
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "new", false));
	(void)sensors;

	/*
	 * A deleted tenant is one change; its groups and principals go with
	 * it. With PostgreSQL the cascade's notifications may be read, and
	 * reloaded, before the tenant's own: then its principals' deletions
	 * come first, as changes of their own.
	 */
	rec_clear(&e->rec);
	OK(bw_tenancy_service_tenant_delete(svc, "acme", E));
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "acme", "acme", true));
	assert_true(rec_only_deletions_in(&e->rec, "acme"));
	if (!BW_TEST_PG)
		assert_int_equal(rec_count(&e->rec), 1);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	assert_null(bw_tenancy_tenant(s, "acme", 4));
	assert_null(bw_tenancy_tenant_by_sni(s, "acme.example", 12));
	assert_int_equal(bw_tenancy_principal_count(s), 1);
	assert_int_equal(bw_tenancy_group_count(s), 0);
	bw_tenancy_release(&s);
	/* Re-created, it starts empty and gets a new id. */
	struct bw_tenant a = tenant("acme");
	OK(bw_tenancy_service_tenant_put(svc, &a, E));
	s = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_tenant(s, "acme", 4)->principals_n, 0);
	bw_tenancy_release(&s);
	assert_false(e->rec.out_of_order);
	bw_tenancy_service_stop(&svc);
}

/* Readers on other threads while writes publish: run under TSan. */
struct reader_arg {
	struct bw_tenancy_service *svc;
	atomic_bool stop;
	atomic_ulong reads;
};

static void *reader(void *arg)
{
	struct reader_arg *r = arg;

	while (!atomic_load(&r->stop)) {
		struct bw_tenancy *s = bw_tenancy_service_current(r->svc);
		const struct bw_tenant *t = bw_tenancy_tenant(s, "acme", 4);
		for (size_t i = 0; t && i < t->principals_n; i++) {
			const struct bw_principal *p = bw_tenancy_principal_at(s, t, i);
			assert_non_null(bw_tenancy_principal_acl(s, p));
		}
		bw_tenancy_release(&s);
		atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, NULL);
	struct reader_arg ra = { .svc = svc };
	pthread_t th[2];
	char name[32];

	populate(svc);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &ra), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		struct bw_principal p = principal("acme", name, NULL, 0, "allow all x/%c");
		OK(bw_tenancy_service_principal_put(svc, &p, E));
	}
	atomic_store(&ra.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_true(atomic_load(&ra.reads) > 0);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_principal_count(s), 24);
	bw_tenancy_release(&s);
	bw_tenancy_service_stop(&svc);
}

/* A host for driving a store directly, without a service. */
static struct bw_tenancy *host_current(void *arg)
{
	(void)arg;
	return bw_tenancy_empty();
}

static void host_publish(void *arg, struct bw_tenancy *snap, bool full)
{
	(void)arg;
	(void)full;
	bw_tenancy_release(&snap);
}

static void host_wake(void *arg)
{
	(void)arg;
}

static void host_log(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

/* The store's own blocking full load agrees with what the service holds. */
static void test_store_load(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, NULL);
	const struct bw_tenancy_store_ops *ops =
	        BW_TEST_PG ? &bw_tenancy_store_pg : &bw_tenancy_store_file;
	struct bw_tenancy_store_host host = {
		.current = host_current, .publish = host_publish, .wake = host_wake, .log = host_log
	};
	struct bw_tenancy_store_cfg cfg = { .state_dir = e->dir, .postgres_url = e->url };
	struct bw_tenancy_store *st = NULL;
	struct bw_tenancy *loaded = NULL;
	struct bw_tenancy_delta *d = NULL;

	populate(svc);
	OK(ops->open(&cfg, &host, &st, E));
	OK(ops->load(st, &loaded, E));
	check_populated(loaded);
	struct bw_tenancy *cur = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_diff(cur, loaded, &d), 0);
	assert_int_equal(d->n, 0);
	bw_tenancy_delta_free(&d);
	bw_tenancy_release(&cur);
	bw_tenancy_release(&loaded);
	ops->close(&st);
	assert_null(st);
	bw_tenancy_service_stop(&svc);
}

#if !BW_TEST_PG
/* A damaged file stops the start with its name and position; nothing is overwritten. */
static void test_file_damaged(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service_cfg cfg = { .state_dir = e->dir };
	struct bw_tenancy_service *svc = NULL;
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tenancy.json", e->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"format\": \"bulwark-tenancy\", \"version\": 1,\n \"tenants\": [{\"name\": "
	      "\"acme\", \"id\": 1,\n}]}\n",
	      f);
	fclose(f);
	assert_int_equal(bw_tenancy_service_start(&cfg, &svc, E), -EINVAL);
	assert_null(svc);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ": line 3, column 1: "));

	f = fopen(path, "w");
	fputs("{\"format\": \"bulwark-tenancy\", \"version\": 1, \"tenants\": [{\"name\": "
	      "\"acme\", \"id\": 1, \"principals\": [{\"name\": \"p\", \"kind\": "
	      "\"password\", \"password_hash\": \"hunter2\"}]}]}",
	      f);
	fclose(f);
	assert_int_equal(bw_tenancy_service_start(&cfg, &svc, E), -EINVAL);
	assert_non_null(strstr(err, "tenancy.json: tenants[0].principals[0]: principal \"acme/p\": "
	                            "password_hash: "));
	cfg.state_dir = "/nonexistent/bulwark";
	assert_int_equal(bw_tenancy_service_start(&cfg, &svc, E), -ENOENT);
	assert_non_null(strstr(err, "state_dir /nonexistent/bulwark: "));
}
#endif

#if BW_TEST_PG
/* ---- PostgreSQL only --------------------------------------------------------------- */

struct seen_arg {
	struct bw_tenancy_service *svc;
	const char *tenant, *principal;
	int want; /* -1: absent; 0: disabled; 1: enabled */
};

static bool principal_is(void *arg)
{
	struct seen_arg *a = arg;
	struct bw_tenancy *s = bw_tenancy_service_current(a->svc);
	const struct bw_tenant *t = bw_tenancy_tenant(s, a->tenant, strlen(a->tenant));
	const struct bw_principal *p =
	        t ? bw_tenancy_principal(s, t, a->principal, strlen(a->principal)) : NULL;
	bool ok = a->want < 0 ? !p : p && p->enabled == (a->want == 1);

	bw_tenancy_release(&s);
	return ok;
}

static void test_pg_second_node(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *a = start(e, &e->rec), *b = start(e, NULL);
	struct seen_arg arg = { .svc = a, .tenant = "acme", .principal = "dev1", .want = 0 };
	int64_t took;

	populate(b); /* written through node b */
	assert_true(wait_for(principal_is, &(struct seen_arg){ a, "globex", "bob", 0 }, 5000) >= 0);
	struct bw_tenancy *s = bw_tenancy_service_current(a);
	check_populated(s);
	bw_tenancy_release(&s);

	rec_clear(&e->rec);
	OK(bw_tenancy_service_principal_set_enabled(b, "acme", "dev1", false, E));
	took = wait_for(principal_is, &arg, 1000);
	print_message("disabled on node b, seen on node a after %lld ms\n", (long long)took);
	assert_true(took >= 0 && took < 1000);
	assert_true(wait_for(rec_any, &e->rec, 1000) >= 0);
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "dev1", false));

	OK(bw_tenancy_service_tenant_delete(b, "globex", E));
	took = wait_for(principal_is, &(struct seen_arg){ a, "globex", "bob", -1 }, 1000);
	assert_true(took >= 0 && took < 1000);
	assert_true(rec_has(&e->rec, BW_TENANCY_TENANT, "globex", "globex", true));
	assert_false(e->rec.out_of_order);
	bw_tenancy_service_stop(&b);
	bw_tenancy_service_stop(&a);
}

static void test_pg_plain_sql(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	int64_t took;

	populate(svc);
	rec_clear(&e->rec);
	sql_on(e->url, "INSERT INTO bulwark_principals (tenant, name, kind, password_hash) VALUES "
	               "('acme', 'sqlbot', 'password', '" HASH_SECRET "')");
	took = wait_for(principal_is, &(struct seen_arg){ svc, "acme", "sqlbot", 1 }, 1000);
	print_message("INSERT by SQL seen after %lld ms\n", (long long)took);
	assert_true(took >= 0 && took < 1000);
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "sqlbot", false));

	sql_on(e->url, "UPDATE bulwark_principals SET enabled = false WHERE name = 'sqlbot'");
	took = wait_for(principal_is, &(struct seen_arg){ svc, "acme", "sqlbot", 0 }, 1000);
	assert_true(took >= 0 && took < 1000);

	/* Membership and group rules by SQL reach the effective ACL. */
	sql_on(e->url, "INSERT INTO bulwark_principal_groups VALUES ('acme', 'sqlbot', 'sensors');"
	               "UPDATE bulwark_groups SET rules = 'allow publish sql/#' WHERE name = "
	               "'sensors'");
	bool has_rule = false;
	for (int64_t t0 = now_ms(); !has_rule && now_ms() - t0 < 1000; sleep_ms(5)) {
		struct bw_tenancy *s = bw_tenancy_service_current(svc);
		const struct bw_tenant *a = bw_tenancy_tenant(s, "acme", 4);
		const struct bw_principal *p = bw_tenancy_principal(s, a, "sqlbot", 6);
		const struct bw_group *g = bw_tenancy_group(s, a, "sensors", 7);
		has_rule = p && p->groups_n == 1 && strcmp(g->rules, "allow publish sql/#") == 0;
		bw_tenancy_release(&s);
	}
	assert_true(has_rule);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	struct bw_acl_compiled *c = acl_for(s, "acme", "sqlbot", "x");
	assert_true(PUB(c, "sql/a"));
	bw_acl_compiled_free(&c);
	bw_tenancy_release(&s);

	/* A tenant's own claim name by SQL: the tenant's trigger announces it too. */
	sql_on(e->url, "UPDATE bulwark_tenants SET jwt_tenant_claim = 'org' WHERE name = 'acme'");
	bool has_claim = false;
	for (int64_t t0 = now_ms(); !has_claim && now_ms() - t0 < 1000; sleep_ms(5)) {
		struct bw_tenancy *now = bw_tenancy_service_current(svc);
		has_claim = !strcmp(bw_tenancy_tenant(now, "acme", 4)->jwt_tenant_claim, "org");
		bw_tenancy_release(&now);
	}
	assert_true(has_claim);
	assert_false(sql_ok(e->url, "UPDATE bulwark_tenants SET jwt_tenant_claim = 'my org'"));
	assert_false(sql_ok(e->url, "UPDATE bulwark_tenants SET jwt_tenant_claim = ''"));
	assert_false(sql_ok(e->url, "UPDATE bulwark_tenants SET jwt_tenant_claim = 'caf\u00e9'"));
	assert_true(sql_ok(e->url, "UPDATE bulwark_tenants SET jwt_tenant_claim = NULL WHERE "
	                           "name = 'globex'"));

	/* A row the model refuses is left out (fail closed) and counted. */
	struct bw_tenancy_status st;
	sql_on(e->url, "UPDATE bulwark_principals SET password_hash = 'plaintext' WHERE name = "
	               "'sqlbot'");
	took = wait_for(principal_is, &(struct seen_arg){ svc, "acme", "sqlbot", -1 }, 1000);
	assert_true(took >= 0);
	bw_tenancy_service_status(svc, &st);
	assert_true(st.skipped >= 1);
	assert_true(st.notifications >= 4);

	/* TRUNCATE names no row: everything is read again. */
	sql_on(e->url, "TRUNCATE bulwark_tenants CASCADE");
	took = wait_for(principal_is, &(struct seen_arg){ svc, "acme", "dev1", -1 }, 1000);
	assert_true(took >= 0);
	s = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_tenant_count(s), 0);
	bw_tenancy_release(&s);
	bw_tenancy_service_stop(&svc);
}

struct racer {
	struct env *e;
	pthread_barrier_t *go;
	struct bw_tenancy_service *svc;
	int rc;
	char err[512];
};

static void *race_start(void *arg)
{
	struct racer *r = arg;
	struct bw_tenancy_service_cfg cfg = { .postgres_url = r->e->url, .start_wait_ms = 15000 };

	pthread_barrier_wait(r->go);
	r->rc = bw_tenancy_service_start(&cfg, &r->svc, r->err, sizeof(r->err));
	return NULL;
}

static void test_pg_concurrent_migration(void **state)
{
	struct env *e = env_of(state);
	pthread_barrier_t go;
	struct racer r[3] = { { .e = e, .go = &go }, { .e = e, .go = &go }, { .e = e, .go = &go } };
	pthread_t th[3];

	pthread_barrier_init(&go, NULL, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_start, &r[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < 3; i++) {
		struct bw_tenancy_status st;
		if (r[i].rc != 0)
			fail_msg("service %d: %d %s", i, r[i].rc, r[i].err);
		bw_tenancy_service_status(r[i].svc, &st);
		if (!st.loaded || !st.up)
			fail_msg("service %d not loaded: %s", i, st.last_error);
	}
	/* Each migration was applied once, and all three work on the schema. */
	assert_int_equal(sql_long(e->url, "SELECT count(*) FROM bulwark_schema_version"),
	                 (long)bw__tenancy_migrations_n);
	assert_int_equal(sql_long(e->url, "SELECT max(version) FROM bulwark_schema_version"),
	                 (long)bw__tenancy_migrations_n);
	assert_int_equal(sql_long(e->url, "SELECT count(*) FROM pg_trigger WHERE tgname = "
	                                  "'bulwark_principals_notify'"),
	                 1);
	struct bw_tenant t = tenant("acme");
	OK(bw_tenancy_service_tenant_put(r[1].svc, &t, E));
	for (int i = 0; i < 3; i++) {
		struct seen_arg a = {
			.svc = r[i].svc, .tenant = "acme", .principal = "x", .want = -1
		};
		(void)a;
		bool seen = false;
		for (int64_t t0 = now_ms(); !seen && now_ms() - t0 < 1000; sleep_ms(5)) {
			struct bw_tenancy *s = bw_tenancy_service_current(r[i].svc);
			seen = bw_tenancy_tenant(s, "acme", 4) != NULL;
			bw_tenancy_release(&s);
		}
		assert_true(seen);
	}
	for (int i = 0; i < 3; i++)
		bw_tenancy_service_stop(&r[i].svc);
}

/* A database a node of schema version 1 made: migrated, its rows kept. */
static void test_pg_upgrade_from_1(void **state)
{
	struct env *e = env_of(state);
	char *sql = NULL;

	assert_true(bw__tenancy_migrations_n >= 2);
	assert_true(asprintf(&sql,
	                     "CREATE TABLE bulwark_schema_version (version integer PRIMARY KEY, "
	                     "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
	                     "%s\n;INSERT INTO bulwark_schema_version (version, name) VALUES (1, "
	                     "'%s');"
	                     "INSERT INTO bulwark_tenants (name, jwks) VALUES ('acme', '');",
	                     bw__tenancy_migrations[0].sql, bw__tenancy_migrations[0].name) > 0);
	sql_on(e->url, sql);
	free(sql);
	struct bw_tenancy_service *svc = start(e, NULL);
	assert_int_equal(sql_long(e->url, "SELECT max(version) FROM bulwark_schema_version"),
	                 (long)bw__tenancy_migrations_n);
	claim_is(svc, "acme", "");
	OK(bw_tenancy_service_tenant_set_jwt(svc, "acme", NULL, 0, NULL, 0, NULL, "org", E));
	claim_is(svc, "acme", "org");
	assert_int_equal(sql_long(e->url, "SELECT count(*) FROM bulwark_tenants WHERE "
	                                  "jwt_tenant_claim = 'org'"),
	                 1);
	bw_tenancy_service_stop(&svc);
}

static bool is_down(void *arg)
{
	struct bw_tenancy_status st;

	bw_tenancy_service_status(arg, &st);
	return !st.up;
}

static bool is_up(void *arg)
{
	struct bw_tenancy_status st;

	bw_tenancy_service_status(arg, &st);
	return st.up;
}

static void test_pg_outage(void **state)
{
	struct env *e = env_of(state);
	struct bw_tenancy_service *svc = start(e, &e->rec);
	struct bw_tenancy_status st;
	char sql[256];
	int64_t took;

	populate(svc);
	/* A connection of our own survives; the service's are cut and cannot come back. */
	PGconn *mine = PQconnectdb(e->url);
	assert_int_equal(PQstatus(mine), CONNECTION_OK);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", e->db);
	sql_on(admin_url, sql);
	snprintf(sql, sizeof(sql),
	         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND "
	         "application_name = 'bulwark-tenancy'",
	         e->db);
	sql_on(admin_url, sql);
	took = wait_for(is_down, svc, 3000);
	assert_true(took >= 0);
	bw_tenancy_service_status(svc, &st);
	print_message("down after %lld ms: %s\n", (long long)took, st.last_error);
	assert_non_null(strstr(st.last_error, "PostgreSQL: "));
	assert_true(st.loaded);

	/* The snapshot in force stays; writes fail with a clear error. */
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	check_populated(s);
	bw_tenancy_release(&s);
	struct bw_principal p = principal("acme", "during", NULL, 0, NULL);
	int rc = bw_tenancy_service_principal_put(svc, &p, E);
	assert_true(rc == -ECONNREFUSED || rc == -EIO);
	assert_non_null(strstr(err, "PostgreSQL: "));

	/* A change made meanwhile, then the database comes back. */
	PGresult *r = PQexec(mine, "UPDATE bulwark_principals SET enabled = false WHERE name = "
	                           "'dev1'");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(mine);
	rec_clear(&e->rec);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", e->db);
	sql_on(admin_url, sql);
	took = wait_for(is_up, svc, 5000);
	print_message("up again after %lld ms\n", (long long)took);
	assert_true(took >= 0);
	assert_true(wait_for(principal_is, &(struct seen_arg){ svc, "acme", "dev1", 0 }, 1000) >=
	            0);
	assert_true(rec_has(&e->rec, BW_TENANCY_PRINCIPAL, "acme", "dev1", false));
	bw_tenancy_service_status(svc, &st);
	assert_true(st.reconnects >= 1);
	assert_true(st.reloads >= 2);
	assert_true(st.errors >= 1);

	/* And writes work again. */
	OK(bw_tenancy_service_principal_put(svc, &p, E));
	assert_true(principal_is(&(struct seen_arg){ svc, "acme", "during", 1 }));
	bw_tenancy_service_stop(&svc);
}

/* PostgreSQL unreachable at start: an empty snapshot, status down, then recovery. */
static void test_pg_down_at_start(void **state)
{
	struct env *e = env_of(state);
	char db[80], url[1100], sql[160];
	struct bw_tenancy_status st;

	snprintf(db, sizeof(db), "%s_late", e->db);
	conninfo_for(getenv("BW_TEST_POSTGRES"), db, url, sizeof(url));
	struct bw_tenancy_service_cfg cfg = { .postgres_url = url,
		                              .start_wait_ms = 300,
		                              .backoff_max_ms = 300 };
	struct bw_tenancy_service *svc = NULL;
	OK(bw_tenancy_service_start(&cfg, &svc, E));
	bw_tenancy_service_status(svc, &st);
	assert_false(st.up);
	assert_false(st.loaded);
	assert_non_null(strstr(st.last_error, "PostgreSQL: "));
	print_message("down at start: %s\n", st.last_error);
	struct bw_tenancy *s = bw_tenancy_service_current(svc);
	assert_int_equal(bw_tenancy_tenant_count(s), 0);
	bw_tenancy_release(&s);

	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	sql_on(admin_url, sql);
	int64_t took = wait_for(is_up, svc, 5000);
	assert_true(took >= 0);
	bw_tenancy_service_status(svc, &st);
	assert_true(st.loaded);
	struct bw_tenant t = tenant("late");
	OK(bw_tenancy_service_tenant_put(svc, &t, E));
	bw_tenancy_service_stop(&svc);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
	sql_on(admin_url, sql);
}

static void test_pg_bad_url(void **state)
{
	struct bw_tenancy_service_cfg cfg = { .postgres_url = "postgresql://[bad" };
	struct bw_tenancy_service *svc = NULL;

	(void)state;
	assert_int_equal(bw_tenancy_service_start(&cfg, &svc, E), -EINVAL);
	assert_null(svc);
	assert_non_null(strstr(err, "PostgreSQL URL"));
}
#endif

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_writes_and_lookups),
		T(test_validation),
		T(test_partial_updates),
		T(test_tenant_claim),
		T(test_reload_after_restart),
		T(test_effective_acl),
		T(test_change_callback),
		T(test_concurrent_readers),
		T(test_store_load),
#if !BW_TEST_PG
		T(test_file_damaged),
#endif
#if BW_TEST_PG
		T(test_pg_second_node),
		T(test_pg_plain_sql),
		T(test_pg_concurrent_migration),
		T(test_pg_upgrade_from_1),
		T(test_pg_outage),
		T(test_pg_down_at_start),
		cmocka_unit_test(test_pg_bad_url),
#endif
	};

	return cmocka_run_group_tests_name(
	        BW_TEST_PG ? "tenancy store: postgres" : "tenancy store: file", tests, NULL, NULL);
}
