/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Engine-internal structures shared by the libtdp sources.  Every shared
 * field names what protects it.
 */
#ifndef TDP_INTERNAL_H
#define TDP_INTERNAL_H

#include "port/port.h"

#include <tdp/tdp.h>

struct tdp_iter;

/*
 * Metadata of one page table, kept outside the hardware page and found
 * from it through the page's private pointer.
 */
struct tdp_table {
	tdp_spte_t *spt; /* the 512 SPTEs; immutable */
	struct tdp_mmu *mmu;
	/* Backend page of a mirror table; NULL when leaked or none. */
	struct tdp_ext_table *ext_table;
	/* First GFN the table covers, as the tree indexes it; set before
	 * the table is linked, immutable while linked. */
	tdp_gfn_t gfn;
	int level;     /* level of the table's entries; immutable while linked */
	int root_type; /* enum tdp_root_type; immutable while linked */
	struct tdp_rcu_head rcu;
	/* vCPU cache link, owned by the vCPU; or, for a table a range zap
	 * unlinked, the link of tdp_op.unlinked, owned by that operation. */
	struct tdp_table *next;
};

/* One running invalidation, between begin and end. */
struct tdp_inval {
	tdp_gfn_t start, end;
	struct tdp_inval *next;
};

struct tdp_root {
	struct tdp_table *table; /* immutable */
	enum tdp_root_type type; /* immutable */
	/* Atomic; the MMU's own reference is dropped after the zap that
	 * follows invalidation. */
	int refcount;
	/* Set under mmu_lock held for write; read with atomics anywhere. */
	bool invalid;
	/* Set with invalid; claimed (exchanged to false) by the one caller
	 * that zaps the root. */
	int scheduled_zap;
	struct tdp_root *next; /* root list; protected by mmu->roots_mutex */
	struct tdp_rcu_head rcu;
};

/*
 * Counters.  The MMU's set is updated with atomic adds from any thread;
 * a vCPU's set is written only by the thread using the vCPU (relaxed
 * load + store) and read by tdp_mmu_get_stats().  Live counts are signed
 * deltas so a vCPU may remove what another added.
 */
#define TDP_STATS_SKIP_(name, dims)
/* The operation-counted entries of struct tdp_stats (see TDP_STATS_FIELDS). */
struct tdp_counters {
	TDP_STATS_FIELDS(TDP_STATS_FIELD_, TDP_STATS_SKIP_)
};

/* Tables a vCPU keeps ready: enough for one walk from root to leaf. */
#define TDP_VCPU_CACHE_MIN (TDP_MAX_LEVEL + 1)

/*
 * The last table of 4 KiB entries a fault of a vCPU reached, so the next
 * fault in the same 2 MiB does not walk from the root.  Usable while
 * mmu->tables_gone still equals @gone: then no table went away since, so
 * @table is still linked below @root (a table is only unlinked with its
 * removal accounted, tdp_spte_changed()), and a reader that checked that
 * inside an RCU read-side section may use it until the section ends (a
 * table is freed a grace period after its removal).  Owned by the vCPU.
 */
struct tdp_leaf_cache {
	struct tdp_table *table; /* NULL: empty */
	struct tdp_root *root;
	uint64_t gone;
};

struct tdp_vcpu {
	struct tdp_mmu *mmu;
	/* Roots this vCPU loaded, each with a reference; owned by the vCPU. */
	struct tdp_root *root[TDP_NR_ROOT_TYPES];
	/* Ready tables (direct and mirror alike); owned by the vCPU. */
	struct tdp_table *cache;
	int cache_count;
	/* Ready backend pages (MMUs with a backend page size); owned. */
	void *ext_cache[TDP_VCPU_CACHE_MIN];
	int ext_count;
	struct tdp_leaf_cache leaf_cache[TDP_NR_ROOT_TYPES];
	struct tdp_counters ctr; /* see struct tdp_counters */
	struct tdp_vcpu *next;   /* protected by mmu->vcpus_mutex */
};

struct tdp_mmu {
	/* Immutable after creation. */
	struct tdp_mmu_config cfg;
	struct tdp_spte_format fmt;
	struct tdp_private_backend backend;
	bool has_mirror;
	tdp_gfn_t gfn_limit; /* unaliased GFNs are below this */

	tdp_mmu_lock_t mmu_lock;

	/* Set once (atomic): a no-fail backend callback failed. */
	bool dead;
	/* Set once under mmu_lock held for write (atomic reads). */
	bool torn_down;
	/*
	 * Calls of tdp_mmu_zap_invalidated_roots() inside the MMU (atomic).
	 * Raised under roots_mutex, only while torn_down is clear; dropped
	 * by each call as its last access to the MMU.  Teardown sets
	 * torn_down, takes roots_mutex, and then waits (holding no lock)
	 * for zero: such a call may be zapping a root it claimed, which
	 * teardown skipped.
	 */
	int root_zappers;

	/*
	 * Root list and the valid root of each type: written under
	 * roots_mutex.  valid_root[] is cleared only with mmu_lock held for
	 * write too (invalidation), so a root seen valid under the read lock
	 * stays valid while it is held; but a new root is installed with the
	 * read lock held (tdp_root_get_valid()), so a NULL seen under the
	 * read lock may not stay NULL.  Published with
	 * tdp_rcu_assign_pointer() for lockless readers (tdp_lookup, aging).
	 */
	tdp_mutex_t roots_mutex;
	struct tdp_root *roots;
	struct tdp_root *valid_root[TDP_NR_ROOT_TYPES];

	/*
	 * Invalidation: the running invalidations (a list, protected by
	 * inval_mutex), and, published from it under inval_mutex with
	 * release stores, how many run, the span covering them and the
	 * sequence.  Faults read the published words with acquire loads
	 * under the read lock; tdp_mmu_seq() reads seq locklessly.
	 * tdp_invalidate_end() advances seq before it publishes the smaller
	 * span, so a fault that sees the range gone also sees the new seq.
	 * No mmu_lock is needed: a fault that missed a begin's publication
	 * was inside mmu_lock when the caller's zap took it for write, so
	 * the zap removes what that fault installed.
	 */
	tdp_mutex_t inval_mutex;
	struct tdp_inval *invals;
	uint64_t inval_seq;
	uint64_t inval_in_progress;
	tdp_gfn_t inval_start;
	tdp_gfn_t inval_end;

	/* Generation of new MMIO SPTEs; written under the write lock. */
	uint64_t mmio_gen;

	/* Live vCPU contexts: protected by vcpus_mutex. */
	tdp_mutex_t vcpus_mutex;
	struct tdp_vcpu *vcpus;
	int nr_vcpus;

	struct tdp_counters ctr;  /* atomic adds */
	/*
	 * Tables that went away (unlinked, or merged into a leaf), counted
	 * by tdp_spte_changed() before the table can be freed: a change
	 * tells vCPUs their struct tdp_leaf_cache may be stale.  Atomic.
	 */
	uint64_t tables_gone;
	uint64_t roots_allocated; /* atomic */
	uint64_t roots_freed;     /* atomic */
	uint64_t pages_in_use;    /* atomic */
	/* Write-lock acquisitions; added to with mmu_lock held for write,
	 * read without it (atomic). */
	uint64_t write_locks;
};

/*
 * Where the counters of one operation go: a vCPU's own set (fault path),
 * or a set local to the operation that is folded into the MMU's shared
 * set when it ends (zaps and walks: no shared cache line per SPTE).
 */
struct tdp_ctr_ref {
	struct tdp_counters *set;
	bool owner_only;
};

static inline void tdp_count(const struct tdp_ctr_ref *ref, uint64_t *field,
			     int64_t delta)
{
	(void)ref;
	if (ref->owner_only)
		tdp_atomic64_set(field, tdp_atomic64_read(field) + (uint64_t)delta);
	else
		tdp_atomic64_add(field, delta);
}

#define TDP_COUNT(ref, member, delta) \
	tdp_count((ref), &(ref)->set->member, (delta))

/* Pending TLB invalidation of a direct-root walk. */
struct tdp_flush {
	tdp_gfn_t start, end; /* empty when start == end */
	bool all;
};

/*
 * One operation in progress: the MMU, the lock mode it holds, the
 * counters it updates and its pending flush.
 */
struct tdp_op {
	struct tdp_mmu *mmu;
	struct tdp_root *root;
	bool shared; /* mmu_lock held for read */
	struct tdp_ctr_ref ctr;
	struct tdp_flush flush;
	/*
	 * Direct tables this operation unlinked whole (a range zap that
	 * covered them) and will tear down once the flush of their span is
	 * issued: tdp_flush_and_reclaim().
	 */
	struct tdp_table *unlinked;
	int err; /* first fatal error (-EIO) met by the walk */
};

/*
 * An operation on @root, with mmu_lock held for read if @shared, counting
 * into @set, a counter set only this thread writes (a vCPU's own, or one
 * local to the operation and folded into the MMU's when it ends).
 */
static inline struct tdp_op tdp_op_on(struct tdp_mmu *mmu,
				      struct tdp_root *root, bool shared,
				      struct tdp_counters *set)
{
	return (struct tdp_op){
		.mmu = mmu,
		.root = root,
		.shared = shared,
		.ctr = { .set = set, .owner_only = true },
	};
}

/*
 * Take mmu_lock for write, counted in stats.write_locks.  Every write lock
 * the engine takes goes through here; faults (tdp_map) take none.
 */
static inline void tdp_mmu_write_lock(struct tdp_mmu *mmu)
{
	tdp_write_lock(&mmu->mmu_lock);
	tdp_atomic64_add(&mmu->write_locks, 1);
}

static inline bool tdp_mmu_dead(const struct tdp_mmu *mmu)
{
	return tdp_flag_read(&mmu->dead);
}

/* Common entry check: -EIO when dead, -ESHUTDOWN after teardown. */
static inline int tdp_mmu_usable(const struct tdp_mmu *mmu)
{
	if (tdp_mmu_dead(mmu))
		return -EIO;
	if (tdp_flag_read(&mmu->torn_down))
		return -ESHUTDOWN;
	return 0;
}

static inline bool tdp_root_is_mirror(const struct tdp_root *root)
{
	return root->type == TDP_ROOT_MIRROR;
}

/* GFN bits the tree of @type adds to unaliased GFNs when indexing. */
static inline tdp_gfn_t tdp_root_gfn_bits(const struct tdp_mmu *mmu, int type)
{
	return type == TDP_ROOT_DIRECT ? mmu->cfg.direct_bits : 0;
}

/* The GFN the direct tree indexes @gfn (an unaliased GFN) at. */
static inline tdp_gfn_t tdp_direct_gfn(const struct tdp_mmu *mmu,
				       tdp_gfn_t gfn)
{
	return gfn + mmu->cfg.direct_bits;
}

static inline struct tdp_table *tdp_table_of_page(const void *page)
{
	return tdp_table_page_private(page);
}

static inline struct tdp_table *tdp_spte_child(const struct tdp_mmu *mmu,
					       tdp_spte_t spte)
{
	return tdp_table_of_page(tdp_pfn_to_virt(tdp_spte_pfn(&mmu->fmt, spte)));
}

static inline unsigned int tdp_spte_index(tdp_gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
	       (TDP_SPTES_PER_TABLE - 1);
}

static inline tdp_gfn_t tdp_gfn_round_down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_pages(level) - 1);
}

/* alias.c */
bool tdp_gfn_range_ok(const struct tdp_mmu *mmu, tdp_gfn_t start,
		      tdp_gfn_t end);
bool tdp_alias_ok(enum tdp_alias alias);
unsigned int tdp_alias_to_root_types(const struct tdp_mmu *mmu,
				     enum tdp_alias alias);
int tdp_alias_root_type(const struct tdp_mmu *mmu, enum tdp_alias alias,
			int *type);
int tdp_fault_gfn_decode(const struct tdp_mmu *mmu, tdp_gfn_t fault_gfn,
			 tdp_gfn_t *gfn, int *type);
int tdp_check_direct_range(const struct tdp_mmu *mmu, tdp_gfn_t start,
			   tdp_gfn_t end, enum tdp_alias alias);

/* spte.c */
bool tdp_spte_has_volatile_bits(const struct tdp_spte_format *fmt,
				tdp_spte_t spte, int level);

tdp_spte_t tdp_spte_make_small(const struct tdp_spte_format *fmt,
			       tdp_spte_t huge, int huge_level, int index);

/* table.c */
struct tdp_table *tdp_table_alloc(struct tdp_mmu *mmu, bool with_ext);
void tdp_table_free_now(struct tdp_table *t);
void tdp_table_free_rcu(struct tdp_table *t);
int tdp_vcpu_cache_refill(struct tdp_vcpu *vcpu);

/* Fill the vCPU's caches for one walk; allocates only when they ran low. */
static inline int tdp_vcpu_cache_topup(struct tdp_vcpu *vcpu)
{
	const struct tdp_mmu *mmu = vcpu->mmu;

	if (TDP_LIKELY(vcpu->cache_count >= TDP_VCPU_CACHE_MIN &&
		       (!mmu->backend.ext_table_size || !mmu->has_mirror ||
			vcpu->ext_count >= TDP_VCPU_CACHE_MIN)))
		return 0;
	return tdp_vcpu_cache_refill(vcpu);
}
struct tdp_table *tdp_vcpu_cache_take(struct tdp_vcpu *vcpu, bool mirror);
void tdp_vcpu_cache_return(struct tdp_vcpu *vcpu, struct tdp_table *t);
void tdp_vcpu_cache_drain(struct tdp_vcpu *vcpu);
void tdp_table_init(struct tdp_table *t, tdp_gfn_t gfn, int level,
		    int root_type);

/* flush.c */
void tdp_flush_add(struct tdp_op *op, tdp_gfn_t gfn, uint64_t pages);
void tdp_flush_issue(struct tdp_op *op);

/* Whether @op has a flush to issue (most faults have none). */
static inline bool tdp_flush_pending(const struct tdp_op *op)
{
	return op->flush.all || op->flush.start != op->flush.end;
}

/* freeze.c: every write that involves the frozen value */
int tdp_set_spte_atomic(struct tdp_op *op, struct tdp_iter *it,
			tdp_spte_t new_spte, struct tdp_table *child);
int tdp_zap_spte_write_locked(struct tdp_op *op, struct tdp_iter *it);
int tdp_demote_spte_write_locked(struct tdp_op *op, struct tdp_iter *it,
				 struct tdp_table *t);
int tdp_demote_spte_atomic(struct tdp_op *op, struct tdp_iter *it,
			   struct tdp_table *t);
int tdp_promote_spte_write_locked(struct tdp_op *op, struct tdp_iter *it,
				  tdp_spte_t huge);
int tdp_zap_spte_atomic(struct tdp_op *op, struct tdp_iter *it);
void tdp_unlink_table_write_locked(struct tdp_op *op, struct tdp_iter *it);
void tdp_flush_and_reclaim(struct tdp_op *op);
/* What the present entries of a removed table held (see freeze.c). */
struct tdp_removed_summary {
	tdp_spte_t any; /* OR; start at 0 */
	tdp_spte_t all; /* AND; start at ~0 */
};
void tdp_handle_removed_table(struct tdp_op *op, struct tdp_table *t,
			      struct tdp_removed_summary *sum);
void tdp_mmu_set_dead(struct tdp_mmu *mmu, const char *why);

/* root.c */
struct tdp_root *tdp_root_next(struct tdp_mmu *mmu, struct tdp_root *prev,
			       unsigned int types, bool only_valid);

struct tdp_root *tdp_root_first(struct tdp_mmu *mmu, unsigned int types,
				bool only_valid);

/*
 * tdp_for_each_root() - run the body for every root whose type is in
 * @types (a mask of 1U << TDP_ROOT_*), only valid ones if @only_valid,
 * each with a reference held while the body runs; not at all if @skip
 * (callers pass the error they already have).  mmu_lock must be held
 * (either mode; asserted); roots_mutex is taken briefly per step.  A body
 * that leaves with break keeps its reference to @root and must drop it
 * with tdp_root_put().
 */
#define tdp_for_each_root(mmu, root, types, only_valid, skip)                 \
	for ((root) = (skip) ? NULL                                           \
			     : tdp_root_first((mmu), (types), (only_valid)); \
	     (root);                                                          \
	     (root) = tdp_root_next((mmu), (root), (types), (only_valid)))

/*
 * The same without mmu_lock, for the one walk that takes it per root (the
 * zap of invalidated roots, which must not hold it while it waits for a
 * root's zap).
 */
#define tdp_for_each_root_unlocked(mmu, root, types, only_valid)       \
	for ((root) = tdp_root_next((mmu), NULL, (types), (only_valid)); \
	     (root);                                                   \
	     (root) = tdp_root_next((mmu), (root), (types), (only_valid)))
int tdp_root_create_initial(struct tdp_mmu *mmu, int type);
int tdp_root_get_valid(struct tdp_mmu *mmu, int type,
			    struct tdp_root **out);
void tdp_roots_invalidate_locked(struct tdp_mmu *mmu, unsigned int types);

/* zap.c */
int tdp_zap_root_locked(struct tdp_op *op);

/* walk.c */
typedef int64_t (*tdp_leaf_visit_fn)(struct tdp_op *op, struct tdp_iter *it,
				     void *arg);
int64_t tdp_walk_direct_leaves(struct tdp_mmu *mmu, tdp_gfn_t start,
			       tdp_gfn_t end, enum tdp_alias alias, bool shared,
			       bool flush_always, tdp_leaf_visit_fn visit,
			       void *arg);
bool tdp_spte_update_leaf(struct tdp_iter *it, tdp_spte_t clear,
			  tdp_spte_t set);

/* stats.c */
void tdp_counters_fold(struct tdp_counters *dst, const struct tdp_counters *src);

#endif /* TDP_INTERNAL_H */
