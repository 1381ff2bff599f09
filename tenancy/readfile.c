/*
 * Whole-file reads for the tenancy parsers (see readfile.h). The size is
 * taken from fstat() and one byte more is asked for, so that a file that
 * grows while it is read is noticed rather than cut short.
 */
#include "tenancy/readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bw__read_file(const char *path, size_t max, char **text, size_t *len, char *err, size_t cap)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc = 0;

	*text = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	size_t size = (size_t)st.st_size;
	buf = malloc(size + 2);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	/* Each pass reads at least one byte or ends; EINTR retries. */
	while (n <= size) {
		ssize_t r = read(fd, buf + n, size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > size) {
		rc = -EAGAIN;
		goto out;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	buf = NULL;
out:
	if (rc && err && cap) {
		if (rc == -EFBIG)
			snprintf(err, cap, "%s: larger than %zu bytes", path, max);
		else
			snprintf(err, cap, "%s: %s", path,
			         rc == -EINVAL   ? "not a regular file"
			         : rc == -EAGAIN ? "file changed while being read"
			                         : strerror(-rc));
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}
