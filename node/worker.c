/*
 * The worker: one thread, one ring, its listeners and its clients. Every
 * completion callback only updates its client and marks it dirty; the loop
 * then walks the dirty list after each bw_ring_run() and does the work:
 * start a send, parse HTTP, close a drained CLOSING connection, free a
 * closed one once none of its operations is in flight. So no client is
 * freed from inside a callback, and output the broker queues on any
 * connection during a batch (fan-out) goes out in the same pass.
 *
 * An mqtts client has a bw_tls_conn between its socket and its engine:
 * what it receives is decrypted before bw_conn_input(), and its output is
 * encrypted in batches. When no send is in flight, up to TLS_OUT_BATCH
 * bytes are taken from the connection's output queue, encrypted (small
 * segments gathered into whole records) and consumed from the queue, and
 * the ciphertext goes out as one buffer; the next batch is encrypted only
 * once that buffer was sent. So the queue's soft and hard limits still
 * measure what the client has not taken, plus at most one batch in flight.
 */
#include "node/worker.h"

#include "node/state/sessions.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "node/core/backoff.h"
#include "node/core/outq.h"
#include "node/io/ring.h"
#include "node/log.h"
#include "node/state/store.h"
#include "node/net/http.h"
#include "node/net/tls.h"

#define TICK_MS             100u
#define BACKLOG             4096
#define SEND_IOV            64
#define HTTP_MAX_CLIENTS    64u
#define HTTP_IDLE_MS        10000u
#define CLOSING_LINGER_MS   5000u /* a CLOSING connection whose peer never drains */
#define STOP_FLUSH_MS       1000u
#define STORE_FLUSH_MS      2000u         /* at stop, for the Redis writes held */
#define METRICS_CAP         (2u << 20)    /* 1024 tenants' metrics fit */
#define MAIL_BATCH          256u          /* letters taken a pass */
#define TLS_OUT_BATCH       (64u * 1024u) /* plaintext encrypted a send */
#define TLS_STAGE           16384u        /* a record's worth of small segments */
#define INPUT_QUANTUM       1024u         /* bytes of a client's input a turn */
#define INPUT_BUDGET        (64u * 1024u) /* bytes of input handled a pass... */
#define INPUT_BUDGET_SHARED 8192u         /* ...and while tenants take turns */
#define SHARED_MS           100u          /* how long turns are short after tenants shared one */
#define RECV_HOLD_BUFS      4u /* buffers a client holds unhandled before it stops reading */
#define NO_CLASS            UINT32_MAX

struct bw_worker;

struct listener {
	struct bw_op accept;
	struct bw_worker *w;
	const struct bw_listener_config *cfg;
	const struct bw_conn_ops *ops;
	struct bw_tls_ctx *tls; /* mqtts: the listener's context */
	int fd;
	uint16_t port;
	bool armed;
};

/* An HTTP client's request and response: only they carry one. */
struct http {
	uint64_t active_ms; /* when the last request came */
	size_t hlen;        /* bytes in hbuf */
	char *out;          /* the response being sent */
	size_t out_len, out_off;
	bool close_after; /* close once `out` is sent */
	char hbuf[BW_HTTP_HEAD_MAX];
};

/* Fields by size, so an idle connection carries no padding. */
struct client {
	struct bw_op recv, send, close;
	struct bw_worker *w;
	struct listener *l;
	struct http *http; /* HTTP listener's client; NULL for MQTT */
	int fd;
	unsigned inflight; /* ops whose final completion is outstanding */
	bool closing;      /* the socket is being (or was) closed */
	bool recv_armed;
	bool paused; /* not reading: it fed a congested subscriber */
	bool moving; /* being handed to its client id's worker */
	bool send_inflight;
	bool dirty;
	bool close_sent; /* close(2) went to the ring: never close fd again */
	bool throttled;  /* not reading: it holds RECV_HOLD_BUFS buffers unhandled */
	bool lingering;  /* all sent, FIN sent: waiting for the peer's (see linger()) */
	bool ready;      /* on its tenant's ready list (see serve_input()) */
	bool tls_failed; /* mqtts: the handshake or a record failed: send the alert, then close */
	bool tls_shut;   /* mqtts: close_notify queued */
	struct bw_conn *conn;
	struct send_buf *sb; /* while a send is being made or in flight */
	/* mqtts only: the TLS state and the ciphertext being sent. */
	struct bw_tls_conn *tls;
	uint8_t *tls_tx;
	size_t tls_tx_len, tls_tx_off;
	uint64_t accepted_ms;
	uint64_t closing_since_ms;              /* MQTT: when the sweep first saw it CLOSING */
	struct client *prev, *next;             /* all clients */
	struct client *dirty_prev, *dirty_next; /* the dirty list */
	/* What it sent and was not yet handled: buffer ids, oldest first. */
	int32_t in_head, in_tail; /* linked through w->in_next; -1: none */
	uint32_t in_off;          /* bytes of the head buffer handled */
	uint32_t in_bufs;
	struct client *ready_next;
};

struct bw_worker {
	struct bw_worker_config cfg;
	struct bw_ring ring;
	bool ring_ok;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started; /* the handshake: start_rc is set */
	int start_rc;
	atomic_bool stop;
	atomic_bool woken; /* bw_worker_stop() is done with the ring */
	bool stopping;     /* the thread's own view */
	struct listener *listeners;
	struct client *clients; /* all */
	struct client *dirty;   /* head of the dirty list */
	uint32_t n_mqtt, n_http;
	uint32_t n_paused;
	struct bw_timeout tick;
	bool tick_armed;
	bool mail_left;            /* the last take filled its batch */
	struct client *sweep_at;   /* where the next tick's sweep goes on */
	struct send_buf *spare_sb; /* spare send buffers */
	uint32_t n_spare_sb;
	uint8_t *tls_stage; /* TLS_STAGE bytes when a listener is mqtts */
	/* Input shared out by tenant (see serve_input()). */
	int32_t *in_next;            /* a queued buffer's successor, by buffer id */
	uint32_t *in_len;            /* the bytes a queued buffer holds */
	struct ready_class *classes; /* by bw_conn_tenant(); 0: not yet known */
	uint32_t n_classes;
	uint32_t active_head, active_tail; /* classes with a client ready, in turn */
	uint32_t n_active;
	uint64_t shared_until_ms;               /* tenants took turns lately: short passes */
	_Atomic(struct bw_worker_call *) calls; /* from other threads, newest first */
	struct bw_worker_stats stats;
};

/* A tenant's clients with input waiting, and its place in the round. */
struct ready_class {
	struct client *head, *tail;
	uint32_t next; /* the next active class, NO_CLASS: none */
	bool active;
};

/*
 * What one sendmsg needs to stay put until it completes. A client holds
 * one only while it sends, so an idle connection costs none of its 1 KiB;
 * the worker keeps spares.
 */
struct send_buf {
	struct send_buf *next; /* in the worker's spares */
	struct msghdr msg;
	struct iovec iov[SEND_IOV];
};

#define SEND_BUF_SPARES 1024u

/*
 * A connection handed to another worker: its socket, its TLS state (an
 * SSL is used by one thread at a time, and this is a clean hand-off: the
 * sender never touches it again once posted) and what it sent, decrypted
 * and not yet handled.
 */
struct conn_letter {
	int fd;
	uint32_t listener;
	struct bw_tls_conn *tls;
	uint64_t accepted_ms;
	size_t len;
	uint8_t data[];
};

uint64_t bw_worker_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const struct bw_worker_stats *bw_worker_stats(const struct bw_worker *w)
{
	return &w->stats;
}

/* Appends to buf[*len..cap); false once it is full. */
static bool appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static bool appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= cap - *len)
		return false;
	*len += (size_t)r;
	return true;
}

size_t bw_worker_metrics(struct bw_worker *const *w, uint32_t n, char *buf, size_t cap)
{
	static const struct {
		const char *name, *type; /* name without the bulwark_ prefix */
		size_t off;
	} m[] = {
		{ "connections", "gauge", offsetof(struct bw_worker_stats, connections) },
		{ "connections_refused_total", "counter",
		  offsetof(struct bw_worker_stats, refused) },
		{ "connections_moved_total", "counter", offsetof(struct bw_worker_stats, moved) },
		{ "keepalive_timeouts_total", "counter",
		  offsetof(struct bw_worker_stats, keepalive_timeouts) },
		{ "connect_timeouts_total", "counter",
		  offsetof(struct bw_worker_stats, connect_timeouts) },
		{ "publisher_pauses_total", "counter", offsetof(struct bw_worker_stats, pauses) },
		{ "input_throttles_total", "counter", offsetof(struct bw_worker_stats, throttles) },
		{ "http_requests_total", "counter",
		  offsetof(struct bw_worker_stats, http_requests) },
		{ "tls_handshakes_total", "counter",
		  offsetof(struct bw_worker_stats, tls_handshakes) },
		{ "tls_handshake_failures_total", "counter",
		  offsetof(struct bw_worker_stats, tls_handshake_failures) },
	};
	size_t len = 0;

	/* The node's totals, then the same a worker (bulwark_worker_...{worker="i"}). */
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		uint64_t v[BW_HUB_WORKERS_MAX], sum = 0;
		for (uint32_t i = 0; i < n && i < BW_HUB_WORKERS_MAX; i++) {
			const char *p = (const char *)&w[i]->stats + m[k].off;
			v[i] = atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
			sum += v[i];
		}
		if (!appendf(buf, cap, &len, "# TYPE bulwark_%s %s\nbulwark_%s %llu\n", m[k].name,
		             m[k].type, m[k].name, (unsigned long long)sum) ||
		    !appendf(buf, cap, &len, "# TYPE bulwark_worker_%s %s\n", m[k].name, m[k].type))
			return len;
		for (uint32_t i = 0; i < n && i < BW_HUB_WORKERS_MAX; i++) {
			if (!appendf(buf, cap, &len, "bulwark_worker_%s{worker=\"%u\"} %llu\n",
			             m[k].name, i, (unsigned long long)v[i]))
				return len;
		}
	}
	return len;
}

uint16_t bw_worker_port(const struct bw_worker *w, uint32_t i)
{
	if (!w || i >= w->cfg.n_listeners)
		return 0;
	return w->listeners[i].port;
}

/* ---- the dirty list ------------------------------------------------------ */

static void mark_dirty(struct client *c)
{
	struct bw_worker *w = c->w;

	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_prev = NULL;
	c->dirty_next = w->dirty;
	if (w->dirty)
		w->dirty->dirty_prev = c;
	w->dirty = c;
}

static struct client *pop_dirty(struct bw_worker *w)
{
	struct client *c = w->dirty;

	if (!c)
		return NULL;
	w->dirty = c->dirty_next;
	if (w->dirty)
		w->dirty->dirty_prev = NULL;
	c->dirty = false;
	c->dirty_next = c->dirty_prev = NULL;
	return c;
}

void bw_worker_wants_send(void *conn_user)
{
	struct client *c = conn_user;

	if (c && !c->closing)
		mark_dirty(c);
}

/* ---- a client's received, unhandled buffers ------------------------------- */

static void input_push(struct client *c, uint16_t bid, uint32_t len)
{
	struct bw_worker *w = c->w;

	w->in_next[bid] = -1;
	w->in_len[bid] = len;
	if (c->in_tail >= 0)
		w->in_next[c->in_tail] = bid;
	else
		c->in_head = bid;
	c->in_tail = bid;
	c->in_bufs++;
}

/* Gives the oldest buffer back to the ring. */
static void input_pop(struct client *c)
{
	struct bw_worker *w = c->w;
	int32_t bid = c->in_head;

	c->in_head = w->in_next[bid];
	if (c->in_head < 0)
		c->in_tail = -1;
	c->in_off = 0;
	c->in_bufs--;
	bw_ring_buf_put(&w->ring, (uint16_t)bid);
}

static void input_drop(struct client *c)
{
	while (c->in_head >= 0)
		input_pop(c);
}

/* ---- closing and freeing -------------------------------------------------- */

/* An MQTT connection stops counting against the limits. */
static void count_out(struct client *c)
{
	struct bw_worker *w = c->w;

	bw_stat_set(&w->stats.connections, --w->n_mqtt);
	if (w->cfg.node_connections)
		atomic_fetch_sub(w->cfg.node_connections, 1);
}

static void on_close(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct client *c = BW_CONTAINER_OF(op, struct client, close);

	(void)flags;
	if (res < 0)
		bw_log_debug("worker: close fd %d: %s", c->fd, strerror(-res));
	c->fd = -1;
	c->inflight--;
	mark_dirty(c);
}

/*
 * Starts closing c's socket: a CONNECTED MQTT connection is kicked first
 * (an abnormal end: the broker publishes the will), the receive is
 * cancelled, shutdown(2) ends any send, and close(2) goes through the ring.
 * c is freed later, from the loop, once nothing of it is in flight.
 */
static void client_close(struct client *c)
{
	struct bw_worker *w = c->w;

	if (c->closing)
		return;
	if (c->conn && bw_conn_state(c->conn) == BW_CONN_CONNECTED)
		bw_conn_kick(c->conn, BW_RC_UNSPECIFIED);
	c->closing = true;
	input_drop(c);
	if (c->http)
		w->n_http--;
	else if (!c->lingering)
		count_out(c);
	bw_log_debug("worker: closing fd %d", c->fd);
	if (c->recv_armed)
		(void)bw_ring_cancel(&w->ring, &c->recv);
	(void)shutdown(c->fd, SHUT_RDWR);
	if (bw_ring_close(&w->ring, &c->close, c->fd) == 0) {
		c->inflight++;
		c->close_sent = true;
	} else {
		close(c->fd);
		c->fd = -1;
	}
	mark_dirty(c);
}

static void send_buf_put(struct client *c);

/* Frees c, whose socket is open unless it was closed or handed over (fd -1). */
static void client_free(struct client *c)
{
	struct bw_worker *w = c->w;

	if (c->paused)
		w->n_paused--;
	if (w->sweep_at == c)
		w->sweep_at = c->next;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->fd >= 0 && !c->close_sent)
		close(c->fd);
	if (w->ring_ok)
		input_drop(c); /* the ring's exit took its buffers back otherwise */
	bw_conn_free(&c->conn);
	send_buf_put(c);
	bw_tls_conn_free(&c->tls);
	free(c->tls_tx);
	if (c->http)
		free(c->http->out);
	free(c->http);
	free(c);
}

/* ---- receiving ------------------------------------------------------------ */

static int arm_recv(struct client *c)
{
	int rc = bw_ring_recv(&c->w->ring, &c->recv, c->fd);

	if (rc == 0) {
		c->recv_armed = true;
		c->inflight++;
	}
	return rc;
}

static void http_input(struct client *c, const uint8_t *p, size_t n)
{
	size_t room = BW_HTTP_HEAD_MAX - c->http->hlen;

	/* Past the bound the parser sees a full buffer and answers 431. */
	if (n > room)
		n = room;
	memcpy(c->http->hbuf + c->http->hlen, p, n);
	c->http->hlen += n;
}

/* Plaintext from the TLS layer into the engine; only a lack of memory stops it. */
static int tls_sink(void *arg, const uint8_t *p, size_t n)
{
	struct client *c = arg;

	return bw_conn_input(c->conn, p, n) == -ENOMEM ? -ENOMEM : 0;
}

/*
 * Decrypts what an mqtts client sent (n 0: what OpenSSL still holds) into
 * its engine. All of it is decrypted even when the engine holds input (a
 * paused publisher, a connection that moves): the engine keeps the
 * plaintext, as it keeps the bytes of a plain connection. A failure marks
 * the client so its alert is sent before it closes; close_notify closes
 * it. Returns -ENOMEM, else 0.
 */
static int tls_input(struct client *c, const uint8_t *p, size_t n)
{
	struct bw_worker *w = c->w;
	char why[BW_TLS_WHY_MAX];
	bool was_ready = bw_tls_conn_ready(c->tls);

	if (c->tls_failed)
		return 0;
	int rc = bw_tls_conn_input(c->tls, p, n, tls_sink, c, why);
	bool ready = bw_tls_conn_ready(c->tls);
	if (!was_ready && ready) {
		char desc[128];
		const char *sni = bw_tls_conn_sni(c->tls), *alpn = bw_tls_conn_alpn(c->tls);
		bw_stat_add(&w->stats.tls_handshakes, 1);
		bw_tls_conn_describe(c->tls, desc, sizeof(desc));
		bw_log_debug("worker: fd %d: TLS %s, ALPN %s, SNI %s%s", c->fd, desc,
		             alpn ? alpn : "-", sni ? sni : "-",
		             bw_tls_conn_has_peer_cert(c->tls) ? ", client certificate" : "");
	}
	if (rc == 0)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc == BW_TLS_CLOSED) {
		bw_log_debug("worker: fd %d: TLS close_notify from the peer", c->fd);
		client_close(c);
		return 0;
	}
	if (!ready) {
		bw_stat_add(&w->stats.tls_handshake_failures, 1);
		bw_log_debug("worker: fd %d: TLS handshake failed: %s", c->fd, why);
	} else {
		bw_log_debug("worker: fd %d: TLS: %s", c->fd, why);
		/*
		 * An abnormal end now (the will is due), and CLOSING, so the
		 * sweep's linger bounds an alert the peer never reads, as the
		 * CONNECT timeout does during the handshake.
		 */
		bw_conn_kick(c->conn, BW_RC_UNSPECIFIED);
	}
	c->tls_failed = true;
	mark_dirty(c);
	return 0;
}

/* Whether c should have a receive armed, and has none. */
static bool wants_recv(const struct client *c)
{
	return !c->recv_armed && !c->closing && !c->paused && !c->moving && !c->tls_failed &&
	       !c->throttled;
}

/* ---- input, shared out by tenant ------------------------------------------- */

/*
 * What a client sends is not handled in its receive's callback: its
 * buffers queue on the client, oldest first, and the client on its
 * tenant's ready list (the tenant's hub id + 1 from bw_conn_tenant(); 0
 * until its CONNECT is accepted). serve_input() goes round the tenants
 * with input and, within a tenant, round its clients: a turn handles
 * whole packets of one client up to INPUT_QUANTUM bytes (a TLS client: a
 * buffer), a pass at most INPUT_BUDGET bytes (INPUT_BUDGET_SHARED while
 * more than one tenant had input in the last SHARED_MS: a tenant alone
 * keeps long passes, its throughput), so that sends start and new
 * completions are reaped in between. A client holding RECV_HOLD_BUFS
 * buffers stops reading until it is down to half: its backlog then waits
 * in its own socket (TCP closes its window) instead of in the provided
 * buffers ahead of everyone else's. So a tenant that floods gets its share
 * of the worker, and another tenant's message waits for at most a turn of
 * each tenant with input, not for the flood's backlog.
 */
static void class_activate(struct bw_worker *w, uint32_t k)
{
	struct ready_class *rc = &w->classes[k];

	rc->active = true;
	rc->next = NO_CLASS;
	w->n_active++;
	if (w->active_tail != NO_CLASS)
		w->classes[w->active_tail].next = k;
	else
		w->active_head = k;
	w->active_tail = k;
}

static void ready_push(struct client *c)
{
	struct bw_worker *w = c->w;
	uint32_t k = c->conn ? bw_conn_tenant(c->conn) : 0;

	if (k >= w->n_classes)
		k = 0;
	struct ready_class *rc = &w->classes[k];
	c->ready = true;
	c->ready_next = NULL;
	if (rc->tail)
		rc->tail->ready_next = c;
	else
		rc->head = c;
	rc->tail = c;
	if (!rc->active)
		class_activate(w, k);
}

/* The next client in turn: the first of the first tenant's, which goes last. */
static struct client *ready_pop(struct bw_worker *w)
{
	uint32_t k = w->active_head;
	struct ready_class *rc = &w->classes[k];
	struct client *c = rc->head;

	w->active_head = rc->next;
	if (w->active_head == NO_CLASS)
		w->active_tail = NO_CLASS;
	rc->active = false;
	w->n_active--;
	rc->head = c->ready_next;
	if (!rc->head)
		rc->tail = NULL;
	else
		class_activate(w, k);
	c->ready = false;
	c->ready_next = NULL;
	return c;
}

/* A moving client's queued input goes into its connection, which keeps it. */
static int input_to_conn(struct client *c)
{
	struct bw_worker *w = c->w;

	while (c->in_head >= 0) {
		const uint8_t *p = (const uint8_t *)bw_ring_buf(&w->ring, (uint16_t)c->in_head);
		int rc = bw_conn_input(c->conn, p + c->in_off, w->in_len[c->in_head] - c->in_off);
		input_pop(c);
		if (rc == -ENOMEM)
			return rc;
	}
	return 0;
}

/* One turn of c's input (see above). Returns the bytes it took. */
static size_t take_turn(struct client *c)
{
	struct bw_worker *w = c->w;
	size_t done = 0;

	while (c->in_head >= 0 && !c->closing && done < INPUT_QUANTUM) {
		uint16_t bid = (uint16_t)c->in_head;
		const uint8_t *p = (const uint8_t *)bw_ring_buf(&w->ring, bid) + c->in_off;
		size_t n = w->in_len[bid] - c->in_off;
		long used = c->tls ? tls_input(c, p, n)
		                   : bw_conn_input_some(c->conn, p, n, INPUT_QUANTUM - done);
		if (c->closing)
			break; /* its buffers went back with it */
		if (c->tls && used == 0)
			used = (long)n; /* all of it was decrypted */
		if (used < 0) {
			input_drop(c); /* CLOSING: the rest is never handled */
			if (used == -ENOMEM) {
				bw_log_warn("worker: fd %d: out of memory", c->fd);
				client_close(c);
			}
			break;
		}
		done += (size_t)used;
		c->in_off += (uint32_t)used;
		if (c->in_off == w->in_len[bid])
			input_pop(c);
		if (!c->moving && bw_conn_moving(c->conn) >= 0) {
			/* Reading stops here; see hand_over(). */
			c->moving = true;
			if (c->recv_armed)
				bw_ring_cancel(&w->ring, &c->recv);
		}
	}
	if (c->throttled && c->in_bufs <= RECV_HOLD_BUFS / 2) {
		c->throttled = false;
		if (wants_recv(c) && arm_recv(c) < 0)
			client_close(c);
	}
	mark_dirty(c);
	return done;
}

/* Turns until INPUT_BUDGET bytes were handled. Returns whether input is left. */
static bool serve_input(struct bw_worker *w)
{
	uint64_t now = bw_worker_now_ms();

	if (w->n_active > 1)
		w->shared_until_ms = now + SHARED_MS;
	size_t budget = now < w->shared_until_ms ? INPUT_BUDGET_SHARED : INPUT_BUDGET;
	while (w->active_head != NO_CLASS && budget > 0) {
		struct client *c = ready_pop(w);
		size_t used = take_turn(c);
		budget -= used < budget ? used : budget;
		if (c->in_head >= 0 && !c->closing)
			ready_push(c);
	}
	return w->active_head != NO_CLASS;
}

static void on_recv(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct client *c = BW_CONTAINER_OF(op, struct client, recv);
	struct bw_worker *w = c->w;
	int bid = bw_ring_cqe_bid(flags);

	if (!(flags & IORING_CQE_F_MORE)) {
		c->recv_armed = false;
		c->inflight--;
	}
	if (bid >= 0 && res > 0 && !c->closing && !c->http) {
		input_push(c, (uint16_t)bid, (uint32_t)res);
		if (!c->ready)
			ready_push(c);
		if (c->in_bufs >= RECV_HOLD_BUFS && !c->throttled) {
			c->throttled = true;
			bw_stat_add(&w->stats.throttles, 1);
			if (c->recv_armed)
				bw_ring_cancel(&w->ring, &c->recv);
		}
	} else if (bid >= 0) {
		if (res > 0 && !c->closing)
			http_input(c, bw_ring_buf(&w->ring, (uint16_t)bid), (size_t)res);
		bw_ring_buf_put(&w->ring, (uint16_t)bid);
	}
	mark_dirty(c);
	if (c->closing)
		return;
	if (res == -ECANCELED) {
		/* The cancel of a pause or a throttle; if it ended meanwhile,
		 * reading starts again here. */
		if (wants_recv(c) && arm_recv(c) < 0)
			client_close(c);
		return;
	}
	if (res == 0 || (res < 0 && res != -ENOBUFS)) {
		if (res < 0)
			bw_log_debug("worker: recv fd %d: %s", c->fd, strerror(-res));
		else
			bw_log_debug("worker: fd %d: peer closed", c->fd);
		/* What came before the end is handled first: a DISCONNECT, say. */
		while (c->in_head >= 0 && !c->closing)
			(void)take_turn(c);
		client_close(c);
		return;
	}
	/* -ENOBUFS: the buffers just put are published before the re-arm. */
	if (wants_recv(c) && arm_recv(c) < 0)
		client_close(c);
}

void bw_worker_pause(void *conn_user)
{
	struct client *c = conn_user;

	if (c->paused || c->closing)
		return;
	c->paused = true;
	c->w->n_paused++;
	bw_stat_add(&c->w->stats.pauses, 1);
	/* Stop mid-buffer: the rest of what was received waits in the conn. */
	bw_conn_hold(c->conn);
	/* The multishot recv ends with -ECANCELED and is not re-armed. */
	if (c->recv_armed)
		bw_ring_cancel(&c->w->ring, &c->recv);
}

/* Reads paused connections again once no subscriber is congested. */
static void resume_paused(struct bw_worker *w)
{
	if (!w->n_paused || (w->cfg.congested && w->cfg.congested(w->cfg.ops_arg)) ||
	    (w->cfg.hub && bw_hub_backlog(w->cfg.hub, w->cfg.index)))
		return;
	for (struct client *c = w->clients; c && w->n_paused; c = c->next) {
		if (!c->paused)
			continue;
		c->paused = false;
		w->n_paused--;
		if (c->closing)
			continue;
		bw_conn_touch(c->conn);
		/* What was kept is handled first; it may pause the client again. */
		if (bw_conn_release(c->conn) == -ENOMEM) {
			client_close(c);
			continue;
		}
		mark_dirty(c);
		if (wants_recv(c) && arm_recv(c) < 0)
			client_close(c);
	}
}

/* ---- sending -------------------------------------------------------------- */

static void on_send(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct client *c = BW_CONTAINER_OF(op, struct client, send);

	(void)flags;
	c->send_inflight = false;
	c->inflight--;
	send_buf_put(c);
	mark_dirty(c);
	if (c->closing)
		return;
	if (res < 0) {
		bw_log_debug("worker: send fd %d: %s", c->fd, strerror(-res));
		client_close(c);
		return;
	}
	if (c->http) {
		c->http->out_off += (size_t)res;
		return;
	}
	if (c->tls) {
		/* Its output queue was consumed when it was encrypted. */
		c->tls_tx_off += (size_t)res;
		if (c->tls_tx_off == c->tls_tx_len) {
			bool more = bw_outq_bytes(bw_conn_outq(c->conn)) > 0;
			bw_tls_conn_give_back(c->tls, c->tls_tx, more);
			c->tls_tx = NULL;
			c->tls_tx_len = c->tls_tx_off = 0;
		}
		return;
	}
	struct bw_outq *q = bw_conn_outq(c->conn);
	bool was_over = bw_outq_over_soft(q);
	bw_outq_consume(q, (size_t)res);
	if (was_over && !bw_outq_over_soft(q))
		bw_conn_resume(c->conn);
}

/* The iovecs for c's next send (SEND_IOV of them), or NULL when out of memory. */
static struct iovec *send_iov(struct client *c)
{
	struct bw_worker *w = c->w;

	if (!c->sb && (c->sb = w->spare_sb) != NULL) {
		w->spare_sb = c->sb->next;
		w->n_spare_sb--;
	} else if (!c->sb) {
		c->sb = malloc(sizeof(*c->sb));
	}
	return c->sb ? c->sb->iov : NULL;
}

static void send_buf_put(struct client *c)
{
	struct bw_worker *w = c->w;

	if (!c->sb)
		return;
	if (w->n_spare_sb < SEND_BUF_SPARES) {
		c->sb->next = w->spare_sb;
		w->spare_sb = c->sb;
		w->n_spare_sb++;
	} else {
		free(c->sb);
	}
	c->sb = NULL;
}

/* Sends the n_iov iovecs filled in send_iov(c). */
static void start_send(struct client *c, size_t n_iov)
{
	struct msghdr *msg = &c->sb->msg;

	memset(msg, 0, sizeof(*msg));
	msg->msg_iov = c->sb->iov;
	msg->msg_iovlen = n_iov;
	if (bw_ring_sendmsg(&c->w->ring, &c->send, c->fd, msg) == 0) {
		c->send_inflight = true;
		c->inflight++;
	} else {
		/* No SQE now: try again after the next batch. */
		mark_dirty(c);
	}
}

static struct client *client_new(struct bw_worker *w, struct listener *l, int fd,
                                 uint64_t accepted_ms, struct bw_tls_conn *tls);

/*
 * Hands a moving connection to its client id's worker once its receive has
 * ended: the socket and the bytes from its CONNECT on go in one letter, and
 * c is freed without closing the socket. The receiver's new connection is
 * pinned, so it is never moved twice.
 */
static void hand_over(struct client *c)
{
	struct bw_worker *w = c->w;
	uint8_t *data;
	size_t len;
	int to = bw_conn_moving(c->conn);

	if (input_to_conn(c) < 0) {
		bw_log_warn("worker: fd %d: out of memory", c->fd);
		client_close(c);
		return;
	}
	bw_conn_take_input(c->conn, &data, &len);
	struct conn_letter *cl = malloc(sizeof(*cl) + len);
	if (cl) {
		/* Filled in before the post publishes it to the other thread. */
		cl->fd = c->fd;
		cl->listener = (uint32_t)(c->l - w->listeners);
		cl->tls = c->tls;
		cl->accepted_ms = c->accepted_ms;
		cl->len = len;
		if (len)
			memcpy(cl->data, data, len);
	}
	free(data);
	if (!cl || bw_hub_post(w->cfg.hub, w->cfg.index, (uint32_t)to,
	                       bw_letter(cl, BW_LETTER_CONN)) < 0) {
		bw_log_warn("worker: fd %d: out of memory moving it to worker %d", c->fd, to);
		free(cl);
		client_close(c);
		return;
	}
	c->tls = NULL; /* the other worker's now */
	bw_log_debug("worker: fd %d moves to worker %d", c->fd, to);
	bw_stat_add(&w->stats.moved, 1);
	bw_stat_set(&w->stats.connections, --w->n_mqtt);
	c->fd = -1;
	c->closing = true; /* nothing of it is in flight: the loop frees it */
	mark_dirty(c);
}

/* A connection another worker handed over (see hand_over()). */
static void take_over(struct bw_worker *w, struct conn_letter *cl)
{
	struct listener *l = cl->listener < w->cfg.n_listeners ? &w->listeners[cl->listener] : NULL;
	struct client *c = NULL;

	if (!w->stopping && l && l->ops && !cl->tls == !l->tls) {
		c = client_new(w, l, cl->fd, cl->accepted_ms, cl->tls); /* takes cl->tls */
	} else {
		close(cl->fd);
		bw_tls_conn_free(&cl->tls);
	}
	if (!c && w->cfg.node_connections)
		atomic_fetch_sub(w->cfg.node_connections, 1);
	if (c) {
		bw_conn_pin(c->conn);
		int rc = bw_conn_input(c->conn, cl->data, cl->len);
		/* Then whatever OpenSSL still holds decrypted or buffered. */
		if (rc != -ENOMEM && c->tls)
			rc = tls_input(c, NULL, 0);
		if (rc == -ENOMEM || (!c->closing && arm_recv(c) < 0))
			client_close(c);
		mark_dirty(c);
	}
	free(cl);
}

void bw_worker_letter_free(void *letter)
{
	struct conn_letter *cl = letter;

	close(cl->fd);
	bw_tls_conn_free(&cl->tls);
	free(cl);
}

/* Starts sending the ciphertext waiting: the rest of the last buffer, else a new one. */
static bool tls_flush(struct client *c)
{
	if (!c->tls_tx && !bw_tls_conn_take_output(c->tls, &c->tls_tx, &c->tls_tx_len))
		return false;
	struct iovec *iov = send_iov(c);
	if (!iov) {
		client_close(c);
		return true;
	}
	iov[0].iov_base = c->tls_tx + c->tls_tx_off;
	iov[0].iov_len = c->tls_tx_len - c->tls_tx_off;
	start_send(c, 1);
	return true;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * Encrypts up to TLS_OUT_BATCH bytes of c's output queue and consumes
 * them from it. A large segment is encrypted where it lies; small ones
 * (acks, packet heads, small publishes) are gathered into the worker's
 * stage first, so they share records. Returns 0 or what
 * bw_tls_conn_write() returned.
 */
static int tls_encrypt(struct client *c)
{
	uint8_t *stage = c->w->tls_stage;
	struct bw_outq *q = bw_conn_outq(c->conn);
	bool was_over = bw_outq_over_soft(q);
	size_t done = 0;
	int rc = 0;

	/* Each round consumes at least one byte, and at most what is left of the batch. */
	while (done < TLS_OUT_BATCH && bw_outq_bytes(q) > 0) {
		struct iovec iov[SEND_IOV];
		size_t n = bw_outq_iov(q, iov, SEND_IOV), room = TLS_OUT_BATCH - done, len = 0;
		if (iov[0].iov_len >= TLS_STAGE / 4) {
			len = min_size(iov[0].iov_len, room);
			rc = bw_tls_conn_write(c->tls, iov[0].iov_base, len);
		} else {
			for (size_t i = 0; i < n && len < min_size(TLS_STAGE, room); i++) {
				size_t k =
				        min_size(iov[i].iov_len, min_size(TLS_STAGE, room) - len);
				memcpy(stage + len, iov[i].iov_base, k);
				len += k;
			}
			rc = bw_tls_conn_write(c->tls, stage, len);
		}
		if (rc < 0 || len == 0)
			break;
		bw_outq_consume(q, len);
		done += len;
	}
	if (was_over && !bw_outq_over_soft(q))
		bw_conn_resume(c->conn);
	return rc;
}

/* mqtt_after() for an mqtts client. */
/*
 * Everything the connection was told is sent (a DISCONNECT with its
 * reason, say): send FIN and read, discarding, until the peer closes too.
 * Closing at once with unread input would send a reset, and the peer could
 * lose that last packet. The connection no longer counts against the
 * limits; the sweep's linger bounds a peer that never closes.
 */
static void linger(struct client *c)
{
	if (c->lingering)
		return;
	if (!c->recv_armed) {
		client_close(c); /* not reading (paused, throttled): nothing to wait for */
		return;
	}
	c->lingering = true;
	count_out(c);
	(void)shutdown(c->fd, SHUT_WR);
}

static void tls_after(struct client *c)
{
	struct bw_outq *q = bw_conn_outq(c->conn);

	if (c->send_inflight)
		return;
	if (c->tls_tx) {
		tls_flush(c); /* the rest of a short send */
		return;
	}
	if (c->moving) {
		/* What was queued (session tickets) goes out from here first. */
		if (!tls_flush(c) && !c->recv_armed && !c->closing)
			hand_over(c);
		return;
	}
	if (!c->tls_failed && !c->tls_shut && bw_outq_bytes(q) > 0 && bw_tls_conn_ready(c->tls)) {
		int rc = tls_encrypt(c);
		if (rc < 0) {
			bw_log_debug("worker: fd %d: TLS write: %s", c->fd, strerror(-rc));
			client_close(c);
			return;
		}
	}
	if (tls_flush(c))
		return;
	if (c->tls_failed) {
		client_close(c);
	} else if (bw_conn_state(c->conn) == BW_CONN_CLOSING && bw_outq_bytes(q) == 0) {
		/* close_notify, best effort: the socket closes once it is sent. */
		if (!c->tls_shut) {
			c->tls_shut = true;
			bw_tls_conn_shutdown(c->tls);
			if (tls_flush(c))
				return;
		}
		linger(c);
	}
}

/* What an MQTT connection needs after activity: send, or close once drained. */
static void mqtt_after(struct client *c)
{
	struct bw_outq *q = bw_conn_outq(c->conn);

	if (c->tls) {
		tls_after(c);
		return;
	}
	if (c->send_inflight)
		return;
	if (c->moving) {
		if (!c->recv_armed && !c->closing)
			hand_over(c);
		return;
	}
	if (bw_outq_bytes(q) > 0) {
		struct iovec *iov = send_iov(c);
		if (!iov) {
			bw_log_warn("worker: fd %d: out of memory to send", c->fd);
			client_close(c);
			return;
		}
		start_send(c, bw_outq_iov(q, iov, SEND_IOV));
	} else if (bw_conn_state(c->conn) == BW_CONN_CLOSING) {
		linger(c);
	}
}

/* ---- HTTP ----------------------------------------------------------------- */

static bool path_is(const struct bw_http_request *req, const char *s)
{
	size_t n = strlen(s);
	return req->path_len == n && memcmp(req->path, s, n) == 0;
}

/* Builds the response to req (NULL: an error status) in c->http->out. */
static int http_respond(struct client *c, const struct bw_http_request *req, int status)
{
	struct bw_worker *w = c->w;
	const char *type = "text/plain; charset=utf-8";
	bool head_only = req && req->method == BW_HTTP_HEAD;
	bool keep = req && req->keep_alive;
	char *body = malloc(METRICS_CAP);
	size_t blen = 0;

	if (!body)
		return -ENOMEM;
	if (req) {
		if (path_is(req, "/healthz")) {
			status = 200;
			blen = (size_t)snprintf(body, METRICS_CAP, "ok\n");
		} else if (path_is(req, "/readyz")) {
			char detail[1024] = "";
			bool ok = !w->cfg.ready ||
			          w->cfg.ready(w->cfg.ops_arg, detail, sizeof(detail));
			status = ok ? 200 : 503;
			blen = (size_t)snprintf(body, METRICS_CAP, "%s%s",
			                        ok ? "ready\n" : "not ready\n", detail);
		} else if (path_is(req, "/metrics")) {
			status = 200;
			type = "text/plain; version=0.0.4";
			if (w->cfg.metrics)
				blen = w->cfg.metrics(w->cfg.ops_arg, body, METRICS_CAP);
			if (blen > METRICS_CAP)
				blen = METRICS_CAP;
		} else {
			status = 404;
			blen = (size_t)snprintf(body, METRICS_CAP, "not found\n");
		}
	} else {
		blen = (size_t)snprintf(body, METRICS_CAP, "%s\n", bw_http_reason(status));
	}
	char head[512];
	int hl = bw_http_head(head, sizeof(head), status, type, blen, keep);
	if (hl < 0) {
		free(body);
		return hl;
	}
	size_t total = (size_t)hl + (head_only ? 0 : blen);
	free(c->http->out);
	c->http->out = malloc(total);
	if (!c->http->out) {
		free(body);
		return -ENOMEM;
	}
	memcpy(c->http->out, head, (size_t)hl);
	if (!head_only)
		memcpy(c->http->out + hl, body, blen);
	free(body);
	c->http->out_len = total;
	c->http->out_off = 0;
	c->http->close_after = !keep;
	bw_stat_add(&w->stats.http_requests, 1);
	return 0;
}

static void http_after(struct client *c)
{
	if (c->send_inflight)
		return;
	if (c->http->out && c->http->out_off < c->http->out_len) {
		struct iovec *iov = send_iov(c);
		if (!iov) {
			client_close(c);
			return;
		}
		iov[0].iov_base = c->http->out + c->http->out_off;
		iov[0].iov_len = c->http->out_len - c->http->out_off;
		start_send(c, 1);
		return;
	}
	if (c->http->out) {
		free(c->http->out);
		c->http->out = NULL;
		if (c->http->close_after) {
			client_close(c);
			return;
		}
	}
	if (c->http->hlen == 0)
		return;
	struct bw_http_request req;
	int rc = bw_http_parse(c->http->hbuf, c->http->hlen, &req);
	if (rc == BW_HTTP_AGAIN && c->http->hlen < BW_HTTP_HEAD_MAX)
		return;
	if (rc == BW_HTTP_AGAIN)
		rc = -431;
	if (rc == 0) {
		memmove(c->http->hbuf, c->http->hbuf + req.size, c->http->hlen - req.size);
		c->http->hlen -= req.size;
		c->http->active_ms = bw_worker_now_ms();
		rc = http_respond(c, &req, 0);
	} else {
		rc = http_respond(c, NULL, -rc);
	}
	if (rc < 0) {
		bw_log_warn("worker: http fd %d: %s", c->fd, strerror(-rc));
		client_close(c);
		return;
	}
	http_after(c); /* starts the send */
}

/* ---- the loop's pass over dirty clients ------------------------------------ */

static void flush_dirty(struct bw_worker *w)
{
	struct client *c;

	while ((c = pop_dirty(w))) {
		if (c->closing) {
			/* On a ready list: serve_input() drops it and marks it again. */
			if (c->inflight == 0 && !c->ready)
				client_free(c);
			continue;
		}
		if (c->http)
			http_after(c);
		else
			mqtt_after(c);
	}
}

/*
 * Takes up to a batch of letters from the other workers, unless a local
 * subscriber is congested: then they wait in the rings, the senders'
 * overflow grows and their publishers are paused, so back pressure crosses
 * workers too.
 */
static void take_mail(struct bw_worker *w)
{
	uintptr_t v[MAIL_BATCH];

	w->mail_left = false;
	if (!w->cfg.hub || (w->cfg.congested && w->cfg.congested(w->cfg.ops_arg)))
		return;
	uint32_t n = bw_hub_take(w->cfg.hub, w->cfg.index, v, MAIL_BATCH);
	for (uint32_t i = 0; i < n; i++) {
		if (bw_letter_tag(v[i]) == BW_LETTER_CONN)
			take_over(w, bw_letter_ptr(v[i]));
		else
			w->cfg.mail(w->cfg.ops_arg, v[i]);
	}
	w->mail_left = n == MAIL_BATCH;
}

void bw_worker_call(struct bw_worker *w, struct bw_worker_call *call)
{
	struct bw_worker_call *head = atomic_load_explicit(&w->calls, memory_order_relaxed);
	do
		call->next = head;
	while (!atomic_compare_exchange_weak_explicit(&w->calls, &head, call, memory_order_release,
	                                              memory_order_relaxed));
	bw_worker_wake(w);
}

/* Runs the calls other threads posted, oldest first. */
static void take_calls(struct bw_worker *w)
{
	if (!atomic_load_explicit(&w->calls, memory_order_relaxed))
		return;
	struct bw_worker_call *c = atomic_exchange_explicit(&w->calls, NULL, memory_order_acquire);
	struct bw_worker_call *fifo = NULL;
	while (c) {
		struct bw_worker_call *next = c->next;
		c->next = fifo;
		fifo = c;
		c = next;
	}
	while (fifo) {
		struct bw_worker_call *next = fifo->next; /* fn may free it */
		fifo->fn(fifo, w, w->cfg.ops_arg);
		fifo = next;
	}
}

/* The work after each batch of completions. Returns how long the ring may wait. */
static int pass(struct bw_worker *w)
{
	if (w->cfg.jobs)
		bw_jobs_finish(w->cfg.jobs, w->cfg.index, 64);
	take_calls(w);
	bool input_left = serve_input(w);
	flush_dirty(w);
	take_mail(w);
	flush_dirty(w);
	size_t backlog = w->cfg.hub ? bw_hub_flush(w->cfg.hub, w->cfg.index) : 0;
	resume_paused(w);
	if (w->mail_left || input_left)
		return 0;
	return backlog ? 1 : -1; /* overflow: retry soon */
}

/* ---- accepting ------------------------------------------------------------ */

static int arm_accept(struct listener *l)
{
	int rc = bw_ring_accept(&l->w->ring, &l->accept, l->fd);

	l->armed = rc == 0;
	return rc;
}

/*
 * A client for socket fd of listener l, on the clients list, not yet
 * reading; NULL when out of memory (fd is then closed). On an mqtts
 * listener it takes tls (a connection moved here), or makes its own.
 */
static struct client *client_new(struct bw_worker *w, struct listener *l, int fd,
                                 uint64_t accepted_ms, struct bw_tls_conn *tls)
{
	bool http = l->cfg->kind == BW_LISTEN_HTTP;
	struct client *c = calloc(1, sizeof(*c));
	if (c && http) {
		c->http = calloc(1, sizeof(*c->http));
	} else if (c) {
		c->conn = bw_conn_new(&w->cfg.conn_limits, l->ops, c);
		c->tls = tls || !l->tls ? tls : bw_tls_conn_new(l->tls);
		tls = NULL;
	}
	if (!c || (http ? !c->http : !c->conn || (l->tls && !c->tls))) {
		bw_log_warn("worker: %s: out of memory for a client", l->cfg->addr_text);
		if (c) {
			bw_conn_free(&c->conn);
			bw_tls_conn_free(&c->tls);
			free(c->http);
			free(c);
		}
		bw_tls_conn_free(&tls);
		close(fd);
		return NULL;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->w = w;
	c->l = l;
	c->fd = fd;
	c->in_head = c->in_tail = -1;
	c->recv.done = on_recv;
	c->send.done = on_send;
	c->close.done = on_close;
	c->accepted_ms = accepted_ms;
	if (http)
		c->http->active_ms = bw_worker_now_ms();
	c->next = w->clients;
	if (w->clients)
		w->clients->prev = c;
	w->clients = c;
	if (http)
		w->n_http++;
	else
		bw_stat_set(&w->stats.connections, ++w->n_mqtt);
	return c;
}

/*
 * Counts a new MQTT connection against max_connections (node-wide when the
 * workers share a counter); false when it is over.
 */
static bool count_in(struct bw_worker *w)
{
	uint32_t max = w->cfg.max_connections;
	_Atomic uint32_t *node = w->cfg.node_connections;

	if (!node)
		return !max || w->n_mqtt < max;
	if (atomic_fetch_add(node, 1) < max || !max)
		return true;
	atomic_fetch_sub(node, 1);
	return false;
}

static void on_accept(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct listener *l = BW_CONTAINER_OF(op, struct listener, accept);
	struct bw_worker *w = l->w;

	if (!(flags & IORING_CQE_F_MORE)) {
		l->armed = false;
		if (!w->stopping && l->fd >= 0 && arm_accept(l) < 0)
			bw_log_warn("worker: %s: cannot re-arm accept", l->cfg->addr_text);
	}
	if (res < 0) {
		if (res != -ECANCELED)
			bw_log_warn("worker: accept on %s: %s", l->cfg->addr_text, strerror(-res));
		return;
	}
	int fd = res;
	bool http = l->cfg->kind == BW_LISTEN_HTTP;
	if (w->stopping || (http && w->n_http >= HTTP_MAX_CLIENTS) || (!http && !count_in(w))) {
		if (!http)
			bw_stat_add(&w->stats.refused, 1);
		bw_log_debug("worker: %s: refused fd %d", l->cfg->addr_text, fd);
		close(fd);
		return;
	}
	struct client *c = client_new(w, l, fd, bw_worker_now_ms(), NULL);
	if (!c) {
		if (!http && w->cfg.node_connections)
			atomic_fetch_sub(w->cfg.node_connections, 1); /* count_in() took it */
		return;
	}
	bw_log_debug("worker: %s: accepted fd %d", l->cfg->addr_text, fd);
	if (arm_recv(c) < 0)
		client_close(c);
}

/* ---- timers --------------------------------------------------------------- */

/*
 * Each tick checks a tenth of the clients (and at least SWEEP_MIN), going
 * round the list from where the last tick stopped, so every client is
 * checked about once a second and a tick costs O(clients / 10): 200k idle
 * connections cost 20k checks a tick. Deadlines are in seconds (keep alive
 * x 1.5, connect timeout, linger), so a second's lateness is within them.
 */
#define SWEEP_MIN 64u

static void sweep_one(struct bw_worker *w, struct client *c, uint64_t now)
{
	if (c->http) {
		if (now - c->http->active_ms > HTTP_IDLE_MS && !c->send_inflight)
			client_close(c);
		return;
	}
	enum bw_conn_state st = bw_conn_state(c->conn);
	uint64_t deadline = bw_conn_deadline_ms(c->conn);
	if (st == BW_CONN_AWAIT_CONNECT && now - c->accepted_ms > w->cfg.connect_timeout_ms) {
		bw_stat_add(&w->stats.connect_timeouts, 1);
		bw_log_debug("worker: fd %d: no CONNECT in time", c->fd);
		client_close(c);
	} else if (st == BW_CONN_CONNECTED && deadline && now > deadline && !c->paused) {
		bw_stat_add(&w->stats.keepalive_timeouts, 1);
		bw_log_debug("worker: fd %d: keep alive timeout", c->fd);
		bw_conn_kick(c->conn, BW_RC_KEEPALIVE_TIMEOUT);
		mark_dirty(c);
	} else if (st == BW_CONN_CLOSING) {
		/* A peer that never drains what we queued is cut off. */
		if (!c->closing_since_ms)
			c->closing_since_ms = now;
		else if (now - c->closing_since_ms > CLOSING_LINGER_MS)
			client_close(c);
	}
}

static void sweep(struct bw_worker *w, uint64_t now)
{
	uint32_t n = (w->n_mqtt + w->n_http) / 10 + SWEEP_MIN;
	struct client *c = w->sweep_at ? w->sweep_at : w->clients;

	/* client_close() frees nothing, so c->next stays valid here. */
	for (; c && n; n--, c = c->next) {
		if (!c->closing)
			sweep_one(w, c, now);
	}
	w->sweep_at = c; /* NULL: the next tick starts a new round */
}

static void on_tick(struct bw_op *op, int32_t res, uint32_t flags)
{
	struct bw_worker *w = BW_CONTAINER_OF(op, struct bw_worker, tick.op);
	uint64_t now = bw_worker_now_ms();

	(void)res;
	(void)flags;
	w->tick_armed = false;
	if (w->stopping)
		return;
	if (w->cfg.tick)
		w->cfg.tick(w->cfg.ops_arg, now);
	if (w->cfg.store)
		bw_store_tick(w->cfg.store, now);
	if (w->cfg.sessions)
		bw_sessions_tick(w->cfg.sessions);
	sweep(w, now);
	w->tick_armed = bw_ring_timeout(&w->ring, &w->tick, TICK_MS) == 0;
}

/* ---- the thread ----------------------------------------------------------- */

static int open_listener(struct listener *l)
{
	const struct bw_listener_config *lc = l->cfg;
	int one = 1;
	int fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)&lc->addr, lc->addr_len) < 0 ||
	    listen(fd, BACKLOG) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	l->fd = fd;
	return 0;
}

static void close_listener(struct bw_worker *w, struct listener *l)
{
	if (l->armed)
		(void)bw_ring_cancel(&w->ring, &l->accept);
	if (l->fd >= 0) {
		/* shutdown(2) ends the multishot accept too. */
		(void)shutdown(l->fd, SHUT_RDWR);
		close(l->fd);
		l->fd = -1;
	}
}

static void close_listeners(struct bw_worker *w)
{
	for (uint32_t i = 0; i < w->cfg.n_listeners; i++)
		close_listener(w, &w->listeners[i]);
}

void bw_worker_drain(struct bw_worker *w)
{
	for (uint32_t i = 0; i < w->cfg.n_listeners; i++) {
		if (w->listeners[i].cfg->kind != BW_LISTEN_HTTP)
			close_listener(w, &w->listeners[i]);
	}
}

/* Opens the ring and the listeners; 0 or -errno. */
static int setup(struct bw_worker *w)
{
	int rc = bw_ring_init(&w->ring, NULL);

	if (rc < 0)
		return rc;
	w->ring_ok = true;
	uint32_t bufs = bw_ring_buf_count(&w->ring);
	/* Without a hub (tests), 15 tenants are told apart. */
	w->n_classes = (w->cfg.hub ? bw_hub_tenants_max(w->cfg.hub) : 15) + 1;
	w->in_next = malloc(bufs * sizeof(*w->in_next));
	w->in_len = malloc(bufs * sizeof(*w->in_len));
	w->classes = calloc(w->n_classes, sizeof(*w->classes));
	w->active_head = w->active_tail = NO_CLASS;
	if (!w->in_next || !w->in_len || !w->classes)
		return -ENOMEM;
	for (uint32_t i = 0; i < w->cfg.n_listeners && !w->tls_stage; i++) {
		if (w->listeners[i].tls && !(w->tls_stage = malloc(TLS_STAGE)))
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < w->cfg.n_listeners; i++) {
		struct listener *l = &w->listeners[i];
		rc = open_listener(l);
		if (rc < 0) {
			bw_log_error("worker: cannot listen on %s: %s", l->cfg->addr_text,
			             strerror(-rc));
			return rc;
		}
	}
	for (uint32_t i = 0; i < w->cfg.n_listeners; i++) {
		rc = arm_accept(&w->listeners[i]);
		if (rc < 0)
			return rc;
	}
	if (w->cfg.store && (rc = bw_store_attach(w->cfg.store, &w->ring)) < 0) {
		bw_log_error("worker: Redis client: %s", strerror(-rc));
		return rc;
	}
	if (w->cfg.store && w->cfg.sessions)
		bw_sessions_attach(w->cfg.sessions, bw_store_client(w->cfg.store));
	w->tick.op.done = on_tick;
	rc = bw_ring_timeout(&w->ring, &w->tick, TICK_MS);
	w->tick_armed = rc == 0;
	if (rc == 0 && w->cfg.hub)
		bw_hub_attach(w->cfg.hub, w->cfg.index, w);
	return rc;
}

void bw_worker_hold(void *conn_user, bool on)
{
	struct client *c = conn_user;

	if (on) {
		c->inflight++;
	} else {
		c->inflight--;
		mark_dirty(c); /* freed from the loop if it closed meanwhile */
	}
}

int bw_worker_sni(void *conn_user, char *buf, size_t cap)
{
	struct client *c = conn_user;
	const char *sni = c->tls ? bw_tls_conn_sni(c->tls) : NULL;
	size_t n = sni ? strlen(sni) : 0;
	if (!sni || n >= cap)
		return -ENOENT;
	memcpy(buf, sni, n + 1);
	return (int)n;
}

int bw_worker_chain(void *conn_user, uint8_t (*fps)[32], size_t cap)
{
	struct client *c = conn_user;
	return c->tls ? bw_tls_conn_chain_fps(c->tls, fps, cap) : 0;
}

int bw_worker_peer(void *conn_user, uint32_t field, char *buf, size_t cap)
{
	static const char *const san_prefix[] = { [BW_CONFIG_IDENTITY_SAN_DNS] = "DNS:",
		                                  [BW_CONFIG_IDENTITY_SAN_URI] = "URI:",
		                                  [BW_CONFIG_IDENTITY_SAN_EMAIL] = "email:" };
	struct client *c = conn_user;

	if (!c->tls || !bw_tls_conn_has_peer_cert(c->tls) || cap < 65)
		return -ENOENT;
	if (field == BW_CONFIG_IDENTITY_CN)
		return bw_tls_conn_peer_cn(c->tls, buf, cap);
	if (field == BW_CONFIG_IDENTITY_SHA256) {
		uint8_t h[32];
		if (bw_tls_conn_peer_sha256(c->tls, h) < 0)
			return -ENOENT;
		for (int i = 0; i < 32; i++)
			snprintf(buf + 2 * i, cap - 2 * (size_t)i, "%02x", h[i]);
		return 64;
	}
	if (field < BW_CONFIG_IDENTITY_SAN_DNS || field > BW_CONFIG_IDENTITY_SAN_EMAIL)
		return -EINVAL;
	const char *pre = san_prefix[field];
	size_t pl = strlen(pre);
	for (unsigned i = 0; i < 64; i++) {
		int n = bw_tls_conn_peer_san(c->tls, i, buf, cap);
		if (n == -ENOENT)
			break;
		if (n > (int)pl && !strncmp(buf, pre, pl)) {
			memmove(buf, buf + pl, (size_t)n - pl + 1);
			return n - (int)pl;
		}
	}
	return -ENOENT;
}

int bw_worker_source(void *conn_user, struct bw_addr *addr)
{
	struct client *c = conn_user;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return bw_addr_from_sockaddr(addr, &ss);
}

void bw_worker_wake(struct bw_worker *w)
{
	(void)bw_ring_wake(&w->ring);
}

void bw_worker_wake_peer(void *from, void *to)
{
	struct bw_worker *f = from, *t = to;

	(void)bw_ring_msg(&f->ring, &t->ring, 0);
}

static void run_for(struct bw_worker *w, uint64_t ms, bool until_empty)
{
	uint64_t end = bw_worker_now_ms() + ms;

	for (;;) {
		uint64_t now = bw_worker_now_ms();
		if (now >= end || (until_empty && !w->clients))
			return;
		int wait = pass(w);
		int rc = bw_ring_run(&w->ring, wait >= 0 ? wait : (int)(end - now));
		if (rc < 0 && rc != -EINTR && rc != -ETIME) {
			bw_log_warn("worker: ring: %s", strerror(-rc));
			return;
		}
	}
}

/* Kicks everyone, flushes for at most STOP_FLUSH_MS, closes the rest. */
static void shutdown_clients(struct bw_worker *w)
{
	w->stopping = true;
	if (w->tick_armed)
		(void)bw_ring_cancel(&w->ring, &w->tick.op);
	close_listeners(w);
	for (struct client *c = w->clients; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->http)
			client_close(c);
		else if (bw_conn_state(c->conn) != BW_CONN_CLOSING)
			bw_conn_kick(c->conn, BW_RC_SERVER_SHUTTING_DOWN);
		mark_dirty(c);
	}
	run_for(w, STOP_FLUSH_MS, true);
	for (struct client *c = w->clients; c; c = c->next)
		client_close(c);
	run_for(w, STOP_FLUSH_MS, true);
	pass(w);
}

/*
 * The node stops: the broker's last publishes (wills) go out to the other
 * workers, everyone waits for everyone, then takes what mail is left (into
 * offline sessions). After the hub quiesced nobody posts or wakes.
 */
static void shutdown_mail(struct bw_worker *w)
{
	uintptr_t v[MAIL_BATCH];
	uint32_t n;

	if (w->cfg.shutdown)
		w->cfg.shutdown(w->cfg.ops_arg);
	if (!w->cfg.hub)
		return;
	bw_hub_flush(w->cfg.hub, w->cfg.index);
	bw_hub_quiesce(w->cfg.hub, w->cfg.index);
	while ((n = bw_hub_take(w->cfg.hub, w->cfg.index, v, MAIL_BATCH)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (bw_letter_tag(v[i]) == BW_LETTER_CONN)
				take_over(w, bw_letter_ptr(v[i])); /* closes it: stopping */
			else
				w->cfg.mail(w->cfg.ops_arg, v[i]);
		}
	}
}

/*
 * The store's last writes (the wills' retained messages among them) go
 * to Redis while it answers, for at most STORE_FLUSH_MS: the ring runs a
 * little longer for them, ticking the store.
 */
static void flush_store(struct bw_worker *w)
{
	uint64_t end = bw_worker_now_ms() + STORE_FLUSH_MS;

	while (w->cfg.store && (bw_store_pending(w->cfg.store) > 0 ||
	                        (w->cfg.sessions && bw_sessions_held(w->cfg.sessions) > 0))) {
		uint64_t now = bw_worker_now_ms();
		if (now >= end)
			return;
		int rc = bw_ring_run(&w->ring, 10);
		if (rc < 0 && rc != -EINTR && rc != -ETIME)
			return;
		bw_store_tick(w->cfg.store, bw_worker_now_ms());
		if (w->cfg.sessions)
			bw_sessions_tick(w->cfg.sessions);
	}
}

static void *worker_main(void *arg)
{
	struct bw_worker *w = arg;
	int rc = setup(w);

	pthread_mutex_lock(&w->mu);
	w->start_rc = rc;
	w->started = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (rc < 0)
		goto out;
	while (!atomic_load(&w->stop)) {
		rc = bw_ring_run(&w->ring, pass(w));
		if (rc < 0 && rc != -EINTR && rc != -ETIME) {
			bw_log_error("worker: ring: %s", strerror(-rc));
			break;
		}
	}
	shutdown_clients(w);
	shutdown_mail(w);
	flush_store(w);
	/*
	 * Keep the ring (its eventfd) alive until bw_worker_stop()'s wake has
	 * been written: 1. the stopper sets stop, 2. this thread sees it (or a
	 * ring error ended the loop) and winds down, 3. the stopper wakes the
	 * ring, which must still exist, 4. it sets woken.
	 */
	while (!atomic_load(&w->woken))
		usleep(10000);
out:
	close_listeners(w);
	if (w->ring_ok)
		bw_ring_exit(&w->ring);
	w->ring_ok = false;
	if (w->cfg.sessions)
		bw_sessions_attach(w->cfg.sessions, NULL); /* its client goes now */
	if (w->cfg.store)
		bw_store_detach(w->cfg.store, false); /* the ring's exit dropped its polls */
	/* What the ring's exit abandoned: no callback will come for it. */
	while (w->clients)
		client_free(w->clients);
	while (w->spare_sb) {
		struct send_buf *sb = w->spare_sb;
		w->spare_sb = sb->next;
		free(sb);
	}
	free(w->tls_stage);
	w->tls_stage = NULL;
	free(w->in_next);
	free(w->in_len);
	free(w->classes);
	w->in_next = NULL;
	w->in_len = NULL;
	w->classes = NULL;
	bw_outq_cache_trim();
	return NULL;
}

int bw_worker_start(struct bw_worker **out, const struct bw_worker_config *cfg)
{
	struct bw_worker *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	if (!w->cfg.connect_timeout_ms)
		w->cfg.connect_timeout_ms = 10000;
	w->listeners = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*w->listeners));
	if (!w->listeners) {
		free(w);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cfg->n_listeners; i++) {
		struct listener *l = &w->listeners[i];
		l->w = w;
		l->cfg = &cfg->listeners[i];
		l->fd = -1;
		l->accept.done = on_accept;
		l->tls = cfg->tls ? cfg->tls[i] : NULL;
		if (l->cfg->kind == BW_LISTEN_MQTT) {
			l->ops = cfg->ops_for ? cfg->ops_for(cfg->ops_arg, l->cfg) : NULL;
			/* An mqtts listener without a context would serve plaintext. */
			if (!l->ops || l->cfg->tls != !!l->tls) {
				free(w->listeners);
				free(w);
				return -EINVAL;
			}
		}
	}
	atomic_init(&w->stop, false);
	atomic_init(&w->woken, false);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	rc = -pthread_create(&w->thread, NULL, worker_main, w);
	if (rc == 0) {
		pthread_mutex_lock(&w->mu);
		while (!w->started)
			pthread_cond_wait(&w->cv, &w->mu);
		rc = w->start_rc;
		pthread_mutex_unlock(&w->mu);
		if (rc < 0)
			pthread_join(w->thread, NULL);
	}
	if (rc < 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w->listeners);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void bw_worker_request_stop(struct bw_worker *w)
{
	if (atomic_exchange(&w->stop, true))
		return;
	(void)bw_ring_wake(&w->ring);
	atomic_store(&w->woken, true);
}

void bw_worker_stop(struct bw_worker **wp)
{
	struct bw_worker *w = *wp;

	if (!w)
		return;
	bw_worker_request_stop(w);
	pthread_join(w->thread, NULL);
	*wp = NULL; /* only now: other workers may read it until they stopped */
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->listeners);
	free(w);
}
