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
};

/* Thread 0 creates the VM before its loop; every thread gets it. */
struct bench_vm *bench_vm_start(tdpb_state *st, enum bench_tree tree);
/* Every thread calls this after its loop; thread 0 destroys the VM. */
void bench_vm_finish(tdpb_state *st, struct bench_vm *vm);

/* One fault of a GFN on the tree the VM benchmarks, retried until done. */
int bench_fault(struct bench_vm *vm, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		int max_level);

/* Page-table bytes per mapped 4 KiB page of @tree. */
double bench_table_bytes_per_page(struct tdp_mmu *mmu, int root_type);

void bench_register_faults(void);
void bench_register_zaps(void);
void bench_register_lockless(void);
void bench_register_limits(void);

#endif /* TDP_BENCH_H */
