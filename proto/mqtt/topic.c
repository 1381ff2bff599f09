/*
 * Topic name and filter rules and the matcher (see topic.h). Everything
 * here walks the bytes once; nothing allocates.
 */
#include "proto/mqtt/topic.h"

#include "proto/mqtt/mqtt_types.h"

#include <string.h>

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN 7

int bw_topic_name_check(const uint8_t *name, size_t len)
{
	if (len == 0)
		return -BW_RC_TOPIC_NAME_INVALID;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '+' || name[i] == '#')
			return -BW_RC_TOPIC_NAME_INVALID;
	}
	return 0;
}

/* A plain (non-shared) filter: wildcards only as whole levels, '#' last. */
static int plain_filter_check(const uint8_t *f, size_t len)
{
	if (len == 0)
		return -BW_RC_TOPIC_FILTER_INVALID;
	for (size_t i = 0; i < len; i++) {
		if (f[i] != '+' && f[i] != '#')
			continue;
		bool starts_level = i == 0 || f[i - 1] == '/';
		bool ends_level = i + 1 == len || f[i + 1] == '/';
		if (!starts_level || !ends_level)
			return -BW_RC_TOPIC_FILTER_INVALID;
		if (f[i] == '#' && i + 1 != len)
			return -BW_RC_TOPIC_FILTER_INVALID;
	}
	return 0;
}

bool bw_topic_share_split(const uint8_t *filter, size_t len, struct bw_topic_share *share)
{
	if (len < SHARE_PREFIX_LEN || memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return false;
	const uint8_t *group = filter + SHARE_PREFIX_LEN;
	size_t rest = len - SHARE_PREFIX_LEN;
	const uint8_t *slash = memchr(group, '/', rest);
	share->group = group;
	share->group_len = slash ? (size_t)(slash - group) : rest;
	share->filter = slash ? slash + 1 : group + rest;
	share->filter_len = slash ? rest - share->group_len - 1 : 0;
	return true;
}

int bw_topic_filter_check(const uint8_t *filter, size_t len)
{
	struct bw_topic_share sh;

	if (!bw_topic_share_split(filter, len, &sh))
		return plain_filter_check(filter, len);
	if (sh.group_len == 0 || sh.filter_len == 0)
		return -BW_RC_TOPIC_FILTER_INVALID;
	for (size_t i = 0; i < sh.group_len; i++) {
		if (sh.group[i] == '+' || sh.group[i] == '#')
			return -BW_RC_TOPIC_FILTER_INVALID;
	}
	return plain_filter_check(sh.filter, sh.filter_len);
}

size_t bw_topic_levels(const uint8_t *topic, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += topic[i] == '/';
	return n;
}

bool bw_topic_has_wildcard(const uint8_t *filter, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (filter[i] == '+' || filter[i] == '#')
			return true;
	}
	return false;
}

bool bw_topic_match(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen)
{
	size_t fi = 0, ni = 0;

	/* [MQTT-4.7.2-1]: wildcards at level one never match '$' topics. */
	if (nlen > 0 && n[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
		return false;

	for (;;) {
		/* Here fi and ni each stand at the start of a level. */
		if (fi < flen && f[fi] == '#')
			return true; /* matches this level and all below, or none */
		if (fi < flen && f[fi] == '+') {
			while (ni < nlen && n[ni] != '/')
				ni++;
			fi++;
		} else {
			while (fi < flen && ni < nlen && f[fi] != '/' && f[fi] == n[ni]) {
				fi++;
				ni++;
			}
			if ((fi < flen && f[fi] != '/') || (ni < nlen && n[ni] != '/'))
				return false;
		}
		/* Both at the end of a level. */
		bool fend = fi == flen, nend = ni == nlen;
		if (fend && nend)
			return true;
		if (nend) {
			/* "a/#" also matches "a": the rest of f must be "/#". */
			return flen - fi == 2 && f[fi] == '/' && f[fi + 1] == '#';
		}
		if (fend)
			return false;
		fi++; /* skip the '/' on both */
		ni++;
	}
}
