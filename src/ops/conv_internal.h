/* Shared by the convolution sources of src/ops (not part of the library's API).
 *
 *   conv_geometry.c  settings (node attributes), shapes and checks of conv, conv_transpose
 *                    and local; the bias helpers all three share
 *   conv.c           the conv and conv_transpose operators and the choice of route for
 *                    each pass: every test of which route applies to a shape is there
 *   conv_columns.c   the im2col + GEMM engine (column blocks, units, threads)
 *   conv_implicit.c  the weight gradient of stride-1 convolutions without a column matrix
 *   conv_winograd.c  the Winograd forward and input gradient of 3x3 stride-1 convolutions
 *   conv_direct.c    the direct routes of src/kernels/conv_direct*.c (few channels)
 *   conv_local.c     the local (unshared weights) operator
 *
 * The route files run a route on a shape conv.c has chosen for it; they test nothing. */
#ifndef NERVE_OPS_CONV_INTERNAL_H
#define NERVE_OPS_CONV_INTERNAL_H

#include "../kernels/kernels.h"
#include "ops.h"

enum { MAX_SPATIAL = 3 };

/* One convolution as the engine sees it (src/ops/conv.c's header comment): a "big" side
 * (the image the kernel slides over) and a "small" side (one value per kernel position). */
typedef struct conv_geom {
    int batch, groups;
    int big_c, small_c;            /* channels of each side, all groups */
    size_t big_plane, small_plane; /* spatial elements per channel */
    kern_conv_shape ks;            /* one group of one image: ks.channels = big_c / groups */
    size_t rows;                   /* patch rows of one group: big_c/groups * prod(k) */
    int direct;                    /* 1x1, stride 1, no padding: im2col(big) is big itself */
    int block_rows, n_blocks;      /* column blocks: output rows per block, blocks per image */
} conv_geom;

/* ---- conv_geometry.c ---- */
nerve_conv_config conv_attr_config(const node_attr *at, int output_padding[MAX_SPATIAL]);
int conv_op_arg_error(const node *n, const char *fmt, ...);
int conv_check_config(const node *n, const nerve_conv_config *c, int S);
const node *conv_input_of(const nerve_graph *g, const node *n, int i);
kern_conv_shape conv_neutral_shape(void);
int conv_plan_forward_dims(const node *n, const nerve_conv_config *c, int S, const int *in,
                           const int *k, kern_conv_shape *ks);
size_t conv_image_plane(const int *dims);
void conv_set_output_shape(node *n, int N, int C, int S, const int *ext3);
int conv_check_input_rank(const node *n, const node *x, int S);
int conv_geometry(const nerve_graph *g, const node *n, conv_geom *cg);
int conv_transpose_geometry(const nerve_graph *g, const node *n, conv_geom *cg);
int conv_add_op(nerve_graph *g, const op_def *op, int x, int w, int bias,
                const nerve_conv_config *cfg, const int *output_padding);
void conv_bias_fill(float *y, const float *b, int N, int C, size_t plane, int per_position);
void conv_bias_grad(const float *dy, float *db, int N, int C, size_t plane, int per_position);
const float *conv_bias_value(nerve_graph *g, const node *n);
float *conv_bias_gradient(nerve_graph *g, const node *n);

/* ---- conv_columns.c ---- */
void conv_plan_blocks(conv_geom *cg);
size_t conv_weight_floats(const conv_geom *cg);
size_t conv_engine_scratch(const conv_geom *cg);
/* small = beta * small + W . im2col(big) */
void conv_correlate(const conv_geom *cg, const float *w, const float *big, float *small,
                    float beta, float *scratch, size_t scratch_n);
/* big += col2im(W^T . small) */
void conv_adjoint(const conv_geom *cg, const float *w, const float *small, float *big,
                  float *scratch, size_t scratch_n);
/* dW += dsmall . im2col(big)^T, summed over the batch */
void conv_columns_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                              float *dw, float *scratch, size_t scratch_n);

/* The share [*u0, *u1) of `n` items of thread t of T. */
static inline void conv_share(int n, int t, int T, int *u0, int *u1)
{
    size_t b, e;
    kern_split((size_t)n, t, T, &b, &e);
    *u0 = (int)b;
    *u1 = (int)e;
}

/* ---- conv_implicit.c (shapes: conv.c's implicit_wgrad_fits) ---- */
size_t conv_implicit_wgrad_floats(const conv_geom *cg, int threads);
void conv_implicit_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                               float *dw, float *scratch);

/* ---- conv_winograd.c (shapes: conv.c's winograd_fits, winograd_adjoint_fits) ---- */
size_t conv_winograd_floats(const conv_geom *cg, int threads);
void conv_winograd_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                           float *y, float *scratch);
size_t conv_winograd_adjoint_floats(const conv_geom *cg, int threads);
void conv_winograd_adjoint(const conv_geom *cg, const float *w, const float *dy, float *dx,
                           int overwrite, float *scratch);

/* ---- conv_direct.c (shapes: conv.c's direct_*_fits) ---- */
size_t conv_direct_wgrad_floats(const conv_geom *cg, int threads);
void conv_direct_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                             float *dw, float *db, float *scratch);
size_t conv_direct_dgrad_floats(const conv_geom *cg, int threads);
void conv_direct_dgrad(const conv_geom *cg, const float *w, const float *dy, float *dx,
                       int overwrite, float *scratch);
void conv_direct_adjoint(const conv_geom *cg, const float *w, const float *dy, float *dx,
                         int overwrite, float *scratch);
size_t conv_direct_kvec_floats(const conv_geom *cg, int threads);
void conv_direct_kvec_forward(const conv_geom *cg, const float *x, const float *w,
                              const float *b, float *y, float *scratch);
void conv_direct_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                         float *y);

/* ---- conv_local.c ---- */
extern const op_def conv_op_local;

#endif
