#!/bin/sh
# Writes the diabetes data that Debian's python3-sklearn ships (442 patients: age, sex, body
# mass index, blood pressure and six blood serum measurements, raw units; the target is a
# measure of disease progression one year later) as two CSV files with a header, split as
# tests/test_regression.c splits it: row i (0-based) is a test row when i % 5 == 4 (354
# training rows, 88 test rows). models/diabetes.cfg reads them.
#   scripts/diabetes_csv.sh [OUTDIR]          (default: runs/diabetes)
set -eu
src=${SKLEARN_DATA:-/usr/lib/python3/dist-packages/sklearn/datasets/data}
out=${1:-runs/diabetes}
for f in diabetes_data_raw.csv.gz diabetes_target.csv.gz; do
    if [ ! -r "$src/$f" ]; then
        echo "diabetes_csv.sh: $src/$f is missing (apt-get install python3-sklearn)" >&2
        exit 1
    fi
done
mkdir -p "$out"
zcat "$src/diabetes_target.csv.gz" > "$out/.target"
zcat "$src/diabetes_data_raw.csv.gz" | paste -d ' ' - "$out/.target" | awk -v train="$out/train.csv" -v test="$out/test.csv" '
    BEGIN { h = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression"; print h > train; print h > test }
    NF != 11 { printf "diabetes_csv.sh: line %d has %d fields, expected 11\n", NR, NF > "/dev/stderr"; exit 1 }
    { $1 = $1; gsub(/ /, ","); print > ((NR - 1) % 5 == 4 ? test : train) }'
rm -f "$out/.target"
echo "wrote $out/train.csv ($(($(wc -l < "$out/train.csv") - 1)) rows) and $out/test.csv ($(($(wc -l < "$out/test.csv") - 1)) rows)"
