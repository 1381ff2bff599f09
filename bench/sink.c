/*
 * The sink (see sink.h): one thread, one ring, a multishot accept and a
 * multishot recv a connection; replies go through stream.h's output. To
 * stay faster than the clients it measures, it frames PUBLISHes without
 * decoding them (only a QoS 1/2 packet identifier is read), and decodes
 * just the rare packets it must answer with content: CONNECT and
 * SUBSCRIBE. A connection is freed once its ops have all completed.
 */
#include "bench/sink.h"

#include "bench/stream.h"
#include "node/io/ring.h"
#include "proto/mqtt/codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SINK_MAX_PACKET (32u << 20)

struct sink;

struct sconn {
	struct sink *s;
	struct sconn *prev, *next; /* in s->all */
	int fd;
	uint8_t version;
	bool closing;
	bool recv_armed;
	struct bw_op recv_op;
	struct bw_op send_op;
	struct bw_bench_in in;
	struct bw_bench_out out;
};

struct sink {
	struct bw_ring ring;
	struct bw_op accept_op;
	int lfd;
	bool accept_armed;
	struct sconn *all;
	uint64_t conns, open, publishes, bytes, errors;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void sc_free(struct sconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->s->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	c->s->open--;
	bw_bench_in_free(&c->in);
	bw_bench_out_free(&c->out);
	free(c);
}

static void sc_maybe_free(struct sconn *c)
{
	if (c->closing && !c->recv_armed && !c->out.busy)
		sc_free(c);
}

static void sc_close(struct sconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	shutdown(c->fd, SHUT_RDWR);
	sc_maybe_free(c);
}

static void sc_flush(struct sconn *c)
{
	if (!c->closing && bw_bench_out_flush(&c->out, &c->s->ring, &c->send_op, c->fd) < 0)
		sc_close(c);
}

static bool sc_ack(struct sconn *c, uint8_t type, uint16_t id)
{
	uint8_t b[4] = { (uint8_t)(type << 4 | (type == BW_PUBREL ? 2 : 0)), 2, (uint8_t)(id >> 8),
		         (uint8_t)id };
	return bw_bench_out_put(&c->out, b, sizeof(b)) == 0;
}

/* Encodes and appends pkt in the connection's version. */
static bool sc_put(struct sconn *c, const struct bw_packet *pkt)
{
	size_t n = bw_codec_size(pkt, c->version);
	uint8_t *d = n ? bw_bench_out_reserve(&c->out, (uint32_t)n) : NULL;

	if (!d || bw_codec_encode(pkt, c->version, d, n) != (int)n)
		return false;
	bw_bench_out_commit(&c->out, (uint32_t)n, 0);
	return true;
}

static int sc_decoded(struct sconn *c, const uint8_t *p, const struct bw_frame *f)
{
	struct bw_packet pkt, out;
	uint8_t codes[256];

	if (bw_codec_decode(p, f->size, c->version, &pkt, NULL) < 0)
		return -1;
	memset(&out, 0, sizeof(out));
	switch (pkt.type) {
	case BW_CONNECT:
		c->version = pkt.connect.version;
		out.type = BW_CONNACK;
		return sc_put(c, &out) ? 0 : -1;
	case BW_SUBSCRIBE:
	case BW_UNSUBSCRIBE: {
		uint32_t off = 0, n = 0;
		struct bw_sub_entry e;
		struct bw_str filter;
		if (pkt.type == BW_SUBSCRIBE)
			while (n < sizeof(codes) &&
			       bw_codec_next_sub(&pkt.subscribe, c->version, &off, &e))
				codes[n++] = e.qos;
		else
			while (n < sizeof(codes) &&
			       bw_codec_next_unsub(&pkt.unsubscribe, &off, &filter))
				codes[n++] = 0;
		out.type = pkt.type == BW_SUBSCRIBE ? BW_SUBACK : BW_UNSUBACK;
		out.suback.packet_id = pkt.type == BW_SUBSCRIBE ? pkt.subscribe.packet_id
		                                                : pkt.unsubscribe.packet_id;
		out.suback.codes = (struct bw_bin){ codes, n };
		return sc_put(c, &out) ? 0 : -1;
	}
	default:
		return 0;
	}
}

static int sc_packet(void *ctx, const uint8_t *p, const struct bw_frame *f)
{
	struct sconn *c = ctx;
	uint8_t qos = (f->flags >> 1) & 3;

	switch (f->type) {
	case BW_PUBLISH: {
		c->s->publishes++;
		if (qos == 0)
			return 0;
		uint32_t at = f->header_len;
		if (f->remaining_len < 4 || qos == 3)
			return -1;
		uint32_t tlen = (uint32_t)p[at] << 8 | p[at + 1];
		if (2 + tlen + 2 > f->remaining_len)
			return -1;
		uint16_t id = (uint16_t)(p[at + 2 + tlen] << 8 | p[at + 3 + tlen]);
		return sc_ack(c, qos == 1 ? BW_PUBACK : BW_PUBREC, id) ? 0 : -1;
	}
	case BW_PUBREL:
		if (f->remaining_len < 2)
			return -1;
		return sc_ack(c, BW_PUBCOMP,
		              (uint16_t)(p[f->header_len] << 8 | p[f->header_len + 1]))
		               ? 0
		               : -1;
	case BW_PINGREQ: {
		static const uint8_t pong[2] = { BW_PINGRESP << 4, 0 };
		return bw_bench_out_put(&c->out, pong, sizeof(pong));
	}
	case BW_DISCONNECT:
		return -ECONNRESET; /* not an error: the client is leaving */
	case BW_PUBACK:
	case BW_PUBREC:
	case BW_PUBCOMP:
		return 0;
	default:
		return sc_decoded(c, p, f);
	}
}

static void sc_recv_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct sconn *c = BW_CONTAINER_OF(op, struct sconn, recv_op);
	struct sink *s = c->s;
	int bid = bw_ring_cqe_bid(cqe_flags);

	if (!(cqe_flags & IORING_CQE_F_MORE))
		c->recv_armed = false;
	if (res > 0 && bid >= 0 && !c->closing) {
		s->bytes += (uint64_t)res;
		int rc = bw_bench_in_feed(&c->in, bw_ring_buf(&s->ring, (uint16_t)bid),
		                          (uint32_t)res, SINK_MAX_PACKET, sc_packet, c);
		if (rc < 0) {
			if (rc != -ECONNRESET)
				s->errors++;
			sc_close(c);
		}
	}
	if (bid >= 0)
		bw_ring_buf_put(&s->ring, (uint16_t)bid);
	if (c->closing) {
		sc_maybe_free(c);
		return;
	}
	if (res == 0 || (res < 0 && res != -ENOBUFS)) {
		sc_close(c);
		return;
	}
	if (!c->recv_armed) {
		if (bw_ring_recv(&s->ring, &c->recv_op, c->fd) < 0) {
			sc_close(c);
			return;
		}
		c->recv_armed = true;
	}
	sc_flush(c);
}

static void sc_send_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct sconn *c = BW_CONTAINER_OF(op, struct sconn, send_op);
	uint32_t msgs;

	if (c->closing) {
		c->out.busy = false;
		sc_maybe_free(c);
		return;
	}
	int rc = bw_bench_out_sent(&c->out, res, &c->s->ring, &c->send_op, c->fd, &msgs);
	if (rc < 0)
		sc_close(c);
	else if (rc > 0)
		sc_flush(c);
}

static void accept_done(struct bw_op *op, int32_t res, uint32_t cqe_flags)
{
	struct sink *s = BW_CONTAINER_OF(op, struct sink, accept_op);
	int one = 1;

	if (!(cqe_flags & IORING_CQE_F_MORE))
		s->accept_armed = false;
	if (res < 0)
		return; /* EMFILE and the like: re-armed by the loop */
	struct sconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(res);
		return;
	}
	c->s = s;
	c->fd = res;
	c->version = BW_MQTT_311;
	c->recv_op.done = sc_recv_done;
	c->send_op.done = sc_send_done;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->conns++;
	s->open++;
	c->next = s->all;
	if (s->all)
		s->all->prev = c;
	s->all = c;
	if (bw_ring_recv(&s->ring, &c->recv_op, c->fd) < 0) {
		sc_free(c);
		return;
	}
	c->recv_armed = true;
}

static int listen_on(const struct bw_bench_sink_opts *o, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	socklen_t len = sizeof(a);
	int one = 1;

	if (inet_pton(AF_INET, o->host, &a.sin_addr) != 1) {
		fprintf(stderr, "bulwark-bench: sink: --host must be an IPv4 address: %s\n",
		        o->host);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		fprintf(stderr, "bulwark-bench: sink: cannot listen on %s:%u: %s\n", o->host,
		        o->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int bw_bench_sink_run(const struct bw_bench_sink_opts *o)
{
	struct sink *s = calloc(1, sizeof(*s));
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec t0, t1;
	uint16_t port;
	int rc;

	if (!s)
		return 1;
	s->lfd = listen_on(o, &port);
	if (s->lfd < 0) {
		free(s);
		return 1;
	}
	struct bw_ring_params rp = { .buf_count = 4096, .buf_size = 16384 };
	if ((rc = bw_ring_init(&s->ring, &rp)) < 0) {
		fprintf(stderr, "bulwark-bench: sink: io_uring: %s\n", strerror(-rc));
		close(s->lfd);
		free(s);
		return 1;
	}
	s->accept_op.done = accept_done;
	/* No SA_RESTART: a signal interrupts the ring's wait. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("sink: listening on %s:%u\n", o->host, port);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		if (!s->accept_armed && bw_ring_accept(&s->ring, &s->accept_op, s->lfd) == 0)
			s->accept_armed = true;
		rc = bw_ring_run(&s->ring, 100);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "bulwark-bench: sink: io_uring: %s\n", strerror(-rc));
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double el =
		        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (o->seconds > 0 && el >= o->seconds)
			break;
	}
	/* The ring cancels what is in flight first; then the connections go. */
	bw_ring_exit(&s->ring);
	while (s->all)
		sc_free(s->all);
	close(s->lfd);
	printf("sink: %" PRIu64 " connections, %" PRIu64 " publishes, %" PRIu64
	       " bytes received, %" PRIu64 " protocol errors\n",
	       s->conns, s->publishes, s->bytes, s->errors);
	fflush(stdout);
	free(s);
	return 0;
}
