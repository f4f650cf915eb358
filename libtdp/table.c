/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Page tables: allocation (never under mmu_lock), the per-vCPU cache that
 * lets faults avoid allocating under the lock, and freeing after an RCU
 * grace period.
 */
#include "internal.h"

static void table_fill_nonpresent(struct tdp_table *t)
{
	tdp_spte_t np = t->mmu->fmt.nonpresent;

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&t->spt[i], np);
}

/*
 * tdp_table_alloc() - a table whose SPTEs are all non-present, with a
 * backend page when @with_ext and the MMU has a backend page size.
 * Lock: must not hold mmu_lock.  NULL on failure, nothing leaked.
 */
struct tdp_table *tdp_table_alloc(struct tdp_mmu *mmu, bool with_ext)
{
	struct tdp_table *t;
	int pages = 1;

	t = tdp_zalloc(sizeof(*t));
	if (!t)
		return NULL;
	t->mmu = mmu;
	t->spt = tdp_table_page_alloc();
	if (!t->spt)
		goto err_meta;
	if (with_ext && mmu->backend.ext_table_size) {
		t->ext_table = tdp_ext_page_alloc(mmu->backend.ext_table_size);
		if (!t->ext_table)
			goto err_page;
		pages++;
	}
	tdp_table_page_set_private(t->spt, t);
	table_fill_nonpresent(t);
	tdp_atomic64_add(&mmu->pages_in_use, pages);
	return t;

err_page:
	tdp_table_page_free(t->spt);
err_meta:
	tdp_free(t);
	return NULL;
}

/* Set a table's identity before it is linked. */
void tdp_table_init(struct tdp_table *t, tdp_gfn_t gfn, int level,
		    int root_type)
{
	t->gfn = gfn;
	t->level = level;
	t->root_type = root_type;
	t->next = NULL;
}

/*
 * tdp_table_free_now() - free a table no walker can reach (never linked, or
 * after its grace period).  A mirror table whose free_table failed has a
 * NULL ext_table: its backend page is leaked on purpose.
 */
void tdp_table_free_now(struct tdp_table *t)
{
	int pages = 1;

	if (t->ext_table) {
		tdp_ext_page_free(t->ext_table);
		pages++;
	}
	tdp_table_page_set_private(t->spt, NULL);
	tdp_table_page_free(t->spt);
	tdp_atomic64_add(&t->mmu->pages_in_use, -pages);
	tdp_free(t);
}

static void table_free_rcu_cb(struct rcu_head *head)
{
	tdp_rcu_callback_begin();
	tdp_table_free_now(tdp_rcu_head_container(head, struct tdp_table, rcu));
	tdp_rcu_callback_end();
}

/*
 * tdp_table_free_rcu() - free an unlinked table after a grace period, so
 * that walkers still inside it finish first (the entries are frozen, one
 * by one, after the unlink or after the flush that follows it: a walker
 * sees the old value or FROZEN).
 */
void tdp_table_free_rcu(struct tdp_table *t)
{
	tdp_call_rcu(&t->rcu, table_free_rcu_cb);
}

/* ---- vCPU cache ---------------------------------------------------------
 *
 * A fault links at most one table per level, so TDP_VCPU_CACHE_MIN ready
 * tables guarantee a fault never needs to allocate under mmu_lock.  With a
 * backend the vCPU also keeps as many backend pages, attached to a table
 * only when it becomes a mirror table.
 */
/* The slow half of tdp_vcpu_cache_topup(): allocate what is missing. */
int tdp_vcpu_cache_refill(struct tdp_vcpu *vcpu)
{
	struct tdp_mmu *mmu = vcpu->mmu;

	while (vcpu->cache_count < TDP_VCPU_CACHE_MIN) {
		struct tdp_table *t = tdp_table_alloc(mmu, false);

		if (!t)
			return -ENOMEM;
		t->next = vcpu->cache;
		vcpu->cache = t;
		vcpu->cache_count++;
	}
	if (!mmu->has_mirror || !mmu->backend.ext_table_size)
		return 0;
	while (vcpu->ext_count < TDP_VCPU_CACHE_MIN) {
		void *ext = tdp_ext_page_alloc(mmu->backend.ext_table_size);

		if (!ext)
			return -ENOMEM;
		tdp_atomic64_add(&mmu->pages_in_use, 1);
		vcpu->ext_cache[vcpu->ext_count++] = ext;
	}
	return 0;
}

struct tdp_table *tdp_vcpu_cache_take(struct tdp_vcpu *vcpu, bool mirror)
{
	struct tdp_table *t = vcpu->cache;

	/* The top-up guarantees a table for every level of one walk. */
	TDP_ASSERT(t != NULL);
	vcpu->cache = t->next;
	vcpu->cache_count--;
	t->next = NULL;
	if (mirror && vcpu->mmu->backend.ext_table_size) {
		TDP_ASSERT(vcpu->ext_count > 0);
		t->ext_table = vcpu->ext_cache[--vcpu->ext_count];
	}
	return t;
}

/* Give back a table that lost a race before it was linked. */
void tdp_vcpu_cache_return(struct tdp_vcpu *vcpu, struct tdp_table *t)
{
	if (t->ext_table) {
		vcpu->ext_cache[vcpu->ext_count++] = t->ext_table;
		t->ext_table = NULL;
	}
	table_fill_nonpresent(t);
	t->next = vcpu->cache;
	vcpu->cache = t;
	vcpu->cache_count++;
}

void tdp_vcpu_cache_drain(struct tdp_vcpu *vcpu)
{
	while (vcpu->cache) {
		struct tdp_table *t = vcpu->cache;

		vcpu->cache = t->next;
		tdp_table_free_now(t);
	}
	vcpu->cache_count = 0;
	while (vcpu->ext_count > 0) {
		tdp_ext_page_free(vcpu->ext_cache[--vcpu->ext_count]);
		tdp_atomic64_add(&vcpu->mmu->pages_in_use, -1);
	}
}
