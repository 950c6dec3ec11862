/* Winograd F(4x4, 3x3) convolution kernel: against a direct convolution in double over odd
 * shapes, both paddings, channel counts off the 16-lane grid, batches and bias; both kernel
 * paths; bit-identical results across thread counts and runs; the workspace it asks for is
 * all it touches (canaries here, AddressSanitizer under SANITIZE=1). */
#include "../src/kernels/kernels.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
#define SLOW_BUILD 1 /* sanitizers: the portable path on one thread only */
#else
#define SLOW_BUILD 0
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CANARY 64 /* floats past the end of every output and workspace */

static const char *const paths[] = {"portable", "avx512", "neon"};

typedef struct {
    int N, C, H, W, K, ph, pw, bias;
} wshape;

static int out_h(const wshape *s) { return s->H + 2 * s->ph - 2; }
static int out_w(const wshape *s) { return s->W + 2 * s->pw - 2; }
static size_t out_size(const wshape *s)
{
    return (size_t)s->N * s->K * out_h(s) * out_w(s);
}

static float *random_floats(nerve_rng *r, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = nerve_rng_uniform(r) * 2 - 1;
    return x;
}

/* The definition, in double: ref [N, K, OH, OW], one (channel, tap) at a time over the
 * output positions whose input is inside the image. */
static void direct_conv(const wshape *s, const float *in, const float *w, const float *bias,
                        double *ref)
{
    int OH = out_h(s), OW = out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int k = 0; k < s->K; k++) {
            double *o = ref + ((size_t)n * s->K + k) * OH * OW;
            for (int q = 0; q < OH * OW; q++)
                o[q] = bias ? bias[k] : 0.0;
            for (int c = 0; c < s->C; c++)
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        double wt = w[((size_t)k * s->C + c) * 9 + i * 3 + j];
                        const float *im = in + ((size_t)n * s->C + c) * s->H * s->W;
                        for (int y = 0; y < OH; y++) {
                            int yy = y + i - s->ph;
                            if (yy < 0 || yy >= s->H)
                                continue;
                            int x0 = s->pw - j > 0 ? s->pw - j : 0;
                            int x1 = s->W + s->pw - j < OW ? s->W + s->pw - j : OW;
                            for (int x = x0; x < x1; x++)
                                o[y * OW + x] += wt * im[yy * s->W + x + j - s->pw];
                        }
                    }
        }
}

/* A buffer of n floats followed by CANARY floats of a marker value. */
static float *guarded(size_t n)
{
    float *p = malloc((n + CANARY) * sizeof *p);
    for (size_t i = 0; i < n + CANARY; i++)
        p[i] = -12345.0f;
    return p;
}

static int canary_intact(const float *p, size_t n)
{
    for (size_t i = n; i < n + CANARY; i++)
        if (p[i] != -12345.0f)
            return 0;
    return 1;
}

/* Runs the kernel on `threads` threads with exactly the workspace it asks for; returns 0 if
 * it wrote outside the output or the workspace. */
static int run_kernel(const wshape *s, const float *in, const float *w, const float *bias,
                      float *out, int threads)
{
    nerve_set_threads(threads);
    size_t nws = kern_winograd_workspace(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, threads);
    float *ws = guarded(nws);
    size_t no = out_size(s);
    for (size_t i = 0; i < no + CANARY; i++)
        out[i] = -12345.0f;
    kern_winograd_conv3x3(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, in, w, bias, out, ws);
    int ok = canary_intact(ws, nws) && canary_intact(out, no);
    free(ws);
    nerve_set_threads(0);
    return ok;
}

/* Max |got - ref| over max |ref| (the output scale). */
static double relative_error(const float *got, const double *ref, size_t n)
{
    double err = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        err = d > err ? d : err;
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    }
    return err / scale;
}

static const wshape shapes[] = {
    {1, 3, 5, 7, 5, 1, 1, 1},      /* tiny, partial tiles both ways */
    {2, 17, 9, 11, 19, 0, 1, 0},   /* pad 0 rows, pad 1 columns, no bias */
    {3, 20, 13, 6, 33, 1, 0, 1},   /* three images, K over two vectors */
    {1, 64, 14, 14, 70, 1, 1, 1},  /* two k-blocks of 48 */
    {1, 40, 3, 3, 16, 0, 0, 1},    /* a single output per channel */
    {2, 8, 2, 2, 4, 1, 1, 0},      /* image smaller than a tile */
    {1, 130, 7, 7, 150, 1, 1, 1},  /* deep: three k-blocks, C past 128 */
    {3, 16, 32, 32, 16, 1, 1, 1},  /* fused on one thread, blocked on two */
    {1, 33, 40, 37, 32, 1, 1, 0},  /* blocked on any thread count */
    {1, 5, 42, 42, 80, 1, 1, 1},   /* blocked, 11 rows x 2 k-blocks: 2 threads share a row */
};

TEST(winograd_matches_direct_convolution)
{
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    for (size_t si = 0; si < ARRAY_LEN(shapes); si++) {
        const wshape *s = &shapes[si];
        size_t nin = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->K * s->C * 9;
        float *in = random_floats(&r, nin), *w = random_floats(&r, nw);
        float *bias = s->bias ? random_floats(&r, (size_t)s->K) : NULL;
        size_t no = out_size(s);
        double *ref = malloc(no * sizeof *ref);
        float *out = guarded(no);
        direct_conv(s, in, w, bias, ref);
        for (size_t pi = 0; pi < ARRAY_LEN(paths); pi++) {
            if (!kern_set_isa(paths[pi]))
                continue;
            int most = SLOW_BUILD && pi == 0 ? 1 : 2;
            for (int threads = 1; threads <= most; threads++) {
                CHECK_MSG(run_kernel(s, in, w, bias, out, threads),
                          "shape %zu (%s, %d threads) wrote outside its buffers", si, paths[pi],
                          threads);
                double e = relative_error(out, ref, no);
                CHECK_MSG(e <= 1e-4, "shape %zu (%s, %d threads): relative error %.3g", si,
                          paths[pi], threads, e);
            }
        }
        kern_set_isa("auto");
        free(in);
        free(w);
        free(bias);
        free(ref);
        free(out);
    }
}

TEST(winograd_bit_identical_across_threads_and_runs)
{
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    const wshape picks[] = {shapes[2], shapes[6], shapes[7], shapes[8], shapes[9]};
    for (size_t si = 0; si < ARRAY_LEN(picks); si++) {
        const wshape *s = &picks[si];
        size_t nin = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->K * s->C * 9;
        float *in = random_floats(&r, nin), *w = random_floats(&r, nw);
        float *bias = random_floats(&r, (size_t)s->K);
        size_t no = out_size(s);
        float *one = guarded(no), *two = guarded(no);
        CHECK(run_kernel(s, in, w, bias, one, 1));
        for (int rep = 0; rep < 3; rep++) {
            CHECK(run_kernel(s, in, w, bias, two, 2));
            CHECK_MSG(memcmp(one, two, no * sizeof(float)) == 0,
                      "shape %zu: 2 threads (run %d) differ from 1 thread", si, rep);
        }
        free(in);
        free(w);
        free(bias);
        free(one);
        free(two);
    }
}

/* A workspace sized for more threads than run is enough, and the size never shrinks as
 * the planned thread count grows (callers may size once for the most threads). */
TEST(winograd_workspace_grows_with_threads)
{
    for (size_t si = 0; si < ARRAY_LEN(shapes); si++) {
        const wshape *s = &shapes[si];
        size_t prev = 0;
        for (int t = 1; t <= 4; t++) {
            size_t n = kern_winograd_workspace(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, t);
            CHECK(n > 0 && n >= prev);
            prev = n;
        }
    }
    /* sized for 4, run on 2 */
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    const wshape *s = &shapes[8];
    size_t nin = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->K * s->C * 9;
    float *in = random_floats(&r, nin), *w = random_floats(&r, nw);
    size_t no = out_size(s), nws = kern_winograd_workspace(s->N, s->C, s->H, s->W, s->K, s->ph,
                                                           s->pw, 4);
    float *ws = guarded(nws), *out = guarded(no), *want = guarded(no);
    CHECK(run_kernel(s, in, w, NULL, want, 1));
    nerve_set_threads(2);
    kern_winograd_conv3x3(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, in, w, NULL, out, ws);
    nerve_set_threads(0);
    CHECK(canary_intact(ws, nws) && canary_intact(out, no));
    CHECK(memcmp(out, want, no * sizeof(float)) == 0);
    free(in);
    free(w);
    free(ws);
    free(out);
    free(want);
}

/* Kernels never allocate: the workspace is all the memory a call uses. */
TEST(winograd_does_not_allocate)
{
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    const wshape *s = &shapes[3];
    size_t nin = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->K * s->C * 9;
    float *in = random_floats(&r, nin), *w = random_floats(&r, nw);
    size_t nws = kern_winograd_workspace(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw,
                                         kern_threads());
    float *ws = malloc(nws * sizeof *ws), *out = malloc(out_size(s) * sizeof *out);
    /* once first: the pool's workers take their GEMM workspaces when they start */
    kern_winograd_conv3x3(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, in, w, NULL, out, ws);
    uint64_t before = nerve_alloc_count();
    for (int rep = 0; rep < 3; rep++)
        kern_winograd_conv3x3(s->N, s->C, s->H, s->W, s->K, s->ph, s->pw, in, w, NULL, out, ws);
    CHECK(nerve_alloc_count() == before);
    free(in);
    free(w);
    free(ws);
    free(out);
}

/* A single weight tap at the centre makes the convolution a copy of the input: checks the
 * orientation (correlation, not convolution) and the padding placement exactly. */
TEST(winograd_centre_tap_copies_input)
{
    const wshape s = {1, 2, 9, 6, 2, 1, 1, 0};
    float in[2 * 9 * 6], w[2 * 2 * 9] = {0}, out[2 * 9 * 6 + CANARY];
    for (size_t i = 0; i < ARRAY_LEN(in); i++)
        in[i] = (float)i;
    w[(0 * 2 + 0) * 9 + 4] = 1; /* out channel 0 = in channel 0 */
    w[(1 * 2 + 1) * 9 + 5] = 1; /* out channel 1 = in channel 1 shifted left by one */
    size_t nws = kern_winograd_workspace(s.N, s.C, s.H, s.W, s.K, s.ph, s.pw, kern_threads());
    float *ws = guarded(nws);
    kern_winograd_conv3x3(s.N, s.C, s.H, s.W, s.K, s.ph, s.pw, in, w, NULL, out, ws);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 6; x++) {
            CHECK_NEAR(out[y * 6 + x], in[y * 6 + x], 1e-4 * 54);
            float right = x + 1 < 6 ? in[54 + y * 6 + x + 1] : 0.0f;
            CHECK_NEAR(out[54 + y * 6 + x], right, 1e-4 * 108);
        }
    free(ws);
}
