/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Huge pages on the direct root, one operation at a time: faults that map
 * 2 MiB and 1 GiB leaves, eager splitting (tdp_split_huge_range) and
 * recovery (tdp_recover_huge_pages), their round trips, statistics, TLB
 * flushes, allocation failures and bad inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* White-box: tdp_port_fail_alloc_after() and tdp_rcu_barrier(). */
#include "internal.h"

#include "helpers.h"

#define P2M TS_PAGES_2M
#define P1G TS_PAGES_1G
/* The leaf mapping @gfn: present, at @level, mapping @pfn. */
static struct ts_leaf expect_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, int level,
				  tdp_pfn_t pfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, TDP_ALIAS_SHARED);

	if (!l.present || l.level != level || l.pfn != pfn)
		fail_msg("gfn %#llx: present %d level %d pfn %#llx, expected "
			 "level %d pfn %#llx",
			 (unsigned long long)gfn, l.present, l.level,
			 (unsigned long long)l.pfn, level,
			 (unsigned long long)pfn);
	return l;
}

static void expect_absent(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, TDP_ALIAS_SHARED);

	if (l.present)
		fail_msg("gfn %#llx: mapped at level %d, expected nothing",
			 (unsigned long long)gfn, l.level);
}

/* Direct-root leaves and tables of levels 1..3, and a tree cross-check. */
static void expect_stats(struct tdp_mmu *mmu, uint64_t l1, uint64_t l2,
			 uint64_t l3, uint64_t t1, uint64_t t2, uint64_t t3)
{
	struct tdp_stats st = hh_stats(mmu);
	const uint64_t *leaves = st.leaves[TDP_ROOT_DIRECT];
	const uint64_t *tables = st.tables[TDP_ROOT_DIRECT];

	assert_int_equal(leaves[1], l1);
	assert_int_equal(leaves[2], l2);
	assert_int_equal(leaves[3], l3);
	assert_int_equal(tables[1], t1);
	assert_int_equal(tables[2], t2);
	assert_int_equal(tables[3], t3);
	assert_int_equal(tables[4], 1);
	assert_int_equal(hh_stats_match_tree(mmu), 0);
}

/* The SPTE a split makes for @gfn out of huge leaf @huge (same bits). */
static tdp_spte_t split_spte(const struct tdp_spte_format *fmt, tdp_spte_t huge,
			     int level, tdp_pfn_t pfn)
{
	tdp_spte_t s = (huge & ~fmt->pfn_mask) | (pfn << TDP_PAGE_SHIFT);

	return level == TDP_LEVEL_4K ? s & ~fmt->leaf_size : s;
}

/* Every GFN of [start, end) maps ts_pfn_shared(gfn) at @level. */
static void expect_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			 int level)
{
	for (tdp_gfn_t g = start; g < end; g += tdp_level_pages(level)) {
		struct ts_leaf l = ts_lookup(mmu, g, TDP_ALIAS_SHARED);

		if (!l.present || l.level != level || l.pfn != ts_pfn_shared(g))
			fail_msg("gfn %#llx: present %d level %d pfn %#llx, "
				 "expected level %d pfn %#llx",
				 (unsigned long long)g, l.present, l.level,
				 (unsigned long long)l.pfn, level,
				 (unsigned long long)ts_pfn_shared(g));
	}
}

/* ---- faults map huge leaves ------------------------------------------------ */

static void test_fault_levels(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t g;

	/* max_level 1G, aligned: one 1 GiB leaf. */
	g = hh_gig(1);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), TDP_PROT_RWX, 3);
	expect_leaf(mmu, g + 12345, 3, ts_pfn_shared(g + 12345));
	expect_leaf(mmu, g + P1G - 1, 3, ts_pfn_shared(g + P1G - 1));
	expect_stats(mmu, 0, 0, 1, 0, 0, 1);

	/* max_level 2M in an empty, 1 GiB-aligned region: never above it.
	 * The fault GFN is inside the 2 MiB page; the leaf covers it all. */
	g = hh_gig(2);
	TS_MAP_FIXED(env->vcpu, g + 7, ts_pfn_shared(g + 7), HH_PROT_RW, 2);
	expect_leaf(mmu, g, 2, ts_pfn_shared(g));
	expect_leaf(mmu, g + P2M - 1, 2, ts_pfn_shared(g + P2M - 1));
	expect_absent(mmu, g + P2M);
	expect_stats(mmu, 0, 1, 1, 0, 1, 1);

	/* max_level 1G, GFN and PFN aligned only to 2 MiB: a 2 MiB leaf. */
	g = hh_blk(3, 5);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g) + P2M, TDP_PROT_READ, 3);
	expect_leaf(mmu, g + 3, 2, ts_pfn_shared(g) + P2M + 3);
	expect_stats(mmu, 0, 2, 1, 0, 2, 1);

	/* Misaligned PFN: falls back to 4 KiB. */
	g = hh_gig(4);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g) + 1, HH_PROT_RW, 3);
	expect_leaf(mmu, g, 1, ts_pfn_shared(g) + 1);
	expect_absent(mmu, g + 1);
	expect_stats(mmu, 1, 2, 1, 1, 3, 1);

	/* max_level 4K, aligned: 4 KiB. */
	g = hh_gig(5);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 1);
	expect_leaf(mmu, g, 1, ts_pfn_shared(g));
	expect_stats(mmu, 2, 2, 1, 2, 4, 1);

	/* A smaller mapping below forces a lower level: a 4 KiB leaf in
	 * block 1 makes a 1 GiB fault at block 0 map 2 MiB, and a 2 MiB
	 * fault in block 1 map 4 KiB. */
	g = hh_gig(6);
	TS_MAP_FIXED(env->vcpu, g + 600, ts_pfn_shared(g + 600), HH_PROT_RW, 1);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	expect_leaf(mmu, g + 100, 2, ts_pfn_shared(g + 100));
	TS_MAP_FIXED(env->vcpu, g + 515, ts_pfn_shared(g + 515), HH_PROT_RW, 2);
	expect_leaf(mmu, g + 515, 1, ts_pfn_shared(g + 515));
	expect_absent(mmu, g + 516);
	expect_stats(mmu, 4, 3, 1, 3, 5, 1);

	/* The same faults again are spurious and change nothing. */
	assert_int_equal(ts_map(env->vcpu, hh_gig(1) + 9, TDP_ALIAS_SHARED,
				ts_pfn_shared(hh_gig(1) + 9), TDP_PROT_READ, 3),
			 TDP_FAULT_SPURIOUS);
	assert_int_equal(ts_map(env->vcpu, hh_gig(2) + 9, TDP_ALIAS_SHARED,
				ts_pfn_shared(hh_gig(2) + 9), HH_PROT_RW, 2),
			 TDP_FAULT_SPURIOUS);
	expect_stats(mmu, 4, 3, 1, 3, 5, 1);
}

/* A fault that needs a smaller mapping splits the huge leaf above it. */
static void test_fault_splits_huge(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t b = hh_blk(1, 0), b2 = hh_blk(1, 1), b3 = hh_blk(1, 2), g = hh_gig(2);
	struct ts_leaf l;

	TS_MAP_FIXED(env->vcpu, b, ts_pfn_shared(b),
		     TDP_PROT_READ | TDP_PROT_EXEC, 2);
	TS_MAP_FIXED(env->vcpu, b2, ts_pfn_shared(b2), TDP_PROT_READ, 2);
	TS_MAP_FIXED(env->vcpu, b3, ts_pfn_shared(b3), HH_PROT_RW, 2);
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	expect_stats(mmu, 0, 3, 1, 0, 1, 1);
	ts_flush_reset(&env->log);

	/* Same rights: the leaf is split and the fault is spurious. */
	assert_int_equal(ts_map(env->vcpu, b + 9, TDP_ALIAS_SHARED,
				ts_pfn_shared(b + 9), TDP_PROT_READ, 1),
			 TDP_FAULT_SPURIOUS);
	expect_range(mmu, b, b + P2M, 1);
	expect_stats(mmu, 512, 2, 1, 1, 1, 1);

	/* More rights: split, then only the faulting GFN gains them. */
	TS_MAP_FIXED(env->vcpu, b2 + 9, ts_pfn_shared(b2 + 9), HH_PROT_RW, 1);
	l = expect_leaf(mmu, b2 + 9, 1, ts_pfn_shared(b2 + 9));
	assert_true(l.spte & fmt->writable);
	l = expect_leaf(mmu, b2 + 10, 1, ts_pfn_shared(b2 + 10));
	assert_false(l.spte & fmt->writable);
	expect_stats(mmu, 1024, 1, 1, 2, 1, 1);

	/* Another PFN under a huge leaf: refused before anything changes. */
	assert_int_equal(ts_map(env->vcpu, b3 + 9, TDP_ALIAS_SHARED,
				ts_pfn_shared(b3 + 9) + 1, HH_PROT_RW, 1),
			 -EINVAL);
	expect_leaf(mmu, b3 + 9, 2, ts_pfn_shared(b3 + 9));

	/* Under a 1 GiB leaf: 1G -> 2M -> 4K on the way down. */
	assert_int_equal(ts_map(env->vcpu, g + 3 * P2M + 9, TDP_ALIAS_SHARED,
				ts_pfn_shared(g + 3 * P2M + 9), HH_PROT_RW, 1),
			 TDP_FAULT_SPURIOUS);
	expect_leaf(mmu, g, 2, ts_pfn_shared(g));
	expect_range(mmu, g + 3 * P2M, g + 4 * P2M, 1);
	expect_leaf(mmu, g + 4 * P2M, 2, ts_pfn_shared(g + 4 * P2M));
	expect_stats(mmu, 1536, 1 + 511, 0, 3, 2, 1);

	/* Splitting never needs a TLB flush. */
	assert_int_equal(ts_flush_count(&env->log), 0);
}

/* ---- eager splitting -------------------------------------------------------- */

static void test_split_1g_to_4k(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t g = hh_gig(1);
	struct tdp_stats before;
	struct ts_leaf orig;

	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	orig = expect_leaf(mmu, g, 3, ts_pfn_shared(g));
	before = hh_stats(mmu);
	ts_flush_reset(&env->log);

	/* One call, pre-order: the 1 GiB leaf and then each 2 MiB leaf. */
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	for (tdp_gfn_t x = g; x < g + P1G; x++) {
		struct ts_leaf l = ts_lookup(mmu, x, TDP_ALIAS_SHARED);

		if (!l.present || l.level != 1 || l.pfn != ts_pfn_shared(x) ||
		    l.spte != split_spte(fmt, orig.spte, 1, ts_pfn_shared(x)))
			fail_msg("gfn %#llx: level %d spte %#llx after split",
				 (unsigned long long)x, l.level,
				 (unsigned long long)l.spte);
	}
	assert_int_equal(ts_flush_count(&env->log), 0);
	expect_stats(mmu, P1G, 0, 0, 512, 1, 1);
	/* One table for the 1 GiB leaf, one for each 2 MiB leaf. */
	assert_int_equal(hh_stats(mmu).pages_in_use, before.pages_in_use + 513);

	/* Nothing huge is left: a second split changes nothing. */
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	expect_stats(mmu, P1G, 0, 0, 512, 1, 1);

	/* Recovery gives the original leaf back, bit for bit. */
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_1G,
						TDP_ALIAS_SHARED),
			 513);
	assert_int_equal(
		expect_leaf(mmu, g + 77, 3, ts_pfn_shared(g + 77)).spte,
		orig.spte);
	expect_stats(mmu, 0, 0, 1, 0, 0, 1);
	tdp_rcu_barrier();
	assert_int_equal(hh_stats(mmu).pages_in_use, before.pages_in_use);
}

static void test_split_1g_to_2m(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t g = hh_gig(3);
	struct ts_leaf orig;

	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), TDP_PROT_RWX, 3);
	orig = expect_leaf(mmu, g, 3, ts_pfn_shared(g));
	ts_flush_reset(&env->log);

	/* A range of one GFN splits the whole leaf that overlaps it. */
	assert_int_equal(tdp_split_huge_range(mmu, g + 5, g + 6, TDP_LEVEL_2M,
					      TDP_ALIAS_SHARED),
			 0);
	for (unsigned int b = 0; b < 512; b++) {
		struct ts_leaf l = expect_leaf(mmu, hh_blk(3, b) + b, 2,
					       ts_pfn_shared(hh_blk(3, b) + b));

		assert_int_equal(l.spte,
				 split_spte(fmt, orig.spte, 2,
					    ts_pfn_shared(hh_blk(3, b))));
	}
	expect_stats(mmu, 0, 512, 0, 0, 1, 1);

	/* Split one 2 MiB block to 4 KiB; its neighbours stay 2 MiB. */
	assert_int_equal(tdp_split_huge_range(mmu, hh_blk(3, 3) + 1, hh_blk(3, 3) + 2,
					      TDP_LEVEL_4K, TDP_ALIAS_SHARED),
			 0);
	expect_leaf(mmu, hh_blk(3, 2) + P2M - 1, 2,
		    ts_pfn_shared(hh_blk(3, 2) + P2M - 1));
	expect_range(mmu, hh_blk(3, 3), hh_blk(3, 4), 1);
	expect_leaf(mmu, hh_blk(3, 4), 2, ts_pfn_shared(hh_blk(3, 4)));
	expect_stats(mmu, 512, 511, 0, 1, 1, 1);
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* Splitting to 2 MiB leaves 2 MiB leaves alone. */
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_2M,
					      TDP_ALIAS_SHARED),
			 0);
	expect_stats(mmu, 512, 511, 0, 1, 1, 1);

	/* Recover to 2 MiB: only block 3; nothing left the second time. */
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 1);
	expect_leaf(mmu, hh_blk(3, 3) + 8, 2, ts_pfn_shared(hh_blk(3, 3) + 8));
	expect_stats(mmu, 0, 512, 0, 0, 1, 1);
	ts_flush_reset(&env->log);
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* And to 1 GiB: the original leaf. */
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_1G,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte,
			 orig.spte);
	expect_stats(mmu, 0, 0, 1, 0, 0, 1);
}

/* Split then recover, 2 MiB, for every set of rights and A/D state. */
static void test_split_recover_roundtrip(void **state)
{
	static const unsigned int prots[] = {
		TDP_PROT_READ,
		TDP_PROT_READ | TDP_PROT_EXEC,
		HH_PROT_RW,
		TDP_PROT_RWX,
	};
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	const tdp_spte_t ad = fmt->accessed | fmt->dirty;
	struct ts_leaf orig, l;
	tdp_gfn_t b;

	for (unsigned int i = 0; i < 4; i++) {
		b = hh_blk(1, i);
		TS_MAP_FIXED(env->vcpu, b, ts_pfn_shared(b), prots[i], 2);
		orig = expect_leaf(mmu, b, 2, ts_pfn_shared(b));
		assert_int_equal(tdp_split_huge_range(mmu, b, b + P2M,
						      TDP_LEVEL_4K,
						      TDP_ALIAS_SHARED),
				 0);
		expect_range(mmu, b, b + P2M, 1);
		assert_int_equal(tdp_recover_huge_pages(mmu, b, b + P2M,
							TDP_LEVEL_2M,
							TDP_ALIAS_SHARED),
				 1);
		assert_int_equal(
			expect_leaf(mmu, b + 1, 2, ts_pfn_shared(b + 1)).spte,
			orig.spte);
	}

	/* A dirty huge leaf: every small leaf is dirty, and so is the
	 * recovered one. */
	b = hh_blk(1, 8);
	TS_MAP_FIXED(env->vcpu, b, ts_pfn_shared(b), HH_PROT_RW, 2);
	assert_int_equal(hh_hw_access(mmu, b + 3, true), TS_HW_WRITTEN);
	orig = expect_leaf(mmu, b, 2, ts_pfn_shared(b));
	assert_true(orig.spte & fmt->dirty);
	assert_int_equal(tdp_split_huge_range(mmu, b, b + P2M, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	for (tdp_gfn_t x = b; x < b + P2M; x++)
		assert_true(ts_lookup(mmu, x, TDP_ALIAS_SHARED).spte &
			    fmt->dirty);
	assert_int_equal(tdp_recover_huge_pages(mmu, b, b + P2M, TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(ts_lookup(mmu, b, TDP_ALIAS_SHARED).spte, orig.spte);

	/* A/D differ between small leaves: the recovered leaf ORs them. */
	b = hh_blk(1, 9);
	TS_MAP_FIXED(env->vcpu, b, ts_pfn_shared(b), HH_PROT_RW, 2);
	orig = expect_leaf(mmu, b, 2, ts_pfn_shared(b));
	assert_int_equal(tdp_split_huge_range(mmu, b, b + P2M, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_age_range(mmu, b, b + P2M, true, TDP_ALIAS_SHARED),
			 512);
	/* No small leaf accessed: the huge leaf is old and clean. */
	assert_int_equal(tdp_recover_huge_pages(mmu, b, b + P2M, TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(ts_lookup(mmu, b, TDP_ALIAS_SHARED).spte,
			 orig.spte & ~ad);
	assert_int_equal(tdp_split_huge_range(mmu, b, b + P2M, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	/* One small leaf read, another written. */
	assert_int_equal(hh_hw_access(mmu, b + 100, false), TS_HW_READ);
	assert_int_equal(hh_hw_access(mmu, b + 511, true), TS_HW_WRITTEN);
	l = ts_lookup(mmu, b + 100, TDP_ALIAS_SHARED);
	assert_int_equal(l.spte & ad, fmt->accessed);
	assert_int_equal(tdp_recover_huge_pages(mmu, b, b + P2M, TDP_LEVEL_2M,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(ts_lookup(mmu, b, TDP_ALIAS_SHARED).spte,
			 orig.spte | fmt->dirty);
	expect_stats(mmu, 0, 6, 0, 0, 1, 1);
}

/* ---- recovery refuses tables that do not collapse ------------------------- */

static int recover_2m(struct tdp_mmu *mmu, tdp_gfn_t b)
{
	return tdp_recover_huge_pages(mmu, b, b + P2M, TDP_LEVEL_2M,
				      TDP_ALIAS_SHARED);
}

/* Map a 2 MiB leaf at @b and split it; returns the huge SPTE. */
static tdp_spte_t map_split_2m(struct ts_env *env, tdp_gfn_t b,
			       unsigned int prot)
{
	tdp_spte_t spte;

	TS_MAP_FIXED(env->vcpu, b, ts_pfn_shared(b), prot, 2);
	spte = expect_leaf(env->mmu, b, 2, ts_pfn_shared(b)).spte;
	assert_int_equal(tdp_split_huge_range(env->mmu, b, b + P2M,
					      TDP_LEVEL_4K, TDP_ALIAS_SHARED),
			 0);
	return spte;
}

static void test_recover_refuses_nonuniform(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t b0 = hh_blk(1, 0), b1 = hh_blk(1, 1), b2 = hh_blk(1, 2),
		  b3 = hh_blk(1, 3);
	tdp_gfn_t b4 = hh_blk(1, 4), g = hh_gig(2);
	tdp_spte_t orig0, orig1, orig4, orig_g;
	struct tdp_stats before;

	/* One missing leaf. */
	orig0 = map_split_2m(env, b0, HH_PROT_RW);
	assert_int_equal(tdp_zap_range(mmu, b0 + 17, b0 + 18, TDP_ALIAS_SHARED),
			 0);
	/* Different rights: one leaf write-protected. */
	orig1 = map_split_2m(env, b1, HH_PROT_RW);
	assert_int_equal(
		tdp_wrprot_range(mmu, b1 + 5, b1 + 6, TDP_ALIAS_SHARED), 1);
	/* A PFN out of sequence. */
	map_split_2m(env, b2, HH_PROT_RW);
	assert_int_equal(
		tdp_zap_range(mmu, b2 + 100, b2 + 101, TDP_ALIAS_SHARED), 0);
	TS_MAP_FIXED(env->vcpu, b2 + 100, ts_pfn_shared(b2 + 100) + 4096,
		     HH_PROT_RW, 1);
	/* Contiguous PFNs whose base is not 2 MiB aligned. */
	for (tdp_gfn_t x = b3; x < b3 + P2M; x++)
		TS_MAP_FIXED(env->vcpu, x, ts_pfn_shared(x) + 1, HH_PROT_RW, 2);
	/* Different rights: one leaf executable. */
	orig4 = map_split_2m(env, b4, HH_PROT_RW);
	assert_int_equal(tdp_zap_range(mmu, b4 + 9, b4 + 10, TDP_ALIAS_SHARED),
			 0);
	TS_MAP_FIXED(env->vcpu, b4 + 9, ts_pfn_shared(b4 + 9), TDP_PROT_RWX, 1);
	/* 1 GiB: one 2 MiB child write-protected. */
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	orig_g = expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte;
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_2M,
					      TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_wrprot_range(mmu, hh_blk(2, 200), hh_blk(2, 200) + 1,
					  TDP_ALIAS_SHARED),
			 1);

	before = hh_stats(mmu);
	ts_flush_reset(&env->log);
	assert_int_equal(tdp_recover_huge_pages(mmu, hh_gig(1), hh_gig(3),
						TDP_LEVEL_1G, TDP_ALIAS_SHARED),
			 0);
	/* Nothing recovered: nothing changed, nothing flushed. */
	assert_int_equal(ts_flush_count(&env->log), 0);
	assert_int_equal(hh_stats(mmu).leaves[TDP_ROOT_DIRECT][1],
			 before.leaves[TDP_ROOT_DIRECT][1]);
	expect_stats(mmu, 5 * 512 - 1, 512, 0, 5, 2, 1);
	expect_leaf(mmu, b0, 1, ts_pfn_shared(b0));
	expect_leaf(mmu, b1, 1, ts_pfn_shared(b1));
	expect_leaf(mmu, b2, 1, ts_pfn_shared(b2));
	expect_leaf(mmu, b3, 1, ts_pfn_shared(b3) + 1);
	expect_leaf(mmu, b4, 1, ts_pfn_shared(b4));

	/* A range that does not cover the whole 1 GiB table. */
	assert_int_equal(tdp_fast_fix(mmu, hh_blk(2, 200), HH_PROT_RW), 1);
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G - P2M,
						TDP_LEVEL_1G, TDP_ALIAS_SHARED),
			 0);
	expect_leaf(mmu, g, 2, ts_pfn_shared(g));
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_1G,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte, orig_g);

	/* Repair each table: then each recovers to the original leaf. */
	TS_MAP_FIXED(env->vcpu, b0 + 17, ts_pfn_shared(b0 + 17), HH_PROT_RW, 1);
	assert_int_equal(recover_2m(mmu, b0), 1);
	assert_int_equal(expect_leaf(mmu, b0, 2, ts_pfn_shared(b0)).spte,
			 orig0);

	assert_int_equal(tdp_fast_fix(mmu, b1 + 5, HH_PROT_RW), 1);
	assert_int_equal(recover_2m(mmu, b1), 1);
	assert_int_equal(expect_leaf(mmu, b1, 2, ts_pfn_shared(b1)).spte,
			 orig1);

	assert_int_equal(tdp_zap_range(mmu, b4 + 9, b4 + 10, TDP_ALIAS_SHARED),
			 0);
	TS_MAP_FIXED(env->vcpu, b4 + 9, ts_pfn_shared(b4 + 9), HH_PROT_RW, 1);
	assert_int_equal(recover_2m(mmu, b4), 1);
	assert_int_equal(expect_leaf(mmu, b4, 2, ts_pfn_shared(b4)).spte,
			 orig4);

	assert_int_equal(recover_2m(mmu, b2), 0);
	assert_int_equal(recover_2m(mmu, b3), 0);
	expect_stats(mmu, 2 * 512, 3, 1, 2, 1, 1);
}

/* ---- TLB flushes of recovery ------------------------------------------------ */

static void test_recover_flushes(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct ts_flush *log = &env->log;
	tdp_gfn_t g = hh_gig(2);

	/* Four adjacent tables: one flush at the end, covering them. */
	for (unsigned int b = 0; b < 4; b++)
		map_split_2m(env, hh_blk(1, b), HH_PROT_RW);
	ts_flush_reset(log);
	assert_int_equal(tdp_recover_huge_pages(mmu, hh_blk(1, 0), hh_blk(1, 8),
						TDP_LEVEL_2M, TDP_ALIAS_SHARED),
			 4);
	assert_int_equal(log->nr_range + log->nr_all, 1);
	assert_true(ts_flush_covers_range(log, hh_blk(1, 0), hh_blk(1, 4)));
	if (log->nr_range)
		assert_true(log->ranges[0].gfn >= hh_blk(1, 0) &&
			    log->ranges[0].gfn + log->ranges[0].nr_pages <=
				    hh_blk(1, 4));

	/* Two tables apart: still one flush, covering both. */
	for (unsigned int b = 0; b < 4; b += 2)
		assert_int_equal(
			tdp_split_huge_range(mmu, hh_blk(1, b), hh_blk(1, b) + 1,
					     TDP_LEVEL_4K, TDP_ALIAS_SHARED),
			0);
	ts_flush_reset(log);
	assert_int_equal(tdp_recover_huge_pages(mmu, hh_blk(1, 0), hh_blk(1, 8),
						TDP_LEVEL_2M, TDP_ALIAS_SHARED),
			 2);
	assert_int_equal(log->nr_range + log->nr_all, 1);
	assert_true(ts_flush_covers_range(log, hh_blk(1, 0), hh_blk(1, 1)));
	assert_true(ts_flush_covers_range(log, hh_blk(1, 2), hh_blk(1, 3)));

	/* Nothing to recover: no flush. */
	ts_flush_reset(log);
	assert_int_equal(tdp_recover_huge_pages(mmu, hh_blk(1, 0), hh_blk(1, 8),
						TDP_LEVEL_1G, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(ts_flush_count(log), 0);

	/* 1 GiB from 4 KiB: flushes only of the recovered range, at least
	 * one (the implementation issues one per level it collapsed). */
	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	ts_flush_reset(log);
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_1G,
						TDP_ALIAS_SHARED),
			 513);
	assert_true(ts_flush_count(log) >= 1);
	assert_true(ts_flush_count(log) <= 2);
	assert_int_equal(log->nr_all, 0);
	assert_true(ts_flush_covers_range(log, g, g + P1G));
	for (uint64_t i = 0; i < log->nr_range; i++)
		assert_true(log->ranges[i].gfn >= g &&
			    log->ranges[i].gfn + log->ranges[i].nr_pages <=
				    g + P1G);
	expect_stats(mmu, 0, 4, 1, 0, 1, 1);
}

/* Splitting issues no flush, and a range with nothing huge is a no-op. */
static void test_split_no_flush(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	TS_MAP_FIXED(env->vcpu, hh_blk(1, 0), ts_pfn_shared(hh_blk(1, 0)),
		     HH_PROT_RW, 2);
	TS_MAP_FIXED(env->vcpu, hh_blk(1, 1) + 3,
		     ts_pfn_shared(hh_blk(1, 1) + 3), HH_PROT_RW, 1);
	TS_MAP_FIXED(env->vcpu, hh_gig(2), ts_pfn_shared(hh_gig(2)), HH_PROT_RW,
		     3);
	ts_flush_reset(&env->log);
	/* Nothing huge here: no change. */
	assert_int_equal(tdp_split_huge_range(mmu, hh_blk(1, 1), hh_blk(1, 2),
					      TDP_LEVEL_4K, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_split_huge_range(mmu, hh_gig(5), hh_gig(6), TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	expect_stats(mmu, 1, 1, 1, 1, 1, 1);
	assert_int_equal(tdp_split_huge_range(mmu, hh_gig(1), hh_gig(3), TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	expect_stats(mmu, 1 + 512 + P1G, 0, 0, 2 + 512, 2, 1);
	assert_int_equal(ts_flush_count(&env->log), 0);
	/* The private alias of a VM without backend selects nothing. */
	assert_int_equal(tdp_split_huge_range(mmu, hh_gig(1), hh_gig(3), TDP_LEVEL_4K,
					      TDP_ALIAS_PRIVATE),
			 0);
	assert_int_equal(tdp_recover_huge_pages(mmu, hh_gig(1), hh_gig(3),
						TDP_LEVEL_1G,
						TDP_ALIAS_PRIVATE),
			 0);
	expect_stats(mmu, 1 + 512 + P1G, 0, 0, 2 + 512, 2, 1);
}

/* ---- allocation failure ----------------------------------------------------- */

/* Every GFN of the 1 GiB region at @g maps ts_pfn_shared(gfn), at any level. */
static void expect_consistent(struct tdp_mmu *mmu, tdp_gfn_t g)
{
	for (tdp_gfn_t x = g; x < g + P1G;) {
		struct ts_leaf l = ts_lookup(mmu, x, TDP_ALIAS_SHARED);

		if (!l.present || l.pfn != ts_pfn_shared(x))
			fail_msg("gfn %#llx: present %d pfn %#llx",
				 (unsigned long long)x, l.present,
				 (unsigned long long)l.pfn);
		x = l.base + tdp_level_pages(l.level);
	}
}

static void test_split_enomem(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t g = hh_gig(1);
	struct tdp_stats before;
	tdp_spte_t orig;

	TS_MAP_FIXED(env->vcpu, g, ts_pfn_shared(g), HH_PROT_RW, 3);
	orig = expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte;
	before = hh_stats(mmu);

	/* The first allocation fails: nothing changes. */
	tdp_port_fail_alloc_after(0);
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 -ENOMEM);
	tdp_port_fail_alloc_after(-1);
	assert_int_equal(expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte, orig);
	expect_stats(mmu, 0, 0, 1, 0, 0, 1);
	assert_int_equal(hh_stats(mmu).pages_in_use, before.pages_in_use);

	/*
	 * Five tables (two allocations each: metadata and page) and then a
	 * failure: the 1 GiB leaf and 2 MiB blocks 0..3 are split, in
	 * pre-order, and stay split; every GFN still maps its PFN.
	 */
	tdp_port_fail_alloc_after(10);
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 -ENOMEM);
	tdp_port_fail_alloc_after(-1);
	expect_consistent(mmu, g);
	expect_range(mmu, hh_blk(1, 0), hh_blk(1, 4), 1);
	expect_range(mmu, hh_blk(1, 4), g + P1G, 2);
	expect_stats(mmu, 4 * 512, 508, 0, 4, 1, 1);
	assert_int_equal(hh_stats(mmu).pages_in_use, before.pages_in_use + 5);
	assert_int_equal(ts_flush_count(&env->log), 0);

	/* A later split finishes the job. */
	assert_int_equal(tdp_split_huge_range(mmu, g, g + P1G, TDP_LEVEL_4K,
					      TDP_ALIAS_SHARED),
			 0);
	expect_range(mmu, g, g + P1G, 1);
	expect_stats(mmu, P1G, 0, 0, 512, 1, 1);

	/* And the round trip still gives the original leaf. */
	assert_int_equal(tdp_recover_huge_pages(mmu, g, g + P1G, TDP_LEVEL_1G,
						TDP_ALIAS_SHARED),
			 513);
	assert_int_equal(expect_leaf(mmu, g, 3, ts_pfn_shared(g)).spte, orig);
	tdp_rcu_barrier();
	assert_int_equal(hh_stats(mmu).pages_in_use, before.pages_in_use);
}

/* ---- bad inputs ------------------------------------------------------------- */

static void test_bad_inputs(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const tdp_gfn_t s = hh_blk(1, 0), e = hh_blk(1, 4);

	TS_MAP_FIXED(env->vcpu, s, ts_pfn_shared(s), HH_PROT_RW, 2);

	/* Split: NULL, bad range, bad target level, bad alias filter. */
	assert_int_equal(tdp_split_huge_range(NULL, s, e, 1, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_split_huge_range(mmu, e, s, 1, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_split_huge_range(mmu, s, s, 1, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_split_huge_range(mmu, s, TS_PLAIN_GFN_LIMIT + 1, 1,
					      TDP_ALIAS_SHARED),
			 -EINVAL);
	for (int level = -1; level <= 6; level++) {
		if (level == TDP_LEVEL_4K || level == TDP_LEVEL_2M)
			continue;
		assert_int_equal(tdp_split_huge_range(mmu, s, e, level,
						      TDP_ALIAS_SHARED),
				 -EINVAL);
	}
	assert_int_equal(tdp_split_huge_range(mmu, s, e, 1, (enum tdp_alias)0),
			 -EINVAL);
	assert_int_equal(tdp_split_huge_range(mmu, s, e, 1, (enum tdp_alias)4),
			 -EINVAL);
	assert_int_equal(
		tdp_split_huge_range(mmu, s, e, 1,
				     (enum tdp_alias)(TDP_ALIAS_SHARED | 8)),
		-EINVAL);

	/* Recover: NULL, misaligned or empty range, bad level or filter. */
	assert_int_equal(
		tdp_recover_huge_pages(NULL, s, e, 2, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(
		tdp_recover_huge_pages(mmu, s + 1, e, 2, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(
		tdp_recover_huge_pages(mmu, s, e + 1, 2, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(
		tdp_recover_huge_pages(mmu, s, e - 256, 2, TDP_ALIAS_SHARED),
		-EINVAL);
	assert_int_equal(tdp_recover_huge_pages(mmu, e, s, 2, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_recover_huge_pages(mmu, s, s, 2, TDP_ALIAS_SHARED),
			 -EINVAL);
	assert_int_equal(tdp_recover_huge_pages(mmu, s,
						TS_PLAIN_GFN_LIMIT + P2M, 2,
						TDP_ALIAS_SHARED),
			 -EINVAL);
	for (int level = -1; level <= 6; level++) {
		if (level == TDP_LEVEL_2M || level == TDP_LEVEL_1G)
			continue;
		assert_int_equal(tdp_recover_huge_pages(mmu, s, e, level,
							TDP_ALIAS_SHARED),
				 -EINVAL);
	}
	assert_int_equal(
		tdp_recover_huge_pages(mmu, s, e, 2, (enum tdp_alias)0),
		-EINVAL);
	assert_int_equal(
		tdp_recover_huge_pages(mmu, s, e, 2, (enum tdp_alias)4),
		-EINVAL);

	/* Nothing changed. */
	expect_leaf(mmu, s, 2, ts_pfn_shared(s));
	expect_stats(mmu, 0, 1, 0, 0, 1, 1);
	assert_int_equal(ts_flush_count(&env->log), 0);
}

/* ---- MMUs with a private backend -------------------------------------------- */

static void test_backend_private_refused(void **state)
{
	struct ts_env env;
	const tdp_gfn_t s = hh_blk(1, 0), e = hh_blk(1, 4);

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .backend = true,
						    .mark_dirty = true,
						    .record = true });
	assert_int_equal(
		tdp_split_huge_range(env.mmu, s, e, 1, TDP_ALIAS_PRIVATE),
		-EOPNOTSUPP);
	assert_int_equal(tdp_split_huge_range(env.mmu, s, e, 1, TDP_ALIAS_BOTH),
			 -EOPNOTSUPP);
	assert_int_equal(
		tdp_recover_huge_pages(env.mmu, s, e, 2, TDP_ALIAS_PRIVATE),
		-EOPNOTSUPP);
	assert_int_equal(
		tdp_recover_huge_pages(env.mmu, s, e, 2, TDP_ALIAS_BOTH),
		-EOPNOTSUPP);
	/* The shared alias is supported. */
	assert_int_equal(
		tdp_split_huge_range(env.mmu, s, e, 1, TDP_ALIAS_SHARED), 0);
	assert_int_equal(
		tdp_recover_huge_pages(env.mmu, s, e, 2, TDP_ALIAS_SHARED), 0);
	/* Unaliased GFNs are below the shared bit. */
	assert_int_equal(tdp_split_huge_range(env.mmu, s, TS_SHARED_BIT + 1, 1,
					      TDP_ALIAS_SHARED),
			 -EINVAL);
	ts_env_fini_ok(&env);
}

/* Split and recovery of the shared alias; flushes name the shared GFN. */
static void test_backend_shared_alias(void **state)
{
	struct ts_env env;
	const tdp_gfn_t b = hh_blk(1, 0);
	struct ts_leaf orig;

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .backend = true,
						    .mark_dirty = true,
						    .record = true });
	TS_MAP_FIXED(env.vcpu, b | TS_SHARED_BIT, ts_pfn_shared(b), HH_PROT_RW,
		     2);
	orig = expect_leaf(env.mmu, b + 3, 2, ts_pfn_shared(b + 3));
	assert_int_equal(
		tdp_split_huge_range(env.mmu, b, b + P2M, 1, TDP_ALIAS_SHARED),
		0);
	expect_range(env.mmu, b, b + P2M, 1);
	ts_flush_reset(&env.log);
	assert_int_equal(tdp_recover_huge_pages(env.mmu, b, b + P2M, 2,
						TDP_ALIAS_SHARED),
			 1);
	assert_int_equal(expect_leaf(env.mmu, b, 2, ts_pfn_shared(b)).spte,
			 orig.spte);
	assert_int_equal(ts_flush_count(&env.log), 1);
	assert_true(ts_flush_covers_range(&env.log, b | TS_SHARED_BIT,
					  (b + P2M) | TS_SHARED_BIT));
	assert_int_equal(hh_stats_match_tree(env.mmu), 0);
	ts_env_fini_ok(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		HH_TEST(test_fault_levels),
		HH_TEST(test_fault_splits_huge),
		HH_TEST(test_split_1g_to_4k),
		HH_TEST(test_split_1g_to_2m),
		HH_TEST(test_split_recover_roundtrip),
		HH_TEST(test_recover_refuses_nonuniform),
		HH_TEST(test_recover_flushes),
		HH_TEST(test_split_no_flush),
		HH_TEST(test_split_enomem),
		HH_TEST(test_bad_inputs),
		cmocka_unit_test(test_backend_private_refused),
		cmocka_unit_test(test_backend_shared_alias),
	};

	return TS_RUN_GROUP("tests", tests);
}
