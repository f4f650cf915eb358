/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The MMIO window: MMIO SPTEs installed by tdp_map(), accesses emulated
 * at the EPT misconfiguration and checked, a layout change that makes a
 * page RAM bumps the generation so its stale MMIO SPTE refaults into a
 * leaf without any zap; and a host that changes the layout without the
 * bump is caught at the next misconfiguration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "strict.h"

static struct sim *create_mmio(bool no_bump)
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.mmio_pages = 4;
	cfg.break_mmio_no_bump = no_bump;
	return create(&cfg);
}

static uint64_t zapped_leaves(struct sim *s)
{
	struct tdp_stats st;

	assert_int_equal(tdp_mmu_get_stats(s->mmu, &st), 0);
	return st.zapped_leaves;
}

static void test_mmio_clean(void **state)
{
	struct sim *s = create_mmio(false);
	uint32_t gen = tdp_mmu_mmio_generation(s->mmu);
	uint64_t zapped;

	(void)state;
	assert_int_equal(s->mmio.base, s->nr_gfns);
	/* First touch: the host installs an MMIO SPTE, the retry exits
	 * as a misconfiguration and is emulated. */
	assert_int_equal(sim_step_mmio_access(s, 0, 2, true), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_FAULTS), 1);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_WRITES), 1);
	assert_int_equal(sim_step_mmio_access(s, 1, 2, false), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_READS), 1);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_FAULTS), 1);

	/* A slot over the page: new generation, nothing zapped. */
	zapped = zapped_leaves(s);
	sim_step_mmio_flip(s, 2);
	assert_int_equal(tdp_mmu_mmio_generation(s->mmu), gen + 1);
	assert_int_equal(zapped_leaves(s), zapped);
	/* The stale SPTE refaults into a leaf; the content came along. */
	assert_int_equal(sim_step_mmio_access(s, 0, 2, false), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_STALE), 1);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_RAM_ACCESSES), 1);
	assert_int_equal(sim_step_mmio_access(s, 1, 2, true), 0);
	assert_int_equal(sim_check_quiesced(s), 0);

	/* The slot goes: the leaf is zapped, a device register again. */
	sim_step_mmio_flip(s, 2);
	assert_true(zapped_leaves(s) > zapped);
	assert_int_equal(sim_step_mmio_access(s, 0, 2, false), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_FAULTS), 2);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_MMIO_READS), 2);
	assert_int_equal(sim_check_quiesced(s), 0);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

/* The host puts a slot over the page but keeps the generation. */
static void test_mmio_layout_without_bump(void **state)
{
	struct sim *s = create_mmio(true);
	tdp_gfn_t gfn = s->mmio.base + 1;

	(void)state;
	assert_int_equal(sim_step_mmio_access(s, 0, 1, true), 0);
	sim_step_mmio_flip(s, 1);
	assert_int_equal(sim_report_total(&s->report), 0);
	/* The old SPTE still looks current: caught at the exit ... */
	sim_step_mmio_access(s, 0, 1, true);
	assert_non_null(find(s, SIM_V_STALE_TRANSLATION, 0, gfn, 0));
	/* ... and the write went to the register, not the RAM. */
	assert_true(sim_check_quiesced(s) > 0);
	assert_non_null(find(s, SIM_V_CORRUPTION, 0, gfn, SIM_NO_VCPU));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mmio_clean),
		cmocka_unit_test(test_mmio_layout_without_bump),
	};

	return cmocka_run_group_tests_name("sim-mmio", tests, NULL, NULL);
}
