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
 */
#ifndef SIM_TDX_MODULE_H
#define SIM_TDX_MODULE_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

struct host_mem;
struct sim_report;
struct sim_stats;

/* A SEAMCALL completion status: class in bits 63:32, operand id below. */
typedef uint64_t tdx_status_t;

#define TDX_STATUS(class) ((tdx_status_t)(class) << 32)
#define TDX_SUCCESS                   TDX_STATUS(0x00000000)
#define TDX_OPERAND_INVALID           TDX_STATUS(0xC0000100)
#define TDX_OPERAND_ADDR_RANGE_ERROR  TDX_STATUS(0xC0000101)
#define TDX_OPERAND_BUSY              TDX_STATUS(0x80000200)
#define TDX_PREVIOUS_TLB_EPOCH_BUSY   TDX_STATUS(0x80000201)
#define TDX_PAGE_METADATA_INCORRECT   TDX_STATUS(0xC0000300)
#define TDX_TD_ASSOCIATED_PAGES_EXIST TDX_STATUS(0xC0000400)
#define TDX_EPT_WALK_FAILED           TDX_STATUS(0xC0000B00)
#define TDX_GPA_RANGE_NOT_BLOCKED     TDX_STATUS(0xC0000B06)
#define TDX_GPA_RANGE_ALREADY_BLOCKED TDX_STATUS(0x00000B07)
#define TDX_TLB_TRACKING_NOT_DONE     TDX_STATUS(0xC0000B08)
#define TDX_EPT_INVALID_PROMOTE_CONDITIONS TDX_STATUS(0xC0000B09)
#define TDX_PAGE_ALREADY_ACCEPTED     TDX_STATUS(0x00000B0A)
#define TDX_PAGE_SIZE_MISMATCH        TDX_STATUS(0xC0000B0B)
#define TDX_EPT_ENTRY_STATE_INCORRECT TDX_STATUS(0xC0000B0D)
#define TDX_EPT_PAGE_NOT_FREE         TDX_STATUS(0xC0000B0E)
/*
 * Simulator only, never returned by a real module: a hard failure
 * injected into SEPT.ADD or PAGE.AUG by the configured failure rate.
 */
#define TDX_SIM_INJECTED_FAILURE      TDX_STATUS(0xC0000FFF)
/*
 * Simulator only: the TDCALL did not complete because the vCPU took an
 * EPT-violation TD exit to the host (ACCEPT of a GPA the host has not
 * mapped yet).  The guest retries the TDCALL after the host handled it.
 */
#define TDX_SIM_TD_EXIT_EPT_VIOLATION TDX_STATUS(0x00000EEE)

/* Operand ids in the low half of a status. */
#define TDX_OPERAND_ID_RCX       0x01u
#define TDX_OPERAND_ID_R8        0x08u
#define TDX_OPERAND_ID_SEPT_TREE 0x92u
#define TDX_OPERAND_ID_TD_EPOCH  0xA9u

static inline tdx_status_t tdx_status_class(tdx_status_t st)
{
	return st & 0xFFFFFFFF00000000ULL;
}

static inline bool tdx_status_is_error(tdx_status_t st)
{
	return (st >> 63) != 0;
}

static inline bool tdx_status_is_busy(tdx_status_t st)
{
	return tdx_status_class(st) == TDX_OPERAND_BUSY;
}

const char *tdx_status_name(tdx_status_t st);

enum sept_state {
	SEPT_FREE,
	SEPT_NL_MAPPED,
	SEPT_NL_BLOCKED,
	SEPT_MAPPED,
	SEPT_BLOCKED,
	SEPT_PENDING,
	SEPT_PENDING_BLOCKED,
	SEPT_NR_STATES
};

const char *sept_state_name(int state);
/* The number the TDX ABI reports for @state. */
int sept_state_public(int state);

/*
 * S-EPT entry layout, as the CPU reads it when it walks the S-EPT: RWX
 * and the page-size bit as in EPT, suppress-#VE always set.  The state
 * lives in module-private bits the CPU ignores.  An entry translates for
 * the CPU only if RWX is non-zero (NL_MAPPED and MAPPED).
 */
#define SEPT_R           (1ULL << 0)
#define SEPT_W           (1ULL << 1)
#define SEPT_X           (1ULL << 2)
#define SEPT_RWX         (SEPT_R | SEPT_W | SEPT_X)
#define SEPT_PS          (1ULL << 7)
#define SEPT_PFN_MASK    0x000FFFFFFFFFF000ULL
#define SEPT_STATE_SHIFT 52
#define SEPT_STATE_MASK  (0xFULL << SEPT_STATE_SHIFT)
#define SEPT_LOCKED      (1ULL << 62) /* host entry lock */
#define SEPT_SVE         (1ULL << 63)

static inline tdp_pfn_t sept_entry_pfn(uint64_t e)
{
	return (e & SEPT_PFN_MASK) >> 12;
}

static inline int sept_entry_state(uint64_t e)
{
	return (int)((e & SEPT_STATE_MASK) >> SEPT_STATE_SHIFT);
}

/* Error details, as the module reports them in RCX/RDX. */
struct tdx_err_info {
	int level; /* level of the entry the walk stopped at */
	int state; /* enum sept_state of that entry */
};

/* PAMT page types. */
enum pamt_type {
	PAMT_NDA,  /* not assigned to the module: free for TDX use */
	PAMT_REG,  /* a private page of the TD */
	PAMT_EPT,  /* an S-EPT page of the TD */
	PAMT_CTL,  /* a TD control page: TDR, TDCS, TDVPR */
	PAMT_RSVD, /* not TDX-usable memory */
};

struct tdx_pamt_info {
	enum pamt_type type;
	/* PAMT_REG: 1 for a 4 KiB page, 2 for a page of a 2 MiB page. */
	int size_level;
	tdp_gfn_t gfn;   /* PAMT_REG: the GFN the page is mapped at */
	uint64_t bepoch; /* epoch stamped by the last RANGE.BLOCK */
};

struct tdx_module_config {
	struct host_mem *mem;    /* TDX-usable ranges are read once here */
	int root_level;          /* 4 or 5 */
	tdp_gfn_t shared_bit;    /* the GFN bit of the shared alias */
	unsigned int nr_vcpus;   /* TDVPs */
	uint32_t busy_ppm;       /* injected OPERAND_BUSY per SEAMCALL */
	uint32_t fail_ppm;       /* injected failures of SEPT.ADD/PAGE.AUG */
	struct sim_report *report; /* host protocol errors are reported here */
	struct sim_stats *stats;
};

struct tdx_module;

/*
 * tdx_module_create() - configure the module with the host's TDX-usable
 * ranges (immutable afterwards), create one TD in the RUNNABLE state and
 * allocate its control pages (TDR, TDCS with the S-EPT root, one TDVPR
 * per vCPU) from TDX-usable host memory.  Returns 0, -EINVAL or -ENOMEM.
 */
int tdx_module_create(const struct tdx_module_config *cfg,
		      struct tdx_module **out);

/*
 * tdx_module_teardown() - TD teardown: every private page and S-EPT page
 * must have been removed (the host's job, through the engine); reclaims
 * the control pages, the TDR last, and returns them to host memory.
 * Returns TDX_SUCCESS, or TDX_TD_ASSOCIATED_PAGES_EXIST (reported) when
 * pages are still associated with the TD, in which case nothing is
 * reclaimed.
 */
tdx_status_t tdx_module_teardown(struct tdx_module *mod);
void tdx_module_destroy(struct tdx_module *mod);

/* Change the injection rates (for tests); takes effect at once. */
void tdx_module_set_injection(struct tdx_module *mod, uint32_t busy_ppm,
			      uint32_t fail_ppm);

/* ---- host SEAMCALLs (TDH.MEM.*) ------------------------------------------ */

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

/* ---- vCPU entry and exit, guest TDCALLs ---------------------------------- */

/*
 * TDH.VP.ENTER for TDVP @vp: counts the vCPU in the current epoch.  Sets
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

/* ---- what the CPU and the checks read ------------------------------------ */

int tdx_root_level(const struct tdx_module *mod);

/*
 * The 512 entries of the S-EPT root, and of the S-EPT table in host page
 * @pfn (NULL if @pfn never was an S-EPT page).  What the CPU reads when it
 * walks the S-EPT; read every entry with an atomic load.  The storage
 * lives as long as the module.
 */
const uint64_t *tdx_sept_root_table(const struct tdx_module *mod);
const uint64_t *tdx_sept_table(const struct tdx_module *mod, tdp_pfn_t pfn);

/*
 * Debug walk toward @gfn: follows NL_MAPPED entries only and reports the
 * last entry reached and its level (a leaf in any state, or the entry
 * where the walk stopped).
 */
void tdx_sept_lookup(const struct tdx_module *mod, tdp_gfn_t gfn,
		     uint64_t *entry, int *level);

/* PAMT entry of @pfn; PAMT_RSVD for memory that is not TDX-usable. */
struct tdx_pamt_info tdx_pamt_get(const struct tdx_module *mod, tdp_pfn_t pfn);

uint64_t tdx_td_epoch(const struct tdx_module *mod);
/* Epoch TDVP @vp entered in last (its private TLB belongs to it). */
uint64_t tdx_vp_entered_epoch(const struct tdx_module *mod, unsigned int vp);
/* Pages associated with the TD (private pages and S-EPT pages). */
int64_t tdx_td_child_count(const struct tdx_module *mod);
/* S-EPT pages in use, the root excluded. */
int64_t tdx_sept_pages(const struct tdx_module *mod);

/* ---- test hooks ---------------------------------------------------------- */

/*
 * Take (tdx_debug_hold_entry) or drop (tdx_debug_release_entry) the lock
 * of the S-EPT entry at (@gfn, @level) the way an in-flight SEAMCALL or
 * guest ACCEPT holds it, so that a test can make a lock conflict happen
 * deterministically.  The walk follows NL_MAPPED and NL_BLOCKED entries.
 * Hold returns false if the walk does not reach @level or the entry is
 * already locked.  Not a module interface: tests only.
 */
bool tdx_debug_hold_entry(struct tdx_module *mod, tdp_gfn_t gfn, int level);
void tdx_debug_release_entry(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level);

#endif /* SIM_TDX_MODULE_H */
