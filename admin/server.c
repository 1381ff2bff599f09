/*
 * The admin socket server (see server.h): one thread polls the listening
 * socket, an eventfd that says "stop", and at most BW_ADMIN_CONNS_MAX
 * connections. A connection reads until it holds a whole line, answers it
 * through bw_admin_handle() and reads the next one only once the answer
 * is written, so answers come in order and what one peer can make the node
 * hold is bounded by one request and one answer.
 *
 * The peer's credentials are read once, on accept (SO_PEERCRED and
 * SO_PEERGROUPS: what they were when it connected). A peer that may not
 * use the socket gets one "denied" line and is closed, logged and audited.
 * Request lines are wiped from memory once handled: they may hold
 * passwords.
 */
#include "admin/server.h"

#include "admin/audit.h"
#include "admin/commands.h"
#include "node/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PEER_GROUPS_MAX 256

struct conn {
	int fd; /* -1: the slot is free */
	uint32_t uid;
	pid_t pid;
	char *in; /* request bytes read, not yet handled */
	size_t in_len, in_cap;
	char *out; /* the answer being written */
	size_t out_len, out_off;
	bool closing; /* close once out is written */
	bool eof;     /* the peer will send no more */
	int64_t last_ms;
};

struct bw_admin_server {
	struct bw_admin_server_cfg cfg;
	struct bw_admin_ctx ctx;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ino_t ino; /* of the socket we bound: stop removes only that one */
	int listen_fd, stop_fd;
	int64_t accept_after_ms; /* accept failed (EMFILE): try again from then on */
	pthread_t thread;
	struct conn conns[BW_ADMIN_CONNS_MAX];
};

bool bw_admin_peer_allowed(const struct bw_admin_peer *peer, uint32_t admin_uid, uint32_t admin_gid)
{
	if (peer->uid == 0)
		return true;
	if (admin_uid != BW_ADMIN_ID_NONE && peer->uid == admin_uid)
		return true;
	if (admin_gid == BW_ADMIN_ID_NONE)
		return false;
	if (peer->gid == admin_gid)
		return true;
	for (size_t i = 0; i < peer->groups_n; i++) {
		if (peer->groups[i] == admin_gid)
			return true;
	}
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the socket file ------------------------------------------------------------ */

/*
 * Removes a socket file at path that nobody serves (a node that died).
 * 0, or -EADDRINUSE (someone answers), -EEXIST (not a socket) with err.
 */
static int clear_stale(const char *path, char *err, size_t cap)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, cap, "admin_socket %s: exists and is not a socket; not replacing it",
		         path);
		return -EEXIST;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		snprintf(err, cap, "admin_socket %s: another process serves it (another node?)",
		         path);
		return -EADDRINUSE;
	}
	if (fd >= 0)
		close(fd);
	unlink(path);
	return 0;
}

/* Mode 0600, or 0660 and group admin_gid; owner admin_uid when that is set and not us. */
static int set_access(const struct bw_admin_server_cfg *cfg, const char *path, char *err,
                      size_t cap)
{
	bool group = cfg->admin_gid != BW_ADMIN_ID_NONE;
	uid_t owner = cfg->admin_uid != BW_ADMIN_ID_NONE && cfg->admin_uid != geteuid()
	                      ? (uid_t)cfg->admin_uid
	                      : (uid_t)-1;
	if (chmod(path, group ? 0660 : 0600) < 0) {
		int e = errno;
		snprintf(err, cap, "admin_socket %s: chmod: %s", path, strerror(e));
		return -e;
	}
	if ((group || owner != (uid_t)-1) &&
	    chown(path, owner, group ? (gid_t)cfg->admin_gid : (gid_t)-1) < 0) {
		int e = errno;
		snprintf(err, cap,
		         "admin_socket %s: cannot give it to %s %u: %s (the node must run as root, "
		         "or be a member of that group)",
		         path, owner != (uid_t)-1 ? "admin_uid" : "admin_gid",
		         owner != (uid_t)-1 ? cfg->admin_uid : cfg->admin_gid, strerror(e));
		return -e;
	}
	return 0;
}

/* The listening socket at s->path, its file's access set before it listens. */
static int open_socket(struct bw_admin_server *s, char *err, size_t cap)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int rc;

	memcpy(sa.sun_path, s->path, sizeof(sa.sun_path));
	if ((rc = clear_stale(s->path, err, cap)) < 0)
		return rc;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		rc = -errno;
		snprintf(err, cap, "admin_socket: socket: %s", strerror(errno));
		return rc;
	}
	/* Linux creates the file with the socket's own mode: nobody else may connect meanwhile. */
	fchmod(s->listen_fd, 0600);
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		snprintf(err, cap, "admin_socket %s: bind: %s", s->path, strerror(errno));
		return rc;
	}
	if (stat(s->path, &st) == 0)
		s->ino = st.st_ino;
	if ((rc = set_access(&s->cfg, s->path, err, cap)) < 0)
		return rc;
	if (listen(s->listen_fd, (int)BW_ADMIN_CONNS_MAX) < 0) {
		rc = -errno;
		snprintf(err, cap, "admin_socket %s: listen: %s", s->path, strerror(errno));
		return rc;
	}
	return 0;
}

/* Removes the socket file when it is still the one we bound. */
static void remove_socket(const struct bw_admin_server *s)
{
	struct stat st;
	if (s->ino && lstat(s->path, &st) == 0 && st.st_ino == s->ino)
		unlink(s->path);
}

/* ---- connections ------------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	if (c->in)
		explicit_bzero(c->in, c->in_cap);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Queues line (malloc'd, taken) and '\n' as the answer; closing: close once written. */
static void conn_answer(struct conn *c, char *line, bool closing)
{
	size_t len = line ? strlen(line) : 0;
	char *out = line ? realloc(line, len + 2) : NULL;
	if (!out) {
		free(line);
		bw_log_error("admin: out of memory: connection of uid %u closed", c->uid);
		c->closing = true;
		return;
	}
	out[len] = '\n';
	out[len + 1] = '\0';
	free(c->out);
	c->out = out;
	c->out_len = len + 1;
	c->out_off = 0;
	c->closing |= closing;
}

/* Writes what it can of the answer; false when the connection is done. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0)
			return false;
		c->out_off += (size_t)n;
		c->last_ms = now_ms();
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return !c->closing;
}

/* Handles in[0..len) and forgets it (wiped: it may hold a password). */
static void handle_line(struct bw_admin_server *s, struct conn *c, size_t len, size_t used)
{
	char *answer = bw_admin_handle(&s->ctx, c->uid, c->in, len);
	explicit_bzero(c->in, used);
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	conn_answer(c, answer, false);
}

/*
 * Handles the next whole line, when no answer is pending. At the peer's
 * end of input a last line without '\n' counts too. A line longer than
 * BW_ADMIN_LINE_MAX is answered "usage" and the connection closed.
 */
static void conn_next(struct bw_admin_server *s, struct conn *c)
{
	if (c->out || c->closing)
		return;
	char *nl = c->in_len ? memchr(c->in, '\n', c->in_len) : NULL;
	if (nl && (size_t)(nl - c->in) <= BW_ADMIN_LINE_MAX) {
		size_t len = (size_t)(nl - c->in);
		handle_line(s, c, len && c->in[len - 1] == '\r' ? len - 1 : len, len + 1);
	} else if (nl || c->in_len > BW_ADMIN_LINE_MAX) {
		explicit_bzero(c->in, c->in_len);
		c->in_len = 0;
		conn_answer(c,
		            bw_admin_error_line("usage", "a request is at most 1 MiB (1048576 "
		                                         "bytes) a line"),
		            true);
	} else if (c->eof && c->in_len) {
		handle_line(s, c, c->in_len, c->in_len);
	} else if (c->eof) {
		c->closing = true;
	}
}

/* Reads what the peer sent; false when the connection is done. */
static bool conn_read(struct conn *c)
{
	while (!c->eof && c->in_len <= BW_ADMIN_LINE_MAX) {
		if (c->in_cap - c->in_len < 4096) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
			if (cap > BW_ADMIN_LINE_MAX + 8192)
				cap = BW_ADMIN_LINE_MAX + 8192;
			char *in = malloc(cap);
			if (!in)
				return false;
			/* Not realloc: the old buffer may hold a password, wipe it. */
			if (c->in) {
				memcpy(in, c->in, c->in_len);
				explicit_bzero(c->in, c->in_cap);
				free(c->in);
			}
			c->in = in;
			c->in_cap = cap;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0)
			return false;
		c->eof = n == 0;
		c->in_len += (size_t)n;
		c->last_ms = now_ms();
		if (memchr(c->in + c->in_len - (size_t)n, '\n', (size_t)n))
			return true;
	}
	return true;
}

/* Moves c on as far as it can without waiting; false when it is done. */
static bool conn_run(struct bw_admin_server *s, struct conn *c)
{
	for (;;) {
		if (c->out && !conn_flush(c))
			return false;
		if (c->out)
			return true; /* the peer reads slowly: wait for POLLOUT */
		if (c->closing)
			return false;
		conn_next(s, c);
		if (!c->out && !c->closing)
			return true; /* wait for more input */
	}
}

static void conn_event(struct bw_admin_server *s, struct conn *c, short revents)
{
	bool alive = true;
	if (revents & POLLIN)
		alive = conn_read(c);
	else if (revents & (POLLERR | POLLHUP | POLLNVAL))
		alive = false;
	if (alive)
		alive = conn_run(s, c);
	if (!alive)
		conn_close(c);
}

/* ---- accepting --------------------------------------------------------------------- */

/* The peer's uid, gid, pid and supplementary groups (into groups[0..PEER_GROUPS_MAX)). */
static int read_peer(int fd, struct bw_admin_peer *p, uint32_t *groups)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*p = (struct bw_admin_peer){ .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
	gid_t g[PEER_GROUPS_MAX];
	len = sizeof(g);
	/* Too many groups to read (ERANGE) or an old kernel: judged by uid and gid alone. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
		p->groups_n = len / sizeof(g[0]);
		for (size_t i = 0; i < p->groups_n; i++)
			groups[i] = g[i];
		p->groups = groups;
	}
	return 0;
}

static void refuse(struct bw_admin_server *s, int fd, const struct bw_admin_peer *p)
{
	static const char why[] = "uid is not root, admin_uid or a member of admin_gid";
	char target[32];
	char *line = bw_admin_error_line("denied", "this uid may not use the admin socket");

	if (line) {
		/* One short line fits the socket's buffer; a peer that reads nothing loses it. */
		size_t len = strlen(line);
		line[len] = '\n';
		(void)!send(fd, line, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(line);
	}
	close(fd);
	bw_log_warn("admin: refused uid %u (pid %d, gid %u): %s", p->uid, (int)p->pid, p->gid, why);
	snprintf(target, sizeof(target), "pid:%d", (int)p->pid);
	struct bw_admin_audit_entry e = { .uid = p->uid,
		                          .action = "connect",
		                          .target = target,
		                          .result = "denied",
		                          .reason = why };
	bw_admin_audit_write(s->cfg.audit, &e);
}

static void admit(struct bw_admin_server *s, int fd)
{
	struct bw_admin_peer p = { 0 };
	uint32_t groups[PEER_GROUPS_MAX];
	int rc = read_peer(fd, &p, groups);

	if (rc < 0) {
		bw_log_warn("admin: cannot read a peer's credentials: %s", strerror(-rc));
		close(fd);
		return;
	}
	if (!bw_admin_peer_allowed(&p, s->cfg.admin_uid, s->cfg.admin_gid)) {
		refuse(s, fd, &p);
		return;
	}
	struct conn *c = NULL;
	for (size_t i = 0; i < BW_ADMIN_CONNS_MAX && !c; i++)
		c = s->conns[i].fd < 0 ? &s->conns[i] : NULL;
	if (!c) {
		char *line = bw_admin_error_line("unavailable", "too many admin connections");
		if (line) {
			size_t len = strlen(line);
			line[len] = '\n';
			(void)!send(fd, line, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			free(line);
		}
		bw_log_warn("admin: uid %u (pid %d) turned away: %u admin connections already",
		            p.uid, (int)p.pid, BW_ADMIN_CONNS_MAX);
		close(fd);
		return;
	}
	*c = (struct conn){ .fd = fd, .uid = p.uid, .pid = p.pid, .last_ms = now_ms() };
	bw_log_debug("admin: uid %u (pid %d) connected", p.uid, (int)p.pid);
}

static void accept_all(struct bw_admin_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) {
				bw_log_warn("admin: accept: %s; trying again in 1 s",
				            strerror(errno));
				s->accept_after_ms = now_ms() + 1000;
			}
			return;
		}
		admit(s, fd);
	}
}

/* ---- the thread ------------------------------------------------------------------- */

/* Closes connections idle for idle_ms; returns the poll timeout until the next may be. */
static int expire_idle(struct bw_admin_server *s)
{
	int64_t now = now_ms(), next = -1;
	for (size_t i = 0; i < BW_ADMIN_CONNS_MAX; i++) {
		struct conn *c = &s->conns[i];
		if (c->fd < 0)
			continue;
		int64_t left = c->last_ms + s->cfg.idle_ms - now;
		if (left <= 0) {
			bw_log_debug("admin: connection of uid %u closed: idle", c->uid);
			conn_close(c);
		} else if (next < 0 || left < next) {
			next = left;
		}
	}
	if (s->accept_after_ms) {
		int64_t left = s->accept_after_ms - now;
		if (left <= 0)
			s->accept_after_ms = 0;
		else if (next < 0 || left < next)
			next = left;
	}
	return (int)next;
}

static void *serve(void *arg)
{
	struct bw_admin_server *s = arg;
	struct pollfd fds[2 + BW_ADMIN_CONNS_MAX];
	struct conn *of[2 + BW_ADMIN_CONNS_MAX];

	for (;;) {
		int timeout = expire_idle(s);
		nfds_t n = 0;
		fds[n++] = (struct pollfd){ .fd = s->stop_fd, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = s->accept_after_ms ? -1 : s->listen_fd,
			                    .events = POLLIN };
		for (size_t i = 0; i < BW_ADMIN_CONNS_MAX; i++) {
			struct conn *c = &s->conns[i];
			if (c->fd < 0)
				continue;
			of[n] = c;
			fds[n++] =
			        (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		}
		if (poll(fds, n, timeout) < 0 && errno != EINTR) {
			bw_log_error("admin: poll: %s; the admin socket stops", strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		for (nfds_t i = 2; i < n; i++) {
			if (fds[i].revents)
				conn_event(s, of[i], fds[i].revents);
		}
		if (fds[1].revents)
			accept_all(s);
	}
	for (size_t i = 0; i < BW_ADMIN_CONNS_MAX; i++)
		conn_close(&s->conns[i]);
	return NULL;
}

static void server_free(struct bw_admin_server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s);
}

int bw_admin_server_start(const struct bw_admin_server_cfg *cfg, struct bw_admin_server **out,
                          char *err, size_t cap)
{
	struct bw_admin_server *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(err, cap, "admin_socket: out of memory");
		return -ENOMEM;
	}
	s->cfg = *cfg;
	if (!s->cfg.idle_ms)
		s->cfg.idle_ms = BW_ADMIN_IDLE_MS;
	s->ctx = (struct bw_admin_ctx){ .tenancy = cfg->tenancy,
		                        .node = cfg->node,
		                        .audit = cfg->audit };
	s->listen_fd = s->stop_fd = -1;
	for (size_t i = 0; i < BW_ADMIN_CONNS_MAX; i++)
		s->conns[i].fd = -1;
	if (strlen(cfg->path) >= sizeof(s->path)) {
		snprintf(err, cap, "admin_socket %s: longer than %zu bytes (a Unix socket's limit)",
		         cfg->path, sizeof(s->path) - 1);
		server_free(s);
		return -ENAMETOOLONG;
	}
	memcpy(s->path, cfg->path, strlen(cfg->path) + 1);
	s->cfg.path = s->path;
	if ((s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		snprintf(err, cap, "admin_socket: eventfd: %s", strerror(-rc));
	} else if ((rc = open_socket(s, err, cap)) == 0 &&
	           (rc = -pthread_create(&s->thread, NULL, serve, s)) < 0) {
		snprintf(err, cap, "admin_socket: cannot start its thread: %s", strerror(-rc));
	}
	if (rc < 0) {
		remove_socket(s);
		server_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void bw_admin_server_stop(struct bw_admin_server **sp)
{
	struct bw_admin_server *s = sp ? *sp : NULL;
	if (!s)
		return;
	uint64_t one = 1;
	(void)!write(s->stop_fd, &one, sizeof(one));
	pthread_join(s->thread, NULL);
	remove_socket(s);
	server_free(s);
	*sp = NULL;
}
