/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live migration of the guest's shared memory (--migrate): the host
 * copies every shared page to a destination while the guest keeps
 * writing, in dirty-logging rounds over the shared alias.
 *
 *   round 0   tdp_clear_dirty_range() of all guest memory (logging on),
 *             then every shared page copied;
 *   round k   tdp_harvest_dirty() (dirty bits read and cleared, the TLBs
 *             flushed by the engine before it returns), plus the pages
 *             the host marked dirty itself (mark_dirty for a dirty leaf
 *             a zap removed; MapGPA and slot deletion, which change a
 *             page's content without a guest write), then each of them
 *             copied;
 *   final     with every worker stopped, one more round, then the check:
 *             every shared page's destination copy equals its content.
 *             A page written after the round that last copied it and
 *             never reported dirty differs: a dirty_log violation.
 *
 * The simulated CPU sets the accessed and dirty bits of direct-tree
 * leaves as hardware does (vcpu.c): a write through a TLB entry that
 * was not made dirty re-walks and sets the dirty bit.
 *
 * Guest memory must be contiguous from GFN 0 (not a trace replay).
 * Threads: the rounds run on a migration thread (a worker with pause
 * points); the final round runs on the owner thread after every worker
 * stopped.  Only the thread running a round touches dest, copied and
 * rounds; marked is set with atomic ORs from any thread and taken with
 * an atomic exchange per word by the round.
 */
#ifndef SIM_MIGRATE_H
#define SIM_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "rng.h"

struct sim;

#define SIM_MIGRATE_MAX_ROUNDS 64

/*
 * The numbers of one round, X(name): dirtied, the pages found dirty
 * (harvested or marked); harvested, the bits tdp_harvest_dirty() set;
 * marked, the pages the host marked dirty itself; redirtied, those dirty
 * again after the previous round copied them; copied, the shared pages
 * copied.
 */
#define SIM_MIGRATE_ROUND_FIELDS(X)                                            \
	X(dirtied) X(harvested) X(marked) X(redirtied) X(copied)

struct sim_migrate_round {
#define SIM_MIGRATE_ROUND_FIELD(name) uint64_t name;
	SIM_MIGRATE_ROUND_FIELDS(SIM_MIGRATE_ROUND_FIELD)
#undef SIM_MIGRATE_ROUND_FIELD
};

struct sim_migration {
	bool enabled;        /* cfg.migrate; immutable */
	uint64_t nr_words;   /* of the bitmaps; immutable */
	uint64_t *marked;    /* host-marked dirty pages; atomic */
	uint64_t *harvest;   /* scratch for tdp_harvest_dirty */
	uint64_t *dest;      /* destination copy of each page (a tag) */
	uint32_t *copied_in; /* round that last copied a page, + 1 */
	struct sim_migrate_round rounds[SIM_MIGRATE_MAX_ROUNDS];
	unsigned int nr_rounds;
	uint64_t final_checked; /* shared pages compared at the end */
	pthread_t thread;
	bool thread_started;
	/* sim_recover_shared_boot() ran; the host-event thread's. */
	bool boot_recovered;
};

int sim_migrate_init(struct sim *s);
void sim_migrate_fini(struct sim *s);

/* Host side: pages [gfn, gfn + n) (unaliased) changed behind the dirty
 * log; any GFN outside guest memory is ignored. */
void sim_migrate_mark(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/* One round (round 0 first); returns false once no more rounds fit. */
bool sim_migrate_round(struct sim *s);

/* The migration thread: rounds until the run stops. */
int sim_migrate_start(struct sim *s);
void sim_migrate_join(struct sim *s);

/*
 * With every worker stopped: the final round and the check.  Returns the
 * number of pages found missed.
 */
uint64_t sim_migrate_finish(struct sim *s);

/* ---- dirty logging in the default scenario ------------------------------ */

/*
 * A dirty-logging host event over the shared alias of the guest memory
 * around @gfn (unaliased), the one the vCPUs are writing: eager split,
 * write-protect, clear-dirty (range or masked) or a harvest, at random,
 * racing with the CPU's dirty bits.
 */
void sim_dirty_log_event(struct sim *s, struct sim_rng *rng, tdp_gfn_t gfn);
/*
 * Huge-page recovery of the shared alias of the 2 MiB region of @gfn
 * (unaliased), after an eager split of it half of the time.
 */
void sim_recover_shared_event(struct sim *s, struct sim_rng *rng,
			      tdp_gfn_t gfn);

/*
 * Every region all shared now through the same steps, once (a khugepaged
 * pass after boot): the guest's conversions soon leave few regions all
 * shared, and recovery needs one.
 */
void sim_recover_shared_boot(struct sim *s);

#endif /* SIM_MIGRATE_H */
