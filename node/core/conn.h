/*
 * The MQTT protocol engine of one client connection, without I/O: the
 * worker feeds it received bytes (bw_conn_input) and sends what it queues
 * on its output queue; everything the connection needs from the broker
 * (authentication, sessions, routing, subscriptions, retained messages,
 * time) it asks through struct bw_conn_ops. So the whole MQTT behaviour of
 * a connection is testable by feeding bytes and reading bytes.
 *
 * States: AWAIT_CONNECT (only CONNECT is accepted), CONNECTED, CLOSING
 * (nothing more is read; the output queue drains, then the worker closes
 * the socket). A protocol violation queues the right DISCONNECT (5.0) and
 * moves to CLOSING; bw_conn_input() then returns -EPROTO.
 */
#ifndef BW_CORE_CONN_H
#define BW_CORE_CONN_H

#include "node/core/outq.h"
#include "node/core/session.h"
#include "proto/mqtt/mqtt_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_conn;
struct bw_msg;

/* Longest client identifier accepted (5.0: 0x85; 3.1.1: return code 2). */
#define BW_CLIENT_ID_MAX 256

enum bw_conn_state {
	BW_CONN_AWAIT_CONNECT,
	BW_CONN_CONNECTED,
	BW_CONN_CLOSING,
};

/* Limits and what the node announces; from the node's configuration. */
struct bw_conn_limits {
	uint32_t max_packet_size;
	uint16_t max_keepalive;   /* seconds; longer requests are capped */
	uint16_t receive_max;     /* QoS 1/2 PUBLISHes a client may have unacknowledged */
	uint16_t topic_alias_max; /* aliases a client may define */
	uint16_t max_topic_length;
	uint16_t max_topic_levels;
	struct bw_outq_limits outq;
};

/*
 * The broker as a connection sees it. Every callback gets the ops' ctx and
 * the connection. Return conventions are per callback.
 */
struct bw_conn_ops {
	void *ctx;
	uint64_t (*now_ms)(void *ctx);
	/*
	 * Which worker the client id of this CONNECT belongs on (its tenant,
	 * which the CONNECT and the connection name, is part of the answer):
	 * -1 this one, else the index of the worker the connection must move
	 * to before its CONNECT is handled (see bw_conn_moving()). May be
	 * NULL: always here. For a client without an id (pkt's is empty),
	 * the connection assigns ids until one belongs here.
	 */
	int (*place)(void *ctx, struct bw_conn *c, const struct bw_connect *pkt,
	             struct bw_str client_id);
	/*
	 * A CONNECT passed the codec and the node's limits. Authenticates
	 * and attaches a session (bw_conn_attach). Returns 0, or the MQTT 5
	 * reason code to refuse with (the connection maps it to 3.1.1), or
	 * -EINPROGRESS when the answer comes later through
	 * bw_conn_connect_done() (authentication off the worker's thread);
	 * the connection handles nothing more until then.
	 */
	int (*connect)(void *ctx, struct bw_conn *c, const struct bw_connect *pkt);
	/*
	 * Whether the client may publish to topic at qos (retained or not),
	 * a PUBLISH of size bytes: 0; a reason code to refuse it with (5.0
	 * PUBACK/PUBREC; 3.1.1 acknowledges and drops it); or a negative
	 * reason code to end the connection with (a rate or QoS over the
	 * client's quota). May be NULL: everything may.
	 */
	int (*may_publish)(void *ctx, struct bw_conn *c, struct bw_str topic, uint8_t qos,
	                   bool retain, size_t size);
	/*
	 * MQTT 5 enhanced authentication: the one Authentication Method the
	 * broker takes (NULL: none). A CONNECT naming another method, or any
	 * method when this is NULL, is refused with 0x8C; one naming this
	 * method goes to ops->connect like any other (its Authentication
	 * Data in pkt->props), and CONNACK names the method back.
	 */
	const char *auth_method;
	/*
	 * Re-authentication: the client of a CONNECT with auth_method sent
	 * AUTH 0x19 with new Authentication Data. Returns 0 (accepted: AUTH
	 * 0x00 goes back), a reason code (the connection ends with DISCONNECT
	 * and that code), or -EINPROGRESS: bw_conn_reauth_done() answers, and
	 * packets keep flowing meanwhile. May be NULL when auth_method is.
	 */
	int (*reauth)(void *ctx, struct bw_conn *c, struct bw_bin data);
	/*
	 * An application message to route (the callee takes a reference).
	 * Its PUBACK or PUBREC may be made to wait: bw_conn_wait_ack().
	 */
	void (*publish)(void *ctx, struct bw_conn *c, struct bw_msg *m);
	/*
	 * Adds or replaces a subscription (the filter is valid and within
	 * the topic limits). Returns the granted QoS (0..2), or a negative
	 * reason code (e.g. -BW_RC_QUOTA_EXCEEDED past the subscriptions a
	 * session may hold, which the broker counts).
	 */
	int (*subscribe)(void *ctx, struct bw_conn *c, const struct bw_sub_entry *e,
	                 uint32_t sub_id);
	/*
	 * Called once the SUBACK is queued (may be NULL): the broker sends
	 * the retained messages the new subscriptions asked for, so they
	 * follow the SUBACK.
	 */
	void (*subscribed)(void *ctx, struct bw_conn *c);
	/* Returns 0, or -BW_RC_NO_SUBSCRIPTION_EXISTED. */
	int (*unsubscribe)(void *ctx, struct bw_conn *c, struct bw_str filter);
	/*
	 * The connection ends. send_will: abnormal end (or 5.0 DISCONNECT
	 * 0x04): the will, if any, must be published (after its delay).
	 */
	void (*closed)(void *ctx, struct bw_conn *c, bool send_will);
	/*
	 * A 5.0 DISCONNECT carries a Session Expiry Interval: the session's
	 * new one (before closed() is called). Returns 0, or a reason code to
	 * end the connection with instead (0x82: non-zero after 0 in the
	 * CONNECT, [MQTT-3.14.2-2]). May be NULL (ignored).
	 */
	int (*set_expiry)(void *ctx, struct bw_conn *c, uint32_t expiry);
};

/*
 * What the broker grants a client narrower than the connection's limits
 * (its tenant's quotas), set from ops->connect before the CONNACK, which
 * tells a 5.0 client: a smaller Maximum Packet Size, a Maximum QoS, a
 * capped Session Expiry Interval.
 */
struct bw_conn_grant {
	uint32_t max_packet_size; /* 0: the connection's limit */
	uint8_t max_qos;          /* 0..2 */
	bool expiry_capped;       /* the client asked for more than session_expiry */
	uint32_t session_expiry;
	/* Its tenant, the hub's id + 1: the worker shares its input time out by it. */
	uint32_t tenant;
};
void bw_conn_grant(struct bw_conn *c, const struct bw_conn_grant *g);

/*
 * A new connection, or NULL when out of memory. limits and ops are
 * borrowed, not copied: they must outlive the connection.
 */
struct bw_conn *bw_conn_new(const struct bw_conn_limits *limits, const struct bw_conn_ops *ops,
                            void *user);

/* Frees it (and its output queue). The session is detached, not freed. */
void bw_conn_free(struct bw_conn **c);

/*
 * A PUBACK or PUBREC that waits (session_durability sync: until the
 * message is stored). The connection sends its acknowledgements in the
 * order the PUBLISHes came, so one that need not wait still waits behind
 * one that does (refusals and the PUBREC of a resent QoS 2 PUBLISH too;
 * a resend whose PUBREC waits is answered by that one). The connection
 * calls release(w) once it is done with w: after sending it, or when it
 * ends with w ready. A w not yet ready when the connection ends is
 * unlinked with c set to NULL, and release is not called: its owner finds
 * c NULL when it is done and frees it itself.
 */
struct bw_conn_wait {
	struct bw_conn_wait *next;
	struct bw_conn *c; /* NULL: no connection waits for it (any more) */
	void (*release)(struct bw_conn_wait *w);
	uint16_t packet_id;
	uint8_t type;   /* BW_PUBACK or BW_PUBREC */
	uint8_t reason; /* of the acknowledgement; 0x80 and above: refused */
	bool ready;
};

/*
 * From ops.publish only: the acknowledgement of the PUBLISH being handled
 * waits for bw_conn_wait_done(w), which may come at once. w (the caller's,
 * release set) is linked; a QoS 0 PUBLISH has none (w is left alone, c
 * NULL).
 */
void bw_conn_wait_ack(struct bw_conn *c, struct bw_conn_wait *w);

/*
 * On the connection's thread, with w->c set: w's acknowledgement may go,
 * with reason (5.0; a 3.1.1 client, which has no refusal, is disconnected
 * instead, so that it sends the message again). A refused PUBREC frees
 * the message's packet id: what comes with it next is a new message. What
 * is ready at the head goes out now.
 */
void bw_conn_wait_done(struct bw_conn_wait *w, uint8_t reason);

/*
 * Feeds received bytes. Whole packets are handled straight from `data`;
 * only a trailing partial packet is copied. Returns 0, or -EPROTO when the
 * connection is now CLOSING (a DISCONNECT may have been queued), -ENOMEM.
 */
int bw_conn_input(struct bw_conn *c, const uint8_t *data, size_t len);

/*
 * Like bw_conn_input(), for a worker that shares its time out: handles
 * whole packets from data only until `budget` bytes were handled (at least
 * one packet), and returns how many bytes it took (handled, or kept as a
 * partial packet or while held); the caller gives the rest again later.
 * A partial packet kept from before is finished first, with just the bytes
 * it lacks. Errors as bw_conn_input().
 */
long bw_conn_input_some(struct bw_conn *c, const uint8_t *data, size_t len, size_t budget);

/* Whether input is held (see bw_conn_hold(); also a CONNECT being decided or moved). */
bool bw_conn_holding(const struct bw_conn *c);

/* The tenant the broker granted it (see struct bw_conn_grant), 0 before that. */
uint32_t bw_conn_tenant(const struct bw_conn *c);

/* The reason code a protocol error ended it with (0x95 too large, ...); 0: none. */
uint8_t bw_conn_end_reason(const struct bw_conn *c);

/*
 * Binds the session (called from ops->connect). session_present is what
 * CONNACK says.
 */
void bw_conn_attach(struct bw_conn *c, struct bw_session *s, bool session_present);

/*
 * Offers a delivery to the connection's session and sends what the window
 * allows. Returns 0, or -ENOBUFS when the session's queue refused it.
 */
int bw_conn_deliver(struct bw_conn *c, const struct bw_delivery *d);

/*
 * Counts now as heard from the client: the worker calls it when it resumes
 * reading a connection it had paused, so the pause does not count against
 * the client's keep alive.
 */
void bw_conn_touch(struct bw_conn *c);

/*
 * Holds input: bw_conn_input() stops after the packet it is handling and
 * keeps the rest (the worker pauses a publisher this way, mid-buffer).
 * bw_conn_release() handles what was kept (it may hold again) and returns
 * like bw_conn_input().
 */
void bw_conn_hold(struct bw_conn *c);
int bw_conn_release(struct bw_conn *c);

/*
 * The answer to a CONNECT that ops->connect left in progress: 0 (a session
 * was attached meanwhile) or a reason code. Sends the CONNACK and handles
 * what the client sent after its CONNECT. Returns like bw_conn_input();
 * -EPROTO also when the connection was closed meanwhile.
 */
int bw_conn_connect_done(struct bw_conn *c, int rc);

/*
 * The answer to a re-authentication ops->reauth left in progress: 0 (AUTH
 * 0x00 goes back) or a reason code (the connection ends with it). Returns
 * like bw_conn_input(); nothing happens to a connection closed meanwhile.
 */
int bw_conn_reauth_done(struct bw_conn *c, int rc);

/*
 * The worker the connection must move to, or -1. A moving connection holds
 * its CONNECT and everything received after it unhandled, and handles
 * nothing more: the worker stops reading, takes the bytes with
 * bw_conn_take_input() and passes them with the socket to that worker,
 * whose new connection (pinned) handles them.
 */
int bw_conn_moving(const struct bw_conn *c);

/* Hands over the unhandled input; the caller frees *data. */
void bw_conn_take_input(struct bw_conn *c, uint8_t **data, size_t *len);

/* Handles the CONNECT here whatever ops->place says (a moved connection). */
void bw_conn_pin(struct bw_conn *c);

/* Sends more once the output queue drained below its soft limit. */
void bw_conn_resume(struct bw_conn *c);

/* Ends the connection from the broker's side with a 5.0 reason code. */
void bw_conn_kick(struct bw_conn *c, uint8_t reason);

/* Accessors for the worker and the broker. */
enum bw_conn_state bw_conn_state(const struct bw_conn *c);
struct bw_outq *bw_conn_outq(struct bw_conn *c);
uint8_t bw_conn_version(const struct bw_conn *c);
struct bw_str bw_conn_client_id(const struct bw_conn *c);
struct bw_session *bw_conn_session(const struct bw_conn *c);
void *bw_conn_user(const struct bw_conn *c);
/* When the connection must have heard from its client (keep alive x 1.5). */
uint64_t bw_conn_deadline_ms(const struct bw_conn *c);

#endif
