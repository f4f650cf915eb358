/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mixed load: writers of mmu_lock timed while readers fault.
 *
 *   mixed/zap_1g_4k_under_faults/threads:N
 *       tdp_zap_range() of 1 GiB of 4 KiB leaves (as zap/1g_4k) while
 *       N - 1 background threads fault fresh 4 KiB pages of their own
 *       windows of the same MMU; threads:1 is the zap alone.
 *   mixed/invalidate_pairs_under_faults/4k, /2m
 *       an MMU-notifier storm: per iteration tdp_invalidate_begin(),
 *       tdp_zap_host_unmap() and tdp_invalidate_end() of one mapped
 *       4 KiB page (or one 2 MiB leaf), while one background thread
 *       faults; p50 and p99 of the pair and the thread's fault rate.
 *   mixed/invalidate_pairs_fault_only
 *       the same background thread with no storm: its fault rate alone.
 *   mixed/cross_vm_writer, mixed/cross_vm_writer_idle
 *       the same begin/zap/end on one 4 KiB page of VM B, each begun
 *       while a thread of VM A sits in a 2 ms read section of VM A (its
 *       private backend's set_leaf sleeps; 50 us between sections), and
 *       with no VM A reader.
 *   mixed/baseline/global_lock/...
 *       each of the above with every operation, faults and writes alike,
 *       serialized by one process mutex.
 *
 * The Google Benchmark thread runs the timed operations; background
 * threads are pthreads that each run starts and stops.  The benchmarks
 * time themselves (manual time): only the operation counts, not the
 * checks and refills around it.  Every call's result is checked, and
 * outside the timed region every operation is checked for its effect
 * (lookups and statistics); a failed check, here or in a background
 * thread, fails the run instead of reporting a time.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GIB_PAGES (1ULL << 18)
/* Background threads of one run; threads:N runs N - 1 of them. */
#define MIXED_MAX_BG 3
/*
 * GFNs of each background thread's window: more than a run faults at
 * 30 M faults/s for 2 s, so a window is recycled (zapped, a writer)
 * only in runs far longer than scripts/bench.sh makes.
 */
#define BG_WINDOW_PAGES (1ULL << 26)
/* Faults each background thread does before a timed operation starts. */
#define BG_WARMUP_FAULTS 256
/* Ranges a storm cycles through, each re-faulted after its pair. */
#define STORM_RANGES 64
/* What the timed thread of the fault-only run does per iteration. */
#define FAULT_ONLY_SLEEP_NS 1000000
/* VM A's read section, and its reader's pause between two of them. */
#define CROSS_VM_READ_NS 2000000
#define CROSS_VM_GAP_NS 50000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000L,
			       .tv_nsec = ns % 1000000000L };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* ---- background faulters ------------------------------------------------- */

enum faulter_phase { FAULTER_IDLE, FAULTER_RUN, FAULTER_STOP };

/*
 * A background thread that, while its phase is FAULTER_RUN, faults fresh
 * 4 KiB pages of its own window one after another (each must install a
 * leaf).  A used-up window is zapped and faulted again from its start;
 * at the start of each RUN stretch that already happens when more than
 * half of it is used, so recycling does not overlap a timed operation.
 */
struct faulter {
	pthread_t thread;
	struct bench_vm *vm;
	pthread_mutex_t *global_lock; /* taken around every MMU call, or NULL */
	tdp_gfn_t start, end;	      /* the window: unaliased, only ours */
	long gap_ns;		      /* sleep between two faults, or 0 */
	tdp_gfn_t next;		      /* faulter only: next GFN to fault */
	/* @phase (set by the controller) and @acked (the phase the faulter
	 * has seen) change under @lock, with @cond broadcast. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int phase;
	int acked;
	int error; /* first failure (negative errno), 0; under @lock */
	/* Written by the faulter, read by the controller: atomics. */
	uint64_t faults;   /* faults that installed a leaf */
	uint64_t mapped;   /* leaves the window holds */
	uint64_t zapped;   /* leaves it zapped to recycle the window */
	uint64_t recycles; /* window recycles done */
};

static void faulter_fail(struct faulter *f, int error)
{
	pthread_mutex_lock(&f->lock);
	if (!f->error)
		f->error = error;
	pthread_mutex_unlock(&f->lock);
}

/*
 * Acknowledge the current phase and sleep while it is FAULTER_IDLE (or
 * after a failure, until FAULTER_STOP).  Returns the phase to run.
 */
static int faulter_sync(struct faulter *f)
{
	int phase;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		phase = f->phase;
		if (f->acked != phase) {
			f->acked = phase;
			pthread_cond_broadcast(&f->cond);
		}
		if (phase == FAULTER_STOP ||
		    (phase == FAULTER_RUN && !f->error))
			break;
		pthread_cond_wait(&f->cond, &f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return phase;
}

static void faulter_lock(struct faulter *f)
{
	if (f->global_lock)
		pthread_mutex_lock(f->global_lock);
}

static void faulter_unlock(struct faulter *f)
{
	if (f->global_lock)
		pthread_mutex_unlock(f->global_lock);
}

/* Zap what the window holds and start it over. */
static int faulter_recycle(struct faulter *f)
{
	uint64_t mapped = __atomic_load_n(&f->mapped, __ATOMIC_RELAXED);
	int ret;

	if (f->next == f->start)
		return 0;
	faulter_lock(f);
	ret = tdp_zap_range(f->vm->mmu, f->start, f->next, TDP_ALIAS_BOTH);
	faulter_unlock(f);
	if (ret)
		return ret;
	f->next = f->start;
	__atomic_add_fetch(&f->recycles, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&f->mapped, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&f->zapped, mapped, __ATOMIC_RELEASE);
	return 0;
}

/* Fault the next page of the window: it must get a new leaf. */
static int faulter_fault_next(struct faulter *f, struct tdp_vcpu *vcpu)
{
	int ret;

	if (f->next == f->end) {
		ret = faulter_recycle(f);
		if (ret)
			return ret;
	}
	faulter_lock(f);
	ret = bench_fault(f->vm, vcpu, f->next, TDP_LEVEL_4K);
	faulter_unlock(f);
	if (ret != TDP_FAULT_FIXED)
		return ret < 0 ? ret : -EEXIST;
	f->next++;
	__atomic_add_fetch(&f->mapped, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&f->faults, 1, __ATOMIC_RELEASE);
	return 0;
}

static bool faulter_running(struct faulter *f)
{
	return __atomic_load_n(&f->phase, __ATOMIC_RELAXED) == FAULTER_RUN;
}

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	struct tdp_vcpu *vcpu = NULL;
	int ret;

	tdp_thread_register();
	ret = tdp_vcpu_create(f->vm->mmu, &vcpu);
	if (ret)
		faulter_fail(f, ret);
	while (faulter_sync(f) == FAULTER_RUN) {
		ret = 0;
		if (f->next - f->start > (f->end - f->start) / 2)
			ret = faulter_recycle(f);
		while (!ret && faulter_running(f)) {
			ret = faulter_fault_next(f, vcpu);
			if (!ret && f->gap_ns)
				sleep_ns(f->gap_ns);
		}
		if (ret)
			faulter_fail(f, ret);
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return NULL;
}

/* Start a faulter of [start, start + pages) of @vm, in FAULTER_IDLE. */
static int faulter_start(struct faulter *f, struct bench_vm *vm,
			 pthread_mutex_t *global_lock, tdp_gfn_t start,
			 uint64_t pages, long gap_ns)
{
	memset(f, 0, sizeof(*f));
	f->vm          = vm;
	f->global_lock = global_lock;
	f->start       = start;
	f->end         = start + pages;
	f->next        = start;
	f->gap_ns      = gap_ns;
	f->phase       = FAULTER_IDLE;
	f->acked       = -1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	if (pthread_create(&f->thread, NULL, faulter_main, f)) {
		pthread_cond_destroy(&f->cond);
		pthread_mutex_destroy(&f->lock);
		return -EAGAIN;
	}
	return 0;
}

/* Move the faulter to @phase and wait until it is there. */
static void faulter_set_phase(struct faulter *f, int phase)
{
	pthread_mutex_lock(&f->lock);
	f->phase = phase;
	pthread_cond_broadcast(&f->cond);
	while (f->acked != phase)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

static int faulter_error(struct faulter *f)
{
	int error;

	pthread_mutex_lock(&f->lock);
	error = f->error;
	pthread_mutex_unlock(&f->lock);
	return error;
}

static uint64_t faulter_faults(struct faulter *f)
{
	return __atomic_load_n(&f->faults, __ATOMIC_ACQUIRE);
}

/* Stop and join the thread; returns its first failure or 0. */
static int faulter_stop(struct faulter *f)
{
	int error;

	faulter_set_phase(f, FAULTER_STOP);
	pthread_join(f->thread, NULL);
	error = f->error;
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	return error;
}

/* ---- one run: the VM, the timed thread's vCPU, the faulters -------------- */

/* What a registered benchmark runs (each function reads its fields). */
struct mixed_arg {
	bool global_lock;
	int level;	/* storm: level of the leaf each pair unmaps */
	bool storm;	/* storm: false for the fault-only run */
	bool vm_reader; /* cross-VM: VM A's reader runs */
};

struct mixed_run {
	tdpb_state *st;
	struct bench_vm *vm;	      /* the VM the timed thread works on */
	struct tdp_vcpu *vcpu;	      /* the timed thread's, for refills */
	pthread_mutex_t *global_lock; /* baseline/global_lock, or NULL */
	struct faulter bg[MIXED_MAX_BG];
	int nr_bg;
	bool failed;
};

/*
 * Fail the run with a message (the first failure wins).  Inside the
 * timed loop the caller breaks out of it right after.
 */
static void mixed_fail(struct mixed_run *r, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	if (r->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->failed = true;
	tdpb_skip_with_error(r->st, msg);
}

/* Create the VM and vCPU of a run; false (and the run failed) if not. */
static bool mixed_start(struct mixed_run *r, tdpb_state *st, bool global_lock)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->st = st;
	tdp_thread_register();
	r->vm = bench_vm_create(NULL);
	if (!r->vm) {
		mixed_fail(r, "cannot create the MMU");
		return false;
	}
	r->global_lock = global_lock ? &r->vm->global_lock : NULL;
	ret = tdp_vcpu_create(r->vm->mmu, &r->vcpu);
	if (ret) {
		mixed_fail(r, "tdp_vcpu_create: %d", ret);
		return false;
	}
	return true;
}

/* Add a faulter of window @index (BG_WINDOW_PAGES GFNs) of @vm. */
static bool mixed_add_faulter(struct mixed_run *r, struct bench_vm *vm,
			      unsigned int index, long gap_ns)
{
	if (r->nr_bg == MIXED_MAX_BG) {
		mixed_fail(r, "more than %d background threads", MIXED_MAX_BG);
		return false;
	}
	if (faulter_start(&r->bg[r->nr_bg], vm, r->global_lock,
			  index * BG_WINDOW_PAGES, BG_WINDOW_PAGES, gap_ns)) {
		mixed_fail(r, "cannot start a background thread");
		return false;
	}
	r->nr_bg++;
	return true;
}

static void mixed_set_phase(struct mixed_run *r, int phase)
{
	for (int i = 0; i < r->nr_bg; i++)
		faulter_set_phase(&r->bg[i], phase);
}

static uint64_t mixed_bg_faults(struct mixed_run *r)
{
	uint64_t n = 0;

	for (int i = 0; i < r->nr_bg; i++)
		n += faulter_faults(&r->bg[i]);
	return n;
}

/* Leaves of the timed VM that its faulters hold, and have zapped. */
struct bg_leaves {
	uint64_t mapped, zapped;
};

static struct bg_leaves mixed_bg_leaves(struct mixed_run *r)
{
	struct bg_leaves n = { 0, 0 };

	for (int i = 0; i < r->nr_bg; i++) {
		if (r->bg[i].vm != r->vm)
			continue;
		n.mapped += __atomic_load_n(&r->bg[i].mapped, __ATOMIC_ACQUIRE);
		n.zapped += __atomic_load_n(&r->bg[i].zapped, __ATOMIC_ACQUIRE);
	}
	return n;
}

/* Window recycles of every faulter: 0 unless a run was very long. */
static void mixed_report_recycles(struct mixed_run *r)
{
	uint64_t n = 0;

	for (int i = 0; i < r->nr_bg; i++)
		n += __atomic_load_n(&r->bg[i].recycles, __ATOMIC_RELAXED);
	if (r->nr_bg)
		tdpb_counter(r->st, "bg_window_recycles", (double)n, false);
}

/* A background thread's failure fails the run. */
static bool mixed_bg_ok(struct mixed_run *r)
{
	for (int i = 0; i < r->nr_bg; i++) {
		int error = faulter_error(&r->bg[i]);

		if (error) {
			mixed_fail(r, "background thread %d: fault failed: %s",
				   i, strerror(-error));
			return false;
		}
	}
	return true;
}

/* Wait until every faulter did @n more faults than when called. */
static bool mixed_bg_warm_up(struct mixed_run *r, uint64_t n)
{
	for (int i = 0; i < r->nr_bg; i++) {
		uint64_t goal = faulter_faults(&r->bg[i]) + n;

		while (faulter_faults(&r->bg[i]) < goal) {
			if (!mixed_bg_ok(r))
				return false;
			sleep_ns(20000);
		}
	}
	return true;
}

/* Stop the faulters, check them, free everything; then unregister. */
static void mixed_finish(struct mixed_run *r)
{
	if (!r->failed)
		mixed_report_recycles(r);
	for (int i = 0; i < r->nr_bg; i++) {
		int error = faulter_stop(&r->bg[i]);

		if (error)
			mixed_fail(r, "background thread %d: fault failed: %s",
				   i, strerror(-error));
	}
	tdp_vcpu_destroy(r->vcpu);
	if (r->vm)
		bench_vm_destroy(r->vm);
	tdp_thread_unregister();
}

static void mixed_lock(struct mixed_run *r)
{
	if (r->global_lock)
		pthread_mutex_lock(r->global_lock);
}

static void mixed_unlock(struct mixed_run *r)
{
	if (r->global_lock)
		pthread_mutex_unlock(r->global_lock);
}

/* ---- checks -------------------------------------------------------------- */

/* @gfn is mapped by a present leaf of @level with bench_fault()'s frame. */
static bool mapped_as(struct tdp_mmu *mmu, tdp_gfn_t gfn, int level)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t base = gfn & ~(tdp_level_pages(level) - 1);
	tdp_spte_t spte;
	int at;

	return !tdp_lookup(mmu, gfn, TDP_ALIAS_SHARED, &spte, &at) &&
	       tdp_spte_is_present(fmt, spte) && at == level &&
	       tdp_spte_is_leaf(fmt, spte, at) &&
	       tdp_spte_pfn(fmt, spte) == BENCH_PFN(base);
}

static bool unmapped(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_spte_t spte;
	int at;

	return !tdp_lookup(mmu, gfn, TDP_ALIAS_SHARED, &spte, &at) &&
	       !tdp_spte_is_present(fmt, spte);
}

/*
 * With the faulters idle: the direct root holds exactly @leaves_4k 4 KiB
 * and @leaves_2m 2 MiB leaves of the timed thread, besides the faulters'.
 */
static bool check_leaves(struct mixed_run *r, uint64_t leaves_4k,
			 uint64_t leaves_2m)
{
	uint64_t bg = mixed_bg_leaves(r).mapped;
	struct tdp_stats s;

	tdp_mmu_get_stats(r->vm->mmu, &s);
	if (s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K] != leaves_4k + bg ||
	    s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M] != leaves_2m) {
		mixed_fail(
			r,
			"leaves: %llu 4K and %llu 2M, expected %llu and %llu",
			(unsigned long long)
				s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K],
			(unsigned long long)
				s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M],
			(unsigned long long)(leaves_4k + bg),
			(unsigned long long)leaves_2m);
		return false;
	}
	return true;
}

static uint64_t zapped_leaves(struct tdp_mmu *mmu)
{
	struct tdp_stats s;

	tdp_mmu_get_stats(mmu, &s);
	return s.zapped_leaves;
}

/*
 * With the faulters idle: the zaps since @stats0 / @bg0 (values of
 * zapped_leaves() and mixed_bg_zapped() taken with the faulters idle)
 * removed @expected leaves of the timed thread besides the faulters'.
 */
static bool check_zapped(struct mixed_run *r, uint64_t stats0, uint64_t bg0,
			 uint64_t expected)
{
	uint64_t got = zapped_leaves(r->vm->mmu) - stats0;
	uint64_t bg = mixed_bg_leaves(r).zapped - bg0;

	if (got != expected + bg) {
		mixed_fail(r, "zapped %llu leaves, expected %llu",
			   (unsigned long long)got,
			   (unsigned long long)(expected + bg));
		return false;
	}
	return true;
}

/* ---- latency samples ----------------------------------------------------- */

struct latencies {
	uint32_t *ns; /* one per timed operation, saturated at UINT32_MAX */
	size_t n, cap;
	uint64_t total_ns;
};

static bool latencies_add(struct latencies *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		uint32_t *p = realloc(l->ns, cap * sizeof(*p));

		if (!p)
			return false;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	l->total_ns += ns;
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted samples. */
static double percentile(const struct latencies *l, double p)
{
	size_t rank = (size_t)(p * (double)l->n + 0.999999);

	return l->ns[rank ? rank - 1 : 0];
}

/* mean_ns, p50_ns, p99_ns and max_ns of the operations; frees @l. */
static void latencies_report(tdpb_state *st, struct latencies *l)
{
	if (l->n) {
		qsort(l->ns, l->n, sizeof(*l->ns), cmp_u32);
		tdpb_counter(st, "mean_ns", (double)l->total_ns / (double)l->n,
			     false);
		tdpb_counter(st, "p50_ns", percentile(l, 0.50), false);
		tdpb_counter(st, "p99_ns", percentile(l, 0.99), false);
		tdpb_counter(st, "max_ns", l->ns[l->n - 1], false);
	}
	free(l->ns);
}

/* ---- 1. a 1 GiB zap under faults ----------------------------------------- */

static void zap_under_faults(tdpb_state *st, void *argp)
{
	const struct mixed_arg *a = argp;
	int nr_bg = (int)tdpb_range_arg(st, 0) - 1;
	uint64_t zap_ns = 0, bg_faults = 0;
	int64_t zaps = 0;
	struct mixed_run r;

	if (!mixed_start(&r, st, a->global_lock))
		goto out;
	for (int t = 0; t < nr_bg; t++)
		if (!mixed_add_faulter(&r, r.vm, t + 1, 0))
			goto out;

	while (tdpb_keep_running(st)) {
		uint64_t stats0, bg0, f0, f1, t0, t1;
		int ret;

		ret = bench_populate(r.vm, r.vcpu, 0, GIB_PAGES, TDP_LEVEL_4K,
				     false);
		if (ret) {
			mixed_fail(&r, "populate: %d", ret);
			break;
		}
		if (!check_leaves(&r, GIB_PAGES, 0))
			break;
		stats0 = zapped_leaves(r.vm->mmu);
		bg0 = mixed_bg_leaves(&r).zapped;
		mixed_set_phase(&r, FAULTER_RUN);
		if (!mixed_bg_warm_up(&r, BG_WARMUP_FAULTS))
			break;

		f0 = mixed_bg_faults(&r);
		t0 = now_ns();
		mixed_lock(&r);
		ret = tdp_zap_range(r.vm->mmu, 0, GIB_PAGES, TDP_ALIAS_SHARED);
		mixed_unlock(&r);
		t1 = now_ns();
		f1 = mixed_bg_faults(&r);

		mixed_set_phase(&r, FAULTER_IDLE);
		tdpb_set_iteration_time(st, (double)(t1 - t0) / 1e9);
		if (ret) {
			mixed_fail(&r, "tdp_zap_range: %d", ret);
			break;
		}
		if (!mixed_bg_ok(&r) || !check_leaves(&r, 0, 0) ||
		    !check_zapped(&r, stats0, bg0, GIB_PAGES))
			break;
		for (tdp_gfn_t g = 0; g < GIB_PAGES; g++) {
			if (!unmapped(r.vm->mmu, g)) {
				mixed_fail(
					&r,
					"GFN %#llx still mapped after the zap",
					(unsigned long long)g);
				break;
			}
		}
		if (r.failed)
			break;
		zap_ns += t1 - t0;
		bg_faults += f1 - f0;
		zaps++;
	}
	if (zaps) {
		tdpb_set_items_processed(st, zaps * (int64_t)GIB_PAGES);
		tdpb_counter(st, "mean_ns", (double)zap_ns / (double)zaps,
			     false);
		if (nr_bg)
			tdpb_counter(st, "bg_faults_per_second",
				     (double)bg_faults * 1e9 / (double)zap_ns,
				     false);
	}
out:
	mixed_finish(&r);
}

/* ---- 2. an MMU-notifier storm under faults ------------------------------- */

/*
 * One notifier event as a hypervisor handles it: begin, zap the shared
 * alias, end.  The end runs whenever the begin succeeded.
 */
static int invalidate_pair(struct mixed_run *r, struct tdp_mmu *mmu,
			   tdp_gfn_t start, tdp_gfn_t end)
{
	int ret, end_ret;

	mixed_lock(r);
	ret = tdp_invalidate_begin(mmu, start, end);
	mixed_unlock(r);
	if (ret)
		return ret;
	mixed_lock(r);
	ret = tdp_zap_host_unmap(mmu, start, end);
	mixed_unlock(r);
	mixed_lock(r);
	end_ret = tdp_invalidate_end(mmu, start, end);
	mixed_unlock(r);
	return ret ? ret : end_ret;
}

/*
 * One timed pair over range @i of the storm on the timed VM, checked
 * before (a leaf of @level maps it) and after (nothing does), then
 * faulted in again.  Returns the pair's time, or 0 after a failure.
 */
static uint64_t storm_one(struct mixed_run *r, uint64_t i, int level)
{
	uint64_t pages = tdp_level_pages(level);
	tdp_gfn_t start = (i % STORM_RANGES) * pages;
	struct tdp_mmu *mmu = r->vm->mmu;
	uint64_t t0, t1;
	int ret;

	if (!mapped_as(mmu, start, level)) {
		mixed_fail(r, "GFN %#llx not mapped before its pair",
			   (unsigned long long)start);
		return 0;
	}
	t0 = now_ns();
	ret = invalidate_pair(r, mmu, start, start + pages);
	t1 = now_ns();
	if (ret) {
		mixed_fail(r, "invalidate pair of GFN %#llx: %d",
			   (unsigned long long)start, ret);
		return 0;
	}
	if (!unmapped(mmu, start) || !unmapped(mmu, start + pages - 1)) {
		mixed_fail(r, "GFN %#llx still mapped after its pair",
			   (unsigned long long)start);
		return 0;
	}
	mixed_lock(r);
	ret = bench_fault(r->vm, r->vcpu, start, level);
	mixed_unlock(r);
	if (ret != TDP_FAULT_FIXED) {
		mixed_fail(r, "refault of GFN %#llx: %d",
			   (unsigned long long)start, ret);
		return 0;
	}
	return t1 - t0 ? t1 - t0 : 1;
}

static void invalidate_storm(tdpb_state *st, void *argp)
{
	const struct mixed_arg *a = argp;
	uint64_t pages = tdp_level_pages(a->level);
	struct latencies lat = { 0 };
	uint64_t stats0, bg0, f0 = 0, w0 = 0, pairs = 0;
	struct mixed_run r;
	int ret;

	if (!mixed_start(&r, st, a->global_lock))
		goto out;
	if (a->storm) {
		ret = bench_populate(r.vm, r.vcpu, 0, STORM_RANGES * pages,
				     a->level, false);
		if (ret) {
			mixed_fail(&r, "populate: %d", ret);
			goto out;
		}
	}
	if (!mixed_add_faulter(&r, r.vm, 1, 0))
		goto out;
	stats0 = zapped_leaves(r.vm->mmu);
	bg0 = mixed_bg_leaves(&r).zapped;
	mixed_set_phase(&r, FAULTER_RUN);
	if (!mixed_bg_warm_up(&r, BG_WARMUP_FAULTS))
		goto out;

	f0 = mixed_bg_faults(&r);
	w0 = now_ns();
	while (tdpb_keep_running(st)) {
		uint64_t ns;

		if (!a->storm) {
			uint64_t t0 = now_ns();

			sleep_ns(FAULT_ONLY_SLEEP_NS);
			tdpb_set_iteration_time(st,
						(double)(now_ns() - t0) / 1e9);
			continue;
		}
		ns = storm_one(&r, pairs, a->level);
		if (!ns)
			break;
		if (!latencies_add(&lat, ns)) {
			mixed_fail(&r, "no memory for latency samples");
			break;
		}
		tdpb_set_iteration_time(st, (double)ns / 1e9);
		pairs++;
	}
	if (!r.failed) {
		double seconds = (double)(now_ns() - w0) / 1e9;

		tdpb_counter(st, "bg_faults_per_second",
			     (double)(mixed_bg_faults(&r) - f0) / seconds,
			     false);
	}
	mixed_set_phase(&r, FAULTER_IDLE);
	if (r.failed || !mixed_bg_ok(&r))
		goto out;
	if (a->storm) {
		if (!check_zapped(&r, stats0, bg0, pairs) ||
		    !check_leaves(&r,
				  a->level == TDP_LEVEL_4K ? STORM_RANGES : 0,
				  a->level == TDP_LEVEL_2M ? STORM_RANGES : 0))
			goto out;
		tdpb_set_items_processed(st, (int64_t)pairs);
		latencies_report(st, &lat);
		lat.ns = NULL;
	}
out:
	free(lat.ns);
	mixed_finish(&r);
}

/* ---- 3. a writer of VM B while VM A's reader sits in its read section ---- */

/*
 * VM A's private backend: set_leaf, which the engine calls with VM A's
 * mmu_lock held for read, sleeps CROSS_VM_READ_NS.  The other callbacks
 * do nothing.
 */
struct sleepy_backend {
	int in_set_leaf;    /* atomic: set_leaf calls sleeping now */
	uint64_t set_leafs; /* atomic: set_leaf calls done */
};

static int sleepy_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct sleepy_backend *b = ctx;

	__atomic_add_fetch(&b->in_set_leaf, 1, __ATOMIC_SEQ_CST);
	sleep_ns(CROSS_VM_READ_NS);
	__atomic_add_fetch(&b->set_leafs, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&b->in_set_leaf, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int sleepy_leaf_noop(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	return 0;
}

static int sleepy_table_noop(void *ctx, tdp_gfn_t gfn, int level,
			     struct tdp_ext_table *ext_table)
{
	return 0;
}

static bool wait_in_section(struct mixed_run *r, struct sleepy_backend *b)
{
	while (!__atomic_load_n(&b->in_set_leaf, __ATOMIC_SEQ_CST)) {
		if (!mixed_bg_ok(r))
			return false;
		sleep_ns(5000);
	}
	return true;
}

static void cross_vm_writer(tdpb_state *st, void *argp)
{
	const struct mixed_arg *a = argp;
	struct sleepy_backend sleepy = { 0 };
	const struct tdp_private_backend backend = {
		.link_table  = sleepy_table_noop,
		.set_leaf    = sleepy_set_leaf,
		.remove_leaf = sleepy_leaf_noop,
		.free_table  = sleepy_table_noop,
		.ctx         = &sleepy,
	};
	struct latencies lat = { 0 };
	struct bench_vm *vm_a = NULL;
	uint64_t ops = 0, in_a_section = 0, stats0 = 0, bg0 = 0;
	struct mixed_run r;
	int ret;

	/* VM B is the run's VM; its global lock serializes VM A too. */
	if (!mixed_start(&r, st, a->global_lock))
		goto out;
	vm_a = bench_vm_create(&backend);
	if (!vm_a) {
		mixed_fail(&r, "cannot create VM A");
		goto out;
	}
	ret = bench_populate(r.vm, r.vcpu, 0, STORM_RANGES, TDP_LEVEL_4K,
			     false);
	if (ret) {
		mixed_fail(&r, "populate of VM B: %d", ret);
		goto out;
	}
	stats0 = zapped_leaves(r.vm->mmu);
	bg0 = mixed_bg_leaves(&r).zapped;
	if (a->vm_reader) {
		/* Private GFNs of VM A: every fault goes through set_leaf. */
		if (!mixed_add_faulter(&r, vm_a, 0, CROSS_VM_GAP_NS))
			goto out;
		mixed_set_phase(&r, FAULTER_RUN);
		if (!mixed_bg_warm_up(&r, 1))
			goto out;
	}

	while (tdpb_keep_running(st)) {
		bool in_section;
		uint64_t ns;

		/*
		 * Each write begins while VM A's reader is in a section (a
		 * writer that waits for sections to end would otherwise run
		 * in the reader's gaps).  The wait is not timed.
		 */
		if (a->vm_reader && !wait_in_section(&r, &sleepy))
			break;
		in_section = __atomic_load_n(&sleepy.in_set_leaf,
					     __ATOMIC_SEQ_CST) != 0;
		ns = storm_one(&r, ops, TDP_LEVEL_4K);
		if (!ns)
			break;
		in_a_section += in_section;
		if (!latencies_add(&lat, ns)) {
			mixed_fail(&r, "no memory for latency samples");
			break;
		}
		tdpb_set_iteration_time(st, (double)ns / 1e9);
		ops++;
	}
	mixed_set_phase(&r, FAULTER_IDLE);
	if (r.failed || !mixed_bg_ok(&r) ||
	    !check_zapped(&r, stats0, bg0, ops) ||
	    !check_leaves(&r, STORM_RANGES, 0))
		goto out;
	if (mixed_bg_faults(&r) !=
	    __atomic_load_n(&sleepy.set_leafs, __ATOMIC_RELAXED)) {
		mixed_fail(&r, "VM A: %llu faults but %llu set_leaf calls",
			   (unsigned long long)mixed_bg_faults(&r),
			   (unsigned long long)sleepy.set_leafs);
		goto out;
	}
	/* The point of the benchmark: most writes overlapped a section. */
	if (a->vm_reader && in_a_section * 2 < ops) {
		mixed_fail(
			&r,
			"VM A's reader was in its read section during only %llu of %llu writes",
			(unsigned long long)in_a_section,
			(unsigned long long)ops);
		goto out;
	}
	tdpb_set_items_processed(st, (int64_t)ops);
	tdpb_counter(st, "writes_in_a_read_section",
		     ops ? (double)in_a_section / (double)ops : 0, false);
	if (a->vm_reader)
		tdpb_counter(st, "vm_a_read_sections",
			     (double)mixed_bg_faults(&r), false);
	latencies_report(st, &lat);
	lat.ns = NULL;
out:
	free(lat.ns);
	/* VM A's faulter goes first: it holds a vCPU of VM A. */
	for (int i = 0; i < r.nr_bg; i++) {
		int error = faulter_stop(&r.bg[i]);

		if (error)
			mixed_fail(&r, "VM A's reader: fault failed: %s",
				   strerror(-error));
	}
	r.nr_bg = 0;
	if (vm_a)
		bench_vm_destroy(vm_a);
	mixed_finish(&r);
}

/* ---- registration -------------------------------------------------------- */

static const struct mixed_arg zap = { .global_lock = false };
static const struct mixed_arg zap_locked = { .global_lock = true };
static const struct mixed_arg storm_4k = { .level = TDP_LEVEL_4K,
					   .storm = true };
static const struct mixed_arg storm_2m = { .level = TDP_LEVEL_2M,
					   .storm = true };
static const struct mixed_arg fault_only = { .level = TDP_LEVEL_4K };
static const struct mixed_arg storm_4k_locked = { .global_lock = true,
						  .level = TDP_LEVEL_4K,
						  .storm = true };
static const struct mixed_arg storm_2m_locked = { .global_lock = true,
						  .level = TDP_LEVEL_2M,
						  .storm = true };
static const struct mixed_arg fault_only_locked = { .global_lock = true,
						    .level = TDP_LEVEL_4K };
static const struct mixed_arg cross_vm = { .vm_reader = true };
static const struct mixed_arg cross_vm_idle = { .vm_reader = false };
static const struct mixed_arg cross_vm_locked = { .global_lock = true,
						  .vm_reader = true };
static const struct mixed_arg cross_vm_idle_locked = { .global_lock = true };

static tdpb_bench *mixed_register(const char *name, tdpb_fn fn,
				  const struct mixed_arg *arg)
{
	return tdpb_unit_ns(
		tdpb_manual_time(tdpb_register(name, fn, (void *)arg)));
}

/*
 * threads:N counts the zapping thread and N - 1 faulters.  Two threads
 * fill the machine's two cores; more would time the scheduler.
 */
static void register_zap(const char *name, const struct mixed_arg *arg)
{
	tdpb_bench *b = mixed_register(name, zap_under_faults, arg);

	tdpb_arg_name(tdpb_arg(tdpb_arg(b, 1), 2), "threads");
}

void bench_register_mixed(void)
{
	register_zap("mixed/zap_1g_4k_under_faults", &zap);
	register_zap("mixed/baseline/global_lock/zap_1g_4k_under_faults",
		     &zap_locked);
	mixed_register("mixed/invalidate_pairs_under_faults/4k",
		       invalidate_storm, &storm_4k);
	mixed_register("mixed/invalidate_pairs_under_faults/2m",
		       invalidate_storm, &storm_2m);
	mixed_register("mixed/invalidate_pairs_fault_only", invalidate_storm,
		       &fault_only);
	mixed_register(
		"mixed/baseline/global_lock/invalidate_pairs_under_faults/4k",
		invalidate_storm, &storm_4k_locked);
	mixed_register(
		"mixed/baseline/global_lock/invalidate_pairs_under_faults/2m",
		invalidate_storm, &storm_2m_locked);
	mixed_register("mixed/baseline/global_lock/invalidate_pairs_fault_only",
		       invalidate_storm, &fault_only_locked);
	mixed_register("mixed/cross_vm_writer", cross_vm_writer, &cross_vm);
	mixed_register("mixed/cross_vm_writer_idle", cross_vm_writer,
		       &cross_vm_idle);
	mixed_register("mixed/baseline/global_lock/cross_vm_writer",
		       cross_vm_writer, &cross_vm_locked);
	mixed_register("mixed/baseline/global_lock/cross_vm_writer_idle",
		       cross_vm_writer, &cross_vm_idle_locked);
}
