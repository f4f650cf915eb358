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

#include "ts_env.h"

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

/*
 * A test's MMU (and backend) and vCPU are a struct ts_env of the shared
 * test support (tests/support/ts_env.h), whose owner is the test.
 */
static inline struct st *st_of(const struct ts_env *e)
{
	return e->owner;
}

/*
 * Create the MMU (and backend) and one vCPU as @o says, registering the
 * thread; false (and a failed check) if that failed.
 */
bool st_env_init(struct st *t, struct ts_env *e, const struct ts_env_opts *o);

/*
 * ts_env_teardown(): destroy the vCPU and tear the MMU down, which must
 * return @expect (0, or -EIO when the test killed the MMU on purpose), and
 * check what is left; every problem is a failed check.
 */
void st_env_teardown(struct ts_env *e, int expect);

/* Free the MMU and the backend, and unregister the thread. */
void st_env_destroy(struct ts_env *e);

/* st_env_teardown(e, 0) and st_env_destroy(e). */
void st_env_fini(struct ts_env *e);

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
