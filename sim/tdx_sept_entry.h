/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One entry of the simulated TDX module's Secure EPT: its states, its
 * layout as the CPU reads it, and the error details a walk that stops at
 * an entry reports.  Types only; the S-EPT itself is tdx_sept.h.
 */
#ifndef SIM_TDX_SEPT_ENTRY_H
#define SIM_TDX_SEPT_ENTRY_H

#include <stdint.h>

#include <tdp/types.h>

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

#endif /* SIM_TDX_SEPT_ENTRY_H */
