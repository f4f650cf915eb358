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

/*
 * X(id, name, key): what each kind of violation means, its name in a
 * report and its key in the summary and the JSON.
 */
#define SIM_VIOLATION_KINDS(X)                                                 \
	/* A SEAMCALL failed in a way a correct VMM never causes. */           \
	X(TDX_ERROR, "TDX error", "tdx_error")                                 \
	/* Guest data: a read saw the wrong (gfn, version) tag. */             \
	X(CORRUPTION, "data corruption", "corruption")                         \
	/* A translation outlived its mapping (TLB entry or page reuse). */    \
	X(STALE_TRANSLATION, "stale translation", "stale_translation")         \
	/* A private page the guest accepted is no longer mapped. */           \
	X(LOST_MAPPING, "lost mapping", "lost_mapping")                        \
	/* The host freed a page the TD or a tree still uses. */               \
	X(PAGE_OWNERSHIP, "page ownership", "page_ownership")                  \
	/* The engine broke the private-backend contract (tdp/backend.h). */   \
	X(CONTRACT, "backend contract", "backend_contract")                    \
	/* An engine call failed where it must not. */                         \
	X(ENGINE_ERROR, "engine error", "engine_error")                        \
	/* An ACCEPT outcome a correct host never produces. */                 \
	X(ACCEPT, "accept", "accept")                                          \
	/* At a quiesce point guest, host, mirror and S-EPT disagree. */       \
	X(INCONSISTENT, "inconsistent state", "inconsistent")                  \
	/* An operation did not complete in bounded time. */                   \
	X(LIVELOCK, "livelock", "livelock")

enum sim_violation_kind {
#define SIM_VIOLATION_ENUM(id, name, key) SIM_V_##id,
	SIM_VIOLATION_KINDS(SIM_VIOLATION_ENUM)
#undef SIM_VIOLATION_ENUM
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
