/* The direct weight + bias gradient (kern_conv_direct_wgrad) on LeNet-5's two convolutions
 * (batch 64), and the input gradient of conv2 by kern_conv_direct_dgrad (images in lanes)
 * next to kern_conv_direct_adjoint (columns in lanes), at 1 and 2 threads.
 *
 * Build: make build/bench/conv_wgrad_bench      Run: build/bench/conv_wgrad_bench [calls]
 *
 * Each figure is the median (and best) over `calls` timed calls (default 400) of one call
 * each, after a warm-up, in microseconds per call (dW and db together; dx alone). */
#include "kernels/kernels.h"
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"

typedef struct {
    const char *what;
    int N, C, H, W, K, KH, KW, pad;
} shape;

static void bench(const shape *s, int threads, int calls)
{
    int OH = s->H + 2 * s->pad - s->KH + 1, OW = s->W + 2 * s->pad - s->KW + 1;
    size_t nx = (size_t)s->N * s->C * s->H * s->W, ndy = (size_t)s->N * s->K * OH * OW;
    size_t nw = (size_t)s->K * s->C * s->KH * s->KW;
    size_t ns = kern_conv_direct_wgrad_scratch(s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad,
                                               s->pad, OH, OW, threads);
    float *x = malloc(sizeof(float) * nx), *dy = malloc(sizeof(float) * ndy);
    float *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)s->K, sizeof(float));
    float *scratch = malloc(sizeof(float) * ns);
    double *t = malloc(sizeof(double) * calls);
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    for (size_t i = 0; i < nx; i++)
        x[i] = nerve_rng_uniform(&r);
    for (size_t i = 0; i < ndy; i++)
        dy[i] = nerve_rng_uniform(&r) - 0.5f;
    nerve_set_threads(threads);
    for (int i = 0; i < 20; i++)
        kern_conv_direct_wgrad(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, OH,
                               OW, x, dy, dw, db, scratch);
    for (int i = 0; i < calls; i++) {
        double t0 = now();
        kern_conv_direct_wgrad(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, OH,
                               OW, x, dy, dw, db, scratch);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)calls, sizeof(double), cmp_double);
    printf("%-28s threads %d  median %8.1f us  best %8.1f us  (%s)\n", s->what, threads,
           1e6 * t[calls / 2], 1e6 * t[0], kern_isa_name());
    nerve_set_threads(0);
    free(x);
    free(dy);
    free(dw);
    free(db);
    free(scratch);
    free(t);
}

typedef struct {
    const shape *s;
    int OH, OW;
    const float *dy, *w, *wt;
    float *dx, *scratch;
} dx_ctx;

static void run_dgrad(void *p)
{
    const dx_ctx *c = p;
    const shape *s = c->s;
    kern_conv_direct_dgrad(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, c->OH,
                           c->OW, c->dy, c->w, c->dx, 0, c->scratch);
}

static void run_adjoint(void *p)
{
    const dx_ctx *c = p;
    const shape *s = c->s;
    kern_conv_direct_adjoint(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, c->OH,
                             c->OW, c->dy, c->wt, c->dx, 0);
}

/* dx of one shape by both kernels at `threads` threads. */
static void bench_dx(const shape *s, int threads, int calls)
{
    int OH = s->H + 2 * s->pad - s->KH + 1, OW = s->W + 2 * s->pad - s->KW + 1;
    size_t ndx = (size_t)s->N * s->C * s->H * s->W, ndy = (size_t)s->N * s->K * OH * OW;
    size_t nw = (size_t)s->K * s->C * s->KH * s->KW;
    size_t ns = kern_conv_direct_dgrad_scratch(s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad,
                                               s->pad, OH, OW, threads);
    float *dy = malloc(sizeof(float) * ndy), *w = malloc(sizeof(float) * nw);
    float *wt = malloc(sizeof(float) * nw), *dx = malloc(sizeof(float) * ndx);
    float *scratch = malloc(sizeof(float) * ns);
    nerve_rng r;
    nerve_rng_seed(&r, 2);
    for (size_t i = 0; i < ndy; i++)
        dy[i] = nerve_rng_uniform(&r) - 0.5f;
    for (size_t i = 0; i < nw; i++)
        w[i] = nerve_rng_uniform(&r) - 0.5f;
    kern_conv_flip_transpose(s->K, s->C, s->KH, s->KW, w, wt);
    dx_ctx c = {s, OH, OW, dy, w, wt, dx, scratch};
    nerve_set_threads(threads);
    double med_d, best_d, med_a, best_a;
    double *t = malloc(sizeof(double) * (size_t)calls);
    bench_time_calls(run_dgrad, &c, calls, t, &med_d, &best_d);
    bench_time_calls(run_adjoint, &c, calls, t, &med_a, &best_a);
    free(t);
    printf("%-28s threads %d  dx dgrad median %7.1f us best %7.1f | adjoint median %7.1f us "
           "best %7.1f  (%s)\n",
           s->what, threads, med_d, best_d, med_a, best_a, kern_isa_name());
    nerve_set_threads(0);
    free(dy);
    free(w);
    free(wt);
    free(dx);
    free(scratch);
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 400;
    if (calls < 1)
        calls = 1;
    static const shape shapes[] = {
        {"conv1 64x1x28x28 -> 6, 5x5", 64, 1, 28, 28, 6, 5, 5, 2},
        {"conv2 64x6x14x14 -> 16, 5x5", 64, 6, 14, 14, 16, 5, 5, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int threads = 1; threads <= 2; threads++)
            bench(&shapes[i], threads, calls);
    for (int threads = 1; threads <= 2; threads++)
        bench_dx(&shapes[1], threads, calls);
    return 0;
}
