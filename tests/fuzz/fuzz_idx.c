/* libFuzzer target: the IDX loader (plain and gzip). Input layout:
 *   byte 0: flags: bit 0 a labels file is given, bit 1 the images part is gzip-compressed
 *           by the harness, bit 2 the labels part is (so mutations of the header reach the
 *           reader through zlib too); raw gzip bytes in the input reach it as they are;
 *   bytes 1-2: little-endian length of the images part (clamped), the labels part follows.
 * An accepted pair must give a data set whose shape matches the header. */
#include "fuzz_common.h"

#include <math.h>
#include <zlib.h>

static fuzz_file images, labels;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_file_open(&images, "images");
    fuzz_file_open(&labels, "labels");
    return 0;
}

/* Sets f to data, gzip-compressed if gz. */
static void set_part(fuzz_file *f, const uint8_t *data, size_t size, int gz)
{
    if (!gz) {
        fuzz_file_set(f, data, size);
        return;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    uLong cap = deflateBound(&z, (uLong)size) + 32;
    unsigned char *buf = malloc(cap);
    if (!buf)
        abort();
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    fuzz_file_set(f, buf, cap - z.avail_out);
    deflateEnd(&z);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int flags = data[0];
    size_t split = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    int with_labels = flags & 1;
    if (!with_labels || split > size)
        split = size;
    set_part(&images, data, split, flags & 2);
    if (with_labels)
        set_part(&labels, data + split, size - split, flags & 4);
    nerve_clear_error();
    nerve_dataset d;
    int st = nerve_dataset_load_idx(&d, images.path, with_labels ? labels.path : NULL,
                                    1.0f / 255);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return 0;
    if (d.n <= 0 || !d.x || !d.y || d.ndim < 1 || d.ndim > NERVE_MAX_DIMS)
        abort();
    size_t numel = 1;
    for (int i = 0; i < d.ndim; i++)
        numel *= (size_t)d.dims[i];
    if (numel != d.sample_numel)
        abort();
    if (with_labels) {
        int max = -1;
        for (int i = 0; i < d.n; i++) {
            if (!(d.y[i] >= 0 && d.y[i] <= 255) || d.y[i] != floorf(d.y[i]))
                abort();
            if ((int)d.y[i] > max)
                max = (int)d.y[i];
        }
        if (d.n_classes != max + 1)
            abort();
    }
    volatile float sink = 0;
    for (size_t i = 0; i < numel * (size_t)d.n; i++)
        sink += d.x[i];
    (void)sink;
    nerve_dataset_free(&d);
    return 0;
}
