/*
 * Internals the admin command files share (admin/commands.c, cmd_*.c):
 * the request a handler works on, the command tables, the argument
 * helpers and the JSON builders one file makes and another uses. Nothing
 * outside admin/ includes this.
 *
 * A handler gets its request with the arguments already checked against
 * its table entry (present when required, of the right JSON type, no
 * unknown member) and a snapshot reference (r->snap). It returns
 * bw__admin_ok(r, result) or one of the bw__admin_fail*() calls, and sets
 * r->tenant and r->target (bw__admin_target) for the audit.
 */
#ifndef BW_ADMIN_CMD_INTERNAL_H
#define BW_ADMIN_CMD_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "admin/commands.h"
#include "tenancy/model.h"

/* Error codes of the protocol. */
#define BW_ADMIN_E_USAGE       "usage"
#define BW_ADMIN_E_INVALID     "invalid"
#define BW_ADMIN_E_NOT_FOUND   "not_found"
#define BW_ADMIN_E_EXISTS      "exists"
#define BW_ADMIN_E_UNAVAILABLE "unavailable"
#define BW_ADMIN_E_INTERNAL    "internal"
#define BW_ADMIN_E_DENIED      "denied"

enum bw__admin_arg_type {
	ARG_STR,         /* a string */
	ARG_BOOL,        /* true or false */
	ARG_INT,         /* a whole number */
	ARG_INT_OR_NULL, /* a whole number or null */
	ARG_STRS,        /* an array of strings */
	ARG_OBJ,         /* an object */
};

struct bw__admin_arg {
	const char *name;
	enum bw__admin_arg_type type;
	bool required;
};

#define BW__ADMIN_ARGS_MAX 10

struct bw__admin_req;

struct bw__admin_cmd {
	const char *name; /* NULL ends a table */
	int (*run)(struct bw__admin_req *r);
	bool changes;                                  /* audited */
	struct bw__admin_arg args[BW__ADMIN_ARGS_MAX]; /* ends at a NULL name */
};

struct bw__admin_req {
	const struct bw_admin_ctx *ctx;
	const struct bw__admin_cmd *cmd;
	uint32_t uid;
	json_t *args;            /* an object; ours */
	struct bw_tenancy *snap; /* the snapshot in force, a reference of ours */
	json_t *result;          /* on success; ours */
	const char *code;        /* NULL: success */
	char message[768];
	char tenant[72];  /* for the audit */
	char target[320]; /* for the audit */
};

/* The command tables, one a file. */
extern const struct bw__admin_cmd bw__admin_cmds_node[];
extern const struct bw__admin_cmd bw__admin_cmds_tenant[];
extern const struct bw__admin_cmd bw__admin_cmds_quota[];
extern const struct bw__admin_cmd bw__admin_cmds_principal[];
extern const struct bw__admin_cmd bw__admin_cmds_acl[];
extern const struct bw__admin_cmd bw__admin_cmds_keys[];
extern const struct bw__admin_cmd bw__admin_cmds_import[];
extern const struct bw__admin_cmd bw__admin_cmds_session[];

/* ---- outcomes (commands.c) --------------------------------------------------- */

/* Success with result (stolen; NULL: out of memory, an internal error). Returns 0. */
int bw__admin_ok(struct bw__admin_req *r, json_t *result);

/*
 * Failure with code and a message (cut to fit r->message, never inside a
 * UTF-8 sequence). Returns -1.
 */
int bw__admin_fail(struct bw__admin_req *r, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Room for bw__admin_short(): 64 bytes, "..." and a NUL. */
#define BW__ADMIN_SHORT 68

/*
 * s for a message: at most 64 bytes cut at a character boundary, "..."
 * after a cut, into out. Returns out.
 */
const char *bw__admin_short(const char *s, char out[BW__ADMIN_SHORT]);

/*
 * Failure for a tenancy service -errno with its message: EINVAL invalid,
 * ENOENT not_found, EEXIST exists, EIO/ECONNREFUSED/ETIMEDOUT unavailable,
 * else internal. Returns -1.
 */
int bw__admin_fail_errno(struct bw__admin_req *r, int rc, const char *msg);

/* Says what the request acts on, for the audit. */
void bw__admin_target(struct bw__admin_req *r, const char *tenant, const char *target);

/* Takes the snapshot in force again (after a write). */
void bw__admin_refresh(struct bw__admin_req *r);

/* ---- arguments (commands.c) ---------------------------------------------------- */

/* The string argument, or NULL when absent. */
const char *bw__admin_str(const struct bw__admin_req *r, const char *name);

/* The boolean argument, or def when absent. */
bool bw__admin_bool(const struct bw__admin_req *r, const char *name, bool def);

/* The argument's JSON value (borrowed), or NULL when absent. */
json_t *bw__admin_arg(const struct bw__admin_req *r, const char *name);

/*
 * The strings of a checked array argument as a vector borrowed from the
 * request (*out: malloc'd, the caller frees it; NULL with n 0 when empty
 * or absent). Returns 0, or -1 (out of memory: r fails).
 */
int bw__admin_strs(struct bw__admin_req *r, const char *name, const char ***out, size_t *n);

/*
 * The tenant named by argument `arg` in the snapshot, and the audit's
 * tenant; NULL (r fails: not_found) when there is none.
 */
const struct bw_tenant *bw__admin_tenant(struct bw__admin_req *r, const char *arg);

/* A JSON array of strings v[0..n) (new), or NULL when out of memory. */
json_t *bw__admin_strings_json(const char *const *v, size_t n);

/* ---- builders other files use ---------------------------------------------------- */

/* cmd_quota.c: the quotas as an object, max_qos null when the node's default. */
json_t *bw__admin_quotas_json(const struct bw_quotas *q);

/*
 * cmd_quota.c: applies the members of obj (quota keys) to *q, each range
 * checked; where names obj in messages ("args.quotas"). 0 or -1 (r fails).
 */
int bw__admin_quotas_parse(struct bw__admin_req *r, json_t *obj, const char *where,
                           struct bw_quotas *q);

/* cmd_keys.c: the CA bundle's certificates (fingerprint, subject, not_after), or NULL. */
json_t *bw__admin_cas_json(const char *pem);

/* cmd_keys.c: issuers, audiences and keys (kid, alg) of the tenant, or NULL. */
json_t *bw__admin_jwt_json(const struct bw_tenant *t);

/* cmd_acl.c: the rules of a rule list as [{"n":1,"text":...}], or NULL. */
json_t *bw__admin_rules_json(const char *rules);

/* cmd_principal.c: name, kind, enabled, groups, rules of a principal, or NULL. */
json_t *bw__admin_user_json(const struct bw_principal *p);

/* cmd_tenant.c: the tenant as tenant.show says, or NULL. */
json_t *bw__admin_tenant_json(const struct bw_tenancy *snap, const struct bw_tenant *t);

#endif
