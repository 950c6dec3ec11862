/* PNG output with libpng: gray and RGB images from floats in [0, 1], and grids of tiles
 * (filters, activation maps) with per-tile normalisation. libpng reports errors through
 * a longjmp; its handlers here record the message instead of printing it. */
#include "../core/core.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

/* libpng's error handler: keep the message, jump back to the writer. */
static void png_fail(png_structp png, png_const_charp msg)
{
    nerve_set_error(NERVE_ERR_IO, "png: %s", msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static png_byte to_byte(float v)
{
    if (!(v > 0.0f)) /* NaN too */
        return 0;
    if (v >= 1.0f)
        return 255;
    return (png_byte)lrintf(v * 255.0f);
}

/* Fills row y of an 8-bit image from planes [channels, h, w]. */
static void fill_row(png_byte *row, const float *data, int channels, int w, int h, int y)
{
    size_t plane = (size_t)w * h;
    for (int x = 0; x < w; x++)
        for (int c = 0; c < channels; c++)
            row[(size_t)x * channels + c] = to_byte(data[c * plane + (size_t)y * w + x]);
}

/* The writer proper; volatile keeps the pointers valid across libpng's longjmp. */
static int write_png(const char *path, int w, int h, int channels, const float *data)
{
    if (!path || !data || w < 1 || h < 1)
        return nerve_set_error(NERVE_ERR_ARG, "png: bad arguments (%dx%d)", w, h);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open for writing", path);
    png_byte *volatile row = nerve_xmalloc((size_t)w * (size_t)channels);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int st = row && png && info ? NERVE_OK : NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        if (setjmp(png_jmpbuf(png))) {
            st = NERVE_ERR_IO;
        } else {
            png_init_io(png, fp);
            png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                         channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                         PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                         PNG_FILTER_TYPE_DEFAULT);
            png_write_info(png, info);
            for (int y = 0; y < h; y++) {
                fill_row(row, data, channels, w, h, y);
                png_write_row(png, row);
            }
            png_write_end(png, NULL);
        }
    }
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    nerve_xfree(row);
    if (fclose(fp) != 0 && st == NERVE_OK)
        st = nerve_set_error(NERVE_ERR_IO, "%s: write failed", path);
    if (st == NERVE_ERR_IO) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        nerve_set_error(st, "%s: %s", path, msg);
    }
    return st;
}

int nerve_png_write_gray(const char *path, int w, int h, const float *data)
{
    return write_png(path, w, h, 1, data);
}

int nerve_png_write_rgb(const char *path, int w, int h, const float *data)
{
    return write_png(path, w, h, 3, data);
}

/* ---- grids ---------------------------------------------------------------------------- */

/* Copies map [channels, h, w] into the grid at (top, left), scaled so that its own
 * min/max become 0/1 (over all its channels, so colours keep their balance). */
static void place_tile(const float *map, int channels, int h, int w, float *out, int oh, int ow,
                       int top, int left)
{
    size_t n = (size_t)channels * h * w;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, map[i]);
        hi = fmaxf(hi, map[i]);
    }
    float scale = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = map[((size_t)c * h + y) * w + x];
                out[((size_t)c * oh + top + y) * ow + left + x] = hi > lo ? (v - lo) * scale : 0.5f;
            }
}

int nerve_image_grid(const float *maps, int k, int channels, int h, int w, int cols, float *out,
                     int *out_h, int *out_w)
{
    if (!out_h || !out_w || (out && !maps) || k < 1 || h < 1 || w < 1 ||
        (channels != 1 && channels != 3))
        return nerve_set_error(NERVE_ERR_ARG, "image_grid: bad arguments (%d maps of [%d, %d, %d])",
                               k, channels, h, w);
    if (cols <= 0)
        cols = (int)ceil(sqrt((double)k));
    if (cols > k)
        cols = k;
    int rows = (k + cols - 1) / cols;
    double gh = (double)rows * (h + 1) + 1, gw = (double)cols * (w + 1) + 1;
    if (gh * gw * channels > (double)(1 << 28))
        return nerve_set_error(NERVE_ERR_ARG, "image_grid: a %.0fx%.0f image is too large", gh, gw);
    *out_h = (int)gh;
    *out_w = (int)gw;
    if (!out)
        return NERVE_OK;
    size_t total = (size_t)channels * (size_t)*out_h * (size_t)*out_w;
    for (size_t i = 0; i < total; i++)
        out[i] = 1.0f; /* the border (and empty cells) are white */
    for (int t = 0; t < k; t++)
        place_tile(maps + (size_t)t * channels * h * w, channels, h, w, out, *out_h, *out_w,
                   1 + (t / cols) * (h + 1), 1 + (t % cols) * (w + 1));
    return NERVE_OK;
}

int nerve_png_write_grid(const char *path, const float *maps, int k, int channels, int h, int w,
                         int cols)
{
    int gh, gw;
    int st = nerve_image_grid(maps, k, channels, h, w, cols, NULL, &gh, &gw);
    if (st)
        return st;
    float *img = nerve_xmalloc((size_t)channels * gh * gw * sizeof(float));
    if (!img)
        return NERVE_ERR_NOMEM;
    st = nerve_image_grid(maps, k, channels, h, w, cols, img, &gh, &gw);
    if (st == NERVE_OK)
        st = write_png(path, gw, gh, channels, img);
    nerve_xfree(img);
    return st;
}
