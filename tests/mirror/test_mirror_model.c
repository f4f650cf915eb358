/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Model-based random test of both aliases.  A reference model records,
 * for every GFN of a window of six 2 MiB regions, the level of the leaf
 * that maps it in each alias (0: none).  Random steps map private and
 * shared GFNs (4 KiB or up to 2 MiB), convert ranges (convert_to_shared
 * zaps private then maps shared; convert_to_private the reverse), delete
 * slots, and unmap host memory inside an invalidation.  After every step
 * both trees are compared with the model through tdp_lookup(), and the
 * mirror with the recorder.  The private backend injects busy and hard
 * errors.  The seed is printed with every failure; set TDP_TEST_SEED to
 * replay one.
 *
 * Rules the model predicts:
 *   - a GFN already covered by a leaf of the alias: SPURIOUS, no change,
 *     except a 4 KiB fault under a shared 2 MiB leaf, which splits it into
 *     512 leaves that translate as it did (the mirror is never split);
 *   - max_level 2 MiB and no leaf of the alias in the 2 MiB region: a
 *     2 MiB leaf when nothing below the level-2 entry exists (the walk
 *     stops at level 2 or above); when an empty level-1 table is there,
 *     either size is accepted;
 *   - otherwise a 4 KiB leaf, with PFN = pfn_of(alias, first GFN);
 *   - a zap removes every leaf of the selected aliases that overlaps the
 *     range, huge leaves whole, except that with a backend that demotes
 *     (the runs with demote_leaf) a private 2 MiB leaf the range covers
 *     only partly becomes 512 4 KiB leaves of which the covered ones go;
 *     those runs also make demote_leaf busy now and then, which the
 *     engine retries inside the zap;
 *   - inside tdp_invalidate_begin/end a shared fault of the range
 *     retries, and a fault whose sequence was read before the end retries.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREG 12
#define WINDOW (NREG * 512)
#define STEPS 2000
/* Regions from here on prefer 2 MiB faults, so huge leaves come and go. */
#define HUGE_REGION_FIRST 6

/*
 * Regions: r0/r1 and r4/r5 are adjacent; r4/r5 straddle a 512 GiB entry;
 * r6..r11 are six adjacent regions of one 1 GiB entry.
 */
static const tdp_gfn_t region_base[NREG] = {
	0,
	512,
	(1ULL << 18) | (511ULL << 9),
	1ULL << 27,
	(1ULL << 27) | (511ULL << 18) | (511ULL << 9),
	2ULL << 27,
	(2ULL << 27) | (5ULL << 18) | (0ULL << 9),
	(2ULL << 27) | (5ULL << 18) | (1ULL << 9),
	(2ULL << 27) | (5ULL << 18) | (2ULL << 9),
	(2ULL << 27) | (5ULL << 18) | (3ULL << 9),
	(2ULL << 27) | (5ULL << 18) | (4ULL << 9),
	(2ULL << 27) | (5ULL << 18) | (5ULL << 9),
};
#define SPAN_END (3ULL << 27)

enum { PRIV = 0, SHRD = 1 };

struct model {
	struct ts_env e;
	uint8_t lvl[2][WINDOW];
	uint64_t rng;
	uint64_t seed;
	int step;
	char op[160];
	unsigned long maps, spurious, hard_errors, zaps, huge, huge_private,
		splits, demotes;
	bool demote; /* the backend offers demote_leaf */
	bool trace; /* $TDP_MODEL_TRACE: print every fault */
};

#define MODEL_FAIL(m, ...)                                                   \
	do {                                                                 \
		fprintf(stderr, "model failure: seed %#llx step %d op %s\n", \
			(unsigned long long)(m)->seed, (m)->step, (m)->op);  \
		fail_msg(__VA_ARGS__);                                       \
	} while (0)

static enum tdp_alias alias_of(int a)
{
	return a == PRIV ? TDP_ALIAS_PRIVATE : TDP_ALIAS_SHARED;
}

static const char *alias_name(int a)
{
	return a == PRIV ? "private" : "shared";
}

static tdp_pfn_t pfn_of(int a, tdp_gfn_t g)
{
	return g + (a == PRIV ? 1ULL << 36 : 2ULL << 36);
}

static tdp_gfn_t gfn_of(int w)
{
	return region_base[w / 512] + (tdp_gfn_t)(w % 512);
}

/* Window index of @g, or -1. */
static int window_of(tdp_gfn_t g)
{
	for (int r = 0; r < NREG; r++)
		if (g >= region_base[r] && g < region_base[r] + 512)
			return r * 512 + (int)(g - region_base[r]);
	return -1;
}

static uint64_t rnd(struct model *m, uint64_t n)
{
	return ts_rand(&m->rng) % n;
}

/* ---- checks ------------------------------------------------------------------ */

static void check_all(struct model *m)
{
	for (int a = PRIV; a <= SHRD; a++) {
		for (int w = 0; w < WINDOW; w++) {
			tdp_gfn_t g = gfn_of(w);
			int level = 0, want = m->lvl[a][w];
			tdp_pfn_t pfn = 0;
			bool present = menv_lookup_leaf(
				m->e.mmu, g, alias_of(a), &level, &pfn);

			if (present != (want != 0) ||
			    (present && level != want))
				MODEL_FAIL(
					m,
					"%s gfn %#llx: tree has %s level %d, "
					"model level %d",
					alias_name(a), (unsigned long long)g,
					present ? "a leaf at" : "nothing,",
					level, want);
			if (present &&
			    pfn != pfn_of(a, ts_round_down(g, level)))
				MODEL_FAIL(m,
					   "%s gfn %#llx: pfn %#llx, expected "
					   "%#llx",
					   alias_name(a), (unsigned long long)g,
					   (unsigned long long)pfn,
					   (unsigned long long)pfn_of(
						   a, ts_round_down(g, level)));
		}
	}
	if (ts_compare(m->e.be, m->e.mmu, 0, SPAN_END))
		MODEL_FAIL(m, "mirror != recorder");
	if (ts_violations(m->e.be))
		MODEL_FAIL(m, "recorder saw %llu contract violations",
			   (unsigned long long)ts_violations(m->e.be));
}

/* ---- steps --------------------------------------------------------------------- */

static bool region_has_leaf(struct model *m, int a, int w)
{
	int first = w - w % 512;

	for (int i = first; i < first + 512; i++)
		if (m->lvl[a][i])
			return true;
	return false;
}

/* Fault window GFN @w in alias @a; check the result against the model. */
static void step_map(struct model *m, int a, int w, int max_level)
{
	tdp_gfn_t g = gfn_of(w);
	const struct tdp_spte_format *fmt = tdp_mmu_format(m->e.mmu);
	bool covered = m->lvl[a][w] != 0;
	int want = TDP_LEVEL_4K, stop_level = 0, level = 0, ret;
	bool either = false;
	tdp_spte_t spte = 0;

	if (tdp_lookup(m->e.mmu, g, alias_of(a), &spte, &stop_level))
		MODEL_FAIL(m, "lookup failed");
	if (!covered && max_level == TDP_LEVEL_2M &&
	    !region_has_leaf(m, a, w)) {
		if (stop_level >= TDP_LEVEL_2M)
			want = TDP_LEVEL_2M;
		else
			either = true; /* an empty level-1 table is there */
	}

	ret = ts_map_retry(m->e.vcpu, g, alias_of(a), pfn_of(a, g),
			   TDP_PROT_RWX, max_level, MENV_MAX_RETRIES, 0, NULL);
	m->maps++;
	if (m->trace) {
		int lvl = 0;

		tdp_lookup(m->e.mmu, g, alias_of(a), &spte, &lvl);
		fprintf(stderr,
			"  step %d: map %s gfn %#llx max %d (walk stopped "
			"at %d) -> %d, spte %#llx level %d\n",
			m->step, alias_name(a), (unsigned long long)g,
			max_level, stop_level, ret, (unsigned long long)spte,
			lvl);
	}
	if (covered && a == SHRD && m->lvl[a][w] > max_level) {
		/* A shared huge leaf above the goal is split in place. */
		if (ret != TDP_FAULT_SPURIOUS && ret != TDP_FAULT_FIXED)
			MODEL_FAIL(m,
				   "4 KiB fault on a shared 2 MiB leaf "
				   "returned %d",
				   ret);
		memset(&m->lvl[a][w - w % 512], TDP_LEVEL_4K, 512);
		m->splits++;
		return;
	}
	if (covered) {
		/* Includes a private huge leaf: the mirror is never split. */
		if (ret != TDP_FAULT_SPURIOUS)
			MODEL_FAIL(m,
				   "fault on a mapped GFN returned %d, "
				   "expected SPURIOUS",
				   ret);
		m->spurious++;
		return;
	}
	if (ret == -ENOSPC && a == PRIV) {
		/* Injected hard error: nothing changed (check_all sees). */
		m->hard_errors++;
		return;
	}
	if (ret != TDP_FAULT_FIXED)
		MODEL_FAIL(m, "fault returned %d, expected FIXED", ret);
	if (tdp_lookup(m->e.mmu, g, alias_of(a), &spte, &level))
		MODEL_FAIL(m, "lookup failed");
	if (!tdp_spte_is_present(fmt, spte) ||
	    !tdp_spte_is_leaf(fmt, spte, level))
		MODEL_FAIL(m, "FIXED, but no leaf (level %d spte %#llx)", level,
			   (unsigned long long)spte);
	if (either ? (level != TDP_LEVEL_4K && level != TDP_LEVEL_2M)
		   : level != want)
		MODEL_FAIL(m, "leaf at level %d, expected %s%d", level,
			   either ? "1 or " : "", either ? 2 : want);
	if (level == TDP_LEVEL_2M) {
		int first = w - w % 512;

		memset(&m->lvl[a][first], TDP_LEVEL_2M, 512);
		m->huge++;
		if (a == PRIV)
			m->huge_private++;
	} else {
		m->lvl[a][w] = TDP_LEVEL_4K;
	}
}

/*
 * Model of a zap of [start, end) in alias @a: huge leaves go whole, or
 * for the private alias with demote, a huge leaf the range covers only
 * partly is split into 4 KiB leaves first.
 */
static void model_zap(struct model *m, int a, tdp_gfn_t start, tdp_gfn_t end)
{
	for (int w = 0; w < WINDOW; w++) {
		tdp_gfn_t g = gfn_of(w);
		int first = w - w % 512;

		if (g < start || g >= end || !m->lvl[a][w])
			continue;
		if (m->lvl[a][w] != TDP_LEVEL_2M) {
			m->lvl[a][w] = 0;
			continue;
		}
		if (a == PRIV && m->demote &&
		    (gfn_of(first) < start || gfn_of(first) + 512 > end)) {
			memset(&m->lvl[a][first], TDP_LEVEL_4K, 512);
			m->lvl[a][w] = 0;
			m->demotes++;
			continue;
		}
		memset(&m->lvl[a][first], 0, 512);
	}
}

/* With demote, make the next demote_leaf calls busy now and then. */
static void maybe_busy_demotes(struct model *m)
{
	if (m->demote && rnd(m, 4) == 0)
		ts_fail_next_demotes(
			m->e.be, -EBUSY,
			1 + (int)rnd(m, TDP_DEMOTE_BUSY_TRIES - 1));
}

/* A random range: mostly inside one region, sometimes past its end. */
static void random_range(struct model *m, tdp_gfn_t *start, tdp_gfn_t *end)
{
	int r = (int)rnd(m, NREG);

	switch (rnd(m, 4)) {
	case 0: /* a whole 2 MiB region */
		*start = region_base[r];
		*end = *start + 512;
		break;
	case 1: /* across the region's end */
		*start = region_base[r] + 256 + rnd(m, 256);
		*end = *start + 1 + rnd(m, 600);
		break;
	case 2: /* everything */
		if (rnd(m, 8) == 0) {
			*start = 0;
			*end = SPAN_END;
			break;
		}
		/* fall through */
	default: /* a few pages */
		*start = region_base[r] + rnd(m, 512);
		*end = *start + 1 + rnd(m, 16);
		break;
	}
}

/* A random max_level for window GFN @w: mostly 2 MiB in huge regions. */
static int random_max_level(struct model *m, int w)
{
	if (w / 512 >= HUGE_REGION_FIRST)
		return rnd(m, 10) ? TDP_LEVEL_2M : TDP_LEVEL_4K;
	return rnd(m, 4) ? TDP_LEVEL_4K : TDP_LEVEL_2M;
}

/* Map up to @n random window GFNs of [start, end) in alias @a. */
static void map_some(struct model *m, int a, tdp_gfn_t start, tdp_gfn_t end,
		     int n)
{
	for (int i = 0; i < n; i++) {
		tdp_gfn_t g = start + rnd(m, end - start);
		int w = window_of(g);

		if (w >= 0)
			step_map(m, a, w, random_max_level(m, w));
	}
}

static void step_host_unmap(struct model *m, tdp_gfn_t start, tdp_gfn_t end)
{
	struct tdp_mmu *mmu = m->e.mmu;
	uint64_t seq_before = tdp_mmu_seq(mmu);
	tdp_gfn_t g = start + rnd(m, end - start);
	int w = window_of(g);
	struct tdp_fault f = {
		.fault_gfn = g | TS_SHARED_BIT,
		.pfn = pfn_of(SHRD, g),
		.prot = TDP_PROT_RWX,
		.max_level = TDP_LEVEL_4K,
	};
	int ret;

	if (tdp_invalidate_begin(mmu, start, end))
		MODEL_FAIL(m, "tdp_invalidate_begin failed");
	if (tdp_zap_host_unmap(mmu, start, end))
		MODEL_FAIL(m, "tdp_zap_host_unmap failed");
	model_zap(m, SHRD, start, end);
	/* Inside the invalidation a shared fault of the range retries. */
	f.mmu_seq = tdp_mmu_seq(mmu);
	ret = tdp_map(m->e.vcpu, &f);
	if (ret != TDP_FAULT_RETRY)
		MODEL_FAIL(m, "shared fault inside an invalidation returned %d",
			   ret);
	if (tdp_invalidate_end(mmu, start, end))
		MODEL_FAIL(m, "tdp_invalidate_end failed");
	/* A PFN resolved before the end is stale: retry. */
	f.mmu_seq = seq_before;
	ret = tdp_map(m->e.vcpu, &f);
	if (ret != TDP_FAULT_RETRY)
		MODEL_FAIL(m,
			   "fault with a sequence from before the "
			   "invalidation returned %d",
			   ret);
	/* The guest faults again and gets its mapping. */
	if (w >= 0)
		step_map(m, SHRD, w, TDP_LEVEL_4K);
}

static void one_step(struct model *m)
{
	uint64_t kind = rnd(m, 100);
	tdp_gfn_t start, end;
	int w, a;

	if (kind < 50) {
		int max_level;

		a = kind < 30 ? PRIV : SHRD;
		w = (int)rnd(m, WINDOW);
		max_level = random_max_level(m, w);
		snprintf(m->op, sizeof(m->op), "map %s gfn %#llx max_level %d",
			 alias_name(a), (unsigned long long)gfn_of(w),
			 max_level);
		step_map(m, a, w, max_level);
		return;
	}
	if (kind < 58) {
		/* A burst of consecutive GFNs, as a guest touching a buffer. */
		int n = 1 + (int)rnd(m, 64);

		a = rnd(m, 2) ? PRIV : SHRD;
		w = (int)rnd(m, HUGE_REGION_FIRST * 512);
		snprintf(m->op, sizeof(m->op), "burst %s gfn %#llx x%d",
			 alias_name(a), (unsigned long long)gfn_of(w), n);
		for (int i = 0; i < n && w + i < WINDOW; i++)
			step_map(m, a, w + i, TDP_LEVEL_4K);
		return;
	}

	random_range(m, &start, &end);
	m->zaps++;
	if (kind < 72) {
		snprintf(m->op, sizeof(m->op),
			 "convert to shared [%#llx, %#llx)",
			 (unsigned long long)start, (unsigned long long)end);
		maybe_busy_demotes(m);
		if (tdp_zap_convert_to_shared(m->e.mmu, start, end))
			MODEL_FAIL(m, "tdp_zap_convert_to_shared failed");
		model_zap(m, PRIV, start, end);
		check_all(m);
		map_some(m, SHRD, start, end, 8);
	} else if (kind < 86) {
		snprintf(m->op, sizeof(m->op),
			 "convert to private [%#llx, %#llx)",
			 (unsigned long long)start, (unsigned long long)end);
		if (tdp_zap_convert_to_private(m->e.mmu, start, end))
			MODEL_FAIL(m, "tdp_zap_convert_to_private failed");
		model_zap(m, SHRD, start, end);
		check_all(m);
		map_some(m, PRIV, start, end, 8);
	} else if (kind < 92) {
		snprintf(m->op, sizeof(m->op), "slot deleted [%#llx, %#llx)",
			 (unsigned long long)start, (unsigned long long)end);
		maybe_busy_demotes(m);
		if (tdp_zap_slot_deleted(m->e.mmu, start, end))
			MODEL_FAIL(m, "tdp_zap_slot_deleted failed");
		model_zap(m, PRIV, start, end);
		model_zap(m, SHRD, start, end);
	} else {
		snprintf(m->op, sizeof(m->op), "host unmap [%#llx, %#llx)",
			 (unsigned long long)start, (unsigned long long)end);
		step_host_unmap(m, start, end);
	}
}

static void run_model(uint64_t seed, unsigned int mmu_flags, bool demote)
{
	struct model *m = calloc(1, sizeof(*m));
	struct tdp_stats st;
	struct ts_counts c;

	assert_non_null(m);
	m->seed = seed;
	m->rng = seed;
	m->trace = getenv("TDP_MODEL_TRACE") != NULL;
	fprintf(stderr, "model: seed %#llx (TDP_TEST_SEED=%#llx replays it)\n",
		(unsigned long long)seed, (unsigned long long)seed);
	m->demote = demote;
	menv_init_backend(&m->e, 4096, mmu_flags, demote);
	ts_set_injection(m->e.be, 100, 20, seed ^ 0x5eed);

	for (m->step = 0; m->step < STEPS; m->step++) {
		one_step(m);
		if (m->trace)
			fprintf(stderr, "step %d: %s\n", m->step, m->op);
		check_all(m);
	}

	/* Teardown returns every mirror table once; nothing stays. */
	snprintf(m->op, sizeof(m->op), "teardown");
	c = ts_counts(m->e.be);
	if (m->demote) {
		struct tdp_stats mid;

		assert_int_equal(tdp_mmu_get_stats(m->e.mmu, &mid), 0);
		if (!m->demotes || mid.demotes != m->demotes ||
		    !mid.demote_busy || mid.demote_errors)
			MODEL_FAIL(m,
				   "demotes: model %lu, engine %llu (%llu "
				   "busy, %llu errors)",
				   m->demotes,
				   (unsigned long long)mid.demotes,
				   (unsigned long long)mid.demote_busy,
				   (unsigned long long)mid.demote_errors);
	}
	if (!c.injected_busy || !c.injected_errors || !m->huge_private ||
	    m->huge == m->huge_private)
		MODEL_FAIL(m,
			   "the run did not exercise busy (%llu), hard errors "
			   "(%llu) or huge leaves of both aliases (%lu, %lu "
			   "private)",
			   (unsigned long long)c.injected_busy,
			   (unsigned long long)c.injected_errors, m->huge,
			   m->huge_private);
	tdp_vcpu_destroy(m->e.vcpu);
	m->e.vcpu = NULL;
	if (tdp_mmu_teardown(m->e.mmu))
		MODEL_FAIL(m, "teardown failed");
	c = ts_counts(m->e.be);
	assert_int_equal(ts_nr_tables(m->e.be), 0);
	assert_int_equal(ts_nr_leaves(m->e.be), 0);
	assert_int_equal(c.ok[TS_FREE_TABLE],
			 c.ok[TS_LINK_TABLE] + c.ok[TS_DEMOTE_LEAF]);
	assert_int_equal(c.ok[TS_DEMOTE_LEAF], m->demotes);
	assert_int_equal(tdp_mmu_get_stats(m->e.mmu, &st), 0);
	assert_int_equal(st.pages_in_use, 0);
	assert_int_equal(ts_violations(m->e.be), 0);
	fprintf(stderr,
		"model: %lu maps (%lu spurious, %lu hard errors, %lu "
		"huge, %lu splits), %lu zaps, %lu demotes\n",
		m->maps, m->spurious, m->hard_errors, m->huge, m->splits,
		m->zaps, m->demotes);
	ts_env_destroy(&m->e);
	free(m);
}

static void test_model_seed_a(void **state)
{
	(void)state;
	run_model(ts_seed(0x6d6f64656c01ULL), 0, false);
}

static void test_model_seed_b(void **state)
{
	(void)state;
	if (getenv("TDP_TEST_SEED"))
		skip();
	run_model(0x6d6f64656c02ULL, 0, false);
}

/* Every long walk yields at every step: restarts must not lose a leaf. */
static void test_model_forced_yield(void **state)
{
	(void)state;
	if (getenv("TDP_TEST_SEED"))
		skip();
	run_model(0x6d6f64656c03ULL, TDP_MMU_FORCE_YIELD, false);
}

/* A backend that demotes: partial private zaps split huge leaves. */
static void test_model_demote(void **state)
{
	(void)state;
	run_model(ts_seed(0x6d6f64656c04ULL), 0, true);
}

/* Demotes with yields (and busy relocks) at every step of every walk. */
static void test_model_demote_forced_yield(void **state)
{
	(void)state;
	if (getenv("TDP_TEST_SEED"))
		skip();
	run_model(0x6d6f64656c05ULL, TDP_MMU_FORCE_YIELD, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_seed_a),
		cmocka_unit_test(test_model_seed_b),
		cmocka_unit_test(test_model_forced_yield),
		cmocka_unit_test(test_model_demote),
		cmocka_unit_test(test_model_demote_forced_yield),
	};

	return TS_RUN_GROUP("tests", tests);
}
