#!/usr/bin/env bash
# make onnx-export-check (docs/onnx.md, "Export"): every cfg of models/ (or the NAMEs given),
# trained briefly (bench/onnx_export_check: STEPS steps at batch 2 on its own data) and
# exported, and the layer-variety models of bench/onnx/variants/ (random weights: every
# convolution, pooling, upsample, activation and recurrent form) are run by ONNX Runtime (npm onnxruntime-node, bench/onnx/ort_check.js; `npm
# install onnxruntime-node --ignore-scripts` in bench/onnx first) on the batch nerve ran,
# every output within 1e-5 of nerve's (relative to max(1, max|nerve|)), and checked by
# Debian's python3-onnx (onnx.checker.check_model, full_check=True). Prints one line per
# model and the counts; exits 1 if any model fails, 77 (skipped) when a reference is absent.
# usage: bench/onnx/export_check.sh [NAME...]   (BUILD=build, OUT=/tmp/nerve-onnx-export,
# STEPS=2)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=${OUT:-/tmp/nerve-onnx-export}
STEPS=${STEPS:-2}
PY=/usr/bin/python3
skip=""
command -v node >/dev/null || skip="node (Node.js) is not installed"
[ -z "$skip" ] && [ ! -d bench/onnx/node_modules/onnxruntime-node ] &&
    skip="ONNX Runtime is absent: cd bench/onnx && npm install onnxruntime-node --ignore-scripts"
[ -z "$skip" ] && ! $PY -c 'import onnx' 2>/dev/null && skip="python3-onnx is not installed (apt-get install python3-onnx)"
if [ -n "$skip" ]; then
    echo "onnx-export-check: skipped: $skip"
    exit 77
fi
mkdir -p "$OUT"
if [ $# -gt 0 ]; then names="$*"; else
    names=$(ls models/*.cfg bench/onnx/variants/*.cfg | sed 's|.*/||; s|\.cfg$||')
fi
total=0; agree=0; checked=0; failed=""
printf "%-16s %-40s %-22s %-22s %s\n" model trained "output 0 max|d| (scale)" "output 1 max|d| (scale)" checker
for n in $names; do
    total=$((total + 1))
    rm -f "$OUT/$n".*
    cfg=models/$n.cfg steps=$STEPS
    [ -f "$cfg" ] || { cfg=bench/onnx/variants/$n.cfg; steps=0; }
    train=$($BUILD/bench/onnx_export_check "$cfg" "$OUT" "$n" "$steps" 2>&1)
    if [ $? -ne 0 ]; then
        printf "%-16s export failed: %s\n" "$n" "$train"
        failed="$failed $n"
        continue
    fi
    train=$(echo "$train" | sed "s/^$n: //; s/, exported.*//" | cut -c1-40)
    wants="$OUT/$n.out0.bin"
    [ -f "$OUT/$n.out1.bin" ] && wants="$wants $OUT/$n.out1.bin"
    ort=$(node bench/onnx/ort_check.js "$OUT/$n.onnx" "$OUT/$n.input.bin" "$OUT/$n.shape" $wants 2>&1)
    ort_rc=$?
    o0=$(echo "$ort" | awk '$1=="output" && $2==0 {print $4" ("$5")"}')
    o1=$(echo "$ort" | awk '$1=="output" && $2==1 {print $4" ("$5")"}')
    chk=$($PY -c 'import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print("ok")' "$OUT/$n.onnx" 2>&1 | tail -1)
    [ "$chk" = ok ] && checked=$((checked + 1))
    if [ $ort_rc -eq 0 ]; then agree=$((agree + 1)); else failed="$failed $n"; o0=${o0:-$(echo "$ort" | head -1 | cut -c1-60)}; fi
    [ "$chk" = ok ] || failed="$failed $n"
    printf "%-16s %-40s %-22s %-22s %s\n" "$n" "$train" "${o0:--}" "${o1:--}" "$chk"
done
echo "onnx-export-check: $agree of $total models agree with ONNX Runtime within 1e-5; the onnx checker (full_check) accepts $checked of $total"
[ -z "$failed" ] || { echo "failed:$failed"; exit 1; }
