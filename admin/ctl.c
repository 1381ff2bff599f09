/*
 * The `bulwarkctl` executable: operator commands over the node's admin
 * socket. This build parses the global options and answers --help and
 * --version; the admin socket and its commands arrive with the admin issue.
 * Exit codes: 0 success, 1 error, 2 usage error.
 */
#include "admin/ctl_args.h"
#include "bw_version.h"

#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: bulwarkctl [--socket PATH] [--json] COMMAND ...\n"
	        "\n"
	        "Operate a Bulwark node through its admin socket.\n"
	        "\n"
	        "  --socket PATH  admin socket (default $BULWARKCTL_SOCKET, else %s)\n"
	        "  --json         print results as JSON\n"
	        "  -h, --help     show this help and exit\n"
	        "  -V, --version  show the version and exit\n"
	        "\n"
	        "This version knows no commands yet: the node does not serve its admin\n"
	        "socket until the admin feature lands.\n",
	        BW_ADMIN_SOCKET_DEFAULT);
}

int main(int argc, char **argv)
{
	struct bw_ctl_args a;

	switch (bw_ctl_args_parse(argc, argv, getenv("BULWARKCTL_SOCKET"), &a)) {
	case BW_CTL_HELP:
		usage(stdout);
		return 0;
	case BW_CTL_VERSION:
		printf("bulwarkctl %s (%s)\n", BW_VERSION, BW_GIT_COMMIT);
		return 0;
	case BW_CTL_USAGE:
		fprintf(stderr, "bulwarkctl: %s%s%s\n", a.error, a.error_arg ? ": " : "",
		        a.error_arg ? a.error_arg : "");
		usage(stderr);
		return 2;
	case BW_CTL_RUN:
		break;
	}
	fprintf(stderr, "bulwarkctl: unknown command '%s' (this version has no commands)\n",
	        argv[a.cmd_index]);
	return 2;
}
