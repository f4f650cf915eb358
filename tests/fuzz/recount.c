// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Recount the trees by walking them (white box: the root list and tables
 * through libtdp/internal.h), independently of the engine's accounting.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "recount.h"

#include "internal.h"

static void recount_table(struct tdp_mmu *mmu, const tdp_spte_t *spt,
			  int type, int level, struct recount *out)
{
	const struct tdp_spte_format *fmt = &mmu->fmt;

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t s = tdp_spte_read(&spt[i]);

		if (!tdp_spte_is_present(fmt, s))
			continue;
		if (tdp_spte_is_leaf(fmt, s, level)) {
			out->leaves[type][level]++;
			continue;
		}
		out->tables[type][level - 1]++;
		recount_table(mmu, tdp_spte_child(mmu, s)->spt, type,
			      level - 1, out);
	}
}

void recount_trees(struct tdp_mmu *mmu, struct recount *out)
{
	memset(out, 0, sizeof(*out));
	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root *r = mmu->roots; r; r = r->next) {
		out->tables[r->type][r->table->level]++;
		recount_table(mmu, r->table->spt, r->type, r->table->level,
			      out);
	}
	tdp_mutex_unlock(&mmu->roots_mutex);
}

bool recount_matches_stats(struct tdp_mmu *mmu, char *why, size_t len)
{
	struct recount rc;
	struct tdp_stats st;

	if (tdp_mmu_get_stats(mmu, &st)) {
		snprintf(why, len, "tdp_mmu_get_stats failed");
		return false;
	}
	recount_trees(mmu, &rc);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
			if (st.tables[t][l] != rc.tables[t][l]) {
				snprintf(why, len,
					 "root type %d: stats count %" PRIu64
					 " tables at level %d, the tree holds %" PRIu64,
					 t, st.tables[t][l], l, rc.tables[t][l]);
				return false;
			}
			if (st.leaves[t][l] != rc.leaves[t][l]) {
				snprintf(why, len,
					 "root type %d: stats count %" PRIu64
					 " leaves at level %d, the tree holds %" PRIu64,
					 t, st.leaves[t][l], l, rc.leaves[t][l]);
				return false;
			}
		}
	}
	return true;
}
