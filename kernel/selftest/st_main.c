// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tdp_selftest.ko: at load time, a kernel thread runs every test of
 * st_engine.c, st_mirror.c, st_stress.c and st_lock.c in turn and prints
 *
 *   tdp_selftest: ok   <name> (<ms> ms)
 *   tdp_selftest: FAIL <name> (<n> checks failed)
 *
 * one line per test, then "tdp_selftest: N passed, M failed".  Loading
 * returns once that line is printed; it succeeds whatever the result (the
 * line is the result).  A test fails if one of its checks fails, if the
 * engine reported a broken invariant (TDP_WARN_ON / TDP_ASSERT) while it
 * ran, or if the port caught a misuse of mmu_lock the test did not
 * provoke on purpose.
 *
 * Parameters: seed (0: a random one, printed), stress_ms (time budget of
 * the stress test), stress_vcpus, filter (run only tests whose name
 * contains it).
 */
#include <linux/completion.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "st.h"

#include "port/port.h"

static unsigned long long seed;
module_param(seed, ullong, 0444);
MODULE_PARM_DESC(seed, "random seed of the tests (0: pick one)");

unsigned int st_stress_ms = 3000;
module_param_named(stress_ms, st_stress_ms, uint, 0444);
MODULE_PARM_DESC(stress_ms, "time budget of the concurrent stress, ms");

unsigned int st_stress_vcpus = 3;
module_param_named(stress_vcpus, st_stress_vcpus, uint, 0444);
MODULE_PARM_DESC(stress_vcpus, "vCPU threads of the stress (1..8)");

static char *filter = "";
module_param(filter, charp, 0444);
MODULE_PARM_DESC(filter, "run only the tests whose name contains this");

#define ST_PRINT_LIMIT 8

/* ---- checks -------------------------------------------------------------- */

void st_fail(struct st *t, const char *file, int line, const char *fmt, ...)
{
	struct va_format vaf;
	va_list ap;
	int n = atomic_inc_return(&t->failed_checks);

	if (n > ST_PRINT_LIMIT)
		return;
	va_start(ap, fmt);
	vaf.fmt = fmt;
	vaf.va = &ap;
	pr_err("tdp_selftest: %s: check failed at %s:%d: %pV\n", t->name,
	       kbasename(file), line, &vaf);
	va_end(ap);
	if (n == ST_PRINT_LIMIT)
		pr_err("tdp_selftest: %s: further failed checks not printed\n",
		       t->name);
}

/* ---- threads ------------------------------------------------------------- */

struct st_thread {
	struct task_struct *task;
	int (*fn)(void *arg);
	void *arg;
	struct completion started;
};

static int st_thread_main(void *data)
{
	struct st_thread *th = data;

	complete(&th->started);
	return th->fn(th->arg);
}

struct st_thread *st_thread_start(int (*fn)(void *arg), void *arg,
				  const char *name, int id)
{
	struct st_thread *th = kzalloc(sizeof(*th), GFP_KERNEL);

	if (!th)
		return NULL;
	th->fn = fn;
	th->arg = arg;
	init_completion(&th->started);
	th->task = kthread_run(st_thread_main, th, "tdp_st_%s/%d", name, id);
	if (IS_ERR(th->task)) {
		kfree(th);
		return NULL;
	}
	/* It may return before it is stopped: keep its task. */
	get_task_struct(th->task);
	wait_for_completion(&th->started);
	return th;
}

int st_thread_stop(struct st_thread *th)
{
	int ret;

	if (!th)
		return -ECHILD;
	ret = kthread_stop(th->task);
	put_task_struct(th->task);
	kfree(th);
	return ret;
}

void st_barrier_init(struct st_barrier *b, int n)
{
	b->n = n;
	atomic_set(&b->arrived, 0);
	atomic_set(&b->generation, 0);
	init_waitqueue_head(&b->wq);
}

void st_barrier_wait(struct st_barrier *b)
{
	int gen = atomic_read(&b->generation);

	if (atomic_inc_return(&b->arrived) == b->n) {
		atomic_set(&b->arrived, 0);
		atomic_inc(&b->generation);
		wake_up_all(&b->wq);
		return;
	}
	wait_event(b->wq, atomic_read(&b->generation) != gen);
}

/* ---- the runner ---------------------------------------------------------- */

struct st_group {
	const struct st_case *cases;
	const unsigned int *nr;
};

static const struct st_group groups[] = {
	{ st_engine_cases, &st_engine_nr_cases },
	{ st_mirror_cases, &st_mirror_nr_cases },
	{ st_stress_cases, &st_stress_nr_cases },
	{ st_lock_cases, &st_lock_nr_cases },
};

static struct {
	unsigned int passed, failed;
	struct completion done;
} result;

/* Run one test; true if it passed. */
static bool run_case(const struct st_case *c, u64 case_seed)
{
	struct st t = { .name = c->name, .seed = case_seed };
	long warnings = tdp_port_invariant_failures();
	long misuses = tdp_port_lock_misuses();
	u64 start = ktime_get_ns();
	unsigned long ms;
	long broken;

	atomic_set(&t.failed_checks, 0);
	c->fn(&t);
	broken = tdp_port_invariant_failures() - warnings;
	if (broken)
		st_fail(&t, __FILE__, __LINE__,
			"the engine reported %ld broken invariants", broken);
	misuses = tdp_port_lock_misuses() - misuses;
	if (misuses != t.expected_misuses)
		st_fail(&t, __FILE__, __LINE__,
			"the port caught %ld mmu_lock misuses, %ld expected",
			misuses, t.expected_misuses);
	ms = (unsigned long)div_u64(ktime_get_ns() - start, NSEC_PER_MSEC);
	if (!st_failed(&t)) {
		pr_info("tdp_selftest: ok   %s (%lu ms)\n", c->name, ms);
		return true;
	}
	pr_info("tdp_selftest: FAIL %s (%d checks failed, %lu ms)\n", c->name,
		atomic_read(&t.failed_checks), ms);
	return false;
}

static int runner(void *arg)
{
	u64 case_seed = seed;

	pr_info("tdp_selftest: seed %llu, stress %u ms with %u vCPU threads\n",
		seed, st_stress_ms, st_stress_vcpus);
	for (unsigned int g = 0; g < ARRAY_SIZE(groups); g++) {
		for (unsigned int i = 0; i < *groups[g].nr; i++) {
			const struct st_case *c = &groups[g].cases[i];

			ts_rand(&case_seed);
			if (!strstr(c->name, filter))
				continue;
			if (run_case(c, case_seed))
				result.passed++;
			else
				result.failed++;
		}
	}
	pr_info("tdp_selftest: %u passed, %u failed\n", result.passed,
		result.failed);
	kthread_complete_and_exit(&result.done, 0);
}

static int __init tdp_selftest_init(void)
{
	struct task_struct *task;

	if (!seed)
		seed = get_random_u64() | 1;
	if (st_stress_vcpus < 1 || st_stress_vcpus > 8)
		st_stress_vcpus = 3;
	init_completion(&result.done);
	task = kthread_run(runner, NULL, "tdp_selftest");
	if (IS_ERR(task)) {
		pr_err("tdp_selftest: cannot start the runner thread\n");
		return PTR_ERR(task);
	}
	wait_for_completion(&result.done);
	return 0;
}

static void __exit tdp_selftest_exit(void)
{
}

module_init(tdp_selftest_init);
module_exit(tdp_selftest_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION(
	"libtdp self-test: engine, mirror freeze protocol, stress, mmu_lock");
