/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The limits the engine is measured against, in the same binary:
 *   limit/flat_array   one store per page into a flat array;
 *   limit/radix_plain  a single-thread, non-atomic 4-level radix insert,
 *                      allocating and initializing its tables as the
 *                      engine does, with no lock and no RCU;
 *   limit/clear_loop   clearing as many SPTEs as zap/1g_4k with a plain
 *                      loop over already-built tables.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define BATCH 512
#define NONPRESENT (1ULL << 63)
#define PRESENT (1ULL << 11)
#define PFN_MASK 0x000ffffffffff000ULL

static void flat_array(tdpb_state *st, void *arg)
{
	size_t n = 1 << 24, i = 0;
	uint64_t *a = malloc(n * sizeof(*a));
	int64_t items = 0;

	(void)arg;
	while (tdpb_keep_running_batch(st, BATCH)) {
		for (int k = 0; k < BATCH; k++, i++)
			a[i & (n - 1)] = PRESENT | ((0x1000000 + i) << 12) | 7;
		tdpb_do_not_optimize(a);
		items += BATCH;
	}
	bench_check(st, a[(i - 1) & (n - 1)] ==
				(PRESENT | ((0x1000000 + i - 1) << 12) | 7),
		    "the last store is not in the array");
	tdpb_set_items_processed(st, items);
	free(a);
}

static uint64_t *plain_table(void)
{
	uint64_t *t = aligned_alloc(4096, 4096);

	for (int i = 0; i < 512; i++)
		t[i] = NONPRESENT;
	return t;
}

static void plain_free(uint64_t *t, int level)
{
	if (level > 1)
		for (int i = 0; i < 512; i++)
			if (t[i] & PRESENT)
				plain_free((uint64_t *)(uintptr_t)(t[i] & PFN_MASK),
					   level - 1);
	free(t);
}

static void plain_insert(uint64_t *root, uint64_t gfn, uint64_t pfn)
{
	uint64_t *t = root;

	for (int level = 4; level > 1; level--) {
		uint64_t *e = &t[(gfn >> ((level - 1) * 9)) & 511];

		if (!(*e & PRESENT)) {
			uint64_t *child = plain_table();

			*e = PRESENT | 7 | ((uint64_t)(uintptr_t)child & PFN_MASK);
		}
		t = (uint64_t *)(uintptr_t)(*e & PFN_MASK);
	}
	t[gfn & 511] = PRESENT | 0x107 | (pfn << 12);
}

/* The leaf @gfn maps in the plain tree at @root, or NONPRESENT. */
static uint64_t plain_lookup(const uint64_t *root, uint64_t gfn)
{
	const uint64_t *t = root;

	for (int level = 4; level > 1; level--) {
		uint64_t e = t[(gfn >> ((level - 1) * 9)) & 511];

		if (!(e & PRESENT))
			return NONPRESENT;
		t = (const uint64_t *)(uintptr_t)(e & PFN_MASK);
	}
	return t[gfn & 511];
}

static bool plain_maps(const uint64_t *root, uint64_t gfn, uint64_t pfn)
{
	return plain_lookup(root, gfn) == (PRESENT | 0x107 | (pfn << 12));
}

struct bench_radix {
	uint64_t *root;
};

struct bench_radix *bench_radix_new(void)
{
	struct bench_radix *r = malloc(sizeof(*r));

	r->root = plain_table();
	return r;
}

void bench_radix_insert(struct bench_radix *r, uint64_t gfn, uint64_t pfn)
{
	plain_insert(r->root, gfn, pfn);
}

bool bench_radix_maps(const struct bench_radix *r, uint64_t gfn, uint64_t pfn)
{
	return plain_maps(r->root, gfn, pfn);
}

void bench_radix_free(struct bench_radix *r)
{
	plain_free(r->root, 4);
	free(r);
}

static void radix_plain(tdpb_state *st, void *arg)
{
	uint64_t *root = plain_table();
	uint64_t gfn = BENCH_THREAD_SPAN;
	int64_t items = 0;

	(void)arg;
	while (tdpb_keep_running_batch(st, BATCH)) {
		for (int k = 0; k < BATCH; k++, gfn++)
			plain_insert(root, gfn, 0x1000000 + gfn);
		items += BATCH;
	}
	bench_check(st, plain_maps(root, BENCH_THREAD_SPAN,
				   0x1000000 + BENCH_THREAD_SPAN) &&
			    plain_maps(root, gfn - 1, 0x1000000 + gfn - 1),
		    "an inserted GFN is not mapped");
	tdpb_set_items_processed(st, items);
	plain_free(root, 4);
}

static void clear_loop(tdpb_state *st, void *arg)
{
	const uint64_t pages = 1ULL << 18; /* 1 GiB of 4 KiB mappings */
	uint64_t *root = plain_table();
	int64_t items = 0;

	(void)arg;
	while (tdpb_keep_running(st)) {
		tdpb_pause(st);
		for (uint64_t g = 0; g < pages; g++)
			plain_insert(root, g, 0x1000000 + g);
		if (!bench_check(st, plain_maps(root, pages - 1, 0x1000000 + pages - 1),
				 "populate failed"))
			break;
		tdpb_resume(st);
		/* The same walk a range zap does, with plain stores. */
		for (uint64_t g = 0; g < pages; g += 512) {
			uint64_t *t = root;

			for (int level = 4; level > 1; level--)
				t = (uint64_t *)(uintptr_t)(t[(g >> ((level - 1) * 9)) & 511] &
							    PFN_MASK);
			for (int i = 0; i < 512; i++)
				t[i] = NONPRESENT;
		}
		tdpb_do_not_optimize(root);
		items += (int64_t)pages;
	}
	bench_check(st, plain_lookup(root, 0) == NONPRESENT &&
			    plain_lookup(root, pages - 1) == NONPRESENT,
		    "a leaf survived the clear");
	tdpb_set_items_processed(st, items);
	plain_free(root, 4);
}

void bench_register_limits(void)
{
	tdpb_unit_ns(tdpb_register("limit/flat_array", flat_array, NULL));
	tdpb_unit_ns(tdpb_register("limit/radix_plain", radix_plain, NULL));
	tdpb_unit_ns(tdpb_register("limit/clear_loop", clear_loop, NULL));
}
