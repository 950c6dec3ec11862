#!/bin/sh
# Estimates the time of one training epoch of each cfg given (default: every models/*.cfg)
# on this machine: trains the first STEPS batches (max_batches=STEPS, the cfg otherwise as
# shipped) and scales the measured samples/s to the whole training set.
# usage: scripts/epoch_time.sh [-n STEPS] [-c] [CFG...]       (after make; uses build/nerve)
# Prints: cfg, batch, training samples, steps measured, samples/s, estimated epoch time.
#
# -c: CPU-time mode, for a machine that other work keeps busy (wall-clock rates then say
#     more about the other load than about the model). Trains on one thread twice, for 1
#     and for 1 + STEPS batches, and takes the difference of the two runs' CPU time (user +
#     system, from the shell's `times`), so that loading the data and building the model
#     cancel out: the result is the CPU time of STEPS training steps on one core, scaled to
#     an epoch, i.e. the one-thread epoch time of an otherwise idle core.
set -eu
steps=20
cpu=0
while [ $# -gt 0 ]; do
    case $1 in
    -n) steps=$2; shift 2 ;;
    -c) cpu=1; shift ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || set -- models/*.cfg
nerve=${NERVE:-build/nerve}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# with_steps CFG K COPY [notest]: COPY is CFG training K batches, next to CFG so relative data
# paths still resolve; with notest, without the test set (its evaluation after training
# would cost a big model more than the steps measured)
with_steps() {
    awk -v k="$2" -v notest="${4:-}" '/^\[net\]/ { print; print "max_batches=" k; next }
        /^max_batches=/ { next } notest != "" && /^test_/ { next } { print }' "$1" > "$3"
}

# children_cpu: user + system seconds of every child this shell has waited for (`times` runs in
# this shell, not in a command substitution's subshell, which has no children of its own)
children_cpu() {
    times > "$tmp/times"
    awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } print s }' "$tmp/times"
}

human() {
    awk -v e="$1" 'BEGIN { if (e >= 3600) printf "%.1f h", e / 3600; else if (e >= 60) printf "%.1f min", e / 60; else printf "%.1f s", e }'
}

if [ $cpu = 1 ]; then
    printf '%-22s %6s %8s %6s %14s %16s\n' cfg batch samples steps cpu-s/step "1-thread epoch"
else
    printf '%-22s %6s %8s %6s %10s %14s\n' cfg batch samples steps samples/s epoch
fi
for cfg in "$@"; do
    name=$(basename "$cfg" .cfg)
    dir=$(cd "$(dirname "$cfg")" && pwd)
    copy="$dir/.epoch-time-$name.cfg"
    if [ $cpu = 1 ]; then
        children_cpu > "$tmp/t0"; t0=$(cat "$tmp/t0")
        with_steps "$cfg" 1 "$copy" notest
        if ! out=$("$nerve" train "$copy" --epochs 1 --quiet --overwrite --threads 1 --out "$tmp/$name" 2>&1); then
            rm -f "$copy"; printf '%-22s failed: %s\n' "$name" "$(printf '%s' "$out" | tail -1)"; continue
        fi
        children_cpu > "$tmp/t1"; t1=$(cat "$tmp/t1")
        with_steps "$cfg" $((steps + 1)) "$copy" notest
        if ! out=$("$nerve" train "$copy" --epochs 1 --quiet --overwrite --threads 1 --out "$tmp/$name" 2>&1); then
            rm -f "$copy"; printf '%-22s failed: %s\n' "$name" "$(printf '%s' "$out" | tail -1)"; continue
        fi
        children_cpu > "$tmp/t2"; t2=$(cat "$tmp/t2")
        rm -f "$copy"
        batch=$(printf '%s\n' "$out" | sed -n 's/.*, batch \([0-9]*\),.*/\1/p; s/.*, \([0-9]*\) streams of.*/\1/p' | head -1)
        samples=$(printf '%s\n' "$out" | sed -n 's/.*parameters, \([0-9]*\) training samples.*/\1/p; s/.*(\([0-9]*\) steps per epoch).*/\1/p' | head -1)
        per=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v k="$steps" 'BEGIN { printf "%.3f", ((c - b) - (b - a)) / k }')
        # under 0.5 CPU seconds in all, the steps are lost in the runs' fixed costs
        if awk -v p="$per" -v k="$steps" 'BEGIN { exit !(p * k < 0.5) }'; then
            printf '%-22s %6s %8s %6s %14s %16s\n' "$name" "$batch" "$samples" "$steps" "-" "too small for -c"
            continue
        fi
        if [ "$name" = charlm ]; then e=$(awk -v p="$per" -v s="$samples" 'BEGIN { print p * s }')
        else e=$(awk -v p="$per" -v s="$samples" -v b="$batch" 'BEGIN { print p * s / b }'); fi
        printf '%-22s %6s %8s %6s %14s %16s\n' "$name" "$batch" "$samples" "$steps" "$per" "$(human "$e")"
        continue
    fi
    with_steps "$cfg" "$steps" "$copy"
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
    e=$(awk -v n="$name" -v s="$samples" -v k="$steps" -v r="$rate" -v t="$secs" 'BEGIN {
        if (n == "charlm") { print t * s / (k < s ? k : s); exit }   # samples: steps per epoch
        print (r > 0) ? s / r : 0 }')
    [ "$name" = charlm ] && rate=-
    printf '%-22s %6s %8s %6s %10s %14s\n' "$name" "$batch" "$samples" "$steps" "$rate" "$(human "$e")"
done
