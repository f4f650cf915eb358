/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tdpbench: every libtdp benchmark and its baselines in one binary. */
#include <string.h>

#include "bench.h"

/*
 * Usage: tdpbench [--verify] [Google Benchmark options]
 *   --verify  run every benchmark once, for its checks only (the test
 *             tdpbench-verify); exits non-zero if any check failed.
 */

int main(int argc, char **argv)
{
	int out = 1;

	/* Our own option, removed before Google Benchmark sees argv. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--verify"))
			tdpb_set_verify(true);
		else
			argv[out++] = argv[i];
	}
	argc = out;
	argv[argc] = NULL;

	bench_register_limits();
	bench_register_faults();
	bench_register_zaps();
	bench_register_lockless();
	bench_register_replay();
	bench_register_mixed();
	bench_register_private_huge();
	return tdpb_main(argc, argv);
}
