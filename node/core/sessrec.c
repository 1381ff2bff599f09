/*
 * Sessions as stored records (see sessrec.h).
 */
#include "node/core/sessrec.h"

#include "cluster/store/record.h"
#include "node/core/msg.h"
#include "node/core/session.h"
#include "node/log.h"
#include "proto/mqtt/topic.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- building ---------------------------------------------------------------------- */

struct builder {
	struct bw_arena *a;
	StoredSession *r;
	const char *tenant;
	int64_t off;
};

static int add_sub(void *arg, const uint8_t *filter, size_t len, const struct bw_sub_opts *o)
{
	struct builder *bd = arg;
	struct bw_arena *a = bd->a;
	StoredSession *r = bd->r;
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

static StoredInflight *inflight_record(struct builder *bd, uint16_t id, bool outgoing,
                                       const struct bw_inflight *f)
{
	StoredInflight *r = bw_arena_alloc(bd->a, sizeof(*r));
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
	r->sent_at_ms = bw_msgrec_to_wall(f->sent_at_ms, bd->off);
	r->message = bw_msgrec_build(bd->a, f->d.msg, &f->d, bd->tenant, bd->off, true);
	return r->message ? r : NULL;
}

int bw_sessrec_build(struct bw_arena *a, struct bw_broker *b, const struct bw_session_info *si,
                     const char *tenant, int64_t off, bool messages, StoredSession *r)
{
	struct builder bd = { .a = a, .r = r, .tenant = tenant, .off = off };
	int rc;

	stored_session__init(r);
	r->has_version = true;
	r->version = BW_RECORD_VERSION;
	r->tenant = (char *)tenant;
	r->client_id = bw_arena_str(a, si->client_id.p, si->client_id.len);
	r->has_protocol_version = true;
	r->protocol_version = 5;
	r->has_session_expiry_interval_s = true;
	r->session_expiry_interval_s = si->expiry_s;
	if (si->expires_at_ms) {
		r->has_expires_at_ms = true;
		r->expires_at_ms = bw_msgrec_to_wall(si->expires_at_ms, off);
	}
	if ((rc = bw_broker_session_subs(b, si, add_sub, &bd)))
		return rc;
	if (si->will) {
		StoredWill *w = bw_arena_alloc(a, sizeof(*w));
		if (w) {
			stored_will__init(w);
			w->message = bw_msgrec_build(a, si->will, NULL, tenant, off, true);
			if (w->message)
				w->message->has_expiry_at_ms = false; /* its interval, below */
			w->has_delay_interval_s = true;
			w->delay_interval_s = si->will_delay_s;
			if (si->will_expiry_s) {
				w->has_message_expiry_interval_s = true;
				w->message_expiry_interval_s = si->will_expiry_s;
			}
			r->will = w;
		}
	}
	const uint16_t *in;
	uint32_t n_in = bw_session_inbound_ids(si->state, &in);
	uint32_t n_out = messages ? bw_session_inflight(si->state) : 0;
	uint32_t n_q = messages ? bw_session_queued(si->state) : 0;
	r->inflight = bw_arena_alloc(a, (n_in + n_out + 1) * sizeof(*r->inflight));
	r->offline_queue = bw_arena_alloc(a, (n_q + 1) * sizeof(*r->offline_queue));
	if (!r->inflight || !r->offline_queue)
		return -ENOMEM;
	uint32_t cur = 0;
	const struct bw_inflight *f;
	while (messages && (f = bw_session_inflight_at(si->state, &cur)) != NULL) {
		if (!(r->inflight[r->n_inflight++] = inflight_record(&bd, f->packet_id, true, f)))
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < n_in; i++) {
		if (!(r->inflight[r->n_inflight++] = inflight_record(&bd, in[i], false, NULL)))
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < n_q; i++) {
		const struct bw_delivery *d = bw_session_queued_at(si->state, i);
		if (!(r->offline_queue[r->n_offline_queue++] =
		              bw_msgrec_build(a, d->msg, d, tenant, off, true)))
			return -ENOMEM;
	}
	r->has_next_packet_id = true;
	r->next_packet_id = bw_session_next_id(si->state);
	return a->failed ? -ENOMEM : 0;
}

/* ---- restoring --------------------------------------------------------------------- */

struct bw_delivery bw_sessrec_delivery(struct bw_msg *m, const StoredMessage *r)
{
	struct bw_delivery d = { .msg = m, .qos = (uint8_t)r->qos, .retain = r->retain };
	for (size_t i = 0; i < r->n_subscription_identifiers && i < BW_DELIVERY_SUB_IDS; i++)
		d.sub_ids[d.n_sub_ids++] = r->subscription_identifiers[i];
	return d;
}

static void restore_subs(struct bw_broker *b, struct bw_session *s, const StoredSession *r,
                         const char *prefix)
{
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
			bw_log_warn("%s: session '%s': subscription '%s' not restored: %s", prefix,
			            r->client_id, f, strerror(-rc));
	}
}

int bw_sessrec_restore(struct bw_broker *b, struct bw_session *s, const StoredSession *r,
                       uint32_t tenant, int64_t off, bool messages, const char *prefix)
{
	restore_subs(b, s, r, prefix);
	for (size_t i = 0; i < r->n_inflight; i++) {
		const StoredInflight *f = r->inflight[i];
		int rc;
		if (f->direction == STORED_INFLIGHT__DIRECTION__INCOMING) {
			rc = bw_session_inbound_qos2(s, (uint16_t)f->packet_id) < 0 ? -ENOBUFS : 0;
		} else if (!messages) {
			continue;
		} else if (!f->message) {
			rc = -EINVAL; /* PUBREC_RECEIVED without its message: we always save it */
		} else {
			struct bw_msg *m = bw_msgrec_msg(f->message, tenant, off);
			if (!m)
				return -errno;
			struct bw_delivery d = bw_sessrec_delivery(m, f->message);
			rc = bw_session_restore(s, &d, (uint16_t)f->packet_id,
			                        f->state == STORED_INFLIGHT__STATE__PUBREC_RECEIVED
			                                ? BW_INFLIGHT_RELEASED
			                                : BW_INFLIGHT_PUBLISHED,
			                        bw_msgrec_to_mono(f->sent_at_ms, off), 0);
			bw_msg_unref(&m);
		}
		if (rc < 0)
			bw_log_warn("%s: session '%s': inflight packet %u not restored: %s", prefix,
			            r->client_id, f->packet_id, strerror(-rc));
	}
	for (size_t i = 0; messages && i < r->n_offline_queue; i++) {
		struct bw_msg *m = bw_msgrec_msg(r->offline_queue[i], tenant, off);
		if (!m)
			return -errno;
		struct bw_delivery d = bw_sessrec_delivery(m, r->offline_queue[i]);
		int rc = bw_session_enqueue(s, &d);
		bw_msg_unref(&m);
		if (rc < 0)
			return rc;
	}
	if (r->next_packet_id)
		bw_session_restore(s, NULL, 0, 0, 0, (uint16_t)r->next_packet_id);
	return 0;
}
