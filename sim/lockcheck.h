/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lock-free check: a thread that takes mmu_lock for write now and
 * then (tdp_mmu_exclusive()) and checks that every translation the
 * simulated vCPUs hold is backed by the tree.  cfg.lock_check_us = 0
 * turns it off; never in a trace replay.
 */
#ifndef SIM_LOCKCHECK_H
#define SIM_LOCKCHECK_H

#include <stdbool.h>

struct sim;

/* Start the thread if configured; true if it runs (counted as a worker). */
bool sim_lockcheck_start(struct sim *s);

/* Join it after the run's stop request. */
void sim_lockcheck_join(struct sim *s);

#endif /* SIM_LOCKCHECK_H */
