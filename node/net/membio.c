/* OpenSSL over memory (see membio.h). */
#include "node/net/membio.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *p, int n)
{
	struct bw_membio *m = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	size_t need = m->out_len + (size_t)n;
	if (need > m->out_max) {
		m->out_full = true;
		return -1;
	}
	if (need > m->out_cap) {
		size_t cap = m->out_cap ? m->out_cap * 2 : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > m->out_max)
			cap = m->out_max;
		uint8_t *q = realloc(m->out, cap);
		if (!q) {
			m->out_oom = true;
			return -1;
		}
		m->out = q;
		m->out_cap = cap;
	}
	memcpy(m->out + m->out_len, p, (size_t)n);
	m->out_len = need;
	return n;
}

static int bio_read(BIO *b, char *p, int n)
{
	struct bw_membio *m = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	if (m->in_len == 0) {
		BIO_set_retry_read(b); /* SSL_ERROR_WANT_READ */
		return -1;
	}
	size_t k = m->in_len < (size_t)n ? m->in_len : (size_t)n;
	memcpy(p, m->in, k);
	m->in += k;
	m->in_len -= k;
	return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct bw_membio *m = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* written is queued: nothing to flush */
	case BIO_CTRL_PENDING:
		return m ? (long)(m->in_len > LONG_MAX ? LONG_MAX : m->in_len) : 0;
	default:
		return 0; /* every other control (kTLS, dgram, ...) is unsupported */
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

static void method_init(void)
{
	BIO_METHOD *bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "bulwark");

	if (!bm)
		return;
	if (!BIO_meth_set_write(bm, bio_write) || !BIO_meth_set_read(bm, bio_read) ||
	    !BIO_meth_set_ctrl(bm, bio_ctrl) || !BIO_meth_set_create(bm, bio_create) ||
	    !BIO_meth_set_destroy(bm, bio_destroy)) {
		BIO_meth_free(bm);
		return;
	}
	method = bm;
}

BIO *bw_membio_new(struct bw_membio *m)
{
	pthread_once(&method_once, method_init);
	BIO *b = method ? BIO_new(method) : NULL;
	if (b)
		BIO_set_data(b, m);
	return b;
}

void bw_ossl_reason(char *buf, size_t cap)
{
	unsigned long e, first = 0;

	/* The queue holds at most ERR_NUM_ERRORS (16) entries. */
	while ((e = ERR_get_error()) != 0) {
		if (!first)
			first = e;
	}
	if (!first) {
		snprintf(buf, cap, "unknown error");
		return;
	}
	if (ERR_SYSTEM_ERROR(first)) {
		snprintf(buf, cap, "%s", strerror(ERR_GET_REASON(first)));
		return;
	}
	const char *lib = ERR_lib_error_string(first);
	const char *why = ERR_reason_error_string(first);
	snprintf(buf, cap, "%s%s%s", lib ? lib : "", lib ? ": " : "", why ? why : "unknown reason");
}
