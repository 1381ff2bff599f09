/*
 * The node's configuration: `key value` lines with `#` comments (the
 * Redis/Mosquitto convention), overridable per key by the environment
 * (BULWARK_<KEY>) and by `--set key=value`, applied in that order. Every key
 * is a row of one table (config.c) that holds its type, range, default and
 * unit, so parsing, defaults and `bulwark --help-config` cannot disagree.
 *
 * Errors name where the bad value came from and the key: "FILE:LINE: KEY:
 * ...", "environment BULWARK_KEY: ..." or "--set KEY: ...". The node does
 * not start on any error.
 */
#ifndef BW_NODE_CONFIG_H
#define BW_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "node/log.h"

#define BW_CONFIG_LISTENERS_MAX 16
#define BW_CONFIG_NAME_MAX      64
#define BW_CONFIG_PATH_MAX      256
#define BW_CONFIG_ERROR_MAX     512
#define BW_CONFIG_URL_MAX       1024 /* redis: a URL with a password of up to 255 bytes */

enum bw_listener_kind {
	BW_LISTEN_MQTT,
	BW_LISTEN_HTTP,
};

/* A TLS setting a listener leaves to the global key. */
#define BW_CONFIG_INHERIT UINT32_MAX

/* tls_client_auth values (indexes of its names: none, optional, required). */
/* The ways to authenticate that auth_chain lists. */
enum bw_config_method {
	BW_CONFIG_METHOD_CERTIFICATE,
	BW_CONFIG_METHOD_TOKEN,
	BW_CONFIG_METHOD_PASSWORD,
};
#define BW_CONFIG_CHAIN_DEFAULT 0x321u /* certificate, token, password */

/* The signals that name a client's tenant (a listener's resolve= option): bits. */
enum bw_config_signal {
	BW_SIGNAL_CA = 1u << 0,       /* the verified client certificate's issuing CA */
	BW_SIGNAL_SNI = 1u << 1,      /* the TLS SNI hostname */
	BW_SIGNAL_CLAIM = 1u << 2,    /* a claim of the JWT (tenant_claim) */
	BW_SIGNAL_USERNAME = 1u << 3, /* a username "name@tenant" */
	BW_SIGNAL_LISTENER = 1u << 4, /* the listener's own tenant= */
	BW_SIGNAL_ALL = 0x1fu,
};

/* Which field of a verified client certificate names its user. */
/* What a session does with a message past max_queued_messages (queue_full). */
enum bw_config_queue_full {
	BW_CONFIG_QUEUE_REFUSE_NEW,  /* the new message is dropped */
	BW_CONFIG_QUEUE_DROP_OLDEST, /* the oldest queued one is */
};

/* What session_durability asks of persistent sessions' messages (with redis). */
enum bw_config_durability {
	BW_CONFIG_DURABILITY_NONE,  /* not written: only the session record is */
	BW_CONFIG_DURABILITY_ASYNC, /* written, the publisher not waiting */
	BW_CONFIG_DURABILITY_SYNC,  /* written before the publisher's PUBACK/PUBREC */
};

enum bw_config_identity {
	BW_CONFIG_IDENTITY_NONE,
	BW_CONFIG_IDENTITY_CN,
	BW_CONFIG_IDENTITY_SAN_DNS,
	BW_CONFIG_IDENTITY_SAN_URI,
	BW_CONFIG_IDENTITY_SAN_EMAIL,
	BW_CONFIG_IDENTITY_SHA256,
};

enum bw_config_client_auth {
	BW_CONFIG_AUTH_NONE,
	BW_CONFIG_AUTH_OPTIONAL,
	BW_CONFIG_AUTH_REQUIRED,
};

/*
 * TLS settings: the global tls_* keys, and a listener's own options, whose
 * empty strings and BW_CONFIG_INHERIT mean "the global key's".
 */
struct bw_tls_settings {
	char cert[BW_CONFIG_PATH_MAX];
	char key[BW_CONFIG_PATH_MAX];
	char client_ca[BW_CONFIG_PATH_MAX];
	char crl[BW_CONFIG_PATH_MAX];
	char ciphers[BW_CONFIG_PATH_MAX];      /* TLS 1.2 cipher list */
	char ciphersuites[BW_CONFIG_PATH_MAX]; /* TLS 1.3 */
	char groups[BW_CONFIG_PATH_MAX];       /* key exchange groups */
	uint32_t client_auth;                  /* enum bw_config_client_auth */
	uint32_t min_version;                  /* 0: TLS 1.2, 1: TLS 1.3 */
	uint32_t identity;                     /* enum bw_config_identity */
};

struct bw_listener_config {
	enum bw_listener_kind kind;
	bool tls; /* mqtts: an MQTT listener over TLS */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char addr_text[80];              /* as written, for logs */
	char tenant[BW_CONFIG_NAME_MAX]; /* "default" unless tenant= says */
	bool tenant_set;                 /* tenant= said: a signal that must agree */
	uint32_t resolve;                /* enum bw_config_signal bits; resolve= */
	bool allow_anonymous;
	struct bw_tls_settings tls_set; /* its own tls_* options (see bw_config_listener_tls) */
	/* Where it was configured, for errors: "FILE:LINE", "environment ...", "--set". */
	char origin[BW_CONFIG_PATH_MAX + 32];
};

struct bw_config {
	struct bw_listener_config listeners[BW_CONFIG_LISTENERS_MAX];
	uint32_t listener_count;
	uint32_t workers; /* 0: one per online CPU */
	char state_dir[BW_CONFIG_PATH_MAX];
	uint32_t log_level;                /* enum bw_log_level */
	uint32_t log_format;               /* enum bw_log_format */
	char log_file[BW_CONFIG_PATH_MAX]; /* empty: standard error */
	char password_file[BW_CONFIG_PATH_MAX];
	char acl_file[BW_CONFIG_PATH_MAX];
	uint32_t auth_threads;
	uint32_t auth_chain; /* enum bw_config_method + 1, 4 bits each, first first */
	uint32_t auth_backoff_after;
	uint32_t auth_backoff_max;
	char jwt_jwks_file[BW_CONFIG_PATH_MAX];
	char jwt_key_file[BW_CONFIG_PATH_MAX];
	char jwt_key_alg[BW_CONFIG_PATH_MAX];
	char jwt_issuers[BW_CONFIG_PATH_MAX];
	char jwt_audiences[BW_CONFIG_PATH_MAX];
	uint32_t jwt_leeway;
	uint32_t jwt_grace;
	char jwt_username_claim[BW_CONFIG_PATH_MAX];
	uint32_t max_packet_size;
	uint32_t max_inflight;
	uint32_t max_queued_messages;
	uint32_t queue_full; /* enum bw_config_queue_full */
	uint32_t max_keepalive;
	uint32_t max_topic_length;
	uint32_t max_topic_levels;
	uint32_t max_subscriptions_per_client;
	uint32_t max_connections;
	uint32_t sys_interval; /* seconds; 0: no $SYS statistics */
	uint32_t max_topic_aliases;
	uint32_t output_queue_soft;
	uint32_t output_queue_hard;
	uint32_t output_queue_budget; /* a worker */
	uint32_t max_retained_messages;
	uint32_t max_retained_bytes;
	char postgres[BW_CONFIG_PATH_MAX]; /* the tenancy store; empty: embedded */
	char tenant_claim[BW_CONFIG_PATH_MAX];
	uint32_t max_tenants;
	uint32_t max_qos;
	uint32_t max_session_expiry; /* seconds; 0: no limit */
	uint32_t tenant_max_connections;
	uint32_t tenant_max_sessions;
	uint32_t tenant_msgs_per_s;
	uint32_t tenant_bytes_per_s;
	uint32_t client_msgs_per_s;
	uint32_t client_bytes_per_s;
	struct bw_tls_settings tls;            /* the global tls_* keys */
	bool listeners_from_set;               /* a --set listen has replaced the listeners */
	char admin_socket[BW_CONFIG_PATH_MAX]; /* empty: STATE_DIR/admin.sock */
	uint32_t admin_uid;                    /* BW_CONFIG_ID_UNSET: the node's own uid */
	uint32_t admin_gid;                    /* BW_CONFIG_ID_UNSET: none */
	char audit_log[BW_CONFIG_PATH_MAX];    /* empty: the node's log */
	char redis[BW_CONFIG_URL_MAX];         /* the state store; empty: embedded */
	/* MASTER_NAME HOST:PORT,... (empty: none), and the password the sentinels want. */
	char redis_sentinel[BW_CONFIG_URL_MAX];
	char redis_sentinel_password[BW_CONFIG_PATH_MAX];
	char redis_prefix[BW_CONFIG_PATH_MAX]; /* of every key (node/state/keys.h) */
	uint32_t redis_retained_queue;         /* retained writes a worker holds for Redis */
	uint32_t redis_session_queue;          /* session writes a worker holds for Redis */
	uint32_t session_durability;           /* enum bw_config_durability */
};

/* admin_uid and admin_gid when not set. */
#define BW_CONFIG_ID_UNSET UINT32_MAX

/* Longest admin socket path (a Unix socket address holds 108 bytes with its NUL). */
#define BW_CONFIG_SOCKET_PATH_MAX 107

/* Sets every key to its default (no listeners). */
void bw_config_defaults(struct bw_config *c);

/*
 * Applies the file at `path` on top of *c. Returns 0, or -1 with a message
 * naming the file, line and key in err (err_len bytes).
 */
int bw_config_load_file(struct bw_config *c, const char *path, char *err, size_t err_len);

/*
 * Applies the text of a config file held in memory; `name` stands for the
 * file in messages. Same contract as bw_config_load_file().
 */
int bw_config_load_text(struct bw_config *c, const char *name, const char *text, char *err,
                        size_t err_len);

/*
 * Applies BULWARK_<KEY> variables from envp (NULL-terminated "K=V"
 * strings). A variable for a repeatable key (listen) holds entries
 * separated by ';' and replaces the file's entries. Variables starting with
 * BULWARK_ that name no key are errors, so a typo cannot go unnoticed.
 */
int bw_config_load_env(struct bw_config *c, char *const *envp, char *err, size_t err_len);

/*
 * Applies one `--set key=value`. The first --set of a repeatable key
 * replaces the entries from the file and environment; later ones add to it.
 */
int bw_config_set(struct bw_config *c, const char *assignment, char *err, size_t err_len);

/*
 * Checks what no single key can: at least one MQTT listener; an mqtts
 * listener has a certificate and key, and a client CA when it asks for
 * client certificates (its errors start with where the listener was
 * configured: "bulwark.conf:7: listen: ..."); redis_sentinel goes with a
 * redis:// address, redis_sentinel_password with redis_sentinel.
 */
int bw_config_validate(const struct bw_config *c, char *err, size_t err_len);

/* The TLS settings listener l uses: each of its own, else the global key's. */
void bw_config_listener_tls(const struct bw_config *c, const struct bw_listener_config *l,
                            struct bw_tls_settings *out);

/* The admin socket's path: admin_socket, or STATE_DIR/admin.sock when it is unset. */
void bw_config_admin_socket(const struct bw_config *c, char *out, size_t cap);

/* Writes every key with its default, unit and meaning (for --help-config). */
void bw_config_describe(FILE *out);

#endif
