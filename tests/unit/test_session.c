/*
 * Session message state: packet id allocation, the inflight window and its
 * limit, acknowledgements in and out of order (holes, compaction), the QoS 2
 * exchange, the queue's bound under both policies, redelivery order, the
 * inbound QoS 2 set, that every message reference is dropped exactly
 * once, and what the observer hears of stored deliveries (seq above 0).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/msg.h"
#include "node/core/session.h"

#include <errno.h>
#include <string.h>

static struct bw_msg *msg(uint8_t qos)
{
	struct bw_msg *m = bw_msg_new("t", 1, NULL, "x", 1, qos, false, 0);
	assert_non_null(m);
	return m;
}

static struct bw_session *session(uint16_t window, uint32_t queue, bool drop_oldest)
{
	struct bw_session_limits lim = { .inflight_max = window,
		                         .inbound_max = 4,
		                         .queue_max = queue,
		                         .drop_oldest = drop_oldest };
	struct bw_session *s = bw_session_new(&lim);
	assert_non_null(s);
	return s;
}

/* Queues one delivery of m at qos; the session takes its own reference. */
static int offer(struct bw_session *s, struct bw_msg *m, uint8_t qos)
{
	struct bw_delivery d = { .msg = m, .qos = qos };
	return bw_session_enqueue(s, &d);
}

static void test_qos0_passes_through(void **state)
{
	struct bw_session *s = session(2, 10, false);
	struct bw_msg *m = msg(0);
	struct bw_delivery d;
	const struct bw_inflight *f;

	assert_int_equal(offer(s, m, 0), 0);
	assert_int_equal(bw_msg_refs(m), 2);
	assert_true(bw_session_next(s, 5, &d, &f));
	assert_null(f);
	assert_ptr_equal(d.msg, m);
	bw_msg_unref(&d.msg); /* the caller's reference for QoS 0 */
	assert_int_equal(bw_msg_refs(m), 1);
	assert_false(bw_session_next(s, 5, &d, &f));
	bw_session_free(&s);
	assert_null(s);
	bw_msg_unref(&m);
}

static void test_window_and_packet_ids(void **state)
{
	struct bw_session *s = session(2, 10, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	for (int i = 0; i < 3; i++)
		assert_int_equal(offer(s, m, 1), 0);
	assert_true(bw_session_next(s, 7, &d, &f));
	assert_int_equal(f->packet_id, 1);
	assert_int_equal(f->state, BW_INFLIGHT_PUBLISHED);
	assert_int_equal(f->sent_at_ms, 7);
	assert_true(bw_session_next(s, 7, &d, &f));
	assert_int_equal(f->packet_id, 2);
	/* The window (2) is full: the third waits. */
	assert_false(bw_session_next(s, 7, &d, &f));
	assert_int_equal(bw_session_inflight(s), 2);
	assert_int_equal(bw_session_queued(s), 1);
	assert_int_equal(bw_session_puback(s, 1), 0);
	assert_int_equal(bw_session_puback(s, 1), -ENOENT);
	assert_true(bw_session_next(s, 8, &d, &f));
	assert_int_equal(f->packet_id, 3);
	assert_int_equal(bw_msg_refs(m), 3); /* test + two inflight */
	bw_session_free(&s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_out_of_order_acks_and_redelivery_order(void **state)
{
	struct bw_session *s = session(4, 10, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	for (int i = 0; i < 4; i++) {
		offer(s, m, 1);
		assert_true(bw_session_next(s, 0, &d, &f));
	}
	assert_int_equal(bw_session_puback(s, 2), 0);
	assert_int_equal(bw_session_puback(s, 3), 0);
	uint32_t cursor = 0;
	uint16_t order[4];
	int n = 0;
	while ((f = bw_session_inflight_at(s, &cursor)))
		order[n++] = f->packet_id;
	assert_int_equal(n, 2);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 4);
	assert_int_equal(bw_session_puback(s, 1), 0);
	assert_int_equal(bw_session_inflight(s), 1);
	bw_session_free(&s);
	bw_msg_unref(&m);
}

static void test_window_does_not_grow_through_holes(void **state)
{
	/* A client that acknowledges everything but its oldest delivery. */
	struct bw_session *s = session(4, 10, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	offer(s, m, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	uint16_t oldest = f->packet_id;
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(offer(s, m, 1), 0);
		assert_true(bw_session_next(s, 0, &d, &f));
		assert_int_not_equal(f->packet_id, oldest);
		assert_int_equal(bw_session_puback(s, f->packet_id), 0);
	}
	assert_int_equal(bw_session_inflight(s), 1);
	assert_int_equal(bw_msg_refs(m), 2);
	assert_int_equal(bw_session_puback(s, oldest), 0);
	bw_session_free(&s);
	bw_msg_unref(&m);
}

static void test_qos2_exchange(void **state)
{
	struct bw_session *s = session(2, 10, false);
	struct bw_msg *m = msg(2);
	struct bw_delivery d;
	const struct bw_inflight *f;

	offer(s, m, 2);
	assert_true(bw_session_next(s, 0, &d, &f));
	uint16_t id = f->packet_id;
	assert_int_equal(bw_session_pubcomp(s, id), -ENOENT); /* PUBREC first */
	assert_int_equal(bw_session_puback(s, id), -ENOENT);  /* not QoS 1 */
	assert_int_equal(bw_session_pubrec(s, id, 9), 0);
	uint32_t cursor = 0;
	f = bw_session_inflight_at(s, &cursor);
	assert_int_equal(f->state, BW_INFLIGHT_RELEASED);
	assert_int_equal(f->sent_at_ms, 9);
	assert_int_equal(bw_session_pubrec(s, id, 10), 0); /* a repeated PUBREC */
	assert_int_equal(bw_session_pubcomp(s, id), 0);
	assert_int_equal(bw_session_inflight(s), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_session_free(&s);
	bw_msg_unref(&m);
}

static void test_queue_bound_refuse_new(void **state)
{
	struct bw_session *s = session(1, 2, false);
	struct bw_msg *m = msg(1);

	assert_int_equal(offer(s, m, 1), 0);
	assert_int_equal(offer(s, m, 1), 0);
	assert_int_equal(offer(s, m, 1), -ENOBUFS);
	assert_int_equal(bw_session_queued(s), 2);
	assert_int_equal(bw_session_stats(s)->queued_dropped, 1);
	assert_int_equal(bw_msg_refs(m), 3);
	bw_session_free(&s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_queue_bound_drop_oldest(void **state)
{
	struct bw_session *s = session(1, 2, true);
	struct bw_msg *a = msg(0), *b = msg(0), *c = msg(0);
	struct bw_delivery d;
	const struct bw_inflight *f;

	offer(s, a, 0);
	offer(s, b, 0);
	assert_int_equal(offer(s, c, 0), 0);
	assert_int_equal(bw_msg_refs(a), 1); /* dropped */
	assert_int_equal(bw_session_stats(s)->queued_dropped, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_ptr_equal(d.msg, b);
	bw_msg_unref(&d.msg);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_ptr_equal(d.msg, c);
	bw_msg_unref(&d.msg);
	bw_session_free(&s);
	bw_msg_unref(&a);
	bw_msg_unref(&b);
	bw_msg_unref(&c);
}

static void test_packet_ids_wrap_and_skip_in_use(void **state)
{
	struct bw_session *s = session(2, 10, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	/* Keep id 1 inflight while the counter goes round. */
	offer(s, m, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(f->packet_id, 1);
	for (uint32_t i = 2; i <= 65535; i++) {
		offer(s, m, 1);
		assert_true(bw_session_next(s, 0, &d, &f));
		assert_int_equal(f->packet_id, i);
		bw_session_puback(s, f->packet_id);
	}
	offer(s, m, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(f->packet_id, 2); /* 1 is still in use */
	bw_session_free(&s);
	bw_msg_unref(&m);
}

/* The same past SCAN_MAX (64) inflight, where a bitmap tracks the ids. */
static void test_packet_ids_with_a_large_window(void **state)
{
	struct bw_session *s = session(1000, 100000, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	/* Ids 1..200 stay inflight. */
	for (uint32_t i = 1; i <= 200; i++) {
		offer(s, m, 1);
		assert_true(bw_session_next(s, 0, &d, &f));
		assert_int_equal(f->packet_id, i);
	}
	/* Round the counter once, completing each new one at once. */
	for (uint32_t i = 201; i <= 65535; i++) {
		offer(s, m, 1);
		assert_true(bw_session_next(s, 0, &d, &f));
		assert_int_equal(f->packet_id, i);
		assert_int_equal(bw_session_puback(s, f->packet_id), 0);
	}
	offer(s, m, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(f->packet_id, 201); /* 1..200 are still in use */
	/* A completed id is free again. */
	assert_int_equal(bw_session_puback(s, 7), 0);
	for (uint32_t i = 202; i <= 65535; i++) {
		offer(s, m, 1);
		assert_true(bw_session_next(s, 0, &d, &f));
		assert_int_equal(bw_session_puback(s, f->packet_id), 0);
	}
	offer(s, m, 1);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(f->packet_id, 7);
	assert_int_equal(bw_session_inflight(s), 201);
	bw_session_free(&s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_inbound_qos2(void **state)
{
	struct bw_session *s = session(1, 1, false); /* inbound_max 4 */

	assert_int_equal(bw_session_inbound_qos2(s, 10), 1);
	assert_int_equal(bw_session_inbound_qos2(s, 10), 0); /* a DUP resend */
	assert_int_equal(bw_session_inbound_qos2(s, 11), 1);
	assert_int_equal(bw_session_inbound_qos2(s, 12), 1);
	assert_int_equal(bw_session_inbound_qos2(s, 13), 1);
	assert_int_equal(bw_session_inbound_qos2(s, 14), -ENOBUFS);
	assert_int_equal(bw_session_inbound_release(s, 10), 0);
	assert_int_equal(bw_session_inbound_release(s, 10), -ENOENT);
	assert_int_equal(bw_session_inbound_qos2(s, 14), 1);
	assert_int_equal(bw_session_inbound_release(s, 11), 0);
	assert_int_equal(bw_session_inbound_qos2(s, 10), 1); /* a new message now */
	bw_session_free(&s);
}

static void test_smaller_window_keeps_what_is_inflight(void **state)
{
	struct bw_session *s = session(3, 10, false);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	for (int i = 0; i < 4; i++)
		offer(s, m, 1);
	for (int i = 0; i < 3; i++)
		assert_true(bw_session_next(s, 0, &d, &f));
	bw_session_set_inflight_max(s, 1);
	assert_int_equal(bw_session_inflight(s), 3);
	bw_session_puback(s, 1);
	assert_false(bw_session_next(s, 0, &d, &f)); /* 2 inflight > 1 */
	bw_session_puback(s, 2);
	bw_session_puback(s, 3);
	assert_true(bw_session_next(s, 0, &d, &f));
	bw_session_free(&s);
	bw_msg_unref(&m);
}

/* ---- the observer: what happens to stored deliveries -------------------- */

/* What the observer heard, in order. */
struct heard {
	int n;
	struct {
		enum bw_session_event ev;
		const struct bw_inflight *f;
		uint64_t seq;
		uint16_t packet_id;
		uint8_t state;
		uint64_t sent_at_ms;
		struct bw_msg *msg;
	} e[16];
};

static void observe(void *owner, enum bw_session_event ev, const struct bw_inflight *f)
{
	struct heard *h = owner;
	assert_true(h->n < 16);
	h->e[h->n].ev = ev;
	h->e[h->n].f = f;
	h->e[h->n].seq = f->d.seq;
	h->e[h->n].packet_id = f->packet_id;
	h->e[h->n].state = f->state;
	h->e[h->n].sent_at_ms = f->sent_at_ms;
	h->e[h->n].msg = f->d.msg;
	h->n++;
}

static struct bw_session *observed(uint16_t window, struct heard *h)
{
	struct bw_session *s = session(window, 10, false);
	memset(h, 0, sizeof(*h));
	bw_session_set_owner(s, h);
	bw_session_set_observer(s, observe);
	return s;
}

/* Queues one delivery of m at qos with its number in the session store. */
static int offer_stored(struct bw_session *s, struct bw_msg *m, uint8_t qos, uint64_t seq)
{
	struct bw_delivery d = { .msg = m, .qos = qos, .seq = seq };
	return bw_session_enqueue(s, &d);
}

static void expect_heard(const struct heard *h, int i, enum bw_session_event ev, uint64_t seq,
                         uint16_t packet_id, uint8_t state)
{
	assert_true(i < h->n);
	assert_int_equal(h->e[i].ev, ev);
	assert_int_equal(h->e[i].seq, seq);
	assert_int_equal(h->e[i].packet_id, packet_id);
	assert_int_equal(h->e[i].state, state);
}

static void test_observer_qos1(void **state)
{
	struct heard h;
	struct bw_session *s = observed(2, &h);
	struct bw_msg *m = msg(1);
	struct bw_delivery d;
	const struct bw_inflight *f;

	assert_int_equal(offer_stored(s, m, 1, 11), 0);
	assert_int_equal(offer_stored(s, m, 1, 12), 0);
	assert_int_equal(h.n, 0); /* queued: nothing happened to them yet */
	assert_true(bw_session_next(s, 7, &d, &f));
	assert_int_equal(d.seq, 11);
	assert_int_equal(f->d.seq, 11);
	assert_int_equal(h.n, 1);
	expect_heard(&h, 0, BW_SESSION_SENT, 11, 1, BW_INFLIGHT_PUBLISHED);
	assert_ptr_equal(h.e[0].f, f); /* the inflight entry itself */
	assert_int_equal(h.e[0].sent_at_ms, 7);
	assert_true(bw_session_next(s, 8, &d, &f));
	expect_heard(&h, 1, BW_SESSION_SENT, 12, 2, BW_INFLIGHT_PUBLISHED);

	/* Acknowledged out of order: DONE for each, the message still held. */
	assert_int_equal(bw_session_puback(s, 2), 0);
	assert_int_equal(h.n, 3);
	expect_heard(&h, 2, BW_SESSION_DONE, 12, 2, BW_INFLIGHT_PUBLISHED);
	assert_ptr_equal(h.e[2].msg, m);
	assert_int_equal(bw_session_puback(s, 2), -ENOENT);    /* once */
	assert_int_equal(bw_session_pubrec(s, 1, 9), -ENOENT); /* QoS 1 has none */
	assert_int_equal(h.n, 3);
	assert_int_equal(bw_session_puback(s, 1), 0);
	assert_int_equal(h.n, 4);
	expect_heard(&h, 3, BW_SESSION_DONE, 11, 1, BW_INFLIGHT_PUBLISHED);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_session_free(&s);
	bw_msg_unref(&m);
}

static void test_observer_qos2(void **state)
{
	struct heard h;
	struct bw_session *s = observed(2, &h);
	struct bw_msg *m = msg(2);
	struct bw_delivery d;
	const struct bw_inflight *f;

	assert_int_equal(offer_stored(s, m, 2, 21), 0);
	assert_true(bw_session_next(s, 3, &d, &f));
	uint16_t id = f->packet_id;
	assert_int_equal(h.n, 1);
	expect_heard(&h, 0, BW_SESSION_SENT, 21, id, BW_INFLIGHT_PUBLISHED);
	assert_int_equal(bw_session_pubcomp(s, id), -ENOENT); /* PUBREC first */
	assert_int_equal(h.n, 1);
	assert_int_equal(bw_session_pubrec(s, id, 9), 0);
	assert_int_equal(h.n, 2);
	expect_heard(&h, 1, BW_SESSION_PUBREC, 21, id, BW_INFLIGHT_RELEASED);
	assert_int_equal(h.e[1].sent_at_ms, 9);
	/* A repeated PUBREC (our PUBREL was lost) is no news. */
	assert_int_equal(bw_session_pubrec(s, id, 10), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(bw_session_pubcomp(s, id), 0);
	assert_int_equal(h.n, 3);
	expect_heard(&h, 2, BW_SESSION_DONE, 21, id, BW_INFLIGHT_RELEASED);
	assert_ptr_equal(h.e[2].msg, m);
	assert_int_equal(bw_session_pubcomp(s, id), -ENOENT);
	assert_int_equal(h.n, 3);

	/*
	 * A PUBREC that refuses the message (0x80 and above) ends the exchange
	 * the way the connection handles it: PUBREC, then PUBCOMP at once.
	 */
	assert_int_equal(offer_stored(s, m, 2, 22), 0);
	assert_true(bw_session_next(s, 11, &d, &f));
	id = f->packet_id;
	assert_int_equal(bw_session_pubrec(s, id, 12), 0);
	assert_int_equal(bw_session_pubcomp(s, id), 0);
	assert_int_equal(h.n, 6);
	expect_heard(&h, 3, BW_SESSION_SENT, 22, id, BW_INFLIGHT_PUBLISHED);
	expect_heard(&h, 4, BW_SESSION_PUBREC, 22, id, BW_INFLIGHT_RELEASED);
	expect_heard(&h, 5, BW_SESSION_DONE, 22, id, BW_INFLIGHT_RELEASED);
	assert_int_equal(bw_session_inflight(s), 0);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_session_free(&s);
	bw_msg_unref(&m);
}

static void test_observer_ignores_deliveries_not_stored(void **state)
{
	struct heard h;
	struct bw_session *s = observed(4, &h);
	struct bw_msg *m = msg(2);
	struct bw_delivery d;
	const struct bw_inflight *f;

	/* Not stored (seq 0) at QoS 1 and 2, and QoS 0 (never in the window). */
	assert_int_equal(offer_stored(s, m, 1, 0), 0);
	assert_int_equal(offer_stored(s, m, 2, 0), 0);
	assert_int_equal(offer_stored(s, m, 0, 5), 0);
	assert_int_equal(offer_stored(s, m, 1, 6), 0); /* one that is, last */
	assert_true(bw_session_next(s, 0, &d, &f));
	uint16_t q1 = f->packet_id;
	assert_true(bw_session_next(s, 0, &d, &f));
	uint16_t q2 = f->packet_id;
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_null(f);
	bw_msg_unref(&d.msg);
	assert_int_equal(h.n, 0);
	assert_int_equal(bw_session_pubrec(s, q2, 1), 0);
	assert_int_equal(bw_session_pubcomp(s, q2), 0);
	assert_int_equal(bw_session_puback(s, q1), 0);
	assert_int_equal(h.n, 0);
	/* The observer is there: the stored one is heard. */
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(h.n, 1);
	expect_heard(&h, 0, BW_SESSION_SENT, 6, f->packet_id, BW_INFLIGHT_PUBLISHED);
	assert_int_equal(bw_session_puback(s, f->packet_id), 0);
	assert_int_equal(h.n, 2);
	bw_session_free(&s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_observer_not_called_when_freed(void **state)
{
	struct heard h;
	struct bw_session *s = observed(2, &h);
	struct bw_msg *m = msg(2);
	struct bw_delivery d;
	const struct bw_inflight *f;

	/* One QoS 1 and one QoS 2 (PUBREC received) inflight, one queued. */
	offer_stored(s, m, 1, 1);
	offer_stored(s, m, 2, 2);
	offer_stored(s, m, 2, 3);
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_true(bw_session_next(s, 0, &d, &f));
	assert_int_equal(bw_session_pubrec(s, f->packet_id, 0), 0);
	assert_int_equal(h.n, 3);
	bw_session_free(&s);
	assert_int_equal(h.n, 3);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

static void test_restored_deliveries_keep_their_seq(void **state)
{
	struct heard h;
	struct bw_session *s = observed(4, &h);
	struct bw_msg *m = msg(2);

	struct bw_delivery d1 = { .msg = m, .qos = 1, .seq = 31 };
	struct bw_delivery d2 = { .msg = m, .qos = 2, .seq = 32 };
	struct bw_delivery d3 = { .msg = m, .qos = 2, .seq = 33 };
	assert_int_equal(bw_session_restore(s, &d1, 5, BW_INFLIGHT_PUBLISHED, 100, 0), 0);
	assert_int_equal(bw_session_restore(s, &d2, 6, BW_INFLIGHT_RELEASED, 100, 0), 0);
	assert_int_equal(bw_session_restore(s, &d3, 7, BW_INFLIGHT_PUBLISHED, 100, 8), 0);
	assert_int_equal(h.n, 0); /* restoring is not sending */
	uint32_t cursor = 0;
	const struct bw_inflight *f;
	uint64_t seqs[3];
	for (int i = 0; i < 3; i++) {
		assert_non_null(f = bw_session_inflight_at(s, &cursor));
		seqs[i] = f->d.seq;
	}
	assert_int_equal(seqs[0], 31);
	assert_int_equal(seqs[1], 32);
	assert_int_equal(seqs[2], 33);

	assert_int_equal(bw_session_puback(s, 5), 0);
	assert_int_equal(h.n, 1);
	expect_heard(&h, 0, BW_SESSION_DONE, 31, 5, BW_INFLIGHT_PUBLISHED);
	/* Restored with its PUBREC received: a PUBREC again is no news. */
	assert_int_equal(bw_session_pubrec(s, 6, 200), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(bw_session_pubcomp(s, 6), 0);
	assert_int_equal(h.n, 2);
	expect_heard(&h, 1, BW_SESSION_DONE, 32, 6, BW_INFLIGHT_RELEASED);
	assert_int_equal(bw_session_pubrec(s, 7, 200), 0);
	assert_int_equal(bw_session_pubcomp(s, 7), 0);
	assert_int_equal(h.n, 4);
	expect_heard(&h, 2, BW_SESSION_PUBREC, 33, 7, BW_INFLIGHT_RELEASED);
	expect_heard(&h, 3, BW_SESSION_DONE, 33, 7, BW_INFLIGHT_RELEASED);
	assert_int_equal(bw_session_inflight(s), 0);
	bw_session_free(&s);
	assert_int_equal(bw_msg_refs(m), 1);
	bw_msg_unref(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qos0_passes_through),
		cmocka_unit_test(test_window_and_packet_ids),
		cmocka_unit_test(test_out_of_order_acks_and_redelivery_order),
		cmocka_unit_test(test_window_does_not_grow_through_holes),
		cmocka_unit_test(test_qos2_exchange),
		cmocka_unit_test(test_queue_bound_refuse_new),
		cmocka_unit_test(test_queue_bound_drop_oldest),
		cmocka_unit_test(test_packet_ids_wrap_and_skip_in_use),
		cmocka_unit_test(test_packet_ids_with_a_large_window),
		cmocka_unit_test(test_inbound_qos2),
		cmocka_unit_test(test_smaller_window_keeps_what_is_inflight),
		cmocka_unit_test(test_observer_qos1),
		cmocka_unit_test(test_observer_qos2),
		cmocka_unit_test(test_observer_ignores_deliveries_not_stored),
		cmocka_unit_test(test_observer_not_called_when_freed),
		cmocka_unit_test(test_restored_deliveries_keep_their_seq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
