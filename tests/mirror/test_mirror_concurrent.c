/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Concurrent faults against a slow backend: several threads fault GFNs of
 * one fresh 2 MiB region of the private alias at once while link_table
 * sleeps, so every thread but one meets the frozen entry of a table being
 * linked.  The recorder must never see a child before its parent, and
 * every fault must end FIXED.  A second test races faults of both aliases
 * against zaps (which take mmu_lock for write) and checks that no map
 * callback overlaps a removal, with busy and hard errors injected.
 *
 * Worker threads never call cmocka asserts: they count what went wrong and
 * the main thread asserts after joining them.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#define NR_THREADS 4
#define NR_REGIONS 150
#define FAULTS_PER_THREAD 8
#define LINK_SLEEP_US 2000

#define PFN_PRIVATE(g) ((g) + (1ULL << 36))
#define PFN_SHARED(g) ((g) + (2ULL << 36))

/*
 * Region @i: a 2 MiB region under a 1 GiB entry no earlier region used
 * (and, for the first five, under a fresh 512 GiB entry), so faulting it
 * links at least two tables.
 */
static tdp_gfn_t fresh_region(unsigned int i)
{
	return ((tdp_gfn_t)(i % 5) << 27) | ((tdp_gfn_t)((i / 5) % 512) << 18) |
	       ((tdp_gfn_t)((i * 37) % 512) << 9);
}

/* ---- parent before child -------------------------------------------------- */

struct region_thread {
	struct ts_env *e;
	pthread_barrier_t *barrier;
	int id;
	unsigned long retries, not_fixed, vcpu_errors;
	pthread_t tid;
};

static void *region_worker(void *arg)
{
	struct region_thread *t = arg;
	struct tdp_vcpu *vcpu = NULL;

	tdp_thread_register();
	if (tdp_vcpu_create(t->e->mmu, &vcpu))
		t->vcpu_errors++;
	for (unsigned int r = 0; r < NR_REGIONS; r++) {
		tdp_gfn_t base = fresh_region(r);

		/* All threads start on the region together. */
		pthread_barrier_wait(t->barrier);
		if (!vcpu)
			continue;
		for (int j = 0; j < FAULTS_PER_THREAD; j++) {
			tdp_gfn_t g = base + (tdp_gfn_t)t->id * 128 +
				      (tdp_gfn_t)j * 13;
			int ret = ts_map_retry(vcpu, g, TDP_ALIAS_PRIVATE,
					       PFN_PRIVATE(g), TDP_PROT_RWX,
					       TDP_LEVEL_4K, MENV_MAX_RETRIES,
					       0, &t->retries);

			if (ret != TDP_FAULT_FIXED) {
				fprintf(stderr,
					"thread %d: fault gfn %#llx "
					"returned %d, expected FIXED\n",
					t->id, (unsigned long long)g, ret);
				t->not_fixed++;
			}
		}
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return NULL;
}

static void test_concurrent_faults_link_parent_first(void **state)
{
	struct ts_env e;
	struct region_thread th[NR_THREADS];
	pthread_barrier_t barrier;
	unsigned long retries = 0;
	struct ts_counts c;

	(void)state;
	menv_init(&e, 4096, 0);
	ts_set_link_delay(e.be, LINK_SLEEP_US);
	assert_int_equal(pthread_barrier_init(&barrier, NULL, NR_THREADS), 0);
	for (int i = 0; i < NR_THREADS; i++) {
		th[i] = (struct region_thread){ .e = &e,
						.barrier = &barrier,
						.id = i };
		assert_int_equal(
			pthread_create(&th[i].tid, NULL, region_worker, &th[i]),
			0);
	}
	for (int i = 0; i < NR_THREADS; i++) {
		assert_int_equal(pthread_join(th[i].tid, NULL), 0);
		assert_int_equal(th[i].vcpu_errors, 0);
		assert_int_equal(th[i].not_fixed, 0);
		retries += th[i].retries;
	}
	pthread_barrier_destroy(&barrier);

	/* The threads did meet each other's frozen entries. */
	assert_true(retries > 0);
	c = ts_counts(e.be);
	assert_int_equal(c.ok[TS_SET_LEAF],
			 NR_REGIONS * NR_THREADS * FAULTS_PER_THREAD);
	assert_int_equal(c.calls[TS_LINK_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(ts_compare(e.be, e.mmu, 0, 5ULL << 27), 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/* ---- faults racing zaps ------------------------------------------------------ */

#define RACE_REGIONS 16
#define RACE_FAULTS 3000
#define RACE_ZAPPERS 2

struct race {
	struct ts_env *e;
	int faulters_left; /* atomic */
};

struct race_thread {
	struct race *race;
	uint64_t seed;
	unsigned long bad, zaps;
	pthread_t tid;
};

static void *race_faulter(void *arg)
{
	struct race_thread *t = arg;
	struct tdp_mmu *mmu = t->race->e->mmu;
	struct tdp_vcpu *vcpu = NULL;
	uint64_t rng = t->seed;

	tdp_thread_register();
	if (tdp_vcpu_create(mmu, &vcpu)) {
		t->bad++;
		goto out;
	}
	for (int i = 0; i < RACE_FAULTS; i++) {
		uint64_t x = ts_rand(&rng);
		tdp_gfn_t g = fresh_region((unsigned int)(x % RACE_REGIONS)) +
			      ((x >> 8) % 512);
		enum tdp_alias alias =
			(x >> 20) % 3 ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
		int max_level = (x >> 24) % 8 ? TDP_LEVEL_4K : TDP_LEVEL_2M;
		int ret = ts_map_retry(
			vcpu, g, alias,
			alias == TDP_ALIAS_PRIVATE ? PFN_PRIVATE(g)
						   : PFN_SHARED(g),
			TDP_PROT_RWX, max_level, MENV_MAX_RETRIES, 0, NULL);

		if (ret == -ENOSPC && alias == TDP_ALIAS_PRIVATE)
			continue; /* injected hard error */
		if (ret != TDP_FAULT_FIXED && ret != TDP_FAULT_SPURIOUS) {
			fprintf(stderr, "fault gfn %#llx: %d\n",
				(unsigned long long)g, ret);
			t->bad++;
		}
	}
	tdp_vcpu_destroy(vcpu);
out:
	__atomic_sub_fetch(&t->race->faulters_left, 1, __ATOMIC_RELEASE);
	tdp_thread_unregister();
	return NULL;
}

static void *race_zapper(void *arg)
{
	struct race_thread *t = arg;
	struct tdp_mmu *mmu = t->race->e->mmu;
	uint64_t rng = t->seed;

	tdp_thread_register();
	while (__atomic_load_n(&t->race->faulters_left, __ATOMIC_ACQUIRE)) {
		uint64_t x = ts_rand(&rng);
		tdp_gfn_t base = fresh_region((unsigned int)(x % RACE_REGIONS));
		tdp_gfn_t start = base + ((x >> 8) % 512);
		tdp_gfn_t end = start + 1 + ((x >> 20) % 64);
		int ret;

		switch ((x >> 32) % 4) {
		case 0:
			ret = tdp_zap_convert_to_shared(mmu, start, end);
			break;
		case 1:
			ret = tdp_zap_convert_to_private(mmu, start, end);
			break;
		case 2:
			ret = tdp_zap_slot_deleted(mmu, start, end);
			break;
		default:
			ret = ts_host_unmap(mmu, start, end);
			break;
		}
		if (ret) {
			fprintf(stderr, "zap [%#llx, %#llx): %d\n",
				(unsigned long long)start,
				(unsigned long long)end, ret);
			t->bad++;
		}
		t->zaps++;
	}
	tdp_thread_unregister();
	return NULL;
}

static void run_faults_race_zaps(unsigned int mmu_flags, uint64_t seed)
{
	struct ts_env e;
	struct race race;
	struct race_thread f[NR_THREADS], z[RACE_ZAPPERS];
	struct ts_counts c;
	unsigned long zaps = 0;

	menv_init(&e, 4096, mmu_flags);
	ts_set_link_delay(e.be, 200);
	ts_set_injection(e.be, 100, 20, seed);
	race = (struct race){ .e = &e, .faulters_left = NR_THREADS };
	for (int i = 0; i < NR_THREADS; i++) {
		f[i] = (struct race_thread){ .race = &race, .seed = seed + i };
		assert_int_equal(
			pthread_create(&f[i].tid, NULL, race_faulter, &f[i]),
			0);
	}
	for (int i = 0; i < RACE_ZAPPERS; i++) {
		z[i] = (struct race_thread){ .race = &race,
					     .seed = seed + 100 + i };
		assert_int_equal(
			pthread_create(&z[i].tid, NULL, race_zapper, &z[i]), 0);
	}
	for (int i = 0; i < NR_THREADS; i++) {
		assert_int_equal(pthread_join(f[i].tid, NULL), 0);
		assert_int_equal(f[i].bad, 0);
	}
	for (int i = 0; i < RACE_ZAPPERS; i++) {
		assert_int_equal(pthread_join(z[i].tid, NULL), 0);
		assert_int_equal(z[i].bad, 0);
		zaps += z[i].zaps;
	}
	ts_set_injection(e.be, 0, 0, 0);

	assert_true(zaps > 0);
	c = ts_counts(e.be);
	assert_true(c.ok[TS_REMOVE_LEAF] > 0);
	assert_int_equal(ts_compare(e.be, e.mmu, 0, 5ULL << 27), 0);
	assert_int_equal(ts_violations(e.be), 0);

	/* Teardown hands every table back, children first. */
	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), 0);
	c = ts_counts(e.be);
	assert_int_equal(c.ok[TS_FREE_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(ts_nr_leaves(e.be), 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

static void test_faults_race_zaps(void **state)
{
	(void)state;
	run_faults_race_zaps(0, ts_seed(0xfa017));
}

static void test_faults_race_zaps_forced_yield(void **state)
{
	(void)state;
	run_faults_race_zaps(TDP_MMU_FORCE_YIELD, ts_seed(0xfa018));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_faults_link_parent_first),
		cmocka_unit_test(test_faults_race_zaps),
		cmocka_unit_test(test_faults_race_zaps_forced_yield),
	};

	return TS_RUN_GROUP("tests", tests);
}
