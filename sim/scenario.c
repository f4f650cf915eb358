/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator's lifetime: creation, the threaded scenario with its
 * stop-the-world checks, TD teardown with the final checks, and the
 * summary (table and JSON).  Also the step-by-step interface of
 * scenario.h.
 */
#include "scenario.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void sim_config_default(struct sim_config *cfg)
{
	*cfg = (struct sim_config){
		.nr_vcpus       = 4,
		.guest_bytes    = 128ULL << 20,
		.private_pct    = 75,
		.convert_pct    = 0.2,
		.split_pct      = 50,
		.event_rate     = 100,
		.busy_pct       = 1,
		.fail_pct       = 0.2,
		.huge           = true,
		.duration       = 10,
		.seed           = 1,
		.check_interval = 2,
		.progress       = true,
		.print_limit    = 20,
	};
}

/* ---- creation ------------------------------------------------------------ */

static int check_config(const struct sim_config *cfg)
{
	uint64_t gfns = cfg->guest_bytes >> TDP_PAGE_SHIFT;
	const struct sim_trace *t = cfg->trace;

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > SIM_MAX_VCPUS)
		return -EINVAL;
	if (t) {
		/* A replay is the trace alone, in memory below the shared
		 * bit. */
		if (!t->nr_regions || cfg->convert_pct || cfg->event_rate ||
		    t->region_gfn[t->nr_regions - 1] + SIM_REGION_PAGES >
			    SIM_SHARED_BIT)
			return -EINVAL;
	} else if (!cfg->guest_bytes || cfg->guest_bytes % (2ULL << 20) ||
		   gfns > SIM_SHARED_BIT) {
		return -EINVAL;
	}
	if (cfg->private_pct < 0 || cfg->private_pct > 100 ||
	    cfg->convert_pct < 0 || cfg->convert_pct > 100 ||
	    cfg->busy_pct < 0 || cfg->busy_pct > 100 || cfg->fail_pct < 0 ||
	    cfg->fail_pct > 100 || cfg->event_rate < 0 || cfg->duration < 0 ||
	    cfg->check_interval < 0)
		return -EINVAL;
	return 0;
}

int sim_create(const struct sim_config *cfg, struct sim **out)
{
	struct tdx_module_config mcfg;
	struct tdp_mmu_config ecfg;
	struct sim *s;
	int ret;

	ret = check_config(cfg);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (cfg->trace) {
		sim_layout_init_sparse(&s->layout, cfg->trace->region_gfn,
				       cfg->trace->nr_regions);
		s->cfg.guest_bytes = s->layout.nr_pages << TDP_PAGE_SHIFT;
	} else {
		uint64_t pages = cfg->guest_bytes >> TDP_PAGE_SHIFT;

		sim_layout_init_contiguous(&s->layout,
					   pages / SIM_REGION_PAGES);
	}
	s->nr_gfns = s->layout.nr_pages;
	s->nr_regions = s->layout.nr_regions;
	sim_report_init(&s->report, cfg->print_limit);
	sim_run_state_init(&s->run);
	sim_rng_seed(&s->main_rng, cfg->seed, 0);
	sim_rng_seed(&s->event_rng, cfg->seed, 2);
	sim_rng_current = &s->main_rng;
	tdp_thread_register();

	/* Room for every GFN's private page, S-EPT pages and migrations;
	 * shared pages prefer the non-TDX range. */
	ret = host_mem_init(&s->mem,
			    s->nr_gfns + s->nr_gfns / 4 + 16 * HOST_CHUNK_PAGES,
			    s->nr_gfns / 2 + 8 * HOST_CHUNK_PAGES);
	if (ret)
		goto err;

	mcfg = (struct tdx_module_config){
		.mem        = &s->mem,
		.root_level = SIM_ROOT_LEVEL,
		.shared_bit = SIM_SHARED_BIT,
		.nr_vcpus   = cfg->nr_vcpus,
		.busy_ppm   = sim_pct_to_ppm(cfg->busy_pct),
		.fail_ppm   = sim_pct_to_ppm(cfg->fail_pct),
		.report     = &s->report,
		.stats      = &s->stats,
	};
	ret = tdx_module_create(&mcfg, &s->module);
	if (ret)
		goto err;

	sim_backend_init(s, &s->engine_backend);
	if (cfg->wrap_backend)
		cfg->wrap_backend(&s->engine_backend, cfg->wrap_arg);
	sim_host_ops_init(s, &s->engine_host_ops);
	if (cfg->wrap_host_ops)
		cfg->wrap_host_ops(&s->engine_host_ops, cfg->wrap_arg);
	ecfg = (struct tdp_mmu_config){
		.root_level  = SIM_ROOT_LEVEL,
		.direct_bits = SIM_SHARED_BIT,
		.host        = s->engine_host_ops,
		.backend     = &s->engine_backend,
	};
	ret = tdp_mmu_create(&ecfg, &s->mmu);
	if (ret)
		goto err;

	ret = sim_host_init(s);
	if (!ret)
		ret = sim_guest_init(s);
	if (!ret)
		ret = sim_vcpus_init(s, cfg->nr_vcpus);
	if (!ret && cfg->trace)
		ret = sim_replay_create(s, &s->replay);
	if (ret)
		goto err;
	*out = s;
	return 0;
err:
	sim_destroy(s);
	return ret;
}

/* ---- threads ------------------------------------------------------------- */

/*
 * A vCPU's pause point: when a pause is requested, leave guest mode and
 * wait at pause_point().  Returns true if a pause was requested.
 */
static bool vcpu_pause_point(struct sim_vcpu *v)
{
	struct sim *s = v->sim;

	if (!sim_pause_requested(&s->run))
		return false;
	sim_vcpu_exit(v);
	sim_pause_point(&s->run);
	return true;
}

static void *vcpu_main(void *arg)
{
	struct sim_vcpu *v = arg;
	struct sim *s = v->sim;

	tdp_thread_register();
	sim_vcpu_attach(v);
	while (!sim_stop_requested(&s->run)) {
		if (vcpu_pause_point(v))
			continue;
		if (sim_vcpu_should_exit(v))
			sim_vcpu_exit(v);
		if (!sim_vcpu_enter(v))
			break;
		sim_guest_step(v);
	}
	sim_vcpu_exit(v);
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

/*
 * A vCPU that replays its share of a trace (trace_replay.h), then finishes.
 * Waiting for the feeder happens outside guest mode, and each wait is
 * short, so a pause request is seen within milliseconds.
 */
static void *replay_vcpu_main(void *arg)
{
	struct sim_vcpu *v = arg;
	struct sim *s = v->sim;

	tdp_thread_register();
	sim_vcpu_attach(v);
	while (!sim_stop_requested(&s->run)) {
		tdp_gfn_t gfn;
		enum sim_replay_next next;

		if (vcpu_pause_point(v))
			continue;
		next = sim_replay_next(s->replay, v->id, &gfn);
		if (next == SIM_REPLAY_DONE)
			break;
		if (next == SIM_REPLAY_WAIT) {
			sim_vcpu_exit(v);
			sim_replay_wait(s->replay, v->id);
			continue;
		}
		if (sim_vcpu_should_exit(v))
			sim_vcpu_exit(v);
		if (!sim_vcpu_enter(v))
			break;
		sim_replay_access(v, gfn);
	}
	sim_vcpu_exit(v);
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

/* One random host event; ranges stay inside guest memory. */
static void run_host_event(struct sim *s, struct sim_rng *rng)
{
	uint64_t kind = sim_rng_below(rng, 100);
	tdp_gfn_t gfn = sim_layout_gfn(&s->layout,
				       sim_rng_below(rng, s->nr_gfns));
	tdp_gfn_t end = sim_layout_run_end(&s->layout, gfn);
	uint64_t n;

	if (kind < 50) {
		n = 1 + sim_rng_below(rng, 64);
		if (gfn + n > end)
			n = end - gfn;
		sim_host_unmap_shared(s, gfn, n);
	} else if (kind < 60) {
		/* A recovery pass over all guest memory, region by region. */
		for (uint64_t r = 0; r < s->nr_regions && !sim_stop_requested(&s->run); r++)
			sim_host_recover(s, sim_layout_region_gfn(&s->layout, r),
					 SIM_REGION_PAGES);
	} else if (kind < 85) {
		n = 1 + sim_rng_below(rng, 16);
		if (gfn + n > end)
			n = end - gfn;
		sim_host_prefault(s, gfn, n,
				  sim_rng_below(rng, 2) ? TDP_LEVEL_4K : 0);
	} else {
		uint64_t region = sim_layout_region(&s->layout, gfn);

		sim_guest_offline(s, region, 1);
		sim_host_slot_delete(s, sim_layout_region_gfn(&s->layout,
							      region),
				     SIM_REGION_PAGES);
		sim_guest_online(s, region, 1);
	}
}

/* Host events at cfg.event_rate per second, exponentially spaced. */
static void *event_main(void *arg)
{
	struct sim *s = arg;
	double next;

	tdp_thread_register();
	sim_rng_current = &s->event_rng;
	next = sim_now();
	while (!sim_stop_requested(&s->run)) {
		double now;

		sim_pause_point(&s->run);
		now = sim_now();
		if (now < next) {
			double wait = next - now;

			usleep((useconds_t)(fmin(wait, 0.005) * 1e6) + 1);
			continue;
		}
		next += -log(1.0 - (double)sim_rng_below(&s->event_rng,
							  1000000) /
					   1e6) /
			s->cfg.event_rate;
		if (next < now - 1.0)
			next = now;
		run_host_event(s, &s->event_rng);
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

static void print_progress(struct sim *s, bool final)
{
	struct sim_stats st;
	bool tty = isatty(STDERR_FILENO);
	char when[64];

	sim_stats_snapshot(&s->stats, &st);
	if (s->cfg.trace)
		snprintf(when, sizeof(when), "%5.1fs  replayed %" PRIu64
			 "/%" PRIu64, sim_now() - s->start_time,
			 st.c[SIM_C_REPLAY_PRIVATE] + st.c[SIM_C_REPLAY_SHARED],
			 s->cfg.trace->accesses);
	else
		snprintf(when, sizeof(when), "%5.1fs/%.0fs",
			 sim_now() - s->start_time, s->cfg.duration);
	fprintf(stderr,
		"%stdpsim: %s  faults %" PRIu64 "  accepts %" PRIu64
		"  conversions %" PRIu64 "  zaps %" PRIu64 "  flushes %" PRIu64
		"  checks %" PRIu64 "  violations %" PRIu64 "%s",
		tty ? "\r" : "", when, sim_faults_total(&st),
		st.c[SIM_C_ACCEPT_2M] + st.c[SIM_C_ACCEPT_4K],
		st.c[SIM_C_CONV_TO_SHARED] + st.c[SIM_C_CONV_TO_PRIVATE],
		st.c[SIM_C_ZAP_TO_SHARED] + st.c[SIM_C_ZAP_TO_PRIVATE] +
			st.c[SIM_C_ZAP_HOST_UNMAP] +
			st.c[SIM_C_ZAP_SLOT_DELETED],
		st.c[SIM_C_FLUSH_RANGE] + st.c[SIM_C_FLUSH_ALL],
		st.c[SIM_C_CHECK_ACCESS] + st.c[SIM_C_CHECK_QUIESCE_PAGES],
		sim_report_total(&s->report),
		tty && !final ? "\033[K" : "\n");
	fflush(stderr);
}

/* The page tables at the end of the workload, for the summary. */
static void snapshot_tables(struct sim *s)
{
	if (tdp_mmu_get_stats(s->mmu, &s->tables_at_end))
		return;
	s->sept_pages_at_end = tdx_sept_pages(s->module);
	s->have_tables_at_end = true;
}

uint64_t sim_run_workload(struct sim *s)
{
	void *(*vcpu_fn)(void *) = s->replay ? replay_vcpu_main : vcpu_main;
	double deadline, next_progress, next_check;
	unsigned int started = 0;

	s->start_time = sim_now();
	/* A replay lasts as long as the trace. */
	deadline = s->replay ? INFINITY : s->start_time + s->cfg.duration;
	sim_workers_set_running(&s->run, s->vcpus.nr + (s->cfg.event_rate > 0));
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		if (pthread_create(&s->vcpus.v[i].thread, NULL, vcpu_fn,
				   &s->vcpus.v[i]))
			break;
		started++;
	}
	if (s->cfg.event_rate > 0 &&
	    !pthread_create(&s->event_thread, NULL, event_main, s))
		s->event_thread_started = true;
	sim_workers_set_running(&s->run, started + s->event_thread_started);
	if (started < s->vcpus.nr ||
	    (s->replay && sim_replay_start(s->replay)))
		sim_stop_request(&s->run);

	next_progress = s->start_time + 1.0;
	next_check = s->cfg.check_interval > 0
			     ? s->start_time + s->cfg.check_interval
			     : INFINITY;
	while (!sim_stop_requested(&s->run) && sim_now() < deadline) {
		double now;

		if (sim_wait_workers(&s->run, 0.01))
			break;
		now = sim_now();
		if (s->cfg.progress && now >= next_progress) {
			print_progress(s, false);
			next_progress += 1.0;
		}
		if (now >= next_check && now + 0.2 < deadline) {
			sim_pause_workers(&s->run);
			sim_check_quiesced(s);
			sim_resume_workers(&s->run);
			next_check = sim_now() + s->cfg.check_interval;
		}
	}
	sim_stop_request(&s->run);
	sim_resume_workers(&s->run);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(s->vcpus.v[i].thread, NULL);
	if (s->event_thread_started)
		pthread_join(s->event_thread, NULL);
	if (s->replay)
		sim_replay_join(s->replay);
	s->elapsed = sim_now() - s->start_time;
	if (s->cfg.progress)
		print_progress(s, true);
	if (!s->engine_dead && !tdp_mmu_is_dead(s->mmu)) {
		sim_check_quiesced(s);
		snapshot_tables(s);
		/* Only a replay that ran to its end maps every touched page. */
		if (s->replay && !sim_replay_error(s->replay) &&
		    started == s->vcpus.nr)
			sim_replay_check(s);
	}
	return sim_report_total(&s->report);
}

uint64_t sim_run(struct sim *s)
{
	sim_run_workload(s);
	sim_finish(s);
	return sim_report_total(&s->report);
}

/* ---- stop-the-world checks ----------------------------------------------- */

struct quiesce_tally {
	uint64_t mirror_leaves[TDP_MAX_LEVEL + 1];
	uint64_t direct_leaves[TDP_MAX_LEVEL + 1];
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
			t->mirror_leaves[mlevel]++;
	}
	switch (gs) {
	case GUEST_PRIVATE_ACCEPTED: {
		tdp_pfn_t pfn = sept_entry_pfn(entry) +
				(gfn & (tdp_level_pages(slevel) - 1));
		struct host_page *p = host_mem_page(&s->mem, pfn);
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
			t->direct_leaves[level]++;
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
		struct host_page *p = host_mem_page(&s->mem, backing);

		if (backing ? host_page_tag(p) != want : version != 0)
			QV(s, SIM_V_CORRUPTION, gfn,
			   "shared page %#" PRIx64 " holds %#" PRIx64
			   ", the guest expects %#" PRIx64, backing,
			   p ? host_page_tag(p) : 0, want);
	}
}

/* The backing of @gfn belongs to it. */
static void check_backing(struct sim *s, tdp_gfn_t gfn,
			  struct quiesce_tally *t)
{
	for (int private = 0; private < 2; private++) {
		tdp_pfn_t pfn = private ? sim_host_private_pfn(s, gfn)
					: sim_host_shared_pfn(s, gfn);
		struct host_page *p = host_mem_page(&s->mem, pfn);
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
		if (private && tdx_pamt_get(s->module, pfn).type == PAMT_REG)
			t->reg_pages++;
	}
}

uint64_t sim_check_quiesced(struct sim *s)
{
	uint64_t before = sim_report_total(&s->report);
	struct quiesce_tally t = { 0 };
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
	}
	sim_count(&s->stats, SIM_C_CHECK_QUIESCE_PAGES, s->nr_gfns);

	/* Counts: engine statistics, module and host memory agree. */
	tdp_mmu_get_stats(s->mmu, &st);
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_2M; level++) {
		if (st.leaves[TDP_ROOT_MIRROR][level] != t.mirror_leaves[level])
			QV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
			   "engine counts %" PRIu64 " mirror leaves at level "
			   "%d, the mirror holds %" PRIu64,
			   st.leaves[TDP_ROOT_MIRROR][level], level,
			   t.mirror_leaves[level]);
		if (st.leaves[TDP_ROOT_DIRECT][level] != t.direct_leaves[level])
			QV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
			   "engine counts %" PRIu64 " direct leaves at level "
			   "%d, the direct tree holds %" PRIu64,
			   st.leaves[TDP_ROOT_DIRECT][level], level,
			   t.direct_leaves[level]);
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
	if (host_mem_in_use(&s->mem, HOST_PAGE_PRIVATE) != t.private_backing ||
	    host_mem_in_use(&s->mem, HOST_PAGE_SHARED) != t.shared_backing ||
	    (int64_t)host_mem_in_use(&s->mem, HOST_PAGE_SEPT) !=
		    tdx_sept_pages(s->module))
		QV(s, SIM_V_PAGE_OWNERSHIP, SIM_NO_GFN,
		   "host memory in use (private %" PRIu64 ", shared %" PRIu64
		   ", S-EPT %" PRIu64 ") differs from the backing (%" PRIu64
		   ", %" PRIu64 ") and the S-EPT (%" PRId64 "): pages leaked",
		   host_mem_in_use(&s->mem, HOST_PAGE_PRIVATE),
		   host_mem_in_use(&s->mem, HOST_PAGE_SHARED),
		   host_mem_in_use(&s->mem, HOST_PAGE_SEPT), t.private_backing,
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
	const struct sim_stats *c = &s->stats;
	uint64_t fixed = c->c[SIM_C_FAULT_PRIVATE_FIXED] +
			 c->c[SIM_C_FAULT_SHARED_FIXED];
	uint64_t spurious = c->c[SIM_C_FAULT_PRIVATE_SPURIOUS] +
			    c->c[SIM_C_FAULT_SHARED_SPURIOUS];
	uint64_t retried = c->c[SIM_C_FAULT_PRIVATE_RETRY] +
			   c->c[SIM_C_FAULT_SHARED_RETRY];
	uint64_t busy = 0, errors = 0;
	const enum sim_seamcall maps[] = { SIM_SC_SEPT_ADD, SIM_SC_PAGE_AUG_4K,
					   SIM_SC_PAGE_AUG_2M };

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

static void check_after_teardown(struct sim *s, const struct tdp_stats *st)
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
	if (tdx_td_child_count(s->module) || tdx_sept_pages(s->module))
		FV(s, SIM_V_TDX_ERROR, "the TD still owns %" PRId64
		   " pages (%" PRId64 " S-EPT pages): the engine did not "
		   "remove everything", tdx_td_child_count(s->module),
		   tdx_sept_pages(s->module));
	check_engine_counts(s, st);
}

static void check_host_memory_free(struct sim *s)
{
	sim_count(&s->stats, SIM_C_CHECK_FINAL, 1);
	for (int use = HOST_PAGE_SHARED; use < HOST_PAGE_RESERVED; use++)
		if (host_mem_in_use(&s->mem, use))
			FV(s, SIM_V_PAGE_OWNERSHIP,
			   "%" PRIu64 " host pages still in use as %s",
			   host_mem_in_use(&s->mem, use),
			   host_page_use_name((uint32_t)use));
}

void sim_finish(struct sim *s)
{
	int ret;

	if (s->finished || !s->mmu)
		return;
	s->finished = true;
	sim_stop_request(&s->run);
	sim_count(&s->stats, SIM_C_EVENT_TEARDOWN, 1);
	for (unsigned int i = 0; i < s->vcpus.nr; i++)
		sim_vcpu_exit(&s->vcpus.v[i]);
	sim_vcpus_destroy_contexts(s);
	tdp_vcpu_destroy(s->host.ctx);
	s->host.ctx = NULL;

	ret = tdp_mmu_teardown(s->mmu);
	tdp_mmu_get_stats(s->mmu, &s->engine_stats);
	s->engine_dead = tdp_mmu_is_dead(s->mmu);
	if (ret)
		FV(s, SIM_V_ENGINE_ERROR, "tdp_mmu_teardown failed: %d", ret);
	/* A dead MMU left private pages mapped: nothing is released then,
	 * as the kernel would leak them rather than reuse them. */
	if (s->engine_dead)
		return;
	check_after_teardown(s, &s->engine_stats);
	sim_host_release_all(s);
	if (tdx_module_teardown(s->module) == TDX_SUCCESS)
		check_host_memory_free(s);
}

void sim_destroy(struct sim *s)
{
	if (!s)
		return;
	if (s->mmu && !s->finished)
		sim_finish(s);
	sim_replay_destroy(s->replay);
	sim_vcpus_fini(s);
	sim_host_fini(s);
	sim_guest_fini(s);
	tdp_mmu_destroy(s->mmu);
	tdx_module_destroy(s->module);
	host_mem_destroy(&s->mem);
	sim_run_state_destroy(&s->run);
	sim_report_destroy(&s->report);
	if (sim_rng_current == &s->main_rng)
		sim_rng_current = NULL;
	free(s);
	tdp_thread_unregister();
}

/* ---- step-by-step interface ---------------------------------------------- */

static struct sim_vcpu *step_vcpu(struct sim *s, unsigned int vcpu)
{
	struct sim_vcpu *v = &s->vcpus.v[vcpu];

	sim_vcpu_attach(v);
	return v;
}

static void step_done(struct sim *s, struct sim_vcpu *v)
{
	sim_vcpu_exit(v);
	sim_vcpu_current = NULL;
	sim_rng_current = &s->main_rng;
}

int sim_step_access(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		    bool write)
{
	struct sim_vcpu *v = step_vcpu(s, vcpu);
	int ret = sim_guest_access(v, gfn, write);

	step_done(s, v);
	return ret;
}

int sim_step_convert(struct sim *s, unsigned int vcpu, tdp_gfn_t gfn,
		     uint64_t n, bool to_private)
{
	struct sim_vcpu *v = step_vcpu(s, vcpu);
	int ret = sim_guest_convert(v, gfn, n, to_private);

	step_done(s, v);
	return ret;
}

void sim_step_host_unmap(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_host_unmap_shared(s, gfn, n);
}

void sim_step_slot_delete(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	uint64_t first = sim_layout_region(&s->layout, gfn);
	uint64_t nr = (gfn + n - 1) / SIM_REGION_PAGES -
		      gfn / SIM_REGION_PAGES + 1;

	/* Whole regions without a hole: consecutive dense numbers. */
	assert(gfn + n <= sim_layout_run_end(&s->layout, gfn));
	sim_guest_offline(s, first, nr);
	sim_host_slot_delete(s, sim_layout_region_gfn(&s->layout, first),
			     nr * SIM_REGION_PAGES);
	sim_guest_online(s, first, nr);
}

void sim_step_prefault(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_host_prefault(s, gfn, n, TDP_LEVEL_4K);
}

void sim_step_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_host_recover(s, gfn, n);
}

enum guest_page_state sim_step_guest_state(struct sim *s, tdp_gfn_t gfn)
{
	return sim_guest_state(&s->guest, gfn);
}
