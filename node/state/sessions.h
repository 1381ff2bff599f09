/*
 * Persistent sessions in Redis, the store layer: a worker's calls on its
 * own Redis client (node/state/redis.h, on the worker's ring), each one
 * EVAL of a Lua script, so each is atomic and costs one round trip. The
 * layout, every script and the rules below are written down in
 * docs/state-layout.md; node/state/keys.h names the keys. The broker
 * (node/core/broker.c) calls it for every session of a node with `redis`.
 *
 * A session of (tenant, client id) is three keys in the tenant's hash slot:
 * a hash (owner node, fencing token, the last queue sequence number and the
 * StoredSession record without messages), a sorted set of the entries not
 * yet sent (the queue) and one of the entries sent and not yet acknowledged
 * (inflight), both scored by sequence number. Besides, one counter a tenant
 * hands out fencing tokens.
 *
 * Ownership and fencing. bw_sessions_claim() makes this node the session's
 * owner with a new token (the tenant's counter, INCR: it only rises, even
 * across a session deleted and made again), and answers the previous owner
 * and, unless clean_start, everything the session holds. Every other call
 * carries the caller's token, and its script does nothing but answer
 * FENCED (-ESTALE to the caller) unless the hash holds that very token: so
 * once another node claimed the session, or it was dropped or expired, a
 * late write of the old owner changes nothing. A claim that took the
 * session from another node publishes a takeover note on PREFIX:sessions
 * (keys.h) so that node lets its connection go.
 *
 * Entries. A queued or inflight message is stored as a sequence number
 * (chosen by the owner: above every one the session had, see
 * bw_sessions_claim's last_seq), a packet id and state once sent, and the
 * StoredMessage, in the entry encoding below. The queue is bounded by the
 * caller's max (the tenant's quota): past it a push drops the oldest queued
 * entries (counted and answered) or is refused (-ENOBUFS). Inflight entries
 * are bounded by the window, not by max, as in node/core/session.h.
 *
 * Calls batch. While Redis keeps up each call is sent at once; once
 * several requests wait for their answers, the pushes, acks and marks of
 * one session that follow each other wait too, and go as one EVAL of up
 * to 64 of them in order (the BATCH script), each still answered on its
 * own: so a session fed faster than one round trip a message costs Redis
 * one script a batch, not one a message. An ack whose push is still
 * waiting (among the next few unsent calls) takes it out: the message was
 * delivered and acknowledged before Redis needed it; both are answered as
 * done, from the next answer or tick.
 *
 * Writes are held. Every call but a claim is kept, in call order, until
 * Redis answers it: sent at once while the client is up, pipelined, and
 * sent again (still in order) when the connection dropped before the
 * answer, once the client is up again (bw_sessions_tick()). A push sent
 * again whose first send was made answers BADSEQ: it counts as done. At
 * most held_max calls are held, sent or not; past it a call is refused
 * with -EAGAIN, and that is the broker's sign that Redis has been away too
 * long for new persistent work. A claim needs its answer to go on, so it
 * is never held: -ENOTCONN while the client is down.
 *
 * Threads: everything but bw_sessions_stats() belongs to the thread of the
 * Redis client's ring. Callbacks: if a call returns an error its callback
 * is never called; if it returns 0 the callback is called exactly once,
 * never from inside the call (a held write's, with -ECANCELED, at
 * bw_sessions_free() at the latest).
 */
#ifndef BW_STATE_SESSIONS_H
#define BW_STATE_SESSIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/state/keys.h"
#include "node/state/redis.h"
#include "proto/records.pb-c.h"

struct bw_sessions;

/* A session expiry interval that never expires (MQTT 5.0 3.1.2.11.2). */
#define BW_SESSIONS_EXPIRY_NEVER 0xFFFFFFFFu
/*
 * A released session's keys live this much longer than its expiry, so the
 * owner's own timer (will delay, expiry) runs before Redis forgets it.
 */
#define BW_SESSIONS_TTL_MARGIN_MS 60000u
/* Sequence numbers are sorted set scores, doubles: exact up to 2^53. */
#define BW_SESSIONS_SEQ_MAX (UINT64_C(1) << 53)

/*
 * The entry encoding, a fixed head the scripts rewrite without parsing
 * protobuf, then the message:
 *
 *   0       1 byte    format, 1 (a newer one: -EPROTONOSUPPORT)
 *   1..8    8 bytes   sequence number, big-endian, 1..BW_SESSIONS_SEQ_MAX
 *   9..10   2 bytes   packet id, big-endian: 0 while queued, else 1..65535
 *   11      1 byte    state, enum bw_sessions_state
 *   12..19  8 bytes   sent_at_ms, big-endian, wall clock; 0 none
 *   20..    the StoredMessage record (version 1, the session's tenant),
 *           with the qos and retain it is delivered with and the
 *           subscription identifiers it matched
 */
#define BW_SESSIONS_ENTRY_FORMAT 1
#define BW_SESSIONS_HEAD_LEN     20

/* An entry's state; the sent ones are StoredInflight's numbers. */
enum bw_sessions_state {
	BW_SESSIONS_QUEUED = 0,          /* not sent: in the queue */
	BW_SESSIONS_PUBLISH_SENT = 1,    /* QoS 1/2 PUBLISH sent, awaiting PUBACK/PUBREC */
	BW_SESSIONS_PUBREC_RECEIVED = 2, /* QoS 2 PUBREL sent, awaiting PUBCOMP */
};

/* What a push does when the queue holds max entries already. */
enum bw_sessions_policy {
	BW_SESSIONS_DROP_OLDEST, /* drop the oldest queued entries, counted */
	BW_SESSIONS_REFUSE_NEW,  /* refuse the new one: -ENOBUFS */
};

/* An entry's head. */
struct bw_sessions_head {
	uint64_t seq;
	uint16_t packet_id;
	uint8_t state; /* enum bw_sessions_state */
	uint64_t sent_at_ms;
};

/* An entry: its head and its message (a decoded entry owns msg). */
struct bw_sessions_entry {
	struct bw_sessions_head h;
	StoredMessage *msg;
};

/* A session's name. The id is any MQTT UTF-8 string of 1..65535 bytes. */
struct bw_sessions_key {
	const char *tenant;
	const uint8_t *id;
	size_t id_len;
};

/* ---- pure: encodings, requests, replies (no Redis; tests use them directly) ------- */

/*
 * 0 when h is a valid head: seq 1..BW_SESSIONS_SEQ_MAX; queued with packet
 * id 0, or sent with packet id 1..65535. Else -EINVAL.
 */
int bw_sessions_head_check(const struct bw_sessions_head *h);

/* h (checked by the caller) into out, BW_SESSIONS_HEAD_LEN bytes. */
void bw_sessions_head_pack(const struct bw_sessions_head *h, uint8_t *out);

/*
 * The entry of h and msg: 0 with *out a malloc()ed buffer of *len bytes
 * the caller frees; -EINVAL (a bad head, a message the record rules
 * refuse, qos 0 sent, qos 1 in PUBREC_RECEIVED), -EMSGSIZE, -ENOMEM. msg
 * gets its version stamped, nothing else changes.
 */
int bw_sessions_entry_encode(const struct bw_sessions_head *h, StoredMessage *msg, uint8_t **out,
                             size_t *len);

/*
 * Decodes and checks an entry of tenant's session from buf[0..len): the
 * head's rules, the message's (bw_record_message_decode()), its tenant and
 * the qos its state needs. 0 with out filled (free with
 * bw_sessions_entry_fini()); else out->msg is NULL and the result is
 * -EBADMSG (shorter than a head, or the message not protobuf),
 * -EPROTONOSUPPORT, -EMSGSIZE, -EINVAL or -ENOMEM.
 */
int bw_sessions_entry_decode(const uint8_t *buf, size_t len, const char *tenant,
                             struct bw_sessions_entry *out);

/* Frees a decoded entry's message; NULLs it. */
void bw_sessions_entry_fini(struct bw_sessions_entry *e);

/*
 * The session record as it is stored: rec without owner_node and
 * fencing_token (the hash's fields hold them; rec is not changed but for
 * its version). It may hold incoming inflight entries (the unreleased QoS 2
 * packet ids) but no offline queue and no outgoing inflight entries, which
 * are entries of their own (-EINVAL). Else as bw_record_session_encode().
 */
int bw_sessions_record_encode(StoredSession *rec, uint8_t **out, size_t *len);

/*
 * A stored record of session k, checked: bw_record_session_decode(), its
 * tenant and client id k's, no offline queue and no outgoing inflight
 * entries (-EINVAL). As bw_record_session_decode() otherwise.
 */
int bw_sessions_record_decode(const uint8_t *buf, size_t len, const struct bw_sessions_key *k,
                              StoredSession **out);

/*
 * What a session's keys live for once released with expiry_s: 0 (delete
 * them now) for 0, -1 (no TTL) for BW_SESSIONS_EXPIRY_NEVER, else the
 * expiry in ms plus BW_SESSIONS_TTL_MARGIN_MS.
 */
int64_t bw_sessions_ttl_ms(uint32_t expiry_s);

/*
 * A Redis error reply's text str[0..len) as a result: -ESTALE for FENCED,
 * -ENOBUFS for FULL (a refused push), -EINVAL for BADSEQ (a push whose
 * sequence number is not above the last), -EIO for any other.
 */
int bw_sessions_reply_error(const char *str, size_t len);

/* The most arguments a request has. */
#define BW_SESSIONS_ARGV_MAX 14

/*
 * One EVAL, ready for bw_redis_cmd(): argc strings argv of lens bytes.
 * The builders fill it; bw_sessions_req_fini() frees what it holds.
 */
struct bw_sessions_req {
	int argc;
	const char *argv[BW_SESSIONS_ARGV_MAX];
	size_t lens[BW_SESSIONS_ARGV_MAX];
	char *keys;     /* the keys' bytes, one allocation */
	uint8_t *value; /* an encoded record or entry */
	uint8_t head[BW_SESSIONS_HEAD_LEN];
	char num[4][24]; /* decimal arguments */
};

void bw_sessions_req_fini(struct bw_sessions_req *q);

/*
 * The builders: 0, or -EINVAL (a bad prefix, node, key, token 0, head or
 * record; what the encoders refuse), -EMSGSIZE, -ENOMEM; q needs
 * bw_sessions_req_fini() either way. node is BW_KEYS_NODE_LEN hex digits.
 * They mean what the calls of the same name below do.
 */
int bw_sessions_req_claim(struct bw_sessions_req *q, const char *prefix, const char *node,
                          const struct bw_sessions_key *k, bool clean_start);
int bw_sessions_req_save(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token, StoredSession *rec);
int bw_sessions_req_push(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token,
                         const struct bw_sessions_head *h, StoredMessage *msg, uint32_t max,
                         enum bw_sessions_policy policy);
int bw_sessions_req_ack(struct bw_sessions_req *q, const char *prefix,
                        const struct bw_sessions_key *k, uint64_t token, uint64_t seq);
int bw_sessions_req_mark(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token,
                         const struct bw_sessions_head *h);
int bw_sessions_req_release(struct bw_sessions_req *q, const char *prefix,
                            const struct bw_sessions_key *k, uint64_t token, uint32_t expiry_s,
                            StoredSession *rec);
int bw_sessions_req_drop(struct bw_sessions_req *q, const char *prefix, const char *node,
                         const struct bw_sessions_key *k, uint64_t token);

/* What a claim found. */
struct bw_sessions_claim {
	uint64_t token;                        /* this node's: every later call passes it */
	char prev_owner[BW_KEYS_NODE_LEN + 1]; /* "" when none (or not a node id) */
	bool existed;                          /* the session was there (before clean_start) */
	StoredSession *record;                 /* NULL: none (new, clean_start, never saved) */
	uint64_t last_seq;                     /* the next push's seq must be above it */
	struct bw_sessions_entry *inflight;    /* sent, by seq: PUBLISH or PUBREL again */
	size_t n_inflight;
	struct bw_sessions_entry *queue; /* not sent, by seq */
	size_t n_queue;
	size_t n_bad; /* entries the decoder refused: skipped */
};

/*
 * Reads a claim's reply r of session k into a new *out for the caller (free
 * with bw_sessions_claim_free()). 0; or, when the reply is a claim (*out
 * set, with its token and previous owner, no record and no entries) but
 * its record is refused, the record's decode error; or, with *out NULL,
 * bw_sessions_reply_error() of an error reply, -EPROTO for a reply that is
 * not a claim's, -ENOMEM. An entry that is refused, in the wrong set or
 * with a packet id another inflight entry has is skipped and counted.
 */
int bw_sessions_claim_parse(const redisReply *r, const struct bw_sessions_key *k,
                            struct bw_sessions_claim **out);

/* Frees a claim and everything it holds; NULLs *cp. */
void bw_sessions_claim_free(struct bw_sessions_claim **cp);

/* ---- the calls, on a worker's Redis client ------------------------------------- */

/* Calls held when the config says 0. */
#define BW_SESSIONS_HELD_DEFAULT 100000u

struct bw_sessions_config {
	const char *prefix; /* of the keys; copied */
	const char *node;   /* this node's id, BW_KEYS_NODE_LEN hex digits; copied */
	uint32_t held_max;  /* calls held, sent or not (0: BW_SESSIONS_HELD_DEFAULT) */
};

/* Counters for metrics: written by the owner's thread, read by any. */
struct bw_sessions_stats {
	_Atomic uint64_t requests;  /* calls sent */
	_Atomic uint64_t failed;    /* answered with an error other than those below */
	_Atomic uint64_t fenced;    /* refused: not the owner (-ESTALE) */
	_Atomic uint64_t claims;    /* claims answered */
	_Atomic uint64_t takeovers; /* of those, from another node */
	_Atomic uint64_t dropped;   /* queued entries dropped by drop_oldest */
	_Atomic uint64_t refused;   /* pushes refused by refuse_new (-ENOBUFS) */
	_Atomic uint64_t bad;       /* records and entries the decoder refused */
	_Atomic uint64_t held;      /* calls held now, sent or waiting (a gauge) */
	_Atomic uint64_t overflow;  /* calls refused past held_max (-EAGAIN) */
	_Atomic uint64_t batched;   /* calls sent in a batch of several (one EVAL) */
	_Atomic uint64_t elided;    /* pushes acknowledged before they were sent: neither went */
};

/*
 * A call's end: rc 0 and what it answers in value (below), or rc < 0:
 * -ESTALE (fenced: this node is not the owner, nothing was written),
 * -ENOBUFS (a refused push), -EINVAL (a push's seq not above the last),
 * -ETIMEDOUT or -ECONNRESET (a claim's: no answer), -ECANCELED (a write
 * still held when the store was freed), -EIO (another error reply),
 * -EPROTO (a reply of the wrong shape).
 */
typedef void (*bw_sessions_cb)(void *arg, int rc, uint64_t value);

/*
 * A claim's end: rc and c as bw_sessions_claim_parse() leaves them, or rc
 * as for bw_sessions_cb with c NULL. The callback owns c.
 */
typedef void (*bw_sessions_claim_cb)(void *arg, int rc, struct bw_sessions_claim *c);

/* 0 and *out, -EINVAL for a bad prefix or node, -ENOMEM. */
int bw_sessions_new(struct bw_sessions **out, const struct bw_sessions_config *cfg);

/*
 * Told of every write Redis fenced (-ESTALE): the session k is no longer
 * this node's, or not with token. Called before the write's own callback.
 */
typedef void (*bw_sessions_fenced_cb)(void *arg, const struct bw_sessions_key *k, uint64_t token);
void bw_sessions_on_fenced(struct bw_sessions *s, bw_sessions_fenced_cb fn, void *arg);

/*
 * The client calls go through (borrowed: it must outlive its use here;
 * NULL: none, claims refused with -ENOTCONN, writes held). Freeing the
 * client ends the calls on it: a claim's callback gets -ECONNRESET, a
 * write is held to go again.
 */
void bw_sessions_attach(struct bw_sessions *s, struct bw_redis *r);

/*
 * Frees s, calling back each write still held with -ECANCELED; NULLs *sp.
 * None may be on a connection: free (or detach) the client first.
 */
void bw_sessions_free(struct bw_sessions **sp);

/* From the worker's tick: sends the held writes again once the client is up. */
void bw_sessions_tick(struct bw_sessions *s);

/* Calls held, sent or waiting. */
size_t bw_sessions_held(const struct bw_sessions *s);

/*
 * Redis is up but behind: more than BW_SESSIONS_BUSY calls held. The
 * broker holds its publishers back meanwhile (session_durability async
 * would otherwise outrun Redis until held_max). While Redis is down it
 * says no: publishers to clean sessions must go on.
 */
#define BW_SESSIONS_BUSY 4096u
bool bw_sessions_busy(const struct bw_sessions *s);

const struct bw_sessions_stats *bw_sessions_stats(const struct bw_sessions *s);

/*
 * Every call returns 0 (its callback will run; cb may be NULL for writes)
 * or, without calling back, -ENOTCONN (a claim while the client is down),
 * -EAGAIN (held_max calls held), the builders' errors.
 *
 * claim: makes this node the owner of session k with a new token, taking
 * the TTLs off its keys (the session is live). clean_start deletes what
 * the session held first, in the same script. Publishes a takeover note
 * when another node owned it.
 */
int bw_sessions_claim(struct bw_sessions *s, const struct bw_sessions_key *k, bool clean_start,
                      bw_sessions_claim_cb cb, void *arg);

/* save: writes rec (subscriptions, will, expiry, next packet id, inbound QoS 2 ids). */
int bw_sessions_save(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     StoredSession *rec, bw_sessions_cb cb, void *arg);

/*
 * push: adds the entry (h, msg) with h->seq above every earlier one; a
 * queued head goes to the queue, bounded by max (at least 1) by policy, a
 * sent one (a message delivered at once) straight to the inflight set.
 * Answers how many queued entries it dropped.
 */
int bw_sessions_push(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     const struct bw_sessions_head *h, StoredMessage *msg, uint32_t max,
                     enum bw_sessions_policy policy, bw_sessions_cb cb, void *arg);

/*
 * ack: removes the entry of seq (PUBACK, PUBCOMP, a QoS 0 message sent).
 * Answers 1, or 0 when there was none (dropped, or acknowledged before).
 */
int bw_sessions_ack(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                    uint64_t seq, bw_sessions_cb cb, void *arg);

/*
 * mark: the entry of h->seq was sent (PUBLISH_SENT with its packet id) or
 * PUBREC'd (PUBREC_RECEIVED): its head becomes h and it moves to the
 * inflight set. Answers 1, or 0 when there was no such entry.
 */
int bw_sessions_mark(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     const struct bw_sessions_head *h, bw_sessions_cb cb, void *arg);

/*
 * release: the client went. Every key of the session gets the TTL of
 * bw_sessions_ttl_ms(expiry_s) (0: they are deleted, as for a clean
 * session), rec (NULL: kept) is written with it (the will, expires_at_ms,
 * last_seen_ms), and this node stays the owner: it keeps the session
 * offline and may push to it until it expires or another node claims it.
 * Answers 1, or 0 when it deleted the session.
 */
int bw_sessions_release(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                        uint32_t expiry_s, StoredSession *rec, bw_sessions_cb cb, void *arg);

/*
 * touch: every key of the session gets the TTL of bw_sessions_ttl_ms(
 * expiry_s) (above 0: -EINVAL for 0), the record and the owner stay: the
 * owner's lease on a live session, so that the keys of a node that dies
 * with its clients connected still expire. Answers 1.
 */
int bw_sessions_touch(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                      uint32_t expiry_s, bw_sessions_cb cb, void *arg);

/*
 * drop: deletes session k: with token 0 whoever owns it (bulwarkctl kick
 * --discard, a tenant deleted), else only if token is the owner's. When
 * another node owned it a takeover note (with a new token) tells it to let
 * the session go. Answers 1, or 0 when there was no session.
 */
int bw_sessions_drop(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     bw_sessions_cb cb, void *arg);

#endif
