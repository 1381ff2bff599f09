/*
 * Tenant name rule (see tenant.h). Bytes are compared as ASCII ranges, not
 * with <ctype.h>, whose answers depend on the locale.
 */
#include "tenancy/tenant.h"

#include <errno.h>
#include <stdbool.h>

static bool label_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int bw_tenant_name_check(const char *name, size_t len)
{
	if (len == 0 || len > BW_TENANT_NAME_MAX)
		return -EINVAL;
	if (name[0] == '-' || name[len - 1] == '-')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!label_byte(name[i]))
			return -EINVAL;
	}
	return 0;
}
