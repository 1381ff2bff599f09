/*
 * The admin command dispatcher (see commands.h): request parsing, the
 * argument check against each command's table entry, error mapping,
 * responses and the audit. The commands themselves live in cmd_*.c.
 */
#include "admin/cmd_internal.h"

#include "admin/audit.h"
#include "tenancy/service.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct bw__admin_cmd *const tables[] = {
	bw__admin_cmds_node, bw__admin_cmds_tenant, bw__admin_cmds_quota,  bw__admin_cmds_principal,
	bw__admin_cmds_acl,  bw__admin_cmds_keys,   bw__admin_cmds_import, bw__admin_cmds_session,
};

static const struct bw__admin_cmd *find_cmd(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct bw__admin_cmd *c = tables[t]; c->name; c++) {
			if (!strcmp(c->name, name))
				return c;
		}
	}
	return NULL;
}

bool bw_admin_command_known(const char *cmd)
{
	return find_cmd(cmd) != NULL;
}

/* ---- outcomes ------------------------------------------------------------------ */

int bw__admin_ok(struct bw__admin_req *r, json_t *result)
{
	if (!result)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	json_decref(r->result);
	r->result = result;
	return 0;
}

/*
 * Drops a UTF-8 sequence that a cut at the end of s split: the answer is
 * JSON, which cannot carry it, and the peer would get no answer at all.
 */
static void trim_split_utf8(char *s)
{
	size_t len = strlen(s), i = len;

	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

int bw__admin_fail(struct bw__admin_req *r, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(r->message))
		trim_split_utf8(r->message);
	r->code = code;
	return -1;
}

const char *bw__admin_short(const char *s, char out[BW__ADMIN_SHORT])
{
	size_t len = strlen(s), n = len > 64 ? 64 : len;

	while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(out, s, n);
	strcpy(out + n, n < len ? "..." : "");
	return out;
}

int bw__admin_fail_errno(struct bw__admin_req *r, int rc, const char *msg)
{
	const char *code = BW_ADMIN_E_INTERNAL;

	switch (-rc) {
	case EINVAL:
		code = BW_ADMIN_E_INVALID;
		break;
	case ENOENT:
		code = BW_ADMIN_E_NOT_FOUND;
		break;
	case EEXIST:
		code = BW_ADMIN_E_EXISTS;
		break;
	case EIO:
	case ECONNREFUSED:
	case ETIMEDOUT:
		code = BW_ADMIN_E_UNAVAILABLE;
		break;
	}
	return bw__admin_fail(r, code, "%s", msg && *msg ? msg : strerror(-rc));
}

void bw__admin_target(struct bw__admin_req *r, const char *tenant, const char *target)
{
	if (tenant)
		snprintf(r->tenant, sizeof(r->tenant), "%s", tenant);
	if (target)
		snprintf(r->target, sizeof(r->target), "%s", target);
}

void bw__admin_refresh(struct bw__admin_req *r)
{
	bw_tenancy_service_release(&r->snap);
	r->snap = bw_tenancy_service_current(r->ctx->tenancy);
}

/* ---- arguments ----------------------------------------------------------------- */

json_t *bw__admin_arg(const struct bw__admin_req *r, const char *name)
{
	return json_object_get(r->args, name);
}

const char *bw__admin_str(const struct bw__admin_req *r, const char *name)
{
	return json_string_value(json_object_get(r->args, name));
}

bool bw__admin_bool(const struct bw__admin_req *r, const char *name, bool def)
{
	json_t *v = json_object_get(r->args, name);
	return v ? json_is_true(v) : def;
}

int bw__admin_strs(struct bw__admin_req *r, const char *name, const char ***out, size_t *n)
{
	json_t *a = json_object_get(r->args, name);
	size_t len = json_array_size(a);

	*out = NULL;
	*n = 0;
	if (len == 0)
		return 0;
	const char **v = calloc(len, sizeof(*v));
	if (!v)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	for (size_t i = 0; i < len; i++)
		v[i] = json_string_value(json_array_get(a, i));
	*out = v;
	*n = len;
	return 0;
}

const struct bw_tenant *bw__admin_tenant(struct bw__admin_req *r, const char *arg)
{
	const char *name = bw__admin_str(r, arg);
	const struct bw_tenant *t = name ? bw_tenancy_tenant(r->snap, name, strlen(name)) : NULL;

	bw__admin_target(r, name, NULL);
	if (!t)
		bw__admin_fail(r, BW_ADMIN_E_NOT_FOUND, "no tenant \"%s\"", name ? name : "");
	return t;
}

json_t *bw__admin_strings_json(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* ---- checking a request ---------------------------------------------------------- */

static const char *type_text(enum bw__admin_arg_type t)
{
	static const char *const text[] = {
		[ARG_STR] = "a string",
		[ARG_BOOL] = "true or false",
		[ARG_INT] = "a whole number",
		[ARG_INT_OR_NULL] = "a whole number or null",
		[ARG_STRS] = "an array of strings",
		[ARG_OBJ] = "an object",
	};
	return text[t];
}

static bool type_ok(enum bw__admin_arg_type t, json_t *v)
{
	switch (t) {
	case ARG_STR:
		return json_is_string(v);
	case ARG_BOOL:
		return json_is_boolean(v);
	case ARG_INT:
		return json_is_integer(v);
	case ARG_INT_OR_NULL:
		return json_is_integer(v) || json_is_null(v);
	case ARG_OBJ:
		return json_is_object(v);
	case ARG_STRS:
		if (!json_is_array(v))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (!json_is_string(json_array_get(v, i)))
				return false;
		}
		return true;
	}
	return false;
}

static const struct bw__admin_arg *find_arg(const struct bw__admin_cmd *c, const char *name)
{
	for (const struct bw__admin_arg *a = c->args; a->name; a++) {
		if (!strcmp(a->name, name))
			return a;
	}
	return NULL;
}

/* "name, hostnames, allow_anonymous" into buf, for messages. */
static void arg_names(const struct bw__admin_cmd *c, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (const struct bw__admin_arg *a = c->args; a->name && n < cap; a++) {
		int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", a->name);
		n += w > 0 ? (size_t)w : 0;
	}
	if (!c->args[0].name)
		snprintf(buf, cap, "none");
}

/* Every member known and of its type, every required one present; 0 or -1 (usage). */
static int check_args(struct bw__admin_req *r)
{
	const struct bw__admin_cmd *c = r->cmd;
	const char *key;
	json_t *v;
	char names[256];

	json_object_foreach(r->args, key, v)
	{
		const struct bw__admin_arg *a = find_arg(c, key);
		if (!a) {
			arg_names(c, names, sizeof(names));
			return bw__admin_fail(r, BW_ADMIN_E_USAGE,
			                      "args: unknown member \"%s\" (%s takes: %s)", key,
			                      c->name, names);
		}
		if (!type_ok(a->type, v))
			return bw__admin_fail(r, BW_ADMIN_E_USAGE, "args.%s: must be %s", key,
			                      type_text(a->type));
	}
	for (const struct bw__admin_arg *a = c->args; a->name; a++) {
		if (a->required && !json_object_get(r->args, a->name))
			return bw__admin_fail(r, BW_ADMIN_E_USAGE, "args.%s: missing (%s needs it)",
			                      a->name, c->name);
	}
	return 0;
}

/* The request's envelope: v 1, cmd known, args an object; 0 or -1 (usage). */
static int check_envelope(struct bw__admin_req *r, json_t *req)
{
	const char *key;
	json_t *v;

	if (!json_is_object(req))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "a request is one JSON object a line");
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "v") && strcmp(key, "cmd") && strcmp(key, "args"))
			return bw__admin_fail(r, BW_ADMIN_E_USAGE,
			                      "unknown member \"%s\" (a request has v, cmd, args)",
			                      key);
	}
	v = json_object_get(req, "v");
	if (!v)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "v: missing (the protocol version, 1)");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "v: this node speaks version 1 only");
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd)
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "cmd: missing or not a string");
	if (!(r->cmd = find_cmd(cmd)))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "unknown command \"%.100s\"", cmd);
	json_t *args = json_object_get(req, "args");
	if (args && !json_is_object(args))
		return bw__admin_fail(r, BW_ADMIN_E_USAGE, "args: must be an object");
	r->args = args ? json_incref(args) : json_object();
	if (!r->args)
		return bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "out of memory");
	return 0;
}

/* ---- responses and the audit ----------------------------------------------------- */

static char *dump_line(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

char *bw_admin_error_line(const char *code, const char *message)
{
	return dump_line(json_pack("{s:i, s:b, s:{s:s, s:s}}", "v", 1, "ok", 0, "error", "code",
	                           code, "message", message));
}

static char *response(struct bw__admin_req *r)
{
	if (r->code)
		return bw_admin_error_line(r->code, r->message);
	char *s = dump_line(json_pack("{s:i, s:b, s:O}", "v", 1, "ok", 1, "result", r->result));
	/* A result jansson cannot write (bad UTF-8 from the store) is an internal error. */
	return s ? s : bw_admin_error_line(BW_ADMIN_E_INTERNAL, "the result cannot be written");
}

static void audit(const struct bw__admin_req *r)
{
	if (!r->ctx->audit || !r->cmd || !r->cmd->changes)
		return;
	struct bw_admin_audit_entry e = {
		.uid = r->uid,
		.tenant = r->tenant,
		.action = r->cmd->name,
		.target = r->target,
		.result = r->code ? r->code : "ok",
		.reason = r->code ? r->message : "",
	};
	bw_admin_audit_write(r->ctx->audit, &e);
}

/* Wipes every "password" argument (jansson's own copy) before the request is freed. */
static void wipe_secrets(json_t *args)
{
	json_t *pw = json_object_get(args, "password");
	if (json_is_string(pw))
		explicit_bzero((char *)json_string_value(pw), json_string_length(pw));
}

static void run(struct bw__admin_req *r, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!req) {
		/* jansson quotes the input "near '...'": it may be a password, leave it out. */
		char *near = strstr(jerr.text, " near '");
		if (near)
			*near = '\0';
		bw__admin_fail(r, BW_ADMIN_E_USAGE, "not JSON: %s (line %d, column %d)", jerr.text,
		               jerr.line, jerr.column);
		return;
	}
	if (check_envelope(r, req) == 0 && check_args(r) == 0) {
		r->snap = bw_tenancy_service_current(r->ctx->tenancy);
		if (r->cmd->run(r) == 0 && !r->result)
			bw__admin_fail(r, BW_ADMIN_E_INTERNAL, "no result");
		bw_tenancy_service_release(&r->snap);
		const struct bw_admin_node *n = r->ctx->node;
		if (!r->code && r->cmd->changes && n && n->sync)
			n->sync(n->arg);
	}
	wipe_secrets(json_object_get(req, "args"));
	json_decref(req);
}

char *bw_admin_handle(const struct bw_admin_ctx *ctx, uint32_t uid, const char *line, size_t len)
{
	struct bw__admin_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ctx = ctx;
	r->uid = uid;
	run(r, line, len);
	audit(r);
	char *out = response(r);
	json_decref(r->result);
	json_decref(r->args);
	free(r);
	return out;
}
