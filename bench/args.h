/*
 * Command-line helpers shared by bulwark-bench's scenarios: option values
 * in both "--name VALUE" and "--name=VALUE" forms, bounded numbers, and the
 * usage error (exit code 2).
 */
#ifndef BW_BENCH_ARGS_H
#define BW_BENCH_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Takes the value of option argv[*i] ("--name VALUE" or "--name=VALUE");
 * returns NULL when this is not that option, and sets *missing when it is
 * but has no value.
 */
const char *bw_bench_opt_value(int argc, char **argv, int *i, const char *name, bool *missing);

/* A whole decimal number in [min, max]; false for anything else. */
bool bw_bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* A decimal number in [min, max] (finite); false for anything else. */
bool bw_bench_parse_double(const char *s, double min, double max, double *out);

/* Says what is wrong on stderr and returns 2, the usage error exit code. */
int bw_bench_usage_error(const char *what, const char *arg);

#endif
