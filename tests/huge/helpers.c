/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers of the huge-page and dirty-logging tests; see helpers.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* White-box: the MMU's valid root, SPTE words and mmu_lock. */
#include "internal.h"

#include "helpers.h"

/* ---- recording host callbacks ------------------------------------------- */

/* Debug builds: does the calling thread hold mmu_lock (either mode)? */
static bool lock_held_by_caller(struct tdp_mmu *mmu)
{
#ifndef NDEBUG
	return tdp_port_lock_held_read(&mmu->mmu_lock) ||
	       tdp_port_lock_held_write(&mmu->mmu_lock);
#else
	(void)mmu;
	return true;
#endif
}

static void rec_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct hh_flush_log *log = ctx;
	bool locked = !log->mmu || lock_held_by_caller(log->mmu);

	pthread_mutex_lock(&log->lock);
	if (!locked)
		log->unlocked++;
	if (log->record) {
		if (log->nr_range == log->cap) {
			log->cap = log->cap ? log->cap * 2 : 256;
			log->ranges = realloc(log->ranges,
					      log->cap * sizeof(*log->ranges));
			if (!log->ranges)
				abort();
		}
		log->ranges[log->nr_range] = (struct hh_flush_range){
			.gfn = gfn,
			.nr_pages = nr_pages,
		};
	}
	log->nr_range++;
	pthread_mutex_unlock(&log->lock);
}

static void rec_flush_all(void *ctx)
{
	struct hh_flush_log *log = ctx;
	bool locked = !log->mmu || lock_held_by_caller(log->mmu);

	pthread_mutex_lock(&log->lock);
	if (!locked)
		log->unlocked++;
	log->nr_all++;
	pthread_mutex_unlock(&log->lock);
}

static void rec_mark_dirty(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct hh_flush_log *log = ctx;
	bool locked = !log->mmu || lock_held_by_caller(log->mmu);

	pthread_mutex_lock(&log->lock);
	if (!locked)
		log->unlocked++;
	if (log->record) {
		if (log->nr_marks == log->cap_marks) {
			log->cap_marks =
				log->cap_marks ? log->cap_marks * 2 : 256;
			log->marks =
				realloc(log->marks,
					log->cap_marks * sizeof(*log->marks));
			if (!log->marks)
				abort();
		}
		log->marks[log->nr_marks] = (struct hh_flush_range){
			.gfn = gfn,
			.nr_pages = nr_pages,
		};
	}
	log->nr_marks++;
	pthread_mutex_unlock(&log->lock);
	if (log->mark_hook)
		log->mark_hook(log->mark_arg, gfn, nr_pages);
}

uint64_t hh_log_marks(struct hh_flush_log *log)
{
	uint64_t n;

	pthread_mutex_lock(&log->lock);
	n = log->nr_marks;
	pthread_mutex_unlock(&log->lock);
	return n;
}

bool hh_log_marked(struct hh_flush_log *log, tdp_gfn_t gfn)
{
	bool found = false;

	pthread_mutex_lock(&log->lock);
	for (uint64_t i = 0; i < log->nr_marks && log->record && !found; i++)
		found = log->marks[i].gfn <= gfn &&
			gfn < log->marks[i].gfn + log->marks[i].nr_pages;
	pthread_mutex_unlock(&log->lock);
	return found;
}

static void log_init(struct hh_flush_log *log)
{
	memset(log, 0, sizeof(*log));
	pthread_mutex_init(&log->lock, NULL);
	log->record = true;
}

void hh_log_reset(struct hh_flush_log *log)
{
	pthread_mutex_lock(&log->lock);
	log->nr_range = 0;
	log->nr_all = 0;
	log->unlocked = 0;
	log->nr_marks = 0;
	pthread_mutex_unlock(&log->lock);
}

uint64_t hh_log_flushes(struct hh_flush_log *log)
{
	uint64_t n;

	pthread_mutex_lock(&log->lock);
	n = log->nr_range + log->nr_all;
	pthread_mutex_unlock(&log->lock);
	return n;
}

bool hh_log_covers_range(struct hh_flush_log *log, tdp_gfn_t start,
			 tdp_gfn_t end)
{
	bool ok = true;

	pthread_mutex_lock(&log->lock);
	if (!log->nr_all) {
		/* Walk [start, end) forward through the recorded ranges. */
		tdp_gfn_t next = start;
		bool progress = true;

		while (next < end && progress) {
			progress = false;
			for (uint64_t i = 0; i < log->nr_range; i++) {
				const struct hh_flush_range *r =
					&log->ranges[i];

				if (r->gfn <= next &&
				    next < r->gfn + r->nr_pages) {
					next = r->gfn + r->nr_pages;
					progress = true;
				}
			}
		}
		ok = next >= end;
	}
	pthread_mutex_unlock(&log->lock);
	return ok;
}

bool hh_log_covers(struct hh_flush_log *log, tdp_gfn_t gfn)
{
	return hh_log_covers_range(log, gfn, gfn + 1);
}

/* ---- MMUs ---------------------------------------------------------------- */

static struct tdp_mmu_config env_config(struct hh_env *env, unsigned int flags)
{
	return (struct tdp_mmu_config){
		.root_level  = 4,
		.gfn_bits    = 0,
		.direct_bits = 0,
		.host        = {
			.flush_range = rec_flush_range,
			.flush_all   = rec_flush_all,
			.mark_dirty  = rec_mark_dirty,
			.ctx         = &env->log,
		},
		.flags = flags,
	};
}

static void env_create(struct hh_env *env, const struct tdp_mmu_config *cfg)
{
	assert_int_equal(tdp_mmu_create(cfg, &env->mmu), 0);
	env->log.mmu = env->mmu;
	assert_int_equal(tdp_vcpu_create(env->mmu, &env->vcpu), 0);
}

void hh_env_init(struct hh_env *env, unsigned int flags)
{
	struct tdp_mmu_config cfg;

	memset(env, 0, sizeof(*env));
	log_init(&env->log);
	cfg = env_config(env, flags);
	env_create(env, &cfg);
}

void hh_env_init_no_mark_dirty(struct hh_env *env, unsigned int flags)
{
	struct tdp_mmu_config cfg;

	memset(env, 0, sizeof(*env));
	log_init(&env->log);
	cfg = env_config(env, flags);
	cfg.host.mark_dirty = NULL;
	env_create(env, &cfg);
}

static int be_link_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext_table)
{
	(void)ctx, (void)gfn, (void)level, (void)ext_table;
	return 0;
}

static int be_set_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	(void)ctx, (void)gfn, (void)level, (void)pfn;
	return 0;
}

static int be_remove_leaf(void *ctx, tdp_gfn_t gfn, int level, tdp_pfn_t pfn)
{
	(void)ctx, (void)gfn, (void)level, (void)pfn;
	return 0;
}

static int be_free_table(void *ctx, tdp_gfn_t gfn, int level,
			 struct tdp_ext_table *ext_table)
{
	(void)ctx, (void)gfn, (void)level, (void)ext_table;
	return 0;
}

static const struct tdp_private_backend trivial_backend = {
	.link_table = be_link_table,
	.set_leaf = be_set_leaf,
	.remove_leaf = be_remove_leaf,
	.free_table = be_free_table,
};

void hh_env_init_backend(struct hh_env *env)
{
	struct tdp_mmu_config cfg;

	memset(env, 0, sizeof(*env));
	log_init(&env->log);
	cfg = env_config(env, 0);
	cfg.direct_bits = HH_SHARED_BIT;
	cfg.backend = &trivial_backend;
	env_create(env, &cfg);
}

void hh_env_fini(struct hh_env *env)
{
	struct tdp_stats st;

	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	assert_int_equal(tdp_mmu_teardown(env->mmu), 0);
	assert_int_equal(tdp_mmu_get_stats(env->mmu, &st), 0);
	/* Nothing leaked: every table was freed after its grace period. */
	assert_int_equal(st.pages_in_use, 0);
	tdp_mmu_destroy(env->mmu);
	env->mmu = NULL;
	free(env->log.ranges);
	free(env->log.marks);
	pthread_mutex_destroy(&env->log.lock);
}

/* ---- faults and lookups --------------------------------------------------- */

int hh_map(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
	   unsigned int prot, int max_level)
{
	struct tdp_fault f = {
		.fault_gfn = gfn,
		.pfn = pfn,
		.prot = prot,
		.max_level = max_level,
		.mmu_seq = tdp_mmu_seq(vcpu->mmu),
	};

	return tdp_map(vcpu, &f);
}

int hh_map_retry(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
		 unsigned int prot, int max_level)
{
	int ret;

	while ((ret = hh_map(vcpu, gfn, pfn, prot, max_level)) ==
	       TDP_FAULT_RETRY)
		sched_yield();
	return ret;
}

struct hh_leaf hh_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	struct hh_leaf r = { 0 };

	if (tdp_lookup(mmu, gfn, TDP_ALIAS_SHARED, &r.spte, &r.level))
		return r;
	r.present = tdp_spte_is_present(fmt, r.spte);
	if (r.present) {
		r.base = gfn & ~(tdp_level_pages(r.level) - 1);
		r.pfn = tdp_spte_pfn(fmt, r.spte) + (gfn - r.base);
	}
	return r;
}

struct tdp_stats hh_stats(const struct tdp_mmu *mmu)
{
	struct tdp_stats st;

	if (tdp_mmu_get_stats(mmu, &st))
		memset(&st, 0, sizeof(st));
	return st;
}

/* ---- white-box tree walk -------------------------------------------------- */

struct walk_ctx {
	const struct tdp_spte_format *fmt;
	tdp_gfn_t bits;
	tdp_gfn_t start, end; /* tree GFNs */
	hh_leaf_fn fn;
	void *arg;
	struct hh_tree_counts *counts;
};

static void walk_table(struct walk_ctx *c, const tdp_spte_t *spt, int level,
		       tdp_gfn_t base)
{
	uint64_t step = tdp_level_pages(level);

	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_gfn_t gfn = base + (uint64_t)i * step;
		bool overlaps = gfn < c->end && gfn + step > c->start;
		tdp_spte_t s;

		if (!overlaps && !c->counts)
			continue;
		s = __atomic_load_n(&spt[i], __ATOMIC_ACQUIRE);
		if (!tdp_spte_is_present(c->fmt, s))
			continue;
		if (tdp_spte_is_leaf(c->fmt, s, level)) {
			if (c->counts)
				c->counts->leaves[level]++;
			if (overlaps && c->fn)
				c->fn(c->arg, gfn - c->bits, level, s);
			continue;
		}
		if (c->counts)
			c->counts->tables[level - 1]++;
		walk_table(c, tdp_pfn_to_virt(tdp_spte_pfn(c->fmt, s)),
			   level - 1, gfn);
	}
}

void hh_tree_walk(struct tdp_mmu *mmu, tdp_gfn_t start, tdp_gfn_t end,
		  hh_leaf_fn fn, void *arg, struct hh_tree_counts *counts)
{
	struct walk_ctx c = {
		.fmt = tdp_mmu_format(mmu),
		.bits = tdp_mmu_direct_bits(mmu),
		.start = start + tdp_mmu_direct_bits(mmu),
		.end = end + tdp_mmu_direct_bits(mmu),
		.fn = fn,
		.arg = arg,
		.counts = counts,
	};
	struct tdp_root *root;

	if (counts)
		memset(counts, 0, sizeof(*counts));
	tdp_rcu_read_lock();
	root = __atomic_load_n(&mmu->valid_root[TDP_ROOT_DIRECT],
			       __ATOMIC_ACQUIRE);
	if (root) {
		if (counts)
			counts->tables[root->table->level]++;
		walk_table(&c, root->table->spt, root->table->level, 0);
	}
	tdp_rcu_read_unlock();
}

int hh_stats_match_tree(struct tdp_mmu *mmu)
{
	struct tdp_stats st = hh_stats(mmu);
	struct hh_tree_counts tc;
	int bad = 0;

	hh_tree_walk(mmu, 0, 1, NULL, NULL, &tc);
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_512G; level++) {
		if (st.tables[TDP_ROOT_DIRECT][level] != tc.tables[level]) {
			fprintf(stderr,
				"stats: tables[%d] = %llu, the tree has %llu\n",
				level,
				(unsigned long long)
					st.tables[TDP_ROOT_DIRECT][level],
				(unsigned long long)tc.tables[level]);
			bad++;
		}
		if (st.leaves[TDP_ROOT_DIRECT][level] != tc.leaves[level]) {
			fprintf(stderr,
				"stats: leaves[%d] = %llu, the tree has %llu\n",
				level,
				(unsigned long long)
					st.leaves[TDP_ROOT_DIRECT][level],
				(unsigned long long)tc.leaves[level]);
			bad++;
		}
	}
	return bad;
}

tdp_spte_t *hh_sptep(struct tdp_mmu *mmu, tdp_gfn_t gfn, int *level)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t tree_gfn = gfn | tdp_mmu_direct_bits(mmu);
	tdp_spte_t *sptep = NULL;
	struct tdp_root *root;

	tdp_rcu_read_lock();
	root = __atomic_load_n(&mmu->valid_root[TDP_ROOT_DIRECT],
			       __ATOMIC_ACQUIRE);
	if (root) {
		tdp_spte_t *table = root->table->spt;
		int lvl = root->table->level;

		for (;;) {
			tdp_spte_t s;

			sptep = &table[tdp_spte_index(tree_gfn, lvl)];
			s = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
			if (!tdp_spte_is_present(fmt, s) ||
			    tdp_spte_is_leaf(fmt, s, lvl))
				break;
			table = tdp_pfn_to_virt(tdp_spte_pfn(fmt, s));
			lvl--;
		}
		*level = lvl;
	}
	tdp_rcu_read_unlock();
	return sptep;
}

/* ---- the simulated CPU ---------------------------------------------------- */

enum hh_hw_result hh_hw_access(struct tdp_mmu *mmu, tdp_gfn_t gfn, bool write)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	tdp_gfn_t tree_gfn = gfn | tdp_mmu_direct_bits(mmu);
	enum hh_hw_result res;

	tdp_rcu_read_lock();
	for (;;) {
		struct tdp_root *root = __atomic_load_n(
			&mmu->valid_root[TDP_ROOT_DIRECT], __ATOMIC_ACQUIRE);
		tdp_spte_t *sptep, *table;
		tdp_spte_t old, new_spte;
		int level;

		if (!root) {
			res = HH_HW_NOT_PRESENT;
			break;
		}
		table = root->table->spt;
		level = root->table->level;
		for (;;) {
			sptep = &table[tdp_spte_index(tree_gfn, level)];
			old = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
			if (!tdp_spte_is_present(fmt, old) ||
			    tdp_spte_is_leaf(fmt, old, level))
				break;
			table = tdp_pfn_to_virt(tdp_spte_pfn(fmt, old));
			level--;
		}
		/* Frozen SPTEs are not present either. */
		if (!tdp_spte_is_present(fmt, old)) {
			res = HH_HW_NOT_PRESENT;
			break;
		}
		if (write && !(old & fmt->writable)) {
			res = HH_HW_WRPROT;
			break;
		}
		new_spte = old | fmt->accessed | (write ? fmt->dirty : 0);
		/* Even when nothing changes: proves the bits are set now. */
		if (__atomic_compare_exchange_n(sptep, &old, new_spte, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			res = write ? HH_HW_WRITTEN : HH_HW_READ;
			break;
		}
		/* The SPTE changed under us: walk again, as the CPU would. */
	}
	tdp_rcu_read_unlock();
	return res;
}

/* ---- failures from helper threads ----------------------------------------- */

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long nr_failures;

void hh_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (nr_failures++ < 20) {
		fprintf(stderr, "%s:%d: check failed: ", file, line);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&fail_lock);
}

unsigned long hh_failures(void)
{
	unsigned long n;

	pthread_mutex_lock(&fail_lock);
	n = nr_failures;
	pthread_mutex_unlock(&fail_lock);
	return n;
}

/* ---- small utilities ------------------------------------------------------ */

void hh_apply_test_filter(void)
{
	const char *f = getenv("TDP_TEST_FILTER");

	if (f && *f)
		cmocka_set_test_filter(f);
}

bool hh_quick(void)
{
	const char *q = getenv("TDP_TEST_QUICK");

	return q && *q && strcmp(q, "0") != 0;
}

uint64_t hh_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void hh_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	nanosleep(&ts, NULL);
}

int hh_cmocka_setup(void **state)
{
	struct hh_env *env = calloc(1, sizeof(*env));

	assert_non_null(env);
	hh_env_init(env, 0);
	*state = env;
	return 0;
}

int hh_cmocka_teardown(void **state)
{
	struct hh_env *env = *state;

	assert_int_equal(hh_stats_match_tree(env->mmu), 0);
	hh_env_fini(env);
	free(env);
	return 0;
}
