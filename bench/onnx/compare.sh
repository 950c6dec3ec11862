#!/usr/bin/env bash
# The torchvision models and the LSTM of docs/onnx.md, exported by python3-torch
# (export_models.py), run by nerve (bench/onnx_latency.c) and by ONNX Runtime (npm
# onnxruntime-node, ort_run.js; `npm install onnxruntime-node --ignore-scripts` in this
# directory first). Prints per model: the largest |nerve - ORT| relative to the largest
# |ORT| output, the same against PyTorch, and batch-1 latencies (median of REPEAT runs,
# one thread each) of nerve, ONNX Runtime and PyTorch; without ONNX Runtime its columns
# show "-".
# usage: bench/onnx/compare.sh [REPEAT] [NAME...]   (BUILD=build, OUT=/tmp/nerve-onnx-models;
# models already exported there are reused)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=${OUT:-/tmp/nerve-onnx-models}
PY=/usr/bin/python3
REPEAT=${1:-5}
shift || true
names=${*:-resnet18 mobilenet_v2 squeezenet1_0 googlenet vgg11 alexnet lstm}
missing=""
for n in $names; do [ -f "$OUT/$n.onnx" ] || missing="$missing $n"; done
mkdir -p "$OUT"
if [ -n "$missing" ] && ! $PY bench/onnx/export_models.py "$OUT" $missing >"$OUT/export.log" 2>&1; then
    echo "onnx: exporting$missing with python3-torch failed:"; tail -5 "$OUT/export.log"; exit 1
fi
printf "%-14s %14s %14s %10s %10s %10s\n" model "max|d|/max|y|" "vs pytorch" nerve_ms ort_ms torch_ms
for n in $names; do
    NERVE_THREADS=1 $BUILD/bench/onnx_latency "$OUT/$n.onnx" "$OUT/$n.input.bin" "$OUT/$n.nerve.bin" "$REPEAT" >"$OUT/$n.nerve.log" 2>&1
    rm -f "$OUT/$n.ort.log" "$OUT/$n.ort.bin"
    if [ -d bench/onnx/node_modules/onnxruntime-node ] && command -v node >/dev/null; then
        node bench/onnx/ort_run.js "$OUT/$n.onnx" "$OUT/$n.input.bin" "$OUT/$n.shape" "$OUT/$n.ort.bin" "$REPEAT" >"$OUT/$n.ort.log" 2>&1
    fi
    $PY - "$OUT" "$n" "$REPEAT" <<'PYEOF'
import sys, time, numpy as np, re
out, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(s):
    try: return np.fromfile(f"{out}/{n}.{s}.bin", dtype=np.float32)
    except OSError: return None
def ms(s):
    try: m = re.search(r"_ms ([0-9.]+)", open(f"{out}/{n}.{s}.log").read())
    except OSError: return "-"
    return m.group(1) if m else "failed"
a, o, t = load("nerve"), load("ort"), load("torch")
def rel(x, ref):
    if x is None or ref is None or x.size != ref.size: return "-"
    return "%.2e" % (np.abs(x - ref).max() / max(np.abs(ref).max(), 1e-30))
import torch
torch.set_num_threads(1)
sys.path.insert(0, "bench/onnx")
import export_models as em
torch.manual_seed(0)
model, shape = em.build(n)
model.eval()
x = torch.randn(*shape)
times = []
with torch.no_grad():
    model(x)
    for _ in range(repeat):
        t0 = time.perf_counter(); model(x); times.append((time.perf_counter() - t0) * 1e3)
print("%-14s %14s %14s %10s %10s %10.3f" % (n, rel(a, o), rel(a, t), ms("nerve"), ms("ort"), sorted(times)[len(times) // 2]))
PYEOF
done
