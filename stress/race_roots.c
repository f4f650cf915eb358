/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race classes of object lifetime: tables read by lockless walkers, roots
 * referenced by zaps, invalidated roots zapped once, and one root per role.
 */
#include "races.h"

/* White box: the root iterator, RCU read sections, root tables and
 * tdp_rcu_barrier(). */
#include "internal.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define RR_BLOCKS 8
#define RR_GFNS (RR_BLOCKS * TS_PAGES_2M)

/* The window of these tests: blocks spread over two 1 GiB regions. */
static tdp_gfn_t window_gfn(tdp_gfn_t base, uint64_t i)
{
	uint64_t block = i / TS_PAGES_2M;

	return base + (block % 2) * TS_PAGES_1G +
	       (block / 2) * 37 * TS_PAGES_2M + i % TS_PAGES_2M;
}

/* A thread that faults the window at random, both aliases. */
struct faulter {
	struct ts_env *e;
	struct sx_budget *b;
	tdp_gfn_t base;
	uint64_t seed;
	bool shared_only;
};

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	struct tdp_vcpu *v = race_vcpu(f->e);
	uint64_t rng = f->seed;

	while (v && sx_budget_next(f->b)) {
		tdp_gfn_t g = window_gfn(f->base, ts_rand_below(&rng, RR_GFNS));
		bool private = !f->shared_only && ts_rand_below(&rng, 3) == 0;
		int level =
			ts_rand_below(&rng, 4) ? TDP_LEVEL_4K : TDP_LEVEL_2M;

		race_fault_ok(
			race_fault(f->e, v, g, private, TDP_PROT_RWX, level), g,
			private);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/* ---- rcu_reader ---------------------------------------------------------------- */

struct rr_run {
	struct ts_env *e;
	struct sx_budget b;
	tdp_gfn_t base;
	uint64_t seed;
	long sections;	  /* atomic */
	long frozen_seen; /* atomic: frozen entries met inside a section */
	/* atomic: entries frozen between a reader's two reads (the table
	 * was unlinked while the reader was inside it) */
	long unlinked_under;
};

/* Check one entry a lockless reader found in the table at @level whose
 * first entry translates @base. */
static void rr_check_entry(struct ts_env *e, tdp_spte_t s, tdp_gfn_t gfn,
			   int level)
{
	const struct tdp_spte_format *fmt = e->fmt;

	if (tdp_spte_is_frozen(fmt, s) || !tdp_spte_is_present(fmt, s)) {
		SX_CHECK(tdp_spte_is_frozen(fmt, s) || s == fmt->nonpresent,
			 "a lockless reader found %#" PRIx64 " at tree GFN "
			 "%#" PRIx64 " level %d: neither an SPTE nor a "
			 "zapped or frozen entry",
			 s, gfn, level);
		return;
	}
	if (tdp_spte_is_leaf(fmt, s, level))
		SX_CHECK(tdp_spte_pfn(fmt, s) ==
				 ts_pfn(gfn & ~TS_SHARED_BIT, ts_alias(false)),
			 "a lockless reader found a leaf of tree GFN "
			 "%#" PRIx64 " mapping PFN %#" PRIx64,
			 gfn, tdp_spte_pfn(fmt, s));
}

/*
 * A hardware-style walker: inside one tdp_walk_begin/end section, walk to
 * the lowest table on the way to a random GFN, read it, linger, and read
 * it again.  An entry once frozen stays frozen until the section ends: a
 * table unlinked while a walker is inside it is freed only after the
 * walker left, so it cannot be reused and refilled under the walker.
 */
struct rr_reader {
	struct rr_run *run;
	int id;
};

static void *rr_reader_main(void *arg)
{
	struct rr_reader *rd = arg;
	struct rr_run *r = rd->run;
	struct tdp_vcpu *v = race_vcpu(r->e);
	const struct tdp_spte_format *fmt = r->e->fmt;
	uint64_t rng = sx_seed_for(r->seed, 40 + (uint64_t)rd->id);
	bool frozen[TDP_SPTES_PER_TABLE];

	while (v && !sx_budget_over(&r->b)) {
		tdp_gfn_t gfn =
			window_gfn(r->base, ts_rand_below(&rng, RR_GFNS)) |
			TS_SHARED_BIT;
		const tdp_spte_t *table;
		tdp_pfn_t root;
		tdp_gfn_t tbase;
		int level;

		if (!SX_CHECK(tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root,
						 &level) == 0,
			      "tdp_vcpu_load_root"))
			break;
		tdp_walk_begin();
		table = tdp_pfn_to_table(root);
		for (;;) {
			unsigned int idx =
				(unsigned int)(gfn >> ((level - 1) * 9)) & 511;
			tdp_spte_t s =
				__atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);

			if (level == TDP_LEVEL_4K ||
			    !tdp_spte_is_present(fmt, s) ||
			    tdp_spte_is_leaf(fmt, s, level))
				break;
			table = tdp_pfn_to_table(tdp_spte_pfn(fmt, s));
			level--;
		}
		tbase = ts_round_down(gfn, level + 1);
		for (int pass = 0; pass < 2; pass++) {
			for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
				tdp_spte_t s = __atomic_load_n(
					&table[i], __ATOMIC_ACQUIRE);
				tdp_gfn_t g =
					tbase +
					(uint64_t)i * tdp_level_pages(level);

				if (pass == 1 && frozen[i])
					SX_CHECK(tdp_spte_is_frozen(fmt, s),
						 "entry %d of a table at tree "
						 "GFN %#" PRIx64 " level %d "
						 "was frozen and now holds "
						 "%#" PRIx64 ": the table was "
						 "freed and reused under a "
						 "reader",
						 i, tbase, level, s);
				if (pass == 1 && !frozen[i] &&
				    tdp_spte_is_frozen(fmt, s))
					__atomic_add_fetch(&r->unlinked_under,
							   1, __ATOMIC_RELAXED);
				frozen[i] = tdp_spte_is_frozen(fmt, s);
				if (frozen[i])
					__atomic_add_fetch(&r->frozen_seen, 1,
							   __ATOMIC_RELAXED);
				rr_check_entry(r->e, s, g, level);
			}
			if (pass == 0)
				tdp_udelay(
					(unsigned int)ts_rand_below(&rng, 200));
		}
		tdp_walk_end();
		__atomic_add_fetch(&r->sections, 1, __ATOMIC_RELAXED);
		sx_count_ops(1);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/* Unlinks and frees tables of the window in every way the engine can. */
static void *rr_zapper_main(void *arg)
{
	struct rr_run *r = arg;
	uint64_t rng = sx_seed_for(r->seed, 12);

	while (sx_budget_next(&r->b)) {
		tdp_gfn_t g = window_gfn(r->base, ts_rand_below(&rng, RR_GFNS));
		tdp_gfn_t block = ts_round_down(g, TDP_LEVEL_2M);
		int ret = 0;
		int64_t n;

		/*
		 * Write-locked zaps wait for every reader (the write lock
		 * waits for a grace period); the read-locked unlinks (zap of
		 * an invalidated root, recovery) run while readers are inside
		 * the tables they unlink, so they come more often.
		 */
		switch (ts_rand_below(&rng, 8)) {
		case 0:
			ret = tdp_zap_all(r->e->mmu);
			break;
		case 1:
			ret = tdp_zap_range(r->e->mmu, block,
					    block + TS_PAGES_2M,
					    TDP_ALIAS_BOTH);
			break;
		case 2:
		case 6:
		case 7:
			ret = tdp_mmu_invalidate_roots(r->e->mmu,
						       TDP_ALIAS_SHARED);
			if (!ret)
				ret = tdp_mmu_zap_invalidated_roots(r->e->mmu);
			break;
		case 3:
			n = tdp_recover_huge_pages(
				r->e->mmu, block, block + TS_PAGES_2M,
				TDP_LEVEL_2M, TDP_ALIAS_SHARED);
			ret = n < 0 ? (int)n : 0;
			break;
		case 4:
			ret = tdp_split_huge_range(
				r->e->mmu, block, block + TS_PAGES_2M,
				TDP_LEVEL_4K, TDP_ALIAS_SHARED);
			break;
		default:
			n = tdp_age_range(r->e->mmu, block, block + TS_PAGES_2M,
					  true, TDP_ALIAS_SHARED);
			ret = n < 0 ? (int)n : 0;
			break;
		}
		SX_CHECK(ret == 0, "zapper op: %d", ret);
		tdp_udelay(100);
	}
	return NULL;
}

/*
 * rcu_reader - race: a table freed before a lockless reader left.
 *
 * Hardware-style walkers stay inside one tdp_walk_begin/end section for
 * up to 200 us while others unlink and free tables of the same window
 * (zap-all, range zaps, root invalidation and its read-locked zap, huge-
 * page recovery and splitting) and faults refill it, so freed tables are
 * reused quickly.  A table must stay allocated, holding only frozen
 * entries once unlinked, until every walker that could reach it has left:
 * an entry seen frozen must still be frozen at the second read, every
 * entry read must be an SPTE of the window, a zapped or a frozen value,
 * ASan builds poison freed table pages, and TSan builds see the grace
 * period through the port's annotations.
 */
void race_rcu_reader(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct rr_run r = { .e = &e, .seed = o->seed };
	struct faulter f;
	struct rr_reader rd[2];
	struct sx_threads g = { .n = 0 };
	int readers = o->threads > 1 ? 2 : 1;

	if (!sx_env_init(&e, 0, true, 0))
		return;
	r.base = race_fresh_region(9);
	sx_budget_start(&r.b, o->seconds, o->max_ops);
	f = (struct faulter){ .e = &e,
			      .b = &r.b,
			      .base = r.base,
			      .seed = sx_seed_for(o->seed, 13) };
	for (int i = 0; i < readers; i++) {
		rd[i] = (struct rr_reader){ .run = &r, .id = i };
		sx_spawn(&g, rr_reader_main, &rd[i]);
	}
	sx_spawn(&g, rr_zapper_main, &r);
	sx_spawn(&g, faulter_main, &f);
	sx_join(&g);
	printf("races: rcu_reader: %ld read sections, %ld frozen entries met "
	       "inside them, %ld frozen while a reader was inside\n",
	       r.sections, r.frozen_seen, r.unlinked_under);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- root_zap_ref -------------------------------------------------------------- */

struct rz_run {
	struct ts_env *e;
	struct sx_budget b;
	tdp_gfn_t base;
	uint64_t seed;
	long checked; /* atomic */
};

/* Count present leaves of a tree that overlap [start, end) (tree GFNs). */
static long rz_leaves_in(struct ts_env *e, const tdp_spte_t *table, int level,
			 tdp_gfn_t base, tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = e->fmt;
	long n = 0;

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * tdp_level_pages(level);
		tdp_spte_t s;

		if (g >= end || g + tdp_level_pages(level) <= start)
			continue;
		s = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);
		if (!tdp_spte_is_present(fmt, s))
			continue;
		if (tdp_spte_is_leaf(fmt, s, level))
			n++;
		else
			n += rz_leaves_in(
				e, tdp_pfn_to_table(tdp_spte_pfn(fmt, s)),
				level - 1, g, start, end);
	}
	return n;
}

/*
 * Inside a running invalidation of [start, end), after its zap: no direct
 * root, valid or invalidated, maps any GFN of the range.  Roots are
 * visited with a reference each (the engine's root iterator), their
 * tables read under RCU while other threads zap and free them.
 */
static void rz_check_unmapped(struct rz_run *r, tdp_gfn_t start, tdp_gfn_t end)
{
	struct tdp_mmu *mmu = r->e->mmu;
	const unsigned int direct = 1U << TDP_ROOT_DIRECT;

	for (struct tdp_root *root = tdp_root_next(mmu, NULL, direct, false);
	     root; root = tdp_root_next(mmu, root, direct, false)) {
		long n;

		tdp_rcu_read_lock();
		n = rz_leaves_in(r->e, root->table->spt, root->table->level, 0,
				 start | TS_SHARED_BIT, end | TS_SHARED_BIT);
		tdp_rcu_read_unlock();
		SX_CHECK(n == 0,
			 "a %s root still maps %ld leaves of [%#" PRIx64
			 ", %#" PRIx64 ") after the host unmapped it",
			 tdp_root_is_valid(root) ? "valid" : "invalidated", n,
			 start, end);
	}
	__atomic_add_fetch(&r->checked, 1, __ATOMIC_RELAXED);
}

static void *rz_invalidator_main(void *arg)
{
	struct rz_run *r = arg;

	while (sx_budget_next(&r->b)) {
		int ret = tdp_mmu_invalidate_roots(r->e->mmu, TDP_ALIAS_SHARED);

		SX_CHECK(ret == 0, "invalidate_roots: %d", ret);
		tdp_udelay(200);
		ret = tdp_mmu_zap_invalidated_roots(r->e->mmu);
		SX_CHECK(ret == 0, "zap_invalidated_roots: %d", ret);
	}
	return NULL;
}

static void *rz_claimer_main(void *arg)
{
	struct rz_run *r = arg;

	while (sx_budget_next(&r->b)) {
		int ret = tdp_mmu_zap_invalidated_roots(r->e->mmu);

		SX_CHECK(ret == 0, "zap_invalidated_roots: %d", ret);
		tdp_udelay(100);
	}
	return NULL;
}

/* Take and put references to the valid direct root. */
static void *rz_getter_main(void *arg)
{
	struct rz_run *r = arg;
	uint64_t rng = sx_seed_for(r->seed, 21);

	while (sx_budget_next(&r->b)) {
		struct tdp_root *root;
		int ret = tdp_root_get(r->e->mmu, TDP_ROOT_DIRECT, &root);

		if (!SX_CHECK(ret == 0, "tdp_root_get: %d", ret))
			continue;
		tdp_udelay((unsigned int)ts_rand_below(&rng, 300));
		tdp_root_put(r->e->mmu, root);
	}
	return NULL;
}

static void *rz_unmapper_main(void *arg)
{
	struct rz_run *r = arg;
	uint64_t rng = sx_seed_for(r->seed, 22);

	while (sx_budget_next(&r->b)) {
		uint64_t i = ts_rand_below(&rng, RR_GFNS);
		tdp_gfn_t start = window_gfn(r->base, i);
		tdp_gfn_t end = start + 1 + ts_rand_below(&rng, 600);
		int ret;

		/* Stay inside the 2 MiB block's 1 GiB region. */
		if (end > ts_round_down(start, TDP_LEVEL_1G) + TS_PAGES_1G)
			end = ts_round_down(start, TDP_LEVEL_1G) + TS_PAGES_1G;
		ret = tdp_invalidate_begin(r->e->mmu, start, end);
		if (!SX_CHECK(ret == 0, "invalidate_begin: %d", ret))
			continue;
		ret = tdp_zap_host_unmap(r->e->mmu, start, end);
		SX_CHECK(ret == 0, "zap_host_unmap: %d", ret);
		rz_check_unmapped(r, start, end);
		ret = tdp_invalidate_end(r->e->mmu, start, end);
		SX_CHECK(ret == 0, "invalidate_end: %d", ret);
	}
	return NULL;
}

/*
 * root_zap_ref - race: a root freed while a zap still needs it.
 *
 * Roots come and go continuously: one thread invalidates the direct root
 * and zaps it, another claims invalidated roots concurrently, a third
 * takes and puts references, vCPUs drop their reference to an old root
 * whenever they fault after an invalidation (often the last one), and a
 * host thread brackets range unmaps with an invalidation.  Every zap must
 * hold the root it walks (freeing it early is a use-after-free ASan and
 * TSan report), range zaps must include invalidated roots not yet freed,
 * and so, right after tdp_zap_host_unmap() returned, no root at all may
 * map the range.  At the end every invalidated root is freed (the valid
 * direct root exists only if a fault loaded one after the last
 * invalidation).
 */
void race_root_zap_ref(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct rz_run r = { .e = &e, .seed = o->seed };
	struct faulter f[2];
	struct sx_threads g = { .n = 0 };
	struct tdp_stats st;

	if (!sx_env_init(&e, 0, true, 0))
		return;
	r.base = race_fresh_region(10);
	sx_budget_start(&r.b, o->seconds, o->max_ops);
	for (int i = 0; i < 2; i++) {
		f[i] = (struct faulter){ .e = &e,
					 .b = &r.b,
					 .base = r.base,
					 .seed = sx_seed_for(o->seed, 30 + i) };
		sx_spawn(&g, faulter_main, &f[i]);
	}
	sx_spawn(&g, rz_invalidator_main, &r);
	sx_spawn(&g, rz_claimer_main, &r);
	sx_spawn(&g, rz_getter_main, &r);
	sx_spawn(&g, rz_unmapper_main, &r);
	sx_join(&g);

	SX_CHECK(tdp_mmu_zap_invalidated_roots(e.mmu) == 0, "final zap");
	tdp_rcu_barrier();
	tdp_mmu_get_stats(e.mmu, &st);
	printf("races: root_zap_ref: %" PRIu64 " roots allocated, %ld unmap "
	       "checks\n",
	       st.roots_allocated, r.checked);
	sx_check_roots_freed(&e);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- root_zap_once ----------------------------------------------------------- */

struct zo_run {
	struct ts_env *e;
	pthread_barrier_t start;
	tdp_gfn_t base;
	bool stop; /* atomic */
	int nr;
};

struct zo_thread {
	struct zo_run *run;
	int id;
};

static void *zo_main(void *arg)
{
	struct zo_thread *t = arg;
	struct zo_run *r = t->run;
	struct tdp_vcpu *v = t->id == 0 ? race_vcpu(r->e) : NULL;

	for (;;) {
		pthread_barrier_wait(&r->start);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		if (t->id == 0) {
			/* A fault that allocates the next root meanwhile. */
			race_fault_ok(race_fault(r->e, v, r->base + 3, false,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      r->base + 3, false);
		} else if (t->id == 1) {
			/* A range zap walks invalidated roots too. */
			SX_CHECK(tdp_zap_range(r->e->mmu, r->base,
					       r->base + RR_GFNS,
					       TDP_ALIAS_SHARED) == 0,
				 "zap_range");
		} else {
			SX_CHECK(tdp_mmu_zap_invalidated_roots(r->e->mmu) == 0,
				 "zap_invalidated_roots");
		}
		sx_count_ops(1);
		pthread_barrier_wait(&r->start);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * root_zap_once - race: an invalidated root zapped twice.
 *
 * Each round maps leaves into the direct root, takes a reference to it,
 * invalidates it, and lets several threads call
 * tdp_mmu_zap_invalidated_roots() at once (with a range zap and a fault
 * allocating the next root at the same time).  The root must be zapped
 * exactly once and the MMU's reference dropped exactly once: afterwards
 * the test's reference is the only one left (refcount 1), the root holds
 * no leaf, and putting it frees exactly one root.  A second zap would
 * drop the MMU's reference twice and free the root under the test's
 * reference.
 */
void race_root_zap_once(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct zo_run r = { .e = &e };
	struct zo_thread th[SX_MAX_THREADS];
	struct sx_threads g = { .n = 0 };
	struct tdp_vcpu *v;
	struct sx_budget b;
	long rounds = 0;

	if (!sx_env_init(&e, 0, true, 0))
		return;
	r.base = race_fresh_region(11);
	r.nr = o->threads + 2 < 8 ? o->threads + 2 : 8;
	pthread_barrier_init(&r.start, NULL, (unsigned int)r.nr + 1);
	for (int i = 0; i < r.nr; i++) {
		th[i] = (struct zo_thread){ .run = &r, .id = i };
		sx_spawn(&g, zo_main, &th[i]);
	}
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b)) {
		struct tdp_root *old;
		struct tdp_stats before, after;
		int ret;

		v = race_vcpu(&e);
		for (uint64_t i = 0; i < 16; i++) {
			tdp_gfn_t gfn = window_gfn(r.base, i * 97);

			race_fault_ok(race_fault(&e, v, gfn, false,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      gfn, false);
		}
		tdp_vcpu_destroy(v);
		ret = tdp_root_get(e.mmu, TDP_ROOT_DIRECT, &old);
		if (!SX_CHECK(ret == 0, "tdp_root_get: %d", ret))
			break;
		SX_CHECK(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED) == 0,
			 "invalidate_roots");
		pthread_barrier_wait(&r.start);
		pthread_barrier_wait(&r.start);

		SX_CHECK(tdp_root_refcount(old) == 1,
			 "round %ld: the invalidated root has %d references "
			 "after concurrent zaps, expected only the test's",
			 rounds, tdp_root_refcount(old));
		SX_CHECK(!tdp_root_is_valid(old), "the old root is valid");
		SX_CHECK(rz_leaves_in(&e, old->table->spt, old->table->level, 0,
				      0, ~0ULL) == 0,
			 "round %ld: the zapped root still holds leaves",
			 rounds);
		tdp_rcu_barrier();
		tdp_mmu_get_stats(e.mmu, &before);
		tdp_root_put(e.mmu, old);
		tdp_rcu_barrier();
		tdp_mmu_get_stats(e.mmu, &after);
		SX_CHECK(after.roots_freed == before.roots_freed + 1,
			 "putting the last reference freed %" PRIu64 " roots",
			 after.roots_freed - before.roots_freed);
		SX_CHECK(after.roots_allocated - after.roots_freed == 2,
			 "%" PRIu64 " roots live, expected 2",
			 after.roots_allocated - after.roots_freed);
		rounds++;
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_barrier_wait(&r.start);
	sx_join(&g);
	pthread_barrier_destroy(&r.start);
	printf("races: root_zap_once: %ld rounds with %d concurrent zappers\n",
	       rounds, r.nr - 2);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- root_alloc_once -------------------------------------------------------------- */

struct ra_run {
	struct ts_env *e;
	pthread_barrier_t start;
	bool stop; /* atomic */
	int nr;
};

struct ra_thread {
	struct ra_run *run;
	int id;
	struct tdp_vcpu *vcpu;
	struct tdp_root *root; /* from tdp_root_get */
	tdp_pfn_t root_pfn;    /* from tdp_vcpu_load_root */
	int ret;
};

static void *ra_main(void *arg)
{
	struct ra_thread *t = arg;
	struct ra_run *r = t->run;

	for (;;) {
		int level;

		pthread_barrier_wait(&r->start);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		if (t->id % 2) {
			t->ret = tdp_root_get(r->e->mmu, TDP_ROOT_DIRECT,
					      &t->root);
		} else {
			t->ret = tdp_vcpu_create(r->e->mmu, &t->vcpu);
			if (!t->ret)
				t->ret = tdp_vcpu_load_root(
					t->vcpu, TDP_ALIAS_SHARED, &t->root_pfn,
					&level);
		}
		sx_count_ops(1);
		pthread_barrier_wait(&r->start);
	}
	return NULL;
}

/*
 * root_alloc_once - race: two roots allocated for one role.
 *
 * After each invalidation there is no valid direct root; then all threads
 * ask for one at the same moment, half through tdp_root_get() and half
 * through a vCPU loading its root (the path every fault takes).  They must
 * all get the same root, exactly one root must have been allocated, and
 * its reference count must be the number of holders plus the MMU's own.
 * The mirror root, asked for meanwhile, is never reallocated.
 */
void race_root_alloc_once(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct ra_run r = { .e = &e };
	struct ra_thread th[SX_MAX_THREADS];
	struct sx_threads g = { .n = 0 };
	struct tdp_root *mirror = NULL;
	struct sx_budget b;
	long rounds = 0;

	if (!sx_env_init(&e, 0, true, 0))
		return;
	r.nr = o->threads + 3 < SX_MAX_THREADS ? o->threads + 3 : 6;
	pthread_barrier_init(&r.start, NULL, (unsigned int)r.nr + 1);
	for (int i = 0; i < r.nr; i++) {
		th[i] = (struct ra_thread){ .run = &r, .id = i };
		sx_spawn(&g, ra_main, &th[i]);
	}
	SX_CHECK(tdp_root_get(e.mmu, TDP_ROOT_MIRROR, &mirror) == 0,
		 "mirror root");
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b)) {
		struct tdp_stats before, after;
		struct tdp_root *root = NULL, *m2 = NULL;
		tdp_pfn_t pfn = 0;
		int holders = 0;

		SX_CHECK(tdp_mmu_invalidate_roots(e.mmu, TDP_ALIAS_SHARED) == 0,
			 "invalidate_roots");
		SX_CHECK(tdp_mmu_zap_invalidated_roots(e.mmu) == 0,
			 "zap_invalidated_roots");
		tdp_mmu_get_stats(e.mmu, &before);
		pthread_barrier_wait(&r.start);
		SX_CHECK(tdp_root_get(e.mmu, TDP_ROOT_MIRROR, &m2) == 0 &&
				 m2 == mirror,
			 "the mirror root changed");
		tdp_root_put(e.mmu, m2);
		pthread_barrier_wait(&r.start);
		tdp_mmu_get_stats(e.mmu, &after);

		for (int i = 0; i < r.nr; i++) {
			struct ra_thread *t = &th[i];

			if (!SX_CHECK(t->ret == 0, "thread %d: %d", i, t->ret))
				continue;
			holders++;
			if (t->id % 2) {
				if (!root)
					root = t->root;
				SX_CHECK(t->root == root,
					 "round %ld: two threads got different "
					 "direct roots",
					 rounds);
			} else {
				if (!pfn)
					pfn = t->root_pfn;
				SX_CHECK(t->root_pfn == pfn,
					 "round %ld: two vCPUs loaded "
					 "different direct roots",
					 rounds);
			}
		}
		if (root && pfn)
			SX_CHECK(tdp_virt_to_pfn(root->table->spt) == pfn,
				 "round %ld: vCPUs and tdp_root_get() got "
				 "different roots",
				 rounds);
		SX_CHECK(after.roots_allocated == before.roots_allocated + 1,
			 "round %ld: %" PRIu64 " roots allocated for one role",
			 rounds,
			 after.roots_allocated - before.roots_allocated);
		if (root)
			SX_CHECK(tdp_root_refcount(root) == holders + 1,
				 "round %ld: the root has %d references, %d "
				 "holders plus the MMU's",
				 rounds, tdp_root_refcount(root), holders);
		for (int i = 0; i < r.nr; i++) {
			tdp_root_put(e.mmu, th[i].root);
			tdp_vcpu_destroy(th[i].vcpu);
			th[i].root = NULL;
			th[i].vcpu = NULL;
		}
		rounds++;
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_barrier_wait(&r.start);
	sx_join(&g);
	pthread_barrier_destroy(&r.start);
	tdp_root_put(e.mmu, mirror);
	printf("races: root_alloc_once: %ld rounds of %d threads\n", rounds,
	       r.nr);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}
