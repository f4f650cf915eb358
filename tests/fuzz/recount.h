/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Recount the trees: walk every root in an MMU's list, count its linked
 * tables and present leaves, and compare with tdp_mmu_get_stats().  Only
 * on a quiescent MMU (no operation running).
 */
#ifndef TDP_TEST_RECOUNT_H
#define TDP_TEST_RECOUNT_H

#include <stddef.h>

#include <tdp/tdp.h>

struct recount {
	uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
};

/* Fill @out with what the trees of @mmu hold. */
void recount_trees(struct tdp_mmu *mmu, struct recount *out);

/*
 * Recount and compare with the statistics; write the first difference
 * (type, level, what the stats say, what the trees hold) to @why and
 * return false if there is one.
 */
bool recount_matches_stats(struct tdp_mmu *mmu, char *why, size_t len);

#endif /* TDP_TEST_RECOUNT_H */
