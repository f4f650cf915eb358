/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated host (VMM) that embeds libtdp, the way KVM with
 * guest_memfd does:
 *   - memory attributes: per GFN, private or shared, changed by the
 *     guest's MapGPA and reset by slot deletion;
 *   - backing: a private page per GFN (guest_memfd, from TDX-usable
 *     memory) and a shared page per GFN (ordinary host memory), each
 *     allocated at the first fault and, with huge pages on, as a whole
 *     2 MiB chunk when the 2 MiB region is uniform;
 *   - the fault handler: capture tdp_mmu_seq(), check the attribute,
 *     resolve the frame, tdp_map();
 *   - events, each a tdp_invalidate_begin/end bracket around the zap the
 *     event calls for and the backing change: MapGPA to private
 *     (tdp_zap_convert_to_private, shared page discarded), MapGPA to
 *     shared (tdp_zap_convert_to_shared, private page discarded), host
 *     unmap of shared memory (tdp_zap_host_unmap, pages migrated),
 *     slot deletion (tdp_zap_slot_deleted, all backing freed);
 *   - the TLB callbacks libtdp calls: synchronous shootdowns.
 *
 * Every page the host frees is checked first: no live TLB entry may
 * translate to it, the PAMT must show it is not the TD's, and no tree
 * may map it.
 */
#ifndef SIM_HOST_H
#define SIM_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

#include "layout.h"

struct sim;

enum sim_attr {
	SIM_ATTR_PRIVATE = 0,
	SIM_ATTR_SHARED = 1,
};

struct sim_host {
	const struct sim_layout *layout; /* immutable */
	/*
	 * Per page of guest memory (dense page number, see layout.h),
	 * atomics.  attr, private_pfn and shared_pfn change only with the
	 * region's backing_lock held; attr changes also only inside an
	 * invalidate_begin/end bracket of the GFN.
	 */
	uint8_t *attr;
	tdp_pfn_t *private_pfn; /* 0: none */
	tdp_pfn_t *shared_pfn;  /* 0: none */
	pthread_mutex_t *backing_lock; /* one per region (dense number) */
	/* Engine context of the host-event thread (pre-faults). */
	struct tdp_vcpu *ctx;
	/* sim_host_hot_add() ran (the event thread, or a test's). */
	bool hot_added;
	/*
	 * Told of shared pages whose content changed without a guest write
	 * a dirty log sees (a dirty leaf zapped, a conversion, a slot
	 * deletion); NULL: nobody listens.  Set before the run (the
	 * migration, sim_migrate_init()); immutable while it runs.
	 */
	void (*pages_changed)(struct sim *s, tdp_gfn_t gfn, uint64_t n);
	/*
	 * Bookkeeping for the check after a fault (sim_host_fault()),
	 * atomics.  zap_gen: + 1 by every range event (MapGPA, unmap, slot
	 * deletion) with the range's backing locks held, before its zap
	 * (the MMIO window's layout changes zap no guest memory).  Any new
	 * zap of guest memory must bump it too.
	 * root_seq: + 1 before a root invalidation (or a tdp_zap_all(),
	 * which takes no backing lock) and + 1 after its zap, so odd while
	 * one runs; only the event thread runs either.  A fault that saw both
	 * unchanged (root_seq even) across its tdp_map() cannot have lost
	 * its new leaf to the host.
	 */
	uint64_t zap_gen;
	uint64_t root_seq;
};

int sim_host_init(struct sim *s);
void sim_host_fini(struct sim *s);

/* The TLB callbacks handed to tdp_mmu_create(). */
void sim_host_ops_init(struct sim *s, struct tdp_host_ops *ops);

/* Set the attribute of guest memory @gfn before anything runs. */
void sim_host_set_initial_attr(struct sim *s, tdp_gfn_t gfn, enum sim_attr a);

static inline enum sim_attr sim_host_attr(const struct sim_host *h,
					  tdp_gfn_t gfn)
{
	return (enum sim_attr)__atomic_load_n(
		&h->attr[sim_layout_page(h->layout, gfn)], __ATOMIC_ACQUIRE);
}

tdp_pfn_t sim_host_private_pfn(struct sim *s, tdp_gfn_t gfn);
tdp_pfn_t sim_host_shared_pfn(struct sim *s, tdp_gfn_t gfn);

/*
 * True on a thread while its sim_host_fault() is inside tdp_map(): the
 * private backend's callbacks then run under mmu_lock held for read (a
 * demote_leaf from a fault, not from a zap).
 */
extern __thread bool sim_host_in_fault;

/* One vCPU fault in this many is delayed by up to cfg.fault_delay_us. */
#define SIM_FAULT_DELAY_ONE_IN 64

/*
 * sim_host_fault() - handle an EPT violation on @fault_gfn (shared bit
 * set for the shared alias) from engine context @ctx; @vcpu is the vCPU
 * id for reports or SIM_NO_VCPU.  @accept_level is the largest level
 * the fault may map: the level of the guest's ACCEPT that exited, or of a
 * pre-fault; 0 for as large as the backing allows.
 * Returns tdp_map()'s result; -EAGAIN if the attribute of the GFN does
 * not match the alias (the caller decides whether that is a bug).
 */
int sim_host_fault(struct sim *s, struct tdp_vcpu *ctx, int vcpu,
		   tdp_gfn_t fault_gfn, bool write, int accept_level);

/*
 * The host reads the content of host page @pfn (to copy it).  A page the
 * PAMT gives to a TD (control, S-EPT or private page) is never read by
 * the host: doing so is a page_ownership violation (and reads nothing).
 */
uint64_t sim_host_read_page(struct sim *s, tdp_pfn_t pfn);

/*
 * The content of @gfn's shared page (a fresh page's (gfn, 0) if none is
 * allocated yet) in *@tag, read under the region's backing lock; false
 * if the GFN is private.
 */
bool sim_host_read_shared(struct sim *s, tdp_gfn_t gfn, uint64_t *tag);

/* Count one tdp_map() result of the host's (by alias and outcome). */
void sim_host_count_fault(struct sim *s, bool private, int ret);

/*
 * Free host page @pfn that backed @gfn's alias, after checking nobody can
 * still reach it: no live TLB entry, not the TD's in the PAMT, no tree
 * maps it (each a violation; a page the TD owns is kept).
 */
void sim_host_free_page(struct sim *s, tdp_gfn_t gfn, bool private,
			tdp_pfn_t pfn);

/*
 * sim_host_map_gpa() - the guest's MapGPA of [gfn, gfn + n) (unaliased):
 * attribute change, zap of the alias that goes away, discard of its
 * backing.  The caller is outside guest mode.  Returns 0 or an engine
 * error (reported).
 */
int sim_host_map_gpa(struct sim *s, tdp_gfn_t gfn, uint64_t n,
		     bool to_private);

/* Host unmap (page migration) of the shared backing of [gfn, gfn + n). */
void sim_host_unmap_shared(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/*
 * Slot deletion and re-creation of [gfn, gfn + n): every mapping and all
 * backing go, the attributes return to private.  The guest must have
 * offlined the range (sim_guest_offline()).
 */
void sim_host_slot_delete(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/*
 * Recover the private 2 MiB pages of [gfn, gfn + n) (2 MiB aligned): the
 * tables of 512 contiguous 4 KiB leaves are promoted, as a host does when
 * it stops splitting a range (dirty logging off, a conversion undone).
 */
void sim_host_recover(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/*
 * Eager split of the shared huge leaves of [gfn, gfn + n) down to 4 KiB
 * (as before dirty logging): each becomes a table of 512 contiguous
 * leaves, which a recovery of the shared alias may collapse again.
 */
void sim_host_split_huge(struct sim *s, tdp_gfn_t gfn, uint64_t n);

/*
 * If @gfn's 2 MiB region is mapped by a private 2 MiB leaf, pre-fault
 * @gfn at 4 KiB: the fault demotes the leaf in place into a table of 512
 * leaves of the same frames and state, which a recovery promotes back
 * (unless the guest accepts or converts part of it first).  Returns
 * whether it found such a leaf.
 */
bool sim_host_demote_private(struct sim *s, tdp_gfn_t gfn);

/*
 * The host's address space goes away: tdp_zap_all() zaps every shared
 * mapping and unlinks every direct table (the mirror stays); the guest
 * faults its shared memory in again.
 */
void sim_host_zap_all(struct sim *s);

/*
 * Every shared TLB entry of every vCPU is backed by the root it was
 * walked from (a present leaf with its frame, writable if the entry is),
 * else a stale_translation.  Only valid while no operation is inside
 * the tree: with mmu_lock held for write through tdp_mmu_exclusive().
 */
void sim_host_check_tlbs_backed(struct sim *s);

/*
 * Pre-fault private GFNs of [gfn, gfn + n) (KVM_PRE_FAULT_MEMORY), at most
 * at @level (0: as large as the backing allows).  A 4 KiB pre-fault below
 * a 2 MiB private page demotes it; a 2 MiB one leaves PENDING pages that
 * the guest's 4 KiB ACCEPTs must have demoted.
 */
void sim_host_prefault(struct sim *s, tdp_gfn_t gfn, uint64_t n, int level);

/*
 * TD build, before any vCPU runs: every page of the initial image
 * (cfg.image_pages pages from the start of guest memory) is mapped
 * through the engine's mirror root at 4 KiB with a source page the host
 * filled with the image (set_leaf then does PAGE.ADD), measured with 16
 * MR.EXTENDs, and the TD is finalized.  Image page i holds
 * sim_image_tag(seed, gfn).  Returns 0, or -EIO when a step failed
 * (reported by the module or the engine).
 */
enum sim_build_break {
	SIM_BUILD_OK,
	SIM_BUILD_AUG,                /* no source page: set_leaf AUGs */
	SIM_BUILD_ADD_AFTER_FINALIZE, /* the last page added after FINALIZE */
	SIM_BUILD_SKIP_EXTEND,        /* the first page is not measured */
	SIM_BUILD_WRONG_SOURCE,       /* the first source page is wrong */
};
int sim_host_build_td(struct sim *s);

/* The content of image page @gfn: (gfn, a non-zero version). */
uint64_t sim_image_tag(uint64_t seed, tdp_gfn_t gfn);

/*
 * Memory hot-add (seed 001): the list of TDX-usable memory is fixed when
 * the module is initialized.  sim_host_online_hook() is the host
 * kernel's memory-onlining notifier: it refuses (-EPERM) to online
 * memory outside that list for private use and lets it online for
 * ordinary use.  sim_host_hot_add() onlines the hot-added range through
 * it: refused for private use, then online for shared backing.  Private
 * backing never comes from it (the module would refuse it with
 * TDX_OPERAND_ADDR_RANGE_ERROR).
 */
int sim_host_online_hook(struct sim *s, tdp_pfn_t start, tdp_pfn_t end,
			 bool private_use);
void sim_host_hot_add(struct sim *s); /* once per TD; the first onlines */

/*
 * Root invalidation while the VM runs (a memory-slot flag change):
 * tdp_mmu_invalidate_roots() of the direct root, then
 * tdp_mmu_zap_invalidated_roots().  vCPUs load the new root at their
 * next entry (or when a fault retries).  When the zap returns, no vCPU
 * TLB may hold a translation walked through the old root (checked; the
 * host keeps a reference to the old root across the check, so its frame
 * cannot be reused meanwhile).
 */
void sim_host_invalidate_root(struct sim *s);

/* After TD teardown: discard every backing page (checked). */
void sim_host_release_all(struct sim *s);

#endif /* SIM_HOST_H */
