/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A strict recording private backend for the mirror tests.
 *
 * The recorder keeps its own model of the private tree: linked tables keyed
 * by (level, gfn) and leaves keyed by (level, gfn), where level is the level
 * of the mirror SPTE the engine changed (tdp/backend.h).  Every callback is
 * checked against that model and against the contract of tdp/backend.h; a
 * broken rule is recorded as a violation (printed at once) and the tests
 * assert that none was recorded.  Checked rules:
 *
 *   - link_table / set_leaf below a table that is not linked (a child
 *     before its parent); entries of the root table need no parent;
 *   - link_table of an entry that is linked (or being linked), set_leaf of
 *     an entry that is mapped (or being mapped), a leaf over a table or a
 *     table over a leaf;
 *   - remove_leaf of a leaf the recorder does not have (or with another
 *     PFN), free_table of an unknown table, of a table that still has
 *     children, or with another backend page than was linked;
 *   - remove_leaf / free_table / demote_leaf without mmu_lock held for
 *     write, two of them at once, a map callback overlapping one of them,
 *     a map callback without mmu_lock held for read (a demote_leaf under
 *     the read lock, a fault's, counts as a map callback);
 *   - demote_leaf of a leaf the recorder does not have at that level (or
 *     with another PFN), or with entries already below it; on success
 *     the leaf becomes a linked table of 512 leaves one level down
 *     mapping its frames in order;
 *   - promote_leaf of a table the recorder does not have (or with another
 *     backend page), or whose 512 entries are not leaves mapping @pfn
 *     onwards in order; on success the table becomes one leaf and its
 *     backend page is released;
 *   - backend pages: page aligned, zeroed when linked, distinct among live
 *     tables, untouched by the engine while linked, NULL when the MMU has
 *     no backend page size;
 *   - GFNs aliased, misaligned to the level, or levels out of range;
 *   - any callback while the test forbids them (after the MMU died).
 *
 * Injection (all thread-safe): a sleep inside link_table, a rate of -EBUSY
 * and of hard errors (-ENOSPC) for link_table and set_leaf drawn from a
 * seeded generator, one-shot failures of the next map callback with a
 * chosen errno, one-shot failures of the next remove_leaf / free_table,
 * and of the next demote_leaf with a chosen errno.
 * A failed callback leaves the model unchanged.
 */
#ifndef TDP_TESTS_MIRROR_RECORDER_H
#define TDP_TESTS_MIRROR_RECORDER_H

#include <tdp/tdp.h>

struct recorder;

enum rec_call {
	REC_LINK_TABLE,
	REC_SET_LEAF,
	REC_REMOVE_LEAF,
	REC_FREE_TABLE,
	REC_DEMOTE_LEAF,
	REC_PROMOTE_LEAF,
	REC_NR_CALLS,
};

/* One callback as the engine made it, with what the recorder returned. */
struct rec_event {
	enum rec_call call;
	tdp_gfn_t gfn;
	int level;
	tdp_pfn_t pfn;		   /* set_leaf, remove_leaf, demote_leaf */
	struct tdp_ext_table *ext; /* link_table, free_table, demote_leaf */
	int ret;
};

/* Callback counts; "ok" counts calls that returned 0. */
struct rec_counts {
	uint64_t calls[REC_NR_CALLS];
	uint64_t ok[REC_NR_CALLS];
	uint64_t injected_busy;	  /* -EBUSY returned by link/set */
	uint64_t injected_errors; /* other errors returned by link/set */
	uint64_t violations;
};

/*
 * rec_create() - a recorder for an MMU of @root_level levels whose shared
 * bit is @direct_bits, handing out backend pages of @ext_table_size bytes
 * (0 for none).  NULL on allocation failure.
 */
struct recorder *rec_create(int root_level, tdp_gfn_t direct_bits,
			    size_t ext_table_size);
void rec_destroy(struct recorder *r);

/* The backend to put in struct tdp_mmu_config (ctx is @r). */
const struct tdp_private_backend *rec_backend(struct recorder *r);

/*
 * The MMU the recorder serves, for the lock checks; set right after
 * tdp_mmu_create() (before it the lock checks are skipped).
 */
void rec_set_mmu(struct recorder *r, struct tdp_mmu *mmu);

/* Sleep @usec microseconds inside every link_table. */
void rec_set_link_sleep(struct recorder *r, unsigned int usec);

/*
 * Fail link_table / set_leaf with -EBUSY at @busy_permille and with
 * -ENOSPC at @error_permille (per thousand calls), drawn from a generator
 * seeded with @seed.
 */
void rec_set_injection(struct recorder *r, unsigned int busy_permille,
		       unsigned int error_permille, uint64_t seed);

/* Fail the next call of @call (REC_LINK_TABLE or REC_SET_LEAF) with @err. */
void rec_fail_next_map(struct recorder *r, enum rec_call call, int err);

/* Fail the next remove_leaf / free_table (returns -EFAULT). */
void rec_fail_next_remove(struct recorder *r);
void rec_fail_next_free(struct recorder *r);

/*
 * Offer demote_leaf (off by default: partial private zaps then remove
 * whole huge leaves), to faults too when @in_faults (demote_in_faults).
 * Call before tdp_mmu_create(), which copies the backend.
 */
void rec_set_demote(struct recorder *r, bool on, bool in_faults);

/* Offer promote_leaf (off by default).  Call before tdp_mmu_create(). */
void rec_set_promote(struct recorder *r, bool on);

/* Fail the next @n promote_leaf calls with @err (-EBUSY or a refusal). */
void rec_fail_next_promotes(struct recorder *r, int err, int n);

/*
 * Fail the next @n demote_leaf calls with @err (-EBUSY or a hard error);
 * call while no zap runs.
 */
void rec_fail_next_demotes(struct recorder *r, int err, int n);

/* Record a violation for every callback from now on (after death). */
void rec_forbid_calls(struct recorder *r, bool forbid);

/*
 * A hook run inside link_table and set_leaf after the checks and before
 * the result is decided, with mmu_lock held for read by the caller.
 */
typedef void (*rec_hook_fn)(void *arg, enum rec_call call, tdp_gfn_t gfn,
			    int level);
void rec_set_hook(struct recorder *r, rec_hook_fn fn, void *arg);

/*
 * A hook run at the end of every remove_leaf, with mmu_lock held for
 * write by the caller (the removal itself is recorded already).
 */
void rec_set_remove_hook(struct recorder *r, rec_hook_fn fn, void *arg);

/* Event log: off by default; clearing also empties it. */
void rec_log_enable(struct recorder *r, bool on);
void rec_log_clear(struct recorder *r);
size_t rec_log_count(struct recorder *r);
struct rec_event rec_log_get(struct recorder *r, size_t i);

/* Record a violation from a test (printed like the recorder's own). */
void rec_violation(struct recorder *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct rec_counts rec_counts(struct recorder *r);
uint64_t rec_violations(struct recorder *r);

/* Live entries of the model. */
size_t rec_nr_tables(struct recorder *r);
size_t rec_nr_leaves(struct recorder *r);

/*
 * The leaf covering unaliased @gfn: true and its level and PFN (the PFN of
 * the leaf's first frame) if the model has one.
 */
bool rec_leaf_at(struct recorder *r, tdp_gfn_t gfn, int *level, tdp_pfn_t *pfn);

/* True if the model has a linked table at entry (@level, @gfn). */
bool rec_table_at(struct recorder *r, tdp_gfn_t gfn, int level);

/*
 * The backend page linked for entry (@level, @gfn) or still held after a
 * failed free_table; NULL if none.
 */
struct tdp_ext_table *rec_table_ext(struct recorder *r, tdp_gfn_t gfn,
				    int level);

/*
 * True if @ext still carries the mark the recorder wrote when it was
 * linked (the engine never wrote it and never freed it: reading a freed
 * page trips ASan).
 */
bool rec_ext_intact(struct recorder *r, const struct tdp_ext_table *ext);

/*
 * rec_compare() - compare the recorder's model with the mirror, entry for
 * entry, over unaliased GFNs [start, end), with the MMU quiescent:
 *   - tdp_lookup(PRIVATE) never returns the frozen value and never fails;
 *   - a present leaf at level L <=> the model has a leaf at (L, gfn) with
 *     the same PFN; the walk down to it <=> linked tables in the model;
 *   - the leaves of the model inside the window are exactly those found;
 *   - nothing of the model is half-way (a map callback in flight);
 *   - model tables == sum of stats.tables[MIRROR][1 .. root_level - 1],
 *     model leaves == sum of stats.leaves[MIRROR][*].
 * Prints every mismatch (the first few in detail) and returns their number.
 */
unsigned long rec_compare(struct recorder *r, struct tdp_mmu *mmu,
			  tdp_gfn_t start, tdp_gfn_t end);

#endif /* TDP_TESTS_MIRROR_RECORDER_H */
