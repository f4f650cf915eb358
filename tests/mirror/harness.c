/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "harness.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define MENV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MENV_ASAN 1
#endif
#endif
#ifdef MENV_ASAN
#include <sanitizer/lsan_interface.h>
#endif

static void menv_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct menv *e = ctx;

	(void)gfn;
	(void)nr_pages;
	__atomic_add_fetch(&e->flushes, 1, __ATOMIC_RELAXED);
}

static void menv_flush_all(void *ctx)
{
	struct menv *e = ctx;

	__atomic_add_fetch(&e->flushes, 1, __ATOMIC_RELAXED);
}

void menv_init(struct menv *e, size_t ext_size, unsigned int mmu_flags)
{
	menv_init_backend(e, ext_size, mmu_flags, false);
}

void menv_init_backend(struct menv *e, size_t ext_size,
		       unsigned int mmu_flags, unsigned int demote)
{
	struct tdp_mmu_config cfg;

	*e = (struct menv){ 0 };
	e->rec = ts_backend_create(MENV_ROOT_LEVEL, MENV_SHARED_BIT, ext_size);
	assert_non_null(e->rec);
	ts_set_demote(e->rec, demote & MENV_DEMOTE,
		       (demote & MENV_DEMOTE_IN_FAULTS) == MENV_DEMOTE_IN_FAULTS);
	ts_set_promote(e->rec, demote & MENV_PROMOTE);
	/* One table, lined up so it reads as one. */
	/* clang-format off */
	cfg = (struct tdp_mmu_config){
		.root_level  = MENV_ROOT_LEVEL,
		.gfn_bits    = 0,
		.direct_bits = MENV_SHARED_BIT,
		.format      = NULL,
		.host        = {
			.flush_range = menv_flush_range,
			.flush_all   = menv_flush_all,
			.ctx         = e,
		},
		.backend     = ts_backend_ops(e->rec),
		.flags       = mmu_flags,
	};
	/* clang-format on */
	assert_int_equal(tdp_mmu_create(&cfg, &e->mmu), 0);
	ts_backend_set_mmu(e->rec, e->mmu);
	assert_int_equal(tdp_vcpu_create(e->mmu, &e->vcpu), 0);
}

void menv_fini(struct menv *e)
{
	tdp_vcpu_destroy(e->vcpu);
	e->vcpu = NULL;
	tdp_mmu_destroy(e->mmu);
	e->mmu = NULL;
	ts_backend_destroy(e->rec);
	e->rec = NULL;
}

int menv_map(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	     enum tdp_alias alias, tdp_pfn_t pfn, int max_level)
{
	struct tdp_fault f = {
		.fault_gfn =
			alias == TDP_ALIAS_SHARED ? gfn | MENV_SHARED_BIT : gfn,
		.pfn = pfn,
		.prot = TDP_PROT_RWX,
		.max_level = max_level,
		.mmu_seq = tdp_mmu_seq(mmu),
		.mmio = false,
	};

	return tdp_map(vcpu, &f);
}

int menv_map_retry(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		   enum tdp_alias alias, tdp_pfn_t pfn, int max_level,
		   unsigned long *retries)
{
	int ret = TDP_FAULT_RETRY;

	for (long i = 0; i < MENV_MAX_RETRIES; i++) {
		ret = menv_map(mmu, vcpu, gfn, alias, pfn, max_level);
		if (ret != TDP_FAULT_RETRY)
			break;
		if (retries)
			++*retries;
		if (i > 16)
			sched_yield();
	}
	return ret;
}

bool menv_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		      int *level, tdp_pfn_t *pfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_spte_t spte = 0;
	int lvl = 0;

	assert_int_equal(tdp_lookup(mmu, gfn, alias, &spte, &lvl), 0);
	assert_false(tdp_spte_is_frozen(fmt, spte));
	assert_in_range(lvl, TDP_LEVEL_4K, MENV_ROOT_LEVEL);
	if (!tdp_spte_is_present(fmt, spte))
		return false;
	assert_true(tdp_spte_is_leaf(fmt, spte, lvl));
	if (level)
		*level = lvl;
	if (pfn)
		*pfn = tdp_spte_pfn(fmt, spte);
	return true;
}

uint64_t menv_stat_tables(const struct tdp_stats *st, int root_type)
{
	uint64_t n = 0;

	for (int l = 0; l <= TDP_MAX_LEVEL; l++)
		n += st->tables[root_type][l];
	return n;
}

uint64_t menv_stat_leaves(const struct tdp_stats *st, int root_type)
{
	uint64_t n = 0;

	for (int l = 0; l <= TDP_MAX_LEVEL; l++)
		n += st->leaves[root_type][l];
	return n;
}

uint64_t menv_seed(uint64_t fallback)
{
	const char *s = getenv("TDP_TEST_SEED");

	if (s && *s)
		return strtoull(s, NULL, 0);
	return fallback;
}

void menv_expect_leaks_begin(void)
{
#ifdef MENV_ASAN
	__lsan_disable();
#endif
}

void menv_expect_leaks_end(void)
{
#ifdef MENV_ASAN
	__lsan_enable();
#endif
}

int menv_group_setup(void **state)
{
	(void)state;
	tdp_thread_register();
	return 0;
}

int menv_group_teardown(void **state)
{
	(void)state;
	tdp_thread_unregister();
	return 0;
}
