/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated guest (a TDX guest kernel, reduced to what matters for
 * the host's page tables).
 *
 * It keeps its own view of every GFN: private and not yet accepted,
 * private and accepted, or shared, and the version it last wrote.  Every
 * read checks that the page holds (gfn, expected version); every write
 * stores (gfn, version + 1).  Pages start with version 0: an ACCEPT
 * zeroes the page, and a page that becomes shared is a fresh host page.
 *
 * Memory is handled in 2 MiB regions.  Half of them (chosen by the seed)
 * are "huge" regions the guest converts and accepts whole, except for
 * the share cfg.split_pct of its conversions and lazy accepts done on a
 * run of pages inside the region (which makes the engine split, demote,
 * its 2 MiB private page); the rest convert in runs of 1..16 pages and
 * accept 4 KiB at a time.  A guest that replays a trace (trace_replay.h)
 * instead has one alias per region, never converts, and accepts its
 * private memory where it touches it: a page at a time, or with huge
 * pages on the whole region.  ACCEPT always tries 2 MiB first where the
 * range allows it and falls back to 4 KiB on PAGE_SIZE_MISMATCH.
 *
 * Conversions are MapGPA calls: to shared (no accept needed), or to
 * private followed at once by ACCEPT of the range.  Private pages the
 * guest has not accepted are accepted lazily before first use.
 *
 * Locks: a rwlock per region (write: conversions, accepts, offlining;
 * read: accesses) and striped GFN locks for the version of one GFN
 * under the read lock.  A vCPU in guest mode only try-locks; it exits
 * guest mode before it blocks.
 */
#ifndef SIM_GUEST_H
#define SIM_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

#include "layout.h"

struct sim;
struct sim_vcpu;

enum guest_page_state {
	GUEST_PRIVATE_UNACCEPTED,
	GUEST_PRIVATE_ACCEPTED,
	GUEST_SHARED,
};

/*
 * The guest's own mapping of a page (its direct map): not present while
 * the page is unaccepted or converting, else through the private or the
 * shared alias.
 */
enum guest_pte {
	GUEST_PTE_NOT_PRESENT = 0,
	GUEST_PTE_PRIVATE = 1,
	GUEST_PTE_SHARED = 2,
};

#define GUEST_STRIPES 1024

/* Shared-hot private huge regions at most (see struct sim_guest). */
#define SIM_GUEST_HOT_REGIONS 2
/* One guest access in SIM_GUEST_HOT_EVERY goes to a shared-hot region. */
#define SIM_GUEST_HOT_EVERY 8

/* Per-page arrays are indexed by dense page number, per-region arrays by
 * dense region number (layout.h). */
struct sim_guest {
	const struct sim_layout *layout; /* immutable */
	uint8_t *state;       /* enum guest_page_state; region lock */
	uint32_t *version;    /* expected version; see the lock rule above */
	/*
	 * Pages of the initial image not touched yet (TD build): their
	 * first access is counted as the image check.  Cleared under the
	 * region lock for write, or under the GFN's stripe lock with the
	 * region lock for read.
	 */
	uint8_t *image_untouched;
	/*
	 * Per page, enum guest_pte, atomic: written with the region lock
	 * held for write; a store of NOT_PRESENT is followed by
	 * sim_vcpus_guest_tlb_barrier() before the page changes alias.
	 * Read locklessly by stray reads, under the reader's TLB lock.
	 */
	uint8_t *pte;
	bool *region_huge;    /* immutable */
	pthread_rwlock_t *region_lock;
	pthread_mutex_t stripe[GUEST_STRIPES];
	uint32_t convert_ppm; /* immutable */
	uint32_t split_ppm;   /* immutable: cfg.split_pct */
	/* Pages a small region accepts at once before first use, a power
	 * of two: 16, or 1 when replaying a trace.  Immutable. */
	uint64_t accept_run;	/*
	 * The shared-hot regions (dense numbers): huge regions, private at
	 * boot, that every vCPU's accesses visit besides its own home
	 * region and that the host pre-faults, demotes and recovers in
	 * bursts (scenario.c), so that faults, demotes, promotes and
	 * ACCEPTs of different threads meet on the same 2 MiB S-EPT
	 * entries and the module answers OPERAND_BUSY for real.  None
	 * when replaying a trace or with huge pages off.  Immutable.
	 */
	uint64_t hot_region[SIM_GUEST_HOT_REGIONS];
	unsigned int nr_hot;
};

/* Lay out the guest's memory and the host's matching attributes. */
int sim_guest_init(struct sim *s);
void sim_guest_fini(struct sim *s);

/*
 * The guest's check of its measurement (TDG.MR.REPORT) against the one it
 * computes itself from its image: every image page PAGE.ADDed in order,
 * each followed by its 16 MR.EXTEND records.  A mismatch is a
 * SIM_V_MEASUREMENT violation.  Enters guest mode; returns 0 or -EIO.
 */
int sim_guest_check_measurement(struct sim_vcpu *v);

/*
 * A guest access to MMIO window page @k (sim_mmio_access()) with the
 * guest's stripe lock of its GFN held, taken as a vCPU takes guest locks
 * (try first; leave guest mode before blocking).
 */
int sim_guest_mmio_access(struct sim_vcpu *v, unsigned int k, bool write);

/*
 * A stray read of @gfn from vCPU @v, as load_unaligned_zeropad() makes
 * one across a page boundary: no guest lock, through whatever the
 * guest's page table says.  A not-present entry is a #PF the guest
 * fixes up (the clean outcome inside a conversion window); a present
 * one must read through the alias the page is in, and a private one
 * must reach an accepted page, else a conversion violation.  Enters
 * guest mode.  Returns the access result.
 */
enum sim_access_result sim_guest_stray_read(struct sim_vcpu *v, tdp_gfn_t gfn);

/* One random guest operation on vCPU @v (which is in guest mode). */
void sim_guest_step(struct sim_vcpu *v);

/*
 * The operations, for the scenario and for tests.  Each returns 0, or a
 * negative errno when it could not complete (the cause is reported).
 * sim_guest_access() accepts the page first if the guest has not yet.
 */
int sim_guest_access(struct sim_vcpu *v, tdp_gfn_t gfn, bool write);
int sim_guest_convert(struct sim_vcpu *v, tdp_gfn_t gfn, uint64_t n,
		      bool to_private);

/* Host-driven slot deletion: take dense regions [first, first + nr) from
 * the guest (no access until online), then give them back reset:
 * private, not accepted. */
void sim_guest_offline(struct sim *s, uint64_t first, uint64_t nr);
void sim_guest_online(struct sim *s, uint64_t first, uint64_t nr);

/* The guest's view of guest memory @gfn (stable only when quiesced). */
static inline enum guest_page_state sim_guest_state(const struct sim_guest *g,
						    tdp_gfn_t gfn)
{
	return (enum guest_page_state)g->state[sim_layout_page(g->layout, gfn)];
}

/* The version the guest expects in @gfn (stable only when quiesced). */
static inline uint32_t sim_guest_version(const struct sim_guest *g,
					 tdp_gfn_t gfn)
{
	return g->version[sim_layout_page(g->layout, gfn)];
}

#endif /* SIM_GUEST_H */
