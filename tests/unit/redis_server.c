/*
 * redis-server processes for the unit tests that need a real Redis (see
 * redis_server.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char bw_test_dir[64];

const struct bw_ring_params bw_test_ring_small = {
	.entries = 256,
	.buf_count = 16,
	.buf_size = 4096,
};

uint64_t bw_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int bw_test_dir_setup(void **state)
{
	(void)state;
	snprintf(bw_test_dir, sizeof(bw_test_dir), "/tmp/bw-test-redis-XXXXXX");
	return mkdtemp(bw_test_dir) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int bw_test_dir_teardown(void **state)
{
	(void)state;
	return nftw(bw_test_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs argv (NULL-terminated) and waits until sock, or 127.0.0.1:port, accepts. */
static pid_t start_and_wait(const char **argv, const char *sock, uint16_t port)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		dup2(null, 2);
		execvp("redis-server", (char **)argv);
		_exit(127);
	}

	uint64_t dl = bw_test_now_ms() + 5000;
	for (;;) {
		int fd, rc;

		assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
		if (sock) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };

			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		} else {
			struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		}
		close(fd);
		if (rc == 0)
			return pid;
		assert_true(bw_test_now_ms() < dl);
		usleep(10000);
	}
}

pid_t bw_test_redis_start(const char *dir, const char *sock, uint16_t port, const char *password)
{
	return bw_test_redis_start_replica(dir, sock, port, password, 0);
}

pid_t bw_test_redis_start_replica(const char *dir, const char *sock, uint16_t port,
                                  const char *password, uint16_t master_port)
{
	char portbuf[8], masterbuf[8], dbfile[32];
	const char *argv[40];
	int n = 0;

	snprintf(portbuf, sizeof(portbuf), "%u", port);
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = portbuf;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	if (sock) {
		argv[n++] = "--unixsocket";
		argv[n++] = sock;
	}
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--daemonize";
	argv[n++] = "no";
	argv[n++] = "--dir";
	argv[n++] = dir;
	argv[n++] = "--enable-debug-command";
	argv[n++] = "yes";
	if (password) {
		argv[n++] = "--requirepass";
		argv[n++] = password;
	}
	if (master_port) {
		/* Its own file for the full sync, beside the master's in dir. */
		snprintf(masterbuf, sizeof(masterbuf), "%u", master_port);
		snprintf(dbfile, sizeof(dbfile), "replica-%u.rdb", port);
		argv[n++] = "--replicaof";
		argv[n++] = "127.0.0.1";
		argv[n++] = masterbuf;
		argv[n++] = "--dbfilename";
		argv[n++] = dbfile;
		if (password) {
			argv[n++] = "--masterauth";
			argv[n++] = password;
		}
	}
	argv[n] = NULL;
	return start_and_wait(argv, sock, port);
}

pid_t bw_test_sentinel_start(const char *dir, uint16_t port, const char *name, uint16_t master_port,
                             const char *password)
{
	char conf[128];
	FILE *f;

	/* Sentinel rewrites its configuration file: one of its own. */
	snprintf(conf, sizeof(conf), "%s/sentinel-%u.conf", dir, port);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
	        "port %u\nbind 127.0.0.1\ndir %s\n"
	        "sentinel monitor %s 127.0.0.1 %u 1\n"
	        "sentinel down-after-milliseconds %s 1000\n"
	        "sentinel failover-timeout %s 3000\n",
	        port, dir, name, master_port, name, name);
	if (password)
		fprintf(f, "requirepass %s\n", password);
	assert_int_equal(fclose(f), 0);

	const char *argv[] = { "redis-server", conf, "--sentinel", NULL };
	return start_and_wait(argv, NULL, port);
}

void bw_test_redis_kill(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

uint16_t bw_test_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}
