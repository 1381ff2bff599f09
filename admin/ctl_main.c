/*
 * bulwarkctl's run (see ctl_main.h): parse, build, send, show. The answer
 * is checked against the protocol before anything is printed: a line that
 * is not {"v": 1, "ok": ...} is an error, not a result.
 */
#include "admin/ctl_main.h"
#include "admin/ctl_args.h"
#include "admin/ctl_conn.h"
#include "bw_version.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: bulwarkctl [--socket PATH] [--json] [--timeout S] COMMAND ...\n"
	        "\n"
	        "Operate a Bulwark node through its admin socket.\n"
	        "\n"
	        "  --socket PATH  admin socket (default $BULWARKCTL_SOCKET, else %s)\n"
	        "  --json         print the node's result (or error) as JSON\n"
	        "  --timeout S    seconds to wait for the node's answer (default %d)\n"
	        "  -h, --help     show this help and exit\n"
	        "  -V, --version  show the version and exit\n"
	        "\n",
	        BW_ADMIN_SOCKET_DEFAULT, BW_CTL_TIMEOUT_S_DEFAULT);
	bw_ctl_cmds_summary(out);
	fprintf(out,
	        "\nExit status: 0 done, 1 error (from the node, or cannot connect), 2 usage.\n");
}

static void print_json(FILE *out, const json_t *v)
{
	json_dumpf(v, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	fputc('\n', out);
}

/* Prints the node's error: "bulwarkctl: CODE: MESSAGE" on err, and the
 * error object on out with --json. */
static int node_error(struct bw_ctl_io *io, bool json, const json_t *error)
{
	char *code = bw_ctl_cell(json_object_get(error, "code"));
	char *msg = bw_ctl_cell(json_object_get(error, "message"));

	if (json)
		print_json(io->out, error);
	fprintf(io->err, "bulwarkctl: %s: %s\n", code ? code : "?", msg ? msg : "?");
	free(code);
	free(msg);
	return BW_CTL_EXIT_ERROR;
}

/* Checks the answer line and shows it. */
static int show(struct bw_ctl_io *io, const struct bw_ctl_args *a, const struct bw_ctl_cmd *cmd,
                const json_t *req, const char *line)
{
	json_error_t e;
	json_t *ans = json_loads(line, JSON_REJECT_DUPLICATES, &e),
	       *ok = json_object_get(ans, "ok");
	json_t *result = json_object_get(ans, "result");
	int rc = BW_CTL_EXIT_OK;

	if (!json_is_object(ans) || !json_is_boolean(ok) ||
	    json_integer_value(json_object_get(ans, "v")) != 1) {
		fprintf(io->err, "bulwarkctl: %s: the answer is not admin protocol version 1%s%s\n",
		        a->socket_path, ans ? "" : ": ", ans ? "" : e.text);
		rc = BW_CTL_EXIT_ERROR;
	} else if (!json_is_true(ok)) {
		rc = node_error(io, a->json, json_object_get(ans, "error"));
	} else if (a->json) {
		print_json(io->out, result ? result : json_null());
	} else {
		bw_ctl_render(io->out, &cmd->view, json_object_get(req, "args"), result);
	}
	json_decref(ans);
	return rc;
}

static int call(struct bw_ctl_io *io, const struct bw_ctl_args *a, const struct bw_ctl_cmd *cmd,
                json_t *req)
{
	char *line = json_dumps(req, JSON_COMPACT), *reply = NULL, err[512];
	int rc;

	if (!line) {
		fprintf(io->err, "bulwarkctl: out of memory\n");
		return BW_CTL_EXIT_ERROR;
	}
	rc = bw_ctl_conn_call(a->socket_path, line, strlen(line), (int)a->timeout_s * 1000, &reply,
	                      err, sizeof(err));
	explicit_bzero(line, strlen(line)); /* it may hold a password */
	free(line);
	if (rc < 0) {
		fprintf(io->err, "bulwarkctl: %s\n", err);
		return BW_CTL_EXIT_ERROR;
	}
	rc = show(io, a, cmd, req, reply);
	free(reply);
	return rc;
}

int bw_ctl_main(int argc, char **argv, const char *env_socket, struct bw_ctl_io *io)
{
	struct bw_ctl_args a;
	const struct bw_ctl_cmd *cmd;
	json_t *req;
	int rc;

	switch (bw_ctl_args_parse(argc, argv, env_socket, &a)) {
	case BW_CTL_HELP:
		usage(io->out);
		return BW_CTL_EXIT_OK;
	case BW_CTL_VERSION:
		fprintf(io->out, "bulwarkctl %s (%s)\n", BW_VERSION, BW_GIT_COMMIT);
		return BW_CTL_EXIT_OK;
	case BW_CTL_USAGE:
		fprintf(io->err, "bulwarkctl: %s%s%s\n", a.error, a.error_arg ? ": " : "",
		        a.error_arg ? a.error_arg : "");
		fprintf(io->err, "bulwarkctl --help lists the options and commands\n");
		return BW_CTL_EXIT_USAGE;
	case BW_CTL_RUN:
		break;
	}
	rc = bw_ctl_build(argc - a.cmd_index, argv + a.cmd_index, io, &cmd, &req);
	if (rc != BW_CTL_EXIT_OK || !req)
		return rc;
	rc = call(io, &a, cmd, req);
	bw_ctl_forget_password(req);
	json_decref(req);
	return rc;
}
