/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "harness.h"

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

void menv_init_backend(struct ts_env *e, size_t ext_size,
		       unsigned int mmu_flags, unsigned int demote)
{
	const struct ts_env_opts o = {
		.backend = true,
		.ext_table_size = ext_size,
		.flags = mmu_flags,
		.demote = demote & MENV_DEMOTE,
		.demote_in_faults = (demote & MENV_DEMOTE_IN_FAULTS) ==
				    MENV_DEMOTE_IN_FAULTS,
		.promote = demote & MENV_PROMOTE,
	};

	ts_env_init_ok(e, &o);
	assert_non_null(e->vcpu);
}

void menv_init(struct ts_env *e, size_t ext_size, unsigned int mmu_flags)
{
	menv_init_backend(e, ext_size, mmu_flags, 0);
}

bool menv_lookup_leaf(struct tdp_mmu *mmu, tdp_gfn_t gfn, enum tdp_alias alias,
		      int *level, tdp_pfn_t *pfn)
{
	struct ts_leaf l = ts_lookup(mmu, gfn, alias);

	assert_int_equal(l.ret, 0);
	assert_false(l.frozen);
	assert_in_range(l.level, TDP_LEVEL_4K, TS_ROOT_LEVEL);
	if (!l.present)
		return false;
	if (level)
		*level = l.level;
	if (pfn)
		*pfn = l.pfn - (gfn - l.base);
	return true;
}

void menv_teardown_dead(struct ts_env *e)
{
	tdp_vcpu_destroy(e->vcpu);
	e->vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(e->mmu), -EIO);
	assert_true(tdp_mmu_is_dead(e->mmu));
	ts_forbid_calls(e->be, true);
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
