/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The user-space port's deferred frees (libtdp/port/user_rcu.c): a
 * callback never runs while a read-side section that began before it was
 * queued is still open, neither in the reclaim thread nor in
 * tdp_rcu_barrier(); the barrier runs every callback queued before it,
 * once, in queue order; the reclaim thread runs callbacks without a
 * barrier; tdp_call_rcu() works inside a read-side section.
 *
 * White box: the port layer's RCU names, through internal.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "ts_cmocka.h"

#include "internal.h"

#define NR_OBJECTS 1000

struct object {
	struct tdp_rcu_head rcu;
	int runs;      /* atomic: times the callback ran */
	long position; /* order in which it ran */
};

/* Callbacks run so far; each takes the next position. */
static long nr_run;

static void object_cb(struct rcu_head *head)
{
	struct object *o;

	tdp_rcu_callback_begin();
	o = tdp_rcu_head_container(head, struct object, rcu);
	o->position = __atomic_fetch_add(&nr_run, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&o->runs, 1, __ATOMIC_RELEASE);
	tdp_rcu_callback_end();
}

static int runs(struct object *o)
{
	return __atomic_load_n(&o->runs, __ATOMIC_ACQUIRE);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_barrier_runs_all_in_order(void **state)
{
	struct object *o = calloc(NR_OBJECTS, sizeof(*o));
	long first;

	(void)state;
	assert_non_null(o);
	tdp_rcu_barrier();
	first = __atomic_load_n(&nr_run, __ATOMIC_RELAXED);
	for (int i = 0; i < NR_OBJECTS; i++)
		tdp_call_rcu(&o[i].rcu, object_cb);
	/* Some may run in the reclaim thread meanwhile, batch after batch,
	 * each oldest first: the order is the queue order either way. */
	tdp_rcu_barrier();
	for (int i = 0; i < NR_OBJECTS; i++) {
		assert_int_equal(runs(&o[i]), 1);
		assert_int_equal(o[i].position, first + i);
	}
	tdp_rcu_barrier();
	for (int i = 0; i < NR_OBJECTS; i++)
		assert_int_equal(runs(&o[i]), 1);
	free(o);
}

static void test_reclaim_thread_runs_callbacks(void **state)
{
	struct object o = { .runs = 0 };

	(void)state;
	tdp_call_rcu(&o.rcu, object_cb);
	/* No barrier: the reclaim thread runs it some milliseconds later. */
	for (int i = 0; i < 5000 && !runs(&o); i++)
		sleep_ms(1);
	assert_int_equal(runs(&o), 1);
}

/* ---- a reader holds the grace period ------------------------------------- */

struct reader {
	pthread_t thread;
	int inside; /* atomic: the section is open */
	int leave;  /* atomic: told to close it */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	tdp_thread_register();
	tdp_rcu_read_lock();
	__atomic_store_n(&r->inside, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->leave, __ATOMIC_ACQUIRE))
		sleep_ms(1);
	tdp_rcu_read_unlock();
	tdp_thread_unregister();
	return NULL;
}

static void *barrier_main(void *arg)
{
	(void)arg;
	tdp_rcu_barrier();
	return NULL;
}

static void test_reader_holds_callbacks(void **state)
{
	struct reader r = { .inside = 0 };
	struct object o = { .runs = 0 };
	pthread_t barrier;

	(void)state;
	assert_int_equal(pthread_create(&r.thread, NULL, reader_main, &r), 0);
	while (!__atomic_load_n(&r.inside, __ATOMIC_ACQUIRE))
		sleep_ms(1);
	tdp_call_rcu(&o.rcu, object_cb);
	assert_int_equal(pthread_create(&barrier, NULL, barrier_main, NULL), 0);
	/* Long past the reclaim thread's delay: both it and the barrier
	 * would have run the callback by now if they did not wait. */
	sleep_ms(100);
	assert_int_equal(runs(&o), 0);
	__atomic_store_n(&r.leave, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(barrier, NULL), 0);
	assert_int_equal(runs(&o), 1);
	assert_int_equal(pthread_join(r.thread, NULL), 0);
}

static void test_call_rcu_inside_section(void **state)
{
	struct object o = { .runs = 0 };

	(void)state;
	tdp_rcu_read_lock();
	tdp_call_rcu(&o.rcu, object_cb);
	tdp_rcu_read_unlock();
	tdp_rcu_barrier();
	assert_int_equal(runs(&o), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_barrier_runs_all_in_order),
		cmocka_unit_test(test_reclaim_thread_runs_callbacks),
		cmocka_unit_test(test_reader_holds_callbacks),
		cmocka_unit_test(test_call_rcu_inside_section),
	};

	return TS_RUN_GROUP("tests", tests);
}
