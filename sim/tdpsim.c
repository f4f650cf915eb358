/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tdpsim: run libtdp against a simulated TDX module, simulated vCPUs and
 * a simulated guest, and fail if anything went wrong.  See sim/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scenario.h"
#include "summary.h"

static void usage(FILE *f, const char *prog)
{
	struct sim_config d;

	sim_config_default(&d);
	fprintf(f,
"Usage: %s [options]\n"
"\n"
"Runs libtdp as the EPT engine of a simulated confidential VM (Intel TDX):\n"
"a strict simulated TDX module is the private backend, simulated vCPUs\n"
"translate through the Secure EPT and libtdp's direct tree with a TLB, and\n"
"a simulated guest accepts, converts and checks its memory.  Host events\n"
"(unmaps with page migration, pre-faults, slot deletions) race with it.\n"
"Exits 0 only if no violation was found.\n"
"\n"
"Options:\n"
"  -v, --vcpus=N            vCPU threads, 1..%d (default %u)\n"
"  -m, --memory=SIZE        guest memory, a multiple of 2M; suffixes K, M, G\n"
"                           (default %" PRIu64 "M)\n"
"  -p, --private=PCT        percent of guest memory private at boot\n"
"                           (default %.0f)\n"
"  -c, --convert-rate=PCT   percent of guest operations that convert memory\n"
"                           with MapGPA (default %.2g)\n"
"  -S, --split-rate=PCT     percent of conversions and lazy ACCEPTs of a\n"
"                           huge region done on a run of 4 KiB pages inside\n"
"                           it, not the whole region (default %.0f)\n"
"  -e, --event-rate=N       host events per second (default %.0f; 0: none)\n"
"  -b, --busy-rate=PCT      percent of SEAMCALLs answered OPERAND_BUSY on\n"
"                           purpose (default %.2g)\n"
"  -f, --fail-rate=PCT      percent of SEPT.ADD/PAGE.AUG failed on purpose\n"
"                           (default %.2g)\n"
"  -H, --huge=on|off        2 MiB mappings of both aliases (default %s;\n"
"                           off for a trace replay)\n"
"  -d, --duration=SEC       run time in seconds (default %.0f)\n"
"  -s, --seed=N             seed of every random choice (default: from the\n"
"                           clock); always printed\n"
"  -k, --check-interval=SEC seconds between stop-the-world checks\n"
"                           (default %.0f; 0: only at the end)\n"
"  -I, --image=N            pages of the TD's initial image, added with\n"
"                           PAGE.ADD and measured before the TD runs\n"
"                           (default %u; 0: none)\n"
"  -g, --migrate            live-migrate the shared memory alongside the\n"
"                           workload: dirty-logging rounds, then stop and\n"
"                           copy; every page written after its last copy\n"
"                           must have been found dirty\n"
"  -T, --tds=N              TDs on the one simulated module, 1..%d (default\n"
"                           %u): each with its own engine MMU, host,\n"
"                           guest and vCPUs, all running at once, sharing\n"
"                           host memory and the PAMT\n"
"  -M, --mmio=N             pages of the guest's MMIO window above its\n"
"                           memory, 0..4096 (default %u; 0: none)\n"
"  -D, --fault-delay=US     one vCPU fault in %d waits a random 0..US\n"
"                           microseconds between resolving its page and\n"
"                           tdp_map() (default %u; 0: never)\n"
"  -R, --race-rate=PCT      percent of shared vCPU faults the host races\n"
"                           with an unmap of its own at that point, 200\n"
"                           times as many of those that may map 2 MiB\n"
"                           (default %.2g; 0: none)\n"
"  -C, --lock-check=US      every US microseconds take mmu_lock for write\n"
"                           (tdp_mmu_exclusive()) and check that every\n"
"                           vCPU's shared TLB entries are backed by the\n"
"                           tree (default %u; 0: never)\n"
"  -j, --json=FILE          also write the summary to FILE as JSON\n"
"  -q, --quiet              no progress line on stderr\n"
"  -h, --help               this text\n"
"\n"
"Trace replay (instead of the random scenario):\n"
"  -t, --trace=FILE         replay a page-touch trace (one hexadecimal\n"
"                           address per line, plain or zstd) as guest\n"
"                           writes, split round robin across the vCPUs;\n"
"                           the run lasts as long as the trace\n"
"  -P, --placement=MODEL    identity: GPA = address (below 2^47, others\n"
"                           are counted and skipped); allocator: the\n"
"                           guest hands out frames in first-touch order\n"
"                           (default identity)\n"
"  -L, --trace-limit=N      replay only the first N addresses\n"
"  With --trace, --private is the share of private 2 MiB regions (by a\n"
"  hash of the seed and the region), --huge on also makes the guest accept\n"
"  whole regions, and --memory, --duration, --convert-rate and\n"
"  --event-rate do not apply.\n"
"\n"
"Output: the seed, a progress line on stderr about once a second, every\n"
"violation as it is found (the first ones in full), then a summary table\n"
"on stdout: faults by alias and outcome, SEAMCALLs by outcome, retries,\n"
"zaps by event, flushes and kicks, conversions, accepts, accesses, checks,\n"
"host events, host memory, the page tables before teardown (tables per\n"
"level, page-table bytes per mapped 4 KiB page), faults per second, peak\n"
"resident memory, the engine's own statistics and the violations by kind.\n",
		prog, SIM_MAX_VCPUS, d.nr_vcpus, d.guest_bytes >> 20,
		d.private_pct, d.convert_pct, d.split_pct, d.event_rate,
		d.busy_pct,
		d.fail_pct, d.huge ? "on" : "off", d.duration,
		d.check_interval, d.image_pages, SIM_MAX_TDS, d.nr_tds,
		d.mmio_pages, SIM_FAULT_DELAY_ONE_IN, d.fault_delay_us,
		d.race_pct, d.lock_check_us);
}

static int parse_size(const char *arg, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 0);
	if (errno || end == arg)
		return -EINVAL;
	switch (*end) {
	case 'G':
	case 'g':
		v <<= 10;
		/* fall through */
	case 'M':
	case 'm':
		v <<= 10;
		/* fall through */
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_double(const char *arg, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static uint64_t seed_from_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000003ULL) ^ (uint64_t)ts.tv_nsec;
}

/* What the command line asked for. */
enum parse_result { PARSE_RUN, PARSE_HELP, PARSE_BAD };

/* Options besides the simulation's configuration. */
struct cmdline {
	const char *json;
	bool seeded;
	const char *trace;
	enum sim_placement placement;
	uint64_t trace_limit;
	/* A scenario option that a replay does not use, and an option only
	 * a replay uses, if one was given. */
	int scenario_only;
	int replay_only;
	bool huge_given;
};

/* Apply one option to @cfg; returns 0 or -EINVAL for a bad value. */
static int apply_option(int opt, const char *arg, struct sim_config *cfg,
			struct cmdline *cl)
{
	double vcpus;
	char *end;
	int ret = 0;

	if (strchr("mcSedIMTDRC", opt))
		cl->scenario_only = opt;
	if (strchr("PL", opt))
		cl->replay_only = opt;
	if (opt == 'H')
		cl->huge_given = true;
	switch (opt) {
	case 'v':
		ret = parse_double(arg, 1, SIM_MAX_VCPUS, &vcpus);
		if (ret)
			return ret;
		/* A whole number only; a bad value changes nothing. */
		if (vcpus != (unsigned int)vcpus)
			return -EINVAL;
		cfg->nr_vcpus = (unsigned int)vcpus;
		return 0;
	case 'm':
		ret = parse_size(arg, &cfg->guest_bytes);
		if (!ret && (!cfg->guest_bytes ||
			     cfg->guest_bytes % (2ULL << 20)))
			ret = -EINVAL;
		return ret;
	case 'p':
		return parse_double(arg, 0, 100, &cfg->private_pct);
	case 'c':
		return parse_double(arg, 0, 100, &cfg->convert_pct);
	case 'S':
		return parse_double(arg, 0, 100, &cfg->split_pct);
	case 'e':
		return parse_double(arg, 0, 1e6, &cfg->event_rate);
	case 'b':
		return parse_double(arg, 0, 100, &cfg->busy_pct);
	case 'f':
		return parse_double(arg, 0, 100, &cfg->fail_pct);
	case 'H':
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return -EINVAL;
		cfg->huge = !strcmp(arg, "on");
		return 0;
	case 'd':
		return parse_double(arg, 0, 1e6, &cfg->duration);
	case 's':
		errno = 0;
		cfg->seed = strtoull(arg, &end, 0);
		cl->seeded = true;
		return errno || end == arg || *end ? -EINVAL : 0;
	case 'k':
		return parse_double(arg, 0, 1e6, &cfg->check_interval);
	case 'j':
		cl->json = arg;
		return 0;
	case 'T': {
		double tds;

		ret = parse_double(arg, 1, SIM_MAX_TDS, &tds);
		if (ret || tds != (unsigned int)tds)
			return -EINVAL;
		cfg->nr_tds = (unsigned int)tds;
		return 0;
	}
	case 'I':
	case 'M': {
		double pages;

		ret = parse_double(arg, 0, opt == 'I' ? 1 << 20 : 4096, &pages);
		if (ret || pages != (unsigned int)pages)
			return -EINVAL;
		*(opt == 'I' ? &cfg->image_pages : &cfg->mmio_pages) =
			(unsigned int)pages;
		return 0;
	}
	case 'D':
	case 'C': {
		double us;

		ret = parse_double(arg, 0, 1e6, &us);
		if (ret || us != (unsigned int)us)
			return -EINVAL;
		*(opt == 'D' ? &cfg->fault_delay_us : &cfg->lock_check_us) =
			(unsigned int)us;
		return 0;
	}
	case 'R':
		return parse_double(arg, 0, 100, &cfg->race_pct);
	case 't':
		cl->trace = arg;
		return 0;
	case 'P':
		return sim_placement_parse(arg, &cl->placement);
	case 'L':
		errno = 0;
		cl->trace_limit = strtoull(arg, &end, 0);
		return errno || end == arg || *end || !cl->trace_limit
			       ? -EINVAL
			       : 0;
	}
	return -EINVAL;
}

/*
 * The options, each once: X(long name, has_arg, letter).  The table for
 * getopt_long() and the string of letters are made from it.
 */
#define TDPSIM_OPTIONS(X)                                                      \
	X("vcpus", required_argument, 'v')                                     \
	X("memory", required_argument, 'm')                                    \
	X("private", required_argument, 'p')                                   \
	X("convert-rate", required_argument, 'c')                              \
	X("split-rate", required_argument, 'S')                                \
	X("event-rate", required_argument, 'e')                                \
	X("busy-rate", required_argument, 'b')                                 \
	X("fail-rate", required_argument, 'f')                                 \
	X("huge", required_argument, 'H')                                      \
	X("duration", required_argument, 'd')                                  \
	X("seed", required_argument, 's')                                      \
	X("check-interval", required_argument, 'k')                            \
	X("json", required_argument, 'j')                                      \
	X("quiet", no_argument, 'q')                                           \
	X("help", no_argument, 'h')                                            \
	X("trace", required_argument, 't')                                     \
	X("placement", required_argument, 'P')                                 \
	X("trace-limit", required_argument, 'L')                               \
	X("image", required_argument, 'I')                                     \
	X("mmio", required_argument, 'M')                                      \
	X("migrate", no_argument, 'g')                                        \
	X("tds", required_argument, 'T')                                       \
	X("fault-delay", required_argument, 'D')                               \
	X("race-rate", required_argument, 'R')                                 \
	X("lock-check", required_argument, 'C')

static enum parse_result parse_options(int argc, char **argv,
				       struct sim_config *cfg,
				       struct cmdline *cl)
{
#define TDPSIM_LONG_OPTION(name, has_arg, c) { name, has_arg, NULL, c },
	static const struct option options[] = {
		TDPSIM_OPTIONS(TDPSIM_LONG_OPTION)
		{ NULL, 0, NULL, 0 },
	};
#undef TDPSIM_LONG_OPTION
	/* Each letter, with a ':' if the option takes a value. */
	char shortopts[2 * (sizeof(options) / sizeof(options[0]))];
	size_t n = 0;
	int opt;

	for (const struct option *o = options; o->name; o++) {
		shortopts[n++] = (char)o->val;
		if (o->has_arg == required_argument)
			shortopts[n++] = ':';
	}
	shortopts[n] = '\0';
	while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) !=
	       -1) {
		if (opt == 'h')
			return PARSE_HELP;
		if (opt == 'q') {
			cfg->progress = false;
			continue;
		}
		if (opt == 'g') {
			cfg->migrate = true;
			cl->scenario_only = opt;
			continue;
		}
		if (opt == '?')
			return PARSE_BAD;
		if (apply_option(opt, optarg, cfg, cl)) {
			fprintf(stderr, "tdpsim: bad value for -%c: %s\n", opt,
				optarg);
			return PARSE_BAD;
		}
	}
	if (optind < argc)
		return PARSE_BAD;
	if (cl->trace && cl->scenario_only) {
		fprintf(stderr,
			"tdpsim: -%c does not apply to a trace replay\n",
			cl->scenario_only);
		return PARSE_BAD;
	}
	if (!cl->trace && cl->replay_only) {
		fprintf(stderr, "tdpsim: -%c needs --trace\n", cl->replay_only);
		return PARSE_BAD;
	}
	if (cl->trace) {
		/* The replay is the trace alone, one fault per touched page
		 * unless huge pages are asked for. */
		cfg->convert_pct = 0;
		cfg->event_rate = 0;
		cfg->image_pages = 0;
		cfg->mmio_pages = 0;
		if (!cl->huge_given)
			cfg->huge = false;
	}
	if (!cl->seeded)
		cfg->seed = seed_from_clock();
	return PARSE_RUN;
}

/*
 * Scan the trace of a replay before anything else: a malformed trace is
 * an error with its line number, and nothing runs.
 */
static int scan_trace(const struct cmdline *cl, struct sim_config *cfg,
		      struct sim_trace **trace)
{
	char err[400];

	*trace = NULL;
	if (!cl->trace)
		return 0;
	if (sim_trace_scan(cl->trace, cl->placement, cl->trace_limit, trace,
			   err, sizeof(err))) {
		fprintf(stderr, "tdpsim: %s\n", err);
		return -EINVAL;
	}
	cfg->trace = *trace;
	return 0;
}

/* --tds N: the TDs on one module, all at once; a summary per TD. */
static int run_tds(const struct sim_config *cfg, const char *json)
{
	struct sim *tds[SIM_MAX_TDS];
	uint64_t violations;
	int ret = sim_create_tds(cfg, tds);

	if (ret) {
		fprintf(stderr, "tdpsim: cannot set up the simulation: %s\n",
			strerror(-ret));
		return 2;
	}
	violations = sim_run_tds(tds, cfg->nr_tds);
	for (unsigned int i = 0; i < cfg->nr_tds; i++)
		sim_print_summary(tds[i], stdout);
	if (json && sim_write_json_tds(tds, cfg->nr_tds, json)) {
		fprintf(stderr, "tdpsim: cannot write %s\n", json);
		ret = 2;
	}
	sim_destroy_tds(tds, cfg->nr_tds);
	printf("tdpsim: seed %" PRIu64 ", %u TDs, %" PRIu64 " violation%s\n",
	       cfg->seed, cfg->nr_tds, violations,
	       violations == 1 ? "" : "s");
	if (ret)
		return ret;
	return violations ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cmdline cl = { 0 };
	struct sim_trace *trace;
	struct sim_config cfg;
	uint64_t violations;
	struct sim *s;
	int ret;

	sim_config_default(&cfg);
	switch (parse_options(argc, argv, &cfg, &cl)) {
	case PARSE_HELP:
		usage(stdout, argv[0]);
		return 0;
	case PARSE_BAD:
		usage(stderr, argv[0]);
		return 2;
	case PARSE_RUN:
		break;
	}
	if (scan_trace(&cl, &cfg, &trace))
		return 2;

	printf("tdpsim: seed %" PRIu64 " (rerun with --seed %" PRIu64 ")\n",
	       cfg.seed, cfg.seed);
	fflush(stdout);
	if (cfg.nr_tds > 1)
		return run_tds(&cfg, cl.json);
	ret = sim_create(&cfg, &s);
	if (ret) {
		fprintf(stderr, "tdpsim: cannot set up the simulation: %s\n",
			strerror(-ret));
		sim_trace_free(trace);
		return 2;
	}
	violations = sim_run(s);
	sim_print_summary(s, stdout);
	if (s->replay && sim_replay_error(s->replay)) {
		fprintf(stderr, "tdpsim: %s\n", sim_replay_error(s->replay));
		ret = 2;
	}
	if (cl.json && sim_write_json(s, cl.json)) {
		fprintf(stderr, "tdpsim: cannot write %s\n", cl.json);
		ret = 2;
	}
	sim_destroy(s);
	sim_trace_free(trace);
	printf("tdpsim: seed %" PRIu64 ", %" PRIu64 " violation%s\n", cfg.seed,
	       violations, violations == 1 ? "" : "s");
	if (ret)
		return ret;
	return violations ? 1 : 0;
}
