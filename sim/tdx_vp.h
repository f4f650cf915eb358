/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vCPUs (TDVPs) of the simulated TD: VM entry and TD exit, which the
 * TLB epoch rule counts (tdx_module.h), and the guest's TDCALL ACCEPT.
 */
#ifndef SIM_TDX_VP_H
#define SIM_TDX_VP_H

#include "tdx_module.h"

/*
 * TDH.VP.ENTER for TDVP @vp: counts the vCPU in the current epoch.
 * TDX_OP_STATE_INCORRECT before MR.FINALIZE.  Sets
 * *@flush_private_tlb when the epoch moved since the vCPU's last entry
 * (the CPU flushes the vCPU's private translations).  Returns TDX_SUCCESS
 * or TDX_OPERAND_BUSY (epoch lock held by TRACK, or injected).
 */
tdx_status_t tdx_vp_enter(struct tdx_module *mod, unsigned int vp,
			  bool *flush_private_tlb);

/* TD exit of TDVP @vp: the vCPU leaves guest mode. */
void tdx_vp_exit(struct tdx_module *mod, unsigned int vp);

/*
 * TDG.MEM.PAGE.ACCEPT from the guest running on TDVP @vp, @level 1 or 2
 * (a 1 GiB request is OPERAND_INVALID, as in TDX 1.5).  Outcomes:
 *   TDX_SUCCESS: the PENDING page(s) are zeroed (tag (gfn, 0)) and MAPPED;
 *   TDX_PAGE_ALREADY_ACCEPTED: a MAPPED leaf at or above @level;
 *   TDX_PAGE_SIZE_MISMATCH: a table at @level (the host mapped smaller);
 *   TDX_SIM_TD_EXIT_EPT_VIOLATION: nothing mapped, or blocked, or a
 *     PENDING leaf above @level: the host must map and the guest retry
 *     (the guest hands the host its ACCEPT level; @err->level above it
 *     with state PENDING means the host must demote that leaf first);
 *   TDX_OPERAND_BUSY: the entry is locked; TDX_OPERAND_INVALID.
 * @err receives the level and state where the walk stopped.
 */
tdx_status_t tdx_page_accept(struct tdx_module *mod, unsigned int vp,
			     tdp_gfn_t gfn, int level,
			     struct tdx_err_info *err);

/*
 * The ACCEPT operand (RCX) as the ABI defines it: not a GPA but named
 * parts, the page-aligned GPA in bits 51:12 and the page-size code in
 * bits 2:0 (0: 4 KiB, 1: 2 MiB, 2: 1 GiB).  Bits 11:3 are reserved (0).
 */
#define TDX_ACCEPT_SIZE_4K 0
#define TDX_ACCEPT_SIZE_2M 1
#define TDX_ACCEPT_SIZE_1G 2
#define TDX_ACCEPT_SIZE_MASK 0x7ULL
#define TDX_ACCEPT_RESERVED_MASK 0xff8ULL

/*
 * TDG.MEM.PAGE.ACCEPT with its raw operand @rcx: decoded into GPA and
 * size, then as tdx_page_accept().  Reserved bits set, an unknown size
 * code, or a 1 GiB size (this module version accepts 4 KiB and 2 MiB
 * only) is TDX_OPERAND_INVALID.
 */
tdx_status_t tdx_page_accept_rcx(struct tdx_module *mod, unsigned int vp,
				 uint64_t rcx, struct tdx_err_info *err);

/*
 * TDG.MR.REPORT (reduced to its MRTD field) from the guest on TDVP @vp:
 * the measurement MR.FINALIZE froze.  TDX_OP_STATE_INCORRECT before.
 */
tdx_status_t tdx_mr_report(struct tdx_module *mod, unsigned int vp,
			   uint64_t *mrtd);

#endif /* SIM_TDX_VP_H */
