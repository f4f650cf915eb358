/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Huge pages on the direct root: eager splitting (before dirty logging,
 * so that the first write to a huge page does not have to split it in the
 * fault path) and recovery (collapsing tables back into huge leaves once
 * dirty logging is off).  The mirror root supports neither: asking for the
 * private alias returns -EOPNOTSUPP.  Faults map huge leaves themselves
 * (struct tdp_fault.max_level) and split a huge leaf on the way down when
 * a smaller mapping is needed.
 */
#ifndef TDP_HUGE_H
#define TDP_HUGE_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_split_huge_range() - split every huge leaf of the direct root that
 * overlaps [start, end) down to @target_level (TDP_LEVEL_4K or
 * TDP_LEVEL_2M), in pre-order so a 1 GiB leaf split to 2 MiB leaves is
 * split again.  Each new table is fully populated before it is linked and
 * translates exactly as the leaf did, so no TLB flush is needed.
 * Lock: takes mmu_lock for read; allocates with the lock dropped and
 * restarts the walk from the root afterwards; a table allocated but not
 * used (another thread split first) is freed.
 * Returns 0; -EINVAL (NULL, bad range, bad target level, bad filter);
 * -EOPNOTSUPP (private alias on an MMU with a backend); -ENOMEM (the
 * leaves split so far stay split, everything consistent); -EIO;
 * -ESHUTDOWN.
 */
TDP_API int tdp_split_huge_range(struct tdp_mmu *mmu, tdp_gfn_t start,
				 tdp_gfn_t end, int target_level,
				 enum tdp_alias alias);

/*
 * tdp_recover_huge_pages() - replace each table of the direct root inside
 * [start, end) whose 512 entries are present leaves mapping one
 * contiguous, aligned PFN range with the same rights by one huge leaf
 * (2 MiB, and 1 GiB when @max_level is TDP_LEVEL_1G), smallest level
 * first.  The huge leaf is dirty if any small leaf was.  The replaced
 * tables are freed after a grace period; one TLB flush at the end.
 * Recovery is meant for when dirty logging is off: a write-protect of the
 * same range running concurrently may find the small leaves already
 * replaced and leave the huge leaf writable (dirty bits are kept either
 * way).
 * For the private alias, on an MMU whose backend has promote_leaf, it
 * first promotes as tdp_promote_private() does (2 MiB only; @max_level
 * applies to the shared alias).
 * Lock: takes mmu_lock for read (and for write, before, to promote);
 * compare-exchange on the parent SPTE.
 * Returns the number of huge leaves made, both aliases (>= 0); -EINVAL
 * (NULL, range not aligned to 2 MiB, bad max level or filter);
 * -EOPNOTSUPP (private alias on an MMU whose backend has no
 * promote_leaf); -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_recover_huge_pages(struct tdp_mmu *mmu, tdp_gfn_t start,
				   tdp_gfn_t end, int max_level,
				   enum tdp_alias alias);

/*
 * tdp_promote_private() - merge each private table at 2 MiB inside
 * [start, end) (unaliased GFNs) whose 512 entries are leaves mapping one
 * contiguous, 2 MiB-aligned PFN range back into one 2 MiB leaf, through
 * the backend's promote_leaf (TDX: PAGE.PROMOTE; the backend's page of the
 * table is released).  A table the backend refuses (TDX: leaves not all
 * MAPPED or all PENDING) or finds busy is left as it is and counted in
 * stats.promote_errors / promote_busy; tables that do not collapse are not
 * offered.  Meant for when the guest converted memory back to private,
 * or accepted a run of 4 KiB pages that filled a 2 MiB page again.
 * Lock: takes mmu_lock for write (and may yield it).
 * Returns the number of leaves made (>= 0); -EINVAL (NULL, range empty,
 * beyond the GFN width, or not aligned to 2 MiB); -EOPNOTSUPP (no backend,
 * or no promote_leaf); -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_promote_private(struct tdp_mmu *mmu, tdp_gfn_t start,
				tdp_gfn_t end);

#ifdef __cplusplus
}
#endif

#endif /* TDP_HUGE_H */
