#!/usr/bin/env bash
# The architecture of a models/ cfg at its native input, for benchmarks: models/*.cfg train as
# shipped on Fashion-MNIST, so the ImageNet- and CIFAR-shaped ones start with parameter-free
# layers named fmnist_* that bring 28x28x1 to their input size. A benchmark compares against
# the plain architecture (bench/torch_conv.py), so this drops those layers, sets the [net]
# input to H x W x C and drops the [net] data and epoch keys (the caller adds its own).
#
# Usage: bench/native_cfg.sh IN.cfg OUT.cfg H W C
set -eu
[ $# = 5 ] || { echo "usage: $0 IN.cfg OUT.cfg H W C" >&2; exit 2; }
awk -v H="$3" -v W="$4" -v C="$5" '
function flush() {
    if (buf != "" && buf !~ /\nname=fmnist_/) printf "%s", buf
    buf = ""
}
/^\[/ { flush(); sec = $0 }
{
    line = $0
    if (line ~ /^#/) next
    if (sec == "[net]") {
        if (line ~ /^(train|test|valid)_[a-z]*=/ || line ~ /^epochs=/) next
        if (line ~ /^height=/) line = "height=" H
        if (line ~ /^width=/) line = "width=" W
        if (line ~ /^channels=/) line = "channels=" C
    }
    buf = buf line "\n"
}
END { flush() }' "$1" > "$2"
grep -q 'name=fmnist_' "$2" && { echo "$0: $1: fmnist_ layers left" >&2; exit 1; }
exit 0
