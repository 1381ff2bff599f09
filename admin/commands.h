/*
 * The admin command dispatcher: one request line in, one response line
 * out, as docs/admin-protocol.md says. It parses the request (strictly:
 * "v" must be 1, members of "args" the command does not know are refused),
 * finds the command, checks its arguments' types, runs it against the
 * tenancy service and maps what went wrong to an error code (usage,
 * invalid, not_found, exists, unavailable, internal). Commands that change
 * something are audited, whatever their outcome.
 *
 * Not thread-safe against itself: the admin server calls it from its one
 * thread, so admin writes are serialized (a read-modify-write such as
 * acl.add cannot lose another admin request's change on this node).
 */
#ifndef BW_ADMIN_COMMANDS_H
#define BW_ADMIN_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/server.h"

/* What the commands act on; all borrowed. */
struct bw_admin_ctx {
	struct bw_tenancy_service *tenancy;
	const struct bw_admin_node *node; /* may be NULL */
	struct bw_admin_audit *audit;     /* may be NULL */
};

/*
 * Handles the request line[0..len) (without its '\n') of the peer with
 * uid. Returns the response line, NUL-terminated, without '\n' (malloc'd:
 * the caller frees it), or NULL when out of memory.
 */
char *bw_admin_handle(const struct bw_admin_ctx *ctx, uint32_t uid, const char *line, size_t len);

/* A response line for an error that needs no request ("denied", a line too long). */
char *bw_admin_error_line(const char *code, const char *message);

/* Whether cmd is a command the node serves. */
bool bw_admin_command_known(const char *cmd);

#endif
