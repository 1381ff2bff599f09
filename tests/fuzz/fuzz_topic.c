/*
 * libFuzzer target for proto/mqtt/topic.h and utf8.h. The input is a topic
 * filter and a topic name, split at the first 0xFF byte (which valid UTF-8
 * never holds) or, without one, at the middle. Every function runs on both
 * and is cross-checked against the plain reference implementations below,
 * written from the header comments and the spec rather than for speed:
 * UTF-8 by decoding code points, filters and the matcher level by level.
 * bw_topic_match() runs only on what the checks accepted, as its contract
 * asks, on the input pair and on pairs derived from it that are likely to
 * match (the filter with its wildcards filled in, the name with levels
 * replaced by wildcards). Any disagreement prints both answers and aborts.
 */
#include "proto/mqtt/mqtt_types.h"
#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN 7

static void show(const char *name, const uint8_t *p, size_t n)
{
	fprintf(stderr, "  %s (%zu bytes): \"", name, n);
	for (size_t i = 0; i < n && i < 200; i++)
		fprintf(stderr, p[i] >= 0x20 && p[i] < 0x7F && p[i] != '"' ? "%c" : "\\x%02x",
		        p[i]);
	fprintf(stderr, "\"%s\n", n > 200 ? " ..." : "");
}

/* The strings a check was about, for the failure message. */
static struct {
	const uint8_t *a, *b;
	size_t alen, blen;
} at;

static void check_failed(int line, const char *what) __attribute__((noreturn));

static void check_failed(int line, const char *what)
{
	fprintf(stderr, "fuzz_topic: check failed (fuzz_topic.c:%d): %s\n", line, what);
	if (at.a)
		show("first", at.a, at.alen);
	if (at.b)
		show("second", at.b, at.blen);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond);                                             \
	} while (0)

static void about(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	at.a = a;
	at.alen = alen;
	at.b = b;
	at.blen = blen;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

/* ---- reference implementations --------------------------------------------- */

/* RFC 3629 by decoding each code point; MQTT also refuses U+0000. */
static bool ref_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint32_t cp, min;
		size_t n;
		if (c < 0x80) {
			cp = c;
			n = 1;
			min = 0;
		} else if ((c & 0xE0) == 0xC0) {
			cp = c & 0x1F;
			n = 2;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			cp = c & 0x0F;
			n = 3;
			min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			cp = c & 0x07;
			n = 4;
			min = 0x10000;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
			return false;
		i += n;
	}
	return true;
}

/* One level of a topic: [p, p + len). */
struct level {
	const uint8_t *p;
	size_t len;
};

/* Splits t[0..len) at '/' into lv (which holds len + 1); returns the count. */
static size_t split(const uint8_t *t, size_t len, struct level *lv)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || t[i] == '/') {
			lv[n].p = t + start;
			lv[n].len = i - start;
			n++;
			start = i + 1;
		}
	}
	return n;
}

static bool level_is(const struct level *l, char c)
{
	return l->len == 1 && l->p[0] == (uint8_t)c;
}

static bool has_byte(const uint8_t *p, size_t len, uint8_t c)
{
	return len > 0 && memchr(p, c, len) != NULL;
}

static bool ref_name_ok(const uint8_t *n, size_t len)
{
	return len > 0 && !has_byte(n, len, '+') && !has_byte(n, len, '#');
}

/* A plain filter: each level is "+", "#" (last only) or free of both. */
static bool ref_plain_filter_ok(const uint8_t *f, size_t len)
{
	if (len == 0)
		return false;
	struct level *lv = xmalloc(sizeof(*lv) * (len + 1));
	size_t n = split(f, len, lv);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		if (level_is(&lv[i], '+'))
			continue;
		if (level_is(&lv[i], '#'))
			ok = i == n - 1;
		else
			ok = !has_byte(lv[i].p, lv[i].len, '+') &&
			     !has_byte(lv[i].p, lv[i].len, '#');
	}
	free(lv);
	return ok;
}

static bool ref_is_shared(const uint8_t *f, size_t len)
{
	return len >= SHARE_PREFIX_LEN && memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
}

/*
 * "$share/{group}/{filter}": group non-empty without '+' or '#', filter a
 * valid filter judged by the plain rules. topic.h calls that filter
 * "non-shared"; the spec does not forbid it to start with "$share/" itself,
 * and neither does this reference: such a filter is a plain one here.
 */
static bool ref_filter_ok(const uint8_t *f, size_t len, struct bw_topic_share *sh)
{
	if (!ref_is_shared(f, len))
		return ref_plain_filter_ok(f, len);
	const uint8_t *g = f + SHARE_PREFIX_LEN;
	size_t rest = len - SHARE_PREFIX_LEN;
	const uint8_t *slash = rest ? memchr(g, '/', rest) : NULL;
	if (!slash || slash == g)
		return false;
	sh->group = g;
	sh->group_len = (size_t)(slash - g);
	sh->filter = slash + 1;
	sh->filter_len = rest - sh->group_len - 1;
	if (has_byte(sh->group, sh->group_len, '+') || has_byte(sh->group, sh->group_len, '#'))
		return false;
	return ref_plain_filter_ok(sh->filter, sh->filter_len);
}

/* [MQTT-4.7]: level by level; '#' also matches the parent; '$' names hide from level-one wildcards.
 */
static bool ref_match(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen)
{
	struct level *fl = xmalloc(sizeof(*fl) * (flen + 1));
	struct level *nl = xmalloc(sizeof(*nl) * (nlen + 1));
	size_t fn = split(f, flen, fl), nn = split(n, nlen, nl);
	size_t fi = 0, ni = 0;
	bool m;

	if (nlen > 0 && n[0] == '$' && (level_is(&fl[0], '+') || level_is(&fl[0], '#'))) {
		m = false;
		goto out;
	}
	for (;;) {
		if (fi == fn) {
			m = ni == nn;
			break;
		}
		if (level_is(&fl[fi], '#')) {
			m = true;
			break;
		}
		if (ni == nn) {
			m = false;
			break;
		}
		if (!level_is(&fl[fi], '+') &&
		    !(fl[fi].len == nl[ni].len &&
		      (fl[fi].len == 0 || memcmp(fl[fi].p, nl[ni].p, fl[fi].len) == 0))) {
			m = false;
			break;
		}
		fi++;
		ni++;
	}
out:
	free(fl);
	free(nl);
	return m;
}

static size_t ref_levels(const uint8_t *t, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += t[i] == '/';
	return n;
}

/* ---- checks ------------------------------------------------------------------ */

/* Every function on one string, whatever it holds. */
static void check_string(const uint8_t *s, size_t len)
{
	struct bw_topic_share sh, ref_sh;

	memset(&ref_sh, 0, sizeof(ref_sh));
	about(s, len, NULL, 0);
	CHECK(bw_utf8_valid(s, len) == ref_utf8(s, len));

	int rc = bw_topic_name_check(s, len);
	CHECK(rc == 0 || rc == -BW_RC_TOPIC_NAME_INVALID);
	CHECK((rc == 0) == ref_name_ok(s, len));

	rc = bw_topic_filter_check(s, len);
	CHECK(rc == 0 || rc == -BW_RC_TOPIC_FILTER_INVALID);
	bool ok = ref_filter_ok(s, len, &ref_sh);
	CHECK((rc == 0) == ok);
	if (rc == 0) {
		bool shared = bw_topic_share_split(s, len, &sh);
		CHECK(shared == ref_is_shared(s, len));
		if (shared) {
			CHECK(sh.group == ref_sh.group && sh.group_len == ref_sh.group_len);
			CHECK(sh.filter == ref_sh.filter && sh.filter_len == ref_sh.filter_len);
		}
	}
	if (len > 0)
		CHECK(bw_topic_levels(s, len) == ref_levels(s, len));
	CHECK(bw_topic_has_wildcard(s, len) == (has_byte(s, len, '+') || has_byte(s, len, '#')));
}

/* True when s is fit for bw_topic_match() as a filter: valid, UTF-8, non-shared. */
static bool usable_filter(const uint8_t *s, size_t len)
{
	return bw_utf8_valid(s, len) && bw_topic_filter_check(s, len) == 0 &&
	       !ref_is_shared(s, len);
}

static bool usable_name(const uint8_t *s, size_t len)
{
	return bw_utf8_valid(s, len) && bw_topic_name_check(s, len) == 0;
}

static void check_match(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen)
{
	about(f, flen, n, nlen);
	bool m = bw_topic_match(f, flen, n, nlen);
	bool want = ref_match(f, flen, n, nlen);
	if (m != want)
		fprintf(stderr, "fuzz_topic: bw_topic_match says %d, reference %d\n", m, want);
	CHECK(m == want);
}

/*
 * The filter with '+' levels filled in from the name (or "x") and a '#'
 * level replaced by the rest of the name (or "x/y"), or dropped with the '/'
 * before it when drop_hash: a name the filter should match, most of the
 * time. Returns its length in out (which holds 2 * (flen + nlen) + 8).
 */
static size_t fill_filter(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen,
                          bool drop_hash, uint8_t *out)
{
	struct level *fl = xmalloc(sizeof(*fl) * (flen + 1));
	struct level *nl = xmalloc(sizeof(*nl) * (nlen + 1));
	size_t fn = split(f, flen, fl), nn = nlen ? split(n, nlen, nl) : 0;
	size_t o = 0;

	for (size_t i = 0; i < fn; i++) {
		const struct level *l = &fl[i];
		if (level_is(l, '#') && drop_hash)
			break; /* the '/' before it was not written yet */
		if (i > 0)
			out[o++] = '/';
		if (level_is(l, '#')) {
			if (i < nn) {
				memcpy(out + o, nl[i].p, (size_t)(n + nlen - nl[i].p));
				o += (size_t)(n + nlen - nl[i].p);
			} else {
				memcpy(out + o, "x/y", 3);
				o += 3;
			}
			break;
		}
		if (level_is(l, '+')) {
			if (i < nn && nl[i].len) {
				memcpy(out + o, nl[i].p, nl[i].len);
				o += nl[i].len;
			} else {
				out[o++] = 'x';
			}
		} else if (l->len) {
			memcpy(out + o, l->p, l->len);
			o += l->len;
		}
	}
	free(fl);
	free(nl);
	return o;
}

/*
 * The name with every level whose index has bit `sel` set replaced by '+',
 * and, when hash, everything from the middle level on replaced by '#'.
 * Returns its length in out (which holds 2 * nlen + 2).
 */
static size_t wild_name(const uint8_t *n, size_t nlen, unsigned sel, bool hash, uint8_t *out)
{
	struct level *nl = xmalloc(sizeof(*nl) * (nlen + 1));
	size_t nn = split(n, nlen, nl), o = 0;

	for (size_t i = 0; i < nn; i++) {
		if (i > 0)
			out[o++] = '/';
		if (hash && i == nn / 2) {
			out[o++] = '#';
			break;
		}
		if ((i + sel) % 2) {
			out[o++] = '+';
		} else if (nl[i].len) {
			memcpy(out + o, nl[i].p, nl[i].len);
			o += nl[i].len;
		}
	}
	free(nl);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = size ? memchr(data, 0xFF, size) : NULL;
	size_t flen = sep ? (size_t)(sep - data) : size / 2;
	const uint8_t *f = data, *n = data + flen + (sep ? 1 : 0);
	size_t nlen = size - flen - (sep ? 1 : 0);
	struct bw_topic_share sh;

	check_string(f, flen);
	check_string(n, nlen);
	check_string(data, size);

	/* The pair as given, and the filter's inner part when shared. */
	const uint8_t *mf = f;
	size_t mflen = flen;
	if (bw_utf8_valid(f, flen) && bw_topic_filter_check(f, flen) == 0 &&
	    bw_topic_share_split(f, flen, &sh)) {
		mf = sh.filter;
		mflen = sh.filter_len;
	}
	if (!usable_filter(mf, mflen))
		mflen = 0;
	if (mflen && usable_name(n, nlen))
		check_match(mf, mflen, n, nlen);

	uint8_t *buf = xmalloc(2 * (flen + nlen) + 8);
	size_t blen;
	if (mflen) {
		for (int drop = 0; drop < 2; drop++) {
			blen = fill_filter(mf, mflen, n, nlen, drop, buf);
			if (usable_name(buf, blen))
				check_match(mf, mflen, buf, blen);
		}
		/* A filter without wildcards is a name that it matches. */
		if (usable_name(mf, mflen)) {
			about(mf, mflen, NULL, 0);
			CHECK(bw_topic_match(mf, mflen, mf, mflen));
		}
	}
	if (usable_name(n, nlen)) {
		for (unsigned sel = 0; sel < 4; sel++) {
			blen = wild_name(n, nlen, sel & 1, sel & 2, buf);
			check_string(buf, blen);
			if (usable_filter(buf, blen))
				check_match(buf, blen, n, nlen);
		}
	}
	free(buf);
	return 0;
}
