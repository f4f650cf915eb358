/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The end-of-run summary: a table on a stream and the same numbers as a
 * JSON document (json-c).  Both walk the counter table of stats.h, so a
 * new counter shows up in both.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

/* Generic sections, in print order; "faults" has its own table. */
static const char *const sections[] = {
	"retries", "zaps", "flushes", "conversions", "accepts",
	"accesses", "checks", "events", "host_memory",
};

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

static void print_engine(FILE *f, const struct tdp_stats *e)
{
	fprintf(f, "engine (tdp_mmu_get_stats after teardown)\n");
	fprintf(f, "  %-28s %14" PRIu64 "\n", "faults_fixed", e->faults_fixed);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "faults_spurious",
		e->faults_spurious);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "faults_retried",
		e->faults_retried);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "zapped_leaves",
		e->zapped_leaves);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "zapped_tables",
		e->zapped_tables);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "flushes_range",
		e->flushes_range);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "flushes_all", e->flushes_all);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "backend_busy", e->backend_busy);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "backend_errors",
		e->backend_errors);
	fprintf(f, "  %-28s %14" PRIu64 "\n", "pages_in_use", e->pages_in_use);
}

void sim_print_summary(struct sim *s, FILE *f)
{
	struct sim_stats st;
	uint64_t total = sim_report_total(&s->report);

	sim_stats_snapshot(&s->stats, &st);
	fprintf(f, "\ntdpsim summary: seed %" PRIu64 ", %u vCPUs, %" PRIu64
		" MiB guest (%.0f%% private at boot), huge pages %s, "
		"%.1f s\n\n", s->cfg.seed, s->cfg.nr_vcpus,
		s->cfg.guest_bytes >> 20, s->cfg.private_pct,
		s->cfg.huge ? "on" : "off", s->elapsed);
	print_faults(f, &st);
	print_seamcalls(f, &st);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		print_section(f, &st, sections[i]);
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
	return o;
}

static struct json_object *engine_json(const struct tdp_stats *e)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "faults_fixed", e->faults_fixed);
	add_u64(o, "faults_spurious", e->faults_spurious);
	add_u64(o, "faults_retried", e->faults_retried);
	add_u64(o, "zapped_leaves", e->zapped_leaves);
	add_u64(o, "zapped_tables", e->zapped_tables);
	add_u64(o, "flushes_range", e->flushes_range);
	add_u64(o, "flushes_all", e->flushes_all);
	add_u64(o, "backend_busy", e->backend_busy);
	add_u64(o, "backend_errors", e->backend_errors);
	add_u64(o, "pages_in_use", e->pages_in_use);
	return o;
}

int sim_write_json(struct sim *s, const char *path)
{
	struct json_object *root = json_object_new_object();
	struct json_object *calls = json_object_new_object();
	struct json_object *viol = json_object_new_object();
	uint64_t total = sim_report_total(&s->report);
	struct sim_stats st;
	int ret;

	sim_stats_snapshot(&s->stats, &st);
	json_object_object_add(root, "config", config_json(s));
	json_object_object_add(root, "elapsed_s",
			       json_object_new_double(s->elapsed));
	for (int c = 0; c < SIM_NR_COUNTERS; c++)
		add_u64(section_object(root, sim_counter_section(c)),
			sim_counter_key(c), st.c[c]);
	for (int op = 0; op < SIM_NR_SEAMCALLS; op++) {
		struct json_object *o = json_object_new_object();

		for (int out = 0; out < SIM_NR_OUTCOMES; out++)
			add_u64(o, sim_outcome_key(out), st.seamcall[op][out]);
		json_object_object_add(calls, sim_seamcall_key(op), o);
	}
	json_object_object_add(root, "seamcalls", calls);
	json_object_object_add(root, "engine", engine_json(&s->engine_stats));
	add_u64(viol, "total", total);
	for (int k = 0; k < SIM_NR_VIOLATION_KINDS; k++)
		add_u64(viol, sim_violation_kind_key(k),
			sim_report_count(&s->report, k));
	json_object_object_add(root, "violations", viol);
	json_object_object_add(root, "passed", json_object_new_boolean(!total));
	ret = json_object_to_file_ext(path, root, JSON_C_TO_STRING_PRETTY);
	json_object_put(root);
	return ret ? -EIO : 0;
}
