/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private huge pages: demote and promote of 2 MiB private leaves.
 *
 *   private_huge/demote_by_fault/noop   a 4 KiB fault below a private
 *       2 MiB leaf, which demotes it under the read lock; backend callbacks
 *       that do nothing, so the row is the engine's cost.
 *   private_huge/demote_by_zap/noop     a conversion of one 4 KiB page of a
 *       private 2 MiB leaf: demote under the write lock, then remove one
 *       leaf.
 *   private_huge/promote/noop           tdp_promote_private() of one 2 MiB
 *       range holding a demoted table.
 *   private_huge/demote_by_fault/sim, private_huge/promote/sim
 *       the same through the simulator's backend and its strict TDX
 *       module (BLOCK, TRACK, kick, PAGE.DEMOTE / PAGE.PROMOTE, S-EPT page
 *       allocated and freed by the host).
 *   limit/split_fill_2m                 filling one fresh 4 KiB table with
 *       512 SPTEs by plain stores: the memory cost any split pays.
 *
 * Every timed call's result is checked, and outside the timed region the
 * engine's counters must show the demotes and promotes (and no write lock
 * taken by a fault); a mismatch fails the benchmark instead of printing a
 * number.  Items are 2 MiB pages demoted or promoted.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* 2 MiB leaves per iteration of the noop rows. */
#define NR_LEAVES 64
#define PAGES_2M 512

static int noop_resize(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
		       struct tdp_ext_table *e)
{
	(void)ctx, (void)gfn, (void)level, (void)pfn, (void)e;
	return 0;
}

static const struct tdp_private_backend resizing_backend = {
	.link_table       = bench_noop_table,
	.set_leaf         = bench_noop_leaf,
	.remove_leaf      = bench_noop_leaf,
	.free_table       = bench_noop_table,
	.ext_table_size   = 4096,
	.demote_leaf      = noop_resize,
	.demote_in_faults = true,
	.promote_leaf     = noop_resize,
};

enum huge_op { OP_DEMOTE_FAULT, OP_DEMOTE_ZAP, OP_PROMOTE };

static struct tdp_stats stats_of(struct tdp_mmu *mmu)
{
	struct tdp_stats st;

	tdp_mmu_get_stats(mmu, &st);
	return st;
}

/* Map NR_LEAVES private 2 MiB leaves, and demote them for a promote. */
static int setup_leaves(struct bench_vm *vm, struct tdp_vcpu *vcpu,
			bool demote)
{
	int ret = bench_populate(vm, vcpu, 0, NR_LEAVES * PAGES_2M,
				 TDP_LEVEL_2M, false);

	for (int i = 0; !ret && demote && i < NR_LEAVES; i++)
		if (bench_fault(vm, vcpu, (tdp_gfn_t)i * PAGES_2M + 1,
				TDP_LEVEL_4K) != TDP_FAULT_SPURIOUS)
			ret = -EINVAL;
	return ret;
}

static void noop_bench(tdpb_state *st, void *argp)
{
	const enum huge_op op = *(const enum huge_op *)argp;
	struct bench_vm *vm = NULL;
	const char *err = NULL;
	struct tdp_stats before, after;
	struct tdp_vcpu *vcpu = NULL;
	int64_t items = 0;

	tdp_thread_register();
	while (tdpb_keep_running(st)) {
		int bad = 0;

		/* A fresh VM each time: the mirror's tables go only with it. */
		tdpb_pause(st);
		vm = bench_vm_create(&resizing_backend);
		if (!vm || tdp_vcpu_create(vm->mmu, &vcpu)) {
			err = "cannot create the VM";
			break;
		}
		if (setup_leaves(vm, vcpu, op == OP_PROMOTE)) {
			err = "setup failed";
			break;
		}
		before = stats_of(vm->mmu);
		tdpb_resume(st);
		switch (op) {
		case OP_DEMOTE_FAULT:
			for (int i = 0; i < NR_LEAVES; i++)
				bad |= bench_fault(vm, vcpu,
						   (tdp_gfn_t)i * PAGES_2M + 7,
						   TDP_LEVEL_4K) !=
				       TDP_FAULT_SPURIOUS;
			break;
		case OP_DEMOTE_ZAP:
			for (int i = 0; i < NR_LEAVES; i++) {
				tdp_gfn_t g = (tdp_gfn_t)i * PAGES_2M + 7;

				bad |= tdp_zap_convert_to_shared(vm->mmu, g,
								 g + 1) != 0;
			}
			break;
		case OP_PROMOTE:
			bad = tdp_promote_private(vm->mmu, 0,
						  NR_LEAVES * PAGES_2M) !=
			      NR_LEAVES;
			break;
		}
		tdpb_pause(st);
		after = stats_of(vm->mmu);
		if (bad) {
			err = "a timed call failed";
		} else if (op == OP_PROMOTE) {
			if (after.promotes - before.promotes != NR_LEAVES)
				err = "promotes did not happen";
		} else if (after.demotes - before.demotes != NR_LEAVES) {
			err = "demotes did not happen";
		} else if (op == OP_DEMOTE_FAULT &&
			   (after.fault_demotes - before.fault_demotes !=
				    NR_LEAVES ||
			    after.fault_write_locks != 0 ||
			    after.write_locks != before.write_locks)) {
			err = "faults took the write lock or did not demote";
		}
		if (err)
			break;
		tdp_vcpu_destroy(vcpu);
		bench_vm_destroy(vm);
		vcpu = NULL;
		vm = NULL;
		tdpb_resume(st);
		items += NR_LEAVES;
	}
	if (err)
		tdpb_skip_with_error(st, err);
	tdpb_set_items_processed(st, items);
	if (vcpu)
		tdp_vcpu_destroy(vcpu);
	if (vm)
		bench_vm_destroy(vm);
	tdp_thread_unregister();
}

/*
 * Through the simulator: one vCPU's guest accepts a 2 MiB page, a 4 KiB
 * host pre-fault below it demotes it (the backend's demote from a fault),
 * a host recovery promotes it back.  One of the two is timed.
 */
static void sim_bench(tdpb_state *st, void *argp)
{
	const enum huge_op op = *(const enum huge_op *)argp;
	struct sim_config cfg;
	struct tdp_stats before, after;
	const char *err = NULL;
	struct sim *s = NULL;
	tdp_gfn_t base;
	int64_t items = 0;

	sim_config_default(&cfg);
	cfg.nr_vcpus = 1;
	cfg.guest_bytes = 4ULL << 20;
	cfg.private_pct = 100;
	cfg.busy_pct = 0;
	cfg.fail_pct = 0;
	cfg.event_rate = 0;
	cfg.split_pct = 0;
	cfg.progress = false;
	cfg.print_limit = 5;
	cfg.seed = 1;
	/* No initial image (4 KiB PAGE.ADDs) and no MMIO window in the
	 * region the benchmark splits and merges. */
	cfg.image_pages = 0;
	cfg.mmio_pages = 0;
	if (sim_create(&cfg, &s)) {
		tdpb_skip_with_error(st, "cannot create the simulator");
		return;
	}
	base = sim_layout_region_gfn(&s->layout, 0);
	/* The guest accepts the first region as one 2 MiB page. */
	if (sim_step_access(s, 0, base, true)) {
		err = "the guest's first access failed";
		goto out;
	}
	while (tdpb_keep_running(st)) {
		tdpb_pause(st);
		if (op == OP_PROMOTE)
			sim_step_prefault(s, base + 1, 1);
		before = stats_of(s->mmu);
		tdpb_resume(st);
		if (op == OP_PROMOTE)
			sim_step_recover(s, base, PAGES_2M);
		else
			sim_step_prefault(s, base + 1, 1);
		tdpb_pause(st);
		after = stats_of(s->mmu);
		if (op == OP_PROMOTE ? after.promotes - before.promotes != 1
				     : after.fault_demotes -
						       before.fault_demotes !=
					       1 ||
					       after.fault_write_locks) {
			err = "the demote or promote did not happen";
			break;
		}
		if (op != OP_PROMOTE)
			sim_step_recover(s, base, PAGES_2M);
		if (sim_report_total(&s->report)) {
			err = "the simulator found a violation";
			break;
		}
		tdpb_resume(st);
		items++;
	}
	/* The data the guest wrote survived every split and merge. */
	if (!err && sim_step_access(s, 0, base, false))
		err = "the guest's last access failed";
out:
	if (!err) {
		sim_finish(s);
		if (sim_report_total(&s->report))
			err = "the simulator found a violation";
	}
	if (err)
		tdpb_skip_with_error(st, err);
	tdpb_set_items_processed(st, items);
	sim_destroy(s);
}

/* limit/split_fill_2m: 512 plain stores into a fresh 4 KiB table. */
static void split_fill(tdpb_state *st, void *arg)
{
	uint64_t *table = aligned_alloc(4096, 4096);
	const uint64_t huge = 0x12345600000ULL | 0x87;
	int64_t items = 0;

	(void)arg;
	while (tdpb_keep_running(st)) {
		for (int i = 0; i < 512; i++)
			table[i] = (huge & ~0x80ULL) + ((uint64_t)i << 12);
		__asm__ volatile("" : : "r"(table) : "memory");
		items++;
	}
	if (table[511] != (huge & ~0x80ULL) + (511ULL << 12))
		tdpb_skip_with_error(st, "fill lost a store");
	tdpb_set_items_processed(st, items);
	free(table);
}

static enum huge_op demote_fault = OP_DEMOTE_FAULT;
static enum huge_op demote_zap = OP_DEMOTE_ZAP;
static enum huge_op promote = OP_PROMOTE;

void bench_register_private_huge(void)
{
	tdpb_unit_ns(tdpb_register("private_huge/demote_by_fault/noop",
				   noop_bench, &demote_fault));
	tdpb_unit_ns(tdpb_register("private_huge/demote_by_zap/noop",
				   noop_bench, &demote_zap));
	tdpb_unit_ns(tdpb_register("private_huge/promote/noop", noop_bench,
				   &promote));
	tdpb_unit_ns(tdpb_register("private_huge/demote_by_fault/sim",
				   sim_bench, &demote_fault));
	tdpb_unit_ns(tdpb_register("private_huge/promote/sim", sim_bench,
				   &promote));
	tdpb_unit_ns(tdpb_register("limit/split_fill_2m", split_fill, NULL));
}
