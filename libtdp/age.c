/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lockless operations on the direct root: aging and the fast fix of write
 * faults.  No mmu_lock; the walk runs inside an RCU read-side section, so
 * the tables it reads stay allocated even if a zap unlinks them meanwhile
 * (their entries are then frozen, which these paths never touch).
 */
#include "iter.h"

/* The valid direct root, for a lockless walk; RCU read lock held. */
static struct tdp_root *lockless_direct_root(struct tdp_mmu *mmu)
{
	return tdp_rcu_dereference(mmu->valid_root[TDP_ROOT_DIRECT]);
}

int64_t tdp_age_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		      bool clear, enum tdp_alias alias)
{
	const struct tdp_spte_format *fmt;
	struct tdp_root *root;
	struct tdp_iter it;
	int64_t young = 0;
	int ret = tdp_check_direct_range(mmu, start, end, alias);

	if (ret)
		return ret;
	if (!(alias & TDP_ALIAS_SHARED))
		return 0;
	fmt = &mmu->fmt;

	tdp_rcu_read_lock();
	root = lockless_direct_root(mmu);
	if (root) {
		tdp_for_each_spte(it, root->table, fmt, tdp_direct_gfn(mmu, start),
				  tdp_direct_gfn(mmu, end)) {
			if (!tdp_spte_is_present(fmt, it.old_spte) ||
			    !tdp_spte_is_leaf(fmt, it.old_spte, it.level) ||
			    !(it.old_spte & fmt->accessed))
				continue;
			young++;
			/* Never unmaps: only the accessed bit changes. */
			if (clear)
				tdp_spte_update_leaf(&it, fmt->accessed, 0);
		}
	}
	tdp_rcu_read_unlock();
	return young;
}

int tdp_fast_fix(struct tdp_mmu *mmu, tdp_gfn_t fault_gfn, unsigned int prot)
{
	const struct tdp_spte_format *fmt;
	struct tdp_root *root;
	struct tdp_iter it;
	tdp_gfn_t gfn;
	int type, fixed = 0;

	if (!mmu || !(prot & TDP_PROT_READ) || (prot & ~TDP_PROT_RWX))
		return -EINVAL;
	if (tdp_fault_gfn_decode(mmu, fault_gfn, &gfn, &type))
		return -EINVAL;
	if (type != TDP_ROOT_DIRECT)
		return -EOPNOTSUPP;
	fixed = tdp_mmu_usable(mmu);
	if (fixed)
		return fixed;
	fmt = &mmu->fmt;

	tdp_rcu_read_lock();
	root = lockless_direct_root(mmu);
	if (root) {
		tdp_gfn_t tree_gfn = tdp_direct_gfn(mmu, gfn);

		tdp_for_each_spte(it, root->table, fmt, tree_gfn, tree_gfn + 1) {
			tdp_spte_t old = it.old_spte;

			if (!tdp_spte_is_present(fmt, old) ||
			    !tdp_spte_is_leaf(fmt, old, it.level))
				continue;
			if ((tdp_spte_prot(fmt, old) & prot) == prot) {
				fixed = 1; /* already allowed */
			} else if ((prot & ~tdp_spte_prot(fmt, old)) ==
					   TDP_PROT_WRITE &&
				   (old & fmt->mmu_writable)) {
				/*
				 * Write-protected for dirty logging only.  One
				 * attempt from the value checked: if anything
				 * changed it (a zap and a read-only remap, a
				 * split), the full fault path decides.
				 */
				fixed = tdp_spte_cmpxchg(it.sptep, &old,
							 old | fmt->writable);
			}
			break;
		}
	}
	tdp_rcu_read_unlock();
	return fixed;
}
