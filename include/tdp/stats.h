/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-MMU statistics.  Counts of live objects (tables, leaves, pages) are
 * exact once the MMU is quiescent; while operations run they are a
 * consistent-enough snapshot for monitoring.
 */
#ifndef TDP_STATS_H
#define TDP_STATS_H

#include <tdp/root.h>
#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The counters, in the order of struct tdp_stats: one list, so the
 * engine's per-operation counter sets (which hold the O entries) cannot
 * drift from the public structure.  TDP_STATS_FIELDS(O, M) calls
 * O(name, dims) for a counter operations add to (per vCPU or per
 * operation, folded on read), M(name, dims) for one the MMU keeps by
 * itself; dims is empty or the array bounds.
 */
#define TDP_STATS_FIELDS(O, M)                                               \
	/* Live page tables linked into a tree, by root type and by the      \
	 * level of the entries they hold (a root of a 4-level tree counts   \
	 * at 4, a table of 4 KiB leaves at 1).  Roots are included. */      \
	O(tables, [TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1])                    \
	/* Present leaf SPTEs by root type and level (1 = 4 KiB). */         \
	O(leaves, [TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1])                    \
	O(faults_fixed, )                                                    \
	O(faults_spurious, )                                                 \
	O(faults_retried, )                                                  \
	/* Present leaf SPTEs zapped, and tables unlinked by zaps. */        \
	O(zapped_leaves, )                                                   \
	O(zapped_tables, )                                                   \
	/* Host TLB callbacks issued. */                                     \
	O(flushes_range, )                                                   \
	O(flushes_all, )                                                     \
	/* Roots allocated and freed over the MMU's life. */                 \
	M(roots_allocated, )                                                 \
	M(roots_freed, )                                                     \
	/* Map callbacks (link_table, set_leaf) of the private backend that  \
	 * returned -EBUSY / a hard error. */                                \
	O(backend_busy, )                                                    \
	O(backend_errors, )                                                  \
	/* Page-table pages (and backend pages) this MMU holds: linked,      \
	 * cached in vCPU contexts, or waiting for a grace period.  Zero     \
	 * after tdp_mmu_teardown(). */                                      \
	M(pages_in_use, )                                                    \
	/* Private huge leaves split by demote_leaf (for a zap that covered  \
	 * them only partly, or a fault that needed a smaller mapping below  \
	 * one); demote_leaf calls that returned -EBUSY / a hard error (not  \
	 * counted in backend_busy / backend_errors); and of the demotes,    \
	 * the ones faults made (under mmu_lock held for read). */           \
	O(demotes, )                                                         \
	O(demote_busy, )                                                     \
	O(demote_errors, )                                                   \
	O(fault_demotes, )                                                   \
	/* Private tables merged back into one huge leaf by promote_leaf,    \
	 * and promote_leaf calls that returned -EBUSY / another error (a    \
	 * refusal).  Tables that are not 512 contiguous, aligned leaves are \
	 * not offered to the backend and not counted. */                    \
	O(promotes, )                                                        \
	O(promote_busy, )                                                    \
	O(promote_errors, )                                                  \
	/* mmu_lock write acquisitions, re-acquisitions after a yield        \
	 * included: zaps, invalidations of roots, dirty-log clears,         \
	 * promotes, teardown.  Faults take none (their demotes included):   \
	 * fault_write_locks counts write locks a thread took inside         \
	 * tdp_map(), as measured by the port (the user-space port counts    \
	 * them per thread; the kernel port does not count, and it stays     \
	 * 0). */                                                            \
	M(write_locks, )                                                     \
	O(fault_write_locks, )

#define TDP_STATS_FIELD_(name, dims) uint64_t name dims;

struct tdp_stats {
	TDP_STATS_FIELDS(TDP_STATS_FIELD_, TDP_STATS_FIELD_)
};

/*
 * tdp_mmu_get_stats() - copy the statistics.  Works after teardown too.
 * Lock: none.  Returns 0, or -EINVAL for NULL.
 */
TDP_API int tdp_mmu_get_stats(const struct tdp_mmu *mmu, struct tdp_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TDP_STATS_H */
