/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Simulated vCPUs: guest mode, a TLB, and address translation the way the
 * CPU does it.
 *
 * Translation: a private GPA (shared bit clear) is walked through the TDX
 * module's Secure EPT, a shared GPA through libtdp's direct tree from the
 * root loaded at VM entry (tdp_vcpu_load_root), with atomic loads inside
 * tdp_walk_begin/end.  Neither walk looks at the engine's mirror.  An
 * entry translates if any of R/W/X is set; a leaf is a level-1 entry or
 * one with the page-size bit.  A miss (or a write through a read-only
 * leaf) is an EPT violation that the caller takes to the host.
 *
 * Accessed and dirty bits: a walk of the direct tree sets the leaf's
 * accessed bit, and for a write its dirty bit, with a compare-exchange
 * (the engine clears them with atomic operations); a write through a
 * TLB entry made by a read walks again to set the dirty bit, as the CPU
 * does.
 *
 * TLB: SIM_TLB_ENTRIES direct-mapped 4 KiB entries.  The vCPU holds its
 * TLB lock across translate + access, so a host flush callback (which
 * takes every TLB lock) is a synchronous shootdown: once it returns, no
 * vCPU uses an entry it invalidated.  Host flushes invalidate shared
 * entries only; private entries are dropped only at VM entry when the TD
 * epoch moved (the module's rule), so a host that skips BLOCK/TRACK/kick
 * leaves live stale private translations behind.
 *
 * Guest mode: VM entry (tdx_vp_enter) and exit (tdx_vp_exit) maintain the
 * module's epoch counts.  A kick asks a vCPU in guest mode to exit and
 * waits until it did; a hold-out keeps every vCPU out of guest mode.
 */
#ifndef SIM_VCPU_H
#define SIM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

#include "rng.h"
#include "tdx_module.h"

struct sim;

#define SIM_TLB_ENTRIES 64

struct sim_tlb_entry {
	tdp_gfn_t gfn; /* as issued: the shared bit set for the shared alias */
	tdp_pfn_t pfn;
	/* Shared entries: the root (EPT pointer) the walk started from. */
	tdp_pfn_t root_pfn;
	uint8_t level; /* level of the leaf the entry came from */
	bool valid;
	bool writable;
	/* Shared entries: the walk set the leaf's dirty bit, so writes
	 * may use the entry without another walk. */
	bool dirty;
	bool private;
};

/*
 * One entry of the paging-structure cache: like Intel's PDE cache, the
 * 4 KiB leaf table a walk from @root_pfn went through for the 2 MiB
 * region @region (the GFN as issued, shared bit included, >> 9).
 */
#define SIM_PSC_ENTRIES 16

struct sim_psc_entry {
	tdp_gfn_t region;
	tdp_pfn_t root_pfn;
	tdp_pfn_t table_pfn;
	uint64_t fill_seq; /* sim_vcpus.psc_seq when it was filled */
	bool valid;
};

struct sim_vcpu {
	struct sim *sim;
	unsigned int id;
	/* Engine context; used by one thread at a time (the vCPU's). */
	struct tdp_vcpu *tdp;
	struct sim_rng rng;
	pthread_t thread;
	/* Root of the shared alias loaded at the last VM entry; owner. */
	tdp_pfn_t root_pfn;
	int root_level;
	/* Guest operations left before a voluntary exit; owner. */
	unsigned int slice;
	/* Region the guest works in mostly; owner. */
	uint64_t home_region;

	/* The TLB: every entry is protected by tlb_lock. */
	pthread_mutex_t tlb_lock;
	struct sim_tlb_entry tlb[SIM_TLB_ENTRIES];
	/*
	 * A filter over the valid entries, for the liveness checks
	 * (sim_tlb_find_live()) that must not take every vCPU's locks on
	 * every page free and PAGE.REMOVE: per 2 MiB bucket of keys (the
	 * GFN of private entries; the PFN of all entries), how many valid
	 * entries fall in it (written under tlb_lock), and a mask of the
	 * non-empty buckets (atomic; updated under tlb_lock).  tlb_busy is
	 * set (atomic) while an access holds tlb_lock and may insert: a
	 * checker that sees it clear and the bucket empty knows that no
	 * entry exists and none is being made, as if it had taken the lock.
	 */
	uint16_t live_count[2][64];
	uint64_t live_mask[2];
	bool tlb_busy;
	/*
	 * The paging-structure cache of the shared alias, and the root
	 * its entries and the TLB's shared entries were walked from (a
	 * copy of root_pfn/root_level for other threads' checks; 0 while
	 * the vCPU loads a root, which may free the old one): all
	 * protected by tlb_lock.
	 */
	struct sim_psc_entry psc[SIM_PSC_ENTRIES];
	unsigned int psc_next;
	/* The last shared GFN the guest wrote (as issued); atomic. */
	tdp_gfn_t last_shared_write;
	tdp_pfn_t tlb_root;
	int tlb_root_level;

	/*
	 * Guest mode: in_guest and exits are written by the owner with
	 * state_lock held; kick is atomic.
	 */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	bool in_guest;
	uint64_t exits;
	bool kick;
};

struct sim_vcpus {
	struct sim_vcpu *v;
	unsigned int nr;
	/* Hold-outs in progress (several threads may hold vCPUs out at
	 * once: demotes by faults run under mmu_lock held for read); while
	 * it is non-zero no vCPU enters guest mode.  Written under
	 * hold_lock, read atomically. */
	unsigned int hold_out;
	pthread_mutex_t hold_lock;
	pthread_cond_t hold_cond;
	/* Fills of paging-structure cache entries so far; atomic. */
	uint64_t psc_seq;

	/*
	 * The dirty-bit ledger: one bit per page of guest memory (dense
	 * numbers, layout.h), set by a vCPU whose walk set the dirty bit
	 * of the leaf mapping the page (under its TLB lock, after the
	 * compare-exchange), cleared when the engine reports the bit
	 * (host.mark_dirty, after every TLB lock was taken once, or a
	 * harvest) or the host drops it on purpose (tdp_clear_dirty_*).  A
	 * bit still set is a dirty bit the engine has neither reported nor
	 * left in the tree.  Atomic ORs and ANDs; the array is immutable.
	 */
	uint64_t *ledger;
	/*
	 * Held across each engine call that clears dirty bits on purpose
	 * (clear-dirty, harvest) and the ledger update after it, and by the
	 * check of a freed page: that check never sees a bit the engine
	 * already cleared on the host's behalf but the host has not yet
	 * dropped.  Never held while taking a backing lock.
	 */
	pthread_mutex_t ledger_lock;
};

/* The vCPU the calling thread runs, or NULL (host threads). */
extern _Thread_local struct sim_vcpu *sim_vcpu_current;

int sim_vcpus_init(struct sim *s, unsigned int nr);
/* Destroys the engine contexts; every vCPU must be out of guest mode. */
void sim_vcpus_destroy_contexts(struct sim *s);
void sim_vcpus_fini(struct sim *s);

/* Make the calling thread run @v (sets sim_vcpu_current and the RNG). */
void sim_vcpu_attach(struct sim_vcpu *v);

/*
 * VM entry: load the shared root, wait while vCPUs are held out, enter
 * (retrying OPERAND_BUSY), flush private TLB entries if the epoch moved.
 * Returns false if the engine refused the root (the MMU is dead or torn
 * down).  No-op in guest mode.
 */
bool sim_vcpu_enter(struct sim_vcpu *v);
/* VM exit.  No-op outside guest mode. */
void sim_vcpu_exit(struct sim_vcpu *v);
/* In guest mode and asked to leave (kicked, or the slice is spent). */
bool sim_vcpu_should_exit(struct sim_vcpu *v);

enum sim_access_result {
	SIM_ACCESS_OK,
	SIM_ACCESS_EPT_VIOLATION, /* the walk found no usable leaf */
	SIM_ACCESS_BAD_FRAME,     /* a translation to a frame that is not
				     host memory or not an S-EPT table */
	SIM_ACCESS_MMIO,          /* an EPT misconfiguration: the walk
				     met an MMIO SPTE (in stop_entry) */
	SIM_ACCESS_GUEST_PF,      /* the guest's own page table does not
				     map the page (acc->guest_pte) */
};

struct sim_access {
	/* Input. */
	bool write;
	uint64_t new_tag; /* stored on a write */
	/*
	 * If set, the guest's own page-table entry of the page (enum
	 * guest_pte): read under the TLB lock, it decides the alias (the
	 * shared bit of the GFN passed is ignored), and a not-present one
	 * ends the access with SIM_ACCESS_GUEST_PF before any translation.
	 */
	const uint8_t *guest_pte;
	/* Output. */
	uint8_t pte_seen;   /* *guest_pte as read */
	tdp_pfn_t pfn;
	int level;          /* leaf level, or where the walk stopped */
	uint64_t stop_entry;/* the entry where the walk stopped */
	bool tlb_hit;
	uint64_t old_tag;   /* the page's tag before the access */
	uint32_t page_use;  /* enum host_page_use at access time */
	tdp_gfn_t page_gfn; /* GFN the host page backs */
	uint32_t page_owner; /* the host page's owner tag */
	struct tdx_pamt_info pamt; /* private accesses: PAMT of the page */
};

/*
 * sim_vcpu_access() - one guest access to @gpa_gfn (shared bit included
 * for the shared alias) in guest mode: translate through the TLB or a
 * hardware walk, then read the page's tag and, for a write, store
 * acc->new_tag, all under the TLB lock.
 */
enum sim_access_result sim_vcpu_access(struct sim_vcpu *v, tdp_gfn_t gpa_gfn,
				       struct sim_access *acc);

/*
 * The guest's TLB shootdown after it cleared its own page-table entries:
 * every vCPU's TLB lock taken once, so no access that read an entry
 * before the change is still in flight.
 */
void sim_vcpus_guest_tlb_barrier(struct sim *s);

/* Kick every vCPU out of guest mode and wait until each left once. */
void sim_vcpus_kick_all(struct sim *s);
/* Keep every vCPU out of guest mode until sim_vcpus_hold_out_end(). */
void sim_vcpus_hold_out_begin(struct sim *s);
void sim_vcpus_hold_out_end(struct sim *s);

/* Host TLB shootdown of shared entries (engine flush callbacks). */
void sim_tlb_shoot_down(struct sim *s, tdp_gfn_t gpa_gfn, uint64_t nr_pages,
			bool all);

/*
 * A live translation (one a vCPU can still use) to host frames
 * [pfn, pfn + nr) or, with @by_gfn, of private GFNs [pfn, pfn + nr).
 * Returns the vCPU id and stores the entry's GFN, or returns -1.  A
 * private entry is live while its vCPU is in guest mode, or until its
 * next VM entry if the epoch has not moved since it entered.
 */
int sim_tlb_find_live(struct sim *s, uint64_t start, uint64_t nr,
		      bool by_gfn, tdp_gfn_t *gfn_out);

/*
 * A shared TLB entry some vCPU got by walking the root whose table is
 * @root_pfn.  Returns the vCPU id and stores the entry's GFN, or -1.
 */
int sim_tlb_find_by_root(struct sim *s, tdp_pfn_t root_pfn,
			 tdp_gfn_t *gfn_out);

/* ---- the dirty-bit ledger (see struct sim_vcpus) ---- */

/* A vCPU set the dirty bit of the leaf that maps @gfn (shared bit
 * allowed); its TLB lock is held.  GFNs outside guest memory are
 * ignored. */
void sim_ledger_cpu_dirtied(struct sim *s, tdp_gfn_t gfn);
/*
 * The engine reported pages [gfn, gfn + n) dirty through mark_dirty
 * (shared bit allowed): takes every TLB lock once, then forgets them;
 * nothing while this thread holds reports (sim_ledger_hold_reports()).
 */
void sim_ledger_reported(struct sim *s, tdp_gfn_t gfn, uint64_t n);
/*
 * While on, mark_dirty reports made on this thread leave the ledger
 * alone: for an engine call whose contract keeps the dirty bit in the
 * tree although it reports the leaves it removes (recovery).
 */
void sim_ledger_hold_reports(bool on);
/* Forget the bits of [gfn, gfn + n) (harvested, or dropped on purpose);
 * the caller holds ledger_lock. */
void sim_ledger_drop(struct sim *s, tdp_gfn_t gfn, uint64_t n);
void sim_ledger_lock(struct sim *s);
void sim_ledger_unlock(struct sim *s);
/* Whether the ledger bit of @gfn (unaliased) is set. */
bool sim_ledger_test(struct sim *s, tdp_gfn_t gfn);
/*
 * The host frees the shared page of @gfn (unaliased) after the zap that
 * unmapped it returned: a ledger bit still set is a dirty bit the engine
 * lost (SIM_V_DIRTY_LOG).  The bit is dropped either way.
 */
void sim_ledger_check_freed(struct sim *s, tdp_gfn_t gfn);

/*
 * Every valid shared TLB entry and paging-structure cache entry of every
 * vCPU is backed by the direct tree: walked from the entry's root (the
 * vCPU's loaded root), the tree still reaches the cached leaf table, or
 * a present leaf of the same frame with at least the entry's rights
 * (writable, and dirty for an entry that writes without a walk).  Each
 * miss is a SIM_V_STALE_TRANSLATION.  Takes each vCPU's TLB lock in
 * turn; the caller keeps the tree still: every worker paused, or
 * mmu_lock held for write (the CPU's A/D bits may still change).
 */
void sim_vcpus_check_backed(struct sim *s);

/* The fill count of the paging-structure caches (an order, see below). */
uint64_t sim_vcpus_psc_seq(struct sim *s);

/*
 * A paging-structure cache entry of leaf table @table_pfn filled before
 * fill count @before (sim_vcpus_psc_seq() then): returns the vCPU id and
 * stores the entry's GFN (unaliased), or returns -1.
 */
int sim_vcpus_find_cached_table(struct sim *s, tdp_pfn_t table_pfn,
				uint64_t before, tdp_gfn_t *gfn_out);

/*
 * The leaf table the direct tree links for @gfn (as issued), walked from
 * @root (a root the caller holds): 0 if the walk does not reach one.
 */
tdp_pfn_t sim_tree_leaf_table(struct sim *s, tdp_pfn_t root, int root_level,
			      tdp_gfn_t gfn);

/*
 * A paging-structure cache entry for the 2 MiB region of @gpa_gfn (as
 * issued) whose leaf table the tree, walked from the entry's root (the
 * vCPU's loaded root), no longer links: a table the engine unlinked and
 * has not flushed yet.  Returns the vCPU id and stores the table, or -1.
 */
int sim_vcpus_find_unlinked_cached(struct sim *s, tdp_gfn_t gpa_gfn,
				   tdp_pfn_t *table_out);

/*
 * The 2 MiB regions (base GFNs, unaliased) the vCPUs' paging-structure
 * caches hold, at most @max of them, in @out; returns how many.
 */
unsigned int sim_vcpus_cached_regions(struct sim *s, tdp_gfn_t *out,
				      unsigned int max);

/*
 * A GFN (unaliased) of guest memory a random vCPU wrote or translated
 * through the direct tree lately: most of the time the last shared page
 * it wrote, else a shared entry of its TLB (a dirty one first).  Returns
 * false, with *@gfn untouched, if it has none: where host events race
 * best with the CPU.
 */
bool sim_vcpus_pick_shared_gfn(struct sim *s, struct sim_rng *rng,
			       tdp_gfn_t *gfn);

#endif /* SIM_VCPU_H */
