/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race classes of leaf updates that hardware and the host race with:
 * dirty bits set by a CPU while the engine changes the same leaf under
 * the write lock, and faults that resolve their PFN while the host is
 * revoking it.
 */
#include "races.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dirty_wlock ------------------------------------------------------------- */

#define DW_BLOCKS 4
#define DW_GFNS (DW_BLOCKS * TS_PAGES_2M)

struct dw_run {
	struct ts_env *e;
	tdp_gfn_t base;
	uint64_t seed;
	bool stop;	    /* atomic */
	long transitions;   /* atomic: clean -> dirty changes the CPUs made */
	long wrprot_faults; /* atomic */
};

struct dw_cpu {
	struct dw_run *run;
	int id;
};

/*
 * A CPU writing the window.  A write to a write-protected leaf is a
 * fault: the guest's vCPU fixes it with tdp_fast_fix() (dirty logging's
 * lockless path) and writes again later.
 */
static void *dw_cpu_main(void *arg)
{
	struct dw_cpu *c = arg;
	struct dw_run *r = c->run;
	struct tdp_vcpu *v = race_vcpu(r->e);
	uint64_t rng = sx_seed_for(r->seed, (uint64_t)c->id + 10);
	tdp_pfn_t root;
	int root_level;
	long transitions = 0;

	if (!v || !SX_CHECK(tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root,
					       &root_level) == 0,
			    "tdp_vcpu_load_root"))
		goto out;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		tdp_gfn_t wrprot[8];
		int nr_wrprot = 0;

		tdp_walk_begin();
		for (int i = 0; i < 32; i++) {
			tdp_gfn_t gfn = r->base + ts_rand_below(&rng, DW_GFNS);
			bool dirtied;
			enum ts_hw_result res;

			res = ts_hw_access(r->e->fmt, root, root_level,
					   gfn | TS_SHARED_BIT, true, &dirtied,
					   NULL);
			transitions += dirtied;
			if (res == TS_HW_WRPROT && nr_wrprot < 8)
				wrprot[nr_wrprot++] = gfn;
			SX_CHECK(res != TS_HW_NOT_PRESENT,
				 "GFN %#" PRIx64 " lost its mapping", gfn);
		}
		tdp_walk_end();
		for (int i = 0; i < nr_wrprot; i++) {
			int ret = tdp_fast_fix(r->e->mmu,
					       wrprot[i] | TS_SHARED_BIT,
					       TDP_PROT_READ | TDP_PROT_WRITE);

			SX_CHECK(ret == 0 || ret == 1, "tdp_fast_fix: %d", ret);
			__atomic_add_fetch(&r->wrprot_faults, 1,
					   __ATOMIC_RELAXED);
		}
		sx_count_ops(32 + nr_wrprot);
	}
out:
	__atomic_add_fetch(&r->transitions, transitions, __ATOMIC_RELAXED);
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * dirty_wlock - race: a dirty bit lost under the write lock.
 *
 * Two simulated CPUs set dirty bits (compare-exchange, like the CPU's
 * locked update) on writable 4 KiB leaves and fix write-protection
 * faults with tdp_fast_fix(), while the main thread clears dirty and
 * write bits by 64-GFN mask (tdp_clear_dirty_masked, mmu_lock held for
 * write), write-protects ranges, re-faults for write, ages and harvests.
 * An engine that updates a leaf with a plain store because it holds the
 * write lock drops a dirty bit the CPU set between its read and its
 * store.  Conservation: every clean -> dirty change a CPU made is
 * consumed exactly once, by a harvest (which reports its GFN) or by a
 * masked clear (which counts it), so after a final harvest the two
 * totals are equal.
 */
void race_dirty_wlock(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct dw_run r = { .e = &e, .seed = o->seed };
	struct dw_cpu cpus[2];
	struct sx_threads g = { .n = 0 };
	struct tdp_vcpu *v;
	struct sx_budget b;
	uint64_t *bitmap = calloc(DW_GFNS / 64, sizeof(uint64_t));
	uint64_t rng = sx_seed_for(o->seed, 1);
	long reported = 0, masked_ops = 0;
	int64_t n;

	if (!bitmap || !sx_env_init(&e, 0, true, 0)) {
		free(bitmap);
		return;
	}
	v = race_vcpu(&e);
	r.base = race_fresh_region(3);
	for (tdp_gfn_t i = 0; i < DW_GFNS; i++)
		race_fault_ok(race_fault(&e, v, r.base + i, false, TDP_PROT_RWX,
					 TDP_LEVEL_4K),
			      r.base + i, false);
	sx_count_ops(DW_GFNS);

	for (int i = 0; i < 2; i++) {
		cpus[i] = (struct dw_cpu){ .run = &r, .id = i };
		sx_spawn(&g, dw_cpu_main, &cpus[i]);
	}
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b)) {
		tdp_gfn_t base =
			r.base + ts_rand_below(&rng, DW_GFNS / 64) * 64;
		uint64_t mask = ts_rand(&rng) | ts_rand(&rng);
		tdp_gfn_t start = r.base + ts_rand_below(&rng, DW_GFNS);
		tdp_gfn_t end = start + 1 + ts_rand_below(&rng, 256);
		int ret;

		if (end > r.base + DW_GFNS)
			end = r.base + DW_GFNS;
		switch (ts_rand_below(&rng, 6)) {
		case 0:
		case 1:
			ret = tdp_clear_dirty_masked(e.mmu, base, mask, false,
						     TDP_ALIAS_SHARED);
			SX_CHECK(ret >= 0, "clear_dirty_masked: %d", ret);
			reported += ret > 0 ? ret : 0;
			masked_ops++;
			break;
		case 2:
			ret = tdp_clear_dirty_masked(e.mmu, base, mask, true,
						     TDP_ALIAS_SHARED);
			SX_CHECK(ret >= 0, "clear_dirty_masked(wrprot): %d",
				 ret);
			masked_ops++;
			break;
		case 3:
			memset(bitmap, 0, DW_GFNS / 8);
			n = tdp_harvest_dirty(e.mmu, r.base, r.base + DW_GFNS,
					      bitmap, TDP_ALIAS_SHARED);
			SX_CHECK(n >= 0, "harvest: %" PRId64, n);
			reported += n > 0 ? n : 0;
			break;
		case 4:
			ret = tdp_wrprot_range(e.mmu, start, end,
					       TDP_ALIAS_SHARED);
			SX_CHECK(ret >= 0, "wrprot: %d", ret);
			break;
		default:
			/* A write fault on a write-protected leaf through
			 * the full fault path, and aging. */
			race_fault_ok(race_fault(&e, v, start, false,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      start, false);
			n = tdp_age_range(e.mmu, start, end, true,
					  TDP_ALIAS_SHARED);
			SX_CHECK(n >= 0, "age: %" PRId64, n);
			break;
		}
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	sx_join(&g);

	memset(bitmap, 0, DW_GFNS / 8);
	n = tdp_harvest_dirty(e.mmu, r.base, r.base + DW_GFNS, bitmap,
			      TDP_ALIAS_SHARED);
	reported += n > 0 ? n : 0;
	printf("races: dirty_wlock: %ld dirty transitions, %ld reported, %ld "
	       "masked clears, %ld write-protection faults\n",
	       r.transitions, reported, masked_ops, r.wrprot_faults);
	SX_CHECK(r.transitions == reported,
		 "the CPUs dirtied %ld times but %ld were reported: %s",
		 r.transitions, reported,
		 r.transitions > reported ? "dirty bits were lost"
					  : "dirty bits were invented");
	SX_CHECK(sx_count_leaves(&e, false, r.base, r.base + DW_GFNS) ==
			 DW_GFNS,
		 "a leaf of the window disappeared");
	free(bitmap);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/* ---- inval_fault ------------------------------------------------------------- */

#define IF_BLOCKS 4
#define IF_GFNS (IF_BLOCKS * TS_PAGES_2M)

struct if_run {
	struct ts_env *e;
	tdp_gfn_t base;
	uint32_t *version; /* per GFN, atomic: the host's backing */
	struct sx_budget b;
	uint64_t seed;
	long invalidations; /* atomic */
	long mapped_huge;   /* atomic */
	long huge_faults;   /* atomic: faults of a uniform 2 MiB backing */
};

/* The host frame backing shared @gfn at @version. */
static tdp_pfn_t if_pfn(tdp_gfn_t gfn, uint32_t version)
{
	return ts_pfn(gfn, ts_alias(false)) + ((tdp_pfn_t)(version % 64) << 30);
}

static uint32_t if_version(struct if_run *r, tdp_gfn_t gfn)
{
	return __atomic_load_n(&r->version[gfn - r->base], __ATOMIC_ACQUIRE);
}

/*
 * Resolve the PFN of a shared fault the way a host does (after reading
 * the sequence): the frame of this version, or a 2 MiB frame when the
 * whole block has one backing.  Returns the level the fault may map.
 */
static int if_resolve(struct if_run *r, tdp_gfn_t gfn, bool want_huge,
		      tdp_pfn_t *pfn)
{
	tdp_gfn_t block = ts_round_down(gfn, TDP_LEVEL_2M);
	uint32_t v = if_version(r, gfn);

	*pfn = if_pfn(gfn, v);
	if (!want_huge)
		return TDP_LEVEL_4K;
	for (tdp_gfn_t g = block; g < block + TS_PAGES_2M; g++)
		if (if_version(r, g) != v)
			return TDP_LEVEL_4K;
	return TDP_LEVEL_2M;
}

struct if_thread {
	struct if_run *run;
	int id;
};

static void *if_vcpu_main(void *arg)
{
	struct if_thread *t = arg;
	struct if_run *r = t->run;
	struct tdp_vcpu *v = race_vcpu(r->e);
	uint64_t rng = sx_seed_for(r->seed, (uint64_t)t->id + 200);

	while (v && sx_budget_next(&r->b)) {
		tdp_gfn_t gfn = r->base + ts_rand_below(&rng, IF_GFNS);
		bool private = ts_rand_below(&rng, 5) == 0;
		bool huge = ts_rand_below(&rng, 4) == 0;
		double give_up = sx_now() + RACE_HANG_S;
		int ret;

		for (;;) {
			uint64_t seq = tdp_mmu_seq(r->e->mmu);
			tdp_pfn_t pfn = ts_pfn(gfn, ts_alias(true));
			int level = TDP_LEVEL_4K;

			if (!private)
				level = if_resolve(r, gfn, huge, &pfn);
			ret = ts_map_seq(v, gfn, ts_alias(private), pfn,
					 TDP_PROT_RWX, level, seq);
			if (ret == TDP_FAULT_FIXED && level == TDP_LEVEL_2M)
				__atomic_add_fetch(&r->huge_faults, 1,
						   __ATOMIC_RELAXED);
			if (ret != TDP_FAULT_RETRY || sx_now() > give_up)
				break;
			sched_yield();
		}
		SX_CHECK(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS,
			 "fault of %s GFN %#" PRIx64 ": %d%s",
			 private ? "private" : "shared", gfn, ret,
			 ret == -EINVAL ? " (a stale mapping of another "
					  "frame is present)"
					: "");
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/* No shared leaf translates a GFN of [start, end) to a stale frame
 * (with @absent: no shared leaf translates any of them). */
static void if_check_range(struct if_run *r, tdp_gfn_t start, tdp_gfn_t end,
			   bool absent, const char *when)
{
	for (tdp_gfn_t g = start; g < end; g++) {
		tdp_pfn_t pfn;
		int level;

		if (!sx_lookup_leaf(r->e, g, false, &level, &pfn))
			continue;
		if (absent)
			SX_CHECK(false,
				 "%s: GFN %#" PRIx64 " is mapped (level %d, "
				 "PFN %#" PRIx64 ") inside a running "
				 "invalidation, after its zap",
				 when, g, level, pfn);
		else
			SX_CHECK(pfn == if_pfn(g, if_version(r, g)),
				 "%s: GFN %#" PRIx64 " maps PFN %#" PRIx64
				 " of version %u, the host is at version %u",
				 when, g, pfn, (unsigned int)((pfn >> 30) % 64),
				 if_version(r, g) % 64);
	}
}

/* The host: revoke and replace the backing of random ranges. */
static void *if_host_main(void *arg)
{
	struct if_thread *t = arg;
	struct if_run *r = t->run;
	uint64_t rng = sx_seed_for(r->seed, (uint64_t)t->id + 300);

	while (sx_budget_next(&r->b)) {
		tdp_gfn_t start = r->base + ts_rand_below(&rng, IF_GFNS);
		tdp_gfn_t end = start + 1 + ts_rand_below(&rng, 700);
		/* Whole blocks get one new backing: huge-mappable again. */
		bool whole = ts_rand_below(&rng, 2);
		uint32_t next = 0;
		int ret;

		if (whole) {
			start = ts_round_down(start, TDP_LEVEL_2M);
			end = start +
			      TS_PAGES_2M * (1 + ts_rand_below(&rng, 2));
		}
		if (end > r->base + IF_GFNS)
			end = r->base + IF_GFNS;
		ret = tdp_invalidate_begin(r->e->mmu, start, end);
		if (!SX_CHECK(ret == 0, "invalidate_begin: %d", ret))
			break;
		for (tdp_gfn_t g = start; whole && g < end; g++)
			if (if_version(r, g) >= next)
				next = if_version(r, g) + 1;
		for (tdp_gfn_t g = start; g < end; g++) {
			uint32_t *vp = &r->version[g - r->base];

			if (whole)
				__atomic_store_n(vp, next, __ATOMIC_RELEASE);
			else
				__atomic_add_fetch(vp, 1, __ATOMIC_ACQ_REL);
		}
		if (whole && ts_rand_below(&rng, 8) == 0) {
			/* Sometimes the host drops the whole address
			 * space instead: the tables go too, so 2 MiB
			 * leaves can be mapped again. */
			ret = tdp_mmu_invalidate_roots(r->e->mmu,
						       TDP_ALIAS_SHARED);
			if (!ret)
				ret = tdp_mmu_zap_invalidated_roots(r->e->mmu);
			SX_CHECK(ret == 0, "root invalidation: %d", ret);
		} else {
			ret = tdp_zap_host_unmap(r->e->mmu, start, end);
			SX_CHECK(ret == 0, "zap_host_unmap: %d", ret);
		}
		if_check_range(r, start, end, true, "after the zap");
		ret = tdp_invalidate_end(r->e->mmu, start, end);
		SX_CHECK(ret == 0, "invalidate_end: %d", ret);
		__atomic_add_fetch(&r->invalidations, 1, __ATOMIC_RELAXED);
		tdp_udelay(50);
	}
	return NULL;
}

static void if_check_leaf(void *arg, int root_type, bool valid, tdp_gfn_t gfn,
			  int level, tdp_spte_t spte)
{
	struct if_run *r = arg;
	tdp_pfn_t pfn = tdp_spte_pfn(r->e->fmt, spte);

	if (root_type == TDP_ROOT_MIRROR) {
		SX_CHECK(pfn == ts_pfn(gfn, ts_alias(true)),
			 "private GFN %#" PRIx64 " maps PFN %#" PRIx64, gfn,
			 pfn);
		return;
	}
	if (!valid)
		return;
	if (level > TDP_LEVEL_4K)
		__atomic_add_fetch(&r->mapped_huge, 1, __ATOMIC_RELAXED);
	for (uint64_t i = 0; i < tdp_level_pages(level); i++)
		SX_CHECK(pfn + i == if_pfn(gfn + i, if_version(r, gfn + i)),
			 "shared GFN %#" PRIx64 " (leaf level %d) maps a "
			 "frame the host revoked",
			 gfn + i, level);
}

/*
 * inval_fault - race: a fault that maps after an overlapping invalidation
 * began.
 *
 * vCPUs read the invalidation sequence, resolve the host frame of a GFN
 * (a 2 MiB frame when the whole block has one backing) and map it with
 * that sequence.  Two host threads bracket changes of random ranges with
 * tdp_invalidate_begin/end, change the backing in between and zap the
 * shared alias.  A fault that resolved the old frame must retry: it either
 * ran before the begin (its leaf is zapped) or sees the running
 * invalidation or a moved sequence.  Checked after every zap (nothing in
 * the range is mapped until the end) and, at the end, over the whole
 * window: every shared leaf maps the host's current frame.
 */
void race_inval_fault(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct if_run r = { .e = &e, .seed = o->seed };
	struct sx_threads g = { .n = 0 };
	struct if_thread th[SX_MAX_THREADS];
	int nr_vcpus = o->threads < SX_MAX_THREADS - 2 ? o->threads : 3;

	r.version = calloc(IF_GFNS, sizeof(*r.version));
	if (!r.version || !sx_env_init(&e, 0, true, 0)) {
		free(r.version);
		return;
	}
	r.base = race_fresh_region(5);
	sx_budget_start(&r.b, o->seconds, o->max_ops);
	for (int i = 0; i < nr_vcpus + 2; i++) {
		th[i] = (struct if_thread){ .run = &r, .id = i };
		sx_spawn(&g, i < nr_vcpus ? if_vcpu_main : if_host_main,
			 &th[i]);
	}
	sx_join(&g);

	if_check_range(&r, r.base, r.base + IF_GFNS, false, "at the end");
	sx_check_quiesced_with(&e, if_check_leaf, &r);
	printf("races: inval_fault: %ld invalidations, %ld faults of 2 MiB "
	       "backings, %ld huge leaves at the end\n",
	       r.invalidations, r.huge_faults, r.mapped_huge);
	free(r.version);
	sx_env_fini(&e);
}
