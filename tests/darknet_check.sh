#!/bin/sh
# Loads every darknet cfg in CFG_DIR (Debian's darknet package: 45 files) unedited in nerve and
# in libdarknet's own parser, and compares the layer count, each layer's type, element count
# and (where darknet states one) C x H x W shape, and the parameter total (weights, biases,
# batch-norm scales; not the running statistics). Prints one line per cfg and "N/M match".
# Usage: tests/darknet_check.sh BUILD_DIR [CFG_DIR]   (run by `make darknet-check`)
set -u
build=${1:-build}
dir=${2:-/usr/share/darknet/cfg}
if [ ! -x "$build/dn_ref" ]; then
    echo "darknet-check: $build/dn_ref is missing (needs Debian's darknet package)"; exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0; ok=0
for cfg in "$dir"/*.cfg; do
    n=$((n + 1))
    name=$(basename "$cfg")
    "$build/dn_ref" shapes "$cfg" >"$tmp/dn" 2>/dev/null
    "$build/nerve_shapes" "$cfg" >"$tmp/nv" 2>&1
    verdict=$(awk -v name="$name" '
        FNR == 1 { file++ }
        file == 1 { dn[FNR] = $0; ndn = FNR; next }
        { nv[FNR] = $0; nnv = FNR }
        END {
            split(nv[1], h, " ")
            if (h[1] == "error") { sub(/^error /, "", nv[1]); print "FAIL " nv[1]; exit }
            if (dn[1] != nv[1]) { print "FAIL layer count: darknet " dn[1] ", nerve " nv[1]; exit }
            for (i = 2; i < ndn; i++) {
                split(dn[i], a, " "); split(nv[i], b, " ")
                if (a[2] != b[2] || a[3] != b[4 - 1] + 0 && a[3] != b[3]) {
                    print "FAIL layer " a[1] ": darknet " dn[i] " / nerve " nv[i]; exit }
                if (a[4] > 0 && a[4] * a[5] * a[6] == a[3] &&
                    (a[4] != b[4] || a[5] != b[5] || a[6] != b[6])) {
                    print "FAIL layer " a[1] " shape: darknet " dn[i] " / nerve " nv[i]; exit }
                if (a[7] != b[7]) {
                    print "FAIL layer " a[1] " params: darknet " dn[i] " / nerve " nv[i]; exit }
            }
            if (dn[ndn] != nv[nnv]) { print "FAIL total: darknet " dn[ndn] ", nerve " nv[nnv]; exit }
            print "ok " (ndn - 2) " layers, " dn[ndn]
        }' "$tmp/dn" "$tmp/nv")
    case $verdict in ok*) ok=$((ok + 1));; esac
    printf '%-24s %s\n' "$name" "$verdict"
done
echo "darknet-check: $ok/$n cfgs match darknet's parser"
# nerve's .weights in darknet: nerve writes its weights of tests/data/darknet/small.cfg, an
# input and its output; darknet loads the weights and runs the same input
small=tests/data/darknet/small.cfg
if "$build/nerve_shapes" write "$small" "$tmp/nerve.weights" "$tmp/in.bin" "$tmp/nerve.bin" &&
    "$build/dn_ref" forward "$small" "$tmp/nerve.weights" "$tmp/in.bin" "$tmp/dn.bin" 2>/dev/null &&
    cmp=$("$build/nerve_shapes" compare "$tmp/nerve.bin" "$tmp/dn.bin" 1e-4); then
    echo "darknet-check: nerve's .weights of $small in darknet: output agrees ($cmp)"
    weights_ok=1
else
    echo "darknet-check: nerve's .weights of $small in darknet: FAIL ${cmp:-}"
    weights_ok=0
fi
# darknet's detector against nerve's: yolov3-tiny with random weights written by darknet's
# save_weights (scaled to the fan-in, so that the activations keep their scale), a picture
# loaded and resized by darknet, darknet's network_predict + get_network_boxes + do_nms_sort
# and nerve's forward + nerve_yolo_detect at score 0.5 and NMS 0.45: every detection paired
# (same class, score within 1e-4, corners within 0.01 px)
yolo=$dir/yolov3-tiny.cfg
picture=docs/img/scene.png
if "$build/dn_ref" random "$yolo" "$tmp/yolo.weights" 7 fan 2>/dev/null &&
    "$build/dn_ref" image "$picture" 416 416 "$tmp/picture.bin" 2>/dev/null &&
    "$build/dn_ref" detect "$yolo" "$tmp/yolo.weights" "$tmp/picture.bin" 0.5 0.45 \
        >"$tmp/dn_dets.txt" 2>/dev/null &&
    "$build/nerve_shapes" detect "$yolo" "$tmp/yolo.weights" "$tmp/picture.bin" 0.5 0.45 \
        >"$tmp/nv_dets.txt" &&
    dets=$("$build/nerve_shapes" match "$tmp/nv_dets.txt" "$tmp/dn_dets.txt" 1e-4 1e-2) &&
    [ -s "$tmp/dn_dets.txt" ]; then
    echo "darknet-check: yolov3-tiny detections on $picture, nerve and darknet: $dets"
    detect_ok=1
else
    echo "darknet-check: yolov3-tiny detections on $picture, nerve and darknet: FAIL ${dets:-}"
    detect_ok=0
fi
# darknet's .weights in nerve: yolov2 (a strided [reorg] in darknet's order) and
# yolov2-tiny with random weights written by darknet (fan-in scaled), the picture at the
# network's size, the last convolution's output (the [region] layer's input) in both
forward_ok=1
for net in yolov2 yolov2-tiny; do
    cmp=
    cfg=$dir/$net.cfg
    size=$(sed -n 's/^width *= *//p' "$cfg" | head -n 1)
    "$build/dn_ref" shapes "$cfg" >"$tmp/dn_$net" 2>/dev/null
    last=$(($(sed -n 's/^layers //p' "$tmp/dn_$net") - 2))
    if "$build/dn_ref" random "$cfg" "$tmp/$net.weights" 7 fan 2>/dev/null &&
        "$build/dn_ref" image "$picture" "$size" "$size" "$tmp/in_$net.bin" 2>/dev/null &&
        "$build/dn_ref" forward "$cfg" "$tmp/$net.weights" "$tmp/in_$net.bin" "$tmp/dn_$net.bin" \
            "$last" 2>/dev/null &&
        "$build/nerve_shapes" forward "$cfg" "$tmp/$net.weights" "$tmp/in_$net.bin" \
            "$tmp/nv_$net.bin" "$last" &&
        cmp=$("$build/nerve_shapes" compare "$tmp/nv_$net.bin" "$tmp/dn_$net.bin" 1e-4); then
        echo "darknet-check: $net with darknet's .weights, layer $last in nerve and darknet: $cmp"
    else
        echo "darknet-check: $net with darknet's .weights, layer $last in nerve and darknet: FAIL ${cmp:-}"
        forward_ok=0
    fi
done
# darknet's [rnn] and [gru] (rnn.cfg, gru.cfg: one step of 256 inputs, three layers of 1024
# and 256) with darknet-written random weights on the picture's first 256 values: the
# [connected] layer's output after them
for net in rnn gru; do
    cmp=
    cfg=$dir/$net.cfg
    head -c 1024 "$tmp/in_yolov2.bin" >"$tmp/in_$net.bin"
    if "$build/dn_ref" random "$cfg" "$tmp/$net.weights" 7 fan 2>/dev/null &&
        "$build/dn_ref" forward "$cfg" "$tmp/$net.weights" "$tmp/in_$net.bin" "$tmp/dn_$net.bin" 3 \
            2>/dev/null &&
        "$build/nerve_shapes" forward "$cfg" "$tmp/$net.weights" "$tmp/in_$net.bin" \
            "$tmp/nv_$net.bin" 3 &&
        cmp=$("$build/nerve_shapes" compare "$tmp/nv_$net.bin" "$tmp/dn_$net.bin" 1e-4); then
        echo "darknet-check: $net with darknet's .weights, layer 3 in nerve and darknet: $cmp"
    else
        echo "darknet-check: $net with darknet's .weights, layer 3 in nerve and darknet: FAIL ${cmp:-}"
        forward_ok=0
    fi
done
[ "$ok" -eq "$n" ] && [ "$weights_ok" -eq 1 ] && [ "$detect_ok" -eq 1 ] && [ "$forward_ok" -eq 1 ]
