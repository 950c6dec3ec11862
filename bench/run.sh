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
row "(load average at the start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)" "" "" ""

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
# The BLAS PyTorch's products really run in (Debian's libtorch links libblas.so.3, which
# resolves to the reference BLAS unless OpenBLAS is installed: NERVE_BENCH_DEPS=1
# scripts/deps.sh installs libopenblas0-pthread).
if [ $have_torch = 1 ]; then
    blas=$($PY bench/torch_blas.py 2>/dev/null)
    row "  (PyTorch's BLAS: $(echo "$blas" | awk '{print $3}'))" "" "" ""
    echo "    $(echo "$blas" | awk '{print $2}')"
    case "$blas" in *reference*) echo "    WARNING: the reference BLAS makes PyTorch's products slow and every ratio above unfair; install libopenblas0-pthread";; esac
fi

# 2.-4. Training throughput (samples/s) and 5. batch-1 latency; 6. peak resident memory.
# nerve_cmd / torch_cmd print "<key> <value>" lines (and peak_rss_mb).
declare -A RSS_N RSS_T
LAST_N=""
measure() { # label key direction rsskey nerve_cmd torch_cmd (sets LAST_N: nerve's figure)
    local label=$1 key=$2 dir=$3 rk=$4 nout tout n r
    nout=$(eval "$5")
    n=$(echo "$nout" | field "$key")
    LAST_N=$n
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
declare -A QUIET
S=$(steps 300 30)
for t in 1 2; do
    measure "LeNet-5 train b64 ${t}T samples/s" samples_per_sec higher "lenet_$t" \
        "$BUILD/bench/bench_cfg models/lenet5.cfg train 64 $t $S" "$PY bench/torch_conv.py lenet5 $t $S"
    QUIET[lenet5_$t]=$LAST_N
done
S=$(steps 20 3)
for t in 1 2; do
    measure "ResNet-20 32x32x3 train b128 ${t}T samples/s" samples_per_sec higher "resnet20_$t" \
        "$BUILD/bench/bench_cfg $cfgdir/resnet20.cfg train 128 $t $S" "$PY bench/torch_conv.py resnet20 $t $S"
    QUIET[resnet20_$t]=$LAST_N
done
# CIFAR-shaped training beyond ResNet-20: a MobileNetV2-style network (depthwise
# convolutions) and a VGG-style one (bench/cfg/; the same networks in torch_conv.py).
S=$(steps 10 2)
measure "MobileNetV2-style 32x32x3 train b128 2T /s" samples_per_sec higher "" \
    "$BUILD/bench/bench_cfg bench/cfg/mobilenetv2_cifar.cfg train 128 2 $S" "$PY bench/torch_conv.py mobilenetv2 2 $S"
measure "VGG-style 32x32x3 train b128 2T samples/s" samples_per_sec higher "" \
    "$BUILD/bench/bench_cfg bench/cfg/vgg_cifar.cfg train 128 2 $S" "$PY bench/torch_conv.py vgg 2 $S"
# Contention: one core kept busy by a spinning process started here, on top of whatever
# else the machine runs (the load average is printed). nerve on two threads against itself
# on one thread in the same conditions (two threads should never lose to one), the same
# ratio without the spinner from the rows above, and PyTorch on two threads under the
# spinner.
sh -c 'while :; do :; done' &
spinner=$!
trap 'kill $spinner 2>/dev/null; rm -rf "$cfgdir"' EXIT
row "(one core busy: a spinning process; load $(cut -d' ' -f1-3 /proc/loadavg))" "" "" ""
for net in lenet5 resnet20; do
    if [ $net = lenet5 ]; then S=$(steps 300 30); cfg=models/lenet5.cfg; b=64; label="LeNet-5 train b64"
    else S=$(steps 20 3); cfg=$cfgdir/resnet20.cfg; b=128; label="ResNet-20 train b128"; fi
    n1=$($BUILD/bench/bench_cfg $cfg train $b 1 $S | field samples_per_sec)
    measure "$label, core busy: 2T samples/s" samples_per_sec higher "" \
        "$BUILD/bench/bench_cfg $cfg train $b 2 $S" "$PY bench/torch_conv.py $net 2 $S"
    row "$label, core busy: nerve 2T vs 1T" "$LAST_N" "$n1" "$(ratio "$LAST_N" "$n1" higher)"
    row "$label, no spinner: nerve 2T vs 1T" "${QUIET[${net}_2]}" "${QUIET[${net}_1]}" \
        "$(ratio "${QUIET[${net}_2]}" "${QUIET[${net}_1]}" higher)"
done
kill $spinner 2>/dev/null
row "(spinner stopped; load $(cut -d' ' -f1-3 /proc/loadavg))" "" "" ""
S=$(steps 500 50)
measure "LeNet-5 latency b1 2T ms (median)" latency_ms lower "" \
    "$BUILD/bench/bench_cfg models/lenet5.cfg latency 1 2 $S" "$PY bench/torch_conv.py latency_lenet5 2 $S"
LENET_B1_2=$LAST_N
S=$(steps 30 5)
measure "ResNet-18 224x224 latency b1 2T ms (median)" latency_ms lower "" \
    "$BUILD/bench/bench_cfg $cfgdir/resnet18.cfg latency 1 2 $S" "$PY bench/torch_conv.py latency_resnet18 2 $S"
R18_B1_2=$LAST_N
measure "ResNet-18 224x224 latency b1 1T ms (median)" latency_ms lower "" \
    "$BUILD/bench/bench_cfg $cfgdir/resnet18.cfg latency 1 1 $S" "$PY bench/torch_conv.py latency_resnet18 1 $S"
R18_B1_1=$LAST_N
S=$(steps 12 3)
measure "ResNet-18 224x224 inference b8 2T samples/s" samples_per_sec higher "" \
    "$BUILD/bench/bench_cfg $cfgdir/resnet18.cfg latency 8 2 $S" "$PY bench/torch_conv.py latency_resnet18 2 $S 8"
R18_B8_2=$LAST_N
# ONNX Runtime (npm onnxruntime-node in bench/onnx, driven by bench/onnx/ort_bench.js) as the
# inference reference: the same networks exported by PyTorch (torch_conv.py export_*), the
# same thread counts. The reference column is ONNX Runtime's here.
if [ $have_torch = 1 ] && command -v node >/dev/null && [ -d bench/onnx/node_modules/onnxruntime-node ] &&
    $PY bench/torch_conv.py export_lenet5 1 "$cfgdir/lenet5.onnx" >/dev/null 2>&1 &&
    $PY bench/torch_conv.py export_resnet18 1 "$cfgdir/resnet18.onnx" >/dev/null 2>&1; then
    ort() { node bench/onnx/ort_bench.js "$cfgdir/$1.onnx" "$2" "$3" "$4" | field "$5"; }
    S=$(steps 500 50)
    o=$(ort lenet5 1,1,28,28 2 $S latency_ms)
    row "LeNet-5 latency b1 2T ms vs ONNX Runtime" "$LENET_B1_2" "$o" "$(ratio "$LENET_B1_2" "$o" lower)"
    S=$(steps 30 5)
    o=$(ort resnet18 1,3,224,224 2 $S latency_ms)
    row "ResNet-18 latency b1 2T ms vs ONNX Runtime" "$R18_B1_2" "$o" "$(ratio "$R18_B1_2" "$o" lower)"
    o=$(ort resnet18 1,3,224,224 1 $S latency_ms)
    row "ResNet-18 latency b1 1T ms vs ONNX Runtime" "$R18_B1_1" "$o" "$(ratio "$R18_B1_1" "$o" lower)"
    S=$(steps 12 3)
    o=$(ort resnet18 8,3,224,224 2 $S samples_per_sec)
    row "ResNet-18 b8 2T samples/s vs ONNX Runtime" "$R18_B8_2" "$o" "$(ratio "$R18_B8_2" "$o" higher)"
else
    row "ONNX Runtime rows" "" "(skipped)" ""
    echo "    (they need python3-torch, node and, in bench/onnx, npm install onnxruntime-node --ignore-scripts)"
fi
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
row "peak RSS MB, LeNet-5 training 2T (above)" "${RSS_N[lenet_2]:-}" "${RSS_T[lenet_2]:-(no torch)}" \
    "$(ratio "${RSS_N[lenet_2]:-}" "${RSS_T[lenet_2]:-}" lower)"
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
