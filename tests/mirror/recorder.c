/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strict recording private backend (see recorder.h).
 *
 * The model is one chained hash of entries keyed by (level, gfn): a table
 * entry for every link_table that succeeded, a leaf entry for every
 * set_leaf that succeeded.  It and the hash of known backend pages start
 * small and double whenever they hold more entries than buckets, so a
 * recorder costs little to create, scan and destroy when it holds little
 * (the fuzzer makes one per input).  While a map callback runs its entry is in the
 * hash but not live, so a callback that names a GFN below it is caught as
 * "child before parent".  Everything in the model is protected by
 * r->lock; the in-flight counters used to catch overlaps are atomics.
 *
 * White box: the lock checks read the MMU's mmu_lock through the engine's
 * internal header (debug builds only).
 */
#include "recorder.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_MIN_BUCKETS 64U
#define REC_PRINT_LIMIT 40
#define REC_EXT_MAGIC 0x5245434f52444552ULL /* "RECORDER" */

enum ent_kind { ENT_TABLE, ENT_LEAF };

struct ent {
	struct ent *next;
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
	struct ext_node *next;
	const struct tdp_ext_table *ext;
};

struct recorder {
	struct tdp_private_backend be;
	int root_level;
	tdp_gfn_t direct_bits;
	size_t ext_size;
	struct tdp_mmu *mmu;

	/* Injection: written before the MMU runs, read by callbacks. */
	unsigned int link_sleep_us;
	unsigned int busy_permille;
	unsigned int error_permille;
	uint64_t rng;	      /* atomic */
	int fail_next_link;   /* atomic: errno to return once, or 0 */
	int fail_next_set;    /* atomic */
	int fail_next_remove; /* atomic flag */
	int fail_next_free;   /* atomic flag */
	int fail_demote_err;  /* errno for the next fail_demote_left calls */
	int fail_demote_left; /* both protected by lock */
	int fail_promote_err;  /* the same for promote_leaf; lock */
	int fail_promote_left;
	bool forbid;	      /* atomic */
	rec_hook_fn hook;
	void *hook_arg;
	rec_hook_fn remove_hook;
	void *remove_hook_arg;

	/* Overlap detection: atomics. */
	int maps_in_flight;
	int removing;

	/* Model, log and counts: protected by lock. */
	pthread_mutex_t lock;
	struct ent **buckets;	       /* ent_mask + 1 chains */
	struct ext_node **ext_buckets; /* ext_mask + 1 chains */
	size_t ent_mask, ext_mask;     /* bucket counts - 1, powers of two */
	size_t nr_ents, nr_exts;       /* entries in each hash */
	size_t nr_tables, nr_leaves, nr_in_flight;
	struct rec_counts counts;
	bool log_on;
	struct rec_event *log;
	size_t log_len, log_cap;

	uint64_t violations; /* atomic */
};

static const char *const call_names[] = {
	[REC_LINK_TABLE] = "link_table",
	[REC_SET_LEAF] = "set_leaf",
	[REC_REMOVE_LEAF] = "remove_leaf",
	[REC_FREE_TABLE] = "free_table",
	[REC_DEMOTE_LEAF] = "demote_leaf",
	[REC_PROMOTE_LEAF] = "promote_leaf",
};

/* ---- violations -------------------------------------------------------- */

static void rec_vviolation(struct recorder *r, const char *fmt, va_list ap)
{
	uint64_t n = __atomic_add_fetch(&r->violations, 1, __ATOMIC_RELAXED);

	if (n > REC_PRINT_LIMIT)
		return;
	fprintf(stderr, "recorder violation #%llu: ", (unsigned long long)n);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (n == REC_PRINT_LIMIT)
		fprintf(stderr, "recorder: further violations not printed\n");
}

void rec_violation(struct recorder *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rec_vviolation(r, fmt, ap);
	va_end(ap);
}

uint64_t rec_violations(struct recorder *r)
{
	return __atomic_load_n(&r->violations, __ATOMIC_RELAXED);
}

/* ---- the model ---------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		abort();
	return p;
}

static uint64_t ent_hash(tdp_gfn_t gfn, int level)
{
	uint64_t h =
		(gfn >> ((level - 1) * TDP_LEVEL_BITS)) * 0x9e3779b97f4a7c15ULL;

	h ^= (uint64_t)level * 0xc2b2ae3d27d4eb4fULL;
	h ^= h >> 29;
	return h;
}

static struct ent **ent_bucket(struct recorder *r, tdp_gfn_t gfn, int level)
{
	return &r->buckets[ent_hash(gfn, level) & r->ent_mask];
}

static struct ent *ent_find(struct recorder *r, tdp_gfn_t gfn, int level)
{
	for (struct ent *e = *ent_bucket(r, gfn, level); e; e = e->next)
		if (e->gfn == gfn && e->level == level)
			return e;
	return NULL;
}

/* Twice the buckets, every entry moved over.  Called with r->lock held. */
static void ent_grow(struct recorder *r)
{
	struct ent **old = r->buckets;
	size_t old_count = r->ent_mask + 1;

	r->ent_mask = 2 * old_count - 1;
	r->buckets = xcalloc(2 * old_count, sizeof(*r->buckets));
	for (size_t i = 0; i < old_count; i++) {
		while (old[i]) {
			struct ent *e = old[i];
			struct ent **b = ent_bucket(r, e->gfn, e->level);

			old[i] = e->next;
			e->next = *b;
			*b = e;
		}
	}
	free(old);
}

static void ent_insert(struct recorder *r, struct ent *e)
{
	struct ent **b;

	if (++r->nr_ents > r->ent_mask + 1)
		ent_grow(r);
	b = ent_bucket(r, e->gfn, e->level);
	e->next = *b;
	*b = e;
}

static void ent_unlink(struct recorder *r, struct ent *e)
{
	struct ent **pp = ent_bucket(r, e->gfn, e->level);

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	r->nr_ents--;
}

static struct ext_node **ext_bucket(struct recorder *r,
				    const struct tdp_ext_table *ext)
{
	uint64_t h = (uint64_t)(uintptr_t)ext * 0x9e3779b97f4a7c15ULL;

	return &r->ext_buckets[(h >> 32) & r->ext_mask];
}

static bool ext_known(struct recorder *r, const struct tdp_ext_table *ext)
{
	for (struct ext_node *n = *ext_bucket(r, ext); n; n = n->next)
		if (n->ext == ext)
			return true;
	return false;
}

/* Twice the buckets, every node moved over.  Called with r->lock held. */
static void ext_grow(struct recorder *r)
{
	struct ext_node **old = r->ext_buckets;
	size_t old_count = r->ext_mask + 1;

	r->ext_mask = 2 * old_count - 1;
	r->ext_buckets = xcalloc(2 * old_count, sizeof(*r->ext_buckets));
	for (size_t i = 0; i < old_count; i++) {
		while (old[i]) {
			struct ext_node *n = old[i];
			struct ext_node **b = ext_bucket(r, n->ext);

			old[i] = n->next;
			n->next = *b;
			*b = n;
		}
	}
	free(old);
}

static void ext_add(struct recorder *r, const struct tdp_ext_table *ext)
{
	struct ext_node *n = xcalloc(1, sizeof(*n));
	struct ext_node **b;

	if (++r->nr_exts > r->ext_mask + 1)
		ext_grow(r);
	b = ext_bucket(r, ext);
	n->ext = ext;
	n->next = *b;
	*b = n;
}

static void ext_del(struct recorder *r, const struct tdp_ext_table *ext)
{
	for (struct ext_node **pp = ext_bucket(r, ext); *pp;
	     pp = &(*pp)->next) {
		if ((*pp)->ext == ext) {
			struct ext_node *n = *pp;

			*pp = n->next;
			free(n);
			r->nr_exts--;
			return;
		}
	}
}

/* The mark the recorder writes into a backend page it owns. */
static uint64_t ext_mark(const struct tdp_ext_table *ext)
{
	return REC_EXT_MAGIC ^ (uint64_t)(uintptr_t)ext;
}

static void ext_write_mark(struct recorder *r, struct tdp_ext_table *ext,
			   uint64_t v)
{
	char *p = (char *)ext;

	memcpy(p, &v, sizeof(v));
	if (r->ext_size >= 2 * sizeof(v))
		memcpy(p + r->ext_size - sizeof(v), &v, sizeof(v));
}

bool rec_ext_intact(struct recorder *r, const struct tdp_ext_table *ext)
{
	const char *p = (const char *)ext;
	uint64_t head, tail;

	if (!ext || r->ext_size < sizeof(uint64_t))
		return false;
	memcpy(&head, p, sizeof(head));
	tail = head;
	if (r->ext_size >= 2 * sizeof(tail))
		memcpy(&tail, p + r->ext_size - sizeof(tail), sizeof(tail));
	return head == ext_mark(ext) && tail == ext_mark(ext);
}

static bool ext_is_zero(struct recorder *r, const struct tdp_ext_table *ext)
{
	const unsigned char *p = (const unsigned char *)ext;

	for (size_t i = 0; i < r->ext_size; i++)
		if (p[i])
			return false;
	return true;
}

static void log_event(struct recorder *r, enum rec_call call, tdp_gfn_t gfn,
		      int level, tdp_pfn_t pfn, struct tdp_ext_table *ext,
		      int ret)
{
	r->counts.calls[call]++;
	if (!ret)
		r->counts.ok[call]++;
	if (!r->log_on)
		return;
	if (r->log_len == r->log_cap) {
		size_t cap = r->log_cap ? 2 * r->log_cap : 64;
		struct rec_event *n = realloc(r->log, cap * sizeof(*n));

		if (!n)
			abort();
		r->log = n;
		r->log_cap = cap;
	}
	r->log[r->log_len++] = (struct rec_event){
		.call = call,
		.gfn = gfn,
		.level = level,
		.pfn = pfn,
		.ext = ext,
		.ret = ret,
	};
}

/* ---- checks shared by the callbacks -------------------------------------- */

static void check_gfn_level(struct recorder *r, enum rec_call call,
			    tdp_gfn_t gfn, int level, int min_level,
			    int max_level)
{
	const char *name = call_names[call];

	if (level < min_level || level > max_level) {
		rec_violation(r, "%s(gfn %#llx): level %d outside [%d, %d]",
			      name, (unsigned long long)gfn, level, min_level,
			      max_level);
		return;
	}
	if (gfn & r->direct_bits)
		rec_violation(r,
			      "%s(gfn %#llx, level %d): GFN is aliased "
			      "(shared bit set)",
			      name, (unsigned long long)gfn, level);
	if (gfn & (tdp_level_pages(level) - 1))
		rec_violation(r,
			      "%s(gfn %#llx, level %d): GFN not aligned to "
			      "the level",
			      name, (unsigned long long)gfn, level);
}

static void map_begin(struct recorder *r, enum rec_call call, tdp_gfn_t gfn,
		      int level)
{
	__atomic_add_fetch(&r->maps_in_flight, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->forbid, __ATOMIC_RELAXED))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) called while callbacks "
			      "are forbidden (dead MMU)",
			      call_names[call], (unsigned long long)gfn, level);
	if (__atomic_load_n(&r->removing, __ATOMIC_SEQ_CST))
		rec_violation(r, "%s(gfn %#llx, level %d) overlaps a removal",
			      call_names[call], (unsigned long long)gfn, level);
#ifndef NDEBUG
	if (r->mmu && !tdp_port_lock_held_read(&r->mmu->mmu_lock))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) without mmu_lock held "
			      "for read",
			      call_names[call], (unsigned long long)gfn, level);
#endif
}

static void map_end(struct recorder *r, enum rec_call call, tdp_gfn_t gfn,
		    int level)
{
	if (__atomic_load_n(&r->removing, __ATOMIC_SEQ_CST))
		rec_violation(r, "%s(gfn %#llx, level %d) overlapped a removal",
			      call_names[call], (unsigned long long)gfn, level);
	__atomic_sub_fetch(&r->maps_in_flight, 1, __ATOMIC_SEQ_CST);
}

static void removal_begin(struct recorder *r, enum rec_call call, tdp_gfn_t gfn,
			  int level)
{
	if (__atomic_load_n(&r->forbid, __ATOMIC_RELAXED))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) called while callbacks "
			      "are forbidden (dead MMU)",
			      call_names[call], (unsigned long long)gfn, level);
#ifndef NDEBUG
	if (r->mmu && !tdp_port_lock_held_write(&r->mmu->mmu_lock))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) without mmu_lock held "
			      "for write",
			      call_names[call], (unsigned long long)gfn, level);
#endif
	if (__atomic_exchange_n(&r->removing, 1, __ATOMIC_SEQ_CST))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) runs concurrently with "
			      "another removal",
			      call_names[call], (unsigned long long)gfn, level);
	if (__atomic_load_n(&r->maps_in_flight, __ATOMIC_SEQ_CST))
		rec_violation(r,
			      "%s(gfn %#llx, level %d) overlaps a map callback",
			      call_names[call], (unsigned long long)gfn, level);
}

static void removal_end(struct recorder *r)
{
	__atomic_store_n(&r->removing, 0, __ATOMIC_SEQ_CST);
}

static uint64_t rec_random(struct recorder *r)
{
	uint64_t z = __atomic_add_fetch(&r->rng, 0x9e3779b97f4a7c15ULL,
					__ATOMIC_RELAXED);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The result of one map callback: a one-shot failure, injection, or 0. */
static int decide_map(struct recorder *r, enum rec_call call)
{
	int *next =
		call == REC_LINK_TABLE ? &r->fail_next_link : &r->fail_next_set;
	int err = __atomic_exchange_n(next, 0, __ATOMIC_ACQ_REL);
	unsigned int busy =
		__atomic_load_n(&r->busy_permille, __ATOMIC_RELAXED);
	unsigned int hard =
		__atomic_load_n(&r->error_permille, __ATOMIC_RELAXED);

	if (err)
		return err;
	if (busy || hard) {
		unsigned int roll = (unsigned int)(rec_random(r) % 1000);

		if (roll < busy)
			return -EBUSY;
		if (roll < busy + hard)
			return -ENOSPC;
	}
	return 0;
}

/*
 * Claim entry (@level, @gfn) for a map callback: check that its parent
 * table is linked and that nothing is there, then insert it not live.
 * Returns NULL (after recording a violation) when the model refuses.
 * Called with r->lock held.
 */
static struct ent *claim_entry(struct recorder *r, enum rec_call call,
			       tdp_gfn_t gfn, int level, enum ent_kind kind)
{
	const char *name = call_names[call];
	struct ent *parent = NULL, *old, *e;

	if (level < r->root_level) {
		int plevel = level + 1;
		tdp_gfn_t pgfn = tdp_gfn_round_down(gfn, plevel);

		parent = ent_find(r, pgfn, plevel);
		if (!parent || parent->kind != ENT_TABLE) {
			rec_violation(r,
				      "%s(gfn %#llx, level %d): parent table "
				      "(gfn %#llx, level %d) is not linked "
				      "(child before parent)",
				      name, (unsigned long long)gfn, level,
				      (unsigned long long)pgfn, plevel);
			return NULL;
		}
		if (!parent->live) {
			rec_violation(r,
				      "%s(gfn %#llx, level %d): parent table "
				      "(gfn %#llx, level %d) is still being "
				      "linked (child before parent)",
				      name, (unsigned long long)gfn, level,
				      (unsigned long long)pgfn, plevel);
			return NULL;
		}
		if (parent->leaked) {
			rec_violation(r,
				      "%s(gfn %#llx, level %d): parent table "
				      "was handed to a failed free_table",
				      name, (unsigned long long)gfn, level);
			return NULL;
		}
	}
	old = ent_find(r, gfn, level);
	if (old) {
		rec_violation(r,
			      "%s(gfn %#llx, level %d): entry already holds "
			      "a %s%s",
			      name, (unsigned long long)gfn, level,
			      old->kind == ENT_TABLE ? "linked table"
						     : "mapped leaf",
			      old->live ? "" : " (callback in flight)");
		return NULL;
	}
	e = xcalloc(1, sizeof(*e));
	e->gfn = gfn;
	e->level = level;
	e->kind = kind;
	ent_insert(r, e);
	if (parent)
		parent->children++;
	r->nr_in_flight++;
	return e;
}

/* Drop entry @e and its count in its parent.  Called with r->lock held. */
static void drop_entry(struct recorder *r, struct ent *e)
{
	if (e->level < r->root_level) {
		int plevel = e->level + 1;
		struct ent *parent =
			ent_find(r, tdp_gfn_round_down(e->gfn, plevel), plevel);

		if (parent && parent->children)
			parent->children--;
	}
	ent_unlink(r, e);
	free(e);
}

/* ---- callbacks ------------------------------------------------------------ */

/*
 * Check the backend page of a new table (link_table, demote_leaf): none
 * without a backend page size, else page aligned, not owned by a live
 * table, zeroed.  Returns @ext, or NULL when it must not be recorded.
 * Called with r->lock held.
 */
static struct tdp_ext_table *check_new_ext(struct recorder *r,
					   enum rec_call call, tdp_gfn_t gfn,
					   int level, struct tdp_ext_table *ext)
{
	const char *name = call_names[call];
	unsigned long long g = (unsigned long long)gfn;

	if (!r->ext_size) {
		if (ext)
			rec_violation(r,
				      "%s(gfn %#llx, level %d): backend page "
				      "%p without a backend page size",
				      name, g, level, (void *)ext);
	} else if (!ext) {
		rec_violation(r, "%s(gfn %#llx, level %d): no backend page",
			      name, g, level);
	} else if ((uintptr_t)ext & (TDP_PAGE_SIZE - 1)) {
		rec_violation(r,
			      "%s(gfn %#llx, level %d): backend page %p not "
			      "page aligned",
			      name, g, level, (void *)ext);
		return NULL;
	} else if (ext_known(r, ext)) {
		rec_violation(r,
			      "%s(gfn %#llx, level %d): backend page %p "
			      "already belongs to a live table",
			      name, g, level, (void *)ext);
		return NULL;
	} else if (!ext_is_zero(r, ext)) {
		rec_violation(r,
			      "%s(gfn %#llx, level %d): backend page %p not "
			      "zeroed",
			      name, g, level, (void *)ext);
	}
	return ext;
}


/* The PFN of a huge leaf demote_leaf or promote_leaf names is aligned. */
static void check_pfn_aligned(struct recorder *r, enum rec_call call,
			      tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	if (pfn & (tdp_level_pages(level) - 1))
		rec_violation(r,
			      "%s(gfn %#llx, level %d): pfn %#llx not aligned "
			      "to the level",
			      call_names[call], (unsigned long long)gfn, level,
			      (unsigned long long)pfn);
}

/*
 * The backend page free_table or promote_leaf hands back is the one the
 * table @e was linked with, untouched.  Called with r->lock held.
 */
static void check_linked_ext(struct recorder *r, enum rec_call call,
			     const struct ent *e, struct tdp_ext_table *ext)
{
	unsigned long long g = (unsigned long long)e->gfn;

	if (e->ext != ext)
		rec_violation(r,
			      "%s(gfn %#llx, level %d): backend page %p, but "
			      "%p was linked",
			      call_names[call], g, e->level, (void *)ext,
			      (void *)e->ext);
	else if (ext && !rec_ext_intact(r, ext))
		rec_violation(r,
			      "%s(gfn %#llx, level %d): backend page %p was "
			      "written by someone else",
			      call_names[call], g, e->level, (void *)ext);
}

static int rec_link_table(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext)
{
	struct recorder *r = ctx;
	struct ent *e;
	int ret;

	map_begin(r, REC_LINK_TABLE, gfn, level);
	check_gfn_level(r, REC_LINK_TABLE, gfn, level, TDP_LEVEL_2M,
			r->root_level);

	pthread_mutex_lock(&r->lock);
	ext = check_new_ext(r, REC_LINK_TABLE, gfn, level, ext);
	e = claim_entry(r, REC_LINK_TABLE, gfn, level, ENT_TABLE);
	if (e && ext && r->ext_size) {
		e->ext = ext;
		ext_add(r, ext);
	}
	pthread_mutex_unlock(&r->lock);

	if (r->link_sleep_us)
		usleep(r->link_sleep_us);
	if (r->hook)
		r->hook(r->hook_arg, REC_LINK_TABLE, gfn, level);
	ret = decide_map(r, REC_LINK_TABLE);

	pthread_mutex_lock(&r->lock);
	if (e) {
		r->nr_in_flight--;
		if (!ret) {
			e->live = true;
			r->nr_tables++;
			if (e->ext)
				ext_write_mark(r, e->ext, ext_mark(e->ext));
		} else {
			if (e->ext)
				ext_del(r, e->ext);
			drop_entry(r, e);
		}
	}
	if (ret == -EBUSY)
		r->counts.injected_busy++;
	else if (ret)
		r->counts.injected_errors++;
	log_event(r, REC_LINK_TABLE, gfn, level, 0, ext, ret);
	pthread_mutex_unlock(&r->lock);

	map_end(r, REC_LINK_TABLE, gfn, level);
	return ret;
}

static int rec_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct recorder *r = ctx;
	struct ent *e;
	int ret;

	map_begin(r, REC_SET_LEAF, gfn, level);
	check_gfn_level(r, REC_SET_LEAF, gfn, level, TDP_LEVEL_4K,
			TDP_LEVEL_1G);
	if (level >= TDP_LEVEL_4K && level <= TDP_LEVEL_1G &&
	    (pfn & (tdp_level_pages(level) - 1)))
		rec_violation(r,
			      "set_leaf(gfn %#llx, level %d): pfn %#llx not "
			      "aligned to the level",
			      (unsigned long long)gfn, level,
			      (unsigned long long)pfn);

	pthread_mutex_lock(&r->lock);
	e = claim_entry(r, REC_SET_LEAF, gfn, level, ENT_LEAF);
	if (e)
		e->pfn = pfn;
	pthread_mutex_unlock(&r->lock);

	if (r->hook)
		r->hook(r->hook_arg, REC_SET_LEAF, gfn, level);
	ret = decide_map(r, REC_SET_LEAF);

	pthread_mutex_lock(&r->lock);
	if (e) {
		r->nr_in_flight--;
		if (!ret) {
			e->live = true;
			r->nr_leaves++;
		} else {
			drop_entry(r, e);
		}
	}
	if (ret == -EBUSY)
		r->counts.injected_busy++;
	else if (ret)
		r->counts.injected_errors++;
	log_event(r, REC_SET_LEAF, gfn, level, pfn, NULL, ret);
	pthread_mutex_unlock(&r->lock);

	map_end(r, REC_SET_LEAF, gfn, level);
	return ret;
}

static int rec_remove_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct recorder *r = ctx;
	struct ent *e;
	int ret = 0;

	removal_begin(r, REC_REMOVE_LEAF, gfn, level);
	check_gfn_level(r, REC_REMOVE_LEAF, gfn, level, TDP_LEVEL_4K,
			TDP_LEVEL_1G);

	pthread_mutex_lock(&r->lock);
	e = ent_find(r, gfn, level);
	if (!e || e->kind != ENT_LEAF || !e->live) {
		rec_violation(
			r,
			"remove_leaf(gfn %#llx, level %d, pfn %#llx): "
			"no such leaf%s",
			(unsigned long long)gfn, level, (unsigned long long)pfn,
			e ? (e->kind == ENT_TABLE ? " (entry is a table)"
						  : " (set_leaf in flight)")
			  : "");
		e = NULL;
	} else if (e->pfn != pfn) {
		rec_violation(r,
			      "remove_leaf(gfn %#llx, level %d): pfn %#llx "
			      "but the leaf maps %#llx",
			      (unsigned long long)gfn, level,
			      (unsigned long long)pfn,
			      (unsigned long long)e->pfn);
	}
	if (__atomic_exchange_n(&r->fail_next_remove, 0, __ATOMIC_ACQ_REL))
		ret = -EFAULT;
	else if (e) {
		drop_entry(r, e);
		r->nr_leaves--;
	}
	log_event(r, REC_REMOVE_LEAF, gfn, level, pfn, NULL, ret);
	pthread_mutex_unlock(&r->lock);

	removal_end(r);
	if (r->remove_hook)
		r->remove_hook(r->remove_hook_arg, REC_REMOVE_LEAF, gfn, level);
	return ret;
}

static int rec_free_table(void *ctx, tdp_gfn_t gfn, int level,
			  struct tdp_ext_table *ext)
{
	struct recorder *r = ctx;
	struct ent *e;
	int ret = 0;

	removal_begin(r, REC_FREE_TABLE, gfn, level);
	check_gfn_level(r, REC_FREE_TABLE, gfn, level, TDP_LEVEL_2M,
			r->root_level);

	pthread_mutex_lock(&r->lock);
	e = ent_find(r, gfn, level);
	if (!e || e->kind != ENT_TABLE || !e->live || e->leaked) {
		rec_violation(r,
			      "free_table(gfn %#llx, level %d): no such linked "
			      "table%s",
			      (unsigned long long)gfn, level,
			      !e		    ? ""
			      : e->kind == ENT_LEAF ? " (entry is a leaf)"
			      : e->leaked ? " (free_table already failed)"
					  : " (link_table in flight)");
		e = NULL;
	} else {
		if (e->children)
			rec_violation(r,
				      "free_table(gfn %#llx, level %d): table "
				      "still has %u linked entries",
				      (unsigned long long)gfn, level,
				      e->children);
		check_linked_ext(r, REC_FREE_TABLE, e, ext);
	}
	if (__atomic_exchange_n(&r->fail_next_free, 0, __ATOMIC_ACQ_REL)) {
		ret = -EFAULT;
		if (e)
			e->leaked = true;
	} else if (e && !e->children) {
		if (e->ext) {
			ext_write_mark(r, e->ext, 0);
			ext_del(r, e->ext);
		}
		drop_entry(r, e);
		r->nr_tables--;
	}
	log_event(r, REC_FREE_TABLE, gfn, level, 0, ext, ret);
	pthread_mutex_unlock(&r->lock);

	removal_end(r);
	return ret;
}

/*
 * A huge leaf becomes a linked table of 512 leaves one level down that map
 * its frames in order.  Checked like a removal (mmu_lock held for write,
 * no other callback at the same time) when a zap demotes, like a map
 * (mmu_lock held for read, no removal at the same time) when a fault
 * does, plus: the leaf exists at that level
 * with that PFN, nothing is recorded below it yet (the new table's
 * children are exactly the 512 made here), and the backend page is a new
 * one.  A one-shot failure leaves the model unchanged.
 */
static int rec_demote_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			   struct tdp_ext_table *ext)
{
	struct recorder *r = ctx;
	unsigned long long g = (unsigned long long)gfn;
	struct ent *e;
	int ret;

	/* A zap demotes under the write lock, a fault under the read lock
	 * (checked then like link_table and set_leaf). */
	bool by_fault = r->mmu && !tdp_port_lock_held_write(&r->mmu->mmu_lock);

	if (by_fault)
		map_begin(r, REC_DEMOTE_LEAF, gfn, level);
	else
		removal_begin(r, REC_DEMOTE_LEAF, gfn, level);
	check_gfn_level(r, REC_DEMOTE_LEAF, gfn, level, TDP_LEVEL_2M,
			TDP_LEVEL_1G);
	if (level < TDP_LEVEL_2M || level > TDP_LEVEL_1G) {
		if (by_fault)
			map_end(r, REC_DEMOTE_LEAF, gfn, level);
		else
			removal_end(r);
		return -EINVAL;
	}
	check_pfn_aligned(r, REC_DEMOTE_LEAF, gfn, level, pfn);

	pthread_mutex_lock(&r->lock);
	ext = check_new_ext(r, REC_DEMOTE_LEAF, gfn, level, ext);
	e = ent_find(r, gfn, level);
	if (!e || e->kind != ENT_LEAF || !e->live) {
		rec_violation(r,
			      "demote_leaf(gfn %#llx, level %d): no such "
			      "leaf%s",
			      g, level,
			      !e ? ""
			      : e->kind == ENT_TABLE ? " (entry is a table)"
						     : " (set_leaf in flight)");
		e = NULL;
	} else if (e->pfn != pfn) {
		rec_violation(r,
			      "demote_leaf(gfn %#llx, level %d): pfn %#llx "
			      "but the leaf maps %#llx",
			      g, level, (unsigned long long)pfn,
			      (unsigned long long)e->pfn);
	}
	for (int i = 0; e && i < TDP_SPTES_PER_TABLE; i++) {
		uint64_t step = tdp_level_pages(level - 1);

		if (ent_find(r, gfn + (uint64_t)i * step, level - 1)) {
			rec_violation(r,
				      "demote_leaf(gfn %#llx, level %d): "
				      "entry %d below the leaf already exists",
				      g, level, i);
			e = NULL;
		}
	}

	ret = 0;
	if (r->fail_demote_left > 0) {
		r->fail_demote_left--;
		ret = r->fail_demote_err;
	}
	if (!ret && e) {
		uint64_t step = tdp_level_pages(level - 1);

		e->kind = ENT_TABLE;
		e->pfn = 0;
		e->children = 0;
		r->nr_leaves--;
		r->nr_tables++;
		if (ext && r->ext_size) {
			e->ext = ext;
			ext_add(r, ext);
			ext_write_mark(r, ext, ext_mark(ext));
		}
		for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
			struct ent *c = xcalloc(1, sizeof(*c));

			c->gfn = gfn + (uint64_t)i * step;
			c->level = level - 1;
			c->kind = ENT_LEAF;
			c->live = true;
			c->pfn = pfn + (uint64_t)i * step;
			ent_insert(r, c);
			e->children++;
			r->nr_leaves++;
		}
	}
	log_event(r, REC_DEMOTE_LEAF, gfn, level, pfn, ext, ret);
	pthread_mutex_unlock(&r->lock);

	if (by_fault)
		map_end(r, REC_DEMOTE_LEAF, gfn, level);
	else
		removal_end(r);
	return ret;
}

/*
 * A table of 512 leaves one level down, mapping @pfn onwards in order,
 * becomes one leaf mapping @pfn; its backend page is released.  Checked
 * like a removal (mmu_lock held for write, nothing else at the same time).
 * A one-shot failure leaves the model unchanged.
 */
static int rec_promote_leaf(void *ctx, tdp_gfn_t gfn, int level,
			    tdp_pfn_t pfn, struct tdp_ext_table *ext)
{
	struct recorder *r = ctx;
	unsigned long long g = (unsigned long long)gfn;
	uint64_t step;
	struct ent *e;
	int ret = 0;

	removal_begin(r, REC_PROMOTE_LEAF, gfn, level);
	check_gfn_level(r, REC_PROMOTE_LEAF, gfn, level, TDP_LEVEL_2M,
			TDP_LEVEL_1G);
	if (level < TDP_LEVEL_2M || level > TDP_LEVEL_1G) {
		removal_end(r);
		return -EINVAL;
	}
	step = tdp_level_pages(level - 1);
	check_pfn_aligned(r, REC_PROMOTE_LEAF, gfn, level, pfn);

	pthread_mutex_lock(&r->lock);
	e = ent_find(r, gfn, level);
	if (!e || e->kind != ENT_TABLE || !e->live || e->leaked) {
		rec_violation(r,
			      "promote_leaf(gfn %#llx, level %d): no such "
			      "linked table", g, level);
		e = NULL;
	} else {
		check_linked_ext(r, REC_PROMOTE_LEAF, e, ext);
	}
	for (int i = 0; e && i < TDP_SPTES_PER_TABLE; i++) {
		struct ent *c = ent_find(r, gfn + (uint64_t)i * step, level - 1);

		if (!c || c->kind != ENT_LEAF || !c->live ||
		    c->pfn != pfn + (uint64_t)i * step) {
			rec_violation(r,
				      "promote_leaf(gfn %#llx, level %d): "
				      "entry %d is not a leaf mapping pfn "
				      "%#llx",
				      g, level, i,
				      (unsigned long long)(pfn + i * step));
			e = NULL;
		}
	}

	if (r->fail_promote_left > 0) {
		r->fail_promote_left--;
		ret = r->fail_promote_err;
	}
	if (!ret && e) {
		for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
			struct ent *c = ent_find(r, gfn + (uint64_t)i * step,
						 level - 1);

			ent_unlink(r, c);
			free(c);
			r->nr_leaves--;
		}
		if (e->ext) {
			ext_write_mark(r, e->ext, 0);
			ext_del(r, e->ext);
			e->ext = NULL;
		}
		e->children = 0;
		e->kind = ENT_LEAF;
		e->pfn = pfn;
		r->nr_tables--;
		r->nr_leaves++;
	}
	log_event(r, REC_PROMOTE_LEAF, gfn, level, pfn, ext, ret);
	pthread_mutex_unlock(&r->lock);

	removal_end(r);
	return ret;
}

/* ---- set-up and queries ------------------------------------------------------ */

struct recorder *rec_create(int root_level, tdp_gfn_t direct_bits,
			    size_t ext_table_size)
{
	struct recorder *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->root_level = root_level;
	r->direct_bits = direct_bits;
	r->ext_size = ext_table_size;
	r->ent_mask = REC_MIN_BUCKETS - 1;
	r->ext_mask = REC_MIN_BUCKETS - 1;
	r->buckets = calloc(REC_MIN_BUCKETS, sizeof(*r->buckets));
	r->ext_buckets = calloc(REC_MIN_BUCKETS, sizeof(*r->ext_buckets));
	if (!r->buckets || !r->ext_buckets) {
		free(r->buckets);
		free(r->ext_buckets);
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	/* One table, lined up so it reads as one. */
	/* clang-format off */
	r->be = (struct tdp_private_backend){
		.link_table     = rec_link_table,
		.set_leaf       = rec_set_leaf,
		.remove_leaf    = rec_remove_leaf,
		.free_table     = rec_free_table,
		.ctx            = r,
		.ext_table_size = ext_table_size,
	};
	/* clang-format on */
	return r;
}

void rec_destroy(struct recorder *r)
{
	if (!r)
		return;
	for (size_t i = 0; i <= r->ent_mask; i++) {
		while (r->buckets[i]) {
			struct ent *e = r->buckets[i];

			r->buckets[i] = e->next;
			free(e);
		}
	}
	for (size_t i = 0; i <= r->ext_mask; i++) {
		while (r->ext_buckets[i]) {
			struct ext_node *n = r->ext_buckets[i];

			r->ext_buckets[i] = n->next;
			free(n);
		}
	}
	free(r->buckets);
	free(r->ext_buckets);
	free(r->log);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

const struct tdp_private_backend *rec_backend(struct recorder *r)
{
	return &r->be;
}

void rec_set_mmu(struct recorder *r, struct tdp_mmu *mmu)
{
	r->mmu = mmu;
}

void rec_set_link_sleep(struct recorder *r, unsigned int usec)
{
	r->link_sleep_us = usec;
}

void rec_set_injection(struct recorder *r, unsigned int busy_permille,
		       unsigned int error_permille, uint64_t seed)
{
	__atomic_store_n(&r->rng, seed, __ATOMIC_RELAXED);
	__atomic_store_n(&r->busy_permille, busy_permille, __ATOMIC_RELAXED);
	__atomic_store_n(&r->error_permille, error_permille, __ATOMIC_RELAXED);
}

void rec_fail_next_map(struct recorder *r, enum rec_call call, int err)
{
	__atomic_store_n(call == REC_LINK_TABLE ? &r->fail_next_link
						: &r->fail_next_set,
			 err, __ATOMIC_RELEASE);
}

void rec_fail_next_remove(struct recorder *r)
{
	__atomic_store_n(&r->fail_next_remove, 1, __ATOMIC_RELEASE);
}

void rec_fail_next_free(struct recorder *r)
{
	__atomic_store_n(&r->fail_next_free, 1, __ATOMIC_RELEASE);
}

void rec_set_demote(struct recorder *r, bool on, bool in_faults)
{
	r->be.demote_leaf = on ? rec_demote_leaf : NULL;
	r->be.demote_in_faults = on && in_faults;
}

void rec_set_promote(struct recorder *r, bool on)
{
	r->be.promote_leaf = on ? rec_promote_leaf : NULL;
}

void rec_fail_next_promotes(struct recorder *r, int err, int n)
{
	pthread_mutex_lock(&r->lock);
	r->fail_promote_err = err;
	r->fail_promote_left = n;
	pthread_mutex_unlock(&r->lock);
}

void rec_fail_next_demotes(struct recorder *r, int err, int n)
{
	pthread_mutex_lock(&r->lock);
	r->fail_demote_err = err;
	r->fail_demote_left = n;
	pthread_mutex_unlock(&r->lock);
}

void rec_forbid_calls(struct recorder *r, bool forbid)
{
	__atomic_store_n(&r->forbid, forbid, __ATOMIC_RELEASE);
}

void rec_set_hook(struct recorder *r, rec_hook_fn fn, void *arg)
{
	r->hook_arg = arg;
	r->hook = fn;
}

void rec_set_remove_hook(struct recorder *r, rec_hook_fn fn, void *arg)
{
	r->remove_hook_arg = arg;
	r->remove_hook = fn;
}

void rec_log_enable(struct recorder *r, bool on)
{
	pthread_mutex_lock(&r->lock);
	r->log_on = on;
	pthread_mutex_unlock(&r->lock);
}

void rec_log_clear(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	r->log_len = 0;
	pthread_mutex_unlock(&r->lock);
}

size_t rec_log_count(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->log_len;
	pthread_mutex_unlock(&r->lock);
	return n;
}

struct rec_event rec_log_get(struct recorder *r, size_t i)
{
	struct rec_event ev = { .ret = -ERANGE };

	pthread_mutex_lock(&r->lock);
	if (i < r->log_len)
		ev = r->log[i];
	pthread_mutex_unlock(&r->lock);
	return ev;
}

struct rec_counts rec_counts(struct recorder *r)
{
	struct rec_counts c;

	pthread_mutex_lock(&r->lock);
	c = r->counts;
	pthread_mutex_unlock(&r->lock);
	c.violations = rec_violations(r);
	return c;
}

size_t rec_nr_tables(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->nr_tables;
	pthread_mutex_unlock(&r->lock);
	return n;
}

size_t rec_nr_leaves(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->nr_leaves;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* The live leaf covering @gfn; called with r->lock held. */
static struct ent *leaf_covering(struct recorder *r, tdp_gfn_t gfn)
{
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		struct ent *e =
			ent_find(r, tdp_gfn_round_down(gfn, level), level);

		if (e && e->kind == ENT_LEAF && e->live)
			return e;
	}
	return NULL;
}

bool rec_leaf_at(struct recorder *r, tdp_gfn_t gfn, int *level, tdp_pfn_t *pfn)
{
	struct ent *e;

	pthread_mutex_lock(&r->lock);
	e = leaf_covering(r, gfn);
	if (e) {
		if (level)
			*level = e->level;
		if (pfn)
			*pfn = e->pfn;
	}
	pthread_mutex_unlock(&r->lock);
	return e != NULL;
}

bool rec_table_at(struct recorder *r, tdp_gfn_t gfn, int level)
{
	struct ent *e;
	bool ret;

	pthread_mutex_lock(&r->lock);
	e = ent_find(r, tdp_gfn_round_down(gfn, level), level);
	ret = e && e->kind == ENT_TABLE && e->live;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

struct tdp_ext_table *rec_table_ext(struct recorder *r, tdp_gfn_t gfn,
				    int level)
{
	struct ent *e;
	struct tdp_ext_table *ext = NULL;

	pthread_mutex_lock(&r->lock);
	e = ent_find(r, tdp_gfn_round_down(gfn, level), level);
	if (e && e->kind == ENT_TABLE)
		ext = e->ext;
	pthread_mutex_unlock(&r->lock);
	return ext;
}

/* ---- mirror == recorder ------------------------------------------------------- */

#define CMP_DETAIL_LIMIT 20

static void mismatch(unsigned long *bad, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mismatch(unsigned long *bad, const char *fmt, ...)
{
	va_list ap;

	if (++*bad > CMP_DETAIL_LIMIT)
		return;
	fprintf(stderr, "mirror != recorder: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * Check one lookup result for @gfn against the model: the tables above
 * @level are linked, and the entry at @level is the leaf found or
 * nothing.  Returns 1 if a present leaf was found.  r->lock held.
 */
static int compare_one(struct recorder *r, const struct tdp_spte_format *fmt,
		       tdp_gfn_t gfn, tdp_spte_t spte, int level,
		       unsigned long *bad)
{
	tdp_gfn_t base = tdp_gfn_round_down(gfn, level);
	struct ent *e = ent_find(r, base, level);
	unsigned long long g = (unsigned long long)gfn;

	for (int k = level + 1; k <= r->root_level; k++) {
		struct ent *t = ent_find(r, tdp_gfn_round_down(gfn, k), k);

		if (!t || t->kind != ENT_TABLE || !t->live)
			mismatch(bad,
				 "gfn %#llx: mirror walks through a table "
				 "at level %d the recorder has not linked",
				 g, k);
	}
	if (tdp_spte_is_frozen(fmt, spte)) {
		mismatch(bad, "gfn %#llx: frozen SPTE reachable at level %d", g,
			 level);
		return 0;
	}
	if (tdp_spte_is_present(fmt, spte)) {
		tdp_pfn_t pfn = tdp_spte_pfn(fmt, spte);

		if (!tdp_spte_is_leaf(fmt, spte, level)) {
			mismatch(bad,
				 "gfn %#llx: lookup stopped at a present "
				 "non-leaf at level %d",
				 g, level);
			return 0;
		}
		if (!e || e->kind != ENT_LEAF || !e->live)
			mismatch(bad,
				 "gfn %#llx: mirror has a leaf at level %d "
				 "(pfn %#llx), recorder has %s",
				 g, level, (unsigned long long)pfn,
				 e ? (e->kind == ENT_TABLE ? "a table"
							   : "a leaf in flight")
				   : "nothing");
		else if (e->pfn != pfn)
			mismatch(bad,
				 "gfn %#llx: mirror leaf at level %d maps pfn "
				 "%#llx, recorder pfn %#llx",
				 g, level, (unsigned long long)pfn,
				 (unsigned long long)e->pfn);
		return 1;
	}
	if (e)
		mismatch(bad,
			 "gfn %#llx: mirror entry at level %d is not present "
			 "(%#llx), recorder has a %s",
			 g, level, (unsigned long long)spte,
			 e->kind == ENT_TABLE ? "table" : "leaf");
	return 0;
}

unsigned long rec_compare(struct recorder *r, struct tdp_mmu *mmu,
			  tdp_gfn_t start, tdp_gfn_t end)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	unsigned long bad = 0;
	uint64_t mirror_leaves = 0, model_leaves = 0, model_tables = 0;
	uint64_t stat_tables = 0, stat_leaves = 0;
	struct tdp_stats st;
	tdp_gfn_t gfn = start;

	pthread_mutex_lock(&r->lock);
	while (gfn < end) {
		tdp_spte_t spte;
		int level, ret;

		ret = tdp_lookup(mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &level);
		if (ret) {
			mismatch(&bad, "tdp_lookup(gfn %#llx, PRIVATE) = %d",
				 (unsigned long long)gfn, ret);
			break;
		}
		if (level < TDP_LEVEL_4K || level > r->root_level) {
			mismatch(&bad, "tdp_lookup(gfn %#llx) level %d",
				 (unsigned long long)gfn, level);
			break;
		}
		mirror_leaves += compare_one(r, fmt, gfn, spte, level, &bad);
		gfn = tdp_gfn_round_down(gfn, level) + tdp_level_pages(level);
		if (gfn == 0)
			break;
	}

	for (size_t i = 0; i <= r->ent_mask; i++) {
		for (struct ent *e = r->buckets[i]; e; e = e->next) {
			tdp_gfn_t last = e->gfn + tdp_level_pages(e->level) - 1;

			if (!e->live) {
				mismatch(&bad,
					 "recorder entry (gfn %#llx, level "
					 "%d) still in flight",
					 (unsigned long long)e->gfn, e->level);
				continue;
			}
			if (e->kind == ENT_TABLE) {
				model_tables++;
				continue;
			}
			model_leaves++;
			if (e->gfn < end && last >= start)
				mirror_leaves--;
		}
	}
	if (mirror_leaves)
		mismatch(&bad,
			 "window [%#llx, %#llx): leaves found in the mirror "
			 "and in the recorder differ by %lld",
			 (unsigned long long)start, (unsigned long long)end,
			 (long long)mirror_leaves);

	if (tdp_mmu_get_stats(mmu, &st)) {
		mismatch(&bad, "tdp_mmu_get_stats failed");
	} else {
		for (int l = TDP_LEVEL_4K; l < r->root_level; l++)
			stat_tables += st.tables[TDP_ROOT_MIRROR][l];
		for (int l = TDP_LEVEL_4K; l <= TDP_MAX_LEVEL; l++)
			stat_leaves += st.leaves[TDP_ROOT_MIRROR][l];
		if (stat_tables != model_tables)
			mismatch(&bad,
				 "stats: %llu mirror tables below the root, "
				 "recorder has %llu",
				 (unsigned long long)stat_tables,
				 (unsigned long long)model_tables);
		if (stat_leaves != model_leaves)
			mismatch(&bad,
				 "stats: %llu mirror leaves, recorder has "
				 "%llu",
				 (unsigned long long)stat_leaves,
				 (unsigned long long)model_leaves);
	}
	pthread_mutex_unlock(&r->lock);
	if (bad > CMP_DETAIL_LIMIT)
		fprintf(stderr, "mirror != recorder: %lu mismatches in all\n",
			bad);
	return bad;
}
