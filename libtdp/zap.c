/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps: leaves in a GFN range, whole roots, everything; the alias-targeted
 * helpers; and root selection by alias filter.
 */
#include "iter.h"

static bool range_ok(const struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	return start < end && end <= mmu->gfn_limit;
}

/*
 * Zap the leaves of op->root translating tree GFNs [start, end).
 * mmu_lock held for write.  Returns 0 or -EIO (dead).
 */
int tdp_zap_leafs_locked(struct tdp_op *op, tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	struct tdp_iter it;
	int ret = 0;

	tdp_lockdep_assert_held_write(&op->mmu->mmu_lock);
	tdp_rcu_read_lock();
	tdp_for_each_spte(it, op->root->table, fmt, start, end) {
		if (tdp_iter_cond_resched(op, &it))
			continue;
		if (!tdp_spte_is_present(fmt, it.old_spte) ||
		    !tdp_spte_is_leaf(fmt, it.old_spte, it.level))
			continue;
		ret = tdp_zap_spte_write_locked(op, &it);
		if (ret)
			break;
	}
	tdp_flush_issue(op);
	tdp_rcu_read_unlock();
	return ret;
}

/*
 * Zap one direct SPTE under the read lock, retrying while others change
 * it.  A frozen SPTE is left alone: the direct root is never frozen in
 * passing, only inside a table another thread unlinked (recovery, or a
 * zap of the same range) and is tearing down, where it stays frozen.
 */
static void zap_spte_shared(struct tdp_op *op, struct tdp_iter *it)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;

	while (tdp_spte_is_present(fmt, it->old_spte) &&
	       tdp_zap_spte_atomic(op, it))
		;
}

/*
 * Zap every SPTE of op->root, in passes from 4 KiB up to the root level so
 * that a walk can yield between small pieces of work; the pass at level L
 * zaps SPTEs at L (leaves, or tables already emptied by earlier passes).
 * mmu_lock held for read (direct root only) or write.
 */
int tdp_zap_root_locked(struct tdp_op *op)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	int root_level = op->root->table->level;
	tdp_gfn_t end = tdp_level_pages(root_level + 1);
	int ret = 0;

	TDP_ASSERT(!op->shared || !tdp_root_is_mirror(op->root));
	for (int zap_level = TDP_LEVEL_4K; zap_level <= root_level && !ret;
	     zap_level++) {
		struct tdp_iter it;

		tdp_rcu_read_lock();
		tdp_for_each_spte_min_level(it, op->root->table, fmt, zap_level,
					    0, end) {
			if (tdp_iter_cond_resched(op, &it))
				continue;
			if (!tdp_spte_is_present(fmt, it.old_spte) ||
			    it.level > zap_level)
				continue;
			if (op->shared) {
				zap_spte_shared(op, &it);
			} else {
				ret = tdp_zap_spte_write_locked(op, &it);
				if (ret)
					break;
			}
		}
		tdp_flush_issue(op);
		tdp_rcu_read_unlock();
	}
	return ret ? ret : op->err;
}

static int zap_range_roots(struct tdp_mmu *mmu, tdp_gfn_t start,
			   tdp_gfn_t end, unsigned int types)
{
	struct tdp_counters local = { 0 };
	struct tdp_root *root;
	int ret = 0;

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	for (root = tdp_root_next(mmu, NULL, types, false); root;
	     root = tdp_root_next(mmu, root, types, false)) {
		tdp_gfn_t bits = tdp_root_gfn_bits(mmu, root->type);
		struct tdp_op op = {
			.mmu = mmu,
			.root = root,
			.ctr = { .set = &local, .owner_only = true },
		};

		ret = tdp_zap_leafs_locked(&op, start + bits, end + bits);
		if (ret) {
			tdp_root_put(mmu, root);
			break;
		}
	}
	tdp_counters_fold(&mmu->ctr, &local);
	return ret;
}

int tdp_zap_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  enum tdp_alias alias)
{
	int ret;

	if (!mmu || !range_ok(mmu, start, end) || !alias ||
	    (alias & ~TDP_ALIAS_BOTH))
		return -EINVAL;

	tdp_write_lock(&mmu->mmu_lock);
	ret = tdp_mmu_usable(mmu);
	if (!ret)
		ret = zap_range_roots(mmu, start, end,
				      tdp_alias_to_root_types(mmu, alias));
	tdp_write_unlock(&mmu->mmu_lock);
	return ret;
}

int tdp_zap_all(struct tdp_mmu *mmu)
{
	struct tdp_counters local = { 0 };
	const unsigned int direct = 1U << TDP_ROOT_DIRECT;
	struct tdp_root *root;
	int ret;

	if (!mmu)
		return -EINVAL;
	tdp_write_lock(&mmu->mmu_lock);
	ret = tdp_mmu_usable(mmu);
	for (root = ret ? NULL : tdp_root_next(mmu, NULL, direct, false); root;
	     root = tdp_root_next(mmu, root, direct, false)) {
		struct tdp_op op = {
			.mmu = mmu,
			.root = root,
			.ctr = { .set = &local, .owner_only = true },
		};

		tdp_zap_root_locked(&op);
	}
	tdp_counters_fold(&mmu->ctr, &local);
	tdp_write_unlock(&mmu->mmu_lock);
	return ret;
}

int tdp_zap_slot_deleted(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	return tdp_zap_range(mmu, start, end, TDP_ALIAS_BOTH);
}

int tdp_zap_host_unmap(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	return tdp_zap_range(mmu, start, end, TDP_ALIAS_SHARED);
}

int tdp_zap_convert_to_shared(struct tdp_mmu *mmu, tdp_gfn_t start,
			      tdp_gfn_t end)
{
	return tdp_zap_range(mmu, start, end, TDP_ALIAS_PRIVATE);
}

int tdp_zap_convert_to_private(struct tdp_mmu *mmu, tdp_gfn_t start,
			       tdp_gfn_t end)
{
	return tdp_zap_range(mmu, start, end, TDP_ALIAS_SHARED);
}
