/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reference model of the fuzz harness: what the MMU must hold and
 * return after each API operation, computed from the documented semantics
 * (the headers in include/tdp and the README) with data structures of its own.  It keeps
 * a tree per root (tables, leaves as the exact SPTE value the engine must
 * hold, MMIO entries), the root list with its references, the vCPU's
 * table cache, the running invalidations, the private backend's pending
 * one-shot failures and the allocation-failure countdown, so every result
 * is predicted exactly, -ENOMEM included.
 *
 * The model is single-threaded and used by one fuzz input at a time.
 */
#ifndef TDP_FUZZ_MODEL_H
#define TDP_FUZZ_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

enum m_kind {
	M_NONE,	 /* the non-present value */
	M_TABLE, /* a present non-leaf */
	M_LEAF,	 /* a present leaf: val is its exact value */
	M_MMIO,	 /* an MMIO SPTE: val is its exact value */
};

/* A table: 512 entries at one level. */
struct m_table {
	/* Set by every model write to this table (or a walk that may have
	 * written it), cleared by the harness's comparison: the tables to
	 * compare after an operation that is not followed by a full one. */
	bool changed;
	unsigned char kind[TDP_SPTES_PER_TABLE];
	tdp_spte_t val[TDP_SPTES_PER_TABLE];
	struct m_table *child[TDP_SPTES_PER_TABLE];
};

struct m_root {
	int type; /* enum tdp_root_type */
	bool valid;
	bool mmu_ref;	/* the MMU's own reference */
	bool scheduled; /* invalidated, not zapped yet */
	int vcpu_refs;
	int get_refs; /* references the harness took with tdp_root_get */
	struct m_table *table;
	struct m_root *next; /* same order as the engine's root list */
};

struct m_vcpu {
	bool exists;
	struct m_root *root[TDP_NR_ROOT_TYPES];
	int cache_tables; /* ready tables */
	int cache_ext;	  /* ready backend pages */
};

#define M_MAX_INVALS 64

struct m_counters {
	uint64_t faults_fixed, faults_spurious, faults_retried;
	uint64_t zapped_leaves, zapped_tables;
	uint64_t backend_busy, backend_errors;
	uint64_t roots_allocated;
	uint64_t demotes, fault_demotes, promotes;
};

struct model {
	/* Configuration. */
	int root_level;
	tdp_gfn_t direct_bits;
	tdp_gfn_t gfn_limit;
	bool has_mirror;
	size_t ext_size;
	/* The backend offers demote_leaf (to faults too) and promote_leaf:
	 * partial private zaps and 4 KiB faults below private huge leaves
	 * demote, recovery of the private alias promotes. */
	bool resizes;
	const struct tdp_spte_format *fmt;

	struct m_root *roots;
	struct m_root *valid[TDP_NR_ROOT_TYPES];
	struct m_vcpu vcpu;

	struct {
		tdp_gfn_t start, end;
	} inval[M_MAX_INVALS];
	int nr_invals;
	uint64_t seq;
	uint32_t mmio_gen;

	/* One-shot backend failures: errno of the next link/set, or 0. */
	int fail_link, fail_set;
	bool fail_remove;
	bool dead;

	/* Allocations left before the injected failure; -1: none. */
	long alloc_countdown;

	struct m_counters ctr;
};

void model_init(struct model *m, int root_level, tdp_gfn_t direct_bits,
		bool has_mirror, size_t ext_size);
void model_fini(struct model *m);

/* The GFN bits the tree of root type @type adds to unaliased GFNs. */
tdp_gfn_t model_bits(const struct model *m, int type);

/* A fault as struct tdp_fault describes it. */
struct m_fault {
	tdp_gfn_t fault_gfn;
	tdp_pfn_t pfn;
	unsigned int prot;
	int max_level;
	uint64_t seq;
	bool mmio;
};

/* model_map_begin() found nothing that ends the fault before its walk. */
#define M_WALK 1000

/*
 * tdp_map() in two steps.  model_map_begin() applies what happens before
 * mmu_lock is taken (cache top-up, root load) and returns the result when
 * the fault ends there (bad input, -ENOMEM, a stale fault's RETRY), else
 * M_WALK.  With *may_retry set, the fault overlaps only the span around
 * the running invalidations, where the engine may also retry: if it did,
 * call model_map_retried(), else model_map_walk() for the result of the
 * walk, which it applies.
 */
int model_map_begin(struct model *m, const struct m_fault *f, bool *may_retry);
int model_map_walk(struct model *m, const struct m_fault *f);
void model_map_retried(struct model *m);

int model_vcpu_create(struct model *m);
void model_vcpu_destroy(struct model *m);
int model_vcpu_topup(struct model *m);
int model_vcpu_load_root(struct model *m, enum tdp_alias alias);
int model_root_get(struct model *m, int type, struct m_root **out);
void model_root_put(struct model *m, struct m_root *r);

int model_zap_range(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		    unsigned int alias);
int model_zap_all(struct model *m);
int model_invalidate_begin(struct model *m, tdp_gfn_t start, tdp_gfn_t end);
int model_invalidate_end(struct model *m, tdp_gfn_t start, tdp_gfn_t end);
int model_invalidate_roots(struct model *m, unsigned int alias);
int model_zap_invalidated_roots(struct model *m);
int model_set_mmio_gen(struct model *m, uint32_t gen);

/* tdp_lookup(): the SPTE and level it must report. */
int model_lookup(struct model *m, tdp_gfn_t gfn, unsigned int alias,
		 tdp_spte_t *spte, int *level);

int64_t model_wrprot(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		     unsigned int alias);
int64_t model_clear_dirty(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
			  unsigned int alias);
int64_t model_clear_dirty_masked(struct model *m, tdp_gfn_t base, uint64_t mask,
				 bool wrprot, unsigned int alias);
/* @bitmap receives the expected bits (zeroed by the caller). */
int64_t model_harvest(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		      uint64_t *bitmap, bool bitmap_null, unsigned int alias);
int64_t model_age(struct model *m, tdp_gfn_t start, tdp_gfn_t end, bool clear,
		  unsigned int alias);
int model_fast_fix(struct model *m, tdp_gfn_t fault_gfn, unsigned int prot);
int model_split(struct model *m, tdp_gfn_t start, tdp_gfn_t end, int target,
		unsigned int alias);
int64_t model_recover(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		      int max_level, unsigned int alias);

/* The simulated CPU of the harness: accessed/dirty on the valid direct
 * root; returns 0 (done), 1 (no present leaf), 2 (write-protected). */
int model_hw_access(struct model *m, tdp_gfn_t gfn, bool write);

/* Counts of the live trees, as struct tdp_stats reports them. */
void model_count(const struct model *m,
		 uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1],
		 uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1]);

/* Number of live roots on the list. */
int model_nr_roots(const struct model *m);

#endif /* TDP_FUZZ_MODEL_H */
