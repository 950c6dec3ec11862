#!/usr/bin/env bash
# Installs the Debian packages nerve needs to build, test and train (run as root or with sudo).
# openmpi-bin and libopenmpi-dev: data-parallel training under mpirun (docs/distributed.md).
# clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes, which
# --no-install-recommends would leave out) are for `make CC=clang` and `make fuzz`.
# gcc-aarch64-linux-gnu, gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm build
# and run exported C models (make export-check, docs/export-c.md).
# libonnx-testdata: the ONNX backend tests that make test and make onnx-test run.
# qemu-user and the arm64 builds of zlib, libpng and libjpeg (Debian multiarch: the arm64
# architecture is added to dpkg): the aarch64 cross build and its tests (make test-aarch64,
# docs/arm.md). gdb: make check-isa's proof that NERVE_ISA=portable runs no AVX code.
# Optional: NERVE_BENCH_DEPS=1 also installs python3-torch, the reference for `make bench`,
# python3-onnx (the ONNX checker and exporter of bench/onnx/) and libopenblas0-pthread: without
# it Debian's libtorch resolves libblas.so.3 to the reference BLAS and the bench's PyTorch
# column is several times too slow (bench/torch_blas.py says which BLAS it loaded).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
pkgs="build-essential zlib1g-dev libpng-dev libjpeg62-turbo-dev pkg-config dataset-fashion-mnist python3-sklearn clang libclang-rt-14-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm openmpi-bin libopenmpi-dev libonnx-testdata qemu-user gdb zlib1g-dev:arm64 libpng-dev:arm64 libjpeg62-turbo-dev:arm64"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64 # (apt-get update below then fetches its lists)
fi
if [ "${NERVE_BENCH_DEPS:-0}" = 1 ]; then pkgs="$pkgs python3-torch python3-torchvision python3-onnx libopenblas0-pthread"
    command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# ONNX Runtime, the bench's inference reference, from npm (no install scripts: the CPU
# binaries ship in the package)
if [ "${NERVE_BENCH_DEPS:-0}" = 1 ] && [ ! -d "$(dirname "$0")/../bench/onnx/node_modules/onnxruntime-node" ]; then
    (cd "$(dirname "$0")/../bench/onnx" && npm install --silent onnxruntime-node --ignore-scripts)
fi
