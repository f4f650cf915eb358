#!/bin/sh
# The CI fuzz run (test 'fuzz-run'): explore fast, then check every input
# kept under the sanitizers.
#
#   fuzz_run.sh FAST CHECKED OUT SEEDS SECONDS
#
# FAST is the libFuzzer harness built without sanitizers (about 4.5x the
# inputs per second of the AddressSanitizer build), run with one worker
# per CPU (-jobs) for SECONDS from the SEEDS corpus, keeping the inputs
# that reach new coverage in OUT.  CHECKED, the libFuzzer harness built
# with AddressSanitizer and UndefinedBehaviorSanitizer, then runs every
# input in OUT once (-runs=0), so each input that reached new engine code
# is also checked for memory errors and undefined behaviour.  A finding in
# either step fails the test; libFuzzer writes the crashing input next to
# OUT.
set -eu
fast=$1 checked=$2 out=$3 seeds=$4 secs=$5
# Absolute: the fuzzing runs in OUT's parent directory.
case $fast in /*) ;; *) fast=$PWD/$fast ;; esac
case $seeds in /*) ;; *) seeds=$PWD/$seeds ;; esac
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(dirname "$out")
start=$(date +%s.%N)
# One independent fuzzing process per CPU (-jobs), sharing the corpus
# directory; libFuzzer writes job N's output to fuzz-N.log in the current
# directory and exits non-zero if any job found something.  (Fork mode,
# -fork, ran about a quarter fewer inputs here: its jobs restart often.)
# libFuzzer's default exit code for a finding is 77, which meson reads as
# "skipped": make a finding fail the test.
status=0
(cd "$work" && rm -f fuzz-*.log &&
 "$fast" "$out" "$seeds" -jobs="$jobs" -workers="$jobs" \
	-max_total_time="$secs" -timeout=60 -error_exitcode=1 \
	-timeout_exitcode=1 -max_len=2048 -print_final_stats=1 \
	-artifact_prefix="$work/") >/dev/null 2>&1 || status=$?
end=$(date +%s.%N)
for f in "$work"/fuzz-*.log; do
	echo "== $f"
	cat "$f"
done
[ "$status" -eq 0 ] || exit "$status"
# Every job's own count, over the wall time of the whole run.
runs=$(cat "$work"/fuzz-*.log |
       sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\)/\1/p' |
       awk '{ n += $1 } END { print n + 0 }')
awk -v n="$runs" -v s="$start" -v e="$end" -v j="$jobs" 'BEGIN {
	printf "fuzz_run.sh: %d inputs in %.1f s with %d workers: " \
	       "%.0f inputs per second\n", n, e - s, j, n / (e - s) }'
echo "fuzz_run.sh: running the $(ls "$out" | wc -l) inputs kept under ASan and UBSan"
"$checked" "$out" -runs=0 -error_exitcode=1 -max_len=2048 \
	-artifact_prefix="$work/"
