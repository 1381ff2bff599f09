/*
 * bulwarkctl's exchange with the admin socket (see ctl_conn.h). The socket
 * is non-blocking and every wait is a poll() against one deadline, so a node
 * that accepts and then hangs costs the operator timeout_ms at most.
 */
#include "admin/ctl_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for ev. Returns 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = ev };
		int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Connects fd to addr. A Unix socket connects at once or fails with EAGAIN
 * when the listener's backlog is full; that is retried every 10 ms until
 * the deadline.
 */
static int connect_by(int fd, const struct sockaddr_un *addr, int64_t deadline)
{
	while (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			int rc = wait_fd(fd, POLLOUT, deadline), e = 0;
			socklen_t len = sizeof(e);
			if (rc < 0)
				return rc;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				return -errno;
			return -e;
		}
		if (errno != EAGAIN)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		poll(NULL, 0, 10);
	}
	return 0;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		int rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Grows *buf to hold at least want bytes. Returns 0 or -ENOMEM. */
static int grow(char **buf, size_t *cap, size_t want)
{
	size_t n = *cap ? *cap : 4096;

	while (n < want)
		n *= 2;
	if (n == *cap)
		return 0;
	char *p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/*
 * Reads up to the first newline: at most BW_CTL_LINE_MAX bytes before it.
 * Returns 0 and *line (malloc'd, NUL-terminated, newline stripped), or
 * -ECONNRESET (closed before a newline), -EMSGSIZE, -ETIMEDOUT, -ENOMEM,
 * -errno.
 */
static int read_line(int fd, int64_t deadline, char **line)
{
	char *buf = NULL, *nl = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	while (!nl) {
		if (len > BW_CTL_LINE_MAX) {
			rc = -EMSGSIZE;
			break;
		}
		rc = grow(&buf, &cap,
		          len + 4096 > BW_CTL_LINE_MAX + 2 ? BW_CTL_LINE_MAX + 2 : len + 4096);
		if (rc < 0)
			break;
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			nl = memchr(buf + len, '\n', (size_t)n);
			len += (size_t)n;
		} else if (n == 0) {
			rc = -ECONNRESET;
		} else if (errno == EAGAIN) {
			rc = wait_fd(fd, POLLIN, deadline);
		} else if (errno != EINTR) {
			rc = -errno;
		}
		if (rc < 0)
			break;
	}
	if (rc == 0 && (size_t)(nl - buf) > BW_CTL_LINE_MAX)
		rc = -EMSGSIZE;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*nl = '\0';
	*line = buf;
	return 0;
}

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int exchange(int fd, const char *path, const char *req, size_t req_len, int64_t deadline,
                    int timeout_ms, char **reply, char *err, size_t errlen)
{
	int rc = send_all(fd, req, req_len, deadline);

	if (rc == 0)
		rc = send_all(fd, "\n", 1, deadline);
	if (rc == -ETIMEDOUT)
		return fail(rc, err, errlen, "%s: no answer within %d s", path, timeout_ms / 1000);
	if (rc < 0) {
		/* A node that refuses us (denied, busy) answers and closes before
		 * it reads: its answer may be waiting even though the write failed. */
		int wrc = rc;
		if ((rc == -EPIPE || rc == -ECONNRESET) && read_line(fd, deadline, reply) == 0)
			return 0;
		return fail(wrc, err, errlen, "cannot write to %s: %s", path, strerror(-wrc));
	}
	rc = read_line(fd, deadline, reply);
	if (rc == -ETIMEDOUT)
		return fail(rc, err, errlen, "%s: no answer within %d s", path, timeout_ms / 1000);
	if (rc == -EMSGSIZE)
		return fail(rc, err, errlen, "%s: the answer is over 1 MiB", path);
	if (rc == -ECONNRESET)
		return fail(rc, err, errlen, "%s: the node closed the connection without answering",
		            path);
	if (rc < 0)
		return fail(rc, err, errlen, "cannot read from %s: %s", path, strerror(-rc));
	return 0;
}

int bw_ctl_conn_call(const char *path, const char *req, size_t req_len, int timeout_ms,
                     char **reply, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + timeout_ms;

	*reply = NULL;
	if (strlen(path) >= sizeof(addr.sun_path))
		return fail(-ENAMETOOLONG, err, errlen, "%s: socket path longer than %zu bytes",
		            path, sizeof(addr.sun_path) - 1);
	if (req_len > BW_CTL_LINE_MAX)
		return fail(-EMSGSIZE, err, errlen, "the request is over 1 MiB");
	memcpy(addr.sun_path, path, strlen(path));

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(-errno, err, errlen, "socket: %s", strerror(errno));
	int rc = connect_by(fd, &addr, deadline);
	if (rc < 0)
		fail(rc, err, errlen, "cannot connect to %s: %s", path, strerror(-rc));
	else
		rc = exchange(fd, path, req, req_len, deadline, timeout_ms, reply, err, errlen);
	close(fd);
	return rc;
}
