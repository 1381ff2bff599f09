/*
 * Who may connect and what they may do, as one immutable, refcounted
 * value: the password file, the ACL file and the JWT keys of the default
 * tenant. A reload (SIGHUP, or the JWK Set file changing) builds a new
 * policy and publishes it in a slot; each worker notices the slot's
 * generation move on its next tick, takes the new policy, and re-checks
 * its live sessions against it. Readers never wait on a reload: the
 * generation is an atomic, and the slot's mutex is only taken to fetch a
 * new policy.
 */
#ifndef BW_TENANCY_POLICY_H
#define BW_TENANCY_POLICY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct bw_passwd;
struct bw_acl;
struct bw_jwt_keys;

struct bw_policy {
	_Atomic uint32_t refs;
	struct bw_passwd *passwd;     /* NULL: a username is refused (0x86) */
	struct bw_acl *acl;           /* NULL: every topic but $SYS */
	struct bw_jwt_keys *jwt_keys; /* NULL: no tokens */
};

/* Takes the three (any may be NULL); NULL when out of memory (they are freed). */
struct bw_policy *bw_policy_new(struct bw_passwd *passwd, struct bw_acl *acl,
                                struct bw_jwt_keys *jwt_keys);
struct bw_policy *bw_policy_ref(struct bw_policy *p);
/* Drops a reference; the last frees it. NULLs *p. */
void bw_policy_unref(struct bw_policy **p);

struct bw_policy_slot {
	pthread_mutex_t mu;
	struct bw_policy *cur; /* one reference */
	_Atomic uint64_t gen;  /* moves on every publish */
};

void bw_policy_slot_init(struct bw_policy_slot *s, struct bw_policy *initial);
void bw_policy_slot_destroy(struct bw_policy_slot *s);

/* Publishes p (takes the reference); the old one goes when its last user lets go. */
void bw_policy_slot_set(struct bw_policy_slot *s, struct bw_policy *p);

/* The current policy (a new reference) and its generation. */
struct bw_policy *bw_policy_slot_get(struct bw_policy_slot *s, uint64_t *gen);

static inline uint64_t bw_policy_slot_gen(struct bw_policy_slot *s)
{
	return atomic_load_explicit(&s->gen, memory_order_acquire);
}

#endif
