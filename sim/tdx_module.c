/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated TDX module and its one TD (see tdx_module.h): creation
 * with the TD's control pages, teardown that reclaims them, the injection
 * rates, and what the host and the checks read of the PAMT and epochs.
 */
#include "tdx_module.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "tdx_module_state.h"
#include "tdx_outcome.h"

/* ---- what the host and the checks read ----------------------------------- */

struct tdx_pamt_info tdx_pamt_get(const struct tdx_module *mod, tdp_pfn_t pfn)
{
	struct tdx_pamt_info info = { .type = PAMT_RSVD };
	const struct pamt_entry *p;

	if (pfn < mod->mem->base || pfn - mod->mem->base >= mod->mem->nr_pages)
		return info;
	p = &mod->pamt[pfn - mod->mem->base];
	info.type = (enum pamt_type)__atomic_load_n(&p->type, __ATOMIC_ACQUIRE);
	info.size_level = (int)__atomic_load_n(&p->size_level,
					       __ATOMIC_RELAXED);
	info.gfn = __atomic_load_n(&p->gfn, __ATOMIC_RELAXED);
	info.bepoch = __atomic_load_n(&p->bepoch, __ATOMIC_RELAXED);
	info.owner = __atomic_load_n(&p->owner, __ATOMIC_RELAXED);
	return info;
}

uint64_t tdx_pamt_pages_of(const struct tdx_module *mod, uint32_t owner)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < mod->mem->nr_pages; i++) {
		const struct pamt_entry *p = &mod->pamt[i];
		enum pamt_type type = pamt_type(p);

		n += type != PAMT_NDA && type != PAMT_RSVD &&
		     __atomic_load_n(&p->owner, __ATOMIC_RELAXED) == owner;
	}
	return n;
}

uint64_t tdx_td_epoch(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->td_epoch, __ATOMIC_ACQUIRE);
}

enum tdx_td_op_state tdx_td_op_state(const struct tdx_module *mod)
{
	return (enum tdx_td_op_state)__atomic_load_n(&mod->op_state,
						     __ATOMIC_ACQUIRE);
}

uint64_t tdx_vp_entered_epoch(const struct tdx_module *mod, unsigned int vp)
{
	return __atomic_load_n(&mod->vp[vp].entered_epoch, __ATOMIC_RELAXED);
}

tdp_pfn_t tdx_tdr_pfn(const struct tdx_module *mod)
{
	return mod->tdr_pfn;
}

tdp_pfn_t tdx_tdcs_pfn(const struct tdx_module *mod, int i)
{
	return mod->tdcs_pfn[i];
}

tdp_pfn_t tdx_last_reclaimed(const struct tdx_module *mod)
{
	return mod->last_reclaimed;
}

int64_t tdx_td_child_count(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->child_count, __ATOMIC_RELAXED);
}

int64_t tdx_sept_pages(const struct tdx_module *mod)
{
	return __atomic_load_n(&mod->sept_pages, __ATOMIC_RELAXED);
}

void tdx_module_break_reclaim(struct tdx_module *mod, tdp_pfn_t pfn)
{
	mod->break_reclaim_extra = pfn;
}

void tdx_module_set_injection(struct tdx_module *mod, uint32_t busy_ppm,
			      uint32_t fail_ppm)
{
	__atomic_store_n(&mod->busy_ppm, busy_ppm, __ATOMIC_RELAXED);
	__atomic_store_n(&mod->fail_ppm, fail_ppm, __ATOMIC_RELAXED);
}

/* ---- creation and teardown ----------------------------------------------- */

/* A TD control page from TDX-usable memory, owned by the module. */
static tdp_pfn_t add_control_page(struct tdx_module *mod)
{
	tdp_pfn_t pfn = host_mem_alloc(mod->mem, mod->owner, HOST_POOL_TDX,
				       HOST_PAGE_TD_CONTROL, 0);

	if (pfn)
		pamt_set(mod, pamt_of(mod, pfn), PAMT_CTL, 0, 0);
	return pfn;
}

int tdx_module_create(const struct tdx_module_config *cfg,
		      struct tdx_module **out)
{
	struct tdx_module *mod;
	uint64_t n;

	if (!cfg || !cfg->mem || (cfg->root_level != 4 && cfg->root_level != 5))
		return -EINVAL;
	mod = calloc(1, sizeof(*mod));
	if (!mod)
		return -ENOMEM;
	mod->mem = cfg->mem;
	mod->root_level = cfg->root_level;
	mod->shared_bit = cfg->shared_bit;
	mod->nr_vcpus = cfg->nr_vcpus;
	mod->report = cfg->report;
	mod->stats = cfg->stats;
	mod->busy_ppm = cfg->busy_ppm;
	mod->fail_ppm = cfg->fail_ppm;
	mod->td_epoch = 1;
	mod->op_state = TDX_TD_INITIALIZED;
	mod->mrtd = TDX_MR_INITIAL;
	n = cfg->mem->nr_pages;
	mod->owner = cfg->owner ? cfg->owner : 1;
	mod->owns_pamt = !cfg->share_pamt_with;
	if (mod->owns_pamt) {
		mod->pamt = calloc(n, sizeof(*mod->pamt));
		mod->tables = calloc(n, sizeof(*mod->tables));
	} else {
		/* Another TD on the same module: one PAMT for all. */
		mod->pamt = cfg->share_pamt_with->pamt;
		mod->tables = cfg->share_pamt_with->tables;
	}
	mod->vp = calloc(cfg->nr_vcpus + 1, sizeof(*mod->vp));
	mod->tdvpr_pfn = calloc(cfg->nr_vcpus + 1, sizeof(*mod->tdvpr_pfn));
	if (!mod->pamt || !mod->tables || !mod->vp || !mod->tdvpr_pfn)
		goto err;

	/* TDH.SYS.CONFIG, once for the module: the PAMT covers the
	 * TDX-usable ranges only, fixed from now on. */
	for (uint64_t i = 0; mod->owns_pamt && i < n; i++)
		mod->pamt[i].type = host_mem_tdx_usable(cfg->mem,
							cfg->mem->base + i, 1)
					    ? PAMT_NDA
					    : PAMT_RSVD;

	/* TDH.MNG.CREATE, TDH.MNG.ADDCX, TDH.VP.CREATE. */
	mod->tdr_pfn = add_control_page(mod);
	for (int i = 0; i < 4; i++)
		mod->tdcs_pfn[i] = add_control_page(mod);
	for (unsigned int i = 0; i < cfg->nr_vcpus; i++)
		mod->tdvpr_pfn[i] = add_control_page(mod);
	if (!mod->tdr_pfn || !mod->tdcs_pfn[3] ||
	    (cfg->nr_vcpus && !mod->tdvpr_pfn[cfg->nr_vcpus - 1]))
		goto err;
	mod->root_pfn = mod->tdcs_pfn[3];
	if (!tdx_table_storage(mod, mod->root_pfn))
		goto err;
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		mod->tables[mod->root_pfn - cfg->mem->base][i] =
			make_entry(SEPT_FREE, 0, cfg->root_level);
	*out = mod;
	return 0;
err:
	tdx_module_destroy(mod);
	return -ENOMEM;
}

static void reclaim_control_page(struct tdx_module *mod, tdp_pfn_t *pfn)
{
	if (!*pfn)
		return;
	pamt_set(mod, pamt_of(mod, *pfn), PAMT_NDA, 0, 0);
	host_mem_free(mod->mem, *pfn);
	mod->last_reclaimed = *pfn;
	tdx_count_outcome(mod, SIM_SC_PAGE_RECLAIM, TDX_SUCCESS);
	*pfn = 0;
}

/* PAMT entries per owner tag (tags past the array are not counted). */
#define OWNER_SLOTS 64

static void pamt_count_owners(const struct tdx_module *mod,
			      uint64_t count[OWNER_SLOTS])
{
	memset(count, 0, OWNER_SLOTS * sizeof(count[0]));
	for (uint64_t i = 0; i < mod->mem->nr_pages; i++) {
		const struct pamt_entry *p = &mod->pamt[i];
		enum pamt_type type = pamt_type(p);
		uint32_t owner = __atomic_load_n(&p->owner, __ATOMIC_RELAXED);

		if (type != PAMT_NDA && type != PAMT_RSVD &&
		    owner < OWNER_SLOTS)
			count[owner]++;
	}
}

/*
 * After this TD's control pages were reclaimed: it holds no PAMT entry
 * any more, and every other TD on the module holds what it held before
 * (@before; the other TDs are stopped while one is torn down).
 */
static void check_reclaimed_own_pages(struct tdx_module *mod,
				      const uint64_t before[OWNER_SLOTS])
{
	uint64_t after[OWNER_SLOTS];

	pamt_count_owners(mod, after);
	for (uint32_t o = 1; o < OWNER_SLOTS && mod->report; o++) {
		uint64_t want = o == mod->owner ? 0 : before[o];

		if (after[o] != want)
			sim_violation(mod->report, SIM_V_TDX_ERROR,
				      TDX_TD_ASSOCIATED_PAGES_EXIST,
				      SIM_NO_GFN, SIM_NO_VCPU,
				      "teardown of TD %u: TD %u holds %" PRIu64
				      " PAMT pages, %" PRIu64 " expected",
				      mod->owner - 1, o - 1, after[o], want);
	}
}

tdx_status_t tdx_module_teardown(struct tdx_module *mod)
{
	uint64_t before[OWNER_SLOTS];
	int64_t children = tdx_td_child_count(mod);

	if (mod->torn_down)
		return TDX_SUCCESS;
	if (children) {
		if (mod->report)
			sim_violation(mod->report, SIM_V_TDX_ERROR,
				      TDX_TD_ASSOCIATED_PAGES_EXIST, SIM_NO_GFN,
				      SIM_NO_VCPU,
				      "TD teardown: %" PRId64 " pages are "
				      "still "
				      "associated with the TD (%" PRId64
				      " S-EPT pages): the TDR cannot be "
				      "reclaimed",
				      children, tdx_sept_pages(mod));
		tdx_count_outcome(mod, SIM_SC_PAGE_RECLAIM,
				  TDX_TD_ASSOCIATED_PAGES_EXIST);
		return TDX_TD_ASSOCIATED_PAGES_EXIST;
	}
	pamt_count_owners(mod, before);
	for (unsigned int i = 0; i < mod->nr_vcpus; i++)
		reclaim_control_page(mod, &mod->tdvpr_pfn[i]);
	for (int i = 0; i < 4; i++)
		reclaim_control_page(mod, &mod->tdcs_pfn[i]);
	/* The TDR goes last: it holds the child count. */
	reclaim_control_page(mod, &mod->tdr_pfn);
	/* A broken teardown (test hook) takes another TD's page too. */
	reclaim_control_page(mod, &mod->break_reclaim_extra);
	check_reclaimed_own_pages(mod, before);
	mod->root_pfn = 0;
	mod->torn_down = true;
	return TDX_SUCCESS;
}

void tdx_module_destroy(struct tdx_module *mod)
{
	if (!mod)
		return;
	if (mod->owns_pamt) {
		if (mod->tables)
			for (uint64_t i = 0; i < mod->mem->nr_pages; i++)
				free(mod->tables[i]);
		free(mod->tables);
		free(mod->pamt);
	}
	free(mod->vp);
	free(mod->tdvpr_pfn);
	free(mod);
}
