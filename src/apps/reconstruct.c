/* A picture of what a reconstruction model does: for the first n samples of a data set, one
 * row of the inputs the model read (a denoising model's corrupted ones), one of its outputs
 * and one of the clean images, each pixel drawn as a scale x scale block so that 28 x 28
 * images can be read on a screen. */
#include "../core/core.h"

#include <string.h>

/* Copies image [c, h, w] into the canvas [c, H, W] at (y0, x0), each pixel scale x scale. */
static void blit(float *canvas, int H, int W, const float *img, int c, int h, int w, int scale, int y0,
                 int x0)
{
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
                canvas[((size_t)k * H + y0 + y) * W + x0 + x] = img[((size_t)k * h + y / scale) * w + x / scale];
}

int nerve_viz_reconstruct(nerve_model *m, const nerve_dataset *d, int n, int scale, const char *png_path)
{
    if (!m || !d || !png_path)
        return nerve_set_error(NERVE_ERR_ARG, "viz_reconstruct: null argument");
    nerve_head_info h = nerve_model_head(m);
    if (h.task != NERVE_TASK_RECONSTRUCT)
        return nerve_set_error(NERVE_ERR_ARG, "viz reconstruct needs a model whose head has target=input "
                               "(a reconstruction or denoising model); this one solves task '%s'",
                               nerve_task_name(h.task));
    /* the model's image shape (a CSV row is flat; its value count is checked on feeding) */
    const nerve_net_config *cfg = nerve_model_config(m);
    if (cfg->ndim != 3 || (cfg->dims[0] != 1 && cfg->dims[0] != 3))
        return nerve_set_error(NERVE_ERR_SHAPE, "viz reconstruct draws images of 1 or 3 channels; the "
                               "model reads samples of %d dimensions", cfg->ndim);
    if (n < 1 || n > 64 || scale < 1 || scale > 16)
        return nerve_set_error(NERVE_ERR_ARG, "viz reconstruct: %d images at scale %d (want 1..64 and "
                               "1..16)", n, scale);
    if (n > d->n)
        n = d->n;
    int c = cfg->dims[0], ih = cfg->dims[1], iw = cfg->dims[2], gap = 2;
    size_t numel = d->sample_numel;
    nerve_dataset first = *d; /* a view of the first n samples: their indices, and so their
                                 corruption, are those of the evaluation */
    first.n = n;
    int W = n * iw * scale + (n + 1) * gap, H = 3 * ih * scale + 4 * gap;
    float *seen = nerve_xalloc_floats((size_t)n * numel), *out = nerve_xalloc_floats((size_t)n * numel);
    float *canvas = nerve_xalloc_floats((size_t)c * H * W);
    int st = seen && out && canvas ? NERVE_OK : NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = nerve_predict_outputs(m, &first, out, seen);
    if (st == NERVE_OK) {
        for (size_t i = 0; i < (size_t)c * H * W; i++)
            canvas[i] = 1.0f; /* white gaps */
        for (int i = 0; i < n; i++) {
            int x0 = gap + i * (iw * scale + gap);
            const float *rows[3] = {seen + i * numel, out + i * numel, d->x + i * numel};
            for (int r = 0; r < 3; r++)
                blit(canvas, H, W, rows[r], c, ih, iw, scale, gap + r * (ih * scale + gap), x0);
        }
        st = c == 1 ? nerve_png_write_gray(png_path, W, H, canvas) : nerve_png_write_rgb(png_path, W, H, canvas);
    }
    nerve_xfree_aligned(seen);
    nerve_xfree_aligned(out);
    nerve_xfree_aligned(canvas);
    return st;
}
