/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Violations: everything the simulator catches is reported here, with its
 * kind, the TDX status involved (if any), the GFN and the vCPU.  The first
 * reports are printed in full and kept for tests to inspect; all of them
 * are counted by kind.  A run passes only with zero violations.
 */
#ifndef SIM_REPORT_H
#define SIM_REPORT_H

#include <pthread.h>
#include <stdint.h>

#include <tdp/types.h>

enum sim_violation_kind {
	/* A SEAMCALL failed in a way a correct VMM never causes. */
	SIM_V_TDX_ERROR,
	/* Guest data: a read saw the wrong (gfn, version) tag. */
	SIM_V_CORRUPTION,
	/* A translation outlived its mapping (TLB entry or page reuse). */
	SIM_V_STALE_TRANSLATION,
	/* A private page the guest accepted is no longer mapped. */
	SIM_V_LOST_MAPPING,
	/* The host freed a page the TD or a tree still uses. */
	SIM_V_PAGE_OWNERSHIP,
	/* The engine broke the private-backend contract (tdp/backend.h). */
	SIM_V_CONTRACT,
	/* An engine call failed where it must not. */
	SIM_V_ENGINE_ERROR,
	/* An ACCEPT outcome a correct host never produces. */
	SIM_V_ACCEPT,
	/* At a quiesce point guest, host, mirror and S-EPT disagree. */
	SIM_V_INCONSISTENT,
	/* An operation did not complete in bounded time. */
	SIM_V_LIVELOCK,
	/* The TD's measurement is not the one its image gives. */
	SIM_V_MEASUREMENT,
	/* Migration: a page written after its last copy was never found
	 * dirty. */
	SIM_V_DIRTY_LOG,
	/* A read inside a conversion window went through the wrong alias
	 * or reached an unaccepted private page. */
	SIM_V_CONVERSION,
	/* The engine flushed a range whose zap had not cleared it yet. */
	SIM_V_FLUSH_ORDER,
	/* A table was unlinked with a walker inside and its entries did
	 * not all become FROZEN. */
	SIM_V_NOT_FROZEN,
	SIM_NR_VIOLATION_KINDS
};

#define SIM_NO_GFN UINT64_MAX
#define SIM_NO_VCPU (-1)
#define SIM_REPORT_KEEP 64

struct sim_violation {
	enum sim_violation_kind kind;
	uint64_t tdx_status; /* full status, 0 if none */
	tdp_gfn_t gfn;       /* SIM_NO_GFN if none */
	int vcpu;            /* SIM_NO_VCPU if none */
	char msg[320];
};

struct sim_report {
	pthread_mutex_t lock;
	uint64_t count[SIM_NR_VIOLATION_KINDS]; /* atomic */
	/* The first SIM_REPORT_KEEP reports; protected by lock. */
	struct sim_violation kept[SIM_REPORT_KEEP];
	unsigned int nr_kept;
	/* Reports printed to stderr in full; the rest are only counted. */
	unsigned int print_limit;
	unsigned int printed; /* protected by lock */
};

void sim_report_init(struct sim_report *r, unsigned int print_limit);
void sim_report_destroy(struct sim_report *r);

/* Record one violation.  Thread-safe; never blocks on anything else. */
void sim_violation(struct sim_report *r, enum sim_violation_kind kind,
		   uint64_t tdx_status, tdp_gfn_t gfn, int vcpu,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

uint64_t sim_report_total(const struct sim_report *r);
uint64_t sim_report_count(const struct sim_report *r,
			  enum sim_violation_kind kind);

/*
 * The first kept report matching every given criterion: @kind, the status
 * class of @tdx_status (0: any), @gfn (SIM_NO_GFN: any), @vcpu
 * (SIM_NO_VCPU: any).  NULL if none.  Call when no thread reports.
 */
const struct sim_violation *sim_report_find(const struct sim_report *r,
					    enum sim_violation_kind kind,
					    uint64_t tdx_status, tdp_gfn_t gfn,
					    int vcpu);

const char *sim_violation_kind_name(enum sim_violation_kind kind);
const char *sim_violation_kind_key(enum sim_violation_kind kind);

#endif /* SIM_REPORT_H */
