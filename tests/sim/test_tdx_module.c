/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated TDX module alone: every SEAMCALL's preconditions fail
 * with their own status, the epoch rule holds, ACCEPT has the real
 * module's outcomes, and protocol errors are reported as violations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "module_fixture.h"

#define SHARED_BIT FX_SHARED_BIT

static int setup(void **state)
{
	return fx_setup(state, 8 * 512);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}


static void test_sept_add_preconditions(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t outside = host_mem_alloc(&f->mem, 1, HOST_POOL_NON_TDX,
					   HOST_PAGE_SEPT, 0);

	/* Child before parent: the walk stops at the FREE root entry. */
	assert_status(tdx_sept_add(f->mod, 0, 3, p, &err),
		      TDX_EPT_WALK_FAILED);
	assert_int_equal(err.level, 4);
	assert_int_equal(err.state, SEPT_FREE);
	assert_true(fx_reported(f, TDX_EPT_WALK_FAILED));
	/* Operands: misaligned, shared, a leaf level. */
	assert_status(tdx_sept_add(f->mod, 1, 4, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_sept_add(f->mod, SHARED_BIT, 4, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_sept_add(f->mod, 0, 1, p, NULL),
		      TDX_OPERAND_INVALID);
	/* A page outside the TDX-usable ranges. */
	assert_status(tdx_sept_add(f->mod, 0, 4, outside, NULL),
		      TDX_OPERAND_ADDR_RANGE_ERROR);
	assert_true(fx_reported(f, TDX_OPERAND_ADDR_RANGE_ERROR));
	assert_int_equal(tdx_sept_add(f->mod, 0, 4, p, NULL), TDX_SUCCESS);
	/* The entry is taken; and the page is already an S-EPT page. */
	assert_status(tdx_sept_add(f->mod, 0, 4, fx_page(f, HOST_PAGE_SEPT), NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_status(tdx_sept_add(f->mod, 1ULL << 27, 4, p, NULL),
		      TDX_PAGE_METADATA_INCORRECT);
	assert_int_equal(tdx_td_child_count(f->mod), 1);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_EPT);
}

static void test_aug_preconditions(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_PRIVATE);
	tdp_pfn_t outside = host_mem_alloc(&f->mem, 1, HOST_POOL_NON_TDX,
					   HOST_PAGE_PRIVATE, 0);
	tdp_pfn_t chunk;

	/* No tables yet. */
	assert_status(tdx_page_aug(f->mod, 0, 1, p, NULL),
		      TDX_EPT_WALK_FAILED);
	fx_link_down_to(f, 0, 1);
	assert_status(tdx_page_aug(f->mod, 0, 1, outside, NULL),
		      TDX_OPERAND_ADDR_RANGE_ERROR);
	assert_status(tdx_page_aug(f->mod, 0 | SHARED_BIT, 1, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_int_equal(tdx_page_aug(f->mod, 0, 1, p, NULL), TDX_SUCCESS);
	/* Entry no longer FREE; page no longer free. */
	assert_status(tdx_page_aug(f->mod, 0, 1, fx_page(f, HOST_PAGE_PRIVATE),
				   NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_status(tdx_page_aug(f->mod, 1, 1, p, NULL),
		      TDX_PAGE_METADATA_INCORRECT);
	/* 2 MiB where a table exists: the entry is NL_MAPPED. */
	chunk = host_mem_alloc_2m(&f->mem, 1, HOST_POOL_TDX, HOST_PAGE_PRIVATE, 0);
	assert_int_not_equal(chunk, 0);
	assert_status(tdx_page_aug(f->mod, 0, 2, chunk, NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	/* A misaligned 2 MiB page. */
	assert_status(tdx_page_aug(f->mod, 512, 2, chunk + 1, NULL),
		      TDX_OPERAND_INVALID);
	assert_int_equal(tdx_page_aug(f->mod, 512, 2, chunk, NULL),
			 TDX_SUCCESS);
	assert_int_equal(tdx_pamt_get(f->mod, chunk + 7).type, PAMT_REG);
	assert_int_equal(tdx_pamt_get(f->mod, chunk + 7).gfn, 512 + 7);
	/* 4 KiB below a 2 MiB leaf: the walk stops at the leaf. */
	assert_status(tdx_page_aug(f->mod, 513, 1,
				   fx_page(f, HOST_PAGE_PRIVATE), NULL),
		      TDX_EPT_WALK_FAILED);
}

static void test_epoch_rule(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_PRIVATE), removed = 0;
	bool flush;

	fx_link_down_to(f, 0, 1);
	assert_int_equal(tdx_page_aug(f->mod, 0, 1, p, NULL), TDX_SUCCESS);

	/* Not blocked. */
	assert_status(tdx_page_remove(f->mod, 0, 1, &removed, NULL),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	assert_true(fx_reported(f, TDX_GPA_RANGE_NOT_BLOCKED));

	/* vCPU 0 runs in the current epoch while the host blocks. */
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	assert_int_equal(tdx_range_block(f->mod, 0, 1, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_range_block(f->mod, 0, 1, NULL),
			 TDX_GPA_RANGE_ALREADY_BLOCKED);
	/* No TRACK yet. */
	assert_status(tdx_page_remove(f->mod, 0, 1, &removed, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_true(fx_reported(f, TDX_TLB_TRACKING_NOT_DONE));
	/* TRACK, but the vCPU has not left guest mode since. */
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
	assert_status(tdx_page_remove(f->mod, 0, 1, &removed, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	/* A second TRACK while it still runs in the previous epoch. */
	assert_status(tdx_track(f->mod),
		      TDX_PREVIOUS_TLB_EPOCH_BUSY);
	/* The kick: it exits, and re-enters with a TLB flush. */
	tdx_vp_exit(f->mod, 0);
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	assert_true(flush);
	assert_int_equal(tdx_page_remove(f->mod, 0, 1, &removed, NULL),
			 TDX_SUCCESS);
	assert_int_equal(removed, p);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_NDA);
	tdx_vp_exit(f->mod, 0);
	/* Entry is FREE now. */
	assert_status(tdx_page_remove(f->mod, 0, 1, &removed, NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
}

static void test_unblock(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_PRIVATE);
	uint64_t e;
	int level;

	fx_link_down_to(f, 0, 1);
	assert_int_equal(tdx_page_aug(f->mod, 0, 1, p, NULL), TDX_SUCCESS);
	assert_status(tdx_range_unblock(f->mod, 0, 1, NULL),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	assert_int_equal(tdx_range_block(f->mod, 0, 1, NULL), TDX_SUCCESS);
	tdx_sept_lookup(f->mod, 0, &e, &level);
	assert_int_equal(sept_entry_state(e), SEPT_PENDING_BLOCKED);
	assert_status(tdx_range_unblock(f->mod, 0, 1, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
	assert_int_equal(tdx_range_unblock(f->mod, 0, 1, NULL), TDX_SUCCESS);
	tdx_sept_lookup(f->mod, 0, &e, &level);
	assert_int_equal(sept_entry_state(e), SEPT_PENDING);
	assert_int_equal(level, 1);
}

static void test_sept_remove(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t removed;

	fx_link_down_to(f, 0, 1);
	/* Parent before child: the level-3 table still links a table. */
	assert_int_equal(tdx_range_block(f->mod, 0, 3, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
	assert_status(tdx_sept_remove(f->mod, 0, 3, &removed, NULL),
		      TDX_EPT_PAGE_NOT_FREE);
	assert_true(fx_reported(f, TDX_EPT_PAGE_NOT_FREE));
	/* The blocked parent stops every walk below it. */
	assert_status(tdx_range_block(f->mod, 0, 2, NULL),
		      TDX_EPT_WALK_FAILED);
	assert_int_equal(tdx_range_unblock(f->mod, 0, 3, NULL), TDX_SUCCESS);
	/* Not blocked. */
	assert_status(tdx_sept_remove(f->mod, 0, 2, &removed, NULL),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	/* Children first, each blocked and tracked. */
	for (int level = 2; level <= 4; level++) {
		assert_int_equal(tdx_range_block(f->mod, 0, level, NULL),
				 TDX_SUCCESS);
		assert_status(tdx_sept_remove(f->mod, 0, level, &removed, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
		assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
		assert_int_equal(tdx_sept_remove(f->mod, 0, level, &removed,
						 NULL),
				 TDX_SUCCESS);
		assert_int_equal(tdx_pamt_get(f->mod, removed).type, PAMT_NDA);
	}
	assert_int_equal(tdx_td_child_count(f->mod), 0);
	assert_int_equal(tdx_module_teardown(f->mod), TDX_SUCCESS);
}

static void test_accept(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err;
	tdp_pfn_t chunk;
	struct host_page *hp;

	/* Nothing mapped: the ACCEPT exits to the host. */
	assert_int_equal(tdx_page_accept(f->mod, 0, 0, 1, &err),
			 TDX_SIM_TD_EXIT_EPT_VIOLATION);
	assert_int_equal(err.level, 4);
	fx_link_down_to(f, 0, 1);
	assert_int_equal(tdx_page_aug(f->mod, 0, 1, fx_page(f, HOST_PAGE_PRIVATE),
				      NULL),
			 TDX_SUCCESS);
	/* The host mapped 4 KiB: a 2 MiB ACCEPT is a size mismatch. */
	assert_status(tdx_page_accept(f->mod, 0, 0, 2, &err),
		      TDX_PAGE_SIZE_MISMATCH);
	assert_int_equal(tdx_page_accept(f->mod, 0, 0, 1, &err), TDX_SUCCESS);
	assert_int_equal(tdx_page_accept(f->mod, 0, 0, 1, &err),
			 TDX_PAGE_ALREADY_ACCEPTED);
	/* 1 GiB is not supported. */
	assert_status(tdx_page_accept(f->mod, 0, 0, 3, &err),
		      TDX_OPERAND_INVALID);

	/* A 2 MiB PENDING leaf: 4 KiB inside exits, 2 MiB zeroes all. */
	chunk = host_mem_alloc_2m(&f->mem, 1, HOST_POOL_TDX, HOST_PAGE_PRIVATE,
				  512);
	hp = host_mem_page(&f->mem, chunk + 5);
	host_page_set_tag(hp, SIM_TAG(1234, 99));
	assert_int_equal(tdx_page_aug(f->mod, 512, 2, chunk, NULL),
			 TDX_SUCCESS);
	assert_int_equal(tdx_page_accept(f->mod, 0, 517, 1, &err),
			 TDX_SIM_TD_EXIT_EPT_VIOLATION);
	assert_int_equal(err.level, 2);
	assert_int_equal(err.state, SEPT_PENDING);
	assert_int_equal(tdx_page_accept(f->mod, 0, 512, 2, &err), TDX_SUCCESS);
	assert_int_equal(host_page_tag(hp), SIM_TAG(517, 0));
	assert_int_equal(tdx_page_accept(f->mod, 0, 517, 1, &err),
			 TDX_PAGE_ALREADY_ACCEPTED);

	/* Blocked: exits again. */
	assert_int_equal(tdx_range_block(f->mod, 0, 1, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_page_accept(f->mod, 0, 0, 1, &err),
			 TDX_SIM_TD_EXIT_EPT_VIOLATION);
	/* Guest-side outcomes are not host protocol violations. */
	assert_false(fx_reported(f, TDX_PAGE_SIZE_MISMATCH));
}

static void test_injection(void **state)
{
	struct fixture *f = *state;
	bool flush;

	tdx_module_set_injection(f->mod, 1000000, 0);
	assert_true(tdx_status_is_busy(tdx_sept_add(f->mod, 0, 4,
						    fx_page(f, HOST_PAGE_SEPT),
						    NULL)));
	assert_true(tdx_status_is_busy(tdx_track(f->mod)));
	assert_true(tdx_status_is_busy(tdx_vp_enter(f->mod, 0, &flush)));
	tdx_module_set_injection(f->mod, 0, 1000000);
	assert_int_equal(tdx_sept_add(f->mod, 0, 4, fx_page(f, HOST_PAGE_SEPT),
				      NULL),
			 TDX_SIM_INJECTED_FAILURE);
	/* Injected statuses are neither changes nor violations. */
	assert_int_equal(tdx_td_child_count(f->mod), 0);
	assert_int_equal(sim_report_total(&f->report), 0);
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_SEPT_ADD,
					   SIM_OUT_BUSY_INJECTED),
			 1);
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_SEPT_ADD,
					   SIM_OUT_FAIL_INJECTED),
			 1);
}

static void test_teardown_with_pages(void **state)
{
	struct fixture *f = *state;

	fx_link_down_to(f, 0, 3);
	assert_int_equal(tdx_module_teardown(f->mod),
			 TDX_TD_ASSOCIATED_PAGES_EXIST);
	assert_true(fx_reported(f, TDX_TD_ASSOCIATED_PAGES_EXIST));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sept_add_preconditions,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_aug_preconditions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_epoch_rule, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unblock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sept_remove, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_injection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_teardown_with_pages,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("sim-tdx-module", tests, NULL,
					   NULL);
}
