/*
 * bulwarkctl against a fake node: a thread on a temporary Unix socket reads
 * one request line and answers a canned line (or closes, or hangs, or
 * floods). Checks the exit codes and what reaches stdout and stderr.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "admin/ctl_main.h"
#include "tests/unit/ctl_test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum mode {
	ANSWER, /* send `reply` */
	CLOSE,  /* close without a word */
	HANG,   /* say nothing until the client goes */
	FLOOD,  /* send more than 1 MiB without a newline */
	REFUSE, /* send `reply` at once and close, reading nothing (denied) */
};

struct fake {
	int lfd;
	enum mode mode;
	const char *reply;
	char got[8192]; /* the request line, newline included */
	pthread_t thread;
};

static char dir[] = "/tmp/test_ctl_conn.XXXXXX";
static char sock_path[108];

static void read_request(int fd, struct fake *f)
{
	size_t len = 0;

	while (len + 1 < sizeof(f->got) && !memchr(f->got, '\n', len)) {
		ssize_t n = recv(fd, f->got + len, sizeof(f->got) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	f->got[len] = '\0';
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	char buf[4096];

	if (fd < 0)
		return NULL;
	if (f->mode == REFUSE) {
		send(fd, f->reply, strlen(f->reply), MSG_NOSIGNAL);
		close(fd);
		return NULL;
	}
	read_request(fd, f);
	if (f->mode == ANSWER) {
		send(fd, f->reply, strlen(f->reply), MSG_NOSIGNAL);
	} else if (f->mode == HANG) {
		while (recv(fd, buf, sizeof(buf), 0) > 0)
			;
	} else if (f->mode == FLOOD) {
		memset(buf, 'x', sizeof(buf));
		for (size_t sent = 0; sent <= 1024 * 1024 + sizeof(buf);) {
			ssize_t n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
			if (n <= 0)
				break;
			sent += (size_t)n;
		}
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum mode mode, const char *reply)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->reply = reply;
	unlink(sock_path);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(sock_path);
}

/* Runs bulwarkctl --socket sock_path ARGS...; stdin is in_text. */
static int run(struct ctl_run *r, const char *in_text, int argc, char **argv)
{
	char *full[32] = { "bulwarkctl", "--socket", sock_path };

	assert_true(argc + 3 < 32);
	memcpy(full + 3, argv, sizeof(char *) * (size_t)argc);
	ctl_run_open(r, in_text);
	int rc = bw_ctl_main(argc + 3, full, NULL, &r->io);
	ctl_run_close(r);
	return rc;
}

#define RUN(r, ...) run(r, NULL, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static int dir_setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", dir);
	return 0;
}

static int dir_teardown(void **state)
{
	unlink(sock_path);
	return rmdir(dir);
}

/* The request the fake node read: one line of JSON equal to want. */
static void expect_request(const struct fake *f, const char *want)
{
	size_t len = strlen(f->got);
	json_t *w = json_loads(want, 0, NULL),
	       *got = json_loadb(f->got, len ? len - 1 : 0, 0, NULL);

	assert_true(len > 0 && f->got[len - 1] == '\n');
	assert_null(memchr(f->got, '\n', len - 1));
	if (!json_equal(w, got))
		fail_msg("the node read %s, want %s", f->got, want);
	json_decref(w);
	json_decref(got);
}

static const char tenants_reply[] =
        "{\"v\":1,\"ok\":true,\"result\":{\"tenants\":[{\"name\":\"acme\",\"id\":3,"
        "\"status\":\"active\",\"hostnames\":[\"mqtt.acme.example\"],"
        "\"allow_anonymous\":false}]}}\n";

static void test_success(void **state)
{
	struct fake f;
	struct ctl_run r;

	fake_start(&f, ANSWER, tenants_reply);
	assert_int_equal(RUN(&r, "tenant", "list"), BW_CTL_EXIT_OK);
	fake_stop(&f);
	expect_request(&f, "{\"v\":1,\"cmd\":\"tenant.list\"}");
	assert_string_equal(r.out, "NAME  ID  STATUS  ANONYMOUS  HOSTNAMES\n"
	                           "acme  3   active  no         mqtt.acme.example\n");
	assert_string_equal(r.err, "");
	ctl_run_free(&r);
}

static void test_success_json(void **state)
{
	struct fake f;
	struct ctl_run r;

	fake_start(&f, ANSWER, tenants_reply);
	assert_int_equal(RUN(&r, "--json", "--socket", sock_path, "tenant", "list"), 0);
	fake_stop(&f);
	json_t *want = json_loads(tenants_reply, 0, NULL), *got = json_loads(r.out, 0, NULL);
	assert_true(json_equal(json_object_get(want, "result"), got));
	assert_string_equal(r.err, "");
	json_decref(want);
	json_decref(got);
	ctl_run_free(&r);
}

static void test_password_travels(void **state)
{
	struct fake f;
	struct ctl_run r;

	fake_start(&f, ANSWER,
	           "{\"v\":1,\"ok\":true,\"result\":{\"name\":\"bob\",\"kind\":\"password\"}}\n");
	assert_int_equal(run(&r, "pa ss\n", 4, ARGV("user", "passwd", "acme", "bob")), 0);
	fake_stop(&f);
	expect_request(&f, "{\"v\":1,\"cmd\":\"user.passwd\",\"args\":{\"tenant\":\"acme\","
	                   "\"user\":\"bob\",\"password\":\"pa ss\"}}");
	assert_string_equal(r.out, "password of user bob of tenant acme set\n");
	ctl_run_free(&r);
}

static void test_node_error(void **state)
{
	static const char reply[] = "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"exists\","
	                            "\"message\":\"tenant \\\"acme\\\" exists\"}}\n";
	struct fake f;
	struct ctl_run r;

	fake_start(&f, ANSWER, reply);
	assert_int_equal(RUN(&r, "tenant", "create", "acme"), BW_CTL_EXIT_ERROR);
	fake_stop(&f);
	expect_request(&f, "{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"name\":\"acme\"}}");
	assert_string_equal(r.err, "bulwarkctl: exists: tenant \"acme\" exists\n");
	assert_string_equal(r.out, "");
	ctl_run_free(&r);

	/* With --json the error object is printed too, for scripts. */
	fake_start(&f, ANSWER, reply);
	assert_int_equal(RUN(&r, "--json", "--socket", sock_path, "tenant", "create", "acme"),
	                 BW_CTL_EXIT_ERROR);
	fake_stop(&f);
	json_t *got = json_loads(r.out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(got, "code")), "exists");
	assert_string_equal(r.err, "bulwarkctl: exists: tenant \"acme\" exists\n");
	json_decref(got);
	ctl_run_free(&r);
}

/* A run against mode that fails with exit 1 and msg on stderr. */
static void expect_conn_fail(enum mode mode, const char *reply, const char *msg, int argc,
                             char **argv)
{
	struct fake f;
	struct ctl_run r;

	fake_start(&f, mode, reply);
	int rc = run(&r, NULL, argc, argv);
	fake_stop(&f);
	if (rc != BW_CTL_EXIT_ERROR || !strstr(r.err, msg))
		fail_msg("exit %d, stderr '%s' lacks '%s'", rc, r.err, msg);
	assert_string_equal(r.out, "");
	ctl_run_free(&r);
}

static void test_closed_without_answer(void **state)
{
	char want[256];

	snprintf(want, sizeof(want),
	         "bulwarkctl: %s: the node closed the connection without "
	         "answering\n",
	         sock_path);
	expect_conn_fail(CLOSE, NULL, want, 2, ARGV("node", "info"));
	/* Half a line and then the end is no answer either. */
	expect_conn_fail(ANSWER, "{\"v\":1,\"ok\":true", "without answering", 2,
	                 ARGV("node", "info"));
}

static void test_bad_answers(void **state)
{
	expect_conn_fail(ANSWER, "hello\n", "not admin protocol version 1", 2,
	                 ARGV("node", "info"));
	expect_conn_fail(ANSWER, "{\"v\":2,\"ok\":true}\n", "not admin protocol version 1", 1,
	                 ARGV("stats"));
	expect_conn_fail(ANSWER, "{\"v\":1,\"result\":{}}\n", "not admin protocol version 1", 1,
	                 ARGV("stats"));
	expect_conn_fail(FLOOD, NULL, "the answer is over 1 MiB", 2, ARGV("node", "info"));
}

/*
 * A node that refuses the peer answers before reading and closes: the
 * client's write fails (EPIPE), and the answer waiting is still what it
 * reports. A request larger than the socket's buffers makes the write fail.
 */
static void test_refused_before_reading(void **state)
{
	char pem[256];
	struct fake f;
	struct ctl_run r;

	snprintf(pem, sizeof(pem), "%s/big.pem", dir);
	FILE *big = fopen(pem, "w");
	assert_non_null(big);
	for (int i = 0; i < 900 * 1024 / 64; i++)
		fputs("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", big);
	fclose(big);
	fake_start(&f, REFUSE,
	           "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"denied\",\"message\":"
	           "\"this uid may not use the admin socket\"}}\n");
	int rc = run(&r, NULL, 4, ARGV("ca", "add", "acme", pem));
	fake_stop(&f);
	unlink(pem);
	if (rc != BW_CTL_EXIT_ERROR ||
	    strcmp(r.err, "bulwarkctl: denied: this uid may not use the admin socket\n"))
		fail_msg("exit %d, stderr '%s'", rc, r.err);
	ctl_run_free(&r);
}

static void test_timeout(void **state)
{
	expect_conn_fail(HANG, NULL, "no answer within 1 s", 4,
	                 ARGV("--timeout", "1", "node", "info"));
}

static void test_no_socket(void **state)
{
	struct ctl_run r;
	char want[256];

	unlink(sock_path);
	snprintf(want, sizeof(want),
	         "bulwarkctl: cannot connect to %s: No such file or directory\n", sock_path);
	assert_int_equal(RUN(&r, "tenant", "list"), BW_CTL_EXIT_ERROR);
	assert_string_equal(r.err, want);
	ctl_run_free(&r);

	/* A socket file nobody listens on. */
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	snprintf(want, sizeof(want), "bulwarkctl: cannot connect to %s: Connection refused\n",
	         sock_path);
	assert_int_equal(RUN(&r, "tenant", "list"), BW_CTL_EXIT_ERROR);
	assert_string_equal(r.err, want);
	ctl_run_free(&r);
	unlink(sock_path);

	/* A usage error never gets as far as connecting. */
	assert_int_equal(RUN(&r, "tenant", "delete", "acme"), BW_CTL_EXIT_USAGE);
	assert_null(strstr(r.err, "cannot connect"));
	ctl_run_free(&r);
}

static void test_global_options(void **state)
{
	struct ctl_run r;

	assert_int_equal(RUN(&r, "--help"), BW_CTL_EXIT_OK);
	assert_non_null(strstr(r.out, "usage: bulwarkctl [--socket PATH]"));
	assert_non_null(strstr(r.out, "  import mosquitto "));
	ctl_run_free(&r);
	assert_int_equal(RUN(&r, "--version"), BW_CTL_EXIT_OK);
	assert_non_null(strstr(r.out, "bulwarkctl "));
	ctl_run_free(&r);
	assert_int_equal(RUN(&r, "--frobnicate", "stats"), BW_CTL_EXIT_USAGE);
	assert_non_null(strstr(r.err, "unknown option: --frobnicate"));
	ctl_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success),
		cmocka_unit_test(test_success_json),
		cmocka_unit_test(test_password_travels),
		cmocka_unit_test(test_node_error),
		cmocka_unit_test(test_closed_without_answer),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_refused_before_reading),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_no_socket),
		cmocka_unit_test(test_global_options),
	};
	return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
