/* One rule for the layout of image samples (docs/data.md): inside nerve every image is CHW.
 * An IDX file announces its dimensions, so its layout is checked against the model's input
 * [C, H, W] instead of trusting the element count: [N, C, H, W] is read as it is, [N, H, W, C]
 * only with layout=hwc (transposed once at load), and a file that fits both or neither is
 * refused with a message naming the file, its dimensions and the key to set. */
#include "data.h"

#include <string.h>

int nerve_dataset_hwc_to_chw(nerve_dataset *d)
{
    if (!d || d->ndim != 3)
        return nerve_set_error(NERVE_ERR_ARG, "hwc to chw: samples must be [H, W, C]");
    int h = d->dims[0], w = d->dims[1], c = d->dims[2];
    size_t m = d->sample_numel;
    float *tmp = nerve_xmalloc(m * sizeof(float));
    if (!tmp)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < d->n; i++) {
        float *x = d->x + (size_t)i * m;
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int k = 0; k < c; k++)
                    tmp[((size_t)k * h + y) * w + xx] = x[((size_t)y * w + xx) * c + k];
        memcpy(x, tmp, m * sizeof(float));
    }
    nerve_xfree(tmp);
    d->dims[0] = c;
    d->dims[1] = h;
    d->dims[2] = w;
    return NERVE_OK;
}

static const char *shape(const nerve_dataset *d, char *buf, size_t n)
{
    int dims[NERVE_MAX_DIMS + 1] = {d->n};
    memcpy(dims + 1, d->dims, (size_t)d->ndim * sizeof(int));
    return nerve_shape_str(d->ndim + 1, dims, buf, n);
}

int nerve_dataset_fit_layout(nerve_dataset *d, const char *file, int c, int h, int w, int layout)
{
    if (!d || c < 1 || h < 1 || w < 1)
        return nerve_set_error(NERVE_ERR_ARG, "fit layout: bad arguments");
    if (!file)
        file = "the data";
    char fs[96];
    if (d->ndim == 1 && d->sample_numel == (size_t)c * h * w && layout != NERVE_LAYOUT_HWC)
        return NERVE_OK; /* flat rows, taken as CHW */
    if (d->ndim == 2 && c == 1 && d->dims[0] == h && d->dims[1] == w) {
        d->ndim = 3;
        d->dims[0] = 1;
        d->dims[1] = h;
        d->dims[2] = w;
        return NERVE_OK;
    }
    int chw = d->ndim == 3 && d->dims[0] == c && d->dims[1] == h && d->dims[2] == w;
    int hwc = d->ndim == 3 && d->dims[0] == h && d->dims[1] == w && d->dims[2] == c;
    if (layout == NERVE_LAYOUT_HWC && hwc)
        return nerve_dataset_hwc_to_chw(d);
    if (layout == NERVE_LAYOUT_CHW && chw)
        return NERVE_OK;
    if (layout == NERVE_LAYOUT_AUTO && chw && !hwc)
        return NERVE_OK;
    shape(d, fs, sizeof fs);
    if (layout == NERVE_LAYOUT_AUTO && chw && hwc)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "%s: dimensions %s fit the model's input [%d, %d, %d] both as "
                               "[N, C, H, W] and as [N, H, W, C]; set layout=chw or layout=hwc",
                               file, fs, c, h, w);
    if (layout == NERVE_LAYOUT_AUTO && hwc)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "%s: dimensions %s are [N, H, W, C] (channels last) but the model's "
                               "input is [C, H, W] = [%d, %d, %d]; set layout=hwc to transpose the "
                               "file at load",
                               file, fs, c, h, w);
    return nerve_set_error(NERVE_ERR_SHAPE,
                           "%s: dimensions %s do not fit the model's input [C, H, W] = [%d, %d, "
                           "%d]%s",
                           file, fs, c, h, w,
                           layout == NERVE_LAYOUT_HWC ? " read as [N, H, W, C] (layout=hwc)" :
                           layout == NERVE_LAYOUT_CHW ? " read as [N, C, H, W] (layout=chw)" :
                                                        " as [N, C, H, W] or [N, H, W, C]");
}
