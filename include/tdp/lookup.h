/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lockless lookup: read the SPTE that translates a GFN without mmu_lock,
 * inside an RCU read-side section (tables stay allocated until every such
 * reader left).
 */
#ifndef TDP_LOOKUP_H
#define TDP_LOOKUP_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_lookup() - walk the valid root of @alias (exactly one of
 * TDP_ALIAS_PRIVATE or TDP_ALIAS_SHARED) toward unaliased @gfn and report
 * the last SPTE reached: a present leaf (and its level), or the
 * non-present or frozen SPTE where the walk stopped (and that level).
 * Lock: none; RCU only.  The result may be stale as soon as it returns.
 * Returns 0; -EINVAL (NULL, bad alias, GFN beyond the width, private alias
 * on an MMU without backend); -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
	       tdp_spte_t *spte, int *level);

/*
 * tdp_walk_begin() / tdp_walk_end() - bracket a walk of page tables that
 * runs outside the library, the way hardware walks them (a simulated CPU,
 * a debugger).  Tables stay allocated once unlinked, until every such
 * walk that could have reached them ended; their entries are frozen one
 * by one after the unlink (right after it, or, for a table a range zap
 * unlinked whole, after the TLB flush that follows it, as hardware may
 * set accessed/dirty bits until then).  A walk inside may still read an
 * entry that translates as before, never one that another thread
 * installs.
 * The calling thread must be registered (else it aborts).  Walks may
 * nest.  No other libtdp function may be called inside one except
 * tdp_pfn_to_table(): a call that takes mmu_lock aborts with a message,
 * and one that waits for the freeing of tables would wait for itself.
 */
TDP_API void tdp_walk_begin(void);
TDP_API void tdp_walk_end(void);

/*
 * tdp_pfn_to_table() - the host view of the page table whose frame a
 * non-leaf SPTE (or tdp_vcpu_load_root()) names: what hardware walks.
 * Read entries with atomic loads.  Only valid inside tdp_walk_begin/end.
 * The view is const for software; a walker that models the CPU may set
 * the accessed and dirty bits of a present direct leaf as hardware does,
 * with an atomic compare-exchange on the entry (a cast of this pointer)
 * and nothing else: the engine reads those bits with atomic operations
 * (tdp/dirty.h, tdp/age.h) or after the flush that ends such walks.
 */
TDP_API const tdp_spte_t *tdp_pfn_to_table(tdp_pfn_t pfn);

#ifdef __cplusplus
}
#endif

#endif /* TDP_LOOKUP_H */
