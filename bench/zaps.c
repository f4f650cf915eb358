/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps, splits, recovery and conversion churn over 1 GiB.  Setup
 * (populating) is excluded from the timing; one iteration is one whole
 * operation, and items are the 4 KiB pages it covered.  Each iteration
 * starts with no direct table at all (tdp_zap_all frees them), the
 * timed call's return value is checked, and so is its effect, from the
 * live leaf counts before and after; a failed check fails the run.
 */
#include "bench.h"

#define GIB_PAGES (1ULL << 18)

struct zap_arg {
	enum bench_tree tree;
	int level;
	enum { OP_ZAP, OP_ZAP_FILTERED, OP_SPLIT, OP_RECOVER, OP_CONVERT } op;
};

static uint64_t leaves(struct bench_vm *vm, int type, int level)
{
	return bench_leaves(vm->mmu, type, level);
}

/*
 * The state before the timed operation, built outside the timing, and
 * checked: @a->op's input exists in the tree.  Returns false (the run
 * failed) if it does not.
 */
static bool zap_setup(tdpb_state *st, const struct zap_arg *a,
		      struct bench_vm *vm, struct tdp_vcpu *vcpu)
{
	const int D = TDP_ROOT_DIRECT, M = TDP_ROOT_MIRROR;

	switch (a->op) {
	case OP_RECOVER:
		/* 262144 4 KiB leaves split from one 1 GiB leaf. */
		return bench_check(st, !bench_populate(vm, vcpu, 0, GIB_PAGES,
						       TDP_LEVEL_1G, false),
				   "populate failed") &&
		       bench_check(st, !tdp_split_huge_range(vm->mmu, 0, GIB_PAGES,
							     TDP_LEVEL_4K,
							     TDP_ALIAS_SHARED),
				   "split before recovery failed") &&
		       bench_check(st, leaves(vm, D, TDP_LEVEL_4K) == GIB_PAGES &&
					       !leaves(vm, D, TDP_LEVEL_1G),
				   "recovery input is not 262144 4 KiB leaves");
	case OP_CONVERT:
		/* 64 MiB of private 4 KiB leaves (the mirror keeps its
		 * tables between iterations; the leaves are mapped again). */
		return bench_check(st, !bench_populate(vm, vcpu, 0, 512 * 64,
						       TDP_LEVEL_4K, false),
				   "populate failed") &&
		       bench_check(st, leaves(vm, M, TDP_LEVEL_4K) == 512 * 64 &&
					       !leaves(vm, D, TDP_LEVEL_4K),
				   "conversion input is not 32768 private leaves");
	case OP_ZAP_FILTERED:
		/* The private alias was mapped once before the loop; the
		 * shared one is mapped here. */
		return bench_check(st, !bench_populate(vm, vcpu, 0, GIB_PAGES,
						       a->level, true),
				   "populate failed") &&
		       bench_check(st, leaves(vm, D, a->level) ==
					       GIB_PAGES / tdp_level_pages(a->level) &&
					       leaves(vm, M, a->level) ==
					       GIB_PAGES / tdp_level_pages(a->level),
				   "both aliases are not fully mapped");
	default:
		/* From no table at all, so a 1 GiB populate maps one 1 GiB
		 * leaf, not one 4 KiB leaf under last iteration's tables. */
		return bench_check(st, !bench_populate(vm, vcpu, 0, GIB_PAGES,
						       a->level, false),
				   "populate failed") &&
		       bench_check(st, leaves(vm, D, a->level) ==
					       GIB_PAGES / tdp_level_pages(a->level),
				   "the range is not mapped at the level asked");
	}
}

/* The timed operation; returns 0 or its error. */
static int zap_op(const struct zap_arg *a, struct bench_vm *vm,
		  struct tdp_vcpu *vcpu)
{
	int ret;

	switch (a->op) {
	case OP_ZAP:
		return tdp_zap_range(vm->mmu, 0, GIB_PAGES, TDP_ALIAS_SHARED);
	case OP_ZAP_FILTERED:
		/* Host unmap: only the shared alias of a VM that maps both
		 * goes. */
		return tdp_zap_host_unmap(vm->mmu, 0, GIB_PAGES);
	case OP_SPLIT:
		return tdp_split_huge_range(vm->mmu, 0, GIB_PAGES, TDP_LEVEL_4K,
					    TDP_ALIAS_SHARED);
	case OP_RECOVER:
		ret = tdp_recover_huge_pages(vm->mmu, 0, GIB_PAGES, TDP_LEVEL_1G,
					     TDP_ALIAS_SHARED);
		/* The number of huge leaves made (2 MiB ones on the way
		 * count too); zap_done() checks the result. */
		return ret > 0 ? 0 : ret < 0 ? ret : -EPROTO;
	case OP_CONVERT:
		/* 2 MiB chunks of private memory converted to shared: the
		 * private alias is zapped, the shared one mapped. */
		for (tdp_gfn_t g = 0; g < 512 * 64; g += 512) {
			ret = tdp_zap_convert_to_shared(vm->mmu, g, g + 512);
			if (!ret)
				ret = bench_populate(vm, vcpu, g, 512, TDP_LEVEL_4K,
						     true);
			if (ret)
				return ret;
		}
		return 0;
	}
	return -EINVAL;
}

/* The operation had its effect: checked outside the timing. */
static bool zap_done(tdpb_state *st, const struct zap_arg *a,
		     struct bench_vm *vm)
{
	const int D = TDP_ROOT_DIRECT, M = TDP_ROOT_MIRROR;

	switch (a->op) {
	case OP_ZAP:
		return bench_check(st, !leaves(vm, D, a->level),
				   "leaves left after the zap");
	case OP_ZAP_FILTERED:
		return bench_check(st, !leaves(vm, D, a->level) &&
					       leaves(vm, M, a->level) ==
					       GIB_PAGES / tdp_level_pages(a->level),
				   "the host unmap did not zap exactly the shared alias");
	case OP_SPLIT:
		return bench_check(st, leaves(vm, D, TDP_LEVEL_4K) == GIB_PAGES &&
					       !leaves(vm, D, TDP_LEVEL_1G) &&
					       !leaves(vm, D, TDP_LEVEL_2M),
				   "the 1 GiB leaf was not split into 262144 4 KiB leaves");
	case OP_RECOVER:
		return bench_check(st, leaves(vm, D, TDP_LEVEL_1G) == 1 &&
					       !leaves(vm, D, TDP_LEVEL_4K),
				   "the 4 KiB leaves were not recovered into one 1 GiB leaf");
	case OP_CONVERT:
		return bench_check(st, !leaves(vm, M, TDP_LEVEL_4K) &&
					       leaves(vm, D, TDP_LEVEL_4K) == 512 * 64,
				   "the conversion did not move every page to shared");
	}
	return false;
}

static void zap_bench(tdpb_state *st, void *argp)
{
	const struct zap_arg *a = argp;
	struct bench_vm *vm = bench_vm_start(st, a->tree);
	struct tdp_vcpu *vcpu;
	int64_t items = 0;
	bool have_vcpu = !tdp_vcpu_create(vm->mmu, &vcpu);
	bool ok = bench_check(st, have_vcpu, "no vCPU");

	/* The private alias of the filtered zap stays mapped throughout. */
	if (ok && a->op == OP_ZAP_FILTERED)
		ok = bench_check(st, !bench_populate(vm, vcpu, 0, GIB_PAGES,
						     a->level, false),
				 "populate of the private alias failed");
	/* After a failed check the run is over: no more pause or resume. */
	while (ok && tdpb_keep_running(st)) {
		int ret;

		tdpb_pause(st);
		if (!zap_setup(st, a, vm, vcpu))
			break;
		tdpb_resume(st);
		ret = zap_op(a, vm, vcpu);
		tdpb_pause(st);
		/* Every iteration starts with no direct table at all. */
		ok = bench_check(st, !ret, "the timed call failed") &&
		     zap_done(st, a, vm) &&
		     bench_check(st, !tdp_zap_all(vm->mmu) &&
					     !leaves(vm, TDP_ROOT_DIRECT, TDP_LEVEL_4K),
				 "reset failed");
		if (!ok)
			break;
		tdpb_resume(st);
		items += a->op == OP_CONVERT ? 512 * 64 : (int64_t)GIB_PAGES;
	}
	tdpb_set_items_processed(st, items);
	if (have_vcpu)
		tdp_vcpu_destroy(vcpu);
	bench_vm_finish(st, vm);
}

static struct zap_arg zap_4k = { BENCH_DIRECT, TDP_LEVEL_4K, OP_ZAP };
static struct zap_arg zap_2m = { BENCH_DIRECT, TDP_LEVEL_2M, OP_ZAP };
static struct zap_arg zap_filtered = { BENCH_MIRROR_NOOP, TDP_LEVEL_4K, OP_ZAP_FILTERED };
static struct zap_arg split_1g = { BENCH_DIRECT, TDP_LEVEL_1G, OP_SPLIT };
static struct zap_arg recover_1g = { BENCH_DIRECT, TDP_LEVEL_1G, OP_RECOVER };
static struct zap_arg convert = { BENCH_MIRROR_NOOP, TDP_LEVEL_4K, OP_CONVERT };

void bench_register_zaps(void)
{
	tdpb_unit_ns(tdpb_register("zap/1g_4k", zap_bench, &zap_4k));
	tdpb_unit_ns(tdpb_register("zap/1g_2m", zap_bench, &zap_2m));
	tdpb_unit_ns(tdpb_register("zap/1g_4k_shared_of_both", zap_bench, &zap_filtered));
	tdpb_unit_ns(tdpb_register("huge/split_1g_to_4k", zap_bench, &split_1g));
	tdpb_unit_ns(tdpb_register("huge/recover_1g_from_4k", zap_bench, &recover_1g));
	tdpb_unit_ns(tdpb_register("conversion/churn_2m_to_shared", zap_bench, &convert));
}
