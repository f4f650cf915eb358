/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Driving the simulator step by step, for tests that need a precise
 * sequence instead of the threaded scenario.  The calling thread plays
 * the named vCPU (or the host); every call leaves the vCPU out of guest
 * mode, with its TLB as the operation left it.  sim_create(), sim_finish()
 * and the checks are in sim.h.
 */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include "sim.h"

/* Guest access / conversion on vCPU @vcpu (see guest.h). */
int sim_step_access(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		    bool write);
int sim_step_convert(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		     uint64_t n, bool to_private);

/* Host events (see host.h); slot deletion offlines the regions itself. */
void sim_step_host_unmap(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_slot_delete(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_prefault(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_step_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/* The guest's current view of @gfn. */
enum guest_page_state sim_step_guest_state(struct sim *s, tdp_gfn_t gfn);

#endif /* SIM_SCENARIO_H */
