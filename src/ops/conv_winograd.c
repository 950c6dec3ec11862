/* The Winograd route (src/kernels/winograd.c) for the forward and the input gradient of 3x3
 * stride-1 convolutions: kern_winograd_conv3x3 takes a plain, one-group, same-size-padded
 * 2-D correlation (the shapes are conv.c's winograd_fits and winograd_adjoint_fits). Its
 * workspace shares the node's scratch. */
#include "conv_internal.h"

/* Floats of Winograd workspace for the batch of cg on `threads` threads. */
size_t conv_winograd_floats(const conv_geom *cg, int threads)
{
    return kern_winograd_workspace(cg->batch, cg->big_c, cg->ks.image[1], cg->ks.image[2],
                                   cg->small_c, cg->ks.pad[1], cg->ks.pad[2], threads);
}

/* The forward by Winograd; the scratch holds conv_winograd_floats for kern_threads(). */
void conv_winograd_forward(const conv_geom *cg, const float *x, const float *w, const float *b,
                           float *y, float *scratch)
{
    kern_winograd_conv3x3(cg->batch, cg->big_c, cg->ks.image[1], cg->ks.image[2], cg->small_c,
                          cg->ks.pad[1], cg->ks.pad[2], x, w, b, y, scratch);
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

static void winograd_adjoint_plan(const conv_geom *cg, int threads, wino_adjoint *wa)
{
    const kern_conv_shape *k = &cg->ks;
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
}

size_t conv_winograd_adjoint_floats(const conv_geom *cg, int threads)
{
    wino_adjoint wa;
    winograd_adjoint_plan(cg, threads, &wa);
    return wa.w_floats + wa.out_floats + wa.ws_floats;
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

/* dx += dy correlated with W' by Winograd (dx = ... when `overwrite`); the scratch holds
 * conv_winograd_adjoint_floats for kern_threads(). */
void conv_winograd_adjoint(const conv_geom *cg, const float *w, const float *dy, float *dx,
                           int overwrite, float *scratch)
{
    wino_adjoint wa;
    winograd_adjoint_plan(cg, kern_threads(), &wa);
    float *wt = scratch;
    kern_conv_flip_transpose(cg->small_c, cg->big_c, 3, 3, w, wt);
    adjoint_job j = {cg, &wa, dy, wt, dx, wt + wa.w_floats, overwrite};
    if (wa.threads > 1)
        kern_run(wa.threads, adjoint_task, &j);
    else
        adjoint_images(&j, 0, (size_t)cg->batch, j.work, j.work + wa.out_floats);
}
