/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mmu_lock misuse is caught in every build: each case runs in a child
 * process, which must die of SIGABRT after printing the rule it broke.
 * The checks are not assertions (they hold with NDEBUG too), so these
 * tests pass in release builds as well.  Also: the lock assertions are
 * exact (held for read/write means held by this thread), and a thread can
 * register, unregister and register again.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "internal.h"

/*
 * Run @fn in a child with stderr on a pipe; assert that the child died of
 * SIGABRT and that what it printed contains @rule.
 */
static void expect_abort(void (*fn)(void), const char *rule)
{
	char out[4096];
	size_t len = 0;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		sigaction(SIGABRT, &dfl, NULL);
		close(fds[0]);
		dup2(fds[1], 2);
		fn();
		/* Not reached when the misuse was caught. */
		fprintf(stderr, "misuse went unnoticed\n");
		_exit(0);
	}
	close(fds[1]);
	while (len < sizeof(out) - 1 &&
	       (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("child was not aborted (status 0x%x), it printed: %s",
			 status, out);
	if (!strstr(out, rule))
		fail_msg("abort message lacks '%s': %s", rule, out);
}

static struct tdp_mmu *child_mmu(void)
{
	static struct ts_flush log;
	struct tdp_mmu_config cfg = ts_config(&log, NULL, NULL);
	struct tdp_mmu *mmu;

	ts_flush_init(&log, true);
	if (tdp_mmu_create(&cfg, &mmu))
		_exit(3);
	return mmu;
}

/*
 * The child inherits the main thread's registration: drop it, then take
 * the lock.  (No new thread: ThreadSanitizer refuses to start threads in
 * the child of a multi-threaded process.)
 */
static void misuse_unregistered(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_thread_unregister();
	tdp_zap_range(mmu, 0, 512, TDP_ALIAS_SHARED);
}

static void misuse_call_inside_walk(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_walk_begin();
	tdp_zap_range(mmu, 0, 512, TDP_ALIAS_SHARED);
	tdp_walk_end();
}

static void misuse_nested_read(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_read_lock(&mmu->mmu_lock);
	tdp_read_lock(&mmu->mmu_lock);
}

static void misuse_read_then_write(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_read_lock(&mmu->mmu_lock);
	tdp_write_lock(&mmu->mmu_lock);
}

static void misuse_nested_across_mmus(void)
{
	struct tdp_mmu *a = child_mmu(), *b = child_mmu();

	tdp_write_lock(&a->mmu_lock);
	tdp_read_lock(&b->mmu_lock);
}

static void misuse_unlock_unheld(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_read_unlock(&mmu->mmu_lock);
}

static void misuse_write_unlock_other(void)
{
	struct tdp_mmu *a = child_mmu(), *b = child_mmu();

	tdp_write_lock(&a->mmu_lock);
	tdp_write_unlock(&b->mmu_lock);
}

static void misuse_unregister_holding(void)
{
	struct tdp_mmu *mmu = child_mmu();

	tdp_read_lock(&mmu->mmu_lock);
	tdp_thread_unregister();
}

static void test_unregistered(void **state)
{
	(void)state;
	expect_abort(misuse_unregistered, "did not call tdp_thread_register()");
}

static void test_call_inside_walk(void **state)
{
	(void)state;
	expect_abort(misuse_call_inside_walk,
		     "inside tdp_walk_begin()/tdp_walk_end()");
}

static void test_nested(void **state)
{
	(void)state;
	expect_abort(misuse_nested_read, "locks never nest");
	expect_abort(misuse_read_then_write, "locks never nest");
	expect_abort(misuse_nested_across_mmus, "not even across MMUs");
}

static void test_unlock_unheld(void **state)
{
	(void)state;
	expect_abort(misuse_unlock_unheld, "does not hold for read");
	expect_abort(misuse_write_unlock_other, "does not hold for write");
	expect_abort(misuse_unregister_holding, "while holding an mmu_lock");
}

/* The assertions' view is per thread and per lock. */
struct held_arg {
	tdp_mmu_lock_t *lock;
	bool read, write;
};

static void *held_elsewhere(void *arg)
{
	struct held_arg *h = arg;

	tdp_thread_register();
	h->read = tdp_port_lock_held_read(h->lock);
	h->write = tdp_port_lock_held_write(h->lock);
	tdp_thread_unregister();
	return NULL;
}

static void test_held_is_exact(void **state)
{
	struct ts_env a, b;
	struct held_arg h;
	pthread_t t;

	(void)state;
	ts_env_init_ok(
		&a, &(struct ts_env_opts){ .no_vcpu = true, .record = true });
	ts_env_init_ok(
		&b, &(struct ts_env_opts){ .no_vcpu = true, .record = true });
	h = (struct held_arg){ .lock = &a.mmu->mmu_lock };

	tdp_read_lock(&a.mmu->mmu_lock);
	assert_true(tdp_port_lock_held_read(&a.mmu->mmu_lock));
	assert_false(tdp_port_lock_held_write(&a.mmu->mmu_lock));
	assert_false(tdp_port_lock_held_read(&b.mmu->mmu_lock));
	pthread_create(&t, NULL, held_elsewhere, &h);
	pthread_join(t, NULL);
	assert_false(h.read);
	tdp_read_unlock(&a.mmu->mmu_lock);

	tdp_write_lock(&a.mmu->mmu_lock);
	assert_true(tdp_port_lock_held_write(&a.mmu->mmu_lock));
	assert_false(tdp_port_lock_held_read(&a.mmu->mmu_lock));
	assert_false(tdp_port_lock_held_write(&b.mmu->mmu_lock));
	pthread_create(&t, NULL, held_elsewhere, &h);
	pthread_join(t, NULL);
	assert_false(h.write);
	tdp_write_unlock(&a.mmu->mmu_lock);
	assert_false(tdp_port_lock_held_write(&a.mmu->mmu_lock));

	ts_env_destroy(&b);
	ts_env_destroy(&a);
}

/* Registration nests and a record is reused after unregistering. */
static void *register_twice(void *arg)
{
	struct tdp_mmu *mmu = arg;

	for (int i = 0; i < 3; i++) {
		tdp_thread_register();
		tdp_thread_register();
		tdp_thread_unregister();
		/* Still registered once: the lock may be taken. */
		assert_int_equal(tdp_zap_range(mmu, 512 * (tdp_gfn_t)i,
					       512 * (tdp_gfn_t)(i + 1),
					       TDP_ALIAS_SHARED), 0);
		tdp_thread_unregister();
	}
	return NULL;
}

static void test_register_cycles(void **state)
{
	struct ts_env env;
	pthread_t t[4];

	(void)state;
	ts_env_init_ok(
		&env, &(struct ts_env_opts){ .no_vcpu = true, .record = true });
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, register_twice, env.mmu);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ts_env_destroy(&env);
}

/* ---- tdp_mmu_exclusive() ------------------------------------------------- */

struct excl_arg {
	struct tdp_mmu *mmu;
	int calls;
	bool held_write;
	int lookup_ret, lookup_level;
	tdp_spte_t spte;
};

static int excl_fn(void *p)
{
	struct excl_arg *a = p;

	a->calls++;
	a->held_write = tdp_port_lock_held_write(&a->mmu->mmu_lock);
	/* A lockless reader is allowed inside. */
	a->lookup_ret = tdp_lookup(a->mmu, 5, TDP_ALIAS_SHARED,
				   &a->spte, &a->lookup_level);
	return 42;
}

static int excl_zap(void *p)
{
	struct excl_arg *a = p;

	return tdp_zap_range(a->mmu, 0, 512, TDP_ALIAS_SHARED);
}

static void misuse_exclusive_calls_zap(void)
{
	struct excl_arg a = { .mmu = child_mmu() };

	tdp_mmu_exclusive(a.mmu, excl_zap, &a);
}

/*
 * The callback runs once with mmu_lock held for write and sees the tree;
 * bad arguments change nothing; after teardown the callback is not run;
 * a callback that takes mmu_lock again is caught.
 */
static void test_exclusive(void **state)
{
	struct ts_env env;
	struct excl_arg a;
	int level;
	tdp_pfn_t pfn;

	(void)state;
	ts_env_init_ok(&env, &(struct ts_env_opts){ .record = true });
	a = (struct excl_arg){ .mmu = env.mmu };
	assert_int_equal(ts_map(env.vcpu, 5, TDP_ALIAS_SHARED, ts_pfn_shared(5),
				TDP_PROT_READ | TDP_PROT_WRITE, TDP_LEVEL_4K),
			 TDP_FAULT_FIXED);

	assert_int_equal(tdp_mmu_exclusive(NULL, excl_fn, &a), -EINVAL);
	assert_int_equal(tdp_mmu_exclusive(env.mmu, NULL, &a), -EINVAL);
	assert_int_equal(a.calls, 0);

	assert_int_equal(tdp_mmu_exclusive(env.mmu, excl_fn, &a), 42);
	assert_int_equal(a.calls, 1);
	assert_true(a.held_write);
	assert_int_equal(a.lookup_ret, 0);
	assert_int_equal(a.lookup_level, TDP_LEVEL_4K);
	assert_int_equal(tdp_spte_pfn(env.fmt, a.spte), ts_pfn_shared(5));
	/* Released: a writer gets the lock again. */
	assert_false(tdp_port_lock_held_write(&env.mmu->mmu_lock));
	assert_int_equal(tdp_zap_range(env.mmu, 0, 512, TDP_ALIAS_SHARED), 0);
	assert_false(ts_lookup_leaf(env.mmu, 5, TDP_ALIAS_SHARED, &level, &pfn));

	assert_int_equal(ts_env_teardown(&env, 0), 0);
	assert_int_equal(tdp_mmu_exclusive(env.mmu, excl_fn, &a), -ESHUTDOWN);
	assert_int_equal(a.calls, 1);
	ts_env_destroy(&env);

	expect_abort(misuse_exclusive_calls_zap, "locks never nest");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unregistered),
		cmocka_unit_test(test_call_inside_walk),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_unlock_unheld),
		cmocka_unit_test(test_held_is_exact),
		cmocka_unit_test(test_register_cycles),
		cmocka_unit_test(test_exclusive),
	};

	return TS_RUN_GROUP("engine-lock", tests);
}
