#!/bin/sh
# Regenerates the darknet reference of tests/test_darknet.c with Debian's libdarknet:
# tests/data/darknet/small.weights (random values written by darknet's save_weights) and
# tests/data/darknet_reference.h (an input and darknet's forward output for it).
# Usage: tests/darknet/gen_reference.sh [BUILD_DIR]   (needs `make BUILD_DIR/dn_ref`)
set -eu
build=${1:-build}
cfg=tests/data/darknet/small.cfg
"$build/dn_ref" random "$cfg" tests/data/darknet/small.weights 7 2>/dev/null
"$build/dn_ref" reference "$cfg" tests/data/darknet/small.weights 11 2>/dev/null \
    >tests/data/darknet_reference.h
echo "wrote tests/data/darknet/small.weights and tests/data/darknet_reference.h"
