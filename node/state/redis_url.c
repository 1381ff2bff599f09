/*
 * Redis addresses as text (see redis.h): redis://[[user]:password@]host
 * [:port][/db] and unix://[[user]:password@]/path[?db=N&user=U&password=P],
 * parsed into a struct bw_redis_config; and the one blocking step a
 * worker must not take, resolving a host name. The host[:port] parser and
 * the resolver serve the sentinels' addresses too (sentinel.c). Error
 * texts never quote a password.
 */
#include "node/state/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_PORT 6379u
#define DB_MAX       2147483647u /* Redis keeps the index in an int */

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes s[0..len) into out (cap bytes, NUL included). 0, -1 for
 * a bad escape or a %00, -2 when it does not fit.
 */
static int pct_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = hexval(s[i + 1]);
			int lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return -2;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int decode_field(const char *s, size_t len, char *out, size_t cap, const char *what,
                        char *err, size_t errlen)
{
	int rc = pct_decode(s, len, out, cap);

	if (rc == -1)
		return fail(err, errlen, "redis: bad %%-escape in the %s", what);
	if (rc == -2)
		return fail(err, errlen, "redis: the %s is too long (%zu bytes at most)", what,
		            cap - 1);
	return 0;
}

/* A decimal number of 1 to 10 digits in s[0..len) into *v; -1 if not one. */
static int parse_uint(const char *s, size_t len, uint64_t *v)
{
	uint64_t n = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	*v = n;
	return 0;
}

static int parse_db(struct bw_redis_config *cfg, const char *s, size_t len, char *err,
                    size_t errlen)
{
	uint64_t v;

	if (len == 0)
		return 0;
	if (strspn(s, "0123456789") < len)
		return fail(err, errlen, "redis: db '%.*s' is not a number",
		            (int)(len > 32 ? 32 : len), s);
	if (len > 10 || parse_uint(s, len, &v) < 0)
		return fail(err, errlen, "redis: db %.*s is out of range (0 to %u)",
		            (int)(len > 32 ? 32 : len), s, DB_MAX);
	if (v > DB_MAX)
		return fail(err, errlen, "redis: db %llu is out of range (0 to %u)",
		            (unsigned long long)v, DB_MAX);
	cfg->db = (uint32_t)v;
	return 0;
}

/* [user]:password before the '@'. */
static int parse_userinfo(struct bw_redis_config *cfg, const char *s, size_t len, char *err,
                          size_t errlen)
{
	const char *colon = memchr(s, ':', len);
	int rc;

	if (!colon)
		return fail(err, errlen,
		            "redis: a password needs a ':' before it (redis://:password@host)");
	rc = decode_field(s, (size_t)(colon - s), cfg->user, sizeof(cfg->user), "user", err,
	                  errlen);
	if (rc < 0)
		return rc;
	rc = decode_field(colon + 1, len - (size_t)(colon - s) - 1, cfg->password,
	                  sizeof(cfg->password), "password", err, errlen);
	if (rc < 0)
		return rc;
	if (!cfg->password[0])
		return fail(err, errlen, "redis: the password is empty");
	return 0;
}

int bw__redis_hostport(char *host, size_t cap, uint16_t *port_out, uint16_t def_port, const char *s,
                       size_t len, char *err, size_t errlen)
{
	const char *h = s, *port = NULL;
	size_t hlen, plen = 0;
	uint64_t v = 0;

	if (len > 0 && s[0] == '[') {
		const char *end = memchr(s, ']', len);

		if (!end)
			return fail(err, errlen, "redis: '[' without ']' around an IPv6 address");
		h = s + 1;
		hlen = (size_t)(end - h);
		size_t rest = len - (size_t)(end + 1 - s);
		if (rest > 0) {
			if (end[1] != ':')
				return fail(err, errlen, "redis: unexpected text after ']'");
			port = end + 2;
			plen = rest - 1;
		}
	} else {
		const char *colon = memchr(s, ':', len);

		hlen = colon ? (size_t)(colon - s) : len;
		if (colon) {
			port = colon + 1;
			plen = len - hlen - 1;
		}
	}
	if (hlen == 0)
		return fail(err, errlen, "redis: the address has no host");
	if (hlen >= cap)
		return fail(err, errlen, "redis: the host is too long (%zu bytes at most)",
		            cap - 1);
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' ||
		    c == '%' || c == ',')
			return fail(err, errlen, "redis: the host has a character it may not have");
	}
	if (port && (plen == 0 || strspn(port, "0123456789") < plen))
		return fail(err, errlen, "redis: port '%.*s' is not a number",
		            (int)(plen > 32 ? 32 : plen), port);
	if (port && (plen > 5 || parse_uint(port, plen, &v) < 0 || v == 0 || v > 65535))
		return fail(err, errlen, "redis: port %.*s is out of range (1 to 65535)",
		            (int)(plen > 32 ? 32 : plen), port);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port_out = port ? (uint16_t)v : def_port;
	return 0;
}

/* host[:port] or [v6][:port]. */
static int parse_hostport(struct bw_redis_config *cfg, const char *s, size_t len, char *err,
                          size_t errlen)
{
	return bw__redis_hostport(cfg->host, sizeof(cfg->host), &cfg->port, DEFAULT_PORT, s, len,
	                          err, errlen);
}

static int parse_redis(struct bw_redis_config *cfg, const char *s, char *err, size_t errlen)
{
	size_t alen = strcspn(s, "/?#");
	const char *at = NULL;
	int rc;

	/* The last '@' ends the userinfo: a raw '@' in a password still parses. */
	for (size_t i = 0; i < alen; i++) {
		if (s[i] == '@')
			at = s + i;
	}
	if (at) {
		rc = parse_userinfo(cfg, s, (size_t)(at - s), err, errlen);
		if (rc < 0)
			return rc;
		rc = parse_hostport(cfg, at + 1, alen - (size_t)(at + 1 - s), err, errlen);
	} else {
		rc = parse_hostport(cfg, s, alen, err, errlen);
	}
	if (rc < 0)
		return rc;
	s += alen;
	if (*s == '?' || *s == '#')
		return fail(err, errlen, "redis: unexpected '%c' in a redis:// address", *s);
	if (*s == '/')
		return parse_db(cfg, s + 1, strlen(s + 1), err, errlen);
	return 0;
}

/* db=N&user=U&password=P */
static int parse_query(struct bw_redis_config *cfg, const char *q, char *err, size_t errlen)
{
	while (*q) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		int rc;

		if (!eq)
			return fail(err, errlen, "redis: parameter '%.*s' has no value",
			            (int)(len > 32 ? 32 : len), q);
		size_t klen = (size_t)(eq - q), vlen = len - klen - 1;
		if (klen == 2 && memcmp(q, "db", 2) == 0) {
			rc = parse_db(cfg, eq + 1, vlen, err, errlen);
			if (rc == 0 && vlen == 0)
				rc = fail(err, errlen, "redis: db '' is not a number");
		} else if (klen == 4 && memcmp(q, "user", 4) == 0) {
			rc = decode_field(eq + 1, vlen, cfg->user, sizeof(cfg->user), "user", err,
			                  errlen);
		} else if (klen == 8 && memcmp(q, "password", 8) == 0) {
			rc = decode_field(eq + 1, vlen, cfg->password, sizeof(cfg->password),
			                  "password", err, errlen);
		} else {
			rc = fail(err, errlen,
			          "redis: unknown parameter '%.*s' (want db, user or password)",
			          (int)(klen > 32 ? 32 : klen), q);
		}
		if (rc < 0)
			return rc;
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

static int parse_unix(struct bw_redis_config *cfg, const char *s, char *err, size_t errlen)
{
	const char *path = strchr(s, '/');
	const char *at = NULL;
	int rc;

	if (!path)
		return fail(err, errlen, "redis: unix:// needs an absolute path (unix:///path)");
	for (const char *p = s; p < path; p++) {
		if (*p == '@')
			at = p;
	}
	if (path != s && !at)
		return fail(err, errlen, "redis: unix:// needs an absolute path (unix:///path)");
	if (at) {
		if (at + 1 != path)
			return fail(err, errlen, "redis: unix:// takes no host");
		rc = parse_userinfo(cfg, s, (size_t)(at - s), err, errlen);
		if (rc < 0)
			return rc;
	}
	size_t plen = strcspn(path, "?#");
	if (path[plen] == '#')
		return fail(err, errlen, "redis: unexpected '#' in a unix:// address");
	if (plen >= sizeof(cfg->path))
		return fail(err, errlen, "redis: the socket path is too long (%zu bytes at most)",
		            sizeof(cfg->path) - 1);
	if (plen == 1)
		return fail(err, errlen, "redis: unix:// needs a socket path (unix:///path)");
	memcpy(cfg->path, path, plen);
	cfg->path[plen] = '\0';
	if (path[plen] == '?') {
		rc = parse_query(cfg, path + plen + 1, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (cfg->user[0] && !cfg->password[0])
		return fail(err, errlen, "redis: a user needs a password");
	return 0;
}

int bw_redis_url_parse(struct bw_redis_config *cfg, const char *url, char *err, size_t errlen)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (errlen > 0)
		err[0] = '\0';
	if (strncmp(url, "redis://", 8) == 0)
		rc = parse_redis(cfg, url + 8, err, errlen);
	else if (strncmp(url, "unix://", 7) == 0)
		rc = parse_unix(cfg, url + 7, err, errlen);
	else if (strncmp(url, "rediss://", 9) == 0)
		rc = fail(err, errlen, "redis: rediss:// (TLS) is not supported");
	else
		rc = fail(err, errlen, "redis: the address must start with redis:// or unix://");
	if (rc < 0)
		memset(cfg, 0, sizeof(*cfg));
	return rc;
}

int bw__redis_resolve_host(char *host, size_t cap, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	char text[INET6_ADDRSTRLEN];
	const void *a;
	int rc;

	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return 0;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res)
		return fail(err, errlen, "redis: cannot resolve %s: %s", host,
		            rc ? gai_strerror(rc) : "no address");
	if (res->ai_family == AF_INET)
		a = &((const struct sockaddr_in *)res->ai_addr)->sin_addr;
	else
		a = &((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
	if (!inet_ntop(res->ai_family, a, text, sizeof(text))) {
		freeaddrinfo(res);
		return fail(err, errlen, "redis: cannot resolve %s: bad address", host);
	}
	freeaddrinfo(res);
	snprintf(host, cap, "%s", text);
	return 0;
}

int bw_redis_resolve(struct bw_redis_config *cfg, char *err, size_t errlen)
{
	if (cfg->path[0])
		return 0;
	return bw__redis_resolve_host(cfg->host, sizeof(cfg->host), err, errlen);
}
