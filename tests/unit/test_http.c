/*
 * The HTTP/1.1 subset of the health and metrics listener: whole and partial
 * requests, keep-alive rules of 1.0 and 1.1, every refusal with its status,
 * and response heads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/net/http.h"

#include <errno.h>
#include <string.h>

static int parse(const char *s, struct bw_http_request *r)
{
	return bw_http_parse(s, strlen(s), r);
}

static void test_get(void **state)
{
	struct bw_http_request r;
	const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nGET /next";
	assert_int_equal(parse(s, &r), 0);
	assert_int_equal(r.method, BW_HTTP_GET);
	assert_int_equal(r.path_len, 8);
	assert_memory_equal(r.path, "/metrics", 8);
	assert_true(r.keep_alive);
	assert_int_equal(r.size, strlen(s) - strlen("GET /next"));
}

static void test_every_prefix_needs_more(void **state)
{
	struct bw_http_request r;
	const char *s = "HEAD /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	for (size_t n = 0; n < strlen(s); n++)
		assert_int_equal(bw_http_parse(s, n, &r), BW_HTTP_AGAIN);
	assert_int_equal(parse(s, &r), 0);
	assert_int_equal(r.method, BW_HTTP_HEAD);
	assert_true(r.keep_alive);
}

static void test_keep_alive_rules(void **state)
{
	struct bw_http_request r;
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &r), 0);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", &r), 0);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", &r), 0);
	assert_false(r.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", &r), 0);
	assert_true(r.keep_alive);
}

static void test_refusals(void **state)
{
	struct bw_http_request r;
	assert_int_equal(parse("POST /x HTTP/1.1\r\n\r\n", &r), -405);
	assert_int_equal(parse("GET /x HTTP/2.0\r\n\r\n", &r), -505);
	assert_int_equal(parse("GET /x FTP/1.0\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET x HTTP/1.1\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET  HTTP/1.1\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nno colon here\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET / HTTP/1.1\rX\r\n\r\n", &r), -400);
	assert_int_equal(parse("GET /a\x01 HTTP/1.1\r\n\r\n", &r), -400);

	char path[BW_HTTP_PATH_MAX + 64] = "GET /";
	memset(path + 5, 'a', BW_HTTP_PATH_MAX);
	strcpy(path + 5 + BW_HTTP_PATH_MAX, " HTTP/1.1\r\n\r\n");
	assert_int_equal(parse(path, &r), -414);
}

static void test_oversized_head(void **state)
{
	struct bw_http_request r;
	static char big[BW_HTTP_HEAD_MAX + 16];
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'y', sizeof(big) - 19);
	/* Refused as soon as the limit is reached without a complete head. */
	assert_int_equal(bw_http_parse(big, BW_HTTP_HEAD_MAX - 1, &r), BW_HTTP_AGAIN);
	assert_int_equal(bw_http_parse(big, BW_HTTP_HEAD_MAX, &r), -431);
	assert_int_equal(bw_http_parse(big, sizeof(big), &r), -431);
}

static void test_head_writer(void **state)
{
	char buf[256];
	int n = bw_http_head(buf, sizeof(buf), 200, "text/plain", 3, true);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf,
	                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
	                    "Cache-Control: no-store\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(bw_http_head(buf, 20, 503, "text/plain", 0, false), -ENOSPC);
	assert_string_equal(bw_http_reason(404), "Not Found");
	assert_string_equal(bw_http_reason(999), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_every_prefix_needs_more),
		cmocka_unit_test(test_keep_alive_rules),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_oversized_head),
		cmocka_unit_test(test_head_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
