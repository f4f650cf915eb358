#!/usr/bin/python3
"""Turn a tdpbench JSON run into docs/PERFORMANCE.md and gnuplot PNGs.

Every ratio compares benchmarks of the same run.  Medians of the
repetitions are used.  Usage: bench_report.py RUN.json DOCS_DIR
"""
import json
import os
import platform
import subprocess
import sys


def load(path):
    with open(path) as f:
        run = json.load(f)
    rate = {}
    extra = {}
    for b in run["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("aggregate_name", "median") != "median":
            continue
        if "items_per_second" in b:
            rate[name] = b["items_per_second"]
        # Threaded runs: every thread's items over the wall time.
        if "wall_items_per_second" in b:
            rate[name] = b["wall_items_per_second"]
        for key in ("pt_bytes_per_4k_page",):
            if key in b:
                extra.setdefault(name, {})[key] = b[key]
    return run["context"], rate, extra


def ns(rate):
    return 1e9 / rate


def find(rate, name):
    if name not in rate:
        sys.exit(f"bench_report: {name} missing from the run")
    return rate[name]


def targets(rate, extra):
    direct = find(rate, "demand_paging/direct_4k")
    radix = find(rate, "limit/radix_plain")
    mirror = find(rate, "demand_paging/mirror_4k_noop")
    one = find(rate, "demand_paging/disjoint_4k/real_time/threads:1")
    two = find(rate, "demand_paging/disjoint_4k/real_time/threads:2")
    locked2 = find(rate, "baseline/global_lock/real_time/threads:2")
    zap = find(rate, "zap/1g_4k")
    clear = find(rate, "limit/clear_loop")
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
             ns(t1) / ns(tr), "<=", 2.0),
            ("trace replay: mirror, no-op backend, vs direct (time ratio)",
             ns(tm) / ns(t1), "<=", 1.3),
            ("trace replay: 2 threads vs 1 thread (throughput ratio)",
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
        ("2 threads disjoint vs 1 thread (throughput ratio)",
         two / one, ">=", 1.9),
        ("2 threads disjoint vs baseline/global_lock at 2 threads (throughput ratio)",
         two / locked2, ">=", 1.8),
        ("zap of 1 GiB of 4 KiB mappings vs limit/clear_loop (time ratio)",
         ns(zap) / ns(clear), "<=", 3.0),
        ("page-table bytes per mapped 4 KiB page (direct populate)",
         pt, "<=", 8.1),
    ] + trace_rows


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
    run_path, docs = sys.argv[1], sys.argv[2]
    context, rate, extra = load(run_path)
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
    lines += ["", "## All results", "",
              "| benchmark | items per second | ns per item |", "|---|---|---|"]
    for name in sorted(rate):
        lines.append(f"| `{name}` | {rate[name]:,.0f} | {ns(rate[name]):.2f} |")
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
