/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared parts of the stress programs (stress/) and the injection tests
 * (tests/inject/) beyond the test support of tests/support (MMUs with the
 * strict recording backend, faults, lookups, GFNs and frames): options,
 * operation budgets, threads, check counters, and the checks run once an
 * MMU is quiescent (the simulated CPU is ts_hw_access()).
 *
 * Reference mappings: a GFN is always mapped to the PFN ts_pfn() names for
 * its alias, so any present leaf can be checked at any time.  The PFN bases
 * are 1 GiB aligned, so every fault may map a huge leaf.
 *
 * Checks never abort: SX_CHECK counts every check made and every failure
 * (thread-safe), prints the first failures with the seed and the running
 * test, and sx_summary() turns the tally into the exit status.
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

#include "ts_env.h"

/* ---- options ------------------------------------------------------------ */

struct sx_opts {
	uint64_t seed;
	double seconds;	  /* per test (or phase set), wall clock */
	long max_ops;	  /* per test: operation budget */
	int threads;	  /* worker threads of the busiest role */
	const char *test; /* run only this test; NULL: all */
	bool list;	  /* print the test names and exit */
	bool quick;	  /* TDP_TEST_QUICK=1 */
};

/*
 * sx_parse_opts() - parse the common command line:
 *   -s/--seed N  -t/--seconds S  -n/--ops N  -j/--threads N
 *   -T/--test NAME  -l/--list  -h/--help
 * Defaults: seed from $TDP_TEST_SEED or the clock; @quick_seconds when
 * TDP_TEST_QUICK=1, @long_seconds otherwise; @threads threads.
 * Returns 0, or 2 after printing usage for a bad option.
 */
int sx_parse_opts(int argc, char **argv, struct sx_opts *o,
		  double quick_seconds, double long_seconds, int threads);

/* ---- generators, time, budgets --------------------------------------------- */

/* A generator state for worker @id derived from the run's seed. */
uint64_t sx_seed_for(uint64_t seed, uint64_t id);

/* Monotonic seconds. */
double sx_now(void);

/*
 * An operation budget shared by the threads of one phase: it ends at a
 * deadline, after max_ops operations, or when stopped, whichever is first.
 */
struct sx_budget {
	double deadline;
	long max_ops;
	long ops;  /* atomic */
	bool stop; /* atomic */
};

void sx_budget_start(struct sx_budget *b, double seconds, long max_ops);
/* Count one operation; false when the budget is spent. */
bool sx_budget_next(struct sx_budget *b);
/* True when the budget is spent (counts nothing). */
bool sx_budget_over(struct sx_budget *b);
void sx_budget_stop(struct sx_budget *b);
long sx_budget_ops(const struct sx_budget *b);

/* ---- threads ------------------------------------------------------------ */

#define SX_MAX_THREADS 16

/* Threads that register with libtdp before @fn and unregister after. */
struct sx_threads {
	pthread_t tid[SX_MAX_THREADS];
	int n;
};

void sx_spawn(struct sx_threads *g, void *(*fn)(void *), void *arg);
void sx_join(struct sx_threads *g);

/* ---- checks ------------------------------------------------------------------ */

/* The name shown with failures (the running test or phase). */
void sx_set_test(const char *name);
void sx_set_seed(uint64_t seed);

bool sx_check_at(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define SX_CHECK(cond, ...) \
	sx_check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Count operations executed (added to the final tally). */
void sx_count_ops(long n);

long sx_failures(void);
long sx_checks(void);
long sx_ops(void);

/*
 * sx_run_tests() - the end of a program's main(): with the thread
 * registered, run each of its @n tests (only the one @o->test names, if
 * set) under its name (sx_set_test()), then print a line with the test's
 * time, operations, checks and failures.  Returns sx_summary()'s status,
 * or 2 (after a message) when @o->test names no test.
 */
int sx_run_tests(const char *prog, const struct sx_opts *o, size_t n,
		 const char *(*name)(size_t i),
		 void (*run)(const struct sx_opts *o, size_t i));

/*
 * sx_summary() - print "PROG: seed=S ops=N checks=C passed=P failures=F"
 * and return the exit status (0 when nothing failed).
 */
int sx_summary(const char *prog);

/* ---- an MMU with the recording backend -------------------------------------- */

/*
 * sx_env_init() - an MMU with @flags and no vCPU; with the strict backend
 * as private backend (backend pages of @ext_size bytes) when
 * @private_mem, else a plain VM whose only alias is shared.  Flush hooks
 * already set in @e->log (on_range, on_all, hook_arg) are kept.  The
 * caller must be registered.  Returns false (after a failed check) if
 * anything could not be created.
 */
bool sx_env_init(struct ts_env *e, unsigned int flags, bool private_mem,
		 size_t ext_size);

/*
 * sx_env_fini() - every vCPU context destroyed and every root reference
 * put: tear down and check that nothing is left (ts_env_teardown()),
 * then destroy everything.
 */
void sx_env_fini(struct ts_env *e);

/*
 * sx_fault() - fault unaliased @gfn in the alias @private selects with
 * the reference PFN, re-reading the invalidation sequence and retrying
 * while TDP_FAULT_RETRY, as a vCPU re-entering the guest would.  Gives up
 * after @give_up_s seconds of retries (a livelock) and returns RETRY.
 * @retries, if not NULL, is incremented per RETRY seen.
 */
int sx_fault(struct ts_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	     bool private, unsigned int prot, int max_level, double give_up_s,
	     unsigned long *retries);

/*
 * sx_lookup_leaf() - ts_lookup_leaf(), with a failed lookup a failed
 * check.
 */
bool sx_lookup_leaf(struct ts_env *e, tdp_gfn_t gfn, bool private, int *level,
		    tdp_pfn_t *pfn);

/* ---- quiescent checks ------------------------------------------------------------ */

/* What a walk of the engine's trees found, per root type and level. */
struct sx_tree_count {
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
typedef void (*sx_leaf_fn)(void *arg, int root_type, bool valid, tdp_gfn_t gfn,
			   int level, tdp_spte_t spte);

/*
 * sx_walk_trees() - walk every reachable table of every root on the MMU's
 * root list (valid and invalidated), call @fn (may be NULL) for each
 * present leaf and count tables and leaves as the statistics do.  Frozen
 * SPTEs are counted and reported as failed checks.  The MMU must be
 * quiescent: no other thread inside it, or the caller holds mmu_lock for
 * write (no operation holds an SPTE frozen across a release of the lock,
 * so none is frozen while the caller holds it for write).
 */
void sx_walk_trees(struct ts_env *e, sx_leaf_fn fn, void *arg,
		   struct sx_tree_count *out);

/*
 * sx_check_quiesced() - with the MMU quiescent: no frozen SPTE is
 * reachable; every present leaf maps the reference PFN; the statistics'
 * table and leaf counts equal what the walk found; the recorder has no
 * violation and equals the mirror entry for entry.  Returns the number of
 * failed checks it added.
 */
long sx_check_quiesced(struct ts_env *e);

/* The same with @check (may be NULL) instead of the reference-PFN check,
 * for tests whose host changes the PFN behind a GFN. */
long sx_check_quiesced_with(struct ts_env *e, sx_leaf_fn check, void *arg);

/*
 * After every invalidated root was zapped and every reference to it put:
 * no invalidated root is left on the list, and every root allocated and
 * not freed is on it (freeing waits for a grace period: the caller waits
 * for RCU callbacks first).
 */
void sx_check_roots_freed(struct ts_env *e);

/* Leaves of @alias (valid roots only) that intersect [start, end). */
uint64_t sx_count_leaves(struct ts_env *e, bool private, tdp_gfn_t start,
			 tdp_gfn_t end);

#endif /* TDP_STRESS_COMMON_H */
