/*
 * Helpers the bulwarkctl tests share: running bw_ctl_build() or
 * bw_ctl_main() on an argv literal with standard input from a string and
 * output captured in memory.
 */
#ifndef BW_TESTS_CTL_TEST_UTIL_H
#define BW_TESTS_CTL_TEST_UTIL_H

#include "admin/ctl_cmds.h"

#include <stdlib.h>
#include <string.h>

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))

/* Captured streams of one run: out and err are NUL-terminated text. */
struct ctl_run {
	FILE *in, *out_f, *err_f;
	char *out, *err;
	size_t out_len, err_len;
	struct bw_ctl_io io;
};

/* Opens the streams; in_text is standard input (NULL: empty). */
static inline void ctl_run_open(struct ctl_run *r, const char *in_text)
{
	memset(r, 0, sizeof(*r));
	r->in = in_text && *in_text ? fmemopen((void *)in_text, strlen(in_text), "r")
	                            : fopen("/dev/null", "r");
	r->out_f = open_memstream(&r->out, &r->out_len);
	r->err_f = open_memstream(&r->err, &r->err_len);
	r->io = (struct bw_ctl_io){ .in = r->in, .out = r->out_f, .err = r->err_f };
}

/* Closes the streams, leaving out and err readable. */
static inline void ctl_run_close(struct ctl_run *r)
{
	fclose(r->in);
	fclose(r->out_f);
	fclose(r->err_f);
}

static inline void ctl_run_free(struct ctl_run *r)
{
	free(r->out);
	free(r->err);
}

#endif
