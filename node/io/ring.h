/*
 * One worker's io_uring: shared-nothing, one ring a thread. A caller-owned
 * struct bw_op stands for each request; its address is the SQE's user_data,
 * and its done callback runs from bw_ring_run() after a whole batch of
 * completions has been reaped, never from inside a prep or submit call. The
 * ring also owns a provided-buffer ring (group 0) that multishot receives
 * draw from, an eventfd that other threads use to wake it, and the decoding
 * of IORING_OP_MSG_RING messages from other rings. Nothing here knows MQTT,
 * and nothing here is thread-safe except bw_ring_wake() (and bw_ring_msg()
 * as seen from the receiving ring).
 */
#ifndef BW_IO_RING_H
#define BW_IO_RING_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifndef BW_CONTAINER_OF
/* The struct that embeds member *ptr: how a callback finds its connection. */
#define BW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/*
 * Defaults and hard limits. The buffer memory a ring pins is buf_count x
 * buf_size (the defaults: 1024 x 16 KiB = 16 MiB a worker), plus 16 bytes
 * of ring a buffer. These become configuration keys with the node's
 * configuration; here they are only bounded.
 */
#define BW_RING_ENTRIES_DEFAULT   4096u
#define BW_RING_ENTRIES_MAX       32768u /* the kernel's IORING_MAX_ENTRIES */
#define BW_RING_BUF_COUNT_DEFAULT 1024u
#define BW_RING_BUF_COUNT_MAX     32768u /* bids are 16 bits; the kernel wants < 65536 */
#define BW_RING_BUF_SIZE_DEFAULT  16384u
#define BW_RING_BUF_SIZE_MAX      (1u << 20)
#define BW_RING_BATCH             256u /* completions reaped a bw_ring_run() */

struct bw_ring;

/*
 * One request. Owned by the caller, usually embedded in a bigger struct
 * (find it with BW_CONTAINER_OF). The memory must stay valid, and done
 * must stay set, until the op's final completion has been delivered: the
 * one without IORING_CQE_F_MORE. An op carries one request at a time,
 * except that the internal ops of the ring are shared.
 *
 * done(op, res, cqe_flags): res is the CQE's result (>= 0, or -errno);
 * cqe_flags the CQE's flags. IORING_CQE_F_MORE set means a multishot op
 * stays armed and will complete again; absent means it is finished, and a
 * caller that wants more must re-arm it (liburing's examples/proxy.c habit).
 * Callbacks may prep new requests (re-arm, send, close); they are submitted
 * with the next bw_ring_run(). They must not call bw_ring_run().
 */
struct bw_op {
	void (*done)(struct bw_op *op, int32_t res, uint32_t cqe_flags);
};

/*
 * A timer's op: its interval, read by the kernel at submit time, lives
 * beside it. Apart, so the ops every connection holds stay one pointer.
 */
struct bw_timeout {
	struct bw_op op;
	struct __kernel_timespec ts; /* private */
};

struct bw_ring_params {
	uint32_t entries;   /* SQ size; 0: default. The CQ is twice that. */
	uint32_t buf_count; /* provided buffers, a power of two; 0: default */
	uint32_t buf_size;  /* bytes a buffer; 0: default */
	/*
	 * Called from bw_ring_run() for each bw_ring_msg() sent to this ring,
	 * with its data. NULL: messages are counted and dropped.
	 */
	void (*on_msg)(struct bw_ring *r, uint64_t data);
};

/* Counters since bw_ring_init(); read with bw_ring_stats(), owner only. */
struct bw_ring_stats {
	uint64_t completions; /* CQEs handled, the ring's own included */
	uint64_t submits;     /* SQEs prepared for the kernel */
	uint64_t sq_full;     /* early submits because the SQ was full */
	uint64_t enobufs;     /* completions with -ENOBUFS */
	uint64_t wakes;       /* eventfd wakeups received */
	uint64_t wake_writes; /* eventfd writes behind them (>= wakes) */
	uint64_t msgs;        /* bw_ring_msg() messages received */
	uint64_t msg_errors;  /* bw_ring_msg() sends the kernel refused */
	uint64_t inflight;    /* requests not finally completed (a gauge) */
	uint64_t bufs_out;    /* provided buffers held by callers (a gauge) */
};

/*
 * Private fields: read and write them only through the functions below.
 * The struct is public so that a worker can embed its ring.
 */
struct bw_ring {
	struct io_uring ring;
	unsigned setup_flags; /* what IORING_SETUP_* the kernel took */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs; /* buf_count x buf_size, one mapping */
	size_t bufs_bytes;
	uint64_t *lent; /* a bit a buffer: with a caller, not with the kernel */
	uint32_t buf_count;
	uint32_t buf_size;
	uint32_t buf_pending; /* put but not yet published to the kernel */
	void (*on_msg)(struct bw_ring *r, uint64_t data);
	int wake_fd;
	bool wake_armed;
	bool running;
	uint64_t wake_val;
	atomic_bool wake_pending;
	struct bw_op wake_op;
	struct bw_op msg_op;
	struct bw_ring_stats stats;
	struct {
		uint64_t user_data;
		int32_t res;
		uint32_t flags;
	} batch[BW_RING_BATCH];
};

/*
 * Sets up *r: the io_uring (SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL,
 * falling back to fewer flags on older kernels), the provided buffers and
 * the wake eventfd. p may be NULL for all defaults. Call it on the thread
 * that will run the ring: a single-issuer ring refuses every other thread.
 * Returns 0, -EINVAL for bad parameters, or -errno from the kernel (r is
 * then left with nothing to free).
 */
int bw_ring_init(struct bw_ring *r, const struct bw_ring_params *p);

/*
 * Cancels what is still in flight, waits (at most a second) for the kernel
 * to let go of it without calling any callback, and frees everything. Call
 * it on the ring's thread, after every thread that may bw_ring_wake() it
 * has stopped doing so.
 */
void bw_ring_exit(struct bw_ring *r);

/*
 * Submits what was prepared, waits for at least one completion (or
 * timeout_ms, < 0 for no limit, 0 not to wait; or a wake or message), reaps
 * up to BW_RING_BATCH completions, advances the CQ and only then runs their
 * callbacks. Returns the number of completions handled (0 on timeout or
 * signal), or -errno when the kernel refused to submit or wait.
 */
int bw_ring_run(struct bw_ring *r, int timeout_ms);

/* Submits what was prepared without waiting. Returns 0 or -errno. */
int bw_ring_submit(struct bw_ring *r);

const struct bw_ring_stats *bw_ring_stats(const struct bw_ring *r);

/*
 * Provided buffers (group 0). A completion with IORING_CQE_F_BUFFER in its
 * flags hands buffer bw_ring_cqe_bid(flags) to the callback, whatever res
 * is; the data is its first res bytes. The caller owns the buffer until it
 * gives it back with bw_ring_buf_put(), and must copy what it keeps first:
 * the kernel reuses the buffer as soon as it is published again.
 */
static inline int bw_ring_cqe_bid(uint32_t cqe_flags)
{
	if (!(cqe_flags & IORING_CQE_F_BUFFER))
		return -1;
	return (int)(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
}

/* How many provided buffers the ring has. */
uint32_t bw_ring_buf_count(const struct bw_ring *r);

/* The address of buffer bid (< buf_count); buf_size bytes long. */
void *bw_ring_buf(struct bw_ring *r, uint16_t bid);

uint32_t bw_ring_buf_size(const struct bw_ring *r);

/*
 * Gives buffer bid back to the kernel. Puts are batched: the buffer ring's
 * tail moves once, before the next submit. Putting a buffer the caller does
 * not hold is a programmer error (assert).
 */
void bw_ring_buf_put(struct bw_ring *r, uint16_t bid);

/*
 * Prep helpers. Each takes an SQE (submitting early when the SQ is full)
 * and returns 0, or -errno when no SQE could be had; then the op's callback
 * is never called. What was prepared goes to the kernel at the next
 * bw_ring_run() or bw_ring_submit().
 */

/* Multishot accept4(SOCK_CLOEXEC): res is a new fd, or -errno. */
int bw_ring_accept(struct bw_ring *r, struct bw_op *op, int listen_fd);

/*
 * Multishot recv into provided buffers: res > 0 bytes in the buffer named
 * by the flags, 0 when the peer closed, or -errno. -ENOBUFS means the
 * buffer ring ran dry and the recv ended: the caller re-arms it after
 * returning buffers (the data waits in the socket, nothing is lost).
 */
int bw_ring_recv(struct bw_ring *r, struct bw_op *op, int fd);

/*
 * sendmsg(MSG_NOSIGNAL). msg, its iovecs and the bytes they point to are
 * the caller's and must stay valid until the completion. res is the bytes
 * sent, which may be fewer than asked: the caller sends the rest. One send
 * in flight a socket is the caller's rule: two concurrent sends on a stream
 * socket may interleave.
 */
int bw_ring_sendmsg(struct bw_ring *r, struct bw_op *op, int fd, const struct msghdr *msg);

/* A one-shot relative timer: t->op completes, res -ETIME when it fires. */
int bw_ring_timeout(struct bw_ring *r, struct bw_timeout *t, uint64_t ms);

/*
 * Cancels the request op carries. op still gets its own completion, with
 * -ECANCELED (or its result, when it finished first). Cancelling an op that
 * is not in flight does nothing.
 */
int bw_ring_cancel(struct bw_ring *r, struct bw_op *op);

/* One-shot poll (POLLIN, POLLOUT...) for fds the ring does not drive: res is revents. */
int bw_ring_poll(struct bw_ring *r, struct bw_op *op, int fd, uint32_t events);

/*
 * close(2) through the ring. It does not end requests on fd: the kernel
 * holds the file until they finish, so cancel them (or shutdown(2) a
 * socket) first.
 */
int bw_ring_close(struct bw_ring *r, struct bw_op *op, int fd);

/*
 * Makes target's bw_ring_run() return soon. Safe from any thread, also one
 * without a ring. Wakes coalesce: however many arrive before target runs,
 * it sees one. Returns 0 or -errno from write(2).
 */
int bw_ring_wake(struct bw_ring *target);

/*
 * Sends data to ring to with IORING_OP_MSG_RING: to's bw_ring_run() wakes
 * and calls its on_msg hook with data. Call it on from's thread; the
 * message leaves with from's next submit, and a refusal by the kernel
 * (to's CQ overflowing, say) counts in from's msg_errors. to must outlive
 * the send.
 */
int bw_ring_msg(struct bw_ring *from, struct bw_ring *to, uint64_t data);

#endif
