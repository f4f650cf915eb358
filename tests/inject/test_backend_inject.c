/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private-backend failures injected into concurrent faults and zaps.
 *
 * The recorder (tests/mirror) fails link_table and set_leaf with -EBUSY at
 * a rate from 0 to 50% and with a hard error (-ENOSPC) at a few per cent,
 * while vCPU threads fault both aliases and zap.  The window's first half
 * is owned: GFN i belongs to thread i % threads, which alone faults it
 * (4 KiB) and zaps it and so knows whether it must be mapped.  In the
 * second half every thread faults at 4 KiB and 2 MiB, nobody zaps, and
 * every GFN a fault reported mapped must stay mapped.  After quiescing:
 *   - no lost mapping: the owned half is exactly what its owners left,
 *     and nothing of the shared half that a fault mapped is missing;
 *   - no mapping a failed fault should not have made;
 *   - the mirror equals the backend entry for entry, nothing frozen;
 * and after teardown no table, page or backend entry is left.
 *
 * Seeded by $TDP_TEST_SEED (or the clock; printed).  TDP_TEST_QUICK=1
 * keeps each rate's run to a fraction of a second.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define NR_THREADS 4
#define BLOCKS 4
#define GFNS (BLOCKS * TS_PAGES_2M)
#define OWNED (GFNS / 2)

static struct sx_opts opts;

struct inject_run {
	struct ts_env e;
	struct sx_budget b;
	tdp_gfn_t base;
	/* Owned half: what the owner left, per alias. */
	bool *owned[2];
	/* Shared half: some fault of the GFN succeeded (atomic). */
	bool *mapped[2];
	/* Per alias and block: a 2 MiB fault succeeded there (atomic). */
	bool huge[2][BLOCKS];
	/* Private GFNs whose faults all failed hard so far (atomic). */
	long hard_errors;
	long faults;
};

struct inject_thread {
	struct inject_run *run;
	int id;
};

/* GFN i of the window: blocks in two 1 GiB regions. */
static tdp_gfn_t window_gfn(const struct inject_run *r, uint64_t i)
{
	uint64_t block = i / TS_PAGES_2M;

	return r->base + (block % 2) * TS_PAGES_1G +
	       (block / 2) * 5 * TS_PAGES_2M + i % TS_PAGES_2M;
}

static int fault(struct inject_run *r, struct tdp_vcpu *v, tdp_gfn_t g,
		 bool private, int level)
{
	return sx_fault(&r->e, v, g, private, TDP_PROT_RWX, level, 30.0, NULL);
}

static void *inject_vcpu(void *arg)
{
	struct inject_thread *t = arg;
	struct inject_run *r = t->run;
	struct tdp_vcpu *v = NULL;
	uint64_t rng = sx_seed_for(opts.seed, (uint64_t)t->id);
	long faults = 0;

	if (!SX_CHECK(tdp_vcpu_create(r->e.mmu, &v) == 0, "vcpu"))
		return NULL;
	while (sx_budget_next(&r->b)) {
		bool private = ts_rand_below(&rng, 3) != 0;
		uint64_t i;
		tdp_gfn_t g;
		int ret, level;

		if (ts_rand_below(&rng, 2)) {
			i = ts_rand_below(&rng, OWNED / NR_THREADS) *
				    NR_THREADS +
			    (uint64_t)t->id;
			g = window_gfn(r, i);
			if (ts_rand_below(&rng, 4) == 0) {
				ret = tdp_zap_range(r->e.mmu, g, g + 1,
						    ts_alias(private));
				SX_CHECK(ret == 0, "zap: %d", ret);
				r->owned[private][i] = false;
				continue;
			}
			ret = fault(r, v, g, private, TDP_LEVEL_4K);
			faults++;
			if (ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS)
				r->owned[private][i] = true;
			else if (ret == -ENOSPC && private)
				__atomic_add_fetch(&r->hard_errors, 1,
						   __ATOMIC_RELAXED);
			else
				SX_CHECK(false, "fault of %#" PRIx64 ": %d", g,
					 ret);
			continue;
		}
		i = OWNED + ts_rand_below(&rng, GFNS - OWNED);
		g = window_gfn(r, i);
		level = ts_rand_below(&rng, 4) ? TDP_LEVEL_4K : TDP_LEVEL_2M;
		ret = fault(r, v, g, private, level);
		faults++;
		if (ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS) {
			__atomic_store_n(&r->mapped[private][i - OWNED], true,
					 __ATOMIC_RELAXED);
			if (level == TDP_LEVEL_2M)
				__atomic_store_n(
					&r->huge[private][i / TS_PAGES_2M],
					true, __ATOMIC_RELAXED);
		} else if (ret == -ENOSPC && private)
			__atomic_add_fetch(&r->hard_errors, 1,
					   __ATOMIC_RELAXED);
		else
			SX_CHECK(false, "fault of %#" PRIx64 ": %d", g, ret);
	}
	__atomic_add_fetch(&r->faults, faults, __ATOMIC_RELAXED);
	tdp_vcpu_destroy(v);
	return NULL;
}

static bool leaf_at(struct inject_run *r, tdp_gfn_t g, bool private, int *level)
{
	return sx_lookup_leaf(&r->e, g, private, level, NULL);
}

/* Run the threads with @busy and @hard per-mille failure rates. */
static void run_rates(unsigned int busy, unsigned int hard)
{
	struct inject_run r = { .e = { 0 } };
	struct inject_thread th[NR_THREADS];
	struct sx_threads g = { .n = 0 };
	struct tdp_stats st;
	struct ts_counts c;
	long before = sx_failures();

	assert_true(sx_env_init(&r.e, 0, true, 4096));
	r.base = (1 + busy / 100 + hard) * TS_PAGES_512G;
	for (int a = 0; a < 2; a++) {
		r.owned[a] = calloc(OWNED, sizeof(bool));
		r.mapped[a] = calloc(GFNS - OWNED, sizeof(bool));
		assert_non_null(r.owned[a]);
		assert_non_null(r.mapped[a]);
	}
	ts_set_link_delay(r.e.be, 10);
	ts_set_injection(r.e.be, busy, hard, opts.seed + busy + hard);
	sx_budget_start(&r.b, opts.quick ? 0.25 : opts.seconds, opts.max_ops);
	for (int i = 0; i < NR_THREADS; i++) {
		th[i] = (struct inject_thread){ .run = &r, .id = i };
		sx_spawn(&g, inject_vcpu, &th[i]);
	}
	sx_join(&g);
	ts_set_injection(r.e.be, 0, 0, 0);

	/* No lost mapping, no mapping where every fault failed. */
	for (uint64_t i = 0; i < OWNED; i++)
		for (int a = 0; a < 2; a++)
			SX_CHECK(leaf_at(&r, window_gfn(&r, i), a, NULL) ==
					 r.owned[a][i],
				 "owned %s GFN %#" PRIx64 " is %smapped, its "
				 "owner left it %smapped",
				 a ? "private" : "shared", window_gfn(&r, i),
				 r.owned[a][i] ? "un" : "",
				 r.owned[a][i] ? "" : "un");
	for (uint64_t i = OWNED; i < GFNS; i++) {
		for (int a = 0; a < 2; a++) {
			tdp_gfn_t gfn = window_gfn(&r, i);
			int level = 0;
			bool have = leaf_at(&r, gfn, a, &level);

			if (r.mapped[a][i - OWNED])
				SX_CHECK(have,
					 "%s GFN %#" PRIx64 " was mapped "
					 "by a fault and is lost",
					 a ? "private" : "shared", gfn);
			else
				/* Only a 2 MiB leaf another GFN's fault made
				 * (perhaps split since) may cover a GFN no
				 * fault mapped. */
				SX_CHECK(!have || level > TDP_LEVEL_4K ||
						 r.huge[a][i / TS_PAGES_2M],
					 "%s GFN %#" PRIx64 " is mapped though "
					 "no fault of it succeeded",
					 a ? "private" : "shared", gfn);
		}
	}
	sx_check_quiesced(&r.e);
	tdp_mmu_get_stats(r.e.mmu, &st);
	c = ts_counts(r.e.be);
	printf("inject: busy %u.%u%% hard %u.%u%%: %ld faults, backend busy "
	       "%" PRIu64 ", hard errors %" PRIu64 " (%ld reported), %" PRIu64
	       " retries\n",
	       busy / 10, busy % 10, hard / 10, hard % 10, r.faults,
	       c.injected_busy, c.injected_errors, r.hard_errors,
	       st.faults_retried);
	if (busy && r.faults > 100)
		SX_CHECK(c.injected_busy > 0, "no busy result injected");
	if (hard && r.faults > 1000)
		SX_CHECK(c.injected_errors > 0, "no hard error injected");
	sx_env_fini(&r.e);
	for (int a = 0; a < 2; a++) {
		free(r.owned[a]);
		free(r.mapped[a]);
	}
	assert_int_equal(sx_failures() - before, 0);
}

static void test_busy_0(void **state)
{
	(void)state;
	run_rates(0, 0);
}

static void test_busy_10(void **state)
{
	(void)state;
	run_rates(100, 10);
}

static void test_busy_20(void **state)
{
	(void)state;
	run_rates(200, 10);
}

static void test_busy_30(void **state)
{
	(void)state;
	run_rates(300, 20);
}

static void test_busy_40(void **state)
{
	(void)state;
	run_rates(400, 20);
}

static void test_busy_50(void **state)
{
	(void)state;
	run_rates(500, 30);
}

/* Hard failures alone, frequent: every one must leave nothing behind. */
static void test_hard_only(void **state)
{
	(void)state;
	run_rates(0, 200);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_0),
		cmocka_unit_test(test_busy_10),
		cmocka_unit_test(test_busy_20),
		cmocka_unit_test(test_busy_30),
		cmocka_unit_test(test_busy_40),
		cmocka_unit_test(test_busy_50),
		cmocka_unit_test(test_hard_only),
	};
	int ret;

	if (sx_parse_opts(argc, argv, &opts, 0.25, 2.0, NR_THREADS))
		return 2;
	printf("inject: seed=%" PRIu64 "\n", opts.seed);
	tdp_thread_register();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	tdp_thread_unregister();
	sx_summary("test-inject-backend");
	return ret;
}
