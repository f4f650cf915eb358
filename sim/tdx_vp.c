/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vCPU entry and exit, and the guest's ACCEPT (see tdx_vp.h). */
#include "tdx_vp.h"

#include "tdx_module_state.h"
#include "tdx_outcome.h"

/* ---- vCPUs --------------------------------------------------------------- */

tdx_status_t tdx_vp_enter(struct tdx_module *mod, unsigned int vp,
			  bool *flush_private_tlb)
{
	const enum sim_seamcall op = SIM_SC_VP_ENTER;
	struct tdx_vp *v = &mod->vp[vp];
	uint64_t epoch;
	tdx_status_t st;

	*flush_private_tlb = false;
	if (tdx_td_op_state(mod) != TDX_TD_RUNNABLE) {
		tdx_count_outcome(mod, op, TDX_OP_STATE_INCORRECT);
		return TDX_OP_STATE_INCORRECT;
	}
	st = tdx_inject(mod, op, false);
	if (st)
		return st;
	if (!sharex_try_shared(&mod->epoch_lock)) {
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_TD_EPOCH;
		tdx_count_outcome(mod, op, st);
		return st;
	}
	epoch = __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);
	*flush_private_tlb =
		__atomic_load_n(&v->entered_epoch, __ATOMIC_RELAXED) != epoch;
	__atomic_store_n(&v->entered_epoch, epoch, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mod->epoch_refs[epoch & 1], 1, __ATOMIC_ACQ_REL);
	sharex_release_shared(&mod->epoch_lock);
	tdx_count_outcome(mod, op, TDX_SUCCESS);
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
	if (tdx_td_op_state(mod) != TDX_TD_RUNNABLE) {
		tdx_count_outcome(mod, op, TDX_OP_STATE_INCORRECT);
		return TDX_OP_STATE_INCORRECT;
	}
	if (!tdx_gpa_operand_ok(mod, gfn, level, TDP_LEVEL_4K, TDP_LEVEL_2M)) {
		tdx_count_outcome(mod, op, TDX_OPERAND_INVALID);
		return TDX_OPERAND_INVALID | TDX_OPERAND_ID_RCX;
	}
	st = tdx_inject(mod, op, false);
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
		tdx_count_outcome(mod, op, st);
		return st;
	}

	e = &table[entry_index(gfn, level)];
	if (!entry_trylock(e, &old)) {
		st = TDX_OPERAND_BUSY | TDX_OPERAND_ID_RCX;
		tdx_count_outcome(mod, op, st);
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
	tdx_count_outcome(mod, op, st);
	return st;
}

tdx_status_t tdx_page_accept_rcx(struct tdx_module *mod, unsigned int vp,
				 uint64_t rcx, struct tdx_err_info *err)
{
	uint64_t size = rcx & TDX_ACCEPT_SIZE_MASK;

	if ((rcx & TDX_ACCEPT_RESERVED_MASK) || size > TDX_ACCEPT_SIZE_1G) {
		tdx_count_outcome(mod, SIM_SC_PAGE_ACCEPT, TDX_OPERAND_INVALID);
		return TDX_OPERAND_INVALID | TDX_OPERAND_ID_RCX;
	}
	/* libtdp's level numbers are one above the ABI's size codes; a
	 * 1 GiB request reaches the level check and is refused there. */
	return tdx_page_accept(mod, vp, rcx >> 12, (int)size + 1, err);
}

/* ---- TDG.MR.REPORT ------------------------------------------------------- */

tdx_status_t tdx_mr_report(struct tdx_module *mod, unsigned int vp,
			   uint64_t *mrtd)
{
	(void)vp;
	if (tdx_td_op_state(mod) != TDX_TD_RUNNABLE)
		return TDX_OP_STATE_INCORRECT;
	/* Final since MR.FINALIZE, whose release store the op state's
	 * acquire load paired with. */
	*mrtd = mod->mrtd;
	return TDX_SUCCESS;
}
