/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MMU lifetime, statistics, the invalidation sequence and the MMIO
 * generation.
 */
#include "iter.h"

void tdp_thread_register(void)
{
	tdp_rcu_thread_register();
	tdp_port_thread_register();
}

void tdp_thread_unregister(void)
{
	tdp_port_thread_unregister();
	tdp_rcu_thread_unregister();
}

static bool single_bit(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int check_config(const struct tdp_mmu_config *cfg)
{
	const struct tdp_private_backend *be = cfg->backend;
	unsigned int width;

	if (cfg->root_level != 4 && cfg->root_level != 5)
		return -EINVAL;
	width = cfg->gfn_bits ? cfg->gfn_bits
			      : (unsigned int)cfg->root_level * TDP_LEVEL_BITS;
	if (width < TDP_LEVEL_BITS ||
	    width > (unsigned int)cfg->root_level * TDP_LEVEL_BITS)
		return -EINVAL;
	if (!cfg->host.flush_range || !cfg->host.flush_all)
		return -EINVAL;
	if (cfg->flags & ~TDP_MMU_FORCE_YIELD)
		return -EINVAL;
	if (tdp_spte_format_check(cfg->format ? cfg->format
					      : &tdp_spte_format_ept))
		return -EINVAL;
	if (!be)
		return cfg->direct_bits ? -EINVAL : 0;
	if (!be->link_table || !be->set_leaf || !be->remove_leaf ||
	    !be->free_table || (be->demote_in_faults && !be->demote_leaf))
		return -EINVAL;
	/* The shared bit: one bit inside the GFN width, above 1 GiB. */
	if (!single_bit(cfg->direct_bits) ||
	    cfg->direct_bits >= (1ULL << width) ||
	    cfg->direct_bits < tdp_level_pages(TDP_LEVEL_1G + 1))
		return -EINVAL;
	return 0;
}

int tdp_mmu_create(const struct tdp_mmu_config *cfg, struct tdp_mmu **out)
{
	struct tdp_mmu *mmu;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	ret = check_config(cfg);
	if (ret)
		return ret;

	mmu = tdp_zalloc(sizeof(*mmu));
	if (!mmu)
		return -ENOMEM;
	mmu->cfg = *cfg;
	if (!mmu->cfg.gfn_bits)
		mmu->cfg.gfn_bits = (unsigned int)cfg->root_level * TDP_LEVEL_BITS;
	mmu->fmt = cfg->format ? *cfg->format : tdp_spte_format_ept;
	mmu->cfg.format = &mmu->fmt;
	mmu->has_mirror = cfg->backend != NULL;
	if (mmu->has_mirror)
		mmu->backend = *cfg->backend;
	mmu->cfg.backend = mmu->has_mirror ? &mmu->backend : NULL;
	mmu->gfn_limit = cfg->direct_bits ? cfg->direct_bits
					  : 1ULL << mmu->cfg.gfn_bits;

	ret = tdp_mmu_lock_init(&mmu->mmu_lock,
				cfg->flags & TDP_MMU_FORCE_YIELD);
	if (ret) {
		tdp_free(mmu);
		return ret;
	}
	tdp_mutex_init(&mmu->roots_mutex);
	tdp_mutex_init(&mmu->vcpus_mutex);
	tdp_mutex_init(&mmu->inval_mutex);

	ret = tdp_root_create_initial(mmu, TDP_ROOT_DIRECT);
	if (!ret && mmu->has_mirror)
		ret = tdp_root_create_initial(mmu, TDP_ROOT_MIRROR);
	if (ret) {
		/* Nothing is mapped: the teardown path frees what exists. */
		tdp_mmu_destroy(mmu);
		return ret;
	}
	*out = mmu;
	return 0;
}

/*
 * Zap every root under the write lock, each one once, and drop the MMU's
 * references.  A mirror root whose zap failed is leaked with everything
 * the backend may still reference.
 */
static void teardown_roots_locked(struct tdp_mmu *mmu)
{
	const unsigned int all = (1U << TDP_NR_ROOT_TYPES) - 1;
	struct tdp_counters local = { 0 };
	struct tdp_root *root;

	tdp_roots_invalidate_locked(mmu, all);
	tdp_for_each_root(mmu, root, all, false, false) {
		struct tdp_op op = tdp_op_on(mmu, root, false, &local);

		if (!tdp_atomic_xchg(&root->scheduled_zap, 0))
			continue;
		if (tdp_root_is_mirror(root) && tdp_mmu_dead(mmu))
			continue;
		if (tdp_zap_root_locked(&op) && tdp_root_is_mirror(root))
			continue;
		tdp_root_put(mmu, root);
	}
	tdp_counters_fold(&mmu->ctr, &local);
}

/*
 * Wait until no tdp_mmu_zap_invalidated_roots() call is inside the MMU:
 * one may still be zapping a root it claimed before teardown_roots_locked()
 * ran, which that function skipped.  torn_down is set, so a call that
 * takes roots_mutex after this one did is never counted; one counted
 * before is seen here.  mmu_lock must not be held: a zapper takes it to
 * finish its root.
 */
static void wait_for_root_zappers(struct tdp_mmu *mmu)
{
	for (;;) {
		int zappers;

		tdp_mutex_lock(&mmu->roots_mutex);
		zappers = tdp_atomic_read(&mmu->root_zappers);
		tdp_mutex_unlock(&mmu->roots_mutex);
		if (!zappers)
			return;
		tdp_cond_resched();
	}
}

int tdp_mmu_teardown(struct tdp_mmu *mmu)
{
	int nr_vcpus;

	if (!mmu)
		return -EINVAL;
	tdp_mutex_lock(&mmu->vcpus_mutex);
	nr_vcpus = mmu->nr_vcpus;
	tdp_mutex_unlock(&mmu->vcpus_mutex);
	if (nr_vcpus)
		return -EINVAL;
	/* Set once, never cleared: a second teardown needs no lock. */
	if (tdp_flag_read(&mmu->torn_down))
		return -ESHUTDOWN;

	tdp_mmu_write_lock(mmu);
	if (tdp_flag_read(&mmu->torn_down)) {
		tdp_write_unlock(&mmu->mmu_lock);
		return -ESHUTDOWN;
	}
	tdp_flag_set(&mmu->torn_down, true);
	teardown_roots_locked(mmu);
	/* A begin that ran before torn_down was set left its entry here. */
	tdp_mutex_lock(&mmu->inval_mutex);
	while (mmu->invals) {
		struct tdp_inval *iv = mmu->invals;

		mmu->invals = iv->next;
		tdp_free(iv);
	}
	tdp_mutex_unlock(&mmu->inval_mutex);
	tdp_write_unlock(&mmu->mmu_lock);
	wait_for_root_zappers(mmu);
	/* Every table and root freed by the zaps is gone after this. */
	tdp_rcu_barrier();
	return tdp_mmu_dead(mmu) ? -EIO : 0;
}

void tdp_mmu_destroy(struct tdp_mmu *mmu)
{
	if (!mmu)
		return;
	TDP_WARN_ON(mmu->nr_vcpus != 0);
	tdp_mmu_teardown(mmu);
	tdp_mutex_destroy(&mmu->inval_mutex);
	tdp_mutex_destroy(&mmu->vcpus_mutex);
	tdp_mutex_destroy(&mmu->roots_mutex);
	tdp_mmu_lock_destroy(&mmu->mmu_lock);
	tdp_free(mmu);
}

int tdp_mmu_exclusive(struct tdp_mmu *mmu, int (*fn)(void *arg), void *arg)
{
	int ret;

	if (!mmu || !fn)
		return -EINVAL;
	tdp_mmu_write_lock(mmu);
	/* Teardown sets the flag under the write lock: stable here. */
	if (tdp_flag_read(&mmu->torn_down)) {
		tdp_write_unlock(&mmu->mmu_lock);
		return -ESHUTDOWN;
	}
	tdp_rcu_read_lock();
	ret = fn(arg);
	tdp_rcu_read_unlock();
	tdp_write_unlock(&mmu->mmu_lock);
	return ret;
}

bool tdp_mmu_is_dead(const struct tdp_mmu *mmu)
{
	return mmu && tdp_mmu_dead(mmu);
}

const struct tdp_spte_format *tdp_mmu_format(const struct tdp_mmu *mmu)
{
	return mmu ? &mmu->fmt : NULL;
}

tdp_gfn_t tdp_mmu_direct_bits(const struct tdp_mmu *mmu)
{
	return mmu ? mmu->cfg.direct_bits : 0;
}

/* ---- invalidation sequence --------------------------------------------- */

uint64_t tdp_mmu_seq(const struct tdp_mmu *mmu)
{
	return mmu ? tdp_atomic64_read_acquire(&mmu->inval_seq) : 0;
}

/* Publish the span of all running invalidations; inval_mutex held. */
static void inval_publish_locked(struct tdp_mmu *mmu)
{
	tdp_gfn_t start = ~0ULL, end = 0;
	uint64_t n = 0;

	for (const struct tdp_inval *iv = mmu->invals; iv; iv = iv->next, n++) {
		start = iv->start < start ? iv->start : start;
		end = iv->end > end ? iv->end : end;
	}
	tdp_atomic64_set_release(&mmu->inval_start, n ? start : 0);
	tdp_atomic64_set_release(&mmu->inval_end, end);
	tdp_atomic64_set_release(&mmu->inval_in_progress, n);
}

int tdp_invalidate_begin(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	struct tdp_inval *iv;
	int ret;

	if (!tdp_gfn_range_ok(mmu, start, end))
		return -EINVAL;
	/* Allocated before the lock; freed unused on failure. */
	iv = tdp_zalloc(sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	iv->start = start;
	iv->end = end;

	tdp_mutex_lock(&mmu->inval_mutex);
	ret = tdp_mmu_usable(mmu);
	if (!ret) {
		iv->next = mmu->invals;
		mmu->invals = iv;
		inval_publish_locked(mmu);
		iv = NULL;
	}
	tdp_mutex_unlock(&mmu->inval_mutex);
	tdp_free(iv);
	return ret;
}

int tdp_invalidate_end(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end)
{
	struct tdp_inval *iv = NULL;
	int ret;

	if (!tdp_gfn_range_ok(mmu, start, end))
		return -EINVAL;
	tdp_mutex_lock(&mmu->inval_mutex);
	ret = tdp_mmu_usable(mmu);
	if (!ret) {
		struct tdp_inval **pp;

		/* Only the exact range of a running begin ends. */
		for (pp = &mmu->invals; *pp; pp = &(*pp)->next)
			if ((*pp)->start == start && (*pp)->end == end)
				break;
		if (*pp) {
			iv = *pp;
			*pp = iv->next;
			/* Faults that resolved their PFN before this retry. */
			tdp_atomic64_set_release(&mmu->inval_seq,
						 mmu->inval_seq + 1);
			inval_publish_locked(mmu);
		} else {
			ret = -EINVAL;
		}
	}
	tdp_mutex_unlock(&mmu->inval_mutex);
	tdp_free(iv);
	return ret;
}

/* ---- MMIO generation ----------------------------------------------------- */

uint32_t tdp_mmu_mmio_generation(const struct tdp_mmu *mmu)
{
	return mmu ? (uint32_t)tdp_atomic64_read(&mmu->mmio_gen) : 0;
}

int tdp_mmu_set_mmio_generation(struct tdp_mmu *mmu, uint32_t gen)
{
	int ret;

	if (!mmu)
		return -EINVAL;
	tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	if (!ret)
		tdp_atomic64_set(&mmu->mmio_gen, gen & TDP_MMIO_GEN_MASK);
	tdp_write_unlock(&mmu->mmu_lock);
	return ret;
}
