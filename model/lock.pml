/*
 * lock.pml: the user-space mmu_lock (FAST / FENCED / BLOCKED), with
 * readers, writers, a writer that yields and takes the lock again, and
 * x86-TSO store buffers for the readers' records.
 *
 * Mirrors (libtdp/port/user.h, libtdp/port/user.c):
 *   reader()            a thread that faults in a loop
 *     read_lock           tdp_read_lock (inline, user.h)
 *     read_lock_slow      tdp_read_lock_slow
 *     maybe_return_to_fast  maybe_return_to_fast
 *     spin_while_blocked  spin_while_blocked (as a choice: see 3 below),
 *                         once per lock (the local spun)
 *     wait_for_admission  wait_for_admission, reader_admitted
 *     read_unlock         tdp_read_unlock (inline, user.h), wake_drainers
 *   writer()            a thread that zaps in a loop, yielding once
 *     write_lock          tdp_write_lock, writer_turn
 *     drain_readers       drain_readers
 *     wait_for_reader     wait_for_reader
 *     needbreak           tdp_mmu_lock_needbreak (a reader is queued)
 *     write_unlock        tdp_write_unlock, notify_locked
 *   wait_locked          wait_locked
 *
 * Simplifications:
 *  1. Memory is x86-TSO: each reader's stores to its record (@reading)
 *     go through a FIFO store buffer that drains at any time (process
 *     tso), at a fence (seq_cst fence, a locked instruction, the mutex),
 *     and on every thread at once for membarrier(2).  A reader's record
 *     only ever alternates between NULL and the lock, so its buffer is
 *     kept as a count of pending stores (rec_pending); a buffer holds at
 *     most three, the oldest draining first when a fourth comes (hardware
 *     drains in bounded time).  Writers' stores are not buffered: each of
 *     them is under @wait_lock or is the seq_cst (xchg) store of BLOCKED.
 *  2. A section under @wait_lock is one atomic step (nothing it writes
 *     is seen half done: the lock-free readers of @state, @readers_waiting
 *     and @drain_waiting see one store each), and pthread_cond_wait/
 *     broadcast are a flag per sleeper.  The mutex is never contended in
 *     the model, so spin's weak fairness is enough for the liveness
 *     claims; the lock's own fairness (@state, tickets, phases) is
 *     modelled exactly.  Counters that only grow are kept modulo 4 (at
 *     most two writers hold tickets, and a queued reader's phase advances
 *     once before it enters).
 *  3. Time is not modelled: every spin loop (wait_locked's, the
 *     reader's spin_while_blocked, the writer's wait_for_reader) may end
 *     at any step, as if its deadline had passed; spinning on @events
 *     inside wait_locked is modelled as sleeping on @wait_cv, which sees
 *     the same wake-ups (notify_locked broadcasts when anyone sleeps).
 *     maybe_return_to_fast's clock test is a free choice.
 *  4. membarrier(2) is available (have_membarrier); the mode without it
 *     (readers always fence, writers poll) is not modelled.  Misuse
 *     checks (nesting, unregistered threads) are not modelled.
 *
 * Properties:
 *   mutual exclusion  asserted on entry to every critical section: a
 *                     writer is alone, a reader runs with no writer;
 *   no deadlock       spin's invalid-end-state check (safety run);
 *   no starvation     ltl r0, w0 (with LIVENESS): a reader, a writer that
 *                     wants the lock gets it, under weak fairness
 *                     (pan -a -f); r1 and w1 say the same of the other
 *                     reader and writer, which run the same code.
 *
 * Configurations: two readers and one writer (NR=2 NW=1), one reader and
 * two writers (NR=1 NW=2); two of each does not fit a CI machine.
 *
 * Negative variants (each must be rejected):
 *   BUG_NO_MEMBARRIER    a writer leaving FAST skips membarrier(2):
 *                        a FAST reader's record is still in its store
 *                        buffer when the writer scans (mutual exclusion);
 *   BUG_NO_READER_FENCE  a reader that finds the lock not FAST loads
 *                        @state without its fence (mutual exclusion);
 *   BUG_NO_DRAIN_MEMBARRIER  wait_for_reader sleeps without membarrier:
 *                        a reader's unlock is still buffered and it
 *                        missed @drain_waiting; nobody wakes the writer
 *                        (deadlock, and ltl w0);
 *   BUG_NOT_PHASE_FAIR   write_unlock does not admit the queued readers
 *                        (no phase change): writers taking turns starve
 *                        a queued reader (ltl r0);
 *   BUG_SPIN_AGAIN       a reader spins every time it finds the lock
 *                        BLOCKED (the code before this model): a writer
 *                        arriving in each gap keeps it out (ltl r0).
 */

#ifndef NR
#define NR 2			/* readers (1 or 2) */
#endif
#ifndef NW
#define NW 2			/* writers (1 or 2) */
#endif
#define NT (NR + NW)		/* threads; readers are 0..NR-1 */

#define FAST	0
#define FENCED	1
#define BLOCKED	2

/* ---- the lock (tdp_mmu_lock_t) ---- */
byte state = FAST;
byte readers_waiting, writers_waiting, drain_waiting;
bool writer_active;
byte phase, granted, next_ticket, serving;	/* modulo 4 */
byte sleepers;

/* @wait_cv: asleep[t] until a broadcast */
bool asleep[NT];

/* ---- the readers' thread records ---- */
bool reading[NR];		/* @reading as memory holds it */
byte rec_pending[NR];		/* stores to it still in the store buffer */

/* ---- ghost state for the properties ---- */
byte in_read, in_write;
#ifdef LIVENESS
bool want[NT], in_cs[NT];
#define WANT(t, v)	want[t] = v
#define IN_CS(t, v)	in_cs[t] = v
#else
#define WANT(t, v)	skip
#define IN_CS(t, v)	skip
#endif

/* ---- x86-TSO ---- */

/* The oldest pending store of reader @r reaches memory. */
inline drain_one(r)
{
	reading[r] = !reading[r];
	rec_pending[r]--
}

/* Reader @r stores the other value into its record (a plain store). */
inline record_flip(r)
{
	atomic {
		if
		:: rec_pending[r] == 3 -> drain_one(r)
		:: else
		fi;
		rec_pending[r]++
	}
}

/* A full fence by reader @r: its store buffer drains. */
inline fence(r)
{
	atomic {
		if
		:: rec_pending[r] % 2 == 1 -> reading[r] = !reading[r]
		:: else
		fi;
		rec_pending[r] = 0
	}
}

/* membarrier(2): a full fence on every running thread. */
inline membarrier()
{
	d_step {
		fence(0);
#if NR > 1
		fence(1)
#endif
	}
}

/* Store buffers drain on their own, at any time. */
active proctype tso()
{
end:	do
	:: atomic { rec_pending[0] > 0 -> drain_one(0) }
#if NR > 1
	:: atomic { rec_pending[1] > 0 -> drain_one(1) }
#endif
	od
}

/* ---- @wait_lock and @wait_cv ---- */

/*
 * A section under @wait_lock is one atomic step of the model.  A
 * pthread_cond_wait() inside it ends the step (spin lets other processes
 * run while an atomic sequence is blocked) and the thread goes on, still
 * inside the section, once woken: the mutex released and taken again.
 * Taking the mutex is a locked instruction: a reader's store buffer
 * drains first.
 */
inline cond_wait(me)
{
	sleepers++;
	asleep[me] = 1;
	(!asleep[me]);
	sleepers--
}

inline cond_broadcast()
{
	asleep[0] = 0;
	asleep[1] = 0;
#if NT > 2
	asleep[2] = 0;
#endif
#if NT > 3
	asleep[3] = 0
#endif
}

/* notify_locked(): @wait_lock held. */
inline notify_locked()
{
	if
	:: sleepers > 0 -> cond_broadcast()
	:: else
	fi
}

/* wait_locked(): called and returns with @wait_lock held, @ready true. */
inline wait_locked(me, ready)
{
	do
	:: ready -> break
	:: else -> cond_wait(me)
	od
}

/* ---- readers ---- */

/* wake_drainers() */
inline wake_drainers(me)
{
	atomic {
		fence(me);
		cond_broadcast()
	}
}

inline maybe_return_to_fast(me)
{
	if
	:: true	/* the clock says the last writer left long enough ago */
		-> atomic {
			fence(me);
			if
			:: state == FENCED && !writer_active &&
			   writers_waiting == 0 -> state = FAST
			:: else
			fi
		}
	:: true
	fi
}

inline wait_for_admission(me)
{
	atomic {
	fence(me);
	my_phase = phase;
	readers_waiting++;
	wait_locked(me, !writer_active &&
			(writers_waiting == 0 || phase != my_phase));
	readers_waiting--;
	if
	:: phase != my_phase ->
		granted--;
		if
		:: granted == 0 -> notify_locked()
		:: else
		fi
	:: else
	fi;
	/* The record is published under @wait_lock: the store and the
	 * unlock (a locked instruction) leave the store buffer empty. */
	assert(rec_pending[me] == 0 && !reading[me]);
	reading[me] = 1
	}
}

inline read_lock_slow(me)
{
	do
	::
#ifndef BUG_NO_READER_FENCE
		fence(me);
#endif
		if
		:: state == FENCED -> maybe_return_to_fast(me); break
		:: state == FAST -> break
		:: state == BLOCKED ->
			/* withdraw, and wake a writer that saw us */
			record_flip(me);
			fence(me);
			if
			:: drain_waiting > 0 -> wake_drainers(me)
			:: else
			fi;
			/* spin_while_blocked(), once: true if the lock
			 * stopped being BLOCKED before the deadline */
			if
#ifdef BUG_SPIN_AGAIN
			:: state != BLOCKED -> record_flip(me)
#else
			:: !spun && state != BLOCKED ->
				spun = 1;
				record_flip(me)
#endif
			:: true -> wait_for_admission(me); break
			fi
		fi
	od
}

inline read_lock(me)
{
	record_flip(me);		/* self->reading = l (relaxed) */
	if
	:: state == FAST
	:: else -> read_lock_slow(me); spun = 0
	fi
}

inline read_unlock(me)
{
	record_flip(me);		/* self->reading = NULL (release) */
	if
	:: drain_waiting > 0 -> wake_drainers(me)
	:: else
	fi
}

proctype reader(byte me)
{
	byte my_phase;
	bool spun;

end:	do
	::	WANT(me, 1);
		read_lock(me);
		atomic {
			assert(in_write == 0);
			in_read++;
			IN_CS(me, 1);
			WANT(me, 0)
		};
		atomic {
			in_read--;
			IN_CS(me, 0)
		};
		read_unlock(me)
	:: break	/* the thread stops taking the lock (a vCPU halts) */
	od
}

/* ---- writers ---- */

inline wait_for_reader(me, r)
{
	if
	:: !reading[r]		/* the reader left while we spun */
	:: true ->		/* the spin deadline passed */
		atomic {
		drain_waiting++;
#ifndef BUG_NO_DRAIN_MEMBARRIER
		membarrier();
#endif
		do
		:: reading[r] -> cond_wait(me)
		:: else -> break
		od;
		drain_waiting--
		}
	fi
}

inline drain_readers(me)
{
	r = 0;
	do
	:: r < NR ->
		if
		:: reading[r] -> wait_for_reader(me, r)
		:: else
		fi;
		r++
	:: else -> r = 0; break
	od
}

inline write_lock(me)
{
	atomic {
	ticket = next_ticket;
	next_ticket = (next_ticket + 1) % 4;
	writers_waiting++;
	was_fast = (state == FAST);
	state = BLOCKED;
	wait_locked(me, !writer_active && granted == 0 && ticket == serving);
	writers_waiting--;
	writer_active = 1
	};
#ifndef BUG_NO_MEMBARRIER
	if
	:: was_fast -> membarrier()
	:: else
	fi;
#endif
	was_fast = 0;
	drain_readers(me)
}

inline write_unlock(me)
{
	atomic {
	writer_active = 0;
	serving = (serving + 1) % 4;
#ifndef BUG_NOT_PHASE_FAIR
	if
	:: readers_waiting > 0 ->
		phase = (phase + 1) % 4;
		granted = readers_waiting
	:: else
	fi;
#endif
	if
	:: writers_waiting == 0 -> state = FENCED
	:: else
	fi;
	notify_locked()
	}
}

inline enter_write(me)
{
	atomic {
		assert(in_write == 0 && in_read == 0);
		in_write++;
		IN_CS(me, 1);
		WANT(me, 0)
	}
}

inline leave_write(me)
{
	atomic {
		in_write--;
		IN_CS(me, 0)
	}
}

proctype writer(byte me)
{
	byte ticket, r;
	bool was_fast;

end:	do
	::	WANT(me, 1);
		write_lock(me);
		enter_write(me);
		/* tdp_iter_cond_resched(): needbreak sees a queued reader */
		if
		:: readers_waiting > 0 ->
			leave_write(me);
			write_unlock(me);
			WANT(me, 1);
			write_lock(me);
			enter_write(me)
		:: true
		fi;
		leave_write(me);
		write_unlock(me)
	od
}

init
{
	atomic {
		run reader(0);
#if NR > 1
		run reader(1);
#endif
		run writer(NR);
#if NW > 1
		run writer(NR + 1)
#endif
	}
}

#ifdef LIVENESS
ltl r0 { [] (want[0] -> <> in_cs[0]) }
ltl w0 { [] (want[NR] -> <> in_cs[NR]) }
#if NR > 1
ltl r1 { [] (want[1] -> <> in_cs[1]) }
#endif
#if NW > 1
ltl w1 { [] (want[NR + 1] -> <> in_cs[NR + 1]) }
#endif
#endif
