// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A range zap against a CPU that keeps writing through the page tables it
 * cached until the host's TLB flush, as hardware does: a paging-structure
 * cache holds the leaf tables, and every write to a clean writable leaf
 * sets its dirty bit with an atomic update until the flush shoots the
 * caches down.  A zap that covers whole tables unlinks them and reads
 * their entries only after that flush; every dirty bit the CPU set, even
 * after the unlink, must reach host.mark_dirty, exactly once, and no GFN
 * the CPU did not dirty may be reported.  The same holds for the zap of
 * an invalidated root, which clears leaf by leaf with compare-exchanges
 * the CPU races (the second test, below).
 *
 * The flush callback is the shootdown: it waits until the CPU dropped its
 * cached tables.  The CPU walks with tdp_walk_begin()/tdp_pfn_to_table()
 * (the public interface for walks outside the library), so the tables it
 * cached stay allocated while it uses them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>

#include "helpers.h"

#define NR_TABLES 8
#define NR_PAGES (NR_TABLES * TS_PAGES_2M)
#define BASE (3 * TS_PAGES_1G + 4 * TS_PAGES_2M) /* 2 MiB aligned */
#define ROUNDS 200
#define ROOT_ROUNDS 40

struct cpu {
	struct tdp_mmu *mmu;
	tdp_spte_t write_bits; /* accessed | dirty */
	tdp_spte_t writable;
	/* The shootdown: raised by the flush, acknowledged by the CPU. */
	int shootdown, acked, started;
	/* Set once the zap began: writes after it count as racing. */
	int zapping;
	uint64_t writes; /* atomic: the main thread waits for some */
	uint64_t racing; /* CPU thread only until it is joined */
	uint8_t dirtied[NR_PAGES]; /* written by the CPU thread only */
	/* mark_dirty calls per GFN: written under mmu_lock by the zap. */
	uint8_t marked[NR_PAGES];
	uint64_t stray_marks, flushes;
};

static void cpu_shootdown(struct cpu *c)
{
	__atomic_add_fetch(&c->flushes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&c->shootdown, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&c->acked, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr)
{
	(void)gfn, (void)nr;
	cpu_shootdown(ctx);
}

static void flush_all(void *ctx)
{
	cpu_shootdown(ctx);
}

static void mark_dirty(void *ctx, tdp_gfn_t gfn, uint64_t nr)
{
	struct cpu *c = ctx;

	for (tdp_gfn_t g = gfn; g < gfn + nr; g++) {
		if (g < BASE || g >= BASE + NR_PAGES)
			c->stray_marks++;
		else
			c->marked[g - BASE]++;
	}
}

/* The leaf table that maps @gfn, found by walking from the root. */
static tdp_spte_t *walk_to_leaf_table(struct cpu *c, tdp_pfn_t root_pfn,
				      int level, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(c->mmu);
	const tdp_spte_t *t = tdp_pfn_to_table(root_pfn);

	for (; level > TDP_LEVEL_4K; level--) {
		tdp_spte_t s = __atomic_load_n(
			&t[(gfn >> ((level - 1) * 9)) & 511], __ATOMIC_ACQUIRE);

		if (!tdp_spte_is_present(fmt, s) ||
		    tdp_spte_is_leaf(fmt, s, level))
			return NULL;
		t = tdp_pfn_to_table(tdp_spte_pfn(fmt, s));
	}
	return (tdp_spte_t *)t;
}

struct cpu_arg {
	struct cpu *c;
	tdp_pfn_t root_pfn;
	int root_level;
	uint64_t seed;
};

static void *cpu_main(void *p)
{
	struct cpu_arg *a = p;
	struct cpu *c = a->c;
	tdp_spte_t *cache[NR_TABLES];
	uint64_t rng = a->seed;

	tdp_thread_register();
	tdp_walk_begin();
	for (int t = 0; t < NR_TABLES; t++) {
		cache[t] = walk_to_leaf_table(c, a->root_pfn, a->root_level,
					      BASE + (uint64_t)t * TS_PAGES_2M);
		HH_CHECK(cache[t], "table %d not mapped before the zap", t);
	}
	__atomic_store_n(&c->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&c->shootdown, __ATOMIC_ACQUIRE)) {
		uint64_t i = ts_rand_below(&rng, NR_PAGES);
		tdp_spte_t *sptep = &cache[i / TS_PAGES_2M][i % TS_PAGES_2M];
		tdp_spte_t old = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
		bool zapping = __atomic_load_n(&c->zapping, __ATOMIC_ACQUIRE);

		/* A write through a translation the cache still holds. */
		if (!tdp_spte_is_present(tdp_mmu_format(c->mmu), old) ||
		    !(old & c->writable) || (old & c->write_bits) == c->write_bits)
			continue;
		if (__atomic_compare_exchange_n(sptep, &old, old | c->write_bits,
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			c->dirtied[i] = 1;
			__atomic_add_fetch(&c->writes, 1, __ATOMIC_RELAXED);
			c->racing += zapping;
		}
	}
	tdp_walk_end();
	tdp_thread_unregister();
	__atomic_store_n(&c->acked, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Every dirty bit the CPU set reached mark_dirty exactly once, and no
 * other page was reported. */
static void assert_marks_match(const struct cpu *c)
{
	assert_int_equal(c->stray_marks, 0);
	for (uint64_t i = 0; i < NR_PAGES; i++) {
		if (c->marked[i] != c->dirtied[i])
			fail_msg("gfn %#llx: the CPU %s it, mark_dirty reported "
				 "it %u times",
				 (unsigned long long)(BASE + i),
				 c->dirtied[i] ? "dirtied" : "did not dirty",
				 c->marked[i]);
	}
}

/* Add the round's racing count and tear the round's MMU down. */
static void finish_round(struct cpu *c, struct tdp_vcpu *vcpu,
			 uint64_t *racing)
{
	*racing += c->racing;
	tdp_vcpu_destroy(vcpu);
	assert_int_equal(tdp_mmu_teardown(c->mmu), 0);
	tdp_mmu_destroy(c->mmu);
}

static void one_round(struct cpu *c, uint64_t seed, uint64_t *racing)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = {
			.flush_range = flush_range,
			.flush_all = flush_all,
			.mark_dirty = mark_dirty,
			.ctx = c,
		},
	};
	struct cpu_arg a = { .c = c, .seed = seed };
	struct tdp_stats st;
	struct tdp_vcpu *vcpu;
	pthread_t thread;

	memset(c, 0, sizeof(*c));
	assert_int_equal(tdp_mmu_create(&cfg, &c->mmu), 0);
	assert_int_equal(tdp_vcpu_create(c->mmu, &vcpu), 0);
	c->writable = tdp_mmu_format(c->mmu)->writable;
	c->write_bits = tdp_mmu_format(c->mmu)->accessed |
			tdp_mmu_format(c->mmu)->dirty;
	for (uint64_t i = 0; i < NR_PAGES; i++)
		assert_int_equal(ts_map(vcpu, BASE + i, TDP_ALIAS_SHARED,
					0x100000 + BASE + i,
					TDP_PROT_READ | TDP_PROT_WRITE,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	/* Faults map clean leaves: only the CPU's writes make them dirty. */
	for (uint64_t i = 0; i < NR_PAGES; i++)
		assert_false(ts_lookup(c->mmu, BASE + i, TDP_ALIAS_SHARED).spte &
			     tdp_mmu_format(c->mmu)->dirty);
	assert_int_equal(tdp_vcpu_load_root(vcpu, TDP_ALIAS_SHARED, &a.root_pfn,
					    &a.root_level),
			 0);

	assert_int_equal(pthread_create(&thread, NULL, cpu_main, &a), 0);
	while (!__atomic_load_n(&c->started, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&c->writes, __ATOMIC_RELAXED) < NR_PAGES / 8)
		sched_yield();
	__atomic_store_n(&c->zapping, 1, __ATOMIC_RELEASE);
	assert_int_equal(tdp_zap_range(c->mmu, BASE, BASE + NR_PAGES,
				       TDP_ALIAS_SHARED),
			 0);
	pthread_join(thread, NULL);

	assert_true(c->flushes >= 1);
	assert_marks_match(c);
	/* The zap covered the leaf tables whole: it unlinked them. */
	assert_int_equal(tdp_mmu_get_stats(c->mmu, &st), 0);
	assert_int_equal(st.zapped_tables, NR_TABLES);
	assert_int_equal(st.zapped_leaves, NR_PAGES);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 0);
	finish_round(c, vcpu, racing);
}

static void test_zap_sees_every_dirty_bit(void **state)
{
	static struct cpu c;
	uint64_t racing = 0;
	int rounds = ts_quick() ? ROUNDS / 4 : ROUNDS;

	(void)state;
	for (int r = 0; r < rounds; r++)
		one_round(&c, 0x5eed0000ULL + (uint64_t)r, &racing);
	print_message("%d rounds: %llu dirty bits set while the zap ran\n",
		      rounds, (unsigned long long)racing);
}

/* ---- the zap of an invalidated root against a CPU still on it ----------
 *
 * tdp_mmu_invalidate_roots() leaves a vCPU in guest mode on the root it
 * loaded; tdp_mmu_zap_invalidated_roots() then clears that root's leaves
 * under the read lock, each with a compare-exchange (tdp_zap_spte_atomic),
 * while the CPU keeps setting accessed and dirty bits through it until
 * the zap's first flush.  A compare-exchange the zap loses to the CPU
 * must be retried with the value it lost to: with its stale copy the zap
 * would spin for ever on that leaf.  Every dirty bit the CPU set must
 * reach mark_dirty exactly once, no other GFN may be reported.
 *
 * To lose races often, the CPU follows the zap's front: it works on the
 * first leaf the zap has not cleared yet (the zap clears them in GFN
 * order), setting its accessed bit and, for about half of the leaves
 * (writes), its dirty bit, each after a short random delay, so its
 * compare-exchanges land around the zap's read of the same leaf.
 */

/* The zap runs in its own thread, so that a zap that never ends is
 * reported (and the test stops) instead of hanging until the timeout. */
struct root_zap {
	struct tdp_mmu *mmu;
	int ret;
	int done; /* atomic */
};

static void *root_zap_main(void *p)
{
	struct root_zap *z = p;

	tdp_thread_register();
	z->ret = tdp_mmu_zap_invalidated_roots(z->mmu);
	__atomic_store_n(&z->done, 1, __ATOMIC_RELEASE);
	tdp_thread_unregister();
	return NULL;
}

static void *front_cpu_main(void *p)
{
	struct cpu_arg *a = p;
	struct cpu *c = a->c;
	const struct tdp_spte_format *fmt = tdp_mmu_format(c->mmu);
	tdp_spte_t *cache[NR_TABLES];
	uint64_t rng = a->seed;
	uint64_t pos = 0;
	bool write = ts_rand(&rng) & 1;

	tdp_thread_register();
	tdp_walk_begin();
	for (int t = 0; t < NR_TABLES; t++) {
		cache[t] = walk_to_leaf_table(c, a->root_pfn, a->root_level,
					      BASE + (uint64_t)t * TS_PAGES_2M);
		HH_CHECK(cache[t], "table %d not mapped before the zap", t);
	}
	__atomic_store_n(&c->started, 1, __ATOMIC_RELEASE);
	while (pos < NR_PAGES &&
	       !__atomic_load_n(&c->shootdown, __ATOMIC_ACQUIRE)) {
		tdp_spte_t *sptep =
			&cache[pos / TS_PAGES_2M][pos % TS_PAGES_2M];
		tdp_spte_t old = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
		tdp_spte_t bit = 0;

		if (!tdp_spte_is_present(fmt, old)) {
			/* The zap passed it: on to the next. */
			pos++;
			write = ts_rand(&rng) & 1;
			continue;
		}
		if (!(old & fmt->accessed))
			bit = fmt->accessed;
		else if (write && (old & c->writable) && !(old & fmt->dirty))
			bit = fmt->dirty;
		if (!bit)
			continue; /* nothing left to set: wait for the zap */
		for (uint64_t n = ts_rand_below(&rng, 256); n; n--)
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (__atomic_compare_exchange_n(sptep, &old, old | bit, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			if (bit == fmt->dirty)
				c->dirtied[pos] = 1;
			__atomic_add_fetch(&c->writes, 1, __ATOMIC_RELAXED);
			c->racing +=
				__atomic_load_n(&c->zapping, __ATOMIC_ACQUIRE);
		}
	}
	tdp_walk_end();
	tdp_thread_unregister();
	__atomic_store_n(&c->acked, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void one_root_round(struct cpu *c, uint64_t seed, uint64_t *racing)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.host = {
			.flush_range = flush_range,
			.flush_all = flush_all,
			.mark_dirty = mark_dirty,
			.ctx = c,
		},
	};
	struct cpu_arg a = { .c = c, .seed = seed };
	struct root_zap z = { 0 };
	struct tdp_stats st;
	struct tdp_vcpu *vcpu;
	pthread_t thread, zapper;

	memset(c, 0, sizeof(*c));
	assert_int_equal(tdp_mmu_create(&cfg, &c->mmu), 0);
	assert_int_equal(tdp_vcpu_create(c->mmu, &vcpu), 0);
	c->writable = tdp_mmu_format(c->mmu)->writable;
	for (uint64_t i = 0; i < NR_PAGES; i++)
		assert_int_equal(ts_map(vcpu, BASE + i, TDP_ALIAS_SHARED,
					0x100000 + BASE + i,
					TDP_PROT_READ | TDP_PROT_WRITE,
					TDP_LEVEL_4K),
				 TDP_FAULT_FIXED);
	assert_int_equal(tdp_vcpu_load_root(vcpu, TDP_ALIAS_SHARED, &a.root_pfn,
					    &a.root_level),
			 0);

	assert_int_equal(pthread_create(&thread, NULL, front_cpu_main, &a), 0);
	while (!__atomic_load_n(&c->started, __ATOMIC_ACQUIRE))
		sched_yield();
	/* The vCPU stays in guest mode on the root it loaded. */
	assert_int_equal(tdp_mmu_invalidate_roots(c->mmu, TDP_ALIAS_SHARED), 0);
	__atomic_store_n(&c->zapping, 1, __ATOMIC_RELEASE);
	z.mmu = c->mmu;
	assert_int_equal(pthread_create(&zapper, NULL, root_zap_main, &z), 0);
	for (int ms = 0; !__atomic_load_n(&z.done, __ATOMIC_ACQUIRE); ms++) {
		if (ms > 10000) {
			fprintf(stderr,
				"the zap of the invalidated root did not end "
				"in 10 s: a compare-exchange it lost to the "
				"CPU's accessed/dirty bits is retried with a "
				"stale copy of the leaf\n");
			abort();
		}
		tdp_udelay(1000);
	}
	pthread_join(zapper, NULL);
	pthread_join(thread, NULL);
	assert_int_equal(z.ret, 0);
	assert_int_equal(hh_failures(), 0);

	assert_marks_match(c);
	assert_int_equal(tdp_mmu_get_stats(c->mmu, &st), 0);
	assert_int_equal(st.zapped_leaves, NR_PAGES);
	assert_int_equal(st.leaves[TDP_ROOT_DIRECT][TDP_LEVEL_4K], 0);
	finish_round(c, vcpu, racing);
}

static void test_root_zap_sees_every_dirty_bit(void **state)
{
	static struct cpu c;
	uint64_t racing = 0;
	int rounds = ts_quick() ? ROOT_ROUNDS / 4 : ROOT_ROUNDS;

	(void)state;
	for (int r = 0; r < rounds; r++)
		one_root_round(&c, 0x700700ULL + (uint64_t)r, &racing);
	print_message("%d rounds: %llu accessed/dirty bits set while the zap "
		      "of the invalidated root ran\n",
		      rounds, (unsigned long long)racing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zap_sees_every_dirty_bit),
		cmocka_unit_test(test_root_zap_sees_every_dirty_bit),
	};

	return TS_RUN_GROUP("tests", tests);
}
