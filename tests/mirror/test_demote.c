/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Demotes of private huge leaves on partial zaps, seen from the backend:
 * a zap that covers part of a private 2 MiB (or 1 GiB) leaf splits it
 * through demote_leaf and removes exactly the covered pages, the others
 * keep their frames; a zap that covers the whole leaf removes it whole;
 * busy and hard errors of demote_leaf and allocation failures leave every
 * mapping in place; a backend without demote_leaf keeps removing whole
 * leaves.  A 4 KiB fault below a private huge leaf demotes it under the
 * read lock (alone, with injected errors, and racing other faults).  After every step the recorder's private tree must equal the
 * mirror entry for entry.
 */
#include "harness.h"

/* White box: tdp_port_fail_alloc_after() of the user-space port. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

/* Two adjacent 2 MiB regions inside one 1 GiB entry, and a 1 GiB one. */
#define R2M_A ((3ULL << 27) | (4ULL << 18) | (6ULL << 9))
#define R2M_B (R2M_A + 512)
#define R1G ((5ULL << 27) | (9ULL << 18))
/* Private frame of GFN g: congruent to g modulo 1 GiB, so huge leaves fit. */
#define PFN_PRIVATE(g) ((g) + (1ULL << 36))

static struct tdp_stats stats_of(struct ts_env *e)
{
	struct tdp_stats st;

	assert_int_equal(tdp_mmu_get_stats(e->mmu, &st), 0);
	return st;
}

/* Map a private leaf of @level at @base; assert it is one. */
static void map_huge(struct ts_env *e, tdp_gfn_t base, int level)
{
	int got = 0;
	tdp_pfn_t pfn = 0;

	assert_int_equal(ts_map_retry(e->vcpu, base, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(base), TDP_PROT_RWX, level,
				      MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_FIXED);
	assert_true(
		menv_lookup_leaf(e->mmu, base, TDP_ALIAS_PRIVATE, &got, &pfn));
	assert_int_equal(got, level);
	assert_int_equal(pfn, PFN_PRIVATE(base));
}

/* The mirror equals the recorder over everything, and nothing broke. */
static void assert_in_step(struct ts_env *e)
{
	menv_assert_mirror(e);
}

/*
 * Every GFN of [first, last) is unmapped if it lies in [start, end),
 * else mapped by a leaf of level @level to its own private frame.
 */
static void assert_pages(struct ts_env *e, tdp_gfn_t first, tdp_gfn_t last,
			 tdp_gfn_t start, tdp_gfn_t end, int level)
{
	for (tdp_gfn_t g = first; g < last; g++) {
		int got = 0;
		tdp_pfn_t pfn = 0;
		bool mapped = menv_lookup_leaf(e->mmu, g, TDP_ALIAS_PRIVATE,
					       &got, &pfn);

		if (g >= start && g < end) {
			if (mapped)
				fail_msg("gfn %#llx inside the zap is still "
					 "mapped (level %d)",
					 (unsigned long long)g, got);
			continue;
		}
		if (!mapped)
			fail_msg("gfn %#llx outside the zap lost its mapping",
				 (unsigned long long)g);
		if (got != level ||
		    pfn + (g - ts_round_down(g, got)) != PFN_PRIVATE(g))
			fail_msg("gfn %#llx: level %d pfn %#llx, expected "
				 "level %d, frame %#llx",
				 (unsigned long long)g, got,
				 (unsigned long long)pfn, level,
				 (unsigned long long)PFN_PRIVATE(g));
	}
}

/* The whole recorded state: to compare before and after a failed zap. */
struct snapshot {
	struct tdp_stats st;
	size_t tables, leaves;
};

static struct snapshot snap(struct ts_env *e)
{
	return (struct snapshot){
		.st = stats_of(e),
		.tables = ts_nr_tables(e->be),
		.leaves = ts_nr_leaves(e->be),
	};
}

static void assert_same_tree(struct ts_env *e, const struct snapshot *before)
{
	struct snapshot now = snap(e);

	assert_memory_equal(now.st.tables, before->st.tables,
			    sizeof(now.st.tables));
	assert_memory_equal(now.st.leaves, before->st.leaves,
			    sizeof(now.st.leaves));
	assert_int_equal(now.st.zapped_leaves, before->st.zapped_leaves);
	assert_int_equal(now.st.pages_in_use, before->st.pages_in_use);
	assert_int_equal(now.tables, before->tables);
	assert_int_equal(now.leaves, before->leaves);
}

/* ---- partial zaps ----------------------------------------------------- */

/*
 * Zap [base + from, base + to) of a private 2 MiB leaf at base: one
 * demote_leaf of the leaf with a fresh backend page, then remove_leaf of
 * exactly the covered 4 KiB pages in order; the other 512 - n pages keep
 * their frames through a table of 4 KiB leaves.
 */
static void run_partial(unsigned int from, unsigned int to)
{
	const tdp_gfn_t base = R2M_A;
	tdp_gfn_t start = base + from, end = base + to;
	struct tdp_stats st;
	struct ts_event ev;
	struct ts_env e;

	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, base, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), 0);

	assert_int_equal(ts_log_count(e.be), 1 + (to - from));
	ev = ts_log_get(e.be, 0);
	assert_int_equal(ev.call, TS_DEMOTE_LEAF);
	assert_int_equal(ev.gfn, base);
	assert_int_equal(ev.level, TDP_LEVEL_2M);
	assert_int_equal(ev.pfn, PFN_PRIVATE(base));
	assert_non_null(ev.ext);
	assert_int_equal(ev.ret, 0);
	assert_true(ts_ext_intact(e.be, ev.ext));
	assert_ptr_equal(ts_table_ext(e.be, base, TDP_LEVEL_2M), ev.ext);
	for (unsigned int i = 0; i < to - from; i++) {
		ev = ts_log_get(e.be, 1 + i);
		assert_int_equal(ev.call, TS_REMOVE_LEAF);
		assert_int_equal(ev.gfn, start + i);
		assert_int_equal(ev.level, TDP_LEVEL_4K);
		assert_int_equal(ev.pfn, PFN_PRIVATE(start + i));
	}
	assert_pages(&e, base, base + 512, start, end, TDP_LEVEL_4K);
	assert_in_step(&e);

	st = stats_of(&e);
	assert_int_equal(st.demotes, 1);
	assert_int_equal(st.demote_busy, 0);
	assert_int_equal(st.demote_errors, 0);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_2M], 0);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_4K],
			 512 - (to - from));
	assert_int_equal(st.tables[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 1);
	assert_int_equal(st.zapped_leaves, to - from);

	/* The new table is torn down like any other. */
	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), 0);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(ts_nr_leaves(e.be), 0);
	assert_int_equal(ts_counts(e.be).ok[TS_FREE_TABLE],
			 ts_counts(e.be).ok[TS_LINK_TABLE] + 1);
	assert_int_equal(stats_of(&e).pages_in_use, 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

static void test_partial_middle(void **state)
{
	(void)state;
	run_partial(200, 216);
}

static void test_partial_start(void **state)
{
	(void)state;
	run_partial(0, 3);
}

static void test_partial_end(void **state)
{
	(void)state;
	run_partial(509, 512);
}

static void test_partial_one_page(void **state)
{
	(void)state;
	run_partial(511, 512);
	run_partial(0, 511);
}

/*
 * A range from the middle of one 2 MiB leaf to the middle of the next:
 * both are demoted, before anything is removed, and only the covered
 * pages go.  The same on a slot deletion, which zaps both aliases.
 */
static void run_two_leaves(bool slot_deleted)
{
	const tdp_gfn_t start = R2M_A + 300, end = R2M_B + 100;
	size_t n;
	struct ts_env e;

	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	map_huge(&e, R2M_B, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);

	if (slot_deleted)
		assert_int_equal(tdp_zap_slot_deleted(e.mmu, start, end), 0);
	else
		assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end),
				 0);
	n = ts_log_count(e.be);
	assert_int_equal(n, 2 + (end - start));
	assert_int_equal(ts_log_get(e.be, 0).call, TS_DEMOTE_LEAF);
	assert_int_equal(ts_log_get(e.be, 1).call, TS_DEMOTE_LEAF);
	assert_int_equal(ts_log_get(e.be, 0).gfn, R2M_A);
	assert_int_equal(ts_log_get(e.be, 1).gfn, R2M_B);
	for (size_t i = 2; i < n; i++)
		assert_int_equal(ts_log_get(e.be, i).call, TS_REMOVE_LEAF);
	assert_pages(&e, R2M_A, R2M_B + 512, start, end, TDP_LEVEL_4K);
	assert_in_step(&e);
	assert_int_equal(stats_of(&e).demotes, 2);
	ts_env_destroy(&e);
}

static void test_partial_two_leaves(void **state)
{
	(void)state;
	run_two_leaves(false);
	run_two_leaves(true);
}

/*
 * A 1 GiB private leaf with one page zapped in its middle: the 1 GiB leaf
 * is demoted into 2 MiB leaves, the one holding the page into 4 KiB
 * leaves, and one page is removed.
 */
static void test_partial_1g(void **state)
{
	const tdp_gfn_t page = R1G + (77ULL << 9) + 5;
	const tdp_gfn_t r2m = ts_round_down(page, TDP_LEVEL_2M);
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R1G, TDP_LEVEL_1G);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, page, page + 1), 0);
	assert_int_equal(ts_log_count(e.be), 3);
	assert_int_equal(ts_log_get(e.be, 0).call, TS_DEMOTE_LEAF);
	assert_int_equal(ts_log_get(e.be, 0).gfn, R1G);
	assert_int_equal(ts_log_get(e.be, 0).level, TDP_LEVEL_1G);
	assert_int_equal(ts_log_get(e.be, 1).call, TS_DEMOTE_LEAF);
	assert_int_equal(ts_log_get(e.be, 1).gfn, r2m);
	assert_int_equal(ts_log_get(e.be, 1).level, TDP_LEVEL_2M);
	assert_int_equal(ts_log_get(e.be, 1).pfn, PFN_PRIVATE(r2m));
	assert_int_equal(ts_log_get(e.be, 2).call, TS_REMOVE_LEAF);
	assert_int_equal(ts_log_get(e.be, 2).gfn, page);

	assert_pages(&e, r2m, r2m + 512, page, page + 1, TDP_LEVEL_4K);
	assert_pages(&e, R1G, r2m, 0, 0, TDP_LEVEL_2M);
	assert_pages(&e, r2m + 512, R1G + (1ULL << 18), 0, 0, TDP_LEVEL_2M);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demotes, 2);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_1G], 0);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_2M], 511);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 511);
	ts_env_destroy(&e);
}

/* ---- whole leaves and backends without demote ------------------------- */

/* A zap covering the whole leaf (exactly, or more) removes it whole. */
static void test_whole_leaf_no_demote(void **state)
{
	struct ts_env e;
	struct ts_event ev;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	map_huge(&e, R2M_B, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, R2M_A, R2M_A + 512),
			 0);
	assert_int_equal(ts_log_count(e.be), 1);
	ev = ts_log_get(e.be, 0);
	assert_int_equal(ev.call, TS_REMOVE_LEAF);
	assert_int_equal(ev.level, TDP_LEVEL_2M);
	assert_int_equal(ev.gfn, R2M_A);
	assert_in_step(&e);

	ts_log_clear(e.be);
	assert_int_equal(
		tdp_zap_convert_to_shared(e.mmu, R2M_A - 7, R2M_B + 512 + 9),
		0);
	assert_int_equal(ts_log_count(e.be), 1);
	ev = ts_log_get(e.be, 0);
	assert_int_equal(ev.call, TS_REMOVE_LEAF);
	assert_int_equal(ev.gfn, R2M_B);
	assert_int_equal(stats_of(&e).demotes, 0);
	assert_int_equal(ts_counts(e.be).calls[TS_DEMOTE_LEAF], 0);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/* Without demote_leaf a partial zap removes the whole leaf, as before. */
static void test_no_demote_callback_zaps_whole(void **state)
{
	struct ts_env e;

	(void)state;
	menv_init(&e, 4096, 0);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	assert_int_equal(
		tdp_zap_convert_to_shared(e.mmu, R2M_A + 10, R2M_A + 11), 0);
	assert_pages(&e, R2M_A, R2M_A + 512, R2M_A, R2M_A + 512, 0);
	assert_int_equal(stats_of(&e).demotes, 0);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/* ---- failures: nothing changes ---------------------------------------- */

/*
 * A busy demote_leaf is tried again (with mmu_lock dropped in between);
 * after TDP_DEMOTE_BUSY_TRIES busy answers in a row the zap returns
 * -EBUSY with every mapping in place, and a later call succeeds.
 */
static void test_demote_busy(void **state)
{
	const tdp_gfn_t start = R2M_A + 40, end = R2M_A + 50;
	struct snapshot before;
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);

	/* A few busy answers: retried inside the zap. */
	ts_fail_next_demotes(e.be, -EBUSY, TDP_DEMOTE_BUSY_TRIES - 1);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), 0);
	for (int i = 0; i < TDP_DEMOTE_BUSY_TRIES - 1; i++) {
		assert_int_equal(ts_log_get(e.be, i).call, TS_DEMOTE_LEAF);
		assert_int_equal(ts_log_get(e.be, i).ret, -EBUSY);
	}
	assert_int_equal(ts_log_get(e.be, TDP_DEMOTE_BUSY_TRIES - 1).ret, 0);
	assert_pages(&e, R2M_A, R2M_A + 512, start, end, TDP_LEVEL_4K);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demotes, 1);
	assert_int_equal(st.demote_busy, TDP_DEMOTE_BUSY_TRIES - 1);
	assert_int_equal(st.backend_busy, 0);
	ts_env_destroy(&e);

	/* Busy every time: -EBUSY, nothing changed; then it goes through. */
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	before = snap(&e);
	ts_fail_next_demotes(e.be, -EBUSY, TDP_DEMOTE_BUSY_TRIES);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), -EBUSY);
	assert_same_tree(&e, &before);
	assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_2M);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demotes, 0);
	assert_int_equal(st.demote_busy, TDP_DEMOTE_BUSY_TRIES);
	assert_int_equal(ts_counts(e.be).calls[TS_DEMOTE_LEAF],
			 TDP_DEMOTE_BUSY_TRIES);

	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), 0);
	assert_pages(&e, R2M_A, R2M_A + 512, start, end, TDP_LEVEL_4K);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * A hard error of demote_leaf is returned with nothing changed, not even
 * the pages of the range outside the failing leaf: the ends of the range
 * are demoted before anything is removed.
 */
static void test_demote_hard_error(void **state)
{
	const tdp_gfn_t start = R2M_A + 300, end = R2M_B + 100;
	struct snapshot before;
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	/* 4 KiB leaves in the first region, a 2 MiB leaf in the second. */
	for (tdp_gfn_t g = start; g < start + 20; g++)
		assert_int_equal(ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
					      PFN_PRIVATE(g), TDP_PROT_RWX,
					      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
					      NULL),
				 TDP_FAULT_FIXED);
	map_huge(&e, R2M_B, TDP_LEVEL_2M);
	before = snap(&e);
	ts_log_enable(e.be, true);

	ts_fail_next_demotes(e.be, -ENOSPC, 1);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), -ENOSPC);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_int_equal(ts_log_get(e.be, 0).call, TS_DEMOTE_LEAF);
	assert_int_equal(ts_log_get(e.be, 0).ret, -ENOSPC);
	assert_same_tree(&e, &before);
	assert_pages(&e, start, start + 20, 0, 0, TDP_LEVEL_4K);
	assert_pages(&e, R2M_B, R2M_B + 512, 0, 0, TDP_LEVEL_2M);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demote_errors, 1);
	assert_int_equal(st.demotes, 0);
	assert_int_equal(st.backend_errors, 0);
	assert_false(tdp_mmu_is_dead(e.mmu));

	/* The MMU is fine: the same zap goes through. */
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end), 0);
	assert_pages(&e, R2M_B, R2M_B + 512, start, end, TDP_LEVEL_4K);
	assert_pages(&e, start, start + 20, start, end, 0);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * An allocation failure for the new table: -ENOMEM before demote_leaf is
 * called, nothing changed.  Each allocation of the table (metadata,
 * table page, backend page) fails in turn.
 */
static void test_demote_enomem(void **state)
{
	const tdp_gfn_t start = R2M_A + 7, end = R2M_A + 9;
	unsigned int failed = 0;
	bool done = false;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);
	for (long n = 0; n < 16 && !done; n++) {
		struct snapshot before = snap(&e);
		int ret;

		tdp_port_fail_alloc_after(n);
		ret = tdp_zap_convert_to_shared(e.mmu, start, end);
		tdp_port_fail_alloc_after(-1);
		if (ret == -ENOMEM) {
			failed++;
			assert_int_equal(ts_log_count(e.be), 0);
			assert_same_tree(&e, &before);
			assert_pages(&e, R2M_A, R2M_A + 512, 0, 0,
				     TDP_LEVEL_2M);
			assert_in_step(&e);
		} else {
			assert_int_equal(ret, 0);
			done = true;
		}
	}
	assert_true(done);
	assert_true(failed >= 2);
	assert_pages(&e, R2M_A, R2M_A + 512, start, end, TDP_LEVEL_4K);
	assert_in_step(&e);
	assert_int_equal(stats_of(&e).demotes, 1);
	ts_env_destroy(&e);
}

/*
 * Zaps that keep cutting the same demoted region: no second demote, and
 * the 4 KiB leaves that remain keep their frames until the last goes.
 */
static void test_repeated_partial_zaps(void **state)
{
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, true);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	for (unsigned int i = 0; i < 512; i += 64) {
		assert_int_equal(tdp_zap_convert_to_shared(e.mmu, R2M_A + i,
							   R2M_A + i + 32),
				 0);
		assert_in_step(&e);
	}
	for (unsigned int i = 0; i < 512; i++) {
		bool gone = (i % 64) < 32;
		int level = 0;

		assert_int_equal(menv_lookup_leaf(e.mmu, R2M_A + i,
						  TDP_ALIAS_PRIVATE, &level,
						  NULL),
				 !gone);
	}
	assert_int_equal(stats_of(&e).demotes, 1);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, R2M_A, R2M_A + 512),
			 0);
	assert_int_equal(ts_nr_leaves(e.be), 0);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/* ---- a huge leaf mapped across an end while the zap yields ------------ */

struct late_fault {
	struct ts_env *e;
	struct tdp_vcpu *vcpu; /* the faulting thread's own context */
	int go;		       /* atomic: the zap removed its first leaf */
	int ret;	       /* the fault's result, read after the join */
};

/* First removal of the zap: let the faulting thread run and queue. */
static void start_late_fault(void *arg, enum ts_call call, tdp_gfn_t gfn,
			     int level)
{
	struct late_fault *lf = arg;

	(void)call;
	(void)gfn;
	(void)level;
	if (__atomic_exchange_n(&lf->go, 1, __ATOMIC_ACQ_REL))
		return;
	/* It waits for mmu_lock now; the zap's next yield lets it in. */
	usleep(5000);
}

static void *late_fault_thread(void *arg)
{
	struct late_fault *lf = arg;

	tdp_thread_register();
	while (!__atomic_load_n(&lf->go, __ATOMIC_ACQUIRE))
		sched_yield();
	lf->ret = ts_map_retry(lf->vcpu, R2M_B, TDP_ALIAS_PRIVATE,
			       PFN_PRIVATE(R2M_B), TDP_PROT_RWX, TDP_LEVEL_2M,
			       MENV_MAX_RETRIES, 0, NULL);
	tdp_thread_unregister();
	return NULL;
}

/*
 * The ends of a range are demoted before the zap removes anything, but a
 * zap that yields lets faults in: one maps a 2 MiB leaf across the far end
 * of the range after the zap started.  The zap demotes it when it meets
 * it (allocating the table with mmu_lock dropped) and removes only the
 * covered pages.  The fault lands while the zap yields (every step, with
 * TDP_MMU_FORCE_YIELD), which the test arranges but cannot force: it
 * tries a few times and needs one run where the zap met the new leaf.
 */
static void test_leaf_mapped_while_zap_yields(void **state)
{
	const tdp_gfn_t start = R2M_A + 300, end = R2M_B + 100;
	bool met = false;

	(void)state;
	for (int attempt = 0; attempt < 5 && !met; attempt++) {
		struct late_fault lf = { 0 };
		struct tdp_stats st;
		pthread_t thread;
		struct ts_env e;

		menv_init_backend(&e, 4096, TDP_MMU_FORCE_YIELD, true);
		for (tdp_gfn_t g = start; g < R2M_B; g++)
			assert_int_equal(
				ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
					     PFN_PRIVATE(g), TDP_PROT_RWX,
					     TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
					     NULL),
				TDP_FAULT_FIXED);
		lf.e = &e;
		assert_int_equal(tdp_vcpu_create(e.mmu, &lf.vcpu), 0);
		ts_set_remove_hook(e.be, start_late_fault, &lf);
		assert_int_equal(pthread_create(&thread, NULL,
						late_fault_thread, &lf),
				 0);

		assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end),
				 0);
		assert_int_equal(pthread_join(thread, NULL), 0);
		ts_set_remove_hook(e.be, NULL, NULL);
		assert_int_equal(lf.ret, TDP_FAULT_FIXED);

		assert_pages(&e, start, R2M_B, start, end, 0);
		st = stats_of(&e);
		if (st.demotes) {
			/* The zap met the new leaf and cut only its head. */
			met = true;
			assert_int_equal(st.demotes, 1);
			assert_pages(&e, R2M_B, R2M_B + 512, start, end,
				     TDP_LEVEL_4K);
		} else {
			/* The fault came after the zap: the leaf is whole. */
			assert_pages(&e, R2M_B, R2M_B + 512, 0, 0,
				     TDP_LEVEL_2M);
		}
		assert_in_step(&e);
		fprintf(stderr, "attempt %d: the zap %s the late 2 MiB leaf\n",
			attempt, st.demotes ? "met and demoted" : "missed");
		tdp_vcpu_destroy(lf.vcpu);
		ts_env_destroy(&e);
	}
	assert_true(met);
}

/* ---- demotes by faults (mmu_lock held for read) ----------------------- */

/*
 * A 4 KiB fault under a private 2 MiB leaf (the guest accepts one page,
 * or the host allows only 4 KiB there): the fault demotes the leaf under
 * the read lock, through the freeze protocol, and every page keeps its
 * frame.  The fault then finds its 4 KiB leaf in place: SPURIOUS.
 */
static void test_fault_demotes(void **state)
{
	const tdp_gfn_t g = R2M_A + 77;
	uint64_t locks;
	struct tdp_stats st;
	struct ts_event ev;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	ts_log_enable(e.be, true);

	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_SPURIOUS);
	assert_int_equal(ts_log_count(e.be), 1);
	ev = ts_log_get(e.be, 0);
	assert_int_equal(ev.call, TS_DEMOTE_LEAF);
	assert_int_equal(ev.gfn, R2M_A);
	assert_int_equal(ev.level, TDP_LEVEL_2M);
	assert_int_equal(ev.pfn, PFN_PRIVATE(R2M_A));
	assert_int_equal(ev.ret, 0);
	assert_non_null(ev.ext);
	assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_4K);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demotes, 1);
	assert_int_equal(st.fault_demotes, 1);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_2M], 0);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 512);
	assert_int_equal(st.tables[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 1);
	assert_int_equal(st.zapped_leaves, 0);

	/* A second 4 KiB fault there finds its leaf: no second demote. */
	assert_int_equal(ts_map(e.vcpu, g + 1, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g + 1), TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_SPURIOUS);
	assert_int_equal(stats_of(&e).demotes, 1);

	assert_int_equal(stats_of(&e).write_locks, 0);
	assert_int_equal(stats_of(&e).fault_write_locks, 0);
	/* Now one page can be converted alone, no further demote; a zap
	 * takes the write lock, and the port counts it for this thread
	 * (the count fault_write_locks is measured with). */
	locks = tdp_port_thread_write_locks();
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, g, g + 1), 0);
	assert_true(stats_of(&e).write_locks > 0);
	assert_int_equal(tdp_port_thread_write_locks() - locks,
			 stats_of(&e).write_locks);
	assert_pages(&e, R2M_A, R2M_A + 512, g, g + 1, TDP_LEVEL_4K);
	assert_int_equal(stats_of(&e).demotes, 1);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * Busy and hard errors of a fault's demote: RETRY or the error, with the
 * huge leaf, the recorder and every count as before; a fault into a 1 GiB
 * leaf demotes it to 2 MiB leaves first, then the 2 MiB one.
 */
static void test_fault_demote_errors(void **state)
{
	const tdp_gfn_t g = R2M_A + 300;
	struct snapshot before;
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	map_huge(&e, R2M_A, TDP_LEVEL_2M);
	/* Fill the vCPU's cache first: the faults' top-ups add no page. */
	assert_int_equal(tdp_vcpu_topup(e.vcpu), 0);
	before = snap(&e);

	ts_fail_next_demotes(e.be, -EBUSY, 1);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_RETRY);
	assert_same_tree(&e, &before);
	assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_2M);
	assert_in_step(&e);

	ts_fail_next_demotes(e.be, -ENOSPC, 1);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 -ENOSPC);
	assert_same_tree(&e, &before);
	assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_2M);
	assert_in_step(&e);
	st = stats_of(&e);
	assert_int_equal(st.demotes, 0);
	assert_int_equal(st.demote_busy, 1);
	assert_int_equal(st.demote_errors, 1);
	assert_int_equal(st.backend_busy, 0);
	assert_int_equal(st.backend_errors, 0);

	/* The vCPU's cache got its table back: the next try goes through. */
	assert_int_equal(ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(g), TDP_PROT_RWX,
				      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_SPURIOUS);
	assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_4K);
	assert_in_step(&e);
	assert_int_equal(stats_of(&e).fault_demotes, 1);
	ts_env_destroy(&e);

	/* 1 GiB: two demotes, down to the 4 KiB page. */
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	map_huge(&e, R1G, TDP_LEVEL_1G);
	assert_int_equal(ts_map_retry(e.vcpu, R1G + 5000, TDP_ALIAS_PRIVATE,
				      PFN_PRIVATE(R1G + 5000), TDP_PROT_RWX,
				      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL),
			 TDP_FAULT_SPURIOUS);
	st = stats_of(&e);
	assert_int_equal(st.fault_demotes, 2);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_2M], 511);
	assert_int_equal(st.leaves[TDP_ROOT_MIRROR][TDP_LEVEL_4K], 512);
	assert_in_step(&e);
	ts_env_destroy(&e);
}

/*
 * Without demote_leaf, or with a backend that takes it from zaps only
 * (demote_in_faults false), a fault below a private huge leaf changes
 * nothing; demote_in_faults without demote_leaf is a bad config.
 */
static void test_fault_no_demote_callback(void **state)
{
	const tdp_gfn_t g = R2M_A + 9;
	struct tdp_private_backend be;
	struct tdp_mmu_config cfg;
	struct tdp_mmu *mmu = NULL;
	struct ts_env e;

	(void)state;
	for (unsigned int demote = 0; demote <= MENV_DEMOTE; demote++) {
		menv_init_backend(&e, 4096, 0, demote);
		map_huge(&e, R2M_A, TDP_LEVEL_2M);
		ts_log_enable(e.be, true);
		assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE,
					PFN_PRIVATE(g), TDP_PROT_RWX,
					TDP_LEVEL_4K),
				 TDP_FAULT_SPURIOUS);
		assert_int_equal(ts_log_count(e.be), 0);
		assert_pages(&e, R2M_A, R2M_A + 512, 0, 0, TDP_LEVEL_2M);
		assert_int_equal(stats_of(&e).demotes, 0);
		ts_env_destroy(&e);
	}

	menv_init_backend(&e, 4096, 0, 0);
	be = *ts_backend_ops(e.be);
	be.demote_in_faults = true;
	cfg = (struct tdp_mmu_config){
		.root_level = TS_ROOT_LEVEL,
		.direct_bits = TS_SHARED_BIT,
		.host = e.mmu->cfg.host,
		.backend = &be,
	};
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);
	assert_null(mmu);
	ts_env_destroy(&e);
}

/*
 * Race class: concurrent faults demoting the same huge leaf.  Threads,
 * each with its own vCPU, fault distinct 4 KiB pages below one private
 * 2 MiB leaf at once, with busy answers injected: exactly one demote
 * wins, the others retry on the frozen entry or find the table, and
 * every page keeps its frame.  Repeated on fresh leaves.
 */
#define RACE_THREADS 4

struct fault_racer {
	struct ts_env *e;
	struct tdp_vcpu *vcpu;
	tdp_gfn_t base;
	int index;
	pthread_barrier_t *go;
	int ret;
};

static void *fault_racer_thread(void *arg)
{
	struct fault_racer *fr = arg;
	tdp_gfn_t g = fr->base + 1 + (tdp_gfn_t)fr->index * 97;

	tdp_thread_register();
	pthread_barrier_wait(fr->go);
	fr->ret = ts_map_retry(fr->vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
			       TDP_PROT_RWX, TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
			       NULL);
	tdp_thread_unregister();
	return NULL;
}

static void test_race_fault_demotes(void **state)
{
	const int rounds = getenv("TDP_TEST_QUICK") ? 20 : 100;
	struct fault_racer fr[RACE_THREADS];
	pthread_t threads[RACE_THREADS];
	pthread_barrier_t go;
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	for (int i = 0; i < RACE_THREADS; i++)
		assert_int_equal(tdp_vcpu_create(e.mmu, &fr[i].vcpu), 0);
	/* Faults, their demotes included, never take the write lock. */
	assert_int_equal(stats_of(&e).write_locks, 0);
	for (int round = 0; round < rounds; round++) {
		tdp_gfn_t base = R2M_A + (tdp_gfn_t)round * 512;

		map_huge(&e, base, TDP_LEVEL_2M);
		if (round % 3 == 1)
			ts_fail_next_demotes(e.be, -EBUSY, 2);
		assert_int_equal(pthread_barrier_init(&go, NULL, RACE_THREADS),
				 0);
		for (int i = 0; i < RACE_THREADS; i++) {
			fr[i].e = &e;
			fr[i].base = base;
			fr[i].index = i;
			fr[i].go = &go;
			assert_int_equal(pthread_create(&threads[i], NULL,
							fault_racer_thread,
							&fr[i]),
					 0);
		}
		for (int i = 0; i < RACE_THREADS; i++) {
			assert_int_equal(pthread_join(threads[i], NULL), 0);
			assert_int_equal(fr[i].ret, TDP_FAULT_SPURIOUS);
		}
		pthread_barrier_destroy(&go);
		assert_pages(&e, base, base + 512, 0, 0, TDP_LEVEL_4K);
		st = stats_of(&e);
		assert_int_equal(st.fault_demotes, (uint64_t)round + 1);
		assert_int_equal(st.write_locks, 0);
		assert_int_equal(st.fault_write_locks, 0);
		assert_in_step(&e);
	}
	for (int i = 0; i < RACE_THREADS; i++)
		tdp_vcpu_destroy(fr[i].vcpu);
	ts_env_destroy(&e);
}

/*
 * Race class: a fault's demote racing a zap of part of the same leaf.
 * Two vCPU threads fault single 4 KiB pages below fresh private 2 MiB
 * leaves (demoting under the read lock) while the main thread converts a
 * run inside each leaf to shared (demoting under the write lock if the
 * faults did not get there first, then removing the run).  Whoever
 * demotes, exactly one demote happens per leaf, the run is gone, every
 * other page keeps its frame, and the recorder is in step.
 */
struct zap_racer {
	struct ts_env *e;
	struct tdp_vcpu *vcpu;
	/* atomic: the leaf of this round (a new value starts a round), 1
	 * to stop */
	tdp_gfn_t base;
	unsigned int offset;
	unsigned int round; /* atomic: rounds the thread has finished */
};

static void *zap_racer_thread(void *arg)
{
	struct zap_racer *zr = arg;
	tdp_gfn_t last = 0;

	tdp_thread_register();
	for (;;) {
		tdp_gfn_t base;
		int ret;

		while ((base = __atomic_load_n(&zr->base, __ATOMIC_ACQUIRE)) ==
		       last)
			sched_yield();
		if (base == 1)
			break;
		last = base;
		ret = ts_map_retry(zr->vcpu, base + zr->offset,
				   TDP_ALIAS_PRIVATE,
				   PFN_PRIVATE(base + zr->offset), TDP_PROT_RWX,
				   TDP_LEVEL_4K, MENV_MAX_RETRIES, 0, NULL);
		assert_true(ret == TDP_FAULT_SPURIOUS);
		__atomic_add_fetch(&zr->round, 1, __ATOMIC_RELEASE);
	}
	tdp_thread_unregister();
	return NULL;
}

static void test_race_fault_demote_vs_zap(void **state)
{
	const unsigned int rounds = getenv("TDP_TEST_QUICK") ? 30 : 150;
	struct zap_racer zr[2];
	pthread_t threads[2];
	struct tdp_stats st;
	struct ts_env e;

	(void)state;
	menv_init_backend(&e, 4096, 0, MENV_DEMOTE_IN_FAULTS);
	for (int i = 0; i < 2; i++) {
		zr[i] = (struct zap_racer){ .e = &e, .offset = 10 + 400 * i };
		assert_int_equal(tdp_vcpu_create(e.mmu, &zr[i].vcpu), 0);
		assert_int_equal(pthread_create(&threads[i], NULL,
						zap_racer_thread, &zr[i]),
				 0);
	}
	for (unsigned int round = 0; round < rounds; round++) {
		tdp_gfn_t base = R2M_A + (tdp_gfn_t)round * 512;
		tdp_gfn_t start = base + 200, end = base + 216;

		map_huge(&e, base, TDP_LEVEL_2M);
		for (int i = 0; i < 2; i++)
			__atomic_store_n(&zr[i].base, base, __ATOMIC_RELEASE);
		assert_int_equal(tdp_zap_convert_to_shared(e.mmu, start, end),
				 0);
		for (int i = 0; i < 2; i++)
			while (__atomic_load_n(&zr[i].round, __ATOMIC_ACQUIRE) !=
			       round + 1)
				sched_yield();
		assert_pages(&e, base, base + 512, start, end, TDP_LEVEL_4K);
		st = stats_of(&e);
		assert_int_equal(st.demotes, (uint64_t)round + 1);
		assert_in_step(&e);
	}
	for (int i = 0; i < 2; i++)
		__atomic_store_n(&zr[i].base, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		tdp_vcpu_destroy(zr[i].vcpu);
	}
	st = stats_of(&e);
	fprintf(stderr, "fault vs zap: %llu demotes, %llu by faults\n",
		(unsigned long long)st.demotes,
		(unsigned long long)st.fault_demotes);
	assert_int_equal(st.fault_write_locks, 0);
	ts_env_destroy(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial_middle),
		cmocka_unit_test(test_partial_start),
		cmocka_unit_test(test_partial_end),
		cmocka_unit_test(test_partial_one_page),
		cmocka_unit_test(test_partial_two_leaves),
		cmocka_unit_test(test_partial_1g),
		cmocka_unit_test(test_whole_leaf_no_demote),
		cmocka_unit_test(test_no_demote_callback_zaps_whole),
		cmocka_unit_test(test_demote_busy),
		cmocka_unit_test(test_demote_hard_error),
		cmocka_unit_test(test_demote_enomem),
		cmocka_unit_test(test_repeated_partial_zaps),
		cmocka_unit_test(test_leaf_mapped_while_zap_yields),
		cmocka_unit_test(test_fault_demotes),
		cmocka_unit_test(test_fault_demote_errors),
		cmocka_unit_test(test_fault_no_demote_callback),
		cmocka_unit_test(test_race_fault_demotes),
		cmocka_unit_test(test_race_fault_demote_vs_zap),
	};

	return TS_RUN_GROUP("tests", tests);
}
