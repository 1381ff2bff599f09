/*
 * A whole bulwarkctl run, apart from the process: global options, the
 * command's request, the exchange with the admin socket and the output.
 * main() hands it argv and the standard streams; tests hand it memory
 * streams and a socket of their own.
 */
#ifndef BW_ADMIN_CTL_MAIN_H
#define BW_ADMIN_CTL_MAIN_H

#include "admin/ctl_cmds.h"

/*
 * Runs bulwarkctl with argv; env_socket is $BULWARKCTL_SOCKET (may be
 * NULL). Returns the exit code: BW_CTL_EXIT_OK, BW_CTL_EXIT_ERROR (the node
 * refused, or could not be reached, or a file could not be read) or
 * BW_CTL_EXIT_USAGE.
 */
int bw_ctl_main(int argc, char **argv, const char *env_socket, struct bw_ctl_io *io);

#endif
