/*
 * bulwarkctl's side of the admin socket: connect to the node's Unix socket,
 * write one request line, read one answer line. Every step is bounded: the
 * whole exchange by a deadline, the answer by BW_CTL_LINE_MAX bytes.
 */
#ifndef BW_ADMIN_CTL_CONN_H
#define BW_ADMIN_CTL_CONN_H

#include <stddef.h>

/* The protocol's longest line, newline excluded. */
#define BW_CTL_LINE_MAX (1024 * 1024)

/*
 * Sends req (req_len bytes, without its newline: one is added) to the
 * socket at path and waits at most timeout_ms for one answer line.
 * Returns 0 and *reply (malloc'd, NUL-terminated, newline stripped; the
 * caller frees) or a negative errno with a sentence in err naming the path
 * and what failed: -ENAMETOOLONG, the connect's or write's error,
 * -ETIMEDOUT, -EMSGSIZE (answer over BW_CTL_LINE_MAX), -ECONNRESET (the
 * node closed without answering), -ENOMEM.
 */
int bw_ctl_conn_call(const char *path, const char *req, size_t req_len, int timeout_ms,
                     char **reply, char *err, size_t errlen);

#endif
