/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated TDX module's own state, shared by the files that
 * implement it (tdx_module.c, tdx_sept.c, tdx_outcome.c, tdx_seamcall.c,
 * tdx_vp.c) and by nothing else: the module, its PAMT and TDVP records,
 * and the primitives every call uses on them (S-EPT entries and their
 * lock bits, the shared/exclusive try-locks, PAMT entries and their
 * locks, table storage by host page, the walk rule, block tracking).
 */
#ifndef SIM_TDX_MODULE_STATE_H
#define SIM_TDX_MODULE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "host_mem.h"
#include "tdx_pamt.h"
#include "tdx_sept_entry.h"
#include "tdx_status.h"

struct pamt_entry {
	uint32_t type;       /* enum pamt_type; atomic */
	uint32_t owner;      /* TD owner tag, 0 for NDA/RSVD; atomic */
	uint32_t size_level; /* atomic */
	uint32_t lock;       /* try-lock: 0 free, 1 held */
	uint64_t bepoch;     /* atomic */
	tdp_gfn_t gfn;       /* atomic */
};

struct tdx_vp {
	uint64_t entered_epoch; /* atomic; written by the vCPU's own thread */
};

struct tdx_module {
	/* Immutable after creation. */
	struct host_mem *mem;
	int root_level;
	tdp_gfn_t shared_bit;
	unsigned int nr_vcpus;
	struct sim_report *report;
	struct sim_counters *stats;
	tdp_pfn_t tdr_pfn;
	tdp_pfn_t tdcs_pfn[4];
	tdp_pfn_t root_pfn; /* the S-EPT root: a TDCS page */
	tdp_pfn_t *tdvpr_pfn;
	struct tdx_vp *vp;
	struct pamt_entry *pamt; /* one per host page; shared by the TDs */
	uint32_t owner;          /* this TD's tag in the PAMT */
	bool owns_pamt;          /* the first TD: frees pamt and tables */

	/*
	 * Table storage by host page: allocated the first time a page
	 * becomes an S-EPT page, published with a release CAS, kept for the
	 * module's lifetime so a CPU walk never reads freed memory.
	 */
	uint64_t **tables;

	uint32_t busy_ppm; /* atomic */
	uint32_t fail_ppm; /* atomic */

	int32_t tree_lock;  /* sharex: > 0 shared holders, -1 exclusive */
	int32_t epoch_lock; /* sharex, as above */
	uint64_t td_epoch;  /* atomic; written under epoch_lock exclusive */
	int64_t epoch_refs[2]; /* vCPUs in guest mode, by epoch parity */

	/*
	 * TD build: op_state (enum tdx_td_op_state, atomic) is INITIALIZED
	 * until MR.FINALIZE makes it RUNNABLE.  mrtd, the measurement, is
	 * written by PAGE.ADD and MR.EXTEND with the tree lock held
	 * exclusive, and read by MR.FINALIZE (also exclusive) and, once the
	 * TD is RUNNABLE and it never changes again, by the guest's report.
	 */
	uint32_t op_state;
	uint64_t mrtd;

	int64_t child_count; /* atomic: private pages + S-EPT pages */
	int64_t sept_pages;  /* atomic: S-EPT pages, root excluded */
	bool torn_down;
	/* The control page teardown reclaimed last (the TDR); teardown
	 * only, single-threaded. */
	tdp_pfn_t last_reclaimed;
	/* Test hook: a page teardown reclaims on top of its own. */
	tdp_pfn_t break_reclaim_extra;
};

/* ---- S-EPT entries ------------------------------------------------------- */

static inline uint64_t make_entry(int state, tdp_pfn_t pfn, int level)
{
	uint64_t e = SEPT_SVE | ((uint64_t)state << SEPT_STATE_SHIFT);
	bool leaf = state == SEPT_MAPPED || state == SEPT_BLOCKED ||
		    state == SEPT_PENDING || state == SEPT_PENDING_BLOCKED;

	if (state == SEPT_FREE)
		return e;
	e |= (pfn << 12) & SEPT_PFN_MASK;
	if (state == SEPT_NL_MAPPED || state == SEPT_MAPPED)
		e |= SEPT_RWX;
	if (leaf && level > TDP_LEVEL_4K)
		e |= SEPT_PS;
	return e;
}

static inline uint64_t entry_load(const uint64_t *e)
{
	return __atomic_load_n(e, __ATOMIC_ACQUIRE);
}

/* Take the entry's host lock; false if another operation holds it. */
static inline bool entry_trylock(uint64_t *e, uint64_t *val)
{
	uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);

	do {
		if (v & SEPT_LOCKED)
			return false;
	} while (!__atomic_compare_exchange_n(e, &v, v | SEPT_LOCKED, false,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	*val = v;
	return true;
}

/* Publish @val and drop the entry lock in one release store. */
static inline void entry_unlock(uint64_t *e, uint64_t val)
{
	__atomic_store_n(e, val & ~SEPT_LOCKED, __ATOMIC_RELEASE);
}

static inline unsigned int entry_index(tdp_gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) & 511;
}

/* ---- try-locks and PAMT entries ----------------------------------------- */

static inline bool sharex_try_shared(int32_t *l)
{
	int32_t v = __atomic_load_n(l, __ATOMIC_RELAXED);

	while (v >= 0) {
		if (__atomic_compare_exchange_n(l, &v, v + 1, false,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

static inline bool sharex_try_exclusive(int32_t *l)
{
	int32_t zero = 0;

	return __atomic_compare_exchange_n(l, &zero, -1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void sharex_release_shared(int32_t *l)
{
	__atomic_sub_fetch(l, 1, __ATOMIC_RELEASE);
}

static inline void sharex_release_exclusive(int32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static inline struct pamt_entry *pamt_of(struct tdx_module *mod, tdp_pfn_t pfn)
{
	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return NULL;
	return &mod->pamt[pfn - mod->mem->base];
}

static inline bool pamt_trylock(struct pamt_entry *p)
{
	uint32_t zero = 0;

	return __atomic_compare_exchange_n(&p->lock, &zero, 1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void pamt_unlock(struct pamt_entry *p)
{
	__atomic_store_n(&p->lock, 0, __ATOMIC_RELEASE);
}

/* Lock the PAMT entries of [pfn, pfn + n) in order; all or none. */
static inline bool pamt_trylock_range(struct tdx_module *mod, tdp_pfn_t pfn,
				      uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		if (!pamt_trylock(pamt_of(mod, pfn + i))) {
			while (i--)
				pamt_unlock(pamt_of(mod, pfn + i));
			return false;
		}
	}
	return true;
}

static inline void pamt_unlock_range(struct tdx_module *mod, tdp_pfn_t pfn,
				     uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		pamt_unlock(pamt_of(mod, pfn + i));
}

static inline enum pamt_type pamt_type(const struct pamt_entry *p)
{
	return (enum pamt_type)__atomic_load_n(&p->type, __ATOMIC_ACQUIRE);
}

/* Set the entry as TD @mod's (no owner for NDA). */
static inline void pamt_set(const struct tdx_module *mod, struct pamt_entry *p,
			    enum pamt_type type, int size, tdp_gfn_t gfn)
{
	__atomic_store_n(&p->owner, type == PAMT_NDA ? 0 : mod->owner,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&p->gfn, gfn, __ATOMIC_RELAXED);
	__atomic_store_n(&p->size_level, (uint32_t)size, __ATOMIC_RELAXED);
	__atomic_store_n(&p->type, (uint32_t)type, __ATOMIC_RELEASE);
}

/* ---- tables and walks (tdx_sept.c) --------------------------------------- */

static inline uint64_t *table_of(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return NULL;
	return __atomic_load_n(&mod->tables[pfn - mod->mem->base],
			       __ATOMIC_ACQUIRE);
}

/* Storage for a page becoming an S-EPT table; NULL only if out of memory. */
uint64_t *tdx_table_storage(struct tdx_module *mod, tdp_pfn_t pfn);

/*
 * The walk rule: from the root toward @level, descend only through
 * NL_MAPPED entries.  Returns the entry at @level, or NULL with the level
 * and state of the entry where the walk stopped (anything else above the
 * target: FREE, blocked, or a leaf).
 */
uint64_t *tdx_sept_walk(struct tdx_module *mod, tdp_gfn_t gfn, int level,
			struct tdx_err_info *err);

/* A GPA operand: private, aligned to @level, inside the GPA width. */
bool tdx_gpa_operand_ok(const struct tdx_module *mod, tdp_gfn_t gfn, int level,
			int min_level, int max_level);

/*
 * The block of the page at @pfn is tracked: it was stamped before the
 * previous epoch, or in the previous epoch and every vCPU that entered
 * in it has left guest mode.
 */
bool tdx_block_is_tracked(struct tdx_module *mod, tdp_pfn_t pfn);

#endif /* SIM_TDX_MODULE_STATE_H */
