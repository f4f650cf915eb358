/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Secure EPT of the simulated TDX module (tdx_module.h) as the CPU
 * and the checks see it: the names of the entry states (the entries
 * themselves are in tdx_sept_entry.h), the tables a hardware walk reads,
 * and the test hooks that hold an entry's lock.
 */
#ifndef SIM_TDX_SEPT_H
#define SIM_TDX_SEPT_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "tdx_sept_entry.h"

struct tdx_module;

const char *sept_state_name(int state);
/* The number the TDX ABI reports for @state. */
int sept_state_public(int state);

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

#endif /* SIM_TDX_SEPT_H */
