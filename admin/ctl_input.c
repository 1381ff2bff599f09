/*
 * What bulwarkctl reads besides its command line: files whose text a request
 * carries (a CA bundle, a JWK Set, a Mosquitto password file) and passwords,
 * which are only ever read from standard input so they never show in ps or
 * a shell's history.
 */
#include "admin/ctl_cmds.h"
#include "admin/ctl_conn.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* MQTT's password field holds at most 65535 bytes. */
#define PASSWORD_MAX 65535

json_t *bw_ctl_read_file(struct bw_ctl_call *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(BW_CTL_LINE_MAX + 1);
	size_t n = 0;
	json_t *text = NULL;
	int e = 0;

	if (!f || !buf) {
		e = errno;
		goto out;
	}
	n = fread(buf, 1, BW_CTL_LINE_MAX + 1, f);
	if (ferror(f))
		e = errno ? errno : EIO;
	else if (n > BW_CTL_LINE_MAX)
		bw_ctl_fail(c, "%s: over 1 MiB, more than the admin protocol carries", path);
	else if (!(text = json_stringn(buf, n)))
		bw_ctl_fail(c, "%s: not UTF-8 text", path);
out:
	if (e)
		bw_ctl_fail(c, "cannot read %s: %s", path, strerror(e));
	if (f)
		fclose(f);
	free(buf);
	return text;
}

/*
 * Reads one line of in into buf (PASSWORD_MAX bytes): returns its length
 * without the newline, -1 at end of input, -2 when too long, -3 when it
 * holds a NUL byte. The buffer is the caller's to wipe.
 */
static long read_line(FILE *in, char *buf)
{
	size_t n = 0;
	int ch;

	while ((ch = getc(in)) != EOF && ch != '\n') {
		if (n == PASSWORD_MAX)
			return -2;
		if (ch == 0)
			return -3;
		buf[n++] = (char)ch;
	}
	return ch == EOF && n == 0 ? -1 : (long)n;
}

/* What the terminal was before echo_off(), for a signal handler to put
 * back; saved_fd is -1 while echo is on. */
static struct termios saved;
static volatile sig_atomic_t saved_fd = -1;
static const int fatal_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP };
#define NSIG_FATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))

/* Ctrl-C at the prompt must not leave the operator's shell without echo. */
static void restore_and_die(int sig)
{
	if (saved_fd >= 0)
		tcsetattr(saved_fd, TCSAFLUSH, &saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Turns echo off on the terminal fd (newlines still echo) until echo_on().
 * Returns 0 or -errno. */
static int echo_off(int fd, struct sigaction *old)
{
	struct termios quiet;
	struct sigaction sa = { .sa_handler = restore_and_die };

	if (tcgetattr(fd, &saved) < 0)
		return -errno;
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	saved_fd = fd;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIG_FATAL; i++)
		sigaction(fatal_signals[i], &sa, &old[i]);
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		int e = errno;
		for (size_t i = 0; i < NSIG_FATAL; i++)
			sigaction(fatal_signals[i], &old[i], NULL);
		saved_fd = -1;
		return -e;
	}
	return 0;
}

static void echo_on(int fd, const struct sigaction *old)
{
	tcsetattr(fd, TCSAFLUSH, &saved);
	saved_fd = -1;
	for (size_t i = 0; i < NSIG_FATAL; i++)
		sigaction(fatal_signals[i], &old[i], NULL);
}

static int read_error(struct bw_ctl_call *c, long n)
{
	if (n == -1)
		return bw_ctl_fail(c, "no password on standard input");
	if (n == -2)
		return bw_ctl_fail(c, "the password is longer than %d bytes", PASSWORD_MAX);
	if (n == -3)
		return bw_ctl_fail(c, "the password holds a NUL byte");
	return bw_ctl_fail(c, "the password is empty");
}

/* Reads the password into one (and, from a terminal, again into two). */
static int read_both(struct bw_ctl_call *c, char *one, char *two, long *len)
{
	int fd = fileno(c->io->in);
	long n;

	if (fd < 0 || !isatty(fd)) {
		n = read_line(c->io->in, one);
		*len = n;
		return n > 0 ? 0 : read_error(c, n);
	}
	struct sigaction old[NSIG_FATAL];
	int rc = echo_off(fd, old);
	if (rc < 0)
		return bw_ctl_fail(c, "cannot turn the terminal's echo off: %s", strerror(-rc));
	fputs("Password: ", c->io->err);
	fflush(c->io->err);
	n = read_line(c->io->in, one);
	long again = n;
	if (n > 0) {
		fputs("Again: ", c->io->err);
		fflush(c->io->err);
		again = read_line(c->io->in, two);
	}
	echo_on(fd, old);
	if (n <= 0)
		return read_error(c, n);
	if (again != n || memcmp(one, two, (size_t)n))
		return bw_ctl_fail(c, "the passwords do not match");
	*len = n;
	return 0;
}

int bw_ctl_read_password(struct bw_ctl_call *c)
{
	char *one = malloc(PASSWORD_MAX), *two = malloc(PASSWORD_MAX);
	long n = 0;
	int rc = !one || !two ? bw_ctl_fail(c, "out of memory") : read_both(c, one, two, &n);

	if (rc == 0) {
		json_t *v = json_stringn(one, (size_t)n);
		if (!v)
			rc = bw_ctl_fail(c, "the password is not UTF-8");
		else if (json_object_set_new(c->args, "password", v) < 0)
			rc = bw_ctl_fail(c, "out of memory");
	}
	if (one)
		explicit_bzero(one, PASSWORD_MAX);
	if (two)
		explicit_bzero(two, PASSWORD_MAX);
	free(one);
	free(two);
	return rc;
}

void bw_ctl_forget_password(json_t *req)
{
	json_t *v = json_object_get(json_object_get(req, "args"), "password");

	/* jansson keeps a string's bytes in memory it allocated writable; the
	 * const of json_string_value() is its API's, not the storage's. */
	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
}
