/*
 * freeze.pml: the freeze protocol of the mirror root.  Faulting threads
 * link a table and install leaves through compare-exchange to FROZEN, a
 * backend call that may answer busy or fail, and a final store or a
 * rollback; a zapping writer removes leaves, unlinks the table, freezes
 * its entries for good and frees it after an RCU grace period; a lockless
 * lookup walks the tree meanwhile.
 *
 * Mirrors (file: function):
 *   fault()                 libtdp/fault.c: map_fault, map_walk
 *     (topup)                 tdp_vcpu_cache_topup, done in
 *                             link_new_table when the cache is empty
 *     link_new_table          link_new_table
 *     install_leaf            install_leaf (a 4 KiB leaf, no MMIO)
 *     mirror_set_spte_atomic  libtdp/freeze.c: tdp_set_spte_atomic,
 *                             mirror_set_spte_atomic
 *   zapper()                libtdp/zap.c: tdp_zap_range then
 *                           tdp_zap_root_locked (write lock, a yield
 *                           between the two and between the passes)
 *     zap_leaf                libtdp/freeze.c: tdp_zap_spte_write_locked
 *                             (a leaf: FROZEN, remove_leaf, non-present)
 *     zap_table               tdp_zap_spte_write_locked (a table entry)
 *     handle_removed_table    tdp_handle_removed_table,
 *                             freeze_removed_entry (write-lock case)
 *     table_free_rcu          libtdp/table.c: tdp_table_free_rcu
 *   lookup()                libtdp/lookup.c: tdp_lookup (RCU only)
 *   rcu()                   the grace period of liburcu's call_rcu
 *   be_*                    the private backend (include/tdp/backend.h):
 *                           link_table, set_leaf, remove_leaf, free_table
 *
 * Simplifications:
 *  - The tree has two levels: the root's entry 0 and, below it, a table
 *    of two 4 KiB entries.  Fault f maps entry (f - 1) % 2 of whatever
 *    table is linked, so faults 1 and 2 share a fresh parent table and
 *    fault 3 (NF=3) races fault 1 on the same GFN.  Entry values are
 *    EMPTY, FROZEN, LEAF, or TABLE + t for table t.  Each fault owns two
 *    table pages for its cache (the zapper unlinks once, so a fault
 *    links at most twice).
 *  - mmu_lock is an abstract writer-preferring reader-writer lock (the
 *    lock itself is model/lock.pml).  RCU read sections are a bit per
 *    thread; a table retired with call_rcu waits for the readers that
 *    were inside at that moment, and process rcu() frees it after.
 *  - The backend is a set of atomic steps on its own Secure-EPT state,
 *    run by the caller (a backend call is one request to a module that
 *    serializes its state and answers BUSY rather than wait).  It checks
 *    its contract with asserts, and link_table/set_leaf may answer BUSY
 *    or a hard error unless NO_BUSY is defined.  remove_leaf and
 *    free_table do not fail (the dead-MMU path is not modelled).
 *  - On a lost compare-exchange the fault either restarts from the root
 *    (TDP_FAULT_RETRY, what map_walk does) or decides again at the same
 *    entry from its refreshed copy (what tdp_set_spte_atomic's contract
 *    offers every caller, and what the engine's other callers, such as
 *    zap_spte_shared, rely on).  Both are explored.
 *  - NF=3 runs with NO_BUSY and NO_LOOKUP (P5 is checked with NF=2) to
 *    keep the state space within a CI machine's memory.
 *  - Direct-root paths (plain compare-exchange, zaps under the read lock,
 *    dirty bits) and huge pages are not modelled here (demote.pml covers
 *    private huge leaves).
 *
 * Properties:
 *  P1 the backend never sees a child before its parent is linked
 *     (be_set_leaf, be_link_table asserts);
 *  P2 nor a parent removed before its children (be_free_table);
 *  P3 nobody but the thread that froze an entry writes it (spte_write);
 *  P4 no reachable entry stays frozen once every thread is done, and the
 *     mirror equals the backend's tree (end check in init);
 *  P5 nothing is freed while a walker can reach it (walk_table);
 *  P6 with NO_BUSY, every fault completes: no non-progress cycle under
 *     weak fairness (pan -l -f).
 *
 * Negative variants (each must be rejected):
 *  BUG_SKIP_REFRESH       a lost compare-exchange leaves the caller's copy
 *                         stale: retrying in place never succeeds (P6);
 *  BUG_LINK_OVER_FROZEN   a walk that meets FROZEN links a table of its
 *                         own there instead of retrying (P3, P1);
 *  BUG_FREE_EARLY         an unlinked table is freed at once, before the
 *                         grace period (P5);
 *  BUG_NO_ROLLBACK        a failed backend call leaves the entry FROZEN
 *                         (P4).
 */

#ifndef NF
#define NF 2			/* faulting threads, 2 or 3 */
#endif
#define NTAB (2 * NF)		/* table pages; fault f owns 2f - 1, 2f */
#define NENT (1 + 2 * NTAB)	/* entry 0: the root's; then 2 per table */
#define LOOKUP (NF + 1)		/* thread ids: faults 1..NF, then these */
#define ZAPPER (NF + 2)

#define EMPTY	0
#define FROZEN	1
#define LEAF	2
#define TABLE	3		/* TABLE + t: table t is linked here */

/* fault and mirror_set_spte_atomic results */
#define OK	0
#define CHANGED	1		/* lost the compare-exchange (-EBUSY) */
#define BUSY	2		/* the backend answered -EBUSY */
#define HARD	3		/* the backend's hard error */

/* The entry of table @t for GFN index @j. */
#define ENT(t, j)	(1 + 2 * ((t) - 1) + (j))

/* ---- the mirror ---- */
byte ent[NENT];
byte owner[NENT];		/* the thread that froze ent[i] */

/* ---- mmu_lock, RCU, table pages ---- */
byte readers;
bool writer, writer_waiting;
byte rcu_in;			/* bit per thread inside a read section */
byte gp_wait[NTAB + 1];	/* readers table t still waits for */
bool retired[NTAB + 1], freed[NTAB + 1];

/* ---- the backend's Secure EPT ---- */
byte sept_root;			/* table linked at the root's entry, or 0 */
bool sept_leaf[NENT];		/* leaf mapped at ent index i */

byte finished;

/* ---- entries ---- */

/* A store to ent[@i] by thread @me (P3). */
inline spte_write(i, v)
{
	atomic {
		assert(ent[i] != FROZEN || owner[i] == me);
		ent[i] = v;
		if
		:: v == FROZEN -> owner[i] = me
		:: else -> owner[i] = 0
		fi
	}
}

/* Compare-exchange of ent[@i] from @old to @v; @old refreshed on failure. */
inline spte_cmpxchg(i, old, v, ok)
{
	atomic {
		if
		:: ent[i] == old -> spte_write(i, v); ok = 1
		:: else ->
			ok = 0;
#ifndef BUG_SKIP_REFRESH
			old = ent[i]
#endif
		fi
	}
}

/* ---- mmu_lock and RCU ---- */

inline read_lock()
{
	atomic { !writer && !writer_waiting -> readers++ }
}

inline read_unlock()
{
	readers--
}

inline write_lock()
{
	writer_waiting = 1;
	atomic { readers == 0 && !writer -> writer = 1; writer_waiting = 0 }
}

inline write_unlock()
{
	writer = 0
}

inline rcu_read_lock(me)
{
	rcu_in = rcu_in | (1 << me)
}

/* Leaving a read section ends the grace periods that waited for it. */
inline rcu_read_unlock(me)
{
	d_step {
		rcu_in = rcu_in & ~(1 << me);
		k = 1;
		do
		:: k <= NTAB -> gp_wait[k] = gp_wait[k] & ~(1 << me); k++
		:: else -> break
		od;
		k = 0
	}
}

/* Table @t, unlinked, is freed after the readers now inside have left. */
inline table_free_rcu(t)
{
	atomic {
		retired[t] = 1;
#ifdef BUG_FREE_EARLY
		freed[t] = 1
#else
		gp_wait[t] = rcu_in
#endif
	}
}

/* A walker reads an entry of table @t: it must not be freed (P5). */
inline walk_table(t)
{
	assert(t >= 1 && t <= NTAB && !freed[t])
}

/* ---- the backend ---- */

inline be_answer(ret)
{
	if
	:: ret = OK
#ifndef NO_BUSY
	:: ret = BUSY
	:: ret = HARD
#endif
	fi
}

/* link_table(root entry, t): read lock; the root is always linked. */
inline be_link_table(t, ret)
{
	atomic {
		assert(readers > 0 && !writer);
		assert(sept_root == 0);			/* P1 */
		assert(!sept_leaf[ENT(t, 0)] && !sept_leaf[ENT(t, 1)]);
		be_answer(ret);
		if
		:: ret == OK -> sept_root = t
		:: else
		fi
	}
}

/* set_leaf(t, j): read lock; table t linked (P1), the entry empty. */
inline be_set_leaf(t, j, ret)
{
	atomic {
		assert(readers > 0 && !writer);
		assert(sept_root == t);			/* P1 */
		assert(!sept_leaf[ENT(t, j)]);
		be_answer(ret);
		if
		:: ret == OK -> sept_leaf[ENT(t, j)] = 1
		:: else
		fi
	}
}

/* remove_leaf(t, j): write lock; the leaf is mapped in a linked table. */
inline be_remove_leaf(t, j)
{
	atomic {
		assert(writer);
		assert(sept_root == t && sept_leaf[ENT(t, j)]);	/* P2 */
		sept_leaf[ENT(t, j)] = 0
	}
}

/* free_table(t): write lock; every leaf below already removed (P2). */
inline be_free_table(t)
{
	atomic {
		assert(writer);
		assert(sept_root == t);
		assert(!sept_leaf[ENT(t, 0)] && !sept_leaf[ENT(t, 1)]);
		sept_root = 0
	}
}

/* ---- faults (mmu_lock held for read) ---- */

/*
 * mirror_set_spte_atomic: ent[@i] from @old (not present) to @v through
 * FROZEN; @t is the table linked (@v a table) or the one holding the leaf.
 */
inline mirror_set_spte_atomic(i, old, v, t, j, ret)
{
#ifndef BUG_LINK_OVER_FROZEN
	assert(old != FROZEN);	/* TDP_ASSERT in tdp_set_spte_atomic */
#endif
	spte_cmpxchg(i, old, FROZEN, ok);
	if
	:: !ok -> ret = CHANGED
	:: else ->
		if
		:: v >= TABLE -> be_link_table(t, ret)
		:: else -> be_set_leaf(t, j, ret)
		fi;
		if
		:: ret == OK -> spte_write(i, v); old = v
		:: else ->
#ifndef BUG_NO_ROLLBACK
			spte_write(i, old)	/* unfreeze */
#else
			skip
#endif
		fi
	fi
}

inline link_new_table(i, old, ret)
{
	/* tdp_vcpu_cache_topup (done before the lock in the code) */
	if
	:: spare == 0 ->
		assert(next_spare <= 2 * me);
		spare = next_spare;
		next_spare++
	:: else
	fi;
	/* tdp_table_init: the cache's page is not reachable, entries empty */
	assert(!retired[spare] && ent[ENT(spare, 0)] == EMPTY &&
	       ent[ENT(spare, 1)] == EMPTY);
	mirror_set_spte_atomic(i, old, TABLE + spare, spare, 0, ret);
	if
	:: ret == OK -> spare = 0
	:: else
	fi
}

inline install_leaf(i, old, t, ret)
{
	mirror_set_spte_atomic(i, old, LEAF, t, j, ret)
}

proctype fault(byte me)
{
	byte j = (me - 1) % 2;
	byte spare, next_spare = 2 * me - 1;
	byte old, t, i, ret, k;
	bool ok;

again:
	read_lock();
	rcu_read_lock(me);

	/* map_walk: the root's entry */
	i = 0;
	old = ent[0];
root_entry:
	if
	:: old == FROZEN ->
#ifndef BUG_LINK_OVER_FROZEN
		ret = BUSY; goto done	/* someone is mid-update: retry */
#else
		link_new_table(i, old, ret)
#endif
	:: old == EMPTY -> link_new_table(i, old, ret)
	:: old >= TABLE -> ret = OK
	fi;
	if
	:: ret == CHANGED ->
		if
		:: goto done		/* TDP_FAULT_RETRY */
		:: goto root_entry	/* decide again from the refreshed copy */
		fi
	:: ret != OK -> goto done
	:: else
	fi;

	/* the table's entry */
	t = old - TABLE;
	walk_table(t);
	i = ENT(t, j);
	old = ent[i];
leaf_entry:
	if
	:: old == FROZEN -> ret = BUSY
	:: old == LEAF -> ret = OK	/* TDP_FAULT_SPURIOUS */
	:: old == EMPTY -> install_leaf(i, old, t, ret)
	fi;
	if
	:: ret == CHANGED ->
		if
		:: skip
		:: goto leaf_entry
		fi
	:: else
	fi;
done:
	rcu_read_unlock(me);
	read_unlock();
	if
	:: ret == CHANGED || ret == BUSY -> goto again
	:: else		/* fixed, spurious, or the hard error returned */
	fi;
	finished++
}

/* ---- the zapper (mmu_lock held for write) ---- */

/* A present leaf at (t, j): FROZEN while the backend removes it. */
inline zap_leaf(t, j)
{
#ifndef BUG_LEAF_NO_FREEZE
	spte_write(ENT(t, j), FROZEN);
	be_remove_leaf(t, j);
	spte_write(ENT(t, j), EMPTY)
#else
	spte_write(ENT(t, j), EMPTY);
	be_remove_leaf(t, j)
#endif
}

/* Every present leaf below the root: zap_leafs_locked, or the 4 KiB pass. */
inline zap_leaves()
{
	if
	:: ent[0] >= TABLE ->
		t = ent[0] - TABLE;
		walk_table(t);
		if
		:: ent[ENT(t, 0)] == LEAF -> zap_leaf(t, 0)
		:: else
		fi;
		if
		:: ent[ENT(t, 1)] == LEAF -> zap_leaf(t, 1)
		:: else
		fi
	:: else
	fi
}

/* Freeze every entry of the unlinked table @t for good, removing leaves
 * first, then free it in the backend and after a grace period. */
inline handle_removed_table(t)
{
	j = 0;
	do
	:: j < 2 ->
		old = ent[ENT(t, j)];
		assert(old != FROZEN);	/* nobody else freezes under W */
		spte_write(ENT(t, j), FROZEN);
		if
		:: old == LEAF -> be_remove_leaf(t, j)
		:: else
		fi;
		j++
	:: else -> break
	od;
	be_free_table(t);
	table_free_rcu(t)
}

/* The 2 MiB pass: the root's entry, a table emptied or not. */
inline zap_table()
{
	if
	:: ent[0] >= TABLE ->
		t = ent[0] - TABLE;
		spte_write(0, EMPTY);
		handle_removed_table(t)
	:: else
	fi
}

/* tdp_iter_cond_resched: may drop and retake the lock. */
inline maybe_yield()
{
	if
	:: write_unlock(); write_lock()
	:: skip
	fi
}

proctype zapper()
{
	byte me = ZAPPER;
	byte t, j, old;

	write_lock();
	zap_leaves();			/* tdp_zap_range */
	write_unlock();
	write_lock();
	zap_leaves();			/* tdp_zap_root_locked, 4 KiB pass */
	maybe_yield();
	zap_table();			/* 2 MiB pass */
	write_unlock();
	finished++
}

/* ---- lockless readers ---- */

/* tdp_lookup of entry 0's GFN: RCU only, no mmu_lock. */
proctype lookup()
{
	byte me = LOOKUP;
	byte e, t, k;

	rcu_read_lock(me);
	e = ent[0];
	if
	:: e >= TABLE ->
		t = e - TABLE;
		walk_table(t);
		e = ent[ENT(t, 0)];
		walk_table(t)		/* still inside the table */
	:: else
	fi;
	rcu_read_unlock(me);
	finished++
}

/* call_rcu's callbacks: free a retired table once its readers left. */
#define RCU_FREE(t) \
	:: atomic { retired[t] && !freed[t] && gp_wait[t] == 0 -> freed[t] = 1 }

proctype rcu()
{
end:	do
	RCU_FREE(1)
	RCU_FREE(2)
	RCU_FREE(3)
	RCU_FREE(4)
#if NF > 2
	RCU_FREE(5)
	RCU_FREE(6)
#endif
	od
}

init
{
	byte t, i;

	atomic {
		run fault(1);
		run fault(2);
#if NF > 2
		run fault(3);
#endif
		run zapper();
#ifndef NO_LOOKUP
		run lookup();
#endif
		run rcu()
	}

	/* P4: every thread is done */
#ifndef NO_LOOKUP
	finished == NF + 2;
#else
	finished == NF + 1;
#endif
	atomic {
		assert(ent[0] != FROZEN);
		if
		:: ent[0] >= TABLE ->
			t = ent[0] - TABLE;
			assert(sept_root == t);
			assert(ent[ENT(t, 0)] != FROZEN && ent[ENT(t, 1)] != FROZEN);
			assert((ent[ENT(t, 0)] == LEAF) == sept_leaf[ENT(t, 0)]);
			assert((ent[ENT(t, 1)] == LEAF) == sept_leaf[ENT(t, 1)])
		:: else -> assert(sept_root == 0)
		fi;
		/* no leaf left in the backend below an unlinked table */
		i = 1;
		do
		:: i < NENT ->
			assert(!sept_leaf[i] || (ent[0] >= TABLE &&
			       (i == ENT(ent[0] - TABLE, 0) ||
			        i == ENT(ent[0] - TABLE, 1))));
			i++
		:: else -> break
		od
	}
}
