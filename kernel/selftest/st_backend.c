// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The strict in-kernel test backend.
 *
 * It keeps a model of the private tree: one entry per (level, gfn) for
 * every link_table and set_leaf that succeeded.  While a map callback runs
 * its entry is in the model but not live, so a callback that names a GFN
 * below it is caught as "child before parent".  Every callback checks the
 * contract of include/tdp/backend.h and counts a violation when the engine
 * breaks it:
 *
 *   - GFNs unaliased and aligned to the level, levels in range;
 *   - map callbacks with mmu_lock held for read (not for write), never
 *     while a removal runs, and with the mirror entry frozen (read back
 *     with tdp_lookup() from inside the callback);
 *   - parents linked before children; nothing mapped twice;
 *   - removals with mmu_lock held for write, never concurrently with any
 *     other callback, of leaves that exist with the PFN they map, and only
 *     once the entry is out of reach of lockless walkers;
 *   - free_table of linked tables with no entry left, children first;
 *   - backend pages zeroed and page aligned when linked, untouched by the
 *     engine until free_table, never linked twice;
 *   - no callback at all once the test declared the MMU dead.
 *
 * Callbacks run inside an RCU read-side section with mmu_lock held, so
 * they never sleep: the model lives under a spinlock, and its entries come
 * from a pool allocated with the backend.
 */
#include <linux/delay.h>
#include <linux/hash.h>
#include <linux/list.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "st.h"

#include "internal.h"

#define STB_HASH_BITS 12
#define STB_BUCKETS (1U << STB_HASH_BITS)
#define STB_LOG_MAX 64
#define STB_PRINT_LIMIT 20
#define STB_DEFAULT_POOL 16384
#define STB_EXT_MAGIC 0x7464705f65787421ULL

struct stb_ent {
	struct hlist_node node;	    /* in buckets, by (gfn, level) */
	struct hlist_node ext_node; /* in ext_buckets, if ext */
	tdp_gfn_t gfn;
	int level;   /* level of the mirror SPTE */
	bool table;  /* a linked table, else a leaf */
	bool live;   /* false while its map callback runs */
	bool leaked; /* free_table failed: the backend keeps it */
	tdp_pfn_t pfn;
	struct tdp_ext_table *ext;
	unsigned int children; /* entries (live or in flight) below */
};

struct st_backend {
	struct tdp_private_backend ops;
	struct tdp_mmu *mmu;
	int root_level;
	tdp_gfn_t direct_bits;
	size_t ext_size;

	/* Injection: set while no callback runs, or atomics. */
	unsigned int link_delay_us;
	atomic_t busy_permille;
	atomic_t error_permille;
	atomic64_t rng;
	atomic_t fail_next_link; /* errno to return once, or 0 */
	atomic_t fail_next_set;
	atomic_t fail_next_remove; /* flag */
	atomic_t fail_next_free;   /* flag */
	bool forbid;		   /* READ_ONCE */

	/* Overlap detection. */
	atomic_t maps_in_flight;
	atomic_t removing;
	atomic_long_t violations;

	/* The model, the counts and the log: protected by lock. */
	spinlock_t lock;
	struct hlist_head buckets[STB_BUCKETS];
	struct hlist_head ext_buckets[STB_BUCKETS];
	struct hlist_head free;
	struct stb_ent *pool;
	unsigned int pool_size;
	size_t nr_tables, nr_leaves;
	unsigned long calls[STB_NR_CALLS];
	unsigned long ok[STB_NR_CALLS];
	bool log_on;
	unsigned int log_len;
	struct stb_event log[STB_LOG_MAX];
};

/* clang-format off */
static const char *const call_names[STB_NR_CALLS] = {
	[STB_LINK_TABLE]  = "link_table",
	[STB_SET_LEAF]    = "set_leaf",
	[STB_REMOVE_LEAF] = "remove_leaf",
	[STB_FREE_TABLE]  = "free_table",
};
/* clang-format on */

/* ---- violations ---------------------------------------------------------- */

static __printf(2, 3) void violation(struct st_backend *b, const char *fmt, ...)
{
	long n = atomic_long_inc_return(&b->violations);
	struct va_format vaf;
	va_list ap;

	if (n > STB_PRINT_LIMIT)
		return;
	va_start(ap, fmt);
	vaf.fmt = fmt;
	vaf.va = &ap;
	pr_err("tdp_selftest: backend violation #%ld: %pV\n", n, &vaf);
	va_end(ap);
}

unsigned long stb_violations(struct st_backend *b)
{
	return atomic_long_read(&b->violations);
}

/* ---- the model ----------------------------------------------------------- */

static unsigned int ent_hash(tdp_gfn_t gfn, int level)
{
	return hash_64((gfn >> ((level - 1) * TDP_LEVEL_BITS)) * 8 + level,
		       STB_HASH_BITS);
}

static struct stb_ent *ent_find(struct st_backend *b, tdp_gfn_t gfn, int level)
{
	struct stb_ent *e;

	hlist_for_each_entry(e, &b->buckets[ent_hash(gfn, level)], node)
		if (e->gfn == gfn && e->level == level)
			return e;
	return NULL;
}

static unsigned int ext_hash(const struct tdp_ext_table *ext)
{
	return hash_ptr(ext, STB_HASH_BITS);
}

static bool ext_known(struct st_backend *b, const struct tdp_ext_table *ext)
{
	struct stb_ent *e;

	hlist_for_each_entry(e, &b->ext_buckets[ext_hash(ext)], ext_node)
		if (e->ext == ext)
			return true;
	return false;
}

/* The mark the backend keeps at both ends of a backend page it owns. */
static u64 ext_mark(const struct tdp_ext_table *ext)
{
	return STB_EXT_MAGIC ^ (u64)(uintptr_t)ext;
}

static void ext_write_mark(struct st_backend *b, struct tdp_ext_table *ext,
			   u64 v)
{
	char *p = (char *)ext;

	memcpy(p, &v, sizeof(v));
	memcpy(p + b->ext_size - sizeof(v), &v, sizeof(v));
}

static bool ext_intact(struct st_backend *b, const struct tdp_ext_table *ext)
{
	const char *p = (const char *)ext;
	u64 head, tail;

	memcpy(&head, p, sizeof(head));
	memcpy(&tail, p + b->ext_size - sizeof(tail), sizeof(tail));
	return head == ext_mark(ext) && tail == ext_mark(ext);
}

/* A fresh model entry, or NULL (a violation) when the pool is empty. */
static struct stb_ent *ent_alloc(struct st_backend *b)
{
	struct stb_ent *e;

	if (hlist_empty(&b->free)) {
		violation(b, "model pool of %u entries exhausted",
			  b->pool_size);
		return NULL;
	}
	e = hlist_entry(b->free.first, struct stb_ent, node);
	hlist_del(&e->node);
	memset(e, 0, sizeof(*e));
	return e;
}

/*
 * Claim entry (@level, @gfn) for a map callback: its parent table must be
 * linked and live, and nothing may be there; insert it not live.  NULL
 * (after a violation) when the model refuses.  Called with lock held.
 */
static struct stb_ent *claim_entry(struct st_backend *b, enum stb_call call,
				   tdp_gfn_t gfn, int level, bool table)
{
	const char *name = call_names[call];
	struct stb_ent *parent = NULL, *old, *e;

	if (level < b->root_level) {
		int plevel = level + 1;
		tdp_gfn_t pgfn = st_round_down(gfn, plevel);

		parent = ent_find(b, pgfn, plevel);
		if (!parent || !parent->table || !parent->live ||
		    parent->leaked) {
			violation(
				b,
				"%s(gfn %#llx, level %d): parent table (gfn %#llx, level %d) %s (child before parent)",
				name, gfn, level, pgfn, plevel,
				!parent		 ? "is not linked"
				: !parent->table ? "is a leaf"
				: !parent->live
					? "is still being linked"
					: "was handed to a failed free_table");
			return NULL;
		}
	}
	old = ent_find(b, gfn, level);
	if (old) {
		violation(b,
			  "%s(gfn %#llx, level %d): entry already holds a %s%s",
			  name, gfn, level,
			  old->table ? "linked table" : "mapped leaf",
			  old->live ? "" : " (callback in flight)");
		return NULL;
	}
	e = ent_alloc(b);
	if (!e)
		return NULL;
	e->gfn = gfn;
	e->level = level;
	e->table = table;
	hlist_add_head(&e->node, &b->buckets[ent_hash(gfn, level)]);
	if (parent)
		parent->children++;
	return e;
}

/* Drop @e, its backend page record and its count in its parent; lock held. */
static void drop_entry(struct st_backend *b, struct stb_ent *e)
{
	if (e->level < b->root_level) {
		int plevel = e->level + 1;
		struct stb_ent *parent =
			ent_find(b, st_round_down(e->gfn, plevel), plevel);

		if (parent && parent->children)
			parent->children--;
	}
	if (e->ext)
		hlist_del(&e->ext_node);
	hlist_del(&e->node);
	hlist_add_head(&e->node, &b->free);
}

static void log_event(struct st_backend *b, enum stb_call call, tdp_gfn_t gfn,
		      int level, tdp_pfn_t pfn, int ret)
{
	b->calls[call]++;
	if (!ret)
		b->ok[call]++;
	if (!b->log_on || b->log_len == STB_LOG_MAX)
		return;
	b->log[b->log_len++] = (struct stb_event){
		.call = call,
		.gfn = gfn,
		.level = level,
		.pfn = pfn,
		.ret = ret,
	};
}

/* ---- checks shared by the callbacks -------------------------------------- */

static void check_gfn_level(struct st_backend *b, enum stb_call call,
			    tdp_gfn_t gfn, int level, int min_level,
			    int max_level)
{
	const char *name = call_names[call];

	if (level < min_level || level > max_level) {
		violation(b, "%s(gfn %#llx): level %d outside [%d, %d]", name,
			  gfn, level, min_level, max_level);
		return;
	}
	if (gfn & b->direct_bits)
		violation(
			b,
			"%s(gfn %#llx, level %d): GFN is aliased (shared bit set)",
			name, gfn, level);
	if (gfn & (tdp_level_pages(level) - 1))
		violation(
			b,
			"%s(gfn %#llx, level %d): GFN not aligned to the level",
			name, gfn, level);
}

static void check_forbidden(struct st_backend *b, enum stb_call call,
			    tdp_gfn_t gfn, int level)
{
	if (READ_ONCE(b->forbid))
		violation(b, "%s(gfn %#llx, level %d) called on a dead MMU",
			  call_names[call], gfn, level);
}

/* The mirror entry of a map callback reads back as FROZEN. */
static void check_frozen(struct st_backend *b, enum stb_call call,
			 tdp_gfn_t gfn, int level)
{
	tdp_spte_t spte;
	int lvl;

	if (!b->mmu || tdp_lookup(b->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &lvl))
		return;
	if (lvl != level || !tdp_spte_is_frozen(tdp_mmu_format(b->mmu), spte))
		violation(
			b,
			"%s(gfn %#llx, level %d): mirror entry not frozen while the backend works (lookup: level %d, spte %#llx)",
			call_names[call], gfn, level, lvl, spte);
}

static void map_begin(struct st_backend *b, enum stb_call call, tdp_gfn_t gfn,
		      int level)
{
	atomic_inc(&b->maps_in_flight);
	smp_mb__after_atomic();
	check_forbidden(b, call, gfn, level);
	if (atomic_read(&b->removing))
		violation(b, "%s(gfn %#llx, level %d) overlaps a removal",
			  call_names[call], gfn, level);
	if (b->mmu && (!tdp_port_lock_held_read(&b->mmu->mmu_lock) ||
		       tdp_port_lock_held_write(&b->mmu->mmu_lock)))
		violation(
			b,
			"%s(gfn %#llx, level %d) without mmu_lock held for read",
			call_names[call], gfn, level);
	check_frozen(b, call, gfn, level);
}

static void map_end(struct st_backend *b, enum stb_call call, tdp_gfn_t gfn,
		    int level)
{
	if (atomic_read(&b->removing))
		violation(b, "%s(gfn %#llx, level %d) overlapped a removal",
			  call_names[call], gfn, level);
	smp_mb__before_atomic();
	atomic_dec(&b->maps_in_flight);
}

static void removal_begin(struct st_backend *b, enum stb_call call,
			  tdp_gfn_t gfn, int level)
{
	check_forbidden(b, call, gfn, level);
	if (b->mmu && !tdp_port_lock_held_write(&b->mmu->mmu_lock))
		violation(
			b,
			"%s(gfn %#llx, level %d) without mmu_lock held for write",
			call_names[call], gfn, level);
	if (atomic_xchg(&b->removing, 1))
		violation(
			b,
			"%s(gfn %#llx, level %d) runs concurrently with another removal",
			call_names[call], gfn, level);
	if (atomic_read(&b->maps_in_flight))
		violation(b, "%s(gfn %#llx, level %d) overlaps a map callback",
			  call_names[call], gfn, level);
}

static void removal_end(struct st_backend *b)
{
	atomic_set_release(&b->removing, 0);
}

static u64 stb_random(struct st_backend *b)
{
	u64 z = (u64)atomic64_add_return(0x9e3779b97f4a7c15LL, &b->rng);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The result of one map callback: a one-shot failure, injection, or 0. */
static int decide_map(struct st_backend *b, enum stb_call call)
{
	atomic_t *next =
		call == STB_LINK_TABLE ? &b->fail_next_link : &b->fail_next_set;
	int err = atomic_xchg(next, 0);
	unsigned int busy = atomic_read(&b->busy_permille);
	unsigned int hard = atomic_read(&b->error_permille);

	if (err)
		return err;
	if (busy || hard) {
		unsigned int roll = (unsigned int)(stb_random(b) % 1000);

		if (roll < busy)
			return -EBUSY;
		if (roll < busy + hard)
			return -ENOSPC;
	}
	return 0;
}

/* ---- callbacks ----------------------------------------------------------- */

/* Backend-page checks of link_table; lock held.  False: do not record it. */
static bool check_ext_linked(struct st_backend *b, tdp_gfn_t gfn, int level,
			     struct tdp_ext_table *ext)
{
	if (!b->ext_size) {
		if (ext)
			violation(
				b,
				"link_table(gfn %#llx, level %d): backend page without a backend page size",
				gfn, level);
		return false;
	}
	if (!ext) {
		violation(b, "link_table(gfn %#llx, level %d): no backend page",
			  gfn, level);
		return false;
	}
	if (!IS_ALIGNED((uintptr_t)ext, PAGE_SIZE)) {
		violation(
			b,
			"link_table(gfn %#llx, level %d): backend page not page aligned",
			gfn, level);
		return false;
	}
	if (ext_known(b, ext)) {
		violation(
			b,
			"link_table(gfn %#llx, level %d): backend page already belongs to a linked table",
			gfn, level);
		return false;
	}
	if (memchr_inv(ext, 0, b->ext_size))
		violation(
			b,
			"link_table(gfn %#llx, level %d): backend page not zeroed",
			gfn, level);
	return true;
}

static int stb_link_table(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext)
{
	struct st_backend *b = ctx;
	struct stb_ent *e;
	int ret;

	map_begin(b, STB_LINK_TABLE, gfn, level);
	check_gfn_level(b, STB_LINK_TABLE, gfn, level, TDP_LEVEL_2M,
			b->root_level);

	spin_lock(&b->lock);
	e = claim_entry(b, STB_LINK_TABLE, gfn, level, true);
	if (e && check_ext_linked(b, gfn, level, ext)) {
		e->ext = ext;
		hlist_add_head(&e->ext_node, &b->ext_buckets[ext_hash(ext)]);
	}
	spin_unlock(&b->lock);

	/* A slow SEPT.ADD widens the window in which the entry is frozen. */
	if (b->link_delay_us)
		udelay(b->link_delay_us);
	ret = decide_map(b, STB_LINK_TABLE);

	spin_lock(&b->lock);
	if (e) {
		if (!ret) {
			e->live = true;
			b->nr_tables++;
			if (e->ext)
				ext_write_mark(b, e->ext, ext_mark(e->ext));
		} else {
			drop_entry(b, e);
		}
	}
	log_event(b, STB_LINK_TABLE, gfn, level, 0, ret);
	spin_unlock(&b->lock);

	map_end(b, STB_LINK_TABLE, gfn, level);
	return ret;
}

static int stb_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct st_backend *b = ctx;
	struct stb_ent *e;
	int ret;

	map_begin(b, STB_SET_LEAF, gfn, level);
	check_gfn_level(b, STB_SET_LEAF, gfn, level, TDP_LEVEL_4K,
			TDP_LEVEL_1G);
	if (pfn & (tdp_level_pages(level) - 1))
		violation(
			b,
			"set_leaf(gfn %#llx, level %d): pfn %#llx not aligned to the level",
			gfn, level, pfn);

	spin_lock(&b->lock);
	e = claim_entry(b, STB_SET_LEAF, gfn, level, false);
	if (e)
		e->pfn = pfn;
	spin_unlock(&b->lock);

	ret = decide_map(b, STB_SET_LEAF);

	spin_lock(&b->lock);
	if (e) {
		if (!ret) {
			e->live = true;
			b->nr_leaves++;
		} else {
			drop_entry(b, e);
		}
	}
	log_event(b, STB_SET_LEAF, gfn, level, pfn, ret);
	spin_unlock(&b->lock);

	map_end(b, STB_SET_LEAF, gfn, level);
	return ret;
}

/*
 * A removed entry must be out of reach of lockless walkers: a lookup may
 * not find a present leaf (remove_leaf) or walk below the entry
 * (free_table).  After teardown started lookups fail: nothing to check.
 */
static void check_unreachable(struct st_backend *b, enum stb_call call,
			      tdp_gfn_t gfn, int level)
{
	const struct tdp_spte_format *fmt;
	tdp_spte_t spte;
	int lvl;

	if (!b->mmu || tdp_lookup(b->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &lvl))
		return;
	fmt = tdp_mmu_format(b->mmu);
	if (call == STB_REMOVE_LEAF && lvl == level &&
	    tdp_spte_is_present(fmt, spte))
		violation(
			b,
			"remove_leaf(gfn %#llx, level %d): the mirror still maps it (spte %#llx)",
			gfn, level, spte);
	if (call == STB_FREE_TABLE && lvl < level)
		violation(
			b,
			"free_table(gfn %#llx, level %d): the table is still linked in the mirror",
			gfn, level);
}

static int stb_remove_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct st_backend *b = ctx;
	struct stb_ent *e;
	int ret = 0;

	removal_begin(b, STB_REMOVE_LEAF, gfn, level);
	check_gfn_level(b, STB_REMOVE_LEAF, gfn, level, TDP_LEVEL_4K,
			TDP_LEVEL_1G);
	check_unreachable(b, STB_REMOVE_LEAF, gfn, level);

	spin_lock(&b->lock);
	e = ent_find(b, gfn, level);
	if (!e || e->table || !e->live) {
		violation(
			b,
			"remove_leaf(gfn %#llx, level %d, pfn %#llx): no such leaf%s",
			gfn, level, pfn,
			!e	   ? ""
			: e->table ? " (entry is a table)"
				   : " (set_leaf in flight)");
		e = NULL;
	} else if (e->pfn != pfn) {
		violation(
			b,
			"remove_leaf(gfn %#llx, level %d): pfn %#llx, but the leaf maps %#llx",
			gfn, level, pfn, e->pfn);
	}
	if (atomic_xchg(&b->fail_next_remove, 0)) {
		ret = -EFAULT;
	} else if (e) {
		drop_entry(b, e);
		b->nr_leaves--;
	}
	log_event(b, STB_REMOVE_LEAF, gfn, level, pfn, ret);
	spin_unlock(&b->lock);

	removal_end(b);
	return ret;
}

static int stb_free_table(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext)
{
	struct st_backend *b = ctx;
	struct stb_ent *e;
	int ret = 0;

	removal_begin(b, STB_FREE_TABLE, gfn, level);
	check_gfn_level(b, STB_FREE_TABLE, gfn, level, TDP_LEVEL_2M,
			b->root_level);
	check_unreachable(b, STB_FREE_TABLE, gfn, level);

	spin_lock(&b->lock);
	e = ent_find(b, gfn, level);
	if (!e || !e->table || !e->live || e->leaked) {
		violation(
			b,
			"free_table(gfn %#llx, level %d): no such linked table%s",
			gfn, level,
			!e	    ? ""
			: !e->table ? " (entry is a leaf)"
			: e->leaked ? " (free_table already failed)"
				    : " (link_table in flight)");
		e = NULL;
	} else {
		if (e->children)
			violation(
				b,
				"free_table(gfn %#llx, level %d): %u entries still linked below (parent before children)",
				gfn, level, e->children);
		if (e->ext != ext)
			violation(
				b,
				"free_table(gfn %#llx, level %d): another backend page than was linked",
				gfn, level);
		else if (ext && !ext_intact(b, ext))
			violation(
				b,
				"free_table(gfn %#llx, level %d): the backend page was written by someone else",
				gfn, level);
	}
	if (atomic_xchg(&b->fail_next_free, 0)) {
		ret = -EFAULT;
		if (e)
			e->leaked = true;
	} else if (e && !e->children) {
		if (e->ext)
			ext_write_mark(b, e->ext, 0);
		drop_entry(b, e);
		b->nr_tables--;
	}
	log_event(b, STB_FREE_TABLE, gfn, level, 0, ret);
	spin_unlock(&b->lock);

	removal_end(b);
	return ret;
}

/* ---- set-up and queries -------------------------------------------------- */

struct st_backend *stb_create(int root_level, tdp_gfn_t direct_bits,
			      size_t ext_table_size, unsigned int pool)
{
	struct st_backend *b;

	/* The backend marks both ends of each backend page it owns. */
	if (ext_table_size && ext_table_size < 2 * sizeof(u64))
		return NULL;
	b = kvzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return NULL;
	b->pool_size = pool ? pool : STB_DEFAULT_POOL;
	b->pool = kvcalloc(b->pool_size, sizeof(*b->pool), GFP_KERNEL);
	if (!b->pool) {
		kvfree(b);
		return NULL;
	}
	for (unsigned int i = 0; i < b->pool_size; i++)
		hlist_add_head(&b->pool[i].node, &b->free);
	b->root_level = root_level;
	b->direct_bits = direct_bits;
	b->ext_size = ext_table_size;
	spin_lock_init(&b->lock);
	/* One table, lined up so it reads as one. */
	/* clang-format off */
	b->ops = (struct tdp_private_backend){
		.link_table     = stb_link_table,
		.set_leaf       = stb_set_leaf,
		.remove_leaf    = stb_remove_leaf,
		.free_table     = stb_free_table,
		.ctx            = b,
		.ext_table_size = ext_table_size,
	};
	/* clang-format on */
	return b;
}

/*
 * Backend pages of tables whose free_table failed, or that a dead MMU
 * never handed back, are the backend's by contract; a test backend that
 * goes away leaks them rather than guess.
 */
void stb_destroy(struct st_backend *b)
{
	if (!b)
		return;
	kvfree(b->pool);
	kvfree(b);
}

const struct tdp_private_backend *stb_ops(struct st_backend *b)
{
	return &b->ops;
}

void stb_set_mmu(struct st_backend *b, struct tdp_mmu *mmu)
{
	b->mmu = mmu;
}

void stb_set_link_delay(struct st_backend *b, unsigned int usec)
{
	b->link_delay_us = usec;
}

void stb_set_injection(struct st_backend *b, unsigned int busy_permille,
		       unsigned int error_permille, u64 seed)
{
	atomic64_set(&b->rng, (s64)seed);
	atomic_set(&b->busy_permille, busy_permille);
	atomic_set(&b->error_permille, error_permille);
}

void stb_fail_next_map(struct st_backend *b, enum stb_call call, int err)
{
	atomic_set(call == STB_LINK_TABLE ? &b->fail_next_link
					  : &b->fail_next_set,
		   err);
}

void stb_fail_next_remove(struct st_backend *b)
{
	atomic_set(&b->fail_next_remove, 1);
}

void stb_fail_next_free(struct st_backend *b)
{
	atomic_set(&b->fail_next_free, 1);
}

void stb_forbid_calls(struct st_backend *b, bool forbid)
{
	WRITE_ONCE(b->forbid, forbid);
}

void stb_log_enable(struct st_backend *b, bool on)
{
	spin_lock(&b->lock);
	b->log_on = on;
	spin_unlock(&b->lock);
}

void stb_log_clear(struct st_backend *b)
{
	spin_lock(&b->lock);
	b->log_len = 0;
	spin_unlock(&b->lock);
}

unsigned int stb_log_count(struct st_backend *b)
{
	unsigned int n;

	spin_lock(&b->lock);
	n = b->log_len;
	spin_unlock(&b->lock);
	return n;
}

struct stb_event stb_log_get(struct st_backend *b, unsigned int i)
{
	struct stb_event ev = { .ret = -ERANGE };

	spin_lock(&b->lock);
	if (i < b->log_len)
		ev = b->log[i];
	spin_unlock(&b->lock);
	return ev;
}

unsigned long stb_calls(struct st_backend *b, enum stb_call call)
{
	unsigned long n;

	spin_lock(&b->lock);
	n = b->calls[call];
	spin_unlock(&b->lock);
	return n;
}

unsigned long stb_ok(struct st_backend *b, enum stb_call call)
{
	unsigned long n;

	spin_lock(&b->lock);
	n = b->ok[call];
	spin_unlock(&b->lock);
	return n;
}

size_t stb_nr_tables(struct st_backend *b)
{
	size_t n;

	spin_lock(&b->lock);
	n = b->nr_tables;
	spin_unlock(&b->lock);
	return n;
}

size_t stb_nr_leaves(struct st_backend *b)
{
	size_t n;

	spin_lock(&b->lock);
	n = b->nr_leaves;
	spin_unlock(&b->lock);
	return n;
}

/* The live leaf covering @gfn; lock held. */
static struct stb_ent *leaf_covering(struct st_backend *b, tdp_gfn_t gfn)
{
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		struct stb_ent *e =
			ent_find(b, st_round_down(gfn, level), level);

		if (e && !e->table && e->live)
			return e;
	}
	return NULL;
}

bool stb_leaf_at(struct st_backend *b, tdp_gfn_t gfn, int *level,
		 tdp_pfn_t *pfn)
{
	struct stb_ent *e;

	spin_lock(&b->lock);
	e = leaf_covering(b, gfn);
	if (e) {
		if (level)
			*level = e->level;
		if (pfn)
			*pfn = e->pfn;
	}
	spin_unlock(&b->lock);
	return e != NULL;
}

/* ---- mirror == model ----------------------------------------------------- */

#define CMP_PRINT_LIMIT 10

static __printf(2, 3) void mismatch(unsigned long *bad, const char *fmt, ...)
{
	struct va_format vaf;
	va_list ap;

	if (++*bad > CMP_PRINT_LIMIT)
		return;
	va_start(ap, fmt);
	vaf.fmt = fmt;
	vaf.va = &ap;
	pr_err("tdp_selftest: mirror != backend: %pV\n", &vaf);
	va_end(ap);
}

/*
 * Check one lookup result for @gfn against the model: every table above
 * @level is linked, and the entry at @level is the leaf found or nothing.
 * Returns 1 for a present leaf.  Lock held.
 */
static int compare_one(struct st_backend *b, const struct tdp_spte_format *fmt,
		       tdp_gfn_t gfn, tdp_spte_t spte, int level,
		       unsigned long *bad)
{
	struct stb_ent *e = ent_find(b, st_round_down(gfn, level), level);

	for (int k = level + 1; k <= b->root_level; k++) {
		struct stb_ent *t = ent_find(b, st_round_down(gfn, k), k);

		if (!t || !t->table || !t->live)
			mismatch(
				bad,
				"gfn %#llx: the mirror walks through a table at level %d the backend has not linked",
				gfn, k);
	}
	if (tdp_spte_is_frozen(fmt, spte)) {
		mismatch(bad, "gfn %#llx: frozen SPTE left at level %d", gfn,
			 level);
		return 0;
	}
	if (!tdp_spte_is_present(fmt, spte)) {
		if (e)
			mismatch(
				bad,
				"gfn %#llx: mirror entry at level %d not present, the backend has a %s",
				gfn, level, e->table ? "table" : "leaf");
		return 0;
	}
	if (!tdp_spte_is_leaf(fmt, spte, level)) {
		mismatch(bad,
			 "gfn %#llx: lookup stopped at a non-leaf (level %d)",
			 gfn, level);
		return 0;
	}
	if (!e || e->table || !e->live)
		mismatch(
			bad,
			"gfn %#llx: mirror leaf at level %d, the backend has %s",
			gfn, level,
			!e	   ? "nothing"
			: e->table ? "a table"
				   : "a leaf in flight");
	else if (e->pfn != tdp_spte_pfn(fmt, spte))
		mismatch(
			bad,
			"gfn %#llx: mirror leaf at level %d maps pfn %#llx, the backend %#llx",
			gfn, level, tdp_spte_pfn(fmt, spte), e->pfn);
	return 1;
}

unsigned long stb_compare(struct st_backend *b, struct tdp_mmu *mmu,
			  tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	unsigned long bad = 0;
	u64 mirror_leaves = 0, model_leaves = 0, window_leaves = 0;
	u64 model_tables = 0;
	struct tdp_stats s;
	tdp_gfn_t gfn = start;

	spin_lock(&b->lock);
	while (gfn < end) {
		tdp_spte_t spte;
		int level, ret;

		ret = tdp_lookup(mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &level);
		if (ret || level < TDP_LEVEL_4K || level > b->root_level) {
			mismatch(&bad, "tdp_lookup(gfn %#llx) = %d, level %d",
				 gfn, ret, level);
			break;
		}
		mirror_leaves += compare_one(b, fmt, gfn, spte, level, &bad);
		gfn = st_round_down(gfn, level) + tdp_level_pages(level);
	}
	for (unsigned int i = 0; i < STB_BUCKETS; i++) {
		struct stb_ent *e;

		hlist_for_each_entry(e, &b->buckets[i], node) {
			if (!e->live) {
				mismatch(
					&bad,
					"backend entry (gfn %#llx, level %d) still in flight",
					e->gfn, e->level);
				continue;
			}
			if (e->table) {
				model_tables++;
				continue;
			}
			model_leaves++;
			if (e->gfn < end &&
			    e->gfn + tdp_level_pages(e->level) > start)
				window_leaves++;
		}
	}
	spin_unlock(&b->lock);

	if (mirror_leaves != window_leaves)
		mismatch(
			&bad,
			"[%#llx, %#llx): %llu leaves in the mirror, %llu in the backend",
			start, end, mirror_leaves, window_leaves);
	if (tdp_mmu_get_stats(mmu, &s)) {
		mismatch(&bad, "tdp_mmu_get_stats failed");
	} else {
		if (st_tables_below_root(&s, TDP_ROOT_MIRROR, b->root_level) !=
		    model_tables)
			mismatch(
				&bad,
				"statistics: %llu mirror tables below the root, the backend has %llu",
				st_tables_below_root(&s, TDP_ROOT_MIRROR,
						     b->root_level),
				model_tables);
		if (st_leaves(&s, TDP_ROOT_MIRROR) != model_leaves)
			mismatch(
				&bad,
				"statistics: %llu mirror leaves, the backend has %llu",
				st_leaves(&s, TDP_ROOT_MIRROR), model_leaves);
	}
	if (bad > CMP_PRINT_LIMIT)
		pr_err("tdp_selftest: mirror != backend: %lu mismatches in all\n",
		       bad);
	return bad;
}
