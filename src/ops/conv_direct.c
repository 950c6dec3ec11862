/* The direct convolution routes of src/kernels/conv_direct*.c: no column matrix, for
 * stride-1 2-D convolutions with few channels (LeNet's 1 -> 6 and 6 -> 16, 5x5; ResNet-20's
 * 3 -> 16 stem). The shapes each route takes are in conv.c (direct_fits, kvec_fits,
 * dgrad_fits, direct_adjoint_fits, direct_wgrad_fits); these run them.
 *   forward: output channels in the vector lanes (kern_conv_direct_kvec,
 *     src/kernels/conv_direct_kvec.c), or output columns (kern_conv_direct,
 *     src/kernels/conv_direct.c);
 *   input gradient: with the images in the vector lanes, only the taps that meet the output
 *     gradient are computed (kern_conv_direct_dgrad, src/kernels/conv_direct_grad.c); or
 *     output columns go in the lanes of a correlation with the flipped, transposed weights
 *     (kern_conv_direct_adjoint, src/kernels/conv_direct.c);
 *   weight gradient: dot products of the output gradient with shifted windows of the
 *     zero-padded image, with the bias gradient in the same pass
 *     (kern_conv_direct_wgrad, src/kernels/conv_direct_grad.c). */
#include "conv_internal.h"

size_t conv_direct_wgrad_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    return kern_conv_direct_wgrad_scratch(cg->big_c, k->image[1], k->image[2], cg->small_c,
                                          k->kernel[1], k->kernel[2], k->pad[1], k->pad[2],
                                          k->out[1], k->out[2], threads);
}

/* dW += ..., db += ... (db may be NULL) */
void conv_direct_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                             float *dw, float *db, float *scratch)
{
    const kern_conv_shape *k = &cg->ks;
    kern_conv_direct_wgrad(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                           k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2],
                           big, dsmall, dw, db, scratch);
}

size_t conv_direct_dgrad_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    return kern_conv_direct_dgrad_scratch(cg->big_c, k->image[1], k->image[2], cg->small_c,
                                          k->kernel[1], k->kernel[2], k->pad[1], k->pad[2],
                                          k->out[1], k->out[2], threads);
}

/* dx (+)= the input gradient, images in the lanes */
void conv_direct_dgrad(const conv_geom *cg, const float *w, const float *dy, float *dx,
                       int overwrite, float *scratch)
{
    const kern_conv_shape *k = &cg->ks;
    kern_conv_direct_dgrad(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                           k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1],
                           k->out[2], dy, w, dx, !overwrite, scratch);
}

/* dx (+)= the input gradient, output columns in the lanes; the scratch holds the flipped,
 * transposed weights (conv_weight_floats). */
void conv_direct_adjoint(const conv_geom *cg, const float *w, const float *dy, float *dx,
                         int overwrite, float *scratch)
{
    const kern_conv_shape *k = &cg->ks;
    kern_conv_flip_transpose(cg->small_c, cg->big_c, k->kernel[1], k->kernel[2], w, scratch);
    kern_conv_direct_adjoint(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                             k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1],
                             k->out[2], dy, scratch, dx, !overwrite);
}

size_t conv_direct_kvec_floats(const conv_geom *cg, int threads)
{
    const kern_conv_shape *k = &cg->ks;
    return kern_conv_direct_kvec_scratch(cg->big_c, cg->small_c, k->kernel[1], k->kernel[2],
                                         k->out[1], k->out[2], threads);
}

/* The forward with the output channels in the lanes. */
void conv_direct_kvec_forward(const conv_geom *cg, const float *x, const float *w,
                              const float *b, float *y, float *scratch)
{
    const kern_conv_shape *k = &cg->ks;
    kern_conv_direct_kvec(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c,
                          k->kernel[1], k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2],
                          x, w, b, y, scratch);
}

/* The forward with output columns in the lanes (no scratch). */
void conv_direct_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                         float *y)
{
    const kern_conv_shape *k = &cg->ks;
    kern_conv_direct(cg->batch, cg->big_c, k->image[1], k->image[2], cg->small_c, k->kernel[1],
                     k->kernel[2], k->pad[1], k->pad[2], k->out[1], k->out[2], x, w, b, y);
}
