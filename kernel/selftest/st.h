/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tdp_selftest: the in-kernel self-test of libtdp.ko.
 *
 * A test is a function that gets a struct st and reports failed checks
 * through the ST_* macros; worker threads of a test may use them too.
 * st_main.c runs every test in a kernel thread, one after the other, and
 * prints one line per test and a final "N passed, M failed" line.
 *
 * Tests use only the public API (include/tdp/), plus the engine's
 * internal header and the port's mmu_lock names for white-box lock checks
 * (st_lock.c), and the test support shared with the user-space tests
 * (tests/support/: the strict recording backend).
 */
#ifndef TDP_SELFTEST_H
#define TDP_SELFTEST_H

#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>

#include <tdp/tdp.h>

#include "ts_backend.h"

/* ---- test context and checks --------------------------------------------- */

struct st {
	const char *name;
	atomic_t failed_checks; /* any thread of the test may fail a check */
	u64 seed;		/* per test, derived from the module's seed */
	/* mmu_lock misuses the test provokes on purpose (test thread only). */
	long expected_misuses;
};

/* Record a failed check; prints the first few of each test. */
__printf(4, 5) void st_fail(struct st *t, const char *file, int line,
			    const char *fmt, ...);

#define ST_TRUE(t, cond)                                             \
	({                                                           \
		bool __st_ok = !!(cond);                             \
		if (unlikely(!__st_ok))                              \
			st_fail(t, __FILE__, __LINE__, "%s", #cond); \
		__st_ok;                                             \
	})

#define ST_EQ(t, a, b)                                                        \
	({                                                                    \
		unsigned long long __st_a = (unsigned long long)(a);          \
		unsigned long long __st_b = (unsigned long long)(b);          \
		bool __st_ok = __st_a == __st_b;                              \
		if (unlikely(!__st_ok))                                       \
			st_fail(t, __FILE__, __LINE__,                        \
				"%s == %s: %lld (%#llx) != %lld (%#llx)", #a, \
				#b, (long long)__st_a, __st_a,                \
				(long long)__st_b, __st_b);                   \
		__st_ok;                                                      \
	})

static inline bool st_failed(struct st *t)
{
	return atomic_read(&t->failed_checks) != 0;
}

/* xorshift64*: reproducible per-thread random numbers. */
static inline u64 st_rand(u64 *state)
{
	u64 x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* ---- threads ------------------------------------------------------------- */

/*
 * Worker kernel threads of one test.  st_thread_start() runs @fn(@arg) in
 * a new kernel thread and returns once @fn has started (so a stop can
 * never cancel it before it ran); st_thread_stop() asks it to stop (its
 * loop polls kthread_should_stop()), waits until @fn returned and gives
 * back what it returned.
 */
struct st_thread;

struct st_thread *st_thread_start(int (*fn)(void *arg), void *arg,
				  const char *name, int id);
int st_thread_stop(struct st_thread *th);

/* A reusable barrier for @n threads. */
struct st_barrier {
	int n;
	atomic_t arrived;
	atomic_t generation;
	wait_queue_head_t wq;
};

void st_barrier_init(struct st_barrier *b, int n);
void st_barrier_wait(struct st_barrier *b);

/* ---- the environment of one test ----------------------------------------- */

/* Shared bit of the confidential-VM tests: GPA bit 47 with 4 levels. */
#define ST_SHARED_BIT (1ULL << 35)

/*
 * Host frames the tests map: a GFN's private and shared aliases map
 * different frames, both aligned as the GFN so that huge mappings line up.
 * Leaf frames are never dereferenced by the engine.
 */
#define ST_PFN_PRIVATE(gfn) ((gfn) + (1ULL << 32))
#define ST_PFN_SHARED(gfn) ((gfn) + (2ULL << 32))

struct st_env_opts {
	int root_level;	       /* 0: 4 */
	bool backend;	       /* confidential VM with the strict backend */
	size_t ext_table_size; /* backend page per mirror table */
	unsigned int flags;    /* enum tdp_mmu_flags */
};

struct st_env {
	struct st *t;
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	struct ts_backend *be; /* NULL for a plain VM */
	tdp_gfn_t direct_bits;

	/* TLB callbacks: counts and the span of the range flushes. */
	spinlock_t flush_lock;
	u64 flush_range_calls, flush_all_calls;
	tdp_gfn_t flushed_start, flushed_end; /* empty when equal */
};

/* Create the MMU (and backend) and one vCPU; false (and a failed check)
 * if that failed. */
bool st_env_init(struct st *t, struct st_env *e, const struct st_env_opts *o);

/*
 * Destroy the vCPU and tear the MMU down, which must return @expect (0, or
 * -EIO when the test killed the MMU on purpose).  With 0, check that
 * nothing is left: no table, leaf or page in the statistics, no backend
 * entry.  Always: no backend violation.
 */
void st_env_teardown(struct st_env *e, int expect);

/* Free the MMU and the backend. */
void st_env_destroy(struct st_env *e);

/* st_env_teardown(e, 0) and st_env_destroy(e). */
void st_env_fini(struct st_env *e);

/* Forget the recorded flush span. */
void st_env_flush_reset(struct st_env *e);

/* One fault of @gfn (unaliased) in @alias; returns what tdp_map returned. */
int st_map(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	   enum tdp_alias alias, tdp_pfn_t pfn, unsigned int prot,
	   int max_level);

/* The same, faulting again (with a fresh sequence) while it says RETRY. */
int st_map_retry(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		 enum tdp_alias alias, tdp_pfn_t pfn, unsigned int prot,
		 int max_level, unsigned long *retries);

/* The frame of @gfn's alias ST_PFN_* expects. */
static inline tdp_pfn_t st_pfn(tdp_gfn_t gfn, enum tdp_alias alias)
{
	return alias == TDP_ALIAS_PRIVATE ? ST_PFN_PRIVATE(gfn)
					  : ST_PFN_SHARED(gfn);
}

/*
 * Lockless lookup: true if a present leaf translates @gfn in @alias; then
 * its level and the frame it maps for @gfn itself (not the leaf's base).
 */
bool st_leaf(struct st_env *e, tdp_gfn_t gfn, enum tdp_alias alias, int *level,
	     tdp_pfn_t *pfn);

/* Sum of the statistics' leaves (or tables below the root) of a tree. */
u64 st_leaves(const struct tdp_stats *s, enum tdp_root_type type);
u64 st_tables_below_root(const struct tdp_stats *s, enum tdp_root_type type,
			 int root_level);

static inline tdp_gfn_t st_round_down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(tdp_level_pages(level) - 1);
}

/* ---- the tests ----------------------------------------------------------- */

struct st_case {
	const char *name;
	void (*fn)(struct st *t);
};

extern const struct st_case st_engine_cases[];
extern const unsigned int st_engine_nr_cases;
extern const struct st_case st_mirror_cases[];
extern const unsigned int st_mirror_nr_cases;
extern const struct st_case st_stress_cases[];
extern const unsigned int st_stress_nr_cases;
extern const struct st_case st_lock_cases[];
extern const unsigned int st_lock_nr_cases;

/* Module parameters (st_main.c). */
extern unsigned int st_stress_ms;
extern unsigned int st_stress_vcpus;

#endif /* TDP_SELFTEST_H */
