/*
 * bulwarkctl's global option parsing (see ctl_args.h).
 */
#include "admin/ctl_args.h"

#include <stdbool.h>
#include <string.h>

/* Parses --timeout's value: digits only, 1..BW_CTL_TIMEOUT_S_MAX. */
static bool parse_timeout(const char *s, unsigned *out)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > BW_CTL_TIMEOUT_S_MAX)
			return false;
	}
	if (v == 0)
		return false;
	*out = (unsigned)v;
	return true;
}

static enum bw_ctl_action usage_error(struct bw_ctl_args *a, const char *msg, const char *arg)
{
	a->error = msg;
	a->error_arg = arg;
	return BW_CTL_USAGE;
}

enum bw_ctl_action bw_ctl_args_parse(int argc, char **argv, const char *env_socket,
                                     struct bw_ctl_args *a)
{
	memset(a, 0, sizeof(*a));
	a->socket_path = env_socket && *env_socket ? env_socket : BW_ADMIN_SOCKET_DEFAULT;
	a->timeout_s = BW_CTL_TIMEOUT_S_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
			return BW_CTL_HELP;
		if (!strcmp(arg, "-V") || !strcmp(arg, "--version"))
			return BW_CTL_VERSION;
		if (!strcmp(arg, "--json")) {
			a->json = true;
		} else if (!strcmp(arg, "--socket")) {
			if (i + 1 >= argc || !*argv[i + 1])
				return usage_error(a, "--socket needs a path", NULL);
			a->socket_path = argv[++i];
		} else if (!strncmp(arg, "--socket=", 9)) {
			if (!arg[9])
				return usage_error(a, "--socket needs a path", NULL);
			a->socket_path = arg + 9;
		} else if (!strcmp(arg, "--timeout") || !strncmp(arg, "--timeout=", 10)) {
			const char *v = arg[9] == '=' ? arg + 10 : i + 1 < argc ? argv[++i] : "";
			if (!parse_timeout(v, &a->timeout_s))
				return usage_error(a, "--timeout needs whole seconds, 1..3600",
				                   *v ? v : NULL);
		} else if (arg[0] == '-') {
			return usage_error(a, "unknown option", arg);
		} else {
			a->cmd_index = i;
			return BW_CTL_RUN;
		}
	}
	return usage_error(a, "no command given", NULL);
}
