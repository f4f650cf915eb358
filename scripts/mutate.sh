#!/usr/bin/env bash
# Mutation harness: plant one realistic bug at a time in the engine and see
# whether the simulator and the test suite notice.
#
# Each mutant is a unified diff against libtdp/ in scripts/mutants/*.diff,
# starting with a comment (see scripts/mutants/README.md):
#
#   # mutant: <name>
#   # kind: <which kind of bug, from issue 19>
#   # models: <the realistic bug it stands for>
#   # equivalent: <why no run can observe it>      (optional: then not run)
#
# The checkout is never touched.  The committed tree (HEAD) is exported
# once into a scratch directory that is a git repository of its own
# (<scratch>/src, with its build directory <scratch>/build), and reused:
# for each mutant `git apply`, an incremental build, the runs, then
# `git checkout -- libtdp` back to the base.  A new HEAD refreshes it.
#
# For each mutant:
#   sim    build/sim/tdpsim -d <duration> -s <seed> -q for each seed (1 and
#          2 by default); killed when it exits non-zero (a violation), or
#          crashes, aborts or overruns its time limit;
#   tests  meson test --no-rebuild --maxfail 1: the fast suites first
#          (engine, mirror, huge, sim, inject, fuzz), then the stress
#          suite (--tests all, the default); killed when a test fails or
#          times out (each test's meson timeout times 0.25).
# Before the mutants the unmutated tree runs the same (the baseline): if it
# does not pass, the table would mean nothing and the script stops.
#
# Usage: scripts/mutate.sh [options] (--subset quick | --all | NAME...)
#   --subset quick     the mutants in scripts/mutants/quick.list, each with
#                      the killers it is expected to meet; exit 1 if one
#                      survives where it was expected to be killed
#   --all              every mutant (the default when no NAME is given)
#   --list             list the mutants and their kinds, and exit
#   --scratch DIR      scratch directory (default
#                      ${TMPDIR:-/tmp}/tdp-mutate-$UID; kept between runs
#                      so that builds stay incremental)
#   --seeds "S..."     simulator seeds (default "1 2")
#   --duration S       seconds per simulator run (default 3)
#   --tests fast|all|none  which test suites (default all; quick: fast)
#   --timeout-multiplier M  meson test's per-test timeout factor (0.25)
#   --deadline HH:MM   (UTC) start no mutant after this time; the rest are
#                      reported as not run
#   --markdown FILE    also write the table and the kill rates as Markdown
#   --no-baseline      skip the baseline runs
#
# Exit status: 0; 1 when a quick-subset expectation failed; 2 on a harness
# error (usage, a mutant that does not apply or does not build, a failing
# baseline).  Surviving mutants are not an error outside the quick subset.
# Every build and run is under `nice -n 10`.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd) || exit 2
mutdir=$repo/scripts/mutants
scratch=${TMPDIR:-/tmp}/tdp-mutate-$(id -u)
seeds="1 2"
duration=3
tests=""
tmult=0.25
deadline=""
markdown=""
baseline=1
subset=""
names=()

die() {
	echo "mutate.sh: $*" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--subset) subset=${2:-}; shift 2 ;;
	--subset=*) subset=${1#*=}; shift ;;
	--all) subset=all; shift ;;
	--list) subset=list; shift ;;
	--scratch) scratch=${2:-}; shift 2 ;;
	--seeds) seeds=${2:-}; shift 2 ;;
	--duration) duration=${2:-}; shift 2 ;;
	--tests) tests=${2:-}; shift 2 ;;
	--timeout-multiplier) tmult=${2:-}; shift 2 ;;
	--deadline) deadline=${2:-}; shift 2 ;;
	--markdown) markdown=${2:-}; shift 2 ;;
	--no-baseline) baseline=0; shift ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) names+=("$1"); shift ;;
	esac
done

case $subset in
""|all|list) ;;
quick) ;;
*) die "unknown subset '$subset' (quick, or --all)" ;;
esac
[ -z "$subset" ] && [ ${#names[@]} -eq 0 ] && subset=all
case ${tests:=$([ "$subset" = quick ] && echo fast || echo all)} in
fast|all|none) ;;
*) die "--tests takes fast, all or none" ;;
esac
[[ $duration =~ ^[0-9]+$ ]] || die "--duration takes whole seconds"
if [ -n "$deadline" ]; then
	[[ $deadline =~ ^[0-9]{1,2}:[0-9]{2}$ ]] || die "--deadline takes HH:MM (UTC)"
	deadline_s=$(date -u -d "$deadline" +%s) || die "bad --deadline"
fi

# The value of header field @2 of mutant file @1 ('' if none), with its
# continuation lines ("#   ...") joined.
field() {
	awk -v key="$2" '
		/^diff --git / { exit }
		$0 ~ "^# " key ":" { sub("^# " key ": *", ""); v = $0; on = 1; next }
		on && /^#   / { sub("^# +", ""); v = v " " $0; next }
		{ on = 0 }
		END { print v }' "$1"
}

all_names() {
	local f
	for f in "$mutdir"/*.diff; do
		[ -e "$f" ] && basename "$f" .diff
	done
}

if [ "$subset" = list ]; then
	for n in $(all_names); do
		eq=$(field "$mutdir/$n.diff" equivalent)
		printf '%-28s %s%s\n' "$n" "$(field "$mutdir/$n.diff" kind)" \
			"${eq:+  [equivalent]}"
	done
	exit 0
fi

# Expectations of the quick subset: "<name> <sim> <tests>", each killed or -.
declare -A expect_sim expect_tests
case $subset in
quick)
	while read -r n s t _; do
		case $n in ""|\#*) continue ;; esac
		names+=("$n")
		expect_sim[$n]=$s
		expect_tests[$n]=$t
	done <"$mutdir/quick.list"
	;;
all) mapfile -t names < <(all_names) ;;
esac
[ ${#names[@]} -gt 0 ] || die "no mutants selected"
for n in "${names[@]}"; do
	[ -f "$mutdir/$n.diff" ] || die "no mutant '$n' in $mutdir"
done

command -v meson >/dev/null && command -v ninja >/dev/null ||
	die "meson and ninja are needed"

# ---- the scratch tree ---------------------------------------------------

src=$scratch/src
build=$scratch/build
mkdir -p "$scratch" || die "cannot create $scratch"
exec 9>"$scratch/lock"
flock -n 9 || die "$scratch is in use by another mutate.sh"

head=$(git -C "$repo" rev-parse HEAD) || die "$repo is not a git checkout"
if [ "$(cat "$scratch/base" 2>/dev/null)" != "$head" ] || [ ! -d "$src/.git" ]; then
	echo "mutate.sh: exporting $head into $src"
	rm -rf "$src" "$scratch/base"
	mkdir -p "$src"
	git -C "$repo" archive "$head" | tar -x -C "$src" || die "export failed"
	(cd "$src" && git init -q && git add -A &&
		git -c user.name=mutate -c user.email=mutate@localhost \
			commit -qm "base $head") || die "scratch repository failed"
	echo "$head" >"$scratch/base"
fi
# Whatever a previous, interrupted run left applied.
git -C "$src" checkout -q -- . && git -C "$src" clean -qfd -- libtdp ||
	die "cannot reset $src"

if [ ! -f "$build/build.ninja" ]; then
	nice -n 10 meson setup "$build" "$src" -Dbenchmarks=disabled \
		-Dman=disabled >"$scratch/setup.log" 2>&1 ||
		{ cat "$scratch/setup.log"; die "meson setup failed"; }
fi

logs=$scratch/logs
rm -rf "$logs"
mkdir -p "$logs"

build_tree() { # @1: log file
	nice -n 10 ninja -C "$build" >"$1" 2>&1
}

# Run the simulator for every seed; print "no", or "yes (...)" with the
# seed and the first violation, the crash or the timeout.
run_sim() { # @1: log prefix
	local seed rc what limit=$((duration + 30))
	for seed in $seeds; do
		nice -n 10 timeout -k 5 "$limit" "$build/sim/tdpsim" -d "$duration" \
			-s "$seed" -q >"$1.sim$seed.log" 2>&1
		rc=$?
		[ $rc -eq 0 ] && continue
		what=$(grep -m1 -o 'VIOLATION \[[^]]*\]' "$1.sim$seed.log")
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			what="timeout ${limit}s"
		elif [ $rc -gt 128 ]; then
			what="signal $((rc - 128))$(grep -m1 -io 'assert[a-z]*' "$1.sim$seed.log" |
				sed 's/^/, /')"
		elif [ -z "$what" ]; then
			what="exit $rc"
		fi
		echo "yes (seed $seed: $what)"
		return
	done
	echo "no"
}

# Run the test suites, stopping at the first failure; print "no", or
# "yes (<test> <status>)".
run_tests() { # @1: log prefix
	local groups=() g i=0 line
	case $tests in
	none) echo "-"; return ;;
	fast) groups=("engine mirror huge sim inject fuzz") ;;
	all) groups=("engine mirror huge sim inject fuzz" "stress") ;;
	esac
	for g in "${groups[@]}"; do
		local args=()
		for s in $g; do args+=(--suite "$s"); done
		i=$((i + 1))
		nice -n 10 meson test -C "$build" --no-rebuild --maxfail 1 \
			--num-processes 2 -t "$tmult" "${args[@]}" \
			>"$1.tests$i.log" 2>&1 && continue
		line=$(grep -m1 -E '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)' \
			"$1.tests$i.log")
		if [ -n "$line" ]; then
			echo "$line" | awk '{
				for (i = 1; i <= NF; i++) if ($i == "/") { t = $(i + 1); s = $(i + 2); break }
				printf "yes (%s %s)\n", t, s }'
		else
			echo "yes (meson test failed: see $1.tests$i.log)"
		fi
		return
	done
	echo "no"
}

now_s() { date -u +%s; }
errors=0
n_expect=0
failed_expect=()

if [ $baseline -eq 1 ]; then
	echo "mutate.sh: baseline (unmutated $head)"
	t0=$(now_s)
	build_tree "$logs/baseline.build.log" ||
		{ tail -30 "$logs/baseline.build.log"; die "the unmutated tree does not build"; }
	bs=$(run_sim "$logs/baseline")
	bt=$(run_tests "$logs/baseline")
	echo "mutate.sh: baseline sim: $bs; tests: $bt ($(($(now_s) - t0)) s)"
	if [ "$bs" != no ] || { [ "$bt" != no ] && [ "$bt" != - ]; }; then
		die "the unmutated tree fails (logs in $logs): fix that first"
	fi
fi

# ---- the mutants ---------------------------------------------------------

rows=()
n_run=0 n_sim=0 n_tests=0 n_either=0 n_eq=0 n_notrun=0
start_all=$(now_s)
for n in "${names[@]}"; do
	f=$mutdir/$n.diff
	kind=$(field "$f" kind)
	eq=$(field "$f" equivalent)
	if [ -n "$eq" ]; then
		rows+=("$n|$kind|equivalent|equivalent: $eq")
		n_eq=$((n_eq + 1))
		continue
	fi
	if [ -n "$deadline" ] && [ "$(now_s)" -ge "$deadline_s" ]; then
		rows+=("$n|$kind|not run|not run (deadline)")
		n_notrun=$((n_notrun + 1))
		continue
	fi
	t0=$(now_s)
	if ! git -C "$src" apply "$f" 2>"$logs/$n.apply.log"; then
		cat "$logs/$n.apply.log" >&2
		rows+=("$n|$kind|ERROR|does not apply to $head")
		errors=$((errors + 1))
		continue
	fi
	if ! build_tree "$logs/$n.build.log"; then
		grep -m5 'error' "$logs/$n.build.log" >&2
		rows+=("$n|$kind|ERROR|does not build (log $logs/$n.build.log)")
		errors=$((errors + 1))
		git -C "$src" checkout -q -- libtdp
		continue
	fi
	s=$(run_sim "$logs/$n")
	t=$(run_tests "$logs/$n")
	git -C "$src" checkout -q -- libtdp ||
		die "cannot restore libtdp in $src"
	rows+=("$n|$kind|$s|$t")
	n_run=$((n_run + 1))
	[ "${s%% *}" = yes ] && n_sim=$((n_sim + 1))
	[ "${t%% *}" = yes ] && n_tests=$((n_tests + 1))
	{ [ "${s%% *}" = yes ] || [ "${t%% *}" = yes ]; } && n_either=$((n_either + 1))
	printf 'mutate.sh: %-28s sim: %s; tests: %s (%d s)\n' "$n" "$s" "$t" \
		$(($(now_s) - t0))
	if [ "$subset" = quick ]; then
		[ "${expect_sim[$n]}" = killed ] && n_expect=$((n_expect + 1))
		[ "${expect_tests[$n]}" = killed ] && n_expect=$((n_expect + 1))
		[ "${expect_sim[$n]}" = killed ] && [ "${s%% *}" != yes ] &&
			failed_expect+=("$n survived the simulator")
		[ "${expect_tests[$n]}" = killed ] && [ "${t%% *}" != yes ] &&
			failed_expect+=("$n survived the tests")
	fi
done
# Leave the scratch tree at its base: the next run builds incrementally.
build_tree "$logs/restore.build.log" || true

# ---- the table -------------------------------------------------------------

pct() { # @1 of @2
	[ "$2" -gt 0 ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }' ||
		echo "n/a"
}
table() {
	echo "| mutant | kind | killed by sim | killed by tests |"
	echo "|---|---|---|---|"
	local r
	for r in "${rows[@]}"; do
		IFS='|' read -r a b c d <<<"$r"
		echo "| $a | $b | $c | $d |"
	done
	echo
	echo "Run: $n_run mutants ($n_eq equivalent, $n_notrun not run, $errors errors);" \
		"sim seeds \"$seeds\", ${duration} s each; tests: $tests."
	echo "Killed by the simulator: $n_sim/$n_run ($(pct $n_sim $n_run));" \
		"by the tests: $n_tests/$n_run ($(pct $n_tests $n_run));" \
		"by either: $n_either/$n_run ($(pct $n_either $n_run))."
	echo "Commit $head, $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(now_s) - start_all)) s."
}
echo
table
[ -n "$markdown" ] && table >"$markdown"

for e in "${failed_expect[@]}"; do
	echo "mutate.sh: EXPECTATION FAILED: $e" >&2
done
# The quick subset's last line, for scripts/test.sh: each expected kill
# seen is a pass, each missed one or harness error a failure.
if [ "$subset" = quick ]; then
	echo "mutants: $((n_expect - ${#failed_expect[@]})) passed," \
		"$((${#failed_expect[@]} + errors)) failed"
fi
[ $errors -gt 0 ] && exit 2
[ ${#failed_expect[@]} -gt 0 ] && exit 1
exit 0
