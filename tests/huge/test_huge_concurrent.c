/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Huge pages under concurrency: 4 KiB faults under a 2 MiB or 1 GiB leaf
 * that other threads split eagerly (and zap and map huge again), and
 * recovery running while faults fill and upgrade the tables it collapses.
 * Every fault ends FIXED or SPURIOUS after retries, every mapping seen
 * maps the GFN's own PFN, and the statistics match the tree afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define P2M TS_PAGES_2M
#define P1G TS_PAGES_1G

#define NR_FAULTERS 2
#define NR_CHANGERS 2

struct shared {
	struct tdp_mmu *mmu;
	tdp_gfn_t start, end; /* the region */
	int huge_level;	      /* level of the huge leaf the region starts as */
	bool stop;	      /* atomic */
	/*
	 * Remap handshake (sequentially consistent atomics): while @hold is
	 * set no faulter starts a fault, and @busy counts faulters inside
	 * one, so the remapper can zap everything and map the huge leaf
	 * again before the 4 KiB faults rush in.
	 */
	int hold;
	int busy;
};

struct worker {
	struct shared *sh;
	pthread_t tid;
	uint64_t seed;
	int role;
	struct tdp_vcpu *vcpu;
	uint64_t fixed, spurious, ops, made;
	unsigned long retries;
	void (*step)(struct worker *w); /* one operation of its role */
};

static bool stopping(struct shared *sh)
{
	return __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
}

/* One fault, retried until it is not TDP_FAULT_RETRY; checks the result. */
static void fault(struct worker *w, tdp_gfn_t gfn, unsigned int prot,
		  int max_level)
{
	int ret =
		ts_map_retry(w->vcpu, gfn, TDP_ALIAS_SHARED, ts_pfn_shared(gfn),
			     prot, max_level, 0, 0, &w->retries);

	HH_CHECK(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS,
		 "fault at gfn %#llx (prot %u, max level %d) returned %d",
		 (unsigned long long)gfn, prot, max_level, ret);
	w->fixed += ret == TDP_FAULT_FIXED;
	w->spurious += ret == TDP_FAULT_SPURIOUS;
}

/* Read-only one time in @n, else read and write. */
static unsigned int rand_prot(struct worker *w, uint64_t n)
{
	return ts_rand_below(&w->seed, n) ? HH_PROT_RW : TDP_PROT_READ;
}

/* A worker thread: @w->step until the run stops. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	tdp_thread_register();
	while (!stopping(w->sh))
		w->step(w);
	tdp_thread_unregister();
	return NULL;
}

/* Whatever maps @gfn maps its own PFN. */
static void check_gfn(struct shared *sh, tdp_gfn_t gfn)
{
	struct ts_leaf l = ts_lookup(sh->mmu, gfn, TDP_ALIAS_SHARED);

	HH_CHECK(!l.present || l.pfn == ts_pfn_shared(gfn),
		 "gfn %#llx maps pfn %#llx (level %d)", (unsigned long long)gfn,
		 (unsigned long long)l.pfn, l.level);
}

/* A GFN of the region, half of the time in its first 8 blocks. */
static tdp_gfn_t pick_gfn(struct shared *sh, uint64_t *seed)
{
	uint64_t pages = sh->end - sh->start;

	if (pages > 8 * P2M && ts_rand_below(seed, 2))
		pages = 8 * P2M;
	return sh->start + ts_rand_below(seed, pages);
}

/* ---- (a) 4 KiB faults under a huge leaf that is being split ------------------ */

enum split_role {
	FAULT_4K,	/* 4 KiB faults, read or write */
	SPLIT_ONLY,	/* tdp_split_huge_range, to 4 KiB or 2 MiB */
	SPLIT_AND_REMAP /* split; now and then zap all and map huge again */
};

/* A faulter may start a fault (and is counted busy) unless held. */
static bool enter_fault(struct shared *sh)
{
	if (__atomic_load_n(&sh->hold, __ATOMIC_SEQ_CST)) {
		sched_yield();
		return false;
	}
	__atomic_add_fetch(&sh->busy, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sh->hold, __ATOMIC_SEQ_CST)) {
		__atomic_sub_fetch(&sh->busy, 1, __ATOMIC_SEQ_CST);
		return false;
	}
	return true;
}

/* Hold the faulters, zap everything, map the huge leaf again. */
static void remap_huge(struct worker *w)
{
	struct shared *sh = w->sh;
	int ret;

	__atomic_store_n(&sh->hold, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&sh->busy, __ATOMIC_SEQ_CST) && !stopping(sh))
		sched_yield();
	ret = tdp_zap_all(sh->mmu);
	HH_CHECK(ret == 0, "tdp_zap_all: %d", ret);
	/* The splitter may still get in first: then it maps 4 KiB. */
	fault(w, sh->start, HH_PROT_RW, sh->huge_level);
	w->made += ts_lookup(sh->mmu, sh->start, TDP_ALIAS_SHARED).level ==
		   sh->huge_level;
	__atomic_store_n(&sh->hold, 0, __ATOMIC_SEQ_CST);
}

static void split_step(struct worker *w)
{
	struct shared *sh = w->sh;
	tdp_gfn_t gfn;
	int ret;

	switch (w->role) {
	case FAULT_4K:
		if (!enter_fault(sh))
			break;
		gfn = pick_gfn(sh, &w->seed);
		fault(w, gfn, rand_prot(w, 2), TDP_LEVEL_4K);
		check_gfn(sh, gfn);
		__atomic_sub_fetch(&sh->busy, 1, __ATOMIC_SEQ_CST);
		break;
	case SPLIT_AND_REMAP:
		if (w->ops % 8 == 7) {
			remap_huge(w);
			w->ops++;
			break;
		}
		/* fall through */
	default:
		ret = tdp_split_huge_range(sh->mmu, sh->start, sh->end,
					   1 + (int)ts_rand_below(&w->seed, 2),
					   TDP_ALIAS_SHARED);
		HH_CHECK(ret == 0, "tdp_split_huge_range: %d", ret);
		w->ops++;
		break;
	}
}

/* ---- (b) recovery while faults fill and upgrade the tables ------------------- */

enum recover_role {
	FAULT_FILL, /* 4 KiB (sometimes 2 MiB) faults, read or write */
	RECOVER,    /* tdp_recover_huge_pages over the region */
};

static void recover_step(struct worker *w)
{
	struct shared *sh = w->sh;
	tdp_gfn_t gfn;
	int ret;

	if (w->role == FAULT_FILL) {
		gfn = sh->start + ts_rand_below(&w->seed, sh->end - sh->start);
		fault(w, gfn, rand_prot(w, 5),
		      ts_rand_below(&w->seed, 4) ? TDP_LEVEL_4K : TDP_LEVEL_2M);
		check_gfn(sh, gfn);
		return;
	}
	/* Mostly the region; now and then its whole 1 GiB. */
	if (ts_rand_below(&w->seed, 8))
		ret = tdp_recover_huge_pages(sh->mmu, sh->start, sh->end,
					     TDP_LEVEL_2M, TDP_ALIAS_SHARED);
	else
		ret = tdp_recover_huge_pages(sh->mmu, sh->start & ~(P1G - 1),
					     (sh->start & ~(P1G - 1)) + P1G,
					     TDP_LEVEL_1G, TDP_ALIAS_SHARED);
	HH_CHECK(ret >= 0, "tdp_recover_huge_pages: %d", ret);
	w->made += ret > 0 ? (uint64_t)ret : 0;
	w->ops++;
}

/* ---- the driver --------------------------------------------------------------- */

static unsigned int run_ms(void)
{
	return ts_quick() ? 300 : 1500;
}

static void run_workers(struct shared *sh, struct worker *w, int n,
			const int *roles, void (*step)(struct worker *w))
{
	uint64_t faults = 0, retries = 0, ops = 0, made = 0;

	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){
			.sh = sh,
			.seed = 0x1234 + (uint64_t)i * 977,
			.role = roles[i],
			.step = step,
		};
		assert_int_equal(tdp_vcpu_create(sh->mmu, &w[i].vcpu), 0);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(
			pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
	tdp_udelay(run_ms() * 1000);
	__atomic_store_n(&sh->stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++) {
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
		tdp_vcpu_destroy(w[i].vcpu);
		faults += w[i].fixed + w[i].spurious;
		retries += w[i].retries;
		ops += w[i].ops;
		made += w[i].made;
	}
	fprintf(stderr,
		"faults %llu (retries %llu), changes %llu, huge made %llu\n",
		(unsigned long long)faults, (unsigned long long)retries,
		(unsigned long long)ops, (unsigned long long)made);
	assert_int_equal(hh_failures(), 0);
	assert_true(faults > 0 && ops > 0);
}

/* Fault every GFN of the region at 4 KiB, then check each maps its PFN. */
static void finish_4k(struct ts_env *env, struct shared *sh)
{
	for (tdp_gfn_t g = sh->start; g < sh->end; g++) {
		int ret = ts_map_retry(env->vcpu, g, TDP_ALIAS_SHARED,
				       ts_pfn_shared(g), HH_PROT_RW,
				       TDP_LEVEL_4K, 0, 0, NULL);

		if (ret != TDP_FAULT_FIXED && ret != TDP_FAULT_SPURIOUS)
			fail_msg("final fault at gfn %#llx: %d",
				 (unsigned long long)g, ret);
	}
	for (tdp_gfn_t g = sh->start; g < sh->end; g++) {
		struct ts_leaf l = ts_lookup(env->mmu, g, TDP_ALIAS_SHARED);

		if (!l.present || l.level != TDP_LEVEL_4K ||
		    l.pfn != ts_pfn_shared(g) ||
		    !(l.spte & tdp_mmu_format(env->mmu)->writable))
			fail_msg("gfn %#llx: present %d level %d pfn %#llx",
				 (unsigned long long)g, l.present, l.level,
				 (unsigned long long)l.pfn);
	}
	assert_int_equal(hh_stats_match_tree(env->mmu), 0);
}

static void split_test(tdp_gfn_t start, int huge_level)
{
	static const int roles[] = { FAULT_4K, FAULT_4K, SPLIT_ONLY,
				     SPLIT_AND_REMAP };
	struct worker w[NR_FAULTERS + NR_CHANGERS];
	struct ts_env env;
	struct shared sh;

	ts_env_init_ok(&env, &(struct ts_env_opts){ .mark_dirty = true });
	sh = (struct shared){
		.mmu = env.mmu,
		.start = start,
		.end = start + tdp_level_pages(huge_level),
		.huge_level = huge_level,
	};
	TS_MAP_FIXED(env.vcpu, start, ts_pfn_shared(start), HH_PROT_RW,
		     huge_level);
	run_workers(&sh, w, NR_FAULTERS + NR_CHANGERS, roles, split_step);
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	finish_4k(&env, &sh);
	ts_env_fini_ok(&env);
}

/* (a) 2 MiB: 4 KiB faults under a 2 MiB leaf being split. */
static void test_split_vs_4k_faults_2m(void **state)
{
	(void)state;
	split_test(P1G + 5 * P2M, TDP_LEVEL_2M);
}

/* (a) 1 GiB: 4 KiB faults under a 1 GiB leaf split to 2 MiB and 4 KiB. */
static void test_split_vs_4k_faults_1g(void **state)
{
	(void)state;
	split_test(2 * P1G, TDP_LEVEL_1G);
}

/* (b) Recovery concurrently with faults. */
static void test_recover_vs_faults(void **state)
{
	static const int roles[] = { FAULT_FILL, FAULT_FILL, RECOVER, RECOVER };
	const tdp_gfn_t start = P1G + 16 * P2M;
	struct worker w[NR_FAULTERS + NR_CHANGERS];
	struct ts_env env;
	struct shared sh;
	uint64_t tables = 0;
	int made;

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .mark_dirty = true });
	sh = (struct shared){
		.mmu = env.mmu,
		.start = start,
		.end = start + 8 * P2M,
	};
	run_workers(&sh, w, NR_FAULTERS + NR_CHANGERS, roles, recover_step);
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);

	/* Fill every table, then recovery collapses each one. */
	finish_4k(&env, &sh);
	for (tdp_gfn_t b = sh.start; b < sh.end; b += P2M)
		tables += ts_lookup(env.mmu, b, TDP_ALIAS_SHARED).level ==
			  TDP_LEVEL_4K;
	made = tdp_recover_huge_pages(env.mmu, sh.start, sh.end, TDP_LEVEL_2M,
				      TDP_ALIAS_SHARED);
	assert_int_equal(made, tables);
	for (tdp_gfn_t b = sh.start; b < sh.end; b += P2M) {
		struct ts_leaf l = ts_lookup(env.mmu, b + 17, TDP_ALIAS_SHARED);

		assert_true(l.present);
		assert_int_equal(l.level, TDP_LEVEL_2M);
		assert_int_equal(l.pfn, ts_pfn_shared(b + 17));
	}
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	ts_env_fini_ok(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_vs_4k_faults_2m),
		cmocka_unit_test(test_split_vs_4k_faults_1g),
		cmocka_unit_test(test_recover_vs_faults),
	};

	return TS_RUN_GROUP("tests", tests);
}
