/*
 * redis-server processes for unit tests: started in a directory of the
 * test's own, without persistence, killed when the test process dies
 * (PR_SET_PDEATHSIG). Failures are cmocka assertions.
 */
#ifndef BW_TEST_REDIS_SERVER_H
#define BW_TEST_REDIS_SERVER_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Starts redis-server in dir on the unix socket sock (port 0) or on
 * 127.0.0.1:port (sock NULL), with password when given, and waits (5 s at
 * most) until it accepts connections. Returns its pid.
 */
pid_t bw_test_redis_start(const char *dir, const char *sock, uint16_t port, const char *password);

/* SIGKILL, and waits for it. */
void bw_test_redis_kill(pid_t pid);

/* A loopback TCP port nobody listens on just now. */
uint16_t bw_test_free_port(void);

#endif
