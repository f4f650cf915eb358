/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private backend: the component that performs the real change to a
 * confidential VM's private page tables (for Intel TDX, SEAMCALLs into the
 * TDX module's Secure EPT).  The engine keeps a mirror of the private tree
 * and forwards every change of it here.
 *
 * Contract (who calls what, under which lock, what may fail):
 *
 *   callback      mmu_lock  may fail                 must guarantee
 *   link_table    read      busy or hard error       fully linked, or nothing changed
 *   set_leaf      read      busy or hard error       mapped, or nothing changed
 *   remove_leaf   write     no                       unmapped and out of every
 *                                                    vCPU's TLB on return
 *   free_table    write     reports failure; the     backend page reclaimed
 *                           engine leaks the page
 *   demote_leaf   write     busy or hard error       the huge leaf replaced by a
 *   (optional)    (zaps);                            linked table of 512 leaves
 *                 read                               one level down, or nothing
 *                 (faults,                           changed
 *                 only with
 *                 demote_in_faults)
 *   promote_leaf  write     busy, or a refusal       the table's 512 leaves
 *   (optional)              (e.g. leaves in          merged into one leaf and
 *                           different states)        the table released, or
 *                                                    nothing changed
 *
 * Ordering the engine guarantees:
 *   - a table is linked (link_table returned 0) before any callback names
 *     a GFN below it: the entry is frozen while the backend works, and
 *     every fault that meets a frozen entry retries;
 *   - link_table and set_leaf may run concurrently, on different entries;
 *   - remove_leaf, free_table, promote_leaf and a zap's demote_leaf run
 *     with mmu_lock held for write, never concurrently with any other
 *     callback of the same MMU; a fault's demote_leaf (demote_in_faults) runs with it held
 *     for read, like link_table and set_leaf, concurrently with them on
 *     other entries, while the huge leaf's mirror entry is frozen;
 *   - a table's leaves and child tables are removed before free_table is
 *     called for it, children before their parent.
 *
 * Blocking: every callback runs with this MMU's mmu_lock held and, as a
 * rule, inside an RCU read-side section.  It may sleep (a SEAMCALL retry loop, a wait
 * for an IPI to vCPUs that are running the guest); that delays this MMU's
 * writers and the freeing of unlinked tables, never another MMU's writers.
 * It must not call any libtdp function (mmu_locks never nest: the call
 * aborts), nor wait for a thread that waits for this MMU's mmu_lock, nor
 * wait for an RCU grace period.
 *
 * Return values of link_table / set_leaf: 0 on success, -EBUSY for a
 * transient conflict (the engine restores the mirror entry and the fault
 * reports TDP_FAULT_RETRY), any other negative errno for a hard error (the
 * engine restores the mirror entry and returns that value to the caller
 * of tdp_map()).  Backends should not return -EIO from map callbacks:
 * -EIO from the engine means the MMU is dead.
 *
 * demote_leaf(gfn, level, pfn, new_table): split the private huge leaf at
 * (@gfn, @level), which maps @pfn (the first frame, aligned to the level),
 * into a table linked at the same entry, using the backend page
 * @new_table (allocated by the engine as for link_table; NULL when
 * ext_table_size is 0).  The table holds 512 leaves at @level - 1; leaf i
 * maps @pfn + i * tdp_level_pages(@level - 1) and keeps the state the huge
 * leaf had (TDX: accepted or pending), so the guest loses no data and no
 * mapping.  The engine calls it when a private range zap covers a huge
 * leaf only partly, before it removes anything, and afterwards removes
 * only the covered leaves; and, if the backend sets demote_in_faults, when
 * a fault needs a mapping smaller than a private huge leaf that covers
 * its GFN (a 4 KiB fault under a 2 MiB leaf): mmu_lock is then held for
 * read, the leaf's mirror entry was frozen by compare-exchange, -EBUSY
 * makes the fault answer TDP_FAULT_RETRY and a hard error is returned by
 * tdp_map(), with nothing changed either way.  No write lock is taken for
 * a fault's demote.  Return values: 0 on success; -EBUSY for a
 * transient conflict, with nothing changed (the engine drops mmu_lock,
 * yields and tries again, and after TDP_DEMOTE_BUSY_TRIES busy answers
 * in a row the zap returns -EBUSY); any other negative errno for a hard
 * error, with nothing changed (the zap returns it).  Either way the zap
 * has removed nothing when it returns the error, except in one case: if
 * it had yielded mmu_lock and a huge leaf appeared across an end of the
 * range meanwhile (a fault mapped one, or a promote merged a table into
 * one), leaves inside the range zapped before may be gone.  A leaf outside the range is never removed.  Optional: without
 * it a zap that covers a huge private leaf partly removes the whole leaf.
 *
 * promote_leaf(gfn, level, pfn, old_table): merge the table linked at
 * (@gfn, @level), whose 512 entries are leaves at @level - 1 mapping
 * @pfn, @pfn + tdp_level_pages(@level - 1), ... in order (@pfn aligned to
 * @level), into one leaf at @level mapping @pfn, and release the table's
 * backend page @old_table (TDX: PAGE.PROMOTE; the engine frees the page
 * once this returned 0, as after free_table).  Called with mmu_lock held
 * for write by tdp_promote_private() and by tdp_recover_huge_pages() for
 * the private alias, only for tables whose mirror entries meet those
 * conditions.  Return values: 0 on success; -EBUSY for a transient
 * conflict; any other negative errno when the backend refuses (TDX: the
 * leaves are not all in one state, MAPPED or PENDING).  On failure
 * nothing changed: the engine leaves the table as it is, counts the
 * answer and goes on with the next one.
 *
 * A non-zero return from remove_leaf, or from free_table, is a broken
 * contract: the engine puts the MMU in the dead state (every later
 * operation returns -EIO) and never frees a page the backend may still
 * reference (a table whose free_table failed leaks its backend page).
 *
 * Levels: @level is the level of the mirror SPTE being changed.  For
 * link_table and free_table that SPTE points at a table whose entries are
 * at @level - 1; @gfn is the first GFN the SPTE covers (aligned to the
 * level).  GFNs are always unaliased private GFNs.
 */
#ifndef TDP_BACKEND_H
#define TDP_BACKEND_H

#include <tdp/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A page owned by the backend, allocated by the engine (ext_table_size
 * bytes, zeroed, page aligned) for each mirror table, handed to
 * link_table (or demote_leaf, for a table a demote creates) and
 * free_table and freed by the engine after free_table succeeded.  The
 * engine never reads or writes it: the type is incomplete on purpose.
 */
struct tdp_ext_table;

struct tdp_private_backend {
	int (*link_table)(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext_table);
	int (*set_leaf)(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn);
	int (*remove_leaf)(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn);
	int (*free_table)(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext_table);
	/* Passed as the first argument of every callback. */
	void *ctx;
	/* Bytes of the backend page per mirror table; 0 for none. */
	size_t ext_table_size;
	/* Optional (NULL: partial zaps remove whole huge leaves). */
	int (*demote_leaf)(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			   struct tdp_ext_table *new_table);
	/*
	 * The backend accepts demote_leaf from faults too, under mmu_lock
	 * held for read (see above).  False: a fault that needs a smaller
	 * mapping below a private huge leaf changes nothing and answers
	 * TDP_FAULT_SPURIOUS.  Needs demote_leaf (else -EINVAL at create).
	 */
	bool demote_in_faults;
	/* Optional (NULL: private tables are never merged back). */
	int (*promote_leaf)(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			    struct tdp_ext_table *old_table);
};

/* Busy answers of demote_leaf in a row after which a zap returns -EBUSY. */
#define TDP_DEMOTE_BUSY_TRIES 8

#ifdef __cplusplus
}
#endif

#endif /* TDP_BACKEND_H */
