/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The end of every call of the simulated TDX module: injected busy and
 * failure statuses at the configured rates, each call's outcome counted
 * per operation (stats.h), and a host SEAMCALL's protocol error reported
 * as a violation (report.h).  Shared by the module's files only.
 */
#ifndef SIM_TDX_OUTCOME_H
#define SIM_TDX_OUTCOME_H

#include <stdbool.h>

#include <tdp/types.h>

#include "stats.h"
#include "tdx_sept_entry.h"
#include "tdx_status.h"

struct tdx_module;

/* Count the outcome @st of a call of @op. */
void tdx_count_outcome(struct tdx_module *mod, enum sim_seamcall op,
		       tdx_status_t st);

/*
 * Finish a host SEAMCALL on (@gfn, @level): count it; report a protocol
 * error (any non-recoverable status but an injected one) with the walk's
 * details in @err (may be NULL).  Returns @st.
 */
tdx_status_t tdx_host_call_done(struct tdx_module *mod, enum sim_seamcall op,
				tdx_status_t st, tdp_gfn_t gfn, int level,
				const struct tdx_err_info *err);

/*
 * Injection: OPERAND_BUSY at the configured rate for every call, and if
 * @may_fail a hard failure at the failure rate; either is counted.
 * Returns TDX_SUCCESS when nothing is injected.
 */
tdx_status_t tdx_inject(struct tdx_module *mod, enum sim_seamcall op,
			bool may_fail);

#endif /* SIM_TDX_OUTCOME_H */
