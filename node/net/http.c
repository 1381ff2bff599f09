/*
 * The HTTP/1.1 request parser and response head writer (see http.h). The
 * parser first finds the end of the head (CRLF CRLF), so every later step
 * reads a complete, bounded head and needs no state across calls.
 */
#include "node/net/http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The header line's value if its name is `name` (case-insensitive). */
static bool header_is(const char *line, size_t len, const char *name, const char **val,
                      size_t *vlen)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	const char *v = line + n + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*val = v;
	*vlen = (size_t)(end - v);
	return true;
}

static bool token_in(const char *v, size_t len, const char *token)
{
	/* Connection may list several comma-separated options. */
	size_t n = strlen(token);
	for (size_t i = 0; i + n <= len; i++) {
		if (strncasecmp(v + i, token, n) == 0 &&
		    (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
		    (i + n == len || v[i + n] == ' ' || v[i + n] == ','))
			return true;
	}
	return false;
}

int bw_http_parse(const char *buf, size_t len, struct bw_http_request *req)
{
	size_t scan = len < BW_HTTP_HEAD_MAX ? len : BW_HTTP_HEAD_MAX;
	const char *end = NULL;

	for (size_t i = 3; i < scan; i++) {
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r') {
			end = buf + i + 1;
			break;
		}
	}
	if (!end)
		return len >= BW_HTTP_HEAD_MAX ? -431 : BW_HTTP_AGAIN;
	memset(req, 0, sizeof(*req));
	req->size = (size_t)(end - buf);

	/* Request line: METHOD SP target SP HTTP/1.x CRLF */
	const char *eol = memchr(buf, '\r', req->size);
	if (eol[1] != '\n')
		return -400;
	const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	if (!sp1)
		return -400;
	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || sp2 == target || target[0] != '/')
		return -400;
	const char *version = sp2 + 1;
	size_t vlen = (size_t)(eol - version);
	bool http11;
	if (vlen == 8 && !memcmp(version, "HTTP/1.1", 8))
		http11 = true;
	else if (vlen == 8 && !memcmp(version, "HTTP/1.0", 8))
		http11 = false;
	else if (vlen >= 5 && !memcmp(version, "HTTP/", 5))
		return -505;
	else
		return -400;

	size_t mlen = (size_t)(sp1 - buf);
	if (mlen == 3 && !memcmp(buf, "GET", 3))
		req->method = BW_HTTP_GET;
	else if (mlen == 4 && !memcmp(buf, "HEAD", 4))
		req->method = BW_HTTP_HEAD;
	else
		return -405;

	const char *q = memchr(target, '?', (size_t)(sp2 - target));
	req->path = target;
	req->path_len = (size_t)((q ? q : sp2) - target);
	if (req->path_len > BW_HTTP_PATH_MAX)
		return -414;
	for (size_t i = 0; i < req->path_len; i++) {
		if ((unsigned char)target[i] <= ' ' || target[i] == 0x7F)
			return -400;
	}

	req->keep_alive = http11;
	for (const char *line = eol + 2; line < end - 2;) {
		const char *le = memchr(line, '\r', (size_t)(end - line));
		if (!le || le[1] != '\n')
			return -400;
		size_t ll = (size_t)(le - line);
		const char *v;
		size_t n;
		if (header_is(line, ll, "Connection", &v, &n)) {
			if (token_in(v, n, "close"))
				req->keep_alive = false;
			else if (token_in(v, n, "keep-alive"))
				req->keep_alive = true;
		} else if (header_is(line, ll, "Content-Length", &v, &n)) {
			if (n != 1 || v[0] != '0')
				return -400; /* these endpoints take no body */
		} else if (header_is(line, ll, "Transfer-Encoding", &v, &n)) {
			return -400;
		} else if (ll == 0 || !memchr(line, ':', ll)) {
			return -400;
		}
		line = le + 2;
	}
	return 0;
}

const char *bw_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}

int bw_http_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                 bool keep_alive)
{
	int n = snprintf(buf, cap,
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: %s\r\n"
	                 "Content-Length: %zu\r\n"
	                 "Cache-Control: no-store\r\n"
	                 "Connection: %s\r\n"
	                 "\r\n",
	                 status, bw_http_reason(status), content_type, body_len,
	                 keep_alive ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
