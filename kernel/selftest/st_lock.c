// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The kernel port's mmu_lock on its own: the lock inside real MMUs, taken
 * through the port's names as the engine takes it (white box: the MMU's
 * mmu_lock field, from the engine's internal header).
 *
 *   lock/misuse     every misuse the port detects, provoked once each: it
 *                   is counted, refused or handled as tdp_port_kernel.h
 *                   says, and the lock still works afterwards.  The port
 *                   warns once per rule, so the first run prints one
 *                   backtrace per rule.
 */
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/rcupdate.h>

#include "st.h"

#include "internal.h"

/* ---- lock/misuse --------------------------------------------------------- */

/* Misuses the port counted since the last call. */
static long new_misuses(long *mark)
{
	long now = tdp_port_lock_misuses();
	long n = now - *mark;

	*mark = now;
	return n;
}

struct holder {
	tdp_mmu_lock_t *lock;
	unsigned int hold_ms;
	int cpu; /* where the holder runs */
	atomic_t holding;
};

/* Unlock a lock another task holds for write. */
static int foreign_unlock_fn(void *arg)
{
	struct holder *h = arg;

	tdp_write_unlock(h->lock);
	return 0;
}

/* Hold the lock for write for @hold_ms, on CPU @cpu. */
static int write_holder_fn(void *arg)
{
	struct holder *h = arg;

	set_cpus_allowed_ptr(current, cpumask_of(h->cpu));
	tdp_write_lock(h->lock);
	atomic_set(&h->holding, 1);
	msleep(h->hold_ms);
	tdp_write_unlock(h->lock);
	return 0;
}

static void test_misuse(struct st *t)
{
	struct st_env_opts o = { 0 };
	struct holder h = { 0 };
	struct st_thread *th;
	tdp_mmu_lock_t *l;
	struct st_env e;
	long mark = tdp_port_lock_misuses();
	long expected = 0;

	if (!st_env_init(t, &e, &o))
		return;
	l = &e.mmu->mmu_lock;

	/* Inside an RCU read-side section: reported, taken anyway. */
	rcu_read_lock();
	tdp_read_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_read(l));
	tdp_read_unlock(l);
	rcu_read_unlock();
	expected++;

	/* Inside tdp_walk_begin()/tdp_walk_end(): the same. */
	tdp_walk_begin();
	tdp_write_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_write(l));
	tdp_write_unlock(l);
	tdp_walk_end();
	expected++;

	/* Preemption disabled: taken by spinning, never sleeping. */
	preempt_disable();
	tdp_read_lock(l);
	ST_TRUE(t, tdp_port_lock_held_read(l));
	tdp_read_unlock(l);
	preempt_enable();
	ST_EQ(t, new_misuses(&mark), 1);
	expected++;

	/*
	 * ... also while another task holds it.  The holder sleeps holding
	 * it and must wake on another CPU than the one spinning with
	 * preemption disabled: both are pinned.
	 */
	if (num_online_cpus() > 1) {
		int here = raw_smp_processor_id();

		set_cpus_allowed_ptr(current, cpumask_of(here));
		h = (struct holder){
			.lock = l,
			.hold_ms = 20,
			.cpu = cpumask_any_but(cpu_online_mask, here),
		};
		th = st_thread_start(write_holder_fn, &h, "lock_hold", 0);
		if (ST_TRUE(t, th != NULL)) {
			while (!atomic_read(&h.holding))
				usleep_range(50, 100);
			preempt_disable();
			tdp_read_lock(l);
			ST_TRUE(t, READ_ONCE(l->writer) == NULL);
			tdp_read_unlock(l);
			preempt_enable();
			ST_EQ(t, new_misuses(&mark), 1);
			expected++;
			st_thread_stop(th);
		}
		set_cpus_allowed_ptr(current, cpu_possible_mask);
	}

	/* Nested in the task's own write lock: refused, no deadlock. */
	tdp_write_lock(l);
	tdp_write_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_unlock(l);
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);
	ST_TRUE(t, tdp_port_lock_held_write(l)); /* the outer one holds */
	tdp_write_unlock(l);
	ST_TRUE(t, !tdp_port_lock_held_write(l));
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	expected += 2;

	/* Unlocks of a lock nobody holds: refused. */
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	ST_EQ(t, atomic_read(&l->readers), 0);
	expected += 2;

	/* A read unlock by the write holder: refused, still held. */
	tdp_write_lock(l);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_write(l));
	ST_TRUE(t, rwsem_is_locked(&l->rw));
	expected++;

	/* A write unlock by another task: refused, this one still holds. */
	h = (struct holder){ .lock = l };
	th = st_thread_start(foreign_unlock_fn, &h, "lock_unl", 0);
	if (ST_TRUE(t, th != NULL)) {
		st_thread_stop(th);
		ST_EQ(t, new_misuses(&mark), 1);
		expected++;
	}
	ST_TRUE(t, tdp_port_lock_held_write(l));
	ST_TRUE(t, rwsem_is_locked(&l->rw));
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);

	/* A walk end with no walk: refused where the kernel can tell. */
	if (IS_ENABLED(CONFIG_PREEMPT_RCU) ||
	    IS_ENABLED(CONFIG_PREEMPT_COUNT)) {
		tdp_walk_end();
		ST_EQ(t, new_misuses(&mark), 1);
		expected++;
		/* The task's RCU nesting is intact. */
		ST_TRUE(t, !tdp_port_may_not_sleep());
	}

	/* The lock still works, and the MMU with it (teardown takes it). */
	tdp_write_lock(l);
	tdp_write_unlock(l);
	tdp_read_lock(l);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	t->expected_misuses = expected;
	st_env_fini(&e);
}

const struct st_case st_lock_cases[] = {
	{ "lock/misuse", test_misuse },
};
const unsigned int st_lock_nr_cases = ARRAY_SIZE(st_lock_cases);
