/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stress_mixed: many threads against one MMU of a confidential VM, with
 * mixed operations, in scenarios:
 *
 *   storm    fault storms of both aliases on GFNs that share fresh parent
 *            tables, the backend sleeping in link_table and busy at times
 *   zaps     zaps of every kind racing faults, the backend sleeping
 *   convert  a guest converting ranges between private and shared while
 *            vCPUs fault the alias the attributes name
 *   roots    the direct root invalidated and zapped while vCPUs fault,
 *            roots referenced and host unmaps bracketed by invalidations
 *   yield    every long walk with a yield forced at every step
 *            (TDP_MMU_FORCE_YIELD), racing faults
 *   dirty    aging, dirty harvesting, write-protection and splitting
 *            while simulated CPUs write and vCPUs fault
 *
 * Each scenario runs phases on fresh GFN windows (new parent tables),
 * each bounded by a time and an operation count.  After a phase the
 * threads stop and the program checks, with the MMU quiescent:
 *   - each tree against a reference of what must be mapped (owned
 *     sub-ranges, or a deterministic pass that zaps and re-faults a known
 *     set), and every leaf maps the PFN its GFN and alias call for;
 *   - the backend's own record equals the mirror entry for entry;
 *   - no frozen SPTE is reachable, and the statistics equal the trees;
 * and after teardown that no table, leaf, page or root is left.
 *
 * Usage: stress_mixed [-T scenario] [-s seed] [-t seconds] [-n max_ops]
 *                     [-j vcpus]
 * -t bounds each scenario; TDP_TEST_QUICK=1 makes it about a second.
 */
#include "common.h"

/* White box: tdp_rcu_barrier(), to count roots freed after a grace period. */
#include "internal.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_PHASES 3
#define MX_BLOCKS 8
#define MX_GFNS (MX_BLOCKS * TS_PAGES_2M)
#define MX_HANG_S 30.0

struct mx_run {
	struct ts_env e;
	const struct sx_opts *o;
	struct sx_budget b;
	tdp_gfn_t base; /* the phase's window */
	int phase;
	int nr_vcpus;
};

/*
 * GFN @i of the window: eight 2 MiB blocks, the even ones in one 1 GiB
 * region and the odd ones in the next, under a 512 GiB entry no earlier
 * phase used, so the first faults of a phase all need new tables.
 */
static tdp_gfn_t mx_gfn(const struct mx_run *r, uint64_t i)
{
	uint64_t block = i / TS_PAGES_2M;

	return r->base + (block % 2) * TS_PAGES_1G +
	       (block / 2) * 3 * TS_PAGES_2M + i % TS_PAGES_2M;
}

/* The window index of @gfn, or -1. */
static int64_t mx_index(const struct mx_run *r, tdp_gfn_t gfn)
{
	for (uint64_t b = 0; b < MX_BLOCKS; b++) {
		tdp_gfn_t start = mx_gfn(r, b * TS_PAGES_2M);

		if (gfn >= start && gfn < start + TS_PAGES_2M)
			return (int64_t)(b * TS_PAGES_2M + (gfn - start));
	}
	return -1;
}

static void mx_new_window(struct mx_run *r, int scenario, int phase)
{
	r->phase = phase;
	r->base = (tdp_gfn_t)(1 + (scenario * MX_PHASES + phase) % 250) *
		  TS_PAGES_512G;
}

static struct tdp_vcpu *mx_vcpu(struct mx_run *r)
{
	struct tdp_vcpu *v = NULL;
	int ret = tdp_vcpu_create(r->e.mmu, &v);

	SX_CHECK(ret == 0, "tdp_vcpu_create: %d", ret);
	return v;
}

static bool mx_fault_ok(int ret, tdp_gfn_t gfn, bool private)
{
	return SX_CHECK(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS,
			"fault of %s GFN %#" PRIx64 ": %d",
			private ? "private" : "shared", gfn, ret);
}

static int mx_fault(struct mx_run *r, struct tdp_vcpu *v, tdp_gfn_t gfn,
		    bool private, unsigned int prot, int level)
{
	return sx_fault(&r->e, v, gfn, private, prot, level, MX_HANG_S, NULL);
}

/* Leaf of @private covering window GFN @gfn: true, its level and prot. */
static bool mx_leaf(struct mx_run *r, tdp_gfn_t gfn, bool private, int *level,
		    unsigned int *prot)
{
	tdp_spte_t s;
	int lvl;

	if (tdp_lookup(r->e.mmu, gfn, ts_alias(private), &s, &lvl) ||
	    !tdp_spte_is_present(r->e.fmt, s) ||
	    !tdp_spte_is_leaf(r->e.fmt, s, lvl))
		return false;
	if (level)
		*level = lvl;
	if (prot)
		*prot = tdp_spte_prot(r->e.fmt, s);
	return true;
}

/*
 * Deterministic end of a phase: zap the window in both aliases, fault a
 * known set (every 7th GFN, alternating aliases, some at 2 MiB), zap a
 * known set (the second half of every block), and compare the window
 * with exactly what must be mapped.
 */
static void mx_known_pass(struct mx_run *r, struct tdp_vcpu *v)
{
	for (uint64_t b = 0; b < MX_BLOCKS; b++) {
		tdp_gfn_t s = mx_gfn(r, b * TS_PAGES_2M);

		SX_CHECK(tdp_zap_slot_deleted(r->e.mmu, s, s + TS_PAGES_2M) ==
				 0,
			 "zap_slot_deleted");
	}
	for (uint64_t i = 0; i < MX_GFNS; i += 7) {
		tdp_gfn_t g = mx_gfn(r, i);

		mx_fault_ok(
			mx_fault(r, v, g, i % 2, TDP_PROT_RWX, TDP_LEVEL_4K), g,
			i % 2);
	}
	for (uint64_t b = 0; b < MX_BLOCKS; b++) {
		tdp_gfn_t s = mx_gfn(r, b * TS_PAGES_2M) + TS_PAGES_2M / 2;

		SX_CHECK(tdp_zap_slot_deleted(r->e.mmu, s,
					      s + TS_PAGES_2M / 2) == 0,
			 "zap_slot_deleted");
	}
	sx_count_ops(MX_GFNS / 7 + 2 * MX_BLOCKS);
	for (uint64_t i = 0; i < MX_GFNS; i++) {
		tdp_gfn_t g = mx_gfn(r, i);
		bool second_half = i % TS_PAGES_2M >= TS_PAGES_2M / 2;

		for (int a = 0; a < 2; a++) {
			bool want = i % 7 == 0 && (bool)(i % 2) == (bool)a &&
				    !second_half;
			bool have = mx_leaf(r, g, a, NULL, NULL);

			SX_CHECK(want == have,
				 "known pass: %s GFN %#" PRIx64 " is %smapped, "
				 "expected %smapped",
				 a ? "private" : "shared", g, have ? "" : "un",
				 want ? "" : "un");
		}
	}
}

/* Run @n copies of @fn plus the extra threads, and join them all. */
static void mx_run_threads(struct mx_run *r, void *(*vcpu_fn)(void *),
			   void *vcpu_args, size_t arg_size,
			   void *(*other_fn)(void *), int nr_other,
			   void *other_arg)
{
	struct sx_threads g = { .n = 0 };

	for (int i = 0; i < r->nr_vcpus; i++)
		sx_spawn(&g, vcpu_fn, (char *)vcpu_args + (size_t)i * arg_size);
	for (int i = 0; i < nr_other; i++)
		sx_spawn(&g, other_fn, other_arg);
	sx_join(&g);
}

/* Per-vCPU-thread argument of every scenario. */
struct mx_vcpu_arg {
	struct mx_run *run;
	void *scenario;
	int id;
	uint64_t seed;
};

static void mx_vcpu_args(struct mx_run *r, struct mx_vcpu_arg *args,
			 void *scenario)
{
	for (int i = 0; i < r->nr_vcpus; i++)
		args[i] = (struct mx_vcpu_arg){
			.run = r,
			.scenario = scenario,
			.id = i,
			.seed = sx_seed_for(r->o->seed,
					    (uint64_t)(r->phase * 100 + i)),
		};
}

/* ---- storm ---------------------------------------------------------------------- */

/*
 * A phase of the storm is a series of rounds; round k uses the window
 * moved to fresh 1 GiB regions (2k and 2k + 1 of the phase's 512 GiB
 * entry), so every round starts with all threads needing the same new
 * tables.  A round ends after STORM_ROUND_FAULTS faults.
 */
#define STORM_ROUNDS 64
#define STORM_ROUND_FAULTS 10000

struct storm {
	/* Per alias, round and window GFN: OR of the rights faults got. */
	unsigned char *prot[2];
	/* Per alias, round and block: a 2 MiB fault succeeded there. */
	bool *huge[2];
	int round;   /* atomic */
	long faults; /* atomic: faults in the current round */
};

static tdp_gfn_t storm_gfn(const struct mx_run *r, int round, uint64_t i)
{
	return mx_gfn(r, i) + (tdp_gfn_t)round * 2 * TS_PAGES_1G;
}

static void *storm_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct storm *s = a->scenario;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;

	while (v && sx_budget_next(&r->b)) {
		int round = __atomic_load_n(&s->round, __ATOMIC_ACQUIRE);
		/* Clustered: threads collide on entries and tables. */
		uint64_t i = ts_rand_below(&rng, MX_BLOCKS) * TS_PAGES_2M +
			     ts_rand_below(&rng, 64) * 8 +
			     ts_rand_below(&rng, 2);
		uint64_t slot = (uint64_t)round * MX_GFNS + i;
		bool private = ts_rand_below(&rng, 2);
		unsigned int prot =
			TDP_PROT_READ |
			(ts_rand_below(&rng, 2) ? TDP_PROT_WRITE : 0) |
			(ts_rand_below(&rng, 2) ? TDP_PROT_EXEC : 0);
		int level =
			ts_rand_below(&rng, 4) ? TDP_LEVEL_4K : TDP_LEVEL_2M;
		tdp_gfn_t g = storm_gfn(r, round, i);
		int ret = mx_fault(r, v, g, private, prot, level);

		if (__atomic_add_fetch(&s->faults, 1, __ATOMIC_RELAXED) >=
			    STORM_ROUND_FAULTS &&
		    round + 1 < STORM_ROUNDS &&
		    __atomic_compare_exchange_n(&s->round, &round, round + 1,
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			__atomic_store_n(&s->faults, 0, __ATOMIC_RELAXED);
		if (!mx_fault_ok(ret, g, private))
			continue;
		__atomic_or_fetch(&s->prot[private][slot], (unsigned char)prot,
				  __ATOMIC_RELAXED);
		if (level == TDP_LEVEL_2M)
			__atomic_store_n(&s->huge[private][slot / TS_PAGES_2M],
					 true, __ATOMIC_RELAXED);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

struct storm_check {
	struct mx_run *run;
	struct storm *s;
};

/* The slot (round * MX_GFNS + index) of @gfn, or -1. */
static int64_t storm_slot(const struct mx_run *r, tdp_gfn_t gfn)
{
	int64_t round, i;

	if (gfn < r->base)
		return -1;
	round = (int64_t)((gfn - r->base) / (2 * TS_PAGES_1G));
	if (round >= STORM_ROUNDS)
		return -1;
	i = mx_index(r, gfn - (tdp_gfn_t)round * 2 * TS_PAGES_1G);
	return i < 0 ? -1 : round * (int64_t)MX_GFNS + i;
}

/*
 * Every leaf of the window covers a GFN some fault asked for, or lies in
 * a block where a 2 MiB fault succeeded (a 2 MiB leaf that a later 4 KiB
 * fault split into 512 leaves).
 */
static void storm_leaf(void *p, int root_type, bool valid, tdp_gfn_t gfn,
		       int level, tdp_spte_t spte)
{
	struct storm_check *c = p;
	bool private = root_type == TDP_ROOT_MIRROR;
	bool asked = false;

	(void)valid;
	(void)spte;
	if (gfn + tdp_level_pages(level) <= c->run->base ||
	    gfn >= c->run->base + TS_PAGES_512G)
		return;
	for (uint64_t k = 0; k < tdp_level_pages(level) && !asked; k++) {
		int64_t slot = storm_slot(c->run, gfn + k);

		asked = slot >= 0 &&
			(c->s->prot[private][slot] ||
			 c->s->huge[private][slot / (int64_t)TS_PAGES_2M]);
	}
	SX_CHECK(asked,
		 "%s leaf at GFN %#" PRIx64 " level %d maps nothing any fault "
		 "asked for",
		 private ? "private" : "shared", gfn, level);
}

/*
 * Fault storms: reference = what the faults asked for.  Every GFN a fault
 * reported mapped is mapped, with at least the rights asked (private
 * memory always gets all rights), and every leaf covers some GFN a fault
 * asked for.  The rounds' windows are zapped afterwards.
 */
static void scenario_storm(struct mx_run *r)
{
	struct storm s = { .round = 0 };
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct storm_check c = { .run = r, .s = &s };
	struct sx_tree_count count;
	int rounds;

	ts_set_link_delay(r->e.be, 30);
	ts_set_injection(r->e.be, 50, 0, r->o->seed);
	for (int a = 0; a < 2; a++) {
		s.prot[a] = calloc(STORM_ROUNDS * MX_GFNS, 1);
		s.huge[a] = calloc(STORM_ROUNDS * MX_BLOCKS, sizeof(bool));
	}
	mx_vcpu_args(r, args, &s);
	mx_run_threads(r, storm_vcpu, args, sizeof(args[0]), NULL, 0, NULL);
	ts_set_injection(r->e.be, 0, 0, 0);
	rounds = s.round + 1;

	for (uint64_t slot = 0; slot < (uint64_t)rounds * MX_GFNS; slot++) {
		for (int a = 0; a < 2; a++) {
			unsigned int want = s.prot[a][slot], have = 0;
			tdp_gfn_t g = storm_gfn(r, (int)(slot / MX_GFNS),
						slot % MX_GFNS);

			if (!want)
				continue;
			if (!SX_CHECK(mx_leaf(r, g, a, NULL, &have),
				      "%s GFN %#" PRIx64 " was mapped by a "
				      "fault and is not mapped now",
				      a ? "private" : "shared", g))
				continue;
			SX_CHECK((have & want) == want,
				 "%s GFN %#" PRIx64 " has rights %#x, faults "
				 "got %#x",
				 a ? "private" : "shared", g, have, want);
		}
	}
	sx_walk_trees(&r->e, storm_leaf, &c, &count);
	for (int k = 1; k < rounds; k++) {
		for (uint64_t b = 0; b < MX_BLOCKS; b++) {
			tdp_gfn_t g = storm_gfn(r, k, b * TS_PAGES_2M);

			SX_CHECK(tdp_zap_slot_deleted(r->e.mmu, g,
						      g + TS_PAGES_2M) == 0,
				 "zap");
		}
	}
	printf("stress_mixed: storm: phase %d: %d rounds on fresh tables\n",
	       r->phase, rounds);
	for (int a = 0; a < 2; a++) {
		free(s.prot[a]);
		free(s.huge[a]);
	}
}

/* ---- zaps ------------------------------------------------------------------------ */

/*
 * The window's first half is owned: GFN i belongs to vCPU thread
 * i % nr_vcpus, which alone faults it (4 KiB only) and zaps it, and knows
 * exactly whether it is mapped.  The second half is the race zone, where
 * every vCPU faults (4 KiB and 2 MiB) and zapper threads zap.
 */
#define ZONE_START (MX_GFNS / 2)

struct zaps {
	/* Owned GFNs: expected state per alias (written by the owner). */
	bool *mapped[2];
	int zappers;
};

static void *zaps_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct zaps *z = a->scenario;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;
	uint64_t mine = ZONE_START / (uint64_t)r->nr_vcpus;

	while (v && sx_budget_next(&r->b)) {
		bool private = ts_rand_below(&rng, 2);
		uint64_t i;
		tdp_gfn_t g;
		int ret;

		if (ts_rand_below(&rng, 2)) {
			/* One of my own GFNs: fault or zap, and remember. */
			i = ts_rand_below(&rng, mine) * (uint64_t)r->nr_vcpus +
			    (uint64_t)a->id;
			g = mx_gfn(r, i);
			if (ts_rand_below(&rng, 3)) {
				ret = mx_fault(r, v, g, private, TDP_PROT_RWX,
					       TDP_LEVEL_4K);
				if (mx_fault_ok(ret, g, private))
					z->mapped[private][i] = true;
			} else {
				ret = tdp_zap_range(r->e.mmu, g, g + 1,
						    ts_alias(private));
				SX_CHECK(ret == 0, "zap: %d", ret);
				z->mapped[private][i] = false;
			}
			continue;
		}
		i = ZONE_START + ts_rand_below(&rng, MX_GFNS - ZONE_START);
		g = mx_gfn(r, i);
		ret = mx_fault(r, v, g, private, TDP_PROT_RWX,
			       ts_rand_below(&rng, 4) ? TDP_LEVEL_4K
						      : TDP_LEVEL_2M);
		mx_fault_ok(ret, g, private);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

struct zapper_arg {
	struct mx_run *run;
	int next_id; /* atomic: tells the zapper threads apart */
};

static void *zaps_zapper(void *p)
{
	struct zapper_arg *za = p;
	struct mx_run *r = za->run;
	int id = __atomic_fetch_add(&za->next_id, 1, __ATOMIC_RELAXED);
	uint64_t rng =
		sx_seed_for(r->o->seed, 1000 + (uint64_t)(r->phase * 10 + id));

	while (sx_budget_next(&r->b)) {
		/* A range inside one zone block (blocks are not adjacent). */
		uint64_t i =
			ZONE_START + ts_rand_below(&rng, MX_GFNS - ZONE_START);
		tdp_gfn_t start = mx_gfn(r, i);
		tdp_gfn_t block = ts_round_down(start, TDP_LEVEL_2M);
		tdp_gfn_t end = start + 1 + ts_rand_below(&rng, 700);
		int ret;

		if (end > block + TS_PAGES_2M)
			end = block + TS_PAGES_2M;
		switch (ts_rand_below(&rng, 6)) {
		case 0:
			ret = tdp_zap_slot_deleted(r->e.mmu, start, end);
			break;
		case 1:
			ret = ts_host_unmap(r->e.mmu, start, end);
			break;
		case 2:
			ret = tdp_zap_convert_to_shared(r->e.mmu, start, end);
			break;
		case 3:
			ret = tdp_zap_convert_to_private(r->e.mmu, start, end);
			break;
		case 4:
			ret = tdp_zap_range(r->e.mmu, block,
					    block + TS_PAGES_2M,
					    TDP_ALIAS_BOTH);
			break;
		default:
			ret = tdp_zap_range(r->e.mmu, start, end,
					    ts_rand_below(&rng, 2)
						    ? TDP_ALIAS_PRIVATE
						    : TDP_ALIAS_SHARED);
			break;
		}
		SX_CHECK(ret == 0, "zapper: %d", ret);
		tdp_udelay(30);
	}
	return NULL;
}

static void scenario_zaps(struct mx_run *r)
{
	struct zaps z = { .zappers = 2 };
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct zapper_arg za = { .run = r };
	struct tdp_vcpu *v;

	ts_set_link_delay(r->e.be, 20);
	for (int a = 0; a < 2; a++)
		z.mapped[a] = calloc(ZONE_START, sizeof(bool));
	mx_vcpu_args(r, args, &z);
	mx_run_threads(r, zaps_vcpu, args, sizeof(args[0]), zaps_zapper,
		       z.zappers, &za);

	/* The owned half is exactly what its owners left. */
	for (uint64_t i = 0; i < ZONE_START; i++) {
		for (int a = 0; a < 2; a++) {
			tdp_gfn_t g = mx_gfn(r, i);
			bool have = mx_leaf(r, g, a, NULL, NULL);

			SX_CHECK(have == z.mapped[a][i],
				 "owned %s GFN %#" PRIx64 " is %smapped, its "
				 "owner left it %smapped",
				 a ? "private" : "shared", g, have ? "" : "un",
				 z.mapped[a][i] ? "" : "un");
		}
	}
	sx_check_quiesced(&r->e);
	v = mx_vcpu(r);
	mx_known_pass(r, v);
	tdp_vcpu_destroy(v);
	for (int a = 0; a < 2; a++)
		free(z.mapped[a]);
}

/* ---- convert ----------------------------------------------------------------------- */

/*
 * The guest's attribute of each window GFN (true: private), changed only
 * inside tdp_invalidate_begin/end by a converter, which then zaps the
 * alias the GFN left.  vCPUs read the sequence, then the attribute, and
 * fault that alias, like a fault that looks up the attribute after
 * mmu_seq; 2 MiB only where the whole block has one attribute.
 */
struct convert {
	bool *private;	  /* atomic per GFN */
	long conversions; /* atomic */
};

static bool cv_attr(struct convert *c, uint64_t i)
{
	return __atomic_load_n(&c->private[i], __ATOMIC_ACQUIRE);
}

static void *convert_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct convert *c = a->scenario;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;

	while (v && sx_budget_next(&r->b)) {
		uint64_t i = ts_rand_below(&rng, MX_GFNS);
		bool huge = ts_rand_below(&rng, 4) == 0;
		tdp_gfn_t g = mx_gfn(r, i);
		double give_up = sx_now() + MX_HANG_S;
		bool private;
		int ret;

		for (;;) {
			uint64_t seq = tdp_mmu_seq(r->e.mmu);
			uint64_t first = i - i % TS_PAGES_2M;
			int level = TDP_LEVEL_4K;

			private = cv_attr(c, i);
			if (huge) {
				level = TDP_LEVEL_2M;
				for (uint64_t k = first;
				     k < first + TS_PAGES_2M; k++)
					if (cv_attr(c, k) != private)
						level = TDP_LEVEL_4K;
			}
			ret = ts_map_seq(v, g, ts_alias(private),
					 ts_pfn(g, ts_alias(private)),
					 TDP_PROT_RWX, level, seq);
			if (ret != TDP_FAULT_RETRY || sx_now() > give_up)
				break;
			sched_yield();
		}
		mx_fault_ok(ret, g, private);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

struct converter_arg {
	struct mx_run *run;
	struct convert *c;
	int id;
};

static void *convert_converter(void *p)
{
	struct converter_arg *ca = p;
	struct mx_run *r = ca->run;
	struct convert *c = ca->c;
	uint64_t rng = sx_seed_for(r->o->seed, 500 + (uint64_t)r->phase);

	while (sx_budget_next(&r->b)) {
		uint64_t i = ts_rand_below(&rng, MX_GFNS);
		uint64_t block = i - i % TS_PAGES_2M;
		uint64_t n = ts_rand_below(&rng, 3)
				     ? 1 + ts_rand_below(&rng, 300)
				     : TS_PAGES_2M;
		bool to_private = ts_rand_below(&rng, 2);
		tdp_gfn_t start, end;
		int ret;

		if (n == TS_PAGES_2M)
			i = block;
		if (i + n > block + TS_PAGES_2M)
			n = block + TS_PAGES_2M - i;
		start = mx_gfn(r, i);
		end = start + n;
		ret = tdp_invalidate_begin(r->e.mmu, start, end);
		if (!SX_CHECK(ret == 0, "invalidate_begin: %d", ret))
			break;
		for (uint64_t k = i; k < i + n; k++)
			__atomic_store_n(&c->private[k], to_private,
					 __ATOMIC_RELEASE);
		ret = to_private
			      ? tdp_zap_convert_to_private(r->e.mmu, start, end)
			      : tdp_zap_convert_to_shared(r->e.mmu, start, end);
		SX_CHECK(ret == 0, "conversion zap: %d", ret);
		/* Nothing of the old alias is left in the range. */
		for (tdp_gfn_t g = start; g < end; g++)
			SX_CHECK(!mx_leaf(r, g, !to_private, NULL, NULL),
				 "GFN %#" PRIx64 " converted to %s is still "
				 "mapped %s",
				 g, to_private ? "private" : "shared",
				 to_private ? "shared" : "private");
		ret = tdp_invalidate_end(r->e.mmu, start, end);
		SX_CHECK(ret == 0, "invalidate_end: %d", ret);
		__atomic_add_fetch(&c->conversions, 1, __ATOMIC_RELAXED);
		tdp_udelay(50);
	}
	return NULL;
}

/*
 * Conversions: reference = the attributes.  No GFN is mapped in the alias
 * its attribute does not name, checked by the converter after each
 * conversion's zap and over the window after the phase.
 */
static void scenario_convert(struct mx_run *r)
{
	struct convert c = { .private = calloc(MX_GFNS, sizeof(bool)) };
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct converter_arg ca = { .run = r, .c = &c };

	for (uint64_t i = 0; i < MX_GFNS; i++)
		c.private[i] = (i / TS_PAGES_2M) % 2;
	mx_vcpu_args(r, args, &c);
	mx_run_threads(r, convert_vcpu, args, sizeof(args[0]),
		       convert_converter, 1, &ca);
	for (uint64_t i = 0; i < MX_GFNS; i++) {
		tdp_gfn_t g = mx_gfn(r, i);
		bool private = c.private[i];

		SX_CHECK(!mx_leaf(r, g, !private, NULL, NULL),
			 "%s GFN %#" PRIx64 " is mapped in the %s alias",
			 private ? "private" : "shared", g,
			 private ? "shared" : "private");
	}
	printf("stress_mixed: convert: phase %d: %ld conversions\n", r->phase,
	       c.conversions);
	free(c.private);
}

/* ---- roots ------------------------------------------------------------------------ */

struct roots {
	/* Private GFNs some fault mapped (never zapped here; atomic). */
	bool *private_mapped;
	long invalidations; /* atomic */
};

static void *roots_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct roots *s = a->scenario;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;

	while (v && sx_budget_next(&r->b)) {
		uint64_t i = ts_rand_below(&rng, MX_GFNS);
		bool private = ts_rand_below(&rng, 2);
		tdp_gfn_t g = mx_gfn(r, i);
		int ret = mx_fault(r, v, g, private, TDP_PROT_RWX,
				   ts_rand_below(&rng, 4) ? TDP_LEVEL_4K
							  : TDP_LEVEL_2M);

		if (mx_fault_ok(ret, g, private) && private)
			__atomic_store_n(&s->private_mapped[i], true,
					 __ATOMIC_RELAXED);
		if (!ts_rand_below(&rng, 64)) {
			struct tdp_root *root;

			if (SX_CHECK(tdp_root_get(r->e.mmu, TDP_ROOT_DIRECT,
						  &root) == 0,
				     "tdp_root_get"))
				tdp_root_put(r->e.mmu, root);
		}
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

struct roots_arg {
	struct mx_run *run;
	struct roots *s;
	int next_id; /* atomic */
};

static void *roots_invalidator(void *p)
{
	struct roots_arg *ra = p;
	struct mx_run *r = ra->run;
	int id = __atomic_fetch_add(&ra->next_id, 1, __ATOMIC_RELAXED);
	uint64_t rng =
		sx_seed_for(r->o->seed, 600 + (uint64_t)(r->phase * 10 + id));

	while (sx_budget_next(&r->b)) {
		int ret;

		if (ts_rand_below(&rng, 2)) {
			ret = tdp_mmu_invalidate_roots(r->e.mmu,
						       TDP_ALIAS_SHARED);
			SX_CHECK(ret == 0, "invalidate_roots: %d", ret);
			__atomic_add_fetch(&ra->s->invalidations, 1,
					   __ATOMIC_RELAXED);
			ret = tdp_mmu_zap_invalidated_roots(r->e.mmu);
			SX_CHECK(ret == 0, "zap_invalidated_roots: %d", ret);
		} else {
			tdp_gfn_t s = mx_gfn(r, ts_rand_below(&rng, MX_GFNS));
			tdp_gfn_t e =
				ts_round_down(s, TDP_LEVEL_2M) + TS_PAGES_2M;

			ret = ts_host_unmap(r->e.mmu, s, e);
			SX_CHECK(ret == 0, "host unmap: %d", ret);
		}
		tdp_udelay(100);
	}
	return NULL;
}

/*
 * Root invalidation while faulting: reference = the private faults, which
 * no operation here may undo (shared-root invalidations and host unmaps
 * never touch the private alias).  Afterwards the invalidated roots are
 * all freed: only the two valid roots are left.
 */
static void scenario_roots(struct mx_run *r)
{
	struct roots s = { .private_mapped = calloc(MX_GFNS, sizeof(bool)) };
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct roots_arg ra = { .run = r, .s = &s };
	struct tdp_root *direct = NULL;
	struct tdp_stats st;

	mx_vcpu_args(r, args, &s);
	mx_run_threads(r, roots_vcpu, args, sizeof(args[0]), roots_invalidator,
		       2, &ra);
	for (uint64_t i = 0; i < MX_GFNS; i++)
		if (s.private_mapped[i])
			SX_CHECK(mx_leaf(r, mx_gfn(r, i), true, NULL, NULL),
				 "private GFN %#" PRIx64 " lost its mapping "
				 "to a shared-root invalidation",
				 mx_gfn(r, i));
	SX_CHECK(tdp_mmu_zap_invalidated_roots(r->e.mmu) == 0, "final zap");
	/*
	 * If the last invalidation came after the last fault, no direct root
	 * is valid now: load one, so that exactly the mirror and the direct
	 * root must be live and any invalidated root left over shows.
	 */
	SX_CHECK(tdp_root_get(r->e.mmu, TDP_ROOT_DIRECT, &direct) == 0,
		 "load the direct root");
	tdp_rcu_barrier();
	tdp_mmu_get_stats(r->e.mmu, &st);
	SX_CHECK(st.roots_allocated - st.roots_freed == 2,
		 "%" PRIu64 " roots live after the phase, expected 2",
		 st.roots_allocated - st.roots_freed);
	tdp_root_put(r->e.mmu, direct);
	printf("stress_mixed: roots: phase %d: %ld invalidations\n", r->phase,
	       s.invalidations);
	free(s.private_mapped);
}

/* ---- yield ------------------------------------------------------------------------- */

static void *yield_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;

	while (v && sx_budget_next(&r->b)) {
		tdp_gfn_t g = mx_gfn(r, ts_rand_below(&rng, MX_GFNS));
		bool private = ts_rand_below(&rng, 2);

		mx_fault_ok(mx_fault(r, v, g, private, TDP_PROT_RWX,
				     ts_rand_below(&rng, 3) ? TDP_LEVEL_4K
							    : TDP_LEVEL_2M),
			    g, private);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/* Long walks over the whole window, each yielding at every step. */
static void *yield_walker(void *p)
{
	struct mx_run *r = p;
	uint64_t rng = sx_seed_for(r->o->seed, 700 + (uint64_t)r->phase);
	tdp_gfn_t start = mx_gfn(r, 0);
	tdp_gfn_t end = mx_gfn(r, MX_GFNS - 1) + 1;
	uint64_t *bitmap = calloc((end - start) / 64 + 1, sizeof(uint64_t));
	struct tdp_mmu *mmu = r->e.mmu;

	while (bitmap && sx_budget_next(&r->b)) {
		int64_t ret;

		switch (ts_rand_below(&rng, 9)) {
		case 0:
			ret = tdp_zap_range(mmu, start, end, TDP_ALIAS_BOTH);
			break;
		case 1:
			ret = tdp_zap_all(mmu);
			break;
		case 2:
			ret = tdp_wrprot_range(mmu, start, end,
					       TDP_ALIAS_SHARED);
			break;
		case 3:
			ret = tdp_clear_dirty_range(mmu, start, end,
						    TDP_ALIAS_SHARED);
			break;
		case 4:
			memset(bitmap, 0, ((end - start) / 64 + 1) * 8);
			ret = tdp_harvest_dirty(mmu, start, end, bitmap,
						TDP_ALIAS_SHARED);
			break;
		case 5:
			ret = tdp_split_huge_range(mmu, start, end,
						   TDP_LEVEL_4K,
						   TDP_ALIAS_SHARED);
			break;
		case 6:
			ret = tdp_recover_huge_pages(
				mmu, start,
				ts_round_down(end - 1, TDP_LEVEL_2M) +
					TS_PAGES_2M,
				TDP_LEVEL_2M, TDP_ALIAS_SHARED);
			break;
		case 7:
			ret = tdp_age_range(mmu, start, end, true,
					    TDP_ALIAS_SHARED);
			break;
		default:
			ret = ts_zap_roots(mmu, TDP_ALIAS_SHARED);
			break;
		}
		SX_CHECK(ret >= 0, "long walk: %" PRId64, ret);
	}
	free(bitmap);
	return NULL;
}

/*
 * Forced yields: after the racing phase, zap-all and a private range zap
 * (both yielding at every step) must leave the window empty and the
 * direct root without a table; then the deterministic pass.
 */
static void scenario_yield(struct mx_run *r)
{
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct tdp_vcpu *v;
	struct tdp_stats st;

	mx_vcpu_args(r, args, NULL);
	mx_run_threads(r, yield_vcpu, args, sizeof(args[0]), yield_walker, 1,
		       r);
	sx_check_quiesced(&r->e);
	SX_CHECK(tdp_zap_all(r->e.mmu) == 0, "zap_all");
	SX_CHECK(tdp_zap_range(r->e.mmu, r->base, r->base + TS_PAGES_512G,
			       TDP_ALIAS_PRIVATE) == 0,
		 "zap_range");
	tdp_mmu_get_stats(r->e.mmu, &st);
	for (int l = TDP_LEVEL_4K; l <= TDP_MAX_LEVEL; l++) {
		SX_CHECK(st.leaves[TDP_ROOT_DIRECT][l] == 0 &&
				 st.leaves[TDP_ROOT_MIRROR][l] == 0,
			 "leaves left at level %d after zapping everything", l);
		SX_CHECK(l == TS_ROOT_LEVEL ||
				 st.tables[TDP_ROOT_DIRECT][l] == 0,
			 "%" PRIu64 " direct tables left at level %d after "
			 "zap_all",
			 st.tables[TDP_ROOT_DIRECT][l], l);
	}
	v = mx_vcpu(r);
	mx_known_pass(r, v);
	tdp_vcpu_destroy(v);
}

/* ---- dirty ------------------------------------------------------------------------- */

struct dirty {
	long transitions; /* atomic: 4 KiB frames dirtied by the CPUs */
	long reported;	  /* atomic: frames harvested or masked-cleared */
	long faults;	  /* atomic */
};

/*
 * A vCPU that runs guest code: writes through a simulated CPU, and on a
 * missing or write-protected translation takes the fault (lockless fast
 * fix first, then tdp_map).  A clean -> dirty change on a leaf counts as
 * as many frames as the leaf maps.
 */
static void *dirty_vcpu(void *p)
{
	struct mx_vcpu_arg *a = p;
	struct mx_run *r = a->run;
	struct dirty *d = a->scenario;
	struct tdp_vcpu *v = mx_vcpu(r);
	uint64_t rng = a->seed;
	long transitions = 0;

	while (v && sx_budget_next(&r->b)) {
		tdp_gfn_t g = mx_gfn(r, ts_rand_below(&rng, MX_GFNS));
		bool write = ts_rand_below(&rng, 4) != 0;
		enum ts_hw_result res;
		tdp_pfn_t root;
		bool dirtied;
		int level = TDP_LEVEL_4K, root_level, ret;

		if (!SX_CHECK(tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root,
						 &root_level) == 0,
			      "load_root"))
			break;
		tdp_walk_begin();
		res = ts_hw_access(r->e.fmt, root, root_level,
				   g | TS_SHARED_BIT, write, &dirtied, &level);
		tdp_walk_end();
		if (dirtied)
			transitions += (long)tdp_level_pages(level);
		if (res == TS_HW_READ || res == TS_HW_WRITTEN)
			continue;
		__atomic_add_fetch(&d->faults, 1, __ATOMIC_RELAXED);
		if (res == TS_HW_WRPROT) {
			ret = tdp_fast_fix(r->e.mmu, g | TS_SHARED_BIT,
					   TDP_PROT_READ | TDP_PROT_WRITE);
			SX_CHECK(ret == 0 || ret == 1, "fast_fix: %d", ret);
			if (ret == 1)
				continue;
		}
		mx_fault_ok(mx_fault(r, v, g, false, TDP_PROT_RWX,
				     ts_rand_below(&rng, 4) ? TDP_LEVEL_4K
							    : TDP_LEVEL_2M),
			    g, false);
	}
	__atomic_add_fetch(&d->transitions, transitions, __ATOMIC_RELAXED);
	tdp_vcpu_destroy(v);
	return NULL;
}

struct dirty_arg {
	struct mx_run *run;
	struct dirty *d;
};

/* Harvest, clear by mask, write-protect, age and split the window. */
static void *dirty_logger(void *p)
{
	struct dirty_arg *da = p;
	struct mx_run *r = da->run;
	uint64_t rng = sx_seed_for(r->o->seed, 800 + (uint64_t)r->phase);
	uint64_t bitmap[TS_PAGES_2M / 64];
	struct tdp_mmu *mmu = r->e.mmu;

	while (sx_budget_next(&r->b)) {
		uint64_t b = ts_rand_below(&rng, MX_BLOCKS);
		tdp_gfn_t block = mx_gfn(r, b * TS_PAGES_2M);
		bool wrprot;
		int64_t ret;

		switch (ts_rand_below(&rng, 6)) {
		case 0:
		case 1:
			memset(bitmap, 0, sizeof(bitmap));
			ret = tdp_harvest_dirty(mmu, block, block + TS_PAGES_2M,
						bitmap, TDP_ALIAS_SHARED);
			if (ret > 0)
				__atomic_add_fetch(&da->d->reported, ret,
						   __ATOMIC_RELAXED);
			break;
		case 2:
			wrprot = ts_rand_below(&rng, 2);
			ret = tdp_clear_dirty_masked(
				mmu, block + ts_rand_below(&rng, 8) * 64,
				ts_rand(&rng), wrprot, TDP_ALIAS_SHARED);
			/* Only 4 KiB leaves: one frame per leaf cleared.
			 * The write-protecting form clears no dirty bit. */
			if (ret > 0 && !wrprot)
				__atomic_add_fetch(&da->d->reported, ret,
						   __ATOMIC_RELAXED);
			break;
		case 3:
			ret = tdp_wrprot_range(mmu, block, block + TS_PAGES_2M,
					       TDP_ALIAS_SHARED);
			break;
		case 4:
			ret = tdp_age_range(mmu, block, block + TS_PAGES_2M,
					    true, TDP_ALIAS_SHARED);
			break;
		default:
			ret = tdp_split_huge_range(
				mmu, block, block + TS_PAGES_2M, TDP_LEVEL_4K,
				TDP_ALIAS_SHARED);
			break;
		}
		SX_CHECK(ret >= 0, "dirty logging op: %" PRId64, ret);
	}
	return NULL;
}

/*
 * Aging and dirty logging with faults: no dirty bit is lost or invented.
 * Every clean -> dirty change the CPUs made is consumed exactly once, by a
 * harvest (counted in frames) or a masked clear (4 KiB leaves only, so
 * one frame per leaf it cleared).
 */
static void scenario_dirty(struct mx_run *r)
{
	struct dirty d = { 0 };
	struct mx_vcpu_arg args[SX_MAX_THREADS];
	struct dirty_arg da = { .run = r, .d = &d };
	uint64_t bitmap[TS_PAGES_2M / 64];

	mx_vcpu_args(r, args, &d);
	mx_run_threads(r, dirty_vcpu, args, sizeof(args[0]), dirty_logger, 1,
		       &da);
	for (uint64_t b = 0; b < MX_BLOCKS; b++) {
		tdp_gfn_t block = mx_gfn(r, b * TS_PAGES_2M);
		int64_t n;

		memset(bitmap, 0, sizeof(bitmap));
		n = tdp_harvest_dirty(r->e.mmu, block, block + TS_PAGES_2M,
				      bitmap, TDP_ALIAS_SHARED);
		SX_CHECK(n >= 0, "harvest: %" PRId64, n);
		d.reported += n > 0 ? n : 0;
	}
	printf("stress_mixed: dirty: phase %d: %ld frames dirtied, %ld "
	       "reported, %ld faults\n",
	       r->phase, d.transitions, d.reported, d.faults);
	SX_CHECK(d.transitions == d.reported,
		 "the CPUs dirtied %ld frames, harvests reported %ld",
		 d.transitions, d.reported);
}

/* ---- driver ---------------------------------------------------------------------- */

struct scenario {
	const char *name;
	void (*run)(struct mx_run *r);
	unsigned int flags; /* MMU flags */
};

/* clang-format off */
static const struct scenario scenarios[] = {
	{ "storm",   scenario_storm,   0                   },
	{ "zaps",    scenario_zaps,    0                   },
	{ "convert", scenario_convert, 0                   },
	{ "roots",   scenario_roots,   0                   },
	{ "yield",   scenario_yield,   TDP_MMU_FORCE_YIELD },
	{ "dirty",   scenario_dirty,   0                   },
};
/* clang-format on */

#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static const char *scenario_name(size_t i)
{
	return scenarios[i].name;
}

static void run_scenario(const struct sx_opts *o, size_t idx)
{
	const struct scenario *sc = &scenarios[idx];
	struct mx_run *r = calloc(1, sizeof(*r));

	if (!r || !sx_env_init(&r->e, sc->flags, true, 4096)) {
		free(r);
		return;
	}
	r->o = o;
	r->nr_vcpus = o->threads;
	for (int phase = 0; phase < MX_PHASES; phase++) {
		long ops = sx_ops(), failures = sx_failures();

		mx_new_window(r, idx, phase);
		sx_budget_start(&r->b, o->seconds / MX_PHASES,
				o->max_ops / MX_PHASES);
		sc->run(r);
		sx_check_quiesced(&r->e);
		/* The next phase starts from an empty tree of leaves. */
		for (uint64_t b = 0; b < MX_BLOCKS; b++) {
			tdp_gfn_t s = mx_gfn(r, b * TS_PAGES_2M);

			SX_CHECK(tdp_zap_slot_deleted(r->e.mmu, s,
						      s + TS_PAGES_2M) == 0,
				 "end of phase zap");
		}
		printf("stress_mixed: %s: phase %d window %#" PRIx64
		       ": ops=%ld failures=%ld\n",
		       sc->name, phase, r->base, sx_ops() - ops,
		       sx_failures() - failures);
		fflush(stdout);
	}
	sx_env_fini(&r->e);
	free(r);
}

int main(int argc, char **argv)
{
	struct sx_opts o;
	int ret;

	ret = sx_parse_opts(argc, argv, &o, 1.2, 10.0, 3);
	if (ret)
		return ret;
	if (o.list) {
		for (size_t i = 0; i < NR_SCENARIOS; i++)
			printf("%s\n", scenarios[i].name);
		return 0;
	}
	if (o.threads > SX_MAX_THREADS - 2) {
		fprintf(stderr, "stress_mixed: -j takes 1..%d\n",
			SX_MAX_THREADS - 2);
		return 2;
	}
	printf("stress_mixed: seed=%" PRIu64 " seconds=%.2f vcpus=%d\n", o.seed,
	       o.seconds, o.threads);
	fflush(stdout);
	return sx_run_tests("stress_mixed", &o, NR_SCENARIOS, scenario_name,
			    run_scenario);
}
