/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live migration of shared memory (see migrate.h). */
#include "migrate.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

int sim_migrate_init(struct sim *s)
{
	struct sim_migration *m = &s->migration;

	m->enabled = s->cfg.migrate;
	if (!m->enabled)
		return 0;
	s->host.pages_changed = sim_migrate_mark;
	m->nr_words = (s->nr_gfns + 63) / 64;
	m->marked = calloc(m->nr_words, sizeof(*m->marked));
	m->harvest = calloc(m->nr_words, sizeof(*m->harvest));
	m->dest = calloc(s->nr_gfns, sizeof(*m->dest));
	m->copied_in = calloc(s->nr_gfns, sizeof(*m->copied_in));
	if (!m->marked || !m->harvest || !m->dest || !m->copied_in)
		return -ENOMEM;
	return 0;
}

void sim_migrate_fini(struct sim *s)
{
	struct sim_migration *m = &s->migration;

	free(m->marked);
	free(m->harvest);
	free(m->dest);
	free(m->copied_in);
	memset(m, 0, sizeof(*m));
}

void sim_migrate_mark(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	struct sim_migration *m = &s->migration;

	if (!m->enabled)
		return;
	for (tdp_gfn_t g = gfn; g < gfn + n && g < s->nr_gfns; g++)
		__atomic_fetch_or(&m->marked[g / 64], 1ULL << (g % 64),
				  __ATOMIC_RELEASE);
}

/* Copy page @gfn if it is shared; returns true if it was. */
static bool copy_page(struct sim *s, tdp_gfn_t gfn, unsigned int round)
{
	struct sim_migration *m = &s->migration;
	uint64_t tag;

	if (!sim_host_read_shared(s, gfn, &tag)) {
		m->copied_in[gfn] = 0;
		return false;
	}
	m->dest[gfn] = tag;
	m->copied_in[gfn] = round + 1;
	return true;
}

static bool engine_ok(struct sim *s, int64_t ret, const char *what)
{
	if (ret >= 0)
		return true;
	sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, SIM_NO_GFN,
		      SIM_NO_VCPU, "%s failed: %" PRId64, what, ret);
	if (ret == -EIO || ret == -ESHUTDOWN)
		sim_stop_request(&s->run);
	return false;
}

/* ---- the dirty-bit ledger's side of dirty logging ------------------------ */

/*
 * The host dropped the dirty bits of [gfn, gfn + n) or collected them
 * outside a migration round: with --migrate those pages must be copied
 * again, as if the host had written them (the log has one reader).
 */
static void pages_logged_elsewhere(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_migrate_mark(s, gfn, n);
}

/* Forget the bits a harvest of [start, start + n) reported in @bitmap. */
static void ledger_harvested(struct sim *s, tdp_gfn_t start,
			     const uint64_t *bitmap, uint64_t n)
{
	for (uint64_t w = 0; w < (n + 63) / 64; w++)
		for (uint64_t b = bitmap[w]; b; b &= b - 1) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(b);

			if (i < n)
				sim_ledger_drop(s, start + i, 1);
		}
}

/* ---- dirty logging in the default scenario ------------------------------- */

/* How long one dirty-logging burst lasts, in seconds. */
#define LOG_BURST_S 0.010

/*
 * One operation of dirty logging on [start, start + 64), the window of a
 * 64-GFN word of the harvest bitmap, as KVM's GET/CLEAR_DIRTY_LOG work
 * on: write-protect, clear-dirty (of the whole region), clear-dirty or
 * write-protect of the GFNs of a mask, a harvest, or aging
 * (tdp_age_range() clearing accessed bits).  The calls that clear dirty
 * bits, and the ledger update after each, hold the ledger lock.
 */
/*
 * Right after a write-protect of the GFNs of @mask in [start, start + 64)
 * returned: write-protect removes the writable bit and must keep the
 * dirty bit, so every such GFN whose dirty bit a CPU set and nobody
 * reported yet (a ledger bit) must still be mapped dirty.  A leaf that is
 * present and clean lost the bit (a write-protect that stored a stale
 * copy over a dirty bit hardware had just set).  The region's backing
 * lock keeps zaps out (a zap's report and the ledger update after it
 * happen under it) and the ledger lock every clear-dirty and harvest.
 */
static void check_wrprot_kept_dirty(struct sim *s, tdp_gfn_t start,
				    uint64_t mask)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	pthread_mutex_t *backing =
		&s->host.backing_lock[sim_layout_region(&s->layout, start)];

	pthread_mutex_lock(backing);
	sim_ledger_lock(s);
	for (int i = 0; i < 64; i++) {
		tdp_gfn_t gfn = start + (uint64_t)i;
		tdp_spte_t spte;
		int level;

		if (!(mask & (1ULL << i)) || !sim_ledger_test(s, gfn))
			continue;
		sim_count(&s->stats, SIM_C_CHECK_WRPROT_DIRTY, 1);
		if (tdp_lookup(s->mmu, gfn, TDP_ALIAS_SHARED, &spte, &level) ||
		    !tdp_spte_is_present(fmt, spte) ||
		    !tdp_spte_is_leaf(fmt, spte, level) ||
		    (spte & fmt->dirty))
			continue;
		sim_violation(&s->report, SIM_V_DIRTY_LOG, 0, gfn, SIM_NO_VCPU,
			      "a CPU set the dirty bit of shared gfn %#" PRIx64
			      " and nobody reported it, but right after "
			      "write-protect its leaf %#" PRIx64 " is clean: "
			      "the write-protect lost it", gfn, spte);
	}
	sim_ledger_unlock(s);
	pthread_mutex_unlock(backing);
}

static int64_t dirty_log_op(struct sim *s, struct sim_rng *rng,
			    tdp_gfn_t start)
{
	uint64_t kind = sim_rng_below(rng, 5);
	uint64_t bitmap[1] = { 0 };
	int64_t ret;

	/* Dirty bits stay: nothing for the ledger, but they must stay. */
	if (kind == 0) {
		ret = tdp_wrprot_range(s->mmu, start, start + 64,
				       TDP_ALIAS_SHARED);
		if (ret >= 0)
			check_wrprot_kept_dirty(s, start, ~0ULL);
		return ret;
	}
	/* Aging clears accessed bits (no flush): every walk that follows
	 * sets them again, racing with the next operation. */
	if (kind == 4)
		return tdp_age_range(s->mmu, start, start + 64, true,
				     TDP_ALIAS_SHARED);
	sim_ledger_lock(s);
	if (kind == 1) {
		/*
		 * Over the whole 2 MiB region: the dirty bit of a huge leaf
		 * that overlaps the range is cleared for all its pages, so a
		 * 64-GFN range would drop bits outside it.
		 */
		tdp_gfn_t region = start & ~(SIM_REGION_PAGES - 1);

		ret = tdp_clear_dirty_range(s->mmu, region,
					    region + SIM_REGION_PAGES,
					    TDP_ALIAS_SHARED);
		if (ret >= 0) {
			sim_ledger_drop(s, region, SIM_REGION_PAGES);
			pages_logged_elsewhere(s, region, SIM_REGION_PAGES);
		}
	} else if (kind == 2) {
		uint64_t mask = sim_rng_next(rng);
		bool wrprot = sim_rng_below(rng, 2);

		if (wrprot) {
			/* The check takes the locks in its own order. */
			sim_ledger_unlock(s);
			ret = tdp_clear_dirty_masked(s->mmu, start, mask, true,
						     TDP_ALIAS_SHARED);
			if (ret >= 0)
				check_wrprot_kept_dirty(s, start, mask);
			return ret;
		}
		ret = tdp_clear_dirty_masked(s->mmu, start, mask, wrprot,
					     TDP_ALIAS_SHARED);
		if (ret >= 0 && !wrprot)
			for (int i = 0; i < 64; i++)
				if (mask & (1ULL << i)) {
					sim_ledger_drop(s, start + (uint64_t)i, 1);
					pages_logged_elsewhere(
						s, start + (uint64_t)i, 1);
				}
	} else {
		ret = tdp_harvest_dirty(s->mmu, start, start + 64, bitmap,
					TDP_ALIAS_SHARED);
		if (ret >= 0) {
			ledger_harvested(s, start, bitmap, 64);
			for (int i = 0; i < 64; i++)
				if (bitmap[0] & (1ULL << i))
					pages_logged_elsewhere(
						s, start + (uint64_t)i, 1);
		}
	}
	sim_ledger_unlock(s);
	return ret;
}

/*
 * The event: the 2 MiB region of @gfn split to 4 KiB leaves first (as
 * before logging starts) half of the time, then 10 ms of operations back to
 * back on the 64 GFNs around @gfn (aging among them).  Each one that
 * removes a write permission or a dirty bit flushes, and aging clears
 * accessed bits, so the vCPUs writing there walk again and set A/D bits
 * while the next operation reads and updates the same leaves: the race
 * of the engine's compare-exchange loops with the CPU.  The race needs
 * a vCPU and the event thread on two cores at once, so it is a matter of
 * chance on a loaded machine.
 */
void sim_dirty_log_event(struct sim *s, struct sim_rng *rng, tdp_gfn_t gfn)
{
	tdp_gfn_t region = gfn & ~(SIM_REGION_PAGES - 1);
	tdp_gfn_t start = gfn & ~63ULL;
	tdp_pfn_t root = 0;
	int root_level = 0;
	double until;
	int64_t ret = 0;
	bool quiet;

	sim_count(&s->stats, SIM_C_EVENT_DIRTY_LOG, 1);
	if (sim_rng_below(rng, 2)) {
		ret = tdp_split_huge_range(s->mmu, region,
					   region + SIM_REGION_PAGES,
					   TDP_LEVEL_4K, TDP_ALIAS_SHARED);
		if (ret == -ENOMEM)
			ret = 0;
	}
	/*
	 * The racing CPU writes the 64 pages all along (racer.h); the
	 * host's context holds the root meanwhile.  Half of the bursts keep
	 * the vCPUs out of guest mode: then the racer and this thread have
	 * the cores to themselves and really run at the same time, which
	 * the race needs (on two cores shared with the vCPUs they seldom
	 * do).
	 */
	quiet = sim_rng_below(rng, 2);
	if (quiet)
		sim_vcpus_hold_out_begin(s);
	if (!tdp_vcpu_load_root(s->host.ctx, TDP_ALIAS_SHARED, &root,
				&root_level))
		sim_racer_aim(s, root, root_level, start | SIM_SHARED_BIT, 64,
			      false);
	/* Back to back: the vCPUs walk again right after each flush. */
	until = sim_now() + LOG_BURST_S;
	for (unsigned int i = 0; ret >= 0 && !sim_stop_requested(&s->run) &&
				 ((i & 15) || sim_now() < until);
	     i++)
		ret = dirty_log_op(s, rng, start);
	sim_racer_disarm(s);
	if (quiet)
		sim_vcpus_hold_out_end(s);
	engine_ok(s, ret, "dirty logging");
}

/* Every page of the 2 MiB region at @base (guest memory) is shared. */
static bool region_all_shared(struct sim *s, tdp_gfn_t base)
{
	for (uint64_t i = 0; i < SIM_REGION_PAGES; i++)
		if (sim_host_attr(&s->host, base + i) != SIM_ATTR_SHARED)
			return false;
	return true;
}

/*
 * Recover the region at @base (shared alias) and check the flush: a
 * paging-structure cache entry filled before the recovery that still
 * holds the leaf table it replaced, once it returned, is a walk hardware
 * can still make through a table the engine frees.
 */
static void recover_region(struct sim *s, tdp_gfn_t base)
{
	tdp_gfn_t aliased = base | SIM_SHARED_BIT, gfn = 0;
	tdp_pfn_t root = 0, old_table = 0;
	int root_level = 0, holder;
	uint64_t before;
	int64_t ret;

	/* The host's context holds the root while it looks. */
	if (!tdp_vcpu_load_root(s->host.ctx, TDP_ALIAS_SHARED, &root,
				&root_level))
		old_table = sim_tree_leaf_table(s, root, root_level, aliased);
	before = sim_vcpus_psc_seq(s);
	sim_ledger_hold_reports(true);
	ret = tdp_recover_huge_pages(s->mmu, base, base + SIM_REGION_PAGES,
				     TDP_LEVEL_2M, TDP_ALIAS_SHARED);
	sim_ledger_hold_reports(false);
	if (!engine_ok(s, ret, "tdp_recover_huge_pages"))
		return;
	sim_count(&s->stats, SIM_C_RECOVERED_SHARED, (uint64_t)ret);
	/*
	 * Only recovery (this thread) and zaps unlink direct tables, and a
	 * zap flushes before it lets mmu_lock go: if the table is gone
	 * after a recovery that made a huge leaf, recovery replaced it, or
	 * a zap that already flushed did.
	 */
	if (ret <= 0 || !old_table ||
	    sim_tree_leaf_table(s, root, root_level, aliased) == old_table)
		return;
	sim_count(&s->stats, SIM_C_CHECK_BACKED, 1);
	holder = sim_vcpus_find_cached_table(s, old_table, before, &gfn);
	if (holder >= 0)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      holder, "the vCPU's paging-structure cache "
			      "still walks shared gfn %#" PRIx64 " through "
			      "leaf table %#" PRIx64 " after "
			      "tdp_recover_huge_pages() replaced it and "
			      "returned: not flushed", gfn, old_table);
}

/*
 * One all-shared region at @base through fault-in, split and recovery
 * (see sim_recover_shared_event()).
 */
static void recover_shared_region(struct sim *s, tdp_gfn_t base)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t spte;
	int64_t ret;
	int level;

	for (tdp_gfn_t g = base; g < base + SIM_REGION_PAGES &&
				 !sim_stop_requested(&s->run); g++)
		if (sim_host_fault(s, s->host.ctx, SIM_NO_VCPU,
				   g | SIM_SHARED_BIT, true, 0) < 0)
			break;
	if (!tdp_lookup(s->mmu, base, TDP_ALIAS_SHARED, &spte, &level) &&
	    tdp_spte_is_present(fmt, spte) && level == TDP_LEVEL_2M &&
	    tdp_spte_is_leaf(fmt, spte, level)) {
		ret = tdp_split_huge_range(s->mmu, base,
					   base + SIM_REGION_PAGES,
					   TDP_LEVEL_4K, TDP_ALIAS_SHARED);
		if (ret != -ENOMEM && !engine_ok(s, ret,
						 "tdp_split_huge_range"))
			return;
	}
	/*
	 * Clean leaves, and a flush: the vCPUs' next accesses walk the leaf
	 * table again, cache it and set dirty bits, until recovery checks
	 * and tears the table down.  The caches must still hold it then.
	 */
	sim_ledger_lock(s);
	ret = tdp_clear_dirty_range(s->mmu, base, base + SIM_REGION_PAGES,
				    TDP_ALIAS_SHARED);
	if (ret >= 0) {
		sim_ledger_drop(s, base, SIM_REGION_PAGES);
		pages_logged_elsewhere(s, base, SIM_REGION_PAGES);
	}
	sim_ledger_unlock(s);
	if (!engine_ok(s, ret, "tdp_clear_dirty_range"))
		return;
	usleep(5000);
	recover_region(s, base);
}

/*
 * A third of the events unmap the region of @gfn whole instead (below).
 *
 * Recovery needs tables whose 512 leaves map one aligned run of host
 * pages with the same rights: a shared region with huge backing, mapped
 * by a 2 MiB leaf and split.  The guest converts often, so a region stays
 * all shared briefly: one event takes it through every step.  It faults
 * the region in for write (a 2 MiB leaf where the backing allows, else
 * 4 KiB leaves), splits a 2 MiB leaf as an eager split would, clears
 * the dirty bits (and so flushes), gives the vCPUs 5 ms to write through
 * the leaf table (and cache it in their paging-structure caches), then
 * recovers the region.
 */
void sim_recover_shared_event(struct sim *s, struct sim_rng *rng,
			      tdp_gfn_t gfn)
{
	tdp_gfn_t base = gfn & ~(SIM_REGION_PAGES - 1);
	uint64_t first = sim_rng_below(rng, s->nr_regions);

	if (sim_rng_below(rng, 3) == 0) {
		/*
		 * Or the region the vCPU writes is unmapped whole (a
		 * THP migrated): its leaf table is unlinked and torn down
		 * while the vCPUs may still walk it through their
		 * paging-structure caches, until the flush.
		 */
		sim_count(&s->stats, SIM_C_EVENT_UNMAP_REGION, 1);
		sim_host_unmap_shared(s, base, SIM_REGION_PAGES);
		return;
	}
	sim_count(&s->stats, SIM_C_EVENT_RECOVER_SHARED, 1);
	/*
	 * The region the vCPU uses, or else one the vCPUs' walks cache that
	 * is all shared, or else the next one all shared.
	 */
	if (!region_all_shared(s, base)) {
		tdp_gfn_t cached[64];
		unsigned int n = sim_vcpus_cached_regions(s, cached, 64);

		for (unsigned int i = 0; i < n; i++)
			if (sim_layout_contains(&s->layout, cached[i]) &&
			    region_all_shared(s, cached[i])) {
				base = cached[i];
				break;
			}
	}
	for (uint64_t i = 0; !region_all_shared(s, base); i++) {
		if (i == s->nr_regions)
			return;
		base = sim_layout_region_gfn(&s->layout,
					     (first + i) % s->nr_regions);
	}
	recover_shared_region(s, base);
}

bool sim_migrate_round(struct sim *s)
{
	struct sim_migration *m = &s->migration;
	unsigned int round = m->nr_rounds;
	struct sim_migrate_round *r;
	int64_t ret;

	if (!m->enabled || round >= SIM_MIGRATE_MAX_ROUNDS)
		return false;
	r = &m->rounds[round];
	m->nr_rounds++;
	sim_count(&s->stats, SIM_C_MIGRATE_ROUNDS, 1);
	if (round == 0) {
		/* Logging on: dirty bits from now on mean "written since". */
		sim_ledger_lock(s);
		ret = tdp_clear_dirty_range(s->mmu, 0, s->nr_gfns,
					    TDP_ALIAS_SHARED);
		if (ret >= 0)
			sim_ledger_drop(s, 0, s->nr_gfns);
		sim_ledger_unlock(s);
		if (!engine_ok(s, ret, "tdp_clear_dirty_range"))
			return false;
		/* Everything is copied now: older marks are moot. */
		for (uint64_t w = 0; w < m->nr_words; w++)
			__atomic_exchange_n(&m->marked[w], 0, __ATOMIC_ACQ_REL);
		for (tdp_gfn_t g = 0; g < s->nr_gfns; g++)
			r->copied += copy_page(s, g, round);
		sim_count(&s->stats, SIM_C_MIGRATE_COPIED, r->copied);
		return true;
	}

	memset(m->harvest, 0, m->nr_words * sizeof(*m->harvest));
	sim_ledger_lock(s);
	ret = tdp_harvest_dirty(s->mmu, 0, s->nr_gfns, m->harvest,
				TDP_ALIAS_SHARED);
	if (ret >= 0)
		ledger_harvested(s, 0, m->harvest, s->nr_gfns);
	sim_ledger_unlock(s);
	if (!engine_ok(s, ret, "tdp_harvest_dirty"))
		return false;
	r->harvested = (uint64_t)ret;
	for (uint64_t w = 0; w < m->nr_words; w++) {
		uint64_t marked = __atomic_exchange_n(&m->marked[w], 0,
						      __ATOMIC_ACQ_REL);
		uint64_t dirty = m->harvest[w] | marked;

		r->marked += (uint64_t)__builtin_popcountll(marked);
		for (; dirty; dirty &= dirty - 1) {
			tdp_gfn_t g = w * 64 + (uint64_t)__builtin_ctzll(dirty);

			if (g >= s->nr_gfns)
				break;
			r->dirtied++;
			if (m->copied_in[g] == round)
				r->redirtied++;
			r->copied += copy_page(s, g, round);
		}
	}
	sim_count(&s->stats, SIM_C_MIGRATE_HARVESTED, r->harvested);
	sim_count(&s->stats, SIM_C_MIGRATE_COPIED, r->copied);
	return true;
}

uint64_t sim_migrate_finish(struct sim *s)
{
	struct sim_migration *m = &s->migration;
	uint64_t missed = 0;

	if (!m->enabled || !m->nr_rounds)
		return 0;
	/* Stop and copy: the last round, with the guest stopped. */
	if (m->nr_rounds == SIM_MIGRATE_MAX_ROUNDS)
		m->nr_rounds--;
	if (!sim_migrate_round(s))
		return 0;
	for (tdp_gfn_t g = 0; g < s->nr_gfns; g++) {
		uint64_t tag;

		if (!sim_host_read_shared(s, g, &tag))
			continue;
		m->final_checked++;
		if (m->copied_in[g] && m->dest[g] == tag)
			continue;
		missed++;
		sim_violation(&s->report, SIM_V_DIRTY_LOG, 0, g, SIM_NO_VCPU,
			      "migration: shared page holds version %" PRIu64
			      " but the destination got %s: it was written "
			      "after round %u copied it and never reported "
			      "dirty",
			      SIM_TAG_VERSION(tag),
			      m->copied_in[g] ? "an older one" : "nothing",
			      m->copied_in[g] ? m->copied_in[g] - 1 : 0);
	}
	sim_count(&s->stats, SIM_C_MIGRATE_FINAL_CHECKED, m->final_checked);
	return missed;
}

/* ---- the migration thread ------------------------------------------------ */

static void *migrate_main(void *arg)
{
	struct sim *s = arg;
	/* About 20 rounds over the run, leaving room for the last one. */
	double interval = fmax(0.02, s->cfg.duration / 20);
	double next;

	tdp_thread_register();
	next = sim_now();
	while (!sim_stop_requested(&s->run)) {
		sim_pause_point(&s->run);
		if (sim_now() < next) {
			usleep(2000);
			continue;
		}
		if (s->migration.nr_rounds + 1 >= SIM_MIGRATE_MAX_ROUNDS ||
		    !sim_migrate_round(s))
			break;
		next = sim_now() + interval;
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

int sim_migrate_start(struct sim *s)
{
	if (!s->migration.enabled)
		return 0;
	if (pthread_create(&s->migration.thread, NULL, migrate_main, s))
		return -EAGAIN;
	s->migration.thread_started = true;
	return 0;
}

void sim_migrate_join(struct sim *s)
{
	if (s->migration.thread_started)
		pthread_join(s->migration.thread, NULL);
	s->migration.thread_started = false;
}

void sim_recover_shared_boot(struct sim *s)
{
	s->migration.boot_recovered = true;
	for (uint64_t r = 0; r < s->nr_regions && !sim_stop_requested(&s->run);
	     r++) {
		tdp_gfn_t base = sim_layout_region_gfn(&s->layout, r);

		if (region_all_shared(s, base)) {
			sim_count(&s->stats, SIM_C_EVENT_RECOVER_SHARED, 1);
			recover_shared_region(s, base);
		}
	}
}
