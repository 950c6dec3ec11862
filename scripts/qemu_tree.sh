#!/usr/bin/env sh
# Makes BUILD/qemu/: the cross build BUILD seen through qemu-user, for the tests. Everything
# in BUILD is linked there as is, except the programs the tests run by path (nerve,
# onnx_node_tests and the examples), which become two-line wrappers that run the real binary
# under QEMU.
# usage: scripts/qemu_tree.sh BUILD QEMU     (e.g. build-aarch64 qemu-aarch64)
set -eu
build=$(cd "${1:?usage: $0 BUILD QEMU}" && pwd)
qemu=${2:?usage: $0 BUILD QEMU}
command -v "$qemu" >/dev/null || { echo "$0: $qemu not found (Debian: apt-get install qemu-user)" >&2; exit 1; }
tree=$build/qemu
rm -rf "$tree"
mkdir -p "$tree/examples"
for f in "$build"/*; do
    name=$(basename "$f")
    case $name in qemu|nerve|onnx_node_tests|examples) continue ;; esac
    ln -s "$f" "$tree/$name"
done
wrap() { # wrap REAL WRAPPER
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$qemu" "$1" > "$2"
    chmod +x "$2"
}
for p in nerve onnx_node_tests; do
    if [ -f "$build/$p" ]; then wrap "$build/$p" "$tree/$p"; fi
done
for e in "$build"/examples/*; do
    if [ -f "$e" ]; then wrap "$e" "$tree/examples/$(basename "$e")"; fi
done
