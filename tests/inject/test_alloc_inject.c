/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Allocation failure at every allocation site in turn.
 *
 * The user-space port can fail its n-th allocation from now
 * (tdp_port_fail_alloc_after(n), white box).  For every operation that
 * allocates, n runs from 0 upward: each run must either return -ENOMEM
 * with the MMU exactly as before (same translations, statistics equal to
 * the trees, mirror equal to the backend, nothing frozen) and usable (the
 * same operation then succeeds without injection, and more faults and
 * zaps work), or succeed without having met the injected failure.  The
 * first n at which the operation succeeds is its number of allocation
 * sites, measured, not assumed: after the operation, probe allocations
 * (each exactly one allocation) count how far the injector's countdown
 * got, so a failure the operation swallowed is caught too.  Operations
 * that must not allocate at all (everything done under mmu_lock, and a
 * fault whose vCPU cache is full) run with the failure armed at the very
 * next allocation and must succeed without consuming it.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* White box: the port's allocation-failure injector. */
#include "internal.h"

#define MAX_SITES 64
#define NR_PROBES 8

/* GFNs whose translation must not change when an operation fails. */
#define NR_WATCH 6
static const tdp_gfn_t watch[NR_WATCH] = {
	0x40000, 0x40001, 0x40200, 0x40400, 0x80000, 0x80001,
};

struct ctx {
	struct ts_env e;
	struct tdp_vcpu *vcpu;	/* the test's long-lived vCPU */
	struct tdp_vcpu *fresh; /* created by prepare, empty cache */
	struct tdp_root *root;	/* taken by an operation */
	struct tdp_mmu *made;	/* created by an operation */
	/* A plain VM whose tdp_invalidate_begin() is the probe: exactly one
	 * allocation per call. */
	struct tdp_mmu *probe_mmu;
};

static struct ctx *C;

/*
 * How many allocations succeed before the armed failure fires; called
 * with the injector armed.  NR_PROBES when none fired (the countdown is
 * gone: the failure already fired, inside the operation, or was far).
 */
static int probe_countdown(void)
{
	int n;

	for (n = 0; n < NR_PROBES; n++)
		if (tdp_invalidate_begin(C->probe_mmu, (tdp_gfn_t)n,
					 (tdp_gfn_t)n + 1) == -ENOMEM)
			break;
	tdp_port_fail_alloc_after(-1);
	for (int i = 0; i < n; i++)
		assert_int_equal(tdp_invalidate_end(C->probe_mmu, (tdp_gfn_t)i,
						    (tdp_gfn_t)i + 1),
				 0);
	return n;
}

/* ---- what must not change ------------------------------------------------ */

struct snapshot {
	bool mapped[2][NR_WATCH];
	tdp_pfn_t pfn[2][NR_WATCH];
	uint64_t leaves[TDP_NR_ROOT_TYPES];
};

static void snap(struct snapshot *s)
{
	struct tdp_stats st;

	memset(s, 0, sizeof(*s));
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < NR_WATCH; i++)
			s->mapped[a][i] = sx_lookup_leaf(&C->e, watch[i], a,
							 NULL, &s->pfn[a][i]);
	assert_int_equal(tdp_mmu_get_stats(C->e.mmu, &st), 0);
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		for (int l = 1; l <= TDP_MAX_LEVEL; l++)
			s->leaves[t] += st.leaves[t][l] * tdp_level_pages(l);
}

/* Translations (not levels: a split may have happened) are unchanged. */
static void same_translations(const struct snapshot *a,
			      const struct snapshot *b, const char *op, int n)
{
	for (int x = 0; x < 2; x++) {
		for (int i = 0; i < NR_WATCH; i++) {
			SX_CHECK(a->mapped[x][i] == b->mapped[x][i] &&
					 a->pfn[x][i] == b->pfn[x][i],
				 "%s failing at allocation %d changed the "
				 "translation of %s GFN %#" PRIx64,
				 op, n, x ? "private" : "shared", watch[i]);
		}
	}
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		SX_CHECK(a->leaves[t] == b->leaves[t],
			 "%s failing at allocation %d changed the frames "
			 "mapped by root type %d: %" PRIu64 " -> %" PRIu64,
			 op, n, t, a->leaves[t], b->leaves[t]);
}

/* ---- the operations ---------------------------------------------------------- */

struct alloc_op {
	const char *name;
	/* Before arming: set the state up (not counted). */
	void (*prepare)(void);
	/* The operation; returns its result (>= 0 on success). */
	int (*run)(void);
	/* After a success: undo what prepare and run left. */
	void (*undo)(void);
};

static void prep_fresh_vcpu(void)
{
	assert_int_equal(tdp_vcpu_create(C->e.mmu, &C->fresh), 0);
}

static void undo_fresh_vcpu(void)
{
	tdp_vcpu_destroy(C->fresh);
	C->fresh = NULL;
}

static void prep_no_direct_root(void)
{
	assert_int_equal(tdp_mmu_invalidate_roots(C->e.mmu, TDP_ALIAS_SHARED),
			 0);
	assert_int_equal(tdp_mmu_zap_invalidated_roots(C->e.mmu), 0);
	prep_fresh_vcpu();
}

static int run_mmu_create(void)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.direct_bits = TS_SHARED_BIT,
		.host = ts_flush_host(NULL, false),
		.backend = ts_backend_ops(C->e.be),
	};

	return tdp_mmu_create(&cfg, &C->made);
}

static void undo_mmu_create(void)
{
	tdp_mmu_destroy(C->made);
	C->made = NULL;
}

static int run_vcpu_create(void)
{
	return tdp_vcpu_create(C->e.mmu, &C->fresh);
}

static int run_topup(void)
{
	return tdp_vcpu_topup(C->fresh);
}

/* A private 4 KiB fault in a 1 GiB region no other operation uses. */
static int run_map_private(void)
{
	return ts_map_seq(C->fresh, 0x1000000 + 7, ts_alias(true),
			  ts_pfn(0x1000000 + 7, ts_alias(true)), TDP_PROT_RWX,
			  TDP_LEVEL_4K, tdp_mmu_seq(C->e.mmu));
}

static void undo_map_private(void)
{
	assert_int_equal(tdp_zap_range(C->e.mmu, 0x1000000, 0x1000000 + 512,
				       TDP_ALIAS_PRIVATE),
			 0);
	undo_fresh_vcpu();
}

static int run_map_shared_new_root(void)
{
	return ts_map_seq(C->fresh, 0x2000000 + 9, ts_alias(false),
			  ts_pfn(0x2000000 + 9, ts_alias(false)), TDP_PROT_RWX,
			  TDP_LEVEL_4K, tdp_mmu_seq(C->e.mmu));
}

static void undo_map_shared(void)
{
	assert_int_equal(tdp_zap_range(C->e.mmu, 0x2000000, 0x2000000 + 512,
				       TDP_ALIAS_SHARED),
			 0);
	undo_fresh_vcpu();
}

static int run_load_root(void)
{
	tdp_pfn_t pfn;
	int level;

	return tdp_vcpu_load_root(C->fresh, TDP_ALIAS_SHARED, &pfn, &level);
}

static int run_root_get(void)
{
	return tdp_root_get(C->e.mmu, TDP_ROOT_DIRECT, &C->root);
}

static void undo_root_get(void)
{
	tdp_root_put(C->e.mmu, C->root);
	C->root = NULL;
	undo_fresh_vcpu();
}

static int run_invalidate_begin(void)
{
	return tdp_invalidate_begin(C->e.mmu, 0x3000000, 0x3000100);
}

static void undo_invalidate_begin(void)
{
	assert_int_equal(tdp_invalidate_end(C->e.mmu, 0x3000000, 0x3000100), 0);
}

/* A 1 GiB shared leaf, to be split down to 4 KiB over three 2 MiB. */
#define SPLIT_GFN 0x4000000ULL

static void prep_huge_leaf(void)
{
	int ret = sx_fault(&C->e, C->vcpu, SPLIT_GFN, false, TDP_PROT_RWX,
			   TDP_LEVEL_1G, 10.0, NULL);

	assert_true(ret == TDP_FAULT_FIXED || ret == TDP_FAULT_SPURIOUS);
}

static int run_split(void)
{
	return tdp_split_huge_range(C->e.mmu, SPLIT_GFN + 3 * TS_PAGES_2M,
				    SPLIT_GFN + 6 * TS_PAGES_2M, TDP_LEVEL_4K,
				    TDP_ALIAS_SHARED);
}

/* Zap-all frees the tables the split made, so that the next prepare
 * maps a 1 GiB leaf again. */
static void undo_split(void)
{
	assert_int_equal(tdp_zap_all(C->e.mmu), 0);
}

/* clang-format off */
static const struct alloc_op alloc_ops[] = {
	{ "tdp_mmu_create",          NULL,                run_mmu_create,          undo_mmu_create },
	{ "tdp_vcpu_create",         NULL,                run_vcpu_create,         undo_fresh_vcpu },
	{ "tdp_vcpu_topup",          prep_fresh_vcpu,     run_topup,               undo_fresh_vcpu },
	{ "tdp_map(private)",        prep_fresh_vcpu,     run_map_private,         undo_map_private },
	{ "tdp_map(shared, no root)", prep_no_direct_root, run_map_shared_new_root, undo_map_shared },
	{ "tdp_vcpu_load_root",      prep_no_direct_root, run_load_root,           undo_fresh_vcpu },
	{ "tdp_root_get",            prep_no_direct_root, run_root_get,            undo_root_get },
	{ "tdp_invalidate_begin",    NULL,                run_invalidate_begin,    undo_invalidate_begin },
	{ "tdp_split_huge_range",    prep_huge_leaf,      run_split,               undo_split },
};
/* clang-format on */

#define NR_ALLOC_OPS (sizeof(alloc_ops) / sizeof(alloc_ops[0]))

/* After -ENOMEM: the MMU keeps working for faults and zaps of both aliases. */
static void still_usable(const char *op, int n)
{
	for (int a = 0; a < 2; a++) {
		tdp_gfn_t g = 0x5000000 + (tdp_gfn_t)a * 3;
		int ret = sx_fault(&C->e, C->vcpu, g, a, TDP_PROT_RWX,
				   TDP_LEVEL_4K, 10.0, NULL);

		SX_CHECK(ret == TDP_FAULT_FIXED,
			 "after %s failed at allocation %d a fault returned %d",
			 op, n, ret);
		SX_CHECK(tdp_zap_range(C->e.mmu, g, g + 1, ts_alias(a)) == 0,
			 "after %s failed: zap", op);
	}
}

static void every_site(const struct alloc_op *op)
{
	int sites = -1;

	for (int n = 0; n <= MAX_SITES && sites < 0; n++) {
		struct snapshot before, after;
		int ret, left;

		if (op->prepare)
			op->prepare();
		snap(&before);
		tdp_port_fail_alloc_after(n);
		ret = op->run();
		left = probe_countdown();
		if (ret == -ENOMEM) {
			/* The failure fired inside the operation. */
			SX_CHECK(left == NR_PROBES,
				 "%s returned -ENOMEM at allocation %d but the "
				 "injected failure is still pending",
				 op->name, n);
			snap(&after);
			same_translations(&before, &after, op->name, n);
			sx_check_quiesced(&C->e);
			still_usable(op->name, n);
			/* The same operation now succeeds. */
			ret = op->run();
			SX_CHECK(ret >= 0,
				 "%s after a failure at allocation %d: %d",
				 op->name, n, ret);
			op->undo();
			continue;
		}
		SX_CHECK(ret >= 0, "%s with allocation %d failing: %d",
			 op->name, n, ret);
		SX_CHECK(left < NR_PROBES,
			 "%s succeeded although allocation %d failed (the "
			 "failure was swallowed)",
			 op->name, n);
		SX_CHECK(left == 0,
			 "%s made %d allocations but did not fail at "
			 "allocation %d",
			 op->name, n - left, n);
		sites = n - left;
		op->undo();
	}
	SX_CHECK(sites >= 1, "%s: no allocation site found within %d", op->name,
		 MAX_SITES);
	sx_check_quiesced(&C->e);
	printf("inject: %-26s %2d allocation sites, each -ENOMEM with the MMU "
	       "unchanged and usable\n",
	       op->name, sites);
}

/* ---- set-up ------------------------------------------------------------------- */

static int setup(void **state)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = ts_flush_host(NULL, false),
	};

	(void)state;
	C = calloc(1, sizeof(*C));
	if (!C || !sx_env_init(&C->e, 0, true, 4096))
		return -1;
	if (tdp_vcpu_create(C->e.mmu, &C->vcpu) ||
	    tdp_mmu_create(&cfg, &C->probe_mmu))
		return -1;
	/* Something mapped in both aliases whose translations must stay. */
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < NR_WATCH; i += 2)
			if (sx_fault(&C->e, C->vcpu, watch[i], a, TDP_PROT_RWX,
				     TDP_LEVEL_4K, 10.0,
				     NULL) != TDP_FAULT_FIXED)
				return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tdp_vcpu_destroy(C->vcpu);
	sx_env_fini(&C->e);
	tdp_mmu_destroy(C->probe_mmu);
	free(C);
	return sx_failures() ? -1 : 0;
}

static void test_every_site(void **state)
{
	long before = sx_failures();

	(void)state;
	for (size_t i = 0; i < NR_ALLOC_OPS; i++)
		every_site(&alloc_ops[i]);
	assert_int_equal(sx_failures() - before, 0);
}

/* Operations that must not allocate: armed at the next allocation, they
 * succeed and leave the failure pending. */
static int no_alloc_op(int i)
{
	struct tdp_mmu *mmu = C->e.mmu;
	uint64_t bitmap[8] = { 0 };
	tdp_spte_t spte;
	int level;

	switch (i) {
	case 0:
		/* A fault whose cache is full and whose root is loaded. */
		return ts_map_seq(C->vcpu, 0x6000000 + 1, ts_alias(true),
				  ts_pfn(0x6000000 + 1, ts_alias(true)),
				  TDP_PROT_RWX, TDP_LEVEL_4K, tdp_mmu_seq(mmu));
	case 1:
		return ts_map_seq(C->vcpu, 0x6000000 + 2, ts_alias(false),
				  ts_pfn(0x6000000 + 2, ts_alias(false)),
				  TDP_PROT_RWX, TDP_LEVEL_4K, tdp_mmu_seq(mmu));
	case 2:
		return tdp_wrprot_range(mmu, 0x6000000, 0x6000200,
					TDP_ALIAS_SHARED);
	case 3:
		return tdp_clear_dirty_range(mmu, 0x6000000, 0x6000200,
					     TDP_ALIAS_SHARED);
	case 4:
		return (int)tdp_harvest_dirty(mmu, 0x6000000, 0x6000200, bitmap,
					      TDP_ALIAS_SHARED);
	case 5:
		return tdp_clear_dirty_masked(mmu, 0x6000000, ~0ULL, true,
					      TDP_ALIAS_SHARED);
	case 6:
		return (int)tdp_age_range(mmu, 0x6000000, 0x6000200, true,
					  TDP_ALIAS_SHARED);
	case 7:
		return tdp_fast_fix(mmu, (0x6000000 + 2) | TS_SHARED_BIT,
				    TDP_PROT_READ | TDP_PROT_WRITE);
	case 8:
		return tdp_lookup(mmu, 0x6000000 + 1, TDP_ALIAS_PRIVATE, &spte,
				  &level);
	case 9:
		return tdp_recover_huge_pages(mmu, 0x6000000, 0x6000200,
					      TDP_LEVEL_2M, TDP_ALIAS_SHARED);
	case 10:
		return tdp_zap_range(mmu, 0x6000000, 0x6000200, TDP_ALIAS_BOTH);
	case 11:
		return tdp_zap_all(mmu);
	case 12:
		return tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED);
	case 13:
		return tdp_mmu_zap_invalidated_roots(mmu);
	case 14:
		return tdp_mmu_set_mmio_generation(mmu, 5);
	default:
		return -1;
	}
}

#define NR_NO_ALLOC 15

static void test_no_alloc_under_lock(void **state)
{
	long before = sx_failures();

	(void)state;
	for (int i = 0; i < NR_NO_ALLOC; i++) {
		int ret, left;

		/* Fill the caches and load the roots first. */
		assert_int_equal(tdp_vcpu_topup(C->vcpu), 0);
		if (i <= 1) {
			tdp_pfn_t pfn;
			int level;

			assert_int_equal(tdp_vcpu_load_root(C->vcpu,
							    TDP_ALIAS_SHARED,
							    &pfn, &level),
					 0);
			/* The private root: one fault loads it. */
			assert_true(sx_fault(&C->e, C->vcpu, 0x6000000 + 5,
					     true, TDP_PROT_RWX, TDP_LEVEL_4K,
					     10.0, NULL) >= 0);
			assert_int_equal(tdp_vcpu_topup(C->vcpu), 0);
		}
		tdp_port_fail_alloc_after(0);
		ret = no_alloc_op(i) >= 0;
		left = probe_countdown();
		SX_CHECK(ret,
			 "operation %d failed with an allocation armed to "
			 "fail",
			 i);
		SX_CHECK(left == 0,
			 "operation %d allocated (%d probes before the "
			 "failure)",
			 i, left);
	}
	sx_check_quiesced(&C->e);
	printf("inject: %d operations made no allocation\n", NR_NO_ALLOC);
	assert_int_equal(sx_failures() - before, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_site),
		cmocka_unit_test(test_no_alloc_under_lock),
	};
	struct sx_opts opts;
	int ret;

	if (sx_parse_opts(argc, argv, &opts, 1.0, 1.0, 1))
		return 2;
	tdp_thread_register();
	ret = cmocka_run_group_tests(tests, setup, teardown);
	tdp_thread_unregister();
	sx_summary("test-inject-alloc");
	return ret;
}
