/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every bad input returns the documented error and changes nothing.
 *
 * Two MMUs without backend (the default width, and gfn_bits 30), each with
 * a vCPU and some mappings, are snapshot before and after every row: the
 * full statistics, the lookups of the mapped GFNs and of an unmapped one,
 * the invalidation sequence, the MMIO generation and the state of the
 * valid root.  Rows that create an MMU check the error and that the output
 * pointer was left alone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define NARROW_BITS 30
#define NARROW_LIMIT (1ULL << NARROW_BITS)

struct bad_ctx {
	struct ts_env wide;   /* gfn_bits 0 (36) */
	struct ts_env narrow; /* gfn_bits 30 */
	struct tdp_root *wide_root, *narrow_root;
	/* Where the rows' calls store their outputs. */
	tdp_spte_t spte;
	int level;
	struct tdp_root *root;
	struct tdp_vcpu *vcpu_out;
	struct tdp_stats st;
	tdp_pfn_t pfn;
	uint64_t bitmap[4];
};

static const tdp_gfn_t wide_gfns[] = { 0x10, TS_PAGES_2M + 9,
				       TS_PLAIN_GFN_LIMIT - 1, 0x11 };
static const tdp_gfn_t narrow_gfns[] = { 0x10, NARROW_LIMIT - 1, 0x11 };

struct snapshot {
	struct tdp_stats stats[2];
	struct ts_leaf wide[4], narrow[3];
	uint64_t seq[2];
	uint32_t gen[2];
	bool valid[2];
	int refs[2];
};

static void take_snapshot(struct bad_ctx *c, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->stats[0] = th_stats(c->wide.mmu);
	s->stats[1] = th_stats(c->narrow.mmu);
	for (size_t i = 0; i < 4; i++)
		s->wide[i] =
			ts_lookup(c->wide.mmu, wide_gfns[i], TDP_ALIAS_SHARED);
	for (size_t i = 0; i < 3; i++)
		s->narrow[i] = ts_lookup(c->narrow.mmu, narrow_gfns[i],
					 TDP_ALIAS_SHARED);
	s->seq[0] = tdp_mmu_seq(c->wide.mmu);
	s->seq[1] = tdp_mmu_seq(c->narrow.mmu);
	s->gen[0] = tdp_mmu_mmio_generation(c->wide.mmu);
	s->gen[1] = tdp_mmu_mmio_generation(c->narrow.mmu);
	s->valid[0] = tdp_root_is_valid(c->wide_root);
	s->valid[1] = tdp_root_is_valid(c->narrow_root);
	s->refs[0] = tdp_root_refcount(c->wide_root);
	s->refs[1] = tdp_root_refcount(c->narrow_root);
}

static bool leaf_equal(const struct ts_leaf *a, const struct ts_leaf *b)
{
	return a->ret == b->ret && a->spte == b->spte && a->level == b->level;
}

/* Returns a description of the first difference, or NULL. */
static const char *snapshot_diff(const struct snapshot *a,
				 const struct snapshot *b)
{
	if (th_stats_diff("wide MMU", &a->stats[0], &b->stats[0]))
		return "statistics of the wide MMU";
	if (th_stats_diff("narrow MMU", &a->stats[1], &b->stats[1]))
		return "statistics of the narrow MMU";
	for (size_t i = 0; i < 4; i++)
		if (!leaf_equal(&a->wide[i], &b->wide[i]))
			return "a lookup on the wide MMU";
	for (size_t i = 0; i < 3; i++)
		if (!leaf_equal(&a->narrow[i], &b->narrow[i]))
			return "a lookup on the narrow MMU";
	if (a->seq[0] != b->seq[0] || a->seq[1] != b->seq[1])
		return "the invalidation sequence";
	if (a->gen[0] != b->gen[0] || a->gen[1] != b->gen[1])
		return "the MMIO generation";
	if (a->valid[0] != b->valid[0] || a->valid[1] != b->valid[1])
		return "the validity of a root";
	if (a->refs[0] != b->refs[0] || a->refs[1] != b->refs[1])
		return "a root's reference count";
	return NULL;
}

/* ---- rows on existing MMUs ------------------------------------------- */

static int map_wide(struct bad_ctx *c, tdp_gfn_t gfn, unsigned int prot,
		    int max_level)
{
	return ts_map(c->wide.vcpu, gfn, TDP_ALIAS_SHARED, 0x1234, prot,
		      max_level);
}

#define R TDP_PROT_READ
#define W TDP_PROT_WRITE
#define X TDP_PROT_EXEC
#define WIDE (c->wide.mmu)
#define NARROW (c->narrow.mmu)

/* One row: a function that makes the bad call; outputs go to @c. */
#define ROW(fn, expr)                    \
	static int fn(struct bad_ctx *c) \
	{                                \
		return (expr);           \
	}

ROW(vcpu_create_null_mmu, tdp_vcpu_create(NULL, &c->vcpu_out))
ROW(vcpu_create_null_out, tdp_vcpu_create(WIDE, NULL))
ROW(vcpu_topup_null, tdp_vcpu_topup(NULL))
ROW(map_null_vcpu,
    tdp_map(NULL, &(struct tdp_fault){ .prot = R, .max_level = 1 }))
ROW(map_null_fault, tdp_map(c->wide.vcpu, NULL))
ROW(map_gfn_at_width, map_wide(c, TS_PLAIN_GFN_LIMIT, R, 1))
ROW(map_gfn_all_ones, map_wide(c, ~0ULL, R, 1))
ROW(map_gfn_bit_63, map_wide(c, (1ULL << 63) | 0x10, R, 1))
ROW(map_narrow_gfn_at_width,
    ts_map(c->narrow.vcpu, NARROW_LIMIT, TDP_ALIAS_SHARED, 0x1, R, 1))
ROW(map_narrow_gfn_above_width,
    ts_map(c->narrow.vcpu, NARROW_LIMIT + 0x10, TDP_ALIAS_SHARED, 0x1, R, 1))
ROW(map_prot_zero, map_wide(c, 0x20, 0, 1))
ROW(map_prot_write_only, map_wide(c, 0x20, W, 1))
ROW(map_prot_exec_only, map_wide(c, 0x20, X, 1))
ROW(map_prot_write_exec, map_wide(c, 0x20, W | X, 1))
ROW(map_prot_unknown_bit, map_wide(c, 0x20, R | 8, 1))
ROW(map_prot_high_bit, map_wide(c, 0x20, R | 0x80000000u, 1))
ROW(map_level_zero, map_wide(c, 0x20, R, 0))
ROW(map_level_negative, map_wide(c, 0x20, R, -1))
ROW(map_level_512g, map_wide(c, 0, R, 4))
ROW(map_level_huge, map_wide(c, 0, R, 100))
ROW(map_bad_prot_on_mapped, map_wide(c, 0x10, W, 1))
ROW(set_mmio_gen_null, tdp_mmu_set_mmio_generation(NULL, 1))
ROW(lookup_null_mmu,
    tdp_lookup(NULL, 0x10, TDP_ALIAS_SHARED, &c->spte, &c->level))
ROW(lookup_null_spte, tdp_lookup(WIDE, 0x10, TDP_ALIAS_SHARED, NULL, &c->level))
ROW(lookup_null_level, tdp_lookup(WIDE, 0x10, TDP_ALIAS_SHARED, &c->spte, NULL))
ROW(lookup_alias_both,
    tdp_lookup(WIDE, 0x10, TDP_ALIAS_BOTH, &c->spte, &c->level))
ROW(lookup_alias_zero, tdp_lookup(WIDE, 0x10, 0, &c->spte, &c->level))
ROW(lookup_alias_eight, tdp_lookup(WIDE, 0x10, 8, &c->spte, &c->level))
ROW(lookup_private_no_backend,
    tdp_lookup(WIDE, 0x10, TDP_ALIAS_PRIVATE, &c->spte, &c->level))
ROW(lookup_gfn_at_width,
    tdp_lookup(WIDE, TS_PLAIN_GFN_LIMIT, TDP_ALIAS_SHARED, &c->spte, &c->level))
ROW(lookup_narrow_at_width,
    tdp_lookup(NARROW, NARROW_LIMIT, TDP_ALIAS_SHARED, &c->spte, &c->level))
ROW(root_get_null_mmu, tdp_root_get(NULL, TDP_ROOT_DIRECT, &c->root))
ROW(root_get_mirror_no_backend, tdp_root_get(WIDE, TDP_ROOT_MIRROR, &c->root))
ROW(root_get_bad_type, tdp_root_get(WIDE, (enum tdp_root_type)7, &c->root))
ROW(root_get_negative_type,
    tdp_root_get(WIDE, (enum tdp_root_type) - 1, &c->root))
ROW(root_get_null_out, tdp_root_get(WIDE, TDP_ROOT_DIRECT, NULL))
ROW(invalidate_roots_null, tdp_mmu_invalidate_roots(NULL, TDP_ALIAS_SHARED))
ROW(invalidate_roots_alias_zero, tdp_mmu_invalidate_roots(WIDE, 0))
ROW(invalidate_roots_alias_eight, tdp_mmu_invalidate_roots(WIDE, 8))
ROW(invalidate_roots_alias_seven, tdp_mmu_invalidate_roots(WIDE, 7))
/* No backend: the private alias selects no root (tdp/types.h). */
ROW(invalidate_roots_private_no_backend,
    tdp_mmu_invalidate_roots(WIDE, TDP_ALIAS_PRIVATE))
ROW(zap_invalidated_null, tdp_mmu_zap_invalidated_roots(NULL))
ROW(zap_range_null, tdp_zap_range(NULL, 0, 1, TDP_ALIAS_SHARED))
ROW(zap_range_empty, tdp_zap_range(WIDE, 0x10, 0x10, TDP_ALIAS_SHARED))
ROW(zap_range_backwards, tdp_zap_range(WIDE, 0x11, 0x10, TDP_ALIAS_SHARED))
ROW(zap_range_end_beyond,
    tdp_zap_range(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1, TDP_ALIAS_SHARED))
ROW(zap_range_all_beyond,
    tdp_zap_range(WIDE, TS_PLAIN_GFN_LIMIT, TS_PLAIN_GFN_LIMIT + 1,
		  TDP_ALIAS_SHARED))
ROW(zap_range_end_max, tdp_zap_range(WIDE, 0, ~0ULL, TDP_ALIAS_SHARED))
ROW(zap_range_narrow_beyond,
    tdp_zap_range(NARROW, 0, NARROW_LIMIT + 1, TDP_ALIAS_SHARED))
ROW(zap_range_alias_zero, tdp_zap_range(WIDE, 0, 0x100, 0))
ROW(zap_range_alias_eight, tdp_zap_range(WIDE, 0, 0x100, 8))
ROW(zap_range_alias_seven, tdp_zap_range(WIDE, 0, 0x100, 7))
/* No backend: the private alias selects no root, returns 0. */
ROW(zap_range_private_no_backend,
    tdp_zap_range(WIDE, 0, TS_PLAIN_GFN_LIMIT, TDP_ALIAS_PRIVATE))
ROW(zap_all_null, tdp_zap_all(NULL))
ROW(zap_slot_deleted_null, tdp_zap_slot_deleted(NULL, 0, 1))
ROW(zap_host_unmap_null, tdp_zap_host_unmap(NULL, 0, 1))
ROW(zap_to_shared_null, tdp_zap_convert_to_shared(NULL, 0, 1))
ROW(zap_to_private_null, tdp_zap_convert_to_private(NULL, 0, 1))
ROW(zap_slot_deleted_empty, tdp_zap_slot_deleted(WIDE, 5, 5))
ROW(zap_host_unmap_backwards, tdp_zap_host_unmap(WIDE, 0x20, 0x10))
ROW(zap_to_shared_beyond,
    tdp_zap_convert_to_shared(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1))
ROW(zap_to_private_beyond,
    tdp_zap_convert_to_private(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1))
ROW(inval_begin_null, tdp_invalidate_begin(NULL, 0, 1))
ROW(inval_begin_empty, tdp_invalidate_begin(WIDE, 0x10, 0x10))
ROW(inval_begin_backwards, tdp_invalidate_begin(WIDE, 0x11, 0x10))
ROW(inval_begin_beyond, tdp_invalidate_begin(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1))
ROW(inval_begin_narrow_beyond,
    tdp_invalidate_begin(NARROW, 0, NARROW_LIMIT + 1))
ROW(inval_end_null, tdp_invalidate_end(NULL, 0, 1))
ROW(inval_end_without_begin, tdp_invalidate_end(WIDE, 0, 0x100))
ROW(inval_end_empty, tdp_invalidate_end(WIDE, 0x10, 0x10))
ROW(inval_end_beyond, tdp_invalidate_end(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1))
ROW(get_stats_null_mmu, tdp_mmu_get_stats(NULL, &c->st))
ROW(get_stats_null_out, tdp_mmu_get_stats(WIDE, NULL))
ROW(teardown_null, tdp_mmu_teardown(NULL))
ROW(teardown_live_vcpu, tdp_mmu_teardown(WIDE))
ROW(teardown_narrow_live_vcpu, tdp_mmu_teardown(NARROW))

ROW(load_root_null_vcpu,
    tdp_vcpu_load_root(NULL, TDP_ALIAS_SHARED, &c->pfn, &c->level))
ROW(load_root_private,
    tdp_vcpu_load_root(c->wide.vcpu, TDP_ALIAS_PRIVATE, &c->pfn, &c->level))
ROW(load_root_both,
    tdp_vcpu_load_root(c->wide.vcpu, TDP_ALIAS_BOTH, &c->pfn, &c->level))
ROW(wrprot_null, tdp_wrprot_range(NULL, 0, 0x100, TDP_ALIAS_SHARED))
ROW(wrprot_empty, tdp_wrprot_range(WIDE, 0x10, 0x10, TDP_ALIAS_SHARED))
ROW(wrprot_beyond,
    tdp_wrprot_range(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1, TDP_ALIAS_SHARED))
ROW(wrprot_alias_zero, tdp_wrprot_range(WIDE, 0, 0x100, 0))
ROW(clear_dirty_null, tdp_clear_dirty_range(NULL, 0, 0x100, TDP_ALIAS_SHARED))
ROW(clear_dirty_backwards,
    tdp_clear_dirty_range(WIDE, 0x100, 0x10, TDP_ALIAS_SHARED))
ROW(clear_dirty_alias_eight, tdp_clear_dirty_range(WIDE, 0, 0x100, 8))
ROW(masked_null, tdp_clear_dirty_masked(NULL, 0, ~0ULL, true, TDP_ALIAS_SHARED))
ROW(masked_misaligned,
    tdp_clear_dirty_masked(WIDE, 0x10, ~0ULL, true, TDP_ALIAS_SHARED))
ROW(masked_beyond, tdp_clear_dirty_masked(WIDE, TS_PLAIN_GFN_LIMIT, ~0ULL, true,
					  TDP_ALIAS_SHARED))
ROW(masked_alias_zero, tdp_clear_dirty_masked(WIDE, 0, ~0ULL, true, 0))
ROW(harvest_null,
    (int)tdp_harvest_dirty(NULL, 0, 64, c->bitmap, TDP_ALIAS_SHARED))
ROW(harvest_null_bitmap,
    (int)tdp_harvest_dirty(WIDE, 0, 64, NULL, TDP_ALIAS_SHARED))
ROW(harvest_empty,
    (int)tdp_harvest_dirty(WIDE, 64, 64, c->bitmap, TDP_ALIAS_SHARED))
ROW(harvest_alias_eight, (int)tdp_harvest_dirty(WIDE, 0, 64, c->bitmap, 8))
ROW(age_null, (int)tdp_age_range(NULL, 0, 0x100, true, TDP_ALIAS_SHARED))
ROW(age_backwards, (int)tdp_age_range(WIDE, 0x100, 0, true, TDP_ALIAS_SHARED))
ROW(age_beyond,
    (int)tdp_age_range(WIDE, 0, TS_PLAIN_GFN_LIMIT + 1, true, TDP_ALIAS_SHARED))
ROW(age_alias_zero, (int)tdp_age_range(WIDE, 0, 0x100, true, 0))
ROW(fast_fix_null, tdp_fast_fix(NULL, 0x10, TDP_PROT_READ | TDP_PROT_WRITE))
ROW(fast_fix_beyond,
    tdp_fast_fix(WIDE, TS_PLAIN_GFN_LIMIT, TDP_PROT_READ | TDP_PROT_WRITE))
ROW(split_null, tdp_split_huge_range(NULL, 0, TS_PAGES_1G, 1, TDP_ALIAS_SHARED))
ROW(split_target_1g,
    tdp_split_huge_range(WIDE, 0, TS_PAGES_1G, 3, TDP_ALIAS_SHARED))
ROW(split_target_zero,
    tdp_split_huge_range(WIDE, 0, TS_PAGES_1G, 0, TDP_ALIAS_SHARED))
ROW(split_empty, tdp_split_huge_range(WIDE, 0x200, 0x200, 1, TDP_ALIAS_SHARED))
ROW(split_alias_zero, tdp_split_huge_range(WIDE, 0, TS_PAGES_1G, 1, 0))
ROW(recover_null,
    tdp_recover_huge_pages(NULL, 0, TS_PAGES_1G, 2, TDP_ALIAS_SHARED))
ROW(recover_misaligned,
    tdp_recover_huge_pages(WIDE, 1, TS_PAGES_1G, 2, TDP_ALIAS_SHARED))
ROW(recover_level_4k,
    tdp_recover_huge_pages(WIDE, 0, TS_PAGES_1G, 1, TDP_ALIAS_SHARED))
ROW(recover_level_512g,
    tdp_recover_huge_pages(WIDE, 0, TS_PAGES_1G, 4, TDP_ALIAS_SHARED))
ROW(recover_beyond,
    tdp_recover_huge_pages(WIDE, 0, TS_PLAIN_GFN_LIMIT + TS_PAGES_2M, 2,
			   TDP_ALIAS_SHARED))

static int destroy_nulls(struct bad_ctx *c)
{
	(void)c;
	tdp_mmu_destroy(NULL);
	tdp_vcpu_destroy(NULL);
	return 0;
}

struct bad_row {
	const char *name;
	int (*call)(struct bad_ctx *c);
	int want;
};

#define BAD(fn, err)         \
	{                    \
#fn, fn, err \
	}

static const struct bad_row bad_rows[] = {
	BAD(vcpu_create_null_mmu, -EINVAL),
	BAD(vcpu_create_null_out, -EINVAL),
	BAD(vcpu_topup_null, -EINVAL),
	BAD(map_null_vcpu, -EINVAL),
	BAD(map_null_fault, -EINVAL),
	BAD(map_gfn_at_width, -EINVAL),
	BAD(map_gfn_all_ones, -EINVAL),
	BAD(map_gfn_bit_63, -EINVAL),
	BAD(map_narrow_gfn_at_width, -EINVAL),
	BAD(map_narrow_gfn_above_width, -EINVAL),
	BAD(map_prot_zero, -EINVAL),
	BAD(map_prot_write_only, -EINVAL),
	BAD(map_prot_exec_only, -EINVAL),
	BAD(map_prot_write_exec, -EINVAL),
	BAD(map_prot_unknown_bit, -EINVAL),
	BAD(map_prot_high_bit, -EINVAL),
	BAD(map_level_zero, -EINVAL),
	BAD(map_level_negative, -EINVAL),
	BAD(map_level_512g, -EINVAL),
	BAD(map_level_huge, -EINVAL),
	BAD(map_bad_prot_on_mapped, -EINVAL),
	BAD(set_mmio_gen_null, -EINVAL),
	BAD(lookup_null_mmu, -EINVAL),
	BAD(lookup_null_spte, -EINVAL),
	BAD(lookup_null_level, -EINVAL),
	BAD(lookup_alias_both, -EINVAL),
	BAD(lookup_alias_zero, -EINVAL),
	BAD(lookup_alias_eight, -EINVAL),
	BAD(lookup_private_no_backend, -EINVAL),
	BAD(lookup_gfn_at_width, -EINVAL),
	BAD(lookup_narrow_at_width, -EINVAL),
	BAD(root_get_null_mmu, -EINVAL),
	BAD(root_get_mirror_no_backend, -EINVAL),
	BAD(root_get_bad_type, -EINVAL),
	BAD(root_get_negative_type, -EINVAL),
	BAD(root_get_null_out, -EINVAL),
	BAD(invalidate_roots_null, -EINVAL),
	BAD(invalidate_roots_alias_zero, -EINVAL),
	BAD(invalidate_roots_alias_eight, -EINVAL),
	BAD(invalidate_roots_alias_seven, -EINVAL),
	BAD(invalidate_roots_private_no_backend, 0),
	BAD(zap_invalidated_null, -EINVAL),
	BAD(zap_range_null, -EINVAL),
	BAD(zap_range_empty, -EINVAL),
	BAD(zap_range_backwards, -EINVAL),
	BAD(zap_range_end_beyond, -EINVAL),
	BAD(zap_range_all_beyond, -EINVAL),
	BAD(zap_range_end_max, -EINVAL),
	BAD(zap_range_narrow_beyond, -EINVAL),
	BAD(zap_range_alias_zero, -EINVAL),
	BAD(zap_range_alias_eight, -EINVAL),
	BAD(zap_range_alias_seven, -EINVAL),
	BAD(zap_range_private_no_backend, 0),
	BAD(zap_all_null, -EINVAL),
	BAD(zap_slot_deleted_null, -EINVAL),
	BAD(zap_host_unmap_null, -EINVAL),
	BAD(zap_to_shared_null, -EINVAL),
	BAD(zap_to_private_null, -EINVAL),
	BAD(zap_slot_deleted_empty, -EINVAL),
	BAD(zap_host_unmap_backwards, -EINVAL),
	BAD(zap_to_shared_beyond, -EINVAL),
	BAD(zap_to_private_beyond, -EINVAL),
	BAD(inval_begin_null, -EINVAL),
	BAD(inval_begin_empty, -EINVAL),
	BAD(inval_begin_backwards, -EINVAL),
	BAD(inval_begin_beyond, -EINVAL),
	BAD(inval_begin_narrow_beyond, -EINVAL),
	BAD(inval_end_null, -EINVAL),
	BAD(inval_end_without_begin, -EINVAL),
	BAD(inval_end_empty, -EINVAL),
	BAD(inval_end_beyond, -EINVAL),
	BAD(get_stats_null_mmu, -EINVAL),
	BAD(get_stats_null_out, -EINVAL),
	BAD(teardown_null, -EINVAL),
	BAD(teardown_live_vcpu, -EINVAL),
	BAD(teardown_narrow_live_vcpu, -EINVAL),
	BAD(load_root_null_vcpu, -EINVAL),
	BAD(load_root_private, -EINVAL),
	BAD(load_root_both, -EINVAL),
	BAD(wrprot_null, -EINVAL),
	BAD(wrprot_empty, -EINVAL),
	BAD(wrprot_beyond, -EINVAL),
	BAD(wrprot_alias_zero, -EINVAL),
	BAD(clear_dirty_null, -EINVAL),
	BAD(clear_dirty_backwards, -EINVAL),
	BAD(clear_dirty_alias_eight, -EINVAL),
	BAD(masked_null, -EINVAL),
	BAD(masked_misaligned, -EINVAL),
	BAD(masked_beyond, -EINVAL),
	BAD(masked_alias_zero, -EINVAL),
	BAD(harvest_null, -EINVAL),
	BAD(harvest_null_bitmap, -EINVAL),
	BAD(harvest_empty, -EINVAL),
	BAD(harvest_alias_eight, -EINVAL),
	BAD(age_null, -EINVAL),
	BAD(age_backwards, -EINVAL),
	BAD(age_beyond, -EINVAL),
	BAD(age_alias_zero, -EINVAL),
	BAD(fast_fix_null, -EINVAL),
	BAD(fast_fix_beyond, -EINVAL),
	BAD(split_null, -EINVAL),
	BAD(split_target_1g, -EINVAL),
	BAD(split_target_zero, -EINVAL),
	BAD(split_empty, -EINVAL),
	BAD(split_alias_zero, -EINVAL),
	BAD(recover_null, -EINVAL),
	BAD(recover_misaligned, -EINVAL),
	BAD(recover_level_4k, -EINVAL),
	BAD(recover_level_512g, -EINVAL),
	BAD(recover_beyond, -EINVAL),
	BAD(destroy_nulls, 0),
};

static void map_some(struct ts_env *env, const tdp_gfn_t *gfns, size_t n)
{
	/* The last GFN stays unmapped; the second maps huge. */
	for (size_t i = 0; i + 1 < n; i++)
		TS_MAP_FIXED(env->vcpu, gfns[i],
			     0x40000 + gfns[i] % TS_PAGES_2M,
			     TDP_PROT_READ | TDP_PROT_WRITE, i == 1 ? 2 : 1);
}

static int setup(void **state)
{
	struct bad_ctx *c = calloc(1, sizeof(*c));

	ts_env_init_ok(&c->wide, &(struct ts_env_opts){ .record = true });
	map_some(&c->wide, wide_gfns, 4);
	/* Narrow MMU: same but gfn_bits 30. */
	memset(&c->narrow, 0, sizeof(c->narrow));
	ts_flush_init(&c->narrow.log, true);
	c->narrow.cfg = ts_config(&c->narrow.log, NULL, NULL);
	c->narrow.cfg.gfn_bits = NARROW_BITS;
	assert_int_equal(tdp_mmu_create(&c->narrow.cfg, &c->narrow.mmu), 0);
	assert_int_equal(tdp_vcpu_create(c->narrow.mmu, &c->narrow.vcpu), 0);
	map_some(&c->narrow, narrow_gfns, 3);
	assert_true(ts_lookup(c->wide.mmu, TS_PAGES_2M + 9, TDP_ALIAS_SHARED)
			    .present);
	assert_int_equal(
		ts_lookup(c->wide.mmu, TS_PAGES_2M + 9, TDP_ALIAS_SHARED).level,
		2);

	assert_int_equal(
		tdp_root_get(c->wide.mmu, TDP_ROOT_DIRECT, &c->wide_root), 0);
	assert_int_equal(
		tdp_root_get(c->narrow.mmu, TDP_ROOT_DIRECT, &c->narrow_root),
		0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct bad_ctx *c = *state;

	tdp_root_put(c->wide.mmu, c->wide_root);
	tdp_root_put(c->narrow.mmu, c->narrow_root);
	ts_env_destroy(&c->wide);
	ts_env_destroy(&c->narrow);
	free(c);
	return 0;
}

static void test_bad_inputs(void **state)
{
	struct bad_ctx *c = *state;
	size_t nr = sizeof(bad_rows) / sizeof(bad_rows[0]);
	int failures = 0;

	assert_true(nr >= 30);
	for (size_t i = 0; i < nr; i++) {
		const struct bad_row *row = &bad_rows[i];
		struct snapshot before, after;
		const char *diff;
		int ret;

		/* Full caches: a fault's own top-up has nothing to allocate. */
		assert_int_equal(tdp_vcpu_topup(c->wide.vcpu), 0);
		assert_int_equal(tdp_vcpu_topup(c->narrow.vcpu), 0);
		take_snapshot(c, &before);
		ret = row->call(c);
		take_snapshot(c, &after);
		diff = snapshot_diff(&before, &after);
		if (ret != row->want) {
			print_error("row %s: returned %d, want %d\n", row->name,
				    ret, row->want);
			failures++;
		}
		if (diff) {
			print_error("row %s: changed %s\n", row->name, diff);
			failures++;
		}
	}
	if (failures)
		fail_msg("%d bad-input row checks failed", failures);
}

/* ---- rows that create an MMU ------------------------------------------ */

static int be_link(void *ctx, tdp_gfn_t gfn, int level, struct tdp_ext_table *t)
{
	(void)ctx;
	(void)gfn;
	(void)level;
	(void)t;
	return 0;
}

static int be_set(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	(void)ctx;
	(void)gfn;
	(void)level;
	(void)pfn;
	return 0;
}

static const struct tdp_private_backend good_backend = {
	.link_table = be_link,
	.set_leaf = be_set,
	.remove_leaf = be_set,
	.free_table = be_link,
};

static struct tdp_spte_format broken_format;

struct bad_config {
	const char *name;
	void (*apply)(struct tdp_mmu_config *cfg);
};

static void cfg_level_3(struct tdp_mmu_config *cfg)
{
	cfg->root_level = 3;
}
static void cfg_level_6(struct tdp_mmu_config *cfg)
{
	cfg->root_level = 6;
}
static void cfg_level_0(struct tdp_mmu_config *cfg)
{
	cfg->root_level = 0;
}
static void cfg_gfn_bits_37(struct tdp_mmu_config *cfg)
{
	cfg->gfn_bits = 37;
}
static void cfg_gfn_bits_64(struct tdp_mmu_config *cfg)
{
	cfg->gfn_bits = 64;
}
static void cfg_l5_gfn_bits_46(struct tdp_mmu_config *cfg)
{
	cfg->root_level = 5;
	cfg->gfn_bits = 46;
}
static void cfg_no_flush_range(struct tdp_mmu_config *cfg)
{
	cfg->host.flush_range = NULL;
}
static void cfg_no_flush_all(struct tdp_mmu_config *cfg)
{
	cfg->host.flush_all = NULL;
}
static void cfg_direct_bits_no_backend(struct tdp_mmu_config *cfg)
{
	cfg->direct_bits = 1ULL << 35;
}
static void cfg_backend_no_direct_bits(struct tdp_mmu_config *cfg)
{
	cfg->backend = &good_backend;
}
static void cfg_direct_bits_two(struct tdp_mmu_config *cfg)
{
	cfg->backend = &good_backend;
	cfg->direct_bits = (1ULL << 35) | (1ULL << 34);
}
static void cfg_direct_bits_beyond(struct tdp_mmu_config *cfg)
{
	cfg->backend = &good_backend;
	cfg->direct_bits = 1ULL << 36;
}
static void cfg_direct_bits_beyond_narrow(struct tdp_mmu_config *cfg)
{
	cfg->backend = &good_backend;
	cfg->gfn_bits = 30;
	cfg->direct_bits = 1ULL << 31;
}

static struct tdp_private_backend partial_backend;
static void cfg_backend_missing(struct tdp_mmu_config *cfg, int which)
{
	partial_backend = good_backend;
	if (which == 0)
		partial_backend.link_table = NULL;
	if (which == 1)
		partial_backend.set_leaf = NULL;
	if (which == 2)
		partial_backend.remove_leaf = NULL;
	if (which == 3)
		partial_backend.free_table = NULL;
	cfg->backend = &partial_backend;
	cfg->direct_bits = 1ULL << 35;
}
static void cfg_no_link(struct tdp_mmu_config *cfg)
{
	cfg_backend_missing(cfg, 0);
}
static void cfg_no_set_leaf(struct tdp_mmu_config *cfg)
{
	cfg_backend_missing(cfg, 1);
}
static void cfg_no_remove_leaf(struct tdp_mmu_config *cfg)
{
	cfg_backend_missing(cfg, 2);
}
static void cfg_no_free_table(struct tdp_mmu_config *cfg)
{
	cfg_backend_missing(cfg, 3);
}
static void cfg_bad_format(struct tdp_mmu_config *cfg)
{
	broken_format = tdp_spte_format_ept;
	broken_format.frozen = broken_format.nonpresent;
	cfg->format = &broken_format;
}
static void cfg_bad_format_pfn(struct tdp_mmu_config *cfg)
{
	broken_format = tdp_spte_format_ept;
	broken_format.pfn_mask |= broken_format.mmu_present;
	cfg->format = &broken_format;
}

static const struct bad_config bad_configs[] = {
	{ "root_level 3", cfg_level_3 },
	{ "root_level 6", cfg_level_6 },
	{ "root_level 0", cfg_level_0 },
	{ "gfn_bits 37 at level 4", cfg_gfn_bits_37 },
	{ "gfn_bits 64", cfg_gfn_bits_64 },
	{ "gfn_bits 46 at level 5", cfg_l5_gfn_bits_46 },
	{ "no flush_range", cfg_no_flush_range },
	{ "no flush_all", cfg_no_flush_all },
	{ "direct_bits without backend", cfg_direct_bits_no_backend },
	{ "backend without direct_bits", cfg_backend_no_direct_bits },
	{ "direct_bits of two bits", cfg_direct_bits_two },
	{ "direct_bits beyond width", cfg_direct_bits_beyond },
	{ "direct_bits beyond gfn_bits", cfg_direct_bits_beyond_narrow },
	{ "backend without link_table", cfg_no_link },
	{ "backend without set_leaf", cfg_no_set_leaf },
	{ "backend without remove_leaf", cfg_no_remove_leaf },
	{ "backend without free_table", cfg_no_free_table },
	{ "format: frozen == nonpresent", cfg_bad_format },
	{ "format: PFN overlaps present", cfg_bad_format_pfn },
};

static void test_bad_configs(void **state)
{
	struct ts_flush log;
	struct tdp_mmu *sentinel = (struct tdp_mmu *)(uintptr_t)0x5a5a5a50;
	int failures = 0;

	(void)state;
	ts_flush_init(&log, true);
	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]);
	     i++) {
		struct tdp_mmu_config cfg = ts_config(&log, NULL, NULL);
		struct tdp_mmu *out = sentinel;
		int ret;

		bad_configs[i].apply(&cfg);
		ret = tdp_mmu_create(&cfg, &out);
		if (ret != -EINVAL || out != sentinel) {
			print_error(
				"config \"%s\": returned %d (want -EINVAL), out %s\n",
				bad_configs[i].name, ret,
				out == sentinel ? "untouched" : "written");
			failures++;
			if (ret == 0)
				tdp_mmu_destroy(out);
		}
	}
	{
		struct tdp_mmu_config cfg = ts_config(&log, NULL, NULL);
		struct tdp_mmu *out = sentinel;

		assert_int_equal(tdp_mmu_create(NULL, &out), -EINVAL);
		assert_ptr_equal(out, sentinel);
		assert_int_equal(tdp_mmu_create(&cfg, NULL), -EINVAL);
		/* The valid baseline and a 5-level tree do work. */
		assert_int_equal(tdp_mmu_create(&cfg, &out), 0);
		tdp_mmu_destroy(out);
		cfg.root_level = 5;
		assert_int_equal(tdp_mmu_create(&cfg, &out), 0);
		tdp_mmu_destroy(out);
	}
	ts_flush_fini(&log);
	if (failures)
		fail_msg("%d bad configurations accepted or wrongly reported",
			 failures);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_inputs, setup,
						teardown),
		cmocka_unit_test(test_bad_configs),
	};

	return TS_RUN_GROUP("badinput", tests);
}
