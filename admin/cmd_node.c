/*
 * node.info, stats and config.reload: what the node says about itself,
 * through the callbacks of struct bw_admin_node (node/main.c), and the
 * tenancy service's status.
 */
#include "admin/cmd_internal.h"

#include "bw_version.h"
#include "tenancy/service.h"

#include <stdio.h>
#include <string.h>

static json_t *listeners_json(const struct bw_admin_node_info *in)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < in->listeners_n; i++) {
		const struct bw_admin_listener *l = &in->listeners[i];
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:s?}", "kind", l->kind,
		                                       "addr", l->addr, "port", (int)l->port,
		                                       "tenant", l->tenant)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *tenancy_json(struct bw_tenancy_service *svc)
{
	struct bw_tenancy_status st;
	char detail[512];

	bw_tenancy_service_status(svc, &st);
	snprintf(detail, sizeof(detail), "%s, %zu tenants, %zu groups, %zu users%s%s",
	         st.up ? "up" : "down", st.tenants, st.groups, st.principals,
	         st.last_error[0] ? "; last error: " : "", st.last_error);
	return json_pack("{s:s, s:b, s:I, s:s}", "backend", st.backend, "ready", st.loaded,
	                 "version", (json_int_t)st.version, "detail", detail);
}

static int node_info(struct bw__admin_req *r)
{
	struct bw_admin_node_info in = { .version = BW_VERSION, .commit = BW_GIT_COMMIT };
	const struct bw_admin_node *n = r->ctx->node;

	if (n && n->info)
		n->info(n->arg, &in);
	return bw__admin_ok(r,
	                    json_pack("{s:s, s:s, s:s?, s:I, s:I, s:b, s:o, s:o}", "version",
	                              in.version, "commit", in.commit, "name", in.name, "uptime_s",
	                              (json_int_t)in.uptime_s, "workers", (json_int_t)in.workers,
	                              "draining", in.draining, "listeners", listeners_json(&in),
	                              "tenancy", tenancy_json(r->ctx->tenancy)));
}

static json_t *stats_json(const char *name, const struct bw_admin_tenant_stats *s)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	                 "s:f, s:f, s:f, s:f, s:f}",
	                 "name", name, "connections", (json_int_t)s->connections, "sessions",
	                 (json_int_t)s->sessions, "persistent", (json_int_t)s->persistent,
	                 "subscriptions", (json_int_t)s->subscriptions, "msgs_in",
	                 (json_int_t)s->msgs_in, "msgs_out", (json_int_t)s->msgs_out, "bytes_in",
	                 (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out, "dropped",
	                 (json_int_t)s->dropped, "quota_hits", (json_int_t)s->quota_hits,
	                 "auth_failures", (json_int_t)s->auth_failures, "acl_denials",
	                 (json_int_t)s->acl_denials, "msgs_in_per_s", s->msgs_in_per_s,
	                 "msgs_out_per_s", s->msgs_out_per_s, "bytes_in_per_s", s->bytes_in_per_s,
	                 "bytes_out_per_s", s->bytes_out_per_s, "dropped_per_s", s->dropped_per_s);
}

/* The node's counters of the tenant called name into *s; false when it has met none. */
static bool node_stats(const struct bw__admin_req *r, const char *name,
                       struct bw_admin_tenant_stats *s)
{
	const struct bw_admin_node *n = r->ctx->node;
	for (uint32_t i = 0; n && n->tenant_stats && n->tenant_stats(n->arg, i, s) == 0; i++) {
		if (!strcmp(s->tenant, name))
			return true;
	}
	memset(s, 0, sizeof(*s));
	return false;
}

/* Appends name's counters (zeros when the node has not met it) to a; 0 or -1. */
static int append_stats(const struct bw__admin_req *r, json_t *a, const char *name)
{
	struct bw_admin_tenant_stats s;
	node_stats(r, name, &s);
	return json_array_append_new(a, stats_json(name, &s));
}

/* Every tenant the node met (config tenants too), then the store's others. */
static int all_stats(const struct bw__admin_req *r, json_t *a)
{
	const struct bw_admin_node *n = r->ctx->node;
	struct bw_admin_tenant_stats s;

	for (uint32_t i = 0; n && n->tenant_stats && n->tenant_stats(n->arg, i, &s) == 0; i++) {
		if (json_array_append_new(a, stats_json(s.tenant, &s)) < 0)
			return -1;
	}
	for (size_t i = 0; i < bw_tenancy_tenant_count(r->snap); i++) {
		const struct bw_tenant *t = bw_tenancy_tenant_at(r->snap, i);
		if (!node_stats(r, t->name, &s) && append_stats(r, a, t->name) < 0)
			return -1;
	}
	return 0;
}

static int stats(struct bw__admin_req *r)
{
	const char *name = bw__admin_str(r, "tenant");
	struct bw_admin_tenant_stats s;
	json_t *a = json_array();
	int rc = a ? 0 : -1;

	if (a && name) {
		bw__admin_target(r, name, NULL);
		if (!node_stats(r, name, &s) && !bw_tenancy_tenant(r->snap, name, strlen(name))) {
			json_decref(a);
			return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no tenant \"%s\"", name);
		}
		rc = append_stats(r, a, name);
	} else if (a) {
		rc = all_stats(r, a);
	}
	if (rc < 0) {
		json_decref(a);
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	}
	return bw__admin_ok(r, json_pack("{s:o}", "tenants", a));
}

/* Without the node's callback: only the tenancy store is read again. */
static void reload_tenancy(struct bw__admin_req *r, struct bw_admin_reload *out)
{
	out->n = 1;
	out->items[0].what = "tenancy";
	out->items[0].rc = bw_tenancy_service_reload(r->ctx->tenancy, out->items[0].error,
	                                             sizeof(out->items[0].error));
}

static int config_reload(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	struct bw_admin_reload out = { 0 };
	json_t *done = json_array(), *failed = json_array();

	bw__admin_target(r, NULL, "node");
	if (n && n->reload)
		n->reload(n->arg, &out);
	else
		reload_tenancy(r, &out);
	for (size_t i = 0; done && failed && i < out.n && i < BW_ADMIN_RELOAD_MAX; i++) {
		if (out.items[i].rc == 0)
			json_array_append_new(done, json_string(out.items[i].what));
		else
			json_array_append_new(failed,
			                      json_pack("{s:s, s:s}", "what", out.items[i].what,
			                                "message", out.items[i].error));
	}
	if (!done || !failed) {
		json_decref(done);
		json_decref(failed);
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	}
	return bw__admin_ok(r, json_pack("{s:o, s:o}", "reloaded", done, "failed", failed));
}

/*
 * Stops accepting MQTT connections and sends every client to another node
 * (5.0: DISCONNECT 0x9C); /readyz answers 503 from now on. For good: the
 * node drains to be stopped. Again: nothing more happens.
 */
static int node_drain(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;

	bw__admin_target(r, NULL, "node");
	if (!n || !n->drain)
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE, "this node cannot drain");
	uint32_t gone = n->drain(n->arg);
	return bw__admin_ok(
	        r, json_pack("{s:b, s:I}", "draining", true, "disconnected", (json_int_t)gone));
}

const struct bw__admin_cmd bw__admin_cmds_node[] = {
	{ "node.info", node_info, false, { { NULL } } },
	{ "stats", stats, false, { { "tenant", ARG_STR, false } } },
	{ "config.reload", config_reload, true, { { NULL } } },
	{ "node.drain", node_drain, true, { { NULL } } },
	{ NULL },
};
