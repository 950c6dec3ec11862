/* im2col / col2im: the patch matrices that turn a convolution into one GEMM.
 *
 * Row r = ((c * KD + kd) * KH + kh) * KW + kw of the column matrix holds, for every output
 * position p = (od * OH + oh) * OW + ow,
 *   col[r, p] = im[c, od*sd + td*dd - pd, oh*sh + th*dh - ph, ow*sw + tw*dw - pw]
 * with t = k, or K - 1 - k when the kernel is flipped, and zero outside the image.
 * col2im is its adjoint: it adds every entry back where it was read from.
 *
 * A matrix row is one kernel tap of one channel. For a tap, the output positions that read
 * inside the image form a box [lo, hi) per dimension (computed once per tap and shared by
 * all channels, so the inner loops never test bounds). Consecutive output rows (od, oh)
 * outside the box are zeros; a row inside copies (or adds back) its ow in [lo, hi) from one
 * image row, with zeros around. With stride 1 and output rows as wide as the image's (the
 * usual "same" convolution), a run of inside rows reads one stretch of the image: it is
 * copied as one long vector loop and the few entries that read padding are zeroed after.
 * The patch-major layout (im2row, one patch per position) takes the same walk with a
 * position stride. Calls may cover a range of output rows only (column blocks that stay in
 * cache). Channels are independent (each owns its image plane and its rows), so large
 * whole-matrix calls split them across the thread pool; the result does not depend on the
 * split. Inside a running task the walk stays on the calling thread. */
#include "kernels.h"

#define IM2COL_MIN_FLOATS_PER_THREAD (1 << 16)

/* The row loops below are a few floats long: GCC would turn them into memcpy / memset
 * calls whose overhead exceeds the copy itself. Keep them as inline vector loops. */
#if defined(__GNUC__) && !defined(__clang__)
#define INLINE_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define INLINE_LOOPS
#endif
/* The walk (gather_tap, scatter_tap), with the loops above inlined, is compiled for each
 * vector width and run in the one that kern_isa_active() names (KERN_ISA_CLONES). */

size_t kern_conv_rows(const kern_conv_shape *s)
{
    return (size_t)s->channels * (size_t)s->kernel[0] * (size_t)s->kernel[1] *
           (size_t)s->kernel[2];
}

size_t kern_conv_cols(const kern_conv_shape *s)
{
    return (size_t)s->out[0] * (size_t)s->out[1] * (size_t)s->out[2];
}

static int imin(int a, int b) { return a < b ? a : b; }
static int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }

/* [lo, hi): the output positions o < n_out whose index o * stride + off lies in [0, n). */
typedef struct span {
    int lo, hi;
} span;

static span inside_span(int off, int stride, int n, int n_out)
{
    span sp = {imin(ceil_div_nonneg(-off, stride), n_out),
               imin(ceil_div_nonneg(n - off, stride), n_out)};
    if (sp.hi < sp.lo)
        sp.hi = sp.lo;
    return sp;
}

/* One kernel tap: the image index read at output position 0 and the box of output
 * positions that read inside the image, per dimension. */
typedef struct tap {
    int off[3];
    span in[3];
} tap;

static tap tap_at(const kern_conv_shape *s, const int k[3])
{
    tap t;
    for (int d = 0; d < 3; d++) {
        int kk = s->flip ? s->kernel[d] - 1 - k[d] : k[d];
        t.off[d] = kk * s->dilation[d] - s->pad[d];
        t.in[d] = inside_span(t.off[d], s->stride[d], s->image[d], s->out[d]);
    }
    return t;
}

/* Where entry (row r, position p) of the patch matrix lives: r * row_step + p * pos_step. */
typedef struct patch_layout {
    size_t row_step, pos_step;
} patch_layout;

/* ---- one output row (od, oh) of one tap: OW entries ----------------------------------- */

INLINE_LOOPS static inline void zero_entries(float *dst, size_t ps, int n)
{
    if (ps == 1) {
        for (int o = 0; o < n; o++)
            dst[o] = 0.0f;
        return;
    }
    for (int o = 0; o < n; o++)
        dst[o * ps] = 0.0f;
}

/* dst[o] = src[o * stride] for o < n, dst entries ps apart. */
INLINE_LOOPS static inline void copy_entries(float *restrict dst, size_t ps,
                                             const float *restrict src, int stride, int n)
{
    if (ps == 1 && stride == 1) {
        for (int o = 0; o < n; o++)
            dst[o] = src[o];
    } else if (ps == 1) {
        for (int o = 0; o < n; o++)
            dst[o] = src[o * stride];
    } else {
        for (int o = 0; o < n; o++)
            dst[o * ps] = src[o * stride];
    }
}

/* dst[o * stride] += src[o] for o < n, src entries ps apart. */
INLINE_LOOPS static inline void add_entries(float *restrict dst, int stride,
                                            const float *restrict src, size_t ps, int n)
{
    if (ps == 1 && stride == 1) {
        for (int o = 0; o < n; o++)
            dst[o] += src[o];
    } else {
        for (int o = 0; o < n; o++)
            dst[o * stride] += src[o * ps];
    }
}

/* ---- one tap of one channel ------------------------------------------------------------ */

/* Index in the channel's plane of the image element that output row (od, oh) of tap t
 * reads at its first inside position ow = t->in[2].lo; position ow reads (ow - lo) * stride
 * further on. */
static size_t first_read(const kern_conv_shape *s, const tap *t, int od, int oh)
{
    size_t id = (size_t)(od * s->stride[0] + t->off[0]);
    size_t ih = (size_t)(oh * s->stride[1] + t->off[1]);
    size_t iw = (size_t)(t->in[2].lo * s->stride[2] + t->off[2]);
    return (id * (size_t)s->image[1] + ih) * (size_t)s->image[2] + iw;
}

/* Output rows q = od * OH + oh in [q0, q1): the slice of the matrix that a call handles.
 * A matrix row's entries for those output rows lie at dst[((q - q0) * OW + ow) * ps]. */
typedef struct row_range {
    int q0, q1;
} row_range;

/* The output rows from (od, oh) on, at most `left`, that share the output plane od and lie
 * all inside the tap's box or all outside it (*inside says which): their count. */
static int run_length(const kern_conv_shape *s, const tap *t, int od, int oh, int left,
                      int *inside)
{
    const span h = t->in[1];
    int n = imin(left, s->out[1] - oh);
    *inside = 0;
    if (od < t->in[0].lo || od >= t->in[0].hi || t->in[2].lo >= t->in[2].hi || oh >= h.hi)
        return n;
    if (oh < h.lo)
        return imin(n, h.lo - oh);
    *inside = 1;
    return imin(n, h.hi - oh);
}

/* Steps the output row (od, oh) n rows on (n never crosses more than one plane end). */
static void advance_row(const kern_conv_shape *s, int *od, int *oh, int n)
{
    *oh += n;
    if (*oh >= s->out[1]) {
        *oh -= s->out[1];
        ++*od;
    }
}

/* Whether a run of inside rows reads one stretch of its image plane: stride 1 along height
 * and width, and output rows as wide as image rows, so that every entry of the run reads
 * the image element a fixed distance after its own index. The entries that read padding
 * (ow outside the tap's width span) then fall in the gaps between the rows' inside parts. */
static int runs_are_contiguous(const kern_conv_shape *s, size_t ps)
{
    return ps == 1 && s->stride[1] == 1 && s->stride[2] == 1 && s->out[2] == s->image[2];
}

/* The gaps of an n-row contiguous run starting at dst: the entries before the first row's
 * inside part, between the rows' inside parts and after the last one. */
INLINE_LOOPS static void zero_run_gaps(float *dst, int n, int OW, span w)
{
    zero_entries(dst, 1, w.lo);
    for (int r = 0; r + 1 < n; r++)
        zero_entries(dst + (size_t)r * OW + w.hi, 1, OW - w.hi + w.lo);
    zero_entries(dst + (size_t)(n - 1) * OW + w.hi, 1, OW - w.hi);
}

/* Stretch length of an n-row contiguous run: from the first row's inside part to the end
 * of the last one's. */
static size_t run_stretch(int n, int OW, span w)
{
    return (size_t)(n - 1) * (size_t)OW + (size_t)(w.hi - w.lo);
}

/* Fills rows [q0, q1) of one matrix row (the tap t of the channel whose image plane is
 * `plane`): runs of rows outside the box are zeros; inside runs are one long copy when
 * contiguous, else one copy per output row. */
KERN_ISA_CLONES_ATTR(INLINE_LOOPS, gather_tap,
                     (const kern_conv_shape *s, const tap *t, row_range rr, const float *plane,
                      float *dst, size_t ps),
                     (s, t, rr, plane, dst, ps))
{
    const int OW = s->out[2], sw = s->stride[2];
    const span w = t->in[2];
    const int contiguous = runs_are_contiguous(s, ps);
    int od = rr.q0 / s->out[1], oh = rr.q0 % s->out[1];
    for (int q = rr.q0, inside, n; q < rr.q1; q += n, advance_row(s, &od, &oh, n)) {
        n = run_length(s, t, od, oh, rr.q1 - q, &inside);
        float *d = dst + (size_t)(q - rr.q0) * OW * ps;
        if (!inside) {
            zero_entries(d, ps, n * OW);
        } else if (contiguous) {
            copy_entries(d + w.lo, 1, plane + first_read(s, t, od, oh), 1,
                         (int)run_stretch(n, OW, w));
            zero_run_gaps(d, n, OW, w);
        } else {
            for (int r = 0; r < n; r++, d += (size_t)OW * ps) {
                zero_entries(d, ps, w.lo);
                copy_entries(d + w.lo * ps, ps, plane + first_read(s, t, od, oh + r), sw,
                             w.hi - w.lo);
                zero_entries(d + w.hi * ps, ps, OW - w.hi);
            }
        }
    }
}

/* Adds rows [q0, q1) of one matrix row back into the channel's image plane. With a
 * writable `scratch_src` (the same matrix row), contiguous runs zero their gaps there and
 * then add as one stretch: the gaps land on image elements that other positions read, and
 * adding zero leaves them as they are. */
KERN_ISA_CLONES_ATTR(INLINE_LOOPS, scatter_tap,
                     (const kern_conv_shape *s, const tap *t, row_range rr, const float *src,
                      float *scratch_src, float *plane, size_t ps),
                     (s, t, rr, src, scratch_src, plane, ps))
{
    const int OW = s->out[2], sw = s->stride[2];
    const span w = t->in[2];
    const int contiguous = scratch_src && runs_are_contiguous(s, ps);
    int od = rr.q0 / s->out[1], oh = rr.q0 % s->out[1];
    for (int q = rr.q0, inside, n; q < rr.q1; q += n, advance_row(s, &od, &oh, n)) {
        n = run_length(s, t, od, oh, rr.q1 - q, &inside);
        size_t at = (size_t)(q - rr.q0) * OW * ps;
        if (!inside)
            continue;
        if (contiguous) {
            zero_run_gaps(scratch_src + at, n, OW, w);
            add_entries(plane + first_read(s, t, od, oh), 1, src + at + w.lo, 1,
                        (int)run_stretch(n, OW, w));
            continue;
        }
        for (int r = 0; r < n; r++, at += (size_t)OW * ps)
            add_entries(plane + first_read(s, t, od, oh + r), sw, src + at + w.lo * ps, ps,
                        w.hi - w.lo);
    }
}

/* ---- channels, and threads over them ---------------------------------------------------- */

typedef struct patch_job {
    const kern_conv_shape *s;
    row_range rr;
    patch_layout lay;
    const float *im_in; /* gather: read */
    float *col_out;
    const float *col_in; /* scatter: read */
    float *col_scratch;  /* scatter: col_in itself when it may be overwritten, else NULL */
    float *im_acc;       /* added into */
} patch_job;

static size_t plane_floats(const kern_conv_shape *s)
{
    return (size_t)s->image[0] * s->image[1] * s->image[2];
}

#define TAP_CHUNK 64

/* Visits the taps of channels [c0, c1), gathering or scattering each matrix row. The taps'
 * geometry is the same for every channel: it is computed once per chunk of taps. */
static void channels_range(void *p, size_t c0, size_t c1)
{
    const patch_job *j = p;
    const kern_conv_shape *s = j->s;
    const size_t plane = plane_floats(s);
    const int KH = s->kernel[1], KW = s->kernel[2];
    const int taps = s->kernel[0] * KH * KW;
    tap chunk[TAP_CHUNK];
    for (int k0 = 0; k0 < taps; k0 += TAP_CHUNK) {
        int nk = imin(TAP_CHUNK, taps - k0);
        for (int k = 0; k < nk; k++) {
            int kk = k0 + k, at[3] = {kk / (KH * KW), kk / KW % KH, kk % KW};
            chunk[k] = tap_at(s, at);
        }
        for (size_t c = c0; c < c1; c++)
            for (int k = 0; k < nk; k++) {
                size_t at = (c * (size_t)taps + (size_t)(k0 + k)) * j->lay.row_step;
                if (j->col_out)
                    gather_tap(s, &chunk[k], j->rr, j->im_in + c * plane, j->col_out + at,
                               j->lay.pos_step);
                else
                    scatter_tap(s, &chunk[k], j->rr, j->col_in + at,
                                j->col_scratch ? j->col_scratch + at : NULL,
                                j->im_acc + c * plane, j->lay.pos_step);
            }
    }
}

static void walk(const patch_job *j)
{
    const kern_conv_shape *s = j->s;
    size_t per_channel = kern_conv_rows(s) / (size_t)(s->channels > 0 ? s->channels : 1) *
                         kern_conv_cols(s);
    size_t grain = per_channel ? (IM2COL_MIN_FLOATS_PER_THREAD + per_channel - 1) / per_channel
                               : 1;
    kern_parallel_for((size_t)s->channels, grain, channels_range, (void *)j);
}

static row_range all_rows(const kern_conv_shape *s)
{
    return (row_range){0, s->out[0] * s->out[1]};
}

static patch_layout column_major_patches(const kern_conv_shape *s, row_range rr)
{
    return (patch_layout){(size_t)(rr.q1 - rr.q0) * (size_t)s->out[2], 1};
}

static patch_layout row_major_patches(const kern_conv_shape *s)
{
    return (patch_layout){1, kern_conv_rows(s)};
}

void kern_im2col(const kern_conv_shape *s, const float *im, float *col)
{
    patch_job j = {.s = s, .rr = all_rows(s), .im_in = im, .col_out = col};
    j.lay = column_major_patches(s, j.rr);
    walk(&j);
}

void kern_col2im(const kern_conv_shape *s, const float *col, float *im)
{
    patch_job j = {.s = s, .rr = all_rows(s), .col_in = col, .im_acc = im};
    j.lay = column_major_patches(s, j.rr);
    walk(&j);
}

void kern_im2col_rows(const kern_conv_shape *s, int q0, int q1, const float *im, float *col)
{
    patch_job j = {.s = s, .rr = {q0, q1}, .im_in = im, .col_out = col};
    j.lay = column_major_patches(s, j.rr);
    channels_range(&j, 0, (size_t)s->channels);
}

void kern_col2im_rows(const kern_conv_shape *s, int q0, int q1, float *col, float *im)
{
    patch_job j = {.s = s, .rr = {q0, q1}, .col_in = col, .col_scratch = col, .im_acc = im};
    j.lay = column_major_patches(s, j.rr);
    channels_range(&j, 0, (size_t)s->channels);
}

void kern_im2row(const kern_conv_shape *s, const float *im, float *row)
{
    patch_job j = {.s = s, .rr = all_rows(s), .lay = row_major_patches(s), .im_in = im,
                   .col_out = row};
    walk(&j);
}

void kern_row2im(const kern_conv_shape *s, const float *row, float *im)
{
    patch_job j = {.s = s, .rr = all_rows(s), .lay = row_major_patches(s), .col_in = row,
                   .im_acc = im};
    walk(&j);
}

/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, in 8 x 8 tiles: each tile's
 * reads and writes stay in a few cache lines, and its inner loop writes 8 contiguous
 * floats. */
enum { TRANSPOSE_TILE = 8 };

KERN_ISA_CLONES(transpose_tiles,
                (int rows, int cols, const float *src, ptrdiff_t lds, float *dst, ptrdiff_t ldd),
                (rows, cols, src, lds, dst, ldd))
{
    for (int r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
        int r1 = imin(rows, r0 + TRANSPOSE_TILE);
        for (int c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
            int c1 = imin(cols, c0 + TRANSPOSE_TILE);
            if (r1 - r0 == TRANSPOSE_TILE && c1 - c0 == TRANSPOSE_TILE) {
                for (int c = c0; c < c1; c++)
                    for (int r = 0; r < TRANSPOSE_TILE; r++)
                        dst[c * ldd + r0 + r] = src[(r0 + r) * lds + c];
                continue;
            }
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++)
                    dst[c * ldd + r] = src[r * lds + c];
        }
    }
}

void kern_transpose(int rows, int cols, const float *src, ptrdiff_t lds, float *dst,
                    ptrdiff_t ldd)
{
    transpose_tiles(rows, cols, src, lds, dst, ldd);
}
