/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A C interface to Google Benchmark, so that benchmarks are written in C
 * and never include a C++ header.  shim.cc is the only C++ file.
 *
 * Notes on Debian's libbenchmark 1.7:
 *  - it is built without NDEBUG and prints "Library was built as DEBUG";
 *    its internal checks are live: tdpb_pause()/tdpb_resume() are legal
 *    only between tdpb_keep_running*() calls that returned true;
 *  - each tdpb_keep_running() is a real call (~1.5 ns); use
 *    tdpb_keep_running_batch() for nanosecond-scale bodies;
 *  - with threads, every thread runs the body with its own state; all
 *    threads meet at a barrier before the first and after the last
 *    iteration, so thread 0 sets up shared state before its loop.
 */
#ifndef TDP_BENCH_SHIM_H
#define TDP_BENCH_SHIM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdpb_state tdpb_state;     /* benchmark::State */
typedef struct tdpb_bench tdpb_bench;     /* benchmark::internal::Benchmark */
typedef void (*tdpb_fn)(tdpb_state *st, void *arg);

/*
 * --verify mode (call before registering): every benchmark runs exactly
 * one iteration, so that a CI run checks each one's results quickly;
 * tdpb_min_time() and tdpb_iterations() then change nothing.
 */
void tdpb_set_verify(bool on);
bool tdpb_verifying(void);

/* Register @fn under @name; @arg is passed to every run. */
tdpb_bench *tdpb_register(const char *name, tdpb_fn fn, void *arg);

/* Registration modifiers; each returns @b so calls chain. */
tdpb_bench *tdpb_arg(tdpb_bench *b, int64_t arg);
tdpb_bench *tdpb_range(tdpb_bench *b, int64_t lo, int64_t hi);
tdpb_bench *tdpb_arg_name(tdpb_bench *b, const char *name);
tdpb_bench *tdpb_threads(tdpb_bench *b, int threads);
tdpb_bench *tdpb_thread_range(tdpb_bench *b, int lo, int hi);
tdpb_bench *tdpb_real_time(tdpb_bench *b);
tdpb_bench *tdpb_min_time(tdpb_bench *b, double seconds);
tdpb_bench *tdpb_iterations(tdpb_bench *b, int64_t n);
tdpb_bench *tdpb_unit_ns(tdpb_bench *b);
/*
 * The benchmark times itself: each iteration reports its own duration
 * with tdpb_set_iteration_time(), and only that time counts (the name
 * gets a "/manual_time" suffix).
 */
tdpb_bench *tdpb_manual_time(tdpb_bench *b);

/* The keep-running loop. */
bool tdpb_keep_running(tdpb_state *st);
bool tdpb_keep_running_batch(tdpb_state *st, int64_t n);
void tdpb_pause(tdpb_state *st);
void tdpb_resume(tdpb_state *st);
/* With tdpb_manual_time(): the time of the current iteration. */
void tdpb_set_iteration_time(tdpb_state *st, double seconds);

int64_t tdpb_range_arg(tdpb_state *st, int index);
int tdpb_thread_index(tdpb_state *st);
int tdpb_thread_count(tdpb_state *st);
int64_t tdpb_iterations_done(tdpb_state *st);

/* Per-iteration accounting and user counters. */
void tdpb_set_items_processed(tdpb_state *st, int64_t items);
void tdpb_set_bytes_processed(tdpb_state *st, int64_t bytes);
/* A plain value (averaged over threads when @avg_threads). */
void tdpb_counter(tdpb_state *st, const char *name, double value,
		  bool avg_threads);
/* A value divided by the run time (items per second of a sub-metric). */
void tdpb_counter_rate(tdpb_state *st, const char *name, double value);
/*
 * Fail the run: no time is reported for it, only @msg, and tdpb_main()
 * returns non-zero.  tdpb_keep_running*() returns false from then on.
 */
void tdpb_skip_with_error(tdpb_state *st, const char *msg);
void tdpb_set_label(tdpb_state *st, const char *label);

/* Keep @p's value alive for the optimizer, as benchmark::DoNotOptimize. */
#define tdpb_do_not_optimize(p) __asm__ volatile("" : : "g"(p) : "memory")

/*
 * Run everything registered; parses and removes --benchmark_* flags.
 * Returns 0, or 1 if an argument was not recognized or any run failed
 * through tdpb_skip_with_error().
 */
int tdpb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TDP_BENCH_SHIM_H */
