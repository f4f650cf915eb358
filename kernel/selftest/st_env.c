// SPDX-License-Identifier: LGPL-2.1-or-later
/* The environment of one test: an MMU, a vCPU, TLB callbacks, helpers. */
#include <linux/sched.h>

#include "st.h"

static void flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct st_env *e = ctx;

	spin_lock(&e->flush_lock);
	e->flush_range_calls++;
	if (e->flushed_start == e->flushed_end) {
		e->flushed_start = gfn;
		e->flushed_end = gfn + nr_pages;
	} else {
		e->flushed_start = min(e->flushed_start, gfn);
		e->flushed_end = max(e->flushed_end, gfn + nr_pages);
	}
	spin_unlock(&e->flush_lock);
}

static void flush_all(void *ctx)
{
	struct st_env *e = ctx;

	spin_lock(&e->flush_lock);
	e->flush_all_calls++;
	spin_unlock(&e->flush_lock);
}

void st_env_flush_reset(struct st_env *e)
{
	spin_lock(&e->flush_lock);
	e->flush_range_calls = 0;
	e->flush_all_calls = 0;
	e->flushed_start = 0;
	e->flushed_end = 0;
	spin_unlock(&e->flush_lock);
}

bool st_env_init(struct st *t, struct st_env *e, const struct st_env_opts *o)
{
	struct tdp_mmu_config cfg = {
		.root_level = o->root_level ? o->root_level : 4,
		.host = {
			.flush_range = flush_range,
			.flush_all   = flush_all,
			.ctx         = e,
		},
		.flags = o->flags,
	};
	int ret;

	memset(e, 0, sizeof(*e));
	e->t = t;
	spin_lock_init(&e->flush_lock);
	tdp_thread_register();
	if (o->backend) {
		e->direct_bits = ST_SHARED_BIT;
		e->be = ts_backend_create(cfg.root_level, e->direct_bits,
					  o->ext_table_size);
		if (!ST_TRUE(t, e->be != NULL))
			goto err;
		cfg.direct_bits = e->direct_bits;
		cfg.backend = ts_backend_ops(e->be);
	}
	ret = tdp_mmu_create(&cfg, &e->mmu);
	if (!ST_EQ(t, ret, 0))
		goto err;
	if (e->be)
		ts_backend_set_mmu(e->be, e->mmu);
	ret = tdp_vcpu_create(e->mmu, &e->vcpu);
	if (!ST_EQ(t, ret, 0))
		goto err;
	return true;

err:
	tdp_mmu_destroy(e->mmu);
	ts_backend_destroy(e->be);
	e->mmu = NULL;
	e->be = NULL;
	tdp_thread_unregister();
	return false;
}

u64 st_leaves(const struct tdp_stats *s, enum tdp_root_type type)
{
	u64 n = 0;

	for (int l = TDP_LEVEL_4K; l <= TDP_MAX_LEVEL; l++)
		n += s->leaves[type][l];
	return n;
}

u64 st_tables_below_root(const struct tdp_stats *s, enum tdp_root_type type,
			 int root_level)
{
	u64 n = 0;

	for (int l = TDP_LEVEL_4K; l < root_level; l++)
		n += s->tables[type][l];
	return n;
}

void st_env_teardown(struct st_env *e, int expect)
{
	struct st *t = e->t;
	struct tdp_stats s;

	if (!e->mmu)
		return;
	tdp_vcpu_destroy(e->vcpu);
	e->vcpu = NULL;
	ST_EQ(t, tdp_mmu_teardown(e->mmu), expect);
	ST_EQ(t, tdp_mmu_get_stats(e->mmu, &s), 0);
	if (!expect) {
		ST_EQ(t, s.pages_in_use, 0);
		for (int type = 0; type < TDP_NR_ROOT_TYPES; type++) {
			for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
				ST_EQ(t, s.tables[type][l], 0);
				ST_EQ(t, s.leaves[type][l], 0);
			}
		}
		ST_EQ(t, s.roots_allocated, s.roots_freed);
		if (e->be) {
			ST_EQ(t, ts_nr_tables(e->be), 0);
			ST_EQ(t, ts_nr_leaves(e->be), 0);
		}
	}
	if (e->be)
		ST_EQ(t, ts_violations(e->be), 0);
}

void st_env_destroy(struct st_env *e)
{
	if (!e->mmu)
		return;
	tdp_vcpu_destroy(e->vcpu);
	tdp_mmu_destroy(e->mmu);
	ts_backend_destroy(e->be);
	e->vcpu = NULL;
	e->mmu = NULL;
	e->be = NULL;
	tdp_thread_unregister();
}

void st_env_fini(struct st_env *e)
{
	st_env_teardown(e, 0);
	st_env_destroy(e);
}

int st_map(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	   enum tdp_alias alias, tdp_pfn_t pfn, unsigned int prot,
	   int max_level)
{
	struct tdp_fault f = {
		.fault_gfn =
			gfn | (alias == TDP_ALIAS_SHARED ? e->direct_bits : 0),
		.pfn = pfn,
		.prot = prot,
		.max_level = max_level,
		.mmu_seq = tdp_mmu_seq(e->mmu),
	};

	return tdp_map(vcpu, &f);
}

/*
 * Like a vCPU re-entering the guest: fault again while the engine says
 * RETRY.  A fault that cannot complete within a few seconds is reported
 * as RETRY (a livelock for the caller to flag).
 */
int st_map_retry(struct st_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		 enum tdp_alias alias, tdp_pfn_t pfn, unsigned int prot,
		 int max_level, unsigned long *retries)
{
	unsigned long give_up = jiffies + 5 * HZ;
	int ret;

	for (;;) {
		ret = st_map(e, vcpu, gfn, alias, pfn, prot, max_level);
		if (ret != TDP_FAULT_RETRY || time_after(jiffies, give_up))
			return ret;
		if (retries)
			(*retries)++;
		cond_resched();
	}
}

bool st_leaf(struct st_env *e, tdp_gfn_t gfn, enum tdp_alias alias, int *level,
	     tdp_pfn_t *pfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(e->mmu);
	tdp_spte_t spte;
	int lvl;

	if (tdp_lookup(e->mmu, gfn, alias, &spte, &lvl))
		return false;
	if (!tdp_spte_is_present(fmt, spte) ||
	    !tdp_spte_is_leaf(fmt, spte, lvl))
		return false;
	if (level)
		*level = lvl;
	if (pfn)
		*pfn = tdp_spte_pfn(fmt, spte) +
		       (gfn - st_round_down(gfn, lvl));
	return true;
}
