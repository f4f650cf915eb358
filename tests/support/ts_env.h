/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test fixtures shared by the cmocka tests, the stress programs and the
 * kernel self-test: the GFN and frame scheme of the tests, a seeded
 * generator, a recording host (TLB flushes and dirty marks), an MMU with
 * or without the strict backend (ts_backend.h) and one vCPU, faults that
 * name the alias, lookups, sums of the statistics, and the checks after
 * teardown.  Written on the port layer only, like ts_backend.c.
 *
 * Nothing here asserts: functions return what failed (0 or an errno, or a
 * count of problems, each logged with tdp_log_err) and every harness
 * checks the result its own way (cmocka, the stress tallies, the kernel
 * self-test's ST_* macros).
 */
#ifndef TDP_TESTS_SUPPORT_TS_ENV_H
#define TDP_TESTS_SUPPORT_TS_ENV_H

#include <tdp/tdp.h>

#include "port/port.h"
#include "ts_backend.h"

/* ---- GFNs and frames ----------------------------------------------------- */

#define TS_PAGES_2M 512ULL
#define TS_PAGES_1G (512ULL * 512ULL)
#define TS_PAGES_512G (512ULL * 512ULL * 512ULL)

/* The confidential VM of the tests: 4 levels, shared bit GPA bit 47. */
#define TS_ROOT_LEVEL 4
#define TS_SHARED_BIT (1ULL << 35)
/* Unaliased GFNs of that VM are below the shared bit. */
#define TS_GFN_LIMIT TS_SHARED_BIT
/* The GFN limit of a plain 4-level VM (gfn_bits 0: 36 bits). */
#define TS_PLAIN_GFN_LIMIT (1ULL << 36)

/*
 * Host frames the tests map: a GFN's private and shared aliases map
 * different frames, far apart and 1 GiB aligned, so that any fault may
 * map a huge leaf and any present leaf can be checked at any time.
 * Leaf frames are never dereferenced by the engine.
 */
#define TS_PFN_PRIVATE_BASE (1ULL << 36)
#define TS_PFN_SHARED_BASE (2ULL << 36)

/* The frame a leaf of @alias must map for unaliased @gfn. */
static inline tdp_pfn_t ts_pfn(tdp_gfn_t gfn, enum tdp_alias alias)
{
	return (alias == TDP_ALIAS_PRIVATE ? TS_PFN_PRIVATE_BASE
					   : TS_PFN_SHARED_BASE) +
	       gfn;
}

static inline tdp_pfn_t ts_pfn_shared(tdp_gfn_t gfn)
{
	return ts_pfn(gfn, TDP_ALIAS_SHARED);
}

static inline tdp_pfn_t ts_pfn_private(tdp_gfn_t gfn)
{
	return ts_pfn(gfn, TDP_ALIAS_PRIVATE);
}

static inline enum tdp_alias ts_alias(bool private_alias)
{
	return private_alias ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
}

/* First GFN of the level-@level entry covering @gfn. */
static inline tdp_gfn_t ts_round_down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_pages(level) - 1);
}

/* ---- a seeded generator -------------------------------------------------- */

/* splitmix64: one step of a small deterministic generator. */
static inline uint64_t ts_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n is 0. */
static inline uint64_t ts_rand_below(uint64_t *state, uint64_t n)
{
	return n ? ts_rand(state) % n : 0;
}

/* ---- a recording host ---------------------------------------------------- */

/* One recorded flush_range() or mark_dirty() call (tree GFNs). */
struct ts_flush_range {
	tdp_gfn_t gfn;
	uint64_t nr_pages;
};

/*
 * The host callbacks of a test MMU.  Counts and the span of the ranges
 * are always kept; the ranges and the dirty marks themselves only while
 * @record is set (concurrent tests flush millions of times).  @unlocked
 * counts callbacks that arrived without this MMU's mmu_lock held (set
 * @mmu to check; mmu.h: "called with mmu_lock held").  The hooks, if
 * set, run after the call is recorded, without @lock held.
 */
struct ts_flush {
	tdp_spinlock_t lock;
	struct tdp_mmu *mmu;
	bool record;
	uint64_t nr_range;
	uint64_t nr_all;
	uint64_t nr_marks;
	uint64_t unlocked;
	uint64_t lost;			/* ranges not recorded: out of memory */
	tdp_gfn_t span_start, span_end; /* union of the ranges; empty: equal */
	struct ts_flush_range *ranges;	/* nr_range entries while recording */
	uint64_t cap;
	struct ts_flush_range *marks; /* nr_marks entries while recording */
	uint64_t cap_marks;
	/*
	 * The flush-order check (ts_flush_zap_begin()): while @zap_scope
	 * (atomic) is above zero, each flush_range() call is checked with
	 * ts_mapped_leaves(); @order_checked and @order_bad count the
	 * checked calls and those that found a leaf still mapped.  Both
	 * under @lock.
	 */
	int zap_scope;
	bool check_zaps; /* set before use: the zap wrappers bracket */
	uint64_t order_checked;
	uint64_t order_bad;
	void (*on_range)(void *arg, tdp_gfn_t gfn, uint64_t nr_pages);
	void (*on_all)(void *arg);
	void (*mark_hook)(void *arg, tdp_gfn_t gfn, uint64_t nr_pages);
	void *hook_arg;
	void *mark_arg;
};

void ts_flush_init(struct ts_flush *f, bool record);
void ts_flush_fini(struct ts_flush *f);
/* Forget every call so far (counts, span, ranges, marks); the counts of
 * the flush-order check are kept. */
void ts_flush_reset(struct ts_flush *f);
/*
 * The host callbacks recording into @f (mark_dirty too if @mark_dirty);
 * with @f NULL, callbacks that do nothing.
 */
struct tdp_host_ops ts_flush_host(struct ts_flush *f, bool mark_dirty);

/* flush_range + flush_all calls so far; mark_dirty calls so far. */
uint64_t ts_flush_count(struct ts_flush *f);
uint64_t ts_flush_marks(struct ts_flush *f);
/* True when a flush_all, or recorded ranges, cover all of [start, end). */
bool ts_flush_covers_range(struct ts_flush *f, tdp_gfn_t start, tdp_gfn_t end);
bool ts_flush_covers(struct ts_flush *f, tdp_gfn_t gfn);
/* True when a recorded dirty mark covers @gfn. */
bool ts_flush_marked(struct ts_flush *f, tdp_gfn_t gfn);
/* How many recorded dirty marks cover @gfn. */
uint64_t ts_flush_marks_of(struct ts_flush *f, tdp_gfn_t gfn);

/*
 * The flush-order check.  A flush issued for a zap must come after the
 * zap cleared what it flushes: a vCPU still running on the tree (a root
 * invalidated but not yet reloaded, or any root before the flush) may
 * walk it between the flush and the clear and cache the translation
 * again, and nothing flushes it afterwards.  The check runs inside the
 * flush callback, when the flush is issued: no direct root on the MMU's
 * list (valid or invalidated, being zapped or not) may still hold a
 * present leaf overlapping the flushed range.  Only direct roots: host
 * flushes are for the trees hardware walks; private translations are
 * flushed by the backend.
 *
 * ts_flush_zap_begin()/ts_flush_zap_end() bracket the zaps to check
 * (they nest; @f->mmu must be set, as ts_env_init() does).  Only valid
 * while every flush_range() in the bracket comes from a zap, and no
 * other thread maps a GFN of the zapped range meanwhile: a write-protect,
 * a split, a recovery or aging flushes leaves that stay present, and a
 * fault outside an invalidation may map a GFN again right after the zap
 * cleared it.  flush_all() calls are not checked (they carry no range).
 * User space only: takes roots_mutex (a mutex) in the flush callback,
 * with mmu_lock held.
 */
void ts_flush_zap_begin(struct ts_flush *f);
void ts_flush_zap_end(struct ts_flush *f);
/* flush_range() calls checked so far; those that found a leaf mapped. */
uint64_t ts_flush_order_checked(struct ts_flush *f);
uint64_t ts_flush_order_violations(struct ts_flush *f);

/*
 * ts_mapped_leaves() - the present leaves overlapping tree GFNs
 * [gfn, gfn + nr_pages) in every direct root on @mmu's list, valid or
 * invalidated; the first one found is logged, prefixed with @what (if
 * not NULL).
 * Walks the tables inside an RCU read-side section; takes roots_mutex,
 * so the caller may hold mmu_lock but not roots_mutex.
 */
uint64_t ts_mapped_leaves(struct tdp_mmu *mmu, tdp_gfn_t gfn,
			  uint64_t nr_pages, const char *what);

/* The recorder @mmu's host callbacks write to; NULL if they are not
 * ts_flush_host()'s. */
struct ts_flush *ts_flush_of(struct tdp_mmu *mmu);

/*
 * ts_flush_zap_begin()/_end() on the recorder of @mmu, if it has one made
 * with check_zap_flushes (ts_env_opts); nothing otherwise.
 */
void ts_zap_check_begin(struct tdp_mmu *mmu);
void ts_zap_check_end(struct tdp_mmu *mmu);

/* ---- an MMU and a vCPU --------------------------------------------------- */

struct ts_env_opts {
	int root_level;	       /* 0: 4 */
	unsigned int flags;    /* enum tdp_mmu_flags */
	bool backend;	       /* confidential VM with the strict backend */
	size_t ext_table_size; /* backend page per mirror table */
	bool demote;	       /* offer demote_leaf ... */
	bool demote_in_faults; /* ... to faults too */
	bool promote;	       /* offer promote_leaf */
	bool mark_dirty;       /* record host.mark_dirty calls */
	bool record;	       /* record flush ranges and marks */
	bool check_zap_flushes; /* flush-order check in ts_host_unmap(),
				 * ts_zap_roots() and the teardown */
	bool no_vcpu;	       /* no vCPU context */
};

struct ts_env {
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu; /* NULL with no_vcpu */
	struct ts_backend *be; /* NULL for a plain VM */
	const struct tdp_spte_format *fmt;
	tdp_gfn_t direct_bits;	   /* TS_SHARED_BIT with a backend */
	struct ts_flush log;	   /* the host callbacks' record */
	struct tdp_mmu_config cfg; /* as the MMU was created */
	void *owner;		   /* the harness's own context */
};

/*
 * The config of a test MMU as @o says, recording into @log (may be NULL:
 * the callbacks then record nothing), with @be as private backend (may
 * be NULL).
 */
struct tdp_mmu_config ts_config(struct ts_flush *log,
				const struct ts_env_opts *o,
				const struct tdp_private_backend *be);

/*
 * ts_env_init() - the MMU @o describes (@o may be NULL: a plain 4-level
 * VM), with the strict backend for a confidential VM, and a vCPU unless
 * @o->no_vcpu.  @e must not move afterwards (the host callbacks point
 * into it).  Returns 0, or the error of the step that failed (logged;
 * nothing is left allocated).
 */
int ts_env_init(struct ts_env *e, const struct ts_env_opts *o);

/*
 * ts_env_teardown() - destroy the vCPU and tear the MMU down, which must
 * return @expect (0, or -EIO when the test killed the MMU on purpose).
 * With 0, check that nothing is left: no table, leaf or page in the
 * statistics, every root freed, no backend entry.  Always: no backend
 * violation, no flush issued before its zap (ts_flush_zap_begin()).
 * Returns the number of problems, each logged.
 */
unsigned long ts_env_teardown(struct ts_env *e, int expect);

/* Free the vCPU (if any), the MMU, the backend and the flush record. */
void ts_env_destroy(struct ts_env *e);

/* ---- faults and lookups -------------------------------------------------- */

/*
 * One tdp_map() of unaliased @gfn in @alias (the shared bit is added for
 * TDP_ALIAS_SHARED) with sequence @seq.  Returns what tdp_map() returned.
 */
int ts_map_seq(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
	       tdp_pfn_t pfn, unsigned int prot, int max_level, uint64_t seq);

/* The same, reading the sequence first. */
int ts_map(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
	   tdp_pfn_t pfn, unsigned int prot, int max_level);

/* An MMIO fault of @gfn (shared alias) with a fresh sequence. */
int ts_map_mmio(struct tdp_vcpu *vcpu, tdp_gfn_t gfn);

/*
 * ts_map_retry() - ts_map() again, like a vCPU re-entering the guest,
 * while it returns TDP_FAULT_RETRY: at most @max_tries tries (0: no
 * bound) and, after the first @TS_RETRY_SPIN tries, giving up the CPU
 * between tries and giving up after @give_up_ms milliseconds (0: no
 * bound; a fault that cannot complete is a livelock for the caller to
 * flag).  @retries, if not NULL, is incremented per RETRY seen.
 */
#define TS_RETRY_SPIN 16
int ts_map_retry(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
		 tdp_pfn_t pfn, unsigned int prot, int max_level,
		 unsigned long max_tries, unsigned int give_up_ms,
		 unsigned long *retries);

/* What tdp_lookup() reports for one GFN of one alias. */
struct ts_leaf {
	int ret; /* of tdp_lookup() */
	tdp_spte_t spte;
	int level;    /* leaf level, or where the walk stopped */
	bool present; /* a present leaf */
	bool frozen;
	bool mmio;
	tdp_gfn_t base;	   /* first GFN the leaf maps (present only) */
	tdp_pfn_t pfn;	   /* the frame of @gfn itself (present only) */
	unsigned int prot; /* present only */
};

struct ts_leaf ts_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn,
			 enum tdp_alias alias);

/*
 * True if a present leaf translates @gfn in @alias (a failed lookup reads
 * as none); then its level and the frame it maps for @gfn itself.
 */
bool ts_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		    int *level, tdp_pfn_t *pfn);

/* ---- a simulated CPU ------------------------------------------------------ */

enum ts_hw_result {
	TS_HW_NOT_PRESENT, /* no present leaf (frozen included): a violation */
	TS_HW_WRPROT,	   /* write to a leaf without W: a violation */
	TS_HW_READ,	   /* translated; accessed bit set */
	TS_HW_WRITTEN,	   /* translated; accessed and dirty bits set */
};

/*
 * ts_hw_walk() - the walk of the hardware toward tree GFN @tree_gfn from
 * the root table at frame @root_pfn of level @root_level: the address of
 * the SPTE it ends at (the present leaf, or the non-present SPTE where it
 * stops), that SPTE in *@spte and its level in *@level.  Inside
 * tdp_walk_begin()/tdp_walk_end() (or an RCU read-side section).
 */
tdp_spte_t *ts_hw_walk(const struct tdp_spte_format *fmt, tdp_pfn_t root_pfn,
		       int root_level, tdp_gfn_t tree_gfn, tdp_spte_t *spte,
		       int *level);

/*
 * ts_hw_access() - one guest access as the CPU performs it: ts_hw_walk(),
 * then compare-exchange the leaf to old | A (| D for a write to a
 * writable leaf), walking again if it changed in between.  Never writes
 * a non-present or frozen SPTE.  *@dirtied (may be NULL) says whether
 * this access turned the dirty bit on, *@leaf_level (may be NULL) gets
 * the leaf's level.  Inside tdp_walk_begin()/tdp_walk_end().
 */
enum ts_hw_result ts_hw_access(const struct tdp_spte_format *fmt,
			       tdp_pfn_t root_pfn, int root_level,
			       tdp_gfn_t tree_gfn, bool write, bool *dirtied,
			       int *leaf_level);

/* ---- host events --------------------------------------------------------- */

/*
 * The host unmaps [start, end) (an MMU-notifier invalidation): begin, zap,
 * end.  Returns 0 or the first error.  This and ts_zap_roots() check the
 * order of their flushes (ts_flush_zap_begin()) when the MMU's recorder
 * was made with check_zap_flushes.
 */
int ts_host_unmap(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);

/*
 * Every root of @alias invalidated and then zapped (what a memslot change
 * of the whole VM does).  Returns 0 or the first error.
 */
int ts_zap_roots(struct tdp_mmu *mmu, enum tdp_alias alias);

/* ---- statistics ---------------------------------------------------------- */

/* Tables of tree @type at levels [1, @below_level) (the root's level: all
 * below the root); leaves of @type at every level, of every type when
 * @type is negative. */
uint64_t ts_stat_tables(const struct tdp_stats *st, int type, int below_level);
uint64_t ts_stat_leaves(const struct tdp_stats *st, int type);

#endif /* TDP_TESTS_SUPPORT_TS_ENV_H */
