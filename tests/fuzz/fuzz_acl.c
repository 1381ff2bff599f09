/*
 * libFuzzer target for topic ACLs (tenancy/acl.h). The input is three parts
 * separated by 0xFF bytes (which valid UTF-8 never holds):
 *
 *   SUBJECT 0xFF ACL-FILE 0xFF QUERIES
 *
 * SUBJECT is up to three lines: username, client id, certificate CN; a
 * line "!" (or a missing one) is an absent value. QUERIES are lines whose
 * first byte picks the check and whose rest is the topic or filter: 'p'
 * publish (the second byte's low bits: QoS, and bit 2 retain, then the
 * topic), 's' subscribe, 'r' receive. Every query, and each compiled
 * rule's filter used as a subscription, a topic (with its wildcards filled
 * in) and a receive, is answered by the trie and by the rule-by-rule
 * reference in acl_ref.c; any difference aborts with both answers. A parse
 * error must be -EINVAL with a "<fuzz>:LINE: " message.
 */
#include "proto/mqtt/topic.h"
#include "tenancy/acl.h"
#include "tenancy/acl_internal.h"
#include "tests/fuzz/acl_ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Queries and rules tried per input, to keep each input fast. */
#define QUERIES_MAX 32
#define RULES_MAX   32

static void show(const char *what, const uint8_t *p, size_t n)
{
	fprintf(stderr, "  %s (%zu bytes): \"", what, n);
	for (size_t i = 0; i < n && i < 200; i++)
		fprintf(stderr, p[i] >= 0x20 && p[i] < 0x7F && p[i] != '"' ? "%c" : "\\x%02x",
		        p[i]);
	fprintf(stderr, "\"\n");
}

static void check_failed(int line, const char *what, const uint8_t *t, size_t n)
        __attribute__((noreturn));

static void check_failed(int line, const char *what, const uint8_t *t, size_t n)
{
	fprintf(stderr, "fuzz_acl: check failed (fuzz_acl.c:%d): %s\n", line, what);
	if (t)
		show("topic or filter", t, n);
	abort();
}

#define CHECK(cond, t, n)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond, t, n);                                       \
	} while (0)

static void check_publish(const struct bw_acl_compiled *c, const uint8_t *t, size_t n, uint8_t qos,
                          bool retain)
{
	bool got = bw_acl_can_publish(c, t, n, qos, retain);
	bool want = ref_acl_can_publish(c, t, n, qos, retain);

	if (got != want)
		fprintf(stderr, "fuzz_acl: publish q%u r%d: trie %d, reference %d\n", qos, retain,
		        got, want);
	CHECK(got == want, t, n);
}

static void check_receive(const struct bw_acl_compiled *c, const uint8_t *t, size_t n)
{
	bool got = bw_acl_can_receive(c, t, n);
	bool want = ref_acl_can_receive(c, t, n);

	if (got != want)
		fprintf(stderr, "fuzz_acl: receive: trie %d, reference %d\n", got, want);
	CHECK(got == want, t, n);
}

static void check_subscribe(const struct bw_acl_compiled *c, const uint8_t *f, size_t n)
{
	uint8_t q1, q2;
	bool e1, e2;
	int r1 = bw_acl_can_subscribe(c, f, n, &q1, &e1);
	int r2 = ref_acl_can_subscribe(c, f, n, &q2, &e2);

	if (r1 != r2 || q1 != q2 || e1 != e2)
		fprintf(stderr,
		        "fuzz_acl: subscribe: trie %d q%u each=%d, reference %d q%u each=%d\n", r1,
		        q1, e1, r2, q2, e2);
	CHECK(r1 == r2 && q1 == q2 && e1 == e2, f, n);
	CHECK(r1 == 0 || r1 == -EACCES || r1 == -EINVAL, f, n);
	CHECK(r1 != 0 || q1 <= 2, f, n);
}

/* The next line of [*p, end) as [*l, *l + *n); false at the end. */
static bool next_line(const uint8_t **p, const uint8_t *end, const uint8_t **l, size_t *n)
{
	if (*p >= end)
		return false;
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	const uint8_t *stop = nl ? nl : end;
	*l = *p;
	*n = (size_t)(stop - *p);
	*p = nl ? nl + 1 : end;
	return true;
}

/* A filter with '+' levels as "x" and a '#' level dropped: a name it matches (mostly). */
static size_t fill(const uint8_t *f, size_t n, uint8_t *out)
{
	size_t o = 0;

	for (size_t s = 0; s <= n;) {
		size_t e = bw_topic_level_end(f, n, s);
		bool plus = e - s == 1 && f[s] == '+', hash = e - s == 1 && f[s] == '#';
		if (hash)
			break;
		if (s > 0)
			out[o++] = '/';
		if (plus) {
			out[o++] = 'x';
		} else {
			memcpy(out + o, f + s, e - s);
			o += e - s;
		}
		s = e + 1;
	}
	return o;
}

/* One query line: 'p', 's' or 'r', then the topic or filter. */
static void query(const struct bw_acl_compiled *c, const uint8_t *l, size_t n)
{
	if (n == 0)
		return;
	if (l[0] == 'p' && n >= 2) {
		check_publish(c, l + 2, n - 2, l[1] & 3, l[1] & 4);
	} else if (l[0] == 's') {
		check_subscribe(c, l + 1, n - 1);
	} else if (l[0] == 'r') {
		check_receive(c, l + 1, n - 1);
	} else {
		/* Anything else: all three on the whole line. */
		check_publish(c, l, n, 1, false);
		check_subscribe(c, l, n);
		check_receive(c, l, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;
	const uint8_t *sep1 = memchr(data, 0xFF, size);
	if (!sep1)
		return 0;
	const uint8_t *text = sep1 + 1;
	const uint8_t *sep2 = memchr(text, 0xFF, (size_t)(end - text));
	const uint8_t *text_end = sep2 ? sep2 : end;
	const uint8_t *queries = sep2 ? sep2 + 1 : end;

	/* The subject: username, client id, CN; "!" or missing is absent. */
	struct bw_acl_subject who = { 0 };
	const char **vals[3] = { &who.username, &who.client_id, &who.cert_cn };
	size_t *lens[3] = { &who.username_len, &who.client_id_len, &who.cert_cn_len };
	const uint8_t *p = data, *l;
	size_t n;
	for (int i = 0; i < 3 && next_line(&p, sep1, &l, &n); i++) {
		if (n == 1 && l[0] == '!')
			continue;
		*vals[i] = (const char *)l;
		*lens[i] = n;
	}

	struct bw_acl *acl = NULL;
	char err[256];
	int rc = bw_acl_parse((const char *)text, (size_t)(text_end - text), "<fuzz>", &acl, err,
	                      sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL, NULL, 0);
	if (rc != 0) {
		CHECK(acl == NULL && strncmp(err, "<fuzz>:", 7) == 0, NULL, 0);
		return 0;
	}
	struct bw_acl_compiled *c = bw_acl_compile(acl, &who);
	CHECK(c != NULL, NULL, 0);
	CHECK(bw_acl_compiled_rules(c) <= bw_acl_rule_count(acl), NULL, 0);

	p = queries;
	for (int i = 0; i < QUERIES_MAX && next_line(&p, end, &l, &n); i++)
		query(c, l, n);

	/* The rules' own filters, and names made from them. */
	struct bw__acl_rule r;
	for (size_t i = 0; i < RULES_MAX && bw__acl_compiled_rule(c, i, &r) == 0; i++) {
		uint8_t *buf = malloc(r.len + 1);
		if (!buf)
			abort();
		check_subscribe(c, r.filter, r.len);
		size_t bl = fill(r.filter, r.len, buf);
		for (uint8_t q = 0; q < 3; q++)
			check_publish(c, buf, bl, q, q == 2);
		check_receive(c, buf, bl);
		check_subscribe(c, buf, bl);
		free(buf);
	}
	bw_acl_compiled_free(&c);
	bw_acl_free(&acl);
	return 0;
}
