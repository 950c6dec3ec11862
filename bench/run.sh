#!/usr/bin/env bash
# make bench: nerve against PyTorch (Debian's python3-torch) on the same machine, in the same
# run. Prints one table: workload | nerve | pytorch | ratio (nerve relative to PyTorch; the
# last column says which direction is better). Without torch the reference column says so.
#
# Environment: BUILD (default build), QUICK=1 (fewer steps, for a smoke test).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
QUICK=${QUICK:-0}
have_torch=0
if [ -x $PY ] && $PY -c "import torch" 2>/dev/null; then have_torch=1; fi
steps() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
# the ResNets at their native input, as bench/torch_conv.py builds them (bench/native_cfg.sh)
cfgdir=$(mktemp -d)
trap 'rm -rf "$cfgdir"' EXIT
bench/native_cfg.sh models/resnet20.cfg "$cfgdir/resnet20.cfg" 32 32 3
bench/native_cfg.sh models/resnet18.cfg "$cfgdir/resnet18.cfg" 224 224 3

field() { awk -v k="$1" '$1 == k { print $2; exit }'; }
# ratio A B higher|lower: A/B, marked with the better direction
ratio() {
    if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return; fi
    awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { printf "%.2fx %s", a / b, (d == "higher" ? "(>1 better)" : "(<1 better)") }'
}
row() { printf "%-44s %16s %16s   %s\n" "$1" "$2" "$3" "$4"; }

row "workload" "nerve" "pytorch" "nerve/pytorch"

# 1. SGEMM: GFLOP/s and the fraction of the FMA peak measured in the same run.
gb=$($BUILD/bench/gemm_bench $(steps 10 2) 2>/dev/null)
peak=$(echo "$gb" | field peak_gflops_per_core)
for t in 1 2; do
    tg=""
    [ $have_torch = 1 ] && tg=$($PY bench/torch_gemm.py $t 256 1024 2048)
    for s in 256 1024 2048; do
        n=$(echo "$gb" | awk -v s=$s -v t=$t '$1 == "sgemm" && $2 == s && $3 == t { print $4; exit }')
        f=$(echo "$gb" | awk -v s=$s -v t=$t '$1 == "sgemm" && $2 == s && $3 == t { printf "%.0f%%", 100 * $5; exit }')
        r=$(echo "$tg" | awk -v s=$s '$1 == "sgemm" && $2 == s { print $4; exit }')
        row "SGEMM ${s}^3 ${t}T GFLOP/s (of peak)" "$n ($f)" "${r:-(no torch)}" "$(ratio "$n" "$r" higher)"
    done
done
[ -n "$peak" ] && row "  (FMA peak per core, measured)" "$peak" "" ""

# 2.-4. Training throughput (samples/s) and 5. batch-1 latency; 6. peak resident memory.
# nerve_cmd / torch_cmd print "<key> <value>" lines (and peak_rss_mb).
declare -A RSS_N RSS_T
measure() { # label key direction rsskey nerve_cmd torch_cmd
    local label=$1 key=$2 dir=$3 rk=$4 nout tout n r
    nout=$(eval "$5")
    n=$(echo "$nout" | field "$key")
    if [ $have_torch = 1 ]; then tout=$(eval "$6"); r=$(echo "$tout" | field "$key"); else tout=""; r=""; fi
    row "$label" "$n" "${r:-(no torch)}" "$(ratio "$n" "$r" "$dir")"
    if [ -n "$rk" ]; then
        RSS_N[$rk]=$(echo "$nout" | field peak_rss_mb)
        RSS_T[$rk]=$(echo "$tout" | field peak_rss_mb)
    fi
}
for t in 1 2; do
    S=$(steps 400 50)
    measure "MLP 784-512-256-10 train b64 ${t}T /s" samples_per_sec higher "" \
        "NERVE_THREADS=$t $BUILD/bench/bench_mlp $t $S" "$PY bench/torch_mlp.py $t $S"
done
S=$(steps 300 30)
measure "LeNet-5 train b64 2T samples/s" samples_per_sec higher lenet \
    "$BUILD/bench/bench_cfg models/lenet5.cfg train 64 2 $S" "$PY bench/torch_conv.py lenet5 2 $S"
S=$(steps 20 3)
for t in 1 2; do
    measure "ResNet-20 32x32x3 train b128 ${t}T samples/s" samples_per_sec higher "resnet20_$t" \
        "$BUILD/bench/bench_cfg $cfgdir/resnet20.cfg train 128 $t $S" "$PY bench/torch_conv.py resnet20 $t $S"
done
S=$(steps 500 50)
measure "LeNet-5 latency b1 2T ms (median)" latency_ms lower "" \
    "$BUILD/bench/bench_cfg models/lenet5.cfg latency 1 2 $S" "$PY bench/torch_conv.py latency_lenet5 2 $S"
S=$(steps 30 5)
measure "ResNet-18 224x224 latency b1 2T ms (median)" latency_ms lower "" \
    "$BUILD/bench/bench_cfg $cfgdir/resnet18.cfg latency 1 2 $S" "$PY bench/torch_conv.py latency_resnet18 2 $S"
# int8 inference (docs/quantize.md): the same model quantised against its float self, in one
# process, on every kernel path of this CPU: batch-1 latency and batch-64 throughput. The
# reference column is nerve's float model, not PyTorch.
S=$(steps 400 40)
for cfg in lenet5 mlp resnet_small; do
    out=$($BUILD/bench/q8_bench models/$cfg.cfg 1 "$S")
    while read -r _ isa q8 _ b1f _ b1q _ sf _ sq; do
        row "$cfg int8 b1 1T ms vs float ($isa/$q8)" "$b1q" "$b1f" "$(ratio "$b1q" "$b1f" lower)"
        row "$cfg int8 b64 1T samples/s vs float ($isa/$q8)" "$sq" "$sf" "$(ratio "$sq" "$sf" higher)"
    done <<< "$(echo "$out" | grep '^q8 ')"
done
row "peak RSS MB, LeNet-5 training (above)" "${RSS_N[lenet]:-}" "${RSS_T[lenet]:-(no torch)}" \
    "$(ratio "${RSS_N[lenet]:-}" "${RSS_T[lenet]:-}" lower)"
row "peak RSS MB, ResNet-20 training 2T (above)" "${RSS_N[resnet20_2]:-}" "${RSS_T[resnet20_2]:-(no torch)}" \
    "$(ratio "${RSS_N[resnet20_2]:-}" "${RSS_T[resnet20_2]:-}" lower)"

# 7. Character LSTM (H 128, one-hot, T 64, B 32, Adam, clip 5) on GPL-3, the same steps in
# both: held-out bits per character (equal quality = 1.00) and characters per second.
S=$(steps 600 60)
out=$(NERVE_THREADS=2 $BUILD/bench/bench_charlm 2 $S)
nb=$(echo "$out" | field bpc); nc=$(echo "$out" | field chars_per_sec)
rb=""; rc=""
if [ $have_torch = 1 ]; then
    out=$($PY bench/torch_charlm.py 2 $S); rb=$(echo "$out" | field bpc); rc=$(echo "$out" | field chars_per_sec)
fi
row "char-LSTM GPL-3 2T held-out bits/char" "$nb" "${rb:-(no torch)}" "$(ratio "$nb" "$rb" lower)"
row "char-LSTM GPL-3 2T chars/s" "$nc" "${rc:-(no torch)}" "$(ratio "$nc" "$rc" higher)"

# 8. Unsupervised learning (docs/unsupervised.md), against numpy and sklearn (Debian's
# python3-numpy, python3-sklearn) on the same data in the same run: PCA of the 60,000
# Fashion-MNIST training images (784-D; eigenvalues compared to numpy's float64 ones), and
# Barnes-Hut t-SNE of 5,000 test images after PCA to 50 (perplexity 30, PCA initialisation,
# the same iterations): seconds, and the exact KL(P||Q) of both embeddings under sklearn's P.
if $PY -c "import numpy, sklearn" 2>/dev/null; then
    row "unsupervised (reference column: numpy / sklearn)" "" "" ""
    tmp=$(mktemp -d)
    N=$(steps 60000 10000)
    nout=$($BUILD/bench/unsup_bench pca "$tmp" "$N")
    rout=$($PY bench/unsup_compare.py pca "$tmp" "$N")
    row "PCA ${N}x784 seconds (numpy: cov + eigvalsh)" "$(echo "$nout" | field pca_seconds)" \
        "$(echo "$rout" | field numpy_seconds)" "$(ratio "$(echo "$nout" | field pca_seconds)" "$(echo "$rout" | field numpy_seconds)" lower)"
    row "  eigenvalues within 1e-4 relative of numpy" "$(echo "$rout" | awk '$1 == "eig_within_1e-4" { print $2 " of " $4 }')" "" ""
    row "  largest relative error (eigenvalues > 1e-6 max)" "$(echo "$rout" | field eig_max_rel_err_above_1e-6)" "" ""
    N=$(steps 5000 1000); IT=$(steps 1000 300)
    nout=$($BUILD/bench/unsup_bench tsne "$tmp" "$N" "$IT")
    rout=$($PY bench/unsup_compare.py tsne "$tmp" "$IT")
    ns=$(echo "$nout" | field tsne_seconds); rs=$(echo "$rout" | field sklearn_seconds)
    nk=$(echo "$rout" | field nerve_kl_exact); rk=$(echo "$rout" | field sklearn_kl_exact)
    row "t-SNE ${N} pts ${IT} it seconds (vs sklearn)" "$ns" "$rs" "$(ratio "$ns" "$rs" lower)"
    row "  final KL(P||Q), exact, sklearn's P" "$nk" "$rk" "$(ratio "$nk" "$rk" lower)"
    row "  KL as each reports it" "$(echo "$nout" | field tsne_kl)" "$(echo "$rout" | field sklearn_kl_reported)" ""
    rm -rf "$tmp"
else
    row "PCA / t-SNE" "" "(no numpy/sklearn)" ""
fi

# 9. Data-parallel scaling under MPI (a build with MPI only): 2 ranks x 1 thread against
# 1 rank x 1 and x 2 threads on ResNet-20.
if [ -x "$(command -v mpirun)" ] && $BUILD/nerve version 2>&1 | grep -q "mpirun: built in"; then
    echo
    BUILD=$BUILD bench/dist.sh "$(steps 12 3)"
fi

# 8. ONNX (docs/onnx.md): the torchvision models and an LSTM exported by python3-torch, run
# by nerve and by ONNX Runtime (npm onnxruntime-node): output agreement and batch-1
# latency of nerve, ONNX Runtime and PyTorch (one thread each), its own table. The models
# come from python3-torch (and its exporter needs python3-onnx); without ONNX Runtime the
# nerve and PyTorch columns still print, its own shows "-".
echo
if [ $have_torch = 1 ] && $PY -c "import onnx" 2>/dev/null; then
    if ! command -v node >/dev/null; then
        echo "onnx: the ONNX Runtime column skipped: node (Node.js) is not installed"
    elif [ ! -d bench/onnx/node_modules/onnxruntime-node ]; then
        echo "onnx: the ONNX Runtime column skipped: in bench/onnx, npm install onnxruntime-node --ignore-scripts"
    fi
    BUILD=$BUILD bench/onnx/compare.sh "$(steps 5 1)"
else
    echo "onnx: skipped (the models are exported by python3-torch with python3-onnx: apt-get"
    echo "      install python3-torch python3-torchvision python3-onnx)"
fi
