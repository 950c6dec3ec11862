/* Decoding PNG (libpng) and JPEG (libjpeg-turbo) images into float planes [C, H, W] with
 * values in [0, 1], and resizing them. The channel rule (docs/data.md):
 *   - 8-bit samples are divided by 255, 16-bit PNG samples by 65535;
 *   - palette PNGs are expanded, an alpha channel is dropped (not composited);
 *   - channels = 1 from colour: gray = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma);
 *   - channels = 3 from gray: the gray plane copied into R, G and B;
 *   - channels = 0 keeps the file's own: 1 for gray (+alpha), 3 for colour (+alpha).
 * Both libraries report errors through longjmp; the handlers here record the message
 * instead of printing it. The format is found from the content (signature), not the name. */
#include "data.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

#define MAX_PIXELS (1u << 26) /* 64 Mpixel: larger images are refused */

void nerve_image_free(nerve_image *im)
{
    if (!im)
        return;
    nerve_xfree_aligned(im->data);
    memset(im, 0, sizeof *im);
}

static int check_size(const char *name, unsigned long w, unsigned long h)
{
    if (w < 1 || h < 1 || w > 65535 || h > 65535 || (unsigned long long)w * h > MAX_PIXELS)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: image size %lux%lu is not supported "
                               "(1..65535 per side, at most %u pixels)",
                               name, w, h, MAX_PIXELS);
    return NERVE_OK;
}

/* Interleaved samples (file_c per pixel, the first `colour` of them gray or RGB) -> planes of
 * out_c channels, each sample times `scale`. */
static void to_planes(const float *px, int file_c, int colour, int h, int w, int out_c,
                      float *out)
{
    size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++) {
        const float *p = px + i * file_c;
        if (out_c == colour) {
            for (int c = 0; c < out_c; c++)
                out[c * plane + i] = p[c];
        } else if (out_c == 1) { /* colour -> gray */
            out[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        } else { /* gray -> colour */
            out[i] = out[plane + i] = out[2 * plane + i] = p[0];
        }
    }
}

static int alloc_image(nerve_image *im, int c, int h, int w)
{
    im->c = c;
    im->h = h;
    im->w = w;
    im->data = nerve_xalloc_floats((size_t)c * h * w);
    return im->data ? NERVE_OK : NERVE_ERR_NOMEM;
}

/* ---- PNG ---------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
} mem_reader;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    mem_reader *r = png_get_io_ptr(png);
    if (n > r->len - r->pos)
        png_error(png, "the file is truncated");
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
}

static void png_fail(png_structp png, png_const_charp msg)
{
    const char *name = png_get_error_ptr(png);
    nerve_set_error(NERVE_ERR_FORMAT, "%s: PNG: %s", name, msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* A libpng reader whose errors are recorded as nerve's, naming the file. */
static int png_open(const char *name, png_structp *png, png_infop *info)
{
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, (png_voidp)name, png_fail, png_quiet);
    *info = *png ? png_create_info_struct(*png) : NULL;
    if (*png && *info)
        return NERVE_OK;
    png_destroy_read_struct(*png ? png : NULL, *info ? info : NULL, NULL);
    return nerve_set_error(NERVE_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
}

static int decode_png(const unsigned char *buf, size_t len, const char *name, int channels,
                      nerve_image *out)
{
    mem_reader r = {buf, len, 0};
    png_structp png;
    png_infop info;
    if (png_open(name, &png, &info) != NERVE_OK)
        return NERVE_ERR_NOMEM;
    unsigned char *volatile rows = NULL;
    float *volatile px = NULL;
    png_bytep *volatile ptrs = NULL;
    int st = NERVE_OK;
    if (setjmp(png_jmpbuf(png))) {
        st = NERVE_ERR_FORMAT;
    } else {
        png_set_read_fn(png, &r, png_read_mem);
        png_read_info(png, info);
        png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
        if ((st = check_size(name, w, h)) == NERVE_OK) {
            int type = png_get_color_type(png, info);
            if (type == PNG_COLOR_TYPE_PALETTE)
                png_set_palette_to_rgb(png);
            if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
                png_set_expand_gray_1_2_4_to_8(png);
            if (png_get_valid(png, info, PNG_INFO_tRNS))
                png_set_tRNS_to_alpha(png);
            png_set_interlace_handling(png);
            png_read_update_info(png, info);
            int file_c = png_get_channels(png, info);
            int depth = png_get_bit_depth(png, info);
            int colour = file_c >= 3 ? 3 : 1;
            int out_c = channels ? channels : colour;
            size_t rowbytes = png_get_rowbytes(png, info);
            rows = nerve_xmalloc(rowbytes * h);
            ptrs = rows ? nerve_xmalloc(h * sizeof *ptrs) : NULL;
            px = ptrs ? nerve_xmalloc((size_t)w * h * file_c * sizeof(float)) : NULL;
            if (!px) {
                st = NERVE_ERR_NOMEM;
            } else {
                for (png_uint_32 y = 0; y < h; y++)
                    ptrs[y] = rows + y * rowbytes;
                png_read_image(png, ptrs);
                png_read_end(png, NULL); /* up to IEND: a cut file is an error */
                size_t n = (size_t)w * h * file_c;
                if (depth == 16) {
                    for (size_t i = 0; i < n; i++) /* big-endian samples */
                        px[i] = (rows[2 * i] << 8 | rows[2 * i + 1]) * (1.0f / 65535.0f);
                } else {
                    for (size_t i = 0; i < n; i++)
                        px[i] = rows[i] * (1.0f / 255.0f);
                }
                if ((st = alloc_image(out, out_c, (int)h, (int)w)) == NERVE_OK)
                    to_planes(px, file_c, colour, (int)h, (int)w, out_c, out->data);
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    nerve_xfree(ptrs);
    nerve_xfree(rows);
    nerve_xfree(px);
    return st;
}

/* A class mask: the raw 8-bit value of every pixel of a grey or palette PNG (a palette
 * index is the class, as in PASCAL VOC's SegmentationClass files; the palette's colours are
 * not looked at). Colour, alpha and 16-bit masks are refused: their values are not class
 * indices, and taking their luma or their top byte would give wrong labels silently. */
int data_decode_mask(const void *buf, size_t len, const char *name, int *h_out, int *w_out,
                     unsigned char **out)
{
    *out = NULL;
    *h_out = *w_out = 0;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!buf || len < 8 || memcmp(buf, png_sig, 8))
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: a class mask must be a PNG file (grey or "
                               "palette, one class index a pixel)", name);
    mem_reader r = {buf, len, 0};
    png_structp png;
    png_infop info;
    if (png_open(name, &png, &info) != NERVE_OK)
        return NERVE_ERR_NOMEM;
    unsigned char *volatile px = NULL;
    png_bytep *volatile ptrs = NULL;
    int st = NERVE_OK;
    if (setjmp(png_jmpbuf(png))) {
        st = NERVE_ERR_FORMAT;
    } else {
        png_set_read_fn(png, &r, png_read_mem);
        png_read_info(png, info);
        png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
        int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
        if ((st = check_size(name, w, h)) != NERVE_OK) {
        } else if (type != PNG_COLOR_TYPE_GRAY && type != PNG_COLOR_TYPE_PALETTE) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: a class mask must be a grey or palette "
                                 "PNG of class indices; this one is %s", name,
                                 type == PNG_COLOR_TYPE_GRAY_ALPHA ? "grey with alpha"
                                 : type == PNG_COLOR_TYPE_RGB      ? "RGB colour"
                                                                   : "RGB colour with alpha");
        } else if (depth > 8) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: a class mask must have at most 8 bits "
                                 "a pixel, not %d", name, depth);
        } else {
            if (depth < 8)
                png_set_packing(png); /* one byte a pixel, the value unscaled */
            png_set_interlace_handling(png);
            png_read_update_info(png, info);
            if (png_get_rowbytes(png, info) != w) {
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: unexpected PNG row layout", name);
            } else {
                px = nerve_xmalloc((size_t)w * h);
                ptrs = px ? nerve_xmalloc(h * sizeof *ptrs) : NULL;
                if (!ptrs) {
                    st = NERVE_ERR_NOMEM;
                } else {
                    for (png_uint_32 y = 0; y < h; y++)
                        ptrs[y] = px + (size_t)y * w;
                    png_read_image(png, ptrs);
                    png_read_end(png, NULL);
                    *h_out = (int)h;
                    *w_out = (int)w;
                }
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    nerve_xfree(ptrs);
    if (st == NERVE_OK)
        *out = px;
    else
        nerve_xfree(px);
    return st;
}

/* ---- JPEG --------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    const char *name;
    char warning[JMSG_LENGTH_MAX]; /* the first warning (corrupt or truncated data) */
} jpeg_err;

static void jpeg_fail(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, msg);
    nerve_set_error(NERVE_ERR_FORMAT, "%s: JPEG: %s", e->name, msg);
    longjmp(e->jump, 1);
}

/* libjpeg goes on after corrupt or missing data with a warning (and gray pixels): such an
 * image is refused afterwards, so damage is never silent. */
static void jpeg_note(j_common_ptr cinfo, int level)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level < 0 && !e->warning[0])
        cinfo->err->format_message(cinfo, e->warning);
}

static int decode_jpeg(const unsigned char *buf, size_t len, const char *name, int channels,
                       nerve_image *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    unsigned char *volatile row = NULL;
    float *volatile px = NULL;
    float *volatile tmp = NULL;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.emit_message = jpeg_note;
    err.name = name;
    int st = NERVE_OK;
    if (setjmp(err.jump)) {
        st = NERVE_ERR_FORMAT;
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: CMYK JPEG images are not supported "
                             "(convert to RGB)", name);
        goto done;
    }
    int colour = cinfo.num_components == 1 ? 1 : 3;
    cinfo.out_color_space = colour == 1 ? JCS_GRAYSCALE : JCS_RGB;
    if ((st = check_size(name, cinfo.image_width, cinfo.image_height)) != NERVE_OK)
        goto done;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int file_c = cinfo.output_components;
    int out_c = channels ? channels : colour;
    row = nerve_xmalloc((size_t)w * file_c);
    px = row ? nerve_xmalloc((size_t)w * file_c * sizeof(float)) : NULL;
    tmp = px ? nerve_xalloc_floats((size_t)out_c * w) : NULL;
    if (!tmp || alloc_image(out, out_c, h, w) != NERVE_OK) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    size_t plane = (size_t)h * w;
    for (int y = 0; y < h; y++) {
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: JPEG: the data ends at row %d of %d", name,
                                 y, h);
            goto done;
        }
        for (int i = 0; i < w * file_c; i++)
            px[i] = row[i] * (1.0f / 255.0f);
        to_planes(px, file_c, colour, 1, w, out_c, tmp);
        for (int c = 0; c < out_c; c++)
            memcpy(out->data + c * plane + (size_t)y * w, tmp + (size_t)c * w, w * sizeof(float));
    }
    jpeg_finish_decompress(&cinfo);
    if (err.warning[0])
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: JPEG: corrupt or truncated data (%s)", name,
                             err.warning);
done:
    jpeg_destroy_decompress(&cinfo);
    nerve_xfree(row);
    nerve_xfree(px);
    nerve_xfree_aligned(tmp);
    if (st)
        nerve_image_free(out);
    return st;
}

/* ---- entry points ------------------------------------------------------------------- */

int nerve_image_decode(const void *buf, size_t len, const char *name, int channels,
                       nerve_image *out)
{
    if (!out)
        return nerve_set_error(NERVE_ERR_ARG, "image decode: null output");
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<image>";
    if (!buf && len)
        return nerve_set_error(NERVE_ERR_ARG, "%s: null buffer", name);
    if (channels != 0 && channels != 1 && channels != 3)
        return nerve_set_error(NERVE_ERR_ARG, "%s: channels must be 1 or 3 (or 0: as stored), "
                               "not %d", name, channels);
    const unsigned char *p = buf;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(p, png_sig, 8))
        return decode_png(p, len, name, channels, out);
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return decode_jpeg(p, len, name, channels, out);
    return nerve_set_error(NERVE_ERR_FORMAT, "%s: neither a PNG nor a JPEG file (%zu bytes, "
                           "no PNG or JPEG signature)", name, len);
}

int nerve_image_load(const char *path, int channels, nerve_image *out)
{
    if (!path || !out)
        return nerve_set_error(NERVE_ERR_ARG, "image load: null argument");
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char *buf = data_read_file(path, &len);
    if (!buf)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    int st = nerve_image_decode(buf, len, path, channels, out);
    nerve_xfree(buf);
    return st;
}

/* ---- resizing ----------------------------------------------------------------------- */

/* Bilinear sample of plane p [h, w] at (y, x) in pixel-centre coordinates, edges clamped. */
static float bilinear(const float *p, int h, int w, float y, float x)
{
    y = y < 0 ? 0 : y > h - 1 ? (float)(h - 1) : y;
    x = x < 0 ? 0 : x > w - 1 ? (float)(w - 1) : x;
    int y0 = (int)y, x0 = (int)x;
    int y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
    float fy = y - y0, fx = x - x0;
    float a = p[(size_t)y0 * w + x0] + fx * (p[(size_t)y0 * w + x1] - p[(size_t)y0 * w + x0]);
    float b = p[(size_t)y1 * w + x0] + fx * (p[(size_t)y1 * w + x1] - p[(size_t)y1 * w + x0]);
    return a + fy * (b - a);
}

/* Writes src scaled by (sy, sx) into dst [c, oh, ow] with its top-left corner at (top, left)
 * of size (rh, rw); area-averaging (box filter) when shrinking by 2x or more keeps the
 * picture free of aliasing, bilinear otherwise. */
static void resample(const nerve_image *src, float *dst, int oh, int ow, int top, int left,
                     int rh, int rw)
{
    float sy = (float)src->h / rh, sx = (float)src->w / rw;
    size_t splane = (size_t)src->h * src->w, oplane = (size_t)oh * ow;
    for (int c = 0; c < src->c; c++) {
        const float *p = src->data + c * splane;
        for (int y = 0; y < rh; y++) {
            int oy = top + y;
            if (oy < 0 || oy >= oh)
                continue;
            for (int x = 0; x < rw; x++) {
                int ox = left + x;
                if (ox < 0 || ox >= ow)
                    continue;
                float v;
                if (sy >= 2.0f || sx >= 2.0f) {
                    int y0 = (int)floorf(y * sy), y1 = (int)ceilf((y + 1) * sy);
                    int x0 = (int)floorf(x * sx), x1 = (int)ceilf((x + 1) * sx);
                    y1 = y1 > src->h ? src->h : y1;
                    x1 = x1 > src->w ? src->w : x1;
                    double s = 0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++)
                            s += p[(size_t)yy * src->w + xx];
                    v = (float)(s / ((double)(y1 - y0) * (x1 - x0)));
                } else {
                    v = bilinear(p, src->h, src->w, (y + 0.5f) * sy - 0.5f, (x + 0.5f) * sx - 0.5f);
                }
                dst[c * oplane + (size_t)oy * ow + ox] = v;
            }
        }
    }
}

int nerve_image_resize(const nerve_image *src, int h, int w, nerve_resize policy, float *dst)
{
    if (!src || !src->data || !dst || h < 1 || w < 1)
        return nerve_set_error(NERVE_ERR_ARG, "image resize: bad arguments");
    size_t numel = (size_t)src->c * h * w;
    if (src->h == h && src->w == w) {
        memcpy(dst, src->data, numel * sizeof(float));
        return NERVE_OK;
    }
    switch (policy) {
    case NERVE_RESIZE_STRETCH:
        resample(src, dst, h, w, 0, 0, h, w);
        return NERVE_OK;
    case NERVE_RESIZE_CROP:
    case NERVE_RESIZE_PAD: {
        /* crop: scale so that the image covers h x w, centre, cut what sticks out; pad:
         * scale so that it fits inside, centre, zeros around */
        double ry = (double)h / src->h, rx = (double)w / src->w;
        double r = policy == NERVE_RESIZE_CROP ? fmax(ry, rx) : fmin(ry, rx);
        int rh = (int)lround(src->h * r), rw = (int)lround(src->w * r);
        rh = rh < 1 ? 1 : rh;
        rw = rw < 1 ? 1 : rw;
        if (policy == NERVE_RESIZE_PAD)
            memset(dst, 0, numel * sizeof(float));
        resample(src, dst, h, w, (h - rh) / 2, (w - rw) / 2, rh, rw);
        return NERVE_OK;
    }
    default:
        return nerve_set_error(NERVE_ERR_SHAPE, "image is %dx%d, not %dx%d, and no resize policy "
                               "is set (resize=stretch|crop|pad)",
                               src->h, src->w, h, w);
    }
}

int nerve_resize_parse(const char *s, nerve_resize *out)
{
    static const char *names[] = {"none", "stretch", "crop", "pad"};
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (nerve_resize)i;
            return NERVE_OK;
        }
    return nerve_set_error(NERVE_ERR_ARG, "unknown resize policy '%s' (none, stretch, crop, pad)",
                           s ? s : "(null)");
}
