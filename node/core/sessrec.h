/*
 * Sessions as stored records: a broker's session turned into a
 * StoredSession of proto/records.proto and back, for the snapshot
 * (node/core/snapshot.c) and the Redis session store (node/state/
 * sessions.h, driven by node/core/broker.c), so a session has one stored
 * form wherever it is kept. Records are built in an arena (msgrec.h) that
 * points into the live session; times are wall clock in records and
 * monotonic in the broker, turned with an offset (bw_msgrec_wall_offset()).
 */
#ifndef BW_CORE_SESSREC_H
#define BW_CORE_SESSREC_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core/broker.h"
#include "node/core/msgrec.h"
#include "proto/records.pb-c.h"

/*
 * Fills r (initialised here) with session si of broker b, of tenant (its
 * name, not copied): client id, expiry, subscriptions, will, the unreleased
 * incoming QoS 2 packet ids and the next packet id; with messages, also the
 * outgoing inflight deliveries and the queue. The record points into a and
 * into the session: it lives while both do. 0 or -ENOMEM.
 */
int bw_sessrec_build(struct bw_arena *a, struct bw_broker *b, const struct bw_session_info *si,
                     const char *tenant, int64_t off, bool messages, StoredSession *r);

/* A delivery of m with record r's qos, retain and subscription ids (no reference taken). */
struct bw_delivery bw_sessrec_delivery(struct bw_msg *m, const StoredMessage *r);

/*
 * Restores into state (a session of broker b, of client id `who` for the
 * log) what record r holds but its messages: its subscriptions, its
 * incoming QoS 2 packet ids, its outgoing inflight entries and queue when
 * messages (hub tenant id tenant, times through off), and the next packet
 * id. What cannot be restored is logged (prefix names the source) and
 * skipped. 0, or -errno when out of memory.
 */
int bw_sessrec_restore(struct bw_broker *b, struct bw_session *state, const StoredSession *r,
                       uint32_t tenant, int64_t off, bool messages, const char *prefix);

#endif
