/*
 * import.mosquitto: a tenant's users and rules from Mosquitto's password
 * file (mosquitto_passwd) and ACL file (acl_file), parsed by the node's own
 * readers of those files (tenancy/auth/passwd.h, tenancy/acl.h).
 *
 * Each password line becomes an enabled password principal keeping its
 * hash as it is ($7$, $6$, $argon2id$: what tenancy/auth/password.h
 * verifies; any other line is refused by the parser, naming it). ACL rules
 * become rule lists: a user's "topic" lines that user's own rules;
 * "pattern" lines the group mosquitto-patterns, which every imported user
 * joins; "topic" lines before any "user" line (Mosquitto's anonymous
 * clients) the group anonymous, with the patterns too, since Mosquitto
 * applies patterns to anonymous clients as well. read is subscribe, write
 * publish, readwrite all, deny a deny of all.
 *
 * All or nothing: both files are parsed and every record checked (a bad
 * line is refused naming the file and line; a user the tenant has is
 * refused as exists; so is either group when the tenant has it with other
 * rules) before the first write. The store takes one record a write, so a
 * store failure part way is undone by deleting what this import wrote.
 */
#include "admin/cmd_internal.h"

#include "tenancy/acl.h"
#include "tenancy/auth/passwd.h"
#include "tenancy/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERNS_GROUP  "mosquitto-patterns"
#define ANONYMOUS_GROUP "anonymous"

/* Most users one import takes: each is a store write. */
#define IMPORT_USERS_MAX 10000u

/* A growing rule list text. */
struct text {
	char *s;
	size_t len, cap;
};

static int text_add(struct text *t, const char *s, size_t n)
{
	if (t->cap - t->len <= n) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap - t->len <= n)
			cap *= 2; /* bounded: the ACL text is at most BW_ACL_FILE_MAX */
		char *p = realloc(t->s, cap);
		if (!p)
			return -ENOMEM;
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
	return 0;
}

/* The rules of one ACL user, in the order bw_acl_each_rule() gives the users. */
struct acl_user {
	const char *name; /* borrowed from the bw_acl */
	size_t len;
	struct text rules;
};

/* What the ACL file says, as rule lists. */
struct plan {
	struct bw__admin_req *r;
	const struct bw_passwd *pw;
	struct acl_user *users; /* sorted by name, as the ACL sections are */
	size_t nusers, users_cap;
	struct text patterns, anonymous;
};

static void plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->nusers; i++)
		free(p->users[i].rules.s);
	free(p->users);
	free(p->patterns.s);
	free(p->anonymous.s);
}

/* Whether f holds "%u" or "%c" anywhere. */
static bool has_placeholder(const char *f)
{
	return strstr(f, "%u") || strstr(f, "%c");
}

/* The rule line for ri, "allow subscribe a/# qos=1", onto t. 0 or -ENOMEM. */
static int rule_line(struct text *t, const struct bw_acl_rule_info *ri)
{
	char head[64];
	const char *action = ri->publish && ri->subscribe ? "all"
	                     : ri->publish                ? "publish"
	                                                  : "subscribe";
	int n = snprintf(head, sizeof(head), "%s %s ", ri->deny ? "deny" : "allow", action);
	if (text_add(t, head, (size_t)n) < 0 || text_add(t, ri->filter, ri->len) < 0)
		return -ENOMEM;
	if (!ri->deny && ri->max_qos < 2) {
		n = snprintf(head, sizeof(head), " qos=%u", ri->max_qos);
		if (text_add(t, head, (size_t)n) < 0)
			return -ENOMEM;
	}
	if (!ri->deny && ri->no_retain && text_add(t, " retain=no", 10) < 0)
		return -ENOMEM;
	return text_add(t, "\n", 1);
}

/* bw_acl_each_rule()'s visitor: refuses what a rule list cannot say, sorts the rest. */
static int plan_rule(void *arg, const struct bw_acl_rule_info *ri)
{
	struct plan *p = arg;
	struct text *t;
	char show[BW__ADMIN_SHORT];

	if (strpbrk(ri->filter, " \t"))
		return bw__admin_fail(p->r, BW_ADMIN_E_INVALID,
		                      "acl:%u: the topic holds a blank, which a rule list cannot "
		                      "hold",
		                      ri->line);
	if (ri->literal && has_placeholder(ri->filter))
		return bw__admin_fail(p->r, BW_ADMIN_E_INVALID,
		                      "acl:%u: Mosquitto takes %%u and %%c in a \"topic\" line "
		                      "literally, a rule here as the username or client id: "
		                      "write it as a \"pattern\" line, or drop it",
		                      ri->line);
	switch (ri->owner) {
	case BW_ACL_OWNER_ANONYMOUS:
		t = &p->anonymous;
		break;
	case BW_ACL_OWNER_EVERYONE:
		t = &p->patterns;
		break;
	default:
		if (!bw_passwd_lookup(p->pw, ri->user, ri->user_len))
			return bw__admin_fail(p->r, BW_ADMIN_E_INVALID,
			                      "acl:%u: user \"%s\" is not in the password file",
			                      ri->user_line, bw__admin_short(ri->user, show));
		if (p->nusers == 0 || p->users[p->nusers - 1].name != ri->user) {
			if (p->nusers == p->users_cap) {
				size_t cap = p->users_cap ? p->users_cap * 2 : 16;
				struct acl_user *u = realloc(p->users, cap * sizeof(*u));
				if (!u)
					goto nomem;
				p->users = u;
				p->users_cap = cap;
			}
			p->users[p->nusers++] =
			        (struct acl_user){ .name = ri->user, .len = ri->user_len };
		}
		t = &p->users[p->nusers - 1].rules;
		break;
	}
	if (rule_line(t, ri) < 0)
		goto nomem;
	return 0;
nomem:
	return bw__admin_fail(p->r, BW_ADMIN_E_INTERNAL, "out of memory");
}

static int user_cmp(const void *key, const void *elem)
{
	const struct acl_user *a = key, *b = elem;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->name, b->name, n);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* The rule list the ACL file gives user[0..len), or NULL (none). */
static const char *user_rules(const struct plan *p, const char *user, size_t len)
{
	struct acl_user key = { .name = user, .len = len };
	const struct acl_user *u =
	        p->nusers ? bsearch(&key, p->users, p->nusers, sizeof(*u), user_cmp) : NULL;
	return u ? u->rules.s : NULL;
}

/* A group the import puts: its record and whether the tenant has it already. */
struct import_group {
	struct bw_group g;
	bool wanted;  /* the file has rules for it */
	bool present; /* the tenant has it with these very rules: not written */
};

/*
 * Checks group ig (wanted or not); 0, or -1 (r failed: invalid, or exists
 * when the tenant has a group of that name with other rules).
 */
static int check_group(struct bw__admin_req *r, const struct bw_tenant *t, struct import_group *ig)
{
	char err[512];

	if (!ig->wanted)
		return 0;
	const struct bw_group *have = bw_tenancy_group(r->snap, t, ig->g.name, ig->g.name_len);
	if (have && !strcmp(have->rules ? have->rules : "", ig->g.rules)) {
		ig->present = true;
		return 0;
	}
	if (have)
		return bw__admin_fail(r, BW_ADMIN_E_EXISTS,
		                      "group \"%s\" exists in tenant \"%s\" with other rules "
		                      "(delete it, or import into another tenant)",
		                      ig->g.name, t->name);
	if (bw_tenancy_group_check(&ig->g, err, sizeof(err)) < 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "acl: %s", err);
	return 0;
}

/* The principal of password line i, ready to put. */
static void principal_at(const struct plan *p, const struct bw_tenant *t, size_t i,
                         const char **groups, size_t groups_n, struct bw_principal *out,
                         unsigned *line)
{
	const char *user;
	size_t len;
	const char *hash = bw_passwd_at(p->pw, i, &user, &len, line);

	*out = (struct bw_principal){
		.tenant = t->name,
		.name = user,
		.name_len = len,
		.kind = BW_PRINCIPAL_PASSWORD,
		.password_hash = hash,
		.enabled = true,
		.groups = groups,
		.groups_n = groups_n,
		.rules = user_rules(p, user, len),
	};
}

/* Every user new to t and fit to store; 0 or -1 (r failed). */
static int check_users(struct bw__admin_req *r, const struct plan *p, const struct bw_tenant *t,
                       const char **groups, size_t groups_n)
{
	struct bw_principal pr;
	char err[512], show[BW__ADMIN_SHORT];
	unsigned line;

	for (size_t i = 0; i < bw_passwd_count(p->pw); i++) {
		principal_at(p, t, i, groups, groups_n, &pr, &line);
		if (bw_tenancy_principal(r->snap, t, pr.name, pr.name_len))
			return bw__admin_fail(r, BW_ADMIN_E_EXISTS,
			                      "passwd:%u: user \"%s\" exists in tenant \"%s\" "
			                      "(nothing was imported)",
			                      line, bw__admin_short(pr.name, show), t->name);
		if (bw_tenancy_principal_check(&pr, err, sizeof(err)) < 0)
			return bw__admin_fail(r, BW_ADMIN_E_INVALID, "passwd:%u: %s", line, err);
	}
	return 0;
}

/*
 * After a failed write: deletes the first n users of p and the groups
 * made[0..nmade) that this import wrote, and says in r's message whether
 * that worked.
 */
static void undo(struct bw__admin_req *r, const struct plan *p, const struct bw_tenant *t, size_t n,
                 const struct bw_group *const *made, size_t nmade)
{
	char err[512];
	const char *user;
	size_t len;
	unsigned line;
	bool bad = false;

	for (size_t i = n; i-- > 0;) {
		bw_passwd_at(p->pw, i, &user, &len, &line);
		bad |= bw_tenancy_service_principal_delete(r->ctx->tenancy, t->name, user, err,
		                                           sizeof(err)) < 0;
	}
	for (size_t i = nmade; i-- > 0;)
		bad |= bw_tenancy_service_group_delete(r->ctx->tenancy, t->name, made[i]->name, err,
		                                       sizeof(err)) < 0;
	size_t at = strlen(r->message);
	snprintf(r->message + at, sizeof(r->message) - at, "%s",
	         bad ? " (undoing the import failed too: check the tenant's users and groups)"
	             : " (what this import had written is deleted again)");
}

/* Writes the groups that are wanted and new, then every user. 0 or -1 (r failed, undone). */
static int write_all(struct bw__admin_req *r, const struct plan *p, const struct bw_tenant *t,
                     const struct import_group *gs, size_t ngs, const char **groups,
                     size_t groups_n)
{
	const struct bw_group *made[2];
	size_t nmade = 0;
	struct bw_principal pr;
	char err[512];
	unsigned line;
	int rc;

	for (size_t i = 0; i < ngs && nmade < 2; i++) {
		if (!gs[i].wanted || gs[i].present)
			continue;
		rc = bw_tenancy_service_group_put(r->ctx->tenancy, &gs[i].g, err, sizeof(err));
		if (rc < 0) {
			bw__admin_fail_errno(r, rc, err);
			undo(r, p, t, 0, made, nmade);
			return -1;
		}
		made[nmade++] = &gs[i].g;
	}
	for (size_t i = 0; i < bw_passwd_count(p->pw); i++) {
		principal_at(p, t, i, groups, groups_n, &pr, &line);
		rc = bw_tenancy_service_principal_put(r->ctx->tenancy, &pr, err, sizeof(err));
		if (rc < 0) {
			bw__admin_fail_errno(r, rc, err);
			undo(r, p, t, i, made, nmade);
			return -1;
		}
	}
	return 0;
}

/* Parses both files into *pw, *acl and p; 0 or -1 (r failed: invalid, naming the line). */
static int parse_files(struct bw__admin_req *r, struct bw_passwd **pw, struct bw_acl **acl,
                       struct plan *p)
{
	const char *passwd = bw__admin_str(r, "passwd"), *acl_text = bw__admin_str(r, "acl");
	char err[512];
	int rc;

	rc = bw_passwd_parse(passwd, strlen(passwd), "passwd", pw, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc == -ENOMEM ? rc : -EINVAL, err);
	if (bw_passwd_count(*pw) == 0)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID, "passwd: no user:hash line");
	if (bw_passwd_count(*pw) > IMPORT_USERS_MAX)
		return bw__admin_fail(r, BW_ADMIN_E_INVALID,
		                      "passwd: %zu users; an import takes at most %u",
		                      bw_passwd_count(*pw), IMPORT_USERS_MAX);
	p->pw = *pw;
	if (!acl_text)
		return 0;
	rc = bw_acl_parse(acl_text, strlen(acl_text), "acl", acl, err, sizeof(err));
	if (rc < 0)
		return bw__admin_fail_errno(r, rc == -ENOMEM ? rc : -EINVAL, err);
	return bw_acl_each_rule(*acl, plan_rule, p) ? -1 : 0;
}

static int import_mosquitto(struct bw__admin_req *r)
{
	const struct bw_tenant *t = bw__admin_tenant(r, "tenant");
	struct bw_passwd *pw = NULL;
	struct bw_acl *acl = NULL;
	struct plan p = { .r = r };
	int rc = -1;

	if (!t)
		return -1;
	bw__admin_target(r, NULL, t->name);
	if (parse_files(r, &pw, &acl, &p) < 0)
		goto out;
	/* Mosquitto applies patterns to anonymous clients too (those with %u match none). */
	if (p.anonymous.len && p.patterns.len &&
	    text_add(&p.anonymous, p.patterns.s, p.patterns.len) < 0) {
		bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
		goto out;
	}
	struct import_group gs[2] = {
		{ .g = { .tenant = t->name,
		         .name = PATTERNS_GROUP,
		         .name_len = strlen(PATTERNS_GROUP),
		         .rules = p.patterns.s },
		  .wanted = p.patterns.len > 0 },
		{ .g = { .tenant = t->name,
		         .name = ANONYMOUS_GROUP,
		         .name_len = strlen(ANONYMOUS_GROUP),
		         .rules = p.anonymous.s },
		  .wanted = p.anonymous.len > 0 },
	};
	const char *groups[] = { PATTERNS_GROUP };
	size_t groups_n = gs[0].wanted ? 1 : 0;
	if (check_group(r, t, &gs[0]) < 0 || check_group(r, t, &gs[1]) < 0 ||
	    check_users(r, &p, t, groups, groups_n) < 0 ||
	    write_all(r, &p, t, gs, 2, groups, groups_n) < 0)
		goto out;
	rc = bw__admin_ok(r, json_pack("{s:I, s:I}", "users", (json_int_t)bw_passwd_count(pw),
	                               "rules", (json_int_t)bw_acl_rule_count(acl)));
out:
	plan_free(&p);
	bw_acl_free(&acl);
	bw_passwd_free(&pw);
	return rc;
}

const struct bw__admin_cmd bw__admin_cmds_import[] = {
	{ "import.mosquitto",
	  import_mosquitto,
	  true,
	  { { "tenant", ARG_STR, true }, { "passwd", ARG_STR, true }, { "acl", ARG_STR, false } } },
	{ NULL },
};
