/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strict recording private backend of every test: the cmocka tests
 * (tests/mirror, tests/inject, tests/fuzz), the stress programs (stress/)
 * and the kernel self-test (kernel/selftest/).  Written on the port layer
 * only (libtdp/port/port.h), so the same source builds in user space and
 * in the kernel.
 *
 * The backend keeps its own model of the private tree: linked tables and
 * leaves keyed by (level, gfn), where level is the level of the mirror
 * SPTE the engine changed (tdp/backend.h).  Every callback is checked
 * against that model and against the contract of tdp/backend.h; a broken
 * rule is recorded as a violation (logged at once) and the tests check
 * that none was recorded.  Checked rules:
 *
 *   - GFNs unaliased (no shared bit) and aligned to the level, levels in
 *     range for the callback, PFNs of leaves aligned to the level;
 *   - link_table / set_leaf below a table that is not linked, still being
 *     linked, or was handed to a failed free_table (a child before its
 *     parent); entries of the root table need no parent;
 *   - link_table of an entry that is linked (or being linked), set_leaf of
 *     an entry that is mapped (or being mapped), a leaf over a table or a
 *     table over a leaf (nothing mapped twice);
 *   - map callbacks (link_table, set_leaf, and demote_leaf from a fault)
 *     with mmu_lock held for read and not for write, never overlapping a
 *     removal; removals (remove_leaf, free_table, promote_leaf, and
 *     demote_leaf from a zap) with mmu_lock held for write, never two at
 *     once and never overlapping a map callback;
 *   - the mirror entry a map callback, demote_leaf or promote_leaf works
 *     on reads back FROZEN through tdp_lookup() while the callback runs;
 *   - remove_leaf of a leaf the model does not have (or with another PFN),
 *     or that the mirror still maps; free_table of an unknown table, of a
 *     table that still has entries below it (children first), that the
 *     mirror still links, or with another backend page than was linked;
 *   - demote_leaf of a leaf the model does not have at that level (or with
 *     another PFN), or with entries already below it; on success the leaf
 *     becomes a linked table of 512 leaves one level down mapping its
 *     frames in order;
 *   - promote_leaf of a table the model does not have (or with another
 *     backend page), or whose 512 entries are not leaves mapping @pfn
 *     onwards in order; on success the table becomes one leaf and its
 *     backend page is released;
 *   - backend pages: present exactly when the MMU has a backend page
 *     size, page aligned, zeroed when linked, never owned by two live
 *     tables, untouched by the engine while linked (a mark at both ends);
 *   - any callback while the test forbids them (after the MMU died).
 *
 * Injection (all thread-safe): a delay inside link_table, a rate of
 * -EBUSY and of hard errors (-ENOSPC) for link_table and set_leaf drawn
 * from a seeded generator, one-shot failures of the next map callback
 * with a chosen errno, of the next remove_leaf / free_table, and of the
 * next demote_leaf / promote_leaf calls with a chosen errno.  A failed
 * callback leaves the model unchanged.
 *
 * Callbacks never sleep (the kernel calls them inside an RCU read-side
 * section with mmu_lock held): the model lives under a port spinlock and
 * its memory comes from tdp_zalloc_atomic().  Running out of it is
 * recorded as a violation, since the model can no longer check.
 *
 * White box: the lock checks read the MMU's mmu_lock through the engine's
 * internal header.
 */
#ifndef TDP_TESTS_SUPPORT_TS_BACKEND_H
#define TDP_TESTS_SUPPORT_TS_BACKEND_H

#include <tdp/tdp.h>

struct ts_backend;

/* The value of @expr read under the port spinlock @lock (test support). */
#define TS_LOCKED(lock, expr)            \
	({                               \
		__typeof__(expr) __ts_v; \
		tdp_spin_lock(lock);     \
		__ts_v = (expr);         \
		tdp_spin_unlock(lock);   \
		__ts_v;                  \
	})

enum ts_call {
	TS_LINK_TABLE,
	TS_SET_LEAF,
	TS_REMOVE_LEAF,
	TS_FREE_TABLE,
	TS_DEMOTE_LEAF,
	TS_PROMOTE_LEAF,
	TS_NR_CALLS,
};

/* One callback as the engine made it, with what the backend returned. */
struct ts_event {
	enum ts_call call;
	tdp_gfn_t gfn;
	int level;
	tdp_pfn_t pfn;		   /* set_leaf, remove_leaf, demote/promote */
	struct tdp_ext_table *ext; /* link_table, free_table, demote/promote */
	int ret;
};

/* Callback counts; "ok" counts calls that returned 0. */
struct ts_counts {
	uint64_t calls[TS_NR_CALLS];
	uint64_t ok[TS_NR_CALLS];
	uint64_t injected_busy;	  /* -EBUSY returned by link/set */
	uint64_t injected_errors; /* other errors returned by link/set */
	uint64_t violations;
};

/*
 * ts_backend_create() - a backend for an MMU of @root_level levels whose
 * shared bit is @direct_bits, with backend pages of @ext_table_size bytes
 * (0 for none, else at least 16: the backend marks both ends of its
 * pages).  NULL on allocation failure or a smaller page size.
 */
struct ts_backend *ts_backend_create(int root_level, tdp_gfn_t direct_bits,
				     size_t ext_table_size);
/*
 * Free the model.  Backend pages of tables whose free_table failed, or
 * that a dead MMU never handed back, are the backend's by contract and
 * were allocated by the engine: they are left alone.
 */
void ts_backend_destroy(struct ts_backend *b);

/* The backend to put in struct tdp_mmu_config (ctx is @b). */
const struct tdp_private_backend *ts_backend_ops(struct ts_backend *b);

/*
 * The MMU the backend serves, for the lock and mirror checks; set right
 * after tdp_mmu_create() (before it those checks are skipped).
 */
void ts_backend_set_mmu(struct ts_backend *b, struct tdp_mmu *mmu);

/* Wait @usec microseconds inside every link_table (tdp_udelay). */
void ts_set_link_delay(struct ts_backend *b, unsigned int usec);

/*
 * Fail link_table / set_leaf with -EBUSY at @busy_permille and with
 * -ENOSPC at @error_permille (per thousand calls), drawn from a generator
 * seeded with @seed.
 */
void ts_set_injection(struct ts_backend *b, unsigned int busy_permille,
		      unsigned int error_permille, uint64_t seed);

/* Fail the next call of @call (TS_LINK_TABLE or TS_SET_LEAF) with @err. */
void ts_fail_next_map(struct ts_backend *b, enum ts_call call, int err);

/* Fail the next remove_leaf / free_table (returns -EFAULT). */
void ts_fail_next_remove(struct ts_backend *b);
void ts_fail_next_free(struct ts_backend *b);

/*
 * Offer demote_leaf (off by default: partial private zaps then remove
 * whole huge leaves), to faults too when @in_faults (demote_in_faults).
 * Call before tdp_mmu_create(), which copies the backend.
 */
void ts_set_demote(struct ts_backend *b, bool on, bool in_faults);

/* Offer promote_leaf (off by default).  Call before tdp_mmu_create(). */
void ts_set_promote(struct ts_backend *b, bool on);

/* Fail the next @n promote_leaf calls with @err (-EBUSY or a refusal). */
void ts_fail_next_promotes(struct ts_backend *b, int err, int n);

/* Fail the next @n demote_leaf calls with @err (-EBUSY or a hard error). */
void ts_fail_next_demotes(struct ts_backend *b, int err, int n);

/* Record a violation for every callback from now on (after death). */
void ts_forbid_calls(struct ts_backend *b, bool forbid);

/*
 * A hook run inside link_table and set_leaf after the checks and before
 * the result is decided, with mmu_lock held for read by the caller.
 */
typedef void (*ts_hook_fn)(void *arg, enum ts_call call, tdp_gfn_t gfn,
			   int level);
void ts_set_hook(struct ts_backend *b, ts_hook_fn fn, void *arg);

/*
 * A hook run at the end of every remove_leaf, with mmu_lock held for
 * write by the caller (the removal itself is recorded already).
 */
void ts_set_remove_hook(struct ts_backend *b, ts_hook_fn fn, void *arg);

/* Event log: off by default; clearing also empties it. */
void ts_log_enable(struct ts_backend *b, bool on);
void ts_log_clear(struct ts_backend *b);
size_t ts_log_count(struct ts_backend *b);
/* Event @i (ret -ERANGE past the end). */
struct ts_event ts_log_get(struct ts_backend *b, size_t i);

/* Record a violation from a test (logged like the backend's own). */
void ts_violation(struct ts_backend *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct ts_counts ts_counts(struct ts_backend *b);
uint64_t ts_calls(struct ts_backend *b, enum ts_call call);
uint64_t ts_ok(struct ts_backend *b, enum ts_call call);
uint64_t ts_violations(struct ts_backend *b);

/* Live entries of the model. */
size_t ts_nr_tables(struct ts_backend *b);
size_t ts_nr_leaves(struct ts_backend *b);

/*
 * The leaf covering unaliased @gfn: true and its level and PFN (the PFN of
 * the leaf's first frame) if the model has one.
 */
bool ts_leaf_at(struct ts_backend *b, tdp_gfn_t gfn, int *level,
		tdp_pfn_t *pfn);

/* True if the model has a linked table at entry (@level, @gfn). */
bool ts_table_at(struct ts_backend *b, tdp_gfn_t gfn, int level);

/*
 * The backend page linked for entry (@level, @gfn) or still held after a
 * failed free_table; NULL if none.
 */
struct tdp_ext_table *ts_table_ext(struct ts_backend *b, tdp_gfn_t gfn,
				   int level);

/*
 * True if @ext still carries the mark the backend wrote when it was
 * linked (the engine never wrote it and never freed it: reading a freed
 * page trips ASan).
 */
bool ts_ext_intact(struct ts_backend *b, const struct tdp_ext_table *ext);

/*
 * ts_compare() - compare the model with the mirror, entry for entry, over
 * unaliased GFNs [start, end), with the MMU quiescent:
 *   - tdp_lookup(PRIVATE) never returns the frozen value and never fails;
 *   - a present leaf at level L <=> the model has a leaf at (L, gfn) with
 *     the same PFN; the walk down to it <=> linked tables in the model;
 *   - the leaves of the model inside the window are exactly those found;
 *   - nothing of the model is half-way (a map callback in flight);
 *   - model tables == sum of stats.tables[MIRROR][1 .. root_level - 1],
 *     model leaves == sum of stats.leaves[MIRROR][*].
 * Logs every mismatch (the first few in detail) and returns their number.
 */
unsigned long ts_compare(struct ts_backend *b, struct tdp_mmu *mmu,
			 tdp_gfn_t start, tdp_gfn_t end);

#endif /* TDP_TESTS_SUPPORT_TS_BACKEND_H */
