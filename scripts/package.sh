#!/usr/bin/env bash
# Build the Debian packages from debian/ and check them the way a user
# would use them:
#
#   build     dpkg-buildpackage -us -uc -b on a copy of the tracked files:
#             libtdp0, libtdp-dev, tdpsim, libtdp-dkms
#   lintian   no error and no warning (--fail-on error,warning)
#   install   the four packages (apt, so dependencies come from Debian;
#             DKMS builds libtdp.ko for every installed kernel that has
#             headers)
#   embed     examples/embed.c, copied outside the tree, compiled with
#             pkg-config --cflags --libs libtdp against the installed
#             package, and run
#   man       man tdpsim and man 7 libtdp show the installed pages
#   purge     the packages removed again, the machine as it was
#
# The packages and logs stay in the directory printed at the end.  The
# last line is "N passed, M failed" (one per step).  Needs root (it
# installs packages) and a git checkout.
#
# Usage: bash scripts/package.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

out=$(mktemp -d "${TMPDIR:-/tmp}/libtdp-deb.XXXXXX")
version=$(sed -n '1s/^libtdp (\([^)]*\)).*/\1/p' debian/changelog)
src=$out/libtdp-$version
packages=(libtdp0 libtdp-dev tdpsim libtdp-dkms)
passed=0
failed=0

step() {
	local name=$1 log=$out/$1.log
	shift
	if "$@" >"$log" 2>&1; then
		printf 'ok   %s\n' "$name"
		passed=$((passed + 1))
		return 0
	fi
	printf 'FAIL %s (log: %s)\n' "$name" "$log"
	tail -n 30 "$log" | sed 's/^/     /'
	failed=$((failed + 1))
	return 1
}

copy_tree() {
	mkdir -p "$src" &&
	git ls-files -z | xargs -0 cp --parents -t "$src"
}

build() {
	(cd "$src" && dpkg-buildpackage -us -uc -b)
}

run_lintian() {
	# lintian warns that it runs as root; that is not a finding.
	lintian --fail-on error,warning --info \
		"$out/libtdp_${version}_amd64.changes"
}

install_packages() {
	local debs=()
	for p in "${packages[@]}"; do
		debs+=("$(ls "$out"/"${p}"_"${version}"_*.deb)")
	done
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends "${debs[@]}" &&
	dpkg-query -W "${packages[@]}"
}

embed() {
	local dir=$out/embed
	mkdir -p "$dir" &&
	cp examples/embed.c "$dir/" &&
	(cd "$dir" &&
	 # shellcheck disable=SC2046
	 cc -Wall -Werror -o embed embed.c $(pkg-config --cflags --libs libtdp) &&
	 ldd ./embed | grep 'libtdp.so.0 => /' &&
	 ./embed)
}

manual() {
	man -P cat tdpsim | grep -q 'run libtdp as the EPT engine' &&
	man -P cat 7 libtdp | grep -q 'LOCK RULES' &&
	man -w tdpsim
}

purge() {
	DEBIAN_FRONTEND=noninteractive apt-get purge -y "${packages[@]}"
}

if [ "$(id -u)" -ne 0 ]; then
	echo "package: run as root (it installs the packages it built)" >&2
	exit 1
fi

step copy copy_tree &&
step build build &&
step lintian run_lintian
if step install install_packages; then
	step embed embed
	step man manual
	step purge purge
fi
echo "packages and logs: $out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
