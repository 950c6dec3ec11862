#!/bin/sh
# Estimates the time of one training epoch of each cfg given (default: every models/*.cfg)
# on this machine: trains the first STEPS batches (max_batches=STEPS, the cfg otherwise as
# shipped) and scales the measured samples/s to the whole training set.
# usage: scripts/epoch_time.sh [-n STEPS] [CFG...]       (after make; uses build/nerve)
# Prints: cfg, batch, training samples, steps measured, samples/s, estimated epoch time.
set -eu
steps=20
if [ "${1:-}" = -n ]; then steps=$2; shift 2; fi
[ $# -gt 0 ] || set -- models/*.cfg
nerve=${NERVE:-build/nerve}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-22s %6s %8s %6s %10s %14s\n' cfg batch samples steps samples/s epoch
for cfg in "$@"; do
    name=$(basename "$cfg" .cfg)
    dir=$(cd "$(dirname "$cfg")" && pwd)
    # the copy sits next to the original, so that relative data paths still resolve
    copy="$dir/.epoch-time-$name.cfg"
    awk -v k="$steps" '/^\[net\]/ { print; print "max_batches=" k; next } /^max_batches=/ { next } { print }' \
        "$cfg" > "$copy"
    if ! out=$("$nerve" train "$copy" --epochs 1 --quiet --overwrite --out "$tmp/$name" 2>&1); then
        rm -f "$copy"
        printf '%-22s failed: %s\n' "$name" "$(printf '%s' "$out" | tail -1)"
        continue
    fi
    rm -f "$copy"
    batch=$(printf '%s\n' "$out" | sed -n 's/.*, batch \([0-9]*\),.*/\1/p; s/.*, \([0-9]*\) streams of.*/\1/p' | head -1)
    samples=$(printf '%s\n' "$out" | sed -n 's/.*parameters, \([0-9]*\) training samples.*/\1/p; s/.*(\([0-9]*\) steps per epoch).*/\1/p' | head -1)
    rate=$(printf '%s\n' "$out" | sed -n 's/^epoch *1 .*(\([0-9.]*\) \(samples\|chars\)\/s)$/\1/p' | head -1)
    secs=$(printf '%s\n' "$out" | sed -n 's/^epoch *1 .*  \([0-9.]*\)s (.*/\1/p' | head -1)
    awk -v n="$name" -v b="$batch" -v s="$samples" -v k="$steps" -v r="$rate" -v t="$secs" 'BEGIN {
        if (n == "charlm") { e = t * s / (k < s ? k : s); r = "-" }   # samples: steps per epoch
        else e = (r > 0) ? s / r : 0
        if (e >= 3600) h = sprintf("%.1f h", e / 3600); else if (e >= 60) h = sprintf("%.1f min", e / 60); else h = sprintf("%.1f s", e)
        printf "%-22s %6s %8s %6s %10s %14s\n", n, b, s, k, r, h }'
done
