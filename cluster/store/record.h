/*
 * Stored records (proto/records.proto) at the boundary between a store and
 * the broker. A store hands back bytes; bw_record_*_decode() turns them into
 * a protobuf-c struct only after checking them as strictly as a packet from
 * a client, so code above this module may trust every field the rules below
 * name. Ownership: a decoded record belongs to the caller, who releases it
 * with the matching bw_record_*_free(); it shares nothing with the input
 * buffer, which the caller keeps. The encode helpers stamp the version,
 * apply the same rules (so a node never writes what it would refuse to read
 * back) and return a malloc()ed buffer the caller free()s; the struct they
 * encode stays the caller's.
 *
 * A record is accepted when, besides unpacking:
 *   - a top-level record has version 1 (newer: -EPROTONOSUPPORT); a message
 *     nested in a session has version 1 or none;
 *   - every string is valid MQTT UTF-8 of at most 65535 bytes; tenant,
 *     topic, filter, client id and user property keys and values are
 *     present, and tenant and client id are non-empty;
 *   - topics and response topics are topic names, filters are filters and
 *     never "$share/..." (the group lives in share_group, which holds no
 *     '/', '+' or '#' and never comes with no_local);
 *   - QoS is at most 2, retain handling at most 2, payload format indicator
 *     at most 1, subscription identifiers 1..268435455 (0: none on a
 *     subscription), correlation data at most 65535 bytes;
 *   - in a session: protocol version 4 or 5, at most one subscription a
 *     (share group, filter), messages of the session's tenant only, a will
 *     with a message whose expiry_at_ms is 0, inflight entries with packet
 *     ids 1..65535 unique within their direction, a state that belongs to
 *     the direction, the message PUBLISH_SENT needs, and QoS 1 or 2 (2 for
 *     the QoS 2 states) on any inflight message; next_packet_id <= 65535.
 *
 * protobuf-c ends a string at its first NUL, so a string field with an
 * embedded NUL byte reads as its prefix; the prefix is what is checked and
 * what the broker sees.
 */
#ifndef BW_RECORD_H
#define BW_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "proto/records.pb-c.h"

#define BW_RECORD_VERSION 1

/*
 * Largest record decoded or encoded. A message record is bounded by the
 * largest PUBLISH the broker accepts, so the node's max packet size setting
 * must stay at or below 64 MiB (MQTT allows 256 MiB): a bigger store value
 * would hold a worker, and Redis, for too long on one read. The extra MiB is
 * what the record holds beside the packet's topic, properties and payload:
 * tenant, publisher client id, origin node (each at most 64 KiB) and the
 * numbers. A session's
 * offline queue and inflight messages live in its record, so the session
 * store must keep a session's queued bytes below this too.
 */
#define BW_RECORD_MAX_BYTES ((size_t)64 * 1024 * 1024 + (size_t)1024 * 1024)

/*
 * Most memory one decode may allocate, counting every allocation protobuf-c
 * makes, freed or not. Unpacking can cost far more than the bytes it reads:
 * an empty repeated element is two bytes on the wire but a struct of a
 * hundred and more in memory, so a corrupt or hostile store value at the
 * size cap could ask for gigabytes and have the OOM killer restart the node
 * into the same record. Four times the size cap leaves room for a record of
 * large payloads (about 1x) or of hundreds of thousands of small queued
 * messages; past it, decode fails with -EMSGSIZE.
 */
#define BW_RECORD_DECODE_MEM_MAX (4 * BW_RECORD_MAX_BYTES)

/* MQTT's largest string, binary data and subscription identifier. */
#define BW_RECORD_STRING_MAX 65535u
#define BW_RECORD_SUB_ID_MAX 268435455u

/*
 * Unpack and check a StoredMessage (a retained message, or any message kept
 * on its own). buf may be NULL when len is 0. On success *out is a new
 * record for the caller. On failure *out is NULL, nothing is allocated, and
 * the result is:
 *   -EMSGSIZE         len > BW_RECORD_MAX_BYTES, or unpacking would need
 *                     more than BW_RECORD_DECODE_MEM_MAX bytes;
 *   -EBADMSG          not a protobuf encoding of the record (a field
 *                     numbered 0, at any depth, included);
 *   -EPROTONOSUPPORT  version newer than BW_RECORD_VERSION;
 *   -EINVAL           any other rule above broken (version 0 or missing too);
 *   -ENOMEM           out of memory.
 */
int bw_record_message_decode(const uint8_t *buf, size_t len, StoredMessage **out);

/* As bw_record_message_decode(), for a StoredSession. */
int bw_record_session_decode(const uint8_t *buf, size_t len, StoredSession **out);

/* Release a decoded record and NULL *msg. NULL or *msg NULL: no-op. */
void bw_record_message_free(StoredMessage **msg);
void bw_record_session_free(StoredSession **sess);

/*
 * Set msg's version to BW_RECORD_VERSION, check it by the decode rules and
 * pack it. On success *out is a malloc()ed buffer of *len bytes that the
 * caller free()s. On failure *out is NULL and the result is -EINVAL (a rule
 * broken), -EMSGSIZE (packed size above BW_RECORD_MAX_BYTES) or -ENOMEM. The
 * version is stamped even on failure; nothing else in msg changes.
 */
int bw_record_message_encode(StoredMessage *msg, uint8_t **out, size_t *len);

/*
 * As bw_record_message_encode(), for a session. Only the session's own
 * version is stamped; nested messages are left as they are (none or 1).
 */
int bw_record_session_encode(StoredSession *sess, uint8_t **out, size_t *len);

/*
 * Internal, for tests: decode a StoredMessage or StoredSession (by desc)
 * with a memory budget of mem_max bytes instead of BW_RECORD_DECODE_MEM_MAX.
 * Stepping mem_max up from 0 fails each allocation of a decode in turn.
 */
int bw__record_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                      size_t mem_max, ProtobufCMessage **out);

#endif
