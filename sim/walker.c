/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parked walker (see walker.h). */
#include "walker.h"

#include <inttypes.h>
#include <unistd.h>

#include "sim.h"

/* One park: the table of 4 KiB leaves and the parent entry linking it. */
struct park {
	const tdp_spte_t *slot;  /* the parent entry, at level 2 */
	const tdp_spte_t *table; /* the table's 512 entries */
	tdp_pfn_t table_pfn;
	tdp_gfn_t gfn; /* the table's first GFN, unaliased */
	bool mirror;   /* in the mirror tree, else the direct tree */
};

static tdp_spte_t load(const tdp_spte_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* @spte, an entry at @level, links the table at @pfn. */
static bool links(const struct tdp_spte_format *fmt, tdp_spte_t spte,
		  int level, tdp_pfn_t pfn)
{
	return tdp_spte_is_present(fmt, spte) &&
	       !tdp_spte_is_leaf(fmt, spte, level) &&
	       tdp_spte_pfn(fmt, spte) == pfn;
}

/*
 * Walk the direct tree (or with @mirror the mirror tree) from the root at
 * @root_pfn down to the table of 4 KiB leaves of GFN @gfn (unaliased), as
 * hardware does; false if the walk ends above it.  Inside
 * tdp_walk_begin/end.
 */
static bool find_leaf_table(const struct tdp_spte_format *fmt,
			    tdp_pfn_t root_pfn, int root_level, tdp_gfn_t gfn,
			    bool mirror, struct park *p)
{
	tdp_gfn_t tree_gfn = mirror ? gfn : gfn | SIM_SHARED_BIT;
	const tdp_spte_t *table = tdp_pfn_to_table(root_pfn);

	for (int level = root_level; level > TDP_LEVEL_4K; level--) {
		unsigned int idx = (unsigned int)(tree_gfn >> ((level - 1) *
							      TDP_LEVEL_BITS)) &
				   (TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t spte = load(&table[idx]);

		if (!tdp_spte_is_present(fmt, spte) ||
		    tdp_spte_is_leaf(fmt, spte, level))
			return false;
		if (level == TDP_LEVEL_2M) {
			p->slot = &table[idx];
			p->table_pfn = tdp_spte_pfn(fmt, spte);
			p->table = tdp_pfn_to_table(p->table_pfn);
			p->gfn = gfn & ~(tdp_gfn_t)(SIM_REGION_PAGES - 1);
			p->mirror = mirror;
			return true;
		}
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	return false;
}

/*
 * The table's 512 entries are present 4 KiB leaves of one aligned,
 * contiguous run of frames with the same rights: what a recovery of the
 * shared alias replaces by one 2 MiB leaf, unlinking the table.
 */
static bool table_collapses(const struct tdp_spte_format *fmt,
			    const tdp_spte_t *t)
{
	const tdp_spte_t keep = ~(fmt->pfn_mask | fmt->accessed | fmt->dirty);
	tdp_spte_t first = load(&t[0]);
	tdp_pfn_t pfn = tdp_spte_pfn(fmt, first);

	if (!tdp_spte_is_present(fmt, first) ||
	    (pfn & (TDP_SPTES_PER_TABLE - 1)))
		return false;
	for (unsigned int i = 1; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t spte = load(&t[i]);

		if (!tdp_spte_is_present(fmt, spte) ||
		    (spte & keep) != (first & keep) ||
		    tdp_spte_pfn(fmt, spte) != pfn + i)
			return false;
	}
	return true;
}

static tdp_gfn_t region_gfn(struct sim *s, uint64_t region)
{
	return sim_layout_region_gfn(&s->layout, region);
}

/*
 * Choose where to park, inside tdp_walk_begin/end: half the time the
 * region the host deletes next, else a table a recovery collapses, else
 * any table of 4 KiB leaves.  False if the tries found none.
 */
static bool choose_park(struct sim *s, struct sim_walker *w, tdp_pfn_t root,
			int level, struct park *p)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	uint64_t next = __atomic_load_n(&w->next_slot_region, __ATOMIC_ACQUIRE);

	if (next && sim_rng_below(&w->rng, 2) &&
	    find_leaf_table(fmt, root, level, region_gfn(s, next - 1),
			    false, p))
		return true;
	for (int tries = 0; tries < 8; tries++) {
		uint64_t r = sim_rng_below(&w->rng, s->nr_regions);

		if (find_leaf_table(fmt, root, level, region_gfn(s, r), false,
				    p) &&
		    table_collapses(fmt, p->table))
			return true;
	}
	return find_leaf_table(fmt, root, level,
			       region_gfn(s, sim_rng_below(&w->rng,
							   s->nr_regions)),
			       false, p);
}

/*
 * The table @p was unlinked while the walker was inside: every entry must
 * read FROZEN once the operation that unlinked it is done (right after
 * the unlink, or after the flush that follows it for a table a range zap
 * unlinked whole), and stay so until the walker leaves.
 */
static void check_frozen(struct sim *s, const struct park *p,
			 tdp_spte_t parent)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	double start = sim_now();

	for (;;) {
		unsigned int bad = TDP_SPTES_PER_TABLE;
		tdp_spte_t spte = 0;

		for (unsigned int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
			spte = load(&p->table[i]);
			if (!tdp_spte_is_frozen(fmt, spte)) {
				bad = i;
				break;
			}
		}
		if (bad == TDP_SPTES_PER_TABLE) {
			sim_count(&s->stats, SIM_C_WALKER_FROZEN_CHECKS, 1);
			return;
		}
		if (sim_now() - start > SIM_WALKER_FREEZE_BOUND) {
			sim_violation(&s->report, SIM_V_NOT_FROZEN, 0,
				      p->gfn + bad, SIM_NO_VCPU,
				      "the %s table %#" PRIx64 " of %s "
				      "gfn %#" PRIx64 " was unlinked (parent "
				      "entry now %#" PRIx64 ") with a walker "
				      "inside, but entry %u still reads %#"
				      PRIx64 ", not FROZEN, %.1f s later",
				      p->mirror ? "mirror" : "direct",
				      p->table_pfn,
				      p->mirror ? "private" : "shared", p->gfn,
				      parent, bad, spte,
				      SIM_WALKER_FREEZE_BOUND);
			return;
		}
		usleep(100);
	}
}

/*
 * The mirror root (a reference, and its table's frame and level) when
 * this park goes to the region demoted for a promote, while there is
 * one.  NULL otherwise.
 */
static struct tdp_root *mirror_root_for_park(struct sim *s,
					     struct sim_walker *w,
					     uint64_t *region, tdp_pfn_t *pfn,
					     int *level)
{
	uint64_t next = __atomic_load_n(&w->promote_region, __ATOMIC_ACQUIRE);
	struct tdp_root *root;

	if (!next || tdp_root_get(s->mmu, TDP_ROOT_MIRROR, &root))
		return NULL;
	if (tdp_root_table_pfn(root, pfn, level)) {
		tdp_root_put(s->mmu, root);
		return NULL;
	}
	*region = next - 1;
	return root;
}

/*
 * The parent entry no longer links the table.  In the mirror tree a
 * FROZEN parent is an update in flight (a promote's backend call, which
 * stores the old entry back if the module refuses): not yet unlinked.
 */
static bool unlinked(const struct tdp_spte_format *fmt, const struct park *p,
		     tdp_spte_t parent)
{
	if (p->mirror && tdp_spte_is_frozen(fmt, parent))
		return false;
	return !links(fmt, parent, TDP_LEVEL_2M, p->table_pfn);
}

/* One park: walk in, wait for an unlink or the end of the park, leave. */
static void park_once(struct sim *s, struct sim_walker *w, tdp_pfn_t root,
		      int level)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	double until = sim_now() + SIM_WALKER_PARK_MAX *
					   (double)(1 + sim_rng_below(&w->rng, 4)) /
					   4;
	uint64_t region = 0;
	tdp_pfn_t mirror_pfn = 0;
	int mirror_level = 0;
	struct tdp_root *mirror = mirror_root_for_park(s, w, &region,
						       &mirror_pfn,
						       &mirror_level);
	struct park p;
	tdp_spte_t parent;
	bool found;

	tdp_walk_begin();
	found = mirror ? find_leaf_table(fmt, mirror_pfn, mirror_level,
					 region_gfn(s, region), true, &p)
		       : choose_park(s, w, root, level, &p);
	if (!found) {
		tdp_walk_end();
		tdp_root_put(s->mmu, mirror);
		sim_count(&s->stats, SIM_C_WALKER_MISSES, 1);
		usleep(500);
		return;
	}
	sim_count(&s->stats, mirror ? SIM_C_WALKER_MIRROR_PARKS
				    : SIM_C_WALKER_PARKS, 1);
	if (mirror)
		__atomic_store_n(&w->mirror_parked, region + 1,
				 __ATOMIC_RELEASE);
	for (;;) {
		parent = load(p.slot);
		if (unlinked(fmt, &p, parent))
			break;
		/*
		 * A pause (quiesce check), the end, or a table just demoted
		 * for a promote to wait in instead: leave the table.
		 */
		if (sim_now() >= until || sim_stop_requested(&s->run) ||
		    sim_pause_requested(&s->run) ||
		    (!mirror && __atomic_load_n(&w->promote_region,
						__ATOMIC_ACQUIRE))) {
			p.slot = NULL;
			break;
		}
		usleep(200);
	}
	if (p.slot) {
		sim_count(&s->stats, SIM_C_WALKER_UNLINKS, 1);
		check_frozen(s, &p, parent);
	}
	tdp_walk_end();
	__atomic_store_n(&w->mirror_parked, 0, __ATOMIC_RELEASE);
	tdp_root_put(s->mmu, mirror);
}

static void *walker_main(void *arg)
{
	struct sim *s = arg;
	struct sim_walker *w = &s->walker;

	tdp_thread_register();
	sim_rng_current = &w->rng;
	while (!sim_stop_requested(&s->run)) {
		tdp_pfn_t root;
		int level, ret;

		sim_pause_point(&s->run);
		/* The current direct root, as a vCPU loads it at entry. */
		ret = tdp_vcpu_load_root(w->ctx, TDP_ALIAS_SHARED, &root,
					 &level);
		if (ret) {
			if (!sim_stop_requested(&s->run))
				sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0,
					      SIM_NO_GFN, SIM_NO_VCPU,
					      "walker: tdp_vcpu_load_root "
					      "failed: %d", ret);
			break;
		}
		park_once(s, w, root, level);
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

bool sim_walker_start(struct sim *s)
{
	struct sim_walker *w = &s->walker;

	/* Only with host events (not for a replay): they unlink tables. */
	if (s->replay || s->cfg.event_rate <= 0)
		return false;
	sim_rng_seed(&w->rng, s->cfg.seed, 3);
	if (tdp_vcpu_create(s->mmu, &w->ctx))
		return false;
	if (pthread_create(&w->thread, NULL, walker_main, s)) {
		tdp_vcpu_destroy(w->ctx);
		w->ctx = NULL;
		return false;
	}
	/* The event thread, already running, reads it. */
	__atomic_store_n(&w->started, true, __ATOMIC_RELEASE);
	return true;
}

void sim_walker_join(struct sim *s)
{
	struct sim_walker *w = &s->walker;

	if (!w->started)
		return;
	pthread_join(w->thread, NULL);
	tdp_vcpu_destroy(w->ctx);
	w->ctx = NULL;
	w->started = false;
}

void sim_walker_promote_event(struct sim *s, struct sim_rng *rng)
{
	struct sim_walker *w = &s->walker;
	uint64_t r = sim_rng_below(rng, s->nr_regions);
	tdp_gfn_t base = sim_layout_region_gfn(&s->layout, r);
	double until;

	sim_count(&s->stats, SIM_C_EVENT_PROMOTE_PREP, 1);
	/*
	 * With the region offline, so that no guest ACCEPT or conversion
	 * mixes states in it: the slot deletion leaves it private,
	 * unbacked, with an empty mirror table (range zaps keep mirror
	 * tables), and pre-faulting every page (as large as the backing
	 * allows) fills that table with 512 PENDING leaves of one 2 MiB
	 * chunk.  A region that had no table gets a 2 MiB leaf instead,
	 * demoted in place by a 4 KiB pre-fault.
	 */
	sim_guest_offline(s, r, 1);
	sim_host_slot_delete(s, base, SIM_REGION_PAGES);
	sim_host_prefault(s, base, SIM_REGION_PAGES, 0);
	sim_host_demote_private(s, base + sim_rng_below(rng, SIM_REGION_PAGES));
	/*
	 * Point the walker at the table and give it a moment to walk in
	 * (it leaves its current park when the hint changes), then recover
	 * the region: the promote unlinks the table with the walker inside.
	 */
	__atomic_store_n(&w->promote_region, r + 1, __ATOMIC_RELEASE);
	until = sim_now() + SIM_WALKER_HANDOFF;
	while (__atomic_load_n(&w->started, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&w->mirror_parked, __ATOMIC_ACQUIRE) != r + 1 &&
	       sim_now() < until && !sim_stop_requested(&s->run))
		usleep(100);
	sim_host_recover(s, base, SIM_REGION_PAGES);
	__atomic_store_n(&w->promote_region, 0, __ATOMIC_RELEASE);
	sim_guest_online(s, r, 1);
}

uint64_t sim_walker_take_slot_region(struct sim *s, struct sim_rng *rng)
{
	struct sim_walker *w = &s->walker;
	uint64_t next = __atomic_load_n(&w->next_slot_region, __ATOMIC_RELAXED);
	uint64_t region = next ? next - 1 : sim_rng_below(rng, s->nr_regions);

	__atomic_store_n(&w->next_slot_region,
			 1 + sim_rng_below(rng, s->nr_regions),
			 __ATOMIC_RELEASE);
	return region;
}
