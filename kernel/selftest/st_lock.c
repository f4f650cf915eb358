// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The kernel port's mmu_lock on its own: the lock inside real MMUs, taken
 * through the port's names as the engine takes it (white box: the MMU's
 * mmu_lock field, from the engine's internal header).
 *
 *   lock/exclusion  reader and writer kthreads on one MMU's mmu_lock; both
 *                   hold it across many steps and yield when
 *                   tdp_mmu_lock_needbreak() says so, as the engine's walks
 *                   do.  Counters of the tasks inside each kind of section
 *                   must never overlap, and a payload written only under
 *                   the write lock (every step adds one to each word) must
 *                   never be torn and must end at the number of write
 *                   steps.  Once as built, once with every needbreak
 *                   saying yes (TDP_MMU_FORCE_YIELD).
 *   lock/fairness   overlapping readers that keep the lock read-held
 *                   without a gap against one writer, then back-to-back
 *                   writers against one reader: each side makes progress.
 *   lock/two_mmus   a reader of MMU A holds its read lock, with a writer of
 *                   A waiting behind it, until a writer of MMU B has
 *                   finished many write-lock rounds: writers wait only for
 *                   their own MMU's readers.  A deadline bounds the wait
 *                   (B's writer blocked by A's reader fails the test
 *                   instead of hanging it), and A's writer must not get in
 *                   before A's reader leaves.
 *   lock/misuse     every misuse the port detects, provoked once each: it
 *                   is counted, refused or handled as port/kernel.h
 *                   says, and the lock still works afterwards.  The port
 *                   warns once per rule, so the first run prints one
 *                   backtrace per rule.
 *
 * Time: stress_ms / 5 per test (600 ms by default), split between passes.
 */
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>

#include "st.h"

#include "internal.h"

#define PAYLOAD_WORDS 64
#define EXCL_READERS 4
#define EXCL_WRITERS 2
#define FAIR_THREADS 4
#define B_ROUNDS 1000
#define TWO_MMUS_DEADLINE_MS 5000

/* Time budget of one test, in ms. */
static unsigned int lock_ms(void)
{
	return clamp(st_stress_ms / 5, 200U, 10000U);
}

static u64 deadline_after_ms(unsigned int ms)
{
	return ktime_get_ns() + (u64)ms * NSEC_PER_MSEC;
}

static bool past(u64 deadline_ns)
{
	return ktime_get_ns() >= deadline_ns;
}

/* ---- the protected state ------------------------------------------------- */

struct guarded {
	struct st *t;
	tdp_mmu_lock_t *lock;	    /* the MMU's mmu_lock */
	atomic_t readers_in;	    /* tasks inside a read section */
	atomic_t writers_in;	    /* tasks inside a write section */
	atomic_long_t write_steps;  /* payload increments made */
	atomic_long_t yields;	    /* holder yielded on needbreak */
	u64 payload[PAYLOAD_WORDS]; /* written only under the write lock */
};

static void guarded_init(struct guarded *g, struct st *t, struct tdp_mmu *mmu)
{
	memset(g, 0, sizeof(*g));
	g->t = t;
	g->lock = &mmu->mmu_lock;
}

/*
 * A new MMU with @flags in @e and a guarded view of its lock; NULL (after
 * a failed check) when either could not be had.  guarded_free() undoes it.
 */
static struct guarded *guarded_new(struct st *t, struct ts_env *e,
				   unsigned int flags)
{
	const struct ts_env_opts o = { .flags = flags };
	struct guarded *g = kzalloc(sizeof(*g), GFP_KERNEL);

	if (!ST_TRUE(t, g != NULL))
		return NULL;
	if (!st_env_init(t, e, &o)) {
		kfree(g);
		return NULL;
	}
	guarded_init(g, t, e->mmu);
	return g;
}

static void guarded_free(struct guarded *g, struct ts_env *e)
{
	st_env_fini(e);
	kfree(g);
}

/* Drop and retake the lock if someone waits, as a yielding walk does. */
static void maybe_yield(struct guarded *g, bool shared)
{
	if (!tdp_mmu_lock_needbreak(g->lock, shared))
		return;
	if (shared)
		tdp_read_unlock(g->lock);
	else
		tdp_write_unlock(g->lock);
	tdp_cond_resched();
	if (shared)
		tdp_read_lock(g->lock);
	else
		tdp_write_lock(g->lock);
	atomic_long_inc(&g->yields);
}

/* One read step: nobody writes while it looks, for @hold_us. */
static void read_step(struct guarded *g, unsigned int hold_us)
{
	struct st *t = g->t;
	u64 first;

	atomic_inc(&g->readers_in);
	ST_EQ(t, atomic_read(&g->writers_in), 0);
	ST_TRUE(t, tdp_port_lock_held_read(g->lock));
	first = g->payload[0];
	for (int i = 1; i < PAYLOAD_WORDS; i++)
		if (g->payload[i] != first)
			st_fail(t, __FILE__, __LINE__,
				"torn payload: word %d is %llu, word 0 %llu", i,
				g->payload[i], first);
	if (hold_us)
		usleep_range(hold_us, hold_us + hold_us / 4 + 1);
	ST_EQ(t, g->payload[PAYLOAD_WORDS - 1], first);
	atomic_dec(&g->readers_in);
}

static void read_section(struct guarded *g, unsigned int steps,
			 unsigned int hold_us)
{
	tdp_read_lock(g->lock);
	for (unsigned int s = 0; s < steps; s++) {
		read_step(g, hold_us);
		if (s + 1 < steps)
			maybe_yield(g, true);
	}
	tdp_read_unlock(g->lock);
}

/* One write step: alone inside, add one to every word of the payload. */
static void write_step(struct guarded *g)
{
	struct st *t = g->t;
	u64 next;

	ST_EQ(t, atomic_inc_return(&g->writers_in), 1);
	ST_EQ(t, atomic_read(&g->readers_in), 0);
	ST_TRUE(t, tdp_port_lock_held_write(g->lock));
	next = g->payload[0] + 1;
	for (int i = 0; i < PAYLOAD_WORDS; i++)
		g->payload[i] = next;
	atomic_long_inc(&g->write_steps);
	atomic_dec(&g->writers_in);
}

static void write_section(struct guarded *g, unsigned int steps)
{
	tdp_write_lock(g->lock);
	for (unsigned int s = 0; s < steps; s++) {
		write_step(g);
		if (s + 1 < steps)
			maybe_yield(g, false);
	}
	tdp_write_unlock(g->lock);
}

/* Quiescent: nobody inside, and no write step lost. */
static void guarded_check(struct guarded *g)
{
	struct st *t = g->t;

	ST_EQ(t, atomic_read(&g->readers_in), 0);
	ST_EQ(t, atomic_read(&g->writers_in), 0);
	ST_EQ(t, g->payload[0], atomic_long_read(&g->write_steps));
	ST_TRUE(t, !rwsem_is_locked(&g->lock->rw));
}

/* ---- workers ------------------------------------------------------------- */

struct lock_worker {
	struct guarded *g;
	bool writer;
	u64 rng;
	u64 until_ns;
	unsigned long sections;
};

/* Random sections: short and long, a few that sleep inside. */
static int mixed_fn(void *arg)
{
	struct lock_worker *w = arg;

	while (!kthread_should_stop() && !past(w->until_ns)) {
		u64 x = ts_rand(&w->rng);

		if (w->writer)
			write_section(w->g, 1 + x % 200);
		else
			read_section(w->g, 1 + x % 50,
				     x % 64 == 0 ? (x >> 8) % 200 : 0);
		WRITE_ONCE(w->sections, w->sections + 1);
		cond_resched();
	}
	return 0;
}

/* Read sections of 300 us each: overlapping readers leave no gap. */
static int holding_reader_fn(void *arg)
{
	struct lock_worker *w = arg;

	while (!kthread_should_stop() && !past(w->until_ns)) {
		read_section(w->g, 1, 300);
		WRITE_ONCE(w->sections, w->sections + 1);
	}
	return 0;
}

/* Back-to-back write sections of 50 steps. */
static int holding_writer_fn(void *arg)
{
	struct lock_worker *w = arg;

	while (!kthread_should_stop() && !past(w->until_ns)) {
		write_section(w->g, 50);
		WRITE_ONCE(w->sections, w->sections + 1);
	}
	return 0;
}

/*
 * Run @n workers on @g for @ms, and on until each has completed
 * @min_sections sections or RUN_CAP_MS have passed; worker i is a writer
 * when @is_writer(i), running @writer_fn, else @reader_fn.  A worker
 * short of @min_sections then is starved.  Progress, not speed, is
 * checked: an emulated CPU may be many times slower than a real one.
 */
#define RUN_CAP_MS 10000

static bool workers_done(const struct lock_worker *w, unsigned int n,
			 unsigned long min_sections)
{
	for (unsigned int i = 0; i < n; i++)
		if (READ_ONCE(w[i].sections) < min_sections)
			return false;
	return true;
}

static void run_workers(struct guarded *g, unsigned int n,
			bool (*is_writer)(unsigned int i),
			int (*reader_fn)(void *), int (*writer_fn)(void *),
			unsigned int ms, unsigned long min_sections)
{
	struct st *t = g->t;
	struct lock_worker w[EXCL_READERS + EXCL_WRITERS];
	struct st_thread *th[ARRAY_SIZE(w)];
	u64 until = deadline_after_ms(ms);
	u64 cap = deadline_after_ms(RUN_CAP_MS);

	if (!ST_TRUE(t, n <= ARRAY_SIZE(w)))
		return;
	for (unsigned int i = 0; i < n; i++) {
		w[i] = (struct lock_worker){
			.g = g,
			.writer = is_writer(i),
			.rng = (t->seed ^ (i + 1) * 0x9e3779b97f4a7c15ULL) | 1,
			.until_ns = cap,
		};
		th[i] = st_thread_start(w[i].writer ? writer_fn : reader_fn,
					&w[i], "lock", i);
		ST_TRUE(t, th[i] != NULL);
	}
	/* A stop ends a worker's loop at once: let them run first. */
	while (!past(until) ||
	       (!past(cap) && !workers_done(w, n, min_sections)))
		msleep(10);
	for (unsigned int i = 0; i < n; i++) {
		st_thread_stop(th[i]);
		if (w[i].sections < min_sections)
			st_fail(t, __FILE__, __LINE__,
				"%s %u starved: %lu sections in %u ms",
				w[i].writer ? "writer" : "reader", i,
				w[i].sections, RUN_CAP_MS);
	}
}

/* ---- lock/exclusion ------------------------------------------------------ */

static bool excl_is_writer(unsigned int i)
{
	return i >= EXCL_READERS;
}

static void test_exclusion(struct st *t)
{
	for (int pass = 0; pass < 2; pass++) {
		struct ts_env e;
		struct guarded *g =
			guarded_new(t, &e, pass ? TDP_MMU_FORCE_YIELD : 0);

		if (!g)
			return;
		run_workers(g, EXCL_READERS + EXCL_WRITERS, excl_is_writer,
			    mixed_fn, mixed_fn, lock_ms() / 2, 1);
		guarded_check(g);
		ST_TRUE(t, atomic_long_read(&g->write_steps) > 0);
		/* Forced contention: every multi-step section yielded. */
		if (pass)
			ST_TRUE(t, atomic_long_read(&g->yields) > 0);
		pr_info("tdp_selftest: lock/exclusion%s: %ld write steps, %ld yields\n",
			pass ? " (forced yields)" : "",
			atomic_long_read(&g->write_steps),
			atomic_long_read(&g->yields));
		guarded_free(g, &e);
	}
}

/* ---- lock/fairness ------------------------------------------------------- */

static bool last_is_writer(unsigned int i)
{
	return i == FAIR_THREADS - 1;
}

static bool all_but_last_write(unsigned int i)
{
	return i != FAIR_THREADS - 1;
}

/*
 * A starved side would finish no section at all, or one; the bound is low
 * so that a slow emulated machine passes.
 */
#define FAIR_MIN_SECTIONS 3

static void test_fairness(struct st *t)
{
	struct ts_env e;
	struct guarded *g = guarded_new(t, &e, 0);

	if (!g)
		return;
	/* Three overlapping readers against one writer. */
	run_workers(g, FAIR_THREADS, last_is_writer, holding_reader_fn,
		    holding_writer_fn, lock_ms() / 2, FAIR_MIN_SECTIONS);
	guarded_check(g);
	/* Three back-to-back writers against one reader. */
	guarded_init(g, t, e.mmu);
	run_workers(g, FAIR_THREADS, all_but_last_write, holding_reader_fn,
		    holding_writer_fn, lock_ms() / 2, FAIR_MIN_SECTIONS);
	guarded_check(g);
	guarded_free(g, &e);
}

/* ---- lock/two_mmus ------------------------------------------------------- */

struct two_mmus {
	struct guarded a, b;
	atomic_t a_reader_in;  /* the reader of A holds A's read lock */
	atomic_t a_writer_got; /* the writer of A got A's write lock */
	atomic_t b_done;       /* the writer of B finished its rounds */
	u64 deadline_ns;
	u64 slowest_ns; /* the longest round, for the log */
};

static int a_reader_fn(void *arg)
{
	struct two_mmus *m = arg;
	struct st *t = m->a.t;

	/* Hold until B's writer is done or the deadline, whatever stop says. */
	tdp_read_lock(m->a.lock);
	atomic_set(&m->a_reader_in, 1);
	while (!atomic_read(&m->b_done) && !past(m->deadline_ns))
		usleep_range(100, 200);
	if (!atomic_read(&m->b_done))
		st_fail(t, __FILE__, __LINE__,
			"the writer of MMU B waited for a reader of MMU A");
	if (atomic_read(&m->a_writer_got))
		st_fail(t, __FILE__, __LINE__,
			"the writer of MMU A got in past its reader");
	tdp_read_unlock(m->a.lock);
	return 0;
}

static int a_writer_fn(void *arg)
{
	struct two_mmus *m = arg;

	tdp_write_lock(m->a.lock);
	atomic_set(&m->a_writer_got, 1);
	tdp_write_unlock(m->a.lock);
	return 0;
}

static int b_writer_fn(void *arg)
{
	struct two_mmus *m = arg;

	for (unsigned int i = 0; i < B_ROUNDS; i++) {
		write_section(&m->b, 1 + i % 8);
		read_section(&m->b, 1, 0);
	}
	atomic_set(&m->b_done, 1);
	return 0;
}

/* One round of the scenario; false if it could not be set up. */
static bool two_mmus_round(struct st *t, struct two_mmus *m)
{
	struct st_thread *ra, *wa, *wb;
	u64 b_start;

	atomic_set(&m->a_reader_in, 0);
	atomic_set(&m->a_writer_got, 0);
	atomic_set(&m->b_done, 0);
	m->deadline_ns = deadline_after_ms(TWO_MMUS_DEADLINE_MS);

	ra = st_thread_start(a_reader_fn, m, "lock_ra", 0);
	if (!ST_TRUE(t, ra != NULL))
		return false;
	while (!atomic_read(&m->a_reader_in))
		usleep_range(50, 100);
	wa = st_thread_start(a_writer_fn, m, "lock_wa", 0);
	ST_TRUE(t, wa != NULL);
	/* B's rounds start once A's writer is queued behind A's reader. */
	while (wa && !atomic_read(&m->a.lock->writers_waiting) &&
	       !atomic_read(&m->a_writer_got) && !past(m->deadline_ns))
		usleep_range(50, 100);
	ST_EQ(t, atomic_read(&m->a.lock->writers_waiting), wa ? 1 : 0);
	b_start = ktime_get_ns();
	wb = st_thread_start(b_writer_fn, m, "lock_wb", 0);
	ST_TRUE(t, wb != NULL);
	/* Each returns by itself: the reader at the deadline at the latest. */
	st_thread_stop(ra);
	st_thread_stop(wa);
	st_thread_stop(wb);
	ST_EQ(t, atomic_read(&m->a_writer_got), wa ? 1 : 0);
	ST_EQ(t, atomic_read(&m->b_done), wb ? 1 : 0);
	m->slowest_ns = max(m->slowest_ns, ktime_get_ns() - b_start);
	return wa && wb;
}

static void test_two_mmus(struct st *t)
{
	struct two_mmus *m = kzalloc(sizeof(*m), GFP_KERNEL);
	struct ts_env ea, eb;
	u64 until = deadline_after_ms(lock_ms() / 2);
	unsigned int rounds = 0;

	if (!ST_TRUE(t, m != NULL))
		return;
	if (!st_env_init(t, &ea, NULL)) {
		kfree(m);
		return;
	}
	if (!st_env_init(t, &eb, NULL)) {
		st_env_fini(&ea);
		kfree(m);
		return;
	}
	guarded_init(&m->a, t, ea.mmu);
	guarded_init(&m->b, t, eb.mmu);
	do {
		if (!two_mmus_round(t, m))
			break;
		rounds++;
	} while (!past(until) && !st_failed(t));
	pr_info("tdp_selftest: lock/two_mmus: %u times %u write sections of MMU B while MMU A was read-held, the slowest in %llu ms\n",
		rounds, B_ROUNDS, div_u64(m->slowest_ns, NSEC_PER_MSEC));
	guarded_check(&m->a);
	guarded_check(&m->b);
	st_env_fini(&eb);
	st_env_fini(&ea);
	kfree(m);
}

/* ---- lock/misuse --------------------------------------------------------- */

/* Misuses the port counted since the last call. */
static long new_misuses(long *mark)
{
	long now = tdp_port_lock_misuses();
	long n = now - *mark;

	*mark = now;
	return n;
}

struct holder {
	tdp_mmu_lock_t *lock;
	unsigned int hold_ms;
	int cpu; /* where the holder runs */
	atomic_t holding;
};

/* Unlock a lock another task holds for write. */
static int foreign_unlock_fn(void *arg)
{
	struct holder *h = arg;

	tdp_write_unlock(h->lock);
	return 0;
}

/* Hold the lock for write for @hold_ms, on CPU @cpu. */
static int write_holder_fn(void *arg)
{
	struct holder *h = arg;

	set_cpus_allowed_ptr(current, cpumask_of(h->cpu));
	tdp_write_lock(h->lock);
	atomic_set(&h->holding, 1);
	msleep(h->hold_ms);
	tdp_write_unlock(h->lock);
	return 0;
}

static void test_misuse(struct st *t)
{
	struct holder h = { 0 };
	struct st_thread *th;
	tdp_mmu_lock_t *l;
	struct ts_env e;
	long mark = tdp_port_lock_misuses();
	long expected = 0;

	if (!st_env_init(t, &e, NULL))
		return;
	l = &e.mmu->mmu_lock;

	/* Inside an RCU read-side section: reported, taken anyway. */
	rcu_read_lock();
	tdp_read_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_read(l));
	tdp_read_unlock(l);
	rcu_read_unlock();
	expected++;

	/* Inside tdp_walk_begin()/tdp_walk_end(): the same. */
	tdp_walk_begin();
	tdp_write_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_write(l));
	tdp_write_unlock(l);
	tdp_walk_end();
	expected++;

	/* Preemption disabled: taken by spinning, never sleeping. */
	preempt_disable();
	tdp_read_lock(l);
	ST_TRUE(t, tdp_port_lock_held_read(l));
	tdp_read_unlock(l);
	preempt_enable();
	ST_EQ(t, new_misuses(&mark), 1);
	expected++;

	/*
	 * ... also while another task holds it.  The holder sleeps holding
	 * it and must wake on another CPU than the one spinning with
	 * preemption disabled: both are pinned.
	 */
	if (num_online_cpus() > 1) {
		int here = raw_smp_processor_id();

		set_cpus_allowed_ptr(current, cpumask_of(here));
		h = (struct holder){
			.lock = l,
			.hold_ms = 20,
			.cpu = cpumask_any_but(cpu_online_mask, here),
		};
		th = st_thread_start(write_holder_fn, &h, "lock_hold", 0);
		if (ST_TRUE(t, th != NULL)) {
			while (!atomic_read(&h.holding))
				usleep_range(50, 100);
			preempt_disable();
			tdp_read_lock(l);
			ST_TRUE(t, READ_ONCE(l->writer) == NULL);
			tdp_read_unlock(l);
			preempt_enable();
			ST_EQ(t, new_misuses(&mark), 1);
			expected++;
			st_thread_stop(th);
		}
		set_cpus_allowed_ptr(current, cpu_possible_mask);
	}

	/* Nested in the task's own write lock: refused, no deadlock. */
	tdp_write_lock(l);
	tdp_write_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_lock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_unlock(l);
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);
	ST_TRUE(t, tdp_port_lock_held_write(l)); /* the outer one holds */
	tdp_write_unlock(l);
	ST_TRUE(t, !tdp_port_lock_held_write(l));
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	expected += 2;

	/* Unlocks of a lock nobody holds: refused. */
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	ST_EQ(t, atomic_read(&l->readers), 0);
	expected += 2;

	/* A read unlock by the write holder: refused, still held. */
	tdp_write_lock(l);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 1);
	ST_TRUE(t, tdp_port_lock_held_write(l));
	ST_TRUE(t, rwsem_is_locked(&l->rw));
	expected++;

	/* A write unlock by another task: refused, this one still holds. */
	h = (struct holder){ .lock = l };
	th = st_thread_start(foreign_unlock_fn, &h, "lock_unl", 0);
	if (ST_TRUE(t, th != NULL)) {
		st_thread_stop(th);
		ST_EQ(t, new_misuses(&mark), 1);
		expected++;
	}
	ST_TRUE(t, tdp_port_lock_held_write(l));
	ST_TRUE(t, rwsem_is_locked(&l->rw));
	tdp_write_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);

	/* A walk end with no walk: refused where the kernel can tell. */
	if (IS_ENABLED(CONFIG_PREEMPT_RCU) ||
	    IS_ENABLED(CONFIG_PREEMPT_COUNT)) {
		tdp_walk_end();
		ST_EQ(t, new_misuses(&mark), 1);
		expected++;
		/* The task's RCU nesting is intact. */
		ST_TRUE(t, !tdp_port_may_not_sleep());
	}

	/* The lock still works, and the MMU with it (teardown takes it). */
	tdp_write_lock(l);
	tdp_write_unlock(l);
	tdp_read_lock(l);
	tdp_read_unlock(l);
	ST_EQ(t, new_misuses(&mark), 0);
	ST_TRUE(t, !rwsem_is_locked(&l->rw));
	t->expected_misuses = expected;
	st_env_fini(&e);
}

const struct st_case st_lock_cases[] = {
	{ "lock/exclusion", test_exclusion },
	{ "lock/fairness", test_fairness },
	{ "lock/two_mmus", test_two_mmus },
	{ "lock/misuse", test_misuse },
};
const unsigned int st_lock_nr_cases = ARRAY_SIZE(st_lock_cases);
