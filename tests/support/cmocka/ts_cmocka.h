/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cmocka side of the test support (user space only, so it lives
 * apart from the port-layer sources that the kernel self-test builds):
 * fixtures that assert what ts_env.h returns, and group set-ups.
 *
 * Every test program registers its main thread (ts_group_setup(), or
 * tdp_thread_register() in main()) before it runs its group; helper
 * threads register themselves.
 */
#ifndef TDP_TESTS_SUPPORT_TS_CMOCKA_H
#define TDP_TESTS_SUPPORT_TS_CMOCKA_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ts_env.h"

/* ts_env_init() that must succeed. */
void ts_env_init_ok(struct ts_env *e, const struct ts_env_opts *o);

/*
 * ts_env_teardown(e, 0) without a problem, then ts_env_destroy(): the
 * MMU tears down cleanly and leaves nothing behind.
 */
void ts_env_fini_ok(struct ts_env *e);

/*
 * Per-test fixtures: a plain 4-level VM with one vCPU, recording flush
 * ranges and dirty marks and checking the order of the flushes of its
 * zap wrappers and teardown (check_zap_flushes), in *state; the teardown
 * destroys it (a test may have torn it down itself).
 */
int ts_cmocka_setup(void **state);
int ts_cmocka_teardown(void **state);
/*
 * @call, a zap of @mmu returning an int, with the flush-order check of
 * @mmu's recorder on (ts_zap_check_begin()); evaluates to its result.
 */
#define TS_CHECKED_ZAP(mmu, call)                 \
	({                                        \
		struct tdp_mmu *ts_zap_mmu_ = (mmu); \
		int ts_zap_ret_;                  \
                                                  \
		ts_zap_check_begin(ts_zap_mmu_);  \
		ts_zap_ret_ = (call);             \
		ts_zap_check_end(ts_zap_mmu_);    \
		ts_zap_ret_;                      \
	})

#define TS_CMOCKA_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, ts_cmocka_setup, ts_cmocka_teardown)

/* A fault of @gfn (shared alias) that must map it (TDP_FAULT_FIXED). */
#define TS_MAP_FIXED(vcpu, gfn, pfn, prot, max_level)                      \
	assert_int_equal(                                                  \
		ts_map(vcpu, gfn, TDP_ALIAS_SHARED, pfn, prot, max_level), \
		TDP_FAULT_FIXED)

/* Group fixtures: register (unregister) the test's main thread. */
int ts_group_setup(void **state);
int ts_group_teardown(void **state);

/* TDP_TEST_FILTER=<glob> in the environment: run only matching tests. */
void ts_apply_test_filter(void);

/* TDP_TEST_QUICK set and not "0": shorter runs. */
bool ts_quick(void);

/* A seed for randomized tests: $TDP_TEST_SEED if set, else @fallback. */
uint64_t ts_seed(uint64_t fallback);

/*
 * Run @tests, @n of them, as group @name with the main thread registered
 * (ts_group_setup()), after applying TDP_TEST_FILTER: the end of the
 * main() of a cmocka test program.
 */
int ts_run_group(const char *name, const struct CMUnitTest *tests, size_t n);

#define TS_RUN_GROUP(name, tests) \
	ts_run_group(name, tests, sizeof(tests) / sizeof((tests)[0]))

#endif /* TDP_TESTS_SUPPORT_TS_CMOCKA_H */
