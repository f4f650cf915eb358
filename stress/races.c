/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * races: named tests for the race classes of a concurrent TDP MMU, one per
 * class (the table tests[] below).  Each test's comment names
 * the race it targets and how it provokes it.
 *
 * Usage: races [-T test] [-s seed] [-t seconds] [-n max_ops] [-j threads]
 *        races -l
 * Without -T every test runs in turn.  TDP_TEST_QUICK=1 shortens each
 * test to about a second.  The seed is printed first; rerun with -s to
 * repeat a run's choices (thread interleavings differ).
 */
#include "races.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct race_test {
	const char *name;
	void (*run)(const struct sx_opts *o);
	const char *target;
};

/* clang-format off */
static const struct race_test tests[] = {
	{ "frozen_owner",       race_frozen_owner,
	  "a frozen entry written by a non-owner" },
	{ "parent_first",       race_parent_first,
	  "a child reaching the backend before its parent" },
	{ "rollback_stale",     race_rollback_stale,
	  "rollback that leaves the caller a stale SPTE" },
	{ "unlink_waits",       race_unlink_waits,
	  "an unlinker that does not wait for a concurrent freezer" },
	{ "dirty_wlock",        race_dirty_wlock,
	  "a dirty bit lost under the write lock" },
	{ "yield_restart",      race_yield_restart,
	  "an iterator that advances instead of restarting after a yield" },
	{ "yield_restart_slow", race_yield_restart_slow,
	  "yield_restart with private faults held frozen in a slow set_leaf" },
	{ "yield_progress",     race_yield_progress,
	  "a walk that yields without progress" },
	{ "flush_before_yield", race_flush_before_yield,
	  "a flush skipped before a yield" },
	{ "flush_range_base",   race_flush_range_base,
	  "a TLB flush for a removed table covering the wrong range" },
	{ "rcu_reader",         race_rcu_reader,
	  "a table freed before a lockless reader left" },
	{ "root_zap_ref",       race_root_zap_ref,
	  "a root freed while a zap still needs it" },
	{ "root_zap_once",      race_root_zap_once,
	  "an invalidated root zapped twice" },
	{ "root_alloc_once",    race_root_alloc_once,
	  "two roots allocated for one role" },
	{ "inval_fault",        race_inval_fault,
	  "a fault that maps after an overlapping invalidation began" },
};
/* clang-format on */

#define NR_TESTS (sizeof(tests) / sizeof(tests[0]))

/* ---- a backend callback that blocks ------------------------------------- */

static void race_hold_hook(void *arg, enum ts_call call, tdp_gfn_t gfn,
			   int level)
{
	struct race_hold *h = arg;
	int armed = HOLD_ARMED;
	double give_up;

	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != HOLD_ARMED ||
	    (int)call != __atomic_load_n(&h->call, __ATOMIC_RELAXED) ||
	    gfn != __atomic_load_n(&h->gfn, __ATOMIC_RELAXED) ||
	    level != __atomic_load_n(&h->level, __ATOMIC_RELAXED))
		return;
	if (!__atomic_compare_exchange_n(&h->state, &armed, HOLD_HELD, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	__atomic_add_fetch(&h->held_count, 1, __ATOMIC_RELAXED);
	give_up = sx_now() + RACE_HANG_S;
	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != HOLD_RELEASED) {
		if (sx_now() > give_up) {
			SX_CHECK(false, "held backend callback never released");
			break;
		}
		tdp_udelay(20);
	}
	__atomic_store_n(&h->state, HOLD_IDLE, __ATOMIC_RELEASE);
}

void race_hold_install(struct race_hold *h, struct ts_backend *rec)
{
	*h = (struct race_hold){ .state = HOLD_IDLE };
	ts_set_hook(rec, race_hold_hook, h);
}

void race_hold_arm(struct race_hold *h, enum ts_call call, tdp_gfn_t gfn,
		   int level)
{
	__atomic_store_n(&h->call, (int)call, __ATOMIC_RELAXED);
	__atomic_store_n(&h->gfn, gfn, __ATOMIC_RELAXED);
	__atomic_store_n(&h->level, level, __ATOMIC_RELAXED);
	__atomic_store_n(&h->state, HOLD_ARMED, __ATOMIC_RELEASE);
}

bool race_hold_wait(struct race_hold *h, double timeout_s)
{
	double give_up = sx_now() + timeout_s;

	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != HOLD_HELD) {
		if (sx_now() > give_up)
			return SX_CHECK(false,
					"no backend callback reached the hold "
					"within %.1fs",
					timeout_s);
		tdp_udelay(20);
	}
	return true;
}

void race_hold_release(struct race_hold *h)
{
	int held = HOLD_HELD;

	if (!__atomic_compare_exchange_n(&h->state, &held, HOLD_RELEASED, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		race_hold_disarm(h);
		return;
	}
	/* The held thread returns the state to idle when it leaves. */
	while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == HOLD_RELEASED)
		sched_yield();
}

void race_hold_disarm(struct race_hold *h)
{
	int armed = HOLD_ARMED;

	__atomic_compare_exchange_n(&h->state, &armed, HOLD_IDLE, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* ---- helpers -------------------------------------------------------------- */

tdp_gfn_t race_fresh_region(unsigned int i)
{
	/* 256 entries of 512 GiB below the shared bit, 512 of 1 GiB each;
	 * the 2 MiB offset leaves the last block free, so region + 2 MiB
	 * is still inside the same 1 GiB entry. */
	tdp_gfn_t l4 = i % 256, l3 = (i / 256) % 512;

	return l4 * TS_PAGES_512G + l3 * TS_PAGES_1G +
	       ((tdp_gfn_t)i * 37 % 511) * TS_PAGES_2M;
}

struct tdp_vcpu *race_vcpu(struct ts_env *e)
{
	struct tdp_vcpu *v = NULL;
	int ret = tdp_vcpu_create(e->mmu, &v);

	SX_CHECK(ret == 0, "tdp_vcpu_create: %d", ret);
	return v;
}

int race_fault(struct ts_env *e, struct tdp_vcpu *v, tdp_gfn_t gfn,
	       bool private, unsigned int prot, int max_level)
{
	return sx_fault(e, v, gfn, private, prot, max_level, RACE_HANG_S, NULL);
}

bool race_fault_ok(int ret, tdp_gfn_t gfn, bool private)
{
	return SX_CHECK(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS,
			"fault of %s GFN %#" PRIx64 " returned %d",
			private ? "private" : "shared", gfn, ret);
}

tdp_spte_t race_lookup(struct ts_env *e, tdp_gfn_t gfn, bool private,
		       int *level)
{
	tdp_spte_t spte = 0;
	int lvl = 0, ret;

	ret = tdp_lookup(e->mmu, gfn, ts_alias(private), &spte, &lvl);
	SX_CHECK(ret == 0, "tdp_lookup(%#" PRIx64 "): %d", gfn, ret);
	if (level)
		*level = lvl;
	return spte;
}

/* ---- driver ---------------------------------------------------------------- */

static const char *test_name(size_t i)
{
	return tests[i].name;
}

static void run_test(const struct sx_opts *o, size_t i)
{
	printf("races: %s: targets %s\n", tests[i].name, tests[i].target);
	fflush(stdout);
	tests[i].run(o);
}

int main(int argc, char **argv)
{
	struct sx_opts o;
	int ret;

	ret = sx_parse_opts(argc, argv, &o, 0.8, 5.0, 3);
	if (ret)
		return ret;
	if (o.list) {
		for (size_t i = 0; i < NR_TESTS; i++)
			printf("%-20s %s\n", tests[i].name, tests[i].target);
		return 0;
	}
	printf("races: seed=%" PRIu64 " seconds=%.2f threads=%d\n", o.seed,
	       o.seconds, o.threads);
	fflush(stdout);

	return sx_run_tests("races", &o, NR_TESTS, test_name, run_test);
}
