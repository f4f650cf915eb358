/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared parts of the stress programs (stress/) and the injection tests
 * (tests/inject/): options, seeded generators, operation budgets, threads,
 * check counters, an MMU of a confidential VM whose private backend is the
 * strict recorder of tests/mirror, a simulated CPU that walks the direct
 * tree like hardware, and the checks run once an MMU is quiescent.
 *
 * Reference mappings: a GFN is always mapped to the PFN st_pfn() names for
 * its alias, so any present leaf can be checked at any time.  The PFN bases
 * are 1 GiB aligned, so every fault may map a huge leaf.
 *
 * Checks never abort: ST_CHECK counts every check made and every failure
 * (thread-safe), prints the first failures with the seed and the running
 * test, and st_summary() turns the tally into the exit status.
 *
 * White box: the quiescent tree walk reads engine structures through
 * libtdp/internal.h (the root list and the tables).
 */
#ifndef TDP_STRESS_COMMON_H
#define TDP_STRESS_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

#include "recorder.h"

/* The VM every program uses: 4 levels, shared bit at GFN bit 35. */
#define ST_ROOT_LEVEL 4
#define ST_SHARED_BIT (1ULL << 35)
#define ST_GFN_LIMIT ST_SHARED_BIT

#define ST_PAGES_2M 512ULL
#define ST_PAGES_1G (512ULL * 512ULL)
#define ST_PAGES_512G (512ULL * 512ULL * 512ULL)

/* PFN bases of the two aliases: far apart, 1 GiB aligned. */
#define ST_PFN_PRIVATE_BASE (1ULL << 36)
#define ST_PFN_SHARED_BASE (2ULL << 36)

/* The PFN a leaf of @alias must map for unaliased @gfn. */
static inline tdp_pfn_t st_pfn(tdp_gfn_t gfn, bool private)
{
	return (private ? ST_PFN_PRIVATE_BASE : ST_PFN_SHARED_BASE) + gfn;
}

static inline enum tdp_alias st_alias(bool private)
{
	return private ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
}

static inline tdp_gfn_t st_round_down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_pages(level) - 1);
}

/* ---- options ------------------------------------------------------------ */

struct st_opts {
	uint64_t seed;
	double seconds;	  /* per test (or phase set), wall clock */
	long max_ops;	  /* per test: operation budget */
	int threads;	  /* worker threads of the busiest role */
	const char *test; /* run only this test; NULL: all */
	bool list;	  /* print the test names and exit */
	bool quick;	  /* TDP_TEST_QUICK=1 */
};

/*
 * st_parse_opts() - parse the common command line:
 *   -s/--seed N  -t/--seconds S  -n/--ops N  -j/--threads N
 *   -T/--test NAME  -l/--list  -h/--help
 * Defaults: seed from $TDP_TEST_SEED or the clock; @quick_seconds when
 * TDP_TEST_QUICK=1, @long_seconds otherwise; @threads threads.
 * Returns 0, or 2 after printing usage for a bad option.
 */
int st_parse_opts(int argc, char **argv, struct st_opts *o,
		  double quick_seconds, double long_seconds, int threads);

/* ---- generators, time, budgets --------------------------------------------- */

/* splitmix64: one step of a seeded, thread-local generator. */
static inline uint64_t st_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A value in [0, n). */
static inline uint64_t st_below(uint64_t *state, uint64_t n)
{
	return n ? st_rand(state) % n : 0;
}

/* A generator state for worker @id derived from the run's seed. */
uint64_t st_seed_for(uint64_t seed, uint64_t id);

/* Monotonic seconds. */
double st_now(void);

/* Sleep @usec microseconds. */
void st_usleep(unsigned int usec);

/*
 * An operation budget shared by the threads of one phase: it ends at a
 * deadline, after max_ops operations, or when stopped, whichever is first.
 */
struct st_budget {
	double deadline;
	long max_ops;
	long ops;  /* atomic */
	bool stop; /* atomic */
};

void st_budget_start(struct st_budget *b, double seconds, long max_ops);
/* Count one operation; false when the budget is spent. */
bool st_budget_next(struct st_budget *b);
/* True when the budget is spent (counts nothing). */
bool st_budget_over(struct st_budget *b);
void st_budget_stop(struct st_budget *b);
long st_budget_ops(const struct st_budget *b);

/* ---- threads ------------------------------------------------------------ */

#define ST_MAX_THREADS 16

/* Threads that register with libtdp before @fn and unregister after. */
struct st_threads {
	pthread_t tid[ST_MAX_THREADS];
	int n;
};

void st_spawn(struct st_threads *g, void *(*fn)(void *), void *arg);
void st_join(struct st_threads *g);

/* ---- checks ------------------------------------------------------------------ */

/* The name shown with failures (the running test or phase). */
void st_set_test(const char *name);
void st_set_seed(uint64_t seed);

bool st_check_at(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define ST_CHECK(cond, ...) \
	st_check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Count operations executed (added to the final tally). */
void st_count_ops(long n);

long st_failures(void);
long st_checks(void);
long st_ops(void);

/*
 * st_summary() - print "PROG: seed=S ops=N checks=C passed=P failures=F"
 * and return the exit status (0 when nothing failed).
 */
int st_summary(const char *prog);

/* ---- an MMU with the recording backend -------------------------------------- */

struct st_env;

/* Host TLB callback hooks (optional): called under mmu_lock. */
typedef void (*st_flush_range_fn)(void *arg, tdp_gfn_t gfn, uint64_t n);
typedef void (*st_flush_all_fn)(void *arg);

struct st_env {
	struct tdp_mmu *mmu;
	struct recorder *rec; /* NULL for a VM without private memory */
	const struct tdp_spte_format *fmt;
	/* Hooks: set before the MMU is shared with other threads. */
	st_flush_range_fn on_flush_range;
	st_flush_all_fn on_flush_all;
	void *flush_arg;
	uint64_t flushes; /* atomic: host callbacks seen */
};

/*
 * st_env_init() - an MMU with @flags; with a recorder as private backend
 * (backend pages of @ext_size bytes) when @private_mem, else a plain VM
 * whose only alias is shared.  The caller must be registered.  Returns
 * false (after a failed check) if anything could not be created.
 */
bool st_env_init(struct st_env *e, unsigned int flags, bool private_mem,
		 size_t ext_size);

/*
 * st_env_fini() - every vCPU context destroyed and every root reference
 * put: tear down and check that nothing is left: no table or leaf in the
 * statistics, no page in use, every root freed, the recorder empty and
 * without violations.  Then destroy everything.
 */
void st_env_fini(struct st_env *e);

/*
 * st_fault() - fault unaliased @gfn in the alias @private selects with
 * the reference PFN, re-reading the invalidation sequence and retrying
 * while TDP_FAULT_RETRY, as a vCPU re-entering the guest would.  Gives up
 * after @give_up_s seconds of retries (a livelock) and returns RETRY.
 * @retries, if not NULL, is incremented per RETRY seen.
 */
int st_fault(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	     bool private, unsigned int prot, int max_level, double give_up_s,
	     unsigned long *retries);

/* One tdp_map() try with the given sequence and PFN. */
int st_map_once(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		bool private, tdp_pfn_t pfn, unsigned int prot, int max_level,
		uint64_t seq);

/*
 * st_lookup_leaf() - tdp_lookup(); true if a present leaf translates
 * @gfn (its level and the PFN for @gfn itself are stored).  A frozen or
 * failed lookup is a failed check.
 */
bool st_lookup_leaf(struct st_env *e, tdp_gfn_t gfn, bool private, int *level,
		    tdp_pfn_t *pfn);

/* ---- quiescent checks ------------------------------------------------------------ */

/* What a walk of the engine's trees found, per root type and level. */
struct st_tree_count {
	uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t frozen;
	uint64_t roots;		/* on the root list */
	uint64_t invalid_roots; /* of which invalidated */
};

/*
 * Called for every present leaf: @gfn unaliased, @valid false for a leaf
 * of an invalidated root.
 */
typedef void (*st_leaf_fn)(void *arg, int root_type, bool valid, tdp_gfn_t gfn,
			   int level, tdp_spte_t spte);

/*
 * st_walk_trees() - walk every reachable table of every root on the MMU's
 * root list (valid and invalidated), call @fn (may be NULL) for each
 * present leaf and count tables and leaves as the statistics do.  Frozen
 * SPTEs are counted and reported as failed checks.  The MMU must be
 * quiescent: no other thread inside it, or the caller holds mmu_lock for
 * write (no operation holds an SPTE frozen across a release of the lock,
 * so none is frozen while the caller holds it for write).
 */
void st_walk_trees(struct st_env *e, st_leaf_fn fn, void *arg,
		   struct st_tree_count *out);

/*
 * st_check_quiesced() - with the MMU quiescent: no frozen SPTE is
 * reachable; every present leaf maps the reference PFN; the statistics'
 * table and leaf counts equal what the walk found; the recorder has no
 * violation and equals the mirror entry for entry.  Returns the number of
 * failed checks it added.
 */
long st_check_quiesced(struct st_env *e);

/* The same with @check (may be NULL) instead of the reference-PFN check,
 * for tests whose host changes the PFN behind a GFN. */
long st_check_quiesced_with(struct st_env *e, st_leaf_fn check, void *arg);

/*
 * After every invalidated root was zapped and every reference to it put:
 * no invalidated root is left on the list, and every root allocated and
 * not freed is on it (freeing waits for a grace period: the caller waits
 * for RCU callbacks first).
 */
void st_check_roots_freed(struct st_env *e);

/* Leaves of @alias (valid roots only) that intersect [start, end). */
uint64_t st_count_leaves(struct st_env *e, bool private, tdp_gfn_t start,
			 tdp_gfn_t end);

/* ---- a simulated CPU walking the direct tree ------------------------------------ */

enum st_hw_result {
	ST_HW_OK,	   /* translated; A (and D) set */
	ST_HW_NOT_PRESENT, /* no present leaf (frozen included) */
	ST_HW_WRPROT,	   /* write to a leaf without the write bit */
};

/*
 * st_hw_access() - walk the tree whose root frame is @root_pfn (from
 * tdp_vcpu_load_root) toward tree GFN @tree_gfn the way hardware does and
 * set the accessed bit, and for @write the dirty bit, of the leaf with
 * compare-exchange.  *@dirtied is set when this access turned the dirty
 * bit on; *@leaf_level (may be NULL) receives the leaf level.
 * Must run between tdp_walk_begin() and tdp_walk_end().
 */
enum st_hw_result st_hw_access(const struct tdp_spte_format *fmt,
			       tdp_pfn_t root_pfn, int root_level,
			       tdp_gfn_t tree_gfn, bool write, bool *dirtied,
			       int *leaf_level);

#endif /* TDP_STRESS_COMMON_H */
