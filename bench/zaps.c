/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps, splits, recovery and conversion churn over 1 GiB.  Setup
 * (populating) is excluded from the timing; one iteration is one whole
 * operation, and items are the 4 KiB pages it covered.
 */
#include "bench.h"

#define GIB_PAGES (1ULL << 18)

struct zap_arg {
	enum bench_tree tree;
	int level;
	enum { OP_ZAP, OP_ZAP_FILTERED, OP_SPLIT, OP_RECOVER, OP_CONVERT } op;
};

static void zap_bench(tdpb_state *st, void *argp)
{
	const struct zap_arg *a = argp;
	struct bench_vm *vm = bench_vm_start(st, a->tree);
	struct tdp_vcpu *vcpu;
	int64_t items = 0;
	bool both = a->tree == BENCH_MIRROR_NOOP;

	tdp_vcpu_create(vm->mmu, &vcpu);
	while (tdpb_keep_running(st)) {
		int ret;

		tdpb_pause(st);
		switch (a->op) {
		case OP_RECOVER:
			ret = bench_populate(vm, vcpu, 0, GIB_PAGES, TDP_LEVEL_1G, false);
			tdp_split_huge_range(vm->mmu, 0, GIB_PAGES, TDP_LEVEL_4K,
					     TDP_ALIAS_SHARED);
			break;
		case OP_CONVERT:
			/* 2 MiB chunks of private memory converted to shared:
			 * the private alias is zapped, the shared one mapped. */
			ret = bench_populate(vm, vcpu, 0, 512 * 64, TDP_LEVEL_4K, false);
			break;
		default:
			ret = bench_populate(vm, vcpu, 0, GIB_PAGES, a->level, false);
			if (both && !ret)
				ret = bench_populate(vm, vcpu, 0, GIB_PAGES, a->level, true);
			break;
		}
		if (ret) {
			tdpb_skip_with_error(st, "populate failed");
			break;
		}
		tdpb_resume(st);
		switch (a->op) {
		case OP_ZAP:
			tdp_zap_range(vm->mmu, 0, GIB_PAGES, TDP_ALIAS_SHARED);
			break;
		case OP_ZAP_FILTERED:
			/* Host unmap: only the shared alias of a VM that maps
			 * both goes. */
			tdp_zap_host_unmap(vm->mmu, 0, GIB_PAGES);
			break;
		case OP_SPLIT:
			tdp_split_huge_range(vm->mmu, 0, GIB_PAGES, TDP_LEVEL_4K,
					     TDP_ALIAS_SHARED);
			break;
		case OP_RECOVER:
			tdp_recover_huge_pages(vm->mmu, 0, GIB_PAGES, TDP_LEVEL_1G,
					       TDP_ALIAS_SHARED);
			break;
		case OP_CONVERT:
			for (tdp_gfn_t g = 0; g < 512 * 64; g += 512) {
				tdp_zap_convert_to_shared(vm->mmu, g, g + 512);
				bench_populate(vm, vcpu, g, 512, TDP_LEVEL_4K, true);
			}
			break;
		}
		tdpb_pause(st);
		tdp_zap_slot_deleted(vm->mmu, 0, GIB_PAGES);
		tdpb_resume(st);
		items += a->op == OP_CONVERT ? 512 * 64 : (int64_t)GIB_PAGES;
	}
	tdpb_set_items_processed(st, items);
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
