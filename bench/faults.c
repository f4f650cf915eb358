/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Demand paging: fault-in populate of fresh GFNs, one fault per item.
 * Each run creates a fresh VM, so tables are allocated as in a real
 * populate; the cost includes the vCPU cache top-ups.
 */
#include "bench.h"

#include <stdio.h>

#define BATCH 512

struct populate_arg {
	enum bench_tree tree;
	int max_level;
	bool global_lock; /* baseline/global_lock: one exclusive lock */
	bool contended;   /* threads interleave GFNs under shared tables */
};

static void populate(tdpb_state *st, void *argp)
{
	const struct populate_arg *a = argp;
	struct bench_vm *vm = bench_vm_start(st, a->tree);
	int t = tdpb_thread_index(st), nt = tdpb_thread_count(st);
	uint64_t step = tdp_level_pages(a->max_level);
	tdp_gfn_t gfn, limit;
	struct tdp_vcpu *vcpu;
	int64_t items = 0;

	if (tdp_vcpu_create(vm->mmu, &vcpu)) {
		tdpb_skip_with_error(st, "vcpu create failed");
		goto out;
	}
	if (a->contended) {
		/* Neighbouring 4 KiB GFNs: every thread needs the same fresh
		 * parent tables at the same time. */
		gfn = (tdp_gfn_t)t * step;
		step *= (uint64_t)nt;
		limit = BENCH_THREAD_SPAN * 4;
	} else {
		/*
		 * Room for more faults than a run of --benchmark_min_time 0.5
		 * makes on a quiet machine (Google Benchmark overshoots its
		 * estimate by up to about 1.4x): 2^26 4 KiB faults (256 GiB)
		 * or 2^25 huge ones per thread, below the shared bit.
		 */
		uint64_t span = (step == 1 ? 1ULL << 26 : 1ULL << 25) * step;

		gfn = (tdp_gfn_t)(t + 1) * span;
		limit = gfn + span;
	}
	bench_wall_start(st, vm);
	while (tdpb_keep_running_batch(st, BATCH)) {
		for (int i = 0; i < BATCH; i++, gfn += step) {
			int ret;

			if (gfn >= limit) {
				tdpb_skip_with_error(st, "GFN window exhausted");
				break;
			}
			if (a->global_lock)
				pthread_mutex_lock(&vm->global_lock);
			ret = bench_fault(vm, vcpu, gfn, a->max_level);
			if (a->global_lock)
				pthread_mutex_unlock(&vm->global_lock);
			/* Every GFN is new: anything but a fixed fault means
			 * the fault did not map it. */
			if (ret != TDP_FAULT_FIXED) {
				tdpb_skip_with_error(st, ret < 0 ? "fault failed"
							 : "a fault on a new GFN was not fixed");
				break;
			}
		}
		items += BATCH;
	}
	bench_wall_end(st, vm);
	bench_fault_run_end(st, vm, vcpu, items);
out:
	bench_vm_finish(st, vm);
}

static struct populate_arg direct_4k = { BENCH_DIRECT, TDP_LEVEL_4K, false, false };
static struct populate_arg mirror_4k = { BENCH_MIRROR_NOOP, TDP_LEVEL_4K, false, false };
static struct populate_arg direct_2m = { BENCH_DIRECT, TDP_LEVEL_2M, false, false };
static struct populate_arg locked_4k = { BENCH_DIRECT, TDP_LEVEL_4K, true, false };
static struct populate_arg contended_4k = { BENCH_DIRECT, TDP_LEVEL_4K, false, true };
static struct populate_arg contended_mirror = { BENCH_MIRROR_NOOP, TDP_LEVEL_4K, false, true };

void bench_register_faults(void)
{
	tdpb_unit_ns(tdpb_register("demand_paging/direct_4k", populate, &direct_4k));
	tdpb_unit_ns(tdpb_register("demand_paging/mirror_4k_noop", populate, &mirror_4k));
	tdpb_unit_ns(tdpb_register("demand_paging/direct_2m", populate, &direct_2m));
	tdpb_unit_ns(tdpb_real_time(tdpb_thread_range(
		tdpb_register("demand_paging/disjoint_4k", populate, &direct_4k), 1, 2)));
	tdpb_unit_ns(tdpb_real_time(tdpb_thread_range(
		tdpb_register("baseline/global_lock", populate, &locked_4k), 1, 2)));
	tdpb_unit_ns(tdpb_real_time(tdpb_threads(
		tdpb_register("demand_paging/contended_4k", populate, &contended_4k), 2)));
	tdpb_unit_ns(tdpb_real_time(tdpb_threads(
		tdpb_register("demand_paging/contended_mirror_4k", populate, &contended_mirror), 2)));
}
