/*
 * libFuzzer target for the MQTT codec (proto/mqtt/codec.h and props.h). The
 * input is a two-byte header and then a byte stream as a peer would send it:
 *
 *   data[0]  bit 0: protocol version (0 = 3.1.1, 1 = 5.0); bits 1..3: the
 *            maximum packet size, an index into max_sizes[]; bits 4..7 unused
 *   data[1]  where the stream is cut for the chunking check (see cut_at())
 *   data[2..] the stream
 *
 * The stream is framed and decoded packet after packet, as a connection
 * would be (a decoded CONNECT switches the version to its own; a packet that
 * fails to decode is skipped, since framing still knows its end). Each
 * decoded packet has every view checked to lie inside it, every list and
 * property iterator walked, every topic filter judged, and is then encoded
 * again (user properties and all subscription identifiers carried through
 * bw_props.raw and sub_ids), decoded again and compared field by field; a
 * second encode must give the same bytes, and a PUBLISH built from
 * bw_codec_publish_head() plus its shared tails must too. Framing is checked
 * to be independent of how the stream is chunked: every prefix of a packet
 * that frames is BW_CODEC_AGAIN, and a reader fed the stream in two pieces
 * sees the same packets. Each packet is decoded from an exact-size heap copy
 * so that ASan catches any read past its end.
 *
 * A failed check prints what, where, and the packet bytes, then aborts.
 */
#include "proto/mqtt/codec.h"
#include "proto/mqtt/props.h"
#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_LEN 2

/* Prefix lengths of every framed packet that are always tried. */
#define PREFIXES_TRIED 7

static const uint32_t max_sizes[8] = { BW_PACKET_SIZE_MAX, 2, 5, 20, 128, 200, 1000, 4096 };

/* Where the running check is, for the failure message. */
static struct {
	const char *stage;
	size_t off; /* of the packet in the stream */
	uint8_t version;
	uint8_t type;
	const uint8_t *wire; /* the packet as received, if any */
	size_t wire_len;
	const uint8_t *enc; /* its re-encoding, if any */
	size_t enc_len;
} at;

static void dump(const char *name, const uint8_t *p, size_t n)
{
	if (!p)
		return;
	fprintf(stderr, "  %s (%zu bytes):", name, n);
	for (size_t i = 0; i < n && i < 256; i++)
		fprintf(stderr, "%s%02x", i % 32 ? " " : "\n    ", p[i]);
	fprintf(stderr, "%s\n", n > 256 ? " ..." : "");
}

static void check_failed(int line, const char *what) __attribute__((noreturn));

static void check_failed(int line, const char *what)
{
	fprintf(stderr,
	        "fuzz_decode: check failed (fuzz_decode.c:%d): %s\n"
	        "  stage %s, packet at stream offset %zu, version %u, type %u (%s)\n",
	        line, what, at.stage ? at.stage : "-", at.off, at.version, at.type,
	        bw_packet_name(at.type));
	dump("packet", at.wire, at.wire_len);
	dump("re-encoded", at.enc, at.enc_len);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond);                                             \
	} while (0)

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#define VIEW_EQ(a_, b_) bytes_eq((a_).p, (a_).len, (b_).p, (b_).len)

/* True when the n bytes at p lie inside buf[0..len); an empty view may be anywhere. */
static bool inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	if (n == 0)
		return true;
	if (!p)
		return false;
	uintptr_t q = (uintptr_t)p, b = (uintptr_t)buf;
	return q >= b && q - b <= len && n <= len - (q - b);
}

#define VIEW_INSIDE(view, base, size) inside((view).p, (view).len, (base), (size))

/* A negative codec return: a reason code from the table, with a why string. */
static void check_reason(int rc, const char *why)
{
	CHECK(rc < 0);
	CHECK(-rc >= 0x80 && -rc <= 0xFF);
	CHECK(strcmp(bw_reason_name((uint8_t)-rc), "?") != 0);
	CHECK(why != NULL && why[0] != '\0');
}

/* ---- framing ------------------------------------------------------------ */

/* bw_codec_frame() with the invariants of every answer checked. */
static int frame(const uint8_t *s, size_t avail, uint32_t max, struct bw_frame *f)
{
	const char *why = NULL;
	int rc = bw_codec_frame(s, avail, max, f, &why);

	CHECK(rc == 0 || rc == BW_CODEC_AGAIN || rc < 0);
	if (rc < 0) {
		check_reason(rc, why);
		CHECK(rc == -BW_RC_MALFORMED || rc == -BW_RC_PACKET_TOO_LARGE);
	} else if (rc == 0) {
		CHECK(f->type == s[0] >> 4 && f->flags == (s[0] & 0x0F) && f->type != 0);
		CHECK(f->header_len >= 2 && f->header_len <= 5);
		CHECK(f->size == f->header_len + f->remaining_len);
		CHECK(f->size <= avail && f->size <= max);
	} else {
		CHECK(f->size == 0 || (f->size > avail && f->size <= max));
	}
	return rc;
}

/*
 * Frames prefixes of s[0..avail), whose full answer was rc with *full: the
 * first PREFIXES_TRIED lengths (the fixed header is at most 5 bytes) and
 * `cut` when it falls inside. A prefix of a packet that frames must be
 * BW_CODEC_AGAIN, knowing the size once its fixed header is complete; a
 * prefix of anything else must be BW_CODEC_AGAIN or the same error.
 */
static void check_prefixes(const uint8_t *s, size_t avail, uint32_t max, int rc,
                           const struct bw_frame *full, size_t cut)
{
	for (size_t i = 0; i <= PREFIXES_TRIED; i++) {
		size_t n = i < PREFIXES_TRIED ? i : cut;
		if (n >= avail || (i == PREFIXES_TRIED && n < PREFIXES_TRIED))
			continue;
		struct bw_frame g;
		int prc = frame(s, n, max, &g);
		if (rc == 0 && n >= full->size) {
			CHECK(prc == 0 && g.size == full->size && g.header_len == full->header_len);
		} else if (rc == 0) {
			CHECK(prc == BW_CODEC_AGAIN);
			CHECK(g.size == (n >= full->header_len ? full->size : 0));
		} else if (rc == BW_CODEC_AGAIN) {
			CHECK(prc == BW_CODEC_AGAIN);
			CHECK(g.size == 0 || g.size == full->size);
		} else {
			CHECK(prc == BW_CODEC_AGAIN || prc == rc);
		}
	}
}

/*
 * A reader that gets s[0..split) first and the rest later must frame the
 * same packets (sizes[0..n)) and end on the same answer as one that got it
 * all at once.
 */
static void check_chunked(const uint8_t *s, size_t len, uint32_t max, size_t split,
                          const uint32_t *sizes, size_t n, int end_rc)
{
	size_t avail = split, pos = 0, k = 0;
	struct bw_frame f;
	int rc;

	at.stage = "chunked framing";
	for (;;) {
		at.off = pos;
		rc = frame(s + pos, avail - pos, max, &f);
		if (rc == 0) {
			CHECK(k < n && f.size == sizes[k]);
			k++;
			pos += f.size;
		} else if (rc == BW_CODEC_AGAIN && avail < len) {
			avail = len;
		} else {
			break;
		}
	}
	CHECK(k == n && rc == end_rc);
}

/* ---- properties ---------------------------------------------------------- */

/* The property blocks a packet carries and the place each belongs to. */
struct blocks {
	struct bw_props *p[2];
	unsigned where[2];
	unsigned n;
};

static void packet_blocks(struct bw_packet *pkt, struct blocks *b)
{
	b->n = 0;
	switch (pkt->type) {
	case BW_CONNECT:
		b->p[b->n] = &pkt->connect.props;
		b->where[b->n++] = BW_CONNECT;
		b->p[b->n] = &pkt->connect.will_props;
		b->where[b->n++] = BW_PROPS_WILL;
		break;
	case BW_CONNACK:
		b->p[b->n] = &pkt->connack.props;
		b->where[b->n++] = BW_CONNACK;
		break;
	case BW_PUBLISH:
		b->p[b->n] = &pkt->publish.props;
		b->where[b->n++] = BW_PUBLISH;
		break;
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		b->p[b->n] = &pkt->ack.props;
		b->where[b->n++] = pkt->type;
		break;
	case BW_SUBSCRIBE:
		b->p[b->n] = &pkt->subscribe.props;
		b->where[b->n++] = BW_SUBSCRIBE;
		break;
	case BW_UNSUBSCRIBE:
		b->p[b->n] = &pkt->unsubscribe.props;
		b->where[b->n++] = BW_UNSUBSCRIBE;
		break;
	case BW_SUBACK:
	case BW_UNSUBACK:
		b->p[b->n] = &pkt->suback.props;
		b->where[b->n++] = pkt->type;
		break;
	case BW_DISCONNECT:
	case BW_AUTH:
		b->p[b->n] = &pkt->disconnect.props;
		b->where[b->n++] = pkt->type;
		break;
	default:
		break;
	}
}

static bool has(const struct bw_props *p, uint8_t id)
{
	return p->has & BW_PROP_BIT(id);
}

/*
 * A decoded block: every view inside the packet, every property known and
 * allowed where it is, values in range, strings valid, and the iterators
 * agreeing with the counts.
 */
static void check_props(const struct bw_props *p, unsigned where, bool v5, const uint8_t *buf,
                        size_t len)
{
	at.stage = "properties";
	CHECK(p->sub_ids == NULL && p->raw.len == 0);
	if (!v5) {
		CHECK(p->has == 0 && p->user_count == 0 && p->sub_id_count == 0);
		CHECK(p->block.len == 0);
	}
	CHECK(VIEW_INSIDE(p->block, buf, len));
	for (unsigned id = 0; id < 64; id++) {
		uint32_t mask = 0;
		if (!(p->has & BW_PROP_BIT(id)) || id == BW_PROP_USER)
			continue;
		CHECK(bw_prop_type((uint8_t)id, &mask) != 0);
		CHECK(mask & (UINT32_C(1) << where));
		CHECK(strcmp(bw_prop_name((uint8_t)id), "?") != 0);
	}
	const struct bw_str strs[] = { p->content_type, p->response_topic, p->assigned_client_id,
		                       p->auth_method,  p->response_info,  p->server_reference,
		                       p->reason_string };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		CHECK(VIEW_INSIDE(strs[i], p->block.p, p->block.len));
		CHECK(bw_utf8_valid(strs[i].p, strs[i].len));
	}
	CHECK(VIEW_INSIDE(p->correlation_data, p->block.p, p->block.len));
	CHECK(VIEW_INSIDE(p->auth_data, p->block.p, p->block.len));
	/* Ranges [MQTT-3.1.2-*], [MQTT-3.2.2-*], [MQTT-3.3.2-*]. */
	CHECK(!has(p, BW_PROP_RECEIVE_MAX) || p->receive_max != 0);
	CHECK(!has(p, BW_PROP_MAX_PACKET_SIZE) || p->max_packet_size != 0);
	CHECK(!has(p, BW_PROP_TOPIC_ALIAS) || p->topic_alias != 0);
	CHECK(p->max_qos <= 1 && p->payload_format <= 1 && p->request_problem_info <= 1);
	CHECK(p->request_response_info <= 1 && p->retain_available <= 1);
	CHECK(p->wildcard_sub_available <= 1 && p->sub_id_available <= 1);
	CHECK(p->shared_sub_available <= 1);
	/* [MQTT-3.3.2-14]: a topic name. */
	CHECK(!has(p, BW_PROP_RESPONSE_TOPIC) ||
	      bw_topic_name_check(p->response_topic.p, p->response_topic.len) == 0);

	uint32_t off = 0, n = 0, user_bytes = 0;
	struct bw_str k, v;
	while (bw_props_next_user(p, &off, &k, &v)) {
		CHECK(n < p->block.len / 5 + 1);
		n++;
		CHECK(off <= p->block.len);
		CHECK(VIEW_INSIDE(k, p->block.p, p->block.len));
		CHECK(VIEW_INSIDE(v, p->block.p, p->block.len));
		CHECK(bw_utf8_valid(k.p, k.len) && bw_utf8_valid(v.p, v.len));
		user_bytes += 5u + k.len + v.len;
	}
	CHECK(n == p->user_count);
	CHECK(bw_props_user_size(p) == user_bytes && user_bytes <= p->block.len);

	uint32_t id;
	off = 0;
	n = 0;
	while (bw_props_next_sub_id(p, &off, &id)) {
		CHECK(n < p->block.len / 2 + 1);
		CHECK(off <= p->block.len);
		CHECK(id >= 1 && id <= BW_VARINT_MAX);
		CHECK(n > 0 || id == p->sub_id);
		n++;
	}
	CHECK(n == p->sub_id_count);
	CHECK(has(p, BW_PROP_SUBSCRIPTION_ID) == (n > 0));
	/* Only a PUBLISH to a subscriber may carry several [MQTT-3.8.2.1.2]. */
	CHECK(where == BW_PUBLISH || n <= 1);
}

/* Buffers that make a decoded block re-encode with everything it had. */
struct carry {
	uint8_t *raw;
	uint32_t *sub_ids;
};

/*
 * Copies p's user properties into p->raw (twice: with bw_props_copy_user()
 * and with bw_props_put_user(), which must agree) and its subscription
 * identifiers into p->sub_ids. The caller frees c with carry_free().
 */
static void carry_props(struct bw_props *p, struct carry *c)
{
	uint32_t n = bw_props_user_size(p);
	uint32_t built_len = 0, off = 0;
	uint8_t *built = xmalloc(n);
	struct bw_str k, v;

	at.stage = "carry properties";
	c->raw = xmalloc(n);
	CHECK(bw_props_copy_user(p, c->raw) == n);
	while (bw_props_next_user(p, &off, &k, &v))
		CHECK(bw_props_put_user(built, n, &built_len, k, v) == 0);
	CHECK(built_len == n && bytes_eq(built, n, c->raw, n));
	if (p->user_count > 0) {
		off = 0;
		bw_props_next_user(p, &off, &k, &v);
		CHECK(bw_props_put_user(built, n, &built_len, k, v) == -ENOSPC && built_len == n);
	}
	free(built);
	p->raw.p = c->raw;
	p->raw.len = n;

	c->sub_ids = xmalloc(sizeof(uint32_t) * p->sub_id_count);
	off = 0;
	for (uint32_t i = 0; i < p->sub_id_count; i++)
		CHECK(bw_props_next_sub_id(p, &off, &c->sub_ids[i]));
	p->sub_ids = p->sub_id_count ? c->sub_ids : NULL;
}

static void carry_free(struct carry *c)
{
	free(c->raw);
	free(c->sub_ids);
}

/* Two decoded blocks hold the same properties (in whatever order). */
static void props_eq(const struct bw_props *a, const struct bw_props *b)
{
	CHECK(a->has == b->has);
	CHECK(a->message_expiry == b->message_expiry && a->session_expiry == b->session_expiry);
	CHECK(a->will_delay == b->will_delay && a->max_packet_size == b->max_packet_size);
	CHECK(a->sub_id == b->sub_id && a->server_keep_alive == b->server_keep_alive);
	CHECK(a->receive_max == b->receive_max && a->topic_alias_max == b->topic_alias_max);
	CHECK(a->topic_alias == b->topic_alias && a->payload_format == b->payload_format);
	CHECK(a->request_problem_info == b->request_problem_info);
	CHECK(a->request_response_info == b->request_response_info);
	CHECK(a->max_qos == b->max_qos && a->retain_available == b->retain_available);
	CHECK(a->wildcard_sub_available == b->wildcard_sub_available);
	CHECK(a->sub_id_available == b->sub_id_available);
	CHECK(a->shared_sub_available == b->shared_sub_available);
	CHECK(VIEW_EQ(a->content_type, b->content_type));
	CHECK(VIEW_EQ(a->response_topic, b->response_topic));
	CHECK(VIEW_EQ(a->correlation_data, b->correlation_data));
	CHECK(VIEW_EQ(a->assigned_client_id, b->assigned_client_id));
	CHECK(VIEW_EQ(a->auth_method, b->auth_method));
	CHECK(VIEW_EQ(a->auth_data, b->auth_data));
	CHECK(VIEW_EQ(a->response_info, b->response_info));
	CHECK(VIEW_EQ(a->server_reference, b->server_reference));
	CHECK(VIEW_EQ(a->reason_string, b->reason_string));
	CHECK(a->user_count == b->user_count && a->sub_id_count == b->sub_id_count);

	uint32_t ao = 0, bo = 0;
	struct bw_str ak, av, bk, bv;
	for (uint32_t i = 0; i < a->user_count; i++) {
		CHECK(bw_props_next_user(a, &ao, &ak, &av) && bw_props_next_user(b, &bo, &bk, &bv));
		CHECK(VIEW_EQ(ak, bk) && VIEW_EQ(av, bv));
	}
	ao = bo = 0;
	for (uint32_t i = 0; i < a->sub_id_count; i++) {
		uint32_t aid, bid;
		CHECK(bw_props_next_sub_id(a, &ao, &aid) && bw_props_next_sub_id(b, &bo, &bid));
		CHECK(aid == bid);
	}
}

/*
 * A block on its own: bw_props_size() and bw_props_encode() agree, and the
 * result decodes to the same properties.
 */
static void props_roundtrip(const struct bw_props *p, unsigned where)
{
	struct bw_props q;
	const char *why = NULL;
	uint32_t n = bw_props_size(p);
	uint8_t *b = xmalloc(n);

	at.stage = "property block round trip";
	CHECK(bw_props_encode(p, b) == n);
	int rc = bw_props_decode(b, n, where, &q, &why);
	if (rc)
		fprintf(stderr, "fuzz_decode: re-decoding a property block: %s\n", why);
	CHECK(rc == 0);
	props_eq(p, &q);
	free(b);
}

/* ---- topics and lists ------------------------------------------------------ */

/* A SUBSCRIBE or UNSUBSCRIBE filter (no_local: 5.0 option set on it). */
static void check_filter(struct bw_str f, bool no_local)
{
	struct bw_topic_share sh;
	int rc = bw_topic_filter_check(f.p, f.len);

	CHECK(rc == 0 || rc == -BW_RC_TOPIC_FILTER_INVALID);
	if (rc != 0)
		return;
	CHECK(f.len > 0);
	size_t levels = bw_topic_levels(f.p, f.len);
	CHECK(levels >= 1 && levels <= (size_t)f.len + 1);
	if (bw_topic_share_split(f.p, f.len, &sh)) {
		/* [MQTT-3.8.3-4]: No Local on a shared subscription. */
		CHECK(!no_local);
		CHECK(sh.group_len > 0 && sh.filter_len > 0);
		CHECK(inside(sh.group, sh.group_len, f.p, f.len));
		CHECK(inside(sh.filter, sh.filter_len, f.p, f.len));
		/*
		 * The inner filter is taken literally (topic.h), so an inner
		 * "$share/..." is a plain filter and not re-split here.
		 */
		struct bw_topic_share inner;
		if (!bw_topic_share_split(sh.filter, sh.filter_len, &inner))
			CHECK(bw_topic_filter_check(sh.filter, sh.filter_len) == 0);
	} else if (!bw_topic_has_wildcard(f.p, f.len)) {
		CHECK(bw_topic_match(f.p, f.len, f.p, f.len));
	}
}

static void walk_subscribe(const struct bw_subscribe *s, uint8_t version)
{
	uint32_t off = 0, n = 0, built_len = 0;
	uint8_t *built = xmalloc(s->entries.len);
	struct bw_sub_entry e;

	at.stage = "SUBSCRIBE entries";
	while (bw_codec_next_sub(s, version, &off, &e)) {
		CHECK(n < s->entries.len / 3 + 1);
		n++;
		CHECK(off <= s->entries.len);
		CHECK(VIEW_INSIDE(e.filter, s->entries.p, s->entries.len));
		CHECK(bw_utf8_valid(e.filter.p, e.filter.len));
		CHECK(e.qos <= 2 && e.retain_handling <= 2);
		if (version != BW_MQTT_5)
			CHECK(!e.no_local && !e.retain_as_published && e.retain_handling == 0);
		check_filter(e.filter, e.no_local);
		CHECK(bw_codec_put_sub(built, s->entries.len, &built_len, &e, version) == 0);
	}
	CHECK(n == s->count && n > 0 && off == s->entries.len);
	/* The options byte has no free bits left, so rebuilding gives the same bytes. */
	CHECK(built_len == s->entries.len && bytes_eq(built, built_len, s->entries.p, built_len));
	off = 0;
	CHECK(bw_codec_next_sub(s, version, &off, &e));
	CHECK(bw_codec_put_sub(built, built_len, &built_len, &e, version) == -ENOSPC);
	CHECK(built_len == s->entries.len);
	free(built);
}

static void walk_unsubscribe(const struct bw_unsubscribe *u)
{
	uint32_t off = 0, n = 0, built_len = 0;
	uint8_t *built = xmalloc(u->entries.len);
	struct bw_str f;

	at.stage = "UNSUBSCRIBE entries";
	while (bw_codec_next_unsub(u, &off, &f)) {
		CHECK(n < u->entries.len / 2 + 1);
		n++;
		CHECK(off <= u->entries.len);
		CHECK(VIEW_INSIDE(f, u->entries.p, u->entries.len));
		CHECK(bw_utf8_valid(f.p, f.len));
		check_filter(f, false);
		CHECK(bw_codec_put_unsub(built, u->entries.len, &built_len, f) == 0);
	}
	CHECK(n == u->count && n > 0 && off == u->entries.len);
	CHECK(built_len == u->entries.len && bytes_eq(built, built_len, u->entries.p, built_len));
	off = 0;
	CHECK(bw_codec_next_unsub(u, &off, &f));
	CHECK(bw_codec_put_unsub(built, built_len, &built_len, f) == -ENOSPC);
	CHECK(built_len == u->entries.len);
	free(built);
}

/* ---- packets --------------------------------------------------------------- */

/* Everything a decoded packet must satisfy on its own. */
static void check_decoded(struct bw_packet *pkt, uint8_t version, const uint8_t *buf, size_t len)
{
	bool v5 = version == BW_MQTT_5;

	at.stage = "decoded packet";
	CHECK(strcmp(bw_packet_name(pkt->type), "?") != 0);
	switch (pkt->type) {
	case BW_CONNECT: {
		const struct bw_connect *c = &pkt->connect;
		CHECK(c->version == BW_MQTT_311 || c->version == BW_MQTT_5);
		CHECK(VIEW_INSIDE(c->client_id, buf, len) && VIEW_INSIDE(c->will_topic, buf, len));
		CHECK(VIEW_INSIDE(c->will_payload, buf, len) && VIEW_INSIDE(c->username, buf, len));
		CHECK(VIEW_INSIDE(c->password, buf, len));
		CHECK(c->will_qos <= 2);
		CHECK(c->will || (c->will_qos == 0 && !c->will_retain && c->will_topic.len == 0));
		CHECK(!c->will || bw_topic_name_check(c->will_topic.p, c->will_topic.len) == 0);
		CHECK(c->has_username || c->username.len == 0);
		CHECK(c->has_password || c->password.len == 0);
		break;
	}
	case BW_CONNACK:
		CHECK(!pkt->connack.session_present || pkt->connack.code == 0);
		break;
	case BW_PUBLISH: {
		const struct bw_publish *p = &pkt->publish;
		CHECK(p->qos <= 2 && (p->qos == 0) == (p->packet_id == 0));
		CHECK(!(p->dup && p->qos == 0));
		CHECK(pkt->flags == ((p->dup ? 8 : 0) | p->qos << 1 | (p->retain ? 1 : 0)));
		CHECK(VIEW_INSIDE(p->topic, buf, len) && VIEW_INSIDE(p->payload, buf, len));
		CHECK(p->payload.len == 0 || p->payload.p + p->payload.len == buf + len);
		if (p->topic.len == 0) {
			CHECK(v5 && has(&p->props, BW_PROP_TOPIC_ALIAS));
		} else {
			CHECK(bw_topic_name_check(p->topic.p, p->topic.len) == 0);
			struct bw_topic_share sh;
			if (!bw_topic_share_split(p->topic.p, p->topic.len, &sh))
				CHECK(bw_topic_match(p->topic.p, p->topic.len, p->topic.p,
				                     p->topic.len));
		}
		break;
	}
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		CHECK(pkt->ack.packet_id != 0);
		CHECK(v5 || pkt->ack.code == 0);
		break;
	case BW_SUBSCRIBE:
		CHECK(pkt->subscribe.packet_id != 0);
		CHECK(VIEW_INSIDE(pkt->subscribe.entries, buf, len));
		walk_subscribe(&pkt->subscribe, version);
		break;
	case BW_UNSUBSCRIBE:
		CHECK(pkt->unsubscribe.packet_id != 0);
		CHECK(VIEW_INSIDE(pkt->unsubscribe.entries, buf, len));
		walk_unsubscribe(&pkt->unsubscribe);
		break;
	case BW_SUBACK:
	case BW_UNSUBACK:
		CHECK(pkt->suback.packet_id != 0);
		CHECK(VIEW_INSIDE(pkt->suback.codes, buf, len));
		if (pkt->type == BW_UNSUBACK && !v5)
			CHECK(pkt->suback.codes.len == 0);
		else
			CHECK(pkt->suback.codes.len > 0);
		break;
	case BW_AUTH:
		CHECK(v5);
		break;
	default:
		break;
	}

	struct blocks b;
	packet_blocks(pkt, &b);
	for (unsigned i = 0; i < b.n; i++)
		check_props(b.p[i], b.where[i], v5, buf, len);
}

/* Two decodes of the same packet (the second of its re-encoding) agree. */
static void packet_eq(struct bw_packet *a, struct bw_packet *b)
{
	at.stage = "compare re-decoded packet";
	CHECK(a->type == b->type && a->flags == b->flags);
	switch (a->type) {
	case BW_CONNECT: {
		const struct bw_connect *x = &a->connect, *y = &b->connect;
		CHECK(x->version == y->version && x->clean_start == y->clean_start);
		CHECK(x->will == y->will && x->will_qos == y->will_qos);
		CHECK(x->will_retain == y->will_retain && x->keep_alive == y->keep_alive);
		CHECK(x->has_username == y->has_username && x->has_password == y->has_password);
		CHECK(VIEW_EQ(x->client_id, y->client_id) && VIEW_EQ(x->will_topic, y->will_topic));
		CHECK(VIEW_EQ(x->will_payload, y->will_payload));
		CHECK(VIEW_EQ(x->username, y->username) && VIEW_EQ(x->password, y->password));
		break;
	}
	case BW_CONNACK:
		CHECK(a->connack.session_present == b->connack.session_present);
		CHECK(a->connack.code == b->connack.code);
		break;
	case BW_PUBLISH: {
		const struct bw_publish *x = &a->publish, *y = &b->publish;
		CHECK(x->qos == y->qos && x->dup == y->dup && x->retain == y->retain);
		CHECK(x->packet_id == y->packet_id);
		CHECK(VIEW_EQ(x->topic, y->topic) && VIEW_EQ(x->payload, y->payload));
		break;
	}
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBREL:
	case BW_PUBCOMP:
		CHECK(a->ack.packet_id == b->ack.packet_id && a->ack.code == b->ack.code);
		break;
	case BW_SUBSCRIBE:
		CHECK(a->subscribe.packet_id == b->subscribe.packet_id);
		CHECK(a->subscribe.count == b->subscribe.count);
		CHECK(VIEW_EQ(a->subscribe.entries, b->subscribe.entries));
		break;
	case BW_UNSUBSCRIBE:
		CHECK(a->unsubscribe.packet_id == b->unsubscribe.packet_id);
		CHECK(a->unsubscribe.count == b->unsubscribe.count);
		CHECK(VIEW_EQ(a->unsubscribe.entries, b->unsubscribe.entries));
		break;
	case BW_SUBACK:
	case BW_UNSUBACK:
		CHECK(a->suback.packet_id == b->suback.packet_id);
		CHECK(VIEW_EQ(a->suback.codes, b->suback.codes));
		break;
	case BW_DISCONNECT:
	case BW_AUTH:
		CHECK(a->disconnect.code == b->disconnect.code);
		break;
	default:
		break;
	}
	struct blocks ba, bb;
	packet_blocks(a, &ba);
	packet_blocks(b, &bb);
	CHECK(ba.n == bb.n);
	for (unsigned i = 0; i < ba.n; i++)
		props_eq(ba.p[i], bb.p[i]);
}

/*
 * Encodes pkt (a decoded packet, which it changes to carry its user
 * properties and subscription identifiers) in `version`. Returns the bytes
 * (the caller frees them) and their length in *len.
 */
static uint8_t *encode(struct bw_packet *pkt, uint8_t version, struct carry *carry, size_t *len)
{
	struct blocks b;

	packet_blocks(pkt, &b);
	for (unsigned i = 0; i < b.n; i++) {
		carry_props(b.p[i], &carry[i]);
		if (version == BW_MQTT_5)
			props_roundtrip(b.p[i], b.where[i]);
	}
	at.stage = "re-encode";
	size_t n = bw_codec_size(pkt, version);
	CHECK(n >= 2);
	uint8_t *out = xmalloc(n);
	uint8_t *small = xmalloc(n - 1);
	CHECK(bw_codec_encode(pkt, version, small, n - 1) == -ENOSPC);
	free(small);
	CHECK(bw_codec_encode(pkt, version, out, n) == (int)n);
	*len = n;
	return out;
}

/* The fan-out path: head + props.raw + payload is the whole encoded PUBLISH. */
static void check_publish_head(const struct bw_publish *p, uint8_t version, const uint8_t *enc,
                               size_t len)
{
	size_t raw = version == BW_MQTT_5 ? p->props.raw.len : 0;

	at.stage = "publish head";
	CHECK(len > raw + p->payload.len);
	size_t head_len = len - raw - p->payload.len;
	uint8_t *head = xmalloc(head_len);
	uint8_t *small = xmalloc(head_len - 1);
	CHECK(bw_codec_publish_head(p, version, small, head_len - 1) == -ENOSPC);
	CHECK(bw_codec_publish_head(p, version, head, head_len) == (int)head_len);
	CHECK(bytes_eq(head, head_len, enc, head_len));
	CHECK(bytes_eq(p->props.raw.p, raw, enc + head_len, raw));
	CHECK(bytes_eq(p->payload.p, p->payload.len, enc + head_len + raw, p->payload.len));
	free(small);
	free(head);
}

/*
 * Decodes the packet wire[0..size) (framed already) in *version, checks
 * it, and round-trips it through the encoder. A CONNECT sets *version.
 */
static void check_packet(const uint8_t *wire, uint32_t size, uint8_t *version)
{
	uint8_t *buf = xmalloc(size);
	struct bw_packet pkt, enc_pkt, re, re2;
	struct carry c1[2] = { { 0 } }, c2[2] = { { 0 } };
	const char *why = NULL;

	memcpy(buf, wire, size);
	at.wire = buf;
	at.wire_len = size;
	at.type = buf[0] >> 4;
	at.stage = "decode";
	memset(&pkt, 0, sizeof(pkt));
	int rc = bw_codec_decode(buf, size, *version, &pkt, &why);
	if (rc != 0) {
		check_reason(rc, why);
		goto out_buf;
	}
	CHECK(pkt.type == buf[0] >> 4 && pkt.flags == (buf[0] & 0x0F));
	if (pkt.type == BW_CONNECT)
		*version = pkt.connect.version;
	at.version = *version;
	check_decoded(&pkt, *version, buf, size);

	enc_pkt = pkt;
	size_t len;
	uint8_t *enc = encode(&enc_pkt, *version, c1, &len);
	at.enc = enc;
	at.enc_len = len;
	struct bw_frame f;
	at.stage = "frame re-encoded";
	CHECK(frame(enc, len, BW_PACKET_SIZE_MAX, &f) == 0 && f.size == len);
	at.stage = "re-decode";
	memset(&re, 0, sizeof(re));
	rc = bw_codec_decode(enc, len, *version, &re, &why);
	if (rc != 0)
		fprintf(stderr, "fuzz_decode: re-decoding: %s (%s)\n", why,
		        bw_reason_name((uint8_t)-rc));
	CHECK(rc == 0);
	check_decoded(&re, *version, enc, len);
	packet_eq(&pkt, &re);
	if (pkt.type == BW_PUBLISH)
		check_publish_head(&enc_pkt.publish, *version, enc, len);

	/* A decoded re-encoding is canonical: encoding it again changes nothing. */
	re2 = re;
	size_t len2;
	uint8_t *enc2 = encode(&re2, *version, c2, &len2);
	at.stage = "second encode";
	CHECK(bytes_eq(enc, len, enc2, len2));

	free(enc2);
	for (unsigned i = 0; i < 2; i++) {
		carry_free(&c1[i]);
		carry_free(&c2[i]);
	}
	free(enc);
	at.enc = NULL;
out_buf:
	free(buf);
	at.wire = NULL;
}

/* The stream offset data[1] selects: any offset for short streams, spread out for long ones. */
static size_t cut_at(uint8_t sel, size_t len)
{
	if (len <= 255)
		return sel % (len + 1);
	return len * sel / 255;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER_LEN)
		return 0;
	uint8_t version = data[0] & 1 ? BW_MQTT_5 : BW_MQTT_311;
	uint32_t max = max_sizes[(data[0] >> 1) & 7];
	const uint8_t *s = data + HEADER_LEN;
	size_t len = size - HEADER_LEN;
	size_t cut = cut_at(data[1], len);
	uint32_t *sizes = xmalloc(sizeof(uint32_t) * (len / 2 + 1));
	size_t n = 0, pos = 0;
	struct bw_frame f;
	int rc;

	memset(&at, 0, sizeof(at));
	at.version = version;
	for (;;) {
		at.stage = "frame";
		at.off = pos;
		at.type = pos < len ? s[pos] >> 4 : 0;
		rc = frame(s + pos, len - pos, max, &f);
		check_prefixes(s + pos, len - pos, max, rc, &f, cut >= pos ? cut - pos : 0);
		if (rc != 0)
			break;
		CHECK(n < len / 2 + 1);
		sizes[n++] = f.size;
		check_packet(s + pos, f.size, &version);
		pos += f.size;
	}
	check_chunked(s, len, max, cut, sizes, n, rc);
	free(sizes);
	return 0;
}
