/*
 * redis-server processes for unit tests: started in a directory of the
 * test's own, without persistence, killed when the test process dies
 * (PR_SET_PDEATHSIG). Failures are cmocka assertions.
 */
#ifndef BW_TEST_REDIS_SERVER_H
#define BW_TEST_REDIS_SERVER_H

#include <stdint.h>
#include <sys/types.h>

#include "node/io/ring.h"

/*
 * The test's own directory, for the servers' sockets: made by
 * bw_test_dir_setup() and removed with all it holds by
 * bw_test_dir_teardown() (a cmocka group's setup and teardown).
 */
extern char bw_test_dir[64];
int bw_test_dir_setup(void **state);
int bw_test_dir_teardown(void **state);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t bw_test_now_ms(void);

/* A small ring, enough for a test's Redis clients. */
extern const struct bw_ring_params bw_test_ring_small;

/*
 * Starts redis-server in dir on the unix socket sock (port 0) or on
 * 127.0.0.1:port (sock NULL), with password when given, and waits (5 s at
 * most) until it accepts connections. Returns its pid.
 */
pid_t bw_test_redis_start(const char *dir, const char *sock, uint16_t port, const char *password);

/* The same, a replica of the server on 127.0.0.1:master_port (0: none). */
pid_t bw_test_redis_start_replica(const char *dir, const char *sock, uint16_t port,
                                  const char *password, uint16_t master_port);

/*
 * A sentinel on 127.0.0.1:port (its configuration file written in dir)
 * that monitors the master name on 127.0.0.1:master_port (quorum 1, down
 * after 1 s, failover timeout 3 s), asking password of its clients when
 * given. Returns its pid once it accepts connections.
 */
pid_t bw_test_sentinel_start(const char *dir, uint16_t port, const char *name, uint16_t master_port,
                             const char *password);

/* SIGKILL, and waits for it. */
void bw_test_redis_kill(pid_t pid);

/* A loopback TCP port nobody listens on just now. */
uint16_t bw_test_free_port(void);

#endif
