/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User-space port: liburcu (memb flavour) for RCU, compiler __atomic
 * builtins for every shared word, a pthread reader-writer lock for
 * mmu_lock, and a chunked page allocator whose pages carry one private
 * word outside the page (the role of the kernel's struct page).
 *
 * ThreadSanitizer: liburcu 0.13 synchronizes in inline assembly and
 * futexes that TSan cannot see.  In TSan builds the read-side unlock and
 * call_rcu release, and every RCU callback acquires, one annotation
 * address, so TSan learns that a callback runs after every read-side
 * section that could have seen the object and after the code that queued
 * it.  Readers only release, so concurrent readers stay unordered
 * (tests/tsan.supp lists the one remaining liburcu-internal report).
 */
#ifndef TDP_PORT_USER_H
#define TDP_PORT_USER_H

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include <tdp/types.h>

#if defined(__SANITIZE_THREAD__)
#define TDP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TDP_TSAN 1
#endif
#endif

#ifdef TDP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif

#define TDP_LIKELY(x) __builtin_expect(!!(x), 1)
#define TDP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TDP_CONTAINER_OF(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- logging and assertions ------------------------------------------ */

void tdp_port_log(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define tdp_log_err(...) tdp_port_log("error", __VA_ARGS__)
#define tdp_log_warn(...) tdp_port_log("warning", __VA_ARGS__)

/*
 * TDP_WARN_ON(cond): a broken invariant that the engine survives; logs once
 * per site with the condition text and evaluates to the condition.
 */
#define TDP_WARN_ON(cond)                                                    \
	({                                                                   \
		bool __c = (cond);                                           \
		static bool __warned;                                        \
		if (TDP_UNLIKELY(__c) &&                                     \
		    !__atomic_exchange_n(&__warned, true, __ATOMIC_RELAXED)) \
			tdp_log_warn("%s:%d: invariant broken: %s",          \
				     __FILE__, __LINE__, #cond);             \
		__c;                                                         \
	})

/* TDP_ASSERT(cond): debug builds abort on a broken invariant. */
#ifdef NDEBUG
#define TDP_ASSERT(cond) ((void)0)
#else
void tdp_port_assert_fail(const char *cond, const char *file, int line)
	__attribute__((noreturn));
#define TDP_ASSERT(cond)                                               \
	(TDP_LIKELY(cond) ? (void)0                                    \
			  : tdp_port_assert_fail(#cond, __FILE__, __LINE__))
#endif

/* ---- atomics ----------------------------------------------------------- */

/*
 * SPTEs: every access is atomic.  Reads that may follow a table pointer use
 * acquire; the store or compare-exchange that publishes a table uses
 * release, so the table's contents are visible before the pointer.
 */
/* Number of set bits. */
static inline int tdp_hweight64(uint64_t v)
{
	return __builtin_popcountll(v);
}

static inline tdp_spte_t tdp_spte_read(const tdp_spte_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline tdp_spte_t tdp_spte_read_acquire(const tdp_spte_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void tdp_spte_write(tdp_spte_t *p, tdp_spte_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void tdp_spte_write_release(tdp_spte_t *p, tdp_spte_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* On failure *old is refreshed with the current value. */
static inline bool tdp_spte_cmpxchg(tdp_spte_t *p, tdp_spte_t *old,
				    tdp_spte_t v)
{
	return __atomic_compare_exchange_n(p, old, v, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static inline tdp_spte_t tdp_spte_xchg(tdp_spte_t *p, tdp_spte_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

static inline tdp_spte_t tdp_spte_fetch_and(tdp_spte_t *p, tdp_spte_t mask)
{
	return __atomic_fetch_and(p, mask, __ATOMIC_ACQ_REL);
}

static inline tdp_spte_t tdp_spte_fetch_or(tdp_spte_t *p, tdp_spte_t mask)
{
	return __atomic_fetch_or(p, mask, __ATOMIC_ACQ_REL);
}

static inline int tdp_atomic_read(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void tdp_atomic_set(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Returns the new value. */
static inline int tdp_atomic_add(int *p, int v)
{
	return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL);
}

static inline int tdp_atomic_xchg(int *p, int v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

/* Increment unless zero; true if incremented. */
static inline bool tdp_atomic_inc_not_zero(int *p)
{
	int old = __atomic_load_n(p, __ATOMIC_RELAXED);

	do {
		if (old == 0)
			return false;
	} while (!__atomic_compare_exchange_n(p, &old, old + 1, true,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

static inline uint64_t tdp_atomic64_read(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void tdp_atomic64_set(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void tdp_atomic64_add(uint64_t *p, int64_t v)
{
	__atomic_fetch_add(p, (uint64_t)v, __ATOMIC_RELAXED);
}

static inline uint64_t tdp_atomic64_read_acquire(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void tdp_atomic64_set_release(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline bool tdp_flag_read(const bool *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void tdp_flag_set(bool *p, bool v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Pointers published to lockless readers. */
#define tdp_rcu_dereference(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define tdp_rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* ---- mmu_lock ----------------------------------------------------------
 *
 * A reader-writer lock whose read side writes no shared memory: a reader
 * enters an RCU read-side section and checks that no writer is active or
 * waiting; if one is, it leaves the section and takes @slow for read.  A
 * writer announces itself in @writers, takes @slow for write (which
 * excludes slow readers and other writers) and waits for a grace period,
 * after which every reader that missed the announcement has left.  Faults
 * thus pay a TLS increment and one load instead of a contended atomic
 * read-modify-write (see docs/PERFORMANCE.md for the numbers).
 *
 * Rules this implies: a thread inside tdp_walk_begin() (an RCU section)
 * must not take mmu_lock, and a writer must not hold an RCU read lock.
 * Read locks do not nest.
 */
typedef struct {
	pthread_rwlock_t slow; /* writers; readers that met a writer */
	int writers;           /* atomic: writers holding or waiting */
	int readers_waiting;   /* atomic: readers blocked on @slow */
	bool force_contended;  /* immutable: every needbreak says yes */
#ifdef TDP_TSAN
	char tsan_readers;     /* released by fast readers, acquired by writers */
#endif
#ifndef NDEBUG
	pthread_t writer; /* valid while write_held; written by the holder */
	bool write_held;  /* atomic; written by the holder */
#endif
} tdp_mmu_lock_t;

/* This thread's read lock went the fast (RCU) way; read locks don't nest. */
extern __thread bool tdp_port_read_fast;
#ifndef NDEBUG
extern __thread int tdp_port_read_depth;
#endif

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended);
void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l);
void tdp_read_lock_slow(tdp_mmu_lock_t *l);
void tdp_write_lock(tdp_mmu_lock_t *l);
void tdp_write_unlock(tdp_mmu_lock_t *l);

static inline void tdp_read_lock(tdp_mmu_lock_t *l)
{
#ifndef NDEBUG
	TDP_ASSERT(tdp_port_read_depth == 0);
	tdp_port_read_depth++;
#endif
	urcu_memb_read_lock();
	if (TDP_LIKELY(!__atomic_load_n(&l->writers, __ATOMIC_ACQUIRE))) {
		tdp_port_read_fast = true;
		return;
	}
	urcu_memb_read_unlock();
	tdp_read_lock_slow(l);
}

static inline void tdp_read_unlock(tdp_mmu_lock_t *l)
{
#ifndef NDEBUG
	TDP_ASSERT(tdp_port_read_depth == 1);
	tdp_port_read_depth--;
#endif
	if (TDP_LIKELY(tdp_port_read_fast)) {
		tdp_port_read_fast = false;
#ifdef TDP_TSAN
		__tsan_release(&l->tsan_readers);
#endif
		urcu_memb_read_unlock();
		return;
	}
	pthread_rwlock_unlock(&l->slow);
}

/*
 * True when another thread waits for the lock in a mode the holder blocks:
 * a writer, for a read holder; anyone, for the write holder.
 */
static inline bool tdp_mmu_lock_needbreak(tdp_mmu_lock_t *l, bool shared)
{
	if (l->force_contended)
		return true;
	if (shared)
		return __atomic_load_n(&l->writers, __ATOMIC_RELAXED) != 0;
	return __atomic_load_n(&l->writers, __ATOMIC_RELAXED) > 1 ||
	       __atomic_load_n(&l->readers_waiting, __ATOMIC_RELAXED) != 0;
}

#ifdef NDEBUG
#define tdp_lockdep_assert_held_read(l) ((void)(l))
#define tdp_lockdep_assert_held_write(l) ((void)(l))
#define tdp_lockdep_assert_held(l) ((void)(l))
#else
bool tdp_port_lock_held_read(tdp_mmu_lock_t *l);
bool tdp_port_lock_held_write(tdp_mmu_lock_t *l);
#define tdp_lockdep_assert_held_read(l) TDP_ASSERT(tdp_port_lock_held_read(l))
#define tdp_lockdep_assert_held_write(l) \
	TDP_ASSERT(tdp_port_lock_held_write(l))
#define tdp_lockdep_assert_held(l)                                   \
	TDP_ASSERT(tdp_port_lock_held_read(l) ||                     \
		   tdp_port_lock_held_write(l))
#endif

static inline void tdp_cond_resched(void)
{
	sched_yield();
}

/* ---- mutex ------------------------------------------------------------- */

typedef pthread_mutex_t tdp_mutex_t;

static inline void tdp_mutex_init(tdp_mutex_t *m)
{
	pthread_mutex_init(m, NULL);
}

static inline void tdp_mutex_destroy(tdp_mutex_t *m)
{
	pthread_mutex_destroy(m);
}

static inline void tdp_mutex_lock(tdp_mutex_t *m)
{
	pthread_mutex_lock(m);
}

static inline void tdp_mutex_unlock(tdp_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

/* ---- RCU ---------------------------------------------------------------
 *
 * Read-side sections are liburcu's (memb flavour).  Deferred frees are the
 * port's own (user_rcu.c): tdp_call_rcu() pushes onto a pending list and
 * never waits, so it may be called inside a read-side section and under
 * mmu_lock.  A batch is the whole list taken at once, then one
 * urcu_memb_synchronize_rcu(), then its callbacks in the order they were
 * queued.  The port's reclaim thread runs a batch some milliseconds after
 * the list becomes non-empty; tdp_rcu_barrier() runs one in the caller.
 */

struct tdp_rcu_head {
	struct tdp_rcu_head *next;           /* set by call_rcu: pending list */
	void (*func)(struct rcu_head *head); /* set by call_rcu */
	struct rcu_head head; /* what @func receives, as in the kernel */
};

#ifdef TDP_TSAN
extern char tdp_port_rcu_tsan_token;
#endif

#ifndef NDEBUG
extern __thread int tdp_port_rcu_registered;
#endif

static inline void tdp_rcu_read_lock(void)
{
	TDP_ASSERT(tdp_port_rcu_registered > 0);
	urcu_memb_read_lock();
}

static inline void tdp_rcu_read_unlock(void)
{
#ifdef TDP_TSAN
	__tsan_release(&tdp_port_rcu_tsan_token);
#endif
	urcu_memb_read_unlock();
}

/* First statement of every RCU callback. */
static inline void tdp_rcu_callback_begin(void)
{
#ifdef TDP_TSAN
	__tsan_acquire(&tdp_port_rcu_tsan_token);
#endif
}

/* Last statement of every RCU callback: what it did happens before the
 * return of a later tdp_rcu_barrier(). */
static inline void tdp_rcu_callback_end(void)
{
#ifdef TDP_TSAN
	__tsan_release(&tdp_port_rcu_tsan_token);
#endif
}

/*
 * tdp_call_rcu() - run @func(&h->head) after a grace period, in the reclaim
 * thread or in a later tdp_rcu_barrier().  Never waits (a lock-free push
 * and a semaphore post): callable inside a read-side section and under
 * mmu_lock, from any thread.
 */
void tdp_call_rcu(struct tdp_rcu_head *h, void (*func)(struct rcu_head *));

/*
 * tdp_rcu_barrier() - return once every callback queued before the call
 * has run: waits for a batch the reclaim thread is running, then runs the
 * pending callbacks in the caller after a grace period (none when nothing
 * is pending).  Never inside a read-side section, so never with mmu_lock
 * held for read.
 */
void tdp_rcu_barrier(void);

/*
 * tdp_rcu_thread_register() / _unregister() - nesting count of the
 * calling thread's liburcu registration.  The first registration in the
 * process starts the reclaim thread (retried by later ones if it failed).
 */
void tdp_rcu_thread_register(void);
void tdp_rcu_thread_unregister(void);

/* Recover the embedding object in a callback. */
#define tdp_rcu_head_container(rh, type, member) \
	TDP_CONTAINER_OF(TDP_CONTAINER_OF(rh, struct tdp_rcu_head, head), type, member)

/* ---- memory ------------------------------------------------------------ */

/*
 * Zeroed heap memory for engine metadata; NULL on failure (or when the
 * allocation-failure injector fires).
 */
void *tdp_zalloc(size_t size);
void tdp_free(void *p);

/*
 * Page-table pages: 4 KiB, zeroed, 4 KiB aligned, each with one private
 * pointer stored outside the page.  NULL on failure.
 */
void *tdp_table_page_alloc(void);
void tdp_table_page_free(void *page);
void *tdp_table_page_private(const void *page);
void tdp_table_page_set_private(void *page, void *priv);

/* Frame numbers of table pages, as stored in non-leaf SPTEs. */
static inline tdp_pfn_t tdp_virt_to_pfn(const void *page)
{
	return (tdp_pfn_t)((uintptr_t)page >> 12);
}

static inline void *tdp_pfn_to_virt(tdp_pfn_t pfn)
{
	return (void *)(uintptr_t)(pfn << 12);
}

/* Backend-owned pages: @size bytes, zeroed, page aligned. */
void *tdp_ext_page_alloc(size_t size);
void tdp_ext_page_free(void *page);

/*
 * Allocation-failure injection for tests: after @countdown successful
 * allocations, the next one fails (and only that one).  A negative value
 * disables injection.  Process-wide.
 */
void tdp_port_fail_alloc_after(long countdown);

#endif /* TDP_PORT_USER_H */
