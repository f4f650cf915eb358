/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zaps: make SPTEs non-present.  Every range operation takes an alias
 * filter that selects the roots it walks (private: the mirror root; shared:
 * the direct root), and also walks invalidated roots that are not freed
 * yet, so that nothing maps the range when the call returns.
 *
 * Flush rule: direct-root zaps batch TLB invalidations and issue them
 * through the host callbacks before mmu_lock is dropped (also before every
 * yield); mirror-root leaves are made invisible to every TLB by the
 * backend's remove_leaf itself.
 *
 * GFN ranges are unaliased and half-open: [start, end).
 *
 * Which alias each event zaps (confidential VMs):
 *
 *   event                                  helper                       alias zapped
 *   memory slot deleted or moved           tdp_zap_slot_deleted         private and shared
 *   host unmaps backing memory (notifier)  tdp_zap_host_unmap           shared only
 *   guest converts a range to shared       tdp_zap_convert_to_shared    private only
 *   guest converts a range to private      tdp_zap_convert_to_private   shared only
 *   cache-attribute updates (MTRR, CR0.CD, APICv)  none: not supported for confidential VMs
 */
#ifndef TDP_ZAP_H
#define TDP_ZAP_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_zap_range() - zap the leaf SPTEs mapping [start, end) in the roots
 * @alias selects.  In the direct tree a page table whose whole span lies
 * in the range is unlinked with one exchange and freed after a grace
 * period, with everything below it (counted in stats.zapped_tables); its
 * entries are read, and dirty ones reported through host.mark_dirty, only
 * after the TLB flush of the range, when no CPU can set a dirty bit in
 * them any more.  Tables the range covers only partly stay, and so do
 * private tables (they are freed by root zaps and teardown).  A direct
 * (shared) huge leaf that overlaps the range only partly is zapped whole.  A private huge leaf that overlaps it only
 * partly is first demoted through the backend's demote_leaf (a new table
 * of 512 leaves one level down, same frames), then only its covered
 * leaves are removed; the private huge leaves at the two ends of the range
 * are demoted before anything is zapped.  Without demote_leaf a private
 * huge leaf is zapped whole too.  Other present direct leaves are cleared
 * with an atomic exchange, so an accessed/dirty bit set by hardware until
 * the flush is never lost.
 * Lock: takes mmu_lock for write; yields when contended, after progress,
 * flushing first, restarting from the root at the first unfinished GFN;
 * also drops it to allocate the table of a demote and after a busy
 * demote_leaf.
 * Returns 0; -EINVAL (NULL, start >= end, end beyond the address width,
 * bad filter); -EIO (dead, including when a remove_leaf fails here);
 * -ESHUTDOWN.  With demote_leaf, also -ENOMEM (no table for a demote),
 * -EBUSY (demote_leaf answered busy TDP_DEMOTE_BUSY_TRIES times in a
 * row) or demote_leaf's hard error: then nothing was unmapped in any tree
 * (private huge leaves already demoted stay demoted, with the same
 * translations), unless the zap yielded and a fault mapped a new private
 * huge leaf across an end of the range meanwhile (see tdp/backend.h).
 * The call may be repeated.  TDP_ALIAS_PRIVATE on an MMU without backend
 * selects no root and returns 0.
 */
TDP_API int tdp_zap_range(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  enum tdp_alias alias);

/*
 * tdp_zap_all() - zap every SPTE and free every table of the direct root
 * and of invalidated direct roots (the "host address space goes away"
 * event).  The mirror root is left alone: private memory is zapped by
 * range or at teardown.  Tables are freed after a grace period.
 * Lock: takes mmu_lock for write; yields as tdp_zap_range().
 * Returns 0; -EINVAL; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_zap_all(struct tdp_mmu *mmu);

/* The alias table above, one helper per event; same contract as
 * tdp_zap_range(). */
TDP_API int tdp_zap_slot_deleted(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);
TDP_API int tdp_zap_host_unmap(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);
TDP_API int tdp_zap_convert_to_shared(struct tdp_mmu *mmu, tdp_gfn_t start,
			      tdp_gfn_t end);
TDP_API int tdp_zap_convert_to_private(struct tdp_mmu *mmu, tdp_gfn_t start,
			       tdp_gfn_t end);

/*
 * tdp_invalidate_begin() / tdp_invalidate_end() - bracket a change of the
 * host's backing of [start, end) (unaliased).  Between the two, tdp_map()
 * returns TDP_FAULT_RETRY for GFNs in the range; tdp_invalidate_end()
 * advances the sequence read by tdp_mmu_seq(), so a fault that resolved
 * its PFN before the end also retries.  Ranges may nest and overlap; the
 * caller zaps the range (usually with tdp_zap_host_unmap) in between.
 * Lock: takes no mmu_lock (a per-MMU mutex orders begins and ends), so
 * faults keep running; the zap in between takes mmu_lock for write and so
 * waits for every fault that started before the begin.
 * tdp_invalidate_end() must name exactly the range of a running begin.
 * Returns 0; -EINVAL (NULL, bad range, end without a begin of the same
 * range); -ENOMEM (begin only, nothing changed); -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_invalidate_begin(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);
TDP_API int tdp_invalidate_end(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);

#ifdef __cplusplus
}
#endif

#endif /* TDP_ZAP_H */
