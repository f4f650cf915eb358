// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The mirror root and its freeze protocol, against the strict test
 * backend (tests/support/ts_backend.c), and the alias-targeted zaps of a
 * confidential VM: the order of backend calls, busy and hard errors, allocation
 * failures before any call, removal failures that kill the MMU, teardown,
 * configuration checks, what the private alias refuses, and concurrent
 * faults against a slow backend and against zaps.
 */
#include <linux/delay.h>
#include <linux/kthread.h>

#include "st.h"

#include "port/port.h"

#define R TDP_PROT_READ
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define PAGES_2M 512ULL
#define PAGES_1G (512ULL * 512)
#define PAGES_512G (512ULL * 512 * 512)

static const struct ts_env_opts tdx = {
	.backend = true,
	.ext_table_size = 4096,
};

/* The unaliased GFN limit of the confidential-VM tests. */
#define GFN_LIMIT TS_SHARED_BIT

static int map_alias(struct ts_env *e, tdp_gfn_t gfn, enum tdp_alias alias,
		     int max_level)
{
	return ts_map(e->vcpu, gfn, alias, ts_pfn(gfn, alias), RW, max_level);
}

static void expect_event(struct st *t, struct ts_backend *b, unsigned int i,
			 enum ts_call call, tdp_gfn_t gfn, int level)
{
	struct ts_event ev = ts_log_get(b, i);

	ST_EQ(t, ev.call, call);
	ST_EQ(t, ev.gfn, gfn);
	ST_EQ(t, ev.level, level);
	ST_EQ(t, ev.ret, 0);
}

/* @gfn's @alias maps what ts_pfn() says, with a leaf at @level. */
static void expect_mapped(struct ts_env *e, tdp_gfn_t gfn, enum tdp_alias alias,
			  int level)
{
	tdp_pfn_t pfn = 0;
	int got = 0;

	if (!ST_TRUE(st_of(e), ts_lookup_leaf(e->mmu, gfn, alias, &got, &pfn)))
		return;
	ST_EQ(st_of(e), got, level);
	ST_EQ(st_of(e), pfn, ts_pfn(gfn, alias));
}

static void expect_unmapped(struct ts_env *e, tdp_gfn_t gfn,
			    enum tdp_alias alias)
{
	ST_TRUE(st_of(e), !ts_lookup_leaf(e->mmu, gfn, alias, NULL, NULL));
}

static void expect_mirror_equals_backend(struct ts_env *e)
{
	ST_EQ(st_of(e), ts_compare(e->be, e->mmu, 0, GFN_LIMIT), 0);
	ST_EQ(st_of(e), ts_violations(e->be), 0);
}

static struct tdp_stats stats_of(struct ts_env *e)
{
	struct tdp_stats s = { 0 };

	ST_EQ(st_of(e), tdp_mmu_get_stats(e->mmu, &s), 0);
	return s;
}

/* ---- the order of backend calls ------------------------------------------ */

static void test_private_fault_links_top_down(struct st *t)
{
	const tdp_gfn_t g = (2ULL << 27) | (5ULL << 18) | (7ULL << 9) | 3;
	const tdp_gfn_t g2m = ts_round_down(g, 3) + 3 * PAGES_2M + 17;
	const tdp_gfn_t g1g = (6ULL << 27) | (2ULL << 18) | 0x12345;
	struct ts_env e;

	if (!st_env_init(t, &e, &tdx))
		return;
	ts_log_enable(e.be, true);

	/* Empty tree: one link per missing level, top-down, then the leaf;
	 * the backend checks that each entry is frozen during its call. */
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ST_EQ(t, ts_log_count(e.be), 4);
	expect_event(t, e.be, 0, TS_LINK_TABLE, ts_round_down(g, 4), 4);
	expect_event(t, e.be, 1, TS_LINK_TABLE, ts_round_down(g, 3), 3);
	expect_event(t, e.be, 2, TS_LINK_TABLE, ts_round_down(g, 2), 2);
	expect_event(t, e.be, 3, TS_SET_LEAF, g, 1);
	ST_EQ(t, ts_log_get(e.be, 3).pfn, ts_pfn_private(g));

	/* Same table: only the leaf.  Already mapped: no call at all. */
	ts_log_clear(e.be);
	ST_EQ(t, map_alias(&e, g + 1, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ST_EQ(t, ts_log_count(e.be), 1);
	expect_event(t, e.be, 0, TS_SET_LEAF, g + 1, 1);
	ts_log_clear(e.be);
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_SPURIOUS);
	ST_EQ(t, ts_log_count(e.be), 0);

	/* The shared alias of the same GFN never reaches the backend. */
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_SHARED, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ST_EQ(t, ts_log_count(e.be), 0);
	expect_mapped(&e, g, TDP_ALIAS_SHARED, TDP_LEVEL_4K);
	expect_mapped(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K);

	/* A 2 MiB leaf in a fresh region of the same 1 GiB table. */
	ST_EQ(t, map_alias(&e, g2m, TDP_ALIAS_PRIVATE, TDP_LEVEL_2M),
	      TDP_FAULT_FIXED);
	ST_EQ(t, ts_log_count(e.be), 1);
	expect_event(t, e.be, 0, TS_SET_LEAF, ts_round_down(g2m, 2), 2);
	ST_EQ(t, ts_log_get(e.be, 0).pfn,
	      ts_pfn_private(ts_round_down(g2m, 2)));

	/* A 1 GiB leaf under a fresh 512 GiB entry: one link, one leaf. */
	ts_log_clear(e.be);
	ST_EQ(t, map_alias(&e, g1g, TDP_ALIAS_PRIVATE, TDP_LEVEL_1G),
	      TDP_FAULT_FIXED);
	ST_EQ(t, ts_log_count(e.be), 2);
	expect_event(t, e.be, 0, TS_LINK_TABLE, ts_round_down(g1g, 4), 4);
	expect_event(t, e.be, 1, TS_SET_LEAF, ts_round_down(g1g, 3), 3);
	expect_mapped(&e, g1g + 1000, TDP_ALIAS_PRIVATE, TDP_LEVEL_1G);

	/* Converting one page of it to shared removes the whole leaf. */
	ts_log_clear(e.be);
	ST_EQ(t, tdp_zap_convert_to_shared(e.mmu, g1g, g1g + 1), 0);
	ST_EQ(t, ts_log_count(e.be), 1);
	expect_event(t, e.be, 0, TS_REMOVE_LEAF, ts_round_down(g1g, 3), 3);
	expect_unmapped(&e, g1g + 1000, TDP_ALIAS_PRIVATE);

	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

/* ---- failures of the backend and of allocations -------------------------- */

static void test_busy_and_hard_errors(struct st *t)
{
	const tdp_gfn_t g = 3 * PAGES_1G + 5;
	const tdp_gfn_t fresh = 9 * PAGES_1G + 7;
	unsigned long retries = 0;
	struct ts_env e;
	struct tdp_stats s;
	tdp_spte_t spte;
	int level;

	if (!st_env_init(t, &e, &tdx))
		return;

	/* Busy: the fault retries and the mirror entry is as before. */
	ts_fail_next_map(e.be, TS_SET_LEAF, -EBUSY);
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_RETRY);
	ST_EQ(t, tdp_lookup(e.mmu, g, TDP_ALIAS_PRIVATE, &spte, &level), 0);
	ST_EQ(t, level, TDP_LEVEL_4K);
	ST_EQ(t, spte, e.fmt->nonpresent);
	ST_EQ(t, stats_of(&e).backend_busy, 1);
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);

	/* A hard error of link_table comes back unchanged; nothing linked. */
	ts_fail_next_map(e.be, TS_LINK_TABLE, -ENOSPC);
	ST_EQ(t, map_alias(&e, fresh, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      -ENOSPC);
	ST_EQ(t, tdp_lookup(e.mmu, fresh, TDP_ALIAS_PRIVATE, &spte, &level), 0);
	ST_EQ(t, spte, e.fmt->nonpresent);
	s = stats_of(&e);
	ST_EQ(t, s.backend_errors, 1);
	expect_mirror_equals_backend(&e);
	/* And of set_leaf. */
	ts_fail_next_map(e.be, TS_SET_LEAF, -ENOSPC);
	ST_EQ(t, map_alias(&e, fresh, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      -ENOSPC);
	expect_unmapped(&e, fresh, TDP_ALIAS_PRIVATE);
	ST_EQ(t, map_alias(&e, fresh, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);

	/* Random busy answers: every fault completes after retries. */
	ts_set_injection(e.be, 300, 0, t->seed);
	for (tdp_gfn_t i = 0; i < 64; i++) {
		tdp_gfn_t gfn = 20 * PAGES_1G + i * 97;

		ST_EQ(t,
		      ts_map_retry(e.vcpu, gfn, TDP_ALIAS_PRIVATE,
				   ts_pfn_private(gfn), RW, TDP_LEVEL_4K, 0,
				   5000, &retries),
		      TDP_FAULT_FIXED);
	}
	ts_set_injection(e.be, 0, 0, 0);
	ST_TRUE(t, retries > 0);
	ST_TRUE(t, stats_of(&e).backend_busy > 1);
	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

static void test_enomem_before_backend(struct st *t)
{
	struct ts_env e;
	struct tdp_vcpu *vcpu = NULL;
	int ret, failed = 0;

	if (!st_env_init(t, &e, &tdx))
		return;
	ts_log_enable(e.be, true);
	/* A fresh vCPU allocates its tables and backend pages first. */
	for (long n = 0; n < 24; n++) {
		tdp_gfn_t gfn = (tdp_gfn_t)(n + 1) * PAGES_1G;

		if (!ST_EQ(t, tdp_vcpu_create(e.mmu, &vcpu), 0))
			break;
		ts_log_clear(e.be);
		tdp_port_fail_alloc_after(n);
		ret = ts_map(vcpu, gfn, TDP_ALIAS_PRIVATE, ts_pfn_private(gfn),
			     RW, TDP_LEVEL_4K);
		tdp_port_fail_alloc_after(-1);
		tdp_vcpu_destroy(vcpu);
		if (ret != -ENOMEM) {
			ST_TRUE(t, ret == TDP_FAULT_FIXED ||
					   ret == TDP_FAULT_SPURIOUS);
			continue;
		}
		failed++;
		/* -ENOMEM only before any SPTE changed: no backend call. */
		ST_EQ(t, ts_log_count(e.be), 0);
		expect_unmapped(&e, gfn, TDP_ALIAS_PRIVATE);
	}
	ST_TRUE(t, failed > 0);
	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

static void test_remove_leaf_failure_kills_mmu(struct st *t)
{
	const tdp_gfn_t g = 4 * PAGES_1G + 11;
	struct ts_env e;
	tdp_spte_t spte;
	int level;

	if (!st_env_init(t, &e, &tdx))
		return;
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_SHARED, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ts_fail_next_remove(e.be);
	ST_EQ(t, tdp_zap_convert_to_shared(e.mmu, g, g + 1), -EIO);
	ST_TRUE(t, tdp_mmu_is_dead(e.mmu));
	/* Dead: every operation refuses, and the backend hears nothing. */
	ts_forbid_calls(e.be, true);
	ST_EQ(t, map_alias(&e, g + 1, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K), -EIO);
	ST_EQ(t, map_alias(&e, g + 1, TDP_ALIAS_SHARED, TDP_LEVEL_4K), -EIO);
	ST_EQ(t, tdp_zap_slot_deleted(e.mmu, 0, GFN_LIMIT), -EIO);
	ST_EQ(t, tdp_zap_all(e.mmu), -EIO);
	ST_EQ(t, tdp_invalidate_begin(e.mmu, 0, 1), -EIO);
	ST_EQ(t, tdp_lookup(e.mmu, g, TDP_ALIAS_PRIVATE, &spte, &level), -EIO);
	ST_EQ(t, tdp_mmu_zap_invalidated_roots(e.mmu), -EIO);
	st_env_teardown(&e, -EIO);
	ST_EQ(t, ts_calls(e.be, TS_REMOVE_LEAF), 1);
	ST_EQ(t, ts_calls(e.be, TS_FREE_TABLE), 0);
	st_env_destroy(&e);
}

static void test_free_table_failure_leaks_backend_page(struct st *t)
{
	const tdp_gfn_t g = 4 * PAGES_1G + 11;
	struct ts_env e;
	struct tdp_stats s;

	if (!st_env_init(t, &e, &tdx))
		return;
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ts_fail_next_free(e.be);
	st_env_teardown(&e, -EIO);
	ST_TRUE(t, tdp_mmu_is_dead(e.mmu));
	/* The leaf was removed, the first free_table failed, nothing after. */
	ST_EQ(t, ts_calls(e.be, TS_REMOVE_LEAF), 1);
	ST_EQ(t, ts_ok(e.be, TS_REMOVE_LEAF), 1);
	ST_EQ(t, ts_calls(e.be, TS_FREE_TABLE), 1);
	ST_EQ(t, ts_ok(e.be, TS_FREE_TABLE), 0);
	/* Pages the backend may still reference are never freed. */
	ST_EQ(t, tdp_mmu_get_stats(e.mmu, &s), 0);
	ST_TRUE(t, s.pages_in_use > 0);
	st_env_destroy(&e);
}

static void test_teardown_frees_every_table_once(struct st *t)
{
	struct ts_env e;
	unsigned long linked, mapped;

	if (!st_env_init(t, &e, &tdx))
		return;
	for (tdp_gfn_t i = 0; i < 48; i++) {
		tdp_gfn_t gfn = (i % 3) * PAGES_512G + (i % 5) * PAGES_1G +
				(i % 7) * PAGES_2M + i;

		ST_EQ(t, map_alias(&e, gfn, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
		      TDP_FAULT_FIXED);
		ST_EQ(t, map_alias(&e, gfn, TDP_ALIAS_SHARED, TDP_LEVEL_4K),
		      TDP_FAULT_FIXED);
	}
	ST_EQ(t,
	      map_alias(&e, 40 * PAGES_1G + 3 * PAGES_2M, TDP_ALIAS_PRIVATE,
			TDP_LEVEL_2M),
	      TDP_FAULT_FIXED);
	ST_EQ(t, map_alias(&e, 50 * PAGES_1G, TDP_ALIAS_PRIVATE, TDP_LEVEL_1G),
	      TDP_FAULT_FIXED);
	expect_mirror_equals_backend(&e);
	linked = ts_ok(e.be, TS_LINK_TABLE);
	mapped = ts_ok(e.be, TS_SET_LEAF);
	/* The backend checks children before parents and each free once. */
	st_env_teardown(&e, 0);
	ST_EQ(t, ts_calls(e.be, TS_FREE_TABLE), linked);
	ST_EQ(t, ts_ok(e.be, TS_FREE_TABLE), linked);
	ST_EQ(t, ts_calls(e.be, TS_REMOVE_LEAF), mapped);
	st_env_destroy(&e);
}

/* ---- configuration and what the private alias refuses -------------------- */

static void test_backend_config_checks(struct st *t)
{
	struct ts_backend *b = ts_backend_create(4, TS_SHARED_BIT, 0);
	struct tdp_private_backend ops;
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.direct_bits = TS_SHARED_BIT,
		.host = ts_flush_host(NULL, false),
		.backend = &ops,
	};
	struct tdp_mmu *mmu = NULL;

	if (!ST_TRUE(t, b != NULL))
		return;
	ops = *ts_backend_ops(b);
	ops.free_table = NULL;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	ops = *ts_backend_ops(b);
	cfg.direct_bits = 0;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = TS_SHARED_BIT | 1;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = 1ULL << 17;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = 1ULL << 36;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), -EINVAL);
	ST_TRUE(t, mmu == NULL);
	cfg.direct_bits = TS_SHARED_BIT;
	ST_EQ(t, tdp_mmu_create(&cfg, &mmu), 0);
	ST_EQ(t, tdp_mmu_direct_bits(mmu), TS_SHARED_BIT);
	ST_EQ(t, tdp_mmu_teardown(mmu), 0);
	tdp_mmu_destroy(mmu);
	ST_EQ(t, ts_violations(b), 0);
	ts_backend_destroy(b);
}

static void test_private_alias_unsupported(struct st *t)
{
	const tdp_gfn_t g = 5 * PAGES_1G;
	struct tdp_fault mmio = {
		.fault_gfn = g,
		.prot = R,
		.max_level = TDP_LEVEL_4K,
		.mmio = true,
	};
	struct ts_env e;
	tdp_pfn_t pfn;
	u64 bitmap[1];
	int level;

	if (!st_env_init(t, &e, &tdx))
		return;
	ST_EQ(t, map_alias(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	mmio.mmu_seq = tdp_mmu_seq(e.mmu);
	ST_EQ(t, tdp_map(e.vcpu, &mmio), -EINVAL);
	mmio.fault_gfn |= TS_SHARED_BIT;
	ST_EQ(t, tdp_map(e.vcpu, &mmio), TDP_FAULT_FIXED);
	for (int alias = TDP_ALIAS_PRIVATE; alias <= TDP_ALIAS_BOTH; alias++) {
		if (alias == TDP_ALIAS_SHARED)
			continue;
		ST_EQ(t, tdp_wrprot_range(e.mmu, g, g + 64, alias),
		      -EOPNOTSUPP);
		ST_EQ(t, tdp_clear_dirty_range(e.mmu, g, g + 64, alias),
		      -EOPNOTSUPP);
		ST_EQ(t, tdp_clear_dirty_masked(e.mmu, g, 1, false, alias),
		      -EOPNOTSUPP);
		ST_EQ(t, tdp_harvest_dirty(e.mmu, g, g + 64, bitmap, alias),
		      -EOPNOTSUPP);
		ST_EQ(t, tdp_age_range(e.mmu, g, g + 64, true, alias),
		      -EOPNOTSUPP);
		ST_EQ(t,
		      tdp_split_huge_range(e.mmu, g, g + PAGES_2M, TDP_LEVEL_4K,
					   alias),
		      -EOPNOTSUPP);
		ST_EQ(t,
		      tdp_recover_huge_pages(e.mmu, g, g + PAGES_2M,
					     TDP_LEVEL_2M, alias),
		      -EOPNOTSUPP);
		ST_EQ(t, tdp_mmu_invalidate_roots(e.mmu, alias), -EOPNOTSUPP);
	}
	ST_EQ(t, tdp_fast_fix(e.mmu, g, RW), -EOPNOTSUPP);
	ST_EQ(t, tdp_vcpu_load_root(e.vcpu, TDP_ALIAS_PRIVATE, &pfn, &level),
	      -EINVAL);
	/* The private mapping is untouched by all of it. */
	expect_mapped(&e, g, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K);
	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

/* ---- alias-targeted zaps ------------------------------------------------- */

enum zap_event { SLOT_DELETED, HOST_UNMAP, TO_SHARED, TO_PRIVATE };

static int zap_event(struct tdp_mmu *mmu, enum zap_event ev, tdp_gfn_t start,
		     tdp_gfn_t end)
{
	switch (ev) {
	case SLOT_DELETED:
		return tdp_zap_slot_deleted(mmu, start, end);
	case HOST_UNMAP:
		return tdp_zap_host_unmap(mmu, start, end);
	case TO_SHARED:
		return tdp_zap_convert_to_shared(mmu, start, end);
	default:
		return tdp_zap_convert_to_private(mmu, start, end);
	}
}

static void test_alias_targeted_zaps(struct st *t)
{
	/* Which aliases each event zaps: the table of include/tdp/zap.h. */
	static const struct {
		enum zap_event ev;
		bool private, shared;
	} table[] = {
		{ SLOT_DELETED, true, true },
		{ HOST_UNMAP, false, true },
		{ TO_SHARED, true, false },
		{ TO_PRIVATE, false, true },
	};
	const tdp_gfn_t base = 7 * PAGES_1G + 40;
	struct ts_env e;

	if (!st_env_init(t, &e, &tdx))
		return;
	for (unsigned int k = 0; k < ARRAY_SIZE(table); k++) {
		for (tdp_gfn_t i = 0; i < 8; i++) {
			ST_TRUE(t, map_alias(&e, base + i, TDP_ALIAS_PRIVATE,
					     TDP_LEVEL_4K) >= 0);
			ST_TRUE(t, map_alias(&e, base + i, TDP_ALIAS_SHARED,
					     TDP_LEVEL_4K) >= 0);
		}
		ST_EQ(t, zap_event(e.mmu, table[k].ev, base + 2, base + 4), 0);
		for (tdp_gfn_t i = 0; i < 8; i++) {
			bool inside = i >= 2 && i < 4;

			if (inside && table[k].private)
				expect_unmapped(&e, base + i,
						TDP_ALIAS_PRIVATE);
			else
				expect_mapped(&e, base + i, TDP_ALIAS_PRIVATE,
					      TDP_LEVEL_4K);
			if (inside && table[k].shared)
				expect_unmapped(&e, base + i, TDP_ALIAS_SHARED);
			else
				expect_mapped(&e, base + i, TDP_ALIAS_SHARED,
					      TDP_LEVEL_4K);
		}
		expect_mirror_equals_backend(&e);
	}
	/* The explicit filters, and zap_all, which leaves private alone. */
	ST_EQ(t, tdp_zap_range(e.mmu, base, base + 8, TDP_ALIAS_SHARED), 0);
	expect_unmapped(&e, base, TDP_ALIAS_SHARED);
	expect_mapped(&e, base, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K);
	ST_EQ(t, map_alias(&e, base, TDP_ALIAS_SHARED, TDP_LEVEL_4K),
	      TDP_FAULT_FIXED);
	ST_EQ(t, tdp_zap_all(e.mmu), 0);
	expect_unmapped(&e, base, TDP_ALIAS_SHARED);
	expect_mapped(&e, base, TDP_ALIAS_PRIVATE, TDP_LEVEL_4K);
	ST_EQ(t, tdp_zap_range(e.mmu, base, base + 8, TDP_ALIAS_BOTH), 0);
	expect_unmapped(&e, base, TDP_ALIAS_PRIVATE);
	ST_EQ(t, ts_nr_leaves(e.be), 0);
	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

/* ---- concurrent faults against a slow backend ---------------------------- */

#define PF_THREADS 4
#define PF_FAULTS 8

/*
 * Region @i: a 2 MiB region under a 1 GiB entry no earlier region used
 * (and, for the first five, under a fresh 512 GiB entry), so faulting it
 * links at least two tables.
 */
static tdp_gfn_t fresh_region(unsigned int i)
{
	return ((tdp_gfn_t)(i % 5) << 27) | ((tdp_gfn_t)((i / 5) % 512) << 18) |
	       ((tdp_gfn_t)((i * 37) % 512) << 9);
}

struct pf_worker {
	struct ts_env *e;
	struct st_barrier *barrier;
	unsigned int regions;
	int id;
	unsigned long retries;
	unsigned long not_fixed;
};

static int pf_worker_fn(void *arg)
{
	struct pf_worker *w = arg;
	struct st *t = st_of(w->e);
	struct tdp_vcpu *vcpu = NULL;

	tdp_thread_register();
	ST_EQ(t, tdp_vcpu_create(w->e->mmu, &vcpu), 0);
	for (unsigned int r = 0; r < w->regions; r++) {
		tdp_gfn_t base = fresh_region(r);

		/* All threads start on a region together. */
		st_barrier_wait(w->barrier);
		for (int j = 0; vcpu && j < PF_FAULTS; j++) {
			tdp_gfn_t g = base + (tdp_gfn_t)w->id * 128 + j * 13;
			int ret = ts_map_retry(
				vcpu, g, TDP_ALIAS_PRIVATE, ts_pfn_private(g),
				RW, TDP_LEVEL_4K, 0, 5000, &w->retries);

			if (ret != TDP_FAULT_FIXED) {
				w->not_fixed++;
				st_fail(t, __FILE__, __LINE__,
					"thread %d: fault of gfn %#llx returned %d",
					w->id, g, ret);
			}
		}
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return 0;
}

static void test_concurrent_faults_parent_first(struct st *t)
{
	const unsigned int regions = 40;
	struct pf_worker w[PF_THREADS];
	struct st_thread *th[PF_THREADS];
	struct st_barrier barrier;
	unsigned long retries = 0;
	struct ts_env e;

	if (!st_env_init(t, &e, &tdx))
		return;
	/* A slow SEPT.ADD: every thread but one meets the frozen entry. */
	ts_set_link_delay(e.be, 200);
	st_barrier_init(&barrier, PF_THREADS);
	for (int i = 0; i < PF_THREADS; i++) {
		w[i] = (struct pf_worker){ .e = &e,
					   .barrier = &barrier,
					   .regions = regions,
					   .id = i };
		th[i] = st_thread_start(pf_worker_fn, &w[i], "pf", i);
	}
	for (int i = 0; i < PF_THREADS; i++) {
		if (!ST_TRUE(t, th[i] != NULL)) {
			/* Cannot run it without every thread. */
			for (unsigned int r = 0; r < regions; r++)
				st_barrier_wait(&barrier);
		}
	}
	for (int i = 0; i < PF_THREADS; i++) {
		st_thread_stop(th[i]);
		retries += w[i].retries;
		ST_EQ(t, w[i].not_fixed, 0);
	}
	/* The threads did meet each other's frozen entries. */
	ST_TRUE(t, retries > 0);
	ST_EQ(t, ts_ok(e.be, TS_SET_LEAF), regions * PF_THREADS * PF_FAULTS);
	ST_EQ(t, ts_calls(e.be, TS_LINK_TABLE), ts_ok(e.be, TS_LINK_TABLE));
	expect_mirror_equals_backend(&e);
	st_env_fini(&e);
}

/* ---- faults racing zaps -------------------------------------------------- */

#define RACE_REGIONS 8
#define RACE_BASE (11 * PAGES_1G)
#define RACE_WINDOW (RACE_REGIONS * PAGES_2M)
#define RACE_FAULTERS 3

struct race {
	struct ts_env *e;
	atomic_t zaps; /* zap operations done */
	int max_zaps;
};

struct race_worker {
	struct race *r;
	u64 rng;
	int id;
};

static int race_faulter_fn(void *arg)
{
	struct race_worker *w = arg;
	struct ts_env *e = w->r->e;
	struct tdp_vcpu *vcpu = NULL;

	tdp_thread_register();
	ST_EQ(st_of(e), tdp_vcpu_create(e->mmu, &vcpu), 0);
	while (vcpu && !kthread_should_stop()) {
		u64 x = ts_rand(&w->rng);
		tdp_gfn_t gfn = RACE_BASE + x % RACE_WINDOW;
		enum tdp_alias alias =
			(x >> 32) & 1 ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
		int level = (x >> 33) % 4 ? TDP_LEVEL_4K : TDP_LEVEL_2M;
		int ret = ts_map_retry(vcpu, gfn, alias, ts_pfn(gfn, alias), RW,
				       level, 0, 5000, NULL);

		/* Injected hard errors come back unchanged. */
		if (ret != -ENOSPC && ret != TDP_FAULT_FIXED &&
		    ret != TDP_FAULT_SPURIOUS)
			st_fail(st_of(e), __FILE__, __LINE__,
				"fault of gfn %#llx (alias %d, level %d) returned %d",
				gfn, alias, level, ret);
		cond_resched();
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return 0;
}

static int race_zapper_fn(void *arg)
{
	struct race_worker *w = arg;
	struct ts_env *e = w->r->e;

	tdp_thread_register();
	while (!kthread_should_stop() &&
	       atomic_inc_return(&w->r->zaps) <= w->r->max_zaps) {
		u64 x = ts_rand(&w->rng);
		tdp_gfn_t start = RACE_BASE + x % RACE_WINDOW;
		tdp_gfn_t end = min(start + 1 + (x >> 16) % 1024,
				    RACE_BASE + RACE_WINDOW);
		int ret;

		switch ((x >> 40) % 6) {
		case 0:
			ret = tdp_zap_convert_to_shared(e->mmu, start, end);
			break;
		case 1:
			ret = tdp_zap_convert_to_private(e->mmu, start, end);
			break;
		case 2:
			ret = tdp_zap_slot_deleted(e->mmu, start, end);
			break;
		case 3:
			ret = ts_host_unmap(e->mmu, start, end);
			break;
		case 4:
			ret = tdp_mmu_invalidate_roots(e->mmu,
						       TDP_ALIAS_SHARED);
			if (!ret)
				ret = tdp_mmu_zap_invalidated_roots(e->mmu);
			break;
		default:
			ret = tdp_zap_all(e->mmu);
			break;
		}
		ST_EQ(st_of(e), ret, 0);
		usleep_range(20, 60);
	}
	tdp_thread_unregister();
	return 0;
}

/* Every present leaf of the window maps what its GFN and alias call for. */
static void check_race_window(struct ts_env *e)
{
	for (tdp_gfn_t gfn = RACE_BASE; gfn < RACE_BASE + RACE_WINDOW; gfn++) {
		for (int a = 0; a < 2; a++) {
			enum tdp_alias alias =
				a ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
			tdp_pfn_t pfn;

			if (ts_lookup_leaf(e->mmu, gfn, alias, NULL, &pfn))
				ST_EQ(st_of(e), pfn, ts_pfn(gfn, alias));
		}
	}
	expect_mirror_equals_backend(e);
}

static void run_faults_race_zaps(struct st *t, unsigned int flags)
{
	struct ts_env_opts o = tdx;
	struct race_worker w[RACE_FAULTERS + 1];
	struct st_thread *th[RACE_FAULTERS + 1];
	unsigned long deadline;
	struct race r;
	struct ts_env e;

	o.flags = flags;
	if (!st_env_init(t, &e, &o))
		return;
	ts_set_injection(e.be, 50, 10, t->seed);
	r = (struct race){ .e = &e, .max_zaps = 400 };
	atomic_set(&r.zaps, 0);
	for (int i = 0; i <= RACE_FAULTERS; i++) {
		w[i] = (struct race_worker){ .r = &r,
					     .id = i,
					     .rng = t->seed + 7919 * (i + 1) };
		th[i] = st_thread_start(i < RACE_FAULTERS ? race_faulter_fn
							  : race_zapper_fn,
					&w[i], "race", i);
		ST_TRUE(t, th[i] != NULL);
	}
	/* Bounded by the zapper's budget, and by time under emulation. */
	deadline = jiffies + msecs_to_jiffies(2000);
	while (time_before(jiffies, deadline) &&
	       atomic_read(&r.zaps) < r.max_zaps)
		msleep(10);
	for (int i = 0; i <= RACE_FAULTERS; i++)
		st_thread_stop(th[i]);
	ts_set_injection(e.be, 0, 0, 0);
	check_race_window(&e);
	ST_EQ(t,
	      tdp_zap_slot_deleted(e.mmu, RACE_BASE, RACE_BASE + RACE_WINDOW),
	      0);
	ST_EQ(t, ts_nr_leaves(e.be), 0);
	st_env_fini(&e);
}

static void test_faults_race_zaps(struct st *t)
{
	run_faults_race_zaps(t, 0);
}

static void test_faults_race_zaps_forced_yield(struct st *t)
{
	run_faults_race_zaps(t, TDP_MMU_FORCE_YIELD);
}

const struct st_case st_mirror_cases[] = {
	{ "mirror/private_fault_links_top_down",
	  test_private_fault_links_top_down },
	{ "mirror/busy_and_hard_errors", test_busy_and_hard_errors },
	{ "mirror/enomem_before_backend", test_enomem_before_backend },
	{ "mirror/remove_leaf_failure_kills_mmu",
	  test_remove_leaf_failure_kills_mmu },
	{ "mirror/free_table_failure_leaks_backend_page",
	  test_free_table_failure_leaks_backend_page },
	{ "mirror/teardown_frees_every_table_once",
	  test_teardown_frees_every_table_once },
	{ "mirror/backend_config_checks", test_backend_config_checks },
	{ "mirror/private_alias_unsupported", test_private_alias_unsupported },
	{ "alias/targeted_zaps", test_alias_targeted_zaps },
	{ "mirror/concurrent_faults_parent_first",
	  test_concurrent_faults_parent_first },
	{ "mirror/faults_race_zaps", test_faults_race_zaps },
	{ "mirror/faults_race_zaps_forced_yield",
	  test_faults_race_zaps_forced_yield },
};
const unsigned int st_mirror_nr_cases = ARRAY_SIZE(st_mirror_cases);
