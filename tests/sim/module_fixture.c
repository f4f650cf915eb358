/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fixture of the TDX module tests (module_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "module_fixture.h"

int fx_setup(void **state, uint64_t tdx_pages)
{
	struct fixture *f;

	fx_setup_building(state, tdx_pages);
	f = *state;
	assert_int_equal(tdx_mr_finalize(f->mod), TDX_SUCCESS);
	return 0;
}

int fx_setup_building(void **state, uint64_t tdx_pages)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct tdx_module_config cfg;

	assert_non_null(f);
	assert_int_equal(host_mem_init(&f->mem, tdx_pages, 2 * 512, 512), 0);
	sim_report_init(&f->report, 0);
	cfg = (struct tdx_module_config){
		.mem        = &f->mem,
		.root_level = 4,
		.shared_bit = FX_SHARED_BIT,
		.nr_vcpus   = 2,
		.report     = &f->report,
		.stats      = &f->stats,
	};
	assert_int_equal(tdx_module_create(&cfg, &f->mod), 0);
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	struct fixture *f = *state;

	tdx_module_destroy(f->mod);
	host_mem_destroy(&f->mem);
	sim_report_destroy(&f->report);
	free(f);
	return 0;
}

tdp_pfn_t fx_page(struct fixture *f, enum host_page_use use)
{
	tdp_pfn_t pfn = host_mem_alloc(&f->mem, 1, HOST_POOL_TDX, use, 0);

	assert_int_not_equal(pfn, 0);
	return pfn;
}

void fx_link_down_to(struct fixture *f, tdp_gfn_t gfn, int level)
{
	for (int l = 4; l > level; l--)
		assert_int_equal(tdx_sept_add(f->mod,
					      gfn & ~(tdp_level_pages(l) - 1),
					      l, fx_page(f, HOST_PAGE_SEPT), NULL),
				 TDX_SUCCESS);
}

bool fx_reported(struct fixture *f, tdx_status_t st)
{
	return sim_report_find(&f->report, SIM_V_TDX_ERROR, st, SIM_NO_GFN,
			       SIM_NO_VCPU) != NULL;
}
