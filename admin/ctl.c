/*
 * The `bulwarkctl` executable: operator commands over the node's admin
 * socket (docs/admin.md). Everything but the process lives in bw_admin
 * (ctl_main.c), so the tests run the same code.
 * Exit codes: 0 success, 1 error, 2 usage error.
 */
#include "admin/ctl_main.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
	struct bw_ctl_io io = { .in = stdin, .out = stdout, .err = stderr };

	return bw_ctl_main(argc, argv, getenv("BULWARKCTL_SOCKET"), &io);
}
