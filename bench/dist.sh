#!/usr/bin/env bash
# Data-parallel scaling (docs/distributed.md): ResNet-20 (models/resnet20.cfg, batch 128,
# momentum SGD) trained by `nerve train` for STEPS steps on synthetic CIFAR-10-shaped data,
# as 1 rank x 1 thread, 1 rank x 2 threads and `mpirun -np 2` x 1 thread (each rank bound
# to its own core), in one run, so the ratios compare like with like. The time is the
# training loop's own ("trained 1 epochs in X s": the data loading and start-up are left
# out); the first step (page faults, pool start) is in it for all three alike.
#
# Usage: bench/dist.sh [STEPS]   (BUILD=build by default; needs a build with MPI)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STEPS=${1:-12}
NERVE=$PWD/$BUILD/nerve
command -v mpirun >/dev/null || { echo "bench/dist.sh: no mpirun (openmpi-bin)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# STEPS batches of 128 random images with random labels 0..9, as a CIFAR-10 binary file
/usr/bin/python3 - "$dir/data.bin" $((STEPS * 128)) <<'PY'
import sys, random
random.seed(1)
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    for i in range(n):
        f.write(bytes([i % 10]) + random.randbytes(3072))
PY
bench/native_cfg.sh models/resnet20.cfg "$dir/r20.cfg" 32 32 3
sed -i -e '/^\[net\]/a train_cifar=data.bin\nepochs=1\nseed=1' "$dir/r20.cfg"
cd "$dir"
secs() { sed -n 's/^trained 1 epochs in \([0-9.]*\)s.*/\1/p'; }
t11=$(NERVE_THREADS=1 "$NERVE" train r20.cfg --out a --quiet | secs)
t12=$(NERVE_THREADS=2 "$NERVE" train r20.cfg --out b --quiet | secs)
out21=$(NERVE_THREADS=1 mpirun -np 2 --bind-to core --map-by core -x NERVE_THREADS "$NERVE" train r20.cfg --out c \
        --quiet)
t21=$(echo "$out21" | secs)
row() { printf "%-44s %10s s  %8s samples/s  %s\n" "$1" "$2" \
        "$(awk -v t="$2" -v n=$((STEPS * 128)) 'BEGIN { printf "%.1f", n / t }')" "$3"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo "ResNet-20 training, batch 128, $STEPS steps (data-parallel, docs/distributed.md)"
row "1 rank x 1 thread" "$t11" ""
row "1 rank x 2 threads" "$t12" "speed-up $(ratio "$t11" "$t12")"
row "mpirun -np 2 x 1 thread (bound to cores)" "$t21" "speed-up $(ratio "$t11" "$t21") (vs 2 threads: $(ratio "$t12" "$t21"))"
echo "  2 ranks, $(echo "$out21" | grep '^rank 0: backward')"
