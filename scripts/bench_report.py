#!/usr/bin/python3
"""Turn a tdpbench JSON run into docs/PERFORMANCE.md and gnuplot PNGs.

Every ratio compares benchmarks of the same run.  Medians of the
repetitions are used.

Usage: bench_report.py RUN.json DOCS_DIR [RWLOCK_RUN.json]

RWLOCK_RUN.json is a run of the mixed/ benchmarks on an engine built with
-Dmmu_lock=rwlock; its rows join the "Mixed load" section with the suffix
RWLOCK_SUFFIX, each compared with its baseline from that same run.
"""
import json
import os
import platform
import subprocess
import sys

RWLOCK_SUFFIX = " [rwlock build]"
# Counters the mixed/ benchmarks export (bench/mixed.c).
MIXED_COUNTERS = ("mean_ns", "p50_ns", "p99_ns", "max_ns",
                  "bg_faults_per_second", "writes_in_a_read_section")


def load(path):
    """Rates, extra counters, mixed/ counters and failures of one run."""
    with open(path) as f:
        run = json.load(f)
    rate = {}
    extra = {}
    mixed = {}
    failed = {}
    for b in run["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            failed[name] = b.get("error_message", "failed")
            continue
        if b.get("aggregate_name") == "stddev":
            # The spread of a rate over the repetitions (wall rate first,
            # as below).
            sd = b.get("wall_items_per_second", b.get("items_per_second"))
            if sd is not None:
                extra.setdefault(name, {})["rate_sd"] = sd
            continue
        if b.get("aggregate_name", "median") != "median":
            continue
        if name.startswith("mixed/"):
            mixed[name] = {k: b[k] for k in MIXED_COUNTERS if k in b}
        if "items_per_second" in b:
            rate[name] = b["items_per_second"]
        # Threaded runs: every thread's items over the wall time.
        if "wall_items_per_second" in b:
            rate[name] = b["wall_items_per_second"]
        for key in ("pt_bytes_per_4k_page",):
            if key in b:
                extra.setdefault(name, {})[key] = b[key]
    return run["context"], rate, extra, mixed, failed


def ns(rate):
    return 1e9 / rate


def find(rate, name):
    if name not in rate:
        sys.exit(f"bench_report: {name} missing from the run")
    return rate[name]


def ratio_spread(rate, extra, num, den):
    """num/den over one standard deviation of each rate, as text."""
    sd_n = extra.get(num, {}).get("rate_sd")
    sd_d = extra.get(den, {}).get("rate_sd")
    if sd_n is None or sd_d is None:
        return ""
    lo = (rate[num] - sd_n) / (rate[den] + sd_d)
    hi = (rate[num] + sd_n) / max(rate[den] - sd_d, 1e-9)
    return f"; {lo:.2f} to {hi:.2f} within one s.d. of each rate"


def targets(rate, extra):
    direct = find(rate, "demand_paging/direct_4k")
    radix = find(rate, "limit/radix_plain")
    mirror = find(rate, "demand_paging/mirror_4k_noop")
    locked2 = find(rate, "baseline/global_lock/real_time/threads:2")
    zap = find(rate, "zap/1g_4k")
    zap_both = find(rate, "zap/1g_4k_shared_of_both")
    clear = find(rate, "limit/clear_loop")
    one_name = "demand_paging/disjoint_4k/real_time/threads:1"
    two_name = "demand_paging/disjoint_4k/real_time/threads:2"
    one = find(rate, one_name)
    two = find(rate, two_name)
    pt = extra["demand_paging/direct_4k"]["pt_bytes_per_4k_page"]
    trace = "trace/direct_4k/iterations:1/real_time/threads:"
    trace_rows = []
    if trace + "1" in rate:
        t1 = rate[trace + "1"]
        t2 = rate[trace + "2"]
        tl2 = find(rate, "trace/baseline/global_lock/iterations:1/real_time/threads:2")
        tr = find(rate, "trace/limit/radix_plain/iterations:1")
        tm = find(rate, "trace/mirror_4k_noop/iterations:1")
        tpt = extra[trace + "1"]["pt_bytes_per_4k_page"]
        trace_rows = [
            ("trace replay: direct vs limit/radix_plain on the same trace (time ratio)",
             ns(t1) / ns(tr), "<=", 3.0),
            ("trace replay: mirror, no-op backend, vs direct (time ratio)",
             ns(tm) / ns(t1), "<=", 1.3),
            ("trace replay: 2 threads vs 1 thread (throughput ratio"
             + ratio_spread(rate, extra, trace + "2", trace + "1") + ")",
             t2 / t1, ">=", 1.9),
            ("trace replay: 2 threads vs baseline/global_lock at 2 threads (throughput ratio)",
             t2 / tl2, ">=", 1.8),
            ("trace replay: page-table bytes per mapped 4 KiB page (sparse; reported)",
             tpt, "<=", 8.1),
        ]
    return [
        ("direct 4 KiB fault-in vs limit/radix_plain (time ratio)",
         ns(direct) / ns(radix), "<=", 2.0),
        ("mirror 4 KiB fault-in, no-op backend, vs direct (time ratio)",
         ns(mirror) / ns(direct), "<=", 1.3),
        ("2 threads disjoint vs 1 thread (throughput ratio"
         + ratio_spread(rate, extra, two_name, one_name) + ")",
         two / one, ">=", 1.9),
        ("2 threads disjoint vs baseline/global_lock at 2 threads (throughput ratio)",
         two / locked2, ">=", 1.8),
        ("zap of 1 GiB of 4 KiB mappings vs limit/clear_loop (time ratio)",
         ns(zap) / ns(clear), "<=", 3.0),
        ("host unmap of 1 GiB of 4 KiB shared mappings on a VM with both "
         "aliases vs limit/clear_loop (time ratio)",
         ns(zap_both) / ns(clear), "<=", 3.0),
        ("page-table bytes per mapped 4 KiB page (direct populate)",
         pt, "<=", 8.1),
    ] + trace_rows


def fmt_ns(v):
    if v is None:
        return "—"
    if v < 1e3:
        return f"{v:.0f} ns"
    if v < 1e6:
        return f"{v / 1e3:.1f} µs"
    return f"{v / 1e6:.2f} ms"


def fmt_rate(v):
    return "—" if v is None else f"{v / 1e6:.2f} M/s"


ZAP = "zap_1g_4k_under_faults/threads:{}/manual_time"
STORM = "invalidate_pairs_under_faults/{}/manual_time"
FAULT_ONLY = "invalidate_pairs_fault_only/manual_time"
CROSS = "cross_vm_writer/manual_time"
CROSS_IDLE = "cross_vm_writer_idle/manual_time"


def mixed_targets(mixed, failed, prefix, suffix):
    """Rows (benchmark, what, measured, against, value, op, goal, why, unit).

    @prefix selects the family ("mixed/" or "mixed/baseline/global_lock/")
    in @mixed and @failed, the counters and failures of one run; @suffix
    names the build in the benchmark column.  value is what the goal applies to (in unit);
    why says why there is none (a benchmark of the row failed or did not
    run); goal is None for figures reported without a target.
    """
    def get(name, key):
        return mixed.get(prefix + name, {}).get(key)

    def status(*names):
        for n in names:
            full = prefix + n
            if full in failed:
                return f"failed: {failed[full]}"
            if full not in mixed:
                return "not run"
        return None

    def ratio(a, b):
        return a / b if a is not None and b else None

    rows = []
    zap1, zap2 = get(ZAP.format(1), "mean_ns"), get(ZAP.format(2), "mean_ns")
    rows.append((ZAP.format(2), "1 GiB zap of 4 KiB leaves, 1 background faulter "
                 f"({fmt_rate(get(ZAP.format(2), 'bg_faults_per_second'))} faults during the zap)",
                 fmt_ns(zap2), f"zap alone (threads:1) {fmt_ns(zap1)}",
                 ratio(zap2, zap1), "<=", 1.5,
                 status(ZAP.format(1), ZAP.format(2)), ""))
    only = get(FAULT_ONLY, "bg_faults_per_second")
    for size, p99_goal in (("4k", 20.0), ("2m", None)):
        name = STORM.format(size)
        p50, p99 = get(name, "p50_ns"), get(name, "p99_ns")
        rows.append((name, f"begin + zap + end of one {size.upper()} range: p99 "
                     f"(p50 {fmt_ns(p50)})",
                     fmt_ns(p99), "—", None if p99 is None else p99 / 1e3,
                     "<=", p99_goal, status(name), " µs"))
        bg = get(name, "bg_faults_per_second")
        rows.append((name, "background fault throughput under the storm",
                     fmt_rate(bg), f"fault-only {fmt_rate(only)}",
                     ratio(bg, only), ">=", 0.8, status(name, FAULT_ONLY), ""))
    cross, idle = get(CROSS, "p50_ns"), get(CROSS_IDLE, "p50_ns")
    rows.append((CROSS, "median begin + zap + end on VM B while VM A's "
                 "reader sits 2 ms in its read section",
                 fmt_ns(cross), f"no VM A reader {fmt_ns(idle)}",
                 ratio(cross, idle), "<=", 1.2, status(CROSS, CROSS_IDLE), ""))
    return [(prefix + r[0] + suffix,) + r[1:] for r in rows]


def mixed_section(mixed, failed, rw_mixed, rw_failed):
    lines = ["## Mixed load", "",
             "Writers of `mmu_lock` timed while readers fault "
             "(`bench/mixed.c`). Each row is compared with its baseline "
             "from the same run; `mixed/baseline/global_lock/` rows "
             "serialize every operation (faults and writes) behind one "
             "process mutex and are compared with their own global-lock "
             "baselines. The value column is the ratio the goal applies to, "
             "or the p99 for the per-pair latency rows.",
             ""]
    if rw_mixed is not None:
        lines += [f"Rows ending in `{RWLOCK_SUFFIX.strip()}` come from "
                  "`build-bench-rwlock`, the engine built with "
                  "`-Dmmu_lock=rwlock` (a plain `pthread_rwlock_t`), "
                  "run right after the main run.", ""]
    lines += ["| benchmark | measure | measured | baseline (same run) | "
              "value | goal | met |", "|---|---|---|---|---|---|---|"]
    sets = [(mixed, failed, "mixed/", ""),
            (mixed, failed, "mixed/baseline/global_lock/", "")]
    if rw_mixed is not None:
        sets.append((rw_mixed, rw_failed, "mixed/", RWLOCK_SUFFIX))
    for m, f, prefix, suffix in sets:
        for name, what, measured, against, value, op, goal, why, unit in \
                mixed_targets(m, f, prefix, suffix):
            if why:
                lines.append(f"| `{name}` | {what} | {why} | — | — | "
                             f"{goal_text(op, goal, unit)} | **no** |")
                continue
            if goal is None:
                met = "reported"
            else:
                ok = value <= goal if op == "<=" else value >= goal
                met = "yes" if ok else "**no**"
            lines.append(f"| `{name}` | {what} | {measured} | {against} | "
                         f"{value:.2f}{unit} | {goal_text(op, goal, unit)} | {met} |")
    lines += ["", "All mixed-load figures (time per timed operation; "
              "background faults per second while the timed thread ran):", "",
              "| benchmark | mean | p50 | p99 | max | background faults/s |",
              "|---|---|---|---|---|---|"]
    every = dict(mixed)
    every_failed = dict(failed)
    if rw_mixed is not None:
        every.update({n + RWLOCK_SUFFIX: c for n, c in rw_mixed.items()})
        every_failed.update({n + RWLOCK_SUFFIX: e for n, e in rw_failed.items()})
    for name in sorted(set(every) | {n for n in every_failed if n.startswith("mixed/")}):
        if name in every_failed:
            lines.append(f"| `{name}` | failed: {every_failed[name]} | | | | |")
            continue
        c = every[name]
        lines.append(f"| `{name}` | {fmt_ns(c.get('mean_ns'))} | "
                     f"{fmt_ns(c.get('p50_ns'))} | {fmt_ns(c.get('p99_ns'))} | "
                     f"{fmt_ns(c.get('max_ns'))} | "
                     f"{fmt_rate(c.get('bg_faults_per_second'))} |")
    return lines + [""]


# Private huge pages (bench/private_huge.c): items are 2 MiB pages.
PRIVATE_HUGE = (
    ("private_huge/demote_by_fault/noop",
     "4 KiB fault below a private 2 MiB leaf: demote under the read lock, "
     "no-op backend"),
    ("private_huge/demote_by_zap/noop",
     "conversion of one 4 KiB page of a private 2 MiB leaf: demote under "
     "the write lock, remove one leaf, no-op backend"),
    ("private_huge/promote/noop",
     "tdp_promote_private() of a demoted 2 MiB range, no-op backend"),
    ("private_huge/demote_by_fault/sim",
     "the fault's demote through the simulated TDX module (BLOCK, TRACK, "
     "kick, PAGE.DEMOTE)"),
    ("private_huge/promote/sim",
     "the promote through the simulated TDX module (BLOCK, TRACK, kick, "
     "PAGE.PROMOTE)"),
)


def measured_rows(entries, rate, failed, ncols, cells):
    """One table row per (name, what, ...) of @entries: the failure of a
    run that failed a check, nothing for one that did not run, else the
    @ncols cells that cells(ns_per_item, entry) returns."""
    lines = []
    for entry in entries:
        name, what = entry[0], entry[1]
        if name in failed:
            blanks = " |" * (ncols - 1)
            lines.append(f"| `{name}` | {what} | failed: {failed[name]} |"
                         f"{blanks}")
        elif name in rate:
            lines.append(f"| `{name}` | {what} | "
                         + " | ".join(cells(ns(rate[name]), entry)) + " |")
    return lines


def private_huge_section(rate, failed):
    """Demote and promote per 2 MiB page and per 4 KiB SPTE, against
    limit/split_fill_2m (512 plain stores into a fresh table)."""
    if not any(n in rate or n in failed for n, _ in PRIVATE_HUGE):
        return []
    fill = rate.get("limit/split_fill_2m")
    lines = ["## Private huge pages", "",
             "Demotes and promotes of private 2 MiB leaves "
             "(`bench/private_huge.c`); every timed call's result and the "
             "engine's demote/promote counters are checked (a fault's "
             "demote must take no write lock). Per SPTE is the time per "
             "2 MiB page over its 512 4 KiB SPTEs; the limit is "
             "`limit/split_fill_2m`, 512 plain stores into a fresh table, "
             "from the same run. For scale, upstream figures for the "
             "direct tree: eager splitting about 61 ns and disabling "
             "dirty logging about 126 ns per 4 KiB SPTE.", "",
             "| benchmark | what | ns per 2 MiB page | ns per 4 KiB SPTE | "
             "x limit |", "|---|---|---|---|---|"]
    lines += measured_rows(
        PRIVATE_HUGE, rate, failed, 3,
        lambda per, _: [f"{per:,.0f}", f"{per / 512:.2f}",
                        f"{per / ns(fill):.1f}" if fill else "—"])
    if fill:
        lines.append(f"| `limit/split_fill_2m` | 512 plain stores into a "
                     f"fresh 4 KiB table | {ns(fill):,.1f} | "
                     f"{ns(fill) / 512:.3f} | 1.0 |")
    return lines + [""]


DIRECT_SPLIT = (
    ("huge/split_1g_to_4k",
     "tdp_split_huge_range() of one 1 GiB leaf into 262,144 4 KiB leaves",
     "eager splitting, about 61 ns"),
    ("huge/recover_1g_from_4k",
     "tdp_recover_huge_pages() of 262,144 4 KiB leaves into one 1 GiB leaf",
     "disabling dirty logging, about 126 ns"),
)


def direct_split_section(rate, failed):
    """Splitting and recovery of the direct tree per 4 KiB SPTE, next to
    upstream's figures and limit/split_fill_2m's per-store cost."""
    if not any(n in rate or n in failed for n, _, _ in DIRECT_SPLIT):
        return []
    fill = rate.get("limit/split_fill_2m")
    lines = ["## Splitting and recovery (direct tree)", "",
             "`bench/zaps.c`: each iteration starts from a tree with no "
             "table, the timed call's return value is checked, and so is "
             "its effect (the live 4 KiB and 1 GiB leaf counts). Per SPTE "
             "is the time of the whole operation over its 262,144 4 KiB "
             "SPTEs. The limit is `limit/split_fill_2m` per store (512 "
             "plain stores into a fresh table), from the same run.", "",
             "| benchmark | what | ms per GiB | ns per 4 KiB SPTE | "
             "x limit | upstream KVM, per SPTE |", "|---|---|---|---|---|---|"]
    lines += measured_rows(
        DIRECT_SPLIT, rate, failed, 4,
        lambda per, entry: [f"{per * 262144 / 1e6:.2f}", f"{per:.2f}",
                            f"{per / (ns(fill) / 512):.1f}" if fill else "—",
                            entry[2]])
    return lines + [""]


def goal_text(op, goal, unit):
    return "—" if goal is None else f"{op} {goal:g}{unit}"


def plot(docs, rate):
    perf = os.path.join(docs, "perf")
    os.makedirs(perf, exist_ok=True)
    bars = [("flat array", "limit/flat_array"),
            ("radix plain", "limit/radix_plain"),
            ("direct 4K", "demand_paging/direct_4k"),
            ("mirror 4K no-op", "demand_paging/mirror_4k_noop"),
            ("global lock 4K", "baseline/global_lock/real_time/threads:1"),
            ("direct 2M", "demand_paging/direct_2m")]
    with open(os.path.join(perf, "fault_ns.dat"), "w") as f:
        for label, name in bars:
            if name in rate:
                f.write(f'"{label}" {ns(rate[name]):.3f}\n')
    with open(os.path.join(perf, "threads.dat"), "w") as f:
        for t in (1, 2):
            d = rate.get(f"demand_paging/disjoint_4k/real_time/threads:{t}", 0)
            g = rate.get(f"baseline/global_lock/real_time/threads:{t}", 0)
            f.write(f"{t} {d / 1e6:.3f} {g / 1e6:.3f}\n")
    script = f"""
set terminal pngcairo size 800,450
set output '{perf}/fault_ns.png'
set title 'ns per fault (one 4 KiB page per item; 2M: one 2 MiB leaf)'
set style fill solid 0.6
set boxwidth 0.6
set ylabel 'ns'
set grid ytics
set yrange [0:*]
set xtics rotate by -20
plot '{perf}/fault_ns.dat' using 0:2:xtic(1) with boxes notitle, \\
     '' using 0:2:(sprintf('%.1f', $2)) with labels offset 0,1 notitle
set output '{perf}/threads.png'
set title 'populate throughput against threads (disjoint ranges)'
set ylabel 'million faults per second'
set xlabel 'threads'
set xtics 1
set xtics norotate
set key top left
plot '{perf}/threads.dat' using 1:2 with linespoints lw 2 title 'libtdp', \\
     '' using 1:3 with linespoints lw 2 title 'baseline/global\\_lock'
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def machine(context):
    cpu = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (f"{context.get('num_cpus')} CPUs ({cpu}), "
            f"{platform.system()} {platform.release()}, "
            f"Google Benchmark library build: {context.get('library_build_type')}, "
            f"run {context.get('date')}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: bench_report.py RUN.json DOCS_DIR [RWLOCK_RUN.json]")
    run_path, docs = sys.argv[1], sys.argv[2]
    context, rate, extra, mixed, failed = load(run_path)
    rw_mixed = rw_failed = None
    if len(sys.argv) == 4:
        _, rw_rate, _, rw_mixed, rw_failed = load(sys.argv[3])
        rate.update({n + RWLOCK_SUFFIX: r for n, r in rw_rate.items()})
    plot(docs, rate)
    rows = targets(rate, extra)
    lines = ["# Performance", "",
             "Generated by `bash scripts/bench.sh` from one run of `tdpbench`; "
             "every ratio compares benchmarks measured in that same run "
             "(medians of the repetitions). Do not edit by hand.", "",
             f"Machine: {machine(context)}.", "",
             "## Targets", "",
             "| target | measured | goal | met |", "|---|---|---|---|"]
    for label, value, op, goal in rows:
        ok = value <= goal if op == "<=" else value >= goal
        lines.append(f"| {label} | {value:.2f} | {op} {goal} | "
                     f"{'yes' if ok else '**no**'} |")
    lines += [""] + mixed_section(mixed, failed, rw_mixed, rw_failed)
    lines += private_huge_section(rate, failed)
    lines += direct_split_section(rate, failed)
    lines += ["## All results", "",
              "| benchmark | items per second | ns per item |", "|---|---|---|"]
    for name in sorted(rate):
        # A run with no items (an empty trace) has a rate of 0.
        per_item = f"{ns(rate[name]):.2f}" if rate[name] else "—"
        lines.append(f"| `{name}` | {rate[name]:,.0f} | {per_item} |")
    if failed or rw_failed:
        lines += ["", "Runs that failed a check (no time reported):", ""]
        for name, msg in sorted(failed.items()):
            lines.append(f"- `{name}`: {msg}")
        for name, msg in sorted((rw_failed or {}).items()):
            lines.append(f"- `{name}{RWLOCK_SUFFIX}`: {msg}")
    lines += ["", "## Plots", "", "![ns per fault](perf/fault_ns.png)", "",
              "![throughput against threads](perf/threads.png)", ""]
    notes = os.path.join(docs, "perf", "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += [f.read().rstrip(), ""]
    with open(os.path.join(docs, "PERFORMANCE.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
