#!/usr/bin/env bash
# Check the shared library's ABI against the baseline kept in abi/.
#
#   1. the exported names are exactly the TDP_API declarations of
#      include/tdp/ and the names of libtdp/libtdp.map, every one with a
#      LIBTDP_ version;
#   2. the soname is the baseline's; a different one means the baseline
#      was not regenerated with the bump;
#   3. abidiff finds no removed and no changed function or variable
#      against abi/libtdp.abi (a struct that grew changes every function
#      that takes it).  Added functions pass, with a reminder to
#      regenerate the baseline.
#
# Usage: scripts/abi-check.sh LIBTDP_SO [SOURCE_DIR]   (run by meson test)
#        scripts/abi-check.sh --update LIBTDP_SO        (write the baseline)
#
# An incompatible change (a removed or changed function or type) needs a
# new soname (soversion in libtdp/meson.build) and a new baseline, in the
# same commit: scripts/abi-check.sh --update build/libtdp/libtdp.so
set -uo pipefail

update=false
if [ "${1:-}" = --update ]; then
	update=true
	shift
fi
lib=${1:?usage: abi-check.sh [--update] LIBTDP_SO [SOURCE_DIR]}
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
baseline=$src/abi/libtdp.abi
headers=$src/include/tdp
fail=0

for tool in nm objdump abidw abidiff; do
	command -v "$tool" >/dev/null ||
		{ echo "abi-check: $tool not found (binutils, abigail-tools)"; exit 1; }
done

soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')

if $update; then
	mkdir -p "$src/abi"
	abidw --headers-dir "$headers" --no-corpus-path \
	      --out-file "$baseline" "$lib" || exit 1
	echo "abi-check: wrote $baseline ($soname)"
	exit 0
fi

names() { sort -u | grep -v '^$'; }
# (without the @@LIBTDP_0 suffix, and without the version nodes)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' |
	   grep -v '^LIBTDP_' | names)
# The name each TDP_API declaration declares (the identifier before its
# parameter list, or before the ';' of a variable).
declared=$(grep -h -E '(^|[[:space:]])TDP_API[[:space:]]' "$headers"/*.h |
	   grep -v '#[[:space:]]*define' |
	   grep -o 'tdp_[a-z0-9_]*[[:space:]]*[(;[]' | tr -d '(;[ \t' | names)
mapped=$(sed -n 's/^[[:space:]]*\(tdp_[a-z0-9_]*\);.*/\1/p' \
	 "$src/libtdp/libtdp.map" | names)

if [ "$exported" != "$declared" ]; then
	echo "abi-check: exported names differ from the TDP_API declarations" \
	     "(< exported, > declared):"
	diff <(echo "$exported") <(echo "$declared") | grep '^[<>]'
	fail=1
fi
if [ "$declared" != "$mapped" ]; then
	echo "abi-check: libtdp/libtdp.map differs from the TDP_API" \
	     "declarations (< map, > declared):"
	diff <(echo "$mapped") <(echo "$declared") | grep '^[<>]'
	fail=1
fi
unversioned=$(objdump -T "$lib" | awk '$2 != "*UND*" && / tdp_/ && !/LIBTDP_/ {print $NF}')
if [ -n "$unversioned" ]; then
	echo "abi-check: exported without a LIBTDP_ version: $unversioned"
	fail=1
fi

if [ ! -f "$baseline" ]; then
	echo "abi-check: no baseline $baseline (scripts/abi-check.sh --update)"
	exit 1
fi
base_soname=$(grep -o "soname='[^']*'" "$baseline" | head -n 1 | cut -d"'" -f2)
if [ "$soname" != "$base_soname" ]; then
	echo "abi-check: soname $soname, baseline $base_soname: regenerate" \
	     "the baseline in the commit that bumps the soname"
	fail=1
fi

abidiff --headers-dir2 "$headers" "$baseline" "$lib" \
	>abi-check.diff 2>&1
rc=$?
# abidiff's status is a bit field: 1 error, 2 usage, 4 change, 8
# incompatible change.
if [ $((rc & 3)) -ne 0 ]; then
	cat abi-check.diff
	echo "abi-check: abidiff failed (status $rc)"
	fail=1
elif [ $((rc & 8)) -ne 0 ] ||
     grep -Eq 'changes summary: ([1-9][0-9]* Removed|[0-9]+ Removed, [1-9][0-9]* Changed)' \
	abi-check.diff; then
	# abidiff's "incompatible" bit covers removed symbols only; a
	# changed function (a type it takes grew, a member moved) breaks
	# binaries built against the baseline just as surely.
	cat abi-check.diff
	echo "abi-check: INCOMPATIBLE ABI change against the baseline with" \
	     "soname $soname (a symbol removed, or a function or variable" \
	     "changed): bump the soname and regenerate the baseline"
	fail=1
elif [ $((rc & 4)) -ne 0 ]; then
	cat abi-check.diff
	echo "abi-check: compatible ABI change; regenerate the baseline" \
	     "(scripts/abi-check.sh --update) when the version is released"
fi
rm -f abi-check.diff

if [ "$fail" -eq 0 ]; then
	echo "abi-check: $(echo "$exported" | wc -l) symbols, soname $soname," \
	     "no incompatible change against abi/libtdp.abi"
fi
exit "$fail"
