/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run state: stop flag, pause points, running workers (see run_state.h). */
#include "run_state.h"

#include <time.h>

void sim_run_state_init(struct sim_run_state *rs)
{
	*rs = (struct sim_run_state){ 0 };
	pthread_mutex_init(&rs->lock, NULL);
	pthread_cond_init(&rs->cond, NULL);
}

void sim_run_state_destroy(struct sim_run_state *rs)
{
	pthread_mutex_destroy(&rs->lock);
	pthread_cond_destroy(&rs->cond);
}

void sim_stop_request(struct sim_run_state *rs)
{
	__atomic_store_n(&rs->stop, true, __ATOMIC_RELEASE);
}

bool sim_stop_requested(const struct sim_run_state *rs)
{
	return __atomic_load_n(&rs->stop, __ATOMIC_ACQUIRE);
}

void sim_workers_set_running(struct sim_run_state *rs, unsigned int n)
{
	pthread_mutex_lock(&rs->lock);
	rs->running = n;
	pthread_mutex_unlock(&rs->lock);
}

void sim_worker_done(struct sim_run_state *rs)
{
	pthread_mutex_lock(&rs->lock);
	rs->running--;
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

bool sim_pause_requested(const struct sim_run_state *rs)
{
	return __atomic_load_n(&rs->pause, __ATOMIC_ACQUIRE);
}

void sim_pause_point(struct sim_run_state *rs)
{
	if (!sim_pause_requested(rs))
		return;
	pthread_mutex_lock(&rs->lock);
	rs->paused++;
	pthread_cond_broadcast(&rs->cond);
	while (sim_pause_requested(rs) && !sim_stop_requested(rs))
		pthread_cond_wait(&rs->cond, &rs->lock);
	rs->paused--;
	pthread_mutex_unlock(&rs->lock);
}

void sim_pause_workers(struct sim_run_state *rs)
{
	pthread_mutex_lock(&rs->lock);
	__atomic_store_n(&rs->pause, true, __ATOMIC_RELEASE);
	while (rs->paused < rs->running)
		pthread_cond_wait(&rs->cond, &rs->lock);
	pthread_mutex_unlock(&rs->lock);
}

void sim_resume_workers(struct sim_run_state *rs)
{
	pthread_mutex_lock(&rs->lock);
	__atomic_store_n(&rs->pause, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

bool sim_wait_workers(struct sim_run_state *rs, double seconds)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(seconds * 1e9);
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&rs->lock);
	if (rs->running)
		pthread_cond_timedwait(&rs->cond, &rs->lock, &ts);
	done = rs->running == 0;
	pthread_mutex_unlock(&rs->lock);
	return done;
}

double sim_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
