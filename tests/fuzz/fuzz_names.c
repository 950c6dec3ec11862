/* libFuzzer target: class-name files (darknet .names), and a data set taking the names:
 * every name must be non-empty and unique, and nerve_dataset_use_names must either accept
 * or refuse a data set of labels 0..2 with a message. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nerve_clear_error();
    char **names = NULL;
    int n = -1;
    int st = nerve_names_parse((const char *)data, size, "fuzz.names", &names, &n);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    if (n < 0 || (n > 0 && !names))
        abort();
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            abort();
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                abort();
    }
    nerve_dataset d;
    int dims[1] = {2};
    if (nerve_dataset_alloc(&d, 3, 1, dims) != NERVE_OK)
        abort();
    for (int i = 0; i < 3; i++)
        d.y[i] = (float)i;
    d.n_classes = 3;
    nerve_clear_error();
    st = nerve_dataset_use_names(&d, (const char *const *)names, n, "fuzz.names");
    fuzz_check_error(st);
    if (st == NERVE_OK && (n < 3 || d.n_classes != n))
        abort(); /* labels 0..2 need at least 3 names */
    nerve_dataset_free(&d);
    nerve_names_free(names, n);
    return 0;
}
