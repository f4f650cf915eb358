/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race classes of long walks: restart after a yield, forward progress,
 * the TLB flush due before mmu_lock is dropped, and the range that flush
 * must cover when a table is removed.
 */
#include "races.h"

/* White box: the engine's own mmu_lock, taken by the flush checker. */
#include "internal.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a pattern of leaves on table boundaries ------------------------------------ */

/*
 * 1 GiB regions of the pattern: two neighbours under one 512 GiB entry
 * (harvestable with one bitmap) and one under the next 512 GiB entry.
 */
static const tdp_gfn_t pattern_regions[] = {
	0,
	TS_PAGES_1G,
	TS_PAGES_512G,
};
#define NR_PATTERN_REGIONS 3
/* Blocks with 4 KiB leaves, their offsets, and blocks with 2 MiB leaves. */
static const unsigned int pattern_blocks[] = { 0, 1, 255, 510, 511 };
static const unsigned int pattern_offsets[] = { 0, 1, 256, 510, 511 };
static const unsigned int pattern_huge[] = { 100, 400 };
#define PATTERN_SMALL 5
#define PATTERN_HUGE 2
#define PATTERN_LEAVES_PER_REGION (PATTERN_SMALL * PATTERN_SMALL + PATTERN_HUGE)
#define PATTERN_LEAVES (NR_PATTERN_REGIONS * PATTERN_LEAVES_PER_REGION)
#define PATTERN_END (TS_PAGES_512G + TS_PAGES_1G)
/* The first two regions: harvested with one bitmap. */
#define PATTERN_HARVEST_END (2 * TS_PAGES_1G)

/* The i-th leaf of the pattern: its first GFN and level. */
static tdp_gfn_t pattern_leaf(int i, int *level)
{
	int r = i / PATTERN_LEAVES_PER_REGION;
	int k = i % PATTERN_LEAVES_PER_REGION;
	tdp_gfn_t base = pattern_regions[r];

	if (k < PATTERN_SMALL * PATTERN_SMALL) {
		*level = TDP_LEVEL_4K;
		return base + pattern_blocks[k / PATTERN_SMALL] * TS_PAGES_2M +
		       pattern_offsets[k % PATTERN_SMALL];
	}
	*level = TDP_LEVEL_2M;
	return base +
	       pattern_huge[k - PATTERN_SMALL * PATTERN_SMALL] * TS_PAGES_2M;
}

/* True if @gfn belongs to a pattern leaf. */
static bool pattern_has(tdp_gfn_t gfn)
{
	for (int i = 0; i < PATTERN_LEAVES; i++) {
		int level;
		tdp_gfn_t g = pattern_leaf(i, &level);

		if (gfn >= g && gfn < g + tdp_level_pages(level))
			return true;
	}
	return false;
}

static void pattern_map(struct ts_env *e, struct tdp_vcpu *v, bool private)
{
	for (int i = 0; i < PATTERN_LEAVES; i++) {
		int level;
		tdp_gfn_t g = pattern_leaf(i, &level);

		race_fault_ok(race_fault(e, v, g, private, TDP_PROT_RWX, level),
			      g, private);
	}
	sx_count_ops(PATTERN_LEAVES);
}

/* Dirty every shared pattern leaf through a simulated CPU. */
static void pattern_dirty(struct ts_env *e, struct tdp_vcpu *v)
{
	tdp_pfn_t root;
	int root_level;

	if (!SX_CHECK(tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root,
					 &root_level) == 0,
		      "tdp_vcpu_load_root"))
		return;
	tdp_walk_begin();
	for (int i = 0; i < PATTERN_LEAVES; i++) {
		int level;
		tdp_gfn_t g = pattern_leaf(i, &level);
		bool dirtied;

		SX_CHECK(ts_hw_access(e->fmt, root, root_level,
				      g | TS_SHARED_BIT, true, &dirtied,
				      NULL) == TS_HW_WRITTEN,
			 "CPU write to GFN %#" PRIx64 " failed", g);
	}
	tdp_walk_end();
}

struct pattern_scan {
	const struct tdp_spte_format *fmt;
	int type;
	uint64_t leaves[TDP_MAX_LEVEL + 1]; /* pattern leaves found */
	uint64_t writable, dirty, others;
};

static void pattern_scan_leaf(void *arg, int root_type, bool valid,
			      tdp_gfn_t gfn, int level, tdp_spte_t spte)
{
	struct pattern_scan *s = arg;
	const struct tdp_spte_format *fmt = s->fmt;

	if (root_type != s->type || !valid)
		return;
	if (!pattern_has(gfn)) {
		s->others++;
		return;
	}
	s->leaves[level]++;
	s->writable += (spte & fmt->writable) != 0;
	s->dirty += (spte & fmt->dirty) != 0;
}

static uint64_t pattern_total(const struct pattern_scan *s)
{
	uint64_t n = 0;

	for (int l = 1; l <= TDP_MAX_LEVEL; l++)
		n += s->leaves[l];
	return n;
}

/* ---- yield_restart --------------------------------------------------------------- */

/* How long set_leaf sleeps in yield_restart_slow, in microseconds. */
#define YR_SLOW_SET_LEAF_US 300
/* How long a scan of yield_restart_slow waits for a sleeping set_leaf. */
#define YR_SCAN_WAIT_S 0.01

struct noise {
	struct ts_env *e;
	uint64_t seed;
	bool stop; /* atomic */
	/*
	 * yield_restart_slow: the recorder hook (installed before the noise
	 * thread starts) makes every set_leaf sleep.  in_set_leaf counts the
	 * calls inside the hook; scanning is set while pattern_scan() walks
	 * the trees; the scan counts are the main thread's.
	 */
	bool slow_set_leaf;
	int in_set_leaf; /* atomic */
	bool scanning;	 /* atomic */
	long scans, scans_in_set_leaf;
};

/*
 * Recorder hook of yield_restart_slow: set_leaf sleeps YR_SLOW_SET_LEAF_US,
 * and then for as long as a scan walks the trees, so the private fault
 * that called it holds its leaf frozen (under the read lock) that long.
 */
static void noise_slow_set_leaf(void *arg, enum ts_call call, tdp_gfn_t gfn,
				int level)
{
	struct noise *n = arg;
	double give_up;

	if (call != TS_SET_LEAF)
		return;
	__atomic_add_fetch(&n->in_set_leaf, 1, __ATOMIC_RELAXED);
	tdp_udelay(YR_SLOW_SET_LEAF_US);
	give_up = sx_now() + RACE_HANG_S;
	while (__atomic_load_n(&n->scanning, __ATOMIC_ACQUIRE)) {
		if (sx_now() > give_up) {
			SX_CHECK(false,
				 "set_leaf(gfn %#" PRIx64 ", level %d) waited "
				 "%.0fs for a scan to end",
				 gfn, level, RACE_HANG_S);
			break;
		}
		tdp_udelay(20);
	}
	__atomic_sub_fetch(&n->in_set_leaf, 1, __ATOMIC_RELAXED);
}

/*
 * In yield_restart_slow, wait (up to YR_SCAN_WAIT_S) until a set_leaf
 * sleeps in the hook.  The main thread is not faulting, so that is a
 * private fault of the noise thread holding its leaf frozen.
 */
static void noise_wait_set_leaf(struct noise *n)
{
	double give_up = sx_now() + YR_SCAN_WAIT_S;

	while (!__atomic_load_n(&n->in_set_leaf, __ATOMIC_RELAXED) &&
	       sx_now() < give_up)
		tdp_udelay(10);
	n->scans++;
	n->scans_in_set_leaf +=
		__atomic_load_n(&n->in_set_leaf, __ATOMIC_RELAXED) > 0;
}

/*
 * What the valid root of @private holds of the pattern, while @noise
 * (NULL: no other thread) may be changing the MMU.  Walks with mmu_lock
 * held for write.
 *
 * sx_walk_trees() fails a check for every frozen SPTE it reaches, which
 * is right only when no operation can hold an entry frozen.  The noise
 * thread keeps faulting while the main thread scans, and a private fault
 * holds its entry frozen, with mmu_lock held for read, for as long as the
 * backend's link_table or set_leaf runs: an unlocked walk can meet that
 * entry and report a leak that is none.  The write lock waits for every
 * read-locked fault to store its final value and keeps new ones out, and
 * no operation holds a reachable SPTE frozen across a release of mmu_lock
 * (a fault freezes and resolves under one hold of the read lock, a
 * removal under the write lock; a table being torn down stays frozen,
 * but only once it is unlinked).  So under the write lock no frozen SPTE
 * is legitimately reachable and every one the walk finds is a real leak:
 * the check is as strict as on an idle MMU, and the leaf counts come from
 * one consistent state.  Stopping the noise thread for each scan would
 * do too, but the noise must keep changing the trees between the yields
 * of the walks; the scan is one more write-locked section between them.
 *
 * yield_restart_slow starts each scan while a private fault of the noise
 * thread sleeps in set_leaf, and its hook keeps that fault there while
 * scanning is set: a scan that did not exclude faults would meet the
 * frozen leaf every time.  scanning is set only with the write lock
 * held, when no set_leaf can be running, so the hold never delays the
 * scan itself.
 */
static struct pattern_scan pattern_scan(struct ts_env *e, struct noise *noise,
					bool private)
{
	struct pattern_scan s = {
		.fmt = e->fmt,
		.type = private ? TDP_ROOT_MIRROR : TDP_ROOT_DIRECT,
	};
	bool slow = noise && noise->slow_set_leaf;
	struct sx_tree_count c;

	if (slow)
		noise_wait_set_leaf(noise);
	tdp_write_lock(&e->mmu->mmu_lock);
	if (slow)
		__atomic_store_n(&noise->scanning, true, __ATOMIC_RELEASE);
	sx_walk_trees(e, pattern_scan_leaf, &s, &c);
	if (slow)
		__atomic_store_n(&noise->scanning, false, __ATOMIC_RELEASE);
	tdp_write_unlock(&e->mmu->mmu_lock);
	return s;
}

/*
 * An operation over the pattern's range changed @ret leaves: every leaf of
 * the pattern once (with noise, possibly more); the shared alias after it.
 */
static struct pattern_scan every_leaf_once(struct ts_env *e,
					   struct noise *noise, bool exact,
					   int ret, const char *what)
{
	SX_CHECK(exact ? ret == PATTERN_LEAVES : ret >= PATTERN_LEAVES,
		 "%s changed %d leaves, the pattern has %d", what, ret,
		 PATTERN_LEAVES);
	return pattern_scan(e, noise, false);
}

/* GFNs the noise thread changes: between and beside the pattern. */
static tdp_gfn_t noise_gfn(uint64_t *rng)
{
	tdp_gfn_t region =
		pattern_regions[ts_rand_below(rng, NR_PATTERN_REGIONS)];

	return region + (300 + ts_rand_below(rng, 50)) * TS_PAGES_2M +
	       ts_rand_below(rng, 512);
}

/* Fault and zap around the pattern so walks restart into changed trees. */
static void *noise_main(void *arg)
{
	struct noise *n = arg;
	struct tdp_vcpu *v = race_vcpu(n->e);
	uint64_t rng = sx_seed_for(n->seed, 42);

	while (v && !__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE)) {
		tdp_gfn_t g = noise_gfn(&rng);
		bool private = ts_rand_below(&rng, 2);

		if (ts_rand_below(&rng, 4)) {
			race_fault_ok(race_fault(n->e, v, g, private,
						 TDP_PROT_RWX,
						 ts_rand_below(&rng, 3)
							 ? TDP_LEVEL_4K
							 : TDP_LEVEL_2M),
				      g, private);
		} else {
			SX_CHECK(tdp_zap_range(n->e->mmu, g, g + 1,
					       TDP_ALIAS_BOTH) == 0,
				 "noise zap");
		}
		sx_count_ops(1);
		/* Change the tree between the walker's steps without
		 * keeping mmu_lock busy all the time. */
		tdp_udelay(50);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * One pass of every long walk over the pattern, checking after each that
 * it visited every pattern leaf exactly once.  Without @noise (NULL),
 * nothing else runs: counts returned by the walks must equal the
 * pattern's.
 */
static void yield_walks(struct ts_env *e, struct tdp_vcpu *v,
			struct noise *noise)
{
	const bool exact = !noise;
	uint64_t *bitmap = calloc(PATTERN_HARVEST_END / 64, sizeof(uint64_t));
	const uint64_t harvest_pages = 2 * (PATTERN_SMALL * PATTERN_SMALL +
					    PATTERN_HUGE * TS_PAGES_2M);
	struct pattern_scan s;
	int64_t n;
	int ret;

	if (!SX_CHECK(bitmap, "out of memory"))
		return;
	pattern_map(e, v, true);
	pattern_map(e, v, false);

	/* Range zap of the private alias. */
	ret = tdp_zap_range(e->mmu, 0, PATTERN_END, TDP_ALIAS_PRIVATE);
	SX_CHECK(ret == 0, "zap_range: %d", ret);
	s = pattern_scan(e, noise, true);
	SX_CHECK(pattern_total(&s) == 0,
		 "a private zap of the pattern's range left %" PRIu64
		 " pattern leaves",
		 pattern_total(&s));
	s = pattern_scan(e, noise, false);
	SX_CHECK(pattern_total(&s) == PATTERN_LEAVES,
		 "a private zap changed the shared alias (%" PRIu64
		 " leaves left)",
		 pattern_total(&s));

	/* Write-protect: every leaf once. */
	s = every_leaf_once(
		e, noise, exact,
		tdp_wrprot_range(e->mmu, 0, PATTERN_END, TDP_ALIAS_SHARED),
		"wrprot");
	SX_CHECK(s.writable == 0, "%" PRIu64 " pattern leaves still writable",
		 s.writable);

	/* Make them writable again (full fault path), dirty, harvest. */
	pattern_map(e, v, false);
	pattern_dirty(e, v);
	n = tdp_harvest_dirty(e->mmu, 0, PATTERN_HARVEST_END, bitmap,
			      TDP_ALIAS_SHARED);
	SX_CHECK(exact ? n == (int64_t)harvest_pages
		       : n >= (int64_t)harvest_pages,
		 "harvest reported %" PRId64 " GFNs, the pattern dirtied "
		 "%" PRIu64,
		 n, harvest_pages);
	for (int i = 0; i < 2 * PATTERN_LEAVES_PER_REGION; i++) {
		int level;
		tdp_gfn_t g = pattern_leaf(i, &level);

		SX_CHECK(bitmap[g / 64] & (1ULL << (g % 64)),
			 "dirty GFN %#" PRIx64 " not harvested", g);
	}

	/* Split everything to 4 KiB, then recover the huge leaves. */
	ret = tdp_split_huge_range(e->mmu, 0, PATTERN_END, TDP_LEVEL_4K,
				   TDP_ALIAS_SHARED);
	SX_CHECK(ret == 0, "split: %d", ret);
	s = pattern_scan(e, noise, false);
	SX_CHECK(s.leaves[TDP_LEVEL_2M] == 0 &&
			 s.leaves[TDP_LEVEL_4K] ==
				 NR_PATTERN_REGIONS *
					 (PATTERN_SMALL * PATTERN_SMALL +
					  PATTERN_HUGE * TS_PAGES_2M),
		 "after the split: %" PRIu64 " huge and %" PRIu64
		 " small pattern leaves",
		 s.leaves[TDP_LEVEL_2M], s.leaves[TDP_LEVEL_4K]);
	ret = tdp_recover_huge_pages(e->mmu, 0, PATTERN_END, TDP_LEVEL_2M,
				     TDP_ALIAS_SHARED);
	SX_CHECK(exact ? ret == NR_PATTERN_REGIONS * PATTERN_HUGE
		       : ret >= NR_PATTERN_REGIONS * PATTERN_HUGE,
		 "recovery made %d huge leaves, expected %d", ret,
		 NR_PATTERN_REGIONS * PATTERN_HUGE);
	s = pattern_scan(e, noise, false);
	SX_CHECK(s.leaves[TDP_LEVEL_2M] == NR_PATTERN_REGIONS * PATTERN_HUGE,
		 "after recovery: %" PRIu64 " huge pattern leaves",
		 s.leaves[TDP_LEVEL_2M]);

	/* Clear dirty bits: every leaf once. */
	pattern_dirty(e, v);
	s = every_leaf_once(
		e, noise, exact,
		tdp_clear_dirty_range(e->mmu, 0, PATTERN_END, TDP_ALIAS_SHARED),
		"clear_dirty");
	SX_CHECK(s.dirty == 0, "%" PRIu64 " pattern leaves still dirty",
		 s.dirty);

	/* Zap everything of the direct root. */
	ret = tdp_zap_all(e->mmu);
	SX_CHECK(ret == 0, "zap_all: %d", ret);
	s = pattern_scan(e, noise, false);
	SX_CHECK(pattern_total(&s) == 0,
		 "zap_all left %" PRIu64 " pattern leaves", pattern_total(&s));
	if (exact) {
		struct tdp_stats st;

		tdp_mmu_get_stats(e->mmu, &st);
		for (int l = TDP_LEVEL_4K; l < TS_ROOT_LEVEL; l++)
			SX_CHECK(st.tables[TDP_ROOT_DIRECT][l] == 0 &&
					 st.leaves[TDP_ROOT_DIRECT][l] == 0,
				 "zap_all left %" PRIu64 " tables and %" PRIu64
				 " leaves at level %d",
				 st.tables[TDP_ROOT_DIRECT][l],
				 st.leaves[TDP_ROOT_DIRECT][l], l);
	}

	/* Invalidate and zap the direct root under the read lock. */
	pattern_map(e, v, false);
	ret = tdp_mmu_invalidate_roots(e->mmu, TDP_ALIAS_SHARED);
	SX_CHECK(ret == 0, "invalidate_roots: %d", ret);
	ret = tdp_mmu_zap_invalidated_roots(e->mmu);
	SX_CHECK(ret == 0, "zap_invalidated_roots: %d", ret);
	if (exact) {
		struct sx_tree_count c;

		sx_walk_trees(e, NULL, NULL, &c);
		for (int l = TDP_LEVEL_4K; l < TS_ROOT_LEVEL; l++)
			SX_CHECK(c.tables[TDP_ROOT_DIRECT][l] == 0 &&
					 c.leaves[TDP_ROOT_DIRECT][l] == 0,
				 "the zapped invalid root keeps %" PRIu64
				 " tables and %" PRIu64 " leaves at level %d",
				 c.tables[TDP_ROOT_DIRECT][l],
				 c.leaves[TDP_ROOT_DIRECT][l], l);
	}
	/* Clean up the private alias for the next pass. */
	ret = tdp_zap_range(e->mmu, 0, PATTERN_END, TDP_ALIAS_BOTH);
	SX_CHECK(ret == 0, "zap_range: %d", ret);
	sx_count_ops(12);
	free(bitmap);
}

/* The body of yield_restart; @slow_set_leaf makes set_leaf sleep. */
static void yield_restart_run(const struct sx_opts *o, const char *name,
			      bool slow_set_leaf)
{
	struct ts_env e = { 0 };
	struct noise n = { .e = &e, .seed = o->seed };
	struct sx_threads g = { .n = 0 };
	struct tdp_vcpu *v;
	struct sx_budget b;
	long passes = 0;

	if (!sx_env_init(&e, TDP_MMU_FORCE_YIELD, true, 4096))
		return;
	if (slow_set_leaf) {
		n.slow_set_leaf = true;
		ts_set_hook(e.be, noise_slow_set_leaf, &n);
	}
	v = race_vcpu(&e);
	yield_walks(&e, v, NULL);
	sx_check_quiesced(&e);

	sx_spawn(&g, noise_main, &n);
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b) || passes == 0) {
		yield_walks(&e, v, &n);
		passes++;
	}
	__atomic_store_n(&n.stop, true, __ATOMIC_RELEASE);
	sx_join(&g);
	printf("races: %s: 1 exact pass, %ld passes with noise\n", name,
	       passes);
	if (slow_set_leaf)
		printf("races: %s: %ld of %ld scans began while a private "
		       "fault slept in set_leaf\n",
		       name, n.scans_in_set_leaf, n.scans);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
}

/*
 * yield_restart - race: an iterator that advances instead of restarting
 * after a yield.
 *
 * The MMU forces a yield at every step of every long walk that made
 * progress (TDP_MMU_FORCE_YIELD), so each walk drops and retakes mmu_lock
 * hundreds of times and restarts from the root each time.  Leaves sit on
 * table boundaries (first and last entries of 4 KiB, 2 MiB and 1 GiB
 * tables, across a 512 GiB boundary), where an iterator that advanced
 * after the restart would skip an entry and with it a whole table.  First
 * alone, where every walk's count must equal the pattern exactly (range
 * zap, write-protect, harvest, split, recovery, clear-dirty, zap-all,
 * zap of an invalidated root), then with a thread faulting and zapping
 * beside the pattern during the yields, where every pattern leaf must
 * still be visited.
 */
void race_yield_restart(const struct sx_opts *o)
{
	yield_restart_run(o, "yield_restart", false);
}

/*
 * yield_restart_slow - yield_restart with a private backend whose
 * set_leaf sleeps YR_SLOW_SET_LEAF_US, and scans that begin while a
 * private fault of the noise thread sleeps there holding its leaf frozen
 * under the read lock.  The walks still run against faults that stay in
 * the backend long enough to span many of their yields, and every scan
 * between them must still find every pattern leaf and no frozen SPTE:
 * it has to exclude the faults in flight instead of relying on the
 * timing of an instant backend.
 */
void race_yield_restart_slow(const struct sx_opts *o)
{
	yield_restart_run(o, "yield_restart_slow", true);
}

/* ---- yield_progress ---------------------------------------------------------------- */

enum yp_walk {
	YP_ZAP_SHARED,
	YP_ZAP_PRIVATE,
	YP_WRPROT,
	YP_CLEAR_DIRTY,
	YP_HARVEST,
	YP_SPLIT,
	YP_RECOVER,
	YP_ZAP_ALL,
	YP_ZAP_INVALID,
	YP_NR,
};

static const char *const yp_names[] = {
	[YP_ZAP_SHARED] = "zap_range(shared)",
	[YP_ZAP_PRIVATE] = "zap_range(private)",
	[YP_WRPROT] = "wrprot_range",
	[YP_CLEAR_DIRTY] = "clear_dirty_range",
	[YP_HARVEST] = "harvest_dirty",
	[YP_SPLIT] = "split_huge_range",
	[YP_RECOVER] = "recover_huge_pages",
	[YP_ZAP_ALL] = "zap_all",
	[YP_ZAP_INVALID] = "zap_invalidated_roots",
};

struct yp_job {
	struct ts_env *e;
	enum yp_walk walk;
	uint64_t *bitmap;
	int64_t result;
	bool done; /* atomic */
};

static void *yp_job_main(void *arg)
{
	struct yp_job *j = arg;
	struct tdp_mmu *mmu = j->e->mmu;

	switch (j->walk) {
	case YP_ZAP_SHARED:
		j->result =
			tdp_zap_range(mmu, 0, PATTERN_END, TDP_ALIAS_SHARED);
		break;
	case YP_ZAP_PRIVATE:
		j->result =
			tdp_zap_range(mmu, 0, PATTERN_END, TDP_ALIAS_PRIVATE);
		break;
	case YP_WRPROT:
		j->result =
			tdp_wrprot_range(mmu, 0, PATTERN_END, TDP_ALIAS_SHARED);
		break;
	case YP_CLEAR_DIRTY:
		j->result = tdp_clear_dirty_range(mmu, 0, PATTERN_END,
						  TDP_ALIAS_SHARED);
		break;
	case YP_HARVEST:
		j->result = tdp_harvest_dirty(mmu, 0, PATTERN_HARVEST_END,
					      j->bitmap, TDP_ALIAS_SHARED);
		break;
	case YP_SPLIT:
		j->result = tdp_split_huge_range(
			mmu, 0, PATTERN_END, TDP_LEVEL_4K, TDP_ALIAS_SHARED);
		break;
	case YP_RECOVER:
		j->result = tdp_recover_huge_pages(
			mmu, 0, PATTERN_END, TDP_LEVEL_2M, TDP_ALIAS_SHARED);
		break;
	case YP_ZAP_ALL:
		j->result = tdp_zap_all(mmu);
		break;
	default:
		j->result = tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED);
		if (!j->result)
			j->result = tdp_mmu_zap_invalidated_roots(mmu);
		break;
	}
	__atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Threads that keep mmu_lock contended in both modes. */
struct yp_pressure {
	struct ts_env *e;
	bool stop; /* atomic */
	bool writer;
};

static void *yp_pressure_main(void *arg)
{
	struct yp_pressure *p = arg;
	struct tdp_vcpu *v = p->writer ? NULL : race_vcpu(p->e);
	tdp_gfn_t far = 3 * TS_PAGES_512G;

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		if (p->writer)
			tdp_zap_range(p->e->mmu, far, far + 1,
				      TDP_ALIAS_SHARED);
		else if (v)
			race_fault(p->e, v, far + 5, false, TDP_PROT_RWX,
				   TDP_LEVEL_4K);
		sx_count_ops(1);
		/* Often enough that walks see contention at many steps. */
		tdp_udelay(p->writer ? 100 : 20);
	}
	tdp_vcpu_destroy(v);
	return NULL;
}

/*
 * Run one walk in its own thread and wait for it: a walk that yields
 * without progress never ends when the lock is always contended, and the
 * program then stops here with the walk named.
 */
static void yp_run(struct ts_env *e, struct tdp_vcpu *v, enum yp_walk walk,
		   const char *mode)
{
	uint64_t *bitmap = calloc(PATTERN_HARVEST_END / 64, sizeof(uint64_t));
	struct yp_job j = { .e = e, .walk = walk, .bitmap = bitmap };
	struct sx_threads g = { .n = 0 };
	double deadline = sx_now() + RACE_HANG_S;

	pattern_map(e, v, true);
	pattern_map(e, v, false);
	if (walk == YP_HARVEST || walk == YP_CLEAR_DIRTY)
		pattern_dirty(e, v);
	if (walk == YP_RECOVER)
		tdp_split_huge_range(e->mmu, 0, PATTERN_END, TDP_LEVEL_4K,
				     TDP_ALIAS_SHARED);
	sx_spawn(&g, yp_job_main, &j);
	while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE)) {
		if (sx_now() > deadline) {
			SX_CHECK(false,
				 "%s (%s) did not finish within %.0fs: a walk "
				 "that yields without making progress",
				 yp_names[walk], mode, RACE_HANG_S);
			sx_summary("races");
			fflush(stderr);
			_exit(1);
		}
		tdp_udelay(200);
	}
	sx_join(&g);
	switch (walk) {
	case YP_WRPROT:
	case YP_CLEAR_DIRTY:
		SX_CHECK(j.result >= PATTERN_LEAVES,
			 "%s (%s) changed %" PRId64 " leaves, pattern %d",
			 yp_names[walk], mode, j.result, PATTERN_LEAVES);
		break;
	case YP_HARVEST:
	case YP_RECOVER:
		SX_CHECK(j.result > 0, "%s (%s) returned %" PRId64,
			 yp_names[walk], mode, j.result);
		break;
	default:
		SX_CHECK(j.result == 0, "%s (%s) returned %" PRId64,
			 yp_names[walk], mode, j.result);
		break;
	}
	free(bitmap);
	sx_count_ops(1);
}

/*
 * yield_progress - race: a walk that yields without progress.
 *
 * A walk may yield only after it finished at least one GFN since its last
 * yield; otherwise a lock that is always contended makes it restart at the
 * same place forever.  Every long walk runs (in a thread, with a deadline)
 * first on an MMU whose lock always reports contention
 * (TDP_MMU_FORCE_YIELD), then on a normal MMU while other threads keep
 * mmu_lock contended for real, one with back-to-back write-locked zaps and
 * one with faults.  Every walk must finish and must have done its whole
 * job (the counts it returns cover the pattern).
 */
void race_yield_progress(const struct sx_opts *o)
{
	const char *modes[2] = { "forced yields", "contended lock" };
	double end = sx_now() + o->seconds;
	long passes = 0;

	for (int m = 0; m < 2; m++) {
		struct ts_env e = { 0 };
		struct yp_pressure w = { .e = &e, .writer = true };
		struct yp_pressure r = { .e = &e };
		struct sx_threads g = { .n = 0 };
		struct tdp_vcpu *v;

		if (!sx_env_init(&e, m == 0 ? TDP_MMU_FORCE_YIELD : 0, true, 0))
			return;
		v = race_vcpu(&e);
		if (m == 1) {
			sx_spawn(&g, yp_pressure_main, &w);
			sx_spawn(&g, yp_pressure_main, &r);
		}
		do {
			for (int walk = 0; walk < YP_NR; walk++)
				yp_run(&e, v, (enum yp_walk)walk, modes[m]);
			passes++;
		} while (sx_now() < end - (m == 0 ? o->seconds / 2 : 0));
		__atomic_store_n(&w.stop, true, __ATOMIC_RELEASE);
		__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
		sx_join(&g);
		tdp_vcpu_destroy(v);
		sx_check_quiesced(&e);
		sx_env_fini(&e);
	}
	printf("races: yield_progress: %ld passes of %d walks\n", passes,
	       YP_NR);
}

/* ---- flush_before_yield ------------------------------------------------------------ */

/*
 * The TLB model: per GFN of the window, what a CPU may have cached.
 * Cleared by the host flush callbacks, read with mmu_lock held.
 */
enum fb_tlb {
	TLB_NONE,
	TLB_READ,
	TLB_WRITE, /* a writable translation */
	TLB_DIRTY, /* a writable translation whose dirty bit is set */
};

#define FB_BLOCKS 3

struct fb_run {
	struct ts_env *e;
	tdp_gfn_t block[FB_BLOCKS]; /* 2 MiB blocks of the window */
	unsigned char tlb[FB_BLOCKS][TS_PAGES_2M]; /* atomic */
	bool stop;				   /* atomic */
	bool write_checker; /* check with the write lock */
	long checks_inside; /* atomic */
	bool walking;	    /* atomic */
};

static void fb_flush_range(void *arg, tdp_gfn_t gfn, uint64_t n)
{
	struct fb_run *r = arg;
	tdp_gfn_t start = gfn & ~TS_SHARED_BIT, end = start + n;

	for (int b = 0; b < FB_BLOCKS; b++)
		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
			if (r->block[b] + i >= start && r->block[b] + i < end)
				__atomic_store_n(&r->tlb[b][i], TLB_NONE,
						 __ATOMIC_RELAXED);
}

static void fb_flush_all(void *arg)
{
	struct fb_run *r = arg;

	for (int b = 0; b < FB_BLOCKS; b++)
		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
			__atomic_store_n(&r->tlb[b][i], TLB_NONE,
					 __ATOMIC_RELAXED);
}

/* One pass over the window: a cached translation must agree with the
 * tree.  Called with mmu_lock held, so no walker is between its change
 * and its flush. */
static void fb_check(struct fb_run *r, const char *when)
{
	const struct tdp_spte_format *fmt = r->e->fmt;

	for (int b = 0; b < FB_BLOCKS; b++) {
		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++) {
			tdp_gfn_t g = r->block[b] + i;
			int t = __atomic_load_n(&r->tlb[b][i],
						__ATOMIC_RELAXED);
			int level;
			tdp_spte_t s;

			if (t == TLB_NONE)
				continue;
			s = race_lookup(r->e, g, false, &level);
			if (!tdp_spte_is_present(fmt, s)) {
				SX_CHECK(false,
					 "%s: GFN %#" PRIx64 " was zapped but "
					 "a TLB still caches it while mmu_lock "
					 "is not held by the zapper",
					 when, g);
				continue;
			}
			SX_CHECK(t != TLB_WRITE || (s & fmt->writable),
				 "%s: GFN %#" PRIx64 " was write-protected "
				 "but a TLB still caches it writable",
				 when, g);
			SX_CHECK(t != TLB_DIRTY || (s & fmt->dirty),
				 "%s: GFN %#" PRIx64 " had its dirty bit "
				 "cleared but a TLB still caches it dirty",
				 when, g);
		}
	}
}

/* Take mmu_lock in the mode the walker does not hold and check. */
static void *fb_checker_main(void *arg)
{
	struct fb_run *r = arg;
	tdp_mmu_lock_t *lock = &r->e->mmu->mmu_lock;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		bool inside = __atomic_load_n(&r->walking, __ATOMIC_ACQUIRE);

		if (r->write_checker)
			tdp_write_lock(lock);
		else
			tdp_read_lock(lock);
		fb_check(r, r->write_checker ? "write-locked check"
					     : "read-locked check");
		if (r->write_checker)
			tdp_write_unlock(lock);
		else
			tdp_read_unlock(lock);
		if (inside && __atomic_load_n(&r->walking, __ATOMIC_ACQUIRE))
			__atomic_add_fetch(&r->checks_inside, 1,
					   __ATOMIC_RELAXED);
		sched_yield();
	}
	return NULL;
}

enum fb_walk { FB_ZAP, FB_WRPROT, FB_CLEAR_DIRTY, FB_NR };

/* Map the window, cache it in the TLB model, run @walk with a checker. */
static void fb_round(struct fb_run *r, struct tdp_vcpu *v, enum fb_walk walk)
{
	struct sx_threads g = { .n = 0 };
	unsigned char cached = walk == FB_ZAP	   ? TLB_READ
			       : walk == FB_WRPROT ? TLB_WRITE
						   : TLB_DIRTY;
	int64_t ret = 0;

	for (int b = 0; b < FB_BLOCKS; b++) {
		/* The last block is one 2 MiB leaf. */
		int level = b == FB_BLOCKS - 1 ? TDP_LEVEL_2M : TDP_LEVEL_4K;

		for (tdp_gfn_t i = 0; i < TS_PAGES_2M;
		     i += tdp_level_pages(level))
			race_fault_ok(race_fault(r->e, v, r->block[b] + i,
						 false, TDP_PROT_RWX, level),
				      r->block[b] + i, false);
	}
	if (walk == FB_CLEAR_DIRTY) {
		tdp_pfn_t root;
		int root_level;

		tdp_vcpu_load_root(v, TDP_ALIAS_SHARED, &root, &root_level);
		tdp_walk_begin();
		for (int b = 0; b < FB_BLOCKS; b++)
			for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++) {
				bool dirtied;

				ts_hw_access(r->e->fmt, root, root_level,
					     (r->block[b] + i) | TS_SHARED_BIT,
					     true, &dirtied, NULL);
			}
		tdp_walk_end();
	}
	for (int b = 0; b < FB_BLOCKS; b++)
		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
			__atomic_store_n(&r->tlb[b][i], cached,
					 __ATOMIC_RELAXED);

	r->write_checker = walk != FB_ZAP;
	__atomic_store_n(&r->stop, false, __ATOMIC_RELEASE);
	sx_spawn(&g, fb_checker_main, r);
	__atomic_store_n(&r->walking, true, __ATOMIC_RELEASE);
	switch (walk) {
	case FB_ZAP:
		ret = tdp_zap_range(r->e->mmu, r->block[0],
				    r->block[FB_BLOCKS - 1] + TS_PAGES_2M,
				    TDP_ALIAS_SHARED);
		break;
	case FB_WRPROT:
		ret = tdp_wrprot_range(r->e->mmu, r->block[0],
				       r->block[FB_BLOCKS - 1] + TS_PAGES_2M,
				       TDP_ALIAS_SHARED);
		break;
	default:
		ret = tdp_clear_dirty_range(r->e->mmu, r->block[0],
					    r->block[FB_BLOCKS - 1] +
						    TS_PAGES_2M,
					    TDP_ALIAS_SHARED);
		break;
	}
	__atomic_store_n(&r->walking, false, __ATOMIC_RELEASE);
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	sx_join(&g);
	SX_CHECK(ret >= 0, "walk %d: %" PRId64, walk, ret);
	/* After the walk returned, everything it changed is flushed. */
	fb_check(r, "after the walk");
	sx_count_ops(1);
}

/*
 * flush_before_yield - race: a flush skipped before a yield.
 *
 * A walk that removed translations must issue its pending TLB flush
 * before it drops mmu_lock, at every yield and at the end: between the
 * drop and a later flush, a CPU could keep using a zapped page, or keep
 * writing through a write-protected or dirty-cleared translation without
 * the change being logged.  A TLB model caches every translation of the
 * window; the host flush callbacks clear it.  With yields forced at every
 * step, a checker thread takes mmu_lock in the other mode whenever the
 * walker drops it (read for write-locked zaps, write for read-locked
 * write-protection and dirty clearing) and checks that no cached
 * translation is more permissive than the tree.
 */
void race_flush_before_yield(const struct sx_opts *o)
{
	struct ts_env e = { 0 };
	struct fb_run *r = calloc(1, sizeof(*r));
	struct tdp_vcpu *v;
	struct sx_budget b;
	long rounds = 0;

	if (!r)
		return;
	r->e = &e;
	r->block[0] = 3 * TS_PAGES_2M;
	r->block[1] = TS_PAGES_1G + 7 * TS_PAGES_2M;
	r->block[2] = TS_PAGES_1G + 9 * TS_PAGES_2M;
	e.log.on_range = fb_flush_range;
	e.log.on_all = fb_flush_all;
	e.log.hook_arg = r;
	if (!sx_env_init(&e, TDP_MMU_FORCE_YIELD, true, 0)) {
		free(r);
		return;
	}
	v = race_vcpu(&e);
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b) || rounds < FB_NR)
		fb_round(r, v, (enum fb_walk)(rounds++ % FB_NR));
	printf("races: flush_before_yield: %ld rounds, %ld checks while a "
	       "walk was yielding\n",
	       rounds, r->checks_inside);
	tdp_vcpu_destroy(v);
	sx_check_quiesced(&e);
	sx_env_fini(&e);
	free(r);
}

/* ---- flush_range_base ------------------------------------------------------------- */

#define FR_MAX 64

struct fr_log {
	int n;
	bool all;
	tdp_gfn_t start[FR_MAX], end[FR_MAX];
};

static void fr_flush_range(void *arg, tdp_gfn_t gfn, uint64_t n)
{
	struct fr_log *l = arg;

	if (l->n < FR_MAX) {
		l->start[l->n] = gfn;
		l->end[l->n] = gfn + n;
	}
	l->n++;
}

static void fr_flush_all(void *arg)
{
	struct fr_log *l = arg;

	l->all = true;
}

/* [start, end) lies inside the union of the logged flushes. */
static bool fr_covered(const struct fr_log *l, tdp_gfn_t start, tdp_gfn_t end)
{
	bool progress = true;

	if (l->all)
		return true;
	while (start < end && progress) {
		progress = false;
		for (int i = 0; i < l->n && i < FR_MAX; i++) {
			if (l->start[i] <= start && l->end[i] > start) {
				start = l->end[i];
				progress = true;
			}
		}
	}
	return start >= end;
}

struct fr_span {
	tdp_gfn_t start, end; /* tree GFNs */
};

/*
 * Every removed span is covered by the flushes, and every flush lies
 * inside @outer (the span of the highest entry that changed).
 */
static void fr_verify(const struct fr_log *l, const struct fr_span *spans,
		      int nr, struct fr_span outer, const char *what)
{
	SX_CHECK(l->n <= FR_MAX, "%s: too many flushes (%d)", what, l->n);
	SX_CHECK(l->n > 0 || l->all, "%s: nothing was flushed", what);
	for (int i = 0; i < nr; i++)
		SX_CHECK(fr_covered(l, spans[i].start, spans[i].end),
			 "%s: removed span [%#" PRIx64 ", %#" PRIx64
			 ") is not covered by the TLB flushes",
			 what, spans[i].start, spans[i].end);
	for (int i = 0; i < l->n && i < FR_MAX; i++)
		SX_CHECK(l->start[i] >= outer.start && l->end[i] <= outer.end,
			 "%s: flush [%#" PRIx64 ", %#" PRIx64
			 ") reaches outside the removed span [%#" PRIx64
			 ", %#" PRIx64 ")",
			 what, l->start[i], l->end[i], outer.start, outer.end);
}

static struct fr_span fr_span_of(tdp_gfn_t gfn, int level)
{
	tdp_gfn_t base = ts_round_down(gfn, level) | TS_SHARED_BIT;

	return (struct fr_span){ base, base + tdp_level_pages(level) };
}

/* One random case on @e; returns after checking its flushes. */
static void fr_case(struct ts_env *e, struct tdp_vcpu *v, struct fr_log *l,
		    uint64_t *rng)
{
	static const unsigned int blocks[] = { 0, 1, 255, 511 };
	static const unsigned int offsets[] = { 0, 1, 300, 511 };
	tdp_gfn_t gfn = (3 + ts_rand_below(rng, 2)) * TS_PAGES_512G +
			(ts_rand_below(rng, 2) ? 511 : 0) * TS_PAGES_1G +
			blocks[ts_rand_below(rng, 4)] * TS_PAGES_2M +
			offsets[ts_rand_below(rng, 4)];
	tdp_gfn_t block = ts_round_down(gfn, TDP_LEVEL_2M);
	struct fr_span spans[4];
	int ret;

	switch (ts_rand_below(rng, 3)) {
	case 0:
		/* One leaf, then zap-all: the leaf and three tables go. */
		race_fault_ok(race_fault(e, v, gfn, false, TDP_PROT_RWX,
					 TDP_LEVEL_4K),
			      gfn, false);
		*l = (struct fr_log){ 0 };
		ret = tdp_zap_all(e->mmu);
		SX_CHECK(ret == 0, "zap_all: %d", ret);
		for (int k = 0; k < 4; k++)
			spans[k] = fr_span_of(gfn, TDP_LEVEL_4K + k);
		fr_verify(l, spans, 4, spans[3], "zap_all of one leaf");
		break;
	case 1:
		/* A 2 MiB leaf zapped through a one-GFN range. */
		race_fault_ok(race_fault(e, v, block, false, TDP_PROT_RWX,
					 TDP_LEVEL_2M),
			      block, false);
		*l = (struct fr_log){ 0 };
		ret = tdp_zap_range(e->mmu, gfn, gfn + 1, TDP_ALIAS_SHARED);
		SX_CHECK(ret == 0, "zap_range: %d", ret);
		spans[0] = fr_span_of(block, TDP_LEVEL_2M);
		fr_verify(l, spans, 1, spans[0], "zap of part of a 2 MiB leaf");
		break;
	default:
		/* A full table collapsed into a 2 MiB leaf. */
		for (tdp_gfn_t i = 0; i < TS_PAGES_2M; i++)
			race_fault_ok(race_fault(e, v, block + i, false,
						 TDP_PROT_RWX, TDP_LEVEL_4K),
				      block + i, false);
		*l = (struct fr_log){ 0 };
		ret = tdp_recover_huge_pages(e->mmu, block, block + TS_PAGES_2M,
					     TDP_LEVEL_2M, TDP_ALIAS_SHARED);
		SX_CHECK(ret == 1, "recover: %d", ret);
		spans[0] = fr_span_of(block, TDP_LEVEL_2M);
		fr_verify(l, spans, 1, spans[0], "recovery of a table");
		break;
	}
	ret = tdp_zap_all(e->mmu);
	SX_CHECK(ret == 0, "zap_all: %d", ret);
	sx_count_ops(3);
}

/*
 * flush_range_base - race: a TLB flush for a removed table covering the
 * wrong range.
 *
 * When an entry pointing to a table is zapped, the flush must cover the
 * whole span of that entry, starting at its base GFN; a flush computed
 * from the GFN where the walk happened to be (the last entry visited in
 * the table) misses the start of the span and runs past its end.  The
 * flush callbacks are logged while a single leaf sits at the first or
 * last entry of 4 KiB, 2 MiB and 1 GiB tables: zap-all must flush the
 * leaf and the span of each of the three tables it removes, a one-GFN zap
 * of a 2 MiB leaf the whole 2 MiB, recovery the span of the table it
 * replaced, and no flush may reach outside the removed span.  Both with
 * yields at every step (flushes issued before each yield) and without.
 */
void race_flush_range_base(const struct sx_opts *o)
{
	struct ts_env envs[2] = { { 0 }, { 0 } };
	struct tdp_vcpu *v[2] = { NULL, NULL };
	struct fr_log logs[2];
	uint64_t rng = sx_seed_for(o->seed, 5);
	struct sx_budget b;
	long cases = 0;

	for (int i = 0; i < 2; i++) {
		envs[i].log.on_range = fr_flush_range;
		envs[i].log.on_all = fr_flush_all;
		envs[i].log.hook_arg = &logs[i];
		if (!sx_env_init(&envs[i], i ? TDP_MMU_FORCE_YIELD : 0, true,
				 0))
			return;
		v[i] = race_vcpu(&envs[i]);
	}
	sx_budget_start(&b, o->seconds, o->max_ops);
	while (sx_budget_next(&b) || cases < 6) {
		int i = (int)(cases++ % 2);

		fr_case(&envs[i], v[i], &logs[i], &rng);
	}
	printf("races: flush_range_base: %ld cases\n", cases);
	for (int i = 0; i < 2; i++) {
		tdp_vcpu_destroy(v[i]);
		sx_check_quiesced(&envs[i]);
		sx_env_fini(&envs[i]);
	}
}
