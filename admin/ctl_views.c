/*
 * Views of their own (see ctl_views.h): each reshapes its result into rows
 * and prints them with bw_ctl_render_table(), or says it in a sentence.
 */
#include "admin/ctl_views.h"
#include "admin/ctl_render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const struct bw_ctl_col stats_cols[] = {
	{ "TENANT", "tenant" },         { "CONN", "connections" },
	{ "SESSIONS", "sessions" },     { "PERSISTENT", "persistent" },
	{ "SUBS", "subscriptions" },    { "MSGS_IN", "msgs_in" },
	{ "IN/S", "msgs_in_per_s" },    { "MSGS_OUT", "msgs_out" },
	{ "OUT/S", "msgs_out_per_s" },  { "BYTES_IN", "bytes_in" },
	{ "BYTES_OUT", "bytes_out" },   { "DROPPED", "dropped" },
	{ "QUOTA_HITS", "quota_hits" }, { "AUTH_FAIL", "auth_failures" },
	{ "ACL_DENY", "acl_denials" },
};

/* A copy of row with its tenant's name as `tenant` (taken from name when
 * it is not set). */
static json_t *stats_row(const json_t *row, const char *name)
{
	json_t *r = json_is_object(row) ? json_copy((json_t *)row) : json_object();

	if (!r)
		return NULL;
	if (!json_object_get(r, "tenant")) {
		json_t *n = name ? json_string(name) : json_incref(json_object_get(r, "name"));
		if (n)
			json_object_set_new(r, "tenant", n);
	}
	return r;
}

/*
 * result.tenants is an object keyed by tenant name or an array of objects
 * naming their tenant (`tenant` or `name`); both are shown as a row a
 * tenant.
 */
void bw_ctl_view_stats(FILE *out, const json_t *args, const json_t *result)
{
	json_t *t = json_object_get(result, "tenants"), *rows = json_array(), *v;
	const char *key;
	size_t i;

	if (!rows)
		return;
	if (json_is_object(t)) {
		json_object_foreach(t, key, v) json_array_append_new(rows, stats_row(v, key));
	} else {
		json_array_foreach(t, i, v) json_array_append_new(rows, stats_row(v, NULL));
	}
	if (json_array_size(rows) == 0)
		fprintf(out, "no tenants\n");
	else
		bw_ctl_render_table(out, rows, stats_cols,
		                    sizeof(stats_cols) / sizeof(stats_cols[0]), 0);
	json_decref(rows);
}

/* A quota's own value: 0 (null for max_qos) is the node's default. */
static json_t *quota_value(const char *key, const json_t *v)
{
	bool qos = !strcmp(key, "max_qos");

	if ((qos && (json_is_null(v) || json_integer_value(v) == 255)) ||
	    (!qos && json_is_integer(v) && json_integer_value(v) == 0))
		return json_string("default");
	return json_incref((json_t *)v);
}

/* result.quotas beside result.effective: a row a quota. */
void bw_ctl_view_quotas(FILE *out, const json_t *args, const json_t *result)
{
	static const struct bw_ctl_col cols[] = {
		{ "QUOTA", "quota" },
		{ "VALUE", "value" },
		{ "EFFECTIVE", "effective" },
	};
	json_t *q = json_object_get(result, "quotas"), *eff = json_object_get(result, "effective");
	json_t *rows = json_array(), *v;
	const char *key;

	if (!rows)
		return;
	json_object_foreach(q, key, v)
	{
		json_t *row =
		        json_pack("{s:s, s:o*, s:O*}", "quota", key, "value", quota_value(key, v),
		                  "effective", json_object_get(eff, key));
		json_array_append_new(rows, row);
	}
	if (json_array_size(rows) == 0)
		fprintf(out, "no quotas\n");
	else
		bw_ctl_render_table(out, rows, cols, 3, 0);
	json_decref(rows);
}

/* A tenant (tenant show, create, update, ...) as "key: value" lines, a quota
 * that is the node's default as "default". */
void bw_ctl_view_tenant(FILE *out, const json_t *args, const json_t *result)
{
	json_t *copy = json_deep_copy(result);
	json_t *q = json_object_get(copy, "quotas"), *v;
	const char *key;

	/* Replacing a member's value leaves the iteration alone. */
	json_object_foreach(q, key, v) json_object_set_new(q, key, quota_value(key, v));
	bw_ctl_render_kv(out, copy ? copy : result, 0);
	json_decref(copy);
}

/* The texts of rules ([{"n": 1, "text": ...}]) joined by "; ", or NULL for none. */
static json_t *rule_texts(const json_t *rules)
{
	char *buf = NULL;
	size_t len = 0, i;
	json_t *rule, *j = NULL;
	FILE *m;

	if (!json_is_array(rules))
		return rules ? json_incref((json_t *)rules) : NULL;
	if (json_array_size(rules) == 0 || !(m = open_memstream(&buf, &len)))
		return NULL;
	json_array_foreach(rules, i, rule)
	{
		const json_t *text = json_is_object(rule) ? json_object_get(rule, "text") : rule;
		fprintf(m, "%s%s", i ? "; " : "",
		        json_is_string(text) ? json_string_value(text) : "?");
	}
	if (fclose(m) == 0)
		j = json_stringn(buf, len);
	free(buf);
	return j;
}

/* group list: a row a group, its rules' texts in one cell. */
void bw_ctl_view_groups(FILE *out, const json_t *args, const json_t *result)
{
	static const struct bw_ctl_col cols[] = { { "NAME", "name" }, { "RULES", "rules" } };
	json_t *groups = json_object_get(result, "groups"), *rows = json_array(), *g;
	size_t i;

	if (!rows)
		return;
	json_array_foreach(groups, i, g)
	{
		json_array_append_new(rows,
		                      json_pack("{s:O*, s:o*}", "name", json_object_get(g, "name"),
		                                "rules", rule_texts(json_object_get(g, "rules"))));
	}
	if (json_array_size(rows) == 0)
		fprintf(out, "no groups\n");
	else
		bw_ctl_render_table(out, rows, cols, 2, 0);
	json_decref(rows);
}

/* "imported 3 users and 7 rules into tenant acme". */
void bw_ctl_view_import(FILE *out, const json_t *args, const json_t *result)
{
	json_int_t users = json_integer_value(json_object_get(result, "users"));
	json_int_t rules = json_integer_value(json_object_get(result, "rules"));
	char *tenant = bw_ctl_cell(json_object_get(args, "tenant"));

	fprintf(out,
	        "imported %" JSON_INTEGER_FORMAT " user%s and %" JSON_INTEGER_FORMAT
	        " rule%s into tenant %s\n",
	        users, users == 1 ? "" : "s", rules, rules == 1 ? "" : "s", tenant ? tenant : "?");
	free(tenant);
}
