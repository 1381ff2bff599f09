/*
 * What the running kernel's io_uring offers, probed once at start so the
 * node can refuse to run with a clear message instead of failing on the
 * first multishot receive. `bulwark --version` prints it.
 */
#ifndef BW_IO_FEATURES_H
#define BW_IO_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

struct bw_io_features {
	int ring_error;      /* 0, or -errno from io_uring_queue_init() */
	uint32_t ring_flags; /* IORING_FEAT_* the kernel reported */
	bool buf_ring;       /* provided-buffer rings (5.19) */
	bool msg_ring;       /* ring-to-ring wakeups (5.18) */
	bool multishot;      /* multishot accept (5.19) and recv (6.0) */
	bool single_issuer;  /* IORING_SETUP_SINGLE_ISSUER (6.0) */
	char kernel[65];     /* uname release */
};

/* Fills *f. Never fails: what could not be probed reads as absent. */
void bw_io_features_probe(struct bw_io_features *f);

/* True when everything the node needs is there. */
bool bw_io_features_sufficient(const struct bw_io_features *f);

#endif
