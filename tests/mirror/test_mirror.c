/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private backend seen from the backend: the freeze protocol's order
 * of callbacks, busy and hard errors of map callbacks, failed removals
 * (the dead state), teardown, root invalidation of the mirror, and the
 * backend pages handed to link_table / free_table.
 */
#include "harness.h"

/* White box: tdp_port_fail_alloc_after() of the user-space port. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

/* A GFN whose path crosses non-zero indexes at every level. */
#define G_DEEP ((5ULL << 27) | (7ULL << 18) | (9ULL << 9) | 3)
/* PFNs: private and shared frames of GFN g, congruent to g modulo 1 GiB. */
#define PFN_PRIVATE(g) ((g) + (1ULL << 36))
#define PFN_SHARED(g) ((g) + (2ULL << 36))

static void assert_event(struct ts_backend *rec, size_t i, enum ts_call call,
			 tdp_gfn_t gfn, int level, int ret)
{
	struct ts_event ev = ts_log_get(rec, i);

	if (ev.call != call || ev.gfn != gfn || ev.level != level ||
	    ev.ret != ret)
		fail_msg("event %zu: got call %d gfn %#llx level %d ret %d, "
			 "expected call %d gfn %#llx level %d ret %d",
			 i, ev.call, (unsigned long long)ev.gfn, ev.level,
			 ev.ret, call, (unsigned long long)gfn, level, ret);
}

/* ---- freeze protocol ---------------------------------------------------- */

struct frozen_probe {
	struct tdp_mmu *mmu;
	unsigned int calls;
	unsigned int not_frozen; /* callbacks whose entry was not FROZEN */
};

/* Inside a map callback the mirror entry being changed reads FROZEN. */
static void probe_frozen(void *arg, enum ts_call call, tdp_gfn_t gfn, int level)
{
	struct frozen_probe *p = arg;
	const struct tdp_spte_format *fmt = tdp_mmu_format(p->mmu);
	tdp_spte_t spte = 0;
	int lvl = 0;
	int ret = tdp_lookup(p->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &lvl);

	p->calls++;
	if (ret || lvl != level || !tdp_spte_is_frozen(fmt, spte)) {
		fprintf(stderr,
			"%s(gfn %#llx, level %d): lookup ret %d level "
			"%d spte %#llx, expected the frozen value\n",
			call == TS_LINK_TABLE ? "link_table" : "set_leaf",
			(unsigned long long)gfn, level, ret, lvl,
			(unsigned long long)spte);
		p->not_frozen++;
	}
}

static void test_private_fault_links_top_down(void **state)
{
	struct ts_env e;
	struct frozen_probe probe = { 0 };
	tdp_gfn_t g = G_DEEP, g2m, g1g;
	int level;
	tdp_pfn_t pfn;

	(void)state;
	menv_init(&e, 0, 0);
	probe.mmu = e.mmu;
	ts_set_hook(e.be, probe_frozen, &probe);
	ts_log_enable(e.be, true);

	/* Empty tree: one link per missing level, top-down, then the leaf. */
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 4);
	assert_event(e.be, 0, TS_LINK_TABLE, ts_round_down(g, 4), 4, 0);
	assert_event(e.be, 1, TS_LINK_TABLE, ts_round_down(g, 3), 3, 0);
	assert_event(e.be, 2, TS_LINK_TABLE, ts_round_down(g, 2), 2, 0);
	assert_event(e.be, 3, TS_SET_LEAF, g, 1, 0);
	assert_int_equal(ts_log_get(e.be, 3).pfn, PFN_PRIVATE(g));
	assert_int_equal(probe.calls, 4);

	/* Same table: only the leaf. */
	ts_log_clear(e.be);
	assert_int_equal(ts_map(e.vcpu, g + 1, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g + 1), TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_SET_LEAF, g + 1, 1, 0);

	/* Already mapped: spurious, no callback. */
	ts_log_clear(e.be);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_SPURIOUS);
	assert_int_equal(ts_log_count(e.be), 0);

	/* The shared alias of the same GFN never reaches the backend. */
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_SHARED, PFN_SHARED(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 0);
	assert_true(menv_lookup_leaf(e.mmu, g, TDP_ALIAS_SHARED, &level, &pfn));
	assert_int_equal(level, 1);
	assert_int_equal(pfn, PFN_SHARED(g));
	assert_true(
		menv_lookup_leaf(e.mmu, g, TDP_ALIAS_PRIVATE, &level, &pfn));
	assert_int_equal(level, 1);
	assert_int_equal(pfn, PFN_PRIVATE(g));

	/* A 2 MiB leaf in a fresh 2 MiB region of the same 1 GiB table. */
	g2m = ts_round_down(g, 3) + 3 * 512 + 17;
	assert_int_equal(ts_map(e.vcpu, g2m, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g2m), TDP_PROT_RWX, TDP_LEVEL_2M),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_SET_LEAF, ts_round_down(g2m, 2), 2, 0);
	assert_int_equal(ts_log_get(e.be, 0).pfn,
			 PFN_PRIVATE(ts_round_down(g2m, 2)));

	/* A 1 GiB leaf under a fresh 512 GiB entry: one link, one leaf. */
	ts_log_clear(e.be);
	g1g = (6ULL << 27) | (2ULL << 18) | 0x12345;
	assert_int_equal(ts_map(e.vcpu, g1g, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g1g), TDP_PROT_RWX, TDP_LEVEL_1G),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 2);
	assert_event(e.be, 0, TS_LINK_TABLE, ts_round_down(g1g, 4), 4, 0);
	assert_event(e.be, 1, TS_SET_LEAF, ts_round_down(g1g, 3), 3, 0);
	assert_int_equal(ts_log_get(e.be, 1).pfn,
			 PFN_PRIVATE(ts_round_down(g1g, 3)));
	assert_true(menv_lookup_leaf(e.mmu, g1g + 1000, TDP_ALIAS_PRIVATE,
				     &level, &pfn));
	assert_int_equal(level, 3);
	assert_int_equal(pfn, PFN_PRIVATE(ts_round_down(g1g, 3)));
	/* Converting one page of it to shared removes the whole leaf. */
	ts_log_clear(e.be);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, g1g, g1g + 1), 0);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_REMOVE_LEAF, ts_round_down(g1g, 3), 3, 0);
	assert_false(menv_lookup_leaf(e.mmu, g1g + 1000, TDP_ALIAS_PRIVATE,
				      NULL, NULL));

	assert_int_equal(probe.not_frozen, 0);
	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

static void test_shared_never_calls_backend(void **state)
{
	struct ts_env e;
	tdp_gfn_t g = G_DEEP;
	tdp_gfn_t g2 = (9ULL << 27) | (4ULL << 18) | 5;	  /* 2 MiB below */
	tdp_gfn_t g1 = (11ULL << 27) | (3ULL << 18) | 77; /* 1 GiB below */
	int level;

	(void)state;
	menv_init(&e, 4096, 0);
	ts_log_enable(e.be, true);

	for (int i = 0; i < 64; i++)
		assert_int_equal(ts_map(e.vcpu, g + i, TDP_ALIAS_SHARED,
					PFN_SHARED(g + i), TDP_PROT_RWX,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e.vcpu, g2, TDP_ALIAS_SHARED, PFN_SHARED(g2),
				TDP_PROT_RWX, TDP_LEVEL_2M),
			 TDP_FAULT_FIXED);
	assert_true(
		menv_lookup_leaf(e.mmu, g2, TDP_ALIAS_SHARED, &level, NULL));
	assert_int_equal(level, 2);
	assert_int_equal(ts_map(e.vcpu, g1, TDP_ALIAS_SHARED, PFN_SHARED(g1),
				TDP_PROT_RWX, TDP_LEVEL_1G),
			 TDP_FAULT_FIXED);
	assert_true(
		menv_lookup_leaf(e.mmu, g1, TDP_ALIAS_SHARED, &level, NULL));
	assert_int_equal(level, 3);

	/* Shared-only zaps never reach the backend either. */
	assert_int_equal(tdp_zap_host_unmap(e.mmu, g, g + 8), 0);
	assert_int_equal(tdp_zap_convert_to_private(e.mmu, g + 8, g + 16), 0);
	assert_int_equal(tdp_zap_range(e.mmu, g + 16, g + 32, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_zap_all(e.mmu), 0);
	assert_int_equal(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED), 0);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	/* Private zaps of an empty mirror have nothing to tell it. */
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, g, g + 64), 0);

	assert_int_equal(ts_log_count(e.be), 0);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/* ---- busy and hard errors ------------------------------------------------ */

#define INJ_THREADS 4
#define INJ_FAULTS 1500
#define INJ_REGIONS 32

static tdp_gfn_t inj_region(unsigned int r)
{
	return ((tdp_gfn_t)(r % 3) << 27) | ((tdp_gfn_t)((r * 7) % 512) << 18) |
	       ((tdp_gfn_t)((r * 13) % 512) << 9);
}

struct inj_thread {
	struct ts_env *e;
	uint64_t seed;
	unsigned long retries, fixed, spurious, hard, unexpected;
	pthread_t tid;
};

static void *inj_worker(void *arg)
{
	struct inj_thread *t = arg;
	struct tdp_vcpu *vcpu;
	uint64_t rng = t->seed;

	tdp_thread_register();
	if (tdp_vcpu_create(t->e->mmu, &vcpu)) {
		t->unexpected++;
		tdp_thread_unregister();
		return NULL;
	}
	for (int i = 0; i < INJ_FAULTS; i++) {
		uint64_t x = ts_rand(&rng);
		tdp_gfn_t g = inj_region((unsigned int)(x % INJ_REGIONS)) +
			      ((x >> 8) % 512);
		int max_level =
			(x >> 20) % 4 == 0 ? TDP_LEVEL_2M : TDP_LEVEL_4K;
		int ret = ts_map_retry(vcpu, g, TDP_ALIAS_PRIVATE,
				       PFN_PRIVATE(g), TDP_PROT_RWX, max_level,
				       MENV_MAX_RETRIES, 0, &t->retries);

		if (ret == TDP_FAULT_FIXED)
			t->fixed++;
		else if (ret == TDP_FAULT_SPURIOUS)
			t->spurious++;
		else if (ret == -ENOSPC)
			t->hard++;
		else {
			fprintf(stderr, "fault gfn %#llx: unexpected %d\n",
				(unsigned long long)g, ret);
			t->unexpected++;
		}
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return NULL;
}

static void test_busy_and_hard_error_injection(void **state)
{
	struct ts_env e;
	struct inj_thread th[INJ_THREADS];
	unsigned long retries = 0, hard = 0, fixed = 0;
	struct ts_counts c;
	struct tdp_stats st;
	uint64_t seed = ts_seed(0x1ecf00d);

	(void)state;
	menv_init(&e, 0, 0);
	ts_set_injection(e.be, 300, 100, seed);
	for (int i = 0; i < INJ_THREADS; i++) {
		th[i] = (struct inj_thread){ .e = &e, .seed = seed + 1000 * i };
		assert_int_equal(
			pthread_create(&th[i].tid, NULL, inj_worker, &th[i]),
			0);
	}
	for (int i = 0; i < INJ_THREADS; i++) {
		assert_int_equal(pthread_join(th[i].tid, NULL), 0);
		assert_int_equal(th[i].unexpected, 0);
		retries += th[i].retries;
		hard += th[i].hard;
		fixed += th[i].fixed;
	}
	ts_set_injection(e.be, 0, 0, 0);

	/* Quiescent: the mirror is exactly what the backend accepted. */
	assert_int_equal(ts_compare(e.be, e.mmu, 0, 3ULL << 27), 0);
	assert_int_equal(ts_violations(e.be), 0);

	c = ts_counts(e.be);
	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	assert_true(c.injected_busy > 0);
	assert_true(c.injected_errors > 0);
	assert_int_equal(st.backend_busy, c.injected_busy);
	assert_int_equal(st.backend_errors, c.injected_errors);
	/* Each hard error reached exactly one tdp_map() caller. */
	assert_int_equal(hard, c.injected_errors);
	/* Each busy made a fault retry. */
	assert_true(retries >= c.injected_busy);
	assert_true(fixed > 0);
	assert_int_equal(c.ok[TS_SET_LEAF], ts_nr_leaves(e.be));
	ts_env_destroy(&e);
}

static void test_hard_error_returned_unchanged(void **state)
{
	struct ts_env e;
	tdp_gfn_t g = G_DEEP;
	tdp_gfn_t g_other2m = ts_round_down(g, 3) + 40 * 512 + 9;
	tdp_spte_t spte;
	struct tdp_stats st;
	int level;

	(void)state;
	menv_init(&e, 4096, 0);
	ts_log_enable(e.be, true);

	/* link_table fails hard at the root entry: nothing changes. */
	ts_fail_next_map(e.be, TS_LINK_TABLE, -ENOSPC);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 -ENOSPC);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_LINK_TABLE, ts_round_down(g, 4), 4, -ENOSPC);
	assert_int_equal(tdp_lookup(e.mmu, g, TDP_ALIAS_PRIVATE, &spte, &level),
			 0);
	assert_int_equal(level, 4);
	assert_false(tdp_spte_is_present(tdp_mmu_format(e.mmu), spte));
	assert_false(tdp_spte_is_frozen(tdp_mmu_format(e.mmu), spte));

	/* -EBUSY is a retry, with the mirror as before. */
	ts_fail_next_map(e.be, TS_LINK_TABLE, -EBUSY);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_RETRY);
	assert_int_equal(tdp_lookup(e.mmu, g, TDP_ALIAS_PRIVATE, &spte, &level),
			 0);
	assert_int_equal(level, 4);
	assert_false(tdp_spte_is_present(tdp_mmu_format(e.mmu), spte));

	/* Now it works. */
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);

	/* set_leaf fails with an unusual errno: passed through as is. */
	ts_log_clear(e.be);
	ts_fail_next_map(e.be, TS_SET_LEAF, -EPERM);
	assert_int_equal(ts_map(e.vcpu, g + 1, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g + 1), TDP_PROT_RWX, TDP_LEVEL_4K),
			 -EPERM);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_SET_LEAF, g + 1, 1, -EPERM);
	assert_false(
		menv_lookup_leaf(e.mmu, g + 1, TDP_ALIAS_PRIVATE, NULL, NULL));
	assert_int_equal(
		tdp_lookup(e.mmu, g + 1, TDP_ALIAS_PRIVATE, &spte, &level), 0);
	assert_int_equal(level, 1);

	/* A hard error one level down: the level-2 entry stays empty. */
	ts_log_clear(e.be);
	ts_fail_next_map(e.be, TS_LINK_TABLE, -ENOSPC);
	assert_int_equal(ts_map(e.vcpu, g_other2m, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(g_other2m), TDP_PROT_RWX,
				TDP_LEVEL_4K),
			 -ENOSPC);
	assert_int_equal(ts_log_count(e.be), 1);
	assert_event(e.be, 0, TS_LINK_TABLE, ts_round_down(g_other2m, 2), 2,
		     -ENOSPC);
	assert_int_equal(
		tdp_lookup(e.mmu, g_other2m, TDP_ALIAS_PRIVATE, &spte, &level),
		0);
	assert_int_equal(level, 2);
	assert_false(tdp_spte_is_present(tdp_mmu_format(e.mmu), spte));

	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	assert_int_equal(st.backend_errors, 3);
	assert_int_equal(st.backend_busy, 1);
	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

/*
 * Faults allocate before they take mmu_lock: when an allocation fails the
 * fault returns -ENOMEM and the backend has seen nothing.  Fail the Nth
 * allocation of a fresh vCPU's first fault for every N until the fault
 * needs no more than N.
 */
static void test_enomem_before_backend(void **state)
{
	struct ts_env e;
	unsigned int failed = 0;
	bool done = false;

	(void)state;
	menv_init(&e, 4096, 0);
	ts_log_enable(e.be, true);
	for (long n = 0; n < 64 && !done; n++) {
		tdp_gfn_t g =
			((tdp_gfn_t)(n % 8) << 27) | ((tdp_gfn_t)n << 18) | 7;
		struct tdp_vcpu *v = NULL;
		size_t before = ts_log_count(e.be);
		int ret;

		assert_int_equal(tdp_vcpu_create(e.mmu, &v), 0);
		tdp_port_fail_alloc_after(n);
		ret = ts_map(v, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
			     TDP_PROT_RWX, TDP_LEVEL_4K);
		tdp_port_fail_alloc_after(-1);
		if (ret == -ENOMEM) {
			failed++;
			assert_int_equal(ts_log_count(e.be), before);
			assert_false(menv_lookup_leaf(
				e.mmu, g, TDP_ALIAS_PRIVATE, NULL, NULL));
		} else {
			assert_int_equal(ret, TDP_FAULT_FIXED);
			done = true;
		}
		tdp_vcpu_destroy(v);
	}
	assert_true(done);
	assert_true(failed > 0);
	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

/* ---- failed removals: the dead state -------------------------------------- */

static void assert_everything_eio(struct ts_env *e)
{
	struct tdp_vcpu *v2 = NULL;
	struct tdp_root *root = NULL;
	tdp_spte_t spte;
	int level;

	assert_true(tdp_mmu_is_dead(e->mmu));
	assert_int_equal(ts_map(e->vcpu, G_DEEP + 7, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(G_DEEP + 7), TDP_PROT_RWX,
				TDP_LEVEL_4K),
			 -EIO);
	assert_int_equal(ts_map(e->vcpu, G_DEEP + 7, TDP_ALIAS_SHARED,
				PFN_SHARED(G_DEEP + 7), TDP_PROT_RWX,
				TDP_LEVEL_4K),
			 -EIO);
	assert_int_equal(tdp_zap_range(e->mmu, 0, TS_GFN_LIMIT, TDP_ALIAS_BOTH),
			 -EIO);
	assert_int_equal(
		tdp_zap_range(e->mmu, 0, TS_GFN_LIMIT, TDP_ALIAS_SHARED), -EIO);
	assert_int_equal(tdp_zap_slot_deleted(e->mmu, 0, 1), -EIO);
	assert_int_equal(tdp_zap_host_unmap(e->mmu, 0, 1), -EIO);
	assert_int_equal(tdp_zap_convert_to_shared(e->mmu, 0, 1), -EIO);
	assert_int_equal(tdp_zap_convert_to_private(e->mmu, 0, 1), -EIO);
	assert_int_equal(tdp_zap_all(e->mmu), -EIO);
	assert_int_equal(
		tdp_lookup(e->mmu, G_DEEP, TDP_ALIAS_PRIVATE, &spte, &level),
		-EIO);
	assert_int_equal(
		tdp_lookup(e->mmu, G_DEEP, TDP_ALIAS_SHARED, &spte, &level),
		-EIO);
	assert_int_equal(tdp_invalidate_begin(e->mmu, 0, 1), -EIO);
	assert_int_equal(tdp_mmu_invalidate_roots(e->mmu, TDP_ALIAS_SHARED),
			 -EIO);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(e->mmu), -EIO);
	assert_int_equal(tdp_mmu_set_mmio_generation(e->mmu, 3), -EIO);
	assert_int_equal(tdp_root_get(e->mmu, TDP_ROOT_DIRECT, &root), -EIO);
	assert_int_equal(tdp_root_get(e->mmu, TDP_ROOT_MIRROR, &root), -EIO);
	assert_int_equal(tdp_vcpu_create(e->mmu, &v2), -EIO);
	assert_true(tdp_mmu_is_dead(e->mmu));
}

static void test_remove_leaf_failure_kills_mmu(void **state)
{
	struct ts_env e;
	tdp_gfn_t g = G_DEEP;
	struct ts_counts c;

	(void)state;
	menv_expect_leaks_begin();
	menv_init(&e, 4096, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ts_map(e.vcpu, g + i, TDP_ALIAS_PRIVATE,
					PFN_PRIVATE(g + i), TDP_PROT_RWX,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_SHARED, PFN_SHARED(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_false(tdp_mmu_is_dead(e.mmu));

	ts_log_enable(e.be, true);
	ts_fail_next_remove(e.be);
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, g, g + 4), -EIO);
	assert_true(tdp_mmu_is_dead(e.mmu));
	/* The failed remove_leaf was the last callback. */
	assert_true(ts_log_count(e.be) >= 1);
	assert_int_equal(ts_log_get(e.be, ts_log_count(e.be) - 1).call,
			 TS_REMOVE_LEAF);
	assert_int_equal(ts_log_get(e.be, ts_log_count(e.be) - 1).ret, -EFAULT);

	/* Dead: no callback, every operation -EIO, teardown -EIO. */
	ts_forbid_calls(e.be, true);
	assert_everything_eio(&e);
	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), -EIO);
	assert_true(tdp_mmu_is_dead(e.mmu));

	c = ts_counts(e.be);
	assert_int_equal(c.calls[TS_FREE_TABLE], 0);
	/* The leaf whose removal failed is still the backend's. */
	assert_true(ts_leaf_at(e.be, g, NULL, NULL));
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
	menv_expect_leaks_end();
}

static void test_free_table_failure_leaks_backend_page(void **state)
{
	struct ts_env e;
	tdp_gfn_t g = G_DEEP;
	struct tdp_ext_table *ext[5] = { 0 };
	struct tdp_stats st;
	struct ts_counts c;

	(void)state;
	menv_expect_leaks_begin();
	menv_init(&e, 4096, 0);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	for (int l = 2; l <= 4; l++) {
		ext[l] = ts_table_ext(e.be, g, l);
		assert_non_null(ext[l]);
		assert_true(ts_ext_intact(e.be, ext[l]));
	}

	ts_log_enable(e.be, true);
	ts_fail_next_free(e.be);
	menv_teardown_dead(&e);

	/* Removal order: the leaf, then the lowest table, which failed. */
	c = ts_counts(e.be);
	assert_int_equal(c.ok[TS_REMOVE_LEAF], 1);
	assert_int_equal(c.calls[TS_FREE_TABLE], 1);
	assert_int_equal(c.ok[TS_FREE_TABLE], 0);
	assert_int_equal(ts_log_get(e.be, ts_log_count(e.be) - 1).call,
			 TS_FREE_TABLE);
	assert_int_equal(ts_log_get(e.be, ts_log_count(e.be) - 1).gfn,
			 ts_round_down(g, 2));

	/* The backend pages stay allocated and untouched. */
	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	assert_true(st.pages_in_use > 0);
	for (int l = 2; l <= 4; l++)
		assert_true(ts_ext_intact(e.be, ext[l]));
	tdp_mmu_destroy(e.mmu);
	e.mmu = NULL;
	for (int l = 2; l <= 4; l++)
		assert_true(ts_ext_intact(e.be, ext[l]));

	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
	menv_expect_leaks_end();
}

/* ---- teardown --------------------------------------------------------------- */

static void test_teardown_frees_every_table_once(void **state)
{
	struct ts_env e;
	struct tdp_stats st;
	struct ts_counts c;
	uint64_t rng = 42;
	struct tdp_vcpu *v2 = NULL;
	tdp_spte_t spte;
	int level;

	(void)state;
	menv_init(&e, 4096, 0);
	for (int i = 0; i < 600; i++) {
		uint64_t x = ts_rand(&rng);
		tdp_gfn_t g =
			inj_region((unsigned int)(x % 40)) + ((x >> 8) % 512);
		int max_level =
			(x >> 20) % 5 == 0 ? TDP_LEVEL_2M : TDP_LEVEL_4K;
		enum tdp_alias alias = (x >> 30) % 3 == 0 ? TDP_ALIAS_SHARED
							  : TDP_ALIAS_PRIVATE;
		int ret = ts_map_retry(
			e.vcpu, g, alias,
			alias == TDP_ALIAS_SHARED ? PFN_SHARED(g)
						  : PFN_PRIVATE(g),
			TDP_PROT_RWX, max_level, MENV_MAX_RETRIES, 0, NULL);

		assert_true(ret == TDP_FAULT_FIXED ||
			    ret == TDP_FAULT_SPURIOUS);
	}
	/* Empty some tables: leaves go, tables stay until teardown. */
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, inj_region(3),
						   inj_region(3) + 512),
			 0);
	assert_int_equal(
		tdp_zap_slot_deleted(e.mmu, inj_region(5), inj_region(5) + 512),
		0);
	assert_int_equal(ts_compare(e.be, e.mmu, 0, 3ULL << 27), 0);
	assert_true(ts_nr_tables(e.be) > 40);

	/* Teardown refuses while a vCPU context exists, changing nothing. */
	ts_log_enable(e.be, true);
	assert_int_equal(tdp_mmu_teardown(e.mmu), -EINVAL);
	assert_int_equal(ts_log_count(e.be), 0);

	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), 0);
	assert_false(tdp_mmu_is_dead(e.mmu));

	c = ts_counts(e.be);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(ts_nr_leaves(e.be), 0);
	assert_int_equal(c.calls[TS_FREE_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(c.ok[TS_FREE_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(c.ok[TS_REMOVE_LEAF], c.ok[TS_SET_LEAF]);
	assert_int_equal(c.calls[TS_REMOVE_LEAF], c.ok[TS_SET_LEAF]);

	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		assert_int_equal(ts_stat_tables(&st, t, TDP_MAX_LEVEL + 1), 0);
		assert_int_equal(ts_stat_leaves(&st, t), 0);
	}
	assert_int_equal(st.pages_in_use, 0);

	/* Torn down: everything else says so. */
	ts_forbid_calls(e.be, true);
	assert_int_equal(tdp_lookup(e.mmu, 0, TDP_ALIAS_PRIVATE, &spte, &level),
			 -ESHUTDOWN);
	assert_int_equal(tdp_zap_range(e.mmu, 0, 1, TDP_ALIAS_BOTH),
			 -ESHUTDOWN);
	assert_int_equal(tdp_vcpu_create(e.mmu, &v2), -ESHUTDOWN);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/*
 * A failed remove_leaf during teardown: the tables above the leaf are never
 * handed to free_table (the recorder would see a table with children),
 * nothing is called afterwards, and the pages stay.
 */
static void test_remove_leaf_failure_at_teardown(void **state)
{
	struct ts_env e;
	struct tdp_stats st;
	struct ts_counts c;

	(void)state;
	menv_expect_leaks_begin();
	menv_init(&e, 4096, 0);
	for (unsigned int r = 0; r < 8; r++) {
		tdp_gfn_t g = ((tdp_gfn_t)(r % 2) << 27) |
			      ((tdp_gfn_t)r << 18) | ((tdp_gfn_t)r << 9);

		for (int i = 0; i < 3; i++)
			assert_int_equal(ts_map(e.vcpu, g + i,
						TDP_ALIAS_PRIVATE,
						PFN_PRIVATE(g + i),
						TDP_PROT_RWX, TDP_LEVEL_4K),
					 TDP_FAULT_FIXED);
	}
	ts_log_enable(e.be, true);
	ts_fail_next_remove(e.be);
	menv_teardown_dead(&e);

	c = ts_counts(e.be);
	assert_int_equal(c.calls[TS_REMOVE_LEAF], 1);
	assert_int_equal(c.calls[TS_FREE_TABLE], 0);
	assert_int_equal(ts_nr_leaves(e.be), 24);
	assert_int_equal(ts_nr_tables(e.be), c.ok[TS_LINK_TABLE]);
	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	assert_true(st.pages_in_use > 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
	menv_expect_leaks_end();
}

/* ---- configuration and input checks that involve the backend ------------- */

static void noop_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	(void)ctx;
	(void)gfn;
	(void)nr_pages;
}

static void noop_flush_all(void *ctx)
{
	(void)ctx;
}

static void test_backend_config_checks(void **state)
{
	struct ts_backend *rec =
		ts_backend_create(TS_ROOT_LEVEL, TS_SHARED_BIT, 0);
	struct tdp_private_backend be = *ts_backend_ops(rec);
	struct tdp_private_backend broken;
	struct tdp_mmu_config cfg = {
		.root_level = TS_ROOT_LEVEL,
		.direct_bits = TS_SHARED_BIT,
		.host = { .flush_range = noop_flush_range,
			  .flush_all = noop_flush_all },
		.backend = &broken,
	};
	struct tdp_mmu *mmu = NULL;

	(void)state;
	/* Each of the four callbacks is required. */
	for (int i = 0; i < 4; i++) {
		broken = be;
		if (i == 0)
			broken.link_table = NULL;
		else if (i == 1)
			broken.set_leaf = NULL;
		else if (i == 2)
			broken.remove_leaf = NULL;
		else
			broken.free_table = NULL;
		assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);
	}
	broken = be;
	/* A backend needs a shared bit: one bit, below the GFN width. */
	cfg.direct_bits = 0;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = TS_SHARED_BIT | 1;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = 1ULL << 36;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);
	cfg.direct_bits = 1ULL << 20;
	cfg.gfn_bits = 20;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), -EINVAL);

	/* And the valid one works, without touching the backend. */
	cfg.direct_bits = TS_SHARED_BIT;
	cfg.gfn_bits = 0;
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), 0);
	assert_int_equal(tdp_mmu_direct_bits(mmu), TS_SHARED_BIT);
	tdp_mmu_destroy(mmu);
	assert_int_equal(ts_counts(rec).calls[TS_LINK_TABLE], 0);
	assert_int_equal(ts_violations(rec), 0);
	ts_backend_destroy(rec);
}

static void test_private_mmio_rejected(void **state)
{
	struct ts_env e;
	struct tdp_fault f = {
		.fault_gfn = G_DEEP,
		.prot = TDP_PROT_READ,
		.max_level = TDP_LEVEL_4K,
		.mmio = true,
	};

	(void)state;
	menv_init(&e, 0, 0);
	ts_log_enable(e.be, true);
	f.mmu_seq = tdp_mmu_seq(e.mmu);
	assert_int_equal(tdp_map(e.vcpu, &f), -EINVAL);
	/* A private GFN with bits above the shared bit is out of range. */
	assert_int_equal(ts_map(e.vcpu, TS_GFN_LIMIT << 1, TDP_ALIAS_PRIVATE, 1,
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 -EINVAL);
	assert_int_equal(ts_log_count(e.be), 0);
	/* The shared alias takes MMIO. */
	f.fault_gfn = G_DEEP | TS_SHARED_BIT;
	assert_int_equal(tdp_map(e.vcpu, &f), TDP_FAULT_FIXED);
	assert_int_equal(ts_log_count(e.be), 0);
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/*
 * What the mirror does not support (dirty logging, aging, lockless fixes,
 * huge-page split and recovery) refuses the private alias and leaves the
 * mirror and the backend alone.  With TDP_ALIAS_BOTH an operation may
 * refuse or act on the shared alias only.
 */
static void test_private_alias_unsupported_ops(void **state)
{
	static const enum tdp_alias filters[] = { TDP_ALIAS_PRIVATE,
						  TDP_ALIAS_BOTH };
	struct ts_env e;
	tdp_gfn_t base = ts_round_down(G_DEEP, 2);
	tdp_gfn_t huge = base + 512;
	uint64_t bitmap[1024 / 64];

	(void)state;
	menv_init(&e, 0, 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(ts_map(e.vcpu, base + i, TDP_ALIAS_PRIVATE,
					PFN_PRIVATE(base + i), TDP_PROT_RWX,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e.vcpu, huge + 5, TDP_ALIAS_PRIVATE,
				PFN_PRIVATE(huge + 5), TDP_PROT_RWX,
				TDP_LEVEL_2M),
			 TDP_FAULT_FIXED);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_fast_fix(e.mmu, base, TDP_PROT_RWX), -EOPNOTSUPP);
	for (unsigned int i = 0; i < 2; i++) {
		enum tdp_alias a = filters[i];
		bool both = a == TDP_ALIAS_BOTH;
		int64_t r[7];

		r[0] = tdp_age_range(e.mmu, base, base + 1024, true, a);
		r[1] = tdp_wrprot_range(e.mmu, base, base + 1024, a);
		r[2] = tdp_clear_dirty_range(e.mmu, base, base + 1024, a);
		r[3] = tdp_clear_dirty_masked(e.mmu, base, ~0ULL, true, a);
		r[4] = tdp_harvest_dirty(e.mmu, base, base + 1024, bitmap, a);
		r[5] = tdp_split_huge_range(e.mmu, huge, huge + 512,
					    TDP_LEVEL_4K, a);
		r[6] = tdp_recover_huge_pages(e.mmu, base, base + 512,
					      TDP_LEVEL_2M, a);
		for (int k = 0; k < 7; k++) {
			if (r[k] == -EOPNOTSUPP || (both && r[k] >= 0))
				continue;
			fail_msg("operation %d with alias %d returned %lld", k,
				 a, (long long)r[k]);
		}
		/* Private leaves (and their PFNs) as before. */
		for (int k = 0; k < 64; k++) {
			tdp_pfn_t pfn;
			int level;

			assert_true(menv_lookup_leaf(e.mmu, base + k,
						     TDP_ALIAS_PRIVATE, &level,
						     &pfn));
			assert_int_equal(level, 1);
			assert_int_equal(pfn, PFN_PRIVATE(base + k));
		}
	}
	assert_int_equal(ts_log_count(e.be), 0);
	assert_int_equal(ts_compare(e.be, e.mmu, 0, TS_GFN_LIMIT), 0);
	assert_true(ts_leaf_at(e.be, huge, NULL, NULL));
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

/* ---- root invalidation ------------------------------------------------------ */

static void test_invalidate_private_roots_unsupported(void **state)
{
	struct ts_env e;
	struct tdp_root *direct = NULL, *mirror = NULL;
	tdp_gfn_t g = G_DEEP;
	tdp_pfn_t pfn;

	(void)state;
	menv_init(&e, 0, 0);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e.vcpu, g, TDP_ALIAS_SHARED, PFN_SHARED(g),
				TDP_PROT_RWX, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);
	assert_int_equal(tdp_root_get(e.mmu, TDP_ROOT_DIRECT, &direct), 0);
	assert_int_equal(tdp_root_get(e.mmu, TDP_ROOT_MIRROR, &mirror), 0);
	ts_log_enable(e.be, true);

	assert_int_equal(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_PRIVATE),
			 -EOPNOTSUPP);
	assert_int_equal(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_BOTH),
			 -EOPNOTSUPP);
	/* Refused whole: the direct root was not invalidated either. */
	assert_true(tdp_root_is_valid(direct));
	assert_true(tdp_root_is_valid(mirror));
	assert_int_equal(tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	assert_true(menv_lookup_leaf(e.mmu, g, TDP_ALIAS_SHARED, NULL, &pfn));
	assert_int_equal(pfn, PFN_SHARED(g));
	assert_true(menv_lookup_leaf(e.mmu, g, TDP_ALIAS_PRIVATE, NULL, &pfn));
	assert_int_equal(pfn, PFN_PRIVATE(g));

	/* The shared alias alone may be invalidated; the mirror stays. */
	assert_int_equal(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED), 0);
	assert_false(tdp_root_is_valid(direct));
	assert_true(tdp_root_is_valid(mirror));
	assert_int_equal(tdp_mmu_zap_invalidated_roots(e.mmu), 0);
	assert_false(menv_lookup_leaf(e.mmu, g, TDP_ALIAS_SHARED, NULL, NULL));
	assert_true(menv_lookup_leaf(e.mmu, g, TDP_ALIAS_PRIVATE, NULL, &pfn));
	assert_int_equal(pfn, PFN_PRIVATE(g));
	assert_int_equal(ts_log_count(e.be), 0);

	tdp_root_put(e.mmu, direct);
	tdp_root_put(e.mmu, mirror);
	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

/* ---- backend pages -------------------------------------------------------- */

static void run_ext_pages(size_t ext_size, uint64_t seed)
{
	struct ts_env e;
	uint64_t rng = seed;
	struct ts_counts c;
	struct tdp_stats st;

	menv_init(&e, ext_size, 0);
	/* Busy and hard errors make the engine keep and reuse pages. */
	ts_set_injection(e.be, 300, 100, seed);
	for (int i = 0; i < 2000; i++) {
		uint64_t x = ts_rand(&rng);
		tdp_gfn_t g =
			inj_region((unsigned int)(x % 64)) + ((x >> 8) % 512);
		int ret;

		if ((x >> 40) % 50 == 0) {
			tdp_gfn_t r =
				inj_region((unsigned int)((x >> 16) % 64));

			assert_int_equal(
				tdp_zap_convert_to_shared(e.mmu, r, r + 512),
				0);
			continue;
		}
		ret = ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE, PFN_PRIVATE(g),
				   TDP_PROT_RWX, TDP_LEVEL_4K, MENV_MAX_RETRIES,
				   0, NULL);
		assert_true(ret == TDP_FAULT_FIXED ||
			    ret == TDP_FAULT_SPURIOUS || ret == -ENOSPC);
	}
	ts_set_injection(e.be, 0, 0, 0);
	assert_int_equal(ts_compare(e.be, e.mmu, 0, 3ULL << 27), 0);

	tdp_vcpu_destroy(e.vcpu);
	e.vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e.mmu), 0);
	c = ts_counts(e.be);
	assert_true(c.ok[TS_LINK_TABLE] > 64);
	assert_int_equal(c.ok[TS_FREE_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(c.calls[TS_FREE_TABLE], c.ok[TS_LINK_TABLE]);
	assert_int_equal(ts_nr_tables(e.be), 0);
	assert_int_equal(tdp_mmu_get_stats(e.mmu, &st), 0);
	assert_int_equal(st.pages_in_use, 0);
	/* Aligned, zeroed, distinct, untouched, the same page back. */
	assert_int_equal(ts_violations(e.be), 0);
	ts_env_destroy(&e);
}

static void test_ext_pages_page_size(void **state)
{
	(void)state;
	run_ext_pages(4096, ts_seed(7));
}

static void test_ext_pages_odd_size(void **state)
{
	(void)state;
	run_ext_pages(100, ts_seed(8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private_fault_links_top_down),
		cmocka_unit_test(test_shared_never_calls_backend),
		cmocka_unit_test(test_busy_and_hard_error_injection),
		cmocka_unit_test(test_hard_error_returned_unchanged),
		cmocka_unit_test(test_enomem_before_backend),
		cmocka_unit_test(test_remove_leaf_failure_kills_mmu),
		cmocka_unit_test(test_free_table_failure_leaks_backend_page),
		cmocka_unit_test(test_remove_leaf_failure_at_teardown),
		cmocka_unit_test(test_backend_config_checks),
		cmocka_unit_test(test_private_mmio_rejected),
		cmocka_unit_test(test_private_alias_unsupported_ops),
		cmocka_unit_test(test_teardown_frees_every_table_once),
		cmocka_unit_test(test_invalidate_private_roots_unsupported),
		cmocka_unit_test(test_ext_pages_page_size),
		cmocka_unit_test(test_ext_pages_odd_size),
	};

	return TS_RUN_GROUP("tests", tests);
}
