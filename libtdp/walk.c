/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Leaf walks of the direct root shared by dirty logging: the walk over the
 * valid direct roots with yielding and flushing, and the compare-exchange
 * update of one leaf.  Their argument checks are in alias.c.
 */
#include "iter.h"

/*
 * tdp_spte_update_leaf() - clear then set bits of the present leaf at @it
 * with compare-exchange, retrying while hardware or another thread changes
 * it.  Returns true if the leaf changed; false if it already had the
 * value, or stopped being a present leaf (a concurrent removal froze it).
 */
bool tdp_spte_update_leaf(struct tdp_iter *it, tdp_spte_t clear,
			  tdp_spte_t set)
{
	const struct tdp_spte_format *fmt = it->fmt;

	for (;;) {
		tdp_spte_t old = it->old_spte;
		tdp_spte_t new_spte = (old & ~clear) | set;

		if (!tdp_spte_is_present(fmt, old) ||
		    !tdp_spte_is_leaf(fmt, old, it->level) || new_spte == old)
			return false;
		if (tdp_spte_cmpxchg(it->sptep, &it->old_spte, new_spte)) {
			it->old_spte = new_spte;
			return true;
		}
	}
}

/*
 * Call @visit for every present leaf of the valid direct roots in
 * [start, end) (unaliased), with mmu_lock held for read (@shared) or
 * write, yielding when contended.  The visitor adds what it changed to
 * op->flush; the walk flushes before every unlock, and with
 * @flush_always flushes the whole range even if nothing changed.  Returns
 * the sum of what the visitor returned, or an entry-check error.
 */
int64_t tdp_walk_direct_leaves(struct tdp_mmu *mmu, tdp_gfn_t start,
			       tdp_gfn_t end, enum tdp_alias alias, bool shared,
			       bool flush_always, tdp_leaf_visit_fn visit,
			       void *arg)
{
	struct tdp_counters local = { 0 };
	const unsigned int direct = 1U << TDP_ROOT_DIRECT;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	tdp_gfn_t tree_start = tdp_direct_gfn(mmu, start);
	tdp_gfn_t tree_end = tdp_direct_gfn(mmu, end);
	struct tdp_root *root;
	int64_t total = 0;
	int ret;

	if (shared)
		tdp_read_lock(&mmu->mmu_lock);
	else
		tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	tdp_for_each_root(mmu, root, direct, true,
			  ret || !(alias & TDP_ALIAS_SHARED)) {
		struct tdp_op op = tdp_op_on(mmu, root, shared, &local);
		struct tdp_iter it;

		tdp_rcu_read_lock();
		tdp_for_each_spte(it, root->table, fmt, tree_start, tree_end) {
			if (tdp_iter_cond_resched(&op, &it))
				continue;
			if (!tdp_spte_is_present(fmt, it.old_spte) ||
			    !tdp_spte_is_leaf(fmt, it.old_spte, it.level))
				continue;
			total += visit(&op, &it, arg);
		}
		if (flush_always)
			tdp_flush_add(&op, tree_start, end - start);
		tdp_flush_issue(&op);
		tdp_rcu_read_unlock();
	}
	tdp_counters_fold(&mmu->ctr, &local);
	if (shared)
		tdp_read_unlock(&mmu->mmu_lock);
	else
		tdp_write_unlock(&mmu->mmu_lock);
	return ret ? ret : total;
}
