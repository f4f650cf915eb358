/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * S-EPT entry states and walks of the simulated TDX module (see
 * tdx_sept.h): state names, table storage, the walk rule, block
 * tracking, and the walks the CPU, the checks and the test hooks make.
 */
#include "tdx_sept.h"

#include <stdlib.h>

#include "tdx_module_state.h"

static const struct {
	const char *name;
	int public_number;
} sept_states[SEPT_NR_STATES] = {
#define SEPT_STATE_INFO(state, public_number)                                  \
	[SEPT_##state] = { #state, public_number },
	SEPT_STATES(SEPT_STATE_INFO)
#undef SEPT_STATE_INFO
};

const char *sept_state_name(int state)
{
	return state >= 0 && state < SEPT_NR_STATES ? sept_states[state].name
						    : "?";
}

int sept_state_public(int state)
{
	return state >= 0 && state < SEPT_NR_STATES
		       ? sept_states[state].public_number
		       : -1;
}

/* ---- tables and walks ---------------------------------------------------- */

uint64_t *tdx_table_storage(struct tdx_module *mod, tdp_pfn_t pfn)
{
	uint64_t **slot = &mod->tables[pfn - mod->mem->base];
	uint64_t *t = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	uint64_t *expected = NULL;

	if (t)
		return t;
	t = calloc(TDP_SPTES_PER_TABLE, sizeof(*t));
	if (!t)
		return NULL;
	if (!__atomic_compare_exchange_n(slot, &expected, t, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		free(t);
		return expected;
	}
	return t;
}

uint64_t *tdx_sept_walk(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			struct tdx_err_info *err)
{
	uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level;; l--) {
		uint64_t *e = &table[entry_index(gfn, l)];
		uint64_t v;

		if (l == level)
			return e;
		v = entry_load(e);
		if (sept_entry_state(v) != SEPT_NL_MAPPED) {
			err->level = l;
			err->state = sept_entry_state(v);
			return NULL;
		}
		table = table_of(mod, sept_entry_pfn(v));
	}
}

bool tdx_gpa_operand_ok(const struct tdx_module *mod, tdp_gfn_t gfn, int level,
			int min_level, int max_level)
{
	if (level < min_level || level > max_level)
		return false;
	if (gfn & mod->shared_bit)
		return false;
	if (gfn >= 1ULL << (mod->root_level * TDP_LEVEL_BITS))
		return false;
	return (gfn & (tdp_level_pages(level) - 1)) == 0;
}

bool tdx_block_is_tracked(struct tdx_module *mod, tdp_pfn_t pfn)
{
	uint64_t bepoch =
		__atomic_load_n(&pamt_of(mod, pfn)->bepoch, __ATOMIC_RELAXED);
	uint64_t epoch = __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);

	if (bepoch + 1 < epoch)
		return true;
	return bepoch + 1 == epoch &&
	       __atomic_load_n(&mod->epoch_refs[bepoch & 1],
			       __ATOMIC_ACQUIRE) == 0;
}

/* ---- what the CPU and the checks read ------------------------------------ */

int tdx_root_level(const struct tdx_module *mod)
{
	return mod->root_level;
}

const uint64_t *tdx_sept_root_table(const struct tdx_module *mod)
{
	return table_of(mod, mod->root_pfn);
}

const uint64_t *tdx_sept_table(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	return table_of(mod, pfn);
}

void tdx_sept_lookup(const struct tdx_module *mod, tdp_gfn_t gfn,
		     uint64_t *entry, int *level)
{
	const uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level;; l--) {
		uint64_t v = entry_load(&table[entry_index(gfn, l)]);

		if (l == TDP_LEVEL_4K ||
		    sept_entry_state(v) != SEPT_NL_MAPPED) {
			*entry = v & ~SEPT_LOCKED;
			*level = l;
			return;
		}
		table = table_of(mod, sept_entry_pfn(v));
	}
}

/* ---- test hooks ---------------------------------------------------------- */

/* The entry at (@gfn, @level) through NL_MAPPED and NL_BLOCKED entries. */
static uint64_t *debug_walk(struct tdx_module *mod, tdp_gfn_t gfn, int level)
{
	uint64_t *table = table_of(mod, mod->root_pfn);

	for (int l = mod->root_level; l > level; l--) {
		uint64_t v = entry_load(&table[entry_index(gfn, l)]);
		int state = sept_entry_state(v);

		if (state != SEPT_NL_MAPPED && state != SEPT_NL_BLOCKED)
			return NULL;
		table = table_of(mod, sept_entry_pfn(v));
	}
	return &table[entry_index(gfn, level)];
}

bool tdx_debug_hold_entry(struct tdx_module *mod, tdp_gfn_t gfn, int level)
{
	uint64_t *e = debug_walk(mod, gfn, level);
	uint64_t old;

	return e && entry_trylock(e, &old);
}

void tdx_debug_release_entry(struct tdx_module *mod, tdp_gfn_t gfn,
			     int level)
{
	uint64_t *e = debug_walk(mod, gfn, level);

	if (e)
		entry_unlock(e, entry_load(e));
}
