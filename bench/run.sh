#!/usr/bin/env bash
# make bench: nerve against PyTorch (Debian's python3-torch) on the same machine, same run.
# Prints: workload | nerve | reference | ratio. Set BUILD=build-san etc. to use another build.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STEPS=${STEPS:-400}
PY=/usr/bin/python3
have_torch=0
if $PY -c "import torch" 2>/dev/null; then have_torch=1; fi

field() { awk -v k="$1" '$1 == k { print $2 }'; }

printf "%-34s %14s %14s %8s\n" "workload" "nerve" "pytorch" "ratio"
for t in 1 2; do
    n=$(NERVE_THREADS=$t $BUILD/bench/bench_mlp $t $STEPS | field samples_per_sec)
    if [ $have_torch = 1 ]; then
        r=$($PY bench/torch_mlp.py $t $STEPS | field samples_per_sec)
        ratio=$(awk -v a="$n" -v b="$r" 'BEGIN { printf "%.2fx", a / b }')
    else
        r="(no torch)"; ratio="-"
    fi
    printf "%-34s %14s %14s %8s\n" "MLP 784-512-256-10 train b64 ${t}T" "$n/s" "$r/s" "$ratio"
done

# Character LSTM (H 128, one-hot, T 64, B 32, Adam, clip 5) on GPL-3, the same steps in both:
# held-out bits per character (ratio nerve/pytorch: lower is better, 1.00 = equal quality)
# and training throughput in characters per second (ratio: higher is better).
CHAR_STEPS=${CHAR_STEPS:-600}
t=2
out=$(NERVE_THREADS=$t $BUILD/bench/bench_charlm $t $CHAR_STEPS)
nb=$(echo "$out" | field bpc); nc=$(echo "$out" | field chars_per_sec)
if [ $have_torch = 1 ]; then
    out=$($PY bench/torch_charlm.py $t $CHAR_STEPS)
    rb=$(echo "$out" | field bpc); rc=$(echo "$out" | field chars_per_sec)
    ratio=$(awk -v a="$nb" -v b="$rb" -v c="$nc" -v d="$rc" 'BEGIN { printf "%.3f / %.2fx", a / b, c / d }')
else
    rb="-"; rc="(no torch)"; ratio="-"
fi
printf "%-34s %24s %24s %14s\n" "char-LSTM GPL-3 bits/char, chars/s ${t}T" "$nb b/c $nc/s" "$rb b/c $rc/s" "$ratio"
