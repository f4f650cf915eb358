/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live migration of shared memory, step by step: the CPU sets the dirty
 * bit of the direct-tree leaf a write goes through, the rounds harvest
 * and copy, and the final round finds the destination equal to the
 * source.  Then three ways to lose a write: the engine's flush after
 * clearing dirty bits dropped (a dirty TLB entry survives and writes
 * without setting the bit again), a CPU that never sets dirty bits, and
 * a host without mark_dirty whose zap drops a dirty leaf: each must end
 * in a dirty_log violation for the page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "strict.h"

static struct sim *create_migrating(
	bool no_dirty_bit, void (*wrap_host)(struct tdp_host_ops *, void *))
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.migrate = true;
	cfg.break_no_dirty_bit = no_dirty_bit;
	cfg.wrap_host_ops = wrap_host;
	return create(&cfg);
}

/* Four shared pages from @g on; vCPU 0 wrote @g (a dirty TLB entry). */
static void prepare(struct sim *s, tdp_gfn_t g)
{
	assert_int_equal(sim_step_convert(s, 1, g, 4, false), 0);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_step_access(s, 1, g + 1, false), 0);
	assert_int_equal(sim_report_total(&s->report), 0);
}

static void test_migrate_clean(void **state)
{
	struct sim *s = create_migrating(false, NULL);
	tdp_gfn_t g = small_region_gfn(s, 30);
	uint64_t set;

	(void)state;
	prepare(s, g);
	assert_true(sim_step_migrate_round(s));
	assert_true(s->migration.rounds[0].copied >= 4);
	/* The dirty TLB entry went with the clear: the write walks and
	 * sets the bit again. */
	set = sim_counter_read(&s->stats, SIM_C_DIRTY_BITS_SET);
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_DIRTY_BITS_SET), set + 1);
	assert_true(sim_step_migrate_round(s));
	assert_int_equal(s->migration.rounds[1].harvested, 1);
	assert_int_equal(s->migration.rounds[1].copied, 1);
	/* Written again, and a second page. */
	assert_int_equal(sim_step_access(s, 1, g, true), 0);
	assert_int_equal(sim_step_access(s, 1, g + 2, true), 0);
	assert_int_equal(sim_step_migrate_finish(s), 0);
	assert_int_equal(s->migration.rounds[2].harvested, 2);
	assert_int_equal(s->migration.rounds[2].redirtied, 1);
	assert_true(s->migration.final_checked >= 4);
	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	sim_destroy(s);
}

/* The flushes of tdp_clear_dirty_range() are lost. */
static void test_migrate_flush_dropped(void **state)
{
	struct sim *s = create_migrating(false, wrap_drop_flush);
	tdp_gfn_t g = small_region_gfn(s, 40);

	(void)state;
	prepare(s, g);
	brk.drop_flushes = true;
	assert_true(sim_step_migrate_round(s));
	brk.drop_flushes = false;
	assert_true(brk.dropped >= 1);
	/* Through the surviving dirty entry: no dirty bit. */
	assert_int_equal(sim_step_access(s, 0, g, true), 0);
	assert_int_equal(sim_step_migrate_finish(s), 1);
	assert_non_null(find(s, SIM_V_DIRTY_LOG, 0, g, SIM_NO_VCPU));
	sim_destroy(s);
}

/* The CPU writes without setting dirty bits. */
static void test_migrate_no_dirty_bit(void **state)
{
	struct sim *s = create_migrating(true, NULL);
	tdp_gfn_t g = small_region_gfn(s, 50);

	(void)state;
	prepare(s, g);
	assert_true(sim_step_migrate_round(s));
	assert_int_equal(sim_step_access(s, 0, g + 3, true), 0);
	assert_int_equal(sim_step_migrate_finish(s), 1);
	assert_non_null(find(s, SIM_V_DIRTY_LOG, 0, g + 3, SIM_NO_VCPU));
	sim_destroy(s);
}

static void wrap_no_mark_dirty(struct tdp_host_ops *ops, void *arg)
{
	(void)arg;
	ops->mark_dirty = NULL;
}

/* A zap removes a dirty leaf and nobody hears of its dirty bit. */
static void test_migrate_no_mark_dirty(void **state)
{
	struct sim *s = create_migrating(false, wrap_no_mark_dirty);
	tdp_gfn_t g = small_region_gfn(s, 60);

	(void)state;
	prepare(s, g);
	assert_true(sim_step_migrate_round(s));
	assert_int_equal(sim_step_access(s, 0, g + 2, true), 0);
	/* The host migrates the page: the leaf goes, its content moves. */
	sim_step_host_unmap(s, g, 4);
	assert_int_equal(sim_step_migrate_finish(s), 1);
	assert_non_null(find(s, SIM_V_DIRTY_LOG, 0, g + 2, SIM_NO_VCPU));
	sim_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_clean),
		cmocka_unit_test(test_migrate_flush_dropped),
		cmocka_unit_test(test_migrate_no_dirty_bit),
		cmocka_unit_test(test_migrate_no_mark_dirty),
	};

	return cmocka_run_group_tests_name("sim-migrate", tests, NULL, NULL);
}
