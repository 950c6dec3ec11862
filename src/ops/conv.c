/* Convolution operators: conv (1-3 spatial dimensions), conv_transpose, local.
 *
 * conv and conv_transpose share one engine. It sees a convolution as a map between a "big"
 * side (the image the kernel slides over, C_big channels) and a "small" side (one value
 * per kernel position, C_small channels), with weights W [C_small, C_big/G, *k]; per image
 * and group g (R = C_big/G * prod(k) patch rows, Ls small positions):
 *   correlate: small_g [C_small/G, Ls]  = W_g [C_small/G, R] . im2col(big_g) [R, Ls]
 *   adjoint:   big_g                   += col2im(W_g^T . small_g)
 *   weight:    dW_g                    += dsmall_g . im2col(big_g)^T
 * conv:           big = x, small = y: forward correlate; dx adjoint; dW weight.
 * conv_transpose: big = y, small = x: forward adjoint; dx correlate; dW weight (its weight
 *                 [C, O/G, *k] is exactly the weight of the conv it is the adjoint of).
 * Each thread takes its images one at a time, so the scratch is one group's column matrix of
 * one image per thread (see "images across threads" for the split). A 1x1
 * kernel with stride 1 and no padding needs no im2col: big_g is its own column matrix.
 *
 * local (unshared weights) gathers every image's patches position-major (im2row) and
 * takes one dot product per (position, output channel).
 *
 * Attributes: i[0..2] stride, i[3..5] dilation, i[6] groups, i[7] CONV_SAME | CONV_FLIP,
 * ints[0..2] pad_begin, ints[3..5] pad_end, f[0..2] output padding (small integers, exact
 * in float). Per-dimension settings are stored in the caller's order (entries 0..S-1). */
#include "../kernels/kernels.h"
#include "ops.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { CONV_SAME = 1, CONV_FLIP = 2 };
enum { MAX_SPATIAL = 3 };

nerve_conv_config nerve_conv_default(void)
{
    nerve_conv_config c;
    memset(&c, 0, sizeof c);
    for (int d = 0; d < MAX_SPATIAL; d++)
        c.stride[d] = c.dilation[d] = 1;
    c.groups = 1;
    return c;
}

static node_attr conv_attr(const nerve_conv_config *c, const int *output_padding)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    for (int d = 0; d < MAX_SPATIAL; d++) {
        at.i[d] = c->stride[d];
        at.i[3 + d] = c->dilation[d];
        at.ints[d] = c->pad_begin[d];
        at.ints[3 + d] = c->pad_end[d];
        at.f[d] = output_padding ? (float)output_padding[d] : 0.0f;
    }
    at.i[6] = c->groups;
    at.i[7] = (c->same ? CONV_SAME : 0) | (c->flip ? CONV_FLIP : 0);
    return at;
}

static nerve_conv_config attr_config(const node_attr *at, int output_padding[MAX_SPATIAL])
{
    nerve_conv_config c;
    for (int d = 0; d < MAX_SPATIAL; d++) {
        c.stride[d] = at->i[d];
        c.dilation[d] = at->i[3 + d];
        c.pad_begin[d] = at->ints[d];
        c.pad_end[d] = at->ints[3 + d];
        output_padding[d] = (int)at->f[d];
    }
    c.groups = at->i[6];
    c.same = (at->i[7] & CONV_SAME) != 0;
    c.flip = (at->i[7] & CONV_FLIP) != 0;
    return c;
}

/* Like op_shape_error, for settings rather than shapes. */
static int op_arg_error(const node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nerve_set_error(NERVE_ERR_ARG, "%s (node '%s'): %s", n->op->name, n->name, msg);
}

static int check_config(const node *n, const nerve_conv_config *c, int S)
{
    for (int d = 0; d < S; d++) {
        if (c->stride[d] < 1)
            return op_arg_error(n, "stride[%d] is %d; must be >= 1", d, c->stride[d]);
        if (c->dilation[d] < 1)
            return op_arg_error(n, "dilation[%d] is %d; must be >= 1", d, c->dilation[d]);
        if (!c->same && (c->pad_begin[d] < 0 || c->pad_end[d] < 0))
            return op_arg_error(n, "padding of spatial dim %d is %d/%d; must be >= 0", d,
                                c->pad_begin[d], c->pad_end[d]);
    }
    if (c->groups < 1)
        return op_arg_error(n, "groups is %d; must be >= 1", c->groups);
    return NERVE_OK;
}

/* ---- geometry ------------------------------------------------------------------------- */

/* Shape computations run from scratch() too, which sees a const graph. */
static const node *input_of(const nerve_graph *g, const node *n, int i)
{
    return &g->nodes[n->in[i]];
}

typedef struct conv_geom {
    int batch, groups;
    int big_c, small_c;            /* channels of each side, all groups */
    size_t big_plane, small_plane; /* spatial elements per channel */
    kern_conv_shape ks;            /* one group of one image: ks.channels = big_c / groups */
    size_t rows;                   /* patch rows of one group: big_c/groups * prod(k) */
    int direct;                    /* 1x1, stride 1, no padding: im2col(big) is big itself */
} conv_geom;

/* A shape with every dimension neutral; spatial dim d of S lands at 3 - S + d. */
static kern_conv_shape neutral_shape(void)
{
    kern_conv_shape ks;
    memset(&ks, 0, sizeof ks);
    for (int d = 0; d < MAX_SPATIAL; d++)
        ks.image[d] = ks.kernel[d] = ks.out[d] = ks.stride[d] = ks.dilation[d] = 1;
    return ks;
}

static int extent(const nerve_conv_config *c, int d, int k) { return c->dilation[d] * (k - 1) + 1; }

/* Forward convolutions (conv, local): padding and output size of each spatial dim from the
 * input sizes n[S] and kernel sizes k[S]. */
static int plan_forward_dims(const node *n, const nerve_conv_config *c, int S, const int *in,
                             const int *k, kern_conv_shape *ks)
{
    for (int d = 0; d < S; d++) {
        int e = extent(c, d, k[d]), s = c->stride[d], pb = c->pad_begin[d], pe = c->pad_end[d];
        if (c->same) {
            int out = (in[d] + s - 1) / s;
            int total = (out - 1) * s + e - in[d];
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
        }
        if (in[d] + pb + pe < e)
            return op_shape_error(n,
                                  "kernel extent %d (size %d, dilation %d) is larger than the "
                                  "padded input %d (%d + %d + %d) along spatial dim %d",
                                  e, k[d], c->dilation[d], in[d] + pb + pe, in[d], pb, pe, d);
        int D = MAX_SPATIAL - S + d;
        ks->image[D] = in[d];
        ks->kernel[D] = k[d];
        ks->out[D] = (in[d] + pb + pe - e) / s + 1;
        ks->stride[D] = s;
        ks->pad[D] = pb;
        ks->dilation[D] = c->dilation[d];
    }
    ks->flip = c->flip;
    return NERVE_OK;
}

/* Transposed convolution: the output (the big side) from the input sizes in[S]. */
static int plan_transpose_dims(const node *n, const nerve_conv_config *c, const int *outpad,
                               int S, const int *in, const int *k, kern_conv_shape *ks)
{
    for (int d = 0; d < S; d++) {
        int e = extent(c, d, k[d]), s = c->stride[d];
        int pb = c->pad_begin[d], pe = c->pad_end[d], op = outpad[d];
        if (c->same) {
            int total = e - s;
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
            op = total < 0 ? -total : 0;
        } else if (op < 0 || (op >= s && op >= c->dilation[d])) {
            return op_arg_error(n, "output_padding[%d] is %d; must be in 0..max(stride, "
                                   "dilation) - 1 = %d", d, op,
                                (s > c->dilation[d] ? s : c->dilation[d]) - 1);
        }
        int out = (in[d] - 1) * s - pb - pe + e + op;
        if (out < 1)
            return op_shape_error(n, "output size %d along spatial dim %d: the padding %d + %d "
                                     "removes more than (%d - 1) * %d + %d",
                                  out, d, pb, pe, in[d], s, e + op);
        int D = MAX_SPATIAL - S + d;
        ks->image[D] = out;
        ks->kernel[D] = k[d];
        ks->out[D] = in[d];
        ks->stride[D] = s;
        ks->pad[D] = pb;
        ks->dilation[D] = c->dilation[d];
    }
    ks->flip = c->flip;
    return NERVE_OK;
}

static size_t image_plane(const int *dims) { return (size_t)dims[0] * dims[1] * dims[2]; }

static int is_direct(const kern_conv_shape *ks)
{
    for (int d = 0; d < MAX_SPATIAL; d++)
        if (ks->kernel[d] != 1 || ks->stride[d] != 1 || ks->pad[d] != 0 ||
            ks->image[d] != ks->out[d])
            return 0;
    return 1;
}

static void finish_geom(conv_geom *cg)
{
    cg->ks.channels = cg->big_c / cg->groups;
    cg->big_plane = image_plane(cg->ks.image);
    cg->small_plane = image_plane(cg->ks.out);
    cg->rows = kern_conv_rows(&cg->ks);
    cg->direct = is_direct(&cg->ks);
}

static int check_bias(const nerve_graph *g, const node *n, int channels)
{
    if (n->n_in < 3)
        return NERVE_OK;
    const node *b = input_of(g, n, 2);
    if (b->ndim != 1 || b->dims[0] != channels)
        return op_shape_error(n, "bias must be [%d] (one per output channel)", channels);
    return NERVE_OK;
}

/* Output dims [N, C, *spatial of the given 3-D extents]. */
static void set_output_shape(node *n, int N, int C, int S, const int *ext3)
{
    n->ndim = 2 + S;
    n->dims[0] = N;
    n->dims[1] = C;
    for (int d = 0; d < S; d++)
        n->dims[2 + d] = ext3[MAX_SPATIAL - S + d];
}

/* Checks x [N, C, *n] against a kernel whose spatial rank is S. */
static int check_input_rank(const node *n, const node *x, int S)
{
    if (S < 1 || S > MAX_SPATIAL)
        return op_shape_error(n, "the weight gives %d spatial dims; 1 to 3 are supported", S);
    if (x->ndim != S + 2)
        return op_shape_error(n, "input must be [N, C] + %d spatial dims (rank %d), got rank %d",
                              S, S + 2, x->ndim);
    return NERVE_OK;
}

static int check_groups(const node *n, int G, int C, int O)
{
    if (C % G)
        return op_shape_error(n, "%d input channels are not divisible by %d groups", C, G);
    if (O % G)
        return op_shape_error(n, "%d output channels are not divisible by %d groups", O, G);
    return NERVE_OK;
}

/* conv: x [N, C, *n], w [O, C/G, *k]. */
static int conv_geometry(const nerve_graph *g, const node *n, conv_geom *cg)
{
    const node *x = input_of(g, n, 0), *w = input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 2, st;
    nerve_conv_config c = attr_config(&n->attr, outpad);
    if ((st = check_input_rank(n, x, S)) || (st = check_config(n, &c, S)))
        return st;
    int C = x->dims[1], O = w->dims[0];
    if ((st = check_groups(n, c.groups, C, O)))
        return st;
    if (w->dims[1] != C / c.groups)
        return op_shape_error(n, "weight has %d input channels per group; the input's %d "
                                 "channels in %d groups need %d", w->dims[1], C, c.groups,
                              C / c.groups);
    if ((st = check_bias(g, n, O)))
        return st;
    *cg = (conv_geom){.batch = x->dims[0], .groups = c.groups, .big_c = C, .small_c = O};
    cg->ks = neutral_shape();
    if ((st = plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 2, &cg->ks)))
        return st;
    finish_geom(cg);
    return NERVE_OK;
}

/* conv_transpose: x [N, C, *n], w [C, O/G, *k]; the big side is the output. */
static int conv_transpose_geometry(const nerve_graph *g, const node *n, conv_geom *cg)
{
    const node *x = input_of(g, n, 0), *w = input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 2, st;
    nerve_conv_config c = attr_config(&n->attr, outpad);
    if ((st = check_input_rank(n, x, S)) || (st = check_config(n, &c, S)))
        return st;
    int C = x->dims[1], O = w->dims[1] * c.groups;
    if (w->dims[0] != C)
        return op_shape_error(n, "weight [C, O/groups, *k] has C = %d but the input has %d "
                                 "channels", w->dims[0], C);
    if ((st = check_groups(n, c.groups, C, O)) || (st = check_bias(g, n, O)))
        return st;
    *cg = (conv_geom){.batch = x->dims[0], .groups = c.groups, .big_c = O, .small_c = C};
    cg->ks = neutral_shape();
    if ((st = plan_transpose_dims(n, &c, outpad, S, x->dims + 2, w->dims + 2, &cg->ks)))
        return st;
    finish_geom(cg);
    return NERVE_OK;
}

/* ---- the engine ----------------------------------------------------------------------- */

/* Group g's slice of one image of a side with `plane` elements per channel. */
static size_t group_offset(int g, int group_channels, size_t plane)
{
    return (size_t)g * (size_t)group_channels * plane;
}

/* Weights of group g: rows [g * C_small/G, ...) of W [C_small, rows]. */
static const float *group_weight(const conv_geom *cg, const float *w, int g)
{
    return w + (size_t)g * (size_t)(cg->small_c / cg->groups) * cg->rows;
}

/* im2col of big_g into col, or big_g itself when the convolution is direct. */
static const float *patches(const conv_geom *cg, const float *big_g, float *col)
{
    if (cg->direct)
        return big_g;
    kern_im2col(&cg->ks, big_g, col);
    return col;
}

/* ---- images across threads -------------------------------------------------------------
 * When one image's products are too small for kern_sgemm to use every thread, the batch is
 * split instead: thread t of T takes a contiguous block of images, single-threaded products,
 * and slice t of the node's scratch, [column matrix | partial weight gradient]. Images are
 * independent, so the value and input gradient do not depend on T; the weight gradient sums
 * the partials in thread order, so it is reproducible for a given T. */

typedef void (*gemm_fn)(int trans_a, int trans_b, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc);

/* Images [i0, i1) with their column buffer and the product to run. */
typedef struct image_block {
    int i0, i1;
    float *col;
    gemm_fn gemm;
} image_block;

static size_t column_floats(const conv_geom *cg) { return cg->direct ? 0 : cg->rows * cg->small_plane; }
static size_t weight_floats(const conv_geom *cg) { return (size_t)cg->small_c * cg->rows; }
static size_t slice_floats(const conv_geom *cg) { return column_floats(cg) + weight_floats(cg); }

/* Threads worth giving to the images of a batch of `batch`: 1 when there is one image or
 * when kern_sgemm already threads one image's products. */
static int image_threads(const conv_geom *cg, int batch)
{
    int T = kern_threads();
    int per_image = kern_sgemm_threads(cg->small_c / cg->groups, (int)cg->small_plane,
                                       (int)cg->rows);
    if (T < 2 || batch < 2 || per_image >= T)
        return 1;
    return T < batch ? T : batch;
}

/* One group's column matrix of one image (none when direct), or one slice per thread. */
static size_t engine_scratch(const conv_geom *cg)
{
    int T = image_threads(cg, cg->batch);
    return T > 1 ? (size_t)T * slice_floats(cg) : column_floats(cg);
}

/* Threads for this pass: as planned, but never more than the scratch has slices for (the
 * thread setting may have grown since compilation). */
static int engine_threads(const conv_geom *cg, size_t scratch_n)
{
    size_t slices = scratch_n >= 2 * slice_floats(cg) ? scratch_n / slice_floats(cg) : 1;
    int T = image_threads(cg, cg->batch);
    return (size_t)T < slices ? T : (int)slices;
}

static image_block whole_batch(const conv_geom *cg, float *scratch)
{
    return (image_block){0, cg->batch, scratch, kern_sgemm};
}

/* Thread t's images of T, and its slice of the scratch. */
static image_block thread_block(const conv_geom *cg, float *scratch, int t, int T)
{
    return (image_block){(int)((long long)cg->batch * t / T),
                         (int)((long long)cg->batch * (t + 1) / T),
                         scratch + (size_t)t * slice_floats(cg), kern_sgemm_serial};
}

static float *thread_partial(const conv_geom *cg, float *scratch, int t)
{
    return scratch + (size_t)t * slice_floats(cg) + column_floats(cg);
}

/* ---- the three passes, over a block of images ----------------------------------------- */

/* small = beta * small + W . im2col(big) */
static void correlate_images(const conv_geom *cg, const image_block *ib, const float *w,
                             const float *big, float *small, float beta)
{
    int Cb = cg->big_c / cg->groups, Cs = cg->small_c / cg->groups;
    int Ls = (int)cg->small_plane, R = (int)cg->rows;
    for (int i = ib->i0; i < ib->i1; i++)
        for (int g = 0; g < cg->groups; g++) {
            const float *big_g = big + group_offset(i * cg->groups + g, Cb, cg->big_plane);
            float *small_g = small + group_offset(i * cg->groups + g, Cs, cg->small_plane);
            const float *cols = patches(cg, big_g, ib->col);
            ib->gemm(0, 0, Cs, Ls, R, 1.0f, group_weight(cg, w, g), R, cols, Ls, beta, small_g,
                     Ls);
        }
}

/* big += col2im(W^T . small) */
static void adjoint_images(const conv_geom *cg, const image_block *ib, const float *w,
                           const float *small, float *big)
{
    int Cb = cg->big_c / cg->groups, Cs = cg->small_c / cg->groups;
    int Ls = (int)cg->small_plane, R = (int)cg->rows;
    for (int i = ib->i0; i < ib->i1; i++)
        for (int g = 0; g < cg->groups; g++) {
            const float *small_g = small + group_offset(i * cg->groups + g, Cs, cg->small_plane);
            float *big_g = big + group_offset(i * cg->groups + g, Cb, cg->big_plane);
            if (cg->direct) { /* the column matrix is big_g: accumulate straight into it */
                ib->gemm(1, 0, R, Ls, Cs, 1.0f, group_weight(cg, w, g), R, small_g, Ls, 1.0f,
                         big_g, Ls);
                continue;
            }
            ib->gemm(1, 0, R, Ls, Cs, 1.0f, group_weight(cg, w, g), R, small_g, Ls, 0.0f,
                     ib->col, Ls);
            kern_col2im(&cg->ks, ib->col, big_g);
        }
}

/* dW += dsmall . im2col(big)^T, summed over the block's images. */
static void weight_grad_images(const conv_geom *cg, const image_block *ib, const float *big,
                               const float *dsmall, float *dw)
{
    int Cb = cg->big_c / cg->groups, Cs = cg->small_c / cg->groups;
    int Ls = (int)cg->small_plane, R = (int)cg->rows;
    for (int i = ib->i0; i < ib->i1; i++)
        for (int g = 0; g < cg->groups; g++) {
            const float *big_g = big + group_offset(i * cg->groups + g, Cb, cg->big_plane);
            const float *ds_g = dsmall + group_offset(i * cg->groups + g, Cs, cg->small_plane);
            const float *cols = patches(cg, big_g, ib->col);
            float *dw_g = dw + (size_t)g * (size_t)Cs * cg->rows;
            ib->gemm(0, 1, Cs, R, Ls, 1.0f, ds_g, Ls, cols, Ls, 1.0f, dw_g, R);
        }
}

/* ---- the passes over the whole batch -------------------------------------------------- */

static void conv_correlate(const conv_geom *cg, const float *w, const float *big, float *small,
                           float beta, float *scratch, size_t scratch_n)
{
    int T = engine_threads(cg, scratch_n);
    if (T == 1) {
        image_block ib = whole_batch(cg, scratch);
        correlate_images(cg, &ib, w, big, small, beta);
        return;
    }
#pragma omp parallel num_threads(T)
    {
        image_block ib = thread_block(cg, scratch, omp_get_thread_num(), omp_get_num_threads());
        correlate_images(cg, &ib, w, big, small, beta);
    }
}

static void conv_adjoint(const conv_geom *cg, const float *w, const float *small, float *big,
                         float *scratch, size_t scratch_n)
{
    int T = engine_threads(cg, scratch_n);
    if (T == 1) {
        image_block ib = whole_batch(cg, scratch);
        adjoint_images(cg, &ib, w, small, big);
        return;
    }
#pragma omp parallel num_threads(T)
    {
        image_block ib = thread_block(cg, scratch, omp_get_thread_num(), omp_get_num_threads());
        adjoint_images(cg, &ib, w, small, big);
    }
}

/* Each thread sums its images into its own partial; after a barrier, thread t adds every
 * partial, in thread order, into its share of dW's elements. */
static void conv_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                             float *dw, float *scratch, size_t scratch_n)
{
    int T = engine_threads(cg, scratch_n);
    if (T == 1) {
        image_block ib = whole_batch(cg, scratch);
        weight_grad_images(cg, &ib, big, dsmall, dw);
        return;
    }
    size_t nw = weight_floats(cg);
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        image_block ib = thread_block(cg, scratch, t, nt);
        float *part = thread_partial(cg, scratch, t);
        memset(part, 0, nw * sizeof(float));
        weight_grad_images(cg, &ib, big, dsmall, part);
#pragma omp barrier
        size_t j0 = nw * (size_t)t / (size_t)nt, j1 = nw * (size_t)(t + 1) / (size_t)nt;
        for (int s = 0; s < nt; s++) {
            const float *p = thread_partial(cg, scratch, s);
            for (size_t j = j0; j < j1; j++)
                dw[j] += p[j];
        }
    }
}

/* ---- bias over [N, C, plane]: one value per channel, or per (channel, position) ------- */

static void bias_fill(float *y, const float *b, int N, int C, size_t plane, int per_position)
{
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float *row = y + ((size_t)i * C + c) * plane;
            if (!b)
                memset(row, 0, plane * sizeof(float));
            else if (per_position)
                memcpy(row, b + (size_t)c * plane, plane * sizeof(float));
            else
                for (size_t p = 0; p < plane; p++)
                    row[p] = b[c];
        }
}

static void bias_grad(const float *dy, float *db, int N, int C, size_t plane, int per_position)
{
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            const float *row = dy + ((size_t)i * C + c) * plane;
            if (per_position) {
                for (size_t p = 0; p < plane; p++)
                    db[(size_t)c * plane + p] += row[p];
            } else {
                float s = 0.0f;
                for (size_t p = 0; p < plane; p++)
                    s += row[p];
                db[c] += s;
            }
        }
}

static const float *bias_value(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input(g, n, 2)->value : NULL;
}

static float *bias_gradient(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input_grad(g, n, 2) : NULL;
}

/* ---- conv ----------------------------------------------------------------------------- */

static int conv_infer(nerve_graph *g, node *n)
{
    conv_geom cg;
    int st = conv_geometry(g, n, &cg);
    if (st)
        return st;
    set_output_shape(n, cg.batch, cg.small_c, node_input(g, n, 1)->ndim - 2, cg.ks.out);
    return NERVE_OK;
}

static size_t conv_scratch(const nerve_graph *g, const node *n)
{
    conv_geom cg;
    return conv_geometry(g, n, &cg) ? 0 : engine_scratch(&cg);
}

static void conv_forward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const float *b = bias_value(g, n);
    if (b)
        bias_fill(n->value, b, cg.batch, cg.small_c, cg.small_plane, 0);
    conv_correlate(&cg, node_input(g, n, 1)->value, node_input(g, n, 0)->value, n->value,
                   b ? 1.0f : 0.0f, n->scratch, n->scratch_n);
}

static void conv_backward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1), *db = bias_gradient(g, n);
    if (dw)
        conv_weight_grad(&cg, x->value, n->grad, dw, n->scratch, n->scratch_n);
    if (dx)
        conv_adjoint(&cg, w->value, n->grad, dx, n->scratch, n->scratch_n);
    if (db)
        bias_grad(n->grad, db, cg.batch, cg.small_c, cg.small_plane, 0);
}

static const op_def op_conv = {"conv", conv_infer, conv_scratch, conv_forward, conv_backward, 0};

static const nerve_conv_config *config_or_default(const nerve_conv_config *c,
                                                  nerve_conv_config *fallback)
{
    if (c)
        return c;
    *fallback = nerve_conv_default();
    return fallback;
}

static int add_conv_op(nerve_graph *g, const op_def *op, int x, int w, int bias,
                       const nerve_conv_config *cfg, const int *output_padding)
{
    nerve_conv_config fallback;
    node_attr at = conv_attr(config_or_default(cfg, &fallback), output_padding);
    int in[3] = {x, w, bias};
    return graph_add_op(g, op, bias >= 0 ? 3 : 2, in, &at, op->name);
}

int nerve_conv(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg)
{
    return add_conv_op(g, &op_conv, x, w, bias, cfg, NULL);
}

/* ---- conv_transpose ------------------------------------------------------------------- */

static int conv_transpose_infer(nerve_graph *g, node *n)
{
    conv_geom cg;
    int st = conv_transpose_geometry(g, n, &cg);
    if (st)
        return st;
    set_output_shape(n, cg.batch, cg.big_c, node_input(g, n, 1)->ndim - 2, cg.ks.image);
    return NERVE_OK;
}

static size_t conv_transpose_scratch(const nerve_graph *g, const node *n)
{
    conv_geom cg;
    return conv_transpose_geometry(g, n, &cg) ? 0 : engine_scratch(&cg);
}

static void conv_transpose_forward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_transpose_geometry(g, n, &cg);
    bias_fill(n->value, bias_value(g, n), cg.batch, cg.big_c, cg.big_plane, 0);
    conv_adjoint(&cg, node_input(g, n, 1)->value, node_input(g, n, 0)->value, n->value,
                 n->scratch, n->scratch_n);
}

static void conv_transpose_backward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_transpose_geometry(g, n, &cg);
    const node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1), *db = bias_gradient(g, n);
    if (dw)
        conv_weight_grad(&cg, n->grad, x->value, dw, n->scratch, n->scratch_n);
    if (dx)
        conv_correlate(&cg, w->value, n->grad, dx, 1.0f, n->scratch, n->scratch_n);
    if (db)
        bias_grad(n->grad, db, cg.batch, cg.big_c, cg.big_plane, 0);
}

static const op_def op_conv_transpose = {"conv_transpose", conv_transpose_infer,
                                         conv_transpose_scratch, conv_transpose_forward,
                                         conv_transpose_backward, 0};

int nerve_conv_transpose(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg,
                         const int *output_padding)
{
    /* The caller gives S = rank(w) - 2 entries: copy exactly those. */
    int padding[MAX_SPATIAL] = {0};
    int wdims = 0;
    if (output_padding && nerve_node_shape(g, w, &wdims, NULL) == NERVE_OK)
        for (int d = 0; d < wdims - 2 && d < MAX_SPATIAL; d++)
            padding[d] = output_padding[d];
    return add_conv_op(g, &op_conv_transpose, x, w, bias, cfg, padding);
}

/* ---- local: x [N, C, *n], w [L, O, C, *k], bias [O] or [O, *out] ------------------------ */

typedef struct local_geom {
    int batch, in_c, out_c;
    size_t in_plane, positions; /* L */
    kern_conv_shape ks;         /* every input channel of one image */
    size_t patch;               /* C * prod(k) */
    int bias_per_position;
} local_geom;

static int local_check_bias(const nerve_graph *g, const node *n, const local_geom *lg, int S)
{
    if (n->n_in < 3)
        return NERVE_OK;
    const node *b = input_of(g, n, 2);
    if (b->ndim == 1 && b->dims[0] == lg->out_c)
        return NERVE_OK;
    int ok = b->ndim == S + 1 && b->dims[0] == lg->out_c;
    for (int d = 0; ok && d < S; d++)
        ok = b->dims[1 + d] == lg->ks.out[MAX_SPATIAL - S + d];
    if (!ok) {
        char want[64];
        int dims[1 + MAX_SPATIAL] = {lg->out_c};
        for (int d = 0; d < S; d++)
            dims[1 + d] = lg->ks.out[MAX_SPATIAL - S + d];
        return op_shape_error(n, "bias must be [%d] or %s", lg->out_c,
                              nerve_shape_str(S + 1, dims, want, sizeof want));
    }
    return NERVE_OK;
}

static int local_geometry(const nerve_graph *g, const node *n, local_geom *lg)
{
    const node *x = input_of(g, n, 0), *w = input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 3, st;
    nerve_conv_config c = attr_config(&n->attr, outpad);
    if ((st = check_input_rank(n, x, S)) || (st = check_config(n, &c, S)))
        return st;
    if (c.groups != 1)
        return op_arg_error(n, "groups is %d; a locally connected layer has one group", c.groups);
    if (w->dims[2] != x->dims[1])
        return op_shape_error(n, "weight [L, O, C, *k] has C = %d but the input has %d channels",
                              w->dims[2], x->dims[1]);
    *lg = (local_geom){.batch = x->dims[0], .in_c = x->dims[1], .out_c = w->dims[1]};
    lg->ks = neutral_shape();
    if ((st = plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 3, &lg->ks)))
        return st;
    lg->ks.channels = lg->in_c;
    lg->in_plane = image_plane(lg->ks.image);
    lg->positions = image_plane(lg->ks.out);
    lg->patch = kern_conv_rows(&lg->ks);
    if ((size_t)w->dims[0] != lg->positions) {
        char shape[64];
        return op_shape_error(n, "weight has %d positions but the output %s has %zu",
                              w->dims[0],
                              nerve_shape_str(S, lg->ks.out + MAX_SPATIAL - S, shape, sizeof shape),
                              lg->positions);
    }
    if ((st = local_check_bias(g, n, lg, S)))
        return st;
    lg->bias_per_position = n->n_in == 3 && input_of(g, n, 2)->ndim > 1;
    return NERVE_OK;
}

static int local_infer(nerve_graph *g, node *n)
{
    local_geom lg;
    int st = local_geometry(g, n, &lg);
    if (st)
        return st;
    set_output_shape(n, lg.batch, lg.out_c, node_input(g, n, 1)->ndim - 3, lg.ks.out);
    return NERVE_OK;
}

static size_t local_scratch(const nerve_graph *g, const node *n)
{
    local_geom lg;
    return local_geometry(g, n, &lg) ? 0 : lg.positions * lg.patch;
}

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* y[o, l] += w[l, o, :] . rows[l, :] for one image. */
static void local_image_forward(const local_geom *lg, const float *w, const float *rows, float *y)
{
    for (size_t l = 0; l < lg->positions; l++)
        for (int o = 0; o < lg->out_c; o++)
            y[(size_t)o * lg->positions + l] +=
                dot(w + (l * lg->out_c + o) * lg->patch, rows + l * lg->patch, lg->patch);
}

/* dw[l, o, :] += dy[o, l] rows[l, :] (when dw), then rows[l, :] = sum_o dy[o, l] w[l, o, :]:
 * each position's patch is used for its weight gradient before it is overwritten by its
 * input gradient, so one buffer holds both. */
static void local_image_backward(const local_geom *lg, const float *w, const float *dy,
                                 float *rows, float *dw)
{
    for (size_t l = 0; l < lg->positions; l++) {
        float *r = rows + l * lg->patch;
        for (int o = 0; o < lg->out_c && dw; o++) {
            float g = dy[(size_t)o * lg->positions + l];
            float *d = dw + (l * lg->out_c + o) * lg->patch;
            for (size_t k = 0; k < lg->patch; k++)
                d[k] += g * r[k];
        }
        memset(r, 0, lg->patch * sizeof(float));
        for (int o = 0; o < lg->out_c; o++) {
            float g = dy[(size_t)o * lg->positions + l];
            const float *wr = w + (l * lg->out_c + o) * lg->patch;
            for (size_t k = 0; k < lg->patch; k++)
                r[k] += g * wr[k];
        }
    }
}

static void local_forward(nerve_graph *g, node *n)
{
    local_geom lg;
    local_geometry(g, n, &lg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    bias_fill(n->value, bias_value(g, n), lg.batch, lg.out_c, lg.positions, lg.bias_per_position);
    for (int i = 0; i < lg.batch; i++) {
        kern_im2row(&lg.ks, x + (size_t)i * lg.in_c * lg.in_plane, n->scratch);
        local_image_forward(&lg, w, n->scratch, n->value + (size_t)i * lg.out_c * lg.positions);
    }
}

static void local_backward(nerve_graph *g, node *n)
{
    local_geom lg;
    local_geometry(g, n, &lg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1), *db = bias_gradient(g, n);
    for (int i = 0; (dx || dw) && i < lg.batch; i++) {
        const float *dy = n->grad + (size_t)i * lg.out_c * lg.positions;
        if (dw)
            kern_im2row(&lg.ks, x + (size_t)i * lg.in_c * lg.in_plane, n->scratch);
        local_image_backward(&lg, w, dy, n->scratch, dw);
        if (dx)
            kern_row2im(&lg.ks, n->scratch, dx + (size_t)i * lg.in_c * lg.in_plane);
    }
    if (db)
        bias_grad(n->grad, db, lg.batch, lg.out_c, lg.positions, lg.bias_per_position);
}

static const op_def op_local = {"local", local_infer, local_scratch, local_forward,
                                local_backward, 0};

int nerve_local(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg)
{
    return add_conv_op(g, &op_local, x, w, bias, cfg, NULL);
}

const op_def *const ops_conv[] = {&op_conv, &op_conv_transpose, &op_local, NULL};
