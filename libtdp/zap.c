/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps: leaves in a GFN range, whole roots, everything; the alias-targeted
 * helpers; and the zap of invalidated roots, exactly once each.
 */
#include "iter.h"

/*
 * Demotes of private huge leaves that a range zap covers only partly.
 * [start, end) is the zap range; spare is a mirror table allocated with
 * mmu_lock dropped and not linked yet (freed by the caller after the
 * unlock); busy counts demote_leaf's busy answers in a row.
 */
struct zap_demote {
	tdp_gfn_t start, end;
	struct tdp_table *spare;
	int busy;
};

/* The present leaf at @it maps GFNs on both sides of an end of the range. */
static bool leaf_partly_covered(const struct tdp_iter *it,
				const struct zap_demote *zd)
{
	return it->gfn < zd->start ||
	       it->gfn + tdp_level_pages(it->level) > zd->end;
}

/*
 * Drop mmu_lock and RCU, allocate the spare table if @alloc, and take them
 * again; the walk at @it restarts from the root at its first unfinished
 * GFN.  Used only before the walk changes anything at @it.
 */
static void zap_relock(struct tdp_op *op, struct tdp_iter *it,
		       struct zap_demote *zd, bool alloc)
{
	struct tdp_mmu *mmu = op->mmu;

	tdp_flush_and_reclaim(op);
	tdp_rcu_read_unlock();
	tdp_write_unlock(&mmu->mmu_lock);
	if (alloc)
		zd->spare = tdp_table_alloc(mmu, true);
	else
		tdp_cond_resched();
	tdp_mmu_write_lock(mmu);
	tdp_rcu_read_lock();
	it->yielded = true;
}

/*
 * Demote the private huge leaf at @it, which the zap covers partly.
 * Returns 0 when it was demoted (the walk steps down into the new
 * table); 1 when the walk must restart from the root (the lock was
 * dropped to allocate, or to let a busy backend finish); -ENOMEM,
 * -EBUSY after TDP_DEMOTE_BUSY_TRIES busy answers, a hard error of
 * demote_leaf, or -EIO, with the leaf unchanged.
 */
static int demote_partial_leaf(struct tdp_op *op, struct tdp_iter *it,
			       struct zap_demote *zd)
{
	int ret;

	if (!zd->spare) {
		zap_relock(op, it, zd, true);
		return zd->spare ? 1 : -ENOMEM;
	}
	ret = tdp_demote_spte_write_locked(op, it, zd->spare);
	if (!ret) {
		zd->spare = NULL;
		zd->busy = 0;
		return 0;
	}
	if (ret != -EBUSY || ++zd->busy >= TDP_DEMOTE_BUSY_TRIES)
		return ret;
	zap_relock(op, it, zd, false);
	return 1;
}

/* Whether the walk of op->root must demote instead of zapping whole. */
static bool zap_demotes(const struct tdp_op *op)
{
	return tdp_root_is_mirror(op->root) && op->mmu->backend.demote_leaf;
}

/*
 * Demote every private huge leaf of op->root that covers tree GFN @gfn
 * (an end of the range) and is covered only partly, from the top down,
 * until the leaf that maps @gfn lies inside the range.  Changes no
 * mapping.  mmu_lock held for write.  Returns 0 or demote_partial_leaf()'s
 * error.
 */
static int demote_range_end(struct tdp_op *op, tdp_gfn_t gfn,
			    struct zap_demote *zd)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	struct tdp_iter it;
	int ret = 0;

	tdp_rcu_read_lock();
	tdp_for_each_spte(it, op->root->table, fmt, gfn, gfn + 1) {
		if (!tdp_spte_is_present(fmt, it.old_spte) ||
		    !tdp_spte_is_leaf(fmt, it.old_spte, it.level) ||
		    it.level == TDP_LEVEL_4K || !leaf_partly_covered(&it, zd))
			continue;
		ret = demote_partial_leaf(op, &it, zd);
		if (ret < 0)
			break;
	}
	tdp_rcu_read_unlock();
	return ret < 0 ? ret : 0;
}

/*
 * Zap the leaves of op->root translating tree GFNs [start, end).
 * mmu_lock held for write.  On the direct root a table whose whole span
 * lies in the range is unlinked with one exchange and emptied after the
 * flush (tdp_unlink_table_write_locked()); the mirror root removes leaf
 * by leaf through the backend, children before parents, and keeps its
 * tables.  On a mirror root whose backend demotes, a huge leaf covered
 * only partly is demoted first and only its covered leaves are zapped
 * (the ends were demoted before the walk; one met here was mapped while
 * the walk yielded).  Returns 0, -EIO (dead), or demote_partial_leaf()'s
 * error.
 */
static int zap_leafs_locked(struct tdp_op *op, tdp_gfn_t start, tdp_gfn_t end,
			    struct zap_demote *zd)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	bool demotes = zap_demotes(op);
	bool unlinks = !tdp_root_is_mirror(op->root);
	struct tdp_iter it;
	int ret = 0;

	tdp_lockdep_assert_held_write(&op->mmu->mmu_lock);
	tdp_rcu_read_lock();
	tdp_for_each_spte(it, op->root->table, fmt, start, end) {
		if (tdp_iter_cond_resched(op, &it))
			continue;
		if (!tdp_spte_is_present(fmt, it.old_spte))
			continue;
		if (!tdp_spte_is_leaf(fmt, it.old_spte, it.level)) {
			if (unlinks && it.gfn >= start &&
			    it.gfn + tdp_level_pages(it.level) <= end)
				tdp_unlink_table_write_locked(op, &it);
			continue;
		}
		if (demotes && it.level > TDP_LEVEL_4K &&
		    leaf_partly_covered(&it, zd)) {
			ret = demote_partial_leaf(op, &it, zd);
			if (ret < 0)
				break;
			ret = 0;
			continue;
		}
		ret = tdp_zap_spte_write_locked(op, &it);
		if (ret)
			break;
	}
	tdp_flush_and_reclaim(op);
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

/*
 * Before a private range zap removes anything: demote the private huge
 * leaves that cover an end of the range only partly, in every mirror root
 * @types selects, so that a failure leaves every mapping in place.
 */
static int demote_range_ends(struct tdp_mmu *mmu, unsigned int types,
			     struct tdp_counters *local, struct zap_demote *zd)
{
	const unsigned int mirror = 1U << TDP_ROOT_MIRROR;
	struct tdp_root *root;
	int ret = 0;

	if (!(types & mirror) || !mmu->backend.demote_leaf)
		return 0;
	tdp_for_each_root(mmu, root, mirror, false, false) {
		struct tdp_op op = tdp_op_on(mmu, root, false, local);

		ret = demote_range_end(&op, zd->start, zd);
		if (!ret)
			ret = demote_range_end(&op, zd->end - 1, zd);
		if (ret) {
			tdp_root_put(mmu, root);
			break;
		}
	}
	return ret;
}

/*
 * The zap of tdp_zap_range(), with mmu_lock held for write.  Returns a
 * spare table the demotes did not use in *spare, for the caller to free
 * once it dropped the lock.
 */
static int zap_range_roots(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			   unsigned int types, struct tdp_table **spare)
{
	struct tdp_counters local = { 0 };
	struct zap_demote zd = { .start = start, .end = end };
	struct tdp_root *root;
	int ret;

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	/* Private GFNs are unaliased: the demote range needs no bits. */
	ret = demote_range_ends(mmu, types, &local, &zd);
	tdp_for_each_root(mmu, root, types, false, ret) {
		tdp_gfn_t bits = tdp_root_gfn_bits(mmu, root->type);
		struct tdp_op op = tdp_op_on(mmu, root, false, &local);

		ret = zap_leafs_locked(&op, start + bits, end + bits, &zd);
		if (ret) {
			tdp_root_put(mmu, root);
			break;
		}
	}
	tdp_counters_fold(&mmu->ctr, &local);
	*spare = zd.spare;
	return ret;
}

int tdp_zap_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  enum tdp_alias alias)
{
	struct tdp_table *spare = NULL;
	int ret;

	if (!tdp_gfn_range_ok(mmu, start, end) || !tdp_alias_ok(alias))
		return -EINVAL;

	tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	if (!ret)
		ret = zap_range_roots(mmu, start, end,
				      tdp_alias_to_root_types(mmu, alias),
				      &spare);
	tdp_write_unlock(&mmu->mmu_lock);
	/* Allocated for a demote that another zap or a failure made moot. */
	if (spare)
		tdp_table_free_now(spare);
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
	tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	tdp_for_each_root(mmu, root, direct, false, ret) {
		struct tdp_op op = tdp_op_on(mmu, root, false, &local);

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

/* ---- zap of invalidated roots ------------------------------------------ */

/*
 * Zap one invalidated root the caller claimed, with the lock mode the tree
 * allows: the direct root under the read lock with atomic zaps, the mirror
 * root (teardown only) under the write lock.
 */
static int zap_claimed_root(struct tdp_mmu *mmu, struct tdp_root *root)
{
	struct tdp_counters local = { 0 };
	struct tdp_op op = tdp_op_on(mmu, root, !tdp_root_is_mirror(root),
				     &local);
	int ret;

	if (op.shared)
		tdp_read_lock(&mmu->mmu_lock);
	else
		tdp_mmu_write_lock(mmu);
	ret = tdp_zap_root_locked(&op);
	if (op.shared)
		tdp_read_unlock(&mmu->mmu_lock);
	else
		tdp_write_unlock(&mmu->mmu_lock);
	tdp_counters_fold(&mmu->ctr, &local);
	return ret;
}

/*
 * Zap every root scheduled for it that no one claimed yet.  The caller is
 * counted in mmu->root_zappers, so teardown waits for what it claims.
 */
static int zap_invalidated_roots(struct tdp_mmu *mmu)
{
	const unsigned int all = (1U << TDP_NR_ROOT_TYPES) - 1;
	struct tdp_root *root;
	int ret;

	tdp_for_each_root_unlocked(mmu, root, all, false) {
		/* Exactly once: the claim is an atomic exchange. */
		if (!tdp_atomic_xchg(&root->scheduled_zap, 0))
			continue;
		ret = zap_claimed_root(mmu, root);
		if (ret) {
			tdp_root_put(mmu, root);
			return ret;
		}
		/* The MMU's reference, kept until now so that range zaps
		 * still found the root while it was being zapped. */
		tdp_root_put(mmu, root);
	}
	return 0;
}

/*
 * Count a caller of tdp_mmu_zap_invalidated_roots() in mmu->root_zappers,
 * unless the MMU is dead or torn down.  The check and the count are one
 * step under roots_mutex, which teardown takes after it set torn_down:
 * a caller either sees torn_down or is seen by teardown's wait.
 */
static int root_zappers_enter(struct tdp_mmu *mmu)
{
	int ret;

	tdp_mutex_lock(&mmu->roots_mutex);
	ret = tdp_mmu_usable(mmu);
	if (!ret)
		tdp_atomic_add(&mmu->root_zappers, 1);
	tdp_mutex_unlock(&mmu->roots_mutex);
	return ret;
}

int tdp_mmu_zap_invalidated_roots(struct tdp_mmu *mmu)
{
	int ret;

	if (!mmu)
		return -EINVAL;
	ret = root_zappers_enter(mmu);
	if (ret)
		return ret;
	ret = zap_invalidated_roots(mmu);
	/*
	 * The last access to the MMU: once the count is zero, teardown
	 * returns and the MMU may be freed.
	 */
	tdp_atomic_add(&mmu->root_zappers, -1);
	return ret;
}
