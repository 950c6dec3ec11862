/* int8 kernels: every available path (VNNI, AVX2, portable) gives the same int32 sums, the
 * same quantised activations and the same requantised bytes, and the sums equal a plain
 * reference loop over many shapes (edges of every tile included). */
#include "../src/kernels/kernels.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"portable", "avx2", "avx512"};

static void *aligned(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64))
        return NULL;
    return p;
}

/* Reference sums of u8 A [M, lda] and s8 W [N, K]. */
static void reference(int M, int N, int K, const uint8_t *A, int lda, const int8_t *W, int32_t *C)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++)
                s += (int64_t)A[(size_t)m * lda + k] * W[(size_t)n * K + k];
            C[(size_t)m * N + n] = (int32_t)s;
        }
}

/* One shape on every path: returns 0 on agreement, else sets a failure. */
static int one_shape(nerve_rng *r, int M, int N, int K, int extreme)
{
    int lda = kern_q8_kp(K) + 4;
    uint8_t *A = aligned((size_t)M * lda);
    int8_t *W = aligned((size_t)N * K);
    void *P = aligned(kern_q8_pack_size(N, K));
    void *ws = aligned(kern_q8_gemm_ws(K));
    int32_t *want = aligned((size_t)M * N * 4), *got = aligned((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * lda; i++) /* bytes past K too: they must not count */
        A[i] = extreme ? 255 : (uint8_t)(nerve_rng_uniform(r) * 256);
    for (size_t i = 0; i < (size_t)N * K; i++)
        W[i] = extreme ? (i % 2 ? 127 : -127) : (int8_t)((int)(nerve_rng_uniform(r) * 255) - 127);
    kern_q8_pack(N, K, W, K, P);
    reference(M, N, K, A, lda, W, want);
    int bad = 0;
    for (size_t p = 0; p < sizeof isas / sizeof *isas && !bad; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        memset(got, 0x55, (size_t)M * N * 4);
        kern_q8_gemm(M, N, K, A, lda, P, got, N, ws);
        for (size_t i = 0; i < (size_t)M * N && !bad; i++)
            if (got[i] != want[i]) {
                test_fail(__FILE__, __LINE__, "path %s, M=%d N=%d K=%d: C[%zu] = %d, want %d",
                          kern_q8_path(), M, N, K, i, got[i], want[i]);
                bad = 1;
            }
    }
    kern_set_isa("auto");
    free(A);
    free(W);
    free(P);
    free(ws);
    free(want);
    free(got);
    return bad;
}

TEST(q8_gemm_paths_match_reference)
{
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    static const int Ms[] = {1, 2, 5, 6, 7, 8, 9, 13, 64};
    static const int Ns[] = {1, 6, 10, 15, 16, 17, 31, 32, 33, 84, 120};
    static const int Ks[] = {1, 3, 4, 5, 25, 150, 400, 784};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
            for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++)
                if (one_shape(&r, Ms[a], Ns[b], Ks[c], 0))
                    return;
    /* the largest products everywhere: a pairwise s16 sum of u8 x s8 would saturate here */
    CHECK(!one_shape(&r, 9, 33, 1000, 1));
}

TEST(q8_paths_reported)
{
    CHECK(kern_set_isa("portable"));
    CHECK(!strcmp(kern_q8_path(), "portable"));
    if (kern_set_isa("avx2"))
        CHECK(!strcmp(kern_q8_path(), "avx2"));
    if (kern_set_isa("avx512"))
        CHECK(!strcmp(kern_q8_path(), "vnni") || !strcmp(kern_q8_path(), "avx2"));
    kern_set_isa("auto");
    printf("  int8 path here: %s\n", kern_q8_path());
}

TEST(q8_quantize_paths_agree_and_round_half_even)
{
    enum { n = 1003 };
    float *x = malloc(n * sizeof *x);
    uint8_t want[n], got[n];
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    for (int i = 0; i < n; i++)
        x[i] = (nerve_rng_uniform(&r) * 2 - 1) * 3.0f;
    x[0] = 0.5f;  /* ties: to even */
    x[1] = 1.5f;
    x[2] = -0.5f;
    x[3] = NAN;
    x[4] = 1e30f;
    x[5] = -1e30f;
    x[6] = 2.5f;
    CHECK(kern_set_isa("portable"));
    kern_q8_quantize(x, n, 1.0f, 10, want);
    CHECK(want[0] == 10 && want[1] == 12 && want[2] == 10 && want[6] == 12);
    CHECK(want[3] == 0 && want[4] == 255 && want[5] == 0);
    for (size_t p = 1; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        memset(got, 0, sizeof got);
        kern_q8_quantize(x, n, 1.0f, 10, got);
        CHECK_MSG(!memcmp(got, want, n), "path %s quantises differently", kern_q8_path());
        kern_q8_quantize(x, n, 37.3f, 128, got);
        uint8_t w2[n];
        kern_set_isa("portable");
        kern_q8_quantize(x, n, 37.3f, 128, w2);
        CHECK_MSG(!memcmp(got, w2, n), "path %s quantises differently", isas[p]);
    }
    kern_set_isa("auto");
    free(x);
}

TEST(q8_requantize_fixed_point)
{
    int32_t mult, shift;
    kern_q8_multiplier(0.25, &mult, &shift);
    CHECK(mult == 1 << 30 && shift == 32); /* 0.25 = 2^30 / 2^32 */
    int32_t bias = 3;
    /* (acc + 3) / 4 rounded half up, plus the zero point 100 */
    CHECK(kern_q8_requant_one(5, bias, mult, shift, 100, 0) == 102);   /* 8/4 = 2 */
    CHECK(kern_q8_requant_one(3, bias, mult, shift, 100, 0) == 102);   /* 6/4 = 1.5 -> 2 */
    CHECK(kern_q8_requant_one(-9, bias, mult, shift, 100, 0) == 99);   /* -6/4 = -1.5 -> -1 */
    CHECK(kern_q8_requant_one(-1000, bias, mult, shift, 100, 0) == 0); /* clamped */
    CHECK(kern_q8_requant_one(-9, bias, mult, shift, 100, 100) == 100); /* fused ReLU */
    CHECK(kern_q8_requant_one(INT32_MAX, INT32_MAX, mult, shift, 0, 0) == 255);
    /* a real multiplier and the float reference agree within half a step */
    double real = 0.0123456;
    kern_q8_multiplier(real, &mult, &shift);
    CHECK(mult >= 1 << 30 && shift > 31 && shift <= 62);
    for (int acc = -20000; acc <= 20000; acc += 37) {
        int q = kern_q8_requant_one(acc, 0, mult, shift, 128, 0);
        double want = 128 + acc * real;
        want = want < 0 ? 0 : want > 255 ? 255 : want;
        CHECK_MSG(fabs(q - want) <= 0.5 + 1e-6, "acc %d: %d vs %.3f", acc, q, want);
    }
    kern_q8_multiplier(0.0, &mult, &shift);
    CHECK(mult == 0 && kern_q8_requant_one(12345, 0, mult, shift, 7, 0) == 7);
}

TEST(q8_im2row_pads_with_the_zero_point)
{
    /* 1 channel 3x3 image, 2x2 kernel, pad 1: 4x4 outputs */
    uint8_t im[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, row[16 * 4];
    kern_conv_shape s = {1, {1, 3, 3}, {1, 2, 2}, {1, 4, 4}, {1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 0};
    kern_q8_im2row(&s, im, 200, row, 4);
    static const uint8_t first[4] = {200, 200, 200, 1}, center[4] = {1, 2, 4, 5};
    CHECK(!memcmp(row, first, 4));
    CHECK(!memcmp(row + 5 * 4, center, 4)); /* output (1,1) reads (0..1, 0..1) */
    CHECK(row[15 * 4 + 3] == 200);
}

/* The link tables' lookup on every path (AVX-512 VBMI: 64 bytes a step, a masked tail)
 * against the table read byte by byte, every length up to 200 and every byte value. */
TEST(q8_lut_paths_match_byte_by_byte)
{
    uint8_t lut[256], src[200], o[200 + 64];
    for (int i = 0; i < 256; i++)
        lut[i] = (uint8_t)(i * 73 + 5 + (i >> 3));
    for (int i = 0; i < 200; i++)
        src[i] = (uint8_t)(i * 151 + 29);
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (size_t p = 0; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        for (size_t n = 0; n <= 200; n++) {
            memcpy(o, src, sizeof src);
            memset(o + 200, 0xEE, 64);
            kern_q8_lut(lut, o, n);
            for (size_t i = 0; i < 200; i++)
                CHECK_MSG(o[i] == (i < n ? lut[src[i]] : src[i]), "path %s, n %zu, byte %zu",
                          isas[p], n, i);
            CHECK(o[200] == 0xEE);
        }
    }
    kern_set_isa("auto");
}

/* The 2-D patches (rows of taps copied at once) against a tap-by-tap reference: strides,
 * padding on every side, dilation, outputs past the image (padding after), 1x1 kernels. */
TEST(q8_im2row_2d_matches_tap_by_tap)
{
    static const kern_conv_shape shapes[] = {
        {3, {1, 9, 11}, {1, 3, 3}, {1, 5, 6}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 0},
        {2, {1, 7, 7}, {1, 3, 3}, {1, 7, 7}, {1, 1, 1}, {0, 2, 2}, {1, 2, 2}, 0},
        {4, {1, 6, 6}, {1, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}, {1, 1, 1}, 0},
        {1, {1, 5, 8}, {1, 2, 5}, {1, 5, 5}, {1, 1, 1}, {0, 0, 2}, {1, 1, 1}, 0},
    };
    uint8_t im[4 * 9 * 11], row[64 * 4 * 25], want[64 * 4 * 25];
    for (size_t i = 0; i < sizeof im; i++)
        im[i] = (uint8_t)(i * 37 + 11);
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const kern_conv_shape *s = &shapes[t];
        int K = s->channels * s->kernel[1] * s->kernel[2], ld = K + 3;
        size_t plane = (size_t)s->image[1] * s->image[2];
        memset(row, 1, sizeof row);
        memset(want, 1, sizeof want);
        for (int oh = 0; oh < s->out[1]; oh++)
            for (int ow = 0; ow < s->out[2]; ow++) {
                uint8_t *w = want + ((size_t)oh * s->out[2] + ow) * ld;
                for (int c = 0; c < s->channels; c++)
                    for (int kh = 0; kh < s->kernel[1]; kh++)
                        for (int kw = 0; kw < s->kernel[2]; kw++) {
                            int ih = oh * s->stride[1] + kh * s->dilation[1] - s->pad[1];
                            int iw = ow * s->stride[2] + kw * s->dilation[2] - s->pad[2];
                            *w++ = ih >= 0 && ih < s->image[1] && iw >= 0 && iw < s->image[2]
                                       ? im[c * plane + (size_t)ih * s->image[2] + iw]
                                       : 99;
                        }
            }
        kern_q8_im2row(s, im, 99, row, ld);
        CHECK_MSG(!memcmp(row, want, sizeof row), "shape %zu", t);
    }
}

/* The direct convolution route (VNNI: padded image, pixels in the lanes, vector
 * requantisation) against im2row + the portable product + the scalar requantisation. */
static int conv_case_s(int C, int H, int W, int N, int KH, int KW, int pad, int dil, int relu,
                       int sh, int sw)
{
    int OH = (H + 2 * pad - (KH - 1) * dil - 1) / sh + 1,
        OW = (W + 2 * pad - (KW - 1) * dil - 1) / sw + 1;
    kern_conv_shape s = {C, {1, H, W}, {1, KH, KW}, {1, OH, OW}, {1, sh, sw}, {0, pad, pad},
                         {1, dil, dil}, 0};
    int K = C * KH * KW, Kp = kern_q8_kp(K);
    kern_q8_conv_plan plan;
    if (!kern_q8_conv_direct_plan(&s, N, &plan))
        return 1;
    nerve_rng r;
    nerve_rng_seed(&r, (uint64_t)(C * 131 + H * 7 + N));
    float *x = malloc((size_t)C * H * W * sizeof(float));
    for (int i = 0; i < C * H * W; i++)
        x[i] = nerve_rng_uniform(&r) * 4 - 1;
    int8_t *w = malloc((size_t)N * K);
    for (int i = 0; i < N * K; i++)
        w[i] = (int8_t)((int)(nerve_rng_uniform(&r) * 255) - 127);
    int32_t *bias = malloc((size_t)N * 4), *mult = malloc((size_t)N * 4), *shift = malloc((size_t)N * 4);
    for (int n = 0; n < N; n++) {
        bias[n] = (int32_t)(nerve_rng_uniform(&r) * 20000) - 10000;
        kern_q8_multiplier(0.0005 + 0.001 * nerve_rng_uniform(&r), &mult[n], &shift[n]);
    }
    kern_q8_requant rq = {bias, mult, shift, 100, relu ? 100 : 0, 0.03f};
    void *P = aligned(kern_q8_pack_size(N, K));
    kern_q8_pack(N, K, w, K, P);
    size_t plane = (size_t)OH * OW;
    float *want = malloc((size_t)N * plane * sizeof(float)), *got = malloc((size_t)N * plane * sizeof(float));
    /* reference */
    uint8_t *img = malloc((size_t)C * H * W), *rows = aligned(plane * Kp);
    int32_t *sums = malloc(plane * N * sizeof(int32_t));
    memset(rows, 0, plane * Kp);
    kern_set_isa("portable");
    kern_q8_quantize(x, (size_t)C * H * W, 7.0f, 37, img);
    kern_q8_im2row(&s, img, 37, rows, Kp);
    kern_q8_gemm((int)plane, N, K, rows, Kp, P, sums, N, NULL);
    kern_q8_requantize(&rq, (int)plane, N, sums, N, NULL, want, 1, (ptrdiff_t)plane);
    int bad = 0;
    static const char *const direct_isas[] = {"avx512", "avx2"};
    for (size_t p = 0; p < 2 && !bad; p++) {
        if (!kern_set_isa(direct_isas[p]) || !kern_q8_conv_direct_runs())
            continue;
        int32_t *off = malloc((size_t)Kp * sizeof(int32_t));
        void *ws = aligned(plan.img_bytes + plan.panel_bytes + plan.sums_bytes);
        kern_q8_conv_offsets(&plan, off);
        memset(got, 0, (size_t)N * plane * sizeof(float));
        kern_q8_conv_direct(&plan, off, x, 7.0f, 37, P, &rq, got, ws);
        for (size_t i = 0; i < (size_t)N * plane && !bad; i++)
            if (memcmp(&got[i], &want[i], sizeof(float))) {
                test_fail(__FILE__, __LINE__, "path %s, conv C%d %dx%d N%d k%dx%d pad %d dil %d "
                          "stride %dx%d: out[%zu] = %g, want %g", kern_q8_path(), C, H, W, N, KH,
                          KW, pad, dil, sh, sw, i, got[i], want[i]);
                bad = 1;
            }
        free(off);
        free(ws);
    }
    kern_set_isa("auto");
    free(x); free(w); free(bias); free(mult); free(shift); free(P); free(want); free(got);
    free(img); free(rows); free(sums);
    return bad;
}

static int conv_case(int C, int H, int W, int N, int KH, int KW, int pad, int dil, int relu)
{
    return conv_case_s(C, H, W, N, KH, KW, pad, dil, relu, 1, 1);
}

TEST(q8_direct_conv_matches_im2row_route)
{
    CHECK(!conv_case(1, 28, 28, 6, 5, 5, 2, 1, 1));   /* LeNet's first layer */
    CHECK(!conv_case(6, 14, 14, 16, 5, 5, 0, 1, 1));  /* its second */
    CHECK(!conv_case(3, 9, 13, 7, 3, 3, 1, 2, 0));    /* dilation, no ReLU */
    CHECK(!conv_case(5, 6, 5, 13, 1, 1, 0, 1, 0));    /* 1x1 */
    CHECK(!conv_case(2, 8, 8, 1, 3, 2, 1, 1, 1));     /* one output channel */
    /* strided: the phase images */
    CHECK(!conv_case_s(16, 28, 28, 32, 3, 3, 1, 1, 1, 2, 2)); /* resnet_small's 3x3/2 */
    CHECK(!conv_case_s(16, 28, 28, 32, 1, 1, 0, 1, 0, 2, 2)); /* its 1x1/2 projection */
    CHECK(!conv_case_s(3, 11, 9, 7, 3, 3, 1, 1, 0, 2, 2));    /* odd sizes */
    CHECK(!conv_case_s(2, 13, 10, 5, 5, 3, 2, 2, 1, 3, 2));   /* dilation, unequal strides */
    CHECK(!conv_case_s(4, 9, 9, 6, 2, 2, 0, 1, 0, 2, 2));     /* 2x2/2: one phase per tap */
    CHECK(!conv_case_s(1, 1, 1, 3, 1, 1, 0, 1, 1, 2, 2));     /* one pixel */
}

TEST(q8_requantize_vector_matches_scalar)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!kern_set_isa("avx512") || strcmp(kern_q8_path(), "vnni")) {
        kern_set_isa("auto");
        printf("  skipped: no VNNI path here\n");
        return;
    }
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    enum { n = 999 };
    int32_t c[n], vb[n], vm[n], vs[n];
    float got[n];
    for (int t = 0; t < 20; t++) {
        int32_t mult, shift, bias = (int32_t)((nerve_rng_uniform(&r) * 2 - 1) * KERN_Q8_MAX_BIAS);
        double real = t == 0 ? 1.5 : t == 1 ? 1e-12 : pow(2.0, -20 * nerve_rng_uniform(&r));
        kern_q8_multiplier(real, &mult, &shift);
        for (int i = 0; i < n; i++)
            c[i] = (int32_t)((nerve_rng_uniform(&r) * 2 - 1) * 255.0 * 127 * KERN_Q8_MAX_K);
        int zp = (int)(nerve_rng_uniform(&r) * 256), lo = t % 2 ? zp : 0;
        kern_q8_requant_run_avx512(c, n, bias, mult, shift, zp, lo, 0.125f, got, NULL);
        for (int i = 0; i < n; i++) {
            float want = 0.125f * (float)(kern_q8_requant_one(c[i], bias, mult, shift, zp, lo) - zp);
            CHECK_MSG(!memcmp(&want, &got[i], sizeof want), "case %d, %d: %g vs %g", t, i, got[i], want);
        }
        /* per-channel constants along the row (a dense layer's outputs) */
        for (int i = 0; i < n; i++) {
            vb[i] = (int32_t)((nerve_rng_uniform(&r) * 2 - 1) * KERN_Q8_MAX_BIAS);
            kern_q8_multiplier(i % 7 == 0 ? 1.25 : pow(2.0, -24 * nerve_rng_uniform(&r)), &vm[i], &vs[i]);
        }
        kern_q8_requant_row_avx512(c, n, vb, vm, vs, zp, lo, 0.25f, got, NULL);
        for (int i = 0; i < n; i++) {
            float want = 0.25f * (float)(kern_q8_requant_one(c[i], vb[i], vm[i], vs[i], zp, lo) - zp);
            CHECK_MSG(!memcmp(&want, &got[i], sizeof want), "row case %d, %d: %g vs %g", t, i, got[i], want);
        }
        kern_q8_requant_row_avx2(c, n, vb, vm, vs, zp, lo, 0.25f, got, NULL);
        for (int i = 0; i < n; i++) {
            float want = 0.25f * (float)(kern_q8_requant_one(c[i], vb[i], vm[i], vs[i], zp, lo) - zp);
            CHECK_MSG(!memcmp(&want, &got[i], sizeof want), "AVX2 row case %d, %d: %g vs %g", t, i, got[i], want);
        }
        kern_q8_requant_run_avx2(c, n, vb[0], vm[0], vs[0], zp, lo, 0.5f, got, NULL);
        for (int i = 0; i < n; i++) {
            float want = 0.5f * (float)(kern_q8_requant_one(c[i], vb[0], vm[0], vs[0], zp, lo) - zp);
            CHECK_MSG(!memcmp(&want, &got[i], sizeof want), "AVX2 run case %d, %d: %g vs %g", t, i, got[i], want);
        }
    }
    kern_set_isa("auto");
#else
    printf("  skipped: not x86\n");
#endif
}

/* The int8 residual add: kern_q8_add_one against a 64-bit reference of its formula, every
 * path's kern_q8_add against kern_q8_add_one (lengths cutting every vector edge, extreme
 * bytes and zero points, a fused ReLU, in place), and the multipliers against their ratios. */
TEST(q8_add_paths_match_reference)
{
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    /* multipliers: one shift, the larger in [2^20, 2^21) unless the shift is 31 */
    static const double ratios[][2] = {{1.0, 1.0},   {0.37, 1.9},    {1e-9, 3e-9}, {2e6, 1.0},
                                       {0.5, 1e-12}, {2097151.0, 1}, {3e6, 1.0},   {1.0, 0.999999}};
    for (size_t i = 0; i < sizeof ratios / sizeof *ratios; i++) {
        int32_t ma = -1, mb = -1;
        int sh = -1, st = kern_q8_add_multipliers(ratios[i][0], ratios[i][1], &ma, &mb, &sh);
        double mx = ratios[i][0] > ratios[i][1] ? ratios[i][0] : ratios[i][1];
        if (mx >= 2097151.5) {
            CHECK_MSG(st == -1, "ratio %g has no multiplier, got %d", mx, st);
            continue;
        }
        CHECK(st == 0 && sh >= 0 && sh <= 31 && ma >= 0 && mb >= 0 && ma < KERN_Q8_ADD_MULT &&
              mb < KERN_Q8_ADD_MULT);
        int32_t big = ma > mb ? ma : mb;
        CHECK_MSG(sh == 31 || big >= KERN_Q8_ADD_MULT / 2, "ratios %g %g: %d %d >> %d",
                  ratios[i][0], ratios[i][1], ma, mb, sh);
        for (int k = 0; k < 2; k++) {
            double want = ratios[i][k], got = ldexp(k ? mb : ma, -sh);
            CHECK_MSG(fabs(got - want) <= ldexp(0.5, -sh), "ratio %g as %g", want, got);
        }
    }
    static const size_t lens[] = {1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 1000};
    enum { MAXN = 1000 };
    uint8_t a[MAXN], b[MAXN], want[MAXN], got[MAXN];
    for (int trial = 0; trial < 40; trial++) {
        kern_q8_addp p;
        int extreme = trial % 4 == 3;
        p.za = extreme ? (trial % 8 == 3 ? 0 : 255) : (int)(nerve_rng_uniform(&r) * 256);
        p.zb = extreme ? 255 - p.za : (int)(nerve_rng_uniform(&r) * 256);
        p.zy = (int)(nerve_rng_uniform(&r) * 256);
        p.lo = trial % 2 ? p.zy : 0;
        double ra = extreme ? 1.0 : 0.05 + 3 * nerve_rng_uniform(&r),
               rb = extreme ? 1.0 : 0.05 + 3 * nerve_rng_uniform(&r);
        if (trial == 5) { /* the largest multipliers the shift allows: sums near 2^30 */
            ra = rb = 0.999999;
        }
        CHECK(kern_q8_add_multipliers(ra, rb, &p.ma, &p.mb, &p.shift) == 0);
        if (trial == 7)
            p.shift = 0, p.ma = 1, p.mb = 3; /* no rounding term */
        for (int i = 0; i < MAXN; i++) {
            a[i] = extreme ? (uint8_t)(i % 2 ? 255 : 0) : (uint8_t)(nerve_rng_uniform(&r) * 256);
            b[i] = extreme ? (uint8_t)(i % 3 ? 0 : 255) : (uint8_t)(nerve_rng_uniform(&r) * 256);
            int64_t t = (int64_t)(a[i] - p.za) * p.ma + (int64_t)(b[i] - p.zb) * p.mb;
            if (p.shift > 0) /* floor((t + 2^(s-1)) / 2^s) in 64 bits */
                t = (t + ((int64_t)1 << (p.shift - 1))) >> p.shift;
            int64_t q = p.zy + t;
            want[i] = (uint8_t)(q < p.lo ? p.lo : q > 255 ? 255 : q);
            CHECK_MSG(kern_q8_add_one(a[i], b[i], &p) == want[i], "trial %d, %d + %d", trial,
                      a[i], b[i]);
        }
        for (size_t pi = 0; pi < sizeof isas / sizeof *isas; pi++) {
            if (!kern_set_isa(isas[pi]))
                continue;
            for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
                size_t n = lens[li];
                memset(got, 0xA5, sizeof got);
                kern_q8_add(&p, a, b, n, got);
                CHECK_MSG(!memcmp(got, want, n) && (n == MAXN || got[n] == 0xA5),
                          "path %s, trial %d, n %zu", kern_q8_path(), trial, n);
            }
            uint8_t in[MAXN]; /* in place */
            memcpy(in, a, MAXN);
            kern_q8_add(&p, in, b, MAXN, in);
            CHECK_MSG(!memcmp(in, want, MAXN), "path %s in place", kern_q8_path());
        }
        kern_set_isa("auto");
    }
}
