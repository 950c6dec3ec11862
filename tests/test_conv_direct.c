/* Direct convolution for few input channels (kern_conv_direct): against plain loops in
 * double precision, over LeNet's shapes and the edges of the vector route (rows longer
 * than a vector, channel blocks past 16, kernels wider than the padding, no bias), and
 * bit-identical across thread counts. */
#include "../src/kernels/kernels.h"
#include "conv_ref.h"
#include "test.h"

#include <string.h>


enum { MAX_IN = 3 * 20 * 28 * 28, MAX_OUT = 3 * 20 * 30 * 30, MAX_W = 20 * 8 * 7 * 7 };
static float in_v[MAX_IN], w_v[MAX_W], b_v[20], got[MAX_OUT], want[MAX_OUT], again[MAX_OUT];

static void fill(float *v, size_t n, nerve_rng *r)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * nerve_rng_uniform(r) - 1.0f;
}

TEST(direct_convolution_matches_plain_loops)
{
    /* N, C, H, W, K, KH, KW, ph, pw, bias, ph_end, pw_end */
    static const int cases[][12] = {
        {3, 1, 28, 28, 6, 5, 5, 2, 2, 1, 2, 2},  /* LeNet C1: rows of 28 = 16 + 12 */
        {3, 6, 14, 14, 16, 5, 5, 0, 0, 1, 0, 0}, /* LeNet C3 */
        {2, 3, 9, 40, 20, 3, 3, 1, 1, 1, 1, 1},  /* rows of 40, channel blocks of 16 + 4 */
        {2, 8, 7, 5, 5, 7, 7, 3, 3, 0, 3, 3},  /* a kernel wider than the row, no bias */
        {1, 2, 6, 17, 3, 2, 4, 0, 3, 1, 1, 0}, /* uneven kernel and padding */
        {2, 4, 5, 5, 2, 1, 1, 0, 0, 1, 0, 0},  /* 1x1 */
        {1, 17, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1}, /* 17 channels: past the vector route's limit */
    };
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        int N = c[0], C = c[1], H = c[2], W = c[3], K = c[4], KH = c[5], KW = c[6];
        int ph = c[7], pw = c[8];
        size_t nin = (size_t)N * C * H * W, nw = (size_t)K * C * KH * KW;
        int OH = H + ph + c[10] - KH + 1, OW = W + pw + c[11] - KW + 1;
        size_t nout = (size_t)N * K * OH * OW;
        CHECK(nin <= MAX_IN && nw <= MAX_W && nout <= MAX_OUT);
        fill(in_v, nin, &r);
        fill(w_v, nw, &r);
        fill(b_v, (size_t)K, &r);
        const float *bias = c[9] ? b_v : NULL;
        ref_conv(N, C, H, W, K, KH, KW, ph, pw, OH, OW, in_v, w_v, bias, want);
        memset(got, 0x7f, sizeof got); /* stale values must be overwritten */
        kern_conv_direct(N, C, H, W, K, KH, KW, ph, pw, OH, OW, in_v, w_v, bias, got);
        double worst = 0;
        for (size_t i = 0; i < nout; i++) {
            double e = fabs((double)got[i] - want[i]);
            worst = e > worst ? e : worst;
        }
        /* float sums of at most 8 * 49 products of magnitude < 1 */
        CHECK_MSG(worst < 2e-5, "case %zu: max error %g", t, worst);
    }
}

TEST(direct_convolution_writes_only_its_output_and_ignores_the_thread_count)
{
    enum { N = 8, C = 2, H = 12, W = 19, K = 5, KH = 3, KW = 5 };
    enum { OH = H + 2 - KH + 1, OW = W + 4 - KW + 1, NOUT = N * K * OH * OW };
    nerve_rng r;
    nerve_rng_seed(&r, 8);
    fill(in_v, (size_t)N * C * H * W, &r);
    fill(w_v, (size_t)K * C * KH * KW, &r);
    fill(b_v, K, &r);
    for (int threads = 1; threads <= 2; threads++) {
        float *out = threads == 1 ? got : again;
        for (int i = 0; i < NOUT + 16; i++)
            out[i] = -7.0f;
        nerve_set_threads(threads);
        kern_conv_direct(N, C, H, W, K, KH, KW, 1, 2, OH, OW, in_v, w_v, b_v, out);
        for (int i = NOUT; i < NOUT + 16; i++)
            CHECK_MSG(out[i] == -7.0f, "wrote past the output at %d", i);
    }
    nerve_set_threads(0);
    CHECK(memcmp(got, again, NOUT * sizeof(float)) == 0);
    ref_conv(N, C, H, W, K, KH, KW, 1, 2, OH, OW, in_v, w_v, b_v, want);
    CHECK_ARRAY_NEAR(got, want, NOUT, 1e-5);
}

TEST(direct_convolution_route_is_offered_for_few_channels_and_small_kernels)
{
    int vector = kern_conv_direct_vector();
    CHECK(kern_conv_direct_fits(1, 5, 5) == vector);
    CHECK(kern_conv_direct_fits(8, 7, 7) == vector);
    CHECK(!kern_conv_direct_fits(9, 5, 5)); /* the forward route stops at 8 channels */
    CHECK(!kern_conv_direct_fits(3, 8, 3));
    CHECK(!kern_conv_direct_fits(0, 3, 3));
}

/* din[n,c,y,x] = sum_k sum_ij w[k,c,i,j] * dout[n,k,y-i+ph,x-j+pw] over the outputs that
 * exist: the adjoint of ref_conv, in double precision, added to din when accumulate. */
static void ref_adjoint(int N, int C, int H, int W, int K, int KH, int KW, int ph, int pw,
                        int OH, int OW, const float *dout, const float *w, float *din,
                        int accumulate)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float *d = din + ((n * C + c) * H + y) * W + x;
                    double s = accumulate ? *d : 0.0;
                    for (int k = 0; k < K; k++)
                        for (int i = 0; i < KH; i++)
                            for (int j = 0; j < KW; j++) {
                                int oy = y - i + ph, ox = x - j + pw;
                                if (oy >= 0 && oy < OH && ox >= 0 && ox < OW)
                                    s += (double)w[((k * C + c) * KH + i) * KW + j] *
                                         dout[((n * K + k) * OH + oy) * OW + ox];
                            }
                    *d = (float)s;
                }
}

TEST(direct_input_gradient_matches_plain_loops)
{
    /* N, C, H, W, K, KH, KW, ph, pw, ph_end, pw_end */
    static const int cases[][11] = {
        {3, 6, 14, 14, 16, 5, 5, 0, 0, 0, 0}, /* LeNet C3 */
        {2, 1, 28, 28, 6, 5, 5, 2, 2, 2, 2},  /* LeNet C1: rows of 28 = 16 + 12 */
        {2, 20, 9, 40, 16, 3, 3, 1, 1, 1, 1}, /* 16 gradient channels, 20 = 16 + 4 outputs */
        {2, 3, 5, 5, 4, 7, 7, 3, 3, 3, 3},    /* a kernel wider than the image */
        {1, 2, 6, 17, 3, 2, 4, 0, 3, 1, 0},   /* uneven kernel and padding */
        {3, 5, 7, 9, 7, 1, 5, 0, 2, 0, 1},    /* 1x5, odd batch for two threads */
    };
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    float wt[MAX_W];
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        int N = c[0], C = c[1], H = c[2], W = c[3], K = c[4], KH = c[5], KW = c[6];
        int ph = c[7], pw = c[8], OH = H + ph + c[9] - KH + 1, OW = W + pw + c[10] - KW + 1;
        size_t nin = (size_t)N * C * H * W, nw = (size_t)K * C * KH * KW;
        size_t nout = (size_t)N * K * OH * OW;
        CHECK(nin <= MAX_OUT && nw <= MAX_W && nout <= MAX_IN);
        CHECK(kern_conv_direct_adjoint_fits(C, K, KH, KW, ph, pw) == kern_conv_direct_vector());
        fill(in_v, nout, &r); /* dout */
        fill(w_v, nw, &r);
        kern_conv_flip_transpose(K, C, KH, KW, w_v, wt);
        for (int accumulate = 0; accumulate <= 1; accumulate++) {
            fill(want, nin, &r);
            memcpy(got, want, nin * sizeof(float));
            if (!accumulate)
                memset(got, 0x7f, nin * sizeof(float)); /* stale values are overwritten */
            ref_adjoint(N, C, H, W, K, KH, KW, ph, pw, OH, OW, in_v, w_v, want, accumulate);
            nerve_set_threads(1 + (int)(t % 2));
            kern_conv_direct_adjoint(N, C, H, W, K, KH, KW, ph, pw, OH, OW, in_v, wt, got,
                                     accumulate);
            nerve_set_threads(0);
            double worst = 0;
            for (size_t i = 0; i < nin; i++) {
                double e = fabs((double)got[i] - want[i]);
                worst = e > worst ? e : worst;
            }
            CHECK_MSG(worst < 3e-5, "case %zu accumulate %d: max error %g", t, accumulate, worst);
        }
    }
    CHECK(!kern_conv_direct_adjoint_fits(6, 17, 5, 5, 0, 0)); /* too many gradient channels */
    CHECK(!kern_conv_direct_adjoint_fits(6, 16, 5, 5, 5, 0)); /* padding of a whole kernel */
}

TEST(direct_input_gradient_ignores_the_thread_count)
{
    enum { N = 5, C = 6, H = 14, W = 14, K = 16, KH = 5, KW = 5, OH = 10, OW = 10 };
    nerve_rng r;
    nerve_rng_seed(&r, 12);
    float wt[K * C * KH * KW];
    fill(in_v, (size_t)N * K * OH * OW, &r);
    fill(w_v, (size_t)K * C * KH * KW, &r);
    kern_conv_flip_transpose(K, C, KH, KW, w_v, wt);
    for (int threads = 1; threads <= 2; threads++) {
        nerve_set_threads(threads);
        kern_conv_direct_adjoint(N, C, H, W, K, KH, KW, 0, 0, OH, OW, in_v, wt,
                                 threads == 1 ? got : again, 0);
    }
    nerve_set_threads(0);
    CHECK(memcmp(got, again, (size_t)N * C * H * W * sizeof(float)) == 0);
}
