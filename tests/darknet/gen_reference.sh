#!/bin/sh
# Regenerates the darknet reference of tests/test_darknet.c with Debian's libdarknet:
# tests/data/darknet/NAME.weights for NAME in small, reorg, rnn and gru (random values
# written by darknet's save_weights) and tests/data/darknet_reference.h (an input and
# darknet's forward output for each).
# Usage: tests/darknet/gen_reference.sh [BUILD_DIR]   (needs `make BUILD_DIR/dn_ref`)
set -eu
build=${1:-build}
out=tests/data/darknet_reference.h
: >"$out"
seed=7
for name in small reorg rnn gru; do
    cfg=tests/data/darknet/$name.cfg
    "$build/dn_ref" random "$cfg" "tests/data/darknet/$name.weights" $seed 2>/dev/null
    "$build/dn_ref" reference "$cfg" "tests/data/darknet/$name.weights" $((seed + 4)) $name \
        2>/dev/null >>"$out"
    seed=$((seed + 1))
done
echo "wrote tests/data/darknet/{small,reorg,rnn,gru}.weights and $out"
