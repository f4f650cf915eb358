// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Bounded concurrent stress: vCPU threads fault both aliases of GFNs that
 * share fresh parent tables while a zapper races them with alias-targeted
 * range zaps, host-unmap invalidations, root invalidation and zap-all, a
 * reader does lockless lookups, and the strict backend is slow to link
 * tables and answers busy at random.
 *
 * Each phase uses a fresh GFN window (new parent tables), runs for its
 * share of the time budget (module parameter stress_ms) or an operation
 * budget, then quiesces and checks:
 *   - every present leaf maps the frame its GFN and alias call for, and no
 *     reachable SPTE is frozen;
 *   - the backend's model equals the mirror entry for entry;
 *   - the leaf statistics equal the leaves found in the window.
 * Teardown then leaves no table, leaf or page, and the backend empty.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>

#include "st.h"

#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define S_REGIONS 8 /* 2 MiB regions per window */
#define S_WINDOW (S_REGIONS * 512ULL)
#define S_PHASES 3
#define S_MAX_OPS_PER_PHASE 2000000
#define S_MAX_VCPUS 8

struct stress {
	struct ts_env e;
	tdp_gfn_t base; /* window of the current phase, unaliased */
	atomic_long_t ops;
	atomic_long_t faults, lookups, zaps;
};

struct stress_worker {
	struct stress *s;
	u64 rng;
};

static bool stress_done(struct stress *s)
{
	return kthread_should_stop() ||
	       atomic_long_inc_return(&s->ops) > S_MAX_OPS_PER_PHASE;
}

static int vcpu_fn(void *arg)
{
	struct stress_worker *w = arg;
	struct stress *s = w->s;
	struct st *t = st_of(&s->e);
	struct tdp_vcpu *vcpu = NULL;

	tdp_thread_register();
	ST_EQ(t, tdp_vcpu_create(s->e.mmu, &vcpu), 0);
	while (vcpu && !stress_done(s)) {
		u64 x = ts_rand(&w->rng);
		/* Cluster GFNs so threads share fresh parent tables. */
		tdp_gfn_t gfn =
			s->base + (x % S_REGIONS) * 512 + ((x >> 8) % 64) * 8;
		enum tdp_alias alias =
			(x >> 20) & 1 ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
		unsigned int prot =
			TDP_PROT_READ | ((x >> 21) & 1 ? TDP_PROT_WRITE : 0);
		int level = (x >> 22) % 4 ? TDP_LEVEL_4K : TDP_LEVEL_2M;
		int ret = ts_map_retry(vcpu, gfn, alias, ts_pfn(gfn, alias),
				       prot, level, 0, 5000, NULL);

		if (ret != TDP_FAULT_FIXED && ret != TDP_FAULT_SPURIOUS)
			st_fail(t, __FILE__, __LINE__,
				"fault of gfn %#llx (alias %d, level %d) returned %d",
				gfn, alias, level, ret);
		atomic_long_inc(&s->faults);
		cond_resched();
	}
	tdp_vcpu_destroy(vcpu);
	tdp_thread_unregister();
	return 0;
}

static int zapper_fn(void *arg)
{
	struct stress_worker *w = arg;
	struct stress *s = w->s;
	struct tdp_mmu *mmu = s->e.mmu;

	tdp_thread_register();
	while (!stress_done(s)) {
		u64 x = ts_rand(&w->rng);
		tdp_gfn_t start = s->base + x % S_WINDOW;
		tdp_gfn_t end =
			min(start + 1 + (x >> 16) % 1024, s->base + S_WINDOW);
		int ret;

		switch ((x >> 32) % 8) {
		case 0:
		case 1:
			ret = tdp_zap_convert_to_shared(mmu, start, end);
			break;
		case 2:
		case 3:
			ret = tdp_zap_slot_deleted(mmu, start, end);
			break;
		case 4:
		case 5:
			ret = ts_host_unmap(mmu, start, end);
			break;
		case 6:
			ret = ts_zap_roots(mmu, TDP_ALIAS_SHARED);
			break;
		default:
			ret = tdp_zap_all(mmu);
			break;
		}
		ST_EQ(st_of(&s->e), ret, 0);
		atomic_long_inc(&s->zaps);
		cond_resched();
	}
	tdp_thread_unregister();
	return 0;
}

static int reader_fn(void *arg)
{
	struct stress_worker *w = arg;
	struct stress *s = w->s;

	tdp_thread_register();
	/* Lookups do not count against the operation budget. */
	while (!kthread_should_stop()) {
		u64 x = ts_rand(&w->rng);
		tdp_gfn_t gfn = s->base + x % S_WINDOW;
		enum tdp_alias alias =
			(x >> 40) & 1 ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
		tdp_pfn_t pfn;

		if (ts_lookup_leaf(s->e.mmu, gfn, alias, NULL, &pfn) &&
		    pfn != ts_pfn(gfn, alias))
			st_fail(st_of(&s->e), __FILE__, __LINE__,
				"lockless lookup: gfn %#llx (alias %d) maps pfn %#llx",
				gfn, alias, pfn);
		atomic_long_inc(&s->lookups);
		cond_resched();
	}
	tdp_thread_unregister();
	return 0;
}

/* Quiesced: both trees against expectations, the backend, the statistics. */
static void check_window(struct stress *s)
{
	struct ts_env *e = &s->e;
	struct st *t = st_of(e);
	const struct tdp_spte_format *fmt = tdp_mmu_format(e->mmu);
	u64 found[TDP_NR_ROOT_TYPES] = { 0 };
	struct tdp_stats st;

	for (tdp_gfn_t gfn = s->base; gfn < s->base + S_WINDOW; gfn++) {
		for (int type = 0; type < TDP_NR_ROOT_TYPES; type++) {
			enum tdp_alias alias = type == TDP_ROOT_MIRROR
						       ? TDP_ALIAS_PRIVATE
						       : TDP_ALIAS_SHARED;
			tdp_spte_t spte;
			int level;

			if (!ST_EQ(t,
				   tdp_lookup(e->mmu, gfn, alias, &spte,
					      &level),
				   0))
				return;
			if (tdp_spte_is_frozen(fmt, spte))
				st_fail(t, __FILE__, __LINE__,
					"frozen SPTE left at gfn %#llx", gfn);
			if (!tdp_spte_is_present(fmt, spte))
				continue;
			ST_TRUE(t, level <= TDP_LEVEL_2M);
			ST_EQ(t, tdp_spte_pfn(fmt, spte),
			      ts_pfn(ts_round_down(gfn, level), alias));
			if (gfn == ts_round_down(gfn, level))
				found[type]++;
		}
	}
	ST_EQ(t, ts_compare(e->be, e->mmu, s->base, s->base + S_WINDOW), 0);
	ST_EQ(t, tdp_mmu_get_stats(e->mmu, &st), 0);
	for (int type = 0; type < TDP_NR_ROOT_TYPES; type++)
		ST_EQ(t, ts_stat_leaves(&st, type), found[type]);
	ST_EQ(t, ts_violations(e->be), 0);
}

static void test_stress(struct st *t)
{
	const struct ts_env_opts o = {
		.backend = true,
		.ext_table_size = 4096,
	};
	struct stress_worker w[S_MAX_VCPUS + 2];
	struct st_thread *th[S_MAX_VCPUS + 2];
	unsigned int nr_vcpus =
		min_t(unsigned int, st_stress_vcpus, S_MAX_VCPUS);
	unsigned int nw = nr_vcpus + 2;
	struct stress *s;
	struct tdp_stats st;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!ST_TRUE(t, s != NULL))
		return;
	if (!st_env_init(t, &s->e, &o)) {
		kfree(s);
		return;
	}
	/* A slow SEPT.ADD widens the freeze window; 10% busy answers. */
	ts_set_link_delay(s->e.be, 20);
	ts_set_injection(s->e.be, 100, 0, t->seed);

	for (int phase = 0; phase < S_PHASES && !st_failed(t); phase++) {
		unsigned long deadline =
			jiffies + msecs_to_jiffies(st_stress_ms / S_PHASES);

		/* A fresh window: new parent tables at every level below 1 GiB. */
		s->base = (tdp_gfn_t)(phase + 1) * (1ULL << 18) +
			  (phase % 2) * (1ULL << 27);
		atomic_long_set(&s->ops, 0);
		for (unsigned int i = 0; i < nw; i++) {
			int (*fn)(void *) = i < nr_vcpus    ? vcpu_fn
					    : i == nr_vcpus ? zapper_fn
							    : reader_fn;

			w[i] = (struct stress_worker){
				.s = s,
				.rng = (t->seed ^ (phase * 131 + i + 1)) | 1,
			};
			th[i] = st_thread_start(fn, &w[i], "stress", i);
			ST_TRUE(t, th[i] != NULL);
		}
		while (time_before(jiffies, deadline) &&
		       atomic_long_read(&s->ops) < S_MAX_OPS_PER_PHASE)
			msleep(10);
		for (unsigned int i = 0; i < nw; i++)
			st_thread_stop(th[i]);

		ts_set_injection(s->e.be, 0, 0, 0);
		check_window(s);
		ST_EQ(t,
		      tdp_zap_slot_deleted(s->e.mmu, s->base,
					   s->base + S_WINDOW),
		      0);
		check_window(s);
		ts_set_injection(s->e.be, 100, 0, t->seed + phase);
	}

	ST_EQ(t, tdp_mmu_get_stats(s->e.mmu, &st), 0);
	pr_info("tdp_selftest: stress: %u vCPU threads, %ld faults (%llu retried, %llu busy), %ld zaps, %ld lockless lookups\n",
		nr_vcpus, atomic_long_read(&s->faults), st.faults_retried,
		st.backend_busy, atomic_long_read(&s->zaps),
		atomic_long_read(&s->lookups));
	ST_TRUE(t, atomic_long_read(&s->faults) > 0);
	st_env_fini(&s->e);
	kfree(s);
}

const struct st_case st_stress_cases[] = {
	{ "stress/faults_zaps_lookups", test_stress },
};
const unsigned int st_stress_nr_cases = ARRAY_SIZE(st_stress_cases);
