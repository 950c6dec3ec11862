/* Normalisation family: dropout, batch normalisation, z-score. Statistics of the masks,
 * batch statistics and running averages against values recomputed here in double, the
 * course's z-score vector, and finite-difference gradient checks. */
#include "test.h"

#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static void fill_const(nerve_graph *g, int id, float v)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = v;
}

/* ---- dropout ----------------------------------------------------------------------------- */

TEST(dropout_keeps_one_minus_p_and_preserves_the_mean)
{
    const int N = 200, F = 500;
    const float p = 0.3f;
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, F});
    int y = nerve_dropout(g, x, p, 0);
    CHECK_OK(nerve_graph_compile(g, N));
    fill_const(g, x, 1.0f);
    CHECK_OK(nerve_forward(g, y));
    const float *yv = nerve_value(g, y).data;
    size_t kept = 0, total = (size_t)N * F;
    double sum = 0;
    for (size_t i = 0; i < total; i++) {
        if (yv[i] != 0.0f) {
            kept++;
            CHECK_NEAR(yv[i], 1.0 / (1.0 - p), 1e-6); /* inverted dropout's scale */
        }
        sum += yv[i];
    }
    CHECK_NEAR((double)kept / total, 1.0 - p, 0.01);
    CHECK_NEAR(sum / total, 1.0, 0.02);

    /* The generator moves on: the next step draws another mask. */
    float first[16];
    memcpy(first, yv, sizeof first);
    CHECK_OK(nerve_forward(g, y));
    CHECK(memcmp(first, yv, sizeof first) != 0 || memcmp(first, yv + 16, sizeof first) != 0);
    nerve_graph_free(g);
}

TEST(dropout_is_identity_in_eval_mode_and_for_p_zero)
{
    nerve_rng r;
    nerve_rng_seed(&r, 2);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 50});
    int y = nerve_dropout(g, x, 0.5f, 0), y0 = nerve_dropout(g, x, 0.0f, 0);
    int w, loss = test_scalar_loss(g, y, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    test_fill_uniform(g, x, -1, 1, &r);
    test_fill_uniform(g, w, -1, 1, &r);
    CHECK_OK(nerve_forward(g, -1));
    CHECK(memcmp(nerve_value(g, y0).data, nerve_value(g, x).data, 200 * sizeof(float)) == 0);
    CHECK(memcmp(nerve_value(g, y).data, nerve_value(g, x).data, 200 * sizeof(float)) != 0);
    nerve_graph_set_training(g, 0);
    CHECK_OK(nerve_forward(g, -1));
    CHECK(memcmp(nerve_value(g, y).data, nerve_value(g, x).data, 200 * sizeof(float)) == 0);
    /* and the gradient passes straight through */
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(spatial_dropout_drops_whole_channels)
{
    const int N = 64, C = 32, H = 3, W = 3;
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, C, H, W});
    int y = nerve_dropout(g, x, 0.5f, 1);
    CHECK_OK(nerve_graph_compile(g, N));
    fill_const(g, x, 1.0f);
    CHECK_OK(nerve_forward(g, y));
    const float *yv = nerve_value(g, y).data;
    int kept = 0;
    for (int m = 0; m < N * C; m++) {
        const float *map = yv + (size_t)m * H * W;
        for (int k = 1; k < H * W; k++)
            CHECK_MSG(map[k] == map[0], "map %d is not dropped as a whole", m);
        CHECK(map[0] == 0.0f || map[0] == 2.0f);
        kept += map[0] != 0.0f;
    }
    CHECK_NEAR((double)kept / (N * C), 0.5, 0.05);
    nerve_graph_free(g);
}

TEST(dropout_backward_reuses_the_forward_mask)
{
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 40});
    int y = nerve_dropout(g, x, 0.5f, 0);
    int w, loss = test_scalar_loss(g, y, &w);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    test_fill_uniform(g, x, 0.5f, 1, &r);
    test_fill_uniform(g, w, 0.5f, 1, &r);
    CHECK_OK(nerve_forward(g, loss)); /* warm-up: kernels may set up once */
    CHECK_OK(nerve_backward(g, loss));
    uint64_t allocs = nerve_alloc_count();
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK(nerve_alloc_count() == allocs);
    const float *yv = nerve_value(g, y).data, *dx = nerve_grad(g, x).data;
    int zeros = 0;
    for (int i = 0; i < 120; i++) {
        CHECK((yv[i] == 0.0f) == (dx[i] == 0.0f));
        zeros += yv[i] == 0.0f;
    }
    CHECK(zeros > 20 && zeros < 100);
    nerve_graph_free(g);
}

static int dropout_gradcheck(int ndim, const int *dims, float p, int spatial)
{
    nerve_rng r;
    nerve_rng_seed(&r, 21);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", ndim, dims);
    int y = nerve_dropout(g, x, p, spatial);
    int w, loss = y < 0 ? y : test_scalar_loss(g, y, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, 3);
    if (st == NERVE_OK) {
        nerve_rng_seed(nerve_graph_rng(g), 1234);
        test_fill_uniform(g, x, -1, 1, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
    }
    nerve_graph_free(g);
    return st;
}

TEST(dropout_gradients_in_training_mode)
{
    CHECK_OK(dropout_gradcheck(2, (int[]){1, 6}, 0.4f, 0));
    CHECK_OK(dropout_gradcheck(4, (int[]){1, 3, 2, 2}, 0.5f, 1));
}

TEST(dropout_rejects_a_probability_outside_zero_one)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    CHECK(nerve_dropout(g, x, 1.0f, 0) == NERVE_ERR_ARG);
    CHECK(nerve_dropout(g, x, -0.1f, 0) == NERVE_ERR_ARG);
    CHECK(nerve_dropout(g, x, NAN, 0) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- batch normalisation ----------------------------------------------------------------- */

typedef struct {
    nerve_graph *g;
    int x, gamma, beta, rmean, rvar, y, loss;
} bn_graph;

static const float bn_gamma[3] = {1.5f, 2.0f, 0.5f}, bn_beta[3] = {0.1f, -0.2f, 0.3f};

/* x of shape [batch, 3, rest...]; gamma, beta as above; running mean 0, variance 1.
 * With loss_w non-NULL, a scalar loss is added (b->loss) and x asks for its gradient. */
static int bn_build(bn_graph *b, int ndim, const int *dims, int batch, float momentum, int *loss_w)
{
    b->g = nerve_graph_create();
    b->x = nerve_input(b->g, "x", ndim, dims);
    b->gamma = nerve_param(b->g, "gamma", 1, (int[]){3});
    b->beta = nerve_param(b->g, "beta", 1, (int[]){3});
    b->rmean = nerve_state(b->g, "rmean", 1, (int[]){3});
    b->rvar = nerve_state(b->g, "rvar", 1, (int[]){3});
    b->y = nerve_batchnorm(b->g, b->x, b->gamma, b->beta, b->rmean, b->rvar, momentum, 1e-5f);
    if (b->y < 0)
        return b->y;
    if (loss_w) {
        b->loss = test_scalar_loss(b->g, b->y, loss_w);
        if (b->loss < 0)
            return b->loss;
        nerve_input_set_requires_grad(b->g, b->x, 1);
    }
    int st = nerve_graph_compile(b->g, batch);
    if (st)
        return st;
    memcpy(nerve_value(b->g, b->gamma).data, bn_gamma, sizeof bn_gamma);
    memcpy(nerve_value(b->g, b->beta).data, bn_beta, sizeof bn_beta);
    fill_const(b->g, b->rvar, 1.0f);
    return NERVE_OK;
}

/* Channel c of x [N, 3, inner] gets values around a channel-specific offset and scale. */
static void bn_fill(bn_graph *b, int N, int inner, nerve_rng *r)
{
    float *x = nerve_value(b->g, b->x).data;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < inner; k++)
                x[(n * 3 + c) * inner + k] = (float)(c * 2 - 1) + (float)(c + 1) * nerve_rng_normal(r);
}

/* Mean and biased variance of channel c of a [N, 3, inner] array, in double. */
static void moments(const float *a, int N, int inner, int c, double *mean, double *var)
{
    double s = 0, q = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < inner; k++)
            s += a[(n * 3 + c) * inner + k];
    *mean = s / (N * inner);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < inner; k++) {
            double d = a[(n * 3 + c) * inner + k] - *mean;
            q += d * d;
        }
    *var = q / (N * inner);
}

static void bn_check_training_output(int ndim, const int *dims, int N, int inner)
{
    nerve_rng r;
    nerve_rng_seed(&r, 4);
    bn_graph b;
    CHECK_OK(bn_build(&b, ndim, dims, N, 0.1f, NULL));
    bn_fill(&b, N, inner, &r);
    CHECK_OK(nerve_forward(b.g, b.y));
    const float *x = nerve_value(b.g, b.x).data, *y = nerve_value(b.g, b.y).data;
    for (int c = 0; c < 3; c++) {
        double xm, xv, ym, yv;
        moments(x, N, inner, c, &xm, &xv);
        moments(y, N, inner, c, &ym, &yv);
        CHECK_NEAR(ym, bn_beta[c], 1e-5);
        CHECK_NEAR(yv, bn_gamma[c] * bn_gamma[c] * xv / (xv + 1e-5), 1e-4);
        CHECK_NEAR(yv, bn_gamma[c] * bn_gamma[c], 1e-3);
        /* running: r = 0.9 r + 0.1 batch, unbiased variance; started at 0 and 1 */
        double m = N * inner;
        CHECK_NEAR(nerve_value(b.g, b.rmean).data[c], 0.1 * xm, 1e-5);
        CHECK_NEAR(nerve_value(b.g, b.rvar).data[c], 0.9 + 0.1 * xv * m / (m - 1), 1e-5);
    }
    nerve_graph_free(b.g);
}

TEST(batchnorm_training_normalises_each_channel_2d)
{
    bn_check_training_output(2, (int[]){1, 3}, 16, 1);
}

TEST(batchnorm_training_normalises_each_channel_4d)
{
    bn_check_training_output(4, (int[]){1, 3, 2, 3}, 4, 6);
}

TEST(batchnorm_eval_uses_the_running_statistics)
{
    nerve_rng r;
    nerve_rng_seed(&r, 8);
    const int N = 5, inner = 4;
    bn_graph b;
    CHECK_OK(bn_build(&b, 3, (int[]){1, 3, inner}, N, 0.25f, NULL));
    bn_fill(&b, N, inner, &r);
    CHECK_OK(nerve_forward(b.g, b.y)); /* one training step moves the running statistics */
    CHECK_OK(nerve_forward(b.g, b.y)); /* a second one: r = 0.75 r + 0.25 batch again */
    const float *x = nerve_value(b.g, b.x).data;
    float rm[3], rv[3];
    memcpy(rm, nerve_value(b.g, b.rmean).data, sizeof rm);
    memcpy(rv, nerve_value(b.g, b.rvar).data, sizeof rv);
    for (int c = 0; c < 3; c++) {
        double xm, xv, m = N * inner;
        moments(x, N, inner, c, &xm, &xv);
        double want_m = 0.25 * xm + 0.75 * (0.25 * xm);
        double want_v = 0.25 * xv * m / (m - 1) + 0.75 * (0.75 + 0.25 * xv * m / (m - 1));
        CHECK_NEAR(rm[c], want_m, 1e-5);
        CHECK_NEAR(rv[c], want_v, 1e-4);
    }
    nerve_graph_set_training(b.g, 0);
    CHECK_OK(nerve_forward(b.g, b.y));
    const float *y = nerve_value(b.g, b.y).data;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < inner; k++) {
                int i = (n * 3 + c) * inner + k;
                double want = bn_gamma[c] * (x[i] - rm[c]) / sqrt(rv[c] + 1e-5) + bn_beta[c];
                CHECK_NEAR(y[i], want, 1e-5);
            }
    CHECK(memcmp(rm, nerve_value(b.g, b.rmean).data, sizeof rm) == 0); /* eval updates nothing */
    CHECK(memcmp(rv, nerve_value(b.g, b.rvar).data, sizeof rv) == 0);
    nerve_graph_free(b.g);
}

static int bn_gradcheck(int ndim, const int *dims, int N, int training)
{
    nerve_rng r;
    nerve_rng_seed(&r, 13);
    bn_graph b;
    int w, st = bn_build(&b, ndim, dims, N, 0.1f, &w);
    if (st == NERVE_OK) {
        test_fill_uniform(b.g, b.x, -2, 2, &r);
        test_fill_uniform(b.g, b.gamma, 0.5f, 1.5f, &r);
        test_fill_uniform(b.g, b.beta, -0.5f, 0.5f, &r);
        test_fill_uniform(b.g, b.rmean, -0.5f, 0.5f, &r);
        test_fill_uniform(b.g, b.rvar, 0.5f, 2, &r);
        test_fill_uniform(b.g, w, -1, 1, &r);
        nerve_graph_set_training(b.g, training);
        st = nerve_gradcheck(b.g, b.loss, 1e-2f, 2e-3f, 1e-2f);
    }
    nerve_graph_free(b.g);
    return st;
}

TEST(batchnorm_gradients_in_training_mode)
{
    CHECK_OK(bn_gradcheck(2, (int[]){1, 3}, 5, 1));
    CHECK_OK(bn_gradcheck(4, (int[]){1, 3, 2, 2}, 2, 1));
}

TEST(batchnorm_gradients_in_eval_mode)
{
    CHECK_OK(bn_gradcheck(2, (int[]){1, 3}, 4, 0));
    CHECK_OK(bn_gradcheck(4, (int[]){1, 3, 2, 2}, 2, 0));
}

TEST(batchnorm_step_allocates_nothing)
{
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    bn_graph b;
    int w;
    CHECK_OK(bn_build(&b, 4, (int[]){1, 3, 4, 4}, 8, 0.1f, &w));
    bn_fill(&b, 8, 16, &r);
    test_fill_uniform(b.g, w, -1, 1, &r);
    CHECK_OK(nerve_forward(b.g, b.loss)); /* warm-up: kernels may set up once */
    CHECK_OK(nerve_backward(b.g, b.loss));
    uint64_t allocs = nerve_alloc_count();
    CHECK_OK(nerve_forward(b.g, b.loss));
    CHECK_OK(nerve_backward(b.g, b.loss));
    CHECK(nerve_alloc_count() == allocs);
    /* a smaller last batch reuses the compiled scratch */
    CHECK_OK(nerve_graph_set_batch(b.g, 3));
    CHECK_OK(nerve_forward(b.g, b.loss));
    CHECK_OK(nerve_backward(b.g, b.loss));
    CHECK(nerve_alloc_count() == allocs);
    nerve_graph_free(b.g);
}

TEST(batchnorm_rejects_statistics_of_the_wrong_size)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int c3 = nerve_param(g, "c3", 1, (int[]){3}), c4 = nerve_param(g, "c4", 1, (int[]){4});
    int s3 = nerve_state(g, "s3", 1, (int[]){3});
    CHECK(nerve_batchnorm(g, x, c4, c3, s3, s3, 0.1f, 1e-5f) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "gamma") != NULL);
    CHECK(nerve_batchnorm(g, x, c3, c3, s3, c4, 0.1f, 1e-5f) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "running_var") != NULL);
    CHECK(nerve_batchnorm(g, x, c3, c3, s3, s3, 1.5f, 1e-5f) == NERVE_ERR_ARG);
    CHECK_OK(nerve_batchnorm(g, x, c3, c3, s3, s3, 0.1f, 1e-5f));
    nerve_graph_free(g);
}

/* ---- z-score ----------------------------------------------------------------------------- */

typedef struct {
    nerve_graph *g;
    int x, mean, std, y;
} zs_graph;

static int zs_build(zs_graph *z, int ndim, const int *xdims, int sdim, const int *sdims)
{
    z->g = nerve_graph_create();
    z->x = nerve_input(z->g, "x", ndim, xdims);
    z->mean = nerve_state(z->g, "mean", sdim, sdims);
    z->std = nerve_state(z->g, "std", sdim, sdims);
    z->y = nerve_zscore(z->g, z->x, z->mean, z->std);
    return z->y;
}

TEST(zscore_course_vector)
{
    zs_graph z;
    CHECK_OK(zs_build(&z, 2, (int[]){1, 3}, 1, (int[]){3}));
    CHECK_OK(nerve_graph_compile(z.g, 1));
    const float xv[] = {0.45f, 1589.2f, 0.00143f}, mv[] = {0.32f, 1423.2f, 0.00132f},
                sv[] = {0.11f, 155.2f, 0.00042f}, want[] = {1.1818f, 1.0696f, 0.2619f};
    memcpy(nerve_value(z.g, z.x).data, xv, sizeof xv);
    memcpy(nerve_value(z.g, z.mean).data, mv, sizeof mv);
    memcpy(nerve_value(z.g, z.std).data, sv, sizeof sv);
    CHECK_OK(nerve_forward(z.g, z.y));
    CHECK_ARRAY_NEAR(nerve_value(z.g, z.y).data, want, 3, 1e-4);
    nerve_graph_free(z.g);
}

TEST(zscore_treats_zero_std_as_one_and_broadcasts)
{
    zs_graph z;
    /* x [2, 3, 2], statistics [3, 1]: one per channel, shared along the last axis */
    CHECK_OK(zs_build(&z, 3, (int[]){1, 3, 2}, 2, (int[]){3, 1}));
    CHECK_OK(nerve_graph_compile(z.g, 2));
    const float mv[] = {1, 2, 3}, sv[] = {2, 0, 0.5f};
    memcpy(nerve_value(z.g, z.mean).data, mv, sizeof mv);
    memcpy(nerve_value(z.g, z.std).data, sv, sizeof sv);
    float *x = nerve_value(z.g, z.x).data;
    for (int i = 0; i < 12; i++)
        x[i] = (float)i;
    CHECK_OK(nerve_forward(z.g, z.y));
    const float *y = nerve_value(z.g, z.y).data;
    for (int i = 0; i < 12; i++) {
        int c = (i / 2) % 3;
        double sd = sv[c] == 0 ? 1 : sv[c];
        CHECK_NEAR(y[i], (i - mv[c]) / sd, 1e-6);
    }
    nerve_graph_free(z.g);
}

/* One dataset-wide value (its own loop) and the same value per element give the same bits,
 * a zero std counting as 1 in both. */
TEST(zscore_one_value_matches_per_element_statistics_bit_for_bit)
{
    for (int zero = 0; zero < 2; zero++) {
        zs_graph a, b;
        CHECK_OK(zs_build(&a, 3, (int[]){1, 5, 7}, 1, (int[]){1}));
        CHECK_OK(zs_build(&b, 3, (int[]){1, 5, 7}, 2, (int[]){5, 7}));
        CHECK_OK(nerve_graph_compile(a.g, 3));
        CHECK_OK(nerve_graph_compile(b.g, 3));
        float m = 0.2860f, sd = zero ? 0.0f : 0.3530f;
        nerve_value(a.g, a.mean).data[0] = m;
        nerve_value(a.g, a.std).data[0] = sd;
        for (int i = 0; i < 35; i++) {
            nerve_value(b.g, b.mean).data[i] = m;
            nerve_value(b.g, b.std).data[i] = sd;
        }
        float *xa = nerve_value(a.g, a.x).data, *xb = nerve_value(b.g, b.x).data;
        for (int i = 0; i < 3 * 35; i++)
            xa[i] = xb[i] = (float)(i % 17) / 16.0f - 0.37f;
        CHECK_OK(nerve_forward(a.g, a.y));
        CHECK_OK(nerve_forward(b.g, b.y));
        const float *ya = nerve_value(a.g, a.y).data, *yb = nerve_value(b.g, b.y).data;
        CHECK(memcmp(ya, yb, 3 * 35 * sizeof(float)) == 0);
        CHECK_NEAR(ya[40], (xa[40] - m) / (zero ? 1.0 : sd), 1e-5);
        nerve_graph_free(a.g);
        nerve_graph_free(b.g);
    }
}

TEST(zscore_gradient_with_a_constant_feature)
{
    nerve_rng r;
    nerve_rng_seed(&r, 17);
    zs_graph z;
    CHECK_OK(zs_build(&z, 2, (int[]){1, 4}, 1, (int[]){4}));
    int w, loss = test_scalar_loss(z.g, z.y, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(z.g, z.x, 1));
    CHECK_OK(nerve_graph_compile(z.g, 3));
    test_fill_uniform(z.g, z.x, -2, 2, &r);
    test_fill_uniform(z.g, z.mean, -1, 1, &r);
    const float sv[] = {0.5f, 0, 2, 1.5f};
    memcpy(nerve_value(z.g, z.std).data, sv, sizeof sv);
    test_fill_uniform(z.g, w, -1, 1, &r);
    CHECK_OK(nerve_gradcheck(z.g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(z.g);
}

TEST(zscore_rejects_statistics_that_do_not_broadcast)
{
    zs_graph z;
    CHECK(zs_build(&z, 2, (int[]){1, 3}, 1, (int[]){4}) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "zscore") != NULL);
    nerve_graph_free(z.g);
    /* a batch-sized statistic does not broadcast: the batch varies */
    CHECK(zs_build(&z, 2, (int[]){1, 3}, 2, (int[]){2, 3}) == NERVE_ERR_SHAPE);
    nerve_graph_free(z.g);
    CHECK_OK(zs_build(&z, 2, (int[]){1, 3}, 2, (int[]){1, 3}));
    nerve_graph_free(z.g);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int m = nerve_param(g, "m", 1, (int[]){3}), s = nerve_state(g, "s", 1, (int[]){3});
    CHECK(nerve_zscore(g, x, m, s) == NERVE_ERR_ARG); /* statistics are not trainable */
    nerve_graph_free(g);
}

/* ---- shared inputs ----------------------------------------------------------------------- */

/* loss = (w1 . y)(w2 . x) summed over the batch, where y was computed from x: x's
 * gradient arrives from two consumers, so an operator that overwrites instead of adding
 * into its input's gradient fails the check (the later consumer runs its backward first). */
static int two_path_loss(nerve_graph *g, int x, int y, int *w1, int *w2)
{
    *w1 = test_row_weight(g, y, "loss_w1");
    *w2 = test_row_weight(g, x, "loss_w2");
    int a = nerve_dense(g, y, *w1, -1), b = nerve_dense(g, x, *w2, -1);
    return nerve_matmul(g, a, b, 1, 0);
}

TEST(norm_operators_add_into_a_shared_input_gradient)
{
    nerve_rng r;
    nerve_rng_seed(&r, 31);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int gm = nerve_param(g, "gamma", 1, (int[]){3}), bt = nerve_param(g, "beta", 1, (int[]){3});
    int rm = nerve_state(g, "rm", 1, (int[]){3}), rv = nerve_state(g, "rv", 1, (int[]){3});
    int ys[3] = {nerve_dropout(g, x, 0.3f, 0), nerve_batchnorm(g, x, gm, bt, rm, rv, 0.1f, 1e-5f),
                 nerve_zscore(g, x, rm, rv)};
    int losses[3], w1[3], w2[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(ys[i]);
        losses[i] = two_path_loss(g, x, ys[i], &w1[i], &w2[i]);
        CHECK_OK(losses[i]);
    }
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    test_fill_uniform(g, x, -2, 2, &r);
    test_fill_uniform(g, gm, 0.5f, 1.5f, &r);
    test_fill_uniform(g, bt, -0.5f, 0.5f, &r);
    test_fill_uniform(g, rm, -0.5f, 0.5f, &r);
    test_fill_uniform(g, rv, 0.5f, 2, &r);
    for (int i = 0; i < 3; i++) {
        test_fill_uniform(g, w1[i], -1, 1, &r);
        test_fill_uniform(g, w2[i], -1, 1, &r);
    }
    for (int i = 0; i < 3; i++) {
        int st = nerve_gradcheck(g, losses[i], 1e-2f, 2e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "%s: %s", nerve_node_op(g, ys[i]), nerve_last_error());
    }
    nerve_graph_free(g);
}

/* ---- batchnorm on large tensors: threads and accuracy ------------------------------------ */

enum { BB_N = 32, BB_C = 8, BB_INNER = 256, BB_COUNT = BB_N * BB_C * BB_INNER };

typedef struct {
    float y[BB_COUNT], dx[BB_COUNT], dgamma[BB_C], dbeta[BB_C], rmean[BB_C], rvar[BB_C];
} bn_big_result;

/* x [BB_N, BB_C, 16, 16] -> batchnorm (gamma_c = 1 + c/8, beta_c = c/10 - 0.3, running
 * statistics 0 and 1) -> loss = sum(y * w), so dy = w; one forward and backward with the
 * given thread count and mode. */
static int bn_big_run(int threads, int training, const float *xv, const float *wv,
                      bn_big_result *out)
{
    nerve_set_threads(threads);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, BB_C, 16, 16});
    int w = nerve_input(g, "w", 4, (int[]){1, BB_C, 16, 16});
    int gamma = nerve_param(g, "gamma", 1, (int[]){BB_C});
    int beta = nerve_param(g, "beta", 1, (int[]){BB_C});
    int rmean = nerve_state(g, "rmean", 1, (int[]){BB_C});
    int rvar = nerve_state(g, "rvar", 1, (int[]){BB_C});
    int y = nerve_batchnorm(g, x, gamma, beta, rmean, rvar, 0.1f, 1e-5f);
    int loss = y < 0 ? y : nerve_sum(g, nerve_mul(g, y, w), NERVE_AXIS_ALL, 0);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, BB_N);
    if (st == NERVE_OK) {
        memcpy(nerve_value(g, x).data, xv, BB_COUNT * sizeof(float));
        memcpy(nerve_value(g, w).data, wv, BB_COUNT * sizeof(float));
        for (int c = 0; c < BB_C; c++) {
            nerve_value(g, gamma).data[c] = 1.0f + (float)c / 8;
            nerve_value(g, beta).data[c] = (float)c / 10 - 0.3f;
            nerve_value(g, rvar).data[c] = 1.0f;
        }
        nerve_graph_set_training(g, training);
        st = nerve_forward(g, loss);
        memcpy(out->y, nerve_value(g, y).data, sizeof out->y);
    }
    if (st == NERVE_OK)
        st = nerve_backward(g, loss);
    if (st == NERVE_OK) {
        memcpy(out->dx, nerve_grad(g, x).data, sizeof out->dx);
        memcpy(out->dgamma, nerve_grad(g, gamma).data, sizeof out->dgamma);
        memcpy(out->dbeta, nerve_grad(g, beta).data, sizeof out->dbeta);
        memcpy(out->rmean, nerve_value(g, rmean).data, sizeof out->rmean);
        memcpy(out->rvar, nerve_value(g, rvar).data, sizeof out->rvar);
    }
    nerve_graph_free(g);
    nerve_set_threads(0);
    return st;
}

/* Channel c of x [BB_N, BB_C, BB_INNER] around offset[c] with spread scale[c]. */
static void bn_big_fill(float *xv, float *wv, const float *offset, const float *scale,
                        nerve_rng *r)
{
    for (int i = 0; i < BB_COUNT; i++) {
        int c = (i / BB_INNER) % BB_C;
        xv[i] = offset[c] + scale[c] * nerve_rng_normal(r);
        wv[i] = 2.0f * nerve_rng_uniform(r) - 1.0f;
    }
}

/* Training-mode y, dx, dgamma, dbeta of channel c from the closed forms, in double. */
static void bn_big_reference(const float *xv, const float *wv, int c, double *y, double *dx,
                             double *dgamma, double *dbeta)
{
    double m = BB_N * BB_INNER, s = 0, q = 0, sdy = 0, sdyx = 0;
    double gamma = 1.0 + c / 8.0, beta = (float)c / 10 - 0.3f;
    for (int n = 0; n < BB_N; n++)
        for (int k = 0; k < BB_INNER; k++)
            s += xv[(n * BB_C + c) * BB_INNER + k];
    double mean = s / m;
    for (int n = 0; n < BB_N; n++)
        for (int k = 0; k < BB_INNER; k++) {
            double d = xv[(n * BB_C + c) * BB_INNER + k] - mean;
            q += d * d;
        }
    double istd = 1.0 / sqrt(q / m + 1e-5);
    for (int n = 0; n < BB_N; n++)
        for (int k = 0; k < BB_INNER; k++) {
            int i = (n * BB_C + c) * BB_INNER + k;
            sdy += wv[i];
            sdyx += wv[i] * (xv[i] - mean) * istd;
        }
    *dgamma = sdyx;
    *dbeta = sdy;
    for (int n = 0; n < BB_N; n++)
        for (int k = 0; k < BB_INNER; k++) {
            int i = (n * BB_C + c) * BB_INNER + k, j = n * BB_INNER + k;
            double xhat = (xv[i] - mean) * istd;
            y[j] = gamma * xhat + beta;
            dx[j] = gamma * istd * (wv[i] - sdy / m - xhat * sdyx / m);
        }
}

/* Two threads split the samples and add their partial sums per channel in thread order:
 * the same bits run to run, and the same values as one thread up to the rounding of the
 * sums' order. */
TEST(batchnorm_on_two_threads_is_reproducible_and_matches_one_thread)
{
    static float xv[BB_COUNT], wv[BB_COUNT];
    static bn_big_result one, two, again;
    static double ry[BB_N * BB_INNER], rdx[BB_N * BB_INNER];
    const float offset[BB_C] = {0, 1, -2, 3, 0.5f, -1, 2, 10};
    const float scale[BB_C] = {1, 0.5f, 2, 1, 3, 0.1f, 1, 4};
    nerve_rng r;
    nerve_rng_seed(&r, 17);
    bn_big_fill(xv, wv, offset, scale, &r);
    for (int training = 1; training >= 0; training--) {
        CHECK_OK(bn_big_run(1, training, xv, wv, &one));
        CHECK_OK(bn_big_run(2, training, xv, wv, &two));
        CHECK_OK(bn_big_run(2, training, xv, wv, &again));
        CHECK_MSG(memcmp(&two, &again, sizeof two) == 0, "training %d: not reproducible",
                  training);
        CHECK_ARRAY_NEAR(two.y, one.y, BB_COUNT, 1e-5);
        CHECK_ARRAY_NEAR(two.dx, one.dx, BB_COUNT, 1e-5);
        CHECK_ARRAY_NEAR(two.dgamma, one.dgamma, BB_C, 1e-3);
        CHECK_ARRAY_NEAR(two.dbeta, one.dbeta, BB_C, 1e-3);
        CHECK_ARRAY_NEAR(two.rmean, one.rmean, BB_C, 1e-6);
        CHECK_ARRAY_NEAR(two.rvar, one.rvar, BB_C, 1e-6);
    }
    CHECK_OK(bn_big_run(1, 1, xv, wv, &one));
    for (int c = 0; c < BB_C; c++) {
        double dgamma, dbeta;
        bn_big_reference(xv, wv, c, ry, rdx, &dgamma, &dbeta);
        CHECK_NEAR(one.dgamma[c], dgamma, 1e-6 * BB_N * BB_INNER);
        CHECK_NEAR(one.dbeta[c], dbeta, 1e-6 * BB_N * BB_INNER);
        for (int n = 0; n < BB_N; n++)
            for (int k = 0; k < BB_INNER; k++) {
                int i = (n * BB_C + c) * BB_INNER + k, j = n * BB_INNER + k;
                CHECK_NEAR(one.y[i], ry[j], 1e-5 * fmax(1, fabs(ry[j])));
                CHECK_NEAR(one.dx[i], rdx[j], 1e-5);
            }
    }
}

TEST(batchnorm_variance_stays_accurate_for_a_large_mean)
{
    /* Channels at 10000 + 0.05 * noise: the variance is 2.5e-11 of the squared mean, where
     * a sum of squares around zero loses its digits (in float entirely). The output must
     * still have the variance gamma^2 var / (var + eps) of the definition. */
    static float xv[BB_COUNT], wv[BB_COUNT];
    static bn_big_result out;
    float offset[BB_C], scale[BB_C];
    for (int c = 0; c < BB_C; c++)
        offset[c] = 10000.0f + (float)c, scale[c] = 0.05f;
    nerve_rng r;
    nerve_rng_seed(&r, 19);
    bn_big_fill(xv, wv, offset, scale, &r);
    CHECK_OK(bn_big_run(2, 1, xv, wv, &out));
    for (int c = 0; c < BB_C; c++) {
        double xs = 0, xq = 0, ys = 0, yq = 0, m = BB_N * BB_INNER;
        for (int n = 0; n < BB_N; n++)
            for (int k = 0; k < BB_INNER; k++) {
                int i = (n * BB_C + c) * BB_INNER + k;
                xs += xv[i], ys += out.y[i];
            }
        for (int n = 0; n < BB_N; n++)
            for (int k = 0; k < BB_INNER; k++) {
                int i = (n * BB_C + c) * BB_INNER + k;
                xq += (xv[i] - xs / m) * (xv[i] - xs / m);
                yq += (out.y[i] - ys / m) * (out.y[i] - ys / m);
            }
        double gamma = 1.0 + c / 8.0, xvar = xq / m;
        CHECK_NEAR(yq / m, gamma * gamma * xvar / (xvar + 1e-5), 1e-3 * gamma * gamma);
        CHECK_NEAR(out.rvar[c], 0.9 + 0.1 * xvar * m / (m - 1), 1e-6);
    }
}
