/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing SPTEs: the freeze protocol of the mirror root, the single
 * compare-exchange of the direct root, zaps under either lock mode, and the
 * teardown of a table that was unlinked.  Every write that involves the
 * frozen value lives in this file.
 *
 * Making a mirror SPTE present (mmu_lock held for read):
 *   1. compare-exchange old -> FROZEN; on failure the caller's copy of the
 *      SPTE is refreshed and the fault retries;
 *   2. call the backend: link_table for a table, set_leaf for a leaf;
 *   3. store the new value, or on failure store the old value back.
 * Only the thread that froze an SPTE writes it next, and every walk that
 * meets FROZEN retries before allocating, so the backend always sees a
 * parent table linked before anything below it.
 *
 * Removing (mmu_lock held for write, must not fail): a mirror leaf goes
 * through remove_leaf; an unlinked table has every entry frozen, its
 * leaves removed and child tables torn down first, then free_table, then
 * it is freed after a grace period.  A backend that fails a removal puts
 * the MMU in the dead state and nothing it may reference is freed.
 *
 * Demoting a private huge leaf (may fail): the new table is filled with
 * the 512 smaller leaves first, the leaf is frozen while demote_leaf
 * works (with a plain store under mmu_lock held for write, for a zap; by
 * compare-exchange under mmu_lock held for read, for a fault), then the
 * table is linked, or on failure the leaf is stored back and the table
 * was never reachable.
 */
#include "iter.h"

void tdp_mmu_set_dead(struct tdp_mmu *mmu, const char *why)
{
	if (!tdp_mmu_dead(mmu))
		tdp_log_err("MMU is dead: %s", why);
	tdp_flag_set(&mmu->dead, true);
}

/*
 * spte_changed_n() - account a change of @n entries in a row of one table
 * of @op's root, the first at @gfn, @level, each from what @old is to
 * what @new_spte is (KVM's handle_changed_spte()).  Every change of an
 * entry that holds a leaf or a table is accounted here, so the live
 * counts match the tree by construction.  FROZEN and MMIO SPTEs count as
 * not present.  The rules:
 *
 *  - a leaf going or coming changes the live leaves at @level, a table
 *    going or coming the live tables at @level - 1;
 *  - a leaf replaced by a table (split, demote) brings the 512 leaves
 *    the table was filled with before it was linked;
 *  - a table replaced by a leaf: on the mirror root the backend merged
 *    its 512 leaves into the new one (promote, mmu_lock held for write,
 *    so nothing changed them); on the direct root (recovery) the caller
 *    tears the table down and each entry is accounted as it is removed;
 *  - a leaf that goes away without a replacement is a zapped leaf, and
 *    a dirty direct leaf is reported to the host (@old came from an
 *    exchange, was read under the write lock, or was read after the
 *    flush that ended hardware's access: its dirty bit is final);
 *  - a table that goes away other than by a promote is a zapped table;
 *  - every table that goes away is counted in mmu->tables_gone, before
 *    it can be freed (vCPUs' leaf-table caches check it).
 *
 * Tearing a removed table down is the caller's (handle_removed_spte(),
 * reclaim_unlinked()).
 */
static inline __attribute__((always_inline)) void
spte_changed_n(struct tdp_op *op, tdp_gfn_t gfn,
				  int level, tdp_spte_t old, tdp_spte_t new_spte,
				  int64_t n)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	int type = op->root->type;
	bool mirror = type == TDP_ROOT_MIRROR;
	bool was = tdp_spte_is_present(fmt, old);
	bool is = tdp_spte_is_present(fmt, new_spte);
	bool was_leaf = was && tdp_spte_is_leaf(fmt, old, level);
	bool is_leaf = is && tdp_spte_is_leaf(fmt, new_spte, level);

	if (was_leaf) {
		TDP_COUNT(&op->ctr, leaves[type][level], -n);
	} else if (was) {
		TDP_COUNT(&op->ctr, tables[type][level - 1], -n);
		tdp_atomic64_add(&op->mmu->tables_gone, n);
		if (is_leaf && mirror)
			TDP_COUNT(&op->ctr, leaves[type][level - 1],
				  -n * TDP_SPTES_PER_TABLE);
		else
			TDP_COUNT(&op->ctr, zapped_tables, n);
	}
	if (is_leaf) {
		TDP_COUNT(&op->ctr, leaves[type][level], n);
	} else if (is) {
		TDP_COUNT(&op->ctr, tables[type][level - 1], n);
		if (was_leaf)
			TDP_COUNT(&op->ctr, leaves[type][level - 1],
				  n * TDP_SPTES_PER_TABLE);
	}
	if (was_leaf && !is) {
		const struct tdp_host_ops *host = &op->mmu->cfg.host;

		TDP_COUNT(&op->ctr, zapped_leaves, n);
		if ((old & fmt->dirty) && host->mark_dirty && !mirror)
			host->mark_dirty(host->ctx, gfn,
					 (uint64_t)n * tdp_level_pages(level));
	}
}

/* One entry's change: see spte_changed_n(). */
static inline __attribute__((always_inline)) void tdp_spte_changed(struct tdp_op *op, tdp_gfn_t gfn, int level,
			     tdp_spte_t old, tdp_spte_t new_spte)
{
	spte_changed_n(op, gfn, level, old, new_spte, 1);
}

/* Count a backend call that failed: *@busy for -EBUSY, else *@error. */
static void count_backend_failure(struct tdp_op *op, int ret, uint64_t *busy,
				  uint64_t *error)
{
	tdp_count(&op->ctr, ret == -EBUSY ? busy : error, 1);
}

static int mirror_set_spte_atomic(struct tdp_op *op, struct tdp_iter *it,
				  tdp_spte_t new_spte, struct tdp_table *child)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_private_backend *be = &mmu->backend;
	tdp_spte_t old = it->old_spte;
	int ret;

	/* The mirror only ever goes from non-present to present here. */
	TDP_ASSERT(!tdp_spte_is_present(&mmu->fmt, old));

	if (!tdp_spte_cmpxchg(it->sptep, &it->old_spte, mmu->fmt.frozen))
		return -EBUSY;

	if (child)
		ret = be->link_table(be->ctx, it->gfn, it->level,
				     child->ext_table);
	else
		ret = be->set_leaf(be->ctx, it->gfn, it->level,
				   tdp_spte_pfn(&mmu->fmt, new_spte));
	if (ret) {
		/* Unfreeze: the entry and the caller's view are as before. */
		tdp_spte_write_release(it->sptep, old);
		count_backend_failure(op, ret, &op->ctr.set->backend_busy,
				      &op->ctr.set->backend_errors);
		return ret;
	}
	tdp_spte_write_release(it->sptep, new_spte);
	it->old_spte = new_spte;
	return 0;
}

/*
 * tdp_set_spte_atomic() - replace it->old_spte with @new_spte under
 * mmu_lock held for read.  @child is the table @new_spte points at, or
 * NULL for a leaf.  Returns 0; -EBUSY if another thread changed the SPTE
 * first (it->old_spte then holds the current value) or the backend was
 * busy; a backend's hard error.  On any failure the SPTE is unchanged.
 */
int tdp_set_spte_atomic(struct tdp_op *op, struct tdp_iter *it,
			tdp_spte_t new_spte, struct tdp_table *child)
{
	struct tdp_mmu *mmu = op->mmu;
	int ret;

	tdp_lockdep_assert_held_read(&mmu->mmu_lock);
	/* Nobody writes a frozen SPTE but the thread that froze it. */
	TDP_ASSERT(!tdp_spte_is_frozen(&mmu->fmt, it->old_spte));
	TDP_ASSERT(!it->yielded);

	if (tdp_root_is_mirror(op->root)) {
		ret = mirror_set_spte_atomic(op, it, new_spte, child);
		if (ret)
			return ret;
		tdp_spte_changed(op, it->gfn, it->level, mmu->fmt.nonpresent,
				 new_spte);
		return 0;
	}
	if (!tdp_spte_cmpxchg(it->sptep, &it->old_spte, new_spte))
		return -EBUSY;
	tdp_spte_changed(op, it->gfn, it->level, it->old_spte, new_spte);
	it->old_spte = new_spte;
	return 0;
}

/*
 * A present SPTE at @level went from @old to not present: account it, and
 * tear down the table it pointed at.
 */
static void handle_removed_spte(struct tdp_op *op, tdp_gfn_t gfn, int level,
				tdp_spte_t old, tdp_spte_t new_spte,
				struct tdp_removed_summary *sum)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;

	tdp_spte_changed(op, gfn, level, old, new_spte);
	if (!tdp_spte_is_leaf(fmt, old, level))
		tdp_handle_removed_table(op, tdp_spte_child(op->mmu, old), sum);
}

/* Remove one present mirror leaf through the backend; false if it failed. */
static bool mirror_remove_leaf(struct tdp_op *op, tdp_gfn_t gfn, int level,
			       tdp_spte_t old)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_private_backend *be = &mmu->backend;

	if (tdp_mmu_dead(mmu))
		return false;
	if (be->remove_leaf(be->ctx, gfn, level, tdp_spte_pfn(&mmu->fmt, old))) {
		tdp_mmu_set_dead(mmu, "private backend failed remove_leaf");
		return false;
	}
	return true;
}

/*
 * tdp_zap_spte_write_locked() - make the SPTE at @it non-present under
 * mmu_lock held for write, tearing down a table it pointed at.  A direct
 * leaf whose dirty bit hardware may still set is exchanged, not stored.
 * Returns 0, or -EIO when a mirror removal failed (the MMU is dead and the
 * SPTE keeps its old value).
 */
int tdp_zap_spte_write_locked(struct tdp_op *op, struct tdp_iter *it)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	tdp_spte_t old = it->old_spte;
	bool leaf;

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	TDP_ASSERT(tdp_spte_is_present(fmt, old));
	leaf = tdp_spte_is_leaf(fmt, old, it->level);

	if (tdp_root_is_mirror(op->root)) {
		if (leaf) {
			/* Frozen while the backend works: no reader may
			 * take the entry for a usable mapping. */
			tdp_spte_write(it->sptep, fmt->frozen);
			if (!mirror_remove_leaf(op, it->gfn, it->level, old)) {
				tdp_spte_write(it->sptep, old);
				op->err = -EIO;
				return -EIO;
			}
		}
		tdp_spte_write_release(it->sptep, fmt->nonpresent);
	} else {
		if (tdp_spte_has_volatile_bits(fmt, old, it->level))
			old = tdp_spte_xchg(it->sptep, fmt->nonpresent);
		else
			tdp_spte_write_release(it->sptep, fmt->nonpresent);
		tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	}
	it->old_spte = fmt->nonpresent;
	handle_removed_spte(op, it->gfn, it->level, old, fmt->nonpresent, NULL);
	return op->err;
}

/* Fill table @t, not reachable yet, with the 512 leaves one level down
 * that translate exactly as the huge leaf @huge at @it does. */
static void demote_fill(struct tdp_op *op, const struct tdp_iter *it,
			struct tdp_table *t, tdp_spte_t huge)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;

	tdp_table_init(t, it->gfn, it->level - 1, op->root->type);
	/* Plain stores, published by the release store of the link. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&t->spt[i],
			       tdp_spte_make_small(fmt, huge, it->level, i));
}

/*
 * The huge leaf @huge at @it is frozen by this thread: let the backend
 * demote it, then link @t in its place, or store @huge back.
 */
static int demote_frozen(struct tdp_op *op, struct tdp_iter *it,
			 struct tdp_table *t, tdp_spte_t huge)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	const struct tdp_private_backend *be = &mmu->backend;
	int level = it->level;
	int ret;

	ret = be->demote_leaf(be->ctx, it->gfn, level, tdp_spte_pfn(fmt, huge),
			      t->ext_table);
	if (ret) {
		tdp_spte_write_release(it->sptep, huge);
		it->old_spte = huge;
		count_backend_failure(op, ret, &op->ctr.set->demote_busy,
				      &op->ctr.set->demote_errors);
		return ret;
	}
	it->old_spte = tdp_spte_make_nonleaf(fmt, tdp_virt_to_pfn(t->spt));
	tdp_spte_write_release(it->sptep, it->old_spte);
	tdp_spte_changed(op, it->gfn, level, huge, it->old_spte);
	TDP_COUNT(&op->ctr, demotes, 1);
	return 0;
}

/*
 * tdp_demote_spte_write_locked() - split the present private huge leaf at
 * @it into table @t (allocated with a backend page, not linked anywhere)
 * of 512 leaves one level down that translate exactly as it did, through
 * the backend's demote_leaf.  mmu_lock held for write, mirror root only.
 * Returns 0: @t is linked and it->old_spte is the new non-leaf SPTE.
 * -EBUSY or a hard error of demote_leaf, -EIO when the MMU is dead: the
 * SPTE, the private tree and the counts of live objects are as before,
 * and @t is still the caller's.
 */
int tdp_demote_spte_write_locked(struct tdp_op *op, struct tdp_iter *it,
				 struct tdp_table *t)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	tdp_spte_t huge = it->old_spte;

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	TDP_ASSERT(tdp_root_is_mirror(op->root) && mmu->backend.demote_leaf);
	TDP_ASSERT(it->level > TDP_LEVEL_4K && tdp_spte_is_present(fmt, huge) &&
		   tdp_spte_is_leaf(fmt, huge, it->level));
	if (tdp_mmu_dead(mmu))
		return -EIO;

	demote_fill(op, it, t, huge);
	/* Frozen while the backend works, as for a removal. */
	tdp_spte_write(it->sptep, fmt->frozen);
	return demote_frozen(op, it, t, huge);
}

/*
 * tdp_demote_spte_atomic() - the same split under mmu_lock held for read
 * (a fault that needs a smaller mapping below a private huge leaf),
 * through the freeze protocol: compare-exchange the leaf to FROZEN, let
 * demote_leaf work, then link @t or store the leaf back.  Other faults
 * that meet the frozen entry retry; nobody else writes it.  Returns 0
 * (@t linked, it->old_spte the non-leaf SPTE); -EBUSY when the SPTE
 * changed first (it->old_spte refreshed) or the backend was busy; a hard
 * error of demote_leaf.  On failure nothing changed and @t is the
 * caller's.
 */
int tdp_demote_spte_atomic(struct tdp_op *op, struct tdp_iter *it,
			   struct tdp_table *t)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	tdp_spte_t huge = it->old_spte;
	int ret;

	tdp_lockdep_assert_held_read(&mmu->mmu_lock);
	TDP_ASSERT(tdp_root_is_mirror(op->root) && mmu->backend.demote_leaf);
	TDP_ASSERT(!it->yielded && it->level > TDP_LEVEL_4K &&
		   tdp_spte_is_present(fmt, huge) &&
		   tdp_spte_is_leaf(fmt, huge, it->level));

	demote_fill(op, it, t, huge);
	if (!tdp_spte_cmpxchg(it->sptep, &it->old_spte, fmt->frozen))
		return -EBUSY;
	ret = demote_frozen(op, it, t, huge);
	if (!ret)
		TDP_COUNT(&op->ctr, fault_demotes, 1);
	return ret;
}

/*
 * tdp_promote_spte_write_locked() - merge the private table linked at @it,
 * whose 512 entries are leaves that @huge (a leaf at it->level) replaces
 * exactly, through the backend's promote_leaf.  mmu_lock held for write,
 * mirror root only.  The entry is frozen while the backend works; on
 * success it holds @huge and the table, every entry frozen for walkers
 * still inside, is freed with its backend page after a grace period.
 * Returns 0; -EBUSY or the backend's refusal with nothing changed.
 */
int tdp_promote_spte_write_locked(struct tdp_op *op, struct tdp_iter *it,
				  tdp_spte_t huge)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	const struct tdp_private_backend *be = &mmu->backend;
	struct tdp_table *child = tdp_spte_child(mmu, it->old_spte);
	int level = it->level;
	int ret;

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	TDP_ASSERT(tdp_root_is_mirror(op->root) && be->promote_leaf);
	TDP_ASSERT(tdp_spte_is_leaf(fmt, huge, level));

	tdp_spte_write(it->sptep, fmt->frozen);
	ret = be->promote_leaf(be->ctx, it->gfn, level, tdp_spte_pfn(fmt, huge),
			       child->ext_table);
	if (ret) {
		tdp_spte_write_release(it->sptep, it->old_spte);
		count_backend_failure(op, ret, &op->ctr.set->promote_busy,
				      &op->ctr.set->promote_errors);
		return ret;
	}
	tdp_spte_write_release(it->sptep, huge);
	tdp_spte_changed(op, it->gfn, level, it->old_spte, huge);
	it->old_spte = huge;
	/* The backend merged the leaves: nothing to remove, only freeze. */
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&child->spt[i], fmt->frozen);
	TDP_COUNT(&op->ctr, promotes, 1);
	tdp_table_free_rcu(child);
	return 0;
}

/*
 * tdp_zap_spte_atomic() - make a direct SPTE non-present under mmu_lock
 * held for read, with compare-exchange, and add its span to the pending
 * flush.  Returns 0, or -EBUSY if the SPTE changed first (it->old_spte
 * holds the new value; the caller re-checks).
 *
 * The flush is needed on an invalidated root too: a vCPU that loaded the
 * root before the invalidation runs on it until its next VM entry, and
 * may have cached any translation the root held until it was cleared.
 * Nothing in the engine makes it leave guest mode, so only a host flush
 * issued after the clear removes that translation.
 */
int tdp_zap_spte_atomic(struct tdp_op *op, struct tdp_iter *it)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	tdp_spte_t old = it->old_spte;

	tdp_lockdep_assert_held_read(&mmu->mmu_lock);
	/* Mirror SPTEs are only removed with the write lock held. */
	TDP_ASSERT(!tdp_root_is_mirror(op->root));
	TDP_ASSERT(tdp_spte_is_present(fmt, old));

	if (!tdp_spte_cmpxchg(it->sptep, &it->old_spte, fmt->nonpresent))
		return -EBUSY;
	it->old_spte = fmt->nonpresent;
	tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	handle_removed_spte(op, it->gfn, it->level, old, fmt->nonpresent, NULL);
	return 0;
}

/*
 * tdp_unlink_table_write_locked() - unlink the present direct table entry
 * at @it, whose whole span a range zap covers, with one exchange, add its
 * span to the pending flush and queue the table on op->unlinked.  Its
 * entries are read only after that flush (tdp_flush_and_reclaim()): until
 * then a CPU may still walk the table and set accessed and dirty bits in
 * it, afterwards none can, so one pass with plain loads and stores sees
 * every dirty bit.  mmu_lock held for write.
 */
void tdp_unlink_table_write_locked(struct tdp_op *op, struct tdp_iter *it)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	struct tdp_table *t = tdp_spte_child(mmu, it->old_spte);

	tdp_lockdep_assert_held_write(&mmu->mmu_lock);
	TDP_ASSERT(!tdp_root_is_mirror(op->root));
	TDP_ASSERT(tdp_spte_is_present(fmt, it->old_spte) &&
		   !tdp_spte_is_leaf(fmt, it->old_spte, it->level));

	tdp_spte_xchg(it->sptep, fmt->nonpresent);
	tdp_flush_add(op, it->gfn, tdp_level_pages(it->level));
	tdp_spte_changed(op, it->gfn, it->level, it->old_spte, fmt->nonpresent);
	it->old_spte = fmt->nonpresent;
	t->next = op->unlinked;
	op->unlinked = t;
}

/*
 * The common table a zap unlinks: 512 present, clean 4 KiB leaves.  One
 * pass reads them (nothing changes them any more: no CPU after the flush,
 * no other writer under the write lock; a lockless tdp_fast_fix() may
 * only add rights), then one pass freezes them, as a plain clear would,
 * and the 512 are accounted as one run.  False, with nothing written,
 * for any other table.
 */
static bool reclaim_clean_leaf_table(struct tdp_op *op, struct tdp_table *t)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	const tdp_spte_t frozen = fmt->frozen;
	tdp_spte_t all = ~0ULL, any = 0, first;

	if (t->level != TDP_LEVEL_4K)
		return false;
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i += 4) {
		tdp_spte_t a = tdp_spte_read(&t->spt[i]);
		tdp_spte_t b = tdp_spte_read(&t->spt[i + 1]);
		tdp_spte_t c = tdp_spte_read(&t->spt[i + 2]);
		tdp_spte_t d = tdp_spte_read(&t->spt[i + 3]);

		all &= a & b & c & d;
		any |= a | b | c | d;
	}
	if (!(all & fmt->mmu_present) || (any & fmt->dirty))
		return false;
	first = tdp_spte_read(&t->spt[0]);
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++)
		tdp_spte_write(&t->spt[i], frozen);
	spte_changed_n(op, t->gfn, TDP_LEVEL_4K, first, frozen,
		       TDP_SPTES_PER_TABLE);
	return true;
}

/*
 * Tear down direct table @t, unlinked and flushed: each entry is read and
 * frozen with plain loads and stores, for walkers still inside (lockless
 * ones: tdp_lookup() reads, tdp_fast_fix() may compare-exchange a leaf,
 * which then fails or is lost with the table; no CPU sets A/D bits after
 * the flush).  Clean leaves are accounted as one run, dirty ones one by
 * one (each reported); child tables are torn down first.  The table is
 * freed after a grace period.
 */
static void reclaim_unlinked(struct tdp_op *op, struct tdp_table *t)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	/* Copies: the stores below could alias the format for the compiler. */
	const tdp_spte_t frozen = fmt->frozen, present = fmt->mmu_present;
	const tdp_spte_t dirty = fmt->dirty;
	const bool leaf_level = t->level == TDP_LEVEL_4K;
	uint64_t step = tdp_level_pages(t->level);
	tdp_spte_t clean = 0;
	int64_t nr_clean = 0;

	if (reclaim_clean_leaf_table(op, t)) {
		tdp_table_free_rcu(t);
		return;
	}
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t old = tdp_spte_read(&t->spt[i]);

		tdp_spte_write(&t->spt[i], frozen);
		if (!(old & present))
			continue;
		/* The common case, a clean leaf: one more for the run. */
		if (!(old & dirty) &&
		    (leaf_level || tdp_spte_is_leaf(fmt, old, t->level))) {
			clean = old;
			nr_clean++;
			continue;
		}
		tdp_spte_changed(op, t->gfn + (uint64_t)i * step, t->level, old,
				 frozen);
		if (!tdp_spte_is_leaf(fmt, old, t->level))
			reclaim_unlinked(op, tdp_spte_child(mmu, old));
	}
	if (nr_clean)
		spte_changed_n(op, t->gfn, t->level, clean, fmt->frozen, nr_clean);
	tdp_table_free_rcu(t);
}

/*
 * tdp_flush_and_reclaim() - issue @op's pending flush, then tear down the
 * tables the operation unlinked (tdp_unlink_table_write_locked()).  Every
 * walk that may unlink calls this instead of tdp_flush_issue() before it
 * drops mmu_lock or ends.
 */
void tdp_flush_and_reclaim(struct tdp_op *op)
{
	struct tdp_table *list = op->unlinked;

	op->unlinked = NULL;
	tdp_flush_issue(op);
	while (list) {
		struct tdp_table *t = list;

		list = t->next;
		t->next = NULL;
		reclaim_unlinked(op, t);
	}
}

/*
 * Freeze one entry of an unlinked table and return what it held.  With the
 * read lock another thread may hold the entry frozen (a freezer in the
 * middle of its protocol): exchange in a loop until the value replaced is
 * not FROZEN, so the freezer's final value is seen and torn down.
 */
static tdp_spte_t freeze_removed_entry(struct tdp_op *op, tdp_spte_t *sptep,
				       int level)
{
	const struct tdp_spte_format *fmt = &op->mmu->fmt;
	tdp_spte_t old;

	if (op->shared) {
		for (unsigned int spins = 0;; spins++) {
			old = tdp_spte_xchg(sptep, fmt->frozen);
			if (!tdp_spte_is_frozen(fmt, old))
				return old;
			if (spins > 64)
				tdp_cond_resched();
		}
	}
	old = tdp_spte_read(sptep);
	/* With the write lock held nobody else can hold an entry frozen. */
	TDP_ASSERT(!tdp_spte_is_frozen(fmt, old));
	if (tdp_spte_has_volatile_bits(fmt, old, level))
		return tdp_spte_xchg(sptep, fmt->frozen);
	tdp_spte_write(sptep, fmt->frozen);
	return old;
}

/*
 * tdp_handle_removed_table() - tear down table @t, already unlinked from
 * its parent: freeze every entry (forever: a walker still inside sees only
 * FROZEN and installs nothing), remove its leaves and child tables,
 * children before parent, hand a mirror table to free_table, and free it
 * after a grace period.  The caller flushed, or will flush, the span of
 * the parent entry.  @sum, if not NULL, receives the OR and the AND of
 * the values the leaves below @t, at every depth, held when they were
 * frozen.
 */
void tdp_handle_removed_table(struct tdp_op *op, struct tdp_table *t,
			      struct tdp_removed_summary *sum)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct tdp_spte_format *fmt = &mmu->fmt;
	bool mirror = t->root_type == TDP_ROOT_MIRROR;
	bool backend_ok = true;
	uint64_t step = tdp_level_pages(t->level);

	TDP_ASSERT(!mirror || !op->shared);

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_gfn_t gfn = t->gfn + (uint64_t)i * step;
		tdp_spte_t old = freeze_removed_entry(op, &t->spt[i], t->level);

		if (!tdp_spte_is_present(fmt, old))
			continue;
		/* The summary covers leaves at every depth. */
		if (sum && tdp_spte_is_leaf(fmt, old, t->level)) {
			sum->any |= old;
			sum->all &= old;
		}
		if (mirror && tdp_spte_is_leaf(fmt, old, t->level) &&
		    !mirror_remove_leaf(op, gfn, t->level, old))
			backend_ok = false;
		handle_removed_spte(op, gfn, t->level, old, fmt->frozen, sum);
	}

	if (mirror) {
		const struct tdp_private_backend *be = &mmu->backend;

		/*
		 * A child the backend could not remove still hangs below
		 * this table in the private tree: keep the backend page.
		 */
		if (!backend_ok || tdp_mmu_dead(mmu)) {
			t->ext_table = NULL;
			op->err = -EIO;
		} else if (be->free_table(be->ctx, t->gfn, t->level + 1,
					  t->ext_table)) {
			t->ext_table = NULL;
			tdp_mmu_set_dead(mmu, "private backend failed free_table");
			op->err = -EIO;
		}
	}
	tdp_table_free_rcu(t);
}
