/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Eager splitting and recovery of huge pages on the direct root. */
#include "iter.h"

/* Fill @t with the smaller leaves that translate exactly as @huge. */
static void fill_split_table(const struct tdp_spte_format *fmt,
			     struct tdp_table *t, tdp_spte_t huge, int level)
{
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&t->spt[i], tdp_spte_make_small(fmt, huge, level, i));
}

/*
 * Split the huge leaves of one root in [start, end) (tree GFNs) down to
 * @target.  Pre-order: after a split the walk steps into the new table and
 * splits its leaves again if they are still above @target.  *spare carries
 * a table allocated with the lock dropped and not used yet.
 */
static int split_root(struct tdp_op *op, tdp_gfn_t start, tdp_gfn_t end,
		      int target, struct tdp_table **spare)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	struct tdp_iter it;
	int ret = 0;

	tdp_rcu_read_lock();
	tdp_for_each_spte_min_level(it, op->root->table, fmt, target + 1, start,
				    end) {
		if (tdp_iter_cond_resched(op, &it))
			continue;
		if (!tdp_spte_is_present(fmt, it.old_spte) ||
		    !tdp_spte_is_leaf(fmt, it.old_spte, it.level))
			continue;

		if (!*spare) {
			/* Never allocate under mmu_lock: drop it, then
			 * restart the walk from the root at this GFN. */
			tdp_flush_issue(op);
			tdp_rcu_read_unlock();
			tdp_read_unlock(&mmu->mmu_lock);
			*spare = tdp_table_alloc(mmu, false);
			tdp_read_lock(&mmu->mmu_lock);
			tdp_rcu_read_lock();
			if (!*spare) {
				ret = -ENOMEM;
				break;
			}
			it.yielded = true;
			continue;
		}

		tdp_table_init(*spare, it.gfn, it.level - 1, op->root->type);
		fill_split_table(fmt, *spare, it.old_spte, it.level);
		if (tdp_set_spte_atomic(op, &it,
					tdp_spte_make_nonleaf(
						fmt, tdp_virt_to_pfn((*spare)->spt)),
					*spare)) {
			/* Lost a race: look at this entry again. */
			it.yielded = true;
			continue;
		}
		*spare = NULL;
	}
	tdp_flush_issue(op);
	tdp_rcu_read_unlock();
	return ret;
}

int tdp_split_huge_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			 int target_level, enum tdp_alias alias)
{
	struct tdp_counters local = { 0 };
	const unsigned int direct = 1U << TDP_ROOT_DIRECT;
	struct tdp_table *spare = NULL;
	struct tdp_root *root;
	int ret;

	ret = tdp_check_direct_range(mmu, start, end, alias);
	if (ret)
		return ret;
	if (target_level != TDP_LEVEL_4K && target_level != TDP_LEVEL_2M)
		return -EINVAL;
	if (!(alias & TDP_ALIAS_SHARED))
		return 0;

	tdp_read_lock(&mmu->mmu_lock);
	ret = tdp_mmu_usable(mmu);
	tdp_for_each_root(mmu, root, direct, true, ret) {
		struct tdp_op op = tdp_op_on(mmu, root, true, &local);

		ret = split_root(&op, tdp_direct_gfn(mmu, start),
				 tdp_direct_gfn(mmu, end), target_level, &spare);
		if (ret) {
			tdp_root_put(mmu, root);
			break;
		}
	}
	tdp_counters_fold(&mmu->ctr, &local);
	tdp_read_unlock(&mmu->mmu_lock);
	/* Another thread split first: the table was never linked. */
	if (spare)
		tdp_table_free_now(spare);
	return ret;
}

/*
 * The huge leaf that can replace table @t (entries at level @t->level), or
 * 0 if its entries are not 512 present leaves mapping one aligned,
 * contiguous PFN range with the same attributes.
 */
static tdp_spte_t collapsible_leaf(const struct tdp_spte_format *fmt,
				   const struct tdp_table *t)
{
	const tdp_spte_t ad = fmt->accessed | fmt->dirty;
	tdp_spte_t first = tdp_spte_read(&t->spt[0]);
	tdp_spte_t same = first & ~(fmt->pfn_mask | ad);
	uint64_t step = tdp_level_pages(t->level);
	tdp_pfn_t pfn = tdp_spte_pfn(fmt, first);
	tdp_spte_t any_ad = 0;

	if (pfn & (tdp_level_pages(t->level + 1) - 1))
		return 0;
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t s = tdp_spte_read(&t->spt[i]);

		if (!tdp_spte_is_present(fmt, s) ||
		    !tdp_spte_is_leaf(fmt, s, t->level) ||
		    (s & ~(fmt->pfn_mask | ad)) != same ||
		    tdp_spte_pfn(fmt, s) != pfn + i * step)
			return 0;
		any_ad |= s & ad;
	}
	return (first & ~ad) | any_ad | fmt->leaf_size;
}

/*
 * Keep what happened to the small leaves between the check and the
 * replacement: a dirty bit hardware set goes into the huge leaf, and a
 * write permission one of them lost (a racing write-protect) is taken
 * from the huge leaf too.
 */
static void reconcile_huge_leaf(struct tdp_op *op, struct tdp_iter *it,
				const struct tdp_removed_summary *sum)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	tdp_spte_t clear = 0, set = 0;

	if ((sum->any & fmt->dirty) && !(it->old_spte & fmt->dirty))
		set |= fmt->dirty;
	if (!(sum->all & fmt->writable) && (it->old_spte & fmt->writable))
		clear |= fmt->writable;
	if (clear | set)
		tdp_spte_update_leaf(it, clear, set);
}

/* @it is a table entry at @level whose whole span lies in [start, end). */
static bool collapse_candidate(const struct tdp_spte_format *fmt,
			       const struct tdp_iter *it, int level,
			       tdp_gfn_t start, tdp_gfn_t end)
{
	return it->level == level && tdp_spte_is_present(fmt, it->old_spte) &&
	       !tdp_spte_is_leaf(fmt, it->old_spte, it->level) &&
	       it->gfn >= start && it->gfn + tdp_level_pages(level) <= end;
}

/* One pass at @level; RCU read lock held, the caller flushes. */
static int recover_root(struct tdp_op *op, tdp_gfn_t start, tdp_gfn_t end,
			int level)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	struct tdp_iter it;
	int made = 0;

	tdp_for_each_spte_min_level(it, op->root->table, fmt, level, start, end) {
		struct tdp_removed_summary sum = { .any = 0, .all = ~0ULL };
		struct tdp_table *child;
		tdp_spte_t huge;

		if (tdp_iter_cond_resched(op, &it))
			continue;
		if (!collapse_candidate(fmt, &it, level, start, end))
			continue;
		child = tdp_spte_child(mmu, it.old_spte);
		huge = collapsible_leaf(fmt, child);
		if (!huge)
			continue;
		if (tdp_set_spte_atomic(op, &it, huge, NULL))
			continue;
		tdp_handle_removed_table(op, child, &sum);
		reconcile_huge_leaf(op, &it, &sum);
		tdp_flush_add(op, it.gfn, tdp_level_pages(level));
		made++;
	}
	return made;
}

/*
 * Promote the private tables at 2 MiB inside [start, end) of the valid
 * mirror root that collapse into one leaf.  mmu_lock held for write; may
 * yield it.  Returns the number promoted.
 */
static int promote_root(struct tdp_op *op, tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	const int level = TDP_LEVEL_2M;
	struct tdp_iter it;
	int made = 0;

	tdp_rcu_read_lock();
	tdp_for_each_spte_min_level(it, op->root->table, fmt, level, start, end) {
		tdp_spte_t huge;

		if (tdp_iter_cond_resched(op, &it))
			continue;
		if (!collapse_candidate(fmt, &it, level, start, end))
			continue;
		huge = collapsible_leaf(fmt, tdp_spte_child(op->mmu, it.old_spte));
		if (huge && !tdp_promote_spte_write_locked(op, &it, huge))
			made++;
	}
	tdp_rcu_read_unlock();
	return made;
}

/* Private promotes over [start, end); the caller checked the range. */
static int promote_private_range(struct tdp_mmu *mmu, tdp_gfn_t start,
				 tdp_gfn_t end)
{
	const unsigned int mirror = 1U << TDP_ROOT_MIRROR;
	struct tdp_counters local = { 0 };
	struct tdp_root *root;
	int ret, made = 0;

	tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	/* Only the valid root: an invalidated one is being zapped. */
	root = ret ? NULL : tdp_root_first(mmu, mirror, true);
	if (root) {
		struct tdp_op op = tdp_op_on(mmu, root, false, &local);

		made = promote_root(&op, start, end);
		tdp_root_put(mmu, root);
	}
	tdp_counters_fold(&mmu->ctr, &local);
	tdp_write_unlock(&mmu->mmu_lock);
	return ret ? ret : made;
}

int tdp_promote_private(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	const uint64_t huge_2m = tdp_level_pages(TDP_LEVEL_2M);

	if (!tdp_gfn_range_ok(mmu, start, end) ||
	    (start & (huge_2m - 1)) || (end & (huge_2m - 1)))
		return -EINVAL;
	if (!mmu->has_mirror || !mmu->backend.promote_leaf)
		return -EOPNOTSUPP;
	return promote_private_range(mmu, start, end);
}

int tdp_recover_huge_pages(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
			   int max_level, enum tdp_alias alias)
{
	struct tdp_counters local = { 0 };
	const unsigned int direct = 1U << TDP_ROOT_DIRECT;
	const uint64_t huge_2m = tdp_level_pages(TDP_LEVEL_2M);
	struct tdp_root *root;
	int ret, made = 0, promoted = 0;
	/* The private alias, with a backend that promotes: its own pass. */
	bool promotes = mmu && mmu->has_mirror && mmu->backend.promote_leaf &&
			(alias & TDP_ALIAS_PRIVATE);

	/* Check the arguments as for the shared alias alone. */
	ret = tdp_check_direct_range(mmu, start, end,
				     promotes ? (alias & ~TDP_ALIAS_PRIVATE) |
							TDP_ALIAS_SHARED
					      : alias);
	if (ret)
		return ret;
	if ((start & (huge_2m - 1)) || (end & (huge_2m - 1)) ||
	    (max_level != TDP_LEVEL_2M && max_level != TDP_LEVEL_1G))
		return -EINVAL;
	if (promotes) {
		promoted = promote_private_range(mmu, start, end);
		if (promoted < 0)
			return promoted;
	}
	if (!(alias & TDP_ALIAS_SHARED))
		return promoted;

	tdp_read_lock(&mmu->mmu_lock);
	ret = tdp_mmu_usable(mmu);
	tdp_for_each_root(mmu, root, direct, true, ret) {
		struct tdp_op op = tdp_op_on(mmu, root, true, &local);

		/*
		 * Smallest first, so 2 MiB leaves made here can form 1 GiB.
		 * One RCU section and one flush (before leaving it, so no
		 * replaced table is freed while a TLB may still use it).
		 */
		tdp_rcu_read_lock();
		for (int level = TDP_LEVEL_2M; level <= max_level; level++)
			made += recover_root(&op, tdp_direct_gfn(mmu, start),
					     tdp_direct_gfn(mmu, end), level);
		tdp_flush_issue(&op);
		tdp_rcu_read_unlock();
	}
	tdp_counters_fold(&mmu->ctr, &local);
	tdp_read_unlock(&mmu->mmu_lock);
	return ret ? ret : promoted + made;
}
