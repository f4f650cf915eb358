/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Simulated host memory: an array of 4 KiB pages, PFN = index + base.
 *
 * The physical layout is fixed at creation and split into ranges, the way
 * the host kernel sees memblock at boot:
 *   - TDX-usable ranges: the list the host hands the TDX module once (like
 *     the kernel's tdx_memlist built from memblock); private pages, S-EPT
 *     pages and TD control pages must come from here;
 *   - a firmware hole that is never allocated;
 *   - a non-TDX range (memory hot-added after the TDX module was
 *     configured, e.g. CXL): usable for shared memory only.
 * The ranges never change after host_mem_init().
 *
 * Each page records what the host allocated it for and the GFN it backs,
 * and carries a content tag: the (gfn, version) the guest last wrote, so
 * a stale translation reads visibly wrong data.  Page contents are not
 * simulated beyond the tag.
 */
#ifndef SIM_HOST_MEM_H
#define SIM_HOST_MEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/types.h>

enum host_page_use {
	HOST_PAGE_FREE,
	HOST_PAGE_SHARED,     /* backs a GFN's shared alias (host memory) */
	HOST_PAGE_PRIVATE,    /* backs a GFN's private alias (guest_memfd) */
	HOST_PAGE_SEPT,       /* given to the module as a Secure-EPT page */
	HOST_PAGE_TD_CONTROL, /* given to the module as TDR/TDCS/TDVPR */
	HOST_PAGE_RESERVED,   /* firmware hole: never allocated */
	HOST_PAGE_NR_USES
};

enum host_range_kind {
	HOST_RANGE_TDX,      /* TDX-usable */
	HOST_RANGE_NON_TDX,  /* ordinary memory the TDX module does not know */
	HOST_RANGE_HOTPLUG,  /* memory hot-added after the module was
				initialized: offline until host_mem_online(),
				then like non-TDX memory */
	HOST_RANGE_RESERVED, /* firmware hole */
};

/* Where an allocation may come from. */
enum host_pool {
	HOST_POOL_TDX,     /* TDX-usable ranges only */
	HOST_POOL_ANY,     /* hot-added (once online) first, then non-TDX,
			      then TDX-usable */
	HOST_POOL_NON_TDX, /* non-TDX only (for deliberately broken hosts) */
	HOST_POOL_HOTPLUG, /* the hot-added range only (broken hosts) */
};

/*
 * Content tag of a page: the GFN and version the guest last wrote there
 * (a fresh or accepted page holds version 0).  Versions wrap at 2^24.
 */
#define SIM_TAG_GFN_BITS 40
#define SIM_TAG_VERSION_MASK ((uint64_t)0xffffff)
#define SIM_TAG(gfn, version)                                                  \
	((((uint64_t)(version) & SIM_TAG_VERSION_MASK) << SIM_TAG_GFN_BITS) | \
	 (uint64_t)(gfn))
#define SIM_TAG_GFN_MASK (((uint64_t)1 << SIM_TAG_GFN_BITS) - 1)
#define SIM_TAG_GFN(tag) ((uint64_t)(tag) & SIM_TAG_GFN_MASK)
#define SIM_TAG_VERSION(tag) ((uint64_t)(tag) >> SIM_TAG_GFN_BITS)
/* Content of a free page: matches no (gfn, version). */
#define SIM_TAG_POISON UINT64_MAX

struct host_page {
	uint32_t use;  /* enum host_page_use; atomic */
	/* Who allocated it: a TD's host (its number + 1), or 0 while free;
	 * atomic.  With several TDs a page is one TD's at a time. */
	uint32_t owner;
	tdp_gfn_t gfn; /* GFN backed (SHARED, PRIVATE); atomic */
	uint64_t tag;  /* contents, see SIM_TAG; atomic */
};

struct host_range {
	tdp_pfn_t start, end; /* [start, end) */
	enum host_range_kind kind;
};

#define HOST_MAX_RANGES 6
#define HOST_CHUNK_PAGES 512 /* 2 MiB */

struct host_mem {
	/* Immutable after host_mem_init(). */
	tdp_pfn_t base;
	uint64_t nr_pages;
	struct host_page *pages;
	struct host_range ranges[HOST_MAX_RANGES];
	int nr_ranges;
	uint8_t *chunk_kind; /* enum host_range_kind per 2 MiB chunk */

	/* Allocator state: protected by lock. */
	pthread_mutex_t lock;
	uint64_t *free_bits;   /* bit set = page free */
	uint16_t *chunk_free;  /* free pages per chunk */
	uint64_t cursor;       /* next chunk to look at */

	uint64_t in_use[HOST_PAGE_NR_USES]; /* atomic */
	bool hotplug_online; /* protected by lock */
};

/*
 * host_mem_init() - lay out @tdx_pages of TDX-usable memory (split in two
 * ranges around a firmware hole) followed by @non_tdx_pages of non-TDX
 * memory and @hotplug_pages of memory that is hot-added later (offline
 * until host_mem_online_hotplug()), all rounded up to 2 MiB.  Returns 0
 * or -ENOMEM.
 */
int host_mem_init(struct host_mem *m, uint64_t tdx_pages,
		  uint64_t non_tdx_pages, uint64_t hotplug_pages);

/*
 * Bring the hot-added range online: its pages become free memory of the
 * non-TDX pool.  Returns its first and last + 1 PFN in *@start, *@end
 * (both 0 without one).  Once; false if already online or none.
 */
bool host_mem_online_hotplug(struct host_mem *m, tdp_pfn_t *start,
			     tdp_pfn_t *end);

/* The hot-added range, online or not ([0, 0) without one). */
void host_mem_hotplug_range(const struct host_mem *m, tdp_pfn_t *start,
			    tdp_pfn_t *end);
void host_mem_destroy(struct host_mem *m);

/* The page of @pfn, or NULL if @pfn is not host memory. */
struct host_page *host_mem_page(struct host_mem *m, tdp_pfn_t pfn);

/* True if [pfn, pfn + n) lies wholly inside one TDX-usable range. */
bool host_mem_tdx_usable(const struct host_mem *m, tdp_pfn_t pfn, uint64_t n);

/*
 * host_mem_alloc() - allocate one page from @pool for @use by @owner
 * (a TD's number + 1), backing @gfn
 * (SIM_NO_GFN-like values are fine for table pages).  The tag is set to
 * SIM_TAG(gfn, 0).  Returns the PFN, or 0 when the pool is exhausted.
 */
tdp_pfn_t host_mem_alloc(struct host_mem *m, uint32_t owner,
			 enum host_pool pool, enum host_page_use use,
			 tdp_gfn_t gfn);

/*
 * host_mem_alloc_2m() - allocate a free, 2 MiB-aligned run of 512 pages
 * from @pool backing @gfn .. @gfn + 511.  Returns the first PFN, or 0 if no
 * whole chunk is free.
 */
tdp_pfn_t host_mem_alloc_2m(struct host_mem *m, uint32_t owner,
			    enum host_pool pool, enum host_page_use use,
			    tdp_gfn_t gfn);

/*
 * host_mem_free() - return an allocated page; its tag becomes
 * SIM_TAG_POISON.  Returns false (and changes nothing) if the page was not
 * allocated.
 */
bool host_mem_free(struct host_mem *m, tdp_pfn_t pfn);

static inline uint32_t host_page_use(const struct host_page *p)
{
	return __atomic_load_n(&p->use, __ATOMIC_ACQUIRE);
}

static inline tdp_gfn_t host_page_gfn(const struct host_page *p)
{
	return __atomic_load_n(&p->gfn, __ATOMIC_RELAXED);
}

static inline uint64_t host_page_tag(const struct host_page *p)
{
	return __atomic_load_n(&p->tag, __ATOMIC_ACQUIRE);
}

static inline void host_page_set_tag(struct host_page *p, uint64_t tag)
{
	__atomic_store_n(&p->tag, tag, __ATOMIC_RELEASE);
}

uint64_t host_mem_in_use(const struct host_mem *m, enum host_page_use use);
/* Pages of @use that @owner holds (a scan: for checks). */
uint64_t host_mem_in_use_by(const struct host_mem *m, enum host_page_use use,
			    uint32_t owner);

static inline uint32_t host_page_owner(const struct host_page *p)
{
	return __atomic_load_n(&p->owner, __ATOMIC_ACQUIRE);
}
const char *host_page_use_name(uint32_t use);
const char *host_range_kind_name(enum host_range_kind kind);

#endif /* SIM_HOST_MEM_H */
