/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TDH.MEM.PAGE.DEMOTE and TDH.MEM.PAGE.PROMOTE of the simulated TDX
 * module: each precondition fails with its own status and changes
 * nothing, the children of a demoted page inherit its state, a promote
 * needs 512 identical children mapping one aligned 2 MiB run, a round
 * trip gives back the original leaf with nothing leaked, a 4 KiB ACCEPT
 * under a 2 MiB PENDING leaf exits to the host, and lock conflicts are
 * OPERAND_BUSY.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "module_fixture.h"

#define SHARED_BIT FX_SHARED_BIT
/* The 2 MiB page every test splits and merges. */
#define GFN 512ULL

static int setup(void **state)
{
	return fx_setup(state, 16 * 512);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

static tdp_pfn_t chunk_2m(struct fixture *f)
{
	tdp_pfn_t pfn = host_mem_alloc_2m(&f->mem, 1, HOST_POOL_TDX,
					  HOST_PAGE_PRIVATE, GFN);

	assert_int_not_equal(pfn, 0);
	return pfn;
}

/*
 * Two adjacent 2 MiB chunks: the allocator hands out free chunks in
 * address order, so consecutive ones are adjacent unless a hole or a
 * partly used chunk lies between them.
 */
static tdp_pfn_t chunk_4m(struct fixture *f)
{
	tdp_pfn_t a = chunk_2m(f);

	for (int i = 0; i < 8; i++) {
		tdp_pfn_t b = chunk_2m(f);

		if (b == a + 512)
			return a;
		a = b;
	}
	fail_msg("no two adjacent free 2 MiB chunks");
	return 0;
}


/* The tables down to level 2 and a PENDING 2 MiB page at GFN. */
static tdp_pfn_t aug_2m(struct fixture *f)
{
	tdp_pfn_t chunk = chunk_2m(f);

	fx_link_down_to(f, GFN, 2);
	assert_int_equal(tdx_page_aug(f->mod, GFN, 2, chunk, NULL),
			 TDX_SUCCESS);
	return chunk;
}

/*
 * The tables down to level 1 and 512 PENDING 4 KiB pages at GFN, child i
 * mapping @pfn[i] (none where it is 0).
 */
static void aug_children(struct fixture *f, const tdp_pfn_t *pfn)
{
	fx_link_down_to(f, GFN, 1);
	for (int i = 0; i < 512; i++)
		if (pfn[i])
			assert_int_equal(tdx_page_aug(f->mod, GFN + i, 1,
						      pfn[i], NULL),
					 TDX_SUCCESS);
}

/* BLOCK, then TRACK with no vCPU in guest mode: tracked at once. */
static void block_tracked(struct fixture *f, tdp_gfn_t gfn, int level)
{
	assert_int_equal(tdx_range_block(f->mod, gfn, level, NULL),
			 TDX_SUCCESS);
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
}

/* The entry the S-EPT walk toward @gfn ends at; checks its level. */
static uint64_t entry_at(struct fixture *f, tdp_gfn_t gfn, int level)
{
	uint64_t e;
	int l;

	tdx_sept_lookup(f->mod, gfn, &e, &l);
	assert_int_equal(l, level);
	return e;
}

/* The entry at (@gfn, @level) whatever its state, read as the CPU does. */
static uint64_t sept_entry(struct fixture *f, tdp_gfn_t gfn, int level)
{
	const uint64_t *table = tdx_sept_root_table(f->mod);

	for (int l = 4;; l--) {
		uint64_t e = table[(gfn >> ((l - 1) * 9)) & 511];

		if (l == level)
			return e;
		table = tdx_sept_table(f->mod, sept_entry_pfn(e));
		assert_non_null(table);
	}
}

/* The PAMT says the 512 pages from @pfn are one private 2 MiB page. */
static void assert_pamt_2m(struct fixture *f, tdp_pfn_t pfn)
{
	for (int i = 0; i < 512; i++) {
		struct tdx_pamt_info p = tdx_pamt_get(f->mod, pfn + i);

		assert_int_equal(p.type, PAMT_REG);
		assert_int_equal(p.size_level, 2);
		assert_int_equal(p.gfn, GFN + i);
	}
}

/* After a demote: the children map the 512 pages from @pfn in @state. */
static void assert_children(struct fixture *f, tdp_pfn_t pfn, int state)
{
	for (int i = 0; i < 512; i++) {
		uint64_t e = entry_at(f, GFN + i, 1);
		struct tdx_pamt_info p = tdx_pamt_get(f->mod, pfn + i);

		assert_int_equal(sept_entry_state(e), state);
		assert_int_equal(sept_entry_pfn(e), pfn + i);
		assert_int_equal(e & SEPT_RWX,
				 state == SEPT_MAPPED ? SEPT_RWX : 0);
		assert_int_equal(e & SEPT_PS, 0);
		assert_int_equal(p.type, PAMT_REG);
		assert_int_equal(p.size_level, 1);
		assert_int_equal(p.gfn, GFN + i);
	}
}

/* ---- DEMOTE -------------------------------------------------------------- */

static void test_demote_operands(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);

	aug_2m(f);
	block_tracked(f, GFN, 2);
	/* Only 2 MiB pages split; the GPA is private and aligned. */
	assert_status(tdx_page_demote(f->mod, GFN, 1, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_demote(f->mod, 0, 3, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_demote(f->mod, GFN + 1, 2, p, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_demote(f->mod, GFN | SHARED_BIT, 2, p, NULL),
		      TDX_OPERAND_INVALID);
	/* No tables in another 1 GiB region: the walk stops at level 3. */
	assert_status(tdx_page_demote(f->mod, 1ULL << 18, 2, p, &err),
		      TDX_EPT_WALK_FAILED);
	assert_int_equal(err.level, 3);
	assert_int_equal(err.state, SEPT_FREE);
	/* Nothing mapped at the next 2 MiB. */
	assert_status(tdx_page_demote(f->mod, GFN + 512, 2, p, &err),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(err.state, SEPT_FREE);
	assert_true(fx_reported(f, TDX_EPT_ENTRY_STATE_INCORRECT));
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_NDA);
	assert_int_equal(tdx_sept_pages(f->mod), 2);
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_PAGE_DEMOTE, SIM_OUT_ERROR),
			 6);
}

static void test_demote_needs_block(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t chunk = aug_2m(f);
	int64_t children = tdx_td_child_count(f->mod);
	uint64_t before;

	/* PENDING, not blocked. */
	assert_status(tdx_page_demote(f->mod, GFN, 2, p, &err),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	assert_int_equal(err.level, 2);
	assert_int_equal(err.state, SEPT_PENDING);
	assert_true(fx_reported(f, TDX_GPA_RANGE_NOT_BLOCKED));
	/* MAPPED, not blocked. */
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN, 2, NULL),
			 TDX_SUCCESS);
	before = entry_at(f, GFN, 2);
	assert_status(tdx_page_demote(f->mod, GFN, 2, p, &err),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	assert_int_equal(err.state, SEPT_MAPPED);
	/* Nothing changed. */
	assert_int_equal(entry_at(f, GFN, 2), before);
	assert_int_equal(sept_entry_state(before), SEPT_MAPPED);
	assert_pamt_2m(f, chunk);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_NDA);
	assert_int_equal(tdx_td_child_count(f->mod), children);
}

static void test_demote_needs_tracking(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	bool flush;

	aug_2m(f);
	/* vCPU 0 runs in the epoch of the block. */
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	assert_int_equal(tdx_range_block(f->mod, GFN, 2, NULL), TDX_SUCCESS);
	assert_status(tdx_page_demote(f->mod, GFN, 2, p, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_true(fx_reported(f, TDX_TLB_TRACKING_NOT_DONE));
	/* TRACK, but the vCPU has not left guest mode since. */
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
	assert_status(tdx_page_demote(f->mod, GFN, 2, p, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_int_equal(sept_entry_state(entry_at(f, GFN, 2)),
			 SEPT_PENDING_BLOCKED);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_NDA);
	/* The kick. */
	tdx_vp_exit(f->mod, 0);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	/* Demoted already: a table, not a leaf. */
	assert_status(tdx_page_demote(f->mod, GFN, 2,
				      fx_page(f, HOST_PAGE_SEPT), NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_demote(f->mod, GFN, 2,
				      fx_page(f, HOST_PAGE_SEPT), NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
}

static void test_demote_new_page(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t outside = host_mem_alloc(&f->mem, 1, HOST_POOL_NON_TDX,
					   HOST_PAGE_SEPT, 0);
	tdp_pfn_t table = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t chunk;

	assert_int_not_equal(outside, 0);
	chunk = aug_2m(f);
	/* @table becomes an S-EPT page of another 512 GiB region. */
	assert_int_equal(tdx_sept_add(f->mod, 1ULL << 27, 4, table, NULL),
			 TDX_SUCCESS);
	block_tracked(f, GFN, 2);
	/* Not TDX-usable memory. */
	assert_status(tdx_page_demote(f->mod, GFN, 2, outside, NULL),
		      TDX_OPERAND_ADDR_RANGE_ERROR);
	assert_true(fx_reported(f, TDX_OPERAND_ADDR_RANGE_ERROR));
	/* Not free: an S-EPT page, a private page (of this very 2 MiB). */
	assert_status(tdx_page_demote(f->mod, GFN, 2, table, NULL),
		      TDX_PAGE_METADATA_INCORRECT);
	assert_status(tdx_page_demote(f->mod, GFN, 2, chunk + 3, NULL),
		      TDX_PAGE_METADATA_INCORRECT);
	assert_true(fx_reported(f, TDX_PAGE_METADATA_INCORRECT));
	/* Nothing changed; a free TDX page works. */
	assert_int_equal(sept_entry_state(entry_at(f, GFN, 2)),
			 SEPT_PENDING_BLOCKED);
	assert_pamt_2m(f, chunk);
	assert_int_equal(tdx_sept_pages(f->mod), 3);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	assert_int_equal(tdx_sept_pages(f->mod), 4);
}

static void test_demote_pending_children(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t chunk = aug_2m(f);
	int64_t children = tdx_td_child_count(f->mod);
	uint64_t e;

	host_page_set_tag(host_mem_page(&f->mem, chunk + 5),
			  SIM_TAG(GFN + 5, 7));
	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	/* The entry points to the new table and is not blocked. */
	e = sept_entry(f, GFN, 2);
	assert_int_equal(sept_entry_state(e), SEPT_NL_MAPPED);
	assert_int_equal(sept_entry_pfn(e), p);
	assert_int_equal(e & (SEPT_RWX | SEPT_PS), SEPT_RWX);
	assert_children(f, chunk, SEPT_PENDING);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_EPT);
	assert_int_equal(tdx_td_child_count(f->mod), children + 1);
	assert_int_equal(tdx_sept_pages(f->mod), 3);
	/* Contents are not touched. */
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, chunk + 5)),
			 SIM_TAG(GFN + 5, 7));
	assert_int_equal(sim_report_total(&f->report), 0);
}

static void test_demote_mapped_children(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t chunk = aug_2m(f);
	const uint64_t *table;

	assert_int_equal(tdx_page_accept(f->mod, 0, GFN, 2, NULL),
			 TDX_SUCCESS);
	host_page_set_tag(host_mem_page(&f->mem, chunk + 9),
			  SIM_TAG(GFN + 9, 3));
	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	assert_children(f, chunk, SEPT_MAPPED);
	/* The CPU walks through the new NL_MAPPED entry into the table. */
	table = tdx_sept_table(f->mod, p);
	assert_non_null(table);
	assert_int_equal(sept_entry_pfn(table[9]), chunk + 9);
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, chunk + 9)),
			 SIM_TAG(GFN + 9, 3));
	/* The guest's pages stay accepted. */
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN + 9, 1, NULL),
			 TDX_PAGE_ALREADY_ACCEPTED);
	assert_int_equal(sim_report_total(&f->report), 0);
}

/* ---- ACCEPT under a 2 MiB PENDING leaf ----------------------------------- */

static void test_accept_4k_under_2m_pending(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err = { 0 };
	tdp_pfn_t chunk = aug_2m(f);

	host_page_set_tag(host_mem_page(&f->mem, chunk + 6),
			  SIM_TAG(GFN + 6, 4));
	/*
	 * The walk stops at the PENDING 2 MiB leaf above the 4 KiB target:
	 * a TD exit the host recognises by the level and state in @err.
	 */
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN + 5, 1, &err),
			 TDX_SIM_TD_EXIT_EPT_VIOLATION);
	assert_int_equal(err.level, 2);
	assert_int_equal(err.state, SEPT_PENDING);
	assert_int_equal(sept_entry_state(entry_at(f, GFN, 2)), SEPT_PENDING);
	/* Not a host protocol error. */
	assert_int_equal(sim_report_total(&f->report), 0);

	/* The host demotes; the guest's retry accepts that one page. */
	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2,
					 fx_page(f, HOST_PAGE_SEPT), NULL),
			 TDX_SUCCESS);
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN + 5, 1, &err),
			 TDX_SUCCESS);
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, chunk + 5)),
			 SIM_TAG(GFN + 5, 0));
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, chunk + 6)),
			 SIM_TAG(GFN + 6, 4));
	assert_int_equal(sept_entry_state(entry_at(f, GFN + 6, 1)),
			 SEPT_PENDING);
	/* Now a 2 MiB ACCEPT meets a table. */
	assert_status(tdx_page_accept(f->mod, 0, GFN, 2, &err),
		      TDX_PAGE_SIZE_MISMATCH);
	assert_int_equal(sim_report_total(&f->report), 0);
}

/* ---- PROMOTE ------------------------------------------------------------- */

static void test_promote_needs_block_and_tracking(void **state)
{
	struct fixture *f = *state;
	struct tdx_err_info err;
	tdp_pfn_t released = 0;
	bool flush;

	aug_2m(f);
	/* A leaf, unblocked or blocked, is not a table to merge. */
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(err.state, SEPT_PENDING);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_int_equal(err.state, SEPT_PENDING_BLOCKED);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2,
					 fx_page(f, HOST_PAGE_SEPT), NULL),
			 TDX_SUCCESS);
	/* Operands; nothing at the next 2 MiB; no tables elsewhere. */
	assert_status(tdx_page_promote(f->mod, GFN, 1, &released, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_promote(f->mod, 0, 3, &released, NULL),
		      TDX_OPERAND_INVALID);
	assert_status(tdx_page_promote(f->mod, GFN + 512, 2, &released, NULL),
		      TDX_EPT_ENTRY_STATE_INCORRECT);
	assert_status(tdx_page_promote(f->mod, 1ULL << 18, 2, &released,
				       NULL),
		      TDX_EPT_WALK_FAILED);
	/* The table is NL_MAPPED: not blocked. */
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_GPA_RANGE_NOT_BLOCKED);
	assert_int_equal(err.state, SEPT_NL_MAPPED);
	assert_true(fx_reported(f, TDX_GPA_RANGE_NOT_BLOCKED));
	/* Blocked while vCPU 0 runs: not tracked until it has left. */
	assert_int_equal(tdx_vp_enter(f->mod, 0, &flush), TDX_SUCCESS);
	assert_int_equal(tdx_range_block(f->mod, GFN, 2, NULL), TDX_SUCCESS);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_int_equal(tdx_track(f->mod), TDX_SUCCESS);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
		      TDX_TLB_TRACKING_NOT_DONE);
	assert_true(fx_reported(f, TDX_TLB_TRACKING_NOT_DONE));
	assert_int_equal(released, 0);
	assert_int_equal(tdx_sept_pages(f->mod), 3);
	tdx_vp_exit(f->mod, 0);
	assert_int_equal(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
			 TDX_SUCCESS);
	assert_int_not_equal(released, 0);
	assert_int_equal(tdx_sept_pages(f->mod), 2);
}

static void test_promote_child_missing(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t chunk = chunk_2m(f), pfn[512];
	struct tdx_err_info err;
	tdp_pfn_t released = 0;
	uint64_t e;

	/* Built by 4 KiB AUGs of one aligned 2 MiB run, child 511 missing. */
	for (int i = 0; i < 512; i++)
		pfn[i] = i == 511 ? 0 : chunk + i;
	aug_children(f, pfn);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.level, 1);
	assert_int_equal(err.state, SEPT_FREE);
	assert_true(fx_reported(f, TDX_EPT_INVALID_PROMOTE_CONDITIONS));
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_PAGE_PROMOTE, SIM_OUT_ERROR),
			 1);
	/* Nothing changed: the entry and children are as before. */
	e = entry_at(f, GFN, 2);
	assert_int_equal(sept_entry_state(e), SEPT_NL_BLOCKED);
	assert_int_equal(tdx_sept_table(f->mod, sept_entry_pfn(e))[0] &
				 SEPT_LOCKED,
			 0);

	/* With the last child mapped it merges. */
	assert_int_equal(tdx_range_unblock(f->mod, GFN, 2, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_page_aug(f->mod, GFN + 511, 1, chunk + 511, NULL),
			 TDX_SUCCESS);
	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
			 TDX_SUCCESS);
	assert_int_equal(released, sept_entry_pfn(e));
	e = entry_at(f, GFN + 77, 2);
	assert_int_equal(sept_entry_state(e), SEPT_PENDING);
	assert_int_equal(sept_entry_pfn(e), chunk);
	assert_int_equal(e & SEPT_PS, SEPT_PS);
	assert_pamt_2m(f, chunk);
	assert_int_equal(tdx_pamt_get(f->mod, released).type, PAMT_NDA);
}

static void test_promote_first_child_missing(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t chunk = chunk_2m(f), pfn[512];
	struct tdx_err_info err;

	for (int i = 0; i < 512; i++)
		pfn[i] = i == 0 ? 0 : chunk + i;
	aug_children(f, pfn);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, NULL, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.state, SEPT_FREE);
}

static void test_promote_children_differ(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT);
	tdp_pfn_t chunk = aug_2m(f);
	struct tdx_err_info err;
	tdp_pfn_t released = 0;
	uint64_t e;

	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	/* Child 7 accepted, the others PENDING. */
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN + 7, 1, NULL),
			 TDX_SUCCESS);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.state, SEPT_MAPPED);
	/* Mixed accept states: refused, counted, but no protocol error (the
	 * host cannot know which pages the guest accepted). */
	assert_false(fx_reported(f, TDX_EPT_INVALID_PROMOTE_CONDITIONS));
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_PAGE_PROMOTE, SIM_OUT_ERROR),
			 1);
	/* Child 0 blocked: not MAPPED or PENDING. */
	assert_int_equal(tdx_range_unblock(f->mod, GFN, 2, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN, 1, NULL),
			 TDX_SUCCESS);
	block_tracked(f, GFN, 1);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, &released, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.state, SEPT_BLOCKED);
	assert_int_equal(released, 0);

	/* All accepted and unblocked: a MAPPED 2 MiB leaf. */
	assert_int_equal(tdx_range_unblock(f->mod, GFN, 2, NULL), TDX_SUCCESS);
	assert_int_equal(tdx_range_unblock(f->mod, GFN, 1, NULL), TDX_SUCCESS);
	for (int i = 1; i < 512; i++)
		assert_int_equal(tdx_status_is_error(tdx_page_accept(
					 f->mod, 0, GFN + i, 1, NULL)),
				 false);
	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
			 TDX_SUCCESS);
	assert_int_equal(released, p);
	e = entry_at(f, GFN, 2);
	assert_int_equal(sept_entry_state(e), SEPT_MAPPED);
	assert_int_equal(e & SEPT_RWX, SEPT_RWX);
	assert_pamt_2m(f, chunk);
}

static void test_promote_not_contiguous(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t chunk = chunk_2m(f), pfn[512];
	struct tdx_err_info err;

	/* Child 100 maps a page from elsewhere. */
	for (int i = 0; i < 512; i++)
		pfn[i] = i == 100 ? fx_page(f, HOST_PAGE_PRIVATE) : chunk + i;
	aug_children(f, pfn);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, NULL, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.level, 1);
	assert_int_equal(err.state, SEPT_PENDING);
	assert_int_equal(sept_entry_state(entry_at(f, GFN, 2)),
			 SEPT_NL_BLOCKED);
}

static void test_promote_out_of_order(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t chunk = chunk_2m(f), pfn[512];
	struct tdx_err_info err;

	/* The right 512 pages, children 1 and 2 swapped. */
	for (int i = 0; i < 512; i++)
		pfn[i] = chunk + i;
	pfn[1] = chunk + 2;
	pfn[2] = chunk + 1;
	aug_children(f, pfn);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, NULL, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
}

static void test_promote_misaligned(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t run = chunk_4m(f) + 1, pfn[512];
	struct tdx_err_info err;

	/* 512 contiguous pages whose first is not 2 MiB aligned. */
	for (int i = 0; i < 512; i++)
		pfn[i] = run + i;
	aug_children(f, pfn);
	block_tracked(f, GFN, 2);
	assert_status(tdx_page_promote(f->mod, GFN, 2, NULL, &err),
		      TDX_EPT_INVALID_PROMOTE_CONDITIONS);
	assert_int_equal(err.state, SEPT_PENDING);
	assert_int_equal(tdx_pamt_get(f->mod, run).size_level, 1);
}

/* ---- round trips --------------------------------------------------------- */

/* Remove the 2 MiB page at GFN and every table, then tear the TD down. */
static void remove_all(struct fixture *f, tdp_pfn_t chunk)
{
	tdp_pfn_t removed;

	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_remove(f->mod, GFN, 2, &removed, NULL),
			 TDX_SUCCESS);
	assert_int_equal(removed, chunk);
	for (int level = 3; level <= 4; level++) {
		tdp_gfn_t base = GFN & ~(tdp_level_pages(level) - 1);

		block_tracked(f, base, level);
		assert_int_equal(tdx_sept_remove(f->mod, base, level, &removed,
						 NULL),
				 TDX_SUCCESS);
		assert_true(host_mem_free(&f->mem, removed));
	}
	assert_int_equal(tdx_td_child_count(f->mod), 0);
	assert_int_equal(tdx_sept_pages(f->mod), 0);
	assert_int_equal(tdx_module_teardown(f->mod), TDX_SUCCESS);
}

/*
 * The second half of a round trip: block and track the split 2 MiB entry
 * at GFN and PAGE.PROMOTE it back.  The entry is @original again, bit for
 * bit, and the S-EPT page released is @table_pfn.  Returns it.
 */
static tdp_pfn_t promote_to_original(struct fixture *f, uint64_t original,
				     tdp_pfn_t table_pfn)
{
	tdp_pfn_t released = 0;

	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
			 TDX_SUCCESS);
	assert_int_equal(entry_at(f, GFN, 2), original);
	assert_int_equal(released, table_pfn);
	return released;
}

static void test_round_trip_mapped(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT), released;
	tdp_pfn_t chunk = aug_2m(f);
	int64_t children, sept_pages;
	uint64_t original;
	const uint64_t *table;

	assert_int_equal(tdx_page_accept(f->mod, 0, GFN, 2, NULL),
			 TDX_SUCCESS);
	original = entry_at(f, GFN, 2);
	children = tdx_td_child_count(f->mod);
	sept_pages = tdx_sept_pages(f->mod);

	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	/* While split: the guest writes a page, the host blocks another. */
	host_page_set_tag(host_mem_page(&f->mem, chunk + 3),
			  SIM_TAG(GFN + 3, 5));
	block_tracked(f, GFN + 200, 1);
	assert_int_equal(tdx_range_unblock(f->mod, GFN + 200, 1, NULL),
			 TDX_SUCCESS);

	/* The original leaf, bit for bit; the table page released. */
	released = promote_to_original(f, original, p);
	assert_int_equal(tdx_pamt_get(f->mod, p).type, PAMT_NDA);
	assert_pamt_2m(f, chunk);
	assert_int_equal(tdx_td_child_count(f->mod), children);
	assert_int_equal(tdx_sept_pages(f->mod), sept_pages);
	table = tdx_sept_table(f->mod, p);
	for (int i = 0; i < 512; i++)
		assert_int_equal(sept_entry_state(table[i]), SEPT_FREE);
	assert_int_equal(host_page_tag(host_mem_page(&f->mem, chunk + 3)),
			 SIM_TAG(GFN + 3, 5));
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN + 3, 1, NULL),
			 TDX_PAGE_ALREADY_ACCEPTED);
	/* The host takes the page back; no page is left with the TD. */
	assert_true(host_mem_free(&f->mem, released));
	remove_all(f, chunk);
	assert_int_equal(host_mem_in_use(&f->mem, HOST_PAGE_SEPT), 0);
	assert_int_equal(sim_report_total(&f->report), 0);
}

static void test_round_trip_pending(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT), released;
	tdp_pfn_t chunk = aug_2m(f);
	uint64_t original = entry_at(f, GFN, 2);

	block_tracked(f, GFN, 2);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	released = promote_to_original(f, original, p);
	/* Still PENDING: the guest accepts it whole. */
	assert_int_equal(tdx_page_accept(f->mod, 0, GFN, 2, NULL),
			 TDX_SUCCESS);
	assert_true(host_mem_free(&f->mem, released));
	remove_all(f, chunk);
	assert_int_equal(sim_report_total(&f->report), 0);
}

/* ---- busy ---------------------------------------------------------------- */

static void test_busy(void **state)
{
	struct fixture *f = *state;
	tdp_pfn_t p = fx_page(f, HOST_PAGE_SEPT), released = 0;
	const uint64_t *table;
	tdx_status_t st;

	aug_2m(f);
	block_tracked(f, GFN, 2);
	/* An in-flight call holds the 2 MiB entry. */
	assert_true(tdx_debug_hold_entry(f->mod, GFN, 2));
	st = tdx_page_demote(f->mod, GFN, 2, p, NULL);
	assert_true(tdx_status_is_busy(st));
	assert_int_equal(st & 0xFFFFFFFF, TDX_OPERAND_ID_RCX);
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_PAGE_DEMOTE, SIM_OUT_BUSY),
			 1);
	tdx_debug_release_entry(f->mod, GFN, 2);
	/* Injected: busy at the busy rate, never a failure. */
	tdx_module_set_injection(f->mod, 1000000, 0);
	assert_true(tdx_status_is_busy(tdx_page_demote(f->mod, GFN, 2, p,
						       NULL)));
	tdx_module_set_injection(f->mod, 0, 1000000);
	assert_int_equal(tdx_page_demote(f->mod, GFN, 2, p, NULL),
			 TDX_SUCCESS);
	tdx_module_set_injection(f->mod, 0, 0);

	/* A guest ACCEPT on child 100 was in flight when the host blocked. */
	assert_true(tdx_debug_hold_entry(f->mod, GFN + 100, 1));
	block_tracked(f, GFN, 2);
	assert_true(tdx_status_is_busy(tdx_page_promote(f->mod, GFN, 2,
							&released, NULL)));
	/* The other children were let go again. */
	table = tdx_sept_table(f->mod, p);
	for (int i = 0; i < 512; i++)
		assert_int_equal(table[i] & SEPT_LOCKED,
				 i == 100 ? SEPT_LOCKED : 0);
	tdx_debug_release_entry(f->mod, GFN + 100, 1);
	tdx_module_set_injection(f->mod, 1000000, 0);
	assert_true(tdx_status_is_busy(tdx_page_promote(f->mod, GFN, 2,
							&released, NULL)));
	tdx_module_set_injection(f->mod, 0, 0);
	assert_int_equal(tdx_page_promote(f->mod, GFN, 2, &released, NULL),
			 TDX_SUCCESS);
	assert_int_equal(released, p);

	assert_int_equal(
		sim_seamcall_read(&f->stats, SIM_SC_PAGE_DEMOTE, SIM_OUT_BUSY_INJECTED),
		1);
	assert_int_equal(
		sim_seamcall_read(&f->stats, SIM_SC_PAGE_PROMOTE, SIM_OUT_BUSY_INJECTED),
		1);
	assert_int_equal(sim_seamcall_read(&f->stats, SIM_SC_PAGE_PROMOTE, SIM_OUT_BUSY),
			 1);
	/* Busy is not a protocol error. */
	assert_int_equal(sim_report_total(&f->report), 0);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_demote_operands),
		TEST(test_demote_needs_block),
		TEST(test_demote_needs_tracking),
		TEST(test_demote_new_page),
		TEST(test_demote_pending_children),
		TEST(test_demote_mapped_children),
		TEST(test_accept_4k_under_2m_pending),
		TEST(test_promote_needs_block_and_tracking),
		TEST(test_promote_child_missing),
		TEST(test_promote_first_child_missing),
		TEST(test_promote_children_differ),
		TEST(test_promote_not_contiguous),
		TEST(test_promote_out_of_order),
		TEST(test_promote_misaligned),
		TEST(test_round_trip_mapped),
		TEST(test_round_trip_pending),
		TEST(test_busy),
	};

	return cmocka_run_group_tests_name("sim-tdx-demote", tests, NULL,
					   NULL);
}
