/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest's MMIO window (see mmio.h). */
#include "mmio.h"

#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Attempts of one MMIO access before it counts as a livelock. */
#define MMIO_MAX_TRIES 100000

int sim_mmio_init(struct sim *s)
{
	struct sim_mmio *m = &s->mmio;

	m->nr = s->cfg.mmio_pages;
	/* Just above guest memory, on a region boundary. */
	m->base = sim_layout_run_end(&s->layout,
				     sim_layout_gfn(&s->layout,
						    s->nr_gfns - 1));
	pthread_mutex_init(&m->lock, NULL);
	if (!m->nr)
		return 0;
	m->ram_pfn = calloc(m->nr, sizeof(*m->ram_pfn));
	m->reg = calloc(m->nr, sizeof(*m->reg));
	m->version = calloc(m->nr, sizeof(*m->version));
	if (!m->ram_pfn || !m->reg || !m->version)
		return -ENOMEM;
	/* A device register reads (gfn, 0) until the guest writes it. */
	for (unsigned int k = 0; k < m->nr; k++)
		m->reg[k] = SIM_TAG(m->base + k, 0);
	return 0;
}

void sim_mmio_fini(struct sim *s)
{
	struct sim_mmio *m = &s->mmio;

	pthread_mutex_destroy(&m->lock);
	free(m->ram_pfn);
	free(m->reg);
	free(m->version);
	memset(m, 0, sizeof(*m));
}

/* ---- the host: faults, misconfigurations, layout changes ----------------- */

/*
 * The host's fault handler for window page @k: an MMIO SPTE of the
 * current generation for a device register, a leaf for RAM.
 */
static int mmio_fault(struct sim *s, struct tdp_vcpu *ctx, int vcpu,
		      unsigned int k)
{
	struct sim_mmio *m = &s->mmio;
	tdp_gfn_t gfn = m->base + k;
	struct tdp_fault f = {
		.fault_gfn = gfn | SIM_SHARED_BIT,
		.prot      = TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC,
		.max_level = TDP_LEVEL_4K,
		/* Before the layout: a change after this makes it retry. */
		.mmu_seq   = tdp_mmu_seq(s->mmu),
	};
	int ret;

	pthread_mutex_lock(&m->lock);
	f.pfn = m->ram_pfn[k];
	pthread_mutex_unlock(&m->lock);
	f.mmio = f.pfn == 0;
	ret = tdp_map(ctx, &f);
	sim_host_count_fault(s, false, ret);
	if (ret == TDP_FAULT_FIXED && f.mmio)
		sim_count(&s->stats, SIM_C_MMIO_FAULTS, 1);
	if (ret < 0)
		sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn, vcpu,
			      "tdp_map(%s of MMIO window page %u) failed: %d",
			      f.mmio ? "MMIO SPTE" : "RAM leaf", k, ret);
	return ret;
}

/*
 * The host's EPT-misconfiguration handler: emulate the access if the
 * MMIO SPTE @spte is of the current generation (storing the register's
 * content in *@old), or return -EAGAIN to fault again.
 */
static int mmio_exit(struct sim *s, int vcpu, unsigned int k, tdp_spte_t spte,
		     bool write, uint64_t new_tag, uint64_t *old)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	struct sim_mmio *m = &s->mmio;
	tdp_gfn_t gfn = m->base + k;

	pthread_mutex_lock(&m->lock);
	if (tdp_spte_mmio_gen(fmt, spte) != tdp_mmu_mmio_generation(s->mmu)) {
		pthread_mutex_unlock(&m->lock);
		sim_count(&s->stats, SIM_C_MMIO_STALE, 1);
		return -EAGAIN;
	}
	if (tdp_spte_mmio_gfn(fmt, spte) != (gfn | SIM_SHARED_BIT) &&
	    tdp_spte_mmio_gfn(fmt, spte) != gfn)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      vcpu, "MMIO SPTE %#" PRIx64 " was made for gfn %#"
			      PRIx64, spte, tdp_spte_mmio_gfn(fmt, spte));
	if (m->ram_pfn[k])
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      vcpu, "EPT misconfiguration through an MMIO SPTE "
			      "of the current generation %u, but a memory slot "
			      "covers the GFN: the layout changed without a "
			      "generation bump",
			      tdp_spte_mmio_gen(fmt, spte));
	*old = m->reg[k];
	if (write)
		m->reg[k] = new_tag;
	pthread_mutex_unlock(&m->lock);
	sim_count(&s->stats, write ? SIM_C_MMIO_WRITES : SIM_C_MMIO_READS, 1);
	return 0;
}

void sim_mmio_flip(struct sim *s, unsigned int k)
{
	struct sim_mmio *m = &s->mmio;
	tdp_gfn_t gfn = m->base + k;
	int ret;

	sim_count(&s->stats, SIM_C_MMIO_FLIPS, 1);
	ret = tdp_invalidate_begin(s->mmu, gfn, gfn + 1);
	if (ret) {
		sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn,
			      SIM_NO_VCPU, "tdp_invalidate_begin failed: %d",
			      ret);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (m->ram_pfn[k]) {
		/* The slot goes: unmap the RAM, the register gets its
		 * content. */
		tdp_pfn_t pfn = m->ram_pfn[k];

		ret = tdp_zap_host_unmap(s->mmu, gfn, gfn + 1);
		if (ret)
			sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn,
				      SIM_NO_VCPU,
				      "tdp_zap_host_unmap failed: %d", ret);
		m->reg[k] = sim_host_read_page(s, pfn);
		m->ram_pfn[k] = 0;
		sim_host_free_page(s, gfn, false, pfn);
	} else {
		/* A slot over the register: RAM with its content.  Its MMIO
		 * SPTE goes stale with the generation, no zap. */
		tdp_pfn_t pfn = host_mem_alloc(s->mem, s->owner, HOST_POOL_ANY,
					       HOST_PAGE_SHARED, gfn);

		if (pfn) {
			host_page_set_tag(host_mem_page(s->mem, pfn),
					  m->reg[k]);
			m->ram_pfn[k] = pfn;
		}
	}
	/* Under the lock: a misconfiguration handler sees the layout and
	 * the generation change together. */
	if (!s->cfg.break_mmio_no_bump) {
		ret = tdp_mmu_set_mmio_generation(
			s->mmu, (tdp_mmu_mmio_generation(s->mmu) + 1) &
					TDP_MMIO_GEN_MASK);
		if (ret)
			sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn,
				      SIM_NO_VCPU,
				      "tdp_mmu_set_mmio_generation failed: %d",
				      ret);
		sim_count(&s->stats, SIM_C_MMIO_GEN_BUMPS, 1);
	}
	pthread_mutex_unlock(&m->lock);
	ret = tdp_invalidate_end(s->mmu, gfn, gfn + 1);
	if (ret)
		sim_violation(&s->report, SIM_V_ENGINE_ERROR, 0, gfn,
			      SIM_NO_VCPU, "tdp_invalidate_end failed: %d",
			      ret);
}

/* ---- the guest's accesses ------------------------------------------------ */

/* Check what an access found in window page @gfn. */
static void check_mmio_content(struct sim_vcpu *v, tdp_gfn_t gfn,
			       const char *how, uint64_t tag, uint32_t expected)
{
	sim_count(&v->sim->stats, SIM_C_CHECK_ACCESS, 1);
	if (tag != SIM_TAG(gfn, expected))
		sim_violation(&v->sim->report, SIM_V_CORRUPTION, 0, gfn,
			      (int)v->id,
			      "%s of MMIO window gfn %#" PRIx64 " found (gfn %#"
			      PRIx64 ", version %" PRIu64 "), expected "
			      "version %u", how, gfn, SIM_TAG_GFN(tag),
			      SIM_TAG_VERSION(tag), expected);
}

/*
 * One try of the access: true when it completed (*@ret its result),
 * false when the host handled an exit and the guest retries.
 */
static bool mmio_try(struct sim_vcpu *v, unsigned int k, bool write,
		     uint32_t expected, int *ret)
{
	struct sim *s = v->sim;
	tdp_gfn_t gfn = s->mmio.base + k;
	struct sim_access acc = {
		.write = write,
		.new_tag = SIM_TAG(gfn, (expected + 1) & SIM_TAG_VERSION_MASK),
	};
	uint64_t old = 0;

	*ret = 0;
	switch (sim_vcpu_access(v, gfn | SIM_SHARED_BIT, &acc)) {
	case SIM_ACCESS_OK:
		/* RAM under a memory slot. */
		if (acc.page_use != HOST_PAGE_SHARED || acc.page_gfn != gfn)
			sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
				      gfn, (int)v->id,
				      "MMIO window gfn translated to pfn %#"
				      PRIx64 ", a %s page (gfn %#" PRIx64 ")",
				      acc.pfn, host_page_use_name(acc.page_use),
				      acc.page_gfn);
		check_mmio_content(v, gfn, "RAM access", acc.old_tag, expected);
		sim_count(&s->stats, SIM_C_MMIO_RAM_ACCESSES, 1);
		return true;
	case SIM_ACCESS_MMIO:
		sim_vcpu_exit(v);
		if (mmio_exit(s, (int)v->id, k, acc.stop_entry, write,
			      acc.new_tag, &old) == 0) {
			check_mmio_content(v, gfn, "MMIO access", old,
					   expected);
			return true;
		}
		break;
	case SIM_ACCESS_EPT_VIOLATION:
		sim_vcpu_exit(v);
		break;
	case SIM_ACCESS_GUEST_PF: /* no guest page table is consulted */
	case SIM_ACCESS_BAD_FRAME:
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0, gfn,
			      (int)v->id, "MMIO window gfn translated to frame "
			      "%#" PRIx64 ", not host memory", acc.pfn);
		*ret = -EIO;
		return true;
	}
	*ret = mmio_fault(s, v->tdp, (int)v->id, k);
	if (*ret == TDP_FAULT_RETRY)
		sim_count(&s->stats, SIM_C_RETRY_REENTRY, 1);
	return *ret < 0;
}

int sim_mmio_access(struct sim_vcpu *v, unsigned int k, bool write)
{
	struct sim *s = v->sim;
	struct sim_mmio *m = &s->mmio;
	tdp_gfn_t gfn = m->base + k;
	bool done = false;
	uint32_t expected;
	int ret = -EIO;

	expected = m->version[k];
	for (long tries = 0; tries < MMIO_MAX_TRIES && !done; tries++) {
		if (sim_stop_requested(&s->run) || !sim_vcpu_enter(v)) {
			ret = -ESHUTDOWN;
			done = true;
			break;
		}
		done = mmio_try(v, k, write, expected, &ret);
		if (tries > 64)
			sched_yield();
	}
	if (!done) {
		ret = -EIO;
		sim_violation(&s->report, SIM_V_LIVELOCK, 0, gfn, (int)v->id,
			      "MMIO access never completed");
	}
	if (!ret && write)
		m->version[k] = (expected + 1) & SIM_TAG_VERSION_MASK;
	return ret;
}

/* ---- checks -------------------------------------------------------------- */

void sim_mmio_check_quiesced(struct sim *s, uint64_t *leaves_4k,
			     uint64_t *shared_pages)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	struct sim_mmio *m = &s->mmio;
	uint32_t gen = tdp_mmu_mmio_generation(s->mmu);

	for (unsigned int k = 0; k < m->nr; k++) {
		tdp_gfn_t gfn = m->base + k;
		tdp_pfn_t pfn = m->ram_pfn[k];
		tdp_spte_t spte = 0;
		uint64_t tag;
		int level = 0;

		if (tdp_lookup(s->mmu, gfn, TDP_ALIAS_SHARED, &spte, &level))
			continue;
		if (tdp_spte_is_mmio(fmt, spte)) {
			if (pfn && tdp_spte_mmio_gen(fmt, spte) == gen)
				sim_violation(&s->report, SIM_V_INCONSISTENT, 0,
					      gfn, SIM_NO_VCPU,
					      "quiesce: a current MMIO SPTE "
					      "maps a window page that is RAM");
		} else if (tdp_spte_is_present(fmt, spte)) {
			if (!pfn || level != TDP_LEVEL_4K ||
			    tdp_spte_pfn(fmt, spte) != pfn)
				sim_violation(&s->report, SIM_V_INCONSISTENT, 0,
					      gfn, SIM_NO_VCPU,
					      "quiesce: window page %s mapped "
					      "to pfn %#" PRIx64 " at level %d",
					      pfn ? "(RAM)" : "(a device)",
					      tdp_spte_pfn(fmt, spte), level);
			(*leaves_4k)++;
		}
		tag = pfn ? host_page_tag(host_mem_page(s->mem, pfn))
			  : m->reg[k];
		if (tag != SIM_TAG(gfn, m->version[k]))
			sim_violation(&s->report, SIM_V_CORRUPTION, 0, gfn,
				      SIM_NO_VCPU,
				      "quiesce: window page holds version %"
				      PRIu64 ", the guest wrote %u",
				      SIM_TAG_VERSION(tag), m->version[k]);
		if (pfn)
			(*shared_pages)++;
	}
}

void sim_mmio_release(struct sim *s)
{
	struct sim_mmio *m = &s->mmio;

	for (unsigned int k = 0; k < m->nr; k++) {
		if (!m->ram_pfn[k])
			continue;
		sim_host_free_page(s, m->base + k, false, m->ram_pfn[k]);
		m->ram_pfn[k] = 0;
	}
}
