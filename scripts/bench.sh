#!/usr/bin/env bash
# Run the benchmark suite and regenerate docs/PERFORMANCE.md with its plots.
#
# Usage: bash scripts/bench.sh [extra tdpbench flags]
# Writes bench-results/tdpbench.json (raw Google Benchmark JSON),
# docs/perf/*.png and docs/PERFORMANCE.md.  Run it on a quiet machine:
# every ratio compares benchmarks of the same run.
#
# When the tree has the meson option mmu_lock with the choice rwlock
# (the engine's mmu_lock as a plain pthread_rwlock_t), the mixed-load
# benchmarks (bench/mixed.c, without their global-lock baselines) also
# run on an engine built that way, in build-bench-rwlock; their rows
# join the report's "Mixed load" section marked "[rwlock build]".  The
# extra flags apply to both runs, but the second one always runs exactly
# those benchmarks.  TDP_BENCH_RWLOCK=0 skips it.
#
# A run that fails one of its checks reports an error instead of a time;
# the report still gets written (failed rows say so), and the script
# exits non-zero at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
if [ ! -d build ]; then
	meson setup build >/dev/null
fi
ninja -C build bench/tdpbench >/dev/null

# run_tdpbench BUILD_DIR OUT_JSON [flags...]: exit status of tdpbench.
run_tdpbench() {
	local dir=$1 out=$2
	shift 2
	"./$dir/bench/tdpbench" \
		--benchmark_repetitions="${TDP_BENCH_REPETITIONS:-3}" \
		--benchmark_min_time="${TDP_BENCH_MIN_TIME:-0.5}" \
		--benchmark_report_aggregates_only=true \
		--benchmark_out="$out" \
		--benchmark_out_format=json "$@"
}

# True when the configured tree offers -Dmmu_lock=rwlock.
has_rwlock_option() {
	meson introspect --buildoptions build | /usr/bin/python3 -c '
import json, sys
sys.exit(not any(o["name"] == "mmu_lock" and "rwlock" in o.get("choices", [])
                 for o in json.load(sys.stdin)))'
}

mkdir -p bench-results docs/perf
status=0
run_tdpbench build bench-results/tdpbench.json "$@" || status=$?

rwlock_json=()
if [ "${TDP_BENCH_RWLOCK:-1}" != 0 ] && has_rwlock_option; then
	echo "bench: mixed-load benchmarks on the -Dmmu_lock=rwlock build"
	if { [ -d build-bench-rwlock ] &&
	     meson configure build-bench-rwlock -Dmmu_lock=rwlock >/dev/null; } ||
	   { [ ! -d build-bench-rwlock ] &&
	     meson setup build-bench-rwlock -Dmmu_lock=rwlock >/dev/null; }; then
		if ninja -C build-bench-rwlock bench/tdpbench >/dev/null; then
			run_tdpbench build-bench-rwlock bench-results/tdpbench-rwlock.json \
				"$@" --benchmark_filter='^mixed/(zap|invalidate|cross)' ||
				status=$?
			rwlock_json=(bench-results/tdpbench-rwlock.json)
		else
			echo "bench: build-bench-rwlock does not build; no rwlock rows" >&2
			status=1
		fi
	else
		echo "bench: cannot configure build-bench-rwlock; no rwlock rows" >&2
		status=1
	fi
elif [ "${TDP_BENCH_RWLOCK:-1}" != 0 ]; then
	echo "bench: no -Dmmu_lock=rwlock option in this tree; no rwlock rows"
fi

# The Debian interpreter: the report needs only the standard library.
/usr/bin/python3 scripts/bench_report.py bench-results/tdpbench.json docs \
	"${rwlock_json[@]}"
echo "bench: wrote docs/PERFORMANCE.md and docs/perf/*.png"
if [ "$status" -ne 0 ]; then
	echo "bench: some runs failed (see above and the report)" >&2
fi
exit "$status"
