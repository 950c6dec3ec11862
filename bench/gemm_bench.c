/* SGEMM benchmark: GFLOP/s of kern_sgemm against the machine's measured FMA peak.
 *
 * Build (after `make`):
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -Iinclude -Isrc bench/gemm_bench.c \
 *      build/libnerve.a -lz -lpng -lm -pthread -o build/gemm_bench   (or: make build/bench/gemm_bench)
 * Run:  build/gemm_bench [repeats [path]]  (each figure: best and median of `repeats` runs;
 *       path: auto, portable, avx2, avx512)
 *
 * Besides the table, one line per measurement for scripts (best figure, fraction of the
 * measured peak for that many threads):
 *   peak_gflops_per_core <GFLOP/s>
 *   peak_gflops_threads <threads> <GFLOP/s>
 *   sgemm <size> <threads> <GFLOP/s> <fraction>            square M = N = K = size
 *   sgemm_shape <M> <N> <K> <tA> <tB> <threads> <GFLOP/s> <fraction>
 *
 * The peak is measured in the same run with independent FMA chains (24 accumulators per
 * core, more than latency x pipes), on 1 and 2 threads at once, using the widest vector
 * unit of the selected kernel path. */
#include "kernels/kernels.h"
#include "nerve.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

/* ---- FMA peak: 24 independent accumulator chains --------------------------------------- */

#define CHAINS 24
__attribute__((target("avx512f"), noinline)) static float fma_loop_512(long iters)
{
    __m512 acc[CHAINS], m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    }
    __m512 s = acc[0];
    for (int i = 1; i < CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float fma_loop_256(long iters)
{
    __m256 acc[12], m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    }
    float out[8], s = 0;
    for (int i = 1; i < 12; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(out, acc[0]);
    for (int i = 0; i < 8; i++)
        s += out[i];
    return s;
}

static volatile float sink;

typedef struct {
    long iters;
    int wide;
} fma_job;

static void fma_task(void *p, int t, int T)
{
    (void)t;
    (void)T;
    fma_job *j = p;
    sink = j->wide ? fma_loop_512(j->iters) : fma_loop_256(j->iters);
}

/* GFLOP/s of `threads` cores each running the FMA loop (best of `repeats`). */
static double fma_peak(int threads, int repeats, int wide)
{
    long iters = 20000000;
    double flops_per_iter = wide ? CHAINS * 32.0 : 12 * 16.0, best = 0;
    for (int r = 0; r < repeats; r++) {
        fma_job job = {iters, wide};
        kern_set_threads(threads);
        double t0 = now();
        kern_run(threads, fma_task, &job);
        double g = threads * iters * flops_per_iter / (now() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

/* ---- GEMM ------------------------------------------------------------------------------- */

typedef struct {
    int ta, tb, M, N, K;
    const char *what;
} shape;

static float *random_matrix(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

/* Best and median GFLOP/s over `repeats` timings of ~0.2 s each. */
static void bench_shape(const shape *s, int threads, int repeats, double *best, double *median)
{
    kern_set_threads(threads);
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    float *A = random_matrix((size_t)s->M * s->K), *B = random_matrix((size_t)s->K * s->N);
    float *C = random_matrix((size_t)s->M * s->N);
    double flops = 2.0 * s->M * s->N * s->K, t0 = now();
    int calls = 0;
    while (now() - t0 < 0.05 || calls < 2) { /* warm up, size the timing loop */
        kern_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        calls++;
    }
    int per = (int)(0.2 / ((now() - t0) / calls)) + 1;
    double g[64];
    for (int r = 0; r < repeats; r++) {
        double t = now();
        for (int i = 0; i < per; i++)
            kern_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        g[r] = flops * per / (now() - t) / 1e9;
    }
    qsort(g, (size_t)repeats, sizeof g[0], cmp_double);
    *best = g[repeats - 1];
    *median = g[repeats / 2];
    free(A);
    free(B);
    free(C);
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
    int wide = strcmp(kern_isa_name(), "avx512") == 0;
    if (strcmp(kern_isa_name(), "portable") == 0)
        printf("note: portable path; peak below is for AVX2 FMA\n");
    double peak[3] = {0, fma_peak(1, 5, wide), fma_peak(2, 5, wide)};
    printf("kernel path: %s\n", kern_isa_name());
    printf("FMA peak (%s, best of 5): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n",
           wide ? "zmm" : "ymm", peak[1], peak[2]);
    printf("peak_gflops_per_core %.1f\npeak_gflops_threads 1 %.1f\npeak_gflops_threads 2 %.1f\n",
           peak[1], peak[1], peak[2]);
    const shape shapes[] = {
        {0, 0, 256, 256, 256, "square"},      {0, 0, 1024, 1024, 1024, "square"},
        {0, 0, 2048, 2048, 2048, "square"},   {0, 1, 64, 512, 784, "dense fwd x W^T"},
        {0, 0, 64, 784, 512, "dense dx = g W"}, {1, 0, 512, 784, 64, "dense dW = g^T x"},
        {0, 1, 1, 512, 784, "one sample"},
    };
    printf("%-18s %2s %2s %5s %5s %5s %3s %9s %9s %7s %7s\n", "shape", "tA", "tB", "M", "N", "K",
           "thr", "best", "median", "best%", "med%");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int t = 1; t <= 2; t++) {
            const shape *s = &shapes[i];
            double best, median;
            bench_shape(s, t, repeats, &best, &median);
            printf("%-18s %2d %2d %5d %5d %5d %3d %9.1f %9.1f %6.1f%% %6.1f%%\n", s->what, s->ta,
                   s->tb, s->M, s->N, s->K, t, best, median, 100 * best / peak[t],
                   100 * median / peak[t]);
            if (s->M == s->N && s->N == s->K && !s->ta && !s->tb)
                printf("sgemm %d %d %.1f %.3f\n", s->M, t, best, best / peak[t]);
            else
                printf("sgemm_shape %d %d %d %d %d %d %.1f %.3f\n", s->M, s->N, s->K, s->ta, s->tb, t,
                       best, best / peak[t]);
            fflush(stdout);
        }
    /* The machine is shared: a second peak measurement shows how stable the run was. */
    printf("FMA peak again: 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n", fma_peak(1, 5, wide),
           fma_peak(2, 5, wide));
    return 0;
}
