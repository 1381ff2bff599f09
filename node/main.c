/*
 * The `bulwark` node executable. This build answers --help and --version;
 * serving MQTT arrives with the broker core (node/core, node/io).
 */
#include "bw_version.h"
#include "node/io/features.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: bulwark [--help] [--version]\n"
	             "\n"
	             "Bulwark MQTT broker node.\n"
	             "\n"
	             "  -h, --help     show this help and exit\n"
	             "  -V, --version  show the version, libraries and io_uring support, and exit\n"
	             "\n"
	             "This build holds the MQTT codec and the build system; the broker core\n"
	             "(listeners, sessions, `-c FILE`) is not in it yet, so the node does not\n"
	             "serve MQTT. See README.md.\n");
}

static int version(void)
{
	struct bw_io_features f;

	printf("bulwark %s (%s)\n", BW_VERSION, BW_GIT_COMMIT);
	printf("liburing %s, protobuf-c %s\n", BW_URING_VERSION, BW_PROTOBUFC_VERSION);
	bw_io_features_probe(&f);
	if (f.ring_error) {
		printf("io_uring: unavailable on kernel %s (%s)\n", f.kernel,
		       strerror(-f.ring_error));
		return 0;
	}
	printf("io_uring on kernel %s: provided buffer rings %s, msg_ring %s, multishot %s, "
	       "single issuer %s: %s\n",
	       f.kernel, f.buf_ring ? "yes" : "no", f.msg_ring ? "yes" : "no",
	       f.multishot ? "yes" : "no", f.single_issuer ? "yes" : "no",
	       bw_io_features_sufficient(&f) ? "sufficient" : "INSUFFICIENT (need Linux 6.0+)");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")))
		return version();
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1)
		fprintf(stderr, "bulwark: unknown argument '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
