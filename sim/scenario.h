/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scenarios of a created simulation (sim.h): its workload run on
 * threads with stop-the-world checks, then the TD torn down; or the
 * simulation driven step by step, for tests that need a precise sequence
 * instead: the calling thread plays the named vCPU (or the host), and
 * every call leaves the vCPU out of guest mode, with its TLB as the
 * operation left it.  The checks are in consistency.h.
 */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include "sim.h"

/*
 * sim_run() - run the workload and tear down: sim_run_workload(), then
 * sim_finish().  Returns the number of violations.
 */
uint64_t sim_run(struct sim *s);

/*
 * sim_run_tds() - several TDs (sim_create_tds()): every TD's workload on
 * its own thread at once, then each TD torn down in order (sim_finish())
 * while the later ones still exist.  Returns the violations of all.
 */
uint64_t sim_run_tds(struct sim **tds, unsigned int n);

/*
 * sim_run_workload() - run the workload and stop with everything still
 * mapped: vCPU threads and a host-event thread for cfg.duration seconds,
 * or the vCPUs replaying cfg.trace until it ends, with quiesce checks;
 * then the final quiesce check (and, for a trace, sim_replay_check()).
 * Returns the number of violations so far.
 */
uint64_t sim_run_workload(struct sim *s);

/* ---- step by step -------------------------------------------------------- */

/* Guest access / conversion on vCPU @vcpu (see guest.h). */
int sim_step_access(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		    bool write);
int sim_step_convert(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		     uint64_t n, bool to_private);

/* The guest's measurement check on vCPU @vcpu (see guest.h). */
int sim_step_check_measurement(struct sim *s, unsigned int vcpu);

/* Host events (see host.h); slot deletion offlines the regions itself. */
void sim_step_host_unmap(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_slot_delete(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_prefault(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_invalidate_root(struct sim *s);

/* A migration round, and the final round with its check (migrate.h). */
bool sim_step_migrate_round(struct sim *s);
uint64_t sim_step_migrate_finish(struct sim *s);

/* Guest access to MMIO window page @k on vCPU @vcpu; a layout change of
 * page @k (mmio.h). */
int sim_step_mmio_access(struct sim *s, unsigned int vcpu, unsigned int k,
			 bool write);
void sim_step_mmio_flip(struct sim *s, unsigned int k);

/* The guest's current view of @gfn. */
enum guest_page_state sim_step_guest_state(struct sim *s, tdp_gfn_t gfn);

#endif /* SIM_SCENARIO_H */
