/* Command-line helpers (see args.h). */
#include "bench/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bw_bench_opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

bool bw_bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool bw_bench_parse_double(const char *s, double min, double max, double *out)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int bw_bench_usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "bulwark-bench: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "Try 'bulwark-bench --help'.\n");
	return 2;
}
