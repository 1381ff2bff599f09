/*
 * Command-line front of `bulwarkctl`: the global options every command
 * shares and the command words after them. Parsing is separate from main()
 * so the exit-code contract (0 ok, 1 error, 2 usage) is unit-tested.
 */
#ifndef BW_ADMIN_CTL_ARGS_H
#define BW_ADMIN_CTL_ARGS_H

#include <stdbool.h>

/* Where the node's admin socket is when neither --socket nor the
 * environment says (the node's default state_dir). */
#define BW_ADMIN_SOCKET_DEFAULT "/var/lib/bulwark/admin.sock"

/* How long a command waits for the node's answer, unless --timeout says. */
#define BW_CTL_TIMEOUT_S_DEFAULT 30
#define BW_CTL_TIMEOUT_S_MAX     3600

enum bw_ctl_action {
	BW_CTL_RUN,     /* run the command in argv[cmd_index..] */
	BW_CTL_HELP,    /* print help, exit 0 */
	BW_CTL_VERSION, /* print the version, exit 0 */
	BW_CTL_USAGE,   /* usage error: print `error` and help, exit 2 */
};

struct bw_ctl_args {
	const char *socket_path; /* --socket, $BULWARKCTL_SOCKET, or the default */
	bool json;               /* --json */
	unsigned timeout_s;      /* --timeout, 1..BW_CTL_TIMEOUT_S_MAX */
	int cmd_index;           /* first command word in argv, when BW_CTL_RUN */
	const char *error;       /* what was wrong, when BW_CTL_USAGE */
	const char *error_arg;   /* the offending argument, or NULL */
};

/*
 * Parses argv; env_socket is $BULWARKCTL_SOCKET (may be NULL). Global
 * options come before the command; the first word that is not an option
 * starts the command.
 */
enum bw_ctl_action bw_ctl_args_parse(int argc, char **argv, const char *env_socket,
                                     struct bw_ctl_args *a);

#endif
