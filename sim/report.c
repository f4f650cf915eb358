/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Violation reports (see report.h). */
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tdx_status.h"

static const struct {
	const char *name;
	const char *key;
} kind_names[SIM_NR_VIOLATION_KINDS] = {
	[SIM_V_TDX_ERROR]         = { "TDX error", "tdx_error" },
	[SIM_V_CORRUPTION]        = { "data corruption", "corruption" },
	[SIM_V_STALE_TRANSLATION] = { "stale translation",
				      "stale_translation" },
	[SIM_V_LOST_MAPPING]      = { "lost mapping", "lost_mapping" },
	[SIM_V_PAGE_OWNERSHIP]    = { "page ownership", "page_ownership" },
	[SIM_V_CONTRACT]          = { "backend contract", "backend_contract" },
	[SIM_V_ENGINE_ERROR]      = { "engine error", "engine_error" },
	[SIM_V_ACCEPT]            = { "accept", "accept" },
	[SIM_V_INCONSISTENT]      = { "inconsistent state", "inconsistent" },
	[SIM_V_LIVELOCK]          = { "livelock", "livelock" },
	[SIM_V_MEASUREMENT]       = { "measurement", "measurement" },
	[SIM_V_DIRTY_LOG]         = { "dirty log", "dirty_log" },
	[SIM_V_CONVERSION]        = { "conversion window", "conversion" },
	[SIM_V_FLUSH_ORDER]       = { "flush before clear", "flush_order" },
	[SIM_V_NOT_FROZEN]        = { "unlinked table not frozen",
				      "not_frozen" },
};

void sim_report_init(struct sim_report *r, unsigned int print_limit)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->print_limit = print_limit;
}

void sim_report_destroy(struct sim_report *r)
{
	pthread_mutex_destroy(&r->lock);
}

void sim_violation(struct sim_report *r, enum sim_violation_kind kind,
		   uint64_t tdx_status, tdp_gfn_t gfn, int vcpu,
		   const char *fmt, ...)
{
	struct sim_violation v = {
		.kind       = kind,
		.tdx_status = tdx_status,
		.gfn        = gfn,
		.vcpu       = vcpu,
	};
	char where[64] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v.msg, sizeof(v.msg), fmt, ap);
	va_end(ap);
	__atomic_add_fetch(&r->count[kind], 1, __ATOMIC_RELAXED);

	if (vcpu != SIM_NO_VCPU)
		snprintf(where, sizeof(where), " vCPU %d", vcpu);
	if (gfn != SIM_NO_GFN)
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
			 " gfn %#" PRIx64, gfn);

	pthread_mutex_lock(&r->lock);
	if (r->nr_kept < SIM_REPORT_KEEP)
		r->kept[r->nr_kept++] = v;
	if (r->printed < r->print_limit) {
		r->printed++;
		fprintf(stderr, "\ntdpsim: VIOLATION [%s]%s: %s\n",
			kind_names[kind].name, where, v.msg);
		if (r->printed == r->print_limit)
			fprintf(stderr, "tdpsim: further violations are only "
					"counted\n");
	}
	pthread_mutex_unlock(&r->lock);
}

uint64_t sim_report_count(const struct sim_report *r,
			  enum sim_violation_kind kind)
{
	return __atomic_load_n(&r->count[kind], __ATOMIC_RELAXED);
}

uint64_t sim_report_total(const struct sim_report *r)
{
	uint64_t total = 0;

	for (int k = 0; k < SIM_NR_VIOLATION_KINDS; k++)
		total += sim_report_count(r, k);
	return total;
}

const struct sim_violation *sim_report_find(const struct sim_report *r,
					    enum sim_violation_kind kind,
					    uint64_t tdx_status, tdp_gfn_t gfn,
					    int vcpu)
{
	for (unsigned int i = 0; i < r->nr_kept; i++) {
		const struct sim_violation *v = &r->kept[i];

		if (v->kind != kind)
			continue;
		if (tdx_status && tdx_status_class(v->tdx_status) !=
					  tdx_status_class(tdx_status))
			continue;
		if (gfn != SIM_NO_GFN && v->gfn != gfn)
			continue;
		if (vcpu != SIM_NO_VCPU && v->vcpu != vcpu)
			continue;
		return v;
	}
	return NULL;
}

const char *sim_violation_kind_name(enum sim_violation_kind kind)
{
	return kind_names[kind].name;
}

const char *sim_violation_kind_key(enum sim_violation_kind kind)
{
	return kind_names[kind].key;
}
