/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated TDX module (see tdx_module.h for the model).
 *
 * Every SEAMCALL follows the same shape: check the operands, maybe inject
 * a busy or failure status, take the S-EPT tree lock, walk to the target
 * entry, take the entry lock, check the entry state and the PAMT of the
 * pages involved, then change the PAMT and publish the new entry value
 * with a release store (the CPU walks the S-EPT concurrently, with
 * acquire loads).  Checks happen before any change, so a failed call
 * changes nothing.  The host SEAMCALLs on one S-EPT entry share that path
 * up to the entry lock (seamcall_enter()) and from the entry store on
 * (seamcall_exit(), seamcall_commit()); each keeps only its own checks
 * and effect.
 *
 * Any non-recoverable error status of a host SEAMCALL is a protocol
 * violation of the host (and of the engine that drives it): it is
 * reported as such, besides being returned.
 */
#include "tdx_module.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_mem.h"
#include "report.h"
#include "rng.h"
#include "stats.h"

struct pamt_entry {
	uint32_t type;       /* enum pamt_type; atomic */
	uint32_t size_level; /* atomic */
	uint32_t lock;       /* try-lock: 0 free, 1 held */
	uint64_t bepoch;     /* atomic */
	tdp_gfn_t gfn;       /* atomic */
};

struct tdx_vp {
	uint64_t entered_epoch; /* atomic; written by the vCPU's own thread */
};

struct tdx_module {
	/* Immutable after creation. */
	struct host_mem *mem;
	int root_level;
	tdp_gfn_t shared_bit;
	unsigned int nr_vcpus;
	struct sim_report *report;
	struct sim_stats *stats;
	tdp_pfn_t tdr_pfn;
	tdp_pfn_t tdcs_pfn[4];
	tdp_pfn_t root_pfn; /* the S-EPT root: a TDCS page */
	tdp_pfn_t *tdvpr_pfn;
	struct tdx_vp *vp;
	struct pamt_entry *pamt; /* one per host page */

	/*
	 * Table storage by host page: allocated the first time a page
	 * becomes an S-EPT page, published with a release CAS, kept for the
	 * module's lifetime so a CPU walk never reads freed memory.
	 */
	uint64_t **tables;

	uint32_t busy_ppm; /* atomic */
	uint32_t fail_ppm; /* atomic */

	int32_t tree_lock;  /* sharex: > 0 shared holders, -1 exclusive */
	int32_t epoch_lock; /* sharex, as above */
	uint64_t td_epoch;  /* atomic; written under epoch_lock exclusive */
	int64_t epoch_refs[2]; /* vCPUs in guest mode, by epoch parity */

	int64_t child_count; /* atomic: private pages + S-EPT pages */
	int64_t sept_pages;  /* atomic: S-EPT pages, root excluded */
	bool torn_down;
};

/* ---- names --------------------------------------------------------------- */

const char *tdx_status_name(tdx_status_t st)
{
	switch (tdx_status_class(st)) {
	case TDX_SUCCESS:
		return "TDX_SUCCESS";
	case TDX_OPERAND_INVALID:
		return "TDX_OPERAND_INVALID";
	case TDX_OPERAND_ADDR_RANGE_ERROR:
		return "TDX_OPERAND_ADDR_RANGE_ERROR";
	case TDX_OPERAND_BUSY:
		return "TDX_OPERAND_BUSY";
	case TDX_PREVIOUS_TLB_EPOCH_BUSY:
		return "TDX_PREVIOUS_TLB_EPOCH_BUSY";
	case TDX_PAGE_METADATA_INCORRECT:
		return "TDX_PAGE_METADATA_INCORRECT";
	case TDX_TD_ASSOCIATED_PAGES_EXIST:
		return "TDX_TD_ASSOCIATED_PAGES_EXIST";
	case TDX_EPT_WALK_FAILED:
		return "TDX_EPT_WALK_FAILED";
	case TDX_GPA_RANGE_NOT_BLOCKED:
		return "TDX_GPA_RANGE_NOT_BLOCKED";
	case TDX_GPA_RANGE_ALREADY_BLOCKED:
		return "TDX_GPA_RANGE_ALREADY_BLOCKED";
	case TDX_TLB_TRACKING_NOT_DONE:
		return "TDX_TLB_TRACKING_NOT_DONE";
	case TDX_EPT_INVALID_PROMOTE_CONDITIONS:
		return "TDX_EPT_INVALID_PROMOTE_CONDITIONS";
	case TDX_PAGE_ALREADY_ACCEPTED:
		return "TDX_PAGE_ALREADY_ACCEPTED";
	case TDX_PAGE_SIZE_MISMATCH:
		return "TDX_PAGE_SIZE_MISMATCH";
	case TDX_EPT_ENTRY_STATE_INCORRECT:
		return "TDX_EPT_ENTRY_STATE_INCORRECT";
	case TDX_EPT_PAGE_NOT_FREE:
		return "TDX_EPT_PAGE_NOT_FREE";
	case TDX_SIM_INJECTED_FAILURE:
		return "TDX_SIM_INJECTED_FAILURE";
	case TDX_SIM_TD_EXIT_EPT_VIOLATION:
		return "TD exit (EPT violation)";
	}
	return "TDX_(unknown)";
}

const char *sept_state_name(int state)
{
	static const char *const names[SEPT_NR_STATES] = {
		[SEPT_FREE]            = "FREE",
		[SEPT_NL_MAPPED]       = "NL_MAPPED",
		[SEPT_NL_BLOCKED]      = "NL_BLOCKED",
		[SEPT_MAPPED]          = "MAPPED",
		[SEPT_BLOCKED]         = "BLOCKED",
		[SEPT_PENDING]         = "PENDING",
		[SEPT_PENDING_BLOCKED] = "PENDING_BLOCKED",
	};

	return state >= 0 && state < SEPT_NR_STATES ? names[state] : "?";
}

int sept_state_public(int state)
{
	static const int public_number[SEPT_NR_STATES] = {
		[SEPT_FREE]            = 0,
		[SEPT_NL_MAPPED]       = 0x84,
		[SEPT_NL_BLOCKED]      = 0x81,
		[SEPT_MAPPED]          = 4,
		[SEPT_BLOCKED]         = 1,
		[SEPT_PENDING]         = 2,
		[SEPT_PENDING_BLOCKED] = 3,
	};

	return state >= 0 && state < SEPT_NR_STATES ? public_number[state] : -1;
}

/* ---- entries ------------------------------------------------------------- */

static uint64_t make_entry(int state, tdp_pfn_t pfn, int level)
{
	uint64_t e = SEPT_SVE | ((uint64_t)state << SEPT_STATE_SHIFT);
	bool leaf = state == SEPT_MAPPED || state == SEPT_BLOCKED ||
		    state == SEPT_PENDING || state == SEPT_PENDING_BLOCKED;

	if (state == SEPT_FREE)
		return e;
	e |= (pfn << 12) & SEPT_PFN_MASK;
	if (state == SEPT_NL_MAPPED || state == SEPT_MAPPED)
		e |= SEPT_RWX;
	if (leaf && level > TDP_LEVEL_4K)
		e |= SEPT_PS;
	return e;
}

static uint64_t entry_load(const uint64_t *e)
{
	return __atomic_load_n(e, __ATOMIC_ACQUIRE);
}

/* Take the entry's host lock; false if another operation holds it. */
static bool entry_trylock(uint64_t *e, uint64_t *val)
{
	uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);

	do {
		if (v & SEPT_LOCKED)
			return false;
	} while (!__atomic_compare_exchange_n(e, &v, v | SEPT_LOCKED, false,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	*val = v;
	return true;
}

/* Publish @val and drop the entry lock in one release store. */
static void entry_unlock(uint64_t *e, uint64_t val)
{
	__atomic_store_n(e, val & ~SEPT_LOCKED, __ATOMIC_RELEASE);
}

static unsigned int entry_index(tdp_gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) & 511;
}

/* ---- locks --------------------------------------------------------------- */

static bool sharex_try_shared(int32_t *l)
{
	int32_t v = __atomic_load_n(l, __ATOMIC_RELAXED);

	while (v >= 0) {
		if (__atomic_compare_exchange_n(l, &v, v + 1, false,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

static bool sharex_try_exclusive(int32_t *l)
{
	int32_t zero = 0;

	return __atomic_compare_exchange_n(l, &zero, -1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void sharex_release_shared(int32_t *l)
{
	__atomic_sub_fetch(l, 1, __ATOMIC_RELEASE);
}

static void sharex_release_exclusive(int32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static struct pamt_entry *pamt_of(struct tdx_module *mod, tdp_pfn_t pfn)
{
	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return NULL;
	return &mod->pamt[pfn - mod->mem->base];
}

static bool pamt_trylock(struct pamt_entry *p)
{
	uint32_t zero = 0;

	return __atomic_compare_exchange_n(&p->lock, &zero, 1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void pamt_unlock(struct pamt_entry *p)
{
	__atomic_store_n(&p->lock, 0, __ATOMIC_RELEASE);
}

/* Lock the PAMT entries of [pfn, pfn + n) in order; all or none. */
static bool pamt_trylock_range(struct tdx_module *mod, tdp_pfn_t pfn,
			       uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		if (!pamt_trylock(pamt_of(mod, pfn + i))) {
			while (i--)
				pamt_unlock(pamt_of(mod, pfn + i));
			return false;
		}
	}
	return true;
}

static void pamt_unlock_range(struct tdx_module *mod, tdp_pfn_t pfn,
			      uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		pamt_unlock(pamt_of(mod, pfn + i));
}

static enum pamt_type pamt_type(const struct pamt_entry *p)
{
	return (enum pamt_type)__atomic_load_n(&p->type, __ATOMIC_ACQUIRE);
}

static void pamt_set(struct pamt_entry *p, enum pamt_type type, int size,
		     tdp_gfn_t gfn)
{
	__atomic_store_n(&p->gfn, gfn, __ATOMIC_RELAXED);
	__atomic_store_n(&p->size_level, (uint32_t)size, __ATOMIC_RELAXED);
	__atomic_store_n(&p->type, (uint32_t)type, __ATOMIC_RELEASE);
}

/* ---- outcome accounting and reporting ------------------------------------ */

static bool status_is_protocol_error(tdx_status_t st)
{
	/* Non-recoverable errors: bits 63 and 62 set. */
	return (st >> 62) == 3 &&
	       tdx_status_class(st) != TDX_SIM_INJECTED_FAILURE;
}

static void count_outcome(struct tdx_module *mod, enum sim_seamcall op,
			  tdx_status_t st)
{
	enum sim_outcome out;

	if (!tdx_status_is_error(st))
		out = SIM_OUT_OK;
	else if (tdx_status_class(st) == TDX_OPERAND_BUSY ||
		 tdx_status_class(st) == TDX_PREVIOUS_TLB_EPOCH_BUSY)
		out = SIM_OUT_BUSY;
	else if (tdx_status_class(st) == TDX_SIM_INJECTED_FAILURE)
		out = SIM_OUT_FAIL_INJECTED;
	else
		out = SIM_OUT_ERROR;
	sim_count_seamcall(mod->stats, op, out);
}

/* Finish a host SEAMCALL: count it; report a protocol error. */
static tdx_status_t host_done(struct tdx_module *mod, enum sim_seamcall op,
			      tdx_status_t st, tdp_gfn_t gfn, int level,
			      const struct tdx_err_info *err)
{
	count_outcome(mod, op, st);
	if (status_is_protocol_error(st) && mod->report) {
		char detail[96] = "";

		if (err && (tdx_status_class(st) == TDX_EPT_WALK_FAILED ||
			    tdx_status_class(st) ==
				    TDX_EPT_ENTRY_STATE_INCORRECT ||
			    tdx_status_class(st) == TDX_GPA_RANGE_NOT_BLOCKED))
			snprintf(detail, sizeof(detail),
				 " (walk stopped at level %d, state %s)",
				 err->level, sept_state_name(err->state));
		else if (err && tdx_status_class(st) ==
					TDX_EPT_INVALID_PROMOTE_CONDITIONS)
			snprintf(detail, sizeof(detail),
				 " (a level %d child is %s or maps the wrong "
				 "page)",
				 err->level, sept_state_name(err->state));
		sim_violation(mod->report, SIM_V_TDX_ERROR, st, gfn,
			      SIM_NO_VCPU, "SEAMCALL %s(gfn %#" PRIx64
			      ", level %d) failed: %s%s",
			      sim_seamcall_name(op), gfn, level,
			      tdx_status_name(st), detail);
	}
	return st;
}

/*
 * Injection: OPERAND_BUSY at the configured rate for every call, and for
 * the map operations a hard failure at the failure rate.  Returns
 * TDX_SUCCESS when nothing is injected.
 */
static tdx_status_t inject(struct tdx_module *mod, enum sim_seamcall op,
			   bool may_fail)
{
	struct sim_rng *rng = sim_rng_for_thread();
	uint32_t busy = __atomic_load_n(&mod->busy_ppm, __ATOMIC_RELAXED);
	uint32_t fail = __atomic_load_n(&mod->fail_ppm, __ATOMIC_RELAXED);

	if (sim_rng_ppm(rng, busy)) {
		sim_count_seamcall(mod->stats, op, SIM_OUT_BUSY_INJECTED);
		return TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX;
	}
	if (may_fail && sim_rng_ppm(rng, fail)) {
		sim_count_seamcall(mod->stats, op, SIM_OUT_FAIL_INJECTED);
		return TDX_SIM_INJECTED_FAILURE;
	}
	return TDX_SUCCESS;
}

/* ---- walks --------------------------------------------------------------- */

static uint64_t *table_of(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return NULL;
	return __atomic_load_n(&mod->tables[pfn - mod->mem->base],
			       __ATOMIC_ACQUIRE);
}

/* Storage for a page becoming an S-EPT table; NULL only if out of memory. */
static uint64_t *table_storage(struct tdx_module *mod, tdp_pfn_t pfn)
{
	uint64_t **slot = &mod->tables[pfn - mod->mem->base];
	uint64_t *t = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	uint64_t *expected = NULL;

	if (t)
		return t;
	t = calloc(TDP_SPTES_PER_TABLE, sizeof(*t));
	if (!t)
		return NULL;
	if (!__atomic_compare_exchange_n(slot, &expected, t, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		free(t);
		return expected;
	}
	return t;
}

/*
 * The walk rule: from the root toward @level, descend only through
 * NL_MAPPED entries.  Returns the entry at @level, or NULL with the level
 * and state of the entry where the walk stopped (anything else above the
 * target: FREE, blocked, or a leaf).
 */
static uint64_t *sept_walk(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			   struct tdx_err_info *err)
{
	uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level;; l--) {
		uint64_t *e = &table[entry_index(gfn, l)];
		uint64_t v;

		if (l == level)
			return e;
		v = entry_load(e);
		if (sept_entry_state(v) != SEPT_NL_MAPPED) {
			err->level = l;
			err->state = sept_entry_state(v);
			return NULL;
		}
		table = table_of(mod, sept_entry_pfn(v));
	}
}

/* A GPA operand: private, aligned to @level, inside the GPA width. */
static bool gpa_operand_ok(const struct tdx_module *mod, tdp_gfn_t gfn,
			   int level, int min_level, int max_level)
{
	if (level < min_level || level > max_level)
		return false;
	if (gfn & mod->shared_bit)
		return false;
	if (gfn >= 1ULL << (mod->root_level * TDP_LEVEL_BITS))
		return false;
	return (gfn & (tdp_level_pages(level) - 1)) == 0;
}

/*
 * The block of the page at @pfn is tracked: it was stamped before the
 * previous epoch, or in the previous epoch and every vCPU that entered
 * in it has left guest mode.
 */
static bool block_is_tracked(struct tdx_module *mod, tdp_pfn_t pfn)
{
	uint64_t bepoch = __atomic_load_n(&pamt_of(mod, pfn)->bepoch,
					  __ATOMIC_RELAXED);
	uint64_t epoch = __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);

	if (bepoch + 1 < epoch)
		return true;
	return bepoch + 1 == epoch &&
	       __atomic_load_n(&mod->epoch_refs[bepoch & 1],
			       __ATOMIC_ACQUIRE) == 0;
}

/* ---- host SEAMCALLs on one S-EPT entry: the common path ------------------ */

/*
 * A host SEAMCALL on one S-EPT entry: SEPT.ADD, PAGE.AUG, RANGE.BLOCK,
 * RANGE.UNBLOCK, PAGE.REMOVE, SEPT.REMOVE, PAGE.DEMOTE, PAGE.PROMOTE.
 * The operation fills in the call; seamcall_enter() checks the operands
 * and locks the target entry; seamcall_exit() (entry unchanged) or
 * seamcall_commit() (new entry) ends the call.
 */
struct seamcall {
	struct tdx_module *mod;
	enum sim_seamcall op;
	tdp_gfn_t gfn; /* GPA operand (RCX) */
	int level;
	int min_level; /* levels the operation accepts */
	int max_level;
	bool tree_exclusive; /* S-EPT tree lock mode; shared if false */
	/*
	 * Page operand (R8) of an operation that hands the module pages
	 * (SEPT.ADD, PAGE.AUG, PAGE.DEMOTE): @pages pages from @pfn,
	 * aligned to their size.  @pages is 0 for the other operations.
	 */
	tdp_pfn_t pfn;
	uint64_t pages;
	bool may_fail; /* the failure rate applies (SEPT.ADD, PAGE.AUG) */
	struct tdx_err_info *err; /* may be NULL: then &local_err */

	/* Set by seamcall_enter(). */
	struct tdx_err_info local_err;
	uint64_t *entry; /* the target entry, locked */
	uint64_t old;    /* its value when it was locked */
};

static bool tree_trylock(struct seamcall *sc)
{
	return sc->tree_exclusive ? sharex_try_exclusive(&sc->mod->tree_lock)
				  : sharex_try_shared(&sc->mod->tree_lock);
}

static void tree_unlock(struct seamcall *sc)
{
	if (sc->tree_exclusive)
		sharex_release_exclusive(&sc->mod->tree_lock);
	else
		sharex_release_shared(&sc->mod->tree_lock);
}

/* End a call that failed before it took a lock: no error details. */
static tdx_status_t seamcall_refuse(struct seamcall *sc, tdx_status_t st)
{
	return host_done(sc->mod, sc->op, st, sc->gfn, sc->level, NULL);
}

/*
 * Try one host SEAMCALL on one S-EPT entry up to its own checks, in the
 * module's order: the GPA operand, the page operand, injection (a failure
 * only if @sc->may_fail), the tree lock, the walk to the target entry,
 * the entry lock.
 *
 * Returns TDX_SUCCESS with the tree lock and the entry lock held and
 * @sc->entry, @sc->old set: end the call with seamcall_exit() or
 * seamcall_commit().  Any other status has ended the call: no lock is
 * held, nothing changed, the outcome is counted and a protocol error is
 * reported (with the walk's error details in @sc->err).
 */
static tdx_status_t seamcall_enter(struct seamcall *sc)
{
	struct tdx_module *mod = sc->mod;
	bool page_operand = sc->pages > 0;
	tdx_status_t st;

	if (!sc->err)
		sc->err = &sc->local_err;
	if (!gpa_operand_ok(mod, sc->gfn, sc->level, sc->min_level,
			    sc->max_level))
		return seamcall_refuse(sc, TDX_OPERAND_INVALID |
						   TDX_OPERAND_ID_RCX);
	if (page_operand && (sc->pfn & (sc->pages - 1)))
		return seamcall_refuse(sc,
				       TDX_OPERAND_INVALID | TDX_OPERAND_ID_R8);
	if (page_operand && !host_mem_tdx_usable(mod->mem, sc->pfn, sc->pages))
		return seamcall_refuse(sc, TDX_OPERAND_ADDR_RANGE_ERROR |
						   TDX_OPERAND_ID_R8);
	st = inject(mod, sc->op, sc->may_fail);
	if (st)
		return st;
	if (!tree_trylock(sc))
		return seamcall_refuse(sc, TDX_OPERAND_BUSY |
						   TDX_OPERAND_ID_SEPT_TREE);

	sc->entry = sept_walk(mod, sc->gfn, sc->level, sc->err);
	if (!sc->entry)
		st = TDX_EPT_WALK_FAILED | TDX_OPERAND_ID_RCX;
	else if (!entry_trylock(sc->entry, &sc->old))
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX;
	else
		return TDX_SUCCESS;
	tree_unlock(sc);
	return host_done(mod, sc->op, st, sc->gfn, sc->level, sc->err);
}

/*
 * End a call seamcall_enter() entered: store @entry and drop the entry
 * lock in one release store, drop the tree lock, count the outcome @st
 * and report a protocol error.  Returns @st.
 */
static tdx_status_t seamcall_end(struct seamcall *sc, tdx_status_t st,
				 uint64_t entry)
{
	entry_unlock(sc->entry, entry);
	tree_unlock(sc);
	return host_done(sc->mod, sc->op, st, sc->gfn, sc->level, sc->err);
}

/* End the call with @st (an error, or a warning) and the entry unchanged. */
static tdx_status_t seamcall_exit(struct seamcall *sc, tdx_status_t st)
{
	return seamcall_end(sc, st, sc->old);
}

/* End the call with TDX_SUCCESS: the entry becomes @entry. */
static tdx_status_t seamcall_commit(struct seamcall *sc, uint64_t entry)
{
	return seamcall_end(sc, TDX_SUCCESS, entry);
}

/* The state of the locked target entry, recorded in the error details. */
static int record_entry_state(struct seamcall *sc)
{
	int state = sept_entry_state(sc->old);

	sc->err->level = sc->level;
	sc->err->state = state;
	return state;
}

/*
 * The check of every call that removes or restructures an entry the CPU
 * may have cached (PAGE.REMOVE, SEPT.REMOVE, PAGE.DEMOTE, PAGE.PROMOTE):
 * the locked target entry is a blocked leaf (@leaf) or NL_BLOCKED, and
 * its block is tracked.  Returns TDX_SUCCESS, or the status that ends
 * the call: GPA_RANGE_NOT_BLOCKED for the unblocked state of that kind,
 * EPT_ENTRY_STATE_INCORRECT for any other state, TLB_TRACKING_NOT_DONE.
 */
static tdx_status_t check_blocked_and_tracked(struct seamcall *sc, bool leaf)
{
	int state = record_entry_state(sc);
	bool unblocked, blocked;

	if (leaf) {
		unblocked = state == SEPT_MAPPED || state == SEPT_PENDING;
		blocked =
			state == SEPT_BLOCKED || state == SEPT_PENDING_BLOCKED;
	} else {
		unblocked = state == SEPT_NL_MAPPED;
		blocked = state == SEPT_NL_BLOCKED;
	}
	if (unblocked)
		return TDX_GPA_RANGE_NOT_BLOCKED | TDX_OPERAND_ID_RCX;
	if (!blocked)
		return TDX_EPT_ENTRY_STATE_INCORRECT | TDX_OPERAND_ID_RCX;
	if (!block_is_tracked(sc->mod, sept_entry_pfn(sc->old)))
		return TDX_TLB_TRACKING_NOT_DONE | TDX_OPERAND_ID_RCX;
	return TDX_SUCCESS;
}

/*
 * The common start of SEPT.ADD and PAGE.AUG: seamcall_enter(), then the
 * target entry must be FREE and the PAMT entries of the page operand,
 * locked in order, must be NDA.  Returns TDX_SUCCESS with the PAMT
 * entries locked too: end the call with map_commit().  Any other status
 * has ended the call, as for seamcall_enter().
 */
static tdx_status_t map_enter(struct seamcall *sc)
{
	struct tdx_module *mod = sc->mod;
	tdx_status_t st = seamcall_enter(sc);

	if (st)
		return st;
	if (sept_entry_state(sc->old) != SEPT_FREE) {
		record_entry_state(sc);
		return seamcall_exit(sc, TDX_EPT_ENTRY_STATE_INCORRECT |
						 TDX_OPERAND_ID_RCX);
	}
	if (!pamt_trylock_range(mod, sc->pfn, sc->pages))
		return seamcall_exit(sc, TDX_OPERAND_BUSY | TDX_OPERAND_ID_R8);
	for (uint64_t i = 0; i < sc->pages; i++) {
		if (pamt_type(pamt_of(mod, sc->pfn + i)) != PAMT_NDA) {
			pamt_unlock_range(mod, sc->pfn, sc->pages);
			return seamcall_exit(sc, TDX_PAGE_METADATA_INCORRECT |
							 TDX_OPERAND_ID_R8);
		}
	}
	return TDX_SUCCESS;
}

/* End a call map_enter() entered: the entry maps the page operand in @state. */
static tdx_status_t map_commit(struct seamcall *sc, int state)
{
	pamt_unlock_range(sc->mod, sc->pfn, sc->pages);
	return seamcall_commit(sc, make_entry(state, sc->pfn, sc->level));
}

/* ---- SEPT.ADD ------------------------------------------------------------ */

tdx_status_t tdx_sept_add(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			  tdp_pfn_t pfn, struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = SIM_SC_SEPT_ADD, .pfn = pfn, .pages = 1, .may_fail = true,
		.min_level = TDP_LEVEL_2M, .max_level = mod->root_level,
	};
	struct pamt_entry *pamt;
	uint64_t *table;
	tdx_status_t st;

	st = map_enter(&sc);
	if (st)
		return st;
	pamt = pamt_of(mod, pfn);
	table = table_storage(mod, pfn);
	if (!table) {
		fprintf(stderr, "tdpsim: out of memory for S-EPT storage\n");
		abort();
	}
	/* The new table is all FREE before the entry publishes it. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		__atomic_store_n(&table[i], make_entry(SEPT_FREE, 0, level - 1),
				 __ATOMIC_RELAXED);
	__atomic_store_n(&pamt->bepoch, 0, __ATOMIC_RELAXED);
	pamt_set(pamt, PAMT_EPT, 0, gfn);
	__atomic_add_fetch(&mod->child_count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mod->sept_pages, 1, __ATOMIC_RELAXED);
	return map_commit(&sc, SEPT_NL_MAPPED);
}

/* ---- PAGE.AUG ------------------------------------------------------------ */

tdx_status_t tdx_page_aug(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			  tdp_pfn_t pfn, struct tdx_err_info *err)
{
	const enum sim_seamcall op = level == TDP_LEVEL_2M ? SIM_SC_PAGE_AUG_2M
							   : SIM_SC_PAGE_AUG_4K;
	uint64_t pages = tdp_level_pages(level);
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = op, .pfn = pfn, .pages = pages, .may_fail = true,
		.min_level = TDP_LEVEL_4K, .max_level = TDP_LEVEL_2M,
	};
	tdx_status_t st;

	st = map_enter(&sc);
	if (st)
		return st;
	for (uint64_t i = 0; i < pages; i++) {
		struct pamt_entry *p = pamt_of(mod, pfn + i);

		__atomic_store_n(&p->bepoch, 0, __ATOMIC_RELAXED);
		pamt_set(p, PAMT_REG, level, gfn + i);
	}
	__atomic_add_fetch(&mod->child_count, (int64_t)pages,
			   __ATOMIC_RELAXED);
	/* Content is left alone: the guest's ACCEPT zeroes it. */
	return map_commit(&sc, SEPT_PENDING);
}

/* ---- RANGE.BLOCK / RANGE.UNBLOCK ----------------------------------------- */

static int blocked_state_of(int state)
{
	switch (state) {
	case SEPT_NL_MAPPED:
		return SEPT_NL_BLOCKED;
	case SEPT_MAPPED:
		return SEPT_BLOCKED;
	case SEPT_PENDING:
		return SEPT_PENDING_BLOCKED;
	}
	return -1;
}

static int unblocked_state_of(int state)
{
	switch (state) {
	case SEPT_NL_BLOCKED:
		return SEPT_NL_MAPPED;
	case SEPT_BLOCKED:
		return SEPT_MAPPED;
	case SEPT_PENDING_BLOCKED:
		return SEPT_PENDING;
	}
	return -1;
}

/* BLOCK (@block) or UNBLOCK the entry at any level, tree lock exclusive. */
static tdx_status_t range_block_or_unblock(struct tdx_module *mod,
					   tdp_gfn_t gfn, int level,
					   bool block,
					   struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = block ? SIM_SC_RANGE_BLOCK : SIM_SC_RANGE_UNBLOCK,
		.tree_exclusive = true,
		.min_level = TDP_LEVEL_4K, .max_level = mod->root_level,
	};
	tdp_pfn_t pfn;
	int state, next;
	tdx_status_t st;

	st = seamcall_enter(&sc);
	if (st)
		return st;
	state = record_entry_state(&sc);
	pfn = sept_entry_pfn(sc.old);
	if (block) {
		next = blocked_state_of(state);
		if (next < 0) {
			st = unblocked_state_of(state) >= 0
				     ? TDX_GPA_RANGE_ALREADY_BLOCKED
				     : TDX_EPT_ENTRY_STATE_INCORRECT |
					       TDX_OPERAND_ID_RCX;
			return seamcall_exit(&sc, st);
		}
		__atomic_store_n(&pamt_of(mod, pfn)->bepoch,
				 __atomic_load_n(&mod->td_epoch,
						 __ATOMIC_ACQUIRE),
				 __ATOMIC_RELAXED);
	} else {
		next = unblocked_state_of(state);
		if (next < 0) {
			st = blocked_state_of(state) >= 0
				     ? TDX_GPA_RANGE_NOT_BLOCKED
				     : TDX_EPT_ENTRY_STATE_INCORRECT;
			return seamcall_exit(&sc, st | TDX_OPERAND_ID_RCX);
		}
		if (!block_is_tracked(mod, pfn))
			return seamcall_exit(&sc, TDX_TLB_TRACKING_NOT_DONE |
							  TDX_OPERAND_ID_RCX);
	}
	return seamcall_commit(&sc, make_entry(next, pfn, level));
}

tdx_status_t tdx_range_block(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, struct tdx_err_info *err)
{
	return range_block_or_unblock(mod, gfn, level, true, err);
}

tdx_status_t tdx_range_unblock(struct tdx_module *mod, tdp_gfn_t gfn,
			       int level, struct tdx_err_info *err)
{
	return range_block_or_unblock(mod, gfn, level, false, err);
}

/* ---- TRACK --------------------------------------------------------------- */

tdx_status_t tdx_track(struct tdx_module *mod)
{
	const enum sim_seamcall op = SIM_SC_TRACK;
	uint64_t epoch;
	tdx_status_t st;

	st = inject(mod, op, false);
	if (st)
		return st;
	if (!sharex_try_exclusive(&mod->epoch_lock))
		return host_done(mod, op, TDX_OPERAND_BUSY |
					  TDX_OPERAND_ID_TD_EPOCH,
				 SIM_NO_GFN, 0, NULL);
	epoch = __atomic_load_n(&mod->td_epoch, __ATOMIC_RELAXED);
	if (__atomic_load_n(&mod->epoch_refs[(epoch - 1) & 1],
			    __ATOMIC_ACQUIRE)) {
		st = TDX_PREVIOUS_TLB_EPOCH_BUSY;
	} else {
		__atomic_store_n(&mod->td_epoch, epoch + 1, __ATOMIC_RELEASE);
		st = TDX_SUCCESS;
	}
	sharex_release_exclusive(&mod->epoch_lock);
	return host_done(mod, op, st, SIM_NO_GFN, 0, NULL);
}

/* ---- PAGE.REMOVE --------------------------------------------------------- */

tdx_status_t tdx_page_remove(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t *removed,
			     struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = SIM_SC_PAGE_REMOVE,
		.min_level = TDP_LEVEL_4K, .max_level = TDP_LEVEL_2M,
	};
	uint64_t pages = tdp_level_pages(level);
	tdp_pfn_t pfn;
	tdx_status_t st;

	st = seamcall_enter(&sc);
	if (st)
		return st;
	st = check_blocked_and_tracked(&sc, true);
	if (st)
		return seamcall_exit(&sc, st);
	pfn = sept_entry_pfn(sc.old);
	if (!pamt_trylock_range(mod, pfn, pages))
		return seamcall_exit(&sc, TDX_OPERAND_BUSY | TDX_OPERAND_ID_R8);
	for (uint64_t i = 0; i < pages; i++) {
		struct pamt_entry *p = pamt_of(mod, pfn + i);

		if (pamt_type(p) != PAMT_REG ||
		    __atomic_load_n(&p->size_level, __ATOMIC_RELAXED) !=
			    (uint32_t)level) {
			pamt_unlock_range(mod, pfn, pages);
			return seamcall_exit(&sc, TDX_PAGE_METADATA_INCORRECT |
							  TDX_OPERAND_ID_R8);
		}
	}
	for (uint64_t i = 0; i < pages; i++)
		pamt_set(pamt_of(mod, pfn + i), PAMT_NDA, 0, 0);
	__atomic_sub_fetch(&mod->child_count, (int64_t)pages,
			   __ATOMIC_RELAXED);
	if (removed)
		*removed = pfn;
	pamt_unlock_range(mod, pfn, pages);
	return seamcall_commit(&sc, make_entry(SEPT_FREE, 0, level));
}

/* ---- SEPT.REMOVE --------------------------------------------------------- */

static bool table_is_free(const uint64_t *table)
{
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		if (sept_entry_state(entry_load(&table[i])) != SEPT_FREE)
			return false;
	return true;
}

tdx_status_t tdx_sept_remove(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t *removed,
			     struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = SIM_SC_SEPT_REMOVE, .tree_exclusive = true,
		.min_level = TDP_LEVEL_2M, .max_level = mod->root_level,
	};
	struct pamt_entry *pamt;
	tdp_pfn_t child;
	tdx_status_t st;

	st = seamcall_enter(&sc);
	if (st)
		return st;
	st = check_blocked_and_tracked(&sc, false);
	if (st)
		return seamcall_exit(&sc, st);
	child = sept_entry_pfn(sc.old);
	if (!table_is_free(table_of(mod, child)))
		return seamcall_exit(&sc, TDX_EPT_PAGE_NOT_FREE |
						  TDX_OPERAND_ID_RCX);
	pamt = pamt_of(mod, child);
	if (!pamt_trylock(pamt))
		return seamcall_exit(&sc, TDX_OPERAND_BUSY | TDX_OPERAND_ID_R8);
	pamt_set(pamt, PAMT_NDA, 0, 0);
	pamt_unlock(pamt);
	__atomic_sub_fetch(&mod->child_count, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&mod->sept_pages, 1, __ATOMIC_RELAXED);
	if (removed)
		*removed = child;
	return seamcall_commit(&sc, make_entry(SEPT_FREE, 0, level));
}

/* ---- PAGE.DEMOTE / PAGE.PROMOTE ------------------------------------------ */

tdx_status_t tdx_page_demote(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level, tdp_pfn_t sept_pfn,
			     struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = SIM_SC_PAGE_DEMOTE, .pfn = sept_pfn, .pages = 1,
		.min_level = TDP_LEVEL_2M, .max_level = TDP_LEVEL_2M,
	};
	const int child_level = level - 1;
	struct pamt_entry *pamt;
	uint64_t *table, pages, step;
	tdp_pfn_t pfn;
	int child_state;
	tdx_status_t st;

	st = seamcall_enter(&sc);
	if (st)
		return st;
	/* Sizes only now: @level is valid once the operands are checked. */
	pages = tdp_level_pages(level);
	step = tdp_level_pages(child_level);
	st = check_blocked_and_tracked(&sc, true);
	if (st)
		return seamcall_exit(&sc, st);
	pfn = sept_entry_pfn(sc.old);
	pamt = pamt_of(mod, sept_pfn);
	if (!pamt_trylock(pamt))
		return seamcall_exit(&sc, TDX_OPERAND_BUSY | TDX_OPERAND_ID_R8);
	if (pamt_type(pamt) != PAMT_NDA) {
		pamt_unlock(pamt);
		return seamcall_exit(&sc, TDX_PAGE_METADATA_INCORRECT |
						  TDX_OPERAND_ID_R8);
	}
	if (!pamt_trylock_range(mod, pfn, pages)) {
		pamt_unlock(pamt);
		return seamcall_exit(&sc,
				     TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX);
	}

	table = table_storage(mod, sept_pfn);
	if (!table) {
		fprintf(stderr, "tdpsim: out of memory for S-EPT storage\n");
		abort();
	}
	/* The children are complete before the entry publishes the table. */
	child_state = unblocked_state_of(sept_entry_state(sc.old));
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		__atomic_store_n(
			&table[i],
			make_entry(child_state, pfn + i * step, child_level),
			__ATOMIC_RELAXED);
	for (uint64_t i = 0; i < pages; i++)
		pamt_set(pamt_of(mod, pfn + i), PAMT_REG, child_level, gfn + i);
	__atomic_store_n(&pamt->bepoch, 0, __ATOMIC_RELAXED);
	pamt_set(pamt, PAMT_EPT, 0, gfn);
	__atomic_add_fetch(&mod->child_count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mod->sept_pages, 1, __ATOMIC_RELAXED);
	pamt_unlock_range(mod, pfn, pages);
	pamt_unlock(pamt);
	return seamcall_commit(&sc,
			       make_entry(SEPT_NL_MAPPED, sept_pfn, level));
}

/*
 * Lock all 512 entries of @table, storing their values in @child; all or
 * none.  False if another operation holds one of them.
 */
static bool children_trylock(uint64_t *table, uint64_t *child)
{
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		if (!entry_trylock(&table[i], &child[i])) {
			while (i--)
				entry_unlock(&table[i], child[i]);
			return false;
		}
	}
	return true;
}

static void children_unlock(uint64_t *table, const uint64_t *child)
{
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		entry_unlock(&table[i], child[i]);
}

/*
 * The merge condition of PAGE.PROMOTE on the 512 locked entries @child of
 * a table at @child_level: child 0 a MAPPED or PENDING leaf whose host
 * page is aligned to the merged size, and every child i the same entry
 * mapping the host page i steps further.  Returns the index of the first
 * child that breaks it, or -1.
 */
static int promote_breaker(const uint64_t *child, int child_level)
{
	const uint64_t step = tdp_level_pages(child_level);
	const uint64_t size = step * TDP_SPTES_PER_TABLE;
	int state = sept_entry_state(child[0]);
	tdp_pfn_t pfn = sept_entry_pfn(child[0]);

	if ((state != SEPT_MAPPED && state != SEPT_PENDING) ||
	    (pfn & (size - 1)))
		return 0;
	for (int i = 1; i < TDP_SPTES_PER_TABLE; i++)
		if (child[i] != make_entry(state, pfn + i * step, child_level))
			return i;
	return -1;
}

tdx_status_t tdx_page_promote(struct tdx_module *mod, tdp_gfn_t gfn,
			      int level, tdp_pfn_t *released,
			      struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = level, .err = err,
		.op = SIM_SC_PAGE_PROMOTE,
		.min_level = TDP_LEVEL_2M, .max_level = TDP_LEVEL_2M,
	};
	const int child_level = level - 1;
	uint64_t child[TDP_SPTES_PER_TABLE];
	struct pamt_entry *pamt;
	uint64_t *table, pages;
	tdp_pfn_t table_pfn, pfn;
	int state, breaker;
	tdx_status_t st;

	st = seamcall_enter(&sc);
	if (st)
		return st;
	/* Sizes only now: @level is valid once the operands are checked. */
	pages = tdp_level_pages(level);
	st = check_blocked_and_tracked(&sc, false);
	if (st)
		return seamcall_exit(&sc, st);
	table_pfn = sept_entry_pfn(sc.old);
	table = table_of(mod, table_pfn);
	if (!children_trylock(table, child))
		return seamcall_exit(&sc,
				     TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX);
	breaker = promote_breaker(child, child_level);
	if (breaker >= 0) {
		sc.err->level = child_level;
		sc.err->state = sept_entry_state(child[breaker]);
		children_unlock(table, child);
		return seamcall_exit(&sc, TDX_EPT_INVALID_PROMOTE_CONDITIONS |
						  TDX_OPERAND_ID_RCX);
	}
	state = sept_entry_state(child[0]);
	pfn = sept_entry_pfn(child[0]);
	pamt = pamt_of(mod, table_pfn);
	if (!pamt_trylock(pamt)) {
		children_unlock(table, child);
		return seamcall_exit(&sc,
				     TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX);
	}
	if (!pamt_trylock_range(mod, pfn, pages)) {
		pamt_unlock(pamt);
		children_unlock(table, child);
		return seamcall_exit(&sc,
				     TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX);
	}

	for (uint64_t i = 0; i < pages; i++)
		pamt_set(pamt_of(mod, pfn + i), PAMT_REG, level, gfn + i);
	pamt_unlock_range(mod, pfn, pages);
	pamt_set(pamt, PAMT_NDA, 0, 0);
	pamt_unlock(pamt);
	__atomic_sub_fetch(&mod->child_count, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&mod->sept_pages, 1, __ATOMIC_RELAXED);
	/*
	 * The released table holds only FREE entries: whatever still reads
	 * it (an ACCEPT that walked past the entry before the block) finds
	 * nothing mapped.
	 */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		entry_unlock(&table[i], make_entry(SEPT_FREE, 0, child_level));
	if (released)
		*released = table_pfn;
	return seamcall_commit(&sc, make_entry(state, pfn, level));
}

/* ---- vCPUs --------------------------------------------------------------- */

tdx_status_t tdx_vp_enter(struct tdx_module *mod, unsigned int vp,
			  bool *flush_private_tlb)
{
	const enum sim_seamcall op = SIM_SC_VP_ENTER;
	struct tdx_vp *v = &mod->vp[vp];
	uint64_t epoch;
	tdx_status_t st;

	*flush_private_tlb = false;
	st = inject(mod, op, false);
	if (st)
		return st;
	if (!sharex_try_shared(&mod->epoch_lock)) {
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_TD_EPOCH;
		count_outcome(mod, op, st);
		return st;
	}
	epoch = __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);
	*flush_private_tlb =
		__atomic_load_n(&v->entered_epoch, __ATOMIC_RELAXED) != epoch;
	__atomic_store_n(&v->entered_epoch, epoch, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mod->epoch_refs[epoch & 1], 1, __ATOMIC_ACQ_REL);
	sharex_release_shared(&mod->epoch_lock);
	count_outcome(mod, op, TDX_SUCCESS);
	return TDX_SUCCESS;
}

void tdx_vp_exit(struct tdx_module *mod, unsigned int vp)
{
	uint64_t epoch = __atomic_load_n(&mod->vp[vp].entered_epoch,
					 __ATOMIC_RELAXED);

	__atomic_sub_fetch(&mod->epoch_refs[epoch & 1], 1, __ATOMIC_RELEASE);
}

/* ---- TDG.MEM.PAGE.ACCEPT ------------------------------------------------- */

/* Zero the accepted page(s) with the TD's key: tag (gfn, 0). */
static void accept_zero(struct tdx_module *mod, tdp_gfn_t gfn, tdp_pfn_t pfn,
			uint64_t pages)
{
	for (uint64_t i = 0; i < pages; i++) {
		struct host_page *p = host_mem_page(mod->mem, pfn + i);

		if (p)
			host_page_set_tag(p, SIM_TAG(gfn + i, 0));
	}
}

tdx_status_t tdx_page_accept(struct tdx_module *mod, unsigned int vp,
			     tdp_gfn_t gfn, int level,
			     struct tdx_err_info *err)
{
	const enum sim_seamcall op = SIM_SC_PAGE_ACCEPT;
	struct tdx_err_info local = { 0 };
	uint64_t *table, *e;
	uint64_t old;
	int state;
	tdx_status_t st;

	(void)vp;
	err = err ? err : &local;
	if (!gpa_operand_ok(mod, gfn, level, TDP_LEVEL_4K, TDP_LEVEL_2M)) {
		count_outcome(mod, op, TDX_OPERAND_INVALID);
		return TDX_OPERAND_INVALID | TDX_OPERAND_ID_RCX;
	}
	st = inject(mod, op, false);
	if (st)
		return st;

	/* The guest-side walk: a leaf above the target decides alone. */
	table = table_of(mod, mod->root_pfn);
	for (int l = mod->root_level; l > level; l--) {
		uint64_t v = entry_load(&table[entry_index(gfn, l)]);

		state = sept_entry_state(v);
		if (state == SEPT_NL_MAPPED) {
			table = table_of(mod, sept_entry_pfn(v));
			continue;
		}
		err->level = l;
		err->state = state;
		st = state == SEPT_MAPPED ? TDX_PAGE_ALREADY_ACCEPTED
					  : TDX_SIM_TD_EXIT_EPT_VIOLATION;
		count_outcome(mod, op, st);
		return st;
	}

	e = &table[entry_index(gfn, level)];
	if (!entry_trylock(e, &old)) {
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX;
		count_outcome(mod, op, st);
		return st;
	}
	state = sept_entry_state(old);
	err->level = level;
	err->state = state;
	switch (state) {
	case SEPT_PENDING:
		accept_zero(mod, gfn, sept_entry_pfn(old),
			    tdp_level_pages(level));
		old = make_entry(SEPT_MAPPED, sept_entry_pfn(old), level);
		st = TDX_SUCCESS;
		break;
	case SEPT_MAPPED:
		st = TDX_PAGE_ALREADY_ACCEPTED;
		break;
	case SEPT_NL_MAPPED:
	case SEPT_NL_BLOCKED:
		st = TDX_PAGE_SIZE_MISMATCH | TDX_OPERAND_ID_RCX;
		break;
	default:
		st = TDX_SIM_TD_EXIT_EPT_VIOLATION;
		break;
	}
	entry_unlock(e, old);
	count_outcome(mod, op, st);
	return st;
}

/* ---- queries ------------------------------------------------------------- */

int tdx_root_level(const struct tdx_module *mod)
{
	return mod->root_level;
}

const uint64_t *tdx_sept_root_table(const struct tdx_module *mod)
{
	return table_of(mod, mod->root_pfn);
}

const uint64_t *tdx_sept_table(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	return table_of(mod, pfn);
}

void tdx_sept_lookup(const struct tdx_module *mod, tdp_gfn_t gfn,
		     uint64_t *entry, int *level)
{
	const uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level;; l--) {
		uint64_t v = entry_load(&table[entry_index(gfn, l)]);

		if (l == TDP_LEVEL_4K ||
		    sept_entry_state(v) != SEPT_NL_MAPPED) {
			*entry = v & ~SEPT_LOCKED;
			*level = l;
			return;
		}
		table = table_of(mod, sept_entry_pfn(v));
	}
}

struct tdx_pamt_info tdx_pamt_get(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	struct tdx_pamt_info info = { .type = PAMT_RSVD };
	const struct pamt_entry *p;

	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return info;
	p = &mod->pamt[pfn - mod->mem->base];
	info.type = (enum pamt_type)__atomic_load_n(&p->type, __ATOMIC_ACQUIRE);
	info.size_level = (int)__atomic_load_n(&p->size_level,
					       __ATOMIC_RELAXED);
	info.gfn = __atomic_load_n(&p->gfn, __ATOMIC_RELAXED);
	info.bepoch = __atomic_load_n(&p->bepoch, __ATOMIC_RELAXED);
	return info;
}

uint64_t tdx_td_epoch(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);
}

uint64_t tdx_vp_entered_epoch(const struct tdx_module *mod, unsigned int vp)
{
	return __atomic_load_n(&mod->vp[vp].entered_epoch, __ATOMIC_RELAXED);
}

int64_t tdx_td_child_count(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->child_count, __ATOMIC_RELAXED);
}

int64_t tdx_sept_pages(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->sept_pages, __ATOMIC_RELAXED);
}

void tdx_module_set_injection(struct tdx_module *mod, uint32_t busy_ppm,
			      uint32_t fail_ppm)
{
	__atomic_store_n(&mod->busy_ppm, busy_ppm, __ATOMIC_RELAXED);
	__atomic_store_n(&mod->fail_ppm, fail_ppm, __ATOMIC_RELAXED);
}

/* ---- test hooks ---------------------------------------------------------- */

/* The entry at (@gfn, @level) through NL_MAPPED and NL_BLOCKED entries. */
static uint64_t *debug_walk(struct tdx_module *mod, tdp_gfn_t gfn, int level)
{
	uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level; l > level; l--) {
		uint64_t v = entry_load(&table[entry_index(gfn, l)]);
		int state = sept_entry_state(v);

		if (state != SEPT_NL_MAPPED && state != SEPT_NL_BLOCKED)
			return NULL;
		table = table_of(mod, sept_entry_pfn(v));
	}
	return &table[entry_index(gfn, level)];
}

bool tdx_debug_hold_entry(struct tdx_module *mod, tdp_gfn_t gfn, int level)
{
	uint64_t *e = debug_walk(mod, gfn, level);
	uint64_t old;

	return e && entry_trylock(e, &old);
}

void tdx_debug_release_entry(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level)
{
	uint64_t *e = debug_walk(mod, gfn, level);

	if (e)
		entry_unlock(e, entry_load(e));
}

/* ---- creation and teardown ----------------------------------------------- */

/* A TD control page from TDX-usable memory, owned by the module. */
static tdp_pfn_t add_control_page(struct tdx_module *mod)
{
	tdp_pfn_t pfn = host_mem_alloc(mod->mem, HOST_POOL_TDX,
				       HOST_PAGE_TD_CONTROL, 0);

	if (pfn)
		pamt_set(pamt_of(mod, pfn), PAMT_CTL, 0, 0);
	return pfn;
}

int tdx_module_create(const struct tdx_module_config *cfg,
		      struct tdx_module **out)
{
	struct tdx_module *mod;
	uint64_t n;

	if (!cfg || !cfg->mem || (cfg->root_level != 4 && cfg->root_level != 5))
		return -EINVAL;
	mod = calloc(1, sizeof(*mod));
	if (!mod)
		return -ENOMEM;
	mod->mem = cfg->mem;
	mod->root_level = cfg->root_level;
	mod->shared_bit = cfg->shared_bit;
	mod->nr_vcpus = cfg->nr_vcpus;
	mod->report = cfg->report;
	mod->stats = cfg->stats;
	mod->busy_ppm = cfg->busy_ppm;
	mod->fail_ppm = cfg->fail_ppm;
	mod->td_epoch = 1;
	n = cfg->mem->nr_pages;
	mod->pamt = calloc(n, sizeof(*mod->pamt));
	mod->tables = calloc(n, sizeof(*mod->tables));
	mod->vp = calloc(cfg->nr_vcpus + 1, sizeof(*mod->vp));
	mod->tdvpr_pfn = calloc(cfg->nr_vcpus + 1, sizeof(*mod->tdvpr_pfn));
	if (!mod->pamt || !mod->tables || !mod->vp || !mod->tdvpr_pfn)
		goto err;

	/* TDH.SYS.CONFIG: the PAMT covers the TDX-usable ranges only. */
	for (uint64_t i = 0; i < n; i++)
		mod->pamt[i].type = host_mem_tdx_usable(cfg->mem,
							cfg->mem->base + i, 1)
					    ? PAMT_NDA
					    : PAMT_RSVD;

	/* TDH.MNG.CREATE, TDH.MNG.ADDCX, TDH.VP.CREATE. */
	mod->tdr_pfn = add_control_page(mod);
	for (int i = 0; i < 4; i++)
		mod->tdcs_pfn[i] = add_control_page(mod);
	for (unsigned int i = 0; i < cfg->nr_vcpus; i++)
		mod->tdvpr_pfn[i] = add_control_page(mod);
	if (!mod->tdr_pfn || !mod->tdcs_pfn[3] ||
	    (cfg->nr_vcpus && !mod->tdvpr_pfn[cfg->nr_vcpus - 1]))
		goto err;
	mod->root_pfn = mod->tdcs_pfn[3];
	if (!table_storage(mod, mod->root_pfn))
		goto err;
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		mod->tables[mod->root_pfn - cfg->mem->base][i] =
			make_entry(SEPT_FREE, 0, cfg->root_level);
	*out = mod;
	return 0;
err:
	tdx_module_destroy(mod);
	return -ENOMEM;
}

static void reclaim_control_page(struct tdx_module *mod, tdp_pfn_t *pfn)
{
	if (!*pfn)
		return;
	pamt_set(pamt_of(mod, *pfn), PAMT_NDA, 0, 0);
	host_mem_free(mod->mem, *pfn);
	count_outcome(mod, SIM_SC_PAGE_RECLAIM, TDX_SUCCESS);
	*pfn = 0;
}

tdx_status_t tdx_module_teardown(struct tdx_module *mod)
{
	int64_t children = tdx_td_child_count(mod);

	if (mod->torn_down)
		return TDX_SUCCESS;
	if (children) {
		if (mod->report)
			sim_violation(mod->report, SIM_V_TDX_ERROR,
				      TDX_TD_ASSOCIATED_PAGES_EXIST, SIM_NO_GFN,
				      SIM_NO_VCPU,
				      "TD teardown: %" PRId64 " pages are "
				      "still "
				      "associated with the TD (%" PRId64
				      " S-EPT pages): the TDR cannot be "
				      "reclaimed",
				      children, tdx_sept_pages(mod));
		count_outcome(mod, SIM_SC_PAGE_RECLAIM,
			      TDX_TD_ASSOCIATED_PAGES_EXIST);
		return TDX_TD_ASSOCIATED_PAGES_EXIST;
	}
	for (unsigned int i = 0; i < mod->nr_vcpus; i++)
		reclaim_control_page(mod, &mod->tdvpr_pfn[i]);
	for (int i = 0; i < 4; i++)
		reclaim_control_page(mod, &mod->tdcs_pfn[i]);
	/* The TDR goes last: it holds the child count. */
	reclaim_control_page(mod, &mod->tdr_pfn);
	mod->root_pfn = 0;
	mod->torn_down = true;
	return TDX_SUCCESS;
}

void tdx_module_destroy(struct tdx_module *mod)
{
	if (!mod)
		return;
	if (mod->tables)
		for (uint64_t i = 0; i < mod->mem->nr_pages; i++)
			free(mod->tables[i]);
	free(mod->tables);
	free(mod->pamt);
	free(mod->vp);
	free(mod->tdvpr_pfn);
	free(mod);
}
