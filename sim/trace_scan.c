/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Trace scan, placement and the alias rule (see trace_scan.h). */
#include "trace_scan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

/* Identity placement: GPAs below the shared bit (GPA bit 47). */
#define IDENTITY_ADDR_LIMIT ((uint64_t)SIM_SHARED_BIT << TDP_PAGE_SHIFT)

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
