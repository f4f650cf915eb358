/*
 * demote.pml: demote and promote of a private (mirror) 2 MiB leaf, racing
 * 4 KiB faults, a zap that covers part of the leaf, and a lockless lookup.
 *
 * Configuration: one 2 MiB mirror entry E (its parent table is always
 * linked and is not modelled).  Its 512 4 KiB pages are abstracted to
 * NPAGES pages (4 by default, -DNPAGES=2 also works); page p originally
 * maps frame p, and E starts as a huge leaf mapping frame 0, in the mirror
 * and in the backend's Secure EPT alike.
 *
 * Processes and the code they mirror (inline blocks carry the C names;
 * sections come in the order of the C files, freeze.c, fault.c, zap.c,
 * huge.c, and inside a section in the order of the C functions):
 *   fault1        vCPU loop around tdp_map() (fault.c) for page F1_PAGE,
 *                 outside the zap range, max level 4 KiB, right frame:
 *                 it must demote E, then finds its page mapped (spurious).
 *   fault2        the same for page F2_PAGE, inside the zap range, with
 *                 frame F2_PAGE or (a guest that changed it) F2_PAGE+NPAGES;
 *                 after the zap it maps the page again through set_leaf.
 *     tdp_map             the caller's loop: fault again while RETRY
 *     map_fault           fault.c map_fault (read lock + RCU around the walk)
 *     map_walk            fault.c map_walk, from E down
 *     demote_huge_leaf    fault.c demote_huge_leaf
 *     tdp_demote_spte_atomic  freeze.c (with demote_fill, demote_frozen)
 *     install_leaf        fault.c install_leaf
 *     tdp_set_spte_atomic / mirror_set_spte_atomic  freeze.c (set_leaf)
 *   zapper        tdp_zap_range(ZSTART, ZEND, private) (zap.c)
 *     zap_range_roots, demote_range_ends, demote_range_end,
 *     demote_partial_leaf, zap_relock, zap_leafs_locked   zap.c
 *     tdp_iter_yield      iter.c (the yield of tdp_iter_cond_resched)
 *     tdp_demote_spte_write_locked, demote_fill, demote_frozen,
 *     tdp_zap_spte_write_locked, mirror_remove_leaf       freeze.c
 *   promoter      tdp_promote_private(0, NPAGES) (huge.c)
 *     promote_private_range, promote_root, collapsible_leaf  huge.c
 *     tdp_promote_spte_write_locked                          freeze.c
 *     tdp_table_free_rcu                                     table.c
 *   lookup        tdp_lookup() (lookup.c) of page LK_PAGE, private alias,
 *                 RCU only: the one walker that can be inside a table
 *                 while a write-locked thread unlinks it.
 *     table_free_rcu_cb  table.c: the call_rcu callback, run by the
 *                 promoter once every RCU reader that was inside when the
 *                 table was unlinked has left.
 *   done          (every process ends with it) the last process to end
 *                 checks the quiescent state.
 *   backend       not a process: link_table is not needed (the parent is
 *                 linked), demote_leaf, promote_leaf, set_leaf and
 *                 remove_leaf are each one atomic step on the backend's
 *                 own Secure-EPT state (be_E, be_leaf[]), which asserts
 *                 the contract of include/tdp/backend.h.
 *
 * Simplifications:
 *  - 512 pages -> NPAGES; TDP_DEMOTE_BUSY_TRIES 8 -> TRIES 2.
 *  - SPTE values: NPR (not present), FZ (frozen), LEAF(frame) (at E: the
 *    huge leaf with its first frame), TBL(t) (a table, t its identity).
 *    Rights, A/D bits, MMIO, the direct root and its flushes are left out.
 *  - mmu_lock is an abstract reader-writer lock: read_lock waits for no
 *    writer, write_lock for no writer and no reader, each one atomic step
 *    (lock.pml covers the real lock).  A writer's yield (needbreak, and
 *    the relock of demote_partial_leaf) is a free choice of the model.
 *  - RCU: a bit per process in rcu_in; tdp_table_free_rcu snapshots it
 *    into gp_wait; a reader leaving clears its bit from both; the table is
 *    freed once gp_wait is 0.  A freed table is never reused, so any walker
 *    that reaches it is caught.  Taking mmu_lock and the RCU read lock is
 *    one step (nothing that matters can happen between them).
 *  - Tables are ghost identities 0..MAXT-1.  The model takes the identity
 *    (from the vCPU cache or the zap's spare) and fills it (demote_fill)
 *    right after the entry is frozen instead of right before: the table
 *    is not reachable until linked, so nobody can tell.  On a failed
 *    demote it goes back (ghost only; in C the caller keeps the table).
 *    Allocation never fails (no -ENOMEM), the zap's spare is a flag.
 *  - Backend calls are atomic (the TDX module serializes its state and
 *    answers BUSY instead of waiting).  BUSY is a free choice for
 *    demote_leaf, promote_leaf and set_leaf unless -DNOBUSY; hard errors,
 *    promote refusals, remove_leaf failures and the dead MMU are left out.
 *    "No callback concurrent with a write-locked one" becomes, with atomic
 *    calls: a write-locked callback's caller holds mmu_lock for write (so
 *    no reader, hence no read-locked callback, is between its freeze and
 *    its store); a read-locked one's caller holds it for read.
 *  - Only walks toward pages of E: the iterator's steps above E, sideways
 *    past E, link_new_table and link_table (E is never non-present here)
 *    are left out.  tdp_handle_removed_table is not reached: the partial
 *    zap removes only leaves, and the promoted table is frozen by
 *    tdp_promote_spte_write_locked itself (the backend released it in
 *    promote_leaf), so no free_table either.  The second demote_range_end
 *    (ZEND - 1) never demotes: both ends lie in E, demoted by the first;
 *    tdp_iter_cond_resched never yields at the GFN a walk restarted at
 *    (yielded_gfn), so the zap can only yield between its 4 KiB entries.
 *    fault_is_stale, root invalidation and the counters other than the
 *    live leaves/tables are left out.  Folded into one atomic step (the
 *    writer holds mmu_lock for write, only the lookup can look, and it
 *    reads one entry): collapsible_leaf's reads, and the freezing of the
 *    512 entries after a promote.
 *
 * Properties (assert):
 *  1. after every backend step, each page outside [ZSTART, ZEND) is mapped
 *     in the Secure EPT, by the huge leaf or its small leaf, with its
 *     original frame (be_check_outside); a lookup of such a page that
 *     finds a leaf finds that frame too;
 *  2. at quiescence (done): the backend's map equals the mirror's entry
 *     by entry (the same huge leaf, or the same table with the same
 *     leaves), nothing reachable from E is FROZEN, the counts of live
 *     leaves (2 MiB, 4 KiB) and 4 KiB tables the code keeps match the
 *     tree, no table is left in hand or waiting for its grace period, and
 *     no lock is held;
 *  3. only the thread that froze an entry writes it next (ghost owner per
 *     entry, spte_write_*), and a thread holding mmu_lock for write never
 *     meets a FROZEN entry in the tree;
 *  4. a walker only reaches a table inside an RCU read-side section and
 *     never after it was freed (rcu_reach);
 *  fault1, whose page stays mapped, always ends TDP_FAULT_SPURIOUS;
 *  the backend's contract (be_*): demote_leaf only on a huge leaf and only
 *  with the lock mode the contract names, promote_leaf only on the linked
 *  table whose leaves are all mapped and contiguous from an aligned frame,
 *  set_leaf only on an empty entry of a linked table, remove_leaf only on
 *  a mapped leaf of a linked table.
 *
 * Liveness (-DNOBUSY, pan -l -f): no non-progress cycle under weak
 * fairness, i.e. every fault finishes once the backend is never busy.
 *
 * Macros: NPAGES (4), NOBUSY (backend never busy), and the negative
 * variants, each rejected by spin:
 *  BUG_DEMOTE_NO_FREEZE  a fault demotes without freezing E: two faults
 *                        both call demote_leaf (backend contract: demote
 *                        of a table; else property 2);
 *  BUG_ZAP_NO_DEMOTE     the zap removes the whole huge leaf it covers
 *                        only partly (property 1);
 *  BUG_PROMOTE_NO_GRACE  the promoted table is freed at once, not after a
 *                        grace period (property 4, with the lookup);
 *  BUG_SET_LEAF_IGNORE_BUSY  the fault that maps a page again after the
 *                        zap stores its leaf although set_leaf answered
 *                        BUSY (property 2: mirror and backend differ).
 */

#ifndef NPAGES
#define NPAGES	4
#endif
#define ZSTART	0			/* zap range [ZSTART, ZEND) */
#define ZEND	(NPAGES / 2)
#define F1_PAGE	(NPAGES - 1)		/* outside the zap range */
#define F2_PAGE	0			/* inside */
#define LK_PAGE	(NPAGES - 1)
#define TRIES	2			/* TDP_DEMOTE_BUSY_TRIES */
#define MAXT	3			/* table identities */
#define NDONE	5			/* fault1 fault2 zapper promoter lookup */

/* SPTE values */
#define NPR		0
#define FZ		1
#define LEAF(f)		((f) + 2)
#define TB		32
#define TBL(t)		(TB + (t))
#define PRESENT(v)	((v) >= 2)
#define IS_LEAF(v)	((v) >= 2 && (v) < TB)
#define IS_TBL(v)	((v) >= TB)
#define FRAME(v)	((v) - 2)
#define TID(v)		((v) - TB)
#define IX(t, p)	((t) * NPAGES + (p))

/* return values */
#define R_OK		0
#define R_BUSY		1	/* -EBUSY */
#define R_RETRY		2	/* TDP_FAULT_RETRY */
#define R_FIXED		3
#define R_SPURIOUS	4
#define R_INVAL		5	/* -EINVAL */
#define R_RESTART	6	/* demote_partial_leaf's 1 */

/* ghost states of a table identity */
#define T_UNUSED	0
#define T_INHAND	1	/* taken by a thread, not reachable */
#define T_LINKED	2
#define T_UNLINKED	3	/* waiting for its grace period */
#define T_FREED		4

#define NOBODY		255

#ifdef NOBUSY
#define MAY_BE_BUSY	false
#else
#define MAY_BE_BUSY	true
#endif
#define DEMOTE_IN_FAULTS	true

/* ---- the mirror ---- */
byte E = LEAF(0);
byte E_own;			/* ghost: _pid + 1 of the freezer, 0 */
byte tbl[MAXT * NPAGES];
byte tbl_own[MAXT * NPAGES];
byte tstate[MAXT];
/* live objects as the code counts them (account_leaf / account_table) */
byte c_leaf2m = 1;
byte c_leaf4k;
byte c_tbl4k;

/* ---- the backend's Secure EPT ---- */
byte be_E = LEAF(0);
byte be_leaf[NPAGES];

/* ---- mmu_lock, RCU ---- */
byte rd_mask;			/* readers, a bit per _pid */
bool wlocked;
byte wowner;			/* _pid + 1 of the writer, 0 */
byte rcu_in;			/* RCU readers, a bit per _pid */
byte gp_wait;			/* readers the pending grace period waits for */
byte gp_tbl = NOBODY;		/* the table waiting for it */

byte ndone;
hidden byte qt;		/* scratch of the end check */
hidden byte k;
hidden byte n;

/* ---------------- property 2 ---------------- */

/* property 2, at quiescence */
inline quiescence_check()
{
	assert(gp_tbl == NOBODY);
	assert(!wlocked && rd_mask == 0 && rcu_in == 0);
	assert(E != FZ && E == be_E);
	if
	:: IS_TBL(E) ->
		qt = TID(E);
		assert(tstate[qt] == T_LINKED);
		n = 0;
		for (k : 0 .. NPAGES - 1) {
			assert(tbl[IX(qt, k)] != FZ);
			assert(tbl[IX(qt, k)] == be_leaf[k]);
			if
			:: PRESENT(tbl[IX(qt, k)]) -> n++
			:: else -> skip
			fi
		}
		assert(c_leaf2m == 0 && c_tbl4k == 1 && c_leaf4k == n)
	:: IS_LEAF(E) ->
		for (k : 0 .. NPAGES - 1) {
			assert(be_leaf[k] == NPR)
		}
		assert(c_leaf2m == 1 && c_tbl4k == 0 && c_leaf4k == 0)
	:: else ->
		assert(c_leaf2m == 0 && c_tbl4k == 0 && c_leaf4k == 0)
	fi;
	for (k : 0 .. MAXT - 1) {
		assert(tstate[k] != T_INHAND && tstate[k] != T_UNLINKED);
		assert(tstate[k] != T_LINKED || E == TBL(k))
	}
}

/*
 * Each process ends with done(): the last one to finish checks the
 * quiescent state (the promoter finishes only after its table was freed).
 */
inline done()
{
	atomic {
		ndone++;
		if
		:: ndone == NDONE -> quiescence_check()
		:: else -> skip
		fi
	}
}

/* ---------------- locks ---------------- */

inline read_lock()
{
	atomic { !wlocked -> rd_mask = rd_mask | (1 << _pid) }
}

inline read_unlock()
{
	atomic { rd_mask = rd_mask & ~(1 << _pid) }
}

inline write_lock()
{
	atomic { !wlocked && rd_mask == 0 -> wlocked = true; wowner = _pid + 1 }
}

inline write_unlock()
{
	atomic { wlocked = false; wowner = 0 }
}

inline rcu_read_lock()
{
	rcu_in = rcu_in | (1 << _pid)
}

inline rcu_read_unlock()
{
	atomic {
		rcu_in = rcu_in & ~(1 << _pid);
		gp_wait = gp_wait & ~(1 << _pid)
	}
}

/* Property 4: a walker reaches table t only under RCU, never freed. */
inline rcu_reach(t)
{
	assert(rcu_in & (1 << _pid));
	assert(tstate[t] == T_LINKED || tstate[t] == T_UNLINKED)
}

/* ---------------- SPTE writes (property 3) ---------------- */

inline spte_write_E(v)
{
	atomic {
		assert(E != FZ || E_own == _pid + 1);
		E = v;
		E_own = (v == FZ -> _pid + 1 : 0)
	}
}

inline spte_write_T(i, v)
{
	atomic {
		assert(tbl[i] != FZ || tbl_own[i] == _pid + 1);
		tbl[i] = v;
		tbl_own[i] = (v == FZ -> _pid + 1 : 0)
	}
}

/* ---------------- tables (ghost) ---------------- */

/* tdp_vcpu_cache_take / the zap's spare: a table nobody can reach. */
inline table_take(t)
{
	t = 0;
	do
	:: tstate[t] == T_UNUSED -> break
	:: else -> t++; assert(t < MAXT)
	od;
	tstate[t] = T_INHAND
}

/* tdp_vcpu_cache_return / the zap keeps its spare: never reachable. */
inline table_return(t)
{
	assert(tstate[t] == T_INHAND);
	for (k : 0 .. NPAGES - 1) {
		tbl[IX(t, k)] = NPR
	}
	tstate[t] = T_UNUSED
}

/* table.c tdp_table_free_rcu */
inline tdp_table_free_rcu(t)
{
#ifdef BUG_PROMOTE_NO_GRACE
	/* property 4: freed while the lookup may still be inside */
	tstate[t] = T_FREED
#else
	assert(gp_tbl == NOBODY);
	tstate[t] = T_UNLINKED;
	gp_tbl = t;
	gp_wait = rcu_in
#endif
}

/*
 * The call_rcu callback of tdp_table_free_rcu (table_free_rcu_cb): frees
 * the table once every RCU reader that was inside when it was unlinked
 * has left.  Run by the promoter after it left its own RCU section and
 * mmu_lock: later than a callback thread may run it, but the only walker
 * that could tell, the lookup, keeps gp_wait non-zero while it is inside
 * and cannot reach the table once it is unlinked.
 */
inline table_free_rcu_cb()
{
	if
	:: gp_tbl != NOBODY ->
		atomic {
			gp_wait == 0 ->
			for (k : 0 .. NPAGES - 1) {
				tbl[IX(gp_tbl, k)] = NPR;
				tbl_own[IX(gp_tbl, k)] = 0
			}
			tstate[gp_tbl] = T_FREED;
			gp_tbl = NOBODY
		}
	:: else -> skip
	fi
}

/* ---------------- the backend ---------------- */

/* Property 1: pages outside the zap range keep their mapping. */
inline be_check_outside()
{
	for (k : 0 .. NPAGES - 1) {
		if
		:: k >= ZSTART && k < ZEND -> skip
		:: else ->
			assert((IS_LEAF(be_E) && FRAME(be_E) == 0) ||
			       (IS_TBL(be_E) && be_leaf[k] == LEAF(k)))
		fi
	}
}

inline be_write_locked()
{
	assert(wlocked && wowner == _pid + 1 && rd_mask == 0)
}

inline be_read_locked()
{
	assert(!wlocked && (rd_mask & (1 << _pid)))
}

inline be_busy(r)
{
	if
	:: MAY_BE_BUSY -> r = R_BUSY
	:: true -> r = R_OK
	fi
}

/* demote_leaf(gfn of E, 2 MiB, pfn, new_table t) */
inline be_demote_leaf(pfn, t, r)
{
	atomic {
		if
		:: wlocked -> be_write_locked()		/* a zap */
		:: else -> be_read_locked(); assert(DEMOTE_IN_FAULTS)
		fi;
		assert(IS_LEAF(be_E) && FRAME(be_E) == pfn);
		be_busy(r);
		if
		:: r == R_OK ->
			be_E = TBL(t);
			for (k : 0 .. NPAGES - 1) {
				be_leaf[k] = LEAF(pfn + k)
			}
		:: else -> skip
		fi;
		be_check_outside()
	}
}

/* promote_leaf(gfn of E, 2 MiB, pfn, old_table t) */
inline be_promote_leaf(pfn, t, r)
{
	atomic {
		be_write_locked();
		assert(IS_TBL(be_E) && TID(be_E) == t);
		assert(pfn % NPAGES == 0);
		for (k : 0 .. NPAGES - 1) {
			assert(be_leaf[k] == LEAF(pfn + k))
		}
		be_busy(r);
		if
		:: r == R_OK ->
			be_E = LEAF(pfn);
			for (k : 0 .. NPAGES - 1) {
				be_leaf[k] = NPR
			}
		:: else -> skip
		fi;
		be_check_outside()
	}
}

/* set_leaf(gfn of page p, 4 KiB, pfn) */
inline be_set_leaf(p, pfn, r)
{
	atomic {
		be_read_locked();
		assert(IS_TBL(be_E) && be_leaf[p] == NPR);
		be_busy(r);
		if
		:: r == R_OK -> be_leaf[p] = LEAF(pfn)
		:: else -> skip
		fi;
		be_check_outside()
	}
}

/* remove_leaf(gfn of page p, 4 KiB, pfn): never fails */
inline be_remove_leaf(p, pfn)
{
	atomic {
		be_write_locked();
		assert(IS_TBL(be_E) && be_leaf[p] == LEAF(pfn));
		be_leaf[p] = NPR;
		be_check_outside()
	}
}

#ifdef BUG_ZAP_NO_DEMOTE
/* remove_leaf(gfn of E, 2 MiB, pfn) */
inline be_remove_huge(pfn)
{
	atomic {
		be_write_locked();
		assert(IS_LEAF(be_E) && FRAME(be_E) == pfn);
		be_E = NPR;
		be_check_outside()
	}
}
#endif

/* ---------------- freeze.c ---------------- */

/*
 * mirror_set_spte_atomic for the 4 KiB entry of page p in table t (via
 * tdp_set_spte_atomic, set_leaf); old is the entry as read; sets r.
 */
inline mirror_set_spte_atomic(p, newv)
{
	atomic {
		rcu_reach(t);
		assert(old != FZ);	/* tdp_set_spte_atomic's TDP_ASSERT */
		if
		:: tbl[IX(t, p)] == old -> spte_write_T(IX(t, p), FZ); r = R_OK
		:: else -> old = tbl[IX(t, p)]; r = R_BUSY
		fi
	}
	if
	:: r == R_OK ->
		be_set_leaf(p, FRAME(newv), r);
		atomic {
			rcu_reach(t);
			if
#ifdef BUG_SET_LEAF_IGNORE_BUSY
			/* property 2: a busy set_leaf taken for done */
			:: r != R_OK ->
				spte_write_T(IX(t, p), newv); c_leaf4k++; r = R_OK
#else
			:: r != R_OK -> spte_write_T(IX(t, p), old)
#endif
			:: else -> spte_write_T(IX(t, p), newv); c_leaf4k++
			fi
		}
	:: else -> skip
	fi
}

/* tdp_zap_spte_write_locked of the present 4 KiB leaf old at (t, p) */
inline tdp_zap_spte_write_locked(p)
{
	atomic { rcu_reach(t); spte_write_T(IX(t, p), FZ) }
	be_remove_leaf(p, FRAME(old));		/* mirror_remove_leaf */
	atomic {
		rcu_reach(t);
		spte_write_T(IX(t, p), NPR);
		c_leaf4k--			/* handle_removed_spte */
	}
}

/* freeze.c demote_fill: the leaves that translate as @huge does. */
inline demote_fill(t, huge)
{
	for (k : 0 .. NPAGES - 1) {
		tbl[IX(t, k)] = LEAF(FRAME(huge) + k)
	}
}

/*
 * demote_frozen: E is frozen by this thread (with BUG_DEMOTE_NO_FREEZE,
 * not); t is filled.  Local: huge, t, r.
 */
inline demote_frozen()
{
	be_demote_leaf(FRAME(huge), t, r);
	if
	:: r != R_OK ->
		atomic { spte_write_E(huge); table_return(t) }
	:: else ->
		atomic {
			spte_write_E(TBL(t));
			tstate[t] = T_LINKED;
			c_leaf2m--;
			c_tbl4k++;
			c_leaf4k = c_leaf4k + NPAGES
		}
	fi
}

/* tdp_demote_spte_write_locked: old is the huge leaf; sets r. */
inline tdp_demote_spte_write_locked()
{
	huge = old;
	atomic {
		spte_write_E(FZ);		/* plain store, write lock */
		table_take(t);
		demote_fill(t, huge)
	}
	demote_frozen()
}

/* tdp_demote_spte_atomic: old is the huge leaf; sets r (old refreshed). */
inline tdp_demote_spte_atomic()
{
	huge = old;
#ifdef BUG_DEMOTE_NO_FREEZE
	/* backend contract (demote_leaf of a table; without it, property 2):
	 * no compare-exchange to FROZEN, E stays the huge leaf meanwhile */
	atomic { table_take(t); demote_fill(t, huge) }
	demote_frozen()
#else
	atomic {
		if
		:: E == huge ->
			spte_write_E(FZ);
			table_take(t);
			demote_fill(t, huge);
			r = R_OK
		:: else -> old = E; r = R_BUSY
		fi
	}
	if
	:: r == R_OK -> demote_frozen()
	:: else -> skip
	fi
#endif
}

/* tdp_promote_spte_write_locked: E (= old) is TBL(t); huge replaces it. */
inline tdp_promote_spte_write_locked()
{
	spte_write_E(FZ);
	be_promote_leaf(FRAME(huge), t, r);
	if
	:: r != R_OK -> spte_write_E(old)
	:: else ->
		spte_write_E(huge);
		atomic {
			rcu_reach(t);
			for (k : 0 .. NPAGES - 1) {
				spte_write_T(IX(t, k), FZ)
			}
			c_leaf4k = c_leaf4k - NPAGES;
			c_tbl4k--;
			c_leaf2m++;
			tdp_table_free_rcu(t)
		}
	fi
}

/* ---------------- fault.c ---------------- */

/* demote_huge_leaf: old is the huge leaf; ret R_OK or R_RETRY. */
inline demote_huge_leaf()
{
	tdp_demote_spte_atomic();
	ret = (r == R_OK -> R_OK : R_RETRY)	/* busy_to_retry */
}

/* install_leaf at page p of table t (the goal level); old as read. */
inline install_leaf(p, pfn)
{
	if
	:: PRESENT(old) ->
		/* a mirror leaf: spurious, or a remap that needs a zap */
		ret = (FRAME(old) != pfn -> R_INVAL : R_SPURIOUS)
	:: else ->
		mirror_set_spte_atomic(p, LEAF(pfn));
		ret = (r == R_OK -> R_FIXED : R_RETRY)
	fi
}

/* map_walk toward page p, goal 4 KiB, from E down. */
inline map_walk(p, pfn)
{
	old = E;
	ret = R_OK;
	if
	:: old == FZ -> ret = R_RETRY		/* someone is mid-update */
	:: IS_TBL(old) -> skip			/* step down */
	:: IS_LEAF(old) && FRAME(old) + p != pfn -> ret = R_INVAL
	:: IS_LEAF(old) && FRAME(old) + p == pfn ->
		demote_huge_leaf()		/* demote_in_faults */
	:: old == NPR ->
		/* link_new_table: E is never non-present here */
#ifndef BUG_ZAP_NO_DEMOTE
		assert(false);
#endif
		ret = R_INVAL
	fi;
	if
	:: ret == R_OK ->
		old = E;			/* try_step_down re-reads E */
		if
		:: IS_TBL(old) ->
			t = TID(old);
			atomic { rcu_reach(t); old = tbl[IX(t, p)] }
			if
			:: old == FZ -> ret = R_RETRY
			:: else -> install_leaf(p, pfn)
			fi
		:: else -> ret = R_RETRY	/* walk ended above the goal */
		fi
	:: else -> skip
	fi
}

inline map_fault(p, pfn)
{
	atomic { read_lock(); rcu_read_lock() }
	map_walk(p, pfn);
	atomic { rcu_read_unlock(); read_unlock() }
}

/* the vCPU: fault again from the root while tdp_map answers RETRY */
inline tdp_map(p, pfn)
{
	do
	:: map_fault(p, pfn);
	   if
	   :: ret == R_RETRY -> skip
	   :: else -> break
	   fi
	od
}

active proctype fault1()
{
	byte ret, r, old, huge, t;

	tdp_map(F1_PAGE, F1_PAGE);
	assert(ret == R_SPURIOUS);	/* its page is mapped all along */
	done()
}

active proctype fault2()
{
	byte ret, r, old, huge, t, pfn;

	if
	:: pfn = F2_PAGE
	:: pfn = F2_PAGE + NPAGES	/* another frame: a remap */
	fi;
	tdp_map(F2_PAGE, pfn);
	done()
}

/* ---------------- zap.c ---------------- */

/* zap_relock: drop mmu_lock and RCU, maybe allocate, take them again */
inline zap_relock(alloc)
{
	atomic { rcu_read_unlock(); write_unlock() }
	if
	:: alloc -> spare = true
	:: else -> skip
	fi;
	atomic { write_lock(); rcu_read_lock() }
}

/* iter.c tdp_iter_yield, write lock */
inline tdp_iter_yield()
{
	atomic { rcu_read_unlock(); write_unlock() }
	atomic { write_lock(); rcu_read_lock() }
}

/* demote_partial_leaf: old is E, a huge leaf covered partly; sets r. */
inline demote_partial_leaf()
{
	if
	:: !spare ->
		zap_relock(true);
		r = R_RESTART
	:: else ->
		tdp_demote_spte_write_locked();
		if
		:: r == R_OK -> spare = false; busy = 0
		:: else ->
			busy++;
			if
			:: busy >= TRIES -> skip	/* -EBUSY */
			:: else -> zap_relock(false); r = R_RESTART
			fi
		fi
	fi
}

/* demote_range_end at page gfn (every huge leaf here covers it partly) */
inline demote_range_end(gfn)
{
	rcu_read_lock();
	do
	:: true ->			/* (re)start at the root: E */
		old = E;
		assert(old != FZ);	/* property 3: write lock */
		r = R_OK;
		if
		:: IS_LEAF(old) -> demote_partial_leaf()
		:: else -> skip
		fi;
		if
		:: r == R_RESTART -> skip
		:: r == R_OK ->
			/* step down: the 4 KiB entry at gfn, nothing to do */
			atomic {
				old = E;
				assert(IS_TBL(old));
				t = TID(old);
				rcu_reach(t);
				old = tbl[IX(t, gfn)]
			}
			break
		:: else -> zret = r; break
		fi
	od;
	rcu_read_unlock()
}

/* zap_leafs_locked over [ZSTART, ZEND) */
inline zap_leafs_locked()
{
	rcu_read_lock();
	pos = ZSTART;				/* next_last_level_gfn */
	do
	:: pos >= ZEND -> break
	:: else ->
		ygfn = pos;			/* tdp_iter_restart */
		old = E;
		assert(old != FZ);		/* property 3: write lock */
		r = R_OK;
		if
		:: IS_LEAF(old) ->
#ifdef BUG_ZAP_NO_DEMOTE
			/* property 1: the whole huge leaf goes */
			atomic { spte_write_E(FZ) }
			be_remove_huge(FRAME(old));
			atomic { spte_write_E(NPR); c_leaf2m-- }
			break
#else
			demote_partial_leaf()
#endif
		:: else -> skip
		fi;
		if
		:: r == R_RESTART -> skip	/* restart at pos */
		:: r != R_OK && r != R_RESTART -> zret = r; break
		:: r == R_OK ->
			old = E;		/* try_step_down re-reads E */
			assert(IS_TBL(old));
			t = TID(old);
			restart = false;
			do
			:: pos >= ZEND -> break
			:: else ->
				/* tdp_iter_cond_resched */
				if
				:: pos != ygfn -> tdp_iter_yield(); restart = true; break
				:: true -> skip
				fi;
				atomic { rcu_reach(t); old = tbl[IX(t, pos)] }
				if
				:: PRESENT(old) -> tdp_zap_spte_write_locked(pos)
				:: else -> skip
				fi;
				pos++			/* try_step_side */
			od;
			if
			:: restart -> skip
			:: else -> break
			fi
		fi
	od;
	rcu_read_unlock()
}

inline demote_range_ends()
{
	demote_range_end(ZSTART);
	if
	:: zret == R_OK -> demote_range_end(ZEND - 1)
	:: else -> skip
	fi
}

inline zap_range_roots()
{
	zret = R_OK;
#ifndef BUG_ZAP_NO_DEMOTE
	demote_range_ends();	/* BUG_ZAP_NO_DEMOTE (property 1): no demote_leaf */
#endif
	if
	:: zret == R_OK -> zap_leafs_locked()
	:: else -> skip
	fi
}

inline tdp_zap_range()
{
	write_lock();
	zap_range_roots();
	write_unlock();
	spare = false			/* tdp_table_free_now(spare) */
}

active proctype zapper()
{
	byte zret, r, old, huge, t, busy, pos, ygfn;
	bool spare, restart;

	tdp_zap_range();
	done()
}

/* ---------------- huge.c ---------------- */

/* collapsible_leaf of table t: huge, or NPR */
inline collapsible_leaf()
{
	atomic {
		rcu_reach(t);
		huge = NPR;
		if
		:: IS_LEAF(tbl[IX(t, 0)]) && FRAME(tbl[IX(t, 0)]) % NPAGES == 0 ->
			huge = tbl[IX(t, 0)];
			for (k : 1 .. NPAGES - 1) {
				if
				:: !IS_LEAF(tbl[IX(t, k)]) -> huge = NPR
				:: IS_LEAF(tbl[IX(t, k)]) &&
				   FRAME(tbl[IX(t, k)]) != FRAME(tbl[IX(t, 0)]) + k ->
					huge = NPR
				:: else -> skip
				fi
			}
		:: else -> skip
		fi
	}
}

inline promote_root()
{
	rcu_read_lock();
	old = E;
	assert(old != FZ);		/* property 3: write lock */
	if
	:: IS_TBL(old) ->		/* collapse_candidate */
		t = TID(old);
		collapsible_leaf();
		if
		:: huge != NPR -> tdp_promote_spte_write_locked()
		:: else -> skip
		fi
	:: else -> skip
	fi;
	rcu_read_unlock()
}

inline promote_private_range()
{
	write_lock();
	promote_root();
	write_unlock()
}

active proctype promoter()
{
	byte r, old, huge, t;

	promote_private_range();	/* tdp_promote_private */
	table_free_rcu_cb();
	done()
}

/* ---------------- lookup.c ---------------- */

active proctype lookup()
{
	byte s, t;

	rcu_read_lock();
	s = E;
	if
	:: IS_TBL(s) ->
		t = TID(s);
		atomic { rcu_reach(t); s = tbl[IX(t, LK_PAGE)] }
		assert(!IS_LEAF(s) || FRAME(s) == LK_PAGE)	/* property 1 */
	:: IS_LEAF(s) -> assert(FRAME(s) == 0)		/* property 1 */
	:: else -> skip			/* the walk stopped: NPR or FZ */
	fi;
	rcu_read_unlock();
	done()
}


