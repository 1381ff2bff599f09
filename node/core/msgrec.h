/*
 * Messages as stored records: a struct bw_msg turned into a StoredMessage
 * of proto/records.proto and back, for the snapshot (node/core/snapshot.c)
 * and the Redis store (node/state/), so a message has one stored form
 * wherever it is kept. Records are built in an arena that points into the
 * live message where it can (topic, payload, correlation data) and copies
 * what protobuf-c needs NUL-terminated; the arena's owner frees it all at
 * once. Times are stored as wall-clock milliseconds and come back on the
 * monotonic clock the broker uses, through an offset taken once a batch.
 */
#ifndef BW_CORE_MSGREC_H
#define BW_CORE_MSGREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/msg.h"
#include "node/core/session.h"
#include "proto/records.pb-c.h"

/* Wall-clock minus monotonic milliseconds, now: what turns one clock into the other. */
int64_t bw_msgrec_wall_offset(void);

/* A monotonic time as wall-clock (0 stays 0: "none"). */
uint64_t bw_msgrec_to_wall(uint64_t mono, int64_t off);

/* A monotonic deadline from a wall-clock one (0 stays 0); 1 when it has passed. */
uint64_t bw_msgrec_to_mono(uint64_t wall, int64_t off);

/* Allocations freed together. Zero it to start; failed says one failed. */
struct bw_arena {
	void **v;
	size_t n, cap;
	bool failed;
};

/* size zeroed bytes the arena owns, or NULL (and failed set). */
void *bw_arena_alloc(struct bw_arena *a, size_t size);

/* A NUL-terminated copy of p[0..len) the arena owns, or NULL. */
char *bw_arena_str(struct bw_arena *a, const void *p, size_t len);

/* Frees everything the arena holds; it can be used again. */
void bw_arena_free(struct bw_arena *a);

/*
 * The record of m as delivered with d's qos, retain and subscription ids
 * (d NULL: the message itself, a retained message or a will), of tenant
 * (not copied), its expiry turned to wall-clock with off. nested: a message
 * inside a session, without a version of its own. The record points into m
 * and into a: it lives while both do. NULL when out of memory.
 */
StoredMessage *bw_msgrec_build(struct bw_arena *a, const struct bw_msg *m,
                               const struct bw_delivery *d, const char *tenant, int64_t off,
                               bool nested);

/*
 * A message from a checked record (bw_record_message_decode()), with the
 * record's qos and retain, of hub tenant id tenant, its expiry turned to
 * the monotonic clock with off. NULL with errno set.
 */
struct bw_msg *bw_msgrec_msg(const StoredMessage *r, uint32_t tenant, int64_t off);

/*
 * Encodes m as a retained message record of tenant: origin names the node
 * that accepted it (NULL: none), created_ms is its wall-clock creation
 * time (0: none). 0 with *out a malloc()ed buffer of *len bytes the caller
 * frees, or -EINVAL, -EMSGSIZE, -ENOMEM (bw_record_message_encode()).
 */
int bw_msgrec_encode(const struct bw_msg *m, const char *tenant, const char *origin,
                     uint64_t created_ms, int64_t off, uint8_t **out, size_t *len);

#endif
