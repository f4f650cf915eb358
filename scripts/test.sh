#!/usr/bin/env bash
# Build libtdp three times and run the whole test suite (`meson test`) in
# each build, then the kernel port's boot test:
#
#   build       gcc, debugoptimized
#   build-asan  gcc, AddressSanitizer + UndefinedBehaviorSanitizer
#               (meson test --setup asan)
#   build-tsan  clang, ThreadSanitizer (meson test --setup tsan, which
#               loads tests/tsan.supp and disables ASLR with setarch -R)
#   build-fuzz  clang, AddressSanitizer + UndefinedBehaviorSanitizer +
#               libFuzzer; only the fuzz suite (corpus replay, 20 s run)
#   kernel      kernel/boot-test.sh --ci: the modules built against
#               Debian's kernel headers, the self-test booted under qemu
#   model       model/run.sh: the spin models verified, their negative
#               variants rejected
#   matrix      scripts/build-matrix.sh: every meson buildtype with gcc
#               and with clang compiles, warnings as errors (compile only)
#   package     scripts/package.sh: the Debian packages built, checked by
#               lintian, installed and used, then purged
#   mutants     scripts/mutate.sh --subset quick: a few engine mutants,
#               each of which the simulator and the tests must still kill
#
# The builds above are configured with -Dwerror=true; the project's
# meson.build does not force it on anyone else.
#
# A failing build or run does not stop the others.  The last line printed
# is the total over all runs:
#
#   N passed, M failed[, K skipped]
#
# where failed counts failed, unexpectedly passing and timed-out tests, and
# a build that failed (or a run that overran its time limit) counts as one
# failure.  The exit status is non-zero when anything failed.
#
# Environment: TDP_TEST_QUICK=1 is passed through to every test; the
# stress programs then run shorter.  Each stage is stopped after a fixed
# limit (below), so the whole script ends within about 85 minutes on 2
# cores even if something hangs; a normal run takes 14 to 17 minutes (a
# first run also downloads the kernel packages).
#
# Usage: bash scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

bash scripts/deps.sh || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

total_passed=0
total_failed=0
total_skipped=0
report=()

# Run a command with its output kept in $tmp/step.log; print it on failure.
quiet() {
	"$@" >"$tmp/step.log" 2>&1 && return 0
	cat "$tmp/step.log"
	return 1
}

# The last value meson's summary printed for @label in @file (0 if none).
summary_count() {
	local n
	n=$(sed 's/\x1b\[[0-9;]*m//g' "$2" |
	    sed -n "s/^[[:space:]]*$1:[[:space:]]*\([0-9][0-9]*\).*/\1/p" |
	    tail -n 1)
	echo "${n:-0}"
}

# run_build DIR CC CXX SETUP LIMIT [meson options...]
#   Configure (or reconfigure) DIR, build it, and run `meson test` with
#   test setup SETUP ("" for none), stopped after LIMIT seconds.
run_build() {
	local dir=$1 cc=$2 cxx=$3 setup=$4 limit=$5
	shift 5
	local start=$SECONDS t_build t_test rc log="$tmp/$dir.log"
	local ok xfail fail xpass skip tout passed failed

	echo "== $dir: configure and build"
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		quiet meson setup --reconfigure "$dir" "$@"
	else
		quiet env CC="$cc" CXX="$cxx" meson setup "$dir" "$@"
	fi && quiet ninja -C "$dir" ${targets:-}
	rc=$?
	t_build=$((SECONDS - start))
	if [ "$rc" -ne 0 ]; then
		echo "== $dir: build FAILED"
		total_failed=$((total_failed + 1))
		report+=("$(printf '%-11s build FAILED after %ds' "$dir:" "$t_build")")
		return
	fi

	echo "== $dir: meson test${setup:+ --setup $setup}"
	start=$SECONDS
	timeout -k 30 "$limit" meson test -C "$dir" --no-rebuild \
		--print-errorlogs ${setup:+--setup "$setup"} \
		${suite:+--suite "$suite"} 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	t_test=$((SECONDS - start))

	ok=$(summary_count 'Ok' "$log")
	xfail=$(summary_count 'Expected Fail' "$log")
	fail=$(summary_count 'Fail' "$log")
	xpass=$(summary_count 'Unexpected Pass' "$log")
	skip=$(summary_count 'Skipped' "$log")
	tout=$(summary_count 'Timeout' "$log")
	passed=$((ok + xfail))
	failed=$((fail + xpass + tout))
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "== $dir: meson test stopped after ${limit}s"
		[ "$failed" -eq 0 ] && failed=1
	elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		# meson test failed without a test result to show for it.
		echo "== $dir: meson test exited with status $rc"
		failed=1
	fi

	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	total_skipped=$((total_skipped + skip))
	report+=("$(printf '%-11s build %3ds, tests %3ds: %d passed, %d failed, %d skipped' \
		"$dir:" "$t_build" "$t_test" "$passed" "$failed" "$skip")")
}

# run_stage NAME LIMIT PREFIX COMMAND...: a script whose last result line
# is "PREFIXN passed, M failed" (PREFIX may be empty); its counts go into
# the total, and an exit status without a failure to show counts as one.
# Stopped after LIMIT seconds.
run_stage() {
	local name=$1 limit=$2 prefix=$3 start=$SECONDS log="$tmp/$1.log"
	local rc passed failed
	shift 3

	timeout -k 30 "$limit" "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	passed=$(sed -n "s/^$prefix\([0-9]*\) passed, [0-9]* failed.*/\1/p" "$log" | tail -n 1)
	failed=$(sed -n "s/^$prefix[0-9]* passed, \([0-9]*\) failed.*/\1/p" "$log" | tail -n 1)
	passed=${passed:-0}
	failed=${failed:-0}
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "== $name: $* exited with status $rc"
		failed=1
	fi
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	report+=("$(printf '%-11s %3ds: %d passed, %d failed' \
		"$name:" "$((SECONDS - start))" "$passed" "$failed")")
}

begin=$SECONDS
# The spin models of model/: every model verifies and every negative
# variant is rejected (about 3 minutes on 2 cores).
echo "== model: spin models of the concurrency protocols"
run_stage model 900 "" bash model/run.sh
# Every buildtype with gcc and clang compiles without a warning (about
# 2 minutes).
echo "== matrix: every buildtype, gcc and clang, warnings as errors"
run_stage matrix 600 "" bash scripts/build-matrix.sh
# The Debian packages: built, lintian-clean, installed, the example built
# against them with pkg-config, the manual pages read, purged (under a
# minute).
echo "== package: the Debian packages"
run_stage package 600 "" bash scripts/package.sh
run_build build gcc g++ "" 180 -Dwerror=true
run_build build-asan gcc g++ asan 240 -Dwerror=true \
	-Db_sanitize=address,undefined -Db_lundef=false
run_build build-tsan clang clang++ tsan 360 -Dwerror=true \
	-Db_sanitize=thread -Db_lundef=false
# clang ASan+UBSan with libFuzzer: the seed-corpus replay and a 20 s fuzz
# run of the API harness against its reference model.
suite=fuzz targets="tests/fuzz/fuzz_ops tests/fuzz/fuzz_ops_fast tests/fuzz/fuzz_replay" \
	run_build build-fuzz clang clang++ asan 180 -Dwerror=true \
	-Db_sanitize=address,undefined -Db_lundef=false
# The mutation harness's quick subset: eight engine mutants built in a
# scratch tree, each run through the simulator and the fast test suites;
# a check that stopped killing its mutant fails the stage (about 2
# minutes; the whole set: bash scripts/mutate.sh --all).
echo "== mutants: the quick subset of scripts/mutants/"
run_stage mutants 900 "mutants: " bash scripts/mutate.sh --subset quick
# The kernel port: build the modules against Debian's kernel headers (any
# warning fails) and boot the self-test under qemu.  kernel/boot-test.sh
# installs what it needs; with --ci it only builds where qemu cannot start.
echo "== kernel: build the modules and boot the self-test"
run_stage kernel 900 "boot-test: " bash kernel/boot-test.sh --ci

echo
printf '%s\n' "${report[@]}"
echo "total time $((SECONDS - begin))s"
line="$total_passed passed, $total_failed failed"
[ "$total_skipped" -gt 0 ] && line+=", $total_skipped skipped"
echo "$line"
[ "$total_failed" -eq 0 ]
