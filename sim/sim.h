/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator as one object: simulated host memory, the simulated TDX
 * module plugged into libtdp as its private backend, the host (VMM) that
 * embeds libtdp, simulated vCPUs and a simulated guest, created, torn
 * down and destroyed by sim.c.  Each part lives in its own file:
 *
 *   host_mem.c    host physical memory, TDX-usable ranges, page tags
 *   tdx_*.c       the TDX module: statuses, S-EPT, the TD, SEAMCALLs,
 *                 vCPU entry and ACCEPT (see tdx_module.h)
 *   backend.c     struct tdp_private_backend on top of the module
 *   host.c        the VMM: memory attributes, backing, fault handling,
 *                 MapGPA, host events, TLB shootdown callbacks
 *   vcpu.c        vCPUs: guest mode, TLB, hardware walks, kicks
 *   guest.c       the guest: page states, its own page table, ACCEPT,
 *                 conversions, accesses, stray reads
 *   mmio.c        the MMIO window: MMIO SPTEs, their generation, layout
 *   migrate.c     live migration of shared memory: dirty-log rounds
 *   layout.h      guest memory as 2 MiB regions at any GFN, the shared bit
 *   trace.c       streaming reader of page-touch traces
 *   trace_scan.c  a trace scanned and placed in guest memory, the alias rule
 *   trace_replay.c  a scanned trace as the guest's workload, its final check
 *   run_state.c   the stop flag, pause points, running workers
 *   scenario.c    the workload on threads, or step by step
 *   consistency.c the checks with every thread stopped: quiesce points,
 *                 after TD teardown
 *   summary.c     summary table and JSON
 *
 * Lock order (outer first): guest region lock, guest GFN stripe lock,
 * MMIO window lock, host backing lock, mmu_lock (inside libtdp), vCPU
 * state lock, vCPU TLB lock.  Several TDs (sim_create_tds()) share host
 * memory (its allocator lock is innermost) and the module's PAMT (its
 * try-locks never wait); nothing else is shared between them.  A vCPU in guest mode never blocks on anything but a TLB lock.
 * The replay queues (trace_replay.c) take no lock.
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
#include "layout.h"
#include "migrate.h"
#include "mmio.h"
#include "racer.h"
#include "report.h"
#include "rng.h"
#include "run_state.h"
#include "stats.h"
#include "tdx_module.h"
#include "tdx_seamcall.h"
#include "tdx_vp.h"
#include "trace_replay.h"
#include "vcpu.h"
#include "walker.h"

#define SIM_MAX_VCPUS 64
#define SIM_MAX_TDS 8
/* Host memory hot-added during the run (after the module's init). */
#define SIM_HOTPLUG_PAGES (4 * HOST_CHUNK_PAGES)

struct sim_config {
	unsigned int nr_vcpus;  /* 1..SIM_MAX_VCPUS, per TD */
	/*
	 * TDs on the one simulated module (1..SIM_MAX_TDS), each a struct
	 * sim of this configuration with its own engine MMU, host, guest
	 * and vCPUs, sharing host memory and the module's PAMT
	 * (sim_create_tds()).  Host memory is sized for all of them.
	 */
	unsigned int nr_tds;
	uint64_t guest_bytes;   /* guest memory, a multiple of 2 MiB */
	double private_pct;     /* share of guest memory private at start */
	double convert_pct;     /* share of guest operations that convert */
	/* Share of a huge region's conversions and lazy accepts done on a
	 * run of 4 KiB pages inside it rather than on the whole region. */
	double split_pct;
	double event_rate;      /* host events per second */
	double busy_pct;        /* injected OPERAND_BUSY per SEAMCALL */
	double fail_pct;        /* injected failures of SEPT.ADD/PAGE.AUG */
	bool huge;              /* 2 MiB mappings of both aliases */
	double duration;        /* seconds */
	uint64_t seed;
	double check_interval;  /* seconds between quiesce checks; 0: none */
	bool progress;          /* progress line on stderr */
	/*
	 * Pages of the TD's initial image (TD build, host.h): the first
	 * image_pages pages of guest memory, PAGE.ADDed and measured before
	 * MR.FINALIZE.  0: none (always so for a trace replay).
	 */
	unsigned int image_pages;
	/* Pages of the MMIO window above guest memory (mmio.h); 0: none
	 * (always so for a trace replay). */
	unsigned int mmio_pages;
	/* Live migration of shared memory alongside the workload
	 * (migrate.h); not with a trace. */
	bool migrate;
	/*
	 * Host timing in the fault handler (host.c): one vCPU fault in
	 * SIM_FAULT_DELAY_ONE_IN waits a random 0..fault_delay_us
	 * microseconds between resolving its backing and tdp_map(); 0: never.
	 * race_pct: share of shared vCPU faults that the host races with
	 * an event of its own at that point (forced interleavings); 0:
	 * none.  Neither applies to a trace replay or with event_rate 0.
	 */
	unsigned int fault_delay_us;
	double race_pct;
	/*
	 * The lock-free check (lockcheck.h): microseconds between two
	 * takes of mmu_lock for write to check every vCPU's translations
	 * against the tree; 0: off.  Not in a trace replay.
	 */
	unsigned int lock_check_us;
	/*
	 * Trace replay (trace_replay.h): the guest's memory is the regions the
	 * trace touches and its workload is the trace, split across the
	 * vCPUs; the run ends when the trace does.  guest_bytes,
	 * convert_pct, event_rate and duration are not used (conversions
	 * and host events are off).  Not owned; it must outlive the sim.
	 */
	const struct sim_trace *trace;
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
	/* The host backs private memory from hot-added memory, bypassing
	 * its onlining hook. */
	bool break_private_hotplug;
	/* The host breaks one step of the TD build (enum sim_build_break). */
	int break_build;
	/* The host changes the MMIO window's layout without bumping the
	 * MMIO generation. */
	bool break_mmio_no_bump;
	/*
	 * The guest does not keep a converting page out of its page table:
	 * to shared, the private mapping stays during MapGPA; to private,
	 * the page is mapped private before its ACCEPT.
	 */
	bool break_conversion_window;
	/* Called by the converting vCPU inside the conversion window, after
	 * MapGPA and before the new mapping (tests make stray reads). */
	void (*window_hook)(struct sim *s, tdp_gfn_t gfn, uint64_t n,
			    bool to_private, void *arg);
	/* The guest puts the level where ACCEPT's page-size code goes. */
	bool break_accept_operand;
	/* The simulated CPU does not set dirty bits in the direct tree. */
	bool break_no_dirty_bit;
};

/*
 * sim_create_tds() - the first TD (sim_create()) and cfg.nr_tds - 1 more
 * on the same module and host memory, with seeds cfg.seed + i.  Stores
 * them in @out[0..nr_tds).  Destroy with sim_destroy_tds().
 */
int sim_create_tds(const struct sim_config *cfg, struct sim **out);
/* sim_finish() of each TD in order, then sim_destroy() in reverse. */
void sim_destroy_tds(struct sim **tds, unsigned int n);

/* The defaults of the tdpsim command. */
void sim_config_default(struct sim_config *cfg);

struct sim {
	struct sim_config cfg;
	/* Guest memory; nr_gfns and nr_regions are its page and region
	 * counts (dense numbers, see layout.h).  Immutable. */
	struct sim_layout layout;
	uint64_t nr_gfns;
	uint64_t nr_regions;
	struct sim_counters stats;
	struct sim_report report;
	/*
	 * This TD's number on the module and its owner tag (number + 1) in
	 * the PAMT and on host pages.  Immutable.
	 */
	unsigned int td;
	uint32_t owner;
	/* Host memory: mem_own for the first TD, the first TD's for the
	 * others.  The pointer is immutable. */
	struct host_mem *mem;
	struct host_mem mem_own;
	struct tdx_module *module;
	struct sim_backend backend;
	/* The callbacks the engine was created with (maybe wrapped). */
	struct tdp_private_backend engine_backend;
	struct tdp_host_ops engine_host_ops;
	struct tdp_mmu *mmu;
	struct sim_host host;
	struct sim_guest guest;
	struct sim_mmio mmio;
	struct sim_migration migration;
	struct sim_vcpus vcpus;

	/* Generators of the creating thread and of the host-event thread. */
	struct sim_rng main_rng;
	struct sim_rng event_rng;

	/* Stop flag, pauses and running workers (run_state.h). */
	struct sim_run_state run;
	pthread_t event_thread;
	bool event_thread_started;
	/*
	 * The host's pre-fault thread on the shared-hot regions
	 * (scenario.c): its generator, used by that thread only.
	 */
	struct sim_rng hot_rng;
	pthread_t hot_thread;
	bool hot_thread_started;
	struct sim_walker walker; /* the parked walker (walker.h) */
	struct sim_racer racer; /* the racing CPU (racer.h) */
	/* The lock-free check's thread (lockcheck.h); run thread only. */
	pthread_t lockcheck_thread;
	bool lockcheck_started;
	double start_time;        /* owner thread only, as below */
	double elapsed;
	uint64_t quiesce_runs;
	bool finished;            /* sim_finish() ran */
	bool engine_dead;         /* the MMU went dead (reported) */
	/* Engine statistics after teardown, for the summary. */
	struct tdp_stats engine_stats;
	/*
	 * The page tables at the end of the workload, before teardown (the
	 * final quiesce point): engine statistics and S-EPT pages.
	 */
	struct tdp_stats tables_at_end;
	int64_t sept_pages_at_end;
	bool have_tables_at_end;
	/* Trace replay state; NULL without cfg.trace. */
	struct sim_replay *replay;
};

/*
 * sim_create() - build everything (host memory, module, engine, host,
 * guest, vCPU contexts) without starting threads.  The calling thread is
 * registered with libtdp until sim_destroy().  Returns 0 or a negative
 * errno; on failure nothing is left allocated.
 */
int sim_create(const struct sim_config *cfg, struct sim **out);

/*
 * sim_finish() - TD teardown and the final checks: vCPU contexts are
 * destroyed, the engine tears the MMU down (every private leaf and table
 * removed through the module), backing is released, the module reclaims
 * its control pages and host memory must be free.  Idempotent.
 */
void sim_finish(struct sim *s);

/* Free everything (calls sim_finish() if needed). */
void sim_destroy(struct sim *s);

#endif /* SIM_SIM_H */
