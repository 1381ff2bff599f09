/*
 * A rule-by-rule reference for tenancy/acl.h's checks, written from the
 * header's rules rather than for speed: each compiled rule is tried on its
 * own, with bw_topic_match() for names and level-by-level "covers" and
 * "shares a topic" tests for subscription filters. test_acl and fuzz_acl
 * compare the trie's answers with these.
 */
#ifndef BW_TESTS_ACL_REF_H
#define BW_TESTS_ACL_REF_H

#include "tenancy/acl.h"

bool ref_acl_can_publish(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len,
                         uint8_t qos, bool retain);
bool ref_acl_can_receive(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len);
int ref_acl_can_subscribe(const struct bw_acl_compiled *c, const uint8_t *filter, size_t len,
                          uint8_t *max_qos, bool *check_each);

/* Level-wise relations of two valid plain filters (exposed for tests). */
bool ref_filter_covers(const uint8_t *r, size_t rlen, const uint8_t *f, size_t flen);
bool ref_filter_overlaps(const uint8_t *r, size_t rlen, const uint8_t *f, size_t flen);

#endif
