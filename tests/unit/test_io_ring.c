/*
 * The worker ring over real loopback TCP sockets: multishot accept and
 * recv with provided buffers (including running dry and re-arming),
 * sendmsg with several iovecs, timeouts, cancellation, peer close, and
 * waking a ring blocked in bw_ring_run() from another ring's thread and
 * from a plain thread. Every wait is bounded by a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/io/ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 3000

/* Runs the ring until cond holds or DEADLINE_MS pass; the caller asserts cond. */
#define RUN_UNTIL(r, cond)                                                                         \
	do {                                                                                       \
		uint64_t dl_ = now_ms() + DEADLINE_MS;                                             \
		while (!(cond) && now_ms() < dl_)                                                  \
			assert_true(bw_ring_run((r), 20) >= 0);                                    \
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct bw_ring_params small = {
	.entries = 64,
	.buf_count = 16,
	.buf_size = 4096,
};

/* A listening socket on 127.0.0.1 and an ephemeral port. */
static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_loopback(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A connected pair, made without the ring: *a writes, *b is read by it. */
static void tcp_pair(int *a, int *b)
{
	uint16_t port;
	int l = listen_loopback(&port);
	struct timeval tv = { .tv_sec = DEADLINE_MS / 1000 };

	*a = connect_loopback(port);
	*b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(*b >= 0);
	close(l);
	/* Plain reads in the tests are bounded too. */
	assert_int_equal(setsockopt(*b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

static void pattern(uint8_t *p, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((from + i) * 131 + 7);
}

/* A multishot recv that collects what it reads. */
struct reader {
	struct bw_op op;
	struct bw_ring *r;
	int fd;
	bool hold;  /* keep buffers instead of returning them */
	bool rearm; /* re-arm after -ENOBUFS, as a connection would */
	uint16_t held[64];
	int nheld;
	int completions;
	int enobufs;
	bool ended, eof;
	int32_t last_res;
	uint32_t last_flags;
	uint64_t bids_seen;
	size_t len;
	uint8_t data[65536];
};

static void reader_done(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct reader *rd = BW_CONTAINER_OF(op, struct reader, op);
	int bid = bw_ring_cqe_bid(flags);

	rd->completions++;
	rd->last_res = res;
	rd->last_flags = flags;
	if (res > 0) {
		assert_true(flags & IORING_CQE_F_BUFFER);
		assert_int_equal(bid, (int)(flags >> IORING_CQE_BUFFER_SHIFT));
		assert_true(bid >= 0 && (uint32_t)bid < rd->r->buf_count);
		assert_true((uint32_t)res <= bw_ring_buf_size(rd->r));
		assert_true(rd->len + (size_t)res <= sizeof(rd->data));
		memcpy(rd->data + rd->len, bw_ring_buf(rd->r, (uint16_t)bid), (size_t)res);
		rd->len += (size_t)res;
		rd->bids_seen |= 1ull << (bid % 64);
	}
	if (bid >= 0) {
		if (rd->hold) {
			assert_true(rd->nheld < 64);
			rd->held[rd->nheld++] = (uint16_t)bid;
		} else {
			bw_ring_buf_put(rd->r, (uint16_t)bid);
		}
	}
	if (res == 0)
		rd->eof = true;
	if (!(flags & IORING_CQE_F_MORE))
		rd->ended = true;
	if (res == -ENOBUFS) {
		rd->enobufs++;
		if (rd->rearm) {
			rd->ended = false;
			assert_int_equal(bw_ring_recv(rd->r, &rd->op, rd->fd), 0);
		}
	}
}

static void reader_start(struct reader *rd, struct bw_ring *r, int fd)
{
	memset(rd, 0, sizeof(*rd));
	rd->op.done = reader_done;
	rd->r = r;
	rd->fd = fd;
	assert_int_equal(bw_ring_recv(r, &rd->op, fd), 0);
}

static void test_init_checks_params(void **state)
{
	struct bw_ring r;
	struct bw_ring_params p = small;

	p.buf_count = 3;
	assert_int_equal(bw_ring_init(&r, &p), -EINVAL);
	p = small;
	p.buf_size = BW_RING_BUF_SIZE_MAX + 1;
	assert_int_equal(bw_ring_init(&r, &p), -EINVAL);
	p = small;
	p.entries = BW_RING_ENTRIES_MAX + 1;
	assert_int_equal(bw_ring_init(&r, &p), -EINVAL);
	bw_ring_exit(&r); /* harmless after a failed init */

	/* All defaults; a 6.1+ kernel takes the fast-path flags. */
	assert_int_equal(bw_ring_init(&r, NULL), 0);
	assert_int_equal(bw_ring_buf_size(&r), BW_RING_BUF_SIZE_DEFAULT);
	assert_true(r.setup_flags & IORING_SETUP_DEFER_TASKRUN);
	assert_int_equal(bw_ring_run(&r, 0), 0);
	bw_ring_exit(&r);
	bw_ring_exit(&r); /* and twice */
}

struct acceptor {
	struct bw_op op;
	int fds[8];
	int n;
	bool all_more;
	bool ended;
	int32_t last_res;
};

static void acceptor_done(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct acceptor *a = BW_CONTAINER_OF(op, struct acceptor, op);

	a->last_res = res;
	if (res >= 0) {
		assert_true(a->n < 8);
		a->fds[a->n++] = res;
	}
	if (!(flags & IORING_CQE_F_MORE)) {
		a->all_more = false;
		a->ended = true;
	}
}

static void test_accept_multishot_three(void **state)
{
	struct bw_ring r;
	struct acceptor a = { .op.done = acceptor_done, .all_more = true };
	uint16_t port;
	int l = listen_loopback(&port);
	int c[3];

	assert_int_equal(bw_ring_init(&r, &small), 0);
	uint64_t s0 = bw_ring_stats(&r)->submits;
	assert_int_equal(bw_ring_accept(&r, &a.op, l), 0);
	assert_int_equal(bw_ring_stats(&r)->submits, s0 + 1);
	assert_true(bw_ring_run(&r, 0) >= 0);
	uint64_t s1 = bw_ring_stats(&r)->submits;

	for (int i = 0; i < 3; i++)
		c[i] = connect_loopback(port);
	RUN_UNTIL(&r, a.n == 3);
	assert_int_equal(a.n, 3);
	assert_true(a.all_more);
	/* One submission served all three. */
	assert_int_equal(bw_ring_stats(&r)->submits, s1);

	assert_int_equal(bw_ring_cancel(&r, &a.op), 0);
	RUN_UNTIL(&r, a.ended);
	assert_int_equal(a.last_res, -ECANCELED);
	for (int i = 0; i < 3; i++) {
		close(a.fds[i]);
		close(c[i]);
	}
	close(l);
	bw_ring_exit(&r);
}

static void test_recv_several_writes(void **state)
{
	static struct reader rd;
	struct bw_ring r;
	const char *parts[] = { "hello", ", ", "multishot", " world" };
	char want[64] = "";
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	reader_start(&rd, &r, b);
	for (size_t i = 0; i < 4; i++) {
		write_all(a, (const uint8_t *)parts[i], strlen(parts[i]));
		strcat(want, parts[i]);
		RUN_UNTIL(&r, rd.len == strlen(want));
		assert_int_equal(rd.len, strlen(want));
	}
	assert_memory_equal(rd.data, want, strlen(want));
	assert_false(rd.ended); /* still armed */
	assert_int_equal(bw_ring_stats(&r)->bufs_out, 0);
	close(a);
	RUN_UNTIL(&r, rd.ended);
	assert_true(rd.eof);
	close(b);
	bw_ring_exit(&r);
}

static void test_recv_payload_spans_buffers(void **state)
{
	static struct reader rd;
	static uint8_t want[3 * 4096 + 100];
	struct bw_ring r;
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	reader_start(&rd, &r, b);
	pattern(want, sizeof(want), 0);
	write_all(a, want, sizeof(want));
	RUN_UNTIL(&r, rd.len == sizeof(want));
	assert_int_equal(rd.len, sizeof(want));
	assert_memory_equal(rd.data, want, sizeof(want));
	/* At most one 4 KiB buffer a completion, each flagged with its bid. */
	assert_true(rd.completions >= 4);
	assert_true(__builtin_popcountll(rd.bids_seen) >= 2);
	assert_false(rd.ended);
	close(a);
	close(b);
	bw_ring_exit(&r);
}

static void test_enobufs_then_rearm_without_loss(void **state)
{
	static struct reader rd;
	static uint8_t want[8192 + 100];
	const struct bw_ring_params tiny = { .entries = 16, .buf_count = 2, .buf_size = 1024 };
	struct bw_ring r;
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &tiny), 0);
	reader_start(&rd, &r, b);
	rd.hold = true;
	pattern(want, sizeof(want), 0);
	write_all(a, want, 8192);

	/* Buffers not returned: the ring runs dry and the recv ends. */
	RUN_UNTIL(&r, rd.enobufs > 0);
	assert_int_equal(rd.enobufs, 1);
	assert_true(rd.ended);
	assert_int_equal(rd.last_res, -ENOBUFS);
	assert_int_equal(rd.nheld, 2);
	assert_int_equal(bw_ring_stats(&r)->bufs_out, 2);
	assert_int_equal(bw_ring_stats(&r)->enobufs, 1);
	assert_true(rd.len <= 2048);

	/* Return them and re-arm: the rest comes, exactly once. */
	rd.hold = false;
	rd.rearm = true;
	rd.ended = false;
	for (int i = 0; i < rd.nheld; i++)
		bw_ring_buf_put(&r, rd.held[i]);
	rd.nheld = 0;
	assert_int_equal(bw_ring_recv(&r, &rd.op, b), 0);
	RUN_UNTIL(&r, rd.len == 8192);
	assert_int_equal(rd.len, 8192);
	write_all(a, want + 8192, 100);
	RUN_UNTIL(&r, rd.len == sizeof(want));
	assert_int_equal(rd.len, sizeof(want));
	assert_memory_equal(rd.data, want, sizeof(want));
	assert_int_equal(bw_ring_stats(&r)->bufs_out, 0);
	close(a);
	RUN_UNTIL(&r, rd.eof);
	assert_true(rd.eof);
	assert_int_equal(rd.len, sizeof(want));
	close(b);
	bw_ring_exit(&r);
}

struct waiter {
	struct bw_timeout t; /* t.op for any request */
	int calls;
	int32_t res;
	uint32_t flags;
};

static void waiter_done(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct waiter *w = BW_CONTAINER_OF(op, struct waiter, t.op);

	w->calls++;
	w->res = res;
	w->flags = flags;
}

static void test_sendmsg_three_iovecs(void **state)
{
	struct bw_ring r;
	struct waiter w = { .t.op.done = waiter_done };
	char p0[] = "alpha-", p1[] = "beta-", p2[] = "gamma";
	struct iovec iov[3] = {
		{ p0, strlen(p0) },
		{ p1, strlen(p1) },
		{ p2, strlen(p2) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	char got[32] = "";
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	assert_int_equal(bw_ring_sendmsg(&r, &w.t.op, a, &msg), 0);
	RUN_UNTIL(&r, w.calls == 1);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, 16);
	assert_int_equal(recv(b, got, 16, MSG_WAITALL), 16);
	assert_string_equal(got, "alpha-beta-gamma");
	close(a);
	close(b);
	bw_ring_exit(&r);
}

static void test_timeout_fires(void **state)
{
	struct bw_ring r;
	struct waiter w = { .t.op.done = waiter_done };
	struct waiter never = { .t.op.done = waiter_done };

	assert_int_equal(bw_ring_init(&r, &small), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(bw_ring_timeout(&r, &w.t, 50), 0);
	assert_int_equal(bw_ring_timeout(&r, &never.t, 60000), 0);
	RUN_UNTIL(&r, w.calls == 1);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, -ETIME);
	assert_true(now_ms() - t0 >= 25); /* it waited; the exact time is the kernel's */

	/* The long one is cancelled rather than waited for. */
	assert_int_equal(never.calls, 0);
	assert_int_equal(bw_ring_cancel(&r, &never.t.op), 0);
	RUN_UNTIL(&r, never.calls == 1);
	assert_int_equal(never.res, -ECANCELED);
	bw_ring_exit(&r);
}

static void test_cancel_pending_recv(void **state)
{
	static struct reader rd;
	struct bw_ring r;
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	reader_start(&rd, &r, b);
	assert_int_equal(bw_ring_run(&r, 0), 0);
	assert_int_equal(bw_ring_cancel(&r, &rd.op), 0);
	RUN_UNTIL(&r, rd.ended);
	assert_true(rd.ended);
	assert_int_equal(rd.completions, 1);
	assert_int_equal(rd.last_res, -ECANCELED);
	assert_false(rd.last_flags & IORING_CQE_F_MORE);
	/* Only the ring's own eventfd read is left in flight. */
	assert_int_equal(bw_ring_stats(&r)->inflight, 1);
	close(a);
	close(b);
	bw_ring_exit(&r);
}

static void test_peer_close_gives_zero(void **state)
{
	static struct reader rd;
	struct bw_ring r;
	int a, b;

	tcp_pair(&a, &b);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	reader_start(&rd, &r, b);
	write_all(a, (const uint8_t *)"x", 1);
	close(a);
	RUN_UNTIL(&r, rd.ended);
	assert_true(rd.ended);
	assert_true(rd.eof);
	assert_int_equal(rd.last_res, 0);
	assert_int_equal(rd.len, 1);
	close(b);
	bw_ring_exit(&r);
}

/* A ring with an on_msg hook that records what arrives. */
struct target {
	struct bw_ring r;
	uint64_t got[8];
	int n;
};

static void target_on_msg(struct bw_ring *r, uint64_t data)
{
	struct target *t = BW_CONTAINER_OF(r, struct target, r);

	if (t->n < 8)
		t->got[t->n] = data;
	t->n++;
}

static const uint64_t msg_values[] = { 0, 1, 0xdeadbeefcafef00dull, UINT64_MAX };

/* The sender: a ring of its own, made on its own thread. No cmocka asserts here. */
struct sender {
	struct bw_ring *to;
	int init_rc;
	int send_rc;
	uint64_t msg_errors;
	uint64_t inflight_left;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct bw_ring r;

	s->init_rc = bw_ring_init(&r, &small);
	if (s->init_rc < 0)
		return NULL;
	usleep(50 * 1000); /* let the target block first */
	for (size_t i = 0; i < 4 && s->send_rc == 0; i++)
		s->send_rc = bw_ring_msg(&r, s->to, msg_values[i]);
	/* Submit, and wait for the sends' own completions: only the wake read stays. */
	uint64_t dl = now_ms() + DEADLINE_MS;
	while (bw_ring_stats(&r)->inflight > 1 && now_ms() < dl)
		bw_ring_run(&r, 20);
	s->msg_errors = bw_ring_stats(&r)->msg_errors;
	s->inflight_left = bw_ring_stats(&r)->inflight;
	bw_ring_exit(&r);
	return NULL;
}

static void test_msg_from_another_ring_wakes(void **state)
{
	static struct target t;
	struct bw_ring_params p = small;
	struct sender s = { .to = &t.r };
	pthread_t th;

	memset(&t, 0, sizeof(t));
	p.on_msg = target_on_msg;
	assert_int_equal(bw_ring_init(&t.r, &p), 0);
	assert_int_equal(bw_ring_run(&t.r, 0), 0); /* the wake read is armed */
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);

	/* Blocked for up to 10 s, unless the message wakes it. */
	uint64_t t0 = now_ms();
	int rc = bw_ring_run(&t.r, 10000);
	uint64_t waited = now_ms() - t0;
	assert_true(rc >= 1);
	assert_true(waited < 5000);
	RUN_UNTIL(&t.r, t.n == 4);
	assert_int_equal(pthread_join(th, NULL), 0);

	assert_int_equal(s.init_rc, 0);
	assert_int_equal(s.send_rc, 0);
	assert_int_equal(s.msg_errors, 0);
	assert_int_equal(s.inflight_left, 1);
	assert_int_equal(t.n, 4);
	assert_int_equal(bw_ring_stats(&t.r)->msgs, 4);
	/* Arrival order across rings is not promised: look each value up. */
	for (size_t i = 0; i < 4; i++) {
		bool found = false;
		for (int j = 0; j < 4; j++)
			found = found || t.got[j] == msg_values[i];
		assert_true(found);
	}
	bw_ring_exit(&t.r);
}

struct waker {
	struct bw_ring *target;
	int delay_ms;
	int count;
	int rc;
};

static void *waker_main(void *arg)
{
	struct waker *w = arg;

	usleep((useconds_t)w->delay_ms * 1000);
	for (int i = 0; i < w->count && w->rc == 0; i++)
		w->rc = bw_ring_wake(w->target);
	return NULL;
}

static void test_wake_from_plain_thread(void **state)
{
	struct bw_ring r;
	struct waker w = { .target = &r, .delay_ms = 50, .count = 1 };
	pthread_t th;

	assert_int_equal(bw_ring_init(&r, &small), 0);
	assert_int_equal(bw_ring_run(&r, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
	uint64_t t0 = now_ms();
	int rc = bw_ring_run(&r, 10000);
	uint64_t waited = now_ms() - t0;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_true(rc >= 1);
	assert_true(waited < 5000);
	assert_int_equal(bw_ring_stats(&r)->wakes, 1);
	bw_ring_exit(&r);
}

static void test_wakes_coalesce(void **state)
{
	struct bw_ring r;
	struct waker w = { .target = &r, .count = 1000 };
	pthread_t th;

	assert_int_equal(bw_ring_init(&r, &small), 0);
	assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, 0);

	/* A thousand wakes before the ring ran: one eventfd write, one wakeup. */
	RUN_UNTIL(&r, bw_ring_stats(&r)->wakes >= 1);
	assert_int_equal(bw_ring_stats(&r)->wakes, 1);
	assert_int_equal(bw_ring_stats(&r)->wake_writes, 1);
	assert_int_equal(bw_ring_run(&r, 50), 0); /* nothing left over */

	/* The flag was cleared: the next wake gets through. */
	assert_int_equal(bw_ring_wake(&r), 0);
	RUN_UNTIL(&r, bw_ring_stats(&r)->wakes >= 2);
	assert_int_equal(bw_ring_stats(&r)->wakes, 2);
	assert_int_equal(bw_ring_stats(&r)->wake_writes, 2);
	bw_ring_exit(&r);
}

static void test_full_sq_submits_early(void **state)
{
	const struct bw_ring_params p = { .entries = 4, .buf_count = 2, .buf_size = 1024 };
	struct waiter w[10];
	struct bw_ring r;

	assert_int_equal(bw_ring_init(&r, &p), 0);
	for (int i = 0; i < 10; i++) {
		w[i] = (struct waiter){ .t.op.done = waiter_done };
		assert_int_equal(bw_ring_timeout(&r, &w[i].t, 1), 0);
	}
	assert_true(bw_ring_stats(&r)->sq_full >= 1);
	int fired = 0;
	uint64_t dl = now_ms() + DEADLINE_MS;
	while (fired < 10 && now_ms() < dl) {
		assert_true(bw_ring_run(&r, 20) >= 0);
		fired = 0;
		for (int i = 0; i < 10; i++)
			fired += w[i].calls;
	}
	assert_int_equal(fired, 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(w[i].res, -ETIME);
	bw_ring_exit(&r);
}

static void test_exit_with_requests_in_flight(void **state)
{
	static struct reader rd;
	struct acceptor a = { .op.done = acceptor_done };
	struct waiter w = { .t.op.done = waiter_done };
	struct bw_ring r;
	uint16_t port;
	int l = listen_loopback(&port);
	int x, y;

	tcp_pair(&x, &y);
	assert_int_equal(bw_ring_init(&r, &small), 0);
	assert_int_equal(bw_ring_accept(&r, &a.op, l), 0);
	reader_start(&rd, &r, y);
	assert_int_equal(bw_ring_timeout(&r, &w.t, 60000), 0);
	assert_int_equal(bw_ring_run(&r, 0), 0);
	assert_int_equal(bw_ring_stats(&r)->inflight, 4);

	/* Exit cancels and reaps without calling anybody, and quickly. */
	uint64_t t0 = now_ms();
	bw_ring_exit(&r);
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(a.n, 0);
	assert_false(a.ended);
	assert_int_equal(rd.completions, 0);
	assert_int_equal(w.calls, 0);
	close(l);
	close(x);
	close(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_checks_params),
		cmocka_unit_test(test_accept_multishot_three),
		cmocka_unit_test(test_recv_several_writes),
		cmocka_unit_test(test_recv_payload_spans_buffers),
		cmocka_unit_test(test_enobufs_then_rearm_without_loss),
		cmocka_unit_test(test_sendmsg_three_iovecs),
		cmocka_unit_test(test_timeout_fires),
		cmocka_unit_test(test_cancel_pending_recv),
		cmocka_unit_test(test_peer_close_gives_zero),
		cmocka_unit_test(test_msg_from_another_ring_wakes),
		cmocka_unit_test(test_wake_from_plain_thread),
		cmocka_unit_test(test_wakes_coalesce),
		cmocka_unit_test(test_full_sq_submits_early),
		cmocka_unit_test(test_exit_with_requests_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
