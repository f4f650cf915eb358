/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Set-up of the mirror tests on top of the shared test support
 * (tests/support): a 4-level MMU of a confidential VM (36 GFN bits,
 * shared bit TS_SHARED_BIT) whose private backend is the strict recording
 * backend, one vCPU context, and an asserting lookup.
 */
#ifndef TDP_TESTS_MIRROR_HARNESS_H
#define TDP_TESTS_MIRROR_HARNESS_H

#include "ts_cmocka.h"

/* Retries of one fault before a test gives up (a livelock is a bug). */
#define MENV_MAX_RETRIES 1000000

/* What menv_init_backend() offers of the backend's demote_leaf. */
enum {
	MENV_DEMOTE = 1,	   /* to zaps (true works too) */
	MENV_DEMOTE_IN_FAULTS = 3, /* to zaps and faults */
	MENV_PROMOTE = 4,	   /* promote_leaf, ORed with the above */
};

/*
 * menv_init_backend() - the strict backend with backend pages of
 * @ext_size bytes, demote_leaf and promote_leaf offered as @demote says
 * (0, MENV_DEMOTE or MENV_DEMOTE_IN_FAULTS, | MENV_PROMOTE), an MMU with
 * @mmu_flags, and one vCPU.  Every step is asserted.  The calling thread
 * must be registered.  ts_env_destroy() undoes it.
 */
void menv_init_backend(struct ts_env *e, size_t ext_size,
		       unsigned int mmu_flags, unsigned int demote);

/* menv_init_backend() without demote_leaf or promote_leaf. */
void menv_init(struct ts_env *e, size_t ext_size, unsigned int mmu_flags);

/*
 * menv_lookup_leaf() - tdp_lookup() of @gfn in @alias; true if it found a
 * present leaf (its level and PFN are stored).  Asserts the lookup
 * succeeded and never returned the frozen value.
 */
bool menv_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		      int *level, tdp_pfn_t *pfn);

/*
 * The mirror equals the backend's model over every unaliased GFN, and
 * the backend recorded no violation.
 */
#define menv_assert_mirror(e)                                               \
	do {                                                                \
		assert_int_equal(                                           \
			ts_compare((e)->be, (e)->mmu, 0, TS_GFN_LIMIT), 0); \
		assert_int_equal(ts_violations((e)->be), 0);                \
	} while (0)

/*
 * Tear down an MMU whose backend is set to fail a removal: the teardown
 * returns -EIO and leaves the MMU dead, and from then on every backend
 * callback is a violation.  Destroys the vCPU first.
 */
void menv_teardown_dead(struct ts_env *e);

/*
 * Leak checking of a test that kills an MMU on purpose: a dead MMU leaks
 * what the backend may still reference (tdp/backend.h), so allocations
 * made between these calls are not reported by LeakSanitizer.  No-ops in
 * builds without ASan.
 */
void menv_expect_leaks_begin(void);
void menv_expect_leaks_end(void);

#endif /* TDP_TESTS_MIRROR_HARNESS_H */
