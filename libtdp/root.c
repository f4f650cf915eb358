/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Roots: allocation or reuse by role, reference counting, invalidation and
 * freeing.  Invalidated roots are zapped by zap.c.
 *
 * Lock order: mmu_lock, then roots_mutex.  A root stays on mmu->roots until
 * its last reference is put; the root and its table are freed after a
 * grace period, so lockless walkers that loaded it finish first.
 */
#include "iter.h"

static void root_free_rcu_cb(struct rcu_head *head)
{
	struct tdp_root *root;
	struct tdp_mmu *mmu;

	tdp_rcu_callback_begin();
	root = tdp_rcu_head_container(head, struct tdp_root, rcu);
	mmu = root->table->mmu;
	tdp_table_free_now(root->table);
	tdp_atomic64_add(&mmu->roots_freed, 1);
	tdp_free(root);
	tdp_rcu_callback_end();
}

void tdp_root_put(struct tdp_mmu *mmu, struct tdp_root *root)
{
	if (!mmu || !root)
		return;
	if (tdp_atomic_add(&root->refcount, -1) != 0)
		return;

	/* The MMU holds a reference to every valid root. */
	TDP_ASSERT(tdp_flag_read(&root->invalid));

	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root **pp = &mmu->roots; *pp; pp = &(*pp)->next) {
		if (*pp == root) {
			*pp = root->next;
			break;
		}
	}
	tdp_mutex_unlock(&mmu->roots_mutex);

	/* Zapped before the MMU dropped its reference: only the root table
	 * itself is left. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		TDP_ASSERT(!tdp_spte_is_present(
			&mmu->fmt, tdp_spte_read(&root->table->spt[i])));
	tdp_atomic64_add(&mmu->ctr.tables[root->type][root->table->level],
			 -1);
	tdp_call_rcu(&root->rcu, root_free_rcu_cb);
}

/*
 * The next root after @prev (NULL: the first) whose type is in @types,
 * with a reference taken; the reference to @prev is put.  Roots whose last
 * reference is being dropped are skipped.
 */
struct tdp_root *tdp_root_next(struct tdp_mmu *mmu, struct tdp_root *prev,
			       unsigned int types, bool only_valid)
{
	struct tdp_root *r;

	tdp_mutex_lock(&mmu->roots_mutex);
	for (r = prev ? prev->next : mmu->roots; r; r = r->next) {
		if (!(types & (1U << r->type)))
			continue;
		if (only_valid && tdp_flag_read(&r->invalid))
			continue;
		if (tdp_atomic_inc_not_zero(&r->refcount))
			break;
	}
	tdp_mutex_unlock(&mmu->roots_mutex);
	if (prev)
		tdp_root_put(mmu, prev);
	return r;
}

/* The first root for tdp_for_each_root(): mmu_lock held, either mode. */
struct tdp_root *tdp_root_first(struct tdp_mmu *mmu, unsigned int types,
				bool only_valid)
{
	tdp_lockdep_assert_held(&mmu->mmu_lock);
	return tdp_root_next(mmu, NULL, types, only_valid);
}

/* Take a reference to the valid root of @type, if any; roots_mutex held. */
static struct tdp_root *valid_root_get_locked(struct tdp_mmu *mmu, int type)
{
	struct tdp_root *r = mmu->valid_root[type];

	if (r && tdp_atomic_inc_not_zero(&r->refcount))
		return r;
	return NULL;
}

/*
 * Publish @root as the valid root of its type with @refs references (the
 * MMU's own plus the caller's); roots_mutex held.
 */
static void root_install_locked(struct tdp_mmu *mmu, struct tdp_root *root,
				int refs)
{
	root->refcount = refs;
	root->next = mmu->roots;
	mmu->roots = root;
	tdp_rcu_assign_pointer(mmu->valid_root[root->type], root);
	tdp_atomic64_add(&mmu->ctr.tables[root->type][root->table->level], 1);
	tdp_atomic64_add(&mmu->roots_allocated, 1);
}

/* A root of @type with an empty table, not yet published. */
static struct tdp_root *root_alloc(struct tdp_mmu *mmu, int type)
{
	struct tdp_root *root = tdp_zalloc(sizeof(*root));

	if (!root)
		return NULL;
	/* The private tree's root is the backend's own: no backend page. */
	root->table = tdp_table_alloc(mmu, false);
	if (!root->table) {
		tdp_free(root);
		return NULL;
	}
	root->type = type;
	tdp_table_init(root->table, 0, mmu->cfg.root_level, type);
	return root;
}

static void root_free_unused(struct tdp_root *root)
{
	tdp_table_free_now(root->table);
	tdp_free(root);
}

/* Create the valid root of @type at MMU creation; only the MMU holds it. */
int tdp_root_create_initial(struct tdp_mmu *mmu, int type)
{
	struct tdp_root *root = root_alloc(mmu, type);

	if (!root)
		return -ENOMEM;
	tdp_mutex_lock(&mmu->roots_mutex);
	root_install_locked(mmu, root, 1);
	tdp_mutex_unlock(&mmu->roots_mutex);
	return 0;
}

/*
 * Get a reference to the valid root of @type, allocating it (outside every
 * lock) if none is valid.  Takes roots_mutex and mmu_lock for read itself:
 * call it with neither held.  Concurrent callers all end up with the same
 * root: the install is re-checked under roots_mutex.
 */
int tdp_root_get_valid(struct tdp_mmu *mmu, int type,
			    struct tdp_root **out)
{
	struct tdp_root *root, *fresh;
	int ret;

	tdp_mutex_lock(&mmu->roots_mutex);
	root = valid_root_get_locked(mmu, type);
	tdp_mutex_unlock(&mmu->roots_mutex);
	if (root) {
		*out = root;
		return 0;
	}

	fresh = root_alloc(mmu, type);
	if (!fresh)
		return -ENOMEM;

	/* The read lock keeps invalidation and teardown out meanwhile. */
	tdp_read_lock(&mmu->mmu_lock);
	ret = tdp_mmu_usable(mmu);
	if (!ret) {
		tdp_mutex_lock(&mmu->roots_mutex);
		root = valid_root_get_locked(mmu, type);
		if (!root) {
			root_install_locked(mmu, fresh, 2);
			root = fresh;
			fresh = NULL;
		}
		tdp_mutex_unlock(&mmu->roots_mutex);
	}
	tdp_read_unlock(&mmu->mmu_lock);
	if (fresh)
		root_free_unused(fresh);
	if (!ret)
		*out = root;
	return ret;
}

int tdp_root_get(struct tdp_mmu *mmu, enum tdp_root_type type,
		 struct tdp_root **out)
{
	int ret;

	if (!mmu || !out || (type != TDP_ROOT_DIRECT && type != TDP_ROOT_MIRROR))
		return -EINVAL;
	if (type == TDP_ROOT_MIRROR && !mmu->has_mirror)
		return -EINVAL;
	ret = tdp_mmu_usable(mmu);
	if (ret)
		return ret;
	return tdp_root_get_valid(mmu, type, out);
}

enum tdp_root_type tdp_root_type_of(const struct tdp_root *root)
{
	return root->type;
}

bool tdp_root_is_valid(const struct tdp_root *root)
{
	return !tdp_flag_read(&root->invalid);
}

int tdp_root_refcount(const struct tdp_root *root)
{
	return tdp_atomic_read(&root->refcount);
}

int tdp_root_table_pfn(const struct tdp_root *root, tdp_pfn_t *pfn,
		       int *level)
{
	if (!root || !pfn || !level)
		return -EINVAL;
	/* The table is immutable for the root's life. */
	*pfn = tdp_virt_to_pfn(root->table->spt);
	*level = root->table->level;
	return 0;
}

/*
 * Mark the valid roots of @types invalid and schedule each for one zap.
 * mmu_lock held for write, so no fault is inside them.
 */
void tdp_roots_invalidate_locked(struct tdp_mmu *mmu, unsigned int types)
{
	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root *r = mmu->roots; r; r = r->next) {
		if (!(types & (1U << r->type)) || tdp_flag_read(&r->invalid))
			continue;
		tdp_flag_set(&r->invalid, true);
		tdp_atomic_set(&r->scheduled_zap, 1);
		if (mmu->valid_root[r->type] == r)
			tdp_rcu_assign_pointer(mmu->valid_root[r->type], NULL);
	}
	tdp_mutex_unlock(&mmu->roots_mutex);
}

int tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, enum tdp_alias alias)
{
	int ret;

	if (!mmu || !tdp_alias_ok(alias))
		return -EINVAL;
	/* The private tree lives until teardown. */
	if ((alias & TDP_ALIAS_PRIVATE) && mmu->has_mirror)
		return -EOPNOTSUPP;

	tdp_mmu_write_lock(mmu);
	ret = tdp_mmu_usable(mmu);
	if (!ret)
		tdp_roots_invalidate_locked(mmu,
					    tdp_alias_to_root_types(mmu, alias));
	tdp_write_unlock(&mmu->mmu_lock);
	return ret;
}

