/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host's SEAMCALLs on the Secure EPT of the simulated TDX module
 * (tdx_module.h for the model: walk rule, TLB epoch rule, locks).  Each
 * checks what the real module checks, in its order, and changes nothing
 * when it fails.
 */
#ifndef SIM_TDX_SEAMCALL_H
#define SIM_TDX_SEAMCALL_H

#include "tdx_module.h"

/*
 * TDH.MEM.SEPT.ADD: link the 4 KiB host page @pfn as the S-EPT table
 * below the FREE entry at (@gfn, @level); @level 2..root_level.  The page
 * must be TDX-usable and free in the PAMT.
 */
tdx_status_t tdx_sept_add(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			  tdp_pfn_t pfn, struct tdx_err_info *err);

/*
 * TDH.MEM.PAGE.AUG: map host page(s) @pfn at (@gfn, @level), @level 1 or
 * 2, as PENDING (the guest must ACCEPT before use).  The whole 4 KiB or
 * 2 MiB host range must be aligned, TDX-usable and free in the PAMT.
 */
tdx_status_t tdx_page_aug(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			  tdp_pfn_t pfn, struct tdx_err_info *err);

/*
 * TDH.MEM.PAGE.ADD: while the TD is being built (INITIALIZED, else
 * OP_STATE_INCORRECT), copy the host page @src_pfn into the TDX-usable
 * page @pfn and map it at 4 KiB at @gfn as MAPPED (the guest does not
 * accept it); the measurement records the GPA.  Tree lock exclusive.
 * Preconditions, in order: @src_pfn host memory that belongs to no TD
 * (OPERAND_INVALID, R9); @gfn private, aligned (OPERAND_INVALID); @pfn
 * TDX-usable (OPERAND_ADDR_RANGE_ERROR); the op state; the tree lock
 * (OPERAND_BUSY); the walk (EPT_WALK_FAILED); the entry FREE
 * (EPT_ENTRY_STATE_INCORRECT); @pfn free in the PAMT
 * (PAGE_METADATA_INCORRECT).  Busy is injected; failures are not.
 */
tdx_status_t tdx_page_add(struct tdx_module *mod, tdp_gfn_t gfn, tdp_pfn_t pfn,
			  tdp_pfn_t src_pfn, struct tdx_err_info *err);

/*
 * TDH.MR.EXTEND: while the TD is being built, extend the measurement
 * with 256-byte chunk @chunk (0..15) of the page PAGE.ADD mapped at @gfn
 * (its content: the page's tag; see tdx_mr_extend_record()).  Tree lock
 * exclusive.  OPERAND_INVALID for a bad chunk or GPA, OP_STATE_INCORRECT,
 * EPT_WALK_FAILED, EPT_ENTRY_STATE_INCORRECT for an entry not MAPPED.
 */
tdx_status_t tdx_mr_extend(struct tdx_module *mod, tdp_gfn_t gfn,
			   unsigned int chunk, struct tdx_err_info *err);

/*
 * TDH.MR.FINALIZE: the measurement is final and the TD becomes RUNNABLE
 * (vCPUs may enter, PAGE.AUG is allowed, PAGE.ADD and MR.EXTEND are
 * not).  OP_STATE_INCORRECT if it already is; OPERAND_BUSY (tree lock).
 */
tdx_status_t tdx_mr_finalize(struct tdx_module *mod);

/* TDH.MEM.RANGE.BLOCK: block a leaf or non-leaf entry; stamps the epoch. */
tdx_status_t tdx_range_block(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, struct tdx_err_info *err);

/* TDH.MEM.RANGE.UNBLOCK: undo a tracked block. */
tdx_status_t tdx_range_unblock(struct tdx_module *mod, tdp_gfn_t gfn,
			       int level, struct tdx_err_info *err);

/* TDH.MEM.TRACK: advance the TD epoch. */
tdx_status_t tdx_track(struct tdx_module *mod);

/*
 * TDH.MEM.PAGE.REMOVE: remove a blocked, tracked leaf; its host pages
 * become free in the PAMT.  Stores the removed PFN in @removed.
 */
tdx_status_t tdx_page_remove(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t *removed,
			     struct tdx_err_info *err);

/*
 * TDH.MEM.SEPT.REMOVE: remove the blocked, tracked non-leaf entry at
 * (@gfn, @level) whose table holds only FREE entries; the table page
 * becomes free in the PAMT and is stored in @removed.
 */
tdx_status_t tdx_sept_remove(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t *removed,
			     struct tdx_err_info *err);

/*
 * TDH.MEM.PAGE.DEMOTE: split the 2 MiB leaf at (@gfn, @level), @level 2
 * only (this model has no 1 GiB leaves), into the 4 KiB host page
 * @sept_pfn made an S-EPT table.  Tree lock shared.
 *
 * Preconditions, in order, each with its status: @gfn private and
 * aligned, @level 2 (OPERAND_INVALID); @sept_pfn TDX-usable
 * (OPERAND_ADDR_RANGE_ERROR); the tree lock (OPERAND_BUSY); the walk
 * (EPT_WALK_FAILED); the entry lock (OPERAND_BUSY); the entry a blocked
 * leaf, BLOCKED or PENDING_BLOCKED (GPA_RANGE_NOT_BLOCKED for MAPPED or
 * PENDING, else EPT_ENTRY_STATE_INCORRECT); the block tracked
 * (TLB_TRACKING_NOT_DONE); the PAMT locks of @sept_pfn and of the 2 MiB
 * page (OPERAND_BUSY); @sept_pfn free in the PAMT
 * (PAGE_METADATA_INCORRECT).  Busy is injected at the busy rate; the
 * failure rate does not apply.
 *
 * Effect: the new table holds 512 4 KiB leaves mapping the 512 host pages
 * of the 2 MiB page in order, each in the unblocked state of the parent
 * (MAPPED for BLOCKED, PENDING for PENDING_BLOCKED); the entry becomes
 * NL_MAPPED (not blocked: the guest regains access at once); the PAMT of
 * the 2 MiB page becomes 512 private 4 KiB pages at the same GFNs and
 * @sept_pfn an S-EPT page of the TD (child count + 1).  Page contents
 * are untouched.
 */
tdx_status_t tdx_page_demote(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t sept_pfn,
			     struct tdx_err_info *err);

/*
 * TDH.MEM.PAGE.PROMOTE: merge the 512 4 KiB leaves below the non-leaf
 * entry at (@gfn, @level), @level 2 only, into one 2 MiB leaf and release
 * their S-EPT table.  Tree lock shared.
 *
 * Preconditions, in order: @gfn private and aligned, @level 2
 * (OPERAND_INVALID); the tree lock (OPERAND_BUSY); the walk
 * (EPT_WALK_FAILED); the entry lock (OPERAND_BUSY); the entry
 * NL_BLOCKED (GPA_RANGE_NOT_BLOCKED for NL_MAPPED, else
 * EPT_ENTRY_STATE_INCORRECT); the block tracked
 * (TLB_TRACKING_NOT_DONE); the locks of all 512 child entries
 * (OPERAND_BUSY, e.g. a guest ACCEPT still in flight on one); child 0
 * MAPPED or PENDING and mapping a 2 MiB-aligned host page, every other
 * child in the same state mapping the next host page
 * (EPT_INVALID_PROMOTE_CONDITIONS, with level 1 and the state of the
 * first child that breaks it in @err); the PAMT locks of the table page
 * and of the 512 pages (OPERAND_BUSY).  Busy is injected as for DEMOTE.
 *
 * Effect: the entry becomes a 2 MiB leaf in the children's (unblocked)
 * state mapping the 512 pages; their PAMT becomes one 2 MiB private page;
 * the table page is free in the PAMT again (child count - 1) and is
 * stored in @released for the host to take back.  Page contents are
 * untouched.
 */
tdx_status_t tdx_page_promote(struct tdx_module *mod, tdp_gfn_t gfn,
			      int level, tdp_pfn_t *released,
			      struct tdx_err_info *err);

#endif /* SIM_TDX_SEAMCALL_H */
