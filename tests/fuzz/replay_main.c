/*
 * A main() for fuzz drivers in builds without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once on every file named on the command line and
 * on every regular file (dot files excepted, in name order) in every
 * directory named there. The normal and sanitizer builds register this with
 * ctest over the checked-in corpus, so every test run replays it. A failed
 * check in the driver aborts; a path that cannot be read is an error (exit
 * 1), and so is finding no input at all.
 *
 *   usage: fuzz_decode_replay [-v] PATH...
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs larger than this are refused: no corpus file is anywhere near it. */
#define REPLAY_FILE_MAX (16u << 20)

static bool verbose;

/* Runs the driver on one file; returns 0 or -errno. */
static int replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	int rc = 0;

	if (!fp)
		return -errno;
	if (fstat(fileno(fp), &st) != 0) {
		rc = -errno;
		goto out_close;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > REPLAY_FILE_MAX) {
		rc = -EFBIG;
		goto out_close;
	}
	size_t n = (size_t)st.st_size;
	/* Exactly n bytes, so that ASan sees any read past the input. */
	uint8_t *data = malloc(n ? n : 1);
	if (!data) {
		rc = -ENOMEM;
		goto out_close;
	}
	if (n && fread(data, 1, n, fp) != n) {
		rc = -EIO;
		goto out_free;
	}
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
	LLVMFuzzerTestOneInput(data, n);
out_free:
	free(data);
out_close:
	fclose(fp);
	return rc;
}

static int skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Runs every regular file in dir; adds to *count; returns 0 or -errno. */
static int replay_dir(const char *dir, unsigned *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dot, alphasort);
	int rc = 0;

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (rc == 0 && (len < 0 || (size_t)len >= sizeof(path)))
			rc = -ENAMETOOLONG;
		if (rc == 0 && stat(path, &st) != 0)
			rc = -errno;
		if (rc == 0 && S_ISREG(st.st_mode)) {
			rc = replay_file(path);
			if (rc)
				fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int first = 1;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = true;
		first = 2;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = first; i < argc; i++) {
		struct stat st;
		int rc = stat(argv[i], &st) == 0 ? 0 : -errno;
		if (rc == 0 && S_ISDIR(st.st_mode)) {
			rc = replay_dir(argv[i], &count);
		} else if (rc == 0) {
			rc = replay_file(argv[i]);
			count += rc == 0;
		}
		if (rc) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-rc));
			return 1;
		}
	}
	if (count == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	printf("replay: %u inputs passed\n", count);
	return 0;
}
