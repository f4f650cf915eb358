/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SPTE format: the bit layout of one TDP page-table entry, described by
 * runtime masks chosen at MMU creation so that walkers never hard-code a
 * vendor format.  tdp_spte_format_ept is the Intel EPT layout and the
 * default.
 *
 * Every helper here is a pure function of its arguments: no lock, no RCU.
 */
#ifndef TDP_SPTE_H
#define TDP_SPTE_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One SPTE layout.  Hardware bits (readable .. suppress_ve) are what the
 * CPU walks; software bits (mmu_present, host_writable, mmu_writable) are
 * ignored by hardware and carry the engine's own state.
 */
struct tdp_spte_format {
	uint64_t readable;      /* EPT bit 0 */
	uint64_t writable;      /* EPT bit 1 */
	uint64_t executable;    /* EPT bit 2 */
	uint64_t memtype_wb;    /* leaf memory type write-back, EPT 6 << 3 */
	uint64_t leaf_size;     /* "page size" bit of a huge leaf, EPT bit 7 */
	uint64_t accessed;      /* EPT bit 8, set by hardware */
	uint64_t dirty;         /* EPT bit 9, set by hardware on leaves */
	uint64_t mmu_present;   /* software: SPTE is present, EPT bit 11 */
	uint64_t pfn_mask;      /* PFN field, EPT bits 12..51 */
	uint64_t host_writable; /* software: host allows writes, EPT bit 57 */
	uint64_t mmu_writable;  /* software: MMU may make it writable, bit 58 */
	uint64_t suppress_ve;   /* EPT bit 63, kept set in non-present SPTEs */
	tdp_spte_t nonpresent;  /* value of a zapped SPTE */
	tdp_spte_t frozen;      /* reserved value: update in flight */
	/*
	 * MMIO SPTEs: a misconfiguration pattern (@mmio_value under
	 * @mmio_mask) plus a generation spread over @mmio_gen_low (bits
	 * 0..7 of the generation) and @mmio_gen_high (bits 8..18).
	 */
	uint64_t mmio_mask;
	uint64_t mmio_value;
	uint64_t mmio_gen_low;
	uint64_t mmio_gen_high;
};

/* The Intel EPT layout used when a configuration names no format. */
extern TDP_API const struct tdp_spte_format tdp_spte_format_ept;

/* Number of generation bits an MMIO SPTE carries. */
#define TDP_MMIO_GEN_BITS 19
#define TDP_MMIO_GEN_MASK ((1U << TDP_MMIO_GEN_BITS) - 1)

/*
 * tdp_spte_format_check() - validate a format at MMU creation.
 * Checks that the frozen value is non-present, has no PFN and no RWX bits,
 * is never MMU-present, can never equal an MMIO SPTE, and that the masks
 * do not overlap where they must not.
 * Returns 0, or -EINVAL naming nothing else changed.
 */
TDP_API int tdp_spte_format_check(const struct tdp_spte_format *fmt);

static inline bool tdp_spte_is_present(const struct tdp_spte_format *fmt,
				       tdp_spte_t spte)
{
	return (spte & fmt->mmu_present) != 0;
}

static inline bool tdp_spte_is_frozen(const struct tdp_spte_format *fmt,
				      tdp_spte_t spte)
{
	return spte == fmt->frozen;
}

/* A present SPTE is a leaf at level 1, or above it with the size bit. */
static inline bool tdp_spte_is_leaf(const struct tdp_spte_format *fmt,
				    tdp_spte_t spte, int level)
{
	return level == TDP_LEVEL_4K || (spte & fmt->leaf_size) != 0;
}

static inline bool tdp_spte_is_mmio(const struct tdp_spte_format *fmt,
				    tdp_spte_t spte)
{
	return (spte & fmt->mmio_mask) == fmt->mmio_value;
}

static inline tdp_pfn_t tdp_spte_pfn(const struct tdp_spte_format *fmt,
				     tdp_spte_t spte)
{
	return (spte & fmt->pfn_mask) >> TDP_PAGE_SHIFT;
}

static inline bool tdp_spte_is_writable(const struct tdp_spte_format *fmt,
					tdp_spte_t spte)
{
	return (spte & fmt->writable) != 0;
}

/* Permissions (enum tdp_prot) a present leaf grants. */
TDP_API unsigned int tdp_spte_prot(const struct tdp_spte_format *fmt, tdp_spte_t spte);

/*
 * tdp_spte_make_leaf() - build a present leaf for @pfn at @level.
 * @prot is a mask of enum tdp_prot; TDP_PROT_WRITE also sets the
 * host-writable and MMU-writable software bits.  The accessed bit is set
 * (the mapping is created by an access).  @pfn must be aligned to @level.
 */
TDP_API tdp_spte_t tdp_spte_make_leaf(const struct tdp_spte_format *fmt, tdp_pfn_t pfn,
			      int level, unsigned int prot);

/* A present non-leaf SPTE that points at the table whose frame is @pfn. */
TDP_API tdp_spte_t tdp_spte_make_nonleaf(const struct tdp_spte_format *fmt,
				 tdp_pfn_t pfn);

/* An MMIO SPTE for @gfn that is valid while the generation equals @gen. */
TDP_API tdp_spte_t tdp_spte_make_mmio(const struct tdp_spte_format *fmt, tdp_gfn_t gfn,
			      uint32_t gen);

/* The generation an MMIO SPTE was created in. */
TDP_API uint32_t tdp_spte_mmio_gen(const struct tdp_spte_format *fmt, tdp_spte_t spte);

/* The GFN an MMIO SPTE was created for. */
TDP_API tdp_gfn_t tdp_spte_mmio_gfn(const struct tdp_spte_format *fmt, tdp_spte_t spte);

#ifdef __cplusplus
}
#endif

#endif /* TDP_SPTE_H */
