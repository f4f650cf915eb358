/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the huge-page, dirty-logging and aging tests beyond the
 * shared test support (tests/support: MMUs with recording host callbacks,
 * faults, lookups, flush coverage): a white-box walk of the direct tree,
 * a simulated CPU that sets the accessed and dirty bits of leaves the way
 * hardware does, and failures from helper threads.
 *
 * Every test program registers its main thread before it runs its group
 * (TS_RUN_GROUP); helper threads do the same.  cmocka's assertions are not
 * thread-safe: helper threads report failures with HH_CHECK(), and the
 * main thread asserts hh_failures() == 0.
 */
#ifndef TDP_TEST_HUGE_HELPERS_H
#define TDP_TEST_HUGE_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ts_cmocka.h"

/* Read and write: the rights of a writable data page. */
#define HH_PROT_RW (TDP_PROT_READ | TDP_PROT_WRITE)

/* Copy of the statistics (thread-safe). */
struct tdp_stats hh_stats(const struct tdp_mmu *mmu);

/*
 * White-box walk of the valid direct root inside an RCU read-side
 * section: counts every linked table and present leaf of the whole tree,
 * and calls @fn (if not NULL) for each present leaf overlapping the
 * unaliased [start, end).  Only for a quiescent MMU or for counting.
 */
struct hh_tree_counts {
	uint64_t tables[TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_MAX_LEVEL + 1];
};
typedef void (*hh_leaf_fn)(void *arg, tdp_gfn_t gfn, int level,
			   tdp_spte_t spte);
void hh_tree_walk(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  hh_leaf_fn fn, void *arg, struct hh_tree_counts *counts);

/*
 * Compare the live counts of the statistics with a recount of every tree
 * (ts_recount.h): 0, or 1 with the first difference printed.  The MMU
 * must be quiescent.
 */
int hh_stats_match_tree(struct tdp_mmu *mmu);

/*
 * White-box: the address of the SPTE that translates unaliased @gfn in the
 * valid direct root (the present leaf, or the non-present SPTE where the
 * walk stops), and its level.  For a quiescent MMU: the table may be freed
 * once the caller's next operation changes the tree.
 */
tdp_spte_t *hh_sptep(struct tdp_mmu *mmu, tdp_gfn_t gfn, int *level);

/* ---- the simulated CPU -------------------------------------------------- */

/*
 * One guest access to unaliased @gfn through the valid direct root, as the
 * CPU performs it (ts_hw_access(), inside an RCU read-side section).
 */
enum ts_hw_result hh_hw_access(struct tdp_mmu *mmu, tdp_gfn_t gfn, bool write);

/* ---- failures from helper threads --------------------------------------- */

void hh_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Failures recorded so far (printing stopped after the first 20). */
unsigned long hh_failures(void);

#define HH_CHECK(cond, ...)                                       \
	do {                                                      \
		if (!(cond))                                      \
			hh_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* ---- small utilities ---------------------------------------------------- */

static inline void hh_bit_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ULL << (i % 64);
}

static inline bool hh_bit_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

/*
 * GFNs of the unit tests (their frames are ts_pfn()'s): the first GFN of
 * the @n-th 1 GiB region, and of 2 MiB block @b inside it.
 */
static inline tdp_gfn_t hh_gig(unsigned int n)
{
	return (tdp_gfn_t)n * TS_PAGES_1G;
}

static inline tdp_gfn_t hh_blk(unsigned int n, unsigned int b)
{
	return hh_gig(n) + (tdp_gfn_t)b * TS_PAGES_2M;
}

/*
 * Per-test teardown after ts_cmocka_setup(): the statistics must match
 * the direct tree, and the MMU must tear down cleanly.
 */
int hh_cmocka_teardown(void **state);
#define HH_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, ts_cmocka_setup, hh_cmocka_teardown)

#endif /* TDP_TEST_HUGE_HELPERS_H */
