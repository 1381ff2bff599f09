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

/* The payload of an unverified JWS compact token, parsed (at most PEEK_MAX bytes), or NULL. */
static json_t *peek_payload(const uint8_t *token, size_t len, int *rc)
{
	const uint8_t *dot1 = memchr(token, '.', len);
	*rc = -EINVAL;
	if (!dot1)
		return NULL;
	const uint8_t *p = dot1 + 1;
	const uint8_t *dot2 = memchr(p, '.', len - (size_t)(p - token));
	if (!dot2 || (size_t)(dot2 - p) > PEEK_MAX * 4 / 3)
		return NULL;
	uint8_t *json = malloc(PEEK_MAX + 1);
	size_t n;
	if (!json) {
		*rc = -ENOMEM;
		return NULL;
	}
	if (bw_jwt_b64url_decode((const char *)p, (size_t)(dot2 - p), json, PEEK_MAX, &n) < 0) {
		free(json);
		return NULL;
	}
	json_t *root = json_loadb((const char *)json, n, JSON_REJECT_DUPLICATES, NULL);
	free(json);
	if (root)
		*rc = 0;
	return root;
}

/* The string member name of root copied into buf: its length, or -ENOENT (none, or too long). */
static int claim_of(json_t *root, const char *name, char *buf, size_t cap)
{
	json_t *v = json_object_get(root, name);
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return -ENOENT;
	size_t vl = json_string_length(v);
	memcpy(buf, json_string_value(v), vl);
	buf[vl] = '\0';
	return (int)vl;
}

int bw_resolve_peek_claim(const uint8_t *token, size_t len, const char *name, char *buf, size_t cap)
{
	int rc;
	json_t *root = peek_payload(token, len, &rc);
	if (!root)
		return rc;
	rc = claim_of(root, name, buf, cap);
	json_decref(root);
	return rc;
}

const char *bw_resolve_claim_name(const struct bw_tenant *t, const char *node_claim)
{
	return t && t->jwt_tenant_claim && *t->jwt_tenant_claim ? t->jwt_tenant_claim : node_claim;
}

/* One signal's answer: a tenant name, agreeing with the ones before. */
static int named(struct bw_resolve_out *out, uint32_t signal, const char *what, const char *name,
                 size_t len)
{
	if (len > BW_TENANT_NAME_MAX)
		len = BW_TENANT_NAME_MAX;
	if (out->signals && (strlen(out->tenant) != len || memcmp(out->tenant, name, len))) {
		/* A long claim name may cut the text short: it stays a sentence. */
		if (snprintf(out->why, sizeof(out->why),
		             "tenant signals disagree: %s names '%.*s', not '%s'", what, (int)len,
		             name, out->tenant) >= (int)sizeof(out->why))
			out->why[sizeof(out->why) - 2] = '.';
		return -EACCES;
	}
	memcpy(out->tenant, name, len);
	out->tenant[len] = '\0';
	out->signals |= signal;
	return 0;
}

/*
 * The claim signal: the tenant the token's claims name, each claim name in
 * use looked up once in one parse of the payload. The node's tenant_claim
 * first: its value is a signal unless it names a tenant that uses a claim
 * of its own (a value the store does not know still names a tenant, which
 * may be a config tenant, or refuses), and a value that is no tenant name
 * refuses. Then each name tenants use: a value is a signal only when it
 * names a tenant using that very name. Two claims naming different tenants
 * disagree. Returns 0 (*tenant "" when none) or -EACCES with out->why.
 */
static int claim_tenant(const struct bw_resolve_in *in, struct bw_resolve_out *out,
                        char tenant[BW_TENANT_NAME_MAX + 1], const char **which)
{
	const char *names[BW_TENANCY_CLAIM_NAMES_MAX];
	const char *const *own = NULL;
	size_t n = 0, n_own = 0;
	char v[BW_TENANT_NAME_MAX + 2];
	int rc;

	tenant[0] = '\0';
	json_t *root = peek_payload(in->token, in->token_len, &rc);
	if (!root)
		return 0; /* no token: no signal (it fails its check later) */
	names[n++] = in->claim;
	if (in->snap)
		own = bw_tenancy_claim_names(in->snap, &n_own);
	for (size_t i = 0; i < n_own && n < BW_TENANCY_CLAIM_NAMES_MAX; i++) {
		if (strcmp(own[i], in->claim))
			names[n++] = own[i];
	}
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int len = claim_of(root, names[i], v, sizeof(v));
		if (len < 0)
			continue;
		bool valid = bw_tenant_name_check(v, (size_t)len) == 0;
		if (!valid && i == 0) {
			snprintf(out->why, sizeof(out->why),
			         "the token's %.64s claim is not a tenant name", names[i]);
			rc = -EACCES;
			break;
		}
		const struct bw_tenant *t =
		        valid && in->snap ? bw_tenancy_tenant(in->snap, v, (size_t)len) : NULL;
		if (!valid || (i > 0 && !t) ||
		    strcmp(bw_resolve_claim_name(t, in->claim), names[i]))
			continue; /* no tenant of this claim name */
		if (tenant[0] && strcmp(tenant, v)) {
			snprintf(out->why, sizeof(out->why),
			         "tenant signals disagree: claim %.24s names '%.28s', claim %.24s "
			         "'%.28s'",
			         *which, tenant, names[i], v);
			rc = -EACCES;
		} else if (!tenant[0]) {
			memcpy(tenant, v, (size_t)len + 1);
			*which = names[i];
		}
	}
	json_decref(root);
	return rc;
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
		char claim[BW_TENANT_NAME_MAX + 1], what[64];
		const char *which = NULL;
		if (claim_tenant(in, out, claim, &which))
			return -EACCES;
		snprintf(what, sizeof(what), "the token's %.40s claim", which ? which : "");
		if (claim[0] && named(out, BW_SIGNAL_CLAIM, what, claim, strlen(claim)))
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
