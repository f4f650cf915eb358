/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The replay of a scanned trace (trace_scan.h) as the guest's workload
 * in a running simulation, and its final check.
 *
 * Replay.  A feeder thread reads the trace again and deals the
 * accesses out round robin to one queue per vCPU: access k (counting
 * the addresses that are replayed) goes to vCPU k mod N, so each vCPU
 * replays its share in the program's order and all of them move
 * through the program together.  Each access is a checked guest write.
 * The guest accepts a private page 4 KiB at a time at first touch, or
 * its whole region with huge pages on (a 2 MiB ACCEPT).
 */
#ifndef SIM_TRACE_REPLAY_H
#define SIM_TRACE_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "trace_scan.h"

struct sim;
struct sim_vcpu;

/*
 * What the final check found, per alias (0 private, 1 shared): the
 * touched pages, and the distinct 2 MiB, 1 GiB and 512 GiB regions
 * holding them (index 1, 2, 3: the level of the page table each needs).
 */
struct sim_replay_result {
	bool checked;
	uint64_t pages[2];
	uint64_t regions[2][4];
};

struct sim_replay;

/* Queues for every vCPU; the feeder starts with sim_replay_start(). */
int sim_replay_create(struct sim *s, struct sim_replay **out);
void sim_replay_destroy(struct sim_replay *r);

/* Start the feeder thread.  Returns 0 or a negative errno. */
int sim_replay_start(struct sim_replay *r);
/* Wait for the feeder; it stops early once the simulation stops. */
void sim_replay_join(struct sim_replay *r);

enum sim_replay_next {
	SIM_REPLAY_GOT,  /* an access to replay */
	SIM_REPLAY_WAIT, /* none yet: sim_replay_wait(), then ask again */
	SIM_REPLAY_DONE, /* this vCPU's share is replayed */
};

/* The next access of vCPU @vcpu (never blocks). */
enum sim_replay_next sim_replay_next(struct sim_replay *r, unsigned int vcpu,
				     tdp_gfn_t *gfn);
/* Wait a few milliseconds at most for vCPU @vcpu's next access. */
void sim_replay_wait(struct sim_replay *r, unsigned int vcpu);

/*
 * One access of the replay on vCPU @v (in guest mode): a checked guest
 * write of @gfn, which accepts a private page first.
 */
void sim_replay_access(struct sim_vcpu *v, tdp_gfn_t gfn);

/*
 * The feeder's error ("path: line N: ..." if the trace changed since
 * the scan or could not be read again), or NULL.  Call after
 * sim_replay_join().
 */
const char *sim_replay_error(const struct sim_replay *r);

/*
 * sim_replay_check() - after the replay, with every thread stopped and
 * before teardown: every page the trace touched is mapped exactly once,
 * in its alias (a leaf in that tree and none in the other, the guest
 * accepted it if private), and the engine's tables per level equal the
 * distinct regions of the touched pages in each tree (with huge pages
 * off, also its leaves the touched pages).  Returns the violations
 * found.
 */
uint64_t sim_replay_check(struct sim *s);

const struct sim_replay_result *sim_replay_result(const struct sim_replay *r);

#endif /* SIM_TRACE_REPLAY_H */
