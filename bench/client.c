/*
 * The client engine (see client.h). Each connection carries three ops:
 * a poll for its non-blocking connect(), a multishot recv and one send in
 * flight (stream.h). A connection is closed by shutdown(2), which ends the
 * recv and any send; the descriptor is closed once the last of its ops has
 * completed, and only then may the slot be reused (by a churning client) or
 * freed. Publishers keep their socket's output full: at QoS 0 a batch is
 * built while the previous one is being sent; at QoS 1/2 a window of
 * packet identifiers (a byte a slot) bounds what is unacknowledged. The
 * payload of every PUBLISH starts with the publisher's index, a sequence
 * number and a CLOCK_MONOTONIC timestamp (the scheduled send time when
 * paced), which subscribers count with seq.h and turn into latency.
 * With TLS a connection goes through CS_TLS between TCP and CONNECT: the
 * handshake advances with each receive (tls.h), MQTT is written as
 * plaintext into the same output buffer and encrypted when it is flushed.
 */
#include "bench/client.h"

#include "bench/stream.h"
#include "proto/mqtt/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SEQ_LIMIT        (UINT32_MAX - 2) /* a publisher stops there */
#define MAX_PACKET_IN    (BW_BENCH_LOAD_PAY_MAX + 1024)
#define KEEPALIVE_SCAN_S 1

enum role { ROLE_PUB, ROLE_SUB, ROLE_IDLE, ROLE_CHURN };

enum conn_state {
	CS_FREE,    /* no socket */
	CS_TCP,     /* connect() in progress */
	CS_TLS,     /* TLS handshake in progress */
	CS_CONNACK, /* CONNECT sent */
	CS_SUBACK,  /* SUBSCRIBE sent */
	CS_READY,
	CS_BYE,     /* DISCONNECT sent; the broker closes */
	CS_CLOSING, /* shut down; waiting for the ops to end */
	CS_DONE,    /* closed for good */
};

enum slot_state { SLOT_FREE, SLOT_WAIT_ACK, SLOT_WAIT_COMP };

struct bw_bench_conn {
	struct bw_bench_thread *t;
	int fd;
	struct bw_bench_tls *tls; /* TLS: the slot's SSL and kept session; NULL: plain */
	uint8_t role;
	uint8_t state;
	bool recv_armed;
	bool poll_busy;
	bool failed;
	bool counted;        /* in t->connecting */
	uint32_t id;         /* index within its role: publisher or subscriber index, slot */
	uint32_t iter;       /* churn: handshakes this slot started */
	uint32_t source;     /* --source index */
	uint64_t start_ns;   /* socket(): for the handshake latency */
	uint64_t last_tx_ns; /* keep-alive */
	struct bw_op recv_op;
	struct bw_op send_op;
	struct bw_op poll_op;
	struct bw_bench_in in;
	struct bw_bench_out out;
	/* Publishers. */
	const struct bw_bench_tmpl *tmpl;
	uint32_t next_seq; /* the next message to build */
	uint32_t base;     /* QoS 1/2: the oldest unacknowledged */
	uint32_t window;
	uint8_t *slots;   /* QoS 1/2: o->inflight entries, enum slot_state */
	double offset_ns; /* paced: this publisher's place in the schedule */
	uint64_t sent;
	uint64_t acked;
	uint64_t refused;
	/* Subscribers. */
	struct bw_bench_seq *trk;
};

uint64_t bw_bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *role_name(uint8_t role)
{
	static const char *const n[] = { "publisher", "subscriber", "idle client", "client" };
	return n[role];
}

/* Keeps the thread's first failure, with who it happened to, for the report. */
static void note(struct bw_bench_thread *t, struct bw_bench_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (atomic_load_explicit(&t->has_err, memory_order_relaxed))
		return;
	int n = snprintf(t->err, sizeof(t->err), "%s %u: ", role_name(c->role), c->id);
	va_start(ap, fmt);
	vsnprintf(t->err + n, sizeof(t->err) - (size_t)n, fmt, ap);
	va_end(ap);
	atomic_store_explicit(&t->has_err, true, memory_order_release);
}

static const struct bw_bench_load_opts *opts(const struct bw_bench_conn *c)
{
	return c->t->plan->o;
}

static int phase(const struct bw_bench_thread *t)
{
	return atomic_load_explicit(&t->plan->phase, memory_order_acquire);
}

static void start_connect(struct bw_bench_conn *c);
static void conn_close(struct bw_bench_conn *c);
static void refill(struct bw_bench_conn *c);
static void want_tick(struct bw_bench_thread *t, uint64_t at_ns);

/* Breaks the connection: counted as failed, reported, closed. */
static void conn_fail(struct bw_bench_conn *c, const char *fmt, ...)
{
	struct bw_bench_thread *t = c->t;
	va_list ap;
	char why[200];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!c->failed) {
		c->failed = true;
		t->c[BW_BENCH_C_FAILED]++;
		note(t, c, "%s", why);
	}
	conn_close(c);
}

/* Sends what is pending, unless a send is in flight (its completion will). */
static void flush(struct bw_bench_conn *c)
{
	if (c->fd < 0 || c->state == CS_CLOSING)
		return;
	int rc = c->tls ? bw_bench_tls_flush(c->tls, &c->out, &c->t->ring, &c->send_op, c->fd)
	                : bw_bench_out_flush(&c->out, &c->t->ring, &c->send_op, c->fd);
	if (rc < 0)
		conn_fail(c, "send: %s", strerror(-rc));
	else if (rc > 0)
		c->last_tx_ns = c->t->now_ns;
}

/* Appends n bytes; a full output buffer breaks the connection. */
static bool put(struct bw_bench_conn *c, const void *p, uint32_t n)
{
	if (bw_bench_out_put(&c->out, p, n) == 0)
		return true;
	conn_fail(c, "output buffer full");
	return false;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP: 2-byte form, success in 5.0 too. */
static bool put_ack(struct bw_bench_conn *c, uint8_t type, uint16_t id)
{
	uint8_t b[4] = { (uint8_t)(type << 4 | (type == BW_PUBREL ? 2 : 0)), 2, (uint8_t)(id >> 8),
		         (uint8_t)id };
	return put(c, b, sizeof(b));
}

/* Encodes pkt and appends it. */
static bool put_packet(struct bw_bench_conn *c, const struct bw_packet *pkt)
{
	uint8_t version = opts(c)->version;
	size_t n = bw_codec_size(pkt, version);
	uint8_t *d = n ? bw_bench_out_reserve(&c->out, (uint32_t)n) : NULL;

	if (!d || bw_codec_encode(pkt, version, d, n) != (int)n) {
		conn_fail(c, "cannot encode %s", bw_packet_name(pkt->type));
		return false;
	}
	bw_bench_out_commit(&c->out, (uint32_t)n, 0);
	return true;
}

static bool send_connect(struct bw_bench_conn *c)
{
	const struct bw_bench_load_opts *o = opts(c);
	static const char letter[] = { 'p', 's', 'i', 'c' };
	char id[96];
	bool persistent = c->role == ROLE_SUB && o->session_expiry > 0;
	struct bw_packet pkt;
	int n;

	if (c->role == ROLE_CHURN)
		n = snprintf(id, sizeof(id), "%s-c%u.%u", o->client_id, c->id, c->iter);
	else
		n = snprintf(id, sizeof(id), "%s-%c%u%s", o->client_id, letter[c->role], c->id,
		             persistent ? c->t->plan->sub_tag : "");
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = BW_CONNECT;
	pkt.connect.version = o->version;
	/* A persistent subscriber: clean session 0 (3.1.1), or 5.0's Session Expiry. */
	pkt.connect.clean_start = !persistent;
	if (persistent && o->version == BW_MQTT_5) {
		pkt.connect.props.has = BW_PROP_BIT(BW_PROP_SESSION_EXPIRY);
		pkt.connect.props.session_expiry = o->session_expiry;
	}
	pkt.connect.keep_alive = o->keepalive;
	pkt.connect.client_id = (struct bw_str){ (const uint8_t *)id, (uint16_t)n };
	if (o->username) {
		pkt.connect.has_username = true;
		pkt.connect.username = (struct bw_str){ (const uint8_t *)o->username,
			                                (uint16_t)strlen(o->username) };
	}
	if (o->password) {
		pkt.connect.has_password = true;
		pkt.connect.password = (struct bw_bin){ (const uint8_t *)o->password,
			                                (uint32_t)strlen(o->password) };
	}
	return put_packet(c, &pkt);
}

/* The topic filter subscriber (or idle client) c subscribes to. */
static int sub_filter(const struct bw_bench_conn *c, char *buf, size_t cap)
{
	const struct bw_bench_load_opts *o = opts(c);

	if (c->role == ROLE_IDLE)
		return snprintf(buf, cap, "%s/idle/%u", o->topic, c->id);
	switch (o->scenario) {
	case BW_BENCH_PAIRS:
		return snprintf(buf, cap, "%s/pair/%u", o->topic, c->id);
	case BW_BENCH_SHARED:
		return snprintf(buf, cap, "$share/bench/%s/shared", o->topic);
	case BW_BENCH_FLOOD:
		return snprintf(buf, cap, "%s/%u", o->topic, c->id);
	default:
		return snprintf(buf, cap, "%s/all", o->topic);
	}
}

static bool send_subscribe(struct bw_bench_conn *c)
{
	const struct bw_bench_load_opts *o = opts(c);
	char filter[600];
	uint8_t entries[640];
	uint32_t len = 0;
	struct bw_packet pkt;
	int n = sub_filter(c, filter, sizeof(filter));
	struct bw_sub_entry e = { .filter = { (const uint8_t *)filter, (uint16_t)n },
		                  .qos = c->role == ROLE_SUB ? o->qos : 0 };

	if (bw_codec_put_sub(entries, sizeof(entries), &len, &e, o->version) < 0) {
		conn_fail(c, "cannot encode SUBSCRIBE");
		return false;
	}
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = BW_SUBSCRIBE;
	pkt.subscribe.packet_id = 1;
	pkt.subscribe.count = 1;
	pkt.subscribe.entries = (struct bw_bin){ entries, len };
	return put_packet(c, &pkt);
}

static void send_disconnect(struct bw_bench_conn *c)
{
	struct bw_packet pkt;

	memset(&pkt, 0, sizeof(pkt));
	pkt.type = BW_DISCONNECT;
	if (put_packet(c, &pkt)) {
		c->state = CS_BYE;
		flush(c);
	}
}

/* A handshake ended (ready or failed): make room for the next one. */
static void handshake_over(struct bw_bench_conn *c)
{
	if (c->counted) {
		c->counted = false;
		c->t->connecting--;
	}
}

/* Closes the socket once no op is in flight on it; a churning slot starts again. */
static void maybe_release(struct bw_bench_conn *c)
{
	struct bw_bench_thread *t = c->t;

	if (c->state != CS_CLOSING || c->recv_armed || c->out.busy || c->poll_busy)
		return;
	close(c->fd);
	c->fd = -1;
	bw_bench_tls_end(c->tls, !c->failed);
	t->c[BW_BENCH_C_OPEN]--;
	c->state = CS_DONE;
	handshake_over(c);
	if (c->role == ROLE_CHURN && phase(t) == BW_BENCH_PH_RUN) {
		c->iter++;
		/*
		 * A failed attempt starts again from the thread's loop: a connect
		 * that fails at once would otherwise recurse through here.
		 */
		if (c->failed)
			t->restart[t->n_restart++] = (uint32_t)(c - t->conns);
		else
			start_connect(c);
	}
}

static void conn_close(struct bw_bench_conn *c)
{
	if (c->fd < 0 || c->state == CS_CLOSING)
		return;
	c->state = CS_CLOSING;
	shutdown(c->fd, SHUT_RDWR);
	if (c->poll_busy)
		(void)bw_ring_cancel(&c->t->ring, &c->poll_op);
	maybe_release(c);
}

static void arm_recv(struct bw_bench_conn *c)
{
	int rc = bw_ring_recv(&c->t->ring, &c->recv_op, c->fd);

	if (rc < 0) {
		conn_fail(c, "recv: %s", strerror(-rc));
		return;
	}
	c->recv_armed = true;
}

/* TCP is up: start reading and say CONNECT, or start the TLS handshake. */
static void connected(struct bw_bench_conn *c)
{
	struct bw_bench_tls_ctx *tls = c->t->plan->tls;
	int fl = fcntl(c->fd, F_GETFL);

	/* Blocking again: io_uring then waits for room instead of failing with EAGAIN. */
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		conn_fail(c, "fcntl: %s", strerror(errno));
		return;
	}
	c->state = tls ? CS_TLS : CS_CONNACK;
	arm_recv(c);
	if (c->state == CS_TLS) {
		char why[BW_BENCH_TLS_WHY_MAX];
		int rc = bw_bench_tls_start(&c->tls, tls, why);
		if (rc < 0) {
			conn_fail(c, "TLS: %s", rc == -ENOMEM ? "out of memory" : why);
			return;
		}
		flush(c); /* the ClientHello */
	} else if (c->state == CS_CONNACK && send_connect(c)) {
		flush(c);
	}
}

static void poll_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_bench_conn *c = BW_CONTAINER_OF(op, struct bw_bench_conn, poll_op);
	int err = 0;
	socklen_t len = sizeof(err);

	c->poll_busy = false;
	c->t->now_ns = bw_bench_now_ns();
	if (c->state == CS_CLOSING) {
		maybe_release(c);
		return;
	}
	if (res < 0)
		err = -res;
	else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		conn_fail(c, "connect: %s", strerror(err));
		return;
	}
	connected(c);
}

static void start_connect(struct bw_bench_conn *c)
{
	const struct bw_bench_load_opts *o = opts(c);
	struct bw_bench_thread *t = c->t;
	int one = 1;

	c->failed = false;
	c->in.len = 0;
	c->out.pend_len = c->out.pend_msgs = 0;
	c->start_ns = bw_bench_now_ns();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = CS_DONE;
		conn_fail(c, "socket: %s", strerror(errno));
		return;
	}
	t->c[BW_BENCH_C_OPEN]++;
	c->counted = true;
	t->connecting++;
	c->state = CS_TCP;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->n_sources) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr = o->sources[(c->source + c->iter) % o->n_sources];
		/* The port is picked at connect(), per destination: more than 64k in all. */
		(void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			conn_fail(c, "bind: %s", strerror(errno));
			return;
		}
	}
	if (connect(c->fd, (const struct sockaddr *)&o->dst, sizeof(o->dst)) == 0) {
		connected(c);
		return;
	}
	if (errno != EINPROGRESS) {
		conn_fail(c, "connect: %s", strerror(errno));
		return;
	}
	int rc = bw_ring_poll(&t->ring, &c->poll_op, c->fd, POLLOUT);
	if (rc < 0) {
		conn_fail(c, "poll: %s", strerror(-rc));
		return;
	}
	c->poll_busy = true;
}

static void ready(struct bw_bench_conn *c)
{
	struct bw_bench_thread *t = c->t;

	c->state = CS_READY;
	t->c[BW_BENCH_C_READY]++;
	handshake_over(c);
	if (c->role == ROLE_PUB && phase(t) == BW_BENCH_PH_RUN)
		refill(c);
	flush(c);
}

static const char *connack_name(uint8_t version, uint8_t code)
{
	static const char *const v3[] = {
		"accepted",           "unacceptable protocol version", "identifier rejected",
		"server unavailable", "bad user name or password",     "not authorized"
	};

	if (version == BW_MQTT_5)
		return bw_reason_name(code);
	return code < sizeof(v3) / sizeof(v3[0]) ? v3[code] : "?";
}

static int on_connack(struct bw_bench_conn *c, const struct bw_connack *ca)
{
	const struct bw_bench_load_opts *o = opts(c);
	struct bw_bench_thread *t = c->t;

	if (c->state != CS_CONNACK) {
		conn_fail(c, "CONNACK out of turn");
		return -1;
	}
	if (ca->code != 0) {
		conn_fail(c, "CONNACK refused: %s (0x%02x)", connack_name(o->version, ca->code),
		          ca->code);
		return -1;
	}
	t->c[BW_BENCH_C_CONNECTS]++;
	if (o->version == BW_MQTT_5 && (ca->props.has & BW_PROP_BIT(BW_PROP_RECEIVE_MAX)) &&
	    ca->props.receive_max < c->window)
		c->window = ca->props.receive_max;
	switch (c->role) {
	case ROLE_PUB:
		ready(c);
		break;
	case ROLE_SUB:
	case ROLE_IDLE:
		c->state = CS_SUBACK;
		if (send_subscribe(c))
			flush(c);
		break;
	case ROLE_CHURN: {
		uint64_t ws = atomic_load_explicit(&t->plan->win_start_ns, memory_order_relaxed);
		uint64_t we = atomic_load_explicit(&t->plan->win_end_ns, memory_order_relaxed);
		if (c->start_ns >= ws && c->start_ns < we)
			bw_bench_hist_record(t->hs, t->now_ns - c->start_ns);
		handshake_over(c);
		send_disconnect(c);
		break;
	}
	}
	return c->state == CS_CLOSING ? -1 : 0;
}

static int on_suback(struct bw_bench_conn *c, const struct bw_suback *sa)
{
	if (c->state != CS_SUBACK || sa->packet_id != 1) {
		conn_fail(c, "SUBACK out of turn");
		return -1;
	}
	if (sa->codes.len < 1 || sa->codes.p[0] >= 0x80) {
		conn_fail(c, "SUBSCRIBE refused (0x%02x)", sa->codes.len ? sa->codes.p[0] : 0);
		return -1;
	}
	ready(c);
	return c->state == CS_CLOSING ? -1 : 0;
}

/* A subscriber's PUBLISH: count it, time it, acknowledge it. */
static int on_publish(struct bw_bench_conn *c, const struct bw_publish *pb)
{
	struct bw_bench_thread *t = c->t;
	uint32_t pub = UINT32_MAX, seq = 0;
	uint64_t ts = 0;

	if (c->role != ROLE_SUB || !c->trk) {
		conn_fail(c, "unexpected PUBLISH");
		return -1;
	}
	t->c[BW_BENCH_C_RECEIVED]++;
	if (pb->payload.len >= BW_BENCH_PAYLOAD_MIN) {
		memcpy(&pub, pb->payload.p, 4);
		memcpy(&seq, pb->payload.p + 4, 4);
		memcpy(&ts, pb->payload.p + 8, 8);
	}
	enum bw_bench_seq_result r = bw_bench_seq_add(c->trk, pub, seq, pb->dup);
	if (r == BW_BENCH_SEQ_NEW) {
		t->c[BW_BENCH_C_UNIQUE]++;
		uint64_t ws = atomic_load_explicit(&t->plan->win_start_ns, memory_order_relaxed);
		uint64_t we = atomic_load_explicit(&t->plan->win_end_ns, memory_order_relaxed);
		if (ts >= ws && ts < we)
			bw_bench_hist_record(t->lat, t->now_ns > ts ? t->now_ns - ts : 0);
	} else if (r == BW_BENCH_SEQ_NOMEM) {
		t->seq_nomem++;
	}
	if (pb->qos == 1 && !put_ack(c, BW_PUBACK, pb->packet_id))
		return -1;
	if (pb->qos == 2 && !put_ack(c, BW_PUBREC, pb->packet_id))
		return -1;
	return 0;
}

/*
 * The message a publisher's ack names: packet identifiers go 1..65535 in
 * sequence order, and what is unacknowledged spans less than the window
 * (<= 65535), so at most one message in flight has that identifier.
 * Returns false when none does, or it is not in the state expected.
 */
static bool find_slot(const struct bw_bench_conn *c, uint16_t id, uint8_t want, uint32_t *seq)
{
	if (!c->slots || id == 0)
		return false;
	uint32_t d = ((uint32_t)id - 1 + 65535 - c->base % 65535) % 65535;
	if (d >= c->next_seq - c->base)
		return false;
	*seq = c->base + d;
	return c->slots[*seq % c->window] == want;
}

/* One QoS 1/2 flow is over: free its slot, move the window, send more. */
static void flow_done(struct bw_bench_conn *c, uint32_t seq, bool refused)
{
	struct bw_bench_thread *t = c->t;

	c->slots[seq % c->window] = SLOT_FREE;
	c->acked++;
	t->c[BW_BENCH_C_ACKED]++;
	if (refused) {
		c->refused++;
		t->c[BW_BENCH_C_REFUSED]++;
	}
	while (c->base != c->next_seq && c->slots[c->base % c->window] == SLOT_FREE)
		c->base++;
	refill(c);
}

static int on_ack(struct bw_bench_conn *c, uint8_t type, const struct bw_ack *a)
{
	uint8_t want = type == BW_PUBCOMP ? SLOT_WAIT_COMP : SLOT_WAIT_ACK;
	uint8_t qos = opts(c)->qos;
	uint32_t seq;

	if (c->role != ROLE_PUB || (type == BW_PUBACK) != (qos == 1) ||
	    !find_slot(c, a->packet_id, want, &seq)) {
		conn_fail(c, "%s for packet id %u, which is not in flight", bw_packet_name(type),
		          a->packet_id);
		return -1;
	}
	if (type == BW_PUBREC && a->code < 0x80) {
		c->slots[seq % c->window] = SLOT_WAIT_COMP;
		return put_ack(c, BW_PUBREL, a->packet_id) ? 0 : -1;
	}
	flow_done(c, seq, a->code >= 0x80);
	return c->state == CS_CLOSING ? -1 : 0;
}

static int on_packet(void *ctx, const uint8_t *p, const struct bw_frame *f)
{
	struct bw_bench_conn *c = ctx;
	struct bw_packet pkt;
	const char *why = NULL;

	if (c->state == CS_CLOSING)
		return -1;
	int rc = bw_codec_decode(p, f->size, opts(c)->version, &pkt, &why);
	if (rc < 0) {
		conn_fail(c, "bad %s from the broker: %s", bw_packet_name(f->type),
		          why ? why : "malformed");
		return -1;
	}
	switch (pkt.type) {
	case BW_PUBLISH:
		return on_publish(c, &pkt.publish);
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBCOMP:
		return on_ack(c, pkt.type, &pkt.ack);
	case BW_PUBREL:
		if (c->role != ROLE_SUB) {
			conn_fail(c, "unexpected PUBREL");
			return -1;
		}
		return put_ack(c, BW_PUBCOMP, pkt.ack.packet_id) ? 0 : -1;
	case BW_CONNACK:
		return on_connack(c, &pkt.connack);
	case BW_SUBACK:
		return on_suback(c, &pkt.suback);
	case BW_PINGRESP:
		return 0;
	case BW_DISCONNECT:
		conn_fail(c, "DISCONNECT from the broker: %s (0x%02x)",
		          bw_reason_name(pkt.disconnect.code), pkt.disconnect.code);
		return -1;
	default:
		conn_fail(c, "unexpected %s from the broker", bw_packet_name(pkt.type));
		return -1;
	}
}

/* The MQTT stream could not take what was received. */
static void feed_failed(struct bw_bench_conn *c, int rc)
{
	if (c->state != CS_CLOSING)
		conn_fail(c, "%s",
		          rc == -ENOMEM ? "out of memory" : "malformed packet from the broker");
}

/* The TLS handshake is over: count it and say CONNECT. */
static void tls_up(struct bw_bench_conn *c)
{
	struct bw_bench_thread *t = c->t;

	t->c[bw_bench_tls_resumed(c->tls) ? BW_BENCH_C_TLS_RESUMED : BW_BENCH_C_TLS_FULL]++;
	if (!t->tls_desc[0])
		bw_bench_tls_describe(c->tls, t->tls_desc, sizeof(t->tls_desc));
	c->state = CS_CONNACK;
	send_connect(c);
}

struct tls_feed {
	struct bw_bench_conn *c;
	int rc; /* the MQTT stream's error, which stopped the TLS input */
};

static int tls_plain(void *arg, const uint8_t *p, size_t n)
{
	struct tls_feed *f = arg;

	f->rc = bw_bench_in_feed(&f->c->in, p, (uint32_t)n, MAX_PACKET_IN, on_packet, f->c);
	return f->rc;
}

/* Ciphertext in: the handshake moves on, the plaintext goes to the MQTT stream. */
static void tls_recv(struct bw_bench_conn *c, const uint8_t *data, uint32_t n)
{
	char why[BW_BENCH_TLS_WHY_MAX];
	struct tls_feed f = { c, 0 };
	int rc = bw_bench_tls_input(c->tls, data, n, tls_plain, &f, why);

	if (f.rc < 0) {
		feed_failed(c, f.rc);
		return;
	}
	if (c->state == CS_CLOSING)
		return;
	if (rc == BW_BENCH_TLS_CLOSED) {
		/* After DISCONNECT the broker's FIN follows, as over TCP. */
		if (c->state != CS_BYE)
			conn_fail(c, "TLS close_notify from the broker");
	} else if (rc < 0) {
		conn_fail(c, "TLS: %s", rc == -ENOMEM ? "out of memory" : why);
	} else if (c->state == CS_TLS && bw_bench_tls_ready(c->tls)) {
		tls_up(c);
	}
}

static void recv_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_bench_conn *c = BW_CONTAINER_OF(op, struct bw_bench_conn, recv_op);
	struct bw_bench_thread *t = c->t;
	int bid = bw_ring_cqe_bid(cqe_flags);
	int fd = c->fd;
	uint32_t iter = c->iter;

	if (!(cqe_flags & IORING_CQE_F_MORE))
		c->recv_armed = false;
	if (res > 0 && bid >= 0) {
		t->c[BW_BENCH_C_BYTES_IN] += (uint64_t)res;
		if (c->state != CS_CLOSING) {
			const uint8_t *data = bw_ring_buf(&t->ring, (uint16_t)bid);
			t->now_ns = bw_bench_now_ns();
			if (c->tls) {
				tls_recv(c, data, (uint32_t)res);
			} else {
				int rc = bw_bench_in_feed(&c->in, data, (uint32_t)res,
				                          MAX_PACKET_IN, on_packet, c);
				if (rc < 0)
					feed_failed(c, rc);
			}
		}
	}
	if (bid >= 0)
		bw_ring_buf_put(&t->ring, (uint16_t)bid);
	/*
	 * The packets just handled may have closed the connection: with this
	 * (last) recv over, it was released, and a churning slot may already
	 * be on a new socket, maybe with the same descriptor number.
	 */
	if (c->fd != fd || c->iter != iter)
		return;
	if (c->state == CS_CLOSING) {
		maybe_release(c);
		return;
	}
	if (res == 0) {
		if (c->state == CS_BYE)
			conn_close(c);
		else
			conn_fail(c, "connection closed by the broker%s",
			          c->state == CS_TLS ? " during the TLS handshake" : "");
		return;
	}
	if (res < 0 && res != -ENOBUFS) {
		conn_fail(c, "recv: %s", strerror(-res));
		return;
	}
	if (!c->recv_armed)
		arm_recv(c);
	flush(c);
}

static void send_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_bench_conn *c = BW_CONTAINER_OF(op, struct bw_bench_conn, send_op);
	struct bw_bench_thread *t = c->t;
	uint32_t msgs;

	if (res > 0)
		t->c[BW_BENCH_C_BYTES_OUT] += (uint64_t)res;
	if (c->state == CS_CLOSING) {
		c->out.busy = false;
		maybe_release(c);
		return;
	}
	int rc = bw_bench_out_sent(&c->out, res, &t->ring, &c->send_op, c->fd, &msgs);
	if (rc < 0) {
		conn_fail(c, "send: %s", strerror(-rc));
		return;
	}
	if (rc == 0)
		return; /* the rest of a partial write is on its way */
	c->sent += msgs;
	t->c[BW_BENCH_C_SENT] += msgs;
	t->now_ns = bw_bench_now_ns();
	refill(c);
	flush(c);
}

/* Whether a publisher must wait for acks or for its output to drain. */
static bool blocked(const struct bw_bench_conn *c)
{
	if (c->out.pend_len >= c->t->plan->batch_bytes)
		return true;
	return c->slots && c->next_seq - c->base >= c->window;
}

/* Paced: when message seq of publisher c is due. */
static uint64_t sched_ns(const struct bw_bench_conn *c, uint64_t t0, uint32_t seq)
{
	return t0 + (uint64_t)(c->offset_ns + (double)seq * c->t->plan->interval_ns);
}

/*
 * Builds the publisher's next messages into its pending output: flat out,
 * as many as the batch and the window allow; paced, those whose scheduled
 * time has come (late ones keep their scheduled timestamp).
 */
static void refill(struct bw_bench_conn *c)
{
	struct bw_bench_thread *t = c->t;
	const struct bw_bench_plan *pl = t->plan;
	const struct bw_bench_tmpl *tm = c->tmpl;
	uint64_t n;

	if (c->role != ROLE_PUB || c->state != CS_READY || phase(t) != BW_BENCH_PH_RUN)
		return;
	if (c->out.pend_len >= pl->batch_bytes || c->next_seq >= SEQ_LIMIT)
		return;
	n = (pl->batch_bytes - c->out.pend_len) / tm->len;
	if (n == 0 && c->out.pend_len == 0)
		n = 1; /* a packet larger than the batch goes alone */
	if (c->slots) {
		uint32_t used = c->next_seq - c->base;
		n = used >= c->window ? 0 : n < c->window - used ? n : c->window - used;
	}
	uint64_t t0 = atomic_load_explicit(&pl->t0_ns, memory_order_relaxed);
	if (pl->interval_ns > 0) {
		uint64_t next_due = sched_ns(c, t0, c->next_seq);
		if (t->now_ns < next_due) {
			if (!blocked(c))
				want_tick(t, next_due);
			return;
		}
		/* Messages next_seq .. due - 1 are due (at least next_seq, whatever rounding). */
		double since = (double)(t->now_ns - t0) - c->offset_ns;
		uint64_t due = (uint64_t)(since / pl->interval_ns) + 1;
		if (due <= c->next_seq)
			due = (uint64_t)c->next_seq + 1;
		if (n > due - c->next_seq)
			n = due - c->next_seq;
	}
	if (n > SEQ_LIMIT - c->next_seq)
		n = SEQ_LIMIT - c->next_seq;
	if (n == 0)
		return;
	uint8_t *d = bw_bench_out_reserve(&c->out, (uint32_t)(n * tm->len));
	if (!d) {
		conn_fail(c, "out of memory for output");
		return;
	}
	for (uint64_t i = 0; i < n; i++, d += tm->len) {
		uint32_t seq = c->next_seq++;
		uint64_t ts = t->now_ns;
		memcpy(d, tm->bytes, tm->len);
		if (c->slots) {
			uint16_t id = (uint16_t)(seq % 65535 + 1);
			d[tm->pid_off] = (uint8_t)(id >> 8);
			d[tm->pid_off + 1] = (uint8_t)id;
			c->slots[seq % c->window] = SLOT_WAIT_ACK;
		}
		if (pl->interval_ns > 0)
			ts = sched_ns(c, t0, seq);
		memcpy(d + tm->pay_off, &c->id, 4);
		memcpy(d + tm->pay_off + 4, &seq, 4);
		memcpy(d + tm->pay_off + 8, &ts, 8);
	}
	bw_bench_out_commit(&c->out, (uint32_t)(n * tm->len), (uint32_t)n);
	if (pl->interval_ns > 0 && !blocked(c) && c->next_seq < SEQ_LIMIT)
		want_tick(t, sched_ns(c, t0, c->next_seq));
}

/*
 * Paced: wakes the thread at at_ns (at least tick_us from now), unless it
 * is to wake sooner already. A publisher held by its window or its output
 * asks again from the completion that frees it.
 */
static void want_tick(struct bw_bench_thread *t, uint64_t at_ns)
{
	uint64_t soonest = t->now_ns + (uint64_t)t->plan->o->tick_us * 1000u;

	if (at_ns < soonest)
		at_ns = soonest;
	if (t->timer_armed && at_ns >= t->timer_at_ns)
		return;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(at_ns / 1000000000u),
		                                .tv_nsec = (long)(at_ns % 1000000000u) } };
	if (timerfd_settime(t->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return;
	t->timer_at_ns = at_ns;
	if (!t->timer_armed && bw_ring_poll(&t->ring, &t->timer_op, t->timer_fd, POLLIN) == 0)
		t->timer_armed = true;
}

/*
 * Paced publishing: sends what is due, for every publisher of the thread;
 * each refill() then asks for the timer at its publisher's next message.
 */
static void pace(struct bw_bench_thread *t)
{
	if (phase(t) != BW_BENCH_PH_RUN)
		return;
	t->now_ns = bw_bench_now_ns();
	for (uint32_t i = 0; i < t->n_conns; i++) {
		struct bw_bench_conn *c = &t->conns[i];
		if (c->role == ROLE_PUB && c->state == CS_READY) {
			refill(c);
			flush(c);
		}
	}
}

static void timer_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct bw_bench_thread *t = BW_CONTAINER_OF(op, struct bw_bench_thread, timer_op);
	uint64_t ticks;

	t->timer_armed = false;
	t->timer_at_ns = UINT64_MAX;
	if (read(t->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	pace(t);
}

/* PINGREQ on connections that have sent nothing for half their keep alive. */
static void keepalive(struct bw_bench_thread *t)
{
	uint64_t ka = (uint64_t)t->plan->o->keepalive * 1000000000u / 2;
	static const uint8_t ping[2] = { BW_PINGREQ << 4, 0 };

	if (ka == 0)
		return;
	for (uint32_t i = 0; i < t->n_conns; i++) {
		struct bw_bench_conn *c = &t->conns[i];
		if (c->state == CS_READY && !c->out.busy && t->now_ns - c->last_tx_ns >= ka &&
		    put(c, ping, sizeof(ping)))
			flush(c);
	}
}

/* Connect phase: keeps this thread's share of --concurrency handshakes going. */
static void connect_more(struct bw_bench_thread *t)
{
	while (t->connecting < t->concurrency && t->next_connect < t->n_conns) {
		struct bw_bench_conn *c = &t->conns[t->next_connect++];
		if (c->role != ROLE_CHURN)
			start_connect(c);
	}
}

static uint64_t pubs_busy(const struct bw_bench_thread *t)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < t->n_conns; i++) {
		const struct bw_bench_conn *c = &t->conns[i];
		if (c->role == ROLE_PUB && c->state == CS_READY &&
		    (c->out.busy || c->out.pend_len || (c->slots && c->base != c->next_seq)))
			n++;
	}
	return n;
}

static void enter_phase(struct bw_bench_thread *t, int ph)
{
	t->now_ns = bw_bench_now_ns();
	switch (ph) {
	case BW_BENCH_PH_CONNECT:
		connect_more(t);
		break;
	case BW_BENCH_PH_RUN:
		for (uint32_t i = 0; i < t->n_conns; i++) {
			struct bw_bench_conn *c = &t->conns[i];
			if (c->role == ROLE_CHURN) {
				start_connect(c);
			} else if (c->role == ROLE_PUB && t->plan->interval_ns == 0) {
				refill(c);
				flush(c);
			}
		}
		if (t->plan->interval_ns > 0)
			pace(t);
		break;
	case BW_BENCH_PH_CLOSE:
		for (uint32_t i = 0; i < t->n_conns; i++) {
			struct bw_bench_conn *c = &t->conns[i];
			if (c->state == CS_READY)
				send_disconnect(c);
			else if (c->state == CS_TCP || c->state == CS_TLS ||
			         c->state == CS_CONNACK || c->state == CS_SUBACK)
				conn_close(c);
		}
		break;
	default:
		break;
	}
}

static void publish_counts(struct bw_bench_thread *t)
{
	for (int i = 0; i < BW_BENCH_C_N; i++)
		atomic_store_explicit(&t->pub[i], t->c[i], memory_order_relaxed);
}

static void *thread_main(void *arg)
{
	struct bw_bench_thread *t = arg;
	const struct bw_bench_plan *pl = t->plan;
	struct bw_ring_params rp = { .buf_count = 2048, .buf_size = 16384 };
	int seen = BW_BENCH_PH_INIT;

	/* Paced sends wake on a timerfd; 1 ns slack instead of the default 50 us. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	/*
	 * Linux gives each thread its own nice value: noisy's flood threads
	 * yield to the quiet tenant's, whose wakeups are what is measured.
	 */
	if (pl->o->nice)
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), pl->o->nice);
	int rc = bw_ring_init(&t->ring, &rp);
	if (rc == 0 && pl->interval_ns > 0) {
		t->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (t->timer_fd < 0) {
			rc = -errno;
			bw_ring_exit(&t->ring);
		}
	}
	if (rc < 0) {
		atomic_store(&t->state, rc);
		return NULL;
	}
	atomic_store(&t->state, 1);
	for (;;) {
		int ph = phase(t);
		if (ph != seen) {
			seen = ph;
			if (ph == BW_BENCH_PH_EXIT)
				break;
			enter_phase(t, ph);
			if (ph >= BW_BENCH_PH_STOP)
				t->c[BW_BENCH_C_PUBS_BUSY] = pubs_busy(t);
			publish_counts(t);
			atomic_store_explicit(&t->seen_phase, ph, memory_order_release);
		}
		rc = bw_ring_run(&t->ring, 100);
		if (rc < 0 && rc != -EINTR && !atomic_load(&t->has_err)) {
			snprintf(t->err, sizeof(t->err), "io_uring: %s", strerror(-rc));
			atomic_store(&t->has_err, true);
			t->c[BW_BENCH_C_FAILED]++;
		}
		t->now_ns = bw_bench_now_ns();
		if (ph == BW_BENCH_PH_CONNECT)
			connect_more(t);
		if (t->n_restart && phase(t) == BW_BENCH_PH_RUN) {
			uint32_t n = t->n_restart;
			t->n_restart = 0;
			for (uint32_t i = 0; i < n; i++)
				start_connect(&t->conns[t->restart[i]]);
		}
		if (t->now_ns >= t->next_ka_ns) {
			keepalive(t);
			t->next_ka_ns = t->now_ns + KEEPALIVE_SCAN_S * 1000000000ull;
		}
		if (ph >= BW_BENCH_PH_STOP)
			t->c[BW_BENCH_C_PUBS_BUSY] = pubs_busy(t);
		publish_counts(t);
	}
	/* What is still open is closed without waiting: the ring cancels first. */
	bw_ring_exit(&t->ring);
	for (uint32_t i = 0; i < t->n_conns; i++) {
		struct bw_bench_conn *c = &t->conns[i];
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
			t->c[BW_BENCH_C_OPEN]--;
		}
		if (c->role == ROLE_PUB) {
			pl->pub_sent[c->id] = c->sent;
			pl->pub_refused[c->id] = c->refused;
			pl->pub_acked[c->id] = c->acked;
		}
	}
	if (t->timer_fd >= 0)
		close(t->timer_fd);
	t->timer_fd = -1;
	publish_counts(t);
	return NULL;
}

static void conn_init(struct bw_bench_thread *t, struct bw_bench_conn *c, uint8_t role, uint32_t id,
                      uint32_t ordinal)
{
	const struct bw_bench_load_opts *o = t->plan->o;

	c->t = t;
	c->fd = -1;
	c->role = role;
	c->id = id;
	c->state = CS_FREE;
	c->source = o->n_sources ? ordinal % o->n_sources : 0;
	c->recv_op.done = recv_done;
	c->send_op.done = send_done;
	c->poll_op.done = poll_done;
	c->window = o->inflight;
}

/* Flood: the topic publisher i publishes to, i*S/P of S topics (S = 0: P topics). */
static uint32_t flood_topic(const struct bw_bench_plan *pl, uint32_t i)
{
	uint32_t topics = pl->n_sub ? pl->n_sub : pl->n_pub;

	return (uint32_t)((uint64_t)i * topics / pl->n_pub);
}

/* Flood: the first publisher of topic j (S > 0), ceil(j*P/S); j = S gives P. */
static uint32_t flood_first(const struct bw_bench_plan *pl, uint32_t j)
{
	return (uint32_t)(((uint64_t)j * pl->n_pub + pl->n_sub - 1) / pl->n_sub);
}

/* Whether global index i of a role with this count belongs to thread t. */
static bool mine(const struct bw_bench_thread *t, uint32_t i, bool shared_sub)
{
	if (shared_sub)
		return t->idx == 0;
	return i % t->plan->o->threads == t->idx;
}

int bw_bench_thread_setup(struct bw_bench_thread *t, struct bw_bench_plan *plan, unsigned idx)
{
	const struct bw_bench_load_opts *o = plan->o;
	bool shared = o->scenario == BW_BENCH_SHARED;
	uint8_t other = o->scenario == BW_BENCH_CONNECT ? ROLE_CHURN : ROLE_IDLE;
	uint32_t n = 0, k = 0, subs = 0;

	memset(t, 0, sizeof(*t));
	t->plan = plan;
	t->idx = idx;
	t->timer_fd = -1;
	t->timer_op.done = timer_done;
	t->concurrency = o->concurrency / o->threads + (idx < o->concurrency % o->threads);
	if (t->concurrency == 0)
		t->concurrency = 1;
	for (uint32_t i = 0; i < plan->n_sub; i++)
		subs += mine(t, i, shared);
	n = subs;
	for (uint32_t i = 0; i < plan->n_pub; i++)
		n += mine(t, i, false);
	for (uint32_t i = 0; i < plan->n_other; i++)
		n += mine(t, i, false);
	t->lat = malloc(sizeof(*t->lat));
	t->hs = malloc(sizeof(*t->hs));
	t->conns = calloc(n ? n : 1, sizeof(*t->conns));
	t->restart = calloc(n ? n : 1, sizeof(*t->restart));
	if (!t->lat || !t->hs || !t->conns || !t->restart)
		return -ENOMEM;
	bw_bench_hist_init(t->lat);
	bw_bench_hist_init(t->hs);
	t->n_conns = n;

	/* Trackers: one a subscriber, or one for the whole shared group. */
	uint32_t n_trk = shared ? (subs > 0) : subs;
	t->trk = calloc(n_trk ? n_trk : 1, sizeof(*t->trk));
	if (!t->trk)
		return -ENOMEM;
	if (shared && idx == 0 && plan->n_sub) {
		if (bw_bench_seq_init(&t->trk[0], 0, plan->n_pub) < 0)
			return -ENOMEM;
		t->n_trk = 1;
	}
	for (uint32_t i = 0; i < plan->n_sub; i++) {
		if (!mine(t, i, shared))
			continue;
		struct bw_bench_conn *c = &t->conns[k++];
		conn_init(t, c, ROLE_SUB, i, i);
		if (shared) {
			c->trk = &t->trk[0];
			continue;
		}
		struct bw_bench_seq *s = &t->trk[t->n_trk++];
		/* The publishers it hears from: all, its pair, or its flood topic's. */
		uint32_t first = 0, count = plan->n_pub;
		if (o->scenario == BW_BENCH_PAIRS) {
			first = i;
			count = 1;
		} else if (o->scenario == BW_BENCH_FLOOD) {
			first = flood_first(plan, i);
			count = flood_first(plan, i + 1) - first;
		}
		if (bw_bench_seq_init(s, first, count) < 0)
			return -ENOMEM;
		c->trk = s;
	}
	for (uint32_t i = 0; i < plan->n_pub; i++) {
		if (!mine(t, i, false))
			continue;
		struct bw_bench_conn *c = &t->conns[k++];
		conn_init(t, c, ROLE_PUB, i, plan->n_sub + i);
		c->tmpl = &plan->tmpls[o->scenario == BW_BENCH_PAIRS   ? i
		                       : o->scenario == BW_BENCH_FLOOD ? flood_topic(plan, i)
		                                                       : 0];
		c->offset_ns = plan->interval_ns * i / plan->n_pub;
		if (o->qos && !(c->slots = calloc(o->inflight, 1)))
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < plan->n_other; i++) {
		if (mine(t, i, false))
			conn_init(t, &t->conns[k++], other, i, plan->n_sub + plan->n_pub + i);
	}
	return 0;
}

int bw_bench_thread_start(struct bw_bench_thread *t)
{
	int rc = pthread_create(&t->tid, NULL, thread_main, t);

	return -rc;
}

void bw_bench_thread_wake(struct bw_bench_thread *t)
{
	if (atomic_load(&t->state) == 1)
		(void)bw_ring_wake(&t->ring);
}

void bw_bench_thread_free(struct bw_bench_thread *t)
{
	for (uint32_t i = 0; t->conns && i < t->n_conns; i++) {
		bw_bench_in_free(&t->conns[i].in);
		bw_bench_out_free(&t->conns[i].out);
		bw_bench_tls_free(&t->conns[i].tls);
		free(t->conns[i].slots);
	}
	for (uint32_t i = 0; t->trk && i < t->n_trk; i++)
		bw_bench_seq_free(&t->trk[i]);
	free(t->trk);
	free(t->conns);
	free(t->restart);
	t->restart = NULL;
	free(t->lat);
	free(t->hs);
	t->trk = NULL;
	t->conns = NULL;
	t->lat = t->hs = NULL;
}
