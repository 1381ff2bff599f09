/*
 * The embedded state store: a node's persistent sessions (subscriptions,
 * will, inflight exchanges in both directions with their exact packet ids,
 * offline queue) and retained messages, saved to one file in state_dir
 * when the node stops and loaded when it starts. Records are the protobuf
 * schemas of proto/records.proto (StoredSession, StoredMessage), checked
 * by cluster/store/record.c on the way in, so a snapshot is read exactly
 * like a Redis value will be.
 *
 * File: the 8 bytes "BWSNAP" 0 1 (format 1), then frames of a kind byte
 * (1 session, 2 retained message), a 4-byte little-endian length and the
 * record, then an end frame (kind 0xFF) holding the two counts as 8-byte
 * little-endian numbers. It is written to a temporary file, fsynced and
 * renamed over the old one (then the directory is fsynced), so a crash
 * leaves the old snapshot or the new one, never a mix. Times are saved as
 * wall-clock milliseconds and turned back into the monotonic clock at load.
 *
 * Not thread-safe: call with the workers stopped (save) or not yet started
 * (load).
 */
#ifndef BW_CORE_SNAPSHOT_H
#define BW_CORE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/broker.h"
#include "node/core/hub.h"

#define BW_SNAPSHOT_FILE "snapshot.bin"

struct bw_snapshot_counts {
	uint64_t sessions, retained;
	uint64_t skipped; /* load: expired, or of a tenant the node no longer has */
};

/*
 * Saves to dir/snapshot.bin: with local, the persistent sessions and the
 * hub's retained messages (false: they live in a shared store, Redis, and
 * the file is written empty). Returns 0, or -errno with err saying which
 * file and what failed.
 */
int bw_snapshot_save(const char *dir, struct bw_hub *hub, struct bw_broker *const *brokers,
                     bool local, struct bw_snapshot_counts *n, char *err, size_t cap);

/*
 * Loads dir/snapshot.bin when it exists (no file: 0, nothing loaded): each
 * session goes to its client id's home worker's broker, retained messages
 * to the hub (without local: both are checked and skipped, counted in
 * skipped, since a shared store holds the newer ones). A damaged file is an error naming the file
 * and the offset
 * (-EINVAL), and nothing is loaded beyond it: the node should not start
 * and silently lose what the file holds.
 */
int bw_snapshot_load(const char *dir, struct bw_hub *hub, struct bw_broker *const *brokers,
                     bool local, struct bw_snapshot_counts *n, char *err, size_t cap);

#endif
