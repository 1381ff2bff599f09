/*
 * Unit tests for topic ACLs (tenancy/acl.h): one ACL file in both syntaxes
 * and a matrix of clients (anonymous, users with and without sections,
 * hostile client ids such as "a/#", "+", "" and "$SYS") against publish,
 * subscribe and receive cases: placeholders, wildcards on both sides, deny
 * precedence, default deny, QoS caps, retain=no, the '$' rule and shared
 * subscriptions. Every answer is also compared with the rule-by-rule
 * reference in tests/fuzz/acl_ref.c, over the cases and over generated
 * topics and filters. Then parse errors with their file:line, section
 * merging, limits and loading from disk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/mqtt/topic.h"
#include "proto/mqtt/utf8.h"
#include "tenancy/acl.h"
#include "tests/fuzz/acl_ref.h"

static const char acl_text[] = "# Mosquitto's acl_file syntax\n"
                               "topic read $SYS/broker/#\n"
                               "user alice\n"
                               "topic readwrite alice/#\n"
                               "topic deny alice/secret/#\n"
                               "topic write shared space/x y\n"
                               "topic read %c/literal\n"
                               "pattern read $SYS/broker/connection/%c/#\n"
                               "\n"
                               "# Bulwark's syntax\n"
                               "user bob\n"
                               "allow publish data/%c/# qos=1 retain=no\n"
                               "allow subscribe data/# qos=2\n"
                               "deny subscribe data/private/#\n"
                               "allow all chat/+ qos=1\n"
                               "allow subscribe cap/#\n"
                               "allow subscribe cap/low/# qos=0\n"
                               "   allow   publish   tabs/%u\t\t\n"
                               "user root\n"
                               "allow all #\n"
                               "everyone\n"
                               "allow publish clients/%c/status\n"
                               "allow publish %c/inbox\n"
                               "allow subscribe users/%u/#\n"
                               "allow subscribe certs/%cn/#\n"
                               "deny all forbidden/#\n"
                               "anonymous\n"
                               "allow publish anon/+\r\n";

enum who { ANON, ALICE, BOB, BOB_SLASH, BOB_PLUS, BOB_EMPTY, BOB_DOLLAR, ROOT, EVE, NWHO };

#define S(x) x, sizeof(x) - 1
static const struct bw_acl_subject subjects[NWHO] = {
	[ANON] = { NULL, 0, S("c0"), NULL, 0 },
	[ALICE] = { S("alice"), S("a1"), NULL, 0 },
	[BOB] = { S("bob"), S("b1"), S("bob.example") },
	[BOB_SLASH] = { S("bob"), S("a/#"), S("x/y") },
	[BOB_PLUS] = { S("bob"), S("+"), S("#") },
	[BOB_EMPTY] = { S("bob"), S(""), S("") },
	[BOB_DOLLAR] = { S("bob"), S("$SYS"), NULL, 0 },
	[ROOT] = { S("root"), S("r"), NULL, 0 },
	[EVE] = { S("eve"), S("e"), NULL, 0 },
};

static struct bw_acl *acl;
static struct bw_acl_compiled *compiled[NWHO];

static int setup(void **state)
{
	char err[256];

	(void)state;
	if (bw_acl_parse(acl_text, sizeof(acl_text) - 1, "acl", &acl, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	for (int i = 0; i < NWHO; i++) {
		compiled[i] = bw_acl_compile(acl, &subjects[i]);
		if (!compiled[i])
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NWHO; i++)
		bw_acl_compiled_free(&compiled[i]);
	bw_acl_free(&acl);
	return 0;
}

static void pub_is(int line, enum who w, const char *topic, uint8_t qos, bool retain, bool want)
{
	const uint8_t *t = (const uint8_t *)topic;
	bool got = bw_acl_can_publish(compiled[w], t, strlen(topic), qos, retain);
	bool ref = ref_acl_can_publish(compiled[w], t, strlen(topic), qos, retain);

	if (got != want || ref != want)
		fail_msg("line %d: publish \"%s\" q%u%s by %d: got %d, reference %d, want %d", line,
		         topic, qos, retain ? " retained" : "", w, got, ref, want);
}

static void recv_is(int line, enum who w, const char *topic, bool want)
{
	const uint8_t *t = (const uint8_t *)topic;
	bool got = bw_acl_can_receive(compiled[w], t, strlen(topic));
	bool ref = ref_acl_can_receive(compiled[w], t, strlen(topic));

	if (got != want || ref != want)
		fail_msg("line %d: receive \"%s\" by %d: got %d, reference %d, want %d", line,
		         topic, w, got, ref, want);
}

/* want_rc 0: allowed with max QoS q and check_each e; otherwise the error. */
static void sub_is(int line, enum who w, const char *filter, int want_rc, uint8_t q, bool e)
{
	const uint8_t *f = (const uint8_t *)filter;
	uint8_t qos = 9, rqos = 9;
	bool each = true, reach = true;
	int rc = bw_acl_can_subscribe(compiled[w], f, strlen(filter), &qos, &each);
	int ref = ref_acl_can_subscribe(compiled[w], f, strlen(filter), &rqos, &reach);

	if (want_rc != 0) {
		q = 0;
		e = false;
	}
	if (rc != want_rc || qos != q || each != e || ref != rc || rqos != qos || reach != each)
		fail_msg("line %d: subscribe \"%s\" by %d: got %d q%u each=%d, reference %d q%u "
		         "each=%d, want %d q%u each=%d",
		         line, filter, w, rc, qos, each, ref, rqos, reach, want_rc, q, e);
}

#define PUB(w, t, q, r, want) pub_is(__LINE__, w, t, q, r, want)
#define RECV(w, t, want)      recv_is(__LINE__, w, t, want)
#define SUB(w, f, q, e)       sub_is(__LINE__, w, f, 0, q, e)
#define NOSUB(w, f)           sub_is(__LINE__, w, f, -EACCES, 0, false)

static void test_anonymous(void **state)
{
	(void)state;
	SUB(ANON, "$SYS/broker/#", 2, false);
	SUB(ANON, "$SYS/broker/load/+", 2, false);
	SUB(ANON, "$SYS/broker", 2, false); /* "x/#" covers "x" */
	NOSUB(ANON, "$SYS/#");
	NOSUB(ANON, "#");
	NOSUB(ANON, "+/broker/#"); /* matches no "$" topic, and nothing else is allowed */
	RECV(ANON, "$SYS/broker/uptime", true);
	RECV(ANON, "$SYS/other", false);
	PUB(ANON, "$SYS/broker/uptime", 0, false, false); /* read only */
	PUB(ANON, "anon/x", 2, true, true);
	PUB(ANON, "anon/x/y", 0, false, false);
	PUB(ANON, "clients/c0/status", 0, false, true); /* everyone's %c */
	PUB(ANON, "clients/c1/status", 0, false, false);
	NOSUB(ANON, "users/c0/#"); /* %u: no username, rule dropped */
	NOSUB(ANON, "certs/+/#");  /* %cn: no certificate */
	PUB(ANON, "c0/inbox", 0, false, true);
	PUB(ANON, "nothing/here", 0, false, false); /* default deny */
}

static void test_mosquitto_user(void **state)
{
	(void)state;
	PUB(ALICE, "alice/x", 2, true, true);
	PUB(ALICE, "alice", 2, false, true);
	PUB(ALICE, "alice/secret/x", 0, false, false);
	PUB(ALICE, "alice/secret", 0, false, false);
	PUB(ALICE, "alice/secretive", 0, false, true);
	SUB(ALICE, "alice/#", 2, true);
	SUB(ALICE, "alice/+", 2, true); /* shares "alice/secret" with the deny */
	SUB(ALICE, "alice/public/+", 2, false);
	SUB(ALICE, "alice/+/x", 2, true);
	NOSUB(ALICE, "alice/secret/x");
	NOSUB(ALICE, "alice/secret/#");
	NOSUB(ALICE, "alice/secret");
	NOSUB(ALICE, "+/public");
	RECV(ALICE, "alice/secret/x", false);
	RECV(ALICE, "alice/ok", true);
	/* A topic with a blank, write only. */
	PUB(ALICE, "shared space/x y", 1, false, true);
	NOSUB(ALICE, "shared space/x y");
	/* "topic" lines take %c literally, as Mosquitto does. */
	SUB(ALICE, "%c/literal", 2, false);
	NOSUB(ALICE, "a1/literal");
	/* Shared subscriptions are judged on their filter. */
	SUB(ALICE, "$share/g/alice/public/#", 2, false);
	SUB(ALICE, "$share/g/alice/#", 2, true);
	NOSUB(ALICE, "$share/g/bob/#");
	NOSUB(ALICE, "$share/alice/x"); /* filter "x" */
	/* Patterns apply to users with a section too. */
	SUB(ALICE, "$SYS/broker/connection/a1/#", 2, false);
	NOSUB(ALICE, "$SYS/broker/connection/+/#");
	NOSUB(ALICE, "$SYS/broker/#"); /* the anonymous rule is not hers */
	PUB(ALICE, "clients/a1/status", 0, false, true);
	SUB(ALICE, "users/alice/#", 2, false);
	NOSUB(ALICE, "users/bob/#");
	NOSUB(ALICE, "users/+/#");
	PUB(ALICE, "anon/x", 0, false, false);
}

static void test_bob(void **state)
{
	(void)state;
	PUB(BOB, "data/b1/t", 1, false, true);
	PUB(BOB, "data/b1", 1, false, true);
	PUB(BOB, "data/b1/t", 2, false, false); /* qos=1 */
	PUB(BOB, "data/b1/t", 0, true, false);  /* retain=no */
	PUB(BOB, "data/b2/t", 0, false, false);
	SUB(BOB, "data/#", 2, true);
	SUB(BOB, "data/+", 2, true);
	SUB(BOB, "data/public/#", 2, false);
	SUB(BOB, "data/+/x", 2, true);
	NOSUB(BOB, "data/private/#");
	NOSUB(BOB, "data/private");
	NOSUB(BOB, "data/private/+/y");
	NOSUB(BOB, "#");
	NOSUB(BOB, "+");
	NOSUB(BOB, "+/x");
	RECV(BOB, "data/private/x", false);
	RECV(BOB, "data/y", true);
	RECV(BOB, "data", true);
	/* all = publish and subscribe, capped. */
	SUB(BOB, "chat/room", 1, false);
	SUB(BOB, "chat/+", 1, false);
	NOSUB(BOB, "chat/#");
	NOSUB(BOB, "chat/room/x");
	PUB(BOB, "chat/room", 1, true, true);
	PUB(BOB, "chat/room", 2, false, false);
	/* The lowest cap of the allow rules that share topics with the filter. */
	SUB(BOB, "cap/#", 0, false);
	SUB(BOB, "cap/+", 0, false); /* shares "cap/low" */
	SUB(BOB, "cap/high/x", 2, false);
	SUB(BOB, "cap/low/x", 0, false);
	SUB(BOB, "cap/+/x", 0, false);
	/* Placeholders. */
	PUB(BOB, "tabs/bob", 0, false, true);
	SUB(BOB, "certs/bob.example/#", 2, false);
	NOSUB(BOB, "certs/+/#");
	NOSUB(BOB, "certs/x/#");
	SUB(BOB, "users/bob/+", 2, false);
}

static void test_hostile_values(void **state)
{
	(void)state;
	/* Client id "a/#": "data/%c/#" would grant "data/a/#"; it grants nothing. */
	PUB(BOB_SLASH, "data/a/x", 0, false, false);
	PUB(BOB_SLASH, "data/a", 0, false, false);
	PUB(BOB_SLASH, "clients/a/status", 0, false, false);
	NOSUB(BOB_SLASH, "certs/x/y/#");   /* cert CN "x/y" */
	SUB(BOB_SLASH, "data/#", 2, true); /* rules without placeholders still hold */
	assert_true(bw_acl_compiled_rules(compiled[BOB_SLASH]) <
	            bw_acl_compiled_rules(compiled[BOB]));
	/* "+" and "#" as values would be wildcards. */
	PUB(BOB_PLUS, "data/x/t", 0, false, false);
	PUB(BOB_PLUS, "data/+/t", 0, false, false); /* not a name anyway */
	NOSUB(BOB_PLUS, "certs/x/#");
	NOSUB(BOB_PLUS, "certs/#");
	/* Empty values would turn "data/%c/#" into "data//#". */
	PUB(BOB_EMPTY, "data//t", 0, false, false);
	PUB(BOB_EMPTY, "clients//status", 0, false, false);
	NOSUB(BOB_EMPTY, "certs//#");
	/* "$SYS" is a fine value below the first level, never as the first. */
	PUB(BOB_DOLLAR, "data/$SYS/x", 1, false, true);
	PUB(BOB_DOLLAR, "$SYS/inbox", 0, false, false);
	PUB(ANON, "$SYS/inbox", 0, false, false);
	/* A username that is a placeholder is just a name. */
	assert_int_equal(bw_acl_compiled_rules(compiled[EVE]), 5);
}

static void test_everyone_and_dollar(void **state)
{
	(void)state;
	/* root: "allow all #" and everyone's "deny all forbidden/#". */
	PUB(ROOT, "a/b", 2, true, true);
	PUB(ROOT, "forbidden", 0, false, false);
	PUB(ROOT, "forbidden/x", 0, false, false);
	SUB(ROOT, "#", 2, true);
	SUB(ROOT, "+/x", 2, true); /* shares "forbidden/x" */
	SUB(ROOT, "a/#", 2, false);
	SUB(ROOT, "+/+/+", 2, true);
	NOSUB(ROOT, "forbidden/#");
	NOSUB(ROOT, "forbidden/+");
	RECV(ROOT, "forbidden/x", false);
	RECV(ROOT, "x/forbidden", true);
	/* '#' never reaches "$" topics. */
	PUB(ROOT, "$SYS/x", 0, false, false);
	NOSUB(ROOT, "$SYS/#");
	NOSUB(ROOT, "$SYS");
	RECV(ROOT, "$SYS/x", false);
	SUB(ROOT, "$SYS/broker/connection/r/#", 2, false);
	RECV(ROOT, "$SYS/broker/connection/r/state", true);
	/* eve has no section: only everyone's rules. */
	PUB(EVE, "clients/e/status", 0, false, true);
	SUB(EVE, "users/eve/#", 2, false);
	PUB(EVE, "alice/x", 0, false, false);
	PUB(EVE, "anon/x", 0, false, false);
	/* Invalid input is refused, not matched. */
	uint8_t q;
	bool e;
	assert_int_equal(bw_acl_can_subscribe(compiled[ROOT], (const uint8_t *)"a/#/b", 5, &q, &e),
	                 -EINVAL);
	assert_int_equal(bw_acl_can_subscribe(compiled[ROOT], (const uint8_t *)"", 0, &q, &e),
	                 -EINVAL);
	assert_int_equal(bw_acl_can_subscribe(compiled[ROOT], (const uint8_t *)"a\xff", 2, &q, &e),
	                 -EINVAL);
	assert_false(bw_acl_can_publish(compiled[ROOT], (const uint8_t *)"a/+", 3, 0, false));
	assert_false(bw_acl_can_publish(compiled[ROOT], (const uint8_t *)"", 0, 0, false));
	assert_false(bw_acl_can_receive(compiled[ROOT], (const uint8_t *)"#", 1));
	assert_false(bw_acl_can_publish(NULL, (const uint8_t *)"a", 1, 0, false));
}

/* Every generated topic and filter against every client: trie and reference agree. */
static void test_against_reference(void **state)
{
	static const char *levels[] = { "a",    "b",      "data",  "b1",     "private",
		                        "$SYS", "broker", "alice", "secret", "",
		                        "+",    "#",      "cap",   "low" };
	const size_t nl = sizeof(levels) / sizeof(levels[0]);
	char buf[64];
	size_t checked = 0;

	(void)state;
	/* Up to three levels: nl + nl^2 + nl^3 strings. */
	for (size_t n = 1; n <= 3; n++) {
		size_t total = 1;
		for (size_t k = 0; k < n; k++)
			total *= nl;
		for (size_t idx = 0; idx < total; idx++) {
			size_t x = idx, len = 0;
			for (size_t k = 0; k < n; k++) {
				const char *l = levels[x % nl];
				x /= nl;
				len += (size_t)sprintf(buf + len, "%s%s", k ? "/" : "", l);
			}
			const uint8_t *t = (const uint8_t *)buf;
			for (int w = 0; w < NWHO; w++) {
				const struct bw_acl_compiled *c = compiled[w];
				for (uint8_t q = 0; q < 3; q++) {
					assert_int_equal(bw_acl_can_publish(c, t, len, q, q == 1),
					                 ref_acl_can_publish(c, t, len, q, q == 1));
				}
				assert_int_equal(bw_acl_can_receive(c, t, len),
				                 ref_acl_can_receive(c, t, len));
				uint8_t q1, q2;
				bool e1, e2;
				int r1 = bw_acl_can_subscribe(c, t, len, &q1, &e1);
				int r2 = ref_acl_can_subscribe(c, t, len, &q2, &e2);
				if (r1 != r2 || q1 != q2 || e1 != e2)
					fail_msg("\"%s\" by %d: %d q%u e%d, reference %d q%u e%d",
					         buf, w, r1, q1, e1, r2, q2, e2);
				checked++;
			}
		}
	}
	print_message("%zu topic/filter checks agree with the reference\n", checked);
}

static void parse_bad(int line, const char *text, const char *want)
{
	struct bw_acl *a = (struct bw_acl *)&a;
	char err[256];
	int rc = bw_acl_parse(text, strlen(text), "acl.conf", &a, err, sizeof(err));

	if (rc != -EINVAL || a != NULL || !strstr(err, want))
		fail_msg("line %d: got %d \"%s\", want \"%s\"", line, rc, err, want);
}

#define BAD(text, want) parse_bad(__LINE__, text, want)

static void test_parse_errors(void **state)
{
	(void)state;
	BAD("allow publish a/b\n", "acl.conf:1: a rule before any section");
	BAD("# c\n\nuser\n", "acl.conf:3: \"user\" needs a username");
	BAD("user a\xff\n", "acl.conf:1: username is not valid UTF-8");
	BAD("everyone x\n", "acl.conf:1: \"everyone\" takes nothing after it");
	BAD("anonymous  x\n", "acl.conf:1: \"anonymous\" takes nothing after it");
	BAD("user a\nallow pub x\n", "acl.conf:2: access must be publish, subscribe or all, not "
	                             "\"pub\"");
	BAD("user a\nallow\n", "acl.conf:2: access must be");
	BAD("user a\nallow publish\n", "acl.conf:2: missing topic filter");
	BAD("user a\nallow publish a/#/b\n", "acl.conf:2: invalid topic filter");
	BAD("user a\nallow publish a/b+\n", "acl.conf:2: invalid topic filter");
	BAD("user a\nallow publish a/\xc0\x80\n", "acl.conf:2: topic filter is not valid UTF-8");
	BAD("user a\nallow publish $share/g/x\n", "acl.conf:2: a rule names topics, not a shared");
	BAD("user a\nallow publish a/x%c/b\n", "acl.conf:2: a placeholder (%u, %c, %cn) must be a "
	                                       "whole level: \"a/x%c/b\"");
	BAD("user a\nallow publish %user\n", "must be a whole level");
	BAD("user a\nallow publish a/%cn2\n", "must be a whole level");
	BAD("pattern read a/x%cy\n", "acl.conf:1: a placeholder");
	BAD("user a\ndeny publish a qos=1\n",
	    "acl.conf:2: options (\"qos=1\") apply to allow rules");
	BAD("user a\nallow subscribe a retain=no\n", "acl.conf:2: retain= applies to publish");
	BAD("user a\nallow publish a qos=3\n", "acl.conf:2: unknown or repeated option \"qos=3\"");
	BAD("user a\nallow publish a qos=1 qos=2\n", "repeated option \"qos=2\"");
	BAD("user a\nallow publish a retain=no retain=no\n", "repeated option");
	BAD("user a\nallow publish a/b c\n", "unknown or repeated option \"c\"");
	BAD("everyone\ntopic read a\n", "acl.conf:2: a \"topic\" line in the \"everyone\" section");
	BAD("frobnicate\n", "acl.conf:1: unknown keyword \"frobnicate\"");
	BAD("user a\ntopic read a/#/b\n", "acl.conf:2: invalid topic filter");
	BAD("user a\ntopic\n", "acl.conf:2: missing topic filter");
}

static struct bw_acl_compiled *compile_text(const char *text, const struct bw_acl_subject *who)
{
	struct bw_acl *a;
	char err[256];

	if (bw_acl_parse(text, strlen(text), NULL, &a, err, sizeof(err)) != 0)
		fail_msg("parse: %s", err);
	struct bw_acl_compiled *c = bw_acl_compile(a, who);
	bw_acl_free(&a);
	assert_null(a);
	assert_non_null(c);
	return c;
}

static bool can_pub(const struct bw_acl_compiled *c, const char *t)
{
	return bw_acl_can_publish(c, (const uint8_t *)t, strlen(t), 0, false);
}

static void test_sections_and_words(void **state)
{
	const struct bw_acl_subject a = { S("a"), S("ca"), NULL, 0 };
	const struct bw_acl_subject b = { S("b"), S("cb"), NULL, 0 };
	const struct bw_acl_subject nobody = { 0 };
	const char *text = "user a\nallow publish x\nuser b\nallow publish y\n"
	                   "user a\nallow publish z\ntopic write w w\ntopic read\n"
	                   "topic write\ntopic deny\ntopic readwrite\ntopic x/%u\n";
	struct bw_acl_compiled *ca = compile_text(text, &a), *cb = compile_text(text, &b);
	struct bw_acl_compiled *cn = compile_text(text, &nobody), *cnull = compile_text(text, NULL);
	uint8_t q;
	bool e;

	(void)state;
	/* a's two sections merged, in order; b's kept apart. */
	assert_true(can_pub(ca, "x") && can_pub(ca, "z") && !can_pub(ca, "y"));
	assert_true(can_pub(cb, "y") && !can_pub(cb, "x") && !can_pub(cb, "z"));
	/* "topic write w w": the topic "w w". A lone word is the topic, read and write. */
	assert_true(can_pub(ca, "w w") && !can_pub(ca, "w"));
	assert_true(can_pub(ca, "read") && can_pub(ca, "write") && can_pub(ca, "deny") &&
	            can_pub(ca, "readwrite"));
	assert_true(can_pub(ca, "x/%u") && !can_pub(ca, "x/a"));
	assert_int_equal(bw_acl_compiled_rules(ca), 8);
	assert_int_equal(bw_acl_compiled_rules(cn), 0);
	assert_false(can_pub(cn, "x"));
	assert_false(can_pub(cnull, "x"));
	bw_acl_compiled_free(&ca);
	bw_acl_compiled_free(&cb);
	bw_acl_compiled_free(&cn);
	bw_acl_compiled_free(&cnull);
	assert_null(ca);
	bw_acl_compiled_free(&ca);

	/* Empty levels are levels, also first (a fuzzed input found this). */
	struct bw_acl_compiled *cl = compile_text("everyone\nallow publish /a\nallow all a//+\n"
	                                          "allow publish /\n",
	                                          &a);
	assert_true(can_pub(cl, "/a") && can_pub(cl, "a//x") && can_pub(cl, "/"));
	assert_false(can_pub(cl, "a") || can_pub(cl, "a/x") || can_pub(cl, "a/x/y"));
	assert_int_equal(bw_acl_can_subscribe(cl, (const uint8_t *)"a//+", 4, &q, &e), 0);
	assert_int_equal(bw_acl_can_subscribe(cl, (const uint8_t *)"a/+/+", 5, &q, &e), -EACCES);
	bw_acl_compiled_free(&cl);

	/* An empty file denies everything. */
	struct bw_acl_compiled *ce = compile_text("", &a);
	assert_false(can_pub(ce, "x"));
	assert_int_equal(bw_acl_can_subscribe(ce, (const uint8_t *)"#", 1, &q, &e), -EACCES);
	bw_acl_compiled_free(&ce);
}

static void test_limits(void **state)
{
	const size_t max = BW_ACL_LINE_MAX;
	char *text = malloc(BW_ACL_RULES_MAX * 20 + max + 64);
	struct bw_acl *a;
	char err[256];
	size_t len;

	(void)state;
	assert_non_null(text);
	/* A line of BW_ACL_LINE_MAX bytes is fine, one more is not. */
	len = (size_t)sprintf(text, "user u\nallow publish ");
	size_t start = 7;
	memset(text + len, 'x', max - (len - start));
	len = start + max;
	text[len++] = '\n';
	assert_int_equal(bw_acl_parse(text, len, "big", &a, err, sizeof(err)), 0);
	bw_acl_free(&a);
	text[len - 1] = 'x';
	text[len++] = '\n';
	assert_int_equal(bw_acl_parse(text, len, "big", &a, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "big:2: line longer than 4096 bytes");

	/* BW_ACL_RULES_MAX rules load; one more does not. */
	len = (size_t)sprintf(text, "everyone\n");
	for (unsigned i = 0; i < BW_ACL_RULES_MAX; i++)
		len += (size_t)sprintf(text + len, "deny all r/%u\n", i);
	assert_int_equal(bw_acl_parse(text, len, "many", &a, err, sizeof(err)), 0);
	assert_int_equal(bw_acl_rule_count(a), BW_ACL_RULES_MAX);
	/* Compiling them all for one client, and checking, works. */
	struct bw_acl_compiled *c = bw_acl_compile(a, NULL);
	assert_non_null(c);
	assert_false(can_pub(c, "r/5"));
	uint8_t q;
	bool e;
	assert_int_equal(bw_acl_can_subscribe(c, (const uint8_t *)"r/+", 3, &q, &e), -EACCES);
	bw_acl_compiled_free(&c);
	bw_acl_free(&a);
	len += (size_t)sprintf(text + len, "deny all one/more\n");
	assert_int_equal(bw_acl_parse(text, len, "many", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "many:100002: more than 100000 rules"));
	free(text);

	assert_int_equal(bw_acl_parse("", BW_ACL_FILE_MAX + 1, NULL, &a, err, sizeof(err)), -EFBIG);
	assert_int_equal(bw_acl_parse("x\n", 2, NULL, &a, NULL, 0), -EINVAL);
}

static void test_load(void **state)
{
	char path[] = "/tmp/bw-test-acl-XXXXXX";
	int fd = mkstemp(path);
	struct bw_acl *a;
	char err[256], want[128];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, acl_text, sizeof(acl_text) - 1), (ssize_t)sizeof(acl_text) - 1);
	close(fd);
	assert_int_equal(bw_acl_load(path, &a, err, sizeof(err)), 0);
	assert_int_equal(bw_acl_rule_count(a), bw_acl_rule_count(acl));
	bw_acl_free(&a);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "bogus\n", 6), 6);
	close(fd);
	assert_int_equal(bw_acl_load(path, &a, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:29: unknown keyword \"bogus\"", path);
	assert_non_null(strstr(err, want));
	unlink(path);
	assert_int_equal(bw_acl_load(path, &a, err, sizeof(err)), -ENOENT);
	assert_null(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anonymous),
		cmocka_unit_test(test_mosquitto_user),
		cmocka_unit_test(test_bob),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_everyone_and_dollar),
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_sections_and_words),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
