/*
 * Where the Redis master is now, with redis_sentinel: one small holder
 * the node shares between the thread that learns the address (the main
 * thread at start, then only the state thread, which asks the sentinels)
 * and the workers' Redis clients, which read it whenever they connect.
 *
 * Every change of the address adds one to a generation. A worker's tick
 * compares it (one atomic load, no lock) with the generation its
 * connection was made with and drops the connection when they differ, so
 * it reconnects to the new master. The address itself is copied in and
 * out under a mutex held for the copy only: no thread ever waits on
 * another's I/O.
 */
#ifndef BW_STATE_MASTER_H
#define BW_STATE_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_master;

/* An empty holder (no master known, generation 0): 0 and *out, or -ENOMEM. */
int bw_master_new(struct bw_master **out);

/* Frees *mp and NULLs it; no client may still read it. */
void bw_master_free(struct bw_master **mp);

/*
 * Sets the address (host numeric, below BW_REDIS_HOST_MAX bytes; port
 * above 0). Any thread. Returns true when it differs from the one held:
 * the generation then moves on, and the old address is in was (cap
 * bytes, "" when none was known; was may be NULL).
 */
bool bw_master_set(struct bw_master *m, const char *host, uint16_t port, char *was, size_t cap);

/*
 * The address into host (cap bytes; "" while none is known) and *port,
 * and returns the generation it belongs to. Any thread.
 */
uint64_t bw_master_get(struct bw_master *m, char *host, size_t cap, uint16_t *port);

/* The generation alone, for a tick: any thread, without a lock. */
uint64_t bw_master_generation(const struct bw_master *m);

#endif
