/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator is strict: deliberately broken engine wrappers and hosts
 * plugged into it must be caught with the specific TDX error or
 * corruption report, naming the GFN (and the vCPU where one is
 * involved).  Each test drives the simulator step by step from one
 * thread, so the sequence is exact.  Broken removal callbacks, which
 * kill the MMU, are in test_strict_removal.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strict.h"

/* ---- positive: the step interface on a correct engine -------------------- */

static void test_steps_clean(void **state)
{
	struct sim *s = create_wrapped(NULL, NULL);
	tdp_gfn_t g = small_region_gfn(s, 40);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_step_guest_state(s, g), GUEST_PRIVATE_ACCEPTED);
	assert_int_equal(sim_step_access(s, 1, g, false), 0);
	assert_int_equal(sim_step_convert(s, 0, g, 1, false), 0);
	assert_int_equal(sim_step_access(s, 1, g, true), 0);
	assert_int_equal(sim_step_access(s, 0, g, false), 0);
	sim_step_host_unmap(s, g - 3, 8);
	assert_int_equal(sim_step_access(s, 0, g, false), 0);
	assert_int_equal(sim_step_convert(s, 1, g, 1, true), 0);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	sim_step_prefault(s, g + 1, 4);
	assert_int_equal(sim_step_access(s, 1, g + 2, true), 0);
	sim_step_slot_delete(s, g, 1);
	assert_int_equal(sim_step_guest_state(s, g), GUEST_PRIVATE_UNACCEPTED);
	assert_int_equal(sim_step_access(s, 1, g, true), 0);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_false(s->engine_dead);
	sim_destroy(s);
}

/* ---- linking a child before its parent ----------------------------------- */

/* Hold back the first link; forward the next one (its child) first. */
static int link_child_first(void *ctx, tdp_gfn_t gfn, int level,
			    struct tdp_ext_table *ext)
{
	int ret;

	if (!brk.deferred) {
		brk.deferred = true;
		brk.deferred_gfn = gfn;
		brk.deferred_level = level;
		brk.deferred_ext = ext;
		return 0;
	}
	ret = brk.orig_be.link_table(ctx, gfn, level, ext);
	if (brk.deferred_ext) {
		brk.orig_be.link_table(ctx, brk.deferred_gfn,
				       brk.deferred_level, brk.deferred_ext);
		brk.deferred_ext = NULL;
	}
	return ret;
}

static void wrap_link_child_first(struct tdp_private_backend *be, void *arg)
{
	struct breakage *b = arg;

	b->orig_be = *be;
	be->link_table = link_child_first;
}

static void test_child_before_parent(void **state)
{
	struct sim *s = create_wrapped(wrap_link_child_first, NULL);
	tdp_gfn_t g = small_region_gfn(s, 5);

	(void)state;
	sim_step_access(s, 0, g, true);
	assert_true(brk.deferred);
	assert_int_equal(brk.deferred_level, SIM_ROOT_LEVEL);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_EPT_WALK_FAILED,
			     g & ~(tdp_level_pages(TDP_LEVEL_1G) - 1),
			     SIM_NO_VCPU));
	sim_destroy(s);
}

/* ---- dropping a TLB flush on a shared zap -------------------------------- */

/*
 * A simulation whose host drops its TLB flushes while brk.drop_flushes is
 * set, and in it a shared page at @offset of a small region that vCPU 0
 * has written and still has in its TLB (stored in @gfn).
 */
static struct sim *create_with_shared_page_in_tlb(uint64_t offset,
						  tdp_gfn_t *gfn)
{
	struct sim *s = create_wrapped(NULL, wrap_drop_flush);

	*gfn = small_region_gfn(s, offset);
	assert_int_equal(sim_step_convert(s, 1, *gfn, 1, false), 0);
	assert_int_equal(sim_step_access(s, 0, *gfn, true), 0);
	assert_int_equal(sim_step_access(s, 0, *gfn, true), 0);
	assert_int_equal(sim_report_total(&s->report), 0);
	return s;
}

static void test_drop_flush_on_host_unmap(void **state)
{
	tdp_gfn_t g;
	struct sim *s = create_with_shared_page_in_tlb(77, &g);

	(void)state;
	/* The host migrates the page; the shootdown is lost. */
	brk.drop_flushes = true;
	sim_step_host_unmap(s, g, 1);
	brk.drop_flushes = false;
	assert_int_equal(brk.dropped, 1);
	/* Caught when the old page is freed ... */
	assert_non_null(find(s, SIM_V_STALE_TRANSLATION, 0, g, 0));
	/* ... and as corruption when the vCPU reads through the stale entry. */
	sim_step_access(s, 0, g, false);
	assert_non_null(find(s, SIM_V_CORRUPTION, 0, g, 0));
	sim_destroy(s);
}

static void test_drop_flush_on_convert(void **state)
{
	tdp_gfn_t g;
	struct sim *s = create_with_shared_page_in_tlb(200, &g);

	(void)state;
	/* Shared to private zaps the shared alias: flush lost. */
	brk.drop_flushes = true;
	sim_step_convert(s, 1, g, 1, true);
	brk.drop_flushes = false;
	assert_true(brk.dropped >= 1);
	assert_non_null(find(s, SIM_V_STALE_TRANSLATION, 0, g, 0));
	sim_destroy(s);
}

/* ---- root invalidation --------------------------------------------------- */

static void test_root_invalidation(void **state)
{
	tdp_gfn_t g;
	struct sim *s = create_with_shared_page_in_tlb(90, &g);
	uint64_t switches = sim_counter_read(&s->stats, SIM_C_FLUSH_ROOT_SWITCH);
	tdp_pfn_t old_root = s->vcpus.v[0].root_pfn;
	struct tdp_stats st;

	(void)state;
	sim_step_invalidate_root(s);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_CHECK_ROOT_ZAP), 1);
	assert_int_equal(sim_report_total(&s->report), 0);
	/* vCPU 0 switches to the new root (vCPU 1 loads its first), the
	 * data is there. */
	assert_int_equal(sim_step_access(s, 0, g, false), 0);
	assert_int_equal(sim_step_access(s, 1, g, true), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_FLUSH_ROOT_SWITCH), switches + 1);
	assert_int_not_equal(s->vcpus.v[0].root_pfn, old_root);
	assert_int_equal(s->vcpus.v[1].root_pfn, s->vcpus.v[0].root_pfn);
	assert_int_equal(tdp_mmu_get_stats(s->mmu, &st), 0);
	assert_true(st.roots_allocated >= 3);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

/* The zap of the invalidated root does not reach the TLBs. */
static void test_drop_flush_on_root_zap(void **state)
{
	tdp_gfn_t g;
	struct sim *s = create_with_shared_page_in_tlb(91, &g);

	(void)state;
	brk.drop_flushes = true;
	sim_step_invalidate_root(s);
	brk.drop_flushes = false;
	assert_true(brk.dropped >= 1);
	assert_non_null(find(s, SIM_V_STALE_TRANSLATION, 0, g, 0));
	sim_destroy(s);
}

/* ---- private memory outside the TDX-usable ranges ------------------------ */

static void test_private_outside_tdx_memory(void **state)
{
	struct sim_config cfg;
	struct sim *s;
	tdp_gfn_t g;

	(void)state;
	base_config(&cfg);
	cfg.break_private_outside_tdx = true;
	s = create(&cfg);
	g = small_region_gfn(s, 16); /* first page of a lazy-accept run */
	assert_int_not_equal(sim_step_access(s, 0, g, true), 0);
	assert_non_null(find(s, SIM_V_TDX_ERROR, TDX_OPERAND_ADDR_RANGE_ERROR,
			     g, SIM_NO_VCPU));
	/* Nothing was mapped: mirror and S-EPT still agree. */
	assert_int_equal(tdx_td_child_count(s->module),
			 tdx_sept_pages(s->module));
	sim_destroy(s);
}

/* ---- a host that zaps private memory behind the guest's back ------------- */

static void test_lost_private_mapping(void **state)
{
	struct sim *s = create_wrapped(NULL, NULL);
	tdp_gfn_t g = small_region_gfn(s, 21);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	/* A private zap the guest never asked for. */
	assert_int_equal(tdp_zap_convert_to_shared(s->mmu, g, g + 1), 0);
	sim_step_access(s, 1, g, false);
	assert_non_null(find(s, SIM_V_LOST_MAPPING, 0, g, 1));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps_clean),
		cmocka_unit_test(test_child_before_parent),
		cmocka_unit_test(test_drop_flush_on_host_unmap),
		cmocka_unit_test(test_drop_flush_on_convert),
		cmocka_unit_test(test_root_invalidation),
		cmocka_unit_test(test_drop_flush_on_root_zap),
		cmocka_unit_test(test_private_outside_tdx_memory),
		cmocka_unit_test(test_lost_private_mapping),
	};

	return cmocka_run_group_tests_name("sim-strict", tests, NULL, NULL);
}
