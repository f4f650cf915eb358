/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Roots: the top-level table of one tree.  A root has a role (its type:
 * direct or mirror); at most one valid root exists per role, and users
 * share it through a reference count.  The MMU itself owns one reference
 * to every valid root until the root is invalidated and zapped.
 *
 * Lifecycle: valid -> invalidated (tdp_mmu_invalidate_roots, write lock)
 * -> zapped exactly once (tdp_mmu_zap_invalidated_roots), which drops the
 * MMU's reference -> freed after an RCU grace period when the last user
 * reference is put.  Putting the last reference of a valid root is a bug
 * (asserted).
 */
#ifndef TDP_ROOT_H
#define TDP_ROOT_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tdp_root_type {
	TDP_ROOT_DIRECT = 0, /* shared alias; the only tree of a plain VM */
	TDP_ROOT_MIRROR = 1, /* private alias, mirrored to the backend */
};
#define TDP_NR_ROOT_TYPES 2

struct tdp_root;

/*
 * tdp_root_get() - take a reference to the valid root of @type, allocating
 * one if none is valid.  Concurrent callers get the same root.
 * Lock: takes mmu_lock for read (and an internal mutex to allocate).
 * Returns 0; -EINVAL for NULL or a mirror root on an MMU without backend;
 * -ENOMEM; -EIO when dead; -ESHUTDOWN after teardown.
 */
TDP_API int tdp_root_get(struct tdp_mmu *mmu, enum tdp_root_type type,
		 struct tdp_root **out);

/*
 * tdp_root_put() - drop a reference taken by tdp_root_get().  The last
 * reference of an invalidated root frees its tables after a grace period.
 * Lock: any; takes the root-list mutex.  NULL arguments are ignored.
 */
TDP_API void tdp_root_put(struct tdp_mmu *mmu, struct tdp_root *root);

/* Type, validity and current reference count (for tests and debugging). */
TDP_API enum tdp_root_type tdp_root_type_of(const struct tdp_root *root);
TDP_API bool tdp_root_is_valid(const struct tdp_root *root);
TDP_API int tdp_root_refcount(const struct tdp_root *root);

/*
 * tdp_root_table_pfn() - the frame of @root's top-level table and its
 * level, for a walk outside the library (tdp_walk_begin(),
 * tdp_pfn_to_table()): a debugger or a simulator that inspects the
 * mirror tree, which tdp_vcpu_load_root() does not hand out because no
 * hardware walks it.  The caller holds a reference to @root
 * (tdp_root_get()), which keeps the table allocated.
 * Lock: none.  Returns 0; -EINVAL for NULL arguments.
 */
TDP_API int tdp_root_table_pfn(const struct tdp_root *root, tdp_pfn_t *pfn,
			       int *level);

/*
 * tdp_mmu_invalidate_roots() - mark the valid roots selected by @alias
 * invalid and schedule each to be zapped once.  Nothing is zapped or
 * flushed here.  A vCPU keeps the root it loaded, and hardware may keep
 * walking it, until its next tdp_vcpu_load_root() (or tdp_map()), which
 * loads a fresh one.
 * Lock: takes mmu_lock for write.
 * Returns 0; -EINVAL for a bad filter; -EOPNOTSUPP when @alias includes
 * TDP_ALIAS_PRIVATE on an MMU with a backend (the mirror root is only
 * invalidated by teardown); -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, enum tdp_alias alias);

/*
 * tdp_mmu_zap_invalidated_roots() - zap every root scheduled by
 * tdp_mmu_invalidate_roots() that no one zapped yet, then drop the MMU's
 * reference to it.  Each root is zapped exactly once even with
 * concurrent callers.  Tables are unlinked atomically and freed after a
 * grace period.  Every translation cleared is flushed through the host
 * callbacks before the lock is dropped (also before each yield), because
 * a vCPU that loaded the root before the invalidation may still run on it
 * and cache what it maps: when the call returns, no TLB holds a
 * translation the zapped root had, and the host may free or reuse the
 * pages it mapped.
 * May run concurrently with tdp_mmu_teardown(): it then returns
 * -ESHUTDOWN, or teardown waits until it is done with the MMU (see
 * tdp/mmu.h).
 * Lock: takes mmu_lock for read (for write to finish a mirror root it
 * claimed from a running teardown) and yields while walking.
 * Returns 0; -EIO; -ESHUTDOWN.
 */
TDP_API int tdp_mmu_zap_invalidated_roots(struct tdp_mmu *mmu);

#ifdef __cplusplus
}
#endif

#endif /* TDP_ROOT_H */
