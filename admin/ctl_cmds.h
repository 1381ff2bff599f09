/*
 * bulwarkctl's command set: one table entry a command (its words, the
 * protocol `cmd` it sends, its positional arguments and options, help text,
 * checks and how its result is shown) and the engine that turns a command
 * line into the request's JSON. See docs/admin.md and
 * docs/admin-protocol.md.
 */
#ifndef BW_ADMIN_CTL_CMDS_H
#define BW_ADMIN_CTL_CMDS_H

#include "admin/ctl_render.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes: the contract scripts rely on. */
#define BW_CTL_EXIT_OK    0
#define BW_CTL_EXIT_ERROR 1
#define BW_CTL_EXIT_USAGE 2

/* Where a run reads passwords and writes results, help and errors. */
struct bw_ctl_io {
	FILE *in;  /* passwords; a terminal is prompted without echo */
	FILE *out; /* results and help */
	FILE *err; /* errors and prompts */
};

enum bw_ctl_kind {
	BW_CTL_STR,    /* a string */
	BW_CTL_LIST,   /* an option that may be repeated: an array of strings */
	BW_CTL_UINT,   /* digits only, 0..max: a JSON integer */
	BW_CTL_TRUE,   /* an option without value: key = true */
	BW_CTL_FALSE,  /* an option without value: key = false */
	BW_CTL_FILE,   /* a file name: the file's text is sent (read after all checks) */
	BW_CTL_CHOICE, /* one of `choices` */
	BW_CTL_LOCAL,  /* an option without value the command's hooks read; not sent */
};

/*
 * A positional argument (name is its metavariable, "TENANT") or an option
 * (name is the flag, "--hostname"). The value goes to args[key], or to
 * args[parent][key] when parent is set ("quotas").
 */
struct bw_ctl_param {
	const char *name;
	const char *key;
	enum bw_ctl_kind kind;
	const char *meta;           /* options with a value: its metavariable ("H") */
	const char *parent;         /* NULL: a member of args */
	long long max;              /* BW_CTL_UINT: the largest value */
	const char *const *choices; /* BW_CTL_CHOICE: NULL-terminated */
	bool optional;              /* positionals: may be left out (trailing ones only) */
	bool required;              /* options: must be given */
	bool empty_ok;              /* options: "" is a value (it clears what the option sets) */
	const char *help;           /* options: one line for --help */
};

/* The state of one command line being built into a request. */
struct bw_ctl_call {
	const struct bw_ctl_cmd *cmd;
	json_t *args;  /* the request's args, owned */
	json_t *local; /* BW_CTL_LOCAL options given: name -> true, owned */
	struct bw_ctl_io *io;
};

struct bw_ctl_cmd {
	const char *noun;
	const char *verb; /* NULL for one-word commands ("stats") */
	const char *cmd;  /* the protocol's name, "tenant.create" */
	const char *synopsis;
	const char *summary;             /* one line */
	const char *help;                /* more, or NULL */
	const struct bw_ctl_param *pos;  /* terminated by a NULL name */
	const struct bw_ctl_param *opts; /* terminated by a NULL name; may be NULL */
	/* Usage checks after parsing: returns 0 or BW_CTL_EXIT_USAGE. */
	int (*check)(struct bw_ctl_call *c);
	/* Input after files are read (a password): returns 0 or an exit code. */
	int (*finish)(struct bw_ctl_call *c);
	struct bw_ctl_view view;
};

/* The command table; *n is set to its length. */
const struct bw_ctl_cmd *bw_ctl_cmds(size_t *n);

/*
 * Builds the request for the command line argv[0..argc) (argv[0] is the
 * noun). Returns BW_CTL_EXIT_OK with *req (the caller json_decref()s it)
 * and *cmd; BW_CTL_EXIT_OK with *req NULL when help was asked for and
 * printed on io->out; or BW_CTL_EXIT_USAGE or BW_CTL_EXIT_ERROR (a file or
 * the password could not be read) after a message on io->err.
 */
int bw_ctl_build(int argc, char **argv, struct bw_ctl_io *io, const struct bw_ctl_cmd **cmd,
                 json_t **req);

/* Prints the list of commands (the global help's second half). */
void bw_ctl_cmds_summary(FILE *out);

/* For hooks: prints "bulwarkctl: WORDS: MESSAGE", the synopsis, and returns
 * BW_CTL_EXIT_USAGE. */
int bw_ctl_usage(struct bw_ctl_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For hooks: parses s as p says into args (or args[p->parent]). Returns 0
 * or an exit code after a message. */
int bw_ctl_set(struct bw_ctl_call *c, const struct bw_ctl_param *p, const char *s);

/* For hooks: prints "bulwarkctl: MESSAGE" and returns BW_CTL_EXIT_ERROR. */
int bw_ctl_fail(struct bw_ctl_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text of a file, as a JSON string; NULL after a message naming the
 * file (unreadable, over the size bound, not UTF-8). */
json_t *bw_ctl_read_file(struct bw_ctl_call *c, const char *path);

/*
 * Reads a password into args.password: one line of io->in, its newline
 * stripped; when io->in is a terminal, prompts on io->err twice without
 * echo and wants the same answer. Returns 0 or BW_CTL_EXIT_ERROR after a
 * message (nothing read, empty, too long, the answers differ).
 */
int bw_ctl_read_password(struct bw_ctl_call *c);

/* Overwrites the password in req's args, if any, before req is freed. */
void bw_ctl_forget_password(json_t *req);

#endif
