/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator as one object: simulated host memory, the simulated TDX
 * module plugged into libtdp as its private backend, the host (VMM) that
 * embeds libtdp, simulated vCPUs and a simulated guest.  Each part lives
 * in its own file:
 *
 *   host_mem.c    host physical memory, TDX-usable ranges, page tags
 *   tdx_module.c  Secure EPT, PAMT, epochs, SEAMCALLs and ACCEPT
 *   backend.c     struct tdp_private_backend on top of the module
 *   host.c        the VMM: memory attributes, backing, fault handling,
 *                 MapGPA, host events, TLB shootdown callbacks
 *   vcpu.c        vCPUs: guest mode, TLB, hardware walks, kicks
 *   guest.c       the guest: page states, ACCEPT, conversions, accesses
 *   scenario.c    lifetime, threads, quiesce checks, summary and JSON
 *
 * Lock order (outer first): guest region lock, guest GFN stripe lock,
 * host backing lock, mmu_lock (inside libtdp), vCPU state lock, vCPU TLB
 * lock.  A vCPU in guest mode never blocks on anything but a TLB lock.
 */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <tdp/tdp.h>

#include "backend.h"
#include "guest.h"
#include "host.h"
#include "host_mem.h"
#include "report.h"
#include "rng.h"
#include "stats.h"
#include "tdx_module.h"
#include "vcpu.h"

/* The shared bit of a 4-level TD: GPA bit 47, GFN bit 35. */
#define SIM_SHARED_BIT ((tdp_gfn_t)1 << 35)
#define SIM_ROOT_LEVEL 4
/* Guest memory is handled in 2 MiB regions. */
#define SIM_REGION_PAGES ((uint64_t)512)
#define SIM_MAX_VCPUS 64

struct sim_config {
	unsigned int nr_vcpus;  /* 1..SIM_MAX_VCPUS */
	uint64_t guest_bytes;   /* guest memory, a multiple of 2 MiB */
	double private_pct;     /* share of guest memory private at start */
	double convert_pct;     /* share of guest operations that convert */
	double event_rate;      /* host events per second */
	double busy_pct;        /* injected OPERAND_BUSY per SEAMCALL */
	double fail_pct;        /* injected failures of SEPT.ADD/PAGE.AUG */
	bool huge;              /* 2 MiB mappings of both aliases */
	double duration;        /* seconds */
	uint64_t seed;
	double check_interval;  /* seconds between quiesce checks; 0: none */
	bool progress;          /* progress line on stderr */
	unsigned int print_limit; /* violations printed in full */

	/*
	 * Deliberately broken parts, for the tests that prove the
	 * simulator catches them.  @wrap_backend and @wrap_host_ops may
	 * replace the callbacks the engine sees (keeping a copy of the
	 * originals to forward to); both are called once at creation.
	 */
	void (*wrap_backend)(struct tdp_private_backend *be, void *arg);
	void (*wrap_host_ops)(struct tdp_host_ops *ops, void *arg);
	void *wrap_arg;
	/* The host backs private memory from non-TDX memory. */
	bool break_private_outside_tdx;
};

/* The defaults of the tdpsim command. */
void sim_config_default(struct sim_config *cfg);

struct sim {
	struct sim_config cfg;
	uint64_t nr_gfns;
	uint64_t nr_regions;
	struct sim_stats stats;
	struct sim_report report;
	struct host_mem mem;
	struct tdx_module *module;
	struct sim_backend backend;
	/* The callbacks the engine was created with (maybe wrapped). */
	struct tdp_private_backend engine_backend;
	struct tdp_host_ops engine_host_ops;
	struct tdp_mmu *mmu;
	struct sim_host host;
	struct sim_guest guest;
	struct sim_vcpus vcpus;

	/* Generators of the creating thread and of the host-event thread. */
	struct sim_rng main_rng;
	struct sim_rng event_rng;

	/* Run control: stop and pause are atomics. */
	bool stop;
	bool pause;
	pthread_mutex_t run_lock; /* protects paused, running; run_cond */
	pthread_cond_t run_cond;
	unsigned int paused;      /* workers waiting at a pause point */
	unsigned int running;     /* worker threads not yet finished */
	pthread_t event_thread;
	bool event_thread_started;
	double start_time;        /* owner thread only, as below */
	double elapsed;
	uint64_t quiesce_runs;
	bool finished;            /* sim_finish() ran */
	bool engine_dead;         /* the MMU went dead (reported) */
	/* Engine statistics after teardown, for the summary. */
	struct tdp_stats engine_stats;
};

/*
 * sim_create() - build everything (host memory, module, engine, host,
 * guest, vCPU contexts) without starting threads.  The calling thread is
 * registered with libtdp until sim_destroy().  Returns 0 or a negative
 * errno; on failure nothing is left allocated.
 */
int sim_create(const struct sim_config *cfg, struct sim **out);

/*
 * sim_run() - run the scenario: vCPU threads and a host-event thread for
 * cfg.duration seconds with quiesce checks, then sim_finish().  Returns
 * the number of violations.
 */
uint64_t sim_run(struct sim *s);

/*
 * sim_finish() - TD teardown and the final checks: vCPU contexts are
 * destroyed, the engine tears the MMU down (every private leaf and table
 * removed through the module), backing is released, the module reclaims
 * its control pages and host memory must be free.  Idempotent.
 */
void sim_finish(struct sim *s);

/* Free everything (calls sim_finish() if needed). */
void sim_destroy(struct sim *s);

/* Full consistency check with every thread quiesced; returns violations. */
uint64_t sim_check_quiesced(struct sim *s);

/* Summary table on @f, and the same numbers as JSON to @path. */
void sim_print_summary(struct sim *s, FILE *f);
int sim_write_json(struct sim *s, const char *path);

/* Stop the run early (a fatal condition, such as a dead MMU). */
void sim_request_stop(struct sim *s);
bool sim_stopping(const struct sim *s);

double sim_now(void);

#endif /* SIM_SIM_H */
