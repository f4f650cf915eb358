/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Simulated host memory (see host_mem.h): a bitmap page allocator that
 * keeps whole 2 MiB chunks free when it can, so huge backing stays
 * available: single pages come from partly used chunks first.
 */
#include "host_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Host physical address 4 GiB: far from the first MiB TDX never uses. */
#define HOST_MEM_BASE_PFN 0x100000ULL

static uint64_t round_chunk(uint64_t pages)
{
	const uint64_t mask = HOST_CHUNK_PAGES - 1;

	return (pages + mask) & ~mask;
}

static void add_range(struct host_mem *m, uint64_t *next, uint64_t pages,
		      enum host_range_kind kind)
{
	struct host_range *r = &m->ranges[m->nr_ranges++];

	r->start = m->base + *next;
	r->end = r->start + pages;
	r->kind = kind;
	for (uint64_t c = *next / HOST_CHUNK_PAGES;
	     c < (*next + pages) / HOST_CHUNK_PAGES; c++)
		m->chunk_kind[c] = (uint8_t)kind;
	*next += pages;
}

int host_mem_init(struct host_mem *m, uint64_t tdx_pages,
		  uint64_t non_tdx_pages, uint64_t hotplug_pages)
{
	uint64_t low, high, next = 0, chunks;

	memset(m, 0, sizeof(*m));
	tdx_pages = round_chunk(tdx_pages);
	non_tdx_pages = round_chunk(non_tdx_pages);
	hotplug_pages = round_chunk(hotplug_pages);
	/* Two TDX-usable ranges around a one-chunk firmware hole. */
	low = round_chunk(tdx_pages / 2);
	high = tdx_pages - low;
	if (!high)
		high = HOST_CHUNK_PAGES;
	m->base = HOST_MEM_BASE_PFN;
	m->nr_pages = low + HOST_CHUNK_PAGES + high + non_tdx_pages +
		      hotplug_pages;
	chunks = m->nr_pages / HOST_CHUNK_PAGES;

	m->pages = calloc(m->nr_pages, sizeof(*m->pages));
	m->free_bits = calloc(m->nr_pages / 64, sizeof(uint64_t));
	m->chunk_free = calloc(chunks, sizeof(uint16_t));
	m->chunk_kind = calloc(chunks, sizeof(uint8_t));
	if (!m->pages || !m->free_bits || !m->chunk_free || !m->chunk_kind) {
		host_mem_destroy(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);

	add_range(m, &next, low, HOST_RANGE_TDX);
	add_range(m, &next, HOST_CHUNK_PAGES, HOST_RANGE_RESERVED);
	add_range(m, &next, high, HOST_RANGE_TDX);
	if (non_tdx_pages)
		add_range(m, &next, non_tdx_pages, HOST_RANGE_NON_TDX);
	if (hotplug_pages)
		add_range(m, &next, hotplug_pages, HOST_RANGE_HOTPLUG);

	for (uint64_t i = 0; i < m->nr_pages; i++) {
		/* Offline hot-added memory is not free yet either. */
		bool reserved = m->chunk_kind[i / HOST_CHUNK_PAGES] ==
					HOST_RANGE_RESERVED ||
				m->chunk_kind[i / HOST_CHUNK_PAGES] ==
					HOST_RANGE_HOTPLUG;

		m->pages[i].use = reserved ? HOST_PAGE_RESERVED
					   : HOST_PAGE_FREE;
		m->pages[i].tag = SIM_TAG_POISON;
		if (!reserved) {
			m->free_bits[i / 64] |= 1ULL << (i % 64);
			m->chunk_free[i / HOST_CHUNK_PAGES]++;
		}
	}
	return 0;
}

void host_mem_destroy(struct host_mem *m)
{
	if (m->pages)
		pthread_mutex_destroy(&m->lock);
	free(m->pages);
	free(m->free_bits);
	free(m->chunk_free);
	free(m->chunk_kind);
	memset(m, 0, sizeof(*m));
}

struct host_page *host_mem_page(struct host_mem *m, tdp_pfn_t pfn)
{
	if (pfn < m->base || pfn - m->base >= m->nr_pages)
		return NULL;
	return &m->pages[pfn - m->base];
}

bool host_mem_tdx_usable(const struct host_mem *m, tdp_pfn_t pfn, uint64_t n)
{
	for (int i = 0; i < m->nr_ranges; i++) {
		const struct host_range *r = &m->ranges[i];

		if (r->kind != HOST_RANGE_TDX)
			continue;
		/* Ranges are disjoint and not adjacent: a run inside TDX
		 * memory lies inside exactly one of them. */
		if (pfn >= r->start && pfn + n <= r->end && pfn + n > pfn)
			return true;
	}
	return false;
}

static bool chunk_in_pool(const struct host_mem *m, uint64_t chunk,
			  enum host_pool pool)
{
	enum host_range_kind kind = m->chunk_kind[chunk];

	switch (pool) {
	case HOST_POOL_TDX:
		return kind == HOST_RANGE_TDX;
	case HOST_POOL_NON_TDX:
		return kind == HOST_RANGE_NON_TDX || kind == HOST_RANGE_HOTPLUG;
	case HOST_POOL_HOTPLUG:
		return kind == HOST_RANGE_HOTPLUG;
	case HOST_POOL_ANY:
		return kind != HOST_RANGE_RESERVED;
	}
	return false;
}

static void claim_page(struct host_mem *m, uint64_t idx, uint32_t owner,
		       enum host_page_use use, tdp_gfn_t gfn)
{
	struct host_page *p = &m->pages[idx];

	m->free_bits[idx / 64] &= ~(1ULL << (idx % 64));
	m->chunk_free[idx / HOST_CHUNK_PAGES]--;
	__atomic_store_n(&p->gfn, gfn, __ATOMIC_RELAXED);
	__atomic_store_n(&p->owner, owner, __ATOMIC_RELAXED);
	host_page_set_tag(p, SIM_TAG(gfn, 0));
	__atomic_store_n(&p->use, (uint32_t)use, __ATOMIC_RELEASE);
}

/* A chunk of @pool with a free page, preferring partly used ones; lock. */
static int64_t find_chunk_locked(struct host_mem *m, enum host_pool pool)
{
	uint64_t chunks = m->nr_pages / HOST_CHUNK_PAGES;
	int64_t any = -1;

	for (uint64_t n = 0; n < chunks; n++) {
		uint64_t c = (m->cursor + n) % chunks;
		uint16_t f = m->chunk_free[c];

		if (!f || !chunk_in_pool(m, c, pool))
			continue;
		if (f < HOST_CHUNK_PAGES) {
			m->cursor = c;
			return (int64_t)c;
		}
		if (any < 0)
			any = (int64_t)c;
	}
	return any;
}

static tdp_pfn_t alloc_one_locked(struct host_mem *m, uint32_t owner,
				 enum host_pool pool,
				  enum host_page_use use, tdp_gfn_t gfn)
{
	int64_t c = find_chunk_locked(m, pool);

	if (c < 0)
		return 0;
	for (uint64_t w = (uint64_t)c * HOST_CHUNK_PAGES / 64;
	     w < ((uint64_t)c + 1) * HOST_CHUNK_PAGES / 64; w++) {
		uint64_t idx;

		if (!m->free_bits[w])
			continue;
		idx = w * 64 + (uint64_t)__builtin_ctzll(m->free_bits[w]);
		claim_page(m, idx, owner, use, gfn);
		return m->base + idx;
	}
	return 0;
}

tdp_pfn_t host_mem_alloc(struct host_mem *m, uint32_t owner,
			 enum host_pool pool, enum host_page_use use,
			 tdp_gfn_t gfn)
{
	tdp_pfn_t pfn;

	pthread_mutex_lock(&m->lock);
	if (pool == HOST_POOL_ANY) {
		/* Hot-added memory first once it is online: it is there
		 * for ordinary use. */
		pfn = m->hotplug_online
			      ? alloc_one_locked(m, owner, HOST_POOL_HOTPLUG, use, gfn)
			      : 0;
		if (!pfn)
			pfn = alloc_one_locked(m, owner, HOST_POOL_NON_TDX, use, gfn);
		if (!pfn)
			pfn = alloc_one_locked(m, owner, HOST_POOL_TDX, use, gfn);
	} else {
		pfn = alloc_one_locked(m, owner, pool, use, gfn);
	}
	pthread_mutex_unlock(&m->lock);
	if (pfn)
		__atomic_add_fetch(&m->in_use[use], 1, __ATOMIC_RELAXED);
	return pfn;
}

static tdp_pfn_t alloc_2m_locked(struct host_mem *m, uint32_t owner,
				 enum host_pool pool,
				 enum host_page_use use, tdp_gfn_t gfn)
{
	uint64_t chunks = m->nr_pages / HOST_CHUNK_PAGES;

	for (uint64_t c = 0; c < chunks; c++) {
		if (m->chunk_free[c] != HOST_CHUNK_PAGES ||
		    !chunk_in_pool(m, c, pool))
			continue;
		for (uint64_t i = 0; i < HOST_CHUNK_PAGES; i++)
			claim_page(m, c * HOST_CHUNK_PAGES + i, owner, use,
				   gfn + i);
		return m->base + c * HOST_CHUNK_PAGES;
	}
	return 0;
}

tdp_pfn_t host_mem_alloc_2m(struct host_mem *m, uint32_t owner,
			    enum host_pool pool, enum host_page_use use,
			    tdp_gfn_t gfn)
{
	tdp_pfn_t pfn;

	pthread_mutex_lock(&m->lock);
	if (pool == HOST_POOL_ANY) {
		pfn = alloc_2m_locked(m, owner, HOST_POOL_NON_TDX, use, gfn);
		if (!pfn)
			pfn = alloc_2m_locked(m, owner, HOST_POOL_TDX, use, gfn);
	} else {
		pfn = alloc_2m_locked(m, owner, pool, use, gfn);
	}
	pthread_mutex_unlock(&m->lock);
	if (pfn)
		__atomic_add_fetch(&m->in_use[use], HOST_CHUNK_PAGES,
				   __ATOMIC_RELAXED);
	return pfn;
}

bool host_mem_free(struct host_mem *m, tdp_pfn_t pfn)
{
	struct host_page *p = host_mem_page(m, pfn);
	uint64_t idx;
	uint32_t use;

	if (!p)
		return false;
	idx = pfn - m->base;
	pthread_mutex_lock(&m->lock);
	use = __atomic_load_n(&p->use, __ATOMIC_RELAXED);
	if (m->free_bits[idx / 64] & (1ULL << (idx % 64)) ||
	    use == HOST_PAGE_RESERVED) {
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	__atomic_store_n(&p->use, (uint32_t)HOST_PAGE_FREE, __ATOMIC_RELEASE);
	__atomic_store_n(&p->owner, 0, __ATOMIC_RELAXED);
	host_page_set_tag(p, SIM_TAG_POISON);
	m->free_bits[idx / 64] |= 1ULL << (idx % 64);
	m->chunk_free[idx / HOST_CHUNK_PAGES]++;
	pthread_mutex_unlock(&m->lock);
	__atomic_sub_fetch(&m->in_use[use], 1, __ATOMIC_RELAXED);
	return true;
}

uint64_t host_mem_in_use(const struct host_mem *m, enum host_page_use use)
{
	return __atomic_load_n(&m->in_use[use], __ATOMIC_RELAXED);
}

uint64_t host_mem_in_use_by(const struct host_mem *m, enum host_page_use use,
			    uint32_t owner)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < m->nr_pages; i++)
		n += host_page_use(&m->pages[i]) == (uint32_t)use &&
		     host_page_owner(&m->pages[i]) == owner;
	return n;
}

const char *host_page_use_name(uint32_t use)
{
	static const char *const names[HOST_PAGE_NR_USES] = {
		[HOST_PAGE_FREE]       = "free",
		[HOST_PAGE_SHARED]     = "shared backing",
		[HOST_PAGE_PRIVATE]    = "private backing",
		[HOST_PAGE_SEPT]       = "S-EPT page",
		[HOST_PAGE_TD_CONTROL] = "TD control page",
		[HOST_PAGE_RESERVED]   = "reserved",
	};

	return use < HOST_PAGE_NR_USES ? names[use] : "?";
}

const char *host_range_kind_name(enum host_range_kind kind)
{
	switch (kind) {
	case HOST_RANGE_TDX:
		return "TDX-usable";
	case HOST_RANGE_NON_TDX:
		return "non-TDX";
	case HOST_RANGE_RESERVED:
		return "reserved";
	case HOST_RANGE_HOTPLUG:
		return "hot-added";
	}
	return "?";
}

void host_mem_hotplug_range(const struct host_mem *m, tdp_pfn_t *start,
			    tdp_pfn_t *end)
{
	*start = *end = 0;
	for (int i = 0; i < m->nr_ranges; i++) {
		if (m->ranges[i].kind == HOST_RANGE_HOTPLUG) {
			*start = m->ranges[i].start;
			*end = m->ranges[i].end;
		}
	}
}

bool host_mem_online_hotplug(struct host_mem *m, tdp_pfn_t *start,
			     tdp_pfn_t *end)
{
	bool done = false;

	host_mem_hotplug_range(m, start, end);
	pthread_mutex_lock(&m->lock);
	if (*start != *end && !m->hotplug_online) {
		for (tdp_pfn_t pfn = *start; pfn < *end; pfn++) {
			uint64_t i = pfn - m->base;

			__atomic_store_n(&m->pages[i].use, HOST_PAGE_FREE,
					 __ATOMIC_RELEASE);
			m->free_bits[i / 64] |= 1ULL << (i % 64);
			m->chunk_free[i / HOST_CHUNK_PAGES]++;
		}
		m->hotplug_online = true;
		done = true;
	}
	pthread_mutex_unlock(&m->lock);
	return done;
}
