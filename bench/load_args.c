/*
 * Command line of the load scenarios (see load.h): every option is
 * bounded, and a value out of bounds, an option the scenario does not use
 * or a host that does not resolve is a usage error (exit code 2).
 */
#include "bench/args.h"
#include "bench/load.h"
#include "proto/mqtt/mqtt_types.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const names[] = {
	[BW_BENCH_FANIN] = "fanin",     [BW_BENCH_FANOUT] = "fanout",   [BW_BENCH_PAIRS] = "pairs",
	[BW_BENCH_SHARED] = "shared",   [BW_BENCH_CONNECT] = "connect", [BW_BENCH_IDLE] = "idle",
	[BW_BENCH_LATENCY] = "latency", [BW_BENCH_NOISY] = "noisy",     [BW_BENCH_FLOOD] = "flood",
};

int bw_bench_scenario_parse(const char *name)
{
	/* The flood is noisy's, not a scenario of its own. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (i != BW_BENCH_FLOOD && !strcmp(name, names[i]))
			return (int)i;
	return -1;
}

const char *bw_bench_scenario_name(enum bw_bench_scenario s)
{
	return names[s];
}

void bw_bench_load_usage(FILE *out)
{
	fprintf(out,
	        "Load scenarios against a running broker (MQTT over TCP, or TLS with --tls):\n"
	        "  fanin     N publishers -> 1 subscriber on one topic (default 10 -> 1)\n"
	        "  fanout    1 publisher -> N subscribers on one topic (default 1 -> 100)\n"
	        "  pairs     N publishers, each with its own topic and subscriber (default 10)\n"
	        "  shared    N publishers -> a $share/bench/... group of M subscribers\n"
	        "            (default 10 -> 4)\n"
	        "  connect   connection storm: --connections clients each CONNECT, wait for\n"
	        "            CONNACK, DISCONNECT and start again; connects/s and handshake\n"
	        "            latency (default 100 at once)\n"
	        "  idle      hold --connections connections (default 1000), each subscribed to\n"
	        "            its own topic; with --pid, the broker's memory a connection\n"
	        "  latency   open loop at --rate messages/s (default 10000) from 1 publisher to\n"
	        "            1 subscriber; send times follow a fixed schedule and the payload\n"
	        "            carries the scheduled time, so a stalled broker shows as latency\n"
	        "            (no coordinated omission): p50/p90/p99/p99.9/max\n"
	        "  noisy     a flooding tenant and a quiet one on the same broker: the quiet\n"
	        "            tenant's latency (as latency, on --host/--port) alone, then while\n"
	        "            --flood-publishers publish QoS 0 flat out on --flood-port; the\n"
	        "            percentiles of both phases and their ratio (with/without)\n"
	        "\n"
	        "Common options:\n"
	        "  --host ADDR         broker address (default 127.0.0.1)\n"
	        "  --port N            broker port (default 1883; with --tls 8883)\n"
	        "  --mqtt 3|5          protocol version 3.1.1 or 5.0 (default 3)\n"
	        "  --publishers N      publishing connections\n"
	        "  --subscribers N     subscribing connections (fanin may use 0: no accounting)\n"
	        "  --connections N     connect and idle: connections\n"
	        "  --qos 0|1|2         QoS of publishes and subscriptions (default 0)\n"
	        "  --size BYTES        payload size, %u..%u (default 64)\n"
	        "  --seconds S         measured window (default 5)\n"
	        "  --warmup S          load before the window, not measured (default 1)\n"
	        "  --topic PREFIX      topic prefix (default bench)\n"
	        "  --rate R            total publishes/s, paced on a schedule (default: as\n"
	        "                      fast as flow control allows; latency: 10000)\n"
	        "  --inflight N        QoS 1/2 messages a publisher keeps unacknowledged\n"
	        "                      (default 64; 5.0: at most the broker's Receive Maximum)\n"
	        "  --threads N         client threads, each with its own io_uring (default 1)\n"
	        "  --username U, --password P   credentials in CONNECT\n"
	        "  --source A-B[,C]    bind connections to these local IPv4 addresses in turn\n"
	        "                      (e.g. 127.0.0.1-127.0.0.9: past 64k connections)\n"
	        "  --concurrency N     connection handshakes in progress at once (default 256)\n"
	        "  --keepalive S       keep alive in CONNECT (default 60)\n"
	        "  --drain S           longest wait for deliveries after publishers stop\n"
	        "                      (default 10)\n"
	        "  --connect-timeout S longest wait for every connection (default 30)\n"
	        "  --tick-us N         shortest pause between paced sends (default 10)\n"
	        "  --client-id PREFIX  client identifier prefix (default bb<pid>)\n"
	        "  --session-expiry S  subscribers keep persistent sessions: 5.0 clean start 0\n"
	        "                      with Session Expiry Interval S, 3.1.1 clean session 0;\n"
	        "                      their ids end in .T, T the run's start (ms, hex), so no\n"
	        "                      run resumes an earlier one's session; publishers stay\n"
	        "                      clean (0..4294967295; default 0: clean subscribers)\n"
	        "  --pid PID           broker process: CPU time a message, peak RSS (VmHWM)\n"
	        "  --json FILE         also write every figure to FILE as JSON\n"
	        "  --no-progress       no live rates on stderr\n"
	        "\n"
	        "noisy: the flooding tenant (the other options are the quiet tenant's):\n"
	        "  --flood-port N      its listener's port (required)\n"
	        "  --flood-host ADDR   its listener's address (default --host)\n"
	        "  --flood-publishers N   publishers, QoS 0 (default 8)\n"
	        "  --flood-subscribers N  subscribers, 0..publishers (default: as many as\n"
	        "                      publishers); publisher i of P publishes to topic i*S/P\n"
	        "                      of S, each subscribed by one subscriber\n"
	        "  --flood-size BYTES  payload size (default --size)\n"
	        "  --flood-rate R      total publishes/s, paced (default: flat out)\n"
	        "  --flood-threads N   its client threads (default 1), apart from --threads\n"
	        "  --flood-nice N      nice value of its threads, 0..19 (default 10: the\n"
	        "                      quiet tenant's thread, which is measured, goes first)\n"
	        "  --flood-username U, --flood-password P   its credentials in CONNECT\n"
	        "\n"
	        "TLS (OpenSSL over memory; io_uring keeps the socket):\n"
	        "  --tls               MQTT over TLS 1.2 or 1.3 (mqtts)\n"
	        "  --cafile FILE       PEM CAs the broker's certificate must chain to\n"
	        "                      (default: the system's trust store)\n"
	        "  --cert FILE, --key FILE  client certificate (PEM chain) and its key\n"
	        "  --servername NAME   SNI and the name the certificate must hold\n"
	        "                      (default: --host, checked as an IP address or a name)\n"
	        "  --tls-version 1.2|1.3  only that version (default: either, 1.3 preferred)\n"
	        "  --tls-resume        connect: each client offers the session (ticket) its\n"
	        "                      last connection got: resumed handshakes\n"
	        "  --insecure          do not verify the broker's certificate\n",
	        BW_BENCH_PAYLOAD_MIN, BW_BENCH_LOAD_PAY_MAX);
}

void bw_bench_load_opts_free(struct bw_bench_load_opts *o)
{
	free(o->sources);
	o->sources = NULL;
	o->n_sources = 0;
}

static int add_sources(struct bw_bench_load_opts *o, uint32_t first, uint32_t last)
{
	uint64_t n = (uint64_t)last - first + 1;

	if (last < first || o->n_sources + n > BW_BENCH_SOURCES_MAX)
		return -1;
	struct in_addr *s = realloc(o->sources, (o->n_sources + n) * sizeof(*s));
	if (!s)
		return -1;
	o->sources = s;
	for (uint64_t i = 0; i < n; i++)
		o->sources[o->n_sources++].s_addr = htonl((uint32_t)(first + i));
	return 0;
}

/* "A", "A-B", comma-separated; addresses in host order for the ranges. */
static bool parse_sources(const char *arg, struct bw_bench_load_opts *o)
{
	char *copy = strdup(arg), *save = NULL;
	bool ok = copy != NULL && *arg != '\0';

	for (char *item = ok ? strtok_r(copy, ",", &save) : NULL; ok && item;
	     item = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(item, '-');
		struct in_addr a, b;
		if (dash)
			*dash = '\0';
		if (inet_pton(AF_INET, item, &a) != 1 ||
		    (dash && inet_pton(AF_INET, dash + 1, &b) != 1)) {
			ok = false;
			break;
		}
		if (!dash)
			b = a;
		if (add_sources(o, ntohl(a.s_addr), ntohl(b.s_addr)) < 0)
			ok = false;
	}
	free(copy);
	return ok;
}

static bool resolve(const char *host, uint16_t port, struct sockaddr_in *dst)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;

	memset(dst, 0, sizeof(*dst));
	dst->sin_family = AF_INET;
	dst->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &dst->sin_addr) == 1)
		return true;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	dst->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return true;
}

/* Which options were given, to apply scenario defaults and refuse misfits. */
enum {
	GIVEN_PUBS = 1 << 0,
	GIVEN_SUBS = 1 << 1,
	GIVEN_CONNS = 1 << 2,
	GIVEN_RATE = 1 << 3,
	GIVEN_QOS = 1 << 4,
	GIVEN_SIZE = 1 << 5,
	GIVEN_INFLIGHT = 1 << 6,
	GIVEN_PORT = 1 << 7,
	GIVEN_TLS_OPT = 1 << 8, /* a TLS option other than --tls */
	GIVEN_FLOOD = 1 << 9,   /* a --flood-* option */
	GIVEN_FLOOD_SUBS = 1 << 10,
	GIVEN_FLOOD_SIZE = 1 << 11,
	GIVEN_SESSION = 1 << 12,
};

static void defaults(struct bw_bench_load_opts *o, enum bw_bench_scenario sc)
{
	memset(o, 0, sizeof(*o));
	o->scenario = sc;
	o->host = "127.0.0.1";
	o->port = 1883;
	o->version = BW_MQTT_311;
	o->size = 64;
	o->seconds = 5;
	o->warmup = 1;
	o->drain = 10;
	o->connect_timeout = 30;
	o->topic = "bench";
	o->threads = 1;
	o->inflight = 64;
	o->concurrency = 256;
	o->keepalive = 60;
	o->tick_us = 10;
	o->progress = true;
	switch (sc) {
	case BW_BENCH_FANIN:
		o->publishers = 10;
		o->subscribers = 1;
		break;
	case BW_BENCH_FANOUT:
		o->publishers = 1;
		o->subscribers = 100;
		break;
	case BW_BENCH_PAIRS:
		o->publishers = o->subscribers = 10;
		break;
	case BW_BENCH_SHARED:
		o->publishers = 10;
		o->subscribers = 4;
		break;
	case BW_BENCH_CONNECT:
		o->connections = 100;
		break;
	case BW_BENCH_IDLE:
		o->connections = 1000;
		break;
	case BW_BENCH_LATENCY:
	case BW_BENCH_NOISY:
		o->publishers = o->subscribers = 1;
		o->rate = 10000;
		break;
	case BW_BENCH_FLOOD:
		break;
	}
	o->flood_publishers = 8;
	o->flood_threads = 1;
	o->flood_nice = 10;
}

/* noisy: the flooding tenant's defaults and bounds; returns 0 or a usage error. */
static int settle_noisy(struct bw_bench_load_opts *o, unsigned given)
{
	if (o->flood_port == 0)
		return bw_bench_usage_error("noisy needs --flood-port, the flooding tenant's "
		                            "listener",
		                            NULL);
	if (!o->flood_host)
		o->flood_host = o->host;
	if (!(given & GIVEN_FLOOD_SIZE))
		o->flood_size = o->size;
	if (!(given & GIVEN_FLOOD_SUBS))
		o->flood_subscribers = o->flood_publishers;
	if (o->flood_subscribers > o->flood_publishers)
		return bw_bench_usage_error("--flood-subscribers is at most --flood-publishers",
		                            NULL);
	if (o->flood_password && !o->flood_username)
		return bw_bench_usage_error("--flood-password needs --flood-username", NULL);
	if ((uint64_t)o->publishers + o->subscribers + o->flood_publishers + o->flood_subscribers >
	    BW_BENCH_CLIENTS_MAX)
		return bw_bench_usage_error("too many connections (at most 1000000 in all)", NULL);
	if (o->flood_rate > 0 && o->flood_rate / o->flood_publishers < 1e-3)
		return bw_bench_usage_error("--flood-rate is below one message in 1000 s a "
		                            "publisher",
		                            NULL);
	return 0;
}

/* Applies what depends on the scenario; returns 0 or a usage error. */
static int settle(struct bw_bench_load_opts *o, unsigned given)
{
	bool conns_only = o->scenario == BW_BENCH_CONNECT || o->scenario == BW_BENCH_IDLE;

	if (conns_only && (given & (GIVEN_PUBS | GIVEN_SUBS | GIVEN_RATE | GIVEN_QOS | GIVEN_SIZE |
	                            GIVEN_INFLIGHT)))
		return bw_bench_usage_error("connect and idle take --connections, not publishers, "
		                            "subscribers, --rate, --qos, --size or --inflight",
		                            NULL);
	if (conns_only && (given & GIVEN_SESSION))
		return bw_bench_usage_error("--session-expiry is for the publishing scenarios, not "
		                            "connect or idle",
		                            NULL);
	if (!conns_only && (given & GIVEN_CONNS))
		return bw_bench_usage_error("--connections is for the connect and idle scenarios",
		                            NULL);
	if (o->scenario == BW_BENCH_PAIRS) {
		if ((given & GIVEN_PUBS) && !(given & GIVEN_SUBS))
			o->subscribers = o->publishers;
		else if ((given & GIVEN_SUBS) && !(given & GIVEN_PUBS))
			o->publishers = o->subscribers;
		else if (o->publishers != o->subscribers)
			return bw_bench_usage_error("pairs needs as many subscribers as publishers",
			                            NULL);
	}
	if (!conns_only && o->publishers == 0)
		return bw_bench_usage_error("--publishers must be at least 1", NULL);
	if (!conns_only && o->subscribers == 0 && o->scenario != BW_BENCH_FANIN)
		return bw_bench_usage_error("--subscribers 0 is only for fanin", NULL);
	if (conns_only && o->connections == 0)
		return bw_bench_usage_error("--connections must be at least 1", NULL);
	if ((uint64_t)o->publishers + o->subscribers > BW_BENCH_CLIENTS_MAX)
		return bw_bench_usage_error("too many connections (at most 1000000 in all)", NULL);
	if ((o->scenario == BW_BENCH_LATENCY || o->scenario == BW_BENCH_NOISY) && o->rate == 0)
		return bw_bench_usage_error("latency and noisy need a --rate", NULL);
	if (o->scenario != BW_BENCH_NOISY && (given & GIVEN_FLOOD))
		return bw_bench_usage_error("the --flood-* options are for the noisy scenario",
		                            NULL);
	if (o->scenario == BW_BENCH_NOISY) {
		int rc = settle_noisy(o, given);
		if (rc)
			return rc;
	}
	if (o->rate > 0 && o->rate / (o->publishers ? o->publishers : 1) < 1e-3)
		return bw_bench_usage_error("--rate is below one message in 1000 s a publisher",
		                            NULL);
	if ((given & GIVEN_TLS_OPT) && !o->tls)
		return bw_bench_usage_error("--cafile, --cert, --key, --servername, --tls-version, "
		                            "--tls-resume and --insecure need --tls",
		                            NULL);
	if (!o->cert != !o->key)
		return bw_bench_usage_error("--cert and --key go together", NULL);
	if (o->tls_resume && o->scenario != BW_BENCH_CONNECT)
		return bw_bench_usage_error("--tls-resume is for the connect scenario", NULL);
	if (o->tls && o->tls_insecure && (o->cafile || o->servername))
		return bw_bench_usage_error("--insecure verifies nothing: no --cafile or "
		                            "--servername with it",
		                            NULL);
	if (o->tls && !(given & GIVEN_PORT))
		o->port = 8883;
	if (!o->client_id) {
		static char id[32];
		snprintf(id, sizeof(id), "bb%d", (int)getpid());
		o->client_id = id;
	}
	if (!resolve(o->host, o->port, &o->dst))
		return bw_bench_usage_error("--host does not resolve to an IPv4 address", o->host);
	if (o->scenario == BW_BENCH_NOISY && !resolve(o->flood_host, o->flood_port, &o->flood_dst))
		return bw_bench_usage_error("--flood-host does not resolve to an IPv4 address",
		                            o->flood_host);
	return 0;
}

/* A TLS option's file or name: not empty. */
static bool tls_file(const char **dst, const char *v, unsigned *given)
{
	*dst = v;
	*given |= GIVEN_TLS_OPT;
	return *v != '\0';
}

int bw_bench_load_parse(int argc, char **argv, struct bw_bench_load_opts *o)
{
	int sc = bw_bench_scenario_parse(argv[0]);
	unsigned given = 0;
	uint32_t u;

	if (sc < 0)
		return bw_bench_usage_error("unknown scenario", argv[0]);
	defaults(o, (enum bw_bench_scenario)sc);
	for (int i = 1; i < argc; i++) {
		const char *v;
		bool missing = false;
		const char *a = argv[i];
#define OPT(name) (v = bw_bench_opt_value(argc, argv, &i, name, &missing))
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			bw_bench_load_opts_free(o);
			return 1;
		} else if (!strcmp(a, "--no-progress")) {
			o->progress = false;
		} else if (OPT("--host")) {
			if (*v == '\0')
				goto bad;
			o->host = v;
		} else if (OPT("--port")) {
			if (!bw_bench_parse_u32(v, 1, 65535, &u))
				goto bad;
			o->port = (uint16_t)u;
			given |= GIVEN_PORT;
		} else if (!strcmp(a, "--tls")) {
			o->tls = true;
		} else if (!strcmp(a, "--tls-resume")) {
			o->tls_resume = true;
			given |= GIVEN_TLS_OPT;
		} else if (!strcmp(a, "--insecure")) {
			o->tls_insecure = true;
			given |= GIVEN_TLS_OPT;
		} else if (OPT("--cafile")) {
			if (!tls_file(&o->cafile, v, &given))
				goto bad;
		} else if (OPT("--cert")) {
			if (!tls_file(&o->cert, v, &given))
				goto bad;
		} else if (OPT("--key")) {
			if (!tls_file(&o->key, v, &given))
				goto bad;
		} else if (OPT("--servername")) {
			if (!tls_file(&o->servername, v, &given))
				goto bad;
		} else if (OPT("--tls-version")) {
			if (!strcmp(v, "1.2"))
				o->tls_version = 12;
			else if (!strcmp(v, "1.3"))
				o->tls_version = 13;
			else
				goto bad;
			given |= GIVEN_TLS_OPT;
		} else if (OPT("--mqtt")) {
			if (!strcmp(v, "3") || !strcmp(v, "3.1.1") || !strcmp(v, "4"))
				o->version = BW_MQTT_311;
			else if (!strcmp(v, "5") || !strcmp(v, "5.0"))
				o->version = BW_MQTT_5;
			else
				goto bad;
		} else if (OPT("--publishers")) {
			if (!bw_bench_parse_u32(v, 0, BW_BENCH_CLIENTS_MAX, &o->publishers))
				goto bad;
			given |= GIVEN_PUBS;
		} else if (OPT("--subscribers")) {
			if (!bw_bench_parse_u32(v, 0, BW_BENCH_CLIENTS_MAX, &o->subscribers))
				goto bad;
			given |= GIVEN_SUBS;
		} else if (OPT("--connections")) {
			if (!bw_bench_parse_u32(v, 1, BW_BENCH_CLIENTS_MAX, &o->connections))
				goto bad;
			given |= GIVEN_CONNS;
		} else if (OPT("--qos")) {
			if (!bw_bench_parse_u32(v, 0, 2, &u))
				goto bad;
			o->qos = (uint8_t)u;
			given |= GIVEN_QOS;
		} else if (OPT("--size")) {
			if (!bw_bench_parse_u32(v, BW_BENCH_PAYLOAD_MIN, BW_BENCH_LOAD_PAY_MAX,
			                        &o->size))
				goto bad;
			given |= GIVEN_SIZE;
		} else if (OPT("--seconds")) {
			if (!bw_bench_parse_double(v, 0.001, BW_BENCH_TIME_MAX, &o->seconds))
				goto bad;
		} else if (OPT("--warmup")) {
			if (!bw_bench_parse_double(v, 0, BW_BENCH_TIME_MAX, &o->warmup))
				goto bad;
		} else if (OPT("--drain")) {
			if (!bw_bench_parse_double(v, 0, BW_BENCH_TIME_MAX, &o->drain))
				goto bad;
		} else if (OPT("--connect-timeout")) {
			if (!bw_bench_parse_double(v, 0.001, BW_BENCH_TIME_MAX,
			                           &o->connect_timeout))
				goto bad;
		} else if (OPT("--topic")) {
			if (*v == '\0' || strlen(v) > 512 || strpbrk(v, "+#"))
				goto bad;
			o->topic = v;
		} else if (OPT("--rate")) {
			if (!bw_bench_parse_double(v, 0.001, BW_BENCH_RATE_MAX, &o->rate))
				goto bad;
			given |= GIVEN_RATE;
		} else if (OPT("--pid")) {
			if (!bw_bench_parse_u32(v, 1, 0x7fffffff, &u))
				goto bad;
			o->pid = (pid_t)u;
		} else if (OPT("--json")) {
			if (*v == '\0')
				goto bad;
			o->json_path = v;
		} else if (OPT("--threads")) {
			if (!bw_bench_parse_u32(v, 1, BW_BENCH_THREADS_MAX, &o->threads))
				goto bad;
		} else if (OPT("--username")) {
			o->username = v;
		} else if (OPT("--password")) {
			o->password = v;
		} else if (OPT("--source")) {
			if (!parse_sources(v, o))
				goto bad;
		} else if (OPT("--inflight")) {
			if (!bw_bench_parse_u32(v, 1, 65535, &o->inflight))
				goto bad;
			given |= GIVEN_INFLIGHT;
		} else if (OPT("--concurrency")) {
			if (!bw_bench_parse_u32(v, 1, BW_BENCH_CLIENTS_MAX, &o->concurrency))
				goto bad;
		} else if (OPT("--keepalive")) {
			if (!bw_bench_parse_u32(v, 0, 65535, &u))
				goto bad;
			o->keepalive = (uint16_t)u;
		} else if (OPT("--tick-us")) {
			if (!bw_bench_parse_u32(v, 1, 1000000, &o->tick_us))
				goto bad;
		} else if (OPT("--flood-host")) {
			if (*v == '\0')
				goto bad;
			o->flood_host = v;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-port")) {
			if (!bw_bench_parse_u32(v, 1, 65535, &u))
				goto bad;
			o->flood_port = (uint16_t)u;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-publishers")) {
			if (!bw_bench_parse_u32(v, 1, BW_BENCH_CLIENTS_MAX, &o->flood_publishers))
				goto bad;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-subscribers")) {
			if (!bw_bench_parse_u32(v, 0, BW_BENCH_CLIENTS_MAX, &o->flood_subscribers))
				goto bad;
			given |= GIVEN_FLOOD | GIVEN_FLOOD_SUBS;
		} else if (OPT("--flood-size")) {
			if (!bw_bench_parse_u32(v, BW_BENCH_PAYLOAD_MIN, BW_BENCH_LOAD_PAY_MAX,
			                        &o->flood_size))
				goto bad;
			given |= GIVEN_FLOOD | GIVEN_FLOOD_SIZE;
		} else if (OPT("--flood-rate")) {
			if (!bw_bench_parse_double(v, 0.001, BW_BENCH_RATE_MAX, &o->flood_rate))
				goto bad;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-threads")) {
			if (!bw_bench_parse_u32(v, 1, BW_BENCH_THREADS_MAX, &o->flood_threads))
				goto bad;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-nice")) {
			if (!bw_bench_parse_u32(v, 0, 19, &u))
				goto bad;
			o->flood_nice = (int)u;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-username")) {
			o->flood_username = v;
			given |= GIVEN_FLOOD;
		} else if (OPT("--flood-password")) {
			o->flood_password = v;
			given |= GIVEN_FLOOD;
		} else if (OPT("--session-expiry")) {
			if (!bw_bench_parse_u32(v, 0, UINT32_MAX, &o->session_expiry))
				goto bad;
			given |= GIVEN_SESSION;
		} else if (OPT("--client-id")) {
			if (*v == '\0' || strlen(v) > 64)
				goto bad;
			o->client_id = v;
		} else if (missing) {
			bw_bench_load_opts_free(o);
			return bw_bench_usage_error("option needs a value", a);
		} else {
			bw_bench_load_opts_free(o);
			return bw_bench_usage_error("unknown option", a);
		}
#undef OPT
		continue;
	bad : {
		char what[96];
		snprintf(what, sizeof(what), "bad value for %.*s", (int)strcspn(a, "="), a);
		bw_bench_load_opts_free(o);
		return bw_bench_usage_error(what, v);
	}
	}
	if (o->password && !o->username) {
		bw_bench_load_opts_free(o);
		return bw_bench_usage_error("--password needs --username", NULL);
	}
	int rc = settle(o, given);
	if (rc)
		bw_bench_load_opts_free(o);
	return rc;
}
