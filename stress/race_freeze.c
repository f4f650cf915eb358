/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race classes of the freeze protocol: ownership of a frozen entry, parent
 * before child in the backend, exact rollback, and unlinkers that must see
 * the final value of an entry another thread was changing.
 */
#include "races.h"

/* White box: a vCPU's table cache (struct tdp_vcpu). */
#include "internal.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* One fault in its own thread, for a test that blocks it in the backend. */
struct fault_job {
	struct ts_env *e;
	tdp_gfn_t gfn;
	bool private;
	int max_level;
	bool once; /* one tdp_map() try instead of retrying */
	int result;
};

static void *fault_job_main(void *arg)
{
	struct fault_job *j = arg;
	struct tdp_vcpu *v = race_vcpu(j->e);

	if (!v) {
		j->result = -ENOMEM;
		return NULL;
	}
	if (j->once)
		j->result = ts_map_seq(v, j->gfn, ts_alias(j->private),
				       ts_pfn(j->gfn, ts_alias(j->private)),
				       TDP_PROT_RWX, j->max_level,
				       tdp_mmu_seq(j->e->mmu));
	else
		j->result = race_fault(j->e, v, j->gfn, j->private,
				       TDP_PROT_RWX, j->max_level);
	sx_count_ops(1);
	tdp_vcpu_destroy(v);
	return NULL;
}

/* A range zap in its own thread; done is set when it returned. */
struct zap_job {
	struct ts_env *e;
	tdp_gfn_t start, end;
	enum tdp_alias alias;
	int result;
	bool done; /* atomic */
};

static void *zap_job_main(void *arg)
{
	struct zap_job *z = arg;

	z->result = tdp_zap_range(z->e->mmu, z->start, z->end, z->alias);
	sx_count_ops(1);
	__atomic_store_n(&z->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool zap_job_done(struct zap_job *z)
{
	return __atomic_load_n(&z->done, __ATOMIC_ACQUIRE);
}

/*
 * The entry of @gfn at @level in the mirror is frozen: lookups stop there
 * and return the frozen value.
 */
static bool check_frozen_at(struct ts_env *e, tdp_gfn_t gfn, int level)
{
	int lvl;
	tdp_spte_t s = race_lookup(e, gfn, true, &lvl);

	return SX_CHECK(tdp_spte_is_frozen(e->fmt, s) && lvl == level,
			"GFN %#" PRIx64 ": expected a frozen entry at level "
			"%d, lookup found %#" PRIx64 " at level %d",
			gfn, level, s, lvl);
}

/* The 1 GiB region number @k used by tests that link 4 KiB tables. */
static tdp_gfn_t region_1g(unsigned int k)
{
	return ts_round_down(race_fresh_region(k), TDP_LEVEL_1G);
}

/* ---- frozen_owner ------------------------------------------------------------ */

/*
 * frozen_owner - race: a frozen entry written by a non-owner.
 *
 * The owner's map callback is held in the backend, so its entry stays
 * frozen with mmu_lock held for read.  Meanwhile: every lookup of the
 * entry returns FROZEN; another vCPU faulting the same GFN gets RETRY and
 * the entry stays frozen (it neither writes it nor waits on it); faults of
 * neighbouring entries complete, because map callbacks of different
 * entries run concurrently; a zap of the GFN waits for mmu_lock and does
 * not touch the entry.  After the release the owner's value lands, and the
 * zap that waited removes it.  Rounds alternate between a held set_leaf
 * (the 4 KiB entry frozen) and a held link_table (the 2 MiB entry frozen
 * while a table is linked below it, so the contender meets FROZEN above
 * its goal level).
 */
void race_frozen_owner(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct race_hold hold;
	struct sx_budget b;
	struct tdp_vcpu *v;
	tdp_gfn_t leaf_block = region_1g(0);
	unsigned int link_region = 1, link_block = 1;
	long rounds = 0;

	if (!sx_env_init(&e, 0, true, 4096))
		return;
	race_hold_install(&hold, e.be);
	v = race_vcpu(&e);
	/* The 4 KiB table of the set_leaf rounds, and the 1 GiB region of
	 * the first link_table rounds. */
	race_fault_ok(race_fault(&e, v, leaf_block + 511, true, TDP_PROT_RWX,
				 TDP_LEVEL_4K),
		      leaf_block + 511, true);
	race_fault_ok(race_fault(&e, v, region_1g(link_region), true,
				 TDP_PROT_RWX, TDP_LEVEL_4K),
		      region_1g(link_region), true);

	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b)) {
		bool link = rounds % 2;
		struct fault_job owner = { .e = &e,
					   .private = true,
					   .max_level = TDP_LEVEL_4K };
		struct zap_job zap = { .e = &e, .alias = TDP_ALIAS_PRIVATE };
		struct sx_threads g = { .n = 0 };
		tdp_gfn_t neighbour;
		int level;

		if (link) {
			tdp_gfn_t block = region_1g(link_region) +
					  link_block * TS_PAGES_2M;

			owner.gfn = block + 5;
			level = TDP_LEVEL_2M;
			race_hold_arm(&hold, TS_LINK_TABLE, block, level);
			/* A GFN under the same 1 GiB entry, outside the
			 * frozen 2 MiB entry. */
			neighbour = region_1g(link_region) + 7;
			if (++link_block == 512) {
				link_block = 1;
				link_region++;
				race_fault_ok(race_fault(&e, v,
							 region_1g(link_region),
							 true, TDP_PROT_RWX,
							 TDP_LEVEL_4K),
					      region_1g(link_region), true);
			}
		} else {
			owner.gfn = leaf_block + 1 + (rounds / 2) % 255;
			level = TDP_LEVEL_4K;
			race_hold_arm(&hold, TS_SET_LEAF, owner.gfn, level);
			neighbour = leaf_block + 256 + (rounds / 2) % 255;
		}
		zap.start = owner.gfn;
		zap.end = owner.gfn + 1;

		sx_spawn(&g, fault_job_main, &owner);
		if (!race_hold_wait(&hold, RACE_HANG_S)) {
			race_hold_disarm(&hold);
			sx_join(&g);
			break;
		}
		check_frozen_at(&e, owner.gfn, level);

		/* A non-owner meets the frozen entry: RETRY, entry unchanged. */
		for (int i = 0; i < 4; i++) {
			int ret = ts_map_seq(v, owner.gfn, ts_alias(true),
					     ts_pfn(owner.gfn, ts_alias(true)),
					     TDP_PROT_RWX, TDP_LEVEL_4K,
					     tdp_mmu_seq(e.mmu));

			SX_CHECK(ret == TDP_FAULT_RETRY,
				 "fault of a GFN whose entry another thread "
				 "holds frozen returned %d, not RETRY",
				 ret);
			SX_CHECK(v->cache_count == TDP_VCPU_CACHE_MIN,
				 "a fault that met a frozen entry kept %d "
				 "of its %d cached tables",
				 v->cache_count, TDP_VCPU_CACHE_MIN);
			check_frozen_at(&e, owner.gfn, level);
			sx_count_ops(1);
		}
		/* Other entries of the same tables are not held up. */
		race_fault_ok(race_fault(&e, v, neighbour, true, TDP_PROT_RWX,
					 TDP_LEVEL_4K),
			      neighbour, true);
		sx_count_ops(1);

		/* A zap needs mmu_lock for write: it waits for the owner. */
		sx_spawn(&g, zap_job_main, &zap);
		tdp_udelay(2000);
		SX_CHECK(!zap_job_done(&zap),
			 "a zap of a GFN returned while its entry was frozen "
			 "by a fault holding mmu_lock for read");
		check_frozen_at(&e, owner.gfn, level);

		race_hold_release(&hold);
		sx_join(&g);
		SX_CHECK(owner.result == TDP_FAULT_FIXED,
			 "the owner of a frozen entry got %d, not FIXED",
			 owner.result);
		SX_CHECK(zap.result == 0, "zap: %d", zap.result);
		SX_CHECK(!sx_lookup_leaf(&e, owner.gfn, true, NULL, NULL),
			 "GFN %#" PRIx64 " still mapped after a zap that "
			 "waited for its owner",
			 owner.gfn);
		SX_CHECK(!ts_leaf_at(e.be, owner.gfn, NULL, NULL),
			 "the backend still maps GFN %#" PRIx64, owner.gfn);
		rounds++;
	}
	printf("races: frozen_owner: %ld rounds\n", rounds);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- parent_first -------------------------------------------------------------- */

#define PF_FAULTS 12

struct pf_run {
	struct ts_env *e;
	pthread_barrier_t start, end;
	tdp_gfn_t base; /* written by the controller between barriers */
	bool stop;
	long retries; /* atomic, this round */
	int nr;
};

struct pf_thread {
	struct pf_run *run;
	int id;
};

/* The j-th GFN thread @id faults in a round: two 2 MiB blocks shared by
 * all threads, private mostly, some at 2 MiB. */
static tdp_gfn_t pf_gfn(const struct pf_run *r, int id, int j)
{
	return r->base + (tdp_gfn_t)(j % 2) * TS_PAGES_2M + (tdp_gfn_t)id * 24 +
	       (tdp_gfn_t)j;
}

static bool pf_private(int j)
{
	return j % 4 != 3;
}

static int pf_level(int id, int j)
{
	return (id + j) % 5 == 0 ? TDP_LEVEL_2M : TDP_LEVEL_4K;
}

static void *pf_main(void *arg)
{
	struct pf_thread *t = arg;
	struct pf_run *r = t->run;
	struct tdp_vcpu *v = race_vcpu(r->e);

	for (;;) {
		pthread_barrier_wait(&r->start);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		for (int j = 0; j < PF_FAULTS && v; j++) {
			tdp_gfn_t gfn = pf_gfn(r, t->id, j);
			bool private = pf_private(j);
			double give_up = sx_now() + RACE_HANG_S;
			int ret;

			for (;;) {
				ret = ts_map_seq(v, gfn, ts_alias(private),
						 ts_pfn(gfn, ts_alias(private)),
						 TDP_PROT_RWX,
						 pf_level(t->id, j),
						 tdp_mmu_seq(r->e->mmu));
				sx_count_ops(1);
				if (ret != TDP_FAULT_RETRY ||
				    sx_now() > give_up)
					break;
				__atomic_add_fetch(&r->retries, 1,
						   __ATOMIC_RELAXED);
				sched_yield();
			}
			race_fault_ok(ret, gfn, private);
		}
		pthread_barrier_wait(&r->end);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * parent_first - race: a child reaching the backend before its parent.
 *
 * Every round, all threads fault GFNs of a fresh region at once, so their
 * walks need the same new tables.  The link_table of the topmost new
 * table is held in the backend until every other thread has met its
 * frozen entry at least once (or 100 ms passed): a thread that treated
 * the frozen entry as "go ahead" would call link_table or set_leaf for a
 * child whose parent the backend has not linked, which the strict
 * recorder reports.  2 MiB and 4 KiB faults of the same blocks also race
 * a huge leaf against a table in one entry.  After every round each
 * faulted GFN must be mapped to its reference PFN.
 */
void race_parent_first(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct pf_run r = { .e = &e };
	struct pf_thread th[SX_MAX_THREADS];
	struct sx_threads g = { .n = 0 };
	struct race_hold hold;
	struct sx_budget b;
	long rounds = 0, contended = 0;

	if (!sx_env_init(&e, 0, true, 4096))
		return;
	race_hold_install(&hold, e.be);
	ts_set_link_delay(e.be, 20);
	r.nr = o->threads + 1 < 8 ? o->threads + 1 : 8;
	pthread_barrier_init(&r.start, NULL, (unsigned int)r.nr + 1);
	pthread_barrier_init(&r.end, NULL, (unsigned int)r.nr + 1);
	for (int i = 0; i < r.nr; i++) {
		th[i] = (struct pf_thread){ .run = &r, .id = i };
		sx_spawn(&g, pf_main, &th[i]);
	}

	sx_budget_start(&b, o->seconds, o->max_ops);
	while (!sx_budget_over(&b) && rounds < 131072) {
		/* Below the first 256 regions a fresh 512 GiB entry: the
		 * mirror's level-4 link is the first; later a level-3 one. */
		int top = rounds < 256 ? TDP_LEVEL_512G : TDP_LEVEL_1G;
		double t0;

		r.base = race_fresh_region((unsigned int)rounds);
		__atomic_store_n(&r.retries, 0, __ATOMIC_RELAXED);
		race_hold_arm(&hold, TS_LINK_TABLE, ts_round_down(r.base, top),
			      top);
		pthread_barrier_wait(&r.start);
		if (race_hold_wait(&hold, RACE_HANG_S)) {
			t0 = sx_now();
			while (__atomic_load_n(&r.retries, __ATOMIC_RELAXED) <
				       r.nr - 1 &&
			       sx_now() - t0 < 0.1)
				tdp_udelay(50);
			if (__atomic_load_n(&r.retries, __ATOMIC_RELAXED))
				contended++;
			race_hold_release(&hold);
		} else {
			race_hold_disarm(&hold);
		}
		pthread_barrier_wait(&r.end);

		for (int id = 0; id < r.nr; id++) {
			for (int j = 0; j < PF_FAULTS; j++) {
				tdp_gfn_t gfn = pf_gfn(&r, id, j);
				tdp_pfn_t pfn = 0;
				bool mapped = sx_lookup_leaf(
					&e, gfn, pf_private(j), NULL, &pfn);

				SX_CHECK(
					mapped &&
						pfn == ts_pfn(gfn,
							      ts_alias(pf_private(
								      j))),
					"round %ld: GFN %#" PRIx64 " (%s) %s",
					rounds, gfn,
					pf_private(j) ? "private" : "shared",
					mapped ? "maps a wrong PFN"
					       : "is not mapped");
			}
		}
		SX_CHECK(ts_violations(e.be) == 0,
			 "round %ld: the backend saw %" PRIu64 " violations",
			 rounds, ts_violations(e.be));
		rounds++;
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_barrier_wait(&r.start);
	sx_join(&g);
	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&r.end);
	printf("races: parent_first: %ld rounds, %ld with threads waiting on "
	       "a held parent\n",
	       rounds, contended);
	SX_CHECK(rounds == 0 || r.nr < 2 || contended > 0,
		 "no round had a thread meet the held parent");
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- rollback_stale ------------------------------------------------------------ */

struct rb_run {
	struct ts_env *e;
	struct sx_budget b;
	tdp_gfn_t base;
	unsigned int nr_gfns;
	/* Per GFN and alias: some fault of it succeeded (atomic). */
	bool *mapped[2];
	unsigned long hard_errors; /* atomic */
	uint64_t seed;
};

struct rb_thread {
	struct rb_run *run;
	int id;
};

static void *rb_main(void *arg)
{
	struct rb_thread *t = arg;
	struct rb_run *r = t->run;
	uint64_t rng = sx_seed_for(r->seed, (uint64_t)t->id + 100);
	struct tdp_vcpu *v = race_vcpu(r->e);

	while (v && sx_budget_next(&r->b)) {
		unsigned int i = (unsigned int)ts_rand_below(&rng, r->nr_gfns);
		bool private = ts_rand_below(&rng, 4) != 0;
		int ret = race_fault(
			r->e, v, r->base + i, private, TDP_PROT_RWX,
			ts_rand_below(&rng, 6) ? TDP_LEVEL_4K : TDP_LEVEL_2M);

		if (ret == -ENOSPC && private) {
			__atomic_add_fetch(&r->hard_errors, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		if (race_fault_ok(ret, r->base + i, private))
			__atomic_store_n(&r->mapped[private][i], true,
					 __ATOMIC_RELAXED);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * One injected failure of the next @call: the fault reports it, the entry
 * is exactly as before (not frozen, not present), the backend and the
 * mirror agree, and the very next fault of the GFN installs the leaf.
 */
static void rb_one_failure(struct ts_env *e, struct tdp_vcpu *v, tdp_gfn_t gfn,
			   enum ts_call call, int err, int level)
{
	struct tdp_stats before, after;
	tdp_spte_t s;
	int ret, lvl;

	tdp_mmu_get_stats(e->mmu, &before);
	ts_fail_next_map(e->be, call, err);
	ret = ts_map_seq(v, gfn, ts_alias(true), ts_pfn(gfn, ts_alias(true)),
			 TDP_PROT_RWX, TDP_LEVEL_4K, tdp_mmu_seq(e->mmu));
	SX_CHECK(ret == (err == -EBUSY ? TDP_FAULT_RETRY : err),
		 "%s failing with %d: the fault returned %d",
		 call == TS_LINK_TABLE ? "link_table" : "set_leaf", err, ret);
	s = race_lookup(e, gfn, true, &lvl);
	SX_CHECK(!tdp_spte_is_frozen(e->fmt, s) &&
			 !tdp_spte_is_present(e->fmt, s) && lvl == level,
		 "after a failed %s the entry of GFN %#" PRIx64 " is %#" PRIx64
		 " at level %d, expected non-present at %d",
		 call == TS_LINK_TABLE ? "link_table" : "set_leaf", gfn, s, lvl,
		 level);
	tdp_mmu_get_stats(e->mmu, &after);
	SX_CHECK(after.leaves[TDP_ROOT_MIRROR][1] ==
			 before.leaves[TDP_ROOT_MIRROR][1],
		 "a failed map changed the mirror's leaf count");
	ret = ts_map_seq(v, gfn, ts_alias(true), ts_pfn(gfn, ts_alias(true)),
			 TDP_PROT_RWX, TDP_LEVEL_4K, tdp_mmu_seq(e->mmu));
	SX_CHECK(ret == TDP_FAULT_FIXED,
		 "the fault right after a rolled-back one returned %d", ret);
	sx_count_ops(2);
}

/*
 * rollback_stale - race: rollback that leaves the caller a stale SPTE.
 *
 * Deterministic part: link_table and set_leaf fail once (busy, then a
 * hard error); the fault must report it, leave the entry non-present and
 * not frozen, and the next fault must install the leaf at once.  Then a
 * set_leaf is held while a second vCPU keeps faulting the same GFN (it
 * sees FROZEN, or loses its compare-exchange and must refresh its copy),
 * and the held call fails: the contender must then install the leaf
 * within its retries.  A caller left with the frozen or the pre-failure
 * value as its copy would retry forever or install over a stale value.
 * Statistical part: threads fault overlapping GFNs of both aliases with
 * 30% busy and 5% hard errors injected; afterwards every GFN some fault
 * reported mapped is mapped, no GFN whose faults all failed is, and the
 * mirror equals the backend.
 */
void race_rollback_stale(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct race_hold hold;
	struct tdp_vcpu *v;
	struct rb_run r = { .e = &e, .nr_gfns = 4 * TS_PAGES_2M };
	struct rb_thread th[SX_MAX_THREADS];
	struct sx_threads g = { .n = 0 };
	tdp_gfn_t region = region_1g(0), block;
	double det_end = sx_now() + o->seconds / 3;
	long rounds = 0;
	int nr;

	if (!sx_env_init(&e, 0, true, 4096))
		return;
	race_hold_install(&hold, e.be);
	v = race_vcpu(&e);
	race_fault_ok(
		race_fault(&e, v, region, true, TDP_PROT_RWX, TDP_LEVEL_4K),
		region, true);

	for (block = 1; block < 512 && (sx_now() < det_end || rounds < 2);
	     block++, rounds++) {
		tdp_gfn_t base = region + block * TS_PAGES_2M;
		struct fault_job owner = { .e = &e,
					   .gfn = base + 9,
					   .private = true,
					   .once = true,
					   .max_level = TDP_LEVEL_4K };
		struct fault_job contender = { .e = &e,
					       .gfn = base + 9,
					       .private = true,
					       .max_level = TDP_LEVEL_4K };
		int err = rounds % 2 ? -ENOSPC : -EBUSY;

		/* The 2 MiB entry is empty: the link fails first. */
		rb_one_failure(&e, v, base + 1, TS_LINK_TABLE, err,
			       TDP_LEVEL_2M);
		rb_one_failure(&e, v, base + 2, TS_SET_LEAF, err, TDP_LEVEL_4K);

		race_hold_arm(&hold, TS_SET_LEAF, owner.gfn, TDP_LEVEL_4K);
		sx_spawn(&g, fault_job_main, &owner);
		if (!race_hold_wait(&hold, RACE_HANG_S)) {
			race_hold_disarm(&hold);
			sx_join(&g);
			break;
		}
		sx_spawn(&g, fault_job_main, &contender);
		tdp_udelay(200);
		ts_fail_next_map(e.be, TS_SET_LEAF, err);
		race_hold_release(&hold);
		sx_join(&g);
		SX_CHECK(owner.result ==
				 (err == -EBUSY ? TDP_FAULT_RETRY : err),
			 "held set_leaf failing with %d: owner got %d", err,
			 owner.result);
		SX_CHECK(contender.result == TDP_FAULT_FIXED,
			 "the contender of a rolled-back entry got %d, not "
			 "FIXED",
			 contender.result);
		SX_CHECK(ts_compare(e.be, e.mmu, base, base + TS_PAGES_2M) == 0,
			 "mirror != backend after a rollback");
	}
	printf("races: rollback_stale: %ld deterministic rounds\n", rounds);

	r.base = region_1g(1);
	r.seed = o->seed;
	for (int a = 0; a < 2; a++)
		r.mapped[a] = calloc(r.nr_gfns, sizeof(bool));
	ts_set_injection(e.be, 300, 50, o->seed);
	nr = o->threads + 1 < SX_MAX_THREADS ? o->threads + 1 : 4;
	sx_budget_start(&r.b, o->seconds * 2 / 3, o->max_ops);
	for (int i = 0; i < nr; i++) {
		th[i] = (struct rb_thread){ .run = &r, .id = i };
		sx_spawn(&g, rb_main, &th[i]);
	}
	sx_join(&g);
	ts_set_injection(e.be, 0, 0, 0);

	for (unsigned int i = 0; i < r.nr_gfns; i++) {
		for (int a = 0; a < 2; a++) {
			bool mapped =
				sx_lookup_leaf(&e, r.base + i, a, NULL, NULL);

			if (r.mapped[a][i])
				SX_CHECK(mapped,
					 "%s GFN %#" PRIx64 ": a fault "
					 "succeeded but it is not mapped",
					 a ? "private" : "shared", r.base + i);
		}
	}
	/* A hard error leaves nothing behind: a private GFN none of whose
	 * faults succeeded may only be covered by a 2 MiB leaf that another
	 * GFN's fault installed. */
	for (unsigned int i = 0; i < r.nr_gfns; i++) {
		int level;

		if (r.mapped[1][i] ||
		    !sx_lookup_leaf(&e, r.base + i, true, &level, NULL))
			continue;
		SX_CHECK(level > TDP_LEVEL_4K,
			 "private GFN %#" PRIx64 " is mapped although every "
			 "fault of it failed",
			 r.base + i);
	}
	{
		struct tdp_stats st;

		tdp_mmu_get_stats(e.mmu, &st);
		printf("races: rollback_stale: %ld faults, backend busy %" PRIu64
		       ", errors %" PRIu64 ", hard errors seen %lu\n",
		       sx_budget_ops(&r.b), st.backend_busy, st.backend_errors,
		       r.hard_errors);
		SX_CHECK(sx_budget_ops(&r.b) < 50 || st.backend_busy > 0,
			 "no busy result was injected");
	}
	for (int a = 0; a < 2; a++)
		free(r.mapped[a]);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- unlink_waits ------------------------------------------------------------------ */

struct uw_hw {
	struct ts_env *e;
	tdp_gfn_t block;
	uint64_t seed;
	pthread_barrier_t *barrier;
	bool round_over; /* atomic */
	bool stop;	 /* atomic */
	bool dirtied;	 /* atomic: a write turned a dirty bit on */
	long accesses;
};

/* A CPU writing the block while the test collapses its table. */
static void *uw_hw_main(void *arg)
{
	struct uw_hw *h = arg;
	struct tdp_vcpu *v = race_vcpu(h->e);
	uint64_t rng = sx_seed_for(h->seed, 7);

	for (;;) {
		tdp_pfn_t root;
		int root_level;

		pthread_barrier_wait(h->barrier);
		if (__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE))
			break;
		if (!v || tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root,
					     &root_level)) {
			SX_CHECK(false, "tdp_vcpu_load_root failed");
			pthread_barrier_wait(h->barrier);
			continue;
		}
		while (!__atomic_load_n(&h->round_over, __ATOMIC_ACQUIRE)) {
			tdp_walk_begin();
			for (int i = 0; i < 16; i++) {
				tdp_gfn_t gfn =
					h->block + ts_rand_below(&rng, 512);
				bool dirtied;

				ts_hw_access(h->e->fmt, root, root_level,
					     gfn | TS_SHARED_BIT, true,
					     &dirtied, NULL);
				if (dirtied)
					__atomic_store_n(&h->dirtied, true,
							 __ATOMIC_RELAXED);
				h->accesses++;
			}
			tdp_walk_end();
		}
		pthread_barrier_wait(h->barrier);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * Mirror half: the freezer holds a private leaf frozen inside set_leaf
 * (mmu_lock held for read); a zap of its 2 MiB block must neither return
 * nor call remove_leaf before the freezer finished, and must then remove
 * the leaf the freezer installed.
 */
static void uw_mirror_round(struct ts_env *e, struct race_hold *hold,
			    tdp_gfn_t block, tdp_gfn_t gfn)
{
	struct fault_job owner = {
		.e = e, .gfn = gfn, .private = true, .max_level = TDP_LEVEL_4K
	};
	struct zap_job zap = { .e = e,
			       .start = block,
			       .end = block + TS_PAGES_2M,
			       .alias = TDP_ALIAS_PRIVATE };
	struct sx_threads g = { .n = 0 };
	bool set_seen = false, removed_after = false;

	race_hold_arm(hold, TS_SET_LEAF, gfn, TDP_LEVEL_4K);
	ts_log_clear(e->be);
	ts_log_enable(e->be, true);
	sx_spawn(&g, fault_job_main, &owner);
	if (!race_hold_wait(hold, RACE_HANG_S)) {
		race_hold_disarm(hold);
		sx_join(&g);
		ts_log_enable(e->be, false);
		return;
	}
	sx_spawn(&g, zap_job_main, &zap);
	tdp_udelay(2000);
	SX_CHECK(!zap_job_done(&zap),
		 "a zap returned while a freezer held an entry of its range");
	for (size_t i = 0; i < ts_log_count(e->be); i++)
		SX_CHECK(ts_log_get(e->be, i).call != TS_REMOVE_LEAF,
			 "remove_leaf called while a freezer held an entry "
			 "frozen");
	race_hold_release(hold);
	sx_join(&g);
	ts_log_enable(e->be, false);
	SX_CHECK(owner.result == TDP_FAULT_FIXED && zap.result == 0,
		 "freezer %d, zap %d", owner.result, zap.result);
	for (size_t i = 0; i < ts_log_count(e->be); i++) {
		struct ts_event ev = ts_log_get(e->be, i);

		if (ev.gfn != gfn)
			continue;
		if (ev.call == TS_SET_LEAF && ev.ret == 0)
			set_seen = true;
		if (ev.call == TS_REMOVE_LEAF && set_seen)
			removed_after = true;
	}
	SX_CHECK(set_seen && removed_after,
		 "the zap that waited for the freezer did not remove the "
		 "leaf it installed (set_leaf %d, remove_leaf after it %d)",
		 set_seen, removed_after);
	SX_CHECK(!sx_lookup_leaf(e, gfn, true, NULL, NULL),
		 "GFN %#" PRIx64 " still mapped", gfn);
}

/*
 * unlink_waits - race: an unlinker that does not wait for a concurrent
 * freezer.
 *
 * Mirror: a private leaf is held frozen inside set_leaf while a zap of
 * its range runs; the zap must wait (it needs mmu_lock for write) and then
 * remove exactly the value the freezer installed, children before parents
 * as the recorder checks.  Direct root: huge-page recovery unlinks a
 * table of 512 writable 4 KiB leaves under the read lock while a
 * simulated CPU keeps setting dirty bits in them.  The unlinker must
 * exchange every entry with FROZEN and fold what it got into the new
 * huge leaf: a dirty bit set between its check and its exchange must
 * survive, so a harvest afterwards reports the whole 2 MiB whenever any
 * write happened, and nothing when none did.
 */
void race_unlink_waits(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct race_hold hold;
	struct tdp_vcpu *v;
	struct sx_budget b;
	pthread_barrier_t barrier;
	struct uw_hw hw;
	struct sx_threads g = { .n = 0 };
	tdp_gfn_t mblock = region_1g(0), dblock = region_1g(1);
	long mirror_rounds = 0, direct_rounds = 0, dirty_rounds = 0;

	if (!sx_env_init(&e, 0, true, 4096))
		return;
	race_hold_install(&hold, e.be);
	v = race_vcpu(&e);

	pthread_barrier_init(&barrier, NULL, 2);
	hw = (struct uw_hw){
		.e = &e, .block = dblock, .seed = o->seed, .barrier = &barrier
	};
	sx_spawn(&g, uw_hw_main, &hw);

	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b)) {
		uint64_t bitmap[TS_PAGES_2M / 64] = { 0 };
		int64_t reported;
		int made;

		if ((mirror_rounds + direct_rounds) % 4 == 0) {
			/* Keep the block's table: map a neighbour first. */
			race_fault_ok(race_fault(&e, v, mblock + 500, true,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      mblock + 500, true);
			uw_mirror_round(&e, &hold, mblock,
					mblock + 1 + mirror_rounds % 400);
			mirror_rounds++;
			continue;
		}

		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
			race_fault_ok(race_fault(&e, v, dblock + i, false,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      dblock + i, false);
		sx_count_ops(TS_PAGES_2M);
		__atomic_store_n(&hw.dirtied, false, __ATOMIC_RELAXED);
		__atomic_store_n(&hw.round_over, false, __ATOMIC_RELEASE);
		pthread_barrier_wait(&barrier);
		tdp_udelay((unsigned int)(direct_rounds % 7) * 10);
		made = tdp_recover_huge_pages(e.mmu, dblock,
					      dblock + TS_PAGES_2M,
					      TDP_LEVEL_2M, TDP_ALIAS_SHARED);
		__atomic_store_n(&hw.round_over, true, __ATOMIC_RELEASE);
		pthread_barrier_wait(&barrier);
		SX_CHECK(made == 1, "recovery of a full table made %d leaves",
			 made);
		reported =
			tdp_harvest_dirty(e.mmu, dblock, dblock + TS_PAGES_2M,
					  bitmap, TDP_ALIAS_SHARED);
		if (__atomic_load_n(&hw.dirtied, __ATOMIC_RELAXED)) {
			dirty_rounds++;
			SX_CHECK(reported == (int64_t)TS_PAGES_2M,
				 "round %ld: the CPU dirtied pages of a table "
				 "being collapsed but the harvest reported "
				 "%" PRId64 " of 512",
				 direct_rounds, reported);
		} else {
			SX_CHECK(reported == 0,
				 "nothing written, %" PRId64 " reported",
				 reported);
		}
		SX_CHECK(tdp_zap_range(e.mmu, dblock, dblock + TS_PAGES_2M,
				       TDP_ALIAS_SHARED) == 0,
			 "zap");
		sx_count_ops(3);
		direct_rounds++;
	}
	__atomic_store_n(&hw.stop, true, __ATOMIC_RELEASE);
	pthread_barrier_wait(&barrier);
	sx_join(&g);
	pthread_barrier_destroy(&barrier);
	printf("races: unlink_waits: %ld mirror rounds, %ld recoveries (%ld "
	       "with writes), %ld CPU accesses\n",
	       mirror_rounds, direct_rounds, dirty_rounds, hw.accesses);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}
