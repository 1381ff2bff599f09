/*
 * The admin audit log: one JSON line for every admin request that changes
 * something (whether it succeeded or not) and for every peer the admin
 * socket refuses. A line holds time (RFC 3339, UTC, milliseconds), actor
 * ("uid:N", or "system"), tenant, action (the command), target, result
 * ("ok" or the error code) and reason (the error's message, "" when ok):
 *
 *   {"time":"2026-11-24T17:40:00.123Z","actor":"uid:0","tenant":"acme",
 *    "action":"user.add","target":"dev1","result":"ok","reason":""}
 *
 * Lines go to the audit_log file (appended, mode 0600, one write(2) a
 * line so threads never interleave) or, without one, to the node's log at
 * info. Callers never pass a secret: no password, hash or key material.
 */
#ifndef BW_ADMIN_AUDIT_H
#define BW_ADMIN_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct bw_admin_audit;

/* An actor that is no uid (MQTT authentication failures, the node itself). */
#define BW_ADMIN_ACTOR_SYSTEM UINT32_MAX

/* One audited event. NULL strings are written as "". */
struct bw_admin_audit_entry {
	uint32_t uid; /* the peer's uid, or BW_ADMIN_ACTOR_SYSTEM */
	const char *tenant;
	const char *action; /* the command ("tenant.create"), or "connect" */
	const char *target; /* what it acted on: a name, a fingerprint, a pid */
	const char *result; /* "ok" or an error code */
	const char *reason; /* why it failed; "" when ok */
};

/*
 * Opens the audit log at path (created 0600 when missing, appended to), or
 * for the node's log when path is NULL or "". Returns 0 with *out, or
 * -errno with err[0..cap) naming the file and the reason.
 */
int bw_admin_audit_open(const char *path, struct bw_admin_audit **out, char *err, size_t cap);

/*
 * Writes one line. Any thread. A line that cannot be written goes to the
 * node's log at error instead, so it is never lost silently.
 */
void bw_admin_audit_write(struct bw_admin_audit *a, const struct bw_admin_audit_entry *e);

/* Reopens the file (after rotation, SIGHUP); the old one stays on failure. 0 or -errno. */
int bw_admin_audit_reopen(struct bw_admin_audit *a);

/* Closes the file, frees *a and NULLs it. NULL is fine. */
void bw_admin_audit_close(struct bw_admin_audit **a);

/* Formats now as "2026-11-24T17:40:00.123Z" into buf (at least 25 bytes). */
void bw_admin_audit_time(char *buf, size_t cap);

#endif
