/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tdpbench: every libtdp benchmark and its baselines in one binary. */
#include "bench.h"

int main(int argc, char **argv)
{
	bench_register_limits();
	bench_register_faults();
	bench_register_zaps();
	bench_register_lockless();
	bench_register_replay();
	bench_register_mixed();
	bench_register_private_huge();
	return tdpb_main(argc, argv);
}
