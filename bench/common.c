/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void flush_range(void *ctx, tdp_gfn_t gfn, uint64_t n)
{
	(void)ctx, (void)gfn, (void)n;
}

static void flush_all(void *ctx)
{
	(void)ctx;
}

int bench_noop_table(void *ctx, tdp_gfn_t gfn, int level,
		     struct tdp_ext_table *e)
{
	(void)ctx, (void)gfn, (void)level, (void)e;
	return 0;
}

int bench_noop_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	(void)ctx, (void)gfn, (void)level, (void)pfn;
	return 0;
}

static const struct tdp_private_backend noop_backend = {
	.link_table  = bench_noop_table,
	.set_leaf    = bench_noop_leaf,
	.remove_leaf = bench_noop_leaf,
	.free_table  = bench_noop_table,
};

/* Published by thread 0 before the start barrier of the run. */
static struct bench_vm *current_vm;

struct bench_vm *bench_vm_create(const struct tdp_private_backend *backend)
{
	struct bench_vm *vm = calloc(1, sizeof(*vm));
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = { .flush_range = flush_range, .flush_all = flush_all },
		.backend = backend,
		.direct_bits = backend ? BENCH_SHARED_BIT : 0,
	};

	if (!vm)
		return NULL;
	vm->tree = backend ? BENCH_MIRROR_NOOP : BENCH_DIRECT;
	pthread_mutex_init(&vm->global_lock, NULL);
	if (tdp_mmu_create(&cfg, &vm->mmu)) {
		pthread_mutex_destroy(&vm->global_lock);
		free(vm);
		return NULL;
	}
	return vm;
}

void bench_vm_destroy(struct bench_vm *vm)
{
	tdp_mmu_destroy(vm->mmu);
	pthread_mutex_destroy(&vm->global_lock);
	free(vm);
}

struct bench_vm *bench_vm_start(tdpb_state *st, enum bench_tree tree)
{
	if (tdpb_thread_index(st) == 0) {
		struct bench_vm *vm = bench_vm_create(
			tree == BENCH_MIRROR_NOOP ? &noop_backend : NULL);

		if (!vm) {
			fprintf(stderr, "bench: cannot create the MMU\n");
			abort();
		}
		pthread_barrier_init(&vm->done, NULL, (unsigned)tdpb_thread_count(st));
		__atomic_store_n(&current_vm, vm, __ATOMIC_RELEASE);
	}
	tdp_thread_register();
	/* Runs are sequential: the previous run's thread 0 cleared it. */
	while (!__atomic_load_n(&current_vm, __ATOMIC_ACQUIRE))
		sched_yield();
	return current_vm;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_wall_start(tdpb_state *st, struct bench_vm *vm)
{
	if (tdpb_thread_index(st) == 0)
		vm->t_start = now_seconds();
}

void bench_wall_end(tdpb_state *st, struct bench_vm *vm)
{
	if (tdpb_thread_index(st) == 0)
		vm->t_end = now_seconds();
}

void bench_vm_add_items(struct bench_vm *vm, int64_t items)
{
	__atomic_add_fetch(&vm->items, (uint64_t)items, __ATOMIC_RELAXED);
}

void bench_vm_finish(tdpb_state *st, struct bench_vm *vm)
{
	pthread_barrier_wait(&vm->done);
	if (tdpb_thread_index(st) == 0) {
		uint64_t fixed = __atomic_load_n(&vm->fixed, __ATOMIC_RELAXED);

		if (vm->expect_fixed && fixed != vm->expect_fixed)
			tdpb_skip_with_error(st, "the run did not fix the faults it should");
		double wall = vm->t_end - vm->t_start;
		uint64_t items = __atomic_load_n(&vm->items, __ATOMIC_RELAXED);

		if (wall > 0 && items)
			tdpb_counter(st, "wall_items_per_second",
				     (double)items / wall, false);
		pthread_barrier_destroy(&vm->done);
		__atomic_store_n(&current_vm, NULL, __ATOMIC_RELEASE);
		bench_vm_destroy(vm);
	}
	tdp_thread_unregister();
}

int bench_fault(struct bench_vm *vm, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		int max_level)
{
	struct tdp_fault f = {
		.fault_gfn = gfn, /* with BENCH_SHARED_BIT: the shared alias */
		.pfn = BENCH_PFN(gfn),
		.prot = TDP_PROT_READ | TDP_PROT_WRITE,
		.max_level = max_level,
	};
	int ret;

	do {
		f.mmu_seq = tdp_mmu_seq(vm->mmu);
		ret = tdp_map(vcpu, &f);
	} while (ret == TDP_FAULT_RETRY);
	return ret;
}

int bench_populate(struct bench_vm *vm, struct tdp_vcpu *vcpu, tdp_gfn_t start,
		   uint64_t pages, int level, bool shared)
{
	for (tdp_gfn_t g = start; g < start + pages; g += tdp_level_pages(level)) {
		int ret = bench_fault(vm, vcpu, shared ? g | BENCH_SHARED_BIT : g, level);

		if (ret != TDP_FAULT_FIXED)
			return ret < 0 ? ret : -EEXIST;
	}
	return 0;
}

uint64_t bench_leaves(struct tdp_mmu *mmu, int type, int level)
{
	struct tdp_stats s;

	tdp_mmu_get_stats(mmu, &s);
	return s.leaves[type][level];
}

bool bench_check(tdpb_state *st, bool ok, const char *what)
{
	if (!ok)
		tdpb_skip_with_error(st, what);
	return ok;
}

void bench_fault_run_end(tdpb_state *st, struct bench_vm *vm,
			 struct tdp_vcpu *vcpu, int64_t items)
{
	bench_vm_add_items(vm, items);
	tdpb_set_items_processed(st, items);
	if (tdpb_thread_index(st) == 0)
		tdpb_counter(st, "pt_bytes_per_4k_page",
			     bench_table_bytes_per_page(
				     vm->mmu, vm->tree == BENCH_DIRECT
						      ? TDP_ROOT_DIRECT
						      : TDP_ROOT_MIRROR),
			     false);
	tdp_vcpu_destroy(vcpu);
}

double bench_table_bytes_per_page(struct tdp_mmu *mmu, int root_type)
{
	struct tdp_stats s;
	double tables = 0, pages = 0;

	tdp_mmu_get_stats(mmu, &s);
	for (int l = 1; l <= TDP_MAX_LEVEL; l++) {
		tables += (double)s.tables[root_type][l];
		pages += (double)s.leaves[root_type][l] * (double)tdp_level_pages(l);
	}
	return pages ? tables * 4096.0 / pages : 0;
}
