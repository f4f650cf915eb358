/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fixture of the tests of the simulated TDX module on its own: host
 * memory, a report, statistics and one module with two vCPUs, plus the
 * helpers every such test uses.
 */
#ifndef SIM_TEST_MODULE_FIXTURE_H
#define SIM_TEST_MODULE_FIXTURE_H

#include <stdbool.h>

#include "host_mem.h"
#include "report.h"
#include "stats.h"
#include "tdx_module.h"
#include "tdx_seamcall.h"
#include "tdx_vp.h"

#define FX_SHARED_BIT (1ULL << 35)

/* The status class of @call, whatever its operand id. */
#define assert_status(call, st) \
	assert_int_equal(tdx_status_class(call), (st))

struct fixture {
	struct host_mem mem;
	struct sim_report report;
	struct sim_counters stats;
	struct tdx_module *mod;
};

/* cmocka setup: a module over @tdx_pages TDX-usable host pages (and 1024
 * others, and 512 hot-added later, offline) whose TD is finalized (RUNNABLE); *state becomes the fixture. */
int fx_setup(void **state, uint64_t tdx_pages);
/* The same with the TD still being built (INITIALIZED). */
int fx_setup_building(void **state, uint64_t tdx_pages);
/* cmocka teardown of fx_setup(). */
int fx_teardown(void **state);

/* A TDX-usable host page for @use; asserts one was free. */
tdp_pfn_t fx_page(struct fixture *f, enum host_page_use use);
/* Link the tables down to the entries of @level covering @gfn. */
void fx_link_down_to(struct fixture *f, tdp_gfn_t gfn, int level);
/* The module reported @st as a violation. */
bool fx_reported(struct fixture *f, tdx_status_t st);

#endif /* SIM_TEST_MODULE_FIXTURE_H */
