/* libFuzzer target: YOLO label files (darknet detection lists): "class cx cy w h" a line.
 * The first byte picks the class count (1..64); every box accepted must satisfy the
 * documented ranges (class below the count, cx, cy in [0, 1], w, h in (0, 1]). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int n_classes = 1 + data[0] % 64;
    nerve_clear_error();
    nerve_box *boxes = NULL;
    int count = -1;
    int st = nerve_boxes_parse((const char *)data + 1, size - 1, "fuzz.txt", n_classes, &boxes,
                               &count);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    if (count < 0 || (count > 0 && !boxes))
        abort();
    for (int i = 0; i < count; i++) {
        const nerve_box *b = &boxes[i];
        if (!(b->cls >= 0 && b->cls < n_classes && b->x >= 0 && b->x <= 1 && b->y >= 0 &&
              b->y <= 1 && b->w > 0 && b->w <= 1 && b->h > 0 && b->h <= 1))
            abort();
    }
    nerve_boxes_free(boxes);
    return 0;
}
