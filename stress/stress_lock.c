/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stress of the port's mmu_lock on its own (white box: libtdp/port).
 *
 *   exclusion  readers with short and long sections, writers that hold the
 *              lock across many steps and yield when needbreak says so, as
 *              the engine's walks do.  Writers rewrite a payload with plain
 *              stores and readers check it with plain loads, so a hole in
 *              mutual exclusion or a missing happens-before is both a
 *              failed check and a ThreadSanitizer report.
 *   fairness   overlapping readers that keep the lock read-held without a
 *              gap, against one writer (no writer starvation); then
 *              back-to-back writers against one reader (no reader
 *              starvation).  Each side must make progress.
 *   two_mmus   a reader of lock A stays in its section until a writer of
 *              lock B has taken and released B many times: writers wait
 *              only for their own lock's readers.  A deadline catches a
 *              writer of B that waits for A's reader (a hang, not a timing
 *              target); meanwhile a writer of A must wait for the reader.
 *
 * Usage: stress_lock --test NAME [-t seconds] [-s seed]
 * TDP_TEST_QUICK=1 shortens the default duration.  The last line is
 *   ops=N checks=N passed=N failures=N
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tdp/tdp.h>

#include "port/port.h"
#include "ts_env.h"

#define PAYLOAD_WORDS 64
#define MAX_THREADS 16

static uint64_t nr_ops, nr_checks, nr_failures; /* atomic */
static uint64_t seed;
static double run_seconds;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		__atomic_add_fetch(&nr_checks, 1, __ATOMIC_RELAXED);      \
		if (!(cond) &&                                            \
		    __atomic_add_fetch(&nr_failures, 1, __ATOMIC_RELAXED) <= 10) { \
			fprintf(stderr, "FAILED [seed=%" PRIu64 "] %s:%d: ", \
				seed, __FILE__, __LINE__);                \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
		}                                                         \
	} while (0)

static double now_s(void)
{
	return (double)tdp_now_ns() / 1e9;
}

/* ---- the protected state ------------------------------------------------ */

struct guarded {
	tdp_mmu_lock_t lock;
	int readers_in;             /* atomic: threads inside a read section */
	int writers_in;             /* atomic: threads inside a write section */
	uint64_t payload[PAYLOAD_WORDS]; /* plain: written only under write */
};

static void guarded_init(struct guarded *g, bool force_contended)
{
	memset(g, 0, sizeof(*g));
	if (tdp_mmu_lock_init(&g->lock, force_contended)) {
		fprintf(stderr, "stress_lock: lock init failed\n");
		exit(2);
	}
}

static void read_section(struct guarded *g, unsigned int hold_us)
{
	uint64_t first;

	tdp_read_lock(&g->lock);
	__atomic_add_fetch(&g->readers_in, 1, __ATOMIC_RELAXED);
	CHECK(__atomic_load_n(&g->writers_in, __ATOMIC_RELAXED) == 0,
	      "reader inside while a writer is inside");
	CHECK(tdp_port_lock_held_read(&g->lock), "read lock not recorded");
	first = g->payload[0];
	for (int i = 1; i < PAYLOAD_WORDS; i++)
		CHECK(g->payload[i] == first,
		      "torn payload: word %d is %" PRIu64 ", word 0 %" PRIu64, i,
		      g->payload[i], first);
	if (hold_us)
		tdp_udelay(hold_us);
	CHECK(g->payload[PAYLOAD_WORDS - 1] == first,
	      "payload changed under the read lock");
	__atomic_sub_fetch(&g->readers_in, 1, __ATOMIC_RELAXED);
	tdp_read_unlock(&g->lock);
	__atomic_add_fetch(&nr_ops, 1, __ATOMIC_RELAXED);
}

/* Hold the lock for @steps payload rewrites, yielding like the engine. */
static void write_section(struct guarded *g, unsigned int steps)
{
	tdp_write_lock(&g->lock);
	for (unsigned int s = 0; s < steps; s++) {
		uint64_t gen;

		__atomic_add_fetch(&g->writers_in, 1, __ATOMIC_RELAXED);
		CHECK(__atomic_load_n(&g->readers_in, __ATOMIC_RELAXED) == 0,
		      "writer inside while a reader is inside");
		CHECK(__atomic_load_n(&g->writers_in, __ATOMIC_RELAXED) == 1,
		      "two writers inside");
		CHECK(tdp_port_lock_held_write(&g->lock),
		      "write lock not recorded");
		gen = g->payload[0] + 1;
		for (int i = 0; i < PAYLOAD_WORDS; i++)
			g->payload[i] = gen;
		__atomic_sub_fetch(&g->writers_in, 1, __ATOMIC_RELAXED);
		if (s + 1 < steps && tdp_mmu_lock_needbreak(&g->lock, false)) {
			tdp_write_unlock(&g->lock);
			tdp_cond_resched();
			tdp_write_lock(&g->lock);
		}
	}
	tdp_write_unlock(&g->lock);
	__atomic_add_fetch(&nr_ops, 1, __ATOMIC_RELAXED);
}

/* ---- exclusion ------------------------------------------------------------ */

struct worker {
	pthread_t thread;
	struct guarded *g;
	int id;
	bool writer;
	double until;
	uint64_t done; /* atomic: sections completed */
	int stop;      /* atomic: set by the controller (fairness) */
};

static void *exclusion_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t s = seed ^ ((uint64_t)w->id * 0x9e3779b97f4a7c15ULL);

	tdp_thread_register();
	while (now_s() < w->until) {
		uint64_t r = ts_rand(&s);

		if (w->writer)
			write_section(w->g, 1 + (unsigned int)(r % 200));
		else
			read_section(w->g, r % 64 == 0 ? (unsigned int)(r >> 8) % 500
						       : 0);
		w->done++;
	}
	tdp_thread_unregister();
	return NULL;
}

static void run_workers(struct worker *w, int n)
{
	for (int i = 0; i < n; i++)
		pthread_create(&w[i].thread, NULL, exclusion_worker, &w[i]);
	for (int i = 0; i < n; i++)
		pthread_join(w[i].thread, NULL);
}

static void test_exclusion(void)
{
	static struct guarded g;
	struct worker w[6];
	double until = now_s() + run_seconds;

	/* Once as built, once with every needbreak saying yes. */
	for (int pass = 0; pass < 2; pass++) {
		guarded_init(&g, pass == 1);
		for (int i = 0; i < 6; i++)
			w[i] = (struct worker){ .g = &g, .id = i,
						.writer = i >= 4,
						.until = now_s() + run_seconds / 2 };
		run_workers(w, 6);
		for (int i = 0; i < 6; i++)
			CHECK(w[i].done > 0, "thread %d made no progress", i);
		tdp_mmu_lock_destroy(&g.lock);
	}
	(void)until;
}

/* ---- fairness ------------------------------------------------------------- */

static void *hold_reader(void *arg)
{
	struct worker *w = arg;

	tdp_thread_register();
	/* Overlapping sections of 300 us: some reader is nearly always in. */
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		read_section(w->g, 300);
		__atomic_add_fetch(&w->done, 1, __ATOMIC_RELAXED);
	}
	tdp_thread_unregister();
	return NULL;
}

static void *hold_writer(void *arg)
{
	struct worker *w = arg;

	tdp_thread_register();
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		write_section(w->g, 50);
		__atomic_add_fetch(&w->done, 1, __ATOMIC_RELAXED);
	}
	tdp_thread_unregister();
	return NULL;
}

#define FAIR_MIN_SECTIONS 10
#define FAIR_CAP_SECONDS 30.0

static bool fairness_done(struct worker *w, int n)
{
	for (int i = 0; i < n; i++)
		if (__atomic_load_n(&w[i].done, __ATOMIC_RELAXED) <
		    FAIR_MIN_SECTIONS)
			return false;
	return true;
}

/*
 * Three threads of one kind against one of the other (@one_writer: three
 * readers and a writer; else three writers and a reader), for @seconds
 * and on until every thread finished FAIR_MIN_SECTIONS sections, or
 * FAIR_CAP_SECONDS passed: a thread short of them then is starved.
 * Progress, not speed, is checked (a sanitizer or a loaded machine may be
 * many times slower).
 */
static void fairness_round(bool one_writer, double seconds)
{
	static struct guarded g;
	struct worker w[4];
	double start = now_s();

	guarded_init(&g, false);
	for (int i = 0; i < 4; i++)
		w[i] = (struct worker){ .g = &g, .id = i,
					.writer = (i == 3) == one_writer };
	for (int i = 0; i < 4; i++)
		pthread_create(&w[i].thread, NULL,
			       w[i].writer ? hold_writer : hold_reader, &w[i]);
	while (now_s() < start + seconds ||
	       (now_s() < start + FAIR_CAP_SECONDS && !fairness_done(w, 4)))
		tdp_udelay(10000);
	for (int i = 0; i < 4; i++)
		__atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		pthread_join(w[i].thread, NULL);
	for (int i = 0; i < 4; i++)
		CHECK(w[i].done >= FAIR_MIN_SECTIONS, "%s %d starved (%s): %"
		      PRIu64 " sections in %.1f s",
		      w[i].writer ? "writer" : "reader", i,
		      one_writer ? "three readers, one writer"
				 : "three writers, one reader",
		      w[i].done, now_s() - start);
	tdp_mmu_lock_destroy(&g.lock);
}

/* Phase-fair: a writer waits for at most one batch of readers, and a
 * reader for at most one writer. */
static void test_fairness(void)
{
	fairness_round(true, run_seconds / 2);
	fairness_round(false, run_seconds / 2);
}

/* ---- two MMUs ------------------------------------------------------------- */

static struct guarded lock_a, lock_b;
static int b_rounds_done;  /* atomic: writer of B finished its rounds */
static int a_reader_in;    /* atomic: the reader of A is in its section */
static int a_writer_got;   /* atomic: the writer of A got the lock */

#define B_ROUNDS 1000

static void *a_reader(void *arg)
{
	double deadline = now_s() + 10.0;

	(void)arg;
	tdp_thread_register();
	tdp_read_lock(&lock_a.lock);
	__atomic_store_n(&a_reader_in, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&b_rounds_done, __ATOMIC_ACQUIRE) &&
	       now_s() < deadline)
		tdp_udelay(100);
	CHECK(__atomic_load_n(&b_rounds_done, __ATOMIC_ACQUIRE),
	      "writer of lock B waited for a reader of lock A");
	CHECK(!__atomic_load_n(&a_writer_got, __ATOMIC_ACQUIRE),
	      "writer of lock A got in past its reader");
	tdp_read_unlock(&lock_a.lock);
	tdp_thread_unregister();
	return NULL;
}

static void *a_writer(void *arg)
{
	(void)arg;
	tdp_thread_register();
	tdp_write_lock(&lock_a.lock);
	__atomic_store_n(&a_writer_got, 1, __ATOMIC_RELEASE);
	tdp_write_unlock(&lock_a.lock);
	tdp_thread_unregister();
	return NULL;
}

static void *b_writer(void *arg)
{
	(void)arg;
	tdp_thread_register();
	for (int i = 0; i < B_ROUNDS; i++) {
		write_section(&lock_b, 1 + i % 8);
		read_section(&lock_b, 0);
	}
	__atomic_store_n(&b_rounds_done, 1, __ATOMIC_RELEASE);
	tdp_thread_unregister();
	return NULL;
}

static void test_two_mmus(void)
{
	pthread_t ra, wa, wb;
	double until = now_s() + run_seconds;

	do {
		guarded_init(&lock_a, false);
		guarded_init(&lock_b, false);
		b_rounds_done = a_reader_in = a_writer_got = 0;
		pthread_create(&ra, NULL, a_reader, NULL);
		while (!__atomic_load_n(&a_reader_in, __ATOMIC_ACQUIRE))
			tdp_udelay(50);
		pthread_create(&wa, NULL, a_writer, NULL);
		pthread_create(&wb, NULL, b_writer, NULL);
		pthread_join(wb, NULL);
		pthread_join(ra, NULL);
		pthread_join(wa, NULL);
		CHECK(a_writer_got, "writer of lock A never got the lock");
		tdp_mmu_lock_destroy(&lock_a.lock);
		tdp_mmu_lock_destroy(&lock_b.lock);
	} while (now_s() < until);
}

/* ---- main ----------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "exclusion", test_exclusion },
	{ "fairness", test_fairness },
	{ "two_mmus", test_two_mmus },
};

int main(int argc, char **argv)
{
	const char *name = NULL;
	int opt;

	seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
	run_seconds = getenv("TDP_TEST_QUICK") ? 2.0 : 10.0;
	while ((opt = getopt(argc, argv, "T:t:s:")) != -1) {
		switch (opt) {
		case 'T': name = optarg; break;
		case 't': run_seconds = atof(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: stress_lock -T exclusion|fairness|"
				"two_mmus [-t seconds] [-s seed]\n");
			return 2;
		}
	}
	seed |= 1;
	printf("stress_lock: test %s seed %" PRIu64 "\n", name ? name : "?", seed);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (name && !strcmp(name, tests[i].name)) {
			tests[i].fn();
			printf("ops=%" PRIu64 " checks=%" PRIu64 " passed=%" PRIu64
			       " failures=%" PRIu64 "\n", nr_ops, nr_checks,
			       nr_checks - nr_failures, nr_failures);
			return nr_failures ? 1 : 0;
		}
	}
	fprintf(stderr, "stress_lock: unknown test '%s'\n", name ? name : "");
	return 2;
}
