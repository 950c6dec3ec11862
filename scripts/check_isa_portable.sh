#!/usr/bin/env bash
# Proves that a run under NERVE_ISA=portable executes no AVX2 or AVX-512 code of nerve's own:
# every function of the test binary that uses a ymm or zmm register gets a breakpoint under
# gdb, then the kernel and operator tests run with NERVE_ISA=portable; any breakpoint hit
# fails the check (naming the function). Also checks that each such function is a named
# AVX2/AVX-512 copy (its name says avx2 or avx512). x86-64 only; needs gdb and objdump.
# usage: scripts/check_isa_portable.sh BUILD_DIR [TEST FILTERS...]
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [TESTS...]}
shift
tests=${*:-test_isa test_gemm test_winograd test_conv_direct test_ops_}
bin=$build/nerve_tests
for tool in gdb objdump; do
    command -v $tool >/dev/null || { echo "check_isa_portable: SKIP ($tool not installed)"; exit 0; }
done
[ "$(uname -m)" = x86_64 ] || { echo "check_isa_portable: SKIP (not x86-64)"; exit 0; }
fns=$(objdump -d --no-show-raw-insn "$bin" |
      awk '/^[0-9a-f]+ <.*>:$/ {a=$1; f=$2} /%[yz]mm[0-9]/ {print a, f}' | sort -u)
n=$(printf '%s\n' "$fns" | grep -c . || true)
[ "$n" -gt 0 ] || { echo "check_isa_portable: no vector functions found in $bin"; exit 1; }
bad=$(printf '%s\n' "$fns" | grep -v -E 'avx2|avx512' || true)
if [ -n "$bad" ]; then
    echo "check_isa_portable: FAIL: vector code outside a named AVX2/AVX-512 copy:"; echo "$bad"; exit 1
fi
cmds=$(mktemp); log=$(mktemp)
trap 'rm -f "$cmds" "$log"' EXIT
printf '%s\n' "$fns" | sed 's/.*<\(.*\)>:/break *'"'"'\1'"'"'/' > "$cmds"
echo "run" >> "$cmds"
NERVE_ISA=portable NERVE_TEST_INPROCESS=1 NERVE_BUILD_DIR=$build timeout 1200 gdb -q -batch -x "$cmds" --args "$bin" $tests > "$log" 2>&1 || true
if grep -q "hit Breakpoint\|^Breakpoint [0-9]*, " "$log"; then
    echo "check_isa_portable: FAIL: vector code ran under NERVE_ISA=portable:"
    grep -A1 "hit Breakpoint\|^Breakpoint [0-9]*, " "$log" | head -5
    exit 1
fi
# not anchored at the line's start: gdb's "[Thread ... exited]" notes can land in front of it
summary=$(grep -oE "[0-9]+ passed, [0-9]+ failed" "$log" | tail -1 || true)   # none: say why below
case "$summary" in
    *" 0 failed") echo "check_isa_portable: OK: $n AVX2/AVX-512 functions, none ran under NERVE_ISA=portable ($summary)";;
    *) echo "check_isa_portable: FAIL: tests did not pass under gdb"; tail -20 "$log"; exit 1;;
esac
