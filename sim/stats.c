/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Names of the simulator counters (see stats.h). */
#include "stats.h"

static const struct {
	const char *section;
	const char *key;
	const char *desc;
} counter_names[SIM_NR_COUNTERS] = {
#define SIM_COUNTER_NAME(id, section, key, desc)                               \
	[SIM_C_##id] = { section, key, desc },
	SIM_COUNTERS(SIM_COUNTER_NAME)
#undef SIM_COUNTER_NAME
};

static const struct {
	const char *name;
	const char *key;
} seamcall_names[SIM_NR_SEAMCALLS] = {
	[SIM_SC_SEPT_ADD]      = { "SEPT.ADD", "sept_add" },
	[SIM_SC_PAGE_AUG_4K]   = { "PAGE.AUG 4K", "page_aug_4k" },
	[SIM_SC_PAGE_AUG_2M]   = { "PAGE.AUG 2M", "page_aug_2m" },
	[SIM_SC_RANGE_BLOCK]   = { "RANGE.BLOCK", "range_block" },
	[SIM_SC_RANGE_UNBLOCK] = { "RANGE.UNBLOCK", "range_unblock" },
	[SIM_SC_TRACK]         = { "TRACK", "track" },
	[SIM_SC_PAGE_REMOVE]   = { "PAGE.REMOVE", "page_remove" },
	[SIM_SC_SEPT_REMOVE]   = { "SEPT.REMOVE", "sept_remove" },
	[SIM_SC_PAGE_DEMOTE]   = { "PAGE.DEMOTE", "page_demote" },
	[SIM_SC_PAGE_PROMOTE]  = { "PAGE.PROMOTE", "page_promote" },
	[SIM_SC_VP_ENTER]      = { "VP.ENTER", "vp_enter" },
	[SIM_SC_PAGE_ACCEPT]   = { "TDG.PAGE.ACCEPT", "page_accept" },
	[SIM_SC_PAGE_RECLAIM]  = { "PHYMEM.PAGE.RECLAIM", "page_reclaim" },
};

static const char *const outcome_keys[SIM_NR_OUTCOMES] = {
	[SIM_OUT_OK]            = "ok",
	[SIM_OUT_BUSY]          = "busy",
	[SIM_OUT_BUSY_INJECTED] = "busy_injected",
	[SIM_OUT_FAIL_INJECTED] = "failed_injected",
	[SIM_OUT_ERROR]         = "error",
};

const char *sim_counter_section(enum sim_counter id)
{
	return counter_names[id].section;
}

const char *sim_counter_key(enum sim_counter id)
{
	return counter_names[id].key;
}

const char *sim_counter_desc(enum sim_counter id)
{
	return counter_names[id].desc;
}

const char *sim_seamcall_name(enum sim_seamcall op)
{
	return seamcall_names[op].name;
}

const char *sim_seamcall_key(enum sim_seamcall op)
{
	return seamcall_names[op].key;
}

const char *sim_outcome_key(enum sim_outcome out)
{
	return outcome_keys[out];
}

void sim_stats_snapshot(const struct sim_stats *st, struct sim_stats *out)
{
	for (int i = 0; i < SIM_NR_COUNTERS; i++)
		out->c[i] = __atomic_load_n(&st->c[i], __ATOMIC_RELAXED);
	for (int op = 0; op < SIM_NR_SEAMCALLS; op++)
		for (int o = 0; o < SIM_NR_OUTCOMES; o++)
			out->seamcall[op][o] = __atomic_load_n(
				&st->seamcall[op][o], __ATOMIC_RELAXED);
}
