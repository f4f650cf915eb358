/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers of the huge-page and dirty-logging tests; see helpers.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* White-box: the MMU's valid root, SPTE words and mmu_lock. */
#include "internal.h"

#include "helpers.h"
#include "ts_recount.h"

/* ---- statistics ------------------------------------------------------------ */

struct tdp_stats hh_stats(const struct tdp_mmu *mmu)
{
	struct tdp_stats st;

	if (tdp_mmu_get_stats(mmu, &st))
		memset(&st, 0, sizeof(st));
	return st;
}

/* ---- white-box tree walk -------------------------------------------------- */

struct walk_ctx {
	const struct tdp_spte_format *fmt;
	tdp_gfn_t bits;
	tdp_gfn_t start, end; /* tree GFNs */
	hh_leaf_fn fn;
	void *arg;
	struct hh_tree_counts *counts;
};

static void walk_table(struct walk_ctx *c, const tdp_spte_t *spt, int level,
		       tdp_gfn_t base)
{
	uint64_t step = tdp_level_pages(level);

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_gfn_t gfn = base + (uint64_t)i * step;
		bool overlaps = gfn < c->end && gfn + step > c->start;
		tdp_spte_t s;

		if (!overlaps && !c->counts)
			continue;
		s = __atomic_load_n(&spt[i], __ATOMIC_ACQUIRE);
		if (!tdp_spte_is_present(c->fmt, s))
			continue;
		if (tdp_spte_is_leaf(c->fmt, s, level)) {
			if (c->counts)
				c->counts->leaves[level]++;
			if (overlaps && c->fn)
				c->fn(c->arg, gfn - c->bits, level, s);
			continue;
		}
		if (c->counts)
			c->counts->tables[level - 1]++;
		walk_table(c, tdp_pfn_to_virt(tdp_spte_pfn(c->fmt, s)),
			   level - 1, gfn);
	}
}

void hh_tree_walk(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  hh_leaf_fn fn, void *arg, struct hh_tree_counts *counts)
{
	struct walk_ctx c = {
		.fmt = tdp_mmu_format(mmu),
		.bits = tdp_mmu_direct_bits(mmu),
		.start = start + tdp_mmu_direct_bits(mmu),
		.end = end + tdp_mmu_direct_bits(mmu),
		.fn = fn,
		.arg = arg,
		.counts = counts,
	};
	struct tdp_root *root;

	if (counts)
		memset(counts, 0, sizeof(*counts));
	tdp_rcu_read_lock();
	root = __atomic_load_n(&mmu->valid_root[TDP_ROOT_DIRECT],
			       __ATOMIC_ACQUIRE);
	if (root) {
		if (counts)
			counts->tables[root->table->level]++;
		walk_table(&c, root->table->spt, root->table->level, 0);
	}
	tdp_rcu_read_unlock();
}

/* Every live count of the statistics against a recount of the trees. */
int hh_stats_match_tree(struct tdp_mmu *mmu)
{
	char why[200];

	if (ts_recount_matches_stats(mmu, why, sizeof(why)))
		return 0;
	fprintf(stderr, "stats against the trees: %s\n", why);
	return 1;
}

/* Inside RCU: the frame and level of the valid direct root's table. */
static bool direct_root(struct tdp_mmu *mmu, tdp_pfn_t *pfn, int *level)
{
	struct tdp_root *root = __atomic_load_n(
		&mmu->valid_root[TDP_ROOT_DIRECT], __ATOMIC_ACQUIRE);

	if (!root)
		return false;
	*pfn = tdp_virt_to_pfn(root->table->spt);
	*level = root->table->level;
	return true;
}

tdp_spte_t *hh_sptep(struct tdp_mmu *mmu, tdp_gfn_t gfn, int *level)
{
	tdp_spte_t *sptep = NULL;
	tdp_spte_t spte;
	tdp_pfn_t root;
	int root_level;

	tdp_rcu_read_lock();
	if (direct_root(mmu, &root, &root_level))
		sptep = ts_hw_walk(tdp_mmu_format(mmu), root, root_level,
				   gfn | tdp_mmu_direct_bits(mmu), &spte,
				   level);
	tdp_rcu_read_unlock();
	return sptep;
}

/* ---- the simulated CPU ---------------------------------------------------- */

enum ts_hw_result hh_hw_access(struct tdp_mmu *mmu, tdp_gfn_t gfn, bool write)
{
	enum ts_hw_result res = TS_HW_NOT_PRESENT;
	tdp_pfn_t root;
	int root_level;

	tdp_rcu_read_lock();
	if (direct_root(mmu, &root, &root_level))
		res = ts_hw_access(tdp_mmu_format(mmu), root, root_level,
				   gfn | tdp_mmu_direct_bits(mmu), write, NULL,
				   NULL);
	tdp_rcu_read_unlock();
	return res;
}

/* ---- failures from helper threads ----------------------------------------- */

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long nr_failures;

void hh_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (nr_failures++ < 20) {
		fprintf(stderr, "%s:%d: check failed: ", file, line);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&fail_lock);
}

unsigned long hh_failures(void)
{
	unsigned long n;

	pthread_mutex_lock(&fail_lock);
	n = nr_failures;
	pthread_mutex_unlock(&fail_lock);
	return n;
}

/* ---- fixtures ---------------------------------------------------------------- */

int hh_cmocka_teardown(void **state)
{
	struct ts_env *env = *state;

	assert_int_equal(hh_stats_match_tree(env->mmu), 0);
	ts_env_fini_ok(env);
	free(env);
	return 0;
}
