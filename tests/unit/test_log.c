/*
 * The node's log: text and JSON records, level filtering, JSON escaping,
 * truncation of long messages, reopening after rotation, and whole lines
 * from concurrent writers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

static char path[] = "/tmp/bw-log-XXXXXX";

static int setup(void **state)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, NULL);
	unlink(path);
	return 0;
}

/* The file's contents (caller frees). */
static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strdup(buf);
}

static void truncate_log(void)
{
	FILE *f = fopen(path, "w");
	fclose(f);
}

static void test_text_and_levels(void **state)
{
	truncate_log();
	assert_int_equal(bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, path), 0);
	bw_log_info("hello %d", 42);
	bw_log_debug("hidden");
	bw_log_warn("careful");
	assert_true(bw_log_enabled(BW_LOG_INFO));
	assert_false(bw_log_enabled(BW_LOG_DEBUG));
	char *s = slurp(path);
	/* "2026-11-24T17:40:00.123Z info hello 42\n" */
	char *first = strstr(s, " info hello 42\n");
	assert_non_null(first);
	assert_int_equal(first - s, 24);
	assert_int_equal(s[10], 'T');
	assert_int_equal(s[23], 'Z');
	assert_null(strstr(s, "hidden"));
	assert_non_null(strstr(s, " warn careful\n"));
	free(s);
}

static void test_json_escaping(void **state)
{
	truncate_log();
	assert_int_equal(bw_log_open(BW_LOG_DEBUG, BW_LOG_JSON, path), 0);
	bw_log_debug("quote \" backslash \\ newline \n tab \t end");
	char *s = slurp(path);
	assert_non_null(strstr(s, "\",\"level\":\"debug\",\"msg\":\"quote \\\" backslash \\\\ "
	                          "newline \\u000a tab \\u0009 end\"}\n"));
	assert_int_equal(strncmp(s, "{\"ts\":\"", 7), 0);
	/* One record, one line. */
	assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
	free(s);
}

static void test_long_message_is_cut(void **state)
{
	truncate_log();
	assert_int_equal(bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, path), 0);
	char big[BW_LOG_LINE_MAX * 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	bw_log_info("%s", big);
	char *s = slurp(path);
	assert_non_null(strstr(s, "xxx...\n"));
	assert_true(strlen(s) < BW_LOG_LINE_MAX + 64);
	free(s);
}

static void test_reopen_after_rotation(void **state)
{
	char rotated[64];
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	truncate_log();
	assert_int_equal(bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, path), 0);
	bw_log_info("before");
	assert_int_equal(rename(path, rotated), 0);
	bw_log_info("still old");
	assert_int_equal(bw_log_reopen(), 0);
	bw_log_info("after");
	char *old = slurp(rotated), *cur = slurp(path);
	assert_non_null(strstr(old, "before"));
	assert_non_null(strstr(old, "still old"));
	assert_null(strstr(old, "after"));
	assert_non_null(strstr(cur, "after"));
	free(old);
	free(cur);
	unlink(rotated);
}

static void test_open_failure_keeps_log(void **state)
{
	assert_int_equal(bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, "/nonexistent/dir/x.log"), -ENOENT);
}

static void *writer(void *arg)
{
	for (int i = 0; i < 2000; i++)
		bw_log_info("thread %ld line %d %s", (long)(intptr_t)arg, i,
		            "padding-padding-padding-padding-padding-padding-padding");
	return NULL;
}

static void test_concurrent_lines_are_whole(void **state)
{
	pthread_t t[4];
	truncate_log();
	assert_int_equal(bw_log_open(BW_LOG_INFO, BW_LOG_TEXT, path), 0);
	for (intptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, writer, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *s = slurp(path);
	int lines = 0;
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		long th;
		int n;
		char pad[80];
		if (sscanf(strstr(line, " info ") + 6, "thread %ld line %d %79s", &th, &n, pad) !=
		            3 ||
		    strcmp(pad, "padding-padding-padding-padding-padding-padding-padding") != 0)
			fail_msg("torn line: %s", line);
		lines++;
	}
	assert_int_equal(lines, 8000);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_and_levels),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_long_message_is_cut),
		cmocka_unit_test(test_reopen_after_rotation),
		cmocka_unit_test(test_open_failure_keeps_log),
		cmocka_unit_test(test_concurrent_lines_are_whole),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
