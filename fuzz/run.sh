#!/bin/bash
# fuzz/run.sh BUILDDIR SECONDS TARGET...   (what `make fuzz` runs)
#
# For each libFuzzer binary BUILDDIR/TARGET:
#   1. replays fuzz/regressions/TARGET/ (inputs that once crashed): each must
#      now pass;
#   2. fuzzes for SECONDS, starting from the committed seeds in
#      fuzz/corpus/TARGET/ plus what earlier runs found (BUILDDIR/corpus/TARGET,
#      never committed), inputs up to 64 KB, 2 GB of memory at most.
# Fails (exit 1) on any crash, leak, timeout, out-of-memory or harness
# assertion; the input is left in BUILDDIR/artifacts/TARGET/, and libFuzzer's
# report in BUILDDIR/TARGET.log. Keep such an input: fix the bug, then copy
# it to fuzz/regressions/TARGET/ (replayed here and by t/03-fuzz-replay.t).
#
# Environment: FUZZ_FLAGS, extra libFuzzer flags (say -jobs=2 -workers=2).
set -eu
set -o pipefail

[ $# -ge 3 ] || { echo "usage: $0 BUILDDIR SECONDS TARGET..." >&2; exit 2; }
BUILD=$1 SECONDS_=$2; shift 2
FUZZ=$(cd "$(dirname "$0")" && pwd)
# libFuzzer's own leak check stays on; ASAN/UBSAN stop at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=""
for t in "$@"; do
    bin=$BUILD/$t
    [ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz-build)" >&2; exit 2; }
    seeds=$FUZZ/corpus/$t
    regress=$FUZZ/regressions/$t
    work=$BUILD/corpus/$t
    art=$BUILD/artifacts/$t
    log=$BUILD/$t.log
    mkdir -p "$work" "$art"

    # 1. regressions: libFuzzer runs files given as arguments once each.
    inputs=()
    if [ -d "$regress" ]; then
        while IFS= read -r -d '' f; do inputs+=("$f"); done \
            < <(find "$regress" -type f ! -name 'README*' ! -name '.*' -print0 | sort -z)
    fi
    if [ ${#inputs[@]} -gt 0 ]; then
        if "$bin" -rss_limit_mb=2048 -timeout=30 "${inputs[@]}" > "$log.regress" 2>&1; then
            echo "fuzz: $t: ${#inputs[@]} regression input(s) pass"
        else
            tail -n 40 "$log.regress" >&2
            echo "fuzz: $t: a regression input fails (see $log.regress)" >&2
            failed="$failed $t"
            continue
        fi
    fi

    # 2. fuzz
    start=$(date +%s)
    rc=0
    # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
    "$bin" -max_total_time="$SECONDS_" -rss_limit_mb=2048 -max_len=65536 \
        -timeout=30 -print_final_stats=1 -artifact_prefix="$art/" \
        ${FUZZ_FLAGS:-} "$work" "$seeds" > "$log" 2>&1 || rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    if [ $rc -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|runtime error|fuzz: |Test unit written' "$log" | head -n 20 >&2 || true
        echo "fuzz: $t: FAILED after ${took}s (exit $rc); input in $art/, report in $log" >&2
        failed="$failed $t"
    else
        echo "fuzz: $t: ok, ${runs:-?} inputs in ${took}s, ${cov:-cov ?}," \
             "corpus $(ls "$work" | wc -l) files"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: FAIL:$failed" >&2
    exit 1
fi
echo "fuzz: PASS ($# targets, ${SECONDS_}s each)"
