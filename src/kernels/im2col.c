/* im2col / col2im: the patch matrices that turn a convolution into one GEMM.
 *
 * Row r = ((c * KD + kd) * KH + kh) * KW + kw of the column matrix holds, for every output
 * position p = (od * OH + oh) * OW + ow,
 *   col[r, p] = im[c, od*sd + td*dd - pd, oh*sh + th*dh - ph, ow*sw + tw*dw - pw]
 * with t = k, or K - 1 - k when the kernel is flipped, and zero outside the image.
 * col2im is its adjoint: it adds every entry back where it was read from.
 *
 * One walker visits the matrix as segments (one kernel tap, one output row (od, oh), every
 * ow); gathering and scattering differ only in what they do with a segment. Channels are
 * independent (each owns its image plane and its rows), so large calls split them across
 * threads; the result does not depend on the split. Inside a parallel region (callers that
 * already run one image per thread) the walk stays on the calling thread. */
#include "kernels.h"

#include <omp.h>
#include <string.h>

#define IM2COL_MIN_FLOATS_PER_THREAD (1 << 16)

size_t kern_conv_rows(const kern_conv_shape *s)
{
    return (size_t)s->channels * (size_t)s->kernel[0] * (size_t)s->kernel[1] *
           (size_t)s->kernel[2];
}

size_t kern_conv_cols(const kern_conv_shape *s)
{
    return (size_t)s->out[0] * (size_t)s->out[1] * (size_t)s->out[2];
}

/* Image index read at output position 0 by tap k along dimension d. */
static int tap_offset(const kern_conv_shape *s, int d, int k)
{
    int t = s->flip ? s->kernel[d] - 1 - k : k;
    return t * s->dilation[d] - s->pad[d];
}

/* [lo, hi): the output positions o < n_out whose index o * stride + off lies in [0, n). */
typedef struct span {
    int lo, hi;
} span;

static int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }
static int imin(int a, int b) { return a < b ? a : b; }

static span inside_span(int off, int stride, int n, int n_out)
{
    span sp = {imin(ceil_div_nonneg(-off, stride), n_out),
               imin(ceil_div_nonneg(n - off, stride), n_out)};
    if (sp.hi < sp.lo)
        sp.hi = sp.lo;
    return sp;
}

static int in_span(span sp, int o) { return o >= sp.lo && o < sp.hi; }

/* Where entry (row r, position p) of the patch matrix lives: r * row_step + p * pos_step. */
typedef struct patch_layout {
    size_t row_step, pos_step;
} patch_layout;

/* One segment: the OW consecutive positions of one patch-matrix row for one (od, oh). Its
 * image row (unless it lies in the padding) is touched at ow * stride + off for ow in
 * `inside`; the other positions read zero. */
typedef struct segment {
    size_t at;  /* index of the segment's first entry in the patch matrix */
    size_t row; /* index of the image row's first element; unused when outside */
    int outside;
    int off, stride, n_out;
    span inside;
} segment;

typedef struct patch_io {
    const float *im_in; /* gather: read */
    float *im_acc;      /* scatter: added into */
    const float *col_in;
    float *col_out;
    patch_layout lay;
} patch_io;

static void gather_segment(const segment *sg, const patch_io *io)
{
    float *dst = io->col_out + sg->at;
    size_t ps = io->lay.pos_step;
    if (sg->outside) {
        for (int o = 0; o < sg->n_out; o++)
            dst[o * ps] = 0.0f;
        return;
    }
    const float *src = io->im_in + sg->row;
    for (int o = 0; o < sg->inside.lo; o++)
        dst[o * ps] = 0.0f;
    if (ps == 1 && sg->stride == 1)
        memcpy(dst + sg->inside.lo, src + sg->inside.lo + sg->off,
               (size_t)(sg->inside.hi - sg->inside.lo) * sizeof(float));
    else
        for (int o = sg->inside.lo; o < sg->inside.hi; o++)
            dst[o * ps] = src[o * sg->stride + sg->off];
    for (int o = sg->inside.hi; o < sg->n_out; o++)
        dst[o * ps] = 0.0f;
}

static void scatter_segment(const segment *sg, const patch_io *io)
{
    if (sg->outside)
        return;
    const float *src = io->col_in + sg->at;
    float *dst = io->im_acc + sg->row;
    size_t ps = io->lay.pos_step;
    if (ps == 1 && sg->stride == 1) { /* contiguous on both sides: a vectorisable add */
        float *d = dst + sg->off;
        for (int o = sg->inside.lo; o < sg->inside.hi; o++)
            d[o] += src[o];
        return;
    }
    for (int o = sg->inside.lo; o < sg->inside.hi; o++)
        dst[o * sg->stride + sg->off] += src[o * ps];
}

typedef void (*segment_fn)(const segment *sg, const patch_io *io);

/* Visits every segment of channel c's rows. */
static void walk_channel(const kern_conv_shape *s, int c, segment_fn fn, const patch_io *io)
{
    const int OD = s->out[0], OH = s->out[1], OW = s->out[2];
    const int IH = s->image[1], IW = s->image[2];
    const size_t plane = (size_t)s->image[0] * IH * IW;
    size_t r = (size_t)c * s->kernel[0] * s->kernel[1] * s->kernel[2];
    for (int kd = 0; kd < s->kernel[0]; kd++)
        for (int kh = 0; kh < s->kernel[1]; kh++)
            for (int kw = 0; kw < s->kernel[2]; kw++, r++) {
                int offd = tap_offset(s, 0, kd), offh = tap_offset(s, 1, kh);
                span sd = inside_span(offd, s->stride[0], s->image[0], OD);
                span sh = inside_span(offh, s->stride[1], IH, OH);
                segment sg = {0};
                sg.off = tap_offset(s, 2, kw);
                sg.stride = s->stride[2];
                sg.n_out = OW;
                sg.inside = inside_span(sg.off, s->stride[2], IW, OW);
                size_t p = 0;
                for (int od = 0; od < OD; od++)
                    for (int oh = 0; oh < OH; oh++, p += (size_t)OW) {
                        sg.at = r * io->lay.row_step + p * io->lay.pos_step;
                        sg.outside = !in_span(sd, od) || !in_span(sh, oh);
                        if (!sg.outside) {
                            size_t id = (size_t)(od * s->stride[0] + offd);
                            size_t ih = (size_t)(oh * s->stride[1] + offh);
                            sg.row = (size_t)c * plane + (id * (size_t)IH + ih) * (size_t)IW;
                        }
                        fn(&sg, io);
                    }
            }
}

static void walk(const kern_conv_shape *s, segment_fn fn, const patch_io *io)
{
    size_t work = kern_conv_rows(s) * kern_conv_cols(s);
    int T = (int)(work / IM2COL_MIN_FLOATS_PER_THREAD);
    T = imin(imin(T, kern_threads()), s->channels);
    if (T < 2 || omp_in_parallel()) {
        for (int c = 0; c < s->channels; c++)
            walk_channel(s, c, fn, io);
        return;
    }
#pragma omp parallel for num_threads(T) schedule(static)
    for (int c = 0; c < s->channels; c++)
        walk_channel(s, c, fn, io);
}

static patch_layout column_major_patches(const kern_conv_shape *s)
{
    return (patch_layout){kern_conv_cols(s), 1};
}

static patch_layout row_major_patches(const kern_conv_shape *s)
{
    return (patch_layout){1, kern_conv_rows(s)};
}

void kern_im2col(const kern_conv_shape *s, const float *im, float *col)
{
    patch_io io = {.im_in = im, .col_out = col, .lay = column_major_patches(s)};
    walk(s, gather_segment, &io);
}

void kern_col2im(const kern_conv_shape *s, const float *col, float *im)
{
    patch_io io = {.im_acc = im, .col_in = col, .lay = column_major_patches(s)};
    walk(s, scatter_segment, &io);
}

void kern_im2row(const kern_conv_shape *s, const float *im, float *row)
{
    patch_io io = {.im_in = im, .col_out = row, .lay = row_major_patches(s)};
    walk(s, gather_segment, &io);
}

void kern_row2im(const kern_conv_shape *s, const float *row, float *im)
{
    patch_io io = {.im_acc = im, .col_in = row, .lay = row_major_patches(s)};
    walk(s, scatter_segment, &io);
}
