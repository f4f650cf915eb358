/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The run state of a simulation: the stop flag every thread polls, the
 * pause that holds the worker threads at safe points for a stop-the-world
 * check, and the count of worker threads still running.  It depends on
 * nothing else in the simulator, so any part can stop the run (a dead MMU,
 * a livelock) without reaching back into the code that started it.
 */
#ifndef SIM_RUN_STATE_H
#define SIM_RUN_STATE_H

#include <pthread.h>
#include <stdbool.h>

struct sim_run_state {
	bool stop;             /* atomic: the run is over, threads wind down */
	bool pause;            /* atomic: workers wait at their pause points */
	pthread_mutex_t lock;  /* protects paused and running; cond */
	pthread_cond_t cond;
	unsigned int paused;   /* workers waiting at a pause point */
	unsigned int running;  /* worker threads not yet finished */
};

void sim_run_state_init(struct sim_run_state *rs);
void sim_run_state_destroy(struct sim_run_state *rs);

/* Stop the run (its end, or a fatal condition such as a dead MMU). */
void sim_stop_request(struct sim_run_state *rs);
bool sim_stop_requested(const struct sim_run_state *rs);

/* The number of worker threads sim_wait_workers() waits for. */
void sim_workers_set_running(struct sim_run_state *rs, unsigned int n);
/* A worker thread finished. */
void sim_worker_done(struct sim_run_state *rs);

/* A pause was requested: workers should come to a pause point. */
bool sim_pause_requested(const struct sim_run_state *rs);
/*
 * A worker's safe point (no guest mode, no lock held): while a pause is
 * requested and the run goes on, wait here.
 */
void sim_pause_point(struct sim_run_state *rs);
/* Request a pause and wait until every running worker is paused. */
void sim_pause_workers(struct sim_run_state *rs);
/* End the pause. */
void sim_resume_workers(struct sim_run_state *rs);
/*
 * Wait up to @seconds, or until every worker thread has finished.
 * Returns true in the latter case.
 */
bool sim_wait_workers(struct sim_run_state *rs, double seconds);

/* Seconds on the monotonic clock. */
double sim_now(void);

#endif /* SIM_RUN_STATE_H */
