/* Convolution operators: conv (1-3 spatial dimensions) and conv_transpose, and the choice of
 * route for each of their passes (local is in conv_local.c).
 *
 * conv and conv_transpose share one engine (conv_columns.c). It sees a convolution as a map
 * between a "big" side (the image the kernel slides over, C_big channels) and a "small"
 * side (one value per kernel position, C_small channels), with weights
 * W [C_small, C_big/G, *k]; per image and group g (R = C_big/G * prod(k) patch rows,
 * Ls small positions):
 *   correlate: small_g [C_small/G, Ls]  = W_g [C_small/G, R] . im2col(big_g) [R, Ls]
 *   adjoint:   big_g                   += col2im(W_g^T . small_g)
 *   weight:    dW_g                    += dsmall_g . im2col(big_g)^T
 * conv:           big = x, small = y: forward correlate; dx adjoint; dW weight.
 * conv_transpose: big = y, small = x: forward adjoint; dx correlate; dW weight (its weight
 *                 [C, O/G, *k] is exactly the weight of the conv it is the adjoint of).
 * Shapes that allow it take a faster route instead: Winograd (conv_winograd.c), an implicit
 * weight gradient (conv_implicit.c) or the direct kernels (conv_direct.c). Which route
 * applies to a shape is decided here and only here ("which route" below); the route files
 * run what they are given. Settings and shapes are in conv_geometry.c. */
#include "conv_internal.h"

/* ---- which route ---------------------------------------------------------------------- */

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

/* The shapes every direct route takes: plain_stride1_2d on the AVX-512 path (a forced
 * narrower path keeps the column route). */
static int direct_shape(const conv_geom *cg)
{
    return plain_stride1_2d(cg) && kern_isa_active() == KERN_ISA_AVX512;
}

/* The direct forward and its adjoint (the input gradient through the same kernel) also run
 * on NEON (kern_conv_direct_vector); the weight and dgrad routes are AVX-512 only. */
static int direct_forward_shape(const conv_geom *cg)
{
    return plain_stride1_2d(cg) && kern_conv_direct_vector();
}

/* Winograd for the forward of 3x3 stride-1 convolutions: kern_winograd_conv3x3 needs 2.25x
 * fewer multiply-adds than the column product and beats it on every 3x3 layer of ResNet-18
 * (batch 1) and ResNet-20 (batch 128) measured, from 16 channels and 8x8 images up. It takes
 * a plain, one-group, same-size-padded 2-D correlation. */
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

/* The input gradient of such a convolution is itself one (dy correlated with the flipped,
 * transposed weights, padded by 2 - pad): Winograd again where that padding and the output
 * gradient's size allow. */
static int winograd_adjoint_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return winograd_fits(cg) && k->pad[1] <= 2 && k->pad[2] <= 2 &&
           k->out[1] >= WINOGRAD_MIN_EXTENT && k->out[2] >= WINOGRAD_MIN_EXTENT;
}

/* The implicit weight gradient takes stride-1 convolutions with at least 8 input channels;
 * with fewer, the direct one does (on AVX-512). */
enum { IMPLICIT_WGRAD_MIN_CHANNELS = 8 };

static int implicit_wgrad_fits(const conv_geom *cg)
{
    return plain_stride1_2d(cg) && cg->big_c >= IMPLICIT_WGRAD_MIN_CHANNELS;
}

static int direct_wgrad_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return direct_shape(cg) && cg->big_c < IMPLICIT_WGRAD_MIN_CHANNELS &&
           k->kernel[1] * k->kernel[2] > 1 && k->kernel[1] <= KERN_CONV_DIRECT_MAX_KERNEL &&
           k->kernel[2] <= KERN_CONV_DIRECT_MAX_KERNEL && k->pad[1] >= 0 && k->pad[2] >= 0;
}

/* The direct routes for the input gradient of stride-1 2-D convolutions with few channels
 * that Winograd does not take (LeNet's 6 -> 16, 5x5): no column matrix and no scatter (a
 * 1x1 kernel has neither and stays a plain product). With at most 8 input channels, the
 * images go in the vector lanes (dgrad); up to 16 output channels, output columns do
 * (direct adjoint). */
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
    return direct_forward_shape(cg) && k->kernel[1] * k->kernel[2] > 1 &&
           kern_conv_direct_adjoint_fits(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2],
                                         k->pad[1], k->pad[2]);
}

/* The direct forwards serve few input channels (LeNet's 1 -> 6 and 6 -> 16, ResNet-20's
 * 3 -> 16 stem): with many output channels these go in the vector lanes (kvec), else output
 * columns do. */
static int direct_fits(const conv_geom *cg)
{
    return direct_forward_shape(cg) && kern_conv_direct_fits(cg->big_c, cg->ks.kernel[1], cg->ks.kernel[2]);
}

static int kvec_fits(const conv_geom *cg)
{
    const kern_conv_shape *k = &cg->ks;
    return direct_shape(cg) &&
           kern_conv_direct_kvec_fits(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2]);
}

/* Scratch floats of each route on `threads` threads; 0 where the route does not apply. */
static size_t winograd_floats(const conv_geom *cg, int threads)
{
    return winograd_fits(cg) ? conv_winograd_floats(cg, threads) : 0;
}

static size_t winograd_adjoint_floats(const conv_geom *cg, int threads)
{
    return winograd_adjoint_fits(cg) ? conv_winograd_adjoint_floats(cg, threads) : 0;
}

static size_t implicit_wgrad_floats(const conv_geom *cg, int threads)
{
    return implicit_wgrad_fits(cg) ? conv_implicit_wgrad_floats(cg, threads) : 0;
}

static size_t direct_wgrad_floats(const conv_geom *cg, int threads)
{
    return direct_wgrad_fits(cg) ? conv_direct_wgrad_floats(cg, threads) : 0;
}

static size_t direct_dx_floats(const conv_geom *cg, int threads)
{
    if (dgrad_fits(cg))
        return conv_direct_dgrad_floats(cg, threads);
    return direct_adjoint_fits(cg) ? conv_weight_floats(cg) : 0;
}

static size_t kvec_floats(const conv_geom *cg, int threads)
{
    return kvec_fits(cg) ? conv_direct_kvec_floats(cg, threads) : 0;
}

/* A route with scratch runs when it applies and the scratch holds what it needs for the
 * current thread setting (which may have grown since compilation). */
static int fits_scratch(size_t need, size_t scratch_n)
{
    return need && need <= scratch_n;
}

typedef enum { FWD_WINOGRAD, FWD_KVEC, FWD_DIRECT, FWD_COLUMNS } forward_route;

static forward_route forward_route_of(const conv_geom *cg, size_t scratch_n)
{
    int T = kern_threads();
    if (fits_scratch(winograd_floats(cg, T), scratch_n))
        return FWD_WINOGRAD;
    if (fits_scratch(kvec_floats(cg, T), scratch_n))
        return FWD_KVEC;
    return direct_fits(cg) ? FWD_DIRECT : FWD_COLUMNS;
}

typedef enum { DX_WINOGRAD, DX_DGRAD, DX_DIRECT_ADJOINT, DX_COLUMNS } input_grad_route;

static input_grad_route input_grad_route_of(const conv_geom *cg, size_t scratch_n)
{
    int T = kern_threads();
    if (fits_scratch(winograd_adjoint_floats(cg, T), scratch_n))
        return DX_WINOGRAD;
    if (fits_scratch(direct_dx_floats(cg, T), scratch_n))
        return dgrad_fits(cg) ? DX_DGRAD : DX_DIRECT_ADJOINT;
    return DX_COLUMNS;
}

typedef enum { DW_DIRECT, DW_IMPLICIT, DW_COLUMNS } weight_grad_route;

/* The direct route serves conv only (with its bias gradient in the same pass). The implicit
 * route splits the batch by images: with fewer images than threads the column route, which
 * splits one image's blocks, serves instead. */
static weight_grad_route weight_grad_route_of(const conv_geom *cg, int direct_allowed,
                                              size_t scratch_n)
{
    int T = kern_threads();
    if (direct_allowed && fits_scratch(direct_wgrad_floats(cg, T), scratch_n))
        return DW_DIRECT;
    if (implicit_wgrad_fits(cg) && cg->batch >= T &&
        implicit_wgrad_floats(cg, T) <= scratch_n)
        return DW_IMPLICIT;
    return DW_COLUMNS;
}

/* dW += dsmall . im2col(big)^T by the route that applies; db (conv only; may be NULL) too
 * when that is the direct route, which returns 1 then. */
static int weight_grad(const conv_geom *cg, int direct_allowed, const float *big,
                       const float *dsmall, float *dw, float *db, float *scratch,
                       size_t scratch_n)
{
    switch (weight_grad_route_of(cg, direct_allowed, scratch_n)) {
    case DW_DIRECT:
        conv_direct_weight_grad(cg, big, dsmall, dw, db, scratch);
        return 1;
    case DW_IMPLICIT:
        conv_implicit_weight_grad(cg, big, dsmall, dw, scratch);
        return 0;
    case DW_COLUMNS:
        break;
    }
    conv_columns_weight_grad(cg, big, dsmall, dw, scratch, scratch_n);
    return 0;
}

/* ---- conv ----------------------------------------------------------------------------- */

static int conv_infer(nerve_graph *g, node *n)
{
    conv_geom cg;
    int st = conv_geometry(g, n, &cg);
    if (st)
        return st;
    conv_set_output_shape(n, cg.batch, cg.small_c, node_input(g, n, 1)->ndim - 2, cg.ks.out);
    return NERVE_OK;
}

/* The most any route that applies needs. */
static size_t conv_scratch(const nerve_graph *g, const node *n)
{
    conv_geom cg;
    if (conv_geometry(g, n, &cg))
        return 0;
    size_t need = conv_engine_scratch(&cg), wino = winograd_floats(&cg, kern_threads());
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

static void conv_forward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    const float *b = conv_bias_value(g, n);
    switch (forward_route_of(&cg, n->scratch_n)) {
    case FWD_WINOGRAD:
        conv_winograd_forward(&cg, x, w, b, n->value, n->scratch);
        return;
    case FWD_KVEC:
        conv_direct_kvec_forward(&cg, x, w, b, n->value, n->scratch);
        return;
    case FWD_DIRECT:
        conv_direct_forward(&cg, x, w, b, n->value);
        return;
    case FWD_COLUMNS:
        break;
    }
    if (b)
        conv_bias_fill(n->value, b, cg.batch, cg.small_c, cg.small_plane, 0);
    conv_correlate(&cg, w, x, n->value, b ? 1.0f : 0.0f, n->scratch, n->scratch_n);
}

static void conv_backward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_geometry(g, n, &cg);
    const node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1);
    float *db = conv_bias_gradient(g, n);
    /* the direct weight gradient sums the bias gradient in the same pass */
    int bias_done = dw && weight_grad(&cg, 1, x->value, n->grad, dw, db, n->scratch,
                                      n->scratch_n);
    /* A fresh dx (nothing written yet this pass, not zeroed) is overwritten by the Winograd
     * and direct routes; the column route adds, so it zeroes a fresh dx first. */
    int fresh = dx && node_input_grad_fresh(g, n, 0);
    if (dx) {
        switch (input_grad_route_of(&cg, n->scratch_n)) {
        case DX_WINOGRAD:
            conv_winograd_adjoint(&cg, w->value, n->grad, dx, fresh, n->scratch);
            break;
        case DX_DGRAD:
            conv_direct_dgrad(&cg, w->value, n->grad, dx, fresh, n->scratch);
            break;
        case DX_DIRECT_ADJOINT:
            conv_direct_adjoint(&cg, w->value, n->grad, dx, fresh, n->scratch);
            break;
        case DX_COLUMNS:
            if (fresh)
                node_zero_input_grad(g, n, 0);
            conv_adjoint(&cg, w->value, n->grad, dx, n->scratch, n->scratch_n);
            break;
        }
    }
    if (db && !bias_done)
        conv_bias_grad(n->grad, db, cg.batch, cg.small_c, cg.small_plane, 0);
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

int nerve_conv(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg)
{
    return conv_add_op(g, &op_conv, x, w, bias, cfg, NULL);
}

/* ---- conv_transpose ------------------------------------------------------------------- */

static int conv_transpose_infer(nerve_graph *g, node *n)
{
    conv_geom cg;
    int st = conv_transpose_geometry(g, n, &cg);
    if (st)
        return st;
    conv_set_output_shape(n, cg.batch, cg.big_c, node_input(g, n, 1)->ndim - 2, cg.ks.image);
    return NERVE_OK;
}

static size_t conv_transpose_scratch(const nerve_graph *g, const node *n)
{
    conv_geom cg;
    return conv_transpose_geometry(g, n, &cg) ? 0 : conv_engine_scratch(&cg);
}

static void conv_transpose_forward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_transpose_geometry(g, n, &cg);
    conv_bias_fill(n->value, conv_bias_value(g, n), cg.batch, cg.big_c, cg.big_plane, 0);
    conv_adjoint(&cg, node_input(g, n, 1)->value, node_input(g, n, 0)->value, n->value,
                 n->scratch, n->scratch_n);
}

static void conv_transpose_backward(nerve_graph *g, node *n)
{
    conv_geom cg;
    conv_transpose_geometry(g, n, &cg);
    const node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1);
    float *db = conv_bias_gradient(g, n);
    if (dw)
        weight_grad(&cg, 0, n->grad, x->value, dw, NULL, n->scratch, n->scratch_n);
    if (dx)
        conv_correlate(&cg, w->value, n->grad, dx, 1.0f, n->scratch, n->scratch_n);
    if (db)
        conv_bias_grad(n->grad, db, cg.batch, cg.big_c, cg.big_plane, 0);
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
    return conv_add_op(g, &op_conv_transpose, x, w, bias, cfg, padding);
}

const op_def *const ops_conv[] = {&op_conv, &op_conv_transpose, &conv_op_local, NULL};
