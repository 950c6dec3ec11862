/* The direct forward convolution with output channels in the lanes (kern_conv_direct_kvec)
 * next to kern_conv_direct (output columns in the lanes), at 1 and 2 threads, on LeNet-5's
 * two convolutions (batch 64) and conv2-like shapes with fewer and more output channels (to
 * place the K threshold of kern_conv_direct_kvec_fits).
 *
 * Build: make build/bench/conv_kvec_bench
 * Run:   build/bench/conv_kvec_bench [calls [shape-substring]]
 *
 * Each figure is the median (and best) over `calls` timed calls (default 300) of one call
 * each, after a warm-up, in microseconds per call. */
#include "kernels/kernels.h"
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

typedef struct {
    const char *what;
    int N, C, H, W, K, KH, KW, pad;
} shape;

typedef struct {
    const shape *s;
    int OH, OW;
    const float *x, *w, *b;
    float *y, *scratch;
} call;

static void run_direct(void *p)
{
    const call *c = p;
    const shape *s = c->s;
    kern_conv_direct(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, c->OH, c->OW,
                     c->x, c->w, c->b, c->y);
}

static void run_kvec(void *p)
{
    const call *c = p;
    const shape *s = c->s;
    kern_conv_direct_kvec(s->N, s->C, s->H, s->W, s->K, s->KH, s->KW, s->pad, s->pad, c->OH,
                          c->OW, c->x, c->w, c->b, c->y, c->scratch);
}

static void bench(const shape *s, int threads, int calls)
{
    int OH = s->H + 2 * s->pad - s->KH + 1, OW = s->W + 2 * s->pad - s->KW + 1;
    size_t nx = (size_t)s->N * s->C * s->H * s->W, ny = (size_t)s->N * s->K * OH * OW;
    size_t nw = (size_t)s->K * s->C * s->KH * s->KW;
    size_t ns = kern_conv_direct_kvec_scratch(s->C, s->K, s->KH, s->KW, OH, OW, threads);
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *w = malloc(sizeof(float) * nw), *b = malloc(sizeof(float) * (size_t)s->K);
    float *scratch = malloc(sizeof(float) * ns);
    double *t = malloc(sizeof(double) * calls);
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    for (size_t i = 0; i < nx; i++)
        x[i] = nerve_rng_uniform(&r);
    for (size_t i = 0; i < nw; i++)
        w[i] = nerve_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < s->K; i++)
        b[i] = nerve_rng_uniform(&r);
    call c = {s, OH, OW, x, w, b, y, scratch};
    double dm, db, km, kb;
    nerve_set_threads(threads);
    bench_time_calls(run_direct, &c, calls, t, &dm, &db);
    bench_time_calls(run_kvec, &c, calls, t, &km, &kb);
    printf("%-30s threads %d  direct %7.1f us (best %7.1f)  kvec %7.1f us (best %7.1f)  "
           "x%.2f  fits %d  (%s)\n",
           s->what, threads, dm, db, km, kb, dm / km,
           kern_conv_direct_kvec_fits(s->C, s->K, s->KH, s->KW), kern_isa_name());
    nerve_set_threads(0);
    free(x);
    free(y);
    free(w);
    free(b);
    free(scratch);
    free(t);
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 300;
    if (calls < 1)
        calls = 1;
    static const shape shapes[] = {
        {"conv1 64x1x28x28 -> 6, 5x5 p2", 64, 1, 28, 28, 6, 5, 5, 2},
        {"conv2 64x6x14x14 -> 16, 5x5", 64, 6, 14, 14, 16, 5, 5, 0},
        {"64x6x14x14 -> 6, 5x5", 64, 6, 14, 14, 6, 5, 5, 0},
        {"64x6x14x14 -> 8, 5x5", 64, 6, 14, 14, 8, 5, 5, 0},
        {"64x6x14x14 -> 10, 5x5", 64, 6, 14, 14, 10, 5, 5, 0},
        {"64x6x14x14 -> 12, 5x5", 64, 6, 14, 14, 12, 5, 5, 0},
        {"64x6x14x14 -> 32, 5x5", 64, 6, 14, 14, 32, 5, 5, 0},
        {"64x1x28x28 -> 16, 5x5 p2", 64, 1, 28, 28, 16, 5, 5, 2},
        {"64x1x28x28 -> 12, 5x5 p2", 64, 1, 28, 28, 12, 5, 5, 2},
        {"64x3x32x32 -> 16, 3x3 p1", 64, 3, 32, 32, 16, 3, 3, 1},
    };
    const char *only = argc > 2 ? argv[2] : "";
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int threads = 1; threads <= 2; threads++)
            if (strstr(shapes[i].what, only))
                bench(&shapes[i], threads, calls);
    return 0;
}
