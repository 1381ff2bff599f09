/*
 * A Redis client for one worker, driven by that worker's io_uring: hiredis
 * (0.14 async API) formats commands and parses replies, and its event hooks
 * are one-shot bw_ring_poll() ops on the connection's socket, so nothing
 * here ever blocks the worker. Requests are pipelined; each has a deadline,
 * and bw_redis_tick() drops the connection when one passes. A dropped or
 * failed connection fails every pending request (its callback gets an
 * error, once) and is retried with backoff. While the connection is down,
 * new requests are refused at once: the caller decides whether to buffer.
 *
 * With redis_sentinel the address is not fixed: the client reads it from
 * a shared holder (master.h) at every connect, and its tick drops the
 * connection when the holder's generation moves on. A READONLY error
 * reply (a master demoted to a replica) ends the connection too.
 *
 * Everything but bw_redis_stats() and bw_redis_last_error() belongs to the
 * ring's thread. hiredis writes with write(2): the process must ignore
 * SIGPIPE (the node does, in main.c).
 */
#ifndef BW_STATE_REDIS_H
#define BW_STATE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_master;
struct bw_ring;
struct bw_redis;

#define BW_REDIS_CONNECT_TIMEOUT_MS 2000u
#define BW_REDIS_REQUEST_TIMEOUT_MS 2000u
#define BW_REDIS_BACKOFF_MIN_MS     100u
#define BW_REDIS_BACKOFF_MAX_MS     5000u
#define BW_REDIS_PENDING_MAX        65536u /* requests in flight on one connection */
#define BW_REDIS_HOST_MAX           256u
#define BW_REDIS_PATH_MAX           108u /* sun_path, its NUL included */
#define BW_REDIS_SECRET_MAX         256u
#define BW_REDIS_ERROR_MAX          192u /* last_error text, its NUL included */

/*
 * Where and how to connect. Plain data, copied by bw_redis_new(). Exactly
 * one of host (with port), path and master is set. Zero timeouts and
 * limits take the defaults above.
 */
struct bw_redis_config {
	char host[BW_REDIS_HOST_MAX]; /* a numeric address on a worker (see bw_redis_resolve()) */
	uint16_t port;
	char path[BW_REDIS_PATH_MAX];       /* a unix socket */
	char user[BW_REDIS_SECRET_MAX];     /* "": AUTH password alone (the default user) */
	char password[BW_REDIS_SECRET_MAX]; /* "": no AUTH */
	uint32_t db;                        /* 0: no SELECT */
	uint32_t connect_timeout_ms;        /* connect, AUTH, SELECT and the first answer */
	uint32_t request_timeout_ms;        /* from bw_redis_cmd() to the reply */
	uint32_t backoff_min_ms;            /* the first wait before a reconnect; doubles */
	uint32_t backoff_max_ms;
	uint32_t pending_max;
	/* The monotonic clock in ms for deadlines; NULL: CLOCK_MONOTONIC. */
	uint64_t (*now_ms)(void);
	/*
	 * With redis_sentinel: where the master is now (host and port are
	 * then its copy, taken at each connect). Shared, not copied: it must
	 * outlive every client and state thread given it. NULL: host or path.
	 */
	struct bw_master *master;
};

/*
 * Counters and the state, for /readyz and metrics: any thread may load
 * them (relaxed) while the ring's thread updates them.
 */
struct bw_redis_stats {
	_Atomic uint64_t up;         /* 1: connected, and the handshake answered */
	_Atomic uint64_t pending;    /* requests waiting for a reply (a gauge) */
	_Atomic uint64_t requests;   /* bw_redis_cmd() calls with a valid request */
	_Atomic uint64_t errors;     /* of those, failed: refused, dropped or timed out */
	_Atomic uint64_t timeouts;   /* of those, failed past their deadline */
	_Atomic uint64_t reconnects; /* connection attempts after the first */
};

/*
 * A request's end, exactly once: reply (hiredis's, freed after the
 * callback returns; a Redis error reply is a reply, REDIS_REPLY_ERROR) and
 * error NULL; or reply NULL and error, a text valid during the callback:
 * "timeout" when this request passed its deadline, else why the
 * connection ended. A READONLY error reply (bw_redis_error_demoted())
 * is not handed on as a reply: it ends the connection, and the request
 * gets reply NULL like every other request the connection carried. The
 * callback may call bw_redis_cmd(); it must not call bw_redis_tick() or
 * bw_redis_free().
 */
typedef void (*bw_redis_cb)(void *arg, const redisReply *reply, const char *error);

/*
 * A client on ring for cfg; it starts connecting at once, without
 * blocking. host must be a numeric IPv4 or IPv6 address: hiredis resolves
 * names with a blocking getaddrinfo(3), so bw_redis_resolve() does that
 * beforehand off the worker. Returns 0 and *out, -EINVAL for a bad
 * config, -ENOMEM. The caller frees *out with bw_redis_free(). ring must
 * outlive it, or be torn down as bw_redis_free() says.
 */
int bw_redis_new(struct bw_redis **out, const struct bw_redis_config *cfg, struct bw_ring *ring);

/*
 * Sends argv (argc strings of argvlen bytes; copied) behind the requests
 * already queued. Returns 0: cb(arg, ...) will be called exactly once,
 * never from inside this call. Or, and then cb is never called:
 * -ENOTCONN while the connection is down (bw_redis_last_error() says why),
 * -ENOBUFS past pending_max, -EINVAL for argc 0, -ENOMEM.
 */
int bw_redis_cmd(struct bw_redis *r, bw_redis_cb cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen);

/*
 * The worker calls this every 100 ms or so (not from a callback), with
 * now_ms from the clock cfg->now_ms names: fails the requests past their
 * deadline by dropping the connection (a pending request gets its error
 * once), ends a connect past its timeout, re-arms what a full SQ refused,
 * and reconnects when the backoff has passed. With cfg->master, a new
 * generation there drops the connection too, and reconnects at once to
 * the master's new address.
 */
void bw_redis_tick(struct bw_redis *r, uint64_t now_ms);

/* Connected and answering: the handshake (AUTH, SELECT or PING) done. */
bool bw_redis_up(const struct bw_redis *r);

const struct bw_redis_stats *bw_redis_stats(const struct bw_redis *r);

/*
 * Why the connection last failed ("" if it never did) into buf, cut to
 * len. Any thread.
 */
void bw_redis_last_error(struct bw_redis *r, char *buf, size_t len);

/*
 * Fails every pending request (error "client closed"), closes the
 * connection and frees *rp; NULLs it. Not from a callback.
 *
 * ring_ok says whether ring is still alive (the worker's ring_ok): then
 * the socket's polls are cancelled, and their memory lives until their
 * cancelled completions come back, so the caller runs the ring a little
 * longer (a worker's shutdown does) or a few bytes stay behind. With
 * ring_ok false, bw_ring_exit() already dropped the polls without a
 * callback and everything is freed at once.
 */
void bw_redis_free(struct bw_redis **rp, bool ring_ok);

/*
 * Parses a Redis address into *cfg (zeroed first: the timeouts take their
 * defaults):
 *   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0)
 *   unix://[[user]:password@]/path[?db=N[&password=P]]
 * host may be [v6]; user and password may be %-encoded. Returns 0, or
 * -EINVAL with why in err ("redis: port 70000 is out of range").
 */
int bw_redis_url_parse(struct bw_redis_config *cfg, const char *url, char *err, size_t errlen);

/*
 * Turns cfg->host into a numeric address with getaddrinfo(3), which may
 * block: call it off the workers (the main thread, at configuration). A
 * unix socket or numeric host is left as it is. Returns 0, or -EINVAL
 * with why in err.
 */
int bw_redis_resolve(struct bw_redis_config *cfg, char *err, size_t errlen);

/*
 * Whether an error reply's text (len bytes) says the server is a replica
 * that refuses writes: "READONLY ..." (and, from Redis before 7, a
 * script's error that wraps it: "ERR Error running script ...: -READONLY
 * ..."). The client treats it as a dropped connection.
 */
bool bw_redis_error_demoted(const char *str, size_t len);

/*
 * For sentinel.c, which parses and resolves its addresses the same way.
 * bw__redis_hostport(): host[:port] or [v6][:port] in s[0..len) into
 * host (cap bytes) and *port (def_port when it has none); 0, or -EINVAL
 * with why in err ("redis: ..."). bw__redis_resolve_host(): host (cap
 * bytes) made numeric, as bw_redis_resolve() does.
 */
int bw__redis_hostport(char *host, size_t cap, uint16_t *port, uint16_t def_port, const char *s,
                       size_t len, char *err, size_t errlen);
int bw__redis_resolve_host(char *host, size_t cap, char *err, size_t errlen);

#endif
