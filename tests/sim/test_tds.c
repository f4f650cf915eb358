/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Several TDs on one simulated module: one PAMT and one pool of host
 * memory, one engine MMU per TD.  Step by step: both TDs map private
 * and shared memory from the same pool without sharing a page, and each
 * teardown reclaims exactly its own pages; then a host that maps one
 * TD's page into another TD, and a teardown that reclaims another TD's
 * control page, must each be reported.  A threaded run of three TDs at
 * once ends clean.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scenario.h"
#include "strict.h"

static void create_two(struct sim **tds)
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.nr_tds = 2;
	assert_int_equal(sim_create_tds(&cfg, tds), 0);
	assert_ptr_equal(tds[0]->mem, tds[1]->mem);
	assert_int_equal(tds[1]->owner, 2);
}

static void test_two_tds_clean(void **state)
{
	struct sim *tds[2];
	tdp_gfn_t g;
	tdp_pfn_t p0, p1;

	(void)state;
	create_two(tds);
	g = small_region_gfn(tds[0], 20);
	/* The same GFN in both TDs: private, then shared. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sim_step_access(tds[i], 0, g, true), 0);
		assert_int_equal(sim_step_convert(tds[i], 1, g + 1, 1, false),
				 0);
		assert_int_equal(sim_step_access(tds[i], 1, g + 1, true), 0);
	}
	p0 = sim_host_private_pfn(tds[0], g);
	p1 = sim_host_private_pfn(tds[1], g);
	assert_int_not_equal(p0, p1);
	assert_int_equal(tdx_pamt_get(tds[0]->module, p1).owner, 2);
	assert_int_equal(tdx_pamt_get(tds[1]->module, p0).owner, 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(sim_check_quiesced(tds[i]), 0);
	/* TD 0 goes first; TD 1 keeps every page it had. */
	sim_finish(tds[0]);
	assert_int_equal(sim_report_total(&tds[0]->report), 0);
	assert_int_equal(tdx_pamt_pages_of(tds[1]->module, 1), 0);
	assert_true(tdx_pamt_pages_of(tds[1]->module, 2) > 0);
	assert_int_equal(sim_step_access(tds[1], 0, g, false), 0);
	assert_int_equal(sim_check_quiesced(tds[1]), 0);
	sim_finish(tds[1]);
	assert_int_equal(sim_report_total(&tds[1]->report), 0);
	assert_int_equal(tdx_pamt_pages_of(tds[1]->module, 2), 0);
	sim_destroy_tds(tds, 2);
}

/* TD 1's host backs a shared GFN with TD 0's page. */
static void test_page_in_two_tds(void **state)
{
	struct sim *tds[2];
	tdp_gfn_t g;

	(void)state;
	create_two(tds);
	g = small_region_gfn(tds[0], 30);
	for (int i = 0; i < 2; i++)
		assert_int_equal(sim_step_convert(tds[i], 0, g, 1, false), 0);
	assert_int_equal(sim_step_access(tds[0], 0, g, true), 0);
	/* The broken host: TD 0's frame as TD 1's backing. */
	__atomic_store_n(&tds[1]->host.shared_pfn[g],
			 sim_host_shared_pfn(tds[0], g), __ATOMIC_RELEASE);
	sim_step_access(tds[1], 1, g, false);
	assert_non_null(sim_report_find(&tds[1]->report, SIM_V_PAGE_OWNERSHIP,
					0, g, 1));
	assert_true(sim_check_quiesced(tds[1]) > 0);
	/* Hand the page back before teardown frees it. */
	__atomic_store_n(&tds[1]->host.shared_pfn[g], 0, __ATOMIC_RELEASE);
	tdp_zap_host_unmap(tds[1]->mmu, g, g + 1);
	sim_destroy_tds(tds, 2);
}

/* TD 1's teardown reclaims one of TD 0's control pages too. */
static void test_teardown_takes_other_page(void **state)
{
	struct sim *tds[2];

	(void)state;
	create_two(tds);
	tdx_module_break_reclaim(tds[1]->module, tdx_tdcs_pfn(tds[0]->module, 1));
	sim_finish(tds[1]);
	assert_non_null(sim_report_find(&tds[1]->report, SIM_V_TDX_ERROR,
					TDX_TD_ASSOCIATED_PAGES_EXIST,
					SIM_NO_GFN, SIM_NO_VCPU));
	sim_destroy_tds(tds, 2);
}

/* Three TDs, every vCPU thread at once. */
static void test_three_tds_threaded(void **state)
{
	struct sim_config cfg;
	struct sim *tds[3];

	(void)state;
	sim_config_default(&cfg);
	cfg.nr_tds = 3;
	cfg.nr_vcpus = 2;
	cfg.guest_bytes = 16ULL << 20;
	cfg.duration = 1;
	cfg.check_interval = 0.4;
	cfg.progress = false;
	cfg.print_limit = 5;
	assert_int_equal(sim_create_tds(&cfg, tds), 0);
	assert_int_equal(sim_run_tds(tds, 3), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(sim_counter_read(&tds[i]->stats, SIM_C_ACCESS_WRITE) > 0);
		assert_true(sim_counter_read(&tds[i]->stats, SIM_C_CHECK_QUIESCE) >= 2);
	}
	sim_destroy_tds(tds, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_tds_clean),
		cmocka_unit_test(test_page_in_two_tds),
		cmocka_unit_test(test_teardown_takes_other_page),
		cmocka_unit_test(test_three_tds_threaded),
	};

	return cmocka_run_group_tests_name("sim-tds", tests, NULL, NULL);
}
