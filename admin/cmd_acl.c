/*
 * group.create, .list, .delete and acl.add, .list, .del.
 *
 * A group's or a user's rules are a rule list (tenancy/acl.h,
 * bw_acl_parse_rules): one rule a line. The rules are numbered from 1 over
 * the lines that hold one (blank lines and '#' comments, which a file
 * edited by hand may have, are kept but not numbered). acl.add builds the
 * line from its arguments ("allow publish data/# qos=1 retain=no"),
 * appends it and parses the whole new list before writing it, so a rule
 * the broker would refuse never reaches the store; acl.del removes rule n.
 * Both answer with the owner's list as acl.list shows it (owner, n, text).
 */
#include "admin/cmd_internal.h"

#include "tenancy/acl.h"
#include "tenancy/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The next rule line from *it on (blank and comment lines skipped): its
 * text without surrounding blanks in [*line, *line + *len), and *it moves
 * past it. Returns false at the end.
 */
static bool next_rule(const char **it, const char **line, size_t *len)
{
	const char *p = *it;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		const char *end = eol ? eol : p + strlen(p);
		const char *s = p;
		p = eol ? eol + 1 : end;
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		const char *e = end;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (e > s && *s != '#') {
			*it = p;
			*line = s;
			*len = (size_t)(e - s);
			return true;
		}
	}
	*it = p;
	return false;
}

/* One numbered rule (owner: NULL to leave it out), appended to a; 0 or -1. */
static int append_rule(json_t *a, const char *owner, size_t n, const char *line, size_t len)
{
	json_t *o = owner ? json_pack("{s:s, s:I, s:s#}", "owner", owner, "n", (json_int_t)n,
	                              "text", line, (int)len)
	                  : json_pack("{s:I, s:s#}", "n", (json_int_t)n, "text", line, (int)len);
	return json_array_append_new(a, o);
}

/* The rules of one list onto a, owner on each when not NULL. 0 or -1. */
static int rules_onto(json_t *a, const char *rules, const char *owner)
{
	const char *it = rules, *line;
	size_t len, n = 0;
	while (next_rule(&it, &line, &len)) {
		if (append_rule(a, owner, ++n, line, len) < 0)
			return -1;
	}
	return 0;
}

json_t *bw__admin_rules_json(const char *rules)
{
	json_t *a = json_array();
	if (a && rules_onto(a, rules, NULL) < 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* Whose rules a request names: args.group or args.user, exactly one. */
struct owner {
	const struct bw_group *g;
	const struct bw_principal *p;
	const char *rules;
	char label[320]; /* "group:NAME" or "user:NAME" */
};

static int find_owner(struct bw__admin_req *r, const struct bw_tenant *t, struct owner *o)
{
	const char *g = bw__admin_str(r, "group"), *u = bw__admin_str(r, "user");

	memset(o, 0, sizeof(*o));
	if (!g == !u)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE,
		                      "args: give group or user (one of them)");
	snprintf(o->label, sizeof(o->label), "%s:%s", g ? "group" : "user", g ? g : u);
	bw__admin_target(r, NULL, o->label);
	if (g && !(o->g = bw_tenancy_group(r->snap, t, g, strlen(g))))
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no group \"%s\" in tenant \"%s\"",
		                      g, t->name);
	if (u && !(o->p = bw_tenancy_principal(r->snap, t, u, strlen(u))))
		return bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no user \"%s\" in tenant \"%s\"", u,
		                      t->name);
	o->rules = o->g ? o->g->rules : o->p->rules;
	return 0;
}

/* Writes rules as the owner's new list (other fields as they are). 0 or -1. */
static int put_rules(struct bw__admin_req *r, const struct owner *o, const char *rules)
{
	char err[512];
	int rc;

	if (o->g) {
		struct bw_group g = *o->g;
		g.rules = rules;
		rc = bw_tenancy_service_group_put(r->ctx->tenancy, &g, err, sizeof(err));
	} else {
		struct bw_principal p = *o->p;
		p.rules = rules;
		rc = bw_tenancy_service_principal_put(r->ctx->tenancy, &p, err, sizeof(err));
	}
	return rc < 0 ? bw__admin_fail_errno(r, rc, err) : 0;
}

/* The owner's rules after a write, as the result {"rules": [...]}: as acl.list shows them. */
static int rules_result(struct bw__admin_req *r, const struct bw_tenant *t)
{
	struct owner o;
	json_t *a;

	bw__admin_refresh(r);
	if (!(t = bw__admin_tenant(r, "tenant")) || find_owner(r, t, &o) < 0)
		return -1;
	if ((a = json_array()) && rules_onto(a, o.rules, o.label) < 0) {
		json_decref(a);
		a = NULL;
	}
	return bw__admin_ok(r, a ? json_pack("{s:o}", "rules", a) : NULL);
}

/* The rule line acl.add's arguments describe, into buf; 0 or -1 (r failed). */
static int build_rule(struct bw__admin_req *r, char *buf, size_t cap)
{
	const char *effect = bw__admin_str(r, "effect"), *action = bw__admin_str(r, "action");
	const char *filter = bw__admin_str(r, "filter");
	json_t *qos = bw__admin_arg(r, "max_qos");

	if (strcmp(effect, "allow") && strcmp(effect, "deny"))
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "effect: must be allow or deny");
	if (strcmp(action, "publish") && strcmp(action, "subscribe") && strcmp(action, "all"))
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "action: must be publish, subscribe or all");
	if (!*filter || strpbrk(filter, " \t\r\n"))
		return bw__admin_fail(
		        r, BW_ADMIN_E_INVALID,
		        "filter: must be a topic filter without spaces or line breaks");
	/* Room for the words around it: the whole line stays within cap. */
	if (strlen(filter) + 40 > cap)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "filter: longer than %zu bytes",
		                      cap - 40);
	if (qos && (json_integer_value(qos) < 0 || json_integer_value(qos) > 2))
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "max_qos: must be 0, 1 or 2");
	int n = snprintf(buf, cap, "%s %s %s", effect, action, filter);
	if (qos)
		n += snprintf(buf + n, cap - (size_t)n, " qos=%d", (int)json_integer_value(qos));
	if (bw__admin_bool(r, "no_retain", false))
		n += snprintf(buf + n, cap - (size_t)n, " retain=no");
	return 0;
}

/* The rule list text with line appended; NULL (r failed) when out of memory or a duplicate. */
static char *append_line(struct bw__admin_req *r, const char *rules, const char *line)
{
	const char *it = rules, *l;
	size_t len, n = 0, have = rules ? strlen(rules) : 0;

	while (next_rule(&it, &l, &len)) {
		n++;
		if (len == strlen(line) && !memcmp(l, line, len)) {
			bw__admin_fail(r, BW_ADMIN_E_EXISTS, "rule %zu is \"%s\" already", n, line);
			return NULL;
		}
	}
	char *out = malloc(have + strlen(line) + 3);
	if (!out) {
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		return NULL;
	}
	sprintf(out, "%s%s%s\n", have ? rules : "", have && rules[have - 1] != '\n' ? "\n" : "",
	        line);
	return out;
}

/* Whether rules parse as a rule list; 0 or -1 (r failed: invalid, with the parser's why). */
static int check_rules(struct bw__admin_req *r, const struct owner *o, const char *rules)
{
	struct bw_acl *acl = NULL;
	char err[512];
	int rc = bw_acl_parse_rules(rules, strlen(rules), o->label, &acl, err, sizeof(err));
	bw_acl_free(&acl);
	if (rc < 0)
		return bw__admin_fail_errno(r, rc == -ENOMEM ? rc : -EINVAL, err);
	return 0;
}

static int acl_add(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	struct owner o;
	char line[BW_ACL_LINE_MAX + 1];

	if (!t || find_owner(r, t, &o) < 0 || build_rule(r, line, sizeof(line)) < 0)
		return -1;
	char *rules = append_line(r, o.rules, line);
	if (!rules)
		return -1;
	int rc = check_rules(r, &o, rules);
	if (rc == 0)
		rc = put_rules(r, &o, rules);
	free(rules);
	return rc < 0 ? -1 : rules_result(r, t);
}

/* The rule list without rule n (1-based); NULL (r failed) when there is no rule n. */
static char *remove_rule(struct bw__admin_req *r, const struct owner *o, json_int_t n)
{
	const char *rules = o->rules ? o->rules : "", *it = rules, *line = NULL, *start = rules;
	size_t len;
	json_int_t k = 0;

	while (k < n) {
		start = it;
		if (!next_rule(&it, &line, &len))
			break;
		k++;
	}
	if (n < 1 || k < n) {
		bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no rule %lld (%s has %lld)", (long long)n,
		               o->label, (long long)(n < 1 ? 0 : k));
		return NULL;
	}
	/* [start, it) holds rule n and the blank or comment lines before it: keep those. */
	const char *cut = line;
	while (cut > start && cut[-1] != '\n')
		cut--;
	size_t before = (size_t)(cut - rules);
	char *out = malloc(strlen(rules) + 1);
	if (!out) {
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		return NULL;
	}
	memcpy(out, rules, before);
	strcpy(out + before, it);
	return out;
}

static int acl_del(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	struct owner o;

	if (!t || find_owner(r, t, &o) < 0)
		return -1;
	char *rules = remove_rule(r, &o, json_integer_value(bw__admin_arg(r, "n")));
	if (!rules)
		return -1;
	int rc = put_rules(r, &o, rules);
	free(rules);
	return rc < 0 ? -1 : rules_result(r, t);
}

/* Every group's and user's rules of t onto a, each with its owner. 0 or -1. */
static int all_rules(const struct bw__admin_req *r, const struct bw_tenant *t, json_t *a)
{
	char owner[320];
	const struct bw_group *g;
	const struct bw_principal *p;

	for (size_t i = 0; (g = bw_tenancy_group_at(r->snap, t, i)); i++) {
		snprintf(owner, sizeof(owner), "group:%s", g->name);
		if (rules_onto(a, g->rules, owner) < 0)
			return -1;
	}
	for (size_t i = 0; (p = bw_tenancy_principal_at(r->snap, t, i)); i++) {
		snprintf(owner, sizeof(owner), "user:%s", p->name);
		if (rules_onto(a, p->rules, owner) < 0)
			return -1;
	}
	return 0;
}

static int acl_list(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	struct owner o;

	if (!t)
		return -1;
	json_t *a = json_array();
	if (!a)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	int rc = 0;
	if (bw__admin_arg(r, "group") || bw__admin_arg(r, "user")) {
		rc = find_owner(r, t, &o);
		if (rc == 0 && rules_onto(a, o.rules, o.label) < 0)
			rc = bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	} else if (all_rules(r, t, a) < 0) {
		rc = bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	}
	if (rc < 0) {
		json_decref(a);
		return -1;
	}
	return bw__admin_ok(r, json_pack("{s:o}", "rules", a));
}

static json_t *group_json(const struct bw_group *g)
{
	return json_pack("{s:s, s:o}", "name", g->name, "rules", bw__admin_rules_json(g->rules));
}

static int group_create(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const char *name = bw__admin_str(r, "group");
	char err[512];

	bw__admin_target(r, NULL, name);
	if (!t)
		return -1;
	if (bw_tenancy_group(r->snap, t, name, strlen(name)))
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS, "group \"%s\" exists in tenant \"%s\"",
		                      name, t->name);
	struct bw_group g = { .tenant = t->name, .name = name, .name_len = strlen(name) };
	int rc = bw_tenancy_service_group_put(r->ctx->tenancy, &g, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	bw__admin_refresh(r);
	const struct bw_group *now = NULL;
	if ((t = bw__admin_tenant(r, "tenant")))
		now = bw_tenancy_group(r->snap, t, name, strlen(name));
	if (!now)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "group \"%s\" is not in force", name);
	return bw__admin_ok(r, group_json(now));
}

static int group_list(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	const struct bw_group *g;

	if (!t)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; a && (g = bw_tenancy_group_at(r->snap, t, i)); i++) {
		if (json_array_append_new(a, group_json(g)) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return bw__admin_ok(r, a ? json_pack("{s:o}", "groups", a) : NULL);
}

static int group_delete(struct bw__admin_req *r)
{
	const char *tenant = bw__admin_str(r, "tenant"), *name = bw__admin_str(r, "group");
	char err[512];

	bw__admin_target(r, tenant, name);
	int rc = bw_tenancy_service_group_delete(r->ctx->tenancy, tenant, name, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc, err);
	return bw__admin_ok(r, json_pack("{s:b, s:s}", "deleted", 1, "name", name));
}

#define TENANT                                                                                     \
	{                                                                                          \
		"tenant", ARG_STR, true                                                            \
	}
#define GROUP                                                                                      \
	{                                                                                          \
		"group", ARG_STR, true                                                             \
	}

const struct bw__admin_cmd bw__admin_cmds_acl[] = {
	{ "group.create", group_create, true, { TENANT, GROUP } },
	{ "group.list", group_list, false, { TENANT } },
	{ "group.delete", group_delete, true, { TENANT, GROUP } },
	{ "acl.add",
	  acl_add,
	  true,
	  { TENANT,
	    { "group", ARG_STR, false },
	    { "user", ARG_STR, false },
	    { "effect", ARG_STR, true },
	    { "action", ARG_STR, true },
	    { "filter", ARG_STR, true },
	    { "max_qos", ARG_INT, false },
	    { "no_retain", ARG_BOOL, false } } },
	{ "acl.list",
	  acl_list,
	  false,
	  { TENANT, { "group", ARG_STR, false }, { "user", ARG_STR, false } } },
	{ "acl.del",
	  acl_del,
	  true,
	  { TENANT,
	    { "group", ARG_STR, false },
	    { "user", ARG_STR, false },
	    { "n", ARG_INT, true } } },
	{ NULL },
};
