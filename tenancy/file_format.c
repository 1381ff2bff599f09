/*
 * tenancy.json: parsing into a snapshot builder and writing a snapshot
 * (file_format.h). JSON is jansson's; the builder does every field check,
 * so the file and the PostgreSQL store accept exactly the same records.
 */
#include "tenancy/file_format.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenancy/model_build.h"

struct jctx {
	const char *name; /* file name */
	char *err;
	size_t cap;
	int rc;
};

static int jfail(struct jctx *c, int rc, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int jfail(struct jctx *c, int rc, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->cap)
		snprintf(c->err, c->cap, "%s: %s: %s", c->name, path, msg);
	c->rc = rc;
	return rc;
}

/* Refuses members of o not in allowed (NULL-terminated). */
static int only(struct jctx *c, json_t *o, const char *path, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (!ok)
			return jfail(c, -EINVAL, path, "unknown member \"%.64s\"", key);
	}
	return 0;
}

/* The object at v, or an error. */
static int want_object(struct jctx *c, json_t *v, const char *path)
{
	return json_is_object(v) ? 0 : jfail(c, -EINVAL, path, "must be an object");
}

/* o.key as a string (NULL when absent and optional). */
static int get_str(struct jctx *c, json_t *o, const char *key, bool required, const char *path,
                   const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v)
		return required ? jfail(c, -EINVAL, path, "\"%s\" is missing", key) : 0;
	if (!json_is_string(v))
		return jfail(c, -EINVAL, path, "\"%s\" must be a string", key);
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return jfail(c, -EINVAL, path, "\"%s\" holds a NUL byte", key);
	return 0;
}

static int get_bool(struct jctx *c, json_t *o, const char *key, bool dflt, const char *path,
                    bool *out)
{
	json_t *v = json_object_get(o, key);

	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return jfail(c, -EINVAL, path, "\"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int get_uint(struct jctx *c, json_t *o, const char *key, bool required, uint64_t max,
                    const char *path, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	*out = 0;
	if (!v)
		return required ? jfail(c, -EINVAL, path, "\"%s\" is missing", key) : 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return jfail(c, -EINVAL, path, "\"%s\" must be a whole number from 0 to %llu", key,
		             (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* o.key as a list of strings into *out (malloc'd array of borrowed strings). */
static int get_list(struct jctx *c, json_t *o, const char *key, size_t max, const char *path,
                    const char ***out, size_t *n)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return jfail(c, -EINVAL, path, "\"%s\" must be an array of strings", key);
	if (json_array_size(v) > max)
		return jfail(c, -EINVAL, path, "\"%s\" has more than %zu entries", key, max);
	*out = calloc(json_array_size(v) + 1, sizeof(**out));
	if (!*out)
		return jfail(c, -ENOMEM, path, "out of memory");
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e))
			return jfail(c, -EINVAL, path, "\"%s\"[%zu] must be a string without NUL",
			             key, i);
		(*out)[(*n)++] = json_string_value(e);
	}
	return 0;
}

#define qfields bw__quota_fields
#define NQF     BW__QUOTA_FIELDS

static int parse_quotas(struct jctx *c, json_t *o, const char *path, struct bw_quotas *q)
{
	const char *allowed[NQF + 2];
	uint64_t v;

	memset(q, 0, sizeof(*q));
	q->max_qos = BW_QUOTA_QOS_DEFAULT;
	if (!o)
		return 0;
	if (want_object(c, o, path) != 0)
		return c->rc;
	for (size_t i = 0; i < NQF; i++)
		allowed[i] = qfields[i].name;
	allowed[NQF] = "max_qos";
	allowed[NQF + 1] = NULL;
	if (only(c, o, path, allowed) != 0)
		return c->rc;
	for (size_t i = 0; i < NQF; i++) {
		const struct bw__quota_field *f = &qfields[i];
		uint64_t max = f->width == 4 ? UINT32_MAX : INT64_MAX;
		if (get_uint(c, o, f->name, false, max, path, &v) != 0)
			return c->rc;
		bw__quota_set(q, f, v);
	}
	json_t *mq = json_object_get(o, "max_qos");
	if (mq && !json_is_null(mq)) {
		if (get_uint(c, o, "max_qos", false, 2, path, &v) != 0)
			return c->rc;
		q->max_qos = (uint8_t)v;
	}
	return 0;
}

static const char *const tenant_members[] = {
	"name", "id",     "status",     "allow_anonymous",  "sni", "quotas", "ca_pem",
	"jwt",  "groups", "principals", "jwt_tenant_claim", NULL,
};
static const char *const jwt_members[] = { "issuers", "audiences", "jwks", NULL };
static const char *const group_members[] = { "name", "rules", NULL };
static const char *const principal_members[] = {
	"name", "kind", "password_hash", "enabled", "groups", "rules", NULL,
};

static int parse_group(struct jctx *c, struct bw__tbuild *b, const char *tenant, json_t *o,
                       const char *path)
{
	struct bw_group g = { .tenant = tenant };
	char msg[512];
	int rc;

	if (want_object(c, o, path) || only(c, o, path, group_members) ||
	    get_str(c, o, "name", true, path, &g.name) ||
	    get_str(c, o, "rules", false, path, &g.rules))
		return c->rc;
	g.name_len = strlen(g.name);
	if (bw__tbuild_group(b, tenant, g.name))
		return jfail(c, -EINVAL, path, "group \"%.64s\" is listed twice", g.name);
	rc = bw__tbuild_group_put(b, &g, msg, sizeof(msg));
	return rc ? jfail(c, rc, path, "%s", msg) : 0;
}

static int parse_principal(struct jctx *c, struct bw__tbuild *b, const char *tenant, json_t *o,
                           const char *path)
{
	struct bw_principal p = { .tenant = tenant };
	const char *kind, **groups = NULL;
	char msg[512];
	int rc;

	if (want_object(c, o, path) || only(c, o, path, principal_members) ||
	    get_str(c, o, "name", true, path, &p.name) ||
	    get_str(c, o, "kind", true, path, &kind) ||
	    get_str(c, o, "password_hash", false, path, &p.password_hash) ||
	    get_bool(c, o, "enabled", true, path, &p.enabled) ||
	    get_str(c, o, "rules", false, path, &p.rules) ||
	    get_list(c, o, "groups", BW_PRINCIPAL_GROUPS_MAX, path, &groups, &p.groups_n))
		goto done;
	p.groups = groups;
	p.name_len = strlen(p.name);
	if (bw_principal_kind_parse(kind, &p.kind) != 0) {
		jfail(c, -EINVAL, path, "kind: \"%.32s\" is not password, certificate or token",
		      kind);
		goto done;
	}
	if (bw__tbuild_principal(b, tenant, p.name)) {
		jfail(c, -EINVAL, path, "principal \"%.64s\" is listed twice", p.name);
		goto done;
	}
	rc = bw__tbuild_principal_put(b, &p, true, msg, sizeof(msg));
	if (rc)
		jfail(c, rc, path, "%s", msg);
done:
	free(groups);
	return c->rc;
}

static int parse_tenant(struct jctx *c, struct bw__tbuild *b, json_t *o, const char *path)
{
	struct bw_tenant t = { 0 };
	const char *status = NULL, **sni = NULL, **iss = NULL, **aud = NULL;
	json_t *jwt, *arr;
	char sub[320], msg[512];
	uint64_t id;
	int rc;

	if (want_object(c, o, path) || only(c, o, path, tenant_members) ||
	    get_str(c, o, "name", true, path, &t.name) ||
	    get_uint(c, o, "id", true, UINT32_MAX - 1, path, &id) ||
	    get_str(c, o, "status", false, path, &status) ||
	    get_bool(c, o, "allow_anonymous", false, path, &t.allow_anonymous) ||
	    get_list(c, o, "sni", BW_TENANT_SNI_MAX, path, &sni, &t.sni_n) ||
	    get_str(c, o, "ca_pem", false, path, &t.ca_pem) ||
	    get_str(c, o, "jwt_tenant_claim", false, path, &t.jwt_tenant_claim))
		goto done;
	snprintf(sub, sizeof(sub), "%s.quotas", path);
	if (parse_quotas(c, json_object_get(o, "quotas"), sub, &t.quotas) != 0)
		goto done;
	jwt = json_object_get(o, "jwt");
	snprintf(sub, sizeof(sub), "%s.jwt", path);
	if (jwt &&
	    (want_object(c, jwt, sub) || only(c, jwt, sub, jwt_members) ||
	     get_list(c, jwt, "issuers", BW_TENANT_JWT_CLAIMS_MAX, sub, &iss, &t.jwt_issuers_n) ||
	     get_list(c, jwt, "audiences", BW_TENANT_JWT_CLAIMS_MAX, sub, &aud,
	              &t.jwt_audiences_n) ||
	     get_str(c, jwt, "jwks", false, sub, &t.jwks)))
		goto done;
	t.sni = sni;
	t.jwt_issuers = iss;
	t.jwt_audiences = aud;
	t.name_len = strlen(t.name);
	if (status && bw_tenant_status_parse(status, &t.status) != 0) {
		jfail(c, -EINVAL, path, "status: \"%.32s\" is not active or suspended", status);
		goto done;
	}
	if (id == 0) {
		jfail(c, -EINVAL, path, "\"id\" must not be 0");
		goto done;
	}
	if (bw__tbuild_tenant(b, t.name, t.name_len)) {
		jfail(c, -EINVAL, path, "tenant \"%.64s\" is listed twice", t.name);
		goto done;
	}
	rc = bw__tbuild_tenant_put(b, &t, (uint32_t)id, msg, sizeof(msg));
	if (rc) {
		jfail(c, rc, path, "%s", msg);
		goto done;
	}
	/* Groups before principals, which name them. */
	static const char *const lists[] = { "groups", "principals" };
	for (int l = 0; l < 2; l++) {
		arr = json_object_get(o, lists[l]);
		if (!arr)
			continue;
		if (!json_is_array(arr)) {
			jfail(c, -EINVAL, path, "\"%s\" must be an array", lists[l]);
			goto done;
		}
		for (size_t i = 0; i < json_array_size(arr); i++) {
			snprintf(sub, sizeof(sub), "%s.%s[%zu]", path, lists[l], i);
			if ((l == 0 ? parse_group(c, b, t.name, json_array_get(arr, i), sub)
			            : parse_principal(c, b, t.name, json_array_get(arr, i), sub)) !=
			    0)
				goto done;
		}
	}
done:
	free(sni);
	free(iss);
	free(aud);
	return c->rc;
}

static const char *const top_members[] = { "format", "version", "next_tenant_id", "tenants", NULL };

int bw__tenancy_json_parse(const char *text, size_t len, const char *name, struct bw_tenancy **out,
                           char *err, size_t cap)
{
	struct jctx c = { .name = name ? name : "<input>", .err = err, .cap = cap };
	struct bw__tbuild *b = NULL;
	json_error_t je;
	json_t *root, *tenants;
	const char *format;
	uint64_t version, next;
	char path[64], msg[512];

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if (len > BW_TENANCY_FILE_MAX)
		return jfail(&c, -EFBIG, "file", "larger than %u bytes", BW_TENANCY_FILE_MAX);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(path, sizeof(path), "line %d, column %d", je.line, je.column);
		return jfail(&c, -EINVAL, path, "%s", je.text);
	}
	if (want_object(&c, root, "top level") || only(&c, root, "top level", top_members) ||
	    get_str(&c, root, "format", true, "top level", &format) ||
	    get_uint(&c, root, "version", true, UINT32_MAX, "top level", &version) ||
	    get_uint(&c, root, "next_tenant_id", false, UINT32_MAX, "top level", &next))
		goto done;
	if (strcmp(format, "bulwark-tenancy") != 0) {
		jfail(&c, -EINVAL, "format", "\"%.32s\" is not \"bulwark-tenancy\"", format);
		goto done;
	}
	if (version != BW_TENANCY_FILE_VERSION) {
		jfail(&c, -EINVAL, "version", "%llu is not a version this node reads (%d)",
		      (unsigned long long)version, BW_TENANCY_FILE_VERSION);
		goto done;
	}
	tenants = json_object_get(root, "tenants");
	if (!json_is_array(tenants)) {
		jfail(&c, -EINVAL, "tenants", "%s", tenants ? "must be an array" : "is missing");
		goto done;
	}
	b = bw__tbuild_new(NULL);
	if (!b) {
		jfail(&c, -ENOMEM, "file", "out of memory");
		goto done;
	}
	for (size_t i = 0; i < json_array_size(tenants); i++) {
		snprintf(path, sizeof(path), "tenants[%zu]", i);
		if (parse_tenant(&c, b, json_array_get(tenants, i), path) != 0)
			goto done;
	}
	bw__tbuild_set_next_id(b, (uint32_t)next);
	int rc = bw__tbuild_finish(&b, 0, true, NULL, out, msg, sizeof(msg));
	if (rc)
		jfail(&c, rc, "tenants", "%s", msg);
done:
	bw__tbuild_free(&b);
	json_decref(root);
	return c.rc;
}

/* ---- writing ------------------------------------------------------------------------- */

/* Adds key: value to o, stealing value; a NULL value (out of memory) fails. */
static int set(json_t *o, const char *key, json_t *value)
{
	return value && json_object_set_new(o, key, value) == 0 ? 0 : -ENOMEM;
}

static json_t *str_list(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *dump_quotas(const struct bw_quotas *q)
{
	json_t *o = json_object();
	int rc = 0;

	for (size_t i = 0; o && rc == 0 && i < NQF; i++) {
		const struct bw__quota_field *f = &qfields[i];
		rc = set(o, f->name, json_integer((json_int_t)bw__quota_get(q, f)));
	}
	if (o && rc == 0)
		rc = set(o, "max_qos",
		         q->max_qos == BW_QUOTA_QOS_DEFAULT ? json_null()
		                                            : json_integer(q->max_qos));
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *dump_tenant(const struct bw_tenancy *s, const struct bw_tenant *t)
{
	json_t *o = json_object(), *jwt = json_object(), *groups = json_array(),
	       *prins = json_array();
	int rc = o && jwt && groups && prins ? 0 : -ENOMEM;

	if (rc == 0)
		rc = set(o, "name", json_string(t->name)) || set(o, "id", json_integer(t->id)) ||
		     set(o, "status", json_string(bw_tenant_status_name(t->status))) ||
		     set(o, "allow_anonymous", json_boolean(t->allow_anonymous)) ||
		     set(o, "sni", str_list(t->sni, t->sni_n)) ||
		     set(o, "quotas", dump_quotas(&t->quotas)) ||
		     set(o, "ca_pem", json_string(t->ca_pem)) ||
		     set(jwt, "issuers", str_list(t->jwt_issuers, t->jwt_issuers_n)) ||
		     set(jwt, "audiences", str_list(t->jwt_audiences, t->jwt_audiences_n)) ||
		     set(jwt, "jwks", json_string(t->jwks));
	if (rc == 0) {
		rc = set(o, "jwt", jwt);
		jwt = NULL;
	}
	/* Only when set: a file without tenant claims stays as older nodes wrote it. */
	if (rc == 0 && t->jwt_tenant_claim && *t->jwt_tenant_claim)
		rc = set(o, "jwt_tenant_claim", json_string(t->jwt_tenant_claim));
	for (size_t i = 0; rc == 0 && i < t->groups_n; i++) {
		const struct bw_group *g = bw_tenancy_group_at(s, t, i);
		json_t *go = json_object();
		rc = !go || set(go, "name", json_string(g->name)) ||
		     set(go, "rules", json_string(g->rules)) || json_array_append(groups, go);
		json_decref(go);
	}
	for (size_t i = 0; rc == 0 && i < t->principals_n; i++) {
		const struct bw_principal *p = bw_tenancy_principal_at(s, t, i);
		json_t *po = json_object();
		rc = !po || set(po, "name", json_string(p->name)) ||
		     set(po, "kind", json_string(bw_principal_kind_name(p->kind))) ||
		     (p->password_hash &&
		      set(po, "password_hash", json_string(p->password_hash))) ||
		     set(po, "enabled", json_boolean(p->enabled)) ||
		     set(po, "groups", str_list(p->groups, p->groups_n)) ||
		     set(po, "rules", json_string(p->rules)) || json_array_append(prins, po);
		json_decref(po);
	}
	if (rc == 0) {
		rc = set(o, "groups", groups);
		groups = NULL;
	}
	if (rc == 0) {
		rc = set(o, "principals", prins);
		prins = NULL;
	}
	json_decref(jwt);
	json_decref(groups);
	json_decref(prins);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int bw__tenancy_json_dump(const struct bw_tenancy *s, char **out, size_t *len)
{
	json_t *root = json_object(), *tenants = json_array();
	int rc = root && tenants ? 0 : -ENOMEM;

	*out = NULL;
	*len = 0;
	if (rc == 0)
		rc = set(root, "format", json_string("bulwark-tenancy")) ||
		     set(root, "version", json_integer(BW_TENANCY_FILE_VERSION)) ||
		     set(root, "next_tenant_id", json_integer(bw__tenancy_next_id(s)));
	for (size_t i = 0; rc == 0 && i < bw_tenancy_tenant_count(s); i++)
		rc = json_array_append_new(tenants, dump_tenant(s, bw_tenancy_tenant_at(s, i)));
	if (rc == 0) {
		rc = set(root, "tenants", tenants);
		tenants = NULL;
	}
	if (rc == 0) {
		*out = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		rc = *out ? 0 : -ENOMEM;
	}
	json_decref(tenants);
	json_decref(root);
	if (rc != 0)
		return -ENOMEM;
	*len = strlen(*out);
	return 0;
}
