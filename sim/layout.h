/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest's physical memory: a set of 2 MiB regions.
 *
 * A scenario guest has contiguous memory from GFN 0.  A guest that
 * replays a trace with identity placement has memory only where the
 * trace touches it: a few hundred regions scattered over a 47-bit
 * address space, which no per-GFN array could cover.  Both are a list
 * of regions, numbered densely in GFN order; every per-page array of
 * the guest and the host is indexed by the dense page number
 * (region * SIM_REGION_PAGES + offset in the region), every per-region
 * array by the dense region number.
 *
 * Immutable after creation: lookups take no lock.
 */
#ifndef SIM_LAYOUT_H
#define SIM_LAYOUT_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

/* The TD has 4-level EPT; its shared bit is GPA bit 47, GFN bit 35. */
#define SIM_ROOT_LEVEL 4
#define SIM_SHARED_BIT ((tdp_gfn_t)1 << 35)

/* Guest memory is handled in 2 MiB regions. */
#define SIM_REGION_PAGES ((uint64_t)512)
#define SIM_NO_REGION UINT64_MAX

struct sim_layout {
	uint64_t nr_regions;
	uint64_t nr_pages; /* nr_regions * SIM_REGION_PAGES */
	/*
	 * Base GFN of each region, strictly ascending; NULL when region r
	 * is at GFN r * SIM_REGION_PAGES (contiguous memory from GFN 0).
	 * Not owned: the trace the layout came from keeps it.
	 */
	const tdp_gfn_t *region_gfn;
};

/* Contiguous memory of @nr_regions regions from GFN 0. */
static inline void sim_layout_init_contiguous(struct sim_layout *l,
					      uint64_t nr_regions)
{
	*l = (struct sim_layout){
		.nr_regions = nr_regions,
		.nr_pages   = nr_regions * SIM_REGION_PAGES,
		.region_gfn = NULL,
	};
}

/* Regions at @region_gfn[0 .. nr_regions), 2 MiB aligned, ascending. */
static inline void sim_layout_init_sparse(struct sim_layout *l,
					  const tdp_gfn_t *region_gfn,
					  uint64_t nr_regions)
{
	*l = (struct sim_layout){
		.nr_regions = nr_regions,
		.nr_pages   = nr_regions * SIM_REGION_PAGES,
		.region_gfn = region_gfn,
	};
}

static inline tdp_gfn_t sim_layout_region_gfn(const struct sim_layout *l,
					      uint64_t region)
{
	return l->region_gfn ? l->region_gfn[region]
			     : region * SIM_REGION_PAGES;
}

/* The dense number of the region holding @gfn, or SIM_NO_REGION. */
static inline uint64_t sim_layout_region(const struct sim_layout *l,
					 tdp_gfn_t gfn)
{
	tdp_gfn_t base = gfn & ~(SIM_REGION_PAGES - 1);
	uint64_t lo = 0, hi = l->nr_regions;

	if (!l->region_gfn)
		return gfn / SIM_REGION_PAGES < l->nr_regions
			       ? gfn / SIM_REGION_PAGES
			       : SIM_NO_REGION;
	/* Binary search of [lo, hi). */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (l->region_gfn[mid] == base)
			return mid;
		if (l->region_gfn[mid] < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIM_NO_REGION;
}

static inline bool sim_layout_contains(const struct sim_layout *l,
				       tdp_gfn_t gfn)
{
	return sim_layout_region(l, gfn) != SIM_NO_REGION;
}

/* The dense page number of @gfn, which must be guest memory. */
static inline uint64_t sim_layout_page(const struct sim_layout *l,
				       tdp_gfn_t gfn)
{
	uint64_t region = sim_layout_region(l, gfn);

	assert(region != SIM_NO_REGION);
	return region * SIM_REGION_PAGES + (gfn & (SIM_REGION_PAGES - 1));
}

/* The GFN of dense page number @page. */
static inline tdp_gfn_t sim_layout_gfn(const struct sim_layout *l,
				       uint64_t page)
{
	return sim_layout_region_gfn(l, page / SIM_REGION_PAGES) +
	       page % SIM_REGION_PAGES;
}

/*
 * The end of the run of guest memory without a hole that holds @gfn
 * (which must be guest memory): the first GFN after it that is not.
 */
static inline tdp_gfn_t sim_layout_run_end(const struct sim_layout *l,
					   tdp_gfn_t gfn)
{
	uint64_t r = sim_layout_region(l, gfn);

	assert(r != SIM_NO_REGION);
	if (!l->region_gfn)
		return l->nr_pages;
	while (r + 1 < l->nr_regions &&
	       sim_layout_region_gfn(l, r + 1) ==
		       sim_layout_region_gfn(l, r) + SIM_REGION_PAGES)
		r++;
	return sim_layout_region_gfn(l, r) + SIM_REGION_PAGES;
}

#endif /* SIM_LAYOUT_H */
