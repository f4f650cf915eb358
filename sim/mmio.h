/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest's MMIO window: cfg.mmio_pages GFNs just above guest memory,
 * always accessed through the shared alias (TDX MMIO is shared).  Each
 * page is either a device register (no memory slot: the host maps it
 * with an MMIO SPTE, and every access exits as an EPT misconfiguration
 * the host emulates) or, after the host put a memory slot over it, RAM
 * (a shared host page mapped by an ordinary leaf).  Either way the page
 * holds one tag, (gfn, version), which the guest checks like any page:
 * a layout change copies the content across.
 *
 * MMIO SPTEs carry the MMIO generation current when they were made
 * (tdp/fault.h).  Every layout change bumps the generation: an MMIO SPTE
 * of an older generation is stale, so the host's misconfiguration
 * handler does not trust it and faults again, and tdp_map() replaces it
 * without any zap (a page that became RAM gets its leaf that way).  A
 * misconfiguration exit through an SPTE of the current generation on a
 * page that is RAM means the host changed the layout without bumping
 * the generation: a stale_translation violation.
 *
 * Locks: the window's layout (ram_pfn) and the device registers are
 * protected by mmio.lock; a layout change holds it across the
 * generation bump, so generation and layout always agree under it.
 * Lock order: guest GFN stripe lock, mmio.lock, mmu_lock.
 */
#ifndef SIM_MMIO_H
#define SIM_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

struct sim;
struct sim_vcpu;

struct sim_mmio {
	tdp_gfn_t base;     /* first GFN of the window; immutable */
	unsigned int nr;    /* pages; immutable */
	pthread_mutex_t lock;
	/* Per page, protected by lock: 0 for a device register, else the
	 * shared host page of the memory slot over it. */
	tdp_pfn_t *ram_pfn;
	/* Per page, protected by lock: a device register's content. */
	uint64_t *reg;
	/* Per page: the version the guest wrote last; guest stripe lock. */
	uint32_t *version;
};

int sim_mmio_init(struct sim *s);
void sim_mmio_fini(struct sim *s);

/*
 * One checked guest access to window page @k from vCPU @v (entering
 * guest mode): a walk of the direct tree; an EPT violation goes to the
 * host's fault handler (MMIO SPTE or RAM leaf, by the layout), an EPT
 * misconfiguration to its MMIO handler (emulated, or refaulted when the
 * SPTE's generation is stale).  The caller (the guest) holds its stripe
 * lock of the page's GFN, which protects version[k].  Returns 0 or a
 * negative errno.
 */
int sim_mmio_access(struct sim_vcpu *v, unsigned int k, bool write);

/*
 * Host event: a memory slot is added over window page @k (it becomes
 * RAM) or removed (a device register again; the leaf is zapped first).
 * Bumps the MMIO generation unless cfg.break_mmio_no_bump.
 */
void sim_mmio_flip(struct sim *s, unsigned int k);

/*
 * At a quiesce point: each page's direct-tree entry agrees with the
 * layout and its content with the guest's version.  Adds the window's
 * RAM leaves and pages to the caller's counts.
 */
void sim_mmio_check_quiesced(struct sim *s, uint64_t *leaves_4k,
			     uint64_t *shared_pages);

/* After TD teardown: free the window's RAM pages. */
void sim_mmio_release(struct sim *s);

#endif /* SIM_MMIO_H */
