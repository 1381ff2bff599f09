/*
 * Building tenancy snapshots (internal to tenancy/: the stores and the
 * file format use it). A builder starts from a base snapshot, takes puts
 * and deletes of tenants, groups and principals, and finishes into a new
 * snapshot that shares every tenant it did not touch with the base. Each
 * put validates its record (tenancy/model.h's checks) and copies it: the
 * builder keeps no pointer to its arguments.
 *
 * Cross-record rules:
 *   - a group or principal needs its tenant (-ENOENT);
 *   - deleting a tenant deletes its groups and principals;
 *   - deleting a group takes it out of every principal's group list;
 *   - an SNI hostname or CA certificate belongs to one tenant at most:
 *     strict finishing refuses a clash (-EEXIST), lenient finishing (for
 *     rows another writer put in a database) leaves the clashing key out of
 *     the index, so that it resolves to no tenant, and counts it.
 * A principal naming a group its tenant lacks is refused only when the put
 * asks for it (writes do; loading from a database does not, where the
 * group may arrive later): a missing group grants nothing.
 */
#ifndef BW_TENANCY_MODEL_BUILD_H
#define BW_TENANCY_MODEL_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenancy/model.h"

struct bw__tbuild;

/*
 * A builder over base (NULL: empty), or NULL when out of memory. It holds
 * its own reference to base. Free it with bw__tbuild_free() unless finished.
 */
struct bw__tbuild *bw__tbuild_new(const struct bw_tenancy *base);

/* Frees *b (NULL is fine) and NULLs it. */
void bw__tbuild_free(struct bw__tbuild **b);

/*
 * Creates or replaces tenant t (validated). A new tenant gets id when it is
 * non-zero, else the builder's next id; an existing one keeps its id, its
 * groups and its principals (id must then be 0 or equal). Returns 0,
 * -EINVAL (bad field, or an id clash), -ENOMEM; err says why.
 */
int bw__tbuild_tenant_put(struct bw__tbuild *b, const struct bw_tenant *t, uint32_t id, char *err,
                          size_t cap);

/* Deletes a tenant with its groups and principals. Returns 0 or -ENOENT, -ENOMEM. */
int bw__tbuild_tenant_delete(struct bw__tbuild *b, const char *name, size_t len, char *err,
                             size_t cap);

/* Creates or replaces group g. Returns 0, -EINVAL, -ENOENT (no tenant), -ENOMEM. */
int bw__tbuild_group_put(struct bw__tbuild *b, const struct bw_group *g, char *err, size_t cap);

/* Deletes a group (and its memberships). Returns 0, -ENOENT, -ENOMEM. */
int bw__tbuild_group_delete(struct bw__tbuild *b, const char *tenant, const char *name, char *err,
                            size_t cap);

/*
 * Creates or replaces principal p. With check_groups, every group it names
 * must exist (-ENOENT). Returns 0, -EINVAL, -ENOENT, -ENOMEM.
 */
int bw__tbuild_principal_put(struct bw__tbuild *b, const struct bw_principal *p, bool check_groups,
                             char *err, size_t cap);

/* Deletes a principal. Returns 0, -ENOENT, -ENOMEM. */
int bw__tbuild_principal_delete(struct bw__tbuild *b, const char *tenant, const char *name,
                                char *err, size_t cap);

/*
 * The tenant, group or principal as the builder has it now, or NULL. Valid
 * until the next call on b. For writes that change one field.
 */
const struct bw_tenant *bw__tbuild_tenant(struct bw__tbuild *b, const char *name, size_t len);
const struct bw_principal *bw__tbuild_principal(struct bw__tbuild *b, const char *tenant,
                                                const char *name);
const struct bw_group *bw__tbuild_group(struct bw__tbuild *b, const char *tenant, const char *name);

/* Sets the version of s, which nobody else may hold yet (the service stamps it). */
void bw__tenancy_set_version(struct bw_tenancy *s, uint64_t version);

/* The id the next new tenant gets; set it (no lower than any id held). */
uint32_t bw__tbuild_next_id(const struct bw__tbuild *b);
void bw__tbuild_set_next_id(struct bw__tbuild *b, uint32_t next);

/*
 * Finishes *b (consumed and NULLed, whatever the result) into *out, a new
 * snapshot with one reference and the given version. strict: a hostname or
 * CA claimed by two tenants is -EEXIST (err names both); otherwise it is
 * left out of the index and *clashes (may be NULL) counts it. Returns 0,
 * -EEXIST or -ENOMEM.
 */
int bw__tbuild_finish(struct bw__tbuild **b, uint64_t version, bool strict, size_t *clashes,
                      struct bw_tenancy **out, char *err, size_t cap);

/* The id the next new tenant of a builder over s would get (file format). */
uint32_t bw__tenancy_next_id(const struct bw_tenancy *s);

/*
 * The quota fields other than max_qos, for the file and the database: the
 * name (the JSON member; the column is "q_" and the name), where it is in
 * struct bw_quotas, and its width (4: uint32_t, at most UINT32_MAX; 8:
 * uint64_t, at most INT64_MAX).
 */
struct bw__quota_field {
	const char *name;
	size_t off;
	unsigned width;
};

#define BW__QUOTA_FIELDS 12
extern const struct bw__quota_field bw__quota_fields[BW__QUOTA_FIELDS];

/* Field f of q, widened; and setting it (v must fit the width). */
uint64_t bw__quota_get(const struct bw_quotas *q, const struct bw__quota_field *f);
void bw__quota_set(struct bw_quotas *q, const struct bw__quota_field *f, uint64_t v);

/*
 * The fingerprints of the CA certificates in pem[0..len), as a tenant's
 * ca_pem is checked: *fps (malloc'd, the caller frees it) and *n. Returns 0
 * or -EINVAL, -ENOMEM with err.
 */
int bw__tenancy_ca_fingerprints(const char *pem, size_t len, uint8_t (**fps)[BW_TENANCY_CA_FP_LEN],
                                size_t *n, char *err, size_t cap);

/*
 * -EINVAL with err saying that tenant's jwt_tenant_claim name would be one
 * distinct claim name more than tenants may name (for the stores' writes).
 */
int bw__tenancy_claims_full(const char *tenant, const char *name, char *err, size_t cap);

/* True when the two records hold the same data (strings and lists compared). */
bool bw__tenant_equal(const struct bw_tenant *a, const struct bw_tenant *b);
bool bw__group_equal(const struct bw_group *a, const struct bw_group *b);
bool bw__principal_equal(const struct bw_principal *a, const struct bw_principal *b);

#endif
