/* libFuzzer target: CIFAR-10/100 binary files. Byte 0 picks the kind (0: from the size, 10,
 * 100) and, for CIFAR-100, coarse labels; the rest is the file. An accepted file must give
 * [3, 32, 32] samples, one per record, with labels below n_classes. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int kinds[] = {0, 10, 100};
    if (size < 1)
        return 0;
    int kind = kinds[data[0] % 3], coarse = (data[0] / 3) & 1;
    nerve_clear_error();
    nerve_dataset d;
    int st = nerve_dataset_parse_cifar(&d, data + 1, size - 1, "fuzz.bin", kind, coarse,
                                       1.0f / 255);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    size_t rec = d.n > 0 ? (size - 1) / (size_t)d.n : 0;
    if (d.n <= 0 || d.ndim != 3 || d.dims[0] != 3 || d.dims[1] != 32 || d.dims[2] != 32 ||
        (rec != 3073 && rec != 3074) || rec * (size_t)d.n != size - 1)
        abort();
    if (!(d.n_classes == 10 || d.n_classes == 20 || d.n_classes == 100))
        abort();
    for (int i = 0; i < d.n; i++)
        if (!(d.y[i] >= 0 && d.y[i] < (float)d.n_classes))
            abort();
    for (size_t i = 0; i < (size_t)d.n * 3072; i++)
        if (!(d.x[i] >= 0.0f && d.x[i] <= 1.0f))
            abort();
    nerve_dataset_free(&d);
    return 0;
}
