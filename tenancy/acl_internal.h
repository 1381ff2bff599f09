/*
 * The rules of a compiled ACL, one at a time, for tests and the fuzz driver
 * that check the trie against a rule-by-rule reference. Not for the broker.
 */
#ifndef BW_ACL_INTERNAL_H
#define BW_ACL_INTERNAL_H

#include "tenancy/acl.h"

/* A compiled rule: its filter with placeholders filled in. Points into c. */
struct bw__acl_rule {
	const uint8_t *filter;
	size_t len;
	bool publish, subscribe, deny, no_retain;
	uint8_t max_qos;
};

/* Rule i (0 .. bw_acl_compiled_rules() - 1) of c, in trie order. Returns 0 or -ENOENT. */
int bw__acl_compiled_rule(const struct bw_acl_compiled *c, size_t i, struct bw__acl_rule *out);

#endif
