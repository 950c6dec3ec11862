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
 * The work is cut into units (one image, one group, one block of output rows whose column
 * matrix stays in cache), run by single-threaded products; the scratch is one column block
 * per thread (see "threads" for how units, or the channels of one unit when a batch is
 * smaller than the thread count, are split). A 1x1 kernel with stride 1 and no padding
 * needs no im2col: big_g is its own column matrix. The forward and the input gradient of
 * 3x3 stride-1 convolutions with enough channels go through Winograd instead.
 *
 * local (unshared weights) gathers every image's patches position-major (im2row) and
 * takes one dot product per (position, output channel).
 *
 * Attributes: i[0..2] stride, i[3..5] dilation, i[6] groups, i[7] CONV_SAME | CONV_FLIP,
 * ints[0..2] pad_begin, ints[3..5] pad_end, f[0..2] output padding (small integers, exact
 * in float). Per-dimension settings are stored in the caller's order (entries 0..S-1). */
#include "../kernels/kernels.h"
#include "ops.h"

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
    int block_rows, n_blocks;      /* column blocks: output rows per block, blocks per image */
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

/* Spatial sizes are computed in 64 bits and checked (node_check_size) before they are
 * stored in the kernel shape's ints: padding, stride, dilation and kernel come from the
 * caller (a cfg file), and their products need not fit an int. */
static int64_t extent(const nerve_conv_config *c, int d, int k)
{
    return size_add64(size_mul64(c->dilation[d], (int64_t)k - 1), 1);
}

/* Stores a checked size: v is within 1..NERVE_MAX_SAMPLE_VALUES, so it fits an int. */
static int spatial_size(const node *n, const char *what, int d, int64_t v, int *out)
{
    char msg[96];
    snprintf(msg, sizeof msg, "%s along spatial dim %d", what, d);
    int st = node_check_size(n, msg, v);
    if (!st)
        *out = (int)v;
    return st;
}

/* Forward convolutions (conv, local): padding and output size of each spatial dim from the
 * input sizes n[S] and kernel sizes k[S]. */
static int plan_forward_dims(const node *n, const nerve_conv_config *c, int S, const int *in,
                             const int *k, kern_conv_shape *ks)
{
    for (int d = 0; d < S; d++) {
        int D = MAX_SPATIAL - S + d, e, st;
        if ((st = spatial_size(n, "the kernel extent dilation * (size - 1) + 1", d,
                               extent(c, d, k[d]), &e)))
            return st;
        int64_t s = c->stride[d], pb = c->pad_begin[d], pe = c->pad_end[d];
        if (c->same) {
            int64_t out = (in[d] + s - 1) / s;
            int64_t total = (out - 1) * s + e - in[d]; /* < in + e: no overflow */
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
        }
        int64_t padded = (int64_t)in[d] + pb + pe;
        if (padded < e)
            return op_shape_error(n,
                                  "kernel extent %d (size %d, dilation %d) is larger than the "
                                  "padded input %lld (%d + %lld + %lld) along spatial dim %d",
                                  e, k[d], c->dilation[d], (long long)padded, in[d],
                                  (long long)pb, (long long)pe, d);
        if ((st = spatial_size(n, "the output size", d, (padded - e) / s + 1, &ks->out[D])))
            return st;
        if (pb > NERVE_MAX_SAMPLE_VALUES) /* same=1 pads by at most the extent */
            return op_shape_error(n, "padding %lld along spatial dim %d is beyond the limit of "
                                  "%lld", (long long)pb, d, NERVE_MAX_SAMPLE_VALUES);
        ks->image[D] = in[d];
        ks->kernel[D] = k[d];
        ks->stride[D] = (int)s;
        ks->pad[D] = (int)pb;
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
        int D = MAX_SPATIAL - S + d, e, st;
        if ((st = spatial_size(n, "the kernel extent dilation * (size - 1) + 1", d,
                               extent(c, d, k[d]), &e)))
            return st;
        int64_t s = c->stride[d], pb = c->pad_begin[d], pe = c->pad_end[d], op = outpad[d];
        if (c->same) {
            int64_t total = e - s;
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
            op = total < 0 ? -total : 0;
        } else if (op < 0 || (op >= s && op >= c->dilation[d])) {
            return op_arg_error(n, "output_padding[%d] is %lld; must be in 0..max(stride, "
                                   "dilation) - 1 = %d", d, (long long)op,
                                (c->stride[d] > c->dilation[d] ? c->stride[d] : c->dilation[d]) - 1);
        }
        /* (in - 1) * s + e + op - pb - pe: each term below 2^62, so the sum is exact */
        int64_t grown = size_add64(size_add64(size_mul64((int64_t)in[d] - 1, s), e), op);
        int64_t out = grown - pb - pe;
        if (out < 1)
            return op_shape_error(n, "output size %lld along spatial dim %d: the padding %lld + "
                                     "%lld removes more than (%d - 1) * %lld + %lld",
                                  (long long)out, d, (long long)pb, (long long)pe, in[d],
                                  (long long)s, (long long)(e + op));
        if ((st = spatial_size(n, "the output size (input - 1) * stride + extent + "
                               "output_padding - padding", d, out, &ks->image[D])))
            return st;
        if (pb > NERVE_MAX_SAMPLE_VALUES)
            return op_shape_error(n, "padding %lld along spatial dim %d is beyond the limit of "
                                  "%lld", (long long)pb, d, NERVE_MAX_SAMPLE_VALUES);
        ks->kernel[D] = k[d];
        ks->out[D] = in[d];
        ks->stride[D] = (int)s;
        ks->pad[D] = (int)pb;
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

static void plan_blocks(conv_geom *cg);

/* One image of either side within the per-sample limit, so that the engine's int
 * arithmetic on planes and rows (and finish_geom's) cannot overflow. */
static int check_sides(const node *n, const conv_geom *cg)
{
    int64_t big = size_mul64(cg->big_c, shape_values64(MAX_SPATIAL, cg->ks.image));
    int64_t small = size_mul64(cg->small_c, shape_values64(MAX_SPATIAL, cg->ks.out));
    int st = node_check_size(n, "one sample of the larger side (channels x spatial sizes)", big);
    return st ? st : node_check_size(n, "one sample of the smaller side (channels x spatial sizes)",
                                     small);
}

static void finish_geom(conv_geom *cg)
{
    cg->ks.channels = cg->big_c / cg->groups;
    cg->big_plane = image_plane(cg->ks.image);
    cg->small_plane = image_plane(cg->ks.out);
    cg->rows = kern_conv_rows(&cg->ks);
    cg->direct = is_direct(&cg->ks);
    plan_blocks(cg);
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
    if ((st = plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 2, &cg->ks)) ||
        (st = check_sides(n, cg)))
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
    int C = x->dims[1], O;
    if ((st = node_check_size(n, "the output channels (weight dim 1 * groups)",
                              size_mul64(w->dims[1], c.groups))))
        return st;
    O = w->dims[1] * c.groups;
    if (w->dims[0] != C)
        return op_shape_error(n, "weight [C, O/groups, *k] has C = %d but the input has %d "
                                 "channels", w->dims[0], C);
    if ((st = check_groups(n, c.groups, C, O)) || (st = check_bias(g, n, O)))
        return st;
    *cg = (conv_geom){.batch = x->dims[0], .groups = c.groups, .big_c = O, .small_c = C};
    cg->ks = neutral_shape();
    if ((st = plan_transpose_dims(n, &c, outpad, S, x->dims + 2, w->dims + 2, &cg->ks)) ||
        (st = check_sides(n, cg)))
        return st;
    finish_geom(cg);
    return NERVE_OK;
}

/* ---- the engine ----------------------------------------------------------------------- */

/* Column blocks. One image's output positions are processed in blocks of whole output rows
 * (q = od * OH + oh), so that a block's column matrix [rows, cols of the block] is still in
 * cache when the product reads it (or, for the adjoint, when col2im reads it back): about
 * COL_BLOCK_FLOATS floats, but never narrower than COL_BLOCK_MIN_COLS columns, below which
 * the product repacks its weights too often to gain from the cache. A direct convolution
 * has no column matrix and takes the image in one block. */
#ifndef COL_BLOCK_FLOATS
#define COL_BLOCK_FLOATS (1 << 17)
#endif
#ifndef COL_BLOCK_MIN_COLS
#define COL_BLOCK_MIN_COLS 256
#endif

static void plan_blocks(conv_geom *cg)
{
    int out_rows = cg->ks.out[0] * cg->ks.out[1], ow = cg->ks.out[2];
    int br = out_rows;
    if (!cg->direct) {
        size_t fit = COL_BLOCK_FLOATS / (cg->rows * (size_t)ow);
        int min_rows = (COL_BLOCK_MIN_COLS + ow - 1) / ow;
        br = fit > (size_t)min_rows ? (int)(fit < (size_t)out_rows ? fit : (size_t)out_rows)
                                    : min_rows;
        if (br > out_rows)
            br = out_rows;
    }
    cg->block_rows = br;
    cg->n_blocks = (out_rows + br - 1) / br;
}

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

/* A unit of work: output rows [q0, q1) of group g of image i. Units are numbered
 * ((i * groups + g) * n_blocks + block); pairs (i, g) are numbered i * groups + g. */
typedef struct conv_unit {
    const float *big_g, *small_g; /* the pair's slices (cast back for the side written) */
    int g;
    int q0, q1;
    size_t col0, ncol; /* the block's columns: [col0, col0 + ncol) */
} conv_unit;

static int pair_count(const conv_geom *cg) { return cg->batch * cg->groups; }
static int unit_count(const conv_geom *cg) { return pair_count(cg) * cg->n_blocks; }

static conv_unit unit_at(const conv_geom *cg, const float *big, const float *small, int u)
{
    int pair = u / cg->n_blocks, b = u % cg->n_blocks;
    int out_rows = cg->ks.out[0] * cg->ks.out[1];
    conv_unit un;
    un.g = pair % cg->groups;
    un.big_g = big + group_offset(pair, cg->big_c / cg->groups, cg->big_plane);
    un.small_g = small + group_offset(pair, cg->small_c / cg->groups, cg->small_plane);
    un.q0 = b * cg->block_rows;
    un.q1 = un.q0 + cg->block_rows < out_rows ? un.q0 + cg->block_rows : out_rows;
    un.col0 = (size_t)un.q0 * (size_t)cg->ks.out[2];
    un.ncol = (size_t)(un.q1 - un.q0) * (size_t)cg->ks.out[2];
    return un;
}

/* The unit's column matrix [rows, ncol] and its row stride: gathered into col, or, when the
 * convolution is direct, the big side itself. */
static const float *unit_columns(const conv_geom *cg, const conv_unit *un, float *col, int *ld)
{
    if (cg->direct) {
        *ld = (int)cg->small_plane;
        return un->big_g + un->col0;
    }
    kern_im2col_rows(&cg->ks, un->q0, un->q1, un->big_g, col);
    *ld = (int)un->ncol;
    return col;
}

/* small[:, block] = beta * small[:, block] + W_g . columns */
static void correlate_unit(const conv_geom *cg, const conv_unit *un, const float *w, float *small,
                           float beta, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows, ld;
    const float *cols = unit_columns(cg, un, col, &ld);
    float *out = small + (un->small_g - small) + un->col0;
    kern_sgemm_serial(0, 0, Cs, (int)un->ncol, R, 1.0f, group_weight(cg, w, un->g), R, cols, ld,
                      beta, out, Ls);
}

/* dW_g += dsmall[:, block] . columns^T */
static void weight_grad_unit(const conv_geom *cg, const conv_unit *un, float *dw, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows, ld;
    const float *cols = unit_columns(cg, un, col, &ld);
    kern_sgemm_serial(0, 1, Cs, R, (int)un->ncol, 1.0f, un->small_g + un->col0, Ls, cols, ld,
                      1.0f, dw + (size_t)un->g * (size_t)Cs * cg->rows, R);
}

/* Big channels [c0, c1) of the unit's group += col2im(W_g[:, their rows]^T . small[:, block]).
 * Disjoint channel ranges touch disjoint image planes, so threads may share a unit. */
static void adjoint_unit_channels(const conv_geom *cg, const conv_unit *un, const float *w,
                                  float *big, int c0, int c1, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows;
    size_t taps = cg->rows / (size_t)cg->ks.channels;
    int nr = (int)((size_t)(c1 - c0) * taps);
    const float *wg = group_weight(cg, w, un->g) + (size_t)c0 * taps;
    const float *ds = un->small_g + un->col0;
    float *big_c = big + (un->big_g - big) + (size_t)c0 * cg->big_plane;
    if (nr <= 0)
        return;
    if (cg->direct) { /* the column matrix is big itself: accumulate straight into it */
        kern_sgemm_serial(1, 0, nr, (int)un->ncol, Cs, 1.0f, wg, R, ds, Ls, 1.0f,
                          big_c + un->col0, Ls);
        return;
    }
    kern_sgemm_serial(1, 0, nr, (int)un->ncol, Cs, 1.0f, wg, R, ds, Ls, 0.0f, col,
                      (int)un->ncol);
    kern_conv_shape sub = cg->ks;
    sub.channels = c1 - c0;
    kern_col2im_rows(&sub, un->q0, un->q1, col, big_c);
}

/* ---- threads ---------------------------------------------------------------------------
 * Thread t of T owns slice t of the node's scratch: [column block | partial weight gradient]
 * (one thread needs only the column block). The passes split their work so that results
 * never depend on the split, except the weight gradient, which sums per-thread partials in
 * thread order (reproducible for a given T):
 *   forward (correlate): units across threads when there are at least T of them; otherwise
 *     (a batch of one with few, wide blocks) each block is gathered by channels into slice
 *     0 and its product split by output channels, with barriers between.
 *   adjoint: (image, group) pairs across threads, each pair's blocks in order on one thread
 *     (col2im of two blocks of one image adds into the same pixels); with fewer pairs than
 *     threads, each thread takes a range of big channels of every block.
 *   weight gradient: units across threads, each into its partial; then a reduction. */

static size_t column_floats(const conv_geom *cg)
{
    return cg->direct ? 0 : cg->rows * (size_t)cg->block_rows * (size_t)cg->ks.out[2];
}
static size_t weight_floats(const conv_geom *cg) { return (size_t)cg->small_c * cg->rows; }
static size_t slice_floats(const conv_geom *cg) { return column_floats(cg) + weight_floats(cg); }

static size_t engine_scratch(const conv_geom *cg)
{
    int T = kern_threads();
    return T > 1 ? (size_t)T * slice_floats(cg) : column_floats(cg);
}

/* Threads for this pass: the setting, but never more than the scratch has slices for (the
 * setting may have grown since compilation). */
static int engine_threads(const conv_geom *cg, size_t scratch_n)
{
    size_t slices = scratch_n >= 2 * slice_floats(cg) ? scratch_n / slice_floats(cg) : 1;
    int T = kern_threads();
    return (size_t)T < slices ? T : (int)slices;
}

/* A pass that needs no scratch (the direct routes) has none: no arithmetic on NULL. */
static float *thread_col(const conv_geom *cg, float *scratch, int t)
{
    return scratch ? scratch + (size_t)t * slice_floats(cg) : NULL;
}

static float *thread_partial(const conv_geom *cg, float *scratch, int t)
{
    return scratch ? thread_col(cg, scratch, t) + column_floats(cg) : NULL;
}

/* One pass, as handed to the thread pool. */
typedef struct pass_job {
    const conv_geom *cg;
    const float *w, *big, *small; /* operands (the written side is cast back) */
    float *out, *dw;
    float beta;
    float *scratch;
} pass_job;

/* The share [*u0, *u1) of `n` items of thread t of T. */
static void share(int n, int t, int T, int *u0, int *u1)
{
    size_t b, e;
    kern_split((size_t)n, t, T, &b, &e);
    *u0 = (int)b;
    *u1 = (int)e;
}

static void correlate_units_task(void *p, int t, int T)
{
    const pass_job *j = p;
    int u0, u1;
    share(unit_count(j->cg), t, T, &u0, &u1);
    for (int u = u0; u < u1; u++) {
        conv_unit un = unit_at(j->cg, j->big, j->out, u);
        correlate_unit(j->cg, &un, j->w, j->out, j->beta, thread_col(j->cg, j->scratch, t));
    }
}

/* Every unit by all threads: big channels gathered into the shared block, then output
 * channels multiplied. */
static void correlate_channels_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows;
    size_t taps = cg->rows / (size_t)cg->ks.channels;
    float *col = j->scratch;
    int c0, c1, m0, m1;
    share(cg->ks.channels, t, T, &c0, &c1);
    share(Cs, t, T, &m0, &m1);
    for (int u = 0; u < unit_count(cg); u++) {
        conv_unit un = unit_at(cg, j->big, j->out, u);
        int ld = (int)cg->small_plane;
        const float *cols = un.big_g + un.col0;
        if (!cg->direct) {
            kern_conv_shape sub = cg->ks;
            sub.channels = c1 - c0;
            if (c1 > c0)
                kern_im2col_rows(&sub, un.q0, un.q1, un.big_g + (size_t)c0 * cg->big_plane,
                                 col + (size_t)c0 * taps * un.ncol);
            kern_barrier();
            cols = col;
            ld = (int)un.ncol;
        }
        float *out = j->out + (un.small_g - j->out) + (size_t)m0 * cg->small_plane + un.col0;
        if (m1 > m0)
            kern_sgemm_serial(0, 0, m1 - m0, (int)un.ncol, R, 1.0f,
                              group_weight(cg, j->w, un.g) + (size_t)m0 * cg->rows, R, cols, ld,
                              j->beta, out, Ls);
        if (!cg->direct)
            kern_barrier(); /* the block is read before the next one overwrites it */
    }
}

static void adjoint_pairs_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int p0, p1;
    share(pair_count(cg), t, T, &p0, &p1);
    for (int u = p0 * cg->n_blocks; u < p1 * cg->n_blocks; u++) {
        conv_unit un = unit_at(cg, j->out, j->small, u);
        adjoint_unit_channels(cg, &un, j->w, j->out, 0, cg->ks.channels,
                              thread_col(cg, j->scratch, t));
    }
}

static void adjoint_channels_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int c0, c1;
    share(cg->ks.channels, t, T, &c0, &c1);
    for (int u = 0; u < unit_count(cg); u++) {
        conv_unit un = unit_at(cg, j->out, j->small, u);
        adjoint_unit_channels(cg, &un, j->w, j->out, c0, c1, thread_col(cg, j->scratch, t));
    }
}

/* Units [u0, u1) into dw, on the calling thread with column buffer col. */
static void weight_grad_units(const pass_job *j, int u0, int u1, float *dw, float *col)
{
    for (int u = u0; u < u1; u++) {
        conv_unit un = unit_at(j->cg, j->big, j->small, u);
        weight_grad_unit(j->cg, &un, dw, col);
    }
}

/* Each thread sums its units into its own partial; after a barrier, thread t adds every
 * partial, in thread order, into its share of dW's elements. */
static void weight_grad_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    size_t nw = weight_floats(cg), k0, k1;
    float *part = thread_partial(cg, j->scratch, t);
    int u0, u1;
    memset(part, 0, nw * sizeof(float));
    share(unit_count(cg), t, T, &u0, &u1);
    weight_grad_units(j, u0, u1, part, thread_col(cg, j->scratch, t));
    kern_barrier();
    kern_split(nw, t, T, &k0, &k1);
    for (int s = 0; s < T; s++) {
        const float *src = thread_partial(cg, j->scratch, s);
        for (size_t k = k0; k < k1; k++)
            j->dw[k] += src[k];
    }
}

/* ---- the passes over the whole batch -------------------------------------------------- */

/* small = beta * small + W . im2col(big) */
static void conv_correlate(const conv_geom *cg, const float *w, const float *big, float *small,
                           float beta, float *scratch, size_t scratch_n)
{
    pass_job j = {.cg = cg, .w = w, .big = big, .out = small, .beta = beta, .scratch = scratch};
    int T = engine_threads(cg, scratch_n);
    if (T == 1)
        correlate_units_task(&j, 0, 1);
    else
        kern_run(T, unit_count(cg) >= T ? correlate_units_task : correlate_channels_task, &j);
}

/* big += col2im(W^T . small) */
static void conv_adjoint(const conv_geom *cg, const float *w, const float *small, float *big,
                         float *scratch, size_t scratch_n)
{
    pass_job j = {.cg = cg, .w = w, .small = small, .out = big, .scratch = scratch};
    int T = engine_threads(cg, scratch_n);
    if (T == 1)
        adjoint_pairs_task(&j, 0, 1);
    else
        kern_run(T, pair_count(cg) >= T ? adjoint_pairs_task : adjoint_channels_task, &j);
}

/* A one-group, unflipped 2-D (or 1-D) convolution with stride 1 and no dilation: the shape
 * the implicit weight gradient, the direct routes and Winograd all start from. */
static int plain_stride1_2d(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    if (cg->groups != 1 || k->flip || k->image[0] != 1 || k->kernel[0] != 1)
        return 0;
    for (int d = 1; d < MAX_SPATIAL; d++)
        if (k->stride[d] != 1 || k->dilation[d] != 1)
            return 0;
    return 1;
}

/* ---- weight gradient of stride-1 convolutions without a column matrix -----------------
 * With stride 1, dilation 1 and one group, the patch matrix need not be built. Store one
 * image pixel-major and zero-padded, xp [Hp, Wp, C] (Hp = OH + KH - 1, Wp = OW + KW - 1):
 * the values kernel row i meets at output position (oh, ow) are xp[oh + i, ow .. ow + KW - 1,
 * :], KW * C contiguous floats, and the next position's start C floats later. Numbering the
 * positions over the padded width, p = oh * Wp + ow, makes B_i[p, (j, c)] = xp[(p + i * Wp)
 * * C + j * C + c] a plain strided matrix (ldb = C, rows overlapping), read by the product
 * in place:
 *   dW'[:, i, :, :] [K, KW * C] += dyp [K, OH * Wp] . B_i      (one product per kernel row)
 * where dyp is dy with zeros in the Wp - OW columns past each output row (those positions
 * read wrapped pixels, which the zeros cancel; they cost (KW - 1) / OW more multiply-adds).
 * The product only reads B, so its overlapping rows (ldb = C < KW * C) are safe. This
 * replaces the gather of KH * KW copies of the image and the transposing pack of the
 * column product by one transpose of the image (and a copy of dy) per image. dW' [K, KH, KW, C] is permuted into dW [K, C, KH, KW]
 * when the per-thread partials are summed. Images are split across threads, each summing
 * into its own partial: static, so reproducible at a given thread count. */
enum { IMPLICIT_WGRAD_MIN_CHANNELS = 8 };

typedef struct implicit_wgrad {
    int C, K, KH, KW, OH, OW, Hp, Wp;
    size_t xp_floats, dyp_floats, part_floats; /* one thread's slice: [xp | dyp | dW'] */
} implicit_wgrad;

static int implicit_wgrad_plan(const conv_geom *cg, implicit_wgrad *iw)
{
    const kern_conv_shape *k = &cg->ks;
    if (!plain_stride1_2d(cg) || cg->big_c < IMPLICIT_WGRAD_MIN_CHANNELS)
        return 0;
    iw->C = cg->big_c, iw->K = cg->small_c;
    iw->KH = k->kernel[1], iw->KW = k->kernel[2], iw->OH = k->out[1], iw->OW = k->out[2];
    iw->Hp = iw->OH + iw->KH - 1, iw->Wp = iw->OW + iw->KW - 1;
    /* the last wrapped position reads KW - 1 pixels past the padded image */
    iw->xp_floats = ((size_t)iw->Hp * iw->Wp + (size_t)iw->KW - 1) * (size_t)iw->C;
    iw->dyp_floats = (size_t)iw->K * iw->OH * iw->Wp;
    iw->part_floats = weight_floats(cg);
    return 1;
}

static size_t implicit_wgrad_slice(const implicit_wgrad *iw)
{
    return iw->xp_floats + iw->dyp_floats + iw->part_floats;
}

static size_t implicit_wgrad_floats(const conv_geom *cg, int threads)
{
    implicit_wgrad iw;
    return implicit_wgrad_plan(cg, &iw) ? (size_t)threads * implicit_wgrad_slice(&iw) : 0;
}

/* xp [Hp, Wp, C] (+ KW - 1 pixels) = x [C, H, W] shifted by the padding before. Only the
 * pixels of x are written: the rest of xp, zeroed once per pass, stays zero from image to
 * image; pixels that fall past Hp or Wp are never read. */
static void pad_pixel_major(const implicit_wgrad *iw, const kern_conv_shape *ks, const float *x,
                            float *xp)
{
    int H = ks->image[1], W = ks->image[2], pt = ks->pad[1], pl = ks->pad[2], C = iw->C;
    int w0 = pl < 0 ? -pl : 0, w1 = W < iw->Wp - pl ? W : iw->Wp - pl;
    for (int h = pt < 0 ? -pt : 0; h < H && h + pt < iw->Hp && w1 > w0; h++)
        kern_transpose(C, w1 - w0, x + (size_t)h * W + w0, (ptrdiff_t)H * W,
                       xp + ((size_t)(h + pt) * iw->Wp + (size_t)(pl + w0)) * (size_t)C, C);
}

/* dyp [K, OH, Wp] = dy [K, OH, OW] in the first OW columns; the others stay zero. */
static void pad_rows(const implicit_wgrad *iw, const float *dy, float *dyp)
{
    size_t rows = (size_t)iw->K * iw->OH;
    for (size_t r = 0; r < rows; r++)
        memcpy(dyp + r * iw->Wp, dy + r * iw->OW, (size_t)iw->OW * sizeof(float));
}

/* part [K, KH, KW, C] += the weight gradient of images [i0, i1). */
static void implicit_wgrad_images(const conv_geom *cg, const implicit_wgrad *iw, const float *big,
                                  const float *dsmall, int i0, int i1, float *slice)
{
    float *xp = slice, *dyp = xp + iw->xp_floats, *part = dyp + iw->dyp_floats;
    int P = iw->OH * iw->Wp, N = iw->KW * iw->C, ldc = iw->KH * N;
    for (int i = i0; i < i1; i++) {
        pad_pixel_major(iw, &cg->ks, big + (size_t)i * iw->C * cg->big_plane, xp);
        pad_rows(iw, dsmall + (size_t)i * iw->K * cg->small_plane, dyp);
        for (int r = 0; r < iw->KH; r++)
            kern_sgemm_serial(0, 0, iw->K, N, P, 1.0f, dyp, P,
                              xp + (size_t)r * iw->Wp * iw->C, iw->C, 1.0f, part + (size_t)r * N,
                              ldc);
    }
}

typedef struct implicit_job {
    const conv_geom *cg;
    const implicit_wgrad *iw;
    const float *big, *dsmall;
    float *dw, *scratch;
} implicit_job;

/* Each thread sums its images into its partial; after a barrier, thread t adds every
 * partial, in thread order and permuted to [K, C, KH, KW], into its share of dW. */
static void implicit_wgrad_task(void *p, int t, int T)
{
    const implicit_job *j = p;
    const implicit_wgrad *iw = j->iw;
    size_t slice = implicit_wgrad_slice(iw), off = iw->xp_floats + iw->dyp_floats, e0, e1;
    size_t taps = (size_t)iw->KH * iw->KW, C = (size_t)iw->C;
    int i0, i1;
    memset(j->scratch + (size_t)t * slice, 0, slice * sizeof(float)); /* [xp | dyp | dW'] */
    share(j->cg->batch, t, T, &i0, &i1);
    implicit_wgrad_images(j->cg, iw, j->big, j->dsmall, i0, i1, j->scratch + (size_t)t * slice);
    if (T > 1)
        kern_barrier();
    kern_split(iw->part_floats, t, T, &e0, &e1);
    for (int s = 0; s < T; s++) {
        const float *part = j->scratch + (size_t)s * slice + off;
        for (size_t e = e0; e < e1; e++) { /* e = (k * C + c) * taps + tap */
            size_t tap = e % taps, kc = e / taps;
            j->dw[e] += part[((kc / C) * taps + tap) * C + kc % C];
        }
    }
}

/* dW += dsmall . im2col(big)^T by the route above; returns 0 (nothing done) when it does
 * not apply, when the batch has fewer images than threads (the column route splits one
 * image's blocks instead) or when the scratch is too small for the thread setting. */
static int implicit_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                                float *dw, float *scratch, size_t scratch_n)
{
    implicit_wgrad iw;
    int T = kern_threads();
    if (!implicit_wgrad_plan(cg, &iw) || cg->batch < T ||
        (size_t)T * implicit_wgrad_slice(&iw) > scratch_n)
        return 0;
    implicit_job j = {cg, &iw, big, dsmall, dw, scratch};
    if (T == 1)
        implicit_wgrad_task(&j, 0, 1);
    else
        kern_run(T, implicit_wgrad_task, &j);
    return 1;
}

/* The shapes every direct route takes: plain_stride1_2d on the AVX-512 path (a forced
 * narrower path keeps the column route). */
static int direct_shape(const conv_geom *cg)
{
    return plain_stride1_2d(cg) && kern_isa_active() == KERN_ISA_AVX512;
}

/* ---- direct weight gradient (src/kernels/conv_direct_grad.c) ----------------------------
 * For stride-1 2-D convolutions with fewer input channels than the implicit route takes
 * (LeNet's 1 -> 6 and 6 -> 16, 5x5; ResNet-20's 3 -> 16 stem): dot products of the output
 * gradient with shifted windows of the zero-padded image, with the bias gradient in the same
 * pass. No column matrix, no packing. */
static int direct_wgrad_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return direct_shape(cg) && cg->big_c < IMPLICIT_WGRAD_MIN_CHANNELS &&
           k->kernel[1] * k->kernel[2] > 1 && k->kernel[1] <= KERN_CONV_DIRECT_MAX_KERNEL &&
           k->kernel[2] <= KERN_CONV_DIRECT_MAX_KERNEL && k->pad[1] >= 0 && k->pad[2] >= 0;
}

static size_t direct_wgrad_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    if (!direct_wgrad_fits(cg))
        return 0;
    return kern_conv_direct_wgrad_scratch(cg->big_c, k->image[1], k->image[2], cg->small_c,
                                          k->kernel[1], k->kernel[2], k->pad[1], k->pad[2],
                                          k->out[1], k->out[2], threads);
}

/* dW += ..., db += ... (db may be NULL) by the direct route; 0 when it does not apply or the
 * scratch is too small for the current thread setting. */
static int direct_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                              float *dw, float *db, float *scratch, size_t scratch_n)
{
    const kern_conv_shape *k = &cg->ks;
    size_t need = direct_wgrad_floats(cg, kern_threads());
    if (!need || need > scratch_n)
        return 0;
    kern_conv_direct_wgrad(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                           k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2],
                           big, dsmall, dw, db, scratch);
    return 1;
}

/* dW += dsmall . im2col(big)^T, summed over the batch. */
static void conv_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                             float *dw, float *scratch, size_t scratch_n)
{
    if (implicit_weight_grad(cg, big, dsmall, dw, scratch, scratch_n))
        return;
    pass_job j = {.cg = cg, .big = big, .small = dsmall, .dw = dw, .scratch = scratch};
    int T = engine_threads(cg, scratch_n), units = unit_count(cg);
    if (T > units)
        T = units;
    if (T <= 1)
        weight_grad_units(&j, 0, units, dw, scratch);
    else
        kern_run(T, weight_grad_task, &j);
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

typedef struct bias_grad_job {
    const float *dy;
    float *db;
    int N, C;
    size_t plane;
} bias_grad_job;

/* db[c] += the sum of channel c over the images, for channels [c0, c1): each channel is
 * summed by one thread, in the same order whatever the thread count. */
static void bias_grad_channels(void *p, size_t c0, size_t c1)
{
    const bias_grad_job *j = p;
    for (size_t c = c0; c < c1; c++) {
        float s = 0.0f;
        for (int i = 0; i < j->N; i++) {
            const float *row = j->dy + ((size_t)i * j->C + c) * j->plane;
            float r = 0.0f;
#pragma omp simd reduction(+ : r)
            for (size_t p = 0; p < j->plane; p++)
                r += row[p];
            s += r;
        }
        j->db[c] += s;
    }
}

static void bias_grad(const float *dy, float *db, int N, int C, size_t plane, int per_position)
{
    if (!per_position) {
        bias_grad_job j = {dy, db, N, C, plane};
        size_t per_channel = (size_t)N * plane;
        kern_parallel_for((size_t)C, per_channel >= (1u << 14) ? 1 : (1u << 14) / per_channel,
                          bias_grad_channels, &j);
        return;
    }
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            const float *row = dy + ((size_t)i * C + c) * plane;
            for (size_t p = 0; p < plane; p++)
                db[(size_t)c * plane + p] += row[p];
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

/* ---- Winograd route for the forward of 3x3 stride-1 convolutions ----------------------
 * kern_winograd_conv3x3 needs 2.25x fewer multiply-adds than the column product and beats
 * it on every 3x3 layer of ResNet-18 (batch 1) and ResNet-20 (batch 128) measured, from 16
 * channels and 8x8 images up. It takes a plain, one-group, same-size-padded 2-D
 * correlation; the rest goes through the engine. Its workspace shares the node's scratch. */
enum { WINOGRAD_MIN_CHANNELS = 16, WINOGRAD_MIN_EXTENT = 8 };

static int winograd_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    if (!plain_stride1_2d(cg))
        return 0;
    for (int d = 1; d < MAX_SPATIAL; d++)
        if (k->kernel[d] != 3 || k->out[d] != k->image[d] + 2 * k->pad[d] - 2 ||
            k->image[d] < WINOGRAD_MIN_EXTENT)
            return 0;
    return cg->big_c >= WINOGRAD_MIN_CHANNELS && cg->small_c >= WINOGRAD_MIN_CHANNELS;
}

/* Floats of Winograd workspace for the batch of cg on `threads` threads; 0 when the route
 * does not apply. */
static size_t winograd_floats(const conv_geom *cg, int threads)
{
    if (!winograd_fits(cg))
        return 0;
    return kern_winograd_workspace(cg->batch, cg->big_c, cg->ks.image[1], cg->ks.image[2],
                                   cg->small_c, cg->ks.pad[1], cg->ks.pad[2], threads);
}

/* Runs the forward by Winograd when it applies and the scratch holds its workspace for
 * the current thread setting (which may have grown since compilation); returns 0 if not. */
static int winograd_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                            float *y, float *scratch, size_t scratch_n)
{
    size_t need = winograd_floats(cg, kern_threads());
    if (!need || need > scratch_n)
        return 0;
    kern_winograd_conv3x3(cg->batch, cg->big_c, cg->ks.image[1], cg->ks.image[2], cg->small_c,
                          cg->ks.pad[1], cg->ks.pad[2], x, w, b, y, scratch);
    return 1;
}

/* The input gradient of such a convolution is itself one: dx = dy correlated with the
 * weights flipped in space and transposed in channels, W'[c, k] = flip(W[k, c]), padded by
 * 2 - pad. Winograd computes it a chunk of images at a time into the scratch, which is then
 * added into dx (gradients accumulate). With a batch of at least the thread count, each
 * thread takes a static share of the images and works it a chunk at a time on its own
 * (nested kernel calls run serially); results are the same whatever the split, since each
 * image's arithmetic does not depend on the others. Scratch: [W' | chunk of dx per thread |
 * Winograd workspace per thread]. */
#define WINOGRAD_ADJOINT_CHUNK_FLOATS (1 << 16)

typedef struct wino_adjoint {
    int images;        /* images per chunk */
    int threads;       /* threads working their own chunks; 1: each chunk on all threads */
    size_t w_floats, out_floats, ws_floats;
} wino_adjoint;

static int winograd_adjoint_plan(const conv_geom *cg, int threads, wino_adjoint *wa)
{
    const kern_conv_shape *k = &cg->ks;
    if (!winograd_fits(cg) || k->pad[1] > 2 || k->pad[2] > 2 || k->out[1] < WINOGRAD_MIN_EXTENT ||
        k->out[2] < WINOGRAD_MIN_EXTENT)
        return 0;
    size_t per_image = (size_t)cg->big_c * cg->big_plane;
    size_t fit = WINOGRAD_ADJOINT_CHUNK_FLOATS / per_image;
    wa->images = fit < 1 ? 1 : fit > (size_t)cg->batch ? cg->batch : (int)fit;
    /* threads work their own images when each gets some: no kernel call, barrier and
     * add per chunk shared by all threads (ResNet-20 training on 2 threads: +10%) */
    wa->threads = threads > 1 && cg->batch >= threads ? threads : 1;
    wa->w_floats = (size_t)cg->small_c * cg->rows;
    wa->out_floats = (size_t)wa->images * per_image;
    wa->ws_floats = 0;
    /* calls take up to `images` images (fewer for the last chunk, and a smaller call may
     * need more: all its tiles fit in cache at once); nested calls still plan for
     * kern_threads() threads and use one thread's share, hence `threads` */
    for (int n = 1; n <= wa->images; n++) {
        size_t f = kern_winograd_workspace(n, cg->small_c, k->out[1], k->out[2], cg->big_c,
                                           2 - k->pad[1], 2 - k->pad[2], threads);
        wa->ws_floats = f > wa->ws_floats ? f : wa->ws_floats;
    }
    wa->out_floats *= (size_t)wa->threads;
    wa->ws_floats *= (size_t)wa->threads;
    return 1;
}

static size_t winograd_adjoint_floats(const conv_geom *cg, int threads)
{
    wino_adjoint wa;
    return winograd_adjoint_plan(cg, threads, &wa) ? wa.w_floats + wa.out_floats + wa.ws_floats
                                                   : 0;
}

typedef struct add_job {
    float *dst;
    const float *src;
} add_job;

static void add_range(void *p, size_t i0, size_t i1)
{
    const add_job *j = p;
    for (size_t i = i0; i < i1; i++)
        j->dst[i] += j->src[i];
}

typedef struct adjoint_job {
    const conv_geom *cg;
    const wino_adjoint *wa;
    const float *dy, *wt;
    float *dx, *work; /* work: [dx chunk of each thread | workspace of each thread] */
    int overwrite;    /* dx holds nothing yet: write the products straight into it */
} adjoint_job;

/* dx[i0, i1) += the images' Winograd products, a chunk at a time through `out` (or, when
 * dx is fresh, dx[i0, i1) = the products, written in place). */
static void adjoint_images(const adjoint_job *j, size_t i0, size_t i1, float *out, float *ws)
{
    const conv_geom *cg = j->cg;
    const kern_conv_shape *k = &cg->ks;
    size_t in_image = (size_t)cg->small_c * cg->small_plane;
    size_t out_image = (size_t)cg->big_c * cg->big_plane;
    for (size_t i = i0; i < i1; i += (size_t)j->wa->images) {
        int n = i1 - i < (size_t)j->wa->images ? (int)(i1 - i) : j->wa->images;
        float *dst = j->overwrite ? j->dx + i * out_image : out;
        kern_winograd_conv3x3(n, cg->small_c, k->out[1], k->out[2], cg->big_c, 2 - k->pad[1],
                              2 - k->pad[2], j->dy + i * in_image, j->wt, NULL, dst, ws);
        if (j->overwrite)
            continue;
        add_job a = {j->dx + i * out_image, out};
        kern_parallel_for((size_t)n * out_image, 1 << 14, add_range, &a);
    }
}

/* Thread t's static share of the images, with its own slices of the work space. */
static void adjoint_task(void *ctx, int t, int T)
{
    const adjoint_job *j = ctx;
    size_t out_slice = j->wa->out_floats / (size_t)T, ws_slice = j->wa->ws_floats / (size_t)T;
    size_t b, e;
    kern_split((size_t)j->cg->batch, t, T, &b, &e);
    adjoint_images(j, b, e, j->work + (size_t)t * out_slice,
                   j->work + j->wa->out_floats + (size_t)t * ws_slice);
}

/* dx += dy correlated with W' by Winograd (dx = ... when `overwrite`); returns 0 (nothing
 * done) when the route does not apply or the scratch is too small for the current thread
 * setting. */
static int winograd_adjoint(const conv_geom *cg, const float *w, const float *dy, float *dx,
                            int overwrite, float *scratch, size_t scratch_n)
{
    wino_adjoint wa;
    if (!winograd_adjoint_plan(cg, kern_threads(), &wa) ||
        wa.w_floats + wa.out_floats + wa.ws_floats > scratch_n)
        return 0;
    float *wt = scratch;
    kern_conv_flip_transpose(cg->small_c, cg->big_c, 3, 3, w, wt);
    adjoint_job j = {cg, &wa, dy, wt, dx, wt + wa.w_floats, overwrite};
    if (wa.threads > 1)
        kern_run(wa.threads, adjoint_task, &j);
    else
        adjoint_images(&j, 0, (size_t)cg->batch, j.work, j.work + wa.out_floats);
    return 1;
}

/* The direct routes for the input gradient of stride-1 2-D convolutions with few channels
 * that Winograd does not take (LeNet's 6 -> 16, 5x5): no column matrix and no scatter (a
 * 1x1 kernel has neither and stays a plain product). With at most 8 input channels, the
 * images go in the vector lanes and only the taps that meet the output gradient are
 * computed (kern_conv_direct_dgrad, src/kernels/conv_direct_grad.c); up to 16 output
 * channels, output columns go in the lanes of a correlation with the flipped, transposed
 * weights (kern_conv_direct_adjoint, src/kernels/conv_direct.c). */
enum { DGRAD_MAX_IN_CHANNELS = 8, DGRAD_MAX_OUT_CHANNELS = 32 };

static int dgrad_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return direct_shape(cg) && k->kernel[1] * k->kernel[2] > 1 &&
           k->kernel[1] <= KERN_CONV_DIRECT_MAX_KERNEL && k->kernel[2] <= KERN_CONV_DIRECT_MAX_KERNEL &&
           cg->big_c <= DGRAD_MAX_IN_CHANNELS && cg->small_c <= DGRAD_MAX_OUT_CHANNELS &&
           k->pad[1] >= 0 && k->pad[2] >= 0 && k->pad[1] < k->kernel[1] && k->pad[2] < k->kernel[2];
}

static int direct_adjoint_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return direct_shape(cg) && k->kernel[1] * k->kernel[2] > 1 &&
           kern_conv_direct_adjoint_fits(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2],
                                         k->pad[1], k->pad[2]);
}

/* Scratch of the direct input-gradient route that applies; 0 when none does. */
static size_t direct_dx_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    if (dgrad_fits(cg))
        return kern_conv_direct_dgrad_scratch(cg->big_c, k->image[1], k->image[2], cg->small_c,
                                              k->kernel[1], k->kernel[2], k->pad[1], k->pad[2],
                                              k->out[1], k->out[2], threads);
    return direct_adjoint_fits(cg) ? weight_floats(cg) : 0;
}

/* dx (+)= the input gradient by a direct route; returns 0 when none applies or the scratch
 * is too small for the current thread setting. */
static int direct_input_grad(const conv_geom *cg, const float *w, const float *dy, float *dx,
                             int overwrite, float *scratch, size_t scratch_n)
{
    const kern_conv_shape *k = &cg->ks;
    size_t need = direct_dx_floats(cg, kern_threads());
    if (!need || need > scratch_n)
        return 0;
    if (dgrad_fits(cg)) {
        kern_conv_direct_dgrad(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                               k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1],
                               k->out[2], dy, w, dx, !overwrite, scratch);
        return 1;
    }
    kern_conv_flip_transpose(cg->small_c, cg->big_c, k->kernel[1], k->kernel[2], w, scratch);
    kern_conv_direct_adjoint(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                             k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1],
                             k->out[2], dy, scratch, dx, !overwrite);
    return 1;
}

static size_t kvec_floats(const conv_geom *cg, int threads);

static size_t conv_scratch(const nerve_graph *g, const node *n)
{
    conv_geom cg;
    if (conv_geometry(g, n, &cg))
        return 0;
    size_t need = engine_scratch(&cg), wino = winograd_floats(&cg, kern_threads());
    size_t adjoint = winograd_adjoint_floats(&cg, kern_threads());
    size_t implicit = implicit_wgrad_floats(&cg, kern_threads());
    size_t direct = direct_dx_floats(&cg, kern_threads());
    size_t direct_w = direct_wgrad_floats(&cg, kern_threads());
    size_t kvec = kvec_floats(&cg, kern_threads());
    need = need > kvec ? need : kvec;
    need = need > direct ? need : direct;
    need = need > direct_w ? need : direct_w;
    need = need > wino ? need : wino;
    need = need > implicit ? need : implicit;
    return need > adjoint ? need : adjoint;
}

/* The direct routes serve forwards with few input channels (LeNet's 1 -> 6 and 6 -> 16,
 * ResNet-20's 3 -> 16 stem), in direct_shape. With many output channels these go in the
 * vector lanes (src/kernels/conv_direct_kvec.c), else output columns do
 * (src/kernels/conv_direct.c). */
static int direct_fits(const conv_geom *cg)
{
    return direct_shape(cg) && kern_conv_direct_fits(cg->big_c, cg->ks.kernel[1], cg->ks.kernel[2]);
}

static size_t kvec_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    if (!direct_shape(cg) ||
        !kern_conv_direct_kvec_fits(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2]))
        return 0;
    return kern_conv_direct_kvec_scratch(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2],
                                         k->out[1], k->out[2], threads);
}

/* The forward by the channels-in-lanes route; 0 when it does not apply or the scratch is
 * too small for the current thread setting. */
static int kvec_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                        float *y, float *scratch, size_t scratch_n)
{
    const kern_conv_shape *k = &cg->ks;
    size_t need = kvec_floats(cg, kern_threads());
    if (!need || need > scratch_n)
        return 0;
    kern_conv_direct_kvec(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                          k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2],
                          x, w, b, y, scratch);
    return 1;
}

static void conv_forward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    const float *b = bias_value(g, n);
    if (winograd_forward(&cg, x, w, b, n->value, n->scratch, n->scratch_n) ||
        kvec_forward(&cg, x, w, b, n->value, n->scratch, n->scratch_n))
        return;
    if (direct_fits(&cg)) {
        const kern_conv_shape *k = &cg.ks;
        kern_conv_direct(cg.batch, cg.big_c, k->image[1], k->image[2], cg.small_c, k->kernel[1],
                         k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2], x, w, b, n->value);
        return;
    }
    if (b)
        bias_fill(n->value, b, cg.batch, cg.small_c, cg.small_plane, 0);
    conv_correlate(&cg, w, x, n->value, b ? 1.0f : 0.0f, n->scratch, n->scratch_n);
}

static void conv_backward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1), *db = bias_gradient(g, n);
    /* the direct weight gradient sums the bias gradient in the same pass */
    int bias_done = dw && direct_weight_grad(&cg, x->value, n->grad, dw, db, n->scratch,
                                             n->scratch_n);
    if (dw && !bias_done)
        conv_weight_grad(&cg, x->value, n->grad, dw, n->scratch, n->scratch_n);
    /* A fresh dx (nothing written yet this pass, not zeroed) is overwritten by the Winograd
     * and direct routes; the column route adds, so it zeroes a fresh dx first. */
    int fresh = dx && node_input_grad_fresh(g, n, 0);
    if (dx && !winograd_adjoint(&cg, w->value, n->grad, dx, fresh, n->scratch, n->scratch_n) &&
        !direct_input_grad(&cg, w->value, n->grad, dx, fresh, n->scratch, n->scratch_n)) {
        if (fresh)
            node_zero_input_grad(g, n, 0);
        conv_adjoint(&cg, w->value, n->grad, dx, n->scratch, n->scratch_n);
    }
    if (db && !bias_done)
        bias_grad(n->grad, db, cg.batch, cg.small_c, cg.small_plane, 0);
}

static const op_def op_conv = {"conv", conv_infer, conv_scratch, conv_forward, conv_backward,
                               OP_OUTPUT_UNREAD | OP_GRAD_OVERWRITE | OP_SCRATCH_TRANSIENT};

int op_conv_shape(const nerve_graph *g, const node *n, kern_conv_shape *ks, int *groups)
{
    conv_geom cg;
    int st = conv_geometry(g, n, &cg);
    if (st)
        return st;
    *ks = cg.ks;
    *groups = cg.groups;
    return NERVE_OK;
}

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
                                         conv_transpose_backward, OP_SCRATCH_TRANSIENT};

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
    if ((st = plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 3, &lg->ks)) ||
        (st = node_check_size(n, "one sample of the output (channels x spatial sizes)",
                              size_mul64(lg->out_c, shape_values64(MAX_SPATIAL, lg->ks.out)))))
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
                                local_backward, OP_SCRATCH_TRANSIENT};

int nerve_local(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg)
{
    return add_conv_op(g, &op_local, x, w, bias, cfg, NULL);
}

const op_def *const ops_conv[] = {&op_conv, &op_conv_transpose, &op_local, NULL};
