/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Counters: folding an operation's or a vCPU's set into another, and the
 * statistics a caller reads.  Which counters exist is TDP_STATS_FIELDS
 * (include/tdp/stats.h); each change of an SPTE is counted in one place,
 * tdp_spte_changed() (freeze.c).
 */
#include "internal.h"

static void fold_field(uint64_t *dst, const uint64_t *src)
{
	uint64_t v = tdp_atomic64_read(src);

	if (v)
		tdp_atomic64_add(dst, (int64_t)v);
}

void tdp_counters_fold(struct tdp_counters *dst, const struct tdp_counters *src)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;

	for (size_t i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
		fold_field(&d[i], &s[i]);
}

int tdp_mmu_get_stats(const struct tdp_mmu *mmu, struct tdp_stats *out)
{
	struct tdp_counters sum = { 0 };
	struct tdp_mmu *m = (struct tdp_mmu *)mmu;

	if (!mmu || !out)
		return -EINVAL;
	tdp_mutex_lock(&m->vcpus_mutex);
	tdp_counters_fold(&sum, &mmu->ctr);
	for (const struct tdp_vcpu *v = mmu->vcpus; v; v = v->next)
		tdp_counters_fold(&sum, &v->ctr);
	tdp_mutex_unlock(&m->vcpus_mutex);

	memset(out, 0, sizeof(*out));
#define COPY_COUNTED(name, dims) \
	memcpy(&out->name, &sum.name, sizeof(out->name));
#define COPY_MMU(name, dims) \
	out->name = tdp_atomic64_read(&mmu->name);
	TDP_STATS_FIELDS(COPY_COUNTED, COPY_MMU)
#undef COPY_COUNTED
#undef COPY_MMU
	return 0;
}
