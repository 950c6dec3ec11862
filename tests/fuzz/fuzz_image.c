/* libFuzzer target: the PNG/JPEG decoder and the resize policies. Input layout:
 *   byte 0: channels requested (0 as stored, 1, 3: byte % 3 picks 0, 1, 3) and resize
 *           policy ((byte / 3) % 4: none, stretch, crop, pad);
 *   byte 1: target size, height 1 + low nibble, width 1 + high nibble;
 *   then the image file (PNG or JPEG, found by its signature).
 * A decoded image must have 1 or 3 channels, a positive size and values in [0, 1]; a resize
 * must give finite values in [0, 1]. The same bytes also go to the class-mask decoder of
 * segmentation lists (data_decode_mask), which must give h x w bytes or an error. */
#include "fuzz_common.h"

#include "../../src/data/data.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int channels[] = {0, 1, 3};
    if (size < 2)
        return 0;
    int want = channels[data[0] % 3];
    nerve_resize policy = (nerve_resize)((data[0] / 3) % 4);
    int h = 1 + (data[1] & 15), w = 1 + (data[1] >> 4);
    nerve_clear_error();
    int mh = 0, mw = 0;
    unsigned char *mask = NULL;
    int st = data_decode_mask(data + 2, size - 2, "fuzz.png", &mh, &mw, &mask);
    fuzz_check_error(st);
    if (st == NERVE_OK) {
        if (mh <= 0 || mw <= 0 || !mask)
            abort();
        size_t n = (size_t)mh * mw, sum = 0; /* every byte readable (ASan checks the extent) */
        for (size_t i = 0; i < n; i++)
            sum += mask[i];
        if (sum > 255 * n)
            abort();
        nerve_xfree(mask);
    } else if (mask) {
        abort();
    }
    nerve_clear_error();
    nerve_image im;
    st = nerve_image_decode(data + 2, size - 2, "fuzz.img", want, &im);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    if (!(im.c == 1 || im.c == 3) || (want && im.c != want) || im.h <= 0 || im.w <= 0 ||
        !im.data)
        abort();
    size_t n = (size_t)im.c * im.h * im.w;
    for (size_t i = 0; i < n; i++)
        if (!(im.data[i] >= 0.0f && im.data[i] <= 1.0f))
            abort();
    float *dst = malloc((size_t)im.c * h * w * sizeof *dst);
    if (!dst)
        abort();
    st = nerve_image_resize(&im, h, w, policy, dst);
    fuzz_check_error(st);
    if (st == NERVE_OK)
        for (size_t i = 0; i < (size_t)im.c * h * w; i++)
            if (!(dst[i] >= -1e-6f && dst[i] <= 1.0f + 1e-6f))
                abort();
    if (st == NERVE_OK && policy == NERVE_RESIZE_NONE && (h != im.h || w != im.w))
        abort(); /* NONE refuses another size */
    free(dst);
    nerve_image_free(&im);
    return 0;
}
