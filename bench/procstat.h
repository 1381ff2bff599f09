/*
 * What bulwark-bench reads about the broker process from /proc (given
 * --pid): its CPU time and its memory.
 */
#ifndef BW_BENCH_PROCSTAT_H
#define BW_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/*
 * utime + stime of process pid (all its threads) from /proc/PID/stat, in
 * nanoseconds (the kernel counts in clock ticks, usually 10 ms). Returns 0
 * or -errno (-ESRCH when the process is gone).
 */
int bw_bench_proc_cpu_ns(pid_t pid, uint64_t *ns);

/*
 * The value in kB of a line such as "VmHWM:" or "VmRSS:" of
 * /proc/PID/status (key without the colon). Returns 0, -ENOENT when the
 * line is missing, or -errno.
 */
int bw_bench_proc_status_kb(pid_t pid, const char *key, uint64_t *kb);

#endif
