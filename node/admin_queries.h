/*
 * What the admin socket asks of the node's brokers: sessions, kicks,
 * retained messages and draining (the callbacks of struct bw_admin_node).
 * They run on the admin thread. Sessions live on their client id's home
 * worker and nothing but that worker may touch them, so a question about
 * sessions is posted to the workers (bw_worker_call) and the admin thread
 * waits for their answers; retained messages are the hub's, read under its
 * lock. Every callback takes a struct bw_node_admin as its arg.
 */
#ifndef BW_NODE_ADMIN_QUERIES_H
#define BW_NODE_ADMIN_QUERIES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/server.h"

struct bw_hub;
struct bw_worker;
struct bw_broker;

#define BW_NODE_ADMIN_SAMPLES 6 /* rates span the last 5 samples (one a second) */

struct bw_node_admin {
	struct bw_hub *hub;
	struct bw_worker **workers; /* n, complete once *started */
	struct bw_broker **brokers;
	uint32_t n;
	const atomic_bool *started;
	atomic_bool draining;               /* node.drain was done: /readyz says 503 */
	struct bw_node_admin_nudge *nudges; /* [n]: see bw_node_admin_nudge() */
	/* The tenants' counters sampled each second, for their rates (rate_mu). */
	pthread_mutex_t rate_mu;
	struct bw_node_admin_sample *samples; /* [tenants_max][BW_NODE_ADMIN_SAMPLES] */
	uint32_t sampled;                     /* samples taken */
};

/* na's hub and n set: allocates the rate samples and the nudges. 0 or -ENOMEM. */
int bw_node_admin_init(struct bw_node_admin *na);
void bw_node_admin_fini(struct bw_node_admin *na);

/* Every second, from any one thread: samples every tenant's counters. */
void bw_node_admin_sample(struct bw_node_admin *na, uint64_t now_ms);

/* Fills the rate fields of s, tenant i's, from the samples. */
void bw_node_admin_rates(struct bw_node_admin *na, uint32_t i, struct bw_admin_tenant_stats *s);

/* struct bw_admin_node's sessions, kick, retained, retained_del, drain and sync. */
int bw_node_admin_sessions(void *arg, const char *tenant, const char *glob, const char *id,
                           size_t max, struct bw_admin_sessions *out);
int bw_node_admin_kick(void *arg, const char *tenant, const char *id, bool discard);
int bw_node_admin_retained(void *arg, const char *tenant, const char *filter, size_t max,
                           struct bw_admin_retained **v, size_t *n, bool *truncated);
int bw_node_admin_retained_del(void *arg, const char *tenant, const char *topic);
uint32_t bw_node_admin_drain(void *arg);
void bw_node_admin_sync(void *arg);

/*
 * From any thread, without waiting: every worker takes the tenancy in
 * force at its next pass, as bw_node_admin_sync() but for changes that
 * came from elsewhere (another node, plain SQL). A worker already asked
 * and not yet done is not asked again. The caller makes sure the workers
 * run (node/main.c: while they are wakeable).
 */
void bw_node_admin_nudge(struct bw_node_admin *na);

#endif
