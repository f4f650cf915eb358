/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parked walker: a thread that walks libtdp's direct tree the way
 * hardware or a lockless reader does (inside tdp_walk_begin/end), stops
 * in a table of 4 KiB leaves and stays there, re-reading the entry of the
 * parent table that links it.  When the engine unlinks the table while
 * the walker is inside (a range zap, tdp_zap_all(), the zap of an
 * invalidated root, a huge-page recovery), the table must end up holding
 * only FROZEN entries (tdp/lookup.h: "their entries are frozen one by
 * one after the unlink"), so that a walker still inside can never take
 * one of them for a usable entry again: the walker polls until every
 * entry reads FROZEN and reports a violation if that does not happen
 * within SIM_WALKER_FREEZE_BOUND seconds.
 *
 * It parks preferably where the next unlink is likely: in the region the
 * host deletes next (sim_walker_next_slot_region()), or in a table whose
 * 512 leaves collapse into one 2 MiB leaf, which a recovery of the
 * shared alias replaces.  Every root invalidation and tdp_zap_all()
 * unlinks whichever table it is in.
 */
#ifndef SIM_WALKER_H
#define SIM_WALKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

#include "rng.h"

struct sim;

/* Longest park in one table (seconds), and the bound on the freeze. */
#define SIM_WALKER_PARK_MAX 0.2
#define SIM_WALKER_FREEZE_BOUND 2.0
/* How long a demote for a promote waits for the walker to walk in. */
#define SIM_WALKER_HANDOFF 0.05

struct sim_walker {
	/* The thread runs (started with the vCPUs): written by the run's
	 * thread, read by the event thread (atomics). */
	bool started;
	pthread_t thread;
	/* Engine context to load the direct root; the walker thread's. */
	struct tdp_vcpu *ctx;
	struct sim_rng rng; /* the walker thread's */
	/*
	 * Dense number of the region the host's next slot deletion
	 * deletes, + 1 (0: none chosen yet).  Written by the event thread,
	 * read by the walker (atomics).
	 */
	uint64_t next_slot_region;
	/*
	 * Dense number of the region whose private 2 MiB leaf the host
	 * demoted last for a recovery to promote, + 1 (0: none).  Written
	 * by the event thread, read by the walker (atomics).
	 */
	uint64_t promote_region;
	/* That region + 1 while the walker is parked in its mirror table
	 * (0: not); written by the walker, read by the event thread. */
	uint64_t mirror_parked;
};

/*
 * Start the walker thread (counted as a worker of s->run); false if it
 * could not start.  sim_walker_join() waits for it after the stop.
 */
bool sim_walker_start(struct sim *s);
void sim_walker_join(struct sim *s);

/*
 * The region (dense number) the next slot deletion takes: chosen ahead
 * so that the walker can park in it first.  Event thread only.
 */
uint64_t sim_walker_take_slot_region(struct sim *s, struct sim_rng *rng);

/*
 * A promote with the walker inside: a random region is deleted and
 * re-added while the guest has it offline, pre-faulted whole (512
 * PENDING leaves of one 2 MiB chunk in its mirror table, or a 2 MiB leaf
 * demoted in place), the walker is pointed at the table and, once it is
 * parked inside (or after SIM_WALKER_HANDOFF), the region is recovered:
 * the promote unlinks the table.  Event thread only.
 */
void sim_walker_promote_event(struct sim *s, struct sim_rng *rng);

#endif /* SIM_WALKER_H */
