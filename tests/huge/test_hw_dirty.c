/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * No dirty bit is lost.  Simulated CPUs (hh_hw_access) set accessed and
 * dirty bits on writable leaves, like hardware, while other threads
 * write-protect, fast-fix, split, recover, zap, age and harvest.  Every
 * write the CPUs made must be reported by a harvest that ended after it.
 *
 * Bookkeeping: harvests are numbered by a global counter incremented
 * after each harvest returns.  Before an access a CPU reads the counter
 * (e); after a successful write it records that GFN g needs a report
 * numbered > e (a harvest numbered <= e ended before the write and cannot
 * have seen it).  Each harvesting thread records, per GFN, the highest
 * number of a harvest that reported it.  Only the last write of each GFN
 * needs checking: a report after it is also after every earlier write.
 *
 * A zap reports the dirty bit of a removed leaf through the optional host
 * callback mark_dirty (tdp/mmu.h), which counts as a report numbered when
 * it is called.  Without that callback a zap drops dirty bits by design
 * (the page is unmapped): CPUs then only read the zap region, which lies
 * outside the checked region.  Zaps stay inside whole 2 MiB blocks of the
 * zap region either way.
 *
 * The last part drives the lockless fast fix through exact interleavings
 * with zaps and splits (see "controlled interleavings" below), and the
 * CPU's dirty bit through the compare-exchanges of the zap of an
 * invalidated root and of recovery.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "helpers.h"

#define P2M TS_PAGES_2M
#define P1G TS_PAGES_1G

#define NR_CPUS 2
#define NR_MUTATORS 2

struct hw_run {
	struct tdp_mmu *mmu;
	/* CPUs write here; every write is checked. */
	tdp_gfn_t dirty_start, dirty_end;
	/*
	 * Zapped and faulted in again; may be empty.  Inside the dirty
	 * region when the MMU reports removed dirty leaves (CPUs write it),
	 * else outside (CPUs only read it).
	 */
	tdp_gfn_t zap_start, zap_end;
	/* GFNs that the CPUs and the vCPU faults favour (inside dirty). */
	tdp_gfn_t hot_start, hot_end;
	/* Largest leaf level faults may map and recovery may make. */
	int max_level;
	/* Harvest sub-ranges aligned to 2 MiB (no leaf above 2 MiB). */
	bool partial_harvest;
	/* Atomics. */
	bool stop;
	uint64_t harvests_done;
	/* Per dirty-region GFN: highest report number of a mark_dirty(). */
	pthread_mutex_t mark_lock;
	uint64_t *marked;
};

struct cpu_thread {
	struct hw_run *run;
	pthread_t tid;
	uint64_t seed;
	struct tdp_vcpu *vcpu;
	/* Per dirty-region GFN: a report numbered >= this is needed (0: no
	 * write).  Owned by the thread until it is joined. */
	uint64_t *need;
	uint64_t writes, reads, wrprot_faults, missing_faults;
};

struct mutator {
	struct hw_run *run;
	pthread_t tid;
	uint64_t seed;
	int role;
	struct tdp_vcpu *vcpu;
	/* Per dirty-region GFN: highest harvest number that reported it. */
	uint64_t *reported;
	uint64_t harvests, splits, recovered, recovered_1g, wrprots, fixes;
	uint64_t zaps, ages;
};

static bool stopping(struct hw_run *run)
{
	return __atomic_load_n(&run->stop, __ATOMIC_ACQUIRE);
}

static uint64_t dirty_pages(const struct hw_run *run)
{
	return run->dirty_end - run->dirty_start;
}

/* A GFN of [start, end) in @run's dirty region, favouring the hot part. */
static tdp_gfn_t pick_dirty_gfn(struct hw_run *run, uint64_t *seed)
{
	if (ts_rand_below(seed, 2))
		return run->hot_start +
		       ts_rand_below(seed, run->hot_end - run->hot_start);
	return run->dirty_start + ts_rand_below(seed, dirty_pages(run));
}

/* The fault a vCPU takes after an EPT violation; never fails. */
static void vcpu_fault(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, int max_level)
{
	int ret = ts_map(vcpu, gfn, TDP_ALIAS_SHARED, ts_pfn_shared(gfn),
			 HH_PROT_RW, max_level);

	HH_CHECK(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS ||
			 ret == TDP_FAULT_RETRY,
		 "fault at gfn %#llx (max level %d) returned %d",
		 (unsigned long long)gfn, max_level, ret);
}

/* ---- the simulated CPUs ----------------------------------------------------- */

static void *cpu_main(void *arg)
{
	struct cpu_thread *t = arg;
	struct hw_run *run = t->run;
	struct tdp_mmu *mmu = run->mmu;
	uint64_t zap_pages = run->zap_end - run->zap_start;

	tdp_thread_register();
	while (!stopping(run)) {
		bool in_zap = zap_pages && ts_rand_below(&t->seed, 8) == 0;
		tdp_gfn_t gfn =
			in_zap ? run->zap_start +
					 ts_rand_below(&t->seed, zap_pages)
			       : pick_dirty_gfn(run, &t->seed);
		bool write = gfn >= run->dirty_start && gfn < run->dirty_end &&
			     ts_rand_below(&t->seed, 4) != 0;
		uint64_t e =
			__atomic_load_n(&run->harvests_done, __ATOMIC_SEQ_CST);
		int ret;

		switch (hh_hw_access(mmu, gfn, write)) {
		case TS_HW_WRITTEN:
			t->need[gfn - run->dirty_start] = e + 1;
			t->writes++;
			break;
		case TS_HW_READ:
			t->reads++;
			break;
		case TS_HW_WRPROT:
			/* A write fault: the lockless fix, else the full path. */
			t->wrprot_faults++;
			ret = tdp_fast_fix(mmu, gfn, HH_PROT_RW);
			HH_CHECK(ret == 0 || ret == 1, "tdp_fast_fix: %d", ret);
			if (ret == 0)
				vcpu_fault(
					t->vcpu, gfn,
					1 + (int)ts_rand_below(&t->seed,
							       run->max_level));
			break;
		case TS_HW_NOT_PRESENT:
			/* Zapped, or a table being replaced under us. */
			t->missing_faults++;
			vcpu_fault(t->vcpu, gfn,
				   1 + (int)ts_rand_below(&t->seed,
							  run->max_level));
			break;
		}
	}
	tdp_thread_unregister();
	return NULL;
}

/* ---- the threads that change the tree --------------------------------------- */

/* Harvest [start, end) of the dirty region and number the harvest. */
static void harvest(struct hw_run *run, uint64_t *reported, tdp_gfn_t start,
		    tdp_gfn_t end)
{
	uint64_t words = (end - start + 63) / 64;
	uint64_t *bm = calloc(words, sizeof(uint64_t));
	int64_t n, seen = 0;
	uint64_t number;

	HH_CHECK(bm != NULL, "out of memory");
	if (!bm)
		return;
	n = tdp_harvest_dirty(run->mmu, start, end, bm, TDP_ALIAS_SHARED);
	number = __atomic_add_fetch(&run->harvests_done, 1, __ATOMIC_SEQ_CST);
	HH_CHECK(n >= 0, "tdp_harvest_dirty: %lld", (long long)n);
	for (uint64_t i = 0; i < end - start; i++) {
		if (!hh_bit_test(bm, i))
			continue;
		reported[start + i - run->dirty_start] = number;
		seen++;
	}
	/*
	 * Every reported GFN is counted.  The count may exceed the bits: a
	 * walk that cleared D of a huge leaf can step into the table that a
	 * concurrent split put in its place and report a GFN written since
	 * a second time.
	 */
	HH_CHECK(n < 0 || n >= seen, "harvest returned %lld, bitmap has %lld",
		 (long long)n, (long long)seen);
	free(bm);
}

/* A random range of the dirty and zap regions: a block, a few, or all. */
static void pick_range(struct hw_run *run, uint64_t *seed, tdp_gfn_t *start,
		       tdp_gfn_t *end)
{
	tdp_gfn_t lo = run->dirty_start;
	tdp_gfn_t hi =
		run->zap_end > run->dirty_end ? run->zap_end : run->dirty_end;
	uint64_t blocks = (hi - lo) / P2M;

	switch (ts_rand_below(seed, 4)) {
	case 0:
		*start = lo;
		*end = hi;
		return;
	case 1:
		*start = lo + ts_rand_below(seed, hi - lo);
		*end = *start + 1 + ts_rand_below(seed, 64);
		break;
	default:
		*start = lo + ts_rand_below(seed, blocks) * P2M;
		*end = *start + (1 + ts_rand_below(seed, 4)) * P2M;
		break;
	}
	if (*end > hi)
		*end = hi;
}

/* Round a range out to 2 MiB. */
static void align_2m(tdp_gfn_t *start, tdp_gfn_t *end)
{
	*start &= ~(P2M - 1);
	*end = (*end + P2M - 1) & ~(P2M - 1);
}

/* Dirty logging: write-protect, fix, clear-and-protect, age, harvest. */
static void logger_step(struct mutator *m)
{
	struct hw_run *run = m->run;
	tdp_gfn_t start, end, gfn;
	int ret;

	switch (ts_rand_below(&m->seed, 8)) {
	case 0:
		pick_range(run, &m->seed, &start, &end);
		ret = tdp_wrprot_range(run->mmu, start, end, TDP_ALIAS_SHARED);
		HH_CHECK(ret >= 0, "tdp_wrprot_range: %d", ret);
		m->wrprots++;
		break;
	case 1:
	case 2:
		for (int i = 0; i < 16; i++) {
			gfn = pick_dirty_gfn(run, &m->seed);
			ret = tdp_fast_fix(run->mmu, gfn, HH_PROT_RW);
			HH_CHECK(ret == 0 || ret == 1, "tdp_fast_fix: %d", ret);
			m->fixes += ret == 1;
		}
		break;
	case 3:
		gfn = pick_dirty_gfn(run, &m->seed) & ~63ULL;
		ret = tdp_clear_dirty_masked(run->mmu, gfn, ts_rand(&m->seed),
					     true, TDP_ALIAS_SHARED);
		HH_CHECK(ret >= 0, "tdp_clear_dirty_masked: %d", ret);
		break;
	case 4: {
		int64_t young =
			tdp_age_range(run->mmu, run->dirty_start,
				      run->dirty_end, true, TDP_ALIAS_SHARED);

		HH_CHECK(young >= 0, "tdp_age_range: %lld", (long long)young);
		m->ages++;
		break;
	}
	case 5:
		/* The full fault path at 4 KiB splits huge leaves. */
		vcpu_fault(m->vcpu, pick_dirty_gfn(run, &m->seed), 1);
		break;
	default:
		start = run->dirty_start;
		end = run->dirty_end;
		if (run->partial_harvest && ts_rand_below(&m->seed, 2)) {
			uint64_t blocks = dirty_pages(run) / P2M;

			start += ts_rand_below(&m->seed, blocks) * P2M;
			end = start + (1 + ts_rand_below(&m->seed, 3)) * P2M;
			if (end > run->dirty_end)
				end = run->dirty_end;
		}
		harvest(run, m->reported, start, end);
		m->harvests++;
		break;
	}
}

/* Huge pages: split, recover, zap and refault, harvest. */
static void huge_step(struct mutator *m)
{
	struct hw_run *run = m->run;
	tdp_gfn_t start, end;
	int ret;

	switch (ts_rand_below(&m->seed, 8)) {
	case 0:
	case 1:
		pick_range(run, &m->seed, &start, &end);
		ret = tdp_split_huge_range(run->mmu, start, end,
					   1 + (int)ts_rand_below(&m->seed, 2),
					   TDP_ALIAS_SHARED);
		HH_CHECK(ret == 0, "tdp_split_huge_range: %d", ret);
		m->splits++;
		break;
	case 2:
	case 3: {
		int level = run->max_level > 2 && ts_rand_below(&m->seed, 2)
				    ? TDP_LEVEL_1G
				    : TDP_LEVEL_2M;

		pick_range(run, &m->seed, &start, &end);
		align_2m(&start, &end);
		ret = tdp_recover_huge_pages(run->mmu, start, end, level,
					     TDP_ALIAS_SHARED);
		HH_CHECK(ret >= 0, "tdp_recover_huge_pages: %d", ret);
		m->recovered += ret > 0 ? (uint64_t)ret : 0;
		if (ret > 0 && level == TDP_LEVEL_1G &&
		    ts_lookup(run->mmu, run->dirty_start, TDP_ALIAS_SHARED)
				    .level == TDP_LEVEL_1G)
			m->recovered_1g++;
		break;
	}
	case 4:
	case 5:
		if (run->zap_end > run->zap_start) {
			uint64_t blocks = (run->zap_end - run->zap_start) / P2M;
			tdp_gfn_t b = run->zap_start +
				      ts_rand_below(&m->seed, blocks) * P2M;

			start = b + ts_rand_below(&m->seed, P2M);
			end = start + 1 + ts_rand_below(&m->seed, 16);
			if (end > b + P2M)
				end = b + P2M;
			ret = tdp_zap_range(run->mmu, start, end,
					    TDP_ALIAS_SHARED);
			HH_CHECK(ret == 0, "tdp_zap_range: %d", ret);
			m->zaps++;
			for (tdp_gfn_t g = start; g < end; g++)
				vcpu_fault(m->vcpu, g,
					   1 + (int)ts_rand_below(&m->seed, 2));
			break;
		}
		/* No zap region: split the hot part to 4 KiB instead. */
		ret = tdp_split_huge_range(run->mmu, run->hot_start,
					   run->hot_end, TDP_LEVEL_4K,
					   TDP_ALIAS_SHARED);
		HH_CHECK(ret == 0, "tdp_split_huge_range: %d", ret);
		m->splits++;
		break;
	default:
		harvest(run, m->reported, run->dirty_start, run->dirty_end);
		m->harvests++;
		break;
	}
}

/* Collapse the whole region to 1 GiB and split it to 2 MiB, again and
 * again; harvest now and then. */
static void collapse_step(struct mutator *m)
{
	struct hw_run *run = m->run;
	int ret;

	ret = tdp_split_huge_range(run->mmu, run->dirty_start, run->dirty_end,
				   TDP_LEVEL_2M, TDP_ALIAS_SHARED);
	HH_CHECK(ret == 0, "tdp_split_huge_range: %d", ret);
	m->splits++;
	ret = tdp_recover_huge_pages(run->mmu, run->dirty_start, run->dirty_end,
				     TDP_LEVEL_1G, TDP_ALIAS_SHARED);
	HH_CHECK(ret >= 0, "tdp_recover_huge_pages: %d", ret);
	m->recovered += ret > 0 ? (uint64_t)ret : 0;
	if (ret > 0 &&
	    ts_lookup(run->mmu, run->dirty_start, TDP_ALIAS_SHARED).level ==
		    TDP_LEVEL_1G)
		m->recovered_1g++;
	if (m->splits % 16 == 0) {
		harvest(run, m->reported, run->dirty_start, run->dirty_end);
		m->harvests++;
	}
}

/* A vCPU whose memory slot allows only 4 KiB: its faults split. */
static void split_fault_step(struct mutator *m)
{
	struct hw_run *run = m->run;

	vcpu_fault(
		m->vcpu,
		run->hot_start +
			ts_rand_below(&m->seed, run->hot_end - run->hot_start),
		TDP_LEVEL_4K);
	m->fixes++;
}

enum mutator_role {
	ROLE_LOGGER,	  /* logger_step */
	ROLE_HUGE,	  /* huge_step */
	ROLE_COLLAPSE,	  /* collapse_step */
	ROLE_SPLIT_FAULT, /* split_fault_step */
};

static void *mutator_main(void *arg)
{
	struct mutator *m = arg;

	tdp_thread_register();
	while (!stopping(m->run)) {
		switch (m->role) {
		case ROLE_LOGGER:
			logger_step(m);
			break;
		case ROLE_HUGE:
			huge_step(m);
			break;
		case ROLE_COLLAPSE:
			collapse_step(m);
			break;
		default:
			split_fault_step(m);
			break;
		}
	}
	tdp_thread_unregister();
	return NULL;
}

/* ---- the test driver -------------------------------------------------------- */

static void start_threads(struct hw_run *run, struct cpu_thread *cpus,
			  struct mutator *muts, const int *roles, uint64_t seed)
{
	for (int i = 0; i < NR_CPUS; i++) {
		cpus[i] = (struct cpu_thread){
			.run = run,
			.seed = seed * 31 + (uint64_t)i,
			.need = calloc(dirty_pages(run), sizeof(uint64_t)),
		};
		assert_non_null(cpus[i].need);
		assert_int_equal(tdp_vcpu_create(run->mmu, &cpus[i].vcpu), 0);
	}
	for (int i = 0; i < NR_MUTATORS; i++) {
		muts[i] = (struct mutator){
			.run = run,
			.seed = seed * 77 + (uint64_t)i,
			.role = roles[i],
			.reported = calloc(dirty_pages(run), sizeof(uint64_t)),
		};
		assert_non_null(muts[i].reported);
		assert_int_equal(tdp_vcpu_create(run->mmu, &muts[i].vcpu), 0);
	}
	for (int i = 0; i < NR_CPUS; i++)
		assert_int_equal(
			pthread_create(&cpus[i].tid, NULL, cpu_main, &cpus[i]),
			0);
	for (int i = 0; i < NR_MUTATORS; i++)
		assert_int_equal(pthread_create(&muts[i].tid, NULL,
						mutator_main, &muts[i]),
				 0);
}

/* host.mark_dirty: a removed dirty leaf is reported now. */
static void on_mark_dirty(void *arg, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct hw_run *run = arg;
	uint64_t number =
		__atomic_add_fetch(&run->harvests_done, 1, __ATOMIC_SEQ_CST);

	pthread_mutex_lock(&run->mark_lock);
	for (tdp_gfn_t g = gfn; g < gfn + nr_pages; g++) {
		uint64_t *slot;

		if (g < run->dirty_start || g >= run->dirty_end)
			continue;
		slot = &run->marked[g - run->dirty_start];
		*slot = number > *slot ? number : *slot;
	}
	pthread_mutex_unlock(&run->mark_lock);
}

static void print_summary(const struct cpu_thread *cpus,
			  const struct mutator *muts, uint64_t dirtied,
			  uint64_t lost)
{
	struct cpu_thread c = { 0 };
	struct mutator m = { 0 };

	for (int i = 0; i < NR_CPUS; i++) {
		c.writes += cpus[i].writes;
		c.reads += cpus[i].reads;
		c.wrprot_faults += cpus[i].wrprot_faults;
		c.missing_faults += cpus[i].missing_faults;
	}
	for (int i = 0; i < NR_MUTATORS; i++) {
		m.harvests += muts[i].harvests;
		m.splits += muts[i].splits;
		m.recovered += muts[i].recovered;
		m.recovered_1g += muts[i].recovered_1g;
		m.wrprots += muts[i].wrprots;
		m.fixes += muts[i].fixes;
		m.zaps += muts[i].zaps;
		m.ages += muts[i].ages;
	}
	fprintf(stderr,
		"cpus: %llu writes (%llu GFNs), %llu reads, %llu write-protect "
		"faults, %llu missing faults; harvests %llu, splits %llu, huge "
		"leaves recovered %llu (1 GiB %llu), wrprots %llu, fixes %llu, "
		"zaps %llu, agings %llu; lost %llu\n",
		(unsigned long long)c.writes, (unsigned long long)dirtied,
		(unsigned long long)c.reads,
		(unsigned long long)c.wrprot_faults,
		(unsigned long long)c.missing_faults,
		(unsigned long long)m.harvests, (unsigned long long)m.splits,
		(unsigned long long)m.recovered,
		(unsigned long long)m.recovered_1g,
		(unsigned long long)m.wrprots, (unsigned long long)m.fixes,
		(unsigned long long)m.zaps, (unsigned long long)m.ages,
		(unsigned long long)lost);
}

/* Stop and join everything, harvest once more, and check the reports. */
static void stop_and_check(struct hw_run *run, struct cpu_thread *cpus,
			   struct mutator *muts)
{
	uint64_t pages = dirty_pages(run);
	uint64_t *final = calloc(pages, sizeof(uint64_t));
	uint64_t writes = 0, dirtied = 0, lost = 0;

	assert_non_null(final);
	__atomic_store_n(&run->stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < NR_CPUS; i++)
		assert_int_equal(pthread_join(cpus[i].tid, NULL), 0);
	for (int i = 0; i < NR_MUTATORS; i++)
		assert_int_equal(pthread_join(muts[i].tid, NULL), 0);

	harvest(run, final, run->dirty_start, run->dirty_end);
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t need = 0, got = final[i];

		if (run->marked && run->marked[i] > got)
			got = run->marked[i];

		for (int c = 0; c < NR_CPUS; c++)
			need = cpus[c].need[i] > need ? cpus[c].need[i] : need;
		for (int m = 0; m < NR_MUTATORS; m++)
			got = muts[m].reported[i] > got ? muts[m].reported[i]
							: got;
		if (!need)
			continue;
		dirtied++;
		if (got < need && lost++ < 10)
			fprintf(stderr,
				"LOST: gfn %#llx written after harvest %llu, "
				"last reported by harvest %llu\n",
				(unsigned long long)(run->dirty_start + i),
				(unsigned long long)need - 1,
				(unsigned long long)got);
	}

	print_summary(cpus, muts, dirtied, lost);
	for (int c = 0; c < NR_CPUS; c++)
		writes += cpus[c].writes;

	for (int i = 0; i < NR_CPUS; i++) {
		tdp_vcpu_destroy(cpus[i].vcpu);
		free(cpus[i].need);
	}
	for (int i = 0; i < NR_MUTATORS; i++) {
		tdp_vcpu_destroy(muts[i].vcpu);
		free(muts[i].reported);
	}
	free(final);

	assert_int_equal(hh_failures(), 0);
	assert_true(writes > 0);
	if (lost)
		fail_msg("%llu of %llu written GFNs were never reported after "
			 "their last write",
			 (unsigned long long)lost, (unsigned long long)dirtied);
}

/* Every GFN of [start, end) maps ts_pfn_shared(gfn) (faulting in what is not). */
static void expect_all_mapped(struct ts_env *env, tdp_gfn_t start,
			      tdp_gfn_t end, bool fault_missing)
{
	for (tdp_gfn_t g = start; g < end;) {
		struct ts_leaf l = ts_lookup(env->mmu, g, TDP_ALIAS_SHARED);

		if (!l.present && fault_missing) {
			assert_int_equal(
				ts_map_retry(env->vcpu, g, TDP_ALIAS_SHARED,
					     ts_pfn_shared(g), HH_PROT_RW, 1, 0,
					     0, NULL),
				TDP_FAULT_FIXED);
			continue;
		}
		if (!l.present || l.pfn != ts_pfn_shared(g))
			fail_msg("gfn %#llx: present %d pfn %#llx",
				 (unsigned long long)g, l.present,
				 (unsigned long long)l.pfn);
		g = l.base + tdp_level_pages(l.level);
	}
}

static unsigned int run_ms(void)
{
	return ts_quick() ? 500 : 2000;
}

static uint64_t test_seed(void)
{
	const char *s = getenv("TDP_TEST_SEED");

	return s ? strtoull(s, NULL, 0) : 0x5eed;
}

/*
 * 4 KiB and 2 MiB leaves: 16 blocks (even blocks 2 MiB, odd blocks 512
 * leaves of 4 KiB) and 4 blocks that are zapped and faulted in again.
 * With @mark_dirty the zapped blocks are the last 4 of the 20 the CPUs
 * write; without, they follow the 16 and the CPUs only read them.
 * Harvests cover the whole dirty region or 2 MiB-aligned parts of it.
 */
static void mixed_test(bool mark_dirty, uint64_t seed)
{
	const tdp_gfn_t base = P1G;
	struct cpu_thread cpus[NR_CPUS];
	struct mutator muts[NR_MUTATORS];
	struct ts_env env;
	struct hw_run run;

	ts_env_init_ok(&env, &(struct ts_env_opts){ .mark_dirty = mark_dirty });
	run = (struct hw_run){
		.mmu = env.mmu,
		.dirty_start = base,
		.dirty_end = base + (mark_dirty ? 20 : 16) * P2M,
		.zap_start = base + 16 * P2M,
		.zap_end = base + 20 * P2M,
		.hot_start = base,
		.hot_end = base + 4 * P2M,
		.max_level = TDP_LEVEL_2M,
		.partial_harvest = true,
	};
	pthread_mutex_init(&run.mark_lock, NULL);
	if (mark_dirty) {
		run.marked = calloc(dirty_pages(&run), sizeof(uint64_t));
		assert_non_null(run.marked);
		env.log.mark_hook = on_mark_dirty;
		env.log.mark_arg = &run;
	}
	for (unsigned int b = 0; b < 20; b++) {
		tdp_gfn_t g = base + b * P2M;

		if (b % 2 == 0 || b >= 16) {
			TS_MAP_FIXED(env.vcpu, g, ts_pfn_shared(g), HH_PROT_RW,
				     2);
			continue;
		}
		for (tdp_gfn_t x = g; x < g + P2M; x++)
			TS_MAP_FIXED(env.vcpu, x, ts_pfn_shared(x), HH_PROT_RW,
				     1);
	}

	start_threads(&run, cpus, muts, (const int[]){ ROLE_LOGGER, ROLE_HUGE },
		      seed);
	tdp_udelay(run_ms() * 1000);
	stop_and_check(&run, cpus, muts);
	if (mark_dirty)
		assert_true(ts_flush_marks(&env.log) > 0);

	expect_all_mapped(&env, base, base + 16 * P2M, false);
	expect_all_mapped(&env, run.zap_start, run.zap_end, true);
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	env.log.mark_hook = NULL;
	ts_env_fini_ok(&env);
	free(run.marked);
	pthread_mutex_destroy(&run.mark_lock);
}

static void test_hw_dirty_mixed(void **state)
{
	(void)state;
	mixed_test(false, test_seed());
}

/* The same, and the CPUs also write what is zapped: mark_dirty reports. */
static void test_hw_dirty_mixed_zap_reported(void **state)
{
	(void)state;
	mixed_test(true, test_seed() + 3);
}

/*
 * The 1 GiB leaf at @base written by the CPUs while the mutators of
 * @roles change it, hot in its first @hot_blocks 2 MiB blocks; harvests
 * always cover the whole 1 GiB.
 */
static void run_1g(tdp_gfn_t base, unsigned int hot_blocks, const int *roles,
		   uint64_t seed)
{
	struct cpu_thread cpus[NR_CPUS];
	struct mutator muts[NR_MUTATORS];
	struct ts_env env;
	struct hw_run run;

	ts_env_init_ok(&env, NULL);
	run = (struct hw_run){
		.mmu = env.mmu,
		.dirty_start = base,
		.dirty_end = base + P1G,
		.hot_start = base,
		.hot_end = base + hot_blocks * P2M,
		.max_level = TDP_LEVEL_1G,
	};
	TS_MAP_FIXED(env.vcpu, base, ts_pfn_shared(base), HH_PROT_RW, 3);

	start_threads(&run, cpus, muts, roles, seed);
	tdp_udelay(run_ms() * 1000);
	stop_and_check(&run, cpus, muts);

	expect_all_mapped(&env, run.dirty_start, run.dirty_end, false);
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	ts_env_fini_ok(&env);
}

/*
 * A 1 GiB leaf: split to 2 MiB and 4 KiB (eagerly and by 4 KiB faults)
 * and recovered to 2 MiB and 1 GiB while the CPUs write it.
 */
static void test_hw_dirty_1g(void **state)
{
	(void)state;
	run_1g(2 * P1G, 8, (const int[]){ ROLE_LOGGER, ROLE_HUGE },
	       test_seed() + 1);
}

/*
 * Recovery to 1 GiB racing 4 KiB faults that split its 2 MiB children,
 * while the CPUs write: a dirty bit set on a 4 KiB leaf of a child split
 * after recovery checked the children must end up in the 1 GiB leaf
 * ("the huge leaf is dirty if any small leaf was", tdp/huge.h).
 */
static void test_hw_dirty_recover_1g_vs_split(void **state)
{
	(void)state;
	run_1g(3 * P1G, 4, (const int[]){ ROLE_COLLAPSE, ROLE_SPLIT_FAULT },
	       test_seed() + 2);
}

/* ---- controlled interleavings of the lockless fast fix ---------------------
 *
 * tdp_fast_fix() holds no lock: between its read of a leaf and its
 * compare-exchange, anything the locking allows may happen.  To produce
 * one exact interleaving, the page of the table that holds the leaf is
 * made read-only: a thread's first write to it (a compare-exchange or an
 * exchange, after the reads of its walk) faults, and the SIGSEGV handler
 * parks the thread until the test lets it go, with the page writable
 * again; the write is then executed as if the thread had been preempted
 * just before it.  The engine runs unmodified.
 *
 * ThreadSanitizer runs atomic operations inside its runtime holding a
 * lock per address, so a thread parked in one would block the other:
 * these tests are skipped in TSan builds.
 */

#if defined(__SANITIZE_THREAD__)
#define HH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HH_TSAN 1
#endif
#endif

/*
 * The start of a trapped race (skipped in TSan builds): a plain MMU with
 * one write-protected leaf of @level at @base.  Returns the SPTE format,
 * a copy that outlives the MMU.
 */
static struct tdp_spte_format wrprot_leaf_env(struct ts_env *env,
					      tdp_gfn_t base, int level)
{
#ifdef HH_TSAN
	skip();
#endif
	ts_env_init_ok(env, &(struct ts_env_opts){ .mark_dirty = true,
						   .record = true });
	TS_MAP_FIXED(env->vcpu, base, ts_pfn_shared(base), HH_PROT_RW, level);
	assert_int_equal(tdp_wrprot_range(env->mmu, base,
					  base + tdp_level_pages(level),
					  TDP_ALIAS_SHARED),
			 1);
	return *tdp_mmu_format(env->mmu);
}

enum { TRAP_ZAPPER, TRAP_FIXER, TRAP_RECOVERER, NR_TRAP_ROLES };

struct trap {
	uintptr_t page;
	int parked[NR_TRAP_ROLES]; /* atomics */
	int go[NR_TRAP_ROLES];
};

static struct trap trap;
static __thread int trap_role = -1;

static void trap_handler(int sig, siginfo_t *si, void *ctx)
{
	const struct timespec tick = { .tv_nsec = 100000 };
	uintptr_t addr = (uintptr_t)si->si_addr;

	(void)ctx;
	if (trap_role < 0 || addr - trap.page >= 4096) {
		/* A real crash: fault again with the default action. */
		signal(sig, SIG_DFL);
		return;
	}
	__atomic_store_n(&trap.parked[trap_role], 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&trap.go[trap_role], __ATOMIC_SEQ_CST))
		nanosleep(&tick, NULL);
}

/* Wait (up to 10 s) until @flag is set; a hang is a failure. */
static void wait_flag(const int *flag, const char *what)
{
	for (int ms = 0; !__atomic_load_n(flag, __ATOMIC_SEQ_CST); ms++) {
		if (ms > 10000) {
			fprintf(stderr, "timed out waiting for %s\n", what);
			abort();
		}
		tdp_udelay(1000);
	}
}

/* Trap the first write to the table page that holds @sptep. */
static void trap_arm_at(const tdp_spte_t *sptep, struct sigaction *old_sa)
{
	struct sigaction sa = { .sa_sigaction = trap_handler,
				.sa_flags = SA_SIGINFO };

	assert_non_null(sptep);
	memset(&trap, 0, sizeof(trap));
	trap.page = (uintptr_t)sptep & ~(uintptr_t)4095;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &sa, old_sa), 0);
	assert_int_equal(mprotect((void *)trap.page, 4096, PROT_READ), 0);
}

/* Trap the first write to the leaf table of @gfn (valid direct root). */
static void trap_arm(struct tdp_mmu *mmu, tdp_gfn_t gfn,
		     struct sigaction *old_sa)
{
	int level;

	trap_arm_at(hh_sptep(mmu, gfn, &level), old_sa);
}

static void trap_open_page(void)
{
	assert_int_equal(
		mprotect((void *)trap.page, 4096, PROT_READ | PROT_WRITE), 0);
}

static void trap_disarm(const struct sigaction *old_sa)
{
	assert_int_equal(sigaction(SIGSEGV, old_sa, NULL), 0);
}

struct trapped_call {
	struct ts_env *env;
	tdp_gfn_t gfn;
	struct tdp_vcpu *vcpu;
	int ret, ret2;
	int start, done; /* atomics */
	pthread_t tid;
};

/* A vCPU's write fault, fixed without the lock. */
static void *fixer_main(void *arg)
{
	struct trapped_call *c = arg;

	/* Registered before anyone parks inside an RCU read-side section. */
	tdp_thread_register();
	trap_role = TRAP_FIXER;
	wait_flag(&c->start, "the start of the fast fix");
	c->ret = tdp_fast_fix(c->env->mmu, c->gfn, HH_PROT_RW);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	tdp_thread_unregister();
	return NULL;
}

/* The host revokes the page and maps it again read-only (copy on write). */
static void *zapper_main(void *arg)
{
	struct trapped_call *c = arg;

	tdp_thread_register();
	trap_role = TRAP_ZAPPER;
	c->ret = tdp_zap_range(c->env->mmu, c->gfn, c->gfn + 1,
			       TDP_ALIAS_SHARED);
	c->ret2 = ts_map(c->vcpu, c->gfn, TDP_ALIAS_SHARED,
			 ts_pfn_shared(c->gfn), TDP_PROT_READ, TDP_LEVEL_4K);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	tdp_thread_unregister();
	return NULL;
}

/*
 * A write fault on a leaf write-protected for dirty logging reaches
 * tdp_fast_fix(), which reads the leaf (MMU-writable: it may restore W).
 * Before its compare-exchange the host zaps the GFN (mmu_lock for write;
 * the fixer's RCU section began after the writer's grace period) and maps
 * it again read-only: the new leaf is not MMU-writable.  The fast fix
 * must then fail its compare-exchange and give up (0): it may never make
 * the read-only leaf writable.
 */
static void test_fast_fix_vs_zap_remap(void **state)
{
	const tdp_gfn_t gfn = P1G + 3;
	struct tdp_spte_format fmt;
	struct trapped_call zapper, fixer;
	struct sigaction old_sa;
	struct ts_env env;
	struct ts_leaf l;

	(void)state;
	fmt = wrprot_leaf_env(&env, gfn, TDP_LEVEL_4K);
	zapper = (struct trapped_call){ .env = &env, .gfn = gfn };
	fixer = (struct trapped_call){ .env = &env, .gfn = gfn };
	assert_int_equal(tdp_vcpu_create(env.mmu, &zapper.vcpu), 0);

	trap_arm(env.mmu, gfn, &old_sa);
	assert_int_equal(pthread_create(&fixer.tid, NULL, fixer_main, &fixer),
			 0);
	/* The zap holds mmu_lock for write, parked at its exchange. */
	assert_int_equal(
		pthread_create(&zapper.tid, NULL, zapper_main, &zapper), 0);
	wait_flag(&trap.parked[TRAP_ZAPPER], "the zap");
	/* The fast fix read the write-protected leaf; parked at its CAS. */
	__atomic_store_n(&fixer.start, 1, __ATOMIC_SEQ_CST);
	wait_flag(&trap.parked[TRAP_FIXER], "the fast fix");
	/* The zap and the read-only fault complete. */
	trap_open_page();
	__atomic_store_n(&trap.go[TRAP_ZAPPER], 1, __ATOMIC_SEQ_CST);
	wait_flag(&zapper.done, "the zap and the read-only fault");
	assert_int_equal(zapper.ret, 0);
	assert_int_equal(zapper.ret2, TDP_FAULT_FIXED);
	/* Now the fast fix does its compare-exchange. */
	__atomic_store_n(&trap.go[TRAP_FIXER], 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(fixer.tid, NULL), 0);
	assert_int_equal(pthread_join(zapper.tid, NULL), 0);
	trap_disarm(&old_sa);
	tdp_vcpu_destroy(zapper.vcpu);

	l = ts_lookup(env.mmu, gfn, TDP_ALIAS_SHARED);
	ts_env_fini_ok(&env);
	assert_true(l.present);
	assert_false(l.spte & fmt.mmu_writable);
	if (l.spte & fmt.writable)
		fail_msg(
			"tdp_fast_fix (returned %d) made the read-only leaf of "
			"gfn %#llx writable: spte %#llx has W but not "
			"MMU-writable; its compare-exchange failed and the retry "
			"did not re-check that the leaf is MMU-writable",
			fixer.ret, (unsigned long long)gfn,
			(unsigned long long)l.spte);
	assert_int_equal(fixer.ret, 0);
}

/*
 * The same race with an eager split: the fast fix reads a write-protected
 * 2 MiB leaf; before its compare-exchange, tdp_split_huge_range()
 * replaces the leaf by a table of write-protected 4 KiB leaves.  The
 * fast fix returns 1 only if the write is now allowed (tdp/age.h: "1 if
 * the fault is fixed (or the access is already allowed)").
 */
static void test_fast_fix_vs_split(void **state)
{
	const tdp_gfn_t big = P1G + 4 * P2M, gfn = big + 7;
	struct tdp_spte_format fmt;
	struct trapped_call fixer;
	struct sigaction old_sa;
	struct ts_env env;
	struct ts_leaf l;

	(void)state;
	fmt = wrprot_leaf_env(&env, big, TDP_LEVEL_2M);
	fixer = (struct trapped_call){ .env = &env, .gfn = gfn };

	trap_arm(env.mmu, gfn, &old_sa);
	assert_int_equal(pthread_create(&fixer.tid, NULL, fixer_main, &fixer),
			 0);
	__atomic_store_n(&fixer.start, 1, __ATOMIC_SEQ_CST);
	wait_flag(&trap.parked[TRAP_FIXER], "the fast fix");
	trap_open_page();
	assert_int_equal(tdp_split_huge_range(env.mmu, big, big + P2M,
					      TDP_LEVEL_4K, TDP_ALIAS_SHARED),
			 0);
	__atomic_store_n(&trap.go[TRAP_FIXER], 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(fixer.tid, NULL), 0);
	trap_disarm(&old_sa);

	l = ts_lookup(env.mmu, gfn, TDP_ALIAS_SHARED);
	ts_env_fini_ok(&env);
	assert_true(l.present);
	assert_int_equal(l.level, TDP_LEVEL_4K);
	if (fixer.ret == 1 && !(l.spte & fmt.writable))
		fail_msg("tdp_fast_fix returned 1 (fixed) but the leaf of gfn "
			 "%#llx is still write-protected (spte %#llx): its "
			 "compare-exchange failed against the table the split "
			 "installed, and the W bit of that non-leaf SPTE was "
			 "taken for the leaf's",
			 (unsigned long long)gfn, (unsigned long long)l.spte);
	/* Not fixed (0) is right; so would be fixing the new 4 KiB leaf. */
	assert_true(fixer.ret == 0 || fixer.ret == 1);
}

/*
 * The zap of an invalidated root runs under the read lock and clears each
 * leaf with a compare-exchange, while a vCPU that loaded the root before
 * the invalidation keeps writing through it: the CPU sets the dirty bit
 * of a leaf between the zap's read of the leaf and its compare-exchange.
 * The zap must take the value it lost to and try again (not retry for
 * ever with its stale copy), and report the dirty bit to the host
 * exactly once.
 */
struct root_zapper {
	struct ts_env *env;
	int ret;
	int done; /* atomic */
	pthread_t tid;
};

static void *root_zapper_main(void *arg)
{
	struct root_zapper *z = arg;

	tdp_thread_register();
	trap_role = TRAP_ZAPPER;
	ts_flush_zap_begin(&z->env->log);
	z->ret = tdp_mmu_zap_invalidated_roots(z->env->mmu);
	ts_flush_zap_end(&z->env->log);
	__atomic_store_n(&z->done, 1, __ATOMIC_SEQ_CST);
	tdp_thread_unregister();
	return NULL;
}

static void test_root_zap_vs_cpu_dirty(void **state)
{
	/* The first leaf of its table: the zap's first write to the page. */
	const tdp_gfn_t gfn = P1G + 5 * P2M;
	struct root_zapper z = { 0 };
	struct sigaction old_sa;
	struct ts_env env;
	tdp_pfn_t root_pfn;
	int root_level;
	enum ts_hw_result res;
	bool dirtied = false;

	(void)state;
#ifdef HH_TSAN
	skip();
#endif
	ts_env_init_ok(&env, &(struct ts_env_opts){ .mark_dirty = true,
						    .record = true });
	z.env = &env;
	TS_MAP_FIXED(env.vcpu, gfn, ts_pfn_shared(gfn), HH_PROT_RW,
		     TDP_LEVEL_4K);
	TS_MAP_FIXED(env.vcpu, gfn + 1, ts_pfn_shared(gfn + 1), HH_PROT_RW,
		     TDP_LEVEL_4K);
	/* The vCPU enters the guest on this root and keeps it. */
	assert_int_equal(tdp_vcpu_load_root(env.vcpu, TDP_ALIAS_SHARED,
					    &root_pfn, &root_level),
			 0);
	assert_false(ts_lookup(env.mmu, gfn, TDP_ALIAS_SHARED).spte &
		     env.fmt->dirty);

	trap_arm(env.mmu, gfn, &old_sa);
	assert_int_equal(tdp_mmu_invalidate_roots(env.mmu, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(
		pthread_create(&z.tid, NULL, root_zapper_main, &z), 0);
	/* The zap read the clean leaf; parked at its compare-exchange. */
	wait_flag(&trap.parked[TRAP_ZAPPER], "the zap of the invalidated root");
	trap_open_page();
	/* The guest writes the page through the old root. */
	tdp_walk_begin();
	res = ts_hw_access(env.fmt, root_pfn, root_level, gfn, true, &dirtied,
			   NULL);
	tdp_walk_end();
	assert_int_equal(res, TS_HW_WRITTEN);
	assert_true(dirtied);
	__atomic_store_n(&trap.go[TRAP_ZAPPER], 1, __ATOMIC_SEQ_CST);
	/* A zap that retries with its stale copy never gets here. */
	wait_flag(&z.done, "the zap of the invalidated root to finish after "
			   "losing its compare-exchange to the CPU's dirty "
			   "bit (a retry with a stale copy of the leaf spins "
			   "for ever)");
	assert_int_equal(pthread_join(z.tid, NULL), 0);
	trap_disarm(&old_sa);
	assert_int_equal(z.ret, 0);

	/* Reported once, and only the page the CPU wrote. */
	if (ts_flush_marks_of(&env.log, gfn) != 1)
		fail_msg("gfn %#llx: dirtied by the CPU during the zap, "
			 "reported %llu times by mark_dirty",
			 (unsigned long long)gfn,
			 (unsigned long long)ts_flush_marks_of(&env.log, gfn));
	assert_int_equal(ts_flush_marks_of(&env.log, gfn + 1), 0);
	assert_int_equal(ts_flush_order_violations(&env.log), 0);
	assert_true(ts_flush_covers(&env.log, gfn));
	assert_false(ts_lookup(env.mmu, gfn, TDP_ALIAS_SHARED).present);
	ts_env_fini_ok(&env);
}

/*
 * Recovery reads the 512 small leaves (the collapse check), then replaces
 * the table by a huge leaf with a compare-exchange on the parent entry.
 * A CPU still walking the table may set a dirty bit on a small leaf in
 * between; the huge leaf must carry it (tdp/huge.h: "The huge leaf is
 * dirty if any small leaf was"), or the next harvest misses the write.
 * No mark_dirty callback: the huge leaf is the only record.
 */
struct recoverer {
	struct tdp_mmu *mmu;
	tdp_gfn_t base;
	int ret;
	int done; /* atomic */
	pthread_t tid;
};

static void *recoverer_main(void *arg)
{
	struct recoverer *r = arg;

	tdp_thread_register();
	trap_role = TRAP_RECOVERER;
	r->ret = tdp_recover_huge_pages(r->mmu, r->base, r->base + P2M,
					TDP_LEVEL_2M, TDP_ALIAS_SHARED);
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	tdp_thread_unregister();
	return NULL;
}

/* The entry of the table at 2 MiB that maps tree GFN @gfn (a table). */
static const tdp_spte_t *entry_2m(const struct tdp_spte_format *fmt,
				  tdp_pfn_t root_pfn, int root_level,
				  tdp_gfn_t gfn)
{
	const tdp_spte_t *t = tdp_pfn_to_table(root_pfn);

	for (int level = root_level;; level--) {
		const tdp_spte_t *e =
			&t[(gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
			   (TDP_SPTES_PER_TABLE - 1)];
		tdp_spte_t s = tdp_spte_read_acquire(e);

		if (level == TDP_LEVEL_2M)
			return e;
		assert_true(tdp_spte_is_present(fmt, s) &&
			    !tdp_spte_is_leaf(fmt, s, level));
		t = tdp_pfn_to_table(tdp_spte_pfn(fmt, s));
	}
}

static void test_recover_vs_cpu_dirty(void **state)
{
	const tdp_gfn_t base = P1G + 9 * P2M, gfn = base + 7;
	const tdp_spte_t *parent;
	struct recoverer r = { .base = base };
	struct sigaction old_sa;
	struct ts_env env;
	struct ts_leaf l;
	tdp_pfn_t root_pfn;
	int root_level;
	enum ts_hw_result res;
	bool dirtied = false;
	uint64_t bitmap[P2M / 64] = { 0 };

	(void)state;
#ifdef HH_TSAN
	skip();
#endif
	ts_env_init_ok(&env, &(struct ts_env_opts){ .record = true });
	r.mmu = env.mmu;
	/* 512 clean small leaves of one aligned frame range: collapsible. */
	for (tdp_gfn_t g = base; g < base + P2M; g++)
		TS_MAP_FIXED(env.vcpu, g, ts_pfn_shared(g), HH_PROT_RW,
			     TDP_LEVEL_4K);
	assert_int_equal(tdp_vcpu_load_root(env.vcpu, TDP_ALIAS_SHARED,
					    &root_pfn, &root_level),
			 0);
	tdp_walk_begin();
	parent = entry_2m(env.fmt, root_pfn, root_level, base);
	tdp_walk_end();

	/* The recovery checked the leaves; parked before the replacement. */
	trap_arm_at(parent, &old_sa);
	assert_int_equal(pthread_create(&r.tid, NULL, recoverer_main, &r), 0);
	wait_flag(&trap.parked[TRAP_RECOVERER], "the recovery");
	trap_open_page();
	/* The guest writes one small page through the table. */
	tdp_walk_begin();
	res = ts_hw_access(env.fmt, root_pfn, root_level, gfn, true, &dirtied,
			   NULL);
	tdp_walk_end();
	assert_int_equal(res, TS_HW_WRITTEN);
	assert_true(dirtied);
	__atomic_store_n(&trap.go[TRAP_RECOVERER], 1, __ATOMIC_SEQ_CST);
	wait_flag(&r.done, "the recovery to finish");
	assert_int_equal(pthread_join(r.tid, NULL), 0);
	trap_disarm(&old_sa);
	assert_int_equal(r.ret, 1);

	l = ts_lookup(env.mmu, gfn, TDP_ALIAS_SHARED);
	assert_true(l.present);
	assert_int_equal(l.level, TDP_LEVEL_2M);
	if (!(l.spte & env.fmt->dirty))
		fail_msg("gfn %#llx: the CPU dirtied its 4 KiB leaf after the "
			 "collapse check, and the 2 MiB leaf that replaced the "
			 "table is clean (spte %#llx): the write is lost to "
			 "dirty logging",
			 (unsigned long long)gfn, (unsigned long long)l.spte);
	/* What dirty logging sees: the harvest reports the write. */
	assert_true(tdp_harvest_dirty(env.mmu, base, base + P2M, bitmap,
				      TDP_ALIAS_SHARED) > 0);
	assert_true(hh_bit_test(bitmap, gfn - base));
	ts_env_fini_ok(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hw_dirty_mixed),
		cmocka_unit_test(test_hw_dirty_mixed_zap_reported),
		cmocka_unit_test(test_hw_dirty_1g),
		cmocka_unit_test(test_hw_dirty_recover_1g_vs_split),
		cmocka_unit_test(test_fast_fix_vs_zap_remap),
		cmocka_unit_test(test_fast_fix_vs_split),
		cmocka_unit_test(test_root_zap_vs_cpu_dirty),
		cmocka_unit_test(test_recover_vs_cpu_dirty),
	};

	return TS_RUN_GROUP("tests", tests);
}
