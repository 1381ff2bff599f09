/*
 * The connection protocol engine (see conn.h). Input is framed and decoded
 * in place from the bytes the worker received; only a trailing partial
 * packet is copied into the connection's own buffer, which is bounded by
 * the maximum packet size. Every answer is encoded into the output queue.
 */
#include "node/core/conn.h"

#include "node/core/msg.h"
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"
#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A topic alias the client defined (MQTT 5.0 3.3.2.3.4), or one we did. */
struct alias {
	uint8_t *topic;
	uint16_t len;
};

/*
 * Aliases we assign on PUBLISHes to the client, at most this many whatever
 * its Topic Alias Maximum: the lookup is a scan, and a connection should
 * not cost more than a few KiB for them.
 */
#define OUT_ALIASES_MAX 32

/* Bytes a connection keeps unhandled while held, beyond two packets. */
#define HELD_MAX (4u << 20)

/* Fields by size, so an idle connection carries no padding. */
struct bw_conn {
	/*
	 * The caller's (bw_conn_new): shared by every connection of a
	 * listener, so an idle connection holds two pointers, not copies.
	 */
	const struct bw_conn_limits *lim;
	const struct bw_conn_ops *ops;
	void *user;
	uint32_t max_packet_size; /* lim's, or what bw_conn_grant() narrowed it to */
	enum bw_conn_state state;
	uint8_t version;
	bool session_present;
	bool problem_info; /* 5.0 Request Problem Information */
	bool held;         /* bw_conn_hold(): keep input unhandled */
	bool pinned;       /* bw_conn_pin(): never move */
	bool connecting;   /* ops->connect said -EINPROGRESS: bw_conn_connect_done() comes */
	bool enhanced;     /* CONNECT named ops->auth_method: AUTH may re-authenticate */
	bool reauthing;    /* ops->reauth said -EINPROGRESS: bw_conn_reauth_done() comes */
	bool id_assigned;  /* CONNACK carries Assigned Client Identifier */
	bool keep_alive_capped;
	bool expiry_capped;
	uint8_t max_qos;    /* 0..2: what the broker granted */
	uint8_t end_reason; /* what a protocol error ended it with */
	uint8_t pub_ack; /* the PUBLISH in ops->publish: the acknowledgement it needs (0: none), */
	bool pub_waits;  /* whether that waits (bw_conn_wait_ack()), */
	uint16_t pub_id; /* and its packet id */
	uint32_t tenant; /* the grant's */
	uint32_t session_expiry;
	int move_to; /* bw_conn_moving() */
	uint32_t client_max_packet;
	uint16_t keep_alive;
	uint16_t client_receive_max;
	uint16_t client_alias_max;
	uint16_t client_id_len;
	uint16_t out_alias_cap, out_alias_used;
	uint64_t last_rx_ms;
	struct bw_outq outq;
	struct bw_session *session;
	char *client_id; /* its own allocation, exactly as long: idle connections stay small */
	struct alias *aliases;     /* [lim->topic_alias_max], allocated on first use */
	struct alias *out_aliases; /* [out_alias_cap], allocated on first use */
	uint8_t *in;               /* partial packet carried between receives */
	/* Below 2 x (HELD_MAX + 2 x BW_PACKET_SIZE_MAX), so 32 bits: see bw_conn_input(). */
	uint32_t in_len, in_cap;
	/* Acknowledgements waiting, in PUBLISH order (bw_conn_wait_ack()). */
	struct bw_conn_wait *waits, **waits_tail;
};

static uint64_t now(struct bw_conn *c)
{
	return c->ops->now_ms(c->ops->ctx);
}

struct bw_conn *bw_conn_new(const struct bw_conn_limits *limits, const struct bw_conn_ops *ops,
                            void *user)
{
	struct bw_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->lim = limits;
	c->ops = ops;
	c->max_packet_size = limits->max_packet_size;
	c->user = user;
	c->state = BW_CONN_AWAIT_CONNECT;
	c->move_to = -1;
	c->client_receive_max = UINT16_MAX;
	c->client_max_packet = BW_PACKET_SIZE_MAX;
	c->max_qos = 2;
	bw_outq_init(&c->outq, &limits->outq);
	c->last_rx_ms = now(c);
	return c;
}

void bw_conn_free(struct bw_conn **cp)
{
	struct bw_conn *c = *cp;
	if (!c)
		return;
	free(c->client_id);
	if (c->aliases) {
		for (uint32_t i = 0; i < c->lim->topic_alias_max; i++)
			free(c->aliases[i].topic);
		free(c->aliases);
	}
	if (c->out_aliases) {
		for (uint32_t i = 0; i < c->out_alias_used; i++)
			free(c->out_aliases[i].topic);
		free(c->out_aliases);
	}
	bw_outq_clear(&c->outq);
	free(c->in);
	for (struct bw_conn_wait *w = c->waits, *next; w; w = next) {
		next = w->next;
		w->next = NULL;
		w->c = NULL;
		if (w->ready)
			w->release(w);
	}
	free(c);
	*cp = NULL;
}

enum bw_conn_state bw_conn_state(const struct bw_conn *c)
{
	return c->state;
}

struct bw_outq *bw_conn_outq(struct bw_conn *c)
{
	return &c->outq;
}

uint8_t bw_conn_version(const struct bw_conn *c)
{
	return c->version;
}

struct bw_str bw_conn_client_id(const struct bw_conn *c)
{
	return (struct bw_str){ (const uint8_t *)c->client_id, c->client_id_len };
}

struct bw_session *bw_conn_session(const struct bw_conn *c)
{
	return c->session;
}

void *bw_conn_user(const struct bw_conn *c)
{
	return c->user;
}

uint64_t bw_conn_deadline_ms(const struct bw_conn *c)
{
	if (c->state == BW_CONN_AWAIT_CONNECT || c->keep_alive == 0)
		return 0;
	return c->last_rx_ms + (uint64_t)c->keep_alive * 1500;
}

/* ---- output ------------------------------------------------------------- */

/* Encodes pkt onto the output queue. Returns 0 or -ENOBUFS (hard limit). */
static int send_packet(struct bw_conn *c, const struct bw_packet *pkt)
{
	uint8_t small[512];
	size_t n = bw_codec_size(pkt, c->version);
	if (n == 0)
		return -EINVAL;
	uint8_t *buf = n <= sizeof(small) ? small : malloc(n);
	if (!buf)
		return -ENOMEM;
	bw_codec_encode(pkt, c->version, buf, n);
	int rc = bw_outq_push_copy(&c->outq, buf, n);
	if (buf != small)
		free(buf);
	return rc;
}

static void set_reason_string(struct bw_conn *c, struct bw_props *p, const char *why)
{
	/* 5.0 3.1.2.11.7: without Request Problem Information, only on
	 * CONNACK and DISCONNECT (the callers that pass force). */
	if (c->version != BW_MQTT_5 || !why)
		return;
	p->has |= BW_PROP_BIT(BW_PROP_REASON_STRING);
	p->reason_string.p = (const uint8_t *)why;
	p->reason_string.len = (uint16_t)strlen(why);
}

/* Queues a 5.0 DISCONNECT with `reason` and stops reading. */
static int fail(struct bw_conn *c, uint8_t reason, const char *why)
{
	if (c->state == BW_CONN_CONNECTED && c->version == BW_MQTT_5) {
		struct bw_packet p = { .type = BW_DISCONNECT };
		p.disconnect.code = reason;
		set_reason_string(c, &p.disconnect.props, why);
		send_packet(c, &p);
	}
	bool was_connected = c->state == BW_CONN_CONNECTED;
	c->state = BW_CONN_CLOSING;
	c->end_reason = reason;
	if (was_connected)
		c->ops->closed(c->ops->ctx, c, true);
	return -EPROTO;
}

static int send_ack(struct bw_conn *c, uint8_t type, uint16_t id, uint8_t code, const char *why)
{
	struct bw_packet p = { .type = type };
	p.ack.packet_id = id;
	p.ack.code = code;
	if (code >= 0x80 && c->problem_info)
		set_reason_string(c, &p.ack.props, why);
	return send_packet(c, &p);
}

/* ---- CONNECT ------------------------------------------------------------ */

/* The 3.1.1 CONNACK return code for a 5.0 reason code. */
static uint8_t connack_311(uint8_t reason)
{
	switch (reason) {
	case BW_RC_UNSUPPORTED_VERSION:
		return BW_CONNACK_311_BAD_VERSION;
	case BW_RC_CLIENT_ID_INVALID:
		return BW_CONNACK_311_ID_REJECTED;
	case BW_RC_BAD_USERNAME_PASSWORD:
		return BW_CONNACK_311_BAD_USER_PASS;
	case BW_RC_NOT_AUTHORIZED:
	case BW_RC_BANNED:
	case BW_RC_BAD_AUTH_METHOD:
		return BW_CONNACK_311_NOT_AUTHORIZED;
	default:
		return BW_CONNACK_311_UNAVAILABLE;
	}
}

/* Refuses a CONNECT with `reason` (5.0 code) and stops reading. */
static int refuse(struct bw_conn *c, uint8_t reason, const char *why)
{
	struct bw_packet p = { .type = BW_CONNACK };
	p.connack.code = c->version == BW_MQTT_5 ? reason : connack_311(reason);
	set_reason_string(c, &p.connack.props, why);
	send_packet(c, &p);
	c->state = BW_CONN_CLOSING;
	return -EPROTO;
}

/* A client identifier for a 5.0 client that sent none. */
/* Sets the client id; -ENOMEM. */
static int set_client_id(struct bw_conn *c, const void *id, size_t len)
{
	char *p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, id, len);
	p[len] = '\0';
	free(c->client_id);
	c->client_id = p;
	c->client_id_len = (uint16_t)len;
	return 0;
}

static int assign_client_id(struct bw_conn *c)
{
	char id[3 + 24 + 1];
	uint8_t r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		/* Never fails for 12 bytes once the pool is up; keep it unique anyway. */
		static uint64_t seq;
		memset(r, 0, sizeof(r));
		memcpy(r, &seq, sizeof(seq));
		seq++;
	}
	int n = snprintf(id, sizeof(id), "bw-");
	for (size_t i = 0; i < sizeof(r); i++)
		n += snprintf(id + n, sizeof(id) - (size_t)n, "%02x", r[i]);
	return set_client_id(c, id, (size_t)n);
}

static bool topic_within_limits(const struct bw_conn *c, const uint8_t *t, size_t len)
{
	return len <= c->lim->max_topic_length &&
	       bw_topic_levels(t, len) <= c->lim->max_topic_levels;
}

static void resend_inflight(struct bw_conn *c);
static void flush(struct bw_conn *c);

static int connect_finish(struct bw_conn *c, int rc);

/* Whether a client's Authentication Method is the one the broker takes. */
static bool same_method(const struct bw_conn *c, struct bw_str m)
{
	const char *want = c->ops->auth_method;
	return want && m.len == strlen(want) && memcmp(m.p, want, m.len) == 0;
}

static void set_auth_method(const struct bw_conn *c, struct bw_props *p)
{
	p->has |= BW_PROP_BIT(BW_PROP_AUTH_METHOD);
	p->auth_method.p = (const uint8_t *)c->ops->auth_method;
	p->auth_method.len = (uint16_t)strlen(c->ops->auth_method);
}

static int on_connect(struct bw_conn *c, const struct bw_connect *pkt)
{
	c->version = pkt->version;
	bool v5 = c->version == BW_MQTT_5;

	if (pkt->client_id.len > BW_CLIENT_ID_MAX)
		return refuse(c, BW_RC_CLIENT_ID_INVALID, "client identifier too long");
	if (pkt->client_id.len == 0) {
		/* 3.1.1 [MQTT-3.1.3-8]: only with a clean session. */
		if (!v5 && !pkt->clean_start)
			return refuse(c, BW_RC_CLIENT_ID_INVALID,
			              "empty client identifier needs a clean session");
		/* An id that belongs on this worker, so its session can stay here. */
		for (int i = 0; i < 1024; i++) {
			if (assign_client_id(c))
				return refuse(c, BW_RC_UNSPECIFIED, NULL);
			if (c->pinned || !c->ops->place ||
			    c->ops->place(c->ops->ctx, c, pkt, bw_conn_client_id(c)) < 0)
				break;
		}
	} else if (set_client_id(c, pkt->client_id.p, pkt->client_id.len)) {
		return refuse(c, BW_RC_UNSPECIFIED, NULL);
	}

	c->id_assigned = pkt->client_id.len == 0;
	c->keep_alive = pkt->keep_alive;
	c->keep_alive_capped = false;
	if (c->keep_alive == 0 || c->keep_alive > c->lim->max_keepalive) {
		if (!v5 && c->keep_alive > c->lim->max_keepalive)
			return refuse(c, BW_RC_CLIENT_ID_INVALID,
			              "keep alive longer than the server allows");
		if (v5) {
			c->keep_alive = c->lim->max_keepalive;
			c->keep_alive_capped = true;
		}
	}
	if (pkt->will && !topic_within_limits(c, pkt->will_topic.p, pkt->will_topic.len))
		return refuse(c, BW_RC_TOPIC_NAME_INVALID, "will topic too long or too deep");

	if (v5) {
		const struct bw_props *p = &pkt->props;
		if (p->has & BW_PROP_BIT(BW_PROP_AUTH_METHOD)) {
			if (!same_method(c, p->auth_method))
				return refuse(c, BW_RC_BAD_AUTH_METHOD,
				              "authentication method not supported");
			c->enhanced = true;
		}
		if (p->has & BW_PROP_BIT(BW_PROP_RECEIVE_MAX))
			c->client_receive_max = p->receive_max;
		if (p->has & BW_PROP_BIT(BW_PROP_MAX_PACKET_SIZE))
			c->client_max_packet = p->max_packet_size;
		if (p->has & BW_PROP_BIT(BW_PROP_TOPIC_ALIAS_MAX))
			c->client_alias_max = p->topic_alias_max;
		c->out_alias_cap = c->client_alias_max < OUT_ALIASES_MAX ? c->client_alias_max
		                                                         : OUT_ALIASES_MAX;
		c->problem_info = !(p->has & BW_PROP_BIT(BW_PROP_REQUEST_PROBLEM_INFO)) ||
		                  p->request_problem_info;
	}

	int rc = c->ops->connect(c->ops->ctx, c, pkt);
	if (rc == -EINPROGRESS) {
		/* Authentication goes on elsewhere; what follows waits unhandled. */
		c->connecting = true;
		c->held = true;
		return 0;
	}
	return connect_finish(c, rc);
}

/* The end of a CONNECT: CONNACK, refusing (rc, a reason code) or accepting. */
static int connect_finish(struct bw_conn *c, int rc)
{
	bool v5 = c->version == BW_MQTT_5;

	if (rc)
		return refuse(c, (uint8_t)rc, NULL);
	if (!c->session)
		return refuse(c, BW_RC_UNSPECIFIED, "no session");
	/* The client's Receive Maximum, within the node's max_inflight. */
	uint16_t window = c->client_receive_max < c->lim->receive_max ? c->client_receive_max
	                                                              : c->lim->receive_max;
	bw_session_set_inflight_max(c->session, window);

	struct bw_packet ack = { .type = BW_CONNACK };
	ack.connack.session_present = c->session_present;
	if (v5) {
		struct bw_props *p = &ack.connack.props;
		p->has = BW_PROP_BIT(BW_PROP_RECEIVE_MAX) | BW_PROP_BIT(BW_PROP_MAX_PACKET_SIZE) |
		         BW_PROP_BIT(BW_PROP_TOPIC_ALIAS_MAX);
		p->receive_max = c->lim->receive_max;
		p->max_packet_size = c->max_packet_size;
		p->topic_alias_max = c->lim->topic_alias_max;
		if (c->id_assigned) {
			p->has |= BW_PROP_BIT(BW_PROP_ASSIGNED_CLIENT_ID);
			p->assigned_client_id = bw_conn_client_id(c);
		}
		if (c->keep_alive_capped) {
			p->has |= BW_PROP_BIT(BW_PROP_SERVER_KEEP_ALIVE);
			p->server_keep_alive = c->keep_alive;
		}
		if (c->max_qos < 2) {
			p->has |= BW_PROP_BIT(BW_PROP_MAX_QOS);
			p->max_qos = c->max_qos;
		}
		if (c->expiry_capped) {
			p->has |= BW_PROP_BIT(BW_PROP_SESSION_EXPIRY);
			p->session_expiry = c->session_expiry;
		}
		if (c->enhanced)
			set_auth_method(c, p);
	}
	c->state = BW_CONN_CONNECTED;
	if (send_packet(c, &ack))
		return fail(c, BW_RC_UNSPECIFIED, NULL);
	resend_inflight(c);
	flush(c);
	return 0;
}

void bw_conn_grant(struct bw_conn *c, const struct bw_conn_grant *g)
{
	if (g->max_packet_size && g->max_packet_size < c->max_packet_size)
		c->max_packet_size = g->max_packet_size;
	c->max_qos = g->max_qos < 2 ? g->max_qos : 2;
	c->expiry_capped = g->expiry_capped;
	c->session_expiry = g->session_expiry;
	c->tenant = g->tenant;
}

void bw_conn_attach(struct bw_conn *c, struct bw_session *s, bool session_present)
{
	c->session = s;
	c->session_present = session_present;
}

/* ---- PUBLISH from the client -------------------------------------------- */

/* Resolves or records a 5.0 topic alias. Returns 0 or a reason to fail with. */
static int resolve_alias(struct bw_conn *c, struct bw_publish *pub, const char **why)
{
	if (!(pub->props.has & BW_PROP_BIT(BW_PROP_TOPIC_ALIAS)))
		return 0;
	uint16_t a = pub->props.topic_alias;
	if (a > c->lim->topic_alias_max) {
		*why = "Topic Alias above the Topic Alias Maximum";
		return BW_RC_TOPIC_ALIAS_INVALID;
	}
	if (!c->aliases) {
		c->aliases = calloc(c->lim->topic_alias_max, sizeof(*c->aliases));
		if (!c->aliases) {
			*why = "out of memory";
			return BW_RC_UNSPECIFIED;
		}
	}
	struct alias *al = &c->aliases[a - 1];
	if (pub->topic.len == 0) {
		if (!al->topic) {
			*why = "Topic Alias not defined";
			return BW_RC_PROTOCOL_ERROR;
		}
		pub->topic.p = al->topic;
		pub->topic.len = al->len;
		return 0;
	}
	if (al->len != pub->topic.len || !al->topic ||
	    memcmp(al->topic, pub->topic.p, pub->topic.len) != 0) {
		uint8_t *t = malloc(pub->topic.len);
		if (!t) {
			*why = "out of memory";
			return BW_RC_UNSPECIFIED;
		}
		memcpy(t, pub->topic.p, pub->topic.len);
		free(al->topic);
		al->topic = t;
		al->len = pub->topic.len;
	}
	return 0;
}

/*
 * An acknowledgement the connection queued, ready, behind one that waits
 * (its own: released by wait_free).
 */
struct queued_ack {
	struct bw_conn_wait w;
	const char *why; /* its Reason String, if it refuses */
};

static void wait_free(struct bw_conn_wait *w)
{
	free(w);
}

static bool queued(const struct bw_conn_wait *w)
{
	return w->release == wait_free;
}

static void wait_link(struct bw_conn *c, struct bw_conn_wait *w, uint8_t type, uint16_t id)
{
	w->c = c;
	w->packet_id = id;
	w->type = type;
	w->next = NULL;
	if (!c->waits)
		c->waits_tail = &c->waits;
	*c->waits_tail = w;
	c->waits_tail = &w->next;
}

/*
 * Sends the acknowledgement of the PUBLISH being handled, or, while one
 * before it waits, queues it behind that: acknowledgements go in PUBLISH
 * order ([MQTT-4.6.0-2], [MQTT-4.6.0-3]), refusals and answers to a
 * resend included.
 */
static int ack_in_order(struct bw_conn *c, uint8_t type, uint16_t id, uint8_t code, const char *why)
{
	if (!c->waits)
		return send_ack(c, type, id, code, why);
	struct queued_ack *q = calloc(1, sizeof(*q));
	if (!q)
		return fail(c, BW_RC_UNSPECIFIED, "out of memory");
	q->w.release = wait_free;
	q->w.ready = true;
	q->w.reason = code;
	q->why = why;
	wait_link(c, &q->w, type, id);
	return 0;
}

/* Whether the PUBREC of packet_id has yet to go (so it answers a resend too). */
static bool pubrec_waits(const struct bw_conn *c, uint16_t packet_id)
{
	for (const struct bw_conn_wait *w = c->waits; w; w = w->next) {
		if (w->type == BW_PUBREC && w->packet_id == packet_id)
			return true;
	}
	return false;
}

/*
 * Refuses one PUBLISH without ending the connection where the protocol
 * lets us (5.0 QoS 1/2 get a negative acknowledgement); otherwise it is
 * dropped (3.1.1 has no negative acknowledgement; QoS 0 has none at all).
 */
static int refuse_publish(struct bw_conn *c, const struct bw_publish *pub, uint8_t reason,
                          const char *why)
{
	if (c->version == BW_MQTT_5 && pub->qos > 0)
		return ack_in_order(c, pub->qos == 1 ? BW_PUBACK : BW_PUBREC, pub->packet_id,
		                    reason, why)
		               ? fail(c, BW_RC_UNSPECIFIED, NULL)
		               : 0;
	if (c->version != BW_MQTT_5 && pub->qos > 0)
		return ack_in_order(c, pub->qos == 1 ? BW_PUBACK : BW_PUBREC, pub->packet_id, 0,
		                    NULL);
	return 0;
}

static int on_publish(struct bw_conn *c, struct bw_publish *pub)
{
	const char *why = NULL;
	int reason;

	if (pub->props.sub_id_count)
		return fail(c, BW_RC_PROTOCOL_ERROR, "Subscription Identifier from a client");
	if ((reason = resolve_alias(c, pub, &why)))
		return fail(c, (uint8_t)reason, why);
	if (!topic_within_limits(c, pub->topic.p, pub->topic.len))
		return refuse_publish(c, pub, BW_RC_TOPIC_NAME_INVALID,
		                      "topic too long or too deep");
	if (bw_topic_is_sys(pub->topic.p, pub->topic.len))
		return refuse_publish(c, pub, BW_RC_NOT_AUTHORIZED, "$SYS is the broker's");
	if (pub->props.payload_format == 1 && !bw_utf8_valid(pub->payload.p, pub->payload.len))
		return refuse_publish(c, pub, BW_RC_PAYLOAD_FORMAT_INVALID,
		                      "payload is not UTF-8 as its format says");
	if (c->ops->may_publish &&
	    (reason = c->ops->may_publish(c->ops->ctx, c, pub->topic, pub->qos, pub->retain,
	                                  pub->topic.len + pub->payload.len)) != 0) {
		if (reason < 0)
			return fail(c, (uint8_t)-reason, "over the client's quota");
		return refuse_publish(c, pub, (uint8_t)reason, "not authorized");
	}

	if (pub->qos == 2) {
		int fresh = bw_session_inbound_qos2(c->session, pub->packet_id);
		if (fresh < 0)
			return fail(c, BW_RC_RECEIVE_MAX_EXCEEDED,
			            "too many QoS 2 messages unreleased");
		/* A resend of one already taken: acknowledge again (unless that waits). */
		if (!fresh)
			return pubrec_waits(c, pub->packet_id)
			               ? 0
			               : ack_in_order(c, BW_PUBREC, pub->packet_id, 0, NULL);
	}

	struct bw_msg *m = bw_msg_from_publish(pub, pub->topic, now(c));
	if (!m)
		return fail(c, BW_RC_UNSPECIFIED, "out of memory");
	c->pub_id = pub->packet_id;
	c->pub_ack = pub->qos == 1 ? BW_PUBACK : pub->qos == 2 ? BW_PUBREC : 0;
	c->pub_waits = false;
	c->ops->publish(c->ops->ctx, c, m);
	bw_msg_unref(&m);
	uint8_t type = c->pub_ack;
	c->pub_ack = 0;

	if (c->pub_waits) /* linked: it goes when its message is stored */
		return c->state == BW_CONN_CLOSING ? -EPROTO : 0;
	if (!type)
		return 0;
	return ack_in_order(c, type, pub->packet_id, 0, NULL);
}

void bw_conn_wait_ack(struct bw_conn *c, struct bw_conn_wait *w)
{
	if (!c->pub_ack || c->pub_waits)
		return;
	c->pub_waits = true;
	w->ready = false;
	wait_link(c, w, c->pub_ack, c->pub_id);
}

void bw_conn_wait_done(struct bw_conn_wait *w, uint8_t reason)
{
	struct bw_conn *c = w->c;
	w->ready = true;
	w->reason = reason;
	while ((w = c->waits) != NULL && w->ready) {
		c->waits = w->next;
		w->c = NULL;
		int rc = 0;
		/*
		 * A refused QoS 2 message was not taken: its packet id is free
		 * again (5.0 4.3.3: the client may use it for a new message at
		 * once; 3.1.1 sends the message again after the disconnect),
		 * else it would be answered as a duplicate, and dropped.
		 */
		if (w->type == BW_PUBREC && w->reason >= 0x80 && c->state == BW_CONN_CONNECTED &&
		    !queued(w))
			bw_session_inbound_release(c->session, w->packet_id);
		if (c->state != BW_CONN_CONNECTED)
			; /* ending: nothing more goes out */
		else if (w->reason >= 0x80 && c->version != BW_MQTT_5)
			rc = fail(c, w->reason, "the message could not be stored");
		else
			rc = send_ack(c, w->type, w->packet_id, w->reason,
			              queued(w) ? ((struct queued_ack *)w)->why
			                        : "the message could not be stored");
		w->release(w);
		if (rc && c->state != BW_CONN_CLOSING)
			fail(c, BW_RC_UNSPECIFIED, NULL);
	}
	flush(c);
}

/* ---- acknowledgements ---------------------------------------------------- */

static int on_ack(struct bw_conn *c, uint8_t type, const struct bw_ack *a)
{
	int rc;
	switch (type) {
	case BW_PUBACK:
		bw_session_puback(c->session, a->packet_id); /* an unknown id is ignored */
		break;
	case BW_PUBREC:
		if (a->code >= 0x80) {
			/* The client refused the message: the exchange ends here. */
			bw_session_pubrec(c->session, a->packet_id, now(c));
			bw_session_pubcomp(c->session, a->packet_id);
			break;
		}
		rc = bw_session_pubrec(c->session, a->packet_id, now(c));
		return send_ack(c, BW_PUBREL, a->packet_id, rc ? BW_RC_PACKET_ID_NOT_FOUND : 0,
		                "unknown packet identifier");
	case BW_PUBREL:
		rc = bw_session_inbound_release(c->session, a->packet_id);
		return send_ack(c, BW_PUBCOMP, a->packet_id, rc ? BW_RC_PACKET_ID_NOT_FOUND : 0,
		                "unknown packet identifier");
	case BW_PUBCOMP:
		bw_session_pubcomp(c->session, a->packet_id);
		break;
	}
	flush(c); /* the window has room again */
	return 0;
}

/* ---- SUBSCRIBE and UNSUBSCRIBE ------------------------------------------- */

/*
 * Sends a SUBACK or UNSUBACK carrying codes[0..n), then frees codes unless
 * it is the caller's stack buffer `small`. Returns send_packet()'s result.
 */
static int send_codes(struct bw_conn *c, uint8_t type, uint16_t packet_id, uint8_t *codes,
                      uint32_t n, const uint8_t *small)
{
	struct bw_packet p = { .type = type };
	p.suback.packet_id = packet_id;
	p.suback.codes.p = codes;
	p.suback.codes.len = n;
	int rc = send_packet(c, &p);
	if (codes != small)
		free(codes);
	return rc;
}

static int on_subscribe(struct bw_conn *c, const struct bw_subscribe *s)
{
	uint8_t small[64];
	uint8_t *codes = s->count <= sizeof(small) ? small : malloc(s->count);
	if (!codes)
		return fail(c, BW_RC_UNSPECIFIED, "out of memory");
	uint32_t sub_id = s->props.sub_id_count ? s->props.sub_id : 0;
	uint32_t off = 0, i = 0;
	struct bw_sub_entry e;
	while (bw_codec_next_sub(s, c->version, &off, &e)) {
		int rc = bw_topic_filter_check(e.filter.p, e.filter.len);
		if (rc == 0 && !topic_within_limits(c, e.filter.p, e.filter.len))
			rc = -BW_RC_TOPIC_FILTER_INVALID;
		if (rc == 0)
			rc = c->ops->subscribe(c->ops->ctx, c, &e, sub_id);
		/* 3.1.1 has a single failure code. */
		codes[i++] = rc >= 0 ? (uint8_t)rc : c->version == BW_MQTT_5 ? (uint8_t)-rc : 0x80;
	}
	if (send_codes(c, BW_SUBACK, s->packet_id, codes, i, small))
		return fail(c, BW_RC_UNSPECIFIED, NULL);
	if (c->ops->subscribed)
		c->ops->subscribed(c->ops->ctx, c);
	flush(c); /* retained messages queued by the broker */
	return 0;
}

static int on_unsubscribe(struct bw_conn *c, const struct bw_unsubscribe *u)
{
	uint8_t small[64];
	uint8_t *codes = u->count <= sizeof(small) ? small : malloc(u->count);
	if (!codes)
		return fail(c, BW_RC_UNSPECIFIED, "out of memory");
	uint32_t off = 0, i = 0;
	struct bw_str f;
	while (bw_codec_next_unsub(u, &off, &f)) {
		int rc = bw_topic_filter_check(f.p, f.len);
		if (rc == 0)
			rc = c->ops->unsubscribe(c->ops->ctx, c, f);
		codes[i++] = (uint8_t)-rc;
	}
	if (send_codes(c, BW_UNSUBACK, u->packet_id, codes, i, small))
		return fail(c, BW_RC_UNSPECIFIED, NULL);
	return 0;
}

/* ---- DISCONNECT and the rest --------------------------------------------- */

static int on_disconnect(struct bw_conn *c, const struct bw_disconnect *d)
{
	if (c->version == BW_MQTT_5 && (d->props.has & BW_PROP_BIT(BW_PROP_SESSION_EXPIRY)) &&
	    c->ops->set_expiry) {
		int rc = c->ops->set_expiry(c->ops->ctx, c, d->props.session_expiry);
		if (rc)
			return fail(c, (uint8_t)rc,
			            "Session Expiry Interval set in DISCONNECT after 0 in CONNECT");
	}
	c->state = BW_CONN_CLOSING;
	/* [MQTT-3.1.2-10]: a normal DISCONNECT discards the will; 0x04 keeps it. */
	c->ops->closed(c->ops->ctx, c, d->code == BW_RC_DISCONNECT_WITH_WILL);
	return -EPROTO;
}

/* ---- AUTH: re-authentication (5.0 4.12.1) ------------------------------ */

static int reauth_answer(struct bw_conn *c, int rc)
{
	if (rc)
		return fail(c, (uint8_t)rc, "re-authentication failed");
	struct bw_packet p = { .type = BW_AUTH };
	p.disconnect.code = BW_RC_SUCCESS;
	set_auth_method(c, &p.disconnect.props);
	return send_packet(c, &p) ? fail(c, BW_RC_UNSPECIFIED, NULL) : 0;
}

static int on_auth(struct bw_conn *c, const struct bw_disconnect *a)
{
	/* Only re-authentication: the broker never asks to continue. */
	if (!c->enhanced)
		return fail(c, BW_RC_PROTOCOL_ERROR, "AUTH without enhanced authentication");
	if (a->code != BW_RC_REAUTHENTICATE)
		return fail(c, BW_RC_PROTOCOL_ERROR, "AUTH other than re-authenticate");
	if (!same_method(c, a->props.auth_method))
		return fail(c, BW_RC_PROTOCOL_ERROR, "AUTH with another authentication method");
	if (c->reauthing)
		return fail(c, BW_RC_PROTOCOL_ERROR, "AUTH while a re-authentication is running");
	int rc = c->ops->reauth(c->ops->ctx, c, a->props.auth_data);
	if (rc == -EINPROGRESS) {
		c->reauthing = true;
		return 0;
	}
	return reauth_answer(c, rc);
}

int bw_conn_reauth_done(struct bw_conn *c, int rc)
{
	if (!c->reauthing || c->state != BW_CONN_CONNECTED)
		return -EPROTO;
	c->reauthing = false;
	return reauth_answer(c, rc);
}

static int dispatch(struct bw_conn *c, struct bw_packet *pkt)
{
	if (c->state == BW_CONN_AWAIT_CONNECT) {
		if (pkt->type != BW_CONNECT) {
			/* [MQTT-3.1.0-1]: the first packet must be CONNECT. */
			c->state = BW_CONN_CLOSING;
			return -EPROTO;
		}
		return on_connect(c, &pkt->connect);
	}
	switch (pkt->type) {
	case BW_CONNECT:
		return fail(c, BW_RC_PROTOCOL_ERROR, "second CONNECT");
	case BW_PUBLISH:
		return on_publish(c, &pkt->publish);
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		return on_ack(c, pkt->type, &pkt->ack);
	case BW_SUBSCRIBE:
		return on_subscribe(c, &pkt->subscribe);
	case BW_UNSUBSCRIBE:
		return on_unsubscribe(c, &pkt->unsubscribe);
	case BW_PINGREQ: {
		struct bw_packet p = { .type = BW_PINGRESP };
		return send_packet(c, &p) ? fail(c, BW_RC_UNSPECIFIED, NULL) : 0;
	}
	case BW_DISCONNECT:
		return on_disconnect(c, &pkt->disconnect);
	case BW_AUTH:
		return on_auth(c, &pkt->disconnect);
	default:
		/* CONNACK, SUBACK, UNSUBACK, PINGRESP are the server's to send. */
		return fail(c, BW_RC_PROTOCOL_ERROR, "packet a client may not send");
	}
}

/* ---- input ---------------------------------------------------------------- */

/*
 * Frames and handles the whole packets at the start of buf[0..len).
 * Returns the bytes consumed (>= 0), or -EPROTO/-ENOMEM.
 */
static long handle(struct bw_conn *c, const uint8_t *buf, size_t len, size_t budget)
{
	size_t off = 0;

	while (off < len && off < budget && c->state != BW_CONN_CLOSING && !c->held) {
		struct bw_frame f = { 0 };
		const char *why = NULL;
		int rc = bw_codec_frame(buf + off, len - off, c->max_packet_size, &f, &why);
		if (rc == BW_CODEC_AGAIN)
			break;
		struct bw_packet pkt;
		if (rc == 0)
			rc = bw_codec_decode(buf + off, f.size,
			                     c->state == BW_CONN_AWAIT_CONNECT ? BW_MQTT_5
			                                                       : c->version,
			                     &pkt, &why);
		if (rc < 0) {
			if (c->state == BW_CONN_AWAIT_CONNECT) {
				/* A CONNECT the codec refused: answer in its version when known. */
				if (rc == -BW_RC_UNSUPPORTED_VERSION) {
					c->version = BW_MQTT_311;
					return refuse(c, BW_RC_UNSUPPORTED_VERSION, why);
				}
				/*
				 * 5.0 [MQTT-4.13.1-1]: a 5.0 client is told why. The
				 * level sits after the fixed header and "\0\4MQTT".
				 */
				size_t lv = off + f.header_len + 6;
				if (f.header_len && rc != -BW_RC_PACKET_TOO_LARGE && lv < len &&
				    buf[lv] == BW_MQTT_5) {
					c->version = BW_MQTT_5;
					return refuse(c, (uint8_t)-rc, why);
				}
				c->state = BW_CONN_CLOSING;
				return -EPROTO;
			}
			return fail(c, (uint8_t)-rc, why);
		}
		if (pkt.type == BW_CONNECT && c->state == BW_CONN_AWAIT_CONNECT && !c->pinned &&
		    c->ops->place && pkt.connect.client_id.len > 0 &&
		    pkt.connect.client_id.len <= BW_CLIENT_ID_MAX) {
			int to = c->ops->place(c->ops->ctx, c, &pkt.connect, pkt.connect.client_id);
			if (to >= 0) {
				/* Moves: the CONNECT stays unhandled, and so does the rest. */
				c->move_to = to;
				c->held = true;
				break;
			}
		}
		off += f.size;
		rc = dispatch(c, &pkt);
		if (rc < 0)
			return rc;
	}
	return (long)off;
}

int bw_conn_input(struct bw_conn *c, const uint8_t *data, size_t len)
{
	if (c->state == BW_CONN_CLOSING)
		return -EPROTO;
	c->last_rx_ms = now(c);

	if (c->in_len == 0) {
		long used = handle(c, data, len, SIZE_MAX);
		if (used < 0)
			return (int)used;
		data += used;
		len -= (size_t)used;
		if (len == 0)
			return 0;
	}
	/* A partial packet: keep it, bounded by the largest packet we take. */
	size_t need = c->in_len + len;
	/*
	 * Held input (a CONNECT being decided or moved, a paused publisher)
	 * is bounded too: a client may pipeline, not flood.
	 */
	if (c->held && need > HELD_MAX + 2 * (size_t)c->max_packet_size)
		return fail(c, BW_RC_QUOTA_EXCEEDED, "too much sent before the server answered");
	if (need > (size_t)c->max_packet_size + 5) {
		struct bw_frame f;
		const char *why = NULL;
		const uint8_t *head = c->in_len ? c->in : data;
		size_t hlen = c->in_len ? c->in_len : len;
		if (bw_codec_frame(head, hlen, c->max_packet_size, &f, &why) < 0)
			return fail(c, BW_RC_PACKET_TOO_LARGE, why);
	}
	if (need > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 256;
		while (cap < need)
			cap *= 2;
		uint8_t *n = realloc(c->in, cap);
		if (!n)
			return -ENOMEM;
		c->in = n;
		c->in_cap = (uint32_t)cap;
	}
	if (len)
		memcpy(c->in + c->in_len, data, len);
	c->in_len = (uint32_t)need;
	long used = handle(c, c->in, c->in_len, SIZE_MAX);
	if (used < 0)
		return (int)used;
	memmove(c->in, c->in + used, c->in_len - (size_t)used);
	c->in_len -= (size_t)used;
	if (c->in_len == 0 && c->in_cap > 4096) {
		/* Do not keep a large buffer for an idle connection. */
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return 0;
}

/*
 * How many of len new bytes to append to the partial packet in c->in: what
 * it lacks when its fixed header is whole, else enough to see the header
 * (or all, when what is kept is malformed: bw_conn_input() says so).
 */
static size_t lacking(const struct bw_conn *c, size_t len)
{
	struct bw_frame f;
	const char *why;
	int rc = bw_codec_frame(c->in, c->in_len, c->max_packet_size, &f, &why);
	size_t want = len;

	if (rc == BW_CODEC_AGAIN)
		want = f.size ? f.size - c->in_len : 8;
	return want < len ? want : len;
}

long bw_conn_input_some(struct bw_conn *c, const uint8_t *data, size_t len, size_t budget)
{
	if (c->state == BW_CONN_CLOSING)
		return -EPROTO;
	if (c->in_len > 0 || c->held) {
		/* Held: all of it is kept. Else finish the partial packet only. */
		size_t take = c->held ? len : lacking(c, len);
		int rc = bw_conn_input(c, data, take);
		return rc < 0 ? rc : (long)take;
	}
	c->last_rx_ms = now(c);
	long used = handle(c, data, len, budget ? budget : 1);
	if (used < 0 || (size_t)used == len)
		return used;
	if (c->state == BW_CONN_CLOSING)
		return (long)len; /* what followed a DISCONNECT is never handled */
	if (c->held || (size_t)used < budget) {
		/* Held now, or a packet that goes on in the next buffer: keep it. */
		int rc = bw_conn_input(c, data + used, len - (size_t)used);
		return rc < 0 ? rc : (long)len;
	}
	return used;
}

bool bw_conn_holding(const struct bw_conn *c)
{
	return c->held;
}

uint32_t bw_conn_tenant(const struct bw_conn *c)
{
	return c->tenant;
}

uint8_t bw_conn_end_reason(const struct bw_conn *c)
{
	return c->end_reason;
}

/* ---- deliveries to the client ------------------------------------------- */

/*
 * Encodes one delivery. The message is dropped (not sent) when it expired
 * or is larger than the client's Maximum Packet Size ([MQTT-3.1.2-25]).
 */
/*
 * The alias for a topic we send to the client: *known when the client has
 * it already (send an empty topic), else a free slot to define (send the
 * topic too). 0 when there is none to use. Assigning is first come, first
 * served until the slots run out; the slot is only taken by
 * commit_alias(), once the PUBLISH is queued.
 */
static uint16_t out_alias(struct bw_conn *c, struct bw_str topic, bool *known)
{
	*known = false;
	for (uint16_t i = 0; i < c->out_alias_used; i++) {
		const struct alias *a = &c->out_aliases[i];
		if (a->len == topic.len && !memcmp(a->topic, topic.p, topic.len)) {
			*known = true;
			return (uint16_t)(i + 1);
		}
	}
	return c->out_alias_used < c->out_alias_cap ? (uint16_t)(c->out_alias_used + 1) : 0;
}

static void commit_alias(struct bw_conn *c, struct bw_str topic)
{
	if (!c->out_aliases &&
	    !(c->out_aliases = calloc(c->out_alias_cap, sizeof(*c->out_aliases))))
		return;
	uint8_t *t = malloc(topic.len);
	if (!t)
		return;
	memcpy(t, topic.p, topic.len);
	c->out_aliases[c->out_alias_used].topic = t;
	c->out_aliases[c->out_alias_used].len = topic.len;
	c->out_alias_used++;
}

/*
 * Encodes one delivery. The message is dropped (not sent) when it expired
 * or is larger than the client's Maximum Packet Size ([MQTT-3.1.2-25]).
 * Where the client accepts topic aliases, repeated topics go out as an
 * alias and an empty topic name.
 */
static void send_publish(struct bw_conn *c, const struct bw_delivery *d, uint16_t packet_id,
                         bool dup)
{
	struct bw_props per = { 0 };
	uint32_t remaining;
	bool known = false;
	uint16_t alias = 0;

	if (!bw_msg_remaining_expiry(d->msg, now(c), &remaining))
		return;
	if (c->version == BW_MQTT_5) {
		if (d->msg->expires_at_ms) {
			per.has |= BW_PROP_BIT(BW_PROP_MESSAGE_EXPIRY);
			per.message_expiry = remaining;
		}
		if (d->n_sub_ids) {
			per.sub_ids = d->sub_ids;
			per.sub_id_count = d->n_sub_ids;
		}
		if (c->out_alias_cap && (alias = out_alias(c, d->msg->topic, &known))) {
			per.has |= BW_PROP_BIT(BW_PROP_TOPIC_ALIAS);
			per.topic_alias = alias;
		}
	}
	size_t size = bw_outq_publish_size(d->msg, c->version, d->qos, &per, known);
	if (size > c->client_max_packet)
		return;
	if (bw_outq_push_publish(&c->outq, d->msg, c->version, d->qos, packet_id, dup, d->retain,
	                         &per, known)) {
		fail(c, BW_RC_UNSPECIFIED, "output queue full");
		return;
	}
	if (alias && !known)
		commit_alias(c, d->msg->topic);
}

/* Sends what the session's window allows, stopping above the soft limit. */
static void flush(struct bw_conn *c)
{
	struct bw_delivery d;
	const struct bw_inflight *f;

	while (c->state == BW_CONN_CONNECTED && !bw_outq_over_soft(&c->outq) &&
	       bw_session_next(c->session, now(c), &d, &f)) {
		send_publish(c, &d, f ? f->packet_id : 0, false);
		if (!f)
			bw_msg_unref(&d.msg);
	}
}

/* On reconnect: PUBLISH again with DUP what was not acknowledged, PUBREL
 * what was received ([MQTT-4.4.0-1]). */
static void resend_inflight(struct bw_conn *c)
{
	uint32_t cursor = 0;
	const struct bw_inflight *f;

	while ((f = bw_session_inflight_at(c->session, &cursor))) {
		if (f->state == BW_INFLIGHT_RELEASED)
			send_ack(c, BW_PUBREL, f->packet_id, 0, NULL);
		else
			send_publish(c, &f->d, f->packet_id, true);
	}
}

int bw_conn_deliver(struct bw_conn *c, const struct bw_delivery *d)
{
	int rc = bw_session_enqueue(c->session, d);
	if (rc)
		return rc;
	flush(c);
	return 0;
}

void bw_conn_hold(struct bw_conn *c)
{
	c->held = true;
}

int bw_conn_release(struct bw_conn *c)
{
	if (c->move_to >= 0 || c->connecting)
		return 0; /* held until the worker moves it, or the CONNECT is decided */
	c->held = false;
	if (c->in_len == 0 || c->state == BW_CONN_CLOSING)
		return 0;
	return bw_conn_input(c, NULL, 0);
}

int bw_conn_connect_done(struct bw_conn *c, int rc)
{
	if (!c->connecting || c->state != BW_CONN_AWAIT_CONNECT)
		return -EPROTO; /* closed meanwhile */
	c->connecting = false;
	c->held = false;
	int r = connect_finish(c, rc);
	if (r < 0)
		return r;
	/* What the client sent after its CONNECT, in order. */
	return c->in_len ? bw_conn_input(c, NULL, 0) : 0;
}

int bw_conn_moving(const struct bw_conn *c)
{
	return c->move_to;
}

void bw_conn_take_input(struct bw_conn *c, uint8_t **data, size_t *len)
{
	*data = c->in;
	*len = c->in_len;
	c->in = NULL;
	c->in_len = c->in_cap = 0;
}

void bw_conn_pin(struct bw_conn *c)
{
	c->pinned = true;
}

void bw_conn_touch(struct bw_conn *c)
{
	c->last_rx_ms = now(c);
}

void bw_conn_resume(struct bw_conn *c)
{
	flush(c);
}

void bw_conn_kick(struct bw_conn *c, uint8_t reason)
{
	/* The reason's name as Reason String: a client that reads a reason
	 * code only from a longer DISCONNECT (paho 1.6) still sees it. */
	if (c->state != BW_CONN_CLOSING)
		fail(c, reason, bw_reason_name(reason));
}
