/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared parts of the stress programs (see common.h). */
#include "common.h"

#include "internal.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Failures printed in full; later ones are only counted. */
#define SX_PRINT_LIMIT 30

static long tally_checks;   /* atomic */
static long tally_failures; /* atomic */
static long tally_ops;	    /* atomic */
static const char *current_test = "-";
static uint64_t current_seed;

/* ---- options ------------------------------------------------------------ */

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-s seed] [-t seconds] [-n max_ops] [-j threads] "
		"[-T test] [-l]\n"
		"  -s, --seed N      seed (default: $TDP_TEST_SEED or the clock)\n"
		"  -t, --seconds S   wall-clock bound of each test\n"
		"  -n, --ops N       operation bound of each test\n"
		"  -j, --threads N   worker threads\n"
		"  -T, --test NAME   run one test only\n"
		"  -l, --list        list the tests\n"
		"TDP_TEST_QUICK=1 shortens the default duration.\n",
		prog);
}

int sx_parse_opts(int argc, char **argv, struct sx_opts *o,
		  double quick_seconds, double long_seconds, int threads)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "ops", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 'j' },
		{ "test", required_argument, NULL, 'T' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *quick = getenv("TDP_TEST_QUICK");
	const char *seed = getenv("TDP_TEST_SEED");
	int opt;

	*o = (struct sx_opts){
		.seed = seed && *seed ? strtoull(seed, NULL, 0)
				      : (uint64_t)time(NULL) ^
						((uint64_t)getpid() << 32),
		.max_ops = 100000000000L,
		.threads = threads,
		.quick = quick && strcmp(quick, "1") == 0,
	};
	o->seconds = o->quick ? quick_seconds : long_seconds;
	while ((opt = getopt_long(argc, argv, "s:t:n:j:T:lh", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 's':
			o->seed = strtoull(optarg, NULL, 0);
			break;
		case 't':
			o->seconds = atof(optarg);
			break;
		case 'n':
			o->max_ops = atol(optarg);
			break;
		case 'j':
			o->threads = atoi(optarg);
			break;
		case 'T':
			o->test = optarg;
			break;
		case 'l':
			o->list = true;
			break;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (optind != argc || o->seconds <= 0 || o->max_ops <= 0 ||
	    o->threads < 1 || o->threads > 64) {
		usage(argv[0]);
		return 2;
	}
	sx_set_seed(o->seed);
	return 0;
}

/* ---- generators, time, budgets --------------------------------------------- */

uint64_t sx_seed_for(uint64_t seed, uint64_t id)
{
	uint64_t s = seed ^ (id * 0xd1342543de82ef95ULL);

	return ts_rand(&s);
}

double sx_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sx_budget_start(struct sx_budget *b, double seconds, long max_ops)
{
	b->deadline = sx_now() + seconds;
	b->max_ops = max_ops;
	__atomic_store_n(&b->ops, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->stop, false, __ATOMIC_RELEASE);
}

bool sx_budget_over(struct sx_budget *b)
{
	if (__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
		return true;
	if (__atomic_load_n(&b->ops, __ATOMIC_RELAXED) >= b->max_ops ||
	    sx_now() >= b->deadline) {
		sx_budget_stop(b);
		return true;
	}
	return false;
}

bool sx_budget_next(struct sx_budget *b)
{
	if (sx_budget_over(b))
		return false;
	__atomic_add_fetch(&b->ops, 1, __ATOMIC_RELAXED);
	sx_count_ops(1);
	return true;
}

void sx_budget_stop(struct sx_budget *b)
{
	__atomic_store_n(&b->stop, true, __ATOMIC_RELEASE);
}

long sx_budget_ops(const struct sx_budget *b)
{
	return __atomic_load_n(&b->ops, __ATOMIC_RELAXED);
}

/* ---- checks ------------------------------------------------------------------ */

void sx_set_test(const char *name)
{
	__atomic_store_n(&current_test, name, __ATOMIC_RELEASE);
}

void sx_set_seed(uint64_t seed)
{
	current_seed = seed;
}

bool sx_check_at(bool ok, const char *file, int line, const char *fmt, ...)
{
	long n;
	va_list ap;

	__atomic_add_fetch(&tally_checks, 1, __ATOMIC_RELAXED);
	if (ok)
		return true;
	n = __atomic_add_fetch(&tally_failures, 1, __ATOMIC_RELAXED);
	if (n > SX_PRINT_LIMIT)
		return false;
	flockfile(stderr);
	fprintf(stderr, "FAILED [%s seed=%" PRIu64 "] %s:%d: ",
		__atomic_load_n(&current_test, __ATOMIC_ACQUIRE), current_seed,
		file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (n == SX_PRINT_LIMIT)
		fprintf(stderr, "further failures are counted, not printed\n");
	funlockfile(stderr);
	return false;
}

void sx_count_ops(long n)
{
	__atomic_add_fetch(&tally_ops, n, __ATOMIC_RELAXED);
}

long sx_failures(void)
{
	return __atomic_load_n(&tally_failures, __ATOMIC_RELAXED);
}

long sx_checks(void)
{
	return __atomic_load_n(&tally_checks, __ATOMIC_RELAXED);
}

long sx_ops(void)
{
	return __atomic_load_n(&tally_ops, __ATOMIC_RELAXED);
}

int sx_summary(const char *prog)
{
	long checks = sx_checks(), failures = sx_failures();

	printf("%s: seed=%" PRIu64 " ops=%ld checks=%ld passed=%ld "
	       "failures=%ld\n",
	       prog, current_seed, sx_ops(), checks, checks - failures,
	       failures);
	fflush(stdout);
	return failures ? 1 : 0;
}

int sx_run_tests(const char *prog, const struct sx_opts *o, size_t n,
		 const char *(*name)(size_t i),
		 void (*run)(const struct sx_opts *o, size_t i))
{
	int ran = 0;

	tdp_thread_register();
	for (size_t i = 0; i < n; i++) {
		long ops = sx_ops(), checks = sx_checks();
		long failures = sx_failures();
		double t0;

		if (o->test && strcmp(o->test, name(i)) != 0)
			continue;
		sx_set_test(name(i));
		t0 = sx_now();
		run(o, i);
		printf("%s: %s: %.2fs ops=%ld checks=%ld failures=%ld\n", prog,
		       name(i), sx_now() - t0, sx_ops() - ops,
		       sx_checks() - checks, sx_failures() - failures);
		fflush(stdout);
		ran++;
	}
	tdp_thread_unregister();
	if (!ran) {
		fprintf(stderr, "%s: no test named '%s' (see -l)\n", prog,
			o->test);
		return 2;
	}
	return sx_summary(prog);
}

/* ---- threads ------------------------------------------------------------ */

struct spawned {
	void *(*fn)(void *);
	void *arg;
};

static void *spawned_main(void *p)
{
	struct spawned s = *(struct spawned *)p;
	void *ret;

	free(p);
	tdp_thread_register();
	ret = s.fn(s.arg);
	tdp_thread_unregister();
	return ret;
}

void sx_spawn(struct sx_threads *g, void *(*fn)(void *), void *arg)
{
	struct spawned *s = malloc(sizeof(*s));

	if (!s || g->n == SX_MAX_THREADS) {
		fprintf(stderr, "stress: cannot start a thread\n");
		abort();
	}
	s->fn = fn;
	s->arg = arg;
	if (pthread_create(&g->tid[g->n], NULL, spawned_main, s)) {
		fprintf(stderr, "stress: pthread_create failed\n");
		abort();
	}
	g->n++;
}

void sx_join(struct sx_threads *g)
{
	for (int i = 0; i < g->n; i++)
		pthread_join(g->tid[i], NULL);
	g->n = 0;
}

/* ---- an MMU with the recording backend -------------------------------------- */

bool sx_env_init(struct ts_env *e, unsigned int flags, bool private_mem,
		 size_t ext_size)
{
	const struct ts_env_opts o = {
		.flags = flags,
		.backend = private_mem,
		.ext_table_size = ext_size,
		.no_vcpu = true,
	};
	struct ts_flush hooks = e->log;
	int ret = ts_env_init(e, &o);

	if (!SX_CHECK(ret == 0, "cannot create the MMU: %d", ret))
		return false;
	e->log.on_range = hooks.on_range;
	e->log.on_all = hooks.on_all;
	e->log.hook_arg = hooks.hook_arg;
	return true;
}

void sx_env_fini(struct ts_env *e)
{
	unsigned long bad = ts_env_teardown(e, 0);

	SX_CHECK(bad == 0, "teardown left %lu problems (logged above)", bad);
	ts_env_destroy(e);
}

int sx_fault(struct ts_env *e, struct tdp_vcpu *vcpu, tdp_gfn_t gfn,
	     bool private, unsigned int prot, int max_level, double give_up_s,
	     unsigned long *retries)
{
	enum tdp_alias alias = ts_alias(private);

	(void)e;
	return ts_map_retry(vcpu, gfn, alias, ts_pfn(gfn, alias), prot,
			    max_level, 0, (unsigned int)(give_up_s * 1000),
			    retries);
}

bool sx_lookup_leaf(struct ts_env *e, tdp_gfn_t gfn, bool private, int *level,
		    tdp_pfn_t *pfn)
{
	struct ts_leaf l = ts_lookup(e->mmu, gfn, ts_alias(private));

	if (!SX_CHECK(l.ret == 0, "tdp_lookup(%#" PRIx64 ", %s): %d", gfn,
		      private ? "private" : "shared", l.ret))
		return false;
	if (!l.present)
		return false;
	if (level)
		*level = l.level;
	if (pfn)
		*pfn = l.pfn;
	return true;
}

/* ---- quiescent checks ------------------------------------------------------------ */

struct walk {
	struct ts_env *e;
	sx_leaf_fn fn;
	void *arg;
	struct sx_tree_count *count;
	int type;
	bool valid;
};

static void walk_table(struct walk *w, struct tdp_table *t, tdp_gfn_t base,
		       int level)
{
	const struct tdp_spte_format *fmt = w->e->fmt;
	tdp_gfn_t bits = tdp_mmu_direct_bits(w->e->mmu);
	uint64_t step = tdp_level_pages(level);

	SX_CHECK(t->gfn == base && t->level == level && t->root_type == w->type,
		 "table at tree GFN %#" PRIx64 " level %d (type %d) claims "
		 "GFN %#" PRIx64 " level %d type %d",
		 base, level, w->type, t->gfn, t->level, t->root_type);
	for (int i = 0; i < TDP_SPTES_PER_TABLE; i++) {
		tdp_spte_t s = __atomic_load_n(&t->spt[i], __ATOMIC_ACQUIRE);
		tdp_gfn_t gfn = base + (uint64_t)i * step;

		if (tdp_spte_is_frozen(fmt, s)) {
			w->count->frozen++;
			SX_CHECK(false,
				 "frozen SPTE reachable: type %d tree GFN "
				 "%#" PRIx64 " level %d%s",
				 w->type, gfn, level,
				 w->valid ? "" : " (invalidated root)");
			continue;
		}
		if (!tdp_spte_is_present(fmt, s))
			continue;
		if (tdp_spte_is_leaf(fmt, s, level)) {
			w->count->leaves[w->type][level]++;
			if (w->fn)
				w->fn(w->arg, w->type, w->valid,
				      w->type == TDP_ROOT_DIRECT ? gfn & ~bits
								 : gfn,
				      level, s);
			continue;
		}
		w->count->tables[w->type][level - 1]++;
		walk_table(w, tdp_spte_child(w->e->mmu, s), gfn, level - 1);
	}
}

void sx_walk_trees(struct ts_env *e, sx_leaf_fn fn, void *arg,
		   struct sx_tree_count *out)
{
	struct tdp_mmu *mmu = e->mmu;
	struct walk w = { .e = e, .fn = fn, .arg = arg, .count = out };

	memset(out, 0, sizeof(*out));
	tdp_mutex_lock(&mmu->roots_mutex);
	for (struct tdp_root *r = mmu->roots; r; r = r->next) {
		w.type = r->type;
		w.valid = !__atomic_load_n(&r->invalid, __ATOMIC_ACQUIRE);
		out->roots++;
		out->invalid_roots += !w.valid;
		out->tables[r->type][r->table->level]++;
		walk_table(&w, r->table, 0, r->table->level);
	}
	tdp_mutex_unlock(&mmu->roots_mutex);
}

static void check_leaf_pfn(void *arg, int root_type, bool valid, tdp_gfn_t gfn,
			   int level, tdp_spte_t spte)
{
	struct ts_env *e = arg;
	bool private = root_type == TDP_ROOT_MIRROR;
	tdp_pfn_t pfn = tdp_spte_pfn(e->fmt, spte);

	SX_CHECK(pfn == ts_pfn(gfn, ts_alias(private)),
		 "%s leaf at GFN %#" PRIx64 " level %d%s maps PFN %#" PRIx64
		 ", expected %#" PRIx64,
		 private ? "private" : "shared", gfn, level,
		 valid ? "" : " (invalidated root)", pfn,
		 ts_pfn(gfn, ts_alias(private)));
}

long sx_check_quiesced(struct ts_env *e)
{
	return sx_check_quiesced_with(e, check_leaf_pfn, e);
}

long sx_check_quiesced_with(struct ts_env *e, sx_leaf_fn check, void *arg)
{
	long before = sx_failures();
	struct sx_tree_count c;
	struct tdp_stats st;

	sx_walk_trees(e, check, arg, &c);
	SX_CHECK(tdp_mmu_get_stats(e->mmu, &st) == 0, "stats");
	for (int t = 0; t < TDP_NR_ROOT_TYPES; t++) {
		for (int l = 1; l <= TDP_MAX_LEVEL; l++) {
			SX_CHECK(st.tables[t][l] == c.tables[t][l],
				 "stats: %" PRIu64 " tables of type %d at "
				 "level %d, the trees hold %" PRIu64,
				 st.tables[t][l], t, l, c.tables[t][l]);
			SX_CHECK(st.leaves[t][l] == c.leaves[t][l],
				 "stats: %" PRIu64 " leaves of type %d at "
				 "level %d, the trees hold %" PRIu64,
				 st.leaves[t][l], t, l, c.leaves[t][l]);
		}
	}
	if (e->be) {
		unsigned long bad = ts_compare(e->be, e->mmu, 0, TS_GFN_LIMIT);

		SX_CHECK(bad == 0, "mirror != backend: %lu mismatches", bad);
		SX_CHECK(ts_violations(e->be) == 0,
			 "the backend recorded %" PRIu64 " violations",
			 ts_violations(e->be));
	}
	return sx_failures() - before;
}

void sx_check_roots_freed(struct ts_env *e)
{
	struct sx_tree_count c;
	struct tdp_stats st;

	sx_walk_trees(e, NULL, NULL, &c);
	SX_CHECK(tdp_mmu_get_stats(e->mmu, &st) == 0, "stats");
	SX_CHECK(c.invalid_roots == 0,
		 "%" PRIu64 " invalidated roots still on the list",
		 c.invalid_roots);
	SX_CHECK(st.roots_allocated - st.roots_freed == c.roots,
		 "%" PRIu64 " roots allocated, %" PRIu64 " freed, %" PRIu64
		 " on the list",
		 st.roots_allocated, st.roots_freed, c.roots);
}

struct leaf_range {
	int type;
	tdp_gfn_t start, end;
	uint64_t n;
};

static void count_leaf(void *arg, int root_type, bool valid, tdp_gfn_t gfn,
		       int level, tdp_spte_t spte)
{
	struct leaf_range *lr = arg;

	(void)spte;
	if (root_type == lr->type && valid && gfn < lr->end &&
	    gfn + tdp_level_pages(level) > lr->start)
		lr->n++;
}

uint64_t sx_count_leaves(struct ts_env *e, bool private, tdp_gfn_t start,
			 tdp_gfn_t end)
{
	struct leaf_range lr = {
		.type = private ? TDP_ROOT_MIRROR : TDP_ROOT_DIRECT,
		.start = start,
		.end = end,
	};
	struct sx_tree_count c;

	sx_walk_trees(e, count_leaf, &lr, &c);
	return lr.n;
}
