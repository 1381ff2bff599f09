/*
 * The message state of one MQTT session, apart from any connection: the
 * outbound inflight window (QoS 1/2 deliveries sent and not yet
 * acknowledged, in send order), the queue of deliveries waiting for room in
 * the window or for the client to come back, the packet identifiers the
 * client has PUBLISHed at QoS 2 and not yet released, and packet id
 * allocation. It outlives connections (persistent sessions) and is owned by
 * one worker at a time; nothing here is thread-safe.
 *
 * Ownership: the session holds one reference to the bw_msg of every
 * delivery it stores and drops it when the delivery completes, is dropped,
 * or the session is freed.
 *
 * Bounds: the window holds at most `inflight_max` deliveries (the client's
 * Receive Maximum, capped by the node's max_inflight); the queue at most
 * `queue_max` (max_queued_messages); the inbound QoS 2 set at most
 * `inbound_max` (the Receive Maximum we announce). Acknowledgements are
 * looked up from the oldest inflight delivery, which costs O(1) when
 * clients acknowledge in order, as they nearly always do, and O(window) at
 * worst. Packet ids are allocated in O(1): a scan of a small window, an
 * 8 KiB bitmap of the ids in use once more than 64 are inflight.
 */
#ifndef BW_CORE_SESSION_H
#define BW_CORE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

struct bw_msg;

/* Subscription identifiers carried with one delivery (more are dropped). */
#define BW_DELIVERY_SUB_IDS 8

/* One message on its way to this session's client. */
struct bw_delivery {
	struct bw_msg *msg;
	uint8_t qos; /* granted: min(publish QoS, subscription QoS) */
	bool retain; /* the RETAIN flag to send */
	uint8_t n_sub_ids;
	uint32_t sub_ids[BW_DELIVERY_SUB_IDS];
	uint64_t seq; /* its number in the session store (Redis); 0: not stored */
};

enum bw_inflight_state {
	BW_INFLIGHT_PUBLISHED, /* PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2) */
	BW_INFLIGHT_RELEASED,  /* QoS 2: PUBREL sent; awaiting PUBCOMP */
};

struct bw_inflight {
	struct bw_delivery d;
	uint16_t packet_id;
	uint8_t state; /* enum bw_inflight_state */
	uint64_t sent_at_ms;
};

struct bw_session_limits {
	uint16_t inflight_max;
	uint16_t inbound_max;
	uint32_t queue_max;
	bool drop_oldest; /* queue full: drop the oldest (true) or refuse the new one */
};

struct bw_session_stats {
	uint64_t queued_dropped; /* deliveries lost to a full queue */
	uint64_t sub_ids_dropped;
};

struct bw_session;

/* A new, empty session, or NULL when out of memory. */
struct bw_session *bw_session_new(const struct bw_session_limits *limits);

/* Frees the session and drops every reference it holds; NULLs *s. */
void bw_session_free(struct bw_session **s);

/*
 * Changes the window size (a new connection's Receive Maximum). Deliveries
 * already inflight beyond a smaller window stay until acknowledged.
 */
void bw_session_set_inflight_max(struct bw_session *s, uint16_t inflight_max);

/* The most messages the session may queue (its tenant's quota); those queued stay. */
void bw_session_set_queue_max(struct bw_session *s, uint32_t queue_max);

/*
 * Queues a delivery (taking a new reference to d->msg). Returns 0, or
 * -ENOBUFS when the queue is full and the policy refuses new deliveries
 * (nothing is taken). With drop_oldest the oldest queued delivery is
 * dropped instead and counted.
 */
int bw_session_enqueue(struct bw_session *s, const struct bw_delivery *d);

/* Deliveries waiting in the queue. */
uint32_t bw_session_queued(const struct bw_session *s);

/* Deliveries inflight. */
uint32_t bw_session_inflight(const struct bw_session *s);

/*
 * Takes the next queued delivery that may be sent now. A QoS 0 delivery
 * always may; a QoS 1/2 one only when the window has room, in which case it
 * gets a packet id, moves to the window (state PUBLISHED, sent_at_ms = now)
 * and *out points to its inflight entry. Returns true with *d filled (the
 * caller's reference for QoS 0 — it must bw_msg_unref it — or a view of the
 * inflight entry's delivery), false when nothing may be sent.
 */
bool bw_session_next(struct bw_session *s, uint64_t now_ms, struct bw_delivery *d,
                     const struct bw_inflight **out);

/*
 * Handles PUBACK (QoS 1) and PUBCOMP (QoS 2 after PUBREL): completes the
 * inflight delivery with that packet id. Returns 0, or -ENOENT when no
 * delivery waits for that acknowledgement (5.0: Packet Identifier not
 * found).
 */
int bw_session_puback(struct bw_session *s, uint16_t packet_id);
int bw_session_pubcomp(struct bw_session *s, uint16_t packet_id);

/* Handles PUBREC: the delivery moves to RELEASED (the caller sends PUBREL). */
int bw_session_pubrec(struct bw_session *s, uint16_t packet_id, uint64_t now_ms);

/*
 * Walks the inflight window in send order, for redelivery on reconnect
 * (PUBLISH with DUP, or PUBREL) and for retransmission timers. *cursor
 * starts at 0. Returns NULL past the end.
 */
const struct bw_inflight *bw_session_inflight_at(const struct bw_session *s, uint32_t *cursor);

/*
 * Inbound QoS 2: records that the client published packet_id at QoS 2
 * (before PUBREC is sent). Returns 1 when it is new (deliver the message), 0
 * when it was already recorded (a DUP resend: do not deliver again, answer
 * PUBREC), or -ENOBUFS when more than inbound_max are pending (5.0: Receive
 * Maximum exceeded).
 */
int bw_session_inbound_qos2(struct bw_session *s, uint16_t packet_id);

/* PUBREL: forgets packet_id. Returns 0 or -ENOENT. */
int bw_session_inbound_release(struct bw_session *s, uint16_t packet_id);

/* For snapshots: the i-th queued delivery (oldest first), or NULL. */
const struct bw_delivery *bw_session_queued_at(const struct bw_session *s, uint32_t i);

/* For snapshots: the inbound QoS 2 packet ids (*ids, unordered); returns their count. */
uint32_t bw_session_inbound_ids(const struct bw_session *s, const uint16_t **ids);

/* For snapshots: the packet id the next allocation tries first. */
uint16_t bw_session_next_id(const struct bw_session *s);

/*
 * From a snapshot: puts a delivery (QoS 1/2, taking a reference) in the
 * window with its exact packet id and state, after those restored before,
 * and sets the next packet id when next_id is not 0 (d may be NULL for
 * that alone). Returns 0, -EINVAL (QoS 0, id 0 or in use, RELEASED for
 * QoS 1) or -ENOMEM. The window may exceed inflight_max by what was
 * inflight: it drains as the client acknowledges.
 */
int bw_session_restore(struct bw_session *s, const struct bw_delivery *d, uint16_t packet_id,
                       uint8_t state, uint64_t sent_at_ms, uint16_t next_id);

/* Counters for metrics. */
const struct bw_session_stats *bw_session_stats(const struct bw_session *s);

/* The broker's record this state belongs to (NULL until set). */
void bw_session_set_owner(struct bw_session *s, void *owner);
void *bw_session_owner(const struct bw_session *s);

/*
 * What happens to a stored delivery (seq above 0) in the window, told to
 * the session's owner so the session store follows: SENT, it left the
 * queue with its packet id; PUBREC, received (once; PUBREL goes out);
 * DONE, acknowledged (PUBACK, PUBCOMP, a refusing PUBREC), just before it
 * is dropped. Not called while the session is freed.
 */
enum bw_session_event { BW_SESSION_SENT, BW_SESSION_PUBREC, BW_SESSION_DONE };
typedef void (*bw_session_observer)(void *owner, enum bw_session_event ev,
                                    const struct bw_inflight *f);
void bw_session_set_observer(struct bw_session *s, bw_session_observer fn);

#endif
