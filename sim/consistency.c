/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Consistency checks with every thread stopped (see consistency.h): at a
 * quiesce point, over every GFN, and after TD teardown.
 */
#include "consistency.h"

#include <inttypes.h>

/* ---- stop-the-world checks ----------------------------------------------- */

struct quiesce_tally {
	/* Leaves found per tree (enum tdp_root_type) and level. */
	uint64_t leaves[TDP_NR_ROOT_TYPES][TDP_MAX_LEVEL + 1];
	uint64_t private_backing, shared_backing, reg_pages;
};

#define QV(s, kind, gfn, ...)                                                  \
	sim_violation(&(s)->report, kind, 0, gfn, SIM_NO_VCPU,                 \
		      "quiesced: " __VA_ARGS__)

/* The private alias of @gfn: guest view, mirror and S-EPT agree. */
static void check_private_gfn(struct sim *s, tdp_gfn_t gfn,
			      struct quiesce_tally *t)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	enum guest_page_state gs = sim_guest_state(&s->guest, gfn);
	tdp_spte_t spte;
	uint64_t entry;
	int mlevel, slevel, state;
	bool mleaf, sleaf;

	if (tdp_lookup(s->mmu, gfn, TDP_ALIAS_PRIVATE, &spte, &mlevel))
		return;
	tdx_sept_lookup(s->module, gfn, &entry, &slevel);
	state = sept_entry_state(entry);
	mleaf = tdp_spte_is_present(fmt, spte) &&
		tdp_spte_is_leaf(fmt, spte, mlevel);
	sleaf = state == SEPT_MAPPED || state == SEPT_PENDING;
	if (tdp_spte_is_frozen(fmt, spte))
		QV(s, SIM_V_INCONSISTENT, gfn, "frozen mirror SPTE at level %d",
		   mlevel);
	if (state == SEPT_BLOCKED || state == SEPT_PENDING_BLOCKED ||
	    state == SEPT_NL_BLOCKED)
		QV(s, SIM_V_INCONSISTENT, gfn,
		   "S-EPT entry left %s at level %d", sept_state_name(state),
		   slevel);
	if (mlevel != slevel || mleaf != sleaf) {
		QV(s, SIM_V_INCONSISTENT, gfn,
		   "mirror walk ends at level %d (%s) but the S-EPT walk at "
		   "level %d (%s)", mlevel, mleaf ? "leaf" : "no leaf", slevel,
		   sept_state_name(state));
		return;
	}
	if (mleaf) {
		if (tdp_spte_pfn(fmt, spte) != sept_entry_pfn(entry))
			QV(s, SIM_V_INCONSISTENT, gfn,
			   "mirror maps pfn %#" PRIx64 ", S-EPT %#" PRIx64,
			   tdp_spte_pfn(fmt, spte), sept_entry_pfn(entry));
		if ((gfn & (tdp_level_pages(mlevel) - 1)) == 0)
			t->leaves[TDP_ROOT_MIRROR][mlevel]++;
	}
	switch (gs) {
	case GUEST_PRIVATE_ACCEPTED: {
		tdp_pfn_t pfn = sept_entry_pfn(entry) +
				(gfn & (tdp_level_pages(slevel) - 1));
		struct host_page *p = host_mem_page(s->mem, pfn);
		uint64_t want = SIM_TAG(gfn, sim_guest_version(&s->guest, gfn));

		if (state != SEPT_MAPPED) {
			QV(s, SIM_V_LOST_MAPPING, gfn,
			   "accepted by the guest but the S-EPT is %s at "
			   "level %d", sept_state_name(state), slevel);
			break;
		}
		if (!p || host_page_tag(p) != want)
			QV(s, SIM_V_CORRUPTION, gfn,
			   "private page %#" PRIx64 " holds tag %#" PRIx64
			   ", the guest expects %#" PRIx64, pfn,
			   p ? host_page_tag(p) : 0, want);
		break;
	}
	case GUEST_PRIVATE_UNACCEPTED:
		if (state == SEPT_MAPPED)
			QV(s, SIM_V_INCONSISTENT, gfn,
			   "MAPPED in the S-EPT but never accepted by the "
			   "guest");
		break;
	case GUEST_SHARED:
		if (sleaf)
			QV(s, SIM_V_INCONSISTENT, gfn,
			   "shared GFN still has a private mapping (%s)",
			   sept_state_name(state));
		break;
	}
}

/* The shared alias of @gfn: direct tree, attributes and backing agree. */
static void check_shared_gfn(struct sim *s, tdp_gfn_t gfn,
			     struct quiesce_tally *t)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	enum guest_page_state gs = sim_guest_state(&s->guest, gfn);
	tdp_pfn_t backing = sim_host_shared_pfn(s, gfn);
	tdp_spte_t spte;
	int level;

	if (tdp_lookup(s->mmu, gfn, TDP_ALIAS_SHARED, &spte, &level))
		return;
	if (tdp_spte_is_frozen(fmt, spte))
		QV(s, SIM_V_INCONSISTENT, gfn, "frozen direct SPTE");
	if (tdp_spte_is_present(fmt, spte) &&
	    tdp_spte_is_leaf(fmt, spte, level)) {
		tdp_pfn_t pfn = tdp_spte_pfn(fmt, spte) +
				(gfn & (tdp_level_pages(level) - 1));

		if ((gfn & (tdp_level_pages(level) - 1)) == 0)
			t->leaves[TDP_ROOT_DIRECT][level]++;
		if (sim_host_attr(&s->host, gfn) != SIM_ATTR_SHARED)
			QV(s, SIM_V_INCONSISTENT, gfn,
			   "the direct tree maps a private GFN");
		if (pfn != backing)
			QV(s, SIM_V_STALE_TRANSLATION, gfn,
			   "the direct tree maps pfn %#" PRIx64
			   " but the shared page is %#" PRIx64, pfn, backing);
	}
	if (gs == GUEST_SHARED) {
		uint32_t version = sim_guest_version(&s->guest, gfn);
		uint64_t want = SIM_TAG(gfn, version);
		struct host_page *p = host_mem_page(s->mem, backing);

		if (backing ? host_page_tag(p) != want : version != 0)
			QV(s, SIM_V_CORRUPTION, gfn,
			   "shared page %#" PRIx64 " holds %#" PRIx64
			   ", the guest expects %#" PRIx64, backing,
			   p ? host_page_tag(p) : 0, want);
	}
}

/*
 * The dirty-bit ledger at a quiesce point: a dirty bit a vCPU set and the
 * engine neither reported nor left in the tree was lost.  The engine's
 * contract (tdp/dirty.h, tdp/zap.h, tdp/huge.h): a leaf's dirty bit is
 * only ever cleared by tdp_clear_dirty_*() and tdp_harvest_dirty() (the
 * host drops or collects those bits itself), reported through
 * host.mark_dirty when a zap or a teardown removes the leaf, carried into
 * the huge leaf by recovery and into the smaller leaves by a split, and
 * kept by write-protect and aging.  So a GFN whose bit is still in the
 * ledger must be mapped by a present leaf with its dirty bit set.
 */
static void check_ledger_gfn(struct sim *s, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t spte;
	int level;

	if (!sim_ledger_test(s, gfn))
		return;
	sim_count(&s->stats, SIM_C_CHECK_LEDGER, 1);
	if (tdp_lookup(s->mmu, gfn, TDP_ALIAS_SHARED, &spte, &level))
		return;
	if (!tdp_spte_is_present(fmt, spte) ||
	    !tdp_spte_is_leaf(fmt, spte, level))
		QV(s, SIM_V_DIRTY_LOG, gfn, "a vCPU set the dirty bit of the "
		   "leaf of shared gfn %#" PRIx64 ", which is gone without "
		   "the bit being reported (mark_dirty) or harvested", gfn);
	else if (!(spte & fmt->dirty))
		QV(s, SIM_V_DIRTY_LOG, gfn, "a vCPU set the dirty bit of the "
		   "leaf of shared gfn %#" PRIx64 "; the level-%d leaf %#"
		   PRIx64 " lost it without a clear-dirty or a harvest",
		   gfn, level, spte);
}

/* The backing of @gfn belongs to it. */
static void check_backing(struct sim *s, tdp_gfn_t gfn,
			  struct quiesce_tally *t)
{
	for (int private = 0; private < 2; private++) {
		tdp_pfn_t pfn = private ? sim_host_private_pfn(s, gfn)
					: sim_host_shared_pfn(s, gfn);
		struct host_page *p = host_mem_page(s->mem, pfn);
		uint32_t want = private ? HOST_PAGE_PRIVATE : HOST_PAGE_SHARED;

		if (!pfn)
			continue;
		if (private)
			t->private_backing++;
		else
			t->shared_backing++;
		if (!p || host_page_use(p) != want || host_page_gfn(p) != gfn)
			QV(s, SIM_V_PAGE_OWNERSHIP, gfn,
			   "%s backing %#" PRIx64 " is a %s page of gfn %#"
			   PRIx64, private ? "private" : "shared", pfn,
			   p ? host_page_use_name(host_page_use(p)) : "no",
			   p ? host_page_gfn(p) : 0);
		/* One TD's at a time: never another TD's, never free. */
		if (p && host_page_owner(p) != s->owner)
			QV(s, SIM_V_PAGE_OWNERSHIP, gfn,
			   "%s backing %#" PRIx64 " of TD %u is held by %s",
			   private ? "private" : "shared", pfn, s->td,
			   host_page_owner(p) ? "another TD" : "nobody");
		if (private && tdx_pamt_get(s->module, pfn).type == PAMT_REG) {
			t->reg_pages++;
			if (tdx_pamt_get(s->module, pfn).owner != s->owner)
				QV(s, SIM_V_PAGE_OWNERSHIP, gfn,
				   "the PAMT gives private page %#" PRIx64
				   " of TD %u to another TD", pfn, s->td);
		}
	}
}

uint64_t sim_check_quiesced(struct sim *s)
{
	uint64_t before = sim_report_total(&s->report);
	struct quiesce_tally t = { 0 };
	uint64_t in_use_private, in_use_shared, in_use_sept;
	struct tdp_stats st;
	uint64_t sept_tables = 0;

	sim_count(&s->stats, SIM_C_CHECK_QUIESCE, 1);
	s->quiesce_runs++;
	for (uint64_t page = 0; page < s->nr_gfns; page++) {
		tdp_gfn_t gfn = sim_layout_gfn(&s->layout, page);
		bool guest_shared = sim_guest_state(&s->guest, gfn) ==
				    GUEST_SHARED;

		if (guest_shared !=
		    (sim_host_attr(&s->host, gfn) == SIM_ATTR_SHARED))
			QV(s, SIM_V_INCONSISTENT, gfn,
			   "the guest thinks the GFN is %s, the host's "
			   "attribute says otherwise",
			   guest_shared ? "shared" : "private");
		check_private_gfn(s, gfn, &t);
		check_shared_gfn(s, gfn, &t);
		check_backing(s, gfn, &t);
		check_ledger_gfn(s, gfn);
	}
	sim_vcpus_check_backed(s);
	sim_mmio_check_quiesced(s, &t.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K],
				&t.shared_backing);
	sim_count(&s->stats, SIM_C_CHECK_QUIESCE_PAGES,
		  s->nr_gfns + s->mmio.nr);

	/* Counts: engine statistics, module and host memory agree. */
	tdp_mmu_get_stats(s->mmu, &st);
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_2M; level++) {
		static const struct {
			enum tdp_root_type type;
			const char *leaves, *holder;
		} trees[] = {
			{ TDP_ROOT_MIRROR, "mirror", "the mirror" },
			{ TDP_ROOT_DIRECT, "direct", "the direct tree" },
		};

		for (size_t i = 0; i < sizeof(trees) / sizeof(trees[0]); i++) {
			uint64_t counted = st.leaves[trees[i].type][level];
			uint64_t found = t.leaves[trees[i].type][level];

			if (counted != found)
				QV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
				   "engine counts %" PRIu64 " %s leaves at "
				   "level %d, %s holds %" PRIu64,
				   counted, trees[i].leaves, level,
				   trees[i].holder, found);
		}
	}
	for (int level = TDP_LEVEL_4K; level < SIM_ROOT_LEVEL; level++)
		sept_tables += st.tables[TDP_ROOT_MIRROR][level];
	if ((int64_t)sept_tables != tdx_sept_pages(s->module))
		QV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
		   "the mirror has %" PRIu64 " tables below its root, the "
		   "S-EPT %" PRId64, sept_tables, tdx_sept_pages(s->module));
	if (tdx_td_child_count(s->module) !=
	    (int64_t)(t.reg_pages + sept_tables))
		QV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
		   "the TD owns %" PRId64 " pages, %" PRIu64 " private pages "
		   "and %" PRIu64 " S-EPT pages are accounted for",
		   tdx_td_child_count(s->module), t.reg_pages, sept_tables);
	/* This TD's pages only: other TDs may run meanwhile. */
	in_use_private = host_mem_in_use_by(s->mem, HOST_PAGE_PRIVATE, s->owner);
	in_use_shared = host_mem_in_use_by(s->mem, HOST_PAGE_SHARED, s->owner);
	in_use_sept = host_mem_in_use_by(s->mem, HOST_PAGE_SEPT, s->owner);
	if (in_use_private != t.private_backing ||
	    in_use_shared != t.shared_backing ||
	    (int64_t)in_use_sept != tdx_sept_pages(s->module))
		QV(s, SIM_V_PAGE_OWNERSHIP, SIM_NO_GFN,
		   "host memory in use (private %" PRIu64 ", shared %" PRIu64
		   ", S-EPT %" PRIu64 ") differs from the backing (%" PRIu64
		   ", %" PRIu64 ") and the S-EPT (%" PRId64 "): pages leaked",
		   in_use_private, in_use_shared, in_use_sept, t.private_backing,
		   t.shared_backing, tdx_sept_pages(s->module));
	return sim_report_total(&s->report) - before;
}

/* ---- TD teardown --------------------------------------------------------- */

#define FV(s, kind, ...)                                                       \
	sim_violation(&(s)->report, kind, 0, SIM_NO_GFN, SIM_NO_VCPU,          \
		      "after teardown: " __VA_ARGS__)

/* The engine saw exactly the faults and backend busy/errors we did. */
static void check_engine_counts(struct sim *s, const struct tdp_stats *st)
{
	struct sim_stats snap;
	const struct sim_stats *c = &snap;
	uint64_t fixed;
	uint64_t spurious, retried;
	uint64_t busy = 0, errors = 0;
	const enum sim_seamcall maps[] = { SIM_SC_SEPT_ADD, SIM_SC_PAGE_ADD,
					   SIM_SC_PAGE_AUG_4K,
					   SIM_SC_PAGE_AUG_2M };

	sim_stats_snapshot(&s->stats, &snap);
	fixed = c->c[SIM_C_FAULT_PRIVATE_FIXED] + c->c[SIM_C_FAULT_SHARED_FIXED];
	spurious = c->c[SIM_C_FAULT_PRIVATE_SPURIOUS] +
		   c->c[SIM_C_FAULT_SHARED_SPURIOUS];
	retried = c->c[SIM_C_FAULT_PRIVATE_RETRY] + c->c[SIM_C_FAULT_SHARED_RETRY];

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		busy += c->seamcall[maps[i]][SIM_OUT_BUSY] +
			c->seamcall[maps[i]][SIM_OUT_BUSY_INJECTED];
		errors += c->seamcall[maps[i]][SIM_OUT_FAIL_INJECTED] +
			  c->seamcall[maps[i]][SIM_OUT_ERROR];
	}
	sim_count(&s->stats, SIM_C_CHECK_FINAL, 4);
	if (st->faults_fixed != fixed || st->faults_spurious != spurious ||
	    st->faults_retried != retried)
		FV(s, SIM_V_INCONSISTENT,
		   "engine counts faults fixed/spurious/retried %" PRIu64
		   "/%" PRIu64 "/%" PRIu64 ", the host saw %" PRIu64 "/%" PRIu64
		   "/%" PRIu64, st->faults_fixed, st->faults_spurious,
		   st->faults_retried, fixed, spurious, retried);
	if (st->backend_busy != busy || st->backend_errors < errors)
		FV(s, SIM_V_INCONSISTENT,
		   "engine counts %" PRIu64 " busy and %" PRIu64 " failed "
		   "backend calls, the module returned %" PRIu64 " and %"
		   PRIu64, st->backend_busy, st->backend_errors, busy, errors);
}

void sim_check_after_teardown(struct sim *s, const struct tdp_stats *st)
{
	sim_count(&s->stats, SIM_C_CHECK_FINAL, 4);
	if (st->pages_in_use)
		FV(s, SIM_V_INCONSISTENT, "engine still holds %" PRIu64
		   " pages", st->pages_in_use);
	for (int type = 0; type < TDP_NR_ROOT_TYPES; type++)
		for (int level = 0; level <= TDP_MAX_LEVEL; level++)
			if (st->tables[type][level] || st->leaves[type][level])
				FV(s, SIM_V_INCONSISTENT,
				   "engine still counts tables or leaves "
				   "(root type %d, level %d)", type, level);
	/* Invalidated roots too: each freed once its last user let go. */
	if (st->roots_freed != st->roots_allocated)
		FV(s, SIM_V_INCONSISTENT, "%" PRIu64 " roots allocated, %"
		   PRIu64 " freed", st->roots_allocated, st->roots_freed);
	if (tdx_td_child_count(s->module) || tdx_sept_pages(s->module))
		FV(s, SIM_V_TDX_ERROR, "the TD still owns %" PRId64
		   " pages (%" PRId64 " S-EPT pages): the engine did not "
		   "remove everything", tdx_td_child_count(s->module),
		   tdx_sept_pages(s->module));
	check_engine_counts(s, st);
}

void sim_check_host_memory_free(struct sim *s)
{
	sim_count(&s->stats, SIM_C_CHECK_FINAL, 1);
	/* This TD's pages: other TDs are torn down on their own. */
	for (int use = HOST_PAGE_SHARED; use < HOST_PAGE_RESERVED; use++) {
		uint64_t n = host_mem_in_use_by(s->mem, use, s->owner);

		if (n)
			FV(s, SIM_V_PAGE_OWNERSHIP,
			   "%" PRIu64 " host pages of TD %u still in use as %s",
			   n, s->td, host_page_use_name((uint32_t)use));
	}
}
