/*
 * The node's log: one line a record, as text ("2026-11-24T17:40:00.123Z
 * info worker 1: message") or JSON ({"ts":...,"level":...,"msg":...}), to
 * stderr or a file that SIGHUP reopens (for logrotate). Each record is
 * written with a single write(2), so lines from several threads never
 * interleave. Records above the configured level cost one comparison.
 */
#ifndef BW_NODE_LOG_H
#define BW_NODE_LOG_H

#include <stdarg.h>

enum bw_log_level {
	BW_LOG_ERROR,
	BW_LOG_WARN,
	BW_LOG_INFO,
	BW_LOG_DEBUG,
};

enum bw_log_format {
	BW_LOG_TEXT,
	BW_LOG_JSON,
};

/* Longest record; longer messages are cut and end in "...". */
#define BW_LOG_LINE_MAX 2048

/*
 * Sets the level, the format and the file (NULL: stderr).
 * Returns 0, or -errno when the file cannot be opened (the log then stays
 * where it was). Call before starting threads.
 */
int bw_log_open(enum bw_log_level level, enum bw_log_format format, const char *path);

/*
 * Reopens the file after rotation. Safe from any thread; the old file stays
 * in use when the new one cannot be opened. Returns 0 or -errno.
 */
int bw_log_reopen(void);

/* Whether records of `level` are written. */
int bw_log_enabled(int level);

/* Writes one record (printf format; the message is escaped for JSON). */
void bw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bw_logv(int level, const char *fmt, va_list ap);

#define bw_log_error(...) bw_log(BW_LOG_ERROR, __VA_ARGS__)
#define bw_log_warn(...)  bw_log(BW_LOG_WARN, __VA_ARGS__)
#define bw_log_info(...)  bw_log(BW_LOG_INFO, __VA_ARGS__)
#define bw_log_debug(...)                                                                          \
	do {                                                                                       \
		if (bw_log_enabled(BW_LOG_DEBUG))                                                  \
			bw_log(BW_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif
