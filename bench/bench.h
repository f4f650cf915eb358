/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared helpers of the libtdp benchmarks. */
#ifndef TDP_BENCH_H
#define TDP_BENCH_H

#include <pthread.h>
#include <tdp/tdp.h>

#include "shim.h"

/* GFNs each benchmark thread owns: 64 GiB apart, never reused in a run. */
#define BENCH_THREAD_SPAN (1ULL << 24)
#define BENCH_SHARED_BIT (1ULL << 35)
/* The host frame bench_fault() maps @gfn (as passed to it) to. */
#define BENCH_PFN(gfn) (0x1000000 + (gfn))

enum bench_tree {
	BENCH_DIRECT,      /* plain VM: direct root */
	BENCH_MIRROR_NOOP, /* private alias, backend that does nothing */
};

/* One MMU shared by the threads of a run, set up by thread 0. */
struct bench_vm {
	struct tdp_mmu *mmu;
	enum bench_tree tree;
	pthread_barrier_t done; /* every thread destroyed its vCPU */
	pthread_mutex_t global_lock; /* for baseline/global_lock */
	uint64_t items;              /* atomic: items of all threads */
	/* Faults all threads fixed (atomic), and how many the run must fix
	 * (0: not checked); bench_vm_finish() compares them. */
	uint64_t fixed, expect_fixed;
	double t_start, t_end;       /* thread 0's loop, in seconds */
};

/*
 * A VM that one thread sets up and tears down itself (benchmarks that
 * start their own threads): a plain VM (direct root only) when @backend
 * is NULL, else a confidential one whose private alias goes to @backend,
 * with the shared bit BENCH_SHARED_BIT.  NULL if the MMU cannot be made.
 * bench_vm_destroy() wants every vCPU context destroyed first.
 */
struct bench_vm *bench_vm_create(const struct tdp_private_backend *backend);
void bench_vm_destroy(struct bench_vm *vm);

/* Backend callbacks that do nothing and succeed (the noop backends). */
int bench_noop_table(void *ctx, tdp_gfn_t gfn, int level,
		     struct tdp_ext_table *e);
int bench_noop_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn);

/* Thread 0 creates the VM before its loop; every thread gets it. */
struct bench_vm *bench_vm_start(tdpb_state *st, enum bench_tree tree);
/*
 * Every thread calls this after its loop with the items it did; thread 0
 * reports wall_items_per_second (all threads' items over the wall time of
 * its loop, which the start and end barriers bracket) and destroys the VM.
 */
void bench_vm_finish(tdpb_state *st, struct bench_vm *vm);
void bench_vm_add_items(struct bench_vm *vm, int64_t items);
/* Thread 0 calls these right before and right after its loop. */
void bench_wall_start(tdpb_state *st, struct bench_vm *vm);
void bench_wall_end(tdpb_state *st, struct bench_vm *vm);

/*
 * One fault of @gfn (for a mirror VM, BENCH_SHARED_BIT set selects the
 * shared alias), retried until it is done.
 */
int bench_fault(struct bench_vm *vm, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		int max_level);

/*
 * Map [start, start + pages) with leaves of @level (the shared alias of a
 * confidential VM when @shared), one bench_fault() per leaf.  Returns 0
 * when every fault installed a new leaf, the first negative error, or
 * -EEXIST when a leaf was already there (a spurious fault).
 */
int bench_populate(struct bench_vm *vm, struct tdp_vcpu *vcpu, tdp_gfn_t start,
		   uint64_t pages, int level, bool shared);

/* Page-table bytes per mapped 4 KiB page of @tree. */
double bench_table_bytes_per_page(struct tdp_mmu *mmu, int root_type);

/*
 * The end of a faulting thread's run, after bench_wall_end(): count its
 * @items, report (thread 0) the page-table bytes per mapped page of the
 * tree the VM faults in, and destroy @vcpu.
 */
void bench_fault_run_end(tdpb_state *st, struct bench_vm *vm,
			 struct tdp_vcpu *vcpu, int64_t items);

/* The live leaves of root type @type at @level (tdp_mmu_get_stats). */
uint64_t bench_leaves(struct tdp_mmu *mmu, int type, int level);

/*
 * A benchmark's check: unless @ok, the run fails with @what (it prints no
 * number and tdpbench exits non-zero).  Returns @ok.  Call it outside the
 * timed region, or after tdpb_pause().
 */
bool bench_check(tdpb_state *st, bool ok, const char *what);

/* The plain radix tree of limit/radix_plain, for other baselines. */
struct bench_radix;
struct bench_radix *bench_radix_new(void);
void bench_radix_insert(struct bench_radix *r, uint64_t gfn, uint64_t pfn);
void bench_radix_free(struct bench_radix *r);
/* The plain tree maps @gfn to @pfn. */
bool bench_radix_maps(const struct bench_radix *r, uint64_t gfn, uint64_t pfn);

void bench_register_faults(void);
void bench_register_replay(void);
void bench_register_zaps(void);
void bench_register_lockless(void);
void bench_register_limits(void);
void bench_register_mixed(void);
void bench_register_private_huge(void);

#endif /* TDP_BENCH_H */
