/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TD build: the module's PAGE.ADD, MR.EXTEND and MR.FINALIZE alone (each
 * refused in the wrong TD state with TDX_OP_STATE_INCORRECT, PAGE.AUG,
 * VP.ENTER and ACCEPT refused before finalization), then the whole
 * simulator building its TD through the engine's mirror root: a clean
 * build the guest verifies, and hosts that break one step of it, each
 * caught with the named error or violation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "module_fixture.h"
#include "strict.h"

/* ---- the module alone ---------------------------------------------------- */

static int setup_building(void **state)
{
	return fx_setup_building(state, 8 * 512);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

/* A host page outside every TD holding @tag: a PAGE.ADD source. */
static tdp_pfn_t source_page(struct fixture *f, uint64_t tag)
{
	tdp_pfn_t src = host_mem_alloc(&f->mem, 1, HOST_POOL_NON_TDX,
				       HOST_PAGE_SHARED, 0);

	assert_int_not_equal(src, 0);
	host_page_set_tag(host_mem_page(&f->mem, src), tag);
	return src;
}

static void test_module_build(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t page = fx_page(f, HOST_PAGE_PRIVATE);
	tdp_pfn_t src = source_page(f, SIM_TAG(5, 77));
	tdp_pfn_t sept = fx_page(f, HOST_PAGE_SEPT);
	uint64_t want = TDX_MR_INITIAL, mrtd = 0;
	struct tdx_err_info err;
	bool flush;

	fx_link_down_to(f, 0, 1);
	/* SEPT.ADD builds the tree in any state. */
	assert_int_equal(tdx_sept_add(f->mod, 512, 2, sept, NULL), TDX_SUCCESS);
	/* Nothing runs before finalization. */
	assert_status(tdx_vp_enter(f->mod, 0, &flush), TDX_OP_STATE_INCORRECT);
	assert_status(tdx_page_accept(f->mod, 0, 5, 1, NULL),
		      TDX_OP_STATE_INCORRECT);
	assert_status(tdx_mr_report(f->mod, 0, &mrtd), TDX_OP_STATE_INCORRECT);
	/* PAGE.AUG is for a running TD. */
	assert_status(tdx_page_aug(f->mod, 5, 1, page, NULL),
		      TDX_OP_STATE_INCORRECT);
	assert_true(fx_reported(f, TDX_OP_STATE_INCORRECT));
	/* The source must not be a TD's page; the GPA private. */
	assert_status(tdx_page_add(f->mod, 5, page, sept, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_add(f->mod, 5 | FX_SHARED_BIT, page, src, NULL),
		      TDX_OPERAND_INVALID);
	/* Nothing to extend yet. */
	assert_status(tdx_mr_extend(f->mod, 5, 0, &err),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(err.state, SEPT_FREE);

	assert_int_equal(tdx_page_add(f->mod, 5, page, src, NULL), TDX_SUCCESS);
	want = tdx_mr_page_add(want, 5);
	/* Copied in, the TD's page now, the entry taken. */
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, page)),
			 SIM_TAG(5, 77));
	assert_int_equal(tdx_pamt_get(f->mod, page).type, PAMT_REG);
	assert_int_equal(tdx_pamt_get(f->mod, page).gfn, 5);
	assert_status(tdx_page_add(f->mod, 5, fx_page(f, HOST_PAGE_PRIVATE),
				   src, NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_status(tdx_mr_extend(f->mod, 5, TDX_MR_CHUNKS_PER_PAGE, NULL),
		      TDX_OPERAND_INVALID);
	for (unsigned int c = 0; c < TDX_MR_CHUNKS_PER_PAGE; c++) {
		assert_int_equal(tdx_mr_extend(f->mod, 5, c, NULL),
				 TDX_SUCCESS);
		want = tdx_mr_extend_record(want, 5, c, SIM_TAG(5, 77));
	}

	assert_int_equal(tdx_mr_finalize(f->mod), TDX_SUCCESS);
	assert_int_equal(tdx_td_op_state(f->mod), TDX_TD_RUNNABLE);
	/* Once: the build is over. */
	assert_status(tdx_mr_finalize(f->mod), TDX_OP_STATE_INCORRECT);
	assert_status(tdx_page_add(f->mod, 6, fx_page(f, HOST_PAGE_PRIVATE),
				   src, NULL),
		      TDX_OP_STATE_INCORRECT);
	assert_status(tdx_mr_extend(f->mod, 5, 0, NULL),
		      TDX_OP_STATE_INCORRECT);

	/* The guest reads the measurement it can compute itself. */
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	assert_int_equal(tdx_mr_report(f->mod, 0, &mrtd), TDX_SUCCESS);
	assert_int_equal(mrtd, want);
	/* An added page is MAPPED already: nothing to accept. */
	assert_status(tdx_page_accept(f->mod, 0, 5, 1, NULL),
		      TDX_PAGE_ALREADY_ACCEPTED);
	tdx_vp_exit(f->mod, 0);
	/* PAGE.AUG is allowed now. */
	assert_int_equal(tdx_page_aug(f->mod, 6, 1,
				      fx_page(f, HOST_PAGE_PRIVATE), NULL),
			 TDX_SUCCESS);
}

/* ---- the simulator builds its TD through the engine ---------------------- */

#define IMAGE_PAGES 8

static struct sim *create_built(int break_build)
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.image_pages = IMAGE_PAGES;
	cfg.break_build = break_build;
	return create(&cfg);
}

static void test_build_clean(void **state)
{
	struct sim *s = create_built(SIM_BUILD_OK);

	(void)state;
	assert_int_equal(sim_seamcall_read(&s->stats, SIM_SC_PAGE_ADD, SIM_OUT_OK),
			 IMAGE_PAGES);
	assert_int_equal(sim_seamcall_read(&s->stats, SIM_SC_MR_EXTEND, SIM_OUT_OK),
			 IMAGE_PAGES * TDX_MR_CHUNKS_PER_PAGE);
	assert_int_equal(sim_seamcall_read(&s->stats, SIM_SC_PAGE_AUG_4K, SIM_OUT_OK), 0);
	assert_int_equal(tdx_td_op_state(s->module), TDX_TD_RUNNABLE);
	assert_int_equal(sim_step_check_measurement(s, 0), 0);
	for (tdp_gfn_t g = 0; g < IMAGE_PAGES; g++) {
		assert_int_equal(sim_step_guest_state(s, g),
				 GUEST_PRIVATE_ACCEPTED);
		assert_int_equal(sim_step_access(s, g % 2, g, false), 0);
	}
	/* No ACCEPT was needed: the pages came MAPPED. */
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_ACCEPT_4K), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_CHECK_IMAGE), IMAGE_PAGES);
	assert_int_equal(sim_step_access(s, 1, 3, true), 0);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

/* The host maps an image page without its source: set_leaf AUGs. */
static void test_build_aug_before_finalize(void **state)
{
	struct sim *s = create_built(SIM_BUILD_AUG);

	(void)state;
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_OP_STATE_INCORRECT, 0,
			     SIM_NO_VCPU));
	assert_int_equal(sim_seamcall_read(&s->stats, SIM_SC_PAGE_AUG_4K, SIM_OUT_ERROR),
			 1);
	sim_destroy(s);
}

/* The host finalizes before it added the last page. */
static void test_build_add_after_finalize(void **state)
{
	struct sim *s = create_built(SIM_BUILD_ADD_AFTER_FINALIZE);

	(void)state;
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_OP_STATE_INCORRECT,
			     IMAGE_PAGES - 1, SIM_NO_VCPU));
	assert_int_equal(sim_seamcall_read(&s->stats, SIM_SC_PAGE_ADD, SIM_OUT_ERROR), 1);
	sim_destroy(s);
}

/* The host does not measure the first page: the guest sees it. */
static void test_build_skip_extend(void **state)
{
	struct sim *s = create_built(SIM_BUILD_SKIP_EXTEND);

	(void)state;
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_int_equal(sim_step_check_measurement(s, 1), -EIO);
	assert_non_null(find(s, SIM_V_MEASUREMENT, 0, SIM_NO_GFN, 1));
	sim_destroy(s);
}

/* The host copies the wrong content into the first page. */
static void test_build_wrong_source(void **state)
{
	struct sim *s = create_built(SIM_BUILD_WRONG_SOURCE);

	(void)state;
	assert_int_equal(sim_step_check_measurement(s, 0), -EIO);
	assert_non_null(find(s, SIM_V_MEASUREMENT, 0, SIM_NO_GFN, 0));
	/* The first touch finds content the image never had. */
	assert_int_equal(sim_step_access(s, 1, 0, false), 0);
	assert_non_null(find(s, SIM_V_CORRUPTION, 0, 0, 1));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_module_build,
						setup_building, teardown),
		cmocka_unit_test(test_build_clean),
		cmocka_unit_test(test_build_aug_before_finalize),
		cmocka_unit_test(test_build_add_after_finalize),
		cmocka_unit_test(test_build_skip_extend),
		cmocka_unit_test(test_build_wrong_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
