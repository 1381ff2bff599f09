/*
 * bulwarkctl's command table: every command of docs/admin-protocol.md as
 * words, arguments, help, checks and a view (see ctl_cmds.h). Adding a
 * command is adding an entry here; ctl_build.c does the parsing.
 */
#include "admin/ctl_cmds.h"
#include "admin/ctl_views.h"

#include <stdint.h>
#include <string.h>

/*
 * The table's vocabulary. clang-format cannot lay out macros whose bodies
 * are braced initializers, so this block keeps its hand layout.
 */
/* clang-format off */
#define END { 0 }
#define POS(NAME, KEY) { .name = NAME, .key = KEY, .kind = BW_CTL_STR }
#define POS_OPTIONAL(NAME, KEY) \
	{ .name = NAME, .key = KEY, .kind = BW_CTL_STR, .optional = true }
#define PARAMS(...) ((const struct bw_ctl_param[]){ __VA_ARGS__, END })
#define OPT(FLAG, KEY, KIND, META, HELP) \
	{ .name = FLAG, .key = KEY, .kind = KIND, .meta = META, .help = HELP }
#define COLS(...) \
	.cols = (const struct bw_ctl_col[]){ __VA_ARGS__ }, \
	.ncols = sizeof((const struct bw_ctl_col[]){ __VA_ARGS__ }) / sizeof(struct bw_ctl_col)

/* The largest quota values the tenancy model stores (tenancy/model.h). */
#define U32_MAX    4294967295LL
#define BYTES_MAX  INT64_MAX
#define PACKET_MAX 268435455LL

#define QUOTA(FLAG, KEY, MAX, HELP) \
	{ .name = FLAG, .key = KEY, .kind = BW_CTL_UINT, .meta = "N", .parent = "quotas", \
	  .max = MAX, .help = HELP }

/* The quota options of tenant create and update; 0 is the node's default. */
#define QUOTA_OPTS \
	QUOTA("--connections", "connections", U32_MAX, "concurrent connections"), \
	QUOTA("--persistent-sessions", "persistent_sessions", U32_MAX, \
	      "sessions kept while disconnected"), \
	QUOTA("--tenant-msgs-per-s", "tenant_msgs_per_s", U32_MAX, "PUBLISH in a second, tenant"), \
	QUOTA("--tenant-bytes-per-s", "tenant_bytes_per_s", BYTES_MAX, \
	      "PUBLISH bytes in a second, tenant"), \
	QUOTA("--client-msgs-per-s", "client_msgs_per_s", U32_MAX, "PUBLISH in a second, client"), \
	QUOTA("--client-bytes-per-s", "client_bytes_per_s", BYTES_MAX, \
	      "PUBLISH bytes in a second, client"), \
	QUOTA("--client-subscriptions", "client_subscriptions", U32_MAX, \
	      "subscriptions of a client"), \
	QUOTA("--retained-msgs", "retained_msgs", U32_MAX, "retained messages"), \
	QUOTA("--retained-bytes", "retained_bytes", BYTES_MAX, "retained bytes"), \
	QUOTA("--max-qos", "max_qos", 2, "highest QoS, 0..2"), \
	QUOTA("--max-packet-bytes", "max_packet_bytes", PACKET_MAX, "largest packet"), \
	QUOTA("--max-session-expiry-s", "max_session_expiry_s", U32_MAX, \
	      "longest session expiry"), \
	QUOTA("--session-queued-msgs", "session_queued_msgs", U32_MAX, \
	      "messages queued for a session")

#define QUOTA_HELP \
	"Quota values are whole numbers; 0 means the node's default (for\n" \
	"--max-qos, 0 is QoS 0: its values are 0..2).\n"

#define RULE_HELP \
	"A rule is EFFECT ACTION FILTER: allow or deny; publish, subscribe or all;\n" \
	"an MQTT topic filter (%u, %c and %cn stand for the username, client id\n" \
	"and certificate common name). Deny beats allow; no matching rule denies.\n"

/* Arguments several commands share. */
#define P_NAME          PARAMS(POS("NAME", "name"))
#define P_TENANT        PARAMS(POS("TENANT", "tenant"))
#define P_TENANT_GROUP  PARAMS(POS("TENANT", "tenant"), POS("GROUP", "group"))
#define P_TENANT_USER   PARAMS(POS("TENANT", "tenant"), POS("USER", "user"))
#define P_TENANT_CLIENT PARAMS(POS("TENANT", "tenant"), POS("CLIENTID", "client_id"))
#define P_EFFECT \
	{ .name = "EFFECT", .key = "effect", .kind = BW_CTL_CHOICE, \
	  .choices = (const char *const[]){ "allow", "deny", NULL } }
#define P_ACTION \
	{ .name = "ACTION", .key = "action", .kind = BW_CTL_CHOICE, \
	  .choices = (const char *const[]){ "publish", "subscribe", "all", NULL } }

#define O_GROUP OPT("--group", "group", BW_CTL_STR, "G", "a security group's rules")
#define O_USER  OPT("--user", "user", BW_CTL_STR, "U", "a user's own rules")
#define O_HOST \
	OPT("--hostname", "hostnames", BW_CTL_LIST, "H", \
	    "a TLS SNI hostname of the tenant (repeat for more)")
#define O_ANONYMOUS \
	OPT("--allow-anonymous", "allow_anonymous", BW_CTL_TRUE, NULL, \
	    "let clients connect without credentials")

/* Views several commands share. */
#define V_TENANTS \
	{ .list = "tenants", .empty = "no tenants", \
	  COLS({ "NAME", "name" }, { "ID", "id" }, { "STATUS", "status" }, \
	       { "ANONYMOUS", "allow_anonymous" }, { "HOSTNAMES", "hostnames" }) }
#define V_RULES \
	{ .list = "rules", .empty = "no rules", \
	  COLS({ "OWNER", "owner" }, { "N", "n" }, { "RULE", "text" }) }
#define V_CAS \
	{ .list = "cas", .empty = "no CAs", \
	  COLS({ "FINGERPRINT", "fingerprint" }, { "SUBJECT", "subject" }, \
	       { "NOT_AFTER", "not_after" }) }
#define V_JWT { .member = "jwt" }
#define V_TENANT { .render = bw_ctl_view_tenant }

/* A table entry: its words, protocol name, synopsis and summary, then
 * designated members (.help, .pos, .opts, .check, .finish, .view). */
#define CMD(NOUN, VERB, NAME, SYNOPSIS, SUMMARY, ...) \
	{ .noun = NOUN, .verb = VERB, .cmd = NAME, .synopsis = SYNOPSIS, .summary = SUMMARY, \
	  __VA_ARGS__ }
/* clang-format on */

static const struct bw_ctl_param quota_opts[] = { QUOTA_OPTS, END };

static bool given(struct bw_ctl_call *c, const char *key)
{
	return json_object_get(c->args, key) != NULL;
}

static int check_delete(struct bw_ctl_call *c)
{
	if (json_is_true(json_object_get(c->args, "confirm")))
		return 0;
	return bw_ctl_usage(c,
	                    "deleting tenant '%s' disconnects its clients and removes its groups, "
	                    "users, sessions and retained messages; add --yes to do it",
	                    json_string_value(json_object_get(c->args, "name")));
}

static int check_update(struct bw_ctl_call *c)
{
	if (json_object_size(c->args) > 1)
		return 0;
	return bw_ctl_usage(c, "nothing to change: give --hostname, --allow-anonymous, "
	                       "--no-anonymous or a quota option");
}

/* acl add and acl del name the rule list's owner: a group or a user. */
static int check_owner(struct bw_ctl_call *c)
{
	bool g = given(c, "group"), u = given(c, "user");

	if (g && u)
		return bw_ctl_usage(c, "--group and --user exclude each other");
	if (!g && !u)
		return bw_ctl_usage(c, "whose rules? give --group G or --user U");
	return 0;
}

static int check_acl_list(struct bw_ctl_call *c)
{
	if (given(c, "group") && given(c, "user"))
		return bw_ctl_usage(c, "--group and --user exclude each other");
	return 0;
}

static int check_acl_del(struct bw_ctl_call *c)
{
	int rc = check_owner(c);

	if (rc == 0 && json_integer_value(json_object_get(c->args, "n")) == 0)
		return bw_ctl_usage(c, "N counts from 1, as acl list numbers the rules");
	return rc;
}

static int check_jwt(struct bw_ctl_call *c)
{
	bool jwks = given(c, "jwks"), key = given(c, "key"), alg = given(c, "alg");

	if (jwks && key)
		return bw_ctl_usage(c, "--jwks and --key exclude each other");
	if (!jwks && !key)
		return bw_ctl_usage(c, "give the keys: --jwks FILE, or --key FILE --alg ALG");
	if (key && !alg)
		return bw_ctl_usage(c, "--key needs --alg ALG");
	if (alg && !key)
		return bw_ctl_usage(c, "--alg goes with --key (a JWK Set names its algorithms)");
	if (given(c, "kid") && !key)
		return bw_ctl_usage(c, "--kid goes with --key (a JWK Set names its key ids)");
	return 0;
}

/* quota set KEY VALUE: KEY as the protocol spells it or as its option
 * ("max-qos"), VALUE in that quota's range. */
static int check_quota_set(struct bw_ctl_call *c)
{
	char key[64];
	const char *k = json_string_value(json_object_get(c->args, "key"));
	const char *v = json_string_value(json_object_get(c->args, "value"));

	snprintf(key, sizeof(key), "%s", k);
	for (char *p = key; *p; p++)
		*p = *p == '-' ? '_' : *p;
	for (const struct bw_ctl_param *q = quota_opts; q->name; q++) {
		if (strcmp(q->key, key))
			continue;
		struct bw_ctl_param p = {
			.name = "VALUE", .key = "value", .kind = BW_CTL_UINT, .max = q->max
		};
		json_t *held = json_incref(json_object_get(c->args, "value")); /* v is its text */
		json_object_set_new(c->args, "key", json_string(q->key));
		json_object_del(c->args, "value");
		int rc = bw_ctl_set(c, &p, v);
		json_decref(held);
		return rc;
	}
	return bw_ctl_usage(c, "unknown quota '%s'; bulwarkctl quota set --help lists them", k);
}

static int finish_password(struct bw_ctl_call *c)
{
	return bw_ctl_read_password(c);
}

/* A certificate identity gets a user's groups and rules, or groups. */
static int check_cert_map(struct bw_ctl_call *c)
{
	if (given(c, "user") == given(c, "groups"))
		return bw_ctl_usage(c, "give USER (whose groups and rules it gets) or --group G, "
		                       "not both");
	return 0;
}

/* A user is a password user or a token user. */
static int check_user_add(struct bw_ctl_call *c)
{
	bool pw = json_object_get(c->local, "--password-stdin") != NULL;
	bool token = json_object_get(c->local, "--token") != NULL;

	if (pw && token)
		return bw_ctl_usage(c, "--password-stdin and --token exclude each other");
	if (!pw && !token)
		return bw_ctl_usage(c, "which kind? give --password-stdin (a password user) or "
		                       "--token (a user JWTs name)");
	if (token && json_object_set_new(c->args, "kind", json_string("token")) < 0)
		return bw_ctl_fail(c, "out of memory");
	return 0;
}

static int finish_user_add(struct bw_ctl_call *c)
{
	if (!json_object_get(c->local, "--password-stdin"))
		return 0;
	return bw_ctl_read_password(c);
}

static const struct bw_ctl_cmd cmds[] = {
	CMD("tenant", "create", "tenant.create",
	    "NAME [--hostname H]... [--allow-anonymous] [QUOTAS]", "create a tenant",
	    .help = QUOTA_HELP, .pos = P_NAME, .opts = PARAMS(O_HOST, O_ANONYMOUS, QUOTA_OPTS),
	    .view = V_TENANT),
	CMD("tenant", "list", "tenant.list", "", "list the tenants", .view = V_TENANTS),
	CMD("tenant", "show", "tenant.show", "NAME",
	    "show a tenant: hostnames, quotas, CAs, JWT issuers, counts", .pos = P_NAME,
	    .view = V_TENANT),
	CMD("tenant", "update", "tenant.update",
	    "NAME [--hostname H]... [--allow-anonymous|--no-anonymous] [QUOTAS]",
	    "change a tenant; only what is given changes",
	    .help = "--hostname replaces the tenant's list of hostnames with the ones "
	            "given.\n" QUOTA_HELP,
	    .pos = P_NAME,
	    .opts = PARAMS(O_HOST, O_ANONYMOUS,
	                   OPT("--no-anonymous", "allow_anonymous", BW_CTL_FALSE, NULL,
	                       "clients must authenticate"),
	                   QUOTA_OPTS),
	    .check = check_update, .view = V_TENANT),
	CMD("tenant", "suspend", "tenant.suspend", "NAME",
	    "suspend a tenant: its clients are refused until it is resumed", .pos = P_NAME,
	    .view = V_TENANT),
	CMD("tenant", "resume", "tenant.resume", "NAME", "resume a suspended tenant", .pos = P_NAME,
	    .view = V_TENANT),
	CMD("tenant", "delete", "tenant.delete", "NAME --yes",
	    "delete a tenant with its groups, users, sessions and retained messages", .pos = P_NAME,
	    .opts = PARAMS(
	            OPT("--yes", "confirm", BW_CTL_TRUE, NULL, "yes, delete it and all it holds")),
	    .check = check_delete, .view = { .done = "tenant {name} deleted" }),

	CMD("group", "create", "group.create", "TENANT GROUP", "create a security group",
	    .pos = P_TENANT_GROUP),
	CMD("group", "list", "group.list", "TENANT", "list a tenant's groups", .pos = P_TENANT,
	    .view = { .render = bw_ctl_view_groups }),
	CMD("group", "delete", "group.delete", "TENANT GROUP",
	    "delete a group (its users leave it)", .pos = P_TENANT_GROUP,
	    .view = { .done = "group {group} of tenant {tenant} deleted" }),

	CMD("acl", "add", "acl.add",
	    "TENANT (--group G | --user U) allow|deny publish|subscribe|all FILTER "
	    "[--max-qos N] [--no-retain]",
	    "add a rule to a group's or a user's list", .help = RULE_HELP,
	    .pos = PARAMS(POS("TENANT", "tenant"), P_EFFECT, P_ACTION, POS("FILTER", "filter")),
	    .opts = PARAMS(O_GROUP, O_USER,
	                   { .name = "--max-qos",
	                     .key = "max_qos",
	                     .kind = BW_CTL_UINT,
	                     .meta = "N",
	                     .max = 2,
	                     .help = "the highest QoS the rule allows, 0..2" },
	                   OPT("--no-retain", "no_retain", BW_CTL_TRUE, NULL,
	                       "the rule allows no retained messages")),
	    .check = check_owner, .view = V_RULES),
	CMD("acl", "list", "acl.list", "TENANT [--group G | --user U]",
	    "list rules, numbered (all of the tenant's, or one owner's)", .pos = P_TENANT,
	    .opts = PARAMS(O_GROUP, O_USER), .check = check_acl_list, .view = V_RULES),
	CMD("acl", "del", "acl.del", "TENANT (--group G | --user U) N",
	    "delete rule N (as acl list numbers it) of a group or user",
	    .pos = PARAMS(POS("TENANT", "tenant"),
	                  { .name = "N", .key = "n", .kind = BW_CTL_UINT, .max = INT32_MAX }),
	    .opts = PARAMS(O_GROUP, O_USER), .check = check_acl_del, .view = V_RULES),

	CMD("user", "add", "user.add", "TENANT USER [--group G]... (--password-stdin | --token)",
	    "add a user: a password user, or with --token one a JWT's subject names",
	    .help = "The password is read from standard input (one line; a terminal is asked\n"
	            "twice without echo). It is never taken on the command line.\n",
	    .pos = P_TENANT_USER,
	    .opts = PARAMS(
	            OPT("--group", "groups", BW_CTL_LIST, "G", "a group the user is in (repeat)"),
	            OPT("--password-stdin", NULL, BW_CTL_LOCAL, NULL,
	                "read the password from standard input"),
	            OPT("--token", NULL, BW_CTL_LOCAL, NULL,
	                "a token user: JWTs whose subject (jwt_username_claim) names it")),
	    .check = check_user_add, .finish = finish_user_add),
	CMD("user", "list", "user.list", "TENANT", "list a tenant's users", .pos = P_TENANT,
	    .view = { .list = "users",
	              .empty = "no users",
	              COLS({ "NAME", "name" }, { "KIND", "kind" }, { "ENABLED", "enabled" },
	                   { "GROUPS", "groups" }) }),
	CMD("user", "show", "user.show", "TENANT USER", "show a user, its groups and rules",
	    .pos = P_TENANT_USER),
	CMD("user", "passwd", "user.passwd", "TENANT USER",
	    "set a user's password, read from standard input",
	    .help = "The password is one line of standard input, its newline stripped; a\n"
	            "terminal is asked twice without echo.\n",
	    .pos = P_TENANT_USER, .finish = finish_password,
	    .view = { .done = "password of user {user} of tenant {tenant} set" }),
	CMD("user", "disable", "user.disable", "TENANT USER",
	    "disable a user; its clients are disconnected on every node", .pos = P_TENANT_USER),
	CMD("user", "enable", "user.enable", "TENANT USER", "enable a user again",
	    .pos = P_TENANT_USER),
	CMD("user", "del", "user.del", "TENANT USER", "delete a user", .pos = P_TENANT_USER,
	    .view = { .done = "user {user} of tenant {tenant} deleted" }),

	CMD("cert", "map", "cert.map", "TENANT IDENTITY (USER | --group G...)",
	    "let devices whose certificate names IDENTITY in: in the groups given, or with "
	    "a copy of USER's groups and rules",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS("IDENTITY", "identity"),
	                  POS_OPTIONAL("USER", "user")),
	    .opts = PARAMS(OPT("--group", "groups", BW_CTL_LIST, "G",
	                       "a group the identity is in (repeat)")),
	    .check = check_cert_map),

	CMD("ca", "add", "ca.add", "TENANT FILE.pem",
	    "add the CA certificates of a PEM file: devices they issued reach this tenant",
	    .pos = PARAMS(POS("TENANT", "tenant"),
	                  { .name = "FILE.pem", .key = "pem", .kind = BW_CTL_FILE }),
	    .view = V_CAS),
	CMD("ca", "list", "ca.list", "TENANT", "list a tenant's CA certificates", .pos = P_TENANT,
	    .view = V_CAS),
	CMD("ca", "del", "ca.del", "TENANT FINGERPRINT",
	    "delete a CA certificate by its SHA-256 fingerprint (hex)",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS("FINGERPRINT", "fingerprint")),
	    .view = V_CAS),

	CMD("jwt", "add", "jwt.add",
	    "TENANT --issuer ISS [--audience AUD] (--jwks FILE | --key FILE --alg ALG [--kid KID]) "
	    "[--tenant-claim NAME]",
	    "trust JSON Web Tokens of an issuer, checked with a JWK Set or one key",
	    .help = "--key takes one PEM public key (or a certificate) for ALG: RS256, RS384,\n"
	            "RS512, PS256, PS384, PS512 (RSA, at least 2048 bits), ES256 (P-256),\n"
	            "ES384 (P-384) or EdDSA (Ed25519). Its key id is KID, else the first 16\n"
	            "hex digits of the SHA-256 of the key. HMAC secrets go in a JWK Set.\n"
	            "--tenant-claim names the claim whose value is this tenant's name in its\n"
	            "tokens (\"org\", \"https://example.com/tenant\"), where the node's\n"
	            "tenant_claim is not; --tenant-claim '' gives the node's back.\n",
	    .pos = P_TENANT,
	    .opts = PARAMS(
	            { .name = "--issuer",
	              .key = "issuer",
	              .kind = BW_CTL_STR,
	              .meta = "ISS",
	              .required = true,
	              .help = "the tokens' iss" },
	            OPT("--audience", "audience", BW_CTL_STR, "AUD", "an aud the tokens must hold"),
	            OPT("--jwks", "jwks", BW_CTL_FILE, "FILE", "a JWK Set (JSON)"),
	            OPT("--key", "key", BW_CTL_FILE, "FILE", "one public key (PEM)"),
	            OPT("--alg", "alg", BW_CTL_STR, "ALG",
	                "the --key's algorithm (RS256, ES256, ...)"),
	            OPT("--kid", "kid", BW_CTL_STR, "KID",
	                "the --key's key id (default: from its SHA-256)"),
	            { .name = "--tenant-claim",
	              .key = "tenant_claim",
	              .kind = BW_CTL_STR,
	              .meta = "NAME",
	              .empty_ok = true,
	              .help = "the claim naming this tenant ('': the node's tenant_claim)" }),
	    .check = check_jwt, .view = V_JWT),
	CMD("jwt", "list", "jwt.list", "TENANT",
	    "show a tenant's JWT issuers, audiences, keys and tenant claim", .pos = P_TENANT,
	    .view = V_JWT),
	CMD("jwt", "del", "jwt.del", "TENANT ISSUER", "stop trusting an issuer's tokens",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS("ISSUER", "issuer")), .view = V_JWT),

	CMD("quota", "set", "quota.set", "TENANT KEY VALUE", "set one quota of a tenant",
	    .help = "KEY is one of connections, persistent_sessions, tenant_msgs_per_s,\n"
	            "tenant_bytes_per_s, client_msgs_per_s, client_bytes_per_s,\n"
	            "client_subscriptions, retained_msgs, retained_bytes, max_qos,\n"
	            "max_packet_bytes, max_session_expiry_s, session_queued_msgs (or with\n"
	            "dashes). VALUE is a whole number; 0 means the node's default, except for\n"
	            "max_qos (0..2).\n",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS("KEY", "key"), POS("VALUE", "value")),
	    .check = check_quota_set, .view = { .render = bw_ctl_view_quotas }),
	CMD("quota", "show", "quota.show", "TENANT",
	    "show a tenant's quotas and what is in force with the node's defaults", .pos = P_TENANT,
	    .view = { .render = bw_ctl_view_quotas }),

	CMD("sessions", "list", "sessions.list", "TENANT [--client-id PATTERN]",
	    "list a tenant's sessions", .pos = P_TENANT,
	    .opts = PARAMS(OPT("--client-id", "client_id", BW_CTL_STR, "PATTERN",
	                       "only client ids matching this glob")),
	    .view = { .list = "sessions",
	              .empty = "no sessions",
	              COLS({ "CLIENT_ID", "client_id" }, { "CONNECTED", "connected" },
	                   { "PERSISTENT", "persistent" }, { "SUBSCRIPTIONS", "subscriptions" },
	                   { "QUEUED", "queued" }, { "INFLIGHT", "inflight" },
	                   { "NODE", "node" }) }),
	CMD("sessions", "show", "sessions.show", "TENANT CLIENTID",
	    "show a session and its subscriptions", .pos = P_TENANT_CLIENT),
	CMD("sessions", "kick", "sessions.kick", "TENANT CLIENTID [--discard]",
	    "disconnect a client (MQTT 5 clients get DISCONNECT 0x98)", .pos = P_TENANT_CLIENT,
	    .opts = PARAMS(OPT("--discard", "discard", BW_CTL_TRUE, NULL,
	                       "end its session too (subscriptions, queued messages)")), ),

	CMD("retained", "list", "retained.list", "TENANT [FILTER]",
	    "list retained messages matching FILTER (default #)",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS_OPTIONAL("FILTER", "filter")),
	    .view = { .list = "retained",
	              .empty = "no retained messages",
	              COLS({ "TOPIC", "topic" }, { "BYTES", "bytes" }, { "QOS", "qos" }) }),
	CMD("retained", "del", "retained.del", "TENANT TOPIC", "delete a retained message",
	    .pos = PARAMS(POS("TENANT", "tenant"), POS("TOPIC", "topic")),
	    .view = { .done = "retained message on {topic} of tenant {tenant} deleted" }),

	CMD("stats", NULL, "stats", "[TENANT]", "traffic and counters, per tenant",
	    .pos = PARAMS(POS_OPTIONAL("TENANT", "tenant")),
	    .view = { .render = bw_ctl_view_stats }),
	CMD("node", "info", "node.info", "", "the node's version, listeners and tenancy store", ),
	CMD("node", "drain", "node.drain", "",
	    "stop accepting connections; MQTT 5 clients get DISCONNECT 0x9C",
	    .view = { .done = "node draining: it accepts no new connections" }),
	CMD("config", "reload", "config.reload", "",
	    "read certificates, CRLs, JWK Sets and the tenancy store again", ),

	CMD("import", "mosquitto", "import.mosquitto", "TENANT --passwd FILE [--acl FILE]",
	    "import users and rules from Mosquitto's password and ACL files",
	    .help = "The files are read here and sent to the node, which checks them all\n"
	            "before it changes anything: a bad line, or a user the tenant has,\n"
	            "imports nothing. Users keep their password hashes; \"pattern\" rules\n"
	            "go to the group mosquitto-patterns, which every user joins, and\n"
	            "anonymous \"topic\" rules to the group anonymous.\n",
	    .pos = P_TENANT,
	    .opts = PARAMS({ .name = "--passwd",
	                     .key = "passwd",
	                     .kind = BW_CTL_FILE,
	                     .meta = "FILE",
	                     .required = true,
	                     .help = "a mosquitto_passwd file" },
	                   OPT("--acl", "acl", BW_CTL_FILE, "FILE", "a Mosquitto acl_file")),
	    .view = { .render = bw_ctl_view_import }),
};

const struct bw_ctl_cmd *bw_ctl_cmds(size_t *n)
{
	*n = sizeof(cmds) / sizeof(cmds[0]);
	return cmds;
}
