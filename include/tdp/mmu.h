/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MMU lifetime: one struct tdp_mmu owns the second-stage page tables of one
 * virtual machine.  It always has a direct root; created with a private
 * backend it also keeps a mirror root of the private tree.
 *
 * Threads: every thread that calls into an MMU (vCPU threads, the thread
 * that zaps, benchmark and test threads) must call tdp_thread_register()
 * once before its first call and tdp_thread_unregister() before it exits.
 * Registration gives the thread its record in every mmu_lock (a call that
 * takes mmu_lock from an unregistered thread aborts with a message) and
 * makes it known to RCU, which defers the freeing of page tables.
 */
#ifndef TDP_MMU_H
#define TDP_MMU_H

#include <tdp/backend.h>
#include <tdp/spte.h>
#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * TLB maintenance and dirty reporting the engine asks of the host.  GFNs
 * are as the hardware indexes the direct tree: the shared bit is included.
 * The flush callbacks are required.  All are called with mmu_lock held
 * (read or write), usually inside an RCU read-side section.  They may
 * sleep and wait for threads that do not need this MMU's mmu_lock; they
 * must not call any libtdp function (locks never nest: it aborts), wait
 * for a thread blocked on this MMU's mmu_lock, or wait for an RCU grace
 * period.  Blocking delays this MMU's writers only.
 */
struct tdp_host_ops {
	/* Invalidate cached translations of [gfn, gfn + nr_pages). */
	void (*flush_range)(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages);
	/* Invalidate every cached translation of the VM. */
	void (*flush_all)(void *ctx);
	/*
	 * Optional: a direct-root leaf mapping [gfn, gfn + nr_pages) was
	 * removed (zap, teardown, table removal) with its hardware dirty bit
	 * set; the host marks the backing memory dirty.  Every dirty bit
	 * hardware set before the removal is reported here or by
	 * tdp_harvest_dirty(), never lost.
	 */
	void (*mark_dirty)(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages);
	void *ctx;
};

enum tdp_mmu_flags {
	/*
	 * Debug: every long walk yields at every step that made progress, as
	 * if mmu_lock were always contended.  For tests of the restart rules.
	 */
	TDP_MMU_FORCE_YIELD = 1 << 0,
};

struct tdp_mmu_config {
	/* 4 or 5: levels of the tree; 4 translates 48 GPA bits, 5 57. */
	int root_level;
	/*
	 * GFN bits the VM uses; GFNs must be below 1 << gfn_bits.  0 means
	 * the root level's full width (36 for 4 levels, 45 for 5).
	 */
	unsigned int gfn_bits;
	/*
	 * The shared bit as a GFN bit (for TDX with 4 levels: 1 << 35, GPA
	 * bit 47), or 0 for a VM without aliases.  Required (non-zero) with
	 * a backend; must be a single bit below 1 << gfn_bits, and every
	 * unaliased GFN must be below it.
	 */
	tdp_gfn_t direct_bits;
	/* SPTE layout; NULL selects tdp_spte_format_ept. */
	const struct tdp_spte_format *format;
	/* Required TLB callbacks. */
	struct tdp_host_ops host;
	/* Private backend; NULL for a VM with no private memory. */
	const struct tdp_private_backend *backend;
	/* Mask of enum tdp_mmu_flags. */
	unsigned int flags;
};

/*
 * tdp_mmu_create() - create an MMU with an empty direct root, and an empty
 * mirror root if @cfg names a backend.  The config is copied.
 * Returns 0 and stores the MMU in @out; -EINVAL for a bad config (root
 * level not 4 or 5, gfn_bits too wide, direct_bits not a single bit in
 * range or missing with a backend, a missing host or backend callback, a
 * format that fails tdp_spte_format_check()); -ENOMEM.
 */
TDP_API int tdp_mmu_create(const struct tdp_mmu_config *cfg, struct tdp_mmu **out);

/*
 * tdp_mmu_teardown() - tear the MMU down and keep it for inspection:
 * takes mmu_lock for write, invalidates every root, zaps each (every
 * mirror leaf through remove_leaf, every mirror table through free_table),
 * waits for all RCU callbacks, and leaves zero tables in the statistics.
 * Every vCPU context must be destroyed, and every reference taken with
 * tdp_root_get() put, first (a root still referenced keeps its table).
 * Afterwards every operation except tdp_mmu_get_stats() and
 * tdp_mmu_destroy() returns -ESHUTDOWN, this one included.
 *
 * Concurrency: tdp_mmu_zap_invalidated_roots() and tdp_mmu_get_stats()
 * may run on other threads meanwhile; no other call on the MMU may be
 * running when teardown starts, nor another teardown or destroy.  A
 * tdp_mmu_zap_invalidated_roots() either returns -ESHUTDOWN without
 * touching a root, or is waited for: after dropping mmu_lock, teardown
 * waits until every such call that got in has made its last access to
 * the MMU (it may be zapping a root that teardown had to leave to it).
 * So when teardown returns no zap is running, the statistics hold no
 * table, and tdp_mmu_destroy() may follow at once, even if those calls
 * have not returned to their callers yet.
 * Lock: takes mmu_lock for write; must not be called with it held or
 * from a host or backend callback.
 * Returns 0, -EIO if the MMU is (or became) dead, -EINVAL for NULL or
 * while vCPU contexts still exist, -ESHUTDOWN if already torn down.
 */
TDP_API int tdp_mmu_teardown(struct tdp_mmu *mmu);

/*
 * tdp_mmu_destroy() - tear down (if not done yet) and free the MMU.
 * A dead MMU leaks whatever the backend may still reference.
 * Every vCPU context must have been destroyed.  No other call on the MMU
 * may be running or start from now on; the only exception is the
 * tdp_mmu_zap_invalidated_roots() calls that a tdp_mmu_teardown(), which
 * returned before destroy was called, waited for (see there).  NULL is
 * ignored.
 */
TDP_API void tdp_mmu_destroy(struct tdp_mmu *mmu);

/*
 * tdp_mmu_exclusive() - call @fn(@arg) with mmu_lock held for write, for
 * an embedder that must see the tables at rest: a checker comparing its
 * TLB model with the tree, a snapshot, a debug dump.  While @fn runs no
 * libtdp operation on this MMU is in flight: each one has either not
 * started, returned, or is parked in a yield of mmu_lock, and an
 * operation only yields after issuing the flushes of what it changed so
 * far.  So every translation a CPU may still hold that the tree does not
 * back is a missing flush.  Lockless readers (tdp_lookup(), aging,
 * hardware) and tdp_mmu_get_stats() still run.
 *
 * @fn runs inside a walk section: it may read tables through
 * tdp_pfn_to_table() from the roots without tdp_walk_begin().  It may
 * call the lockless readers (tdp_lookup(), tdp_mmu_seq(), statistics)
 * but nothing that takes mmu_lock (that aborts: locks never nest), and
 * must not wait for a thread that needs this MMU's mmu_lock or for an
 * RCU grace period.  Every writer and fault of the MMU waits for it.
 * Lock: takes mmu_lock for write; must not be called with it held, inside
 * tdp_walk_begin(), or from a host or backend callback.
 * Returns what @fn returned; -EINVAL for a NULL @mmu or @fn, -ESHUTDOWN
 * after teardown (then @fn is not called).
 */
TDP_API int tdp_mmu_exclusive(struct tdp_mmu *mmu, int (*fn)(void *arg),
			      void *arg);

/*
 * tdp_mmu_is_dead() - true once a no-fail backend callback failed.
 * Lock: none.
 */
TDP_API bool tdp_mmu_is_dead(const struct tdp_mmu *mmu);

/* The SPTE layout the MMU was created with. */
TDP_API const struct tdp_spte_format *tdp_mmu_format(const struct tdp_mmu *mmu);

/* The configured shared bit (0 for a VM without aliases). */
TDP_API tdp_gfn_t tdp_mmu_direct_bits(const struct tdp_mmu *mmu);

/*
 * tdp_thread_register() / tdp_thread_unregister() - make the calling
 * thread known to mmu_lock and to the RCU implementation.  Required once
 * per thread before any other call; nesting is counted.  Unregistering
 * while holding mmu_lock or inside tdp_walk_begin() aborts.
 */
TDP_API void tdp_thread_register(void);
TDP_API void tdp_thread_unregister(void);

#ifdef __cplusplus
}
#endif

#endif /* TDP_MMU_H */
