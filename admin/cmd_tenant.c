/*
 * tenant.create, .list, .show, .update, .suspend, .resume, .delete.
 *
 * tenant.create and tenant.update write the whole tenant record at once
 * (one tenant put keeps its groups and principals), so a request that
 * fails changes nothing even when it touches hostnames, anonymity and
 * quotas together. tenant.delete removes the tenant from the store; its
 * connected clients are disconnected by the brokers when the snapshot
 * moves on.
 */
#include "admin/cmd_internal.h"

#include "tenancy/service.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* name, id, status, hostnames, allow_anonymous: what tenant.list shows of each. */
static json_t *tenant_brief(const struct bw_tenant *t)
{
	return json_pack("{s:s, s:I, s:s, s:o, s:b}", "name", t->name, "id", (json_int_t)t->id,
	                 "status", bw_tenant_status_name(t->status), "hostnames",
	                 bw__admin_strings_json(t->sni, t->sni_n), "allow_anonymous",
	                 t->allow_anonymous);
}

json_t *bw__admin_tenant_json(const struct bw_tenancy *snap, const struct bw_tenant *t)
{
	(void)snap;
	json_t *o = tenant_brief(t);
	if (!o)
		return NULL;
	json_t *more =
	        json_pack("{s:o, s:o, s:o, s:I, s:I}", "quotas", bw__admin_quotas_json(&t->quotas),
	                  "cas", bw__admin_cas_json(t->ca_pem), "jwt", bw__admin_jwt_json(t),
	                  "groups", (json_int_t)t->groups_n, "users", (json_int_t)t->principals_n);
	if (!more || json_object_update(o, more) < 0) {
		json_decref(more);
		json_decref(o);
		return NULL;
	}
	json_decref(more);
	return o;
}

/* The tenant named by args.name as the snapshot now has it, as the result. */
static int tenant_result(struct bw__admin_req *r)
{
	bw__admin_refresh(r);
	const struct bw_tenant *t = bw__admin_tenant(r, "name");
	if (!t)
		return -1;
	return bw__admin_ok(r, bw__admin_tenant_json(r->snap, t));
}

/*
 * Applies args hostnames, allow_anonymous and quotas (those given) to *t.
 * The hostnames are lower-cased into *hosts (the caller frees it and each
 * string). 0 or -1 (r failed).
 */
static int apply_args(struct bw__admin_req *r, struct bw_tenant *t, char ***hosts)
{
	json_t *h = bw__admin_arg(r, "hostnames");
	json_t *q = bw__admin_arg(r, "quotas");

	*hosts = NULL;
	if (json_object_get(r->args, "allow_anonymous"))
		t->allow_anonymous = bw__admin_bool(r, "allow_anonymous", false);
	if (q && bw__admin_quotas_parse(r, q, "args.quotas", &t->quotas) < 0)
		return -1;
	if (!h)
		return 0;
	size_t n = json_array_size(h);
	char **v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!(v[i] = strdup(json_string_value(json_array_get(h, i))))) {
			*hosts = v;
			return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		}
		for (char *c = v[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	*hosts = v;
	t->sni = (const char *const *)v;
	t->sni_n = n;
	return 0;
}

static void free_hosts(char **hosts, json_t *h)
{
	for (size_t i = 0; hosts && i < json_array_size(h); i++)
		free(hosts[i]);
	free(hosts);
}

/* Puts *t (the whole record) and answers with the tenant. */
static int put(struct bw__admin_req *r, struct bw_tenant *t)
{
	char **hosts = NULL, err[512];
	int rc = apply_args(r, t, &hosts);

	if (rc == 0) {
		rc = bw_tenancy_service_tenant_put(r->ctx->tenancy, t, err, sizeof(err));
		if (rc < 0)
			bw__admin_fail_errno(r, rc, err);
	}
	free_hosts(hosts, bw__admin_arg(r, "hostnames"));
	return rc < 0 ? -1 : tenant_result(r);
}

static int tenant_create(struct bw__admin_req *r)
{
	const char *name = bw__admin_str(r, "name");

	bw__admin_target(r, name, name);
	if (bw_tenancy_tenant(r->snap, name, strlen(name)))
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS, "tenant \"%s\" exists", name);
	struct bw_tenant t = {
		.name = name,
		.name_len = strlen(name),
		.status = BW_TENANT_ACTIVE,
		.quotas = { .max_qos = BW_QUOTA_QOS_DEFAULT },
	};
	return put(r, &t);
}

static int tenant_update(struct bw__admin_req *r)
{
	const struct bw_tenant *cur = bw__admin_tenant(r, "name");

	bw__admin_target(r, NULL, bw__admin_str(r, "name"));
	if (!cur)
		return -1;
	struct bw_tenant t = *cur;
	return put(r, &t);
}

static int tenant_list(struct bw__admin_req *r)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < bw_tenancy_tenant_count(r->snap); i++) {
		if (json_array_append_new(a, tenant_brief(bw_tenancy_tenant_at(r->snap, i))) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return bw__admin_ok(r, a ? json_pack("{s:o}", "tenants", a) : NULL);
}

static int tenant_show(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "name");
	if (!t)
		return -1;
	return bw__admin_ok(r, bw__admin_tenant_json(r->snap, t));
}

static int set_status(struct bw__admin_req *r, enum bw_tenant_status st)
{
	const char *name = bw__admin_str(r, "name");
	char err[512];

	bw__admin_target(r, name, name);
	int rc = bw_tenancy_service_tenant_set_status(r->ctx->tenancy, name, st, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return tenant_result(r);
}

static int tenant_suspend(struct bw__admin_req *r)
{
	return set_status(r, BW_TENANT_SUSPENDED);
}

static int tenant_resume(struct bw__admin_req *r)
{
	return set_status(r, BW_TENANT_ACTIVE);
}

static int tenant_delete(struct bw__admin_req *r)
{
	const char *name = bw__admin_str(r, "name");
	char err[512];

	bw__admin_target(r, name, name);
	if (!bw__admin_bool(r, "confirm", false))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE,
		                      "args.confirm: must be true: deleting tenant \"%s\" removes "
		                      "its groups, users, sessions and retained messages",
		                      name);
	int rc = bw_tenancy_service_tenant_delete(r->ctx->tenancy, name, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return bw__admin_ok(r, json_pack("{s:b, s:s}", "deleted", 1, "name", name));
}

#define TENANT_NAME                                                                                \
	{                                                                                          \
		"name", ARG_STR, true                                                              \
	}

const struct bw__admin_cmd bw__admin_cmds_tenant[] = {
	{ "tenant.create",
	  tenant_create,
	  true,
	  { TENANT_NAME,
	    { "hostnames", ARG_STRS, false },
	    { "allow_anonymous", ARG_BOOL, false },
	    { "quotas", ARG_OBJ, false } } },
	{ "tenant.list", tenant_list, false, { { NULL } } },
	{ "tenant.show", tenant_show, false, { TENANT_NAME } },
	{ "tenant.update",
	  tenant_update,
	  true,
	  { TENANT_NAME,
	    { "hostnames", ARG_STRS, false },
	    { "allow_anonymous", ARG_BOOL, false },
	    { "quotas", ARG_OBJ, false } } },
	{ "tenant.suspend", tenant_suspend, true, { TENANT_NAME } },
	{ "tenant.resume", tenant_resume, true, { TENANT_NAME } },
	{ "tenant.delete", tenant_delete, true, { TENANT_NAME, { "confirm", ARG_BOOL, false } } },
	{ NULL },
};
