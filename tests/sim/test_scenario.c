/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A short threaded scenario against the real engine must finish with no
 * violation, and must actually have exercised every part of the model
 * (so a silent simulator cannot pass for a strict one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "scenario.h"

/* Seconds per run; TDPSIM_TEST_SECONDS overrides. */
static double duration(void)
{
	const char *d = getenv("TDPSIM_TEST_SECONDS");

	return d ? atof(d) : 1.5;
}

static void run(bool huge)
{
	struct sim_config cfg;
	struct sim *s;
	const struct sim_stats *st;
	struct sim_stats snap;

	sim_config_default(&cfg);
	cfg.nr_vcpus = 3;
	cfg.guest_bytes = 32ULL << 20;
	cfg.duration = duration();
	cfg.check_interval = 0.5;
	cfg.convert_pct = 0.5;
	cfg.event_rate = 200;
	cfg.huge = huge;
	cfg.progress = false;
	cfg.seed = huge ? 11 : 12;
	assert_int_equal(sim_create(&cfg, &s), 0);
	assert_int_equal(sim_run(s), 0);
	sim_stats_snapshot(&s->stats, &snap);
	st = &snap;

	assert_int_equal(sim_report_total(&s->report), 0);
	assert_false(s->engine_dead);
	/* Every part ran. */
	assert_true(st->c[SIM_C_FAULT_PRIVATE_FIXED] > 0);
	assert_true(st->c[SIM_C_FAULT_SHARED_FIXED] > 0);
	assert_true(st->c[SIM_C_CONV_TO_SHARED] > 0);
	assert_true(st->c[SIM_C_CONV_TO_PRIVATE] > 0);
	assert_true(st->c[SIM_C_ACCEPT_4K] > 0);
	assert_true(st->c[SIM_C_ACCEPT_SIZE_MISMATCH] + st->c[SIM_C_ACCEPT_2M] >
		    0);
	assert_true(st->c[SIM_C_FLUSH_RANGE] > 0);
	assert_true(st->c[SIM_C_CHECK_ACCESS] > 0);
	assert_true(st->c[SIM_C_CHECK_QUIESCE] >= 2);
	assert_true(st->c[SIM_C_EVENT_UNMAP] > 0);
	assert_true(st->seamcall[SIM_SC_SEPT_ADD][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_PAGE_AUG_4K][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_RANGE_BLOCK][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_TRACK][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_PAGE_REMOVE][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_SEPT_REMOVE][SIM_OUT_OK] > 0);
	assert_true(st->seamcall[SIM_SC_PAGE_ACCEPT][SIM_OUT_OK] > 0);
	/* Injected busy statuses hit both paths. */
	assert_true(st->seamcall[SIM_SC_PAGE_AUG_4K][SIM_OUT_BUSY_INJECTED]);
	assert_true(st->seamcall[SIM_SC_PAGE_REMOVE][SIM_OUT_BUSY_INJECTED]);
	if (huge)
		assert_true(st->seamcall[SIM_SC_PAGE_AUG_2M][SIM_OUT_OK] > 0);
	else
		assert_int_equal(st->seamcall[SIM_SC_PAGE_AUG_2M][SIM_OUT_OK],
				 0);
	sim_destroy(s);
}

static void test_scenario_huge(void **state)
{
	(void)state;
	run(true);
}

static void test_scenario_small(void **state)
{
	(void)state;
	run(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenario_huge),
		cmocka_unit_test(test_scenario_small),
	};

	return cmocka_run_group_tests_name("sim-scenario", tests, NULL, NULL);
}
