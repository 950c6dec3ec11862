/* libFuzzer target: the CSV data-set loader. The first input byte picks the label column
 * (last, first, second, none, second to last, past the end); the rest is the file. An
 * accepted file must give a consistent data set. */
#include "fuzz_common.h"

#include <math.h>

static fuzz_file in;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_file_open(&in, "csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int label_cols[] = {-1, 0, 1, NERVE_CSV_NO_LABEL, -2, 7};
    if (size < 1)
        return 0;
    int label_col = label_cols[data[0] % (sizeof label_cols / sizeof *label_cols)];
    fuzz_file_set(&in, data + 1, size - 1);
    nerve_clear_error();
    nerve_dataset d;
    int st = nerve_dataset_load_csv(&d, in.path, label_col);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    if (d.n <= 0 || d.ndim != 1 || d.dims[0] <= 0 || !d.x || !d.y)
        abort();
    int has_label = label_col != NERVE_CSV_NO_LABEL;
    int max = -1;
    for (int i = 0; i < d.n; i++) {
        if (has_label) {
            if (!(d.y[i] >= 0) || d.y[i] != floorf(d.y[i]))
                abort();
            if ((int)d.y[i] > max)
                max = (int)d.y[i];
        }
    }
    if (d.n_classes != (has_label ? max + 1 : 0))
        abort();
    volatile float sink = 0;
    for (size_t i = 0; i < (size_t)d.n * (size_t)d.dims[0]; i++)
        sink += d.x[i];
    (void)sink;
    nerve_dataset_free(&d);
    return 0;
}
