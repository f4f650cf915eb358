/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User-space port: out-of-line parts (logging, mmu_lock, the table-page
 * pool); RCU is in user_rcu.c.
 */
#include "port/port.h"

#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TDP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TDP_ASAN 1
#endif
#endif
#ifdef TDP_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- logging ----------------------------------------------------------- */

void tdp_port_log(const char *level, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "libtdp %s: ", level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#ifndef NDEBUG
void tdp_port_assert_fail(const char *cond, const char *file, int line)
{
	tdp_port_log("bug", "%s:%d: assertion failed: %s", file, line, cond);
	abort();
}
#endif

/* ---- mmu_lock (see user.h) ------------------------------------------- */

__thread bool tdp_port_read_fast;
#ifndef NDEBUG
__thread int tdp_port_read_depth;
#endif

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended)
{
	pthread_rwlockattr_t attr;
	int ret;

	memset(l, 0, sizeof(*l));
	l->force_contended = force_contended;
	pthread_rwlockattr_init(&attr);
	/* A waiting writer stops new slow readers: no writer starvation. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ret = pthread_rwlock_init(&l->slow, &attr);
	pthread_rwlockattr_destroy(&attr);
	return ret ? -ENOMEM : 0;
}

void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l)
{
	pthread_rwlock_destroy(&l->slow);
}

void tdp_read_lock_slow(tdp_mmu_lock_t *l)
{
	__atomic_add_fetch(&l->readers_waiting, 1, __ATOMIC_RELAXED);
	pthread_rwlock_rdlock(&l->slow);
	__atomic_sub_fetch(&l->readers_waiting, 1, __ATOMIC_RELAXED);
	tdp_port_read_fast = false;
}

void tdp_write_lock(tdp_mmu_lock_t *l)
{
	/* A writer inside an RCU section would wait for itself. */
	TDP_ASSERT(!urcu_memb_read_ongoing());
	__atomic_add_fetch(&l->writers, 1, __ATOMIC_SEQ_CST);
	pthread_rwlock_wrlock(&l->slow);
	/* Fast readers that did not see @writers have left after this. */
	urcu_memb_synchronize_rcu();
#ifdef TDP_TSAN
	__tsan_acquire(&l->tsan_readers);
#endif
#ifndef NDEBUG
	l->writer = pthread_self();
	__atomic_store_n(&l->write_held, true, __ATOMIC_RELAXED);
#endif
}

void tdp_write_unlock(tdp_mmu_lock_t *l)
{
#ifndef NDEBUG
	__atomic_store_n(&l->write_held, false, __ATOMIC_RELAXED);
#endif
	pthread_rwlock_unlock(&l->slow);
	/* Release: a fast reader that sees no writer sees this section. */
	__atomic_sub_fetch(&l->writers, 1, __ATOMIC_RELEASE);
}

#ifndef NDEBUG
bool tdp_port_lock_held_read(tdp_mmu_lock_t *l)
{
	(void)l;
	return tdp_port_read_depth > 0;
}

bool tdp_port_lock_held_write(tdp_mmu_lock_t *l)
{
	/* Only the holder can see write_held true with writer == self. */
	return __atomic_load_n(&l->write_held, __ATOMIC_RELAXED) &&
	       pthread_equal(l->writer, pthread_self());
}
#endif

/* ---- allocation-failure injection --------------------------------------- */

/* Allocations left before the injected failure; negative: disabled. */
static long fail_countdown = -1;

void tdp_port_fail_alloc_after(long countdown)
{
	__atomic_store_n(&fail_countdown, countdown, __ATOMIC_RELAXED);
}

static bool injected_failure(void)
{
	long n = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);

	while (n >= 0) {
		if (__atomic_compare_exchange_n(&fail_countdown, &n, n - 1,
						false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return n == 0;
	}
	return false;
}

void *tdp_zalloc(size_t size)
{
	if (injected_failure())
		return NULL;
	return calloc(1, size);
}

void tdp_free(void *p)
{
	free(p);
}

void *tdp_ext_page_alloc(size_t size)
{
	size_t rounded = (size + 4095) & ~(size_t)4095;
	void *p;

	if (injected_failure())
		return NULL;
	p = aligned_alloc(4096, rounded);
	if (p)
		memset(p, 0, rounded);
	return p;
}

void tdp_ext_page_free(void *page)
{
	free(page);
}

/* ---- table-page pool ----------------------------------------------------
 *
 * Pages come from 2 MiB chunks aligned to 2 MiB.  Page 0 of a chunk is its
 * header: slot i holds the private pointer of page i while the page is in
 * use, and the next free page while it is free, so a free page is never
 * touched (ASan builds poison it).  Chunks are kept for reuse for the life
 * of the process.
 */
#define CHUNK_SIZE (2UL << 20)
#define CHUNK_PAGES (CHUNK_SIZE / 4096)

struct chunk_header {
	void *slot[CHUNK_PAGES];
};

_Static_assert(sizeof(struct chunk_header) == 4096, "header is one page");

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool_free; /* protected by pool_lock */

static void **page_slot(const void *page)
{
	uintptr_t addr = (uintptr_t)page;
	struct chunk_header *h = (void *)(addr & ~(CHUNK_SIZE - 1));

	return &h->slot[(addr & (CHUNK_SIZE - 1)) / 4096];
}

/* Map a new chunk and push its pages; called with pool_lock held. */
static bool pool_grow(void)
{
	char *raw, *chunk;
	size_t head;

	raw = mmap(NULL, 2 * CHUNK_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return false;
	chunk = (char *)(((uintptr_t)raw + CHUNK_SIZE - 1) & ~(CHUNK_SIZE - 1));
	head = (size_t)(chunk - raw);
	if (head)
		munmap(raw, head);
	munmap(chunk + CHUNK_SIZE, CHUNK_SIZE - head);

	for (size_t i = CHUNK_PAGES - 1; i >= 1; i--) {
		void *page = chunk + i * 4096;

		*page_slot(page) = pool_free;
		pool_free = page;
		POISON(page, 4096);
	}
	return true;
}

void *tdp_table_page_alloc(void)
{
	void *page;

	if (injected_failure())
		return NULL;
	pthread_mutex_lock(&pool_lock);
	if (!pool_free && !pool_grow()) {
		pthread_mutex_unlock(&pool_lock);
		return NULL;
	}
	page = pool_free;
	pool_free = *page_slot(page);
	*page_slot(page) = NULL;
	pthread_mutex_unlock(&pool_lock);
	UNPOISON(page, 4096);
	return page;
}

void tdp_table_page_free(void *page)
{
	if (!page)
		return;
	POISON(page, 4096);
	pthread_mutex_lock(&pool_lock);
	*page_slot(page) = pool_free;
	pool_free = page;
	pthread_mutex_unlock(&pool_lock);
}

void *tdp_table_page_private(const void *page)
{
	return __atomic_load_n(page_slot(page), __ATOMIC_RELAXED);
}

void tdp_table_page_set_private(void *page, void *priv)
{
	__atomic_store_n(page_slot(page), priv, __ATOMIC_RELAXED);
}
