/*
 * Redis Sentinel (see sentinel.h): the setting's parser, the resolver of
 * its names, and the blocking client. The client keeps one connection,
 * to the sentinel that answered last, and asks it first next time; a
 * sentinel that fails is closed and the next one in the list is asked.
 * Every call has a timeout: the connect, and each reply (SO_RCVTIMEO and
 * SO_SNDTIMEO through redisSetTimeout()).
 */
#include "node/state/sentinel.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct bw_sentinel {
	struct bw_sentinel_config cfg;
	const atomic_bool *stop;
	redisContext *c; /* to cfg.addr[at], while connected */
	uint32_t at;     /* the sentinel asked first: the last that answered */
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* snprintf(), cut to fit on purpose: error texts quote what they are given. */
__attribute__((format(printf, 3, 4))) static void textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The redis_url.c helpers' texts start "redis: "; here the key says what. */
static const char *unprefixed(const char *why)
{
	return strncmp(why, "redis: ", 7) == 0 ? why + 7 : why;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

int bw_sentinel_parse(struct bw_sentinel_config *cfg, const char *text, char *err, size_t errlen)
{
	const char *p = text, *name;
	size_t len;

	memset(cfg, 0, sizeof(*cfg));
	if (errlen > 0)
		err[0] = '\0';
	while (blank(*p))
		p++;
	name = p;
	while (*p && !blank(*p))
		p++;
	len = (size_t)(p - name);
	if (len == 0)
		return fail(err, errlen, "expected `MASTER_NAME HOST:PORT[,HOST:PORT...]`");
	if (len >= sizeof(cfg->name))
		return fail(err, errlen, "the master name is longer than %zu bytes",
		            sizeof(cfg->name) - 1);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return fail(err, errlen, "the master name has a character it may not have");
	}
	memcpy(cfg->name, name, len);
	cfg->name[len] = '\0';
	while (blank(*p))
		p++;
	if (!*p)
		return fail(err, errlen,
		            "names no sentinel (expected `MASTER_NAME HOST:PORT[,HOST:PORT...]`)");
	for (;;) {
		const char *item = p, *end = p + strcspn(p, ",");
		const char *last = end;
		char why[256];

		while (item < end && blank(*item))
			item++;
		while (last > item && blank(last[-1]))
			last--;
		if (last == item)
			return fail(err, errlen, "an empty sentinel address (a comma too many)");
		if (cfg->n == BW_SENTINEL_MAX)
			return fail(err, errlen, "more than %d sentinels", BW_SENTINEL_MAX);
		if (bw__redis_hostport(cfg->addr[cfg->n].host, sizeof(cfg->addr[cfg->n].host),
		                       &cfg->addr[cfg->n].port, BW_SENTINEL_PORT, item,
		                       (size_t)(last - item), why, sizeof(why)) < 0)
			return fail(err, errlen, "sentinel '%.*s': %s",
			            (int)((last - item) > 64 ? 64 : (last - item)), item,
			            unprefixed(why));
		cfg->n++;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

int bw_sentinel_resolve(struct bw_sentinel_config *cfg, char *err, size_t errlen)
{
	char why[BW_REDIS_ERROR_MAX];

	for (uint32_t i = 0; i < cfg->n; i++) {
		if (bw__redis_resolve_host(cfg->addr[i].host, sizeof(cfg->addr[i].host), why,
		                           sizeof(why)) < 0)
			return fail(err, errlen, "%s", unprefixed(why));
	}
	return 0;
}

int bw_sentinel_new(struct bw_sentinel **out, const struct bw_sentinel_config *cfg,
                    const atomic_bool *stop)
{
	struct bw_sentinel *s;

	*out = NULL;
	if (cfg->n == 0 || cfg->n > BW_SENTINEL_MAX || !cfg->name[0])
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.timeout_ms)
		s->cfg.timeout_ms = BW_SENTINEL_TIMEOUT_MS;
	s->stop = stop;
	*out = s;
	return 0;
}

static void addr_text(char *buf, size_t cap, const char *host, unsigned port)
{
	snprintf(buf, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

static struct timeval tv_ms(uint32_t ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

static void close_conn(struct bw_sentinel *s)
{
	if (s->c)
		redisFree(s->c);
	s->c = NULL;
}

/* A connection to sentinel i, AUTH done: 0, or -EIO with why. */
static int open_conn(struct bw_sentinel *s, uint32_t i, const char *addr, char *why, size_t cap)
{
	redisContext *c;

	c = redisConnectWithTimeout(s->cfg.addr[i].host, s->cfg.addr[i].port,
	                            tv_ms(s->cfg.timeout_ms));
	if (!c || c->err) {
		textf(why, cap, "%s: %s", addr, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return -EIO;
	}
	redisSetTimeout(c, tv_ms(s->cfg.timeout_ms));
	s->c = c;
	s->at = i;
	if (s->cfg.password[0]) {
		redisReply *r = redisCommand(c, "AUTH %s", s->cfg.password);
		bool ok = r && r->type != REDIS_REPLY_ERROR;

		if (!ok)
			textf(why, cap, "%s: AUTH: %.*s", addr, r ? (int)r->len : 64,
			      r ? r->str : c->errstr);
		if (r)
			freeReplyObject(r);
		if (!ok) {
			close_conn(s);
			return -EIO;
		}
	}
	return 0;
}

/*
 * The master's address in a sentinel's answer (two strings, an address
 * and a port) into host and *port: 0, or -1 for anything else.
 */
static int answer_addr(const redisReply *h, const redisReply *p, char *host, size_t cap,
                       uint16_t *port)
{
	unsigned long v = 0;

	if (h->len == 0 || h->len >= cap || p->len == 0 || p->len > 5)
		return -1;
	for (size_t i = 0; i < h->len; i++) {
		unsigned char c = (unsigned char)h->str[i];
		if (c <= ' ' || c >= 0x7f || c == '/' || c == '[' || c == ']' || c == '@')
			return -1;
	}
	for (size_t i = 0; i < p->len; i++) {
		if (p->str[i] < '0' || p->str[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p->str[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	memcpy(host, h->str, h->len);
	host[h->len] = '\0';
	*port = (uint16_t)v;
	return 0;
}

/*
 * Asks sentinel i: 0 and the address, -ENOENT when it knows no such
 * master, or -EIO (its connection closed) with why.
 */
static int ask_one(struct bw_sentinel *s, uint32_t i, char *host, size_t cap, uint16_t *port,
                   char *why, size_t wcap)
{
	char addr[BW_REDIS_HOST_MAX + 8], rwhy[BW_REDIS_ERROR_MAX];
	redisReply *r;
	int rc = -EIO;

	addr_text(addr, sizeof(addr), s->cfg.addr[i].host, s->cfg.addr[i].port);
	if (s->c && s->at != i)
		close_conn(s);
	if (!s->c && open_conn(s, i, addr, why, wcap) < 0)
		return -EIO;
	r = redisCommand(s->c, "SENTINEL get-master-addr-by-name %s", s->cfg.name);
	if (!r) {
		textf(why, wcap, "%s: %s", addr,
		      s->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
		              ? "no answer within the timeout"
		      : s->c->errstr[0] ? s->c->errstr
		                        : "closed");
		close_conn(s);
		return -EIO;
	}
	if (r->type == REDIS_REPLY_NIL) {
		textf(why, wcap, "%s knows no master named %s", addr, s->cfg.name);
		rc = -ENOENT;
	} else if (r->type == REDIS_REPLY_ERROR) {
		textf(why, wcap, "%s answered: %.*s", addr, (int)(r->len > 120 ? 120 : r->len),
		      r->str);
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	           r->element[0]->type != REDIS_REPLY_STRING ||
	           r->element[1]->type != REDIS_REPLY_STRING) {
		textf(why, wcap, "%s: not an address in its answer", addr);
	} else if (answer_addr(r->element[0], r->element[1], host, cap, port) < 0) {
		textf(why, wcap, "%s: not an address in its answer", addr);
	} else if (bw__redis_resolve_host(host, cap, rwhy, sizeof(rwhy)) < 0) {
		textf(why, wcap, "%s: %s", addr, unprefixed(rwhy));
	} else {
		rc = 0;
	}
	freeReplyObject(r);
	if (rc == -EIO)
		close_conn(s);
	return rc;
}

int bw_sentinel_ask(struct bw_sentinel *s, char *host, size_t cap, uint16_t *port, char *err,
                    size_t errlen)
{
	char why[BW_REDIS_ERROR_MAX] = "";
	uint32_t first = s->at;
	bool known_not = false;

	if (cap > 0)
		host[0] = '\0';
	for (uint32_t k = 0; k < s->cfg.n; k++) {
		uint32_t i = (first + k) % s->cfg.n;
		int rc;

		if (k > 0 && s->stop && atomic_load_explicit(s->stop, memory_order_relaxed))
			break;
		rc = ask_one(s, i, host, cap, port, why, sizeof(why));
		if (rc == 0)
			return 0;
		known_not |= rc == -ENOENT;
	}
	if (cap > 0)
		host[0] = '\0';
	if (known_not) {
		textf(err, errlen, "no sentinel knows a master named %s (last: %s)", s->cfg.name,
		      why);
		return -ENOENT;
	}
	textf(err, errlen, "no sentinel answered (last: %s)", why[0] ? why : "stopping");
	return -EHOSTUNREACH;
}

void bw_sentinel_free(struct bw_sentinel **sp)
{
	struct bw_sentinel *s = *sp;

	if (!s)
		return;
	close_conn(s);
	free(s);
	*sp = NULL;
}
