/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The check "whenever mmu_lock is free" (see lockcheck.h).
 *
 * A thread of its own asks for mmu_lock for write, through
 * tdp_mmu_exclusive(), about every cfg.lock_check_us microseconds.  The
 * engine promises that while the callback runs no operation is in flight:
 * each one either has not started, has returned, or is parked in a yield
 * of mmu_lock, and it issued the flushes of everything it changed before
 * it yielded.  So every live translation a simulated vCPU holds (TLB entry
 * or paging-structure-cache entry) must be backed by the tree at that
 * moment; one that is not is a flush the engine still owes while it lets
 * others run.  Two checks look: sim_host_check_tlbs_backed() walks each
 * TLB entry's own root, sim_vcpus_check_backed() the loaded root for the
 * TLB and the paging-structure caches.
 *
 * Asking for the lock is also what makes a long zap yield: its iterator
 * gives the lock up when a writer waits.  So the thread both creates the
 * yield points and looks at them.
 */
#include "lockcheck.h"

#include <unistd.h>

#include "host.h"
#include "sim.h"
#include "vcpu.h"

static int check_locked(void *arg)
{
	struct sim *s = arg;

	sim_host_check_tlbs_backed(s);
	sim_vcpus_check_backed(s);
	return 0;
}

static void *lockcheck_main(void *arg)
{
	struct sim *s = arg;

	tdp_thread_register();
	while (!sim_stop_requested(&s->run)) {
		sim_pause_point(&s->run);
		usleep(s->cfg.lock_check_us);
		if (sim_stop_requested(&s->run))
			break;
		/* -ESHUTDOWN only after teardown, which waits for us. */
		if (!tdp_mmu_exclusive(s->mmu, check_locked, s))
			sim_count(&s->stats, SIM_C_CHECK_LOCK_FREE, 1);
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

bool sim_lockcheck_start(struct sim *s)
{
	if (!s->cfg.lock_check_us || s->replay)
		return false;
	s->lockcheck_started =
		!pthread_create(&s->lockcheck_thread, NULL, lockcheck_main, s);
	return s->lockcheck_started;
}

void sim_lockcheck_join(struct sim *s)
{
	if (s->lockcheck_started)
		pthread_join(s->lockcheck_thread, NULL);
	s->lockcheck_started = false;
}
