/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SPTE iterator: see iter.h for the walk order and restart rule. */
#include "iter.h"

static tdp_spte_t *spte_at(tdp_spte_t *table, tdp_gfn_t gfn, int level)
{
	return table + tdp_spte_index(gfn, level);
}

/* Point the iterator at the SPTE covering next_last_level_gfn, at the root. */
void tdp_iter_restart(struct tdp_iter *it)
{
	it->yielded = false;
	it->yielded_gfn = it->next_last_level_gfn;
	it->level = it->root_level;
	it->gfn = tdp_gfn_round_down(it->next_last_level_gfn, it->level);
	it->sptep = spte_at(it->pt_path[it->level], it->next_last_level_gfn,
			    it->level);
	tdp_iter_refresh(it);
	it->valid = true;
}

void tdp_iter_start(struct tdp_iter *it, struct tdp_table *root,
		    const struct tdp_spte_format *fmt, int min_level,
		    tdp_gfn_t gfn)
{
	TDP_ASSERT(min_level >= TDP_LEVEL_4K && min_level <= root->level);
	it->fmt = fmt;
	it->root_level = root->level;
	it->min_level = min_level;
	it->pt_path[root->level] = root->spt;
	it->next_last_level_gfn = gfn;
	tdp_iter_restart(it);
}

/*
 * Step into the table the current SPTE points at, if it is a present
 * non-leaf above min_level.  The SPTE is re-read first: the value read
 * before the caller's loop body may be stale.
 */
static bool try_step_down(struct tdp_iter *it)
{
	tdp_spte_t *child;

	if (it->level == it->min_level)
		return false;
	tdp_iter_refresh(it);
	if (!tdp_spte_is_present(it->fmt, it->old_spte) ||
	    tdp_spte_is_leaf(it->fmt, it->old_spte, it->level))
		return false;

	child = tdp_pfn_to_virt(tdp_spte_pfn(it->fmt, it->old_spte));
	it->level--;
	it->pt_path[it->level] = child;
	it->gfn = tdp_gfn_round_down(it->next_last_level_gfn, it->level);
	it->sptep = spte_at(child, it->next_last_level_gfn, it->level);
	tdp_iter_refresh(it);
	return true;
}

/* Move to the next SPTE of the same table, unless this one is the last. */
static bool try_step_side(struct tdp_iter *it)
{
	if (tdp_spte_index(it->gfn, it->level) == TDP_SPTES_PER_TABLE - 1)
		return false;
	it->gfn += tdp_level_pages(it->level);
	it->next_last_level_gfn = it->gfn;
	it->sptep++;
	tdp_iter_refresh(it);
	return true;
}

/* Return to the parent SPTE, unless at the root. */
static bool try_step_up(struct tdp_iter *it)
{
	if (it->level == it->root_level)
		return false;
	it->level++;
	it->gfn = tdp_gfn_round_down(it->gfn, it->level);
	it->sptep = spte_at(it->pt_path[it->level], it->gfn, it->level);
	tdp_iter_refresh(it);
	return true;
}

void tdp_iter_next(struct tdp_iter *it)
{
	if (it->yielded) {
		tdp_iter_restart(it);
		return;
	}
	if (try_step_down(it))
		return;
	do {
		if (try_step_side(it))
			return;
	} while (try_step_up(it));
	it->valid = false;
}

/* The slow half of tdp_iter_cond_resched(): needbreak said yes.  Always
 * yields, returns true. */
bool tdp_iter_yield(struct tdp_op *op, struct tdp_iter *it)
{
	struct tdp_mmu *mmu = op->mmu;
	bool forced = tdp_mmu_lock_yield_is_forced(&mmu->mmu_lock, op->shared);

	tdp_flush_and_reclaim(op);
	tdp_rcu_read_unlock();
	if (op->shared) {
		tdp_read_unlock(&mmu->mmu_lock);
		if (!forced)
			tdp_cond_resched();
		tdp_read_lock(&mmu->mmu_lock);
	} else {
		tdp_write_unlock(&mmu->mmu_lock);
		if (!forced)
			tdp_cond_resched();
		tdp_mmu_write_lock(mmu);
	}
	tdp_rcu_read_lock();

	it->yielded = true;
	it->yielded_gfn = it->next_last_level_gfn;
	return true;
}
