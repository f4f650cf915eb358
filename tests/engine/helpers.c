/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

struct tdp_stats th_stats(const struct tdp_mmu *mmu)
{
	struct tdp_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(tdp_mmu_get_stats(mmu, &st), 0);
	return st;
}

static int diff_field(const char *what, const char *field, uint64_t a,
		      uint64_t b)
{
	if (a == b)
		return 0;
	print_error("%s: %s %llu -> %llu\n", what, field, (unsigned long long)a,
		    (unsigned long long)b);
	return 1;
}

int th_stats_diff(const char *what, const struct tdp_stats *a,
		  const struct tdp_stats *b)
{
	char name[32];
	int n = 0;

	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
			snprintf(name, sizeof(name), "tables[%d][%d]", t, l);
			n += diff_field(what, name, a->tables[t][l],
					b->tables[t][l]);
			snprintf(name, sizeof(name), "leaves[%d][%d]", t, l);
			n += diff_field(what, name, a->leaves[t][l],
					b->leaves[t][l]);
		}
	}
#define TH_DIFF(f) (n += diff_field(what, #f, a->f, b->f))
	TH_DIFF(faults_fixed);
	TH_DIFF(faults_spurious);
	TH_DIFF(faults_retried);
	TH_DIFF(zapped_leaves);
	TH_DIFF(zapped_tables);
	TH_DIFF(flushes_range);
	TH_DIFF(flushes_all);
	TH_DIFF(roots_allocated);
	TH_DIFF(roots_freed);
	TH_DIFF(backend_busy);
	TH_DIFF(backend_errors);
	TH_DIFF(pages_in_use);
	TH_DIFF(demotes);
	TH_DIFF(demote_busy);
	TH_DIFF(demote_errors);
#undef TH_DIFF
	return n;
}
