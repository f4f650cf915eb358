/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The zap of invalidated roots against the threads that still use them.
 *
 * A vCPU that loaded a root before tdp_mmu_invalidate_roots() keeps
 * running on it (and holds a reference) until it loads a root again at its
 * next VM entry; meanwhile a TLB miss walks the old root, and every
 * translation it finds may be cached.  When
 * tdp_mmu_zap_invalidated_roots() returns, the host may free or reuse the
 * pages the old root mapped, so a translation cached from that root must
 * have been invalidated by a host flush issued after the leaf was cleared
 * (a flush issued while the leaf is still present is undone by the next
 * miss).  The test models that vCPU: a TLB filled by walking the old root
 * the way hardware does, refilled after every flush the engine issues.
 *
 * The recorder's flush-order check (tests/support/ts_env.h) looks at each
 * flush as it is issued: no leaf of its range may still be mapped.
 *
 * A zap of an invalidated root also races tdp_mmu_teardown(), which skips
 * a root whose zap another thread claimed: teardown must not return while
 * that zap still runs, so that tdp_mmu_destroy() may follow it at once.
 *
 * White-box only for tdp_rcu_barrier().
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "internal.h"

/* ---- a vCPU that keeps running on the root it loaded -------------------- */

#define TLB_MAX 16

struct tlb_entry {
	tdp_gfn_t gfn; /* first GFN of the leaf, as the tree indexes it */
	int level;
	bool valid;
};

/*
 * The TLB of a vCPU in guest mode on the root at root_pfn.  The host
 * flush callbacks invalidate entries, and the vCPU, still running on that
 * root, immediately walks it again for each (what hardware may do at any
 * moment until it leaves guest mode).
 */
struct stale_vcpu {
	pthread_mutex_t lock;
	const struct tdp_spte_format *fmt;
	tdp_pfn_t root_pfn;
	int root_level;
	struct tlb_entry tlb[TLB_MAX];
	int nr;
	uint64_t flushes; /* host flush callbacks */
	uint64_t refills; /* entries a walk after a flush found again */
};

/*
 * The leaf translating tree GFN @gfn, walked from @root_pfn as hardware
 * walks EPT; 0 if none, else its level.  Caller is inside a walk (or in a
 * host callback: the engine calls those inside its RCU read-side section).
 */
static int hw_walk(const struct tdp_spte_format *fmt, tdp_pfn_t root_pfn,
		   int root_level, tdp_gfn_t gfn)
{
	const tdp_spte_t *table = tdp_pfn_to_table(root_pfn);

	for (int level = root_level; level >= TDP_LEVEL_4K; level--) {
		unsigned int idx =
			(unsigned int)(gfn >> ((level - 1) * TDP_LEVEL_BITS)) &
			(TDP_SPTES_PER_TABLE - 1);
		tdp_spte_t spte =
			__atomic_load_n(&table[idx], __ATOMIC_ACQUIRE);

		if (!tdp_spte_is_present(fmt, spte))
			return 0;
		if (tdp_spte_is_leaf(fmt, spte, level))
			return level;
		table = tdp_pfn_to_table(tdp_spte_pfn(fmt, spte));
	}
	return 0;
}

/* Invalidate the entries overlapping [gfn, gfn + pages); all if @all. */
static void stale_vcpu_flush(struct stale_vcpu *v, tdp_gfn_t gfn,
			     uint64_t pages, bool all)
{
	pthread_mutex_lock(&v->lock);
	v->flushes++;
	for (int i = 0; i < v->nr; i++) {
		struct tlb_entry *e = &v->tlb[i];
		tdp_gfn_t end = e->gfn + tdp_level_pages(e->level);

		if (!e->valid ||
		    (!all && (end <= gfn || e->gfn >= gfn + pages)))
			continue;
		e->valid = false;
		/* The vCPU is still on the old root: the next miss walks it. */
		if (hw_walk(v->fmt, v->root_pfn, v->root_level, e->gfn) ==
		    e->level) {
			e->valid = true;
			v->refills++;
		}
	}
	pthread_mutex_unlock(&v->lock);
}

static void stale_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	stale_vcpu_flush(ctx, gfn, nr_pages, false);
}

static void stale_flush_all(void *ctx)
{
	stale_vcpu_flush(ctx, 0, 0, true);
}

/* A TLB miss on tree GFN @gfn: walk the root and cache the leaf. */
static void stale_vcpu_access(struct stale_vcpu *v, tdp_gfn_t gfn)
{
	int level;

	tdp_walk_begin();
	level = hw_walk(v->fmt, v->root_pfn, v->root_level, gfn);
	tdp_walk_end();
	assert_true(level > 0);

	pthread_mutex_lock(&v->lock);
	gfn &= ~(tdp_level_pages(level) - 1);
	for (int i = 0; i < v->nr; i++) {
		if (v->tlb[i].gfn == gfn && v->tlb[i].level == level) {
			v->tlb[i].valid = true;
			pthread_mutex_unlock(&v->lock);
			return;
		}
	}
	assert_true(v->nr < TLB_MAX);
	v->tlb[v->nr++] = (struct tlb_entry){ gfn, level, true };
	pthread_mutex_unlock(&v->lock);
}

/* ---- a stub private backend, for an MMU whose direct root is aliased ---- */

static int be_link(void *ctx, tdp_gfn_t gfn, int level,
		   struct tdp_ext_table *ext)
{
	(void)ctx, (void)gfn, (void)level, (void)ext;
	return 0;
}

static int be_set(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	(void)ctx, (void)gfn, (void)level, (void)pfn;
	return 0;
}

static const struct tdp_private_backend stub_backend = {
	.link_table  = be_link,
	.set_leaf    = be_set,
	.remove_leaf = be_set,
	.free_table  = be_link,
};

/* The shared bit of the aliased MMU (TDX with 4 levels: GPA bit 47). */
#define SHARED_BIT (1ULL << 35)

/* ---- zapping an invalidated root flushes what the vCPU may cache -------- */

/* Leaves mapped through the root the vCPU runs on: GFN, PFN, level. */
static const struct {
	tdp_gfn_t gfn;
	tdp_pfn_t pfn;
	int level;
} leaves[] = {
	{ 0, 0x1000, TDP_LEVEL_4K },
	{ 1, 0x1001, TDP_LEVEL_4K },
	{ 511, 0x11ff, TDP_LEVEL_4K },
	{ 7 * TS_PAGES_2M + 3, 0x2003, TDP_LEVEL_4K },
	{ 2 * TS_PAGES_2M, 40 * TS_PAGES_2M, TDP_LEVEL_2M },
	{ 2 * TS_PAGES_1G, 3 * TS_PAGES_1G, TDP_LEVEL_1G },
	{ (1ULL << 30) + 5, 0x3005, TDP_LEVEL_4K },
};
#define NR_LEAVES (sizeof(leaves) / sizeof(leaves[0]))

static void check_zap_flushes_stale_vcpu(unsigned int flags, bool aliased)
{
	struct stale_vcpu v = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct tdp_mmu_config cfg =
		ts_config(NULL, &(struct ts_env_opts){ .flags = flags }, NULL);
	tdp_gfn_t bits = aliased ? SHARED_BIT : 0;
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	tdp_pfn_t new_pfn;
	uint64_t flushes_before_zap;
	int level, alive = 0;

	cfg.host.flush_range = stale_flush_range;
	cfg.host.flush_all = stale_flush_all;
	cfg.host.ctx = &v;
	if (aliased) {
		cfg.backend = &stub_backend;
		cfg.direct_bits = SHARED_BIT;
	}
	assert_int_equal(tdp_mmu_create(&cfg, &mmu), 0);
	assert_int_equal(tdp_vcpu_create(mmu, &vcpu), 0);
	v.fmt = tdp_mmu_format(mmu);

	/* VM entry: the vCPU runs on the current root... */
	assert_int_equal(tdp_vcpu_load_root(vcpu, TDP_ALIAS_SHARED, &v.root_pfn,
					    &v.root_level),
			 0);
	for (size_t i = 0; i < NR_LEAVES; i++)
		TS_MAP_FIXED(vcpu, leaves[i].gfn | bits, leaves[i].pfn,
			     TDP_PROT_RWX, leaves[i].level);
	/* ...and caches every translation it uses. */
	for (size_t i = 0; i < NR_LEAVES; i++)
		stale_vcpu_access(&v, leaves[i].gfn | bits);
	assert_int_equal(v.nr, NR_LEAVES);

	/*
	 * The roots are invalidated while the vCPU is in guest mode: it
	 * keeps its root until its next VM entry and may take TLB misses
	 * on it in between.
	 */
	assert_int_equal(tdp_mmu_invalidate_roots(mmu, TDP_ALIAS_SHARED), 0);
	for (size_t i = 0; i < NR_LEAVES; i++)
		stale_vcpu_access(&v, leaves[i].gfn | bits);
	assert_int_equal(v.nr, NR_LEAVES);
	flushes_before_zap = v.flushes;

	assert_int_equal(tdp_mmu_zap_invalidated_roots(mmu), 0);

	/*
	 * The host may now reuse every page the old root mapped: no
	 * translation of it may be left in the vCPU's TLB.
	 */
	pthread_mutex_lock(&v.lock);
	for (int i = 0; i < v.nr; i++) {
		if (!v.tlb[i].valid)
			continue;
		alive++;
		print_error("still cached after the zap returned: gfn %#" PRIx64
			    " level %d\n",
			    v.tlb[i].gfn, v.tlb[i].level);
	}
	pthread_mutex_unlock(&v.lock);
	if (alive)
		fail_msg("%d of %d translations cached from the invalidated "
			 "root survive tdp_mmu_zap_invalidated_roots() "
			 "(%" PRIu64 " flushes during the zap, %" PRIu64
			 " before; %" PRIu64 " entries refilled after a flush)",
			 alive, v.nr, v.flushes - flushes_before_zap,
			 flushes_before_zap, v.refills);

	/* A walk of the old root, still referenced, finds nothing either. */
	tdp_walk_begin();
	for (size_t i = 0; i < NR_LEAVES; i++)
		assert_int_equal(hw_walk(v.fmt, v.root_pfn, v.root_level,
					 leaves[i].gfn | bits),
				 0);
	tdp_walk_end();

	/* At its next VM entry the vCPU moves to a fresh root. */
	assert_int_equal(
		tdp_vcpu_load_root(vcpu, TDP_ALIAS_SHARED, &new_pfn, &level),
		0);
	assert_true(new_pfn != v.root_pfn);

	tdp_vcpu_destroy(vcpu);
	tdp_mmu_destroy(mmu);
	pthread_mutex_destroy(&v.lock);
}

static void test_zap_invalidated_flushes(void **state)
{
	(void)state;
	check_zap_flushes_stale_vcpu(0, false);
}

static void test_zap_invalidated_flushes_yielding(void **state)
{
	(void)state;
	check_zap_flushes_stale_vcpu(TDP_MMU_FORCE_YIELD, false);
}

static void test_zap_invalidated_flushes_aliased(void **state)
{
	(void)state;
	check_zap_flushes_stale_vcpu(0, true);
}

static void test_zap_invalidated_flushes_aliased_yielding(void **state)
{
	(void)state;
	check_zap_flushes_stale_vcpu(TDP_MMU_FORCE_YIELD, true);
}

/* ---- every flush comes after the clear it flushes ----------------------- */

/*
 * The test above sees a flush issued before its clear only when no later
 * flush covers the GFN again; a zap of an invalidated root flushes each
 * table's span once more when it removes the emptied tables, which hides
 * an early flush of a leaf.  The recorder's flush-order check
 * (ts_flush_zap_begin()) looks at the moment of each flush instead: none
 * may arrive while a leaf of its range is still mapped in any root, the
 * invalidated one included.  A plain and an aliased MMU, with and
 * without forced yields; then the same for a range zap of the fresh root
 * (ts_host_unmap()) and for the teardown (ts_env_teardown()).
 *
 * Leaves of every level, contiguous so that each pass of the zap flushes
 * one range (disjoint spans would degrade to a flush of everything, which
 * carries no range to check): 4 KiB leaves over [0, ORDER_SMALL), a
 * 2 MiB leaf right after their second table, a 1 GiB leaf right after
 * the first 1 GiB.
 */
#define ORDER_SMALL 700
#define ORDER_2M (2 * TS_PAGES_2M)
#define ORDER_1G TS_PAGES_1G

static void map_order_leaves(struct ts_env *e)
{
	for (tdp_gfn_t g = 0; g < ORDER_SMALL; g++)
		assert_int_equal(ts_map(e->vcpu, g, TDP_ALIAS_SHARED,
					0x100000 + g, TDP_PROT_RWX,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e->vcpu, ORDER_2M, TDP_ALIAS_SHARED,
				64 * TS_PAGES_2M, TDP_PROT_RWX, TDP_LEVEL_2M),
			 TDP_FAULT_FIXED);
	assert_int_equal(ts_map(e->vcpu, ORDER_1G, TDP_ALIAS_SHARED,
				8 * TS_PAGES_1G, TDP_PROT_RWX, TDP_LEVEL_1G),
			 TDP_FAULT_FIXED);
}

static void check_zap_flush_order(unsigned int flags, bool aliased)
{
	const struct ts_env_opts o = {
		.flags = flags,
		.backend = aliased,
		.record = true,
		.check_zap_flushes = true,
	};
	const enum tdp_alias alias = TDP_ALIAS_SHARED;
	struct ts_env e;
	uint64_t checked;

	ts_env_init_ok(&e, &o);
	map_order_leaves(&e);
	assert_int_equal(ts_zap_roots(e.mmu, alias), 0);
	checked = ts_flush_order_checked(&e.log);
	assert_int_equal(ts_flush_order_violations(&e.log), 0);
	/* The zap flushed by ranges, each of them checked. */
	assert_true(checked > 0);
	assert_true(ts_flush_covers_range(&e.log, e.direct_bits,
					  e.direct_bits + ORDER_SMALL));
	assert_false(ts_lookup(e.mmu, 0, alias).present);
	assert_false(ts_lookup(e.mmu, ORDER_1G, alias).present);

	/* The fresh root, zapped by range and then by the teardown. */
	map_order_leaves(&e);
	assert_int_equal(ts_host_unmap(e.mmu, 0, ORDER_2M + TS_PAGES_2M), 0);
	assert_true(ts_flush_order_checked(&e.log) > checked);
	assert_int_equal(ts_flush_order_violations(&e.log), 0);
	assert_false(ts_lookup(e.mmu, ORDER_2M, alias).present);
	assert_true(ts_lookup(e.mmu, ORDER_1G, alias).present);
	ts_env_fini_ok(&e);
}

static void test_zap_flush_order(void **state)
{
	(void)state;
	check_zap_flush_order(0, false);
}

static void test_zap_flush_order_yielding(void **state)
{
	(void)state;
	check_zap_flush_order(TDP_MMU_FORCE_YIELD, false);
}

static void test_zap_flush_order_aliased(void **state)
{
	(void)state;
	check_zap_flush_order(0, true);
}

static void test_zap_flush_order_aliased_yielding(void **state)
{
	(void)state;
	check_zap_flush_order(TDP_MMU_FORCE_YIELD, true);
}

/* ---- teardown against a running zap of an invalidated root -------------- */

/* 4 KiB leaves in the root being zapped: eight full leaf tables. */
#define NR_SLOW_LEAVES (8 * TDP_SPTES_PER_TABLE)
/* Each host flush sleeps this long, so the zap outlasts a teardown. */
#define SLOW_FLUSH_US 50

/* Host callbacks that sleep, and note whether teardown had returned. */
struct slow_host {
	int flushes;		/* atomic */
	int after_teardown;	/* atomic: flushes once teardown returned */
	bool teardown_returned; /* atomic */
};

static void slow_flush(struct slow_host *h)
{
	__atomic_add_fetch(&h->flushes, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&h->teardown_returned, __ATOMIC_ACQUIRE))
		__atomic_add_fetch(&h->after_teardown, 1, __ATOMIC_ACQ_REL);
	usleep(SLOW_FLUSH_US);
}

static void slow_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	(void)gfn, (void)nr_pages;
	slow_flush(ctx);
}

static void slow_flush_all(void *ctx)
{
	slow_flush(ctx);
}

struct zapper {
	pthread_t thread;
	struct tdp_mmu *mmu;
	int ret;
};

static void *zapper_main(void *arg)
{
	struct zapper *z = arg;

	tdp_thread_register();
	z->ret = tdp_mmu_zap_invalidated_roots(z->mmu);
	tdp_thread_unregister();
	return NULL;
}

/* Wait up to 10 s for the zap to issue its first flush. */
static bool wait_for_first_flush(struct slow_host *h)
{
	for (int i = 0; i < 100000; i++) {
		if (__atomic_load_n(&h->flushes, __ATOMIC_ACQUIRE))
			return true;
		usleep(100);
	}
	return false;
}

/*
 * One thread zaps a large invalidated root, yielding at every step and
 * sleeping in every flush; teardown starts while it runs (after the zap
 * claimed the root) and tdp_mmu_destroy() follows teardown at once.
 * When teardown returns, the zap must be over: the statistics show no
 * table, page or root left (what teardown promises), no host callback
 * runs any more, and destroy frees nothing the zapper still uses (ASan).
 */
static void test_teardown_waits_for_root_zap(void **state)
{
	struct slow_host host = { 0 };
	struct tdp_mmu_config cfg = ts_config(
		NULL, &(struct ts_env_opts){ .flags = TDP_MMU_FORCE_YIELD },
		NULL);
	struct zapper z = { 0 };
	struct tdp_vcpu *vcpu;
	struct tdp_stats st;
	bool zap_outlived_teardown;
	int ret;

	(void)state;
	cfg.host.flush_range = slow_flush_range;
	cfg.host.flush_all = slow_flush_all;
	cfg.host.ctx = &host;
	assert_int_equal(tdp_mmu_create(&cfg, &z.mmu), 0);
	assert_int_equal(tdp_vcpu_create(z.mmu, &vcpu), 0);
	for (tdp_gfn_t g = 0; g < NR_SLOW_LEAVES; g++)
		TS_MAP_FIXED(vcpu, g, 0x10000 + g, TDP_PROT_READ, TDP_LEVEL_4K);
	assert_int_equal(tdp_mmu_invalidate_roots(z.mmu, TDP_ALIAS_SHARED), 0);
	tdp_vcpu_destroy(vcpu);

	assert_int_equal(pthread_create(&z.thread, NULL, zapper_main, &z), 0);
	/* The zapper claimed the root and is clearing it. */
	if (!wait_for_first_flush(&host)) {
		pthread_join(z.thread, NULL);
		tdp_mmu_destroy(z.mmu);
		fail_msg("the zap of the invalidated root issued no flush");
	}

	ret = tdp_mmu_teardown(z.mmu);
	__atomic_store_n(&host.teardown_returned, true, __ATOMIC_RELEASE);
	st = th_stats(z.mmu);
	zap_outlived_teardown =
		st.pages_in_use != 0 ||
		ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1) != 0 ||
		st.roots_freed != st.roots_allocated;

	if (zap_outlived_teardown) {
		print_error(
			"teardown returned %d while the zap still ran: "
			"%" PRIu64 " pages in use, %" PRIu64
			" direct tables, %" PRIu64 " of %" PRIu64
			" roots freed, %" PRIu64 " leaves zapped\n",
			ret, st.pages_in_use,
			ts_stat_tables(&st, TDP_ROOT_DIRECT, TDP_MAX_LEVEL + 1),
			st.roots_freed, st.roots_allocated, st.zapped_leaves);
		/*
		 * Let the zap finish so the MMU's fate is only what
		 * teardown left behind: the root it put last is freed
		 * after teardown's grace period, by a callback that reads
		 * the MMU (after destroy: a use after free).
		 */
		pthread_join(z.thread, NULL);
		tdp_mmu_destroy(z.mmu);
		tdp_rcu_barrier();
	} else {
		/* Teardown is all destroy needs, even with the zapper
		 * thread not yet returned to its caller. */
		tdp_mmu_destroy(z.mmu);
		tdp_rcu_barrier();
		pthread_join(z.thread, NULL);
	}

	assert_int_equal(ret, 0);
	assert_false(zap_outlived_teardown);
	assert_int_equal(z.ret, 0);
	assert_int_equal(
		__atomic_load_n(&host.after_teardown, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(st.zapped_leaves, NR_SLOW_LEAVES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zap_invalidated_flushes),
		cmocka_unit_test(test_zap_invalidated_flushes_yielding),
		cmocka_unit_test(test_zap_invalidated_flushes_aliased),
		cmocka_unit_test(test_zap_invalidated_flushes_aliased_yielding),
		cmocka_unit_test(test_zap_flush_order),
		cmocka_unit_test(test_zap_flush_order_yielding),
		cmocka_unit_test(test_zap_flush_order_aliased),
		cmocka_unit_test(test_zap_flush_order_aliased_yielding),
		cmocka_unit_test(test_teardown_waits_for_root_zap),
	};

	return TS_RUN_GROUP("tests", tests);
}
