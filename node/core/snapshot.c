/*
 * Snapshots (see snapshot.h). Saving builds each record in an arena that
 * points into the live messages where it can and copies what protobuf-c
 * needs NUL-terminated; loading turns records back into messages, sessions
 * and retained entries through the brokers' and the hub's own functions.
 */
#include "node/core/snapshot.h"

#include "cluster/store/record.h"
#include "node/core/msg.h"
#include "node/core/msgrec.h"
#include "node/core/session.h"
#include "node/core/sessrec.h"
#include "node/log.h"
#include "proto/mqtt/topic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const uint8_t MAGIC[8] = { 'B', 'W', 'S', 'N', 'A', 'P', 0, 1 };

enum { FRAME_SESSION = 1, FRAME_RETAINED = 2, FRAME_END = 0xFF };

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- saving ------------------------------------------------------------------------ */

struct saver {
	FILE *f;
	struct bw_hub *hub;
	struct bw_broker *b;
	int64_t off;
	struct bw_arena a;
	struct bw_snapshot_counts *n;
	int err;
};

static int write_frame(struct saver *sv, uint8_t kind, const uint8_t *p, size_t len)
{
	uint8_t head[5] = { kind, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
		            (uint8_t)(len >> 24) };
	if (fwrite(head, 1, sizeof(head), sv->f) != sizeof(head) ||
	    (len && fwrite(p, 1, len, sv->f) != len))
		return -EIO;
	return 0;
}

static int save_session(void *arg, const struct bw_session_info *si)
{
	struct saver *sv = arg;
	struct bw_arena *a = &sv->a;
	const char *tenant = bw_hub_tenant_name(sv->hub, si->tenant);
	StoredSession r;
	uint8_t *buf;
	size_t len;

	bw_arena_free(a);
	int rc = bw_sessrec_build(a, sv->b, si, tenant, sv->off, true, &r);
	if (rc)
		goto out;
	if ((rc = bw_record_session_encode(&r, &buf, &len)) == 0) {
		rc = write_frame(sv, FRAME_SESSION, buf, len);
		free(buf);
		sv->n->sessions++;
	} else {
		/* A session the record rules refuse is not saved: say so, go on. */
		bw_log_error("snapshot: session '%s' of tenant %s not saved: %s", r.client_id,
		             tenant, strerror(-rc));
		rc = 0;
	}
out:
	bw_arena_free(a);
	return rc;
}

struct retained_saver {
	struct saver *sv;
	const char *tenant;
	int rc;
};

static int save_retained(void *arg, const uint8_t *topic, size_t len, void *msg)
{
	struct retained_saver *rs = arg;
	struct saver *sv = rs->sv;
	struct bw_msg *m = msg;
	uint8_t *buf;
	size_t n;
	(void)topic;
	(void)len;
	if (bw_topic_is_sys(m->topic.p, m->topic.len))
		return 0; /* the node's own statistics: made afresh */
	bw_arena_free(&sv->a);
	StoredMessage *r = bw_msgrec_build(&sv->a, m, NULL, rs->tenant, sv->off, false);
	if (!r)
		return rs->rc = -ENOMEM;
	if ((rs->rc = bw_record_message_encode(r, &buf, &n)) < 0)
		return rs->rc;
	rs->rc = write_frame(sv, FRAME_RETAINED, buf, n);
	free(buf);
	sv->n->retained++;
	return rs->rc;
}

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return rc;
}

int bw_snapshot_save(const char *dir, struct bw_hub *hub, struct bw_broker *const *brokers,
                     bool local, struct bw_snapshot_counts *n, char *err, size_t cap)
{
	char path[4096], tmp[4096];
	struct saver sv = { .hub = hub, .off = bw_msgrec_wall_offset(), .n = n };
	int rc = 0;

	memset(n, 0, sizeof(*n));
	snprintf(path, sizeof(path), "%s/%s", dir, BW_SNAPSHOT_FILE);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, BW_SNAPSHOT_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(sv.f = fdopen(fd, "w"))) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return fail(err, cap, rc, "%s: %s", tmp, strerror(-rc));
	}
	if (fwrite(MAGIC, 1, sizeof(MAGIC), sv.f) != sizeof(MAGIC))
		rc = -EIO;
	for (uint32_t i = 0; local && rc == 0 && i < bw_hub_workers(hub); i++) {
		sv.b = brokers[i];
		rc = bw_broker_sessions(brokers[i], save_session, &sv);
	}
	for (uint32_t t = 0; local && rc == 0 && t < bw_hub_tenants(hub); t++) {
		struct retained_saver rs = { &sv, bw_hub_tenant_name(hub, t), 0 };
		bw_hub_retained_each(hub, t, save_retained, &rs);
		rc = rs.rc;
	}
	bw_arena_free(&sv.a);
	if (rc == 0) {
		uint8_t end[16];
		for (int i = 0; i < 8; i++) {
			end[i] = (uint8_t)(n->sessions >> (8 * i));
			end[8 + i] = (uint8_t)(n->retained >> (8 * i));
		}
		rc = write_frame(&sv, FRAME_END, end, sizeof(end));
	}
	if (rc == 0 && (fflush(sv.f) != 0 || fsync(fileno(sv.f)) != 0))
		rc = -errno;
	if (fclose(sv.f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return fail(err, cap, rc, "%s: %s", path, strerror(rc == -EIO ? EIO : -rc));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd); /* the rename itself */
		close(dfd);
	}
	return 0;
}

/* ---- loading ------------------------------------------------------------------------ */

/* Restores one session record; 1 when skipped, 0, or -errno. */
static int load_session(struct bw_hub *hub, struct bw_broker *const *brokers,
                        const StoredSession *r, int64_t off, uint64_t now)
{
	int tenant = bw_hub_tenant_add(hub, r->tenant);
	if (tenant < 0) {
		bw_log_warn("snapshot: session '%s' of tenant %s skipped: the node serves "
		            "max_tenants already",
		            r->client_id, r->tenant);
		return 1;
	}
	struct bw_session_info si = {
		.tenant = (uint32_t)tenant,
		.client_id = { (const uint8_t *)r->client_id, (uint16_t)strlen(r->client_id) },
		.expiry_s = r->session_expiry_interval_s,
		.expires_at_ms = bw_msgrec_to_mono(r->expires_at_ms, off),
	};
	if (r->will) {
		if (!(si.will = bw_msgrec_msg(r->will->message, si.tenant, off)))
			return -errno;
		si.will_delay_s = r->will->delay_interval_s;
		si.will_expiry_s = r->will->message_expiry_interval_s;
		/* The delay starts again from the restart, within the session's life. */
		si.will_at_ms = now + (uint64_t)si.will_delay_s * 1000 + 1;
		if (si.expires_at_ms && si.will_at_ms > si.expires_at_ms)
			si.will_at_ms = si.expires_at_ms;
	}
	uint32_t home = bw_hub_home(hub, si.tenant, si.client_id.p, si.client_id.len);
	struct bw_broker *b = brokers[home];
	struct bw_session *s = bw_broker_session_restore(b, &si);
	bw_msg_unref(&si.will);
	if (!s)
		return errno == EEXIST ? 1 : -errno;
	return bw_sessrec_restore(b, s, r, si.tenant, off, true, "snapshot");
}

/* Restores one retained message record; 1 when skipped, 0, or -errno. */
static int load_retained(struct bw_hub *hub, const StoredMessage *r, int64_t off, uint64_t now)
{
	int tenant = bw_hub_tenant_add(hub, r->tenant);
	if (tenant < 0)
		return 1;
	struct bw_msg *m = bw_msgrec_msg(r, (uint32_t)tenant, off);
	if (!m)
		return -errno;
	int rc = 1;
	if (!m->expires_at_ms || m->expires_at_ms > now)
		rc = bw_hub_retained_put(hub, (uint32_t)tenant, m->topic.p, m->topic.len, m);
	bw_msg_unref(&m);
	return rc;
}

int bw_snapshot_load(const char *dir, struct bw_hub *hub, struct bw_broker *const *brokers,
                     bool local, struct bw_snapshot_counts *n, char *err, size_t cap)
{
	char path[4096];
	struct stat st;
	int64_t off = bw_msgrec_wall_offset();
	uint64_t now = clock_ms(CLOCK_MONOTONIC);
	int rc = 0;

	memset(n, 0, sizeof(*n));
	snprintf(path, sizeof(path), "%s/%s", dir, BW_SNAPSHOT_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return fail(err, cap, rc, "%s: %s", path, strerror(-rc));
	}
	size_t size = (size_t)st.st_size, got = 0;
	uint8_t *buf = malloc(size ? size : 1);
	while (buf && got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != size) {
		free(buf);
		return fail(err, cap, -EIO, "%s: cannot read it whole", path);
	}
	if (size < sizeof(MAGIC) || memcmp(buf, MAGIC, sizeof(MAGIC)) != 0) {
		free(buf);
		return fail(err, cap, -EINVAL, "%s: not a Bulwark snapshot of format 1", path);
	}
	size_t at = sizeof(MAGIC);
	bool ended = false;
	while (rc >= 0 && !ended) {
		if (size - at < 5) {
			rc = fail(err, cap, -EINVAL, "%s: truncated at byte %zu (no end frame)",
			          path, at);
			break;
		}
		uint8_t kind = buf[at];
		size_t len = (size_t)buf[at + 1] | (size_t)buf[at + 2] << 8 |
		             (size_t)buf[at + 3] << 16 | (size_t)buf[at + 4] << 24;
		const uint8_t *p = buf + at + 5;
		if (len > size - at - 5) {
			rc = fail(err, cap, -EINVAL, "%s: frame at byte %zu runs past the end",
			          path, at);
			break;
		}
		if (kind == FRAME_SESSION) {
			StoredSession *r;
			if ((rc = bw_record_session_decode(p, len, &r)) == 0) {
				rc = local ? load_session(hub, brokers, r, off, now) : 1;
				bw_record_session_free(&r);
			}
			if (rc == 1)
				n->skipped++;
			else if (rc == 0)
				n->sessions++;
		} else if (kind == FRAME_RETAINED) {
			StoredMessage *r;
			if ((rc = bw_record_message_decode(p, len, &r)) == 0) {
				rc = local ? load_retained(hub, r, off, now) : 1;
				bw_record_message_free(&r);
			}
			if (rc == 1)
				n->skipped++;
			else if (rc == 0)
				n->retained++;
		} else if (kind == FRAME_END && len == 16) {
			ended = true;
		} else {
			rc = -EINVAL;
		}
		if (rc < 0)
			fail(err, cap, rc, "%s: record at byte %zu: %s", path, at,
			     rc == -EINVAL ? "invalid" : strerror(-rc));
		at += 5 + len;
	}
	free(buf);
	return rc < 0 ? rc : 0;
}
