/*
 * The subscription index of one tenant on one worker: which of the worker's
 * subscribers want a publish to a topic name. It is a trie keyed by topic
 * levels; exact levels are found through one hash table of edges, '+' and
 * '#' have dedicated children, so matching a name costs O(levels + matching
 * filters), not O(subscriptions). A "$share/{group}/{filter}" subscription
 * is stored under {filter} in a share group of that trie node and gets one
 * member a publish, round-robin. The index also keeps, per subscriber, the
 * list of its subscriptions, so a session's end removes them all without the
 * caller naming them, and a match dedupes subscribers in O(1) each by a
 * generation stamp. Interest is reported as filter events: a filter (the
 * full filter string, shared ones included) became used (0 -> 1
 * subscriptions) or unused (1 -> 0), which is all the node level needs.
 *
 * Ownership: subscriber pointers are opaque keys the index never
 * dereferences or frees; the caller removes a subscriber before freeing it.
 * The index copies filter bytes. Not thread-safe: one worker owns it.
 *
 * Bounds: at most `filters_max` distinct filters, `subs_max` subscriptions
 * (filter, subscriber pairs) and `levels_max` levels a filter. A match
 * result holds at most the cap given to bw_match_init().
 */
#ifndef BW_CORE_SUB_INDEX_H
#define BW_CORE_SUB_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_sub_index_limits {
	uint32_t filters_max; /* distinct filters, plain and shared */
	uint32_t subs_max;    /* (filter, subscriber) pairs */
	uint32_t levels_max;  /* levels of one filter ("a/b" is 2) */
};

/* Subscription options (MQTT 5.0 section 3.8.3.1); 3.1.1 uses qos only. */
struct bw_sub_opts {
	uint8_t qos; /* 0..2: the maximum QoS granted */
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling; /* 0..2; kept for the caller, not used here */
	uint32_t sub_id;         /* 1..268435455, or 0 for none */
};

struct bw_sub_index_stats {
	uint32_t filters;     /* distinct filters in use */
	uint32_t subs;        /* (filter, subscriber) pairs */
	uint32_t subscribers; /* distinct subscribers */
	uint32_t groups;      /* share groups (each also counts as a filter) */
	uint32_t nodes;       /* trie nodes, root included */
};

/* Subscription identifiers kept a delivery; more are counted and dropped. */
#define BW_MATCH_SUB_IDS 16

/* One delivery of a publish. */
struct bw_match_delivery {
	void *subscriber;
	uint8_t qos;              /* max granted QoS of the matching subscriptions */
	bool retain_as_published; /* any matching subscription has it */
	bool shared;              /* chosen member of a share group */
	uint8_t n_sub_ids;
	const void *group;   /* shared: the group, for bw_sub_index_group_filter(); else NULL */
	uint32_t sub_ids_at; /* the ids are bw_match.sub_ids[sub_ids_at ..) */
};

/*
 * The deliveries of one publish. Caller-owned and reusable: init once,
 * pass to any number of matches (each starts by emptying it), fini once.
 * Both arrays grow by doubling and only when a match needs more room, so a
 * worker that reuses one bw_match allocates nothing in the steady state.
 * Plain subscriptions give each subscriber one delivery; each matching
 * share group adds one more (MQTT allows, and clients expect, a separate
 * copy for a shared subscription that overlaps a plain one).
 */
struct bw_match {
	struct bw_match_delivery *v;
	uint32_t n, cap;
	uint32_t max;      /* hard cap on n */
	bool plain_only;   /* set by the caller: leave share groups out of matches */
	uint32_t *sub_ids; /* BW_MATCH_SUB_IDS slots a delivery that has ids */
	uint32_t ids_used, ids_cap;
	uint32_t dropped;         /* this match: deliveries lost to the cap */
	uint32_t sub_ids_dropped; /* this match: ids beyond BW_MATCH_SUB_IDS */
};

/* An empty result that will hold at most max deliveries. Allocates nothing. */
void bw_match_init(struct bw_match *m, uint32_t max);

/* Frees the arrays; m may be init'ed again. */
void bw_match_fini(struct bw_match *m);

/* The subscription identifiers of delivery d (d->n_sub_ids of them). */
static inline const uint32_t *bw_match_sub_ids(const struct bw_match *m,
                                               const struct bw_match_delivery *d)
{
	return m->sub_ids + d->sub_ids_at;
}

struct bw_sub_index;

/* A new, empty index, or NULL when out of memory. Limits are copied. */
struct bw_sub_index *bw_sub_index_new(const struct bw_sub_index_limits *limits);

/* Frees the index and everything in it; NULLs *idx. NULL is fine. */
void bw_sub_index_free(struct bw_sub_index **idx);

/*
 * Subscribes: (filter, subscriber) with opts. A filter seen before for this
 * subscriber has its options replaced. *filter_new (may be NULL) is set
 * true when the filter went from no subscription to one in this index.
 * Returns 0 when added, 1 when replaced, or
 *   -EINVAL  invalid filter (bw_topic_filter_check, or longer than an MQTT
 *            string: 65535 bytes) or options (qos or
 *            retain_handling > 2, sub_id too big, no_local on a shared
 *            subscription: MQTT-3.8.3-4);
 *   -E2BIG   more than levels_max levels;
 *   -ENOSPC  filters_max or subs_max reached (a replace never fails so);
 *   -ENOMEM.
 * On error the index is unchanged.
 */
int bw_sub_index_add(struct bw_sub_index *idx, const uint8_t *filter, size_t len, void *subscriber,
                     const struct bw_sub_opts *opts, bool *filter_new);

/*
 * Unsubscribes. *filter_gone (may be NULL) is set true when the filter has
 * no subscription left. Returns 0, or -ENOENT when there was none (an
 * invalid filter included). Empty trie nodes are freed.
 */
int bw_sub_index_remove(struct bw_sub_index *idx, const uint8_t *filter, size_t len,
                        void *subscriber, bool *filter_gone);

/*
 * Called by bw_sub_index_remove_all() for each subscription it removed that
 * left its filter unused (left == 0) or that was a share group member
 * (left: the members the group still has). The bytes are the full filter,
 * valid during the call only; the callback must not touch idx.
 */
typedef void (*bw_sub_gone_fn)(void *arg, const uint8_t *filter, size_t len, uint32_t left);

/*
 * Removes every subscription of subscriber (a session ended), in time
 * proportional to its own subscriptions. gone may be NULL. Returns how many
 * subscriptions were removed. Never allocates, never fails.
 */
uint32_t bw_sub_index_remove_all(struct bw_sub_index *idx, void *subscriber, bw_sub_gone_fn gone,
                                 void *arg);

/*
 * Fills out with the deliveries of a publish to the (valid) topic name by
 * publisher (compared with subscribers for no_local; may be NULL). Advances
 * the round-robin of every matching share group. Returns out->n, or
 * -ENOMEM when an array could not grow (out then holds a partial result and
 * the caller should treat the publish as failed). Deliveries beyond
 * out->max are counted in out->dropped, not an error.
 */
int bw_sub_index_match(struct bw_sub_index *idx, const uint8_t *topic, size_t len,
                       const void *publisher, struct bw_match *out);

/*
 * Picks the next member (round-robin) of the share group named by the full
 * filter "$share/{group}/{filter}" into out, which it empties first.
 * Returns 1, 0 when the index has no such group, or -ENOMEM.
 */
int bw_sub_index_pick(struct bw_sub_index *idx, const uint8_t *filter, size_t len,
                      struct bw_match *out);

/*
 * The full filter ("$share/{group}/{filter}") of the group of a shared
 * delivery from the last match: *len bytes, valid until the index is
 * changed or asked for another filter.
 */
const uint8_t *bw_sub_index_group_filter(struct bw_sub_index *idx, const void *group, size_t *len);

/*
 * Calls fn for each subscription of subscriber (full filter bytes, valid
 * during the call; its options), until fn returns non-zero, which is
 * returned. fn must not change idx.
 */
typedef int (*bw_sub_each_fn)(void *arg, const uint8_t *filter, size_t len,
                              const struct bw_sub_opts *opts);
int bw_sub_index_each(struct bw_sub_index *idx, void *subscriber, bw_sub_each_fn fn, void *arg);

/*
 * Subscriptions on the full filter: a share group's members for
 * "$share/{group}/{filter}", else the plain subscriptions to filter.
 */
uint32_t bw_sub_index_count(struct bw_sub_index *idx, const uint8_t *filter, size_t len);

/* Counts for metrics. */
void bw_sub_index_stats(const struct bw_sub_index *idx, struct bw_sub_index_stats *st);

#endif
