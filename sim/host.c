/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulated host (see host.h). */
#include "host.h"

#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

/* Retries of a pre-fault before the host gives up on a GFN. */
#define PREFAULT_MAX_TRIES 64

int sim_host_init(struct sim *s)
{
	struct sim_host *h = &s->host;
	int ret;

	h->layout = &s->layout;
	h->attr = calloc(s->nr_gfns, sizeof(*h->attr));
	h->private_pfn = calloc(s->nr_gfns, sizeof(*h->private_pfn));
	h->shared_pfn = calloc(s->nr_gfns, sizeof(*h->shared_pfn));
	h->backing_lock = calloc(s->nr_regions, sizeof(*h->backing_lock));
	if (!h->attr || !h->private_pfn || !h->shared_pfn || !h->backing_lock)
		return -ENOMEM;
	for (uint64_t r = 0; r < s->nr_regions; r++)
		pthread_mutex_init(&h->backing_lock[r], NULL);
	ret = tdp_vcpu_create(s->mmu, &h->ctx);
	return ret;
}

void sim_host_fini(struct sim *s)
{
	struct sim_host *h = &s->host;

	tdp_vcpu_destroy(h->ctx);
	if (h->backing_lock)
		for (uint64_t r = 0; r < s->nr_regions; r++)
			pthread_mutex_destroy(&h->backing_lock[r]);
	free(h->backing_lock);
	free(h->attr);
	free(h->private_pfn);
	free(h->shared_pfn);
	/* Nothing left to destroy or free a second time. */
	memset(h, 0, sizeof(*h));
}

/* Dense page and region numbers of guest memory @gfn (layout.h). */
static uint64_t page_of(const struct sim *s, tdp_gfn_t gfn)
{
	return sim_layout_page(&s->layout, gfn);
}

static uint64_t region_of(const struct sim *s, tdp_gfn_t gfn)
{
	return sim_layout_region(&s->layout, gfn);
}

static void attr_write(struct sim *s, tdp_gfn_t gfn, enum sim_attr a)
{
	__atomic_store_n(&s->host.attr[page_of(s, gfn)], (uint8_t)a,
			 __ATOMIC_RELEASE);
}

void sim_host_set_initial_attr(struct sim *s, tdp_gfn_t gfn, enum sim_attr a)
{
	attr_write(s, gfn, a);
}

static tdp_pfn_t *backing_slot(struct sim *s, tdp_gfn_t gfn, bool private)
{
	uint64_t page = page_of(s, gfn);

	return private ? &s->host.private_pfn[page]
		       : &s->host.shared_pfn[page];
}

static tdp_pfn_t backing_read(struct sim *s, tdp_gfn_t gfn, bool private)
{
	return __atomic_load_n(backing_slot(s, gfn, private), __ATOMIC_ACQUIRE);
}

static void backing_write(struct sim *s, tdp_gfn_t gfn, bool private,
			  tdp_pfn_t pfn)
{
	__atomic_store_n(backing_slot(s, gfn, private), pfn, __ATOMIC_RELEASE);
}

tdp_pfn_t sim_host_private_pfn(struct sim *s, tdp_gfn_t gfn)
{
	return backing_read(s, gfn, true);
}

tdp_pfn_t sim_host_shared_pfn(struct sim *s, tdp_gfn_t gfn)
{
	return backing_read(s, gfn, false);
}

/* ---- TLB callbacks ------------------------------------------------------- */

/*
 * The zap of the shared alias this thread is inside, if any: [start, end)
 * unaliased.  The engine calls the flush callbacks on the zapping thread,
 * so each range flush of it can be checked against the tree: a flush is
 * for translations the zap already cleared, never for ones it has yet
 * to clear (the kind of bug where hardware re-fills the TLB from an
 * entry the flush was meant to retire).  Flushes of everything are not
 * checked: the zap may not have reached the end of its range yet.
 */
static __thread struct {
	struct sim *s;
	tdp_gfn_t start, end;
	/*
	 * The zap of an invalidated direct root (sim_host_invalidate_root()):
	 * its table's frame and levels, 0 for a range zap.  That zap clears
	 * a root no lookup reaches any more, so its flushes are checked
	 * against a walk of that root, which the host keeps a reference to.
	 */
	tdp_pfn_t root_pfn;
	int root_level;
} zap_ctx;

static void zap_ctx_enter(struct sim *s, tdp_gfn_t start, tdp_gfn_t end)
{
	zap_ctx.s = s;
	zap_ctx.start = start;
	zap_ctx.end = end;
}

static void zap_ctx_exit(void)
{
	zap_ctx.s = NULL;
	zap_ctx.root_pfn = 0;
}

/* The zap of the invalidated direct root @root_pfn, every shared GFN. */
static void zap_ctx_enter_root(struct sim *s, tdp_pfn_t root_pfn, int level)
{
	zap_ctx_enter(s, 0, SIM_SHARED_BIT);
	zap_ctx.root_pfn = root_pfn;
	zap_ctx.root_level = level;
}

/*
 * The first present leaf of the table @table at @level (its first tree
 * GFN @base) that translates a GFN of [lo, hi), or false.  Non-present
 * entries are skipped whole, so a range the zap already cleared costs
 * one read per remaining entry.  Inside tdp_walk_begin/end.
 */
static bool root_range_present(const struct tdp_spte_format *fmt,
			       const tdp_spte_t *table, int level,
			       tdp_gfn_t base, tdp_gfn_t lo, tdp_gfn_t hi,
			       tdp_gfn_t *gfn, int *leaf_level)
{
	uint64_t step = tdp_level_pages(level);
	tdp_gfn_t first = lo > base ? lo : base;

	for (uint64_t i = (first - base) / step;
	     i < TDP_SPTES_PER_TABLE && base + i * step < hi; i++) {
		tdp_gfn_t g = base + i * step;
		tdp_spte_t spte = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);

		if (!tdp_spte_is_present(fmt, spte))
			continue;
		if (tdp_spte_is_leaf(fmt, spte, level)) {
			*gfn = g > lo ? g : lo;
			*leaf_level = level;
			return true;
		}
		if (root_range_present(fmt,
				       tdp_pfn_to_table(tdp_spte_pfn(fmt, spte)),
				       level - 1, g, lo, hi, gfn, leaf_level))
			return true;
	}
	return false;
}

/*
 * A range flush inside the zap of an invalidated root: every leaf of the
 * old root in [lo, hi) (tree GFNs) must be non-present already.  A flush
 * issued before the clear lets a vCPU still running on the old root
 * refill its TLB in between, and nothing flushes it afterwards.
 */
static void check_root_flush_order(struct sim *s, tdp_gfn_t lo, tdp_gfn_t hi)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_gfn_t gfn = 0;
	int level = 0;
	bool present;

	sim_count(&s->stats, SIM_C_CHECK_ROOT_FLUSH_ORDER, 1);
	tdp_walk_begin();
	present = root_range_present(fmt, tdp_pfn_to_table(zap_ctx.root_pfn),
				     zap_ctx.root_level, 0, lo, hi, &gfn,
				     &level);
	tdp_walk_end();
	if (present)
		sim_violation(&s->report, SIM_V_FLUSH_ORDER, 0,
			      gfn & ~SIM_SHARED_BIT, SIM_NO_VCPU,
			      "the zap of the invalidated root %#" PRIx64
			      " flushed [%#" PRIx64 ", %#" PRIx64 ") while "
			      "its level-%d leaf of shared gfn %#" PRIx64
			      " was still present", zap_ctx.root_pfn,
			      lo & ~SIM_SHARED_BIT, hi & ~SIM_SHARED_BIT,
			      level, gfn & ~SIM_SHARED_BIT);
}

/*
 * The leaf that translates tree GFN @gfn in the tree of the root table
 * @root_pfn, with its level, or 0.  Inside tdp_walk_begin/end.
 */
static tdp_spte_t root_leaf(const struct tdp_spte_format *fmt,
			    tdp_pfn_t root_pfn, tdp_gfn_t gfn, int *level)
{
	const tdp_spte_t *table = tdp_pfn_to_table(root_pfn);

	for (int l = SIM_ROOT_LEVEL; l >= TDP_LEVEL_4K; l--) {
		unsigned int idx = (unsigned int)(gfn >> ((l - 1) *
							  TDP_LEVEL_BITS)) &
				   (TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t spte = __atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);

		if (!tdp_spte_is_present(fmt, spte))
			return 0;
		if (tdp_spte_is_leaf(fmt, spte, l)) {
			*level = l;
			return spte;
		}
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	return 0;
}

/*
 * A range flush of a host range zap, which holds mmu_lock for write: no
 * other operation is inside the tree, and each one issued the flush of
 * what it cleared before it let the lock go, also before every yield.
 * So every shared TLB entry outside [lo, hi) (the zap's own pending
 * flush, tree GFNs) must still be backed by the root it was walked from:
 * a present leaf that translates its GFN to its frame, writable if the
 * entry is.  An entry that is not was left behind by an operation that
 * dropped the lock with a flush pending.
 */
static void check_tlbs_backed(struct sim *s, tdp_gfn_t lo, tdp_gfn_t hi,
			      const char *seen_by)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);

	tdp_walk_begin();
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];
		bool bad = false;

		pthread_mutex_lock(&v->tlb_lock);
		for (int j = 0; j < SIM_TLB_ENTRIES && !bad; j++) {
			const struct sim_tlb_entry *e = &v->tlb[j];
			tdp_spte_t spte;
			int level = 0;

			if (!e->valid || e->private ||
			    (e->gfn >= lo && e->gfn < hi))
				continue;
			spte = root_leaf(fmt, e->root_pfn, e->gfn, &level);
			bad = !spte ||
			      tdp_spte_pfn(fmt, spte) +
					      (e->gfn & (tdp_level_pages(level) - 1)) !=
				      e->pfn ||
			      (e->writable && !(spte & fmt->writable));
			if (bad)
				sim_violation(&s->report,
					      SIM_V_STALE_TRANSLATION, 0,
					      e->gfn & ~SIM_SHARED_BIT, (int)i,
					      "the TLB translates shared gfn %#"
					      PRIx64 " to %#" PRIx64 "%s while "
					      "its root maps %#" PRIx64 ", seen "
					      "%s: an operation dropped "
					      "mmu_lock with its flush pending",
					      e->gfn & ~SIM_SHARED_BIT, e->pfn,
					      e->writable ? " (writable)" : "",
					      spte, seen_by);
		}
		pthread_mutex_unlock(&v->tlb_lock);
	}
	tdp_walk_end();
}

void sim_host_check_tlbs_backed(struct sim *s)
{
	check_tlbs_backed(s, 0, 0, "with mmu_lock held by tdp_mmu_exclusive()");
}

/* Every shared leaf of [gfn, gfn + nr) inside the zap is gone already. */
static void check_flush_order(struct sim *s, tdp_gfn_t gfn, uint64_t nr)
{
	tdp_gfn_t lo = gfn & ~SIM_SHARED_BIT, hi = lo + nr;

	if (zap_ctx.s != s || !(gfn & SIM_SHARED_BIT))
		return;
	if (zap_ctx.root_pfn) {
		check_root_flush_order(s, gfn, gfn + nr);
		return;
	}
	sim_count(&s->stats, SIM_C_CHECK_TLB_BACKED, 1);
	check_tlbs_backed(s, gfn, gfn + nr,
			  "by a zap holding mmu_lock for write");
	lo = lo > zap_ctx.start ? lo : zap_ctx.start;
	hi = hi < zap_ctx.end ? hi : zap_ctx.end;
	for (tdp_gfn_t g = lo; g < hi; g++) {
		tdp_spte_t spte;
		int level;

		if (tdp_lookup(s->mmu, g, TDP_ALIAS_SHARED, &spte, &level))
			continue;
		sim_count(&s->stats, SIM_C_CHECK_FLUSH_ORDER, 1);
		if (tdp_spte_is_present(tdp_mmu_format(s->mmu), spte)) {
			sim_violation(&s->report, SIM_V_FLUSH_ORDER, 0, g,
				      SIM_NO_VCPU,
				      "the zap of [%#" PRIx64 ", %#" PRIx64
				      ") flushed gfn %#" PRIx64 " while its "
				      "level-%d leaf was still present",
				      zap_ctx.start, zap_ctx.end, g, level);
			return;
		}
	}
}

static void host_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct sim *s = ctx;

	sim_count(&s->stats, SIM_C_FLUSH_RANGE, 1);
	check_flush_order(s, gfn, nr_pages);
	sim_tlb_shoot_down(s, gfn, nr_pages, false);
}

static void host_flush_all(void *ctx)
{
	struct sim *s = ctx;

	sim_count(&s->stats, SIM_C_FLUSH_ALL, 1);
	sim_tlb_shoot_down(s, 0, 0, true);
}

/* Tell the listener, if any, of pages changed behind the dirty log. */
static void pages_changed(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	if (s->host.pages_changed)
		s->host.pages_changed(s, gfn, n);
}

/*
 * Inside a host zap of the shared alias (mmu_lock held for write by this
 * thread): a table the zap unlinked is emptied after the flush, so when
 * it reports a dirty leaf no vCPU may still reach an unlinked leaf table
 * of that region through its paging-structure cache.  (Read-locked
 * teardowns, recovery and the zap of invalidated roots, exchange each
 * entry and may flush after; they run outside zap_ctx.)
 */
static void check_reclaim_flushed(struct sim *s, tdp_gfn_t gfn)
{
	tdp_pfn_t table = 0;
	int holder;

	if (zap_ctx.s != s || !(gfn & SIM_SHARED_BIT))
		return;
	holder = sim_vcpus_find_unlinked_cached(s, gfn, &table);
	if (holder >= 0)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
			      gfn & ~SIM_SHARED_BIT, holder,
			      "the zap of [%#" PRIx64 ", %#" PRIx64 ") reports "
			      "dirty gfn %#" PRIx64 " while the vCPU's "
			      "paging-structure cache still reaches leaf table "
			      "%#" PRIx64 ", which the tree no longer links: "
			      "an unlinked table read before the flush",
			      zap_ctx.start, zap_ctx.end, gfn & ~SIM_SHARED_BIT,
			      table);
}

/* A zap removed a direct leaf whose dirty bit was set. */
static void host_mark_dirty(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct sim *s = ctx;

	check_reclaim_flushed(s, gfn);
	sim_ledger_reported(s, gfn, nr_pages);
	pages_changed(s, gfn & ~SIM_SHARED_BIT, nr_pages);
}

void sim_host_ops_init(struct sim *s, struct tdp_host_ops *ops)
{
	*ops = (struct tdp_host_ops){
		.flush_range = host_flush_range,
		.flush_all   = host_flush_all,
		.mark_dirty  = host_mark_dirty,
		.ctx         = s,
	};
}

uint64_t sim_host_read_page(struct sim *s, tdp_pfn_t pfn)
{
	struct tdx_pamt_info pamt = tdx_pamt_get(s->module, pfn);

	if (pamt.type == PAMT_CTL || pamt.type == PAMT_EPT ||
	    pamt.type == PAMT_REG) {
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, SIM_NO_GFN,
			      SIM_NO_VCPU, "the host reads page %#" PRIx64
			      ", a %s page of the TD", pfn,
			      pamt.type == PAMT_CTL   ? "control"
			      : pamt.type == PAMT_EPT ? "S-EPT"
						      : "private");
		return SIM_TAG_POISON;
	}
	return host_page_tag(host_mem_page(s->mem, pfn));
}

bool sim_host_read_shared(struct sim *s, tdp_gfn_t gfn, uint64_t *tag)
{
	uint64_t region = region_of(s, gfn);
	bool shared;

	pthread_mutex_lock(&s->host.backing_lock[region]);
	shared = sim_host_attr(&s->host, gfn) == SIM_ATTR_SHARED;
	if (shared) {
		tdp_pfn_t pfn = backing_read(s, gfn, false);

		*tag = pfn ? sim_host_read_page(s, pfn) : SIM_TAG(gfn, 0);
	}
	pthread_mutex_unlock(&s->host.backing_lock[region]);
	return shared;
}

/* ---- backing ------------------------------------------------------------- */

/* [start, end) is guest memory without a hole; regions in GFN order. */
static void backing_lock_range(struct sim *s, tdp_gfn_t start, tdp_gfn_t end)
{
	for (tdp_gfn_t g = start & ~(SIM_REGION_PAGES - 1); g < end;
	     g += SIM_REGION_PAGES)
		pthread_mutex_lock(&s->host.backing_lock[region_of(s, g)]);
}

static void backing_unlock_range(struct sim *s, tdp_gfn_t start,
				 tdp_gfn_t end)
{
	for (tdp_gfn_t g = start & ~(SIM_REGION_PAGES - 1); g < end;
	     g += SIM_REGION_PAGES)
		pthread_mutex_unlock(&s->host.backing_lock[region_of(s, g)]);
}

/* Every page of dense region @region has attribute @a. */
static bool region_attr_uniform(struct sim *s, uint64_t region,
				enum sim_attr a)
{
	const uint8_t *attr = &s->host.attr[region * SIM_REGION_PAGES];

	for (uint64_t i = 0; i < SIM_REGION_PAGES; i++)
		if (__atomic_load_n(&attr[i], __ATOMIC_ACQUIRE) != a)
			return false;
	return true;
}

/* Every GFN of dense region @region backed, by one aligned 2 MiB run
 * (or none). */
static bool region_backing_is(struct sim *s, uint64_t region, bool private,
			      bool huge)
{
	tdp_pfn_t *slot = private ? s->host.private_pfn : s->host.shared_pfn;
	tdp_pfn_t *pfn = &slot[region * SIM_REGION_PAGES];
	tdp_pfn_t first = __atomic_load_n(&pfn[0], __ATOMIC_ACQUIRE);

	if (huge && (!first || (first & (SIM_REGION_PAGES - 1))))
		return false;
	for (uint64_t i = 0; i < SIM_REGION_PAGES; i++) {
		tdp_pfn_t p = __atomic_load_n(&pfn[i], __ATOMIC_ACQUIRE);

		if (huge ? p != first + i : p != 0)
			return false;
	}
	return true;
}

static bool in_hotplug(struct sim *s, tdp_pfn_t pfn)
{
	tdp_pfn_t start, end;

	host_mem_hotplug_range(s->mem, &start, &end);
	return pfn >= start && pfn < end;
}

/*
 * Find or allocate the frame backing @gfn's alias, with the region's
 * backing lock held.  Returns 0 with the frame and the largest level the
 * backing allows; -EAGAIN if the attribute no longer matches the alias
 * (a conversion won the race); -ENOMEM.
 */
static int resolve_backing(struct sim *s, tdp_gfn_t gfn, bool private,
			   int want_level, tdp_pfn_t *pfn, int *max_level)
{
	uint64_t region = region_of(s, gfn);
	tdp_gfn_t base = gfn & ~(SIM_REGION_PAGES - 1);
	enum sim_attr a = private ? SIM_ATTR_PRIVATE : SIM_ATTR_SHARED;
	enum host_page_use use = private ? HOST_PAGE_PRIVATE : HOST_PAGE_SHARED;
	enum host_pool pool = !private ? HOST_POOL_ANY
			      : s->cfg.break_private_outside_tdx
				      ? HOST_POOL_NON_TDX
			      : s->cfg.break_private_hotplug
				      ? HOST_POOL_HOTPLUG
				      : HOST_POOL_TDX;
	bool huge_ok;
	int ret = 0;

	pthread_mutex_lock(&s->host.backing_lock[region]);
	if (sim_host_attr(&s->host, gfn) != a) {
		ret = -EAGAIN;
		goto out;
	}
	huge_ok = want_level >= TDP_LEVEL_2M &&
		  region_attr_uniform(s, region, a);
	if (!backing_read(s, gfn, private) && huge_ok &&
	    region_backing_is(s, region, private, false)) {
		tdp_pfn_t chunk = host_mem_alloc_2m(s->mem, s->owner, pool, use, base);

		if (chunk) {
			for (uint64_t i = 0; i < SIM_REGION_PAGES; i++)
				backing_write(s, base + i, private, chunk + i);
			sim_count(&s->stats, SIM_C_HOST_ALLOC_2M, 1);
		} else {
			sim_count(&s->stats, SIM_C_HOST_ALLOC_2M_FAILED, 1);
		}
	}
	if (!backing_read(s, gfn, private)) {
		tdp_pfn_t p = host_mem_alloc(s->mem, s->owner, pool, use, gfn);

		if (!p) {
			sim_violation(&s->report, SIM_V_INCONSISTENT, 0, gfn,
				      SIM_NO_VCPU, "host memory exhausted");
			ret = -ENOMEM;
			goto out;
		}
		backing_write(s, gfn, private, p);
		if (!private && in_hotplug(s, p))
			sim_count(&s->stats, SIM_C_HOTADD_SHARED_PAGES, 1);
	}
	*pfn = backing_read(s, gfn, private);
	*max_level = huge_ok && region_backing_is(s, region, private, true)
			     ? TDP_LEVEL_2M
			     : TDP_LEVEL_4K;
out:
	pthread_mutex_unlock(&s->host.backing_lock[region]);
	return ret;
}

/*
 * Free one backing page after checking nobody can still reach it: no live
 * TLB entry, not the TD's in the PAMT, no tree maps it.  A page the TD
 * still owns is kept (leaked): handing it out again would hide the bug.
 * The caller holds the region's backing lock.
 */
void sim_host_free_page(struct sim *s, tdp_gfn_t gfn, bool private,
			tdp_pfn_t pfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	struct tdx_pamt_info pamt = tdx_pamt_get(s->module, pfn);
	tdp_gfn_t tlb_gfn = 0;
	tdp_spte_t spte;
	int holder, level;

	sim_count(&s->stats, SIM_C_CHECK_FREE, 1);
	if (pamt.type == PAMT_REG || pamt.type == PAMT_EPT) {
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, gfn,
			      SIM_NO_VCPU,
			      "host discards the %s page %#" PRIx64
			      " but the TD still owns it (PAMT %s at gfn %#"
			      PRIx64 "): its private mapping was never "
			      "removed", private ? "private" : "shared", pfn,
			      pamt.type == PAMT_REG ? "REG" : "EPT", pamt.gfn);
		return;
	}
	holder = sim_tlb_find_live(s, pfn, 1, false, &tlb_gfn);
	if (holder >= 0)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
			      tlb_gfn & ~SIM_SHARED_BIT, holder,
			      "host page %#" PRIx64 " (backing %s gfn %#"
			      PRIx64 ") freed while the vCPU's TLB still "
			      "translates %s gfn %#" PRIx64 " to it",
			      pfn, private ? "private" : "shared", gfn,
			      (tlb_gfn & SIM_SHARED_BIT) ? "shared" : "private",
			      tlb_gfn & ~SIM_SHARED_BIT);
	if (tdp_lookup(s->mmu, gfn, private ? TDP_ALIAS_PRIVATE
					     : TDP_ALIAS_SHARED,
		       &spte, &level) == 0 &&
	    tdp_spte_is_present(fmt, spte) &&
	    tdp_spte_is_leaf(fmt, spte, level) &&
	    tdp_spte_pfn(fmt, spte) + (gfn & (tdp_level_pages(level) - 1)) ==
		    pfn)
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, gfn,
			      SIM_NO_VCPU,
			      "host page %#" PRIx64 " freed while the %s "
			      "tree still maps gfn %#" PRIx64 " to it",
			      pfn, private ? "mirror" : "direct", gfn);
	/* A dirty bit set on the way out must have been reported (not at
	 * teardown: the host does not look at the log any more). */
	if (!private && !s->finished)
		sim_ledger_check_freed(s, gfn);
	if (!host_mem_free(s->mem, pfn))
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, gfn,
			      SIM_NO_VCPU, "host page %#" PRIx64
			      " freed twice", pfn);
	sim_count(&s->stats, SIM_C_HOST_PAGES_FREED, 1);
}

static void discard_backing(struct sim *s, tdp_gfn_t gfn, bool private)
{
	tdp_pfn_t pfn = backing_read(s, gfn, private);

	if (!pfn)
		return;
	backing_write(s, gfn, private, 0);
	sim_host_free_page(s, gfn, private, pfn);
}

/* ---- faults -------------------------------------------------------------- */

void sim_host_count_fault(struct sim *s, bool private, int ret)
{
	static const enum sim_counter by_outcome[2][4] = {
		{ SIM_C_FAULT_SHARED_FIXED, SIM_C_FAULT_SHARED_SPURIOUS,
		  SIM_C_FAULT_SHARED_RETRY, SIM_C_FAULT_SHARED_ERROR },
		{ SIM_C_FAULT_PRIVATE_FIXED, SIM_C_FAULT_PRIVATE_SPURIOUS,
		  SIM_C_FAULT_PRIVATE_RETRY, SIM_C_FAULT_PRIVATE_ERROR },
	};
	int outcome = ret < 0 ? 3 : ret;

	sim_count(&s->stats, by_outcome[private][outcome], 1);
	if (ret == SIM_ERR_INJECTED)
		sim_count(&s->stats, SIM_C_FAULT_INJECTED_SURVIVED, 1);
}

__thread bool sim_host_in_fault;

/* The halves of a host unmap (events below), for the forced races. */
static int unmap_begin(struct sim *s, tdp_gfn_t gfn, tdp_gfn_t end);
static void unmap_finish(struct sim *s, tdp_gfn_t gfn, tdp_gfn_t end,
			 int ret);

/* What the host's own events had done when a fault called tdp_map(). */
struct fault_snap {
	uint64_t zap_gen, root_seq;
};

static struct fault_snap fault_snap_take(struct sim *s)
{
	return (struct fault_snap){
		.zap_gen = __atomic_load_n(&s->host.zap_gen, __ATOMIC_SEQ_CST),
		.root_seq = __atomic_load_n(&s->host.root_seq,
					    __ATOMIC_SEQ_CST),
	};
}

/*
 * No range event zapped and no root invalidation ran since @snap, nor
 * was one running then.  Read after the tree walk: a walk that met the
 * new root of an invalidation comes with its first root_seq step.
 */
static bool fault_snap_holds(struct sim *s, struct fault_snap snap)
{
	struct fault_snap now = fault_snap_take(s);

	return !(snap.root_seq & 1) && now.root_seq == snap.root_seq &&
	       now.zap_gen == snap.zap_gen;
}

/*
 * Right after tdp_map() fixed @gfn's alias, look at the tree the way a
 * walk from the root does (tdp_lookup(): the current root, lockless).
 * With the region's backing lock held no event is between its zap and
 * its backing change, so a present leaf must map the GFN's current
 * backing page: another page is one the fault resolved before the host
 * revoked it (a broken invalidation-sequence check).  A shared GFN must
 * also still be mapped, unless the host zapped or invalidated the root
 * since the snapshot @snap taken before tdp_map(): a leaf that no walk
 * finds went into a table that is no longer in the tree (the vCPU's
 * leaf-table cache kept an unlinked table).  Private GFNs get only the
 * first check: a demote or promote of another thread freezes their
 * entries for a while without any host event.  Returns the level of the
 * leaf, 0 if none was found.
 */
static int check_fault_map(struct sim *s, int vcpu, tdp_gfn_t gfn,
			   bool private, struct fault_snap snap)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	uint64_t region = region_of(s, gfn);
	tdp_spte_t spte;
	tdp_pfn_t want, pfn;
	int level;

	pthread_mutex_lock(&s->host.backing_lock[region]);
	want = backing_read(s, gfn, private);
	if (tdp_lookup(s->mmu, gfn, private ? TDP_ALIAS_PRIVATE
					     : TDP_ALIAS_SHARED,
		       &spte, &level)) {
		/* A dead MMU: reported where it died. */
		level = 0;
		goto out;
	}
	sim_count(&s->stats, SIM_C_CHECK_FAULT_MAP, 1);
	if (tdp_spte_is_present(fmt, spte) &&
	    tdp_spte_is_leaf(fmt, spte, level)) {
		pfn = tdp_spte_pfn(fmt, spte) +
		      (gfn & (tdp_level_pages(level) - 1));
		if (pfn != want)
			sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
				      gfn, vcpu,
				      "tdp_map() fixed %s gfn %#" PRIx64
				      " but the %s tree maps it to page %#"
				      PRIx64 " (level %d), not its backing "
				      "%#" PRIx64 ": the fault mapped a page "
				      "the host had revoked",
				      private ? "private" : "shared", gfn,
				      private ? "mirror" : "direct", pfn,
				      level, want);
		goto out;
	}
	if (!private && !tdp_spte_is_frozen(fmt, spte) &&
	    fault_snap_holds(s, snap))
		sim_violation(&s->report, SIM_V_LOST_MAPPING, 0, gfn, vcpu,
			      "tdp_map() fixed shared gfn %#" PRIx64 " but "
			      "a walk from the root stops at level %d with "
			      "nothing mapped, and the host zapped nothing "
			      "since: the leaf went into a table that is no "
			      "longer in the tree", gfn, level);
	level = 0;
out:
	pthread_mutex_unlock(&s->host.backing_lock[region]);
	return level;
}

/* The forced interleavings of a fault (cfg.race_pct). */
enum fault_race {
	RACE_NONE,
	RACE_WHOLE,   /* an unmap of pages around the GFN, begin to end */
	RACE_PARTIAL, /* an unmap of other pages of the region, across */
	RACE_TABLE,   /* an unmap of the whole region after a 4 KiB fault */
};

/*
 * A fault that may map 2 MiB is raced this many times as often as
 * others (at most one in two): only the first touch of a region backed
 * by one 2 MiB chunk is such a fault, a few per second.
 */
#define RACE_HUGE_BOOST 200

/*
 * Whether and how the host races this fault.  Only shared vCPU faults:
 * their backing changes through an event the host runs on its own (page
 * migration), where a private page changes only on the guest's MapGPA
 * or a slot deletion, which need the guest (its region locks, which the
 * faulting vCPU may hold).  Not in a replay, not without host events.
 */
static enum fault_race fault_race_pick(struct sim *s, int vcpu, bool private,
				       int max_level)
{
	struct sim_rng *rng;
	uint32_t ppm;

	if (vcpu < 0 || private || s->cfg.trace || s->cfg.event_rate <= 0 ||
	    s->cfg.race_pct <= 0)
		return RACE_NONE;
	rng = &s->vcpus.v[vcpu].rng;
	ppm = sim_pct_to_ppm(s->cfg.race_pct);
	if (max_level >= TDP_LEVEL_2M) {
		uint64_t boosted = (uint64_t)ppm * RACE_HUGE_BOOST;

		ppm = boosted > 500000 ? 500000 : (uint32_t)boosted;
		/* Half of them see the whole variant, on the faulting GFN. */
		if (!sim_rng_ppm(rng, ppm))
			return RACE_NONE;
		return sim_rng_below(rng, 2) ? RACE_PARTIAL : RACE_WHOLE;
	}
	if (!sim_rng_ppm(rng, ppm))
		return RACE_NONE;
	return sim_rng_below(rng, 4) ? RACE_WHOLE : RACE_TABLE;
}

/*
 * A whole host unmap (invalidate_begin, zap, migration, invalidate_end)
 * of a run of pages around @gfn inside its region, after the fault
 * resolved @gfn's page and before tdp_map(): the page the fault holds is
 * freed, so tdp_map() must answer TDP_FAULT_RETRY.  One in eight covers
 * the whole region, which unlinks its table of 4 KiB leaves.
 */
static void race_whole(struct sim *s, struct sim_rng *rng, tdp_gfn_t gfn)
{
	tdp_gfn_t base = gfn & ~(SIM_REGION_PAGES - 1);
	uint64_t below = sim_rng_below(rng, 8), above = sim_rng_below(rng, 8);
	tdp_gfn_t start, end;

	/* Up to 7 pages on each side, inside the region (GFN 0 included). */
	start = gfn - base < below ? base : gfn - below;
	end = gfn + 1 + above;
	end = end > base + SIM_REGION_PAGES ? base + SIM_REGION_PAGES : end;
	if (!sim_rng_below(rng, 8)) {
		start = base;
		end = base + SIM_REGION_PAGES;
	}
	sim_count(&s->stats, SIM_C_RACE_WHOLE, 1);
	sim_host_unmap_shared(s, start, end - start);
}

/*
 * The first half of an unmap of 1..64 pages of @gfn's region that do not
 * include @gfn: it has begun and zapped when tdp_map() runs and finishes
 * (migration, invalidate_end) after it, so a fault that may map the
 * whole region at 2 MiB must answer TDP_FAULT_RETRY.  Returns
 * unmap_begin()'s result and the range in *@start, *@end.
 */
static int race_partial_begin(struct sim *s, struct sim_rng *rng,
			      tdp_gfn_t gfn, tdp_gfn_t *start, tdp_gfn_t *end)
{
	tdp_gfn_t base = gfn & ~(SIM_REGION_PAGES - 1);
	uint64_t off = gfn - base, lo, hi, n;

	/* The side below the GFN, or above it. */
	if (off == SIM_REGION_PAGES - 1 || (off && sim_rng_below(rng, 2))) {
		lo = 0;
		hi = off;
	} else {
		lo = off + 1;
		hi = SIM_REGION_PAGES;
	}
	n = 1 + sim_rng_below(rng, hi - lo < 64 ? hi - lo : 64);
	*start = base + lo + sim_rng_below(rng, hi - lo - n + 1);
	*end = *start + n;
	sim_count(&s->stats, SIM_C_RACE_PARTIAL, 1);
	return unmap_begin(s, *start, *end);
}

/*
 * Long enough for a table the engine unlinked to be freed: the user
 * port frees in batches, 10 ms after the first free of a batch and one
 * grace period later.
 */
#define RACE_TABLE_WAIT_US 25000

/*
 * The vCPU faulted @gfn in at 4 KiB: its leaf-table cache holds the
 * region's table.  Unmap the whole region now (the table is unlinked,
 * frozen and, after a grace period, freed); the vCPU's access refaults
 * in the region right after, and that fault must not install its leaf
 * in the old table (check_fault_map()).  One in four waits for the old
 * table to be freed first, as when the vCPU comes back to the region
 * later: the refault then meets a cache that points at freed memory.
 */
static void race_table(struct sim *s, struct sim_rng *rng, tdp_gfn_t gfn)
{
	sim_count(&s->stats, SIM_C_RACE_TABLE, 1);
	sim_host_unmap_shared(s, gfn & ~(SIM_REGION_PAGES - 1),
			      SIM_REGION_PAGES);
	if (!sim_rng_below(rng, 4))
		usleep(RACE_TABLE_WAIT_US);
}

/*
 * Host latency between resolving the page and tdp_map() (a page-cache
 * lookup, a lock, a preemption): one vCPU fault in
 * SIM_FAULT_DELAY_ONE_IN waits 0..cfg.fault_delay_us microseconds,
 * giving the CPU away meanwhile, so that events of other threads land
 * in the window.
 */
static void fault_delay(struct sim *s, int vcpu)
{
	struct sim_rng *rng;
	double until;

	if (vcpu < 0 || !s->cfg.fault_delay_us || s->cfg.trace ||
	    s->cfg.event_rate <= 0)
		return;
	rng = &s->vcpus.v[vcpu].rng;
	if (sim_rng_below(rng, SIM_FAULT_DELAY_ONE_IN))
		return;
	sim_count(&s->stats, SIM_C_FAULT_DELAYS, 1);
	until = sim_now() +
		(double)sim_rng_below(rng, s->cfg.fault_delay_us + 1) / 1e6;
	do
		sched_yield();
	while (sim_now() < until);
}

int sim_host_fault(struct sim *s, struct tdp_vcpu *ctx, int vcpu,
		   tdp_gfn_t fault_gfn, bool write, int accept_level)
{
	bool private = !(fault_gfn & SIM_SHARED_BIT);
	tdp_gfn_t gfn = fault_gfn & ~SIM_SHARED_BIT;
	/* Read before the attribute and the frame: a conversion or unmap
	 * that ends after this makes tdp_map() refuse the stale frame. */
	uint64_t seq = tdp_mmu_seq(s->mmu);
	int want = TDP_LEVEL_4K, max_level, part = 1;
	tdp_gfn_t part_start = 0, part_end = 0;
	enum fault_race race;
	struct fault_snap snap;
	struct tdp_fault f;
	tdp_pfn_t pfn;
	int ret;

	/* A private fault is an ACCEPT's exit or a pre-fault. */
	if (s->cfg.huge)
		want = private && accept_level ? accept_level : TDP_LEVEL_2M;
	ret = resolve_backing(s, gfn, private, want, &pfn, &max_level);
	if (ret)
		return ret;
	fault_delay(s, vcpu);
	race = fault_race_pick(s, vcpu, private, max_level);
	if (race == RACE_WHOLE)
		race_whole(s, &s->vcpus.v[vcpu].rng, gfn);
	else if (race == RACE_PARTIAL)
		part = race_partial_begin(s, &s->vcpus.v[vcpu].rng, gfn,
					  &part_start, &part_end);
	f = (struct tdp_fault){
		.fault_gfn = fault_gfn,
		.pfn       = pfn,
		.prot      = TDP_PROT_READ | TDP_PROT_EXEC |
			     (write || private ? TDP_PROT_WRITE : 0),
		.max_level = max_level,
		.mmu_seq   = seq,
	};
	snap = fault_snap_take(s);
	sim_host_in_fault = true;
	ret = tdp_map(ctx, &f);
	sim_host_in_fault = false;
	if (part != 1)
		unmap_finish(s, part_start, part_end, part);
	sim_host_count_fault(s, private, ret);
	if (ret == TDP_FAULT_FIXED &&
	    check_fault_map(s, vcpu, gfn, private, snap) == TDP_LEVEL_4K &&
	    race == RACE_TABLE)
		race_table(s, &s->vcpus.v[vcpu].rng, gfn);
	if (ret < 0 && ret != SIM_ERR_INJECTED && ret != SIM_ERR_TDX) {
		sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn, vcpu,
			      "tdp_map(%s gfn, pfn %#" PRIx64 ", max level %d)"
			      " failed: %d", private ? "private" : "shared",
			      pfn, max_level, ret);
		if (ret == -EIO || ret == -ESHUTDOWN)
			sim_stop_request(&s->run);
	}
	return ret;
}

/* ---- events -------------------------------------------------------------- */

static bool engine_ok(struct sim *s, int ret, const char *what, tdp_gfn_t gfn)
{
	if (!ret)
		return true;
	sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn, SIM_NO_VCPU,
		      "%s failed: %d", what, ret);
	if (ret == -EIO || ret == -ESHUTDOWN)
		sim_stop_request(&s->run);
	return false;
}

/* A range event is about to zap: its backing locks are held (the check
 * after a fault, sim_host_fault()). */
static void zap_gen_bump(struct sim *s)
{
	__atomic_add_fetch(&s->host.zap_gen, 1, __ATOMIC_SEQ_CST);
}

/* Zaps repeated after -EBUSY before the host gives up (and reports). */
#define ZAP_MAX_TRIES 1000

typedef int (*zap_fn)(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);

/*
 * One zap of [start, end).  A private zap answers -EBUSY when a demote of
 * a huge leaf at an end of the range stayed busy; nothing was unmapped
 * then, so the host simply calls it again.
 */
static int zap_until_done(struct sim *s, zap_fn zap, tdp_gfn_t start,
			  tdp_gfn_t end)
{
	int ret = zap(s->mmu, start, end);

	for (int tries = 1; ret == -EBUSY && tries < ZAP_MAX_TRIES; tries++) {
		sim_count(&s->stats, SIM_C_RETRY_ZAP_BUSY, 1);
		ret = zap(s->mmu, start, end);
	}
	return ret;
}

int sim_host_map_gpa(struct sim *s, tdp_gfn_t gfn, uint64_t n,
		     bool to_private)
{
	tdp_gfn_t end = gfn + n;
	int ret;

	ret = tdp_invalidate_begin(s->mmu, gfn, end);
	if (!engine_ok(s, ret, "tdp_invalidate_begin", gfn))
		return ret;
	backing_lock_range(s, gfn, end);
	zap_gen_bump(s);
	for (tdp_gfn_t g = gfn; g < end; g++)
		attr_write(s, g, to_private ? SIM_ATTR_PRIVATE
					    : SIM_ATTR_SHARED);
	/* The shared content changes without a write the log can see. */
	pages_changed(s, gfn, n);
	if (to_private) {
		zap_ctx_enter(s, gfn, end);
		ret = tdp_zap_convert_to_private(s->mmu, gfn, end);
		zap_ctx_exit();
		sim_count(&s->stats, SIM_C_ZAP_TO_PRIVATE, 1);
		sim_count(&s->stats, SIM_C_ZAP_TO_PRIVATE_PAGES, n);
	} else {
		ret = zap_until_done(s, tdp_zap_convert_to_shared, gfn, end);
		sim_count(&s->stats, SIM_C_ZAP_TO_SHARED, 1);
		sim_count(&s->stats, SIM_C_ZAP_TO_SHARED_PAGES, n);
	}
	if (engine_ok(s, ret, to_private ? "tdp_zap_convert_to_private"
					 : "tdp_zap_convert_to_shared", gfn))
		/* The alias that went away loses its backing. */
		for (tdp_gfn_t g = gfn; g < end; g++)
			discard_backing(s, g, !to_private);
	backing_unlock_range(s, gfn, end);
	engine_ok(s, tdp_invalidate_end(s->mmu, gfn, end),
		  "tdp_invalidate_end", gfn);
	return ret;
}

/*
 * The first half of a host unmap of [gfn, end): the invalidation begins,
 * the backing locks are taken and the shared alias is zapped.  Returns
 * the zap's result, or 1 when the invalidation did not begin (reported;
 * nothing to finish).
 */
static int unmap_begin(struct sim *s, tdp_gfn_t gfn, tdp_gfn_t end)
{
	int ret;

	sim_count(&s->stats, SIM_C_EVENT_UNMAP, 1);
	if (!engine_ok(s, tdp_invalidate_begin(s->mmu, gfn, end),
		       "tdp_invalidate_begin", gfn))
		return 1;
	backing_lock_range(s, gfn, end);
	zap_gen_bump(s);
	zap_ctx_enter(s, gfn, end);
	ret = tdp_zap_host_unmap(s->mmu, gfn, end);
	zap_ctx_exit();
	sim_count(&s->stats, SIM_C_ZAP_HOST_UNMAP, 1);
	sim_count(&s->stats, SIM_C_ZAP_HOST_UNMAP_PAGES, end - gfn);
	return ret;
}

/* The second half: migrate the pages if the zap (@ret) succeeded, drop
 * the backing locks, end the invalidation. */
static void unmap_finish(struct sim *s, tdp_gfn_t gfn, tdp_gfn_t end, int ret)
{
	if (engine_ok(s, ret, "tdp_zap_host_unmap", gfn)) {
		/* Migrate: copy each page, switch the backing, free the old
		 * page.  No vCPU can reach the old page any more. */
		for (tdp_gfn_t g = gfn; g < end; g++) {
			tdp_pfn_t old = backing_read(s, g, false);
			tdp_pfn_t new_pfn;

			if (!old)
				continue;
			new_pfn = host_mem_alloc(s->mem, s->owner, HOST_POOL_ANY,
						 HOST_PAGE_SHARED, g);
			if (!new_pfn)
				continue;
			host_page_set_tag(host_mem_page(s->mem, new_pfn),
					  sim_host_read_page(s, old));
			backing_write(s, g, false, new_pfn);
			sim_host_free_page(s, g, false, old);
			sim_count(&s->stats, SIM_C_EVENT_PAGES_MIGRATED, 1);
		}
	}
	backing_unlock_range(s, gfn, end);
	engine_ok(s, tdp_invalidate_end(s->mmu, gfn, end),
		  "tdp_invalidate_end", gfn);
}

void sim_host_unmap_shared(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	int ret = unmap_begin(s, gfn, gfn + n);

	if (ret != 1)
		unmap_finish(s, gfn, gfn + n, ret);
}

void sim_host_slot_delete(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	tdp_gfn_t end = gfn + n;
	int ret;

	sim_count(&s->stats, SIM_C_EVENT_SLOT_DELETE, 1);
	if (!engine_ok(s, tdp_invalidate_begin(s->mmu, gfn, end),
		       "tdp_invalidate_begin", gfn))
		return;
	backing_lock_range(s, gfn, end);
	zap_gen_bump(s);
	zap_ctx_enter(s, gfn, end);
	ret = zap_until_done(s, tdp_zap_slot_deleted, gfn, end);
	zap_ctx_exit();
	sim_count(&s->stats, SIM_C_ZAP_SLOT_DELETED, 1);
	sim_count(&s->stats, SIM_C_ZAP_SLOT_DELETED_PAGES, n);
	if (engine_ok(s, ret, "tdp_zap_slot_deleted", gfn)) {
		for (tdp_gfn_t g = gfn; g < end; g++) {
			discard_backing(s, g, true);
			discard_backing(s, g, false);
			/* The re-created slot starts private, as at boot. */
			attr_write(s, g, SIM_ATTR_PRIVATE);
		}
		pages_changed(s, gfn, n);
	}
	backing_unlock_range(s, gfn, end);
	engine_ok(s, tdp_invalidate_end(s->mmu, gfn, end),
		  "tdp_invalidate_end", gfn);
}

void sim_host_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	int ret = tdp_recover_huge_pages(s->mmu, gfn, gfn + n, TDP_LEVEL_2M,
					 TDP_ALIAS_PRIVATE);

	sim_count(&s->stats, SIM_C_EVENT_RECOVER, 1);
	engine_ok(s, ret < 0 ? ret : 0, "tdp_recover_huge_pages", gfn);
}

void sim_host_split_huge(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_count(&s->stats, SIM_C_EVENT_SPLIT, 1);
	engine_ok(s, tdp_split_huge_range(s->mmu, gfn, gfn + n, TDP_LEVEL_4K,
					  TDP_ALIAS_SHARED),
		  "tdp_split_huge_range", gfn);
}

/* The private alias of @base's region is one 2 MiB leaf. */
static bool private_huge_leaf(struct sim *s, tdp_gfn_t base)
{
	tdp_spte_t spte;
	int level;

	return !tdp_lookup(s->mmu, base, TDP_ALIAS_PRIVATE, &spte, &level) &&
	       level == TDP_LEVEL_2M &&
	       tdp_spte_is_present(tdp_mmu_format(s->mmu), spte);
}

bool sim_host_demote_private(struct sim *s, tdp_gfn_t gfn)
{
	tdp_gfn_t base = gfn & ~(tdp_gfn_t)(SIM_REGION_PAGES - 1);

	if (!private_huge_leaf(s, base))
		return false;
	sim_count(&s->stats, SIM_C_EVENT_DEMOTE_IN_PLACE, 1);
	sim_host_prefault(s, gfn, 1, TDP_LEVEL_4K);
	return true;
}

void sim_host_zap_all(struct sim *s)
{
	sim_count(&s->stats, SIM_C_EVENT_ZAP_ALL, 1);
	/* Zaps guest memory without backing locks: odd root_seq while it
	 * runs, as a root invalidation (the check after a fault). */
	__atomic_add_fetch(&s->host.root_seq, 1, __ATOMIC_SEQ_CST);
	engine_ok(s, tdp_zap_all(s->mmu), "tdp_zap_all", SIM_NO_GFN);
	__atomic_add_fetch(&s->host.root_seq, 1, __ATOMIC_SEQ_CST);
}

void sim_host_prefault(struct sim *s, tdp_gfn_t gfn, uint64_t n, int level)
{
	sim_count(&s->stats, SIM_C_EVENT_PREFAULT, 1);
	for (tdp_gfn_t g = gfn; g < gfn + n && !sim_stop_requested(&s->run); g++) {
		for (int tries = 0; tries < PREFAULT_MAX_TRIES; tries++) {
			int ret = sim_host_fault(s, s->host.ctx, SIM_NO_VCPU,
						 g, true, level);

			/* A shared GFN, or one converted meanwhile, is not
			 * pre-faulted; errors were reported. */
			if (ret != TDP_FAULT_RETRY && ret != SIM_ERR_INJECTED)
				break;
			sched_yield();
		}
	}
}

void sim_host_release_all(struct sim *s)
{
	for (uint64_t page = 0; page < s->nr_gfns; page++) {
		uint64_t region = page / SIM_REGION_PAGES;
		tdp_gfn_t g = sim_layout_gfn(&s->layout, page);

		pthread_mutex_lock(&s->host.backing_lock[region]);
		discard_backing(s, g, true);
		discard_backing(s, g, false);
		pthread_mutex_unlock(&s->host.backing_lock[region]);
	}
}

/* ---- memory hot-add ------------------------------------------------------ */

int sim_host_online_hook(struct sim *s, tdp_pfn_t start, tdp_pfn_t end,
			 bool private_use)
{
	if (private_use && !host_mem_tdx_usable(s->mem, start, end - start)) {
		sim_count(&s->stats, SIM_C_HOTADD_REFUSED, 1);
		return -EPERM;
	}
	return 0;
}

void sim_host_hot_add(struct sim *s)
{
	tdp_pfn_t start, end;

	host_mem_hotplug_range(s->mem, &start, &end);
	if (start == end || s->host.hot_added)
		return;
	s->host.hot_added = true;
	/* Asked first for private use: refused, it is not in the list of
	 * TDX-usable memory the module was configured with. */
	if (!sim_host_online_hook(s, start, end, true))
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, SIM_NO_GFN,
			      SIM_NO_VCPU, "the onlining hook accepted "
			      "hot-added memory [%#" PRIx64 ", %#" PRIx64
			      ") for private use", start, end);
	if (!sim_host_online_hook(s, start, end, false) &&
	    host_mem_online_hotplug(s->mem, &start, &end))
		sim_count(&s->stats, SIM_C_HOTADD_ONLINED, end - start);
}

/* ---- root invalidation --------------------------------------------------- */

void sim_host_invalidate_root(struct sim *s)
{
	tdp_pfn_t old = 0;
	tdp_gfn_t gfn = 0;
	int level, holder;
	bool ok;

	sim_count(&s->stats, SIM_C_EVENT_ROOT_INVALIDATE, 1);
	/* The host's own context holds the current root until its next
	 * fault: the old root's frame stays the old root's. */
	if (!engine_ok(s, tdp_vcpu_load_root(s->host.ctx, TDP_ALIAS_SHARED,
					     &old, &level),
		       "tdp_vcpu_load_root", SIM_NO_GFN))
		return;
	/*
	 * Aging first (accessed bits cleared, no flush): the racing CPU,
	 * aimed at the zap's front, sets them again on the very leaves the
	 * zap is reading, as a vCPU that has not loaded the new root yet
	 * would, so the zap's compare-exchange meets hardware (racer.h).
	 */
	for (uint64_t r = 0; r < s->nr_regions; r++) {
		tdp_gfn_t base = sim_layout_region_gfn(&s->layout, r);

		tdp_age_range(s->mmu, base, base + SIM_REGION_PAGES, true,
			      TDP_ALIAS_SHARED);
	}
	/* Odd from before the new root until the old one is zapped (the
	 * check after a fault, sim_host_fault()). */
	__atomic_add_fetch(&s->host.root_seq, 1, __ATOMIC_SEQ_CST);
	ok = engine_ok(s, tdp_mmu_invalidate_roots(s->mmu, TDP_ALIAS_SHARED),
		       "tdp_mmu_invalidate_roots", SIM_NO_GFN);
	if (ok) {
		/* Only this thread invalidates roots: the zap is of the old
		 * root. */
		zap_ctx_enter_root(s, old, level);
		sim_racer_aim(s, old, level, 0, tdp_level_pages(level + 1),
			      true);
		ok = engine_ok(s, tdp_mmu_zap_invalidated_roots(s->mmu),
			       "tdp_mmu_zap_invalidated_roots", SIM_NO_GFN);
		sim_racer_disarm(s);
		zap_ctx_exit();
	}
	__atomic_add_fetch(&s->host.root_seq, 1, __ATOMIC_SEQ_CST);
	if (!ok)
		return;
	sim_count(&s->stats, SIM_C_CHECK_ROOT_ZAP, 1);
	holder = sim_tlb_find_by_root(s, old, &gfn);
	if (holder >= 0)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
			      gfn & ~SIM_SHARED_BIT, holder,
			      "the vCPU's TLB still translates shared gfn %#"
			      PRIx64 " through the invalidated root %#" PRIx64
			      " after tdp_mmu_zap_invalidated_roots()",
			      gfn & ~SIM_SHARED_BIT, old);
}

/* ---- TD build ------------------------------------------------------------ */

/* Tries of one image fault or MR.EXTEND before the build gives up. */
#define BUILD_MAX_TRIES 10000

uint64_t sim_image_tag(uint64_t seed, tdp_gfn_t gfn)
{
	uint64_t x = tdx_mr_mix(seed, gfn);

	return SIM_TAG(gfn, 1 + x % (SIM_TAG_VERSION_MASK - 1));
}

/* Map image page @gfn from a source page holding @tag (PAGE.ADD). */
static int build_add_page(struct sim *s, tdp_gfn_t gfn, uint64_t tag)
{
	tdp_pfn_t src = host_mem_alloc(s->mem, s->owner, HOST_POOL_ANY,
				       HOST_PAGE_SHARED, gfn);
	int ret = -ENOMEM;

	if (!src)
		return ret;
	host_page_set_tag(host_mem_page(s->mem, src), tag);
	if (s->cfg.break_build != SIM_BUILD_AUG)
		s->backend.page_add_src = src;
	for (int tries = 0; tries < BUILD_MAX_TRIES; tries++) {
		ret = sim_host_fault(s, s->host.ctx, SIM_NO_VCPU, gfn, true,
				     TDP_LEVEL_4K);
		if (ret != TDP_FAULT_RETRY && ret != SIM_ERR_INJECTED)
			break;
		sim_count(&s->stats, SIM_C_BUILD_RETRIES, 1);
	}
	s->backend.page_add_src = 0;
	host_mem_free(s->mem, src);
	if (ret == TDP_FAULT_FIXED)
		sim_count(&s->stats, SIM_C_BUILD_IMAGE_PAGES, 1);
	return ret == TDP_FAULT_FIXED ? 0 : -EIO;
}

/* Retry a build SEAMCALL while it is busy. */
static tdx_status_t build_call(struct sim *s, tdp_gfn_t gfn, unsigned int chunk,
			       bool finalize)
{
	tdx_status_t st = TDX_OPERAND_BUSY;

	for (int tries = 0; tdx_status_is_busy(st) && tries < BUILD_MAX_TRIES;
	     tries++) {
		if (tries)
			sim_count(&s->stats, SIM_C_BUILD_RETRIES, 1);
		st = finalize ? tdx_mr_finalize(s->module)
			      : tdx_mr_extend(s->module, gfn, chunk, NULL);
	}
	return st;
}

int sim_host_build_td(struct sim *s)
{
	unsigned int n = s->cfg.image_pages;
	int brk = s->cfg.break_build;
	bool finalized = false;

	for (unsigned int i = 0; i < n; i++) {
		tdp_gfn_t gfn = sim_layout_gfn(&s->layout, i);
		uint64_t tag = sim_image_tag(s->cfg.seed, gfn);

		if (brk == SIM_BUILD_ADD_AFTER_FINALIZE && i == n - 1) {
			if (build_call(s, 0, 0, true) != TDX_SUCCESS)
				return -EIO;
			finalized = true;
		}
		if (brk == SIM_BUILD_WRONG_SOURCE && i == 0)
			tag = SIM_TAG(gfn, SIM_TAG_VERSION(tag) + 1);
		if (build_add_page(s, gfn, tag))
			return -EIO;
		if (brk == SIM_BUILD_SKIP_EXTEND && i == 0)
			continue;
		for (unsigned int c = 0; c < TDX_MR_CHUNKS_PER_PAGE && !finalized;
		     c++)
			if (build_call(s, gfn, c, false) != TDX_SUCCESS)
				return -EIO;
	}
	if (!finalized && build_call(s, 0, 0, true) != TDX_SUCCESS)
		return -EIO;
	return 0;
}
