// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The strict recording private backend (see ts_backend.h).
 *
 * The model is one chained hash of entries keyed by (level, gfn): a table
 * entry for every link_table that succeeded, a leaf entry for every
 * set_leaf that succeeded.  It and the hash of known backend pages start
 * small and double whenever they hold more entries than buckets, so a
 * backend costs little to create, scan and destroy when it holds little
 * (the fuzzer makes one per input).  While a map callback runs its entry
 * is in the hash but not live, so a callback that names a GFN below it is
 * caught as "child before parent".  Everything in the model is protected
 * by b->lock; the in-flight counters used to catch overlaps are atomics.
 *
 * Only port names (libtdp/port/port.h): this file builds into the user
 * tests and into the kernel self-test module.
 */
#include "ts_backend.h"

#include "internal.h"

#define TS_MIN_BUCKETS 64U
#define TS_PRINT_LIMIT 40
#define TS_MSG_MAX 256
#define TS_EXT_MAGIC 0x5453424b454e4421ULL /* "TSBKEND!" */

/*
 * A chained hash that starts small and doubles whenever it holds more
 * nodes than buckets (when that memory cannot be had, its chains just grow
 * longer).  A node is embedded in its entry; @key gives the mixed hash of
 * a node's key.  Protected by b->lock.
 */
struct hnode {
	struct hnode *next;
};

struct hash {
	struct hnode **buckets; /* mask + 1 chains */
	size_t mask;		/* bucket count - 1, a power of two */
	size_t nr;		/* nodes */
	uint64_t (*key)(const struct hnode *n);
};

enum ent_kind { ENT_TABLE, ENT_LEAF };

struct ent {
	struct hnode node; /* first: freed through it */
	tdp_gfn_t gfn;
	int level; /* level of the mirror SPTE */
	enum ent_kind kind;
	bool live;   /* false while its map callback runs */
	bool leaked; /* table whose free_table failed: the backend keeps it */
	tdp_pfn_t pfn;
	struct tdp_ext_table *ext;
	unsigned int children; /* entries (live or in flight) of this table */
};

struct ext_node {
	struct hnode node; /* first: freed through it */
	const struct tdp_ext_table *ext;
};

struct ts_backend {
	struct tdp_private_backend ops;
	int root_level;
	tdp_gfn_t direct_bits;
	size_t ext_size;
	struct tdp_mmu *mmu;

	/* Injection: written before the MMU runs, or atomics. */
	unsigned int link_delay_us;
	int busy_permille;    /* atomic */
	int error_permille;   /* atomic */
	int fail_next_link;   /* atomic: errno to return once, or 0 */
	int fail_next_set;    /* atomic */
	int fail_next_remove; /* atomic flag */
	int fail_next_free;   /* atomic flag */
	bool forbid;	      /* atomic */
	ts_hook_fn hook;
	void *hook_arg;
	ts_hook_fn remove_hook;
	void *remove_hook_arg;

	/* Overlap detection and the violation count: atomics. */
	int maps_in_flight;
	int removing;
	int violations;

	/* Model, log, counts and the injection state below: under lock. */
	tdp_spinlock_t lock;
	uint64_t rng;
	int fail_demote_err; /* errno for the next fail_demote_left calls */
	int fail_demote_left;
	int fail_promote_err; /* the same for promote_leaf */
	int fail_promote_left;
	struct hash ents; /* struct ent by (level, gfn) */
	struct hash exts; /* struct ext_node of the live tables' pages */
	size_t nr_tables, nr_leaves;
	struct ts_counts counts;
	bool log_on;
	struct ts_event *log;
	size_t log_len, log_cap;
};

static const char *const call_names[TS_NR_CALLS] = {
	[TS_LINK_TABLE] = "link_table",	  [TS_SET_LEAF] = "set_leaf",
	[TS_REMOVE_LEAF] = "remove_leaf", [TS_FREE_TABLE] = "free_table",
	[TS_DEMOTE_LEAF] = "demote_leaf", [TS_PROMOTE_LEAF] = "promote_leaf",
};

/* ---- violations ---------------------------------------------------------- */

void ts_violation(struct ts_backend *b, const char *fmt, ...)
{
	int n = tdp_atomic_add(&b->violations, 1);
	char msg[TS_MSG_MAX];
	va_list ap;

	if (n > TS_PRINT_LIMIT)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tdp_log_err("test backend violation #%d: %s", n, msg);
	if (n == TS_PRINT_LIMIT)
		tdp_log_err("test backend: further violations not logged");
}

uint64_t ts_violations(struct ts_backend *b)
{
	return (uint64_t)tdp_atomic_read(&b->violations);
}

/* ---- the model ----------------------------------------------------------- */

static bool hash_init(struct hash *h, uint64_t (*key)(const struct hnode *n))
{
	h->buckets = tdp_zalloc_atomic(TS_MIN_BUCKETS * sizeof(*h->buckets));
	h->mask = TS_MIN_BUCKETS - 1;
	h->nr = 0;
	h->key = key;
	return h->buckets != NULL;
}

static struct hnode **hash_bucket(struct hash *h, uint64_t key)
{
	return &h->buckets[key & h->mask];
}

static void hash_push(struct hash *h, struct hnode *n)
{
	struct hnode **bk = hash_bucket(h, h->key(n));

	n->next = *bk;
	*bk = n;
}

/* Twice the buckets, every node moved over. */
static void hash_grow(struct hash *h)
{
	struct hnode **old = h->buckets;
	size_t old_count = h->mask + 1;
	struct hnode **nb = tdp_zalloc_atomic(2 * old_count * sizeof(*nb));

	if (!nb)
		return;
	h->buckets = nb;
	h->mask = 2 * old_count - 1;
	for (size_t i = 0; i < old_count; i++) {
		while (old[i]) {
			struct hnode *n = old[i];

			old[i] = n->next;
			hash_push(h, n);
		}
	}
	tdp_free(old);
}

static void hash_insert(struct hash *h, struct hnode *n)
{
	if (++h->nr > h->mask + 1)
		hash_grow(h);
	hash_push(h, n);
}

static void hash_unlink(struct hash *h, struct hnode *n)
{
	struct hnode **pp = hash_bucket(h, h->key(n));

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	h->nr--;
}

/* Free every node (first in what was allocated) and the buckets. */
static void hash_destroy(struct hash *h)
{
	for (size_t i = 0; h->buckets && i <= h->mask; i++) {
		while (h->buckets[i]) {
			struct hnode *n = h->buckets[i];

			h->buckets[i] = n->next;
			tdp_free(n);
		}
	}
	tdp_free(h->buckets);
}

static uint64_t ent_hash(tdp_gfn_t gfn, int level)
{
	uint64_t h =
		(gfn >> ((level - 1) * TDP_LEVEL_BITS)) * 0x9e3779b97f4a7c15ULL;

	h ^= (uint64_t)level * 0xc2b2ae3d27d4eb4fULL;
	h ^= h >> 29;
	return h;
}

static uint64_t ent_key(const struct hnode *n)
{
	const struct ent *e = TDP_CONTAINER_OF(n, struct ent, node);

	return ent_hash(e->gfn, e->level);
}

static struct ent *ent_find(struct ts_backend *b, tdp_gfn_t gfn, int level)
{
	struct hnode *n;

	for (n = *hash_bucket(&b->ents, ent_hash(gfn, level)); n; n = n->next) {
		struct ent *e = TDP_CONTAINER_OF(n, struct ent, node);

		if (e->gfn == gfn && e->level == level)
			return e;
	}
	return NULL;
}

/* A new model entry; NULL (a violation) when no memory is left. */
static struct ent *ent_alloc(struct ts_backend *b)
{
	struct ent *e = tdp_zalloc_atomic(sizeof(*e));

	if (!e)
		ts_violation(b, "out of memory for the model: cannot check");
	return e;
}

static uint64_t ext_hash(const struct tdp_ext_table *ext)
{
	return ((uint64_t)(uintptr_t)ext * 0x9e3779b97f4a7c15ULL) >> 32;
}

static uint64_t ext_key(const struct hnode *n)
{
	return ext_hash(TDP_CONTAINER_OF(n, struct ext_node, node)->ext);
}

static struct ext_node *ext_find(struct ts_backend *b,
				 const struct tdp_ext_table *ext)
{
	struct hnode *n;

	for (n = *hash_bucket(&b->exts, ext_hash(ext)); n; n = n->next) {
		struct ext_node *x = TDP_CONTAINER_OF(n, struct ext_node, node);

		if (x->ext == ext)
			return x;
	}
	return NULL;
}

static void ext_add(struct ts_backend *b, const struct tdp_ext_table *ext)
{
	struct ext_node *x = tdp_zalloc_atomic(sizeof(*x));

	if (!x) {
		ts_violation(b, "out of memory for the model: cannot check");
		return;
	}
	x->ext = ext;
	hash_insert(&b->exts, &x->node);
}

static void ext_del(struct ts_backend *b, const struct tdp_ext_table *ext)
{
	struct ext_node *x = ext_find(b, ext);

	if (x) {
		hash_unlink(&b->exts, &x->node);
		tdp_free(x);
	}
}

/* The mark the backend writes at both ends of a backend page it owns. */
static uint64_t ext_mark(const struct tdp_ext_table *ext)
{
	return TS_EXT_MAGIC ^ (uint64_t)(uintptr_t)ext;
}

static void ext_write_mark(struct ts_backend *b, struct tdp_ext_table *ext,
			   uint64_t v)
{
	char *p = (char *)ext;

	memcpy(p, &v, sizeof(v));
	memcpy(p + b->ext_size - sizeof(v), &v, sizeof(v));
}

bool ts_ext_intact(struct ts_backend *b, const struct tdp_ext_table *ext)
{
	const char *p = (const char *)ext;
	uint64_t head, tail;

	if (!ext || !b->ext_size)
		return false;
	memcpy(&head, p, sizeof(head));
	memcpy(&tail, p + b->ext_size - sizeof(tail), sizeof(tail));
	return head == ext_mark(ext) && tail == ext_mark(ext);
}

static bool ext_is_zero(struct ts_backend *b, const struct tdp_ext_table *ext)
{
	const unsigned char *p = (const unsigned char *)ext;

	for (size_t i = 0; i < b->ext_size; i++)
		if (p[i])
			return false;
	return true;
}

/* Count one callback and append it to the log.  b->lock held. */
static void log_event(struct ts_backend *b, enum ts_call call, tdp_gfn_t gfn,
		      int level, tdp_pfn_t pfn, struct tdp_ext_table *ext,
		      int ret)
{
	b->counts.calls[call]++;
	if (!ret)
		b->counts.ok[call]++;
	if (!b->log_on)
		return;
	if (b->log_len == b->log_cap) {
		size_t cap = b->log_cap ? 2 * b->log_cap : 64;
		struct ts_event *n = tdp_zalloc_atomic(cap * sizeof(*n));

		if (!n) {
			ts_violation(b, "out of memory for the event log");
			return;
		}
		if (b->log_len)
			memcpy(n, b->log, b->log_len * sizeof(*n));
		tdp_free(b->log);
		b->log = n;
		b->log_cap = cap;
	}
	b->log[b->log_len++] = (struct ts_event){
		.call = call,
		.gfn = gfn,
		.level = level,
		.pfn = pfn,
		.ext = ext,
		.ret = ret,
	};
}

/* ---- checks shared by the callbacks -------------------------------------- */

static void check_gfn_level(struct ts_backend *b, enum ts_call call,
			    tdp_gfn_t gfn, int level, int min_level,
			    int max_level)
{
	const char *name = call_names[call];
	unsigned long long g = (unsigned long long)gfn;

	if (level < min_level || level > max_level) {
		ts_violation(b, "%s(gfn %#llx): level %d outside [%d, %d]",
			     name, g, level, min_level, max_level);
		return;
	}
	if (gfn & b->direct_bits)
		ts_violation(b,
			     "%s(gfn %#llx, level %d): GFN is aliased "
			     "(shared bit set)",
			     name, g, level);
	if (gfn & (tdp_level_pages(level) - 1))
		ts_violation(b,
			     "%s(gfn %#llx, level %d): GFN not aligned to "
			     "the level",
			     name, g, level);
}

/* The PFN of a leaf a callback names is aligned to its level. */
static void check_pfn_aligned(struct ts_backend *b, enum ts_call call,
			      tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	if (pfn & (tdp_level_pages(level) - 1))
		ts_violation(b,
			     "%s(gfn %#llx, level %d): pfn %#llx not aligned "
			     "to the level",
			     call_names[call], (unsigned long long)gfn, level,
			     (unsigned long long)pfn);
}

static void check_forbidden(struct ts_backend *b, enum ts_call call,
			    tdp_gfn_t gfn, int level)
{
	if (tdp_flag_read(&b->forbid))
		ts_violation(b,
			     "%s(gfn %#llx, level %d) called while callbacks "
			     "are forbidden (dead MMU)",
			     call_names[call], (unsigned long long)gfn, level);
}

/*
 * The mirror entry the callback works on reads back FROZEN: the engine
 * froze it before the call and writes it only afterwards.  Skipped once
 * lookups fail (teardown) and before the MMU is known.
 */
static void check_frozen(struct ts_backend *b, enum ts_call call, tdp_gfn_t gfn,
			 int level)
{
	tdp_spte_t spte;
	int lvl;

	if (!b->mmu || tdp_lookup(b->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &lvl))
		return;
	if (lvl != level || !tdp_spte_is_frozen(tdp_mmu_format(b->mmu), spte))
		ts_violation(b,
			     "%s(gfn %#llx, level %d): mirror entry not frozen "
			     "while the backend works (lookup: level %d, "
			     "spte %#llx)",
			     call_names[call], (unsigned long long)gfn, level,
			     lvl, (unsigned long long)spte);
}

/*
 * A removed entry is out of reach of lockless walkers: a lookup finds no
 * present leaf there (remove_leaf) and does not walk below it
 * (free_table).  After teardown started lookups fail: nothing to check.
 */
static void check_unreachable(struct ts_backend *b, enum ts_call call,
			      tdp_gfn_t gfn, int level)
{
	const struct tdp_spte_format *fmt;
	tdp_spte_t spte;
	int lvl;

	if (!b->mmu || tdp_lookup(b->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &lvl))
		return;
	fmt = tdp_mmu_format(b->mmu);
	if (call == TS_REMOVE_LEAF && lvl == level &&
	    tdp_spte_is_present(fmt, spte))
		ts_violation(b,
			     "remove_leaf(gfn %#llx, level %d): the mirror "
			     "still maps it (spte %#llx)",
			     (unsigned long long)gfn, level,
			     (unsigned long long)spte);
	if (call == TS_FREE_TABLE && lvl < level)
		ts_violation(b,
			     "free_table(gfn %#llx, level %d): the table is "
			     "still linked in the mirror",
			     (unsigned long long)gfn, level);
}

static void map_begin(struct ts_backend *b, enum ts_call call, tdp_gfn_t gfn,
		      int level)
{
	unsigned long long g = (unsigned long long)gfn;

	tdp_atomic_add(&b->maps_in_flight, 1);
	check_forbidden(b, call, gfn, level);
	if (tdp_atomic_read(&b->removing))
		ts_violation(b, "%s(gfn %#llx, level %d) overlaps a removal",
			     call_names[call], g, level);
	if (b->mmu && (!tdp_port_lock_held_read(&b->mmu->mmu_lock) ||
		       tdp_port_lock_held_write(&b->mmu->mmu_lock)))
		ts_violation(b,
			     "%s(gfn %#llx, level %d) without mmu_lock held "
			     "for read (or with it held for write)",
			     call_names[call], g, level);
	check_frozen(b, call, gfn, level);
}

static void map_end(struct ts_backend *b, enum ts_call call, tdp_gfn_t gfn,
		    int level)
{
	if (tdp_atomic_read(&b->removing))
		ts_violation(b, "%s(gfn %#llx, level %d) overlapped a removal",
			     call_names[call], (unsigned long long)gfn, level);
	tdp_atomic_add(&b->maps_in_flight, -1);
}

static void removal_begin(struct ts_backend *b, enum ts_call call,
			  tdp_gfn_t gfn, int level)
{
	unsigned long long g = (unsigned long long)gfn;

	check_forbidden(b, call, gfn, level);
	if (b->mmu && !tdp_port_lock_held_write(&b->mmu->mmu_lock))
		ts_violation(b,
			     "%s(gfn %#llx, level %d) without mmu_lock held "
			     "for write",
			     call_names[call], g, level);
	if (tdp_atomic_xchg(&b->removing, 1))
		ts_violation(b,
			     "%s(gfn %#llx, level %d) runs concurrently with "
			     "another removal",
			     call_names[call], g, level);
	if (tdp_atomic_read(&b->maps_in_flight))
		ts_violation(b,
			     "%s(gfn %#llx, level %d) overlaps a map callback",
			     call_names[call], g, level);
}

static void removal_end(struct ts_backend *b)
{
	tdp_atomic_set(&b->removing, 0);
}

/* splitmix64 step of the injection generator.  b->lock held. */
static uint64_t ts_random(struct ts_backend *b)
{
	uint64_t z = (b->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The result of one map callback: a one-shot failure, injection, or 0. */
static int decide_map(struct ts_backend *b, enum ts_call call)
{
	int *next =
		call == TS_LINK_TABLE ? &b->fail_next_link : &b->fail_next_set;
	int err = tdp_atomic_xchg(next, 0);
	int busy = tdp_atomic_read(&b->busy_permille);
	int hard = tdp_atomic_read(&b->error_permille);
	int roll;

	if (err)
		return err;
	if (!busy && !hard)
		return 0;
	tdp_spin_lock(&b->lock);
	roll = (int)(ts_random(b) % 1000);
	tdp_spin_unlock(&b->lock);
	if (roll < busy)
		return -EBUSY;
	if (roll < busy + hard)
		return -ENOSPC;
	return 0;
}

/*
 * Claim entry (@level, @gfn) for a map callback: check that its parent
 * table is linked and that nothing is there, then insert it not live.
 * Returns NULL (after recording a violation) when the model refuses.
 * Called with b->lock held.
 */
static struct ent *claim_entry(struct ts_backend *b, enum ts_call call,
			       tdp_gfn_t gfn, int level, enum ent_kind kind)
{
	const char *name = call_names[call];
	unsigned long long g = (unsigned long long)gfn;
	struct ent *parent = NULL, *old, *e;

	if (level < b->root_level) {
		int plevel = level + 1;
		tdp_gfn_t pgfn = tdp_gfn_round_down(gfn, plevel);

		parent = ent_find(b, pgfn, plevel);
		if (!parent || parent->kind != ENT_TABLE || !parent->live ||
		    parent->leaked) {
			ts_violation(b,
				     "%s(gfn %#llx, level %d): parent table "
				     "(gfn %#llx, level %d) %s (child before "
				     "parent)",
				     name, g, level, (unsigned long long)pgfn,
				     plevel,
				     !parent ? "is not linked"
				     : parent->kind != ENT_TABLE ? "is a leaf"
				     : !parent->live ? "is still being linked"
						     : "was handed to a failed "
						       "free_table");
			return NULL;
		}
	}
	old = ent_find(b, gfn, level);
	if (old) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d): entry already holds "
			     "a %s%s",
			     name, g, level,
			     old->kind == ENT_TABLE ? "linked table"
						    : "mapped leaf",
			     old->live ? "" : " (callback in flight)");
		return NULL;
	}
	e = ent_alloc(b);
	if (!e)
		return NULL;
	e->gfn = gfn;
	e->level = level;
	e->kind = kind;
	hash_insert(&b->ents, &e->node);
	if (parent)
		parent->children++;
	return e;
}

/* Drop entry @e and its count in its parent.  Called with b->lock held. */
static void drop_entry(struct ts_backend *b, struct ent *e)
{
	if (e->level < b->root_level) {
		int plevel = e->level + 1;
		struct ent *parent =
			ent_find(b, tdp_gfn_round_down(e->gfn, plevel), plevel);

		if (parent && parent->children)
			parent->children--;
	}
	hash_unlink(&b->ents, &e->node);
	tdp_free(e);
}

/*
 * Check the backend page of a new table (link_table, demote_leaf): none
 * without a backend page size, else page aligned, not owned by a live
 * table, zeroed.  Returns @ext, or NULL when it must not be recorded.
 * Called with b->lock held.
 */
static struct tdp_ext_table *check_new_ext(struct ts_backend *b,
					   enum ts_call call, tdp_gfn_t gfn,
					   int level, struct tdp_ext_table *ext)
{
	const char *name = call_names[call];
	unsigned long long g = (unsigned long long)gfn;

	if (!b->ext_size) {
		if (ext)
			ts_violation(b,
				     "%s(gfn %#llx, level %d): backend page "
				     "%p without a backend page size",
				     name, g, level, (void *)ext);
		return NULL;
	}
	if (!ext) {
		ts_violation(b, "%s(gfn %#llx, level %d): no backend page",
			     name, g, level);
	} else if ((uintptr_t)ext & (TDP_PAGE_SIZE - 1)) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d): backend page %p not "
			     "page aligned",
			     name, g, level, (void *)ext);
		return NULL;
	} else if (ext_find(b, ext)) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d): backend page %p "
			     "already belongs to a live table",
			     name, g, level, (void *)ext);
		return NULL;
	} else if (!ext_is_zero(b, ext)) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d): backend page %p not "
			     "zeroed",
			     name, g, level, (void *)ext);
	}
	return ext;
}

/*
 * The backend page free_table or promote_leaf hands back is the one the
 * table @e was linked with, untouched.  Called with b->lock held.
 */
static void check_linked_ext(struct ts_backend *b, enum ts_call call,
			     const struct ent *e, struct tdp_ext_table *ext)
{
	unsigned long long g = (unsigned long long)e->gfn;

	if (e->ext != ext)
		ts_violation(b,
			     "%s(gfn %#llx, level %d): backend page %p, but "
			     "%p was linked",
			     call_names[call], g, e->level, (void *)ext,
			     (void *)e->ext);
	else if (ext && !ts_ext_intact(b, ext))
		ts_violation(b,
			     "%s(gfn %#llx, level %d): backend page %p was "
			     "written by someone else",
			     call_names[call], g, e->level, (void *)ext);
}

/* Count an injected failure of a map callback.  b->lock held. */
static void count_injected(struct ts_backend *b, int ret)
{
	if (ret == -EBUSY)
		b->counts.injected_busy++;
	else if (ret)
		b->counts.injected_errors++;
}

/* ---- callbacks ----------------------------------------------------------- */

static int ts_link_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext)
{
	struct ts_backend *b = ctx;
	struct ent *e;
	int ret;

	map_begin(b, TS_LINK_TABLE, gfn, level);
	check_gfn_level(b, TS_LINK_TABLE, gfn, level, TDP_LEVEL_2M,
			b->root_level);

	tdp_spin_lock(&b->lock);
	ext = check_new_ext(b, TS_LINK_TABLE, gfn, level, ext);
	e = claim_entry(b, TS_LINK_TABLE, gfn, level, ENT_TABLE);
	if (e && ext) {
		e->ext = ext;
		ext_add(b, ext);
	}
	tdp_spin_unlock(&b->lock);

	/* A slow SEPT.ADD widens the window in which the entry is frozen. */
	if (b->link_delay_us)
		tdp_udelay(b->link_delay_us);
	if (b->hook)
		b->hook(b->hook_arg, TS_LINK_TABLE, gfn, level);
	ret = decide_map(b, TS_LINK_TABLE);

	tdp_spin_lock(&b->lock);
	if (e) {
		if (!ret) {
			e->live = true;
			b->nr_tables++;
			if (e->ext)
				ext_write_mark(b, e->ext, ext_mark(e->ext));
		} else {
			if (e->ext)
				ext_del(b, e->ext);
			drop_entry(b, e);
		}
	}
	count_injected(b, ret);
	log_event(b, TS_LINK_TABLE, gfn, level, 0, ext, ret);
	tdp_spin_unlock(&b->lock);

	map_end(b, TS_LINK_TABLE, gfn, level);
	return ret;
}

static int ts_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct ts_backend *b = ctx;
	struct ent *e;
	int ret;

	map_begin(b, TS_SET_LEAF, gfn, level);
	check_gfn_level(b, TS_SET_LEAF, gfn, level, TDP_LEVEL_4K, TDP_LEVEL_1G);
	if (level >= TDP_LEVEL_4K && level <= TDP_LEVEL_1G)
		check_pfn_aligned(b, TS_SET_LEAF, gfn, level, pfn);

	tdp_spin_lock(&b->lock);
	e = claim_entry(b, TS_SET_LEAF, gfn, level, ENT_LEAF);
	if (e)
		e->pfn = pfn;
	tdp_spin_unlock(&b->lock);

	if (b->hook)
		b->hook(b->hook_arg, TS_SET_LEAF, gfn, level);
	ret = decide_map(b, TS_SET_LEAF);

	tdp_spin_lock(&b->lock);
	if (e) {
		if (!ret) {
			e->live = true;
			b->nr_leaves++;
		} else {
			drop_entry(b, e);
		}
	}
	count_injected(b, ret);
	log_event(b, TS_SET_LEAF, gfn, level, pfn, NULL, ret);
	tdp_spin_unlock(&b->lock);

	map_end(b, TS_SET_LEAF, gfn, level);
	return ret;
}

/*
 * The live leaf (@level, @gfn) mapping @pfn that remove_leaf or
 * demote_leaf names; NULL (a violation) when the model has none.
 * b->lock held.
 */
static struct ent *find_leaf(struct ts_backend *b, enum ts_call call,
			     tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct ent *e = ent_find(b, gfn, level);
	unsigned long long g = (unsigned long long)gfn;

	if (!e || e->kind != ENT_LEAF || !e->live) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d, pfn %#llx): no such "
			     "leaf%s",
			     call_names[call], g, level,
			     (unsigned long long)pfn,
			     !e			    ? ""
			     : e->kind == ENT_TABLE ? " (entry is a table)"
						    : " (set_leaf in flight)");
		return NULL;
	}
	if (e->pfn != pfn)
		ts_violation(b,
			     "%s(gfn %#llx, level %d): pfn %#llx but the leaf "
			     "maps %#llx",
			     call_names[call], g, level,
			     (unsigned long long)pfn,
			     (unsigned long long)e->pfn);
	return e;
}

/*
 * The live linked table (@level, @gfn) that free_table or promote_leaf
 * names, handed back with @ext; NULL (a violation) when the model has
 * none.  b->lock held.
 */
static struct ent *find_table(struct ts_backend *b, enum ts_call call,
			      tdp_gfn_t gfn, int level,
			      struct tdp_ext_table *ext)
{
	struct ent *e = ent_find(b, gfn, level);

	if (!e || e->kind != ENT_TABLE || !e->live || e->leaked) {
		ts_violation(b,
			     "%s(gfn %#llx, level %d): no such linked table%s",
			     call_names[call], (unsigned long long)gfn, level,
			     !e			   ? ""
			     : e->kind == ENT_LEAF ? " (entry is a leaf)"
			     : e->leaked ? " (free_table already failed)"
					 : " (link_table in flight)");
		return NULL;
	}
	check_linked_ext(b, call, e, ext);
	return e;
}

static int ts_remove_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct ts_backend *b = ctx;
	struct ent *e;
	int ret = 0;

	removal_begin(b, TS_REMOVE_LEAF, gfn, level);
	check_gfn_level(b, TS_REMOVE_LEAF, gfn, level, TDP_LEVEL_4K,
			TDP_LEVEL_1G);
	check_unreachable(b, TS_REMOVE_LEAF, gfn, level);

	tdp_spin_lock(&b->lock);
	e = find_leaf(b, TS_REMOVE_LEAF, gfn, level, pfn);
	if (tdp_atomic_xchg(&b->fail_next_remove, 0)) {
		ret = -EFAULT;
	} else if (e) {
		drop_entry(b, e);
		b->nr_leaves--;
	}
	log_event(b, TS_REMOVE_LEAF, gfn, level, pfn, NULL, ret);
	tdp_spin_unlock(&b->lock);

	removal_end(b);
	if (b->remove_hook)
		b->remove_hook(b->remove_hook_arg, TS_REMOVE_LEAF, gfn, level);
	return ret;
}

static int ts_free_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext)
{
	struct ts_backend *b = ctx;
	struct ent *e;
	int ret = 0;

	removal_begin(b, TS_FREE_TABLE, gfn, level);
	check_gfn_level(b, TS_FREE_TABLE, gfn, level, TDP_LEVEL_2M,
			b->root_level);
	check_unreachable(b, TS_FREE_TABLE, gfn, level);

	tdp_spin_lock(&b->lock);
	e = find_table(b, TS_FREE_TABLE, gfn, level, ext);
	if (e && e->children)
		ts_violation(b,
			     "free_table(gfn %#llx, level %d): %u entries "
			     "still linked below (parent before children)",
			     (unsigned long long)gfn, level, e->children);
	if (tdp_atomic_xchg(&b->fail_next_free, 0)) {
		ret = -EFAULT;
		if (e)
			e->leaked = true;
	} else if (e && !e->children) {
		if (e->ext) {
			ext_write_mark(b, e->ext, 0);
			ext_del(b, e->ext);
		}
		drop_entry(b, e);
		b->nr_tables--;
	}
	log_event(b, TS_FREE_TABLE, gfn, level, 0, ext, ret);
	tdp_spin_unlock(&b->lock);

	removal_end(b);
	return ret;
}

/*
 * Turn leaf @e into a linked table of 512 leaves one level down mapping
 * its frames in order, with backend page @ext.  The children are
 * allocated first (chained through their nodes), so that running out of
 * memory leaves the model as it was (and is a violation).  b->lock held.
 */
static void demote_model(struct ts_backend *b, struct ent *e,
			 struct tdp_ext_table *ext)
{
	uint64_t step = tdp_level_pages(e->level - 1);
	tdp_pfn_t pfn = e->pfn;
	struct ent *chain = NULL, *c;
	int i;

	for (i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		c = ent_alloc(b);
		if (!c) {
			while (chain) {
				c = chain;
				chain = (struct ent *)c->node.next;
				tdp_free(c);
			}
			return;
		}
		c->node.next = chain ? &chain->node : NULL;
		chain = c;
	}
	e->kind = ENT_TABLE;
	e->pfn = 0;
	e->children = 0;
	b->nr_leaves--;
	b->nr_tables++;
	if (ext) {
		e->ext = ext;
		ext_add(b, ext);
		ext_write_mark(b, ext, ext_mark(ext));
	}
	for (i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		c = chain;
		chain = (struct ent *)c->node.next;
		c->gfn = e->gfn + (uint64_t)i * step;
		c->level = e->level - 1;
		c->kind = ENT_LEAF;
		c->live = true;
		c->pfn = pfn + (uint64_t)i * step;
		hash_insert(&b->ents, &c->node);
		e->children++;
		b->nr_leaves++;
	}
}

/*
 * A huge leaf becomes a linked table of 512 leaves one level down that map
 * its frames in order.  Checked like a removal (mmu_lock held for write,
 * no other callback at the same time) when a zap demotes, like a map
 * (mmu_lock held for read, no removal at the same time) when a fault
 * does, plus: the leaf is frozen in the mirror, exists at that level in
 * the model with that PFN, nothing is recorded below it yet, and the
 * backend page is a new one.  A one-shot failure leaves the model
 * unchanged.
 */
static int ts_demote_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			  struct tdp_ext_table *ext)
{
	struct ts_backend *b = ctx;
	/* A zap demotes under the write lock, a fault under the read lock. */
	bool by_fault = b->mmu && !tdp_port_lock_held_write(&b->mmu->mmu_lock);
	struct ent *e;
	int ret = 0;

	if (by_fault) {
		map_begin(b, TS_DEMOTE_LEAF, gfn, level);
	} else {
		removal_begin(b, TS_DEMOTE_LEAF, gfn, level);
		check_frozen(b, TS_DEMOTE_LEAF, gfn, level);
	}
	check_gfn_level(b, TS_DEMOTE_LEAF, gfn, level, TDP_LEVEL_2M,
			TDP_LEVEL_1G);
	if (level < TDP_LEVEL_2M || level > TDP_LEVEL_1G) {
		ret = -EINVAL;
		goto out;
	}
	check_pfn_aligned(b, TS_DEMOTE_LEAF, gfn, level, pfn);

	tdp_spin_lock(&b->lock);
	ext = check_new_ext(b, TS_DEMOTE_LEAF, gfn, level, ext);
	e = find_leaf(b, TS_DEMOTE_LEAF, gfn, level, pfn);
	for (int i = 0; e && i < TDP_SPTES_PER_TABLE; i++) {
		uint64_t step = tdp_level_pages(level - 1);

		if (ent_find(b, gfn + (uint64_t)i * step, level - 1)) {
			ts_violation(b,
				     "demote_leaf(gfn %#llx, level %d): entry "
				     "%d below the leaf already exists",
				     (unsigned long long)gfn, level, i);
			e = NULL;
		}
	}
	if (b->fail_demote_left > 0) {
		b->fail_demote_left--;
		ret = b->fail_demote_err;
	}
	if (!ret && e)
		demote_model(b, e, ext);
	log_event(b, TS_DEMOTE_LEAF, gfn, level, pfn, ext, ret);
	tdp_spin_unlock(&b->lock);

out:
	if (by_fault)
		map_end(b, TS_DEMOTE_LEAF, gfn, level);
	else
		removal_end(b);
	return ret;
}

/*
 * A table of 512 leaves one level down, mapping @pfn onwards in order,
 * becomes one leaf mapping @pfn; its backend page is released.  Checked
 * like a removal (mmu_lock held for write, nothing else at the same time)
 * with the entry frozen in the mirror.  A one-shot failure leaves the
 * model unchanged.
 */
static int ts_promote_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			   struct tdp_ext_table *ext)
{
	struct ts_backend *b = ctx;
	unsigned long long g = (unsigned long long)gfn;
	uint64_t step;
	struct ent *e;
	int ret = 0;

	removal_begin(b, TS_PROMOTE_LEAF, gfn, level);
	check_frozen(b, TS_PROMOTE_LEAF, gfn, level);
	check_gfn_level(b, TS_PROMOTE_LEAF, gfn, level, TDP_LEVEL_2M,
			TDP_LEVEL_1G);
	if (level < TDP_LEVEL_2M || level > TDP_LEVEL_1G) {
		removal_end(b);
		return -EINVAL;
	}
	step = tdp_level_pages(level - 1);
	check_pfn_aligned(b, TS_PROMOTE_LEAF, gfn, level, pfn);

	tdp_spin_lock(&b->lock);
	e = find_table(b, TS_PROMOTE_LEAF, gfn, level, ext);
	for (int i = 0; e && i < TDP_SPTES_PER_TABLE; i++) {
		struct ent *c =
			ent_find(b, gfn + (uint64_t)i * step, level - 1);

		if (!c || c->kind != ENT_LEAF || !c->live ||
		    c->pfn != pfn + (uint64_t)i * step) {
			ts_violation(b,
				     "promote_leaf(gfn %#llx, level %d): entry "
				     "%d is not a leaf mapping pfn %#llx",
				     g, level, i,
				     (unsigned long long)(pfn + i * step));
			e = NULL;
		}
	}
	if (b->fail_promote_left > 0) {
		b->fail_promote_left--;
		ret = b->fail_promote_err;
	}
	if (!ret && e) {
		for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
			struct ent *c = ent_find(b, gfn + (uint64_t)i * step,
						 level - 1);

			hash_unlink(&b->ents, &c->node);
			tdp_free(c);
			b->nr_leaves--;
		}
		if (e->ext) {
			ext_write_mark(b, e->ext, 0);
			ext_del(b, e->ext);
			e->ext = NULL;
		}
		e->children = 0;
		e->kind = ENT_LEAF;
		e->pfn = pfn;
		b->nr_tables--;
		b->nr_leaves++;
	}
	log_event(b, TS_PROMOTE_LEAF, gfn, level, pfn, ext, ret);
	tdp_spin_unlock(&b->lock);

	removal_end(b);
	return ret;
}

/* ---- set-up and queries -------------------------------------------------- */

struct ts_backend *ts_backend_create(int root_level, tdp_gfn_t direct_bits,
				     size_t ext_table_size)
{
	struct ts_backend *b;

	/* The backend marks both ends of each backend page it owns. */
	if (ext_table_size && ext_table_size < 2 * sizeof(uint64_t))
		return NULL;
	b = tdp_zalloc_atomic(sizeof(*b));
	if (!b)
		return NULL;
	b->root_level = root_level;
	b->direct_bits = direct_bits;
	b->ext_size = ext_table_size;
	if (!hash_init(&b->ents, ent_key) || !hash_init(&b->exts, ext_key)) {
		tdp_free(b->ents.buckets);
		tdp_free(b->exts.buckets);
		tdp_free(b);
		return NULL;
	}
	tdp_spin_lock_init(&b->lock);
	/* One table, lined up so it reads as one. */
	/* clang-format off */
	b->ops = (struct tdp_private_backend){
		.link_table     = ts_link_table,
		.set_leaf       = ts_set_leaf,
		.remove_leaf    = ts_remove_leaf,
		.free_table     = ts_free_table,
		.ctx            = b,
		.ext_table_size = ext_table_size,
	};
	/* clang-format on */
	return b;
}

void ts_backend_destroy(struct ts_backend *b)
{
	if (!b)
		return;
	hash_destroy(&b->ents);
	hash_destroy(&b->exts);
	tdp_free(b->log);
	tdp_spin_lock_destroy(&b->lock);
	tdp_free(b);
}

const struct tdp_private_backend *ts_backend_ops(struct ts_backend *b)
{
	return &b->ops;
}

void ts_backend_set_mmu(struct ts_backend *b, struct tdp_mmu *mmu)
{
	b->mmu = mmu;
}

void ts_set_link_delay(struct ts_backend *b, unsigned int usec)
{
	b->link_delay_us = usec;
}

void ts_set_injection(struct ts_backend *b, unsigned int busy_permille,
		      unsigned int error_permille, uint64_t seed)
{
	tdp_spin_lock(&b->lock);
	b->rng = seed;
	tdp_spin_unlock(&b->lock);
	tdp_atomic_set(&b->busy_permille, (int)busy_permille);
	tdp_atomic_set(&b->error_permille, (int)error_permille);
}

void ts_fail_next_map(struct ts_backend *b, enum ts_call call, int err)
{
	tdp_atomic_set(call == TS_LINK_TABLE ? &b->fail_next_link
					     : &b->fail_next_set,
		       err);
}

void ts_fail_next_remove(struct ts_backend *b)
{
	tdp_atomic_set(&b->fail_next_remove, 1);
}

void ts_fail_next_free(struct ts_backend *b)
{
	tdp_atomic_set(&b->fail_next_free, 1);
}

void ts_set_demote(struct ts_backend *b, bool on, bool in_faults)
{
	b->ops.demote_leaf = on ? ts_demote_leaf : NULL;
	b->ops.demote_in_faults = on && in_faults;
}

void ts_set_promote(struct ts_backend *b, bool on)
{
	b->ops.promote_leaf = on ? ts_promote_leaf : NULL;
}

void ts_fail_next_promotes(struct ts_backend *b, int err, int n)
{
	tdp_spin_lock(&b->lock);
	b->fail_promote_err = err;
	b->fail_promote_left = n;
	tdp_spin_unlock(&b->lock);
}

void ts_fail_next_demotes(struct ts_backend *b, int err, int n)
{
	tdp_spin_lock(&b->lock);
	b->fail_demote_err = err;
	b->fail_demote_left = n;
	tdp_spin_unlock(&b->lock);
}

void ts_forbid_calls(struct ts_backend *b, bool forbid)
{
	tdp_flag_set(&b->forbid, forbid);
}

void ts_set_hook(struct ts_backend *b, ts_hook_fn fn, void *arg)
{
	b->hook_arg = arg;
	b->hook = fn;
}

void ts_set_remove_hook(struct ts_backend *b, ts_hook_fn fn, void *arg)
{
	b->remove_hook_arg = arg;
	b->remove_hook = fn;
}

void ts_log_enable(struct ts_backend *b, bool on)
{
	tdp_spin_lock(&b->lock);
	b->log_on = on;
	tdp_spin_unlock(&b->lock);
}

void ts_log_clear(struct ts_backend *b)
{
	tdp_spin_lock(&b->lock);
	b->log_len = 0;
	tdp_spin_unlock(&b->lock);
}

size_t ts_log_count(struct ts_backend *b)
{
	return TS_LOCKED(&b->lock, b->log_len);
}

struct ts_event ts_log_get(struct ts_backend *b, size_t i)
{
	struct ts_event ev = { .ret = -ERANGE };

	tdp_spin_lock(&b->lock);
	if (i < b->log_len)
		ev = b->log[i];
	tdp_spin_unlock(&b->lock);
	return ev;
}

struct ts_counts ts_counts(struct ts_backend *b)
{
	struct ts_counts c;

	tdp_spin_lock(&b->lock);
	c = b->counts;
	tdp_spin_unlock(&b->lock);
	c.violations = ts_violations(b);
	return c;
}

uint64_t ts_calls(struct ts_backend *b, enum ts_call call)
{
	return ts_counts(b).calls[call];
}

uint64_t ts_ok(struct ts_backend *b, enum ts_call call)
{
	return ts_counts(b).ok[call];
}

size_t ts_nr_tables(struct ts_backend *b)
{
	return TS_LOCKED(&b->lock, b->nr_tables);
}

size_t ts_nr_leaves(struct ts_backend *b)
{
	return TS_LOCKED(&b->lock, b->nr_leaves);
}

/* The live leaf covering @gfn; called with b->lock held. */
static struct ent *leaf_covering(struct ts_backend *b, tdp_gfn_t gfn)
{
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		struct ent *e =
			ent_find(b, tdp_gfn_round_down(gfn, level), level);

		if (e && e->kind == ENT_LEAF && e->live)
			return e;
	}
	return NULL;
}

bool ts_leaf_at(struct ts_backend *b, tdp_gfn_t gfn, int *level, tdp_pfn_t *pfn)
{
	struct ent *e;

	tdp_spin_lock(&b->lock);
	e = leaf_covering(b, gfn);
	if (e) {
		if (level)
			*level = e->level;
		if (pfn)
			*pfn = e->pfn;
	}
	tdp_spin_unlock(&b->lock);
	return e != NULL;
}

bool ts_table_at(struct ts_backend *b, tdp_gfn_t gfn, int level)
{
	struct ent *e;
	bool ret;

	tdp_spin_lock(&b->lock);
	e = ent_find(b, tdp_gfn_round_down(gfn, level), level);
	ret = e && e->kind == ENT_TABLE && e->live;
	tdp_spin_unlock(&b->lock);
	return ret;
}

struct tdp_ext_table *ts_table_ext(struct ts_backend *b, tdp_gfn_t gfn,
				   int level)
{
	struct tdp_ext_table *ext = NULL;
	struct ent *e;

	tdp_spin_lock(&b->lock);
	e = ent_find(b, tdp_gfn_round_down(gfn, level), level);
	if (e && e->kind == ENT_TABLE)
		ext = e->ext;
	tdp_spin_unlock(&b->lock);
	return ext;
}

/* ---- mirror == model ----------------------------------------------------- */

#define CMP_DETAIL_LIMIT 20

static void mismatch(unsigned long *bad, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mismatch(unsigned long *bad, const char *fmt, ...)
{
	char msg[TS_MSG_MAX];
	va_list ap;

	if (++*bad > CMP_DETAIL_LIMIT)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tdp_log_err("mirror != test backend: %s", msg);
}

/*
 * Check one lookup result for @gfn against the model: the tables above
 * @level are linked, and the entry at @level is the leaf found or
 * nothing.  Returns 1 if a present leaf was found.  b->lock held.
 */
static int compare_one(struct ts_backend *b, const struct tdp_spte_format *fmt,
		       tdp_gfn_t gfn, tdp_spte_t spte, int level,
		       unsigned long *bad)
{
	struct ent *e = ent_find(b, tdp_gfn_round_down(gfn, level), level);
	unsigned long long g = (unsigned long long)gfn;
	tdp_pfn_t pfn;

	for (int k = level + 1; k <= b->root_level; k++) {
		struct ent *t = ent_find(b, tdp_gfn_round_down(gfn, k), k);

		if (!t || t->kind != ENT_TABLE || !t->live)
			mismatch(bad,
				 "gfn %#llx: the mirror walks through a table "
				 "at level %d the backend has not linked",
				 g, k);
	}
	if (tdp_spte_is_frozen(fmt, spte)) {
		mismatch(bad, "gfn %#llx: frozen SPTE reachable at level %d", g,
			 level);
		return 0;
	}
	if (!tdp_spte_is_present(fmt, spte)) {
		if (e)
			mismatch(bad,
				 "gfn %#llx: mirror entry at level %d is not "
				 "present (%#llx), the backend has a %s",
				 g, level, (unsigned long long)spte,
				 e->kind == ENT_TABLE ? "table" : "leaf");
		return 0;
	}
	if (!tdp_spte_is_leaf(fmt, spte, level)) {
		mismatch(bad,
			 "gfn %#llx: lookup stopped at a present non-leaf at "
			 "level %d",
			 g, level);
		return 0;
	}
	pfn = tdp_spte_pfn(fmt, spte);
	if (!e || e->kind != ENT_LEAF || !e->live)
		mismatch(bad,
			 "gfn %#llx: mirror has a leaf at level %d (pfn "
			 "%#llx), the backend has %s",
			 g, level, (unsigned long long)pfn,
			 !e			? "nothing"
			 : e->kind == ENT_TABLE ? "a table"
						: "a leaf in flight");
	else if (e->pfn != pfn)
		mismatch(bad,
			 "gfn %#llx: mirror leaf at level %d maps pfn %#llx, "
			 "the backend pfn %#llx",
			 g, level, (unsigned long long)pfn,
			 (unsigned long long)e->pfn);
	return 1;
}

/* Count the model's tables and leaves, and its leaves in [start, end),
 * reporting entries still in flight.  b->lock held. */
static void count_model(struct ts_backend *b, tdp_gfn_t start, tdp_gfn_t end,
			uint64_t *tables, uint64_t *leaves,
			uint64_t *window_leaves, unsigned long *bad)
{
	for (size_t i = 0; i <= b->ents.mask; i++) {
		for (struct hnode *n = b->ents.buckets[i]; n; n = n->next) {
			struct ent *e = TDP_CONTAINER_OF(n, struct ent, node);

			if (!e->live) {
				mismatch(bad,
					 "backend entry (gfn %#llx, level %d) "
					 "still in flight",
					 (unsigned long long)e->gfn, e->level);
				continue;
			}
			if (e->kind == ENT_TABLE) {
				++*tables;
				continue;
			}
			++*leaves;
			if (e->gfn < end &&
			    e->gfn + tdp_level_pages(e->level) > start)
				++*window_leaves;
		}
	}
}

/* The model's counts against the statistics of the mirror tree. */
static void compare_stats(struct ts_backend *b, struct tdp_mmu *mmu,
			  uint64_t model_tables, uint64_t model_leaves,
			  unsigned long *bad)
{
	uint64_t stat_tables = 0, stat_leaves = 0;
	struct tdp_stats st;

	if (tdp_mmu_get_stats(mmu, &st)) {
		mismatch(bad, "tdp_mmu_get_stats failed");
		return;
	}
	for (int l = TDP_LEVEL_4K; l < b->root_level; l++)
		stat_tables += st.tables[TDP_ROOT_MIRROR][l];
	for (int l = TDP_LEVEL_4K; l <= TDP_MAX_LEVEL; l++)
		stat_leaves += st.leaves[TDP_ROOT_MIRROR][l];
	if (stat_tables != model_tables)
		mismatch(bad,
			 "stats: %llu mirror tables below the root, the "
			 "backend has %llu",
			 (unsigned long long)stat_tables,
			 (unsigned long long)model_tables);
	if (stat_leaves != model_leaves)
		mismatch(bad, "stats: %llu mirror leaves, the backend has %llu",
			 (unsigned long long)stat_leaves,
			 (unsigned long long)model_leaves);
}

unsigned long ts_compare(struct ts_backend *b, struct tdp_mmu *mmu,
			 tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	unsigned long bad = 0;
	uint64_t mirror_leaves = 0, window_leaves = 0;
	uint64_t model_leaves = 0, model_tables = 0;
	tdp_gfn_t gfn = start;

	tdp_spin_lock(&b->lock);
	while (gfn < end) {
		tdp_spte_t spte;
		int level, ret;

		ret = tdp_lookup(mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &level);
		if (ret || level < TDP_LEVEL_4K || level > b->root_level) {
			mismatch(&bad,
				 "tdp_lookup(gfn %#llx, PRIVATE) = %d, "
				 "level %d",
				 (unsigned long long)gfn, ret, level);
			break;
		}
		mirror_leaves += compare_one(b, fmt, gfn, spte, level, &bad);
		gfn = tdp_gfn_round_down(gfn, level) + tdp_level_pages(level);
		if (gfn == 0)
			break;
	}
	count_model(b, start, end, &model_tables, &model_leaves, &window_leaves,
		    &bad);
	tdp_spin_unlock(&b->lock);

	if (mirror_leaves != window_leaves)
		mismatch(&bad,
			 "window [%#llx, %#llx): %llu leaves in the mirror, "
			 "%llu in the backend",
			 (unsigned long long)start, (unsigned long long)end,
			 (unsigned long long)mirror_leaves,
			 (unsigned long long)window_leaves);
	compare_stats(b, mmu, model_tables, model_leaves, &bad);
	if (bad > CMP_DETAIL_LIMIT)
		tdp_log_err("mirror != test backend: %lu mismatches in all",
			    bad);
	return bad;
}
