/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Recount the trees: walk every root on an MMU's list (valid and
 * invalidated), count its linked tables and present leaves by type and
 * level, and compare with tdp_mmu_get_stats(), independently of the
 * engine's accounting.  Only on a quiescent MMU (no operation running).
 * Written on the port layer: the cmocka tests, the fuzz harness and the
 * kernel self-test use it alike.
 */
#ifndef TS_RECOUNT_H
#define TS_RECOUNT_H

#include <tdp/tdp.h>

#include "port/port.h"

struct ts_recount {
	uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
};

/* Fill @out with what the trees of @mmu hold. */
void ts_recount_trees(struct tdp_mmu *mmu, struct ts_recount *out);

/*
 * Recount and compare with the statistics: true when every table and
 * leaf count matches; otherwise false, with the first difference (root
 * type, level, the count in the stats, the count in the trees) written to
 * @why.
 */
bool ts_recount_matches_stats(struct tdp_mmu *mmu, char *why, size_t len);

#endif /* TS_RECOUNT_H */
