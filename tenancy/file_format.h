/*
 * The embedded store's file, tenancy.json (docs/tenancy.md shows one): a
 * JSON object {"format": "bulwark-tenancy", "version": 1, "next_tenant_id":
 * N, "tenants": [...]}, each tenant an object with its fields, its
 * "groups" and its "principals". Parsing is strict: unknown members,
 * duplicate members, wrong types and every invalid field are errors that
 * name the file and where (line and column for JSON syntax, a path such as
 * tenants[2].principals[0].password_hash for content).
 */
#ifndef BW_TENANCY_FILE_FORMAT_H
#define BW_TENANCY_FILE_FORMAT_H

#include <stddef.h>

#include "tenancy/model.h"

/* Largest file read. */
#define BW_TENANCY_FILE_MAX (512u << 20)

/* The format version written and understood. */
#define BW_TENANCY_FILE_VERSION 1

/*
 * Parses text[0..len) (need not be NUL-terminated); name is the file name
 * for messages. Returns 0 with *out a new snapshot (version 0, one
 * reference), or -EINVAL (bad content), -ENOENT (a principal names a group
 * its tenant lacks), -EEXIST (a hostname, CA or id two tenants claim),
 * -EFBIG, -ENOMEM with *out NULL and err[0..cap) one line
 * "name: where: what".
 */
int bw__tenancy_json_parse(const char *text, size_t len, const char *name, struct bw_tenancy **out,
                           char *err, size_t cap);

/*
 * Writes s as the file's text: *out (malloc'd, NUL-terminated, the caller
 * frees it) and *len. Returns 0 or -ENOMEM.
 */
int bw__tenancy_json_dump(const struct bw_tenancy *s, char **out, size_t *len);

#endif
