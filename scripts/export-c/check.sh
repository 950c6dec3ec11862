#!/usr/bin/env bash
# The exported C of a checkpoint, checked everywhere it must run (docs/export-c.md):
#   scripts/export-c/check.sh CKPT [OUTDIR] [N_IMAGES]
# 1. nerve export-c CKPT OUTDIR/model
# 2. the .c compiles with -std=c99 -Wall -Wextra -Werror for x86-64, aarch64 and Cortex-M4
# 3. on x86: every test sample of the checkpoint's cfg gives nerve's class, outputs within 1e-5
# 4. Cortex-M4 (-Os): flash (code, constants) and RAM (arena, stack) from arm-none-eabi-size
#    and -fstack-usage; the constants and arena must equal what the header states
# 5. the first N_IMAGES test images under qemu-system-arm -M mps2-an386 give nerve's classes
set -euo pipefail
CKPT=${1:?usage: check.sh CKPT [OUTDIR] [N_IMAGES]}
OUT=${2:-build/export-check}
N=${3:-5}
BUILD=${NERVE_BUILD_DIR:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
STRICT="-std=c99 -Wall -Wextra -Werror"
M4="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
mkdir -p "$OUT/model"
"$BUILD/nerve" export-c "$CKPT" "$OUT/model"
M="$OUT/model/model.c"

echo "== compiles: x86-64, aarch64, Cortex-M4"
cc $STRICT -O2 -c "$M" -o "$OUT/model_x86.o"
if command -v aarch64-linux-gnu-gcc >/dev/null; then
    aarch64-linux-gnu-gcc $STRICT -O2 -c "$M" -o "$OUT/model_a64.o" && echo "aarch64: ok"
else
    echo "aarch64-linux-gnu-gcc missing (scripts/deps.sh installs it)"; exit 1
fi
arm-none-eabi-gcc $M4 $STRICT -Os -fstack-usage -c "$M" -o "$OUT/model_m4.o"

echo "== x86: the whole test set"
cc -O2 -Iinclude -I"$OUT/model" -o "$OUT/check_float" "$HERE/check_float.c" "$M" "$BUILD/libnerve.a" \
    -lz -lpng -ljpeg -lm -pthread
"$OUT/check_float" "$CKPT" "$N" "$OUT/images.h"

echo "== Cortex-M4, -Os: flash and RAM"
want_w=$(sed -n 's/^#define MODEL_WEIGHT_BYTES \([0-9]*\)/\1/p' "$OUT/model/model.h")
want_a=$(sed -n 's/^#define MODEL_ARENA_BYTES \([0-9]*\)/\1/p' "$OUT/model/model.h")
arm-none-eabi-size -A "$OUT/model_m4.o" | awk -v w="$want_w" -v a="$want_a" '
    $1 ~ /^\.text/ { text += $2 } $1 ~ /^\.rodata/ { ro += $2 } $1 ~ /^\.bss/ { bss += $2 }
    $1 ~ /^\.data/ { data += $2 }
    END {
        printf "flash: code %d bytes, constants %d bytes (header: %d)\n", text, ro, w
        printf "RAM: arena %d bytes (header: %d), initialised data %d\n", bss, a, data
        if (ro != w || bss != a) { print "MISMATCH between the header and the object"; exit 1 }
    }'
su="$OUT/model_m4.su"
[ -f "$su" ] || su="$(basename "$M" .c).su"
run_stack=$(awk -F'\t' '$1 ~ /model_run/ { print $2 }' "$su")
kern_stack=$(awk -F'\t' '$1 !~ /model_run/ && $2 > m { m = $2 } END { print m + 0 }' "$su")
echo "stack: model_run $run_stack bytes + the deepest kernel $kern_stack bytes = $((run_stack + kern_stack)) bytes (-fstack-usage)"

echo "== Cortex-M4 under qemu-system-arm -M mps2-an386"
arm-none-eabi-gcc $M4 -std=c99 -Wall -Wextra -Werror -Os -ffunction-sections -fdata-sections \
    -I"$OUT/model" -I"$OUT" -T "$HERE/mps2-an386.ld" -nostartfiles --specs=nano.specs --specs=rdimon.specs \
    -Wl,--gc-sections -o "$OUT/model_m4.elf" "$HERE/startup.c" "$HERE/main_m4.c" "$M" -lm
arm-none-eabi-size "$OUT/model_m4.elf"
timeout 300 qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel "$OUT/model_m4.elf" | tee "$OUT/qemu.txt"
grep -q "^agree $N/$N" "$OUT/qemu.txt"
echo "export check passed"
