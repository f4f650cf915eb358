/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the engine tests beyond the shared test support
 * (tests/support: MMUs with recording host callbacks, faults, lookups,
 * flush coverage): asserted statistics and their differences.
 *
 * Every test program registers its main thread before it runs its group
 * (ts_group_setup() or tdp_thread_register()); helper threads do the same.
 */
#ifndef TDP_TEST_HELPERS_H
#define TDP_TEST_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ts_cmocka.h"

/* GFN width of the test MMUs: root level 4, gfn_bits 0 means 36. */
#define TH_GFN_BITS 36
#define TH_GFN_LIMIT (1ULL << TH_GFN_BITS)

/* Copy of the statistics; asserts success. */
struct tdp_stats th_stats(const struct tdp_mmu *mmu);

/*
 * Print every field that differs between @a and @b (prefixed by @what) and
 * return how many differ.
 */
int th_stats_diff(const char *what, const struct tdp_stats *a,
		  const struct tdp_stats *b);

#endif /* TDP_TEST_HELPERS_H */
