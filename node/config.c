/*
 * Configuration parsing (see config.h). The key table below is the single
 * source of every key's type, range, default and unit; the file, the
 * environment and --set all go through set_key(), so a value is judged the
 * same way wherever it comes from.
 */
#include "node/config.h"

#include "node/state/keys.h"
#include "node/state/redis.h"
#include "node/state/sentinel.h"
#include "tenancy/tenant.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096
#define FILE_MAX_BYTES (1u << 20)

enum key_type {
	K_UINT,  /* a number in [min, max] */
	K_SIZE,  /* bytes: a number with an optional k/m/g (x1024) suffix, e.g. 64k, 1MiB */
	K_ENUM,  /* one of names[] (stored as its index) */
	K_PATH,  /* a non-empty string */
	K_ORDER, /* some of names[], each once, comma-separated: packed 4 bits each (index+1) */
	K_LISTEN,
	K_URL, /* a non-empty string of up to BW_CONFIG_URL_MAX bytes, checked by its key
	        * (redis: an address; redis_sentinel: a master name and sentinels) */
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;
	uint32_t min, max, def;
	const char *def_text; /* for K_PATH, and for describe() */
	const char *unit;
	const char *const *names; /* K_ENUM */
	const char *help;
};

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const client_auths[] = { "none", "optional", "required", NULL };
static const char *const tls_versions[] = { "1.2", "1.3", NULL };
static const char *const auth_methods[] = { "certificate", "token", "password", NULL };
static const char *const queue_fulls[] = { "refuse_new", "drop_oldest", NULL };
static const char *const durabilities[] = { "none", "async", "sync", NULL };
static const char *const identities[] = { "none",      "cn",     "san_dns", "san_uri",
	                                  "san_email", "sha256", NULL };

#define OFF(f) offsetof(struct bw_config, f)

static const struct key_def keys[] = {
	{ "listen", K_LISTEN, 0, 0, 0, 0, "(none)", NULL, NULL,
	  "a listener, repeatable: `mqtt ADDR:PORT [tenant=NAME] [resolve=SIGNALS] "
	  "[allow_anonymous=true]`, `mqtts ADDR:PORT [...the same] [tls_KEY=VALUE...]` (MQTT "
	  "over TLS; any tls_* key below as an option overrides it for this listener) or "
	  "`http ADDR:PORT`; resolve= lists which of ca, sni, claim, username and listener may "
	  "name a client's tenant (default all; docs/tenancy.md)" },
	{ "workers", K_UINT, OFF(workers), 0, 256, 0, "0", "threads", NULL,
	  "worker threads, each with its own io_uring; 0 means one per online CPU" },
	{ "state_dir", K_PATH, OFF(state_dir), 0, 0, 0, "/var/lib/bulwark", NULL, NULL,
	  "directory for snapshots and the embedded stores" },
	{ "password_file", K_PATH, OFF(password_file), 0, 0, 0, "", NULL, NULL,
	  "Mosquitto-format password file (username:hash lines) for the default tenant; empty: "
	  "clients with a username are refused" },
	{ "acl_file", K_PATH, OFF(acl_file), 0, 0, 0, "", NULL, NULL,
	  "topic ACL file (docs/security.md); empty: clients may use every topic but $SYS" },
	{ "jwt_jwks_file", K_PATH, OFF(jwt_jwks_file), 0, 0, 0, "", NULL, NULL,
	  "JWK Set file of the keys that verify JWT access tokens sent as passwords" },
	{ "jwt_key_file", K_PATH, OFF(jwt_key_file), 0, 0, 0, "", NULL, NULL,
	  "a PEM public key (or an HMAC secret file) that verifies JWTs; needs jwt_key_alg" },
	{ "jwt_key_alg", K_PATH, OFF(jwt_key_alg), 0, 0, 0, "", NULL, NULL,
	  "the algorithm of jwt_key_file: HS256/384/512, RS256/384/512, PS256/384/512, "
	  "ES256/384 or EdDSA" },
	{ "jwt_issuers", K_PATH, OFF(jwt_issuers), 0, 0, 0, "", NULL, NULL,
	  "comma-separated issuers a token's iss must be one of; empty: any" },
	{ "jwt_audiences", K_PATH, OFF(jwt_audiences), 0, 0, 0, "", NULL, NULL,
	  "comma-separated audiences a token's aud must hold one of; empty: a token with aud "
	  "is refused" },
	{ "jwt_leeway", K_UINT, OFF(jwt_leeway), 0, 600, 30, NULL, "seconds", NULL,
	  "clock skew allowed on a token's exp, nbf and iat" },
	{ "jwt_grace", K_UINT, OFF(jwt_grace), 0, 3600, 10, NULL, "seconds", NULL,
	  "how long a connection outlives its token's exp, for a 5.0 client to re-authenticate "
	  "(AUTH, method JWT); then DISCONNECT 0x87" },
	{ "jwt_username_claim", K_PATH, OFF(jwt_username_claim), 0, 0, 0, "sub", NULL, NULL,
	  "the claim that names the user of a token (ACL %u)" },
	{ "auth_backoff_after", K_UINT, OFF(auth_backoff_after), 0, 1000, 5, NULL, "failures", NULL,
	  "failed logins in a row from one address before it must wait (1 s, doubling up to "
	  "auth_backoff_max) to try again, refused with 0x9F meanwhile; 0: no backoff" },
	{ "auth_backoff_max", K_UINT, OFF(auth_backoff_max), 1, 86400, 60, NULL, "seconds", NULL,
	  "the longest wait auth_backoff_after imposes" },
	{ "auth_chain", K_ORDER, OFF(auth_chain), 0, 0, BW_CONFIG_CHAIN_DEFAULT,
	  "certificate,token,password", NULL, auth_methods,
	  "the ways a client may authenticate, in order: the first that applies to a CONNECT "
	  "decides (certificate: a verified client certificate naming a user, tls_identity; "
	  "token: a JWT; password: a username the password file holds); leave one out to turn "
	  "it off" },
	{ "auth_threads", K_UINT, OFF(auth_threads), 1, 64, 2, NULL, "threads", NULL,
	  "threads that check passwords, off the workers" },
	{ "log_level", K_ENUM, OFF(log_level), 0, 0, BW_LOG_INFO, "info", NULL, log_levels,
	  "error, warn, info or debug" },
	{ "log_format", K_ENUM, OFF(log_format), 0, 0, BW_LOG_TEXT, "text", NULL, log_formats,
	  "text or json (one object a line)" },
	{ "log_file", K_PATH, OFF(log_file), 0, 0, 0, "", NULL, NULL,
	  "file the log is appended to (reopened on SIGHUP); unset: standard error" },
	{ "max_packet_size", K_SIZE, OFF(max_packet_size), 16, 268435460u, 1048576, NULL, "bytes",
	  NULL, "largest packet accepted from or sent to a client" },
	{ "max_inflight", K_UINT, OFF(max_inflight), 1, 65535, 64, NULL, "messages", NULL,
	  "QoS 1/2 messages in flight a client, each direction (the Receive Maximum)" },
	{ "queue_full", K_ENUM, OFF(queue_full), 0, 0, BW_CONFIG_QUEUE_REFUSE_NEW, "refuse_new",
	  NULL, queue_fulls,
	  "what a session's queue does with a message past max_queued_messages (or its tenant's "
	  "quota): refuse_new drops the new one, drop_oldest the oldest queued; both counted "
	  "(dropped), in Redis too" },
	{ "max_queued_messages", K_UINT, OFF(max_queued_messages), 0, 10000000, 1000, NULL,
	  "messages", NULL, "messages queued for a session beyond its inflight window" },
	{ "max_keepalive", K_UINT, OFF(max_keepalive), 1, 65535, 3600, NULL, "seconds", NULL,
	  "longest keep alive a client may ask for: 5.0 requests above it are capped (Server Keep "
	  "Alive), 3.1.1 ones refused" },
	{ "max_topic_length", K_UINT, OFF(max_topic_length), 1, 65535, 1024, NULL, "bytes", NULL,
	  "longest topic name or filter" },
	{ "max_topic_levels", K_UINT, OFF(max_topic_levels), 1, 1024, 32, NULL, "levels", NULL,
	  "most '/'-separated levels in a topic name or filter" },
	{ "max_subscriptions_per_client", K_UINT, OFF(max_subscriptions_per_client), 1, 1000000,
	  100, NULL, "subscriptions", NULL, "subscriptions one session may hold" },
	{ "max_topic_aliases", K_UINT, OFF(max_topic_aliases), 0, 65535, 64, NULL, "aliases", NULL,
	  "Topic Alias Maximum announced to 5.0 clients (aliases they may define)" },
	{ "output_queue_soft", K_SIZE, OFF(output_queue_soft), 4096, 1u << 30, 1u << 20, NULL,
	  "bytes", NULL,
	  "output queued for a client above which no more is taken from its session, and the "
	  "publishers feeding it are paused (as they are when its session queue is half full)" },
	{ "output_queue_hard", K_SIZE, OFF(output_queue_hard), 4096, 1u << 30, 16u << 20, NULL,
	  "bytes", NULL,
	  "output queued for a client above which it is disconnected (slow consumer)" },
	{ "output_queue_budget", K_SIZE, OFF(output_queue_budget), 0, 1u << 31, 64u << 20, NULL,
	  "bytes", NULL,
	  "output queued for all the clients of one worker above which every publisher feeding a "
	  "client of it is paused, so a fan-out to many clients cannot hold soft x clients; 0: "
	  "no budget" },
	{ "max_retained_messages", K_UINT, OFF(max_retained_messages), 0, 100000000, 1000000, NULL,
	  "messages", NULL, "retained messages a tenant may hold" },
	{ "max_retained_bytes", K_SIZE, OFF(max_retained_bytes), 0, 4095u << 20, 1u << 30, NULL,
	  "bytes", NULL, "bytes of retained messages a tenant may hold" },
	{ "postgres", K_PATH, OFF(postgres), 0, 0, 0, "", NULL, NULL,
	  "the tenancy store in PostgreSQL: postgresql://USER[:PASSWORD]@HOST:PORT/DB (or a "
	  "conninfo string); empty: the embedded store, STATE_DIR/tenancy.json" },
	{ "tenant_claim", K_PATH, OFF(tenant_claim), 0, 0, 0, "tenant", NULL, NULL,
	  "the JWT claim that names the client's tenant (docs/tenancy.md)" },
	{ "max_tenants", K_UINT, OFF(max_tenants), 1, 1024, 1024, NULL, "tenants", NULL,
	  "tenants one node serves" },
	{ "max_qos", K_UINT, OFF(max_qos), 0, 2, 2, NULL, NULL, NULL,
	  "highest QoS a client may publish or be granted (a tenant's quota may lower it)" },
	{ "max_session_expiry", K_UINT, OFF(max_session_expiry), 0, 4294967295u, 0, NULL, "seconds",
	  NULL,
	  "longest session expiry a client may ask for (longer is capped; 3.1.1 persistent "
	  "sessions too); 0: no limit" },
	{ "tenant_max_connections", K_UINT, OFF(tenant_max_connections), 0, 4294967295u, 0, NULL,
	  "connections", NULL, "connections a tenant may hold on this node; 0: no limit" },
	{ "tenant_max_sessions", K_UINT, OFF(tenant_max_sessions), 0, 4294967295u, 0, NULL,
	  "sessions", NULL,
	  "persistent sessions (expiry above 0) a tenant may hold on this node; 0: no limit" },
	{ "tenant_msgs_per_s", K_UINT, OFF(tenant_msgs_per_s), 0, 4294967295u, 0, NULL,
	  "messages/s", NULL, "PUBLISH packets a second a tenant may send in; 0: no limit" },
	{ "tenant_bytes_per_s", K_SIZE, OFF(tenant_bytes_per_s), 0, 4294967295u, 0, NULL, "bytes/s",
	  NULL, "PUBLISH bytes a second a tenant may send in; 0: no limit" },
	{ "client_msgs_per_s", K_UINT, OFF(client_msgs_per_s), 0, 4294967295u, 0, NULL,
	  "messages/s", NULL, "PUBLISH packets a second one client may send; 0: no limit" },
	{ "client_bytes_per_s", K_SIZE, OFF(client_bytes_per_s), 0, 4294967295u, 0, NULL, "bytes/s",
	  NULL, "PUBLISH bytes a second one client may send; 0: no limit" },
	{ "sys_interval", K_UINT, OFF(sys_interval), 0, 86400, 10, NULL, "seconds", NULL,
	  "how often each tenant's $SYS/broker/... statistics are published; 0: never" },
	{ "max_connections", K_UINT, OFF(max_connections), 1, 10000000, 1000000, NULL,
	  "connections", NULL, "client connections the node accepts in all" },
	{ "tls_cert", K_PATH, OFF(tls.cert), 0, 0, 0, "", NULL, NULL,
	  "PEM file of the server certificate followed by its chain, for mqtts listeners "
	  "(reread on SIGHUP)" },
	{ "tls_key", K_PATH, OFF(tls.key), 0, 0, 0, "", NULL, NULL,
	  "PEM file of the private key of tls_cert (unencrypted; reread on SIGHUP)" },
	{ "tls_client_ca", K_PATH, OFF(tls.client_ca), 0, 0, 0, "", NULL, NULL,
	  "PEM bundle of the CAs client certificates must chain to (reread on SIGHUP)" },
	{ "tls_client_auth", K_ENUM, OFF(tls.client_auth), 0, 0, BW_CONFIG_AUTH_NONE, "none", NULL,
	  client_auths,
	  "none, optional or required: whether mqtts clients are asked for a certificate, and "
	  "whether one is required (one that is sent must verify against tls_client_ca)" },
	{ "tls_crl", K_PATH, OFF(tls.crl), 0, 0, 0, "", NULL, NULL,
	  "PEM file of CRLs checked for every certificate of a client's chain, so it needs one "
	  "from each CA of the chain; reread on SIGHUP" },
	{ "tls_ciphers", K_PATH, OFF(tls.ciphers), 0, 0, 0, "ECDHE+AESGCM:ECDHE+CHACHA20", NULL,
	  NULL, "OpenSSL cipher list for TLS 1.2" },
	{ "tls_groups", K_PATH, OFF(tls.groups), 0, 0, 0, "", NULL, NULL,
	  "colon-separated key exchange groups in order of preference (e.g. X25519:P-256); "
	  "unset: OpenSSL's" },
	{ "tls_ciphersuites", K_PATH, OFF(tls.ciphersuites), 0, 0, 0, "", NULL, NULL,
	  "OpenSSL TLS 1.3 cipher suites (colon-separated); unset: OpenSSL's" },
	{ "tls_min_version", K_ENUM, OFF(tls.min_version), 0, 0, 0, "1.2", NULL, tls_versions,
	  "1.2 or 1.3: the oldest TLS version accepted (older ones are always refused)" },
	{ "admin_socket", K_PATH, OFF(admin_socket), 0, 0, 0, "", NULL, NULL,
	  "the admin socket bulwarkctl talks to (docs/admin-protocol.md), a Unix socket of mode "
	  "0600 (0660 with admin_gid); unset: STATE_DIR/admin.sock" },
	{ "admin_uid", K_UINT, OFF(admin_uid), 0, BW_CONFIG_ID_UNSET - 1, BW_CONFIG_ID_UNSET, "",
	  NULL, NULL,
	  "the uid, besides root, that may use the admin socket (the socket is given to it); "
	  "unset: the node's own uid" },
	{ "admin_gid", K_UINT, OFF(admin_gid), 0, BW_CONFIG_ID_UNSET - 1, BW_CONFIG_ID_UNSET, "",
	  NULL, NULL,
	  "a group whose members may use the admin socket too (the socket becomes 0660, of "
	  "this group); unset: none" },
	{ "audit_log", K_PATH, OFF(audit_log), 0, 0, 0, "", NULL, NULL,
	  "file every admin change and refused admin connection is appended to, one JSON line "
	  "each (mode 0600, reopened on SIGHUP); unset: the node's log" },
	{ "tls_identity", K_ENUM, OFF(tls.identity), 0, 0, BW_CONFIG_IDENTITY_NONE, "none", NULL,
	  identities,
	  "none, cn, san_dns, san_uri, san_email or sha256: the field of a verified client "
	  "certificate that names its user; such a client needs no password, and a username "
	  "it sends must equal that name" },
	{ "redis", K_URL, OFF(redis), 0, 0, 0, "", NULL, NULL,
	  "the state store in Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
	  "unix:///PATH[?db=N&password=P]; retained messages live there, shared by every node "
	  "on it; empty: the embedded store (memory, the snapshot in STATE_DIR)" },
	{ "redis_sentinel", K_URL, OFF(redis_sentinel), 0, 0, 0, "", NULL, NULL,
	  "with redis: MASTER_NAME HOST[:PORT][,HOST[:PORT]...] (up to 16 sentinels, port "
	  "26379 by default): the sentinels are asked where the master of that name is, and "
	  "the node follows it through failovers; redis then gives only the password and db "
	  "(its host and port are ignored)" },
	{ "redis_sentinel_password", K_PATH, OFF(redis_sentinel_password), 0, 0, 0, "", NULL, NULL,
	  "the password the sentinels ask for (their requirepass); unset: no AUTH on them" },
	{ "redis_prefix", K_PATH, OFF(redis_prefix), 0, 0, 0, "bw", NULL, NULL,
	  "the prefix of every Redis key and channel (1-64 of A-Z a-z 0-9 _ . -): nodes that "
	  "share one must use one Redis database or prefix per cluster" },
	{ "redis_retained_queue", K_UINT, OFF(redis_retained_queue), 1, 10000000, 10000, NULL,
	  "writes", NULL,
	  "retained writes a worker holds while Redis is down or slow (sent or waiting to be); "
	  "past it a retained PUBLISH is refused (QoS 1/2: 0x97, 3.1.1: disconnect; QoS 0: "
	  "dropped)" },
	{ "redis_session_queue", K_UINT, OFF(redis_session_queue), 1, 10000000, 100000, NULL,
	  "writes", NULL,
	  "session writes a worker holds while Redis is down or slow (sent or waiting to be); "
	  "past it new persistent work is refused: a CONNECT of a persistent session 0x88, a "
	  "QoS 1/2 PUBLISH with session_durability sync 0x97 (3.1.1: disconnect)" },
	{ "session_durability", K_ENUM, OFF(session_durability), 0, 0, BW_CONFIG_DURABILITY_SYNC,
	  "sync", NULL, durabilities,
	  "with redis: none (subscriptions, will and expiry in Redis, messages only on the "
	  "node), async (messages of persistent sessions written to Redis too, the publisher "
	  "not waiting) or sync (a QoS 1/2 message is in Redis for every persistent session "
	  "it goes to before the publisher gets PUBACK/PUBREC)" },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Where a value came from, for error messages. */
struct origin {
	const char *file; /* file name, or NULL */
	unsigned line;
	const char *env; /* environment variable name, or NULL */
};

static int fail(char *err, size_t n, const struct origin *o, const char *key, const char *fmt, ...)
{
	char msg[BW_CONFIG_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o->file)
		snprintf(err, n, "%s:%u: %s: %s", o->file, o->line, key, msg);
	else if (o->env)
		snprintf(err, n, "environment %s: %s: %s", o->env, key, msg);
	else
		snprintf(err, n, "--set %s: %s", key, msg);
	return -1;
}

/* Other names a key answers to: the ones the security design first gave them. */
static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "jwt_keys", "jwt_key_file" },
	{ "jwks_file", "jwt_jwks_file" },
};

static const struct key_def *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strlen(aliases[i].alias) == len && !memcmp(aliases[i].alias, name, len)) {
			name = aliases[i].name;
			len = strlen(name);
			break;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		if (strlen(keys[i].name) == len && !memcmp(keys[i].name, name, len))
			return &keys[i];
	}
	return NULL;
}

void bw_config_defaults(struct bw_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		if (k->type == K_PATH)
			snprintf((char *)c + k->offset, BW_CONFIG_PATH_MAX, "%s", k->def_text);
		else if (k->type == K_URL)
			snprintf((char *)c + k->offset, BW_CONFIG_URL_MAX, "%s", k->def_text);
		else if (k->type != K_LISTEN)
			*(uint32_t *)((char *)c + k->offset) = k->def;
	}
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* A decimal number with an optional binary suffix (sizes only). */
static int parse_number(const char *v, bool size, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno)
		return -1;
	if (size && *end) {
		unsigned shift = 0;
		switch (tolower((unsigned char)*end)) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		default:
			return -1;
		}
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (n > (UINT64_MAX >> shift))
			return -1;
		n <<= shift;
	}
	if (*end)
		return -1;
	*out = n;
	return 0;
}

/* "A.B.C.D:PORT", "[V6]:PORT" or "*:PORT" (all IPv4 addresses). */
static int parse_addr(const char *text, struct bw_listener_config *l)
{
	char host[64];
	const char *colon;
	uint64_t port;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
			return -1;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = 0;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon || (size_t)(colon - text) >= sizeof(host))
			return -1;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = 0;
	}
	if (parse_number(colon + 1, false, &port) || port > 65535)
		return -1;

	memset(&l->addr, 0, sizeof(l->addr));
	if (text[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -1;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		l->addr_len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
		if (!strcmp(host, "*"))
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -1;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		l->addr_len = sizeof(*a4);
	}
	snprintf(l->addr_text, sizeof(l->addr_text), "%s", text);
	return 0;
}

/* Splits off the next space-separated word of *s (modified in place). */
static char *next_word(char **s)
{
	char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	char *w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = 0;
	*s = p;
	return w;
}

/* The listener options that override a global tls_* key of the same name. */
static const char *const tls_options[] = { "tls_cert",    "tls_key",         "tls_client_ca",
	                                   "tls_crl",     "tls_ciphers",     "tls_ciphersuites",
	                                   "tls_groups",  "tls_client_auth", "tls_min_version",
	                                   "tls_identity" };

/* Applies listener option `name=v` to its TLS settings; 1 when name is none of them. */
static int set_tls_option(struct bw_tls_settings *t, const char *name, const char *v,
                          const struct origin *o, char *err, size_t n)
{
	char *str[] = { t->cert,    t->key,          t->client_ca, t->crl,
		        t->ciphers, t->ciphersuites, t->groups };
	size_t i = 0;

	while (i < sizeof(tls_options) / sizeof(tls_options[0]) && strcmp(name, tls_options[i]))
		i++;
	if (i < sizeof(str) / sizeof(str[0])) {
		if (!*v)
			return fail(err, n, o, "listen", "%s needs a value", name);
		if (strlen(v) >= BW_CONFIG_PATH_MAX)
			return fail(err, n, o, "listen", "%s is longer than %d bytes", name,
			            BW_CONFIG_PATH_MAX - 1);
		snprintf(str[i], BW_CONFIG_PATH_MAX, "%s", v);
		return 0;
	}
	if (i == sizeof(tls_options) / sizeof(tls_options[0]))
		return 1;
	i -= sizeof(str) /
	     sizeof(str[0]); /* 0: tls_client_auth, 1: tls_min_version, 2: tls_identity */
	const char *const *names = i == 0 ? client_auths : i == 1 ? tls_versions : identities;
	uint32_t *dst = i == 0 ? &t->client_auth : i == 1 ? &t->min_version : &t->identity;
	for (uint32_t k = 0; names[k]; k++) {
		if (!strcmp(v, names[k])) {
			*dst = k;
			return 0;
		}
	}
	return fail(err, n, o, "listen", "%s must be %s, not '%s'", name,
	            i == 0   ? "none, optional or required"
	            : i == 1 ? "1.2 or 1.3"
	                     : "none, cn, san_dns, san_uri, san_email or sha256",
	            v);
}

/* "FILE:LINE", "environment NAME" or "--set", for errors found later. */
static void origin_text(const struct origin *o, char *buf, size_t cap)
{
	if (o->file)
		snprintf(buf, cap, "%s:%u", o->file, o->line);
	else if (o->env)
		snprintf(buf, cap, "environment %s", o->env);
	else
		snprintf(buf, cap, "--set");
}

/* resolve=: some of ca, sni, claim, username, listener, each once. */
static int parse_signals(const char *v, uint32_t *out)
{
	static const char *const names[] = { "ca", "sni", "claim", "username", "listener" };
	char copy[256];
	uint32_t mask = 0;
	if (strlen(v) >= sizeof(copy))
		return -1;
	snprintf(copy, sizeof(copy), "%s", v);
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		uint32_t i = 0;
		while (i < 5 && strcmp(t, names[i]))
			i++;
		if (i == 5 || (mask & (1u << i)))
			return -1;
		mask |= 1u << i;
	}
	*out = mask;
	return mask ? 0 : -1;
}

static int parse_listen(struct bw_config *c, char *value, const struct origin *o, char *err,
                        size_t n)
{
	struct bw_listener_config l;
	char *kind = next_word(&value), *addr = next_word(&value), *opt;

	memset(&l, 0, sizeof(l));
	snprintf(l.tenant, sizeof(l.tenant), "default");
	l.resolve = BW_SIGNAL_ALL;
	l.tls_set.client_auth = l.tls_set.min_version = l.tls_set.identity = BW_CONFIG_INHERIT;
	origin_text(o, l.origin, sizeof(l.origin));
	if (!kind || !addr)
		return fail(err, n, o, "listen", "expected `KIND ADDR:PORT [OPTION=VALUE...]`");
	if (!strcmp(kind, "mqtt") || !strcmp(kind, "mqtts")) {
		l.kind = BW_LISTEN_MQTT;
		l.tls = kind[4] == 's';
	} else if (!strcmp(kind, "http")) {
		l.kind = BW_LISTEN_HTTP;
	} else {
		return fail(err, n, o, "listen", "unknown listener kind '%s' (mqtt, mqtts or http)",
		            kind);
	}
	if (parse_addr(addr, &l))
		return fail(err, n, o, "listen",
		            "'%s' is not ADDR:PORT (IPv4, [IPv6] or *, port 0-65535)", addr);
	while ((opt = next_word(&value))) {
		char *eq = strchr(opt, '=');
		if (!eq)
			return fail(err, n, o, "listen", "option '%s' is not NAME=VALUE", opt);
		*eq = 0;
		const char *v = eq + 1;
		int rc = 1;
		if (l.kind == BW_LISTEN_MQTT && !strcmp(opt, "tenant")) {
			if (bw_tenant_name_check(v, strlen(v)))
				return fail(err, n, o, "listen",
				            "tenant '%s' is not a DNS label (a-z, 0-9, '-')", v);
			snprintf(l.tenant, sizeof(l.tenant), "%s", v);
			l.tenant_set = true;
			rc = 0;
		} else if (l.kind == BW_LISTEN_MQTT && !strcmp(opt, "resolve")) {
			if (parse_signals(v, &l.resolve))
				return fail(err, n, o, "listen",
				            "resolve=%s: a comma-separated list of ca, sni, claim, "
				            "username and listener, each once",
				            v);
			rc = 0;
		} else if (l.kind == BW_LISTEN_MQTT && !strcmp(opt, "allow_anonymous")) {
			if (parse_bool(v, &l.allow_anonymous))
				return fail(err, n, o, "listen",
				            "allow_anonymous must be true or false, not '%s'", v);
			rc = 0;
		} else if (l.tls) {
			rc = set_tls_option(&l.tls_set, opt, v, o, err, n);
			if (rc < 0)
				return rc;
		}
		if (rc)
			return fail(err, n, o, "listen", "unknown option '%s' for a %s listener",
			            opt, kind);
	}
	if (c->listener_count == BW_CONFIG_LISTENERS_MAX)
		return fail(err, n, o, "listen", "more than %d listeners", BW_CONFIG_LISTENERS_MAX);
	c->listeners[c->listener_count++] = l;
	return 0;
}

static int set_key(struct bw_config *c, const struct key_def *k, char *value,
                   const struct origin *o, char *err, size_t n)
{
	uint64_t v;

	switch (k->type) {
	case K_LISTEN:
		return parse_listen(c, value, o, err, n);
	case K_PATH:
		if (!*value)
			return fail(err, n, o, k->name, "needs a value");
		if (strlen(value) >= BW_CONFIG_PATH_MAX)
			return fail(err, n, o, k->name, "longer than %d bytes",
			            BW_CONFIG_PATH_MAX - 1);
		if (k->offset == OFF(redis_prefix) && bw_keys_prefix_check(value))
			return fail(err, n, o, k->name,
			            "'%s' is not 1 to %d of A-Z, a-z, 0-9, '_', '.' and '-'", value,
			            BW_KEYS_PREFIX_MAX);
		snprintf((char *)c + k->offset, BW_CONFIG_PATH_MAX, "%s", value);
		return 0;
	case K_URL: {
		struct bw_redis_config rc;
		struct bw_sentinel_config sc;
		char why[BW_CONFIG_ERROR_MAX];
		if (!*value)
			return fail(err, n, o, k->name, "needs a value");
		if (strlen(value) >= BW_CONFIG_URL_MAX)
			return fail(err, n, o, k->name, "longer than %d bytes",
			            BW_CONFIG_URL_MAX - 1);
		if (k->offset == OFF(redis_sentinel)) {
			if (bw_sentinel_parse(&sc, value, why, sizeof(why)) < 0)
				return fail(err, n, o, k->name, "%s", why);
		} else if (bw_redis_url_parse(&rc, value, why, sizeof(why)) < 0) {
			/* Its errors never quote the password; they start "redis: ". */
			return fail(err, n, o, k->name, "%s",
			            strncmp(why, "redis: ", 7) ? why : why + 7);
		}
		snprintf((char *)c + k->offset, BW_CONFIG_URL_MAX, "%s", value);
		return 0;
	}
	case K_ORDER: {
		uint32_t packed = 0, used = 0, pos = 0;
		char copy[LINE_MAX_BYTES];
		snprintf(copy, sizeof(copy), "%s", value);
		for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t;
		     t = strtok_r(NULL, ", ", &save)) {
			uint32_t i = 0;
			while (k->names[i] && strcmp(t, k->names[i]))
				i++;
			if (!k->names[i])
				return fail(err, n, o, k->name, "'%s' is not one of %s", t,
				            k->def_text);
			if (used & (1u << i))
				return fail(err, n, o, k->name, "'%s' is named twice", t);
			used |= 1u << i;
			packed |= (i + 1) << (4 * pos++);
		}
		if (!packed)
			return fail(err, n, o, k->name, "needs at least one of %s", k->def_text);
		*(uint32_t *)((char *)c + k->offset) = packed;
		return 0;
	}
	case K_ENUM:
		for (uint32_t i = 0; k->names[i]; i++) {
			if (!strcmp(value, k->names[i])) {
				*(uint32_t *)((char *)c + k->offset) = i;
				return 0;
			}
		}
		return fail(err, n, o, k->name, "'%s' is not one of the allowed values (%s)", value,
		            k->help);
	case K_UINT:
	case K_SIZE:
		if (parse_number(value, k->type == K_SIZE, &v))
			return fail(err, n, o, k->name, "'%s' is not a %s", value,
			            k->type == K_SIZE ? "size (a number, optionally with k, m or g)"
			                              : "whole number");
		if (v < k->min || v > k->max)
			return fail(err, n, o, k->name, "%s is out of range (%u..%u %s)", value,
			            k->min, k->max, k->unit);
		*(uint32_t *)((char *)c + k->offset) = (uint32_t)v;
		return 0;
	}
	return 0;
}

/* Trims spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		s[--len] = 0;
	return s;
}

int bw_config_load_text(struct bw_config *c, const char *name, const char *text, char *err,
                        size_t err_len)
{
	char line[LINE_MAX_BYTES + 2];
	unsigned seen[NKEYS] = { 0 }; /* line each single key was set on */
	struct origin o = { .file = name };
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		o.line++;
		if (len > LINE_MAX_BYTES)
			return fail(err, err_len, &o, "(line)", "longer than %d bytes",
			            LINE_MAX_BYTES);
		memcpy(line, p, len);
		line[len] = 0;
		p += len + (eol ? 1 : 0);

		/* A comment starts the line or follows a blank. */
		for (char *h = line; (h = strchr(h, '#')); h++) {
			if (h == line || h[-1] == ' ' || h[-1] == '\t') {
				*h = 0;
				break;
			}
		}
		char *s = trim(line);
		if (!*s)
			continue;
		char *key = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		size_t key_len = (size_t)(s - key);
		char *value = trim(s);
		const struct key_def *k = find_key(key, key_len);
		key[key_len] = 0;
		if (!k)
			return fail(err, err_len, &o, key, "unknown key");
		if (!*value)
			return fail(err, err_len, &o, key, "needs a value");
		size_t idx = (size_t)(k - keys);
		if (k->type != K_LISTEN && seen[idx])
			return fail(err, err_len, &o, key, "already set on line %u", seen[idx]);
		seen[idx] = o.line;
		if (set_key(c, k, value, &o, err, err_len))
			return -1;
	}
	return 0;
}

int bw_config_load_file(struct bw_config *c, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(FILE_MAX_BYTES + 1);
	if (!text) {
		fclose(f);
		snprintf(err, err_len, "%s: out of memory", path);
		return -1;
	}
	size_t n = fread(text, 1, FILE_MAX_BYTES + 1, f);
	int rc = -1;
	if (ferror(f))
		snprintf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
	else if (n > FILE_MAX_BYTES)
		snprintf(err, err_len, "%s: larger than %u bytes", path, FILE_MAX_BYTES);
	else if (memchr(text, 0, n))
		snprintf(err, err_len, "%s: holds a NUL byte; not a text file", path);
	else {
		text[n] = 0;
		rc = bw_config_load_text(c, path, text, err, err_len);
	}
	free(text);
	fclose(f);
	return rc;
}

int bw_config_load_env(struct bw_config *c, char *const *envp, char *err, size_t err_len)
{
	static const char prefix[] = "BULWARK_";

	for (; envp && *envp; envp++) {
		const char *e = *envp;
		const char *eq = strchr(e, '=');
		if (strncmp(e, prefix, sizeof(prefix) - 1) || !eq)
			continue;
		char name[128], key[128], value[LINE_MAX_BYTES + 1];
		size_t nlen = (size_t)(eq - e);
		struct origin o = { .env = name };
		snprintf(name, sizeof(name), "%.*s", (int)nlen, e);
		size_t klen = nlen - (sizeof(prefix) - 1);
		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
		for (size_t i = 0; i < klen; i++)
			key[i] = (char)tolower((unsigned char)e[sizeof(prefix) - 1 + i]);
		key[klen] = 0;
		const struct key_def *k = find_key(key, klen);
		if (!k)
			return fail(err, err_len, &o, key, "unknown key");
		if (strlen(eq + 1) > LINE_MAX_BYTES)
			return fail(err, err_len, &o, key, "longer than %d bytes", LINE_MAX_BYTES);
		snprintf(value, sizeof(value), "%s", eq + 1);
		if (k->type == K_LISTEN) {
			c->listener_count = 0;
			for (char *save = NULL, *part = strtok_r(value, ";", &save); part;
			     part = strtok_r(NULL, ";", &save)) {
				if (set_key(c, k, trim(part), &o, err, err_len))
					return -1;
			}
			continue;
		}
		if (set_key(c, k, trim(value), &o, err, err_len))
			return -1;
	}
	return 0;
}

int bw_config_set(struct bw_config *c, const char *assignment, char *err, size_t err_len)
{
	char value[LINE_MAX_BYTES + 1];
	struct origin o = { 0 };
	const char *eq = strchr(assignment, '=');

	if (!eq) {
		snprintf(err, err_len, "--set %s: expected key=value", assignment);
		return -1;
	}
	char key[128];
	snprintf(key, sizeof(key), "%.*s", (int)(eq - assignment), assignment);
	const struct key_def *k = find_key(assignment, (size_t)(eq - assignment));
	if (!k)
		return fail(err, err_len, &o, key, "unknown key");
	if (strlen(eq + 1) > LINE_MAX_BYTES)
		return fail(err, err_len, &o, key, "longer than %d bytes", LINE_MAX_BYTES);
	snprintf(value, sizeof(value), "%s", eq + 1);
	if (k->type == K_LISTEN && !c->listeners_from_set) {
		c->listener_count = 0;
		c->listeners_from_set = true;
	}
	return set_key(c, k, trim(value), &o, err, err_len);
}

void bw_config_listener_tls(const struct bw_config *c, const struct bw_listener_config *l,
                            struct bw_tls_settings *out)
{
	const struct bw_tls_settings *own = &l->tls_set, *all = &c->tls;

	*out = *all;
	if (own->cert[0])
		memcpy(out->cert, own->cert, sizeof(out->cert));
	if (own->key[0])
		memcpy(out->key, own->key, sizeof(out->key));
	if (own->client_ca[0])
		memcpy(out->client_ca, own->client_ca, sizeof(out->client_ca));
	if (own->crl[0])
		memcpy(out->crl, own->crl, sizeof(out->crl));
	if (own->ciphers[0])
		memcpy(out->ciphers, own->ciphers, sizeof(out->ciphers));
	if (own->ciphersuites[0])
		memcpy(out->ciphersuites, own->ciphersuites, sizeof(out->ciphersuites));
	if (own->groups[0])
		memcpy(out->groups, own->groups, sizeof(out->groups));
	if (own->client_auth != BW_CONFIG_INHERIT)
		out->client_auth = own->client_auth;
	if (own->min_version != BW_CONFIG_INHERIT)
		out->min_version = own->min_version;
	if (own->identity != BW_CONFIG_INHERIT)
		out->identity = own->identity;
}

/* What an mqtts listener lacks, as "ORIGIN: listen: ..." in err; 0 when nothing. */
static int validate_tls(const struct bw_config *c, const struct bw_listener_config *l, char *err,
                        size_t err_len)
{
	struct bw_tls_settings t;
	const char *missing = NULL;

	bw_config_listener_tls(c, l, &t);
	if (!t.cert[0])
		missing = "tls_cert";
	else if (!t.key[0])
		missing = "tls_key";
	if (missing) {
		snprintf(err, err_len,
		         "%s: listen: mqtts %s has no %s (give %s=FILE on the listener or set the "
		         "%s key)",
		         l->origin, l->addr_text, missing, missing, missing);
		return -1;
	}
	if (t.client_auth != BW_CONFIG_AUTH_NONE && !t.client_ca[0]) {
		snprintf(err, err_len,
		         "%s: listen: mqtts %s: tls_client_auth=%s needs tls_client_ca (the CAs "
		         "client certificates must chain to)",
		         l->origin, l->addr_text, client_auths[t.client_auth]);
		return -1;
	}
	return 0;
}

int bw_config_validate(const struct bw_config *c, char *err, size_t err_len)
{
	if (c->output_queue_soft > c->output_queue_hard) {
		snprintf(err, err_len, "output_queue_soft: %u is above output_queue_hard (%u)",
		         c->output_queue_soft, c->output_queue_hard);
		return -1;
	}
	char sock[2 * BW_CONFIG_PATH_MAX];
	bw_config_admin_socket(c, sock, sizeof(sock));
	if (strlen(sock) > BW_CONFIG_SOCKET_PATH_MAX) {
		snprintf(err, err_len,
		         "admin_socket: %s is longer than %d bytes, a Unix socket's limit%s", sock,
		         BW_CONFIG_SOCKET_PATH_MAX,
		         c->admin_socket[0] ? ""
		                            : " (it is STATE_DIR/admin.sock: set admin_socket)");
		return -1;
	}
	if (c->redis_sentinel[0] && strncmp(c->redis, "redis://", 8) != 0) {
		snprintf(err, err_len,
		         "redis_sentinel: needs redis set to a redis:// address, for the password "
		         "and db (its host and port are ignored: e.g. "
		         "redis://:PASSWORD@sentinel/0)");
		return -1;
	}
	if (c->redis_sentinel_password[0] && !c->redis_sentinel[0]) {
		snprintf(err, err_len, "redis_sentinel_password: set without redis_sentinel");
		return -1;
	}
	bool mqtt = false;
	for (uint32_t i = 0; i < c->listener_count; i++) {
		mqtt |= c->listeners[i].kind == BW_LISTEN_MQTT;
		if (c->listeners[i].tls && validate_tls(c, &c->listeners[i], err, err_len))
			return -1;
	}
	if (!mqtt) {
		snprintf(err, err_len,
		         "listen: no MQTT listener configured (add e.g. `listen mqtt "
		         "127.0.0.1:1883`)");
		return -1;
	}
	return 0;
}

void bw_config_admin_socket(const struct bw_config *c, char *out, size_t cap)
{
	if (c->admin_socket[0])
		snprintf(out, cap, "%s", c->admin_socket);
	else
		snprintf(out, cap, "%s/admin.sock", c->state_dir);
}

void bw_config_describe(FILE *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		char def[32];
		const char *d = k->def_text;
		if (d && !*d)
			d = "(unset)";
		if (!d) {
			snprintf(def, sizeof(def), "%u", k->def);
			d = def;
		}
		fprintf(out, "%-30s default %s%s%s\n    %s\n", k->name, d, k->unit ? " " : "",
		        k->unit ? k->unit : "", k->help);
	}
}
