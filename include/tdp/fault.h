/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fault path: install the mapping a guest access needs.
 *
 * A vCPU context (struct tdp_vcpu) carries what a fault needs that must not
 * be allocated under mmu_lock: a small cache of zeroed page tables (and
 * backend pages) topped up before the lock is taken, and the roots the vCPU
 * has loaded.  One context is used by one thread at a time.
 *
 * Typical use from a vCPU thread:
 *
 *	seq = tdp_mmu_seq(mmu);              before resolving the PFN
 *	pfn = host_resolve(gfn);
 *	f = (struct tdp_fault){ .fault_gfn = gfn, .pfn = pfn, ... , .mmu_seq = seq };
 *	r = tdp_map(vcpu, &f);               TDP_FAULT_RETRY: resume the guest
 *	                                     and let it fault again
 */
#ifndef TDP_FAULT_H
#define TDP_FAULT_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_vcpu_create() - create a vCPU context with an empty table cache.
 * Returns 0; -EINVAL for NULL; -ENOMEM; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_vcpu_create(struct tdp_mmu *mmu, struct tdp_vcpu **out);

/*
 * tdp_vcpu_destroy() - put the vCPU's roots and free its cache.
 * NULL is ignored.  Must not be called with mmu_lock held.
 */
TDP_API void tdp_vcpu_destroy(struct tdp_vcpu *vcpu);

/*
 * tdp_vcpu_topup() - fill the table cache so the next fault cannot run out
 * of tables.  tdp_map() calls it itself; embedders may call it earlier to
 * move the allocation off the fault path.
 * Lock: must not hold mmu_lock.  Returns 0 or -ENOMEM (cache unchanged
 * beyond what was already allocated).
 */
TDP_API int tdp_vcpu_topup(struct tdp_vcpu *vcpu);

/*
 * tdp_vcpu_load_root() - the root hardware walks for the shared alias on
 * the next VM entry (the EPT pointer): the vCPU keeps its root while it is
 * valid and loads the current one after an invalidation.  Stores the root
 * table's frame (see tdp_pfn_to_table()) and the number of levels.
 * @alias must be TDP_ALIAS_SHARED: the mirror root is never walked by
 * hardware.
 * Lock: must not hold mmu_lock (takes it for read to allocate a root).
 * Returns 0; -EINVAL; -ENOMEM; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_vcpu_load_root(struct tdp_vcpu *vcpu, enum tdp_alias alias,
			       tdp_pfn_t *root_pfn, int *root_level);

/*
 * tdp_mmu_seq() - the invalidation sequence.  A fault reads it before it
 * resolves the PFN and passes it in struct tdp_fault; tdp_map() refuses to
 * map if the sequence moved since, so a PFN that an invalidation revoked
 * in between is never installed.  Lock: none.
 */
TDP_API uint64_t tdp_mmu_seq(const struct tdp_mmu *mmu);

enum tdp_fault_result {
	TDP_FAULT_FIXED = 0,    /* a new mapping was installed */
	TDP_FAULT_SPURIOUS = 1, /* the access is already allowed */
	TDP_FAULT_RETRY = 2,    /* lost a race or stale: fault again */
};

struct tdp_fault {
	/*
	 * GFN of the faulting GPA as the guest issued it: with the shared
	 * bit (direct_bits) set the fault maps the shared alias in the
	 * direct root, without it the private alias in the mirror root (on
	 * an MMU without backend every GFN is shared).
	 */
	tdp_gfn_t fault_gfn;
	/* Host frame to map.  Ignored for MMIO. */
	tdp_pfn_t pfn;
	/*
	 * Mask of enum tdp_prot; must include TDP_PROT_READ.  Honoured on
	 * the shared alias only: a private leaf is always installed with
	 * TDP_PROT_RWX (the backend's set_leaf takes no permissions), so a
	 * private fault on a present leaf is TDP_FAULT_SPURIOUS whatever it
	 * asks for.
	 */
	unsigned int prot;
	/*
	 * Largest mapping level allowed (TDP_LEVEL_4K, _2M or _1G); the
	 * leaf is installed at the largest level up to this one at which
	 * GFN and PFN are congruent (equal modulo the level's page count;
	 * neither needs to be aligned itself) and no smaller mapping
	 * exists below, otherwise lower.
	 */
	int max_level;
	/* Value of tdp_mmu_seq() read before the PFN was resolved. */
	uint64_t mmu_seq;
	/* Install an MMIO SPTE of the current generation (shared only). */
	bool mmio;
};

/*
 * tdp_map() - handle a fault: walk the tree the alias selects, install
 * missing tables and the leaf with compare-exchange (through the freeze
 * protocol and the private backend for the mirror root).  A huge leaf
 * above the level the fault may map at is split on the way down (a
 * private one only with a backend that demotes in faults), even when it
 * already allows the access: the fault then returns TDP_FAULT_SPURIOUS
 * with the leaf split.
 * Lock: takes mmu_lock for read; tops up the cache before.
 * Returns enum tdp_fault_result (>= 0), or: -EINVAL (NULL, GFN beyond the
 * address width, bad prot or max_level, MMIO on the private alias, a
 * present leaf that maps the GFN to another PFN (zap it first), MMIO
 * over a present leaf);
 * -ENOMEM (cache top-up failed, nothing changed); -EIO (dead);
 * -ESHUTDOWN; a hard error of the backend's link_table/set_leaf, with the
 * mirror exactly as before.
 * TDP_FAULT_RETRY is returned when the sequence moved, the vCPU's root
 * was invalidated, the walk met a frozen SPTE, a compare-exchange lost a
 * race, or the backend reported -EBUSY; and while any invalidation runs
 * whose span could touch the mapping: the engine keeps one span covering
 * all running invalidations (from the lowest start to the highest end),
 * and a fault retries when the range of the leaf it would install (the
 * whole huge page for a huge leaf) overlaps that span, even when the GFN
 * itself lies between two running ranges and neither covers it.
 */
TDP_API int tdp_map(struct tdp_vcpu *vcpu, const struct tdp_fault *fault);

/*
 * tdp_mmu_mmio_generation() / tdp_mmu_set_mmio_generation() - MMIO SPTEs
 * carry the generation current when they were made; an SPTE of another
 * generation is stale and treated as non-present by tdp_map() (it is
 * replaced, no zap needed).  Lock: none / takes mmu_lock for write.
 * The setter returns 0, -EINVAL for NULL, -EIO, -ESHUTDOWN.
 */
TDP_API uint32_t tdp_mmu_mmio_generation(const struct tdp_mmu *mmu);
TDP_API int tdp_mmu_set_mmio_generation(struct tdp_mmu *mmu, uint32_t gen);

#ifdef __cplusplus
}
#endif

#endif /* TDP_FAULT_H */
