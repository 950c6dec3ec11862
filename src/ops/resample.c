/* Resampling operators: upsampling (nearest, bed of nails, bilinear) and the block
 * rearrangements depth-to-space / space-to-depth.
 *
 * Upsampling by an integer scale s is separable and linear: along each spatial axis an
 * output position o reads at most two input positions ("taps") with weights, and a 2-D
 * output pixel is the sum over the product of its row and column taps:
 *   nearest      o -> o / s, weight 1
 *   bed of nails o -> o / s, weight 1 if o % s == 0 (else no tap: a zero)
 *   bilinear     u = max(0, (o + 0.5) / s - 0.5) (align_corners = 0), i = floor(u),
 *                o -> i with 1 - (u - i) and min(i + 1, in - 1) with u - i
 * so  y[o] = sum_taps w x[i]  and  dx[i] += w dy[o]  use the same taps.
 * [N, C, L] is upsampled along L only (its row axis is one long, with scale 1).
 *
 * Depth-to-space (DCR, ONNX's default) and space-to-depth are permutations: the "deep"
 * tensor [N, C b_h b_w, H, W] and the "shallow" [N, C, H b_h, W b_w] pair up as
 *   shallow[n, c, h b_h + i, w b_w + j] = deep[n, (i b_w + j) C + c, h, w]
 * (b_h = 1 for [N, C, L]); each direction's backward is the other direction, adding. */
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int min_int(int a, int b) { return a < b ? a : b; }

/* [planes, H, W] view of a rank-3 ([N, C, L] as H = 1) or rank-4 tensor. */
typedef struct map_view {
    size_t planes;
    int H, W;
} map_view;

static map_view view_maps(const node *t)
{
    map_view v = {(size_t)t->dims[0] * (size_t)t->dims[1], 1, t->dims[t->ndim - 1]};
    if (t->ndim == 4)
        v.H = t->dims[2];
    return v;
}

static int check_spatial_rank(node *n, const node *x)
{
    if (x->ndim != 3 && x->ndim != 4)
        return op_shape_error(n, "input must be [N, C, H, W] or [N, C, L], got rank %d", x->ndim);
    return NERVE_OK;
}

/* ---- upsample: attr.upsample ------------------------------------------------------------ */

typedef struct taps {
    int n;
    int at[2];
    float w[2];
} taps;

/* The input positions (and weights) that output position o of an axis upsampled by s
 * from `in` positions reads. */
static taps axis_taps(int mode, int o, int s, int in)
{
    taps t = {1, {o / s, 0}, {1.0f, 0.0f}};
    if (mode == NERVE_UPSAMPLE_BED_OF_NAILS && o % s != 0)
        t.n = 0;
    if (mode == NERVE_UPSAMPLE_BILINEAR) {
        double u = fmax(0.0, (o + 0.5) / s - 0.5);
        int i = (int)u;
        double frac = u - i;
        t = (taps){2, {i, min_int(i + 1, in - 1)}, {(float)(1.0 - frac), (float)frac}};
    }
    return t;
}

static int upsample_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    int st = check_spatial_rank(n, x);
    if (st)
        return st;
    node_copy_shape(n, x);
    for (int d = 2; d < n->ndim; d++) {
        int64_t side = size_mul64(x->dims[d], n->attr.upsample.scale);
        char what[64];
        snprintf(what, sizeof what, "spatial size %d x scale %d", x->dims[d], n->attr.upsample.scale);
        if ((st = node_check_size(n, what, side)))
            return st;
        n->dims[d] = (int)side;
    }
    return NERVE_OK;
}

/* Visits every (output pixel, input pixel, weight) triple: forward gathers into y,
 * backward scatters into dx, over the same taps. */
static void upsample_apply(nerve_graph *g, node *n, const float *src, float *dst, int to_output)
{
    map_view in = view_maps(node_input(g, n, 0)), out = view_maps(n);
    int s = n->attr.upsample.scale, mode = n->attr.upsample.mode, sh = n->ndim == 4 ? s : 1;
    size_t in_map = (size_t)in.H * in.W, out_map = (size_t)out.H * out.W;
    for (size_t m = 0; m < in.planes; m++)
        for (int oy = 0; oy < out.H; oy++) {
            taps ty = axis_taps(mode, oy, sh, in.H);
            for (int ox = 0; ox < out.W; ox++) {
                taps tx = axis_taps(mode, ox, s, in.W);
                size_t o = m * out_map + (size_t)oy * out.W + ox;
                for (int a = 0; a < ty.n; a++)
                    for (int b = 0; b < tx.n; b++) {
                        size_t i = m * in_map + (size_t)ty.at[a] * in.W + tx.at[b];
                        float w = ty.w[a] * tx.w[b];
                        if (to_output)
                            dst[o] += w * src[i];
                        else
                            dst[i] += w * src[o];
                    }
            }
        }
}

static void upsample_forward(nerve_graph *g, node *n)
{
    memset(n->value, 0, node_numel(n) * sizeof(float));
    upsample_apply(g, n, node_input(g, n, 0)->value, n->value, 1);
}

static void upsample_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        upsample_apply(g, n, n->grad, dx, 0);
}

static const op_def op_upsample = {"upsample", upsample_infer, NULL, upsample_forward,
                                   upsample_backward, 0};

int nerve_upsample(nerve_graph *g, int x, int scale, nerve_upsample_mode mode)
{
    if (scale < 1)
        return nerve_set_error(NERVE_ERR_ARG, "upsample: scale %d must be at least 1", scale);
    if ((int)mode < NERVE_UPSAMPLE_NEAREST || (int)mode > NERVE_UPSAMPLE_BILINEAR)
        return nerve_set_error(NERVE_ERR_ARG, "upsample: unknown mode %d", (int)mode);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.upsample.scale = scale;
    at.upsample.mode = mode;
    return graph_add_op(g, &op_upsample, 1, (int[]){x}, &at, "upsample");
}

/* ---- depth_to_space / space_to_depth: attr.block ---------------------------------------- */

/* A deep/shallow pair: C shallow channels, deep maps H x W, blocks bh x bw. */
typedef struct block_geom {
    int N, C, H, W, bh, bw;
} block_geom;

static block_geom block_geometry(const node *deep, int block)
{
    block_geom b = {deep->dims[0], 0, 1, deep->dims[deep->ndim - 1], 1, block};
    if (deep->ndim == 4) {
        b.H = deep->dims[2];
        b.bh = block;
    }
    b.C = deep->dims[1] / (b.bh * b.bw);
    return b;
}

static int to_space(const node *n) { return n->attr.block.to_space; }

static int block_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    int st = check_spatial_rank(n, x), block = n->attr.block.block;
    if (st)
        return st;
    int64_t area = x->ndim == 4 ? size_mul64(block, block) : block;
    node_copy_shape(n, x);
    if (to_space(n)) {
        if (x->dims[1] % area)
            return op_shape_error(n, "%d channels do not split into blocks of %lld", x->dims[1],
                                  (long long)area);
        n->dims[1] = (int)(x->dims[1] / area);
        for (int d = 2; d < n->ndim; d++) {
            if ((st = node_check_size(n, "a spatial size times the block",
                                      size_mul64(x->dims[d], block))))
                return st;
            n->dims[d] = x->dims[d] * block;
        }
        return NERVE_OK;
    }
    for (int d = 2; d < n->ndim; d++)
        if (x->dims[d] % block)
            return op_shape_error(n, "spatial size %d is not a multiple of the block %d",
                                  x->dims[d], block);
    if ((st = node_check_size(n, "the channels times the block area",
                              size_mul64(x->dims[1], area))))
        return st;
    n->dims[1] = (int)(x->dims[1] * area);
    for (int d = 2; d < n->ndim; d++)
        n->dims[d] /= block;
    return NERVE_OK;
}

/* Copies deep -> shallow (to_shallow) or shallow -> deep, adding when accumulate. */
static void shuffle_blocks(const block_geom *b, const float *src, float *dst, int to_shallow,
                           int accumulate)
{
    size_t Hs = (size_t)b->H * b->bh, Ws = (size_t)b->W * b->bw;
    size_t deep_channels = (size_t)b->C * b->bh * b->bw;
    for (size_t n = 0; n < (size_t)b->N; n++)
        for (size_t dc = 0; dc < deep_channels; dc++) {
            size_t c = dc % b->C, ij = dc / b->C, i = ij / b->bw, j = ij % b->bw;
            for (size_t h = 0; h < (size_t)b->H; h++)
                for (size_t w = 0; w < (size_t)b->W; w++) {
                    size_t deep = ((n * deep_channels + dc) * b->H + h) * b->W + w;
                    size_t shallow = ((n * b->C + c) * Hs + h * b->bh + i) * Ws + w * b->bw + j;
                    size_t from = to_shallow ? deep : shallow, to = to_shallow ? shallow : deep;
                    dst[to] = (accumulate ? dst[to] : 0.0f) + src[from];
                }
        }
}

/* The deep side is the input when going to space, the output otherwise. */
static block_geom node_blocks(nerve_graph *g, const node *n)
{
    return block_geometry(to_space(n) ? node_input(g, n, 0) : n, n->attr.block.block);
}

static void block_forward(nerve_graph *g, node *n)
{
    block_geom b = node_blocks(g, n);
    shuffle_blocks(&b, node_input(g, n, 0)->value, n->value, to_space(n), 0);
}

static void block_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    block_geom b = node_blocks(g, n);
    shuffle_blocks(&b, n->grad, dx, !to_space(n), 1);
}

static const op_def op_depth_to_space = {"depth_to_space", block_infer, NULL, block_forward,
                                         block_backward, 0};
static const op_def op_space_to_depth = {"space_to_depth", block_infer, NULL, block_forward,
                                         block_backward, 0};

static int block_node(nerve_graph *g, const op_def *op, int x, int block, int space)
{
    if (block < 1)
        return nerve_set_error(NERVE_ERR_ARG, "%s: block %d must be at least 1", op->name, block);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.block.block = block;
    at.block.to_space = space;
    return graph_add_op(g, op, 1, (int[]){x}, &at, op->name);
}

int nerve_depth_to_space(nerve_graph *g, int x, int block)
{
    return block_node(g, &op_depth_to_space, x, block, 1);
}

int nerve_space_to_depth(nerve_graph *g, int x, int block)
{
    return block_node(g, &op_space_to_depth, x, block, 0);
}

const op_def *const ops_resample[] = {&op_upsample, &op_depth_to_space, &op_space_to_depth, NULL};
