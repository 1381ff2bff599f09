/*
 * bulwarkctl's command-line engine: finds the command a line names, prints
 * its help, and parses its arguments into the request's `args` as its table
 * entry (ctl_cmds.c) says. Every refusal is a usage error (exit 2) whose
 * message names the argument; files and passwords are read only once the
 * whole line has passed, so a usage error never waits on input.
 */
#include "admin/ctl_cmds.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void words(const struct bw_ctl_cmd *cmd, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", cmd->noun, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
}

static bool takes_value(enum bw_ctl_kind k)
{
	return k != BW_CTL_TRUE && k != BW_CTL_FALSE && k != BW_CTL_LOCAL;
}

static void print_synopsis(FILE *out, const struct bw_ctl_cmd *cmd)
{
	char w[64];

	words(cmd, w, sizeof(w));
	fprintf(out, "usage: bulwarkctl %s%s%s\n", w, *cmd->synopsis ? " " : "", cmd->synopsis);
}

/* The option's column in --help: "--hostname H". */
static int opt_label(const struct bw_ctl_param *p, char *buf, size_t n)
{
	return snprintf(buf, n, "%s%s%s", p->name, p->meta ? " " : "", p->meta ? p->meta : "");
}

static void print_help(FILE *out, const struct bw_ctl_cmd *cmd)
{
	char label[64];
	int w = 0;

	print_synopsis(out, cmd);
	fprintf(out, "\n%s\n", cmd->summary);
	if (cmd->help)
		fprintf(out, "\n%s", cmd->help);
	for (const struct bw_ctl_param *p = cmd->opts; p && p->name; p++) {
		int n = opt_label(p, label, sizeof(label));
		w = n > w ? n : w;
	}
	if (w > 0)
		fprintf(out, "\noptions:\n");
	for (const struct bw_ctl_param *p = cmd->opts; p && p->name; p++) {
		opt_label(p, label, sizeof(label));
		fprintf(out, "  %-*s  %s\n", w, label, p->help ? p->help : "");
	}
	fprintf(out,
	        "\nExit status: 0 done, 1 error (from the node, or cannot connect), 2 usage.\n");
}

/* Prints the subcommands of noun, one a line with its summary. */
static void print_verbs(FILE *out, const char *noun)
{
	size_t n;
	const struct bw_ctl_cmd *t = bw_ctl_cmds(&n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].noun, noun))
			fprintf(out, "  %-9s %s\n", t[i].verb ? t[i].verb : "", t[i].summary);
}

void bw_ctl_cmds_summary(FILE *out)
{
	size_t n;
	const struct bw_ctl_cmd *t = bw_ctl_cmds(&n);
	char w[64];

	fprintf(out, "commands (bulwarkctl COMMAND --help for each):\n");
	for (size_t i = 0; i < n; i++) {
		words(&t[i], w, sizeof(w));
		fprintf(out, "  %-18s %s\n", w, t[i].summary);
	}
}

int bw_ctl_usage(struct bw_ctl_call *c, const char *fmt, ...)
{
	char w[64];
	va_list ap;

	words(c->cmd, w, sizeof(w));
	fprintf(c->io->err, "bulwarkctl: %s: ", w);
	va_start(ap, fmt);
	vfprintf(c->io->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->io->err);
	print_synopsis(c->io->err, c->cmd);
	return BW_CTL_EXIT_USAGE;
}

int bw_ctl_fail(struct bw_ctl_call *c, const char *fmt, ...)
{
	va_list ap;

	fputs("bulwarkctl: ", c->io->err);
	va_start(ap, fmt);
	vfprintf(c->io->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->io->err);
	return BW_CTL_EXIT_ERROR;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

/*
 * Finds the command argv names. Returns 0 with *cmd and *used (its words),
 * 0 with *cmd NULL after printing a noun's help, or BW_CTL_EXIT_USAGE.
 */
static int find_cmd(int argc, char **argv, struct bw_ctl_io *io, const struct bw_ctl_cmd **cmd,
                    int *used)
{
	size_t n;
	const struct bw_ctl_cmd *t = bw_ctl_cmds(&n);
	bool noun = false;

	*cmd = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].noun, argv[0]))
			continue;
		noun = true;
		if (!t[i].verb || (argc > 1 && !strcmp(t[i].verb, argv[1]))) {
			*cmd = &t[i];
			*used = t[i].verb ? 2 : 1;
			return 0;
		}
	}
	if (!noun) {
		fprintf(io->err, "bulwarkctl: unknown command '%s'; bulwarkctl --help lists them\n",
		        argv[0]);
		return BW_CTL_EXIT_USAGE;
	}
	if (argc > 1 && is_help(argv[1])) {
		fprintf(io->out, "usage: bulwarkctl %s SUBCOMMAND ...\n\nsubcommands:\n", argv[0]);
		print_verbs(io->out, argv[0]);
		return 0;
	}
	if (argc > 1)
		fprintf(io->err, "bulwarkctl: %s: unknown subcommand '%s'; one of:\n", argv[0],
		        argv[1]);
	else
		fprintf(io->err, "bulwarkctl: %s: missing subcommand; one of:\n", argv[0]);
	print_verbs(io->err, argv[0]);
	return BW_CTL_EXIT_USAGE;
}

/* The object p's value goes in: args, or args[p->parent] (made on demand). */
static json_t *dest(struct bw_ctl_call *c, const struct bw_ctl_param *p)
{
	if (!p->parent)
		return c->args;
	json_t *o = json_object_get(c->args, p->parent);
	if (!o) {
		o = json_object();
		if (json_object_set_new(c->args, p->parent, o) < 0)
			return NULL;
	}
	return o;
}

/* Another option of c's command that fills p's member, if any. */
static const struct bw_ctl_param *sibling(struct bw_ctl_call *c, const struct bw_ctl_param *p)
{
	for (const struct bw_ctl_param *q = c->cmd->opts; q && q->name; q++)
		if (q != p && q->key && !strcmp(q->key, p->key) &&
		    !(q->parent ? !p->parent || strcmp(q->parent, p->parent) : !!p->parent))
			return q;
	return NULL;
}

/* Parses digits only (no sign, no spaces) up to max. */
static int parse_uint(struct bw_ctl_call *c, const struct bw_ctl_param *p, const char *s,
                      json_t **out)
{
	unsigned long long v = 0;
	const char *d = s;

	if (!*d)
		return bw_ctl_usage(c, "%s needs a number", p->name);
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return bw_ctl_usage(c, "%s: '%s' is not a number (digits only)", p->name,
			                    s);
		if (v > (ULLONG_MAX - 9) / 10) {
			v = ULLONG_MAX;
			continue;
		}
		v = v * 10 + (unsigned long long)(*d - '0');
	}
	if (v > (unsigned long long)p->max)
		return bw_ctl_usage(c, "%s: %s is out of range 0..%lld", p->name, s, p->max);
	*out = json_integer((json_int_t)v);
	return 0;
}

static int parse_choice(struct bw_ctl_call *c, const struct bw_ctl_param *p, const char *s,
                        json_t **out)
{
	char list[256] = "";
	size_t len = 0;

	for (const char *const *ch = p->choices; *ch; ch++) {
		if (!strcmp(*ch, s)) {
			*out = json_string(s);
			return 0;
		}
		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0,
		                        "%s%s", ch == p->choices ? "" : ", ", *ch);
		if (len >= sizeof(list))
			len = sizeof(list) - 1;
	}
	return bw_ctl_usage(c, "%s must be one of %s; not '%s'", p->name, list, s);
}

/* The JSON value of p given as s (NULL for options without a value). */
static int to_json(struct bw_ctl_call *c, const struct bw_ctl_param *p, const char *s, json_t **v)
{
	*v = NULL;
	if (s && !*s && !p->empty_ok)
		return bw_ctl_usage(c, "%s is empty", p->name);
	switch (p->kind) {
	case BW_CTL_UINT:
		return parse_uint(c, p, s, v);
	case BW_CTL_CHOICE:
		return parse_choice(c, p, s, v);
	case BW_CTL_TRUE:
	case BW_CTL_LOCAL:
		*v = json_true();
		return 0;
	case BW_CTL_FALSE:
		*v = json_false();
		return 0;
	default:
		*v = json_string(s);
		return *v ? 0 : bw_ctl_usage(c, "%s is not valid UTF-8", p->name);
	}
}

int bw_ctl_set(struct bw_ctl_call *c, const struct bw_ctl_param *p, const char *s)
{
	json_t *v, *o = p->kind == BW_CTL_LOCAL ? c->local : dest(c, p);
	const char *key = p->kind == BW_CTL_LOCAL ? p->name : p->key;
	int rc = to_json(c, p, s, &v);

	if (rc)
		return rc;
	if (!v || !o)
		return bw_ctl_fail(c, "out of memory");
	if (p->kind == BW_CTL_LIST) {
		json_t *a = json_object_get(o, key);
		if (!a && json_object_set_new(o, key, a = json_array()) < 0)
			a = NULL;
		return a && !json_array_append_new(a, v) ? 0 : bw_ctl_fail(c, "out of memory");
	}
	if (json_object_get(o, key)) {
		bool same = json_equal(json_object_get(o, key), v);
		const struct bw_ctl_param *q = p->kind == BW_CTL_LOCAL ? NULL : sibling(c, p);
		json_decref(v);
		if (q && !same)
			return bw_ctl_usage(c, "%s and %s exclude each other", q->name, p->name);
		return bw_ctl_usage(c, "%s given twice", p->name);
	}
	return json_object_set_new(o, key, v) ? bw_ctl_fail(c, "out of memory") : 0;
}

static const struct bw_ctl_param *find_opt(const struct bw_ctl_cmd *cmd, const char *name,
                                           size_t len)
{
	for (const struct bw_ctl_param *p = cmd->opts; p && p->name; p++)
		if (strlen(p->name) == len && !strncmp(p->name, name, len))
			return p;
	return NULL;
}

/* A password on the command line would show in ps and the shell's history. */
static bool is_password_flag(const char *arg)
{
	return !strcmp(arg, "--password") || !strncmp(arg, "--password=", 11) || !strcmp(arg, "-p");
}

/* bulwarkctl's own options (ctl_args.c), which come before the command. */
static bool is_global_opt(const char *arg, size_t len)
{
	static const char *const globals[] = { "--json", "--socket", "--timeout" };

	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
		if (strlen(globals[i]) == len && !strncmp(globals[i], arg, len))
			return true;
	return false;
}

/* Parses one option at argv[*i], taking its value from the next word if
 * it needs one and has no "=VALUE". */
static int parse_opt(struct bw_ctl_call *c, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct bw_ctl_param *p = find_opt(c->cmd, arg, len);

	if (is_password_flag(arg))
		return bw_ctl_usage(c, "a password is never taken on the command line (it would "
		                       "show in ps and the shell's history); use --password-stdin");
	if (!p && is_global_opt(arg, len))
		return bw_ctl_usage(c, "%.*s is a global option: put it before the command",
		                    (int)len, arg);
	if (!p)
		return bw_ctl_usage(c, "unknown option '%.*s'", (int)len, arg);
	if (!takes_value(p->kind))
		return eq ? bw_ctl_usage(c, "%s takes no value", p->name) : bw_ctl_set(c, p, NULL);
	if (eq)
		return bw_ctl_set(c, p, eq + 1);
	if (*i + 1 >= argc)
		return bw_ctl_usage(c, "%s needs a value (%s)", p->name, p->meta ? p->meta : "");
	return bw_ctl_set(c, p, argv[++*i]);
}

/* Parses the words after the command's. Returns 0, -1 after printing the
 * command's help, or an exit code. */
static int parse_line(struct bw_ctl_call *c, int argc, char **argv)
{
	static const struct bw_ctl_param none = { .name = NULL };
	const struct bw_ctl_param *pos = c->cmd->pos ? c->cmd->pos : &none;
	bool opts_done = false;
	int rc = 0;

	/* --help wins over whatever else the line holds, right or wrong. */
	for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
		if (is_help(argv[i]))
			return -1;
	for (int i = 0; i < argc && rc == 0; i++) {
		const char *arg = argv[i];
		if (!opts_done && !strcmp(arg, "--"))
			opts_done = true;
		else if (!opts_done && arg[0] == '-' && arg[1])
			rc = parse_opt(c, argc, argv, &i);
		else if (!pos->name)
			rc = bw_ctl_usage(c, "unexpected argument '%s'", arg);
		else
			rc = bw_ctl_set(c, pos++, arg);
	}
	if (rc == 0 && pos->name && !pos->optional)
		rc = bw_ctl_usage(c, "missing %s", pos->name);
	for (const struct bw_ctl_param *p = c->cmd->opts; rc == 0 && p && p->name; p++)
		if (p->required && !json_object_get(c->args, p->key))
			rc = bw_ctl_usage(c, "missing %s %s", p->name, p->meta ? p->meta : "");
	return rc;
}

/* Replaces each file name given (a BW_CTL_FILE argument) by its text. */
static int read_files(struct bw_ctl_call *c, const struct bw_ctl_param *p)
{
	for (; p && p->name; p++) {
		json_t *path = p->kind == BW_CTL_FILE ? json_object_get(c->args, p->key) : NULL;
		if (!path)
			continue;
		json_t *text = bw_ctl_read_file(c, json_string_value(path));
		if (!text)
			return BW_CTL_EXIT_ERROR;
		if (json_object_set_new(c->args, p->key, text) < 0)
			return bw_ctl_fail(c, "out of memory");
	}
	return 0;
}

static int build_args(struct bw_ctl_call *c, int argc, char **argv)
{
	int rc = parse_line(c, argc, argv);

	if (rc == -1) {
		print_help(c->io->out, c->cmd);
		return -1;
	}
	if (rc == 0 && c->cmd->check)
		rc = c->cmd->check(c);
	if (rc == 0)
		rc = read_files(c, c->cmd->pos);
	if (rc == 0)
		rc = read_files(c, c->cmd->opts);
	if (rc == 0 && c->cmd->finish)
		rc = c->cmd->finish(c);
	return rc;
}

/* The request {"v": 1, "cmd": ..., "args": ...}; args is left out when empty. */
static json_t *request(const struct bw_ctl_call *c)
{
	json_t *req = json_pack("{s:i, s:s}", "v", 1, "cmd", c->cmd->cmd);

	if (req && json_object_size(c->args) > 0 && json_object_set(req, "args", c->args) < 0) {
		json_decref(req);
		return NULL;
	}
	return req;
}

int bw_ctl_build(int argc, char **argv, struct bw_ctl_io *io, const struct bw_ctl_cmd **cmd,
                 json_t **req)
{
	struct bw_ctl_call c = { .io = io, .args = json_object(), .local = json_object() };
	int used = 0, rc = find_cmd(argc, argv, io, &c.cmd, &used);

	*req = NULL;
	*cmd = c.cmd;
	if (rc == 0 && c.cmd && (!c.args || !c.local))
		rc = bw_ctl_fail(&c, "out of memory");
	else if (rc == 0 && c.cmd)
		rc = build_args(&c, argc - used, argv + used);
	if (rc == 0 && c.cmd && !(*req = request(&c)))
		rc = bw_ctl_fail(&c, "out of memory");
	if (rc == -1) /* help was printed */
		rc = 0;
	json_decref(c.local);
	json_decref(c.args);
	return rc;
}
