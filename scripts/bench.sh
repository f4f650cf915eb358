#!/usr/bin/env bash
# Run the benchmark suite and regenerate docs/PERFORMANCE.md with its plots.
#
# Usage: bash scripts/bench.sh [extra tdpbench flags]
# Writes bench-results/tdpbench.json (raw Google Benchmark JSON),
# docs/perf/*.png and docs/PERFORMANCE.md.  Run it on a quiet machine:
# every ratio compares benchmarks of the same run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
if [ ! -d build ]; then
	meson setup build >/dev/null
fi
ninja -C build bench/tdpbench >/dev/null

mkdir -p bench-results docs/perf
./build/bench/tdpbench \
	--benchmark_repetitions="${TDP_BENCH_REPETITIONS:-3}" \
	--benchmark_min_time="${TDP_BENCH_MIN_TIME:-0.5}" \
	--benchmark_report_aggregates_only=true \
	--benchmark_out=bench-results/tdpbench.json \
	--benchmark_out_format=json "$@"

# The Debian interpreter: the report needs only the standard library.
/usr/bin/python3 scripts/bench_report.py bench-results/tdpbench.json docs
echo "bench: wrote docs/PERFORMANCE.md and docs/perf/*.png"
