/*
 * Tenant resolution: which tenant a connecting client belongs to. Up to
 * five signals may name it, each allowed or not by the listener (its
 * resolve= option, enum bw_config_signal):
 *
 *   ca        the verified client certificate chains to a CA that a
 *             tenant registered;
 *   sni       the TLS SNI hostname is one a tenant owns;
 *   claim     the JWT (password, or 5.0 Authentication Data) carries the
 *             tenant's claim: its own jwt_tenant_claim, else the node's
 *             tenant_claim (bw_resolve_claim_name()); read unverified here,
 *             the token is then verified with that tenant's keys, so a
 *             forged claim gets a client nowhere but a failed login. A
 *             value naming a tenant that uses another claim name is no
 *             signal; two claims naming different tenants disagree;
 *   username  "name@tenant": the principal is "name";
 *   listener  the listener's own tenant=, when it says one.
 *
 * Every signal present must name the same tenant, or the client is
 * refused; with none, the client is of its listener's tenant (default
 * "default"). A SNI hostname or CA no tenant owns is no signal (a
 * listener's own hostname is common); a username whose part after the
 * last '@' is not a tenant name is a plain username.
 */
#ifndef BW_CORE_RESOLVE_H
#define BW_CORE_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenancy/model.h"
#include "tenancy/tenant.h"

struct bw_resolve_in {
	uint32_t allowed;                           /* enum bw_config_signal bits */
	const struct bw_tenancy *snap;              /* the tenancy in force; NULL: no store */
	const uint8_t (*fps)[BW_TENANCY_CA_FP_LEN]; /* the verified chain's CAs */
	size_t n_fps;
	const char *sni; /* NULL: none */
	size_t sni_len;
	const uint8_t *token; /* a JWT, unverified; NULL: none */
	size_t token_len;
	const char *claim; /* the node's tenant_claim ("tenant"); tenants' own: snap's */
	const char *user;  /* the MQTT username; NULL: none */
	size_t user_len;
	const char *listener; /* the listener's tenant */
	bool listener_set;    /* ... which tenant= said explicitly */
};

struct bw_resolve_out {
	char tenant[BW_TENANT_NAME_MAX + 1];
	uint32_t signals; /* the signals that named it (none: the listener's by default) */
	bool by_ca;       /* the CA signal named it: a certificate may log in */
	size_t user_len;  /* the principal's part of the username */
	char why[160];    /* when refused */
};

/* 0 with out filled, or -EACCES with out->why saying which signals disagree. */
int bw_resolve_tenant(const struct bw_resolve_in *in, struct bw_resolve_out *out);

/*
 * The string claim `name` of an unverified JWS compact token, copied into
 * buf: its length, or -ENOENT (no such string claim) or -EINVAL (not a
 * token).
 */
int bw_resolve_peek_claim(const uint8_t *token, size_t len, const char *name, char *buf,
                          size_t cap);

/* The claim that names tenant t: its jwt_tenant_claim, else node_claim (t NULL: node_claim). */
const char *bw_resolve_claim_name(const struct bw_tenant *t, const char *node_claim);

#endif
