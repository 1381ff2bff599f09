/*
 * The PostgreSQL tenancy store. Two connections:
 *
 *   - the service connection, on the service thread only, non-blocking and
 *     driven by poll(): it LISTENs on bulwark_tenancy, applies the schema
 *     migrations, loads everything, and on each notification
 *     ('<kind>:<tenant>:<name>', from the triggers of migrations/0001)
 *     reloads the records named (a batch of them in one round trip, in one
 *     REPEATABLE READ transaction) and publishes a snapshot;
 *   - the write connection, blocking, used by writes (which the service
 *     serializes) and by load(). A write runs in one transaction under an
 *     advisory lock that serializes Bulwark's writers across nodes, checks
 *     what constraints cannot say nicely (a hostname or CA another tenant
 *     has, groups that do not exist, one tenant claim name more than
 *     tenants may name) and commits.
 *
 * A write then waits for its change to be in force on this node:
 *   1. the writer adds the record's key to the requested set and takes a
 *      ticket (requested count), then wakes the service thread;
 *   2. the service thread takes the requested keys with the latest ticket,
 *      reads them on its connection (which sees the commit) and publishes;
 *   3. it marks the ticket done; the writer, waiting on the condition,
 *      returns. The notification of the same commit arrives too and
 *      reloads the same rows again: an empty delta, nothing published.
 * Every read and publication happens on the service thread, one after the
 * other, so a reload can never publish older rows over newer ones.
 *
 * When the service connection fails (PostgreSQL stopped, the backend
 * terminated, a query error or timeout) the snapshot in force stays, the
 * status says down with the error, and the thread reconnects after a
 * backoff that doubles from 100 ms up to backoff_max_ms; once connected it
 * migrates, reloads everything, publishes the difference and completes
 * every write that was waiting.
 */
#include "tenancy/store.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tenancy/migrations.h"
#include "tenancy/model_build.h"

/* pg_advisory_xact_lock keys: "BWKTENM1" (migrations) and "BWKTENW1" (writes). */
#define LOCK_MIGRATE "4780603437418368305"
#define LOCK_WRITE   "4780603437418368817"

#define CHANNEL       "bulwark_tenancy"
#define BATCH_MAX     256   /* keys reloaded one by one; more: a full reload */
#define BACKOFF_MIN   100   /* ms */
#define QUERY_TIMEOUT 30000 /* ms a service query may take before the connection is dropped */

struct key {
	char kind; /* 't', 'g', 'p' */
	char tenant[BW_TENANT_NAME_MAX + 1];
	char name[BW_PRINCIPAL_NAME_MAX + 1]; /* "" for a tenant */
};

struct keyset {
	struct key *v;
	size_t n, cap;
	bool all; /* reload everything */
};

enum conn_state { C_DOWN, C_CONNECTING, C_READY };
enum step { ST_NONE, ST_MIGRATE_CHECK, ST_MIGRATE_APPLY, ST_LOAD_FULL, ST_LOAD_KEYS };

struct pg_store {
	const struct bw_tenancy_store_host *host;
	char *url;
	char timeout_s[16];
	int connect_timeout_ms, backoff_max_ms, write_wait_ms;

	/* Service thread only. */
	PGconn *conn;
	enum conn_state state;
	PostgresPollingStatusType want; /* what PQconnectPoll waits for */
	int64_t deadline_ms;            /* of the connection attempt or the query in flight */
	int64_t retry_at_ms;
	int backoff_ms;
	enum step step;
	bool flushing;
	PGresult **res; /* the row sets of the query in flight */
	size_t nres, res_cap;
	char qerr[256]; /* its first error */
	struct keyset notified, inflight;
	uint64_t inflight_ticket;
	bool connected_before;

	/* Writers (serialized by the service) and load(). */
	pthread_mutex_t wmu;
	PGconn *wconn;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct keyset requested;
	uint64_t req_ticket, done_ticket;
	bool up, loaded;
	char last_error[256];
	uint64_t notifications, reconnects, errors, skipped, clashes, reloads;
};

static struct pg_store *pg_of(struct bw_tenancy_store *st)
{
	return (struct pg_store *)st;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(struct pg_store *p, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void logf_(struct pg_store *p, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->host->log(p->host->arg, level, msg);
}

/* libpq's message without its trailing newline. */
static const char *pq_msg(const PGconn *c, char *buf, size_t cap)
{
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	size_t n = strcspn(m, "\n"); /* the first line says it; the rest is advice */

	while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	snprintf(buf, cap, "%.*s", (int)n, n ? m : "unknown error");
	return buf;
}

static void notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* ---- key sets ------------------------------------------------------------------------- */

static void keys_clear(struct keyset *k)
{
	k->n = 0;
	k->all = false;
}

static void keys_free(struct keyset *k)
{
	free(k->v);
	memset(k, 0, sizeof(*k));
}

/* Adds a key (a duplicate is not added again); too many turn into "all". */
static void keys_add(struct keyset *k, char kind, const char *tenant, const char *name)
{
	if (k->all)
		return;
	if (strlen(tenant) > BW_TENANT_NAME_MAX || strlen(name) > BW_PRINCIPAL_NAME_MAX ||
	    bw_tenant_name_check(tenant, strlen(tenant)) != 0)
		return; /* names no record the model can hold */
	for (size_t i = 0; i < k->n; i++) {
		if (k->v[i].kind == kind && strcmp(k->v[i].tenant, tenant) == 0 &&
		    strcmp(k->v[i].name, name) == 0)
			return;
	}
	if (k->n == BATCH_MAX) {
		k->all = true;
		return;
	}
	if (k->n == k->cap) {
		size_t c = k->cap ? k->cap * 2 : 16;
		struct key *v = realloc(k->v, c * sizeof(*v));
		if (!v) {
			k->all = true; /* a full reload needs no memory here */
			return;
		}
		k->v = v;
		k->cap = c;
	}
	struct key *e = &k->v[k->n++];
	e->kind = kind;
	snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
	snprintf(e->name, sizeof(e->name), "%s", name);
}

static void keys_merge(struct keyset *dst, const struct keyset *src)
{
	if (src->all)
		dst->all = true;
	for (size_t i = 0; i < src->n && !dst->all; i++)
		keys_add(dst, src->v[i].kind, src->v[i].tenant, src->v[i].name);
}

/* A notification payload "kind:tenant:name" into k; anything unknown reloads all. */
static void keys_add_payload(struct keyset *k, const char *payload)
{
	const char *c1 = strchr(payload, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	char tenant[BW_TENANT_NAME_MAX + 1];

	if (!c2) {
		k->all = true;
		return;
	}
	size_t klen = (size_t)(c1 - payload), tlen = (size_t)(c2 - c1 - 1);
	if (klen == 3 && memcmp(payload, "all", 3) == 0) {
		k->all = true;
		return;
	}
	if (tlen > BW_TENANT_NAME_MAX)
		return;
	memcpy(tenant, c1 + 1, tlen);
	tenant[tlen] = '\0';
	if (klen == 6 && memcmp(payload, "tenant", 6) == 0)
		keys_add(k, 't', tenant, "");
	else if (klen == 5 && memcmp(payload, "group", 5) == 0)
		keys_add(k, 'g', tenant, c2 + 1);
	else if (klen == 9 && memcmp(payload, "principal", 9) == 0)
		keys_add(k, 'p', tenant, c2 + 1);
	else
		k->all = true;
}

/* ---- SQL text ------------------------------------------------------------------------- */

/* A growing string; after a failed append it stays failed (s NULL). */
struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			goto fail;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap : 256) * 2;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s)
			goto fail;
		b->s = s;
		b->cap = cap;
	}
fail:
	free(b->s);
	b->s = NULL;
	b->failed = true;
}

/* Takes the lock, makes sure the version table exists and reads the version. */
#define MIGRATE_CHECK_SQL                                                                          \
	"BEGIN;"                                                                                   \
	"SELECT pg_advisory_xact_lock(" LOCK_MIGRATE ");"                                          \
	"CREATE TABLE IF NOT EXISTS bulwark_schema_version ("                                      \
	" version integer PRIMARY KEY, name text NOT NULL,"                                        \
	" applied_at timestamptz NOT NULL DEFAULT now());"                                         \
	"SELECT coalesce(max(version), 0) FROM bulwark_schema_version"

/* The migrations after version have, then COMMIT; NULL when out of memory. */
static char *migrate_apply_sql(long have)
{
	struct sbuf b = { 0 };

	for (size_t i = 0; i < bw__tenancy_migrations_n; i++) {
		const struct bw__migration *m = &bw__tenancy_migrations[i];
		if (m->version <= have)
			continue;
		sb_add(&b,
		       "%s\n;INSERT INTO bulwark_schema_version (version, name) VALUES (%d, '%s');",
		       m->sql, m->version, m->name);
	}
	sb_add(&b, "COMMIT");
	return b.s;
}

/* The version in the last row set of a migrate_check_sql run, or -1. */
static long schema_version(PGresult *r)
{
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return -1;
	return strtol(PQgetvalue(r, 0, 0), NULL, 10);
}

/* The five row sets a load reads, in this order. */
enum { R_TENANTS, R_HOSTS, R_GROUPS, R_PRINCIPALS, R_MEMBERS, R_COUNT };

/* Tenant columns: name, id, status, allow_anonymous, the quotas, then these. */
#define T_FIXED 4
#define T_QOS   (T_FIXED + BW__QUOTA_FIELDS)
#define T_CA    (T_QOS + 1)
#define T_ISS   (T_CA + 1)
#define T_AUD   (T_ISS + 1)
#define T_JWKS  (T_AUD + 1)
#define T_CLAIM (T_JWKS + 1) /* jwt_tenant_claim (migration 0002) */
#define T_COLS  (T_CLAIM + 1)

/*
 * The load query: everything (keys NULL) or the records keys names, in one
 * read-only REPEATABLE READ transaction. Names are quoted with
 * PQescapeLiteral on conn. NULL when out of memory.
 */
static char *load_sql(PGconn *conn, const struct keyset *keys)
{
	struct sbuf b = { 0 }, tw = { 0 }, gw = { 0 }, pw = { 0 };
	const char *sep[3] = { "", "", "" };

	for (size_t i = 0; keys && i < keys->n; i++) {
		const struct key *k = &keys->v[i];
		char *t = PQescapeLiteral(conn, k->tenant, strlen(k->tenant));
		char *n = PQescapeLiteral(conn, k->name, strlen(k->name));
		if (!t || !n) {
			b.failed = true;
		} else if (k->kind == 't') {
			sb_add(&tw, "%s%s", sep[0], t);
			sep[0] = ",";
		} else {
			struct sbuf *w = k->kind == 'g' ? &gw : &pw;
			int s = k->kind == 'g' ? 1 : 2;
			sb_add(w, "%s(%s,%s)", sep[s], t, n);
			sep[s] = ",";
		}
		PQfreemem(t);
		PQfreemem(n);
	}
	sb_add(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;SELECT name, id, status, "
	           "allow_anonymous");
	for (size_t i = 0; i < BW__QUOTA_FIELDS; i++)
		sb_add(&b, ", q_%s", bw__quota_fields[i].name);
	sb_add(&b, ", q_max_qos, ca_pem, array_to_json(jwt_issuers), array_to_json(jwt_audiences), "
	           "jwks, jwt_tenant_claim FROM bulwark_tenants");
	if (keys)
		sb_add(&b, " WHERE name IN (%s)", tw.len ? tw.s : "NULL");
	sb_add(&b,
	       " ORDER BY name COLLATE \"C\";SELECT tenant, hostname FROM bulwark_tenant_hosts");
	if (keys)
		sb_add(&b, " WHERE tenant IN (%s)", tw.len ? tw.s : "NULL");
	sb_add(&b, " ORDER BY tenant COLLATE \"C\", hostname COLLATE \"C\";"
	           "SELECT tenant, name, rules FROM bulwark_groups");
	if (keys)
		sb_add(&b, " WHERE (tenant, name) IN (%s)", gw.len ? gw.s : "(NULL, NULL)");
	sb_add(&b,
	       " ORDER BY tenant COLLATE \"C\", name COLLATE \"C\";"
	       "SELECT tenant, name, kind, password_hash, enabled, rules FROM bulwark_principals");
	if (keys)
		sb_add(&b, " WHERE (tenant, name) IN (%s)", pw.len ? pw.s : "(NULL, NULL)");
	sb_add(&b, " ORDER BY tenant COLLATE \"C\", name COLLATE \"C\";"
	           "SELECT tenant, principal, grp FROM bulwark_principal_groups");
	if (keys)
		sb_add(&b, " WHERE (tenant, principal) IN (%s)", pw.len ? pw.s : "(NULL, NULL)");
	sb_add(&b, " ORDER BY tenant COLLATE \"C\", principal COLLATE \"C\", grp COLLATE \"C\";"
	           "COMMIT");
	free(tw.s);
	free(gw.s);
	free(pw.s);
	if (b.failed || tw.failed || gw.failed || pw.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* ---- rows into a snapshot ----------------------------------------------------------- */

/* A text[] column read as JSON (array_to_json) into v (borrowed from j). */
static int json_list(const char *text, json_t **j, const char **v, size_t max, size_t *n)
{
	*n = 0;
	*j = json_loads(text, 0, NULL);
	if (!*j || !json_is_array(*j) || json_array_size(*j) > max)
		return -EINVAL;
	for (size_t i = 0; i < json_array_size(*j); i++) {
		json_t *e = json_array_get(*j, i);
		if (!json_is_string(e))
			return -EINVAL;
		v[(*n)++] = json_string_value(e);
	}
	return 0;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* Compares (a1, a2) with (b1, b2) as "C" collation orders them. */
static int cmp2(const char *a1, const char *a2, const char *b1, const char *b2)
{
	int c = strcmp(a1, b1);

	return c ? c : strcmp(a2 ? a2 : "", b2 ? b2 : "");
}

static int bad(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

struct loader {
	struct pg_store *p;
	struct bw__tbuild *b;
	uint64_t skipped;
};

/* A row the model refuses: logged, counted, and its record left out (fail closed). */
static void skip(struct loader *l, const char *what, const char *msg)
{
	l->skipped++;
	logf_(l->p, 1, "tenancy: PostgreSQL row %s left out: %s", what, msg);
}

static void load_tenant(struct loader *l, PGresult *r, int row, PGresult *hosts, int *h)
{
	const char *name = PQgetvalue(r, row, 0), *sni[BW_TENANT_SNI_MAX];
	const char *iss[BW_TENANT_JWT_CLAIMS_MAX], *aud[BW_TENANT_JWT_CLAIMS_MAX];
	struct bw_tenant t = { .name = name, .name_len = strlen(name) };
	json_t *ji = NULL, *ja = NULL;
	char msg[512] = "";
	uint64_t id = 0, v = 0;
	int rc = 0;

	/* Hosts are ordered by tenant as tenants are by name: walk them along. */
	while (*h < PQntuples(hosts) && strcmp(PQgetvalue(hosts, *h, 0), name) < 0)
		(*h)++;
	for (; *h < PQntuples(hosts) && strcmp(PQgetvalue(hosts, *h, 0), name) == 0; (*h)++) {
		if (t.sni_n == BW_TENANT_SNI_MAX) {
			snprintf(msg, sizeof(msg), "more than %u SNI hostnames", BW_TENANT_SNI_MAX);
			rc = -EINVAL;
		} else {
			sni[t.sni_n++] = PQgetvalue(hosts, *h, 1);
		}
	}
	t.sni = sni;
	if (rc == 0 && !parse_u64(PQgetvalue(r, row, 1), UINT32_MAX - 1, &id))
		rc = bad(msg, sizeof(msg), "id is not a number a tenant can have");
	if (rc == 0 && bw_tenant_status_parse(PQgetvalue(r, row, 2), &t.status) != 0)
		rc = bad(msg, sizeof(msg), "status is not active or suspended");
	t.allow_anonymous = PQgetvalue(r, row, 3)[0] == 't';
	for (size_t i = 0; rc == 0 && i < BW__QUOTA_FIELDS; i++) {
		const struct bw__quota_field *f = &bw__quota_fields[i];
		if (!parse_u64(PQgetvalue(r, row, T_FIXED + (int)i),
		               f->width == 4 ? UINT32_MAX : INT64_MAX, &v))
			rc = bad(msg, sizeof(msg), "q_%s is out of range", f->name);
		else
			bw__quota_set(&t.quotas, f, v);
	}
	t.quotas.max_qos = BW_QUOTA_QOS_DEFAULT;
	if (rc == 0 && !PQgetisnull(r, row, T_QOS)) {
		if (!parse_u64(PQgetvalue(r, row, T_QOS), 2, &v))
			rc = bad(msg, sizeof(msg), "q_max_qos is not 0, 1 or 2");
		t.quotas.max_qos = (uint8_t)v;
	}
	t.ca_pem = PQgetvalue(r, row, T_CA);
	t.jwks = PQgetvalue(r, row, T_JWKS);
	t.jwt_tenant_claim = PQgetisnull(r, row, T_CLAIM) ? NULL : PQgetvalue(r, row, T_CLAIM);
	if (rc == 0 && (json_list(PQgetvalue(r, row, T_ISS), &ji, iss, BW_TENANT_JWT_CLAIMS_MAX,
	                          &t.jwt_issuers_n) != 0 ||
	                json_list(PQgetvalue(r, row, T_AUD), &ja, aud, BW_TENANT_JWT_CLAIMS_MAX,
	                          &t.jwt_audiences_n) != 0))
		rc = bad(msg, sizeof(msg),
		         "jwt_issuers or jwt_audiences: more than %u "
		         "entries or not strings",
		         BW_TENANT_JWT_CLAIMS_MAX);
	t.jwt_issuers = iss;
	t.jwt_audiences = aud;
	if (rc == 0)
		rc = bw__tbuild_tenant_put(l->b, &t, (uint32_t)id, msg, sizeof(msg));
	if (rc != 0) {
		char what[96];
		snprintf(what, sizeof(what), "tenant \"%.63s\"", name);
		skip(l, what, msg);
		if (bw__tbuild_tenant(l->b, name, strlen(name)))
			bw__tbuild_tenant_delete(l->b, name, strlen(name), NULL, 0);
	}
	json_decref(ji);
	json_decref(ja);
}

static void load_group(struct loader *l, PGresult *r, int row)
{
	struct bw_group g = { .tenant = PQgetvalue(r, row, 0),
		              .name = PQgetvalue(r, row, 1),
		              .rules = PQgetvalue(r, row, 2) };
	char msg[512];

	g.name_len = strlen(g.name);
	if (!bw__tbuild_tenant(l->b, g.tenant, strlen(g.tenant)))
		return; /* its tenant was left out */
	if (bw__tbuild_group_put(l->b, &g, msg, sizeof(msg)) != 0) {
		char what[400];
		snprintf(what, sizeof(what), "group \"%.63s/%.256s\"", g.tenant, g.name);
		skip(l, what, msg);
		if (bw__tbuild_group(l->b, g.tenant, g.name))
			bw__tbuild_group_delete(l->b, g.tenant, g.name, NULL, 0);
	}
}

static void load_principal(struct loader *l, PGresult *r, int row, PGresult *m, int *k)
{
	const char *tenant = PQgetvalue(r, row, 0), *name = PQgetvalue(r, row, 1);
	const char *groups[BW_PRINCIPAL_GROUPS_MAX + 1];
	struct bw_principal p = { .tenant = tenant, .name = name, .name_len = strlen(name) };
	char msg[512] = "";
	int rc = 0;

	while (*k < PQntuples(m) &&
	       cmp2(PQgetvalue(m, *k, 0), PQgetvalue(m, *k, 1), tenant, name) < 0)
		(*k)++;
	for (; *k < PQntuples(m) &&
	       cmp2(PQgetvalue(m, *k, 0), PQgetvalue(m, *k, 1), tenant, name) == 0;
	     (*k)++) {
		if (p.groups_n == BW_PRINCIPAL_GROUPS_MAX)
			rc = bad(msg, sizeof(msg), "in more than %u groups",
			         BW_PRINCIPAL_GROUPS_MAX);
		else
			groups[p.groups_n++] = PQgetvalue(m, *k, 2);
	}
	p.groups = groups;
	if (!bw__tbuild_tenant(l->b, tenant, strlen(tenant)))
		return;
	if (rc == 0 && bw_principal_kind_parse(PQgetvalue(r, row, 2), &p.kind) != 0)
		rc = bad(msg, sizeof(msg), "kind is not password, certificate or token");
	p.password_hash = PQgetisnull(r, row, 3) ? NULL : PQgetvalue(r, row, 3);
	p.enabled = PQgetvalue(r, row, 4)[0] == 't';
	p.rules = PQgetvalue(r, row, 5);
	if (rc == 0)
		rc = bw__tbuild_principal_put(l->b, &p, false, msg, sizeof(msg));
	if (rc != 0) {
		char what[400];
		snprintf(what, sizeof(what), "principal \"%.63s/%.256s\"", tenant, name);
		skip(l, what, msg);
		if (bw__tbuild_principal(l->b, tenant, name))
			bw__tbuild_principal_delete(l->b, tenant, name, NULL, 0);
	}
}

/* True when r has a row whose first columns are tenant (and name, when two_cols). */
static bool row_has(PGresult *r, const char *tenant, const char *name, bool two_cols)
{
	for (int i = 0; i < PQntuples(r); i++) {
		if (strcmp(PQgetvalue(r, i, 0), tenant) == 0 &&
		    (!two_cols || strcmp(PQgetvalue(r, i, 1), name) == 0))
			return true;
	}
	return false;
}

/*
 * Builds a snapshot from the five row sets of a load: everything (keys
 * NULL: from nothing) or the records keys names (over the snapshot in
 * force: a named record without a row was deleted).
 */
static int build_snapshot(struct pg_store *p, PGresult *const *res, const struct keyset *keys,
                          struct bw_tenancy **out, char *err, size_t cap)
{
	struct bw_tenancy *base = keys ? p->host->current(p->host->arg) : NULL;
	struct loader l = { .p = p, .b = bw__tbuild_new(base) };
	size_t clashes = 0;
	int h = 0, m = 0, rc;

	bw_tenancy_release(&base);
	if (!l.b) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < PQntuples(res[R_TENANTS]); i++)
		load_tenant(&l, res[R_TENANTS], i, res[R_HOSTS], &h);
	for (size_t i = 0; keys && i < keys->n; i++) {
		const struct key *k = &keys->v[i];
		if (k->kind == 't' && !row_has(res[R_TENANTS], k->tenant, NULL, false) &&
		    bw__tbuild_tenant(l.b, k->tenant, strlen(k->tenant)))
			bw__tbuild_tenant_delete(l.b, k->tenant, strlen(k->tenant), NULL, 0);
	}
	for (int i = 0; i < PQntuples(res[R_GROUPS]); i++)
		load_group(&l, res[R_GROUPS], i);
	for (size_t i = 0; keys && i < keys->n; i++) {
		const struct key *k = &keys->v[i];
		if (k->kind == 'g' && !row_has(res[R_GROUPS], k->tenant, k->name, true) &&
		    bw__tbuild_group(l.b, k->tenant, k->name))
			bw__tbuild_group_delete(l.b, k->tenant, k->name, NULL, 0);
	}
	for (int i = 0; i < PQntuples(res[R_PRINCIPALS]); i++)
		load_principal(&l, res[R_PRINCIPALS], i, res[R_MEMBERS], &m);
	for (size_t i = 0; keys && i < keys->n; i++) {
		const struct key *k = &keys->v[i];
		if (k->kind == 'p' && !row_has(res[R_PRINCIPALS], k->tenant, k->name, true) &&
		    bw__tbuild_principal(l.b, k->tenant, k->name))
			bw__tbuild_principal_delete(l.b, k->tenant, k->name, NULL, 0);
	}
	rc = bw__tbuild_finish(&l.b, 0, false, &clashes, out, err, cap);
	pthread_mutex_lock(&p->mu);
	p->skipped += l.skipped;
	if (!keys)
		p->clashes = clashes;
	pthread_mutex_unlock(&p->mu);
	if (clashes)
		logf_(p, 1,
		      "tenancy: %zu SNI hostnames or CAs are claimed by two tenants: they "
		      "resolve to none",
		      clashes);
	return rc;
}

/* ---- the service connection -------------------------------------------------------- */

static void clear_results(struct pg_store *p)
{
	for (size_t i = 0; i < p->nres; i++)
		PQclear(p->res[i]);
	p->nres = 0;
	p->qerr[0] = '\0';
}

static void set_error(struct pg_store *p, const char *msg, bool down)
{
	pthread_mutex_lock(&p->mu);
	snprintf(p->last_error, sizeof(p->last_error), "%.255s", msg);
	p->errors++;
	if (down)
		p->up = false;
	pthread_mutex_unlock(&p->mu);
}

/* Drops the service connection after an error and schedules the next attempt. */
static void conn_fail(struct pg_store *p, const char *why)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "PostgreSQL: %s", why);
	set_error(p, msg, true);
	logf_(p, 0, "tenancy: %s; retrying in %d ms (the snapshot in force stays)", msg,
	      p->backoff_ms);
	PQfinish(p->conn);
	p->conn = NULL;
	clear_results(p);
	keys_clear(&p->notified);
	keys_clear(&p->inflight);
	p->state = C_DOWN;
	p->step = ST_NONE;
	p->flushing = false;
	p->retry_at_ms = now_ms() + p->backoff_ms;
	p->backoff_ms =
	        p->backoff_ms * 2 > p->backoff_max_ms ? p->backoff_max_ms : p->backoff_ms * 2;
}

/* Connection parameters: the URL, then what this store insists on. */
static const char *const conn_keys[] = {
	"dbname",          "connect_timeout",     "application_name", "keepalives",
	"keepalives_idle", "keepalives_interval", "keepalives_count", NULL,
};

static void conn_values(const struct pg_store *p, const char **v)
{
	v[0] = p->url;
	v[1] = p->timeout_s;
	v[2] = "bulwark-tenancy";
	v[3] = "1";
	v[4] = "10";
	v[5] = "5";
	v[6] = "3";
	v[7] = NULL;
}

static void start_connect(struct pg_store *p)
{
	const char *values[8];
	char msg[256];

	conn_values(p, values);
	p->conn = PQconnectStartParams(conn_keys, values, 1);
	if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	p->state = C_CONNECTING;
	p->want = PGRES_POLLING_WRITING;
	p->deadline_ms = now_ms() + p->connect_timeout_ms;
}

/* Sends a query on the service connection; step says what its results are for. */
static void send_query(struct pg_store *p, const char *sql, enum step step)
{
	char msg[256];

	clear_results(p);
	if (!sql) {
		conn_fail(p, "out of memory building a query");
		return;
	}
	if (!PQsendQuery(p->conn, sql)) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	int f = PQflush(p->conn);
	if (f < 0) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	p->flushing = f == 1;
	p->step = step;
	p->deadline_ms = now_ms() + QUERY_TIMEOUT;
}

/*
 * Starts a reload if one is due and none is in flight: of everything when
 * asked (or too many keys), else of the keys notifications and writers
 * named. Its ticket is the writers' count when the keys were taken.
 */
static void maybe_reload(struct pg_store *p, bool full)
{
	char *sql;

	if (p->state != C_READY || p->step != ST_NONE)
		return;
	keys_clear(&p->inflight);
	keys_merge(&p->inflight, &p->notified);
	keys_clear(&p->notified);
	pthread_mutex_lock(&p->mu);
	keys_merge(&p->inflight, &p->requested);
	keys_clear(&p->requested);
	p->inflight_ticket = p->req_ticket;
	pthread_mutex_unlock(&p->mu);
	if (full || p->inflight.all) {
		sql = load_sql(p->conn, NULL);
		send_query(p, sql, ST_LOAD_FULL);
	} else if (p->inflight.n) {
		sql = load_sql(p->conn, &p->inflight);
		send_query(p, sql, ST_LOAD_KEYS);
	} else {
		return;
	}
	free(sql);
}

/* Publishes what a load read, and completes the writes it covers. */
static void loaded(struct pg_store *p, bool full)
{
	struct bw_tenancy *snap = NULL;
	char msg[512];

	if (p->nres != R_COUNT) {
		conn_fail(p, "a load returned an unexpected number of row sets");
		return;
	}
	if (build_snapshot(p, p->res, full ? NULL : &p->inflight, &snap, msg, sizeof(msg)) != 0) {
		conn_fail(p, msg);
		return;
	}
	clear_results(p);
	p->host->publish(p->host->arg, snap, full);
	pthread_mutex_lock(&p->mu);
	if (full) {
		p->reloads++;
		p->up = true;
		p->loaded = true;
	}
	p->done_ticket = p->inflight_ticket;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	if (full) {
		p->backoff_ms = BACKOFF_MIN;
		logf_(p, 2, "tenancy: PostgreSQL loaded");
	}
}

/* The query in flight has delivered all its results. */
static void step_done(struct pg_store *p)
{
	enum step step = p->step;
	char msg[320];

	p->step = ST_NONE;
	if (p->qerr[0]) {
		snprintf(msg, sizeof(msg), "%s", p->qerr);
		conn_fail(p, msg);
		return;
	}
	switch (step) {
	case ST_MIGRATE_CHECK: {
		long have = schema_version(p->nres ? p->res[p->nres - 1] : NULL);
		if (have < 0) {
			conn_fail(p, "cannot read bulwark_schema_version");
			return;
		}
		if ((size_t)have > bw__tenancy_migrations_n)
			logf_(p, 1,
			      "tenancy: the schema is at version %ld, newer than this node's %zu",
			      have, bw__tenancy_migrations_n);
		char *sql = migrate_apply_sql(have);
		send_query(p, sql, ST_MIGRATE_APPLY);
		free(sql);
		break;
	}
	case ST_MIGRATE_APPLY:
		maybe_reload(p, true);
		break;
	case ST_LOAD_FULL:
	case ST_LOAD_KEYS:
		loaded(p, step == ST_LOAD_FULL);
		break;
	case ST_NONE:
		break;
	}
}

static void connected(struct pg_store *p)
{
	char msg[256];

	if (PQsetnonblocking(p->conn, 1) != 0) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	PQsetNoticeProcessor(p->conn, notice_quiet, NULL);
	p->state = C_READY;
	pthread_mutex_lock(&p->mu);
	if (p->connected_before)
		p->reconnects++;
	pthread_mutex_unlock(&p->mu);
	p->connected_before = true;
	/* LISTEN first, so that no change after the load that follows goes unheard. */
	send_query(p, "LISTEN " CHANNEL ";" MIGRATE_CHECK_SQL, ST_MIGRATE_CHECK);
}

/* Reads what arrived on the ready connection and moves the query in flight along. */
static void ready_io(struct pg_store *p, short revents)
{
	char msg[256];
	PGnotify *n;

	if ((revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(p->conn)) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	if (p->flushing) {
		int f = PQflush(p->conn);
		if (f < 0) {
			conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
			return;
		}
		p->flushing = f == 1;
	}
	while (p->state == C_READY && p->step != ST_NONE && !p->flushing && !PQisBusy(p->conn)) {
		PGresult *r = PQgetResult(p->conn);
		if (!r) {
			step_done(p);
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_TUPLES_OK && p->nres < R_COUNT + 4) {
			if (p->nres == p->res_cap) {
				size_t c = p->res_cap ? p->res_cap * 2 : 8;
				PGresult **v = realloc(p->res, c * sizeof(*v));
				if (!v) {
					PQclear(r);
					conn_fail(p, "out of memory");
					return;
				}
				p->res = v;
				p->res_cap = c;
			}
			p->res[p->nres++] = r;
			continue;
		}
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !p->qerr[0]) {
			const char *e = PQresultErrorMessage(r);
			snprintf(p->qerr, sizeof(p->qerr), "%.*s", (int)strcspn(e, "\n"),
			         *e ? e : PQresStatus(st));
		}
		PQclear(r);
	}
	if (p->state != C_READY)
		return;
	while ((n = PQnotifies(p->conn)) != NULL) {
		keys_add_payload(&p->notified, n->extra);
		pthread_mutex_lock(&p->mu);
		p->notifications++;
		pthread_mutex_unlock(&p->mu);
		PQfreemem(n);
	}
	if (PQstatus(p->conn) == CONNECTION_BAD) {
		conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		return;
	}
	maybe_reload(p, false);
}

static void pg_run(struct bw_tenancy_store *st, const struct pollfd *fds, size_t nfds)
{
	struct pg_store *p = pg_of(st);
	short revents = nfds ? fds[0].revents : 0;
	char msg[256];

	switch (p->state) {
	case C_DOWN:
		if (now_ms() >= p->retry_at_ms)
			start_connect(p);
		break;
	case C_CONNECTING:
		if (revents) {
			p->want = PQconnectPoll(p->conn);
			if (p->want == PGRES_POLLING_OK)
				connected(p);
			else if (p->want == PGRES_POLLING_FAILED)
				conn_fail(p, pq_msg(p->conn, msg, sizeof(msg)));
		}
		if (p->state == C_CONNECTING && now_ms() >= p->deadline_ms)
			conn_fail(p, "connection timed out");
		break;
	case C_READY:
		ready_io(p, revents);
		if (p->state == C_READY && p->step != ST_NONE && now_ms() >= p->deadline_ms)
			conn_fail(p, "query timed out");
		break;
	}
}

static size_t pg_poll_fds(struct bw_tenancy_store *st, struct pollfd *fds, size_t cap,
                          int *timeout_ms)
{
	struct pg_store *p = pg_of(st);
	int64_t until = -1, now = now_ms();

	if (p->state == C_DOWN) {
		until = p->retry_at_ms;
	} else if (p->conn && PQsocket(p->conn) >= 0 && cap > 0) {
		fds[0].fd = PQsocket(p->conn);
		fds[0].revents = 0;
		if (p->state == C_CONNECTING)
			fds[0].events = p->want == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		else
			fds[0].events = POLLIN | (p->flushing ? POLLOUT : 0);
		if (p->state == C_CONNECTING || p->step != ST_NONE)
			until = p->deadline_ms;
		if (until >= 0) {
			int64_t t = until > now ? until - now : 0;
			*timeout_ms = *timeout_ms < 0 || t < *timeout_ms ? (int)t : *timeout_ms;
		}
		return 1;
	}
	/* Down: until the next attempt. (Connected without a socket cannot last: soon.) */
	int64_t t = until < 0 ? 10 : until > now ? until - now : 0;
	*timeout_ms = *timeout_ms < 0 || t < *timeout_ms ? (int)t : *timeout_ms;
	return 0;
}

/* ---- the write connection ---------------------------------------------------------- */

/* A failed statement as -errno and a message ("PostgreSQL: ..."). */
static int pq_fail(struct pg_store *p, PGresult *r, char *err, size_t cap)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[256];
	int rc = -EIO;

	if (!primary)
		primary = pq_msg(p->wconn, msg, sizeof(msg));
	if (!p->wconn || PQstatus(p->wconn) == CONNECTION_BAD)
		rc = -ECONNREFUSED;
	else if (state && strcmp(state, "23505") == 0)
		rc = -EEXIST;
	else if (state && strcmp(state, "23503") == 0)
		rc = -ENOENT;
	else if (state && (strcmp(state, "23514") == 0 || strncmp(state, "22", 2) == 0))
		rc = -EINVAL;
	else if (state && strcmp(state, "57014") == 0)
		rc = -ETIMEDOUT;
	snprintf(err, cap, "PostgreSQL: %s", primary);
	return rc;
}

/*
 * Runs one statement with text parameters. Returns 0 with *out (may be
 * NULL: the result is dropped) or -errno with err.
 */
static int w_exec(struct pg_store *p, const char *sql, int n, const char *const *params,
                  PGresult **out, char *err, size_t cap)
{
	PGresult *r = PQexecParams(p->wconn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = pq_fail(p, r, err, cap);
		PQclear(r);
		r = NULL;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return rc;
}

/* Runs a statement that takes no parameters and may be several (migrations). */
static int w_simple(struct pg_store *p, const char *sql, PGresult **last, char *err, size_t cap)
{
	PGresult *r = PQexec(p->wconn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = pq_fail(p, r, err, cap);
		PQclear(r);
		return rc;
	}
	if (last)
		*last = r;
	else
		PQclear(r);
	return 0;
}

/* The write connection, connected and migrated. Caller holds wmu. */
static int w_connect(struct pg_store *p, char *err, size_t cap)
{
	const char *values[8];
	PGresult *r = NULL;
	char msg[256];
	int rc;

	if (p->wconn && PQstatus(p->wconn) == CONNECTION_OK)
		return 0;
	PQfinish(p->wconn);
	conn_values(p, values);
	p->wconn = PQconnectdbParams(conn_keys, values, 1);
	if (!p->wconn || PQstatus(p->wconn) != CONNECTION_OK) {
		snprintf(err, cap, "PostgreSQL: %s", pq_msg(p->wconn, msg, sizeof(msg)));
		PQfinish(p->wconn);
		p->wconn = NULL;
		return -ECONNREFUSED;
	}
	PQsetNoticeProcessor(p->wconn, notice_quiet, NULL);
	rc = w_simple(p, "SET statement_timeout = '30s'", NULL, err, cap);
	if (rc == 0)
		rc = w_simple(p, MIGRATE_CHECK_SQL, &r, err, cap);
	if (rc == 0) {
		char *sql = migrate_apply_sql(schema_version(r));
		rc = sql ? w_simple(p, sql, NULL, err, cap) : -ENOMEM;
		if (!sql)
			snprintf(err, cap, "out of memory");
		free(sql);
	}
	PQclear(r);
	if (rc != 0) {
		PQfinish(p->wconn);
		p->wconn = NULL;
	}
	return rc;
}

/* '{"a","b"}': a text[] literal of v[0..n). NULL when out of memory. */
static char *pg_array(const char *const *v, size_t n)
{
	struct sbuf b = { 0 };

	sb_add(&b, "{");
	for (size_t i = 0; i < n; i++) {
		sb_add(&b, "%s\"", i ? "," : "");
		for (const char *c = v[i]; *c; c++)
			sb_add(&b, "%s%c", (*c == '"' || *c == '\\') ? "\\" : "", *c);
		sb_add(&b, "\"");
	}
	sb_add(&b, "}");
	return b.s;
}

/* -ENOENT with a message unless tenant exists. */
static int w_tenant_exists(struct pg_store *p, const char *tenant, char *err, size_t cap)
{
	const char *params[1] = { tenant };
	PGresult *r;
	int rc =
	        w_exec(p, "SELECT 1 FROM bulwark_tenants WHERE name = $1", 1, params, &r, err, cap);

	if (rc == 0 && PQntuples(r) == 0) {
		snprintf(err, cap, "no tenant \"%s\"", tenant);
		rc = -ENOENT;
	}
	PQclear(r);
	return rc;
}

/* -ENOENT with a message when the last statement changed no row. */
static int w_changed(PGresult *r, const char *what, const char *tenant, const char *name, char *err,
                     size_t cap)
{
	if (strcmp(PQcmdTuples(r), "0") != 0)
		return 0;
	if (name)
		snprintf(err, cap, "no %s \"%s\" in tenant \"%s\"", what, name, tenant);
	else
		snprintf(err, cap, "no tenant \"%s\"", tenant);
	return -ENOENT;
}

/* Replaces tenant's SNI hostnames; one another tenant has is -EEXIST. */
static int w_hosts(struct pg_store *p, const char *tenant, const char *const *sni, size_t n,
                   char *err, size_t cap)
{
	char *arr = pg_array(sni, n);
	const char *params[2] = { tenant, arr };
	PGresult *r = NULL;
	int rc;

	if (!arr) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	rc = w_exec(p,
	            "SELECT hostname, tenant FROM bulwark_tenant_hosts WHERE hostname = "
	            "ANY($2::text[]) AND tenant <> $1 ORDER BY hostname LIMIT 1",
	            2, params, &r, err, cap);
	if (rc == 0 && PQntuples(r) > 0) {
		snprintf(err, cap, "sni hostname \"%s\" already belongs to tenant \"%s\"",
		         PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
		rc = -EEXIST;
	}
	if (rc == 0)
		rc = w_exec(
		        p,
		        "DELETE FROM bulwark_tenant_hosts WHERE tenant = $1 AND NOT (hostname = "
		        "ANY($2::text[]))",
		        2, params, NULL, err, cap);
	if (rc == 0)
		rc = w_exec(p,
		            "INSERT INTO bulwark_tenant_hosts (hostname, tenant) SELECT h, "
		            "$1::text FROM "
		            "unnest($2::text[]) h ON CONFLICT (hostname) DO NOTHING",
		            2, params, NULL, err, cap);
	PQclear(r);
	free(arr);
	return rc;
}

/* -EEXIST when another tenant's CA bundle holds a certificate of pem. */
static int w_ca_clash(struct pg_store *p, const char *tenant, const char *pem, char *err,
                      size_t cap)
{
	uint8_t(*mine)[BW_TENANCY_CA_FP_LEN] = NULL;
	const char *params[1] = { tenant };
	size_t n = 0;
	PGresult *r = NULL;
	int rc;

	if (!pem || !*pem)
		return 0;
	rc = bw__tenancy_ca_fingerprints(pem, strlen(pem), &mine, &n, err, cap);
	if (rc == 0)
		rc = w_exec(p,
		            "SELECT name, ca_pem FROM bulwark_tenants WHERE name <> $1 AND "
		            "ca_pem <> ''",
		            1, params, &r, err, cap);
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		uint8_t(*theirs)[BW_TENANCY_CA_FP_LEN] = NULL;
		size_t m = 0;
		const char *other = PQgetvalue(r, i, 1);
		if (bw__tenancy_ca_fingerprints(other, strlen(other), &theirs, &m, NULL, 0) != 0)
			continue; /* a bundle the model refuses resolves nobody */
		for (size_t a = 0; rc == 0 && a < n; a++) {
			for (size_t b = 0; rc == 0 && b < m; b++) {
				if (memcmp(mine[a], theirs[b], BW_TENANCY_CA_FP_LEN) == 0) {
					snprintf(err, cap,
					         "CA certificate %zu of ca_pem already belongs to "
					         "tenant \"%s\"",
					         a + 1, PQgetvalue(r, i, 0));
					rc = -EEXIST;
				}
			}
		}
		free(theirs);
	}
	PQclear(r);
	free(mine);
	return rc;
}

/*
 * -EINVAL when tenant's own tenant claim name would be one more distinct
 * name than tenants may have (model.h): the writes are serialized by the
 * write lock, so the count cannot move before the commit.
 */
static int w_claims(struct pg_store *p, const char *tenant, const char *claim, char *err,
                    size_t cap)
{
	const char *params[2] = { tenant, claim };
	PGresult *r = NULL;
	int rc;

	if (!claim || !*claim)
		return 0;
	rc = w_exec(p,
	            "SELECT count(DISTINCT jwt_tenant_claim), coalesce(bool_or(jwt_tenant_claim = "
	            "$2), false) FROM bulwark_tenants WHERE name <> $1 AND jwt_tenant_claim IS "
	            "NOT NULL",
	            2, params, &r, err, cap);
	if (rc == 0 && PQntuples(r) == 1 && PQgetvalue(r, 0, 1)[0] != 't' &&
	    strtol(PQgetvalue(r, 0, 0), NULL, 10) >= (long)BW_TENANCY_CLAIM_NAMES_MAX - 1)
		rc = bw__tenancy_claims_full(tenant, claim, err, cap);
	PQclear(r);
	return rc;
}

/* Replaces principal's group memberships; every group must exist (-ENOENT). */
static int w_members(struct pg_store *p, const char *tenant, const char *name,
                     const char *const *groups, size_t n, char *err, size_t cap)
{
	char *arr = pg_array(groups, n);
	const char *params[3] = { tenant, name, arr };
	PGresult *r = NULL;
	int rc;

	if (!arr) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	rc = w_exec(
	        p,
	        "SELECT g FROM unnest($3::text[]) g WHERE NOT EXISTS (SELECT 1 FROM "
	        "bulwark_groups WHERE tenant = $1 AND name = g) AND $2::text IS NOT NULL LIMIT 1",
	        3, params, &r, err, cap);
	if (rc == 0 && PQntuples(r) > 0) {
		snprintf(err, cap, "principal \"%s/%s\": groups: no group \"%s\"", tenant, name,
		         PQgetvalue(r, 0, 0));
		rc = -ENOENT;
	}
	if (rc == 0)
		rc = w_exec(
		        p,
		        "DELETE FROM bulwark_principal_groups WHERE tenant = $1 AND principal = $2 "
		        "AND NOT (grp = ANY($3::text[]))",
		        3, params, NULL, err, cap);
	if (rc == 0)
		rc = w_exec(p,
		            "INSERT INTO bulwark_principal_groups (tenant, principal, grp) SELECT "
		            "$1::text, "
		            "$2::text, g FROM unnest($3::text[]) g ON CONFLICT DO NOTHING",
		            3, params, NULL, err, cap);
	PQclear(r);
	free(arr);
	return rc;
}

/* The quotas as parameters: 12 numbers, then q_max_qos (NULL: the default). */
struct qparams {
	char num[BW__QUOTA_FIELDS][24];
	char qos[4];
};

static void quota_params(const struct bw_quotas *q, struct qparams *qp, const char **params)
{
	for (size_t i = 0; i < BW__QUOTA_FIELDS; i++) {
		snprintf(qp->num[i], sizeof(qp->num[i]), "%" PRIu64,
		         bw__quota_get(q, &bw__quota_fields[i]));
		params[i] = qp->num[i];
	}
	snprintf(qp->qos, sizeof(qp->qos), "%u", q->max_qos);
	params[BW__QUOTA_FIELDS] = q->max_qos == BW_QUOTA_QOS_DEFAULT ? NULL : qp->qos;
}

/* "q_a = $first, q_b = $first+1, ..., q_max_qos = $first+12" or the column list alone. */
static void quota_sql(struct sbuf *b, int first, bool assign)
{
	for (size_t i = 0; i <= BW__QUOTA_FIELDS; i++) {
		const char *name = i < BW__QUOTA_FIELDS ? bw__quota_fields[i].name : "max_qos";
		if (assign)
			sb_add(b, "%sq_%s = $%zu", i ? ", " : "", name, first + i);
		else
			sb_add(b, "%sq_%s", i ? ", " : "", name);
	}
}

static int w_tenant_put(struct pg_store *p, const struct bw_tenant *t, char *err, size_t cap)
{
	const char *params[8 + BW__QUOTA_FIELDS + 1];
	const char *claim =
	        t->jwt_tenant_claim && *t->jwt_tenant_claim ? t->jwt_tenant_claim : NULL;
	struct qparams qp;
	struct sbuf b = { 0 };
	char *iss = pg_array(t->jwt_issuers, t->jwt_issuers_n);
	char *aud = pg_array(t->jwt_audiences, t->jwt_audiences_n);
	int rc = -ENOMEM;

	params[0] = t->name;
	params[1] = bw_tenant_status_name(t->status);
	params[2] = t->allow_anonymous ? "true" : "false";
	quota_params(&t->quotas, &qp, params + 3);
	params[3 + BW__QUOTA_FIELDS + 1] = t->ca_pem ? t->ca_pem : "";
	params[3 + BW__QUOTA_FIELDS + 2] = iss;
	params[3 + BW__QUOTA_FIELDS + 3] = aud;
	params[3 + BW__QUOTA_FIELDS + 4] = t->jwks ? t->jwks : "";
	params[3 + BW__QUOTA_FIELDS + 5] = claim;
	sb_add(&b, "INSERT INTO bulwark_tenants (name, status, allow_anonymous, ");
	quota_sql(&b, 0, false);
	sb_add(&b, ", ca_pem, jwt_issuers, jwt_audiences, jwks, jwt_tenant_claim) VALUES ($1, $2, "
	           "$3");
	for (size_t i = 4; i <= 3 + BW__QUOTA_FIELDS + 6; i++)
		sb_add(&b, ", $%zu", i);
	sb_add(&b, ") ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, allow_anonymous = "
	           "EXCLUDED.allow_anonymous, ca_pem = EXCLUDED.ca_pem, jwt_issuers = "
	           "EXCLUDED.jwt_issuers, jwt_audiences = EXCLUDED.jwt_audiences, jwks = "
	           "EXCLUDED.jwks, jwt_tenant_claim = EXCLUDED.jwt_tenant_claim");
	for (size_t i = 0; i <= BW__QUOTA_FIELDS; i++) {
		const char *name = i < BW__QUOTA_FIELDS ? bw__quota_fields[i].name : "max_qos";
		sb_add(&b, ", q_%s = EXCLUDED.q_%s", name, name);
	}
	if (iss && aud && b.s) {
		rc = w_ca_clash(p, t->name, t->ca_pem, err, cap);
		if (rc == 0)
			rc = w_claims(p, t->name, claim, err, cap);
		if (rc == 0)
			rc = w_exec(p, b.s, 3 + BW__QUOTA_FIELDS + 6, params, NULL, err, cap);
		if (rc == 0)
			rc = w_hosts(p, t->name, t->sni, t->sni_n, err, cap);
	} else {
		snprintf(err, cap, "out of memory");
	}
	free(b.s);
	free(iss);
	free(aud);
	return rc;
}

static int w_tenant_update(struct pg_store *p, const struct bw_tenancy_op *op, char *err,
                           size_t cap)
{
	const char *params[2 + BW__QUOTA_FIELDS] = { op->tenant };
	struct qparams qp;
	struct sbuf b = { 0 };
	char *iss = NULL, *aud = NULL;
	PGresult *r = NULL;
	int n = 2, rc = 0;

	switch (op->kind) {
	case BW_OP_TENANT_STATUS:
		sb_add(&b, "UPDATE bulwark_tenants SET status = $2");
		params[1] = bw_tenant_status_name(op->t->status);
		break;
	case BW_OP_TENANT_ANONYMOUS:
		sb_add(&b, "UPDATE bulwark_tenants SET allow_anonymous = $2");
		params[1] = op->t->allow_anonymous ? "true" : "false";
		break;
	case BW_OP_TENANT_QUOTAS:
		sb_add(&b, "UPDATE bulwark_tenants SET ");
		quota_sql(&b, 2, true);
		quota_params(&op->t->quotas, &qp, params + 1);
		n = 2 + BW__QUOTA_FIELDS;
		break;
	case BW_OP_TENANT_CA:
		rc = w_ca_clash(p, op->tenant, op->t->ca_pem, err, cap);
		sb_add(&b, "UPDATE bulwark_tenants SET ca_pem = $2");
		params[1] = op->t->ca_pem ? op->t->ca_pem : "";
		break;
	case BW_OP_TENANT_JWT:
		iss = pg_array(op->t->jwt_issuers, op->t->jwt_issuers_n);
		aud = pg_array(op->t->jwt_audiences, op->t->jwt_audiences_n);
		sb_add(&b, "UPDATE bulwark_tenants SET jwt_issuers = $2::text[], jwt_audiences = "
		           "$3::text[], jwks = $4, jwt_tenant_claim = $5");
		params[1] = iss;
		params[2] = aud;
		params[3] = op->t->jwks ? op->t->jwks : "";
		params[4] = op->t->jwt_tenant_claim && *op->t->jwt_tenant_claim
		                    ? op->t->jwt_tenant_claim
		                    : NULL;
		rc = w_claims(p, op->tenant, params[4], err, cap);
		n = 5;
		if (!iss || !aud)
			b.failed = true;
		break;
	default:
		b.failed = true;
		break;
	}
	sb_add(&b, " WHERE name = $1");
	if (rc == 0 && b.failed) {
		snprintf(err, cap, "out of memory");
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = w_exec(p, b.s, n, params, &r, err, cap);
	if (rc == 0)
		rc = w_changed(r, "tenant", op->tenant, NULL, err, cap);
	PQclear(r);
	free(b.s);
	free(iss);
	free(aud);
	return rc;
}

/* One write's statements, inside the transaction. */
static int w_apply(struct pg_store *p, const struct bw_tenancy_op *op, char *err, size_t cap)
{
	const struct bw_principal *pp = op->p;
	const char *params[6];
	PGresult *r = NULL;
	int rc;

	switch (op->kind) {
	case BW_OP_TENANT_PUT:
		return w_tenant_put(p, op->t, err, cap);
	case BW_OP_TENANT_DELETE:
		params[0] = op->tenant;
		rc = w_exec(p, "DELETE FROM bulwark_tenants WHERE name = $1", 1, params, &r, err,
		            cap);
		if (rc == 0)
			rc = w_changed(r, "tenant", op->tenant, NULL, err, cap);
		break;
	case BW_OP_TENANT_SNI:
		rc = w_tenant_exists(p, op->tenant, err, cap);
		return rc ? rc : w_hosts(p, op->tenant, op->t->sni, op->t->sni_n, err, cap);
	case BW_OP_TENANT_STATUS:
	case BW_OP_TENANT_ANONYMOUS:
	case BW_OP_TENANT_QUOTAS:
	case BW_OP_TENANT_CA:
	case BW_OP_TENANT_JWT:
		return w_tenant_update(p, op, err, cap);
	case BW_OP_GROUP_PUT:
		params[0] = op->g->tenant;
		params[1] = op->g->name;
		params[2] = op->g->rules ? op->g->rules : "";
		rc = w_tenant_exists(p, op->g->tenant, err, cap);
		if (rc == 0)
			rc = w_exec(
			        p,
			        "INSERT INTO bulwark_groups (tenant, name, rules) VALUES ($1, $2, "
			        "$3) "
			        "ON CONFLICT (tenant, name) DO UPDATE SET rules = EXCLUDED.rules",
			        3, params, NULL, err, cap);
		break;
	case BW_OP_GROUP_DELETE:
	case BW_OP_PRINCIPAL_DELETE:
	case BW_OP_PRINCIPAL_ENABLED:
		params[0] = op->tenant;
		params[1] = op->name;
		params[2] = pp && pp->enabled ? "true" : "false";
		rc = w_tenant_exists(p, op->tenant, err, cap);
		if (rc == 0)
			rc = w_exec(
			        p,
			        op->kind == BW_OP_GROUP_DELETE ? "DELETE FROM bulwark_groups WHERE "
			                                         "tenant = $1 AND name = $2"
			        : op->kind == BW_OP_PRINCIPAL_DELETE
			                ? "DELETE FROM bulwark_principals WHERE tenant = $1 AND "
			                  "name = "
			                  "$2"
			                : "UPDATE bulwark_principals SET enabled = $3 WHERE tenant "
			                  "= "
			                  "$1 AND name = $2",
			        op->kind == BW_OP_PRINCIPAL_ENABLED ? 3 : 2, params, &r, err, cap);
		if (rc == 0)
			rc = w_changed(r, op->kind == BW_OP_GROUP_DELETE ? "group" : "principal",
			               op->tenant, op->name, err, cap);
		break;
	case BW_OP_PRINCIPAL_PUT:
		params[0] = pp->tenant;
		params[1] = pp->name;
		params[2] = bw_principal_kind_name(pp->kind);
		params[3] = pp->password_hash && *pp->password_hash ? pp->password_hash : NULL;
		params[4] = pp->enabled ? "true" : "false";
		params[5] = pp->rules ? pp->rules : "";
		rc = w_tenant_exists(p, pp->tenant, err, cap);
		if (rc == 0)
			rc = w_exec(p,
			            "INSERT INTO bulwark_principals (tenant, name, kind, "
			            "password_hash, "
			            "enabled, rules) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT "
			            "(tenant, "
			            "name) DO UPDATE SET kind = EXCLUDED.kind, password_hash = "
			            "EXCLUDED.password_hash, enabled = EXCLUDED.enabled, rules = "
			            "EXCLUDED.rules",
			            6, params, NULL, err, cap);
		if (rc == 0)
			rc = w_members(p, pp->tenant, pp->name, pp->groups, pp->groups_n, err, cap);
		break;
	case BW_OP_PRINCIPAL_GROUPS:
		params[0] = op->tenant;
		params[1] = op->name;
		rc = w_tenant_exists(p, op->tenant, err, cap);
		if (rc == 0)
			rc = w_exec(p,
			            "SELECT 1 FROM bulwark_principals WHERE tenant = $1 AND name = "
			            "$2 FOR "
			            "UPDATE",
			            2, params, &r, err, cap);
		if (rc == 0 && PQntuples(r) == 0) {
			snprintf(err, cap, "no principal \"%s\" in tenant \"%s\"", op->name,
			         op->tenant);
			rc = -ENOENT;
		}
		if (rc == 0)
			rc = w_members(p, op->tenant, op->name, pp->groups, pp->groups_n, err, cap);
		break;
	default:
		snprintf(err, cap, "unknown write");
		rc = -EINVAL;
		break;
	}
	PQclear(r);
	return rc;
}

/* The key of the record op changed, for the reload that makes it visible. */
static void op_key(const struct bw_tenancy_op *op, char *kind, const char **tenant,
                   const char **name)
{
	switch (op->kind) {
	case BW_OP_TENANT_PUT:
		*kind = 't';
		*tenant = op->t->name;
		*name = "";
		break;
	case BW_OP_GROUP_PUT:
		*kind = 'g';
		*tenant = op->g->tenant;
		*name = op->g->name;
		break;
	case BW_OP_GROUP_DELETE:
		*kind = 'g';
		*tenant = op->tenant;
		*name = op->name;
		break;
	case BW_OP_PRINCIPAL_PUT:
		*kind = 'p';
		*tenant = op->p->tenant;
		*name = op->p->name;
		break;
	case BW_OP_PRINCIPAL_DELETE:
	case BW_OP_PRINCIPAL_ENABLED:
	case BW_OP_PRINCIPAL_GROUPS:
		*kind = 'p';
		*tenant = op->tenant;
		*name = op->name;
		break;
	default:
		*kind = 't';
		*tenant = op->tenant;
		*name = "";
		break;
	}
}

static int pg_write(struct bw_tenancy_store *st, const struct bw_tenancy_op *op, char *err,
                    size_t cap)
{
	struct pg_store *p = pg_of(st);
	char kind, msg[512];
	const char *tenant, *name;
	int rc;

	pthread_mutex_lock(&p->wmu);
	rc = w_connect(p, err, cap);
	if (rc == 0)
		rc = w_simple(p, "BEGIN;SELECT pg_advisory_xact_lock(" LOCK_WRITE ")", NULL, err,
		              cap);
	if (rc == 0) {
		rc = w_apply(p, op, err, cap);
		if (rc == 0)
			rc = w_simple(p, "COMMIT", NULL, err, cap);
		else if (PQstatus(p->wconn) == CONNECTION_OK)
			PQclear(PQexec(p->wconn, "ROLLBACK"));
	}
	if (rc == -ECONNREFUSED || rc == -EIO || rc == -ETIMEDOUT) {
		/* A connection in doubt is dropped; the next write makes a new one. */
		PQfinish(p->wconn);
		p->wconn = NULL;
		snprintf(msg, sizeof(msg), "%s", err);
		set_error(p, msg, false);
	}
	pthread_mutex_unlock(&p->wmu);
	if (rc != 0)
		return rc;

	/* Committed: have the service thread read it back, and wait for that. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += p->write_wait_ms / 1000;
	until.tv_nsec += (long)(p->write_wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	op_key(op, &kind, &tenant, &name);
	pthread_mutex_lock(&p->mu);
	keys_add(&p->requested, kind, tenant, name);
	uint64_t ticket = ++p->req_ticket;
	p->host->wake(p->host->arg);
	int w = 0;
	while (p->done_ticket < ticket && w == 0)
		w = pthread_cond_timedwait(&p->cond, &p->mu, &until);
	pthread_mutex_unlock(&p->mu);
	if (w != 0)
		logf_(p, 1,
		      "tenancy: %s is committed; this node shows it once PostgreSQL answers "
		      "again",
		      bw_tenancy_op_name(op->kind));
	return 0;
}

static int pg_load(struct bw_tenancy_store *st, struct bw_tenancy **out, char *err, size_t cap)
{
	struct pg_store *p = pg_of(st);
	PGresult *res[R_COUNT + 4] = { 0 };
	size_t n = 0;
	char *sql = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&p->wmu);
	rc = w_connect(p, err, cap);
	if (rc == 0) {
		sql = load_sql(p->wconn, NULL);
		if (!sql || !PQsendQuery(p->wconn, sql))
			rc = sql ? pq_fail(p, NULL, err, cap) : -ENOMEM;
	}
	for (PGresult *r; rc == 0 && (r = PQgetResult(p->wconn)) != NULL;) {
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_TUPLES_OK && n < R_COUNT + 4) {
			res[n++] = r;
			continue;
		}
		if (s != PGRES_COMMAND_OK)
			rc = pq_fail(p, r, err, cap);
		PQclear(r);
	}
	/* After an error the remaining results still have to be read. */
	for (PGresult *r; p->wconn && rc != 0 && (r = PQgetResult(p->wconn)) != NULL;)
		PQclear(r);
	pthread_mutex_unlock(&p->wmu);
	if (rc == 0 && n != R_COUNT) {
		snprintf(err, cap, "PostgreSQL: a load returned %zu row sets, not %d", n, R_COUNT);
		rc = -EIO;
	}
	if (rc == 0)
		rc = build_snapshot(p, res, NULL, out, err, cap);
	for (size_t i = 0; i < n; i++)
		PQclear(res[i]);
	free(sql);
	return rc;
}

static void pg_close(struct bw_tenancy_store **st)
{
	struct pg_store *p = st && *st ? pg_of(*st) : NULL;

	if (!p)
		return;
	PQfinish(p->conn);
	PQfinish(p->wconn);
	clear_results(p);
	free(p->res);
	keys_free(&p->notified);
	keys_free(&p->inflight);
	keys_free(&p->requested);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->wmu);
	pthread_cond_destroy(&p->cond);
	free(p->url);
	free(p);
	*st = NULL;
}

static int pg_open(const struct bw_tenancy_store_cfg *cfg, const struct bw_tenancy_store_host *host,
                   struct bw_tenancy_store **out, char *err, size_t cap)
{
	struct pg_store *p;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(cfg->postgres_url, &perr);

	*out = NULL;
	if (!opts) {
		size_t n = perr ? strcspn(perr, "\n") : 0;
		snprintf(err, cap, "tenancy: PostgreSQL URL: %.*s", (int)n,
		         perr ? perr : "out of memory");
		PQfreemem(perr);
		return perr ? -EINVAL : -ENOMEM;
	}
	PQconninfoFree(opts);
	p = calloc(1, sizeof(*p));
	if (!p || !(p->url = strdup(cfg->postgres_url))) {
		free(p);
		snprintf(err, cap, "tenancy: out of memory");
		return -ENOMEM;
	}
	p->host = host;
	p->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
	p->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 5000;
	p->write_wait_ms = cfg->write_wait_ms > 0 ? cfg->write_wait_ms : 10000;
	/* libpq's connect_timeout is in whole seconds, at least 2. */
	snprintf(p->timeout_s, sizeof(p->timeout_s), "%d",
	         p->connect_timeout_ms < 2000 ? 2 : (p->connect_timeout_ms + 999) / 1000);
	p->backoff_ms = BACKOFF_MIN;
	p->state = C_DOWN;
	p->retry_at_ms = 0;
	snprintf(p->last_error, sizeof(p->last_error), "not connected yet");
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->wmu, NULL);
	pthread_cond_init(&p->cond, NULL);
	*out = (struct bw_tenancy_store *)p;
	return 0;
}

static void pg_status(struct bw_tenancy_store *st, struct bw_tenancy_status *out)
{
	struct pg_store *p = pg_of(st);

	out->backend = "postgres";
	pthread_mutex_lock(&p->mu);
	out->up = p->up;
	out->loaded = p->loaded;
	snprintf(out->last_error, sizeof(out->last_error), "%s", p->last_error);
	out->reloads = p->reloads;
	out->notifications = p->notifications;
	out->reconnects = p->reconnects;
	out->errors = p->errors;
	out->skipped = p->skipped;
	out->clashes = p->clashes;
	pthread_mutex_unlock(&p->mu);
}

const struct bw_tenancy_store_ops bw_tenancy_store_pg = {
	.name = "postgres",
	.open = pg_open,
	.load = pg_load,
	.write = pg_write,
	.poll_fds = pg_poll_fds,
	.run = pg_run,
	.status = pg_status,
	.close = pg_close,
};
