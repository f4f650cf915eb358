// SPDX-License-Identifier: LGPL-2.1-or-later
/* The cmocka side of the test support (see ts_cmocka.h). */
#include "ts_cmocka.h"

#include <stdlib.h>
#include <string.h>

void ts_env_init_ok(struct ts_env *e, const struct ts_env_opts *o)
{
	assert_int_equal(ts_env_init(e, o), 0);
	assert_non_null(e->mmu);
}

void ts_env_fini_ok(struct ts_env *e)
{
	assert_int_equal(ts_env_teardown(e, 0), 0);
	ts_env_destroy(e);
}

int ts_cmocka_setup(void **state)
{
	static const struct ts_env_opts plain = {
		.mark_dirty = true,
		.record = true,
		/* Checked in the zap wrappers and the teardown only. */
		.check_zap_flushes = true,
	};
	struct ts_env *env = calloc(1, sizeof(*env));

	assert_non_null(env);
	ts_env_init_ok(env, &plain);
	*state = env;
	return 0;
}

int ts_cmocka_teardown(void **state)
{
	struct ts_env *env = *state;

	/* Also when the test tore the MMU down itself. */
	assert_int_equal(ts_flush_order_violations(&env->log), 0);
	ts_env_destroy(env);
	free(env);
	return 0;
}

int ts_group_setup(void **state)
{
	(void)state;
	tdp_thread_register();
	return 0;
}

int ts_group_teardown(void **state)
{
	(void)state;
	tdp_thread_unregister();
	return 0;
}

void ts_apply_test_filter(void)
{
	const char *f = getenv("TDP_TEST_FILTER");

	if (f && *f)
		cmocka_set_test_filter(f);
}

bool ts_quick(void)
{
	const char *q = getenv("TDP_TEST_QUICK");

	return q && *q && strcmp(q, "0") != 0;
}

uint64_t ts_seed(uint64_t fallback)
{
	const char *s = getenv("TDP_TEST_SEED");

	if (s && *s)
		return strtoull(s, NULL, 0);
	return fallback;
}

int ts_run_group(const char *name, const struct CMUnitTest *tests, size_t n)
{
	ts_apply_test_filter();
	return _cmocka_run_group_tests(name, tests, n, ts_group_setup,
				       ts_group_teardown);
}
