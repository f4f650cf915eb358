/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The simulated guest (see guest.h). */
#include "guest.h"

#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Pages a small region converts or lazily accepts at most at once. */
#define SMALL_RUN 16
/* Host faults an ACCEPT may see answered as spurious before it is a bug. */
#define ACCEPT_MAX_SPURIOUS 64
/* Attempts of one access or ACCEPT before it counts as a livelock. */
#define OP_MAX_TRIES 1000000
/* A private shared-hot region converts to shared once where another
 * one would 16 times. */
#define HOT_CONVERT_EVERY 16

static struct sim_guest *guest_of(struct sim_vcpu *v)
{
	return &v->sim->guest;
}

/* Dense page and region numbers of guest memory @gfn (layout.h). */
static uint64_t page_of(const struct sim_guest *g, tdp_gfn_t gfn)
{
	return sim_layout_page(g->layout, gfn);
}

static uint64_t region_of(const struct sim_guest *g, tdp_gfn_t gfn)
{
	return sim_layout_region(g->layout, gfn);
}

/* Give every page of dense region @r its boot state and attribute. */
static void boot_page(struct sim *s, uint64_t r, uint64_t i, bool shared)
{
	tdp_gfn_t gfn = sim_layout_region_gfn(&s->layout, r) + i;

	s->guest.state[r * SIM_REGION_PAGES + i] =
		shared ? GUEST_SHARED : GUEST_PRIVATE_UNACCEPTED;
	s->guest.pte[r * SIM_REGION_PAGES + i] =
		shared ? GUEST_PTE_SHARED : GUEST_PTE_NOT_PRESENT;
	sim_host_set_initial_attr(s, gfn,
				  shared ? SIM_ATTR_SHARED : SIM_ATTR_PRIVATE);
}

/*
 * The boot layout of a scenario: half the regions huge, by the seed; a
 * huge region all private or all shared, the others in runs of
 * SMALL_RUN pages.
 */
static void boot_layout_random(struct sim *s, uint32_t private_ppm)
{
	struct sim_guest *g = &s->guest;
	struct sim_rng rng;

	sim_rng_seed(&rng, s->cfg.seed, 1);
	for (uint64_t r = 0; r < s->nr_regions; r++) {
		uint64_t run = SMALL_RUN;

		g->region_huge[r] = sim_rng_below(&rng, 2) == 0;
		if (g->region_huge[r])
			run = SIM_REGION_PAGES;
		for (uint64_t i = 0; i < SIM_REGION_PAGES; i += run) {
			bool shared = !sim_rng_ppm(&rng, private_ppm);

			for (uint64_t j = i; j < i + run; j++)
				boot_page(s, r, j, shared);
		}
	}
}

/*
 * The boot layout of a trace replay: each region private or shared by
 * the alias rule of trace_scan.h; huge (accepted whole) with huge pages on.
 */
static void boot_layout_trace(struct sim *s, uint32_t private_ppm)
{
	struct sim_guest *g = &s->guest;

	g->accept_run = 1;
	for (uint64_t r = 0; r < s->nr_regions; r++) {
		bool private = sim_trace_region_private(
			s->cfg.seed, sim_layout_region_gfn(&s->layout, r),
			private_ppm);

		g->region_huge[r] = s->cfg.huge;
		for (uint64_t i = 0; i < SIM_REGION_PAGES; i++)
			boot_page(s, r, i, !private);
	}
}

/*
 * The initial image: private pages the host PAGE.ADDs before the TD runs
 * (host.h, sim_host_build_td()), accepted from the start and holding
 * the image's content.
 */
static void boot_image(struct sim *s)
{
	struct sim_guest *g = &s->guest;

	for (uint64_t page = 0; page < s->cfg.image_pages; page++) {
		tdp_gfn_t gfn = sim_layout_gfn(&s->layout, page);

		g->state[page] = GUEST_PRIVATE_ACCEPTED;
		g->version[page] =
			(uint32_t)SIM_TAG_VERSION(sim_image_tag(s->cfg.seed,
								gfn));
		g->image_untouched[page] = 1;
		g->pte[page] = GUEST_PTE_PRIVATE;
		sim_host_set_initial_attr(s, gfn, SIM_ATTR_PRIVATE);
	}
}

/*
 * Choose the shared-hot regions: huge regions, all private and not yet
 * accepted after boot (no image page), from a place the seed picks.
 */
static void choose_hot_regions(struct sim *s)
{
	struct sim_guest *g = &s->guest;
	struct sim_rng rng;
	uint64_t first;

	g->nr_hot = 0;
	if (!s->cfg.huge || !s->nr_regions)
		return;
	sim_rng_seed(&rng, s->cfg.seed, 3);
	first = sim_rng_below(&rng, s->nr_regions);
	for (uint64_t k = 0; k < s->nr_regions &&
			     g->nr_hot < SIM_GUEST_HOT_REGIONS; k++) {
		uint64_t r = (first + k) % s->nr_regions;
		bool all_private = g->region_huge[r];

		for (uint64_t i = 0; all_private && i < SIM_REGION_PAGES; i++)
			all_private = g->state[r * SIM_REGION_PAGES + i] ==
				      GUEST_PRIVATE_UNACCEPTED;
		if (all_private)
			g->hot_region[g->nr_hot++] = r;
	}
}

int sim_guest_check_measurement(struct sim_vcpu *v)
{
	struct sim *s = v->sim;
	uint64_t want = TDX_MR_INITIAL, got = 0;
	tdx_status_t st;

	for (uint64_t page = 0; page < s->cfg.image_pages; page++) {
		tdp_gfn_t gfn = sim_layout_gfn(&s->layout, page);
		uint64_t tag = sim_image_tag(s->cfg.seed, gfn);

		want = tdx_mr_page_add(want, gfn);
		for (unsigned int c = 0; c < TDX_MR_CHUNKS_PER_PAGE; c++)
			want = tdx_mr_extend_record(want, gfn, c, tag);
	}
	if (!sim_vcpu_enter(v))
		return -EIO;
	st = tdx_mr_report(s->module, v->id, &got);
	sim_count(&s->stats, SIM_C_CHECK_MEASUREMENT, 1);
	if (st != TDX_SUCCESS || got != want) {
		sim_violation(&s->report, SIM_V_MEASUREMENT, st, SIM_NO_GFN,
			      (int)v->id,
			      "the TD reports measurement %#" PRIx64 " (%s) "
			      "but its image of %u pages gives %#" PRIx64,
			      got, tdx_status_name(st), s->cfg.image_pages,
			      want);
		return -EIO;
	}
	return 0;
}

int sim_guest_init(struct sim *s)
{
	struct sim_guest *g = &s->guest;
	uint32_t private_ppm = sim_pct_to_ppm(s->cfg.private_pct);
	pthread_rwlockattr_t attr;

	g->layout = &s->layout;
	g->accept_run = SMALL_RUN;

	g->state = calloc(s->nr_gfns, sizeof(*g->state));
	g->version = calloc(s->nr_gfns, sizeof(*g->version));
	g->region_huge = calloc(s->nr_regions, sizeof(*g->region_huge));
	g->region_lock = calloc(s->nr_regions, sizeof(*g->region_lock));
	g->image_untouched = calloc(s->nr_gfns, 1);
	g->pte = calloc(s->nr_gfns, 1);
	if (!g->state || !g->version || !g->region_huge || !g->region_lock ||
	    !g->image_untouched || !g->pte)
		return -ENOMEM;
	g->convert_ppm = sim_pct_to_ppm(s->cfg.convert_pct);
	g->split_ppm = sim_pct_to_ppm(s->cfg.split_pct);

	/* Writers first: a slot deletion must not starve behind accesses. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (uint64_t r = 0; r < s->nr_regions; r++)
		pthread_rwlock_init(&g->region_lock[r], &attr);
	pthread_rwlockattr_destroy(&attr);
	for (int i = 0; i < GUEST_STRIPES; i++)
		pthread_mutex_init(&g->stripe[i], NULL);

	/* The boot layout: which memory the VMM created shared. */
	if (s->cfg.trace)
		boot_layout_trace(s, private_ppm);
	else
		boot_layout_random(s, private_ppm);
	boot_image(s);
	if (!s->cfg.trace)
		choose_hot_regions(s);
	return 0;
}

void sim_guest_fini(struct sim *s)
{
	struct sim_guest *g = &s->guest;

	if (g->region_lock) {
		for (uint64_t r = 0; r < s->nr_regions; r++)
			pthread_rwlock_destroy(&g->region_lock[r]);
		for (int i = 0; i < GUEST_STRIPES; i++)
			pthread_mutex_destroy(&g->stripe[i]);
	}
	free(g->state);
	free(g->version);
	free(g->region_huge);
	free(g->region_lock);
	free(g->image_untouched);
	free(g->pte);
	/* Nothing left to destroy or free a second time. */
	memset(g, 0, sizeof(*g));
}

/* ---- locks: try in guest mode, exit before blocking ---------------------- */

static void region_lock(struct sim_vcpu *v, uint64_t region, bool write)
{
	pthread_rwlock_t *l = &guest_of(v)->region_lock[region];
	int busy = write ? pthread_rwlock_trywrlock(l)
			 : pthread_rwlock_tryrdlock(l);

	if (!busy)
		return;
	sim_vcpu_exit(v);
	if (write)
		pthread_rwlock_wrlock(l);
	else
		pthread_rwlock_rdlock(l);
}

static void region_unlock(struct sim_vcpu *v, uint64_t region)
{
	pthread_rwlock_unlock(&guest_of(v)->region_lock[region]);
}

static pthread_mutex_t *stripe_of(struct sim_guest *g, tdp_gfn_t gfn)
{
	return &g->stripe[gfn % GUEST_STRIPES];
}

static void stripe_lock(struct sim_vcpu *v, tdp_gfn_t gfn)
{
	pthread_mutex_t *m = stripe_of(guest_of(v), gfn);

	if (pthread_mutex_trylock(m) == 0)
		return;
	sim_vcpu_exit(v);
	pthread_mutex_lock(m);
}

int sim_guest_mmio_access(struct sim_vcpu *v, unsigned int k, bool write)
{
	tdp_gfn_t gfn = v->sim->mmio.base + k;
	int ret;

	stripe_lock(v, gfn);
	ret = sim_mmio_access(v, k, write);
	pthread_mutex_unlock(stripe_of(guest_of(v), gfn));
	return ret;
}

/* ---- ACCEPT -------------------------------------------------------------- */

/*
 * Report an error of the host's fault handler seen by the guest; the
 * module and the host report TDX and engine errors themselves.
 */
static void report_fault_error(struct sim_vcpu *v, tdp_gfn_t gfn, int ret,
			       const char *during)
{
	struct sim *s = v->sim;

	if (ret == -EAGAIN)
		sim_violation(&s->report, SIM_V_INCONSISTENT, 0,
			      gfn & ~SIM_SHARED_BIT, (int)v->id,
			      "%s: the host's attribute of the GFN is not %s",
			      during,
			      (gfn & SIM_SHARED_BIT) ? "shared" : "private");
}

/*
 * The ACCEPT operand from its named parts: the GPA and the page-size
 * code of @level (tdx_vp.h), not the GPA alone.  cfg.break_accept_operand
 * puts the level number where the code goes, as a guest that confuses
 * the two would.
 */
static uint64_t accept_operand(const struct sim *s, tdp_gfn_t gfn, int level)
{
	uint64_t gpa = gfn << TDP_PAGE_SHIFT;
	uint64_t size_code = level == TDP_LEVEL_4K ? TDX_ACCEPT_SIZE_4K
			     : level == TDP_LEVEL_2M ? TDX_ACCEPT_SIZE_2M
						     : TDX_ACCEPT_SIZE_1G;

	if (s->cfg.break_accept_operand)
		size_code = (uint64_t)level;
	return gpa | size_code;
}

/*
 * One TDG.MEM.PAGE.ACCEPT at @level, retried until it completes: an
 * OPERAND_BUSY is retried, an EPT-violation exit goes to the host's
 * fault handler (with the ACCEPT level, so the host maps at that size)
 * and the TDCALL is repeated.  Returns 0, -EAGAIN for a size mismatch
 * (try smaller), or another negative errno (reported).
 */
static int accept_page(struct sim_vcpu *v, tdp_gfn_t gfn, int level)
{
	struct sim *s = v->sim;
	int spurious = 0;

	for (long tries = 0; tries < OP_MAX_TRIES; tries++) {
		struct tdx_err_info err = { 0 };
		tdx_status_t st;
		int ret;

		if (sim_stop_requested(&s->run) || !sim_vcpu_enter(v))
			return -ESHUTDOWN;
		st = tdx_page_accept_rcx(s->module, v->id,
					 accept_operand(s, gfn, level), &err);
		switch (tdx_status_class(st)) {
		case TDX_SUCCESS:
			sim_count(&s->stats, level == TDP_LEVEL_2M
						     ? SIM_C_ACCEPT_2M
						     : SIM_C_ACCEPT_4K, 1);
			return 0;
		case TDX_OPERAND_BUSY:
			sim_count(&s->stats, SIM_C_RETRY_ACCEPT_BUSY, 1);
			if (sim_vcpu_should_exit(v))
				sim_vcpu_exit(v);
			continue;
		case TDX_PAGE_SIZE_MISMATCH:
			sim_count(&s->stats, SIM_C_ACCEPT_SIZE_MISMATCH, 1);
			return -EAGAIN;
		case TDX_PAGE_ALREADY_ACCEPTED:
			sim_count(&s->stats, SIM_C_ACCEPT_ALREADY, 1);
			sim_violation(&s->report, SIM_V_ACCEPT, st, gfn,
				      (int)v->id,
				      "level %d ACCEPT of a page the guest "
				      "never accepted: already MAPPED at level "
				      "%d (a private mapping outlived a "
				      "conversion or slot deletion)",
				      level, err.level);
			return 0;
		case TDX_SIM_TD_EXIT_EPT_VIOLATION:
			break;
		default:
			sim_violation(&s->report, SIM_V_ACCEPT, st, gfn,
				      (int)v->id, "level %d ACCEPT failed: %s",
				      level, tdx_status_name(st));
			return -EINVAL;
		}

		/* TD exit: the host maps the page at the ACCEPT level. */
		sim_count(&s->stats, SIM_C_ACCEPT_EXIT, 1);
		sim_vcpu_exit(v);
		ret = sim_host_fault(s, v->tdp, (int)v->id, gfn, true, level);
		if (ret == TDP_FAULT_SPURIOUS &&
		    ++spurious > ACCEPT_MAX_SPURIOUS) {
			sim_violation(&s->report, SIM_V_LIVELOCK, 0, gfn,
				      (int)v->id,
				      "level %d ACCEPT exits again and again "
				      "(walk stops at level %d, %s) but the "
				      "host's fault is spurious", level,
				      err.level, sept_state_name(err.state));
			return -EIO;
		}
		if (ret == TDP_FAULT_FIXED)
			spurious = 0;
		else if (ret == TDP_FAULT_RETRY)
			sim_count(&s->stats, SIM_C_RETRY_REENTRY, 1);
		else if (ret < 0 && ret != SIM_ERR_INJECTED) {
			report_fault_error(v, gfn, ret, "ACCEPT");
			return ret;
		}
	}
	sim_violation(&s->report, SIM_V_LIVELOCK, 0, gfn, (int)v->id,
		      "level %d ACCEPT did not complete", level);
	return -EIO;
}

/* Accept one page of @level at *@gfn if the range allows it (the step
 * of the fallback loop). */
static int try_accept_one(struct sim_vcpu *v, tdp_gfn_t *gfn, tdp_gfn_t end,
			  int level)
{
	struct sim_guest *g = guest_of(v);
	uint64_t pages = tdp_level_pages(level);
	uint64_t page;
	int ret;

	if ((*gfn & (pages - 1)) || end - *gfn < pages)
		return -EINVAL;
	ret = accept_page(v, *gfn, level);
	if (ret)
		return ret;
	/* At most a region: the pages are consecutive in the arrays. */
	page = page_of(g, *gfn);
	for (uint64_t i = 0; i < pages; i++) {
		g->state[page + i] = GUEST_PRIVATE_ACCEPTED;
		g->version[page + i] = 0;
		/* Mapped only now that the page is accepted. */
		__atomic_store_n(&g->pte[page + i], GUEST_PTE_PRIVATE,
				 __ATOMIC_RELEASE);
	}
	*gfn += pages;
	return 0;
}

/*
 * Accept [start, start + n), all private and not accepted, with the
 * region's lock held for write: 2 MiB where aligned, else 4 KiB.
 */
static int accept_range(struct sim_vcpu *v, tdp_gfn_t start, uint64_t n)
{
	struct sim *s = v->sim;
	tdp_gfn_t gfn = start, end = start + n;

	while (gfn < end) {
		int ret;

		if (!try_accept_one(v, &gfn, end, TDP_LEVEL_2M))
			continue;
		ret = try_accept_one(v, &gfn, end, TDP_LEVEL_4K);
		if (ret) {
			if (ret != -ESHUTDOWN)
				sim_violation(&s->report, SIM_V_ACCEPT, 0, gfn,
					      (int)v->id,
					      "4 KiB ACCEPT failed: %d", ret);
			return ret;
		}
	}
	return 0;
}

/* @region is one of the shared-hot regions (guest.h). */
static bool region_is_hot(const struct sim_guest *g, uint64_t region)
{
	for (unsigned int i = 0; i < g->nr_hot; i++)
		if (g->hot_region[i] == region)
			return true;
	return false;
}

/*
 * The guest converts or accepts huge region @region whole this time:
 * always a shared-hot one, so that it stays backed and mapped by 2 MiB
 * pages the host's bursts can demote and merge again; another one unless
 * split_pct says a run.
 */
static bool region_whole(struct sim_vcpu *v, uint64_t region)
{
	struct sim_guest *g = guest_of(v);

	if (!g->region_huge[region])
		return false;
	return region_is_hot(g, region) || !sim_rng_ppm(&v->rng, g->split_ppm);
}

/* Accept, before first use, the unit of memory @gfn belongs to. */
static int accept_lazily(struct sim_vcpu *v, tdp_gfn_t gfn)
{
	struct sim_guest *g = guest_of(v);
	uint64_t region = region_of(g, gfn);
	tdp_gfn_t start, end;
	int ret = 0;

	region_lock(v, region, true);
	/* A huge region is accepted whole (2 MiB ACCEPTs) unless split_pct
	 * says a run: its 4 KiB ACCEPTs then meet any 2 MiB PENDING page
	 * the host pre-faulted, and exit until the host demoted it. */
	if (region_whole(v, region)) {
		start = gfn & ~(SIM_REGION_PAGES - 1);
		end = start + SIM_REGION_PAGES;
	} else {
		start = gfn & ~(tdp_gfn_t)(g->accept_run - 1);
		end = start + g->accept_run;
	}
	/* Accept each run of pages the guest has not accepted yet. */
	for (tdp_gfn_t run = start; run < end && !ret;) {
		tdp_gfn_t stop = run;

		while (stop < end && g->state[page_of(g, stop)] ==
					     GUEST_PRIVATE_UNACCEPTED)
			stop++;
		if (stop > run)
			ret = accept_range(v, run, stop - run);
		run = stop > run ? stop : run + 1;
	}
	region_unlock(v, region);
	return ret;
}

/* ---- accesses ------------------------------------------------------------ */

/*
 * Check one access: the frame must be the page backing this GFN (else
 * the translation was stale: the page was freed or reused while still
 * mapped), and the data must be what the guest wrote last (else the
 * access read corrupted data).  Both are reported.  True if all is well.
 */
static bool check_access(struct sim_vcpu *v, tdp_gfn_t gfn, bool private,
			 const struct sim_access *acc, uint32_t expected)
{
	struct sim *s = v->sim;
	const char *alias = private ? "private" : "shared";
	uint32_t want_use = private ? HOST_PAGE_PRIVATE : HOST_PAGE_SHARED;
	uint64_t tag = acc->old_tag;
	bool ok = true;

	sim_count(&s->stats, SIM_C_CHECK_ACCESS, 1);
	if (acc->page_use != want_use || acc->page_gfn != gfn) {
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      (int)v->id,
			      "%s %s through %s translation to pfn %#" PRIx64
			      ", which is a %s page (gfn %#" PRIx64 ")",
			      alias, acc->write ? "write" : "read",
			      acc->tlb_hit ? "a TLB" : "a walked",
			      acc->pfn, host_page_use_name(acc->page_use),
			      acc->page_gfn);
		ok = false;
	} else if (acc->page_owner != s->owner ||
		   (private && acc->pamt.owner != s->owner)) {
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, gfn,
			      (int)v->id,
			      "%s access of TD %u reached pfn %#" PRIx64
			      ", a page of %s", alias, s->td, acc->pfn,
			      acc->page_owner ? "another TD" : "nobody");
		ok = false;
	} else if (private &&
		   (acc->pamt.type != PAMT_REG || acc->pamt.gfn != gfn)) {
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      (int)v->id,
			      "private access to pfn %#" PRIx64 " which the "
			      "PAMT does not give to this GFN (type %d, gfn %#"
			      PRIx64 ")", acc->pfn, (int)acc->pamt.type,
			      acc->pamt.gfn);
		ok = false;
	}
	if (tag != SIM_TAG(gfn, expected)) {
		const char *why = "data newer than written";

		if (tag == SIM_TAG_POISON)
			why = "a freed page";
		else if (SIM_TAG_GFN(tag) != gfn)
			why = "another GFN's data";
		else if (SIM_TAG_VERSION(tag) < expected)
			why = "stale data (a write was lost)";

		sim_violation(&s->report, SIM_V_CORRUPTION, 0, gfn, (int)v->id,
			      "%s %s found (gfn %#" PRIx64 ", version %" PRIu64
			      ") where (gfn %#" PRIx64 ", version %u) was "
			      "expected: %s", alias,
			      acc->write ? "write" : "read",
			      SIM_TAG_GFN(tag), SIM_TAG_VERSION(tag), gfn,
			      expected, why);
		ok = false;
	}
	return ok;
}

/* An EPT violation on a private GFN the guest accepted: a lost mapping. */
static void report_lost_private(struct sim_vcpu *v, tdp_gfn_t gfn,
				const struct sim_access *acc)
{
	struct sim *s = v->sim;

	sim_violation(&s->report, SIM_V_LOST_MAPPING, 0, gfn, (int)v->id,
		      "the guest accepted this page but the S-EPT walk stops "
		      "at level %d in state %s: the guest would touch an "
		      "unaccepted or unmapped page", acc->level,
		      sept_state_name(sept_entry_state(acc->stop_entry)));
}

/*
 * Translate and access one GFN with the locks held, taking EPT
 * violations to the host until the access goes through.  Returns true
 * if the access happened.
 */
static bool access_locked(struct sim_vcpu *v, tdp_gfn_t gfn, bool private,
			  struct sim_access *acc)
{
	struct sim *s = v->sim;
	tdp_gfn_t gpa_gfn = private ? gfn : gfn | SIM_SHARED_BIT;

	for (long tries = 0; tries < OP_MAX_TRIES; tries++) {
		enum sim_access_result res;
		int ret;

		if (sim_stop_requested(&s->run) || !sim_vcpu_enter(v))
			return false;
		res = sim_vcpu_access(v, gpa_gfn, acc);
		if (res == SIM_ACCESS_OK)
			return true;
		if (res == SIM_ACCESS_BAD_FRAME) {
			sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
				      gfn, (int)v->id,
				      "%s translation to frame %#" PRIx64
				      " that is not host memory",
				      private ? "private" : "shared", acc->pfn);
			return false;
		}
		if (res == SIM_ACCESS_MMIO) {
			sim_violation(&s->report, SIM_V_INCONSISTENT, 0, gfn,
				      (int)v->id,
				      "an MMIO SPTE (%#" PRIx64 ") maps guest RAM",
				      acc->stop_entry);
			return false;
		}
		if (private && acc->level > TDP_LEVEL_4K &&
		    (sept_entry_state(acc->stop_entry) == SEPT_BLOCKED ||
		     sept_entry_state(acc->stop_entry) == SEPT_NL_BLOCKED)) {
			/*
			 * A 2 MiB leaf blocked for a demote, or a table for
			 * a promote: on hardware an EPT violation the host
			 * answers by retrying (the mirror entry is frozen)
			 * until PAGE.DEMOTE or PAGE.PROMOTE is done.
			 * Removals of accepted pages never race accesses
			 * (the guest converts under its region lock).
			 */
			sim_vcpu_exit(v);
			sim_count(&s->stats, SIM_C_RETRY_BLOCKED_HUGE, 1);
			if (tries > 64)
				sched_yield();
			continue;
		}
		if (private) {
			report_lost_private(v, gfn, acc);
			return false;
		}
		sim_vcpu_exit(v);
		ret = sim_host_fault(s, v->tdp, (int)v->id, gpa_gfn, acc->write,
				     0);
		if (ret == TDP_FAULT_RETRY) {
			sim_count(&s->stats, SIM_C_RETRY_REENTRY, 1);
			if (tries > 64)
				sched_yield();
		} else if (ret < 0 && ret != SIM_ERR_INJECTED) {
			report_fault_error(v, gpa_gfn, ret, "access");
			return false;
		}
	}
	sim_violation(&s->report, SIM_V_LIVELOCK, 0, gfn, (int)v->id,
		      "shared access never got a mapping");
	return false;
}

int sim_guest_access(struct sim_vcpu *v, tdp_gfn_t gfn, bool write)
{
	struct sim_guest *g = guest_of(v);
	uint64_t region = region_of(g, gfn);
	uint64_t page = page_of(g, gfn);
	struct sim_access acc = { .write = write };
	enum guest_page_state state;
	uint32_t expected;
	int ret;

	region_lock(v, region, false);
	state = (enum guest_page_state)g->state[page];
	if (state == GUEST_PRIVATE_UNACCEPTED) {
		region_unlock(v, region);
		ret = accept_lazily(v, gfn);
		if (ret)
			return ret;
		region_lock(v, region, false);
		state = (enum guest_page_state)g->state[page];
		if (state == GUEST_PRIVATE_UNACCEPTED) {
			/* Converted or offlined meanwhile: try later. */
			region_unlock(v, region);
			return 0;
		}
	}
	stripe_lock(v, gfn);
	expected = g->version[page];
	acc.new_tag = SIM_TAG(gfn, (expected + 1) & SIM_TAG_VERSION_MASK);
	ret = -EIO;
	if (access_locked(v, gfn, state == GUEST_PRIVATE_ACCEPTED, &acc)) {
		check_access(v, gfn, state == GUEST_PRIVATE_ACCEPTED, &acc,
			     expected);
		if (g->image_untouched[page]) {
			/* check_access() compared it with the image. */
			g->image_untouched[page] = 0;
			sim_count(&v->sim->stats, SIM_C_CHECK_IMAGE, 1);
		}
		if (write)
			g->version[page] =
				(expected + 1) & SIM_TAG_VERSION_MASK;
		ret = 0;
	}
	pthread_mutex_unlock(stripe_of(g, gfn));
	region_unlock(v, region);
	return ret;
}

/* ---- conversions --------------------------------------------------------- */

/*
 * Set the guest's page-table entries of [gfn, gfn + n) (one region) to
 * @pte, with the guest's TLB shootdown after unmapping; @skip leaves
 * them alone (a guest that does not close its mapping).
 */
static void set_ptes(struct sim_vcpu *v, tdp_gfn_t gfn, uint64_t n,
		     enum guest_pte pte, bool skip)
{
	struct sim_guest *g = guest_of(v);
	uint64_t page = page_of(g, gfn);

	if (skip)
		return;
	for (uint64_t i = 0; i < n; i++)
		__atomic_store_n(&g->pte[page + i], (uint8_t)pte,
				 __ATOMIC_RELEASE);
	if (pte == GUEST_PTE_NOT_PRESENT) {
		/* Other vCPUs' accesses in flight end first. */
		sim_vcpu_exit(v);
		sim_vcpus_guest_tlb_barrier(v->sim);
	}
}

/* MapGPA of [gfn, gfn + n) with the region's lock held for write. */
static int convert_locked(struct sim_vcpu *v, tdp_gfn_t gfn, uint64_t n,
			  bool to_private)
{
	struct sim *s = v->sim;
	struct sim_guest *g = guest_of(v);
	uint64_t page;
	int ret;

	/* The window opens: the page leaves the guest's page table (and
	 * every vCPU's TLB) before it changes alias. */
	set_ptes(v, gfn, n, GUEST_PTE_NOT_PRESENT,
		 s->cfg.break_conversion_window && !to_private);
	/* TDVMCALL<MapGPA>: a TD exit; the host converts and zaps. */
	sim_vcpu_exit(v);
	ret = sim_host_map_gpa(s, gfn, n, to_private);
	if (ret)
		return ret;
	if (s->cfg.break_conversion_window && to_private)
		/* Mapped private before the ACCEPT. */
		set_ptes(v, gfn, n, GUEST_PTE_PRIVATE, false);
	if (s->cfg.window_hook)
		s->cfg.window_hook(s, gfn, n, to_private, s->cfg.wrap_arg);
	sim_count(&s->stats, to_private ? SIM_C_CONV_TO_PRIVATE
					: SIM_C_CONV_TO_SHARED, 1);
	sim_count(&s->stats, to_private ? SIM_C_CONV_TO_PRIVATE_PAGES
					: SIM_C_CONV_TO_SHARED_PAGES, n);
	/* Within one region: the pages are consecutive in the arrays. */
	page = page_of(g, gfn);
	for (uint64_t i = 0; i < n; i++) {
		g->state[page + i] = to_private ? GUEST_PRIVATE_UNACCEPTED
						: GUEST_SHARED;
		g->version[page + i] = 0;
		g->image_untouched[page + i] = 0;
	}
	/* The window closes: shared pages are mapped at once, private ones
	 * as they are accepted. */
	if (!to_private)
		set_ptes(v, gfn, n, GUEST_PTE_SHARED, false);
	return to_private ? accept_range(v, gfn, n) : 0;
}

int sim_guest_convert(struct sim_vcpu *v, tdp_gfn_t gfn, uint64_t n,
		      bool to_private)
{
	uint64_t region = region_of(guest_of(v), gfn);
	int ret;

	if (!n || region == SIM_NO_REGION ||
	    (gfn + n - 1) / SIM_REGION_PAGES != gfn / SIM_REGION_PAGES)
		return -EINVAL;
	region_lock(v, region, true);
	ret = convert_locked(v, gfn, n, to_private);
	region_unlock(v, region);
	return ret;
}

/* Convert a random run of one region to the other alias. */
static void convert_random(struct sim_vcpu *v, uint64_t region)
{
	struct sim_guest *g = guest_of(v);
	tdp_gfn_t base = sim_layout_region_gfn(g->layout, region);
	tdp_gfn_t start, end;
	bool shared;

	region_lock(v, region, true);
	/* Huge regions convert whole unless split_pct says a run; runs of
	 * 1..SMALL_RUN pages at any offset split a 2 MiB private page (the
	 * zap demotes it). */
	if (region_whole(v, region)) {
		start = base;
		end = base + SIM_REGION_PAGES;
	} else {
		start = base + sim_rng_below(&v->rng, SIM_REGION_PAGES);
		end = start + 1 + sim_rng_below(&v->rng, SMALL_RUN);
		if (end > base + SIM_REGION_PAGES)
			end = base + SIM_REGION_PAGES;
	}
	/* The run ends where the page state class changes. */
	shared = g->state[page_of(g, start)] == GUEST_SHARED;
	for (tdp_gfn_t gfn = start + 1; gfn < end; gfn++) {
		if ((g->state[page_of(g, gfn)] == GUEST_SHARED) != shared) {
			end = gfn;
			break;
		}
	}
	convert_locked(v, start, end - start, shared);
	region_unlock(v, region);
}

/* ---- stray reads (load_unaligned_zeropad) -------------------------------- */

enum sim_access_result sim_guest_stray_read(struct sim_vcpu *v, tdp_gfn_t gfn)
{
	struct sim *s = v->sim;
	struct sim_guest *g = guest_of(v);
	struct sim_access acc = { .guest_pte = &g->pte[page_of(g, gfn)] };
	enum sim_access_result res;
	const char *alias;
	int state;

	if (!sim_vcpu_enter(v))
		return SIM_ACCESS_GUEST_PF;
	res = sim_vcpu_access(v, gfn, &acc);
	sim_count(&s->stats, SIM_C_STRAY_READS, 1);
	alias = acc.pte_seen == GUEST_PTE_SHARED ? "shared" : "private";
	switch (res) {
	case SIM_ACCESS_GUEST_PF:
		/* The #PF fixup zero-pads the read: clean. */
		sim_count(&s->stats, SIM_C_STRAY_NOT_PRESENT, 1);
		break;
	case SIM_ACCESS_OK:
		if (acc.page_use != (acc.pte_seen == GUEST_PTE_SHARED
					     ? HOST_PAGE_SHARED
					     : HOST_PAGE_PRIVATE) ||
		    acc.page_gfn != gfn)
			sim_violation(&s->report, SIM_V_CONVERSION, 0, gfn,
				      (int)v->id,
				      "stray read through the %s alias reached "
				      "a %s page (gfn %#" PRIx64 "): the wrong "
				      "alias", alias,
				      host_page_use_name(acc.page_use),
				      acc.page_gfn);
		break;
	case SIM_ACCESS_EPT_VIOLATION:
		state = sept_entry_state(acc.stop_entry);
		sim_count(&s->stats, SIM_C_STRAY_FAULTED, 1);
		/* Shared: the host maps it.  Private: a blocked entry is a
		 * demote or promote in flight; anything else means the guest
		 * maps a page that is not (or no longer) accepted. */
		if (acc.pte_seen == GUEST_PTE_PRIVATE &&
		    state != SEPT_BLOCKED && state != SEPT_NL_BLOCKED &&
		    state != SEPT_PENDING_BLOCKED)
			sim_violation(&s->report, SIM_V_CONVERSION, 0, gfn,
				      (int)v->id,
				      "stray read through the private alias "
				      "touched an unaccepted page (S-EPT level "
				      "%d %s)", acc.level,
				      sept_state_name(state));
		break;
	default:
		sim_violation(&s->report, SIM_V_CONVERSION, 0, gfn, (int)v->id,
			      "stray read through the %s alias: access "
			      "result %d", alias, (int)res);
		break;
	}
	return res;
}

/* ---- the guest's workload ------------------------------------------------ */

static tdp_gfn_t pick_gfn(struct sim_vcpu *v)
{
	struct sim *s = v->sim;
	uint64_t region;
	tdp_gfn_t base;
	uint64_t x = sim_rng_next(&v->rng);

	if ((x & 0xff) == 0)
		v->home_region = sim_rng_below(&v->rng, s->nr_regions);
	region = (x >> 8) % 5 ? v->home_region
			      : sim_rng_below(&v->rng, s->nr_regions);
	/* Every vCPU visits the shared-hot regions too: its accesses,
	 * ACCEPTs and conversions there race the other vCPUs' and the
	 * host's bursts on the same 2 MiB entries. */
	if (s->guest.nr_hot && (x >> 40) % SIM_GUEST_HOT_EVERY == 0)
		region = s->guest.hot_region[(x >> 48) % s->guest.nr_hot];
	base = sim_layout_region_gfn(&s->layout, region);
	/* Half the accesses stay in a small window so the TLB hits. */
	if ((x >> 16) & 1)
		return base +
		       (((x >> 20) % 16) + v->id * 16) % SIM_REGION_PAGES;
	return base + (x >> 20) % SIM_REGION_PAGES;
}

void sim_guest_step(struct sim_vcpu *v)
{
	struct sim_guest *g = guest_of(v);
	tdp_gfn_t gfn = pick_gfn(v);

	/* A private shared-hot region converts to shared a 16th as
	 * often, and back at the usual rate: it stays private and mapped
	 * 2 MiB most of the time, for the host's bursts to demote and
	 * merge again. */
	if (sim_rng_ppm(&v->rng, g->convert_ppm) &&
	    (!region_is_hot(g, region_of(g, gfn)) ||
	     g->state[page_of(g, gfn)] == GUEST_SHARED ||
	     sim_rng_below(&v->rng, HOT_CONVERT_EVERY) == 0)) {
		convert_random(v, region_of(g, gfn));
		return;
	}
	/* One in 128 is a stray read into the next page. */
	if ((gfn & 127) == 126 && sim_layout_contains(g->layout, gfn + 1)) {
		sim_guest_stray_read(v, gfn + 1);
		return;
	}
	/* One operation in 64 touches a page of the MMIO window. */
	if (v->sim->mmio.nr && (gfn & 63) == 63) {
		sim_guest_mmio_access(v, (unsigned int)(gfn / 64 % v->sim->mmio.nr),
				      sim_rng_below(&v->rng, 100) < 40);
		return;
	}
	sim_guest_access(v, gfn, sim_rng_below(&v->rng, 100) < 40);
}

/* ---- slot deletion ------------------------------------------------------- */

void sim_guest_offline(struct sim *s, uint64_t first, uint64_t nr)
{
	for (uint64_t r = first; r < first + nr; r++) {
		pthread_rwlock_wrlock(&s->guest.region_lock[r]);
		for (uint64_t i = 0; i < SIM_REGION_PAGES; i++)
			__atomic_store_n(&s->guest.pte[r * SIM_REGION_PAGES + i],
					 GUEST_PTE_NOT_PRESENT,
					 __ATOMIC_RELEASE);
	}
	sim_vcpus_guest_tlb_barrier(s);
}

void sim_guest_online(struct sim *s, uint64_t first, uint64_t nr)
{
	struct sim_guest *g = &s->guest;

	for (uint64_t r = first; r < first + nr; r++) {
		for (uint64_t i = 0; i < SIM_REGION_PAGES; i++) {
			g->state[r * SIM_REGION_PAGES + i] =
				GUEST_PRIVATE_UNACCEPTED;
			g->version[r * SIM_REGION_PAGES + i] = 0;
			g->image_untouched[r * SIM_REGION_PAGES + i] = 0;
		}
		pthread_rwlock_unlock(&g->region_lock[r]);
	}
}
