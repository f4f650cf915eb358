/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rules of the mailing-list mails the project grew from, each with a
 * negative test:
 *  - ACCEPT's operand is built from named parts, the GPA and a page-size
 *    code; a 1 GiB ACCEPT is refused by this module version (seed 000);
 *  - TDX-usable memory is fixed when the module is initialized: memory
 *    hot-added later backs shared pages only, the onlining hook refuses
 *    it for private use and a SEAMCALL naming it fails (seed 001);
 *  - TD control pages are typed pages the host never reads, reclaimed
 *    last (seed 003);
 *  - a conversion keeps the page out of the guest's page table while its
 *    alias changes, so a stray read (load_unaligned_zeropad) from another
 *    vCPU ends in a clean not-present fault (seed 004).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "module_fixture.h"
#include "strict.h"

/* ---- seed 000: the ACCEPT operand ---------------------------------------- */

static int setup(void **state)
{
	return fx_setup(state, 8 * 512);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

static void test_accept_operand(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t chunk;
	bool flush;

	fx_link_down_to(f, 0, 2);
	chunk = host_mem_alloc_2m(&f->mem, 1, HOST_POOL_TDX, HOST_PAGE_PRIVATE, 0);
	assert_int_not_equal(chunk, 0);
	assert_int_equal(tdx_page_aug(f->mod, 0, 2, chunk, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	/* 1 GiB: refused by this module version, whatever is mapped. */
	assert_status(tdx_page_accept_rcx(f->mod, 0, 0 | TDX_ACCEPT_SIZE_1G,
					  NULL),
		      TDX_OPERAND_INVALID);
	/* No size code 3; reserved bits must be clear. */
	assert_status(tdx_page_accept_rcx(f->mod, 0, 3, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_accept_rcx(f->mod, 0, 0x10, NULL),
		      TDX_OPERAND_INVALID);
	/* A 2 MiB code at a GPA that is not 2 MiB aligned. */
	assert_status(tdx_page_accept_rcx(f->mod, 0,
					  (5ULL << 12) | TDX_ACCEPT_SIZE_2M,
					  NULL),
		      TDX_OPERAND_INVALID);
	/* 4 KiB under the 2 MiB PENDING leaf exits (the host demotes); the
	 * 2 MiB code accepts it. */
	assert_int_equal(tdx_page_accept_rcx(f->mod, 0,
					     (5ULL << 12) | TDX_ACCEPT_SIZE_4K,
					     NULL),
			 TDX_SIM_TD_EXIT_EPT_VIOLATION);
	assert_int_equal(tdx_page_accept_rcx(f->mod, 0, TDX_ACCEPT_SIZE_2M,
					     NULL),
			 TDX_SUCCESS);
	tdx_vp_exit(f->mod, 0);
}

/* A simulator with one rule broken: the bool config field @field set. */
static struct sim *create_broken_at(size_t field)
{
	struct sim_config cfg;

	base_config(&cfg);
	*(bool *)((char *)&cfg + field) = true;
	return create(&cfg);
}

#define CREATE_BROKEN(field) \
	create_broken_at(offsetof(struct sim_config, field))

/* A guest that puts the level number where the size code goes. */
static void test_accept_operand_broken(void **state)
{
	struct sim *s;
	tdp_gfn_t g;

	(void)state;
	s = CREATE_BROKEN(break_accept_operand);
	g = small_region_gfn(s, 16);
	assert_int_not_equal(sim_step_access(s, 0, g, true), 0);
	/* 4 KiB sent as code 1 (2 MiB) at an unaligned GPA. */
	assert_non_null(find(s, SIM_V_ACCEPT, TDX_OPERAND_INVALID, g, 0));
	sim_destroy(s);
}

/* ---- seed 001: TDX-usable memory is fixed at module init ----------------- */

static void test_hotplug_seamcall(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t start, end, p;

	/* Hot-added after the module was configured. */
	assert_true(host_mem_online_hotplug(&f->mem, &start, &end));
	assert_int_equal(end - start, 512);
	p = host_mem_alloc(&f->mem, 1, HOST_POOL_HOTPLUG, HOST_PAGE_PRIVATE, 0);
	assert_true(p >= start && p < end);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_RSVD);
	fx_link_down_to(f, 0, 1);
	assert_status(tdx_page_aug(f->mod, 0, 1, p, NULL),
		      TDX_OPERAND_ADDR_RANGE_ERROR);
	assert_status(tdx_sept_add(f->mod, 512, 2, p, NULL),
		      TDX_OPERAND_ADDR_RANGE_ERROR);
	assert_true(fx_reported(f, TDX_OPERAND_ADDR_RANGE_ERROR));
}

static void test_hotplug_host(void **state)
{
	struct sim_config cfg;
	tdp_pfn_t start, end;
	struct sim *s;
	tdp_gfn_t g;

	(void)state;
	base_config(&cfg);
	s = create(&cfg);
	g = small_region_gfn(s, 100);
	host_mem_hotplug_range(s->mem, &start, &end);
	assert_int_not_equal(start, end);
	/* The onlining hook: never for private use, fine otherwise. */
	assert_int_equal(sim_host_online_hook(s, start, end, true), -EPERM);
	assert_int_equal(sim_host_online_hook(s, start, end, false), 0);
	sim_host_hot_add(s);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_HOTADD_ONLINED), end - start);
	/* A shared page lands in it; a private one does not. */
	assert_int_equal(sim_step_convert(s, 0, g, 1, false), 0);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_true(sim_host_shared_pfn(s, g) >= start &&
		    sim_host_shared_pfn(s, g) < end);
	assert_int_equal(sim_step_access(s, 1, g + 1, true), 0);
	assert_true(sim_host_private_pfn(s, g + 1) < start);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

/* A host that backs private memory from hot-added memory. */
static void test_hotplug_private_broken(void **state)
{
	tdp_pfn_t start, end;
	struct sim *s;
	tdp_gfn_t g;

	(void)state;
	s = CREATE_BROKEN(break_private_hotplug);
	assert_true(host_mem_online_hotplug(s->mem, &start, &end));
	g = small_region_gfn(s, 32);
	assert_int_not_equal(sim_step_access(s, 0, g, true), 0);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_OPERAND_ADDR_RANGE_ERROR,
			     g, SIM_NO_VCPU));
	sim_destroy(s);
}

/* ---- seed 003: TD control pages ------------------------------------------ */

static void test_control_pages(void **state)
{
	struct sim *s = create_wrapped(NULL, NULL);
	tdp_pfn_t tdr = tdx_tdr_pfn(s->module);
	tdp_gfn_t g = small_region_gfn(s, 8);

	(void)state;
	assert_int_equal(tdx_pamt_get(s->module, tdr).type, PAMT_CTL);
	assert_int_equal(tdx_pamt_get(s->module, tdx_tdcs_pfn(s->module, 0))
				 .type, PAMT_CTL);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	/* Teardown: every other page first, the TDR last. */
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_int_equal(tdx_last_reclaimed(s->module), tdr);
	assert_int_equal(tdx_pamt_get(s->module, tdr).type, PAMT_NDA);
	sim_destroy(s);
}

/* A host that reads a control page (or a private one). */
static void test_control_page_read(void **state)
{
	struct sim *s = create_wrapped(NULL, NULL);
	tdp_gfn_t g = small_region_gfn(s, 9);

	(void)state;
	assert_int_equal(sim_host_read_page(s, tdx_tdr_pfn(s->module)),
			 SIM_TAG_POISON);
	assert_non_null(find(s, SIM_V_PAGE_OWNERSHIP, 0, SIM_NO_GFN,
			     SIM_NO_VCPU));
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	sim_host_read_page(s, sim_host_private_pfn(s, g));
	assert_int_equal(sim_report_count(&s->report, SIM_V_PAGE_OWNERSHIP),
			 2);
	sim_destroy(s);
}

/* ---- seed 004: the conversion window ------------------------------------- */

static enum sim_access_result window_result;
static int window_calls;

/* Inside the window, vCPU 1 reads the converting page by accident. */
static void stray_in_window(struct sim *s, tdp_gfn_t gfn, uint64_t n,
			    bool to_private, void *arg)
{
	(void)n;
	(void)to_private;
	(void)arg;
	window_calls++;
	window_result = sim_guest_stray_read(&s->vcpus.v[1], gfn);
	sim_vcpu_exit(&s->vcpus.v[1]);
}

static struct sim *create_window(bool broken)
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.window_hook = stray_in_window;
	cfg.break_conversion_window = broken;
	window_calls = 0;
	return create(&cfg);
}

static void test_conversion_window(void **state)
{
	struct sim *s = create_window(false);
	tdp_gfn_t g = small_region_gfn(s, 48);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	/* Outside a window the stray read goes through. */
	assert_int_equal(sim_guest_stray_read(&s->vcpus.v[1], g),
			 SIM_ACCESS_OK);
	sim_vcpu_exit(&s->vcpus.v[1]);
	assert_int_equal(sim_step_convert(s, 0, g, 1, false), 0);
	assert_int_equal(window_calls, 1);
	assert_int_equal(window_result, SIM_ACCESS_GUEST_PF);
	assert_int_equal(sim_step_convert(s, 0, g, 1, true), 0);
	assert_int_equal(window_calls, 2);
	assert_int_equal(window_result, SIM_ACCESS_GUEST_PF);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_STRAY_NOT_PRESENT), 2);
	/* Unaccepted memory is not mapped by the guest either. */
	assert_int_equal(sim_guest_stray_read(&s->vcpus.v[1], g + 200),
			 SIM_ACCESS_GUEST_PF);
	sim_vcpu_exit(&s->vcpus.v[1]);
	assert_int_equal(sim_step_access(s, 1, g, false), 0);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

static void test_conversion_window_broken(void **state)
{
	struct sim *s = create_window(true);
	tdp_gfn_t g = small_region_gfn(s, 60), h = small_region_gfn(s, 61);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_step_access(s, 0, h, true), 0);
	/* To shared: the private mapping stays while MapGPA zaps it. */
	sim_step_convert(s, 0, g, 1, false);
	assert_int_equal(window_result, SIM_ACCESS_EPT_VIOLATION);
	assert_non_null(find(s, SIM_V_CONVERSION, 0, g, 1));
	/* To private: mapped private before the ACCEPT. */
	assert_int_equal(sim_step_convert(s, 0, h, 1, false), 0);
	sim_step_convert(s, 0, h, 1, true);
	assert_non_null(find(s, SIM_V_CONVERSION, 0, h, 1));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_accept_operand, setup,
						teardown),
		cmocka_unit_test(test_accept_operand_broken),
		cmocka_unit_test_setup_teardown(test_hotplug_seamcall, setup,
						teardown),
		cmocka_unit_test(test_hotplug_host),
		cmocka_unit_test(test_hotplug_private_broken),
		cmocka_unit_test(test_control_pages),
		cmocka_unit_test(test_control_page_read),
		cmocka_unit_test(test_conversion_window),
		cmocka_unit_test(test_conversion_window_broken),
	};

	return cmocka_run_group_tests_name("sim-seeds", tests, NULL, NULL);
}
