/*
 * MQTT UTF-8 validation (see utf8.h). ASCII runs are skipped eight bytes at
 * a time because topics and client ids are nearly always ASCII; anything
 * else goes through a byte-exact check of RFC 3629's well-formed table.
 */
#include "proto/mqtt/utf8.h"

#include <string.h>

bool bw_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			/*
			 * All eight bytes ASCII and none zero: the high bit is
			 * clear in each, and (b - 1) borrows into bit 7 only
			 * for b == 0.
			 */
			if (!(w & UINT64_C(0x8080808080808080)) &&
			    !((w - UINT64_C(0x0101010101010101)) & ~w &
			      UINT64_C(0x8080808080808080))) {
				i += 8;
				continue;
			}
		}
		uint8_t c = s[i];
		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		}
		size_t n;
		uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c >= 0xC2 && c <= 0xDF) {
			n = 2;
		} else if (c == 0xE0) {
			n = 3;
			lo = 0xA0; /* no overlong 3-byte forms */
		} else if (c == 0xED) {
			n = 3;
			hi = 0x9F; /* no surrogates U+D800..U+DFFF */
		} else if (c >= 0xE1 && c <= 0xEF) {
			n = 3;
		} else if (c == 0xF0) {
			n = 4;
			lo = 0x90; /* no overlong 4-byte forms */
		} else if (c >= 0xF1 && c <= 0xF3) {
			n = 4;
		} else if (c == 0xF4) {
			n = 4;
			hi = 0x8F; /* nothing above U+10FFFF */
		} else {
			return false; /* continuation byte, C0, C1 or F5..FF */
		}
		if (len - i < n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		}
		i += n;
	}
	return true;
}
