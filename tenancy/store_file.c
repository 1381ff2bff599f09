/*
 * The embedded tenancy store: the whole model in one file,
 * <state_dir>/tenancy.json (tenancy/file_format.h), read when the store
 * opens and rewritten whole by every write:
 *   1. the write is applied to a builder over the model last written, and
 *      the new snapshot is finished strictly (clashes refused);
 *   2. its JSON goes to tenancy.json.tmp (mode 0600), which is fsync'd,
 *      renamed over tenancy.json, and the directory fsync'd: a crash
 *      leaves the old file or the new one, never a mix;
 *   3. the snapshot is handed to the service thread, which publishes it
 *      (delta, callback), and the write returns once it is in force.
 * A missing file is an empty model; the file is created by the first write.
 */
#include "tenancy/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tenancy/file_format.h"
#include "tenancy/model_build.h"
#include "tenancy/readfile.h"

#define FILE_NAME "tenancy.json"

struct file_store {
	const struct bw_tenancy_store_host *host;
	char *dir, *path, *tmp;
	int write_wait_ms;
	struct bw_tenancy *model; /* the model as last read or written; writers only */

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cond;
	struct bw_tenancy *pending; /* for the service thread to publish */
	bool pending_full;
	uint64_t handed, published; /* hand-over counts */
	bool loaded;
	char last_error[256];
	uint64_t errors;
};

static struct file_store *fs_of(struct bw_tenancy_store *st)
{
	return (struct file_store *)st;
}

static void fs_error(struct file_store *f, const char *msg)
{
	pthread_mutex_lock(&f->mu);
	snprintf(f->last_error, sizeof(f->last_error), "%.255s", msg);
	f->errors++;
	pthread_mutex_unlock(&f->mu);
	f->host->log(f->host->arg, 0, msg);
}

/* Reads and parses the file; a missing one is an empty model. */
static int fs_read(struct file_store *f, struct bw_tenancy **out, char *err, size_t cap)
{
	char *text = NULL;
	size_t len = 0;
	int rc = bw__read_file(f->path, BW_TENANCY_FILE_MAX, &text, &len, err, cap);

	*out = NULL;
	if (rc == -ENOENT) {
		*out = bw_tenancy_empty();
		return *out ? 0 : -ENOMEM;
	}
	if (rc == 0)
		rc = bw__tenancy_json_parse(text, len, f->path, out, err, cap);
	free(text);
	return rc;
}

static void fs_close(struct bw_tenancy_store **st)
{
	struct file_store *f = st && *st ? fs_of(*st) : NULL;

	if (!f)
		return;
	bw_tenancy_release(&f->model);
	bw_tenancy_release(&f->pending);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	free(f->dir);
	free(f->path);
	free(f->tmp);
	free(f);
	*st = NULL;
}

static int fs_open(const struct bw_tenancy_store_cfg *cfg, const struct bw_tenancy_store_host *host,
                   struct bw_tenancy_store **out, char *err, size_t cap)
{
	struct file_store *f = calloc(1, sizeof(*f));
	struct stat sb;
	int rc;

	*out = NULL;
	if (!f) {
		snprintf(err, cap, "tenancy: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->host = host;
	f->write_wait_ms = cfg->write_wait_ms > 0 ? cfg->write_wait_ms : 10000;
	f->dir = strdup(cfg->state_dir);
	if (f->dir && asprintf(&f->path, "%s/%s", cfg->state_dir, FILE_NAME) < 0)
		f->path = NULL;
	if (f->path && asprintf(&f->tmp, "%s/%s.tmp", cfg->state_dir, FILE_NAME) < 0)
		f->tmp = NULL;
	if (!f->tmp) {
		rc = -ENOMEM;
		snprintf(err, cap, "tenancy: out of memory");
		goto fail;
	}
	rc = stat(f->dir, &sb) != 0 ? -errno : S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	if (rc != 0) {
		snprintf(err, cap, "tenancy: state_dir %s: %s", f->dir, strerror(-rc));
		goto fail;
	}
	rc = fs_read(f, &f->model, err, cap);
	if (rc != 0)
		goto fail;
	f->pending = bw_tenancy_ref(f->model);
	f->pending_full = true;
	f->handed = 1;
	*out = (struct bw_tenancy_store *)f;
	return 0;
fail:
	fs_close((struct bw_tenancy_store **)&f);
	return rc;
}

static int fs_load(struct bw_tenancy_store *st, struct bw_tenancy **out, char *err, size_t cap)
{
	return fs_read(fs_of(st), out, err, cap);
}

/* Writes text[0..len) to the file atomically (see the top of the file). */
static int fs_save(struct file_store *f, const char *text, size_t len, char *err, size_t cap)
{
	const char *step = "open";

	errno = 0;
	int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), dfd = -1, rc = 0;

	if (fd < 0)
		goto fail;
	step = "write";
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	rc = close(fd);
	fd = -1;
	if (rc != 0)
		goto fail;
	step = "rename";
	if (rename(f->tmp, f->path) != 0)
		goto fail;
	step = "fsync the directory of";
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		goto fail;
	close(dfd);
	return 0;
fail:
	rc = errno ? -errno : -EIO;
	snprintf(err, cap, "cannot %s %s: %s", step, strcmp(step, "rename") ? f->tmp : f->path,
	         strerror(-rc));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (strcmp(step, "fsync the directory of") != 0)
		unlink(f->tmp);
	return rc;
}

static int fs_write(struct bw_tenancy_store *st, const struct bw_tenancy_op *op, char *err,
                    size_t cap)
{
	struct file_store *f = fs_of(st);
	struct bw__tbuild *b = bw__tbuild_new(f->model);
	struct bw_tenancy *snap = NULL;
	char *text = NULL;
	size_t len;
	int rc;

	if (!b) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	rc = bw__tenancy_op_apply(b, op, err, cap);
	if (rc != 0) {
		bw__tbuild_free(&b);
		return rc;
	}
	rc = bw__tbuild_finish(&b, 0, true, NULL, &snap, err, cap);
	if (rc != 0)
		return rc;
	rc = bw__tenancy_json_dump(snap, &text, &len);
	if (rc != 0)
		snprintf(err, cap, "out of memory");
	else
		rc = fs_save(f, text, len, err, cap);
	free(text);
	if (rc != 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "tenancy: %s", err);
		fs_error(f, msg);
		bw_tenancy_release(&snap);
		return rc;
	}
	bw_tenancy_release(&f->model);
	f->model = bw_tenancy_ref(snap);

	/* Hand it to the service thread and wait until it is in force. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += f->write_wait_ms / 1000;
	until.tv_nsec += (long)(f->write_wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	bw_tenancy_release(&f->pending); /* one not published yet is older than this */
	f->pending = snap;
	f->pending_full = false;
	uint64_t ticket = ++f->handed;
	f->host->wake(f->host->arg);
	while (f->published < ticket && rc == 0)
		rc = -pthread_cond_timedwait(&f->cond, &f->mu, &until);
	pthread_mutex_unlock(&f->mu);
	if (rc != 0)
		f->host->log(
		        f->host->arg, 1,
		        "tenancy: a write is saved but the service thread has not published it "
		        "yet");
	return 0;
}

/* tenancy.json edited by hand (then SIGHUP): read again, published whole. */
static int fs_reload(struct bw_tenancy_store *st, char *err, size_t cap)
{
	struct file_store *f = fs_of(st);
	struct bw_tenancy *snap = NULL;
	int rc = fs_read(f, &snap, err, cap);
	if (rc != 0)
		return rc;
	bw_tenancy_release(&f->model);
	f->model = bw_tenancy_ref(snap);
	pthread_mutex_lock(&f->mu);
	bw_tenancy_release(&f->pending);
	f->pending = snap;
	f->pending_full = true;
	f->handed++;
	f->host->wake(f->host->arg);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static size_t fs_poll_fds(struct bw_tenancy_store *st, struct pollfd *fds, size_t cap,
                          int *timeout_ms)
{
	return 0;
}

static void fs_run(struct bw_tenancy_store *st, const struct pollfd *fds, size_t n)
{
	struct file_store *f = fs_of(st);
	struct bw_tenancy *snap;
	uint64_t ticket;
	bool full;

	pthread_mutex_lock(&f->mu);
	snap = f->pending;
	f->pending = NULL;
	full = f->pending_full;
	ticket = f->handed;
	pthread_mutex_unlock(&f->mu);
	if (!snap)
		return;
	f->host->publish(f->host->arg, snap, full);
	pthread_mutex_lock(&f->mu);
	f->published = ticket;
	f->loaded = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

static void fs_status(struct bw_tenancy_store *st, struct bw_tenancy_status *out)
{
	struct file_store *f = fs_of(st);

	out->backend = "file";
	pthread_mutex_lock(&f->mu);
	out->up = true;
	out->loaded = f->loaded;
	snprintf(out->last_error, sizeof(out->last_error), "%s", f->last_error);
	out->errors = f->errors;
	out->reloads = 1;
	pthread_mutex_unlock(&f->mu);
}

const struct bw_tenancy_store_ops bw_tenancy_store_file = {
	.name = "file",
	.open = fs_open,
	.load = fs_load,
	.write = fs_write,
	.poll_fds = fs_poll_fds,
	.run = fs_run,
	.reload = fs_reload,
	.status = fs_status,
	.close = fs_close,
};
