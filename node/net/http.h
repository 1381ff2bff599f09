/*
 * The HTTP/1.1 subset the node serves on `listen http` (/healthz, /readyz,
 * /metrics): GET and HEAD requests without bodies, parsed from a buffer
 * that holds the bytes received so far. Like the MQTT codec it is pure and
 * resumable: a partial request is "need more", never an error, and a
 * request head larger than BW_HTTP_HEAD_MAX is refused before it is
 * buffered further.
 */
#ifndef BW_NODE_HTTP_H
#define BW_NODE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define BW_HTTP_AGAIN    1
#define BW_HTTP_HEAD_MAX 8192
#define BW_HTTP_PATH_MAX 1024

enum bw_http_method {
	BW_HTTP_GET,
	BW_HTTP_HEAD,
};

struct bw_http_request {
	enum bw_http_method method;
	const char *path; /* into the buffer; not NUL-terminated; query cut off */
	size_t path_len;
	bool keep_alive; /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive */
	size_t size;     /* bytes of the request head, to consume */
};

/*
 * Parses one request at the start of buf[0..len). Returns 0 with *req
 * filled, BW_HTTP_AGAIN when the head is incomplete, or the negative HTTP
 * status to answer with before closing: -400 (malformed, or a body), -405
 * (a method other than GET or HEAD), -414 (path longer than
 * BW_HTTP_PATH_MAX), -431 (head longer than BW_HTTP_HEAD_MAX), -505 (not
 * HTTP/1.0 or 1.1).
 */
int bw_http_parse(const char *buf, size_t len, struct bw_http_request *req);

/* Reason phrase of a status code ("Not Found"). */
const char *bw_http_reason(int status);

/*
 * Writes a response head for a body of body_len bytes to buf[0..cap).
 * Returns its length, or -ENOSPC.
 */
int bw_http_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                 bool keep_alive);

#endif
