/*
 * Persistent sessions in Redis (see sessions.h): the Lua scripts, the entry
 * encoding, the requests that carry them and the replies, then the calls on
 * a worker's client.
 *
 * Every call is one EVAL of the script's text. EVALSHA would send less, but
 * its NOSCRIPT answer (a Redis restarted, a failover) would have to be
 * retried with EVAL after the calls pipelined behind it had run: a push
 * could then land after the ack of its own entry. Redis caches the compiled
 * script by its text, so EVAL costs bytes on the socket, not compiles.
 */
#include "node/state/sessions.h"

#include "cluster/store/record.h"
#include "tenancy/tenant.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scripts ---------------------------------------------------------------------- */

/*
 * Every script but the claim's starts here: KEYS[1] the session hash,
 * ARGV[1] the caller's token. A hash that is gone (dropped, expired) has no
 * token, so it fences too.
 */
#define FENCE                                                                                      \
	"if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then "                                 \
	"return redis.error_reply('FENCED not the owner of the session') end "

/*
 * The key in the script's local `dest`, which it may have just made, gets
 * the hash's TTL if the hash has one: the owner keeps writing to a released
 * (offline) session, and its keys must go together.
 */
#define KEEP_TTL                                                                                   \
	"local ttl = redis.call('PTTL', KEYS[1]) "                                                 \
	"if ttl > 0 then redis.call('PEXPIRE', dest, ttl) end "

/*
 * KEYS: session, queue, inflight, epoch. ARGV: node, clean start ('1'),
 * channel, tenant, client id. Answers {token, previous owner or '', existed
 * (0/1), record or '', last seq, inflight entries, queued entries}. A hash
 * that is gone takes whatever its sets still hold with it (their TTLs may
 * end a moment after its own).
 */
static const char CLAIM[] =
        "local tok = redis.call('INCR', KEYS[4]) "
        "local t = string.format('%d', tok) "
        "local prev = redis.call('HGET', KEYS[1], 'owner') or '' "
        "local existed = redis.call('EXISTS', KEYS[1]) "
        "local rec, seq, inflight, queue = '', '0', {}, {} "
        "if ARGV[2] == '1' or existed == 0 then "
        "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) "
        "else "
        "rec = redis.call('HGET', KEYS[1], 'record') or '' "
        "seq = redis.call('HGET', KEYS[1], 'seq') or '0' "
        "inflight = redis.call('ZRANGE', KEYS[3], 0, -1) "
        "queue = redis.call('ZRANGE', KEYS[2], 0, -1) "
        "for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end "
        "end "
        "redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', t) "
        "if prev ~= '' and prev ~= ARGV[1] then "
        "redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. ARGV[4] .. ' ' .. t .. ' ' .. ARGV[5]) "
        "end "
        "return {tok, prev, existed, rec, seq, inflight, queue}";

/* KEYS: session, queue, inflight. ARGV: token, record. */
static const char SAVE[] = FENCE "redis.call('HSET', KEYS[1], 'record', ARGV[2]) return 1";

/*
 * KEYS: session, queue, inflight. ARGV: token, seq, entry, max, policy
 * ('d' drop oldest, 'r' refuse new), set ('q' queue, 'i' inflight).
 * Answers how many queued entries it dropped.
 */
static const char PUSH[] =
        FENCE "if tonumber(ARGV[2]) <= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then "
              "return redis.error_reply('BADSEQ sequence number not above the last') end "
              "local dest, dropped = KEYS[2], 0 "
              "if ARGV[6] == 'i' then dest = KEYS[3] else "
              "local n, max = redis.call('ZCARD', KEYS[2]), tonumber(ARGV[4]) "
              "if n >= max then "
              "if ARGV[5] ~= 'd' then return redis.error_reply('FULL session queue full') end "
              "dropped = n - max + 1 "
              "redis.call('ZPOPMIN', KEYS[2], dropped) "
              "end "
              "end "
              "redis.call('HSET', KEYS[1], 'seq', ARGV[2]) "
              "redis.call('ZADD', dest, ARGV[2], ARGV[3]) " KEEP_TTL "return dropped";

/* KEYS: session, queue, inflight. ARGV: token, seq. Answers 1, or 0 for none. */
static const char ACK[] =
        FENCE "local n = redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[2]) "
              "if n == 0 then n = redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2]) end "
              "return n";

/*
 * KEYS: session, queue, inflight. ARGV: token, seq, new head. The entry's
 * head is replaced (its format and seq must be the new head's) and it
 * moves to the inflight set. Answers 1, or 0 for none.
 */
static const char MARK[] = FENCE
        "local from = KEYS[3] "
        "local e = redis.call('ZRANGEBYSCORE', from, ARGV[2], ARGV[2]) "
        "if #e == 0 then from = KEYS[2] "
        "e = redis.call('ZRANGEBYSCORE', from, ARGV[2], ARGV[2]) end "
        "if #e == 0 then return 0 end "
        "local h = ARGV[3] "
        "if string.sub(e[1], 1, 9) ~= string.sub(h, 1, 9) then "
        "return redis.error_reply('BADSEQ entry head of another sequence number') end "
        "redis.call('ZREM', from, e[1]) "
        "local dest = KEYS[3] "
        "redis.call('ZADD', dest, ARGV[2], h .. string.sub(e[1], #h + 1)) " KEEP_TTL "return 1";

/*
 * Pushes, acks and marks of one session, in order, in one script: what
 * several calls held for one session become once Redis is behind (see
 * pump()). KEYS: session, queue, inflight. ARGV: token, then each call:
 * 'p' seq entry max policy set, 'a' seq, or 'm' seq head, as the single
 * scripts take them. Answers an array, one integer a call: a push's
 * dropped count, -1 refused (FULL), -3 its seq not above the last; an
 * ack's or a mark's 1 or 0, -2 a mark's head of another seq.
 */
static const char BATCH[] =
        FENCE "local last = redis.call('HGET', KEYS[1], 'seq') or '0' "
              "local out, i, tq, ti = {}, 2, false, false "
              "while i <= #ARGV do "
              "local k = ARGV[i] "
              "if k == 'p' then "
              "if tonumber(ARGV[i + 1]) <= tonumber(last) then out[#out + 1] = -3 else "
              "local dest, r = KEYS[2], 0 "
              "if ARGV[i + 5] == 'i' then dest = KEYS[3] else "
              "local n, max = redis.call('ZCARD', KEYS[2]), tonumber(ARGV[i + 3]) "
              "if n >= max then "
              "if ARGV[i + 4] ~= 'd' then r = -1 else "
              "r = n - max + 1 redis.call('ZPOPMIN', KEYS[2], r) end end end "
              "if r >= 0 then "
              "last = ARGV[i + 1] "
              "redis.call('ZADD', dest, ARGV[i + 1], ARGV[i + 2]) "
              "if dest == KEYS[2] then tq = true else ti = true end end "
              "out[#out + 1] = r end "
              "i = i + 6 "
              "elseif k == 'a' then "
              "local n = redis.call('ZREMRANGEBYSCORE', KEYS[3], ARGV[i + 1], ARGV[i + 1]) "
              "if n == 0 then n = redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[i + 1], "
              "ARGV[i + 1]) end "
              "out[#out + 1] = n i = i + 2 "
              "elseif k == 'm' then "
              "local from = KEYS[3] "
              "local e = redis.call('ZRANGEBYSCORE', from, ARGV[i + 1], ARGV[i + 1]) "
              "if #e == 0 then from = KEYS[2] "
              "e = redis.call('ZRANGEBYSCORE', from, ARGV[i + 1], ARGV[i + 1]) end "
              "local h = ARGV[i + 2] "
              "if #e == 0 then out[#out + 1] = 0 "
              "elseif string.sub(e[1], 1, 9) ~= string.sub(h, 1, 9) then out[#out + 1] = -2 "
              "else redis.call('ZREM', from, e[1]) "
              "redis.call('ZADD', KEYS[3], ARGV[i + 1], h .. string.sub(e[1], #h + 1)) "
              "ti = true out[#out + 1] = 1 end "
              "i = i + 3 "
              "else return redis.error_reply('BADOP unknown call in a batch') end "
              "end "
              "redis.call('HSET', KEYS[1], 'seq', last) "
              "local ttl = redis.call('PTTL', KEYS[1]) "
              "if ttl > 0 then "
              "if tq then redis.call('PEXPIRE', KEYS[2], ttl) end "
              "if ti then redis.call('PEXPIRE', KEYS[3], ttl) end end "
              "return out";

/*
 * KEYS: session, queue, inflight. ARGV: token, TTL in ms ('0' delete,
 * '-1' none), record ('' keep). Answers 1, or 0 when it deleted.
 */
static const char RELEASE[] =
        FENCE "if ARGV[2] == '0' then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) return 0 end "
              "if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'record', ARGV[3]) end "
              "if ARGV[2] ~= '-1' then "
              "for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end end "
              "return 1";

/*
 * KEYS: session, queue, inflight, epoch. ARGV: token ('0': whoever owns
 * it), node, channel, tenant, client id. Answers 1, or 0 when there was
 * nothing.
 */
static const char DROP[] =
        "if ARGV[1] ~= '0' and redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then "
        "return redis.error_reply('FENCED not the owner of the session') end "
        "local prev = redis.call('HGET', KEYS[1], 'owner') or '' "
        "local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) "
        "if prev ~= '' and prev ~= ARGV[2] then "
        "local t = string.format('%d', redis.call('INCR', KEYS[4])) "
        "redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' ' .. ARGV[4] .. ' ' .. t .. ' ' .. ARGV[5]) "
        "end "
        "if n > 0 then return 1 end return 0";

/* ---- entries and records ------------------------------------------------------------- */

int bw_sessions_head_check(const struct bw_sessions_head *h)
{
	if (h->seq == 0 || h->seq > BW_SESSIONS_SEQ_MAX)
		return -EINVAL;
	switch (h->state) {
	case BW_SESSIONS_QUEUED:
		return h->packet_id == 0 ? 0 : -EINVAL;
	case BW_SESSIONS_PUBLISH_SENT:
	case BW_SESSIONS_PUBREC_RECEIVED:
		return h->packet_id != 0 ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void bw_sessions_head_pack(const struct bw_sessions_head *h, uint8_t *out)
{
	out[0] = BW_SESSIONS_ENTRY_FORMAT;
	put_be(out + 1, h->seq, 8);
	put_be(out + 9, h->packet_id, 2);
	out[11] = h->state;
	put_be(out + 12, h->sent_at_ms, 8);
}

/* QoS 0 is never sent into the window; the PUBREC state is QoS 2's only. */
static bool qos_fits(uint8_t state, uint32_t qos)
{
	if (state == BW_SESSIONS_PUBLISH_SENT)
		return qos >= 1;
	if (state == BW_SESSIONS_PUBREC_RECEIVED)
		return qos == 2;
	return true;
}

int bw_sessions_entry_encode(const struct bw_sessions_head *h, StoredMessage *msg, uint8_t **out,
                             size_t *len)
{
	uint8_t *body;
	size_t blen;
	int rc;

	*out = NULL;
	*len = 0;
	if (bw_sessions_head_check(h) || !qos_fits(h->state, msg->qos))
		return -EINVAL;
	if ((rc = bw_record_message_encode(msg, &body, &blen)))
		return rc;
	uint8_t *p = malloc(BW_SESSIONS_HEAD_LEN + blen);
	if (!p) {
		free(body);
		return -ENOMEM;
	}
	bw_sessions_head_pack(h, p);
	memcpy(p + BW_SESSIONS_HEAD_LEN, body, blen);
	free(body);
	*out = p;
	*len = BW_SESSIONS_HEAD_LEN + blen;
	return 0;
}

int bw_sessions_entry_decode(const uint8_t *buf, size_t len, const char *tenant,
                             struct bw_sessions_entry *out)
{
	int rc;

	*out = (struct bw_sessions_entry){ 0 };
	if (len < BW_SESSIONS_HEAD_LEN)
		return -EBADMSG;
	if (buf[0] != BW_SESSIONS_ENTRY_FORMAT)
		return buf[0] > BW_SESSIONS_ENTRY_FORMAT ? -EPROTONOSUPPORT : -EINVAL;
	struct bw_sessions_head h = {
		.seq = get_be(buf + 1, 8),
		.packet_id = (uint16_t)get_be(buf + 9, 2),
		.state = buf[11],
		.sent_at_ms = get_be(buf + 12, 8),
	};
	if (bw_sessions_head_check(&h))
		return -EINVAL;
	StoredMessage *m;
	rc = bw_record_message_decode(buf + BW_SESSIONS_HEAD_LEN, len - BW_SESSIONS_HEAD_LEN, &m);
	if (rc)
		return rc;
	if (!tenant || strcmp(m->tenant, tenant) != 0 || !qos_fits(h.state, m->qos)) {
		bw_record_message_free(&m);
		return -EINVAL;
	}
	out->h = h;
	out->msg = m;
	return 0;
}

void bw_sessions_entry_fini(struct bw_sessions_entry *e)
{
	bw_record_message_free(&e->msg);
}

/* The messages of a session live in entries; the record keeps only incoming QoS 2 ids. */
static bool record_shape_ok(const StoredSession *rec)
{
	if (rec->n_offline_queue)
		return false;
	for (size_t i = 0; i < rec->n_inflight; i++) {
		if (rec->inflight[i]->direction != STORED_INFLIGHT__DIRECTION__INCOMING)
			return false;
	}
	return true;
}

int bw_sessions_record_encode(StoredSession *rec, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!record_shape_ok(rec))
		return -EINVAL;
	/* A shallow copy without the owner: the hash's own fields hold it. */
	StoredSession copy = *rec;
	copy.owner_node = NULL;
	copy.has_fencing_token = 0;
	copy.fencing_token = 0;
	int rc = bw_record_session_encode(&copy, out, len);
	rec->has_version = copy.has_version;
	rec->version = copy.version;
	return rc;
}

int bw_sessions_record_decode(const uint8_t *buf, size_t len, const struct bw_sessions_key *k,
                              StoredSession **out)
{
	int rc = bw_record_session_decode(buf, len, out);

	if (rc)
		return rc;
	const StoredSession *r = *out;
	if (strcmp(r->tenant, k->tenant) != 0 || strlen(r->client_id) != k->id_len ||
	    memcmp(r->client_id, k->id, k->id_len) != 0 || !record_shape_ok(r)) {
		bw_record_session_free(out);
		return -EINVAL;
	}
	return 0;
}

int64_t bw_sessions_ttl_ms(uint32_t expiry_s)
{
	if (expiry_s == 0)
		return 0;
	if (expiry_s == BW_SESSIONS_EXPIRY_NEVER)
		return -1;
	return (int64_t)expiry_s * 1000 + BW_SESSIONS_TTL_MARGIN_MS;
}

int bw_sessions_reply_error(const char *str, size_t len)
{
	/* Redis may put "ERR " before a script's error. */
	if (len >= 4 && memcmp(str, "ERR ", 4) == 0) {
		str += 4;
		len -= 4;
	}
	static const struct {
		const char *word;
		int rc;
	} known[] = { { "FENCED ", -ESTALE }, { "FULL ", -ENOBUFS }, { "BADSEQ ", -EINVAL } };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t n = strlen(known[i].word);
		if (len >= n && memcmp(str, known[i].word, n) == 0)
			return known[i].rc;
	}
	return -EIO;
}

/* ---- requests -------------------------------------------------------------------------- */

void bw_sessions_req_fini(struct bw_sessions_req *q)
{
	free(q->keys);
	free(q->value);
	q->keys = NULL;
	q->value = NULL;
	q->argc = 0;
}

static void arg(struct bw_sessions_req *q, const void *p, size_t len)
{
	q->argv[q->argc] = p;
	q->lens[q->argc] = len;
	q->argc++;
}

static void arg_str(struct bw_sessions_req *q, const char *s)
{
	arg(q, s, strlen(s));
}

/* A decimal argument in q's num slot i. */
static void arg_num(struct bw_sessions_req *q, int i, int64_t v)
{
	int n = snprintf(q->num[i], sizeof(q->num[i]), "%" PRId64, v);
	arg(q, q->num[i], (size_t)n);
}

static bool node_ok(const char *node)
{
	if (!node || strlen(node) != BW_KEYS_NODE_LEN)
		return false;
	for (size_t i = 0; i < BW_KEYS_NODE_LEN; i++) {
		if (!((node[i] >= '0' && node[i] <= '9') || (node[i] >= 'a' && node[i] <= 'f')))
			return false;
	}
	return true;
}

/*
 * Starts q: EVAL, the script, the number of keys, the session's three keys
 * and, with_epoch, the tenant's counter and (after them in q->keys, not an
 * argument yet) the takeover channel, which *channel then points to.
 */
static int req_start(struct bw_sessions_req *q, const char *script, size_t script_len,
                     const char *prefix, const struct bw_sessions_key *k, bool with_epoch,
                     const char **channel)
{
	*q = (struct bw_sessions_req){ 0 };
	if (!k || !k->tenant || bw_tenant_name_check(k->tenant, strlen(k->tenant)) ||
	    bw_keys_prefix_check(prefix))
		return -EINVAL;
	size_t cap = k->id_len + BW_KEYS_MAX; /* fits any of the session's keys */
	q->keys = malloc(3 * cap + 2 * BW_KEYS_MAX);
	if (!q->keys)
		return -ENOMEM;
	arg(q, "EVAL", 4);
	arg(q, script, script_len);
	arg_str(q, with_epoch ? "4" : "3");
	char *p = q->keys;
	for (int kind = BW_KEYS_SESSION; kind <= BW_KEYS_INFLIGHT; kind++) {
		int n = bw_keys_session(p, cap, prefix, k->tenant, (enum bw_keys_session_kind)kind,
		                        k->id, k->id_len);
		if (n < 0)
			return -EINVAL;
		arg(q, p, (size_t)n);
		p += (size_t)n + 1;
	}
	if (with_epoch) {
		int n = bw_keys_session_epoch(p, BW_KEYS_MAX, prefix, k->tenant);
		int c = bw_keys_sessions_channel(p + n + 1, BW_KEYS_MAX, prefix);
		if (n < 0 || c < 0)
			return -EINVAL;
		arg(q, p, (size_t)n);
		*channel = p + n + 1;
	}
	return 0;
}

#define START(q, script, prefix, k, epoch, ch)                                                     \
	req_start((q), (script), sizeof(script) - 1, (prefix), (k), (epoch), (ch))

int bw_sessions_req_claim(struct bw_sessions_req *q, const char *prefix, const char *node,
                          const struct bw_sessions_key *k, bool clean_start)
{
	const char *channel;
	int rc = START(q, CLAIM, prefix, k, true, &channel);

	if (rc)
		return rc;
	if (!node_ok(node))
		return -EINVAL;
	arg(q, node, BW_KEYS_NODE_LEN);
	arg_str(q, clean_start ? "1" : "0");
	arg_str(q, channel);
	arg_str(q, k->tenant);
	arg(q, k->id, k->id_len);
	return 0;
}

/* The token argument: 1.., as the claim gave it. */
static int arg_token(struct bw_sessions_req *q, uint64_t token)
{
	if (token == 0 || token > INT64_MAX)
		return -EINVAL;
	arg_num(q, 0, (int64_t)token);
	return 0;
}

int bw_sessions_req_save(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token, StoredSession *rec)
{
	size_t len;
	int rc = START(q, SAVE, prefix, k, false, NULL);

	if (rc || (rc = arg_token(q, token)))
		return rc;
	if (!rec)
		return -EINVAL;
	if ((rc = bw_sessions_record_encode(rec, &q->value, &len)))
		return rc;
	arg(q, q->value, len);
	return 0;
}

int bw_sessions_req_push(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token,
                         const struct bw_sessions_head *h, StoredMessage *msg, uint32_t max,
                         enum bw_sessions_policy policy)
{
	size_t len;
	int rc = START(q, PUSH, prefix, k, false, NULL);

	if (rc || (rc = arg_token(q, token)))
		return rc;
	if (!h || !msg || max == 0 ||
	    (policy != BW_SESSIONS_DROP_OLDEST && policy != BW_SESSIONS_REFUSE_NEW))
		return -EINVAL;
	if ((rc = bw_sessions_entry_encode(h, msg, &q->value, &len)))
		return rc;
	arg_num(q, 1, (int64_t)h->seq);
	arg(q, q->value, len);
	arg_num(q, 2, max);
	arg_str(q, policy == BW_SESSIONS_DROP_OLDEST ? "d" : "r");
	arg_str(q, h->state == BW_SESSIONS_QUEUED ? "q" : "i");
	return 0;
}

int bw_sessions_req_ack(struct bw_sessions_req *q, const char *prefix,
                        const struct bw_sessions_key *k, uint64_t token, uint64_t seq)
{
	int rc = START(q, ACK, prefix, k, false, NULL);

	if (rc || (rc = arg_token(q, token)))
		return rc;
	if (seq == 0 || seq > BW_SESSIONS_SEQ_MAX)
		return -EINVAL;
	arg_num(q, 1, (int64_t)seq);
	return 0;
}

int bw_sessions_req_mark(struct bw_sessions_req *q, const char *prefix,
                         const struct bw_sessions_key *k, uint64_t token,
                         const struct bw_sessions_head *h)
{
	int rc = START(q, MARK, prefix, k, false, NULL);

	if (rc || (rc = arg_token(q, token)))
		return rc;
	if (!h || bw_sessions_head_check(h) || h->state == BW_SESSIONS_QUEUED)
		return -EINVAL;
	arg_num(q, 1, (int64_t)h->seq);
	bw_sessions_head_pack(h, q->head);
	arg(q, q->head, BW_SESSIONS_HEAD_LEN);
	return 0;
}

int bw_sessions_req_release(struct bw_sessions_req *q, const char *prefix,
                            const struct bw_sessions_key *k, uint64_t token, uint32_t expiry_s,
                            StoredSession *rec)
{
	size_t len = 0;
	int rc = START(q, RELEASE, prefix, k, false, NULL);

	if (rc || (rc = arg_token(q, token)))
		return rc;
	int64_t ttl = bw_sessions_ttl_ms(expiry_s);
	if (rec && ttl != 0 && (rc = bw_sessions_record_encode(rec, &q->value, &len)))
		return rc;
	arg_num(q, 1, ttl);
	arg(q, q->value ? (const void *)q->value : "", len);
	return 0;
}

int bw_sessions_req_drop(struct bw_sessions_req *q, const char *prefix, const char *node,
                         const struct bw_sessions_key *k, uint64_t token)
{
	const char *channel;
	int rc = START(q, DROP, prefix, k, true, &channel);

	if (rc)
		return rc;
	if (!node_ok(node) || token > INT64_MAX)
		return -EINVAL;
	arg_num(q, 0, (int64_t)token);
	arg(q, node, BW_KEYS_NODE_LEN);
	arg_str(q, channel);
	arg_str(q, k->tenant);
	arg(q, k->id, k->id_len);
	return 0;
}

/* ---- replies ----------------------------------------------------------------------- */

void bw_sessions_claim_free(struct bw_sessions_claim **cp)
{
	struct bw_sessions_claim *c = *cp;

	if (!c)
		return;
	bw_record_session_free(&c->record);
	for (size_t i = 0; i < c->n_inflight; i++)
		bw_sessions_entry_fini(&c->inflight[i]);
	for (size_t i = 0; i < c->n_queue; i++)
		bw_sessions_entry_fini(&c->queue[i]);
	free(c->inflight);
	free(c->queue);
	free(c);
	*cp = NULL;
}

/* A decimal u64 of a reply string, 0.. with no sign: 0 or -EPROTO. */
static int reply_u64(const redisReply *r, uint64_t *out)
{
	uint64_t v = 0;

	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
		return -EPROTO;
	for (size_t i = 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9')
			return -EPROTO;
		uint64_t d = (uint64_t)(r->str[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EPROTO;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static bool array_of_strings(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return false;
	for (size_t i = 0; i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			return false;
	}
	return true;
}

/*
 * Decodes the entries of set r into *out (*n of them), those of the wrong
 * state for the set (inflight or not) or refused skipped into *bad.
 * inflight: also skips a packet id seen already, with ids (8 KiB of bits).
 */
static int read_entries(const redisReply *r, const char *tenant, bool inflight, uint64_t *ids,
                        struct bw_sessions_entry **out, size_t *n, size_t *bad)
{
	*out = NULL;
	*n = 0;
	if (r->elements == 0)
		return 0;
	struct bw_sessions_entry *v = calloc(r->elements, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*out = v;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		struct bw_sessions_entry *x = &v[*n];
		int rc = bw_sessions_entry_decode((const uint8_t *)e->str, e->len, tenant, x);
		if (rc == -ENOMEM)
			return rc;
		if (rc == 0 && (x->h.state != BW_SESSIONS_QUEUED) != inflight)
			rc = -EINVAL;
		if (rc == 0 && inflight) {
			uint64_t bit = UINT64_C(1) << (x->h.packet_id % 64);
			if (ids[x->h.packet_id / 64] & bit)
				rc = -EINVAL;
			ids[x->h.packet_id / 64] |= bit;
		}
		if (rc) {
			bw_sessions_entry_fini(x);
			(*bad)++;
			continue;
		}
		(*n)++;
	}
	return 0;
}

int bw_sessions_claim_parse(const redisReply *r, const struct bw_sessions_key *k,
                            struct bw_sessions_claim **out)
{
	int rc = 0;

	*out = NULL;
	if (r->type == REDIS_REPLY_ERROR)
		return bw_sessions_reply_error(r->str, r->len);
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 7)
		return -EPROTO;
	const redisReply *tok = r->element[0], *prev = r->element[1], *existed = r->element[2],
	                 *rec = r->element[3], *seq = r->element[4], *inflight = r->element[5],
	                 *queue = r->element[6];
	uint64_t last_seq;
	if (tok->type != REDIS_REPLY_INTEGER || tok->integer <= 0 ||
	    prev->type != REDIS_REPLY_STRING || existed->type != REDIS_REPLY_INTEGER ||
	    rec->type != REDIS_REPLY_STRING || reply_u64(seq, &last_seq) ||
	    !array_of_strings(inflight) || !array_of_strings(queue))
		return -EPROTO;

	struct bw_sessions_claim *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->token = (uint64_t)tok->integer;
	c->existed = existed->integer != 0;
	c->last_seq = last_seq;
	if (prev->len == BW_KEYS_NODE_LEN) {
		memcpy(c->prev_owner, prev->str, BW_KEYS_NODE_LEN);
		if (!node_ok(c->prev_owner))
			c->prev_owner[0] = '\0';
	}
	*out = c;
	if (rec->len > 0 &&
	    (rc = bw_sessions_record_decode((const uint8_t *)rec->str, rec->len, k, &c->record)))
		return rc;
	uint64_t *ids = NULL;
	if (inflight->elements > 0 && !(ids = calloc(65536 / 64, sizeof(uint64_t))))
		rc = -ENOMEM;
	if (!rc)
		rc = read_entries(inflight, k->tenant, true, ids, &c->inflight, &c->n_inflight,
		                  &c->n_bad);
	free(ids);
	if (!rc)
		rc = read_entries(queue, k->tenant, false, NULL, &c->queue, &c->n_queue, &c->n_bad);
	if (rc) {
		bw_sessions_claim_free(out);
		return rc;
	}
	return 0;
}

/* ---- the calls ------------------------------------------------------------------------ */

struct bw_sessions {
	char prefix[BW_KEYS_PREFIX_MAX + 1];
	char node[BW_KEYS_NODE_LEN + 1];
	struct bw_redis *r;
	uint32_t held_max;
	uint32_t held;           /* ops in the list */
	uint32_t requests;       /* requests on the connection (a batch is one) */
	struct op *finished;     /* answered without Redis, to call back (elided) */
	struct op *head, **tail; /* every op not yet answered, in call order */
	struct op *unsent;       /* none before it is unsent; NULL: none at all */
	bw_sessions_fenced_cb fenced;
	void *fenced_arg;
	struct bw_sessions_stats stats;
};

enum op_kind { OP_CLAIM, OP_SAVE, OP_PUSH, OP_ACK, OP_MARK, OP_RELEASE, OP_DROP };

/*
 * A call not yet answered. It keeps its request, so that a write whose
 * connection dropped goes again, and its key (the claim's reply is checked
 * against it; a fenced write names it).
 */
struct op {
	struct op *next;
	struct bw_sessions *s;
	enum op_kind kind;
	bool sent;      /* on the connection now */
	bool resent;    /* sent before, and the connection dropped */
	uint16_t batch; /* sent as the first of a batch of this many (1: alone) */
	int rc;         /* on the finished list: its result, and */
	uint64_t value; /* its answer */
	bw_sessions_cb done;
	bw_sessions_claim_cb claimed;
	void *arg;
	uint64_t token;
	struct bw_sessions_req q;
	char tenant[BW_TENANT_NAME_MAX + 1];
	size_t id_len;
	uint8_t id[];
};

static void stat_add(_Atomic uint64_t *c, uint64_t d)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
	                      memory_order_relaxed);
}

static void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

int bw_sessions_new(struct bw_sessions **out, const struct bw_sessions_config *cfg)
{
	*out = NULL;
	if (bw_keys_prefix_check(cfg->prefix) || !node_ok(cfg->node))
		return -EINVAL;
	struct bw_sessions *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->prefix);
	snprintf(s->node, sizeof(s->node), "%s", cfg->node);
	s->held_max = cfg->held_max ? cfg->held_max : BW_SESSIONS_HELD_DEFAULT;
	s->tail = &s->head;
	*out = s;
	return 0;
}

void bw_sessions_on_fenced(struct bw_sessions *s, bw_sessions_fenced_cb fn, void *arg)
{
	s->fenced = fn;
	s->fenced_arg = arg;
}

static void pump(struct bw_sessions *s);
static void finish(struct bw_sessions *s);

void bw_sessions_attach(struct bw_sessions *s, struct bw_redis *r)
{
	s->r = r;
	pump(s);
}

static void op_free(struct op *o)
{
	bw_sessions_req_fini(&o->q);
	free(o);
}

static void unlink_op(struct bw_sessions *s, struct op *o)
{
	struct op **pp = &s->head;
	while (*pp != o)
		pp = &(*pp)->next;
	*pp = o->next;
	if (s->unsent == o)
		s->unsent = o->next;
	if (s->tail == &o->next)
		s->tail = pp;
	s->held--;
	stat_set(&s->stats.held, s->held);
}

void bw_sessions_free(struct bw_sessions **sp)
{
	struct bw_sessions *s = *sp;
	if (!s)
		return;
	finish(s);
	/* Writes still held (Redis was down): their callers hear they failed. */
	while (s->head) {
		struct op *o = s->head;
		unlink_op(s, o);
		if (o->kind == OP_CLAIM)
			o->claimed(o->arg, -ECANCELED, NULL);
		else if (o->done)
			o->done(o->arg, -ECANCELED, 0);
		op_free(o);
	}
	free(s);
	*sp = NULL;
}

const struct bw_sessions_stats *bw_sessions_stats(const struct bw_sessions *s)
{
	return &s->stats;
}

size_t bw_sessions_held(const struct bw_sessions *s)
{
	return s->held;
}

bool bw_sessions_busy(const struct bw_sessions *s)
{
	return s->held > BW_SESSIONS_BUSY && s->r && bw_redis_up(s->r);
}

/* The counters a result moves. */
static void count(struct bw_sessions *s, int rc)
{
	if (rc == -ESTALE)
		stat_add(&s->stats.fenced, 1);
	else if (rc == -ENOBUFS)
		stat_add(&s->stats.refused, 1);
	else if (rc < 0)
		stat_add(&s->stats.failed, 1);
}

static struct bw_sessions_key key_of(const struct op *o)
{
	return (struct bw_sessions_key){ .tenant = o->tenant, .id = o->id, .id_len = o->id_len };
}

static void on_claim(struct op *o, const redisReply *reply)
{
	struct bw_sessions *s = o->s;
	struct bw_sessions_key k = key_of(o);
	struct bw_sessions_claim *c;
	int rc = bw_sessions_claim_parse(reply, &k, &c);

	if (c) {
		stat_add(&s->stats.claims, 1);
		if (c->prev_owner[0] && strcmp(c->prev_owner, s->node) != 0)
			stat_add(&s->stats.takeovers, 1);
		stat_add(&s->stats.bad, c->n_bad + (rc != 0));
	} else {
		count(s, rc);
	}
	o->claimed(o->arg, rc, c);
}

/* Ends op o with rc and value: its counters, the fenced hook, its callback; frees it. */
static void op_end(struct bw_sessions *s, struct op *o, int rc, uint64_t value)
{
	unlink_op(s, o);
	/* A push sent again whose first send was made: it is there. */
	if (rc == -EINVAL && o->resent && o->kind == OP_PUSH)
		rc = 0;
	if (rc == 0 && o->kind == OP_PUSH)
		stat_add(&s->stats.dropped, value);
	count(s, rc);
	if (rc == -ESTALE && s->fenced) {
		struct bw_sessions_key k = key_of(o);
		s->fenced(s->fenced_arg, &k, o->token);
	}
	if (o->done)
		o->done(o->arg, rc, value);
	op_free(o);
}

/* A batch's answer r (an array, one integer a call) for its n calls from o on. */
static void batch_end(struct bw_sessions *s, struct op *o, uint16_t n, const redisReply *r)
{
	bool shape = r->type == REDIS_REPLY_ARRAY && r->elements == n;
	for (uint16_t i = 0; i < n; i++) {
		struct op *next = o->next;
		int rc = 0;
		uint64_t value = 0;
		if (r->type == REDIS_REPLY_ERROR) {
			rc = bw_sessions_reply_error(r->str, r->len);
		} else if (!shape || r->element[i]->type != REDIS_REPLY_INTEGER) {
			rc = -EPROTO;
		} else {
			long long v = r->element[i]->integer;
			rc = v == -1              ? -ENOBUFS
			     : v == -2 || v == -3 ? -EINVAL
			     : v < 0              ? -EPROTO
			                          : 0;
			value = v > 0 ? (uint64_t)v : 0;
		}
		op_end(s, o, rc, value);
		o = next;
	}
}

static void pump(struct bw_sessions *s);
static void one_end(struct bw_sessions *s, struct op *o, const redisReply *reply,
                    const char *error);

static void on_reply(void *arg, const redisReply *reply, const char *error)
{
	struct op *o = arg;
	struct bw_sessions *s = o->s;
	uint16_t n = o->batch ? o->batch : 1;

	s->requests--;
	if (!reply && o->kind != OP_CLAIM) {
		/* No answer: the writes may or may not have been made. They stay,
		 * in their place, and go again once the client is up. */
		for (struct op *b = o; n--; b = b->next) {
			b->sent = false;
			b->resent = true;
			b->batch = 0;
		}
		s->unsent = s->head;
		stat_add(&s->stats.failed, 1);
		return;
	}
	o->sent = false;
	if (o->batch > 1)
		batch_end(s, o, o->batch, reply);
	else
		one_end(s, o, reply, error);
	pump(s); /* what waited for an answer */
	finish(s);
}

/* A single call's answer (reply NULL: a claim's connection dropped). */
static void one_end(struct bw_sessions *s, struct op *o, const redisReply *reply, const char *error)
{
	uint64_t value = 0;
	int rc = 0;

	if (!reply) {
		rc = strcmp(error, "timeout") == 0 ? -ETIMEDOUT : -ECONNRESET;
	} else if (o->kind == OP_CLAIM) {
		unlink_op(s, o);
		on_claim(o, reply);
		op_free(o);
		return;
	} else if (reply->type == REDIS_REPLY_ERROR) {
		rc = bw_sessions_reply_error(reply->str, reply->len);
	} else if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0) {
		rc = -EPROTO;
	} else {
		value = (uint64_t)reply->integer;
	}
	if (o->kind == OP_CLAIM) {
		unlink_op(s, o);
		count(s, rc);
		o->claimed(o->arg, rc, NULL);
		op_free(o);
		return;
	}
	op_end(s, o, rc, value);
}

/* Calls one BATCH may carry, and requests on the connection before calls wait to batch. */
#define BATCH_MAX     64
#define PIPELINE_MAX  8
#define BATCH_ARGS(k) ((k) == OP_PUSH ? 5 : (k) == OP_ACK ? 1 : (k) == OP_MARK ? 2 : 0)

static bool batchable(const struct op *o)
{
	return !o->sent && BATCH_ARGS(o->kind) > 0;
}

/* Whether b may go in one batch with a: the same session, the same token. */
static bool same_batch(const struct op *a, const struct op *b)
{
	return batchable(b) && a->q.lens[3] == b->q.lens[3] &&
	       !memcmp(a->q.argv[3], b->q.argv[3], a->q.lens[3]) && a->q.lens[6] == b->q.lens[6] &&
	       !memcmp(a->q.argv[6], b->q.argv[6], a->q.lens[6]);
}

/*
 * Sends o with the unsent calls of its session that follow it, up to
 * BATCH_MAX, as one BATCH; o alone as itself. The same bytes a call would
 * send but the script. 0, or bw_redis_cmd()'s error.
 */
static int send_op(struct bw_sessions *s, struct op *o)
{
	uint16_t n = 1;
	if (batchable(o))
		for (struct op *b = o->next; b && n < BATCH_MAX && same_batch(o, b); b = b->next)
			n++;
	int rc;
	if (n == 1) {
		rc = bw_redis_cmd(s->r, on_reply, o, o->q.argc, o->q.argv, o->q.lens);
	} else {
		const char *argv[7 + BATCH_MAX * 6];
		size_t lens[7 + BATCH_MAX * 6];
		int argc = 7;
		memcpy(argv, o->q.argv, 7 * sizeof(*argv));
		memcpy(lens, o->q.lens, 7 * sizeof(*lens));
		argv[1] = BATCH;
		lens[1] = sizeof(BATCH) - 1;
		struct op *b = o;
		for (uint16_t i = 0; i < n; i++, b = b->next) {
			argv[argc] = b->kind == OP_PUSH ? "p" : b->kind == OP_ACK ? "a" : "m";
			lens[argc++] = 1;
			for (int j = 0; j < BATCH_ARGS(b->kind); j++) {
				argv[argc] = b->q.argv[7 + j];
				lens[argc++] = b->q.lens[7 + j];
			}
		}
		rc = bw_redis_cmd(s->r, on_reply, o, argc, argv, lens);
	}
	if (rc < 0)
		return rc;
	o->batch = n;
	struct op *b = o;
	for (uint16_t i = 0; i < n; i++, b = b->next)
		b->sent = true;
	s->requests++;
	stat_add(&s->stats.requests, 1);
	if (n > 1)
		stat_add(&s->stats.batched, n);
	return 0;
}

/*
 * Sends, in order, the ops not on the connection while the client takes
 * them. Past PIPELINE_MAX requests unanswered, pushes, acks and marks wait:
 * each answer sends what waits, a session's run of them as one BATCH. So a
 * call goes at once while Redis keeps up, and calls batch when it does not.
 */
static void pump(struct bw_sessions *s)
{
	if (!s->r || !bw_redis_up(s->r))
		return;
	struct op *o = s->unsent;
	while (o) {
		if (o->sent) {
			o = o->next;
			continue;
		}
		if ((batchable(o) && s->requests >= PIPELINE_MAX) || send_op(s, o) < 0) {
			s->unsent = o;
			return; /* an answer, or the tick, goes on */
		}
		for (uint16_t n = o->batch; n > 0; n--)
			o = o->next;
	}
	s->unsent = NULL;
}

void bw_sessions_tick(struct bw_sessions *s)
{
	pump(s);
	finish(s);
}

/* Queues o, whose request rc built (freed here if it is not taken). */
/* Calls back the calls answered without Redis (never from inside a call). */
static void finish(struct bw_sessions *s)
{
	while (s->finished) {
		struct op *o = s->finished;
		s->finished = o->next;
		if (o->done)
			o->done(o->arg, o->rc, o->value);
		op_free(o);
	}
}

static void finished_add(struct bw_sessions *s, struct op *o, int rc, uint64_t value)
{
	o->rc = rc;
	o->value = value;
	o->next = s->finished;
	s->finished = o;
}

/* How far an ack looks among the waiting calls for its own push. */
#define ELIDE_LOOK 16

/*
 * An ack whose push still waits, unsent (Redis is behind): the message was
 * delivered and acknowledged before it ever reached Redis, so neither
 * goes. Both are answered as done (the push: stored as far as anyone needs).
 * True when it elided them.
 */
static bool elide(struct bw_sessions *s, struct op *ack)
{
	int look = ELIDE_LOOK;
	for (struct op *p = s->unsent; p && look-- > 0; p = p->next) {
		if (p->kind != OP_PUSH || p->sent || p->resent || p->q.lens[7] != ack->q.lens[7] ||
		    memcmp(p->q.argv[7], ack->q.argv[7], ack->q.lens[7]) || !same_batch(p, ack))
			continue;
		unlink_op(s, p);
		finished_add(s, p, 0, 0);
		finished_add(s, ack, 0, 1);
		stat_add(&s->stats.elided, 1);
		return true;
	}
	return false;
}

static int submit(struct bw_sessions *s, int rc, struct op *o)
{
	if (rc == 0 && o->kind == OP_CLAIM && (!s->r || !bw_redis_up(s->r)))
		rc = -ENOTCONN; /* a claim needs its answer now: never held */
	if (rc == 0 && s->held >= s->held_max)
		rc = -EAGAIN;
	if (rc) {
		if (rc == -EAGAIN)
			stat_add(&s->stats.overflow, 1);
		op_free(o);
		return rc;
	}
	if (o->kind == OP_ACK && elide(s, o))
		return 0;
	*s->tail = o;
	s->tail = &o->next;
	if (!s->unsent)
		s->unsent = o;
	s->held++;
	stat_set(&s->stats.held, s->held);
	pump(s);
	return 0;
}

static struct op *op_new(struct bw_sessions *s, enum op_kind kind, const struct bw_sessions_key *k,
                         uint64_t token, bw_sessions_cb done, bw_sessions_claim_cb claimed,
                         void *arg)
{
	bool keep = k && k->tenant && strlen(k->tenant) <= BW_TENANT_NAME_MAX &&
	            k->id_len <= BW_KEYS_CLIENT_ID_MAX;
	struct op *o = calloc(1, sizeof(*o) + (keep ? k->id_len : 0));

	if (!o)
		return NULL;
	*o = (struct op){
		.s = s, .kind = kind, .done = done, .claimed = claimed, .arg = arg, .token = token
	};
	if (keep) {
		memcpy(o->tenant, k->tenant, strlen(k->tenant) + 1);
		memcpy(o->id, k->id, k->id_len);
		o->id_len = k->id_len;
	}
	return o;
}

#define CALL(s, kind, k, token, done, claimed, arg, build)                                         \
	do {                                                                                       \
		struct op *o_ = op_new((s), (kind), (k), (token), (done), (claimed), (arg));       \
		if (!o_)                                                                           \
			return -ENOMEM;                                                            \
		struct bw_sessions_req *q_ = &o_->q;                                               \
		int rc_ = (build);                                                                 \
		return submit((s), rc_, o_);                                                       \
	} while (0)

int bw_sessions_claim(struct bw_sessions *s, const struct bw_sessions_key *k, bool clean_start,
                      bw_sessions_claim_cb cb, void *arg)
{
	CALL(s, OP_CLAIM, k, 0, NULL, cb, arg,
	     bw_sessions_req_claim(q_, s->prefix, s->node, k, clean_start));
}

int bw_sessions_save(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     StoredSession *rec, bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_SAVE, k, token, cb, NULL, arg,
	     bw_sessions_req_save(q_, s->prefix, k, token, rec));
}

int bw_sessions_push(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     const struct bw_sessions_head *h, StoredMessage *msg, uint32_t max,
                     enum bw_sessions_policy policy, bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_PUSH, k, token, cb, NULL, arg,
	     bw_sessions_req_push(q_, s->prefix, k, token, h, msg, max, policy));
}

int bw_sessions_ack(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                    uint64_t seq, bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_ACK, k, token, cb, NULL, arg, bw_sessions_req_ack(q_, s->prefix, k, token, seq));
}

int bw_sessions_mark(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     const struct bw_sessions_head *h, bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_MARK, k, token, cb, NULL, arg, bw_sessions_req_mark(q_, s->prefix, k, token, h));
}

int bw_sessions_release(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                        uint32_t expiry_s, StoredSession *rec, bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_RELEASE, k, token, cb, NULL, arg,
	     bw_sessions_req_release(q_, s->prefix, k, token, expiry_s, rec));
}

int bw_sessions_touch(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                      uint32_t expiry_s, bw_sessions_cb cb, void *arg)
{
	if (expiry_s == 0)
		return -EINVAL; /* that would delete it */
	CALL(s, OP_RELEASE, k, token, cb, NULL, arg,
	     bw_sessions_req_release(q_, s->prefix, k, token, expiry_s, NULL));
}

int bw_sessions_drop(struct bw_sessions *s, const struct bw_sessions_key *k, uint64_t token,
                     bw_sessions_cb cb, void *arg)
{
	CALL(s, OP_DROP, k, token, cb, NULL, arg,
	     bw_sessions_req_drop(q_, s->prefix, s->node, k, token));
}
