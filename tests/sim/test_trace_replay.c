/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trace replay with the shared CPython trace: the replay completes with
 * no violation; every page the trace touches ends mapped exactly once,
 * in its alias, holding the data of its last write; the engine's tables
 * per level equal an independent count of the distinct 2 MiB, 1 GiB
 * and 512 GiB regions of the touched pages in each tree; malformed and
 * truncated traces fail with the line number, in the library and in
 * the tdpsim command.
 *
 * Arguments: the trace, the tdpsim binary, and how many addresses to
 * replay (0: all; the ThreadSanitizer build replays a prefix).  Exits 77
 * (skipped) if the trace is missing.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <spawn.h>

#include "scenario.h"
#include "trace.h"

extern char **environ;

static const char *trace_path;
static const char *tdpsim_path;
static uint64_t trace_limit;
static char tmpdir[] = "/tmp/test-sim-replay-XXXXXX";

/* ---- an independent reading of the trace --------------------------------- */

/* One distinct page: its GFN and how many accesses touch it. */
struct touched {
	uint64_t key; /* identity: GFN; allocator: virtual page */
	uint64_t first; /* index of the first access */
	uint64_t touches;
	tdp_gfn_t gfn;
};

static int by_key_then_first(const void *a, const void *b)
{
	const struct touched *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

static int by_first(const void *a, const void *b)
{
	const struct touched *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * Read the first trace_limit addresses with the trace reader alone and
 * place them: identity (GFN = address >> 12 below 2^47) or allocator
 * (the n-th distinct page in first-touch order is GFN n).  Returns the
 * distinct pages with their touch counts.
 */
static struct touched *read_touched(bool identity, size_t *count)
{
	struct touched *all = NULL, *out;
	size_t n = 0, cap = 0, distinct = 0;
	struct trace *t;
	uint64_t addr, read = 0;
	char err[256];

	assert_int_equal(trace_open(trace_path, &t, err, sizeof(err)), 0);
	while ((!trace_limit || read < trace_limit) &&
	       trace_next(t, &addr) == 1) {
		read++;
		if (identity && addr >= (1ULL << 47))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			all = realloc(all, cap * sizeof(*all));
			assert_non_null(all);
		}
		all[n] = (struct touched){ .key = addr >> 12, .first = n };
		n++;
	}
	trace_close(t);
	qsort(all, n, sizeof(*all), by_key_then_first);
	for (size_t i = 0; i < n; i++) {
		if (distinct && all[distinct - 1].key == all[i].key) {
			all[distinct - 1].touches++;
			continue;
		}
		all[distinct] = all[i];
		all[distinct].touches = 1;
		distinct++;
	}
	out = all;
	if (identity) {
		for (size_t i = 0; i < distinct; i++)
			out[i].gfn = out[i].key;
	} else {
		qsort(out, distinct, sizeof(*out), by_first);
		for (size_t i = 0; i < distinct; i++)
			out[i].gfn = i;
	}
	*count = distinct;
	return out;
}

/* ---- the checks ---------------------------------------------------------- */

/* Touched pages and the distinct regions holding them, per alias (0
 * private, 1 shared); regions by the level of the table each needs. */
struct region_count {
	uint64_t last[2][4];
	uint64_t regions[2][4];
	uint64_t pages[2];
};

static int by_gfn(const void *a, const void *b)
{
	const struct touched *x = a, *y = b;

	return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

/* The leaf that maps @gfn in the tree of @alias, or false. */
static bool leaf_of(struct sim *s, tdp_gfn_t gfn, enum tdp_alias alias,
		    tdp_pfn_t *pfn)
{
	const struct tdp_spte_format *fmt = tdp_mmu_format(s->mmu);
	tdp_spte_t spte;
	int level;

	assert_int_equal(tdp_lookup(s->mmu, gfn, alias, &spte, &level), 0);
	if (!tdp_spte_is_present(fmt, spte) ||
	    !tdp_spte_is_leaf(fmt, spte, level))
		return false;
	*pfn = tdp_spte_pfn(fmt, spte) + (gfn & (tdp_level_pages(level) - 1));
	return true;
}

/*
 * Every touched page is mapped in its alias only, and its page holds
 * (gfn, number of touches): each access was a write.  Counts the pages
 * and distinct regions per alias.
 */
static void check_pages(struct sim *s, struct touched *pages, size_t n,
			struct region_count *rc)
{
	uint32_t ppm = sim_pct_to_ppm(s->cfg.private_pct);

	memset(rc->last, 0xff, sizeof(rc->last));
	memset(rc->regions, 0, sizeof(rc->regions));
	memset(rc->pages, 0, sizeof(rc->pages));
	qsort(pages, n, sizeof(*pages), by_gfn);
	for (size_t i = 0; i < n; i++) {
		tdp_gfn_t gfn = pages[i].gfn;
		bool private = sim_trace_region_private(
			s->cfg.seed, gfn & ~(SIM_REGION_PAGES - 1), ppm);
		int alias = !private;
		tdp_pfn_t pfn = 0, other;
		struct host_page *p;

		assert_int_equal(sim_host_attr(&s->host, gfn) ==
					 SIM_ATTR_SHARED,
				 !private);
		assert_true(leaf_of(s, gfn,
				    private ? TDP_ALIAS_PRIVATE
					    : TDP_ALIAS_SHARED,
				    &pfn));
		assert_false(leaf_of(s, gfn,
				     private ? TDP_ALIAS_SHARED
					     : TDP_ALIAS_PRIVATE,
				     &other));
		p = host_mem_page(s->mem, pfn);
		assert_non_null(p);
		assert_int_equal(host_page_tag(p),
				 SIM_TAG(gfn, pages[i].touches));
		rc->pages[alias]++;
		for (int level = 1; level <= 3; level++) {
			uint64_t id = gfn >> (9 * level);

			if (id != rc->last[alias][level]) {
				rc->last[alias][level] = id;
				rc->regions[alias][level]++;
			}
		}
	}
}

/* Tables per level of each tree against the region count. */
static void check_tables(struct sim *s, const struct region_count *rc,
			 bool huge)
{
	struct tdp_stats st;

	assert_int_equal(tdp_mmu_get_stats(s->mmu, &st), 0);
	for (int alias = 0; alias < 2; alias++) {
		int type = alias ? TDP_ROOT_DIRECT : TDP_ROOT_MIRROR;

		/* A 2 MiB leaf stands in for a table of 4 KiB leaves. */
		assert_int_equal(st.tables[type][1] + st.leaves[type][2],
				 rc->regions[alias][1]);
		assert_int_equal(st.tables[type][2], rc->regions[alias][2]);
		assert_int_equal(st.tables[type][3], rc->regions[alias][3]);
		if (!huge) {
			assert_int_equal(st.tables[type][1],
					 rc->regions[alias][1]);
			assert_int_equal(st.leaves[type][1], rc->pages[alias]);
			assert_int_equal(st.leaves[type][2], 0);
		}
	}
}

static void replay(enum sim_placement placement, bool huge,
		   unsigned int vcpus, uint64_t seed)
{
	const struct sim_replay_result *res;
	struct region_count rc;
	struct sim_trace *trace;
	struct sim_config cfg;
	struct touched *pages;
	char err[256];
	size_t n;
	struct sim *s;

	assert_int_equal(sim_trace_scan(trace_path, placement, trace_limit,
					&trace, err, sizeof(err)),
			 0);
	sim_config_default(&cfg);
	cfg.trace = trace;
	cfg.nr_vcpus = vcpus;
	cfg.huge = huge;
	cfg.convert_pct = 0;
	cfg.event_rate = 0;
	cfg.check_interval = 0.5;
	cfg.progress = false;
	cfg.seed = seed;
	assert_int_equal(sim_create(&cfg, &s), 0);
	assert_int_equal(sim_run_workload(s), 0);
	assert_null(sim_replay_error(s->replay));

	pages = read_touched(placement == SIM_PLACE_IDENTITY, &n);
	assert_int_equal(n, trace->distinct_pages);
	check_pages(s, pages, n, &rc);
	check_tables(s, &rc, huge);
	/* Both aliases were used, and the simulator counted the same. */
	assert_true(rc.pages[0] > 0 && rc.pages[1] > 0);
	res = sim_replay_result(s->replay);
	assert_true(res->checked);
	assert_memory_equal(res->pages, rc.pages, sizeof(rc.pages));
	for (int a = 0; a < 2; a++)
		for (int level = 1; level <= 3; level++)
			assert_int_equal(res->regions[a][level],
					 rc.regions[a][level]);
	assert_int_equal(sim_counter_read(&s->stats, SIM_C_REPLAY_PRIVATE) +
				 sim_counter_read(&s->stats, SIM_C_REPLAY_SHARED),
			 trace->accesses);
	if (huge)
		assert_true(sim_seamcall_read(&s->stats, SIM_SC_PAGE_AUG_2M, SIM_OUT_OK));
	else
		assert_int_equal(sim_counter_read(&s->stats, SIM_C_ACCEPT_4K), rc.pages[0]);
	free(pages);

	sim_finish(s);
	assert_int_equal(sim_report_total(&s->report), 0);
	assert_false(s->engine_dead);
	sim_destroy(s);
	sim_trace_free(trace);
}

static void test_identity(void **state)
{
	(void)state;
	replay(SIM_PLACE_IDENTITY, false, 3, 21);
}

static void test_identity_huge(void **state)
{
	(void)state;
	replay(SIM_PLACE_IDENTITY, true, 2, 22);
}

static void test_allocator(void **state)
{
	(void)state;
	replay(SIM_PLACE_ALLOCATOR, false, 4, 23);
}

/* ---- malformed input ----------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A file with a bad line, and the first 30000 bytes of the trace. */
static void make_bad_traces(char *bad_line, char *truncated, size_t len)
{
	static const char text[] = "# a comment\n0x7f0000001000\n\n"
				   "7f0000002000\nnot-an-address\n";
	char *data = malloc(30000);
	FILE *f = fopen(trace_path, "rb");

	snprintf(bad_line, len, "%s/bad-line.txt", tmpdir);
	snprintf(truncated, len, "%s/truncated.zst", tmpdir);
	write_file(bad_line, text, sizeof(text) - 1);
	assert_non_null(data);
	assert_non_null(f);
	assert_int_equal(fread(data, 1, 30000, f), 30000);
	fclose(f);
	write_file(truncated, data, 30000);
	free(data);
}

static void test_scan_errors(void **state)
{
	char bad_line[256], truncated[256], err[400];
	struct sim_trace *t = NULL;

	(void)state;
	make_bad_traces(bad_line, truncated, sizeof(bad_line));
	assert_int_equal(sim_trace_scan(bad_line, SIM_PLACE_IDENTITY, 0, &t,
					err, sizeof(err)),
			 -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "line 5: not a hexadecimal address"));
	/* The limit stops before the bad line. */
	assert_int_equal(sim_trace_scan(bad_line, SIM_PLACE_IDENTITY, 2, &t,
					err, sizeof(err)),
			 0);
	assert_int_equal(t->accesses, 2);
	sim_trace_free(t);
	t = NULL;
	assert_int_equal(sim_trace_scan(truncated, SIM_PLACE_ALLOCATOR, 0, &t,
					err, sizeof(err)),
			 -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, ": line "));
	assert_non_null(strstr(err, "truncated compressed stream"));
	assert_int_equal(sim_trace_scan("/nonexistent/trace",
					SIM_PLACE_IDENTITY, 0, &t, err,
					sizeof(err)),
			 -ENOENT);
}

/* ---- the command --------------------------------------------------------- */

/* Run tdpsim with @args; returns its exit status, output in files. */
static int run_tdpsim(const char *const *args, char *out, char *errf,
		      size_t len)
{
	posix_spawn_file_actions_t fa;
	const char *argv[24];
	int n = 0, status;
	pid_t pid;

	snprintf(out, len, "%s/stdout", tmpdir);
	snprintf(errf, len, "%s/stderr", tmpdir);
	argv[n++] = tdpsim_path;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, errf,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(posix_spawn(&pid, tdpsim_path, &fa, NULL,
				     (char *const *)argv, environ),
			 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status)); /* no crash */
	return WEXITSTATUS(status);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 20);

	assert_non_null(f);
	assert_non_null(buf);
	fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	return buf;
}

static void expect_output(const char *path, const char *const *want)
{
	char *text = slurp(path);

	for (; *want; want++)
		if (!strstr(text, *want))
			fail_msg("%s lacks \"%s\":\n%s", path, *want, text);
	free(text);
}

static void test_command(void **state)
{
	char limit[32], bad_line[256], truncated[256], out[256], errf[256];
	const char *replay_args[] = { "--trace", trace_path, "--quiet",
				      "--seed", "5", "--trace-limit", limit,
				      "--json", NULL, NULL };
	const char *bad_args[] = { "--trace", bad_line, NULL };
	const char *truncated_args[] = { "--trace", truncated, NULL };
	const char *figures[] = {
		"faults_per_s", "tables level 1 (per 2 MiB)",
		"tables level 3 (per 512 GiB)", "bytes_per_mapped_page",
		"peak_rss_mib", "replay_pages", "result: PASS", NULL,
	};
	const char *json_keys[] = { "\"faults_per_s\"", "\"tables_l1\"",
				    "\"bytes_per_mapped_page\"",
				    "\"peak_rss_bytes\"", "\"replay\"", NULL };
	const char *bad_stderr[] = { "line 5: not a hexadecimal address",
				     NULL };
	const char *truncated_stderr[] = { ": line ",
					   "truncated compressed stream",
					   NULL };
	char json[256];

	(void)state;
	snprintf(limit, sizeof(limit), "%" PRIu64,
		 trace_limit ? trace_limit : UINT64_MAX);
	snprintf(json, sizeof(json), "%s/summary.json", tmpdir);
	replay_args[8] = json;
	assert_int_equal(run_tdpsim(replay_args, out, errf, sizeof(out)), 0);
	expect_output(out, figures);
	expect_output(json, json_keys);

	make_bad_traces(bad_line, truncated, sizeof(bad_line));
	assert_int_equal(run_tdpsim(bad_args, out, errf, sizeof(out)), 2);
	expect_output(errf, bad_stderr);
	assert_int_equal(run_tdpsim(truncated_args, out, errf, sizeof(out)),
			 2);
	expect_output(errf, truncated_stderr);
}

static int cleanup(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_identity_huge),
		cmocka_unit_test(test_allocator),
		cmocka_unit_test(test_scan_errors),
		cmocka_unit_test(test_command),
	};

	if (argc != 4) {
		fprintf(stderr, "usage: %s TRACE TDPSIM LIMIT\n", argv[0]);
		return 2;
	}
	trace_path = argv[1];
	tdpsim_path = argv[2];
	trace_limit = strtoull(argv[3], NULL, 0);
	if (access(trace_path, R_OK)) {
		printf("skipped: no trace at %s\n", trace_path);
		return 77;
	}
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	return cmocka_run_group_tests_name("sim-replay", tests, NULL, cleanup);
}
