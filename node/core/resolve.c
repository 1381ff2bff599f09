/* Tenant resolution (see resolve.h). */
#include "node/core/resolve.h"

#include "node/config.h"
#include "tenancy/auth/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEEK_MAX 8192 /* bytes of a token's payload read to find a claim */

int bw_resolve_peek_claim(const uint8_t *token, size_t len, const char *name, char *buf, size_t cap)
{
	const uint8_t *dot1 = memchr(token, '.', len);
	if (!dot1)
		return -EINVAL;
	const uint8_t *p = dot1 + 1;
	const uint8_t *dot2 = memchr(p, '.', len - (size_t)(p - token));
	if (!dot2 || (size_t)(dot2 - p) > PEEK_MAX * 4 / 3)
		return -EINVAL;
	uint8_t *json = malloc(PEEK_MAX + 1);
	size_t n;
	if (!json)
		return -ENOMEM;
	if (bw_jwt_b64url_decode((const char *)p, (size_t)(dot2 - p), json, PEEK_MAX, &n) < 0) {
		free(json);
		return -EINVAL;
	}
	json_t *root = json_loadb((const char *)json, n, JSON_REJECT_DUPLICATES, NULL);
	free(json);
	if (!root)
		return -EINVAL;
	json_t *v = json_object_get(root, name);
	int rc = -ENOENT;
	if (json_is_string(v)) {
		size_t vl = json_string_length(v);
		if (vl < cap) {
			memcpy(buf, json_string_value(v), vl);
			buf[vl] = '\0';
			rc = (int)vl;
		}
	}
	json_decref(root);
	return rc;
}

/* One signal's answer: a tenant name, agreeing with the ones before. */
static int named(struct bw_resolve_out *out, uint32_t signal, const char *what, const char *name,
                 size_t len)
{
	if (len > BW_TENANT_NAME_MAX)
		len = BW_TENANT_NAME_MAX;
	if (out->signals && (strlen(out->tenant) != len || memcmp(out->tenant, name, len))) {
		snprintf(out->why, sizeof(out->why),
		         "tenant signals disagree: %s names '%.*s', not '%s'", what, (int)len, name,
		         out->tenant);
		return -EACCES;
	}
	memcpy(out->tenant, name, len);
	out->tenant[len] = '\0';
	out->signals |= signal;
	return 0;
}

int bw_resolve_tenant(const struct bw_resolve_in *in, struct bw_resolve_out *out)
{
	const struct bw_tenant *t;
	memset(out, 0, sizeof(*out));
	out->user_len = in->user_len;

	if ((in->allowed & BW_SIGNAL_CA) && in->snap) {
		for (size_t i = 0; i < in->n_fps; i++) {
			if ((t = bw_tenancy_tenant_by_ca(in->snap, in->fps[i])) != NULL) {
				named(out, BW_SIGNAL_CA, "the client certificate's CA", t->name,
				      t->name_len);
				out->by_ca = true;
				break;
			}
		}
	}
	if ((in->allowed & BW_SIGNAL_SNI) && in->snap && in->sni &&
	    (t = bw_tenancy_tenant_by_sni(in->snap, in->sni, in->sni_len)) != NULL &&
	    named(out, BW_SIGNAL_SNI, "the SNI hostname", t->name, t->name_len))
		return -EACCES;
	if ((in->allowed & BW_SIGNAL_CLAIM) && in->token) {
		char claim[BW_TENANT_NAME_MAX + 2];
		int n = bw_resolve_peek_claim(in->token, in->token_len, in->claim, claim,
		                              sizeof(claim));
		if (n >= 0 && bw_tenant_name_check(claim, (size_t)n)) {
			snprintf(out->why, sizeof(out->why),
			         "the token's %s claim is not a tenant name", in->claim);
			return -EACCES;
		}
		if (n >= 0 && named(out, BW_SIGNAL_CLAIM, "the token's claim", claim, (size_t)n))
			return -EACCES;
	}
	if ((in->allowed & BW_SIGNAL_USERNAME) && in->user) {
		const char *at = NULL;
		for (size_t i = in->user_len; i > 0; i--) {
			if (in->user[i - 1] == '@') {
				at = in->user + i - 1;
				break;
			}
		}
		size_t tl = at ? in->user_len - (size_t)(at - in->user) - 1 : 0;
		if (at && at > in->user && bw_tenant_name_check(at + 1, tl) == 0) {
			if (named(out, BW_SIGNAL_USERNAME, "the username", at + 1, tl))
				return -EACCES;
			out->user_len = (size_t)(at - in->user);
		}
	}
	if ((in->allowed & BW_SIGNAL_LISTENER) && in->listener_set &&
	    named(out, BW_SIGNAL_LISTENER, "the listener", in->listener, strlen(in->listener)))
		return -EACCES;
	if (!out->signals)
		snprintf(out->tenant, sizeof(out->tenant), "%s", in->listener);
	return 0;
}
