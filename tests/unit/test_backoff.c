/*
 * Per-source backoff after failed logins: the wait starts after the set
 * number of failures, doubles up to the cap, ends with a success or a
 * quiet spell; addresses are independent; a table full of other addresses
 * evicts the stalest instead of growing; address text for the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/core/backoff.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct bw_addr v4(uint32_t host)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(host) };
	struct bw_addr a;
	assert_int_equal(bw_addr_from_sockaddr(&a, &in), 0);
	return a;
}

static void test_waits_double_up_to_the_cap(void **state)
{
	(void)state;
	struct bw_backoff *bo = bw_backoff_new(3, 5000, 64);
	struct bw_addr a = v4(0x0a000001), b = v4(0x0a000002);
	uint64_t now = 1000000;
	assert_int_equal(bw_backoff_fail(bo, &a, now), 0);
	assert_int_equal(bw_backoff_fail(bo, &a, now), 0);
	assert_int_equal(bw_backoff_wait(bo, &a, now), 0);
	assert_int_equal(bw_backoff_fail(bo, &a, now), 1000); /* the third: 1 s */
	assert_int_equal(bw_backoff_wait(bo, &a, now + 400), 600);
	assert_int_equal(bw_backoff_wait(bo, &b, now), 0); /* others are not touched */
	assert_int_equal(bw_backoff_wait(bo, &a, now + 1000), 0);
	assert_int_equal(bw_backoff_fail(bo, &a, now + 1000), 2000);
	assert_int_equal(bw_backoff_fail(bo, &a, now + 3000), 4000);
	assert_int_equal(bw_backoff_fail(bo, &a, now + 7000), 5000); /* capped */
	for (int i = 0; i < 100; i++)                                /* no overflow however many */
		assert_int_equal(bw_backoff_fail(bo, &a, now + 8000), 5000);
	bw_backoff_ok(bo, &a); /* a success forgets */
	assert_int_equal(bw_backoff_wait(bo, &a, now + 8001), 0);
	assert_int_equal(bw_backoff_fail(bo, &a, now + 8001), 0);
	bw_backoff_free(&bo);
	assert_null(bo);
	assert_null(bw_backoff_new(0, 1000, 64)); /* 0 failures: no backoff */
}

static void test_quiet_spell_forgets(void **state)
{
	(void)state;
	struct bw_backoff *bo = bw_backoff_new(2, 1000, 64);
	struct bw_addr a = v4(0x7f000001);
	assert_int_equal(bw_backoff_fail(bo, &a, 1000), 0);
	/* A minute later the first failure no longer counts. */
	assert_int_equal(bw_backoff_fail(bo, &a, 1000 + 60001), 0);
	assert_int_equal(bw_backoff_fail(bo, &a, 1000 + 60002), 1000);
	bw_backoff_free(&bo);
}

static void test_full_table_evicts_instead_of_growing(void **state)
{
	(void)state;
	struct bw_backoff *bo = bw_backoff_new(1, 60000, 16); /* rounds up, stays small */
	struct bw_addr a = v4(0xc0000201);
	assert_int_equal(bw_backoff_fail(bo, &a, 1000), 1000);
	/* Many other addresses fail later: a's slot may go, nothing grows. */
	for (uint32_t i = 0; i < 100000; i++)
		bw_backoff_fail(bo, &(struct bw_addr){ 0 }, 1000);
	for (uint32_t i = 0; i < 5000; i++) {
		struct bw_addr o = v4(0x0b000000 + i);
		assert_int_equal(bw_backoff_fail(bo, &o, 2000 + i), 1000);
		assert_true(bw_backoff_wait(bo, &o, 2000 + i) == 1000);
	}
	bw_backoff_free(&bo);
}

static void test_address_text(void **state)
{
	(void)state;
	char buf[64];
	struct bw_addr a = v4(0x7f000001);
	bw_addr_text(&a, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1");
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
	assert_int_equal(bw_addr_from_sockaddr(&a, &in6), 0);
	bw_addr_text(&a, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::7");
	struct sockaddr un = { .sa_family = AF_UNIX };
	assert_int_not_equal(bw_addr_from_sockaddr(&a, &un), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waits_double_up_to_the_cap),
		cmocka_unit_test(test_quiet_spell_forgets),
		cmocka_unit_test(test_full_table_evicts_instead_of_growing),
		cmocka_unit_test(test_address_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
