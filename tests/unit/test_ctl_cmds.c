/*
 * bulwarkctl's command table: every command's command line gives exactly
 * the request docs/admin-protocol.md describes; usage errors exit 2 with a
 * message naming the problem; unreadable files exit 1 naming the file;
 * passwords come from standard input only; and canned results render as
 * the expected tables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/ctl_test_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

/* Builds argv with in_text on standard input. Returns the exit code; *req
 * is the request (or NULL). */
static int build(struct ctl_run *r, const char *in_text, int argc, char **argv, json_t **req)
{
	const struct bw_ctl_cmd *cmd;

	ctl_run_open(r, in_text);
	int rc = bw_ctl_build(argc, argv, &r->io, &cmd, req);
	ctl_run_close(r);
	return rc;
}

static void expect_req_in(const char *want, const char *in_text, int argc, char **argv)
{
	struct ctl_run r;
	json_t *req = NULL;
	json_error_t e;
	json_t *w = json_loads(want, 0, &e);

	if (!w)
		fail_msg("bad expected JSON %s: %s", want, e.text);
	int rc = build(&r, in_text, argc, argv, &req);
	if (rc != 0)
		fail_msg("%s %s: exit %d: %s", argv[0], argc > 1 ? argv[1] : "", rc, r.err);
	if (!json_equal(w, req)) {
		char *got = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("%s %s: got %s, want %s", argv[0], argc > 1 ? argv[1] : "", got, want);
	}
	assert_string_equal(r.err, "");
	json_decref(w);
	json_decref(req);
	ctl_run_free(&r);
}

/* Expects exit code `code` and `msg` in what was printed on err. */
static void expect_fail_in(int code, const char *msg, const char *in_text, int argc, char **argv)
{
	struct ctl_run r;
	json_t *req = NULL;

	int rc = build(&r, in_text, argc, argv, &req);
	if (rc != code || !strstr(r.err, msg))
		fail_msg("%s %s: exit %d (want %d), err '%s' lacks '%s'", argv[0],
		         argc > 1 ? argv[1] : "", rc, code, r.err, msg);
	assert_null(req);
	ctl_run_free(&r);
}

#define EXPECT(want, ...)        expect_req_in(want, NULL, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
#define EXPECT_IN(want, in, ...) expect_req_in(want, in, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
#define USAGE(msg, ...)                                                                            \
	expect_fail_in(BW_CTL_EXIT_USAGE, msg, NULL, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
#define FAILS(msg, ...)                                                                            \
	expect_fail_in(BW_CTL_EXIT_ERROR, msg, NULL, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_tenant(void **state)
{
	EXPECT("{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"name\":\"acme\"}}", "tenant",
	       "create", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.create\",\"args\":{\"name\":\"acme\","
	       "\"hostnames\":[\"a.example\",\"b.example\"],\"allow_anonymous\":true,"
	       "\"quotas\":{\"connections\":100,\"persistent_sessions\":1,"
	       "\"tenant_msgs_per_s\":2,\"tenant_bytes_per_s\":9223372036854775807,"
	       "\"client_msgs_per_s\":3,\"client_bytes_per_s\":4,\"client_subscriptions\":5,"
	       "\"retained_msgs\":6,\"retained_bytes\":7,\"max_qos\":0,"
	       "\"max_packet_bytes\":268435455,\"max_session_expiry_s\":4294967295,"
	       "\"session_queued_msgs\":0}}}",
	       "tenant", "create", "acme", "--hostname", "a.example", "--hostname=b.example",
	       "--allow-anonymous", "--connections", "100", "--persistent-sessions", "1",
	       "--tenant-msgs-per-s", "2", "--tenant-bytes-per-s", "9223372036854775807",
	       "--client-msgs-per-s", "3", "--client-bytes-per-s", "4", "--client-subscriptions",
	       "5", "--retained-msgs", "6", "--retained-bytes", "7", "--max-qos", "0",
	       "--max-packet-bytes", "268435455", "--max-session-expiry-s", "4294967295",
	       "--session-queued-msgs", "0");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.list\"}", "tenant", "list");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.show\",\"args\":{\"name\":\"acme\"}}", "tenant", "show",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.update\",\"args\":{\"name\":\"acme\","
	       "\"allow_anonymous\":false,\"quotas\":{\"max_qos\":1}}}",
	       "tenant", "update", "acme", "--no-anonymous", "--max-qos", "1");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.update\",\"args\":{\"name\":\"acme\","
	       "\"hostnames\":[\"c.example\"],\"allow_anonymous\":true}}",
	       "tenant", "update", "--allow-anonymous", "acme", "--hostname", "c.example");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.suspend\",\"args\":{\"name\":\"acme\"}}", "tenant",
	       "suspend", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.resume\",\"args\":{\"name\":\"acme\"}}", "tenant",
	       "resume", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"tenant.delete\",\"args\":{\"name\":\"acme\",\"confirm\":true}}",
	       "tenant", "delete", "acme", "--yes");
}

static void test_group_acl(void **state)
{
	EXPECT("{\"v\":1,\"cmd\":\"group.create\",\"args\":{\"tenant\":\"acme\","
	       "\"group\":\"sensors\"}}",
	       "group", "create", "acme", "sensors");
	EXPECT("{\"v\":1,\"cmd\":\"group.list\",\"args\":{\"tenant\":\"acme\"}}", "group", "list",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"group.delete\",\"args\":{\"tenant\":\"acme\","
	       "\"group\":\"sensors\"}}",
	       "group", "delete", "acme", "sensors");
	EXPECT("{\"v\":1,\"cmd\":\"acl.add\",\"args\":{\"tenant\":\"acme\",\"group\":\"sensors\","
	       "\"effect\":\"allow\",\"action\":\"publish\",\"filter\":\"data/%c/#\"}}",
	       "acl", "add", "acme", "--group", "sensors", "allow", "publish", "data/%c/#");
	EXPECT("{\"v\":1,\"cmd\":\"acl.add\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\","
	       "\"effect\":\"deny\",\"action\":\"all\",\"filter\":\"#\",\"max_qos\":1,"
	       "\"no_retain\":true}}",
	       "acl", "add", "acme", "deny", "all", "#", "--user", "bob", "--max-qos", "1",
	       "--no-retain");
	EXPECT("{\"v\":1,\"cmd\":\"acl.list\",\"args\":{\"tenant\":\"acme\"}}", "acl", "list",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"acl.list\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\"}}",
	       "acl", "list", "acme", "--user", "bob");
	EXPECT("{\"v\":1,\"cmd\":\"acl.del\",\"args\":{\"tenant\":\"acme\",\"group\":\"g\","
	       "\"n\":2}}",
	       "acl", "del", "acme", "--group", "g", "2");
}

static void test_user_cert(void **state)
{
	EXPECT("{\"v\":1,\"cmd\":\"user.add\",\"args\":{\"tenant\":\"acme\",\"user\":\"dev1\","
	       "\"kind\":\"token\"}}",
	       "user", "add", "acme", "dev1", "--token");
	EXPECT_IN("{\"v\":1,\"cmd\":\"user.add\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\","
	          "\"groups\":[\"a\",\"b\"],\"password\":\"s3cret pass\"}}",
	          "s3cret pass\nignored\n", "user", "add", "acme", "bob", "--group", "a",
	          "--password-stdin", "--group", "b");
	EXPECT("{\"v\":1,\"cmd\":\"user.list\",\"args\":{\"tenant\":\"acme\"}}", "user", "list",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"user.show\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\"}}",
	       "user", "show", "acme", "bob");
	EXPECT_IN("{\"v\":1,\"cmd\":\"user.passwd\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\","
	          "\"password\":\"no newline at the end\"}}",
	          "no newline at the end", "user", "passwd", "acme", "bob");
	EXPECT("{\"v\":1,\"cmd\":\"user.disable\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\"}}",
	       "user", "disable", "acme", "bob");
	EXPECT("{\"v\":1,\"cmd\":\"user.enable\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\"}}",
	       "user", "enable", "acme", "bob");
	EXPECT("{\"v\":1,\"cmd\":\"user.del\",\"args\":{\"tenant\":\"acme\",\"user\":\"bob\"}}",
	       "user", "del", "acme", "bob");
	EXPECT("{\"v\":1,\"cmd\":\"cert.map\",\"args\":{\"tenant\":\"acme\","
	       "\"identity\":\"CN=dev7\",\"user\":\"sensor\"}}",
	       "cert", "map", "acme", "CN=dev7", "sensor");
	EXPECT("{\"v\":1,\"cmd\":\"cert.map\",\"args\":{\"tenant\":\"acme\","
	       "\"identity\":\"dev7\",\"groups\":[\"a\",\"b\"]}}",
	       "cert", "map", "acme", "dev7", "--group", "a", "--group", "b");
	USAGE("give USER", "cert", "map", "acme", "dev7");
	USAGE("give USER", "cert", "map", "acme", "dev7", "sensor", "--group", "a");
}

static void test_quota_sessions_retained_node(void **state)
{
	EXPECT("{\"v\":1,\"cmd\":\"quota.set\",\"args\":{\"tenant\":\"acme\","
	       "\"key\":\"max_qos\",\"value\":2}}",
	       "quota", "set", "acme", "max-qos", "2");
	EXPECT("{\"v\":1,\"cmd\":\"quota.set\",\"args\":{\"tenant\":\"acme\","
	       "\"key\":\"retained_bytes\",\"value\":0}}",
	       "quota", "set", "acme", "retained_bytes", "0");
	EXPECT("{\"v\":1,\"cmd\":\"quota.show\",\"args\":{\"tenant\":\"acme\"}}", "quota", "show",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"sessions.list\",\"args\":{\"tenant\":\"acme\"}}", "sessions",
	       "list", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"sessions.list\",\"args\":{\"tenant\":\"acme\","
	       "\"client_id\":\"dev-*\"}}",
	       "sessions", "list", "acme", "--client-id", "dev-*");
	EXPECT("{\"v\":1,\"cmd\":\"sessions.show\",\"args\":{\"tenant\":\"acme\","
	       "\"client_id\":\"c1\"}}",
	       "sessions", "show", "acme", "c1");
	EXPECT("{\"v\":1,\"cmd\":\"sessions.kick\",\"args\":{\"tenant\":\"acme\","
	       "\"client_id\":\"c1\"}}",
	       "sessions", "kick", "acme", "c1");
	EXPECT("{\"v\":1,\"cmd\":\"retained.list\",\"args\":{\"tenant\":\"acme\"}}", "retained",
	       "list", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"retained.list\",\"args\":{\"tenant\":\"acme\","
	       "\"filter\":\"a/+\"}}",
	       "retained", "list", "acme", "a/+");
	EXPECT("{\"v\":1,\"cmd\":\"retained.del\",\"args\":{\"tenant\":\"acme\","
	       "\"topic\":\"-odd/topic\"}}",
	       "retained", "del", "acme", "--", "-odd/topic");
	EXPECT("{\"v\":1,\"cmd\":\"stats\"}", "stats");
	EXPECT("{\"v\":1,\"cmd\":\"stats\",\"args\":{\"tenant\":\"acme\"}}", "stats", "acme");
	EXPECT("{\"v\":1,\"cmd\":\"node.info\"}", "node", "info");
	EXPECT("{\"v\":1,\"cmd\":\"node.drain\"}", "node", "drain");
	EXPECT("{\"v\":1,\"cmd\":\"config.reload\"}", "config", "reload");
}

/* The files the file-reading commands send, in a directory of their own. */
static char dir[] = "/tmp/test_ctl_cmds.XXXXXX";
static char pem[64], jwks[64], key[64], passwd[64], acl[64], missing[64];

static void write_file(char *path, const char *name, const char *text)
{
	snprintf(path, 64, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int files_setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	write_file(pem, "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	write_file(jwks, "jwks.json", "{\"keys\": []}\n");
	write_file(key, "key.pem", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n");
	write_file(passwd, "passwd", "bob:$7$101$abc\n");
	write_file(acl, "acl", "user bob\ntopic read a/#\n");
	snprintf(missing, sizeof(missing), "%s/none.pem", dir);
	return 0;
}

static int files_teardown(void **state)
{
	const char *all[] = { pem, jwks, key, passwd, acl };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		unlink(all[i]);
	return rmdir(dir);
}

static void test_files(void **state)
{
	EXPECT("{\"v\":1,\"cmd\":\"ca.add\",\"args\":{\"tenant\":\"acme\",\"pem\":"
	       "\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}}",
	       "ca", "add", "acme", pem);
	EXPECT("{\"v\":1,\"cmd\":\"ca.list\",\"args\":{\"tenant\":\"acme\"}}", "ca", "list",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"ca.del\",\"args\":{\"tenant\":\"acme\",\"fingerprint\":\"ab01\"}"
	       "}",
	       "ca", "del", "acme", "ab01");
	EXPECT("{\"v\":1,\"cmd\":\"jwt.add\",\"args\":{\"tenant\":\"acme\","
	       "\"issuer\":\"https://id.example\",\"jwks\":\"{\\\"keys\\\": []}\\n\"}}",
	       "jwt", "add", "acme", "--issuer", "https://id.example", "--jwks", jwks);
	EXPECT("{\"v\":1,\"cmd\":\"jwt.add\",\"args\":{\"tenant\":\"acme\",\"issuer\":\"iss\","
	       "\"audience\":\"mqtt\",\"alg\":\"ES256\",\"key\":"
	       "\"-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----\\n\"}}",
	       "jwt", "add", "acme", "--issuer", "iss", "--audience", "mqtt", "--key", key, "--alg",
	       "ES256");
	EXPECT("{\"v\":1,\"cmd\":\"jwt.add\",\"args\":{\"tenant\":\"acme\",\"issuer\":\"iss\","
	       "\"alg\":\"EdDSA\",\"kid\":\"k-2026\",\"key\":"
	       "\"-----BEGIN PUBLIC KEY-----\\nMFkw\\n-----END PUBLIC KEY-----\\n\"}}",
	       "jwt", "add", "acme", "--issuer", "iss", "--key", key, "--alg", "EdDSA", "--kid",
	       "k-2026");
	EXPECT("{\"v\":1,\"cmd\":\"jwt.add\",\"args\":{\"tenant\":\"acme\","
	       "\"issuer\":\"https://id.example\",\"jwks\":\"{\\\"keys\\\": []}\\n\","
	       "\"tenant_claim\":\"https://example.com/tenant\"}}",
	       "jwt", "add", "acme", "--issuer", "https://id.example", "--jwks", jwks,
	       "--tenant-claim", "https://example.com/tenant");
	EXPECT("{\"v\":1,\"cmd\":\"jwt.add\",\"args\":{\"tenant\":\"acme\",\"issuer\":\"iss\","
	       "\"tenant_claim\":\"\",\"jwks\":\"{\\\"keys\\\": []}\\n\"}}",
	       "jwt", "add", "acme", "--issuer", "iss", "--tenant-claim", "", "--jwks", jwks);
	EXPECT("{\"v\":1,\"cmd\":\"jwt.list\",\"args\":{\"tenant\":\"acme\"}}", "jwt", "list",
	       "acme");
	EXPECT("{\"v\":1,\"cmd\":\"jwt.del\",\"args\":{\"tenant\":\"acme\",\"issuer\":\"iss\"}}",
	       "jwt", "del", "acme", "iss");
	EXPECT("{\"v\":1,\"cmd\":\"import.mosquitto\",\"args\":{\"tenant\":\"acme\","
	       "\"passwd\":\"bob:$7$101$abc\\n\",\"acl\":\"user bob\\ntopic read a/#\\n\"}}",
	       "import", "mosquitto", "acme", "--passwd", passwd, "--acl", acl);
	EXPECT("{\"v\":1,\"cmd\":\"import.mosquitto\",\"args\":{\"tenant\":\"acme\","
	       "\"passwd\":\"bob:$7$101$abc\\n\"}}",
	       "import", "mosquitto", "acme", "--passwd", passwd);

	char want[128];
	snprintf(want, sizeof(want), "cannot read %s: No such file or directory", missing);
	FAILS(want, "ca", "add", "acme", missing);
	FAILS(want, "jwt", "add", "acme", "--issuer", "i", "--jwks", missing);
	FAILS(want, "jwt", "add", "acme", "--issuer", "i", "--key", missing, "--alg", "RS256");
	FAILS(want, "import", "mosquitto", "acme", "--passwd", passwd, "--acl", missing);
	snprintf(want, sizeof(want), "cannot read %s: Is a directory", dir);
	FAILS(want, "ca", "add", "acme", dir);
	/* A usage error is found before any file is read. */
	USAGE("--jwks and --key exclude each other", "jwt", "add", "acme", "--issuer", "i",
	      "--jwks", missing, "--key", missing);
}

static void test_usage_errors(void **state)
{
	USAGE("unknown command 'tenants'", "tenants", "list");
	USAGE("tenant: missing subcommand", "tenant");
	USAGE("tenant: unknown subcommand 'lsit'", "tenant", "lsit");
	USAGE("group list: missing TENANT", "group", "list");
	USAGE("missing NAME", "tenant", "create");
	USAGE("missing FILTER", "acl", "add", "acme", "--group", "g", "allow", "publish");
	USAGE("unknown option '--bogus'", "tenant", "list", "--bogus");
	USAGE("unknown option '--bogus'", "tenant", "create", "acme", "--bogus=1");
	USAGE("--json is a global option: put it before the command", "tenant", "list", "--json");
	USAGE("--socket is a global option", "stats", "--socket=/x.sock");
	USAGE("unexpected argument 'extra'", "tenant", "show", "acme", "extra");
	USAGE("--connections: '10k' is not a number", "tenant", "create", "acme", "--connections",
	      "10k");
	USAGE("--connections: '-1' is not a number", "tenant", "create", "acme",
	      "--connections=-1");
	USAGE("--connections: 4294967296 is out of range 0..4294967295", "tenant", "create", "acme",
	      "--connections", "4294967296");
	USAGE("--retained-bytes: 99999999999999999999999 is out of range", "tenant", "create",
	      "acme", "--retained-bytes", "99999999999999999999999");
	USAGE("--max-qos: 3 is out of range 0..2", "tenant", "update", "acme", "--max-qos", "3");
	USAGE("--connections needs a value", "tenant", "create", "acme", "--connections");
	USAGE("--connections given twice", "tenant", "create", "acme", "--connections", "1",
	      "--connections", "2");
	USAGE("--allow-anonymous and --no-anonymous exclude each other", "tenant", "update", "acme",
	      "--allow-anonymous", "--no-anonymous");
	USAGE("--yes takes no value", "tenant", "delete", "acme", "--yes=no");
	USAGE("add --yes to do it", "tenant", "delete", "acme");
	USAGE("nothing to change", "tenant", "update", "acme");
	USAGE("give --group G or --user U", "acl", "add", "acme", "allow", "publish", "a/#");
	USAGE("--group and --user exclude each other", "acl", "add", "acme", "--group", "g",
	      "--user", "u", "allow", "publish", "a/#");
	USAGE("--group and --user exclude each other", "acl", "list", "acme", "--group", "g",
	      "--user", "u");
	USAGE("give --group G or --user U", "acl", "del", "acme", "1");
	USAGE("N counts from 1", "acl", "del", "acme", "--user", "u", "0");
	USAGE("EFFECT must be one of allow, deny; not 'permit'", "acl", "add", "acme", "--user",
	      "u", "permit", "publish", "a");
	USAGE("--max-qos: 3 is out of range 0..2", "acl", "add", "acme", "--user", "u", "allow",
	      "all", "a", "--max-qos", "3");
	USAGE("use --password-stdin", "user", "add", "acme", "bob", "--password", "hunter2");
	USAGE("which kind?", "user", "add", "acme", "bob");
	USAGE("--password-stdin and --token exclude each other", "user", "add", "acme", "bob",
	      "--token", "--password-stdin");
	USAGE("use --password-stdin", "user", "add", "acme", "bob", "--password=hunter2");
	USAGE("use --password-stdin", "user", "passwd", "acme", "bob", "--password", "x");
	USAGE("missing --issuer ISS", "jwt", "add", "acme", "--jwks", "x");
	USAGE("give the keys", "jwt", "add", "acme", "--issuer", "i");
	USAGE("--key needs --alg ALG", "jwt", "add", "acme", "--issuer", "i", "--key", "k");
	USAGE("--alg goes with --key", "jwt", "add", "acme", "--issuer", "i", "--jwks", "j",
	      "--alg", "RS256");
	USAGE("--kid goes with --key", "jwt", "add", "acme", "--issuer", "i", "--jwks", "j",
	      "--kid", "k");
	USAGE("unknown quota 'conections'", "quota", "set", "acme", "conections", "1");
	USAGE("VALUE: 3 is out of range 0..2", "quota", "set", "acme", "max_qos", "3");
	USAGE("VALUE: 'x' is not a number", "quota", "set", "acme", "connections", "x");
	USAGE("missing --passwd FILE", "import", "mosquitto", "acme");
	USAGE("NAME is empty", "tenant", "create", "");
	USAGE("unexpected argument 'acme'", "node", "info", "acme");
}

static void test_passwords(void **state)
{
	expect_fail_in(BW_CTL_EXIT_ERROR, "no password on standard input", NULL, 4,
	               ARGV("user", "passwd", "acme", "bob"));
	expect_fail_in(BW_CTL_EXIT_ERROR, "the password is empty", "\n", 4,
	               ARGV("user", "passwd", "acme", "bob"));
	expect_fail_in(BW_CTL_EXIT_ERROR, "no password on standard input", NULL, 5,
	               ARGV("user", "add", "acme", "bob", "--password-stdin"));
	expect_fail_in(BW_CTL_EXIT_ERROR, "not UTF-8", "\xff\xfe\n", 4,
	               ARGV("user", "passwd", "acme", "bob"));

	char *big = malloc(70000);
	assert_non_null(big);
	memset(big, 'a', 69999);
	big[69999] = '\0';
	expect_fail_in(BW_CTL_EXIT_ERROR, "longer than 65535 bytes", big, 4,
	               ARGV("user", "passwd", "acme", "bob"));
	free(big);
}

/* Types text into the terminal once its echo is off, as an operator would
 * after the prompt. */
struct typist {
	int master, slave;
	const char *text;
};

static void *type(void *arg)
{
	struct typist *t = arg;
	struct termios tio;

	for (int i = 0; i < 500; i++) {
		if (tcgetattr(t->slave, &tio) == 0 && !(tio.c_lflag & ECHO))
			break;
		usleep(10000);
	}
	/* No cmocka assertion here: it cannot fail a test from another thread. */
	if (write(t->master, t->text, strlen(t->text)) != (ssize_t)strlen(t->text))
		perror("test_ctl_cmds: typist");
	return NULL;
}

/* user passwd on a terminal: asked twice, echo off, put back after. */
static int passwd_on_tty(const char *typed, json_t **req, struct ctl_run *r, char *echoed,
                         size_t echoed_len)
{
	struct typist t = { .master = posix_openpt(O_RDWR | O_NOCTTY), .text = typed };
	const struct bw_ctl_cmd *cmd;
	struct termios tio;
	pthread_t th;

	if (t.master < 0 || grantpt(t.master) || unlockpt(t.master))
		return -1;
	t.slave = open(ptsname(t.master), O_RDWR | O_NOCTTY);
	assert_true(t.slave >= 0);
	ctl_run_open(r, NULL);
	fclose(r->in);
	r->io.in = r->in = fdopen(t.slave, "r");
	assert_int_equal(pthread_create(&th, NULL, type, &t), 0);
	int rc = bw_ctl_build(4, ARGV("user", "passwd", "acme", "bob"), &r->io, &cmd, req);
	pthread_join(th, NULL);
	assert_int_equal(tcgetattr(t.slave, &tio), 0);
	assert_true(tio.c_lflag & ECHO);
	ctl_run_close(r);
	fcntl(t.master, F_SETFL, O_NONBLOCK);
	ssize_t n = read(t.master, echoed, echoed_len - 1);
	echoed[n > 0 ? n : 0] = '\0';
	close(t.master);
	return rc;
}

static void test_password_terminal(void **state)
{
	struct ctl_run r;
	json_t *req = NULL;
	char echoed[256];

	int rc = passwd_on_tty("hunter2\nhunter2\n", &req, &r, echoed, sizeof(echoed));
	if (rc < 0)
		skip();
	assert_int_equal(rc, 0);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(req, "args"), "password")),
	        "hunter2");
	assert_string_equal(r.err, "Password: Again: ");
	assert_null(strstr(echoed, "hunter2"));
	json_decref(req);
	ctl_run_free(&r);

	rc = passwd_on_tty("hunter2\nhunter3\n", &req, &r, echoed, sizeof(echoed));
	assert_int_equal(rc, BW_CTL_EXIT_ERROR);
	assert_null(req);
	assert_non_null(strstr(r.err, "the passwords do not match"));
	ctl_run_free(&r);
}

static const struct bw_ctl_cmd *find(const char *noun, const char *verb)
{
	size_t n;
	const struct bw_ctl_cmd *t = bw_ctl_cmds(&n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].noun, noun) &&
		    (!verb ? !t[i].verb : t[i].verb && !strcmp(t[i].verb, verb)))
			return &t[i];
	fail_msg("no command %s %s", noun, verb ? verb : "");
	return NULL;
}

/* Renders a canned result (and args) as the command's view and compares. */
static void expect_render(const char *noun, const char *verb, const char *args, const char *result,
                          const char *want)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	json_t *a = args ? json_loads(args, 0, NULL) : NULL;
	json_t *r = json_loads(result, JSON_PRESERVE_ORDER, NULL);

	assert_non_null(r);
	bw_ctl_render(f, &find(noun, verb)->view, a, r);
	fclose(f);
	if (strcmp(out, want))
		fail_msg("%s %s rendered\n%s\nwant\n%s", noun, verb ? verb : "", out, want);
	json_decref(a);
	json_decref(r);
	free(out);
}

static void test_render_lists(void **state)
{
	expect_render("tenant", "list", NULL,
	              "{\"tenants\":[{\"name\":\"acme\",\"id\":3,\"status\":\"active\","
	              "\"hostnames\":[\"mqtt.acme.example\",\"acme.example\"],"
	              "\"allow_anonymous\":false},{\"name\":\"b\",\"id\":12,"
	              "\"status\":\"suspended\",\"hostnames\":[],\"allow_anonymous\":true}]}",
	              "NAME  ID  STATUS     ANONYMOUS  HOSTNAMES\n"
	              "acme  3   active     no         mqtt.acme.example, acme.example\n"
	              "b     12  suspended  yes        -\n");
	expect_render("tenant", "list", NULL, "{\"tenants\":[]}", "no tenants\n");
	expect_render("user", "list", NULL,
	              "{\"users\":[{\"name\":\"bob\",\"kind\":\"password\",\"enabled\":true,"
	              "\"groups\":[\"a\",\"b\"]},{\"name\":\"CN=d\\u00e9v7\",\"kind\":"
	              "\"certificate\",\"enabled\":false,\"groups\":[]}]}",
	              "NAME     KIND         ENABLED  GROUPS\n"
	              "bob      password     yes      a, b\n"
	              "CN=dév7  certificate  no       -\n");
	expect_render("user", "list", NULL, "{\"users\":[]}", "no users\n");
	/* A name cannot send the operator's terminal escape sequences. */
	expect_render("user", "list", NULL,
	              "{\"users\":[{\"name\":\"x\\u001b[2J\\u009b\",\"kind\":\"token\","
	              "\"enabled\":true,\"groups\":[\"g\\nh\\n\"]}]}",
	              "NAME            KIND   ENABLED  GROUPS\n"
	              "x\\x1b[2J\\u009b  token  yes      g; h\n");
	expect_render("acl", "list", NULL,
	              "{\"rules\":[{\"owner\":\"group:sensors\",\"n\":1,"
	              "\"text\":\"allow publish data/%c/#\"},{\"owner\":\"user:bob\",\"n\":1,"
	              "\"text\":\"deny all #\"}]}",
	              "OWNER          N  RULE\n"
	              "group:sensors  1  allow publish data/%c/#\n"
	              "user:bob       1  deny all #\n");
	/* group.list and acl.add as the node answers them (admin/cmd_acl.c). */
	expect_render("group", "list", NULL,
	              "{\"groups\":[{\"name\":\"anonymous\",\"rules\":[{\"n\":1,"
	              "\"text\":\"allow subscribe public/#\"},{\"n\":2,"
	              "\"text\":\"allow publish data/%c/# qos=1\"}]},"
	              "{\"name\":\"ops\",\"rules\":[]}]}",
	              "NAME       RULES\n"
	              "anonymous  allow subscribe public/#; allow publish data/%c/# qos=1\n"
	              "ops        -\n");
	expect_render("group", "list", NULL, "{\"groups\":[]}", "no groups\n");
	expect_render("acl", "add",
	              "{\"tenant\":\"acme\",\"group\":\"sensors\",\"effect\":\"allow\","
	              "\"action\":\"publish\",\"filter\":\"data/%c/#\",\"max_qos\":1}",
	              "{\"rules\":[{\"owner\":\"group:sensors\",\"n\":1,"
	              "\"text\":\"allow publish data/%c/# qos=1\"}]}",
	              "OWNER          N  RULE\n"
	              "group:sensors  1  allow publish data/%c/# qos=1\n");
	expect_render("acl", "del", "{\"tenant\":\"acme\",\"user\":\"bob\",\"n\":1}",
	              "{\"rules\":[]}", "no rules\n");
	expect_render("sessions", "list", NULL, "{\"sessions\":[]}", "no sessions\n");
	expect_render("retained", "list", NULL, "{\"retained\":[]}", "no retained messages\n");
}

static void test_render_stats(void **state)
{
	const char *want =
	        "TENANT  CONN  SESSIONS  PERSISTENT  SUBS  MSGS_IN  IN/S   MSGS_OUT  OUT/S  "
	        "BYTES_IN  BYTES_OUT  DROPPED  QUOTA_HITS  AUTH_FAIL  ACL_DENY\n"
	        "acme    12    14        2           30    1000     120.5  2000      241    "
	        "64000     128000     0        3           1          0\n"
	        "b       0     0         0           0     0        0      0         0      "
	        "0         0          0        0           0          7\n";
	const char *row_b = "\"connections\":0,\"sessions\":0,\"persistent\":0,\"subscriptions\":0,"
	                    "\"msgs_in\":0,\"msgs_out\":0,\"bytes_in\":0,\"bytes_out\":0,"
	                    "\"dropped\":0,\"quota_hits\":0,\"auth_failures\":0,\"acl_denials\":7,"
	                    "\"msgs_in_per_s\":0.0,\"msgs_out_per_s\":0.0";
	const char *row_a = "\"connections\":12,\"sessions\":14,\"persistent\":2,"
	                    "\"subscriptions\":30,\"msgs_in\":1000,\"msgs_out\":2000,"
	                    "\"bytes_in\":64000,\"bytes_out\":128000,\"dropped\":0,"
	                    "\"quota_hits\":3,\"auth_failures\":1,\"acl_denials\":0,"
	                    "\"msgs_in_per_s\":120.5,\"msgs_out_per_s\":241.0";
	char keyed[1024], listed[1024];

	/* The protocol says "per tenant": keyed by name or listed with a name. */
	snprintf(keyed, sizeof(keyed), "{\"tenants\":{\"acme\":{%s},\"b\":{%s}}}", row_a, row_b);
	snprintf(listed, sizeof(listed),
	         "{\"tenants\":[{\"name\":\"acme\",%s},{\"tenant\":\"b\",%s}]}", row_a, row_b);
	expect_render("stats", NULL, NULL, keyed, want);
	expect_render("stats", NULL, NULL, listed, want);
	expect_render("stats", NULL, NULL, "{\"tenants\":{}}", "no tenants\n");
}

static void test_render_objects(void **state)
{
	expect_render("tenant", "delete", "{\"name\":\"acme\",\"confirm\":true}",
	              "{\"deleted\":true}", "tenant acme deleted\n");
	expect_render("user", "del", "{\"tenant\":\"acme\",\"user\":\"bob\"}", "{\"deleted\":true}",
	              "user bob of tenant acme deleted\n");
	expect_render("tenant", "show", NULL,
	              "{\"name\":\"acme\",\"id\":3,\"status\":\"active\",\"hostnames\":[],"
	              "\"allow_anonymous\":false,\"quotas\":{\"connections\":100,\"max_qos\":1},"
	              "\"cas\":[{\"fingerprint\":\"ab\",\"subject\":\"CN=ca\","
	              "\"not_after\":\"2030-01-01\"}],\"jwt\":{\"issuers\":[\"i\"],"
	              "\"audiences\":[],\"keys\":[]},\"groups\":2,\"users\":5}",
	              "name:            acme\n"
	              "id:              3\n"
	              "status:          active\n"
	              "hostnames:       -\n"
	              "allow_anonymous: no\n"
	              "quotas:\n"
	              "  connections: 100\n"
	              "  max_qos:     1\n"
	              "cas:\n"
	              "  FINGERPRINT  SUBJECT  NOT_AFTER\n"
	              "  ab           CN=ca    2030-01-01\n"
	              "jwt:\n"
	              "  issuers:   i\n"
	              "  audiences: -\n"
	              "  keys:      -\n"
	              "groups:          2\n"
	              "users:           5\n");
	expect_render("quota", "show", NULL,
	              "{\"quotas\":{\"connections\":0,\"max_qos\":null,\"retained_msgs\":10},"
	              "\"effective\":{\"connections\":1000,\"max_qos\":2,\"retained_msgs\":10}}",
	              "QUOTA          VALUE    EFFECTIVE\n"
	              "connections    default  1000\n"
	              "max_qos        default  2\n"
	              "retained_msgs  10       10\n");
	/* A tenant's quotas that are the node's default say so, wherever a tenant is shown. */
	expect_render("tenant", "create", "{\"name\":\"b\"}",
	              "{\"name\":\"b\",\"id\":4,\"status\":\"active\",\"hostnames\":[],"
	              "\"allow_anonymous\":false,\"quotas\":{\"connections\":0,"
	              "\"retained_msgs\":10,\"max_qos\":null},\"cas\":[],\"jwt\":{"
	              "\"issuers\":[],\"audiences\":[],\"keys\":[]},\"groups\":0,\"users\":0}",
	              "name:            b\n"
	              "id:              4\n"
	              "status:          active\n"
	              "hostnames:       -\n"
	              "allow_anonymous: no\n"
	              "quotas:\n"
	              "  connections:   default\n"
	              "  retained_msgs: 10\n"
	              "  max_qos:       default\n"
	              "cas:             -\n"
	              "jwt:\n"
	              "  issuers:   -\n"
	              "  audiences: -\n"
	              "  keys:      -\n"
	              "groups:          0\n"
	              "users:           0\n");
	/* quota.set answers as quota.show does. */
	expect_render("quota", "set", "{\"tenant\":\"acme\",\"key\":\"connections\",\"value\":0}",
	              "{\"quotas\":{\"connections\":0,\"max_qos\":1},"
	              "\"effective\":{\"connections\":1000,\"max_qos\":1}}",
	              "QUOTA        VALUE    EFFECTIVE\n"
	              "connections  default  1000\n"
	              "max_qos      1        1\n");
	/* user.show: a user's own rules as the node numbers them. */
	expect_render(
	        "user", "show", NULL,
	        "{\"name\":\"alice\",\"kind\":\"password\",\"enabled\":true,"
	        "\"groups\":[\"mosquitto-patterns\"],\"rules\":[{\"n\":1,"
	        "\"text\":\"allow all alice/#\"},{\"n\":2,\"text\":\"deny all alice/secret\"}]}",
	        "name:    alice\n"
	        "kind:    password\n"
	        "enabled: yes\n"
	        "groups:  mosquitto-patterns\n"
	        "rules:\n"
	        "  N  TEXT\n"
	        "  1  allow all alice/#\n"
	        "  2  deny all alice/secret\n");
	/* jwt.*: keys as the node lists them, kty included. */
	expect_render("jwt", "add", NULL,
	              "{\"jwt\":{\"issuers\":[\"i\"],\"audiences\":[],\"keys\":[{\"kid\":"
	              "\"2216790696f5993e\",\"alg\":\"RS256\",\"kty\":\"RSA\"},{\"kid\":null,"
	              "\"alg\":null,\"kty\":\"oct\"}]}}",
	              "issuers:   i\n"
	              "audiences: -\n"
	              "keys:\n"
	              "  KID               ALG    KTY\n"
	              "  2216790696f5993e  RS256  RSA\n"
	              "  -                 -      oct\n");
	expect_render("import", "mosquitto", "{\"tenant\":\"acme\",\"passwd\":\"...\"}",
	              "{\"users\":3,\"rules\":7}",
	              "imported 3 users and 7 rules into tenant acme\n");
	expect_render("import", "mosquitto", "{\"tenant\":\"b\",\"passwd\":\"...\"}",
	              "{\"users\":1,\"rules\":1}", "imported 1 user and 1 rule into tenant b\n");
	expect_render("jwt", "list", NULL,
	              "{\"jwt\":{\"issuers\":[\"https://id\"],\"audiences\":[\"mqtt\"],"
	              "\"keys\":[{\"kid\":\"k1\",\"alg\":\"RS256\"}]}}",
	              "issuers:   https://id\n"
	              "audiences: mqtt\n"
	              "keys:\n"
	              "  KID  ALG\n"
	              "  k1   RS256\n");
	/* The tenant claim as the node shows it: the tenant's own, or null (the node's). */
	expect_render("jwt", "list", NULL,
	              "{\"jwt\":{\"issuers\":[\"https://id\"],\"audiences\":[],"
	              "\"tenant_claim\":\"org\",\"keys\":[{\"kid\":\"k1\",\"alg\":\"RS256\"}]}}",
	              "issuers:      https://id\n"
	              "audiences:    -\n"
	              "tenant_claim: org\n"
	              "keys:\n"
	              "  KID  ALG\n"
	              "  k1   RS256\n");
	expect_render("jwt", "add", NULL,
	              "{\"jwt\":{\"issuers\":[\"i\"],\"audiences\":[],\"tenant_claim\":null,"
	              "\"keys\":[]}}",
	              "issuers:      i\n"
	              "audiences:    -\n"
	              "tenant_claim: -\n"
	              "keys:         -\n");
}

/* Help is asked for: exit 0, the help on out, no request. */
static void expect_help(const char *want, int argc, char **argv)
{
	struct ctl_run r;
	json_t *req = NULL;
	const struct bw_ctl_cmd *cmd;

	ctl_run_open(&r, NULL);
	assert_int_equal(bw_ctl_build(argc, argv, &r.io, &cmd, &req), 0);
	ctl_run_close(&r);
	assert_null(req);
	if (!strstr(r.out, want))
		fail_msg("help of %s lacks '%s':\n%s", argv[0], want, r.out);
	assert_string_equal(r.err, "");
	ctl_run_free(&r);
}

static void test_help(void **state)
{
	size_t n;
	const struct bw_ctl_cmd *t = bw_ctl_cmds(&n);
	char want[256];

	expect_help("subcommands:\n  create    create a tenant\n", 2, ARGV("tenant", "--help"));
	expect_help("  --max-qos N ", 3, ARGV("tenant", "create", "--help"));
	expect_help("usage: bulwarkctl user passwd TENANT USER\n", 3, ARGV("user", "passwd", "-h"));
	/* Help wins over everything else on the line, even missing arguments. */
	expect_help("usage: bulwarkctl acl add TENANT", 4, ARGV("acl", "add", "--bogus", "--help"));
	for (size_t i = 0; i < n; i++) {
		char *argv[] = { (char *)t[i].noun, (char *)(t[i].verb ? t[i].verb : "--help"),
			         "--help", NULL };
		snprintf(want, sizeof(want), "usage: bulwarkctl %s%s%s", t[i].noun,
		         t[i].verb ? " " : "", t[i].verb ? t[i].verb : "");
		expect_help(want, t[i].verb ? 3 : 2, argv);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tenant),
		cmocka_unit_test(test_group_acl),
		cmocka_unit_test(test_user_cert),
		cmocka_unit_test(test_quota_sessions_retained_node),
		cmocka_unit_test_setup_teardown(test_files, files_setup, files_teardown),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_passwords),
		cmocka_unit_test(test_password_terminal),
		cmocka_unit_test(test_render_lists),
		cmocka_unit_test(test_render_stats),
		cmocka_unit_test(test_render_objects),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
