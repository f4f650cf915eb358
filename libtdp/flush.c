/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TLB flush batching: a walk collects the GFNs whose translations it
 * removed and issues one host callback before it drops mmu_lock (or
 * yields).  Disjoint spans degrade to one flush of everything.
 */
#include "internal.h"

void tdp_flush_add(struct tdp_op *op, tdp_gfn_t gfn, uint64_t pages)
{
	struct tdp_flush *fl = &op->flush;
	tdp_gfn_t end = gfn + pages;

	if (fl->all)
		return;
	if (fl->start == fl->end) {
		fl->start = gfn;
		fl->end = end;
	} else if (gfn <= fl->end && end >= fl->start) {
		fl->start = gfn < fl->start ? gfn : fl->start;
		fl->end = end > fl->end ? end : fl->end;
	} else {
		fl->all = true;
	}
}

void tdp_flush_issue(struct tdp_op *op)
{
	struct tdp_flush *fl = &op->flush;
	const struct tdp_host_ops *host = &op->mmu->cfg.host;

	/* Unlinked tables wait for this flush: tdp_flush_and_reclaim(). */
	TDP_ASSERT(!op->unlinked);
	if (fl->all) {
		host->flush_all(host->ctx);
		TDP_COUNT(&op->ctr, flushes_all, 1);
	} else if (fl->start != fl->end) {
		host->flush_range(host->ctx, fl->start, fl->end - fl->start);
		TDP_COUNT(&op->ctr, flushes_range, 1);
	}
	*fl = (struct tdp_flush){ 0 };
}
