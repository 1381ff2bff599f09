/*
 * One published application message, shared by every subscriber it goes to
 * and by the other workers it is handed to. It is built once from a decoded
 * PUBLISH (or a will, or a $SYS update) and is immutable from then on, except
 * for its reference count. One allocation holds the header below, the topic,
 * the shared MQTT 5.0 property bytes and the payload, in that order, so that
 * the property bytes and the payload are one contiguous tail every
 * subscriber can send from by reference (see outq.h); each subscriber
 * encodes only its own head.
 *
 * The shared property bytes are what every subscriber gets verbatim, i.e.
 * what goes in bw_props.raw when encoding: Payload Format Indicator, Content
 * Type, Response Topic, Correlation Data and the User Properties, pre-encoded.
 * Message Expiry is kept as an absolute deadline (expires_at_ms) because each
 * subscriber forwards what remains of it; Topic Alias and Subscription
 * Identifiers are per subscriber.
 *
 * Threads: the reference count is atomic, so any thread holding a reference
 * may take another or drop its own. Handing the pointer to another thread
 * needs a queue with release/acquire ordering (the message's bytes are
 * published by that hand-off, not by the reference count).
 */
#ifndef BW_CORE_MSG_H
#define BW_CORE_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/mqtt/mqtt_types.h"

/*
 * Fields are read-only once the message has been shared. tenant (the hub's
 * tenant id) and publisher are set by the creator right after construction
 * (they start 0 and NULL); publisher is not owned, only compared
 * (no-local), never dereferenced.
 */
struct bw_msg {
	atomic_uint refs;       /* private: use bw_msg_ref() / bw_msg_unref() */
	uint8_t qos;            /* as published: 0, 1 or 2 */
	bool retain;            /* as published */
	uint64_t expires_at_ms; /* absolute monotonic deadline; 0: never */
	uint32_t tenant;
	const void *publisher;
	struct bw_str topic;   /* NUL-terminated (not counted in len) */
	struct bw_bin props;   /* shared property bytes; empty for none */
	struct bw_bin payload; /* follows props directly in memory */
	uint8_t data[];
};

/*
 * Builds a message from the topic bytes, the message's MQTT 5.0 properties
 * (NULL for none) and the payload, copying all of them: the caller's buffers
 * may be reused as soon as this returns. From props it takes the shared
 * single-valued properties (Payload Format Indicator, Content Type, Response
 * Topic, Correlation Data, when their bits are set in props->has), the user
 * properties of a decoded block (props->block, via bw_props_copy_user()) and
 * any pre-encoded props->raw (user properties of a hand-built struct), and
 * turns Message Expiry Interval into expires_at_ms = now_ms + interval * 1000
 * (a deadline that would be 0 is stored as 1, as 0 means "never"). Other
 * properties are ignored.
 *
 * Returns the message with one reference, which the caller owns, or NULL with
 * errno set: EINVAL for an empty topic or qos > 2; EMSGSIZE for a topic over
 * 65535 bytes, a payload over 268435455 bytes (BW_VARINT_MAX), or a topic,
 * properties and payload that together could never fit in one PUBLISH;
 * ENOMEM.
 */
struct bw_msg *bw_msg_new(const void *topic, size_t topic_len, const struct bw_props *props,
                          const void *payload, size_t payload_len, uint8_t qos, bool retain,
                          uint64_t now_ms);

/*
 * Builds a message from a PUBLISH decoded in place (see bw_msg_new() for what
 * is copied and the errors). The topic is `topic` when topic.len > 0 (the
 * name a 5.0 Topic Alias stands for, resolved by the caller), else
 * pub->topic. qos and retain are pub's; dup and packet_id are not kept.
 */
struct bw_msg *bw_msg_from_publish(const struct bw_publish *pub, struct bw_str topic,
                                   uint64_t now_ms);

/* Takes one more reference to m (non-NULL) and returns m. */
struct bw_msg *bw_msg_ref(struct bw_msg *m);

/*
 * Drops the reference *mp holds (nothing when *mp is NULL), frees the message
 * when it was the last, and sets *mp to NULL.
 */
void bw_msg_unref(struct bw_msg **mp);

/* The current count, for tests, asserts and metrics (racy by nature). */
unsigned bw_msg_refs(const struct bw_msg *m);

/*
 * Whether m is still deliverable at now_ms, and if so the Message Expiry
 * Interval to forward: the remaining time rounded up to whole seconds
 * (MQTT 5.0 3.3.2.3.3). The message has expired only once now_ms is past
 * expires_at_ms, so an interval of N seconds allows delivery for N * 1000 ms
 * and the last millisecond forwards 0. For a message that never expires,
 * returns true and sets *seconds to 0 (check expires_at_ms to omit the
 * property). seconds may be NULL.
 */
bool bw_msg_remaining_expiry(const struct bw_msg *m, uint64_t now_ms, uint32_t *seconds);

#endif
