/*
 * The tenancy model: tenants, their security groups and their principals,
 * as one immutable, reference-counted snapshot (struct bw_tenancy). A
 * snapshot never changes once built: any number of threads may read it, with
 * no lock, for as long as they hold a reference. A change to the model
 * builds a new snapshot that shares every unchanged tenant with the old one
 * (tenancy/model_build.h), and the tenancy service (tenancy/service.h)
 * publishes it.
 *
 * Lookups are O(1) (hash tables built with the snapshot): a tenant by name,
 * by TLS SNI hostname, or by the SHA-256 of the DER encoding of a CA
 * certificate in its device CA bundle; a group or principal by (tenant,
 * name). The records are returned as read-only views (struct bw_tenant,
 * bw_group, bw_principal) that live as long as the snapshot reference they
 * came from. The same structs, filled in by a caller, are the input of the
 * service's writes; bw_tenancy_tenant_check() and friends validate them
 * field by field.
 *
 * A principal's effective ACL (bw_tenancy_principal_acl()) is the union of
 * its groups' rules and its own, parsed once per tenant version and cached
 * in the snapshot; compile it per client with bw_acl_compile(). Deny beats
 * allow and no matching rule denies, as tenancy/acl.h says.
 */
#ifndef BW_TENANCY_MODEL_H
#define BW_TENANCY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenancy/tenant.h"

struct bw_acl;
struct bw_jwt_keys;
struct bw_tenancy;

/* Limits on what a tenant, group or principal may hold. */
#define BW_TENANT_SNI_MAX         32u          /* SNI hostnames a tenant */
#define BW_TENANT_HOST_MAX        253u         /* bytes of one hostname */
#define BW_TENANT_CA_PEM_MAX      (256u << 10) /* bytes of the CA bundle */
#define BW_TENANT_CA_CERTS_MAX    32u          /* certificates in the bundle */
#define BW_TENANT_JWT_CLAIMS_MAX  16u          /* issuers, and audiences, a tenant */
#define BW_TENANT_JWT_CLAIM_MAX   1024u        /* bytes of one issuer or audience */
#define BW_TENANT_JWKS_MAX        (256u << 10) /* bytes of the JWK Set */
#define BW_TENANT_CLAIM_NAME_MAX  128u         /* bytes of a tenant's own tenant claim name */
#define BW_GROUP_NAME_MAX         64u          /* bytes */
#define BW_PRINCIPAL_NAME_MAX     256u         /* bytes */
#define BW_PRINCIPAL_GROUPS_MAX   64u          /* groups a principal belongs to */
#define BW_TENANCY_RULES_TEXT_MAX (64u << 10)  /* bytes of one rule list */
#define BW_TENANCY_RULES_MAX      1000u        /* rules in one rule list */

/*
 * Distinct JWT claim names that may name a tenant: the node's tenant_claim
 * and at most BW_TENANCY_CLAIM_NAMES_MAX - 1 that tenants name as their
 * own (jwt_tenant_claim), so that resolution peeks a token for a few
 * claims at most.
 */
#define BW_TENANCY_CLAIM_NAMES_MAX 16u

/* Length of a CA fingerprint: SHA-256 of the certificate's DER. */
#define BW_TENANCY_CA_FP_LEN 32u

enum bw_tenant_status {
	BW_TENANT_ACTIVE = 0,
	BW_TENANT_SUSPENDED = 1,
};

enum bw_principal_kind {
	BW_PRINCIPAL_PASSWORD = 0,    /* username and password hash */
	BW_PRINCIPAL_CERTIFICATE = 1, /* the identity of a client certificate */
	BW_PRINCIPAL_TOKEN = 2,       /* the subject of a JWT */
};

/* max_qos value meaning "the node's default". */
#define BW_QUOTA_QOS_DEFAULT 0xffu

/*
 * A tenant's quotas. Every count or rate is a limit when non-zero and "the
 * node's default" when 0 (so a zeroed struct is all defaults); a tenant
 * that must have no limit at all says UINT32_MAX, or INT64_MAX for the
 * 64-bit fields (the largest number JSON and PostgreSQL store). max_qos is
 * the exception, since 0 is a meaningful limit: 0..2, or
 * BW_QUOTA_QOS_DEFAULT for the node's default. max_packet_bytes is at most
 * 268435455 (MQTT's largest packet).
 */
struct bw_quotas {
	uint32_t connections;         /* concurrent connections of the tenant */
	uint32_t persistent_sessions; /* sessions kept while disconnected */
	uint32_t tenant_msgs_per_s;   /* PUBLISH packets in, tenant-wide */
	uint64_t tenant_bytes_per_s;  /* PUBLISH bytes in, tenant-wide */
	uint32_t client_msgs_per_s;   /* PUBLISH packets in, one client */
	uint64_t client_bytes_per_s;  /* PUBLISH bytes in, one client */
	uint32_t client_subscriptions;
	uint32_t retained_msgs;  /* retained messages the tenant holds */
	uint64_t retained_bytes; /* their payload and topic bytes */
	uint8_t max_qos;         /* 0..2 or BW_QUOTA_QOS_DEFAULT */
	uint32_t max_packet_bytes;
	uint32_t max_session_expiry_s;
	uint32_t session_queued_msgs; /* queued messages a session */
};

#define BW_QUOTA_PACKET_MAX 268435455u

/*
 * A tenant. In a snapshot every string is NUL-terminated and every list
 * sorted, without duplicates; id is assigned by the store (a write's id is
 * ignored), stable for the tenant's life and never reused. groups_n and
 * principals_n are counts in a snapshot and ignored in a write.
 * jwt_tenant_claim is the JWT claim whose value names this tenant when
 * tenant resolution peeks a token (node/core/resolve.h), for identity
 * providers that put the tenant elsewhere than the node's tenant_claim:
 * 1..BW_TENANT_CLAIM_NAME_MAX bytes of printable ASCII without spaces.
 */
struct bw_tenant {
	const char *name; /* bw_tenant_name_check() */
	size_t name_len;
	uint32_t id;
	enum bw_tenant_status status;
	bool allow_anonymous;             /* default false */
	const char *const *sni;           /* lower-case hostnames */
	size_t sni_n;                     /* 0..BW_TENANT_SNI_MAX */
	struct bw_quotas quotas;          /* zeroed: node defaults (max_qos: see above) */
	const char *ca_pem;               /* device CA bundle; NULL or "": none */
	const char *const *jwt_issuers;   /* accepted "iss" values; none: any */
	size_t jwt_issuers_n;             /* 0..BW_TENANT_JWT_CLAIMS_MAX */
	const char *const *jwt_audiences; /* accepted "aud" values; none: no aud */
	size_t jwt_audiences_n;           /* 0..BW_TENANT_JWT_CLAIMS_MAX */
	const char *jwks;                 /* JWK Set JSON; NULL or "": no tokens */
	const char *jwt_tenant_claim;     /* claim naming the tenant; NULL or "": the node's */
	size_t groups_n;
	size_t principals_n;
};

/* A security group: a named rule list inside a tenant. */
struct bw_group {
	const char *tenant;
	const char *name; /* 1..BW_GROUP_NAME_MAX of A-Z a-z 0-9 . _ - */
	size_t name_len;
	const char *rules; /* bw_acl_parse_rules() syntax; NULL or "": none */
};

/*
 * A principal. name is what the client presents: the MQTT username (the
 * part before "@tenant" when it has one), the certificate identity or the
 * token subject; 1..BW_PRINCIPAL_NAME_MAX bytes of valid MQTT UTF-8. A
 * password principal has a password_hash (tenancy/auth/password.h: $7$,
 * $6$, $argon2id$); the other kinds have none.
 */
struct bw_principal {
	const char *tenant;
	const char *name;
	size_t name_len;
	enum bw_principal_kind kind;
	const char *password_hash; /* NULL for certificate and token */
	bool enabled;
	const char *const *groups; /* group names in the same tenant */
	size_t groups_n;           /* 0..BW_PRINCIPAL_GROUPS_MAX */
	const char *rules;         /* own rule list; NULL or "": none */
};

/* ---- snapshots ---------------------------------------------------------------- */

/* An empty snapshot (version 0) with one reference, or NULL when out of memory. */
struct bw_tenancy *bw_tenancy_empty(void);

/* Takes another reference to s (thread-safe); returns s. */
struct bw_tenancy *bw_tenancy_ref(const struct bw_tenancy *s);

/* Drops a reference and NULLs *s; the last one frees. NULL is fine. Thread-safe. */
void bw_tenancy_release(struct bw_tenancy **s);

/* The version: it grows by at least one with every published change. */
uint64_t bw_tenancy_version(const struct bw_tenancy *s);

/* Counts over the whole snapshot. */
size_t bw_tenancy_tenant_count(const struct bw_tenancy *s);
size_t bw_tenancy_group_count(const struct bw_tenancy *s);
size_t bw_tenancy_principal_count(const struct bw_tenancy *s);

/* Tenant i (0 .. count - 1) in name order, or NULL past the end. */
const struct bw_tenant *bw_tenancy_tenant_at(const struct bw_tenancy *s, size_t i);

/* Tenant by name[0..len), or NULL. */
const struct bw_tenant *bw_tenancy_tenant(const struct bw_tenancy *s, const char *name, size_t len);

/*
 * The distinct jwt_tenant_claim names the tenants of s name, sorted (at
 * most BW_TENANCY_CLAIM_NAMES_MAX - 1; borrowed from s), with *n their
 * count. A tenant whose own name did not fit (rows put around the writes,
 * counted as clashes) gets no claim signal.
 */
const char *const *bw_tenancy_claim_names(const struct bw_tenancy *s, size_t *n);

/*
 * Tenant owning the SNI hostname host[0..len), compared without regard to
 * ASCII case (a trailing '.' is ignored), or NULL.
 */
const struct bw_tenant *bw_tenancy_tenant_by_sni(const struct bw_tenancy *s, const char *host,
                                                 size_t len);

/*
 * Tenant whose CA bundle holds the certificate with this fingerprint (see
 * bw_tenancy_ca_fingerprint()), or NULL.
 */
const struct bw_tenant *bw_tenancy_tenant_by_ca(const struct bw_tenancy *s,
                                                const uint8_t fp[BW_TENANCY_CA_FP_LEN]);

/* SHA-256 of der[0..len), the certificate's DER encoding. Returns 0 or -EIO. */
int bw_tenancy_ca_fingerprint(const uint8_t *der, size_t len, uint8_t fp[BW_TENANCY_CA_FP_LEN]);

/* Group or principal i of tenant t in name order, or NULL past the end. */
const struct bw_group *bw_tenancy_group_at(const struct bw_tenancy *s, const struct bw_tenant *t,
                                           size_t i);
const struct bw_principal *bw_tenancy_principal_at(const struct bw_tenancy *s,
                                                   const struct bw_tenant *t, size_t i);

/* Group or principal of tenant t by name[0..len), or NULL. */
const struct bw_group *bw_tenancy_group(const struct bw_tenancy *s, const struct bw_tenant *t,
                                        const char *name, size_t len);
const struct bw_principal *bw_tenancy_principal(const struct bw_tenancy *s,
                                                const struct bw_tenant *t, const char *name,
                                                size_t len);

/*
 * The tenant's JWT keys parsed from its JWK Set (borrowed from s), or NULL
 * when it has none. Use with a struct bw_jwt_policy made of its issuers and
 * audiences.
 */
const struct bw_jwt_keys *bw_tenancy_tenant_jwt_keys(const struct bw_tenancy *s,
                                                     const struct bw_tenant *t);

/*
 * p's effective ACL: the rules of each of its groups and its own, as one
 * rule list (every rule in the "everyone" set, so compile it with any
 * subject). A group p names that the tenant lacks adds nothing. Built on
 * first use and cached in s (thread-safe; concurrent first uses may each
 * build one and all but one are freed); borrowed from s. NULL when out of
 * memory: refuse the client then.
 */
const struct bw_acl *bw_tenancy_principal_acl(const struct bw_tenancy *s,
                                              const struct bw_principal *p);

/* ---- deltas ------------------------------------------------------------------- */

enum bw_tenancy_kind {
	BW_TENANCY_TENANT = 0,
	BW_TENANCY_GROUP = 1,
	BW_TENANCY_PRINCIPAL = 2,
};

/*
 * One changed record. A principal is listed as changed when its own record
 * changed or when one of its groups was put or deleted (its effective ACL
 * may differ). A deleted tenant is one change: its groups and principals
 * went with it and are not listed.
 */
struct bw_tenancy_change {
	enum bw_tenancy_kind kind;
	bool deleted;
	const char *tenant; /* the tenant's name */
	const char *name;   /* the group's or principal's name; the tenant's for a tenant */
};

/* What changed between two snapshots; owns its strings. */
struct bw_tenancy_delta {
	uint64_t from_version, to_version;
	bool full; /* the store read everything again (start, reconnect) */
	struct bw_tenancy_change *changes;
	size_t n;
};

/*
 * The changes from a to b (a may be NULL: everything in b is new), in
 * tenant order, each tenant's own change first. Tenants that a and b share
 * (an unchanged tenant is the same object in both) cost nothing. Returns 0
 * with *out (the caller frees it with bw_tenancy_delta_free()), or -ENOMEM.
 */
int bw_tenancy_diff(const struct bw_tenancy *a, const struct bw_tenancy *b,
                    struct bw_tenancy_delta **out);

/* Frees *d and NULLs it; NULL is fine. */
void bw_tenancy_delta_free(struct bw_tenancy_delta **d);

/* ---- validation --------------------------------------------------------------- */

/*
 * Check every field of a tenant, group or principal as a write would store
 * it. Return 0, or -EINVAL with err[0..cap) saying which field and why
 * ("tenant \"acme\": sni[1]: \"x_y\" is not a hostname"). Cross-record rules
 * (a hostname or CA another tenant has, a group that does not exist) are
 * the store's to check.
 */
int bw_tenancy_tenant_check(const struct bw_tenant *t, char *err, size_t cap);
int bw_tenancy_group_check(const struct bw_group *g, char *err, size_t cap);
int bw_tenancy_principal_check(const struct bw_principal *p, char *err, size_t cap);
int bw_tenancy_quotas_check(const struct bw_quotas *q, char *err, size_t cap);

/* "active"/"suspended", "password"/"certificate"/"token"; parse returns 0 or -EINVAL. */
const char *bw_tenant_status_name(enum bw_tenant_status st);
int bw_tenant_status_parse(const char *s, enum bw_tenant_status *out);
const char *bw_principal_kind_name(enum bw_principal_kind k);
int bw_principal_kind_parse(const char *s, enum bw_principal_kind *out);

#endif
