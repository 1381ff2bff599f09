/*
 * The admin audit log (see audit.h): lines built with jansson, written to
 * the audit file with one write(2) each (O_APPEND), or to the node's log.
 * The descriptor is swapped under a mutex on reopen; writers hold it only
 * for the write itself.
 */
#include "admin/audit.h"

#include "node/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bw_admin_audit {
	pthread_mutex_t mu;
	int fd;     /* -1: the node's log */
	char *path; /* NULL: the node's log */
};

static int open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int bw_admin_audit_open(const char *path, struct bw_admin_audit **out, char *err, size_t cap)
{
	struct bw_admin_audit *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, cap, "audit_log: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->fd = -1;
	if (path && *path) {
		int fd = open_file(path);
		a->path = strdup(path);
		if (fd < 0 || !a->path) {
			int rc = fd < 0 ? fd : -ENOMEM;
			snprintf(err, cap, "audit_log %s: %s", path, strerror(-rc));
			if (fd >= 0)
				close(fd);
			bw_admin_audit_close(&a);
			return rc;
		}
		a->fd = fd;
	}
	*out = a;
	return 0;
}

void bw_admin_audit_time(char *buf, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	if (snprintf(buf, cap, "%s.%03dZ", sec, (int)(ts.tv_nsec / 1000000)) >= (int)cap)
		buf[0] = '\0'; /* cap is at least 25: never */
}

/* The entry as one JSON object (a new reference), or NULL when out of memory. */
static json_t *entry_json(const struct bw_admin_audit_entry *e)
{
	char when[40], actor[32];

	bw_admin_audit_time(when, sizeof(when));
	if (e->uid == BW_ADMIN_ACTOR_SYSTEM)
		snprintf(actor, sizeof(actor), "system");
	else
		snprintf(actor, sizeof(actor), "uid:%u", e->uid);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", when, "actor", actor,
	                 "tenant", e->tenant ? e->tenant : "", "action", e->action ? e->action : "",
	                 "target", e->target ? e->target : "", "result", e->result ? e->result : "",
	                 "reason", e->reason ? e->reason : "");
}

/* Writes all of line[0..len) to fd; 0 or -errno. */
static int write_all(int fd, const char *line, size_t len)
{
	while (len) {
		ssize_t n = write(fd, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		line += n;
		len -= (size_t)n;
	}
	return 0;
}

void bw_admin_audit_write(struct bw_admin_audit *a, const struct bw_admin_audit_entry *e)
{
	if (!a)
		return;
	json_t *j = entry_json(e);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text) {
		bw_log_error("audit: out of memory: %s %s not audited", e->action, e->target);
		return;
	}
	pthread_mutex_lock(&a->mu);
	int rc = -EBADF;
	if (a->fd >= 0) {
		size_t len = strlen(text);
		text[len] = '\n'; /* json_dumps leaves room: the NUL becomes the newline */
		rc = write_all(a->fd, text, len + 1);
		text[len] = '\0';
	}
	pthread_mutex_unlock(&a->mu);
	if (!a->path)
		bw_log_info("audit: %s", text);
	else if (rc < 0)
		bw_log_error("audit: %s: %s; the line: %s", a->path, strerror(-rc), text);
	free(text);
}

int bw_admin_audit_reopen(struct bw_admin_audit *a)
{
	if (!a || !a->path)
		return 0;
	int fd = open_file(a->path);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&a->mu);
	int old = a->fd;
	a->fd = fd;
	pthread_mutex_unlock(&a->mu);
	if (old >= 0)
		close(old);
	return 0;
}

void bw_admin_audit_close(struct bw_admin_audit **a)
{
	if (!a || !*a)
		return;
	if ((*a)->fd >= 0)
		close((*a)->fd);
	pthread_mutex_destroy(&(*a)->mu);
	free((*a)->path);
	free(*a);
	*a = NULL;
}
