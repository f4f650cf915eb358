/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lockless lookup of the SPTE that translates a GFN (RCU only). */
#include "internal.h"

int tdp_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
	       tdp_spte_t *spte, int *level)
{
	const struct tdp_spte_format *fmt;
	struct tdp_root *root;
	tdp_gfn_t tree_gfn;
	int type, lvl, ret;

	if (!spte || !level || !tdp_gfn_range_ok(mmu, gfn, gfn + 1) ||
	    tdp_alias_root_type(mmu, alias, &type))
		return -EINVAL;
	ret = tdp_mmu_usable(mmu);
	if (ret)
		return ret;

	fmt = &mmu->fmt;
	tree_gfn = gfn + tdp_root_gfn_bits(mmu, type);
	lvl = mmu->cfg.root_level;
	*spte = fmt->nonpresent;

	tdp_rcu_read_lock();
	/* Roots are freed after a grace period: safe to load here. */
	root = tdp_rcu_dereference(mmu->valid_root[type]);
	if (root) {
		const tdp_spte_t *table = root->table->spt;

		for (;;) {
			tdp_spte_t s = tdp_spte_read_acquire(
				&table[tdp_spte_index(tree_gfn, lvl)]);

			*spte = s;
			if (!tdp_spte_is_present(fmt, s) ||
			    tdp_spte_is_leaf(fmt, s, lvl))
				break;
			table = tdp_pfn_to_virt(tdp_spte_pfn(fmt, s));
			lvl--;
		}
	}
	tdp_rcu_read_unlock();
	*level = lvl;
	return 0;
}

void tdp_walk_begin(void)
{
	tdp_walk_enter();
}

void tdp_walk_end(void)
{
	tdp_walk_exit();
}

const tdp_spte_t *tdp_pfn_to_table(tdp_pfn_t pfn)
{
	return tdp_pfn_to_virt(pfn);
}
