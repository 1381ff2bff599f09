/*
 * Node configuration: defaults, every key's parsing and range, listener
 * syntax, comments, and that every error names its origin (file and line,
 * environment variable, or --set) and the key. Precedence is file, then
 * environment, then --set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "node/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static char err[BW_CONFIG_ERROR_MAX];

static int load(struct bw_config *c, const char *text)
{
	bw_config_defaults(c);
	err[0] = 0;
	return bw_config_load_text(c, "test.conf", text, err, sizeof(err));
}

static void expect_error(const char *text, const char *message)
{
	struct bw_config c;
	assert_int_equal(load(&c, text), -1);
	if (!strstr(err, message))
		fail_msg("error '%s' does not contain '%s'", err, message);
}

static void test_defaults(void **state)
{
	struct bw_config c;
	bw_config_defaults(&c);
	assert_int_equal(c.listener_count, 0);
	assert_int_equal(c.workers, 0);
	assert_string_equal(c.state_dir, "/var/lib/bulwark");
	assert_int_equal(c.log_level, BW_LOG_INFO);
	assert_int_equal(c.log_format, BW_LOG_TEXT);
	assert_string_equal(c.log_file, "");
	assert_int_equal(c.max_packet_size, 1048576);
	assert_int_equal(c.max_inflight, 64);
	assert_int_equal(c.max_queued_messages, 1000);
	assert_int_equal(c.max_keepalive, 3600);
	assert_int_equal(c.max_topic_length, 1024);
	assert_int_equal(c.max_topic_levels, 32);
	assert_int_equal(c.max_subscriptions_per_client, 100);
	assert_int_equal(c.max_connections, 1000000);
}

static void test_every_key(void **state)
{
	struct bw_config c;
	const char *text = "# a comment\n"
	                   "\n"
	                   "listen mqtt 127.0.0.1:1883 tenant=acme allow_anonymous=true\n"
	                   "listen http 127.0.0.1:9100   # metrics\n"
	                   "workers 2\n"
	                   "state_dir /tmp/bw state\n"
	                   "log_level debug\r\n"
	                   "log_format json\n"
	                   "log_file /var/log/bulwark.log\n"
	                   "max_packet_size 64k\n"
	                   "max_inflight 10\n"
	                   "max_queued_messages 0\n"
	                   "max_keepalive 60\n"
	                   "max_topic_length 200\n"
	                   "max_topic_levels 8\n"
	                   "max_subscriptions_per_client 5\n"
	                   "\tmax_connections   77  \n";
	assert_int_equal(load(&c, text), 0);
	assert_int_equal(c.listener_count, 2);
	assert_int_equal(c.listeners[0].kind, BW_LISTEN_MQTT);
	assert_string_equal(c.listeners[0].tenant, "acme");
	assert_true(c.listeners[0].allow_anonymous);
	assert_string_equal(c.listeners[0].addr_text, "127.0.0.1:1883");
	const struct sockaddr_in *a = (const struct sockaddr_in *)&c.listeners[0].addr;
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(ntohs(a->sin_port), 1883);
	assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7F000001);
	assert_int_equal(c.listeners[1].kind, BW_LISTEN_HTTP);
	assert_string_equal(c.listeners[1].tenant, "default");
	assert_false(c.listeners[1].allow_anonymous);
	assert_int_equal(c.workers, 2);
	assert_string_equal(c.state_dir, "/tmp/bw state");
	assert_int_equal(c.log_level, BW_LOG_DEBUG);
	assert_int_equal(c.log_format, BW_LOG_JSON);
	assert_string_equal(c.log_file, "/var/log/bulwark.log");
	assert_int_equal(c.max_packet_size, 65536);
	assert_int_equal(c.max_inflight, 10);
	assert_int_equal(c.max_queued_messages, 0);
	assert_int_equal(c.max_keepalive, 60);
	assert_int_equal(c.max_topic_length, 200);
	assert_int_equal(c.max_topic_levels, 8);
	assert_int_equal(c.max_subscriptions_per_client, 5);
	assert_int_equal(c.max_connections, 77);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);
}

static void test_sizes(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "max_packet_size 2m"), 0);
	assert_int_equal(c.max_packet_size, 2u << 20);
	assert_int_equal(load(&c, "max_packet_size 1MiB"), 0);
	assert_int_equal(c.max_packet_size, 1u << 20);
	assert_int_equal(load(&c, "max_packet_size 16KB"), 0);
	assert_int_equal(c.max_packet_size, 16u << 10);
	assert_int_equal(load(&c, "max_packet_size 268435460"), 0);
	expect_error("max_packet_size 268435461",
	             "test.conf:1: max_packet_size: 268435461 is out of range");
	expect_error("max_packet_size 1g", "out of range");
	expect_error("max_packet_size 15", "out of range (16..268435460 bytes)");
	expect_error("max_packet_size 12x", "is not a size");
	expect_error("max_packet_size 99999999999999999999999", "is not a size");
	expect_error("max_inflight 1k", "is not a whole number");
}

static void test_listen_forms(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "listen mqtt [::1]:0\nlisten mqtt *:1884\n"), 0);
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&c.listeners[0].addr;
	assert_int_equal(a6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(a6->sin6_port), 0);
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&c.listeners[1].addr;
	assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(a4->sin_port), 1884);

	expect_error("listen mqtt", "test.conf:1: listen: expected `KIND ADDR:PORT");
	expect_error("listen mqttx 127.0.0.1:8883", "unknown listener kind 'mqttx'");
	expect_error("listen mqtt 127.0.0.1", "'127.0.0.1' is not ADDR:PORT");
	expect_error("listen mqtt 127.0.0.1:65536", "is not ADDR:PORT");
	expect_error("listen mqtt 127.0.0.1:-1", "is not ADDR:PORT");
	expect_error("listen mqtt 300.0.0.1:1", "is not ADDR:PORT");
	expect_error("listen mqtt [::1:1", "is not ADDR:PORT");
	expect_error("listen mqtt localhost:1", "is not ADDR:PORT");
	expect_error("listen mqtt 127.0.0.1:1 tenant=Acme", "tenant 'Acme' is not a DNS label");
	expect_error("listen mqtt 127.0.0.1:1 allow_anonymous=maybe",
	             "allow_anonymous must be true or false");
	expect_error("listen mqtt 127.0.0.1:1 colour=red", "unknown option 'colour'");
	expect_error("listen mqtt 127.0.0.1:1 tenant", "option 'tenant' is not NAME=VALUE");
	expect_error("listen http 127.0.0.1:1 tenant=acme", "unknown option 'tenant' for a http");

	char many[2048] = "";
	for (int i = 0; i <= BW_CONFIG_LISTENERS_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		         "listen mqtt 127.0.0.1:%d\n", 2000 + i);
	expect_error(many, "test.conf:17: listen: more than 16 listeners");
}

static void test_tls_listeners_and_keys(void **state)
{
	struct bw_config c;
	struct bw_tls_settings t;
	const char *text = "tls_cert /etc/b/server.pem\n"
	                   "tls_key /etc/b/server.key\n"
	                   "tls_client_ca /etc/b/ca.pem\n"
	                   "tls_crl /etc/b/crl.pem\n"
	                   "tls_ciphers ECDHE+AESGCM\n"
	                   "tls_ciphersuites TLS_AES_128_GCM_SHA256\n"
	                   "tls_client_auth optional\n"
	                   "tls_min_version 1.3\n"
	                   "tls_identity san_uri\n"
	                   "listen mqtts 127.0.0.1:8883 tenant=acme\n"
	                   "listen mqtts 127.0.0.1:8884 tls_cert=/x/c.pem tls_key=/x/k.pem "
	                   "tls_client_auth=required tls_min_version=1.2 tls_crl=/x/crl.pem "
	                   "tls_client_ca=/x/ca.pem tls_ciphers=HIGH "
	                   "tls_ciphersuites=TLS_AES_256_GCM_SHA384 allow_anonymous=true "
	                   "tls_identity=sha256\n"
	                   "listen mqtt 127.0.0.1:1883\n";
	(void)state;

	/* Defaults: nothing but client auth none, TLS 1.2 and a cipher list. */
	bw_config_defaults(&c);
	assert_string_equal(c.tls.cert, "");
	assert_int_equal(c.tls.client_auth, BW_CONFIG_AUTH_NONE);
	assert_int_equal(c.tls.min_version, 0);
	assert_string_equal(c.tls.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");

	assert_int_equal(load(&c, text), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);
	assert_true(c.listeners[0].tls);
	assert_int_equal(c.listeners[0].kind, BW_LISTEN_MQTT);
	assert_string_equal(c.listeners[0].tenant, "acme");
	assert_string_equal(c.listeners[0].origin, "test.conf:10");
	assert_false(c.listeners[2].tls);

	/* The first inherits every global key, the second overrides each. */
	bw_config_listener_tls(&c, &c.listeners[0], &t);
	assert_int_equal(t.identity, BW_CONFIG_IDENTITY_SAN_URI);
	assert_string_equal(t.cert, "/etc/b/server.pem");
	assert_string_equal(t.key, "/etc/b/server.key");
	assert_string_equal(t.client_ca, "/etc/b/ca.pem");
	assert_string_equal(t.crl, "/etc/b/crl.pem");
	assert_string_equal(t.ciphers, "ECDHE+AESGCM");
	assert_string_equal(t.ciphersuites, "TLS_AES_128_GCM_SHA256");
	assert_int_equal(t.client_auth, BW_CONFIG_AUTH_OPTIONAL);
	assert_int_equal(t.min_version, 1);
	bw_config_listener_tls(&c, &c.listeners[1], &t);
	assert_int_equal(t.identity, BW_CONFIG_IDENTITY_SHA256);
	assert_string_equal(t.cert, "/x/c.pem");
	assert_string_equal(t.key, "/x/k.pem");
	assert_string_equal(t.client_ca, "/x/ca.pem");
	assert_string_equal(t.crl, "/x/crl.pem");
	assert_string_equal(t.ciphers, "HIGH");
	assert_string_equal(t.ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_int_equal(t.client_auth, BW_CONFIG_AUTH_REQUIRED);
	assert_int_equal(t.min_version, 0);
	assert_true(c.listeners[1].allow_anonymous);

	/* A global key set after the listener still reaches it. */
	assert_int_equal(load(&c, "listen mqtts 127.0.0.1:8883\ntls_cert /c\n"), 0);
	assert_int_equal(bw_config_set(&c, "tls_key=/k", err, sizeof(err)), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);

	expect_error("listen mqtt 127.0.0.1:1 tls_cert=/c", "unknown option 'tls_cert' for a mqtt");
	expect_error("listen http 127.0.0.1:1 tls_cert=/c", "unknown option 'tls_cert'");
	expect_error("listen mqtts 127.0.0.1:1 tls_client_auth=maybe",
	             "test.conf:1: listen: tls_client_auth must be none, optional or required");
	expect_error("listen mqtts 127.0.0.1:1 tls_min_version=1.1",
	             "tls_min_version must be 1.2 or 1.3, not '1.1'");
	expect_error("listen mqtts 127.0.0.1:1 tls_cert=", "tls_cert needs a value");
	expect_error("tls_client_auth always", "tls_client_auth: 'always' is not one");
	expect_error("auth_chain password,ldap", "auth_chain: 'ldap' is not one of certificate,");
	expect_error("auth_chain token,password,token", "auth_chain: 'token' is named twice");
	expect_error("auth_chain ,", "auth_chain: needs at least one of");
	expect_error("tls_min_version 1.0", "tls_min_version: '1.0' is not one");
	expect_error("listen mqtts 127.0.0.1:1 tls_identity=serial",
	             "tls_identity must be none, cn, san_dns, san_uri, san_email or sha256");
}

/* An mqtts listener without its material is refused, naming where it was configured. */
static void test_validate_tls(void **state)
{
	struct bw_config c;
	(void)state;
	assert_int_equal(load(&c, "workers 1\nlisten mqtts 127.0.0.1:8883\n"), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "test.conf:2: listen: mqtts 127.0.0.1:8883 has no tls_cert (give "
	                         "tls_cert=FILE on the listener or set the tls_cert key)");
	assert_int_equal(load(&c, "tls_cert /c\nlisten mqtts 127.0.0.1:8883\n"), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "test.conf:2: listen: mqtts 127.0.0.1:8883 has no tls_key"));
	assert_int_equal(load(&c, "tls_cert /c\ntls_key /k\n"
	                          "listen mqtts 127.0.0.1:8883 tls_client_auth=required\n"),
	                 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "test.conf:3: listen: mqtts 127.0.0.1:8883: "
	                            "tls_client_auth=required needs tls_client_ca"));
	bw_config_defaults(&c);
	assert_int_equal(bw_config_set(&c, "listen=mqtts 127.0.0.1:1", err, sizeof(err)), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--set: listen: mqtts 127.0.0.1:1 has no tls_cert"));
	char *env[] = { "BULWARK_LISTEN=mqtts 127.0.0.1:2", NULL };
	assert_int_equal(bw_config_load_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "environment BULWARK_LISTEN: listen: mqtts"));
}

static void test_file_errors_name_line_and_key(void **state)
{
	expect_error("workers 1\n\n# x\nbogus 1\n", "test.conf:4: bogus: unknown key");
	expect_error("workers\n", "test.conf:1: workers: needs a value");
	expect_error("workers 1\nworkers 2\n", "test.conf:2: workers: already set on line 1");
	expect_error("workers 257", "test.conf:1: workers: 257 is out of range (0..256 threads)");
	expect_error("log_level loud", "log_level: 'loud' is not one of the allowed values");
	expect_error("log_format xml", "log_format: 'xml' is not one");
	expect_error("max_inflight 0", "max_inflight: 0 is out of range (1..65535 messages)");
	expect_error("max_inflight 65536", "out of range");
	expect_error("max_keepalive -5", "is not a whole number");

	char longline[5000];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	expect_error(longline, "test.conf:1: (line): longer than 4096 bytes");
}

static void test_hash_inside_a_value_is_kept(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "state_dir /tmp/a#b # comment"), 0);
	assert_string_equal(c.state_dir, "/tmp/a#b");
}

/* The names the security design gave the JWT key files work too. */
static void test_jwt_key_aliases(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "jwt_keys /etc/k.pem\njwks_file /etc/k.jwks\n"), 0);
	assert_string_equal(c.jwt_key_file, "/etc/k.pem");
	assert_string_equal(c.jwt_jwks_file, "/etc/k.jwks");
	assert_int_equal(bw_config_set(&c, "jwt_keys=/x.pem", err, sizeof(err)), 0);
	assert_string_equal(c.jwt_key_file, "/x.pem");
}

static void test_load_file(void **state)
{
	struct bw_config c;
	char path[] = "/tmp/bw-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "listen mqtt 127.0.0.1:1883\nmax_inflight nine\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	bw_config_defaults(&c);
	assert_int_equal(bw_config_load_file(&c, path, err, sizeof(err)), -1);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: max_inflight: 'nine' is not a whole number", path);
	assert_string_equal(err, want);

	/* A NUL byte means this is not a config file. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "workers 1\n\0x", 12), 12);
	close(fd);
	assert_int_equal(bw_config_load_file(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL byte"));
	unlink(path);

	assert_int_equal(bw_config_load_file(&c, "/nonexistent/bulwark.conf", err, sizeof(err)),
	                 -1);
	assert_string_equal(err,
	                    "/nonexistent/bulwark.conf: cannot open: No such file or directory");
}

static void test_environment(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\nmax_inflight 5\n"), 0);
	char *env[] = { "PATH=/bin", "BULWARK_MAX_INFLIGHT= 9 ",
		        "BULWARK_LISTEN=mqtt 127.0.0.1:1; http 127.0.0.1:2", "BULWARKX=1", NULL };
	assert_int_equal(bw_config_load_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.max_inflight, 9);
	assert_int_equal(c.listener_count, 2);
	assert_string_equal(c.listeners[0].addr_text, "127.0.0.1:1");
	assert_int_equal(c.listeners[1].kind, BW_LISTEN_HTTP);

	char *typo[] = { "BULWARK_MAX_INFLGHT=3", NULL };
	assert_int_equal(bw_config_load_env(&c, typo, err, sizeof(err)), -1);
	assert_string_equal(err, "environment BULWARK_MAX_INFLGHT: max_inflght: unknown key");
	char *bad[] = { "BULWARK_WORKERS=many", NULL };
	assert_int_equal(bw_config_load_env(&c, bad, err, sizeof(err)), -1);
	assert_string_equal(err,
	                    "environment BULWARK_WORKERS: workers: 'many' is not a whole number");
}

static void test_set(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\nworkers 1\n"), 0);
	assert_int_equal(c.auth_chain, BW_CONFIG_CHAIN_DEFAULT);
	assert_int_equal(bw_config_set(&c, "auth_chain=password, certificate", err, sizeof(err)),
	                 0);
	assert_int_equal(c.auth_chain,
	                 (BW_CONFIG_METHOD_PASSWORD + 1) | (BW_CONFIG_METHOD_CERTIFICATE + 1) << 4);
	assert_int_equal(bw_config_set(&c, "workers=3", err, sizeof(err)), 0);
	assert_int_equal(c.workers, 3);
	assert_int_equal(bw_config_set(&c, "listen=mqtt 127.0.0.1:7", err, sizeof(err)), 0);
	assert_int_equal(bw_config_set(&c, "listen=http 127.0.0.1:8", err, sizeof(err)), 0);
	assert_int_equal(c.listener_count, 2);
	assert_string_equal(c.listeners[0].addr_text, "127.0.0.1:7");

	assert_int_equal(bw_config_set(&c, "workers", err, sizeof(err)), -1);
	assert_string_equal(err, "--set workers: expected key=value");
	assert_int_equal(bw_config_set(&c, "wrkers=1", err, sizeof(err)), -1);
	assert_string_equal(err, "--set wrkers: unknown key");
	assert_int_equal(bw_config_set(&c, "max_topic_levels=0", err, sizeof(err)), -1);
	assert_string_equal(err, "--set max_topic_levels: 0 is out of range (1..1024 levels)");
	assert_int_equal(bw_config_set(&c, "state_dir=", err, sizeof(err)), -1);
	assert_string_equal(err, "--set state_dir: needs a value");
}

static void test_validate_output_queue_limits(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1\noutput_queue_soft 2m\n"
	                          "output_queue_hard 1m\n"),
	                 0);
	assert_int_equal(c.output_queue_soft, 2u << 20);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "output_queue_soft: 2097152 is above output_queue_hard"));
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1\nmax_topic_aliases 0\n"
	                          "max_retained_messages 5\nmax_retained_bytes 4095m\n"),
	                 0);
	assert_int_equal(c.max_topic_aliases, 0);
	assert_int_equal(c.max_retained_messages, 5);
	assert_int_equal(c.max_retained_bytes, 4095u << 20);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);
	expect_error("max_retained_bytes 4g", "out of range");
}

static void test_validate_needs_an_mqtt_listener(void **state)
{
	struct bw_config c;
	assert_int_equal(load(&c, "listen http 127.0.0.1:9100"), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no MQTT listener"));
}

/* The admin socket's keys: defaults, values, errors naming the line and key, path length. */
static void test_admin_keys(void **state)
{
	struct bw_config c;
	char path[BW_CONFIG_PATH_MAX * 2];

	bw_config_defaults(&c);
	assert_string_equal(c.admin_socket, "");
	assert_int_equal(c.admin_uid, BW_CONFIG_ID_UNSET);
	assert_int_equal(c.admin_gid, BW_CONFIG_ID_UNSET);
	assert_string_equal(c.audit_log, "");
	bw_config_admin_socket(&c, path, sizeof(path));
	assert_string_equal(path, "/var/lib/bulwark/admin.sock");

	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\n"
	                          "admin_socket /run/bulwark/admin.sock\n"
	                          "admin_uid 0\n"
	                          "admin_gid 998\n"
	                          "audit_log /var/log/bulwark-audit.log\n"),
	                 0);
	assert_int_equal(c.admin_uid, 0);
	assert_int_equal(c.admin_gid, 998);
	assert_string_equal(c.audit_log, "/var/log/bulwark-audit.log");
	bw_config_admin_socket(&c, path, sizeof(path));
	assert_string_equal(path, "/run/bulwark/admin.sock");
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);

	expect_error("workers 1\nadmin_uid bulwark\n", "test.conf:2: admin_uid:");
	expect_error("admin_gid 4294967295\n",
	             "test.conf:1: admin_gid: 4294967295 is out of range");
	expect_error("audit_log\n", "test.conf:1: audit_log: needs a value");

	/* A socket path longer than a Unix socket address holds: the node does not start. */
	char text[BW_CONFIG_PATH_MAX + 64];
	snprintf(text, sizeof(text), "listen mqtt 127.0.0.1:1883\nstate_dir /tmp/%0120d\n", 0);
	assert_int_equal(load(&c, text), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "admin_socket:"));
	assert_non_null(strstr(err, "set admin_socket"));
}

/* The Redis state store: the address is checked as it is read, never quoting a password. */
static void test_redis_keys(void **state)
{
	struct bw_config c;
	bw_config_defaults(&c);
	assert_string_equal(c.redis, "");
	assert_string_equal(c.redis_prefix, "bw");
	assert_int_equal(c.redis_retained_queue, 10000);
	assert_int_equal(load(&c, "redis redis://:s3cret@10.0.0.7:6380/2\n"
	                          "redis_prefix prod.eu-1\n"
	                          "redis_retained_queue 5\n"),
	                 0);
	assert_string_equal(c.redis, "redis://:s3cret@10.0.0.7:6380/2");
	assert_string_equal(c.redis_prefix, "prod.eu-1");
	assert_int_equal(c.redis_retained_queue, 5);
	assert_int_equal(load(&c, "redis unix:///run/redis.sock?db=3\n"), 0);

	expect_error("workers 1\nredis http://h:1\n",
	             "test.conf:2: redis: the address must start with redis:// or unix://");
	expect_error("redis redis://:pw-not-shown@h:70000\n",
	             "test.conf:1: redis: port 70000 is out of range");
	assert_null(strstr(err, "pw-not-shown"));
	expect_error("redis_prefix a:b\n", "test.conf:1: redis_prefix: 'a:b' is not 1 to 64 of");
	expect_error("redis_prefix {t}\n", "redis_prefix: '{t}' is not");
	expect_error("redis_retained_queue 0\n",
	             "redis_retained_queue: 0 is out of range (1..10000000 writes)");
	char url[BW_CONFIG_URL_MAX + 128];
	snprintf(url, sizeof(url), "redis redis://:%01100d@h\n", 0);
	expect_error(url, "test.conf:1: redis: ");
	assert_null(strstr(err, "0000"));
	assert_int_equal(bw_config_set(&c, "redis=unix://relative", err, sizeof(err)), -1);
	assert_string_equal(err, "--set redis: unix:// needs an absolute path (unix:///path)");
}

/*
 * redis_sentinel: a master name and up to 16 sentinels, checked as read;
 * it needs a redis:// address (the password and db), and
 * redis_sentinel_password needs it.
 */
static void test_redis_sentinel_keys(void **state)
{
	struct bw_config c;
	bw_config_defaults(&c);
	assert_string_equal(c.redis_sentinel, "");
	assert_string_equal(c.redis_sentinel_password, "");
	assert_int_equal(load(&c,
	                      "listen mqtt 127.0.0.1:1883\n"
	                      "redis redis://:s3cret@ignored/2\n"
	                      "redis_sentinel mymaster 10.0.0.1:26379, s2.internal,[::1]:26380\n"
	                      "redis_sentinel_password sentinel-pw\n"),
	                 0);
	assert_string_equal(c.redis_sentinel, "mymaster 10.0.0.1:26379, s2.internal,[::1]:26380");
	assert_string_equal(c.redis_sentinel_password, "sentinel-pw");
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), 0);

	expect_error("workers 1\nredis_sentinel mymaster\n",
	             "test.conf:2: redis_sentinel: names no sentinel");
	expect_error("redis_sentinel m h:70000\n",
	             "test.conf:1: redis_sentinel: sentinel 'h:70000': port 70000 is out of range");
	expect_error("redis_sentinel m h:1,,h:2\n",
	             "test.conf:1: redis_sentinel: an empty sentinel address");
	char text[1024];
	size_t n = (size_t)snprintf(text, sizeof(text), "redis_sentinel m ");
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sh%d", i ? "," : "", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	expect_error(text, "test.conf:1: redis_sentinel: more than 16 sentinels");
	expect_error("redis_sentinel m h\nredis_sentinel m h\n",
	             "test.conf:2: redis_sentinel: already set on line 1");
	assert_int_equal(bw_config_set(&c, "redis_sentinel=m [::1", err, sizeof(err)), -1);
	assert_string_equal(err, "--set redis_sentinel: sentinel '[::1': '[' without ']' around an "
	                         "IPv6 address");
	char *env[] = { "BULWARK_REDIS_SENTINEL=other 127.0.0.1:1", NULL };
	assert_int_equal(bw_config_load_env(&c, env, err, sizeof(err)), 0);
	assert_string_equal(c.redis_sentinel, "other 127.0.0.1:1");

	/* What no single key can say. */
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\nredis_sentinel m h\n"), 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "redis_sentinel: needs redis set to a redis:// address"));
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\nredis unix:///r.sock\n"
	                          "redis_sentinel m h\n"),
	                 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "redis_sentinel: needs redis"));
	assert_int_equal(load(&c, "listen mqtt 127.0.0.1:1883\nredis redis://h\n"
	                          "redis_sentinel_password pw-not-shown\n"),
	                 0);
	assert_int_equal(bw_config_validate(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "redis_sentinel_password: set without redis_sentinel");
	char pw[BW_CONFIG_PATH_MAX + 128];
	snprintf(pw, sizeof(pw), "redis_sentinel_password %0300d\n", 0);
	expect_error(pw, "test.conf:1: redis_sentinel_password: longer than 255 bytes");
	assert_null(strstr(err, "0000"));
}

static void test_describe_lists_every_key(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	bw_config_describe(f);
	fclose(f);
	const char *names[] = { "listen",           "workers",
		                "state_dir",        "log_level",
		                "log_format",       "max_packet_size",
		                "max_inflight",     "max_queued_messages",
		                "max_keepalive",    "max_topic_length",
		                "max_topic_levels", "max_subscriptions_per_client",
		                "max_connections",  "sys_interval",
		                "tls_cert",         "tls_key",
		                "tls_client_ca",    "tls_client_auth",
		                "tls_crl",          "tls_ciphers",
		                "tls_ciphersuites", "tls_min_version" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strstr(text, names[i]))
			fail_msg("describe lacks %s", names[i]);
	}
	free(text);
}

/* docs/configuration.md has a table row for every key bw_config_describe() knows. */
static void test_documentation_lists_every_key(void **state)
{
	char *text = NULL, *doc = NULL;
	size_t len = 0, dlen = 0;
	FILE *f = open_memstream(&text, &len);
	bw_config_describe(f);
	fclose(f);
	FILE *d = fopen(BW_SOURCE_DIR "/docs/configuration.md", "r");
	assert_non_null(d);
	FILE *m = open_memstream(&doc, &dlen);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), d)) > 0)
		fwrite(buf, 1, n, m);
	fclose(d);
	fclose(m);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char key[64], row[80];
		if (line[0] == ' ' || sscanf(line, "%63s", key) != 1)
			continue;
		snprintf(row, sizeof(row), "| `%s` |", key);
		if (!strstr(doc, row))
			fail_msg("docs/configuration.md lacks a row for %s", key);
	}
	free(text);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_tls_listeners_and_keys),
		cmocka_unit_test(test_validate_tls),
		cmocka_unit_test(test_file_errors_name_line_and_key),
		cmocka_unit_test(test_hash_inside_a_value_is_kept),
		cmocka_unit_test(test_jwt_key_aliases),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_validate_output_queue_limits),
		cmocka_unit_test(test_validate_needs_an_mqtt_listener),
		cmocka_unit_test(test_redis_keys),
		cmocka_unit_test(test_redis_sentinel_keys),
		cmocka_unit_test(test_admin_keys),
		cmocka_unit_test(test_describe_lists_every_key),
		cmocka_unit_test(test_documentation_lists_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
