#!/usr/bin/env bash
# Runs libFuzzer targets: run.sh SECONDS TARGET... (what `make fuzz` calls; see
# docs/fuzzing.md). Each target starts from its seed corpus tests/fuzz/corpus/<target>/
# (read only) and its working corpus $FUZZ_BUILD/corpus/<target>/ (kept between runs),
# with tests/fuzz/<target>.dict if there is one. A crash, leak, sanitizer report, timeout
# or out-of-memory is written to $FUZZ_BUILD/findings/ and fails the run; the final
# statistics of every target are printed at the end.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=$1
shift
build=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$build/findings" "$build/logs"
failed=""
summary=""
for t in "$@"; do
    bin="$build/fuzz_$t"
    seeds="tests/fuzz/corpus/$t"
    work="$build/corpus/$t"
    mkdir -p "$work" "$seeds"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    log="$build/logs/$t.log"
    echo "== fuzz $t for ${secs}s (log: $log)"
    # -rss_limit_mb: the harnesses cap libnerve's allocations at 384 MB (fuzz_common.h);
    # ASan's own overhead comes on top.
    UBSAN_OPTIONS=print_stacktrace=1 "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2560 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$build/findings/$t-" "${dict[@]}" \
        "$work" "$seeds" >"$log" 2>&1
    rc=$?
    stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    summary+=$(printf '%-14s rc=%d execs=%s  %s' "$t" "$rc" "${execs:-?}" "$stats")$'\n'
    if [ $rc -ne 0 ]; then
        failed="$failed $t"
        echo "!! $t: finding (exit $rc); last lines of $log:"
        tail -40 "$log"
    fi
done
echo "== fuzz summary (${secs}s per target)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (inputs in $build/findings/)"
    exit 1
fi
