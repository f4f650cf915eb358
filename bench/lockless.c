/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lockless lookups, an aging scan, and a dirty-logging cycle over a
 * 1 GiB populated range of 4 KiB mappings.  Every call's result is
 * checked: a lookup finds a 4 KiB leaf, an aging scan finds every leaf
 * young the first time and none after, a dirty cycle write-protects what
 * was writable and fixes every write fault it takes (its harvest only
 * scans: nothing writes through the leaves, so no dirty bit is set).
 */
#include <string.h>

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

	if (!bench_check(st, !tdp_vcpu_create(vm->mmu, &vcpu), "no vCPU")) {
		bench_vm_finish(st, vm);
		return;
	}
	if (!bench_check(st, !bench_populate(vm, vcpu, 0, GIB_PAGES,
					     TDP_LEVEL_4K, false),
			 "populate failed"))
		goto out;

	switch (op) {
	case OP_LOOKUP: {
		uint64_t bad = 0;

		while (tdpb_keep_running_batch(st, 512)) {
			for (int i = 0; i < 512; i++, g = (g + 4099) & (GIB_PAGES - 1)) {
				tdp_spte_t spte;
				int level;

				bad += tdp_lookup(vm->mmu, g, TDP_ALIAS_SHARED,
						  &spte, &level) != 0 ||
				       level != TDP_LEVEL_4K;
				tdpb_do_not_optimize(spte);
			}
			items += 512;
		}
		bench_check(st, !bad, "a lookup did not find its 4 KiB leaf");
		break;
	}
	case OP_AGE: {
		int64_t young = 0;
		bool first = true, ok = true;

		/* Every leaf is young after the populate, none after. */
		while (ok && tdpb_keep_running(st)) {
			young = tdp_age_range(vm->mmu, 0, GIB_PAGES, true,
					      TDP_ALIAS_SHARED);
			ok = young == (first ? (int64_t)GIB_PAGES : 0);
			first = false;
			items += (int64_t)GIB_PAGES;
		}
		bench_check(st, ok, "the aging scan did not find the young leaves");
		break;
	}
	case OP_DIRTY_CYCLE: {
		bool ok = true, first = true;

		/* Write-protect 1 GiB, take a write fault on 1/8 of it
		 * (lockless fast fix), harvest. */
		while (ok && tdpb_keep_running(st)) {
			int64_t fixed = 0;
			int wp, harvested;

			wp = tdp_wrprot_range(vm->mmu, 0, GIB_PAGES, TDP_ALIAS_SHARED);
			for (tdp_gfn_t p = 0; p < GIB_PAGES; p += 8)
				fixed += tdp_fast_fix(vm->mmu, p,
						      TDP_PROT_READ | TDP_PROT_WRITE) == 1;
			harvested = tdp_harvest_dirty(vm->mmu, 0, GIB_PAGES, bitmap,
						      TDP_ALIAS_SHARED);
			tdpb_pause(st);
			/* Every leaf is writable after the populate; after
			 * that, the 1/8 the fast fixes made writable again.
			 * Nothing here writes through the leaves, so no dirty
			 * bit is set and the harvest only scans. */
			ok = bench_check(st, wp == (first ? (int)GIB_PAGES
							  : (int)(GIB_PAGES / 8)) &&
						     fixed == GIB_PAGES / 8 &&
						     harvested >= 0,
					 "the dirty cycle did not write-protect and fix what it should");
			first = false;
			if (!ok)
				break;
			/* The next harvest reports what it finds anew. */
			memset(bitmap, 0, sizeof(bitmap));
			tdpb_resume(st);
			items += (int64_t)GIB_PAGES;
		}
		break;
	}
	}
	tdpb_set_items_processed(st, items);
out:
	tdp_vcpu_destroy(vcpu);
	bench_vm_finish(st, vm);
}

void bench_register_lockless(void)
{
	tdpb_unit_ns(tdpb_register("lookup/lockless", lockless_bench, (void *)OP_LOOKUP));
	tdpb_unit_ns(tdpb_register("access_tracking/age_1g", lockless_bench, (void *)OP_AGE));
	tdpb_unit_ns(tdpb_register("dirty_log/cycle_1g", lockless_bench, (void *)OP_DIRTY_CYCLE));
}
