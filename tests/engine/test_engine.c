/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fault and zap semantics through the public API, on an MMU without a
 * private backend: fixed/spurious/retry results, permission upgrades,
 * lookups, exact range zaps, huge pages and their splitting, invalidation
 * brackets and the sequence, MMIO generations, zap-all, flush coverage and
 * the statistics that describe the tree.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define R TDP_PROT_READ
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define RX (TDP_PROT_READ | TDP_PROT_EXEC)
#define RWX TDP_PROT_RWX

/* Assert @gfn maps @pfn at @level with exactly @prot. */
static void expect_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, tdp_pfn_t pfn,
			int level, unsigned int prot)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, TDP_ALIAS_SHARED);

	if (l.ret || !l.present || l.pfn != pfn || l.level != level ||
	    l.prot != prot)
		fail_msg(
			"gfn %#llx: ret=%d present=%d pfn=%#llx level=%d prot=%#x; "
			"want pfn=%#llx level=%d prot=%#x",
			(unsigned long long)gfn, l.ret, l.present,
			(unsigned long long)l.pfn, l.level, l.prot,
			(unsigned long long)pfn, level, prot);
}

static void expect_unmapped(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, TDP_ALIAS_SHARED);

	if (l.ret || l.present)
		fail_msg(
			"gfn %#llx: ret=%d present=%d pfn=%#llx level=%d, want unmapped",
			(unsigned long long)gfn, l.ret, l.present,
			(unsigned long long)l.pfn, l.level);
}

static void assert_stats_equal(const struct tdp_stats *a,
			       const struct tdp_stats *b)
{
	if (th_stats_diff("statistics changed", a, b))
		fail_msg("statistics changed");
}

static void test_map_fixed_then_spurious(void **state)
{
	struct ts_env *env = *state;
	struct tdp_stats st;

	TS_MAP_FIXED(env->vcpu, 0x100, 0x5000, R, 1);
	assert_int_equal(
		ts_map(env->vcpu, 0x100, TDP_ALIAS_SHARED, 0x5000, R, 1),
		TDP_FAULT_SPURIOUS);
	/* A max_level that would allow more changes nothing for a 4K leaf. */
	assert_int_equal(
		ts_map(env->vcpu, 0x100, TDP_ALIAS_SHARED, 0x5000, R, 2),
		TDP_FAULT_SPURIOUS);
	expect_leaf(env->mmu, 0x100, 0x5000, TDP_LEVEL_4K, R);
	expect_unmapped(env->mmu, 0x101);
	expect_unmapped(env->mmu, 0xff);

	st = th_stats(env->mmu);
	assert_int_equal(st.faults_fixed, 1);
	assert_int_equal(st.faults_spurious, 2);
	assert_int_equal(st.faults_retried, 0);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 1);
	assert_int_equal(ts_stat_leaves(&st, -1), 1);
	assert_int_equal(st.zapped_leaves, 0);
}

static void test_write_upgrade(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct ts_leaf l;

	TS_MAP_FIXED(env->vcpu, 7, 0x777, R, 1);
	TS_MAP_FIXED(env->vcpu, 7, 0x777, RW, 1);
	l = ts_lookup(mmu, 7, TDP_ALIAS_SHARED);
	assert_true(l.present);
	assert_int_equal(l.pfn, 0x777);
	assert_int_equal(l.prot, RW);
	assert_true(tdp_spte_is_writable(tdp_mmu_format(mmu), l.spte));
	assert_true(l.spte & tdp_mmu_format(mmu)->host_writable);
	assert_true(l.spte & tdp_mmu_format(mmu)->mmu_writable);

	/* Already allowed: a read, and the write again. */
	assert_int_equal(ts_map(env->vcpu, 7, TDP_ALIAS_SHARED, 0x777, R, 1),
			 TDP_FAULT_SPURIOUS);
	assert_int_equal(ts_map(env->vcpu, 7, TDP_ALIAS_SHARED, 0x777, RW, 1),
			 TDP_FAULT_SPURIOUS);

	/* Execute is one more upgrade; it never takes write away. */
	TS_MAP_FIXED(env->vcpu, 7, 0x777, RX, 1);
	l = ts_lookup(mmu, 7, TDP_ALIAS_SHARED);
	assert_int_equal(l.prot & RX, RX);
	assert_int_equal(ts_map(env->vcpu, 7, TDP_ALIAS_SHARED, 0x777, RX, 1),
			 TDP_FAULT_SPURIOUS);

	/* Upgrades replace the leaf: still exactly one. */
	struct tdp_stats st = th_stats(mmu);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 1);
	assert_int_equal(ts_stat_leaves(&st, -1), 1);
	assert_int_equal(st.faults_fixed, 3);
	assert_int_equal(st.faults_spurious, 3);
}

static void test_map_other_pfn_over_leaf(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats before, after;

	TS_MAP_FIXED(env->vcpu, 0x40, 0x1000, R, 1);
	/* A full table cache: a fault's own top-up allocates nothing. */
	assert_int_equal(tdp_vcpu_topup(env->vcpu), 0);
	before = th_stats(mmu);
	assert_int_equal(
		ts_map(env->vcpu, 0x40, TDP_ALIAS_SHARED, 0x1001, R, 1),
		-EINVAL);
	/* Not even as a permission upgrade. */
	assert_int_equal(
		ts_map(env->vcpu, 0x40, TDP_ALIAS_SHARED, 0x2000, RW, 1),
		-EINVAL);
	after = th_stats(mmu);
	assert_stats_equal(&before, &after);
	expect_leaf(mmu, 0x40, 0x1000, TDP_LEVEL_4K, R);
}

/* A walk that finds nothing reports the SPTE and level where it stopped. */
static void test_lookup_levels(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	struct ts_leaf l;

	l = ts_lookup(mmu, 0, TDP_ALIAS_SHARED);
	assert_int_equal(l.ret, 0);
	assert_false(l.present);
	assert_int_equal(l.spte, fmt->nonpresent);
	assert_int_equal(l.level, 4);

	TS_MAP_FIXED(env->vcpu, 0, 0x9000, RWX, 1);
	expect_leaf(mmu, 0, 0x9000, TDP_LEVEL_4K, RWX);

	l = ts_lookup(mmu, 1, TDP_ALIAS_SHARED); /* same 4K table */
	assert_false(l.present);
	assert_int_equal(l.spte, fmt->nonpresent);
	assert_int_equal(l.level, 1);
	l = ts_lookup(mmu, TS_PAGES_2M,
		      TDP_ALIAS_SHARED); /* same 1G table, no 4K table */
	assert_false(l.present);
	assert_int_equal(l.level, 2);
	l = ts_lookup(mmu, TS_PAGES_1G,
		      TDP_ALIAS_SHARED); /* same 512G table, no 1G table */
	assert_false(l.present);
	assert_int_equal(l.level, 3);
	l = ts_lookup(mmu, TS_PLAIN_GFN_LIMIT - 1,
		      TDP_ALIAS_SHARED); /* another root entry */
	assert_false(l.present);
	assert_int_equal(l.level, 4);
}

static void test_zap_range_exact(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats st;

	for (tdp_gfn_t g = 0; g < 1024; g++)
		TS_MAP_FIXED(env->vcpu, g, 0x10000 + g, RW, 1);
	ts_flush_reset(&env->log);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 100, 600,
							   TDP_ALIAS_SHARED)),
			 0);

	for (tdp_gfn_t g = 0; g < 1024; g++) {
		if (g >= 100 && g < 600) {
			expect_unmapped(mmu, g);
			if (!ts_flush_covers(&env->log, g))
				fail_msg("zapped gfn %#llx never flushed",
					 (unsigned long long)g);
		} else {
			expect_leaf(mmu, g, 0x10000 + g, TDP_LEVEL_4K, RW);
		}
	}
	st = th_stats(mmu);
	assert_int_equal(st.zapped_leaves, 500);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 524);
	assert_true(st.flushes_range + st.flushes_all >= 1);
	/* Range zaps keep the page tables. */
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][1], 2);
	assert_int_equal(st.zapped_tables, 0);

	/* Zapping again finds nothing; refaulting works. */
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 100, 600,
							   TDP_ALIAS_SHARED)),
			 0);
	assert_int_equal(th_stats(mmu).zapped_leaves, 500);
	TS_MAP_FIXED(env->vcpu, 300, 0x10000 + 300, RW, 1);
	expect_leaf(mmu, 300, 0x10000 + 300, TDP_LEVEL_4K, RW);
}

/* The per-event helpers zap the aliases the table in tdp/zap.h names. */
static void test_zap_alias_helpers(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	for (tdp_gfn_t g = 0; g < 64; g++)
		TS_MAP_FIXED(env->vcpu, g, 0x300 + g, R, 1);

	/* Private only: a VM without backend has no private mapping. */
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_convert_to_shared(mmu, 0, 8)), 0);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 0, 8,
							   TDP_ALIAS_PRIVATE)),
			 0);
	for (tdp_gfn_t g = 0; g < 8; g++)
		expect_leaf(mmu, g, 0x300 + g, TDP_LEVEL_4K, R);
	assert_int_equal(th_stats(mmu).zapped_leaves, 0);

	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_convert_to_private(mmu, 0, 8)), 0);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_host_unmap(mmu, 8, 16)),
			 0);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_slot_deleted(mmu, 16, 24)),
			 0);
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 24, 32, TDP_ALIAS_BOTH)),
		0);
	for (tdp_gfn_t g = 0; g < 64; g++) {
		if (g < 32)
			expect_unmapped(mmu, g);
		else
			expect_leaf(mmu, g, 0x300 + g, TDP_LEVEL_4K, R);
	}
	assert_int_equal(th_stats(mmu).zapped_leaves, 32);
}

static void test_huge_2m_aligned(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 3 * TS_PAGES_2M;
	struct tdp_stats st;

	TS_MAP_FIXED(env->vcpu, base, 0x40000, RW, 2);
	expect_leaf(mmu, base, 0x40000, TDP_LEVEL_2M, RW);
	expect_leaf(mmu, base + 7, 0x40007, TDP_LEVEL_2M, RW);
	expect_leaf(mmu, base + 511, 0x40000 + 511, TDP_LEVEL_2M, RW);
	expect_unmapped(mmu, base - 1);
	expect_unmapped(mmu, base + 512);
	assert_true(ts_lookup(mmu, base, TDP_ALIAS_SHARED).spte &
		    tdp_mmu_format(mmu)->leaf_size);

	/* Any access inside the huge leaf is already allowed. */
	assert_int_equal(
		ts_map(env->vcpu, base, TDP_ALIAS_SHARED, 0x40000, RW, 2),
		TDP_FAULT_SPURIOUS);
	assert_int_equal(
		ts_map(env->vcpu, base + 7, TDP_ALIAS_SHARED, 0x40007, R, 2),
		TDP_FAULT_SPURIOUS);
	/* The huge leaf's PFN for that GFN, or nothing. */
	assert_int_equal(
		ts_map(env->vcpu, base + 7, TDP_ALIAS_SHARED, 0x50007, R, 2),
		-EINVAL);

	st = th_stats(mmu);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][2], 1);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 0);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][1], 0);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][2], 1);
}

static void test_huge_1g_aligned(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats st;

	TS_MAP_FIXED(env->vcpu, TS_PAGES_1G, 4 * TS_PAGES_1G, R, 3);
	expect_leaf(mmu, TS_PAGES_1G + 12345, 4 * TS_PAGES_1G + 12345,
		    TDP_LEVEL_1G, R);
	st = th_stats(mmu);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][3], 1);
	assert_int_equal(ts_stat_leaves(&st, -1), 1);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][2], 0);
}

static void test_huge_misaligned_falls_back(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	/* Aligned GFN, misaligned PFN. */
	TS_MAP_FIXED(env->vcpu, 4 * TS_PAGES_2M, 0x40001, R, 2);
	expect_leaf(mmu, 4 * TS_PAGES_2M, 0x40001, TDP_LEVEL_4K, R);
	expect_unmapped(mmu, 4 * TS_PAGES_2M + 1);
	/* Misaligned GFN, aligned PFN. */
	TS_MAP_FIXED(env->vcpu, 5 * TS_PAGES_2M + 3, 0x80000, R, 2);
	expect_leaf(mmu, 5 * TS_PAGES_2M + 3, 0x80000, TDP_LEVEL_4K, R);
	expect_unmapped(mmu, 5 * TS_PAGES_2M);
	/* max_level 1 never maps huge. */
	TS_MAP_FIXED(env->vcpu, 6 * TS_PAGES_2M, 0x80000, R, 1);
	expect_leaf(mmu, 6 * TS_PAGES_2M, 0x80000, TDP_LEVEL_4K, R);

	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][2], 0);
	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][1], 3);
}

/* A smaller mapping in the 2M region keeps a huge-eligible fault at 4K. */
static void test_huge_blocked_by_small_mapping(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 8 * TS_PAGES_2M;

	TS_MAP_FIXED(env->vcpu, base + 5, 0xa0005, R, 1);
	TS_MAP_FIXED(env->vcpu, base, 0xa0000, R, 2);
	expect_leaf(mmu, base, 0xa0000, TDP_LEVEL_4K, R);
	expect_leaf(mmu, base + 5, 0xa0005, TDP_LEVEL_4K, R);
	expect_unmapped(mmu, base + 1);
	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][2], 0);
}

static void test_split_huge_on_4k_fault(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 3 * TS_PAGES_2M;
	struct tdp_stats st;
	int r;

	TS_MAP_FIXED(env->vcpu, base, 0x40000, RX, 2);
	r = ts_map(env->vcpu, base + 10, TDP_ALIAS_SHARED, 0x4000a, R, 1);
	assert_true(r == TDP_FAULT_FIXED || r == TDP_FAULT_SPURIOUS);

	for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
		expect_leaf(mmu, base + i, 0x40000 + i, TDP_LEVEL_4K, RX);
	expect_unmapped(mmu, base + TS_PAGES_2M);
	st = th_stats(mmu);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][2], 0);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 512);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][1], 1);

	/* Every piece of the split is a 4K leaf of its own now. */
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, base + 100, base + 101,
						  TDP_ALIAS_SHARED)),
		0);
	expect_unmapped(mmu, base + 100);
	expect_leaf(mmu, base + 99, 0x40000 + 99, TDP_LEVEL_4K, RX);
	expect_leaf(mmu, base + 101, 0x40000 + 101, TDP_LEVEL_4K, RX);
	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][1], 511);
}

/* A 4K write fault inside a read-only huge leaf: split, then upgrade. */
static void test_split_with_upgrade(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 9 * TS_PAGES_2M;

	TS_MAP_FIXED(env->vcpu, base, 0xc0000, R, 2);
	TS_MAP_FIXED(env->vcpu, base + 300, 0xc0000 + 300, RW, 1);
	expect_leaf(mmu, base + 300, 0xc0000 + 300, TDP_LEVEL_4K, RW);
	expect_leaf(mmu, base + 299, 0xc0000 + 299, TDP_LEVEL_4K, R);
	expect_leaf(mmu, base + 301, 0xc0000 + 301, TDP_LEVEL_4K, R);
	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][1], 512);
}

/* A 4K fault with another PFN inside a huge leaf is refused, unsplit. */
static void test_split_refused_for_other_pfn(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 10 * TS_PAGES_2M;
	struct tdp_stats before, after;

	TS_MAP_FIXED(env->vcpu, base, 0xe0000, R, 2);
	assert_int_equal(tdp_vcpu_topup(env->vcpu), 0);
	before = th_stats(mmu);
	assert_int_equal(
		ts_map(env->vcpu, base + 1, TDP_ALIAS_SHARED, 0x12345, R, 1),
		-EINVAL);
	after = th_stats(mmu);
	assert_stats_equal(&before, &after);
	expect_leaf(mmu, base + 1, 0xe0001, TDP_LEVEL_2M, R);
}

static void test_zap_partial_huge_zaps_whole(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t base = 3 * TS_PAGES_2M;
	struct tdp_stats st;

	TS_MAP_FIXED(env->vcpu, base, 0x40000, RW, 2);
	TS_MAP_FIXED(env->vcpu, base + TS_PAGES_2M, 0x1234, RW, 1);
	ts_flush_reset(&env->log);
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, base + 5, base + 6,
						  TDP_ALIAS_SHARED)),
		0);
	for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++) {
		expect_unmapped(mmu, base + i);
		assert_true(ts_flush_covers(&env->log, base + i));
	}
	expect_leaf(mmu, base + TS_PAGES_2M, 0x1234, TDP_LEVEL_4K, RW);
	st = th_stats(mmu);
	assert_int_equal(st.zapped_leaves, 1);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][2], 0);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 1);

	/* The region maps huge again. */
	TS_MAP_FIXED(env->vcpu, base, 0x40000, RW, 2);
	expect_leaf(mmu, base + 9, 0x40009, TDP_LEVEL_2M, RW);
}

static void test_invalidate_in_progress(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats st;

	assert_int_equal(tdp_invalidate_begin(mmu, 1000, 2000), 0);
	assert_int_equal(ts_map(env->vcpu, 1000, TDP_ALIAS_SHARED, 0x1, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(ts_map(env->vcpu, 1500, TDP_ALIAS_SHARED, 0x2, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(ts_map(env->vcpu, 1999, TDP_ALIAS_SHARED, 0x3, R, 1),
			 TDP_FAULT_RETRY);
	/* A huge fault whose 2M region overlaps the range must not map it. */
	assert_int_equal(ts_map(env->vcpu, 1536, TDP_ALIAS_SHARED, 0x400, R, 2),
			 TDP_FAULT_RETRY);
	expect_unmapped(mmu, 1500);
	expect_unmapped(mmu, 1536);

	TS_MAP_FIXED(env->vcpu, 999, 0x4, R, 1);
	TS_MAP_FIXED(env->vcpu, 2000, 0x5, R, 1);
	st = th_stats(mmu);
	assert_int_equal(st.faults_retried, 4);
	assert_int_equal(ts_stat_leaves(&st, -1), 2);

	assert_int_equal(tdp_invalidate_end(mmu, 1000, 2000), 0);
	TS_MAP_FIXED(env->vcpu, 1500, 0x2, R, 1);
	expect_leaf(mmu, 1500, 0x2, TDP_LEVEL_4K, R);
	expect_leaf(mmu, 999, 0x4, TDP_LEVEL_4K, R);
}

/*
 * "tdp_map() refuses to map if the sequence moved since, so a PFN that an
 * invalidation revoked in between is never installed" (tdp/fault.h).  The
 * host revokes one 4K page, X + 100, of a 2M region; a vCPU that resolved
 * the huge page before faults at X, outside the range, while the
 * invalidation runs.  Mapping X huge would map X + 100 again, after the
 * zap that removed it and with a PFN the host took back.
 */
static void test_invalidate_huge_overlap(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t x = 4 * TS_PAGES_2M;
	uint64_t seq = tdp_mmu_seq(mmu); /* read before the host's change */
	struct ts_leaf l;
	int r;

	assert_int_equal(tdp_invalidate_begin(mmu, x + 100, x + 101), 0);
	/* A huge fault in a region the range does not touch maps huge. */
	TS_MAP_FIXED(env->vcpu, 5 * TS_PAGES_2M, 0x80000, R, 2);
	expect_leaf(mmu, 5 * TS_PAGES_2M + 100, 0x80000 + 100, TDP_LEVEL_2M, R);

	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_host_unmap(mmu, x + 100, x + 101)),
		0);
	r = ts_map_seq(env->vcpu, x, TDP_ALIAS_SHARED, 0x40000, R, 2, seq);
	assert_int_equal(tdp_invalidate_end(mmu, x + 100, x + 101), 0);

	l = ts_lookup(mmu, x + 100, TDP_ALIAS_SHARED);
	if (l.present)
		fail_msg(
			"fault at %#llx during the invalidation of [%#llx, %#llx) returned %d "
			"and left gfn %#llx mapped to revoked pfn %#llx (level %d)",
			(unsigned long long)x, (unsigned long long)x + 100,
			(unsigned long long)x + 101, r,
			(unsigned long long)x + 100, (unsigned long long)l.pfn,
			l.level);
	/* Either the fault retried, or it mapped X alone. */
	if (r == TDP_FAULT_FIXED)
		expect_leaf(mmu, x, 0x40000, TDP_LEVEL_4K, R);
	else
		assert_int_equal(r, TDP_FAULT_RETRY);
}

static void test_invalidate_stale_seq(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	uint64_t seq0 = tdp_mmu_seq(mmu), seq1;

	assert_int_equal(tdp_invalidate_begin(mmu, 10, 20), 0);
	seq1 = tdp_mmu_seq(mmu); /* read while the invalidation runs */
	assert_int_equal(tdp_invalidate_end(mmu, 10, 20), 0);
	assert_true(tdp_mmu_seq(mmu) != seq0);
	assert_true(tdp_mmu_seq(mmu) != seq1);

	assert_int_equal(
		ts_map_seq(env->vcpu, 15, TDP_ALIAS_SHARED, 0x15, R, 1, seq0),
		TDP_FAULT_RETRY);
	assert_int_equal(
		ts_map_seq(env->vcpu, 15, TDP_ALIAS_SHARED, 0x15, R, 1, seq1),
		TDP_FAULT_RETRY);
	/* The sequence is global: any stale fault retries. */
	assert_int_equal(
		ts_map_seq(env->vcpu, 5000, TDP_ALIAS_SHARED, 0x15, R, 1, seq0),
		TDP_FAULT_RETRY);
	expect_unmapped(mmu, 15);
	expect_unmapped(mmu, 5000);
	assert_int_equal(th_stats(mmu).faults_retried, 3);

	TS_MAP_FIXED(env->vcpu, 15, 0x15, R, 1);
	expect_leaf(mmu, 15, 0x15, TDP_LEVEL_4K, R);
}

static void test_invalidate_nested(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	assert_int_equal(tdp_invalidate_begin(mmu, 0, 100), 0);
	assert_int_equal(tdp_invalidate_begin(mmu, 50, 200), 0);
	assert_int_equal(ts_map(env->vcpu, 60, TDP_ALIAS_SHARED, 1, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(tdp_invalidate_end(mmu, 0, 100), 0);
	/* The second range is still being invalidated. */
	assert_int_equal(ts_map(env->vcpu, 150, TDP_ALIAS_SHARED, 1, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(ts_map(env->vcpu, 60, TDP_ALIAS_SHARED, 1, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(tdp_invalidate_end(mmu, 50, 200), 0);
	TS_MAP_FIXED(env->vcpu, 150, 1, R, 1);
	TS_MAP_FIXED(env->vcpu, 60, 2, R, 1);
	/* Every begin was ended: another end has no begin. */
	assert_int_equal(tdp_invalidate_end(mmu, 0, 100), -EINVAL);
}

/*
 * An end whose range no begin named is an "end without begin" (-EINVAL,
 * tdp/zap.h), even while other invalidations run, and it must not end one
 * of them: their GFNs keep retrying and their own ends still succeed.
 */
static void test_invalidate_end_unmatched_range(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	assert_int_equal(tdp_invalidate_begin(mmu, 0, 100), 0);
	assert_int_equal(tdp_invalidate_begin(mmu, 200, 300), 0);
	assert_int_equal(tdp_invalidate_end(mmu, 100, 200), -EINVAL);
	assert_int_equal(tdp_invalidate_end(mmu, 0, 100), 0);
	assert_int_equal(ts_map(env->vcpu, 250, TDP_ALIAS_SHARED, 1, R, 1),
			 TDP_FAULT_RETRY);
	assert_int_equal(tdp_invalidate_end(mmu, 200, 300), 0);
	TS_MAP_FIXED(env->vcpu, 250, 1, R, 1);
}

/* The bracket as an embedder uses it around a host unmap. */
static void test_invalidate_zap_bracket(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;

	for (tdp_gfn_t g = 0; g < 2048; g++)
		assert_int_equal(ts_map(env->vcpu, g, TDP_ALIAS_SHARED,
					0x100000 + g, RW, 2) >= 0,
				 1);
	assert_int_equal(th_stats(mmu).leaves[TDP_ROOT_DIRECT][2], 4);

	assert_int_equal(tdp_invalidate_begin(mmu, 512, 1024), 0);
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_host_unmap(mmu, 512, 1024)), 0);
	assert_int_equal(
		ts_map(env->vcpu, 700, TDP_ALIAS_SHARED, 0x200000 + 700, RW, 1),
		TDP_FAULT_RETRY);
	assert_int_equal(tdp_invalidate_end(mmu, 512, 1024), 0);
	for (tdp_gfn_t g = 0; g < 2048; g++) {
		if (g >= 512 && g < 1024)
			expect_unmapped(mmu, g);
		else
			expect_leaf(mmu, g, 0x100000 + g, TDP_LEVEL_2M, RW);
	}
	/* The host now backs the range elsewhere. */
	TS_MAP_FIXED(env->vcpu, 700, 0x200000 + 700, RW, 1);
	expect_leaf(mmu, 700, 0x200000 + 700, TDP_LEVEL_4K, RW);
}

static void test_mmio_generation(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	uint32_t gen = tdp_mmu_mmio_generation(mmu);
	struct ts_leaf l;

	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_FIXED);
	l = ts_lookup(mmu, 0x3000, TDP_ALIAS_SHARED);
	assert_int_equal(l.ret, 0);
	assert_false(l.present);
	assert_true(tdp_spte_is_mmio(fmt, l.spte));
	assert_false(tdp_spte_is_frozen(fmt, l.spte));
	assert_int_equal(tdp_spte_mmio_gen(fmt, l.spte), gen);
	assert_int_equal(tdp_spte_mmio_gfn(fmt, l.spte), 0x3000);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_SPURIOUS);

	/* A new generation makes the SPTE stale: the fault fixes it again. */
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, gen + 1), 0);
	assert_int_equal(tdp_mmu_mmio_generation(mmu), gen + 1);
	l = ts_lookup(mmu, 0x3000, TDP_ALIAS_SHARED);
	assert_int_equal(tdp_spte_mmio_gen(fmt, l.spte), gen);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_FIXED);
	l = ts_lookup(mmu, 0x3000, TDP_ALIAS_SHARED);
	assert_true(tdp_spte_is_mmio(fmt, l.spte));
	assert_int_equal(tdp_spte_mmio_gen(fmt, l.spte), gen + 1);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_SPURIOUS);

	/* The highest generation round-trips through the SPTE. */
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, TDP_MMIO_GEN_MASK),
			 0);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_FIXED);
	l = ts_lookup(mmu, 0x3000, TDP_ALIAS_SHARED);
	assert_int_equal(tdp_spte_mmio_gen(fmt, l.spte), TDP_MMIO_GEN_MASK);

	/* A stale MMIO SPTE is replaced by a normal mapping as well. */
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, 5), 0);
	TS_MAP_FIXED(env->vcpu, 0x3000, 0x77, R, 1);
	expect_leaf(mmu, 0x3000, 0x77, TDP_LEVEL_4K, R);
}

/*
 * MMIO SPTEs are not present leaves: they never show in the leaf counts,
 * however often they are replaced, and zaps and teardown leave none.
 */
static void test_mmio_not_counted_as_leaf(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats st;

	TS_MAP_FIXED(env->vcpu, 0x2fff, 0x1, R, 1);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_FIXED);
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, 9), 0);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3000), TDP_FAULT_FIXED);
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, 10), 0);
	TS_MAP_FIXED(env->vcpu, 0x3000, 0x2, R, 1);
	assert_int_equal(ts_map_mmio(env->vcpu, 0x3001), TDP_FAULT_FIXED);
	st = th_stats(mmu);
	if (st.leaves[TDP_ROOT_DIRECT][1] != 2)
		fail_msg(
			"two present 4K leaves and one MMIO SPTE: leaves[0][1]=%llu, want 2",
			(unsigned long long)st.leaves[TDP_ROOT_DIRECT][1]);
	assert_int_equal(ts_stat_leaves(&st, -1), 2);

	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_all(mmu)), 0);
	st = th_stats(mmu);
	assert_int_equal(ts_stat_leaves(&st, -1), 0);
	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(mmu), 0);
	st = th_stats(mmu);
	assert_int_equal(ts_stat_leaves(&st, -1), 0);
	assert_int_equal(st.pages_in_use, 0);
}

static void test_zap_all(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	static const tdp_gfn_t gfns[] = {
		0,
		1,
		511,
		512 + 3,
		TS_PAGES_1G + 9,
		700 * TS_PAGES_1G,
		TS_PLAIN_GFN_LIMIT - 1,
	};
	struct tdp_stats st;
	uint64_t tables_before, mapped = 0;

	for (size_t i = 0; i < sizeof(gfns) / sizeof(gfns[0]); i++, mapped++)
		TS_MAP_FIXED(env->vcpu, gfns[i], 0x1000 + i, RW, 1);
	TS_MAP_FIXED(env->vcpu, 4 * TS_PAGES_2M, 0x80000, RW, 2);
	mapped++;
	st = th_stats(mmu);
	assert_int_equal(ts_stat_leaves(&st, -1), mapped);
	tables_before = ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1);

	ts_flush_reset(&env->log);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_all(mmu)), 0);
	st = th_stats(mmu);
	assert_int_equal(ts_stat_leaves(&st, -1), 0);
	assert_int_equal(st.zapped_leaves, mapped);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 1);
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1), 1);
	assert_int_equal(st.zapped_tables, tables_before - 1);
	for (size_t i = 0; i < sizeof(gfns) / sizeof(gfns[0]); i++) {
		struct ts_leaf l = ts_lookup(mmu, gfns[i], TDP_ALIAS_SHARED);

		assert_false(l.present);
		assert_int_equal(l.level, 4);
		assert_true(ts_flush_covers(&env->log, gfns[i]));
	}
	assert_true(ts_flush_covers(&env->log, 4 * TS_PAGES_2M + 77));

	/* The empty tree faults as usual. */
	TS_MAP_FIXED(env->vcpu, 5, 0x55, R, 1);
	expect_leaf(mmu, 5, 0x55, TDP_LEVEL_4K, R);
	st = th_stats(mmu);
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1), 4);
}

/* Zaps flush every zapped GFN as the hardware indexes it. */
static void test_flush_covers_zapped(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	tdp_gfn_t gfns[64];
	struct tdp_stats st0, st;

	for (int i = 0; i < 64; i++) {
		gfns[i] = (tdp_gfn_t)i * 0x12345 % TS_PLAIN_GFN_LIMIT;
		assert_true(ts_map(env->vcpu, gfns[i], TDP_ALIAS_SHARED,
				   0x1000 + i, R, 1) >= 0);
	}
	ts_flush_reset(&env->log);
	st0 = th_stats(mmu);
	assert_int_equal(
		TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 0, TS_PLAIN_GFN_LIMIT,
						  TDP_ALIAS_SHARED)),
		0);
	for (int i = 0; i < 64; i++) {
		expect_unmapped(mmu, gfns[i]);
		if (!ts_flush_covers(&env->log, gfns[i]))
			fail_msg("zapped gfn %#llx never flushed",
				 (unsigned long long)gfns[i]);
	}
	st = th_stats(mmu);
	assert_int_equal(st.flushes_range - st0.flushes_range,
			 env->log.nr_range);
	assert_int_equal(st.flushes_all - st0.flushes_all, env->log.nr_all);
	assert_true(env->log.nr_range + env->log.nr_all >= 1);
	assert_int_equal(st.zapped_leaves, 64);
}

/* Tables by level: one root, then one table per region touched. */
static void test_stats_tables(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats st;

	st = th_stats(mmu);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 1);
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1), 1);
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_MIRROR, TDP_MAX_LEVEL + 1), 0);
	assert_int_equal(ts_stat_leaves(&st, -1), 0);
	assert_true(st.roots_allocated >= 1);
	assert_true(st.pages_in_use >= 1);

	TS_MAP_FIXED(env->vcpu, 0, 0x100, R, 1);
	TS_MAP_FIXED(env->vcpu, TS_PAGES_2M, 0x200, R, 2);
	TS_MAP_FIXED(env->vcpu, TS_PAGES_1G, 0x300, R, 1);
	TS_MAP_FIXED(env->vcpu, 512 * TS_PAGES_1G, 0x400, R, 1);
	st = th_stats(mmu);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 1);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][3], 2);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][2], 3);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][1], 3);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][0], 0);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][5], 0);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][1], 3);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][2], 1);
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_MIRROR, TDP_MAX_LEVEL + 1), 0);
	assert_true(st.pages_in_use >= 9);
	assert_int_equal(st.faults_fixed, 4);
}

/* A 5-level tree: 45 GFN bits, the root counts at level 5. */
static void test_five_level_tree(void **state)
{
	struct ts_flush log;
	struct tdp_mmu_config cfg;
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	const tdp_gfn_t top = (1ULL << 45) - 1;
	struct tdp_stats st;
	struct ts_leaf l;

	(void)state;
	ts_flush_init(&log, true);
	cfg = ts_config(&log, NULL, NULL);
	cfg.root_level = 5;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), 0);
	assert_int_equal(tdp_vcpu_create(mmu, &vcpu), 0);

	l = ts_lookup(mmu, top, TDP_ALIAS_SHARED);
	assert_int_equal(l.ret, 0);
	assert_int_equal(l.level, 5);
	TS_MAP_FIXED(vcpu, top, 0x77, R, 1);
	TS_MAP_FIXED(vcpu, 0, 0x66, R, 1);
	expect_leaf(mmu, top, 0x77, TDP_LEVEL_4K, R);
	expect_leaf(mmu, 0, 0x66, TDP_LEVEL_4K, R);
	assert_int_equal(ts_map(vcpu, 1ULL << 45, TDP_ALIAS_SHARED, 0x1, R, 1),
			 -EINVAL);
	st = th_stats(mmu);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][5], 1);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 2);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][1], 2);
	assert_int_equal(TS_CHECKED_ZAP(mmu, tdp_zap_range(mmu, 0, 1ULL << 45,
							   TDP_ALIAS_SHARED)),
			 0);
	expect_unmapped(mmu, top);
	expect_unmapped(mmu, 0);
	assert_true(ts_flush_covers(&log, top));
	assert_int_equal(th_stats(mmu).zapped_leaves, 2);
	tdp_vcpu_destroy(vcpu);
	assert_int_equal(tdp_mmu_teardown(mmu), 0);
	assert_int_equal(th_stats(mmu).pages_in_use, 0);
	tdp_mmu_destroy(mmu);
	ts_flush_fini(&log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TS_CMOCKA_TEST(test_map_fixed_then_spurious),
		TS_CMOCKA_TEST(test_write_upgrade),
		TS_CMOCKA_TEST(test_map_other_pfn_over_leaf),
		TS_CMOCKA_TEST(test_lookup_levels),
		TS_CMOCKA_TEST(test_zap_range_exact),
		TS_CMOCKA_TEST(test_zap_alias_helpers),
		TS_CMOCKA_TEST(test_huge_2m_aligned),
		TS_CMOCKA_TEST(test_huge_1g_aligned),
		TS_CMOCKA_TEST(test_huge_misaligned_falls_back),
		TS_CMOCKA_TEST(test_huge_blocked_by_small_mapping),
		TS_CMOCKA_TEST(test_split_huge_on_4k_fault),
		TS_CMOCKA_TEST(test_split_with_upgrade),
		TS_CMOCKA_TEST(test_split_refused_for_other_pfn),
		TS_CMOCKA_TEST(test_zap_partial_huge_zaps_whole),
		TS_CMOCKA_TEST(test_invalidate_in_progress),
		TS_CMOCKA_TEST(test_invalidate_huge_overlap),
		TS_CMOCKA_TEST(test_invalidate_stale_seq),
		TS_CMOCKA_TEST(test_invalidate_nested),
		TS_CMOCKA_TEST(test_invalidate_end_unmatched_range),
		TS_CMOCKA_TEST(test_invalidate_zap_bracket),
		TS_CMOCKA_TEST(test_mmio_generation),
		TS_CMOCKA_TEST(test_mmio_not_counted_as_leaf),
		TS_CMOCKA_TEST(test_zap_all),
		TS_CMOCKA_TEST(test_flush_covers_zapped),
		TS_CMOCKA_TEST(test_stats_tables),
		cmocka_unit_test(test_five_level_tree),
	};

	return TS_RUN_GROUP("engine", tests);
}
