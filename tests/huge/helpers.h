/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared helpers of the huge-page, dirty-logging and aging tests: MMUs
 * with recording host flush callbacks, one-call faults and lookups, a
 * white-box walk of the direct tree, and a simulated CPU that sets the
 * accessed and dirty bits of leaves the way hardware does.
 *
 * Every test program calls tdp_thread_register() in main() before it runs
 * its group and tdp_thread_unregister() after; helper threads do the same.
 * cmocka's assertions are not thread-safe: helper threads report failures
 * with HH_CHECK(), and the main thread asserts hh_failures() == 0.
 */
#ifndef TDP_TEST_HUGE_HELPERS_H
#define TDP_TEST_HUGE_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

#define HH_PAGES_2M 512ULL
#define HH_PAGES_1G (512ULL * 512ULL)
/* GFN limit of the plain test MMUs: root level 4, gfn_bits 0. */
#define HH_GFN_LIMIT (1ULL << 36)
/* Read and write: the rights of a writable data page. */
#define HH_PROT_RW (TDP_PROT_READ | TDP_PROT_WRITE)
/* Shared bit of the MMUs with a backend (GPA bit 47). */
#define HH_SHARED_BIT (1ULL << 35)

/* One recorded flush_range() call (GFNs as the direct tree indexes them). */
struct hh_flush_range {
	tdp_gfn_t gfn;
	uint64_t nr_pages;
};

/*
 * Recording host callbacks.  Counts are always kept; ranges only while
 * @record is set (concurrent tests flush millions of times).  @unlocked
 * counts callbacks that arrived without mmu_lock held by the calling
 * thread (mmu.h: "called with mmu_lock held"); debug builds only.
 * mark_dirty() calls (removed dirty leaves) are recorded the same way in
 * @marks, and passed to @mark_hook if set (called with @lock not held).
 */
struct hh_flush_log {
	pthread_mutex_t lock;
	struct tdp_mmu *mmu;
	bool record;
	uint64_t nr_range;
	uint64_t nr_all;
	uint64_t unlocked;
	struct hh_flush_range *ranges; /* nr_range entries while recording */
	uint64_t cap;
	uint64_t nr_marks;
	struct hh_flush_range *marks; /* nr_marks entries while recording */
	uint64_t cap_marks;
	void (*mark_hook)(void *arg, tdp_gfn_t gfn, uint64_t nr_pages);
	void *mark_arg;
};

struct hh_env {
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	struct hh_flush_log log;
};

/*
 * A plain MMU (root level 4, gfn_bits 0, direct_bits 0, no backend) with
 * @flags, recording flushes and dirty leaves removed (host.mark_dirty),
 * and one vCPU context.  Asserts success.
 */
void hh_env_init(struct hh_env *env, unsigned int flags);
/* As hh_env_init(), without the optional host.mark_dirty callback. */
void hh_env_init_no_mark_dirty(struct hh_env *env, unsigned int flags);
/*
 * An MMU with a trivial private backend (every callback returns 0) and
 * direct_bits HH_SHARED_BIT, plus a vCPU.  Asserts success.
 */
void hh_env_init_backend(struct hh_env *env);
/* Destroy the vCPU and the MMU (asserting a clean teardown), free the log. */
void hh_env_fini(struct hh_env *env);

void hh_log_reset(struct hh_flush_log *log);
/* flush_range + flush_all calls so far. */
uint64_t hh_log_flushes(struct hh_flush_log *log);
/* True when a recorded flush (a range, or any flush_all) covers @gfn. */
bool hh_log_covers(struct hh_flush_log *log, tdp_gfn_t gfn);
/* True when every GFN of [start, end) is covered. */
bool hh_log_covers_range(struct hh_flush_log *log, tdp_gfn_t start,
			 tdp_gfn_t end);

/* mark_dirty() calls so far, and whether one covered @gfn. */
uint64_t hh_log_marks(struct hh_flush_log *log);
bool hh_log_marked(struct hh_flush_log *log, tdp_gfn_t gfn);

/* One fault with a fresh mmu_seq; returns what tdp_map() returned. */
int hh_map(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
	   unsigned int prot, int max_level);
/* As hh_map(), repeating while the result is TDP_FAULT_RETRY. */
int hh_map_retry(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
		 unsigned int prot, int max_level);

/* What tdp_lookup() reports for one unaliased shared GFN. */
struct hh_leaf {
	bool present; /* MMU-present leaf */
	int level;    /* leaf level, or where the walk stopped */
	tdp_spte_t spte;
	tdp_gfn_t base; /* first GFN the leaf maps (present only) */
	tdp_pfn_t pfn;	/* PFN that maps @gfn itself (present only) */
};

/* Thread-safe: no cmocka assertion (a lookup error reads as absent). */
struct hh_leaf hh_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn);

/* Copy of the statistics (thread-safe). */
struct tdp_stats hh_stats(const struct tdp_mmu *mmu);

/*
 * White-box walk of the valid direct root inside an RCU read-side
 * section: counts every linked table and present leaf of the whole tree,
 * and calls @fn (if not NULL) for each present leaf overlapping the
 * unaliased [start, end).  Only for a quiescent MMU or for counting.
 */
struct hh_tree_counts {
	uint64_t tables[TDP_MAX_LEVEL + 1];
	uint64_t leaves[TDP_MAX_LEVEL + 1];
};
typedef void (*hh_leaf_fn)(void *arg, tdp_gfn_t gfn, int level,
			   tdp_spte_t spte);
void hh_tree_walk(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  hh_leaf_fn fn, void *arg, struct hh_tree_counts *counts);

/*
 * Compare the direct-root statistics with a walk of the tree (tables of
 * levels 1..3 and leaves of levels 1..3).  Returns the number of
 * mismatches, printing each.  The MMU must be quiescent.
 */
int hh_stats_match_tree(struct tdp_mmu *mmu);

/*
 * White-box: the address of the SPTE that translates unaliased @gfn in the
 * valid direct root (the present leaf, or the non-present SPTE where the
 * walk stops), and its level.  For a quiescent MMU: the table may be freed
 * once the caller's next operation changes the tree.
 */
tdp_spte_t *hh_sptep(struct tdp_mmu *mmu, tdp_gfn_t gfn, int *level);

/* ---- the simulated CPU -------------------------------------------------- */

enum hh_hw_result {
	HH_HW_NOT_PRESENT, /* no present leaf: an EPT violation */
	HH_HW_WRPROT,	   /* write to a leaf without W: an EPT violation */
	HH_HW_READ,	   /* accessed bit set */
	HH_HW_WRITTEN,	   /* accessed and dirty bits set */
};

/*
 * One guest access to unaliased @gfn, as the CPU performs it: walk the
 * valid direct root inside an RCU read-side section to the present leaf,
 * then compare-exchange it to old | A (| D for a write to a writable
 * leaf), walking again if the leaf changed in between.  Never writes a
 * non-present or frozen SPTE.
 */
enum hh_hw_result hh_hw_access(struct tdp_mmu *mmu, tdp_gfn_t gfn, bool write);

/* ---- failures from helper threads --------------------------------------- */

void hh_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Failures recorded so far (printing stopped after the first 20). */
unsigned long hh_failures(void);

#define HH_CHECK(cond, ...)                                       \
	do {                                                      \
		if (!(cond))                                      \
			hh_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* ---- small utilities ---------------------------------------------------- */

/* TDP_TEST_FILTER=<glob> in the environment: run only matching tests. */
void hh_apply_test_filter(void);
/* TDP_TEST_QUICK=1 in the environment: shorter runs. */
bool hh_quick(void);
uint64_t hh_now_ns(void);
void hh_sleep_ms(unsigned int ms);

/* Deterministic PRNG (splitmix64). */
static inline uint64_t hh_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t hh_rand_below(uint64_t *state, uint64_t n)
{
	return hh_rand(state) % n;
}

static inline void hh_bit_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ULL << (i % 64);
}

static inline bool hh_bit_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

/*
 * GFNs and frames shared by the unit tests: host frame = GFN + an offset
 * that keeps GFN and PFN aligned at every level; the first GFN of the
 * @n-th 1 GiB region, and of 2 MiB block @b inside it.
 */
#define HH_PFN_OFFSET (1ULL << 28)

static inline tdp_pfn_t hh_pfn_of(tdp_gfn_t gfn)
{
	return gfn + HH_PFN_OFFSET;
}

static inline tdp_gfn_t hh_gig(unsigned int n)
{
	return (tdp_gfn_t)n * HH_PAGES_1G;
}

static inline tdp_gfn_t hh_blk(unsigned int n, unsigned int b)
{
	return hh_gig(n) + (tdp_gfn_t)b * HH_PAGES_2M;
}

/* cmocka group fixtures: a plain MMU per test, whose statistics must
 * match its tree at the end. */
int hh_cmocka_setup(void **state);
int hh_cmocka_teardown(void **state);

#endif /* TDP_TEST_HUGE_HELPERS_H */
