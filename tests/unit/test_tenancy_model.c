/*
 * Unit tests for the tenancy model without a store (tenancy/model.h,
 * model_build.h, file_format.h): tenancy.json read, written and read again
 * to the same model; every kind of damaged file with the file name and
 * position it must name; the builder's cross-record rules (a deleted
 * tenant takes its records, a deleted group leaves its members, clashing
 * hostnames refused strictly and resolving to nobody leniently); deltas;
 * many principals put and deleted in one builder (the index's deletion);
 * tenants' own tenant claim names (jwt_tenant_claim: the file, the
 * checks, the snapshot's set of names and its limit); rule lists
 * (bw_acl_parse_rules).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenancy/acl.h"
#include "tenancy/file_format.h"
#include "tenancy/model.h"
#include "tenancy/model_build.h"
#include "tenancy_material.h"

/* A file with every field; CA_A_PEM and JWKS_OCT are spliced in as JSON strings. */
static char *sample(void)
{
	static const char head[] =
	        "{\"format\": \"bulwark-tenancy\", \"version\": 1, \"next_tenant_id\": 9,\n"
	        " \"tenants\": [\n"
	        "  {\"name\": \"acme\", \"id\": 3, \"status\": \"active\", \"allow_anonymous\": "
	        "false,\n"
	        "   \"sni\": [\"mqtt.acme.example\"],\n"
	        "   \"quotas\": {\"connections\": 10, \"retained_bytes\": 1048576, \"max_qos\": "
	        "1},\n"
	        "   \"ca_pem\": \"%s\",\n"
	        "   \"jwt\": {\"issuers\": [\"https://id\"], \"audiences\": [], \"jwks\": "
	        "\"%s\"},\n"
	        "   \"groups\": [{\"name\": \"sensors\", \"rules\": \"allow publish "
	        "data/%%c/#\"}],\n"
	        "   \"principals\": [\n"
	        "    {\"name\": \"dev1\", \"kind\": \"password\", \"password_hash\": \"%s\",\n"
	        "     \"enabled\": true, \"groups\": [\"sensors\"], \"rules\": \"\"},\n"
	        "    {\"name\": \"cam\", \"kind\": \"certificate\"}]},\n"
	        "  {\"name\": \"globex\", \"id\": 5, \"status\": \"suspended\"}]}\n";
	char pem[2048], jwks[512], *out;
	size_t o = 0;

	/* JSON-escape the PEM's newlines and the JWKS's quotes. */
	for (const char *c = CA_A_PEM; *c; c++) {
		if (*c == '\n')
			pem[o++] = '\\', pem[o++] = 'n';
		else
			pem[o++] = *c;
	}
	pem[o] = '\0';
	o = 0;
	for (const char *c = JWKS_OCT; *c; c++) {
		if (*c == '"')
			jwks[o++] = '\\';
		jwks[o++] = *c;
	}
	jwks[o] = '\0';
	assert_true(asprintf(&out, head, pem, jwks, HASH_SECRET) > 0);
	return out;
}

static struct bw_tenancy *parse_ok(const char *text)
{
	struct bw_tenancy *s = NULL;
	char err[512];
	int rc = bw__tenancy_json_parse(text, strlen(text), "t.json", &s, err, sizeof(err));

	if (rc != 0)
		fail_msg("parse: %d %s", rc, err);
	return s;
}

static void test_file_round_trip(void **state)
{
	char *text = sample(), *out = NULL, *out2 = NULL;
	size_t len, len2;
	struct bw_tenancy_delta *d = NULL;

	(void)state;
	struct bw_tenancy *s = parse_ok(text);
	assert_int_equal(bw_tenancy_tenant_count(s), 2);
	const struct bw_tenant *a = bw_tenancy_tenant(s, "acme", 4);
	assert_int_equal(a->id, 3);
	assert_int_equal(a->quotas.connections, 10);
	assert_int_equal(a->quotas.retained_bytes, 1048576);
	assert_int_equal(a->quotas.max_qos, 1);
	assert_string_equal(a->ca_pem, CA_A_PEM);
	assert_string_equal(a->jwks, JWKS_OCT);
	assert_int_equal(bw_tenancy_tenant(s, "globex", 6)->quotas.max_qos, BW_QUOTA_QOS_DEFAULT);
	const struct bw_principal *p = bw_tenancy_principal(s, a, "cam", 3);
	assert_int_equal(p->kind, BW_PRINCIPAL_CERTIFICATE);
	assert_true(p->enabled); /* the default */
	assert_int_equal(bw__tenancy_next_id(s), 9);

	assert_int_equal(bw__tenancy_json_dump(s, &out, &len), 0);
	struct bw_tenancy *again = parse_ok(out);
	assert_int_equal(bw_tenancy_diff(s, again, &d), 0);
	assert_int_equal(d->n, 0);
	bw_tenancy_delta_free(&d);
	assert_int_equal(bw__tenancy_json_dump(again, &out2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(out, out2, len);
	assert_int_equal(bw__tenancy_next_id(again), 9);
	free(out);
	free(out2);
	free(text);
	bw_tenancy_release(&again);
	bw_tenancy_release(&s);
}

/* text must fail with rc and a message holding want. */
static void bad(int line, const char *text, int rc, const char *want)
{
	struct bw_tenancy *s = (struct bw_tenancy *)&s;
	char err[512];
	int got = bw__tenancy_json_parse(text, strlen(text), "t.json", &s, err, sizeof(err));

	if (got != rc || s != NULL || !strstr(err, want))
		fail_msg("line %d: got %d \"%s\", want %d \"%s\"", line, got, err, rc, want);
}

#define HEAD            "{\"format\": \"bulwark-tenancy\", \"version\": 1, \"tenants\": "
#define BAD(text, want) bad(__LINE__, text, -EINVAL, want)

static void test_file_errors(void **state)
{
	(void)state;
	BAD("{\"format\": \"bulwark-tenancy\",\n \"version\": 1,,}", "t.json: line 2, column 15: ");
	BAD("", "t.json: line 1, column 0: ");
	BAD("[]", "t.json: top level: must be an object");
	BAD("{\"version\": 1, \"tenants\": []}", "t.json: top level: \"format\" is missing");
	BAD("{\"format\": \"x\", \"version\": 1, \"tenants\": []}", "t.json: format: \"x\" is not");
	BAD("{\"format\": \"bulwark-tenancy\", \"version\": 2, \"tenants\": []}",
	    "t.json: version: 2 is not a version this node reads");
	BAD(HEAD "[], \"extra\": 1}", "t.json: top level: unknown member \"extra\"");
	BAD(HEAD "[], \"tenants\": []}", "duplicate object key");
	BAD(HEAD "{}}", "t.json: tenants: must be an array");
	BAD(HEAD "[5]}", "t.json: tenants[0]: must be an object");
	BAD(HEAD "[{\"name\": \"a\"}]}", "t.json: tenants[0]: \"id\" is missing");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 0}]}", "t.json: tenants[0]: \"id\" must not be 0");
	BAD(HEAD "[{\"name\": \"a\", \"id\": -1}]}", "tenants[0]: \"id\" must be a whole number");
	BAD(HEAD "[{\"name\": \"A\", \"id\": 1}]}", "tenants[0]: tenant: tenant name \"A\" is not");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"color\": 1}]}",
	    "tenants[0]: unknown member \"color\"");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"status\": \"gone\"}]}",
	    "tenants[0]: status: \"gone\" is not active or suspended");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"quotas\": {\"max_qos\": 3}}]}",
	    "tenants[0].quotas: \"max_qos\" must be a whole number from 0 to 2");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"quotas\": {\"connections\": 4294967296}}]}",
	    "tenants[0].quotas: \"connections\" must be a whole number from 0 to 4294967295");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"quotas\": {\"speed\": 1}}]}",
	    "tenants[0].quotas: unknown member \"speed\"");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"sni\": [\"a\", 5]}]}",
	    "tenants[0]: \"sni\"[1] must be a string");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"sni\": \"a\"}]}",
	    "tenants[0]: \"sni\" must be an array of strings");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt\": {\"jwks\": \"{}\"}}]}",
	    "tenants[0]: tenant \"a\": jwks: ");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt\": {\"keys\": 1}}]}",
	    "tenants[0].jwt: unknown member \"keys\"");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1}, {\"name\": \"a\", \"id\": 2}]}",
	    "tenants[1]: tenant \"a\" is listed twice");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"groups\": [{\"name\": \"g\", \"rules\": "
	         "\"everyone\"}]}]}",
	    "tenants[0].groups[0]: group \"a/g\": rules:1: \"everyone\": a rule list");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"groups\": [{\"name\": \"g\"}, {\"name\": "
	         "\"g\"}]}]}",
	    "tenants[0].groups[1]: group \"g\" is listed twice");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"principals\": [{\"name\": \"p\", \"kind\": "
	         "\"password\", \"password_hash\": \"x\"}]}]}",
	    "tenants[0].principals[0]: principal \"a/p\": password_hash: ");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"principals\": [{\"name\": \"p\", \"kind\": "
	         "\"robot\"}]}]}",
	    "tenants[0].principals[0]: kind: \"robot\" is not");
	bad(__LINE__,
	    HEAD "[{\"name\": \"a\", \"id\": 1, \"principals\": [{\"name\": \"p\", \"kind\": "
	         "\"token\", \"groups\": [\"nope\"]}]}]}",
	    -ENOENT, "tenants[0].principals[0]: principal \"a/p\": groups: no group \"nope\"");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"principals\": [{\"name\": \"p\", \"kind\": "
	         "\"token\"}, {\"name\": \"p\", \"kind\": \"token\"}]}]}",
	    "tenants[0].principals[1]: principal \"p\" is listed twice");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"principals\": [{\"name\": \"p\\u0000q\", "
	         "\"kind\": \"token\"}]}]}",
	    "");
	bad(__LINE__,
	    HEAD "[{\"name\": \"a\", \"id\": 1, \"sni\": [\"x.example\"]}, {\"name\": \"b\", "
	         "\"id\": 2, \"sni\": [\"x.example\"]}]}",
	    -EEXIST, "t.json: tenants: sni hostname \"x.example\" already belongs to tenant \"a\"");
	bad(__LINE__, HEAD "[{\"name\": \"a\", \"id\": 1}, {\"name\": \"b\", \"id\": 1}]}", -EEXIST,
	    "tenants \"a\" and \"b\" have id 1");
}

static struct bw_tenant tenant(const char *name, const char *const *sni, size_t n)
{
	return (struct bw_tenant){ .name = name,
		                   .name_len = strlen(name),
		                   .sni = sni,
		                   .sni_n = n,
		                   .quotas.max_qos = BW_QUOTA_QOS_DEFAULT };
}

static void put_principal(struct bw__tbuild *b, const char *t, const char *name,
                          const char *const *groups, size_t n)
{
	struct bw_principal p = { .tenant = t,
		                  .name = name,
		                  .name_len = strlen(name),
		                  .kind = BW_PRINCIPAL_TOKEN,
		                  .enabled = true,
		                  .groups = groups,
		                  .groups_n = n };
	char err[256];

	if (bw__tbuild_principal_put(b, &p, true, err, sizeof(err)) != 0)
		fail_msg("put %s: %s", name, err);
}

static struct bw_tenancy *finish(struct bw__tbuild *b, bool strict, size_t *clashes)
{
	struct bw_tenancy *s = NULL;
	char err[256];
	int rc = bw__tbuild_finish(&b, 0, strict, clashes, &s, err, sizeof(err));

	if (rc != 0)
		fail_msg("finish: %d %s", rc, err);
	assert_null(b);
	return s;
}

static void test_builder_rules(void **state)
{
	static const char *const h[] = { "x.example" };
	static const char *const g12[] = { "g1", "g2" };
	struct bw__tbuild *b = bw__tbuild_new(NULL);
	struct bw_tenant a = tenant("a", h, 1), c = tenant("c", h, 1);
	struct bw_group g1 = { .tenant = "a", .name = "g1", .name_len = 2, .rules = "allow all x" };
	struct bw_group g2 = { .tenant = "a", .name = "g2", .name_len = 2 };
	struct bw_tenancy_delta *d = NULL;
	size_t clashes = 9;
	char err[256];

	(void)state;
	assert_int_equal(bw__tbuild_tenant_put(b, &a, 0, err, sizeof(err)), 0);
	assert_int_equal(bw__tbuild_group_put(b, &g1, err, sizeof(err)), 0);
	assert_int_equal(bw__tbuild_group_put(b, &g2, err, sizeof(err)), 0);
	put_principal(b, "a", "p", g12, 2);
	struct bw_tenancy *s1 = finish(b, true, &clashes);
	assert_int_equal(clashes, 0);
	assert_int_equal(bw_tenancy_tenant(s1, "a", 1)->id, 1);

	/* Deleting a group takes it out of its member; the delta says both. */
	b = bw__tbuild_new(s1);
	assert_int_equal(bw__tbuild_group_delete(b, "a", "g1", err, sizeof(err)), 0);
	assert_int_equal(bw__tbuild_group_delete(b, "a", "g1", err, sizeof(err)), -ENOENT);
	struct bw_tenancy *s2 = finish(b, true, NULL);
	const struct bw_tenant *ta = bw_tenancy_tenant(s2, "a", 1);
	assert_int_equal(bw_tenancy_principal(s2, ta, "p", 1)->groups_n, 1);
	assert_int_equal(bw_tenancy_diff(s1, s2, &d), 0);
	assert_int_equal(d->n, 2);
	assert_int_equal(d->changes[0].kind, BW_TENANCY_GROUP);
	assert_true(d->changes[0].deleted);
	assert_int_equal(d->changes[1].kind, BW_TENANCY_PRINCIPAL);
	assert_false(d->changes[1].deleted);
	bw_tenancy_delta_free(&d);
	assert_null(d);

	/* Strict: a second tenant with the same hostname is refused. */
	b = bw__tbuild_new(s2);
	assert_int_equal(bw__tbuild_tenant_put(b, &c, 0, err, sizeof(err)), 0);
	struct bw_tenancy *s3 = NULL;
	assert_int_equal(bw__tbuild_finish(&b, 0, true, NULL, &s3, err, sizeof(err)), -EEXIST);
	assert_null(s3);
	assert_non_null(strstr(err, "sni hostname \"x.example\" already belongs to tenant \"a\""));
	/* Lenient: the hostname resolves to nobody, and that is counted. */
	b = bw__tbuild_new(s2);
	assert_int_equal(bw__tbuild_tenant_put(b, &c, 0, err, sizeof(err)), 0);
	s3 = finish(b, false, &clashes);
	assert_int_equal(clashes, 1);
	assert_null(bw_tenancy_tenant_by_sni(s3, "x.example", 9));
	assert_int_equal(bw_tenancy_tenant(s3, "c", 1)->id, 2);

	/* A deleted and re-created tenant starts empty; records of others are shared. */
	b = bw__tbuild_new(s3);
	assert_int_equal(bw__tbuild_tenant_delete(b, "a", 1, err, sizeof(err)), 0);
	assert_int_equal(bw__tbuild_tenant_delete(b, "a", 1, err, sizeof(err)), -ENOENT);
	assert_int_equal(bw__tbuild_group_put(b, &g1, err, sizeof(err)), -ENOENT);
	assert_int_equal(bw__tbuild_tenant_put(b, &a, 0, err, sizeof(err)), 0);
	struct bw_tenancy *s4 = finish(b, false, NULL);
	assert_int_equal(bw_tenancy_tenant(s4, "a", 1)->groups_n, 0);
	assert_int_equal(bw_tenancy_tenant(s4, "a", 1)->id, 3); /* ids are never reused */
	assert_ptr_equal(bw_tenancy_tenant(s4, "c", 1), bw_tenancy_tenant(s3, "c", 1));
	assert_int_equal(bw_tenancy_diff(s3, s4, &d), 0);
	assert_int_equal(d->n, 3); /* a changed; its group and principal are gone */
	bw_tenancy_delta_free(&d);
	assert_int_equal(bw_tenancy_diff(NULL, s1, &d), 0);
	assert_int_equal(d->n, 4); /* everything is new */
	bw_tenancy_delta_free(&d);
	bw_tenancy_release(&s4);
	bw_tenancy_release(&s3);
	bw_tenancy_release(&s2);
	bw_tenancy_release(&s1);
}

static void test_many_principals(void **state)
{
	struct bw__tbuild *b = bw__tbuild_new(NULL);
	struct bw_tenant t = tenant("big", NULL, 0);
	char name[32], err[256];

	(void)state;
	assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		put_principal(b, "big", name, NULL, 0);
	}
	for (int i = 0; i < 3000; i += 3) {
		snprintf(name, sizeof(name), "p%d", i);
		assert_int_equal(bw__tbuild_principal_delete(b, "big", name, err, sizeof(err)), 0);
	}
	struct bw_tenancy *s = finish(b, true, NULL);
	const struct bw_tenant *big = bw_tenancy_tenant(s, "big", 3);
	assert_int_equal(big->principals_n, 2000);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		const struct bw_principal *p = bw_tenancy_principal(s, big, name, strlen(name));
		if (i % 3 == 0)
			assert_null(p);
		else
			assert_true(p && strcmp(p->name, name) == 0);
	}
	/* Sorted by name. */
	for (size_t i = 1; i < big->principals_n; i++)
		assert_true(strcmp(bw_tenancy_principal_at(s, big, i - 1)->name,
		                   bw_tenancy_principal_at(s, big, i)->name) < 0);
	bw_tenancy_release(&s);
}

static void claim_names_are(const struct bw_tenancy *s, const char *const *want, size_t n)
{
	size_t have;
	const char *const *v = bw_tenancy_claim_names(s, &have);

	assert_int_equal(have, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i], want[i]);
}

static void test_tenant_claim(void **state)
{
	static const char file[] =
	        HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt_tenant_claim\": "
	             "\"https://example.com/tenant\"},"
	             " {\"name\": \"b\", \"id\": 2, \"jwt_tenant_claim\": \"org\"},"
	             " {\"name\": \"c\", \"id\": 3, \"jwt_tenant_claim\": \"org\"},"
	             " {\"name\": \"d\", \"id\": 4, \"jwt_tenant_claim\": \"\"},"
	             " {\"name\": \"e\", \"id\": 5}]}";
	static const char *const both[] = { "https://example.com/tenant", "org" };
	struct bw_tenancy_delta *d = NULL;
	char *out = NULL, *out2 = NULL, err[512], name[16];
	size_t len, len2, clashes = 0;

	(void)state;
	/* Read, written (only where set) and read again to the same model. */
	struct bw_tenancy *s = parse_ok(file);
	assert_string_equal(bw_tenancy_tenant(s, "a", 1)->jwt_tenant_claim,
	                    "https://example.com/tenant");
	assert_string_equal(bw_tenancy_tenant(s, "b", 1)->jwt_tenant_claim, "org");
	assert_string_equal(bw_tenancy_tenant(s, "d", 1)->jwt_tenant_claim, ""); /* none */
	assert_string_equal(bw_tenancy_tenant(s, "e", 1)->jwt_tenant_claim, "");
	claim_names_are(s, both, 2);
	assert_int_equal(bw__tenancy_json_dump(s, &out, &len), 0);
	assert_non_null(strstr(out, "\"jwt_tenant_claim\": \"org\""));
	struct bw_tenancy *again = parse_ok(out);
	assert_int_equal(bw_tenancy_diff(s, again, &d), 0);
	assert_int_equal(d->n, 0);
	bw_tenancy_delta_free(&d);
	assert_int_equal(bw__tenancy_json_dump(again, &out2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(out, out2, len);
	free(out2);
	bw_tenancy_release(&again);
	/* A file without tenant claims is written as before: no member for them. */
	struct bw_tenancy *plain = parse_ok(HEAD "[{\"name\": \"a\", \"id\": 1}]}");
	claim_names_are(plain, NULL, 0);
	assert_int_equal(bw__tenancy_json_dump(plain, &out2, &len2), 0);
	assert_null(strstr(out2, "jwt_tenant_claim"));
	free(out2);
	bw_tenancy_release(&plain);

	/* Changing a tenant's claim is a change of the tenant; the set follows. */
	struct bw__tbuild *b = bw__tbuild_new(s);
	struct bw_tenant t = *bw_tenancy_tenant(s, "a", 1);
	t.jwt_tenant_claim = "org";
	assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	struct bw_tenancy *s2 = finish(b, true, NULL);
	claim_names_are(s2, both + 1, 1);
	assert_int_equal(bw_tenancy_diff(s, s2, &d), 0);
	assert_int_equal(d->n, 1);
	assert_string_equal(d->changes[0].tenant, "a");
	bw_tenancy_delta_free(&d);

	/* Checked: 1..128 bytes of printable ASCII without spaces. */
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt_tenant_claim\": 5}]}",
	    "tenants[0]: \"jwt_tenant_claim\" must be a string");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt_tenant_claim\": \"my org\"}]}",
	    "tenants[0]: tenant \"a\": jwt_tenant_claim: \"my org\" is not a claim name "
	    "(printable ASCII without spaces)");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt_tenant_claim\": \"org\\t\"}]}",
	    "jwt_tenant_claim: \"org?\" is not a claim name");
	BAD(HEAD "[{\"name\": \"a\", \"id\": 1, \"jwt_tenant_claim\": \"\u00e9\"}]}",
	    "jwt_tenant_claim: \"??\" is not a claim name");
	char long_name[BW_TENANT_CLAIM_NAME_MAX + 2];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	t = tenant("a", NULL, 0);
	t.jwt_tenant_claim = long_name;
	assert_int_equal(bw_tenancy_tenant_check(&t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "tenant \"a\": jwt_tenant_claim: longer than 128 bytes");
	long_name[BW_TENANT_CLAIM_NAME_MAX] = '\0';
	assert_int_equal(bw_tenancy_tenant_check(&t, err, sizeof(err)), 0);

	/* At most 15 distinct names besides the node's: the 16th is refused... */
	b = bw__tbuild_new(NULL);
	for (unsigned i = 0; i < BW_TENANCY_CLAIM_NAMES_MAX; i++) {
		char tn[16];
		snprintf(tn, sizeof(tn), "t%02u", i);
		snprintf(name, sizeof(name), "c%02u", i);
		t = tenant(tn, NULL, 0);
		t.jwt_tenant_claim = i == BW_TENANCY_CLAIM_NAMES_MAX - 1 ? "c00" : name;
		assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	}
	struct bw_tenancy *full = finish(b, true, NULL); /* 15 names, one shared */
	size_t n;
	bw_tenancy_claim_names(full, &n);
	assert_int_equal(n, BW_TENANCY_CLAIM_NAMES_MAX - 1);
	b = bw__tbuild_new(full);
	t = tenant("a-new", NULL, 0);
	t.jwt_tenant_claim = "one-more";
	assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	struct bw_tenancy *over = NULL;
	assert_int_equal(bw__tbuild_finish(&b, 0, true, NULL, &over, err, sizeof(err)), -EINVAL);
	assert_null(over);
	assert_string_equal(err, "tenant \"a-new\": jwt_tenant_claim: \"one-more\" would be one "
	                         "claim name too many: tenants may name at most 15 different "
	                         "ones besides the node's tenant_claim; use a name another "
	                         "tenant uses, or none (the node's)");
	/* ... a name in use is not; and leniently the extra name is left out and counted. */
	b = bw__tbuild_new(full);
	t.jwt_tenant_claim = "c07";
	assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	struct bw_tenancy *shared = finish(b, true, NULL);
	b = bw__tbuild_new(full);
	t.jwt_tenant_claim = "one-more";
	assert_int_equal(bw__tbuild_tenant_put(b, &t, 0, err, sizeof(err)), 0);
	over = finish(b, false, &clashes);
	assert_int_equal(clashes, 1);
	const char *const *v = bw_tenancy_claim_names(over, &n);
	assert_int_equal(n, BW_TENANCY_CLAIM_NAMES_MAX - 1);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(v[i], "one-more");
	assert_string_equal(bw_tenancy_tenant(over, "a-new", 5)->jwt_tenant_claim, "one-more");

	bw_tenancy_release(&over);
	bw_tenancy_release(&shared);
	bw_tenancy_release(&full);
	bw_tenancy_release(&s2);
	bw_tenancy_release(&s);
	free(out);
}

static void test_rule_lists(void **state)
{
	struct bw_acl *acl = NULL;
	char err[256];

	(void)state;
	assert_int_equal(bw_acl_parse_rules("allow publish a/%c\npattern read b/#\n# c\n", 40, "r",
	                                    &acl, err, sizeof(err)),
	                 0);
	assert_int_equal(bw_acl_rule_count(acl), 2);
	/* Rules apply whoever compiles them, with a username or without. */
	struct bw_acl_subject who = { .client_id = "c1", .client_id_len = 2 };
	struct bw_acl_compiled *c = bw_acl_compile(acl, &who);
	assert_true(bw_acl_can_publish(c, (const uint8_t *)"a/c1", 4, 0, false));
	assert_true(bw_acl_can_receive(c, (const uint8_t *)"b/x", 3));
	bw_acl_compiled_free(&c);
	bw_acl_free(&acl);
	assert_int_equal(
	        bw_acl_parse_rules("allow all x\nanonymous\n", 22, "r", &acl, err, sizeof(err)),
	        -EINVAL);
	assert_string_equal(err, "r:2: \"anonymous\": a rule list holds rules only, no sections");
	assert_int_equal(bw_acl_parse_rules("topic x\n", 8, "r", &acl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "r:1: a \"topic\" line in a rule list"));
	assert_null(acl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_round_trip), cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_builder_rules),   cmocka_unit_test(test_many_principals),
		cmocka_unit_test(test_tenant_claim),    cmocka_unit_test(test_rule_lists),
	};

	return cmocka_run_group_tests_name("tenancy model", tests, NULL, NULL);
}
