/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SPTE format: the EPT layout, its creation-time check, and encoders. */
#include "internal.h"

/* Engine-private names: the kernel has its own BIT() and GENMASK(). */
#define SPTE_BIT(n) (1ULL << (n))
#define SPTE_MASK(h, l) ((~0ULL >> (63 - (h))) & ~((1ULL << (l)) - 1))

/* One aligned line per field, so the layout reads as a table. */
/* clang-format off */
const struct tdp_spte_format tdp_spte_format_ept = {
	.readable      = SPTE_BIT(0),
	.writable      = SPTE_BIT(1),
	.executable    = SPTE_BIT(2),
	.memtype_wb    = 6ULL << 3,
	.leaf_size     = SPTE_BIT(7),
	.accessed      = SPTE_BIT(8),
	.dirty         = SPTE_BIT(9),
	.mmu_present   = SPTE_BIT(11),
	.pfn_mask      = SPTE_MASK(51, 12),
	.host_writable = SPTE_BIT(57),
	.mmu_writable  = SPTE_BIT(58),
	.suppress_ve   = SPTE_BIT(63),
	.nonpresent    = SPTE_BIT(63),
	/* Non-present, no RWX, no PFN, not MMU-present: bits 5, 7, 8, 10. */
	.frozen        = SPTE_BIT(63) | 0x5a0,
	/* EPT misconfiguration: write+execute without read. */
	.mmio_mask     = SPTE_MASK(2, 0) | SPTE_BIT(11) | SPTE_BIT(63),
	.mmio_value    = SPTE_BIT(1) | SPTE_BIT(2) | SPTE_BIT(63),
	.mmio_gen_low  = SPTE_MASK(10, 3),
	.mmio_gen_high = SPTE_MASK(62, 52),
};
/* clang-format on */

int tdp_spte_format_check(const struct tdp_spte_format *fmt)
{
	uint64_t rwx, gen;

	if (!fmt)
		return -EINVAL;
	rwx = fmt->readable | fmt->writable | fmt->executable;
	gen = fmt->mmio_gen_low | fmt->mmio_gen_high;

	/* Single-bit flags. */
	if (tdp_hweight64(fmt->readable) != 1 || tdp_hweight64(fmt->writable) != 1 ||
	    tdp_hweight64(fmt->executable) != 1 || tdp_hweight64(fmt->leaf_size) != 1 ||
	    tdp_hweight64(fmt->accessed) != 1 || tdp_hweight64(fmt->dirty) != 1 ||
	    tdp_hweight64(fmt->mmu_present) != 1 ||
	    tdp_hweight64(fmt->host_writable) != 1 ||
	    tdp_hweight64(fmt->mmu_writable) != 1)
		return -EINVAL;
	if (tdp_hweight64(fmt->pfn_mask) < 20 || (fmt->pfn_mask & SPTE_MASK(11, 0)))
		return -EINVAL;
	/* Software and hardware fields must not share bits. */
	if (fmt->pfn_mask & (rwx | fmt->leaf_size | fmt->accessed |
			     fmt->dirty | fmt->mmu_present |
			     fmt->host_writable | fmt->mmu_writable))
		return -EINVAL;

	/* The non-present value is neither present nor readable. */
	if ((fmt->nonpresent & (fmt->mmu_present | rwx | fmt->pfn_mask)))
		return -EINVAL;

	/* The frozen value: non-present, no PFN, no RWX, never MMU-present,
	 * distinct from the non-present value, never an MMIO SPTE. */
	if (fmt->frozen & (rwx | fmt->pfn_mask | fmt->mmu_present))
		return -EINVAL;
	if (fmt->frozen == fmt->nonpresent)
		return -EINVAL;
	if ((fmt->frozen & fmt->mmio_mask) == fmt->mmio_value)
		return -EINVAL;

	/* MMIO SPTEs: not MMU-present, not the frozen or non-present value
	 * whatever the generation and GFN, and the generation has room. */
	if (!(fmt->mmio_mask & fmt->mmu_present) ||
	    (fmt->mmio_value & fmt->mmu_present))
		return -EINVAL;
	if ((fmt->mmio_value & ~fmt->mmio_mask) || !(fmt->mmio_value & rwx))
		return -EINVAL;
	if ((fmt->nonpresent & fmt->mmio_mask) == fmt->mmio_value)
		return -EINVAL;
	if (tdp_hweight64(gen) < TDP_MMIO_GEN_BITS ||
	    (gen & (fmt->mmio_mask | fmt->pfn_mask)) ||
	    (fmt->mmio_gen_low & fmt->mmio_gen_high))
		return -EINVAL;
	return 0;
}

unsigned int tdp_spte_prot(const struct tdp_spte_format *fmt, tdp_spte_t spte)
{
	unsigned int prot = 0;

	if (spte & fmt->readable)
		prot |= TDP_PROT_READ;
	if (spte & fmt->writable)
		prot |= TDP_PROT_WRITE;
	if (spte & fmt->executable)
		prot |= TDP_PROT_EXEC;
	return prot;
}

tdp_spte_t tdp_spte_make_leaf(const struct tdp_spte_format *fmt, tdp_pfn_t pfn,
			      int level, unsigned int prot)
{
	tdp_spte_t spte = fmt->mmu_present | fmt->suppress_ve |
			  fmt->memtype_wb | fmt->accessed;

	spte |= (pfn << TDP_PAGE_SHIFT) & fmt->pfn_mask;
	if (level > TDP_LEVEL_4K)
		spte |= fmt->leaf_size;
	if (prot & TDP_PROT_READ)
		spte |= fmt->readable;
	if (prot & TDP_PROT_WRITE)
		spte |= fmt->writable | fmt->host_writable | fmt->mmu_writable;
	if (prot & TDP_PROT_EXEC)
		spte |= fmt->executable;
	return spte;
}

tdp_spte_t tdp_spte_make_nonleaf(const struct tdp_spte_format *fmt,
				 tdp_pfn_t pfn)
{
	return fmt->mmu_present | fmt->suppress_ve | fmt->readable |
	       fmt->writable | fmt->executable | fmt->accessed |
	       ((pfn << TDP_PAGE_SHIFT) & fmt->pfn_mask);
}

/* Spread the bits of @v over the set bits of @mask, low to high. */
static uint64_t deposit(uint64_t v, uint64_t mask)
{
	uint64_t out = 0;

	for (uint64_t bit = 1; mask; bit <<= 1) {
		uint64_t low = mask & -mask;

		if (v & bit)
			out |= low;
		mask &= mask - 1;
	}
	return out;
}

/* Gather the bits of @spte under @mask into the low bits of the result. */
static uint64_t extract(uint64_t spte, uint64_t mask)
{
	uint64_t out = 0;

	for (uint64_t bit = 1; mask; bit <<= 1) {
		uint64_t low = mask & -mask;

		if (spte & low)
			out |= bit;
		mask &= mask - 1;
	}
	return out;
}

tdp_spte_t tdp_spte_make_mmio(const struct tdp_spte_format *fmt, tdp_gfn_t gfn,
			      uint32_t gen)
{
	int low_bits = tdp_hweight64(fmt->mmio_gen_low);

	gen &= TDP_MMIO_GEN_MASK;
	return fmt->mmio_value | ((gfn << TDP_PAGE_SHIFT) & fmt->pfn_mask) |
	       deposit(gen, fmt->mmio_gen_low) |
	       deposit(gen >> low_bits, fmt->mmio_gen_high);
}

uint32_t tdp_spte_mmio_gen(const struct tdp_spte_format *fmt, tdp_spte_t spte)
{
	int low_bits = tdp_hweight64(fmt->mmio_gen_low);

	return (uint32_t)((extract(spte, fmt->mmio_gen_low) |
			   extract(spte, fmt->mmio_gen_high) << low_bits) &
			  TDP_MMIO_GEN_MASK);
}

tdp_gfn_t tdp_spte_mmio_gfn(const struct tdp_spte_format *fmt, tdp_spte_t spte)
{
	return (spte & fmt->pfn_mask) >> TDP_PAGE_SHIFT;
}

/*
 * Bits hardware may set, or a lockless path may flip, behind the engine's
 * back: a writable leaf that is not yet dirty (the CPU sets D), and a
 * write-protected but MMU-writable leaf (the lockless fast fix restores W).
 * Accessed alone is not volatile: a lost A bit only makes aging less exact.
 */
bool tdp_spte_has_volatile_bits(const struct tdp_spte_format *fmt,
				tdp_spte_t spte, int level)
{
	if (!tdp_spte_is_present(fmt, spte) || !tdp_spte_is_leaf(fmt, spte, level))
		return false;
	if ((spte & fmt->mmu_writable) && !(spte & fmt->writable))
		return true;
	return (spte & fmt->writable) && !(spte & fmt->dirty);
}

/*
 * The SPTE at @index of the table that replaces huge leaf @huge at
 * @huge_level: same rights and A/D state, 1/512th of the range.
 */
tdp_spte_t tdp_spte_make_small(const struct tdp_spte_format *fmt,
			       tdp_spte_t huge, int huge_level, int index)
{
	int level = huge_level - 1;
	tdp_pfn_t pfn = tdp_spte_pfn(fmt, huge) +
			(tdp_pfn_t)index * tdp_level_pages(level);
	tdp_spte_t spte = (huge & ~fmt->pfn_mask) |
			  ((pfn << TDP_PAGE_SHIFT) & fmt->pfn_mask);

	if (level == TDP_LEVEL_4K)
		spte &= ~fmt->leaf_size;
	return spte;
}
