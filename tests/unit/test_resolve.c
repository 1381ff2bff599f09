/* Tenant resolution: each signal alone, agreeing and disagreeing pairs. */
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
                          " {\"name\": \"globex\", \"id\": 2, \"sni\": [\"globex.test\"]}]}";

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
		cmocka_unit_test(test_peek_claim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
