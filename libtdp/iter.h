/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SPTE iterator: a pre-order walk of one tree between two GFNs.
 *
 * It visits, in order, every SPTE that translates a GFN of [start, end)
 * at levels >= min_level, stepping down into present non-leaf SPTEs
 * (re-reading the SPTE first, so it never follows a stale table pointer),
 * sideways within a table, and up at a table's end.  GFNs are as the tree
 * indexes them (the direct root's include the shared bit).
 *
 * After a yield (tdp_iter_cond_resched() returned true) the next step
 * restarts from the root at next_last_level_gfn, the first GFN not yet
 * finished: it never advances past it, because the tables on the old path
 * may have been freed while the lock was dropped.
 *
 * Caller holds mmu_lock (read or write) and the RCU read lock, or, for
 * lockless walks, the RCU read lock alone.
 */
#ifndef TDP_ITER_H
#define TDP_ITER_H

#include "internal.h"

struct tdp_iter {
	/* Table of each level on the current path; [root_level] is the root. */
	tdp_spte_t *pt_path[TDP_MAX_LEVEL + 1];
	tdp_spte_t *sptep;      /* current SPTE */
	tdp_spte_t old_spte;    /* its value when last read */
	tdp_gfn_t gfn;          /* first GFN the current SPTE translates */
	tdp_gfn_t next_last_level_gfn; /* where to resume after a restart */
	tdp_gfn_t yielded_gfn;  /* next_last_level_gfn at the last yield */
	int root_level;
	int min_level;
	int level;
	bool valid;
	bool yielded;
	const struct tdp_spte_format *fmt;
};

void tdp_iter_start(struct tdp_iter *it, struct tdp_table *root,
		    const struct tdp_spte_format *fmt, int min_level,
		    tdp_gfn_t gfn);
void tdp_iter_next(struct tdp_iter *it);
void tdp_iter_restart(struct tdp_iter *it);

/* Re-read the current SPTE into it->old_spte. */
static inline void tdp_iter_refresh(struct tdp_iter *it)
{
	it->old_spte = tdp_spte_read_acquire(it->sptep);
}

#define tdp_for_each_spte_min_level(it, root, fmt, min_level, start, end) \
	for (tdp_iter_start(&(it), (root), (fmt), (min_level), (start));  \
	     (it).valid && (it).gfn < (end); tdp_iter_next(&(it)))

#define tdp_for_each_spte(it, root, fmt, start, end) \
	tdp_for_each_spte_min_level(it, root, fmt, TDP_LEVEL_4K, start, end)

/*
 * tdp_iter_cond_resched() - yield mmu_lock and RCU if the lock is
 * contended (or the MMU forces yields) and the walk made progress since
 * its last yield.  Issues @op's pending flush before dropping the lock.
 * Returns true if it yielded; the caller must then `continue` so the
 * iterator restarts from the root.
 */
bool tdp_iter_yield(struct tdp_op *op, struct tdp_iter *it);

static inline bool tdp_iter_cond_resched(struct tdp_op *op,
					 struct tdp_iter *it)
{
	TDP_ASSERT(!it->yielded);
	/* Forward progress: never yield twice at the same GFN. */
	if (it->next_last_level_gfn == it->yielded_gfn)
		return false;
	if (TDP_LIKELY(!tdp_mmu_lock_needbreak(&op->mmu->mmu_lock, op->shared)))
		return false;
	return tdp_iter_yield(op, it);
}

#endif /* TDP_ITER_H */
