/*
 * libFuzzer target for what the state store reads back from Redis or a
 * snapshot: the stored records (cluster/store/record.h), the session store's
 * entries and records (node/state/sessions.h) and its takeover note
 * (node/state/keys.h). The first byte picks the decoder (its value mod 4),
 * the rest is the value:
 *   0  a StoredMessage (bw_record_message_decode)
 *   1  a StoredSession (bw_record_session_decode), then as the session
 *      store reads it under its own tenant and client id
 *   2  a session queue entry of tenant "acme" (bw_sessions_entry_decode)
 *   3  a takeover note (bw_keys_takeover_parse)
 * A refused value must give nothing back. An accepted one must encode again
 * (the encoders apply the decoders' rules, so a node never reads what it
 * could not write), decode from that encoding, and encode to the same bytes
 * a second time; an entry keeps its head byte for byte, a note reads back
 * as exactly its parts.
 */
#include "cluster/store/record.h"
#include "node/state/keys.h"
#include "node/state/sessions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failed(int line, const char *what) __attribute__((noreturn));

static void check_failed(int line, const char *what)
{
	fprintf(stderr, "fuzz_record: check failed (fuzz_record.c:%d): %s\n", line, what);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond);                                             \
	} while (0)

/* One of the errors record.h names for a refused value. */
static int refusal(int rc)
{
	return rc == -EMSGSIZE || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EINVAL;
}

static void same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	CHECK(alen == blen);
	CHECK(alen == 0 || memcmp(a, b, alen) == 0);
}

static void message(const uint8_t *p, size_t n)
{
	StoredMessage *m, *again;
	uint8_t *out, *out2;
	size_t len, len2;
	int rc = bw_record_message_decode(p, n, &m);

	if (rc) {
		CHECK(refusal(rc) && m == NULL);
		return;
	}
	CHECK(bw_record_message_encode(m, &out, &len) == 0);
	CHECK(bw_record_message_decode(out, len, &again) == 0);
	CHECK(bw_record_message_encode(again, &out2, &len2) == 0);
	same_bytes(out, len, out2, len2);
	free(out);
	free(out2);
	bw_record_message_free(&again);
	bw_record_message_free(&m);
}

static void session(const uint8_t *p, size_t n)
{
	StoredSession *s, *again;
	uint8_t *out, *out2;
	size_t len, len2;
	int rc = bw_record_session_decode(p, n, &s);

	if (rc) {
		CHECK(refusal(rc) && s == NULL);
		return;
	}
	CHECK(bw_record_session_encode(s, &out, &len) == 0);
	CHECK(bw_record_session_decode(out, len, &again) == 0);
	CHECK(bw_record_session_encode(again, &out2, &len2) == 0);
	same_bytes(out, len, out2, len2);
	free(out);
	free(out2);
	bw_record_session_free(&again);

	/* As the session store reads it: its own key, messages only in entries. */
	struct bw_sessions_key k = {
		.tenant = s->tenant,
		.id = (const uint8_t *)s->client_id,
		.id_len = strlen(s->client_id),
	};
	bool shape = s->n_offline_queue == 0;
	for (size_t i = 0; i < s->n_inflight; i++)
		shape = shape && s->inflight[i]->direction == STORED_INFLIGHT__DIRECTION__INCOMING;
	rc = bw_sessions_record_decode(p, n, &k, &again);
	CHECK(rc == (shape ? 0 : -EINVAL));
	if (rc == 0) {
		CHECK(bw_sessions_record_encode(s, &out, &len) == 0);
		bw_record_session_free(&again);
		CHECK(bw_sessions_record_decode(out, len, &k, &again) == 0);
		CHECK(again->owner_node == NULL && !again->has_fencing_token);
		free(out);
		bw_record_session_free(&again);
	} else {
		CHECK(again == NULL);
		CHECK(bw_sessions_record_encode(s, &out, &len) == -EINVAL && out == NULL);
	}
	bw_record_session_free(&s);
}

static void entry(const uint8_t *p, size_t n)
{
	struct bw_sessions_entry e, again;
	uint8_t *out, *out2;
	size_t len, len2;
	int rc = bw_sessions_entry_decode(p, n, "acme", &e);

	if (rc) {
		CHECK(refusal(rc) && e.msg == NULL);
		return;
	}
	CHECK(bw_sessions_head_check(&e.h) == 0);
	CHECK(bw_sessions_entry_encode(&e.h, e.msg, &out, &len) == 0);
	CHECK(len >= BW_SESSIONS_HEAD_LEN && memcmp(out, p, BW_SESSIONS_HEAD_LEN) == 0);
	CHECK(bw_sessions_entry_decode(out, len, "acme", &again) == 0);
	CHECK(again.h.seq == e.h.seq && again.h.packet_id == e.h.packet_id &&
	      again.h.state == e.h.state && again.h.sent_at_ms == e.h.sent_at_ms);
	CHECK(bw_sessions_entry_encode(&again.h, again.msg, &out2, &len2) == 0);
	same_bytes(out, len, out2, len2);
	free(out);
	free(out2);
	bw_sessions_entry_fini(&again);
	bw_sessions_entry_fini(&e);
}

static void note(const uint8_t *p, size_t n)
{
	struct bw_keys_takeover t;
	char buf[BW_KEYS_NODE_LEN + 1 + BW_TENANT_NAME_MAX + 1 + 20 + 1];

	if (bw_keys_takeover_parse(p, n, &t))
		return;
	CHECK(t.node == (const char *)p);
	CHECK(t.token != 0 && t.id_len >= 1 && t.id_len <= BW_KEYS_CLIENT_ID_MAX);
	/* The note is exactly "NODE TENANT TOKEN ID". */
	int h = snprintf(buf, sizeof(buf), "%.*s %.*s %llu ", BW_KEYS_NODE_LEN, t.node,
	                 (int)t.tenant_len, t.tenant, (unsigned long long)t.token);
	CHECK(h > 0 && (size_t)h < sizeof(buf));
	CHECK((size_t)h + t.id_len == n);
	CHECK(memcmp(buf, p, (size_t)h) == 0);
	CHECK(t.id == p + h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const uint8_t *p = size > 1 ? data + 1 : NULL;
	size_t n = size - 1;

	switch (data[0] % 4) {
	case 0:
		message(p, n);
		break;
	case 1:
		session(p, n);
		break;
	case 2:
		entry(p ? p : data, n);
		break;
	default:
		note(p ? p : data, n);
		break;
	}
	return 0;
}
