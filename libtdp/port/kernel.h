/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel port: the names of libtdp/port/port.h on top of the kernel's own
 * primitives, so that the engine sources in libtdp/ build unchanged as a
 * kernel module.
 *
 *   atomics   SPTE words with READ_ONCE/WRITE_ONCE, smp_load_acquire/
 *             smp_store_release, try_cmpxchg64 and xchg; int, bool and
 *             counter fields through atomic_t / atomic64_t views
 *   mmu_lock  an rw_semaphore per MMU plus counts of waiting readers and
 *             writers (for tdp_mmu_lock_needbreak) and the identity of the
 *             write holder (for the lock assertions and the misuse
 *             checks, which run in every build: see "mmu_lock" below)
 *   RCU       rcu_read_lock, call_rcu, rcu_barrier; no thread registration
 *   walks     tdp_walk_begin()/tdp_walk_end() are rcu_read_lock() and
 *             rcu_read_unlock()
 *   memory    table pages from the page allocator, their private pointer
 *             in struct page's private field, metadata and backend pages
 *             from kmalloc
 *   logging   pr_err/pr_warn; broken invariants and assertions are
 *             WARN_ONCE and are also counted (tdp_port_invariant_failures)
 *
 * The callback contract in kernel terms.  The engine calls every host
 * callback and every private backend callback with mmu_lock held and
 * inside rcu_read_lock(), always:
 *
 *   link_table, set_leaf               mmu_lock held for read
 *   remove_leaf, free_table,           mmu_lock held for write
 *   demote_leaf
 *   flush_range, flush_all, mark_dirty held for read or for write (what
 *                                      the operation holds)
 *
 * So a callback must not sleep or block: no mutex, no rw_semaphore (no
 * mmu_lock of any MMU, hence no libtdp call: the port reports one), no
 * GFP_KERNEL allocation, no msleep, wait_event or synchronize_rcu.  It
 * may take spinlocks, spin or udelay for a bounded time, send IPIs and
 * issue SEAMCALLs (answering a busy one with -EBUSY rather than waiting
 * for it).  It must not wait for anything that needs this MMU's
 * mmu_lock: with the lock held for write, every other user of the MMU
 * waits behind the callback.  (In user space docs/BACKEND.md allows
 * blocking; the kernel's RCU does not.)
 *
 * Every public call may sleep (it takes mmu_lock, an rw_semaphore, and
 * allocates with GFP_KERNEL_ACCOUNT): call the API from process context
 * only, outside RCU read-side sections and spinlocks.
 *
 * The kernel port keeps the user port's guarantees: a writer waits only
 * for its own MMU's readers, writers are not starved by readers (both by
 * the rw_semaphore's design), and misuse that would break mutual
 * exclusion is caught in every build, or by lockdep where the kernel
 * cannot tell cheaply (see "mmu_lock" below).
 *
 * Out-of-line parts live in libtdp/port/kernel.c.
 */
#ifndef TDP_PORT_KERNEL_H
#define TDP_PORT_KERNEL_H

#ifndef CONFIG_64BIT
#error "the libtdp kernel port needs a 64-bit kernel: SPTEs are 64-bit atomics"
#endif

#include <linux/atomic.h>
#include <linux/bug.h>
#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/stdarg.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/types.h>

#include <tdp/types.h>

#define TDP_LIKELY(x) likely(x)
#define TDP_UNLIKELY(x) unlikely(x)
#define TDP_CONTAINER_OF(ptr, type, member) container_of(ptr, type, member)

/* ---- logging and assertions ---------------------------------------------- */

#define tdp_log_err(fmt, ...) pr_err("libtdp: " fmt "\n", ##__VA_ARGS__)
#define tdp_log_warn(fmt, ...) pr_warn("libtdp: " fmt "\n", ##__VA_ARGS__)

/*
 * Count one broken invariant or failed assertion (any MMU), so a self-test
 * can fail on a warning the engine survived.  Read it with
 * tdp_port_invariant_failures().
 */
void tdp_port_invariant_broken(void);
long tdp_port_invariant_failures(void);

/*
 * TDP_WARN_ON(cond): a broken invariant the engine survives; warns once per
 * site (with a backtrace), counts every occurrence, and evaluates to the
 * condition.
 */
#define TDP_WARN_ON(cond)                                                 \
	({                                                                \
		bool __tdp_broken = !!(cond);                             \
		if (unlikely(__tdp_broken))                               \
			tdp_port_invariant_broken();                      \
		WARN_ONCE(__tdp_broken, "libtdp: invariant broken: %s\n", \
			  #cond);                                         \
	})

/*
 * TDP_ASSERT(cond): in the kernel an assertion never stops the machine; it
 * warns once per site and is counted like TDP_WARN_ON.
 */
#define TDP_ASSERT(cond)                                                  \
	do {                                                              \
		bool __tdp_failed = !(cond);                              \
		if (unlikely(__tdp_failed))                               \
			tdp_port_invariant_broken();                      \
		WARN_ONCE(__tdp_failed, "libtdp: assertion failed: %s\n", \
			  #cond);                                         \
	} while (0)

/* ---- atomics ------------------------------------------------------------- */

/*
 * SPTEs are plain 64-bit words (hardware walks them), accessed only
 * through these helpers.  Reads that may follow a table pointer acquire;
 * the store or compare-exchange that publishes a table releases.
 */
/* Number of set bits. */
static inline int tdp_hweight64(u64 v)
{
	return hweight64(v);
}

static inline tdp_spte_t tdp_spte_read(const tdp_spte_t *p)
{
	return READ_ONCE(*p);
}

static inline tdp_spte_t tdp_spte_read_acquire(const tdp_spte_t *p)
{
	return smp_load_acquire(p);
}

static inline void tdp_spte_write(tdp_spte_t *p, tdp_spte_t v)
{
	WRITE_ONCE(*p, v);
}

static inline void tdp_spte_write_release(tdp_spte_t *p, tdp_spte_t v)
{
	smp_store_release(p, v);
}

/*
 * Fully ordered on success.  On failure *old is refreshed with the current
 * value and the read is an acquire (the branch on the result plus
 * smp_acquire__after_ctrl_dep()), as the engine may follow it.
 */
static inline bool tdp_spte_cmpxchg(tdp_spte_t *p, tdp_spte_t *old,
				    tdp_spte_t v)
{
	if (try_cmpxchg64(p, old, v))
		return true;
	smp_acquire__after_ctrl_dep();
	return false;
}

static inline tdp_spte_t tdp_spte_xchg(tdp_spte_t *p, tdp_spte_t v)
{
	return xchg(p, v);
}

static inline tdp_spte_t tdp_spte_fetch_and(tdp_spte_t *p, tdp_spte_t mask)
{
	tdp_spte_t old = READ_ONCE(*p);

	while (!try_cmpxchg64(p, &old, old & mask))
		;
	return old;
}

static inline tdp_spte_t tdp_spte_fetch_or(tdp_spte_t *p, tdp_spte_t mask)
{
	tdp_spte_t old = READ_ONCE(*p);

	while (!try_cmpxchg64(p, &old, old | mask))
		;
	return old;
}

/*
 * The engine's shared int and uint64_t fields are plain C types (the same
 * structures build in user space).  atomic_t and atomic64_t are single
 * fields of exactly those types, so the kernel's atomics operate on them
 * through a view of the same address.
 */
static_assert(sizeof(atomic_t) == sizeof(int) &&
	      __alignof__(atomic_t) == __alignof__(int));
static_assert(sizeof(atomic64_t) == sizeof(uint64_t) &&
	      __alignof__(atomic64_t) == __alignof__(uint64_t));

#define tdp_port_atomic(p) ((atomic_t *)(p))
#define tdp_port_atomic_const(p) ((const atomic_t *)(p))
#define tdp_port_atomic64(p) ((atomic64_t *)(p))
#define tdp_port_atomic64_const(p) ((const atomic64_t *)(p))

static inline int tdp_atomic_read(const int *p)
{
	return atomic_read_acquire(tdp_port_atomic_const(p));
}

static inline void tdp_atomic_set(int *p, int v)
{
	atomic_set_release(tdp_port_atomic(p), v);
}

/* Returns the new value. */
static inline int tdp_atomic_add(int *p, int v)
{
	return atomic_add_return(v, tdp_port_atomic(p));
}

static inline int tdp_atomic_xchg(int *p, int v)
{
	return atomic_xchg(tdp_port_atomic(p), v);
}

/* Increment unless zero; true if incremented. */
static inline bool tdp_atomic_inc_not_zero(int *p)
{
	return atomic_inc_not_zero(tdp_port_atomic(p));
}

static inline uint64_t tdp_atomic64_read(const uint64_t *p)
{
	return (uint64_t)atomic64_read(tdp_port_atomic64_const(p));
}

static inline void tdp_atomic64_set(uint64_t *p, uint64_t v)
{
	atomic64_set(tdp_port_atomic64(p), (s64)v);
}

static inline void tdp_atomic64_add(uint64_t *p, int64_t v)
{
	atomic64_add(v, tdp_port_atomic64(p));
}

static inline uint64_t tdp_atomic64_read_acquire(const uint64_t *p)
{
	return (uint64_t)atomic64_read_acquire(tdp_port_atomic64_const(p));
}

static inline void tdp_atomic64_set_release(uint64_t *p, uint64_t v)
{
	atomic64_set_release(tdp_port_atomic64(p), (s64)v);
}

static inline bool tdp_flag_read(const bool *p)
{
	return smp_load_acquire(p);
}

static inline void tdp_flag_set(bool *p, bool v)
{
	smp_store_release(p, v);
}

/* Pointers published to lockless readers (inside tdp_rcu_read_lock()). */
#define tdp_rcu_dereference(p) rcu_dereference(p)
#define tdp_rcu_assign_pointer(p, v) rcu_assign_pointer(p, v)

/* ---- mmu_lock ------------------------------------------------------------ */

/*
 * An rw_semaphore per MMU, plus counts of tasks blocked on it so that long
 * walks can tell when to yield, plus what the lock assertions and the
 * misuse checks need.
 *
 * The user port's guarantees hold by the rw_semaphore's design: a writer
 * waits only for the readers of its own MMU (one semaphore per MMU,
 * nothing process-wide); a waiting writer makes later readers queue
 * behind it and, after a few milliseconds, has the lock handed off to it,
 * so a stream of readers cannot starve it; when a writer leaves, the
 * readers queued at the head of the queue are admitted together.
 *
 * Misuse that would break mutual exclusion, or deadlock, is reported in
 * every build (not only with lockdep): a WARN_ONCE per rule naming it,
 * and every occurrence counted (tdp_port_lock_misuses()).  A warning and
 * a safe outcome rather than BUG(): the lock functions return nothing the
 * engine could act on, and killing the task would leave whatever it holds
 * held forever.  Then:
 *
 *   lock inside tdp_walk_begin()/tdp_walk_end() or another RCU read-side
 *   section, or in atomic context (mmu_lock is a sleeping lock)
 *       The lock is still taken, because the engine's caller cannot be
 *       told no and running its section unlocked would break exclusion.
 *       Where preemption is enabled (a preemptible-RCU reader, which is
 *       what tdp_walk_begin() is in a CONFIG_PREEMPT_RCU kernel) it is
 *       taken normally: such a reader may block (RCU only waits longer
 *       for it, and the kernel warns of the voluntary context switch; the
 *       engine never waits for a grace period with mmu_lock held, so
 *       nothing deadlocks).  With preemption or interrupts disabled the
 *       task must not
 *       call the scheduler at all, so it spins on the trylock instead of
 *       sleeping.
 *   lock (read or write) by the task that holds it for write
 *       Refused: the task already excludes everyone, so its section runs
 *       as exclusive as it asked; the matching unlock is then a no-op.
 *       Taking it would deadlock the task on itself.
 *   write unlock by a task that does not hold it for write
 *   read unlock by the write holder, or when no task holds it for read
 *       Refused (nothing released): releasing would let another task in
 *       beside the real holder.
 *   tdp_walk_end() outside every RCU read-side section
 *       Refused: an unmatched rcu_read_unlock() corrupts the task's RCU
 *       nesting.
 *
 * Not detected without lockdep, because the kernel keeps no cheap record
 * of which tasks hold an rw_semaphore for read: a lock taken by a task
 * that holds the same mmu_lock for read (nested reads deadlock as soon as
 * a writer queues between them; a write inside a read always does), a
 * lock taken while holding another MMU's mmu_lock, and a read unlock by a
 * task that is not one of the readers.  CONFIG_PROVE_LOCKING reports all
 * of them: every mmu_lock is initialised at one site, so all share one
 * lock class, and lockdep reports any nesting of that class (even across
 * MMUs) and any unbalanced release.  Without lockdep a deadlock shows as
 * hung tasks (the hung-task detector names them after 120 s).
 *
 */
typedef struct {
	struct rw_semaphore rw;
	atomic_t writers_waiting;
	atomic_t readers_waiting;
	/* Read holders (any task); the assertions' view of "held for read". */
	atomic_t readers;
	/* The write holder, or NULL; written by the holder only. */
	struct task_struct *writer;
	/*
	 * Acquisitions refused to the write holder (it already held the
	 * lock); their unlocks release nothing.  Written by the holder only.
	 */
	unsigned int refused;
	bool force_contended; /* set at init: every needbreak says yes */
} tdp_mmu_lock_t;

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended);
void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l);
void tdp_read_lock(tdp_mmu_lock_t *l);
void tdp_read_unlock(tdp_mmu_lock_t *l);
void tdp_write_lock(tdp_mmu_lock_t *l);
void tdp_write_unlock(tdp_mmu_lock_t *l);

/*
 * The lock's view of a thread: nothing to record.  Every kernel task is
 * known to RCU, and the rw_semaphore keeps no per-task state, so kernel
 * tasks need no registration.
 */
static inline void tdp_port_thread_register(void)
{
}

static inline void tdp_port_thread_unregister(void)
{
}

/* Misuse of mmu_lock or of a walk detected so far (any MMU, any task). */
void tdp_port_lock_misused(void);
long tdp_port_lock_misuses(void);

/* Report one misuse: counted every time, a warning once per rule. */
#define tdp_port_lock_misuse(rule)                                   \
	do {                                                         \
		tdp_port_lock_misused();                             \
		WARN_ONCE(1, "libtdp: mmu_lock misuse: %s\n", rule); \
	} while (0)

/*
 * True when a task waits for the lock in a mode the holder blocks (a
 * writer, for a read holder; anyone, for the write holder) or the
 * scheduler wants the CPU back.
 */
static inline bool tdp_mmu_lock_needbreak(tdp_mmu_lock_t *l, bool shared)
{
	if (l->force_contended || need_resched())
		return true;
	if (atomic_read(&l->writers_waiting))
		return true;
	return !shared && atomic_read(&l->readers_waiting) != 0;
}

/*
 * True when tdp_mmu_lock_needbreak() said yes only because the MMU forces
 * yields and nobody waits: the caller then skips cond_resched().
 */
static inline bool tdp_mmu_lock_yield_is_forced(tdp_mmu_lock_t *l, bool shared)
{
	if (!l->force_contended || need_resched() ||
	    atomic_read(&l->writers_waiting))
		return false;
	return shared || atomic_read(&l->readers_waiting) == 0;
}

/*
 * Write locks the calling task took: not counted per task in the kernel
 * (stats.fault_write_locks stays 0 here; the user-space port measures it).
 */
static inline uint64_t tdp_port_thread_write_locks(void)
{
	return 0;
}

/*
 * "Held for write" is exact (the holder is recorded); "held for read"
 * means some task holds it for read, which is as much as an rw_semaphore
 * can tell without lockdep.
 */
bool tdp_port_lock_held_read(tdp_mmu_lock_t *l);
bool tdp_port_lock_held_write(tdp_mmu_lock_t *l);
#define tdp_lockdep_assert_held_read(l) TDP_ASSERT(tdp_port_lock_held_read(l))
#define tdp_lockdep_assert_held_write(l) TDP_ASSERT(tdp_port_lock_held_write(l))
#define tdp_lockdep_assert_held(l) \
	TDP_ASSERT(tdp_port_lock_held_read(l) || tdp_port_lock_held_write(l))

/*
 * True inside an RCU read-side critical section.  With preemptible RCU
 * the task's nesting count says so; otherwise rcu_read_lock() disabled
 * preemption, and without a preemption count the answer must be yes.
 */
static inline bool tdp_port_in_rcu_reader(void)
{
#ifdef CONFIG_PREEMPT_RCU
	return rcu_preempt_depth() != 0;
#else
	return !IS_ENABLED(CONFIG_PREEMPT_COUNT) || preempt_count() != 0;
#endif
}

/*
 * True when the task certainly must not sleep: inside a preemptible-RCU
 * read-side section (so inside tdp_walk_begin()), with preemption or
 * interrupts disabled, or in interrupt context.  A non-preemptible-RCU
 * reader counts when the kernel keeps a preemption count; without one
 * (CONFIG_PREEMPT_COUNT=n) only interrupt context is visible.
 */
static inline bool tdp_port_may_not_sleep(void)
{
	return rcu_preempt_depth() != 0 || preempt_count() != 0 ||
	       irqs_disabled();
}

/*
 * Let other tasks run.  The engine calls this after it dropped mmu_lock
 * and RCU (a yielding walk), and also while it waits, inside an RCU
 * read-side section, for another thread to finish with a frozen SPTE;
 * there it must not schedule, so it only relaxes the CPU.
 */
static inline void tdp_cond_resched(void)
{
	if (tdp_port_in_rcu_reader())
		cpu_relax();
	else
		cond_resched();
}

/* ---- mutex --------------------------------------------------------------- */

typedef struct mutex tdp_mutex_t;

static inline void tdp_mutex_init(tdp_mutex_t *m)
{
	mutex_init(m);
}

static inline void tdp_mutex_destroy(tdp_mutex_t *m)
{
	mutex_destroy(m);
}

static inline void tdp_mutex_lock(tdp_mutex_t *m)
{
	mutex_lock(m);
}

static inline void tdp_mutex_unlock(tdp_mutex_t *m)
{
	mutex_unlock(m);
}

/* ---- spinlock ------------------------------------------------------------ */

/* A lock for short sections where sleeping is not allowed. */
typedef spinlock_t tdp_spinlock_t;
#define tdp_spin_lock_init(l) spin_lock_init(l)
#define tdp_spin_lock_destroy(l) ((void)(l))
#define tdp_spin_lock(l) spin_lock(l)
#define tdp_spin_unlock(l) spin_unlock(l)

/* ---- time ---------------------------------------------------------------- */

/* Monotonic clock, nanoseconds. */
static inline uint64_t tdp_now_ns(void)
{
	return ktime_get_ns();
}

/* Give up the CPU if the scheduler wants it (outside mmu_lock and RCU). */
static inline void tdp_yield(void)
{
	cond_resched();
}

/* Busy-wait @usec microseconds: callable where sleeping is not allowed. */
static inline void tdp_udelay(unsigned int usec)
{
	udelay(usec);
}

/* ---- RCU ----------------------------------------------------------------- */

struct tdp_rcu_head {
	struct rcu_head head;
};

static inline void tdp_rcu_read_lock(void)
{
	rcu_read_lock();
}

static inline void tdp_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/* Kernel RCU is visible to every checker the kernel has: nothing to say. */
static inline void tdp_rcu_callback_begin(void)
{
}

static inline void tdp_rcu_callback_end(void)
{
}

/* Callbacks run in softirq context: they only free memory. */
static inline void tdp_call_rcu(struct tdp_rcu_head *h,
				void (*fn)(struct rcu_head *))
{
	call_rcu(&h->head, fn);
}

static inline void tdp_rcu_barrier(void)
{
	rcu_barrier();
}

/* Every kernel thread is known to RCU already. */
static inline void tdp_rcu_thread_register(void)
{
}

static inline void tdp_rcu_thread_unregister(void)
{
}

/* Recover the embedding object in a callback. */
#define tdp_rcu_head_container(rh, type, member) \
	container_of(container_of(rh, struct tdp_rcu_head, head), type, member)

/* ---- lockless walks ------------------------------------------------------ */

/*
 * tdp_walk_enter()/tdp_walk_exit(): bracket a lockless walk, an RCU
 * read-side section; no mmu_lock may be taken inside (tdp_read_lock()
 * and tdp_write_lock() report it, see mmu_lock above).
 */
static inline void tdp_walk_enter(void)
{
	rcu_read_lock();
}

/*
 * An exit with no RCU read-side section to end is refused: an unmatched
 * rcu_read_unlock() would leave the task's later readers unprotected.
 * Detected where the kernel tells (preemptible RCU, or a preemption
 * count); elsewhere it cannot be seen.
 */
static inline void tdp_walk_exit(void)
{
	if (unlikely(!tdp_port_in_rcu_reader())) {
		tdp_port_lock_misuse("tdp_walk_end() without tdp_walk_begin(); "
				     "refused");
		return;
	}
	rcu_read_unlock();
}

/* ---- memory -------------------------------------------------------------- */

/*
 * Engine metadata: kzalloc(GFP_KERNEL_ACCOUNT), charged to the caller's
 * memory cgroup like KVM's page tables.  NULL on failure (or when the
 * allocation-failure injector fires).
 */
void *tdp_zalloc(size_t size);

static inline void tdp_free(void *p)
{
	kfree(p);
}

/*
 * Zeroed memory where sleeping is not allowed (under a spinlock or
 * mmu_lock, inside an RCU read-side section), freed with tdp_free().
 * Never failed by the allocation-failure injector: it is for code that
 * checks the engine (the test support), not for the engine.  NULL on
 * failure, without a warning (callers report it themselves).
 */
static inline void *tdp_zalloc_atomic(size_t size)
{
	return kzalloc(size, GFP_ATOMIC | __GFP_NOWARN);
}

/*
 * Page-table pages: one zeroed page from the page allocator; the private
 * pointer is struct page's private field.
 */
void *tdp_table_page_alloc(void);

static inline void tdp_table_page_free(void *page)
{
	if (page)
		free_page((unsigned long)page);
}

static inline void *tdp_table_page_private(const void *page)
{
	return (void *)READ_ONCE(virt_to_page(page)->private);
}

static inline void tdp_table_page_set_private(void *page, void *priv)
{
	WRITE_ONCE(virt_to_page(page)->private, (unsigned long)priv);
}

/* Host frame numbers of table pages, as hardware reads them in SPTEs. */
static inline tdp_pfn_t tdp_virt_to_pfn(const void *page)
{
	return (tdp_pfn_t)PHYS_PFN(__pa(page));
}

static inline void *tdp_pfn_to_virt(tdp_pfn_t pfn)
{
	return pfn_to_kaddr((unsigned long)pfn);
}

/*
 * Backend-owned pages: @size bytes rounded up to a power of two of at
 * least a page, from kmalloc, which aligns such sizes naturally (so the
 * page is page aligned and in the direct map: a backend may hand its
 * physical address to firmware).
 */
void *tdp_ext_page_alloc(size_t size);

static inline void tdp_ext_page_free(void *page)
{
	kfree(page);
}

/*
 * Allocation-failure injection for tests: after @countdown successful
 * allocations, the next one fails (and only that one).  A negative value
 * disables injection.  Module-wide.
 */
void tdp_port_fail_alloc_after(long countdown);

#endif /* TDP_PORT_KERNEL_H */
