/* libFuzzer target: sliding-window shapes ("WxH,WxH,..."; nerve slide --windows). Every
 * accepted list must hold 1 to NERVE_SLIDING_MAX_SHAPES shapes of 1 to 4096 pixels a side; a
 * refused one must leave the options as they were. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    nerve_clear_error();
    nerve_sliding_options o = nerve_sliding_default(), before = o;
    int st = nerve_sliding_parse_shapes(s, &o);
    fuzz_check_error(st);
    if (st == NERVE_OK) {
        if (o.n_shapes < 1 || o.n_shapes > NERVE_SLIDING_MAX_SHAPES)
            abort();
        for (int i = 0; i < o.n_shapes; i++)
            if (o.shapes[i][0] < 1 || o.shapes[i][0] > 4096 || o.shapes[i][1] < 1 || o.shapes[i][1] > 4096)
                abort();
    } else if (o.n_shapes != before.n_shapes)
        abort();
    free(s);
    return 0;
}
