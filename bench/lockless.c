/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lockless lookups, an aging scan, and a dirty-logging cycle over a
 * 1 GiB populated range of 4 KiB mappings.
 */
#include "bench.h"

#define GIB_PAGES (1ULL << 18)

enum lockless_op { OP_LOOKUP, OP_AGE, OP_DIRTY_CYCLE };

static void lockless_bench(tdpb_state *st, void *argp)
{
	enum lockless_op op = (enum lockless_op)(uintptr_t)argp;
	struct bench_vm *vm = bench_vm_start(st, BENCH_DIRECT);
	static uint64_t bitmap[GIB_PAGES / 64];
	struct tdp_vcpu *vcpu;
	int64_t items = 0;
	tdp_gfn_t g = 0;

	tdp_vcpu_create(vm->mmu, &vcpu);
	for (tdp_gfn_t p = 0; p < GIB_PAGES; p++)
		bench_fault(vm, vcpu, p, TDP_LEVEL_4K);

	switch (op) {
	case OP_LOOKUP:
		while (tdpb_keep_running_batch(st, 512)) {
			for (int i = 0; i < 512; i++, g = (g + 4099) & (GIB_PAGES - 1)) {
				tdp_spte_t spte;
				int level;

				tdp_lookup(vm->mmu, g, TDP_ALIAS_SHARED, &spte, &level);
				tdpb_do_not_optimize(spte);
			}
			items += 512;
		}
		break;
	case OP_AGE:
		while (tdpb_keep_running(st)) {
			tdp_age_range(vm->mmu, 0, GIB_PAGES, true, TDP_ALIAS_SHARED);
			items += (int64_t)GIB_PAGES;
		}
		break;
	case OP_DIRTY_CYCLE:
		/* Write-protect 1 GiB, take a write fault on 1/8 of it
		 * (lockless fast fix), harvest. */
		while (tdpb_keep_running(st)) {
			tdp_wrprot_range(vm->mmu, 0, GIB_PAGES, TDP_ALIAS_SHARED);
			for (tdp_gfn_t p = 0; p < GIB_PAGES; p += 8)
				tdp_fast_fix(vm->mmu, p, TDP_PROT_READ | TDP_PROT_WRITE);
			tdp_harvest_dirty(vm->mmu, 0, GIB_PAGES, bitmap,
					  TDP_ALIAS_SHARED);
			items += (int64_t)GIB_PAGES;
		}
		break;
	}
	tdpb_set_items_processed(st, items);
	tdp_vcpu_destroy(vcpu);
	bench_vm_finish(st, vm);
}

void bench_register_lockless(void)
{
	tdpb_unit_ns(tdpb_register("lookup/lockless", lockless_bench, (void *)OP_LOOKUP));
	tdpb_unit_ns(tdpb_register("access_tracking/age_1g", lockless_bench, (void *)OP_AGE));
	tdpb_unit_ns(tdpb_register("dirty_log/cycle_1g", lockless_bench, (void *)OP_DIRTY_CYCLE));
}
