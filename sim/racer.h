/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The racing CPU: a thread that sets accessed and dirty bits in the
 * direct tree as fast as it can, on the leaves the host is updating right
 * then, so that the engine's compare-exchange loops meet hardware updates
 * every run instead of by chance (see racer.c and sim/README.md).
 */
#ifndef SIM_RACER_H
#define SIM_RACER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

struct sim;

/*
 * What the racer works on, published by the host (one aim at a time, the
 * event thread only).  @gen is odd while the host writes the other
 * fields and counts aims; the racer reads them between two equal even
 * reads of @gen.  All fields atomic.
 */
struct sim_racer {
	uint64_t gen;
	uint64_t root_pfn;  /* 0: not aimed */
	uint64_t root_level;
	uint64_t start, n;  /* tree GFNs (shared bit included) */
	uint64_t front;	    /* 1: only the first present leaf at or after
			     * start (a zap's front), 0: every leaf of the
			     * range in turn */
	pthread_t thread;   /* run thread only */
	bool started;	    /* run thread only */
};

/* Start the racer thread with the others (not in a replay, nor with
 * host events off); true if it runs (counted as a worker). */
bool sim_racer_start(struct sim *s);
void sim_racer_join(struct sim *s);

/*
 * Aim the racer at [start, start + n) of the tree whose root table is
 * @root_pfn at @root_level (the caller keeps the root referenced until
 * sim_racer_disarm()).  @front: chase the first present leaf only.
 */
void sim_racer_aim(struct sim *s, tdp_pfn_t root_pfn, int root_level,
		   tdp_gfn_t start, uint64_t n, bool front);
void sim_racer_disarm(struct sim *s);

#endif /* SIM_RACER_H */
