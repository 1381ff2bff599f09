/*
 * One worker's io_uring (see ring.h). The loop follows TigerBeetle's
 * src/io/linux.zig: user_data is the address of a caller-owned struct
 * bw_op, completions are copied out of the CQ in a batch and the CQ is
 * advanced before any callback runs, so a callback that submits never
 * re-enters the loop. Messages from other rings arrive as CQEs whose
 * user_data has bit 0 set, which no bw_op address has (a bw_op holds a
 * function pointer, so it is at least 8-aligned); the 64-bit payload is
 * split over the user_data's other 63 bits and the CQE's res.
 */
#include "node/io/ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MSG_TAG 1ull

_Static_assert(_Alignof(struct bw_op) >= 2, "bw_op addresses must leave bit 0 free");

/* The cancel's own completion: nobody waits for it. */
static void nop_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
}

static struct bw_op nop_op = { .done = nop_done };

static int arm_wake(struct bw_ring *r);

/*
 * The wake eventfd was read. The coalescing race, in steps:
 *   1. a waker sets wake_pending and, if it was clear, writes the eventfd;
 *   2. the read completes here and wake_pending is cleared (an exchange, so
 *      this thread acquires what the waker released, such as a queue push);
 *   3. a waker that set the flag before step 2 needs no write of its own:
 *      the caller looks at its queues after bw_ring_run() returns;
 *   4. a waker after step 2 sees the flag clear and writes again, which the
 *      read re-armed below (submitted with the next run) picks up.
 */
static void wake_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_ring *r = BW_CONTAINER_OF(op, struct bw_ring, wake_op);

	r->wake_armed = false;
	if (res == (int32_t)sizeof(r->wake_val)) {
		r->stats.wakes++;
		r->stats.wake_writes += r->wake_val;
	}
	atomic_exchange(&r->wake_pending, false);
	/* A failure leaves wake_armed false; the next run tries again. */
	(void)arm_wake(r);
}

/* The sender's side of bw_ring_msg(). */
static void msg_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_ring *r = BW_CONTAINER_OF(op, struct bw_ring, msg_op);

	if (res < 0)
		r->stats.msg_errors++;
}

/* Publishes the buffers put since the last call: one tail store for all. */
static void flush_bufs(struct bw_ring *r)
{
	if (r->buf_pending == 0)
		return;
	io_uring_buf_ring_advance(r->br, (int)r->buf_pending);
	r->buf_pending = 0;
}

/*
 * An SQE, submitting what is queued when the SQ is full. Buffers are
 * published first, so that a recv re-armed after -ENOBUFS finds them.
 */
static int get_sqe(struct bw_ring *r, struct io_uring_sqe **out)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		r->stats.sq_full++;
		flush_bufs(r);
		int rc = io_uring_submit(&r->ring);
		if (rc < 0)
			return rc;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return -EBUSY;
	}
	*out = sqe;
	return 0;
}

/* Every prepared SQE ends in exactly one completion without F_MORE. */
static void track(struct bw_ring *r, struct io_uring_sqe *sqe, struct bw_op *op)
{
	assert(op && op->done);
	io_uring_sqe_set_data(sqe, op);
	r->stats.submits++;
	r->stats.inflight++;
}

static int arm_wake(struct bw_ring *r)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_read(sqe, r->wake_fd, &r->wake_val, sizeof(r->wake_val), 0);
	track(r, sqe, &r->wake_op);
	r->wake_armed = true;
	return 0;
}

static int check_params(const struct bw_ring_params *p)
{
	if (p->entries == 0 || p->entries > BW_RING_ENTRIES_MAX)
		return -EINVAL;
	if (p->buf_count == 0 || p->buf_count > BW_RING_BUF_COUNT_MAX ||
	    (p->buf_count & (p->buf_count - 1)) != 0)
		return -EINVAL;
	if (p->buf_size == 0 || p->buf_size > BW_RING_BUF_SIZE_MAX)
		return -EINVAL;
	return 0;
}

/*
 * The wished-for flags first, then without the 6.0/6.1 ones, then none:
 * only the fast paths depend on them, never correctness.
 */
static int queue_init(struct bw_ring *r, uint32_t entries)
{
	static const unsigned tries[] = {
		IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int rc = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params params;

		memset(&params, 0, sizeof(params));
		params.flags = tries[i];
		rc = io_uring_queue_init_params(entries, &r->ring, &params);
		if (rc == 0) {
			r->setup_flags = tries[i];
			return 0;
		}
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

static void *map_anon(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int bw_ring_init(struct bw_ring *r, const struct bw_ring_params *p)
{
	struct bw_ring_params d = { 0 };
	int rc;

	memset(r, 0, sizeof(*r));
	r->wake_fd = -1;
	if (p)
		d = *p;
	d.entries = d.entries ? d.entries : BW_RING_ENTRIES_DEFAULT;
	d.buf_count = d.buf_count ? d.buf_count : BW_RING_BUF_COUNT_DEFAULT;
	d.buf_size = d.buf_size ? d.buf_size : BW_RING_BUF_SIZE_DEFAULT;
	rc = check_params(&d);
	if (rc < 0)
		return rc;
	r->buf_count = d.buf_count;
	r->buf_size = d.buf_size;
	r->on_msg = d.on_msg;
	r->wake_op.done = wake_done;
	r->msg_op.done = msg_done;
	atomic_init(&r->wake_pending, false);

	rc = queue_init(r, d.entries);
	if (rc < 0)
		return rc;

	/* The buffer ring must be page-aligned; mmap gives that. */
	r->br_bytes = (size_t)r->buf_count * sizeof(struct io_uring_buf);
	r->br = map_anon(r->br_bytes);
	if (!r->br) {
		rc = -ENOMEM;
		goto err_queue;
	}
	r->bufs_bytes = (size_t)r->buf_count * r->buf_size;
	r->bufs = map_anon(r->bufs_bytes);
	if (!r->bufs) {
		rc = -ENOMEM;
		goto err_br;
	}
	r->lent = calloc((r->buf_count + 63) / 64, sizeof(uint64_t));
	if (!r->lent) {
		rc = -ENOMEM;
		goto err_bufs;
	}

	struct io_uring_buf_reg reg = {
		.ring_addr = (uintptr_t)r->br,
		.ring_entries = r->buf_count,
		.bgid = 0,
	};
	rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
	if (rc < 0)
		goto err_lent;
	io_uring_buf_ring_init(r->br);
	int mask = io_uring_buf_ring_mask(r->buf_count);
	for (uint32_t bid = 0; bid < r->buf_count; bid++)
		io_uring_buf_ring_add(r->br, bw_ring_buf(r, (uint16_t)bid), r->buf_size,
		                      (unsigned short)bid, mask, (int)bid);
	io_uring_buf_ring_advance(r->br, (int)r->buf_count);

	/* Blocking on purpose: io_uring waits on it by poll, and no write can block. */
	r->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (r->wake_fd < 0) {
		rc = -errno;
		goto err_unregister;
	}
	rc = arm_wake(r);
	if (rc < 0)
		goto err_eventfd;
	return 0;

err_eventfd:
	close(r->wake_fd);
err_unregister:
	io_uring_unregister_buf_ring(&r->ring, 0);
err_lent:
	free(r->lent);
err_bufs:
	munmap(r->bufs, r->bufs_bytes);
err_br:
	munmap(r->br, r->br_bytes);
err_queue:
	io_uring_queue_exit(&r->ring);
	memset(r, 0, sizeof(*r));
	r->wake_fd = -1;
	return rc;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Cancels everything and reaps until nothing is in flight, calling no
 * callback: the ops may already be gone. Bounded by a second.
 */
static void drain(struct bw_ring *r)
{
	struct io_uring_sqe *sqe;
	uint64_t deadline = now_ms() + 1000;

	if (get_sqe(r, &sqe) == 0) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		track(r, sqe, &nop_op);
	}
	while (r->stats.inflight > 0 && now_ms() < deadline) {
		struct __kernel_timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
		struct io_uring_cqe *cqe;
		struct io_uring_cqe *cqes[BW_RING_BATCH];

		io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
		unsigned n = io_uring_peek_batch_cqe(&r->ring, cqes, BW_RING_BATCH);
		for (unsigned i = 0; i < n; i++) {
			if (!(cqes[i]->user_data & MSG_TAG) &&
			    !(cqes[i]->flags & IORING_CQE_F_MORE))
				r->stats.inflight--;
		}
		io_uring_cq_advance(&r->ring, n);
	}
}

void bw_ring_exit(struct bw_ring *r)
{
	assert(!r->running);
	if (r->wake_fd < 0)
		return; /* never set up, or exited already */
	drain(r);
	bool idle = r->stats.inflight == 0;
	io_uring_queue_exit(&r->ring);
	close(r->wake_fd);
	r->wake_fd = -1;
	free(r->lent);
	/*
	 * A request the kernel would not give up may still write into the
	 * buffers: leak them rather than unmap memory that could be reused.
	 */
	if (idle) {
		munmap(r->bufs, r->bufs_bytes);
		munmap(r->br, r->br_bytes);
	}
	r->lent = NULL;
	r->bufs = NULL;
	r->br = NULL;
}

int bw_ring_submit(struct bw_ring *r)
{
	flush_bufs(r);
	int rc = io_uring_submit(&r->ring);
	return rc < 0 ? rc : 0;
}

/* A buffer changes hands: the lent bitmap catches double puts. */
static void lend(struct bw_ring *r, uint32_t flags)
{
	int bid = bw_ring_cqe_bid(flags);

	if (bid < 0)
		return;
	assert((uint32_t)bid < r->buf_count);
	assert(!(r->lent[bid / 64] & (1ull << (bid % 64))));
	r->lent[bid / 64] |= 1ull << (bid % 64);
	r->stats.bufs_out++;
}

static void dispatch(struct bw_ring *r, uint64_t user_data, int32_t res, uint32_t flags)
{
	r->stats.completions++;
	if (user_data & MSG_TAG) {
		uint64_t data = (user_data >> 1) | ((uint64_t)(uint32_t)res << 63);

		r->stats.msgs++;
		if (r->on_msg)
			r->on_msg(r, data);
		return;
	}
	struct bw_op *op = (struct bw_op *)(uintptr_t)user_data;

	if (!(flags & IORING_CQE_F_MORE))
		r->stats.inflight--;
	if (res == -ENOBUFS)
		r->stats.enobufs++;
	lend(r, flags);
	op->done(op, res, flags);
}

int bw_ring_run(struct bw_ring *r, int timeout_ms)
{
	struct io_uring_cqe *cqes[BW_RING_BATCH];
	struct io_uring_cqe *cqe;
	int rc;

	assert(!r->running && "bw_ring_run() called from a callback");
	if (!r->wake_armed)
		(void)arm_wake(r);
	flush_bufs(r);
	if (timeout_ms < 0) {
		rc = io_uring_submit_and_wait(&r->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ms / 1000,
			.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
		};
		rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
	}
	/* Timeouts, signals and a busy CQ still leave something to reap. */
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
		return rc;

	/* Copy out and advance first: callbacks may prep and even submit. */
	unsigned n = io_uring_peek_batch_cqe(&r->ring, cqes, BW_RING_BATCH);
	for (unsigned i = 0; i < n; i++) {
		r->batch[i].user_data = cqes[i]->user_data;
		r->batch[i].res = cqes[i]->res;
		r->batch[i].flags = cqes[i]->flags;
	}
	io_uring_cq_advance(&r->ring, n);

	r->running = true;
	for (unsigned i = 0; i < n; i++)
		dispatch(r, r->batch[i].user_data, r->batch[i].res, r->batch[i].flags);
	r->running = false;
	flush_bufs(r);
	return (int)n;
}

const struct bw_ring_stats *bw_ring_stats(const struct bw_ring *r)
{
	return &r->stats;
}

uint32_t bw_ring_buf_count(const struct bw_ring *r)
{
	return r->buf_count;
}

void *bw_ring_buf(struct bw_ring *r, uint16_t bid)
{
	assert(bid < r->buf_count);
	return r->bufs + (size_t)bid * r->buf_size;
}

uint32_t bw_ring_buf_size(const struct bw_ring *r)
{
	return r->buf_size;
}

void bw_ring_buf_put(struct bw_ring *r, uint16_t bid)
{
	assert(bid < r->buf_count);
	assert((r->lent[bid / 64] & (1ull << (bid % 64))) && "buffer not held by the caller");
	r->lent[bid / 64] &= ~(1ull << (bid % 64));
	r->stats.bufs_out--;
	io_uring_buf_ring_add(r->br, bw_ring_buf(r, bid), r->buf_size, bid,
	                      io_uring_buf_ring_mask(r->buf_count), (int)r->buf_pending);
	r->buf_pending++;
}

int bw_ring_accept(struct bw_ring *r, struct bw_op *op, int listen_fd)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	track(r, sqe, op);
	return 0;
}

int bw_ring_recv(struct bw_ring *r, struct bw_op *op, int fd)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	/* len 0: each completion fills at most one provided buffer. */
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	track(r, sqe, op);
	return 0;
}

int bw_ring_sendmsg(struct bw_ring *r, struct bw_op *op, int fd, const struct msghdr *msg)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	track(r, sqe, op);
	return 0;
}

int bw_ring_timeout(struct bw_ring *r, struct bw_timeout *t, uint64_t ms)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	/* The kernel reads the timespec at submit, so it lives beside the op. */
	t->ts.tv_sec = (long long)(ms / 1000);
	t->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	track(r, sqe, &t->op);
	return 0;
}

int bw_ring_cancel(struct bw_ring *r, struct bw_op *op)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_cancel(sqe, op, 0);
	track(r, sqe, &nop_op);
	return 0;
}

int bw_ring_poll(struct bw_ring *r, struct bw_op *op, int fd, uint32_t events)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_poll_add(sqe, fd, events);
	track(r, sqe, op);
	return 0;
}

int bw_ring_close(struct bw_ring *r, struct bw_op *op, int fd)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(r, &sqe);

	if (rc < 0)
		return rc;
	io_uring_prep_close(sqe, fd);
	track(r, sqe, op);
	return 0;
}

int bw_ring_wake(struct bw_ring *target)
{
	const uint64_t one = 1;

	/* Already pending: the target has yet to run and will see that write. */
	if (atomic_exchange(&target->wake_pending, true))
		return 0;
	for (;;) {
		if (write(target->wake_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno != EINTR)
			break;
	}
	int rc = -errno;
	atomic_exchange(&target->wake_pending, false);
	return rc;
}

int bw_ring_msg(struct bw_ring *from, struct bw_ring *to, uint64_t data)
{
	struct io_uring_sqe *sqe;
	int rc = get_sqe(from, &sqe);

	if (rc < 0)
		return rc;
	/* Bit 0 of the target's user_data tags a message; bit 63 rides in res. */
	io_uring_prep_msg_ring(sqe, to->ring.ring_fd, (unsigned)(data >> 63), (data << 1) | MSG_TAG,
	                       0);
	track(from, sqe, &from->msg_op);
	return 0;
}
