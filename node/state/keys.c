/*
 * The Redis key layout (see keys.h): building key and channel names,
 * reading a tenant or a client id back from a key, the retained change
 * note and the session takeover note.
 */
#include "node/state/keys.h"

#include "proto/mqtt/utf8.h"

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

/* ---- persistent sessions --------------------------------------------------------- */

static const char *const KINDS[] = {
	[BW_KEYS_SESSION] = "session",
	[BW_KEYS_QUEUE] = "queue",
	[BW_KEYS_INFLIGHT] = "inflight",
};

static bool client_id_ok(const uint8_t *id, size_t len)
{
	return id && len > 0 && len <= BW_KEYS_CLIENT_ID_MAX && bw_utf8_valid(id, len);
}

static bool tenant_ok(const char *tenant)
{
	return tenant && bw_tenant_name_check(tenant, strlen(tenant)) == 0;
}

int bw_keys_session(char *buf, size_t cap, const char *prefix, const char *tenant,
                    enum bw_keys_session_kind kind, const uint8_t *id, size_t len)
{
	if (bw_keys_prefix_check(prefix) || !tenant_ok(tenant) ||
	    (unsigned)kind > BW_KEYS_INFLIGHT || !client_id_ok(id, len))
		return -EINVAL;
	int n = put(buf, cap, snprintf(buf, cap, "%s:{%s}:%s:", prefix, tenant, KINDS[kind]));
	if (n < 0)
		return n;
	if (len >= cap - (size_t)n)
		return -ENAMETOOLONG;
	memcpy(buf + n, id, len);
	buf[(size_t)n + len] = '\0';
	return n + (int)len;
}

int bw_keys_session_epoch(char *buf, size_t cap, const char *prefix, const char *tenant)
{
	if (bw_keys_prefix_check(prefix) || !tenant_ok(tenant))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s:{%s}:epoch", prefix, tenant));
}

int bw_keys_session_match(char *buf, size_t cap, const char *prefix, const char *tenant)
{
	if (bw_keys_prefix_check(prefix) || !tenant_ok(tenant))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s:{%s}:session:*", prefix, tenant));
}

int bw_keys_session_client(const char *key, size_t len, const char *prefix, const char *tenant,
                           const uint8_t **id, size_t *id_len)
{
	char head[BW_KEYS_MAX];
	int n = bw_keys_session_match(head, sizeof(head), prefix, tenant);

	/* The pattern without its '*' is the part before the id. */
	if (n < 0)
		return -EINVAL;
	size_t hlen = (size_t)n - 1;
	if (len <= hlen || memcmp(key, head, hlen) ||
	    !client_id_ok((const uint8_t *)key + hlen, len - hlen))
		return -EINVAL;
	*id = (const uint8_t *)key + hlen;
	*id_len = len - hlen;
	return 0;
}

int bw_keys_sessions_channel(char *buf, size_t cap, const char *prefix)
{
	if (bw_keys_prefix_check(prefix))
		return -EINVAL;
	return put(buf, cap, snprintf(buf, cap, "%s:sessions", prefix));
}

int bw_keys_takeover_parse(const void *p, size_t len, struct bw_keys_takeover *out)
{
	const char *s = p, *end = s + len;

	if (len < BW_KEYS_NODE_LEN + 6 || s[BW_KEYS_NODE_LEN] != ' ' || !node_ok(s))
		return -EINVAL;
	const char *t = s + BW_KEYS_NODE_LEN + 1;
	const char *sp = memchr(t, ' ', (size_t)(end - t));
	if (!sp || bw_tenant_name_check(t, (size_t)(sp - t)))
		return -EINVAL;
	/* The token: decimal, 1..2^64-1, no leading zero. */
	const char *d = sp + 1;
	uint64_t token = 0;
	size_t digits = 0;
	while (d + digits < end && d[digits] >= '0' && d[digits] <= '9') {
		uint64_t v = (uint64_t)(d[digits] - '0');
		if (token > (UINT64_MAX - v) / 10)
			return -EINVAL;
		token = token * 10 + v;
		digits++;
	}
	if (digits == 0 || token == 0 || d[0] == '0' || d + digits >= end || d[digits] != ' ')
		return -EINVAL;
	const char *id = d + digits + 1;
	size_t id_len = (size_t)(end - id);
	if (id_len == 0 || id_len > BW_KEYS_CLIENT_ID_MAX)
		return -EINVAL;
	*out = (struct bw_keys_takeover){
		.node = s,
		.tenant = t,
		.tenant_len = (size_t)(sp - t),
		.token = token,
		.id = (const uint8_t *)id,
		.id_len = id_len,
	};
	return 0;
}
