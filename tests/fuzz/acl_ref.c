/*
 * Reference ACL checks (see acl_ref.h). Filters are split into levels in
 * heap arrays; nothing here is meant to be fast.
 */
#include "tests/fuzz/acl_ref.h"

#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"
#include "tenancy/acl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lv {
	const uint8_t *p;
	size_t len;
};

static struct lv *split(const uint8_t *t, size_t len, size_t *n)
{
	struct lv *v = malloc((len + 1) * sizeof(*v));
	size_t k = 0, start = 0;

	if (!v)
		abort();
	for (size_t i = 0; i <= len; i++) {
		if (i == len || t[i] == '/') {
			v[k].p = t + start;
			v[k].len = i - start;
			k++;
			start = i + 1;
		}
	}
	*n = k;
	return v;
}

static bool is(const struct lv *l, char c)
{
	return l->len == 1 && l->p[0] == (uint8_t)c;
}

static bool wild(const struct lv *l)
{
	return is(l, '+') || is(l, '#');
}

static bool dollar(const struct lv *l)
{
	return l->len > 0 && l->p[0] == '$';
}

static bool same(const struct lv *a, const struct lv *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

bool ref_filter_covers(const uint8_t *r, size_t rlen, const uint8_t *f, size_t flen)
{
	size_t nr, nf, i = 0;
	struct lv *R = split(r, rlen, &nr), *F = split(f, flen, &nf);
	bool ok;

	if (wild(&R[0]) && dollar(&F[0]) && !wild(&F[0])) {
		ok = false;
		goto out;
	}
	for (;;) {
		if (i == nr) {
			ok = i == nf;
			break;
		}
		if (is(&R[i], '#')) {
			ok = true;
			break;
		}
		if (i == nf || is(&F[i], '#')) {
			ok = false;
			break;
		}
		if (!is(&R[i], '+') && (wild(&F[i]) || !same(&R[i], &F[i]))) {
			ok = false;
			break;
		}
		i++;
	}
out:
	free(R);
	free(F);
	return ok;
}

bool ref_filter_overlaps(const uint8_t *r, size_t rlen, const uint8_t *f, size_t flen)
{
	size_t nr, nf, i = 0;
	struct lv *R = split(r, rlen, &nr), *F = split(f, flen, &nf);
	bool ok;

	if ((wild(&R[0]) && dollar(&F[0]) && !wild(&F[0])) ||
	    (wild(&F[0]) && dollar(&R[0]) && !wild(&R[0]))) {
		ok = false;
		goto out;
	}
	for (;;) {
		if (i == nr || i == nf) {
			ok = (i == nr && i == nf) || (i < nr && is(&R[i], '#')) ||
			     (i < nf && is(&F[i], '#'));
			break;
		}
		if (is(&R[i], '#') || is(&F[i], '#')) {
			ok = true;
			break;
		}
		if (!is(&R[i], '+') && !is(&F[i], '+') && !same(&R[i], &F[i])) {
			ok = false;
			break;
		}
		i++;
	}
out:
	free(R);
	free(F);
	return ok;
}

/* Publish or receive: every rule of that access matching the name. */
static bool name_verdict(const struct bw_acl_compiled *c, const uint8_t *t, size_t len, bool pub,
                         uint8_t qos, bool retain)
{
	struct bw__acl_rule r;
	bool allow = false, deny = false, no_retain = false;
	uint8_t cap = 2;

	if (!c || len == 0 || bw_topic_name_check(t, len) != 0)
		return false;
	for (size_t i = 0; bw__acl_compiled_rule(c, i, &r) == 0; i++) {
		if (!(pub ? r.publish : r.subscribe) || !bw_topic_match(r.filter, r.len, t, len))
			continue;
		if (r.deny) {
			deny = true;
			continue;
		}
		allow = true;
		cap = r.max_qos < cap ? r.max_qos : cap;
		no_retain |= pub && r.no_retain;
	}
	return allow && !deny && qos <= cap && !(retain && no_retain);
}

bool ref_acl_can_publish(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len,
                         uint8_t qos, bool retain)
{
	return name_verdict(c, topic, len, true, qos, retain);
}

bool ref_acl_can_receive(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len)
{
	return name_verdict(c, topic, len, false, 0, false);
}

int ref_acl_can_subscribe(const struct bw_acl_compiled *c, const uint8_t *filter, size_t len,
                          uint8_t *max_qos, bool *check_each)
{
	struct bw__acl_rule r;
	struct bw_topic_share sh;
	bool allow_covers = false, deny_covers = false, deny_overlaps = false;
	uint8_t cap = 2;

	*max_qos = 0;
	*check_each = false;
	if (!bw_utf8_valid(filter, len) || bw_topic_filter_check(filter, len) != 0)
		return -EINVAL;
	if (bw_topic_share_split(filter, len, &sh)) {
		filter = sh.filter;
		len = sh.filter_len;
	}
	for (size_t i = 0; c && bw__acl_compiled_rule(c, i, &r) == 0; i++) {
		if (!r.subscribe || !ref_filter_overlaps(r.filter, r.len, filter, len))
			continue;
		bool covers = ref_filter_covers(r.filter, r.len, filter, len);
		if (r.deny) {
			deny_overlaps = true;
			deny_covers |= covers;
		} else {
			allow_covers |= covers;
			cap = r.max_qos < cap ? r.max_qos : cap;
		}
	}
	if (!allow_covers || deny_covers)
		return -EACCES;
	*max_qos = cap;
	*check_each = deny_overlaps;
	return 0;
}
