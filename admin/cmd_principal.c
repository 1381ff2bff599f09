/*
 * user.add, .list, .show, .passwd, .disable, .enable, .del and cert.map.
 *
 * Users made here are password principals: the node hashes the password
 * (Argon2id, tenancy/auth/password.h) and stores only the hash. A password
 * must be at least 8 bytes. The password is wiped from the request once
 * hashed, and never appears in a response, the log or the audit log.
 * cert.map makes a certificate principal (a client certificate's identity)
 * with the groups and own rules of an existing user.
 */
#include "admin/cmd_internal.h"

#include "tenancy/auth/password.h"
#include "tenancy/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_MIN 8u /* bytes */

json_t *bw__admin_user_json(const struct bw_principal *p)
{
	return json_pack("{s:s, s:s, s:b, s:o, s:o}", "name", p->name, "kind",
	                 bw_principal_kind_name(p->kind), "enabled", p->enabled, "groups",
	                 bw__admin_strings_json(p->groups, p->groups_n), "rules",
	                 bw__admin_rules_json(p->rules));
}

/* name, kind, enabled, groups: what user.list shows. */
static json_t *user_brief(const struct bw_principal *p)
{
	return json_pack("{s:s, s:s, s:b, s:o}", "name", p->name, "kind",
	                 bw_principal_kind_name(p->kind), "enabled", p->enabled, "groups",
	                 bw__admin_strings_json(p->groups, p->groups_n));
}

/* The principal args.user of tenant args.tenant; NULL (r failed: not_found). */
static const struct bw_principal *find_user(struct bw__admin_req *r, const struct bw_tenant **tp)
{
	const char *name = bw__admin_str(r, "user");
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");

	bw__admin_target(r, NULL, name);
	*tp = t;
	if (!t)
		return NULL;
	const struct bw_principal *p = bw_tenancy_principal(r->snap, t, name, strlen(name));
	if (!p)
		bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no user \"%s\" in tenant \"%s\"", name,
		               t->name);
	return p;
}

/* The user named by args.user (or name) as the snapshot now has it, as the result. */
static int user_result(struct bw__admin_req *r, const char *name)
{
	const struct bw_tenant *t;
	const struct bw_principal *p = NULL;

	bw__admin_refresh(r);
	if ((t = bw__admin_tenant(r, "tenant")))
		p = bw_tenancy_principal(r->snap, t, name, strlen(name));
	if (!p)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "user \"%s\" is not in force", name);
	return bw__admin_ok(r, bw__admin_user_json(p));
}

/*
 * Hashes args.password into hash[0..cap) and wipes it from the request.
 * 0, or -1 (r failed: invalid for an absent, empty or short password).
 */
static int hash_password(struct bw__admin_req *r, char *hash, size_t cap)
{
	json_t *pw = bw__admin_arg(r, "password");
	if (!pw)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "password: a password user needs one (a token user: kind "
		                      "token; a certificate identity: cert.map)");
	size_t len = json_string_length(pw);
	/* jansson's copy of the string, writable: it is wiped below. */
	char *text = (char *)json_string_value(pw);
	int rc = 0;
	if (len == 0)
		rc = bw__admin_fail(r, BW_ADMIN_E_INVALID, "password: empty");
	else if (len < PASSWORD_MIN)
		rc = bw__admin_fail(r, BW_ADMIN_E_INVALID, "password: shorter than %u bytes",
		                    PASSWORD_MIN);
	else if (len > BW_PASSWORD_LEN_MAX)
		rc = bw__admin_fail(r, BW_ADMIN_E_INVALID, "password: longer than %u bytes",
		                    BW_PASSWORD_LEN_MAX);
	else if ((rc = bw_password_hash(text, len, BW_HASH_ARGON2ID, hash, cap)) < 0)
		rc = bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "password: cannot hash it: %s",
		                    strerror(-rc));
	explicit_bzero(text, len);
	return rc;
}

static int user_add(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *name = bw__admin_str(r, "user");
	char hash[BW_PASSWORD_HASH_MAX], err[512];

	bw__admin_target(r, NULL, name);
	if (!t)
		return -1;
	if (bw_tenancy_principal(r->snap, t, name, strlen(name)))
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS, "user \"%s\" exists in tenant \"%s\"",
		                      name, t->name);
	/* A token user is who a JWT's subject names: it has no password. */
	const char *kind = bw__admin_str(r, "kind");
	bool token = kind && !strcmp(kind, "token");
	if (kind && !token && strcmp(kind, "password"))
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "kind: \"%s\" is not password or token (a certificate "
		                      "identity: cert.map)",
		                      kind);
	if (token && bw__admin_arg(r, "password"))
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "password: a token user has none (its JWT proves who it is)");
	struct bw_principal p = { .tenant = t->name,
		                  .name = name,
		                  .name_len = strlen(name),
		                  .kind = token ? BW_PRINCIPAL_TOKEN : BW_PRINCIPAL_PASSWORD,
		                  .password_hash = token ? NULL : hash,
		                  .enabled = true };
	if (bw__admin_strs(r, "groups", (const char ***)&p.groups, &p.groups_n) < 0)
		return -1;
	int rc = token ? 0 : hash_password(r, hash, sizeof(hash));
	if (rc == 0) {
		rc = bw_tenancy_service_principal_put(r->ctx->tenancy, &p, err, sizeof(err));
		if (rc < 0)
			bw__admin_fail_errno(r, rc, err);
	}
	free((void *)p.groups);
	explicit_bzero(hash, sizeof(hash));
	return rc < 0 ? -1 : user_result(r, name);
}

static int user_passwd(struct bw__admin_req *r)
{
	const struct bw_tenant *t;
	const struct bw_principal *cur = find_user(r, &t);
	char hash[BW_PASSWORD_HASH_MAX], err[512];

	if (!cur)
		return -1;
	if (cur->kind != BW_PRINCIPAL_PASSWORD)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "user: \"%s\" is a %s principal, which has no password",
		                      cur->name, bw_principal_kind_name(cur->kind));
	struct bw_principal p = *cur;
	p.password_hash = hash;
	int rc = hash_password(r, hash, sizeof(hash));
	if (rc == 0) {
		rc = bw_tenancy_service_principal_put(r->ctx->tenancy, &p, err, sizeof(err));
		if (rc < 0)
			bw__admin_fail_errno(r, rc, err);
	}
	explicit_bzero(hash, sizeof(hash));
	return rc < 0 ? -1 : user_result(r, bw__admin_str(r, "user"));
}

static int set_enabled(struct bw__admin_req *r, bool enabled)
{
	const struct bw_tenant *t;
	const struct bw_principal *p = find_user(r, &t);
	char err[512];

	if (!p)
		return -1;
	int rc = bw_tenancy_service_principal_set_enabled(r->ctx->tenancy, t->name, p->name,
	                                                  enabled, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return user_result(r, bw__admin_str(r, "user"));
}

static int user_disable(struct bw__admin_req *r)
{
	return set_enabled(r, false);
}

static int user_enable(struct bw__admin_req *r)
{
	return set_enabled(r, true);
}

static int user_del(struct bw__admin_req *r)
{
	const char *tenant = bw__admin_str(r, "tenant"), *name = bw__admin_str(r, "user");
	char err[512];

	bw__admin_target(r, tenant, name);
	int rc = bw_tenancy_service_principal_delete(r->ctx->tenancy, tenant, name, err,
	                                             sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return bw__admin_ok(r, json_pack("{s:b, s:s}", "deleted", 1, "name", name));
}

static int user_list(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const struct bw_principal *p;

	if (!t)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; a && (p = bw_tenancy_principal_at(r->snap, t, i)); i++) {
		if (json_array_append_new(a, user_brief(p)) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return bw__admin_ok(r, a ? json_pack("{s:o}", "users", a) : NULL);
}

static int user_show(struct bw__admin_req *r)
{
	const struct bw_tenant *t;
	const struct bw_principal *p = find_user(r, &t);
	return p ? bw__admin_ok(r, bw__admin_user_json(p)) : -1;
}

/*
 * A certificate principal: the identity a verified client certificate names
 * (tls_identity), in the groups given, or with a copy of user's groups and
 * own rules (later changes to user do not follow).
 */
static int cert_map(struct bw__admin_req *r)
{
	const char *identity = bw__admin_str(r, "identity");
	bool copy = bw__admin_arg(r, "user") != NULL;
	const struct bw_tenant *t = NULL;
	const struct bw_principal *src = NULL;
	char err[512];

	if (copy == (bw__admin_arg(r, "groups") != NULL))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE,
		                      "cert.map takes either user (whose groups and rules the "
		                      "identity gets) or groups");
	if (copy ? !(src = find_user(r, &t)) : !(t = bw__admin_tenant(r, "tenant")))
		return -1;
	bw__admin_target(r, NULL, identity);
	if (bw_tenancy_principal(r->snap, t, identity, strlen(identity)))
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS, "user \"%s\" exists in tenant \"%s\"",
		                      identity, t->name);
	struct bw_principal p = {
		.tenant = t->name,
		.name = identity,
		.name_len = strlen(identity),
		.kind = BW_PRINCIPAL_CERTIFICATE,
		.enabled = true,
	};
	const char **groups = NULL;
	if (copy) {
		p.groups = src->groups;
		p.groups_n = src->groups_n;
		p.rules = src->rules;
	} else if (bw__admin_strs(r, "groups", &groups, &p.groups_n) < 0) {
		return -1;
	} else {
		p.groups = (const char *const *)groups;
	}
	int rc = bw_tenancy_service_principal_put(r->ctx->tenancy, &p, err, sizeof(err));
	free(groups);
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return user_result(r, identity);
}

#define TENANT                                                                                     \
	{                                                                                          \
		"tenant", ARG_STR, true                                                            \
	}
#define USER                                                                                       \
	{                                                                                          \
		"user", ARG_STR, true                                                              \
	}

const struct bw__admin_cmd bw__admin_cmds_principal[] = {
	{ "user.add",
	  user_add,
	  true,
	  { TENANT,
	    USER,
	    { "password", ARG_STR, false },
	    { "groups", ARG_STRS, false },
	    { "kind", ARG_STR, false } } },
	{ "user.list", user_list, false, { TENANT } },
	{ "user.show", user_show, false, { TENANT, USER } },
	{ "user.passwd", user_passwd, true, { TENANT, USER, { "password", ARG_STR, true } } },
	{ "user.disable", user_disable, true, { TENANT, USER } },
	{ "user.enable", user_enable, true, { TENANT, USER } },
	{ "user.del", user_del, true, { TENANT, USER } },
	{ "cert.map",
	  cert_map,
	  true,
	  { TENANT,
	    { "identity", ARG_STR, true },
	    { "user", ARG_STR, false },
	    { "groups", ARG_STRS, false } } },
	{ NULL },
};
