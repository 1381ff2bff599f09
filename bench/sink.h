/*
 * `bulwark-bench sink`: a minimal MQTT server that relays nothing. It
 * accepts connections, answers CONNECT with CONNACK, SUBSCRIBE with SUBACK
 * (granting what was asked), acknowledges QoS 1 and 2 publishes and
 * discards them. Run against it, a load scenario measures the bench's own
 * ceiling: `fanin` against the sink is the rate the publishers can send.
 */
#ifndef BW_BENCH_SINK_H
#define BW_BENCH_SINK_H

#include <stdint.h>

struct bw_bench_sink_opts {
	const char *host; /* IPv4 address to listen on */
	uint16_t port;    /* 0: an ephemeral port, printed */
	double seconds;   /* stop after this long; 0: at SIGINT or SIGTERM */
};

/*
 * Serves until a signal or o->seconds, then prints what it received.
 * Prints "sink: listening on ADDR:PORT" on stdout (flushed) once ready.
 * Returns the exit code: 0, or 1 when it could not listen.
 */
int bw_bench_sink_run(const struct bw_bench_sink_opts *o);

#endif
