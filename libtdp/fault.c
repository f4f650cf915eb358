/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault path: vCPU contexts and tdp_map().
 *
 * A fault runs with mmu_lock held for read and the RCU read lock, and
 * changes SPTEs only with compare-exchange (the freeze protocol for the
 * mirror root).  Everything it may need to allocate is in the vCPU's cache,
 * topped up before the lock is taken, so -ENOMEM can only happen before
 * any SPTE changed.
 */
#include "iter.h"

int tdp_vcpu_create(struct tdp_mmu *mmu, struct tdp_vcpu **out)
{
	struct tdp_vcpu *vcpu;
	int ret;

	if (!mmu || !out)
		return -EINVAL;
	ret = tdp_mmu_usable(mmu);
	if (ret)
		return ret;
	vcpu = tdp_zalloc(sizeof(*vcpu));
	if (!vcpu)
		return -ENOMEM;
	vcpu->mmu = mmu;

	tdp_mutex_lock(&mmu->vcpus_mutex);
	vcpu->next = mmu->vcpus;
	mmu->vcpus = vcpu;
	mmu->nr_vcpus++;
	tdp_mutex_unlock(&mmu->vcpus_mutex);
	*out = vcpu;
	return 0;
}

void tdp_vcpu_destroy(struct tdp_vcpu *vcpu)
{
	struct tdp_mmu *mmu;

	if (!vcpu)
		return;
	mmu = vcpu->mmu;
	for (int type = 0; type < TDP_NR_ROOT_TYPES; type++)
		tdp_root_put(mmu, vcpu->root[type]);
	tdp_vcpu_cache_drain(vcpu);

	/* Unlink and fold the counters in one step for stats readers. */
	tdp_mutex_lock(&mmu->vcpus_mutex);
	for (struct tdp_vcpu **pp = &mmu->vcpus; *pp; pp = &(*pp)->next) {
		if (*pp == vcpu) {
			*pp = vcpu->next;
			break;
		}
	}
	mmu->nr_vcpus--;
	tdp_counters_fold(&mmu->ctr, &vcpu->ctr);
	tdp_mutex_unlock(&mmu->vcpus_mutex);
	tdp_free(vcpu);
}

int tdp_vcpu_topup(struct tdp_vcpu *vcpu)
{
	if (!vcpu)
		return -EINVAL;
	return tdp_vcpu_cache_topup(vcpu);
}

/* The slow half of vcpu_load_root(): put the old root, take the valid one. */
static int vcpu_reload_root(struct tdp_vcpu *vcpu, int type)
{
	struct tdp_root *old = vcpu->root[type];
	struct tdp_root *root;
	int ret;

	ret = tdp_root_get_valid(vcpu->mmu, type, &root);
	if (ret)
		return ret;
	vcpu->root[type] = root;
	vcpu->leaf_cache[type].table = NULL;
	tdp_root_put(vcpu->mmu, old);
	return 0;
}

/*
 * Make sure the vCPU holds the valid root of @type; outside mmu_lock.  The
 * root may still be invalidated before the lock is taken: tdp_map()
 * re-checks under the lock.
 */
static inline int vcpu_load_root(struct tdp_vcpu *vcpu, int type)
{
	struct tdp_root *old = vcpu->root[type];

	if (TDP_LIKELY(old && !tdp_flag_read(&old->invalid)))
		return 0;
	return vcpu_reload_root(vcpu, type);
}

int tdp_vcpu_load_root(struct tdp_vcpu *vcpu, enum tdp_alias alias,
		       tdp_pfn_t *root_pfn, int *root_level)
{
	int ret;

	if (!vcpu || !root_pfn || !root_level || alias != TDP_ALIAS_SHARED)
		return -EINVAL;
	ret = tdp_mmu_usable(vcpu->mmu);
	if (!ret)
		ret = vcpu_load_root(vcpu, TDP_ROOT_DIRECT);
	if (ret)
		return ret;
	*root_pfn = tdp_virt_to_pfn(vcpu->root[TDP_ROOT_DIRECT]->table->spt);
	*root_level = vcpu->root[TDP_ROOT_DIRECT]->table->level;
	return 0;
}

/*
 * An invalidation overlapping [gfn, gfn + pages) is running, or one ended
 * since @seq.  The span is what the leaf may map: a huge leaf must not
 * cover a GFN whose backing is being revoked.
 */
static bool fault_is_stale(const struct tdp_mmu *mmu, tdp_gfn_t gfn,
			   uint64_t pages, uint64_t seq)
{
	/* Acquire: a span from after an end comes with that end's seq. */
	if (tdp_atomic64_read_acquire(&mmu->inval_in_progress) &&
	    gfn + pages > tdp_atomic64_read_acquire(&mmu->inval_start) &&
	    gfn < tdp_atomic64_read_acquire(&mmu->inval_end))
		return true;
	return tdp_atomic64_read_acquire(&mmu->inval_seq) != seq;
}

static int busy_to_retry(int ret)
{
	return ret == -EBUSY ? TDP_FAULT_RETRY : ret;
}

/* The PFN a present leaf maps for @gfn. */
static tdp_pfn_t leaf_pfn_for(const struct tdp_spte_format *fmt, tdp_spte_t leaf,
			      tdp_gfn_t leaf_gfn, tdp_gfn_t gfn)
{
	return tdp_spte_pfn(fmt, leaf) + (gfn - leaf_gfn);
}

/*
 * A huge leaf covers the faulting GFN but the fault allows only smaller
 * mappings: replace it with a fully populated table of smaller leaves that
 * translate exactly as it did, then let the walk step down.
 */
static int split_huge_leaf(struct tdp_op *op, struct tdp_vcpu *vcpu,
			   struct tdp_iter *it)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	struct tdp_table *t = tdp_vcpu_cache_take(vcpu, false);
	tdp_spte_t huge = it->old_spte;
	int ret;

	tdp_table_init(t, it->gfn, it->level - 1, op->root->type);
	/* Not reachable yet: plain stores, published by the release
	 * compare-exchange below. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&t->spt[i],
			       tdp_spte_make_small(fmt, huge, it->level, i));

	ret = tdp_set_spte_atomic(op, it, tdp_spte_make_nonleaf(
						  fmt, tdp_virt_to_pfn(t->spt)),
				  t);
	if (ret) {
		tdp_vcpu_cache_return(vcpu, t);
		return busy_to_retry(ret);
	}
	return 0;
}

/*
 * The same for a private huge leaf: the backend demotes it under mmu_lock
 * held for read, through the freeze protocol (tdp_demote_spte_atomic()).
 * A busy backend, or another thread that changed the entry first, makes
 * the fault retry; a hard error is the fault's result.  Nothing changed
 * on failure.
 */
static int demote_huge_leaf(struct tdp_op *op, struct tdp_vcpu *vcpu,
			    struct tdp_iter *it)
{
	struct tdp_table *t = tdp_vcpu_cache_take(vcpu, true);
	int ret = tdp_demote_spte_atomic(op, it, t);

	if (ret) {
		tdp_vcpu_cache_return(vcpu, t);
		return busy_to_retry(ret);
	}
	return 0;
}

/* Link a fresh table below the non-present SPTE at @it. */
static int link_new_table(struct tdp_op *op, struct tdp_vcpu *vcpu,
			  struct tdp_iter *it)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	bool mirror = tdp_root_is_mirror(op->root);
	struct tdp_table *t = tdp_vcpu_cache_take(vcpu, mirror);
	int ret;

	tdp_table_init(t, it->gfn, it->level - 1, op->root->type);
	ret = tdp_set_spte_atomic(op, it,
				  tdp_spte_make_nonleaf(fmt,
							tdp_virt_to_pfn(t->spt)),
				  t);
	if (ret) {
		tdp_vcpu_cache_return(vcpu, t);
		return busy_to_retry(ret);
	}
	return 0;
}

/* Install (or upgrade) the leaf at the goal level. */
static int install_leaf(struct tdp_op *op, struct tdp_iter *it,
			const struct tdp_fault *f, tdp_gfn_t gfn,
			tdp_gfn_t tree_gfn)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	bool mirror = tdp_root_is_mirror(op->root);
	tdp_spte_t old = it->old_spte;
	tdp_spte_t new_spte;
	int ret;

	if (f->mmio) {
		uint32_t gen = (uint32_t)tdp_atomic64_read(&mmu->mmio_gen);

		if (tdp_spte_is_mmio(fmt, old) && tdp_spte_mmio_gen(fmt, old) == gen)
			return TDP_FAULT_SPURIOUS;
		if (tdp_spte_is_present(fmt, old))
			return -EINVAL;
		new_spte = tdp_spte_make_mmio(fmt, gfn, gen);
	} else if (tdp_spte_is_present(fmt, old)) {
		unsigned int have = tdp_spte_prot(fmt, old);

		/* Remapping a GFN needs a zap first. */
		if (leaf_pfn_for(fmt, old, it->gfn, tree_gfn) != f->pfn)
			return -EINVAL;
		if (mirror || (have & f->prot) == f->prot)
			return TDP_FAULT_SPURIOUS;
		new_spte = old | tdp_spte_make_leaf(fmt, 0, it->level, f->prot);
	} else {
		tdp_pfn_t base = f->pfn & ~(tdp_level_pages(it->level) - 1);
		/* Private memory is always mapped with full rights. */
		unsigned int prot = mirror ? TDP_PROT_RWX : f->prot;

		new_spte = tdp_spte_make_leaf(fmt, base, it->level, prot);
	}

	ret = tdp_set_spte_atomic(op, it, new_spte, NULL);
	return ret ? busy_to_retry(ret) : TDP_FAULT_FIXED;
}

/* The largest level <= @max_level at which @gfn and @pfn line up. */
static int fault_goal_level(tdp_gfn_t gfn, tdp_pfn_t pfn, int max_level)
{
	int level = max_level;

	while (level > TDP_LEVEL_4K &&
	       ((gfn ^ pfn) & (tdp_level_pages(level) - 1)))
		level--;
	return level;
}

/*
 * Walk toward @tree_gfn, linking missing tables and splitting huge leaves
 * above the goal level, then install the leaf.  @gfn is unaliased.
 */
static int map_walk(struct tdp_op *op, struct tdp_vcpu *vcpu,
		    const struct tdp_fault *f, tdp_gfn_t gfn, tdp_gfn_t tree_gfn,
		    uint64_t gone)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	int goal = f->mmio ? TDP_LEVEL_4K
			   : fault_goal_level(gfn, f->pfn, f->max_level);
	struct tdp_iter it;
	int ret;

	tdp_for_each_spte(it, op->root->table, fmt, tree_gfn, tree_gfn + 1) {
		tdp_spte_t spte = it.old_spte;
		bool present = tdp_spte_is_present(fmt, spte);

		/* Someone is mid-update here: retry before allocating. */
		if (tdp_spte_is_frozen(fmt, spte))
			return TDP_FAULT_RETRY;

		if (present && !tdp_spte_is_leaf(fmt, spte, it.level)) {
			/* Smaller mappings exist below: map at a lower level. */
			if (it.level == goal)
				goal--;
			continue;
		}
		if (it.level == goal)
			break;

		if (present) {
			/* A huge leaf above the goal level. */
			if (leaf_pfn_for(fmt, spte, it.gfn, tree_gfn) != f->pfn ||
			    f->mmio)
				return -EINVAL;
			if (!tdp_root_is_mirror(op->root))
				ret = split_huge_leaf(op, vcpu, &it);
			else if (op->mmu->backend.demote_in_faults)
				ret = demote_huge_leaf(op, vcpu, &it);
			else
				/* Private leaves have full rights and the
				 * backend cannot split them: nothing to do. */
				return TDP_FAULT_SPURIOUS;
		} else {
			ret = link_new_table(op, vcpu, &it);
		}
		if (ret)
			return ret;
	}

	/* The walk ended above the goal: the tree changed under us. */
	if (!it.valid || it.level != goal || it.gfn > tree_gfn)
		return TDP_FAULT_RETRY;
	if (it.level == TDP_LEVEL_4K)
		vcpu->leaf_cache[op->root->type] = (struct tdp_leaf_cache){
			.table = tdp_table_of_page(it.pt_path[TDP_LEVEL_4K]),
			.root = op->root,
			.gone = gone,
		};
	return install_leaf(op, &it, f, gfn, tree_gfn);
}

/*
 * The fault through the vCPU's leaf-table cache, when it holds the table
 * of 4 KiB entries that covers @tree_gfn and no table went away since it
 * was filled (struct tdp_leaf_cache): that table is linked, so a walk
 * from the root would reach it and install a 4 KiB leaf in it, whatever
 * the goal level.  Returns -EAGAIN when the cache does not apply (the
 * caller walks from the root), else what install_leaf() returns.
 * mmu_lock held for read, RCU read lock held since before @gone was read.
 */
static int map_cached(struct tdp_op *op, struct tdp_vcpu *vcpu,
		      const struct tdp_fault *f, tdp_gfn_t gfn,
		      tdp_gfn_t tree_gfn, uint64_t gone)
{
	const struct tdp_leaf_cache *c = &vcpu->leaf_cache[op->root->type];
	struct tdp_iter it;

	if (!c->table || c->root != op->root || c->gone != gone || f->mmio ||
	    tdp_gfn_round_down(tree_gfn, TDP_LEVEL_2M) != c->table->gfn)
		return -EAGAIN;
	it.sptep = &c->table->spt[tdp_spte_index(tree_gfn, TDP_LEVEL_4K)];
	it.old_spte = tdp_spte_read(it.sptep);
	/* Mid-update: the walk from the root decides. */
	if (tdp_spte_is_frozen(&op->mmu->fmt, it.old_spte))
		return -EAGAIN;
	it.gfn = tree_gfn;
	it.level = TDP_LEVEL_4K;
	it.valid = true;
	it.yielded = false;
	return install_leaf(op, &it, f, gfn, tree_gfn);
}

/* Check @f; on success *@gfn is the GFN without the shared bit and *@type
 * the tree it selects. */
static int check_fault(const struct tdp_mmu *mmu, const struct tdp_fault *f,
		       tdp_gfn_t *gfn, int *type)
{
	if (tdp_fault_gfn_decode(mmu, f->fault_gfn, gfn, type))
		return -EINVAL;
	if (!(f->prot & TDP_PROT_READ) || (f->prot & ~TDP_PROT_RWX))
		return -EINVAL;
	if (f->max_level < TDP_LEVEL_4K || f->max_level > TDP_LEVEL_1G)
		return -EINVAL;
	/* MMIO is shared memory. */
	if (f->mmio && *type != TDP_ROOT_DIRECT)
		return -EINVAL;
	return 0;
}

static int map_fault(struct tdp_vcpu *vcpu, const struct tdp_fault *f)
{
	struct tdp_mmu *mmu;
	struct tdp_op op;
	tdp_gfn_t gfn, bits;
	int type, ret;

	if (!vcpu || !f)
		return -EINVAL;
	mmu = vcpu->mmu;
	ret = check_fault(mmu, f, &gfn, &type);
	if (ret)
		return ret;
	ret = tdp_mmu_usable(mmu);
	if (ret)
		return ret;
	bits = tdp_root_gfn_bits(mmu, type);

	ret = tdp_vcpu_cache_topup(vcpu);
	if (ret)
		return ret;
	ret = vcpu_load_root(vcpu, type);
	if (ret)
		return ret;

	op = tdp_op_on(mmu, vcpu->root[type], true, &vcpu->ctr);
	tdp_read_lock(&mmu->mmu_lock);
	tdp_rcu_read_lock();
	ret = tdp_mmu_usable(mmu);
	if (!ret) {
		int span = f->mmio ? TDP_LEVEL_4K
				   : fault_goal_level(gfn, f->pfn, f->max_level);

		uint64_t gone = tdp_atomic64_read_acquire(&mmu->tables_gone);

		if (tdp_flag_read(&op.root->invalid) ||
		    fault_is_stale(mmu, tdp_gfn_round_down(gfn, span),
				   tdp_level_pages(span), f->mmu_seq))
			ret = TDP_FAULT_RETRY;
		else if ((ret = map_cached(&op, vcpu, f, gfn, gfn + bits,
					   gone)) == -EAGAIN)
			ret = map_walk(&op, vcpu, f, gfn, gfn + bits, gone);
	}
	if (tdp_flush_pending(&op))
		tdp_flush_issue(&op);
	tdp_rcu_read_unlock();
	tdp_read_unlock(&mmu->mmu_lock);

	if (ret == TDP_FAULT_FIXED)
		TDP_COUNT(&op.ctr, faults_fixed, 1);
	else if (ret == TDP_FAULT_SPURIOUS)
		TDP_COUNT(&op.ctr, faults_spurious, 1);
	else if (ret == TDP_FAULT_RETRY)
		TDP_COUNT(&op.ctr, faults_retried, 1);
	return ret;
}

/*
 * Faults take mmu_lock for read only, their demotes included; the port
 * counts the write locks each thread takes, so a fault that took one
 * anyway (through any path) shows in stats.fault_write_locks.
 */
int tdp_map(struct tdp_vcpu *vcpu, const struct tdp_fault *f)
{
	uint64_t locks = tdp_port_thread_write_locks();
	int ret = map_fault(vcpu, f);
	uint64_t taken = tdp_port_thread_write_locks() - locks;

	if (taken && vcpu) {
		struct tdp_ctr_ref ref = { .set = &vcpu->ctr,
					   .owner_only = true };

		TDP_COUNT(&ref, fault_write_locks, taken);
	}
	return ret;
}
