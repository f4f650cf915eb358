/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator's demote_leaf end to end: the guest accepts a 2 MiB
 * private page, writes tagged data into it, then converts a run in its
 * middle to shared.  The engine demotes the leaf through the simulated
 * module (BLOCK, TRACK, kick, PAGE.DEMOTE into a fresh S-EPT page) and
 * removes only the run; every other page keeps its frame and its
 * contents, which the guest's tagged reads check from both vCPUs.  Then
 * the same with busy injected into every SEAMCALL: busy BLOCKs are
 * answered -EBUSY and retried, and still nothing is lost.  The run ends
 * with a quiesce check (mirror against Secure EPT) and a TD teardown
 * that must leave no page behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "strict.h"

/* First GFN of the first region the guest converts and accepts whole. */
static tdp_gfn_t huge_region_base(struct sim *s)
{
	for (uint64_t r = 0; r < s->nr_regions; r++)
		if (s->guest.region_huge[r])
			return sim_layout_region_gfn(&s->layout, r);
	fail_msg("no huge region");
	return 0;
}

/* The level of the private leaf that maps @gfn in the mirror, 0 if none. */
static int private_leaf_level(struct sim *s, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t spte = 0;
	int level = 0;

	assert_int_equal(tdp_lookup(s->mmu, gfn, TDP_ALIAS_PRIVATE, &spte,
				    &level),
			 0);
	return tdp_spte_is_present(fmt, spte) ? level : 0;
}

static struct tdp_stats engine_stats(struct sim *s)
{
	struct tdp_stats st;

	assert_int_equal(tdp_mmu_get_stats(s->mmu, &st), 0);
	return st;
}

/*
 * Accept and fill one huge region, convert [base + from, base + to) to
 * shared with @busy_ppm injected busy answers per SEAMCALL, and check
 * that exactly that run lost its private mapping and no page lost data.
 */
static void run_partial_conversion(uint32_t busy_ppm, unsigned int from,
				   unsigned int to)
{
	static const unsigned int probes[] = { 0, 1, 100, 199, 216, 300, 510,
					       511 };
	struct sim_config cfg;
	struct tdp_stats st;
	struct sim *s;
	tdp_gfn_t base;

	base_config(&cfg);
	cfg.huge = true;
	cfg.print_limit = 20; /* a failure shows its reports */
	s = create(&cfg);
	base = huge_region_base(s);

	/* The guest accepts the region as one 2 MiB page and writes it. */
	assert_int_equal(sim_step_access(s, 0, base + 100, true), 0);
	assert_int_equal(private_leaf_level(s, base), TDP_LEVEL_2M);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(sim_step_access(s, i % 2, base + probes[i],
						 true),
				 0);

	tdx_module_set_injection(s->module, busy_ppm, 0);
	assert_int_equal(sim_step_convert(s, 1, base + from, to - from, false),
			 0);
	tdx_module_set_injection(s->module, 0, 0);

	st = engine_stats(s);
	assert_int_equal(st.demotes, 1);
	assert_int_equal(st.demote_errors, 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_DEMOTE_PRIVATE), 1);
	fprintf(stderr, "busy ppm %u: demote_busy %llu, zaps repeated %llu, "
		"removal SEAMCALLs retried %llu\n", busy_ppm,
		(unsigned long long)st.demote_busy,
		(unsigned long long)sim_counter_read(&s->stats, SIM_C_RETRY_ZAP_BUSY),
		(unsigned long long)sim_counter_read(&s->stats, SIM_C_RETRY_REMOVE_BUSY));
	if (busy_ppm)
		assert_true(st.demote_busy > 0 &&
			    sim_counter_read(&s->stats, SIM_C_RETRY_REMOVE_BUSY) > 0);
	for (unsigned int i = 0; i < SIM_REGION_PAGES; i++) {
		bool in_run = i >= from && i < to;

		assert_int_equal(private_leaf_level(s, base + i),
				 in_run ? 0 : TDP_LEVEL_4K);
	}
	/* Tagged reads of the written pages, from both vCPUs. */
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (probes[i] >= from && probes[i] < to)
			continue;
		assert_int_equal(sim_step_access(s, 0, base + probes[i], false),
				 0);
		assert_int_equal(sim_step_access(s, 1, base + probes[i], false),
				 0);
	}
	/* The converted run is the guest's shared memory now. */
	assert_int_equal(sim_step_guest_state(s, base + from), GUEST_SHARED);
	assert_int_equal(sim_step_access(s, 0, base + from, true), 0);
	assert_int_equal(sim_step_access(s, 1, base + to - 1, false), 0);

	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_false(s->engine_dead);
	sim_destroy(s);
}

static void test_partial_conversion(void **state)
{
	(void)state;
	run_partial_conversion(0, 200, 216);
	run_partial_conversion(0, 0, 1);
	run_partial_conversion(0, 505, 512);
}

static void test_partial_conversion_busy(void **state)
{
	(void)state;
	/* Nine SEAMCALLs in ten busy: BLOCK is retried by the engine, TRACK
	 * and PAGE.DEMOTE inside the backend with vCPUs held out. */
	run_partial_conversion(900000, 200, 216);
}

/*
 * The fault path and the way back: a 4 KiB pre-fault below the guest's
 * accepted 2 MiB page demotes it under the read lock (the backend's
 * demote from a fault), no write lock taken; a host recovery promotes it
 * back (BLOCK, TRACK, kick, PAGE.PROMOTE; the S-EPT page goes back to the
 * host); every page keeps its data through both.  Then a conversion of
 * one page and back leaves pages whose frames are no longer contiguous:
 * the engine does not offer that table, and the page stays split.
 */
static void test_fault_demote_then_promote(void **state)
{
	static const unsigned int probes[] = { 0, 77, 300, 511 };
	struct sim_config cfg;
	struct tdp_stats st;
	struct sim *s;
	tdp_gfn_t base;

	(void)state;
	base_config(&cfg);
	cfg.huge = true;
	cfg.print_limit = 20;
	s = create(&cfg);
	base = huge_region_base(s);
	assert_int_equal(sim_step_access(s, 0, base + 100, true), 0);
	assert_int_equal(private_leaf_level(s, base), TDP_LEVEL_2M);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(sim_step_access(s, 1, base + probes[i], true),
				 0);

	sim_step_prefault(s, base + 300, 1);
	for (unsigned int i = 0; i < SIM_REGION_PAGES; i++)
		assert_int_equal(private_leaf_level(s, base + i), TDP_LEVEL_4K);
	st = engine_stats(s);
	assert_int_equal(st.fault_demotes, 1);
	assert_int_equal(st.fault_write_locks, 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_DEMOTE_PRIVATE_FAULT), 1);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(sim_step_access(s, i % 2, base + probes[i],
						 false),
				 0);

	sim_step_recover(s, base, SIM_REGION_PAGES);
	assert_int_equal(private_leaf_level(s, base), TDP_LEVEL_2M);
	assert_int_equal(engine_stats(s).promotes, 1);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_PROMOTE_PRIVATE), 1);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(sim_step_access(s, i % 2, base + probes[i],
						 true),
				 0);
	assert_int_equal(sim_check_quiesced(s), 0);

	/* One page to shared and back: a new frame, nothing to promote. */
	assert_int_equal(sim_step_convert(s, 0, base + 77, 1, false), 0);
	assert_int_equal(sim_step_convert(s, 0, base + 77, 1, true), 0);
	sim_step_recover(s, base, SIM_REGION_PAGES);
	assert_int_equal(private_leaf_level(s, base + 77), TDP_LEVEL_4K);
	assert_int_equal(engine_stats(s).promotes, 1);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(sim_step_access(s, 1, base + probes[i], false),
				 0);

	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_false(s->engine_dead);
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial_conversion),
		cmocka_unit_test(test_partial_conversion_busy),
		cmocka_unit_test(test_fault_demote_then_promote),
	};

	return cmocka_run_group_tests_name("sim-backend-demote", tests, NULL,
					   NULL);
}
