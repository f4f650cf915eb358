/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A page-touch trace (trace.h) of a real program, scanned and placed in
 * guest memory before a simulation replays it (trace_replay.h).
 *
 * Scan.  sim_trace_scan() reads the whole trace once before the
 * simulation exists: it places every address, finds the guest memory
 * the trace needs and records which pages it touches.  Malformed input
 * fails here, with its line number, before anything runs.  The scan
 * keeps per-region state (and, for the allocator model, one entry per
 * distinct page), never the stream itself.
 *
 * Placement of an address:
 *   identity   the address is the GPA without the shared bit: GFN =
 *              address >> 12.  The TD has 4-level EPT (48-bit GPAs) with
 *              the shared bit at GPA bit 47, so an address must be below
 *              2^47 (user space of a 4-level process is); others are out
 *              of range, skipped and counted.  Guest memory is the 2 MiB
 *              regions that hold a touched page.
 *   allocator  the guest kernel hands out frames in first-touch order:
 *              the n-th distinct 4 KiB page of the trace gets GFN n,
 *              whatever its address.  Guest memory is GFN 0 up to the
 *              number of distinct pages, rounded up to 2 MiB.
 *
 * Alias.  Each 2 MiB region of guest memory is private or shared for
 * the whole run, by a hash of the seed and the region's GFN: private
 * with probability cfg.private_pct.  There are no conversions, so a
 * page always has the same alias; a shared page is accessed at its GFN
 * with the shared bit set.  The unit is the region rather than the page
 * because TDX guests share memory in contiguous ranges (bounce buffers,
 * rings), and because a region can only be mapped by one 2 MiB leaf
 * when all of it has one alias.
 */
#ifndef SIM_TRACE_SCAN_H
#define SIM_TRACE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tdp/types.h>

#include "layout.h"

struct sim_page_map;

enum sim_placement {
	SIM_PLACE_IDENTITY,
	SIM_PLACE_ALLOCATOR,
};

#define SIM_TRACE_MASK_WORDS (SIM_REGION_PAGES / 64)

/* A scanned trace.  Immutable after sim_trace_scan(). */
struct sim_trace {
	char *path;
	enum sim_placement placement;
	uint64_t limit;          /* addresses read at most; 0: all */
	uint64_t addresses;      /* addresses read */
	uint64_t out_of_range;   /* identity: addresses at or above 2^47 */
	uint64_t accesses;       /* addresses replayed */
	uint64_t distinct_pages; /* 4 KiB pages the replay touches */
	/* Guest memory: the regions' base GFNs, ascending. */
	uint64_t nr_regions;
	tdp_gfn_t *region_gfn;
	/* Per region, a bit per page: set if the replay touches it. */
	uint64_t (*touched)[SIM_TRACE_MASK_WORDS];
	/* Allocator placement: 4 KiB virtual page -> GFN. */
	struct sim_page_map *frames;
};

/*
 * sim_trace_scan() - read the trace at @path (plain or zstd) up to
 * @limit addresses (0: all) and place it.  Returns 0, or a negative
 * errno with a message in @err: the trace reader's "line N: ..." for
 * malformed input, or a trace without a single address to replay.
 */
int sim_trace_scan(const char *path, enum sim_placement placement,
		   uint64_t limit, struct sim_trace **out, char *err,
		   size_t errlen);
void sim_trace_free(struct sim_trace *t);

/*
 * sim_trace_place() - the GFN of one address as the scan placed it.
 * False if the address is not replayed (out of range, or for the
 * allocator an address the scan never saw).
 */
bool sim_trace_place(const struct sim_trace *t, uint64_t addr,
		     tdp_gfn_t *gfn);

static inline bool sim_trace_touched(const struct sim_trace *t,
				     uint64_t region, uint64_t offset)
{
	return (t->touched[region][offset / 64] >> (offset % 64)) & 1;
}

const char *sim_placement_name(enum sim_placement placement);
/* Returns 0, or -EINVAL for an unknown name. */
int sim_placement_parse(const char *name, enum sim_placement *out);

/*
 * The alias rule: true if the region at @region_gfn is private in a run
 * seeded with @seed and @private_ppm parts per million of private
 * regions.  Depends on nothing else, so a region keeps its alias when
 * other regions come or go (a shorter --trace-limit, say).
 */
bool sim_trace_region_private(uint64_t seed, tdp_gfn_t region_gfn,
			      uint32_t private_ppm);

#endif /* SIM_TRACE_SCAN_H */
