/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

static void rec_flush_range(void *ctx, tdp_gfn_t gfn, uint64_t nr_pages)
{
	struct th_flush_log *log = ctx;

	pthread_mutex_lock(&log->lock);
	if (log->nr_range == log->cap) {
		log->cap = log->cap ? log->cap * 2 : 256;
		log->ranges =
			realloc(log->ranges, log->cap * sizeof(*log->ranges));
		assert_non_null(log->ranges);
	}
	log->ranges[log->nr_range].gfn = gfn;
	log->ranges[log->nr_range].nr_pages = nr_pages;
	log->nr_range++;
	pthread_mutex_unlock(&log->lock);
}

static void rec_flush_all(void *ctx)
{
	struct th_flush_log *log = ctx;

	pthread_mutex_lock(&log->lock);
	log->nr_all++;
	pthread_mutex_unlock(&log->lock);
}

void th_flush_log_init(struct th_flush_log *log)
{
	memset(log, 0, sizeof(*log));
	pthread_mutex_init(&log->lock, NULL);
}

void th_flush_log_reset(struct th_flush_log *log)
{
	pthread_mutex_lock(&log->lock);
	log->nr_range = 0;
	log->nr_all = 0;
	pthread_mutex_unlock(&log->lock);
}

void th_flush_log_fini(struct th_flush_log *log)
{
	free(log->ranges);
	log->ranges = NULL;
	pthread_mutex_destroy(&log->lock);
}

struct tdp_mmu_config th_config(struct th_flush_log *log, unsigned int flags)
{
	struct tdp_mmu_config cfg = {
		.root_level = 4,
		.gfn_bits   = 0,
		.host       = {
			.flush_range = rec_flush_range,
			.flush_all   = rec_flush_all,
			.ctx         = log,
		},
		.flags = flags,
	};

	return cfg;
}

void th_env_init(struct th_env *env, unsigned int flags, bool with_vcpu)
{
	memset(env, 0, sizeof(*env));
	th_flush_log_init(&env->log);
	env->cfg = th_config(&env->log, flags);
	assert_int_equal(tdp_mmu_create(&env->cfg, &env->mmu), 0);
	assert_non_null(env->mmu);
	if (with_vcpu) {
		assert_int_equal(tdp_vcpu_create(env->mmu, &env->vcpu), 0);
		assert_non_null(env->vcpu);
	}
}

void th_env_fini(struct th_env *env)
{
	tdp_vcpu_destroy(env->vcpu);
	env->vcpu = NULL;
	tdp_mmu_destroy(env->mmu);
	env->mmu = NULL;
	th_flush_log_fini(&env->log);
}

int th_map_seq(struct tdp_vcpu *vcpu, tdp_gfn_t gfn, tdp_pfn_t pfn,
	       unsigned int prot, int max_level, uint64_t seq)
{
	struct tdp_fault f = {
		.fault_gfn = gfn,
		.pfn = pfn,
		.prot = prot,
		.max_level = max_level,
		.mmu_seq = seq,
	};

	return tdp_map(vcpu, &f);
}

int th_map(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	   tdp_pfn_t pfn, unsigned int prot, int max_level)
{
	return th_map_seq(vcpu, gfn, pfn, prot, max_level, tdp_mmu_seq(mmu));
}

int th_map_retry(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
		 tdp_pfn_t pfn, unsigned int prot, int max_level)
{
	int r = TDP_FAULT_RETRY;

	for (int i = 0; i < 16 && r == TDP_FAULT_RETRY; i++)
		r = th_map(mmu, vcpu, gfn, pfn, prot, max_level);
	return r;
}

int th_map_mmio(struct tdp_mmu *mmu, struct tdp_vcpu *vcpu, tdp_gfn_t gfn)
{
	struct tdp_fault f = {
		.fault_gfn = gfn,
		.prot = TDP_PROT_READ | TDP_PROT_WRITE,
		.max_level = TDP_LEVEL_4K,
		.mmu_seq = tdp_mmu_seq(mmu),
		.mmio = true,
	};

	return tdp_map(vcpu, &f);
}

struct th_leaf th_lookup(struct tdp_mmu *mmu, tdp_gfn_t gfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(mmu);
	struct th_leaf l = { .level = -1 };

	l.ret = tdp_lookup(mmu, gfn, TDP_ALIAS_SHARED, &l.spte, &l.level);
	if (l.ret)
		return l;
	l.present = tdp_spte_is_present(fmt, l.spte);
	l.mmio = !l.present && tdp_spte_is_mmio(fmt, l.spte);
	if (l.present) {
		l.pfn = tdp_spte_pfn(fmt, l.spte) +
			(gfn & (tdp_level_pages(l.level) - 1));
		l.prot = tdp_spte_prot(fmt, l.spte);
	}
	return l;
}

struct tdp_stats th_stats(const struct tdp_mmu *mmu)
{
	struct tdp_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(tdp_mmu_get_stats(mmu, &st), 0);
	return st;
}

uint64_t th_leaves(const struct tdp_stats *st)
{
	uint64_t n = 0;

	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++)
		for (int l = 0; l <= TDP_MAX_LEVEL; l++)
			n += st->leaves[t][l];
	return n;
}

uint64_t th_tables(const struct tdp_stats *st, int type)
{
	uint64_t n = 0;

	for (int l = 0; l <= TDP_MAX_LEVEL; l++)
		n += st->tables[type][l];
	return n;
}

static int diff_field(const char *what, const char *field, uint64_t a,
		      uint64_t b)
{
	if (a == b)
		return 0;
	print_error("%s: %s %llu -> %llu\n", what, field, (unsigned long long)a,
		    (unsigned long long)b);
	return 1;
}

int th_stats_diff(const char *what, const struct tdp_stats *a,
		  const struct tdp_stats *b)
{
	char name[32];
	int n = 0;

	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 0; l <= TDP_MAX_LEVEL; l++) {
			snprintf(name, sizeof(name), "tables[%d][%d]", t, l);
			n += diff_field(what, name, a->tables[t][l],
					b->tables[t][l]);
			snprintf(name, sizeof(name), "leaves[%d][%d]", t, l);
			n += diff_field(what, name, a->leaves[t][l],
					b->leaves[t][l]);
		}
	}
#define TH_DIFF(f) (n += diff_field(what, #f, a->f, b->f))
	TH_DIFF(faults_fixed);
	TH_DIFF(faults_spurious);
	TH_DIFF(faults_retried);
	TH_DIFF(zapped_leaves);
	TH_DIFF(zapped_tables);
	TH_DIFF(flushes_range);
	TH_DIFF(flushes_all);
	TH_DIFF(roots_allocated);
	TH_DIFF(roots_freed);
	TH_DIFF(backend_busy);
	TH_DIFF(backend_errors);
	TH_DIFF(pages_in_use);
	TH_DIFF(demotes);
	TH_DIFF(demote_busy);
	TH_DIFF(demote_errors);
#undef TH_DIFF
	return n;
}

bool th_flush_covers(struct th_flush_log *log, tdp_gfn_t gfn)
{
	bool covered;

	pthread_mutex_lock(&log->lock);
	covered = log->nr_all > 0;
	for (uint64_t i = 0; !covered && i < log->nr_range; i++) {
		const struct th_flush_range *r = &log->ranges[i];

		covered = gfn >= r->gfn && gfn - r->gfn < r->nr_pages;
	}
	pthread_mutex_unlock(&log->lock);
	return covered;
}
