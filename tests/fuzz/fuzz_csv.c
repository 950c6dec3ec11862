/* libFuzzer target: the CSV reader (RFC 4180: quotes, separators, header detection, label
 * and target columns by name or index, class names). Bytes 0-1 pick the options:
 *   byte 0: bit 7 clear: nerve_dataset_load_csv (the file path API) with label column
 *           (byte % 6 of: last, first, second, none, second to last, past the end);
 *           bit 7 set: nerve_dataset_parse_csv (memory) with separator (byte % 3 of ',',
 *           '\t', ';'), header mode ((byte / 3) % 3: auto, yes, no), skip ((byte / 9) % 3);
 *   byte 1 (parse_csv): label ((byte % 6) of NULL, "", "0", "-1", "label", "1") and
 *           targets ((byte / 6) % 4 of NULL, "0", "x,y", "-2"), class names given when
 *           byte >= 128;
 *   then the file. An accepted file must give a consistent data set. */
#include "fuzz_common.h"

#include <math.h>

static fuzz_file in;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_file_open(&in, "csv");
    return 0;
}

static void check(const nerve_dataset *d, int has_label)
{
    if (d->n <= 0 || d->sample_numel == 0 || !d->x || !d->y)
        abort();
    int max = -1;
    for (int i = 0; has_label && i < d->n; i++) {
        if (!(d->y[i] >= 0) || d->y[i] != floorf(d->y[i]))
            abort();
        if ((int)d->y[i] > max)
            max = (int)d->y[i];
    }
    if (has_label && d->n_classes < max + 1)
        abort();
    if (d->names && d->n_names < d->n_classes)
        abort();
    volatile float sink = 0;
    for (size_t i = 0; i < (size_t)d->n * d->sample_numel; i++)
        sink += d->x[i];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int label_cols[] = {-1, 0, 1, NERVE_CSV_NO_LABEL, -2, 7};
    static const char seps[] = {',', '\t', ';'};
    static const char *const labels[] = {NULL, "", "0", "-1", "label", "1"};
    static const char *const targets[] = {NULL, "0", "x,y", "-2"};
    static const char *const classes[] = {"cat", "dog", "0", "b"};
    if (size < 2)
        return 0;
    nerve_dataset d;
    int st;
    nerve_clear_error();
    if (!(data[0] & 0x80)) {
        int label_col = label_cols[data[0] % 6];
        fuzz_file_set(&in, data + 1, size - 1);
        st = nerve_dataset_load_csv(&d, in.path, label_col);
        fuzz_check_error(st);
        if (st != NERVE_OK)
            return 0;
        check(&d, label_col != NERVE_CSV_NO_LABEL);
    } else {
        nerve_csv_options o = nerve_csv_default();
        int b0 = data[0] & 0x7f, b1 = data[1];
        o.sep = seps[b0 % 3];
        o.header = (b0 / 3) % 3;
        o.skip = (b0 / 9) % 3;
        o.label = labels[b1 % 6];
        o.targets = targets[(b1 / 6) % 4];
        if (b1 >= 128) {
            o.class_names = classes;
            o.n_class_names = 4;
        }
        st = nerve_dataset_parse_csv(&d, (const char *)data + 2, size - 2, "fuzz.csv", &o);
        fuzz_check_error(st);
        if (st != NERVE_OK)
            return 0;
        check(&d, d.n_classes > 0);
    }
    nerve_dataset_free(&d);
    return 0;
}
