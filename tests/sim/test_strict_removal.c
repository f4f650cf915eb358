/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strictness of the removal path: backends that skip TRACK, skip the
 * kick after TRACK, or free a parent table before its children must be
 * caught with the module's specific error.
 *
 * Each of these breaks a no-fail backend callback, which puts the MMU in
 * its dead state; a dead MMU keeps every page the backend may still
 * reference, by design (tdp/backend.h), and LeakSanitizer would report
 * those pages.  The suppression below covers the engine's own page
 * allocations in this test program only (the other simulator tests run
 * with full leak checking).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strict.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:tdp_table_alloc\nleak:tdp_ext_page_alloc\n"
	       "leak:tdp_table_page_alloc\nleak:tdp_root_create_initial\n";
}

/* ---- skipping TRACK before REMOVE ---------------------------------------- */

/* BLOCK then REMOVE, as a backend that forgot TRACK and the kick. */
static int remove_leaf_without_track(void *ctx, tdp_gfn_t gfn, int level,
				     tdp_pfn_t pfn)
{
	struct sim *s = ctx;
	tdp_pfn_t removed;

	(void)pfn;
	if (tdx_range_block(s->module, gfn, level, NULL) != TDX_SUCCESS)
		return -EIO;
	return tdx_page_remove(s->module, gfn, level, &removed, NULL) ==
			       TDX_SUCCESS
		       ? 0
		       : -EIO;
}

static void wrap_skip_track(struct tdp_private_backend *be, void *arg)
{
	(void)arg;
	be->remove_leaf = remove_leaf_without_track;
}

static void test_skip_track(void **state)
{
	struct sim *s = create_wrapped(wrap_skip_track, NULL);
	tdp_gfn_t g = small_region_gfn(s, 3);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_report_total(&s->report), 0);
	/* Converting to shared zaps the private page. */
	sim_step_convert(s, 0, g, 1, false);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_TLB_TRACKING_NOT_DONE, g,
			     SIM_NO_VCPU));
	assert_true(tdp_mmu_is_dead(s->mmu));
	sim_destroy(s);
}

/* ---- TRACK without the kick, with a vCPU in guest mode ------------------- */

static int remove_leaf_without_kick(void *ctx, tdp_gfn_t gfn, int level,
				    tdp_pfn_t pfn)
{
	struct sim *s = ctx;
	tdp_pfn_t removed;

	(void)pfn;
	if (tdx_range_block(s->module, gfn, level, NULL) != TDX_SUCCESS ||
	    tdx_track(s->module) != TDX_SUCCESS)
		return -EIO;
	return tdx_page_remove(s->module, gfn, level, &removed, NULL) ==
			       TDX_SUCCESS
		       ? 0
		       : -EIO;
}

static void wrap_skip_kick(struct tdp_private_backend *be, void *arg)
{
	(void)arg;
	be->remove_leaf = remove_leaf_without_kick;
}

static void test_skip_kick(void **state)
{
	struct sim *s = create_wrapped(wrap_skip_kick, NULL);
	tdp_gfn_t g = small_region_gfn(s, 9);
	struct sim_vcpu *v1;

	(void)state;
	assert_int_equal(sim_step_access(s, 1, g, true), 0);
	/* vCPU 1 stays in guest mode with the page in its TLB. */
	v1 = &s->vcpus.v[1];
	sim_vcpu_attach(v1);
	assert_true(sim_vcpu_enter(v1));
	sim_step_convert(s, 0, g, 1, false);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_TLB_TRACKING_NOT_DONE, g,
			     SIM_NO_VCPU));
	sim_vcpu_attach(v1);
	sim_vcpu_exit(v1);
	sim_destroy(s);
}

/* ---- removing a parent table before its children ------------------------- */

/* Hold back the free of a table of 4 KiB entries; free its parent first. */
static int free_parent_first(void *ctx, tdp_gfn_t gfn, int level,
			     struct tdp_ext_table *ext)
{
	if (level == TDP_LEVEL_2M && !brk.deferred) {
		brk.deferred = true;
		brk.deferred_gfn = gfn;
		brk.deferred_level = level;
		brk.deferred_ext = ext;
		return 0;
	}
	return brk.orig_be.free_table(ctx, gfn, level, ext);
}

static void wrap_free_parent_first(struct tdp_private_backend *be, void *arg)
{
	struct breakage *b = arg;

	b->orig_be = *be;
	be->free_table = free_parent_first;
}

static void test_parent_before_children(void **state)
{
	struct sim *s = create_wrapped(wrap_free_parent_first, NULL);
	tdp_gfn_t g = small_region_gfn(s, 100);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_report_total(&s->report), 0);
	/* TD teardown frees every table, children first. */
	sim_finish(s);
	assert_true(brk.deferred);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_EPT_PAGE_NOT_FREE,
			     g & ~(tdp_level_pages(TDP_LEVEL_1G) - 1),
			     SIM_NO_VCPU));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_track),
		cmocka_unit_test(test_skip_kick),
		cmocka_unit_test(test_parent_before_children),
	};

	return cmocka_run_group_tests_name("sim-strict-removal", tests, NULL,
					   NULL);
}
