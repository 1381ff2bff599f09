/*
 * Topic ACLs: which topics a client may publish to, subscribe to and
 * receive. An ACL file (struct bw_acl) holds rule sets: one a user, one for
 * clients without a username ("anonymous") and one that applies to everyone.
 * When a client connects, bw_acl_compile() takes the rules that apply to it,
 * fills in its placeholders and builds a trie of them (struct
 * bw_acl_compiled), so that a check walks the topic's levels once instead
 * of trying every rule.
 *
 * A rule: allow or deny; access publish, subscribe (which covers receiving)
 * or both; a topic filter; for allow rules an optional QoS cap and, for
 * publish, an optional "no retained messages". Semantics:
 *
 *   - No rule matching: denied. A deny rule matching: denied, whatever
 *     allows it too.
 *   - Publish to a topic: allowed when an allow rule matches the topic, no
 *     deny rule does, the QoS is within the lowest cap of the matching allow
 *     rules and, when retained, none of them says retain=no.
 *   - Subscribe to a filter: allowed when one allow rule's filter covers
 *     every topic the filter can match ("data/#" covers "data/+/x", nothing
 *     but "#" covers "#"), and no deny rule covers it. A deny rule that
 *     shares some topics with the filter without covering it leaves the
 *     subscription allowed but with *check_each set: each message (and each
 *     retained message sent at subscribe) must then pass
 *     bw_acl_can_receive(). The granted QoS is at most the lowest cap of the
 *     allow rules that share any topic with the filter. "$share/{group}/F"
 *     is judged as F.
 *   - Receive a topic: allowed when a subscribe allow rule matches it and no
 *     subscribe deny rule does.
 *   - A topic starting with '$' is matched only by rules whose first level
 *     is that literal level ("$SYS/#"), never by a first-level '+' or '#',
 *     as for subscriptions.
 *
 * Placeholders: a rule filter level that is exactly "%u", "%c" or "%cn"
 * stands for the client's username, client id or TLS certificate common
 * name. A value that is missing, empty, not valid UTF-8, or holds '/', '+',
 * '#' (or starts with '$' in the first level) can never name one level
 * safely, so a rule whose placeholder has such a value is dropped for that
 * client: it matches nothing (an allow grants nothing, a deny denies
 * nothing; a deny on such a client is better written without the
 * placeholder). "%u" or "%c" inside a longer level is refused when the file
 * is read.
 *
 * Syntax (docs/security.md has examples): '#' starts a comment line; blank
 * lines are skipped.
 *   user NAME                 following rules are NAME's (the rest of the line)
 *   anonymous                 following rules are for clients without username
 *   everyone                  following rules apply to every client
 *   allow|deny publish|subscribe|all FILTER [qos=0|1|2] [retain=no]
 * and Mosquitto's acl_file lines:
 *   topic [read|write|readwrite|deny] TOPIC    a rule of the current user,
 *                               or of anonymous before any "user" line
 *   pattern [read|write|readwrite|deny] TOPIC  a rule for everyone
 * read is subscribe, write publish, readwrite all, deny a deny of all;
 * without an access word it is readwrite and TOPIC is the rest of the line.
 * "topic" lines take TOPIC literally (no placeholders, as in Mosquitto).
 * A user's rules may be spread over several "user NAME" sections.
 */
#ifndef BW_ACL_H
#define BW_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bw_acl;
struct bw_acl_compiled;

/* Limits on what an ACL file may hold; past them it does not load. */
#define BW_ACL_FILE_MAX  (16u << 20) /* bytes */
#define BW_ACL_LINE_MAX  4096u       /* bytes a line, without the "\n" */
#define BW_ACL_RULES_MAX 100000u     /* rules in a file */
#define BW_ACL_USERS_MAX 100000u     /* distinct "user" names */

/* Who a compiled ACL is for. A NULL pointer is an absent value. */
struct bw_acl_subject {
	const char *username;
	size_t username_len;
	const char *client_id;
	size_t client_id_len;
	const char *cert_cn;
	size_t cert_cn_len;
};

/*
 * Parses text[0..len) (need not be NUL-terminated); name is the file name
 * for messages (NULL: "<input>"). Returns 0 with *out a new ACL the caller
 * frees with bw_acl_free(), or -EINVAL (bad content), -EFBIG (len above
 * BW_ACL_FILE_MAX) or -ENOMEM with *out NULL and err[0..cap) holding one line
 * "name:line: what is wrong" (err may be NULL when cap is 0).
 */
int bw_acl_parse(const char *text, size_t len, const char *name, struct bw_acl **out, char *err,
                 size_t cap);

/*
 * A rule list, as a tenancy security group or principal holds: the rules of
 * one section without its header, for whoever the result is compiled for
 * (they all go to the "everyone" set). Lines are "allow ...", "deny ..." and
 * "pattern ..."; "user", "anonymous" and "everyone" lines are refused, and so
 * are "topic" lines (which name no placeholders and belong to a user).
 * Returns and reports as bw_acl_parse().
 */
int bw_acl_parse_rules(const char *text, size_t len, const char *name, struct bw_acl **out,
                       char *err, size_t cap);

/* Reads and parses the file at path; also -errno when it cannot be read. */
int bw_acl_load(const char *path, struct bw_acl **out, char *err, size_t cap);

/* Number of rules in the file. */
size_t bw_acl_rule_count(const struct bw_acl *acl);

/* Whose a rule of a parsed file is. */
enum bw_acl_owner {
	BW_ACL_OWNER_ANONYMOUS, /* "topic" before any "user" line, or "anonymous" */
	BW_ACL_OWNER_EVERYONE,  /* "pattern", or "everyone" */
	BW_ACL_OWNER_USER,      /* a "user NAME" section */
};

/* One rule of a parsed file as written (bw_acl_each_rule()); points into the bw_acl. */
struct bw_acl_rule_info {
	enum bw_acl_owner owner;
	const char *user;   /* BW_ACL_OWNER_USER: the name, NUL-terminated */
	size_t user_len;    /* its length */
	unsigned user_line; /* where its first "user" line is */
	const char *filter; /* NUL-terminated, as written */
	size_t len;
	bool publish, subscribe; /* the access: both for all */
	bool deny;
	uint8_t max_qos; /* 0..2; 2 when not given */
	bool no_retain;  /* retain=no */
	bool literal;    /* a "topic" line: "%u" and "%c" are plain text, not placeholders */
	unsigned line;   /* where the rule is, from 1 */
};

/*
 * Calls visit(arg, rule) for each rule of acl, for tools that convert an
 * ACL file (the admin socket's import): the anonymous rules, everyone's,
 * then each user's (users in byte order of their names, a user's sections
 * merged), each set in file order. Stops at the first nonzero answer of
 * visit and returns it; returns 0 when every rule was visited.
 */
int bw_acl_each_rule(const struct bw_acl *acl,
                     int (*visit)(void *arg, const struct bw_acl_rule_info *r), void *arg);

/* Frees *acl (NULL is fine) and sets it to NULL. */
void bw_acl_free(struct bw_acl **acl);

/*
 * The rules that apply to who (its user's or the anonymous ones, and
 * everyone's), placeholders filled in, as a trie. Keeps no pointer to acl
 * or who: the result outlives both. Returns NULL when out of memory (refuse
 * the client then). The result is immutable: checks may run on any thread.
 */
struct bw_acl_compiled *bw_acl_compile(const struct bw_acl *acl, const struct bw_acl_subject *who);

/* Frees *c (NULL is fine) and sets it to NULL. */
void bw_acl_compiled_free(struct bw_acl_compiled **c);

/* Number of rules compiled in (rules with a bad placeholder value left out). */
size_t bw_acl_compiled_rules(const struct bw_acl_compiled *c);

/*
 * True when c allows publishing to topic[0..len) (a valid topic name) at
 * qos, retained or not. An invalid name is denied. Costs one step a level
 * of the topic for each rule-trie path that matches so far.
 */
bool bw_acl_can_publish(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len,
                        uint8_t qos, bool retain);

/*
 * Judges a subscription to filter[0..len) (may be "$share/{group}/F").
 * Returns 0 when allowed, with *max_qos the highest QoS to grant (0..2) and
 * *check_each true when each message must pass bw_acl_can_receive();
 * -EACCES when denied (*max_qos 0, *check_each false); -EINVAL for an
 * invalid filter. Neither out pointer may be NULL. Costs one step a filter
 * level for each rule-trie path that matches so far; a '+' level in the
 * filter steps into every literal child of those paths.
 */
int bw_acl_can_subscribe(const struct bw_acl_compiled *c, const uint8_t *filter, size_t len,
                         uint8_t *max_qos, bool *check_each);

/* True when c allows receiving a message on topic[0..len) (a valid name). */
bool bw_acl_can_receive(const struct bw_acl_compiled *c, const uint8_t *topic, size_t len);

#endif
