// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Engine semantics on a plain VM (direct root only): faults, upgrades,
 * huge pages and their split, zaps and their TLB flushes, the
 * invalidation sequence, MMIO generations, roots and teardown, dirty
 * logging and aging, huge-page split and recovery, 5-level trees, bad
 * input, allocation failures and forced yields.
 */
#include <linux/rcupdate.h>

#include "st.h"

#include "port/port.h"

#define R TDP_PROT_READ
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define PAGES_2M 512ULL
#define PAGES_1G (512ULL * 512)

static const struct ts_env_opts plain = { 0 };

static int map_shared(struct ts_env *e, tdp_gfn_t gfn, tdp_pfn_t pfn,
		      unsigned int prot, int max_level)
{
	return ts_map(e->vcpu, gfn, TDP_ALIAS_SHARED, pfn, prot, max_level);
}

/* A shared fault of @gfn mapping its reference frame must map it. */
#define MAP_FIXED(e, gfn, prot, max_level)                             \
	ST_EQ(st_of(e),                                                \
	      map_shared(e, gfn, ts_pfn_shared(gfn), prot, max_level), \
	      TDP_FAULT_FIXED)

/* The SPTE a lockless lookup ends at for @gfn, and its level. */
static tdp_spte_t spte_of(struct ts_env *e, tdp_gfn_t gfn, int *level)
{
	tdp_spte_t spte = 0;
	int lvl = 0;

	ST_EQ(st_of(e), tdp_lookup(e->mmu, gfn, TDP_ALIAS_SHARED, &spte, &lvl),
	      0);
	if (level)
		*level = lvl;
	return spte;
}

/* @gfn maps @pfn with a leaf at @level granting exactly @prot. */
static void expect_leaf(struct ts_env *e, tdp_gfn_t gfn, tdp_pfn_t pfn,
			int level, unsigned int prot)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(e->mmu);
	tdp_pfn_t got_pfn = 0;
	int got_level = 0;

	if (!ST_TRUE(st_of(e), ts_lookup_leaf(e->mmu, gfn, TDP_ALIAS_SHARED,
					      &got_level, &got_pfn)))
		return;
	ST_EQ(st_of(e), got_pfn, pfn);
	ST_EQ(st_of(e), got_level, level);
	ST_EQ(st_of(e), tdp_spte_prot(fmt, spte_of(e, gfn, NULL)), prot);
}

static void expect_unmapped(struct ts_env *e, tdp_gfn_t gfn)
{
	ST_TRUE(st_of(e),
		!ts_lookup_leaf(e->mmu, gfn, TDP_ALIAS_SHARED, NULL, NULL));
}

static struct tdp_stats stats_of(struct ts_env *e)
{
	struct tdp_stats s = { 0 };

	ST_EQ(st_of(e), tdp_mmu_get_stats(e->mmu, &s), 0);
	return s;
}

/*
 * Write to @gfn the way the CPU does (ts_hw_access()) from the vCPU's
 * root: true if that set the dirty bit of its leaf.
 */
static bool hw_set_dirty(struct ts_env *e, tdp_gfn_t gfn)
{
	enum ts_hw_result res;
	tdp_pfn_t root;
	int level;

	if (tdp_vcpu_load_root(e->vcpu, TDP_ALIAS_SHARED, &root, &level))
		return false;
	tdp_walk_begin();
	res = ts_hw_access(e->fmt, root, level, gfn | e->direct_bits, true,
			   NULL, NULL);
	tdp_walk_end();
	return res == TS_HW_WRITTEN;
}

/* ---- faults -------------------------------------------------------------- */

static void test_map_fixed_then_spurious(struct st *t)
{
	struct ts_env e;
	struct tdp_stats s;
	tdp_gfn_t g = 0x12345;

	if (!st_env_init(t, &e, &plain))
		return;
	MAP_FIXED(&e, g, R, TDP_LEVEL_4K);
	ST_EQ(t, map_shared(&e, g, ts_pfn_shared(g), R, TDP_LEVEL_4K),
	      TDP_FAULT_SPURIOUS);
	expect_leaf(&e, g, ts_pfn_shared(g), TDP_LEVEL_4K, R);
	expect_unmapped(&e, g + 1);
	expect_unmapped(&e, g - 1);

	s = stats_of(&e);
	ST_EQ(t, s.faults_fixed, 1);
	ST_EQ(t, s.faults_spurious, 1);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 1);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 1);
	/* One table per level below the root, and the root. */
	for (int l = TDP_LEVEL_4K; l <= 4; l++)
		ST_EQ(t, s.tables[TDP_ROOT_DIRECT][l], 1);
	st_env_fini(&e);
}

static void test_write_upgrade_and_remap(struct st *t)
{
	struct ts_env e;
	tdp_gfn_t g = 0x777;
	tdp_pfn_t pfn = ts_pfn_shared(g);

	if (!st_env_init(t, &e, &plain))
		return;
	ST_EQ(t, map_shared(&e, g, pfn, R, TDP_LEVEL_4K), TDP_FAULT_FIXED);
	expect_leaf(&e, g, pfn, TDP_LEVEL_4K, R);
	/* A write fault on a read-only leaf upgrades it in place. */
	ST_EQ(t, map_shared(&e, g, pfn, RW, TDP_LEVEL_4K), TDP_FAULT_FIXED);
	expect_leaf(&e, g, pfn, TDP_LEVEL_4K, RW);
	ST_EQ(t, map_shared(&e, g, pfn, RW, TDP_LEVEL_4K), TDP_FAULT_SPURIOUS);
	ST_EQ(t, map_shared(&e, g, pfn, R, TDP_LEVEL_4K), TDP_FAULT_SPURIOUS);
	/* Remapping a GFN to another frame needs a zap first. */
	ST_EQ(t, map_shared(&e, g, pfn + 1, RW, TDP_LEVEL_4K), -EINVAL);
	expect_leaf(&e, g, pfn, TDP_LEVEL_4K, RW);
	ST_EQ(t, tdp_zap_range(e.mmu, g, g + 1, TDP_ALIAS_SHARED), 0);
	ST_EQ(t, map_shared(&e, g, pfn + 1, RW, TDP_LEVEL_4K), TDP_FAULT_FIXED);
	expect_leaf(&e, g, pfn + 1, TDP_LEVEL_4K, RW);
	st_env_fini(&e);
}

static void test_huge_levels(struct st *t)
{
	struct ts_env e;
	struct tdp_stats s;
	tdp_gfn_t g2m = 5 * PAGES_2M + 7, g1g = 3 * PAGES_1G + 0x1234;
	tdp_gfn_t gmis = 9 * PAGES_2M + 3, gsmall = 11 * PAGES_2M + 1;

	if (!st_env_init(t, &e, &plain))
		return;
	/* GFN and frame line up at 2 MiB: one 2 MiB leaf covers the region. */
	MAP_FIXED(&e, g2m, RW, TDP_LEVEL_2M);
	expect_leaf(&e, g2m, ts_pfn_shared(g2m), TDP_LEVEL_2M, RW);
	expect_leaf(&e, 5 * PAGES_2M + 500, ts_pfn_shared(5 * PAGES_2M + 500),
		    TDP_LEVEL_2M, RW);
	expect_unmapped(&e, 6 * PAGES_2M);
	/* And at 1 GiB. */
	MAP_FIXED(&e, g1g, R, TDP_LEVEL_1G);
	expect_leaf(&e, 3 * PAGES_1G + 99999,
		    ts_pfn_shared(3 * PAGES_1G + 99999), TDP_LEVEL_1G, R);
	/* A frame not aligned like the GFN maps 4 KiB. */
	ST_EQ(t, map_shared(&e, gmis, ts_pfn_shared(gmis) + 1, R, TDP_LEVEL_2M),
	      TDP_FAULT_FIXED);
	expect_leaf(&e, gmis, ts_pfn_shared(gmis) + 1, TDP_LEVEL_4K, R);
	/* A smaller mapping in the region keeps a huge fault small. */
	MAP_FIXED(&e, gsmall, R, TDP_LEVEL_4K);
	MAP_FIXED(&e, gsmall + 300, R, TDP_LEVEL_2M);
	expect_leaf(&e, gsmall + 300, ts_pfn_shared(gsmall + 300), TDP_LEVEL_4K,
		    R);

	s = stats_of(&e);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 3);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M], 1);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_1G], 1);
	st_env_fini(&e);
}

static void test_split_huge_on_small_fault(struct st *t)
{
	struct ts_env e;
	struct tdp_stats before, s;
	tdp_gfn_t base = 3 * PAGES_2M, other = 9 * PAGES_2M;
	int ret;

	if (!st_env_init(t, &e, &plain))
		return;
	MAP_FIXED(&e, base, R, TDP_LEVEL_2M);
	/* A 4 KiB fault inside the leaf splits it into 512 equal leaves. */
	ret = map_shared(&e, base + 10, ts_pfn_shared(base + 10), R,
			 TDP_LEVEL_4K);
	ST_TRUE(t, ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS);
	for (tdp_gfn_t i = 0; i < PAGES_2M; i += 37)
		expect_leaf(&e, base + i, ts_pfn_shared(base + i), TDP_LEVEL_4K,
			    R);
	s = stats_of(&e);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M], 0);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], PAGES_2M);
	ST_EQ(t, s.tables[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 1);
	ST_EQ(t, tdp_zap_range(e.mmu, base + 100, base + 101, TDP_ALIAS_SHARED),
	      0);
	expect_unmapped(&e, base + 100);
	expect_leaf(&e, base + 101, ts_pfn_shared(base + 101), TDP_LEVEL_4K, R);

	/* A write fault inside a read-only huge leaf: split, then upgrade. */
	MAP_FIXED(&e, other, R, TDP_LEVEL_2M);
	MAP_FIXED(&e, other + 300, RW, TDP_LEVEL_4K);
	expect_leaf(&e, other + 300, ts_pfn_shared(other + 300), TDP_LEVEL_4K,
		    RW);
	expect_leaf(&e, other + 301, ts_pfn_shared(other + 301), TDP_LEVEL_4K,
		    R);

	/* Another frame inside a huge leaf is refused, nothing split. */
	other = 10 * PAGES_2M;
	MAP_FIXED(&e, other, R, TDP_LEVEL_2M);
	ST_EQ(t, tdp_vcpu_topup(e.vcpu), 0);
	before = stats_of(&e);
	ST_EQ(t, map_shared(&e, other + 1, 0x12345, R, TDP_LEVEL_4K), -EINVAL);
	s = stats_of(&e);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M],
	      before.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M]);
	ST_EQ(t, s.pages_in_use, before.pages_in_use);
	expect_leaf(&e, other + 1, ts_pfn_shared(other + 1), TDP_LEVEL_2M, R);
	st_env_fini(&e);
}

/* ---- zaps ---------------------------------------------------------------- */

static void test_zap_range_and_flush(struct st *t)
{
	struct ts_env e;
	struct tdp_stats s;
	tdp_gfn_t base = 0x40000, huge = 7 * PAGES_2M;

	if (!st_env_init(t, &e, &plain))
		return;
	for (tdp_gfn_t i = 0; i < 16; i++)
		MAP_FIXED(&e, base + i, RW, TDP_LEVEL_4K);
	ts_flush_reset(&e.log);
	ST_EQ(t, tdp_zap_range(e.mmu, base + 4, base + 8, TDP_ALIAS_SHARED), 0);
	for (tdp_gfn_t i = 0; i < 16; i++) {
		if (i >= 4 && i < 8)
			expect_unmapped(&e, base + i);
		else
			expect_leaf(&e, base + i, ts_pfn_shared(base + i),
				    TDP_LEVEL_4K, RW);
	}
	/* The zapped translations were flushed before the lock was dropped. */
	ST_TRUE(t, e.log.nr_all || (e.log.span_start <= base + 4 &&
				    e.log.span_end >= base + 8));
	s = stats_of(&e);
	ST_EQ(t, s.zapped_leaves, 4);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 12);

	/* A zap of one page of a huge leaf zaps the whole leaf. */
	MAP_FIXED(&e, huge, RW, TDP_LEVEL_2M);
	ts_flush_reset(&e.log);
	ST_EQ(t, tdp_zap_range(e.mmu, huge + 5, huge + 6, TDP_ALIAS_SHARED), 0);
	expect_unmapped(&e, huge);
	expect_unmapped(&e, huge + PAGES_2M - 1);
	ST_TRUE(t, e.log.nr_all || (e.log.span_start <= huge &&
				    e.log.span_end >= huge + PAGES_2M));
	ST_EQ(t, stats_of(&e).leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M], 0);
	/* The region maps huge again. */
	MAP_FIXED(&e, huge, RW, TDP_LEVEL_2M);
	expect_leaf(&e, huge + 9, ts_pfn_shared(huge + 9), TDP_LEVEL_2M, RW);
	st_env_fini(&e);
}

static void test_zap_all(struct st *t)
{
	static const tdp_gfn_t gfns[] = {
		0,
		1,
		511,
		512 + 3,
		PAGES_1G + 9,
		700 * PAGES_1G,
		(1ULL << 36) - 1,
	};
	struct ts_env e;
	struct tdp_stats s;

	if (!st_env_init(t, &e, &plain))
		return;
	for (unsigned int i = 0; i < ARRAY_SIZE(gfns); i++)
		MAP_FIXED(&e, gfns[i], RW, TDP_LEVEL_4K);
	MAP_FIXED(&e, 20 * PAGES_2M, RW, TDP_LEVEL_2M);
	ST_EQ(t, tdp_zap_all(e.mmu), 0);
	for (unsigned int i = 0; i < ARRAY_SIZE(gfns); i++)
		expect_unmapped(&e, gfns[i]);
	expect_unmapped(&e, 20 * PAGES_2M);
	s = stats_of(&e);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 0);
	/* Every table below the root is gone (freed after a grace period). */
	ST_EQ(t, ts_stat_tables(&s, TDP_ROOT_DIRECT, 4), 0);
	ST_EQ(t, s.tables[TDP_ROOT_DIRECT][4], 1);
	ST_TRUE(t, s.zapped_tables > 0);
	/* Faults work again. */
	MAP_FIXED(&e, 5, R, TDP_LEVEL_4K);
	st_env_fini(&e);
}

/* ---- the invalidation sequence ------------------------------------------- */

static void test_invalidate_sequence(struct st *t)
{
	struct ts_env e;
	u64 seq;

	if (!st_env_init(t, &e, &plain))
		return;
	/* While an invalidation runs, faults in its range retry. */
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 1000, 2000), 0);
	ST_EQ(t, map_shared(&e, 1000, ts_pfn_shared(1000), R, TDP_LEVEL_4K),
	      TDP_FAULT_RETRY);
	ST_EQ(t, map_shared(&e, 1999, ts_pfn_shared(1999), R, TDP_LEVEL_4K),
	      TDP_FAULT_RETRY);
	MAP_FIXED(&e, 2000, R, TDP_LEVEL_4K);
	/* A huge fault whose leaf would cover the range retries too. */
	ST_EQ(t,
	      map_shared(&e, 1024 + 100, ts_pfn_shared(1024 + 100), R,
			 TDP_LEVEL_2M),
	      TDP_FAULT_RETRY);
	expect_unmapped(&e, 1000);

	/* A fault that read the sequence before the end retries after it. */
	seq = tdp_mmu_seq(e.mmu);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 1000, 2000), 0);
	ST_TRUE(t, tdp_mmu_seq(e.mmu) != seq);
	{
		struct tdp_fault f = {
			.fault_gfn = 1500,
			.pfn = ts_pfn_shared(1500),
			.prot = R,
			.max_level = TDP_LEVEL_4K,
			.mmu_seq = seq,
		};

		ST_EQ(t, tdp_map(e.vcpu, &f), TDP_FAULT_RETRY);
		f.mmu_seq = tdp_mmu_seq(e.mmu);
		ST_EQ(t, tdp_map(e.vcpu, &f), TDP_FAULT_FIXED);
	}

	/* Nested and overlapping: faults retry until the last one ends. */
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 3000, 4000), 0);
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 3500, 4500), 0);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 3000, 4000), 0);
	ST_EQ(t, map_shared(&e, 3600, ts_pfn_shared(3600), R, TDP_LEVEL_4K),
	      TDP_FAULT_RETRY);
	MAP_FIXED(&e, 3100, R, TDP_LEVEL_4K);
	/* Only the exact range of a running begin ends. */
	ST_EQ(t, tdp_invalidate_end(e.mmu, 3500, 4000), -EINVAL);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 3000, 4000), -EINVAL);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 3500, 4500), 0);
	MAP_FIXED(&e, 3600, R, TDP_LEVEL_4K);

	/* The bracket of a host unmap: zap inside, refault after. */
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 3000, 4000), 0);
	ST_EQ(t, tdp_zap_host_unmap(e.mmu, 3000, 4000), 0);
	expect_unmapped(&e, 3100);
	expect_unmapped(&e, 3600);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 3000, 4000), 0);
	MAP_FIXED(&e, 3100, R, TDP_LEVEL_4K);
	st_env_fini(&e);
}

/* ---- MMIO ---------------------------------------------------------------- */

static int map_mmio(struct ts_env *e, tdp_gfn_t gfn)
{
	struct tdp_fault f = {
		.fault_gfn = gfn | e->direct_bits,
		.prot = R,
		.max_level = TDP_LEVEL_4K,
		.mmu_seq = tdp_mmu_seq(e->mmu),
		.mmio = true,
	};

	return tdp_map(e->vcpu, &f);
}

static void test_mmio_generation(struct st *t)
{
	struct ts_env e;
	struct tdp_stats s;
	u32 gen;
	tdp_spte_t spte;

	if (!st_env_init(t, &e, &plain))
		return;
	gen = tdp_mmu_mmio_generation(e.mmu);
	ST_EQ(t, map_mmio(&e, 0x3000), TDP_FAULT_FIXED);
	spte = spte_of(&e, 0x3000, NULL);
	ST_TRUE(t, tdp_spte_is_mmio(e.fmt, spte));
	ST_TRUE(t, !tdp_spte_is_present(e.fmt, spte));
	ST_EQ(t, tdp_spte_mmio_gen(e.fmt, spte), gen);
	ST_EQ(t, tdp_spte_mmio_gfn(e.fmt, spte), 0x3000);
	ST_EQ(t, map_mmio(&e, 0x3000), TDP_FAULT_SPURIOUS);

	/* A new generation makes the SPTE stale: the fault fixes it again. */
	ST_EQ(t, tdp_mmu_set_mmio_generation(e.mmu, gen + 1), 0);
	ST_EQ(t, tdp_mmu_mmio_generation(e.mmu), gen + 1);
	ST_EQ(t, map_mmio(&e, 0x3000), TDP_FAULT_FIXED);
	ST_EQ(t, tdp_spte_mmio_gen(e.fmt, spte_of(&e, 0x3000, NULL)), gen + 1);
	ST_EQ(t, tdp_mmu_set_mmio_generation(e.mmu, TDP_MMIO_GEN_MASK), 0);
	ST_EQ(t, map_mmio(&e, 0x3000), TDP_FAULT_FIXED);
	ST_EQ(t, tdp_spte_mmio_gen(e.fmt, spte_of(&e, 0x3000, NULL)),
	      TDP_MMIO_GEN_MASK);
	/* MMIO SPTEs are not leaves; a stale one gives way to a mapping. */
	s = stats_of(&e);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 0);
	ST_EQ(t, tdp_mmu_set_mmio_generation(e.mmu, 5), 0);
	ST_EQ(t, map_shared(&e, 0x3000, 0x77, R, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	expect_leaf(&e, 0x3000, 0x77, TDP_LEVEL_4K, R);
	st_env_fini(&e);
}

/* ---- roots and teardown -------------------------------------------------- */

static void test_roots_lifecycle(struct st *t)
{
	struct ts_env e;
	struct tdp_root *r1 = NULL, *r2 = NULL;
	struct tdp_stats s;
	tdp_pfn_t pfn1 = 0, pfn2 = 0;
	int level = 0;

	if (!st_env_init(t, &e, &plain))
		return;
	MAP_FIXED(&e, 42, R, TDP_LEVEL_4K);
	/* Everyone shares the valid root. */
	ST_EQ(t, tdp_root_get(e.mmu, TDP_ROOT_DIRECT, &r1), 0);
	ST_EQ(t, tdp_root_get(e.mmu, TDP_ROOT_DIRECT, &r2), 0);
	ST_TRUE(t, r1 && r1 == r2);
	ST_TRUE(t, r1 && tdp_root_is_valid(r1));
	ST_EQ(t, tdp_root_get(e.mmu, TDP_ROOT_MIRROR, &r2), -EINVAL);
	tdp_root_put(e.mmu, r1);
	ST_EQ(t, tdp_vcpu_load_root(e.vcpu, TDP_ALIAS_SHARED, &pfn1, &level),
	      0);
	ST_EQ(t, level, 4);

	/* Invalidation: a new root for the next fault, the old one kept
	 * while referenced and zapped exactly once. */
	ST_EQ(t, tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED), 0);
	ST_TRUE(t, r1 && !tdp_root_is_valid(r1));
	expect_unmapped(&e, 42);
	MAP_FIXED(&e, 42, R, TDP_LEVEL_4K);
	ST_EQ(t, tdp_vcpu_load_root(e.vcpu, TDP_ALIAS_SHARED, &pfn2, &level),
	      0);
	ST_TRUE(t, pfn1 != pfn2);
	ST_EQ(t, tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	ST_EQ(t, tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	s = stats_of(&e);
	ST_EQ(t, s.roots_allocated, 2);
	ST_EQ(t, tdp_root_refcount(r1), 1);
	tdp_root_put(e.mmu, r1);
	rcu_barrier();
	s = stats_of(&e);
	ST_EQ(t, s.roots_freed, 1);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 1);

	/* Teardown waits for the vCPUs; then everything refuses. */
	ST_EQ(t, tdp_mmu_teardown(e.mmu), -EINVAL);
	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	ST_EQ(t, tdp_mmu_teardown(e.mmu), 0);
	ST_EQ(t, tdp_mmu_teardown(e.mmu), -ESHUTDOWN);
	ST_EQ(t, tdp_vcpu_create(e.mmu, &e.vcpu), -ESHUTDOWN);
	ST_EQ(t, tdp_zap_range(e.mmu, 0, 1, TDP_ALIAS_SHARED), -ESHUTDOWN);
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 0, 1), -ESHUTDOWN);
	s = stats_of(&e);
	ST_EQ(t, s.pages_in_use, 0);
	ST_EQ(t, s.roots_freed, s.roots_allocated);
	st_env_destroy(&e);
}

struct root_getter {
	struct tdp_mmu *mmu;
	struct st_barrier *barrier;
	struct tdp_root *root;
	int ret;
};

static int root_getter_fn(void *arg)
{
	struct root_getter *g = arg;

	tdp_thread_register();
	st_barrier_wait(g->barrier);
	g->ret = tdp_root_get(g->mmu, TDP_ROOT_DIRECT, &g->root);
	tdp_thread_unregister();
	return 0;
}

/* After an invalidation, concurrent callers all get the same new root. */
static void test_concurrent_root_get(struct st *t)
{
	enum { N = 4 };
	struct root_getter g[N];
	struct st_thread *th[N];
	struct st_barrier barrier;
	struct ts_env e;

	if (!st_env_init(t, &e, &plain))
		return;
	for (int round = 0; round < 8; round++) {
		ST_EQ(t, tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED), 0);
		st_barrier_init(&barrier, N + 1);
		for (int i = 0; i < N; i++) {
			g[i] = (struct root_getter){ .mmu = e.mmu,
						     .barrier = &barrier,
						     .ret = -ECHILD };
			th[i] = st_thread_start(root_getter_fn, &g[i], "root",
						i);
			ST_TRUE(t, th[i] != NULL);
		}
		/* Stand in for the threads that did not start. */
		for (int i = 0; i < N; i++)
			if (!th[i])
				st_barrier_wait(&barrier);
		st_barrier_wait(&barrier);
		for (int i = 0; i < N; i++)
			st_thread_stop(th[i]);
		for (int i = 0; i < N; i++) {
			if (!th[i])
				continue;
			ST_EQ(t, g[i].ret, 0);
			ST_TRUE(t, g[i].root == g[0].root);
			if (!g[i].ret)
				tdp_root_put(e.mmu, g[i].root);
		}
		ST_EQ(t, tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	}
	st_env_fini(&e);
}

/* ---- dirty logging, aging, the fast fix ---------------------------------- */

static void test_dirty_age_fast_fix(struct st *t)
{
	const tdp_gfn_t base = 64 * 10;
	struct ts_env e;
	const struct tdp_spte_format *fmt;
	u64 bitmap[2] = { 0 };

	if (!st_env_init(t, &e, &plain))
		return;
	fmt = tdp_mmu_format(e.mmu);
	for (tdp_gfn_t i = 0; i < 64; i++)
		MAP_FIXED(&e, base + i, RW, TDP_LEVEL_4K);

	/* Aging: new leaves are young; clearing makes them old. */
	ST_EQ(t, tdp_age_range(e.mmu, base, base + 64, true, TDP_ALIAS_SHARED),
	      64);
	ST_EQ(t, tdp_age_range(e.mmu, base, base + 64, false, TDP_ALIAS_SHARED),
	      0);

	/* Write-protect, then the lockless fast fix restores one leaf. */
	ts_flush_reset(&e.log);
	ST_EQ(t, tdp_wrprot_range(e.mmu, base, base + 64, TDP_ALIAS_SHARED),
	      64);
	ST_TRUE(t, e.log.nr_range + e.log.nr_all > 0);
	ST_TRUE(t, !tdp_spte_is_writable(fmt, spte_of(&e, base + 3, NULL)));
	ST_EQ(t, tdp_fast_fix(e.mmu, base + 3, RW), 1);
	ST_TRUE(t, tdp_spte_is_writable(fmt, spte_of(&e, base + 3, NULL)));
	ST_EQ(t, tdp_fast_fix(e.mmu, base + 3, RW), 1);
	ST_EQ(t, tdp_fast_fix(e.mmu, base + 100, RW), 0);

	/* Hardware dirties two leaves; the harvest reports each once. */
	MAP_FIXED(&e, base + 5, RW, TDP_LEVEL_4K);
	ST_TRUE(t, hw_set_dirty(&e, base + 3));
	ST_TRUE(t, hw_set_dirty(&e, base + 5));
	ST_EQ(t,
	      tdp_harvest_dirty(e.mmu, base, base + 128, bitmap,
				TDP_ALIAS_SHARED),
	      2);
	ST_EQ(t, bitmap[0], (1ULL << 3) | (1ULL << 5));
	ST_EQ(t, bitmap[1], 0);
	ST_EQ(t,
	      tdp_harvest_dirty(e.mmu, base, base + 128, bitmap,
				TDP_ALIAS_SHARED),
	      0);
	/* Masked clear and range clear of dirty bits. */
	ST_TRUE(t, hw_set_dirty(&e, base + 3));
	ST_TRUE(t, hw_set_dirty(&e, base + 5));
	ST_EQ(t,
	      tdp_clear_dirty_masked(e.mmu, base, 1ULL << 3, false,
				     TDP_ALIAS_SHARED),
	      1);
	ST_EQ(t,
	      tdp_clear_dirty_range(e.mmu, base, base + 64, TDP_ALIAS_SHARED),
	      1);
	ST_EQ(t,
	      tdp_clear_dirty_range(e.mmu, base, base + 64, TDP_ALIAS_SHARED),
	      0);
	st_env_fini(&e);
}

static void test_split_and_recover_huge(struct st *t)
{
	const tdp_gfn_t base = 30 * PAGES_2M;
	struct ts_env e;
	struct tdp_stats s;

	if (!st_env_init(t, &e, &plain))
		return;
	MAP_FIXED(&e, base, RW, TDP_LEVEL_2M);
	MAP_FIXED(&e, base + PAGES_2M, RW, TDP_LEVEL_2M);
	ST_EQ(t,
	      tdp_split_huge_range(e.mmu, base, base + 2 * PAGES_2M,
				   TDP_LEVEL_4K, TDP_ALIAS_SHARED),
	      0);
	s = stats_of(&e);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M], 0);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 2 * PAGES_2M);
	expect_leaf(&e, base + 700, ts_pfn_shared(base + 700), TDP_LEVEL_4K,
		    RW);

	/* Hardware dirties a small leaf; the huge leaf made back keeps it. */
	ST_TRUE(t, hw_set_dirty(&e, base + 17));
	ST_EQ(t,
	      tdp_recover_huge_pages(e.mmu, base, base + 2 * PAGES_2M,
				     TDP_LEVEL_2M, TDP_ALIAS_SHARED),
	      2);
	rcu_barrier();
	s = stats_of(&e);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_2M], 2);
	ST_EQ(t, s.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 0);
	expect_leaf(&e, base + 700, ts_pfn_shared(base + 700), TDP_LEVEL_2M,
		    RW);
	ST_TRUE(t, spte_of(&e, base + 17, NULL) & tdp_mmu_format(e.mmu)->dirty);
	/* A table with a hole is not collapsed. */
	ST_EQ(t,
	      tdp_split_huge_range(e.mmu, base, base + PAGES_2M, TDP_LEVEL_4K,
				   TDP_ALIAS_SHARED),
	      0);
	ST_EQ(t, tdp_zap_range(e.mmu, base + 1, base + 2, TDP_ALIAS_SHARED), 0);
	ST_EQ(t,
	      tdp_recover_huge_pages(e.mmu, base, base + PAGES_2M, TDP_LEVEL_2M,
				     TDP_ALIAS_SHARED),
	      0);
	st_env_fini(&e);
}

/* ---- trees, bad input, allocation failures, yields ----------------------- */

static void test_five_level_tree(struct st *t)
{
	const struct ts_env_opts five = { .root_level = 5 };
	const tdp_gfn_t high = (1ULL << 44) + 0x1234567;
	struct ts_env e;
	struct tdp_stats s;

	if (!st_env_init(t, &e, &five))
		return;
	ST_EQ(t,
	      map_shared(&e, high, ts_pfn_shared(0x1234567), RW, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	MAP_FIXED(&e, 3, RW, TDP_LEVEL_4K);
	expect_leaf(&e, high, ts_pfn_shared(0x1234567), TDP_LEVEL_4K, RW);
	expect_unmapped(&e, high + 1);
	s = stats_of(&e);
	ST_EQ(t, s.tables[TDP_ROOT_DIRECT][5], 1);
	ST_EQ(t, s.tables[TDP_ROOT_DIRECT][4], 2);
	ST_EQ(t, map_shared(&e, 1ULL << 45, 1, R, TDP_LEVEL_4K), -EINVAL);
	ST_EQ(t, tdp_zap_range(e.mmu, high, high + 1, TDP_ALIAS_SHARED), 0);
	expect_unmapped(&e, high);
	st_env_fini(&e);
}

static void test_bad_input(struct st *t)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = ts_flush_host(NULL, false),
	};
	struct tdp_mmu *mmu = NULL;
	struct ts_env e;
	struct tdp_stats s;
	u64 bitmap[1];
	tdp_spte_t spte;
	int level;

	/* Configurations. */
	ST_EQ(t, tdp_mmu_create(NULL, &mmu), -EINVAL);
	ST_EQ(t, tdp_mmu_create(&cfg, NULL), -EINVAL);
	cfg.root_level = 3;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.root_level = 4;
	cfg.gfn_bits = 37;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.gfn_bits = 0;
	cfg.flags = 1U << 7;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.flags = 0;
	cfg.direct_bits = 1ULL << 35;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = 0;
	cfg.host.flush_all = NULL;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	ST_TRUE(t, mmu == NULL);

	if (!st_env_init(t, &e, &plain))
		return;
	/* Faults. */
	ST_EQ(t, tdp_map(NULL, NULL), -EINVAL);
	ST_EQ(t, tdp_map(e.vcpu, NULL), -EINVAL);
	ST_EQ(t, map_shared(&e, 1ULL << 36, 1, R, TDP_LEVEL_4K), -EINVAL);
	ST_EQ(t, map_shared(&e, 5, 1, TDP_PROT_WRITE, TDP_LEVEL_4K), -EINVAL);
	ST_EQ(t, map_shared(&e, 5, 1, R | (1U << 5), TDP_LEVEL_4K), -EINVAL);
	ST_EQ(t, map_shared(&e, 5, 1, R, 0), -EINVAL);
	ST_EQ(t, map_shared(&e, 5, 1, R, 4), -EINVAL);
	/* Ranges and filters. */
	ST_EQ(t, tdp_zap_range(e.mmu, 10, 10, TDP_ALIAS_SHARED), -EINVAL);
	ST_EQ(t, tdp_zap_range(e.mmu, 11, 10, TDP_ALIAS_SHARED), -EINVAL);
	ST_EQ(t, tdp_zap_range(e.mmu, 0, (1ULL << 36) + 1, TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t, tdp_zap_range(e.mmu, 0, 10, 0), -EINVAL);
	ST_EQ(t, tdp_zap_range(e.mmu, 0, 10, 1U << 4), -EINVAL);
	ST_EQ(t, tdp_zap_range(NULL, 0, 10, TDP_ALIAS_SHARED), -EINVAL);
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 5, 5), -EINVAL);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 0, 10), -EINVAL);
	ST_EQ(t, tdp_lookup(e.mmu, 5, TDP_ALIAS_BOTH, &spte, &level), -EINVAL);
	ST_EQ(t, tdp_lookup(e.mmu, 5, TDP_ALIAS_PRIVATE, &spte, &level),
	      -EINVAL);
	ST_EQ(t, tdp_lookup(e.mmu, 1ULL << 36, TDP_ALIAS_SHARED, &spte, &level),
	      -EINVAL);
	ST_EQ(t,
	      tdp_recover_huge_pages(e.mmu, 1, 512, TDP_LEVEL_2M,
				     TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t,
	      tdp_split_huge_range(e.mmu, 0, 512, TDP_LEVEL_1G,
				   TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t, tdp_clear_dirty_masked(e.mmu, 3, 1, false, TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t, tdp_harvest_dirty(e.mmu, 0, 64, NULL, TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t, tdp_harvest_dirty(e.mmu, 64, 0, bitmap, TDP_ALIAS_SHARED),
	      -EINVAL);
	ST_EQ(t, tdp_vcpu_load_root(e.vcpu, TDP_ALIAS_PRIVATE, NULL, NULL),
	      -EINVAL);
	ST_EQ(t, tdp_mmu_invalidate_roots(e.mmu, 0), -EINVAL);
	/* A plain VM has no private alias: nothing to zap, no error. */
	ST_EQ(t, tdp_zap_range(e.mmu, 0, 10, TDP_ALIAS_PRIVATE), 0);
	/* Nothing above changed anything. */
	s = stats_of(&e);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 0);
	ST_EQ(t, ts_stat_tables(&s, TDP_ROOT_DIRECT, 4), 0);
	st_env_fini(&e);
}

static void test_enomem_injection(struct st *t)
{
	struct ts_env e;
	struct tdp_vcpu *vcpu = NULL;
	struct tdp_stats before, s;
	int ret, failed = 0;

	if (!st_env_init(t, &e, &plain))
		return;
	/* A fresh vCPU must allocate its cache: fail each allocation once. */
	for (long n = 0; n < 16; n++) {
		if (tdp_vcpu_create(e.mmu, &vcpu)) {
			ST_TRUE(t, false);
			break;
		}
		before = stats_of(&e);
		tdp_port_fail_alloc_after(n);
		ret = ts_map(vcpu, 0x5000 + n, TDP_ALIAS_SHARED,
			     ts_pfn_shared(0x5000 + n), R, TDP_LEVEL_4K);
		tdp_port_fail_alloc_after(-1);
		if (ret == -ENOMEM) {
			failed++;
			/* Nothing changed but allocations. */
			s = stats_of(&e);
			ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT),
			      ts_stat_leaves(&before, TDP_ROOT_DIRECT));
			expect_unmapped(&e, 0x5000 + n);
			ret = ts_map(vcpu, 0x5000 + n, TDP_ALIAS_SHARED,
				     ts_pfn_shared(0x5000 + n), R,
				     TDP_LEVEL_4K);
		}
		ST_EQ(t, ret, TDP_FAULT_FIXED);
		tdp_vcpu_destroy(vcpu);
	}
	ST_TRUE(t, failed > 0);

	/* Creation fails cleanly at every allocation it makes. */
	for (long n = 0; n < 8; n++) {
		struct tdp_mmu_config cfg = {
			.root_level = 4,
			.host = ts_flush_host(NULL, false),
		};
		struct tdp_mmu *mmu = NULL;

		tdp_port_fail_alloc_after(n);
		ret = tdp_mmu_create(&cfg, &mmu);
		tdp_port_fail_alloc_after(-1);
		ST_TRUE(t, ret == 0 || ret == -ENOMEM);
		ST_TRUE(t, (ret == 0) == (mmu != NULL));
		tdp_mmu_destroy(mmu);
	}
	tdp_port_fail_alloc_after(0);
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 0, 10), -ENOMEM);
	tdp_port_fail_alloc_after(-1);
	ST_EQ(t, tdp_invalidate_end(e.mmu, 0, 10), -EINVAL);

	/* A split that runs out of memory leaves everything consistent. */
	MAP_FIXED(&e, 100 * PAGES_2M, R, TDP_LEVEL_2M);
	tdp_port_fail_alloc_after(0);
	ST_EQ(t,
	      tdp_split_huge_range(e.mmu, 100 * PAGES_2M, 101 * PAGES_2M,
				   TDP_LEVEL_4K, TDP_ALIAS_SHARED),
	      -ENOMEM);
	tdp_port_fail_alloc_after(-1);
	expect_leaf(&e, 100 * PAGES_2M + 3, ts_pfn_shared(100 * PAGES_2M + 3),
		    TDP_LEVEL_2M, R);
	ST_EQ(t,
	      tdp_split_huge_range(e.mmu, 100 * PAGES_2M, 101 * PAGES_2M,
				   TDP_LEVEL_4K, TDP_ALIAS_SHARED),
	      0);
	expect_leaf(&e, 100 * PAGES_2M + 3, ts_pfn_shared(100 * PAGES_2M + 3),
		    TDP_LEVEL_4K, R);
	st_env_fini(&e);
}

/*
 * With TDP_MMU_FORCE_YIELD every long walk drops and retakes mmu_lock and
 * RCU at every step that made progress, and restarts from the root.
 */
static void test_forced_yield_walks(struct st *t)
{
	const struct ts_env_opts yield = { .flags = TDP_MMU_FORCE_YIELD };
	const tdp_gfn_t base = 3 * PAGES_1G;
	struct ts_env e;
	struct tdp_stats s;

	if (!st_env_init(t, &e, &yield))
		return;
	for (tdp_gfn_t i = 0; i < 2048; i += 3)
		MAP_FIXED(&e, base + i, RW, TDP_LEVEL_4K);
	MAP_FIXED(&e, base + 6 * PAGES_2M, RW, TDP_LEVEL_2M);
	ST_EQ(t, tdp_wrprot_range(e.mmu, base, base + 4096, TDP_ALIAS_SHARED),
	      683 + 1);
	ST_EQ(t,
	      tdp_zap_range(e.mmu, base + 100, base + 1000, TDP_ALIAS_SHARED),
	      0);
	for (tdp_gfn_t i = 0; i < 2048; i += 3) {
		if (i >= 100 && i < 1000)
			expect_unmapped(&e, base + i);
		else
			expect_leaf(&e, base + i, ts_pfn_shared(base + i),
				    TDP_LEVEL_4K, R);
	}
	ST_EQ(t, tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED), 0);
	ST_EQ(t, tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	s = stats_of(&e);
	ST_EQ(t, ts_stat_leaves(&s, TDP_ROOT_DIRECT), 0);
	st_env_fini(&e);
}

const struct st_case st_engine_cases[] = {
	{ "engine/map_fixed_then_spurious", test_map_fixed_then_spurious },
	{ "engine/write_upgrade_and_remap", test_write_upgrade_and_remap },
	{ "engine/huge_levels", test_huge_levels },
	{ "engine/split_huge_on_small_fault", test_split_huge_on_small_fault },
	{ "engine/zap_range_and_flush", test_zap_range_and_flush },
	{ "engine/zap_all", test_zap_all },
	{ "engine/invalidate_sequence", test_invalidate_sequence },
	{ "engine/mmio_generation", test_mmio_generation },
	{ "engine/roots_lifecycle", test_roots_lifecycle },
	{ "engine/concurrent_root_get", test_concurrent_root_get },
	{ "engine/dirty_age_fast_fix", test_dirty_age_fast_fix },
	{ "engine/split_and_recover_huge", test_split_and_recover_huge },
	{ "engine/five_level_tree", test_five_level_tree },
	{ "engine/bad_input", test_bad_input },
	{ "engine/enomem_injection", test_enomem_injection },
	{ "engine/forced_yield_walks", test_forced_yield_walks },
};
const unsigned int st_engine_nr_cases = ARRAY_SIZE(st_engine_cases);
