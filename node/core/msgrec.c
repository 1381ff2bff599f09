/*
 * Messages as stored records (see msgrec.h): the conversions the snapshot
 * and the Redis store share.
 */
#include "node/core/msgrec.h"

#include "cluster/store/record.h"
#include "proto/mqtt/props.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- clocks ------------------------------------------------------------------ */

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wall minus monotonic, now: what turns one clock into the other. */
int64_t bw_msgrec_wall_offset(void)
{
	return (int64_t)(clock_ms(CLOCK_REALTIME) - clock_ms(CLOCK_MONOTONIC));
}

uint64_t bw_msgrec_to_wall(uint64_t mono, int64_t off)
{
	return mono ? (uint64_t)((int64_t)mono + off) : 0;
}

/* A monotonic deadline from a saved wall-clock one; 1 when it has passed. */
uint64_t bw_msgrec_to_mono(uint64_t wall, int64_t off)
{
	if (!wall)
		return 0;
	int64_t m = (int64_t)wall - off;
	return m > 1 ? (uint64_t)m : 1;
}

/* ---- an arena for building records ------------------------------------------------ */

void *bw_arena_alloc(struct bw_arena *a, size_t size)
{
	if (a->failed)
		return NULL;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		void **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->failed = true;
			return NULL;
		}
		a->v = v;
		a->cap = cap;
	}
	void *p = calloc(1, size ? size : 1);
	if (!p) {
		a->failed = true;
		return NULL;
	}
	return a->v[a->n++] = p;
}

char *bw_arena_str(struct bw_arena *a, const void *p, size_t len)
{
	char *s = bw_arena_alloc(a, len + 1);
	if (s && len)
		memcpy(s, p, len);
	return s;
}

void bw_arena_free(struct bw_arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* ---- messages ⇄ records -------------------------------------------------------------- */

/*
 * The record of m as delivered with qos, retain and the subscription ids
 * (NULL d: the message itself, e.g. retained or a will).
 */
StoredMessage *bw_msgrec_build(struct bw_arena *a, const struct bw_msg *m,
                               const struct bw_delivery *d, const char *tenant, int64_t off,
                               bool nested)
{
	StoredMessage *r = bw_arena_alloc(a, sizeof(*r));
	if (!r)
		return NULL;
	stored_message__init(r);
	if (!nested) {
		r->has_version = true;
		r->version = BW_RECORD_VERSION;
	}
	r->tenant = (char *)tenant;
	r->topic = (char *)m->topic.p; /* NUL-terminated by bw_msg */
	r->has_payload = true;
	r->payload.len = m->payload.len;
	r->payload.data = (uint8_t *)m->payload.p;
	r->has_qos = true;
	r->qos = d ? d->qos : m->qos;
	r->has_retain = true;
	r->retain = d ? d->retain : m->retain;
	if (m->expires_at_ms) {
		r->has_expiry_at_ms = true;
		r->expiry_at_ms = bw_msgrec_to_wall(m->expires_at_ms, off);
	}
	if (d && d->n_sub_ids) {
		r->n_subscription_identifiers = d->n_sub_ids;
		r->subscription_identifiers = (uint32_t *)d->sub_ids;
	}
	if (m->props.len == 0)
		return r;
	struct bw_props p;
	if (bw_props_decode(m->props.p, m->props.len, BW_PUBLISH, &p, NULL) < 0)
		return r; /* the broker built these bytes; cannot happen */
	StoredProperties *sp = bw_arena_alloc(a, sizeof(*sp));
	if (!sp)
		return NULL;
	stored_properties__init(sp);
	r->properties = sp;
	if (p.has & BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT)) {
		sp->has_payload_format_indicator = true;
		sp->payload_format_indicator = p.payload_format;
	}
	if (p.has & BW_PROP_BIT(BW_PROP_CONTENT_TYPE))
		sp->content_type = bw_arena_str(a, p.content_type.p, p.content_type.len);
	if (p.has & BW_PROP_BIT(BW_PROP_RESPONSE_TOPIC))
		sp->response_topic = bw_arena_str(a, p.response_topic.p, p.response_topic.len);
	if (p.has & BW_PROP_BIT(BW_PROP_CORRELATION_DATA)) {
		sp->has_correlation_data = true;
		sp->correlation_data.len = p.correlation_data.len;
		sp->correlation_data.data = (uint8_t *)p.correlation_data.p;
	}
	if (p.user_count) {
		sp->user_properties =
		        bw_arena_alloc(a, p.user_count * sizeof(*sp->user_properties));
		struct bw_str k, v;
		uint32_t at = 0;
		while (sp->user_properties && sp->n_user_properties < p.user_count &&
		       bw_props_next_user(&p, &at, &k, &v)) {
			StoredUserProperty *u = bw_arena_alloc(a, sizeof(*u));
			if (!u)
				return NULL;
			stored_user_property__init(u);
			u->key = bw_arena_str(a, k.p, k.len);
			u->value = bw_arena_str(a, v.p, v.len);
			sp->user_properties[sp->n_user_properties++] = u;
		}
	}
	return a->failed ? NULL : r;
}

/*
 * A message from a (checked) record, with the record's qos and retain;
 * NULL with errno set.
 */
struct bw_msg *bw_msgrec_msg(const StoredMessage *r, uint32_t tenant, int64_t off)
{
	struct bw_props p = { 0 };
	uint8_t *users = NULL;
	const StoredProperties *sp = r->properties;
	if (sp) {
		if (sp->has_payload_format_indicator) {
			p.has |= BW_PROP_BIT(BW_PROP_PAYLOAD_FORMAT);
			p.payload_format = (uint8_t)sp->payload_format_indicator;
		}
		if (sp->content_type) {
			p.has |= BW_PROP_BIT(BW_PROP_CONTENT_TYPE);
			p.content_type = (struct bw_str){ (const uint8_t *)sp->content_type,
				                          (uint16_t)strlen(sp->content_type) };
		}
		if (sp->response_topic) {
			p.has |= BW_PROP_BIT(BW_PROP_RESPONSE_TOPIC);
			p.response_topic = (struct bw_str){ (const uint8_t *)sp->response_topic,
				                            (uint16_t)strlen(sp->response_topic) };
		}
		if (sp->has_correlation_data) {
			p.has |= BW_PROP_BIT(BW_PROP_CORRELATION_DATA);
			p.correlation_data = (struct bw_bin){ sp->correlation_data.data,
				                              (uint32_t)sp->correlation_data.len };
		}
		size_t cap = 0;
		for (size_t i = 0; i < sp->n_user_properties; i++)
			cap += 5 + strlen(sp->user_properties[i]->key) +
			       strlen(sp->user_properties[i]->value);
		if (cap && !(users = malloc(cap))) {
			errno = ENOMEM;
			return NULL;
		}
		uint32_t len = 0;
		for (size_t i = 0; i < sp->n_user_properties; i++) {
			const StoredUserProperty *u = sp->user_properties[i];
			struct bw_str k = { (const uint8_t *)u->key, (uint16_t)strlen(u->key) };
			struct bw_str v = { (const uint8_t *)u->value, (uint16_t)strlen(u->value) };
			bw_props_put_user(users, cap, &len, k, v);
		}
		p.raw = (struct bw_bin){ users, len };
	}
	struct bw_msg *m = bw_msg_new(r->topic, strlen(r->topic), &p, r->payload.data,
	                              r->payload.len, (uint8_t)r->qos, r->retain, 0);
	free(users);
	if (!m)
		return NULL;
	m->tenant = tenant;
	m->expires_at_ms = bw_msgrec_to_mono(r->expiry_at_ms, off);
	return m;
}

int bw_msgrec_encode(const struct bw_msg *m, const char *tenant, const char *origin,
                     uint64_t created_ms, int64_t off, uint8_t **out, size_t *len)
{
	struct bw_arena a = { 0 };
	int rc = -ENOMEM;

	*out = NULL;
	StoredMessage *r = bw_msgrec_build(&a, m, NULL, tenant, off, false);
	if (r) {
		r->origin_node = (char *)origin;
		if (created_ms) {
			r->has_created_at_ms = true;
			r->created_at_ms = created_ms;
		}
		rc = bw_record_message_encode(r, out, len);
	}
	bw_arena_free(&a);
	return rc;
}
