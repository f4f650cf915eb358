/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User-space port: out-of-line parts (logging, mmu_lock, the table-page
 * pool); RCU is in user_rcu.c.
 */
#include "port/port.h"

#include <linux/membarrier.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>
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

/*
 * Tuning, chosen by measurement (docs/PERFORMANCE.md, "The mmu_lock"):
 *
 * TDP_LOCK_SPIN_NS        how long a reader that met a writer, or a writer
 *                         waiting for a reader, polls before it sleeps.
 *                         Write sections of an MMU-notifier event last a
 *                         few microseconds; sleeping costs a futex wake.
 * TDP_LOCK_HOLD_NS        how long a write holder runs on, once it sees a
 *                         queued reader, before it yields to it (so that
 *                         taking the lock reads no clock).  Queued readers
 *                         have already spun TDP_LOCK_SPIN_NS, so a reader
 *                         waits at most about their sum for a long zap.
 * TDP_LOCK_ADMIT_SPIN_NS  how long a queued reader polls before it sleeps:
 *                         longer than TDP_LOCK_HOLD_NS, so that the hand-over
 *                         from a yielding zap finds it awake.
 * TDP_LOCK_FAST_AFTER_NS  how long a lock stays FENCED after its last
 *                         writer before readers return it to FAST.
 */
#define TDP_LOCK_SPIN_NS 20000
#define TDP_LOCK_HOLD_NS 50000
#define TDP_LOCK_ADMIT_SPIN_NS 100000
#define TDP_LOCK_FAST_AFTER_NS 4000000

__thread struct tdp_port_thread *tdp_port_self
	__attribute__((tls_model("initial-exec")));
__thread unsigned int tdp_port_resched_calls
	__attribute__((tls_model("initial-exec")));

/* Every record ever registered; push-only, so writers scan it unlocked. */
static struct tdp_port_thread *all_threads; /* atomic head */

/*
 * True when membarrier(2) private expedited is usable; set once.  Without
 * it readers always fence (the lock is never FAST) and writers never sleep
 * waiting for a reader.  TDP_PORT_NO_MEMBARRIER=1 in the environment
 * selects that mode on a kernel that has membarrier, so tests cover it.
 */
static bool have_membarrier;
static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;

/*
 * Threads registered now (atomic) and CPUs online (set once): when there
 * are more threads than CPUs, a thread that spins waiting for the lock
 * may be keeping its holder off a CPU, so spinning threads give the CPU
 * away between polls (spin_pause()).
 */
static int nr_registered;
static int nr_cpus = 1;

static void membarrier_setup(void)
{
	const char *off = getenv("TDP_PORT_NO_MEMBARRIER");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	nr_cpus = cpus > 0 ? (int)cpus : 1;

	if (off && *off && strcmp(off, "0"))
		return;
	have_membarrier =
		syscall(__NR_membarrier,
			MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}


void tdp_port_lock_misuse(const char *rule)
{
	tdp_port_log("bug", "mmu_lock misuse: %s", rule);
	abort();
}

void tdp_port_check_may_lock(const struct tdp_port_thread *self)
{
	if (!self)
		tdp_port_lock_misuse("mmu_lock taken by a thread that did not "
				     "call tdp_thread_register()");
	if (self->walk_depth)
		tdp_port_lock_misuse("libtdp call that takes mmu_lock inside "
				     "tdp_walk_begin()/tdp_walk_end()");
	if (self->reading || self->writing)
		tdp_port_lock_misuse("mmu_lock taken by a thread that already "
				     "holds an mmu_lock (locks never nest, "
				     "not even across MMUs)");
}

void tdp_port_thread_register(void)
{
	struct tdp_port_thread *t = tdp_port_self;

	if (t) {
		t->registered++;
		return;
	}
	pthread_once(&membarrier_once, membarrier_setup);
	/* Reuse a record a finished thread released, or add a new one. */
	for (t = __atomic_load_n(&all_threads, __ATOMIC_ACQUIRE); t;
	     t = t->next) {
		bool free_rec = false;

		if (__atomic_compare_exchange_n(&t->in_use, &free_rec, true,
						false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			break;
	}
	if (!t) {
		t = aligned_alloc(64, sizeof(*t));
		if (!t)
			tdp_port_lock_misuse("no memory for a thread record");
		memset(t, 0, sizeof(*t));
		t->in_use = true;
		t->next = __atomic_load_n(&all_threads, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&all_threads, &t->next, t,
						    false, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED))
			;
	}
	t->registered = 1;
	tdp_port_self = t;
	__atomic_add_fetch(&nr_registered, 1, __ATOMIC_RELAXED);
}

void tdp_port_thread_unregister(void)
{
	struct tdp_port_thread *t = tdp_port_self;

	if (!t)
		tdp_port_lock_misuse("tdp_thread_unregister() by a thread that "
				     "is not registered");
	if (--t->registered)
		return;
	if (t->reading || t->writing || t->walk_depth)
		tdp_port_lock_misuse("tdp_thread_unregister() while holding an "
				     "mmu_lock or inside tdp_walk_begin()");
	tdp_port_self = NULL;
	__atomic_sub_fetch(&nr_registered, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&t->in_use, false, __ATOMIC_RELEASE);
}

/* The write holder gives up its record of @l; aborts unless it holds it. */
static void forget_writer(tdp_mmu_lock_t *l)
{
	struct tdp_port_thread *self = tdp_port_self;

	if (!self || self->writing != l)
		tdp_port_lock_misuse("write unlock of an mmu_lock this thread "
				     "does not hold for write");
	self->writing = NULL;
	__atomic_store_n(&l->writer, NULL, __ATOMIC_RELAXED);
}

int tdp_mmu_lock_init(tdp_mmu_lock_t *l, bool force_contended)
{
	pthread_once(&membarrier_once, membarrier_setup);
	memset(l, 0, sizeof(*l));
	l->force_contended = force_contended;
	/* Without membarrier(2) readers always fence: never FAST. */
	l->state = have_membarrier ? TDP_LOCK_FAST : TDP_LOCK_FENCED;
	l->fast_after_ns = have_membarrier ? 0 : INT64_MAX;
	if (pthread_mutex_init(&l->wait_lock, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&l->wait_cv, NULL)) {
		pthread_mutex_destroy(&l->wait_lock);
		return -ENOMEM;
	}
#ifdef TDP_MMU_LOCK_RWLOCK
	{
		pthread_rwlockattr_t attr;
		int ret;

		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(
			&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		ret = pthread_rwlock_init(&l->rw, &attr);
		pthread_rwlockattr_destroy(&attr);
		if (ret) {
			pthread_cond_destroy(&l->wait_cv);
			pthread_mutex_destroy(&l->wait_lock);
			return -ENOMEM;
		}
	}
#endif
	return 0;
}

void tdp_mmu_lock_destroy(tdp_mmu_lock_t *l)
{
	TDP_WARN_ON(l->writer_active || l->readers_waiting ||
		    l->writers_waiting);
#ifdef TDP_MMU_LOCK_RWLOCK
	pthread_rwlock_destroy(&l->rw);
#endif
	pthread_cond_destroy(&l->wait_cv);
	pthread_mutex_destroy(&l->wait_lock);
}

#ifdef TDP_MMU_LOCK_RWLOCK

void tdp_rwlock_read_lock(tdp_mmu_lock_t *l)
{
	if (pthread_rwlock_tryrdlock(&l->rw)) {
		__atomic_add_fetch(&l->readers_waiting, 1, __ATOMIC_RELAXED);
		pthread_rwlock_rdlock(&l->rw);
		__atomic_sub_fetch(&l->readers_waiting, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&tdp_port_self->reading, l, __ATOMIC_RELAXED);
}

void tdp_rwlock_read_unlock(tdp_mmu_lock_t *l)
{
	__atomic_store_n(&tdp_port_self->reading, NULL, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&l->rw);
}

void tdp_read_lock_slow(tdp_mmu_lock_t *l, struct tdp_port_thread *self)
{
	(void)l;
	(void)self;
}

void tdp_read_unlock_slow(tdp_mmu_lock_t *l)
{
	(void)l;
}

void tdp_write_lock(tdp_mmu_lock_t *l)
{
	struct tdp_port_thread *self = tdp_port_self;

	if (!self || self->reading || self->writing || self->walk_depth)
		tdp_port_check_may_lock(self);
	if (pthread_rwlock_trywrlock(&l->rw)) {
		__atomic_add_fetch(&l->writers_waiting, 1, __ATOMIC_RELAXED);
		pthread_rwlock_wrlock(&l->rw);
		__atomic_sub_fetch(&l->writers_waiting, 1, __ATOMIC_RELAXED);
	}
	self->writing = l;
	self->write_locks++;
	__atomic_store_n(&l->writer, self, __ATOMIC_RELAXED);
}

void tdp_write_unlock(tdp_mmu_lock_t *l)
{
	forget_writer(l);
	pthread_rwlock_unlock(&l->rw);
}

bool tdp_write_needbreak_slow(tdp_mmu_lock_t *l)
{
	(void)l;
	return true;
}

#else /* the per-MMU lock */

static inline int64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * Between two batches of polls while waiting for the lock: with more
 * registered threads than CPUs, give the CPU to another thread (perhaps
 * the one the wait is for); otherwise keep spinning.
 */
static void spin_pause(void)
{
	if (__atomic_load_n(&nr_registered, __ATOMIC_RELAXED) > nr_cpus)
		sched_yield();
}

/*
 * Waiting.  A thread whose condition is false spins (unlocked, polling
 * @events) for up to TDP_LOCK_SPIN_NS, then sleeps on @wait_cv: a
 * hand-over between a yielding zap and a fault then costs a few cache
 * misses, not two futex wake-ups.  notify_locked() is called, with
 * @wait_lock held, by everything that can make a waiter's condition true.
 */
static void notify_locked(tdp_mmu_lock_t *l)
{
	__atomic_store_n(&l->events, l->events + 1, __ATOMIC_RELEASE);
	if (l->sleepers)
		pthread_cond_broadcast(&l->wait_cv);
}

typedef bool (*wait_cond_fn)(const tdp_mmu_lock_t *l, unsigned int arg);

/* Called and returns with @wait_lock held, @ready true; spins for up to
 * @spin_ns before it sleeps. */
static void wait_locked(tdp_mmu_lock_t *l, wait_cond_fn ready, unsigned int arg,
			int64_t spin_ns)
{
	int64_t deadline;

	if (ready(l, arg))
		return; /* the common, uncontended case reads no clock */
	deadline = clock_ns(CLOCK_MONOTONIC) + spin_ns;
	do {
		unsigned int seen = l->events;
		bool changed = false;

		if (clock_ns(CLOCK_MONOTONIC) >= deadline) {
			l->sleepers++;
			pthread_cond_wait(&l->wait_cv, &l->wait_lock);
			l->sleepers--;
			continue;
		}
		pthread_mutex_unlock(&l->wait_lock);
		do {
			for (int i = 0; i < 64 && !changed; i++) {
				changed = __atomic_load_n(&l->events,
							  __ATOMIC_ACQUIRE) != seen;
				cpu_relax();
			}
			if (!changed)
				spin_pause();
		} while (!changed && clock_ns(CLOCK_MONOTONIC) < deadline);
		pthread_mutex_lock(&l->wait_lock);
	} while (!ready(l, arg));
}

/*
 * Wake writers asleep in wait_for_reader(); called once this thread's
 * record no longer names the lock and @drain_waiting was seen set.  The
 * reader's side of that check has no fence: a writer sets @drain_waiting
 * and calls membarrier before it looks at the record a last time and
 * sleeps, so either it sees the record cleared or the reader sees the
 * flag (the asymmetric Dekker pattern again).
 */
static void wake_drainers(tdp_mmu_lock_t *l)
{
	pthread_mutex_lock(&l->wait_lock);
	pthread_cond_broadcast(&l->wait_cv);
	pthread_mutex_unlock(&l->wait_lock);
}

void tdp_read_unlock_slow(tdp_mmu_lock_t *l)
{
	wake_drainers(l);
}

/*
 * A FENCED lock whose last writer left long enough ago turns FAST.  The
 * clock is read on every 64th FENCED read lock of a thread only.
 */
static void maybe_return_to_fast(tdp_mmu_lock_t *l,
				 struct tdp_port_thread *self)
{
	int64_t now;

	/* Without membarrier(2) a writer could not leave FAST safely. */
	if (!have_membarrier || ++self->fenced_reads % 64)
		return;
	now = clock_ns(CLOCK_MONOTONIC_COARSE);

	if (now < __atomic_load_n(&l->fast_after_ns, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&l->wait_lock);
	if (l->state == TDP_LOCK_FENCED && !l->writer_active &&
	    !l->writers_waiting && now >= l->fast_after_ns)
		__atomic_store_n(&l->state, TDP_LOCK_FAST, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->wait_lock);
}

/* Poll for up to TDP_LOCK_SPIN_NS; true if the lock stopped being
 * BLOCKED meanwhile. */
static bool spin_while_blocked(tdp_mmu_lock_t *l)
{
	int64_t deadline = clock_ns(CLOCK_MONOTONIC) + TDP_LOCK_SPIN_NS;

	do {
		for (int i = 0; i < 64; i++) {
			if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) !=
			    TDP_LOCK_BLOCKED)
				return true;
			cpu_relax();
		}
		spin_pause();
	} while (clock_ns(CLOCK_MONOTONIC) < deadline);
	return false;
}

/* A queued reader of @phase may enter. */
static bool reader_admitted(const tdp_mmu_lock_t *l, unsigned int phase)
{
	return !l->writer_active && (!l->writers_waiting || l->phase != phase);
}

/*
 * Queue behind the writer and wait for admission: when a writer unlocks,
 * every reader queued at that moment (an older @phase) is admitted, and
 * the next writer waits until they all entered (@granted).  The record is
 * published under @wait_lock, so a writer that claims the lock later
 * finds it in its scan.
 */
static void wait_for_admission(tdp_mmu_lock_t *l, struct tdp_port_thread *self)
{
	unsigned int phase;

	pthread_mutex_lock(&l->wait_lock);
	phase = l->phase;
	__atomic_store_n(&l->readers_waiting, l->readers_waiting + 1,
			 __ATOMIC_RELAXED);
	/* Outlast the holder's TDP_LOCK_HOLD_NS: a sleeping reader would
	 * turn each hand-over into two futex wake-ups. */
	wait_locked(l, reader_admitted, phase, TDP_LOCK_ADMIT_SPIN_NS);
	__atomic_store_n(&l->readers_waiting, l->readers_waiting - 1,
			 __ATOMIC_RELAXED);
	if (l->phase != phase && --l->granted == 0)
		notify_locked(l);
	__atomic_store_n(&self->reading, l, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&l->wait_lock);
}

/*
 * A reader spins while BLOCKED once only: the second time it finds the
 * lock BLOCKED it queues.  Spinning again could go on forever if a new
 * writer took the lock in each short window between two writers, and only
 * queued readers are admitted phase-fairly (model/lock.pml found that
 * starvation, ltl r0 with BUG_SPIN_AGAIN).
 */
void tdp_read_lock_slow(tdp_mmu_lock_t *l, struct tdp_port_thread *self)
{
	bool spun = false;

	for (;;) {
		int state;

		/* Pairs with the writer's seq_cst BLOCKED store and record
		 * loads (drain_readers()). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		state = __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
		if (state == TDP_LOCK_FENCED) {
			maybe_return_to_fast(l, self);
			return;
		}
		if (state == TDP_LOCK_FAST)
			return;
		/* BLOCKED: withdraw, and wake a writer that saw us. */
		__atomic_store_n(&self->reading, NULL, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&l->drain_waiting, __ATOMIC_RELAXED))
			wake_drainers(l);
		if (spun || !spin_while_blocked(l)) {
			wait_for_admission(l, self);
			return;
		}
		spun = true;
		__atomic_store_n(&self->reading, l, __ATOMIC_RELAXED);
	}
}

/* Wait until @t no longer reads @l: spin first, then sleep. */
static void wait_for_reader(tdp_mmu_lock_t *l, struct tdp_port_thread *t)
{
	int64_t deadline = clock_ns(CLOCK_MONOTONIC) + TDP_LOCK_SPIN_NS;

	do {
		for (int i = 0; i < 64; i++) {
			if (__atomic_load_n(&t->reading, __ATOMIC_ACQUIRE) != l)
				return;
			cpu_relax();
		}
		spin_pause();
	} while (clock_ns(CLOCK_MONOTONIC) < deadline);

	/* Without membarrier readers do not look at @drain_waiting safely:
	 * keep polling, letting other threads run. */
	if (!have_membarrier) {
		while (__atomic_load_n(&t->reading, __ATOMIC_ACQUIRE) == l)
			sched_yield();
		return;
	}
	pthread_mutex_lock(&l->wait_lock);
	__atomic_store_n(&l->drain_waiting, l->drain_waiting + 1,
			 __ATOMIC_RELAXED);
	/* Pairs with the reader's unlock: see wake_drainers(). */
	syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	while (__atomic_load_n(&t->reading, __ATOMIC_ACQUIRE) == l) {
		l->sleepers++;
		pthread_cond_wait(&l->wait_cv, &l->wait_lock);
		l->sleepers--;
	}
	__atomic_store_n(&l->drain_waiting, l->drain_waiting - 1,
			 __ATOMIC_RELAXED);
	pthread_mutex_unlock(&l->wait_lock);
}

/*
 * Wait until no thread record names @l: every reader has left.
 *
 * Called after the writer's seq_cst store of BLOCKED (and, if the lock was
 * FAST, membarrier).  A FENCED reader stores its record, issues a seq_cst
 * fence, then loads @state; here the list head and each record are loaded
 * seq_cst, with no fence.  That is enough (C11/C++20 seq_cst rules): if
 * this scan missed a reader's record (or its record's insertion into
 * @all_threads), the scan's load precedes the reader's fence in the single
 * total order S; the reader's load of @state after its fence then cannot
 * miss BLOCKED, or the fence would precede the BLOCKED store in S, which
 * precedes the scan's load: a cycle.  On x86 the loads are plain moves,
 * and the store an xchg; an mfence here cost a quarter of a forced-yield
 * zap step.  Record @next pointers are written before the record is
 * published and never change.
 */
static void drain_readers(tdp_mmu_lock_t *l, struct tdp_port_thread *self)
{
	for (struct tdp_port_thread *t =
		     __atomic_load_n(&all_threads, __ATOMIC_SEQ_CST);
	     t; t = t->next) {
		if (t != self &&
		    __atomic_load_n(&t->reading, __ATOMIC_SEQ_CST) == l)
			wait_for_reader(l, t);
	}
}

/* The writer holding @ticket may claim the lock. */
static bool writer_turn(const tdp_mmu_lock_t *l, unsigned int ticket)
{
	return !l->writer_active && !l->granted && ticket == l->serving;
}

void tdp_write_lock(tdp_mmu_lock_t *l)
{
	struct tdp_port_thread *self = tdp_port_self;
	unsigned int ticket;
	bool was_fast;

	if (!self || self->reading || self->writing || self->walk_depth)
		tdp_port_check_may_lock(self);

	pthread_mutex_lock(&l->wait_lock);
	ticket = l->next_ticket++;
	__atomic_store_n(&l->writers_waiting, l->writers_waiting + 1,
			 __ATOMIC_RELAXED);
	/* Only the first writer after a FAST period finds it FAST. */
	was_fast = l->state == TDP_LOCK_FAST;
	__atomic_store_n(&l->state, TDP_LOCK_BLOCKED, __ATOMIC_SEQ_CST);
	wait_locked(l, writer_turn, ticket, TDP_LOCK_SPIN_NS);
	__atomic_store_n(&l->writers_waiting, l->writers_waiting - 1,
			 __ATOMIC_RELAXED);
	l->writer_active = true;
	pthread_mutex_unlock(&l->wait_lock);

	/*
	 * Make BLOCKED visible to every reader and every reader's record
	 * visible to us: FAST readers only had a compiler barrier, so they
	 * need membarrier; FENCED readers fenced themselves, which pairs
	 * with the seq_cst BLOCKED store above and drain_readers()' seq_cst
	 * loads.
	 */
	if (was_fast)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	drain_readers(l, self);

	self->writing = l;
	self->write_locks++;
	__atomic_store_n(&l->writer, self, __ATOMIC_RELAXED);
	/* Read lazily, by the first needbreak that sees a queued reader:
	 * most write sections never look at the clock. */
	l->write_since_ns = 0;
	l->break_checks = 0;
}

void tdp_write_unlock(tdp_mmu_lock_t *l)
{
	forget_writer(l);

	pthread_mutex_lock(&l->wait_lock);
	l->writer_active = false;
	l->serving++;
	if (l->readers_waiting) {
		/* Phase-fair: every queued reader goes before the next writer. */
		l->phase++;
		l->granted = (unsigned int)l->readers_waiting;
	}
	if (!l->writers_waiting) {
		__atomic_store_n(&l->fast_after_ns,
				 clock_ns(CLOCK_MONOTONIC_COARSE) +
					 TDP_LOCK_FAST_AFTER_NS,
				 __ATOMIC_RELAXED);
		/* Release: a reader that sees FENCED sees this section. */
		__atomic_store_n(&l->state, TDP_LOCK_FENCED, __ATOMIC_RELEASE);
	}
	notify_locked(l);
	pthread_mutex_unlock(&l->wait_lock);
}

/*
 * A reader is queued: yield once the holder has gone on for
 * TDP_LOCK_HOLD_NS since it first saw a queued reader (the reader has
 * spun for TDP_LOCK_ADMIT_SPIN_NS before it queued).  The clock is read
 * on every 16th call only.
 */
bool tdp_write_needbreak_slow(tdp_mmu_lock_t *l)
{
	int64_t now;

	if (++l->break_checks % 16)
		return false;
	now = clock_ns(CLOCK_MONOTONIC);
	if (!l->write_since_ns) {
		l->write_since_ns = now;
		return false;
	}
	return now - l->write_since_ns >= TDP_LOCK_HOLD_NS;
}

#endif /* TDP_MMU_LOCK_RWLOCK */

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
