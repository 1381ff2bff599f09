/*
 * The Redis key layout (see keys.h): building key and channel names,
 * reading a tenant back from a key, and the change note.
 */
#include "node/state/keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_MAX 65535u

static const char RETAINED[] = ":retained";

static bool prefix_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

int bw_keys_prefix_check(const char *prefix)
{
	size_t len = prefix ? strlen(prefix) : 0;

	if (len == 0 || len > BW_KEYS_PREFIX_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!prefix_char(prefix[i]))
			return -EINVAL;
	}
	return 0;
}

static bool node_ok(const char *node)
{
	for (size_t i = 0; i < BW_KEYS_NODE_LEN; i++) {
		char c = node[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/* snprintf() that says -ENAMETOOLONG instead of cutting. */
static int put(char *buf, size_t cap, int n)
{
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENAMETOOLONG;
	return n;
}

int bw_keys_retained(char *buf, size_t cap, const char *prefix, const char *tenant)
{
	if (bw_keys_prefix_check(prefix) || !tenant || bw_tenant_name_check(tenant, strlen(tenant)))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s:{%s}%s", prefix, tenant, RETAINED));
}

int bw_keys_retained_match(char *buf, size_t cap, const char *prefix)
{
	if (bw_keys_prefix_check(prefix))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s:{*}%s", prefix, RETAINED));
}

int bw_keys_retained_tenant(const char *key, size_t len, const char *prefix, char *tenant,
                            size_t cap)
{
	size_t plen = strlen(prefix), slen = sizeof(RETAINED) - 1;

	/* PREFIX ":{" TENANT "}" ":retained", the tenant at least one byte. */
	if (len < plen + 2 + 1 + 1 + slen || memcmp(key, prefix, plen) || key[plen] != ':' ||
	    key[plen + 1] != '{' || key[len - slen - 1] != '}' ||
	    memcmp(key + len - slen, RETAINED, slen))
		return -EINVAL;
	const char *t = key + plen + 2;
	size_t tlen = len - slen - 1 - (plen + 2);
	if (bw_tenant_name_check(t, tlen) || tlen >= cap)
		return -EINVAL;
	memcpy(tenant, t, tlen);
	tenant[tlen] = '\0';
	return 0;
}

int bw_keys_retained_channel(char *buf, size_t cap, const char *prefix)
{
	if (bw_keys_prefix_check(prefix))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s%s", prefix, RETAINED));
}

char *bw_keys_note(const char *node, const char *tenant, const uint8_t *topic, size_t len,
                   size_t *out_len)
{
	size_t tlen = tenant ? strlen(tenant) : 0;

	if (!node || strlen(node) != BW_KEYS_NODE_LEN || !node_ok(node) ||
	    bw_tenant_name_check(tenant, tlen) || len == 0 || len > TOPIC_MAX) {
		errno = EINVAL;
		return NULL;
	}
	size_t n = BW_KEYS_NODE_LEN + 1 + tlen + 1 + len;
	char *p = malloc(n);
	if (!p)
		return NULL;
	memcpy(p, node, BW_KEYS_NODE_LEN);
	p[BW_KEYS_NODE_LEN] = ' ';
	memcpy(p + BW_KEYS_NODE_LEN + 1, tenant, tlen);
	p[BW_KEYS_NODE_LEN + 1 + tlen] = ' ';
	memcpy(p + BW_KEYS_NODE_LEN + 2 + tlen, topic, len);
	*out_len = n;
	return p;
}

int bw_keys_note_parse(const void *p, size_t len, struct bw_keys_note *out)
{
	const char *s = p;

	if (len < BW_KEYS_NODE_LEN + 4 || s[BW_KEYS_NODE_LEN] != ' ' || !node_ok(s))
		return -EINVAL;
	const char *t = s + BW_KEYS_NODE_LEN + 1;
	const char *sp = memchr(t, ' ', len - BW_KEYS_NODE_LEN - 1);
	if (!sp || bw_tenant_name_check(t, (size_t)(sp - t)))
		return -EINVAL;
	size_t rest = len - (size_t)(sp + 1 - s);
	if (rest == 0 || rest > TOPIC_MAX)
		return -EINVAL;
	*out = (struct bw_keys_note){
		.node = s,
		.tenant = t,
		.tenant_len = (size_t)(sp - t),
		.topic = (const uint8_t *)sp + 1,
		.topic_len = rest,
	};
	return 0;
}
