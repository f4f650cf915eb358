/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The alias table of tdp/zap.h, one test per row: both aliases of the same
 * GFNs are mapped, one event's helper zaps a range, and each alias is
 * checked with tdp_lookup() and (private) against the recorder, inside and
 * around the range.
 *
 *   memory slot deleted or moved           private and shared
 *   host unmaps backing memory             shared only
 *   guest converts a range to shared       private only
 *   guest converts a range to private      shared only
 */
#include "harness.h"

#include <errno.h>

/* Mapped: [MAP_START, MAP_END), crossing a 2 MiB boundary. */
#define REGION ((3ULL << 27) | (21ULL << 18) | (100ULL << 9))
#define MAP_START (REGION + 500)
#define MAP_END (REGION + 540)
/* Zapped: [ZAP_START, ZAP_END), strictly inside, also crossing it. */
#define ZAP_START (REGION + 505)
#define ZAP_END (REGION + 530)
/* A 2 MiB leaf of each alias that the range below overlaps in part. */
#define HUGE_REGION (REGION + 4 * 512)

#define PFN_PRIVATE(g) ((g) + (1ULL << 36))
#define PFN_SHARED(g) ((g) + (2ULL << 36))

static tdp_pfn_t pfn_of(enum tdp_alias alias, tdp_gfn_t g)
{
	return alias == TDP_ALIAS_PRIVATE ? PFN_PRIVATE(g) : PFN_SHARED(g);
}

static void map_both_aliases(struct ts_env *e)
{
	static const enum tdp_alias aliases[] = { TDP_ALIAS_PRIVATE,
						  TDP_ALIAS_SHARED };

	for (int a = 0; a < 2; a++) {
		for (tdp_gfn_t g = MAP_START; g < MAP_END; g++)
			assert_int_equal(
				ts_map_retry(e->vcpu, g, aliases[a],
					     pfn_of(aliases[a], g),
					     TDP_PROT_RWX, TDP_LEVEL_4K,
					     MENV_MAX_RETRIES, 0, NULL),
				TDP_FAULT_FIXED);
		assert_int_equal(
			ts_map_retry(e->vcpu, HUGE_REGION + 3, aliases[a],
				     pfn_of(aliases[a], HUGE_REGION + 3),
				     TDP_PROT_RWX, TDP_LEVEL_2M,
				     MENV_MAX_RETRIES, 0, NULL),
			TDP_FAULT_FIXED);
	}
}

/* Every GFN of [start, end) is mapped in @alias (or not) as expected. */
static void assert_alias(struct ts_env *e, enum tdp_alias alias,
			 tdp_gfn_t start, tdp_gfn_t end, bool mapped)
{
	for (tdp_gfn_t g = start; g < end; g++) {
		int level = 0;
		tdp_pfn_t pfn = 0;
		bool present = menv_lookup_leaf(e->mmu, g, alias, &level, &pfn);

		if (present != mapped)
			fail_msg("gfn %#llx %s: %s, expected %s",
				 (unsigned long long)g,
				 alias == TDP_ALIAS_PRIVATE ? "private"
							    : "shared",
				 present ? "mapped" : "not mapped",
				 mapped ? "mapped" : "not mapped");
		if (present)
			assert_int_equal(
				pfn, pfn_of(alias, ts_round_down(g, level)));
		if (alias == TDP_ALIAS_PRIVATE)
			assert_int_equal(ts_leaf_at(e->be, g, NULL, NULL),
					 mapped);
	}
}

/* The 4 KiB range and the 2 MiB leaf of @alias, zapped or not. */
static void assert_alias_state(struct ts_env *e, enum tdp_alias alias,
			       bool zapped)
{
	assert_alias(e, alias, MAP_START, ZAP_START, true);
	assert_alias(e, alias, ZAP_START, ZAP_END, !zapped);
	assert_alias(e, alias, ZAP_END, MAP_END, true);
	assert_alias(e, alias, HUGE_REGION, HUGE_REGION + 512, !zapped);
}

/* The backend saw exactly the private leaves of the range go. */
static void assert_private_removals(struct ts_env *e, bool zapped)
{
	size_t n = ts_log_count(e->be);
	size_t small = 0, huge = 0;

	for (size_t i = 0; i < n; i++) {
		struct ts_event ev = ts_log_get(e->be, i);

		assert_int_equal(ev.call, TS_REMOVE_LEAF);
		assert_int_equal(ev.ret, 0);
		if (ev.level == TDP_LEVEL_4K) {
			assert_in_range(ev.gfn, ZAP_START, ZAP_END - 1);
			assert_int_equal(ev.pfn, PFN_PRIVATE(ev.gfn));
			small++;
		} else {
			assert_int_equal(ev.level, TDP_LEVEL_2M);
			assert_int_equal(ev.gfn, HUGE_REGION);
			assert_int_equal(ev.pfn, PFN_PRIVATE(HUGE_REGION));
			huge++;
		}
	}
	assert_int_equal(small, zapped ? ZAP_END - ZAP_START : 0);
	assert_int_equal(huge, zapped ? 1 : 0);
}

typedef int (*zap_fn)(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end);

static void run_alias_row(zap_fn zap, bool private_zapped, bool shared_zapped)
{
	struct ts_env e;

	menv_init(&e, 4096, 0);
	map_both_aliases(&e);
	assert_alias_state(&e, TDP_ALIAS_PRIVATE, false);
	assert_alias_state(&e, TDP_ALIAS_SHARED, false);

	ts_log_enable(e.be, true);
	/* The range covers the first GFN of the 2 MiB leaves, not all. */
	assert_int_equal(zap(e.mmu, ZAP_START, ZAP_END), 0);
	assert_int_equal(zap(e.mmu, HUGE_REGION + 8, HUGE_REGION + 9), 0);

	assert_alias_state(&e, TDP_ALIAS_PRIVATE, private_zapped);
	assert_alias_state(&e, TDP_ALIAS_SHARED, shared_zapped);
	assert_private_removals(&e, private_zapped);

	/* Zapping again finds nothing more to tell the backend. */
	ts_log_clear(e.be);
	assert_int_equal(zap(e.mmu, ZAP_START, ZAP_END), 0);
	assert_int_equal(ts_log_count(e.be), 0);

	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

/* One row of the alias table: a helper and the trees it must zap. */
struct alias_row {
	zap_fn zap;
	bool private_zapped, shared_zapped;
};

static void test_alias_row(void **state)
{
	const struct alias_row *row = *state;

	run_alias_row(row->zap, row->private_zapped, row->shared_zapped);
}

static const struct alias_row slot_deleted = { tdp_zap_slot_deleted, true, true };
static const struct alias_row host_unmap = { tdp_zap_host_unmap, false, true };
static const struct alias_row to_shared = { tdp_zap_convert_to_shared, true,
					    false };
static const struct alias_row to_private = { tdp_zap_convert_to_private, false,
					     true };

#define ALIAS_ROW_TEST(name, row) \
	{ name, test_alias_row, NULL, NULL, (void *)&(row) }

/* tdp_zap_range with each filter selects the same roots as the helpers. */
static void test_zap_range_filters(void **state)
{
	static const struct {
		enum tdp_alias alias;
		bool private_zapped, shared_zapped;
	} rows[] = {
		{ TDP_ALIAS_PRIVATE, true, false },
		{ TDP_ALIAS_SHARED, false, true },
		{ TDP_ALIAS_BOTH, true, true },
	};

	(void)state;
	for (unsigned int i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_env e;

		menv_init(&e, 0, 0);
		map_both_aliases(&e);
		ts_log_enable(e.be, true);
		assert_int_equal(
			tdp_zap_range(e.mmu, ZAP_START, ZAP_END, rows[i].alias),
			0);
		assert_int_equal(tdp_zap_range(e.mmu, HUGE_REGION + 8,
					       HUGE_REGION + 9, rows[i].alias),
				 0);
		assert_alias_state(&e, TDP_ALIAS_PRIVATE,
				   rows[i].private_zapped);
		assert_alias_state(&e, TDP_ALIAS_SHARED, rows[i].shared_zapped);
		assert_private_removals(&e, rows[i].private_zapped);
		assert_int_equal(ts_compare(e.be, e.mmu, 0, TS_GFN_LIMIT), 0);
		assert_int_equal(ts_violations(e.be), 0);
		ts_env_destroy(&e);
	}
}

/* tdp_zap_all is the "host address space goes away" event: shared only. */
static void test_zap_all_leaves_private_alone(void **state)
{
	struct ts_env e;

	(void)state;
	menv_init(&e, 0, 0);
	map_both_aliases(&e);
	ts_log_enable(e.be, true);
	assert_int_equal(tdp_zap_all(e.mmu), 0);
	assert_alias(&e, TDP_ALIAS_SHARED, MAP_START, MAP_END, false);
	assert_alias(&e, TDP_ALIAS_SHARED, HUGE_REGION, HUGE_REGION + 512,
		     false);
	assert_alias(&e, TDP_ALIAS_PRIVATE, MAP_START, MAP_END, true);
	assert_alias(&e, TDP_ALIAS_PRIVATE, HUGE_REGION, HUGE_REGION + 512,
		     true);
	assert_int_equal(ts_log_count(e.be), 0);
	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

/* The guest faults [ZAP_START, ZAP_END) back in, in @alias, at 4 KiB. */
static void fault_in_range(struct ts_env *e, enum tdp_alias alias)
{
	for (tdp_gfn_t g = ZAP_START; g < ZAP_END; g++)
		assert_int_equal(ts_map_retry(e->vcpu, g, alias,
					      alias == TDP_ALIAS_SHARED
						      ? PFN_SHARED(g)
						      : PFN_PRIVATE(g),
					      TDP_PROT_RWX, TDP_LEVEL_4K,
					      MENV_MAX_RETRIES, 0, NULL),
				 TDP_FAULT_FIXED);
	assert_alias(e, alias, ZAP_START, ZAP_END, true);
}

/* A conversion round trip: private -> shared -> private, same GFNs. */
static void test_conversion_round_trip(void **state)
{
	struct ts_env e;

	(void)state;
	menv_init(&e, 4096, 0);
	for (tdp_gfn_t g = ZAP_START; g < ZAP_END; g++)
		assert_int_equal(ts_map_retry(e.vcpu, g, TDP_ALIAS_PRIVATE,
					      PFN_PRIVATE(g), TDP_PROT_RWX,
					      TDP_LEVEL_4K, MENV_MAX_RETRIES, 0,
					      NULL),
				 TDP_FAULT_FIXED);

	/* To shared: the private leaves go, the guest faults shared. */
	assert_int_equal(tdp_zap_convert_to_shared(e.mmu, ZAP_START, ZAP_END),
			 0);
	assert_alias(&e, TDP_ALIAS_PRIVATE, ZAP_START, ZAP_END, false);
	fault_in_range(&e, TDP_ALIAS_SHARED);

	/* Back to private: the shared leaves go, private is mapped anew. */
	assert_int_equal(tdp_zap_convert_to_private(e.mmu, ZAP_START, ZAP_END),
			 0);
	assert_alias(&e, TDP_ALIAS_SHARED, ZAP_START, ZAP_END, false);
	assert_alias(&e, TDP_ALIAS_PRIVATE, ZAP_START, ZAP_END, false);
	fault_in_range(&e, TDP_ALIAS_PRIVATE);

	menv_assert_mirror(&e);
	ts_env_destroy(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ALIAS_ROW_TEST("test_slot_deleted_zaps_both", slot_deleted),
		ALIAS_ROW_TEST("test_host_unmap_zaps_shared_only", host_unmap),
		ALIAS_ROW_TEST("test_convert_to_shared_zaps_private_only",
			       to_shared),
		ALIAS_ROW_TEST("test_convert_to_private_zaps_shared_only",
			       to_private),
		cmocka_unit_test(test_zap_range_filters),
		cmocka_unit_test(test_zap_all_leaves_private_alone),
		cmocka_unit_test(test_conversion_round_trip),
	};

	return TS_RUN_GROUP("tests", tests);
}
