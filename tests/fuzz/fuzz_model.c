/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reference model of the fuzz harness (see fuzz_model.h).
 *
 * Leaves are kept as the exact SPTE value the engine must hold, built
 * from the public format masks by this file: a present leaf is
 * mmu_present | suppress_ve | memtype_wb | accessed | PFN | page size
 * (above 4 KiB) | the rights, with the host- and MMU-writable software
 * bits next to the write bit; faults, write-protection, dirty logging,
 * aging, splitting and recovery change it bit by bit as documented.
 */
#include "fuzz_model.h"

#include <stdlib.h>
#include <string.h>

#define NPTE TDP_SPTES_PER_TABLE
/* Tables a vCPU keeps ready (one per level of a walk). */
#define CACHE_MIN (TDP_MAX_LEVEL + 1)

static uint64_t pages(int level)
{
	return tdp_level_pages(level);
}

static unsigned int idx(tdp_gfn_t gfn, int level)
{
	return (unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
	       (NPTE - 1);
}

static tdp_gfn_t down(tdp_gfn_t gfn, int level)
{
	return gfn & ~(pages(level) - 1);
}

static bool overlaps(tdp_gfn_t a, tdp_gfn_t a_end, tdp_gfn_t b, tdp_gfn_t b_end)
{
	return a < b_end && b < a_end;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		abort();
	return p;
}

/* ---- SPTE values ----------------------------------------------------------- */

static tdp_spte_t pfn_bits(const struct model *m, tdp_pfn_t pfn)
{
	return (pfn << TDP_PAGE_SHIFT) & m->fmt->pfn_mask;
}

static tdp_pfn_t val_pfn(const struct model *m, tdp_spte_t v)
{
	return (v & m->fmt->pfn_mask) >> TDP_PAGE_SHIFT;
}

/* The bits a fault with @prot grants (also what an upgrade ORs in). */
static tdp_spte_t rights(const struct model *m, int level, unsigned int prot)
{
	const struct tdp_spte_format *f = m->fmt;
	tdp_spte_t v =
		f->mmu_present | f->suppress_ve | f->memtype_wb | f->accessed;

	if (level > TDP_LEVEL_4K)
		v |= f->leaf_size;
	if (prot & TDP_PROT_READ)
		v |= f->readable;
	if (prot & TDP_PROT_WRITE)
		v |= f->writable | f->host_writable | f->mmu_writable;
	if (prot & TDP_PROT_EXEC)
		v |= f->executable;
	return v;
}

static unsigned int val_prot(const struct model *m, tdp_spte_t v)
{
	return ((v & m->fmt->readable) ? TDP_PROT_READ : 0) |
	       ((v & m->fmt->writable) ? TDP_PROT_WRITE : 0) |
	       ((v & m->fmt->executable) ? TDP_PROT_EXEC : 0);
}

/* Spread the low bits of @v over the set bits of @mask, low to high. */
static uint64_t spread(uint64_t v, uint64_t mask)
{
	uint64_t out = 0;

	for (int bit = 0; bit < 64; bit++) {
		if (!(mask & (1ULL << bit)))
			continue;
		if (v & 1)
			out |= 1ULL << bit;
		v >>= 1;
	}
	return out;
}

static tdp_spte_t mmio_value(const struct model *m, tdp_gfn_t gfn, uint32_t gen)
{
	const struct tdp_spte_format *f = m->fmt;
	int low = __builtin_popcountll(f->mmio_gen_low);

	gen &= TDP_MMIO_GEN_MASK;
	return f->mmio_value | pfn_bits(m, gfn) | spread(gen, f->mmio_gen_low) |
	       spread(gen >> low, f->mmio_gen_high);
}

/* ---- tables and roots ------------------------------------------------------- */

static struct m_table *table_new(void)
{
	struct m_table *t = xcalloc(1, sizeof(struct m_table));

	t->changed = true;
	return t;
}

static void table_free(struct m_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < NPTE; i++)
		table_free(t->child[i]);
	free(t);
}

tdp_gfn_t model_bits(const struct model *m, int type)
{
	return type == TDP_ROOT_DIRECT ? m->direct_bits : 0;
}

static int total_refs(const struct m_root *r)
{
	return (r->mmu_ref ? 1 : 0) + r->vcpu_refs + r->get_refs;
}

/* A reference was dropped: the last one frees the root. */
static void root_unref(struct model *m, struct m_root *r)
{
	if (total_refs(r))
		return;
	for (struct m_root **pp = &m->roots; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	table_free(r->table);
	free(r);
}

static struct m_root *root_install(struct model *m, int type)
{
	struct m_root *r = xcalloc(1, sizeof(*r));

	r->type = type;
	r->valid = true;
	r->mmu_ref = true;
	r->table = table_new();
	r->next = m->roots;
	m->roots = r;
	m->valid[type] = r;
	m->ctr.roots_allocated++;
	return r;
}

void model_init(struct model *m, int root_level, tdp_gfn_t direct_bits,
		bool has_mirror, size_t ext_size)
{
	memset(m, 0, sizeof(*m));
	m->root_level = root_level;
	m->direct_bits = direct_bits;
	m->gfn_limit = direct_bits ? direct_bits
				   : 1ULL << (root_level * TDP_LEVEL_BITS);
	m->has_mirror = has_mirror;
	m->ext_size = ext_size;
	m->fmt = &tdp_spte_format_ept;
	m->alloc_countdown = -1;
	/* Creation installs the direct root, then the mirror root. */
	root_install(m, TDP_ROOT_DIRECT);
	if (has_mirror)
		root_install(m, TDP_ROOT_MIRROR);
}

void model_fini(struct model *m)
{
	while (m->roots) {
		struct m_root *r = m->roots;

		m->roots = r->next;
		table_free(r->table);
		free(r);
	}
}

int model_nr_roots(const struct model *m)
{
	int n = 0;

	for (const struct m_root *r = m->roots; r; r = r->next)
		n++;
	return n;
}

static void count_table(const struct m_table *t, int type, int level,
			uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1],
			uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1])
{
	const unsigned char *k = t->kind, *next;
	uint16_t n = 0; /* at most NPTE: narrow lanes vectorize wider */

	/* Branch-free (vector code): counted after every operation. */
	for (int i = 0; i < NPTE; i++)
		n += t->kind[i] == M_LEAF;
	leaves[type][level] += n;
	while ((next = memchr(k, M_TABLE, t->kind + NPTE - k))) {
		tables[type][level - 1]++;
		count_table(t->child[next - t->kind], type, level - 1, tables,
			    leaves);
		k = next + 1;
	}
}

void model_count(const struct model *m,
		 uint64_t tables[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1],
		 uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1])
{
	memset(tables, 0,
	       sizeof(uint64_t) * TDP_NR_ROOT_TYPES * (TDP_MAX_LEVEL + 1));
	memset(leaves, 0,
	       sizeof(uint64_t) * TDP_NR_ROOT_TYPES * (TDP_MAX_LEVEL + 1));
	for (const struct m_root *r = m->roots; r; r = r->next) {
		tables[r->type][m->root_level]++;
		count_table(r->table, r->type, m->root_level, tables, leaves);
	}
}

/* ---- the allocator and the backend ------------------------------------------- */

/* One allocation of the port: false when the injected failure fires. */
static bool alloc_ok(struct model *m)
{
	if (m->alloc_countdown < 0)
		return true;
	if (m->alloc_countdown == 0) {
		m->alloc_countdown = -1;
		return false;
	}
	m->alloc_countdown--;
	return true;
}

/* A map callback: 0, or the one-shot failure armed for it. */
static int backend_map(struct model *m, bool link)
{
	int *pending = link ? &m->fail_link : &m->fail_set;
	int err = *pending;

	*pending = 0;
	if (err == -EBUSY)
		m->ctr.backend_busy++;
	else if (err)
		m->ctr.backend_errors++;
	return err;
}

/* remove_leaf: false (the MMU dies) when a failure is armed. */
static bool backend_remove(struct model *m)
{
	if (m->fail_remove) {
		m->fail_remove = false;
		m->dead = true;
		return false;
	}
	return true;
}

/* ---- vCPU ----------------------------------------------------------------------- */

int model_vcpu_create(struct model *m)
{
	if (m->dead)
		return -EIO;
	if (!alloc_ok(m))
		return -ENOMEM;
	memset(&m->vcpu, 0, sizeof(m->vcpu));
	m->vcpu.exists = true;
	return 0;
}

void model_vcpu_destroy(struct model *m)
{
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		struct m_root *r = m->vcpu.root[t];

		if (r) {
			r->vcpu_refs--;
			root_unref(m, r);
		}
	}
	memset(&m->vcpu, 0, sizeof(m->vcpu));
}

/* Tables first (descriptor, then page), then backend pages. */
int model_vcpu_topup(struct model *m)
{
	while (m->vcpu.cache_tables < CACHE_MIN) {
		if (!alloc_ok(m) || !alloc_ok(m))
			return -ENOMEM;
		m->vcpu.cache_tables++;
	}
	if (!m->has_mirror || !m->ext_size)
		return 0;
	while (m->vcpu.cache_ext < CACHE_MIN) {
		if (!alloc_ok(m))
			return -ENOMEM;
		m->vcpu.cache_ext++;
	}
	return 0;
}

/* The valid root of @type with one more reference of @who; allocated
 * (root, descriptor, page) when there is none. */
static int get_valid_root(struct model *m, int type, struct m_root **out)
{
	if (!m->valid[type]) {
		if (!alloc_ok(m) || !alloc_ok(m) || !alloc_ok(m))
			return -ENOMEM;
		if (m->dead)
			return -EIO;
		root_install(m, type);
	}
	*out = m->valid[type];
	return 0;
}

static int vcpu_load_root(struct model *m, int type)
{
	struct m_root *old = m->vcpu.root[type], *r;
	int ret;

	if (old && old->valid)
		return 0;
	ret = get_valid_root(m, type, &r);
	if (ret)
		return ret;
	r->vcpu_refs++;
	m->vcpu.root[type] = r;
	if (old) {
		old->vcpu_refs--;
		root_unref(m, old);
	}
	return 0;
}

int model_vcpu_load_root(struct model *m, enum tdp_alias alias)
{
	if (alias != TDP_ALIAS_SHARED)
		return -EINVAL;
	if (m->dead)
		return -EIO;
	return vcpu_load_root(m, TDP_ROOT_DIRECT);
}

int model_root_get(struct model *m, int type, struct m_root **out)
{
	int ret;

	if (type != TDP_ROOT_DIRECT && type != TDP_ROOT_MIRROR)
		return -EINVAL;
	if (type == TDP_ROOT_MIRROR && !m->has_mirror)
		return -EINVAL;
	if (m->dead)
		return -EIO;
	ret = get_valid_root(m, type, out);
	if (!ret)
		(*out)->get_refs++;
	return ret;
}

void model_root_put(struct model *m, struct m_root *r)
{
	r->get_refs--;
	root_unref(m, r);
}

/* ---- faults ------------------------------------------------------------------------ */

static int goal_level(tdp_gfn_t gfn, tdp_pfn_t pfn, int max_level)
{
	int level = max_level;

	while (level > TDP_LEVEL_4K && ((gfn ^ pfn) & (pages(level) - 1)))
		level--;
	return level;
}

static int fault_type(const struct model *m, tdp_gfn_t fault_gfn)
{
	return m->has_mirror && !(fault_gfn & m->direct_bits) ? TDP_ROOT_MIRROR
							      : TDP_ROOT_DIRECT;
}

int model_map_begin(struct model *m, const struct m_fault *f, bool *may_retry)
{
	tdp_gfn_t gfn = f->fault_gfn & ~m->direct_bits;
	tdp_gfn_t start, end, lo = ~0ULL, hi = 0;
	int type = fault_type(m, f->fault_gfn), span, ret;

	*may_retry = false;
	if (gfn >= m->gfn_limit ||
	    (f->fault_gfn & ~(m->direct_bits | (m->gfn_limit - 1))))
		return -EINVAL;
	if (!(f->prot & TDP_PROT_READ) || (f->prot & ~TDP_PROT_RWX))
		return -EINVAL;
	if (f->max_level < TDP_LEVEL_4K || f->max_level > TDP_LEVEL_1G)
		return -EINVAL;
	if (f->mmio && m->has_mirror && !(f->fault_gfn & m->direct_bits))
		return -EINVAL;
	if (m->dead)
		return -EIO;
	ret = model_vcpu_topup(m);
	if (!ret)
		ret = vcpu_load_root(m, type);
	if (ret)
		return ret;

	span = f->mmio ? TDP_LEVEL_4K : goal_level(gfn, f->pfn, f->max_level);
	start = down(gfn, span);
	end = start + pages(span);
	for (int i = 0; i < m->nr_invals; i++) {
		if (overlaps(start, end, m->inval[i].start, m->inval[i].end)) {
			m->ctr.faults_retried++;
			return TDP_FAULT_RETRY;
		}
		lo = m->inval[i].start < lo ? m->inval[i].start : lo;
		hi = m->inval[i].end > hi ? m->inval[i].end : hi;
	}
	if (f->seq != m->seq) {
		m->ctr.faults_retried++;
		return TDP_FAULT_RETRY;
	}
	/* Inside the span around the invalidations, outside each of them. */
	*may_retry = m->nr_invals && overlaps(start, end, lo, hi);
	return M_WALK;
}

void model_map_retried(struct model *m)
{
	m->ctr.faults_retried++;
}

/* Replace the huge leaf at @t[@i] (level @level) by a full table. */
static void split_entry(struct model *m, struct m_table *t, int i, int level)
{
	struct m_table *c = table_new();
	tdp_spte_t huge = t->val[i];

	for (int k = 0; k < NPTE; k++) {
		tdp_spte_t v =
			(huge & ~m->fmt->pfn_mask) |
			pfn_bits(m, val_pfn(m, huge) +
					    (tdp_pfn_t)k * pages(level - 1));

		if (level - 1 == TDP_LEVEL_4K)
			v &= ~m->fmt->leaf_size;
		c->kind[k] = M_LEAF;
		c->val[k] = v;
	}
	t->kind[i] = M_TABLE;
	t->val[i] = 0;
	t->child[i] = c;
	t->changed = true;
}

static int map_result(struct model *m, int ret)
{
	if (ret == TDP_FAULT_FIXED)
		m->ctr.faults_fixed++;
	else if (ret == TDP_FAULT_SPURIOUS)
		m->ctr.faults_spurious++;
	else if (ret == TDP_FAULT_RETRY)
		m->ctr.faults_retried++;
	return ret;
}

static int backend_result(int err)
{
	return err == -EBUSY ? TDP_FAULT_RETRY : err;
}

/* The leaf, or MMIO SPTE, at the goal level; @t[@i] is the entry. */
static int install(struct model *m, const struct m_fault *f, int type,
		   struct m_table *t, int i, int level, tdp_gfn_t entry_gfn,
		   tdp_gfn_t tree_gfn, tdp_gfn_t gfn)
{
	bool mirror = type == TDP_ROOT_MIRROR;
	tdp_spte_t old = t->val[i];
	int err;

	t->changed = true;
	if (f->mmio) {
		if (t->kind[i] == M_MMIO &&
		    old == mmio_value(m, gfn, m->mmio_gen))
			return TDP_FAULT_SPURIOUS;
		if (t->kind[i] == M_LEAF)
			return -EINVAL;
		t->kind[i] = M_MMIO;
		t->val[i] = mmio_value(m, gfn, m->mmio_gen);
		return TDP_FAULT_FIXED;
	}
	if (t->kind[i] == M_LEAF) {
		unsigned int have = val_prot(m, old);

		if (val_pfn(m, old) + (tree_gfn - entry_gfn) != f->pfn)
			return -EINVAL;
		if (mirror || (have & f->prot) == f->prot)
			return TDP_FAULT_SPURIOUS;
		t->val[i] = old | rights(m, level, f->prot);
		return TDP_FAULT_FIXED;
	}
	if (mirror) {
		err = backend_map(m, false);
		if (err)
			return backend_result(err);
	}
	t->kind[i] = M_LEAF;
	t->val[i] = rights(m, level, mirror ? TDP_PROT_RWX : f->prot) |
		    pfn_bits(m, f->pfn & ~(pages(level) - 1));
	return TDP_FAULT_FIXED;
}

int model_map_walk(struct model *m, const struct m_fault *f)
{
	tdp_gfn_t gfn = f->fault_gfn & ~m->direct_bits;
	int type = fault_type(m, f->fault_gfn);
	bool mirror = type == TDP_ROOT_MIRROR;
	tdp_gfn_t tree_gfn = gfn + model_bits(m, type);
	int goal =
		f->mmio ? TDP_LEVEL_4K : goal_level(gfn, f->pfn, f->max_level);
	struct m_table *t = m->vcpu.root[type]->table;

	for (int level = m->root_level;; level--) {
		int i = (int)idx(tree_gfn, level);
		tdp_gfn_t entry_gfn = down(tree_gfn, level);

		if (t->kind[i] == M_TABLE) {
			/* Smaller mappings exist below: map lower. */
			if (level == goal)
				goal--;
			t = t->child[i];
			continue;
		}
		if (level == goal)
			return map_result(m, install(m, f, type, t, i, level,
						     entry_gfn, tree_gfn, gfn));
		if (t->kind[i] == M_LEAF) {
			/* A huge leaf above the goal. */
			if (val_pfn(m, t->val[i]) + (tree_gfn - entry_gfn) !=
				    f->pfn ||
			    f->mmio)
				return map_result(m, -EINVAL);
			if (mirror && !m->resizes)
				return map_result(m, TDP_FAULT_SPURIOUS);
			/* Split (demote) into a table from the cache. */
			m->vcpu.cache_tables--;
			if (mirror && m->ext_size)
				m->vcpu.cache_ext--;
			split_entry(m, t, i, level);
			if (mirror) {
				m->ctr.demotes++;
				m->ctr.fault_demotes++;
			}
		} else {
			/* Link a table from the cache. */
			if (mirror) {
				int err = backend_map(m, true);

				if (err)
					return map_result(m,
							  backend_result(err));
			}
			m->vcpu.cache_tables--;
			if (mirror && m->ext_size)
				m->vcpu.cache_ext--;
			t->kind[i] = M_TABLE;
			t->val[i] = 0;
			t->child[i] = table_new();
			t->changed = true;
		}
		t = t->child[i];
	}
}

/* ---- zaps ----------------------------------------------------------------------- */

static unsigned int alias_types(const struct model *m, unsigned int alias)
{
	unsigned int types = 0;

	if (alias & TDP_ALIAS_SHARED)
		types |= 1U << TDP_ROOT_DIRECT;
	if ((alias & TDP_ALIAS_PRIVATE) && m->has_mirror)
		types |= 1U << TDP_ROOT_MIRROR;
	return types;
}

static void zap_everything(struct model *m, struct m_table *t);

/* Entry @i of @t goes with everything below it, counted. */
static void zap_entry(struct model *m, struct m_table *t, int i)
{
	if (t->kind[i] == M_LEAF) {
		m->ctr.zapped_leaves++;
	} else if (t->kind[i] == M_TABLE) {
		zap_everything(m, t->child[i]);
		m->ctr.zapped_tables++;
		table_free(t->child[i]);
		t->child[i] = NULL;
	}
	t->kind[i] = M_NONE;
	t->val[i] = 0;
	t->changed = true;
}

/* Everything below table @t goes: leaves and tables, counted. */
static void zap_everything(struct model *m, struct m_table *t)
{
	t->changed = true;
	for (int i = 0; i < NPTE; i++)
		zap_entry(m, t, i);
}

/*
 * Zap the present leaves of table @t (entries at @level, first GFN
 * @base) that overlap [start, end).  Mirror tables stay; a direct table
 * whose whole span lies in the range is unlinked, with all below it.
 * False when a mirror removal failed (the MMU is dead and the zap stops).
 */
static bool zap_leaves(struct model *m, int type, struct m_table *t, int level,
		       tdp_gfn_t base, tdp_gfn_t start, tdp_gfn_t end)
{
	for (int i = 0; i < NPTE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * pages(level);

		if (!overlaps(g, g + pages(level), start, end))
			continue;
		if (t->kind[i] == M_TABLE && type == TDP_ROOT_DIRECT &&
		    g >= start && g + pages(level) <= end) {
			zap_entry(m, t, i);
		} else if (t->kind[i] == M_TABLE) {
			if (!zap_leaves(m, type, t->child[i], level - 1, g,
					start, end))
				return false;
		} else if (t->kind[i] == M_LEAF) {
			if (type == TDP_ROOT_MIRROR && !backend_remove(m))
				return false;
			t->kind[i] = M_NONE;
			t->val[i] = 0;
			t->changed = true;
			m->ctr.zapped_leaves++;
		}
	}
	return true;
}

/*
 * Demote the private huge leaves covering @gfn that the zap [start, end)
 * covers only partly, top down, each with a table allocated first
 * (descriptor, page, backend page): false on an allocation failure.
 */
static bool demote_end(struct model *m, tdp_gfn_t gfn, tdp_gfn_t start,
		       tdp_gfn_t end)
{
	struct m_table *t = m->valid[TDP_ROOT_MIRROR]->table;

	for (int level = m->root_level; t && level > TDP_LEVEL_4K; level--) {
		int i = (int)idx(gfn, level);
		tdp_gfn_t g = down(gfn, level);

		if (t->kind[i] == M_LEAF &&
		    (g < start || g + pages(level) > end)) {
			if (!alloc_ok(m) || !alloc_ok(m) ||
			    (m->ext_size && !alloc_ok(m)))
				return false;
			split_entry(m, t, i, level);
			m->ctr.demotes++;
		}
		t = t->kind[i] == M_TABLE ? t->child[i] : NULL;
	}
	return true;
}

int model_zap_range(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		    unsigned int alias)
{
	unsigned int types;

	if (start >= end || end > m->gfn_limit || !alias ||
	    (alias & ~TDP_ALIAS_BOTH))
		return -EINVAL;
	if (m->dead)
		return -EIO;
	types = alias_types(m, alias);
	/* Both ends first, so a failure leaves every mapping in place. */
	if (m->resizes && (types & (1U << TDP_ROOT_MIRROR)) &&
	    m->valid[TDP_ROOT_MIRROR] &&
	    (!demote_end(m, start, start, end) ||
	     !demote_end(m, end - 1, start, end)))
		return -ENOMEM;
	for (struct m_root *r = m->roots; r; r = r->next) {
		tdp_gfn_t bits = model_bits(m, r->type);

		if (!(types & (1U << r->type)))
			continue;
		if (!zap_leaves(m, r->type, r->table, m->root_level, 0,
				start + bits, end + bits))
			return -EIO;
	}
	return 0;
}

int model_zap_all(struct model *m)
{
	if (m->dead)
		return -EIO;
	for (struct m_root *r = m->roots; r; r = r->next)
		if (r->type == TDP_ROOT_DIRECT)
			zap_everything(m, r->table);
	return 0;
}

/* ---- invalidations and roots ------------------------------------------------ */

int model_invalidate_begin(struct model *m, tdp_gfn_t start, tdp_gfn_t end)
{
	if (start >= end || end > m->gfn_limit)
		return -EINVAL;
	if (!alloc_ok(m))
		return -ENOMEM;
	if (m->dead)
		return -EIO;
	if (m->nr_invals == M_MAX_INVALS)
		abort(); /* the harness never begins this many */
	m->inval[m->nr_invals].start = start;
	m->inval[m->nr_invals].end = end;
	m->nr_invals++;
	return 0;
}

int model_invalidate_end(struct model *m, tdp_gfn_t start, tdp_gfn_t end)
{
	if (start >= end || end > m->gfn_limit)
		return -EINVAL;
	if (m->dead)
		return -EIO;
	for (int i = 0; i < m->nr_invals; i++) {
		if (m->inval[i].start == start && m->inval[i].end == end) {
			m->inval[i] = m->inval[--m->nr_invals];
			m->seq++;
			return 0;
		}
	}
	return -EINVAL;
}

int model_invalidate_roots(struct model *m, unsigned int alias)
{
	unsigned int types;

	if (!alias || (alias & ~TDP_ALIAS_BOTH))
		return -EINVAL;
	if ((alias & TDP_ALIAS_PRIVATE) && m->has_mirror)
		return -EOPNOTSUPP;
	if (m->dead)
		return -EIO;
	types = alias_types(m, alias);
	for (struct m_root *r = m->roots; r; r = r->next) {
		if (!(types & (1U << r->type)) || !r->valid)
			continue;
		r->valid = false;
		r->scheduled = true;
		if (m->valid[r->type] == r)
			m->valid[r->type] = NULL;
	}
	return 0;
}

int model_zap_invalidated_roots(struct model *m)
{
	struct m_root *r, *next;

	if (m->dead)
		return -EIO;
	for (r = m->roots; r; r = next) {
		next = r->next;
		if (!r->scheduled)
			continue;
		r->scheduled = false;
		zap_everything(m, r->table);
		r->mmu_ref = false;
		root_unref(m, r);
	}
	return 0;
}

int model_set_mmio_gen(struct model *m, uint32_t gen)
{
	if (m->dead)
		return -EIO;
	m->mmio_gen = gen & TDP_MMIO_GEN_MASK;
	return 0;
}

/* ---- lookups ------------------------------------------------------------------ */

static tdp_spte_t entry_value(const struct model *m, const struct m_table *t,
			      int i)
{
	return t->kind[i] == M_NONE ? m->fmt->nonpresent : t->val[i];
}

int model_lookup(struct model *m, tdp_gfn_t gfn, unsigned int alias,
		 tdp_spte_t *spte, int *level)
{
	const struct m_root *r;
	const struct m_table *t;
	tdp_gfn_t tree_gfn;
	int type, lvl;

	if (gfn >= m->gfn_limit)
		return -EINVAL;
	if (alias == TDP_ALIAS_PRIVATE && m->has_mirror)
		type = TDP_ROOT_MIRROR;
	else if (alias == TDP_ALIAS_SHARED)
		type = TDP_ROOT_DIRECT;
	else
		return -EINVAL;
	if (m->dead)
		return -EIO;
	tree_gfn = gfn + model_bits(m, type);
	lvl = m->root_level;
	*spte = m->fmt->nonpresent;
	r = m->valid[type];
	for (t = r ? r->table : NULL; t; lvl--) {
		int i = (int)idx(tree_gfn, lvl);

		*spte = entry_value(m, t, i);
		if (t->kind[i] != M_TABLE)
			break;
		t = t->child[i];
	}
	*level = lvl;
	return 0;
}

/* ---- lockless and dirty-logging walks over the valid direct root ------------- */

static int check_direct(const struct model *m, tdp_gfn_t start, tdp_gfn_t end,
			unsigned int alias)
{
	if (start >= end || end > m->gfn_limit || !alias ||
	    (alias & ~TDP_ALIAS_BOTH))
		return -EINVAL;
	if ((alias & TDP_ALIAS_PRIVATE) && m->has_mirror)
		return -EOPNOTSUPP;
	return m->dead ? -EIO : 0;
}

typedef int64_t (*leaf_fn)(struct model *m, tdp_spte_t *v, tdp_gfn_t gfn,
			   int level, void *arg);

static int64_t visit_leaves(struct model *m, struct m_table *t, int level,
			    tdp_gfn_t base, tdp_gfn_t start, tdp_gfn_t end,
			    leaf_fn fn, void *arg)
{
	int64_t n = 0;

	for (int i = 0; i < NPTE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * pages(level);

		if (!overlaps(g, g + pages(level), start, end))
			continue;
		if (t->kind[i] == M_TABLE)
			n += visit_leaves(m, t->child[i], level - 1, g, start,
					  end, fn, arg);
		else if (t->kind[i] == M_LEAF) {
			n += fn(m, &t->val[i], g, level, arg);
			t->changed = true;
		}
	}
	return n;
}

/* @fn over the leaves of the valid direct root in [start, end). */
static int64_t direct_leaves(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
			     unsigned int alias, leaf_fn fn, void *arg)
{
	struct m_root *r = m->valid[TDP_ROOT_DIRECT];

	if (!(alias & TDP_ALIAS_SHARED) || !r)
		return 0;
	return visit_leaves(m, r->table, m->root_level, 0,
			    start + m->direct_bits, end + m->direct_bits, fn,
			    arg);
}

static int64_t clear_bits(struct model *m, tdp_spte_t *v, tdp_gfn_t gfn,
			  int level, void *arg)
{
	tdp_spte_t bits = *(tdp_spte_t *)arg;

	(void)m;
	(void)gfn;
	(void)level;
	if (!(*v & bits))
		return 0;
	*v &= ~bits;
	return 1;
}

int64_t model_wrprot(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		     unsigned int alias)
{
	tdp_spte_t w = m->fmt->writable;
	int ret = check_direct(m, start, end, alias);

	return ret ? ret : direct_leaves(m, start, end, alias, clear_bits, &w);
}

int64_t model_clear_dirty(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
			  unsigned int alias)
{
	tdp_spte_t d = m->fmt->dirty;
	int ret = check_direct(m, start, end, alias);

	return ret ? ret : direct_leaves(m, start, end, alias, clear_bits, &d);
}

struct masked {
	tdp_gfn_t base; /* tree GFN of bit 0 */
	uint64_t mask;
	tdp_spte_t clear;
};

static int64_t clear_masked(struct model *m, tdp_spte_t *v, tdp_gfn_t gfn,
			    int level, void *arg)
{
	struct masked *k = arg;

	if (level != TDP_LEVEL_4K || !(k->mask & (1ULL << (gfn - k->base))))
		return 0;
	return clear_bits(m, v, gfn, level, &k->clear);
}

int64_t model_clear_dirty_masked(struct model *m, tdp_gfn_t base, uint64_t mask,
				 bool wrprot, unsigned int alias)
{
	struct masked k = {
		.base = base + m->direct_bits,
		.mask = mask,
		.clear = wrprot ? m->fmt->writable : m->fmt->dirty,
	};
	int ret;

	if ((base & 63) || base > m->gfn_limit - 64)
		return -EINVAL;
	ret = check_direct(m, base, base + 64, alias);
	return ret ? ret
		   : direct_leaves(m, base, base + 64, alias, clear_masked, &k);
}

struct harvest {
	tdp_gfn_t start, end; /* tree GFNs */
	uint64_t *bitmap;
};

static int64_t harvest_leaf(struct model *m, tdp_spte_t *v, tdp_gfn_t gfn,
			    int level, void *arg)
{
	struct harvest *h = arg;
	tdp_gfn_t first = gfn > h->start ? gfn : h->start;
	tdp_gfn_t last =
		gfn + pages(level) < h->end ? gfn + pages(level) : h->end;

	int64_t n = 0;

	if (!(*v & m->fmt->dirty))
		return 0;
	/* A huge leaf only partly in range keeps its dirty bit (dirty.h). */
	if (first == gfn && last == gfn + pages(level))
		*v &= ~m->fmt->dirty;
	/* The count is of bits that were clear. */
	for (tdp_gfn_t g = first; g < last; g++) {
		uint64_t *word = &h->bitmap[(g - h->start) / 64];
		uint64_t bit = 1ULL << ((g - h->start) % 64);

		n += !(*word & bit);
		*word |= bit;
	}
	return n;
}

int64_t model_harvest(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		      uint64_t *bitmap, bool bitmap_null, unsigned int alias)
{
	struct harvest h = {
		.start = start + m->direct_bits,
		.end = end + m->direct_bits,
		.bitmap = bitmap,
	};
	int ret = check_direct(m, start, end, alias);

	if (ret)
		return ret;
	if (bitmap_null)
		return -EINVAL;
	return direct_leaves(m, start, end, alias, harvest_leaf, &h);
}

struct age {
	bool clear;
};

static int64_t age_leaf(struct model *m, tdp_spte_t *v, tdp_gfn_t gfn,
			int level, void *arg)
{
	struct age *a = arg;

	(void)gfn;
	(void)level;
	if (!(*v & m->fmt->accessed))
		return 0;
	if (a->clear)
		*v &= ~m->fmt->accessed;
	return 1;
}

int64_t model_age(struct model *m, tdp_gfn_t start, tdp_gfn_t end, bool clear,
		  unsigned int alias)
{
	struct age a = { .clear = clear };
	int ret = check_direct(m, start, end, alias);

	return ret ? ret : direct_leaves(m, start, end, alias, age_leaf, &a);
}

/* The entry of the valid direct root where a walk to @tree_gfn stops. */
static struct m_table *direct_entry(struct model *m, tdp_gfn_t tree_gfn, int *i,
				    int *level)
{
	struct m_root *r = m->valid[TDP_ROOT_DIRECT];
	struct m_table *t = r ? r->table : NULL;

	for (int lvl = m->root_level; t; lvl--) {
		*i = (int)idx(tree_gfn, lvl);
		*level = lvl;
		if (t->kind[*i] != M_TABLE)
			return t;
		t = t->child[*i];
	}
	return NULL;
}

int model_fast_fix(struct model *m, tdp_gfn_t fault_gfn, unsigned int prot)
{
	tdp_gfn_t gfn = fault_gfn & ~m->direct_bits;
	struct m_table *t;
	unsigned int have;
	int i, level;

	if (!(prot & TDP_PROT_READ) || (prot & ~TDP_PROT_RWX))
		return -EINVAL;
	if (gfn >= m->gfn_limit ||
	    (fault_gfn & ~(m->direct_bits | (m->gfn_limit - 1))))
		return -EINVAL;
	if (m->has_mirror && !(fault_gfn & m->direct_bits))
		return -EOPNOTSUPP;
	if (m->dead)
		return -EIO;
	t = direct_entry(m, gfn + m->direct_bits, &i, &level);
	if (!t || t->kind[i] != M_LEAF)
		return 0;
	have = val_prot(m, t->val[i]);
	if ((have & prot) == prot)
		return 1;
	if ((prot & ~have) == TDP_PROT_WRITE &&
	    (t->val[i] & m->fmt->mmu_writable)) {
		t->val[i] |= m->fmt->writable;
		t->changed = true;
		return 1;
	}
	return 0;
}

int model_hw_access(struct model *m, tdp_gfn_t gfn, bool write)
{
	struct m_table *t;
	int i, level;

	t = direct_entry(m, gfn + m->direct_bits, &i, &level);
	if (!t || t->kind[i] != M_LEAF)
		return 1;
	if (write && !(t->val[i] & m->fmt->writable))
		return 2;
	t->val[i] |= m->fmt->accessed | (write ? m->fmt->dirty : 0);
	t->changed = true;
	return 0;
}

/* ---- huge pages ---------------------------------------------------------------- */

/*
 * Split the huge leaves of table @t (entries at @level >= target + 1)
 * overlapping [start, end), pre-order, each with a table allocated just
 * before (descriptor, then page).  False on an allocation failure.
 */
static bool split_table(struct model *m, struct m_table *t, int level,
			tdp_gfn_t base, tdp_gfn_t start, tdp_gfn_t end,
			int target)
{
	for (int i = 0; i < NPTE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * pages(level);

		if (!overlaps(g, g + pages(level), start, end))
			continue;
		if (t->kind[i] == M_LEAF) {
			if (!alloc_ok(m) || !alloc_ok(m))
				return false;
			split_entry(m, t, i, level);
		}
		if (t->kind[i] == M_TABLE && level - 1 > target &&
		    !split_table(m, t->child[i], level - 1, g, start, end,
				 target))
			return false;
	}
	return true;
}

int model_split(struct model *m, tdp_gfn_t start, tdp_gfn_t end, int target,
		unsigned int alias)
{
	struct m_root *r;
	int ret = check_direct(m, start, end, alias);

	if (ret)
		return ret;
	if (target != TDP_LEVEL_4K && target != TDP_LEVEL_2M)
		return -EINVAL;
	r = m->valid[TDP_ROOT_DIRECT];
	if (!(alias & TDP_ALIAS_SHARED) || !r)
		return 0;
	return split_table(m, r->table, m->root_level, 0,
			   start + m->direct_bits, end + m->direct_bits, target)
		       ? 0
		       : -ENOMEM;
}

/* The huge leaf that can replace @c (entries at @level), or 0. */
static tdp_spte_t collapsible(const struct model *m, const struct m_table *c,
			      int level)
{
	const struct tdp_spte_format *f = m->fmt;
	const tdp_spte_t ad = f->accessed | f->dirty;
	tdp_spte_t first = c->val[0], same, any_ad = 0;
	tdp_pfn_t pfn = val_pfn(m, first);

	if (c->kind[0] != M_LEAF || (pfn & (pages(level + 1) - 1)))
		return 0;
	same = first & ~(f->pfn_mask | ad);
	for (int i = 0; i < NPTE; i++) {
		if (c->kind[i] != M_LEAF ||
		    (c->val[i] & ~(f->pfn_mask | ad)) != same ||
		    val_pfn(m, c->val[i]) != pfn + (tdp_pfn_t)i * pages(level))
			return 0;
		any_ad |= c->val[i] & ad;
	}
	return (first & ~ad) | any_ad | f->leaf_size;
}

/*
 * Collapse the tables whose entries at @level are inside [start, end);
 * @promote: private tables merged by the backend (not zapped, counted as
 * promotes), else direct ones replaced and freed (counted as zapped).
 */
static int64_t recover_level(struct model *m, struct m_table *t, int tlevel,
			     tdp_gfn_t base, tdp_gfn_t start, tdp_gfn_t end,
			     int level, bool promote)
{
	int64_t made = 0;

	for (int i = 0; i < NPTE; i++) {
		tdp_gfn_t g = base + (uint64_t)i * pages(tlevel);
		tdp_spte_t huge;

		if (!overlaps(g, g + pages(tlevel), start, end) ||
		    t->kind[i] != M_TABLE)
			continue;
		if (tlevel > level) {
			made += recover_level(m, t->child[i], tlevel - 1, g,
					      start, end, level, promote);
			continue;
		}
		if (g < start || g + pages(tlevel) > end)
			continue;
		huge = collapsible(m, t->child[i], tlevel - 1);
		if (!huge)
			continue;
		if (promote) {
			m->ctr.promotes++;
		} else {
			m->ctr.zapped_tables++;
			m->ctr.zapped_leaves += NPTE;
		}
		table_free(t->child[i]);
		t->child[i] = NULL;
		t->kind[i] = M_LEAF;
		t->val[i] = huge;
		t->changed = true;
		made++;
	}
	return made;
}

int64_t model_recover(struct model *m, tdp_gfn_t start, tdp_gfn_t end,
		      int max_level, unsigned int alias)
{
	struct m_root *r;
	int64_t made = 0;
	/* With promote_leaf the private alias promotes, 2 MiB only. */
	bool promotes = m->resizes && (alias & TDP_ALIAS_PRIVATE);
	int ret = check_direct(m, start, end,
			       promotes ? (alias & ~TDP_ALIAS_PRIVATE) |
						  TDP_ALIAS_SHARED
					: alias);

	if (ret)
		return ret;
	if ((start & (pages(TDP_LEVEL_2M) - 1)) ||
	    (end & (pages(TDP_LEVEL_2M) - 1)) ||
	    (max_level != TDP_LEVEL_2M && max_level != TDP_LEVEL_1G))
		return -EINVAL;
	if (promotes && m->valid[TDP_ROOT_MIRROR])
		made = recover_level(m, m->valid[TDP_ROOT_MIRROR]->table,
				     m->root_level, 0, start, end,
				     TDP_LEVEL_2M, true);
	r = m->valid[TDP_ROOT_DIRECT];
	if (!(alias & TDP_ALIAS_SHARED) || !r)
		return made;
	for (int level = TDP_LEVEL_2M; level <= max_level; level++)
		made += recover_level(m, r->table, m->root_level, 0,
				      start + m->direct_bits,
				      end + m->direct_bits, level, false);
	return made;
}
