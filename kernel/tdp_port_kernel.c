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

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended)
{
	init_rwsem(&l->rw);
	atomic_set(&l->writers_waiting, 0);
	atomic_set(&l->readers_waiting, 0);
	atomic_set(&l->readers, 0);
	l->writer = NULL;
	l->force_contended = force_contended;
	return 0;
}

void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l)
{
	TDP_WARN_ON(rwsem_is_locked(&l->rw));
}

/*
 * Try first, so that only a task that really blocks is counted as
 * waiting: a holder's needbreak then means someone is stuck behind it.
 */
void tdp_read_lock(tdp_mmu_lock_t *l)
{
	if (!down_read_trylock(&l->rw)) {
		atomic_inc(&l->readers_waiting);
		down_read(&l->rw);
		atomic_dec(&l->readers_waiting);
	}
	atomic_inc(&l->readers);
}

void tdp_read_unlock(tdp_mmu_lock_t *l)
{
	TDP_ASSERT(atomic_read(&l->readers) > 0);
	atomic_dec(&l->readers);
	up_read(&l->rw);
}

void tdp_write_lock(tdp_mmu_lock_t *l)
{
	if (!down_write_trylock(&l->rw)) {
		atomic_inc(&l->writers_waiting);
		down_write(&l->rw);
		atomic_dec(&l->writers_waiting);
	}
	WRITE_ONCE(l->writer, current);
}

void tdp_write_unlock(tdp_mmu_lock_t *l)
{
	TDP_ASSERT(READ_ONCE(l->writer) == current);
	WRITE_ONCE(l->writer, NULL);
	up_write(&l->rw);
}

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

