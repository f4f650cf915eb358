/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend adapter checks the freeze protocol: while a callback works
 * on a mirror entry, a lockless lookup must read that entry FROZEN.  A
 * wrapper between the engine and the adapter holds back the first
 * set_leaf (answering success, so the engine stores the leaf) and hands
 * it to the adapter only at the next set_leaf, when the entry holds the
 * present leaf: the adapter must report a backend-contract violation
 * naming that GFN, and none for the calls the engine made itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strict.h"

/* The set_leaf held back: its GFN, level and frame; valid while set. */
static struct {
	bool held;
	bool forwarded;
	tdp_gfn_t gfn;
	int level;
	tdp_pfn_t pfn;
} late;

static int set_leaf_late(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	if (!late.held) {
		late.held = true;
		late.gfn = gfn;
		late.level = level;
		late.pfn = pfn;
		return 0;
	}
	if (!late.forwarded) {
		late.forwarded = true;
		brk.orig_be.set_leaf(ctx, late.gfn, late.level, late.pfn);
	}
	return brk.orig_be.set_leaf(ctx, gfn, level, pfn);
}

static void wrap_set_leaf_late(struct tdp_private_backend *be, void *arg)
{
	struct breakage *b = arg;

	b->orig_be = *be;
	be->set_leaf = set_leaf_late;
}

static void test_set_leaf_after_unfreeze(void **state)
{
	struct sim *s;
	tdp_gfn_t first, other;

	(void)state;
	memset(&late, 0, sizeof(late));
	s = create_wrapped(wrap_set_leaf_late, NULL);
	/* Two pages in different 16-page accept runs of a small region. */
	first = small_region_gfn(s, 3);
	other = small_region_gfn(s, 40);

	/* The first ACCEPT's set_leaf is held back: the page never gets
	 * mapped in the S-EPT, and the guest gives up on it. */
	sim_step_access(s, 0, first, true);
	assert_true(late.held);
	assert_false(late.forwarded);
	/* Every call so far came from the engine with its entry frozen. */
	assert_null(find(s, SIM_V_CONTRACT, 0, SIM_NO_GFN, SIM_NO_VCPU));

	/* The next set_leaf forwards the held one first: too late. */
	sim_step_access(s, 1, other, true);
	assert_true(late.forwarded);
	assert_int_equal(late.level, TDP_LEVEL_4K);
	assert_non_null(find(s, SIM_V_CONTRACT, 0, late.gfn, SIM_NO_VCPU));
	assert_null(find(s, SIM_V_CONTRACT, 0, other, SIM_NO_VCPU));
	assert_true(sim_counter_read(&s->stats, SIM_C_CHECK_FROZEN) > 0);
	sim_destroy(s);
}

/* The same engine without the wrapper: checked, and nothing reported. */
static void test_clean_engine_frozen_checks(void **state)
{
	struct sim *s = create_wrapped(NULL, NULL);
	tdp_gfn_t g = small_region_gfn(s, 3);

	(void)state;
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_step_convert(s, 1, g, 1, false), 0);
	assert_int_equal(sim_step_convert(s, 1, g, 1, true), 0);
	sim_step_slot_delete(s, g, 1);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_true(sim_counter_read(&s->stats, SIM_C_CHECK_FROZEN) > 0);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_leaf_after_unfreeze),
		cmocka_unit_test(test_clean_engine_frozen_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
