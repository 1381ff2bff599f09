/*
 * The admin socket (admin/): the command dispatcher driven with JSON
 * request lines against a real tenancy service on the embedded file store
 * in a temporary state_dir. Every phase-1 command's success path; bad
 * input (unknown tenant, duplicate names, an invalid filter, empty and
 * weak passwords, malformed PEM, a JWK Set without keys, quotas out of
 * range, unknown members, wrong types, no "v") is refused with the right
 * code, a message that says why, and no change to the model. The audit log
 * gets a line per change and never a password. The peer check as a pure
 * function, and the server itself: a socket on a temporary path, two
 * requests on one connection answered in order, an overlong line refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "admin/audit.h"
#include "admin/commands.h"
#include "admin/server.h"
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/password.h"
#include "tenancy/service.h"
#include "tenancy_material.h"

struct env {
	char dir[64];
	char audit_path[128];
	struct bw_tenancy_service *svc;
	struct bw_admin_audit *audit;
	struct bw_admin_node node;
	struct bw_admin_ctx ctx;
	int reloads;
};

/* ---- a fake node -------------------------------------------------------------------- */

static void fake_info(void *arg, struct bw_admin_node_info *out)
{
	(void)arg;
	out->uptime_s = 42;
	out->workers = 3;
	out->listeners_n = 2;
	out->listeners[0] = (struct bw_admin_listener){ "mqtt", "127.0.0.1:1883", 1883, "default" };
	out->listeners[1] = (struct bw_admin_listener){ "http", "127.0.0.1:9100", 9100, NULL };
}

static int fake_stats(void *arg, uint32_t i, struct bw_admin_tenant_stats *out)
{
	(void)arg;
	if (i > 0)
		return -ENOENT;
	*out = (struct bw_admin_tenant_stats){ .tenant = "default",
		                               .connections = 7,
		                               .msgs_in = 9 };
	return 0;
}

static void fake_reload(void *arg, struct bw_admin_reload *out)
{
	struct env *e = arg;
	e->reloads++;
	out->n = 2;
	out->items[0].what = "tls";
	out->items[0].rc = 0;
	out->items[1].what = "auth_files";
	out->items[1].rc = -ENOENT;
	snprintf(out->items[1].error, sizeof(out->items[1].error), "password_file: gone");
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[512];

	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/bw-admin-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->audit_path, sizeof(e->audit_path), "%s/audit.log", e->dir);
	struct bw_tenancy_service_cfg cfg = { .state_dir = e->dir };
	if (bw_tenancy_service_start(&cfg, &e->svc, err, sizeof(err)) < 0)
		fail_msg("tenancy: %s", err);
	if (bw_admin_audit_open(e->audit_path, &e->audit, err, sizeof(err)) < 0)
		fail_msg("audit: %s", err);
	e->node = (struct bw_admin_node){
		.arg = e,
		.info = fake_info,
		.tenant_stats = fake_stats,
		.reload = fake_reload,
		.quotas = { .connections = 1000, .max_qos = 2, .max_packet_bytes = 1048576 },
	};
	e->ctx = (struct bw_admin_ctx){ .tenancy = e->svc, .node = &e->node, .audit = e->audit };
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	bw_admin_audit_close(&e->audit);
	bw_tenancy_service_stop(&e->svc);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", e->dir);
	free(e);
	return 0;
}

/* ---- requests ---------------------------------------------------------------------- */

/* The response to request (a JSON text), parsed; the caller json_decref()s it. */
static json_t *call(struct env *e, const char *request)
{
	char *line = bw_admin_handle(&e->ctx, 0, request, strlen(request));
	assert_non_null(line);
	assert_null(strchr(line, '\n'));
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	if (!j)
		fail_msg("response is not JSON: %s: %s", jerr.text, line);
	assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
	free(line);
	return j;
}

/* The result of a request that must succeed (printf-style); decref'd by the next ok(). */
static json_t *last;

static json_t *ok(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *ok(struct env *e, const char *fmt, ...)
{
	char req[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	json_decref(last);
	last = call(e, req);
	if (!json_is_true(json_object_get(last, "ok"))) {
		char *s = json_dumps(last, 0);
		fail_msg("%s\n  -> %s", req, s);
	}
	return json_object_get(last, "result");
}

static uint64_t version(struct env *e)
{
	struct bw_tenancy *s = bw_tenancy_service_current(e->svc);
	uint64_t v = bw_tenancy_version(s);
	bw_tenancy_service_release(&s);
	return v;
}

/*
 * A request that must fail with code and a message holding why, and change
 * nothing (the model's version stays).
 */
static void fails(struct env *e, const char *code, const char *why, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void fails(struct env *e, const char *code, const char *why, const char *fmt, ...)
{
	char req[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	uint64_t before = version(e);
	json_t *r = call(e, req);
	json_t *err = json_object_get(r, "error");
	const char *got = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (json_is_true(json_object_get(r, "ok")) || !got || strcmp(got, code) ||
	    !strstr(msg, why)) {
		char *s = json_dumps(r, 0);
		fail_msg("%s\n  -> %s\n  wanted %s with \"%s\"", req, s, code, why);
	}
	assert_int_equal(version(e), before);
	json_decref(r);
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("no string member %s", key);
	return s;
}

static json_int_t num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("no integer member %s", key);
	return json_integer_value(v);
}

/* The whole audit log. */
static char *audit_text(struct env *e)
{
	FILE *f = fopen(e->audit_path, "r");
	static char buf[1 << 16];
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

/* ---- the envelope ------------------------------------------------------------------ */

static void test_envelope(void **state)
{
	struct env *e = *state;

	fails(e, "usage", "not JSON", "{\"v\":1,");
	fails(e, "usage", "not JSON", "%s", "");
	fails(e, "usage", "one JSON object", "[1,2]");
	fails(e, "usage", "v: missing", "{\"cmd\":\"tenant.list\"}");
	fails(e, "usage", "version 1", "{\"v\":2,\"cmd\":\"tenant.list\"}");
	fails(e, "usage", "version 1", "{\"v\":\"1\",\"cmd\":\"tenant.list\"}");
	fails(e, "usage", "cmd: missing", "{\"v\":1}");
	fails(e, "usage", "unknown command \"tenant.nuke\"", "{\"v\":1,\"cmd\":\"tenant.nuke\"}");
	fails(e, "usage", "unknown member \"id\"", "{\"v\":1,\"cmd\":\"tenant.list\",\"id\":3}");
	fails(e, "usage", "args: must be an object",
	      "{\"v\":1,\"cmd\":\"tenant.list\",\"args\":[]}");
	fails(e, "usage", "not JSON", "{\"v\":1,\"v\":1,\"cmd\":\"tenant.list\"}");
	/* Unknown members and wrong types name the member. */
	fails(e, "usage", "unknown member \"nmae\"",
	      "{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"nmae\":\"acme\"}}");
	fails(e, "usage", "args.name: must be a string",
	      "{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"name\":3}}");
	fails(e, "usage", "args.hostnames: must be an array of strings",
	      "{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"name\":\"a\",\"hostnames\":[1]}}");
	fails(e, "usage", "args.name: missing", "{\"v\":1,\"cmd\":\"tenant.create\"}");
	/* args may be left out when the command takes none. */
	json_t *r = ok(e, "{\"v\":1,\"cmd\":\"tenant.list\"}");
	assert_int_equal(json_array_size(json_object_get(r, "tenants")), 0);
	fails(e, "usage", "unknown command", "{\"v\":1,\"cmd\":\"sessions.nuke\",\"args\":{}}");
	/* A store without a node holds no sessions and cannot drain. */
	fails(e, "unavailable", "no sessions",
	      "{\"v\":1,\"cmd\":\"sessions.list\",\"args\":{\"tenant\":\"a\"}}");
	fails(e, "unavailable", "cannot drain", "{\"v\":1,\"cmd\":\"node.drain\"}");
	/* A password in a malformed request is not quoted back. */
	json_t *bad = call(e, "{\"v\":1,\"cmd\":\"user.add\",\"args\":{\"password\":\"hunter2xyz");
	char *s = json_dumps(bad, 0);
	assert_null(strstr(s, "hunter2"));
	free(s);
	json_decref(bad);
}

/* ---- tenants ----------------------------------------------------------------------- */

#define REQ(cmd, args) "{\"v\":1,\"cmd\":\"" cmd "\",\"args\":{" args "}}"

static void test_tenants(void **state)
{
	struct env *e = *state;
	json_t *r;

	r = ok(e, REQ("tenant.create", "\"name\":\"acme\",\"hostnames\":[\"MQTT.acme.example\"],"
	                               "\"quotas\":{\"connections\":10}"));
	assert_string_equal(str(r, "name"), "acme");
	assert_string_equal(str(r, "status"), "active");
	assert_true(num(r, "id") > 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "hostnames"), 0)),
	                    "mqtt.acme.example");
	assert_int_equal(num(json_object_get(r, "quotas"), "connections"), 10);
	assert_true(json_is_null(json_object_get(json_object_get(r, "quotas"), "max_qos")));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 0);
	assert_int_equal(num(r, "groups"), 0);
	assert_int_equal(num(r, "users"), 0);
	ok(e, REQ("tenant.create", "\"name\":\"beta\",\"allow_anonymous\":true"));

	r = ok(e, REQ("tenant.list", ""));
	json_t *list = json_object_get(r, "tenants");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(str(json_array_get(list, 0), "name"), "acme");
	assert_true(json_is_true(json_object_get(json_array_get(list, 1), "allow_anonymous")));

	/* update: only what is given changes. */
	r = ok(e, REQ("tenant.update", "\"name\":\"acme\",\"quotas\":{\"max_qos\":1}"));
	assert_int_equal(num(json_object_get(r, "quotas"), "connections"), 10);
	assert_int_equal(num(json_object_get(r, "quotas"), "max_qos"), 1);
	assert_int_equal(json_array_size(json_object_get(r, "hostnames")), 1);
	r = ok(e,
	       REQ("tenant.update", "\"name\":\"acme\",\"hostnames\":[],\"allow_anonymous\":true"));
	assert_int_equal(json_array_size(json_object_get(r, "hostnames")), 0);
	assert_true(json_is_true(json_object_get(r, "allow_anonymous")));
	assert_int_equal(num(json_object_get(r, "quotas"), "max_qos"), 1);

	r = ok(e, REQ("tenant.suspend", "\"name\":\"acme\""));
	assert_string_equal(str(r, "status"), "suspended");
	r = ok(e, REQ("tenant.resume", "\"name\":\"acme\""));
	assert_string_equal(str(r, "status"), "active");
	r = ok(e, REQ("tenant.show", "\"name\":\"beta\""));
	assert_string_equal(str(r, "name"), "beta");
	assert_non_null(json_object_get(json_object_get(r, "jwt"), "issuers"));

	fails(e, "usage", "confirm", REQ("tenant.delete", "\"name\":\"beta\""));
	fails(e, "usage", "confirm", REQ("tenant.delete", "\"name\":\"beta\",\"confirm\":false"));
	r = ok(e, REQ("tenant.delete", "\"name\":\"beta\",\"confirm\":true"));
	assert_true(json_is_true(json_object_get(r, "deleted")));
	r = ok(e, REQ("tenant.list", ""));
	assert_int_equal(json_array_size(json_object_get(r, "tenants")), 1);
}

static void test_tenant_refusals(void **state)
{
	struct env *e = *state;

	ok(e, REQ("tenant.create", "\"name\":\"acme\",\"hostnames\":[\"mqtt.acme.example\"]"));
	fails(e, "exists", "tenant \"acme\" exists", REQ("tenant.create", "\"name\":\"acme\""));
	/* A message cut to fit is cut between characters: the answer is still JSON. */
	char name[1200] = "a";
	for (int i = 0; i < 500; i++)
		strcat(name, "\xc3\xa9"); /* é, two bytes: the cut falls inside one */
	fails(e, "not_found", "no tenant \"a\xc3\xa9", REQ("quota.show", "\"tenant\":\"%s\""),
	      name);
	fails(e, "exists", "mqtt.acme.example",
	      REQ("tenant.create", "\"name\":\"other\",\"hostnames\":[\"mqtt.acme.example\"]"));
	fails(e, "invalid", "tenant name", REQ("tenant.create", "\"name\":\"Not_A_Label\""));
	fails(e, "invalid", "not a hostname",
	      REQ("tenant.create", "\"name\":\"x\",\"hostnames\":[\"a_b.example\"]"));
	fails(e, "not_found", "no tenant \"nope\"", REQ("tenant.show", "\"name\":\"nope\""));
	fails(e, "not_found", "no tenant \"nope\"", REQ("tenant.update", "\"name\":\"nope\""));
	fails(e, "not_found", "nope", REQ("tenant.suspend", "\"name\":\"nope\""));
	fails(e, "not_found", "nope", REQ("tenant.delete", "\"name\":\"nope\",\"confirm\":true"));
	fails(e, "invalid", "args.quotas.connections: -1 is out of range",
	      REQ("tenant.update", "\"name\":\"acme\",\"quotas\":{\"connections\":-1}"));
	fails(e, "usage", "unknown member \"conections\"",
	      REQ("tenant.update", "\"name\":\"acme\",\"quotas\":{\"conections\":1}"));
	fails(e, "usage", "must be a whole number",
	      REQ("tenant.update", "\"name\":\"acme\",\"quotas\":{\"connections\":\"5\"}"));
	/* A refused update changes none of its parts. */
	fails(e, "invalid", "max_qos",
	      REQ("tenant.update", "\"name\":\"acme\",\"allow_anonymous\":true,"
	                           "\"quotas\":{\"max_qos\":3}"));
	json_t *r = ok(e, REQ("tenant.show", "\"name\":\"acme\""));
	assert_true(json_is_false(json_object_get(r, "allow_anonymous")));
}

/* ---- quotas ------------------------------------------------------------------------ */

static void test_quotas(void **state)
{
	struct env *e = *state;
	json_t *r;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e,
	       REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"client_msgs_per_s\",\"value\":50"));
	assert_int_equal(num(json_object_get(r, "quotas"), "client_msgs_per_s"), 50);
	ok(e, REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"max_qos\",\"value\":0"));
	ok(e, REQ("quota.set",
	          "\"tenant\":\"acme\",\"key\":\"retained_bytes\",\"value\":9223372036854775807"));
	r = ok(e, REQ("quota.show", "\"tenant\":\"acme\""));
	json_t *q = json_object_get(r, "quotas"), *eff = json_object_get(r, "effective");
	assert_int_equal(num(q, "max_qos"), 0);
	assert_int_equal(num(q, "connections"), 0);
	assert_int_equal(num(eff, "connections"), 1000); /* the node's */
	assert_int_equal(num(eff, "client_msgs_per_s"), 50);
	assert_int_equal(num(eff, "max_qos"), 0);
	assert_int_equal(num(eff, "max_packet_bytes"), 1048576);
	assert_int_equal(json_object_size(q), 13);
	/* null: back to the node's default (for max_qos, where 0 is QoS 0). */
	r = ok(e, REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"max_qos\",\"value\":null"));
	assert_true(json_is_null(json_object_get(json_object_get(r, "quotas"), "max_qos")));
	assert_int_equal(num(json_object_get(r, "effective"), "max_qos"), 2);

	fails(e, "invalid", "out of range",
	      REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"max_qos\",\"value\":3"));
	fails(e, "invalid", "out of range",
	      REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"connections\",\"value\":-1"));
	fails(e, "invalid", "out of range",
	      REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"connections\",\"value\":4294967296"));
	fails(e, "invalid", "out of range",
	      REQ("quota.set",
	          "\"tenant\":\"acme\",\"key\":\"max_packet_bytes\",\"value\":268435456"));
	fails(e, "invalid", "not a quota key",
	      REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"bandwidth\",\"value\":1"));
	fails(e, "usage", "args.value: must be a whole number or null",
	      REQ("quota.set", "\"tenant\":\"acme\",\"key\":\"connections\",\"value\":1.5"));
	fails(e, "not_found", "no tenant",
	      REQ("quota.set", "\"tenant\":\"nope\",\"key\":\"connections\",\"value\":1"));
	fails(e, "not_found", "no tenant", REQ("quota.show", "\"tenant\":\"nope\""));
}

/* ---- groups and rules -------------------------------------------------------------- */

static void test_groups_and_acls(void **state)
{
	struct env *e = *state;
	json_t *r, *rules;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e, REQ("group.create", "\"tenant\":\"acme\",\"group\":\"sensors\""));
	assert_string_equal(str(r, "name"), "sensors");
	fails(e, "exists", "group \"sensors\" exists",
	      REQ("group.create", "\"tenant\":\"acme\",\"group\":\"sensors\""));
	fails(e, "invalid", "group",
	      REQ("group.create", "\"tenant\":\"acme\",\"group\":\"bad name\""));
	fails(e, "not_found", "no tenant",
	      REQ("group.create", "\"tenant\":\"nope\",\"group\":\"g\""));

	r = ok(e, REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"allow\","
	                         "\"action\":\"publish\",\"filter\":\"data/%%c/#\",\"max_qos\":1,"
	                         "\"no_retain\":true"));
	rules = json_object_get(r, "rules");
	assert_int_equal(json_array_size(rules), 1);
	assert_int_equal(num(json_array_get(rules, 0), "n"), 1);
	assert_string_equal(str(json_array_get(rules, 0), "owner"), "group:sensors");
	assert_string_equal(str(json_array_get(rules, 0), "text"),
	                    "allow publish data/%c/# qos=1 retain=no");
	r = ok(e, REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"deny\","
	                         "\"action\":\"all\",\"filter\":\"data/secret/#\""));
	assert_int_equal(json_array_size(json_object_get(r, "rules")), 2);
	fails(e, "exists", "already",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"deny\","
	                     "\"action\":\"all\",\"filter\":\"data/secret/#\""));
	fails(e, "invalid", "sensors",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"allow\","
	                     "\"action\":\"publish\",\"filter\":\"a/#/b\""));
	fails(e, "invalid", "filter",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"allow\","
	                     "\"action\":\"publish\",\"filter\":\"a b\""));
	fails(e, "invalid", "effect",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"maybe\","
	                     "\"action\":\"publish\",\"filter\":\"a\""));
	fails(e, "invalid", "max_qos",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"allow\","
	                     "\"action\":\"publish\",\"filter\":\"a\",\"max_qos\":3"));
	fails(e, "usage", "group or user",
	      REQ("acl.add", "\"tenant\":\"acme\",\"effect\":\"allow\","
	                     "\"action\":\"publish\",\"filter\":\"a\""));
	fails(e, "not_found", "no group \"nope\"",
	      REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"nope\",\"effect\":\"allow\","
	                     "\"action\":\"publish\",\"filter\":\"a\""));

	ok(e, REQ("group.create", "\"tenant\":\"acme\",\"group\":\"ops\""));
	ok(e, REQ("acl.add", "\"tenant\":\"acme\",\"group\":\"ops\",\"effect\":\"allow\","
	                     "\"action\":\"subscribe\",\"filter\":\"#\""));
	r = ok(e, REQ("acl.list", "\"tenant\":\"acme\""));
	rules = json_object_get(r, "rules");
	assert_int_equal(json_array_size(rules), 3);
	assert_string_equal(str(json_array_get(rules, 0), "owner"), "group:ops");
	assert_string_equal(str(json_array_get(rules, 1), "owner"), "group:sensors");
	r = ok(e, REQ("acl.list", "\"tenant\":\"acme\",\"group\":\"sensors\""));
	assert_int_equal(json_array_size(json_object_get(r, "rules")), 2);

	r = ok(e, REQ("acl.del", "\"tenant\":\"acme\",\"group\":\"sensors\",\"n\":1"));
	rules = json_object_get(r, "rules");
	assert_int_equal(json_array_size(rules), 1);
	assert_string_equal(str(json_array_get(rules, 0), "owner"), "group:sensors");
	assert_string_equal(str(json_array_get(rules, 0), "text"), "deny all data/secret/#");
	fails(e, "not_found", "no rule 2",
	      REQ("acl.del", "\"tenant\":\"acme\",\"group\":\"sensors\",\"n\":2"));
	fails(e, "not_found", "no rule 0",
	      REQ("acl.del", "\"tenant\":\"acme\",\"group\":\"sensors\",\"n\":0"));

	r = ok(e, REQ("group.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "groups")), 2);
	ok(e, REQ("group.delete", "\"tenant\":\"acme\",\"group\":\"ops\""));
	fails(e, "not_found", "ops", REQ("group.delete", "\"tenant\":\"acme\",\"group\":\"ops\""));
	r = ok(e, REQ("group.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "groups")), 1);
}

/* ---- users ------------------------------------------------------------------------- */

/* Whether user's stored hash verifies password. */
static bool verifies(struct env *e, const char *user, const char *password)
{
	struct bw_tenancy *s = bw_tenancy_service_current(e->svc);
	const struct bw_tenant *t = bw_tenancy_tenant(s, "acme", 4);
	const struct bw_principal *p = bw_tenancy_principal(s, t, user, strlen(user));
	bool yes = p && !strncmp(p->password_hash, "$argon2id$", 10) &&
	           bw_password_verify(password, strlen(password), p->password_hash) == 0;
	bw_tenancy_service_release(&s);
	return yes;
}

static void test_users(void **state)
{
	struct env *e = *state;
	json_t *r;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	ok(e, REQ("group.create", "\"tenant\":\"acme\",\"group\":\"sensors\""));
	r = ok(e, REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev1\","
	                          "\"password\":\"correct horse\",\"groups\":[\"sensors\"]"));
	assert_string_equal(str(r, "name"), "dev1");
	assert_string_equal(str(r, "kind"), "password");
	assert_true(json_is_true(json_object_get(r, "enabled")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "groups"), 0)),
	                    "sensors");
	assert_null(json_object_get(r, "password"));
	assert_null(json_object_get(r, "password_hash"));
	/* A token user: what a JWT's subject names; it has no password. */
	r = ok(e, REQ("user.add", "\"tenant\":\"acme\",\"user\":\"app\",\"kind\":\"token\""));
	assert_string_equal(str(r, "kind"), "token");
	fails(e, "invalid", "a token user has none",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"app2\",\"kind\":\"token\","
	                      "\"password\":\"correct horse\""));
	fails(e, "invalid", "cert.map",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"app2\",\"kind\":\"certificate\""));
	ok(e, REQ("user.del", "\"tenant\":\"acme\",\"user\":\"app\""));
	assert_true(verifies(e, "dev1", "correct horse"));

	fails(e, "exists", "user \"dev1\" exists",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev1\",\"password\":\"12345678\""));
	fails(e, "invalid", "password: empty",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev2\",\"password\":\"\""));
	fails(e, "invalid", "password: shorter than 8 bytes",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev2\",\"password\":\"1234567\""));
	fails(e, "invalid", "password: a password user needs one",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev2\""));
	fails(e, "not_found", "nope",
	      REQ("user.add", "\"tenant\":\"acme\",\"user\":\"dev2\",\"password\":\"12345678\","
	                      "\"groups\":[\"nope\"]"));
	fails(e, "not_found", "no tenant",
	      REQ("user.add", "\"tenant\":\"nope\",\"user\":\"dev2\",\"password\":\"12345678\""));

	r = ok(e, REQ("user.passwd", "\"tenant\":\"acme\",\"user\":\"dev1\","
	                             "\"password\":\"battery staple\""));
	assert_true(verifies(e, "dev1", "battery staple"));
	fails(e, "invalid", "shorter",
	      REQ("user.passwd", "\"tenant\":\"acme\",\"user\":\"dev1\",\"password\":\"short\""));
	assert_true(verifies(e, "dev1", "battery staple"));
	fails(e, "not_found", "no user \"ghost\"",
	      REQ("user.passwd",
	          "\"tenant\":\"acme\",\"user\":\"ghost\",\"password\":\"12345678\""));

	r = ok(e, REQ("user.disable", "\"tenant\":\"acme\",\"user\":\"dev1\""));
	assert_true(json_is_false(json_object_get(r, "enabled")));
	r = ok(e, REQ("user.enable", "\"tenant\":\"acme\",\"user\":\"dev1\""));
	assert_true(json_is_true(json_object_get(r, "enabled")));

	/* A user's own rules. */
	ok(e, REQ("acl.add", "\"tenant\":\"acme\",\"user\":\"dev1\",\"effect\":\"allow\","
	                     "\"action\":\"subscribe\",\"filter\":\"cmd/dev1/#\""));
	r = ok(e, REQ("user.show", "\"tenant\":\"acme\",\"user\":\"dev1\""));
	assert_string_equal(str(json_array_get(json_object_get(r, "rules"), 0), "text"),
	                    "allow subscribe cmd/dev1/#");
	r = ok(e, REQ("acl.list", "\"tenant\":\"acme\",\"user\":\"dev1\""));
	assert_string_equal(str(json_array_get(json_object_get(r, "rules"), 0), "owner"),
	                    "user:dev1");

	/* cert.map: a certificate identity with dev1's groups and rules. */
	r = ok(e,
	       REQ("cert.map", "\"tenant\":\"acme\",\"identity\":\"CN=dev1\",\"user\":\"dev1\""));
	assert_string_equal(str(r, "kind"), "certificate");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "groups"), 0)),
	                    "sensors");
	assert_int_equal(json_array_size(json_object_get(r, "rules")), 1);
	fails(e, "exists", "exists",
	      REQ("cert.map", "\"tenant\":\"acme\",\"identity\":\"CN=dev1\",\"user\":\"dev1\""));
	fails(e, "not_found", "no user \"ghost\"",
	      REQ("cert.map", "\"tenant\":\"acme\",\"identity\":\"CN=x\",\"user\":\"ghost\""));
	/* Or straight into groups; not both, not neither. */
	r = ok(e, REQ("cert.map",
	              "\"tenant\":\"acme\",\"identity\":\"dev9\",\"groups\":[\"sensors\"]"));
	assert_string_equal(str(r, "kind"), "certificate");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "groups"), 0)),
	                    "sensors");
	fails(e, "usage", "either user",
	      REQ("cert.map", "\"tenant\":\"acme\",\"identity\":\"dev8\",\"user\":\"dev1\","
	                      "\"groups\":[\"sensors\"]"));
	fails(e, "usage", "either user",
	      REQ("cert.map", "\"tenant\":\"acme\",\"identity\":\"dev8\""));
	ok(e, REQ("user.del", "\"tenant\":\"acme\",\"user\":\"dev9\""));
	fails(e, "invalid", "no password",
	      REQ("user.passwd", "\"tenant\":\"acme\",\"user\":\"CN=dev1\","
	                         "\"password\":\"12345678\""));

	r = ok(e, REQ("user.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "users")), 2);
	ok(e, REQ("user.del", "\"tenant\":\"acme\",\"user\":\"CN=dev1\""));
	fails(e, "not_found", "CN=dev1",
	      REQ("user.del", "\"tenant\":\"acme\",\"user\":\"CN=dev1\""));
	r = ok(e, REQ("user.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "users")), 1);

	/* No password ever reaches the audit log. */
	const char *log = audit_text(e);
	assert_non_null(strstr(log, "\"action\":\"user.add\""));
	assert_non_null(strstr(log, "\"result\":\"exists\""));
	assert_null(strstr(log, "correct horse"));
	assert_null(strstr(log, "battery staple"));
	assert_null(strstr(log, "1234567"));
	assert_null(strstr(log, "$argon2id$"));
}

/* ---- CAs and JWT ------------------------------------------------------------------- */

/* s as a JSON string literal (quotes and escapes); static, one at a time per slot. */
static const char *quoted(const char *s, int slot)
{
	static char buf[2][8192];
	json_t *j = json_string(s);
	char *q = json_dumps(j, JSON_ENCODE_ANY);
	snprintf(buf[slot], sizeof(buf[slot]), "%s", q);
	free(q);
	json_decref(j);
	return buf[slot];
}

/* Another self-signed CA named "CN=Test CA a", with a key of its own. */
#define CA_A2_PEM                                                                                  \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBfzCCASWgAwIBAgIUJNSLT8DHiq91UefzFa6nSWLg1sswCgYIKoZIzj0EAwIw\n"                       \
	"FDESMBAGA1UEAwwJVGVzdCBDQSBhMCAXDTI2MTEyNTAxNTAxNloYDzIxMjYxMTAx\n"                       \
	"MDE1MDE2WjAUMRIwEAYDVQQDDAlUZXN0IENBIGEwWTATBgcqhkjOPQIBBggqhkjO\n"                       \
	"PQMBBwNCAATCHyIk9+uUeMLOxZhYneVLa1vsXCVplgpaCsPchlLALwipMrHrNuU0\n"                       \
	"e7ykD8+chSnjOq+tMch2Slrp9D1uP5l7o1MwUTAdBgNVHQ4EFgQU/4NfoH8CVWaA\n"                       \
	"WxADK9AEGAFf/EIwHwYDVR0jBBgwFoAU/4NfoH8CVWaAWxADK9AEGAFf/EIwDwYD\n"                       \
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA6s83Q3T/vsp1M/tsBZY7\n"                       \
	"gNMIYBUXfSHHSAEZOklCLL8CIC8oZzzDOND8v8hPzWbqLtC6kEdy3o2HFPdFZ6EU\n"                       \
	"OBXN\n"                                                                                   \
	"-----END CERTIFICATE-----\n"

static void test_cas(void **state)
{
	struct env *e = *state;
	json_t *r, *cas;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	ok(e, REQ("tenant.create", "\"name\":\"beta\""));
	r = ok(e, REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"), quoted(CA_A_PEM, 0));
	cas = json_object_get(r, "cas");
	assert_int_equal(json_array_size(cas), 1);
	assert_string_equal(str(json_array_get(cas, 0), "fingerprint"), CA_A_FP_HEX);
	assert_string_equal(str(json_array_get(cas, 0), "subject"), "CN=Test CA a");
	assert_string_equal(str(json_array_get(cas, 0), "not_after"), "2126-10-31T22:28:53Z");
	r = ok(e, REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"), quoted(CA_B_PEM, 0));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 2);

	fails(e, "exists", CA_A_FP_HEX, REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"),
	      quoted(CA_A_PEM, 0));
	fails(e, "exists", "", REQ("ca.add", "\"tenant\":\"beta\",\"pem\":%s"),
	      quoted(CA_A_PEM, 0));
	fails(e, "invalid", "malformed PEM", REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"),
	      quoted("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", 0));
	fails(e, "invalid", "no PEM certificate",
	      REQ("ca.add", "\"tenant\":\"acme\",\"pem\":\"hello\""));
	fails(e, "invalid", "not a CA", REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"),
	      quoted(LEAF_PEM, 0));
	fails(e, "invalid", "empty", REQ("ca.add", "\"tenant\":\"acme\",\"pem\":\"\""));

	r = ok(e, REQ("ca.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 2);
	r = ok(e, REQ("ca.del", "\"tenant\":\"acme\",\"fingerprint\":\"%s\""), CA_A_FP_HEX);
	cas = json_object_get(r, "cas");
	assert_int_equal(json_array_size(cas), 1);
	assert_string_equal(str(json_array_get(cas, 0), "fingerprint"), CA_B_FP_HEX);
	fails(e, "not_found", "no CA", REQ("ca.del", "\"tenant\":\"acme\",\"fingerprint\":\"%s\""),
	      CA_A_FP_HEX);
	fails(e, "invalid", "fingerprint",
	      REQ("ca.del", "\"tenant\":\"acme\",\"fingerprint\":\"ab\""));
	/* Now beta may have CA a; the last CA out leaves no bundle. */
	ok(e, REQ("ca.add", "\"tenant\":\"beta\",\"pem\":%s"), quoted(CA_A_PEM, 0));
	r = ok(e, REQ("ca.del", "\"tenant\":\"acme\",\"fingerprint\":\"%s\""), CA_B_FP_HEX);
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 0);
	r = ok(e, REQ("tenant.show", "\"name\":\"beta\""));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 1);

	/* Another key under beta's CA's name: not for acme, alone or in a bundle ... */
	fails(e, "exists",
	      "pem: tenant \"beta\" has a CA with the subject \"CN=Test CA a\" already",
	      REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"), quoted(CA_A2_PEM, 0));
	fails(e, "exists", "give this CA a subject of its own",
	      REQ("ca.add", "\"tenant\":\"acme\",\"pem\":%s"), quoted(CA_B_PEM CA_A2_PEM, 0));
	/* ... but beta may renew its CA under the same name. */
	r = ok(e, REQ("ca.add", "\"tenant\":\"beta\",\"pem\":%s"), quoted(CA_A2_PEM, 0));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 2);
	r = ok(e, REQ("ca.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "cas")), 0);
}

#define JWKS_OCT2                                                                                  \
	"{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"kid\":\"k2\",\"k\":"                      \
	"\"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI\"}]}"

static void test_jwt(void **state)
{
	struct env *e = *state;
	json_t *r, *jwt;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://id.acme.example\","
	                      "\"audience\":\"mqtt\",\"jwks\":%s"),
	       quoted(JWKS_OCT, 0));
	jwt = json_object_get(r, "jwt");
	assert_string_equal(json_string_value(json_array_get(json_object_get(jwt, "issuers"), 0)),
	                    "https://id.acme.example");
	assert_string_equal(json_string_value(json_array_get(json_object_get(jwt, "audiences"), 0)),
	                    "mqtt");
	assert_string_equal(str(json_array_get(json_object_get(jwt, "keys"), 0), "kid"), "k1");
	assert_string_equal(str(json_array_get(json_object_get(jwt, "keys"), 0), "alg"), "HS256");
	/* A second issuer and key merge in; the same kid again replaces, not doubles. */
	ok(e, REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\",\"jwks\":%s"),
	   quoted(JWKS_OCT2, 0));
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\",\"jwks\":%s"),
	       quoted(JWKS_OCT2, 0));
	jwt = json_object_get(r, "jwt");
	assert_int_equal(json_array_size(json_object_get(jwt, "issuers")), 2);
	assert_int_equal(json_array_size(json_object_get(jwt, "keys")), 2);
	assert_int_equal(json_array_size(json_object_get(jwt, "audiences")), 1);

	fails(e, "invalid", "jwks",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\","
	                     "\"jwks\":\"{\\\"keys\\\":[]}\""));
	fails(e, "invalid", "jwks",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\","
	                     "\"jwks\":\"not json\""));
	fails(e, "invalid", "jwks",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"jwks\":%s"),
	      quoted("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k9\",\"k\":\"c2hvcnQ\"}]}", 0));
	fails(e, "invalid", "key: want one PEM block",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"key\":\"PEM\","
	                     "\"alg\":\"RS256\""));
	fails(e, "usage", "give jwks", REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\""));
	fails(e, "usage", "go together",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"key\":\"PEM\""));

	r = ok(e, REQ("jwt.list", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "keys")), 2);
	r = ok(e, REQ("jwt.del", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\""));
	jwt = json_object_get(r, "jwt");
	assert_int_equal(json_array_size(json_object_get(jwt, "issuers")), 1);
	assert_int_equal(json_array_size(json_object_get(jwt, "keys")), 2);
	fails(e, "not_found", "no issuer",
	      REQ("jwt.del", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\""));
	/* The last issuer out takes the keys with it: no tenant accepts any issuer by accident. */
	r = ok(e, REQ("jwt.del", "\"tenant\":\"acme\",\"issuer\":\"https://id.acme.example\""));
	jwt = json_object_get(r, "jwt");
	assert_int_equal(json_array_size(json_object_get(jwt, "issuers")), 0);
	assert_int_equal(json_array_size(json_object_get(jwt, "keys")), 0);
	assert_int_equal(json_array_size(json_object_get(jwt, "audiences")), 0);
}

/* The jwt object's tenant_claim in a jwt.* or tenant.show result: its text, or NULL for null. */
static const char *tenant_claim_of(json_t *r)
{
	json_t *c = json_object_get(json_object_get(r, "jwt"), "tenant_claim");
	assert_true(json_is_null(c) || json_is_string(c));
	return json_string_value(c);
}

static void test_jwt_tenant_claim(void **state)
{
	struct env *e = *state;
	json_t *r;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e, REQ("tenant.show", "\"name\":\"acme\""));
	assert_null(tenant_claim_of(r));
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://id.acme.example\","
	                      "\"jwks\":%s"),
	       quoted(JWKS_OCT, 0));
	assert_null(tenant_claim_of(r)); /* unset: the node's tenant_claim */

	/* Set; shown by jwt.list and tenant.show; kept by writes that do not name it. */
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://id.acme.example\","
	                      "\"jwks\":%s,\"tenant_claim\":\"https://example.com/tenant\""),
	       quoted(JWKS_OCT, 0));
	assert_string_equal(tenant_claim_of(r), "https://example.com/tenant");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "keys")), 1);
	r = ok(e, REQ("jwt.list", "\"tenant\":\"acme\""));
	assert_string_equal(tenant_claim_of(r), "https://example.com/tenant");
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\","
	                      "\"jwks\":%s,\"tenant_claim\":\"org\""),
	       quoted(JWKS_OCT2, 0));
	assert_string_equal(tenant_claim_of(r), "org");
	ok(e, REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://c.example\",\"jwks\":%s"),
	   quoted(JWKS_OCT2, 0));
	ok(e, REQ("tenant.update", "\"name\":\"acme\",\"allow_anonymous\":true"));
	r = ok(e, REQ("jwt.del", "\"tenant\":\"acme\",\"issuer\":\"https://c.example\""));
	assert_string_equal(tenant_claim_of(r), "org");
	r = ok(e, REQ("tenant.show", "\"name\":\"acme\""));
	assert_string_equal(tenant_claim_of(r), "org");

	/* Refused, changing nothing: not a claim name, not a string, one name too many. */
	fails(e, "invalid",
	      "tenant_claim: tenant \"acme\": jwt_tenant_claim: \"my org\" is not a claim name "
	      "(printable ASCII without spaces)",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"jwks\":%s,"
	                     "\"tenant_claim\":\"my org\""),
	      quoted(JWKS_OCT2, 0));
	fails(e, "usage", "args.tenant_claim: must be a string",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"jwks\":%s,"
	                     "\"tenant_claim\":null"),
	      quoted(JWKS_OCT2, 0));
	for (int i = 1; i < (int)BW_TENANCY_CLAIM_NAMES_MAX - 1; i++) {
		ok(e, REQ("tenant.create", "\"name\":\"t%02d\""), i);
		ok(e,
		   REQ("jwt.add", "\"tenant\":\"t%02d\",\"issuer\":\"i\",\"jwks\":%s,"
		                  "\"tenant_claim\":\"c%02d\""),
		   i, quoted(JWKS_OCT2, 0), i);
	}
	ok(e, REQ("tenant.create", "\"name\":\"newco\""));
	fails(e, "invalid", "\"one-more\" would be one claim name too many",
	      REQ("jwt.add", "\"tenant\":\"newco\",\"issuer\":\"i\",\"jwks\":%s,"
	                     "\"tenant_claim\":\"one-more\""),
	      quoted(JWKS_OCT2, 0));
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"newco\",\"issuer\":\"i\",\"jwks\":%s,"
	                      "\"tenant_claim\":\"org\""),
	       quoted(JWKS_OCT2, 0));
	assert_string_equal(tenant_claim_of(r), "org");

	/* "" gives the node's back. */
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://b.example\","
	                      "\"jwks\":%s,\"tenant_claim\":\"\""),
	       quoted(JWKS_OCT2, 0));
	assert_null(tenant_claim_of(r));
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "issuers")), 2);
}

/* ---- jwt.add with a PEM key --------------------------------------------------------- */

/*
 * Keys made once with the openssl command line (genpkey; pkey -pubout), and
 * the first 16 hex digits of the SHA-256 of each public key's DER
 * (openssl pkey -pubout -outform DER | sha256sum).
 */
#define RSA2048_PRIV                                                                               \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDgFXEe/Znw7jy5\n"                       \
	"7dPMOWDu4ibFwBKHyvxz4XZrTZh+mvTg5CLWebBNbIDOIcJmFzglBkhlH69EpmNB\n"                       \
	"Jrad7GUmU06DrZCQ1NR5ioqTj1IHIOIqRC1xuW6cj3LoxN6dZnMH8bLIsvagfra7\n"                       \
	"4/4xRb20cIFd8RhYnCYIGCx4LUrGlzMtA2b7lcNWgV16VJxKxe4oOAeBULR741qt\n"                       \
	"I+JFuMEDgMQNFQxpOyKabzqpfykktZ6YULpShosFRjC0qv5Qow7qxmX++wlGkn8B\n"                       \
	"8C390qlkr08IBIxC+ZrFXkBNjnN3eNTxIIF00mAjeoxh8bM+q7C6tjjS0zXqi1hd\n"                       \
	"W2VOCOgpAgMBAAECggEAAdYwfQG0yySWFdYNCDL+MucNTKNO45ML2lf3lFiTTpJZ\n"                       \
	"kyWmOB4mOPQ8jV6kd8QVSeRmdSxlz4kSQ4dG3ujVnr33D52SvkUoUANihblv1tlz\n"                       \
	"pnIJnKbZm788lguAYZzkhiT6g1Ty2uI/AC+Vtp9XjIzm2ozD13zBfmEoWCcoN5Qj\n"                       \
	"atah8U8ntfmCPOFhNN7SVWTVQB3TJ0eAz1FnwUn6niIupN1vekLWw9/nYEjDzmo3\n"                       \
	"kybT0wKMlVWbYiJJgUGuCIHgs7L/YOnVbD9pPXy6zxWN1Haml0VpezFYMAlmvqFG\n"                       \
	"LXIeQMZe2EfobOmI7qvOp1UlCyrW8rSJhq56uWolmwKBgQD/hPuuQP5XrQDSRpP/\n"                       \
	"6Ge2UgibsuishtbKUYaJy4pmrdeM6NXOGiCn/09y1i3YmZpxl4GwlEGIDZaBxfbK\n"                       \
	"kJg4qnipauN+uiMLuf5ig0mr+5rA/Q1s72zJpqMgpNrptWZMYucQqre/mLrw5CFk\n"                       \
	"SZDESS4b5HfIEbMUCNBmwgduQwKBgQDggVMLmeZIuxwz9mCKJ7xnO4lsyJJ598Ek\n"                       \
	"qGZENa5bjUb8+hybn7tjyZbOAr/B4ek4Q+S70kRAlKB876e+uvNEaNrcoZRJid80\n"                       \
	"pvEBnkrk4EoNM1MTSlW7Tniy0XxHvNI1SdqWQGT+wI90VtU6SYDqJx+QWgoJ52Mo\n"                       \
	"WKuvP2sHIwKBgQCcTCQHewoZZ2HRPgrZxrdp9tP9KXrZzcElEKlTMIYAOOZY8zOV\n"                       \
	"VrYTDUDz5b81dv/Z6+sQsB9FscoWp5lGXxw9zUjxmMh/hCxbx/GrINO3t7f5xNCp\n"                       \
	"ierpjlzKYwzlWGiy4OymbUbok+wF3gXu6nD7IChsN1xtrSX1Y07XDGivMQKBgB/J\n"                       \
	"T7fBx4AeteSJiquk6qD3JgL39v073eXRzgD0VMZzn0xsISbLm92KCkcKzpml4b5s\n"                       \
	"pnMNV0qJgJuP1wFDOPRDoFFCs1siIS80P8VJ4zK6quFpleaSTMcjWiV/UYharKyM\n"                       \
	"010YqvQC0YzYSoJhK9Z7SZXHmcpDL5/jxhMe+IlfAoGBAMV2K4qcxarCQ9sawniq\n"                       \
	"wUXncuErPedII/bmFWVcIta2+II5rzM39KJfXTgQB5HTdKDWtihMgHk8imGEBQGk\n"                       \
	"2udwoafO3aujhXHvzaeDbJjLd8FaHDn0IoNdUZJjDlW437dzrjC8QuGE9hbdSPCK\n"                       \
	"nfW3SxSejRovv8HgLvQFT5jF\n"                                                               \
	"-----END PRIVATE KEY-----\n"

#define P256_PRIV                                                                                  \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQrm262IiGWNkWXXb\n"                       \
	"Aq1hJ8ydmMDOr2JJoHyMjnJbZWuhRANCAATyJiXKrYbjBYqTGNXOxrKBIcchg6Wl\n"                       \
	"X47yUiR7Nfz1TTJ/YTPb5pUx/0qUg5+PEwXxfW35DfS7nCG3gKPY5xv/\n"                               \
	"-----END PRIVATE KEY-----\n"

#define ED25519_PRIV                                                                               \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MC4CAQAwBQYDK2VwBCIEICHXcBlG0lp83nc3Hm2b+vcZU/CI0roZ5lO5vyGh2D9g\n"                       \
	"-----END PRIVATE KEY-----\n"

#define RSA2048_PUB                                                                                \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4BVxHv2Z8O48ue3TzDlg\n"                       \
	"7uImxcASh8r8c+F2a02Yfpr04OQi1nmwTWyAziHCZhc4JQZIZR+vRKZjQSa2nexl\n"                       \
	"JlNOg62QkNTUeYqKk49SByDiKkQtcblunI9y6MTenWZzB/GyyLL2oH62u+P+MUW9\n"                       \
	"tHCBXfEYWJwmCBgseC1KxpczLQNm+5XDVoFdelScSsXuKDgHgVC0e+NarSPiRbjB\n"                       \
	"A4DEDRUMaTsimm86qX8pJLWemFC6UoaLBUYwtKr+UKMO6sZl/vsJRpJ/AfAt/dKp\n"                       \
	"ZK9PCASMQvmaxV5ATY5zd3jU8SCBdNJgI3qMYfGzPquwurY40tM16otYXVtlTgjo\n"                       \
	"KQIDAQAB\n"                                                                               \
	"-----END PUBLIC KEY-----\n"

#define RSA1024_PUB                                                                                \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDHxN+rvcFs3guhP33H0RH6v2kD\n"                       \
	"lXmjToW2hpJYUMvcPAKoqSugd9VzYeGsib38B4rnFQFH6y8qJAQARQP1VERmWPKH\n"                       \
	"+SvYghiFDed8yFuN/2fHygJ+fj0YCo0y/3IrGtQAJfkHtu5dd/XP2Cx6RiCGT1In\n"                       \
	"Wh8/kTmkBfanmdkIMwIDAQAB\n"                                                               \
	"-----END PUBLIC KEY-----\n"

#define P256_PUB                                                                                   \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8iYlyq2G4wWKkxjVzsaygSHHIYOl\n"                       \
	"pV+O8lIkezX89U0yf2Ez2+aVMf9KlIOfjxMF8X1t+Q30u5wht4Cj2Ocb/w==\n"                           \
	"-----END PUBLIC KEY-----\n"

#define P384_PUB                                                                                   \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAELxZ5wVXEnG1LEKEvG/SDTAhL8j/o2Yf8\n"                       \
	"+fQ8L/bBI2TzoHYCdo4nK35A3Asc2TG11C1iCoz9HPlrDa1M7Bke0oJFNPfd59dN\n"                       \
	"dx0iAefBTGDcnmlVYJnUje7NTe1LtaRm\n"                                                       \
	"-----END PUBLIC KEY-----\n"

#define ED25519_PUB                                                                                \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MCowBQYDK2VwAyEAXO+ssHVdsXmH4xSPMr6MaWXjGiL0lIYJ0179d0sH25Y=\n"                           \
	"-----END PUBLIC KEY-----\n"

#define RSA2048_KID "2216790696f5993e"
#define P256_KID    "c5a6a4daf627f01e"
#define P384_KID    "9d53b1ced9281903"
#define ED25519_KID "3962dd94cd084d1d"

/* in[0..n) in base64url without padding, appended to out at *o. */
static void b64url(const unsigned char *in, size_t n, char *out, size_t *o)
{
	char *tmp = malloc(n / 3 * 4 + 8);
	assert_non_null(tmp);
	int len = EVP_EncodeBlock((unsigned char *)tmp, in, (int)n);
	for (int i = 0; i < len && tmp[i] != '='; i++)
		out[(*o)++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
	out[*o] = '\0';
	free(tmp);
}

/*
 * A token of issuer iss (valid until 2100), signed with the private key
 * priv as alg (RS256, PS256, ES256 or EdDSA), its header naming kid. The
 * caller frees it.
 */
static char *sign_token(const char *priv, const char *alg, const char *kid, const char *iss)
{
	char head[256], body[256], *tok = malloc(4096);
	size_t o = 0;
	unsigned char sig[1024], raw[64];
	size_t sig_len = sizeof(sig);
	EVP_PKEY_CTX *pctx = NULL;

	assert_non_null(tok);
	snprintf(head, sizeof(head), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
	snprintf(body, sizeof(body), "{\"iss\":\"%s\",\"sub\":\"dev1\",\"exp\":4102444800}", iss);
	b64url((unsigned char *)head, strlen(head), tok, &o);
	tok[o++] = '.';
	b64url((unsigned char *)body, strlen(body), tok, &o);
	BIO *bio = BIO_new_mem_buf(priv, -1);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_non_null(pk);
	assert_int_equal(EVP_DigestSignInit(ctx, &pctx, strcmp(alg, "EdDSA") ? EVP_sha256() : NULL,
	                                    NULL, pk),
	                 1);
	if (!strcmp(alg, "PS256")) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	}
	assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)tok, o), 1);
	tok[o++] = '.';
	if (!strcmp(alg, "ES256")) {
		/* JOSE wants r || s, OpenSSL writes DER. */
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
		assert_non_null(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
		ECDSA_SIG_free(es);
		b64url(raw, 64, tok, &o);
	} else {
		b64url(sig, sig_len, tok, &o);
	}
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return tok;
}

/* Whether acme's keys, issuers and audiences as the node has them accept token. */
static int accepts(struct env *e, const char *token)
{
	struct bw_tenancy *s = bw_tenancy_service_current(e->svc);
	const struct bw_tenant *t = bw_tenancy_tenant(s, "acme", 4);
	struct bw_jwt_policy pol = { .issuers = t->jwt_issuers,
		                     .issuers_n = t->jwt_issuers_n,
		                     .audiences = t->jwt_audiences,
		                     .audiences_n = t->jwt_audiences_n };
	const char *why;
	int rc = bw_jwt_verify(bw_tenancy_tenant_jwt_keys(s, t), &pol, token, strlen(token),
	                       (int64_t)time(NULL), NULL, &why);
	if (rc != 0)
		print_message("token refused: %s\n", why);
	bw_tenancy_service_release(&s);
	return rc;
}

/* The key of kid in a jwt.* result, or NULL. */
static json_t *key_of(json_t *result, const char *kid)
{
	json_t *keys = json_object_get(json_object_get(result, "jwt"), "keys"), *k;
	size_t i;
	json_array_foreach(keys, i, k)
	{
		if (!strcmp(json_string_value(json_object_get(k, "kid")) ?: "", kid))
			return k;
	}
	return NULL;
}

#define KEY_REQ(alg)                                                                               \
	REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://id.example\",\"alg\":\"" alg      \
	               "\",\"key\":%s")

static void test_jwt_key(void **state)
{
	struct env *e = *state;
	json_t *r, *k;
	char *tok;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e, KEY_REQ("RS256"), quoted(RSA2048_PUB, 0));
	assert_non_null(k = key_of(r, RSA2048_KID));
	assert_string_equal(str(k, "alg"), "RS256");
	assert_string_equal(str(k, "kty"), "RSA");
	r = ok(e,
	       REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"https://id.example\","
	                      "\"alg\":\"PS256\",\"kid\":\"rsa-pss\",\"key\":%s"),
	       quoted(RSA2048_PUB, 0));
	assert_string_equal(str(key_of(r, "rsa-pss"), "alg"), "PS256");
	r = ok(e, KEY_REQ("ES256"), quoted(P256_PUB, 0));
	assert_string_equal(str(key_of(r, P256_KID), "kty"), "EC");
	r = ok(e, KEY_REQ("ES384"), quoted(P384_PUB, 0));
	assert_string_equal(str(key_of(r, P384_KID), "alg"), "ES384");
	r = ok(e, KEY_REQ("EdDSA"), quoted(ED25519_PUB, 0));
	assert_string_equal(str(key_of(r, ED25519_KID), "kty"), "OKP");
	/* The same key again replaces itself (same kid); a certificate gives its key. */
	r = ok(e, KEY_REQ("RS256"), quoted(RSA2048_PUB, 0));
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "keys")), 5);
	r = ok(e, KEY_REQ("ES256"), quoted(CA_A_PEM, 0));
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "keys")), 6);
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "jwt"), "issuers")), 1);

	/* The JWKs are the keys: tokens they signed verify, with the node's own verifier. */
	tok = sign_token(RSA2048_PRIV, "RS256", RSA2048_KID, "https://id.example");
	assert_int_equal(accepts(e, tok), 0);
	free(tok);
	tok = sign_token(RSA2048_PRIV, "PS256", "rsa-pss", "https://id.example");
	assert_int_equal(accepts(e, tok), 0);
	free(tok);
	tok = sign_token(P256_PRIV, "ES256", P256_KID, "https://id.example");
	assert_int_equal(accepts(e, tok), 0);
	free(tok);
	tok = sign_token(ED25519_PRIV, "EdDSA", ED25519_KID, "https://id.example");
	assert_int_equal(accepts(e, tok), 0);
	free(tok);
	/* ... and no other: the P-256 key's kid with the Ed25519 key's signature. */
	tok = sign_token(ED25519_PRIV, "EdDSA", P256_KID, "https://id.example");
	assert_int_not_equal(accepts(e, tok), 0);
	free(tok);

	fails(e, "invalid", "key: malformed PEM public key", KEY_REQ("RS256"),
	      quoted("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n", 0));
	fails(e, "invalid", "key: want one PEM block (-----BEGIN PUBLIC KEY-----), found none",
	      KEY_REQ("RS256"), quoted("hello", 0));
	fails(e, "invalid", "found several", KEY_REQ("RS256"), quoted(RSA2048_PUB P256_PUB, 0));
	fails(e, "invalid", "key: want a PEM public key", KEY_REQ("RS256"),
	      quoted("-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n", 0));
	fails(e, "invalid", "key: a private key; give its public key", KEY_REQ("RS256"),
	      quoted(RSA2048_PRIV, 0));
	fails(e, "invalid", "key: a private key", KEY_REQ("EdDSA"), quoted(ED25519_PRIV, 0));
	fails(e, "invalid",
	      "key: RS256 needs an RSA key of at least 2048 bits, not an RSA key of 1024 bits",
	      KEY_REQ("RS256"), quoted(RSA1024_PUB, 0));
	fails(e, "invalid", "key: ES256 needs an EC key on P-256, not an EC key on P-384",
	      KEY_REQ("ES256"), quoted(P384_PUB, 0));
	fails(e, "invalid", "key: EdDSA needs an Ed25519 key, not an RSA key of 2048 bits",
	      KEY_REQ("EdDSA"), quoted(RSA2048_PUB, 0));
	fails(e, "invalid",
	      "key: RS256 needs an RSA key of at least 2048 bits, not an EC key on "
	      "P-256",
	      KEY_REQ("RS256"), quoted(P256_PUB, 0));
	fails(e, "invalid", "key: ES384 needs an EC key on P-384, not an Ed25519 key",
	      KEY_REQ("ES384"), quoted(ED25519_PUB, 0));
	fails(e, "invalid", "alg: HS256 verifies with a shared secret", KEY_REQ("HS256"),
	      quoted(RSA2048_PUB, 0));
	fails(e, "invalid", "alg: \"ES512\" is not one of", KEY_REQ("ES512"), quoted(P256_PUB, 0));
	fails(e, "invalid", "alg: \"none\" is not one of", KEY_REQ("none"), quoted(P256_PUB, 0));
	fails(e, "invalid", "kid: must be 1..256 bytes",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"alg\":\"ES256\","
	                     "\"kid\":\"\",\"key\":%s"),
	      quoted(P256_PUB, 0));
	fails(e, "usage", "kid goes with key",
	      REQ("jwt.add", "\"tenant\":\"acme\",\"issuer\":\"i\",\"kid\":\"k\",\"jwks\":%s"),
	      quoted(JWKS_OCT, 0));
	/* No key material in the audit log, whatever was refused. */
	char *log = audit_text(e);
	assert_null(strstr(log, "MIIBIjAN")); /* RSA2048_PUB */
	assert_null(strstr(log, "MIIEvgIB")); /* RSA2048_PRIV */
	assert_null(strstr(log, "MC4CAQAw")); /* ED25519_PRIV */
}

/* ---- import.mosquitto --------------------------------------------------------------- */

/* SHA-512("secret" || "0123456789ab"), as mosquitto_passwd 1.x wrote; and a cheap Argon2id. */
#define HASH6_SECRET                                                                               \
	"$6$MDEyMzQ1Njc4OWFi$qEXipeLbgxRlwd06QHfY5WITkUZg0jLg9SZbXzq3ifXjfj+v3GbJGrSfC5PAg3UNCS+U" \
	"FfbhUIZX4bmIAs330w=="
#define HASH_ARGON2_SECRET                                                                         \
	"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQxMjM0NTY3OA$+6YGwI3SiDCliJZL+flr3llfnwyFLxqbjq+" \
	"DCzET8/E"

/* The stored hash of user of tenant: the one imported, and it verifies "secret". */
static void expect_hash(struct env *e, const char *tenant, const char *user, const char *hash)
{
	struct bw_tenancy *s = bw_tenancy_service_current(e->svc);
	const struct bw_tenant *t = bw_tenancy_tenant(s, tenant, strlen(tenant));
	const struct bw_principal *p = t ? bw_tenancy_principal(s, t, user, strlen(user)) : NULL;
	assert_non_null(p);
	assert_string_equal(p->password_hash, hash);
	assert_int_equal(bw_password_verify("secret", 6, p->password_hash), 0);
	bw_tenancy_service_release(&s);
}

/* The texts of a rules array joined by "|". */
static const char *texts(json_t *rules)
{
	static char buf[1024];
	size_t n = 0, i;
	json_t *rule;
	buf[0] = '\0';
	json_array_foreach(rules, i, rule)
	{
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "|" : "",
		                      str(rule, "text"));
	}
	return buf;
}

#define IMPORT_REQ(tenant) REQ("import.mosquitto", "\"tenant\":\"" tenant "\",\"passwd\":%s")
#define IMPORT_ACL_REQ(tenant)                                                                     \
	REQ("import.mosquitto", "\"tenant\":\"" tenant "\",\"passwd\":%s,\"acl\":%s")

static void test_import(void **state)
{
	struct env *e = *state;
	json_t *r, *g;
	const char *passwd = "# made by mosquitto_passwd\n"
	                     "alice:" HASH_SECRET "\n"
	                     "\n"
	                     "bob:" HASH6_SECRET "\n"
	                     "carol:" HASH_ARGON2_SECRET "\n";
	const char *acl = "# Mosquitto acl_file\n"
	                  "topic read public/#\n"
	                  "\n"
	                  "pattern readwrite devices/%u/#\n"
	                  "pattern write status/%c\n"
	                  "user alice\n"
	                  "topic readwrite alice/#\n"
	                  "topic deny alice/secret\n"
	                  "user bob\n"
	                  "topic read bob/in\n"
	                  "user alice\n"
	                  "topic write shared/out\n";

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	ok(e, REQ("tenant.create", "\"name\":\"beta\""));
	r = ok(e, IMPORT_ACL_REQ("acme"), quoted(passwd, 0), quoted(acl, 1));
	assert_int_equal(num(r, "users"), 3);
	assert_int_equal(num(r, "rules"), 7);
	expect_hash(e, "acme", "alice", HASH_SECRET);
	expect_hash(e, "acme", "bob", HASH6_SECRET);
	expect_hash(e, "acme", "carol", HASH_ARGON2_SECRET);

	r = ok(e, REQ("user.show", "\"tenant\":\"acme\",\"user\":\"alice\""));
	assert_string_equal(str(r, "kind"), "password");
	assert_true(json_is_true(json_object_get(r, "enabled")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "groups"), 0)),
	                    "mosquitto-patterns");
	assert_string_equal(texts(json_object_get(r, "rules")),
	                    "allow all alice/#|deny all alice/secret|allow publish shared/out");
	r = ok(e, REQ("user.show", "\"tenant\":\"acme\",\"user\":\"bob\""));
	assert_string_equal(texts(json_object_get(r, "rules")), "allow subscribe bob/in");
	r = ok(e, REQ("user.show", "\"tenant\":\"acme\",\"user\":\"carol\""));
	assert_int_equal(json_array_size(json_object_get(r, "rules")), 0);
	assert_int_equal(json_array_size(json_object_get(r, "groups")), 1);
	r = ok(e, REQ("group.list", "\"tenant\":\"acme\""));
	g = json_object_get(r, "groups");
	assert_int_equal(json_array_size(g), 2);
	assert_string_equal(str(json_array_get(g, 0), "name"), "anonymous");
	assert_string_equal(texts(json_object_get(json_array_get(g, 0), "rules")),
	                    "allow subscribe public/#|allow all devices/%u/#|"
	                    "allow publish status/%c");
	assert_string_equal(str(json_array_get(g, 1), "name"), "mosquitto-patterns");
	assert_string_equal(texts(json_object_get(json_array_get(g, 1), "rules")),
	                    "allow all devices/%u/#|allow publish status/%c");
	char *log = audit_text(e);
	assert_non_null(strstr(log, "\"action\":\"import.mosquitto\",\"target\":\"acme\","
	                            "\"result\":\"ok\""));
	assert_null(strstr(log, "$7$"));

	/* Another batch of the same installation: the groups are the same, and kept. */
	r = ok(e, IMPORT_ACL_REQ("acme"), quoted("dave:" HASH_SECRET "\n", 0),
	       quoted("topic read public/#\npattern readwrite devices/%u/#\n"
	              "pattern write status/%c\nuser dave\ntopic read dave/#\n",
	              1));
	assert_int_equal(num(r, "users"), 1);
	assert_int_equal(num(r, "rules"), 4);
	/* Without an ACL file: users without rules or groups. */
	r = ok(e, IMPORT_REQ("beta"), quoted("alice:" HASH_SECRET "\n", 0));
	assert_int_equal(num(r, "users"), 1);
	assert_int_equal(num(r, "rules"), 0);
	r = ok(e, REQ("user.show", "\"tenant\":\"beta\",\"user\":\"alice\""));
	assert_int_equal(json_array_size(json_object_get(r, "groups")), 0);

	/* Refusals change nothing, and name the line. */
	fails(e, "exists", "passwd:2: user \"bob\" exists in tenant \"acme\"", IMPORT_REQ("acme"),
	      quoted("erin:" HASH_SECRET "\nbob:" HASH_SECRET "\n", 0));
	fails(e, "invalid", "passwd:2: no ':' between username and hash", IMPORT_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\nerin " HASH_SECRET "\n", 0));
	fails(e, "invalid", "passwd:1: user \"frank\": bad hash", IMPORT_REQ("beta"),
	      quoted("frank:$2y$10$abcdefghijklmnopqrstuu5Jg7x7kC3.yZ8L3Bmw8cSSV1oUTbq6\n", 0));
	fails(e, "invalid", "passwd:3: user \"plain\": bad hash", IMPORT_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n# a comment\nplain:hunter2\n", 0));
	fails(e, "invalid", "passwd:2: duplicate user \"erin\"", IMPORT_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\nerin:" HASH_SECRET "\n", 0));
	fails(e, "invalid", "passwd: no user:hash line", IMPORT_REQ("beta"),
	      quoted("# nothing\n\n", 0));
	fails(e, "invalid", "acl:3: unknown keyword \"topik\"", IMPORT_ACL_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n", 0), quoted("user erin\n\ntopik read a\n", 1));
	fails(e, "invalid", "acl:2: invalid topic filter", IMPORT_ACL_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n", 0), quoted("user erin\ntopic read a/#/b\n", 1));
	fails(e, "invalid", "acl:4: the topic holds a blank", IMPORT_ACL_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n", 0),
	      quoted("user erin\ntopic read a\n# next\ntopic read b c\n", 1));
	fails(e, "invalid", "acl:3: user \"zed\" is not in the password file",
	      IMPORT_ACL_REQ("beta"), quoted("erin:" HASH_SECRET "\n", 0),
	      quoted("user erin\ntopic read a\nuser zed\ntopic read z\n", 1));
	fails(e, "invalid", "acl:2: Mosquitto takes %u and %c in a \"topic\" line literally",
	      IMPORT_ACL_REQ("beta"), quoted("erin:" HASH_SECRET "\n", 0),
	      quoted("user erin\ntopic read in/%u\n", 1));
	fails(e, "invalid", "acl:1: a placeholder (%u, %c, %cn) must be a whole level",
	      IMPORT_ACL_REQ("beta"), quoted("erin:" HASH_SECRET "\n", 0),
	      quoted("pattern read in/x%u\n", 1));
	/* A long name is cut in the message, never inside a character (the answer is JSON). */
	char long_acl[3000] = "user ";
	for (int i = 0; i < 900; i++)
		strcat(long_acl, "\xc3\xa9"); /* é */
	strcat(long_acl, "\ntopic read a\n");
	fails(e, "invalid", "acl:1: user \"\xc3\xa9\xc3\xa9", IMPORT_ACL_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n", 0), quoted(long_acl, 1));
	fails(e, "invalid", "...\" is not in the password file", IMPORT_ACL_REQ("beta"),
	      quoted("erin:" HASH_SECRET "\n", 0), quoted(long_acl, 1));
	/* beta's own mosquitto-patterns group is not this file's. */
	ok(e, REQ("group.create", "\"tenant\":\"beta\",\"group\":\"mosquitto-patterns\""));
	fails(e, "exists",
	      "group \"mosquitto-patterns\" exists in tenant \"beta\" with other rules",
	      IMPORT_ACL_REQ("beta"), quoted("erin:" HASH_SECRET "\n", 0),
	      quoted("pattern read in/%u\n", 1));
	fails(e, "not_found", "no tenant \"nope\"", IMPORT_REQ("nope"),
	      quoted("erin:" HASH_SECRET "\n", 0));
	fails(e, "usage", "args.passwd: missing", REQ("import.mosquitto", "\"tenant\":\"beta\""));
	r = ok(e, REQ("user.list", "\"tenant\":\"beta\""));
	assert_int_equal(json_array_size(json_object_get(r, "users")), 1);
	log = audit_text(e);
	assert_non_null(strstr(log, "\"action\":\"import.mosquitto\",\"target\":\"beta\","
	                            "\"result\":\"invalid\""));
}

/* ---- the node ---------------------------------------------------------------------- */

static void test_node(void **state)
{
	struct env *e = *state;
	json_t *r, *a;

	r = ok(e, REQ("node.info", ""));
	assert_true(strlen(str(r, "version")) > 0);
	assert_int_equal(num(r, "uptime_s"), 42);
	assert_int_equal(num(r, "workers"), 3);
	a = json_object_get(r, "listeners");
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(str(json_array_get(a, 0), "tenant"), "default");
	assert_int_equal(num(json_array_get(a, 1), "port"), 9100);
	assert_string_equal(str(json_object_get(r, "tenancy"), "backend"), "file");
	assert_true(json_is_true(json_object_get(json_object_get(r, "tenancy"), "ready")));

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	r = ok(e, REQ("stats", ""));
	a = json_object_get(r, "tenants");
	assert_int_equal(json_array_size(a), 2); /* the node's "default", the store's "acme" */
	assert_string_equal(str(json_array_get(a, 0), "name"), "default");
	assert_int_equal(num(json_array_get(a, 0), "connections"), 7);
	assert_int_equal(num(json_array_get(a, 0), "msgs_in"), 9);
	assert_string_equal(str(json_array_get(a, 1), "name"), "acme");
	assert_int_equal(num(json_array_get(a, 1), "connections"), 0);
	assert_non_null(json_object_get(json_array_get(a, 1), "acl_denials"));
	r = ok(e, REQ("stats", "\"tenant\":\"acme\""));
	assert_int_equal(json_array_size(json_object_get(r, "tenants")), 1);
	fails(e, "not_found", "no tenant", REQ("stats", "\"tenant\":\"nope\""));

	r = ok(e, REQ("config.reload", ""));
	assert_int_equal(e->reloads, 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "reloaded"), 0)),
	                    "tls");
	assert_string_equal(str(json_array_get(json_object_get(r, "failed"), 0), "what"),
	                    "auth_files");
	/* Without the node's callback, only the tenancy store is read again. */
	e->node.reload = NULL;
	r = ok(e, REQ("config.reload", ""));
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "reloaded"), 0)),
	                    "tenancy");
	assert_int_equal(json_array_size(json_object_get(r, "failed")), 0);
}

/* ---- the audit log ------------------------------------------------------------------ */

static void test_audit(void **state)
{
	struct env *e = *state;

	ok(e, REQ("tenant.create", "\"name\":\"acme\""));
	ok(e, REQ("tenant.list", ""));
	fails(e, "exists", "exists", REQ("tenant.create", "\"name\":\"acme\""));
	char *text = audit_text(e);
	size_t lines = 0;
	for (const char *c = text; (c = strchr(c, '\n')); c++)
		lines++;
	assert_int_equal(lines, 2); /* tenant.list changes nothing: not audited */
	char *second = strchr(text, '\n');
	assert_non_null(second);
	*second++ = '\0';
	json_t *a = json_loads(text, 0, NULL), *b = json_loads(second, 0, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(str(a, "actor"), "uid:0");
	assert_string_equal(str(a, "tenant"), "acme");
	assert_string_equal(str(a, "action"), "tenant.create");
	assert_string_equal(str(a, "target"), "acme");
	assert_string_equal(str(a, "result"), "ok");
	assert_string_equal(str(a, "reason"), "");
	const char *t = str(a, "time");
	assert_int_equal(strlen(t), 24); /* 2026-11-24T17:40:00.123Z */
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[23], 'Z');
	assert_string_equal(str(b, "result"), "exists");
	assert_non_null(strstr(str(b, "reason"), "exists"));
	json_decref(a);
	json_decref(b);
	struct stat st;
	assert_int_equal(stat(e->audit_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- the peer check ----------------------------------------------------------------- */

static void test_peer_allowed(void **state)
{
	(void)state;
	const uint32_t groups[] = { 10, 20, 30 };
	struct bw_admin_peer root = { .uid = 0, .gid = 0 };
	struct bw_admin_peer alice = { .uid = 1000, .gid = 1000, .groups = groups, .groups_n = 3 };
	const uint32_t none = BW_ADMIN_ID_NONE;

	assert_true(bw_admin_peer_allowed(&root, none, none));
	assert_false(bw_admin_peer_allowed(&alice, none, none));
	assert_true(bw_admin_peer_allowed(&alice, 1000, none));
	assert_false(bw_admin_peer_allowed(&alice, 1001, none));
	assert_true(bw_admin_peer_allowed(&alice, none, 1000)); /* primary group */
	assert_true(bw_admin_peer_allowed(&alice, none, 20));   /* supplementary */
	assert_false(bw_admin_peer_allowed(&alice, 1001, 40));
	alice.groups_n = 0;
	assert_false(bw_admin_peer_allowed(&alice, none, 20));
}

/* ---- the server --------------------------------------------------------------------- */

static struct bw_admin_server *serve(struct env *e, const char *path, uint32_t admin_uid)
{
	struct bw_admin_server *s = NULL;
	char err[512];
	struct bw_admin_server_cfg cfg = {
		.path = path,
		.admin_uid = admin_uid,
		.admin_gid = BW_ADMIN_ID_NONE,
		.tenancy = e->svc,
		.node = &e->node,
		.audit = e->audit,
	};
	if (bw_admin_server_start(&cfg, &s, err, sizeof(err)) < 0)
		fail_msg("server: %s", err);
	return s;
}

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			fail_msg("send: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads until `lines` newlines or the end; returns what came (static). */
static char *read_lines(int fd, int lines)
{
	static char buf[1 << 16];
	size_t n = 0;
	int seen = 0;
	while (seen < lines && n < sizeof(buf) - 1) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			seen += buf[n + (size_t)i] == '\n';
		n += (size_t)k;
	}
	buf[n] = '\0';
	return buf;
}

static void test_server(void **state)
{
	struct env *e = *state;
	char path[100];
	struct stat st;

	snprintf(path, sizeof(path), "%s/admin.sock", e->dir);
	struct bw_admin_server *s = serve(e, path, BW_ADMIN_ID_NONE);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	/* A second server on the same path is refused: someone serves it. */
	struct bw_admin_server *other = NULL;
	char err[512];
	struct bw_admin_server_cfg cfg = { .path = path,
		                           .admin_uid = BW_ADMIN_ID_NONE,
		                           .admin_gid = BW_ADMIN_ID_NONE,
		                           .tenancy = e->svc };
	assert_int_equal(bw_admin_server_start(&cfg, &other, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "another process"));

	/* Two requests in one write, two answers in order. */
	int fd = dial(path);
	static const char two[] =
	        REQ("tenant.create", "\"name\":\"acme\"") "\n" REQ("tenant.list", "") "\n";
	send_all(fd, two, sizeof(two) - 1);
	char *got = read_lines(fd, 2);
	char *nl = strchr(got, '\n');
	assert_non_null(nl);
	*nl = '\0';
	json_t *a = json_loads(got, 0, NULL), *b = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(str(json_object_get(a, "result"), "name"), "acme");
	assert_int_equal(json_array_size(json_object_get(json_object_get(b, "result"), "tenants")),
	                 1);
	json_decref(a);
	json_decref(b);

	/* A line over 1 MiB: "usage", then the connection is closed. */
	size_t big = BW_ADMIN_LINE_MAX + 100;
	char *junk = malloc(big);
	memset(junk, 'x', big);
	send_all(fd, junk, big);
	free(junk);
	got = read_lines(fd, 1);
	assert_non_null(strstr(got, "\"code\":\"usage\""));
	assert_non_null(strstr(got, "1 MiB"));
	/* The end, or a reset: the node closed with the rest of the line unread. */
	assert_true(recv(fd, got, 1, 0) <= 0);
	close(fd);

	bw_admin_server_stop(&s);
	assert_null(s);
	assert_int_equal(lstat(path, &st), -1); /* removed */
}

/*
 * Connects as a uid the server does not allow; returns the line it got.
 * As root: a child that becomes nobody, on a socket opened to everyone for
 * the test (the socket's mode alone keeps such peers out otherwise). Not
 * root: ourselves, with no admin_uid.
 */
static char *dial_as_stranger(const char *path)
{
	static char line[512];
	if (geteuid() != 0) {
		int fd = dial(path);
		snprintf(line, sizeof(line), "%.*s", (int)sizeof(line) - 1, read_lines(fd, 1));
		close(fd);
		return line;
	}
	int p[2];
	assert_int_equal(pipe(p), 0);
	/* Let nobody reach the socket: through the test's directory, and the socket's mode. */
	char dir[100];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	chmod(dir, 0711);
	chmod(path, 0666);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No cmocka in here: plain calls, and _exit with what went wrong. */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char got[512];
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		close(p[0]);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(3);
		ssize_t n = recv(fd, got, sizeof(got), 0);
		if (n <= 0 || write(p[1], got, (size_t)n) != n)
			_exit(4);
		_exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the stranger failed: status %d", status);
	return line;
}

static void test_server_denies(void **state)
{
	struct env *e = *state;
	char path[100];

	snprintf(path, sizeof(path), "%s/admin.sock", e->dir);
	struct bw_admin_server *s = serve(e, path, BW_ADMIN_ID_NONE);
	char *got = dial_as_stranger(path);
	assert_non_null(strstr(got, "\"ok\":false"));
	assert_non_null(strstr(got, "\"code\":\"denied\""));
	bw_admin_server_stop(&s);
	const char *log = audit_text(e);
	assert_non_null(strstr(log, "\"action\":\"connect\""));
	assert_non_null(strstr(log, "\"result\":\"denied\""));
}

/* A socket file left by a node that died is replaced; a file that is no socket is not. */
static void test_server_stale_socket(void **state)
{
	struct env *e = *state;
	char path[100];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(path, sizeof(path), "%s/admin.sock", e->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* bound, never served, left behind */
	struct bw_admin_server *s = serve(e, path, BW_ADMIN_ID_NONE);
	fd = dial(path);
	send_all(fd, REQ("node.info", "") "\n", strlen(REQ("node.info", "") "\n"));
	assert_non_null(strstr(read_lines(fd, 1), "\"ok\":true"));
	close(fd);
	bw_admin_server_stop(&s);

	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	struct bw_admin_server_cfg cfg = { .path = path,
		                           .admin_uid = BW_ADMIN_ID_NONE,
		                           .admin_gid = BW_ADMIN_ID_NONE,
		                           .tenancy = e->svc };
	char err[512];
	assert_int_equal(bw_admin_server_start(&cfg, &s, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "not a socket"));
}

static struct bw_admin_sessions sessions_of(const char *const *ids, size_t n)
{
	struct bw_admin_sessions s = { .v = calloc(n ? n : 1, sizeof(*s.v)), .n = n };
	assert_non_null(s.v);
	for (size_t i = 0; i < n; i++)
		assert_non_null(s.v[i].client_id = strdup(ids[i]));
	return s;
}

/* Each worker answers a part: an empty one (the first) loses nothing after it. */
static void test_sessions_merge(void **state)
{
	static const char *const two[] = { "a", "b" }, *const three[] = { "c", "d", "e" };
	struct bw_admin_sessions parts[3], out = { 0 };
	(void)state;

	parts[0] = (struct bw_admin_sessions){ 0 }; /* a worker with none: no vector */
	parts[1] = sessions_of(two, 2);
	parts[2] = sessions_of(three, 3);
	assert_int_equal(bw_admin_sessions_merge(&out, parts, 3, 1000), 0);
	assert_int_equal(out.n, 5);
	assert_false(out.truncated);
	assert_string_equal(out.v[0].client_id, "a");
	assert_string_equal(out.v[4].client_id, "e");
	bw_admin_sessions_free(&out);

	/* At most max: the rest is freed and the answer says so. */
	parts[0] = sessions_of(two, 2);
	parts[1] = sessions_of(NULL, 0);
	parts[2] = sessions_of(three, 3);
	assert_int_equal(bw_admin_sessions_merge(&out, parts, 3, 3), 0);
	assert_int_equal(out.n, 3);
	assert_true(out.truncated);
	assert_string_equal(out.v[2].client_id, "c");
	bw_admin_sessions_free(&out);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(test_envelope),
		T(test_tenants),
		T(test_tenant_refusals),
		T(test_quotas),
		T(test_groups_and_acls),
		T(test_users),
		T(test_cas),
		T(test_jwt),
		T(test_jwt_tenant_claim),
		T(test_jwt_key),
		T(test_import),
		T(test_node),
		T(test_audit),
		cmocka_unit_test(test_peer_allowed),
		cmocka_unit_test(test_sessions_merge),
		T(test_server),
		T(test_server_denies),
		T(test_server_stale_socket),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	json_decref(last);
	return rc;
}
