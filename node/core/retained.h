/*
 * The retained messages of one tenant: topic name -> the caller's message
 * handle. A trie keyed by topic levels (exact children through one hash
 * table of edges, and a sibling list a node for wildcard walks) gives
 * lookup by name in O(levels) and, for a new subscription, a walk that
 * visits only the part of the trie its filter can match. The '$' rule
 * holds: a filter whose first level is '+' or '#' skips topics that start
 * with '$'.
 *
 * Ownership: the index holds the caller's message handles (void *, never
 * NULL) and gives each back exactly once, through the release callback,
 * when it is replaced, cleared, or the index is freed. It copies no
 * message bytes; topic bytes it copies into trie levels. Not thread-safe.
 *
 * Bounds: at most `count_max` messages and `bytes_max` bytes (the sum of
 * the sizes the caller gives, so the caller decides what a message weighs:
 * topic, payload and properties, say); a set beyond either fails with
 * -EDQUOT ("quota exceeded", MQTT 5.0 reason 0x97). Topics deeper than
 * `levels_max` are refused (-E2BIG), which also bounds the recursion of a
 * walk.
 */
#ifndef BW_CORE_RETAINED_H
#define BW_CORE_RETAINED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_retained_limits {
	uint32_t count_max;
	uint64_t bytes_max;
	uint32_t levels_max;
};

struct bw_retained_stats {
	uint32_t count; /* retained messages */
	uint64_t bytes; /* sum of their sizes */
	uint32_t nodes; /* trie nodes, root included */
};

/* Gives a message handle back to the caller (called once a handle). */
typedef void (*bw_retained_release_fn)(void *arg, void *msg);

struct bw_retained;

/* A new, empty index, or NULL when out of memory. release may not be NULL. */
struct bw_retained *bw_retained_new(const struct bw_retained_limits *limits,
                                    bw_retained_release_fn release, void *release_arg);

/* Whether a message of size bytes on topic would fit the limits now. */
bool bw_retained_fits(struct bw_retained *r, const uint8_t *topic, size_t len, size_t size);

/* New limits: messages held stay, new ones must fit. */
void bw_retained_set_limits(struct bw_retained *r, const struct bw_retained_limits *limits);

/* Releases every message, frees the index and NULLs *r. NULL is fine. */
void bw_retained_free(struct bw_retained **r);

/* Releases every message (a deleted tenant's); the limits stay. 0 or -ENOMEM. */
int bw_retained_clear_all(struct bw_retained *r);

/*
 * Retains msg (non-NULL, weighing size bytes) for the topic name, taking
 * ownership of it on success; a message already there is released. An
 * empty payload means "clear": the caller calls bw_retained_clear()
 * instead. Returns 0 when new, 1 when it replaced one, or
 *   -EINVAL  invalid name (bw_topic_name_check) or msg NULL;
 *   -E2BIG   more than levels_max levels;
 *   -EDQUOT  count_max or bytes_max would be exceeded;
 *   -ENOMEM.
 * On error the index is unchanged and msg stays the caller's.
 */
int bw_retained_set(struct bw_retained *r, const uint8_t *topic, size_t len, void *msg,
                    size_t size);

/* Drops and releases the message of topic. Returns 0 or -ENOENT. */
int bw_retained_clear(struct bw_retained *r, const uint8_t *topic, size_t len);

/* The message of topic (still owned by the index), or NULL. */
void *bw_retained_get(const struct bw_retained *r, const uint8_t *topic, size_t len);

/*
 * Called for each match: the topic bytes are valid during the call only.
 * Returning non-zero stops the walk. It must not change r.
 */
typedef int (*bw_retained_visit_fn)(void *arg, const uint8_t *topic, size_t len, void *msg);

/*
 * Visits every retained message whose topic the plain filter matches
 * (bw_topic_match semantics, '$' rule included). Returns 0, the visitor's
 * non-zero value when it stopped the walk, or -EINVAL for an invalid or
 * shared filter (retained messages are not sent to shared subscriptions,
 * MQTT-4.8.2). Order: unspecified.
 */
int bw_retained_match(struct bw_retained *r, const uint8_t *filter, size_t len,
                      bw_retained_visit_fn visit, void *arg);

/* Visits every retained message, '$' topics included (for snapshots). */
int bw_retained_each(struct bw_retained *r, bw_retained_visit_fn visit, void *arg);

/* Counts for metrics. */
void bw_retained_stats(const struct bw_retained *r, struct bw_retained_stats *st);

#endif
