/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The replay of a trace as the guest's workload (see trace_replay.h). */
#include "trace_replay.h"

#include <ck_ring.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"
#include "trace.h"

/* Accesses queued per vCPU ahead of it. */
#define QUEUE_LEN 1024
/* How long a vCPU waits for its next access before it looks again
 * (for a pause or a stop), and the feeder for room in a queue. */
#define VCPU_WAIT_NS 20000L
#define FEEDER_WAIT_NS 50000L

/* ---- queues and the feeder ----------------------------------------------- */

/*
 * One queue per vCPU.  The feeder is its only producer and the vCPU its
 * only consumer, so it is a Concurrency Kit single-producer
 * single-consumer ring: neither side takes a lock.  What crosses it is a
 * GFN value, nothing the consumer dereferences.  ck_ring orders the slot
 * copy with inline-assembly index updates that ThreadSanitizer cannot see;
 * tests/tsan.supp names its two copy routines, and only them.
 */
struct replay_queue {
	struct ck_ring ring;             /* feeder enqueues, vCPU dequeues */
	struct ck_ring_buffer slot[QUEUE_LEN];
	bool closed;                     /* atomic: no more accesses */
};

struct sim_replay {
	struct sim *s;
	const struct sim_trace *trace;
	unsigned int nr_queues;
	struct replay_queue *queues;
	pthread_t feeder;
	bool feeder_started;
	/* Written by the feeder before it ends; read after the join. */
	bool failed;
	char error[320];
	/* Written by sim_replay_check() with every thread stopped. */
	struct sim_replay_result result;
};

/* Sleep @ns nanoseconds: the wait of a side that found its ring full or
 * empty, after which it looks again (also for a pause or a stop). */
static void nap(long ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ns };

	nanosleep(&ts, NULL);
}

int sim_replay_create(struct sim *s, struct sim_replay **out)
{
	struct sim_replay *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->s = s;
	r->trace = s->cfg.trace;
	r->nr_queues = s->cfg.nr_vcpus;
	r->queues = calloc(r->nr_queues, sizeof(*r->queues));
	if (!r->queues) {
		free(r);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < r->nr_queues; i++)
		ck_ring_init(&r->queues[i].ring, QUEUE_LEN);
	*out = r;
	return 0;
}

void sim_replay_destroy(struct sim_replay *r)
{
	if (!r)
		return;
	sim_replay_join(r);
	free(r->queues);
	free(r);
}

/* Queue @gfn for one vCPU, waiting for room.  False if the run stops. */
static bool queue_push(struct sim_replay *r, struct replay_queue *q,
		       tdp_gfn_t gfn)
{
	for (;;) {
		if (ck_ring_enqueue_spsc(&q->ring, q->slot,
					 (void *)(uintptr_t)gfn))
			return true;
		if (sim_stop_requested(&r->s->run))
			return false;
		nap(FEEDER_WAIT_NS);
	}
}

static void close_queues(struct sim_replay *r)
{
	for (unsigned int i = 0; i < r->nr_queues; i++)
		__atomic_store_n(&r->queues[i].closed, true, __ATOMIC_RELEASE);
}

/*
 * Place one address of the second reading.  The scan saw the same
 * stream, so every replayed address must land on a page it recorded
 * as touched; anything else means the file changed in between.
 */
static bool feed_place(struct sim_replay *r, uint64_t addr, tdp_gfn_t *gfn,
		       bool *replayed)
{
	const struct sim_trace *t = r->trace;
	uint64_t region;

	*replayed = sim_trace_place(t, addr, gfn);
	if (!*replayed)
		return t->placement == SIM_PLACE_IDENTITY;
	region = sim_layout_region(&r->s->layout, *gfn);
	return region != SIM_NO_REGION &&
	       sim_trace_touched(t, region, *gfn % SIM_REGION_PAGES);
}

/* Read the trace again and deal the accesses out to the vCPUs. */
static void *feeder_main(void *arg)
{
	struct sim_replay *r = arg;
	const struct sim_trace *t = r->trace;
	struct trace *tr;
	uint64_t read = 0, dealt = 0, addr;
	int ret;

	if (trace_open(t->path, &tr, r->error, sizeof(r->error))) {
		r->failed = true;
		goto out;
	}
	while (read < t->addresses && !sim_stop_requested(&r->s->run)) {
		tdp_gfn_t gfn;
		bool replayed;

		ret = trace_next(tr, &addr);
		if (ret <= 0) {
			snprintf(r->error, sizeof(r->error), "%s: %s", t->path,
				 ret ? trace_error(tr)
				     : "the trace ended early: it changed "
				       "since it was scanned");
			r->failed = true;
			break;
		}
		read++;
		if (!feed_place(r, addr, &gfn, &replayed)) {
			snprintf(r->error, sizeof(r->error),
				 "%s: line %" PRIu64 ": address %#" PRIx64
				 " was not in the trace when it was scanned",
				 t->path, trace_line(tr), addr);
			r->failed = true;
			break;
		}
		if (!replayed)
			continue;
		if (!queue_push(r, &r->queues[dealt % r->nr_queues], gfn))
			break;
		dealt++;
	}
	trace_close(tr);
out:
	close_queues(r);
	if (r->failed)
		sim_stop_request(&r->s->run);
	return NULL;
}

int sim_replay_start(struct sim_replay *r)
{
	int ret = pthread_create(&r->feeder, NULL, feeder_main, r);

	if (ret)
		return -ret;
	r->feeder_started = true;
	return 0;
}

void sim_replay_join(struct sim_replay *r)
{
	if (!r->feeder_started)
		return;
	pthread_join(r->feeder, NULL);
	r->feeder_started = false;
}

const char *sim_replay_error(const struct sim_replay *r)
{
	return r->failed ? r->error : NULL;
}

/* Take the next access of @q, if one is queued. */
static bool queue_pop(struct replay_queue *q, tdp_gfn_t *gfn)
{
	void *v;

	if (!ck_ring_dequeue_spsc(&q->ring, q->slot, &v))
		return false;
	*gfn = (tdp_gfn_t)(uintptr_t)v;
	return true;
}

enum sim_replay_next sim_replay_next(struct sim_replay *r, unsigned int vcpu,
				     tdp_gfn_t *gfn)
{
	struct replay_queue *q = &r->queues[vcpu];

	if (queue_pop(q, gfn))
		return SIM_REPLAY_GOT;
	if (!__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE))
		return SIM_REPLAY_WAIT;
	/* Closed after its last enqueue: look once more. */
	return queue_pop(q, gfn) ? SIM_REPLAY_GOT : SIM_REPLAY_DONE;
}

void sim_replay_wait(struct sim_replay *r, unsigned int vcpu)
{
	struct replay_queue *q = &r->queues[vcpu];

	if (!ck_ring_size(&q->ring) &&
	    !__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE))
		nap(VCPU_WAIT_NS);
}

void sim_replay_access(struct sim_vcpu *v, tdp_gfn_t gfn)
{
	struct sim *s = v->sim;
	bool shared = sim_host_attr(&s->host, gfn) == SIM_ATTR_SHARED;

	sim_count(&s->stats, shared ? SIM_C_REPLAY_SHARED
				    : SIM_C_REPLAY_PRIVATE, 1);
	sim_guest_access(v, gfn, true);
}

const struct sim_replay_result *sim_replay_result(const struct sim_replay *r)
{
	return &r->result;
}

/* ---- the final check ----------------------------------------------------- */

#define RV(s, kind, gfn, ...)                                                  \
	sim_violation(&(s)->report, kind, 0, gfn, SIM_NO_VCPU,                 \
		      "after the replay: " __VA_ARGS__)

/* A present leaf maps @gfn in the tree of @alias. */
static bool mapped_in(struct sim *s, tdp_gfn_t gfn, enum tdp_alias alias)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t spte;
	int level;

	return !tdp_lookup(s->mmu, gfn, alias, &spte, &level) &&
	       tdp_spte_is_present(fmt, spte) &&
	       tdp_spte_is_leaf(fmt, spte, level);
}

/* One touched page: mapped once, in its alias. */
static void check_touched_page(struct sim *s, tdp_gfn_t gfn, bool shared)
{
	bool in_private = mapped_in(s, gfn, TDP_ALIAS_PRIVATE);
	bool in_shared = mapped_in(s, gfn, TDP_ALIAS_SHARED);

	sim_count(&s->stats, SIM_C_CHECK_REPLAY_PAGES, 1);
	if (in_private && in_shared)
		RV(s, SIM_V_INCONSISTENT, gfn,
		   "a touched %s page is mapped in both aliases",
		   shared ? "shared" : "private");
	else if (!in_private && !in_shared)
		RV(s, SIM_V_LOST_MAPPING, gfn,
		   "a touched %s page is not mapped",
		   shared ? "shared" : "private");
	else if (in_shared != shared)
		RV(s, SIM_V_INCONSISTENT, gfn,
		   "a touched %s page is mapped only in the %s alias",
		   shared ? "shared" : "private",
		   shared ? "private" : "shared");
	if (!shared && sim_guest_state(&s->guest, gfn) !=
			       GUEST_PRIVATE_ACCEPTED)
		RV(s, SIM_V_ACCEPT, gfn,
		   "a touched private page was never accepted");
}

/*
 * Count the touched pages per alias and the distinct regions holding
 * them, checking each page.  The regions come in ascending GFN order,
 * so a 1 GiB or 512 GiB region is new when its number changes.
 */
static void count_touched(struct sim *s, struct sim_replay_result *res)
{
	const struct sim_trace *t = s->cfg.trace;
	uint64_t last[2][4];

	memset(last, 0xff, sizeof(last));
	for (uint64_t r = 0; r < t->nr_regions; r++) {
		tdp_gfn_t base = t->region_gfn[r];
		bool seen[2] = { false, false };

		for (uint64_t off = 0; off < SIM_REGION_PAGES; off++) {
			tdp_gfn_t gfn = base + off;
			bool shared;

			if (!sim_trace_touched(t, r, off))
				continue;
			shared = sim_host_attr(&s->host, gfn) ==
				 SIM_ATTR_SHARED;
			check_touched_page(s, gfn, shared);
			res->pages[shared]++;
			seen[shared] = true;
		}
		for (int a = 0; a < 2; a++) {
			if (!seen[a])
				continue;
			for (int level = 1; level <= 3; level++) {
				/* The region a level-@level table covers. */
				uint64_t id = base >> (level * TDP_LEVEL_BITS);

				if (id != last[a][level]) {
					last[a][level] = id;
					res->regions[a][level]++;
				}
			}
		}
	}
}

/* Tables per level of the tree of one alias against its regions. */
static void check_tables(struct sim *s, const struct tdp_stats *st,
			 const struct sim_replay_result *res, bool shared)
{
	int type = shared ? TDP_ROOT_DIRECT : TDP_ROOT_MIRROR;
	const char *tree = shared ? "direct" : "mirror";
	const uint64_t *tables = st->tables[type];
	const uint64_t *leaves = st->leaves[type];
	const uint64_t *regions = res->regions[shared];

	sim_count(&s->stats, SIM_C_CHECK_REPLAY_TABLES, 1);
	/* Each touched 2 MiB region has a table of 4 KiB leaves or is
	 * one 2 MiB leaf; each 1 GiB and 512 GiB region one table. */
	if (tables[1] + leaves[2] != regions[1])
		RV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
		   "the %s tree has %" PRIu64 " level-1 tables and %" PRIu64
		   " 2 MiB leaves, the touched pages lie in %" PRIu64
		   " 2 MiB regions", tree, tables[1], leaves[2], regions[1]);
	for (int level = 2; level <= 3; level++)
		if (tables[level] != regions[level])
			RV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
			   "the %s tree has %" PRIu64 " level-%d tables, the "
			   "touched pages lie in %" PRIu64 " %s regions",
			   tree, tables[level], level, regions[level],
			   level == 2 ? "1 GiB" : "512 GiB");
	/* Without huge pages only the touched pages are mapped. */
	if (!s->cfg.huge &&
	    (leaves[1] != res->pages[shared] || leaves[2] != 0))
		RV(s, SIM_V_INCONSISTENT, SIM_NO_GFN,
		   "the %s tree has %" PRIu64 " 4 KiB and %" PRIu64 " 2 MiB "
		   "leaves for %" PRIu64 " touched pages", tree, leaves[1],
		   leaves[2], res->pages[shared]);
}

uint64_t sim_replay_check(struct sim *s)
{
	uint64_t before = sim_report_total(&s->report);
	struct sim_replay_result *res = &s->replay->result;
	struct tdp_stats st;

	memset(res, 0, sizeof(*res));
	count_touched(s, res);
	if (tdp_mmu_get_stats(s->mmu, &st) == 0) {
		check_tables(s, &st, res, false);
		check_tables(s, &st, res, true);
	}
	res->checked = true;
	return sim_report_total(&s->report) - before;
}
