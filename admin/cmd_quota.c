/*
 * quota.set and quota.show, and the quota keys every command that takes or
 * shows quotas uses (tenant.create, tenant.update, tenant.show). The keys
 * and their ranges are those of struct bw_quotas and tenancy.json: counts
 * 0..4294967295, byte counts 0..9223372036854775807, max_packet_bytes at
 * most 268435455, max_qos 0..2; 0 (and null) is the node's default, except
 * for max_qos, where 0 is QoS 0 and only null is the default.
 */
#include "admin/cmd_internal.h"

#include "tenancy/service.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum quota_kind {
	Q_U32,
	Q_U64,
	Q_QOS,
};

struct quota_key {
	const char *name;
	size_t offset;
	enum quota_kind kind;
	uint64_t max;
};

#define QOFF(f) offsetof(struct bw_quotas, f)

static const struct quota_key quota_keys[] = {
	{ "connections", QOFF(connections), Q_U32, UINT32_MAX },
	{ "persistent_sessions", QOFF(persistent_sessions), Q_U32, UINT32_MAX },
	{ "tenant_msgs_per_s", QOFF(tenant_msgs_per_s), Q_U32, UINT32_MAX },
	{ "tenant_bytes_per_s", QOFF(tenant_bytes_per_s), Q_U64, INT64_MAX },
	{ "client_msgs_per_s", QOFF(client_msgs_per_s), Q_U32, UINT32_MAX },
	{ "client_bytes_per_s", QOFF(client_bytes_per_s), Q_U64, INT64_MAX },
	{ "client_subscriptions", QOFF(client_subscriptions), Q_U32, UINT32_MAX },
	{ "retained_msgs", QOFF(retained_msgs), Q_U32, UINT32_MAX },
	{ "retained_bytes", QOFF(retained_bytes), Q_U64, INT64_MAX },
	{ "max_qos", QOFF(max_qos), Q_QOS, 2 },
	{ "max_packet_bytes", QOFF(max_packet_bytes), Q_U32, BW_QUOTA_PACKET_MAX },
	{ "max_session_expiry_s", QOFF(max_session_expiry_s), Q_U32, UINT32_MAX },
	{ "session_queued_msgs", QOFF(session_queued_msgs), Q_U32, UINT32_MAX },
};

#define NQUOTAS (sizeof(quota_keys) / sizeof(quota_keys[0]))

static const struct quota_key *find_key(const char *name)
{
	for (size_t i = 0; i < NQUOTAS; i++) {
		if (!strcmp(quota_keys[i].name, name))
			return &quota_keys[i];
	}
	return NULL;
}

static uint64_t get(const struct bw_quotas *q, const struct quota_key *k)
{
	const char *p = (const char *)q + k->offset;
	if (k->kind == Q_U32)
		return *(const uint32_t *)p;
	if (k->kind == Q_U64)
		return *(const uint64_t *)p;
	return *(const uint8_t *)p;
}

static void set(struct bw_quotas *q, const struct quota_key *k, uint64_t v)
{
	char *p = (char *)q + k->offset;
	if (k->kind == Q_U32)
		*(uint32_t *)p = (uint32_t)v;
	else if (k->kind == Q_U64)
		*(uint64_t *)p = v;
	else
		*(uint8_t *)p = (uint8_t)v;
}

json_t *bw__admin_quotas_json(const struct bw_quotas *q)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < NQUOTAS; i++) {
		const struct quota_key *k = &quota_keys[i];
		uint64_t v = get(q, k);
		json_t *j = k->kind == Q_QOS && v > 2 ? json_null() : json_integer((json_int_t)v);
		if (json_object_set_new(o, k->name, j) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Sets k from v (an integer or null) after a range check; where names v. 0 or -1. */
static int apply(struct bw__admin_req *r, const struct quota_key *k, json_t *v, const char *where,
                 struct bw_quotas *q)
{
	if (json_is_null(v)) {
		set(q, k, k->kind == Q_QOS ? BW_QUOTA_QOS_DEFAULT : 0);
		return 0;
	}
	if (!json_is_integer(v))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "%s: must be a whole number or null",
		                      where);
	json_int_t n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > k->max)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "%s: %lld is out of range (0..%llu%s)",
		                      where, (long long)n, (unsigned long long)k->max,
		                      k->kind == Q_QOS ? ", or null: the node's default"
		                                       : "; 0 or null: the node's default");
	set(q, k, (uint64_t)n);
	return 0;
}

int bw__admin_quotas_parse(struct bw__admin_req *r, json_t *obj, const char *where,
                           struct bw_quotas *q)
{
	const char *name;
	json_t *v;
	char at[128];

	json_object_foreach(obj, name, v)
	{
		const struct quota_key *k = find_key(name);
		if (!k)
			return bw__admin_fail(r, BW_ADMIN_E_USAGE,
			                      "%s: unknown member \"%.64s\" (not a quota key)",
			                      where, name);
		snprintf(at, sizeof(at), "%s.%s", where, name);
		if (apply(r, k, v, at, q) < 0)
			return -1;
	}
	return 0;
}

/* The quotas in force: the tenant's, each 0 the node's (as the broker merges them). */
static void effective(const struct bw_quotas *t, const struct bw_quotas *node,
                      struct bw_quotas *out)
{
	for (size_t i = 0; i < NQUOTAS; i++) {
		const struct quota_key *k = &quota_keys[i];
		uint64_t v = get(t, k);
		if (k->kind == Q_QOS)
			set(out, k, v <= 2 ? v : (get(node, k) <= 2 ? get(node, k) : 2));
		else
			set(out, k, v ? v : get(node, k));
	}
}

static json_t *quotas_result(const struct bw__admin_req *r, const struct bw_tenant *t,
                             bool with_effective)
{
	struct bw_quotas node = { .max_qos = 2 }, eff;
	if (r->ctx->node)
		node = r->ctx->node->quotas;
	json_t *o = json_pack("{s:o}", "quotas", bw__admin_quotas_json(&t->quotas));
	if (!o || !with_effective)
		return o;
	effective(&t->quotas, &node, &eff);
	json_t *e = bw__admin_quotas_json(&eff);
	if (!e || json_object_set_new(o, "effective", e) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int quota_set(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *key = bw__admin_str(r, "key");
	char err[512], where[96];

	bw__admin_target(r, NULL, key);
	if (!t)
		return -1;
	const struct quota_key *k = find_key(key);
	if (!k)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "key: \"%.64s\" is not a quota key (see quota.show)", key);
	struct bw_quotas q = t->quotas;
	snprintf(where, sizeof(where), "value (%s)", k->name);
	if (apply(r, k, bw__admin_arg(r, "value"), where, &q) < 0)
		return -1;
	int rc = bw_tenancy_service_tenant_set_quotas(r->ctx->tenancy, t->name, &q, err,
	                                              sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	bw__admin_refresh(r);
	if (!(t = bw__admin_tenant(r, "tenant")))
		return -1;
	return bw__admin_ok(r, quotas_result(r, t, true));
}

static int quota_show(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	if (!t)
		return -1;
	return bw__admin_ok(r, quotas_result(r, t, true));
}

const struct bw__admin_cmd bw__admin_cmds_quota[] = {
	{ "quota.set",
	  quota_set,
	  true,
	  { { "tenant", ARG_STR, true },
	    { "key", ARG_STR, true },
	    { "value", ARG_INT_OR_NULL, true } } },
	{ "quota.show", quota_show, false, { { "tenant", ARG_STR, true } } },
	{ NULL },
};
