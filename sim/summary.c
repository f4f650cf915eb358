/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The end-of-run summary: a table on a stream and the same numbers as a
 * JSON document (json-c).  Both walk the counter table of stats.h, so a
 * new counter shows up in both.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "summary.h"

/* The "replay" section is printed for a trace replay only, the
 * "migration" one with --migrate only. */
static bool section_shown(const struct sim *s, const char *section)
{
	if (!strcmp(section, "migration"))
		return s->cfg.migrate;
	return s->cfg.trace || strcmp(section, "replay");
}

/*
 * Counter @c opens a section of the table: the sections are printed in
 * the order SIM_COUNTERS lists them, each one's counters together, and
 * "faults" has a table of its own.
 */
static bool generic_section_starts_at(int c)
{
	const char *section = sim_counter_section(c);

	return (c == 0 || strcmp(section, sim_counter_section(c - 1))) &&
	       strcmp(section, "faults");
}

/* ---- derived figures ----------------------------------------------------- */

/* Page-table cost at the end of the workload (zero if not captured). */
struct pt_figures {
	uint64_t tables;       /* libtdp's tables, both trees, roots too */
	uint64_t table_bytes;  /* their memory, 4 KiB each */
	uint64_t mapped_pages; /* 4 KiB pages mapped, both aliases */
	double bytes_per_page; /* table_bytes / mapped_pages */
	/* Trace replay: table_bytes per distinct page touched (a huge
	 * leaf maps pages the program never touched). */
	double bytes_per_touched_page;
};

static void pt_figures(const struct sim *s, struct pt_figures *pf)
{
	const struct tdp_stats *t = &s->tables_at_end;

	memset(pf, 0, sizeof(*pf));
	if (!s->have_tables_at_end)
		return;
	for (int type = 0; type < TDP_NR_ROOT_TYPES; type++) {
		for (int level = 1; level <= TDP_MAX_LEVEL; level++) {
			pf->tables += t->tables[type][level];
			pf->mapped_pages += t->leaves[type][level] *
					    tdp_level_pages(level);
		}
	}
	pf->table_bytes = pf->tables * TDP_PAGE_SIZE;
	if (pf->mapped_pages)
		pf->bytes_per_page =
			(double)pf->table_bytes / (double)pf->mapped_pages;
	if (s->cfg.trace)
		pf->bytes_per_touched_page =
			(double)pf->table_bytes /
			(double)s->cfg.trace->distinct_pages;
}

/* Peak resident memory of the process so far, in bytes. */
static uint64_t peak_rss_bytes(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024; /* Linux: KiB */
}

static double faults_per_s(const struct sim *s, const struct sim_stats *st)
{
	return s->elapsed > 0 ? (double)sim_faults_total(st) / s->elapsed : 0;
}

/* ---- the table ----------------------------------------------------------- */

static void print_header(FILE *f, const struct sim *s)
{
	const struct sim_trace *t = s->cfg.trace;

	if (!t) {
		char td[32] = "";

		if (s->cfg.nr_tds > 1)
			snprintf(td, sizeof(td), " (TD %u of %u)", s->td,
				 s->cfg.nr_tds);
		fprintf(f, "\ntdpsim summary%s: seed %" PRIu64 ", %u vCPUs, %"
			PRIu64 " MiB guest (%.0f%% private at boot), huge "
			"pages %s, %.1f s\n\n", td, s->cfg.seed, s->cfg.nr_vcpus,
			s->cfg.guest_bytes >> 20, s->cfg.private_pct,
			s->cfg.huge ? "on" : "off", s->elapsed);
		return;
	}
	fprintf(f, "\ntdpsim summary: seed %" PRIu64 ", %u vCPUs, trace %s "
		"(%s placement, guest memory %" PRIu64 " x 2 MiB, %.0f%% "
		"private regions), huge pages %s, %.2f s\n\n", s->cfg.seed,
		s->cfg.nr_vcpus, t->path, sim_placement_name(t->placement),
		t->nr_regions, s->cfg.private_pct, s->cfg.huge ? "on" : "off",
		s->elapsed);
}

static void print_faults(FILE *f, const struct sim_stats *st)
{
	static const char *const rows[] = { "fixed", "spurious", "retry",
					    "error" };

	fprintf(f, "faults (EPT violations handled by tdp_map)\n");
	fprintf(f, "  %-28s %14s %14s\n", "", "private", "shared");
	for (int i = 0; i < 4; i++)
		fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", rows[i],
			st->c[SIM_C_FAULT_PRIVATE_FIXED + i],
			st->c[SIM_C_FAULT_SHARED_FIXED + i]);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "injected failures survived",
		st->c[SIM_C_FAULT_INJECTED_SURVIVED]);
}

static void print_seamcalls(FILE *f, const struct sim_stats *st)
{
	fprintf(f, "SEAMCALLs and TDCALLs (by outcome)\n");
	fprintf(f, "  %-20s %12s %10s %12s %12s %8s\n", "", "ok", "busy",
		"busy(inj)", "failed(inj)", "error");
	for (int op = 0; op < SIM_NR_SEAMCALLS; op++) {
		const uint64_t *o = st->seamcall[op];

		fprintf(f, "  %-20s %12" PRIu64 " %10" PRIu64 " %12" PRIu64
			" %12" PRIu64 " %8" PRIu64 "\n",
			sim_seamcall_name(op), o[SIM_OUT_OK], o[SIM_OUT_BUSY],
			o[SIM_OUT_BUSY_INJECTED], o[SIM_OUT_FAIL_INJECTED],
			o[SIM_OUT_ERROR]);
	}
}

static void print_section(FILE *f, const struct sim_stats *st,
			  const char *section)
{
	fprintf(f, "%s\n", section);
	for (int c = 0; c < SIM_NR_COUNTERS; c++) {
		if (strcmp(sim_counter_section(c), section))
			continue;
		fprintf(f, "  %-28s %14" PRIu64 "  %s\n", sim_counter_key(c),
			st->c[c], sim_counter_desc(c));
	}
}

/* The engine's counters the summary shows, text and JSON alike. */
#define ENGINE_FIELD(name) { #name, offsetof(struct tdp_stats, name) }
static const struct {
	const char *name;
	size_t offset;
} engine_fields[] = {
	ENGINE_FIELD(faults_fixed),   ENGINE_FIELD(faults_spurious),
	ENGINE_FIELD(faults_retried), ENGINE_FIELD(zapped_leaves),
	ENGINE_FIELD(zapped_tables),  ENGINE_FIELD(flushes_range),
	ENGINE_FIELD(flushes_all),    ENGINE_FIELD(backend_busy),
	ENGINE_FIELD(backend_errors), ENGINE_FIELD(pages_in_use),
	ENGINE_FIELD(demotes),	      ENGINE_FIELD(fault_demotes),
	ENGINE_FIELD(demote_busy),    ENGINE_FIELD(demote_errors),
	ENGINE_FIELD(promotes),	      ENGINE_FIELD(promote_busy),
	ENGINE_FIELD(promote_errors), ENGINE_FIELD(write_locks),
	ENGINE_FIELD(fault_write_locks),
};
#define NR_ENGINE_FIELDS (sizeof(engine_fields) / sizeof(engine_fields[0]))

static uint64_t engine_field(const struct tdp_stats *e, size_t i)
{
	uint64_t v;

	memcpy(&v, (const char *)e + engine_fields[i].offset, sizeof(v));
	return v;
}

static void print_engine(FILE *f, const struct tdp_stats *e)
{
	fprintf(f, "engine (tdp_mmu_get_stats after teardown)\n");
	for (size_t i = 0; i < NR_ENGINE_FIELDS; i++)
		fprintf(f, "  %-28s %14" PRIu64 "\n", engine_fields[i].name,
			engine_field(e, i));
}

static void print_trace(FILE *f, const struct sim *s)
{
	const struct sim_trace *t = s->cfg.trace;
	const struct sim_replay_result *res = sim_replay_result(s->replay);
	static const char *const span[4] = { "", "2 MiB", "1 GiB",
					     "512 GiB" };

	fprintf(f, "trace (%s, %s placement)\n", t->path,
		sim_placement_name(t->placement));
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "addresses", t->addresses,
		t->limit ? "addresses read (--trace-limit)"
			 : "addresses in the trace");
	if (t->placement == SIM_PLACE_IDENTITY)
		fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "out_of_range",
			t->out_of_range,
			"rejected: at or above 2^47, beyond the unaliased "
			"GPAs");
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "accesses", t->accesses,
		"addresses replayed as guest writes");
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "distinct_pages",
		t->distinct_pages, "4 KiB pages touched");
	if (!res->checked)
		return;
	fprintf(f, "  %-28s %14s %14s\n", "touched, by alias", "private",
		"shared");
	fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", "pages",
		res->pages[0], res->pages[1]);
	for (int level = 1; level <= 3; level++) {
		char name[40];

		snprintf(name, sizeof(name), "regions of %s", span[level]);
		fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", name,
			res->regions[0][level], res->regions[1][level]);
	}
}

static void print_page_tables(FILE *f, const struct sim *s)
{
	const struct tdp_stats *t = &s->tables_at_end;
	static const char *const span[] = { "", "per 2 MiB", "per 1 GiB",
					    "per 512 GiB", "root" };
	struct pt_figures pf;

	if (!s->have_tables_at_end)
		return;
	pt_figures(s, &pf);
	fprintf(f, "page tables (at the end of the workload, before "
		"teardown)\n");
	fprintf(f, "  %-28s %14s %14s\n", "", "mirror", "direct");
	for (int level = SIM_ROOT_LEVEL; level >= 1; level--) {
		char name[40];

		snprintf(name, sizeof(name), "tables level %d (%s)", level,
			 span[level]);
		fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", name,
			t->tables[TDP_ROOT_MIRROR][level],
			t->tables[TDP_ROOT_DIRECT][level]);
	}
	fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", "leaves 2 MiB",
		t->leaves[TDP_ROOT_MIRROR][2], t->leaves[TDP_ROOT_DIRECT][2]);
	fprintf(f, "  %-28s %14" PRIu64 " %14" PRIu64 "\n", "leaves 4 KiB",
		t->leaves[TDP_ROOT_MIRROR][1], t->leaves[TDP_ROOT_DIRECT][1]);
	fprintf(f, "  %-28s %14" PRId64 "  %s\n", "sept_pages",
		s->sept_pages_at_end,
		"the module's S-EPT pages below its root");
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "mapped_pages",
		pf.mapped_pages, "4 KiB pages mapped, both aliases");
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "table_bytes",
		pf.table_bytes, "libtdp's tables, both trees, 4 KiB each");
	fprintf(f, "  %-28s %14.2f  %s\n", "bytes_per_mapped_page",
		pf.bytes_per_page, "page-table bytes per mapped 4 KiB page");
	if (s->cfg.trace)
		fprintf(f, "  %-28s %14.2f  %s\n", "bytes_per_touched_page",
			pf.bytes_per_touched_page,
			"page-table bytes per page the trace touched");
}

/* One line per migration round (migrate.h). */
static void print_migration_rounds(FILE *f, const struct sim *s)
{
	const struct sim_migration *m = &s->migration;

	if (!m->enabled)
		return;
	fprintf(f, "migration rounds (the last one stops and copies)\n  round");
#define SIM_ROUND_HEAD(name) fprintf(f, " %11s", #name);
	SIM_MIGRATE_ROUND_FIELDS(SIM_ROUND_HEAD)
#undef SIM_ROUND_HEAD
	fprintf(f, "\n");
	for (unsigned int i = 0; i < m->nr_rounds; i++) {
		fprintf(f, "  %5u", i);
#define SIM_ROUND_VALUE(name) fprintf(f, " %11" PRIu64, m->rounds[i].name);
		SIM_MIGRATE_ROUND_FIELDS(SIM_ROUND_VALUE)
#undef SIM_ROUND_VALUE
		fprintf(f, "\n");
	}
}

static void print_performance(FILE *f, const struct sim *s,
			      const struct sim_stats *st)
{
	fprintf(f, "performance\n");
	fprintf(f, "  %-28s %14.3f  %s\n", "elapsed_s", s->elapsed,
		s->cfg.trace ? "time to replay the trace" : "run time");
	fprintf(f, "  %-28s %14" PRIu64 "  %s\n", "faults",
		sim_faults_total(st), "tdp_map() calls, every outcome");
	fprintf(f, "  %-28s %14.0f  %s\n", "faults_per_s",
		faults_per_s(s, st), "faults per second of elapsed time");
	fprintf(f, "  %-28s %14.1f  %s\n", "peak_rss_mib",
		(double)peak_rss_bytes() / (1 << 20),
		"peak resident memory of the process (getrusage)");
}

void sim_print_summary(struct sim *s, FILE *f)
{
	struct sim_stats st;
	uint64_t total = sim_report_total(&s->report);

	sim_stats_snapshot(&s->stats, &st);
	print_header(f, s);
	if (s->cfg.trace)
		print_trace(f, s);
	print_faults(f, &st);
	print_seamcalls(f, &st);
	for (int c = 0; c < SIM_NR_COUNTERS; c++)
		if (generic_section_starts_at(c) &&
		    section_shown(s, sim_counter_section(c)))
			print_section(f, &st, sim_counter_section(c));
	print_migration_rounds(f, s);
	print_page_tables(f, s);
	print_performance(f, s, &st);
	print_engine(f, &s->engine_stats);
	fprintf(f, "violations                     %14" PRIu64 "\n", total);
	for (int k = 0; k < SIM_NR_VIOLATION_KINDS; k++)
		if (sim_report_count(&s->report, k))
			fprintf(f, "  %-28s %14" PRIu64 "\n",
				sim_violation_kind_key(k),
				sim_report_count(&s->report, k));
	fprintf(f, "\nresult: %s\n", total ? "FAIL" : "PASS");
}

/* ---- JSON ---------------------------------------------------------------- */

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static struct json_object *section_object(struct json_object *root,
					  const char *section)
{
	struct json_object *o;

	if (json_object_object_get_ex(root, section, &o))
		return o;
	o = json_object_new_object();
	json_object_object_add(root, section, o);
	return o;
}

static struct json_object *config_json(const struct sim *s)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "vcpus", s->cfg.nr_vcpus);
	add_u64(o, "memory_bytes", s->cfg.guest_bytes);
	json_object_object_add(o, "private_pct",
			       json_object_new_double(s->cfg.private_pct));
	json_object_object_add(o, "convert_pct",
			       json_object_new_double(s->cfg.convert_pct));
	json_object_object_add(o, "event_rate",
			       json_object_new_double(s->cfg.event_rate));
	json_object_object_add(o, "busy_pct",
			       json_object_new_double(s->cfg.busy_pct));
	json_object_object_add(o, "fail_pct",
			       json_object_new_double(s->cfg.fail_pct));
	json_object_object_add(o, "huge", json_object_new_boolean(s->cfg.huge));
	json_object_object_add(o, "duration_s",
			       json_object_new_double(s->cfg.duration));
	add_u64(o, "seed", s->cfg.seed);
	add_u64(o, "tds", s->cfg.nr_tds);
	add_u64(o, "td", s->td);
	add_u64(o, "image_pages", s->cfg.image_pages);
	add_u64(o, "mmio_pages", s->cfg.mmio_pages);
	json_object_object_add(o, "migrate",
			       json_object_new_boolean(s->cfg.migrate));
	return o;
}

static void add_double(struct json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static struct json_object *tree_json(const struct tdp_stats *t, int type)
{
	struct json_object *o = json_object_new_object();

	for (int level = 1; level <= SIM_ROOT_LEVEL; level++) {
		char key[16];

		snprintf(key, sizeof(key), "tables_l%d", level);
		add_u64(o, key, t->tables[type][level]);
	}
	add_u64(o, "leaves_4k", t->leaves[type][1]);
	add_u64(o, "leaves_2m", t->leaves[type][2]);
	return o;
}

static struct json_object *page_tables_json(const struct sim *s)
{
	struct json_object *o = json_object_new_object();
	struct pt_figures pf;

	pt_figures(s, &pf);
	json_object_object_add(o, "mirror",
			       tree_json(&s->tables_at_end, TDP_ROOT_MIRROR));
	json_object_object_add(o, "direct",
			       tree_json(&s->tables_at_end, TDP_ROOT_DIRECT));
	add_u64(o, "sept_pages", (uint64_t)s->sept_pages_at_end);
	add_u64(o, "mapped_pages", pf.mapped_pages);
	add_u64(o, "table_bytes", pf.table_bytes);
	add_double(o, "bytes_per_mapped_page", pf.bytes_per_page);
	if (s->cfg.trace)
		add_double(o, "bytes_per_touched_page",
			   pf.bytes_per_touched_page);
	return o;
}

static struct json_object *performance_json(const struct sim *s,
					    const struct sim_stats *st)
{
	struct json_object *o = json_object_new_object();

	add_double(o, "elapsed_s", s->elapsed);
	add_u64(o, "faults", sim_faults_total(st));
	add_double(o, "faults_per_s", faults_per_s(s, st));
	add_u64(o, "peak_rss_bytes", peak_rss_bytes());
	return o;
}

static struct json_object *alias_json(const struct sim_replay_result *res,
				      int alias)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "pages", res->pages[alias]);
	add_u64(o, "regions_2m", res->regions[alias][1]);
	add_u64(o, "regions_1g", res->regions[alias][2]);
	add_u64(o, "regions_512g", res->regions[alias][3]);
	return o;
}

/* The trace and what the replay touched; the counters of the "replay"
 * section are added to the same object. */
static struct json_object *replay_json(const struct sim *s)
{
	const struct sim_trace *t = s->cfg.trace;
	const struct sim_replay_result *res = sim_replay_result(s->replay);
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "trace", json_object_new_string(t->path));
	json_object_object_add(
		o, "placement",
		json_object_new_string(sim_placement_name(t->placement)));
	add_u64(o, "limit", t->limit);
	add_u64(o, "addresses", t->addresses);
	add_u64(o, "out_of_range", t->out_of_range);
	add_u64(o, "accesses", t->accesses);
	add_u64(o, "distinct_pages", t->distinct_pages);
	add_u64(o, "guest_regions", t->nr_regions);
	json_object_object_add(o, "checked",
			       json_object_new_boolean(res->checked));
	json_object_object_add(o, "private", alias_json(res, 0));
	json_object_object_add(o, "shared", alias_json(res, 1));
	return o;
}

static struct json_object *engine_json(const struct tdp_stats *e)
{
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; i < NR_ENGINE_FIELDS; i++)
		add_u64(o, engine_fields[i].name, engine_field(e, i));
	return o;
}

static struct json_object *migration_rounds_json(const struct sim *s)
{
	struct json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < s->migration.nr_rounds; i++) {
		struct json_object *o = json_object_new_object();

#define SIM_ROUND_JSON(name) add_u64(o, #name, s->migration.rounds[i].name);
		SIM_MIGRATE_ROUND_FIELDS(SIM_ROUND_JSON)
#undef SIM_ROUND_JSON
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *summary_json(struct sim *s)
{
	struct json_object *root = json_object_new_object();
	struct json_object *calls = json_object_new_object();
	struct json_object *viol = json_object_new_object();
	uint64_t total = sim_report_total(&s->report);
	struct sim_stats st;

	sim_stats_snapshot(&s->stats, &st);
	json_object_object_add(root, "config", config_json(s));
	json_object_object_add(root, "elapsed_s",
			       json_object_new_double(s->elapsed));
	if (s->cfg.trace)
		json_object_object_add(root, "replay", replay_json(s));
	for (int c = 0; c < SIM_NR_COUNTERS; c++)
		if (section_shown(s, sim_counter_section(c)))
			add_u64(section_object(root, sim_counter_section(c)),
				sim_counter_key(c), st.c[c]);
	for (int op = 0; op < SIM_NR_SEAMCALLS; op++) {
		struct json_object *o = json_object_new_object();

		for (int out = 0; out < SIM_NR_OUTCOMES; out++)
			add_u64(o, sim_outcome_key(out), st.seamcall[op][out]);
		json_object_object_add(calls, sim_seamcall_key(op), o);
	}
	if (s->migration.enabled)
		json_object_object_add(section_object(root, "migration"),
				       "rounds", migration_rounds_json(s));
	json_object_object_add(root, "seamcalls", calls);
	json_object_object_add(root, "page_tables", page_tables_json(s));
	json_object_object_add(root, "performance", performance_json(s, &st));
	json_object_object_add(root, "engine", engine_json(&s->engine_stats));
	add_u64(viol, "total", total);
	for (int k = 0; k < SIM_NR_VIOLATION_KINDS; k++)
		add_u64(viol, sim_violation_kind_key(k),
			sim_report_count(&s->report, k));
	json_object_object_add(root, "violations", viol);
	json_object_object_add(root, "passed", json_object_new_boolean(!total));
	return root;
}

static int write_json(struct json_object *root, const char *path)
{
	int ret = json_object_to_file_ext(path, root, JSON_C_TO_STRING_PRETTY);

	json_object_put(root);
	return ret ? -EIO : 0;
}

int sim_write_json(struct sim *s, const char *path)
{
	return write_json(summary_json(s), path);
}

int sim_write_json_tds(struct sim **tds, unsigned int n, const char *path)
{
	struct json_object *root = json_object_new_object();
	struct json_object *each = json_object_new_array();
	uint64_t total = 0;

	for (unsigned int i = 0; i < n; i++) {
		json_object_array_add(each, summary_json(tds[i]));
		total += sim_report_total(&tds[i]->report);
	}
	add_u64(root, "tds", n);
	json_object_object_add(root, "td", each);
	add_u64(root, "violations", total);
	json_object_object_add(root, "passed", json_object_new_boolean(!total));
	return write_json(root, path);
}
