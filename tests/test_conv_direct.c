/* Direct convolution for few input channels (kern_conv_direct): against plain loops in
 * double precision, over LeNet's shapes and the edges of the vector route (rows longer
 * than a vector, channel blocks past 16, kernels wider than the padding, no bias), and
 * bit-identical across thread counts. */
#include "../src/kernels/kernels.h"
#include "test.h"

#include <string.h>

/* out[n,k,y,x] = bias[k] + sum w[k,c,i,j] * in[n,c,y+i-ph,x+j-pw], zero outside. */
static void ref_conv(int N, int C, int H, int W, int K, int KH, int KW, int ph, int pw, int OH,
                     int OW, const float *in, const float *w, const float *bias, float *out)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    double s = bias ? bias[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < KH; i++)
                            for (int j = 0; j < KW; j++) {
                                int iy = y + i - ph, ix = x + j - pw;
                                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    s += (double)w[((k * C + c) * KH + i) * KW + j] *
                                         in[((n * C + c) * H + iy) * W + ix];
                            }
                    out[((n * K + k) * OH + y) * OW + x] = (float)s;
                }
}

enum { MAX_IN = 3 * 8 * 28 * 28, MAX_OUT = 3 * 20 * 30 * 30, MAX_W = 20 * 8 * 7 * 7 };
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
        {1, 9, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1},  /* 9 channels: past the vector route's limit */
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
    CHECK(!kern_conv_direct_fits(9, 5, 5));
    CHECK(!kern_conv_direct_fits(3, 8, 3));
    CHECK(!kern_conv_direct_fits(0, 3, 3));
}
