/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared set-up of the mirror tests: a 4-level MMU of a confidential VM
 * (36 GFN bits, shared bit 1 << 35) whose private backend is a recorder,
 * one vCPU context, and fault helpers that name the alias explicitly.
 */
#ifndef TDP_TESTS_MIRROR_HARNESS_H
#define TDP_TESTS_MIRROR_HARNESS_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tdp/tdp.h>

#include "ts_backend.h"

#define MENV_ROOT_LEVEL 4
#define MENV_SHARED_BIT (1ULL << 35)
/* Unaliased GFNs are below the shared bit. */
#define MENV_GFN_LIMIT MENV_SHARED_BIT

/* Retries of one fault before a test gives up (a livelock is a bug). */
#define MENV_MAX_RETRIES 1000000

struct menv {
	struct ts_backend *rec;
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	uint64_t flushes; /* atomic: host flush callbacks seen */
};

/*
 * menv_init() - recorder with backend pages of @ext_size bytes, MMU with
 * @mmu_flags, and one vCPU.  Every step is asserted.  The calling thread
 * must be registered.
 */
void menv_init(struct menv *e, size_t ext_size, unsigned int mmu_flags);

/* What menv_init_backend() offers of the recorder's demote_leaf. */
enum {
	MENV_DEMOTE = 1,	   /* to zaps (true works too) */
	MENV_DEMOTE_IN_FAULTS = 3, /* to zaps and faults */
	MENV_PROMOTE = 4,	   /* promote_leaf, ORed with the above */
};

/* menv_init() with the recorder's demote_leaf and promote_leaf offered as
 * @demote says (0, MENV_DEMOTE or MENV_DEMOTE_IN_FAULTS, | MENV_PROMOTE). */
void menv_init_backend(struct menv *e, size_t ext_size,
		       unsigned int mmu_flags, unsigned int demote);

/* Destroy the vCPU (if any), then the MMU, then the recorder. */
void menv_fini(struct menv *e);

/*
 * menv_map() - one tdp_map() of unaliased @gfn in @alias
 * (TDP_ALIAS_PRIVATE or TDP_ALIAS_SHARED) with full rights, reading the
 * sequence first.  Returns what tdp_map() returned.
 */
int menv_map(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	     enum tdp_alias alias, tdp_pfn_t pfn, int max_level);

/*
 * menv_map_retry() - menv_map() until it returns anything but
 * TDP_FAULT_RETRY (at most MENV_MAX_RETRIES tries; then RETRY).
 * @retries, if not NULL, gets the number of RETRY results seen.
 */
int menv_map_retry(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		   enum tdp_alias alias, tdp_pfn_t pfn, int max_level,
		   unsigned long *retries);

/*
 * menv_lookup_leaf() - tdp_lookup() of @gfn in @alias; true if it found a
 * present leaf (its level and PFN are stored).  Asserts the lookup
 * succeeded and never returned the frozen value.
 */
bool menv_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		      int *level, tdp_pfn_t *pfn);

/* Sum of stats.tables / stats.leaves of one root type over all levels. */
uint64_t menv_stat_tables(const struct tdp_stats *st, int root_type);
uint64_t menv_stat_leaves(const struct tdp_stats *st, int root_type);

/* A seed for randomized tests: $TDP_TEST_SEED if set, else @fallback. */
uint64_t menv_seed(uint64_t fallback);

/* First GFN of the level-@level entry covering @gfn. */
static inline tdp_gfn_t menv_round_down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_pages(level) - 1);
}

/* splitmix64 step: a small deterministic generator for the tests. */
static inline uint64_t menv_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Leak checking of a test that kills an MMU on purpose: a dead MMU leaks
 * what the backend may still reference (tdp/backend.h), so allocations
 * made between these calls are not reported by LeakSanitizer.  No-ops in
 * builds without ASan.
 */
void menv_expect_leaks_begin(void);
void menv_expect_leaks_end(void);

/* cmocka group setup and teardown: register the test's main thread. */
int menv_group_setup(void **state);
int menv_group_teardown(void **state);

#endif /* TDP_TESTS_MIRROR_HARNESS_H */
