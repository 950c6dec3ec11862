/* Winograd F(4x4, 3x3) against im2col + SGEMM on the 3x3 stride-1 convolutions of ResNet-18
 * (batch 1, 224x224 input) and ResNet-20 (CIFAR, batch 128), in the same run.
 *
 * Build: make build/bench/winograd_bench      Run: build/bench/winograd_bench [repeats] [isa]
 *
 * Each figure is the median (and best) of `repeats` timings of ~0.2 s of back-to-back
 * calls. The im2col baseline is what the conv forward does: bias fill, then per image
 * im2col and W [K, 9C] . cols [9C, OH*OW] added on top; when one image's product is too
 * small for kern_sgemm to use every thread, the images are split across threads instead.
 * "err" is max |winograd - im2col| over max |im2col|. */
#include "kernels/kernels.h"
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

typedef struct {
    const char *what;
    int N, C, H, K;
} shape;

typedef struct {
    const shape *s;
    const float *in, *w, *bias;
    float *out, *ws;
    kern_conv_shape ks;
    size_t col_floats;
    int img_threads;
} problem;

static int out_hw(const shape *s) { return s->H; } /* pad 1 keeps the size */

/* ---- the im2col + GEMM baseline --------------------------------------------------------- */

static void bias_fill(const problem *p, int n)
{
    size_t plane = (size_t)out_hw(p->s) * out_hw(p->s);
    for (int k = 0; k < p->s->K; k++) {
        float *o = p->out + ((size_t)n * p->s->K + k) * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = p->bias[k];
    }
}

static void im2col_image(const problem *p, int n, float *col,
                         void (*gemm)(int, int, int, int, int, float, const float *, int,
                                      const float *, int, float, float *, int))
{
    const shape *s = p->s;
    int L = out_hw(s) * out_hw(s), R = 9 * s->C;
    bias_fill(p, n);
    kern_im2col(&p->ks, p->in + (size_t)n * s->C * s->H * s->H, col);
    gemm(0, 0, s->K, L, R, 1.0f, p->w, R, col, L, 1.0f, p->out + (size_t)n * s->K * L, L);
}

static void im2col_task(void *ctx, int t, int T)
{
    const problem *p = ctx;
    size_t b, e;
    kern_split((size_t)p->s->N, t, T, &b, &e);
    for (size_t n = b; n < e; n++)
        im2col_image(p, (int)n, p->ws + (size_t)t * p->col_floats, kern_sgemm_serial);
}

static void run_im2col(const problem *p)
{
    if (p->img_threads > 1) {
        kern_run(p->img_threads, im2col_task, (void *)p);
        return;
    }
    for (int n = 0; n < p->s->N; n++)
        im2col_image(p, n, p->ws, kern_sgemm);
}

static void run_winograd(const problem *p)
{
    const shape *s = p->s;
    kern_winograd_conv3x3(s->N, s->C, s->H, s->H, s->K, 1, 1, p->in, p->w, p->bias, p->out,
                          p->ws);
}

/* Median and best ms per call over `repeats` timings. */
static void timeit(void (*fn)(const problem *), const problem *p, int repeats, double *median,
                   double *best)
{
    double t0 = now(), ms[64];
    int calls = 0;
    while (now() - t0 < 0.05 || calls < 2) { /* warm up, size the loop */
        fn(p);
        calls++;
    }
    int per = (int)(0.2 / ((now() - t0) / calls)) + 1;
    for (int r = 0; r < repeats; r++) {
        double t = now();
        for (int i = 0; i < per; i++)
            fn(p);
        ms[r] = 1e3 * (now() - t) / per;
    }
    qsort(ms, (size_t)repeats, sizeof ms[0], cmp_double);
    *median = ms[repeats / 2];
    *best = ms[0];
}

static float *random_floats(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * ((float)rand() / RAND_MAX - 0.5f);
    return x;
}

static float *aligned_floats(size_t n)
{
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

static kern_conv_shape conv_shape(const shape *s)
{
    kern_conv_shape ks;
    memset(&ks, 0, sizeof ks);
    ks.channels = s->C;
    for (int d = 0; d < 3; d++) {
        int spatial = d > 0;
        ks.image[d] = ks.out[d] = spatial ? s->H : 1;
        ks.kernel[d] = spatial ? 3 : 1;
        ks.stride[d] = ks.dilation[d] = 1;
        ks.pad[d] = spatial;
    }
    return ks;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    if (repeats < 1 || repeats > 64)
        repeats = 5;
    if (argc > 2 && !kern_set_isa(argv[2])) {
        fprintf(stderr, "kernel path %s not available\n", argv[2]);
        return 1;
    }
    const shape shapes[] = {
        {"resnet18 conv2_x", 1, 64, 56, 64},   {"resnet18 conv3_x", 1, 128, 28, 128},
        {"resnet18 conv4_x", 1, 256, 14, 256}, {"resnet18 conv5_x", 1, 512, 7, 512},
        {"resnet20 stage1", 128, 16, 32, 16},  {"resnet20 stage2", 128, 32, 16, 32},
        {"resnet20 stage3", 128, 64, 8, 64},
    };
    printf("kernel path: %s; ms per call, median (best) of %d\n", kern_isa_name(), repeats);
    printf("%-18s %4s %4s %4s %4s %3s %17s %17s %7s %9s\n", "shape", "N", "C=K", "HxW", "", "thr",
           "im2col+gemm", "winograd", "w/i", "err");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        size_t nin = (size_t)s->N * s->C * s->H * s->H, nout = (size_t)s->N * s->K * s->H * s->H;
        float *in = random_floats(nin, 2.0f), *w = random_floats((size_t)s->K * s->C * 9, 0.2f);
        float *bias = random_floats((size_t)s->K, 0.2f);
        float *ref = malloc(nout * sizeof *ref), *got = malloc(nout * sizeof *got);
        for (int t = 1; t <= 2; t++) {
            kern_set_threads(t);
            problem p = {s, in, w, bias, ref, NULL, conv_shape(s), 0, 1};
            p.col_floats = kern_conv_rows(&p.ks) * kern_conv_cols(&p.ks);
            int L = s->H * s->H;
            if (s->N > 1 && kern_sgemm_threads(s->K, L, 9 * s->C) < t)
                p.img_threads = t;
            size_t wsn = kern_winograd_workspace(s->N, s->C, s->H, s->H, s->K, 1, 1, t);
            size_t coln = p.col_floats * (size_t)p.img_threads;
            p.ws = aligned_floats(wsn > coln ? wsn : coln); /* as the library allocates */
            double im_med, im_best, wi_med, wi_best;
            timeit(run_im2col, &p, repeats, &im_med, &im_best);
            p.out = got;
            timeit(run_winograd, &p, repeats, &wi_med, &wi_best);
            double err = 0, scale = 1e-30;
            for (size_t j = 0; j < nout; j++) {
                err = fmax(err, fabs((double)got[j] - ref[j]));
                scale = fmax(scale, fabs((double)ref[j]));
            }
            printf("%-18s %4d %4d %4d %4s %3d %8.3f (%6.3f) %8.3f (%6.3f) %7.2f %9.2e\n", s->what,
                   s->N, s->C, s->H, "", t, im_med, im_best, wi_med, wi_best, wi_med / im_med,
                   err / scale);
            fflush(stdout);
            free(p.ws);
        }
        free(in);
        free(w);
        free(bias);
        free(ref);
        free(got);
    }
    return 0;
}
