/*
 * Topic ACLs (see acl.h): the file parser, per-client compilation into a
 * trie and the checks that walk it.
 *
 * Parsing keeps rules as written. A "user NAME" line opens a section; at the
 * end sections are sorted by name (file order kept among equals) and a
 * user's sections merged, so compile finds them by binary search.
 *
 * Compiling substitutes placeholders, sorts the client's rule filters level
 * by level and builds the trie in one pass over them: with the filters in
 * that order, each new filter shares a prefix with the previous one and
 * only its remaining levels need new nodes. Nodes live in one array, a
 * parent before its children, which lets the subtree summaries used for
 * '#' subscriptions be folded up in one backward pass. Literal children of
 * a node are a sorted run of a second array, searched by bisection; '+'
 * and '#' children are kept apart.
 */
#include "tenancy/acl.h"
#include "tenancy/acl_internal.h"

#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"
#include "tenancy/readfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ACC_PUB = 1, ACC_SUB = 2, ACC_ALL = 3 };

#define QOS_NONE 3 /* "no allow rule seen" in a subtree summary */

/* Longest topic MQTT can carry, and the most a compiled ACL's filters may add up to. */
#define TOPIC_MAX 65535u
#define POOL_MAX  (256u << 20)

struct rule {
	char *filter; /* NUL-terminated, owned */
	size_t len;
	uint8_t access; /* ACC_* */
	bool deny;
	uint8_t max_qos;   /* 0..2; 2 when not given */
	bool no_retain;    /* retain=no */
	bool placeholders; /* "%u" levels are placeholders (not in "topic" lines) */
	unsigned line;     /* where the file has it (bw_acl_each_rule()) */
};

struct ruleset {
	struct rule *rules;
	size_t n, cap;
};

struct section {
	char *name; /* owned */
	size_t len;
	size_t order;  /* file order, to keep sorting stable */
	unsigned line; /* of its first "user" line */
	struct ruleset rs;
};

struct bw_acl {
	struct ruleset anonymous, everyone;
	struct section *users; /* sorted by name and merged after parsing */
	size_t nusers, users_cap;
	size_t rules;
};

/* ---- parsing ---------------------------------------------------------------- */

static void report(char *err, size_t cap, const char *name, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void report(char *err, size_t cap, const char *name, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || cap == 0)
		return;
	n = snprintf(err, cap, "%s:%u: ", name, line);
	if (n < 0 || (size_t)n >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A token: [p, p + len). */
struct tok {
	const char *p;
	size_t len;
};

/* The next blank-separated token of [*s, end), or len 0 at the end. */
static struct tok next_tok(const char **s, const char *end)
{
	struct tok t;

	while (*s < end && blank(**s))
		(*s)++;
	t.p = *s;
	while (*s < end && !blank(**s))
		(*s)++;
	t.len = (size_t)(*s - t.p);
	return t;
}

/* The rest of the line from *s with leading blanks skipped (trailing ones are gone). */
static struct tok rest(const char *s, const char *end)
{
	while (s < end && blank(*s))
		s++;
	return (struct tok){ s, (size_t)(end - s) };
}

static bool tok_is(struct tok t, const char *word)
{
	return t.len == strlen(word) && memcmp(t.p, word, t.len) == 0;
}

/* A 0-terminated copy of t, shown in messages: at most 64 bytes, controls as '?'. */
static const char *shown(struct tok t, char *out)
{
	size_t n = t.len > 64 ? 64 : t.len;

	while (n < t.len && n > 0 && ((uint8_t)t.p[n] & 0xC0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)t.p[i] < 0x20 || t.p[i] == 0x7F ? '?' : t.p[i];
	strcpy(out + n, n < t.len ? "..." : "");
	return out;
}

static bool is_placeholder(const char *l, size_t len)
{
	return (len == 2 && (memcmp(l, "%u", 2) == 0 || memcmp(l, "%c", 2) == 0)) ||
	       (len == 3 && memcmp(l, "%cn", 3) == 0);
}

static bool contains(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++) {
		if (memcmp(s + i, needle, n) == 0)
			return true;
	}
	return false;
}

/* Checks a rule's filter; returns NULL or what is wrong with it. */
static const char *filter_problem(struct tok f, bool placeholders)
{
	const uint8_t *u = (const uint8_t *)f.p;
	struct bw_topic_share sh;

	if (f.len == 0)
		return "missing topic filter";
	if (!bw_utf8_valid(u, f.len))
		return "topic filter is not valid UTF-8";
	if (bw_topic_filter_check(u, f.len) != 0)
		return "invalid topic filter ('+' and '#' must fill a level, '#' only last)";
	if (bw_topic_share_split(u, f.len, &sh))
		return "a rule names topics, not a shared subscription: drop \"$share/GROUP/\"";
	if (!placeholders)
		return NULL;
	for (size_t s = 0; s <= f.len;) {
		size_t e = bw_topic_level_end(u, f.len, s);
		if (!is_placeholder(f.p + s, e - s) &&
		    (contains(f.p + s, e - s, "%u") || contains(f.p + s, e - s, "%c")))
			return "a placeholder (%u, %c, %cn) must be a whole level";
		s = e + 1;
	}
	return NULL;
}

static int ruleset_add(struct ruleset *rs, const struct rule *r)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 8;
		struct rule *n = realloc(rs->rules, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		rs->rules = n;
		rs->cap = cap;
	}
	rs->rules[rs->n++] = *r;
	return 0;
}

static void ruleset_free(struct ruleset *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->rules[i].filter);
	free(rs->rules);
	memset(rs, 0, sizeof(*rs));
}

/* Where rules go: nowhere yet, anonymous, everyone, or users[index]. */
enum target { T_NONE, T_ANON, T_EVERYONE, T_USER };

struct parser {
	struct bw_acl *acl;
	enum target target;
	size_t user; /* index in acl->users when target is T_USER */
	const char *name;
	unsigned line;
	char *err;
	size_t cap;
	bool rules_only; /* bw_acl_parse_rules(): no section lines */
};

#define FAIL(p, ...)                                                                               \
	do {                                                                                       \
		report((p)->err, (p)->cap, (p)->name, (p)->line, __VA_ARGS__);                     \
		return -EINVAL;                                                                    \
	} while (0)

static int open_user(struct parser *p, struct tok name)
{
	struct bw_acl *acl = p->acl;

	if (name.len == 0)
		FAIL(p, "\"user\" needs a username");
	if (!bw_utf8_valid((const uint8_t *)name.p, name.len))
		FAIL(p, "username is not valid UTF-8");
	if (acl->nusers == BW_ACL_USERS_MAX)
		FAIL(p, "more than %u user sections", BW_ACL_USERS_MAX);
	if (acl->nusers == acl->users_cap) {
		size_t cap = acl->users_cap ? acl->users_cap * 2 : 16;
		struct section *n = realloc(acl->users, cap * sizeof(*n));
		if (!n)
			goto nomem;
		acl->users = n;
		acl->users_cap = cap;
	}
	struct section *s = &acl->users[acl->nusers];
	memset(s, 0, sizeof(*s));
	s->name = strndup(name.p, name.len);
	if (!s->name)
		goto nomem;
	s->len = name.len;
	s->order = acl->nusers;
	s->line = p->line;
	p->user = acl->nusers++;
	p->target = T_USER;
	return 0;
nomem:
	report(p->err, p->cap, p->name, p->line, "out of memory");
	return -ENOMEM;
}

/* Adds a rule for filter f to the current target (mosquitto: whether a "topic" line). */
static int add_rule(struct parser *p, struct rule *r, struct tok f, bool mosquitto_topic)
{
	struct ruleset *rs;
	char show[72];
	const char *why = filter_problem(f, r->placeholders);

	if (why)
		FAIL(p, "%s: \"%s\"", why, shown(f, show));
	if (p->acl->rules == BW_ACL_RULES_MAX)
		FAIL(p, "more than %u rules", BW_ACL_RULES_MAX);
	switch (p->target) {
	case T_NONE:
		if (!mosquitto_topic)
			FAIL(p,
			     "a rule before any section: start with \"user NAME\", \"anonymous\" "
			     "or \"everyone\"");
		rs = &p->acl->anonymous; /* Mosquitto: topics before any user are anonymous */
		break;
	case T_ANON:
		rs = &p->acl->anonymous;
		break;
	case T_EVERYONE:
		if (mosquitto_topic && p->rules_only)
			FAIL(p, "a \"topic\" line in a rule list: use \"pattern\" or an allow/deny "
			        "rule");
		if (mosquitto_topic)
			FAIL(p, "a \"topic\" line in the \"everyone\" section: use \"pattern\" or "
			        "an allow/deny rule");
		rs = &p->acl->everyone;
		break;
	default:
		rs = &p->acl->users[p->user].rs;
		break;
	}
	r->filter = strndup(f.p, f.len);
	r->len = f.len;
	r->line = p->line;
	if (!r->filter || ruleset_add(rs, r) != 0) {
		free(r->filter);
		report(p->err, p->cap, p->name, p->line, "out of memory");
		return -ENOMEM;
	}
	p->acl->rules++;
	return 0;
}

/* "allow|deny ACCESS FILTER [qos=N] [retain=no|yes]" after the first word. */
static int parse_rule(struct parser *p, bool deny, const char *s, const char *end)
{
	struct rule r = { .deny = deny, .max_qos = 2, .placeholders = true };
	bool qos_set = false, retain_set = false;
	char show[72];
	struct tok acc = next_tok(&s, end), f = next_tok(&s, end);

	if (tok_is(acc, "publish"))
		r.access = ACC_PUB;
	else if (tok_is(acc, "subscribe"))
		r.access = ACC_SUB;
	else if (tok_is(acc, "all"))
		r.access = ACC_ALL;
	else
		FAIL(p, "access must be publish, subscribe or all, not \"%s\"", shown(acc, show));
	/* Options: each token shortens [s, end), so this ends. */
	for (struct tok o = next_tok(&s, end); o.len; o = next_tok(&s, end)) {
		if (deny)
			FAIL(p, "options (\"%s\") apply to allow rules only", shown(o, show));
		if (o.len == 5 && memcmp(o.p, "qos=", 4) == 0 && o.p[4] >= '0' && o.p[4] <= '2' &&
		    !qos_set) {
			r.max_qos = (uint8_t)(o.p[4] - '0');
			qos_set = true;
		} else if ((tok_is(o, "retain=no") || tok_is(o, "retain=yes")) && !retain_set) {
			if (!(r.access & ACC_PUB))
				FAIL(p, "retain= applies to publish rules");
			r.no_retain = tok_is(o, "retain=no");
			retain_set = true;
		} else {
			FAIL(p, "unknown or repeated option \"%s\" (want qos=0|1|2, retain=no|yes)",
			     shown(o, show));
		}
	}
	return add_rule(p, &r, f, false);
}

/* Mosquitto's "topic|pattern [read|write|readwrite|deny] TOPIC" after the first word. */
static int parse_mosquitto(struct parser *p, bool pattern, const char *s, const char *end)
{
	struct rule r = { .access = ACC_ALL, .max_qos = 2, .placeholders = pattern };
	const char *after = s;
	struct tok acc = next_tok(&after, end);
	struct tok topic = rest(after, end);

	if (topic.len == 0) {
		topic = acc; /* a single word is the topic, read and write */
	} else if (tok_is(acc, "read")) {
		r.access = ACC_SUB;
	} else if (tok_is(acc, "write")) {
		r.access = ACC_PUB;
	} else if (tok_is(acc, "deny")) {
		r.deny = true;
	} else if (!tok_is(acc, "readwrite")) {
		topic = rest(s, end); /* no access word: the topic holds a blank */
	}
	if (!pattern)
		return add_rule(p, &r, topic, true);
	enum target saved = p->target;
	p->target = T_EVERYONE;
	int rc = add_rule(p, &r, topic, false);
	p->target = saved;
	return rc;
}

/* One line without its "\n". Returns 0 or -errno with the error reported. */
static int parse_line(struct parser *p, const char *s, size_t len)
{
	const char *end = s + len;
	char show[72];

	if (len > 0 && end[-1] == '\r')
		end--;
	while (end > s && blank(end[-1]))
		end--;
	struct tok kw = next_tok(&s, end);
	if (kw.len == 0 || kw.p[0] == '#')
		return 0;
	if (p->rules_only &&
	    (tok_is(kw, "user") || tok_is(kw, "anonymous") || tok_is(kw, "everyone")))
		FAIL(p, "\"%s\": a rule list holds rules only, no sections", shown(kw, show));
	if (tok_is(kw, "user")) {
		return open_user(p, rest(s, end));
	} else if (tok_is(kw, "anonymous") || tok_is(kw, "everyone")) {
		if (rest(s, end).len)
			FAIL(p, "\"%s\" takes nothing after it", shown(kw, show));
		p->target = tok_is(kw, "everyone") ? T_EVERYONE : T_ANON;
		return 0;
	} else if (tok_is(kw, "allow") || tok_is(kw, "deny")) {
		return parse_rule(p, tok_is(kw, "deny"), s, end);
	} else if (tok_is(kw, "topic") || tok_is(kw, "pattern")) {
		return parse_mosquitto(p, tok_is(kw, "pattern"), s, end);
	}
	FAIL(p,
	     "unknown keyword \"%s\" (want user, anonymous, everyone, allow, deny, topic or "
	     "pattern)",
	     shown(kw, show));
}

static int section_cmp(const void *a, const void *b)
{
	const struct section *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	if (c == 0 && x->len != y->len)
		c = x->len < y->len ? -1 : 1;
	if (c == 0)
		c = x->order < y->order ? -1 : 1;
	return c;
}

/* Sorts the user sections by name and merges each user's into the first. */
static int merge_users(struct bw_acl *acl)
{
	size_t out = 0;

	if (acl->nusers == 0)
		return 0;
	qsort(acl->users, acl->nusers, sizeof(*acl->users), section_cmp);
	for (size_t i = 1; i < acl->nusers; i++) {
		struct section *keep = &acl->users[out], *s = &acl->users[i];
		if (s->len != keep->len || memcmp(s->name, keep->name, s->len) != 0) {
			if (++out != i) {
				acl->users[out] = *s;
				memset(s, 0, sizeof(*s)); /* each pointer held once */
			}
			continue;
		}
		for (size_t k = 0; k < s->rs.n; k++) {
			if (ruleset_add(&keep->rs, &s->rs.rules[k]) != 0)
				return -ENOMEM; /* rules not moved yet are freed with s */
			s->rs.rules[k].filter = NULL;
		}
		ruleset_free(&s->rs);
		free(s->name);
		s->name = NULL;
	}
	acl->nusers = out + 1; /* entries past it were moved or freed, and cleared */
	return 0;
}

void bw_acl_free(struct bw_acl **acl)
{
	if (!acl || !*acl)
		return;
	struct bw_acl *a = *acl;
	ruleset_free(&a->anonymous);
	ruleset_free(&a->everyone);
	for (size_t i = 0; i < a->nusers; i++) {
		free(a->users[i].name);
		ruleset_free(&a->users[i].rs);
	}
	free(a->users);
	free(a);
	*acl = NULL;
}

size_t bw_acl_rule_count(const struct bw_acl *acl)
{
	return acl ? acl->rules : 0;
}

/* Visits the rules of rs as bw_acl_each_rule() says; info has the owner filled in. */
static int each_in(const struct ruleset *rs, struct bw_acl_rule_info *info,
                   int (*visit)(void *arg, const struct bw_acl_rule_info *r), void *arg)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		info->filter = r->filter;
		info->len = r->len;
		info->publish = r->access & ACC_PUB;
		info->subscribe = r->access & ACC_SUB;
		info->deny = r->deny;
		info->max_qos = r->max_qos;
		info->no_retain = r->no_retain;
		info->literal = !r->placeholders;
		info->line = r->line;
		int rc = visit(arg, info);
		if (rc)
			return rc;
	}
	return 0;
}

int bw_acl_each_rule(const struct bw_acl *acl,
                     int (*visit)(void *arg, const struct bw_acl_rule_info *r), void *arg)
{
	struct bw_acl_rule_info info = { .owner = BW_ACL_OWNER_ANONYMOUS };
	int rc = each_in(&acl->anonymous, &info, visit, arg);

	info.owner = BW_ACL_OWNER_EVERYONE;
	if (rc == 0)
		rc = each_in(&acl->everyone, &info, visit, arg);
	info.owner = BW_ACL_OWNER_USER;
	for (size_t i = 0; rc == 0 && i < acl->nusers; i++) {
		info.user = acl->users[i].name;
		info.user_len = acl->users[i].len;
		info.user_line = acl->users[i].line;
		rc = each_in(&acl->users[i].rs, &info, visit, arg);
	}
	return rc;
}

/* bw_acl_parse() and bw_acl_parse_rules() (rules_only). */
static int parse(const char *text, size_t len, const char *name, struct bw_acl **out, char *err,
                 size_t cap, bool rules_only)
{
	struct parser p = { .name = name ? name : "<input>",
		            .err = err,
		            .cap = cap,
		            .rules_only = rules_only,
		            .target = rules_only ? T_EVERYONE : T_NONE };
	size_t at = 0;
	int rc = 0;

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if (len > BW_ACL_FILE_MAX) {
		report(err, cap, p.name, 0, "larger than %u bytes", BW_ACL_FILE_MAX);
		return -EFBIG;
	}
	p.acl = calloc(1, sizeof(*p.acl));
	if (!p.acl) {
		report(err, cap, p.name, 0, "out of memory");
		return -ENOMEM;
	}
	/* One line an iteration; at grows by at least one byte each time. */
	while (rc == 0 && at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		p.line++;
		if (end - at > BW_ACL_LINE_MAX) {
			report(err, cap, p.name, p.line, "line longer than %u bytes",
			       BW_ACL_LINE_MAX);
			rc = -EINVAL;
			break;
		}
		rc = parse_line(&p, text + at, end - at);
		at = end + 1;
	}
	if (rc == 0 && merge_users(p.acl) != 0) {
		report(err, cap, p.name, p.line, "out of memory");
		rc = -ENOMEM;
	}
	if (rc != 0) {
		bw_acl_free(&p.acl);
		return rc;
	}
	*out = p.acl;
	return 0;
}

int bw_acl_parse(const char *text, size_t len, const char *name, struct bw_acl **out, char *err,
                 size_t cap)
{
	return parse(text, len, name, out, err, cap, false);
}

int bw_acl_parse_rules(const char *text, size_t len, const char *name, struct bw_acl **out,
                       char *err, size_t cap)
{
	return parse(text, len, name, out, err, cap, true);
}

int bw_acl_load(const char *path, struct bw_acl **out, char *err, size_t cap)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	rc = bw__read_file(path, BW_ACL_FILE_MAX, &text, &len, err, cap);
	if (rc == 0)
		rc = bw_acl_parse(text, len, path, out, err, cap);
	free(text);
	return rc;
}

/* ---- compiling ----------------------------------------------------------------- */

struct node {
	uint32_t label, label_len; /* in pool */
	uint32_t kids, nkids;      /* literal children: kids[kids .. kids + nkids), sorted */
	uint32_t plus, hash;       /* '+' and '#' children; 0 (the root) for none */
	uint8_t allow, deny;       /* ACC_* of the rules that end here */
	uint8_t pub_qos, sub_qos;  /* lowest caps of the allow rules that end here */
	bool no_retain;            /* an allow-publish rule ending here says retain=no */
	bool sub_deny_below;       /* a subscribe deny rule ends here or below */
	uint8_t sub_qos_below;     /* lowest subscribe allow cap here or below, or QOS_NONE */
};

/* A rule of this client, its filter substituted (at off in the pool, later at f). */
struct crule {
	size_t off, len;
	const char *f;
	uint8_t access;
	bool deny;
	uint8_t max_qos;
	bool no_retain;
};

struct bw_acl_compiled {
	struct node *nodes; /* nodes[0] is the root; a parent comes before its children */
	size_t nnodes;
	uint32_t *kids;
	char *pool;          /* the substituted filters; node labels point into it */
	size_t width;        /* most nodes at one depth: the bound on a check's frontier */
	struct crule *rules; /* as compiled, sorted; for bw__acl_compiled_rule() */
	size_t nrules;
};

/* Scratch while building, parallel to nodes. */
struct tmp {
	uint32_t parent, first, last, next, depth;
};

struct builder {
	struct bw_acl_compiled *c;
	struct crule *rules;
	size_t nrules, rules_cap;
	size_t pool_len, pool_cap;
	size_t nodes_cap;
	struct tmp *tmp;
};

static int pool_add(struct builder *b, const char *s, size_t len)
{
	if (len == 0)
		return 0; /* an empty level: nothing to copy, and the pool may not exist yet */
	if (len > POOL_MAX - b->pool_len)
		return -ENOMEM;
	if (b->pool_cap - b->pool_len < len) {
		size_t cap = b->pool_cap ? b->pool_cap : 256;
		while (cap - b->pool_len < len)
			cap *= 2; /* bounded: lengths come from a bounded file and subject */
		char *p = realloc(b->c->pool, cap);
		if (!p)
			return -ENOMEM;
		b->c->pool = p;
		b->pool_cap = cap;
	}
	memcpy(b->c->pool + b->pool_len, s, len);
	b->pool_len += len;
	return 0;
}

/* True when v[0..len) can stand for one level (the first when first). */
static bool value_ok(const char *v, size_t len, bool first)
{
	if (!v || len == 0 || !bw_utf8_valid((const uint8_t *)v, len))
		return false;
	if (first && v[0] == '$')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '/' || v[i] == '+' || v[i] == '#')
			return false;
	}
	return true;
}

/*
 * Appends r's filter to the pool with placeholders filled in from who.
 * Returns 1 when added, 0 when a placeholder value is unfit (rule dropped),
 * -ENOMEM.
 */
static int substitute(struct builder *b, const struct rule *r, const struct bw_acl_subject *who,
                      size_t *off, size_t *len)
{
	size_t start = b->pool_len;
	const uint8_t *u = (const uint8_t *)r->filter;

	*off = start;
	if (!r->placeholders) {
		if (pool_add(b, r->filter, r->len) != 0)
			return -ENOMEM;
		*len = r->len;
		return 1;
	}
	for (size_t s = 0; s <= r->len;) {
		size_t e = bw_topic_level_end(u, r->len, s);
		const char *l = r->filter + s, *v = l;
		size_t n = e - s, vlen = n;
		if (is_placeholder(l, n)) {
			if (n == 3) {
				v = who->cert_cn;
				vlen = who->cert_cn_len;
			} else if (l[1] == 'u') {
				v = who->username;
				vlen = who->username_len;
			} else {
				v = who->client_id;
				vlen = who->client_id_len;
			}
			if (!value_ok(v, vlen, s == 0)) {
				b->pool_len = start;
				return 0;
			}
		}
		if ((s > 0 && pool_add(b, "/", 1) != 0) || pool_add(b, v, vlen) != 0)
			return -ENOMEM;
		if (b->pool_len - start > TOPIC_MAX) {
			b->pool_len = start; /* longer than any topic: it matches none */
			return 0;
		}
		s = e + 1;
	}
	*len = b->pool_len - start;
	return 1;
}

static int add_ruleset(struct builder *b, const struct ruleset *rs,
                       const struct bw_acl_subject *who)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		struct crule cr = { .access = r->access,
			            .deny = r->deny,
			            .max_qos = r->max_qos,
			            .no_retain = r->no_retain };
		int rc = substitute(b, r, who, &cr.off, &cr.len);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		if (b->nrules == b->rules_cap) {
			size_t cap = b->rules_cap ? b->rules_cap * 2 : 16;
			struct crule *n = realloc(b->rules, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			b->rules = n;
			b->rules_cap = cap;
		}
		b->rules[b->nrules++] = cr;
	}
	return 0;
}

/* Filters in level order: byte order with '/' below every byte, so a prefix comes first. */
static int crule_cmp(const void *x, const void *y)
{
	const struct crule *a = x, *b = y;
	size_t n = a->len < b->len ? a->len : b->len;

	for (size_t i = 0; i < n; i++) {
		int ca = a->f[i] == '/' ? -1 : (uint8_t)a->f[i];
		int cb = b->f[i] == '/' ? -1 : (uint8_t)b->f[i];
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return a->len < b->len ? -1 : a->len > b->len;
}

/* Labels in the same order (a label holds no '/'). */
static int label_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c == 0 && alen != blen)
		c = alen < blen ? -1 : 1;
	return c;
}

static int new_node(struct builder *b, uint32_t parent, size_t label, size_t len, uint32_t *out)
{
	struct bw_acl_compiled *c = b->c;

	if (c->nnodes == b->nodes_cap) {
		size_t cap = b->nodes_cap ? b->nodes_cap * 2 : 32;
		struct node *n = realloc(c->nodes, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->nodes = n;
		struct tmp *t = realloc(b->tmp, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		b->tmp = t;
		b->nodes_cap = cap;
	}
	uint32_t i = (uint32_t)c->nnodes++;
	struct node *n = &c->nodes[i];
	memset(n, 0, sizeof(*n));
	n->label = (uint32_t)label;
	n->label_len = (uint32_t)len;
	n->pub_qos = n->sub_qos = 2;
	memset(&b->tmp[i], 0, sizeof(b->tmp[i]));
	if (i == 0)
		return 0;
	struct node *p = &c->nodes[parent];
	struct tmp *pt = &b->tmp[parent];
	b->tmp[i].parent = parent;
	b->tmp[i].depth = b->tmp[parent].depth + 1;
	if (len == 1 && c->pool[label] == '+') {
		p->plus = i;
	} else if (len == 1 && c->pool[label] == '#') {
		p->hash = i;
	} else {
		/* Sorted input: children arrive in label order, so appending keeps them sorted. */
		if (pt->last)
			b->tmp[pt->last].next = i;
		else
			pt->first = i;
		pt->last = i;
		p->nkids++;
	}
	*out = i;
	return 0;
}

static void mark(struct node *n, const struct crule *r)
{
	if (r->deny) {
		n->deny |= r->access;
		return;
	}
	n->allow |= r->access;
	if ((r->access & ACC_PUB) && r->max_qos < n->pub_qos)
		n->pub_qos = r->max_qos;
	if ((r->access & ACC_SUB) && r->max_qos < n->sub_qos)
		n->sub_qos = r->max_qos;
	if (r->access & ACC_PUB)
		n->no_retain |= r->no_retain;
}

/* Lays out the literal children, measures the width and folds the subtree summaries. */
static int finish(struct builder *b, size_t max_depth)
{
	struct bw_acl_compiled *c = b->c;
	size_t total = 0, pos = 0;
	size_t *per_depth = calloc(max_depth + 1, sizeof(*per_depth));

	for (size_t i = 0; i < c->nnodes; i++)
		total += c->nodes[i].nkids;
	c->kids = malloc((total ? total : 1) * sizeof(*c->kids));
	if (!per_depth || !c->kids) {
		free(per_depth);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->nnodes; i++) {
		struct node *n = &c->nodes[i];
		n->kids = (uint32_t)pos;
		/* The sibling list has nkids entries, all created after i. */
		for (uint32_t k = b->tmp[i].first; k; k = b->tmp[k].next)
			c->kids[pos++] = k;
		n->sub_deny_below = n->deny & ACC_SUB;
		n->sub_qos_below = n->allow & ACC_SUB ? n->sub_qos : QOS_NONE;
		size_t w = ++per_depth[b->tmp[i].depth];
		if (w > c->width)
			c->width = w;
	}
	for (size_t i = c->nnodes - 1; i > 0; i--) {
		struct node *n = &c->nodes[i], *p = &c->nodes[b->tmp[i].parent];
		p->sub_deny_below |= n->sub_deny_below;
		if (n->sub_qos_below < p->sub_qos_below)
			p->sub_qos_below = n->sub_qos_below;
	}
	free(per_depth);
	return 0;
}

static int build(struct builder *b)
{
	struct bw_acl_compiled *c = b->c;
	size_t max_levels = 1, path_len = 1;
	uint32_t *path;
	int rc;

	for (size_t i = 0; i < b->nrules; i++) {
		struct crule *r = &b->rules[i];
		r->f = c->pool + r->off;
		size_t levels = bw_topic_levels((const uint8_t *)r->f, r->len);
		if (levels > max_levels)
			max_levels = levels;
	}
	if (b->nrules > 1)
		qsort(b->rules, b->nrules, sizeof(*b->rules), crule_cmp);
	path = malloc((max_levels + 1) * sizeof(*path));
	if (!path)
		return -ENOMEM;
	rc = new_node(b, 0, 0, 0, &path[0]); /* the root */
	path[0] = 0;
	for (size_t i = 0; rc == 0 && i < b->nrules; i++) {
		const struct crule *r = &b->rules[i];
		const uint8_t *u = (const uint8_t *)r->f;
		bool same = true; /* on the previous rule's path so far */
		size_t d = 0;
		for (size_t s = 0; rc == 0 && s <= r->len;
		     s = bw_topic_level_end(u, r->len, s) + 1) {
			size_t e = bw_topic_level_end(u, r->len, s);
			d++;
			if (same && d < path_len) {
				const struct node *n = &c->nodes[path[d]];
				if (label_cmp(c->pool + n->label, n->label_len, r->f + s, e - s) ==
				    0)
					continue;
			}
			same = false;
			rc = new_node(b, path[d - 1], r->off + s, e - s, &path[d]);
		}
		if (rc == 0) {
			path_len = d + 1;
			mark(&c->nodes[path[d]], r);
		}
	}
	free(path);
	return rc ? rc : finish(b, max_levels);
}

static int section_find(const void *key, const void *elem)
{
	const struct bw_acl_subject *who = key;
	const struct section *s = elem;

	return label_cmp(who->username, who->username_len, s->name, s->len);
}

struct bw_acl_compiled *bw_acl_compile(const struct bw_acl *acl, const struct bw_acl_subject *who)
{
	static const struct bw_acl_subject nobody;
	const struct ruleset *own = NULL;
	struct builder b = { 0 };
	int rc;

	if (!who)
		who = &nobody;
	b.c = calloc(1, sizeof(*b.c));
	if (!b.c)
		return NULL;
	if (!who->username) {
		own = &acl->anonymous;
	} else if (acl->nusers) {
		const struct section *s =
		        bsearch(who, acl->users, acl->nusers, sizeof(*s), section_find);
		own = s ? &s->rs : NULL;
	}
	rc = own ? add_ruleset(&b, own, who) : 0;
	if (rc == 0)
		rc = add_ruleset(&b, &acl->everyone, who);
	if (rc == 0)
		rc = build(&b);
	b.c->rules = b.rules; /* freed with it */
	b.c->nrules = b.nrules;
	free(b.tmp);
	if (rc != 0)
		bw_acl_compiled_free(&b.c);
	return b.c;
}

void bw_acl_compiled_free(struct bw_acl_compiled **c)
{
	if (!c || !*c)
		return;
	free((*c)->nodes);
	free((*c)->kids);
	free((*c)->pool);
	free((*c)->rules);
	free(*c);
	*c = NULL;
}

size_t bw_acl_compiled_rules(const struct bw_acl_compiled *c)
{
	return c ? c->nrules : 0;
}

int bw__acl_compiled_rule(const struct bw_acl_compiled *c, size_t i, struct bw__acl_rule *out)
{
	if (!c || i >= c->nrules)
		return -ENOENT;
	const struct crule *r = &c->rules[i];
	out->filter = (const uint8_t *)r->f;
	out->len = r->len;
	out->publish = r->access & ACC_PUB;
	out->subscribe = r->access & ACC_SUB;
	out->deny = r->deny;
	out->max_qos = r->max_qos;
	out->no_retain = r->no_retain;
	return 0;
}

/* ---- checks ------------------------------------------------------------------- */

/* Frontiers up to this many nodes live on the stack; wider tries allocate. */
#define FRONTIER_SMALL 64

/* Two arrays of c->width entries: the nodes at this depth and the next. */
struct frontier {
	uint32_t *cur, *next;
	size_t ncur, nnext;
	uint32_t small[2][FRONTIER_SMALL];
	uint32_t *heap;
};

static int frontier_init(struct frontier *f, const struct bw_acl_compiled *c)
{
	f->heap = NULL;
	f->cur = f->small[0];
	f->next = f->small[1];
	if (c->width > FRONTIER_SMALL) {
		f->heap = malloc(2 * c->width * sizeof(*f->heap));
		if (!f->heap)
			return -ENOMEM;
		f->cur = f->heap;
		f->next = f->heap + c->width;
	}
	f->ncur = 0;
	f->nnext = 0;
	return 0;
}

static void frontier_swap(struct frontier *f)
{
	uint32_t *t = f->cur;

	f->cur = f->next;
	f->next = t;
	f->ncur = f->nnext;
	f->nnext = 0;
}

/* The literal child of n labelled l[0..len), or 0. */
static uint32_t kid(const struct bw_acl_compiled *c, const struct node *n, const uint8_t *l,
                    size_t len)
{
	size_t lo = 0, hi = n->nkids;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct node *k = &c->nodes[c->kids[n->kids + mid]];
		int cmp = label_cmp(c->pool + k->label, k->label_len, (const char *)l, len);
		if (cmp == 0)
			return c->kids[n->kids + mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* What the rules that apply to a topic say, for one kind of access. */
struct verdict {
	bool allow, deny, no_retain;
	uint8_t qos;
};

static void hit(const struct node *n, uint8_t access, struct verdict *v)
{
	if (n->deny & access)
		v->deny = true;
	if (n->allow & access) {
		v->allow = true;
		uint8_t q = access == ACC_PUB ? n->pub_qos : n->sub_qos;
		if (q < v->qos)
			v->qos = q;
		if (access == ACC_PUB)
			v->no_retain |= n->no_retain;
	}
}

/*
 * Walks the trie along the name topic[0..len): every rule whose filter
 * matches it adds to *v. Frontier entries at one depth are distinct nodes
 * of that depth, so c->width bounds them. Returns 0 or -ENOMEM.
 */
static int match_name(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len,
                      uint8_t access, struct verdict *v)
{
	struct frontier f;
	bool dollar = len > 0 && topic[0] == '$';
	size_t s = 0;

	if (frontier_init(&f, c) != 0)
		return -ENOMEM;
	f.cur[f.ncur++] = 0;
	/* One level a pass; stops early once no rule path is left. */
	while (f.ncur > 0) {
		size_t e = bw_topic_level_end(topic, len, s);
		for (size_t i = 0; i < f.ncur; i++) {
			const struct node *n = &c->nodes[f.cur[i]];
			bool wild_ok = !(dollar && s == 0); /* the '$' rule */
			/* '#' matches this level and all below it. */
			if (n->hash && wild_ok)
				hit(&c->nodes[n->hash], access, v);
			if (n->plus && wild_ok)
				f.next[f.nnext++] = n->plus;
			uint32_t k = kid(c, n, topic + s, e - s);
			if (k)
				f.next[f.nnext++] = k;
		}
		frontier_swap(&f);
		if (e == len)
			break;
		s = e + 1;
	}
	/* The name ends at these nodes: their rules match, and "x/#" matches "x". */
	for (size_t i = 0; i < f.ncur; i++) {
		const struct node *n = &c->nodes[f.cur[i]];
		hit(n, access, v);
		if (n->hash)
			hit(&c->nodes[n->hash], access, v);
	}
	free(f.heap);
	return 0;
}

bool bw_acl_can_publish(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len,
                        uint8_t qos, bool retain)
{
	struct verdict v = { .qos = 2 };

	if (!c || bw_topic_name_check(topic, len) != 0)
		return false;
	if (match_name(c, topic, len, ACC_PUB, &v) != 0)
		return false;
	return v.allow && !v.deny && qos <= v.qos && !(retain && v.no_retain);
}

bool bw_acl_can_receive(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len)
{
	struct verdict v = { .qos = 2 };

	if (!c || bw_topic_name_check(topic, len) != 0)
		return false;
	if (match_name(c, topic, len, ACC_SUB, &v) != 0)
		return false;
	return v.allow && !v.deny;
}

/* What the subscribe rules say about a subscription filter. */
struct sub_verdict {
	bool allow_covers, deny_covers, deny_overlaps;
	uint8_t qos; /* lowest cap of the allow rules sharing a topic with the filter */
};

/* The rules ending at n share topics with the filter; covers: they match all of its topics. */
static void sub_hit(const struct node *n, bool covers, struct sub_verdict *v)
{
	if (n->allow & ACC_SUB) {
		if (n->sub_qos < v->qos)
			v->qos = n->sub_qos;
		v->allow_covers |= covers;
	}
	if (n->deny & ACC_SUB) {
		v->deny_overlaps = true;
		v->deny_covers |= covers;
	}
}

/* Every rule at or below n shares topics with the filter, none covers it. */
static void sub_hit_subtree(const struct node *n, struct sub_verdict *v)
{
	v->deny_overlaps |= n->sub_deny_below;
	if (n->sub_qos_below < v->qos)
		v->qos = n->sub_qos_below;
}

/* Frontier entries are node << 1 | covers. */
#define ENTRY(node, covers) ((uint32_t)(node) << 1 | (uint32_t)(covers))

/*
 * Walks the trie along the filter f[0..len), level by level, keeping the
 * rule paths that can share a topic with it, each flagged with whether its
 * levels so far cover the filter's: a rule's '+' or '#' covers anything, a
 * literal covers only the same literal. A '+' in the filter follows every
 * literal child (sharing, not covering), so that step costs the node's
 * fan-out; a '#' ends the walk on subtree summaries.
 */
static int match_filter(const struct bw_acl_compiled *c, const uint8_t *f, size_t len,
                        struct sub_verdict *v)
{
	struct frontier fr;
	bool ended_by_hash = false;
	size_t s = 0;

	if (frontier_init(&fr, c) != 0)
		return -ENOMEM;
	fr.cur[fr.ncur++] = ENTRY(0, true);
	while (fr.ncur > 0) {
		size_t e = bw_topic_level_end(f, len, s);
		const uint8_t *l = f + s;
		size_t n = e - s;
		bool plus = n == 1 && l[0] == '+', hash = n == 1 && l[0] == '#';
		/* The '$' rule: level-one wildcards in a rule never match "$..." topics. */
		bool wild_ok = !(s == 0 && n > 0 && l[0] == '$');
		for (size_t i = 0; i < fr.ncur; i++) {
			const struct node *nd = &c->nodes[fr.cur[i] >> 1];
			bool cov = fr.cur[i] & 1;
			if (nd->hash && wild_ok)
				sub_hit(&c->nodes[nd->hash], cov, v);
			if (hash) {
				/* The filter's topics: this node's own, and all below it. */
				sub_hit(nd, false, v);
				if (nd->plus)
					sub_hit_subtree(&c->nodes[nd->plus], v);
			} else if (nd->plus && wild_ok) {
				fr.next[fr.nnext++] = ENTRY(nd->plus, cov);
			}
			if (hash || plus) {
				for (uint32_t k = 0; k < nd->nkids; k++) {
					uint32_t kid_i = c->kids[nd->kids + k];
					const struct node *kd = &c->nodes[kid_i];
					/* A filter's first-level wildcard matches no "$..." topic.
					 */
					if (s == 0 && kd->label_len > 0 &&
					    c->pool[kd->label] == '$')
						continue;
					if (hash)
						sub_hit_subtree(kd, v);
					else
						fr.next[fr.nnext++] = ENTRY(kid_i, false);
				}
			} else {
				uint32_t k = kid(c, nd, l, n);
				if (k)
					fr.next[fr.nnext++] = ENTRY(k, cov);
			}
		}
		if (hash) {
			ended_by_hash = true;
			fr.ncur = 0;
			break;
		}
		frontier_swap(&fr);
		if (e == len)
			break;
		s = e + 1;
	}
	/* The filter's topics end at these nodes: "x/#" in a rule matches "x" too. */
	for (size_t i = 0; !ended_by_hash && i < fr.ncur; i++) {
		const struct node *nd = &c->nodes[fr.cur[i] >> 1];
		bool cov = fr.cur[i] & 1;
		sub_hit(nd, cov, v);
		if (nd->hash)
			sub_hit(&c->nodes[nd->hash], cov, v);
	}
	free(fr.heap);
	return 0;
}

int bw_acl_can_subscribe(const struct bw_acl_compiled *c, const uint8_t *filter, size_t len,
                         uint8_t *max_qos, bool *check_each)
{
	struct sub_verdict v = { .qos = 2 };
	struct bw_topic_share sh;

	*max_qos = 0;
	*check_each = false;
	if (!bw_utf8_valid(filter, len) || bw_topic_filter_check(filter, len) != 0)
		return -EINVAL;
	if (bw_topic_share_split(filter, len, &sh)) {
		filter = sh.filter;
		len = sh.filter_len;
	}
	if (!c || match_filter(c, filter, len, &v) != 0)
		return -EACCES;
	if (!v.allow_covers || v.deny_covers)
		return -EACCES;
	*max_qos = v.qos;
	*check_each = v.deny_overlaps;
	return 0;
}
