/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Engine stress: vCPU threads fault both aliases of GFNs that share fresh
 * parent tables while a zapper races them with range zaps, host-unmap
 * invalidations, root invalidation and zap-all, a reader does lockless
 * lookups, and the private backend sleeps and reports busy at random.
 *
 * Each phase uses a fresh GFN window (new parent tables), runs for a time
 * and an operation budget, then quiesces and checks:
 *   - every present leaf maps the PFN its GFN and alias call for;
 *   - the backend's model equals the mirror entry for entry, over the
 *     whole GFN space, and the backend saw no violation of its contract;
 *   - the leaf statistics equal the leaves found in the window;
 *   - no reachable SPTE is frozen.
 * After teardown: no table, leaf or page left, and the backend holds
 * nothing.
 *
 * Usage: stress_engine [-s seed] [-t seconds] [-n max_ops] [-v vcpus]
 * TDP_TEST_QUICK=1 shortens the default duration.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tdp/tdp.h>

#include "ts_env.h"

#define REGIONS 8                       /* 2 MiB regions per window */
#define WINDOW (REGIONS * 512ULL)

static int failures;

#define CHECK(cond, ...)                                               \
	do {                                                           \
		if (!(cond)) {                                         \
			fprintf(stderr, "stress_engine: FAILED: " __VA_ARGS__); \
			fputc('\n', stderr);                           \
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED); \
		}                                                      \
	} while (0)

/*
 * The private backend is the strict recording backend of tests/support;
 * besides its own checks, a slow SEPT.ADD of every 2 MiB table widens the
 * freeze window.
 */
static void slow_link(void *arg, enum ts_call call, tdp_gfn_t gfn, int level)
{
	(void)arg, (void)gfn;
	if (call == TS_LINK_TABLE && level == TDP_LEVEL_2M)
		usleep(20);
}

/* ---- the run ------------------------------------------------------------ */

struct run {
	struct ts_env env;     /* a confidential VM with the strict backend */
	struct tdp_mmu *mmu;   /* env's */
	struct ts_backend *be; /* env's */
	tdp_gfn_t base;        /* window of the current phase, unaliased */
	uint64_t seed;
	double seconds;
	long max_ops;
	int nr_vcpus;
	bool stop;             /* atomic */
	long ops;              /* atomic */
	long checks;
};

static double now(void)
{
	return (double)tdp_now_ns() / 1e9;
}

static bool should_stop(struct run *r)
{
	return __atomic_load_n(&r->stop, __ATOMIC_RELAXED) ||
	       __atomic_add_fetch(&r->ops, 1, __ATOMIC_RELAXED) > r->max_ops;
}

static tdp_pfn_t expected_pfn(tdp_gfn_t gfn, bool private)
{
	return ts_pfn(gfn, ts_alias(private));
}

struct worker {
	struct run *r;
	uint64_t rng;
	pthread_t thread;
};

static void *vcpu_thread(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	struct tdp_vcpu *vcpu;

	tdp_thread_register();
	CHECK(tdp_vcpu_create(r->mmu, &vcpu) == 0, "vcpu create");
	while (!should_stop(r)) {
		uint64_t x = ts_rand(&w->rng);
		/* Cluster GFNs so threads share fresh parent tables. */
		tdp_gfn_t gfn = r->base + (x % REGIONS) * 512 + ((x >> 8) % 64) * 8;
		bool private = (x >> 20) & 1;
		unsigned int prot =
			TDP_PROT_READ | ((x >> 21) & 1 ? TDP_PROT_WRITE : 0);
		int max_level =
			(x >> 22) % 4 == 0 ? TDP_LEVEL_2M : TDP_LEVEL_4K;
		unsigned long tries = 0;
		/* Like a vCPU re-entering the guest: retry until it sticks;
		 * only a fault that cannot complete for seconds is a bug. */
		int ret = ts_map_retry(vcpu, gfn, ts_alias(private),
				       expected_pfn(gfn, private), prot,
				       max_level, 0, 5000, &tries);

		CHECK(ret >= 0 && ret != TDP_FAULT_RETRY,
		      "map gfn %#" PRIx64
		      " private %d max_level %d: %d after %lu retries",
		      gfn, private, max_level, ret, tries);
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return NULL;
}

static void *zapper_thread(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;

	tdp_thread_register();
	while (!should_stop(r)) {
		uint64_t x = ts_rand(&w->rng);
		tdp_gfn_t start = r->base + (x % WINDOW);
		tdp_gfn_t end = start + 1 + ((x >> 16) % 1024);
		int ret = 0;

		if (end > r->base + WINDOW)
			end = r->base + WINDOW;
		switch ((x >> 32) % 8) {
		case 0: case 1:
			ret = tdp_zap_convert_to_shared(r->mmu, start, end);
			break;
		case 2: case 3:
			ret = tdp_zap_slot_deleted(r->mmu, start, end);
			break;
		case 4: case 5:
			ret = ts_host_unmap(r->mmu, start, end);
			break;
		case 6:
			ret = ts_zap_roots(r->mmu, TDP_ALIAS_SHARED);
			break;
		default:
			ret = tdp_zap_all(r->mmu);
			break;
		}
		CHECK(ret == 0, "zap op failed: %d", ret);
		usleep(20);
	}
	tdp_thread_unregister();
	return NULL;
}

static void *reader_thread(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	const struct tdp_spte_format *fmt = tdp_mmu_format(r->mmu);

	tdp_thread_register();
	/* Lookups do not count against the operation budget. */
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		uint64_t x = ts_rand(&w->rng);
		tdp_gfn_t gfn = r->base + x % WINDOW;
		bool private = (x >> 40) & 1;
		tdp_spte_t spte;
		int level;

		CHECK(tdp_lookup(r->mmu, gfn, private ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED,
				 &spte, &level) == 0, "lookup");
		if (tdp_spte_is_present(fmt, spte) && tdp_spte_is_leaf(fmt, spte, level)) {
			tdp_gfn_t lgfn = gfn & ~(tdp_level_pages(level) - 1);

			CHECK(tdp_spte_pfn(fmt, spte) == expected_pfn(lgfn, private),
			      "lockless lookup: gfn %#" PRIx64 " maps a wrong pfn", gfn);
		}
	}
	tdp_thread_unregister();
	return NULL;
}

/* Quiesced: compare both trees with expectations and the backend. */
static void check_window(struct run *r)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(r->mmu);
	uint64_t leaves[2][3] = { { 0 } };
	struct tdp_stats st;
	unsigned long bad;

	for (tdp_gfn_t off = 0; off < WINDOW; off++) {
		for (int private = 0; private < 2; private++) {
			tdp_gfn_t gfn = r->base + off;
			tdp_spte_t spte;
			int level;

			CHECK(tdp_lookup(r->mmu, gfn, private ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED,
					 &spte, &level) == 0, "lookup");
			CHECK(!tdp_spte_is_frozen(fmt, spte), "frozen SPTE left at gfn %#" PRIx64, gfn);
			if (!tdp_spte_is_present(fmt, spte))
				continue;
			CHECK(level <= TDP_LEVEL_2M, "leaf level %d", level);
			if ((gfn & (tdp_level_pages(level) - 1)) == 0)
				leaves[private][level]++;
			tdp_gfn_t lgfn = gfn & ~(tdp_level_pages(level) - 1);
			CHECK(tdp_spte_pfn(fmt, spte) == expected_pfn(lgfn, private),
			      "gfn %#" PRIx64 " private %d maps a wrong pfn", gfn, private);
			r->checks += private;
		}
	}
	tdp_mmu_get_stats(r->mmu, &st);
	for (int level = 1; level <= 2; level++) {
		CHECK(st.leaves[TDP_ROOT_MIRROR][level] == leaves[1][level],
		      "mirror leaf count level %d: stats %" PRIu64 " found %" PRIu64,
		      level, st.leaves[TDP_ROOT_MIRROR][level], leaves[1][level]);
		CHECK(st.leaves[TDP_ROOT_DIRECT][level] == leaves[0][level],
		      "direct leaf count level %d: stats %" PRIu64 " found %" PRIu64,
		      level, st.leaves[TDP_ROOT_DIRECT][level], leaves[0][level]);
	}
	/* Entry for entry over every unaliased GFN: nothing outside the
	 * window either. */
	bad = ts_compare(r->be, r->mmu, 0, TS_GFN_LIMIT);
	CHECK(bad == 0, "mirror and backend differ: %lu mismatches", bad);
	CHECK(ts_violations(r->be) == 0, "backend violations: %" PRIu64,
	      ts_violations(r->be));
	r->checks += 4;
}

int main(int argc, char **argv)
{
	struct run r = { .seed = (uint64_t)time(NULL), .max_ops = 50000000, .nr_vcpus = 3 };
	const char *quick = getenv("TDP_TEST_QUICK");
	const struct ts_env_opts confidential_vm = {
		.backend = true,
		.ext_table_size = 4096,
		.no_vcpu = true,
	};
	struct worker workers[16];
	struct tdp_stats st;
	int phases = 4, opt, nw;

	r.seconds = quick && *quick == '1' ? 1.0 : 4.0;
	while ((opt = getopt(argc, argv, "s:t:n:v:")) != -1) {
		switch (opt) {
		case 's': r.seed = strtoull(optarg, NULL, 0); break;
		case 't': r.seconds = atof(optarg); break;
		case 'n': r.max_ops = atol(optarg); break;
		case 'v': r.nr_vcpus = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-s seed] [-t seconds] [-n max_ops] [-v vcpus]\n", argv[0]);
			return 2;
		}
	}
	if (r.nr_vcpus < 1 || r.nr_vcpus > 13) {
		fprintf(stderr, "stress_engine: -v takes 1..13\n");
		return 2;
	}
	printf("stress_engine: seed=%" PRIu64 " vcpus=%d seconds=%.1f\n", r.seed, r.nr_vcpus, r.seconds);
	fflush(stdout);

	tdp_thread_register();
	if (ts_env_init(&r.env, &confidential_vm)) {
		fprintf(stderr, "stress_engine: cannot create the MMU\n");
		return 1;
	}
	r.mmu = r.env.mmu;
	r.be = r.env.be;
	/* Busy for one map callback in ten. */
	ts_set_injection(r.be, 100, 0, r.seed | 1);
	ts_set_hook(r.be, slow_link, NULL);

	for (int phase = 0; phase < phases; phase++) {
		double deadline;

		/* A fresh window: new parent tables at every level below 1 GiB. */
		r.base = (tdp_gfn_t)(phase + 1) * (1ULL << 18) +
			 (phase % 2) * (1ULL << 27);
		__atomic_store_n(&r.stop, false, __ATOMIC_RELAXED);
		__atomic_store_n(&r.ops, 0, __ATOMIC_RELAXED);

		nw = 0;
		for (int i = 0; i < r.nr_vcpus; i++)
			workers[nw++] = (struct worker){ .r = &r };
		workers[nw++] = (struct worker){ .r = &r };
		workers[nw++] = (struct worker){ .r = &r };
		for (int i = 0; i < nw; i++) {
			void *(*fn)(void *) = i < r.nr_vcpus ? vcpu_thread
					      : i == r.nr_vcpus ? zapper_thread : reader_thread;

			workers[i].rng = r.seed * 0x9e3779b97f4a7c15ULL + phase * 131 + i + 1;
			pthread_create(&workers[i].thread, NULL, fn, &workers[i]);
		}
		deadline = now() + r.seconds / phases;
		while (now() < deadline && __atomic_load_n(&r.ops, __ATOMIC_RELAXED) < r.max_ops)
			usleep(10000);
		__atomic_store_n(&r.stop, true, __ATOMIC_RELAXED);
		for (int i = 0; i < nw; i++)
			pthread_join(workers[i].thread, NULL);

		/* Zap the window, so that the next phase starts empty. */
		check_window(&r);
		CHECK(tdp_zap_slot_deleted(r.mmu, r.base, r.base + WINDOW) == 0, "phase zap");
		check_window(&r);
		printf("stress_engine: phase %d ops=%ld\n", phase,
		       __atomic_load_n(&r.ops, __ATOMIC_RELAXED));
	}

	/* Nothing left: no table, leaf, page or root, the backend empty and
	 * without violations. */
	CHECK(ts_env_teardown(&r.env, 0) == 0, "teardown (problems logged)");
	tdp_mmu_get_stats(r.mmu, &st);
	r.checks += 4;
	ts_env_destroy(&r.env);
	tdp_thread_unregister();

	printf("stress_engine: seed=%" PRIu64 " ops=%" PRIu64 " faults=%" PRIu64
	       " retried=%" PRIu64 " busy=%" PRIu64 " checks=%ld failures=%d\n",
	       r.seed, st.faults_fixed + st.faults_spurious + st.faults_retried,
	       st.faults_fixed, st.faults_retried, st.backend_busy, r.checks, failures);
	return failures ? 1 : 0;
}
