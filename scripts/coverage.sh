#!/usr/bin/env bash
# Line and branch coverage of the engine (libtdp/) and of the simulator
# (sim/) by the whole test suite: a gcc build with -Db_coverage=true in
# build-coverage/, `meson test` there, then gcovr (Debian package gcovr).
# Prints gcovr's summary for each directory; the figure in the README's
# Testing section comes from this script.
#
# Usage: bash scripts/coverage.sh      (about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v gcovr >/dev/null ||
	{ echo "coverage: gcovr not found (Debian package gcovr)" >&2; exit 1; }
dir=build-coverage
if [ ! -f "$dir/meson-private/coredata.dat" ]; then
	CC=gcc CXX=g++ meson setup "$dir" -Db_coverage=true \
		-Dbenchmarks=disabled >/dev/null
fi
ninja -C "$dir" >/dev/null
find "$dir" -name '*.gcda' -delete
# The suite's own pass/fail is scripts/test.sh's business; a coverage
# figure is still printed if a test fails, with a warning.
TDP_TEST_QUICK=1 meson test -C "$dir" --no-rebuild >/dev/null ||
	echo "coverage: some tests failed (see $dir/meson-logs/testlog.txt)" >&2
for part in libtdp sim; do
	echo "== $part/"
	gcovr -r . --object-directory "$dir" --filter "$part/" \
		--exclude-unreachable-branches --print-summary -o /dev/null
done
