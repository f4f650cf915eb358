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
#define SIM_SEAMCALL_NAME(id, name, key) [SIM_SC_##id] = { name, key },
	SIM_SEAMCALLS(SIM_SEAMCALL_NAME)
#undef SIM_SEAMCALL_NAME
};

static const char *const outcome_keys[SIM_NR_OUTCOMES] = {
#define SIM_OUTCOME_KEY(id, key) [SIM_OUT_##id] = key,
	SIM_OUTCOMES(SIM_OUTCOME_KEY)
#undef SIM_OUTCOME_KEY
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

unsigned int sim_stat_shard(void)
{
	static unsigned int next;
	static __thread unsigned int mine; /* shard + 1; 0: not assigned */

	if (!mine)
		mine = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) %
			       SIM_STAT_SHARDS +
		       1;
	return mine - 1;
}

void sim_stats_snapshot(const struct sim_counters *st, struct sim_stats *out)
{
	*out = (struct sim_stats){ 0 };
	for (int s = 0; s < SIM_STAT_SHARDS; s++) {
		const struct sim_stats *sh = &st->shard[s].s;

		for (int i = 0; i < SIM_NR_COUNTERS; i++)
			out->c[i] += __atomic_load_n(&sh->c[i],
						     __ATOMIC_RELAXED);
		for (int op = 0; op < SIM_NR_SEAMCALLS; op++)
			for (int o = 0; o < SIM_NR_OUTCOMES; o++)
				out->seamcall[op][o] += __atomic_load_n(
					&sh->seamcall[op][o], __ATOMIC_RELAXED);
	}
}
