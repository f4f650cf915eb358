/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Simulated vCPUs (see vcpu.h). */
#include "vcpu.h"

#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

_Thread_local struct sim_vcpu *sim_vcpu_current;

int sim_vcpus_init(struct sim *s, unsigned int nr)
{
	struct sim_vcpus *vs = &s->vcpus;

	/* The ledger first: its lock exists whenever the array does. */
	vs->ledger = calloc((s->nr_gfns + 63) / 64, sizeof(*vs->ledger));
	if (!vs->ledger)
		return -ENOMEM;
	pthread_mutex_init(&vs->ledger_lock, NULL);
	vs->v = calloc(nr, sizeof(*vs->v));
	if (!vs->v)
		return -ENOMEM;
	vs->nr = nr;
	pthread_mutex_init(&vs->hold_lock, NULL);
	pthread_cond_init(&vs->hold_cond, NULL);
	for (unsigned int i = 0; i < nr; i++) {
		struct sim_vcpu *v = &vs->v[i];
		int ret;

		v->sim = s;
		v->id = i;
		sim_rng_seed(&v->rng, s->cfg.seed, 100 + i);
		v->home_region = sim_rng_below(&v->rng, s->nr_regions);
		pthread_mutex_init(&v->tlb_lock, NULL);
		pthread_mutex_init(&v->state_lock, NULL);
		pthread_cond_init(&v->state_cond, NULL);
		ret = tdp_vcpu_create(s->mmu, &v->tdp);
		if (ret)
			return ret;
	}
	return 0;
}

void sim_vcpus_destroy_contexts(struct sim *s)
{
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		tdp_vcpu_destroy(s->vcpus.v[i].tdp);
		s->vcpus.v[i].tdp = NULL;
	}
}

void sim_vcpus_fini(struct sim *s)
{
	struct sim_vcpus *vs = &s->vcpus;

	if (vs->ledger)
		pthread_mutex_destroy(&vs->ledger_lock);
	free(vs->ledger);
	vs->ledger = NULL;
	if (!vs->v)
		return;
	sim_vcpus_destroy_contexts(s);
	for (unsigned int i = 0; i < vs->nr; i++) {
		pthread_mutex_destroy(&vs->v[i].tlb_lock);
		pthread_mutex_destroy(&vs->v[i].state_lock);
		pthread_cond_destroy(&vs->v[i].state_cond);
	}
	pthread_mutex_destroy(&vs->hold_lock);
	pthread_cond_destroy(&vs->hold_cond);
	free(vs->v);
	vs->v = NULL;
}

void sim_vcpu_attach(struct sim_vcpu *v)
{
	sim_vcpu_current = v;
	sim_rng_current = &v->rng;
}

/* ---- TLB ----------------------------------------------------------------- */

static unsigned int tlb_index(tdp_gfn_t gfn)
{
	/* Mix in the shared bit so both aliases of a GFN can be cached. */
	return (unsigned int)((gfn ^ (gfn >> 35) * 17) % SIM_TLB_ENTRIES);
}

/* Buckets of the liveness filter: [0] private GFNs, [1] PFNs. */
static unsigned int live_bucket(uint64_t key)
{
	return (unsigned int)(key >> 9) & 63;
}

/* Count @e, valid, in (@delta 1) or out of (-1) the filter; tlb_lock. */
static void live_account(struct sim_vcpu *v, const struct sim_tlb_entry *e,
			 int delta)
{
	for (int k = 0; k < 2; k++) {
		unsigned int b;

		if (k == 0 && !e->private)
			continue;
		b = live_bucket(k == 0 ? e->gfn : e->pfn);
		v->live_count[k][b] = (uint16_t)(v->live_count[k][b] + delta);
		if (v->live_count[k][b] == (delta > 0 ? 1 : 0))
			__atomic_store_n(&v->live_mask[k],
					 v->live_mask[k] ^ (1ULL << b),
					 __ATOMIC_RELEASE);
	}
}

/* Invalidate the valid entry @e; tlb_lock held. */
static void tlb_invalidate_locked(struct sim_vcpu *v, struct sim_tlb_entry *e)
{
	live_account(v, e, -1);
	e->valid = false;
}

/* Replace entry @e with @new_entry (valid); tlb_lock held. */
static void tlb_fill_locked(struct sim_vcpu *v, struct sim_tlb_entry *e,
			    const struct sim_tlb_entry *new_entry)
{
	if (e->valid)
		live_account(v, e, -1);
	*e = *new_entry;
	live_account(v, e, 1);
}

/* Drop the entries of one alias; tlb_lock held.  Returns how many. */
static unsigned int tlb_drop_alias_locked(struct sim_vcpu *v, bool private)
{
	unsigned int n = 0;

	for (int i = 0; i < SIM_TLB_ENTRIES; i++) {
		struct sim_tlb_entry *e = &v->tlb[i];

		if (e->valid && e->private == private) {
			tlb_invalidate_locked(v, e);
			n++;
		}
	}
	return n;
}

/*
 * Drop the paging-structure cache entries of the 2 MiB regions that
 * [gpa_gfn, gpa_gfn + nr) touches, or all of them; tlb_lock held.  A
 * flush of any part of a region ends the walks through its cached table:
 * the engine may have unlinked it and frees it after the flush.
 */
static void psc_drop_locked(struct sim_vcpu *v, tdp_gfn_t gpa_gfn,
			    uint64_t nr, bool all)
{
	for (int i = 0; i < SIM_PSC_ENTRIES; i++) {
		struct sim_psc_entry *p = &v->psc[i];
		tdp_gfn_t lo = p->region * SIM_REGION_PAGES;

		if (p->valid && (all || (lo < gpa_gfn + nr &&
					 gpa_gfn < lo + SIM_REGION_PAGES)))
			p->valid = false;
	}
}

void sim_tlb_shoot_down(struct sim *s, tdp_gfn_t gpa_gfn, uint64_t nr_pages,
			bool all)
{
	uint64_t dropped = 0;

	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		for (int j = 0; j < SIM_TLB_ENTRIES; j++) {
			struct sim_tlb_entry *e = &v->tlb[j];

			if (!e->valid || e->private)
				continue;
			if (all || (e->gfn >= gpa_gfn &&
				    e->gfn - gpa_gfn < nr_pages)) {
				tlb_invalidate_locked(v, e);
				dropped++;
			}
		}
		psc_drop_locked(v, gpa_gfn, nr_pages, all);
		pthread_mutex_unlock(&v->tlb_lock);
	}
	sim_count(&s->stats, SIM_C_FLUSH_TLB_ENTRIES, dropped);
}

/* The filter buckets keys [start, start + nr) fall in. */
static uint64_t live_buckets(uint64_t start, uint64_t nr)
{
	uint64_t first = start >> 9, last = (start + nr - 1) >> 9, mask = 0;

	if (last - first >= 63)
		return ~0ULL;
	for (uint64_t g = first; g <= last; g++)
		mask |= 1ULL << (g & 63);
	return mask;
}

int sim_tlb_find_live(struct sim *s, uint64_t start, uint64_t nr,
		      bool by_gfn, tdp_gfn_t *gfn_out)
{
	uint64_t epoch = tdx_td_epoch(s->module);
	uint64_t buckets = live_buckets(start, nr);
	int found = -1;

	/* Orders the caller's change of the tables before the reads of
	 * tlb_busy (see tlb_access_lock()). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	for (unsigned int i = 0; i < s->vcpus.nr && found < 0; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];
		bool private_live;

		/* Busy first, then the mask: see struct sim_vcpu. */
		if (!__atomic_load_n(&v->tlb_busy, __ATOMIC_ACQUIRE) &&
		    !(__atomic_load_n(&v->live_mask[by_gfn ? 0 : 1],
				      __ATOMIC_ACQUIRE) &
		      buckets)) {
			sim_count(&s->stats, SIM_C_CHECK_LIVE_FILTERED, 1);
			continue;
		}

		pthread_mutex_lock(&v->state_lock);
		pthread_mutex_lock(&v->tlb_lock);
		private_live = v->in_guest ||
			       tdx_vp_entered_epoch(s->module, i) == epoch;
		for (int j = 0; j < SIM_TLB_ENTRIES; j++) {
			const struct sim_tlb_entry *e = &v->tlb[j];
			uint64_t key = by_gfn ? e->gfn : e->pfn;

			if (!e->valid || (by_gfn && !e->private))
				continue;
			if (key < start || key - start >= nr)
				continue;
			if (e->private && !private_live)
				continue;
			found = (int)i;
			*gfn_out = e->gfn;
			break;
		}
		pthread_mutex_unlock(&v->tlb_lock);
		pthread_mutex_unlock(&v->state_lock);
	}
	return found;
}

int sim_tlb_find_by_root(struct sim *s, tdp_pfn_t root_pfn,
			 tdp_gfn_t *gfn_out)
{
	int found = -1;

	for (unsigned int i = 0; i < s->vcpus.nr && found < 0; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		for (int j = 0; j < SIM_TLB_ENTRIES; j++) {
			const struct sim_tlb_entry *e = &v->tlb[j];

			if (e->valid && !e->private && e->root_pfn == root_pfn) {
				found = (int)i;
				*gfn_out = e->gfn;
				break;
			}
		}
		pthread_mutex_unlock(&v->tlb_lock);
	}
	return found;
}

/* ---- guest mode ---------------------------------------------------------- */

static void wait_while_held_out(struct sim_vcpus *vs)
{
	pthread_mutex_lock(&vs->hold_lock);
	while (__atomic_load_n(&vs->hold_out, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&vs->hold_cond, &vs->hold_lock);
	pthread_mutex_unlock(&vs->hold_lock);
}

/* The EPT pointer of the shared alias for this entry. */
static bool load_shared_root(struct sim_vcpu *v)
{
	struct sim *s = v->sim;
	tdp_pfn_t root;
	int level, ret;

	/*
	 * The engine may drop the old root (and free it) inside
	 * tdp_vcpu_load_root(): other threads walk from tlb_root
	 * (sim_vcpus_check_backed(), the zap's dirty-report check), so it
	 * names no root until the new one is known.
	 */
	pthread_mutex_lock(&v->tlb_lock);
	v->tlb_root = 0;
	pthread_mutex_unlock(&v->tlb_lock);
	ret = tdp_vcpu_load_root(v->tdp, TDP_ALIAS_SHARED, &root, &level);
	if (ret) {
		if (!sim_stop_requested(&s->run))
			sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0,
				      SIM_NO_GFN, (int)v->id,
				      "tdp_vcpu_load_root failed: %d", ret);
		sim_stop_request(&s->run);
		return false;
	}
	if (root != v->root_pfn) {
		bool had = v->root_pfn != 0;

		/* A new EPTP: translations and cached tables tagged with
		 * the old one are never used again. */
		pthread_mutex_lock(&v->tlb_lock);
		if (had)
			tlb_drop_alias_locked(v, false);
		psc_drop_locked(v, 0, 0, true);
		pthread_mutex_unlock(&v->tlb_lock);
		if (had)
			sim_count(&s->stats, SIM_C_FLUSH_ROOT_SWITCH, 1);
		v->root_pfn = root;
		v->root_level = level;
	}
	pthread_mutex_lock(&v->tlb_lock);
	v->tlb_root = root;
	v->tlb_root_level = level;
	pthread_mutex_unlock(&v->tlb_lock);
	return true;
}

bool sim_vcpu_enter(struct sim_vcpu *v)
{
	struct sim *s = v->sim;
	struct sim_vcpus *vs = &s->vcpus;

	if (v->in_guest)
		return true;
	if (!load_shared_root(v))
		return false;
	for (;;) {
		bool flush;
		tdx_status_t st;

		wait_while_held_out(vs);
		pthread_mutex_lock(&v->state_lock);
		/* Checked under state_lock: a hold-out that started after
		 * this check finds the vCPU in guest mode and kicks it. */
		if (__atomic_load_n(&vs->hold_out, __ATOMIC_ACQUIRE)) {
			pthread_mutex_unlock(&v->state_lock);
			continue;
		}
		st = tdx_vp_enter(s->module, v->id, &flush);
		if (st != TDX_SUCCESS && !tdx_status_is_busy(st)) {
			pthread_mutex_unlock(&v->state_lock);
			sim_violation(&s->report, SIM_V_TDX_ERROR, st,
				      SIM_NO_GFN, (int)v->id,
				      "VP.ENTER failed: %s",
				      tdx_status_name(st));
			sim_stop_request(&s->run);
			return false;
		}
		if (st != TDX_SUCCESS) {
			pthread_mutex_unlock(&v->state_lock);
			sim_count(&s->stats, SIM_C_RETRY_VP_ENTER_BUSY, 1);
			sched_yield();
			continue;
		}
		if (flush) {
			pthread_mutex_lock(&v->tlb_lock);
			tlb_drop_alias_locked(v, true);
			pthread_mutex_unlock(&v->tlb_lock);
			sim_count(&s->stats, SIM_C_FLUSH_EPOCH, 1);
		}
		__atomic_store_n(&v->kick, false, __ATOMIC_RELAXED);
		v->in_guest = true;
		pthread_mutex_unlock(&v->state_lock);
		break;
	}
	v->slice = 1 + (unsigned int)sim_rng_below(&v->rng, 32);
	return true;
}

void sim_vcpu_exit(struct sim_vcpu *v)
{
	if (!v->in_guest)
		return;
	pthread_mutex_lock(&v->state_lock);
	tdx_vp_exit(v->sim->module, v->id);
	v->in_guest = false;
	v->exits++;
	__atomic_store_n(&v->kick, false, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&v->state_cond);
	pthread_mutex_unlock(&v->state_lock);
}

bool sim_vcpu_should_exit(struct sim_vcpu *v)
{
	return v->in_guest &&
	       (__atomic_load_n(&v->kick, __ATOMIC_RELAXED) || v->slice == 0);
}

void sim_vcpus_guest_tlb_barrier(struct sim *s)
{
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		pthread_mutex_lock(&s->vcpus.v[i].tlb_lock);
		pthread_mutex_unlock(&s->vcpus.v[i].tlb_lock);
	}
}

void sim_vcpus_kick_all(struct sim *s)
{
	struct sim_vcpu *self = sim_vcpu_current;

	sim_count(&s->stats, SIM_C_KICK_ALL, 1);
	if (self && self->in_guest) {
		/* Host work runs outside guest mode; waiting for our own
		 * exit would never end. */
		sim_violation(&s->report, SIM_V_LIVELOCK, 0, SIM_NO_GFN,
			      (int)self->id,
			      "host work ran while the vCPU was in guest mode");
		sim_vcpu_exit(self);
	}
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->state_lock);
		if (v->in_guest) {
			uint64_t exits = v->exits;

			sim_count(&s->stats, SIM_C_KICK_WAITS, 1);
			__atomic_store_n(&v->kick, true, __ATOMIC_RELAXED);
			while (v->in_guest && v->exits == exits)
				pthread_cond_wait(&v->state_cond,
						  &v->state_lock);
		}
		pthread_mutex_unlock(&v->state_lock);
	}
}

void sim_vcpus_hold_out_begin(struct sim *s)
{
	struct sim_vcpus *vs = &s->vcpus;

	pthread_mutex_lock(&vs->hold_lock);
	__atomic_store_n(&vs->hold_out, vs->hold_out + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vs->hold_lock);
	sim_count(&s->stats, SIM_C_HOLD_OUTS, 1);
	sim_vcpus_kick_all(s);
}

void sim_vcpus_hold_out_end(struct sim *s)
{
	struct sim_vcpus *vs = &s->vcpus;

	pthread_mutex_lock(&vs->hold_lock);
	__atomic_store_n(&vs->hold_out, vs->hold_out - 1, __ATOMIC_RELEASE);
	if (!vs->hold_out)
		pthread_cond_broadcast(&vs->hold_cond);
	pthread_mutex_unlock(&vs->hold_lock);
}

/* ---- the dirty-bit ledger ------------------------------------------------ */

/* The dense page of @gfn (shared bit allowed), or false outside memory. */
static bool ledger_page(struct sim *s, tdp_gfn_t gfn, uint64_t *page)
{
	gfn &= ~SIM_SHARED_BIT;
	if (!s->vcpus.ledger || !sim_layout_contains(&s->layout, gfn))
		return false;
	*page = sim_layout_page(&s->layout, gfn);
	return true;
}

static void ledger_clear_page(struct sim *s, uint64_t page)
{
	__atomic_fetch_and(&s->vcpus.ledger[page / 64], ~(1ULL << (page % 64)),
			   __ATOMIC_ACQ_REL);
}

void sim_ledger_cpu_dirtied(struct sim *s, tdp_gfn_t gfn)
{
	uint64_t page;

	if (ledger_page(s, gfn, &page))
		__atomic_fetch_or(&s->vcpus.ledger[page / 64],
				  1ULL << (page % 64), __ATOMIC_ACQ_REL);
}

void sim_ledger_drop(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	for (tdp_gfn_t g = gfn; g < gfn + n; g++) {
		uint64_t page;

		if (ledger_page(s, g, &page))
			ledger_clear_page(s, page);
	}
}

/* Set while this thread runs an engine call whose reports must not
 * clear the ledger (sim_ledger_hold_reports()). */
static __thread bool ledger_reports_held;

void sim_ledger_hold_reports(bool on)
{
	ledger_reports_held = on;
}

void sim_ledger_reported(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	if (ledger_reports_held)
		return;
	/*
	 * A vCPU records its dirty bit after the compare-exchange, with its
	 * TLB lock held: taking every TLB lock once first makes sure a bit
	 * the engine read is recorded before it is forgotten here.
	 */
	sim_vcpus_guest_tlb_barrier(s);
	sim_ledger_drop(s, gfn, n);
}

void sim_ledger_lock(struct sim *s)
{
	pthread_mutex_lock(&s->vcpus.ledger_lock);
}

void sim_ledger_unlock(struct sim *s)
{
	pthread_mutex_unlock(&s->vcpus.ledger_lock);
}

bool sim_ledger_test(struct sim *s, tdp_gfn_t gfn)
{
	uint64_t page;

	if (!ledger_page(s, gfn, &page))
		return false;
	return __atomic_load_n(&s->vcpus.ledger[page / 64], __ATOMIC_ACQUIRE) &
	       (1ULL << (page % 64));
}

void sim_ledger_check_freed(struct sim *s, tdp_gfn_t gfn)
{
	uint64_t page;
	bool set;

	if (!ledger_page(s, gfn, &page))
		return;
	sim_count(&s->stats, SIM_C_CHECK_LEDGER, 1);
	/* A clear-dirty or harvest in flight finishes its update first. */
	sim_ledger_lock(s);
	set = sim_ledger_test(s, gfn);
	ledger_clear_page(s, page);
	sim_ledger_unlock(s);
	if (set)
		sim_violation(&s->report, SIM_V_DIRTY_LOG, 0, gfn, SIM_NO_VCPU,
			      "the host frees the shared page of gfn %#" PRIx64
			      " after the zap returned, but the dirty bit a "
			      "vCPU set in its leaf was never reported "
			      "(mark_dirty) nor harvested", gfn);
}

/* ---- hardware walks ------------------------------------------------------ */

/*
 * The CPU's update of the leaf @slot it read as @spte at @level: the
 * accessed bit, and for a write through a writable leaf the dirty bit,
 * set with a compare-exchange as long as the entry is still a present
 * leaf of the same frame (the table is the engine's: tdp_pfn_to_table()
 * gives a read-only view of the memory hardware also writes).  Returns
 * false when the entry changed under the walk: the access then takes an
 * EPT violation, as it would on hardware after the engine's flush.
 */
static bool set_accessed_dirty(struct sim_vcpu *v, tdp_spte_t *slot,
			       tdp_spte_t spte, int level, bool write,
			       tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(v->sim->mmu);
	const uint64_t rwx = fmt->readable | fmt->writable | fmt->executable;
	tdp_spte_t seen = spte;
	tdp_spte_t bits = fmt->accessed;

	if (write && (spte & fmt->writable) && !v->sim->cfg.break_no_dirty_bit)
		bits |= fmt->dirty;
	while ((seen & bits) != bits) {
		if (__atomic_compare_exchange_n(slot, &seen, seen | bits, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			/* The ledger learns of every dirty bit this
			 * CPU set, still under the TLB lock (see
			 * sim_ledger_reported()). */
			if ((bits & fmt->dirty) && !(seen & fmt->dirty)) {
				sim_count(&v->sim->stats, SIM_C_DIRTY_BITS_SET,
					  1);
				sim_ledger_cpu_dirtied(v->sim, gfn);
			}
			return true;
		}
		if (!(seen & rwx) || tdp_spte_pfn(fmt, seen) !=
					     tdp_spte_pfn(fmt, spte) ||
		    (level > TDP_LEVEL_4K && !(seen & fmt->leaf_size)) ||
		    ((bits & fmt->dirty) && !(seen & fmt->writable)))
			return false;
	}
	return true;
}

/*
 * The leaf @spte at @level, read from @table[@idx] for @gfn: set its
 * A/D bits and translate.  False if it does not translate (not present,
 * or changed under the compare-exchange).
 */
static bool translate_leaf(struct sim_vcpu *v, const tdp_spte_t *table,
			   unsigned int idx, tdp_spte_t spte, int level,
			   tdp_gfn_t gfn, struct sim_access *acc,
			   bool *writable)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(v->sim->mmu);

	if (!set_accessed_dirty(v, (tdp_spte_t *)&table[idx], spte, level,
				acc->write, gfn))
		return false;
	acc->pfn = tdp_spte_pfn(fmt, spte) + (gfn & (tdp_level_pages(level) - 1));
	acc->level = level;
	*writable = (spte & fmt->writable) != 0;
	return true;
}

/* The cached leaf table of @gfn's region, walked from the loaded root. */
static struct sim_psc_entry *psc_lookup(struct sim_vcpu *v, tdp_gfn_t gfn)
{
	for (int i = 0; i < SIM_PSC_ENTRIES; i++) {
		struct sim_psc_entry *p = &v->psc[i];

		if (p->valid && p->region == gfn / SIM_REGION_PAGES &&
		    p->root_pfn == v->root_pfn)
			return p;
	}
	return NULL;
}

static void psc_fill(struct sim_vcpu *v, tdp_gfn_t gfn, tdp_pfn_t table_pfn)
{
	struct sim_psc_entry *p = psc_lookup(v, gfn);

	if (!p) {
		p = &v->psc[v->psc_next];
		v->psc_next = (v->psc_next + 1) % SIM_PSC_ENTRIES;
	}
	*p = (struct sim_psc_entry){
		.region = gfn / SIM_REGION_PAGES,
		.root_pfn = v->root_pfn,
		.table_pfn = table_pfn,
		.fill_seq = __atomic_fetch_add(&v->sim->vcpus.psc_seq, 1,
					       __ATOMIC_ACQ_REL),
		.valid = true,
	};
}

/*
 * Walk libtdp's direct tree from the loaded root as the CPU walks EPT,
 * starting from the paging-structure cache when it holds the region's
 * leaf table (hardware skips the upper levels then, and keeps setting
 * A/D bits in that table until a flush drops the entry, even if the
 * engine unlinked it meanwhile).  A cached table whose entry does not
 * translate is dropped and the walk starts again from the root.
 * Returns SIM_ACCESS_OK with the frame and writability of the leaf.
 */
static enum sim_access_result walk_shared(struct sim_vcpu *v, tdp_gfn_t gfn,
					  struct sim_access *acc,
					  bool *writable)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(v->sim->mmu);
	const uint64_t rwx = fmt->readable | fmt->writable | fmt->executable;
	enum sim_access_result res = SIM_ACCESS_EPT_VIOLATION;
	unsigned int idx4k = (unsigned int)gfn & (TDP_SPTES_PER_TABLE - 1);
	struct sim_psc_entry *cached;
	const tdp_spte_t *table;

	tdp_walk_begin();
	cached = psc_lookup(v, gfn);
	if (cached) {
		tdp_spte_t spte;

		table = tdp_pfn_to_table(cached->table_pfn);
		spte = __atomic_load_n(&table[idx4k], __ATOMIC_ACQUIRE);
		if ((spte & rwx) && !tdp_spte_is_mmio(fmt, spte) &&
		    translate_leaf(v, table, idx4k, spte, TDP_LEVEL_4K, gfn,
				   acc, writable)) {
			acc->stop_entry = spte;
			sim_count(&v->sim->stats, SIM_C_PSC_HIT, 1);
			tdp_walk_end();
			return SIM_ACCESS_OK;
		}
		cached->valid = false;
		sim_count(&v->sim->stats, SIM_C_PSC_STALE, 1);
	}
	table = tdp_pfn_to_table(v->root_pfn);
	for (int level = v->root_level; level >= TDP_LEVEL_4K; level--) {
		unsigned int idx = (unsigned int)(gfn >> ((level - 1) *
							 TDP_LEVEL_BITS)) &
				   (TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t spte =
			__atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);

		acc->level = level;
		acc->stop_entry = spte;
		/* The misconfiguration pattern: the CPU exits, it does not
		 * translate (and caches nothing). */
		if (tdp_spte_is_mmio(fmt, spte)) {
			res = SIM_ACCESS_MMIO;
			break;
		}
		if (!(spte & rwx))
			break;
		if (level == TDP_LEVEL_4K || (spte & fmt->leaf_size)) {
			if (translate_leaf(v, table, idx, spte, level, gfn, acc,
					   writable))
				res = SIM_ACCESS_OK;
			break;
		}
		if (level == TDP_LEVEL_2M)
			psc_fill(v, gfn, tdp_spte_pfn(fmt, spte));
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	tdp_walk_end();
	return res;
}

/* Walk the module's Secure EPT as the CPU does for a private GPA. */
static enum sim_access_result walk_private(struct sim_vcpu *v, tdp_gfn_t gfn,
					   struct sim_access *acc,
					   bool *writable)
{
	struct tdx_module *mod = v->sim->module;
	const uint64_t *table = tdx_sept_root_table(mod);

	for (int level = tdx_root_level(mod); level >= TDP_LEVEL_4K; level--) {
		unsigned int idx = (unsigned int)(gfn >> ((level - 1) *
							 TDP_LEVEL_BITS)) &
				   (TDP_SPTES_PER_TABLE - 1);
		uint64_t e = __atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);

		acc->level = level;
		acc->stop_entry = e;
		if (!(e & SEPT_RWX))
			return SIM_ACCESS_EPT_VIOLATION;
		if (level == TDP_LEVEL_4K || (e & SEPT_PS)) {
			acc->pfn = sept_entry_pfn(e) +
				   (gfn & (tdp_level_pages(level) - 1));
			*writable = (e & SEPT_W) != 0;
			return SIM_ACCESS_OK;
		}
		table = tdx_sept_table(mod, sept_entry_pfn(e));
		if (!table)
			return SIM_ACCESS_BAD_FRAME;
	}
	return SIM_ACCESS_EPT_VIOLATION;
}

/*
 * An access takes tlb_lock and marks the TLB busy for the liveness
 * filter.  The busy store is sequentially consistent, so a checker that
 * changed the tables and then finds the TLB not busy (after a full
 * fence, sim_tlb_find_live()) knows this access will walk the changed
 * tables, as with the lock.
 */
static void tlb_access_lock(struct sim_vcpu *v)
{
	pthread_mutex_lock(&v->tlb_lock);
	__atomic_store_n(&v->tlb_busy, true, __ATOMIC_SEQ_CST);
}

static void tlb_access_unlock(struct sim_vcpu *v)
{
	__atomic_store_n(&v->tlb_busy, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->tlb_lock);
}

enum sim_access_result sim_vcpu_access(struct sim_vcpu *v, tdp_gfn_t gpa_gfn,
				       struct sim_access *acc)
{
	struct sim *s = v->sim;
	bool private;
	struct sim_tlb_entry *e;
	enum sim_access_result res;
	struct host_page *page;
	bool writable = false;

	if (v->slice)
		v->slice--;
	tlb_access_lock(v);
	if (acc->guest_pte) {
		/* The guest's page table first (the walk of its own
		 * mapping): not present is a #PF in the guest. */
		acc->pte_seen = __atomic_load_n(acc->guest_pte,
						__ATOMIC_ACQUIRE);
		if (acc->pte_seen == GUEST_PTE_NOT_PRESENT) {
			tlb_access_unlock(v);
			return SIM_ACCESS_GUEST_PF;
		}
		gpa_gfn = acc->pte_seen == GUEST_PTE_SHARED
				  ? gpa_gfn | SIM_SHARED_BIT
				  : gpa_gfn & ~SIM_SHARED_BIT;
	}
	private = !(gpa_gfn & SIM_SHARED_BIT);
	e = &v->tlb[tlb_index(gpa_gfn)];
	acc->tlb_hit = e->valid && e->gfn == gpa_gfn &&
		       (!acc->write ||
			(e->writable && (e->private || e->dirty)));
	if (acc->tlb_hit) {
		acc->pfn = e->pfn;
		acc->level = e->level;
		sim_count(&s->stats, SIM_C_TLB_HIT, 1);
	} else {
		res = private ? walk_private(v, gpa_gfn, acc, &writable)
			      : walk_shared(v, gpa_gfn, acc, &writable);
		sim_count(&s->stats, private ? SIM_C_WALK_PRIVATE
					     : SIM_C_WALK_SHARED, 1);
		if (res == SIM_ACCESS_OK && acc->write && !writable)
			res = SIM_ACCESS_EPT_VIOLATION;
		if (res != SIM_ACCESS_OK) {
			tlb_access_unlock(v);
			if (res == SIM_ACCESS_EPT_VIOLATION)
				sim_count(&s->stats, SIM_C_EPT_VIOLATION, 1);
			else if (res == SIM_ACCESS_MMIO)
				sim_count(&s->stats, SIM_C_MMIO_MISCONFIG, 1);
			return res;
		}
		tlb_fill_locked(v, e,
				&(struct sim_tlb_entry){
					.gfn = gpa_gfn,
					.pfn = acc->pfn,
					.root_pfn = private ? 0 : v->root_pfn,
					.level = (uint8_t)acc->level,
					.valid = true,
					.writable = writable,
					.dirty = !private && acc->write &&
						 writable,
					.private = private,
				});
	}
	page = host_mem_page(s->mem, acc->pfn);
	if (!page) {
		tlb_access_unlock(v);
		return SIM_ACCESS_BAD_FRAME;
	}
	acc->page_use = host_page_use(page);
	acc->page_gfn = host_page_gfn(page);
	acc->page_owner = host_page_owner(page);
	acc->old_tag = host_page_tag(page);
	if (private)
		acc->pamt = tdx_pamt_get(s->module, acc->pfn);
	/* The CPU stores whatever the translation says, right or wrong. */
	if (acc->write)
		host_page_set_tag(page, acc->new_tag);
	if (acc->write && !private)
		__atomic_store_n(&v->last_shared_write, gpa_gfn,
				 __ATOMIC_RELAXED);
	tlb_access_unlock(v);
	sim_count(&s->stats, acc->write ? SIM_C_ACCESS_WRITE
					: SIM_C_ACCESS_READ, 1);
	return SIM_ACCESS_OK;
}

/* ---- checks of the cached translations ----------------------------------- */

/*
 * Walk the direct tree from @root for @gfn (as issued) like the CPU,
 * without touching A/D bits: the leaf (or where the walk stopped) and
 * its level, and the leaf table the walk went through (0 if none).
 * Inside tdp_walk_begin/end.
 */
static tdp_spte_t tree_walk(struct sim *s, tdp_pfn_t root, int root_level,
			    tdp_gfn_t gfn, int *level_out,
			    tdp_pfn_t *leaf_table)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	const uint64_t rwx = fmt->readable | fmt->writable | fmt->executable;
	const tdp_spte_t *table = tdp_pfn_to_table(root);
	tdp_spte_t spte = 0;

	*leaf_table = 0;
	for (int level = root_level; level >= TDP_LEVEL_4K; level--) {
		unsigned int idx = (unsigned int)(gfn >> ((level - 1) *
							 TDP_LEVEL_BITS)) &
				   (TDP_SPTES_PER_TABLE - 1);

		spte = __atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);
		*level_out = level;
		if (!(spte & rwx) || tdp_spte_is_mmio(fmt, spte) ||
		    level == TDP_LEVEL_4K || (spte & fmt->leaf_size))
			break;
		if (level == TDP_LEVEL_2M)
			*leaf_table = tdp_spte_pfn(fmt, spte);
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	return spte;
}

#define BV(s, v, gfn, ...)                                                     \
	sim_violation(&(s)->report, SIM_V_STALE_TRANSLATION, 0,                \
		      (gfn) & ~SIM_SHARED_BIT, (int)(v)->id, __VA_ARGS__)

/* One TLB entry of @v (valid, shared); tlb_lock held, walk begun. */
static void check_tlb_entry_backed(struct sim *s, struct sim_vcpu *v,
				   const struct sim_tlb_entry *e)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	const uint64_t rwx = fmt->readable | fmt->writable | fmt->executable;
	tdp_pfn_t leaf_table;
	tdp_spte_t spte;
	int level;

	if (e->root_pfn != v->tlb_root) {
		BV(s, v, e->gfn, "the TLB translates shared gfn %#" PRIx64
		   " through root %#" PRIx64 ", not the loaded root %#" PRIx64,
		   e->gfn & ~SIM_SHARED_BIT, e->root_pfn, v->tlb_root);
		return;
	}
	spte = tree_walk(s, v->tlb_root, v->tlb_root_level, e->gfn, &level,
			 &leaf_table);
	if (!(spte & rwx) || tdp_spte_is_mmio(fmt, spte) ||
	    tdp_spte_pfn(fmt, spte) + (e->gfn & (tdp_level_pages(level) - 1)) !=
		    e->pfn) {
		BV(s, v, e->gfn, "the TLB translates shared gfn %#" PRIx64
		   " to pfn %#" PRIx64 " but the tree's level-%d entry is %#"
		   PRIx64 ": a change that was never flushed",
		   e->gfn & ~SIM_SHARED_BIT, e->pfn, level, spte);
		return;
	}
	if ((e->writable && !(spte & fmt->writable)) ||
	    (e->dirty && !(spte & fmt->dirty)))
		BV(s, v, e->gfn, "the TLB holds a %s translation of shared "
		   "gfn %#" PRIx64 " but its level-%d leaf %#" PRIx64 " is %s",
		   e->dirty ? "dirty writable" : "writable",
		   e->gfn & ~SIM_SHARED_BIT, level, spte,
		   !(spte & fmt->writable) ? "write-protected" : "clean");
}

/* One paging-structure cache entry of @v; tlb_lock held, walk begun. */
static void check_psc_entry_backed(struct sim *s, struct sim_vcpu *v,
				   const struct sim_psc_entry *p)
{
	tdp_gfn_t gfn = p->region * SIM_REGION_PAGES;
	tdp_pfn_t leaf_table;
	int level;

	if (p->root_pfn != v->tlb_root) {
		BV(s, v, gfn, "the paging-structure cache holds shared gfn %#"
		   PRIx64 " of root %#" PRIx64 ", not the loaded root %#"
		   PRIx64, gfn & ~SIM_SHARED_BIT, p->root_pfn, v->tlb_root);
		return;
	}
	tree_walk(s, v->tlb_root, v->tlb_root_level, gfn, &level, &leaf_table);
	if (leaf_table != p->table_pfn)
		BV(s, v, gfn, "the paging-structure cache walks shared gfn %#"
		   PRIx64 " through leaf table %#" PRIx64 " but the tree "
		   "links %#" PRIx64 " there: the table was unlinked and "
		   "never flushed", gfn & ~SIM_SHARED_BIT, p->table_pfn,
		   leaf_table);
}

void sim_vcpus_check_backed(struct sim *s)
{
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		/* Loading a root: its old entries are about to go. */
		if (!v->tlb_root) {
			pthread_mutex_unlock(&v->tlb_lock);
			continue;
		}
		tdp_walk_begin();
		for (int j = 0; j < SIM_TLB_ENTRIES; j++) {
			const struct sim_tlb_entry *e = &v->tlb[j];

			if (!e->valid || e->private)
				continue;
			sim_count(&s->stats, SIM_C_CHECK_BACKED, 1);
			check_tlb_entry_backed(s, v, e);
		}
		for (int j = 0; j < SIM_PSC_ENTRIES; j++) {
			if (!v->psc[j].valid)
				continue;
			sim_count(&s->stats, SIM_C_CHECK_BACKED, 1);
			check_psc_entry_backed(s, v, &v->psc[j]);
		}
		tdp_walk_end();
		pthread_mutex_unlock(&v->tlb_lock);
	}
}

bool sim_vcpus_pick_shared_gfn(struct sim *s, struct sim_rng *rng,
			       tdp_gfn_t *gfn)
{
	struct sim_vcpu *v;
	unsigned int start;
	tdp_gfn_t g;
	bool found = false;

	if (!s->vcpus.nr)
		return false;
	v = &s->vcpus.v[sim_rng_below(rng, s->vcpus.nr)];
	/* Where it wrote last, most of the time: its hot pages. */
	if (sim_rng_below(rng, 4)) {
		g = __atomic_load_n(&v->last_shared_write, __ATOMIC_RELAXED) &
		    ~SIM_SHARED_BIT;
		if (g && sim_layout_contains(&s->layout, g)) {
			*gfn = g;
			return true;
		}
	}
	start = (unsigned int)sim_rng_below(rng, SIM_TLB_ENTRIES);
	pthread_mutex_lock(&v->tlb_lock);
	/* An entry a write made dirty first: those pages are written. */
	for (int pass = 0; pass < 2 && !found; pass++)
		for (unsigned int j = 0; j < SIM_TLB_ENTRIES && !found; j++) {
			const struct sim_tlb_entry *e =
				&v->tlb[(start + j) % SIM_TLB_ENTRIES];

			g = e->gfn & ~SIM_SHARED_BIT;
			/* MMIO pages are not guest memory. */
			if (e->valid && !e->private && (pass || e->dirty) &&
			    sim_layout_contains(&s->layout, g)) {
				*gfn = g;
				found = true;
			}
		}
	pthread_mutex_unlock(&v->tlb_lock);
	return found;
}

uint64_t sim_vcpus_psc_seq(struct sim *s)
{
	return __atomic_load_n(&s->vcpus.psc_seq, __ATOMIC_ACQUIRE);
}

int sim_vcpus_find_cached_table(struct sim *s, tdp_pfn_t table_pfn,
				uint64_t before, tdp_gfn_t *gfn_out)
{
	int found = -1;

	for (unsigned int i = 0; i < s->vcpus.nr && found < 0; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		for (int j = 0; j < SIM_PSC_ENTRIES; j++) {
			const struct sim_psc_entry *p = &v->psc[j];

			if (p->valid && p->table_pfn == table_pfn &&
			    p->fill_seq < before) {
				found = (int)i;
				*gfn_out = (p->region * SIM_REGION_PAGES) &
					   ~SIM_SHARED_BIT;
				break;
			}
		}
		pthread_mutex_unlock(&v->tlb_lock);
	}
	return found;
}

tdp_pfn_t sim_tree_leaf_table(struct sim *s, tdp_pfn_t root, int root_level,
			      tdp_gfn_t gfn)
{
	tdp_pfn_t leaf_table;
	int level;

	tdp_walk_begin();
	tree_walk(s, root, root_level, gfn, &level, &leaf_table);
	tdp_walk_end();
	return leaf_table;
}

unsigned int sim_vcpus_cached_regions(struct sim *s, tdp_gfn_t *out,
				      unsigned int max)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->vcpus.nr && n < max; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		for (int j = 0; j < SIM_PSC_ENTRIES && n < max; j++)
			if (v->psc[j].valid)
				out[n++] = (v->psc[j].region *
					    SIM_REGION_PAGES) &
					   ~SIM_SHARED_BIT;
		pthread_mutex_unlock(&v->tlb_lock);
	}
	return n;
}

int sim_vcpus_find_unlinked_cached(struct sim *s, tdp_gfn_t gpa_gfn,
				   tdp_pfn_t *table_out)
{
	int found = -1;

	for (unsigned int i = 0; i < s->vcpus.nr && found < 0; i++) {
		struct sim_vcpu *v = &s->vcpus.v[i];

		pthread_mutex_lock(&v->tlb_lock);
		tdp_walk_begin();
		for (int j = 0; j < SIM_PSC_ENTRIES; j++) {
			const struct sim_psc_entry *p = &v->psc[j];
			tdp_pfn_t linked;
			int level;

			if (!p->valid || p->region != gpa_gfn / SIM_REGION_PAGES ||
			    !v->tlb_root || p->root_pfn != v->tlb_root)
				continue;
			tree_walk(s, v->tlb_root, v->tlb_root_level, gpa_gfn,
				  &level, &linked);
			if (linked != p->table_pfn) {
				found = (int)i;
				*table_out = p->table_pfn;
				break;
			}
		}
		tdp_walk_end();
		pthread_mutex_unlock(&v->tlb_lock);
	}
	return found;
}
