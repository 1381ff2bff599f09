/*
 * Session message state: packet id allocation, the inflight window and its
 * limit, acknowledgements in and out of order (holes, compaction), the QoS 2
 * exchange, the queue's bound under both policies, redelivery order, the
 * inbound QoS 2 set, and that every message reference is dropped exactly
 * once.
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
