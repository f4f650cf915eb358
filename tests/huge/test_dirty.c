/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dirty logging, aging and the lockless fast fix on the direct root, one
 * operation at a time: tdp_wrprot_range, tdp_fast_fix,
 * tdp_clear_dirty_range, tdp_clear_dirty_masked, tdp_harvest_dirty and
 * tdp_age_range, with their TLB flushes and bad inputs.  Accessed and
 * dirty bits are set by the simulated CPU (hh_hw_access).
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
static void map(struct ts_env *env, tdp_gfn_t gfn, unsigned int prot,
		int max_level)
{
	TS_MAP_FIXED(env->vcpu, gfn, ts_pfn_shared(gfn), prot, max_level);
}

/* The present leaf's SPTE for @gfn (asserting it maps ts_pfn_shared(gfn)). */
static tdp_spte_t spte_of(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, TDP_ALIAS_SHARED);

	if (!l.present || l.pfn != ts_pfn_shared(gfn))
		fail_msg("gfn %#llx: present %d pfn %#llx",
			 (unsigned long long)gfn, l.present,
			 (unsigned long long)l.pfn);
	return l.spte;
}

static uint64_t leaves(struct tdp_mmu *mmu)
{
	struct tdp_stats st = hh_stats(mmu);
	uint64_t n = 0;

	for (int level = 1; level <= TDP_MAX_LEVEL; level++)
		n += st.leaves[TDP_ROOT_DIRECT][level];
	return n;
}

/* ---- write-protect ---------------------------------------------------------- */

static void test_wrprot(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1), big_ro = hh_blk(1, 2);
	tdp_spte_t before[5];
	uint64_t nr_leaves;

	map(env, a + 1, HH_PROT_RW, 1);
	map(env, a + 2, TDP_PROT_RWX, 1);
	map(env, a + 3, TDP_PROT_READ, 1);
	map(env, a + 4, TDP_PROT_READ | TDP_PROT_EXEC, 1);
	map(env, big, HH_PROT_RW, 2);
	map(env, big_ro, TDP_PROT_READ, 2);
	for (int i = 1; i <= 4; i++)
		before[i] = spte_of(mmu, a + i);
	before[0] = spte_of(mmu, big);
	nr_leaves = leaves(mmu);
	ts_flush_reset(&env->log);

	/* Only leaves with W change; MMU-writable and host-writable stay. */
	assert_int_equal(tdp_wrprot_range(mmu, a, hh_blk(1, 3), TDP_ALIAS_SHARED),
			 3);
	assert_int_equal(spte_of(mmu, a + 1), before[1] & ~fmt->writable);
	assert_int_equal(spte_of(mmu, a + 2), before[2] & ~fmt->writable);
	assert_int_equal(spte_of(mmu, a + 3), before[3]);
	assert_int_equal(spte_of(mmu, a + 4), before[4]);
	assert_int_equal(spte_of(mmu, big + 300), before[0] & ~fmt->writable);
	assert_true(spte_of(mmu, a + 1) & fmt->mmu_writable);
	assert_true(spte_of(mmu, a + 1) & fmt->host_writable);
	assert_true(spte_of(mmu, big) & fmt->mmu_writable);
	assert_true(ts_flush_count(&env->log) >= 1);
	assert_true(ts_flush_covers_range(&env->log, a + 1, a + 3));
	assert_true(ts_flush_covers_range(&env->log, big, big + P2M));
	assert_int_equal(leaves(mmu), nr_leaves);

	/* Nothing left to change: returns 0 and still flushes the range. */
	ts_flush_reset(&env->log);
	assert_int_equal(tdp_wrprot_range(mmu, a, hh_blk(1, 3), TDP_ALIAS_SHARED),
			 0);
	assert_true(ts_flush_count(&env->log) >= 1);
	assert_true(ts_flush_covers_range(&env->log, a, hh_blk(1, 3)));

	/* Nothing mapped at all: also flushes. */
	ts_flush_reset(&env->log);
	assert_int_equal(
		tdp_wrprot_range(mmu, hh_gig(5), hh_gig(5) + 100, TDP_ALIAS_SHARED),
		0);
	assert_true(ts_flush_count(&env->log) >= 1);
	assert_true(
		ts_flush_covers_range(&env->log, hh_gig(5), hh_gig(5) + 100));

	/* A range inside a huge leaf write-protects the whole leaf. */
	assert_int_equal(tdp_fast_fix(mmu, big, HH_PROT_RW), 1);
	ts_flush_reset(&env->log);
	assert_int_equal(
		tdp_wrprot_range(mmu, big + 5, big + 6, TDP_ALIAS_SHARED), 1);
	assert_int_equal(spte_of(mmu, big + P2M - 1),
			 before[0] & ~fmt->writable);
	assert_true(ts_flush_covers_range(&env->log, big, big + P2M));
	assert_int_equal(leaves(mmu), nr_leaves);
}

/* ---- the lockless fast fix ------------------------------------------------- */

static void test_fast_fix(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1);
	tdp_spte_t rw, ro, big_rw, s;

	map(env, a, HH_PROT_RW, 1);
	map(env, a + 1, TDP_PROT_READ, 1);
	map(env, big, HH_PROT_RW, 2);
	rw = spte_of(mmu, a);
	ro = spte_of(mmu, a + 1);
	big_rw = spte_of(mmu, big);
	assert_int_equal(tdp_wrprot_range(mmu, a, hh_blk(1, 2), TDP_ALIAS_SHARED),
			 2);
	ts_flush_reset(&env->log);

	/* A write fault on a write-protected, MMU-writable leaf. */
	assert_int_equal(tdp_fast_fix(mmu, a, HH_PROT_RW), 1);
	assert_int_equal(spte_of(mmu, a), rw);
	/* Already allowed: fixed, unchanged. */
	assert_int_equal(tdp_fast_fix(mmu, a, HH_PROT_RW), 1);
	assert_int_equal(tdp_fast_fix(mmu, a, TDP_PROT_READ), 1);
	assert_int_equal(tdp_fast_fix(mmu, a + 1, TDP_PROT_READ), 1);
	assert_int_equal(spte_of(mmu, a), rw);

	/* An exec fault on a leaf without X needs the full fault path. */
	assert_int_equal(tdp_fast_fix(mmu, a, TDP_PROT_READ | TDP_PROT_EXEC),
			 0);
	assert_int_equal(spte_of(mmu, a), rw);
	/* Write and exec on a write-protected leaf without X: not fixed. */
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 1, TDP_ALIAS_SHARED), 1);
	ts_flush_reset(&env->log);
	assert_int_equal(tdp_fast_fix(mmu, a, TDP_PROT_RWX), 0);
	assert_int_equal(spte_of(mmu, a), rw & ~fmt->writable);
	assert_int_equal(tdp_fast_fix(mmu, a, HH_PROT_RW), 1);

	/* A write fault on a read-only leaf (not MMU-writable). */
	assert_int_equal(tdp_fast_fix(mmu, a + 1, HH_PROT_RW), 0);
	assert_int_equal(spte_of(mmu, a + 1), ro);

	/* Nothing mapped: below a table, and with no table at all. */
	assert_int_equal(tdp_fast_fix(mmu, a + 100, HH_PROT_RW), 0);
	assert_int_equal(tdp_fast_fix(mmu, hh_gig(7) + 3, TDP_PROT_READ), 0);
	assert_false(ts_lookup(mmu, a + 100, TDP_ALIAS_SHARED).present);

	/* A huge leaf gets W back as a whole. */
	assert_false(spte_of(mmu, big + 7) & fmt->writable);
	assert_int_equal(tdp_fast_fix(mmu, big + 7, HH_PROT_RW), 1);
	assert_int_equal(spte_of(mmu, big + P2M - 1), big_rw);

	/* Lockless: never a TLB flush (host callbacks need mmu_lock). */
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* Bad inputs. */
	assert_int_equal(tdp_fast_fix(NULL, a, HH_PROT_RW), -EINVAL);
	assert_int_equal(tdp_fast_fix(mmu, a, 0), -EINVAL);
	assert_int_equal(tdp_fast_fix(mmu, a, TDP_PROT_WRITE), -EINVAL);
	assert_int_equal(tdp_fast_fix(mmu, a, TDP_PROT_RWX | 8), -EINVAL);
	assert_int_equal(tdp_fast_fix(mmu, TS_PLAIN_GFN_LIMIT, HH_PROT_RW),
			 -EINVAL);
	s = spte_of(mmu, a);
	assert_int_equal(s, rw);
}

/* ---- clearing dirty bits ---------------------------------------------------- */

static void test_clear_dirty_range(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1);
	tdp_spte_t dirty_a, dirty_big, clean_a1;

	for (int i = 0; i < 4; i++)
		map(env, a + i, HH_PROT_RW, 1);
	map(env, a + 10, TDP_PROT_READ, 1);
	map(env, big, HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(mmu, a, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 2, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 1, false), TS_HW_READ);
	assert_int_equal(hh_hw_access(mmu, a + 10, true), TS_HW_WRPROT);
	assert_int_equal(hh_hw_access(mmu, big + 9, true), TS_HW_WRITTEN);
	dirty_a = spte_of(mmu, a);
	dirty_big = spte_of(mmu, big);
	clean_a1 = spte_of(mmu, a + 1);
	assert_true(dirty_a & fmt->dirty);
	assert_false(clean_a1 & fmt->dirty);
	assert_false(spte_of(mmu, a + 10) & fmt->dirty);
	ts_flush_reset(&env->log);

	assert_int_equal(
		tdp_clear_dirty_range(mmu, a, hh_blk(1, 2), TDP_ALIAS_SHARED), 3);
	assert_int_equal(spte_of(mmu, a), dirty_a & ~fmt->dirty);
	assert_int_equal(spte_of(mmu, a + 2) & ~fmt->pfn_mask,
			 dirty_a & ~(fmt->dirty | fmt->pfn_mask));
	assert_int_equal(spte_of(mmu, a + 1), clean_a1);
	assert_int_equal(spte_of(mmu, big + 100), dirty_big & ~fmt->dirty);
	assert_true(ts_flush_covers(&env->log, a));
	assert_true(ts_flush_covers(&env->log, a + 2));
	assert_true(ts_flush_covers_range(&env->log, big, big + P2M));

	/* Nothing dirty any more. */
	assert_int_equal(
		tdp_clear_dirty_range(mmu, a, hh_blk(1, 2), TDP_ALIAS_SHARED), 0);

	/* Only leaves inside the range. */
	assert_int_equal(hh_hw_access(mmu, a, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 3, true), TS_HW_WRITTEN);
	assert_int_equal(tdp_clear_dirty_range(mmu, a, a + 1, TDP_ALIAS_SHARED),
			 1);
	assert_false(spte_of(mmu, a) & fmt->dirty);
	assert_true(spte_of(mmu, a + 3) & fmt->dirty);
}

/*
 * tdp_clear_dirty_masked() of @mask at @base, with the flush record reset
 * first: it changes one leaf per bit of @mask.
 */
static void clear_masked(struct ts_env *env, tdp_gfn_t base, uint64_t mask,
			 bool wrprot)
{
	ts_flush_reset(&env->log);
	assert_int_equal(tdp_clear_dirty_masked(env->mmu, base, mask, wrprot,
						TDP_ALIAS_SHARED),
			 __builtin_popcountll(mask));
}

static void test_clear_dirty_masked(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t base = hh_blk(1, 0), base2 = base + 64;
	const tdp_gfn_t big = hh_blk(1, 1);
	const uint64_t mask = 0x00ff00ff00ff00f0ULL;
	const uint64_t mask2 = 0xf0f0f0f0f0f0f0f1ULL;
	tdp_spte_t dirty_big;

	for (int i = 0; i < 64; i++) {
		map(env, base + i, HH_PROT_RW, 1);
		assert_int_equal(hh_hw_access(mmu, base + i, true),
				 TS_HW_WRITTEN);
	}
	map(env, base2 + 3, HH_PROT_RW, 1);
	assert_int_equal(hh_hw_access(mmu, base2 + 3, true), TS_HW_WRITTEN);
	map(env, big, HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(mmu, big, true), TS_HW_WRITTEN);
	dirty_big = spte_of(mmu, big);

	/* Clear D of the masked GFNs only. */
	clear_masked(env, base, mask, false);
	for (int i = 0; i < 64; i++) {
		tdp_spte_t s = spte_of(mmu, base + i);
		bool masked = (mask >> i) & 1;

		assert_int_equal(!!(s & fmt->dirty), !masked);
		assert_true(s & fmt->writable);
		if (masked)
			assert_true(ts_flush_covers(&env->log, base + i));
	}

	/* With wrprot: clear W of the masked GFNs, D untouched. */
	clear_masked(env, base, mask2, true);
	for (int i = 0; i < 64; i++) {
		tdp_spte_t s = spte_of(mmu, base + i);

		assert_int_equal(!!(s & fmt->writable), !((mask2 >> i) & 1));
		assert_int_equal(!!(s & fmt->dirty), !((mask >> i) & 1));
		assert_true(s & fmt->mmu_writable);
		if ((mask2 >> i) & 1)
			assert_true(ts_flush_covers(&env->log, base + i));
	}
	/* Again: nothing left to change. */
	assert_int_equal(tdp_clear_dirty_masked(mmu, base, mask2, true,
						TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(
		tdp_clear_dirty_masked(mmu, base, 0, false, TDP_ALIAS_SHARED),
		0);

	/* Unmapped GFNs in the mask are skipped. */
	assert_int_equal(tdp_clear_dirty_masked(mmu, base2, ~0ULL, false,
						TDP_ALIAS_SHARED),
			 1);
	assert_false(spte_of(mmu, base2 + 3) & fmt->dirty);

	/* Huge leaves are left alone. */
	assert_int_equal(tdp_clear_dirty_masked(mmu, big + 128, ~0ULL, false,
						TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_clear_dirty_masked(mmu, big + 128, ~0ULL, true,
						TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(spte_of(mmu, big), dirty_big);

	/* Bad inputs. */
	assert_int_equal(
		tdp_clear_dirty_masked(NULL, base, 1, false, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(tdp_clear_dirty_masked(mmu, base + 1, 1, false,
						TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_clear_dirty_masked(mmu, base + 32, 1, false,
						TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_clear_dirty_masked(mmu, TS_PLAIN_GFN_LIMIT, 1,
						false, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(
		tdp_clear_dirty_masked(mmu, base, 1, false, (enum tdp_alias)0),
		-EINVAL);
	assert_int_equal(
		tdp_clear_dirty_masked(mmu, base, 1, false, (enum tdp_alias)4),
		-EINVAL);
	/* The last window of the address space is fine. */
	assert_int_equal(tdp_clear_dirty_masked(mmu, TS_PLAIN_GFN_LIMIT - 64,
						~0ULL, false, TDP_ALIAS_SHARED),
			 0);
}

/* ---- harvest ---------------------------------------------------------------- */

static void test_harvest(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1), g = hh_gig(2);
	uint64_t bm[1024 / 64];
	uint64_t *bm1g;
	tdp_spte_t before[2];

	for (int i = 0; i < 8; i++)
		map(env, a + i, HH_PROT_RW, 1);
	map(env, a + 20, TDP_PROT_READ, 1);
	map(env, big, HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(mmu, a + 1, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 5, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 6, false), TS_HW_READ);
	assert_int_equal(hh_hw_access(mmu, big + 300, true), TS_HW_WRITTEN);
	before[0] = spte_of(mmu, a + 1);
	before[1] = spte_of(mmu, big);
	ts_flush_reset(&env->log);

	/* Exactly the dirty GFNs; a huge leaf reports all of its GFNs. */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(
		tdp_harvest_dirty(mmu, a, a + 1024, bm, TDP_ALIAS_SHARED),
		2 + 512);
	for (tdp_gfn_t x = a; x < a + 1024; x++) {
		bool dirty =
			x == a + 1 || x == a + 5 || (x >= big && x < big + P2M);

		if (hh_bit_test(bm, x - a) != dirty)
			fail_msg("gfn %#llx: reported %d, dirty %d",
				 (unsigned long long)x, hh_bit_test(bm, x - a),
				 dirty);
	}
	/* D is cleared (A and W stay) and the TLB flushed. */
	assert_int_equal(spte_of(mmu, a + 1), before[0] & ~fmt->dirty);
	assert_int_equal(spte_of(mmu, big), before[1] & ~fmt->dirty);
	assert_true(ts_flush_covers(&env->log, a + 1));
	assert_true(ts_flush_covers(&env->log, a + 5));
	assert_true(ts_flush_covers_range(&env->log, big, big + P2M));

	/* A second harvest reports nothing. */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(
		tdp_harvest_dirty(mmu, a, a + 1024, bm, TDP_ALIAS_SHARED), 0);
	for (unsigned int i = 0; i < 1024 / 64; i++)
		assert_int_equal(bm[i], 0);

	/* The bitmap starts at @start: bit 0 is GFN a + 5. */
	assert_int_equal(hh_hw_access(mmu, a + 5, true), TS_HW_WRITTEN);
	memset(bm, 0, sizeof(bm));
	assert_int_equal(
		tdp_harvest_dirty(mmu, a + 5, a + 6, bm, TDP_ALIAS_SHARED), 1);
	assert_int_equal(bm[0], 1);

	/* A dirty 1 GiB leaf reports all of its GFNs. */
	map(env, g, HH_PROT_RW, 3);
	assert_int_equal(hh_hw_access(mmu, g + 12345, true), TS_HW_WRITTEN);
	bm1g = calloc(P1G / 64, sizeof(uint64_t));
	assert_non_null(bm1g);
	assert_int_equal(
		tdp_harvest_dirty(mmu, g, g + P1G, bm1g, TDP_ALIAS_SHARED),
		P1G);
	for (uint64_t i = 0; i < P1G / 64; i++)
		assert_int_equal(bm1g[i], ~0ULL);
	free(bm1g);
	assert_false(spte_of(mmu, g) & fmt->dirty);

	/* Bad inputs. */
	assert_int_equal(
		tdp_harvest_dirty(mmu, a, a + 64, NULL, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(
		tdp_harvest_dirty(NULL, a, a + 64, bm, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(tdp_harvest_dirty(mmu, a, a, bm, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_harvest_dirty(mmu, a, TS_PLAIN_GFN_LIMIT + 1, bm,
					   TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(
		tdp_harvest_dirty(mmu, a, a + 64, bm, (enum tdp_alias)0),
		-EINVAL);
}

/*
 * Harvesting in pieces: a harvest whose range covers only part of a
 * dirty huge leaf reports the part it covers; the dirty state of the
 * rest must survive for the harvest that covers it ("dirty bits are never
 * lost", tdp/dirty.h).
 */
static void test_harvest_partial_huge_leaf(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const tdp_gfn_t big = hh_blk(1, 1);
	uint64_t bm[P2M / 64];
	int64_t first, second;

	map(env, big, HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(mmu, big + 3, true), TS_HW_WRITTEN);

	memset(bm, 0, sizeof(bm));
	first = tdp_harvest_dirty(mmu, big, big + 256, bm, TDP_ALIAS_SHARED);
	assert_int_equal(first, 256);
	memset(bm, 0, sizeof(bm));
	second = tdp_harvest_dirty(mmu, big + 256, big + P2M, bm,
				   TDP_ALIAS_SHARED);
	if (second != 256)
		fail_msg("2 MiB leaf written once, harvested as [0, 256) then "
			 "[256, 512): the second harvest reported %lld GFNs, "
			 "expected 256 (the dirty state of GFNs outside the "
			 "first range was lost)",
			 (long long)second);
}

/* ---- dirty bits of removed leaves (host.mark_dirty) ------------------------- */

/* The recorded mark_dirty() calls, exactly: @n spans of (gfn, pages). */
static void expect_marks(struct ts_env *env, const tdp_gfn_t *gfns,
			 const uint64_t *pages, uint64_t n)
{
	struct ts_flush *log = &env->log;

	if (log->nr_marks != n)
		fail_msg("%llu mark_dirty calls, expected %llu",
			 (unsigned long long)log->nr_marks,
			 (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		bool found = false;

		for (uint64_t k = 0; k < log->nr_marks; k++)
			found |= log->marks[k].gfn == gfns[i] &&
				 log->marks[k].nr_pages == pages[i];
		if (!found)
			fail_msg("no mark_dirty(%#llx, %llu)",
				 (unsigned long long)gfns[i],
				 (unsigned long long)pages[i]);
	}
}

/*
 * A zap reports each removed leaf whose dirty bit is set, once, with the
 * leaf's whole span; clean leaves are not reported.
 */
static void test_mark_dirty_on_zap(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1), g = hh_gig(2);

	for (int i = 0; i < 4; i++)
		map(env, a + i, HH_PROT_RW, 1);
	map(env, big, HH_PROT_RW, 2);
	map(env, hh_blk(1, 2), HH_PROT_RW, 2);
	map(env, g, HH_PROT_RW, 3);
	assert_int_equal(hh_hw_access(mmu, a + 1, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 3, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, a + 2, false), TS_HW_READ);
	assert_int_equal(hh_hw_access(mmu, big + 100, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, g + 5, true), TS_HW_WRITTEN);
	/* Write-protected after the write: still dirty. */
	assert_int_equal(tdp_wrprot_range(mmu, a + 3, a + 4, TDP_ALIAS_SHARED),
			 1);
	ts_flush_reset(&env->log);

	/* A range that cuts the 2 MiB leaf: the whole leaf goes. */
	assert_int_equal(tdp_zap_range(mmu, a, big + 1, TDP_ALIAS_SHARED), 0);
	expect_marks(env, (const tdp_gfn_t[]){ a + 1, a + 3, big },
		     (const uint64_t[]){ 1, 1, P2M }, 3);

	/* Clean leaves: nothing. */
	ts_flush_reset(&env->log);
	assert_int_equal(
		tdp_zap_range(mmu, hh_blk(1, 2), hh_blk(1, 3), TDP_ALIAS_SHARED), 0);
	assert_int_equal(ts_flush_marks(&env->log), 0);

	/* Harvested first: reported once, by the harvest. */
	ts_flush_reset(&env->log);
	assert_int_equal(
		tdp_clear_dirty_range(mmu, g, g + P1G, TDP_ALIAS_SHARED), 1);
	assert_int_equal(hh_hw_access(mmu, g + 7, true), TS_HW_WRITTEN);
	assert_int_equal(tdp_zap_all(mmu), 0);
	expect_marks(env, (const tdp_gfn_t[]){ g }, (const uint64_t[]){ P1G },
		     1);
}

/* Teardown reports the dirty leaves it removes. */
static void test_mark_dirty_on_teardown(void **state)
{
	struct ts_env env;
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1);

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .mark_dirty = true,
						    .record = true });
	map(&env, a, HH_PROT_RW, 1);
	map(&env, a + 1, HH_PROT_RW, 1);
	map(&env, big, HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(env.mmu, a + 1, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(env.mmu, big, true), TS_HW_WRITTEN);
	ts_flush_reset(&env.log);
	tdp_vcpu_destroy(env.vcpu);
	env.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(env.mmu), 0);
	expect_marks(&env, (const tdp_gfn_t[]){ a + 1, big },
		     (const uint64_t[]){ 1, P2M }, 2);
	assert_int_equal(env.log.unlocked, 0);
	ts_env_destroy(&env);
}

/* ---- aging -------------------------------------------------------------------- */

static void test_aging(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1), g = hh_gig(2);
	struct tdp_stats before;
	tdp_spte_t s;

	/* New leaves are young (the mapping was made by an access). */
	for (int i = 0; i < 3; i++)
		map(env, a + i, HH_PROT_RW, 1);
	map(env, big, TDP_PROT_READ, 2);
	map(env, g, HH_PROT_RW, 3);
	before = hh_stats(mmu);
	ts_flush_reset(&env->log);

	/* Count without clearing: one per leaf, whatever its size. */
	assert_int_equal(
		tdp_age_range(mmu, a, g + P1G, false, TDP_ALIAS_SHARED), 5);
	assert_true(spte_of(mmu, a) & fmt->accessed);
	/* Count and clear. */
	s = spte_of(mmu, big);
	assert_int_equal(tdp_age_range(mmu, a, g + P1G, true, TDP_ALIAS_SHARED),
			 5);
	assert_int_equal(spte_of(mmu, big), s & ~fmt->accessed);
	assert_int_equal(
		tdp_age_range(mmu, a, g + P1G, false, TDP_ALIAS_SHARED), 0);
	/* Never unmaps. */
	for (int i = 0; i < 3; i++)
		assert_true(spte_of(mmu, a + i) & fmt->writable);
	spte_of(mmu, big + 17);
	spte_of(mmu, g + 99999);
	assert_int_equal(hh_stats(mmu).leaves[TDP_ROOT_DIRECT][1],
			 before.leaves[TDP_ROOT_DIRECT][1]);
	assert_int_equal(hh_stats(mmu).leaves[TDP_ROOT_DIRECT][2],
			 before.leaves[TDP_ROOT_DIRECT][2]);
	assert_int_equal(hh_stats(mmu).leaves[TDP_ROOT_DIRECT][3],
			 before.leaves[TDP_ROOT_DIRECT][3]);
	assert_int_equal(hh_stats(mmu).zapped_leaves, before.zapped_leaves);

	/* Accesses make leaves young again; D is left alone. */
	assert_int_equal(hh_hw_access(mmu, a + 1, false), TS_HW_READ);
	assert_int_equal(hh_hw_access(mmu, g + 5, true), TS_HW_WRITTEN);
	assert_int_equal(hh_hw_access(mmu, big + 400, false), TS_HW_READ);
	/* A range inside a huge leaf counts that leaf. */
	assert_int_equal(
		tdp_age_range(mmu, big + 5, big + 6, false, TDP_ALIAS_SHARED),
		1);
	assert_int_equal(tdp_age_range(mmu, a, g + P1G, true, TDP_ALIAS_SHARED),
			 3);
	assert_true(spte_of(mmu, g) & fmt->dirty);
	assert_false(spte_of(mmu, g) & fmt->accessed);
	assert_int_equal(tdp_age_range(mmu, a, g + P1G, true, TDP_ALIAS_SHARED),
			 0);

	/* Aging needs no TLB flush. */
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* Bad inputs. */
	assert_int_equal(tdp_age_range(NULL, a, a + 1, false, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_age_range(mmu, a, a, false, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_age_range(mmu, a, TS_PLAIN_GFN_LIMIT + 1, false,
				       TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_age_range(mmu, a, a + 1, false, (enum tdp_alias)0),
			 -EINVAL);
}

/* ---- bad inputs of the range operations ------------------------------------ */

static void test_bad_inputs(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const tdp_gfn_t a = hh_blk(1, 0);

	map(env, a, HH_PROT_RW, 1);
	assert_int_equal(tdp_wrprot_range(NULL, a, a + 1, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_wrprot_range(mmu, a + 1, a, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_wrprot_range(mmu, a, TS_PLAIN_GFN_LIMIT + 1,
					  TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 1, (enum tdp_alias)0),
			 -EINVAL);
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 1, (enum tdp_alias)12),
			 -EINVAL);
	assert_int_equal(
		tdp_clear_dirty_range(NULL, a, a + 1, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(tdp_clear_dirty_range(mmu, a, a, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_clear_dirty_range(mmu, a, TS_PLAIN_GFN_LIMIT + 1,
					       TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(
		tdp_clear_dirty_range(mmu, a, a + 1, (enum tdp_alias)4),
		-EINVAL);
	/* Nothing changed, no flush. */
	assert_true(spte_of(mmu, a) & tdp_mmu_format(mmu)->writable);
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* The private alias of a VM without backend selects nothing. */
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 1, TDP_ALIAS_PRIVATE), 0);
	assert_int_equal(tdp_harvest_dirty(mmu, a, a + 1, (uint64_t[1]){ 0 },
					   TDP_ALIAS_PRIVATE),
			 0);
	assert_int_equal(tdp_age_range(mmu, a, a + 1, false, TDP_ALIAS_PRIVATE),
			 0);
	assert_true(spte_of(mmu, a) & tdp_mmu_format(mmu)->writable);
}

/* ---- MMUs with a private backend -------------------------------------------- */

static void test_backend(void **state)
{
	struct ts_env env;
	const tdp_gfn_t a = hh_blk(1, 0), shared = a | TS_SHARED_BIT;
	uint64_t bm[1] = { 0 };

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .backend = true,
						    .mark_dirty = true,
						    .record = true });

	/* The private alias is refused. */
	for (int i = 0; i < 2; i++) {
		enum tdp_alias alias = i ? TDP_ALIAS_BOTH : TDP_ALIAS_PRIVATE;

		assert_int_equal(tdp_wrprot_range(env.mmu, a, a + 64, alias),
				 -EOPNOTSUPP);
		assert_int_equal(
			tdp_clear_dirty_range(env.mmu, a, a + 64, alias),
			-EOPNOTSUPP);
		assert_int_equal(
			tdp_clear_dirty_masked(env.mmu, a, ~0ULL, false, alias),
			-EOPNOTSUPP);
		assert_int_equal(
			tdp_clear_dirty_masked(env.mmu, a, ~0ULL, true, alias),
			-EOPNOTSUPP);
		assert_int_equal(
			tdp_harvest_dirty(env.mmu, a, a + 64, bm, alias),
			-EOPNOTSUPP);
		assert_int_equal(tdp_age_range(env.mmu, a, a + 64, true, alias),
				 -EOPNOTSUPP);
	}
	/* A fault GFN without the shared bit is private. */
	assert_int_equal(tdp_fast_fix(env.mmu, a, HH_PROT_RW), -EOPNOTSUPP);

	/* The shared alias works, and flushes name the shared GFN. */
	assert_int_equal(tdp_fast_fix(env.mmu, shared, HH_PROT_RW), 0);
	TS_MAP_FIXED(env.vcpu, shared, ts_pfn_shared(a), HH_PROT_RW, 1);
	ts_flush_reset(&env.log);
	assert_int_equal(tdp_wrprot_range(env.mmu, a, a + 64, TDP_ALIAS_SHARED),
			 1);
	assert_true(ts_flush_covers(&env.log, shared));
	assert_int_equal(hh_hw_access(env.mmu, a, true), TS_HW_WRPROT);
	assert_int_equal(tdp_fast_fix(env.mmu, shared, HH_PROT_RW), 1);
	assert_int_equal(hh_hw_access(env.mmu, a, true), TS_HW_WRITTEN);
	ts_flush_reset(&env.log);
	assert_int_equal(
		tdp_harvest_dirty(env.mmu, a, a + 64, bm, TDP_ALIAS_SHARED), 1);
	assert_int_equal(bm[0], 1);
	assert_true(ts_flush_covers(&env.log, shared));
	assert_int_equal(
		tdp_age_range(env.mmu, a, a + 64, true, TDP_ALIAS_SHARED), 1);
	assert_int_equal(
		tdp_clear_dirty_masked(env.mmu, a, 1, true, TDP_ALIAS_SHARED),
		1);
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	ts_env_fini_ok(&env);
}

/* ---- host callbacks run under mmu_lock -------------------------------------- */

static void expect_locked_flushes(struct ts_env *env, const char *op)
{
	uint64_t unlocked;

	tdp_spin_lock(&env->log.lock);
	unlocked = env->log.unlocked;
	env->log.unlocked = 0;
	tdp_spin_unlock(&env->log.lock);
	if (unlocked)
		fail_msg(
			"%s: %llu host flush callback(s) without mmu_lock held "
			"(tdp/mmu.h: \"called with mmu_lock held\")",
			op, (unsigned long long)unlocked);
}

/*
 * tdp/mmu.h: the host TLB callbacks "are called with mmu_lock held (read
 * or write)"; tdp/dirty.h: functions flush "before [they drop] mmu_lock".
 * Checked for every flushing operation of this suite (debug builds: the
 * port's lock-held assertions tell whether the caller holds the lock).
 */
static void test_flushes_under_mmu_lock(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const tdp_gfn_t a = hh_blk(1, 0), big = hh_blk(1, 1);
	uint64_t bm[P2M * 2 / 64];

#ifdef NDEBUG
	skip();
#endif
	for (int i = 0; i < 64; i++)
		map(env, a + i, HH_PROT_RW, 1);
	map(env, big, HH_PROT_RW, 2);
	ts_flush_reset(&env->log);

	for (int i = 0; i < 64; i++)
		hh_hw_access(mmu, a + i, true);
	assert_int_equal(
		tdp_clear_dirty_range(mmu, a, a + 32, TDP_ALIAS_SHARED), 32);
	expect_locked_flushes(env, "tdp_clear_dirty_range");
	assert_int_equal(
		tdp_clear_dirty_masked(mmu, a, ~0ULL, false, TDP_ALIAS_SHARED),
		32);
	expect_locked_flushes(env, "tdp_clear_dirty_masked");
	hh_hw_access(mmu, a + 1, true);
	assert_int_equal(
		tdp_harvest_dirty(mmu, a, a + 2 * P2M, bm, TDP_ALIAS_SHARED),
		1);
	expect_locked_flushes(env, "tdp_harvest_dirty");
	assert_int_equal(tdp_split_huge_range(mmu, big, big + 1, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_recover_huge_pages(mmu, big, big + P2M,
						TDP_LEVEL_2M, TDP_ALIAS_SHARED),
			 1);
	expect_locked_flushes(env, "tdp_recover_huge_pages");
	hh_hw_access(mmu, a + 61, true);
	assert_int_equal(tdp_zap_range(mmu, a + 60, a + 64, TDP_ALIAS_SHARED),
			 0);
	assert_true(ts_flush_marked(&env->log, a + 61));
	expect_locked_flushes(env, "tdp_zap_range (flush and mark_dirty)");
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 64, TDP_ALIAS_SHARED),
			 60);
	expect_locked_flushes(env, "tdp_wrprot_range");
	assert_int_equal(tdp_wrprot_range(mmu, a, a + 64, TDP_ALIAS_SHARED), 0);
	expect_locked_flushes(env, "tdp_wrprot_range (nothing changed)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HH_TEST(test_wrprot),
		HH_TEST(test_fast_fix),
		HH_TEST(test_clear_dirty_range),
		HH_TEST(test_clear_dirty_masked),
		HH_TEST(test_harvest),
		HH_TEST(test_harvest_partial_huge_leaf),
		HH_TEST(test_mark_dirty_on_zap),
		cmocka_unit_test(test_mark_dirty_on_teardown),
		HH_TEST(test_aging),
		HH_TEST(test_bad_inputs),
		cmocka_unit_test(test_backend),
		HH_TEST(test_flushes_under_mmu_lock),
	};

	return TS_RUN_GROUP("tests", tests);
}
