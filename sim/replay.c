/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Trace replay (see replay.h). */
#include "replay.h"

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

/* Identity placement: GPAs below the shared bit (GPA bit 47). */
#define IDENTITY_ADDR_LIMIT ((uint64_t)SIM_SHARED_BIT << TDP_PAGE_SHIFT)
/* Accesses queued per vCPU ahead of it. */
#define QUEUE_LEN 1024
/* How long a vCPU waits for its next access before it looks again
 * (for a pause or a stop), and the feeder for room in a queue. */
#define VCPU_WAIT_NS 20000L
#define FEEDER_WAIT_NS 50000L

/* ---- a map of 64-bit keys to 64-bit values ------------------------------- */

/* Open addressing with linear probing; a key is stored plus one, so 0
 * marks an empty slot (keys are page or region numbers, never ~0). */
struct sim_page_map {
	uint64_t *keys;
	uint64_t *values;
	uint64_t cap; /* a power of two */
	uint64_t n;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void map_free(struct sim_page_map *m)
{
	if (!m)
		return;
	free(m->keys);
	free(m->values);
	free(m);
}

static struct sim_page_map *map_new(void)
{
	struct sim_page_map *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = 1024;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->values = calloc(m->cap, sizeof(*m->values));
	if (!m->keys || !m->values) {
		map_free(m);
		return NULL;
	}
	return m;
}

/* The slot of @key, or the empty slot where it would go. */
static uint64_t map_slot(const struct sim_page_map *m, uint64_t key)
{
	uint64_t i = mix64(key) & (m->cap - 1);

	while (m->keys[i] && m->keys[i] != key + 1)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static bool map_find(const struct sim_page_map *m, uint64_t key,
		     uint64_t *value)
{
	uint64_t i = map_slot(m, key);

	if (!m->keys[i])
		return false;
	*value = m->values[i];
	return true;
}

static int map_grow(struct sim_page_map *m)
{
	struct sim_page_map old = *m;

	m->cap *= 2;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->values = calloc(m->cap, sizeof(*m->values));
	if (!m->keys || !m->values) {
		free(m->keys);
		free(m->values);
		*m = old;
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < old.cap; i++) {
		uint64_t j;

		if (!old.keys[i])
			continue;
		j = map_slot(m, old.keys[i] - 1);
		m->keys[j] = old.keys[i];
		m->values[j] = old.values[i];
	}
	free(old.keys);
	free(old.values);
	return 0;
}

/* Insert @key (not in the map yet). */
static int map_insert(struct sim_page_map *m, uint64_t key, uint64_t value)
{
	uint64_t i;

	if (2 * (m->n + 1) > m->cap && map_grow(m))
		return -ENOMEM;
	i = map_slot(m, key);
	m->keys[i] = key + 1;
	m->values[i] = value;
	m->n++;
	return 0;
}

/* ---- scan ---------------------------------------------------------------- */

const char *sim_placement_name(enum sim_placement placement)
{
	return placement == SIM_PLACE_ALLOCATOR ? "allocator" : "identity";
}

int sim_placement_parse(const char *name, enum sim_placement *out)
{
	if (!strcmp(name, "identity"))
		*out = SIM_PLACE_IDENTITY;
	else if (!strcmp(name, "allocator"))
		*out = SIM_PLACE_ALLOCATOR;
	else
		return -EINVAL;
	return 0;
}

bool sim_trace_region_private(uint64_t seed, tdp_gfn_t region_gfn,
			      uint32_t private_ppm)
{
	uint64_t h = mix64(seed ^ mix64(region_gfn + 0x9e3779b97f4a7c15ULL));

	return h % 1000000 < private_ppm;
}

bool sim_trace_place(const struct sim_trace *t, uint64_t addr,
		     tdp_gfn_t *gfn)
{
	if (t->placement == SIM_PLACE_ALLOCATOR)
		return t->frames && map_find(t->frames, addr >> TDP_PAGE_SHIFT,
					     gfn);
	if (addr >= IDENTITY_ADDR_LIMIT)
		return false;
	*gfn = addr >> TDP_PAGE_SHIFT;
	return true;
}

void sim_trace_free(struct sim_trace *t)
{
	if (!t)
		return;
	free(t->path);
	free(t->region_gfn);
	free(t->touched);
	map_free(t->frames);
	free(t);
}

/* Regions found while scanning, in order of first touch. */
struct scan_regions {
	struct sim_page_map *index; /* region number -> position */
	tdp_gfn_t *gfn;
	uint64_t (*touched)[SIM_TRACE_MASK_WORDS];
	uint64_t n, cap;
};

/* Record a touch of @gfn; counts a page touched for the first time. */
static int scan_touch(struct sim_trace *t, struct scan_regions *sr,
		      tdp_gfn_t gfn)
{
	uint64_t pos, off = gfn % SIM_REGION_PAGES;
	uint64_t bit = 1ULL << (off % 64);

	if (!map_find(sr->index, gfn / SIM_REGION_PAGES, &pos)) {
		if (sr->n == sr->cap) {
			uint64_t cap = sr->cap ? 2 * sr->cap : 64;
			tdp_gfn_t *g = realloc(sr->gfn, cap * sizeof(*g));
			uint64_t(*m)[SIM_TRACE_MASK_WORDS];

			if (!g)
				return -ENOMEM;
			sr->gfn = g;
			m = realloc(sr->touched, cap * sizeof(*m));
			if (!m)
				return -ENOMEM;
			sr->touched = m;
			sr->cap = cap;
		}
		pos = sr->n++;
		if (map_insert(sr->index, gfn / SIM_REGION_PAGES, pos))
			return -ENOMEM;
		sr->gfn[pos] = gfn - off;
		memset(sr->touched[pos], 0, sizeof(sr->touched[pos]));
	}
	if (!(sr->touched[pos][off / 64] & bit)) {
		sr->touched[pos][off / 64] |= bit;
		t->distinct_pages++;
	}
	return 0;
}

static const tdp_gfn_t *sort_key;

static int by_gfn(const void *a, const void *b)
{
	tdp_gfn_t x = sort_key[*(const uint64_t *)a];
	tdp_gfn_t y = sort_key[*(const uint64_t *)b];

	return x < y ? -1 : x > y;
}

/* Store the regions in the trace, in ascending GFN order. */
static int scan_finish(struct sim_trace *t, struct scan_regions *sr)
{
	uint64_t *order = malloc(sr->n * sizeof(*order));

	t->region_gfn = malloc(sr->n * sizeof(*t->region_gfn));
	t->touched = malloc(sr->n * sizeof(*t->touched));
	if (!order || !t->region_gfn || !t->touched) {
		free(order);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < sr->n; i++)
		order[i] = i;
	/* The scan runs on one thread; the key is only used here. */
	sort_key = sr->gfn;
	qsort(order, sr->n, sizeof(*order), by_gfn);
	sort_key = NULL;
	for (uint64_t i = 0; i < sr->n; i++) {
		t->region_gfn[i] = sr->gfn[order[i]];
		memcpy(t->touched[i], sr->touched[order[i]],
		       sizeof(t->touched[i]));
	}
	t->nr_regions = sr->n;
	free(order);
	return 0;
}

/* Place one address read from the trace; *@gfn unset if skipped. */
static int scan_place(struct sim_trace *t, uint64_t addr, tdp_gfn_t *gfn,
		      bool *replayed)
{
	uint64_t vpage = addr >> TDP_PAGE_SHIFT;

	*replayed = false;
	if (t->placement == SIM_PLACE_IDENTITY) {
		if (addr >= IDENTITY_ADDR_LIMIT) {
			t->out_of_range++;
			return 0;
		}
		*gfn = vpage;
	} else if (!map_find(t->frames, vpage, gfn)) {
		*gfn = t->frames->n;
		if (*gfn >= SIM_SHARED_BIT)
			return -E2BIG;
		if (map_insert(t->frames, vpage, *gfn))
			return -ENOMEM;
	}
	*replayed = true;
	return 0;
}

static int scan_stream(struct sim_trace *t, struct trace *tr,
		       struct scan_regions *sr, char *err, size_t errlen)
{
	uint64_t addr;
	int ret = 0;

	while (!t->limit || t->addresses < t->limit) {
		tdp_gfn_t gfn;
		bool replayed;

		ret = trace_next(tr, &addr);
		if (ret <= 0)
			break;
		t->addresses++;
		ret = scan_place(t, addr, &gfn, &replayed);
		if (!ret && replayed) {
			t->accesses++;
			ret = scan_touch(t, sr, gfn);
		}
		if (ret)
			break;
	}
	if (ret == -EINVAL)
		snprintf(err, errlen, "%s: %s", t->path, trace_error(tr));
	else if (ret == -E2BIG)
		snprintf(err, errlen, "%s: more distinct pages than the TD's "
			 "2^35 GFNs", t->path);
	else if (ret < 0)
		snprintf(err, errlen, "%s: out of memory", t->path);
	else if (!t->accesses)
		snprintf(err, errlen, "%s: no address to replay (%" PRIu64
			 " read, %" PRIu64 " out of range)", t->path,
			 t->addresses, t->out_of_range);
	if (ret >= 0 && !t->accesses)
		ret = -EINVAL;
	return ret < 0 ? ret : 0;
}

int sim_trace_scan(const char *path, enum sim_placement placement,
		   uint64_t limit, struct sim_trace **out, char *err,
		   size_t errlen)
{
	struct scan_regions sr = { 0 };
	struct sim_trace *t = calloc(1, sizeof(*t));
	struct trace *tr = NULL;
	int ret = -ENOMEM;

	if (!t || !(t->path = strdup(path)) || !(sr.index = map_new()) ||
	    (placement == SIM_PLACE_ALLOCATOR && !(t->frames = map_new()))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	t->placement = placement;
	t->limit = limit;
	ret = trace_open(path, &tr, err, errlen);
	if (!ret)
		ret = scan_stream(t, tr, &sr, err, errlen);
	if (!ret) {
		ret = scan_finish(t, &sr);
		if (ret)
			snprintf(err, errlen, "%s: out of memory", path);
	}
out:
	trace_close(tr);
	map_free(sr.index);
	free(sr.gfn);
	free(sr.touched);
	if (ret) {
		sim_trace_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

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
