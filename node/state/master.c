/*
 * The master's address holder (see master.h). The generation is written
 * under the mutex, after the address, and read without it: a reader that
 * sees a new generation then takes the mutex to copy the address, so it
 * never pairs a new generation with an old address.
 */
#include "node/state/master.h"

#include "node/state/redis.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bw_master {
	pthread_mutex_t mu; /* host and port */
	char host[BW_REDIS_HOST_MAX];
	uint16_t port;
	_Atomic uint64_t generation;
};

int bw_master_new(struct bw_master **out)
{
	struct bw_master *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	rc = pthread_mutex_init(&m->mu, NULL);
	if (rc != 0) {
		free(m);
		return -rc;
	}
	atomic_init(&m->generation, 0);
	*out = m;
	return 0;
}

void bw_master_free(struct bw_master **mp)
{
	struct bw_master *m = *mp;

	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m);
	*mp = NULL;
}

/* "host:port", or "[v6]:port"; "" for no address. */
static void addr_text(char *buf, size_t cap, const char *host, uint16_t port)
{
	if (!buf || cap == 0)
		return;
	if (!host[0])
		buf[0] = '\0';
	else if (strchr(host, ':'))
		snprintf(buf, cap, "[%s]:%u", host, port);
	else
		snprintf(buf, cap, "%s:%u", host, port);
}

bool bw_master_set(struct bw_master *m, const char *host, uint16_t port, char *was, size_t cap)
{
	bool changed;
	size_t len = strlen(host);

	if (len >= sizeof(m->host))
		len = sizeof(m->host) - 1; /* the caller's promise broken: cut, never overrun */
	pthread_mutex_lock(&m->mu);
	changed = m->port != port || strlen(m->host) != len || memcmp(m->host, host, len) != 0;
	if (changed) {
		addr_text(was, cap, m->host, m->port);
		memcpy(m->host, host, len);
		m->host[len] = '\0';
		m->port = port;
		atomic_fetch_add_explicit(&m->generation, 1, memory_order_release);
	}
	pthread_mutex_unlock(&m->mu);
	return changed;
}

uint64_t bw_master_get(struct bw_master *m, char *host, size_t cap, uint16_t *port)
{
	uint64_t gen;

	pthread_mutex_lock(&m->mu);
	if (cap > 0)
		snprintf(host, cap, "%s", m->host);
	*port = m->port;
	gen = atomic_load_explicit(&m->generation, memory_order_relaxed);
	pthread_mutex_unlock(&m->mu);
	return gen;
}

uint64_t bw_master_generation(const struct bw_master *m)
{
	return atomic_load_explicit(&m->generation, memory_order_acquire);
}
