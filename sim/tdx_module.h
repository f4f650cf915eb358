/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A strict simulated Intel TDX module: the Secure EPT (S-EPT) of one TD,
 * the PAMT (per-page metadata of TDX-usable host memory), the TLB-tracking
 * epoch, and the SEAMCALLs / TDCALLs that change them.  Every function
 * checks the preconditions the real module checks and fails with the same
 * status, so a host (and the engine behind it) that breaks the protocol
 * fails loudly.
 *
 * Levels: this interface numbers S-EPT entries like libtdp (1 = an entry
 * that maps 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 4/5 = root entries).  The TDX
 * ABI numbers them one lower (0 = 4 KiB).  GFNs are private GFNs: a GFN
 * with the shared bit set is an invalid operand.
 *
 * Entry states (the public number the ABI reports in RDX[15:8]):
 *   FREE 0, NL_MAPPED 0x84, NL_BLOCKED 0x81, MAPPED 4, BLOCKED 1,
 *   PENDING 2, PENDING_BLOCKED 3.
 *
 * TLB epoch rule: RANGE.BLOCK stamps the mapped page with the current TD
 * epoch; TRACK advances the epoch and fails while a vCPU still runs in the
 * epoch before the current one; PAGE.REMOVE, SEPT.REMOVE, PAGE.DEMOTE,
 * PAGE.PROMOTE and RANGE.UNBLOCK need the block to be tracked: stamped
 * before the previous epoch, or in the previous epoch and no vCPU left in
 * guest mode that entered in it.
 * A vCPU's private TLB is flushed at VP.ENTER when the epoch moved since
 * its last entry; nothing else flushes private translations.
 *
 * Locks are try-locks, as in the module: the S-EPT tree lock (shared for
 * SEPT.ADD, PAGE.AUG, PAGE.REMOVE, PAGE.DEMOTE, PAGE.PROMOTE; exclusive
 * for RANGE.BLOCK, RANGE.UNBLOCK, SEPT.REMOVE), one lock bit per S-EPT
 * entry (PAGE.PROMOTE takes the 512 children's too), one lock per PAMT
 * entry, and the epoch lock (shared for VP.ENTER, exclusive for TRACK).
 * A conflict returns TDX_OPERAND_BUSY with the operand id.
 *
 * The module's interface is spread over the files that implement it:
 * tdx_status.h (completion statuses), tdx_sept.h (S-EPT entries and
 * walks), tdx_pamt.h (PAMT page types), this header (the module and its
 * TD: creation, teardown, PAMT and epoch reads), tdx_seamcall.h (the host's SEAMCALLs) and tdx_vp.h (vCPU
 * entry and exit, the guest's ACCEPT).
 */
#ifndef SIM_TDX_MODULE_H
#define SIM_TDX_MODULE_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "tdx_pamt.h"
#include "tdx_sept.h"
#include "tdx_status.h"

struct host_mem;
struct sim_report;
struct sim_counters;

struct tdx_module_config {
	struct host_mem *mem;    /* TDX-usable ranges are read once here */
	int root_level;          /* 4 or 5 */
	tdp_gfn_t shared_bit;    /* the GFN bit of the shared alias */
	unsigned int nr_vcpus;   /* TDVPs */
	uint32_t busy_ppm;       /* injected OPERAND_BUSY per SEAMCALL */
	uint32_t fail_ppm;       /* injected failures of SEPT.ADD/PAGE.AUG */
	struct sim_report *report; /* host protocol errors are reported here */
	struct sim_counters *stats;
	/*
	 * Several TDs on one module: NULL for the first TD, whose creation
	 * configures the module (the PAMT over @mem's TDX-usable ranges);
	 * each later TD shares that TD's PAMT and S-EPT storage, and must
	 * be destroyed before it.  @owner tags the PAMT entries (and host
	 * pages) of this TD: its number + 1.
	 */
	struct tdx_module *share_pamt_with;
	uint32_t owner;
};

struct tdx_module;

/*
 * TD operation state: a TD is built (PAGE.ADD, MR.EXTEND) while
 * INITIALIZED and runs (VP.ENTER, PAGE.AUG, the guest's TDCALLs) once
 * MR.FINALIZE made it RUNNABLE.  A call in the wrong state fails with
 * TDX_OP_STATE_INCORRECT.
 */
enum tdx_td_op_state {
	TDX_TD_INITIALIZED = 0,
	TDX_TD_RUNNABLE = 1,
};

/*
 * The measurement (MRTD).  The real module keeps a SHA-384 over a
 * 128-byte record per PAGE.ADD (the GPA) and per MR.EXTEND (the GPA and
 * 256 bytes of content); here each record is folded into 64 bits by a
 * mixing function, and a 256-byte chunk's content is the page's tag (the
 * only content a simulated page has) and the chunk's offset.  Pure
 * functions, so a guest can compute the value it expects from its image
 * independently of the module.
 */
#define TDX_MR_CHUNK_BYTES 256
#define TDX_MR_CHUNKS_PER_PAGE (4096 / TDX_MR_CHUNK_BYTES)
#define TDX_MR_INITIAL 0x4d5254445f53494dULL /* "MRTD_SIM" */

static inline uint64_t tdx_mr_mix(uint64_t mr, uint64_t v)
{
	uint64_t z = mr ^ (v + 0x9e3779b97f4a7c15ULL + (mr << 6) + (mr >> 2));

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The record of TDH.MEM.PAGE.ADD of private @gfn. */
static inline uint64_t tdx_mr_page_add(uint64_t mr, tdp_gfn_t gfn)
{
	return tdx_mr_mix(tdx_mr_mix(mr, 0x414444 /* "ADD" */), gfn << 12);
}

/* The record of TDH.MR.EXTEND of chunk @chunk of @gfn holding @tag. */
static inline uint64_t tdx_mr_extend_record(uint64_t mr, tdp_gfn_t gfn,
					    unsigned int chunk, uint64_t tag)
{
	mr = tdx_mr_mix(mr, 0x455854 /* "EXT" */);
	mr = tdx_mr_mix(mr, (gfn << 12) + chunk * TDX_MR_CHUNK_BYTES);
	return tdx_mr_mix(mr, tag);
}

/*
 * tdx_module_create() - configure the module with the host's TDX-usable
 * ranges (immutable afterwards), create one TD in the INITIALIZED state
 * (the host builds its image, then TDH.MR.FINALIZE, tdx_seamcall.h) and
 * allocate its control pages (TDR, TDCS with the S-EPT root, one TDVPR
 * per vCPU) from TDX-usable host memory.  Returns 0, -EINVAL or -ENOMEM.
 */
int tdx_module_create(const struct tdx_module_config *cfg,
		      struct tdx_module **out);

/*
 * tdx_module_teardown() - TD teardown: every private page and S-EPT page
 * must have been removed (the host's job, through the engine); reclaims
 * the control pages, the TDR last, and returns them to host memory.
 * With several TDs on the module, the PAMT is checked around it: this
 * TD holds nothing afterwards and every other TD exactly what it held
 * before (else a TDX_TD_ASSOCIATED_PAGES_EXIST or tdx_error report).
 * Returns TDX_SUCCESS, or TDX_TD_ASSOCIATED_PAGES_EXIST (reported) when
 * pages are still associated with the TD, in which case nothing is
 * reclaimed.
 */
tdx_status_t tdx_module_teardown(struct tdx_module *mod);
void tdx_module_destroy(struct tdx_module *mod);

/* Test hook: teardown also reclaims @pfn (another TD's page). */
void tdx_module_break_reclaim(struct tdx_module *mod, tdp_pfn_t pfn);

/* Change the injection rates (for tests); takes effect at once. */
void tdx_module_set_injection(struct tdx_module *mod, uint32_t busy_ppm,
			      uint32_t fail_ppm);

/* ---- what the host and the checks read ----------------------------------- */

/* PAMT entry of @pfn; PAMT_RSVD for memory that is not TDX-usable. */
struct tdx_pamt_info tdx_pamt_get(const struct tdx_module *mod, tdp_pfn_t pfn);

uint64_t tdx_td_epoch(const struct tdx_module *mod);
enum tdx_td_op_state tdx_td_op_state(const struct tdx_module *mod);
/* Epoch TDVP @vp entered in last (its private TLB belongs to it). */
uint64_t tdx_vp_entered_epoch(const struct tdx_module *mod, unsigned int vp);
/*
 * The TD's control pages (seed 003): typed pages (PAMT_CTL) the host
 * hands to the module and never reads or writes itself; teardown
 * reclaims them after every other page of the TD, the TDR last.  The TDR
 * and TDCS page @i (0..3; 0 while torn down), and the page teardown
 * reclaimed last.
 */
tdp_pfn_t tdx_tdr_pfn(const struct tdx_module *mod);
tdp_pfn_t tdx_tdcs_pfn(const struct tdx_module *mod, int i);
tdp_pfn_t tdx_last_reclaimed(const struct tdx_module *mod);

/* PAMT entries (pages assigned to a TD) that TD @owner holds. */
uint64_t tdx_pamt_pages_of(const struct tdx_module *mod, uint32_t owner);

/* Pages associated with the TD (private pages and S-EPT pages). */
int64_t tdx_td_child_count(const struct tdx_module *mod);
/* S-EPT pages in use, the root excluded. */
int64_t tdx_sept_pages(const struct tdx_module *mod);

#endif /* SIM_TDX_MODULE_H */
