/*
 * Tenancy snapshots (model.h) and their builder (model_build.h).
 *
 * Memory layout. Every record is immutable and reference counted, so that a
 * new snapshot shares what did not change:
 *   - struct tfields: a tenant's own fields, with its parsed JWT keys and
 *     CA fingerprints;
 *   - struct grec, struct prec: a group, a principal (strings in the same
 *     allocation);
 *   - struct trec: one version of a tenant: its tfields, its groups and
 *     principals (pointer arrays sorted by name, with hash indexes) and the
 *     cache of effective ACLs, one slot a principal;
 *   - struct bw_tenancy: the trecs sorted by name, with indexes by name, SNI
 *     hostname and CA fingerprint.
 * A builder turns each tenant it touches into a mutable draft (copies of
 * the pointer arrays) and freezes the drafts into new trecs when finished.
 */
#include "tenancy/model.h"
#include "tenancy/model_build.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proto/mqtt/utf8.h"
#include "tenancy/acl.h"
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/password.h"

/* ---- hash index ----------------------------------------------------------------- */

/*
 * Open addressing with linear probing over (key, value) pairs; keys are
 * borrowed from the records the values point to. Capacity is a power of
 * two at least twice the count. Deletion shifts later entries back, so
 * there are no tombstones.
 */
struct slot {
	const char *key; /* NULL: empty */
	size_t len;
	uint64_t hash;
	void *val;
};

struct map {
	struct slot *s;
	size_t cap, n;
};

static uint64_t hash_bytes(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static void map_free(struct map *m)
{
	free(m->s);
	memset(m, 0, sizeof(*m));
}

static struct slot *map_find(const struct map *m, const char *key, size_t len)
{
	if (m->cap == 0)
		return NULL;
	uint64_t h = hash_bytes(key, len);
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct slot *s = &m->s[i];
		if (!s->key)
			return NULL;
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
			return s;
	}
}

static void *map_get(const struct map *m, const char *key, size_t len)
{
	struct slot *s = map_find(m, key, len);

	return s ? s->val : NULL;
}

static void map_place(struct map *m, const char *key, size_t len, uint64_t h, void *val)
{
	size_t i = h & (m->cap - 1);

	while (m->s[i].key)
		i = (i + 1) & (m->cap - 1);
	m->s[i] = (struct slot){ .key = key, .len = len, .hash = h, .val = val };
	m->n++;
}

static int map_grow(struct map *m, size_t want)
{
	size_t cap = m->cap ? m->cap : 8;

	while (cap < want * 2)
		cap *= 2;
	if (cap == m->cap)
		return 0;
	struct slot *old = m->s;
	size_t oldcap = m->cap;
	m->s = calloc(cap, sizeof(*m->s));
	if (!m->s) {
		m->s = old;
		return -ENOMEM;
	}
	m->cap = cap;
	m->n = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].key)
			map_place(m, old[i].key, old[i].len, old[i].hash, old[i].val);
	}
	free(old);
	return 0;
}

/* Sets key to val. Returns 1 when it replaced a value (*prev gets it), 0, or -ENOMEM. */
static int map_put(struct map *m, const char *key, size_t len, void *val, void **prev)
{
	struct slot *s = map_find(m, key, len);

	if (s) {
		if (prev)
			*prev = s->val;
		s->key = key; /* the new record owns the key now */
		s->val = val;
		return 1;
	}
	if (map_grow(m, m->n + 1) != 0)
		return -ENOMEM;
	map_place(m, key, len, hash_bytes(key, len), val);
	return 0;
}

static void map_del(struct map *m, const char *key, size_t len)
{
	struct slot *s = map_find(m, key, len);

	if (!s)
		return;
	size_t i = (size_t)(s - m->s), mask = m->cap - 1;
	/* Backward shift: move up each later entry of the run whose home is at or before the hole.
	 */
	for (size_t j = (i + 1) & mask; m->s[j].key; j = (j + 1) & mask) {
		size_t home = m->s[j].hash & mask;
		bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			m->s[i] = m->s[j];
			i = j;
		}
	}
	m->s[i].key = NULL;
	m->n--;
}

/* ---- error messages ---------------------------------------------------------------- */

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && cap) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* A string for messages: at most 64 bytes, non-printable bytes as '?'. */
static const char *shown(const char *s, size_t len, char out[72])
{
	size_t n = len > 64 ? 64 : len, o = 0;

	for (size_t i = 0; i < n; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (len > n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* "" for NULL: records store absent texts as "". */
static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- quota fields ------------------------------------------------------------------- */

#define QF(f)                                                                                      \
	{                                                                                          \
#f, offsetof(struct bw_quotas, f), sizeof(((struct bw_quotas *)0)->f)              \
	}

const struct bw__quota_field bw__quota_fields[BW__QUOTA_FIELDS] = {
	QF(connections),          QF(persistent_sessions),  QF(tenant_msgs_per_s),
	QF(tenant_bytes_per_s),   QF(client_msgs_per_s),    QF(client_bytes_per_s),
	QF(client_subscriptions), QF(retained_msgs),        QF(retained_bytes),
	QF(max_packet_bytes),     QF(max_session_expiry_s), QF(session_queued_msgs),
};

uint64_t bw__quota_get(const struct bw_quotas *q, const struct bw__quota_field *f)
{
	uint64_t v = 0;
	uint32_t v32;

	if (f->width == 4) {
		memcpy(&v32, (const char *)q + f->off, 4);
		v = v32;
	} else {
		memcpy(&v, (const char *)q + f->off, 8);
	}
	return v;
}

void bw__quota_set(struct bw_quotas *q, const struct bw__quota_field *f, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	if (f->width == 4)
		memcpy((char *)q + f->off, &v32, 4);
	else
		memcpy((char *)q + f->off, &v, 8);
}

/* ---- validation -------------------------------------------------------------------- */

static const char *const status_names[] = { "active", "suspended" };
static const char *const kind_names[] = { "password", "certificate", "token" };

const char *bw_tenant_status_name(enum bw_tenant_status st)
{
	return (unsigned)st < 2 ? status_names[st] : "?";
}

int bw_tenant_status_parse(const char *s, enum bw_tenant_status *out)
{
	for (unsigned i = 0; i < 2; i++) {
		if (s && strcmp(s, status_names[i]) == 0) {
			*out = (enum bw_tenant_status)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *bw_principal_kind_name(enum bw_principal_kind k)
{
	return (unsigned)k < 3 ? kind_names[k] : "?";
}

int bw_principal_kind_parse(const char *s, enum bw_principal_kind *out)
{
	for (unsigned i = 0; i < 3; i++) {
		if (s && strcmp(s, kind_names[i]) == 0) {
			*out = (enum bw_principal_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A DNS hostname in lower case: LDH labels of 1..63 bytes, no '-' at a label's ends. */
static const char *host_problem(const char *h, size_t len)
{
	size_t label = 0;

	if (len == 0)
		return "is empty";
	if (len > BW_TENANT_HOST_MAX)
		return "is longer than 253 bytes";
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? h[i] : '.';
		if (c == '.') {
			if (label == 0)
				return "has an empty label";
			if (h[i - 1] == '-' || h[i - label] == '-')
				return "has a label starting or ending with '-'";
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			if (++label > 63)
				return "has a label longer than 63 bytes";
		} else if (c >= 'A' && c <= 'Z') {
			return "must be lower case";
		} else {
			return "is not a hostname (letters, digits, '-' and '.')";
		}
	}
	return NULL;
}

/* Checks a list of strings: count, each non-NULL, 1..max bytes, UTF-8, no duplicates. */
static int list_check(const char *what, const char *const *v, size_t n, size_t nmax, size_t max,
                      bool host, char *err, size_t cap)
{
	char show[72];

	if (n > nmax)
		return fail(err, cap, -EINVAL, "%s: more than %zu entries", what, nmax);
	if (n && !v)
		return fail(err, cap, -EINVAL, "%s: the list is missing", what);
	for (size_t i = 0; i < n; i++) {
		size_t len = slen(v[i]);
		if (!v[i] || len == 0)
			return fail(err, cap, -EINVAL, "%s[%zu]: empty", what, i);
		if (len > max)
			return fail(err, cap, -EINVAL, "%s[%zu]: longer than %zu bytes", what, i,
			            max);
		if (!bw_utf8_valid((const uint8_t *)v[i], len))
			return fail(err, cap, -EINVAL, "%s[%zu]: not valid UTF-8", what, i);
		const char *why = host ? host_problem(v[i], len) : NULL;
		if (why)
			return fail(err, cap, -EINVAL, "%s[%zu]: \"%s\" %s", what, i,
			            shown(v[i], len, show), why);
		for (size_t k = 0; k < i; k++) {
			if (strcmp(v[k], v[i]) == 0)
				return fail(err, cap, -EINVAL, "%s[%zu]: \"%s\" is listed twice",
				            what, i, shown(v[i], len, show));
		}
	}
	return 0;
}

int bw_tenancy_quotas_check(const struct bw_quotas *q, char *err, size_t cap)
{
	if (q->max_qos > 2 && q->max_qos != BW_QUOTA_QOS_DEFAULT)
		return fail(err, cap, -EINVAL, "quotas.max_qos: %u is not 0, 1, 2 or the default",
		            q->max_qos);
	if (q->tenant_bytes_per_s > INT64_MAX || q->client_bytes_per_s > INT64_MAX ||
	    q->retained_bytes > INT64_MAX)
		return fail(err, cap, -EINVAL,
		            "quotas: a byte count is above %lld (the largest stored number)",
		            (long long)INT64_MAX);
	if (q->max_packet_bytes > BW_QUOTA_PACKET_MAX)
		return fail(err, cap, -EINVAL,
		            "quotas.max_packet_bytes: %u is above MQTT's largest packet (%u)",
		            q->max_packet_bytes, BW_QUOTA_PACKET_MAX);
	return 0;
}

/*
 * Parses the CA bundle pem[0..len): PEM "CERTIFICATE" blocks of CA
 * certificates (other text between blocks is allowed, other PEM blocks are
 * not). With fps non-NULL, fills (*fps)[0..*n) with their fingerprints (the
 * caller frees *fps). Returns 0 or -EINVAL/-ENOMEM with err saying why.
 */
static int ca_parse(const char *pem, size_t len, uint8_t (**fps)[BW_TENANCY_CA_FP_LEN], size_t *n,
                    char *err, size_t cap)
{
	uint8_t(*out)[BW_TENANCY_CA_FP_LEN] = NULL;
	size_t count = 0;
	int rc = 0;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);

	if (!bio)
		return fail(err, cap, -ENOMEM, "ca_pem: out of memory");
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *data = NULL;
		long dlen = 0;
		if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
			unsigned long e = ERR_peek_last_error();
			bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM &&
			              ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
			ERR_clear_error();
			if (!at_end)
				rc = fail(err, cap, -EINVAL,
				          "ca_pem: certificate %zu: malformed PEM block",
				          count + 1);
			else if (count == 0)
				rc = fail(err, cap, -EINVAL, "ca_pem: no PEM certificate in it");
			break;
		}
		const unsigned char *p = data;
		X509 *x = NULL;
		if (strcmp(name, "CERTIFICATE") != 0) {
			rc = fail(err, cap, -EINVAL,
			          "ca_pem: block %zu is a \"%s\", not a CERTIFICATE (no keys here)",
			          count + 1, strlen(name) > 40 ? "PEM block" : name);
		} else if (count == BW_TENANT_CA_CERTS_MAX) {
			rc = fail(err, cap, -EINVAL, "ca_pem: more than %u certificates",
			          BW_TENANT_CA_CERTS_MAX);
		} else if (!(x = d2i_X509(NULL, &p, dlen)) || p != data + dlen) {
			rc = fail(err, cap, -EINVAL,
			          "ca_pem: certificate %zu: not a valid X.509 "
			          "certificate",
			          count + 1);
		} else if (X509_check_ca(x) < 1) {
			rc = fail(err, cap, -EINVAL,
			          "ca_pem: certificate %zu is not a CA certificate "
			          "(basicConstraints CA:TRUE missing)",
			          count + 1);
		} else if (fps) {
			uint8_t(*grown)[BW_TENANCY_CA_FP_LEN] =
			        realloc(out, (count + 1) * sizeof(*out));
			unsigned char *der = NULL;
			int dl = i2d_X509(x, &der);
			if (!grown || dl <= 0) {
				rc = fail(err, cap, -ENOMEM, "ca_pem: out of memory");
				if (grown)
					out = grown;
			} else {
				out = grown;
				if (bw_tenancy_ca_fingerprint(der, (size_t)dl, out[count]) != 0)
					rc = fail(err, cap, -ENOMEM, "ca_pem: SHA-256 failed");
				for (size_t k = 0; rc == 0 && k < count; k++) {
					if (memcmp(out[k], out[count], BW_TENANCY_CA_FP_LEN) == 0)
						rc = fail(err, cap, -EINVAL,
						          "ca_pem: certificate %zu is listed twice",
						          count + 1);
				}
			}
			OPENSSL_free(der);
		}
		X509_free(x);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		if (rc != 0)
			break;
		count++;
	}
	BIO_free(bio);
	if (rc != 0 || !fps) {
		free(out);
		out = NULL;
	}
	if (fps) {
		*fps = out;
		*n = rc == 0 ? count : 0;
	}
	return rc;
}

int bw__tenancy_ca_fingerprints(const char *pem, size_t len, uint8_t (**fps)[BW_TENANCY_CA_FP_LEN],
                                size_t *n, char *err, size_t cap)
{
	return ca_parse(pem, len, fps, n, err, cap);
}

int bw_tenancy_ca_fingerprint(const uint8_t *der, size_t len, uint8_t fp[BW_TENANCY_CA_FP_LEN])
{
	unsigned int n = 0;

	if (!EVP_Digest(der, len, fp, &n, EVP_sha256(), NULL) || n != BW_TENANCY_CA_FP_LEN)
		return -EIO;
	return 0;
}

/* Parses a rule list (what is "group \"g\"" or "principal \"p\"") into *out (may be NULL). */
static int rules_check(const char *what, const char *rules, struct bw_acl **out, char *err,
                       size_t cap)
{
	struct bw_acl *acl = NULL;
	size_t len = slen(rules);
	char aerr[256];
	int rc;

	if (len > BW_TENANCY_RULES_TEXT_MAX)
		return fail(err, cap, -EINVAL, "%s: rules: longer than %u bytes", what,
		            BW_TENANCY_RULES_TEXT_MAX);
	rc = bw_acl_parse_rules(nz(rules), len, "rules", &acl, aerr, sizeof(aerr));
	if (rc != 0)
		return fail(err, cap, rc == -ENOMEM ? -ENOMEM : -EINVAL, "%s: %s", what, aerr);
	if (bw_acl_rule_count(acl) > BW_TENANCY_RULES_MAX) {
		bw_acl_free(&acl);
		return fail(err, cap, -EINVAL, "%s: rules: more than %u rules", what,
		            BW_TENANCY_RULES_MAX);
	}
	if (out)
		*out = acl;
	else
		bw_acl_free(&acl);
	return 0;
}

static bool group_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > BW_GROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int tenant_name_check(const char *what, const char *name, size_t len, char *err, size_t cap)
{
	char show[72];

	if (!name || bw_tenant_name_check(name, len) != 0 || strlen(name) != len)
		return fail(err, cap, -EINVAL,
		            "%s: tenant name \"%s\" is not 1..63 of a-z, 0-9 and '-' (not at "
		            "either end)",
		            what, name ? shown(name, len, show) : "");
	return 0;
}

/* A tenant's own tenant claim name: printable ASCII, no spaces (a JSON member name). */
static int claim_name_check(const char *name, char *err, size_t cap)
{
	size_t len = slen(name);
	char show[72];

	if (len > BW_TENANT_CLAIM_NAME_MAX)
		return fail(err, cap, -EINVAL, "jwt_tenant_claim: longer than %u bytes",
		            BW_TENANT_CLAIM_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		if (name[i] <= 0x20 || name[i] >= 0x7f)
			return fail(err, cap, -EINVAL,
			            "jwt_tenant_claim: \"%s\" is not a claim name (printable ASCII "
			            "without spaces)",
			            shown(name, len, show));
	}
	return 0;
}

/* Builds the JWT key set of a JWK Set text (NULL when there is none). */
static int jwks_parse(const char *jwks, struct bw_jwt_keys **out, char *err, size_t cap)
{
	size_t len = slen(jwks);
	char jerr[256];
	int rc;

	*out = NULL;
	if (len == 0)
		return 0;
	if (len > BW_TENANT_JWKS_MAX)
		return fail(err, cap, -EINVAL, "jwks: longer than %u bytes", BW_TENANT_JWKS_MAX);
	*out = bw_jwt_keys_new();
	if (!*out)
		return fail(err, cap, -ENOMEM, "jwks: out of memory");
	rc = bw_jwt_keys_parse_jwks(*out, jwks, len, jerr, sizeof(jerr));
	if (rc != 0) {
		bw_jwt_keys_free(out);
		return fail(err, cap, rc == -ENOMEM ? -ENOMEM : -EINVAL, "jwks: %s", jerr);
	}
	return 0;
}

/*
 * The whole tenant check; with fps and keys non-NULL it also hands back the
 * CA fingerprints and JWT keys it parsed (the caller owns them).
 */
static int tenant_check(const struct bw_tenant *t, uint8_t (**fps)[BW_TENANCY_CA_FP_LEN],
                        size_t *nfps, struct bw_jwt_keys **keys, char *err, size_t cap)
{
	char sub[320];
	int rc;

	if ((rc = tenant_name_check("tenant", t->name, t->name_len, err, cap)) != 0)
		return rc;
	const char *name = t->name;
	if ((unsigned)t->status > BW_TENANT_SUSPENDED)
		return fail(err, cap, -EINVAL, "tenant \"%s\": status: not active or suspended",
		            name);
	rc = list_check("sni", t->sni, t->sni_n, BW_TENANT_SNI_MAX, BW_TENANT_HOST_MAX, true, sub,
	                sizeof(sub));
	if (rc == 0)
		rc = list_check("jwt_issuers", t->jwt_issuers, t->jwt_issuers_n,
		                BW_TENANT_JWT_CLAIMS_MAX, BW_TENANT_JWT_CLAIM_MAX, false, sub,
		                sizeof(sub));
	if (rc == 0)
		rc = list_check("jwt_audiences", t->jwt_audiences, t->jwt_audiences_n,
		                BW_TENANT_JWT_CLAIMS_MAX, BW_TENANT_JWT_CLAIM_MAX, false, sub,
		                sizeof(sub));
	if (rc == 0)
		rc = bw_tenancy_quotas_check(&t->quotas, sub, sizeof(sub));
	if (rc == 0)
		rc = claim_name_check(t->jwt_tenant_claim, sub, sizeof(sub));
	if (rc == 0 && slen(t->ca_pem) > BW_TENANT_CA_PEM_MAX)
		rc = fail(sub, sizeof(sub), -EINVAL, "ca_pem: longer than %u bytes",
		          BW_TENANT_CA_PEM_MAX);
	if (rc == 0 && slen(t->ca_pem))
		rc = ca_parse(t->ca_pem, slen(t->ca_pem), fps, nfps, sub, sizeof(sub));
	struct bw_jwt_keys *k = NULL;
	if (rc == 0)
		rc = jwks_parse(t->jwks, &k, sub, sizeof(sub));
	if (rc == 0 && keys)
		*keys = k;
	else
		bw_jwt_keys_free(&k);
	if (rc != 0) {
		if (fps) {
			free(*fps);
			*fps = NULL;
		}
		return fail(err, cap, rc, "tenant \"%s\": %s", name, sub);
	}
	return 0;
}

int bw_tenancy_tenant_check(const struct bw_tenant *t, char *err, size_t cap)
{
	return tenant_check(t, NULL, NULL, NULL, err, cap);
}

int bw_tenancy_group_check(const struct bw_group *g, char *err, size_t cap)
{
	char what[128], show[72];
	int rc;

	if ((rc = tenant_name_check("group", g->tenant, slen(g->tenant), err, cap)) != 0)
		return rc;
	if (!g->name || !group_name_ok(g->name, g->name_len) || strlen(g->name) != g->name_len)
		return fail(err, cap, -EINVAL,
		            "group \"%s\" in tenant \"%s\": name: not 1..%u of A-Z a-z 0-9 . _ -",
		            g->name ? shown(g->name, g->name_len, show) : "", g->tenant,
		            BW_GROUP_NAME_MAX);
	snprintf(what, sizeof(what), "group \"%s/%s\"", g->tenant, g->name);
	return rules_check(what, g->rules, NULL, err, cap);
}

int bw_tenancy_principal_check(const struct bw_principal *p, char *err, size_t cap)
{
	char what[400], show[72], sub[320];
	const char *why = NULL;
	int rc;

	if ((rc = tenant_name_check("principal", p->tenant, slen(p->tenant), err, cap)) != 0)
		return rc;
	if (!p->name || p->name_len == 0 || p->name_len > BW_PRINCIPAL_NAME_MAX ||
	    strlen(p->name) != p->name_len)
		return fail(err, cap, -EINVAL,
		            "principal in tenant \"%s\": name: not 1..%u bytes without NUL",
		            p->tenant, BW_PRINCIPAL_NAME_MAX);
	if (!bw_utf8_valid((const uint8_t *)p->name, p->name_len))
		return fail(err, cap, -EINVAL, "principal in tenant \"%s\": name: not valid UTF-8",
		            p->tenant);
	snprintf(what, sizeof(what), "principal \"%s/%s\"", p->tenant,
	         shown(p->name, p->name_len, show));
	if ((unsigned)p->kind > BW_PRINCIPAL_TOKEN)
		return fail(err, cap, -EINVAL, "%s: kind: not password, certificate or token",
		            what);
	size_t hlen = slen(p->password_hash);
	if (p->kind == BW_PRINCIPAL_PASSWORD && hlen == 0)
		return fail(err, cap, -EINVAL, "%s: password_hash: a password principal needs one",
		            what);
	if (p->kind != BW_PRINCIPAL_PASSWORD && hlen)
		return fail(err, cap, -EINVAL, "%s: password_hash: a %s principal has none", what,
		            bw_principal_kind_name(p->kind));
	if (hlen &&
	    bw_password_hash_check(p->password_hash, hlen, &bw_password_limits_default, &why) != 0)
		return fail(err, cap, -EINVAL, "%s: password_hash: %s", what, why);
	for (size_t i = 0; i < p->groups_n && p->groups; i++) {
		if (p->groups[i] && !group_name_ok(p->groups[i], strlen(p->groups[i])))
			return fail(err, cap, -EINVAL,
			            "%s: groups[%zu]: \"%s\" is not a group name", what, i,
			            shown(p->groups[i], strlen(p->groups[i]), show));
	}
	rc = list_check("groups", p->groups, p->groups_n, BW_PRINCIPAL_GROUPS_MAX,
	                BW_GROUP_NAME_MAX, false, sub, sizeof(sub));
	if (rc != 0)
		return fail(err, cap, rc, "%s: %s", what, sub);
	return rules_check(what, p->rules, NULL, err, cap);
}

/* ---- records ----------------------------------------------------------------------- */

struct tfields {
	atomic_uint refs;
	struct bw_tenant pub; /* groups_n and principals_n unused */
	uint8_t (*fps)[BW_TENANCY_CA_FP_LEN];
	size_t nfps;
	struct bw_jwt_keys *jwt;
};

struct grec {
	atomic_uint refs;
	struct bw_group pub;
};

struct prec {
	atomic_uint refs;
	struct bw_principal pub;
};

/*
 * Room for records and their strings in one allocation: pointer arrays
 * first (aligned, right after the struct), then the strings.
 */
struct blob {
	char *base;
	size_t off;
};

static const char *blob_str(struct blob *b, const char *s)
{
	size_t n = slen(s);
	char *d = b->base + b->off;

	memcpy(d, nz(s), n);
	d[n] = '\0';
	b->off += n + 1;
	return d;
}

static size_t list_need(const char *const *v, size_t n)
{
	size_t need = n * sizeof(char *);

	for (size_t i = 0; i < n; i++)
		need += slen(v[i]) + 1;
	return need;
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Copies v[0..n) as a sorted list: the pointer array at *arr, strings in b. */
static const char *const *blob_list(struct blob *b, const char **arr, const char *const *v,
                                    size_t n)
{
	for (size_t i = 0; i < n; i++)
		arr[i] = blob_str(b, v[i]);
	if (n > 1)
		qsort(arr, n, sizeof(*arr), strp_cmp);
	return n ? arr : NULL;
}

static void tfields_put(struct tfields **f)
{
	if (!*f)
		return;
	if (atomic_fetch_sub_explicit(&(*f)->refs, 1, memory_order_acq_rel) == 1) {
		free((*f)->fps);
		bw_jwt_keys_free(&(*f)->jwt);
		free(*f);
	}
	*f = NULL;
}

/* A validated copy of t, or NULL with err set (*rc the error). */
static struct tfields *tfields_new(const struct bw_tenant *t, uint32_t id, int *rc, char *err,
                                   size_t cap)
{
	uint8_t(*fps)[BW_TENANCY_CA_FP_LEN] = NULL;
	size_t nfps = 0;
	struct bw_jwt_keys *keys = NULL;

	*rc = tenant_check(t, &fps, &nfps, &keys, err, cap);
	if (*rc != 0)
		return NULL;
	size_t lists = (t->sni_n + t->jwt_issuers_n + t->jwt_audiences_n) * sizeof(char *);
	size_t need = sizeof(struct tfields) + lists + t->name_len + 1 + slen(t->ca_pem) + 1 +
	              slen(t->jwks) + 1 + slen(t->jwt_tenant_claim) + 1 +
	              list_need(t->sni, t->sni_n) + list_need(t->jwt_issuers, t->jwt_issuers_n) +
	              list_need(t->jwt_audiences, t->jwt_audiences_n);
	struct tfields *f = calloc(1, need);
	if (!f) {
		free(fps);
		bw_jwt_keys_free(&keys);
		*rc = fail(err, cap, -ENOMEM, "tenant \"%s\": out of memory", t->name);
		return NULL;
	}
	const char **arr = (const char **)(f + 1);
	struct blob b = { .base = (char *)(arr + t->sni_n + t->jwt_issuers_n +
		                           t->jwt_audiences_n) };
	atomic_init(&f->refs, 1);
	f->fps = fps;
	f->nfps = nfps;
	f->jwt = keys;
	f->pub = *t;
	f->pub.id = id;
	f->pub.groups_n = 0;
	f->pub.principals_n = 0;
	f->pub.name = blob_str(&b, t->name);
	f->pub.ca_pem = blob_str(&b, t->ca_pem);
	f->pub.jwks = blob_str(&b, t->jwks);
	f->pub.jwt_tenant_claim = blob_str(&b, t->jwt_tenant_claim);
	f->pub.sni = blob_list(&b, arr, t->sni, t->sni_n);
	arr += t->sni_n;
	f->pub.jwt_issuers = blob_list(&b, arr, t->jwt_issuers, t->jwt_issuers_n);
	arr += t->jwt_issuers_n;
	f->pub.jwt_audiences = blob_list(&b, arr, t->jwt_audiences, t->jwt_audiences_n);
	return f;
}

static void grec_put(struct grec **g)
{
	if (*g && atomic_fetch_sub_explicit(&(*g)->refs, 1, memory_order_acq_rel) == 1)
		free(*g);
	*g = NULL;
}

static struct grec *grec_new(const struct bw_group *g, int *rc, char *err, size_t cap)
{
	*rc = bw_tenancy_group_check(g, err, cap);
	if (*rc != 0)
		return NULL;
	size_t need = sizeof(struct grec) + slen(g->tenant) + g->name_len + slen(g->rules) + 3;
	struct grec *r = calloc(1, need);
	if (!r) {
		*rc = fail(err, cap, -ENOMEM, "group \"%s\": out of memory", g->name);
		return NULL;
	}
	struct blob b = { .base = (char *)(r + 1) };
	atomic_init(&r->refs, 1);
	r->pub.tenant = blob_str(&b, g->tenant);
	r->pub.name = blob_str(&b, g->name);
	r->pub.name_len = g->name_len;
	r->pub.rules = blob_str(&b, g->rules);
	return r;
}

static void prec_put(struct prec **p)
{
	if (*p && atomic_fetch_sub_explicit(&(*p)->refs, 1, memory_order_acq_rel) == 1)
		free(*p);
	*p = NULL;
}

/* A copy of p (validated unless trusted) with groups as given in groups[0..ng). */
static struct prec *prec_make(const struct bw_principal *p, const char *const *groups, size_t ng,
                              bool trusted, int *rc, char *err, size_t cap)
{
	*rc = trusted ? 0 : bw_tenancy_principal_check(p, err, cap);
	if (*rc != 0)
		return NULL;
	size_t need = sizeof(struct prec) + list_need(groups, ng) + slen(p->tenant) + p->name_len +
	              slen(p->password_hash) + slen(p->rules) + 4;
	struct prec *r = calloc(1, need);
	if (!r) {
		*rc = fail(err, cap, -ENOMEM, "principal: out of memory");
		return NULL;
	}
	const char **arr = (const char **)(r + 1);
	struct blob b = { .base = (char *)(arr + ng) };
	atomic_init(&r->refs, 1);
	r->pub = *p;
	r->pub.tenant = blob_str(&b, p->tenant);
	r->pub.name = blob_str(&b, p->name);
	r->pub.password_hash = slen(p->password_hash) ? blob_str(&b, p->password_hash) : NULL;
	r->pub.rules = blob_str(&b, p->rules);
	r->pub.groups = blob_list(&b, arr, groups, ng);
	r->pub.groups_n = ng;
	return r;
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(nz(a), nz(b)) == 0;
}

static bool list_eq(const char *const *a, size_t an, const char *const *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

bool bw__tenant_equal(const struct bw_tenant *a, const struct bw_tenant *b)
{
	return str_eq(a->name, b->name) && a->id == b->id && a->status == b->status &&
	       a->allow_anonymous == b->allow_anonymous &&
	       memcmp(&a->quotas, &b->quotas, sizeof(a->quotas)) == 0 &&
	       list_eq(a->sni, a->sni_n, b->sni, b->sni_n) && str_eq(a->ca_pem, b->ca_pem) &&
	       list_eq(a->jwt_issuers, a->jwt_issuers_n, b->jwt_issuers, b->jwt_issuers_n) &&
	       list_eq(a->jwt_audiences, a->jwt_audiences_n, b->jwt_audiences,
	               b->jwt_audiences_n) &&
	       str_eq(a->jwks, b->jwks) && str_eq(a->jwt_tenant_claim, b->jwt_tenant_claim);
}

bool bw__group_equal(const struct bw_group *a, const struct bw_group *b)
{
	return str_eq(a->tenant, b->tenant) && str_eq(a->name, b->name) &&
	       str_eq(a->rules, b->rules);
}

bool bw__principal_equal(const struct bw_principal *a, const struct bw_principal *b)
{
	return str_eq(a->tenant, b->tenant) && str_eq(a->name, b->name) && a->kind == b->kind &&
	       str_eq(a->password_hash, b->password_hash) && a->enabled == b->enabled &&
	       list_eq(a->groups, a->groups_n, b->groups, b->groups_n) &&
	       str_eq(a->rules, b->rules);
}

/* ---- tenant versions and snapshots -------------------------------------------------- */

struct trec {
	atomic_uint refs;
	struct tfields *f;
	struct bw_tenant view; /* f->pub with the counts */
	struct grec **groups;  /* sorted by name */
	size_t ng;
	struct map gmap;     /* name -> struct grec * */
	struct prec **prins; /* sorted by name */
	size_t np;
	struct map pmap;               /* name -> index + 1 */
	_Atomic(struct bw_acl *) *acl; /* np slots: effective ACLs, built on demand */
};

struct bw_tenancy {
	atomic_uint refs;
	uint64_t version;
	uint32_t next_id;
	struct trec **t; /* sorted by name */
	size_t n;
	struct map byname, bysni, byca;
	size_t ngroups, nprincipals;
	const char *claims[BW_TENANCY_CLAIM_NAMES_MAX - 1]; /* sorted; borrowed from t's records */
	size_t nclaims;
};

static void trec_put(struct trec **t)
{
	struct trec *r = *t;

	*t = NULL;
	if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < r->ng; i++)
		grec_put(&r->groups[i]);
	for (size_t i = 0; i < r->np; i++) {
		prec_put(&r->prins[i]);
		struct bw_acl *a = atomic_load_explicit(&r->acl[i], memory_order_acquire);
		bw_acl_free(&a);
	}
	free(r->groups);
	free(r->prins);
	free(r->acl);
	map_free(&r->gmap);
	map_free(&r->pmap);
	tfields_put(&r->f);
	free(r);
}

struct bw_tenancy *bw_tenancy_empty(void)
{
	struct bw_tenancy *s = calloc(1, sizeof(*s));

	if (s) {
		atomic_init(&s->refs, 1);
		s->next_id = 1;
	}
	return s;
}

struct bw_tenancy *bw_tenancy_ref(const struct bw_tenancy *s)
{
	struct bw_tenancy *m = (struct bw_tenancy *)s; /* the count is not part of the value */

	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void bw_tenancy_release(struct bw_tenancy **sp)
{
	struct bw_tenancy *s = sp ? *sp : NULL;

	if (!s)
		return;
	*sp = NULL;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		trec_put(&s->t[i]);
	free(s->t);
	map_free(&s->byname);
	map_free(&s->bysni);
	map_free(&s->byca);
	free(s);
}

uint64_t bw_tenancy_version(const struct bw_tenancy *s)
{
	return s->version;
}

uint32_t bw__tenancy_next_id(const struct bw_tenancy *s)
{
	return s->next_id;
}

size_t bw_tenancy_tenant_count(const struct bw_tenancy *s)
{
	return s->n;
}

size_t bw_tenancy_group_count(const struct bw_tenancy *s)
{
	return s->ngroups;
}

size_t bw_tenancy_principal_count(const struct bw_tenancy *s)
{
	return s->nprincipals;
}

/* The trec of a view from s (views are the first-class handles callers hold). */
static struct trec *trec_of(const struct bw_tenant *t)
{
	return (struct trec *)((char *)t - offsetof(struct trec, view));
}

const struct bw_tenant *bw_tenancy_tenant_at(const struct bw_tenancy *s, size_t i)
{
	return i < s->n ? &s->t[i]->view : NULL;
}

const struct bw_tenant *bw_tenancy_tenant(const struct bw_tenancy *s, const char *name, size_t len)
{
	struct trec *t = name ? map_get(&s->byname, name, len) : NULL;

	return t ? &t->view : NULL;
}

const char *const *bw_tenancy_claim_names(const struct bw_tenancy *s, size_t *n)
{
	*n = s->nclaims;
	return s->claims;
}

const struct bw_tenant *bw_tenancy_tenant_by_sni(const struct bw_tenancy *s, const char *host,
                                                 size_t len)
{
	char low[BW_TENANT_HOST_MAX];

	if (!host || len == 0)
		return NULL;
	if (host[len - 1] == '.')
		len--;
	if (len == 0 || len > sizeof(low))
		return NULL;
	for (size_t i = 0; i < len; i++)
		low[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] + 32) : host[i];
	struct trec *t = map_get(&s->bysni, low, len);
	return t ? &t->view : NULL;
}

const struct bw_tenant *bw_tenancy_tenant_by_ca(const struct bw_tenancy *s,
                                                const uint8_t fp[BW_TENANCY_CA_FP_LEN])
{
	struct trec *t = map_get(&s->byca, (const char *)fp, BW_TENANCY_CA_FP_LEN);

	return t ? &t->view : NULL;
}

const struct bw_group *bw_tenancy_group_at(const struct bw_tenancy *s, const struct bw_tenant *t,
                                           size_t i)
{
	struct trec *r = trec_of(t);

	(void)s;
	return i < r->ng ? &r->groups[i]->pub : NULL;
}

const struct bw_principal *bw_tenancy_principal_at(const struct bw_tenancy *s,
                                                   const struct bw_tenant *t, size_t i)
{
	struct trec *r = trec_of(t);

	(void)s;
	return i < r->np ? &r->prins[i]->pub : NULL;
}

const struct bw_group *bw_tenancy_group(const struct bw_tenancy *s, const struct bw_tenant *t,
                                        const char *name, size_t len)
{
	struct grec *g = name ? map_get(&trec_of(t)->gmap, name, len) : NULL;

	(void)s;
	return g ? &g->pub : NULL;
}

const struct bw_principal *bw_tenancy_principal(const struct bw_tenancy *s,
                                                const struct bw_tenant *t, const char *name,
                                                size_t len)
{
	struct trec *r = trec_of(t);
	uintptr_t i = name ? (uintptr_t)map_get(&r->pmap, name, len) : 0;

	(void)s;
	return i ? &r->prins[i - 1]->pub : NULL;
}

const struct bw_jwt_keys *bw_tenancy_tenant_jwt_keys(const struct bw_tenancy *s,
                                                     const struct bw_tenant *t)
{
	(void)s;
	return trec_of(t)->f->jwt;
}

/* Appends s and a newline to buf[*len..), which has room (counted by the caller). */
static void append_rules(char *buf, size_t *len, const char *s)
{
	size_t n = slen(s);

	memcpy(buf + *len, nz(s), n);
	*len += n;
	buf[(*len)++] = '\n';
}

static struct bw_acl *effective_acl(const struct trec *r, const struct bw_principal *p)
{
	const struct grec *gs[BW_PRINCIPAL_GROUPS_MAX];
	size_t ng = 0, need = slen(p->rules) + 1, len = 0;
	struct bw_acl *acl = NULL;

	for (size_t i = 0; i < p->groups_n && ng < BW_PRINCIPAL_GROUPS_MAX; i++) {
		const struct grec *g = map_get(&r->gmap, p->groups[i], strlen(p->groups[i]));
		if (g) {
			gs[ng++] = g;
			need += slen(g->pub.rules) + 1;
		}
	}
	char *text = malloc(need);
	if (!text)
		return NULL;
	for (size_t i = 0; i < ng; i++)
		append_rules(text, &len, gs[i]->pub.rules);
	append_rules(text, &len, p->rules);
	/* Every part was checked when it was put, so only memory can fail here. */
	if (bw_acl_parse_rules(text, len, p->name, &acl, NULL, 0) != 0)
		acl = NULL;
	free(text);
	return acl;
}

const struct bw_acl *bw_tenancy_principal_acl(const struct bw_tenancy *s,
                                              const struct bw_principal *p)
{
	struct trec *r = map_get(&s->byname, p->tenant, strlen(p->tenant));
	uintptr_t i = r ? (uintptr_t)map_get(&r->pmap, p->name, p->name_len) : 0;

	if (!i)
		return NULL;
	_Atomic(struct bw_acl *) *slot = &r->acl[i - 1];
	struct bw_acl *acl = atomic_load_explicit(slot, memory_order_acquire);
	if (acl)
		return acl;
	acl = effective_acl(r, &r->prins[i - 1]->pub);
	if (!acl)
		return NULL;
	struct bw_acl *expected = NULL;
	if (!atomic_compare_exchange_strong_explicit(slot, &expected, acl, memory_order_acq_rel,
	                                             memory_order_acquire)) {
		bw_acl_free(&acl); /* another thread built it first */
		return expected;
	}
	return acl;
}

/* ---- builder ------------------------------------------------------------------------- */

/* A tenant being changed: its fields and mutable copies of its record arrays. */
struct draft {
	char name[BW_TENANT_NAME_MAX + 1]; /* the map's key */
	struct tfields *f;                 /* NULL: deleted */
	struct grec **g;                   /* NULL entries: deleted */
	size_t ng, gcap;
	struct map gmap; /* name -> index + 1 */
	struct prec **p;
	size_t np, pcap;
	struct map pmap; /* name -> index + 1 */
};

struct bw__tbuild {
	struct bw_tenancy *base;
	struct map drafts; /* name -> struct draft * */
	struct draft **dl;
	size_t nd, dcap;
	uint32_t next_id;
};

static void draft_clear(struct draft *d)
{
	for (size_t i = 0; i < d->ng; i++)
		grec_put(&d->g[i]);
	for (size_t i = 0; i < d->np; i++)
		prec_put(&d->p[i]);
	free(d->g);
	free(d->p);
	map_free(&d->gmap);
	map_free(&d->pmap);
	d->g = NULL;
	d->p = NULL;
	d->ng = d->gcap = d->np = d->pcap = 0;
}

static void draft_free(struct draft *d)
{
	draft_clear(d);
	tfields_put(&d->f);
	free(d);
}

void bw__tbuild_free(struct bw__tbuild **bp)
{
	struct bw__tbuild *b = bp ? *bp : NULL;

	if (!b)
		return;
	for (size_t i = 0; i < b->nd; i++)
		draft_free(b->dl[i]);
	free(b->dl);
	map_free(&b->drafts);
	bw_tenancy_release(&b->base);
	free(b);
	*bp = NULL;
}

struct bw__tbuild *bw__tbuild_new(const struct bw_tenancy *base)
{
	struct bw__tbuild *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->base = base ? bw_tenancy_ref(base) : bw_tenancy_empty();
	if (!b->base) {
		free(b);
		return NULL;
	}
	b->next_id = b->base->next_id;
	return b;
}

uint32_t bw__tbuild_next_id(const struct bw__tbuild *b)
{
	return b->next_id;
}

void bw__tbuild_set_next_id(struct bw__tbuild *b, uint32_t next)
{
	if (next > b->next_id)
		b->next_id = next;
}

/* Appends r (a struct grec * or struct prec *) to a draft array and its map. */
static int arr_add(void ***arr, size_t *n, size_t *cap, struct map *m, const char *key, size_t len,
                   void *r)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		void **g = realloc(*arr, c * sizeof(*g));
		if (!g)
			return -ENOMEM;
		*arr = g;
		*cap = c;
	}
	if (map_put(m, key, len, (void *)(uintptr_t)(*n + 1), NULL) < 0)
		return -ENOMEM;
	(*arr)[(*n)++] = r;
	return 0;
}

/*
 * The draft of tenant name: an existing one, or a new one copied from the
 * base when the base has the tenant (or, with create, an empty one).
 * NULL with *rc -ENOENT or -ENOMEM.
 */
static struct draft *draft_get(struct bw__tbuild *b, const char *name, size_t len, bool create,
                               int *rc)
{
	struct draft *d = map_get(&b->drafts, name, len);

	*rc = 0;
	if (d)
		return d;
	struct trec *t = map_get(&b->base->byname, name, len);
	if (!t && !create) {
		*rc = -ENOENT;
		return NULL;
	}
	if (len > BW_TENANT_NAME_MAX) {
		*rc = -EINVAL;
		return NULL;
	}
	*rc = -ENOMEM;
	if (b->nd == b->dcap) {
		size_t c = b->dcap ? b->dcap * 2 : 8;
		struct draft **dl = realloc(b->dl, c * sizeof(*dl));
		if (!dl)
			return NULL;
		b->dl = dl;
		b->dcap = c;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	memcpy(d->name, name, len);
	for (size_t i = 0; t && i < t->ng; i++) {
		atomic_fetch_add_explicit(&t->groups[i]->refs, 1, memory_order_relaxed);
		if (arr_add((void ***)&d->g, &d->ng, &d->gcap, &d->gmap, t->groups[i]->pub.name,
		            t->groups[i]->pub.name_len, t->groups[i]) != 0) {
			struct grec *taken = t->groups[i]; /* the reference just taken */
			grec_put(&taken);
			goto nomem;
		}
	}
	for (size_t i = 0; t && i < t->np; i++) {
		atomic_fetch_add_explicit(&t->prins[i]->refs, 1, memory_order_relaxed);
		if (arr_add((void ***)&d->p, &d->np, &d->pcap, &d->pmap, t->prins[i]->pub.name,
		            t->prins[i]->pub.name_len, t->prins[i]) != 0) {
			struct prec *taken = t->prins[i];
			prec_put(&taken);
			goto nomem;
		}
	}
	if (t) {
		d->f = t->f;
		atomic_fetch_add_explicit(&d->f->refs, 1, memory_order_relaxed);
	}
	if (map_put(&b->drafts, d->name, len, d, NULL) < 0)
		goto nomem;
	b->dl[b->nd++] = d;
	*rc = 0;
	return d;
nomem:
	draft_free(d);
	return NULL;
}

/* The live (not deleted) draft of tenant, or NULL with an error in err. */
static struct draft *live_draft(struct bw__tbuild *b, const char *tenant, int *rc, char *err,
                                size_t cap)
{
	size_t len = slen(tenant);
	struct draft *d = tenant ? draft_get(b, tenant, len, false, rc) : NULL;

	if (d && !d->f) {
		*rc = -ENOENT;
		d = NULL;
	}
	if (!d) {
		if (!tenant || *rc == 0 || *rc == -EINVAL)
			*rc = -ENOENT;
		char show[72];
		fail(err, cap, *rc, *rc == -ENOENT ? "no tenant \"%s\"" : "out of memory",
		     tenant ? shown(tenant, len, show) : "");
	}
	return d;
}

int bw__tbuild_tenant_put(struct bw__tbuild *b, const struct bw_tenant *t, uint32_t id, char *err,
                          size_t cap)
{
	int rc;
	struct tfields *f;

	if ((rc = tenant_name_check("tenant", t->name, t->name_len, err, cap)) != 0)
		return rc;
	struct draft *d = draft_get(b, t->name, t->name_len, true, &rc);
	if (!d)
		return fail(err, cap, rc, "tenant \"%s\": out of memory", t->name);
	if (id == 0)
		id = d->f ? d->f->pub.id : b->next_id;
	if (id == 0 || id == UINT32_MAX)
		return fail(err, cap, -EINVAL, "tenant \"%s\": no tenant id left", t->name);
	f = tfields_new(t, id, &rc, err, cap);
	if (!f)
		return rc;
	if (!d->f)
		draft_clear(d); /* re-created after a delete: it starts empty */
	tfields_put(&d->f);
	d->f = f;
	if (id >= b->next_id)
		b->next_id = id + 1;
	return 0;
}

int bw__tbuild_tenant_delete(struct bw__tbuild *b, const char *name, size_t len, char *err,
                             size_t cap)
{
	int rc;
	char show[72];
	struct draft *d = name ? draft_get(b, name, len, false, &rc) : NULL;

	if (!d || !d->f) {
		if (d || rc == -ENOENT || rc == -EINVAL || !name)
			return fail(err, cap, -ENOENT, "no tenant \"%s\"",
			            name ? shown(name, len, show) : "");
		return fail(err, cap, rc, "out of memory");
	}
	draft_clear(d);
	tfields_put(&d->f);
	return 0;
}

const struct bw_tenant *bw__tbuild_tenant(struct bw__tbuild *b, const char *name, size_t len)
{
	struct draft *d = name ? map_get(&b->drafts, name, len) : NULL;

	if (d)
		return d->f ? &d->f->pub : NULL;
	struct trec *t = name ? map_get(&b->base->byname, name, len) : NULL;
	return t ? &t->f->pub : NULL;
}

int bw__tbuild_group_put(struct bw__tbuild *b, const struct bw_group *g, char *err, size_t cap)
{
	int rc;
	struct grec *r = grec_new(g, &rc, err, cap);

	if (!r)
		return rc;
	struct draft *d = live_draft(b, g->tenant, &rc, err, cap);
	if (!d) {
		grec_put(&r);
		return rc;
	}
	uintptr_t i = (uintptr_t)map_get(&d->gmap, r->pub.name, r->pub.name_len);
	if (i) {
		/* The map's key moves to the new record before the old one can be freed. */
		map_put(&d->gmap, r->pub.name, r->pub.name_len, (void *)i, NULL);
		grec_put(&d->g[i - 1]);
		d->g[i - 1] = r;
		return 0;
	}
	if (arr_add((void ***)&d->g, &d->ng, &d->gcap, &d->gmap, r->pub.name, r->pub.name_len, r) !=
	    0) {
		grec_put(&r);
		return fail(err, cap, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Principal i of d without group (a copy), or -ENOMEM. */
static int drop_group(struct draft *d, size_t i, const char *group)
{
	const struct bw_principal *p = &d->p[i]->pub;
	const char *keep[BW_PRINCIPAL_GROUPS_MAX];
	size_t n = 0;
	int rc;

	for (size_t k = 0; k < p->groups_n && n < BW_PRINCIPAL_GROUPS_MAX; k++) {
		if (strcmp(p->groups[k], group) != 0)
			keep[n++] = p->groups[k];
	}
	if (n == p->groups_n)
		return 0;
	struct prec *r = prec_make(p, keep, n, true, &rc, NULL, 0);
	if (!r)
		return rc;
	map_put(&d->pmap, r->pub.name, r->pub.name_len, (void *)(uintptr_t)(i + 1), NULL);
	prec_put(&d->p[i]);
	d->p[i] = r;
	return 0;
}

int bw__tbuild_group_delete(struct bw__tbuild *b, const char *tenant, const char *name, char *err,
                            size_t cap)
{
	int rc;
	char show[72];
	struct draft *d = live_draft(b, tenant, &rc, err, cap);

	if (!d)
		return rc;
	uintptr_t i = name ? (uintptr_t)map_get(&d->gmap, name, strlen(name)) : 0;
	if (!i)
		return fail(err, cap, -ENOENT, "no group \"%s\" in tenant \"%s\"",
		            name ? shown(name, strlen(name), show) : "", tenant);
	for (size_t k = 0; k < d->np; k++) {
		if (d->p[k] && drop_group(d, k, name) != 0)
			return fail(err, cap, -ENOMEM, "out of memory");
	}
	map_del(&d->gmap, name, strlen(name));
	grec_put(&d->g[i - 1]);
	return 0;
}

int bw__tbuild_principal_put(struct bw__tbuild *b, const struct bw_principal *p, bool check_groups,
                             char *err, size_t cap)
{
	int rc;
	char show[72];
	struct prec *r = prec_make(p, p->groups, p->groups_n, false, &rc, err, cap);

	if (!r)
		return rc;
	struct draft *d = live_draft(b, p->tenant, &rc, err, cap);
	if (!d) {
		prec_put(&r);
		return rc;
	}
	for (size_t k = 0; check_groups && k < r->pub.groups_n; k++) {
		const char *g = r->pub.groups[k];
		if (!map_get(&d->gmap, g, strlen(g))) {
			rc = fail(err, cap, -ENOENT, "principal \"%s/%s\": groups: no group \"%s\"",
			          r->pub.tenant, shown(r->pub.name, r->pub.name_len, show), g);
			prec_put(&r);
			return rc;
		}
	}
	uintptr_t i = (uintptr_t)map_get(&d->pmap, r->pub.name, r->pub.name_len);
	if (i) {
		map_put(&d->pmap, r->pub.name, r->pub.name_len, (void *)i, NULL);
		prec_put(&d->p[i - 1]);
		d->p[i - 1] = r;
		return 0;
	}
	if (arr_add((void ***)&d->p, &d->np, &d->pcap, &d->pmap, r->pub.name, r->pub.name_len, r) !=
	    0) {
		prec_put(&r);
		return fail(err, cap, -ENOMEM, "out of memory");
	}
	return 0;
}

int bw__tbuild_principal_delete(struct bw__tbuild *b, const char *tenant, const char *name,
                                char *err, size_t cap)
{
	int rc;
	char show[72];
	struct draft *d = live_draft(b, tenant, &rc, err, cap);

	if (!d)
		return rc;
	uintptr_t i = name ? (uintptr_t)map_get(&d->pmap, name, strlen(name)) : 0;
	if (!i)
		return fail(err, cap, -ENOENT, "no principal \"%s\" in tenant \"%s\"",
		            name ? shown(name, strlen(name), show) : "", tenant);
	map_del(&d->pmap, name, strlen(name));
	prec_put(&d->p[i - 1]);
	return 0;
}

const struct bw_principal *bw__tbuild_principal(struct bw__tbuild *b, const char *tenant,
                                                const char *name)
{
	if (!tenant || !name)
		return NULL;
	struct draft *d = map_get(&b->drafts, tenant, strlen(tenant));
	if (d) {
		uintptr_t i = d->f ? (uintptr_t)map_get(&d->pmap, name, strlen(name)) : 0;
		return i ? &d->p[i - 1]->pub : NULL;
	}
	struct trec *t = map_get(&b->base->byname, tenant, strlen(tenant));
	return t ? bw_tenancy_principal(b->base, &t->view, name, strlen(name)) : NULL;
}

const struct bw_group *bw__tbuild_group(struct bw__tbuild *b, const char *tenant, const char *name)
{
	if (!tenant || !name)
		return NULL;
	struct draft *d = map_get(&b->drafts, tenant, strlen(tenant));
	if (d) {
		uintptr_t i = d->f ? (uintptr_t)map_get(&d->gmap, name, strlen(name)) : 0;
		return i ? &d->g[i - 1]->pub : NULL;
	}
	struct trec *t = map_get(&b->base->byname, tenant, strlen(tenant));
	return t ? bw_tenancy_group(b->base, &t->view, name, strlen(name)) : NULL;
}

void bw__tenancy_set_version(struct bw_tenancy *s, uint64_t version)
{
	s->version = version;
}

static int grec_cmp(const void *a, const void *b)
{
	return strcmp((*(struct grec *const *)a)->pub.name, (*(struct grec *const *)b)->pub.name);
}

static int prec_cmp(const void *a, const void *b)
{
	return strcmp((*(struct prec *const *)a)->pub.name, (*(struct prec *const *)b)->pub.name);
}

static int trec_cmp(const void *a, const void *b)
{
	return strcmp((*(struct trec *const *)a)->f->pub.name,
	              (*(struct trec *const *)b)->f->pub.name);
}

/* Moves the non-NULL entries of arr[0..*n) to its front and sorts them. */
static void compact(void **arr, size_t *n, int (*cmp)(const void *, const void *))
{
	size_t out = 0;

	for (size_t i = 0; i < *n; i++) {
		if (arr[i])
			arr[out++] = arr[i];
	}
	*n = out;
	if (out > 1)
		qsort(arr, out, sizeof(*arr), cmp);
}

/* Freezes a live draft into a new tenant version; the draft's arrays move into it. */
static struct trec *freeze(struct draft *d)
{
	struct trec *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	compact((void **)d->g, &d->ng, grec_cmp);
	compact((void **)d->p, &d->np, prec_cmp);
	r->acl = calloc(d->np ? d->np : 1, sizeof(*r->acl));
	if (!r->acl || map_grow(&r->gmap, d->ng) != 0 || map_grow(&r->pmap, d->np) != 0) {
		free(r->acl);
		map_free(&r->gmap);
		map_free(&r->pmap);
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < d->ng; i++)
		map_put(&r->gmap, d->g[i]->pub.name, d->g[i]->pub.name_len, d->g[i], NULL);
	for (size_t i = 0; i < d->np; i++) {
		atomic_init(&r->acl[i], NULL);
		map_put(&r->pmap, d->p[i]->pub.name, d->p[i]->pub.name_len,
		        (void *)(uintptr_t)(i + 1), NULL);
	}
	r->groups = d->g;
	r->ng = d->ng;
	r->prins = d->p;
	r->np = d->np;
	r->f = d->f;
	d->f = NULL;
	d->g = NULL;
	d->p = NULL;
	d->ng = d->np = d->gcap = d->pcap = 0;
	map_free(&d->gmap);
	map_free(&d->pmap);
	r->view = r->f->pub;
	r->view.groups_n = r->ng;
	r->view.principals_n = r->np;
	return r;
}

/*
 * Adds key -> t to an index; a key two tenants claim is a clash: strict
 * fails, lenient marks it (value NULL) so that it resolves to nobody.
 */
static int index_add(struct map *m, const char *key, size_t len, struct trec *t, bool strict,
                     size_t *clashes, const char *what, char *err, size_t cap)
{
	struct slot *s = map_find(m, key, len);

	if (!s)
		return map_put(m, key, len, t, NULL) < 0 ? fail(err, cap, -ENOMEM, "out of memory")
		                                         : 0;
	if (s->val == t)
		return 0;
	if (strict)
		return fail(err, cap, -EEXIST, "%s already belongs to tenant \"%s\" (not \"%s\")",
		            what, s->val ? ((struct trec *)s->val)->f->pub.name : "?",
		            t->f->pub.name);
	if (s->val)
		(*clashes)++;
	s->val = NULL;
	return 0;
}

static int index_tenant(struct bw_tenancy *s, struct trec *t, bool strict, size_t *clashes,
                        char *err, size_t cap)
{
	const struct tfields *f = t->f;
	char what[320];
	int rc = 0;

	if (map_put(&s->byname, f->pub.name, f->pub.name_len, t, NULL) < 0)
		return fail(err, cap, -ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < f->pub.sni_n; i++) {
		snprintf(what, sizeof(what), "sni hostname \"%s\"", f->pub.sni[i]);
		rc = index_add(&s->bysni, f->pub.sni[i], strlen(f->pub.sni[i]), t, strict, clashes,
		               what, err, cap);
	}
	for (size_t i = 0; rc == 0 && i < f->nfps; i++) {
		snprintf(what, sizeof(what), "CA certificate %zu of ca_pem", i + 1);
		rc = index_add(&s->byca, (const char *)f->fps[i], BW_TENANCY_CA_FP_LEN, t, strict,
		               clashes, what, err, cap);
	}
	return rc;
}

/*
 * Adds t's own tenant claim name to s's set. Past the limit, strict fails
 * and lenient leaves the name out (its tenants get no claim signal) and
 * counts a clash.
 */
static int claims_add(struct bw_tenancy *s, const struct trec *t, bool strict, size_t *clashes,
                      char *err, size_t cap)
{
	const char *name = t->f->pub.jwt_tenant_claim;

	if (!name || !*name)
		return 0;
	for (size_t i = 0; i < s->nclaims; i++) {
		if (strcmp(s->claims[i], name) == 0)
			return 0;
	}
	if (s->nclaims < BW_TENANCY_CLAIM_NAMES_MAX - 1) {
		s->claims[s->nclaims++] = name;
		return 0;
	}
	if (strict)
		return bw__tenancy_claims_full(t->f->pub.name, name, err, cap);
	(*clashes)++;
	return 0;
}

int bw__tenancy_claims_full(const char *tenant, const char *name, char *err, size_t cap)
{
	char show[72];

	return fail(err, cap, -EINVAL,
	            "tenant \"%s\": jwt_tenant_claim: \"%s\" would be one claim name too many: "
	            "tenants may name at most %u different ones besides the node's "
	            "tenant_claim; use a name another tenant uses, or none (the node's)",
	            tenant, shown(name, strlen(name), show), BW_TENANCY_CLAIM_NAMES_MAX - 1);
}

int bw__tbuild_finish(struct bw__tbuild **bp, uint64_t version, bool strict, size_t *clashes,
                      struct bw_tenancy **out, char *err, size_t cap)
{
	struct bw__tbuild *b = *bp;
	struct bw_tenancy *s = bw_tenancy_empty();
	struct map ids = { 0 }; /* strict: id -> tenant */
	size_t ignored = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!clashes)
		clashes = &ignored;
	*clashes = 0;
	if (!s)
		goto done;
	s->version = version;
	s->next_id = b->next_id;
	s->t = calloc(b->base->n + b->nd + 1, sizeof(*s->t));
	if (!s->t)
		goto done;
	for (size_t i = 0; i < b->base->n; i++) {
		struct trec *t = b->base->t[i];
		if (map_get(&b->drafts, t->f->pub.name, t->f->pub.name_len))
			continue;
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
		s->t[s->n++] = t;
	}
	for (size_t i = 0; i < b->nd; i++) {
		if (!b->dl[i]->f)
			continue;
		struct trec *t = freeze(b->dl[i]);
		if (!t)
			goto done;
		s->t[s->n++] = t;
	}
	/*
	 * Claim names before sorting: the tenants this builder did not touch
	 * come first, so that a write past the limit is the one refused (or,
	 * lenient, left out) and the names in force stay.
	 */
	for (size_t i = 0; i < s->n; i++) {
		if ((rc = claims_add(s, s->t[i], strict, clashes, err, cap)) != 0)
			goto done;
	}
	rc = -ENOMEM;
	if (s->nclaims > 1)
		qsort(s->claims, s->nclaims, sizeof(*s->claims), strp_cmp);
	if (s->n > 1)
		qsort(s->t, s->n, sizeof(*s->t), trec_cmp);
	if (map_grow(&s->byname, s->n) != 0)
		goto done;
	for (size_t i = 0; i < s->n; i++) {
		struct trec *t = s->t[i];
		if ((rc = index_tenant(s, t, strict, clashes, err, cap)) != 0)
			goto done;
		if (strict) {
			const char *id = (const char *)&t->f->pub.id;
			struct trec *other = map_get(&ids, id, sizeof(uint32_t));
			if (other) {
				rc = fail(err, cap, -EEXIST, "tenants \"%s\" and \"%s\" have id %u",
				          other->f->pub.name, t->f->pub.name, t->f->pub.id);
				goto done;
			}
			if (map_put(&ids, id, sizeof(uint32_t), t, NULL) < 0) {
				rc = -ENOMEM;
				goto done;
			}
		}
		s->ngroups += t->ng;
		s->nprincipals += t->np;
	}
	rc = 0;
done:
	if (rc == -ENOMEM)
		fail(err, cap, rc, "out of memory");
	if (rc != 0)
		bw_tenancy_release(&s);
	map_free(&ids);
	*out = s;
	bw__tbuild_free(bp);
	return rc;
}

/* ---- deltas -------------------------------------------------------------------------- */

struct dbuild {
	struct bw_tenancy_delta *d;
	size_t cap;
	int rc;
};

static void add_change(struct dbuild *db, enum bw_tenancy_kind kind, bool deleted,
                       const char *tenant, const char *name)
{
	struct bw_tenancy_delta *d = db->d;

	if (db->rc)
		return;
	if (d->n == db->cap) {
		size_t c = db->cap ? db->cap * 2 : 16;
		struct bw_tenancy_change *n = realloc(d->changes, c * sizeof(*n));
		if (!n) {
			db->rc = -ENOMEM;
			return;
		}
		d->changes = n;
		db->cap = c;
	}
	struct bw_tenancy_change *c = &d->changes[d->n];
	c->kind = kind;
	c->deleted = deleted;
	c->tenant = strdup(tenant);
	c->name = strdup(name);
	if (!c->tenant || !c->name) {
		free((char *)c->tenant);
		free((char *)c->name);
		db->rc = -ENOMEM;
		return;
	}
	d->n++;
}

void bw_tenancy_delta_free(struct bw_tenancy_delta **dp)
{
	struct bw_tenancy_delta *d = dp ? *dp : NULL;

	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free((char *)d->changes[i].tenant);
		free((char *)d->changes[i].name);
	}
	free(d->changes);
	free(d);
	*dp = NULL;
}

/* Lists everything in t as new (nt NULL) or t as deleted (deleted). */
static void all_of(struct dbuild *db, const struct trec *t, bool deleted)
{
	const char *tn = t->f->pub.name;

	add_change(db, BW_TENANCY_TENANT, deleted, tn, tn);
	if (deleted)
		return;
	for (size_t i = 0; i < t->ng; i++)
		add_change(db, BW_TENANCY_GROUP, false, tn, t->groups[i]->pub.name);
	for (size_t i = 0; i < t->np; i++)
		add_change(db, BW_TENANCY_PRINCIPAL, false, tn, t->prins[i]->pub.name);
}

static bool in_changed(const struct map *changed, const struct bw_principal *p)
{
	for (size_t i = 0; p && i < p->groups_n; i++) {
		if (map_get(changed, p->groups[i], strlen(p->groups[i])))
			return true;
	}
	return false;
}

/* Two versions of one tenant. */
static void diff_tenant(struct dbuild *db, const struct trec *x, const struct trec *y)
{
	const char *tn = y->f->pub.name;
	struct map changed = { 0 }; /* group names put or deleted */
	size_t i = 0, k = 0;

	if (x->f != y->f && !bw__tenant_equal(&x->f->pub, &y->f->pub))
		add_change(db, BW_TENANCY_TENANT, false, tn, tn);
	while (i < x->ng || k < y->ng) {
		const struct grec *g = i < x->ng ? x->groups[i] : NULL;
		const struct grec *h = k < y->ng ? y->groups[k] : NULL;
		int c = !g ? 1 : !h ? -1 : strcmp(g->pub.name, h->pub.name);
		const struct grec *which = c < 0 ? g : h;
		bool differs = c != 0 || (g != h && !bw__group_equal(&g->pub, &h->pub));
		if (differs) {
			add_change(db, BW_TENANCY_GROUP, c < 0, tn, which->pub.name);
			if (map_put(&changed, which->pub.name, which->pub.name_len, (void *)which,
			            NULL) < 0)
				db->rc = -ENOMEM;
		}
		i += c <= 0;
		k += c >= 0;
	}
	i = k = 0;
	while (i < x->np || k < y->np) {
		const struct prec *p = i < x->np ? x->prins[i] : NULL;
		const struct prec *q = k < y->np ? y->prins[k] : NULL;
		int c = !p ? 1 : !q ? -1 : strcmp(p->pub.name, q->pub.name);
		if (c < 0)
			add_change(db, BW_TENANCY_PRINCIPAL, true, tn, p->pub.name);
		else if (c > 0)
			add_change(db, BW_TENANCY_PRINCIPAL, false, tn, q->pub.name);
		else if ((p != q && !bw__principal_equal(&p->pub, &q->pub)) ||
		         in_changed(&changed, &p->pub) || in_changed(&changed, &q->pub))
			add_change(db, BW_TENANCY_PRINCIPAL, false, tn, q->pub.name);
		i += c <= 0;
		k += c >= 0;
	}
	map_free(&changed);
}

int bw_tenancy_diff(const struct bw_tenancy *a, const struct bw_tenancy *b,
                    struct bw_tenancy_delta **out)
{
	struct dbuild db = { .d = calloc(1, sizeof(*db.d)) };
	size_t i = 0, k = 0, an = a ? a->n : 0;

	*out = NULL;
	if (!db.d)
		return -ENOMEM;
	db.d->from_version = a ? a->version : 0;
	db.d->to_version = b->version;
	while (db.rc == 0 && (i < an || k < b->n)) {
		const struct trec *x = i < an ? a->t[i] : NULL;
		const struct trec *y = k < b->n ? b->t[k] : NULL;
		int c = !x ? 1 : !y ? -1 : strcmp(x->f->pub.name, y->f->pub.name);
		if (c < 0)
			all_of(&db, x, true);
		else if (c > 0)
			all_of(&db, y, false);
		else if (x != y)
			diff_tenant(&db, x, y);
		i += c <= 0;
		k += c >= 0;
	}
	if (db.rc != 0) {
		bw_tenancy_delta_free(&db.d);
		return db.rc;
	}
	*out = db.d;
	return 0;
}
