/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dirty logging on the direct root (live migration): write-protect a
 * range, clear dirty bits, clear a 64-GFN window given as a bitmask, and
 * harvest dirty GFNs into a caller bitmap.  A dirty GFN is one whose leaf
 * has the hardware dirty bit set.  The mirror root does not support dirty
 * logging: asking for the private alias returns -EOPNOTSUPP.
 *
 * Flush rule: every function that removed a write permission or a dirty
 * bit flushes the affected range through the host callbacks before it
 * drops mmu_lock, so hardware cannot keep writing through a stale TLB
 * entry without setting the dirty bit again.  A write-protect always
 * flushes.
 *
 * Dirty bits are never lost: every change of a leaf whose dirty bit
 * hardware may set is a compare-exchange or an atomic AND.
 */
#ifndef TDP_DIRTY_H
#define TDP_DIRTY_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_wrprot_range() - clear the write bit of every leaf in [start, end),
 * keeping the MMU-writable bit so tdp_fast_fix() can restore it.
 * Lock: takes mmu_lock for read.  Returns the number of leaves changed
 * (>= 0); -EINVAL; -EOPNOTSUPP; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_wrprot_range(struct tdp_mmu *mmu, tdp_gfn_t start,
			     tdp_gfn_t end, enum tdp_alias alias);

/*
 * tdp_clear_dirty_range() - clear the dirty bit of every leaf in
 * [start, end).  Lock: takes mmu_lock for read.  Returns the number of
 * leaves that were dirty (>= 0); -EINVAL; -EOPNOTSUPP; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_clear_dirty_range(struct tdp_mmu *mmu, tdp_gfn_t start,
				  tdp_gfn_t end, enum tdp_alias alias);

/*
 * tdp_clear_dirty_masked() - for the 64 GFNs starting at @base (aligned to
 * 64), clear the dirty bit (or, with @wrprot, the write bit) of the 4 KiB
 * leaves whose bit is set in @mask.  Huge leaves are left alone (split
 * them first).  Lock: takes mmu_lock for write.  Returns the number of
 * leaves changed (>= 0); -EINVAL (NULL, misaligned or out-of-range base,
 * bad filter); -EOPNOTSUPP; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_clear_dirty_masked(struct tdp_mmu *mmu, tdp_gfn_t base,
				   uint64_t mask, bool wrprot,
				   enum tdp_alias alias);

/*
 * tdp_harvest_dirty() - for every dirty leaf in [start, end), set the bits
 * of its GFNs (bit gfn - start of @bitmap, which holds end - start bits)
 * and clear its dirty bit atomically.  A huge leaf only partly inside the
 * range is reported for that part and keeps its dirty bit, so the harvest
 * of the rest reports it too: a dirty GFN may be reported twice, never
 * missed.  Lock: takes mmu_lock for read.  Returns the number of bits it
 * set that were clear (>= 0); -EINVAL (NULL bitmap, bad range or
 * filter); -EOPNOTSUPP; -EIO; -ESHUTDOWN.
 */
TDP_API int64_t tdp_harvest_dirty(struct tdp_mmu *mmu, tdp_gfn_t start,
				  tdp_gfn_t end, uint64_t *bitmap,
				  enum tdp_alias alias);

#ifdef __cplusplus
}
#endif

#endif /* TDP_DIRTY_H */
