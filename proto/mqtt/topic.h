/*
 * Topic names and filters: validation per the MQTT spec and the matcher
 * every subscription index uses. Names and filters are UTF-8 already checked
 * by the codec; these functions judge structure only.
 *
 * Rules: a name is at least one byte and holds no '+' or '#'. In a filter,
 * '+' fills a whole level and '#' is the whole last level. A filter
 * "$share/{group}/{filter}" is a shared subscription: the group is at least
 * one byte without '/', '+' or '#', and the filter after it is a valid plain
 * filter, taken literally ("$share/g/$share/h/a" shares "$share/h/a"). A
 * filter whose first level is '+' or '#' does not match a name that starts
 * with '$'.
 */
#ifndef BW_MQTT_TOPIC_H
#define BW_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Returns 0, or -BW_RC_TOPIC_NAME_INVALID. */
int bw_topic_name_check(const uint8_t *name, size_t len);

/* Returns 0, or -BW_RC_TOPIC_FILTER_INVALID (shared filters included). */
int bw_topic_filter_check(const uint8_t *filter, size_t len);

/* The parts of a "$share/{group}/{filter}" filter. */
struct bw_topic_share {
	const uint8_t *group;
	size_t group_len;
	const uint8_t *filter;
	size_t filter_len;
};

/*
 * True when filter[0..len) is a shared subscription; *share gets its parts.
 * Call after bw_topic_filter_check() accepted the filter.
 */
bool bw_topic_share_split(const uint8_t *filter, size_t len, struct bw_topic_share *share);

/*
 * End of the level that starts at topic[s]: the index of the next '/' or
 * len. For walking a topic or filter level by level.
 */
static inline size_t bw_topic_level_end(const uint8_t *topic, size_t len, size_t s)
{
	const uint8_t *slash = s < len ? memchr(topic + s, '/', len - s) : NULL;
	return slash ? (size_t)(slash - topic) : len;
}

/* True when the name is "$SYS" or under "$SYS/": the broker's own topics. */
static inline bool bw_topic_is_sys(const uint8_t *name, size_t len)
{
	return len >= 4 && memcmp(name, "$SYS", 4) == 0 && (len == 4 || name[4] == '/');
}

/* Number of levels ("a/b" is 2, "/" is 2, "a" is 1). len must be > 0. */
size_t bw_topic_levels(const uint8_t *topic, size_t len);

/* True when the filter holds '+' or '#'. */
bool bw_topic_has_wildcard(const uint8_t *filter, size_t len);

/*
 * True when the (valid, plain: not "$share/...") filter matches the (valid) name,
 * including the '$' rule above.
 */
bool bw_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);

#endif
