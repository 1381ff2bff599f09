/*
 * Password files (see passwd.h). Parsing copies each "user\0hash\0" into one
 * growing pool and indexes it with an open-addressing table of entry
 * numbers (FNV-1a, linear probing, at most half full), grown as lines are
 * read so that a duplicate is reported at the line that repeats the name.
 * The pool holds offsets, not pointers, until parsing ends, because it
 * moves when it grows.
 */
#include "tenancy/auth/passwd.h"

#include "proto/mqtt/utf8.h"
#include "tenancy/auth/password.h"
#include "tenancy/readfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	size_t user;     /* offset of the username in pool */
	size_t user_len; /* its length (the hash follows it and a NUL) */
	size_t hash;     /* offset of the NUL-terminated hash in pool */
	unsigned line;   /* where it was defined, for duplicate reports */
};

struct bw_passwd {
	struct entry *entries;
	size_t count, entries_cap;
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *slots;  /* entry index + 1; 0 is empty */
	size_t slots_cap; /* a power of two */
};

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3u;
	}
	return h;
}

/* The slot holding user[0..len), or the empty slot where it would go. */
static size_t find_slot(const struct bw_passwd *pw, const char *user, size_t len)
{
	size_t mask = pw->slots_cap - 1;
	size_t i = (size_t)fnv1a(user, len) & mask;

	/* Bounded: the table is never more than half full. */
	for (size_t probes = 0; probes < pw->slots_cap; probes++, i = (i + 1) & mask) {
		uint32_t s = pw->slots[i];
		if (s == 0)
			return i;
		const struct entry *e = &pw->entries[s - 1];
		if (e->user_len == len && memcmp(pw->pool + e->user, user, len) == 0)
			return i;
	}
	return i; /* not reached */
}

/* Doubles the slot table and re-inserts every entry. Returns 0 or -ENOMEM. */
static int grow_slots(struct bw_passwd *pw)
{
	size_t cap = pw->slots_cap ? pw->slots_cap * 2 : 16;
	uint32_t *old = pw->slots;
	size_t old_cap = pw->slots_cap;

	pw->slots = calloc(cap, sizeof(*pw->slots));
	if (!pw->slots) {
		pw->slots = old;
		return -ENOMEM;
	}
	pw->slots_cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i]) {
			const struct entry *e = &pw->entries[old[i] - 1];
			pw->slots[find_slot(pw, pw->pool + e->user, e->user_len)] = old[i];
		}
	}
	free(old);
	return 0;
}

/* Appends bytes to the pool. Returns 0 or -ENOMEM. */
static int pool_add(struct bw_passwd *pw, const char *s, size_t len)
{
	if (len == 0)
		return 0;
	if (pw->pool_cap - pw->pool_len < len) {
		size_t cap = pw->pool_cap ? pw->pool_cap : 4096;
		while (cap - pw->pool_len < len)
			cap *= 2; /* bounded: len and pool_len are below BW_PASSWD_FILE_MAX */
		char *p = realloc(pw->pool, cap);
		if (!p)
			return -ENOMEM;
		pw->pool = p;
		pw->pool_cap = cap;
	}
	memcpy(pw->pool + pw->pool_len, s, len);
	pw->pool_len += len;
	return 0;
}

/* Adds a user whose slot find_slot() found empty. Returns 0 or -ENOMEM. */
static int add_entry(struct bw_passwd *pw, const char *user, size_t ulen, const char *hash,
                     size_t hlen, unsigned line)
{
	struct entry e = { .user = pw->pool_len, .user_len = ulen, .line = line };
	int rc;

	if (pw->count == pw->entries_cap) {
		size_t cap = pw->entries_cap ? pw->entries_cap * 2 : 64;
		struct entry *n = realloc(pw->entries, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		pw->entries = n;
		pw->entries_cap = cap;
	}
	if ((pw->count + 1) * 2 > pw->slots_cap && (rc = grow_slots(pw)) != 0)
		return rc;
	e.hash = pw->pool_len + ulen + 1;
	if ((rc = pool_add(pw, user, ulen)) != 0 || (rc = pool_add(pw, "", 1)) != 0 ||
	    (rc = pool_add(pw, hash, hlen)) != 0 || (rc = pool_add(pw, "", 1)) != 0)
		return rc;
	pw->entries[pw->count++] = e;
	pw->slots[find_slot(pw, user, ulen)] = (uint32_t)pw->count;
	return 0;
}

/* Writes "name:line: message" to err[0..cap) when there is room. */
static void report(char *err, size_t cap, const char *name, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || cap == 0)
		return;
	n = snprintf(err, cap, "%s:%u: ", name, line);
	if (n < 0 || (size_t)n >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * A username fit for a message: at most 64 bytes (cut at a character
 * boundary), control characters as '?'. out holds 68 bytes.
 */
static const char *shown(const char *user, size_t len, char *out)
{
	size_t n = len > 64 ? 64 : len;

	while (n < len && n > 0 && ((uint8_t)user[n] & 0xC0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)user[i] < 0x20 || user[i] == 0x7F ? '?' : user[i];
	strcpy(out + n, n < len ? "..." : "");
	return out;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Parses one line (without "\n"). Returns 0 or -errno with err filled. */
static int parse_line(struct bw_passwd *pw, const char *s, size_t len, const char *name,
                      unsigned line, char *err, size_t cap)
{
	char show[68];
	const char *why;
	size_t i = 0;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	while (len > 0 && blank(s[len - 1]))
		len--;
	while (i < len && blank(s[i]))
		i++;
	if (i == len || s[i] == '#')
		return 0;

	const char *colon = memchr(s, ':', len);
	if (!colon) {
		report(err, cap, name, line, "no ':' between username and hash");
		return -EINVAL;
	}
	size_t ulen = (size_t)(colon - s);
	const char *hash = colon + 1;
	size_t hlen = len - ulen - 1;
	if (ulen == 0) {
		report(err, cap, name, line, "empty username");
		return -EINVAL;
	}
	if (!bw_utf8_valid((const uint8_t *)s, ulen)) {
		report(err, cap, name, line, "username is not valid UTF-8");
		return -EINVAL;
	}
	if (memchr(hash, ':', hlen)) {
		report(err, cap, name, line,
		       "more than one ':' (a username cannot hold ':', a hash never does)");
		return -EINVAL;
	}
	if (bw_password_hash_check(hash, hlen, &bw_password_limits_default, &why) != 0) {
		report(err, cap, name, line, "user \"%s\": bad hash: %s", shown(s, ulen, show),
		       why);
		return -EINVAL;
	}
	if (pw->slots_cap) {
		uint32_t slot = pw->slots[find_slot(pw, s, ulen)];
		if (slot) {
			report(err, cap, name, line, "duplicate user \"%s\" (first on line %u)",
			       shown(s, ulen, show), pw->entries[slot - 1].line);
			return -EINVAL;
		}
	}
	if (pw->count == BW_PASSWD_USERS_MAX) {
		report(err, cap, name, line, "more than %u users", BW_PASSWD_USERS_MAX);
		return -EINVAL;
	}
	if (add_entry(pw, s, ulen, hash, hlen, line) != 0) {
		report(err, cap, name, line, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int bw_passwd_parse(const char *text, size_t len, const char *name, struct bw_passwd **out,
                    char *err, size_t cap)
{
	struct bw_passwd *pw;
	unsigned line = 0;
	size_t at = 0;
	int rc = 0;

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if (!name)
		name = "<input>";
	if (len > BW_PASSWD_FILE_MAX) {
		report(err, cap, name, 0, "larger than %u bytes", BW_PASSWD_FILE_MAX);
		return -EFBIG;
	}
	pw = calloc(1, sizeof(*pw));
	if (!pw) {
		report(err, cap, name, 0, "out of memory");
		return -ENOMEM;
	}
	/* One line an iteration: at grows by at least one byte each time. */
	while (rc == 0 && at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		line++;
		if (end - at > BW_PASSWD_LINE_MAX) {
			report(err, cap, name, line, "line longer than %u bytes",
			       BW_PASSWD_LINE_MAX);
			rc = -EINVAL;
			break;
		}
		rc = parse_line(pw, text + at, end - at, name, line, err, cap);
		at = end + 1;
	}
	if (rc != 0) {
		bw_passwd_free(&pw);
		return rc;
	}
	*out = pw;
	return 0;
}

int bw_passwd_load(const char *path, struct bw_passwd **out, char *err, size_t cap)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	rc = bw__read_file(path, BW_PASSWD_FILE_MAX, &text, &len, err, cap);
	if (rc == 0)
		rc = bw_passwd_parse(text, len, path, out, err, cap);
	free(text);
	return rc;
}

const char *bw_passwd_lookup(const struct bw_passwd *pw, const char *user, size_t len)
{
	if (!pw || pw->count == 0)
		return NULL;
	uint32_t slot = pw->slots[find_slot(pw, user, len)];
	return slot ? pw->pool + pw->entries[slot - 1].hash : NULL;
}

size_t bw_passwd_count(const struct bw_passwd *pw)
{
	return pw ? pw->count : 0;
}

const char *bw_passwd_at(const struct bw_passwd *pw, size_t i, const char **user, size_t *len,
                         unsigned *line)
{
	if (!pw || i >= pw->count)
		return NULL;
	const struct entry *e = &pw->entries[i];
	*user = pw->pool + e->user;
	*len = e->user_len;
	*line = e->line;
	return pw->pool + e->hash;
}

int bw_passwd_check(const struct bw_passwd *pw, const char *user, size_t ulen, const char *password,
                    size_t plen)
{
	const char *hash = bw_passwd_lookup(pw, user, ulen);
	int rc;

	if (hash)
		return bw_password_verify(password, plen, hash);
	if (!pw || pw->count == 0)
		return -EACCES;
	/* The decoy: as costly as a real user's check, whatever it answers. */
	rc = bw_password_verify(password, plen, pw->pool + pw->entries[0].hash);
	return rc == -ENOMEM || rc == -EIO ? rc : -EACCES;
}

void bw_passwd_free(struct bw_passwd **pw)
{
	if (!pw || !*pw)
		return;
	free((*pw)->entries);
	free((*pw)->pool);
	free((*pw)->slots);
	free(*pw);
	*pw = NULL;
}
