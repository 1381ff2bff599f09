/*
 * The MQTT load scenarios of bulwark-bench (fanin, fanout, pairs, shared,
 * connect, idle, latency, noisy): their options, parsed from the command
 * line, and the run that drives a broker with them and reports what it
 * measured.
 */
#ifndef BW_BENCH_LOAD_H
#define BW_BENCH_LOAD_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum bw_bench_scenario {
	BW_BENCH_FANIN,   /* N publishers -> 1 subscriber, one topic */
	BW_BENCH_FANOUT,  /* 1 publisher -> N subscribers, one topic */
	BW_BENCH_PAIRS,   /* N publishers, each with its own topic and subscriber */
	BW_BENCH_SHARED,  /* N publishers -> a $share group of M subscribers */
	BW_BENCH_CONNECT, /* connection storm: CONNECT, CONNACK, DISCONNECT, again */
	BW_BENCH_IDLE,    /* hold N connections; broker memory a connection */
	BW_BENCH_LATENCY, /* open loop at a fixed rate; latency percentiles */
	BW_BENCH_NOISY,   /* latency of a quiet tenant without, then with, a flooding one */
	/*
	 * Not a scenario of its own (no name parses to it): noisy's flooding
	 * tenant, P publishers to S <= P topics, topic j subscribed by
	 * subscriber j (publisher i publishes to topic i*S/P; S = 0: P topics,
	 * nobody subscribed).
	 */
	BW_BENCH_FLOOD,
};

#define BW_BENCH_CLIENTS_MAX  1000000u
#define BW_BENCH_THREADS_MAX  64u
#define BW_BENCH_SOURCES_MAX  65536u
#define BW_BENCH_PAYLOAD_MIN  16u /* publisher, sequence number, timestamp */
#define BW_BENCH_LOAD_PAY_MAX (16u << 20)
#define BW_BENCH_RATE_MAX     1e8
#define BW_BENCH_TIME_MAX     3600.0

struct bw_bench_load_opts {
	enum bw_bench_scenario scenario;
	const char *host;
	uint16_t port;
	struct sockaddr_in dst; /* host:port resolved */
	uint32_t publishers;
	uint32_t subscribers;
	uint32_t connections; /* connect: connections cycling at once; idle: held */
	uint8_t qos;
	uint8_t version; /* BW_MQTT_311 or BW_MQTT_5 */
	uint32_t size;   /* payload bytes */
	double seconds;  /* measured window */
	double warmup;
	double drain;           /* longest wait for deliveries after publishers stop */
	double connect_timeout; /* longest wait for every connection to be ready */
	const char *topic;      /* prefix */
	double rate;            /* total messages/s of all publishers; 0: flat out */
	pid_t pid;              /* broker, for CPU and memory; 0: none */
	const char *json_path;
	unsigned threads;
	const char *username;
	const char *password;
	struct in_addr *sources; /* bind before connect, round robin; NULL: none */
	uint32_t n_sources;
	uint32_t inflight;       /* QoS 1/2 messages a publisher keeps unacknowledged */
	uint32_t concurrency;    /* connection handshakes in progress at once */
	uint16_t keepalive;      /* seconds, in CONNECT */
	uint32_t tick_us;        /* shortest pause between paced sends */
	const char *client_id;   /* prefix of client identifiers */
	uint32_t session_expiry; /* > 0: subscribers keep persistent sessions (s) */
	bool progress;           /* live rates on stderr (when it is a terminal) */
	/* MQTT over TLS (bench/tls.h); the rest only with tls. */
	bool tls;
	bool tls_resume;     /* connect: offer each client's last session again */
	bool tls_insecure;   /* no verification of the broker's certificate */
	uint8_t tls_version; /* 0: 1.2 or 1.3; 12 or 13: only that one */
	const char *cafile;  /* trust anchors; NULL: the system's */
	const char *cert;    /* client certificate and its key */
	const char *key;
	const char *servername; /* SNI and the name verified; NULL: host */
	int nice;               /* the client threads' nice value; 0: unchanged */
	/* noisy: the flooding tenant's endpoint and load (the rest is the quiet one's). */
	const char *flood_host;
	uint16_t flood_port; /* 0: not given (an error for noisy) */
	struct sockaddr_in flood_dst;
	uint32_t flood_publishers;
	uint32_t flood_subscribers; /* 0..flood_publishers */
	uint32_t flood_size;
	double flood_rate; /* 0: flat out */
	unsigned flood_threads;
	int flood_nice;
	const char *flood_username;
	const char *flood_password;
};

/* The scenario called name, or -1. */
int bw_bench_scenario_parse(const char *name);
const char *bw_bench_scenario_name(enum bw_bench_scenario s);

/*
 * Parses the options of a load scenario: argv[0] is the scenario name.
 * Returns 0 with *o filled (free with bw_bench_load_opts_free()), 1 when
 * --help was printed, or 2 after saying on stderr what is wrong.
 */
int bw_bench_load_parse(int argc, char **argv, struct bw_bench_load_opts *o);

void bw_bench_load_opts_free(struct bw_bench_load_opts *o);

/* Prints the load scenarios' part of the usage text. */
void bw_bench_load_usage(FILE *out);

/*
 * Runs the scenario, prints the result table on stdout and writes the JSON
 * file. Returns the exit code: 0, or 1 when the run failed (a connection
 * failed, or a QoS 1/2 message was lost or duplicated beyond the spec), or
 * 2 when a TLS file or name given cannot be used.
 */
int bw_bench_load_run(const struct bw_bench_load_opts *o);

#endif
