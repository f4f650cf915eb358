/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host SEAMCALLs of the simulated TDX module (see tdx_seamcall.h,
 * and tdx_module.h for the model).
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
#include "tdx_seamcall.h"

#include <stdio.h>
#include <stdlib.h>

#include "report.h"
#include "tdx_module_state.h"
#include "tdx_outcome.h"

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
	/*
	 * The TD operation state the call needs: build (PAGE.ADD,
	 * MR.EXTEND: INITIALIZED only), run (PAGE.AUG: RUNNABLE only), or
	 * either (every other call).
	 */
	enum { IN_ANY_STATE, IN_BUILD, IN_RUN } needs;
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
	return tdx_host_call_done(sc->mod, sc->op, st, sc->gfn, sc->level,
				  NULL);
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
	if (!tdx_gpa_operand_ok(mod, sc->gfn, sc->level, sc->min_level,
				sc->max_level))
		return seamcall_refuse(sc, TDX_OPERAND_INVALID |
						   TDX_OPERAND_ID_RCX);
	if (page_operand && (sc->pfn & (sc->pages - 1)))
		return seamcall_refuse(sc,
				       TDX_OPERAND_INVALID | TDX_OPERAND_ID_R8);
	if (page_operand && !host_mem_tdx_usable(mod->mem, sc->pfn, sc->pages))
		return seamcall_refuse(sc, TDX_OPERAND_ADDR_RANGE_ERROR |
						   TDX_OPERAND_ID_R8);
	if (sc->needs != IN_ANY_STATE &&
	    tdx_td_op_state(mod) != (sc->needs == IN_BUILD ? TDX_TD_INITIALIZED
							   : TDX_TD_RUNNABLE))
		return seamcall_refuse(sc, TDX_OP_STATE_INCORRECT);
	st = tdx_inject(mod, sc->op, sc->may_fail);
	if (st)
		return st;
	if (!tree_trylock(sc))
		return seamcall_refuse(sc, TDX_OPERAND_BUSY |
						   TDX_OPERAND_ID_SEPT_TREE);

	sc->entry = tdx_sept_walk(mod, sc->gfn, sc->level, sc->err);
	if (!sc->entry)
		st = TDX_EPT_WALK_FAILED | TDX_OPERAND_ID_RCX;
	else if (!entry_trylock(sc->entry, &sc->old))
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX;
	else
		return TDX_SUCCESS;
	tree_unlock(sc);
	return tdx_host_call_done(mod, sc->op, st, sc->gfn, sc->level, sc->err);
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
	return tdx_host_call_done(sc->mod, sc->op, st, sc->gfn, sc->level,
				  sc->err);
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
	if (!tdx_block_is_tracked(sc->mod, sept_entry_pfn(sc->old)))
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
	table = tdx_table_storage(mod, pfn);
	if (!table) {
		fprintf(stderr, "tdpsim: out of memory for S-EPT storage\n");
		abort();
	}
	/* The new table is all FREE before the entry publishes it. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		__atomic_store_n(&table[i], make_entry(SEPT_FREE, 0, level - 1),
				 __ATOMIC_RELAXED);
	__atomic_store_n(&pamt->bepoch, 0, __ATOMIC_RELAXED);
	pamt_set(mod, pamt, PAMT_EPT, 0, gfn);
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
		.needs = IN_RUN,
	};
	tdx_status_t st;

	st = map_enter(&sc);
	if (st)
		return st;
	for (uint64_t i = 0; i < pages; i++) {
		struct pamt_entry *p = pamt_of(mod, pfn + i);

		__atomic_store_n(&p->bepoch, 0, __ATOMIC_RELAXED);
		pamt_set(mod, p, PAMT_REG, level, gfn + i);
	}
	__atomic_add_fetch(&mod->child_count, (int64_t)pages,
			   __ATOMIC_RELAXED);
	/* Content is left alone: the guest's ACCEPT zeroes it. */
	return map_commit(&sc, SEPT_PENDING);
}

/* ---- TD build: PAGE.ADD, MR.EXTEND, MR.FINALIZE --------------------------- */

tdx_status_t tdx_page_add(struct tdx_module *mod, tdp_gfn_t gfn, tdp_pfn_t pfn,
			  tdp_pfn_t src_pfn, struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = TDP_LEVEL_4K, .err = err,
		.op = SIM_SC_PAGE_ADD, .pfn = pfn, .pages = 1,
		.min_level = TDP_LEVEL_4K, .max_level = TDP_LEVEL_4K,
		.tree_exclusive = true, .needs = IN_BUILD,
	};
	struct host_page *src = host_mem_page(mod->mem, src_pfn);
	struct pamt_entry *src_pamt = pamt_of(mod, src_pfn);
	struct pamt_entry *p;
	tdx_status_t st;

	/* The source is ordinary host memory, never a page of a TD. */
	if (!src || (src_pamt && pamt_type(src_pamt) != PAMT_NDA &&
		     pamt_type(src_pamt) != PAMT_RSVD))
		return seamcall_refuse(&sc, TDX_OPERAND_INVALID |
						    TDX_OPERAND_ID_R9);
	st = map_enter(&sc);
	if (st)
		return st;
	p = pamt_of(mod, pfn);
	/* Copy the source in with the TD's key; the page is usable at once
	 * (MAPPED), the guest does not accept it. */
	host_page_set_tag(host_mem_page(mod->mem, pfn), host_page_tag(src));
	__atomic_store_n(&p->bepoch, 0, __ATOMIC_RELAXED);
	pamt_set(mod, p, PAMT_REG, TDP_LEVEL_4K, gfn);
	__atomic_add_fetch(&mod->child_count, 1, __ATOMIC_RELAXED);
	/* Tree lock exclusive: the measurement has one writer. */
	mod->mrtd = tdx_mr_page_add(mod->mrtd, gfn);
	return map_commit(&sc, SEPT_MAPPED);
}

tdx_status_t tdx_mr_extend(struct tdx_module *mod, tdp_gfn_t gfn,
			   unsigned int chunk, struct tdx_err_info *err)
{
	struct seamcall sc = {
		.mod = mod, .gfn = gfn, .level = TDP_LEVEL_4K, .err = err,
		.op = SIM_SC_MR_EXTEND,
		.min_level = TDP_LEVEL_4K, .max_level = TDP_LEVEL_4K,
		.tree_exclusive = true, .needs = IN_BUILD,
	};
	tdx_status_t st;

	if (chunk >= TDX_MR_CHUNKS_PER_PAGE)
		return seamcall_refuse(&sc, TDX_OPERAND_INVALID |
						    TDX_OPERAND_ID_RCX);
	st = seamcall_enter(&sc);
	if (st)
		return st;
	if (record_entry_state(&sc) != SEPT_MAPPED)
		return seamcall_exit(&sc, TDX_EPT_ENTRY_STATE_INCORRECT |
						  TDX_OPERAND_ID_RCX);
	mod->mrtd = tdx_mr_extend_record(
		mod->mrtd, gfn, chunk,
		host_page_tag(host_mem_page(mod->mem, sept_entry_pfn(sc.old))));
	return seamcall_exit(&sc, TDX_SUCCESS);
}

tdx_status_t tdx_mr_finalize(struct tdx_module *mod)
{
	tdx_status_t st = TDX_SUCCESS;

	if (!sharex_try_exclusive(&mod->tree_lock)) {
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_SEPT_TREE;
	} else {
		if (tdx_td_op_state(mod) != TDX_TD_INITIALIZED)
			st = TDX_OP_STATE_INCORRECT;
		else
			__atomic_store_n(&mod->op_state, TDX_TD_RUNNABLE,
					 __ATOMIC_RELEASE);
		sharex_release_exclusive(&mod->tree_lock);
	}
	return tdx_host_call_done(mod, SIM_SC_MR_FINALIZE, st, SIM_NO_GFN, 0,
				  NULL);
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
		if (!tdx_block_is_tracked(mod, pfn))
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

	st = tdx_inject(mod, op, false);
	if (st)
		return st;
	if (!sharex_try_exclusive(&mod->epoch_lock))
		return tdx_host_call_done(
			mod, op, TDX_OPERAND_BUSY | TDX_OPERAND_ID_TD_EPOCH,
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
	return tdx_host_call_done(mod, op, st, SIM_NO_GFN, 0, NULL);
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
		pamt_set(mod, pamt_of(mod, pfn + i), PAMT_NDA, 0, 0);
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
	pamt_set(mod, pamt, PAMT_NDA, 0, 0);
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

	table = tdx_table_storage(mod, sept_pfn);
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
		pamt_set(mod, pamt_of(mod, pfn + i), PAMT_REG, child_level, gfn + i);
	__atomic_store_n(&pamt->bepoch, 0, __ATOMIC_RELAXED);
	pamt_set(mod, pamt, PAMT_EPT, 0, gfn);
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

/*
 * The only thing that breaks the promote conditions at child @breaker is
 * the accept state: it is MAPPED where child 0 is PENDING or the reverse,
 * on the right page, and so are all the others.
 */
static bool promote_only_mixed(const uint64_t *child, int child_level,
			       int breaker)
{
	const uint64_t step = tdp_level_pages(child_level);
	tdp_pfn_t pfn = sept_entry_pfn(child[0]);

	if (breaker == 0)
		return false;
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		int state = sept_entry_state(child[i]);

		if ((state != SEPT_MAPPED && state != SEPT_PENDING) ||
		    child[i] != make_entry(state, pfn + i * step, child_level))
			return false;
	}
	return true;
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
		st = TDX_EPT_INVALID_PROMOTE_CONDITIONS | TDX_OPERAND_ID_RCX;
		sc.err->level = child_level;
		sc.err->state = sept_entry_state(child[breaker]);
		children_unlock(table, child);
		if (!promote_only_mixed(child, child_level, breaker))
			return seamcall_exit(&sc, st);
		/* Pages the guest accepted next to pages it did not: the
		 * host cannot know, so this refusal is no protocol error. */
		entry_unlock(sc.entry, sc.old);
		tree_unlock(&sc);
		tdx_count_outcome(mod, sc.op, st);
		return st;
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
		pamt_set(mod, pamt_of(mod, pfn + i), PAMT_REG, level, gfn + i);
	pamt_unlock_range(mod, pfn, pages);
	pamt_set(mod, pamt, PAMT_NDA, 0, 0);
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
