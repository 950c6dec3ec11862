/* The weight gradient of stride-1 convolutions without a column matrix (the shapes are
 * conv.c's implicit_wgrad_fits).
 *
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
#include "conv_internal.h"

#include <string.h>

typedef struct implicit_wgrad {
    int C, K, KH, KW, OH, OW, Hp, Wp;
    size_t xp_floats, dyp_floats, part_floats; /* one thread's slice: [xp | dyp | dW'] */
} implicit_wgrad;

static void implicit_wgrad_plan(const conv_geom *cg, implicit_wgrad *iw)
{
    const kern_conv_shape *k = &cg->ks;
    iw->C = cg->big_c, iw->K = cg->small_c;
    iw->KH = k->kernel[1], iw->KW = k->kernel[2], iw->OH = k->out[1], iw->OW = k->out[2];
    iw->Hp = iw->OH + iw->KH - 1, iw->Wp = iw->OW + iw->KW - 1;
    /* the last wrapped position reads KW - 1 pixels past the padded image */
    iw->xp_floats = ((size_t)iw->Hp * iw->Wp + (size_t)iw->KW - 1) * (size_t)iw->C;
    iw->dyp_floats = (size_t)iw->K * iw->OH * iw->Wp;
    iw->part_floats = conv_weight_floats(cg);
}

static size_t implicit_wgrad_slice(const implicit_wgrad *iw)
{
    return iw->xp_floats + iw->dyp_floats + iw->part_floats;
}

size_t conv_implicit_wgrad_floats(const conv_geom *cg, int threads)
{
    implicit_wgrad iw;
    implicit_wgrad_plan(cg, &iw);
    return (size_t)threads * implicit_wgrad_slice(&iw);
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

/* Phase 0: part t sums its images into its partial; phase 1: part t adds every partial,
 * in part order and permuted to [K, C, KH, KW], into its share of dW. */
static void implicit_wgrad_task(void *p, int phase, int t, int T)
{
    const implicit_job *j = p;
    const implicit_wgrad *iw = j->iw;
    size_t slice = implicit_wgrad_slice(iw), off = iw->xp_floats + iw->dyp_floats, e0, e1;
    size_t taps = (size_t)iw->KH * iw->KW, C = (size_t)iw->C;
    if (phase == 0) {
        int i0, i1;
        memset(j->scratch + (size_t)t * slice, 0, slice * sizeof(float)); /* [xp | dyp | dW'] */
        conv_share(j->cg->batch, t, T, &i0, &i1);
        implicit_wgrad_images(j->cg, iw, j->big, j->dsmall, i0, i1,
                              j->scratch + (size_t)t * slice);
        return;
    }
    kern_split(iw->part_floats, t, T, &e0, &e1);
    for (int s = 0; s < T; s++) {
        const float *part = j->scratch + (size_t)s * slice + off;
        for (size_t e = e0; e < e1; e++) { /* e = (k * C + c) * taps + tap */
            size_t tap = e % taps, kc = e / taps;
            j->dw[e] += part[((kc / C) * taps + tap) * C + kc % C];
        }
    }
}

/* dW += dsmall . im2col(big)^T by the route above, on kern_threads() threads; the scratch
 * holds conv_implicit_wgrad_floats for them. */
void conv_implicit_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                               float *dw, float *scratch)
{
    implicit_wgrad iw;
    int T = kern_threads();
    implicit_wgrad_plan(cg, &iw);
    implicit_job j = {cg, &iw, big, dsmall, dw, scratch};
    if (T == 1)
        for (int phase = 0; phase < 2; phase++)
            implicit_wgrad_task(&j, phase, 0, 1);
    else
        kern_run_phases(T, 2, implicit_wgrad_task, &j);
}
