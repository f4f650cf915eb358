/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Roots and their lifecycle: sharing through tdp_root_get() and the
 * reference count, invalidation, the exactly-once zap of invalidated
 * roots, freeing after the last reference, concurrent getters, and
 * teardown (empty statistics, -ESHUTDOWN afterwards, refused while a vCPU
 * context lives).
 *
 * White-box only for tdp_rcu_barrier(), to observe frees that happen after
 * a grace period without tearing the MMU down.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "internal.h"

#define NR_GETTERS 16

static void test_root_get_shares_root(void **state)
{
	struct ts_env *env = *state;
	struct tdp_root *a = NULL, *b = NULL;
	struct tdp_stats st;

	assert_int_equal(tdp_root_get(env->mmu, TDP_ROOT_DIRECT, &a), 0);
	assert_non_null(a);
	assert_true(tdp_root_is_valid(a));
	assert_int_equal(tdp_root_type_of(a), TDP_ROOT_DIRECT);
	/* The MMU's own reference plus ours. */
	assert_int_equal(tdp_root_refcount(a), 2);

	assert_int_equal(tdp_root_get(env->mmu, TDP_ROOT_DIRECT, &b), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(tdp_root_refcount(a), 3);

	tdp_root_put(env->mmu, b);
	assert_int_equal(tdp_root_refcount(a), 2);
	tdp_root_put(env->mmu, a);
	assert_int_equal(tdp_root_refcount(a), 1);
	assert_true(tdp_root_is_valid(a));

	st = th_stats(env->mmu);
	assert_int_equal(st.roots_allocated, 1);
	assert_int_equal(st.roots_freed, 0);
}

/* A vCPU holds a reference to the root it loaded until it is destroyed. */
static void test_vcpu_holds_root(void **state)
{
	struct ts_env *env = *state;
	struct tdp_root *r;

	TS_MAP_FIXED(env->vcpu, 1, 1, TDP_PROT_READ, 1);
	assert_int_equal(tdp_root_get(env->mmu, TDP_ROOT_DIRECT, &r), 0);
	assert_int_equal(tdp_root_refcount(r), 3);
	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	assert_int_equal(tdp_root_refcount(r), 2);
	tdp_root_put(env->mmu, r);
}

static void test_invalidate_gives_new_root(void **state)
{
	struct ts_env *env = *state;
	struct tdp_root *old, *fresh;
	struct tdp_stats st;

	assert_int_equal(tdp_root_get(env->mmu, TDP_ROOT_DIRECT, &old), 0);
	assert_int_equal(tdp_mmu_invalidate_roots(env->mmu, TDP_ALIAS_SHARED),
			 0);
	assert_false(tdp_root_is_valid(old));
	/* Invalidation zaps nothing and drops no reference by itself. */
	assert_int_equal(tdp_root_refcount(old), 2);

	assert_int_equal(tdp_root_get(env->mmu, TDP_ROOT_DIRECT, &fresh), 0);
	assert_ptr_not_equal(old, fresh);
	assert_true(tdp_root_is_valid(fresh));
	assert_int_equal(tdp_root_type_of(fresh), TDP_ROOT_DIRECT);
	assert_int_equal(tdp_root_refcount(fresh), 2);
	st = th_stats(env->mmu);
	assert_int_equal(st.roots_allocated, 2);
	/* The invalid root is still linked until the last put. */
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 2);

	/* The zap drops the MMU's reference; ours keeps the root alive. */
	assert_int_equal(tdp_mmu_zap_invalidated_roots(env->mmu), 0);
	assert_int_equal(tdp_root_refcount(old), 1);
	tdp_rcu_barrier();
	assert_int_equal(th_stats(env->mmu).roots_freed, 0);

	tdp_root_put(env->mmu, old);
	tdp_rcu_barrier();
	st = th_stats(env->mmu);
	assert_int_equal(st.roots_freed, 1);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 1);

	tdp_root_put(env->mmu, fresh);
	assert_int_equal(tdp_root_refcount(fresh), 1);
}

/* Invalidated roots are zapped exactly once, whoever calls the zap. */
static void test_zap_invalidated_exactly_once(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_stats before, first, second;
	uint64_t flushes;

	for (tdp_gfn_t g = 0; g < 100; g++)
		TS_MAP_FIXED(env->vcpu, g, 0x100 + g, TDP_PROT_READ, 1);
	TS_MAP_FIXED(env->vcpu, TS_PAGES_1G, 0x40000, TDP_PROT_READ, 2);
	before = th_stats(mmu);
	assert_int_equal(ts_stat_leaves(&before, -1), 101);

	assert_int_equal(tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED), 0);
	/* Invalidation alone zaps nothing. */
	assert_int_equal(th_stats(mmu).zapped_leaves, 0);

	ts_flush_reset(&env->log);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(mmu), 0);
	first = th_stats(mmu);
	assert_int_equal(first.zapped_leaves, 101);
	assert_int_equal(ts_stat_leaves(&first, -1), 0);
	/* Every table below the root: 1 + 1 at levels 3 and 2, 1 at level 1. */
	assert_int_equal(
		first.zapped_tables,
		ts_stat_tables(&before, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1) -
			1);
	/*
	 * A vCPU may still run on the invalid root: everything cleared was
	 * flushed (test_root_zap.c checks the order against such a vCPU).
	 */
	for (tdp_gfn_t g = 0; g < 100; g++)
		assert_true(ts_flush_covers(&env->log, g));
	assert_true(ts_flush_covers(&env->log, TS_PAGES_1G + 3));
	flushes = env->log.nr_range + env->log.nr_all;

	assert_int_equal(tdp_mmu_zap_invalidated_roots(mmu), 0);
	/* Nothing left to zap, nothing to flush. */
	assert_int_equal(env->log.nr_range + env->log.nr_all, flushes);
	second = th_stats(mmu);
	assert_int_equal(second.zapped_leaves, first.zapped_leaves);
	assert_int_equal(second.zapped_tables, first.zapped_tables);
	assert_memory_equal(second.tables, first.tables, sizeof(first.tables));
	assert_memory_equal(second.leaves, first.leaves, sizeof(first.leaves));

	/* Nothing maps through the valid root of the shared alias. */
	for (tdp_gfn_t g = 0; g < 100; g++)
		assert_false(ts_lookup(mmu, g, TDP_ALIAS_SHARED).present);
	assert_false(ts_lookup(mmu, TS_PAGES_1G + 3, TDP_ALIAS_SHARED).present);

	/* The vCPU moves to a fresh root at its next fault. */
	assert_int_equal(ts_map_retry(env->vcpu, 5, TDP_ALIAS_SHARED, 0x105,
				      TDP_PROT_READ, 1, 16, 0, NULL),
			 TDP_FAULT_FIXED);
	assert_true(ts_lookup(mmu, 5, TDP_ALIAS_SHARED).present);
	assert_int_equal(th_stats(mmu).roots_allocated, 2);
	/* ... and its reference to the old root was the last one. */
	tdp_rcu_barrier();
	assert_int_equal(th_stats(mmu).roots_freed, 1);
	assert_int_equal(th_stats(mmu).tables[TDP_ROOT_DIRECT][4], 1);
}

struct getter {
	pthread_t thread;
	struct tdp_mmu *mmu;
	pthread_barrier_t *start;
	struct tdp_root *root;
	int ret;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;

	tdp_thread_register();
	pthread_barrier_wait(g->start);
	g->ret = tdp_root_get(g->mmu, TDP_ROOT_DIRECT, &g->root);
	tdp_thread_unregister();
	return NULL;
}

static void run_getters(struct tdp_mmu *mmu, struct getter *g)
{
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, NR_GETTERS);
	for (int i = 0; i < NR_GETTERS; i++) {
		g[i] = (struct getter){ .mmu = mmu, .start = &start };
		assert_int_equal(
			pthread_create(&g[i].thread, NULL, getter_main, &g[i]),
			0);
	}
	for (int i = 0; i < NR_GETTERS; i++)
		pthread_join(g[i].thread, NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < NR_GETTERS; i++) {
		assert_int_equal(g[i].ret, 0);
		assert_ptr_equal(g[i].root, g[0].root);
	}
}

static void test_concurrent_root_get(void **state)
{
	struct ts_env *env = *state;
	struct getter g[NR_GETTERS];
	struct tdp_root *old;
	struct tdp_stats st;

	/* A valid root exists: everyone shares it. */
	run_getters(env->mmu, g);
	assert_int_equal(tdp_root_refcount(g[0].root), NR_GETTERS + 1);
	old = g[0].root;
	assert_int_equal(tdp_mmu_invalidate_roots(env->mmu, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(env->mmu), 0);
	for (int i = 0; i < NR_GETTERS; i++)
		tdp_root_put(env->mmu, g[i].root);

	/* No valid root: the racing getters allocate exactly one. */
	run_getters(env->mmu, g);
	assert_ptr_not_equal(g[0].root, old);
	assert_true(tdp_root_is_valid(g[0].root));
	assert_int_equal(tdp_root_refcount(g[0].root), NR_GETTERS + 1);
	st = th_stats(env->mmu);
	assert_int_equal(st.roots_allocated, 2);
	assert_int_equal(st.tables[TDP_ROOT_DIRECT][4], 1);
	for (int i = 0; i < NR_GETTERS; i++)
		tdp_root_put(env->mmu, g[i].root);
	tdp_rcu_barrier();
	st = th_stats(env->mmu);
	assert_int_equal(st.roots_freed, 1);
	/* The losers' tables went back: one root, and nothing else. */
	assert_int_equal(
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1), 1);
}

static void test_teardown_refused_with_vcpu(void **state)
{
	struct ts_env *env = *state;
	struct tdp_stats before, after;

	TS_MAP_FIXED(env->vcpu, 3, 0x33, TDP_PROT_READ, 1);
	tdp_rcu_barrier();
	before = th_stats(env->mmu);
	assert_int_equal(tdp_mmu_teardown(env->mmu), -EINVAL);
	after = th_stats(env->mmu);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_true(ts_lookup(env->mmu, 3, TDP_ALIAS_SHARED).present);
	/* Still fully usable. */
	TS_MAP_FIXED(env->vcpu, 4, 0x44, TDP_PROT_READ, 1);
	assert_int_equal(tdp_mmu_teardown(NULL), -EINVAL);
}

static void test_teardown(void **state)
{
	struct ts_env *env = *state;
	struct tdp_mmu *mmu = env->mmu;
	struct tdp_root *r, *held;
	struct tdp_vcpu *v;
	struct tdp_stats st;
	tdp_spte_t spte;
	int level;

	for (tdp_gfn_t g = 0; g < 600; g++)
		TS_MAP_FIXED(env->vcpu, g * 3, 0x1000 + g, TDP_PROT_READ, 1);
	TS_MAP_FIXED(env->vcpu, 4 * TS_PAGES_1G, 0, TDP_PROT_READ, 2);
	TS_MAP_FIXED(env->vcpu, TS_PLAIN_GFN_LIMIT - 1, 7, TDP_PROT_READ, 1);
	/* An invalidated root no one zapped yet, still referenced... */
	assert_int_equal(tdp_root_get(mmu, TDP_ROOT_DIRECT, &held), 0);
	assert_int_equal(tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED), 0);
	tdp_root_put(mmu, held);
	/* ...and a fresh root with leaves of its own. */
	assert_int_equal(ts_map_retry(env->vcpu, 9, TDP_ALIAS_SHARED, 0x99,
				      TDP_PROT_READ, 1, 16, 0, NULL),
			 TDP_FAULT_FIXED);
	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;

	assert_int_equal(tdp_mmu_teardown(mmu), 0);
	st = th_stats(mmu);
	assert_int_equal(st.pages_in_use, 0);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
			if (st.tables[t][l] || st.leaves[t][l])
				fail_msg(
					"after teardown: tables[%d][%d]=%llu leaves[%d][%d]=%llu",
					t, l,
					(unsigned long long)st.tables[t][l], t,
					l, (unsigned long long)st.leaves[t][l]);
		}
	}
	assert_int_equal(st.zapped_leaves, 603);
	assert_int_equal(st.roots_allocated, 2);
	assert_int_equal(st.roots_freed, 2);
	assert_false(tdp_mmu_is_dead(mmu));

	/* Everything but statistics and destroy is refused now. */
	assert_int_equal(tdp_vcpu_create(mmu, &v), -ESHUTDOWN);
	assert_int_equal(tdp_lookup(mmu, 0, TDP_ALIAS_SHARED, &spte, &level),
			 -ESHUTDOWN);
	assert_int_equal(tdp_root_get(mmu, TDP_ROOT_DIRECT, &r), -ESHUTDOWN);
	assert_int_equal(tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED),
			 -ESHUTDOWN);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(mmu), -ESHUTDOWN);
	assert_int_equal(tdp_zap_range(mmu, 0, 10, TDP_ALIAS_SHARED),
			 -ESHUTDOWN);
	assert_int_equal(tdp_zap_all(mmu), -ESHUTDOWN);
	assert_int_equal(tdp_zap_slot_deleted(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_zap_host_unmap(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_zap_convert_to_shared(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_zap_convert_to_private(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_invalidate_begin(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_invalidate_end(mmu, 0, 10), -ESHUTDOWN);
	assert_int_equal(tdp_mmu_set_mmio_generation(mmu, 3), -ESHUTDOWN);
	assert_int_equal(tdp_mmu_get_stats(mmu, &st), 0);
	assert_int_equal(st.pages_in_use, 0);
}

/*
 * "Afterwards every operation except tdp_mmu_get_stats() and
 * tdp_mmu_destroy() returns -ESHUTDOWN" (tdp/mmu.h): teardown included.
 */
static void test_teardown_twice(void **state)
{
	struct ts_env *env = *state;
	struct tdp_stats before, after;

	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(env->mmu), 0);
	before = th_stats(env->mmu);
	assert_int_equal(tdp_mmu_teardown(env->mmu), -ESHUTDOWN);
	after = th_stats(env->mmu);
	assert_memory_equal(&before, &after, sizeof(before));
}

/* Destroy without teardown frees everything (the sanitizers check). */
static void test_destroy_without_teardown(void **state)
{
	struct ts_env *env = *state;

	for (tdp_gfn_t g = 0; g < 2000; g += 7)
		assert_true(ts_map(env->vcpu, g, TDP_ALIAS_SHARED, g,
				   TDP_PROT_RWX, 2) >= 0);
	assert_int_equal(tdp_mmu_invalidate_roots(env->mmu, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(ts_map_retry(env->vcpu, 1, TDP_ALIAS_SHARED, 1,
				      TDP_PROT_READ, 1, 16, 0, NULL) >= 0,
			 1);
	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	tdp_mmu_destroy(env->mmu);
	env->mmu = NULL;
	tdp_mmu_destroy(NULL);
	tdp_vcpu_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TS_CMOCKA_TEST(test_root_get_shares_root),
		TS_CMOCKA_TEST(test_vcpu_holds_root),
		TS_CMOCKA_TEST(test_invalidate_gives_new_root),
		TS_CMOCKA_TEST(test_zap_invalidated_exactly_once),
		TS_CMOCKA_TEST(test_concurrent_root_get),
		TS_CMOCKA_TEST(test_teardown_refused_with_vcpu),
		TS_CMOCKA_TEST(test_teardown),
		TS_CMOCKA_TEST(test_teardown_twice),
		TS_CMOCKA_TEST(test_destroy_without_teardown),
	};

	return TS_RUN_GROUP("roots", tests);
}
