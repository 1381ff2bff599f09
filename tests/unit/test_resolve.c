/*
 * Tenant resolution: each signal alone, agreeing and disagreeing pairs;
 * the claim signal with tenants' own claim names (jwt_tenant_claim).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/config.h"
#include "node/core/resolve.h"
#include "tenancy/file_format.h"
#include "tenancy/model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char doc[] = "{\"format\": \"bulwark-tenancy\", \"version\": 1, \"tenants\": ["
                          " {\"name\": \"acme\", \"id\": 1, \"sni\": [\"mqtt.acme.test\"]},"
                          " {\"name\": \"globex\", \"id\": 2, \"sni\": [\"globex.test\"]},"
                          " {\"name\": \"initech\", \"id\": 3, \"jwt_tenant_claim\": \"org\"},"
                          " {\"name\": \"umbrella\", \"id\": 4,"
                          "  \"jwt_tenant_claim\": \"https://example.com/tenant\"}]}";

/* A JWS compact token whose payload is json (unsigned: resolution never verifies). */
static void token(const char *json, char *out, size_t cap)
{
	static const char b64[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(json), o = 0;
	o += (size_t)snprintf(out, cap, "eyJhbGciOiJIUzI1NiJ9.");
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)json[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)json[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)json[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64[v & 63];
	}
	snprintf(out + o, cap - o, ".c2ln");
}

struct fixture {
	struct bw_tenancy *snap;
	struct bw_resolve_in in;
	struct bw_resolve_out out;
	char tok[512];
};

static int setup(void **state)
{
	static struct fixture f;
	char err[256];
	memset(&f, 0, sizeof(f));
	if (bw__tenancy_json_parse(doc, sizeof(doc) - 1, "test", &f.snap, err, sizeof(err)))
		return -1;
	f.in = (struct bw_resolve_in){
		.allowed = BW_SIGNAL_ALL, .snap = f.snap, .claim = "tenant", .listener = "default"
	};
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bw_tenancy_release(&f->snap);
	return 0;
}

static void user(struct fixture *f, const char *u)
{
	f->in.user = u;
	f->in.user_len = strlen(u);
}

static void sni(struct fixture *f, const char *h)
{
	f->in.sni = h;
	f->in.sni_len = strlen(h);
}

static void claim(struct fixture *f, const char *json)
{
	token(json, f->tok, sizeof(f->tok));
	f->in.token = (const uint8_t *)f->tok;
	f->in.token_len = strlen(f->tok);
}

static void test_no_signal_is_the_listeners_tenant(void **state)
{
	struct fixture *f = *state;
	user(f, "alice");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "default");
	assert_int_equal(f->out.signals, 0);
	assert_int_equal(f->out.user_len, 5);
}

static void test_each_signal_alone(void **state)
{
	struct fixture *f = *state;
	user(f, "alice@acme");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "acme");
	assert_int_equal(f->out.user_len, 5); /* the principal is "alice" */
	assert_int_equal(f->out.signals, BW_SIGNAL_USERNAME);

	f->in.user = NULL;
	sni(f, "GLOBEX.test."); /* any case, a trailing dot */
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "globex");
	assert_int_equal(f->out.signals, BW_SIGNAL_SNI);

	f->in.sni = NULL;
	claim(f, "{\"sub\":\"a\",\"tenant\":\"acme\"}");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "acme");
	assert_int_equal(f->out.signals, BW_SIGNAL_CLAIM);

	f->in.token = NULL;
	f->in.listener = "globex";
	f->in.listener_set = true;
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "globex");
	assert_int_equal(f->out.signals, BW_SIGNAL_LISTENER);
}

static void test_agreeing_signals_pass_disagreeing_ones_refuse(void **state)
{
	struct fixture *f = *state;
	user(f, "alice@acme");
	sni(f, "mqtt.acme.test");
	claim(f, "{\"tenant\":\"acme\"}");
	f->in.listener = "acme";
	f->in.listener_set = true;
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "acme");
	assert_int_equal(f->out.signals,
	                 BW_SIGNAL_USERNAME | BW_SIGNAL_SNI | BW_SIGNAL_CLAIM | BW_SIGNAL_LISTENER);

	user(f, "alice@globex"); /* the username against the SNI */
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), -EACCES);
	assert_non_null(strstr(f->out.why, "disagree"));

	user(f, "alice@acme");
	claim(f, "{\"tenant\":\"globex\"}"); /* the claim against the SNI */
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), -EACCES);

	f->in.token = NULL;
	f->in.listener = "globex"; /* the listener against the rest */
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), -EACCES);
}

static void test_signals_the_listener_does_not_take_are_ignored(void **state)
{
	struct fixture *f = *state;
	user(f, "alice@acme");
	sni(f, "globex.test");
	f->in.allowed = BW_SIGNAL_SNI; /* the username is a plain name here */
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "globex");
	assert_int_equal(f->out.user_len, strlen("alice@acme"));
	f->in.allowed = BW_SIGNAL_ALL;
}

static void test_what_is_no_signal(void **state)
{
	struct fixture *f = *state;
	/* A hostname no tenant owns, a username whose domain is no tenant name. */
	sni(f, "broker.example.com");
	user(f, "bob@example.com");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "default");
	assert_int_equal(f->out.user_len, strlen("bob@example.com"));
	/* A token without the claim, and something that is no token. */
	claim(f, "{\"sub\":\"bob\"}");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	f->in.token = (const uint8_t *)"not.a.token!";
	f->in.token_len = 12;
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "default");
	/* But a claim that is not a tenant name refuses. */
	claim(f, "{\"tenant\":\"Not A Name\"}");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), -EACCES);
	/* A username ending or starting with '@' names nothing. */
	f->in.token = NULL;
	user(f, "alice@");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "default");
	user(f, "@acme");
	assert_int_equal(bw_resolve_tenant(&f->in, &f->out), 0);
	assert_string_equal(f->out.tenant, "default");
}

/* Resolves the fixture's input: 0 with the tenant and signals, or -EACCES (tenant NULL). */
static void resolves(int line, struct fixture *f, const char *tenant, uint32_t signals)
{
	int rc = bw_resolve_tenant(&f->in, &f->out);

	if (!tenant) {
		if (rc != -EACCES || !strstr(f->out.why, "disagree"))
			fail_msg("line %d: got %d '%s' (%s), want a disagreement", line, rc,
			         f->out.tenant, f->out.why);
		return;
	}
	if (rc != 0 || strcmp(f->out.tenant, tenant) || f->out.signals != signals)
		fail_msg("line %d: got %d '%s' signals %#x (%s), want '%s' signals %#x", line, rc,
		         f->out.tenant, f->out.signals, f->out.why, tenant, signals);
}

#define RESOLVES(f, tenant, signals) resolves(__LINE__, f, tenant, signals)

static void test_tenants_own_claim_names(void **state)
{
	struct fixture *f = *state;
	size_t n;
	const char *const *names = bw_tenancy_claim_names(f->snap, &n);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "https://example.com/tenant");
	assert_string_equal(names[1], "org");

	/* A tenant's own claim names it; so does the node's for a tenant without one. */
	claim(f, "{\"sub\":\"a\",\"org\":\"initech\"}");
	RESOLVES(f, "initech", BW_SIGNAL_CLAIM);
	claim(f, "{\"https://example.com/tenant\":\"umbrella\"}");
	RESOLVES(f, "umbrella", BW_SIGNAL_CLAIM);
	claim(f, "{\"tenant\":\"acme\",\"org\":\"acme-corp\"}");
	RESOLVES(f, "acme", BW_SIGNAL_CLAIM);

	/* A tenant with a claim of its own is not named by the node's claim... */
	claim(f, "{\"tenant\":\"initech\"}");
	RESOLVES(f, "default", 0);
	user(f, "alice@initech");
	RESOLVES(f, "initech", BW_SIGNAL_USERNAME);
	f->in.user = NULL;
	/* ... nor a tenant on the node's claim by another tenant's claim name. */
	claim(f, "{\"org\":\"acme\"}");
	RESOLVES(f, "default", 0);
	/* A value that names no tenant of that claim is no signal; for the node's claim,
	 * a tenant the store lacks is still named (it may be a config tenant). */
	claim(f, "{\"org\":\"nobody\",\"https://example.com/tenant\":\"Not A Name\"}");
	RESOLVES(f, "default", 0);
	claim(f, "{\"tenant\":\"nobody\"}");
	RESOLVES(f, "nobody", BW_SIGNAL_CLAIM);
	/* The node's claim and a tenant's own agreeing, when both name it. */
	claim(f, "{\"tenant\":\"initech\",\"org\":\"initech\"}");
	RESOLVES(f, "initech", BW_SIGNAL_CLAIM);

	/* Two claims naming different tenants disagree, whichever they are. */
	claim(f, "{\"tenant\":\"acme\",\"org\":\"initech\"}");
	RESOLVES(f, NULL, 0);
	assert_non_null(strstr(f->out.why, "claim tenant names 'acme', claim org 'initech'"));
	claim(f, "{\"org\":\"initech\",\"https://example.com/tenant\":\"umbrella\"}");
	RESOLVES(f, NULL, 0);
	claim(f, "{\"tenant\":\"nobody\",\"org\":\"initech\"}");
	RESOLVES(f, NULL, 0);
	/* And a tenant's own claim against another signal. */
	claim(f, "{\"org\":\"initech\"}");
	sni(f, "globex.test");
	RESOLVES(f, NULL, 0);
	assert_non_null(strstr(f->out.why, "the token's org claim names 'initech'"));
	f->in.sni = NULL;
	/* A listener that does not take the claim signal looks at none of them. */
	f->in.allowed = BW_SIGNAL_ALL & ~BW_SIGNAL_CLAIM;
	claim(f, "{\"tenant\":\"acme\",\"org\":\"initech\"}");
	RESOLVES(f, "default", 0);
	f->in.allowed = BW_SIGNAL_ALL;

	/* A node whose tenant_claim is what a tenant names as its own. */
	f->in.claim = "org";
	claim(f, "{\"org\":\"initech\"}");
	RESOLVES(f, "initech", BW_SIGNAL_CLAIM);
	claim(f, "{\"org\":\"acme\"}"); /* acme uses the node's: "org" now */
	RESOLVES(f, "acme", BW_SIGNAL_CLAIM);
	claim(f, "{\"tenant\":\"acme\"}");
	RESOLVES(f, "default", 0);

	/* Without a store only the node's claim counts. */
	f->in.claim = "tenant";
	f->in.snap = NULL;
	claim(f, "{\"org\":\"initech\",\"tenant\":\"acme\"}");
	RESOLVES(f, "acme", BW_SIGNAL_CLAIM);
	f->in.snap = f->snap;

	assert_string_equal(bw_resolve_claim_name(bw_tenancy_tenant(f->snap, "initech", 7), "x"),
	                    "org");
	assert_string_equal(bw_resolve_claim_name(bw_tenancy_tenant(f->snap, "acme", 4), "x"), "x");
	assert_string_equal(bw_resolve_claim_name(NULL, "x"), "x");
}

static void test_peek_claim(void **state)
{
	char tok[512], buf[16];
	(void)state;
	token("{\"tenant\":\"acme\",\"n\":1}", tok, sizeof(tok));
	assert_int_equal(bw_resolve_peek_claim((const uint8_t *)tok, strlen(tok), "tenant", buf,
	                                       sizeof(buf)),
	                 4);
	assert_string_equal(buf, "acme");
	assert_int_equal(
	        bw_resolve_peek_claim((const uint8_t *)tok, strlen(tok), "n", buf, sizeof(buf)),
	        -ENOENT);
	token("{\"tenant\":\"a-name-longer-than-the-buffer\"}", tok, sizeof(tok));
	assert_int_equal(bw_resolve_peek_claim((const uint8_t *)tok, strlen(tok), "tenant", buf,
	                                       sizeof(buf)),
	                 -ENOENT);
	token("{\"tenant\":", tok, sizeof(tok)); /* bad JSON */
	assert_int_equal(bw_resolve_peek_claim((const uint8_t *)tok, strlen(tok), "tenant", buf,
	                                       sizeof(buf)),
	                 -EINVAL);
	assert_int_equal(
	        bw_resolve_peek_claim((const uint8_t *)"abc", 3, "tenant", buf, sizeof(buf)),
	        -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_signal_is_the_listeners_tenant, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_each_signal_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agreeing_signals_pass_disagreeing_ones_refuse,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals_the_listener_does_not_take_are_ignored,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_what_is_no_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenants_own_claim_names, setup, teardown),
		cmocka_unit_test(test_peek_claim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
