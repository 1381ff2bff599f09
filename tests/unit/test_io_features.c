/*
 * The io_uring capability probe: on the kernels Bulwark supports (6.0+,
 * which CI runs) every feature the node needs must be found, and the probe
 * must agree with itself when run twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/io/features.h"

#include <liburing.h>
#include <string.h>

static void test_probe_finds_what_the_node_needs(void **state)
{
	struct bw_io_features f;

	bw_io_features_probe(&f);
	assert_true(strlen(f.kernel) > 0);
	assert_int_equal(f.ring_error, 0);
	assert_true(f.ring_flags & IORING_FEAT_NODROP);
	assert_true(f.buf_ring);
	assert_true(f.msg_ring);
	assert_true(f.multishot);
	assert_true(bw_io_features_sufficient(&f));
}

static void test_probe_is_stable(void **state)
{
	struct bw_io_features a, b;

	bw_io_features_probe(&a);
	bw_io_features_probe(&b);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void test_insufficient_when_a_feature_is_missing(void **state)
{
	struct bw_io_features f;

	bw_io_features_probe(&f);
	f.buf_ring = false;
	assert_false(bw_io_features_sufficient(&f));
	bw_io_features_probe(&f);
	f.ring_error = -38;
	assert_false(bw_io_features_sufficient(&f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_finds_what_the_node_needs),
		cmocka_unit_test(test_probe_is_stable),
		cmocka_unit_test(test_insufficient_when_a_feature_is_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
