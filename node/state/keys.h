/*
 * The Redis key layout of the state store, in one place (written down in
 * docs/state-layout.md): every key starts with the node's redis_prefix and
 * holds its tenant in a hash tag, {tenant}, so Redis Cluster keeps a
 * tenant's keys in one slot and shards tenants across the cluster.
 *
 *   PREFIX:{TENANT}:retained   a hash: topic name -> StoredMessage bytes
 *   PREFIX:retained            the pub/sub channel of retained changes
 *   PREFIX:{TENANT}:session:ID   a persistent session: a hash (owner, token,
 *                                seq, record), node/state/sessions.h
 *   PREFIX:{TENANT}:queue:ID     its messages not yet sent: a sorted set
 *   PREFIX:{TENANT}:inflight:ID  its messages sent, not yet acknowledged
 *   PREFIX:{TENANT}:epoch        the tenant's fencing token counter
 *   PREFIX:sessions              the pub/sub channel of session takeovers
 *
 * A change is announced with a note naming the node that made it, the
 * tenant and the topic ("NODE TENANT TOPIC", one space between; the topic
 * is the rest, so it may hold spaces). A note carries no value: the
 * receiver reads the hash, which is never older than the note.
 *
 * Prefixes are 1..BW_KEYS_PREFIX_MAX bytes of A-Z, a-z, 0-9, '_', '.' and
 * '-'; tenants are DNS labels (tenancy/tenant.h). Neither holds ':', '{',
 * '}', a space or a glob character, so a key names its tenant without
 * ambiguity and the SCAN pattern needs no escaping.
 *
 * Client ids (ID above) are any MQTT UTF-8 string of 1..65535 bytes, so
 * they may hold ':', '{', '}', spaces and glob characters. They are written
 * as they are, last in the key: Redis keys are binary-safe, the fixed part
 * before the id tells the kinds apart, and Redis Cluster takes the hash tag
 * from the first '{' to the first '}' after it, which are the tenant's
 * (neither prefix nor tenant holds a brace), so an id's braces never move
 * a session to another slot. A client id is never put in a SCAN pattern.
 */
#ifndef BW_STATE_KEYS_H
#define BW_STATE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "tenancy/tenant.h"

#define BW_KEYS_PREFIX_MAX 64
#define BW_KEYS_NODE_LEN   32 /* a node id: 128 bits in lower-case hex */
/* The longest key or channel name, its NUL included. */
#define BW_KEYS_MAX (BW_KEYS_PREFIX_MAX + BW_TENANT_NAME_MAX + 32)

/* 0 when prefix is a valid key prefix, else -EINVAL. */
int bw_keys_prefix_check(const char *prefix);

/*
 * The retained hash of tenant, "PREFIX:{TENANT}:retained", into buf
 * (BW_KEYS_MAX bytes are enough). Returns its length, or -EINVAL for a
 * bad prefix or tenant, -ENAMETOOLONG when cap is too small.
 */
int bw_keys_retained(char *buf, size_t cap, const char *prefix, const char *tenant);

/* The SCAN MATCH pattern of every tenant's retained hash, "PREFIX:{*}:retained". */
int bw_keys_retained_match(char *buf, size_t cap, const char *prefix);

/*
 * The tenant of a retained hash's name key[0..len) (a SCAN answer), into
 * tenant (NUL-terminated; BW_TENANT_NAME_MAX + 1 bytes are enough). 0, or
 * -EINVAL when key is not PREFIX:{TENANT}:retained with a valid tenant.
 */
int bw_keys_retained_tenant(const char *key, size_t len, const char *prefix, char *tenant,
                            size_t cap);

/* The channel retained changes are announced on, "PREFIX:retained". */
int bw_keys_retained_channel(char *buf, size_t cap, const char *prefix);

/*
 * The note announcing a change of topic (len bytes, 1..65535) of tenant by
 * node (BW_KEYS_NODE_LEN hex digits): a malloc()ed buffer of *out_len
 * bytes, not NUL-terminated, that the caller frees; NULL with errno
 * EINVAL (a bad node, tenant or topic length) or ENOMEM.
 */
char *bw_keys_note(const char *node, const char *tenant, const uint8_t *topic, size_t len,
                   size_t *out_len);

/* A note read back: views into the note's bytes. */
struct bw_keys_note {
	const char *node; /* BW_KEYS_NODE_LEN bytes */
	const char *tenant;
	size_t tenant_len;
	const uint8_t *topic;
	size_t topic_len;
};

/*
 * Splits a received note p[0..len) into out. 0, or -EINVAL when it is not
 * a note (the topic is not checked as a topic name here: the caller reads
 * it from the hash, whose records are checked).
 */
int bw_keys_note_parse(const void *p, size_t len, struct bw_keys_note *out);

/* ---- persistent sessions --------------------------------------------------------- */

#define BW_KEYS_CLIENT_ID_MAX 65535u
/* The longest session key, its NUL included. */
#define BW_KEYS_SESSION_MAX (BW_KEYS_MAX + BW_KEYS_CLIENT_ID_MAX)

/* The keys of one session. */
enum bw_keys_session_kind {
	BW_KEYS_SESSION,  /* "session": the hash (owner, token, seq, record) */
	BW_KEYS_QUEUE,    /* "queue": entries waiting to be sent */
	BW_KEYS_INFLIGHT, /* "inflight": entries sent, not yet acknowledged */
};

/*
 * The key of kind of the session of client id id[0..len) of tenant,
 * "PREFIX:{TENANT}:KIND:ID", NUL-terminated into buf (BW_KEYS_SESSION_MAX
 * bytes are enough). Returns its length; -EINVAL for a bad prefix or
 * tenant or an id that is not 1..65535 bytes of MQTT UTF-8 (so never one
 * with a NUL); -ENAMETOOLONG when cap is too small.
 */
int bw_keys_session(char *buf, size_t cap, const char *prefix, const char *tenant,
                    enum bw_keys_session_kind kind, const uint8_t *id, size_t len);

/* The tenant's fencing token counter, "PREFIX:{TENANT}:epoch". */
int bw_keys_session_epoch(char *buf, size_t cap, const char *prefix, const char *tenant);

/* The SCAN MATCH pattern of a tenant's session hashes, "PREFIX:{TENANT}:session:*". */
int bw_keys_session_match(char *buf, size_t cap, const char *prefix, const char *tenant);

/*
 * The client id of a session hash's name key[0..len) of tenant (a SCAN
 * answer): *id points into key, *id_len bytes. 0, or -EINVAL when key is
 * not PREFIX:{TENANT}:session:ID with a valid id.
 */
int bw_keys_session_client(const char *key, size_t len, const char *prefix, const char *tenant,
                           const uint8_t **id, size_t *id_len);

/* The channel session takeovers are announced on, "PREFIX:sessions". */
int bw_keys_sessions_channel(char *buf, size_t cap, const char *prefix);

/*
 * A takeover note, "NODE TENANT TOKEN ID" (one space between; the id is the
 * rest, so it may hold spaces), published by the claim script when a
 * session had another owner, and by a drop: NODE took (or dropped) the
 * session of ID at TOKEN, so any other node holding it with a lower token
 * lets it go. Views into the note's bytes.
 */
struct bw_keys_takeover {
	const char *node; /* BW_KEYS_NODE_LEN bytes */
	const char *tenant;
	size_t tenant_len;
	uint64_t token;
	const uint8_t *id;
	size_t id_len;
};

/*
 * Splits a received takeover note p[0..len) into out. 0, or -EINVAL when
 * it is not one (a bad node, tenant or token, an empty id or one of more
 * than 65535 bytes; the id is not checked as UTF-8 here).
 */
int bw_keys_takeover_parse(const void *p, size_t len, struct bw_keys_takeover *out);

#endif
