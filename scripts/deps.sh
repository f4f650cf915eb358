#!/usr/bin/env bash
# Install the Debian 12 packages libtdp builds and tests with, only those
# that are missing.  Prints nothing when everything is already installed.
#
# Usage: bash scripts/deps.sh          (as root, or as a user with sudo)
#        bash scripts/deps.sh PKG...   those packages instead (the kernel
#                                      port's boot test names its own)
set -euo pipefail

# libc6-dev is named because recommends are not installed and gcc only
# recommends it; g++ builds the Google Benchmark shim; zstd reads traces;
# json-c writes the simulator's --json report; gnuplot renders the
# benchmark plots; spin checks the models of model/; abigail-tools
# compares the library's ABI with abi/; scdoc writes the manual pages;
# debhelper, dh-dkms, dkms, dpkg-dev, fakeroot, lintian and man-db build,
# check and try the Debian packages (scripts/package.sh); gcovr reports
# the test suite's coverage (scripts/coverage.sh).
packages=(
	meson ninja-build pkg-config gcc g++ libc6-dev clang libclang-rt-14-dev
	liburcu-dev libck-dev libcmocka-dev libbenchmark-dev libjson-c-dev libzstd-dev
	gnuplot-nox spin abigail-tools scdoc
	debhelper dh-dkms dkms dpkg-dev fakeroot lintian man-db gcovr
)
[ $# -gt 0 ] && packages=("$@")

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: apt-get not found; install these Debian 12 packages:" \
	     "${missing[*]}" >&2
	exit 1
fi
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q)
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "deps: run as root to install: ${missing[*]}" >&2
		exit 1
	fi
	apt=(sudo "${apt[@]}")
fi

echo "deps: installing ${missing[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { timeout 1200 "${apt[@]}" update &&
       timeout 1200 "${apt[@]}" install -y --no-install-recommends \
		"${missing[@]}"; } \
	>"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get failed" >&2
	exit 1
fi
