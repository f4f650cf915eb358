// SPDX-License-Identifier: LGPL-2.1-or-later
/* Test fixtures on the port layer (see ts_env.h). */
#include "ts_env.h"

#include "internal.h"

/* ---- a recording host ---------------------------------------------------- */

/* Does the calling thread hold @mmu's mmu_lock (either mode)? */
static bool lock_held_by_caller(struct tdp_mmu *mmu)
{
	return tdp_port_lock_held_read(&mmu->mmu_lock) ||
	       tdp_port_lock_held_write(&mmu->mmu_lock);
}

/*
 * Append [gfn, gfn + nr_pages) to the array *@arr of *@n entries and
 * capacity *@cap; counted in f->lost when no memory is left.  f->lock
 * held.
 */
static void append_range(struct ts_flush *f, struct ts_flush_range **arr,
			 uint64_t *n, uint64_t *cap, tdp_gfn_t gfn,
			 uint64_t nr_pages)
{
	if (*n == *cap) {
		uint64_t ncap = *cap ? 2 * *cap : 256;
		struct ts_flush_range *na =
			tdp_zalloc_atomic(ncap * sizeof(*na));

		if (!na) {
			f->lost++;
			return;
		}
		if (*n)
			memcpy(na, *arr, *n * sizeof(*na));
		tdp_free(*arr);
		*arr = na;
		*cap = ncap;
	}
	(*arr)[*n] =
		(struct ts_flush_range){ .gfn = gfn, .nr_pages = nr_pages };
}

/*
 * Count one host callback (taking f->lock; counted unlocked if the caller
 * does not hold mmu_lock) and, for a range (@arr not NULL), record it.
 */
static void record_call(struct ts_flush *f, struct ts_flush_range **arr,
			uint64_t *n, uint64_t *cap, tdp_gfn_t gfn,
			uint64_t nr_pages)
{
	bool locked = !f->mmu || lock_held_by_caller(f->mmu);

	tdp_spin_lock(&f->lock);
	f->unlocked += !locked;
	if (arr && f->record)
		append_range(f, arr, n, cap, gfn, nr_pages);
	++*n;
	if (arr == &f->ranges) {
		bool empty = f->span_start == f->span_end;

		if (empty || gfn < f->span_start)
			f->span_start = gfn;
		if (empty || gfn + nr_pages > f->span_end)
			f->span_end = gfn + nr_pages;
	}
	tdp_spin_unlock(&f->lock);
}

/* ---- the flush-order check ----------------------------------------------- */

/* What a walk of the trees for ts_mapped_leaves() found. */
struct mapped_scan {
	tdp_gfn_t start, end; /* the range, in tree GFNs */
	uint64_t found;
	tdp_gfn_t first_gfn; /* first GFN of the first leaf found */
	int first_level;
	tdp_spte_t first_spte;
	bool first_valid_root;
};

/*
 * Count the present leaves below table @spt (entries at @level, the first
 * at tree GFN @base) that overlap the scan's range.  RCU read lock held:
 * the tables may be unlinked meanwhile, not freed.
 */
static void scan_table(struct tdp_mmu *mmu, const tdp_spte_t *spt, int level,
		       tdp_gfn_t base, bool valid_root, struct mapped_scan *sc)
{
	const struct tdp_spte_format *fmt = &mmu->fmt;
	uint64_t step = tdp_level_pages(level);
	unsigned int i = sc->start > base ? (sc->start - base) / step : 0;

	for (; i < TDP_SPTES_PER_TABLE && base + i * step < sc->end; i++) {
		tdp_gfn_t gfn = base + i * step;
		tdp_spte_t s = tdp_spte_read_acquire(&spt[i]);

		if (!tdp_spte_is_present(fmt, s))
			continue;
		if (!tdp_spte_is_leaf(fmt, s, level)) {
			scan_table(mmu, tdp_spte_child(mmu, s)->spt, level - 1,
				   gfn, valid_root, sc);
			continue;
		}
		if (!sc->found++) {
			sc->first_gfn = gfn;
			sc->first_level = level;
			sc->first_spte = s;
			sc->first_valid_root = valid_root;
		}
	}
}

uint64_t ts_mapped_leaves(struct tdp_mmu *mmu, tdp_gfn_t gfn,
			  uint64_t nr_pages, const char *what)
{
	struct mapped_scan sc = { .start = gfn, .end = gfn + nr_pages };

	tdp_mutex_lock(&mmu->roots_mutex);
	tdp_rcu_read_lock();
	for (struct tdp_root *r = mmu->roots; r; r = r->next) {
		if (r->type != TDP_ROOT_DIRECT)
			continue;
		scan_table(mmu, r->table->spt, r->table->level, 0,
			   !tdp_flag_read(&r->invalid), &sc);
	}
	tdp_rcu_read_unlock();
	tdp_mutex_unlock(&mmu->roots_mutex);
	if (sc.found && what)
		tdp_log_err("%s [%#llx, +%llu): %llu leaves still mapped, the "
			    "first at gfn %#llx level %d (spte %#llx) in %s "
			    "root",
			    what, (unsigned long long)gfn,
			    (unsigned long long)nr_pages,
			    (unsigned long long)sc.found,
			    (unsigned long long)sc.first_gfn, sc.first_level,
			    (unsigned long long)sc.first_spte,
			    sc.first_valid_root ? "the valid" : "an invalidated");
	return sc.found;
}

/* The flush-order check of one flush_range() call, if a zap is bracketed. */
static void check_flush_order(struct ts_flush *f, tdp_gfn_t gfn,
			      uint64_t nr_pages)
{
	uint64_t mapped;
	bool quiet;

	if (!f->mmu || !tdp_atomic_read(&f->zap_scope))
		return;
	/* The first few are logged: one broken zap flushes many times. */
	quiet = TS_LOCKED(&f->lock, f->order_bad) >= 3;
	mapped = ts_mapped_leaves(f->mmu, gfn, nr_pages,
				  quiet ? NULL
					: "flush issued before the zap cleared");
	tdp_spin_lock(&f->lock);
	f->order_checked++;
	f->order_bad += mapped != 0;
	tdp_spin_unlock(&f->lock);
}

void ts_flush_zap_begin(struct ts_flush *f)
{
	tdp_atomic_add(&f->zap_scope, 1);
}

void ts_flush_zap_end(struct ts_flush *f)
{
	tdp_atomic_add(&f->zap_scope, -1);
}

uint64_t ts_flush_order_checked(struct ts_flush *f)
{
	return TS_LOCKED(&f->lock, f->order_checked);
}

uint64_t ts_flush_order_violations(struct ts_flush *f)
{
	return TS_LOCKED(&f->lock, f->order_bad);
}

/* ---- the host callbacks --------------------------------------------------- */

static void rec_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct ts_flush *f = ctx;

	if (!f)
		return;
	check_flush_order(f, gfn, nr_pages);
	record_call(f, &f->ranges, &f->nr_range, &f->cap, gfn, nr_pages);
	if (f->on_range)
		f->on_range(f->hook_arg, gfn, nr_pages);
}

static void rec_flush_all(void *ctx)
{
	struct ts_flush *f = ctx;

	if (!f)
		return;
	record_call(f, NULL, &f->nr_all, NULL, 0, 0);
	if (f->on_all)
		f->on_all(f->hook_arg);
}

static void rec_mark_dirty(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct ts_flush *f = ctx;

	if (!f)
		return;
	record_call(f, &f->marks, &f->nr_marks, &f->cap_marks, gfn, nr_pages);
	if (f->mark_hook)
		f->mark_hook(f->mark_arg, gfn, nr_pages);
}

void ts_flush_init(struct ts_flush *f, bool record)
{
	memset(f, 0, sizeof(*f));
	tdp_spin_lock_init(&f->lock);
	f->record = record;
}

void ts_flush_fini(struct ts_flush *f)
{
	tdp_free(f->ranges);
	tdp_free(f->marks);
	f->ranges = NULL;
	f->marks = NULL;
	f->cap = 0;
	f->cap_marks = 0;
	tdp_spin_lock_destroy(&f->lock);
}

void ts_flush_reset(struct ts_flush *f)
{
	tdp_spin_lock(&f->lock);
	f->nr_range = 0;
	f->nr_all = 0;
	f->nr_marks = 0;
	f->unlocked = 0;
	f->lost = 0;
	f->span_start = 0;
	f->span_end = 0;
	tdp_spin_unlock(&f->lock);
}

struct ts_flush *ts_flush_of(struct tdp_mmu *mmu)
{
	if (!mmu || mmu->cfg.host.flush_range != rec_flush_range)
		return NULL;
	return mmu->cfg.host.ctx;
}

struct tdp_host_ops ts_flush_host(struct ts_flush *f, bool mark_dirty)
{
	return (struct tdp_host_ops){
		.flush_range = rec_flush_range,
		.flush_all = rec_flush_all,
		.mark_dirty = mark_dirty ? rec_mark_dirty : NULL,
		.ctx = f,
	};
}

uint64_t ts_flush_count(struct ts_flush *f)
{
	return TS_LOCKED(&f->lock, f->nr_range + f->nr_all);
}

uint64_t ts_flush_marks(struct ts_flush *f)
{
	return TS_LOCKED(&f->lock, f->nr_marks);
}

bool ts_flush_covers_range(struct ts_flush *f, tdp_gfn_t start, tdp_gfn_t end)
{
	tdp_gfn_t next = start;
	bool progress = true;

	tdp_spin_lock(&f->lock);
	if (f->nr_all)
		next = end;
	/* Walk [start, end) forward through the recorded ranges. */
	while (next < end && progress && f->record) {
		progress = false;
		for (uint64_t i = 0; i < f->nr_range; i++) {
			const struct ts_flush_range *r = &f->ranges[i];

			if (r->gfn <= next && next < r->gfn + r->nr_pages) {
				next = r->gfn + r->nr_pages;
				progress = true;
			}
		}
	}
	tdp_spin_unlock(&f->lock);
	return next >= end;
}

bool ts_flush_covers(struct ts_flush *f, tdp_gfn_t gfn)
{
	return ts_flush_covers_range(f, gfn, gfn + 1);
}

bool ts_flush_marked(struct ts_flush *f, tdp_gfn_t gfn)
{
	bool found = false;

	tdp_spin_lock(&f->lock);
	for (uint64_t i = 0; i < f->nr_marks && f->record && !found; i++)
		found = f->marks[i].gfn <= gfn &&
			gfn < f->marks[i].gfn + f->marks[i].nr_pages;
	tdp_spin_unlock(&f->lock);
	return found;
}

uint64_t ts_flush_marks_of(struct ts_flush *f, tdp_gfn_t gfn)
{
	uint64_t n = 0;

	tdp_spin_lock(&f->lock);
	for (uint64_t i = 0; i < f->nr_marks && f->record; i++)
		n += f->marks[i].gfn <= gfn &&
		     gfn < f->marks[i].gfn + f->marks[i].nr_pages;
	tdp_spin_unlock(&f->lock);
	return n;
}

/* ---- an MMU and a vCPU --------------------------------------------------- */

static const struct ts_env_opts plain_vm;

struct tdp_mmu_config ts_config(struct ts_flush *log,
				const struct ts_env_opts *o,
				const struct tdp_private_backend *be)
{
	if (!o)
		o = &plain_vm;
	/* One table, lined up so it reads as one. */
	/* clang-format off */
	return (struct tdp_mmu_config){
		.root_level  = o->root_level ? o->root_level : TS_ROOT_LEVEL,
		.gfn_bits    = 0,
		.direct_bits = be ? TS_SHARED_BIT : 0,
		.format      = NULL,
		.host        = ts_flush_host(log, o->mark_dirty),
		.backend     = be,
		.flags       = o->flags,
	};
	/* clang-format on */
}

int ts_env_init(struct ts_env *e, const struct ts_env_opts *o)
{
	int ret = -ENOMEM;

	if (!o)
		o = &plain_vm;
	memset(e, 0, sizeof(*e));
	ts_flush_init(&e->log, o->record);
	if (o->backend) {
		e->be = ts_backend_create(o->root_level ? o->root_level
							: TS_ROOT_LEVEL,
					  TS_SHARED_BIT, o->ext_table_size);
		if (!e->be) {
			tdp_log_err("test env: cannot create the backend");
			goto err;
		}
		ts_set_demote(e->be, o->demote || o->demote_in_faults,
			      o->demote_in_faults);
		ts_set_promote(e->be, o->promote);
		e->direct_bits = TS_SHARED_BIT;
	}
	e->cfg = ts_config(&e->log, o, e->be ? ts_backend_ops(e->be) : NULL);
	ret = tdp_mmu_create(&e->cfg, &e->mmu);
	if (ret) {
		tdp_log_err("test env: tdp_mmu_create: %d", ret);
		goto err;
	}
	e->log.mmu = e->mmu;
	e->log.check_zaps = o->check_zap_flushes;
	e->fmt = tdp_mmu_format(e->mmu);
	if (e->be)
		ts_backend_set_mmu(e->be, e->mmu);
	if (!o->no_vcpu) {
		ret = tdp_vcpu_create(e->mmu, &e->vcpu);
		if (ret) {
			tdp_log_err("test env: tdp_vcpu_create: %d", ret);
			goto err;
		}
	}
	return 0;

err:
	ts_env_destroy(e);
	return ret;
}

/* Count and log one failed teardown check. */
static void teardown_check(unsigned long *bad, bool ok, const char *what,
			   long long got, long long want)
{
	if (ok)
		return;
	++*bad;
	tdp_log_err("test env teardown: %s: %lld, expected %lld", what, got,
		    want);
}

unsigned long ts_env_teardown(struct ts_env *e, int expect)
{
	unsigned long bad = 0;
	struct tdp_stats s;
	int ret;

	if (!e->mmu)
		return 0;
	tdp_vcpu_destroy(e->vcpu);
	e->vcpu = NULL;
	if (e->log.check_zaps)
		ts_flush_zap_begin(&e->log);
	ret = tdp_mmu_teardown(e->mmu);
	if (e->log.check_zaps)
		ts_flush_zap_end(&e->log);
	teardown_check(&bad, ret == expect, "tdp_mmu_teardown()", ret, expect);
	ret = tdp_mmu_get_stats(e->mmu, &s);
	teardown_check(&bad, ret == 0, "tdp_mmu_get_stats()", ret, 0);
	if (!expect && !ret) {
		teardown_check(&bad, s.pages_in_use == 0, "pages in use",
			       (long long)s.pages_in_use, 0);
		for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
			teardown_check(
				&bad,
				ts_stat_tables(&s, t, TDP_MAX_LEVEL + 1) == 0,
				"tables left",
				(long long)ts_stat_tables(&s, t,
							  TDP_MAX_LEVEL + 1),
				0);
			teardown_check(&bad, ts_stat_leaves(&s, t) == 0,
				       "leaves left",
				       (long long)ts_stat_leaves(&s, t), 0);
		}
		teardown_check(&bad, s.roots_allocated == s.roots_freed,
			       "roots freed", (long long)s.roots_freed,
			       (long long)s.roots_allocated);
	}
	teardown_check(&bad, ts_flush_order_violations(&e->log) == 0,
		       "flushes issued before the zap cleared the range",
		       (long long)ts_flush_order_violations(&e->log), 0);
	if (e->be) {
		if (!expect) {
			teardown_check(&bad, ts_nr_tables(e->be) == 0,
				       "backend tables",
				       (long long)ts_nr_tables(e->be), 0);
			teardown_check(&bad, ts_nr_leaves(e->be) == 0,
				       "backend leaves",
				       (long long)ts_nr_leaves(e->be), 0);
		}
		teardown_check(&bad, ts_violations(e->be) == 0,
			       "backend violations",
			       (long long)ts_violations(e->be), 0);
	}
	return bad;
}

void ts_env_destroy(struct ts_env *e)
{
	tdp_vcpu_destroy(e->vcpu);
	e->vcpu = NULL;
	tdp_mmu_destroy(e->mmu);
	e->mmu = NULL;
	ts_backend_destroy(e->be);
	e->be = NULL;
	ts_flush_fini(&e->log);
}

/* ---- faults and lookups -------------------------------------------------- */

int ts_map_seq(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
	       tdp_pfn_t pfn, unsigned int prot, int max_level, uint64_t seq)
{
	struct tdp_fault f = {
		.fault_gfn = alias == TDP_ALIAS_SHARED
				     ? gfn | tdp_mmu_direct_bits(vcpu->mmu)
				     : gfn,
		.pfn = pfn,
		.prot = prot,
		.max_level = max_level,
		.mmu_seq = seq,
		.mmio = false,
	};

	return tdp_map(vcpu, &f);
}

int ts_map(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
	   tdp_pfn_t pfn, unsigned int prot, int max_level)
{
	return ts_map_seq(vcpu, gfn, alias, pfn, prot, max_level,
			  tdp_mmu_seq(vcpu->mmu));
}

int ts_map_mmio(struct tdp_vcpu *vcpu, tdp_gfn_t gfn)
{
	struct tdp_fault f = {
		.fault_gfn = gfn,
		.prot = TDP_PROT_READ | TDP_PROT_WRITE,
		.max_level = TDP_LEVEL_4K,
		.mmu_seq = tdp_mmu_seq(vcpu->mmu),
		.mmio = true,
	};

	return tdp_map(vcpu, &f);
}

int ts_map_retry(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, enum tdp_alias alias,
		 tdp_pfn_t pfn, unsigned int prot, int max_level,
		 unsigned long max_tries, unsigned int give_up_ms,
		 unsigned long *retries)
{
	uint64_t give_up = 0;
	unsigned long tries;
	int ret;

	for (tries = 1;; tries++) {
		ret = ts_map(vcpu, gfn, alias, pfn, prot, max_level);
		if (ret != TDP_FAULT_RETRY)
			return ret;
		if (retries)
			++*retries;
		if (max_tries && tries >= max_tries)
			return ret;
		if (tries < TS_RETRY_SPIN)
			continue;
		/* Let the thread that holds the entry or the lock run. */
		tdp_yield();
		if (!give_up_ms)
			continue;
		if (!give_up)
			give_up = tdp_now_ns() + give_up_ms * 1000000ULL;
		else if (tdp_now_ns() > give_up)
			return ret;
	}
}

struct ts_leaf ts_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn,
			 enum tdp_alias alias)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	struct ts_leaf l = { .level = -1 };

	l.ret = tdp_lookup(mmu, gfn, alias, &l.spte, &l.level);
	if (l.ret)
		return l;
	l.frozen = tdp_spte_is_frozen(fmt, l.spte);
	l.present = tdp_spte_is_present(fmt, l.spte) &&
		    tdp_spte_is_leaf(fmt, l.spte, l.level);
	l.mmio = !tdp_spte_is_present(fmt, l.spte) &&
		 tdp_spte_is_mmio(fmt, l.spte);
	if (l.present) {
		l.base = ts_round_down(gfn, l.level);
		l.pfn = tdp_spte_pfn(fmt, l.spte) + (gfn - l.base);
		l.prot = tdp_spte_prot(fmt, l.spte);
	}
	return l;
}

bool ts_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		    int *level, tdp_pfn_t *pfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, alias);

	if (!l.present)
		return false;
	if (level)
		*level = l.level;
	if (pfn)
		*pfn = l.pfn;
	return true;
}

/* ---- a simulated CPU ------------------------------------------------------ */

tdp_spte_t *ts_hw_walk(const struct tdp_spte_format *fmt, tdp_pfn_t root_pfn,
		       int root_level, tdp_gfn_t tree_gfn, tdp_spte_t *spte,
		       int *level)
{
	/* Hardware writes A/D bits into the tables it walks. */
	tdp_spte_t *table = (tdp_spte_t *)tdp_pfn_to_table(root_pfn);
	int lvl = root_level;

	for (;;) {
		unsigned int i = (tree_gfn >> ((lvl - 1) * TDP_LEVEL_BITS)) &
				 (TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t s = tdp_spte_read_acquire(&table[i]);

		if (!tdp_spte_is_present(fmt, s) ||
		    tdp_spte_is_leaf(fmt, s, lvl)) {
			*spte = s;
			*level = lvl;
			return &table[i];
		}
		table = (tdp_spte_t *)tdp_pfn_to_table(tdp_spte_pfn(fmt, s));
		lvl--;
	}
}

enum ts_hw_result ts_hw_access(const struct tdp_spte_format *fmt,
			       tdp_pfn_t root_pfn, int root_level,
			       tdp_gfn_t tree_gfn, bool write, bool *dirtied,
			       int *leaf_level)
{
	if (dirtied)
		*dirtied = false;
	for (;;) {
		tdp_spte_t old, new_spte;
		int level;
		tdp_spte_t *sptep = ts_hw_walk(fmt, root_pfn, root_level,
					       tree_gfn, &old, &level);

		if (leaf_level)
			*leaf_level = level;
		if (!tdp_spte_is_present(fmt, old))
			return TS_HW_NOT_PRESENT;
		if (write && !(old & fmt->writable))
			return TS_HW_WRPROT;
		new_spte = old | fmt->accessed | (write ? fmt->dirty : 0);
		/* Even when nothing changes: proves the bits are set now. */
		if (tdp_spte_cmpxchg(sptep, &old, new_spte)) {
			if (dirtied)
				*dirtied = write && !(old & fmt->dirty);
			return write ? TS_HW_WRITTEN : TS_HW_READ;
		}
		/* The SPTE changed under the walk: walk again, as the CPU
		 * would. */
	}
}

/* ---- host events --------------------------------------------------------- */

/* The recorder of @mmu if its zaps are to be checked (check_zap_flushes). */
static struct ts_flush *zap_checker(struct tdp_mmu *mmu)
{
	struct ts_flush *f = ts_flush_of(mmu);

	return f && f->check_zaps ? f : NULL;
}

void ts_zap_check_begin(struct tdp_mmu *mmu)
{
	struct ts_flush *f = zap_checker(mmu);

	if (f)
		ts_flush_zap_begin(f);
}

void ts_zap_check_end(struct tdp_mmu *mmu)
{
	struct ts_flush *f = zap_checker(mmu);

	if (f)
		ts_flush_zap_end(f);
}

int ts_host_unmap(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	struct ts_flush *f = zap_checker(mmu);
	int ret = tdp_invalidate_begin(mmu, start, end);

	if (!ret) {
		if (f)
			ts_flush_zap_begin(f);
		ret = tdp_zap_host_unmap(mmu, start, end);
		if (f)
			ts_flush_zap_end(f);
	}
	if (!ret)
		ret = tdp_invalidate_end(mmu, start, end);
	return ret;
}

int ts_zap_roots(struct tdp_mmu *mmu, enum tdp_alias alias)
{
	struct ts_flush *f = zap_checker(mmu);
	int ret = tdp_mmu_invalidate_roots(mmu, alias);

	if (!ret) {
		if (f)
			ts_flush_zap_begin(f);
		ret = tdp_mmu_zap_invalidated_roots(mmu);
		if (f)
			ts_flush_zap_end(f);
	}
	return ret;
}

/* ---- statistics ---------------------------------------------------------- */

uint64_t ts_stat_tables(const struct tdp_stats *st, int type, int below_level)
{
	uint64_t n = 0;

	for (int l = 0; l < below_level && l <= TDP_MAX_LEVEL; l++)
		n += st->tables[type][l];
	return n;
}

uint64_t ts_stat_leaves(const struct tdp_stats *st, int type)
{
	uint64_t n = 0;

	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		for (int l = 0; l <= TDP_MAX_LEVEL && (type < 0 || t == type);
		     l++)
			n += st->leaves[t][l];
	return n;
}
