/*
 * Password files in Mosquitto's format, as mosquitto_passwd writes them: one
 * "username:hash" a line, the hash in a format tenancy/auth/password.h
 * knows ($7$, $6$, $argon2id$). Blank lines and lines whose first non-blank
 * byte is '#' are skipped; a trailing "\r" and trailing blanks are dropped.
 * The username is every byte before the ':' (blanks included) and must be
 * non-empty, valid MQTT UTF-8 and unique; it cannot hold ':'. Plain-text
 * passwords are refused: hash them with mosquitto_passwd -U or
 * `bulwark --hash-password`.
 *
 * Every hash is checked when the file is read (format and cost limits), so
 * a file that loads holds only hashes that verify can compute. A loaded
 * struct bw_passwd is immutable: any number of threads may look up and
 * check concurrently.
 */
#ifndef BW_AUTH_PASSWD_H
#define BW_AUTH_PASSWD_H

#include <stddef.h>

struct bw_passwd;

/* Limits on what a file may hold; past them it does not load. */
#define BW_PASSWD_FILE_MAX  (64u << 20) /* bytes */
#define BW_PASSWD_LINE_MAX  4096u       /* bytes a line, without the "\n" */
#define BW_PASSWD_USERS_MAX 1000000u

/*
 * Parses text[0..len) (need not be NUL-terminated). name is the file name
 * used in error messages (NULL: "<input>"). On success *out is a new table
 * the caller frees with bw_passwd_free() and 0 is returned. Otherwise *out
 * is NULL, err[0..cap) gets one line "name:line: what is wrong" (err may be
 * NULL when cap is 0) and the return is -EINVAL (bad content), -EFBIG (len
 * above BW_PASSWD_FILE_MAX) or -ENOMEM.
 */
int bw_passwd_parse(const char *text, size_t len, const char *name, struct bw_passwd **out,
                    char *err, size_t cap);

/*
 * Reads and parses the file at path, as bw_passwd_parse(). Also returns
 * -errno when the file cannot be opened or read (err says "path: why").
 */
int bw_passwd_load(const char *path, struct bw_passwd **out, char *err, size_t cap);

/*
 * The NUL-terminated encoded hash of user[0..len), or NULL when the file
 * does not name that user. The string lives as long as the table.
 */
const char *bw_passwd_lookup(const struct bw_passwd *pw, const char *user, size_t len);

/* Number of users in the table. */
size_t bw_passwd_count(const struct bw_passwd *pw);

/*
 * User i (0 .. bw_passwd_count() - 1) in file order, for tools that convert
 * a file (the admin socket's import): returns its NUL-terminated hash and
 * sets *user (NUL-terminated), *len and *line (where the file has it, from
 * 1); NULL past the end. The strings live as long as the table.
 */
const char *bw_passwd_at(const struct bw_passwd *pw, size_t i, const char **user, size_t *len,
                         unsigned *line);

/*
 * Authenticates user[0..ulen) with password[0..plen): 0 when the user is in
 * the table and the password matches, -EACCES otherwise, or an error of
 * bw_password_verify() (-ENOMEM, -EIO). For a user the table does not hold
 * it still verifies the password against the file's first hash and then
 * answers -EACCES, so that answering takes as long as for a real user and
 * timing does not tell which usernames exist.
 */
int bw_passwd_check(const struct bw_passwd *pw, const char *user, size_t ulen, const char *password,
                    size_t plen);

/* Frees *pw (NULL is fine) and sets *pw to NULL. */
void bw_passwd_free(struct bw_passwd **pw);

#endif
