/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulator object (see sim.h): its configuration, creation of every
 * part, TD teardown with the final checks, and destruction.
 */
#include "sim.h"

#include <stdlib.h>

#include "consistency.h"

void sim_config_default(struct sim_config *cfg)
{
	*cfg = (struct sim_config){
		.nr_vcpus       = 4,
		.nr_tds         = 1,
		.guest_bytes    = 128ULL << 20,
		.private_pct    = 75,
		.convert_pct    = 0.2,
		.split_pct      = 50,
		.event_rate     = 100,
		.busy_pct       = 1,
		.fail_pct       = 0.2,
		.huge           = true,
		.duration       = 10,
		.seed           = 1,
		.check_interval = 2,
		.progress       = true,
		.image_pages    = 64,
		.mmio_pages     = 16,
		.print_limit    = 20,
		.fault_delay_us = 20,
		.race_pct       = 0.05,
		.lock_check_us  = 1000,
	};
}

/* ---- creation ------------------------------------------------------------ */

static int check_config(const struct sim_config *cfg)
{
	uint64_t gfns = cfg->guest_bytes >> TDP_PAGE_SHIFT;
	const struct sim_trace *t = cfg->trace;

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > SIM_MAX_VCPUS ||
	    cfg->nr_tds < 1 || cfg->nr_tds > SIM_MAX_TDS)
		return -EINVAL;
	if (t) {
		/* A replay is the trace alone, in memory below the shared
		 * bit. */
		if (!t->nr_regions || cfg->convert_pct || cfg->event_rate ||
		    cfg->migrate ||
		    t->region_gfn[t->nr_regions - 1] + SIM_REGION_PAGES >
			    SIM_SHARED_BIT)
			return -EINVAL;
	} else if (!cfg->guest_bytes || cfg->guest_bytes % (2ULL << 20) ||
		   gfns + cfg->mmio_pages > SIM_SHARED_BIT ||
		   cfg->image_pages > gfns || cfg->mmio_pages > 4096) {
		return -EINVAL;
	}
	if (cfg->private_pct < 0 || cfg->private_pct > 100 ||
	    cfg->convert_pct < 0 || cfg->convert_pct > 100 ||
	    cfg->busy_pct < 0 || cfg->busy_pct > 100 || cfg->fail_pct < 0 ||
	    cfg->fail_pct > 100 || cfg->event_rate < 0 || cfg->duration < 0 ||
	    cfg->check_interval < 0)
		return -EINVAL;
	return 0;
}

/*
 * TD @td of the module; @first is TD 0 (NULL when creating it), whose
 * host memory and PAMT the TD shares.
 */
static int create_td(const struct sim_config *cfg, struct sim *first,
		     unsigned int td, struct sim **out)
{
	struct tdx_module_config mcfg;
	struct tdp_mmu_config ecfg;
	struct sim *s;
	int ret;

	ret = check_config(cfg);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->cfg.seed = cfg->seed + td;
	s->td = td;
	s->owner = td + 1;
	/* One progress line: the first TD's. */
	s->cfg.progress = cfg->progress && !td;
	if (cfg->trace) {
		/* A replay is the trace alone: no initial image, no MMIO. */
		s->cfg.image_pages = 0;
		s->cfg.mmio_pages = 0;
		sim_layout_init_sparse(&s->layout, cfg->trace->region_gfn,
				       cfg->trace->nr_regions);
		s->cfg.guest_bytes = s->layout.nr_pages << TDP_PAGE_SHIFT;
	} else {
		uint64_t pages = cfg->guest_bytes >> TDP_PAGE_SHIFT;

		sim_layout_init_contiguous(&s->layout,
					   pages / SIM_REGION_PAGES);
	}
	s->nr_gfns = s->layout.nr_pages;
	s->nr_regions = s->layout.nr_regions;
	sim_report_init(&s->report, cfg->print_limit);
	sim_run_state_init(&s->run);
	sim_rng_seed(&s->main_rng, s->cfg.seed, 0);
	sim_rng_seed(&s->event_rng, s->cfg.seed, 2);
	sim_rng_seed(&s->hot_rng, s->cfg.seed, 4);
	sim_rng_current = &s->main_rng;
	tdp_thread_register();

	/* Room for every GFN's private page, S-EPT pages and migrations;
	 * shared pages prefer the non-TDX range. */
	if (first) {
		s->mem = first->mem;
	} else {
		uint64_t tds = cfg->nr_tds;

		s->mem = &s->mem_own;
		ret = host_mem_init(s->mem,
				    tds * (s->nr_gfns + s->nr_gfns / 4 +
					   16 * HOST_CHUNK_PAGES),
				    tds * (s->nr_gfns / 2 +
					   8 * HOST_CHUNK_PAGES),
				    SIM_HOTPLUG_PAGES);
		if (ret)
			goto err;
	}

	mcfg = (struct tdx_module_config){
		.mem        = s->mem,
		.root_level = SIM_ROOT_LEVEL,
		.shared_bit = SIM_SHARED_BIT,
		.nr_vcpus   = cfg->nr_vcpus,
		.busy_ppm   = sim_pct_to_ppm(cfg->busy_pct),
		.fail_ppm   = sim_pct_to_ppm(cfg->fail_pct),
		.report     = &s->report,
		.stats      = &s->stats,
		.share_pamt_with = first ? first->module : NULL,
		.owner      = s->owner,
	};
	ret = tdx_module_create(&mcfg, &s->module);
	if (ret)
		goto err;

	sim_backend_init(s, &s->engine_backend);
	if (cfg->wrap_backend)
		cfg->wrap_backend(&s->engine_backend, cfg->wrap_arg);
	sim_host_ops_init(s, &s->engine_host_ops);
	if (cfg->wrap_host_ops)
		cfg->wrap_host_ops(&s->engine_host_ops, cfg->wrap_arg);
	ecfg = (struct tdp_mmu_config){
		.root_level  = SIM_ROOT_LEVEL,
		.direct_bits = SIM_SHARED_BIT,
		.host        = s->engine_host_ops,
		.backend     = &s->engine_backend,
	};
	ret = tdp_mmu_create(&ecfg, &s->mmu);
	if (ret)
		goto err;

	ret = sim_host_init(s);
	if (!ret)
		ret = sim_guest_init(s);
	if (!ret)
		ret = sim_mmio_init(s);
	if (!ret)
		ret = sim_migrate_init(s);
	if (!ret)
		ret = sim_vcpus_init(s, cfg->nr_vcpus);
	if (!ret && cfg->trace)
		ret = sim_replay_create(s, &s->replay);
	if (ret)
		goto err;
	/* Before any vCPU runs; a failed step is reported, and the guest's
	 * checks then fail too. */
	sim_host_build_td(s);
	*out = s;
	return 0;
err:
	sim_destroy(s);
	return ret;
}

int sim_create(const struct sim_config *cfg, struct sim **out)
{
	return create_td(cfg, NULL, 0, out);
}

int sim_create_tds(const struct sim_config *cfg, struct sim **out)
{
	int ret = create_td(cfg, NULL, 0, &out[0]);

	for (unsigned int i = 1; !ret && i < cfg->nr_tds; i++) {
		ret = create_td(cfg, out[0], i, &out[i]);
		if (ret)
			sim_destroy_tds(out, i);
	}
	return ret;
}

void sim_destroy_tds(struct sim **tds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		sim_finish(tds[i]);
	/* TD 0 holds the memory and the PAMT: last. */
	while (n--)
		sim_destroy(tds[n]);
}

/* ---- TD teardown --------------------------------------------------------- */

#define FV(s, kind, ...)                                                       \
	sim_violation(&(s)->report, kind, 0, SIM_NO_GFN, SIM_NO_VCPU,          \
		      "after teardown: " __VA_ARGS__)

void sim_finish(struct sim *s)
{
	int ret;

	if (s->finished || !s->mmu)
		return;
	s->finished = true;
	sim_stop_request(&s->run);
	sim_count(&s->stats, SIM_C_EVENT_TEARDOWN, 1);
	for (unsigned int i = 0; i < s->vcpus.nr; i++)
		sim_vcpu_exit(&s->vcpus.v[i]);
	sim_vcpus_destroy_contexts(s);
	tdp_vcpu_destroy(s->host.ctx);
	s->host.ctx = NULL;

	ret = tdp_mmu_teardown(s->mmu);
	tdp_mmu_get_stats(s->mmu, &s->engine_stats);
	s->engine_dead = tdp_mmu_is_dead(s->mmu);
	if (ret)
		FV(s, SIM_V_ENGINE_ERROR, "tdp_mmu_teardown failed: %d", ret);
	/* A dead MMU left private pages mapped: nothing is released then,
	 * as the kernel would leak them rather than reuse them. */
	if (s->engine_dead)
		return;
	sim_check_after_teardown(s, &s->engine_stats);
	sim_host_release_all(s);
	sim_mmio_release(s);
	if (tdx_module_teardown(s->module) == TDX_SUCCESS)
		sim_check_host_memory_free(s);
}

void sim_destroy(struct sim *s)
{
	if (!s)
		return;
	if (s->mmu && !s->finished)
		sim_finish(s);
	sim_replay_destroy(s->replay);
	sim_vcpus_fini(s);
	sim_host_fini(s);
	sim_guest_fini(s);
	sim_mmio_fini(s);
	sim_migrate_fini(s);
	tdp_mmu_destroy(s->mmu);
	tdx_module_destroy(s->module);
	if (s->mem == &s->mem_own)
		host_mem_destroy(s->mem);
	sim_run_state_destroy(&s->run);
	sim_report_destroy(&s->report);
	if (sim_rng_current == &s->main_rng)
		sim_rng_current = NULL;
	free(s);
	tdp_thread_unregister();
}
