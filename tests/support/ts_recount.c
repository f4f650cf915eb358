// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The tree recount of ts_recount.h (white box: the root list and tables
 * through libtdp/internal.h).
 */
#include "ts_recount.h"

#include "internal.h"

static void recount_table(struct tdp_mmu *mmu, const tdp_spte_t *spt,
			  int type, int level, struct ts_recount *out)
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
		recount_table(mmu, tdp_spte_child(mmu, s)->spt, type, level - 1,
			      out);
	}
}

void ts_recount_trees(struct tdp_mmu *mmu, struct ts_recount *out)
{
	*out = (struct ts_recount){ 0 };
	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root *r = mmu->roots; r; r = r->next) {
		out->tables[r->type][r->table->level]++;
		recount_table(mmu, r->table->spt, r->type, r->table->level,
			      out);
	}
	tdp_mutex_unlock(&mmu->roots_mutex);
}

/* Write the first difference of one counter to @why; false if any. */
static bool same(const char *what, int type, int level, uint64_t stats,
		 uint64_t tree, char *why, size_t len)
{
	if (stats == tree)
		return true;
	snprintf(why, len,
		 "root type %d: the stats count %llu %s at level %d, the "
		 "trees hold %llu",
		 type, (unsigned long long)stats, what, level,
		 (unsigned long long)tree);
	return false;
}

bool ts_recount_matches_stats(struct tdp_mmu *mmu, char *why, size_t len)
{
	struct ts_recount rc;
	struct tdp_stats st;

	if (tdp_mmu_get_stats(mmu, &st)) {
		snprintf(why, len, "tdp_mmu_get_stats failed");
		return false;
	}
	ts_recount_trees(mmu, &rc);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		for (int l = 0; l <= TDP_MAX_LEVEL; l++)
			if (!same("tables", t, l, st.tables[t][l],
				  rc.tables[t][l], why, len) ||
			    !same("leaves", t, l, st.leaves[t][l],
				  rc.leaves[t][l], why, len))
				return false;
	return true;
}
