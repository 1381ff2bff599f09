/*
 * Stored record decoding and encoding (see record.h): a size check,
 * protobuf-c's unpack under a memory budget, then the semantic rules, which
 * are the same walk for decode and encode. Every allocation, protobuf-c's
 * and the rules' own scratch space, goes through one budget, so a hostile
 * record cannot make a decode allocate without bound and a test can fail
 * each allocation in turn.
 */
#include "cluster/store/record.h"

#include "proto/mqtt/topic.h"
#include "tenancy/tenant.h"
#include "proto/mqtt/utf8.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_PREFIX        "$share/"
#define SHARE_PREFIX_LEN    7
#define PACKET_ID_MAX       65535u
#define QOS_MAX             2u
#define RETAIN_HANDLING_MAX 2u

/*
 * Counts every byte allocated, freed or not: a record that makes protobuf-c
 * replace a field a million times costs its allocations too. `over` and
 * `oom` tell a refused allocation from a failed one after unpack returns a
 * bare NULL.
 */
struct budget {
	size_t used;
	size_t max;
	bool over;
	bool oom;
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;

	if (size > b->max - b->used) {
		b->over = true;
		return NULL;
	}
	void *p = malloc(size ? size : 1);
	if (!p) {
		b->oom = true;
		return NULL;
	}
	b->used += size;
	return p;
}

/* Plain free(): a decoded record is later released without the budget. */
static void budget_free(void *data, void *p)
{
	free(p);
}

static int budget_error(const struct budget *b)
{
	if (b->over)
		return -EMSGSIZE;
	if (b->oom)
		return -ENOMEM;
	return 0;
}

/*
 * required: the record is top level and must say its version; a nested
 * message may leave it to the enclosing record.
 */
static int check_version(protobuf_c_boolean has, uint32_t version, bool required)
{
	if (!has)
		return required ? -EINVAL : 0;
	if (version > BW_RECORD_VERSION)
		return -EPROTONOSUPPORT;
	return version == BW_RECORD_VERSION ? 0 : -EINVAL;
}

/* A present string: MQTT UTF-8 of at most BW_RECORD_STRING_MAX bytes. */
static int check_string(const char *s, size_t *len_out)
{
	size_t len = strnlen(s, BW_RECORD_STRING_MAX + 1);

	if (len > BW_RECORD_STRING_MAX || !bw_utf8_valid((const uint8_t *)s, len))
		return -EINVAL;
	if (len_out)
		*len_out = len;
	return 0;
}

static int check_required_string(const char *s, size_t *len_out)
{
	return s ? check_string(s, len_out) : -EINVAL;
}

static int check_optional_string(const char *s)
{
	return s ? check_string(s, NULL) : 0;
}

static int check_topic_name(const char *s)
{
	size_t len;
	int rc = check_required_string(s, &len);

	if (rc)
		return rc;
	return bw_topic_name_check((const uint8_t *)s, len) ? -EINVAL : 0;
}

static int check_properties(const StoredProperties *p)
{
	int rc;

	if (p->payload_format_indicator > 1 || p->correlation_data.len > BW_RECORD_STRING_MAX)
		return -EINVAL;
	if ((rc = check_optional_string(p->content_type)))
		return rc;
	if (p->response_topic && (rc = check_topic_name(p->response_topic)))
		return rc;
	for (size_t i = 0; i < p->n_user_properties; i++) {
		const StoredUserProperty *up = p->user_properties[i];
		if ((rc = check_required_string(up->key, NULL)) ||
		    (rc = check_required_string(up->value, NULL)))
			return rc;
	}
	return 0;
}

/*
 * session_tenant is NULL for a top-level message. In a session every
 * message must be of the session's tenant: a record that mixed tenants
 * would hand one tenant's data to another's client.
 */
static int check_message(const StoredMessage *m, const char *session_tenant)
{
	size_t tenant_len;
	int rc;

	if ((rc = check_version(m->has_version, m->version, session_tenant == NULL)))
		return rc;
	if ((rc = check_required_string(m->tenant, &tenant_len)))
		return rc;
	if (bw_tenant_name_check(m->tenant, tenant_len) ||
	    (session_tenant && strcmp(m->tenant, session_tenant) != 0))
		return -EINVAL;
	if ((rc = check_topic_name(m->topic)))
		return rc;
	if (m->qos > QOS_MAX)
		return -EINVAL;
	if (m->properties && (rc = check_properties(m->properties)))
		return rc;
	if ((rc = check_optional_string(m->origin_node)) ||
	    (rc = check_optional_string(m->publisher_client_id)))
		return rc;
	for (size_t i = 0; i < m->n_subscription_identifiers; i++) {
		uint32_t id = m->subscription_identifiers[i];
		if (id == 0 || id > BW_RECORD_SUB_ID_MAX)
			return -EINVAL;
	}
	return 0;
}

/* Not-shared subscriptions have an empty group; NULL counts as empty. */
static const char *share_group(const StoredSubscription *s)
{
	return s->share_group ? s->share_group : "";
}

static int check_subscription(const StoredSubscription *s)
{
	const char *group = share_group(s);
	size_t len;
	int rc;

	if ((rc = check_required_string(s->filter, &len)))
		return rc;
	if (bw_topic_filter_check((const uint8_t *)s->filter, len))
		return -EINVAL;
	/*
	 * The group has its own field; a "$share/" filter here would make one
	 * subscription readable two ways.
	 */
	if (len >= SHARE_PREFIX_LEN && memcmp(s->filter, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0)
		return -EINVAL;
	if (s->qos > QOS_MAX || s->retain_handling > RETAIN_HANDLING_MAX ||
	    s->subscription_identifier > BW_RECORD_SUB_ID_MAX)
		return -EINVAL;
	if (group[0] != '\0') {
		if ((rc = check_string(group, NULL)))
			return rc;
		if (strpbrk(group, "/+#") || s->no_local)
			return -EINVAL;
	}
	return 0;
}

static int subscription_cmp(const void *a, const void *b)
{
	const StoredSubscription *x = *(const StoredSubscription *const *)a;
	const StoredSubscription *y = *(const StoredSubscription *const *)b;
	int c = strcmp(share_group(x), share_group(y));

	return c ? c : strcmp(x->filter, y->filter);
}

/*
 * The subscription index keys a session's subscriptions by (group,
 * filter); two entries with one key would leave a refcount behind when the
 * session unsubscribes. Sorting a copy of the pointers finds them in
 * n log n. Call after each subscription passed check_subscription().
 */
static int check_subscriptions_unique(const StoredSession *s, struct budget *b)
{
	if (s->n_subscriptions < 2)
		return 0;
	if (s->n_subscriptions > SIZE_MAX / sizeof(StoredSubscription *))
		return -EMSGSIZE;
	const StoredSubscription **sorted =
	        budget_alloc(b, s->n_subscriptions * sizeof(StoredSubscription *));
	if (!sorted)
		return budget_error(b);
	memcpy(sorted, s->subscriptions, s->n_subscriptions * sizeof(StoredSubscription *));
	qsort(sorted, s->n_subscriptions, sizeof(StoredSubscription *), subscription_cmp);
	int rc = 0;
	for (size_t i = 1; i < s->n_subscriptions && !rc; i++) {
		if (subscription_cmp(&sorted[i - 1], &sorted[i]) == 0)
			rc = -EINVAL;
	}
	free(sorted);
	return rc;
}

/*
 * One bit a packet id a direction: the two directions are separate id
 * spaces (MQTT 5.0 2.2.1), so an incoming and an outgoing exchange may
 * share an id.
 */
#define PACKET_ID_WORDS ((PACKET_ID_MAX + 1) / 64)

struct packet_ids {
	uint64_t seen[2][PACKET_ID_WORDS];
};

static int check_inflight(const StoredInflight *f, const char *tenant, struct packet_ids *ids)
{
	int rc;
	int dir;

	if (f->packet_id == 0 || f->packet_id > PACKET_ID_MAX)
		return -EINVAL;
	switch (f->direction) {
	case STORED_INFLIGHT__DIRECTION__OUTGOING:
		if (f->state != STORED_INFLIGHT__STATE__PUBLISH_SENT &&
		    f->state != STORED_INFLIGHT__STATE__PUBREC_RECEIVED)
			return -EINVAL;
		dir = 0;
		break;
	case STORED_INFLIGHT__DIRECTION__INCOMING:
		if (f->state != STORED_INFLIGHT__STATE__PUBREC_SENT)
			return -EINVAL;
		dir = 1;
		break;
	default:
		return -EINVAL;
	}
	/* Resending a PUBLISH after a reconnect needs the message itself. */
	if (f->state == STORED_INFLIGHT__STATE__PUBLISH_SENT && !f->message)
		return -EINVAL;
	if (f->message) {
		if ((rc = check_message(f->message, tenant)))
			return rc;
		/* QoS 0 is never inflight; only QoS 2 has the PUBREC states. */
		if (f->message->qos == 0 ||
		    (f->state != STORED_INFLIGHT__STATE__PUBLISH_SENT && f->message->qos != 2))
			return -EINVAL;
	}
	uint64_t *word = &ids->seen[dir][f->packet_id / 64];
	uint64_t bit = UINT64_C(1) << (f->packet_id % 64);
	if (*word & bit)
		return -EINVAL;
	*word |= bit;
	return 0;
}

static int check_will(const StoredWill *w, const char *tenant)
{
	int rc;

	if (!w->message)
		return -EINVAL;
	if ((rc = check_message(w->message, tenant)))
		return rc;
	/* A will's expiry starts when it is published, so nothing absolute. */
	return w->message->expiry_at_ms == 0 ? 0 : -EINVAL;
}

static int check_session(const StoredSession *s, struct budget *b)
{
	size_t len;
	int rc;

	if ((rc = check_version(s->has_version, s->version, true)))
		return rc;
	if ((rc = check_required_string(s->tenant, &len)))
		return rc;
	if (bw_tenant_name_check(s->tenant, len))
		return -EINVAL;
	if ((rc = check_required_string(s->client_id, &len)))
		return rc;
	if (len == 0)
		return -EINVAL;
	if (s->protocol_version != 4 && s->protocol_version != 5)
		return -EINVAL;
	if (s->next_packet_id > PACKET_ID_MAX)
		return -EINVAL;
	if ((rc = check_optional_string(s->owner_node)))
		return rc;
	for (size_t i = 0; i < s->n_subscriptions; i++) {
		if ((rc = check_subscription(s->subscriptions[i])))
			return rc;
	}
	if ((rc = check_subscriptions_unique(s, b)))
		return rc;
	if (s->will && (rc = check_will(s->will, s->tenant)))
		return rc;
	if (s->n_inflight > 0) {
		struct packet_ids *ids = budget_alloc(b, sizeof(*ids));
		if (!ids)
			return budget_error(b);
		memset(ids, 0, sizeof(*ids));
		for (size_t i = 0; i < s->n_inflight && !rc; i++)
			rc = check_inflight(s->inflight[i], s->tenant, ids);
		free(ids);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < s->n_offline_queue; i++) {
		if ((rc = check_message(s->offline_queue[i], s->tenant)))
			return rc;
	}
	return 0;
}

/*
 * protobuf-c 1.4.1 takes an unknown field numbered 0 when its tag is
 * written in more bytes than it needs (0x81 0x00 for 0x01), keeps it, packs
 * it back as 0x01 and then refuses that itself: a record it reads once but
 * never again after a node wrote it out. Field 0 is not protobuf, at any
 * depth (fuzz_record found it). The schema nests five deep at most.
 */
static bool no_field_zero(const ProtobufCMessage *m)
{
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		if (m->unknown_fields[i].tag == 0)
			return false;
	}
	const char *base = (const char *)m;
	for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			        *(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t k = 0; k < n; k++) {
				if (!no_field_zero(v[k]))
					return false;
			}
		} else {
			const ProtobufCMessage *sub =
			        *(ProtobufCMessage *const *)(base + f->offset);
			if (sub && !no_field_zero(sub))
				return false;
		}
	}
	return true;
}

static int check_record(const ProtobufCMessage *m, struct budget *b)
{
	if (m->descriptor == &stored_message__descriptor)
		return check_message((const StoredMessage *)m, NULL);
	assert(m->descriptor == &stored_session__descriptor);
	return check_session((const StoredSession *)m, b);
}

int bw__record_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                      size_t mem_max, ProtobufCMessage **out)
{
	/* protobuf-c does arithmetic on the pointer even for no bytes. */
	static const uint8_t empty[1];
	struct budget b = { .max = mem_max };
	ProtobufCAllocator alloc = { budget_alloc, budget_free, &b };
	int rc;

	assert(desc == &stored_message__descriptor || desc == &stored_session__descriptor);
	assert(buf || len == 0);
	*out = NULL;
	if (len > BW_RECORD_MAX_BYTES)
		return -EMSGSIZE;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, len ? buf : empty);
	if (!m) {
		rc = budget_error(&b);
		return rc ? rc : -EBADMSG;
	}
	rc = no_field_zero(m) ? check_record(m, &b) : -EBADMSG;
	if (rc) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}

int bw_record_message_decode(const uint8_t *buf, size_t len, StoredMessage **out)
{
	ProtobufCMessage *m;
	int rc = bw__record_decode(&stored_message__descriptor, buf, len, BW_RECORD_DECODE_MEM_MAX,
	                           &m);

	/* base is the first member, so the two pointers are one address. */
	*out = (StoredMessage *)m;
	return rc;
}

int bw_record_session_decode(const uint8_t *buf, size_t len, StoredSession **out)
{
	ProtobufCMessage *m;
	int rc = bw__record_decode(&stored_session__descriptor, buf, len, BW_RECORD_DECODE_MEM_MAX,
	                           &m);

	*out = (StoredSession *)m;
	return rc;
}

void bw_record_message_free(StoredMessage **msg)
{
	if (!msg || !*msg)
		return;
	stored_message__free_unpacked(*msg, NULL);
	*msg = NULL;
}

void bw_record_session_free(StoredSession **sess)
{
	if (!sess || !*sess)
		return;
	stored_session__free_unpacked(*sess, NULL);
	*sess = NULL;
}

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n > BW_RECORD_MAX_BYTES)
		return -EMSGSIZE;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	size_t written = protobuf_c_message_pack(m, buf);
	assert(written == n);
	(void)written;
	*out = buf;
	*len = n;
	return 0;
}

int bw_record_message_encode(StoredMessage *msg, uint8_t **out, size_t *len)
{
	int rc;

	*out = NULL;
	*len = 0;
	msg->has_version = 1;
	msg->version = BW_RECORD_VERSION;
	if ((rc = check_message(msg, NULL)))
		return rc;
	return pack(&msg->base, out, len);
}

int bw_record_session_encode(StoredSession *sess, uint8_t **out, size_t *len)
{
	/* Writing is not where to bound memory; the decode budget is for reads. */
	struct budget b = { .max = SIZE_MAX };
	int rc;

	*out = NULL;
	*len = 0;
	sess->has_version = 1;
	sess->version = BW_RECORD_VERSION;
	if ((rc = check_session(sess, &b)))
		return rc;
	return pack(&sess->base, out, len);
}
