/*
 * Unit tests for bw_utf8_valid() (proto/mqtt/utf8.h): MQTT UTF-8 is RFC 3629
 * UTF-8 without U+0000 and without UTF-16 surrogates. The vectors cover
 * ASCII, every sequence length and the code point boundaries between them,
 * and every way a string can be refused: U+0000, overlong forms, surrogates,
 * code points above U+10FFFF and the lead bytes that could only start one,
 * truncated sequences, bad and stray continuation bytes. The last tests put
 * a bad byte at every position and alignment of long strings so that any
 * word-at-a-time fast path in the implementation is exercised at its edges.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/mqtt/utf8.h"

/* The bytes of a vector and their count, for check(). */
#define V(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

#define VALID(...)   check(__LINE__, true, V(__VA_ARGS__))
#define INVALID(...) check(__LINE__, false, V(__VA_ARGS__))

static void hex(char *out, size_t cap, const uint8_t *s, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02X ", s[i]);
}

static void check(int line, bool expect, const uint8_t *s, size_t len)
{
	char buf[256];

	if (bw_utf8_valid(s, len) != expect) {
		hex(buf, sizeof(buf), s, len);
		fail_msg("line %d: bw_utf8_valid(%s) should be %s", line, buf,
		         expect ? "true" : "false");
	}
}

static void test_empty(void **state)
{
	static const uint8_t nothing[1] = { 'x' };

	(void)state;
	assert_true(bw_utf8_valid(nothing, 0));
}

static void test_ascii(void **state)
{
	uint8_t all[127];

	(void)state;
	VALID('h', 'e', 'l', 'l', 'o');
	VALID('a', '/', 'b', '/', '#', '+', '$');
	/* Every ASCII character but NUL, control characters included. */
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (uint8_t)(i + 1);
	assert_true(bw_utf8_valid(all, sizeof(all)));
	VALID(0x01);
	VALID(0x1F);
	VALID(0x7F);
}

static void test_multibyte(void **state)
{
	(void)state;
	VALID(0xC3, 0xA9);             /* U+00E9 */
	VALID(0xE2, 0x82, 0xAC);       /* U+20AC */
	VALID(0xF0, 0x9F, 0x98, 0x80); /* U+1F600 */
	VALID('c', 'a', 'f', 0xC3, 0xA9, '/', 0xE2, 0x82, 0xAC, '/', 0xF0, 0x9F, 0x98, 0x80, 'z');
	VALID(0xC3, 0xA9, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80);
}

static void test_boundaries(void **state)
{
	(void)state;
	VALID(0x7F);                   /* U+007F, last 1-byte */
	VALID(0xC2, 0x80);             /* U+0080, first 2-byte */
	VALID(0xC2, 0x9F);             /* U+009F, C1 control: allowed */
	VALID(0xDF, 0xBF);             /* U+07FF, last 2-byte */
	VALID(0xE0, 0xA0, 0x80);       /* U+0800, first 3-byte */
	VALID(0xED, 0x9F, 0xBF);       /* U+D7FF, just below the surrogates */
	VALID(0xEE, 0x80, 0x80);       /* U+E000, just above them */
	VALID(0xEF, 0xBF, 0xBE);       /* U+FFFE, non-character: allowed */
	VALID(0xEF, 0xBF, 0xBF);       /* U+FFFF, last 3-byte */
	VALID(0xF0, 0x90, 0x80, 0x80); /* U+10000, first 4-byte */
	VALID(0xF3, 0xBF, 0xBF, 0xBF); /* U+FFFFF */
	VALID(0xF4, 0x80, 0x80, 0x80); /* U+100000 */
	VALID(0xF4, 0x8F, 0xBF, 0xBF); /* U+10FFFF, the last code point */
}

static void test_nul(void **state)
{
	(void)state;
	INVALID(0x00);
	INVALID('a', 0x00);
	INVALID(0x00, 'a');
	INVALID('a', 0x00, 'b');
	INVALID(0xC0, 0x80); /* "modified UTF-8" NUL is overlong */
}

static void test_overlong(void **state)
{
	(void)state;
	INVALID(0xC0, 0x80);             /* U+0000 in 2 bytes */
	INVALID(0xC0, 0xAF);             /* '/' in 2 bytes */
	INVALID(0xC1, 0x81);             /* 'A' in 2 bytes */
	INVALID(0xC1, 0xBF);             /* U+007F in 2 bytes */
	INVALID(0xE0, 0x80, 0x80);       /* U+0000 in 3 bytes */
	INVALID(0xE0, 0x80, 0xAF);       /* '/' in 3 bytes */
	INVALID(0xE0, 0x9F, 0xBF);       /* U+07FF in 3 bytes */
	INVALID(0xF0, 0x80, 0x80, 0x80); /* U+0000 in 4 bytes */
	INVALID(0xF0, 0x80, 0x80, 0xAF); /* '/' in 4 bytes */
	INVALID(0xF0, 0x8F, 0xBF, 0xBF); /* U+FFFF in 4 bytes */
	INVALID('a', 0xC1, 0xBF, 'b');
}

static void test_surrogates(void **state)
{
	(void)state;
	INVALID(0xED, 0xA0, 0x80); /* U+D800 */
	INVALID(0xED, 0xAD, 0xBF); /* U+DB7F */
	INVALID(0xED, 0xAE, 0x80); /* U+DB80 */
	INVALID(0xED, 0xB0, 0x80); /* U+DC00 */
	INVALID(0xED, 0xBF, 0xBF); /* U+DFFF */
	/* A CESU-8 surrogate pair for U+1F600. */
	INVALID(0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80);
	INVALID('x', 0xED, 0xA0, 0x80, 'y');
}

static void test_above_max(void **state)
{
	(void)state;
	INVALID(0xF4, 0x90, 0x80, 0x80); /* U+110000 */
	INVALID(0xF4, 0xBF, 0xBF, 0xBF); /* U+13FFFF */
	INVALID(0xF5, 0x80, 0x80, 0x80);
	INVALID(0xF7, 0xBF, 0xBF, 0xBF);       /* U+1FFFFF */
	INVALID(0xF8, 0x88, 0x80, 0x80, 0x80); /* old 5-byte form */
	INVALID(0xFC, 0x84, 0x80, 0x80, 0x80, 0x80);
	/* No byte from F5 to FF can appear anywhere. */
	for (unsigned lead = 0xF5; lead <= 0xFF; lead++) {
		uint8_t s[4] = { (uint8_t)lead, 0x80, 0x80, 0x80 };
		uint8_t t[3] = { 'a', (uint8_t)lead, 'b' };

		check(__LINE__, false, s, sizeof(s));
		check(__LINE__, false, s, 1);
		check(__LINE__, false, t, sizeof(t));
	}
}

static void test_truncated(void **state)
{
	(void)state;
	INVALID(0xC3);
	INVALID(0xE2);
	INVALID(0xE2, 0x82);
	INVALID(0xF0);
	INVALID(0xF0, 0x9F);
	INVALID(0xF0, 0x9F, 0x98);
	INVALID('a', 'b', 0xC3);
	INVALID('a', 'b', 'c', 0xE2, 0x82);
	INVALID('a', 0xF0, 0x9F, 0x98);
	INVALID(0xC3, 0xA9, 0xF4, 0x8F, 0xBF);
}

static void test_bad_continuation(void **state)
{
	(void)state;
	INVALID(0xC3, 0x41);
	INVALID(0xC3, 0xC3, 0xA9);
	INVALID(0xE2, 0x28, 0xA1);
	INVALID(0xE2, 0x82, 0x28);
	INVALID(0xE2, 0x82, 0xC3, 0xA9);
	INVALID(0xF0, 0x28, 0x8C, 0xBC);
	INVALID(0xF0, 0x9F, 0x28, 0x80);
	INVALID(0xF0, 0x9F, 0x98, 0x28);
	INVALID(0xF0, 0x9F, 0x98, 0xF0, 0x9F, 0x98, 0x80);
}

static void test_stray_continuation(void **state)
{
	(void)state;
	INVALID(0x80);
	INVALID(0xBF);
	INVALID('a', 0x80);
	INVALID('a', 0x80, 'b');
	INVALID(0xC3, 0xA9, 0xA9);
	INVALID(0xE2, 0x82, 0xAC, 0x80);
	INVALID(0xF0, 0x9F, 0x98, 0x80, 0x80);
	INVALID(0x80, 0x80, 0x80, 0x80);
}

/*
 * A bad byte at the very end of an otherwise valid string of every length
 * up to 300: a vectorised or word-at-a-time loop must still look at its
 * tail.
 */
static void test_bad_tail(void **state)
{
	static const uint8_t bad[][4] = {
		{ 1, 0x80 },       { 1, 0x00 },
		{ 1, 0xFF },       { 1, 0xC3 },
		{ 2, 0xE2, 0x82 }, { 3, 0xF0, 0x9F, 0x98 },
		{ 2, 0xC0, 0x80 }, { 3, 0xED, 0xA0, 0x80 },
	};
	uint8_t s[320] = { 0 };

	(void)state;
	for (size_t n = 0; n <= 300; n++) {
		for (size_t k = 0; k < n; k++)
			s[k] = (uint8_t)('a' + k % 26);
		check(__LINE__, true, s, n);
		for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
			memcpy(s + n, bad[b] + 1, bad[b][0]);
			if (bw_utf8_valid(s, n + bad[b][0]))
				fail_msg("%zu ASCII bytes then bad tail %zu accepted", n, b);
		}
	}
}

/* A bad byte at every position of a long ASCII string. */
static void test_bad_anywhere(void **state)
{
	uint8_t s[257];

	(void)state;
	for (size_t pos = 0; pos < sizeof(s); pos++) {
		memset(s, 'q', sizeof(s));
		s[pos] = 0x80;
		if (bw_utf8_valid(s, sizeof(s)))
			fail_msg("stray 0x80 at %zu of %zu accepted", pos, sizeof(s));
		s[pos] = 0x00;
		if (bw_utf8_valid(s, sizeof(s)))
			fail_msg("NUL at %zu of %zu accepted", pos, sizeof(s));
		s[pos] = 0xF8;
		if (bw_utf8_valid(s, sizeof(s)))
			fail_msg("0xF8 at %zu of %zu accepted", pos, sizeof(s));
	}
}

/*
 * Multi-byte sequences straddling every alignment inside long ASCII runs:
 * valid ones must pass, surrogates and overlong forms must not.
 */
static void test_alignment(void **state)
{
	static const uint8_t good4[] = { 0xF0, 0x9F, 0x98, 0x80 };
	static const uint8_t good3[] = { 0xE2, 0x82, 0xAC };
	static const uint8_t surr[] = { 0xED, 0xA0, 0x80 };
	static const uint8_t over[] = { 0xE0, 0x9F, 0xBF };
	uint8_t s[96];

	(void)state;
	for (size_t at = 0; at + 4 <= sizeof(s); at++) {
		memset(s, 'z', sizeof(s));
		memcpy(s + at, good4, sizeof(good4));
		if (!bw_utf8_valid(s, sizeof(s)))
			fail_msg("U+1F600 at offset %zu refused", at);
		if (at + 4 < sizeof(s) && bw_utf8_valid(s, at + 3))
			fail_msg("U+1F600 cut at offset %zu accepted", at);
		memset(s, 'z', sizeof(s));
		memcpy(s + at, good3, sizeof(good3));
		if (!bw_utf8_valid(s, sizeof(s)))
			fail_msg("U+20AC at offset %zu refused", at);
		memcpy(s + at, surr, sizeof(surr));
		if (bw_utf8_valid(s, sizeof(s)))
			fail_msg("surrogate at offset %zu accepted", at);
		memcpy(s + at, over, sizeof(over));
		if (bw_utf8_valid(s, sizeof(s)))
			fail_msg("overlong U+07FF at offset %zu accepted", at);
	}
}

/* A long mixed-width valid text, then the same with one bad last byte. */
static void test_long_mixed(void **state)
{
	static const char piece[] = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80 / ";
	uint8_t s[4096];
	size_t n = 0;

	(void)state;
	while (n + sizeof(piece) < sizeof(s) - 1) {
		memcpy(s + n, piece, sizeof(piece) - 1);
		n += sizeof(piece) - 1;
	}
	assert_true(bw_utf8_valid(s, n));
	s[n] = 0xBF;
	assert_false(bw_utf8_valid(s, n + 1));
	s[n] = 0xC3;
	assert_false(bw_utf8_valid(s, n + 1));
	s[n - 1] = 0x00;
	assert_false(bw_utf8_valid(s, n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_ascii),
		cmocka_unit_test(test_multibyte),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_surrogates),
		cmocka_unit_test(test_above_max),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_continuation),
		cmocka_unit_test(test_stray_continuation),
		cmocka_unit_test(test_bad_tail),
		cmocka_unit_test(test_bad_anywhere),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_long_mixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
