#!/usr/bin/env bash
# Build libtdp in build/ and run the project's main job: the simulator
# build/sim/tdpsim in its default scenario, with this script's arguments.
# Exits with the simulator's status (0 only if it found no violation).
#
# Usage: bash scripts/run.sh [simulator arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

# Build output is shown only when a step fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "run.sh: failed: $*" >&2
		exit 1
	fi
}

if [ -f build/meson-private/coredata.dat ]; then
	quiet meson setup --reconfigure build
else
	quiet env CC=gcc CXX=g++ meson setup build
fi
quiet ninja -C build

rm -f "$log"
trap - EXIT
exec build/sim/tdpsim "$@"
