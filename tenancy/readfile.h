/*
 * Reading a whole configuration file (password file, ACL file) into memory,
 * with a size limit, for the tenancy parsers.
 */
#ifndef BW_TENANCY_READFILE_H
#define BW_TENANCY_READFILE_H

#include <stddef.h>

/*
 * Reads the regular file at path, at most max bytes. Returns 0 with *text
 * (malloc'd, NUL-terminated, the caller frees it) and *len; or -errno with
 * err[0..cap) saying "path: why" (-EINVAL: not a regular file, -EFBIG: larger
 * than max, -EAGAIN: it grew while read).
 */
int bw__read_file(const char *path, size_t max, char **text, size_t *len, char *err, size_t cap);

#endif
