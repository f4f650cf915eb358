/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SPTE iterator (white-box, "iter.h"): its pre-order visit order
 * against an order computed independently from the mappings the test made,
 * for whole and partial ranges and minimum levels; a walk that yields at
 * every step (TDP_MMU_FORCE_YIELD) resumes at the first unfinished GFN,
 * visits every entry once apart from re-walking the path from the root,
 * and issues its pending flush before each yield; and zaps with forced
 * yields zap every leaf exactly once and flush before mmu_lock is dropped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "helpers.h"
#include "iter.h"

/* What the test mapped: 4K leaves and 2M leaves (GFNs). */
struct tree_model {
	tdp_gfn_t leaf4k[64];
	int nr4k;
	tdp_gfn_t leaf2m[8];
	int nr2m;
};

enum entry_kind { ENTRY_NONE, ENTRY_LEAF, ENTRY_TABLE };

/* One visited SPTE: its first GFN, level and what it held. */
struct visit {
	tdp_gfn_t gfn;
	int level;
	enum entry_kind kind;
};

struct visit_list {
	struct visit *v;
	size_t n, cap;
};

static void visit_push(struct visit_list *l, tdp_gfn_t gfn, int level,
		       enum entry_kind kind)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n++] = (struct visit){ gfn, level, kind };
}

/* What the model says the SPTE at (@gfn, @level) holds. */
static enum entry_kind model_kind(const struct tree_model *m, tdp_gfn_t gfn,
				  int level)
{
	uint64_t span = tdp_level_pages(level);
	bool below = false;

	for (int i = 0; i < m->nr4k; i++) {
		if (level == 1 && m->leaf4k[i] == gfn)
			return ENTRY_LEAF;
		if (level > 1 && m->leaf4k[i] >= gfn &&
		    m->leaf4k[i] < gfn + span)
			below = true;
	}
	for (int i = 0; i < m->nr2m; i++) {
		if (level == 2 && m->leaf2m[i] == gfn)
			return ENTRY_LEAF;
		if (level > 2 && m->leaf2m[i] >= gfn &&
		    m->leaf2m[i] < gfn + span)
			below = true;
	}
	return below ? ENTRY_TABLE : ENTRY_NONE;
}

/*
 * The pre-order the iterator promises, computed from the model: every
 * SPTE whose span reaches @start, a table's entries after the table's own
 * SPTE, stopping at the first SPTE that starts at or after @end.
 * Returns false once stopped.
 */
static bool expected_order(const struct tree_model *m, struct visit_list *out,
			   tdp_gfn_t base, int level, int min_level,
			   tdp_gfn_t start, tdp_gfn_t end)
{
	uint64_t span = tdp_level_pages(level);

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * span;
		enum entry_kind kind;

		if (g + span <= start)
			continue;
		if (g >= end)
			return false;
		kind = model_kind(m, g, level);
		visit_push(out, g, level, kind);
		if (kind == ENTRY_TABLE && level > min_level &&
		    !expected_order(m, out, g, level - 1, min_level, start,
				    end))
			return false;
	}
	return true;
}

static enum entry_kind spte_kind(const struct tdp_spte_format *fmt,
				 tdp_spte_t spte, int level)
{
	if (!tdp_spte_is_present(fmt, spte))
		return ENTRY_NONE;
	return tdp_spte_is_leaf(fmt, spte, level) ? ENTRY_LEAF : ENTRY_TABLE;
}

static void build_tree(struct ts_env *env, struct tree_model *m)
{
	static const tdp_gfn_t small[] = {
		0,
		5,
		511,
		3 * TS_PAGES_2M + 1,
		TS_PAGES_1G + 3,
		TS_PAGES_1G + 2 * TS_PAGES_2M,
		512 * TS_PAGES_1G,
		TS_PLAIN_GFN_LIMIT - 1,
	};
	static const tdp_gfn_t huge[] = {
		TS_PAGES_2M,
		5 * TS_PAGES_2M,
		TS_PAGES_1G + 7 * TS_PAGES_2M,
	};

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		TS_MAP_FIXED(env->vcpu, small[i], 0x1000 + i, TDP_PROT_READ, 1);
		m->leaf4k[m->nr4k++] = small[i];
	}
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		TS_MAP_FIXED(env->vcpu, huge[i], huge[i] + 0x100000,
			     TDP_PROT_READ, 2);
		m->leaf2m[m->nr2m++] = huge[i];
	}
}

struct walk_case {
	tdp_gfn_t start, end;
	int min_level;
};

static const struct walk_case walk_cases[] = {
	{ 0, TS_PLAIN_GFN_LIMIT, 1 },
	{ 0, TS_PLAIN_GFN_LIMIT, 2 },
	{ 0, TS_PLAIN_GFN_LIMIT, 3 },
	{ 0, TS_PLAIN_GFN_LIMIT, 4 },
	{ 3, 600, 1 },
	{ 511, 513, 1 },
	{ TS_PAGES_2M + 17, 6 * TS_PAGES_2M, 1 },
	{ TS_PAGES_1G, TS_PAGES_1G + 1, 1 },
	{ TS_PAGES_1G - 1, 512 * TS_PAGES_1G + 1, 1 },
	{ TS_PAGES_1G + 5, 600 * TS_PAGES_1G, 2 },
	{ TS_PLAIN_GFN_LIMIT - 2, TS_PLAIN_GFN_LIMIT, 1 },
};

static void compare_visits(const struct walk_case *c,
			   const struct visit_list *want,
			   const struct visit_list *got)
{
	size_t n = want->n < got->n ? want->n : got->n;

	for (size_t i = 0; i < n; i++) {
		const struct visit *w = &want->v[i], *g = &got->v[i];

		if (w->gfn != g->gfn || w->level != g->level ||
		    w->kind != g->kind)
			fail_msg(
				"walk [%#llx, %#llx) min %d: visit %zu is gfn %#llx level %d "
				"kind %d, want gfn %#llx level %d kind %d",
				(unsigned long long)c->start,
				(unsigned long long)c->end, c->min_level, i,
				(unsigned long long)g->gfn, g->level, g->kind,
				(unsigned long long)w->gfn, w->level, w->kind);
	}
	if (want->n != got->n)
		fail_msg("walk [%#llx, %#llx) min %d: %zu visits, want %zu",
			 (unsigned long long)c->start,
			 (unsigned long long)c->end, c->min_level, got->n,
			 want->n);
}

static struct tdp_root *direct_root(struct tdp_mmu *mmu)
{
	struct tdp_root *root;

	assert_int_equal(tdp_root_get(mmu, TDP_ROOT_DIRECT, &root), 0);
	return root;
}

/*
 * An MMU with @flags holding the tree build_tree() makes; returns its
 * direct root, with a reference.
 */
static struct tdp_root *tree_env(struct ts_env *env, struct tree_model *m,
				 unsigned int flags)
{
	ts_env_init_ok(env,
		       &(struct ts_env_opts){ .flags = flags, .record = true });
	build_tree(env, m);
	return direct_root(env->mmu);
}

#define NR_WALK_CASES (sizeof(walk_cases) / sizeof(walk_cases[0]))

static void test_preorder(void **state)
{
	struct ts_env env;
	struct tree_model m;

	(void)state;
	struct tdp_root *root = tree_env(&env, &m, 0);
	const struct tdp_spte_format *fmt = env.fmt;

	for (size_t c = 0; c < NR_WALK_CASES; c++) {
		const struct walk_case *wc = &walk_cases[c];
		struct visit_list want = { 0 }, got = { 0 };
		struct tdp_iter it;

		expected_order(&m, &want, 0, 4, wc->min_level, wc->start,
			       wc->end);

		tdp_read_lock(&env.mmu->mmu_lock);
		tdp_rcu_read_lock();
		tdp_for_each_spte_min_level(it, root->table, fmt, wc->min_level,
					    wc->start, wc->end) {
			visit_push(&got, it.gfn, it.level,
				   spte_kind(fmt, it.old_spte, it.level));
			/* The SPTE the iterator points at holds old_spte. */
			assert_int_equal(*it.sptep, it.old_spte);
			assert_true(it.level >= wc->min_level);
		}
		tdp_rcu_read_unlock();
		tdp_read_unlock(&env.mmu->mmu_lock);

		compare_visits(wc, &want, &got);
		free(want.v);
		free(got.v);
	}
	tdp_root_put(env.mmu, root);
	ts_env_destroy(&env);
}

/*
 * A read-locked walk on an MMU that forces a yield at every step that made
 * progress.  The body follows the engine's pattern: try to yield first,
 * `continue` if it did, then process the SPTE (here: record it, and queue
 * a flush for each leaf).
 */
static void test_forced_yield_walk(void **state)
{
	struct ts_env env;
	struct tree_model m;

	(void)state;
	struct tdp_root *root = tree_env(&env, &m, TDP_MMU_FORCE_YIELD);
	const struct tdp_spte_format *fmt = env.fmt;

	for (size_t c = 0; c < NR_WALK_CASES; c++) {
		const struct walk_case *wc = &walk_cases[c];
		struct visit_list want = { 0 }, got = { 0 }, pending = { 0 };
		struct tdp_op op = {
			.mmu = env.mmu,
			.root = root,
			.shared = true,
			.ctr = { .set = &env.mmu->ctr },
		};
		size_t yields = 0, expected_yields, step_downs = 0;
		struct tdp_iter it;

		expected_order(&m, &want, 0, 4, wc->min_level, wc->start,
			       wc->end);
		ts_flush_reset(&env.log);

		tdp_read_lock(&env.mmu->mmu_lock);
		tdp_rcu_read_lock();
		tdp_for_each_spte_min_level(it, root->table, fmt, wc->min_level,
					    wc->start, wc->end) {
			tdp_gfn_t resume = it.next_last_level_gfn;

			if (tdp_iter_cond_resched(&op, &it)) {
				yields++;
				/* Every queued flush was issued before the yield. */
				for (size_t i = 0; i < pending.n; i++)
					if (!ts_flush_covers(&env.log,
							     pending.v[i].gfn))
						fail_msg(
							"yield at %#llx before flushing %#llx",
							(unsigned long long)
								resume,
							(unsigned long long)
								pending.v[i]
									.gfn);
				pending.n = 0;
				ts_flush_reset(&env.log);
				assert_int_equal(op.flush.start, op.flush.end);
				assert_false(op.flush.all);
				/* Resumes at the first unfinished GFN. */
				assert_int_equal(it.next_last_level_gfn,
						 resume);
				continue;
			}
			/* Process each SPTE once; the re-walk of the path from
			 * the root after a yield revisits only tables. */
			if (got.n && (it.gfn < got.v[got.n - 1].gfn ||
				      (it.gfn == got.v[got.n - 1].gfn &&
				       it.level >= got.v[got.n - 1].level))) {
				enum entry_kind k =
					spte_kind(fmt, it.old_spte, it.level);
				bool seen = false;

				for (size_t i = got.n; i-- > 0 && !seen;)
					seen = got.v[i].gfn == it.gfn &&
					       got.v[i].level == it.level;
				if (!seen || k != ENTRY_TABLE)
					fail_msg(
						"walk [%#llx, %#llx): revisit of gfn %#llx "
						"level %d kind %d after a yield",
						(unsigned long long)wc->start,
						(unsigned long long)wc->end,
						(unsigned long long)it.gfn,
						it.level, k);
				continue;
			}
			visit_push(&got, it.gfn, it.level,
				   spte_kind(fmt, it.old_spte, it.level));
			if (spte_kind(fmt, it.old_spte, it.level) ==
			    ENTRY_LEAF) {
				tdp_flush_add(&op, it.gfn,
					      tdp_level_pages(it.level));
				visit_push(&pending, it.gfn, it.level,
					   ENTRY_LEAF);
			}
		}
		tdp_flush_issue(&op);
		tdp_rcu_read_unlock();
		tdp_read_unlock(&env.mmu->mmu_lock);

		compare_visits(wc, &want, &got);
		/*
		 * A yield at every step that moved the resume point: every
		 * visit but the first and those reached by stepping down
		 * into a table.
		 */
		for (size_t i = 0; i < want.n; i++)
			if (want.v[i].kind == ENTRY_TABLE &&
			    want.v[i].level > wc->min_level && i + 1 < want.n)
				step_downs++;
		expected_yields = want.n ? want.n - 1 - step_downs : 0;
		if (yields != expected_yields)
			fail_msg(
				"walk [%#llx, %#llx) min %d: %zu yields, want %zu",
				(unsigned long long)wc->start,
				(unsigned long long)wc->end, wc->min_level,
				yields, expected_yields);
		free(want.v);
		free(got.v);
		free(pending.v);
	}
	tdp_root_put(env.mmu, root);
	ts_env_destroy(&env);
}

/*
 * Observer: takes mmu_lock for read in a loop while a zap with forced
 * yields runs, so it gets in only while the zapper has yielded.  Every
 * mapped GFN that is no longer present must have been flushed by then.
 */
struct observer {
	struct ts_env *env;
	const tdp_gfn_t *gfns;
	size_t nr;
	int stop;	    /* atomic */
	uint64_t looks;	    /* observations with a partial zap */
	uint64_t unflushed; /* violations */
	tdp_gfn_t bad_gfn;
};

static void *observer_main(void *arg)
{
	struct observer *o = arg;

	tdp_thread_register();
	while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
		size_t gone = 0;

		tdp_read_lock(&o->env->mmu->mmu_lock);
		for (size_t i = 0; i < o->nr; i++) {
			if (ts_lookup(o->env->mmu, o->gfns[i], TDP_ALIAS_SHARED)
				    .present)
				continue;
			gone++;
			if (!ts_flush_covers(&o->env->log, o->gfns[i])) {
				o->unflushed++;
				o->bad_gfn = o->gfns[i];
			}
		}
		tdp_read_unlock(&o->env->mmu->mmu_lock);
		if (gone && gone < o->nr)
			o->looks++;
		/* Let the zap make progress between looks. */
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	}
	tdp_thread_unregister();
	return NULL;
}

/* GFNs mapped by the zap tests: several tables, huge leaves, far GFNs. */
static size_t map_zap_set(struct ts_env *env, tdp_gfn_t *gfns, size_t cap)
{
	size_t n = 0;

	for (tdp_gfn_t g = 0; g < 700; g += 3)
		gfns[n++] = g;
	for (tdp_gfn_t g = 5 * TS_PAGES_1G; g < 5 * TS_PAGES_1G + 40; g++)
		gfns[n++] = g;
	gfns[n++] = 300 * TS_PAGES_1G + 77;
	gfns[n++] = TS_PLAIN_GFN_LIMIT - 1;
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++)
		TS_MAP_FIXED(env->vcpu, gfns[i], 0x5000 + i,
			     TDP_PROT_READ | TDP_PROT_WRITE, 1);
	/* Two huge leaves: their first GFN stands for the whole 2M. */
	TS_MAP_FIXED(env->vcpu, 8 * TS_PAGES_2M, 0x400000, TDP_PROT_READ, 2);
	gfns[n++] = 8 * TS_PAGES_2M;
	TS_MAP_FIXED(env->vcpu, 9 * TS_PAGES_2M, 0x400200, TDP_PROT_READ, 2);
	gfns[n++] = 9 * TS_PAGES_2M;
	assert_true(n <= cap);
	return n;
}

static void run_forced_yield_zap(bool zap_all)
{
	struct ts_env env;
	tdp_gfn_t gfns[400];
	struct observer o = { 0 };
	pthread_t thread;
	struct tdp_stats st;
	size_t n;

	ts_env_init_ok(&env,
		       &(struct ts_env_opts){ .flags = TDP_MMU_FORCE_YIELD,
					      .record = true });
	n = map_zap_set(&env, gfns, 400);
	st = th_stats(env.mmu);
	assert_int_equal(ts_stat_leaves(&st, -1), n);
	uint64_t tables =
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1);

	o = (struct observer){ .env = &env, .gfns = gfns, .nr = n };
	assert_int_equal(pthread_create(&thread, NULL, observer_main, &o), 0);
	if (zap_all)
		assert_int_equal(tdp_zap_all(env.mmu), 0);
	else
		assert_int_equal(tdp_zap_range(env.mmu, 0, TS_PLAIN_GFN_LIMIT,
					       TDP_ALIAS_SHARED),
				 0);
	__atomic_store_n(&o.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);

	if (o.unflushed)
		fail_msg(
			"%s: %llu observations saw gfn %#llx zapped but not flushed "
			"while the zap had yielded",
			zap_all ? "zap_all" : "zap_range",
			(unsigned long long)o.unflushed,
			(unsigned long long)o.bad_gfn);
	print_message("%s: observer got in mid-zap %llu times\n",
		      zap_all ? "zap_all" : "zap_range",
		      (unsigned long long)o.looks);

	st = th_stats(env.mmu);
	assert_int_equal(st.zapped_leaves, n);
	assert_int_equal(ts_stat_leaves(&st, -1), 0);
	for (size_t i = 0; i < n; i++) {
		assert_false(
			ts_lookup(env.mmu, gfns[i], TDP_ALIAS_SHARED).present);
		if (!ts_flush_covers(&env.log, gfns[i]))
			fail_msg("gfn %#llx zapped, never flushed",
				 (unsigned long long)gfns[i]);
	}
	assert_false(ts_lookup(env.mmu, 8 * TS_PAGES_2M + 100, TDP_ALIAS_SHARED)
			     .present);
	/* A range zap over the whole address space unlinks every table
	 * below the root, as tdp_zap_all() does. */
	assert_int_equal(ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1),
			 1);
	assert_int_equal(st.zapped_tables, tables - 1);
	ts_env_destroy(&env);
}

static void test_forced_yield_zap_range(void **state)
{
	(void)state;
	run_forced_yield_zap(false);
}

static void test_forced_yield_zap_all(void **state)
{
	(void)state;
	run_forced_yield_zap(true);
}

/* Partial ranges with forced yields: exactly the leaves inside go. */
static void test_forced_yield_partial_zaps(void **state)
{
	struct ts_env env;
	tdp_gfn_t gfns[400];
	size_t n;
	uint64_t zapped = 0;
	static const struct {
		tdp_gfn_t start, end;
	} ranges[] = {
		{ 10, 11 },
		{ 100, 400 },
		{ 5 * TS_PAGES_1G + 1, 5 * TS_PAGES_1G + 39 },
		{ 8 * TS_PAGES_2M + 511, 8 * TS_PAGES_2M + 513 },
		{ 600, 5 * TS_PAGES_1G + 2 },
		{ TS_PLAIN_GFN_LIMIT - 1, TS_PLAIN_GFN_LIMIT },
	};
	bool *gone;

	(void)state;
	ts_env_init_ok(&env,
		       &(struct ts_env_opts){ .flags = TDP_MMU_FORCE_YIELD,
					      .record = true });
	n = map_zap_set(&env, gfns, 400);
	gone = calloc(n, sizeof(*gone));
	assert_non_null(gone);

	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		ts_flush_reset(&env.log);
		assert_int_equal(tdp_zap_range(env.mmu, ranges[r].start,
					       ranges[r].end, TDP_ALIAS_SHARED),
				 0);
		for (size_t i = 0; i < n; i++) {
			/* The huge leaves are the last two entries. */
			uint64_t span = i >= n - 2 ? TS_PAGES_2M : 1;
			bool hit = gfns[i] < ranges[r].end &&
				   gfns[i] + span > ranges[r].start;

			if (hit && !gone[i]) {
				gone[i] = true;
				zapped++;
				assert_true(ts_flush_covers(&env.log, gfns[i]));
			}
			if (ts_lookup(env.mmu, gfns[i], TDP_ALIAS_SHARED)
				    .present == gone[i])
				fail_msg(
					"range %zu: gfn %#llx present=%d, want %d",
					r, (unsigned long long)gfns[i], gone[i],
					!gone[i]);
		}
		assert_int_equal(th_stats(env.mmu).zapped_leaves, zapped);
	}
	free(gone);
	ts_env_destroy(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preorder),
		cmocka_unit_test(test_forced_yield_walk),
		cmocka_unit_test(test_forced_yield_zap_range),
		cmocka_unit_test(test_forced_yield_zap_all),
		cmocka_unit_test(test_forced_yield_partial_zaps),
	};

	return TS_RUN_GROUP("iter", tests);
}
