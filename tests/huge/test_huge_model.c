/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Model-based random test of huge pages, dirty logging and aging on the
 * direct root.  A seeded random sequence of faults (4 KiB, 2 MiB and
 * 1 GiB through max_level, aligned and misaligned PFNs, every set of
 * rights), zaps, eager splits, recovery, write-protect, fast fixes, dirty
 * clearing and harvesting, aging and simulated CPU accesses runs against
 * a reference model of the tree: which level maps each GFN, its PFN, its
 * rights and its accessed/dirty state, and which tables exist.  In one
 * thread every outcome is determined, so after each operation the whole
 * tree is compared with the model, SPTE for SPTE, and so are the return
 * values, the statistics, the TLB flushes the operation needed and the
 * dirty leaves it removed (host.mark_dirty).
 *
 * The seed is printed on failure; TDP_TEST_SEED=<n> reruns one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define P2M TS_PAGES_2M
#define P1G TS_PAGES_1G

/* The window: two 1 GiB regions. */
#define NB1 2
#define NB2 (NB1 * 512)
#define NW (NB1 * P1G)
#define WB (2 * P1G)
/* Host frames: aligned to GFNs at every level, or off by one page. */
#define PFN_OFFSET (64 * P1G)
#define PFN_ALT (PFN_OFFSET + 5 * P1G + 1)

/* What maps a 1 GiB or 2 MiB region. */
enum entry { E_NONE, E_LEAF, E_TABLE };

/* Per-GFN state; a huge leaf's GFNs all hold the same bits. */
enum {
	M_PRESENT = 1 << 0,
	M_R = 1 << 1,
	M_W = 1 << 2,
	M_X = 1 << 3,
	M_MW = 1 << 4, /* MMU-writable (and host-writable) */
	M_A = 1 << 5,
	M_D = 1 << 6,
};
#define M_RIGHTS (M_R | M_W | M_X | M_MW)

struct span {
	uint64_t start, n; /* window indexes */
};

#define TRACE_LEN 24

struct model {
	struct ts_env env;
	struct tdp_mmu *mmu;
	const struct tdp_spte_format *fmt;
	uint64_t seed, rng;
	unsigned long op;
	char trace[TRACE_LEN][200];

	/* The reference tree. */
	bool l3_table; /* the table below the root entry exists */
	uint8_t l3[NB1];
	uint8_t l2[NB2];
	uint8_t *attr; /* NW entries */
	uint64_t *pfn; /* NW entries */

	/* GFN spans whose translation lost a right, present or dirty bit. */
	struct span *need;
	size_t nr_need, cap_need;

	/* What the run exercised (printed at the end). */
	struct {
		uint64_t fixed[TDP_LEVEL_1G + 1], spurious, einval;
		uint64_t splits[TDP_LEVEL_1G + 1], recovered, harvested;
		uint64_t wrprotected, fixed_fast, young, written, marked;
	} seen;

	/*
	 * host.mark_dirty: GFNs of removed dirty leaves that must be
	 * reported (zaps), that may be (the small leaves of a table that
	 * recovery replaced: their dirty bits also go to the huge leaf), and
	 * that were.  NW bits each.
	 */
	uint64_t *mark_must, *mark_may, *marked;

	uint64_t *bm; /* NW bits: harvest bitmaps */
	uint64_t *expect_bm;
	char err[300]; /* first mismatch seen by the tree walk */
};

static tdp_gfn_t gfn_at(uint64_t i)
{
	return WB + i;
}

static tdp_pfn_t pfn_of(tdp_gfn_t gfn)
{
	return gfn + PFN_OFFSET;
}

static uint64_t pages(int level)
{
	return tdp_level_pages(level);
}

/* ---- trace and failure -------------------------------------------------------- */

static void trace(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void trace(struct model *m, const char *fmt, ...)
{
	char *slot = m->trace[m->op % TRACE_LEN];
	va_list ap;
	int n;

	n = snprintf(slot, sizeof(m->trace[0]), "#%lu ", m->op);
	va_start(ap, fmt);
	vsnprintf(slot + n, sizeof(m->trace[0]) - (size_t)n, fmt, ap);
	va_end(ap);
}

static void model_fail(struct model *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void model_fail(struct model *m, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"model test failed: seed %#llx (TDP_TEST_SEED=%llu), "
		"op %lu\nlast operations:\n",
		(unsigned long long)m->seed, (unsigned long long)m->seed,
		m->op);
	for (unsigned long k = m->op >= TRACE_LEN ? m->op - TRACE_LEN + 1 : 0;
	     k <= m->op; k++)
		fprintf(stderr, "  %s\n", m->trace[k % TRACE_LEN]);
	fail_msg("seed %#llx op %lu: %s", (unsigned long long)m->seed, m->op,
		 msg);
}

#define EXPECT_EQ(m, got, want, what)                                      \
	do {                                                               \
		long long g_ = (long long)(got), w_ = (long long)(want);   \
		if (g_ != w_)                                              \
			model_fail(m, "%s returned %lld, model says %lld", \
				   what, g_, w_);                          \
	} while (0)

/* ---- the reference tree ------------------------------------------------------- */

/* Level of the leaf that maps window index @i, 0 if none. */
static int mlevel(const struct model *m, uint64_t i)
{
	uint64_t b1 = i / P1G, b2 = i / P2M;

	if (m->l3[b1] == E_LEAF)
		return TDP_LEVEL_1G;
	if (m->l3[b1] != E_TABLE)
		return 0;
	if (m->l2[b2] == E_LEAF)
		return TDP_LEVEL_2M;
	if (m->l2[b2] != E_TABLE)
		return 0;
	return (m->attr[i] & M_PRESENT) ? TDP_LEVEL_4K : 0;
}

/* The next index worth looking at after @i, which maps nothing. */
static uint64_t skip_hole(const struct model *m, uint64_t i)
{
	uint64_t b1 = i / P1G, b2 = i / P2M;

	if (m->l3[b1] != E_TABLE)
		return (b1 + 1) * P1G;
	if (m->l2[b2] != E_TABLE)
		return (b2 + 1) * P2M;
	return i + 1;
}

typedef void (*leaf_fn)(struct model *m, uint64_t lb, int level, void *arg);

/* Call @fn for every leaf overlapping [s, e), in GFN order. */
static void for_each_leaf(struct model *m, uint64_t s, uint64_t e, leaf_fn fn,
			  void *arg)
{
	uint64_t i = s;

	while (i < e) {
		int level = mlevel(m, i);
		uint64_t lb;

		if (!level) {
			i = skip_hole(m, i);
			continue;
		}
		lb = i & ~(pages(level) - 1);
		fn(m, lb, level, arg);
		i = lb + pages(level);
	}
}

static void set_leaf(struct model *m, uint64_t lb, int level, uint8_t attr,
		     tdp_pfn_t pfn_base)
{
	for (uint64_t k = 0; k < pages(level); k++) {
		m->attr[lb + k] = attr;
		m->pfn[lb + k] = pfn_base + k;
	}
}

static void change_leaf(struct model *m, uint64_t lb, int level, uint8_t clear,
			uint8_t set)
{
	for (uint64_t k = 0; k < pages(level); k++)
		m->attr[lb + k] = (uint8_t)((m->attr[lb + k] & ~clear) | set);
}

static void need_flush(struct model *m, uint64_t start, uint64_t n)
{
	struct span *last = m->nr_need ? &m->need[m->nr_need - 1] : NULL;

	if (last && last->start + last->n == start) {
		last->n += n;
		return;
	}
	if (m->nr_need == m->cap_need) {
		m->cap_need = m->cap_need ? m->cap_need * 2 : 64;
		m->need = realloc(m->need, m->cap_need * sizeof(*m->need));
		assert_non_null(m->need);
	}
	m->need[m->nr_need++] = (struct span){ .start = start, .n = n };
}

/* The SPTE the model expects for the leaf at @lb. */
static tdp_spte_t expected_spte(const struct model *m, uint64_t lb, int level)
{
	uint8_t a = m->attr[lb];
	unsigned int prot = TDP_PROT_READ;
	tdp_spte_t s;

	if (a & M_MW)
		prot |= TDP_PROT_WRITE;
	if (a & M_X)
		prot |= TDP_PROT_EXEC;
	s = tdp_spte_make_leaf(m->fmt, m->pfn[lb], level, prot);
	if (!(a & M_W))
		s &= ~m->fmt->writable;
	if (!(a & M_A))
		s &= ~m->fmt->accessed;
	if (a & M_D)
		s |= m->fmt->dirty;
	return s;
}

static uint8_t prot_attr(unsigned int prot)
{
	uint8_t a = M_PRESENT | M_R | M_A;

	if (prot & TDP_PROT_WRITE)
		a |= M_W | M_MW;
	if (prot & TDP_PROT_EXEC)
		a |= M_X;
	return a;
}

static unsigned int attr_prot(uint8_t a)
{
	return ((a & M_R) ? TDP_PROT_READ : 0) |
	       ((a & M_W) ? TDP_PROT_WRITE : 0) |
	       ((a & M_X) ? TDP_PROT_EXEC : 0);
}

/* Replace the huge leaf at @lb by a table of leaves one level down. */
static void split_one(struct model *m, uint64_t lb, int level)
{
	m->seen.splits[level]++;
	if (level == TDP_LEVEL_1G) {
		m->l3[lb / P1G] = E_TABLE;
		memset(&m->l2[lb / P2M], E_LEAF, 512);
	} else {
		m->l2[lb / P2M] = E_TABLE;
	}
}

/* ---- the model of each operation -------------------------------------------- */

/* A fault on a present leaf: spurious, or more rights (and accessed). */
static int model_upgrade(struct model *m, uint64_t i, int level,
			 unsigned int prot)
{
	uint64_t lb = i & ~(pages(level) - 1);

	if ((attr_prot(m->attr[lb]) & prot) == prot)
		return TDP_FAULT_SPURIOUS;
	change_leaf(m, lb, level, 0, prot_attr(prot));
	return TDP_FAULT_FIXED;
}

static int model_install(struct model *m, uint64_t i, int level, tdp_pfn_t pfn,
			 unsigned int prot)
{
	uint64_t lb = i & ~(pages(level) - 1);

	if (level == TDP_LEVEL_1G)
		m->l3[i / P1G] = E_LEAF;
	else if (level == TDP_LEVEL_2M)
		m->l2[i / P2M] = E_LEAF;
	set_leaf(m, lb, level, prot_attr(prot), pfn & ~(pages(level) - 1));
	m->seen.fixed[level]++;
	return TDP_FAULT_FIXED;
}

/* tdp_map(): the walk of fault.c, one level at a time. */
static int model_map(struct model *m, uint64_t i, tdp_pfn_t pfn,
		     unsigned int prot, int max_level)
{
	tdp_gfn_t g = gfn_at(i);
	uint64_t b1 = i / P1G, b2 = i / P2M;
	int goal = max_level;

	while (goal > TDP_LEVEL_4K && ((g ^ pfn) & (pages(goal) - 1)))
		goal--;
	m->l3_table = true;

	switch (m->l3[b1]) {
	case E_TABLE:
		if (goal == TDP_LEVEL_1G)
			goal--;
		break;
	case E_LEAF:
		if (m->pfn[i] != pfn)
			return -EINVAL;
		if (goal == TDP_LEVEL_1G)
			return model_upgrade(m, i, TDP_LEVEL_1G, prot);
		split_one(m, b1 * P1G, TDP_LEVEL_1G);
		break;
	default:
		if (goal == TDP_LEVEL_1G)
			return model_install(m, i, TDP_LEVEL_1G, pfn, prot);
		m->l3[b1] = E_TABLE;
		memset(&m->l2[b1 * 512], E_NONE, 512);
		break;
	}

	switch (m->l2[b2]) {
	case E_TABLE:
		if (goal == TDP_LEVEL_2M)
			goal--;
		break;
	case E_LEAF:
		if (m->pfn[i] != pfn)
			return -EINVAL;
		if (goal == TDP_LEVEL_2M)
			return model_upgrade(m, i, TDP_LEVEL_2M, prot);
		split_one(m, b2 * P2M, TDP_LEVEL_2M);
		break;
	default:
		if (goal == TDP_LEVEL_2M)
			return model_install(m, i, TDP_LEVEL_2M, pfn, prot);
		m->l2[b2] = E_TABLE;
		break;
	}

	if (m->attr[i] & M_PRESENT) {
		if (m->pfn[i] != pfn)
			return -EINVAL;
		return model_upgrade(m, i, TDP_LEVEL_4K, prot);
	}
	return model_install(m, i, TDP_LEVEL_4K, pfn, prot);
}

static void mark_span(uint64_t *bm, uint64_t start, uint64_t n)
{
	for (uint64_t i = start; i < start + n; i++)
		hh_bit_set(bm, i);
}

static void zap_leaf(struct model *m, uint64_t lb, int level, void *arg)
{
	(void)arg;
	if (m->attr[lb] & M_D)
		mark_span(m->mark_must, lb, pages(level));
	if (level == TDP_LEVEL_1G)
		m->l3[lb / P1G] = E_NONE;
	else if (level == TDP_LEVEL_2M)
		m->l2[lb / P2M] = E_NONE;
	memset(&m->attr[lb], 0, pages(level));
	need_flush(m, lb, pages(level));
}

/* Split every huge leaf overlapping [s, e) down to @target, pre-order. */
static void model_split(struct model *m, uint64_t s, uint64_t e, int target)
{
	uint64_t i = s;

	while (i < e) {
		int level = mlevel(m, i);

		if (!level) {
			i = skip_hole(m, i);
		} else if (level > target) {
			split_one(m, i & ~(pages(level) - 1), level);
		} else {
			i = (i & ~(pages(level) - 1)) + pages(level);
		}
	}
}

/*
 * Would the @n leaves of one level at @first..., each @step GFNs apart,
 * collapse?  Same rights, one aligned contiguous PFN range.  Returns the
 * OR of their accessed/dirty bits (with M_PRESENT) or 0.
 */
static uint8_t collapsible(const struct model *m, uint64_t first, uint64_t step,
			   uint64_t align)
{
	uint8_t rights = m->attr[first] & M_RIGHTS, ad = 0;

	if (m->pfn[first] & (align - 1))
		return 0;
	for (uint64_t k = 0; k < 512; k++) {
		uint64_t i = first + k * step;

		if (!(m->attr[i] & M_PRESENT) ||
		    (m->attr[i] & M_RIGHTS) != rights ||
		    m->pfn[i] != m->pfn[first] + k * step)
			return 0;
		ad |= m->attr[i] & (M_A | M_D);
	}
	return (uint8_t)(M_PRESENT | rights | ad);
}

static int model_recover(struct model *m, uint64_t s, uint64_t e, int max_level)
{
	int made = 0;

	for (uint64_t b = s / P2M; b < e / P2M; b++) {
		uint8_t a;

		if (m->l3[b / 512] != E_TABLE || m->l2[b] != E_TABLE)
			continue;
		a = collapsible(m, b * P2M, 1, P2M);
		if (!a)
			continue;
		for (uint64_t i = b * P2M; i < (b + 1) * P2M; i++)
			if (m->attr[i] & M_D)
				hh_bit_set(m->mark_may, i);
		m->l2[b] = E_LEAF;
		set_leaf(m, b * P2M, TDP_LEVEL_2M, a, m->pfn[b * P2M]);
		need_flush(m, b * P2M, P2M);
		made++;
	}
	if (max_level < TDP_LEVEL_1G)
		return made;
	for (uint64_t b = (s + P1G - 1) / P1G; (b + 1) * P1G <= e; b++) {
		uint8_t a = 0;
		bool all_leaves = m->l3[b] == E_TABLE;

		for (uint64_t k = 0; k < 512 && all_leaves; k++)
			all_leaves = m->l2[b * 512 + k] == E_LEAF;
		if (all_leaves)
			a = collapsible(m, b * P1G, P2M, P1G);
		if (!a)
			continue;
		for (uint64_t i = b * P1G; i < (b + 1) * P1G; i += P2M)
			if (m->attr[i] & M_D)
				mark_span(m->mark_may, i, P2M);
		m->l3[b] = E_LEAF;
		set_leaf(m, b * P1G, TDP_LEVEL_1G, a, m->pfn[b * P1G]);
		need_flush(m, b * P1G, P1G);
		made++;
	}
	return made;
}

struct change_arg {
	uint8_t need;  /* the leaf must have this bit ... */
	uint8_t clear; /* ... and loses these */
	bool flush;
	int64_t count;
};

static void change_if(struct model *m, uint64_t lb, int level, void *arg)
{
	struct change_arg *c = arg;

	if (!(m->attr[lb] & c->need))
		return;
	change_leaf(m, lb, level, c->clear, 0);
	if (c->flush)
		need_flush(m, lb, pages(level));
	c->count++;
}

struct harvest_arg {
	uint64_t s, e;
	int64_t count;
};

static void harvest_leaf(struct model *m, uint64_t lb, int level, void *arg)
{
	struct harvest_arg *h = arg;
	uint64_t first = lb > h->s ? lb : h->s;
	uint64_t last = lb + pages(level) < h->e ? lb + pages(level) : h->e;

	if (!(m->attr[lb] & M_D))
		return;
	change_leaf(m, lb, level, M_D, 0);
	need_flush(m, lb, pages(level));
	for (uint64_t i = first; i < last; i++, h->count++)
		hh_bit_set(m->expect_bm, i - h->s);
}

/* ---- checking the engine against the model ---------------------------------- */

struct walk_arg {
	struct model *m;
	uint64_t leaves[TDP_MAX_LEVEL + 1];
};

static void check_leaf(void *varg, tdp_gfn_t gfn, int level, tdp_spte_t spte)
{
	struct walk_arg *w = varg;
	struct model *m = w->m;
	uint64_t i = gfn - WB;

	if (m->err[0])
		return;
	if (gfn < WB || gfn >= WB + NW) {
		snprintf(m->err, sizeof(m->err),
			 "leaf outside the window: gfn %#llx level %d",
			 (unsigned long long)gfn, level);
		return;
	}
	if (mlevel(m, i) != level || (i & (pages(level) - 1))) {
		snprintf(m->err, sizeof(m->err),
			 "gfn %#llx: level %d leaf in the tree, the model has "
			 "level %d",
			 (unsigned long long)gfn, level, mlevel(m, i));
		return;
	}
	if (spte != expected_spte(m, i, level))
		snprintf(m->err, sizeof(m->err),
			 "gfn %#llx level %d: spte %#llx, model %#llx",
			 (unsigned long long)gfn, level,
			 (unsigned long long)spte,
			 (unsigned long long)expected_spte(m, i, level));
}

/* Leaves and tables of each level in the model. */
static void model_counts(const struct model *m, struct hh_tree_counts *c)
{
	memset(c, 0, sizeof(*c));
	c->tables[TDP_LEVEL_512G] = 1;
	c->tables[TDP_LEVEL_1G] = m->l3_table;
	for (uint64_t b1 = 0; b1 < NB1; b1++) {
		if (m->l3[b1] == E_LEAF)
			c->leaves[TDP_LEVEL_1G]++;
		if (m->l3[b1] != E_TABLE)
			continue;
		c->tables[TDP_LEVEL_2M]++;
		for (uint64_t b2 = b1 * 512; b2 < (b1 + 1) * 512; b2++) {
			if (m->l2[b2] == E_LEAF)
				c->leaves[TDP_LEVEL_2M]++;
			if (m->l2[b2] != E_TABLE)
				continue;
			c->tables[TDP_LEVEL_4K]++;
			for (uint64_t i = b2 * P2M; i < (b2 + 1) * P2M; i++)
				c->leaves[TDP_LEVEL_4K] +=
					m->attr[i] & M_PRESENT;
		}
	}
}

/* The whole tree, the statistics and a few lookups against the model. */
static void verify(struct model *m)
{
	struct walk_arg w = { .m = m };
	struct hh_tree_counts tree, want;
	struct tdp_stats st = hh_stats(m->mmu);

	m->err[0] = '\0';
	hh_tree_walk(m->mmu, WB, WB + NW, check_leaf, &w, &tree);
	if (m->err[0])
		model_fail(m, "%s", m->err);
	model_counts(m, &want);
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_512G; level++) {
		if (tree.leaves[level] != want.leaves[level] ||
		    tree.tables[level] != want.tables[level])
			model_fail(
				m,
				"level %d: the tree has %llu leaves and %llu "
				"tables, the model %llu and %llu",
				level, (unsigned long long)tree.leaves[level],
				(unsigned long long)tree.tables[level],
				(unsigned long long)want.leaves[level],
				(unsigned long long)want.tables[level]);
		if (st.leaves[TDP_ROOT_DIRECT][level] != want.leaves[level] ||
		    st.tables[TDP_ROOT_DIRECT][level] != want.tables[level])
			model_fail(
				m,
				"level %d: statistics say %llu leaves and %llu "
				"tables, the model %llu and %llu",
				level,
				(unsigned long long)
					st.leaves[TDP_ROOT_DIRECT][level],
				(unsigned long long)
					st.tables[TDP_ROOT_DIRECT][level],
				(unsigned long long)want.leaves[level],
				(unsigned long long)want.tables[level]);
	}
	/* The lockless lookup agrees. */
	for (int k = 0; k < 8; k++) {
		uint64_t i = ts_rand_below(&m->rng, NW);
		struct ts_leaf l =
			ts_lookup(m->mmu, gfn_at(i), TDP_ALIAS_SHARED);
		int level = mlevel(m, i);

		if (l.present != (level != 0) ||
		    (level &&
		     (l.level != level ||
		      l.spte != expected_spte(m, i & ~(pages(level) - 1),
					      level))))
			model_fail(
				m,
				"lookup of gfn %#llx: present %d level %d spte "
				"%#llx; the model has level %d",
				(unsigned long long)gfn_at(i), l.present,
				l.level, (unsigned long long)l.spte, level);
	}
}

/* Every span the operation needed flushed was flushed. */
static void check_flushes(struct model *m, const char *what)
{
	for (size_t k = 0; k < m->nr_need; k++) {
		struct span *sp = &m->need[k];

		if (!ts_flush_covers_range(&m->env.log, gfn_at(sp->start),
					   gfn_at(sp->start + sp->n)))
			model_fail(
				m, "%s: no TLB flush covers gfn %#llx..%#llx",
				what, (unsigned long long)gfn_at(sp->start),
				(unsigned long long)gfn_at(sp->start + sp->n));
	}
}

/*
 * host.mark_dirty was called exactly for the dirty leaves the operation
 * removed (and possibly for the leaves recovery replaced), once per GFN
 * that a removal must report.  A GFN recovery may report can be reported
 * twice in one call: recovery up to 1 GiB reports a dirty 4 KiB leaf when
 * its table becomes a 2 MiB leaf, which inherits the dirty bit, and then
 * that 2 MiB leaf when its table becomes a 1 GiB leaf.
 */
static void check_marks(struct model *m)
{
	struct ts_flush *log = &m->env.log;

	for (uint64_t k = 0; k < log->nr_marks; k++) {
		const struct ts_flush_range *r = &log->marks[k];

		for (tdp_gfn_t g = r->gfn; g < r->gfn + r->nr_pages; g++) {
			uint64_t i = g - WB;

			if (g < WB || g >= WB + NW ||
			    !(hh_bit_test(m->mark_must, i) ||
			      hh_bit_test(m->mark_may, i)))
				model_fail(m,
					   "mark_dirty(%#llx, %llu): gfn %#llx "
					   "was not a removed dirty leaf",
					   (unsigned long long)r->gfn,
					   (unsigned long long)r->nr_pages,
					   (unsigned long long)g);
			if (hh_bit_test(m->marked, i) &&
			    !hh_bit_test(m->mark_may, i))
				model_fail(m, "gfn %#llx marked dirty twice",
					   (unsigned long long)g);
			hh_bit_set(m->marked, i);
			m->seen.marked++;
		}
	}
	for (uint64_t w = 0; w < NW / 64; w++) {
		uint64_t missing = m->mark_must[w] & ~m->marked[w];

		if (missing)
			model_fail(m,
				   "removed dirty leaf at gfn %#llx was not "
				   "reported through mark_dirty",
				   (unsigned long long)gfn_at(
					   w * 64 +
					   (uint64_t)__builtin_ctzll(missing)));
	}
}

static void expect_no_flush(struct model *m, const char *what)
{
	if (ts_flush_count(&m->env.log))
		model_fail(m, "%s flushed the TLB", what);
}

/* ---- random arguments ----------------------------------------------------------- */

static uint64_t rnd(struct model *m, uint64_t n)
{
	return ts_rand_below(&m->rng, n);
}

/* A window index, favouring a few 2 MiB blocks at each 1 GiB's ends. */
static uint64_t pick_index(struct model *m)
{
	static const uint64_t hot[] = { 0, 1, 2, 3, 510, 511 };

	if (rnd(m, 10) < 7)
		return rnd(m, NB1) * P1G + hot[rnd(m, 6)] * P2M + rnd(m, P2M);
	return rnd(m, NW);
}

/* As pick_index(), preferring a GFN that is mapped. */
static uint64_t pick_mapped_index(struct model *m)
{
	uint64_t i = pick_index(m);

	for (int tries = 0; tries < 16 && !mlevel(m, i); tries++)
		i = pick_index(m);
	return i;
}

static void pick_range(struct model *m, uint64_t *s, uint64_t *e)
{
	uint64_t r = rnd(m, 10);

	if (r < 4) {
		*s = pick_index(m);
		*e = *s + 1 + rnd(m, 600);
	} else if (r < 7) {
		*s = pick_index(m) & ~(P2M - 1);
		*e = *s + (1 + rnd(m, 4)) * P2M + (rnd(m, 2) ? rnd(m, P2M) : 0);
	} else if (r < 9) {
		*s = rnd(m, NB1) * P1G;
		*e = *s + P1G;
	} else {
		*s = 0;
		*e = NW;
	}
	if (*e > NW)
		*e = NW;
}

static unsigned int pick_prot(struct model *m)
{
	static const unsigned int prots[] = {
		TDP_PROT_READ,
		HH_PROT_RW,
		TDP_PROT_READ | TDP_PROT_EXEC,
		TDP_PROT_RWX,
	};

	return prots[rnd(m, 4)];
}

/* ---- the operations ------------------------------------------------------------- */

static void do_map(struct model *m, uint64_t i, tdp_pfn_t pfn,
		   unsigned int prot, int max_level)
{
	int want, got;

	trace(m, "map gfn %#llx pfn %#llx prot %u max_level %d",
	      (unsigned long long)gfn_at(i), (unsigned long long)pfn, prot,
	      max_level);
	want = model_map(m, i, pfn, prot, max_level);
	m->seen.spurious += want == TDP_FAULT_SPURIOUS;
	m->seen.einval += want == -EINVAL;
	got = ts_map(m->env.vcpu, gfn_at(i), TDP_ALIAS_SHARED, pfn, prot,
		     max_level);
	EXPECT_EQ(m, got, want, "tdp_map");
}

static void op_map(struct model *m)
{
	uint64_t i = pick_index(m);
	tdp_pfn_t pfn = rnd(m, 8) ? pfn_of(gfn_at(i)) : gfn_at(i) + PFN_ALT;
	uint64_t r = rnd(m, 20);
	int max_level = r < 8 ? 1 : r < 15 ? 2 : 3;

	do_map(m, i, pfn, pick_prot(m), max_level);
}

/* Map a whole 2 MiB block with 4 KiB leaves of one kind. */
static void op_fill(struct model *m)
{
	uint64_t b = pick_index(m) & ~(P2M - 1);
	unsigned int prot = rnd(m, 2) ? HH_PROT_RW : pick_prot(m);
	bool misaligned = rnd(m, 6) == 0;

	for (uint64_t i = b; i < b + P2M; i++)
		do_map(m, i,
		       misaligned ? gfn_at(i) + PFN_ALT : pfn_of(gfn_at(i)),
		       prot, TDP_LEVEL_4K);
}

/*
 * A range zap unlinks every table whose whole span lies in [s, e) (window
 * indexes), with all below it.  The window lies inside one root entry's
 * span and never covers it whole.
 */
static void zap_covered_tables(struct model *m, uint64_t s, uint64_t e)
{
	for (uint64_t b1 = 0; b1 < NB1; b1++)
		if (m->l3[b1] == E_TABLE && b1 * P1G >= s && (b1 + 1) * P1G <= e) {
			m->l3[b1] = E_NONE;
			memset(&m->l2[b1 * 512], E_NONE, 512);
		}
	for (uint64_t b2 = 0; b2 < NB2; b2++)
		if (m->l2[b2] == E_TABLE && b2 * P2M >= s && (b2 + 1) * P2M <= e)
			m->l2[b2] = E_NONE;
}

static void op_zap(struct model *m)
{
	uint64_t s, e;

	pick_range(m, &s, &e);
	trace(m, "zap [%#llx, %#llx)", (unsigned long long)gfn_at(s),
	      (unsigned long long)gfn_at(e));
	for_each_leaf(m, s, e, zap_leaf, NULL);
	zap_covered_tables(m, s, e);
	EXPECT_EQ(m,
		  tdp_zap_range(m->mmu, gfn_at(s), gfn_at(e),
				rnd(m, 2) ? TDP_ALIAS_SHARED : TDP_ALIAS_BOTH),
		  0, "tdp_zap_range");
	check_flushes(m, "tdp_zap_range");
}

static void op_zap_all(struct model *m)
{
	trace(m, "zap all");
	for_each_leaf(m, 0, NW, zap_leaf, NULL);
	m->l3_table = false;
	memset(m->l3, E_NONE, sizeof(m->l3));
	memset(m->l2, E_NONE, sizeof(m->l2));
	EXPECT_EQ(m, tdp_zap_all(m->mmu), 0, "tdp_zap_all");
	check_flushes(m, "tdp_zap_all");
}

static void op_split(struct model *m)
{
	int target = 1 + (int)rnd(m, 2);
	uint64_t s, e;

	pick_range(m, &s, &e);
	trace(m, "split [%#llx, %#llx) to level %d",
	      (unsigned long long)gfn_at(s), (unsigned long long)gfn_at(e),
	      target);
	model_split(m, s, e, target);
	EXPECT_EQ(m,
		  tdp_split_huge_range(m->mmu, gfn_at(s), gfn_at(e), target,
				       TDP_ALIAS_SHARED),
		  0, "tdp_split_huge_range");
	expect_no_flush(m, "tdp_split_huge_range");
}

static void op_recover(struct model *m)
{
	int max_level = rnd(m, 2) ? TDP_LEVEL_2M : TDP_LEVEL_1G;
	uint64_t s, e;
	int want;

	pick_range(m, &s, &e);
	s &= ~(P2M - 1);
	e = (e + P2M - 1) & ~(P2M - 1);
	trace(m, "recover [%#llx, %#llx) up to level %d",
	      (unsigned long long)gfn_at(s), (unsigned long long)gfn_at(e),
	      max_level);
	want = model_recover(m, s, e, max_level);
	m->seen.recovered += (uint64_t)want;
	EXPECT_EQ(m,
		  tdp_recover_huge_pages(m->mmu, gfn_at(s), gfn_at(e),
					 max_level, TDP_ALIAS_SHARED),
		  want, "tdp_recover_huge_pages");
	if (!want)
		expect_no_flush(m, "tdp_recover_huge_pages with nothing to do");
	check_flushes(m, "tdp_recover_huge_pages");
}

static void op_wrprot(struct model *m)
{
	struct change_arg c = { .need = M_W, .clear = M_W, .flush = true };
	uint64_t s, e;

	pick_range(m, &s, &e);
	trace(m, "wrprot [%#llx, %#llx)", (unsigned long long)gfn_at(s),
	      (unsigned long long)gfn_at(e));
	for_each_leaf(m, s, e, change_if, &c);
	m->seen.wrprotected += (uint64_t)c.count;
	EXPECT_EQ(m,
		  tdp_wrprot_range(m->mmu, gfn_at(s), gfn_at(e),
				   TDP_ALIAS_SHARED),
		  c.count, "tdp_wrprot_range");
	if (!ts_flush_count(&m->env.log))
		model_fail(m, "tdp_wrprot_range did not flush");
	check_flushes(m, "tdp_wrprot_range");
}

static void op_fast_fix(struct model *m)
{
	for (int k = 0; k < 4; k++) {
		uint64_t i = pick_mapped_index(m);
		unsigned int prot = pick_prot(m);
		int level = mlevel(m, i), want = 0;

		trace(m, "fast fix gfn %#llx prot %u",
		      (unsigned long long)gfn_at(i), prot);
		if (level) {
			uint64_t lb = i & ~(pages(level) - 1);
			unsigned int have = attr_prot(m->attr[lb]);

			if ((have & prot) == prot) {
				want = 1;
			} else if ((prot & ~have) == TDP_PROT_WRITE &&
				   (m->attr[lb] & M_MW)) {
				change_leaf(m, lb, level, 0, M_W);
				m->seen.fixed_fast++;
				want = 1;
			}
		}
		EXPECT_EQ(m, tdp_fast_fix(m->mmu, gfn_at(i), prot), want,
			  "tdp_fast_fix");
	}
	expect_no_flush(m, "tdp_fast_fix");
}

static void op_clear_dirty(struct model *m)
{
	struct change_arg c = { .need = M_D, .clear = M_D, .flush = true };
	uint64_t s, e;

	pick_range(m, &s, &e);
	trace(m, "clear dirty [%#llx, %#llx)", (unsigned long long)gfn_at(s),
	      (unsigned long long)gfn_at(e));
	for_each_leaf(m, s, e, change_if, &c);
	EXPECT_EQ(m,
		  tdp_clear_dirty_range(m->mmu, gfn_at(s), gfn_at(e),
					TDP_ALIAS_SHARED),
		  c.count, "tdp_clear_dirty_range");
	check_flushes(m, "tdp_clear_dirty_range");
}

static void op_clear_masked(struct model *m)
{
	uint64_t base = pick_mapped_index(m) & ~63ULL;
	uint64_t mask = rnd(m, 4) ? ts_rand(&m->rng) : ~0ULL;
	bool wrprot = rnd(m, 2);
	uint8_t bit = wrprot ? M_W : M_D;
	int want = 0;

	trace(m, "clear masked base %#llx mask %#llx wrprot %d",
	      (unsigned long long)gfn_at(base), (unsigned long long)mask,
	      wrprot);
	for (uint64_t k = 0; k < 64; k++) {
		uint64_t i = base + k;

		if (!((mask >> k) & 1) || mlevel(m, i) != TDP_LEVEL_4K ||
		    !(m->attr[i] & bit))
			continue;
		m->attr[i] &= (uint8_t)~bit;
		need_flush(m, i, 1);
		want++;
	}
	EXPECT_EQ(m,
		  tdp_clear_dirty_masked(m->mmu, gfn_at(base), mask, wrprot,
					 TDP_ALIAS_SHARED),
		  want, "tdp_clear_dirty_masked");
	check_flushes(m, "tdp_clear_dirty_masked");
}

/* The start of the leaf containing @i, or @i. */
static uint64_t leaf_start(const struct model *m, uint64_t i)
{
	int level = mlevel(m, i);

	return level ? i & ~(pages(level) - 1) : i;
}

static void op_harvest(struct model *m)
{
	struct harvest_arg h;
	uint64_t s, e, words;
	int64_t got;

	/* Whole leaves only (see test_harvest_partial_huge_leaf). */
	pick_range(m, &s, &e);
	s = leaf_start(m, s);
	if (mlevel(m, e - 1))
		e = leaf_start(m, e - 1) + pages(mlevel(m, e - 1));
	words = (e - s + 63) / 64;
	trace(m, "harvest [%#llx, %#llx)", (unsigned long long)gfn_at(s),
	      (unsigned long long)gfn_at(e));
	memset(m->bm, 0, words * sizeof(uint64_t));
	memset(m->expect_bm, 0, words * sizeof(uint64_t));
	h = (struct harvest_arg){ .s = s, .e = e };
	for_each_leaf(m, s, e, harvest_leaf, &h);
	m->seen.harvested += (uint64_t)h.count;
	got = tdp_harvest_dirty(m->mmu, gfn_at(s), gfn_at(e), m->bm,
				TDP_ALIAS_SHARED);
	EXPECT_EQ(m, got, h.count, "tdp_harvest_dirty");
	for (uint64_t k = 0; k < words; k++) {
		if (m->bm[k] != m->expect_bm[k])
			model_fail(
				m,
				"harvest bitmap word %llu (gfn %#llx): %#llx, "
				"model %#llx",
				(unsigned long long)k,
				(unsigned long long)gfn_at(s + k * 64),
				(unsigned long long)m->bm[k],
				(unsigned long long)m->expect_bm[k]);
	}
	check_flushes(m, "tdp_harvest_dirty");
}

static void op_age(struct model *m)
{
	bool clear = rnd(m, 2);
	struct change_arg c = { .need = M_A, .clear = clear ? M_A : 0 };
	uint64_t s, e;

	pick_range(m, &s, &e);
	trace(m, "age [%#llx, %#llx) clear %d", (unsigned long long)gfn_at(s),
	      (unsigned long long)gfn_at(e), clear);
	for_each_leaf(m, s, e, change_if, &c);
	m->seen.young += (uint64_t)c.count;
	EXPECT_EQ(m,
		  tdp_age_range(m->mmu, gfn_at(s), gfn_at(e), clear,
				TDP_ALIAS_SHARED),
		  c.count, "tdp_age_range");
	expect_no_flush(m, "tdp_age_range");
}

/* The simulated CPU: reads and writes set A and D as hardware does. */
static void op_hw(struct model *m)
{
	for (int k = 0; k < 8; k++) {
		uint64_t i = pick_mapped_index(m);
		bool write = rnd(m, 4) != 0;
		int level = mlevel(m, i);
		enum ts_hw_result want;

		trace(m, "cpu %s gfn %#llx", write ? "write" : "read",
		      (unsigned long long)gfn_at(i));
		if (!level) {
			want = TS_HW_NOT_PRESENT;
		} else {
			uint64_t lb = i & ~(pages(level) - 1);

			if (write && !(m->attr[lb] & M_W)) {
				want = TS_HW_WRPROT;
			} else {
				change_leaf(m, lb, level, 0,
					    write ? M_A | M_D : M_A);
				want = write ? TS_HW_WRITTEN : TS_HW_READ;
				m->seen.written += write;
			}
		}
		EXPECT_EQ(m, hh_hw_access(m->mmu, gfn_at(i), write), want,
			  "cpu access");
	}
}

struct op_kind {
	void (*fn)(struct model *m);
	unsigned int weight;
};

static const struct op_kind ops[] = {
	{ op_map, 22 },	       { op_fill, 3 },	       { op_zap, 8 },
	{ op_zap_all, 2 },     { op_split, 10 },       { op_recover, 10 },
	{ op_wrprot, 8 },      { op_fast_fix, 8 },     { op_harvest, 7 },
	{ op_clear_dirty, 4 }, { op_clear_masked, 4 }, { op_age, 5 },
	{ op_hw, 10 },
};

static void run_model(uint64_t seed, unsigned int flags, unsigned long nr_ops)
{
	unsigned int total = 0;
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->seed = seed;
	m->rng = seed;
	m->attr = calloc(NW, 1);
	m->pfn = calloc(NW, sizeof(uint64_t));
	m->bm = calloc(NW / 64, sizeof(uint64_t));
	m->expect_bm = calloc(NW / 64, sizeof(uint64_t));
	m->mark_must = calloc(NW / 64, sizeof(uint64_t));
	m->mark_may = calloc(NW / 64, sizeof(uint64_t));
	m->marked = calloc(NW / 64, sizeof(uint64_t));
	assert_true(m->attr && m->pfn && m->bm && m->expect_bm &&
		    m->mark_must && m->mark_may && m->marked);
	ts_env_init_ok(&m->env, &(struct ts_env_opts){ .flags = flags,
						       .mark_dirty = true,
						       .record = true });
	m->mmu = m->env.mmu;
	m->fmt = tdp_mmu_format(m->mmu);

	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		total += ops[k].weight;
	for (m->op = 0; m->op < nr_ops; m->op++) {
		uint64_t r = rnd(m, total);
		size_t k = 0;

		while (r >= ops[k].weight)
			r -= ops[k++].weight;
		m->nr_need = 0;
		ts_flush_reset(&m->env.log);
		memset(m->mark_must, 0, NW / 8);
		memset(m->mark_may, 0, NW / 8);
		memset(m->marked, 0, NW / 8);
		ops[k].fn(m);
		check_marks(m);
		verify(m);
	}
	assert_int_equal(hh_stats_match_tree(m->mmu), 0);
	fprintf(stderr,
		"seed %llu: %lu ops; faults fixed 4K/2M/1G %llu/%llu/%llu, "
		"spurious %llu, refused %llu; split 2M/1G %llu/%llu; recovered "
		"%llu; write-protected %llu, fast-fixed %llu; harvested %llu "
		"GFNs; young %llu; cpu writes %llu; marked dirty %llu GFNs\n",
		(unsigned long long)seed, nr_ops,
		(unsigned long long)m->seen.fixed[1],
		(unsigned long long)m->seen.fixed[2],
		(unsigned long long)m->seen.fixed[3],
		(unsigned long long)m->seen.spurious,
		(unsigned long long)m->seen.einval,
		(unsigned long long)m->seen.splits[2],
		(unsigned long long)m->seen.splits[3],
		(unsigned long long)m->seen.recovered,
		(unsigned long long)m->seen.wrprotected,
		(unsigned long long)m->seen.fixed_fast,
		(unsigned long long)m->seen.harvested,
		(unsigned long long)m->seen.young,
		(unsigned long long)m->seen.written,
		(unsigned long long)m->seen.marked);

	ts_env_fini_ok(&m->env);
	free(m->attr);
	free(m->pfn);
	free(m->bm);
	free(m->expect_bm);
	free(m->mark_must);
	free(m->mark_may);
	free(m->marked);
	free(m->need);
	free(m);
}

static uint64_t base_seed(void)
{
	const char *s = getenv("TDP_TEST_SEED");

	return s ? strtoull(s, NULL, 0) : 0;
}

static void test_model(void **state)
{
	unsigned long nr_ops = ts_quick() ? 400 : 2500;
	uint64_t seed = base_seed();

	(void)state;
	if (seed) {
		run_model(seed, 0, nr_ops);
		return;
	}
	for (uint64_t s = 1; s <= 4; s++)
		run_model(s, 0, nr_ops);
}

/* Every long walk yields at every step: the restart rules. */
static void test_model_force_yield(void **state)
{
	unsigned long nr_ops = ts_quick() ? 150 : 800;
	uint64_t seed = base_seed();

	(void)state;
	run_model(seed ? seed : 101, TDP_MMU_FORCE_YIELD, nr_ops);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_model_force_yield),
	};

	return TS_RUN_GROUP("tests", tests);
}
