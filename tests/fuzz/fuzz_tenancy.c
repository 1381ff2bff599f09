/*
 * libFuzzer target for the embedded tenancy store's file, tenancy.json
 * (tenancy/file_format.h), and the model it builds. The input is the file.
 *   - A refused file must say -EINVAL, -ENOENT, -EEXIST or -EFBIG with a
 *     message "<fuzz>: where: what" and give no snapshot.
 *   - An accepted file is written out again: that text must parse to the
 *     same model (an empty delta) and write out byte for byte the same.
 *   - Every record it holds must be found by its lookups (name, SNI,
 *     principal and group), and every principal's effective ACL must
 *     build (out of memory aside, which libFuzzer's limits do not reach).
 */
#include "tenancy/acl.h"
#include "tenancy/file_format.h"
#include "tenancy/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failed(int line, const char *what) __attribute__((noreturn));

static void check_failed(int line, const char *what)
{
	fprintf(stderr, "fuzz_tenancy: check failed (fuzz_tenancy.c:%d): %s\n", line, what);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(__LINE__, #cond);                                             \
	} while (0)

static void check_lookups(const struct bw_tenancy *s)
{
	for (size_t i = 0; i < bw_tenancy_tenant_count(s); i++) {
		const struct bw_tenant *t = bw_tenancy_tenant_at(s, i);
		CHECK(bw_tenancy_tenant(s, t->name, t->name_len) == t);
		for (size_t k = 0; k < t->sni_n; k++)
			CHECK(bw_tenancy_tenant_by_sni(s, t->sni[k], strlen(t->sni[k])) == t);
		for (size_t k = 0; k < t->groups_n; k++) {
			const struct bw_group *g = bw_tenancy_group_at(s, t, k);
			CHECK(bw_tenancy_group(s, t, g->name, g->name_len) == g);
		}
		for (size_t k = 0; k < t->principals_n; k++) {
			const struct bw_principal *p = bw_tenancy_principal_at(s, t, k);
			CHECK(bw_tenancy_principal(s, t, p->name, p->name_len) == p);
			CHECK(bw_tenancy_principal_acl(s, p) != NULL);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bw_tenancy *s = NULL, *again = NULL;
	struct bw_tenancy_delta *d = NULL;
	char err[1024], *out = NULL, *out2 = NULL;
	size_t len = 0, len2 = 0;
	int rc = bw__tenancy_json_parse((const char *)data, size, "<fuzz>", &s, err, sizeof(err));

	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -ENOENT || rc == -EEXIST || rc == -EFBIG);
		CHECK(s == NULL);
		CHECK(strncmp(err, "<fuzz>: ", 8) == 0);
		return 0;
	}
	CHECK(s != NULL);
	check_lookups(s);
	CHECK(bw__tenancy_json_dump(s, &out, &len) == 0);
	rc = bw__tenancy_json_parse(out, len, "<dump>", &again, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "fuzz_tenancy: a written file does not read back: %s\n", err);
		abort();
	}
	CHECK(bw_tenancy_diff(s, again, &d) == 0);
	CHECK(d->n == 0);
	CHECK(bw__tenancy_json_dump(again, &out2, &len2) == 0);
	CHECK(len == len2 && memcmp(out, out2, len) == 0);
	bw_tenancy_delta_free(&d);
	free(out);
	free(out2);
	bw_tenancy_release(&again);
	bw_tenancy_release(&s);
	return 0;
}
