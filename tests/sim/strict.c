/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared pieces of the strictness tests (see strict.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strict.h"

struct breakage brk;

void base_config(struct sim_config *cfg)
{
	sim_config_default(cfg);
	cfg->nr_vcpus = 2;
	cfg->guest_bytes = 16ULL << 20;
	cfg->private_pct = 100;
	/* Huge regions accepted and converted whole, deterministically. */
	cfg->split_pct = 0;
	cfg->busy_pct = 0;
	cfg->fail_pct = 0;
	cfg->event_rate = 0;
	cfg->progress = false;
	cfg->print_limit = 0;
	cfg->seed = 7;
	/* No initial image and no MMIO window: the tests place their pages
	 * themselves (test_td_build.c and test_mmio.c add them). */
	cfg->image_pages = 0;
	cfg->mmio_pages = 0;
	cfg->wrap_arg = &brk;
	memset(&brk, 0, sizeof(brk));
}

struct sim *create(const struct sim_config *cfg)
{
	struct sim *s;

	assert_int_equal(sim_create(cfg, &s), 0);
	return s;
}

struct sim *create_wrapped(void (*wrap_backend)(struct tdp_private_backend *,
						void *),
			   void (*wrap_host_ops)(struct tdp_host_ops *, void *))
{
	struct sim_config cfg;

	base_config(&cfg);
	cfg.wrap_backend = wrap_backend;
	cfg.wrap_host_ops = wrap_host_ops;
	return create(&cfg);
}

tdp_gfn_t small_region_gfn(struct sim *s, uint64_t offset)
{
	for (uint64_t r = 0; r < s->nr_regions; r++)
		if (!s->guest.region_huge[r])
			return r * SIM_REGION_PAGES + offset;
	fail_msg("no small region");
	return 0;
}

const struct sim_violation *find(struct sim *s, enum sim_violation_kind kind,
				 tdx_status_t st, tdp_gfn_t gfn, int vcpu)
{
	return sim_report_find(&s->report, kind, st, gfn, vcpu);
}

/* ---- host flush wrappers that drop flushes while armed ------------------ */

static void flush_range_dropping(void *ctx, tdp_gfn_t gfn, uint64_t n)
{
	if (brk.drop_flushes) {
		brk.dropped++;
		return;
	}
	brk.orig_host.flush_range(ctx, gfn, n);
}

static void flush_all_dropping(void *ctx)
{
	if (brk.drop_flushes) {
		brk.dropped++;
		return;
	}
	brk.orig_host.flush_all(ctx);
}

void wrap_drop_flush(struct tdp_host_ops *ops, void *arg)
{
	struct breakage *b = arg;

	b->orig_host = *ops;
	ops->flush_range = flush_range_dropping;
	ops->flush_all = flush_all_dropping;
}
