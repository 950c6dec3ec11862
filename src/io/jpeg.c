/* JPEG output with libjpeg-turbo: gray or RGB planes [channels, h, w] of floats in [0, 1]
 * (clamped, rounded to 8 bits). libjpeg reports errors through error_exit; the handler
 * here records the message and jumps back instead of printing and exiting. */
#include "../core/core.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    const char *path;
} jpeg_err;

static void jpeg_fail(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, msg);
    nerve_set_error(NERVE_ERR_IO, "%s: JPEG: %s", e->path, msg);
    longjmp(e->jump, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level;
}

static JSAMPLE to_byte(float v)
{
    if (!(v > 0.0f)) /* NaN too */
        return 0;
    if (v >= 1.0f)
        return 255;
    return (JSAMPLE)lrintf(v * 255.0f);
}

int nerve_jpeg_write(const char *path, int w, int h, int channels, const float *data,
                     int quality)
{
    if (!path || !data || w < 1 || h < 1 || w > 65500 || h > 65500 ||
        (channels != 1 && channels != 3) || quality < 1 || quality > 100)
        return nerve_set_error(NERVE_ERR_ARG, "jpeg: bad arguments (%dx%d, %d channels, quality "
                               "%d)", w, h, channels, quality);
    FILE *volatile fp = fopen(path, "wb");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open for writing", path);
    JSAMPLE *volatile row = nerve_xmalloc((size_t)w * channels);
    if (!row) {
        fclose(fp);
        return NERVE_ERR_NOMEM;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_err err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.emit_message = jpeg_quiet;
    err.path = path;
    int st = NERVE_OK;
    if (setjmp(err.jump)) {
        st = NERVE_ERR_IO;
    } else {
        jpeg_create_compress(&cinfo);
        jpeg_stdio_dest(&cinfo, fp);
        cinfo.image_width = (JDIMENSION)w;
        cinfo.image_height = (JDIMENSION)h;
        cinfo.input_components = channels;
        cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
        jpeg_set_defaults(&cinfo);
        jpeg_set_quality(&cinfo, quality, TRUE);
        jpeg_start_compress(&cinfo, TRUE);
        size_t plane = (size_t)w * h;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++)
                for (int c = 0; c < channels; c++)
                    row[(size_t)x * channels + c] = to_byte(data[c * plane + (size_t)y * w + x]);
            JSAMPROW rp = row;
            jpeg_write_scanlines(&cinfo, &rp, 1);
        }
        jpeg_finish_compress(&cinfo);
    }
    jpeg_destroy_compress(&cinfo);
    nerve_xfree(row);
    if (fclose(fp) != 0 && st == NERVE_OK)
        st = nerve_set_error(NERVE_ERR_IO, "%s: write failed", path);
    return st;
}
