/*
 * /proc readers (see procstat.h). The comm field of /proc/PID/stat may
 * hold spaces and parentheses, so fields are counted after its last ')'.
 */
#include "bench/procstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bw_bench_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
	char path[64], buf[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	/* After ")": state is field 3; utime and stime are fields 14 and 15. */
	unsigned long long utime = 0, stime = 0;
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	           &stime) != 2)
		return -EINVAL;
	long tck = sysconf(_SC_CLK_TCK);
	if (tck <= 0)
		tck = 100;
	*ns = (uint64_t)(utime + stime) * (1000000000ull / (uint64_t)tck);
	return 0;
}

int bw_bench_proc_status_kb(pid_t pid, const char *key, uint64_t *kb)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			*kb = strtoull(line + klen + 1, NULL, 10);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}
