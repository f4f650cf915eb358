/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trace replay: the first-touch page stream of a real program, faulted in
 * order on a fresh VM per iteration (identity placement: GFN = address >>
 * 12).  Real programs touch sparse regions of a 47-bit address space, so
 * this exercises table allocation far more than a sequential populate.
 * The trace is $TDP_BENCH_TRACE, or the shared CPython trace.  With two
 * threads, thread t replays every other line, so each keeps the
 * program's order.
 */
#include "bench.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loaded_trace {
	tdp_gfn_t *gfn;
	size_t n;
	size_t distinct;	/* distinct GFNs: the faults a replay fixes */
	size_t out_of_range;
	char error[200];
};

static struct loaded_trace trace_data;

/* GFNs a mirror VM (shared bit at GFN bit 35) can map unaliased. */
#define REPLAY_GFN_LIMIT BENCH_SHARED_BIT

static int cmp_gfn(const void *a, const void *b)
{
	tdp_gfn_t x = *(const tdp_gfn_t *)a, y = *(const tdp_gfn_t *)b;

	return x < y ? -1 : x > y;
}

static size_t count_distinct(const tdp_gfn_t *gfn, size_t n)
{
	tdp_gfn_t *copy = malloc(n * sizeof(*copy) + 1);
	size_t distinct = 0;

	if (!copy)
		return 0;
	memcpy(copy, gfn, n * sizeof(*copy));
	qsort(copy, n, sizeof(*copy), cmp_gfn);
	for (size_t i = 0; i < n; i++)
		distinct += !i || copy[i] != copy[i - 1];
	free(copy);
	return distinct;
}

static void load_trace(void)
{
	const char *path = getenv("TDP_BENCH_TRACE");
	struct trace *t;
	size_t cap = 1 << 16;
	uint64_t addr;
	int ret;

	if (!path)
		path = TDP_DEFAULT_TRACE;
	if (trace_open(path, &t, trace_data.error, sizeof(trace_data.error)))
		return;
	trace_data.gfn = malloc(cap * sizeof(tdp_gfn_t));
	while ((ret = trace_next(t, &addr)) == 1) {
		if ((addr >> 12) >= REPLAY_GFN_LIMIT) {
			trace_data.out_of_range++;
			continue;
		}
		if (trace_data.n == cap) {
			cap *= 2;
			trace_data.gfn = realloc(trace_data.gfn, cap * sizeof(tdp_gfn_t));
		}
		trace_data.gfn[trace_data.n++] = addr >> 12;
	}
	if (ret < 0) {
		snprintf(trace_data.error, sizeof(trace_data.error), "%s: %s", path,
			 trace_error(t));
		trace_data.n = 0;
	}
	trace_close(t);
	trace_data.distinct = count_distinct(trace_data.gfn, trace_data.n);
}

struct replay_arg {
	enum bench_tree tree;
	bool global_lock;
};

/*
 * One replay per run: the VM is created before the timed loop, which runs
 * exactly once (Iterations(1)); repetitions give the statistics.
 */
static void replay(tdpb_state *st, void *argp)
{
	const struct replay_arg *a = argp;
	int t = tdpb_thread_index(st), nt = tdpb_thread_count(st);
	struct bench_vm *vm = bench_vm_start(st, a->tree);
	struct tdp_vcpu *vcpu;
	int64_t items = 0;
	uint64_t fixed = 0, failed = 0;

	if (tdp_vcpu_create(vm->mmu, &vcpu)) {
		tdpb_skip_with_error(st, "vcpu create failed");
		bench_vm_finish(st, vm);
		return;
	}
	/* Every distinct GFN of the trace is fixed once, by some thread. */
	if (t == 0)
		vm->expect_fixed = trace_data.distinct;
	bench_wall_start(st, vm);
	while (tdpb_keep_running(st)) {
		if (!trace_data.n) {
			tdpb_skip_with_error(st, trace_data.error[0] ? trace_data.error
								       : "empty trace");
			break;
		}
		for (size_t i = (size_t)t; i < trace_data.n; i += (size_t)nt) {
			int ret;

			if (a->global_lock)
				pthread_mutex_lock(&vm->global_lock);
			ret = bench_fault(vm, vcpu, trace_data.gfn[i], TDP_LEVEL_4K);
			if (a->global_lock)
				pthread_mutex_unlock(&vm->global_lock);
			fixed += ret == TDP_FAULT_FIXED;
			failed += ret < 0;
			items++;
		}
	}
	bench_wall_end(st, vm);
	__atomic_fetch_add(&vm->fixed, fixed, __ATOMIC_RELAXED);
	if (failed)
		tdpb_skip_with_error(st, "a fault failed");
	bench_fault_run_end(st, vm, vcpu, items);
	bench_vm_finish(st, vm);
}

/* The same trace through the plain radix insert of limit/radix_plain. */
static void replay_radix(tdpb_state *st, void *arg)
{
	struct bench_radix *r = bench_radix_new();
	int64_t items = 0;

	(void)arg;
	while (tdpb_keep_running(st)) {
		for (size_t i = 0; i < trace_data.n; i++)
			bench_radix_insert(r, trace_data.gfn[i], 0x1000000 + trace_data.gfn[i]);
		items += (int64_t)trace_data.n;
	}
	bench_check(st, trace_data.n &&
			    bench_radix_maps(r, trace_data.gfn[0],
					     0x1000000 + trace_data.gfn[0]) &&
			    bench_radix_maps(r, trace_data.gfn[trace_data.n - 1],
					     0x1000000 + trace_data.gfn[trace_data.n - 1]),
		    "a traced GFN is not mapped");
	tdpb_set_items_processed(st, items);
	bench_radix_free(r);
}

static struct replay_arg direct = { BENCH_DIRECT, false };
static struct replay_arg mirror = { BENCH_MIRROR_NOOP, false };
static struct replay_arg locked = { BENCH_DIRECT, true };

void bench_register_replay(void)
{
	load_trace();
	tdpb_unit_ns(tdpb_iterations(
		tdpb_register("trace/limit/radix_plain", replay_radix, NULL), 1));
	tdpb_unit_ns(tdpb_iterations(tdpb_real_time(tdpb_thread_range(
		tdpb_register("trace/direct_4k", replay, &direct), 1, 2)), 1));
	tdpb_unit_ns(tdpb_iterations(
		tdpb_register("trace/mirror_4k_noop", replay, &mirror), 1));
	tdpb_unit_ns(tdpb_iterations(tdpb_real_time(tdpb_thread_range(
		tdpb_register("trace/baseline/global_lock", replay, &locked), 1, 2)), 1));
}
