/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lockless operations on the direct root: aging (accessed bits, for memory
 * overcommit) and the fast fix of write faults on write-protected leaves
 * (dirty logging).  Both run with no mmu_lock at all, inside an RCU
 * read-side section, and change SPTEs only with compare-exchange or
 * atomic AND.  Neither ever unmaps.  The mirror root supports neither:
 * the private alias returns -EOPNOTSUPP.
 */
#ifndef TDP_AGE_H
#define TDP_AGE_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tdp_age_range() - count the leaves in [start, end) whose accessed bit is
 * set and, with @clear, clear it.  No TLB flush: a stale accessed bit only
 * makes aging less precise.  Lock: none (RCU).
 * Returns the number of young leaves (>= 0); -EINVAL; -EOPNOTSUPP; -EIO;
 * -ESHUTDOWN.
 */
TDP_API int64_t tdp_age_range(struct tdp_mmu *mmu, tdp_gfn_t start,
			      tdp_gfn_t end, bool clear, enum tdp_alias alias);

/*
 * tdp_fast_fix() - try to resolve a fault without mmu_lock: a write fault
 * (@prot has TDP_PROT_WRITE) on a present leaf that is write-protected but
 * MMU-writable gets its write bit back with one compare-exchange.
 * @fault_gfn includes the shared bit as in struct tdp_fault.
 * Lock: none (RCU).  Returns 1 if the fault is fixed (or the access is
 * already allowed), 0 if it needs the full fault path (tdp_map), -EINVAL,
 * -EOPNOTSUPP (a private GFN on an MMU with a backend), -EIO, -ESHUTDOWN.
 */
TDP_API int tdp_fast_fix(struct tdp_mmu *mmu, tdp_gfn_t fault_gfn,
			 unsigned int prot);

#ifdef __cplusplus
}
#endif

#endif /* TDP_AGE_H */
