/* Direct convolution with output channels in the lanes (kern_conv_direct_kvec): against plain
 * loops in double precision over LeNet's conv2 and the edges of the register blocking (rows
 * wider than a 12-column block, odd row counts, channel blocks past 16 with zero lanes,
 * padding on either side, 1x5 to 7x7 kernels, no bias), bit-identical at 1 and 2 threads,
 * and the route offered only where it is built for. */
#include "../src/kernels/kernels.h"
#include "conv_ref.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>


static void fill(float *v, size_t n, nerve_rng *r)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * nerve_rng_uniform(r) - 1.0f;
}

/* A shape and its buffers; outputs carry 16 guard floats past the end. */
typedef struct conv_case {
    int N, C, H, W, K, KH, KW, ph, pw, ph_end, pw_end, bias;
    int OH, OW;
    size_t nin, nw, nout, nscratch;
    float *in, *w, *b, *want, *got, *again, *scratch;
} conv_case;

enum { GUARD = 16 };

/* c: N, C, H, W, K, KH, KW, ph, pw, ph_end, pw_end, bias. */
static void case_setup(conv_case *t, const int c[12], nerve_rng *r)
{
    *t = (conv_case){.N = c[0], .C = c[1], .H = c[2], .W = c[3], .K = c[4], .KH = c[5],
                     .KW = c[6], .ph = c[7], .pw = c[8], .ph_end = c[9], .pw_end = c[10],
                     .bias = c[11]};
    t->OH = t->H + t->ph + t->ph_end - t->KH + 1;
    t->OW = t->W + t->pw + t->pw_end - t->KW + 1;
    t->nin = (size_t)t->N * t->C * t->H * t->W;
    t->nw = (size_t)t->K * t->C * t->KH * t->KW;
    t->nout = (size_t)t->N * t->K * t->OH * t->OW;
    t->nscratch = kern_conv_direct_kvec_scratch(t->C, t->K, t->KH, t->KW, t->OH, t->OW, 2);
    t->in = malloc(sizeof(float) * t->nin);
    t->w = malloc(sizeof(float) * t->nw);
    t->b = malloc(sizeof(float) * (size_t)t->K);
    t->want = malloc(sizeof(float) * t->nout);
    t->got = malloc(sizeof(float) * (t->nout + GUARD));
    t->again = malloc(sizeof(float) * (t->nout + GUARD));
    t->scratch = malloc(sizeof(float) * t->nscratch);
    fill(t->in, t->nin, r);
    fill(t->w, t->nw, r);
    fill(t->b, (size_t)t->K, r);
    ref_conv(t->N, t->C, t->H, t->W, t->K, t->KH, t->KW, t->ph, t->pw, t->OH, t->OW, t->in,
             t->w, t->bias ? t->b : NULL, t->want);
}

static void case_free(conv_case *t)
{
    free(t->in);
    free(t->w);
    free(t->b);
    free(t->want);
    free(t->got);
    free(t->again);
    free(t->scratch);
}

/* out (garbage-filled, guard after) = the convolution on `threads` threads. */
static void case_run(const conv_case *t, int threads, float *out)
{
    for (size_t i = 0; i < t->nout + GUARD; i++)
        out[i] = i < t->nout ? NAN : -7.0f;
    memset(t->scratch, 0x7f, sizeof(float) * t->nscratch);
    nerve_set_threads(threads);
    kern_conv_direct_kvec(t->N, t->C, t->H, t->W, t->K, t->KH, t->KW, t->ph, t->pw, t->OH,
                          t->OW, t->in, t->w, t->bias ? t->b : NULL, out, t->scratch);
    nerve_set_threads(0);
}

static double max_error(const float *got, const float *want, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        worst = e > worst || e != e ? e : worst; /* NaN: never written */
    }
    return worst;
}

TEST(kvec_convolution_matches_plain_loops_and_ignores_the_thread_count)
{
    /* N, C, H, W, K, KH, KW, ph, pw, ph_end, pw_end, bias */
    static const int cases[][12] = {
        {3, 6, 14, 14, 16, 5, 5, 0, 0, 0, 0, 1},  /* LeNet conv2 */
        {3, 1, 28, 28, 6, 5, 5, 2, 2, 2, 2, 1},   /* LeNet conv1: K = 6, rows of 28 = 10+9+9 */
        {1, 6, 14, 14, 16, 5, 5, 0, 0, 0, 0, 0},  /* one image on two threads, no bias */
        {3, 3, 9, 40, 20, 3, 3, 1, 1, 1, 1, 1},   /* rows of 40, channel blocks 16 + 4 */
        {2, 4, 11, 13, 12, 7, 7, 3, 2, 1, 3, 1},  /* 7x7, asymmetric padding, odd rows */
        {3, 5, 8, 9, 32, 1, 5, 0, 2, 0, 1, 0},    /* 1x5, two full channel blocks */
        {2, 2, 5, 5, 16, 7, 7, 3, 3, 3, 3, 1},    /* kernel wider than the image */
        {3, 16, 6, 7, 16, 3, 3, 0, 1, 2, 0, 1},   /* 16 input channels, padding one side */
        {2, 3, 12, 30, 12, 3, 3, 0, 0, 0, 0, 1},  /* no padding, rows of 28 read in place */
        {1, 2, 3, 3, 16, 3, 3, 0, 0, 0, 0, 1},    /* a 1x1 output */
    };
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conv_case t;
        case_setup(&t, cases[i], &r);
        case_run(&t, 1, t.got);
        case_run(&t, 2, t.again);
        double worst = max_error(t.got, t.want, t.nout);
        int same = memcmp(t.got, t.again, sizeof(float) * t.nout) == 0, guard = 1;
        for (size_t g = t.nout; g < t.nout + GUARD; g++)
            guard = guard && t.got[g] == -7.0f && t.again[g] == -7.0f;
        case_free(&t);
        /* float sums of at most 16 * 49 products of magnitude < 1 */
        CHECK_MSG(worst < 3e-5, "case %zu: max error %g", i, worst);
        CHECK_MSG(same, "case %zu: 1 and 2 threads differ", i);
        CHECK_MSG(guard, "case %zu: wrote past the output", i);
    }
}

TEST(kvec_convolution_portable_path_matches_too)
{
    /* With the kernel path forced off AVX-512 the call falls back to kern_conv_direct. */
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    static const int shape[12] = {2, 6, 14, 14, 16, 5, 5, 1, 0, 2, 1, 1};
    conv_case t;
    case_setup(&t, shape, &r);
    int forced = kern_set_isa("portable");
    case_run(&t, 2, t.got);
    double worst = max_error(t.got, t.want, t.nout);
    int offered = kern_conv_direct_kvec_fits(6, 16, 5, 5);
    kern_set_isa("auto");
    case_free(&t);
    CHECK(forced);
    CHECK(!offered);
    CHECK_MSG(worst < 3e-5, "max error %g", worst);
}

TEST(kvec_convolution_route_is_offered_for_many_output_channels_on_avx512)
{
    int vector = strcmp(kern_isa_name(), "avx512") == 0;
    if (!vector) { /* the route needs AVX-512: never offered without it */
        CHECK(!kern_conv_direct_kvec_fits(6, 16, 5, 5));
        return;
    }
    CHECK(kern_conv_direct_kvec_fits(6, 16, 5, 5));
    CHECK(kern_conv_direct_kvec_fits(16, 64, 7, 7));
    CHECK(kern_conv_direct_kvec_fits(1, 16, 1, 5));
    CHECK(kern_conv_direct_kvec_fits(6, 8, 5, 5));    /* 150 taps carry 8 channels */
    CHECK(!kern_conv_direct_kvec_fits(1, 12, 5, 5)); /* 25 taps do not carry 12 */
    CHECK(!kern_conv_direct_kvec_fits(6, 6, 5, 5));  /* few output channels: column lanes win */
    CHECK(!kern_conv_direct_kvec_fits(17, 16, 3, 3)); /* past 16 input channels */
    CHECK(!kern_conv_direct_kvec_fits(6, 16, 8, 3));
    CHECK(!kern_conv_direct_kvec_fits(0, 16, 3, 3));
    CHECK(kern_conv_direct_kvec_scratch(6, 16, 5, 5, 10, 10, 2) > 0);
    CHECK(kern_conv_direct_kvec_scratch(6, 16, 5, 5, 0, 10, 2) == 0);
}
