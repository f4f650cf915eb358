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
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
 * A per-MMU reader-writer lock in the manner of the kernel's
 * percpu_rw_semaphore: a reader writes only its own thread record, and a
 * writer waits only for the readers of its own lock.
 *
 * Every registered thread owns one struct tdp_port_thread (a cache line,
 * never freed, reused after the thread unregisters).  A reader stores the
 * lock it takes in its record's @reading, then loads the lock's @state:
 *
 *   FAST     no writer for a while.  The reader is in after a compiler
 *            barrier only.  A writer leaving FAST calls membarrier(2)
 *            (private expedited), which puts a full barrier into every
 *            running thread of the process: afterwards every reader that
 *            saw FAST is visible in its record, and every later reader
 *            sees the new state.  This is the asymmetric Dekker pattern.
 *   FENCED   a writer left recently.  Readers are in after a full fence;
 *            a writer's seq_cst store of BLOCKED and its seq_cst loads
 *            of the records suffice on its side (see drain_readers()), so
 *            bursts of writers (an MMU-notifier begin/zap/end, or a zap
 *            that yields) pay neither membarrier nor a fence.  The first reader that finds the lock FENCED for
 *            longer than TDP_LOCK_FAST_AFTER_NS returns it to FAST, the
 *            user-space counterpart of the kernel's rcu_sync.
 *   BLOCKED  a writer holds the lock or waits for it.  Readers clear their
 *            record, spin briefly, then queue on @wait_lock; a reader
 *            that finds the lock BLOCKED a second time queues at once.
 *
 * A writer takes a ticket and waits for its turn on @wait_lock, sets
 * BLOCKED, then scans every thread record and waits until none reads this
 * lock.  Fairness is phase-fair: when a writer unlocks, every reader that
 * was queued at that moment is admitted before the next writer; readers
 * that arrive while a writer waits queue behind it.  Writers are served in
 * ticket order.
 *
 * Misuse that would break mutual exclusion aborts with a message naming
 * the rule, in every build: a lock taken by a thread that did not call
 * tdp_thread_register(), a lock taken while the thread holds an mmu_lock
 * (of any MMU: locks never nest), a lock taken inside
 * tdp_walk_begin()/tdp_walk_end(), and an unlock of a lock the thread
 * does not hold.
 *
 * With -Dmmu_lock=rwlock (TDP_MMU_LOCK_RWLOCK) the same names are a plain
 * writer-preferring pthread_rwlock, kept as a benchmark baseline.
 */
struct tdp_mmu_lock;

/* One per registered thread; only its owner writes it, except @in_use. */
struct tdp_port_thread {
	struct tdp_mmu_lock *reading; /* atomic: lock held (or being taken)
				       * for read; written by the owner,
				       * read by writers of that lock */
	struct tdp_mmu_lock *writing; /* owner only: lock held for write */
	int walk_depth;               /* owner only: tdp_walk_begin() depth */
	unsigned int fenced_reads;    /* owner only: read locks taken FENCED */
	int registered;               /* owner only: registration depth */
	uint64_t write_locks;         /* owner only: write locks taken */
	bool in_use;                  /* atomic: claimed by a live thread */
	struct tdp_port_thread *next; /* immutable once published */
} __attribute__((aligned(64)));

extern __thread struct tdp_port_thread *tdp_port_self
	__attribute__((tls_model("initial-exec")));

enum {
	TDP_LOCK_FAST,
	TDP_LOCK_FENCED,
	TDP_LOCK_BLOCKED,
};

typedef struct tdp_mmu_lock {
#ifdef TDP_MMU_LOCK_RWLOCK
	pthread_rwlock_t rw;
#endif
	int state;            /* atomic; written under @wait_lock */
	int readers_waiting;  /* atomic; written under @wait_lock */
	int writers_waiting;  /* atomic; written under @wait_lock */
	int drain_waiting;    /* atomic; writers asleep until a reader leaves */
	bool force_contended; /* immutable: every needbreak says yes */
	/* Coarse clock time after which a FENCED lock may turn FAST; atomic,
	 * written under @wait_lock. */
	int64_t fast_after_ns;
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cv; /* sleeping readers and writers */
	/* Bumped under @wait_lock whenever a waiter's condition may have
	 * become true; atomic, so that waiters spin on it unlocked. */
	unsigned int events;
	/* Protected by @wait_lock: */
	unsigned int sleepers;   /* threads in pthread_cond_wait(@wait_cv) */
	bool writer_active;      /* a writer holds the lock or drains readers */
	unsigned int phase;      /* bumped when a writer admits queued readers */
	unsigned int granted;    /* readers admitted that have not entered */
	unsigned int next_ticket; /* writers' FIFO */
	unsigned int serving;
	/* Written by the write holder only: */
	struct tdp_port_thread *writer; /* atomic: the holder, or NULL */
	int64_t write_since_ns;  /* when the holder first saw a queued reader */
	unsigned int break_checks; /* needbreak calls since it got the lock */
} tdp_mmu_lock_t;

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended);
void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l);
void tdp_read_lock_slow(tdp_mmu_lock_t *l, struct tdp_port_thread *self);
void tdp_read_unlock_slow(tdp_mmu_lock_t *l);
void tdp_write_lock(tdp_mmu_lock_t *l);
void tdp_write_unlock(tdp_mmu_lock_t *l);
bool tdp_write_needbreak_slow(tdp_mmu_lock_t *l);
void tdp_port_thread_register(void);
void tdp_port_thread_unregister(void);
void tdp_port_lock_misuse(const char *rule) __attribute__((noreturn, cold));
void tdp_port_check_may_lock(const struct tdp_port_thread *self);
#ifdef TDP_MMU_LOCK_RWLOCK
void tdp_rwlock_read_lock(tdp_mmu_lock_t *l);
void tdp_rwlock_read_unlock(tdp_mmu_lock_t *l);
#endif

static inline void tdp_read_lock(tdp_mmu_lock_t *l)
{
	struct tdp_port_thread *self = tdp_port_self;

	/* Unregistered, nested, or inside a walk: abort with the rule. */
	if (TDP_UNLIKELY(!self || self->reading || self->writing ||
			 self->walk_depth))
		tdp_port_check_may_lock(self);
#ifdef TDP_MMU_LOCK_RWLOCK
	tdp_rwlock_read_lock(l);
#else
	__atomic_store_n(&self->reading, l, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (TDP_LIKELY(__atomic_load_n(&l->state, __ATOMIC_ACQUIRE) ==
		       TDP_LOCK_FAST))
		return;
	tdp_read_lock_slow(l, self);
#endif
}

static inline void tdp_read_unlock(tdp_mmu_lock_t *l)
{
	struct tdp_port_thread *self = tdp_port_self;

	if (TDP_UNLIKELY(!self || self->reading != l))
		tdp_port_lock_misuse("read unlock of an mmu_lock this thread "
				     "does not hold for read");
#ifdef TDP_MMU_LOCK_RWLOCK
	tdp_rwlock_read_unlock(l);
#else
	__atomic_store_n(&self->reading, NULL, __ATOMIC_RELEASE);
	/* A writer about to sleep for us calls membarrier first. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (TDP_LIKELY(!__atomic_load_n(&l->drain_waiting, __ATOMIC_RELAXED)))
		return;
	tdp_read_unlock_slow(l);
#endif
}

/*
 * True when another thread waits for the lock in a mode the holder blocks:
 * a writer, for a read holder; a writer, or a reader that has waited out
 * its spin and has been seen for TDP_LOCK_HOLD_NS, for the write holder.
 */
static inline bool tdp_mmu_lock_needbreak(tdp_mmu_lock_t *l, bool shared)
{
	if (l->force_contended)
		return true;
	if (shared)
		return __atomic_load_n(&l->writers_waiting, __ATOMIC_RELAXED) != 0;
	if (__atomic_load_n(&l->writers_waiting, __ATOMIC_RELAXED))
		return true;
	if (TDP_LIKELY(!__atomic_load_n(&l->readers_waiting, __ATOMIC_RELAXED)))
		return false;
	return tdp_write_needbreak_slow(l);
}

/*
 * True when tdp_mmu_lock_needbreak() said yes only because the MMU forces
 * yields (TDP_MMU_FORCE_YIELD) and nobody waits: the yield then exercises
 * the caller's restart path and need not give up the CPU.
 */
static inline bool tdp_mmu_lock_yield_is_forced(tdp_mmu_lock_t *l,
						bool shared)
{
	if (!l->force_contended ||
	    __atomic_load_n(&l->writers_waiting, __ATOMIC_RELAXED))
		return false;
	return shared || !__atomic_load_n(&l->readers_waiting, __ATOMIC_RELAXED);
}

/* Write locks the calling thread took so far (any MMU); 0 unregistered. */
static inline uint64_t tdp_port_thread_write_locks(void)
{
	const struct tdp_port_thread *self = tdp_port_self;

	return self ? self->write_locks : 0;
}

/* Exact: the calling thread's record says which lock it holds. */
static inline bool tdp_port_lock_held_read(const tdp_mmu_lock_t *l)
{
	const struct tdp_port_thread *self = tdp_port_self;

	return self && __atomic_load_n(&self->reading, __ATOMIC_RELAXED) == l;
}

static inline bool tdp_port_lock_held_write(const tdp_mmu_lock_t *l)
{
	const struct tdp_port_thread *self = tdp_port_self;

	return self && self->writing == l;
}

#define tdp_lockdep_assert_held_read(l) TDP_ASSERT(tdp_port_lock_held_read(l))
#define tdp_lockdep_assert_held_write(l) \
	TDP_ASSERT(tdp_port_lock_held_write(l))
#define tdp_lockdep_assert_held(l)                                   \
	TDP_ASSERT(tdp_port_lock_held_read(l) ||                     \
		   tdp_port_lock_held_write(l))

/*
 * Let other threads run: the user-space counterpart of cond_resched(),
 * which gives up the CPU only when the scheduler asks.  User space cannot
 * ask, so every 16th call of a thread yields and the others only relax
 * the CPU: lock hand-overs do not need it (the mmu_lock admits queued
 * readers before a yielding writer returns), and a thread that spins on
 * a frozen SPTE or a running zap still lets a preempted holder run.
 */
extern __thread unsigned int tdp_port_resched_calls
	__attribute__((tls_model("initial-exec")));

static inline void tdp_cond_resched(void)
{
	if (++tdp_port_resched_calls % 16 == 0) {
		sched_yield();
		return;
	}
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
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

/* ---- spinlock ----------------------------------------------------------
 *
 * A lock for short sections in places that must not sleep in the kernel
 * (under mmu_lock, inside an RCU read-side section, in a backend
 * callback).  User space may block anywhere, so it is a mutex: a waiter
 * sleeps instead of burning the CPU that a preempted holder needs.
 */
typedef tdp_mutex_t tdp_spinlock_t;
#define tdp_spin_lock_init(l) tdp_mutex_init(l)
#define tdp_spin_lock_destroy(l) tdp_mutex_destroy(l)
#define tdp_spin_lock(l) tdp_mutex_lock(l)
#define tdp_spin_unlock(l) tdp_mutex_unlock(l)

/* ---- time -------------------------------------------------------------- */

/* Monotonic clock, nanoseconds. */
static inline uint64_t tdp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Give up the CPU to another runnable thread (outside mmu_lock and RCU). */
static inline void tdp_yield(void)
{
	sched_yield();
}

/*
 * Wait @usec microseconds where sleeping may not be allowed (the kernel
 * busy-waits); user space sleeps.
 */
static inline void tdp_udelay(unsigned int usec)
{
	struct timespec ts = {
		.tv_sec = usec / 1000000,
		.tv_nsec = (long)(usec % 1000000) * 1000,
	};

	nanosleep(&ts, NULL);
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

/* ---- lockless walks ------------------------------------------------- */

/*
 * tdp_walk_enter()/tdp_walk_exit(): bracket a lockless walk (an RCU
 * read-side section).  The thread may take no mmu_lock inside.
 */
static inline void tdp_walk_enter(void)
{
	struct tdp_port_thread *self = tdp_port_self;

	if (TDP_UNLIKELY(!self))
		tdp_port_lock_misuse("tdp_walk_begin() by a thread that did not "
				     "call tdp_thread_register()");
	self->walk_depth++;
	tdp_rcu_read_lock();
}

static inline void tdp_walk_exit(void)
{
	struct tdp_port_thread *self = tdp_port_self;

	if (TDP_UNLIKELY(!self || self->walk_depth <= 0))
		tdp_port_lock_misuse("tdp_walk_end() without tdp_walk_begin()");
	tdp_rcu_read_unlock();
	self->walk_depth--;
}

/* ---- memory ------------------------------------------------------------ */

/*
 * Zeroed heap memory for engine metadata; NULL on failure (or when the
 * allocation-failure injector fires).
 */
void *tdp_zalloc(size_t size);
void tdp_free(void *p);

/*
 * Zeroed heap memory where the kernel must not sleep (under a spinlock or
 * mmu_lock, inside an RCU read-side section), freed with tdp_free().
 * Never failed by the allocation-failure injector: it is for code that
 * checks the engine (the test support), not for the engine.  NULL on
 * failure.
 */
static inline void *tdp_zalloc_atomic(size_t size)
{
	return calloc(1, size);
}

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
