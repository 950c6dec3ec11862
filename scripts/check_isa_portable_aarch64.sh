#!/usr/bin/env bash
# The aarch64 counterpart of check_isa_portable.sh, under qemu-aarch64: proves that a run
# under NERVE_ISA=portable executes none of nerve's NEON functions. On aarch64 Advanced SIMD
# is the baseline (the compiler vectorises plain C with it), so the NEON path is known by
# name: every function of libnerve.a whose name says neon (the GEMM micro-kernel, the
# Winograd transforms and products, the direct convolution). qemu logs each block of guest
# code it translates with its function (-d in_asm); the kernel tests run once with
# NERVE_ISA=neon, which must run some of those functions (or the check could not fail),
# and once with NERVE_ISA=portable, which must run none. Both runs must pass.
# usage: scripts/check_isa_portable_aarch64.sh BUILD_DIR QEMU [TEST FILTERS...]
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR QEMU [TESTS...]}
qemu=${2:?usage: $0 BUILD_DIR QEMU [TESTS...]}
shift 2
tests=${*:-test_isa test_gemm test_winograd test_conv_direct.c}
nm=${NM:-aarch64-linux-gnu-nm}
fns=$($nm "$build/libnerve.a" 2>/dev/null | awk '$2 ~ /^[tT]$/ && $3 ~ /neon/ {print $3}' | sort -u)
n=$(printf '%s\n' "$fns" | grep -c . || true)
[ "$n" -gt 0 ] || { echo "check_isa_portable_aarch64: no NEON functions in $build/libnerve.a"; exit 1; }
scripts/qemu_tree.sh "$build" "$qemu" # tests that run nerve by path run it under qemu
log=$(mktemp); out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT
ran() { # the NEON functions qemu translated in the run logged in $log
    grep '^IN: ' "$log" | sed 's/^IN: //; s/\..*//' | sort -u | grep -Fx -f <(printf '%s\n' "$fns") || true
}
for isa in neon portable; do
    rm -f "$log"
    NERVE_ISA=$isa NERVE_TEST_INPROCESS=1 NERVE_UNDER_QEMU=1 NERVE_BUILD_DIR=$build/qemu \
        "$qemu" -d in_asm -D "$log" "$build/nerve_tests" $tests > "$out" 2>&1 || true
    summary=$(grep -oE "[0-9]+ passed, [0-9]+ failed" "$out" | tail -1 || true)
    case "$summary" in
        *" 0 failed") ;;
        *) echo "check_isa_portable_aarch64: FAIL: the tests did not pass under NERVE_ISA=$isa"; tail -20 "$out"; exit 1;;
    esac
    hit=$(ran)
    if [ $isa = neon ] && [ -z "$hit" ]; then
        echo "check_isa_portable_aarch64: FAIL: NERVE_ISA=neon ran none of the $n NEON functions (the check sees nothing)"; exit 1
    fi
    if [ $isa = portable ] && [ -n "$hit" ]; then
        echo "check_isa_portable_aarch64: FAIL: NEON code ran under NERVE_ISA=portable:"; echo "$hit"; exit 1
    fi
    [ $isa = neon ] && neon_ran=$(printf '%s\n' "$hit" | grep -c .)
done
echo "check_isa_portable_aarch64: OK: $n NEON functions, $neon_ran of them ran under NERVE_ISA=neon, none under NERVE_ISA=portable ($summary)"
