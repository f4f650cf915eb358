/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Named race-class tests (stress/races.c runs them).  Each test targets one
 * race class of a concurrent TDP MMU (stress/races.c lists them) and says
 * in its comment which one and how it provokes it.  Where a race can only be provoked
 * deterministically with a white-box hook, the test uses one: a private
 * backend callback that blocks until the test releases it (the entry
 * stays frozen and mmu_lock held for read meanwhile), the engine's own
 * mmu_lock, and a simulated CPU that sets accessed and dirty bits.
 *
 * Every test is bounded by opts->seconds and opts->max_ops, seeded by
 * opts->seed, and reports through SX_CHECK.
 */
#ifndef TDP_STRESS_RACES_H
#define TDP_STRESS_RACES_H


#include "common.h"

/* ---- a backend callback that blocks ------------------------------------- */

enum race_hold_state {
	HOLD_IDLE,
	HOLD_ARMED,    /* the next matching callback will block */
	HOLD_HELD,     /* a callback is blocked in the backend */
	HOLD_RELEASED, /* the blocked callback may return */
};

/*
 * One armed target: the map callback @call for the entry (@level, @gfn).
 * Fields are atomics; the recorder's hook is race_hold_hook with this
 * struct as its argument.
 */
struct race_hold {
	int state;
	int call;
	tdp_gfn_t gfn;
	int level;
	int held_count; /* atomic: callbacks that blocked so far */
};

/* Install the hook on @rec (before other threads use the MMU). */
void race_hold_install(struct race_hold *h, struct ts_backend *rec);
void race_hold_arm(struct race_hold *h, enum ts_call call, tdp_gfn_t gfn,
		   int level);
/* Wait until a callback is held; false (a failed check) after @timeout_s. */
bool race_hold_wait(struct race_hold *h, double timeout_s);
void race_hold_release(struct race_hold *h);
/* Disarm a hold that never triggered. */
void race_hold_disarm(struct race_hold *h);

/* ---- helpers -------------------------------------------------------------- */

/*
 * A 2 MiB-aligned region under a 1 GiB entry no other @i names; for
 * i < 256 also under a fresh 512 GiB entry, so faulting it links a table
 * at every level.
 */
tdp_gfn_t race_fresh_region(unsigned int i);

/* A vCPU context for the calling thread (a failed check on error). */
struct tdp_vcpu *race_vcpu(struct ts_env *e);

/* Fault with the default retry policy (seconds of retries before giving
 * up); returns the result. */
int race_fault(struct ts_env *e, struct tdp_vcpu *v, tdp_gfn_t gfn,
	       bool private, unsigned int prot, int max_level);

/* Check that a fault result is FIXED or SPURIOUS. */
bool race_fault_ok(int ret, tdp_gfn_t gfn, bool private);

/* The current SPTE of the entry a lookup of @gfn stops at. */
tdp_spte_t race_lookup(struct ts_env *e, tdp_gfn_t gfn, bool private,
		       int *level);

/* Seconds a blocked thread may take before the test calls it a hang. */
#define RACE_HANG_S 30.0

/* ---- the tests -------------------------------------------------------------- */

void race_frozen_owner(const struct sx_opts *o);
void race_parent_first(const struct sx_opts *o);
void race_rollback_stale(const struct sx_opts *o);
void race_unlink_waits(const struct sx_opts *o);
void race_dirty_wlock(const struct sx_opts *o);
void race_yield_restart(const struct sx_opts *o);
void race_yield_restart_slow(const struct sx_opts *o);
void race_yield_progress(const struct sx_opts *o);
void race_flush_before_yield(const struct sx_opts *o);
void race_flush_range_base(const struct sx_opts *o);
void race_rcu_reader(const struct sx_opts *o);
void race_root_zap_ref(const struct sx_opts *o);
void race_root_zap_once(const struct sx_opts *o);
void race_root_alloc_once(const struct sx_opts *o);
void race_inval_fault(const struct sx_opts *o);

#endif /* TDP_STRESS_RACES_H */
