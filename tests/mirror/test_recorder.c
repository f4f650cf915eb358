/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Self-test of the recording backend: drive its callbacks directly with
 * sequences that break the contract of tdp/backend.h and check that each
 * break is recorded, so that "zero violations" in the engine tests means
 * something.  A correct sequence must record none.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G ((3ULL << 27) | (2ULL << 18) | (1ULL << 9))
#define RL TS_ROOT_LEVEL

static struct tdp_ext_table *page(void)
{
	void *p = aligned_alloc(4096, 4096);

	assert_non_null(p);
	memset(p, 0, 4096);
	return p;
}

static int be_link(struct ts_backend *r, tdp_gfn_t gfn, int level,
		   struct tdp_ext_table *ext)
{
	const struct tdp_private_backend *be = ts_backend_ops(r);

	return be->link_table(be->ctx, ts_round_down(gfn, level), level, ext);
}

static int be_set(struct ts_backend *r, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	const struct tdp_private_backend *be = ts_backend_ops(r);

	return be->set_leaf(be->ctx, gfn, level, pfn);
}

static int be_rm(struct ts_backend *r, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	const struct tdp_private_backend *be = ts_backend_ops(r);

	return be->remove_leaf(be->ctx, gfn, level, pfn);
}

static int be_free(struct ts_backend *r, tdp_gfn_t gfn, int level,
		   struct tdp_ext_table *ext)
{
	const struct tdp_private_backend *be = ts_backend_ops(r);

	return be->free_table(be->ctx, ts_round_down(gfn, level), level, ext);
}

/* A recorder with the path to G linked (pages in ext[2..4]). */
static struct ts_backend *linked(struct tdp_ext_table *ext[5])
{
	struct ts_backend *r = ts_backend_create(RL, TS_SHARED_BIT, 4096);

	assert_non_null(r);
	for (int l = RL; l >= 2; l--) {
		ext[l] = page();
		assert_int_equal(be_link(r, G, l, ext[l]), 0);
	}
	assert_int_equal(ts_violations(r), 0);
	return r;
}

static void unlink_all(struct ts_backend *r, struct tdp_ext_table *ext[5])
{
	for (int l = 2; l <= RL; l++) {
		be_free(r, G, l, ext[l]);
		free(ext[l]);
	}
	ts_backend_destroy(r);
}

static void test_correct_sequence_is_clean(void **state)
{
	struct tdp_ext_table *ext[5];
	struct ts_backend *r;

	(void)state;
	r = linked(ext);
	assert_int_equal(be_set(r, G + 1, 1, 77), 0);
	assert_int_equal(be_set(r, G + 2, 1, 78), 0);
	assert_true(ts_leaf_at(r, G + 1, NULL, NULL));
	assert_int_equal(be_rm(r, G + 1, 1, 77), 0);
	assert_int_equal(be_rm(r, G + 2, 1, 78), 0);
	for (int l = 2; l <= RL; l++)
		assert_true(ts_ext_intact(r, ext[l]));
	for (int l = 2; l <= RL; l++)
		assert_int_equal(be_free(r, G, l, ext[l]), 0);
	assert_int_equal(ts_nr_tables(r), 0);
	assert_int_equal(ts_violations(r), 0);
	for (int l = 2; l <= RL; l++)
		free(ext[l]);
	ts_backend_destroy(r);
}

static void test_child_before_parent(void **state)
{
	struct ts_backend *r = ts_backend_create(RL, TS_SHARED_BIT, 0);

	(void)state;
	assert_int_equal(be_set(r, G, 1, 5), 0);
	assert_int_equal(ts_violations(r), 1);
	assert_int_equal(be_link(r, G, 3, NULL), 0);
	assert_int_equal(ts_violations(r), 2);
	/* The root's entries need no parent. */
	assert_int_equal(be_link(r, G, RL, NULL), 0);
	assert_int_equal(ts_violations(r), 2);
	ts_backend_destroy(r);
}

static void test_double_link_and_set(void **state)
{
	struct tdp_ext_table *ext[5];
	struct tdp_ext_table *other = page();
	struct ts_backend *r;

	(void)state;
	r = linked(ext);
	assert_int_equal(be_link(r, G, 2, other), 0);
	assert_int_equal(ts_violations(r), 1);
	assert_int_equal(be_set(r, G, 1, 9), 0);
	assert_int_equal(be_set(r, G, 1, 9), 0);
	assert_int_equal(ts_violations(r), 2);
	/* A leaf over a linked table. */
	assert_int_equal(be_set(r, G, 2, 0), 0);
	assert_int_equal(ts_violations(r), 3);
	be_rm(r, G, 1, 9);
	unlink_all(r, ext);
	free(other);
}

static void test_bad_removals(void **state)
{
	struct tdp_ext_table *ext[5];
	struct ts_backend *r;

	(void)state;
	r = linked(ext);
	assert_int_equal(be_set(r, G, 1, 9), 0);
	be_rm(r, G + 1, 1, 9); /* no such leaf */
	assert_int_equal(ts_violations(r), 1);
	be_rm(r, G, 1, 10); /* wrong PFN */
	assert_int_equal(ts_violations(r), 2);
	assert_int_equal(be_set(r, G, 1, 9), 0);
	be_free(r, G, 2, ext[2]); /* still has a leaf */
	assert_int_equal(ts_violations(r), 3);
	be_rm(r, G, 1, 9);
	be_free(r, G, 3, ext[3]); /* still has a table */
	assert_int_equal(ts_violations(r), 4);
	be_free(r, G + (1ULL << 18), 2, ext[2]); /* unknown table */
	assert_int_equal(ts_violations(r), 5);
	be_free(r, G, 2, ext[3]); /* another page */
	assert_int_equal(ts_violations(r), 6);
	ts_backend_destroy(r);
	for (int l = 2; l <= RL; l++)
		free(ext[l]);
}

static void test_backend_pages(void **state)
{
	struct ts_backend *r = ts_backend_create(RL, TS_SHARED_BIT, 4096);
	char *raw = aligned_alloc(4096, 3 * 4096);
	struct tdp_ext_table *dirty = (struct tdp_ext_table *)(raw + 4096);

	(void)state;
	memset(raw, 0, 3 * 4096);
	be_link(r, 0, RL, (struct tdp_ext_table *)(raw + 8)); /* misaligned */
	assert_int_equal(ts_violations(r), 1);
	be_link(r, 1ULL << 27, RL, NULL); /* missing */
	assert_int_equal(ts_violations(r), 2);
	raw[4096 + 100] = 1;
	be_link(r, 2ULL << 27, RL, dirty); /* not zeroed */
	assert_int_equal(ts_violations(r), 3);
	be_link(r, 3ULL << 27, RL, (struct tdp_ext_table *)(raw + 2 * 4096));
	be_link(r, 4ULL << 27, RL, (struct tdp_ext_table *)(raw + 2 * 4096));
	assert_int_equal(ts_violations(r), 4); /* shared page */
	/* The engine writing into a live page is caught at free_table. */
	raw[2 * 4096] ^= 1;
	be_free(r, 3ULL << 27, RL, (struct tdp_ext_table *)(raw + 2 * 4096));
	assert_int_equal(ts_violations(r), 5);
	ts_backend_destroy(r);
	free(raw);

	/* Without a page size the engine must pass NULL. */
	r = ts_backend_create(RL, TS_SHARED_BIT, 0);
	raw = aligned_alloc(4096, 4096);
	be_link(r, 0, RL, (struct tdp_ext_table *)raw);
	assert_int_equal(ts_violations(r), 1);
	ts_backend_destroy(r);
	free(raw);
}

static void test_gfn_and_level_checks(void **state)
{
	struct ts_backend *r = ts_backend_create(RL, TS_SHARED_BIT, 0);
	const struct tdp_private_backend *be = ts_backend_ops(r);
	uint64_t v = 0;

	(void)state;
	be->link_table(be->ctx, TS_SHARED_BIT, RL, NULL); /* aliased */
	assert_true(ts_violations(r) > v);
	v = ts_violations(r);
	be->link_table(be->ctx, 5, RL, NULL); /* misaligned */
	assert_true(ts_violations(r) > v);
	v = ts_violations(r);
	be->link_table(be->ctx, 0, 1, NULL); /* level 1 */
	assert_true(ts_violations(r) > v);
	v = ts_violations(r);
	be->set_leaf(be->ctx, 0, RL, 0); /* level 4 leaf */
	assert_true(ts_violations(r) > v);
	ts_backend_destroy(r);
}

static void test_forbidden_calls(void **state)
{
	struct tdp_ext_table *ext[5];
	struct ts_backend *r;

	(void)state;
	r = linked(ext);
	ts_forbid_calls(r, true);
	be_set(r, G, 1, 1);
	assert_true(ts_violations(r) >= 1);
	ts_forbid_calls(r, false);
	ts_backend_destroy(r);
	for (int l = 2; l <= RL; l++)
		free(ext[l]);
}

/* ---- lock and overlap checks: need a real MMU and a second thread ------- */

struct slow_link {
	struct ts_backend *r;
	pthread_t tid;
};

static void *slow_link_thread(void *arg)
{
	struct slow_link *s = arg;

	be_link(s->r, 7ULL << 27, RL, NULL);
	return NULL;
}

static void test_lock_and_overlap_checks(void **state)
{
	struct ts_env e;
	struct slow_link s;
	struct tdp_ext_table *ext[5];
	uint64_t v;

	(void)state;
	menv_init(&e, 0, 0);
	/* Callbacks outside the engine: neither lock is held, and the
	 * mirror entry of the map callback is not frozen. */
	be_link(e.be, 0, RL, NULL);
	assert_int_equal(ts_violations(e.be), 2);
	be_rm(e.be, 0, 1, 0);
	assert_true(ts_violations(e.be) >= 3);
	ts_env_destroy(&e);

	/* A removal while a map callback sleeps. */
	s.r = linked(ext);
	ts_set_link_delay(s.r, 200000);
	assert_int_equal(pthread_create(&s.tid, NULL, slow_link_thread, &s), 0);
	usleep(50000);
	v = ts_violations(s.r);
	assert_int_equal(be_set(s.r, G, 1, 3), 0);
	be_rm(s.r, G, 1, 3);
	assert_true(ts_violations(s.r) > v);
	assert_int_equal(pthread_join(s.tid, NULL), 0);
	ts_backend_destroy(s.r);
	for (int l = 2; l <= RL; l++)
		free(ext[l]);
}

static void test_injection(void **state)
{
	struct ts_backend *r = ts_backend_create(RL, TS_SHARED_BIT, 0);
	struct ts_counts c;
	int busy = 0, hard = 0;

	(void)state;
	ts_set_injection(r, 300, 100, 1);
	for (int i = 0; i < 1000; i++) {
		tdp_gfn_t gfn = (tdp_gfn_t)(i % 256) << 27;
		int ret = be_link(r, gfn, RL, NULL);

		busy += ret == -EBUSY;
		hard += ret == -ENOSPC;
		if (!ret)
			be_free(r, gfn, RL, NULL);
	}
	c = ts_counts(r);
	assert_int_equal(c.injected_busy, busy);
	assert_int_equal(c.injected_errors, hard);
	assert_in_range(busy, 200, 400);
	assert_in_range(hard, 50, 150);
	/* Every failure left the model as before. */
	assert_int_equal(ts_nr_tables(r), 0);
	assert_int_equal(ts_violations(r), 0);
	ts_set_injection(r, 0, 0, 0);
	ts_fail_next_map(r, TS_LINK_TABLE, -E2BIG);
	assert_int_equal(be_link(r, 0, RL, NULL), -E2BIG);
	assert_int_equal(be_link(r, 0, RL, NULL), 0);
	assert_int_equal(ts_nr_tables(r), 1);
	ts_backend_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_correct_sequence_is_clean),
		cmocka_unit_test(test_child_before_parent),
		cmocka_unit_test(test_double_link_and_set),
		cmocka_unit_test(test_bad_removals),
		cmocka_unit_test(test_backend_pages),
		cmocka_unit_test(test_gfn_and_level_checks),
		cmocka_unit_test(test_forbidden_calls),
		cmocka_unit_test(test_lock_and_overlap_checks),
		cmocka_unit_test(test_injection),
	};

	fprintf(stderr, "recorder self-test: the violations printed below are "
			"expected\n");
	return TS_RUN_GROUP("tests", tests);
}
