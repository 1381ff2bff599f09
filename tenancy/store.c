/*
 * What the two tenancy stores share: the names of the writes, their field
 * checks, and applying a write to a snapshot builder (the file store's
 * whole write path; the PostgreSQL store turns writes into SQL instead).
 */
#include "tenancy/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tenancy/model_build.h"

static const char *const op_names[] = {
	[BW_OP_TENANT_PUT] = "tenant put",
	[BW_OP_TENANT_DELETE] = "tenant delete",
	[BW_OP_TENANT_STATUS] = "tenant status",
	[BW_OP_TENANT_ANONYMOUS] = "tenant anonymous",
	[BW_OP_TENANT_QUOTAS] = "tenant quotas",
	[BW_OP_TENANT_SNI] = "tenant sni",
	[BW_OP_TENANT_CA] = "tenant ca",
	[BW_OP_TENANT_JWT] = "tenant jwt",
	[BW_OP_GROUP_PUT] = "group put",
	[BW_OP_GROUP_DELETE] = "group delete",
	[BW_OP_PRINCIPAL_PUT] = "principal put",
	[BW_OP_PRINCIPAL_DELETE] = "principal delete",
	[BW_OP_PRINCIPAL_ENABLED] = "principal enabled",
	[BW_OP_PRINCIPAL_GROUPS] = "principal groups",
};

const char *bw_tenancy_op_name(enum bw_tenancy_op_kind kind)
{
	return (unsigned)kind <= BW_OP_PRINCIPAL_GROUPS ? op_names[kind] : "unknown write";
}

static int missing(const char *what, char *err, size_t cap)
{
	snprintf(err, cap, "%s: missing", what);
	return -EINVAL;
}

/* A tenant holding op's name and the fields of t that op's kind names. */
static struct bw_tenant partial_tenant(const struct bw_tenancy_op *op)
{
	struct bw_tenant t = { .name = op->tenant,
		               .name_len = op->tenant ? strlen(op->tenant) : 0 };

	switch (op->kind) {
	case BW_OP_TENANT_STATUS:
		t.status = op->t->status;
		break;
	case BW_OP_TENANT_QUOTAS:
		t.quotas = op->t->quotas;
		break;
	case BW_OP_TENANT_SNI:
		t.sni = op->t->sni;
		t.sni_n = op->t->sni_n;
		break;
	case BW_OP_TENANT_CA:
		t.ca_pem = op->t->ca_pem;
		break;
	case BW_OP_TENANT_JWT:
		t.jwt_issuers = op->t->jwt_issuers;
		t.jwt_issuers_n = op->t->jwt_issuers_n;
		t.jwt_audiences = op->t->jwt_audiences;
		t.jwt_audiences_n = op->t->jwt_audiences_n;
		t.jwks = op->t->jwks;
		t.jwt_tenant_claim = op->t->jwt_tenant_claim;
		break;
	default:
		break;
	}
	return t;
}

int bw_tenancy_op_check(const struct bw_tenancy_op *op, char *err, size_t cap)
{
	struct bw_tenant t;
	struct bw_principal p;
	struct bw_group g;

	switch (op->kind) {
	case BW_OP_TENANT_PUT:
		return op->t ? bw_tenancy_tenant_check(op->t, err, cap)
		             : missing("tenant", err, cap);
	case BW_OP_TENANT_STATUS:
	case BW_OP_TENANT_ANONYMOUS:
	case BW_OP_TENANT_QUOTAS:
	case BW_OP_TENANT_SNI:
	case BW_OP_TENANT_CA:
	case BW_OP_TENANT_JWT:
		if (!op->t)
			return missing("tenant values", err, cap);
		/* fall through */
	case BW_OP_TENANT_DELETE:
		t = op->t ? partial_tenant(op) : (struct bw_tenant){ .name = op->tenant };
		if (op->kind == BW_OP_TENANT_DELETE)
			t.name_len = op->tenant ? strlen(op->tenant) : 0;
		return bw_tenancy_tenant_check(&t, err, cap);
	case BW_OP_GROUP_PUT:
		return op->g ? bw_tenancy_group_check(op->g, err, cap) : missing("group", err, cap);
	case BW_OP_GROUP_DELETE:
		g = (struct bw_group){ .tenant = op->tenant,
			               .name = op->name,
			               .name_len = op->name ? strlen(op->name) : 0 };
		return bw_tenancy_group_check(&g, err, cap);
	case BW_OP_PRINCIPAL_PUT:
		return op->p ? bw_tenancy_principal_check(op->p, err, cap)
		             : missing("principal", err, cap);
	case BW_OP_PRINCIPAL_GROUPS:
	case BW_OP_PRINCIPAL_ENABLED:
		if (!op->p)
			return missing("principal values", err, cap);
		/* fall through */
	case BW_OP_PRINCIPAL_DELETE:
		/* A certificate principal needs no hash: only name and groups are judged. */
		p = (struct bw_principal){ .tenant = op->tenant,
			                   .name = op->name,
			                   .name_len = op->name ? strlen(op->name) : 0,
			                   .kind = BW_PRINCIPAL_CERTIFICATE };
		if (op->kind == BW_OP_PRINCIPAL_GROUPS) {
			p.groups = op->p->groups;
			p.groups_n = op->p->groups_n;
		}
		return bw_tenancy_principal_check(&p, err, cap);
	}
	snprintf(err, cap, "unknown write %d", (int)op->kind);
	return -EINVAL;
}

static int no_tenant(const char *name, char *err, size_t cap)
{
	snprintf(err, cap, "no tenant \"%s\"", name);
	return -ENOENT;
}

int bw__tenancy_op_apply(struct bw__tbuild *b, const struct bw_tenancy_op *op, char *err,
                         size_t cap)
{
	const struct bw_tenant *cur;
	const struct bw_principal *pcur;
	struct bw_tenant t;
	struct bw_principal p;

	switch (op->kind) {
	case BW_OP_TENANT_PUT:
		return bw__tbuild_tenant_put(b, op->t, 0, err, cap);
	case BW_OP_TENANT_DELETE:
		return bw__tbuild_tenant_delete(b, op->tenant, strlen(op->tenant), err, cap);
	case BW_OP_TENANT_STATUS:
	case BW_OP_TENANT_ANONYMOUS:
	case BW_OP_TENANT_QUOTAS:
	case BW_OP_TENANT_SNI:
	case BW_OP_TENANT_CA:
	case BW_OP_TENANT_JWT:
		cur = bw__tbuild_tenant(b, op->tenant, strlen(op->tenant));
		if (!cur)
			return no_tenant(op->tenant, err, cap);
		t = *cur;
		if (op->kind == BW_OP_TENANT_STATUS) {
			t.status = op->t->status;
		} else if (op->kind == BW_OP_TENANT_ANONYMOUS) {
			t.allow_anonymous = op->t->allow_anonymous;
		} else if (op->kind == BW_OP_TENANT_QUOTAS) {
			t.quotas = op->t->quotas;
		} else if (op->kind == BW_OP_TENANT_SNI) {
			t.sni = op->t->sni;
			t.sni_n = op->t->sni_n;
		} else if (op->kind == BW_OP_TENANT_CA) {
			t.ca_pem = op->t->ca_pem;
		} else {
			t.jwt_issuers = op->t->jwt_issuers;
			t.jwt_issuers_n = op->t->jwt_issuers_n;
			t.jwt_audiences = op->t->jwt_audiences;
			t.jwt_audiences_n = op->t->jwt_audiences_n;
			t.jwks = op->t->jwks;
			t.jwt_tenant_claim = op->t->jwt_tenant_claim;
		}
		return bw__tbuild_tenant_put(b, &t, cur->id, err, cap);
	case BW_OP_GROUP_PUT:
		return bw__tbuild_group_put(b, op->g, err, cap);
	case BW_OP_GROUP_DELETE:
		return bw__tbuild_group_delete(b, op->tenant, op->name, err, cap);
	case BW_OP_PRINCIPAL_PUT:
		return bw__tbuild_principal_put(b, op->p, true, err, cap);
	case BW_OP_PRINCIPAL_DELETE:
		return bw__tbuild_principal_delete(b, op->tenant, op->name, err, cap);
	case BW_OP_PRINCIPAL_ENABLED:
	case BW_OP_PRINCIPAL_GROUPS:
		if (!bw__tbuild_tenant(b, op->tenant, strlen(op->tenant)))
			return no_tenant(op->tenant, err, cap);
		pcur = bw__tbuild_principal(b, op->tenant, op->name);
		if (!pcur) {
			snprintf(err, cap, "no principal \"%s\" in tenant \"%s\"", op->name,
			         op->tenant);
			return -ENOENT;
		}
		p = *pcur;
		if (op->kind == BW_OP_PRINCIPAL_ENABLED) {
			p.enabled = op->p->enabled;
			return bw__tbuild_principal_put(b, &p, false, err, cap);
		}
		p.groups = op->p->groups;
		p.groups_n = op->p->groups_n;
		return bw__tbuild_principal_put(b, &p, true, err, cap);
	}
	snprintf(err, cap, "unknown write %d", (int)op->kind);
	return -EINVAL;
}
