/*
 * Tenant names. A tenant's name appears in Redis keys, PostgreSQL rows,
 * metric labels, TLS SNI names and "user@tenant" logins, so it is held to
 * the narrowest rule all of them accept: an RFC 1123 DNS label in lower
 * case. Upper case is refused rather than folded, so every tenant has
 * exactly one spelling and two names compare equal only when their bytes
 * do.
 */
#ifndef BW_TENANT_H
#define BW_TENANT_H

#include <stddef.h>

/* Longest tenant name: the longest DNS label. */
#define BW_TENANT_NAME_MAX 63

/*
 * Check name[0..len) (not NUL-terminated; a NUL byte is refused like any
 * other): 1..BW_TENANT_NAME_MAX bytes of a-z, 0-9 and '-', neither first nor
 * last a '-'. Returns 0 or -EINVAL. name may be NULL when len is 0.
 */
int bw_tenant_name_check(const char *name, size_t len);

#endif
