/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scenarios of a created simulation (see scenario.h): threaded, with
 * vCPU threads running the guest or replaying a trace, a host-event
 * thread, the progress line and the stop-the-world checks at every check
 * interval; or step by step, driven by a test.
 */
#include "scenario.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "consistency.h"
#include "lockcheck.h"
#include "racer.h"

/* Rounds of a burst on a shared-hot region (hot_region_burst()). */
#define HOT_BURST_ROUNDS 32
/* Rounds of each burst of the pre-fault thread, and its pause after
 * one (microseconds). */
#define HOT_THREAD_ROUNDS 8
#define HOT_THREAD_PAUSE_US 500
/* Tries of one pre-fault the engine answers with retry. */
#define HOT_PREFAULT_TRIES 64

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

/*
 * What a vCPU thread does next, outside guest mode: nothing to wait for
 * in the random scenario; in a replay the next access of its share of
 * the trace (trace_replay.h), which may not be queued yet.  Waiting for
 * the feeder happens outside guest mode, and each wait is short, so a
 * pause request is seen within milliseconds.
 */
enum vcpu_turn {
	VCPU_TURN_RUN,   /* enter guest mode and run one step */
	VCPU_TURN_AGAIN, /* nothing yet: look for a pause or a stop first */
	VCPU_TURN_DONE,  /* the vCPU's share of a trace is replayed */
};

static enum vcpu_turn vcpu_next_turn(struct sim_vcpu *v, tdp_gfn_t *gfn)
{
	struct sim *s = v->sim;

	if (!s->replay)
		return VCPU_TURN_RUN;
	switch (sim_replay_next(s->replay, v->id, gfn)) {
	case SIM_REPLAY_GOT:
		return VCPU_TURN_RUN;
	case SIM_REPLAY_WAIT:
		sim_vcpu_exit(v);
		sim_replay_wait(s->replay, v->id);
		return VCPU_TURN_AGAIN;
	case SIM_REPLAY_DONE:
		break;
	}
	return VCPU_TURN_DONE;
}

/*
 * A vCPU thread: the random guest's steps until the run stops, or its
 * share of a trace until it is replayed.
 */
static void *vcpu_main(void *arg)
{
	struct sim_vcpu *v = arg;
	struct sim *s = v->sim;

	tdp_thread_register();
	sim_vcpu_attach(v);
	/* The guest's first act: check what it was built from. */
	if (v->id == 0)
		sim_guest_check_measurement(v);
	while (!sim_stop_requested(&s->run)) {
		tdp_gfn_t gfn = 0;
		enum vcpu_turn turn;

		if (vcpu_pause_point(v))
			continue;
		turn = vcpu_next_turn(v, &gfn);
		if (turn == VCPU_TURN_DONE)
			break;
		if (turn == VCPU_TURN_AGAIN)
			continue;
		if (sim_vcpu_should_exit(v))
			sim_vcpu_exit(v);
		if (!sim_vcpu_enter(v))
			break;
		if (s->replay)
			sim_replay_access(v, gfn);
		else
			sim_guest_step(v);
	}
	sim_vcpu_exit(v);
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

/*
 * The private frames backing the region at @base are not one aligned
 * 2 MiB run (pages backed one by one, after a 4 KiB fault came first):
 * its leaves can never merge.  Unbacked pages do not count.
 */
static bool hot_backing_fragmented(struct sim *s, tdp_gfn_t base)
{
	tdp_pfn_t first = 0;

	for (uint64_t i = 0; i < SIM_REGION_PAGES; i++) {
		tdp_pfn_t pfn = sim_host_private_pfn(s, base + i);

		if (!pfn)
			continue;
		if (!first)
			first = pfn - i;
		if (pfn != first + i || (first & (SIM_REGION_PAGES - 1)))
			return true;
	}
	return false;
}

/*
 * A host pre-fault of @gfn at @level (0: as large as the backing allows)
 * through the engine vCPU context @ctx of the calling thread, repeated
 * while the engine answers retry, as sim_host_prefault() does.
 */
static void hot_prefault(struct sim *s, struct tdp_vcpu *ctx, tdp_gfn_t gfn,
			 int level)
{
	for (int tries = 0; tries < HOT_PREFAULT_TRIES; tries++) {
		int ret = sim_host_fault(s, ctx, SIM_NO_VCPU, gfn, true, level);

		if (ret != TDP_FAULT_RETRY && ret != SIM_ERR_INJECTED)
			break;
		sched_yield();
	}
}

/* Delete and re-add the memory slot of dense region @region. */
static void hot_region_reset(struct sim *s, uint64_t region)
{
	sim_count(&s->stats, SIM_C_HOT_RESETS, 1);
	sim_guest_offline(s, region, 1);
	sim_host_slot_delete(s, sim_layout_region_gfn(&s->layout, region),
			     SIM_REGION_PAGES);
	sim_guest_online(s, region, 1);
}

/*
 * A burst on one shared-hot region (guest.h): rounds that each move the
 * region one step along its 2 MiB life cycle, by what the private alias
 * maps at its first page (a lockless lookup; the guest and the other
 * host events change it meanwhile, which is the point):
 *   a 2 MiB leaf    -> a 4 KiB pre-fault of a random page, which the
 *                      engine answers with a demote from the fault path,
 *                      under mmu_lock held for read;
 *   nothing         -> a 2 MiB pre-fault: the host backs the region with
 *                      one 2 MiB run and the engine maps it whole, or,
 *                      below a table the mirror kept after a zap, maps
 *                      the first page;
 *   a 4 KiB leaf    -> a recovery, which merges the table's 512 leaves
 *                      into one 2 MiB leaf once the guest accepted them
 *                      all.  Leaves that can never merge (frames backed
 *                      one by one) make the host delete the slot and add
 *                      it again, once per burst, as another host event
 *                      does: the region starts over unbacked.
 * The vCPUs access, accept and convert the same region meanwhile and
 * fault everywhere else: a demote's RANGE.BLOCK meets their SEAMCALLs
 * and TDCALLs on the module's locks, and a demote that fails must leave
 * the 2 MiB leaf as it was.
 */
static void hot_region_burst(struct sim *s, struct tdp_vcpu *ctx,
			     struct sim_rng *rng, int rounds, bool may_reset)
{
	const struct sim_guest *g = &s->guest;
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	uint64_t region = g->hot_region[sim_rng_below(rng, g->nr_hot)];
	tdp_gfn_t base = sim_layout_region_gfn(&s->layout, region);
	bool reset = !may_reset;

	sim_count(&s->stats, SIM_C_EVENT_HOT_BURST, 1);
	for (int i = 0; i < rounds && !sim_stop_requested(&s->run); i++) {
		tdp_spte_t spte;
		int level;

		if (tdp_lookup(s->mmu, base, TDP_ALIAS_PRIVATE, &spte, &level))
			return;
		if (tdp_spte_is_present(fmt, spte) && level == TDP_LEVEL_2M) {
			sim_count(&s->stats, SIM_C_HOT_DEMOTE_TRIES, 1);
			hot_prefault(s, ctx, base + 1 + sim_rng_below(
						rng, SIM_REGION_PAGES - 1),
				     TDP_LEVEL_4K);
		} else if (!tdp_spte_is_present(fmt, spte)) {
			/* Shared now: the pre-fault does nothing. */
			hot_prefault(s, ctx, base, 0);
		} else {
			sim_host_recover(s, base, SIM_REGION_PAGES);
			if (!reset && hot_backing_fragmented(s, base)) {
				hot_region_reset(s, region);
				reset = true;
			}
		}
	}
}

/*
 * The rarer events that unlink direct tables whole or make tables of
 * 4 KiB leaves for recoveries to collapse, for the parked walker
 * (walker.h): an eager split of one region's shared huge leaves (2 in
 * 100 events), a zap of every shared mapping (1 in 100), or a region
 * prepared and promoted with the walker inside (5 in 100).  True if one
 * ran.
 */
static bool run_unlink_event(struct sim *s, struct sim_rng *rng)
{
	uint64_t kind = sim_rng_below(rng, 100);

	if (kind < 2)
		sim_host_split_huge(s, sim_layout_region_gfn(
					       &s->layout,
					       sim_rng_below(rng, s->nr_regions)),
				    SIM_REGION_PAGES);
	else if (kind < 3)
		sim_host_zap_all(s);
	else if (kind < 8)
		sim_walker_promote_event(s, rng);
	else
		return false;
	return true;
}

/* One random host event; ranges stay inside guest memory. */
static void run_host_event(struct sim *s, struct sim_rng *rng)
{
	uint64_t kind = sim_rng_below(rng, 100);
	tdp_gfn_t gfn = sim_layout_gfn(&s->layout,
				       sim_rng_below(rng, s->nr_gfns));
	tdp_gfn_t end = sim_layout_run_end(&s->layout, gfn);
	uint64_t n;

	if (run_unlink_event(s, rng))
		return;
	/* Dirty logging and recovery aim where a vCPU translated. */
	if (kind >= 65 && kind < 80)
		sim_vcpus_pick_shared_gfn(s, rng, &gfn);

	if (kind < 40) {
		n = 1 + sim_rng_below(rng, 64);
		if (gfn + n > end)
			n = end - gfn;
		sim_host_unmap_shared(s, gfn, n);
	} else if (kind < 43) {
		sim_host_invalidate_root(s);
	} else if (kind < 45) {
		if (s->mmio.nr)
			sim_mmio_flip(s, (unsigned int)sim_rng_below(
						 rng, s->mmio.nr));
	} else if (kind < 55) {
		/* A recovery pass over all guest memory, region by region. */
		for (uint64_t r = 0; r < s->nr_regions && !sim_stop_requested(&s->run); r++)
			sim_host_recover(s, sim_layout_region_gfn(&s->layout, r),
					 SIM_REGION_PAGES);
	} else if (kind < 65 && s->guest.nr_hot) {
		hot_region_burst(s, s->host.ctx, rng, HOT_BURST_ROUNDS, true);
	} else if (kind < 80) {
		/* Dirty logging and recovery of the shared memory the vCPUs
		 * are using, racing with their dirty bits. */
		if (kind < 74)
			sim_recover_shared_event(s, rng, gfn);
		else
			sim_dirty_log_event(s, rng, gfn);
	} else if (kind < 85) {
		n = 1 + sim_rng_below(rng, 16);
		if (gfn + n > end)
			n = end - gfn;
		sim_host_prefault(s, gfn, n,
				  sim_rng_below(rng, 2) ? TDP_LEVEL_4K : 0);
	} else {
		/* Chosen ahead: the parked walker waits in it. */
		uint64_t region = sim_walker_take_slot_region(s, rng);

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
		/* The first event hot-adds memory and recovers the shared
		 * regions of the boot layout; then at random. */
		if (!s->migration.boot_recovered)
			sim_recover_shared_boot(s);
		sim_host_hot_add(s);
		run_host_event(s, &s->event_rng);
	}
	sim_worker_done(&s->run);
	tdp_thread_unregister();
	return NULL;
}

/*
 * The host's pre-fault thread (KVM_PRE_FAULT_MEMORY from a VMM thread of
 * its own): short bursts on the shared-hot regions with its own engine
 * vCPU context, concurrently with the vCPUs' faults and the event
 * thread's bursts, so that two hosts threads' demotes, AUGs and
 * recoveries meet on the same 2 MiB regions and the module's S-EPT
 * locks.  No slot resets: those are the event thread's.
 */
static void *hot_main(void *arg)
{
	struct sim *s = arg;
	struct tdp_vcpu *ctx = NULL;

	tdp_thread_register();
	sim_rng_current = &s->hot_rng;
	if (tdp_vcpu_create(s->mmu, &ctx)) {
		sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, SIM_NO_GFN,
			      SIM_NO_VCPU, "tdp_vcpu_create for the pre-fault "
			      "thread failed");
		ctx = NULL;
	}
	while (ctx && !sim_stop_requested(&s->run)) {
		sim_pause_point(&s->run);
		hot_region_burst(s, ctx, &s->hot_rng, HOT_THREAD_ROUNDS, false);
		usleep(HOT_THREAD_PAUSE_US);
	}
	tdp_vcpu_destroy(ctx);
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
	double deadline, next_progress, next_check;
	unsigned int started = 0;

	s->start_time = sim_now();
	/* A replay lasts as long as the trace. */
	deadline = s->replay ? INFINITY : s->start_time + s->cfg.duration;
	bool hot = s->cfg.event_rate > 0 && s->guest.nr_hot && !s->replay;

	sim_workers_set_running(&s->run, s->vcpus.nr + (s->cfg.event_rate > 0) +
					 hot + s->migration.enabled +
					 (!s->replay && s->cfg.event_rate > 0) +
					 (!s->replay && s->cfg.lock_check_us > 0) +
					 (!s->replay && s->cfg.event_rate > 0));
	for (unsigned int i = 0; i < s->vcpus.nr; i++) {
		if (pthread_create(&s->vcpus.v[i].thread, NULL, vcpu_main,
				   &s->vcpus.v[i]))
			break;
		started++;
	}
	if (s->cfg.event_rate > 0 &&
	    !pthread_create(&s->event_thread, NULL, event_main, s))
		s->event_thread_started = true;
	if (hot && !pthread_create(&s->hot_thread, NULL, hot_main, s))
		s->hot_thread_started = true;
	if (sim_migrate_start(s))
		sim_stop_request(&s->run);
	sim_walker_start(s);
	sim_lockcheck_start(s);
	sim_racer_start(s);
	sim_workers_set_running(&s->run, started + s->event_thread_started +
					 s->hot_thread_started +
					 s->migration.thread_started +
					 s->walker.started + s->lockcheck_started +
					 s->racer.started);
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
	if (s->hot_thread_started)
		pthread_join(s->hot_thread, NULL);
	sim_migrate_join(s);
	sim_walker_join(s);
	sim_lockcheck_join(s);
	sim_racer_join(s);
	if (s->replay)
		sim_replay_join(s->replay);
	s->elapsed = sim_now() - s->start_time;
	if (s->cfg.progress)
		print_progress(s, true);
	if (!s->engine_dead && !tdp_mmu_is_dead(s->mmu)) {
		/* Stop and copy, then the destination must be the source. */
		sim_migrate_finish(s);
		sim_check_quiesced(s);
		snapshot_tables(s);
		/* Only a replay that ran to its end maps every touched page. */
		if (s->replay && !sim_replay_error(s->replay) &&
		    started == s->vcpus.nr)
			sim_replay_check(s);
	}
	return sim_report_total(&s->report);
}

static void *td_main(void *arg)
{
	struct sim *s = arg;

	tdp_thread_register();
	sim_run_workload(s);
	tdp_thread_unregister();
	return NULL;
}

uint64_t sim_run_tds(struct sim **tds, unsigned int n)
{
	pthread_t th[SIM_MAX_TDS];
	unsigned int started = 0;
	uint64_t total = 0;

	/* Every TD's vCPUs, host events and checks at once. */
	for (unsigned int i = 0; i < n; i++) {
		if (pthread_create(&th[i], NULL, td_main, tds[i]))
			break;
		started++;
	}
	for (unsigned int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	/* Then each TD torn down on its own, the others still there. */
	for (unsigned int i = 0; i < n; i++) {
		if (i >= started)
			sim_violation(&tds[i]->report, SIM_V_ENGINE_ERROR, 0,
				      SIM_NO_GFN, SIM_NO_VCPU,
				      "TD %u never ran", i);
		sim_finish(tds[i]);
		total += sim_report_total(&tds[i]->report);
	}
	return total;
}

uint64_t sim_run(struct sim *s)
{
	sim_run_workload(s);
	sim_finish(s);
	return sim_report_total(&s->report);
}

/* ---- step by step -------------------------------------------------------- */

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

int sim_step_check_measurement(struct sim *s, unsigned int vcpu)
{
	struct sim_vcpu *v = step_vcpu(s, vcpu);
	int ret = sim_guest_check_measurement(v);

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

int sim_step_mmio_access(struct sim *s, unsigned int vcpu, unsigned int k,
			 bool write)
{
	struct sim_vcpu *v = step_vcpu(s, vcpu);
	int ret = sim_guest_mmio_access(v, k, write);

	step_done(s, v);
	return ret;
}

void sim_step_mmio_flip(struct sim *s, unsigned int k)
{
	sim_mmio_flip(s, k);
}

bool sim_step_migrate_round(struct sim *s)
{
	return sim_migrate_round(s);
}

uint64_t sim_step_migrate_finish(struct sim *s)
{
	return sim_migrate_finish(s);
}

void sim_step_invalidate_root(struct sim *s)
{
	sim_host_invalidate_root(s);
}

void sim_step_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n)
{
	sim_host_recover(s, gfn, n);
}

enum guest_page_state sim_step_guest_state(struct sim *s, tdp_gfn_t gfn)
{
	return sim_guest_state(&s->guest, gfn);
}
