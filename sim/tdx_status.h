/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TDX completion statuses as the simulated module returns them, the
 * operand ids in their low half, and their names, in one place: every
 * status the simulator knows is listed once in TDX_STATUS_LIST, from
 * which tdx_status_name() is generated.
 */
#ifndef SIM_TDX_STATUS_H
#define SIM_TDX_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
#define TDX_OP_STATE_INCORRECT        TDX_STATUS(0xC0000608)
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
#define TDX_OPERAND_ID_R9        0x09u
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

/* Every status above, for the names. */
#define TDX_STATUS_LIST(X)                                                     \
	X(TDX_SUCCESS)                                                         \
	X(TDX_OPERAND_INVALID)                                                 \
	X(TDX_OPERAND_ADDR_RANGE_ERROR)                                        \
	X(TDX_OPERAND_BUSY)                                                    \
	X(TDX_PREVIOUS_TLB_EPOCH_BUSY)                                         \
	X(TDX_PAGE_METADATA_INCORRECT)                                         \
	X(TDX_TD_ASSOCIATED_PAGES_EXIST)                                       \
	X(TDX_OP_STATE_INCORRECT)                                              \
	X(TDX_EPT_WALK_FAILED)                                                 \
	X(TDX_GPA_RANGE_NOT_BLOCKED)                                           \
	X(TDX_GPA_RANGE_ALREADY_BLOCKED)                                       \
	X(TDX_TLB_TRACKING_NOT_DONE)                                           \
	X(TDX_EPT_INVALID_PROMOTE_CONDITIONS)                                  \
	X(TDX_PAGE_ALREADY_ACCEPTED)                                           \
	X(TDX_PAGE_SIZE_MISMATCH)                                              \
	X(TDX_EPT_ENTRY_STATE_INCORRECT)                                       \
	X(TDX_EPT_PAGE_NOT_FREE)                                               \
	X(TDX_SIM_INJECTED_FAILURE)

/*
 * The name of @st's status class: the macro's name, "TD exit (EPT
 * violation)" for TDX_SIM_TD_EXIT_EPT_VIOLATION (not a status a call
 * returns, an exit), "TDX_(unknown)" for anything else.
 */
static inline const char *tdx_status_name(tdx_status_t st)
{
	static const struct {
		tdx_status_t status;
		const char *name;
	} names[] = {
#define TDX_STATUS_NAME(status) { status, #status },
		TDX_STATUS_LIST(TDX_STATUS_NAME)
#undef TDX_STATUS_NAME
	};

	if (tdx_status_class(st) == TDX_SIM_TD_EXIT_EPT_VIOLATION)
		return "TD exit (EPT violation)";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].status == tdx_status_class(st))
			return names[i].name;
	return "TDX_(unknown)";
}

#endif /* SIM_TDX_STATUS_H */
