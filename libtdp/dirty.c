/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Dirty logging on the direct root; see include/tdp/dirty.h. */
#include "iter.h"

static int64_t wrprot_leaf(struct tdp_op *op, struct tdp_iter *it, void *arg)
{
	(void)arg;
	if (!tdp_spte_update_leaf(it, op->mmu->fmt.writable, 0))
		return 0;
	tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	return 1;
}

int tdp_wrprot_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		     enum tdp_alias alias)
{
	int ret = tdp_check_direct_range(mmu, start, end, alias);
	int64_t n;

	if (ret)
		return ret;
	/*
	 * Always flush, under the lock: a TLB may hold a writable translation
	 * of a leaf this walk found already write-protected (changed by a
	 * racing zap and refault), and the write would then not be logged.
	 */
	n = tdp_walk_direct_leaves(mmu, start, end, alias, true, true,
				   wrprot_leaf, NULL);
	return (int)n;
}

static int64_t clear_dirty_leaf(struct tdp_op *op, struct tdp_iter *it,
				void *arg)
{
	(void)arg;
	if (!tdp_spte_update_leaf(it, op->mmu->fmt.dirty, 0))
		return 0;
	tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	return 1;
}

int tdp_clear_dirty_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			  enum tdp_alias alias)
{
	int ret = tdp_check_direct_range(mmu, start, end, alias);

	if (ret)
		return ret;
	return (int)tdp_walk_direct_leaves(mmu, start, end, alias, true, false,
					   clear_dirty_leaf, NULL);
}

struct masked_arg {
	tdp_gfn_t base; /* tree GFN of bit 0 */
	uint64_t mask;
	tdp_spte_t clear;
};

static int64_t clear_masked_leaf(struct tdp_op *op, struct tdp_iter *it,
				 void *arg)
{
	struct masked_arg *m = arg;

	if (it->level != TDP_LEVEL_4K || !(m->mask & (1ULL << (it->gfn - m->base))))
		return 0;
	if (!tdp_spte_update_leaf(it, m->clear, 0))
		return 0;
	tdp_flush_add(op, it->gfn, 1);
	return 1;
}

int tdp_clear_dirty_masked(struct tdp_mmu *mmu, tdp_gfn_t base, uint64_t mask,
			   bool wrprot, enum tdp_alias alias)
{
	struct masked_arg m;
	int ret;

	if (!mmu || (base & 63) || base > mmu->gfn_limit - 64)
		return -EINVAL;
	ret = tdp_check_direct_range(mmu, base, base + 64, alias);
	if (ret)
		return ret;
	m = (struct masked_arg){
		.base = tdp_direct_gfn(mmu, base),
		.mask = mask,
		.clear = wrprot ? mmu->fmt.writable : mmu->fmt.dirty,
	};
	return (int)tdp_walk_direct_leaves(mmu, base, base + 64, alias, false,
					   false, clear_masked_leaf, &m);
}

struct harvest_arg {
	tdp_gfn_t start, end; /* tree GFNs */
	uint64_t *bitmap;
};

static int64_t harvest_leaf(struct tdp_op *op, struct tdp_iter *it, void *arg)
{
	struct harvest_arg *h = arg;
	tdp_gfn_t first, last;
	int64_t n = 0;

	if (!(it->old_spte & op->mmu->fmt.dirty))
		return 0;
	first = it->gfn > h->start ? it->gfn : h->start;
	last = it->gfn + tdp_level_pages(it->level);
	last = last < h->end ? last : h->end;
	/*
	 * A huge leaf that sticks out of the range is reported for the part
	 * inside and keeps its dirty bit, so the rest is reported by the
	 * harvest that covers it.
	 */
	if (first == it->gfn && last == it->gfn + tdp_level_pages(it->level)) {
		if (!tdp_spte_update_leaf(it, op->mmu->fmt.dirty, 0))
			return 0;
		tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	}
	for (tdp_gfn_t g = first; g < last; g++) {
		uint64_t *word = &h->bitmap[(g - h->start) / 64];
		uint64_t bit = 1ULL << ((g - h->start) % 64);

		n += !(*word & bit);
		*word |= bit;
	}
	return n;
}

int64_t tdp_harvest_dirty(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			  uint64_t *bitmap, enum tdp_alias alias)
{
	struct harvest_arg h;
	int ret = tdp_check_direct_range(mmu, start, end, alias);

	if (ret)
		return ret;
	if (!bitmap)
		return -EINVAL;
	h = (struct harvest_arg){
		.start = tdp_direct_gfn(mmu, start),
		.end = tdp_direct_gfn(mmu, end),
		.bitmap = bitmap,
	};
	return tdp_walk_direct_leaves(mmu, start, end, alias, true, false,
				      harvest_leaf, &h);
}
