/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Promotes of private tables back into huge leaves, seen from the backend:
 * a table of 512 contiguous, aligned 4 KiB leaves (made by a demote, or
 * mapped page by page) becomes one 2 MiB leaf through promote_leaf and its
 * backend page is released; tables that do not collapse are not offered;
 * busy answers and refusals leave everything as it was and are counted;
 * tdp_recover_huge_pages() promotes for the private alias; bad arguments
 * get their error.  A stress case races promotes with faults that demote
 * and with conversions.  After every step the recorder's private tree
 * must equal the mirror entry for entry.
 */
#include "harness.h"

/* White box: the table counts and the root list. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Four 2 MiB regions inside one 1 GiB entry. */
#define R2M ((3ULL << 27) | (4ULL << 18) | (6ULL << 9))
#define PFN_PRIVATE(g) ((g) + (1ULL << 36))

static struct tdp_stats stats_of(struct ts_env *e)
{
	struct tdp_stats st;

	assert_int_equal(tdp_mmu_get_stats(e->mmu, &st), 0);
	return st;
}

static void assert_in_step(struct ts_env *e)
{
	menv_assert_mirror(e);
}

/* Every page of the 2 MiB region at @base is mapped at @level to its own
 * private frame. */
static void assert_region(struct ts_env *e, tdp_gfn_t base, int level)
{
	for (tdp_gfn_t g = base; g < base + 512; g++) {
		int got = 0;
		tdp_pfn_t pfn = 0;

		if (!menv_lookup_leaf(e->mmu, g, TDP_ALIAS_PRIVATE, &got, &pfn))
			fail_msg("gfn %#llx lost its mapping",
				 (unsigned long long)g);
		if (got != level ||
		    pfn + (g - ts_round_down(g, got)) != PFN_PRIVATE(g))
			fail_msg("gfn %#llx: level %d pfn %#llx, expected "
				 "level %d", (unsigned long long)g, got,
				 (unsigned long long)pfn, level);
	}
}

/* A private 2 MiB leaf at @base, demoted by a 4 KiB fault. */
static void map_demoted(struct ts_env *e, tdp_gfn_t base)
{
	assert_int_equal(ts_map_retry(e->vcpu, base, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(base), TDP_PROT_RWX,
				      TDP_LEVEL_2M, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_map_retry(e->vcpu, base + 3, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(base + 3), TDP_PROT_RWX,
				      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_SPURIOUS);
	assert_region(e, base, TDP_LEVEL_4K);
}

static void init(struct ts_env *e)
{
	menv_init_backend(e, 4096, 0, MENV_DEMOTE_IN_FAULTS | MENV_PROMOTE);
}

/*
 * A demoted page comes back whole: one promote_leaf with the table's
 * backend page, the counts move from 512 small leaves and a table to one
 * huge leaf, and the next 4 KiB fault demotes it again.
 */
static void test_promote_demoted(void **state)
{
	struct tdp_ext_table *ext;
	struct tdp_stats st;
	struct ts_event ev;
	struct ts_env e;

	(void)state;
	init(&e);
	map_demoted(&e, R2M);
	ext = ts_table_ext(e.be, R2M, TDP_LEVEL_2M);
	assert_non_null(ext);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 1);
	assert_int_equal(ts_log_count(e.be), 1);
	ev = ts_log_get(e.be, 0);
	assert_int_equal(ev.call, TS_PROMOTE_LEAF);
	assert_int_equal(ev.gfn, R2M);
	assert_int_equal(ev.level, TDP_LEVEL_2M);
	assert_int_equal(ev.pfn, PFN_PRIVATE(R2M));
	assert_ptr_equal(ev.ext, ext);
	assert_int_equal(ev.ret, 0);
	assert_region(&e, R2M, TDP_LEVEL_2M);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.promotes, 1);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_2M], 1);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 0);
	assert_int_equal(st.tables[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 0);
	assert_int_equal(st.zapped_leaves, 0);

	/* Nothing left to promote; a fault splits it again. */
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 0);
	assert_int_equal(ts_map_retry(e.vcpu, R2M + 100, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(R2M + 100), TDP_PROT_RWX,
				      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_SPURIOUS);
	assert_region(&e, R2M, TDP_LEVEL_4K);
	assert_int_equal(stats_of(&e).fault_demotes, 2);
	assert_in_step(&e);

	/* Teardown frees what is there, nothing twice. */
	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), 0);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(ts_nr_leaves(e.be), 0);
	assert_int_equal(stats_of(&e).pages_in_use, 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/* 512 pages mapped one by one, in order, collapse too. */
static void test_promote_mapped_pages(void **state)
{
	struct ts_env e;

	(void)state;
	init(&e);
	for (tdp_gfn_t g = R2M; g < R2M + 512; g++)
		assert_int_equal(ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
					      PFN_PRIVATE(g), TDP_PROT_RWX,
					      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
					      NULL),
				 TDP_FAULT_FIXED);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 1);
	assert_region(&e, R2M, TDP_LEVEL_2M);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * Tables that do not collapse are never offered: a hole, a page mapping
 * another frame, frames not aligned to 2 MiB.  A range that covers only
 * part of a table leaves it alone.
 */
static void test_promote_not_uniform(void **state)
{
	const tdp_gfn_t a = R2M, b = R2M + 512, c = R2M + 1024;
	struct ts_env e;

	(void)state;
	init(&e);
	map_demoted(&e, a);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, a + 7, a + 8), 0);
	for (tdp_gfn_t g = b; g < b + 512; g++)
		assert_int_equal(
			ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
				     PFN_PRIVATE(g) +
					     (g == b + 300 ? 1 << 20 : 0),
				     TDP_PROT_RWX, TDP_LEVEL_4K,
				     MENV_MAX_RETRIES, 0, NULL),
			TDP_FAULT_FIXED);
	for (tdp_gfn_t g = c; g < c + 512; g++)
		assert_int_equal(ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
					      PFN_PRIVATE(g) + 1, TDP_PROT_RWX,
					      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
					      NULL),
				 TDP_FAULT_FIXED);
	ts_log_enable(e.be, true);
	assert_int_equal(tdp_promote_private(e.mmu, a, c + 512), 0);
	assert_int_equal(ts_log_count(e.be), 0);
	assert_int_equal(stats_of(&e).promotes, 0);

	/* Fill the hole: then a collapses, but only with its whole range. */
	assert_int_equal(ts_map_retry(e.vcpu, a + 7, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(a + 7), TDP_PROT_RWX,
				      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_FIXED);
	ts_log_clear(e.be);
	assert_int_equal(tdp_recover_huge_pages(e.mmu, a, a + 512,
						TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(ts_log_count(e.be), 0);
	assert_int_equal(tdp_recover_huge_pages(e.mmu, a, c + 512,
						TDP_LEVEL_2M,
						TDP_ALIAS_PRIVATE),
			 1);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_region(&e, a, TDP_LEVEL_2M);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * Busy answers and refusals (TDX: leaves in different states) leave the
 * table, the recorder and every count as they were.
 */
static void test_promote_busy_and_refused(void **state)
{
	struct tdp_stats before, st;
	struct ts_env e;

	(void)state;
	init(&e);
	map_demoted(&e, R2M);
	before = stats_of(&e);

	ts_fail_next_promotes(e.be, -EBUSY, 1);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 0);
	ts_fail_next_promotes(e.be, -EINVAL, 1);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 0);
	st = stats_of(&e);
	assert_memory_equal(st.leaves, before.leaves, sizeof(st.leaves));
	assert_memory_equal(st.tables, before.tables, sizeof(st.tables));
	assert_int_equal(st.pages_in_use, before.pages_in_use);
	assert_int_equal(st.promotes, 0);
	assert_int_equal(st.promote_busy, 1);
	assert_int_equal(st.promote_errors, 1);
	assert_region(&e, R2M, TDP_LEVEL_4K);
	assert_in_step(&e);

	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 1);
	assert_region(&e, R2M, TDP_LEVEL_2M);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/* Bad arguments, and backends that cannot promote. */
static void test_promote_bad_input(void **state)
{
	struct ts_env e;

	(void)state;
	init(&e);
	map_demoted(&e, R2M);
	assert_int_equal(tdp_promote_private(NULL, R2M, R2M + 512), -EINVAL);
	assert_int_equal(tdp_promote_private(e.mmu, R2M + 1, R2M + 512),
			 -EINVAL);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 511), -EINVAL);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M), -EINVAL);
	assert_int_equal(tdp_promote_private(e.mmu, 0, TS_GFN_LIMIT + 512),
			 -EINVAL);
	assert_int_equal(tdp_recover_huge_pages(e.mmu, R2M, R2M + 512,
						TDP_LEVEL_2M,
						TDP_ALIAS_PRIVATE | 8),
			 -EINVAL);
	assert_int_equal(tdp_recover_huge_pages(e.mmu, R2M + 1, R2M + 512,
						TDP_LEVEL_2M,
						TDP_ALIAS_PRIVATE),
			 -EINVAL);
	assert_int_equal(stats_of(&e).promotes, 0);
	assert_region(&e, R2M, TDP_LEVEL_4K);
	ts_env_destroy(&e);

	/* Without promote_leaf: not supported, as before. */
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	map_demoted(&e, R2M);
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512),
			 -EOPNOTSUPP);
	assert_int_equal(tdp_recover_huge_pages(e.mmu, R2M, R2M + 512,
						TDP_LEVEL_2M,
						TDP_ALIAS_PRIVATE),
			 -EOPNOTSUPP);
	assert_region(&e, R2M, TDP_LEVEL_4K);
	ts_env_destroy(&e);
}

/*
 * A walker inside the table a promote merges.  A lockless reader (a
 * tdp_lookup(), or a walk like this one) that reached the 4 KiB mirror
 * table before the promote keeps reading it until its RCU read-side
 * section ends: the table is freed only after that.  Once the promote
 * returned, every entry of the old table must read FROZEN, so such a
 * reader sees no stale 4 KiB leaf (the backend merged them into the
 * 2 MiB leaf) and a fault that walked in installs nothing there.
 *
 * The walker holds no mmu_lock: the promote's write lock does not wait
 * for it (only for readers of the lock), and the table's free is queued
 * after a grace period, so the promote returns while the walker is still
 * inside.
 */
struct parked_walker {
	struct tdp_mmu *mmu;
	tdp_gfn_t gfn;
	int inside, release; /* atomics */
	bool reached;	     /* the walk found the 4 KiB table */
	int not_frozen;	     /* entries that did not read FROZEN */
	int first_bad;	     /* the first of them, and its value */
	tdp_spte_t first_bad_spte;
};

static void *parked_walker_main(void *arg)
{
	struct parked_walker *w = arg;
	const struct tdp_spte_format *fmt = tdp_mmu_format(w->mmu);
	const tdp_spte_t *t;
	struct tdp_root *root;

	tdp_thread_register();
	tdp_walk_begin();
	root = __atomic_load_n(&w->mmu->valid_root[TDP_ROOT_MIRROR],
			       __ATOMIC_ACQUIRE);
	t = root ? root->table->spt : NULL;
	/* Down to the table of 4 KiB entries that maps @gfn. */
	for (int level = root ? root->table->level : 0;
	     t && level > TDP_LEVEL_4K; level--) {
		unsigned int i = (w->gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
				 (TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t s = tdp_spte_read_acquire(&t[i]);

		if (!tdp_spte_is_present(fmt, s) ||
		    tdp_spte_is_leaf(fmt, s, level))
			t = NULL;
		else
			t = tdp_pfn_to_table(tdp_spte_pfn(fmt, s));
	}
	w->reached = t != NULL;
	__atomic_store_n(&w->inside, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&w->release, __ATOMIC_SEQ_CST))
		tdp_udelay(100);
	/* Still inside the read-side section: the table is not freed. */
	for (int i = 0; t && i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t s = tdp_spte_read_acquire(&t[i]);

		if (tdp_spte_is_frozen(fmt, s))
			continue;
		if (!w->not_frozen++) {
			w->first_bad = i;
			w->first_bad_spte = s;
		}
	}
	tdp_walk_end();
	tdp_thread_unregister();
	return NULL;
}

static void test_promote_freezes_old_table(void **state)
{
	struct parked_walker w = { .gfn = R2M + 5 };
	pthread_t tid;
	struct ts_env e;

	(void)state;
	init(&e);
	map_demoted(&e, R2M);
	w.mmu = e.mmu;
	assert_int_equal(pthread_create(&tid, NULL, parked_walker_main, &w),
			 0);
	for (int ms = 0; !__atomic_load_n(&w.inside, __ATOMIC_SEQ_CST); ms++) {
		if (ms > 10000) {
			fprintf(stderr, "the walker never reached the table\n");
			abort();
		}
		tdp_udelay(1000);
	}
	/* Returns with the walker still inside the old table. */
	assert_int_equal(tdp_promote_private(e.mmu, R2M, R2M + 512), 1);
	__atomic_store_n(&w.release, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(tid, NULL), 0);

	assert_true(w.reached);
	if (w.not_frozen)
		fail_msg("after the promote of [%#llx, +512), %d of the 512 "
			 "entries of the merged 4 KiB table still read other "
			 "than FROZEN by a walker inside it (entry %d: %#llx)",
			 (unsigned long long)R2M, w.not_frozen, w.first_bad,
			 (unsigned long long)w.first_bad_spte);
	assert_region(&e, R2M, TDP_LEVEL_2M);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * Race class: a promote racing faults and conversions.  One thread
 * promotes the four regions over and over; two vCPU threads fault 4 KiB
 * pages in them (demoting what was promoted); one thread converts single
 * pages to shared and back (a zap that demotes, then a fault).  Every
 * page the converter does not hold must stay mapped to its frame, and the
 * recorder must be in step at the end.
 */
struct race {
	struct ts_env *e;
	int stop;    /* atomic */
	uint64_t seed;
};

static void *promoter(void *arg)
{
	struct race *r = arg;

	tdp_thread_register();
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		assert_true(tdp_promote_private(r->e->mmu, R2M, R2M + 2048) >=
			    0);
	tdp_thread_unregister();
	return NULL;
}

static void *faulter(void *arg)
{
	struct race *r = arg;
	uint64_t rng = __atomic_add_fetch(&r->seed, 1, __ATOMIC_RELAXED);
	struct tdp_vcpu *vcpu;

	tdp_thread_register();
	assert_int_equal(tdp_vcpu_create(r->e->mmu, &vcpu), 0);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		tdp_gfn_t g = R2M + ts_rand(&rng) % 2048;
		int ret = ts_map_retry(vcpu, g, TDP_ALIAS_PRIVATE,
				       PFN_PRIVATE(g), TDP_PROT_RWX,
				       TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL);

		assert_true(ret == TDP_FAULT_FIXED ||
			    ret == TDP_FAULT_SPURIOUS);
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return NULL;
}

static void test_race_promote(void **state)
{
	/* At least this many rounds, then on until both races were seen a
	 * few times (or the cap: the assertions below then fail). */
	const int rounds = getenv("TDP_TEST_QUICK") ? 300 : 2000;
	const int cap = 1000000;
	struct race r = { .seed = ts_seed(11) };
	pthread_t threads[3];
	uint64_t rng = r.seed;
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	init(&e);
	r.e = &e;
	for (tdp_gfn_t base = R2M; base < R2M + 2048; base += 512)
		assert_int_equal(ts_map_retry(e.vcpu, base, TDP_ALIAS_PRIVATE,
					      PFN_PRIVATE(base), TDP_PROT_RWX,
					      TDP_LEVEL_2M, MENV_MAX_RETRIES, 0,
					      NULL),
				 TDP_FAULT_FIXED);
	assert_int_equal(pthread_create(&threads[0], NULL, promoter, &r), 0);
	assert_int_equal(pthread_create(&threads[1], NULL, faulter, &r), 0);
	assert_int_equal(pthread_create(&threads[2], NULL, faulter, &r), 0);
	for (int i = 0; i < cap; i++) {
		tdp_gfn_t g = R2M + ts_rand(&rng) % 2048;
		int ret;

		if (i >= rounds && i % 100 == 0) {
			st = stats_of(&e);
			if (st.promotes >= 5 && st.fault_demotes >= 5)
				break;
		}
		assert_int_equal(tdp_zap_convert_to_shared(e.mmu, g, g + 1), 0);
		/* A faulter may map it back first. */
		ret = ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				   TDP_PROT_RWX, TDP_LEVEL_4K, MENV_MAX_RETRIES,
				   0, NULL);
		assert_true(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);

	for (tdp_gfn_t base = R2M; base < R2M + 2048; base += 512) {
		int got = 0;
		tdp_pfn_t pfn = 0;

		assert_true(menv_lookup_leaf(e.mmu, base, TDP_ALIAS_PRIVATE,
					     &got, &pfn));
		assert_region(&e, base, got);
	}
	assert_in_step(&e);
	st = stats_of(&e);
	fprintf(stderr,
		"race: %llu promotes (%llu busy), %llu demotes (%llu by "
		"faults)\n",
		(unsigned long long)st.promotes,
		(unsigned long long)st.promote_busy,
		(unsigned long long)st.demotes,
		(unsigned long long)st.fault_demotes);
	assert_true(st.promotes >= 5);
	assert_true(st.fault_demotes >= 5);
	ts_env_destroy(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_promote_demoted),
		cmocka_unit_test(test_promote_mapped_pages),
		cmocka_unit_test(test_promote_not_uniform),
		cmocka_unit_test(test_promote_busy_and_refused),
		cmocka_unit_test(test_promote_bad_input),
		cmocka_unit_test(test_promote_freezes_old_table),
		cmocka_unit_test(test_race_promote),
	};

	return TS_RUN_GROUP("tests", tests);
}
