/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The port layer: the only way engine sources reach their environment.
 * Every environment provides the same names (exactly those the engine
 * uses; scripts/port_names.py checks the list against the sources, and
 * the build compiles a reference to each against both ports):
 *
 *   atomics      tdp_spte_read, tdp_spte_read_acquire, tdp_spte_write,
 *                tdp_spte_write_release, tdp_spte_cmpxchg, tdp_spte_xchg;
 *                tdp_atomic_read, tdp_atomic_set, tdp_atomic_add,
 *                tdp_atomic_inc_not_zero, tdp_atomic_xchg (int);
 *                tdp_atomic64_read, tdp_atomic64_read_acquire,
 *                tdp_atomic64_set, tdp_atomic64_set_release,
 *                tdp_atomic64_add (uint64_t counters and published
 *                values); tdp_flag_read, tdp_flag_set (bool);
 *                tdp_hweight64
 *   mmu_lock     tdp_mmu_lock_t, tdp_mmu_lock_init, tdp_mmu_lock_destroy,
 *                tdp_read_lock, tdp_read_unlock, tdp_write_lock,
 *                tdp_write_unlock, tdp_mmu_lock_needbreak,
 *                tdp_mmu_lock_yield_is_forced, tdp_port_thread_write_locks,
 *                tdp_lockdep_assert_held, tdp_lockdep_assert_held_read,
 *                tdp_lockdep_assert_held_write, tdp_cond_resched,
 *                tdp_port_thread_register, tdp_port_thread_unregister (the
 *                lock's view of a thread), tdp_walk_enter, tdp_walk_exit
 *                (a lockless walk: no mmu_lock may be taken inside)
 *   mutex        tdp_mutex_t, tdp_mutex_init, tdp_mutex_destroy,
 *                tdp_mutex_lock, tdp_mutex_unlock
 *   RCU          struct tdp_rcu_head, tdp_rcu_head_container,
 *                tdp_rcu_read_lock, tdp_rcu_read_unlock, tdp_call_rcu,
 *                tdp_rcu_barrier, tdp_rcu_thread_register,
 *                tdp_rcu_thread_unregister, tdp_rcu_callback_begin,
 *                tdp_rcu_callback_end, tdp_rcu_dereference,
 *                tdp_rcu_assign_pointer
 *   memory       tdp_zalloc, tdp_free, tdp_table_page_alloc,
 *                tdp_table_page_free, tdp_table_page_private,
 *                tdp_table_page_set_private, tdp_virt_to_pfn,
 *                tdp_pfn_to_virt, tdp_ext_page_alloc, tdp_ext_page_free
 *   logging      tdp_log_err, TDP_WARN_ON, TDP_ASSERT, TDP_LIKELY
 *
 * The ports also give the tests and tests/support what they need beyond
 * that; an embedder's port need not provide these:
 *
 *   spinlock     tdp_spinlock_t, tdp_spin_lock_init/_destroy,
 *                tdp_spin_lock/_unlock (short sections where the kernel
 *                must not sleep: the test support's backend and recorders)
 *   time         tdp_now_ns (monotonic), tdp_udelay (a wait allowed where
 *                sleeping is not), tdp_yield (give up the CPU, where
 *                sleeping is allowed)
 *   memory       tdp_port_fail_alloc_after (fail a later allocation),
 *                tdp_zalloc_atomic (where sleeping is not allowed; never
 *                failed by the injector: for checking code, not the engine)
 *   other        tdp_spte_fetch_and, tdp_log_warn,
 *                tdp_port_lock_held_read/_write; va_list and vsnprintf
 *
 * Two ports live here: port/kernel.h (with kernel.c), the Linux kernel's
 * primitives, used under __KERNEL__ (kernel/ builds it into libtdp.ko);
 * port/user.h (with user.c, user_rcu.c), liburcu, compiler atomics and
 * pthreads, used everywhere else.  An embedder with an environment of its
 * own (another kernel's hypervisor, with its own mmu_lock) compiles the
 * engine with -DTDP_PORT_HEADER='"its_port.h"' and puts that header on
 * the include path; it must provide every name above, with the semantics
 * port/user.h documents.
 */
#ifndef TDP_PORT_H
#define TDP_PORT_H

#if defined(TDP_PORT_HEADER)
#include TDP_PORT_HEADER
#elif defined(__KERNEL__)
#include "port/kernel.h"
#else
#include "port/user.h"
#endif

#endif /* TDP_PORT_H */
