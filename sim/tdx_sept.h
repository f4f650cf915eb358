/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Secure EPT of the simulated TDX module (tdx_module.h) as the CPU
 * and the checks see it: entry states and their names, the entry layout,
 * the error details a walk reports, the tables a hardware walk reads, and
 * the test hooks that hold an entry's lock.
 */
#ifndef SIM_TDX_SEPT_H
#define SIM_TDX_SEPT_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

struct tdx_module;

/* X(state, number the TDX ABI reports for it in RDX[15:8]) */
#define SEPT_STATES(X)                                                         \
	X(FREE, 0)                                                             \
	X(NL_MAPPED, 0x84)                                                     \
	X(NL_BLOCKED, 0x81)                                                    \
	X(MAPPED, 4)                                                           \
	X(BLOCKED, 1)                                                          \
	X(PENDING, 2)                                                          \
	X(PENDING_BLOCKED, 3)

enum sept_state {
#define SEPT_STATE_ENUM(state, public_number) SEPT_##state,
	SEPT_STATES(SEPT_STATE_ENUM)
#undef SEPT_STATE_ENUM
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
