/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User-space port: thread registration and deferred frees (user.h, RCU).
 *
 * Pending callbacks form one lock-free list, newest first: tdp_call_rcu()
 * pushes with a compare-exchange, and a batch takes the whole list with
 * one exchange (a single kind of removal, so no ABA).  A batch then waits
 * for one urcu_memb_synchronize_rcu() and runs its callbacks oldest first.
 * Each callback was queued after its object was unlinked, so a reader that
 * could still reach the object entered its read-side section before the
 * batch was taken, and that grace period waits for it.
 *
 * Batches run in two places, one at a time (batch_lock):
 *
 *   - the reclaim thread, woken by the push that makes the list
 *     non-empty.  It first sleeps RECLAIM_DELAY_MS so that one grace
 *     period covers a whole burst of frees, as liburcu's call_rcu thread
 *     does;
 *   - tdp_rcu_barrier(), in the caller and at once.  Holding batch_lock,
 *     it knows that every callback queued before the call is either still
 *     on the list or in a batch the reclaim thread has finished.
 *
 * The barrier therefore costs one grace period when callbacks are pending
 * and nothing otherwise, where urcu_memb_barrier() waited for liburcu's
 * call_rcu thread to wake up from its batching sleep (about 10 ms).
 *
 * ThreadSanitizer: tdp_call_rcu() releases the token and every callback
 * acquires it (user.h).  The push takes no lock and wakes the thread with
 * a semaphore post, so the only order TSan learns on that path runs from
 * the pusher to the callbacks, never from a batch back into readers.
 *
 * Like liburcu's call_rcu, this is not fork-safe: a child process has no
 * reclaim thread, and a batch in flight at fork() is never run there.
 */
#include "port/port.h"

#include <semaphore.h>
#include <signal.h>
#include <time.h>

/* How long the reclaim thread lets callbacks gather before a batch. */
#define RECLAIM_DELAY_MS 10

#ifdef TDP_TSAN
char tdp_port_rcu_tsan_token;
#endif

#ifndef NDEBUG
__thread int tdp_port_rcu_registered;
#else
static __thread int tdp_port_rcu_registered;
#endif

/* Queued callbacks no batch has taken yet, newest first.  Atomic. */
static struct tdp_rcu_head *pending;

/* Held by a batch from taking the list until its last callback returns. */
static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;

/* Posted by each push onto an empty list; the reclaim thread waits on it.
 * Initialized before main() so that any push may post. */
static sem_t reclaim_wake;

/* The reclaim thread is running: set once, under start_lock. */
static bool reclaim_started;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void rcu_port_init(void)
{
	sem_init(&reclaim_wake, 0, 0);
}

void tdp_call_rcu(struct tdp_rcu_head *h, void (*func)(struct rcu_head *))
{
	struct tdp_rcu_head *first =
		__atomic_load_n(&pending, __ATOMIC_RELAXED);

#ifdef TDP_TSAN
	/* What the caller did to the object happens before the callback. */
	__tsan_release(&tdp_port_rcu_tsan_token);
#endif
	h->func = func;
	do {
		h->next = first;
	} while (!__atomic_compare_exchange_n(
		&pending, &first, h, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
	/* Non-empty before: its first push already woke the thread. */
	if (!first)
		sem_post(&reclaim_wake);
}

/*
 * Take the list, wait for a grace period and run the callbacks oldest
 * first.  batch_lock held, outside any read-side section.
 */
static void run_batch_locked(void)
{
	struct tdp_rcu_head *h, *oldest = NULL;

	/* Acquire: every push onto the list, fields included. */
	h = __atomic_exchange_n(&pending, NULL, __ATOMIC_ACQUIRE);
	if (!h)
		return;
	while (h) {
		struct tdp_rcu_head *next = h->next;

		h->next = oldest;
		oldest = h;
		h = next;
	}
	urcu_memb_synchronize_rcu();
	while (oldest) {
		h = oldest;
		oldest = h->next; /* the callback frees h */
		h->func(&h->head);
	}
}

static void *reclaim_thread(void *arg)
{
	const struct timespec delay = {
		.tv_nsec = RECLAIM_DELAY_MS * 1000000L,
	};

	(void)arg;
	for (;;) {
		if (sem_wait(&reclaim_wake))
			continue; /* EINTR */
		/* Each push that found the list empty posted; after the
		 * delay, one batch covers all of them. */
		while (!sem_trywait(&reclaim_wake))
			;
		nanosleep(&delay, NULL);
		pthread_mutex_lock(&batch_lock);
		run_batch_locked();
		pthread_mutex_unlock(&batch_lock);
	}
	return NULL;
}

/* Start the reclaim thread unless it runs.  On failure, warn and leave it
 * to a later registration; until then only barriers run callbacks. */
static void reclaim_start(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	int ret;

	if (__atomic_load_n(&reclaim_started, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&start_lock);
	if (!reclaim_started) {
		/* The thread inherits a mask that blocks every signal:
		 * signals sent to the process go to the caller's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&thread, &attr, reclaim_thread, NULL);
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret) {
			tdp_log_warn("cannot start the RCU reclaim thread "
				     "(error %d): only tdp_rcu_barrier() frees "
				     "tables",
				     ret);
		} else {
			/* Pushes made before now have posted already. */
			__atomic_store_n(&reclaim_started, true,
					 __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&start_lock);
}

void tdp_rcu_thread_register(void)
{
	if (tdp_port_rcu_registered++ == 0) {
		urcu_memb_register_thread();
		reclaim_start();
	}
}

void tdp_rcu_thread_unregister(void)
{
	TDP_ASSERT(tdp_port_rcu_registered > 0);
	if (--tdp_port_rcu_registered == 0)
		urcu_memb_unregister_thread();
}

void tdp_rcu_barrier(void)
{
	/* The grace period would wait for the caller's own section. */
	TDP_ASSERT(!urcu_memb_read_ongoing());
	pthread_mutex_lock(&batch_lock);
	run_batch_locked();
	pthread_mutex_unlock(&batch_lock);
#ifdef TDP_TSAN
	/* Everything the callbacks did happens before our return. */
	__tsan_acquire(&tdp_port_rcu_tsan_token);
#endif
}
