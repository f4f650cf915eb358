// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Kernel port: out-of-line parts (mmu_lock, allocation with the failure
 * injector, the count of broken invariants, and the one compiler helper
 * the engine needs).
 */
#include "port/port.h"

#include <linux/bitops.h>
#include <linux/export.h>
#include <linux/gfp.h>
#include <linux/log2.h>

/* ---- broken invariants --------------------------------------------------- */

static atomic_long_t invariant_failures = ATOMIC_LONG_INIT(0);

void tdp_port_invariant_broken(void)
{
	atomic_long_inc(&invariant_failures);
}

long tdp_port_invariant_failures(void)
{
	return atomic_long_read(&invariant_failures);
}
EXPORT_SYMBOL_GPL(tdp_port_invariant_failures);

/* ---- mmu_lock ------------------------------------------------------------ */

/*
 * The lock's functions and the misuse count are exported for the
 * self-test (selftest/st_lock.c), which takes an MMU's mmu_lock the way
 * the engine does.
 */
static atomic_long_t lock_misuses = ATOMIC_LONG_INIT(0);

void tdp_port_lock_misused(void)
{
	atomic_long_inc(&lock_misuses);
}

long tdp_port_lock_misuses(void)
{
	return atomic_long_read(&lock_misuses);
}
EXPORT_SYMBOL_GPL(tdp_port_lock_misuses);

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended)
{
	init_rwsem(&l->rw);
	atomic_set(&l->writers_waiting, 0);
	atomic_set(&l->readers_waiting, 0);
	atomic_set(&l->readers, 0);
	l->writer = NULL;
	l->refused = 0;
	l->force_contended = force_contended;
	return 0;
}
EXPORT_SYMBOL_GPL(tdp_mmu_lock_init);

void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l)
{
	TDP_WARN_ON(rwsem_is_locked(&l->rw));
}
EXPORT_SYMBOL_GPL(tdp_mmu_lock_destroy);

/*
 * The misuse checks of an acquisition (see port/kernel.h).  Returns
 * false when the acquisition is refused: the caller already holds @l for
 * write, which is then counted so that the matching unlock releases
 * nothing.  Otherwise sets *may_sleep to whether the task may wait for
 * the lock by sleeping.
 */
static bool lock_allowed(tdp_mmu_lock_t *l, bool *may_sleep)
{
	if (unlikely(READ_ONCE(l->writer) == current)) {
		tdp_port_lock_misuse("mmu_lock taken by a task that already "
				     "holds it for write (locks never nest); "
				     "refused");
		l->refused++;
		return false;
	}
	*may_sleep = true;
	if (likely(!tdp_port_may_not_sleep()))
		return true;
	if (rcu_preempt_depth())
		tdp_port_lock_misuse("mmu_lock (a sleeping lock) taken inside "
				     "tdp_walk_begin()/tdp_walk_end() or another "
				     "RCU read-side section; taken anyway");
	else
		tdp_port_lock_misuse("mmu_lock (a sleeping lock) taken in "
				     "atomic context (preemption or interrupts "
				     "off, or a non-preemptible RCU reader); "
				     "taken by spinning");
	*may_sleep = preemptible();
	return true;
}

/*
 * Try first, so that only a task that really waits is counted as
 * waiting: a holder's needbreak then means someone is stuck behind it.
 * A task that must not sleep spins on the trylock instead.
 */
void tdp_read_lock(tdp_mmu_lock_t *l)
{
	bool may_sleep;

	if (!lock_allowed(l, &may_sleep))
		return;
	if (!down_read_trylock(&l->rw)) {
		atomic_inc(&l->readers_waiting);
		if (may_sleep)
			down_read(&l->rw);
		else
			while (!down_read_trylock(&l->rw))
				cpu_relax();
		atomic_dec(&l->readers_waiting);
	}
	atomic_inc(&l->readers);
}
EXPORT_SYMBOL_GPL(tdp_read_lock);

void tdp_read_unlock(tdp_mmu_lock_t *l)
{
	if (unlikely(READ_ONCE(l->writer) == current)) {
		if (l->refused) {
			l->refused--;
			return;
		}
		tdp_port_lock_misuse("read unlock of an mmu_lock this task "
				     "holds for write; refused");
		return;
	}
	if (unlikely(atomic_dec_if_positive(&l->readers) < 0)) {
		tdp_port_lock_misuse("read unlock of an mmu_lock no task holds "
				     "for read; refused");
		return;
	}
	up_read(&l->rw);
}
EXPORT_SYMBOL_GPL(tdp_read_unlock);

void tdp_write_lock(tdp_mmu_lock_t *l)
{
	bool may_sleep;

	if (!lock_allowed(l, &may_sleep))
		return;
	if (!down_write_trylock(&l->rw)) {
		atomic_inc(&l->writers_waiting);
		if (may_sleep)
			down_write(&l->rw);
		else
			while (!down_write_trylock(&l->rw))
				cpu_relax();
		atomic_dec(&l->writers_waiting);
	}
	WRITE_ONCE(l->writer, current);
}
EXPORT_SYMBOL_GPL(tdp_write_lock);

void tdp_write_unlock(tdp_mmu_lock_t *l)
{
	if (unlikely(READ_ONCE(l->writer) != current)) {
		tdp_port_lock_misuse("write unlock of an mmu_lock this task "
				     "does not hold for write; refused");
		return;
	}
	if (l->refused) {
		l->refused--;
		return;
	}
	WRITE_ONCE(l->writer, NULL);
	up_write(&l->rw);
}
EXPORT_SYMBOL_GPL(tdp_write_unlock);

bool tdp_port_lock_held_read(tdp_mmu_lock_t *l)
{
	return atomic_read(&l->readers) > 0;
}
EXPORT_SYMBOL_GPL(tdp_port_lock_held_read);

bool tdp_port_lock_held_write(tdp_mmu_lock_t *l)
{
	/* Only the holder can find itself recorded. */
	return READ_ONCE(l->writer) == current;
}
EXPORT_SYMBOL_GPL(tdp_port_lock_held_write);

/* ---- allocation-failure injection ---------------------------------------- */

/* Allocations left before the injected failure; negative: disabled. */
static atomic_long_t fail_countdown = ATOMIC_LONG_INIT(-1);

void tdp_port_fail_alloc_after(long countdown)
{
	atomic_long_set(&fail_countdown, countdown);
}
EXPORT_SYMBOL_GPL(tdp_port_fail_alloc_after);

static bool injected_failure(void)
{
	long n = atomic_long_read(&fail_countdown);

	while (n >= 0) {
		if (atomic_long_try_cmpxchg(&fail_countdown, &n, n - 1))
			return n == 0;
	}
	return false;
}

/* ---- memory -------------------------------------------------------------- */

/*
 * Every allocation is made outside mmu_lock and RCU, from the caller's
 * process context (the engine never allocates under the lock), so it may
 * sleep and reclaim.
 */
#define TDP_GFP (GFP_KERNEL_ACCOUNT | __GFP_ZERO)

void *tdp_zalloc(size_t size)
{
	if (injected_failure())
		return NULL;
	return kmalloc(size, TDP_GFP);
}

void *tdp_table_page_alloc(void)
{
	BUILD_BUG_ON(PAGE_SIZE != TDP_PAGE_SIZE);
	if (injected_failure())
		return NULL;
	return (void *)__get_free_page(TDP_GFP);
}

void *tdp_ext_page_alloc(size_t size)
{
	if (injected_failure())
		return NULL;
	return kmalloc(roundup_pow_of_two(max_t(size_t, size, PAGE_SIZE)),
		       TDP_GFP);
}

