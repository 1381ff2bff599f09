/*
 * io_uring capability probe (see features.h). Opcodes are asked of the
 * kernel with IORING_REGISTER_PROBE; provided-buffer rings are tried for
 * real, since a kernel may know the opcode but not the registration.
 * Multishot receive has no opcode of its own: it came in 6.0 together with
 * IORING_OP_SEND_ZC, which stands in for it.
 */
#include "node/io/features.h"

#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

void bw_io_features_probe(struct bw_io_features *f)
{
	struct io_uring ring;
	struct io_uring_params params;
	struct utsname un;

	memset(f, 0, sizeof(*f));
	if (uname(&un) == 0)
		snprintf(f->kernel, sizeof(f->kernel), "%s", un.release);

	memset(&params, 0, sizeof(params));
	int rc = io_uring_queue_init_params(4, &ring, &params);
	if (rc < 0) {
		f->ring_error = rc;
		return;
	}
	f->ring_flags = params.features;

	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	if (probe) {
		f->msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
		f->multishot = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
		io_uring_free_probe(probe);
	}

	/* A one-entry buffer ring, registered and dropped again. */
	struct io_uring_buf_ring *br = NULL;
	if (posix_memalign((void **)&br, 4096, 4096) == 0) {
		struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br,
			                        .ring_entries = 1,
			                        .bgid = 0 };
		if (io_uring_register_buf_ring(&ring, &reg, 0) == 0) {
			f->buf_ring = true;
			io_uring_unregister_buf_ring(&ring, 0);
		}
		free(br);
	}
	io_uring_queue_exit(&ring);

	memset(&params, 0, sizeof(params));
	params.flags = IORING_SETUP_SINGLE_ISSUER;
	if (io_uring_queue_init_params(4, &ring, &params) == 0) {
		f->single_issuer = true;
		io_uring_queue_exit(&ring);
	}
}

bool bw_io_features_sufficient(const struct bw_io_features *f)
{
	return f->ring_error == 0 && f->buf_ring && f->msg_ring && f->multishot;
}
