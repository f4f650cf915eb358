/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The private-backend adapter (see backend.h). */
#include "backend.h"

#include <inttypes.h>
#include <sched.h>
#include <string.h>

#include "sim.h"

/* Retries of a busy removal SEAMCALL with vCPUs held out before giving up. */
#define REMOVAL_MAX_TRIES 100000
/* Busy retries of one removal SEAMCALL between two yields of the CPU. */
#define REMOVAL_YIELD_EVERY 64

static int status_to_errno(tdx_status_t st)
{
	if (st == TDX_SUCCESS)
		return 0;
	if (tdx_status_is_busy(st))
		return -EBUSY;
	if (tdx_status_class(st) == TDX_SIM_INJECTED_FAILURE)
		return SIM_ERR_INJECTED;
	return SIM_ERR_TDX;
}

/* ---- the engine's side of the contract ----------------------------------- */

static void map_begin(struct sim *s, const char *what, tdp_gfn_t gfn)
{
	__atomic_add_fetch(&s->backend.maps_in_flight, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&s->backend.removals_in_flight, __ATOMIC_ACQUIRE))
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "%s ran while a removal callback was running "
			      "(removals need mmu_lock for write)", what);
}

static void map_end(struct sim *s)
{
	__atomic_sub_fetch(&s->backend.maps_in_flight, 1, __ATOMIC_RELEASE);
}

static void removal_begin(struct sim *s, const char *what, tdp_gfn_t gfn)
{
	int64_t others = __atomic_add_fetch(&s->backend.removals_in_flight, 1,
					    __ATOMIC_ACQ_REL) - 1;

	if (others || __atomic_load_n(&s->backend.maps_in_flight,
				      __ATOMIC_ACQUIRE))
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "%s ran concurrently with another backend "
			      "callback", what);
}

static void removal_end(struct sim *s)
{
	__atomic_sub_fetch(&s->backend.removals_in_flight, 1,
			   __ATOMIC_RELEASE);
}

/*
 * The engine's @what callback names, from @pfn on, the host's private
 * page of every GFN of the level-@level range at @gfn (@verb: how the
 * callback uses them).  Reports the first page that is not.
 */
static void check_host_private_pages(struct sim *s, const char *what,
				     const char *verb, tdp_gfn_t gfn,
				     int level, tdp_pfn_t pfn)
{
	for (uint64_t i = 0; i < tdp_level_pages(level); i++) {
		tdp_pfn_t resolved = sim_host_private_pfn(s, gfn + i);

		if (pfn + i == resolved)
			continue;
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn + i,
			      SIM_NO_VCPU,
			      "%s(level %d) %s pfn %#" PRIx64
			      " but the host's private page is %#" PRIx64,
			      what, level, verb, pfn + i, resolved);
		break;
	}
}

/*
 * A lockless lookup of the mirror entry toward @gfn, counted as a check;
 * false before sim_create() stored the MMU, and once lookups fail.
 */
static bool mirror_lookup(struct sim *s, tdp_gfn_t gfn, tdp_spte_t *spte,
			  int *lvl)
{
	if (!s->mmu || tdp_lookup(s->mmu, gfn, TDP_ALIAS_PRIVATE, spte, lvl))
		return false;
	sim_count(&s->stats, SIM_C_CHECK_FROZEN, 1);
	return true;
}

/*
 * The freeze protocol seen from the backend: while a callback works on the
 * mirror entry (@gfn, @level), the engine holds that entry FROZEN, so no
 * lockless reader takes it for a usable mapping and no other fault
 * installs anything there (backend.h).  tdp_lookup() (RCU only, no
 * mmu_lock) reports a frozen entry as the non-present SPTE where its walk
 * stopped, with that level.
 *
 * A walk that stops above @level at a non-present entry is left alone:
 * teardown clears the root, and remove_leaf of a leaf inside a table the
 * engine unlinked and tears down (its entry frozen too) is unreachable by
 * design.  A walk that stops above @level at a present
 * leaf, at @level at anything but FROZEN, or goes below @level (a table
 * is linked there) is a breach: the callback runs on an entry another
 * thread can read, or write, as a usable one.
 */
static void check_frozen(struct sim *s, const char *what, tdp_gfn_t gfn,
			 int level)
{
	const struct tdp_spte_format *fmt;
	tdp_spte_t spte;
	int lvl;

	if (!mirror_lookup(s, gfn, &spte, &lvl))
		return;
	fmt = tdp_mmu_format(s->mmu);
	if (lvl > level && !tdp_spte_is_present(fmt, spte))
		return;
	if (lvl == level && tdp_spte_is_frozen(fmt, spte))
		return;
	sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
		      "%s(level %d): the mirror entry is not FROZEN while the "
		      "backend works (lockless lookup stops at level %d, "
		      "spte %#" PRIx64 ")", what, level, lvl, spte);
}

/*
 * free_table(@gfn, @level): the table's entry at @level was cleared (or,
 * below a table being torn down, frozen) before the call, so a lockless
 * walk toward @gfn must stop at @level or above at a non-present entry; a
 * walk that goes below @level still finds the table linked.
 */
static void check_table_unlinked(struct sim *s, tdp_gfn_t gfn, int level)
{
	const struct tdp_spte_format *fmt;
	tdp_spte_t spte;
	int lvl;

	if (!mirror_lookup(s, gfn, &spte, &lvl))
		return;
	fmt = tdp_mmu_format(s->mmu);
	if (lvl >= level && !tdp_spte_is_present(fmt, spte))
		return;
	sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
		      "free_table(level %d): the table is still reachable in "
		      "the mirror (lockless lookup stops at level %d, spte %#"
		      PRIx64 ")", level, lvl, spte);
}

/* ---- removal-path SEAMCALLs ---------------------------------------------- */

enum removal_op {
	REMOVAL_BLOCK,
	REMOVAL_PAGE_REMOVE,
	REMOVAL_SEPT_REMOVE,
	REMOVAL_PAGE_DEMOTE,
	REMOVAL_PAGE_PROMOTE,
	REMOVAL_UNBLOCK,
};

struct removal_call {
	enum removal_op op;
	tdp_gfn_t gfn;
	int level;
	tdp_pfn_t removed;  /* output of the REMOVE calls and PROMOTE */
	tdp_pfn_t sept_pfn; /* input of PAGE.DEMOTE: the new S-EPT page */
};

static const char *removal_op_name(enum removal_op op)
{
	static const char *const names[] = {
		[REMOVAL_BLOCK] = "RANGE.BLOCK",
		[REMOVAL_PAGE_REMOVE] = "PAGE.REMOVE",
		[REMOVAL_SEPT_REMOVE] = "SEPT.REMOVE",
		[REMOVAL_PAGE_DEMOTE] = "PAGE.DEMOTE",
		[REMOVAL_PAGE_PROMOTE] = "PAGE.PROMOTE",
		[REMOVAL_UNBLOCK] = "RANGE.UNBLOCK",
	};

	return names[op];
}

static tdx_status_t removal_try_once(struct sim *s, struct removal_call *c)
{
	switch (c->op) {
	case REMOVAL_BLOCK:
		return tdx_range_block(s->module, c->gfn, c->level, NULL);
	case REMOVAL_PAGE_REMOVE:
		return tdx_page_remove(s->module, c->gfn, c->level, &c->removed,
				       NULL);
	case REMOVAL_SEPT_REMOVE:
		return tdx_sept_remove(s->module, c->gfn, c->level, &c->removed,
				       NULL);
	case REMOVAL_PAGE_DEMOTE:
		return tdx_page_demote(s->module, c->gfn, c->level, c->sept_pfn,
				       NULL);
	case REMOVAL_PAGE_PROMOTE:
		return tdx_page_promote(s->module, c->gfn, c->level,
					&c->removed, NULL);
	case REMOVAL_UNBLOCK:
		return tdx_range_unblock(s->module, c->gfn, c->level, NULL);
	}
	return TDX_OPERAND_INVALID;
}

/*
 * One removal SEAMCALL that must succeed: on OPERAND_BUSY, hold every
 * vCPU out of guest mode (no TDCALL or VM entry can contend then) and
 * retry until it goes through.  Under mmu_lock held for read (a fault's
 * demote) other host threads' SEAMCALLs still contend, and one of them
 * may hold a module lock while the machine runs something else: the
 * loop yields now and then so that it can finish.
 */
static tdx_status_t removal_call(struct sim *s, struct removal_call *c)
{
	tdx_status_t st = removal_try_once(s, c);

	if (!tdx_status_is_busy(st))
		return st;
	sim_vcpus_hold_out_begin(s);
	for (int tries = 0; tdx_status_is_busy(st) && tries < REMOVAL_MAX_TRIES;
	     tries++) {
		sim_count(&s->stats, SIM_C_RETRY_REMOVE_BUSY, 1);
		if (tries % REMOVAL_YIELD_EVERY == REMOVAL_YIELD_EVERY - 1)
			sched_yield();
		st = removal_try_once(s, c);
	}
	sim_vcpus_hold_out_end(s);
	if (tdx_status_is_busy(st))
		sim_violation(&s->report, SIM_V_LIVELOCK, st, c->gfn,
			      SIM_NO_VCPU,
			      "removal SEAMCALL (%s) still busy after %d tries "
			      "with vCPUs held out", removal_op_name(c->op),
			      REMOVAL_MAX_TRIES);
	return st;
}

tdx_status_t sim_backend_track(struct sim *s)
{
	tdx_status_t st;
	bool held_out = false;

	for (int tries = 0; tries < REMOVAL_MAX_TRIES; tries++) {
		st = tdx_track(s->module);
		if (st == TDX_SUCCESS)
			break;
		if (tdx_status_class(st) == TDX_PREVIOUS_TLB_EPOCH_BUSY) {
			/* vCPUs still run in the epoch before: make them
			 * leave it. */
			sim_count(&s->stats, SIM_C_RETRY_TRACK_EPOCH, 1);
			sim_vcpus_kick_all(s);
		} else if (tdx_status_is_busy(st)) {
			sim_count(&s->stats, SIM_C_RETRY_REMOVE_BUSY, 1);
			if (!held_out) {
				sim_vcpus_hold_out_begin(s);
				held_out = true;
			}
			/* Another host thread's TRACK (a fault's demote)
			 * may hold the epoch lock, and may be preempted. */
			if (tries % REMOVAL_YIELD_EVERY ==
			    REMOVAL_YIELD_EVERY - 1)
				sched_yield();
		} else {
			break;
		}
	}
	if (held_out)
		sim_vcpus_hold_out_end(s);
	if (st != TDX_SUCCESS) {
		/* TRACK fails only with busy statuses: retried too often. */
		sim_violation(&s->report, SIM_V_LIVELOCK, st, SIM_NO_GFN,
			      SIM_NO_VCPU, "TRACK never succeeded: %s",
			      tdx_status_name(st));
		return st;
	}
	/* Every vCPU that entered before the TRACK leaves guest mode. */
	sim_vcpus_kick_all(s);
	return st;
}

/*
 * Both removals: BLOCK the entry of @remove, TRACK, kick every vCPU, then
 * the REMOVE call @remove (PAGE.REMOVE or SEPT.REMOVE), which stores the
 * removed page in @remove->removed.  Stops at the first call that fails
 * and returns its status.
 */
static tdx_status_t block_track_remove(struct sim *s,
				       struct removal_call *remove)
{
	struct removal_call block = {
		.op = REMOVAL_BLOCK, .gfn = remove->gfn, .level = remove->level,
	};
	tdx_status_t st = removal_call(s, &block);

	if (st == TDX_GPA_RANGE_ALREADY_BLOCKED) {
		sim_violation(&s->report, SIM_V_CONTRACT, st, remove->gfn,
			      SIM_NO_VCPU,
			      "level %d entry was already blocked: removed "
			      "twice, or an earlier removal stopped halfway",
			      remove->level);
		return st;
	}
	if (st == TDX_SUCCESS)
		st = sim_backend_track(s);
	if (st == TDX_SUCCESS)
		st = removal_call(s, remove);
	return st;
}

/* The backend page of a table link_table made for (@gfn, @level). */
static void check_table_record(struct sim *s, const char *what,
			       const struct sim_ext_record *rec, tdp_gfn_t gfn,
			       int level)
{
	if (rec->magic != SIM_EXT_MAGIC || rec->gfn != gfn ||
	    rec->level != level)
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "%s(level %d) names a table link_table did not "
			      "create (record: magic %#" PRIx64 " gfn %#" PRIx64
			      " level %d)",
			      what, level, rec->magic, rec->gfn, rec->level);
}

/*
 * The module handed back @released (by @seamcall) for the table of @rec:
 * it must be the S-EPT page link_table added; the host takes it back.
 */
static void release_table_page(struct sim *s, struct sim_ext_record *rec,
			       const char *seamcall, tdp_pfn_t released,
			       tdp_gfn_t gfn)
{
	if (rec->magic == SIM_EXT_MAGIC && released != rec->sept_pfn)
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "%s returned page %#" PRIx64
			      " but link_table added %#" PRIx64,
			      seamcall, released, rec->sept_pfn);
	if (!host_mem_free(s->mem, released))
		sim_violation(&s->report, SIM_V_PAGE_OWNERSHIP, 0, gfn,
			      SIM_NO_VCPU, "S-EPT page %#" PRIx64
			      " was not allocated", released);
	memset(rec, 0, sizeof(*rec));
}

/* ---- callbacks ----------------------------------------------------------- */

static int be_link_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext_table)
{
	struct sim *s = ctx;
	struct sim_ext_record *rec = (struct sim_ext_record *)ext_table;
	tdp_pfn_t pfn;
	tdx_status_t st;
	int ret;

	map_begin(s, "link_table", gfn);
	check_frozen(s, "link_table", gfn, level);
	if (rec->magic) {
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "link_table(level %d) got a backend page still "
			      "in use for gfn %#" PRIx64 " level %d",
			      level, rec->gfn, rec->level);
		map_end(s);
		return SIM_ERR_TDX;
	}
	pfn = host_mem_alloc(s->mem, s->owner, HOST_POOL_TDX, HOST_PAGE_SEPT, 0);
	if (!pfn) {
		sim_violation(&s->report, SIM_V_INCONSISTENT, 0, gfn,
			      SIM_NO_VCPU, "host memory exhausted: no page "
			      "for a new S-EPT table");
		map_end(s);
		return -ENOMEM;
	}
	st = tdx_sept_add(s->module, gfn, level, pfn, NULL);
	ret = status_to_errno(st);
	if (ret) {
		host_mem_free(s->mem, pfn);
	} else {
		*rec = (struct sim_ext_record){
			.magic    = SIM_EXT_MAGIC,
			.sept_pfn = pfn,
			.gfn      = gfn,
			.level    = level,
		};
	}
	map_end(s);
	return ret;
}

static int be_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct sim *s = ctx;
	int ret;

	map_begin(s, "set_leaf", gfn);
	check_frozen(s, "set_leaf", gfn, level);
	/* Every page of the leaf is the host's private page of its GFN. */
	check_host_private_pages(s, "set_leaf", "maps", gfn, level, pfn);
	if (s->backend.page_add_src && level != TDP_LEVEL_4K) {
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "set_leaf(level %d) of an image page: PAGE.ADD "
			      "maps 4 KiB only", level);
		ret = SIM_ERR_TDX;
	} else if (s->backend.page_add_src)
		/* TD build: the image page, copied in and measured. */
		ret = status_to_errno(tdx_page_add(s->module, gfn, pfn,
						   s->backend.page_add_src,
						   NULL));
	else
		ret = status_to_errno(tdx_page_aug(s->module, gfn, level, pfn,
						   NULL));
	map_end(s);
	return ret;
}

static int be_remove_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	struct sim *s = ctx;
	struct removal_call remove = {
		.op = REMOVAL_PAGE_REMOVE, .gfn = gfn, .level = level,
	};
	tdp_gfn_t stale_gfn = 0;
	int holder;

	removal_begin(s, "remove_leaf", gfn);
	check_frozen(s, "remove_leaf", gfn, level);
	if (block_track_remove(s, &remove) != TDX_SUCCESS) {
		removal_end(s);
		return -EIO;
	}
	if (remove.removed != pfn)
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "remove_leaf(level %d) names pfn %#" PRIx64
			      " but the S-EPT mapped %#" PRIx64,
			      level, pfn, remove.removed);
	/* The epoch rule must leave no usable private translation. */
	holder = sim_tlb_find_live(s, gfn, tdp_level_pages(level), true,
				   &stale_gfn);
	sim_count(&s->stats, SIM_C_CHECK_REMOVE, 1);
	if (holder >= 0)
		sim_violation(&s->report, SIM_V_STALE_TRANSLATION, 0,
			      stale_gfn, holder,
			      "a live private TLB entry survived PAGE.REMOVE "
			      "of level %d gfn %#" PRIx64, level, gfn);
	sim_count(&s->stats, SIM_C_ZAP_PRIVATE_LEAVES, 1);
	removal_end(s);
	return 0;
}

static int be_free_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext_table)
{
	struct sim *s = ctx;
	struct sim_ext_record *rec = (struct sim_ext_record *)ext_table;
	struct removal_call remove = {
		.op = REMOVAL_SEPT_REMOVE, .gfn = gfn, .level = level,
	};

	removal_begin(s, "free_table", gfn);
	check_table_record(s, "free_table", rec, gfn, level);
	check_table_unlinked(s, gfn, level);
	if (block_track_remove(s, &remove) != TDX_SUCCESS) {
		removal_end(s);
		return -EIO;
	}
	release_table_page(s, rec, "SEPT.REMOVE", remove.removed, gfn);
	sim_count(&s->stats, SIM_C_ZAP_PRIVATE_TABLES, 1);
	removal_end(s);
	return 0;
}

/*
 * Demote the 2 MiB leaf at (@gfn, @level) into a new S-EPT page: BLOCK,
 * TRACK and kick (no vCPU may keep the 2 MiB translation while the entry
 * changes shape), PAGE.DEMOTE.  The entry comes back unblocked, its 512
 * children in the leaf's state (MAPPED or PENDING), contents untouched.
 *
 * Busy: a busy BLOCK changed nothing and is returned as -EBUSY (the
 * engine retries).  Once the entry is blocked the demote is carried
 * through like a removal (busy SEAMCALLs retried with vCPUs held out), so
 * the engine never sees a blocked entry left behind.  A hard error of
 * PAGE.DEMOTE unblocks the entry again (the block is tracked by then) and
 * returns SIM_ERR_TDX with nothing changed.
 *
 * Called by zaps (mmu_lock held for write, checked like a removal) and by
 * faults (demote_in_faults: held for read, checked like a map, concurrent
 * with other maps and other faults' demotes; the hold-outs nest).
 */
static int be_demote_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			  struct tdp_ext_table *new_table)
{
	struct sim *s = ctx;
	struct sim_ext_record *rec = (struct sim_ext_record *)new_table;
	struct removal_call demote = {
		.op = REMOVAL_PAGE_DEMOTE, .gfn = gfn, .level = level,
	};
	struct removal_call unblock = {
		.op = REMOVAL_UNBLOCK, .gfn = gfn, .level = level,
	};
	bool by_fault = sim_host_in_fault;
	tdx_status_t st;
	tdp_pfn_t sept_pfn;
	int ret = 0;

	/* A fault's demote runs under the read lock, like a map. */
	if (by_fault)
		map_begin(s, "demote_leaf", gfn);
	else
		removal_begin(s, "demote_leaf", gfn);
	check_frozen(s, "demote_leaf", gfn, level);
	if (rec->magic) {
		sim_violation(&s->report, SIM_V_CONTRACT, 0, gfn, SIM_NO_VCPU,
			      "demote_leaf(level %d) got a backend page still "
			      "in use for gfn %#" PRIx64 " level %d",
			      level, rec->gfn, rec->level);
		ret = SIM_ERR_TDX;
		goto out;
	}
	check_host_private_pages(s, "demote_leaf", "names", gfn, level, pfn);

	st = tdx_range_block(s->module, gfn, level, NULL);
	if (st != TDX_SUCCESS) {
		if (st == TDX_GPA_RANGE_ALREADY_BLOCKED)
			sim_violation(&s->report, SIM_V_CONTRACT, st, gfn,
				      SIM_NO_VCPU,
				      "level %d leaf was already blocked at "
				      "demote_leaf", level);
		ret = status_to_errno(st);
		goto out;
	}
	sept_pfn = host_mem_alloc(s->mem, s->owner, HOST_POOL_TDX, HOST_PAGE_SEPT, 0);
	st = sim_backend_track(s);
	if (st == TDX_SUCCESS && sept_pfn) {
		demote.sept_pfn = sept_pfn;
		st = removal_call(s, &demote);
	}
	if (st != TDX_SUCCESS || !sept_pfn) {
		/* Undo the block: tracked by now, or TRACK itself failed
		 * (reported) and the unblock reports the state. */
		if (!sept_pfn)
			sim_violation(&s->report, SIM_V_INCONSISTENT, 0, gfn,
				      SIM_NO_VCPU, "host memory exhausted: no "
				      "page for a demoted S-EPT table");
		else
			host_mem_free(s->mem, sept_pfn);
		removal_call(s, &unblock);
		ret = sept_pfn ? SIM_ERR_TDX : -ENOMEM;
		goto out;
	}
	*rec = (struct sim_ext_record){
		.magic    = SIM_EXT_MAGIC,
		.sept_pfn = sept_pfn,
		.gfn      = gfn,
		.level    = level,
	};
	sim_count(&s->stats, by_fault ? SIM_C_DEMOTE_PRIVATE_FAULT
				       : SIM_C_DEMOTE_PRIVATE, 1);
out:
	if (by_fault)
		map_end(s);
	else
		removal_end(s);
	return ret;
}

/*
 * Merge the S-EPT table linked at (@gfn, @level) back into one 2 MiB leaf:
 * BLOCK the entry (NL_BLOCKED), TRACK and kick, PAGE.PROMOTE, which hands
 * back the table's S-EPT page; the host takes it back.  A busy BLOCK is
 * -EBUSY with nothing changed; once blocked, busy SEAMCALLs are retried
 * with vCPUs held out.  The module refuses (EPT_INVALID_PROMOTE_CONDITIONS)
 * when the 512 pages are not all MAPPED or all PENDING: the entry is
 * unblocked and -EINVAL returned, nothing changed.
 */
static int be_promote_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn,
			   struct tdp_ext_table *old_table)
{
	struct sim *s = ctx;
	struct sim_ext_record *rec = (struct sim_ext_record *)old_table;
	struct removal_call promote = {
		.op = REMOVAL_PAGE_PROMOTE, .gfn = gfn, .level = level,
	};
	struct removal_call unblock = {
		.op = REMOVAL_UNBLOCK, .gfn = gfn, .level = level,
	};
	tdx_status_t st;
	int ret = 0;

	removal_begin(s, "promote_leaf", gfn);
	check_table_record(s, "promote_leaf", rec, gfn, level);
	check_frozen(s, "promote_leaf", gfn, level);
	check_host_private_pages(s, "promote_leaf", "names", gfn, level, pfn);

	st = tdx_range_block(s->module, gfn, level, NULL);
	if (st != TDX_SUCCESS) {
		ret = status_to_errno(st);
		goto out;
	}
	st = sim_backend_track(s);
	if (st == TDX_SUCCESS)
		st = removal_call(s, &promote);
	if (st != TDX_SUCCESS) {
		removal_call(s, &unblock);
		if (tdx_status_class(st) == TDX_EPT_INVALID_PROMOTE_CONDITIONS) {
			sim_count(&s->stats, SIM_C_PROMOTE_REFUSED, 1);
			ret = -EINVAL;
		} else {
			ret = SIM_ERR_TDX;
		}
		goto out;
	}
	release_table_page(s, rec, "PAGE.PROMOTE", promote.removed, gfn);
	sim_count(&s->stats, SIM_C_PROMOTE_PRIVATE, 1);
out:
	removal_end(s);
	return ret;
}

void sim_backend_init(struct sim *s, struct tdp_private_backend *ops)
{
	s->backend = (struct sim_backend){ .sim = s };
	*ops = (struct tdp_private_backend){
		.link_table     = be_link_table,
		.set_leaf       = be_set_leaf,
		.remove_leaf    = be_remove_leaf,
		.free_table     = be_free_table,
		.ctx            = s,
		.ext_table_size = sizeof(struct sim_ext_record),
		.demote_leaf    = be_demote_leaf,
		.demote_in_faults = true,
		.promote_leaf   = be_promote_leaf,
	};
}
