/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Injection, outcome counts, protocol-error reports (see tdx_outcome.h). */
#include "tdx_outcome.h"

#include <inttypes.h>
#include <stdio.h>

#include "report.h"
#include "rng.h"
#include "tdx_module_state.h"
#include "tdx_sept.h"

static bool status_is_protocol_error(tdx_status_t st)
{
	/* Non-recoverable errors: bits 63 and 62 set. */
	return (st >> 62) == 3 &&
	       tdx_status_class(st) != TDX_SIM_INJECTED_FAILURE;
}

void tdx_count_outcome(struct tdx_module *mod, enum sim_seamcall op,
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

tdx_status_t tdx_host_call_done(struct tdx_module *mod, enum sim_seamcall op,
				tdx_status_t st, tdp_gfn_t gfn, int level,
				const struct tdx_err_info *err)
{
	tdx_count_outcome(mod, op, st);
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

tdx_status_t tdx_inject(struct tdx_module *mod, enum sim_seamcall op,
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
