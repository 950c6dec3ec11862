#!/bin/sh
# Regenerates the darknet reference of tests/test_darknet.c with Debian's libdarknet:
# tests/data/darknet/NAME.weights for NAME in small, reorg, rnn, gru, tree (random values
# written by darknet's save_weights) and tests/data/darknet_reference.h (an input and
# darknet's forward output for each).
# Usage: tests/darknet/gen_reference.sh [BUILD_DIR]   (needs `make BUILD_DIR/dn_ref`)
set -eu
build=${1:-build}
out=tests/data/darknet_reference.h
: >"$out"
seed=7
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in small reorg rnn gru tree; do
    cfg=tests/data/darknet/$name.cfg
    # darknet opens tree= relative to the working directory, nerve relative to the cfg
    sed "s|^tree=|tree=$PWD/tests/data/darknet/|" "$cfg" >"$tmp/$name.cfg"
    cfg=$tmp/$name.cfg
    "$build/dn_ref" random "$cfg" "tests/data/darknet/$name.weights" $seed 2>/dev/null
    "$build/dn_ref" reference "$cfg" "tests/data/darknet/$name.weights" $((seed + 4)) $name \
        2>/dev/null | sed "s|$tmp/|tests/data/darknet/|" >>"$out"
    seed=$((seed + 1))
done
echo "wrote tests/data/darknet/{small,reorg,rnn,gru,tree}.weights and $out"
