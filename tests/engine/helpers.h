/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared helpers of the engine tests: an MMU with recording host flush
 * callbacks, one-call faults and lookups, and flush-coverage checks.
 *
 * Every test program calls tdp_thread_register() in main() before it runs
 * its group and tdp_thread_unregister() after; helper threads do the same.
 */
#ifndef TDP_TEST_HELPERS_H
#define TDP_TEST_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tdp/tdp.h>

/* GFN width of the test MMUs: root level 4, gfn_bits 0 means 36. */
#define TH_GFN_BITS 36
#define TH_GFN_LIMIT (1ULL << TH_GFN_BITS)
#define TH_PAGES_2M 512ULL
#define TH_PAGES_1G (512ULL * 512ULL)

/* One recorded flush_range() call. */
struct th_flush_range {
	tdp_gfn_t gfn;
	uint64_t nr_pages;
};

/*
 * Recording host callbacks.  The engine calls them with mmu_lock held;
 * the mutex also orders them against readers in other test threads.
 */
struct th_flush_log {
	pthread_mutex_t lock;
	uint64_t nr_range;
	uint64_t nr_all;
	struct th_flush_range *ranges; /* nr_range entries */
	uint64_t cap;
};

/* An MMU without private backend, with a recording flush log. */
struct th_env {
	struct tdp_mmu *mmu;
	struct tdp_vcpu *vcpu;
	struct th_flush_log log;
	struct tdp_mmu_config cfg;
};

void th_flush_log_init(struct th_flush_log *log);
void th_flush_log_reset(struct th_flush_log *log);
void th_flush_log_fini(struct th_flush_log *log);

/* The config every test MMU starts from: root level 4, gfn_bits 0. */
struct tdp_mmu_config th_config(struct th_flush_log *log, unsigned int flags);

/* Create env->mmu (and a vCPU when @with_vcpu); asserts success. */
void th_env_init(struct th_env *env, unsigned int flags, bool with_vcpu);
/* Destroy the vCPU (if any) and the MMU, free the log. */
void th_env_fini(struct th_env *env);

/*
 * One fault on the shared alias with a fresh mmu_seq.  Returns what
 * tdp_map() returned.
 */
int th_map(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	   tdp_pfn_t pfn, unsigned int prot, int max_level);
/* As th_map() with an explicit mmu_seq. */
int th_map_seq(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
	       unsigned int prot, int max_level, uint64_t seq);
/* As th_map(), retrying a bounded number of TDP_FAULT_RETRY results. */
int th_map_retry(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		 tdp_pfn_t pfn, unsigned int prot, int max_level);
/* An MMIO fault with a fresh mmu_seq. */
int th_map_mmio(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn);

/* What tdp_lookup() reports for one shared GFN. */
struct th_leaf {
	int ret;
	tdp_spte_t spte;
	int level;
	bool present; /* MMU-present leaf */
	bool mmio;
	tdp_pfn_t pfn; /* PFN mapping @gfn itself (base + offset in huge) */
	unsigned int prot;
};

struct th_leaf th_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn);

/* Copy of the statistics; asserts success. */
struct tdp_stats th_stats(const struct tdp_mmu *mmu);
uint64_t th_leaves(const struct tdp_stats *st);
uint64_t th_tables(const struct tdp_stats *st, int type);

/*
 * Print every field that differs between @a and @b (prefixed by @what) and
 * return how many differ.
 */
int th_stats_diff(const char *what, const struct tdp_stats *a,
		  const struct tdp_stats *b);

/* True when a recorded flush (a range, or any flush_all) covers @gfn. */
bool th_flush_covers(struct th_flush_log *log, tdp_gfn_t gfn);

/* Deterministic PRNG (splitmix64). */
static inline uint64_t th_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t th_rand_below(uint64_t *state, uint64_t n)
{
	return th_rand(state) % n;
}

#endif /* TDP_TEST_HELPERS_H */
