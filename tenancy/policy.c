/* The refcounted auth policy and its slot (see policy.h). */
#include "tenancy/policy.h"

#include "tenancy/acl.h"
#include "tenancy/auth/jwt.h"
#include "tenancy/auth/passwd.h"

#include <stdlib.h>

struct bw_policy *bw_policy_new(struct bw_passwd *passwd, struct bw_acl *acl,
                                struct bw_jwt_keys *jwt_keys)
{
	struct bw_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		bw_passwd_free(&passwd);
		bw_acl_free(&acl);
		bw_jwt_keys_free(&jwt_keys);
		return NULL;
	}
	atomic_init(&p->refs, 1);
	p->passwd = passwd;
	p->acl = acl;
	p->jwt_keys = jwt_keys;
	return p;
}

struct bw_policy *bw_policy_ref(struct bw_policy *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void bw_policy_unref(struct bw_policy **pp)
{
	struct bw_policy *p = *pp;
	*pp = NULL;
	if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	bw_passwd_free(&p->passwd);
	bw_acl_free(&p->acl);
	bw_jwt_keys_free(&p->jwt_keys);
	free(p);
}

void bw_policy_slot_init(struct bw_policy_slot *s, struct bw_policy *initial)
{
	pthread_mutex_init(&s->mu, NULL);
	s->cur = initial;
	atomic_init(&s->gen, 1);
}

void bw_policy_slot_destroy(struct bw_policy_slot *s)
{
	bw_policy_unref(&s->cur);
	pthread_mutex_destroy(&s->mu);
}

void bw_policy_slot_set(struct bw_policy_slot *s, struct bw_policy *p)
{
	pthread_mutex_lock(&s->mu);
	struct bw_policy *old = s->cur;
	s->cur = p;
	atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
	pthread_mutex_unlock(&s->mu);
	bw_policy_unref(&old);
}

struct bw_policy *bw_policy_slot_get(struct bw_policy_slot *s, uint64_t *gen)
{
	pthread_mutex_lock(&s->mu);
	struct bw_policy *p = bw_policy_ref(s->cur);
	if (gen)
		*gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
	pthread_mutex_unlock(&s->mu);
	return p;
}
