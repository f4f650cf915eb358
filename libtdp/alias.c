/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Aliases and GFNs: which tree an alias or a faulting GFN selects, and the
 * argument checks of GFNs and ranges that every entry point shares.  The
 * direct tree indexes a GFN with the MMU's direct_bits added
 * (tdp_tree_gfn()); the mirror tree indexes it as it is.
 */
#include "internal.h"

/* True for a non-empty [start, end) below the MMU's GFN limit. */
bool tdp_gfn_range_ok(const struct tdp_mmu *mmu, tdp_gfn_t start,
		      tdp_gfn_t end)
{
	return mmu && start < end && end <= mmu->gfn_limit;
}

/* True for a non-empty set of the defined alias bits. */
bool tdp_alias_ok(enum tdp_alias alias)
{
	return alias && !(alias & ~TDP_ALIAS_BOTH);
}

unsigned int tdp_alias_to_root_types(const struct tdp_mmu *mmu,
				     enum tdp_alias alias)
{
	unsigned int types = 0;

	if (alias & TDP_ALIAS_SHARED)
		types |= 1U << TDP_ROOT_DIRECT;
	if ((alias & TDP_ALIAS_PRIVATE) && mmu->has_mirror)
		types |= 1U << TDP_ROOT_MIRROR;
	return types;
}

/*
 * The one tree a single alias names (lookups): 0 with *@type set, or
 * -EINVAL for BOTH, an unknown value, or the private alias of a VM
 * without a mirror.
 */
int tdp_alias_root_type(const struct tdp_mmu *mmu, enum tdp_alias alias,
			int *type)
{
	if (alias == TDP_ALIAS_PRIVATE && mmu->has_mirror)
		*type = TDP_ROOT_MIRROR;
	else if (alias == TDP_ALIAS_SHARED)
		*type = TDP_ROOT_DIRECT;
	else
		return -EINVAL;
	return 0;
}

/*
 * Decode a faulting GFN, which carries the shared bit: the GFN without it
 * in *@gfn and the tree it selects in *@type (the shared bit picks the
 * direct tree; a plain VM has only that one).  -EINVAL when a bit other
 * than the shared bit lies at or above the GFN limit.
 */
int tdp_fault_gfn_decode(const struct tdp_mmu *mmu, tdp_gfn_t fault_gfn,
			 tdp_gfn_t *gfn, int *type)
{
	tdp_gfn_t bits = mmu->cfg.direct_bits;

	*gfn = fault_gfn & ~bits;
	if (*gfn >= mmu->gfn_limit || (fault_gfn & ~(bits | (mmu->gfn_limit - 1))))
		return -EINVAL;
	*type = mmu->has_mirror && !(fault_gfn & bits) ? TDP_ROOT_MIRROR
						       : TDP_ROOT_DIRECT;
	return 0;
}

/*
 * Checks shared by direct-root-only range operations.  The private alias
 * on an MMU with a backend is refused: the mirror does not support them.
 */
int tdp_check_direct_range(const struct tdp_mmu *mmu, tdp_gfn_t start,
			   tdp_gfn_t end, enum tdp_alias alias)
{
	if (!tdp_gfn_range_ok(mmu, start, end) || !tdp_alias_ok(alias))
		return -EINVAL;
	if ((alias & TDP_ALIAS_PRIVATE) && mmu->has_mirror)
		return -EOPNOTSUPP;
	return tdp_mmu_usable(mmu);
}
