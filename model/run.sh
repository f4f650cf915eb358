#!/usr/bin/env bash
# Verify every spin model of model/ and check that every negative variant
# is rejected.  Each run generates a verifier (spin -a), compiles it and
# runs it exhaustively in its own scratch directory.
#
#   safety   gcc -DSAFETY; pan: assertions and invalid end states
#   live     gcc -DNP; pan -l -f: non-progress cycles under weak fairness
#   ltl:X    gcc; pan -a -f -N X: the LTL claim X under weak fairness
#
# A run expected to pass must report "errors: 0" from a complete search
# (no "max search depth too small", no memory bound reached).  A run
# expected to fail must report an error and write a trail.
#
# Usage: bash model/run.sh [-j N] [NAME...]   (all runs by default)
#        bash model/run.sh --trail NAME       run NAME and print its trail
#
# The last line printed is "N passed, M failed".  Runs go N at a time
# (default: the number of CPUs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# name                     file        defines                               mode      expect
runs=$(cat <<'EOF'
freeze                     freeze.pml  -                                     safety    pass
freeze-3faults             freeze.pml  -DNF=3 -DNO_BUSY -DNO_LOOKUP          safety    pass
freeze-live                freeze.pml  -DNO_BUSY                             live      pass
freeze-skip-refresh        freeze.pml  -DNO_BUSY -DBUG_SKIP_REFRESH          live      fail
freeze-link-over-frozen    freeze.pml  -DBUG_LINK_OVER_FROZEN                safety    fail
freeze-free-early          freeze.pml  -DBUG_FREE_EARLY                      safety    fail
freeze-no-rollback         freeze.pml  -DBUG_NO_ROLLBACK                     safety    fail
lock-2r1w                  lock.pml    -DNR=2 -DNW=1                         safety    pass
lock-1r2w                  lock.pml    -DNR=1 -DNW=2                         safety    pass
lock-2r1w-reader           lock.pml    -DNR=2 -DNW=1 -DLIVENESS              ltl:r0    pass
lock-2r1w-writer           lock.pml    -DNR=2 -DNW=1 -DLIVENESS              ltl:w0    pass
lock-1r2w-reader           lock.pml    -DNR=1 -DNW=2 -DLIVENESS              ltl:r0    pass
lock-1r2w-writer           lock.pml    -DNR=1 -DNW=2 -DLIVENESS              ltl:w0    pass
lock-no-membarrier         lock.pml    -DNR=2 -DNW=1 -DBUG_NO_MEMBARRIER     safety    fail
lock-no-reader-fence       lock.pml    -DNR=2 -DNW=1 -DBUG_NO_READER_FENCE   safety    fail
lock-no-drain-membarrier   lock.pml    -DNR=2 -DNW=1 -DBUG_NO_DRAIN_MEMBARRIER safety  fail
lock-not-phase-fair        lock.pml    -DNR=1 -DNW=2 -DLIVENESS -DBUG_NOT_PHASE_FAIR ltl:r0 fail
lock-spin-again            lock.pml    -DNR=1 -DNW=2 -DLIVENESS -DBUG_SPIN_AGAIN ltl:r0 fail
demote                     demote.pml  -                                     safety    pass
demote-2pages              demote.pml  -DNPAGES=2                            safety    pass
demote-live                demote.pml  -DNOBUSY                              live      pass
demote-nofreeze            demote.pml  -DBUG_DEMOTE_NO_FREEZE                safety    fail
demote-zap-nodemote        demote.pml  -DBUG_ZAP_NO_DEMOTE                   safety    fail
demote-promote-nograce     demote.pml  -DBUG_PROMOTE_NO_GRACE                safety    fail
demote-setleaf-ignorebusy  demote.pml  -DBUG_SET_LEAF_IGNORE_BUSY            safety    fail
EOF
)

die() {
	echo "model/run.sh: $*" >&2
	exit 2
}

command -v spin >/dev/null || die "spin not found (Debian package spin)"
command -v gcc >/dev/null || die "gcc not found"

# The table row of run @1.
row() {
	awk -v n="$1" '$1 == n' <<<"$runs"
}

# The -D macros of table row @1 (empty for "-").
row_defines() {
	awk '{for (i = 3; i < NF - 1; i++) if ($i != "-") printf "%s ", $i}' <<<"$1"
}

# Run one verification; print one result line.  With @2 = keep, leave the
# scratch directory and print its path last.
run_one() {
	local name=$1 keep=${2:-} line file defines mode expect
	local dir cflags flags out rc=0 errors states depth secs verdict why
	line=$(row "$name")
	[ -n "$line" ] || die "no run named $name"
	file=$(awk '{print $2}' <<<"$line")
	mode=$(awk '{print $(NF-1)}' <<<"$line")
	expect=$(awk '{print $NF}' <<<"$line")
	defines=$(row_defines "$line")

	case $mode in
	safety) cflags="-DSAFETY"; flags="-m10000000" ;;
	live)   cflags="-DNP -DNFAIR=3"; flags="-l -f -m10000000" ;;
	ltl:*)  cflags="-DNFAIR=3 -DCOLLAPSE"; flags="-a -f -N ${mode#ltl:} -m20000000" ;;
	*)      die "$name: unknown mode $mode" ;;
	esac
	# 8 GB at most per run (pan stops there, and the run fails).
	cflags+=" -DMEMLIM=8000"
	# For a trail to read: the shortest path to the error.
	if [ "$keep" = keep ] && [ "$mode" = safety ]; then
		cflags+=" -DREACH"
		flags+=" -i"
	fi

	dir=$(mktemp -d "${TMPDIR:-/tmp}/model-$name.XXXXXX")
	cp "$here/$file" "$dir/"
	out="$dir/pan.out"
	# shellcheck disable=SC2086
	if ! (cd "$dir" && spin -a $defines "$file" >spin.out 2>&1 &&
	      gcc -O2 -w $cflags -o pan pan.c >gcc.out 2>&1); then
		cat "$dir/spin.out" "$dir/gcc.out" 2>/dev/null | tail -n 20
		verdict=FAIL why="did not build"
	else
		# shellcheck disable=SC2086
		(cd "$dir" && ./pan $flags >"$out" 2>&1) || rc=$?
		errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -n 1)
		states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | tail -n 1)
		depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | tail -n 1)
		secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' "$out" | tail -n 1)
		why="errors ${errors:-?}, ${states:-?} states, depth ${depth:-?}, ${secs:-?} s"
		if [ -z "$errors" ]; then
			verdict=FAIL why="pan gave no result (exit $rc)"
		elif grep -q "max search depth too small\|reached -DMEMLIM bound\|out of memory" "$out"; then
			verdict=FAIL why="incomplete search: $why"
		elif [ "$expect" = pass ] && [ "$errors" -eq 0 ]; then
			verdict=ok
		elif [ "$expect" = fail ] && [ "$errors" -gt 0 ] &&
		     [ -f "$dir/$file.trail" ]; then
			verdict=ok why="rejected as expected: $(grep -m1 '^pan:[0-9]' "$out" | cut -c1-90); $why"
		else
			verdict=FAIL
		fi
	fi
	printf '%-4s %-26s %-5s %s\n' "$verdict" "$name" "$expect" "$why"
	if [ "$verdict" = FAIL ] && [ -f "$out" ]; then
		grep -E '^pan:|error' "$out" | head -n 5 | sed 's/^/     /'
	fi
	if [ "$keep" = keep ]; then
		echo "$dir"
	else
		rm -rf "$dir"
	fi
}

if [ "${1:-}" = --one ]; then
	run_one "$2"
	exit 0
fi

if [ "${1:-}" = --trail ]; then
	[ $# -eq 2 ] || die "usage: model/run.sh --trail NAME"
	name=$2
	dir=$(run_one "$name" keep | tee /dev/stderr | tail -n 1)
	file=$(row "$name" | awk '{print $2}')
	defines=$(row_defines "$(row "$name")")
	[ -f "$dir/$file.trail" ] || die "$name wrote no trail (it passed)"
	echo "== trail of $name (replayed with spin -t -p -g; files in $dir)"
	# shellcheck disable=SC2086
	(cd "$dir" && spin -t -p -g $defines "$file")
	exit 0
fi

jobs=$(nproc 2>/dev/null || echo 1)
if [ "${1:-}" = -j ]; then
	jobs=$2
	shift 2
fi
if [ $# -gt 0 ]; then
	names=("$@")
else
	mapfile -t names < <(awk '{print $1}' <<<"$runs")
fi

start=$SECONDS
results=$(printf '%s\n' "${names[@]}" |
	  xargs -P "$jobs" -I{} bash "$0" --one {})
printf '%s\n' "$results"
passed=$(grep -c '^ok ' <<<"$results")
failed=$(grep -c '^FAIL ' <<<"$results")
echo "spin $(spin -V | awk '{print $3}'), $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
