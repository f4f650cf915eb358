#!/usr/bin/env bash
# Compile libtdp, the simulator, the examples, the tests, the stress
# programs and the benchmarks with every meson buildtype (plain, debug,
# debugoptimized, release, minsize, and debugoptimized with
# -Dmmu_lock=rwlock) and both compilers (gcc, clang), with
# warnings as errors.  Compile only: scripts/test.sh runs the tests in
# three of these configurations.
#
# Each combination is configured in build-matrix/<cc>-<buildtype> and
# removed once it compiled.  A failing combination prints its log.  The
# last line is "N passed, M failed" (one per combination).
#
# Usage: bash scripts/build-matrix.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
mkdir -p build-matrix
for cc in gcc clang; do
	case $cc in
	gcc) cxx=g++ ;;
	clang) cxx=clang++ ;;
	esac
	# debugoptimized twice: the second with -Dmmu_lock=rwlock, the
	# benchmarks' comparison build (its code paths differ).
	for bt in plain debug debugoptimized release minsize rwlock; do
		dir=build-matrix/$cc-$bt
		log=build-matrix/$cc-$bt.log
		opts=(--buildtype=$bt)
		[ "$bt" = rwlock ] &&
			opts=(--buildtype=debugoptimized -Dmmu_lock=rwlock)
		start=$SECONDS
		rm -rf "$dir"
		if env CC=$cc CXX=$cxx meson setup "$dir" "${opts[@]}" \
			-Dwerror=true >"$log" 2>&1 &&
		   ninja -C "$dir" >>"$log" 2>&1; then
			printf 'ok   %-6s %-15s %3ds\n' "$cc" "$bt" $((SECONDS - start))
			passed=$((passed + 1))
			rm -rf "$dir" "$log"
		else
			printf 'FAIL %-6s %-15s (log: %s)\n' "$cc" "$bt" "$log"
			grep -E 'error|warning' "$log" | head -n 20
			failed=$((failed + 1))
		fi
	done
done
rmdir build-matrix 2>/dev/null
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
