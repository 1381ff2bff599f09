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
	StoredSession *rec;
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

static int save_sub(void *arg, const uint8_t *filter, size_t len, const struct bw_sub_opts *o)
{
	struct saver *sv = arg;
	struct bw_arena *a = &sv->a;
	StoredSession *r = sv->rec;
	StoredSubscription *s = bw_arena_alloc(a, sizeof(*s));
	StoredSubscription **v = bw_arena_alloc(a, (r->n_subscriptions + 1) * sizeof(*v));
	if (!s || !v)
		return -ENOMEM;
	stored_subscription__init(s);
	struct bw_topic_share sh;
	if (bw_topic_share_split(filter, len, &sh)) {
		s->share_group = bw_arena_str(a, sh.group, sh.group_len);
		s->filter = bw_arena_str(a, sh.filter, sh.filter_len);
	} else {
		s->filter = bw_arena_str(a, filter, len);
	}
	s->has_qos = s->has_no_local = s->has_retain_as_published = true;
	s->qos = o->qos;
	s->no_local = o->no_local;
	s->retain_as_published = o->retain_as_published;
	s->has_retain_handling = true;
	s->retain_handling = o->retain_handling;
	if (o->sub_id) {
		s->has_subscription_identifier = true;
		s->subscription_identifier = o->sub_id;
	}
	if (r->n_subscriptions)
		memcpy(v, r->subscriptions, r->n_subscriptions * sizeof(*v));
	v[r->n_subscriptions++] = s;
	r->subscriptions = v;
	return a->failed ? -ENOMEM : 0;
}

static StoredInflight *inflight_record(struct saver *sv, const char *tenant, uint16_t id,
                                       bool outgoing, const struct bw_inflight *f)
{
	StoredInflight *r = bw_arena_alloc(&sv->a, sizeof(*r));
	if (!r)
		return NULL;
	stored_inflight__init(r);
	r->has_packet_id = r->has_direction = r->has_state = true;
	r->packet_id = id;
	if (!outgoing) {
		r->direction = STORED_INFLIGHT__DIRECTION__INCOMING;
		r->state = STORED_INFLIGHT__STATE__PUBREC_SENT;
		return r;
	}
	r->direction = STORED_INFLIGHT__DIRECTION__OUTGOING;
	r->state = f->state == BW_INFLIGHT_RELEASED ? STORED_INFLIGHT__STATE__PUBREC_RECEIVED
	                                            : STORED_INFLIGHT__STATE__PUBLISH_SENT;
	r->has_sent_at_ms = true;
	r->sent_at_ms = bw_msgrec_to_wall(f->sent_at_ms, sv->off);
	r->message = bw_msgrec_build(&sv->a, f->d.msg, &f->d, tenant, sv->off, true);
	return r->message ? r : NULL;
}

static int save_session(void *arg, const struct bw_session_info *si)
{
	struct saver *sv = arg;
	struct bw_arena *a = &sv->a;
	const char *tenant = bw_hub_tenant_name(sv->hub, si->tenant);
	StoredSession r = STORED_SESSION__INIT;
	int rc;

	bw_arena_free(a);
	sv->rec = &r;
	r.has_version = true;
	r.version = BW_RECORD_VERSION;
	r.tenant = (char *)tenant;
	r.client_id = bw_arena_str(a, si->client_id.p, si->client_id.len);
	r.has_protocol_version = true;
	r.protocol_version = 5;
	r.has_session_expiry_interval_s = true;
	r.session_expiry_interval_s = si->expiry_s;
	if (si->expires_at_ms) {
		r.has_expires_at_ms = true;
		r.expires_at_ms = bw_msgrec_to_wall(si->expires_at_ms, sv->off);
	}
	if ((rc = bw_broker_session_subs(sv->b, si, save_sub, sv)))
		goto out;
	if (si->will) {
		StoredWill *w = bw_arena_alloc(a, sizeof(*w));
		if (w) {
			stored_will__init(w);
			w->message = bw_msgrec_build(a, si->will, NULL, tenant, sv->off, true);
			if (w->message)
				w->message->has_expiry_at_ms = false; /* its interval, below */
			w->has_delay_interval_s = true;
			w->delay_interval_s = si->will_delay_s;
			if (si->will_expiry_s) {
				w->has_message_expiry_interval_s = true;
				w->message_expiry_interval_s = si->will_expiry_s;
			}
			r.will = w;
		}
	}
	const uint16_t *in;
	uint32_t n_in = bw_session_inbound_ids(si->state, &in);
	uint32_t n_out = bw_session_inflight(si->state), n_q = bw_session_queued(si->state);
	r.inflight = bw_arena_alloc(a, (n_in + n_out + 1) * sizeof(*r.inflight));
	r.offline_queue = bw_arena_alloc(a, (n_q + 1) * sizeof(*r.offline_queue));
	if (!r.inflight || !r.offline_queue) {
		rc = -ENOMEM;
		goto out;
	}
	uint32_t cur = 0;
	const struct bw_inflight *f;
	while ((f = bw_session_inflight_at(si->state, &cur)) != NULL) {
		if (!(r.inflight[r.n_inflight++] =
		              inflight_record(sv, tenant, f->packet_id, true, f))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = 0; i < n_in; i++) {
		if (!(r.inflight[r.n_inflight++] =
		              inflight_record(sv, tenant, in[i], false, NULL))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = 0; i < n_q; i++) {
		const struct bw_delivery *d = bw_session_queued_at(si->state, i);
		if (!(r.offline_queue[r.n_offline_queue++] =
		              bw_msgrec_build(a, d->msg, d, tenant, sv->off, true))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	r.has_next_packet_id = true;
	r.next_packet_id = bw_session_next_id(si->state);
	uint8_t *buf;
	size_t len;
	if (a->failed) {
		rc = -ENOMEM;
		goto out;
	}
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
                     bool retained, struct bw_snapshot_counts *n, char *err, size_t cap)
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
	for (uint32_t i = 0; rc == 0 && i < bw_hub_workers(hub); i++) {
		sv.b = brokers[i];
		rc = bw_broker_sessions(brokers[i], save_session, &sv);
	}
	for (uint32_t t = 0; retained && rc == 0 && t < bw_hub_tenants(hub); t++) {
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

static struct bw_delivery delivery_of(struct bw_msg *m, const StoredMessage *r)
{
	struct bw_delivery d = { .msg = m, .qos = (uint8_t)r->qos, .retain = r->retain };
	for (size_t i = 0; i < r->n_subscription_identifiers && i < BW_DELIVERY_SUB_IDS; i++)
		d.sub_ids[d.n_sub_ids++] = r->subscription_identifiers[i];
	return d;
}

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
	for (size_t i = 0; i < r->n_subscriptions; i++) {
		const StoredSubscription *sub = r->subscriptions[i];
		char f[BW_RECORD_STRING_MAX + 16];
		int n = sub->share_group && sub->share_group[0]
		                ? snprintf(f, sizeof(f), "$share/%s/%s", sub->share_group,
		                           sub->filter)
		                : snprintf(f, sizeof(f), "%s", sub->filter);
		struct bw_sub_opts o = { .qos = (uint8_t)sub->qos,
			                 .no_local = sub->no_local,
			                 .retain_as_published = sub->retain_as_published,
			                 .retain_handling = (uint8_t)sub->retain_handling,
			                 .sub_id = sub->subscription_identifier };
		int rc = n > 0 && (size_t)n < sizeof(f)
		                 ? bw_broker_sub_restore(b, s, (const uint8_t *)f, (size_t)n, &o)
		                 : -EINVAL;
		if (rc < 0)
			bw_log_warn("snapshot: session '%s': subscription '%s' not restored: %s",
			            r->client_id, f, strerror(-rc));
	}
	for (size_t i = 0; i < r->n_inflight; i++) {
		const StoredInflight *f = r->inflight[i];
		int rc;
		if (f->direction == STORED_INFLIGHT__DIRECTION__INCOMING) {
			rc = bw_session_inbound_qos2(s, (uint16_t)f->packet_id) < 0 ? -ENOBUFS : 0;
		} else if (!f->message) {
			rc = -EINVAL; /* PUBREC_RECEIVED without its message: we always save it */
		} else {
			struct bw_msg *m = bw_msgrec_msg(f->message, si.tenant, off);
			if (!m)
				return -errno;
			struct bw_delivery d = delivery_of(m, f->message);
			rc = bw_session_restore(s, &d, (uint16_t)f->packet_id,
			                        f->state == STORED_INFLIGHT__STATE__PUBREC_RECEIVED
			                                ? BW_INFLIGHT_RELEASED
			                                : BW_INFLIGHT_PUBLISHED,
			                        bw_msgrec_to_mono(f->sent_at_ms, off), 0);
			bw_msg_unref(&m);
		}
		if (rc < 0)
			bw_log_warn("snapshot: session '%s': inflight packet %u not restored: %s",
			            r->client_id, f->packet_id, strerror(-rc));
	}
	for (size_t i = 0; i < r->n_offline_queue; i++) {
		struct bw_msg *m = bw_msgrec_msg(r->offline_queue[i], si.tenant, off);
		if (!m)
			return -errno;
		struct bw_delivery d = delivery_of(m, r->offline_queue[i]);
		int rc = bw_session_enqueue(s, &d);
		bw_msg_unref(&m);
		if (rc < 0)
			return rc;
	}
	if (r->next_packet_id)
		bw_session_restore(s, NULL, 0, 0, 0, (uint16_t)r->next_packet_id);
	return 0;
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
                     bool retained, struct bw_snapshot_counts *n, char *err, size_t cap)
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
				rc = load_session(hub, brokers, r, off, now);
				bw_record_session_free(&r);
			}
			if (rc == 1)
				n->skipped++;
			else if (rc == 0)
				n->sessions++;
		} else if (kind == FRAME_RETAINED) {
			StoredMessage *r;
			if ((rc = bw_record_message_decode(p, len, &r)) == 0) {
				rc = retained ? load_retained(hub, r, off, now) : 1;
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
