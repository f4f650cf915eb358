/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Model-based random test.  Thousands of random operations (faults with
 * random PFN, permissions and max_level; range zaps; invalidate brackets
 * with a zap inside and stale faults after; zap-all; root invalidation and
 * zap) run against one MMU, and against a plain reference map that applies
 * the semantics the headers state.  After every step each GFN of the
 * window is looked up and compared with the reference, and the statistics
 * are compared with the reference's counts.
 *
 * The window: eight 2 MiB regions (4096 GFNs) spread over the address
 * space, three of them adjacent, two on both sides of a 1 GiB boundary,
 * one in another 512 GiB slot and one at the very top (GFN 2^36 - 1).
 *
 * TDP_SEED selects the seed (default below), TDP_MODEL_STEPS the number of
 * steps.  A failure prints the seed, the step and the last operations.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define NR_REGIONS 8
#define WINDOW (NR_REGIONS * TS_PAGES_2M)
#define DEFAULT_SEED 20261122ULL
#define DEFAULT_STEPS 6000
#define HISTORY 12

static const tdp_gfn_t region_base[NR_REGIONS] = {
	0,
	TS_PAGES_2M,
	2 * TS_PAGES_2M,
	TS_PAGES_1G - TS_PAGES_2M,
	TS_PAGES_1G,
	512 * TS_PAGES_1G + 37 * TS_PAGES_2M,
	100 * TS_PAGES_1G + 5 * TS_PAGES_2M,
	TS_PLAIN_GFN_LIMIT - TS_PAGES_2M,
};

/* What the reference says one GFN maps. */
struct ref_gfn {
	bool mapped;
	tdp_pfn_t pfn;
	unsigned int prot;
	int level; /* 1, or 2 inside a huge leaf */
};

struct ref_region {
	bool huge;  /* one 2M leaf maps the whole region */
	bool table; /* a table of 4K entries hangs below the region's SPTE */
};

struct model {
	struct ts_env env;
	uint64_t seed, rng;
	int step;
	struct ref_gfn ref[WINDOW];
	struct ref_region region[NR_REGIONS];
	tdp_pfn_t backing[WINDOW]; /* the host's current PFN of each GFN */
	tdp_pfn_t next_pfn;
	/* Upper tables that exist: per 1G slot and per 512G slot touched. */
	tdp_gfn_t l2_slots[NR_REGIONS], l3_slots[NR_REGIONS];
	int nr_l2, nr_l3;
	/* The vCPU still holds a root that was invalidated. */
	bool stale_root;
	/* Expected counters. */
	uint64_t fixed, spurious, retried, zapped;
	/* Coverage of the run, printed at the end. */
	uint64_t nr_einval, nr_splits, nr_huge, nr_upgrades, max_leaves;
	char history[HISTORY][160];
	int nr_ops;
};

static const unsigned int prots[] = {
	TDP_PROT_READ,
	TDP_PROT_READ | TDP_PROT_WRITE,
	TDP_PROT_READ | TDP_PROT_EXEC,
	TDP_PROT_RWX,
};

static tdp_gfn_t gfn_of(int idx)
{
	return region_base[idx / TS_PAGES_2M] + (tdp_gfn_t)(idx % TS_PAGES_2M);
}

/* Window index of @gfn, or -1. */
static int idx_of(tdp_gfn_t gfn)
{
	for (int r = 0; r < NR_REGIONS; r++)
		if (gfn >= region_base[r] && gfn < region_base[r] + TS_PAGES_2M)
			return r * (int)TS_PAGES_2M +
			       (int)(gfn - region_base[r]);
	return -1;
}

static void note(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct model *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->history[m->nr_ops % HISTORY], sizeof(m->history[0]), fmt,
		  ap);
	va_end(ap);
	m->nr_ops++;
}

static void model_fail(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void model_fail(struct model *m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("last operations, oldest first:\n");
	for (int i = m->nr_ops > HISTORY ? m->nr_ops - HISTORY : 0;
	     i < m->nr_ops; i++)
		print_error("  #%d %s\n", i, m->history[i % HISTORY]);
	fail_msg("seed=%llu step=%d: %s (rerun with TDP_SEED=%llu)",
		 (unsigned long long)m->seed, m->step, msg,
		 (unsigned long long)m->seed);
}

static uint64_t rnd(struct model *m, uint64_t n)
{
	return ts_rand_below(&m->rng, n);
}

static bool chance(struct model *m, unsigned int percent)
{
	return rnd(m, 100) < percent;
}

/* Unused host frames, aligned to @pages (a power of two). */
static tdp_pfn_t fresh_pfn(struct model *m, uint64_t pages)
{
	tdp_pfn_t pfn = (m->next_pfn + pages - 1) & ~(pages - 1);

	m->next_pfn = pfn + pages;
	return pfn;
}

/* New host backing for one region: one huge page, or scattered pages. */
static void back_region(struct model *m, int r)
{
	if (chance(m, 60)) {
		tdp_pfn_t base = fresh_pfn(m, TS_PAGES_2M);

		for (uint64_t i = 0; i < TS_PAGES_2M; i++)
			m->backing[r * TS_PAGES_2M + i] = base + i;
	} else {
		for (uint64_t i = 0; i < TS_PAGES_2M; i++)
			m->backing[r * TS_PAGES_2M + i] =
				fresh_pfn(m, 1) + rnd(m, 3);
	}
}

static void add_slot(tdp_gfn_t *slots, int *nr, tdp_gfn_t slot)
{
	for (int i = 0; i < *nr; i++)
		if (slots[i] == slot)
			return;
	slots[(*nr)++] = slot;
}

/* A mapping now exists in region @r: its upper tables exist too. */
static void touch_upper_tables(struct model *m, int r)
{
	add_slot(m->l2_slots, &m->nr_l2, region_base[r] / TS_PAGES_1G);
	add_slot(m->l3_slots, &m->nr_l3, region_base[r] / (512 * TS_PAGES_1G));
}

static bool region_has_4k(const struct model *m, int r)
{
	if (m->region[r].huge)
		return false;
	for (uint64_t i = 0; i < TS_PAGES_2M; i++)
		if (m->ref[r * TS_PAGES_2M + i].mapped)
			return true;
	return false;
}

/* The reference after every tree is emptied and its tables freed. */
static uint64_t model_clear(struct model *m)
{
	uint64_t leaves = 0;

	for (int r = 0; r < NR_REGIONS; r++) {
		if (m->region[r].huge)
			leaves++;
		for (uint64_t i = 0; i < TS_PAGES_2M; i++) {
			struct ref_gfn *g = &m->ref[r * TS_PAGES_2M + i];

			if (g->mapped && g->level == 1)
				leaves++;
			*g = (struct ref_gfn){ 0 };
		}
		m->region[r] = (struct ref_region){ 0 };
	}
	m->nr_l2 = 0;
	m->nr_l3 = 0;
	return leaves;
}

/* Forget the slots of @span GFNs that lie in [start, end) whole. */
static void drop_covered_slots(tdp_gfn_t *slots, int *nr, uint64_t span,
			       tdp_gfn_t start, tdp_gfn_t end)
{
	int kept = 0;

	for (int i = 0; i < *nr; i++)
		if (slots[i] * span < start || (slots[i] + 1) * span > end)
			slots[kept++] = slots[i];
	*nr = kept;
}

/*
 * Zap [start, end) in the reference; returns the leaves zapped.  A range
 * zap unlinks every table whose whole span lies in the range, with all
 * below it; tables it covers only partly stay.
 */
static uint64_t model_zap(struct model *m, tdp_gfn_t start, tdp_gfn_t end)
{
	uint64_t leaves = 0;

	for (int r = 0; r < NR_REGIONS; r++) {
		tdp_gfn_t base = region_base[r];

		if (base >= end || base + TS_PAGES_2M <= start)
			continue;
		if (m->region[r].huge) {
			/* A huge leaf overlapping the range goes whole. */
			m->region[r].huge = false;
			for (uint64_t i = 0; i < TS_PAGES_2M; i++)
				m->ref[r * TS_PAGES_2M + i] =
					(struct ref_gfn){ 0 };
			leaves++;
			continue;
		}
		for (uint64_t i = 0; i < TS_PAGES_2M; i++) {
			struct ref_gfn *g = &m->ref[r * TS_PAGES_2M + i];

			if (g->mapped && base + i >= start && base + i < end) {
				*g = (struct ref_gfn){ 0 };
				leaves++;
			}
		}
	}
	for (int r = 0; r < NR_REGIONS; r++)
		if (region_base[r] >= start && region_base[r] + TS_PAGES_2M <= end)
			m->region[r].table = false;
	drop_covered_slots(m->l2_slots, &m->nr_l2, TS_PAGES_1G, start, end);
	drop_covered_slots(m->l3_slots, &m->nr_l3, 512 * TS_PAGES_1G, start,
			   end);
	return leaves;
}

/* Permissions after an upgrade: at least @want, at most @have | @want. */
static bool upgrade_ok(unsigned int got, unsigned int have, unsigned int want)
{
	return (got & want) == want && !(got & ~(have | want));
}

static const char *result_name(int r)
{
	switch (r) {
	case TDP_FAULT_FIXED:
		return "FIXED";
	case TDP_FAULT_SPURIOUS:
		return "SPURIOUS";
	case TDP_FAULT_RETRY:
		return "RETRY";
	case -EINVAL:
		return "-EINVAL";
	default:
		return "error";
	}
}

static void count_result(struct model *m, int r)
{
	if (r == TDP_FAULT_FIXED)
		m->fixed++;
	else if (r == TDP_FAULT_SPURIOUS)
		m->spurious++;
	else if (r == TDP_FAULT_RETRY)
		m->retried++;
}

/*
 * One fault, checked against the reference and applied to it.  @seq is
 * the sequence the fault read; @must_retry says an invalidation makes the
 * fault stale.
 */
static void model_map(struct model *m, int idx, tdp_pfn_t pfn,
		      unsigned int prot, int max_level, uint64_t seq,
		      bool must_retry)
{
	int r = idx / (int)TS_PAGES_2M;
	tdp_gfn_t gfn = gfn_of(idx);
	struct ref_gfn *g = &m->ref[idx];
	struct ref_region *reg = &m->region[r];
	bool eligible = max_level >= 2 && !((gfn ^ pfn) & (TS_PAGES_2M - 1));
	int res;

	note(m, "map gfn=%#" PRIx64 " pfn=%#" PRIx64 " prot=%u max_level=%d%s",
	     gfn, pfn, prot, max_level, must_retry ? " (stale)" : "");
	res = ts_map_seq(m->env.vcpu, gfn, TDP_ALIAS_SHARED, pfn, prot,
			 max_level, seq);
	/* The first fault after a root invalidation may retry once. */
	if (res == TDP_FAULT_RETRY && m->stale_root && !must_retry) {
		m->retried++;
		res = ts_map(m->env.vcpu, gfn, TDP_ALIAS_SHARED, pfn, prot,
			     max_level);
	}
	m->stale_root = false;
	count_result(m, res);

	if (must_retry) {
		if (res != TDP_FAULT_RETRY)
			model_fail(m,
				   "stale fault at %#" PRIx64
				   " returned %s, want RETRY",
				   gfn, result_name(res));
		return;
	}

	struct ts_leaf l = ts_lookup(m->env.mmu, gfn, TDP_ALIAS_SHARED);

	if (reg->huge || g->mapped) {
		tdp_pfn_t have_pfn = g->pfn;
		unsigned int have = g->prot;
		bool split = reg->huge && max_level == TDP_LEVEL_4K;

		if (pfn != have_pfn) {
			m->nr_einval++;
			if (res != -EINVAL)
				model_fail(m,
					   "fault with pfn %#" PRIx64
					   " over %#" PRIx64 " at %#" PRIx64
					   " returned %s, want -EINVAL",
					   pfn, have_pfn, gfn,
					   result_name(res));
			return;
		}
		if ((have & prot) == prot) {
			if (res != TDP_FAULT_SPURIOUS &&
			    !(split && res == TDP_FAULT_FIXED))
				model_fail(m,
					   "allowed access at %#" PRIx64
					   " returned %s",
					   gfn, result_name(res));
		} else {
			m->nr_upgrades++;
			if (res != TDP_FAULT_FIXED)
				model_fail(m,
					   "upgrade at %#" PRIx64
					   " returned %s, want FIXED",
					   gfn, result_name(res));
		}
		if (!l.present || !upgrade_ok(l.prot, have, prot) ||
		    l.level != (split ? 1 : g->level))
			model_fail(m,
				   "after fault at %#" PRIx64
				   ": present=%d prot=%#x "
				   "level=%d; had prot %#x level %d, asked %#x",
				   gfn, l.present, l.prot, l.level, have,
				   g->level, prot);
		if (split) {
			m->nr_splits++;
			reg->huge = false;
			reg->table = true;
			for (uint64_t i = 0; i < TS_PAGES_2M; i++)
				m->ref[r * TS_PAGES_2M + i].level = 1;
			g->prot = l.prot;
		} else if (g->level == 2) {
			for (uint64_t i = 0; i < TS_PAGES_2M; i++)
				m->ref[r * TS_PAGES_2M + i].prot = l.prot;
		} else {
			g->prot = l.prot;
		}
		return;
	}

	/* Unmapped: a new leaf, huge when allowed and nothing smaller below. */
	if (res != TDP_FAULT_FIXED)
		model_fail(m,
			   "fault at unmapped %#" PRIx64
			   " returned %s, want FIXED",
			   gfn, result_name(res));
	int want_level = 1;
	bool either = false;

	if (eligible && !region_has_4k(m, r)) {
		if (reg->table)
			either =
				true; /* an empty table: the headers allow both */
		else
			want_level = 2;
	}
	if (!l.present || l.pfn != pfn || l.prot != prot ||
	    (either ? (l.level != 1 && l.level != 2) : l.level != want_level))
		model_fail(m,
			   "new leaf at %#" PRIx64 ": present=%d pfn=%#" PRIx64
			   " prot=%#x level=%d; want pfn %#" PRIx64
			   " prot %#x level %d%s",
			   gfn, l.present, l.pfn, l.prot, l.level, pfn, prot,
			   want_level, either ? " or 2" : "");
	touch_upper_tables(m, r);
	if (l.level == 2) {
		tdp_pfn_t base = pfn - (gfn - region_base[r]);

		m->nr_huge++;
		reg->huge = true;
		reg->table = false;
		for (uint64_t i = 0; i < TS_PAGES_2M; i++)
			m->ref[r * TS_PAGES_2M + i] = (struct ref_gfn){
				.mapped = true,
				.pfn = base + i,
				.prot = prot,
				.level = 2,
			};
	} else {
		reg->table = true;
		*g = (struct ref_gfn){
			.mapped = true, .pfn = pfn, .prot = prot, .level = 1
		};
	}
}

/* A burst of faults on consecutive GFNs of one region. */
static void op_map_burst(struct model *m)
{
	int idx = (int)rnd(m, WINDOW);
	int n = 1 + (int)rnd(m, 64);
	int max_level = chance(m, 50) ? 2 : 1;
	unsigned int prot = prots[rnd(m, 4)];

	for (int i = 0; i < n && (i == 0 || (idx + i) % (int)TS_PAGES_2M); i++)
		model_map(m, idx + i, m->backing[idx + i], prot, max_level,
			  tdp_mmu_seq(m->env.mmu), false);
}

/* A random fault: mostly the host's PFN, sometimes another one. */
static void op_map(struct model *m)
{
	int idx = (int)rnd(m, WINDOW);
	tdp_pfn_t pfn;

	if (chance(m, 30))
		idx -= idx % (int)TS_PAGES_2M;
	pfn = chance(m, 85) ? m->backing[idx] : fresh_pfn(m, 1) + rnd(m, 1024);
	model_map(m, idx, pfn, prots[rnd(m, 4)], chance(m, 60) ? 2 : 1,
		  tdp_mmu_seq(m->env.mmu), false);
}

/* A random range that starts in the window. */
static void random_range(struct model *m, tdp_gfn_t *start, tdp_gfn_t *end)
{
	tdp_gfn_t s = gfn_of((int)rnd(m, WINDOW));
	uint64_t len;

	switch (rnd(m, 8)) {
	case 0: /* a whole region */
		s -= s % TS_PAGES_2M;
		len = TS_PAGES_2M;
		break;
	case 1: /* up to a region and a half, maybe past the window */
	case 2:
		len = 1 + rnd(m, 3 * TS_PAGES_2M / 2);
		break;
	default: /* a few pages */
		len = 1 + rnd(m, 16);
		break;
	}
	if (s + len > TS_PLAIN_GFN_LIMIT)
		len = TS_PLAIN_GFN_LIMIT - s;
	*start = s;
	*end = s + len;
}

static void check_zapped(struct model *m, uint64_t before, uint64_t want)
{
	uint64_t got = th_stats(m->env.mmu).zapped_leaves - before;

	m->zapped += want;
	if (got != want)
		model_fail(m, "zapped %" PRIu64 " leaves, want %" PRIu64, got,
			   want);
}

static void op_zap_range(struct model *m)
{
	tdp_gfn_t start, end;
	uint64_t before = th_stats(m->env.mmu).zapped_leaves;
	int ret;

	switch (rnd(m, 10)) {
	case 0:
		start = 0;
		end = TS_PLAIN_GFN_LIMIT;
		break;
	case 1:
		start = region_base[3] + rnd(m, TS_PAGES_2M);
		end = region_base[5] + rnd(m, TS_PAGES_2M);
		break;
	default:
		random_range(m, &start, &end);
		break;
	}
	note(m, "zap_range [%#" PRIx64 ", %#" PRIx64 ")", start, end);
	ret = tdp_zap_range(m->env.mmu, start, end, TDP_ALIAS_SHARED);
	if (ret)
		model_fail(m, "zap_range returned %d", ret);
	check_zapped(m, before, model_zap(m, start, end));
}

/*
 * The host changes its backing of a range: begin, faults in and out of
 * the range, the zap, a new backing, end, and a fault that resolved its
 * PFN before the end.
 */
static void op_invalidate(struct model *m)
{
	tdp_gfn_t s1, e1, s2, e2, lo, hi;
	bool nested = chance(m, 25);
	uint64_t seq0 = tdp_mmu_seq(m->env.mmu);
	uint64_t before = th_stats(m->env.mmu).zapped_leaves, zapped;
	int ret, idx;

	random_range(m, &s1, &e1);
	s2 = s1;
	e2 = e1;
	if (nested)
		random_range(m, &s2, &e2);
	lo = s1 < s2 ? s1 : s2;
	hi = e1 > e2 ? e1 : e2;
	note(m, "invalidate_begin [%#" PRIx64 ", %#" PRIx64 ")%s", s1, e1,
	     nested ? " + nested" : "");
	if ((ret = tdp_invalidate_begin(m->env.mmu, s1, e1)))
		model_fail(m, "invalidate_begin returned %d", ret);
	if (nested && (ret = tdp_invalidate_begin(m->env.mmu, s2, e2)))
		model_fail(m, "nested invalidate_begin returned %d", ret);

	/* Inside either range: retry, nothing changes. */
	idx = idx_of(chance(m, 50) ? s1 : s2);
	model_map(m, idx, m->backing[idx], prots[rnd(m, 4)], 1 + (int)rnd(m, 2),
		  tdp_mmu_seq(m->env.mmu), true);
	/* Outside all of them, at 4K: the usual semantics. */
	for (int tries = 0; tries < 8; tries++) {
		idx = (int)rnd(m, WINDOW);
		if (gfn_of(idx) < lo || gfn_of(idx) >= hi) {
			model_map(m, idx, m->backing[idx], prots[rnd(m, 4)], 1,
				  tdp_mmu_seq(m->env.mmu), false);
			break;
		}
	}

	ret = tdp_zap_host_unmap(m->env.mmu, s1, e1);
	zapped = model_zap(m, s1, e1);
	if (!ret && nested) {
		ret = tdp_zap_host_unmap(m->env.mmu, s2, e2);
		zapped += model_zap(m, s2, e2);
	}
	if (ret)
		model_fail(m, "zap_host_unmap returned %d", ret);
	check_zapped(m, before, zapped);

	/* Still in progress after the zap. */
	idx = idx_of(s1);
	model_map(m, idx, m->backing[idx], TDP_PROT_READ, 1,
		  tdp_mmu_seq(m->env.mmu), true);

	/* The host backs every region it touched anew (maybe huge again). */
	for (int r = 0; r < NR_REGIONS; r++) {
		tdp_gfn_t b = region_base[r];

		if ((b < e1 && b + TS_PAGES_2M > s1) ||
		    (b < e2 && b + TS_PAGES_2M > s2))
			back_region(m, r);
	}

	if (nested && (ret = tdp_invalidate_end(m->env.mmu, s2, e2)))
		model_fail(m, "nested invalidate_end returned %d", ret);
	if ((ret = tdp_invalidate_end(m->env.mmu, s1, e1)))
		model_fail(m, "invalidate_end returned %d", ret);
	if (tdp_mmu_seq(m->env.mmu) == seq0)
		model_fail(m, "invalidate_end did not advance the sequence");

	/* The PFN was resolved before the end: stale anywhere. */
	idx = (int)rnd(m, WINDOW);
	model_map(m, idx, m->backing[idx], TDP_PROT_READ, 1 + (int)rnd(m, 2),
		  seq0, true);
}

static void op_zap_all(struct model *m)
{
	uint64_t before = th_stats(m->env.mmu).zapped_leaves;
	int ret;

	note(m, "zap_all");
	ret = tdp_zap_all(m->env.mmu);
	if (ret)
		model_fail(m, "zap_all returned %d", ret);
	check_zapped(m, before, model_clear(m));
}

static void op_invalidate_roots(struct model *m)
{
	uint64_t before = th_stats(m->env.mmu).zapped_leaves;
	bool zap_between = chance(m, 30);
	uint64_t leaves;
	int ret;

	note(m, "invalidate_roots(SHARED)%s + zap_invalidated_roots",
	     zap_between ? " + zap_range" : "");
	if ((ret = tdp_mmu_invalidate_roots(m->env.mmu, TDP_ALIAS_SHARED)))
		model_fail(m, "invalidate_roots returned %d", ret);
	/* Range zaps also walk invalidated roots not yet freed. */
	if (zap_between &&
	    (ret = tdp_zap_range(m->env.mmu, 0, TS_PLAIN_GFN_LIMIT / 2,
				 TDP_ALIAS_SHARED)))
		model_fail(m, "zap_range returned %d", ret);
	if ((ret = tdp_mmu_zap_invalidated_roots(m->env.mmu)))
		model_fail(m, "zap_invalidated_roots returned %d", ret);
	leaves = model_clear(m);
	check_zapped(m, before, leaves);
	m->stale_root = true;
}

/* Compare every GFN of the window and the statistics with the reference. */
static void model_check(struct model *m)
{
	uint64_t want4k = 0, want2m = 0, tables1 = 0;
	struct tdp_stats st;

	for (int i = 0; i < (int)WINDOW; i++) {
		const struct ref_gfn *g = &m->ref[i];
		tdp_gfn_t gfn = gfn_of(i);
		struct ts_leaf l = ts_lookup(m->env.mmu, gfn, TDP_ALIAS_SHARED);

		if (l.ret)
			model_fail(m, "lookup of %#" PRIx64 " returned %d", gfn,
				   l.ret);
		if (!g->mapped) {
			if (l.present)
				model_fail(m,
					   "gfn %#" PRIx64 " maps pfn %#" PRIx64
					   " at level %d, want unmapped",
					   gfn, l.pfn, l.level);
			continue;
		}
		if (!l.present || l.pfn != g->pfn || l.prot != g->prot ||
		    l.level != g->level)
			model_fail(m,
				   "gfn %#" PRIx64 ": present=%d pfn=%#" PRIx64
				   " prot=%#x level=%d; want pfn %#" PRIx64
				   " prot %#x level %d",
				   gfn, l.present, l.pfn, l.prot, l.level,
				   g->pfn, g->prot, g->level);
		if (g->level == 1)
			want4k++;
	}
	for (int r = 0; r < NR_REGIONS; r++) {
		want2m += m->region[r].huge;
		tables1 += m->region[r].table;
	}

	if (want4k + want2m > m->max_leaves)
		m->max_leaves = want4k + want2m;
	st = th_stats(m->env.mmu);
	if (st.leaves[TDP_ROOT_DIRECT][1] != want4k ||
	    st.leaves[TDP_ROOT_DIRECT][2] != want2m ||
	    ts_stat_leaves(&st, -1) != want4k + want2m)
		model_fail(m,
			   "leaves: 4K %" PRIu64 " 2M %" PRIu64 " all %" PRIu64
			   "; want 4K %" PRIu64 " 2M %" PRIu64,
			   st.leaves[TDP_ROOT_DIRECT][1],
			   st.leaves[TDP_ROOT_DIRECT][2],
			   ts_stat_leaves(&st, -1), want4k, want2m);
	if (st.tables[TDP_ROOT_DIRECT][1] != tables1 ||
	    st.tables[TDP_ROOT_DIRECT][2] != (uint64_t)m->nr_l2 ||
	    st.tables[TDP_ROOT_DIRECT][3] != (uint64_t)m->nr_l3 ||
	    (st.tables[TDP_ROOT_DIRECT][4] != 1 &&
	     !(m->stale_root && st.tables[TDP_ROOT_DIRECT][4] == 2)))
		model_fail(m,
			   "tables by level 1..4: %" PRIu64 " %" PRIu64
			   " %" PRIu64 " %" PRIu64 "; want %" PRIu64 " %d %d 1",
			   st.tables[TDP_ROOT_DIRECT][1],
			   st.tables[TDP_ROOT_DIRECT][2],
			   st.tables[TDP_ROOT_DIRECT][3],
			   st.tables[TDP_ROOT_DIRECT][4], tables1, m->nr_l2,
			   m->nr_l3);
	if (st.faults_fixed != m->fixed || st.faults_spurious != m->spurious ||
	    st.faults_retried != m->retried || st.zapped_leaves != m->zapped)
		model_fail(m,
			   "fault/zap counters fixed %" PRIu64
			   " spurious %" PRIu64 " retried %" PRIu64
			   " zapped %" PRIu64 "; want %" PRIu64 " %" PRIu64
			   " %" PRIu64 " %" PRIu64,
			   st.faults_fixed, st.faults_spurious,
			   st.faults_retried, st.zapped_leaves, m->fixed,
			   m->spurious, m->retried, m->zapped);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

static void run_model(uint64_t seed, int steps, unsigned int flags)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->seed = seed;
	m->rng = seed;
	m->next_pfn = 0x100000;
	ts_env_init_ok(&m->env,
		       &(struct ts_env_opts){ .flags = flags, .record = true });
	for (int r = 0; r < NR_REGIONS; r++)
		back_region(m, r);
	print_message("model: seed=%llu steps=%d%s\n", (unsigned long long)seed,
		      steps,
		      flags & TDP_MMU_FORCE_YIELD ? " (forced yields)" : "");

	for (m->step = 0; m->step < steps; m->step++) {
		uint64_t dice = rnd(m, 1000);

		if (dice < 780)
			op_map(m);
		else if (dice < 850)
			op_map_burst(m);
		else if (dice < 910)
			op_zap_range(m);
		else if (dice < 960)
			op_invalidate(m);
		else if (dice < 980)
			op_zap_all(m);
		else
			op_invalidate_roots(m);
		model_check(m);
	}
	print_message(
		"model: %" PRIu64 " fixed, %" PRIu64 " spurious, %" PRIu64
		" retried, %" PRIu64 " -EINVAL, %" PRIu64 " upgrades, %" PRIu64
		" huge leaves, %" PRIu64 " splits, %" PRIu64 " zapped, "
		"at most %" PRIu64 " leaves\n",
		m->fixed, m->spurious, m->retried, m->nr_einval, m->nr_upgrades,
		m->nr_huge, m->nr_splits, m->zapped, m->max_leaves);
	ts_env_destroy(&m->env);
	free(m);
}

static void test_model_random(void **state)
{
	(void)state;
	run_model(env_u64("TDP_SEED", DEFAULT_SEED),
		  (int)env_u64("TDP_MODEL_STEPS", DEFAULT_STEPS), 0);
}

/* The same with a yield at every step of every long walk. */
static void test_model_random_forced_yield(void **state)
{
	(void)state;
	run_model(env_u64("TDP_SEED", DEFAULT_SEED) + 1,
		  (int)env_u64("TDP_MODEL_STEPS", DEFAULT_STEPS) / 3,
		  TDP_MMU_FORCE_YIELD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_random),
		cmocka_unit_test(test_model_random_forced_yield),
	};

	return TS_RUN_GROUP("model", tests);
}
