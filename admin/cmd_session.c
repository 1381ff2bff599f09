/*
 * sessions.list, sessions.show, sessions.kick, retained.list and
 * retained.del: what the node's brokers hold, asked through the callbacks
 * of struct bw_admin_node (node/admin_queries.c runs them on the workers).
 * A tenant the store holds but the node never met has no sessions and no
 * retained messages; a tenant neither knows is not_found.
 */
#include "admin/cmd_internal.h"

#include "proto/mqtt/topic.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 1000u   /* rows a list answers unless `limit` says */
#define LIST_MAX     100000u /* the most `limit` may ask for */

void bw_admin_sessions_free(struct bw_admin_sessions *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct bw_admin_session *x = &s->v[i];
		free(x->client_id);
		free(x->user);
		for (size_t k = 0; k < x->subs_n; k++)
			free(x->subs[k].filter);
		free(x->subs);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int bw_admin_sessions_merge(struct bw_admin_sessions *out, struct bw_admin_sessions *parts,
                            size_t n, size_t max)
{
	bool nomem = false;
	for (size_t i = 0; i < n; i++) {
		struct bw_admin_sessions *s = &parts[i];
		out->truncated |= s->truncated;
		size_t take = s->n;
		if (out->n + take > max) {
			take = max - out->n;
			out->truncated = true;
		}
		struct bw_admin_session *v =
		        take ? realloc(out->v, (out->n + take) * sizeof(*v)) : NULL;
		if (take && !v) {
			nomem = true;
			take = 0;
		} else if (take) {
			out->v = v;
			memcpy(&v[out->n], s->v, take * sizeof(*v));
			out->n += take;
		}
		/* What was not taken is freed with the part (a part with none has no v). */
		if (s->n > take)
			memmove(s->v, s->v + take, (s->n - take) * sizeof(*s->v));
		s->n -= take;
		bw_admin_sessions_free(s);
	}
	if (nomem)
		bw_admin_sessions_free(out);
	return nomem ? -ENOMEM : 0;
}

/*
 * After a callback's rc about tenant `name`: 0 when the node or the store
 * knows the tenant, else r fails (not_found; unavailable while the node
 * starts). Sets the audit's tenant.
 */
static int known_tenant(struct bw__admin_req *r, const char *name, int rc)
{
	bw__admin_target(r, name, NULL);
	if (rc == -EAGAIN)
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE, "the node is still starting");
	if (rc == -ENOENT && !bw_tenancy_tenant(r->snap, name, strlen(name)))
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no tenant \"%s\"", name);
	return 0;
}

/* The `limit` argument: LIST_DEFAULT when absent; 0 and r fails when out of range. */
static size_t list_limit(struct bw__admin_req *r)
{
	json_t *v = bw__admin_arg(r, "limit");
	if (!v)
		return LIST_DEFAULT;
	json_int_t n = json_integer_value(v);
	if (n < 1 || n > LIST_MAX) {
		bw__admin_fail(r, BW_ADMIN_E_INVALID, "limit %lld is out of range 1..%u",
		               (long long)n, LIST_MAX);
		return 0;
	}
	return (size_t)n;
}

static bool node_can(const struct bw__admin_req *r, const void *fn)
{
	return r->ctx->node && fn;
}

static json_t *session_json(const struct bw_admin_session *s, const char *node)
{
	return json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:s?}", "client_id", s->client_id,
	                 "connected", s->connected, "persistent", s->persistent, "subscriptions",
	                 (json_int_t)s->subscriptions, "queued", (json_int_t)s->queued, "inflight",
	                 (json_int_t)s->inflight, "node", node);
}

static json_t *subs_json(const struct bw_admin_session *s)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < s->subs_n; i++) {
		const struct bw_admin_sub *x = &s->subs[i];
		json_t *id = x->id ? json_integer(x->id) : json_null();
		if (json_array_append_new(a, json_pack("{s:s, s:i, s:b, s:b, s:i, s:o}", "filter",
		                                       x->filter, "qos", x->qos, "no_local",
		                                       x->no_local, "retain_as_published",
		                                       x->retain_as_published, "retain_handling",
		                                       x->retain_handling, "id", id)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* sessions.show's object: the list's fields and the session's details. */
static json_t *session_detail_json(const struct bw_admin_session *s, const char *node)
{
	json_t *o = session_json(s, node);
	if (!o)
		return NULL;
	json_t *expiry = s->expiry_s == UINT32_MAX ? json_null() : json_integer(s->expiry_s);
	json_t *left = s->expires_in_s >= 0 ? json_integer(s->expires_in_s) : json_null();
	json_t *proto = s->version ? json_integer(s->version) : json_null();
	json_t *user = s->user ? json_string(s->user) : json_null();
	if (json_object_set_new(o, "username", user) < 0 ||
	    json_object_set_new(o, "protocol", proto) < 0 ||
	    json_object_set_new(o, "expiry_s", expiry) < 0 ||
	    json_object_set_new(o, "expires_in_s", left) < 0 ||
	    json_object_set_new(o, "will", json_boolean(s->will)) < 0 ||
	    json_object_set_new(o, "subscriptions_list", subs_json(s)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *node_name(const struct bw__admin_req *r)
{
	struct bw_admin_node_info in = { 0 };
	if (r->ctx->node->info)
		r->ctx->node->info(r->ctx->node->arg, &in);
	return in.name;
}

static int sessions_list(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	const char *tenant = bw__admin_str(r, "tenant");
	const char *glob = bw__admin_str(r, "client_id");
	struct bw_admin_sessions out = { 0 };
	size_t max = list_limit(r);

	if (!max)
		return -1;
	if (!node_can(r, n ? (const void *)n->sessions : NULL))
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE, "this node holds no sessions");
	int rc = n->sessions(n->arg, tenant, glob, NULL, max, &out);
	if (known_tenant(r, tenant, rc) < 0)
		return -1;
	const char *node = node_name(r);
	json_t *a = json_array();
	for (size_t i = 0; a && i < out.n; i++) {
		if (json_array_append_new(a, session_json(&out.v[i], node)) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	bool truncated = out.truncated;
	bw_admin_sessions_free(&out);
	if (!a)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	return bw__admin_ok(r, json_pack("{s:o, s:b}", "sessions", a, "truncated", truncated));
}

static int sessions_show(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	const char *tenant = bw__admin_str(r, "tenant");
	const char *id = bw__admin_str(r, "client_id");
	struct bw_admin_sessions out = { 0 };

	if (!node_can(r, n ? (const void *)n->sessions : NULL))
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE, "this node holds no sessions");
	int rc = n->sessions(n->arg, tenant, NULL, id, 1, &out);
	if (known_tenant(r, tenant, rc) < 0)
		return -1;
	if (out.n == 0)
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND,
		                      "tenant \"%s\" has no session \"%s\" on this node", tenant,
		                      id);
	json_t *o = session_detail_json(&out.v[0], node_name(r));
	bw_admin_sessions_free(&out);
	if (!o)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	/* The list's count stays `subscriptions`; the filters replace it here. */
	json_t *subs = json_incref(json_object_get(o, "subscriptions_list"));
	json_object_del(o, "subscriptions_list");
	json_object_set_new(o, "subscriptions", subs);
	return bw__admin_ok(r, o);
}

static int sessions_kick(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	const char *tenant = bw__admin_str(r, "tenant");
	const char *id = bw__admin_str(r, "client_id");
	bool discard = bw__admin_bool(r, "discard", false);

	bw__admin_target(r, tenant, id);
	if (!node_can(r, n ? (const void *)n->kick : NULL))
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE, "this node holds no sessions");
	int rc = n->kick(n->arg, tenant, id, discard);
	if (known_tenant(r, tenant, rc) < 0)
		return -1;
	bw__admin_target(r, tenant, id);
	if (rc == -ENOENT || rc == -ESRCH)
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND,
		                      "tenant \"%s\" has no client or session \"%s\" on this node",
		                      tenant, id);
	if (rc < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "kick failed: error %d", -rc);
	return bw__admin_ok(r, json_pack("{s:b, s:b}", "kicked", (rc & BW_ADMIN_KICKED) != 0,
	                                 "discarded", (rc & BW_ADMIN_DISCARDED) != 0));
}

static int retained_list(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	const char *tenant = bw__admin_str(r, "tenant");
	const char *filter = bw__admin_str(r, "filter");
	struct bw_admin_retained *v = NULL;
	size_t count = 0, max = list_limit(r);
	bool truncated = false;

	if (!max)
		return -1;
	if (!filter)
		filter = "#";
	if (bw_topic_filter_check((const uint8_t *)filter, strlen(filter)) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "\"%s\" is not a valid topic filter",
		                      filter);
	if (!node_can(r, n ? (const void *)n->retained : NULL))
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE,
		                      "this node holds no retained messages");
	int rc = n->retained(n->arg, tenant, filter, max, &v, &count, &truncated);
	if (known_tenant(r, tenant, rc) < 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < count; i++) {
		if (a && json_array_append_new(a, json_pack("{s:s, s:I, s:i}", "topic", v[i].topic,
		                                            "bytes", (json_int_t)v[i].bytes, "qos",
		                                            v[i].qos)) < 0) {
			json_decref(a);
			a = NULL;
		}
		free(v[i].topic);
	}
	free(v);
	if (!a)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	return bw__admin_ok(r, json_pack("{s:o, s:b}", "retained", a, "truncated", truncated));
}

static int retained_del(struct bw__admin_req *r)
{
	const struct bw_admin_node *n = r->ctx->node;
	const char *tenant = bw__admin_str(r, "tenant");
	const char *topic = bw__admin_str(r, "topic");

	bw__admin_target(r, tenant, topic);
	if (bw_topic_name_check((const uint8_t *)topic, strlen(topic)) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "\"%s\" is not a topic name (no wildcards)", topic);
	if (!node_can(r, n ? (const void *)n->retained_del : NULL))
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE,
		                      "this node holds no retained messages");
	int rc = n->retained_del(n->arg, tenant, topic);
	if (known_tenant(r, tenant, rc) < 0)
		return -1;
	bw__admin_target(r, tenant, topic);
	if (rc == -ENOENT || rc == -ESRCH)
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND,
		                      "tenant \"%s\" has no retained message on \"%s\"", tenant,
		                      topic);
	if (rc == -ENOBUFS)
		return bw__admin_fail(r, BW_ADMIN_E_UNAVAILABLE,
		                      "the Redis write queue is full (is Redis down?): try again");
	if (rc < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "retained.del failed: error %d", -rc);
	return bw__admin_ok(r, json_pack("{s:b}", "deleted", true));
}

const struct bw__admin_cmd bw__admin_cmds_session[] = {
	{ "sessions.list",
	  sessions_list,
	  false,
	  { { "tenant", ARG_STR, true },
	    { "client_id", ARG_STR, false },
	    { "limit", ARG_INT, false } } },
	{ "sessions.show",
	  sessions_show,
	  false,
	  { { "tenant", ARG_STR, true }, { "client_id", ARG_STR, true } } },
	{ "sessions.kick",
	  sessions_kick,
	  true,
	  { { "tenant", ARG_STR, true },
	    { "client_id", ARG_STR, true },
	    { "discard", ARG_BOOL, false } } },
	{ "retained.list",
	  retained_list,
	  false,
	  { { "tenant", ARG_STR, true },
	    { "filter", ARG_STR, false },
	    { "limit", ARG_INT, false } } },
	{ "retained.del",
	  retained_del,
	  true,
	  { { "tenant", ARG_STR, true }, { "topic", ARG_STR, true } } },
	{ NULL },
};
