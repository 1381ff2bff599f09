/*
 * The node's log (see log.h). bw_log_reopen() swaps the file under running
 * threads with dup2(2) onto the same descriptor: a write in progress
 * finishes on the old file (a record may land in the rotated file; none is
 * lost or torn), and the descriptor is never closed under a writer, whose
 * number the kernel could otherwise hand to a new socket before the write.
 */
#include "node/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static atomic_int log_fd = 2;
static int log_level = BW_LOG_INFO;
static int log_json;
static char log_path[4096];
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;

static int open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return fd < 0 ? -errno : fd;
}

int bw_log_open(enum bw_log_level level, enum bw_log_format format, const char *path)
{
	log_level = (int)level;
	log_json = format == BW_LOG_JSON;
	if (!path || !*path) {
		log_path[0] = 0;
		return 0;
	}
	if (strlen(path) >= sizeof(log_path))
		return -ENAMETOOLONG;
	int fd = open_file(path);
	if (fd < 0)
		return fd;
	snprintf(log_path, sizeof(log_path), "%s", path);
	int old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	return 0;
}

int bw_log_reopen(void)
{
	int rc = 0;

	pthread_mutex_lock(&reopen_lock);
	if (log_path[0]) {
		int fd = open_file(log_path);
		if (fd < 0) {
			rc = fd;
		} else {
			int cur = atomic_load(&log_fd);
			if (cur > 2) {
				if (dup2(fd, cur) < 0)
					rc = -errno;
				close(fd);
			} else {
				atomic_store(&log_fd, fd);
			}
		}
	}
	pthread_mutex_unlock(&reopen_lock);
	return rc;
}

int bw_log_enabled(int level)
{
	return level <= log_level;
}

/* Appends s to buf[*n..cap) escaped for a JSON string. */
static void json_escape(char *buf, size_t cap, size_t *n, const char *s)
{
	for (; *s && *n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)c;
		} else if (c < 0x20) {
			*n += (size_t)snprintf(buf + *n, cap - *n, "\\u%04x", c);
		} else {
			buf[(*n)++] = (char)c;
		}
	}
}

void bw_logv(int level, const char *fmt, va_list ap)
{
	char msg[BW_LOG_LINE_MAX], line[BW_LOG_LINE_MAX * 2 + 128], ts[40];
	struct timespec now;
	struct tm tm;

	if (level > log_level || level < 0)
		return;
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m >= (int)sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t t = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + t, sizeof(ts) - t, ".%03ldZ", now.tv_nsec / 1000000);

	size_t n;
	if (log_json) {
		n = (size_t)snprintf(line, sizeof(line),
		                     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
		                     level_names[level]);
		json_escape(line, sizeof(line) - 3, &n, msg);
		line[n++] = '"';
		line[n++] = '}';
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s %s %s", ts, level_names[level], msg);
		if (n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* One write a record; a short write to a full disk is not retried. */
	ssize_t w = write(atomic_load(&log_fd), line, n);
	(void)w;
}

void bw_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bw_logv(level, fmt, ap);
	va_end(ap);
}
