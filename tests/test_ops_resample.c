/* Resampling and channel-coupling operators: bilinear / nearest / bed-of-nails upsampling,
 * depth-to-space and space-to-depth, local response normalisation and the pixel-wise
 * softmax cross-entropy. Hand-computed values, direct double-precision references written
 * here from the formulas, and finite-difference gradient checks. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* y = op(x) for an input of the given shape filled from xv; copies y into out. */
typedef int (*unary_builder)(nerve_graph *g, int x, int arg, int mode);

static int run_unary(unary_builder build, int arg, int mode, int ndim, const int *dims,
                     const float *xv, float *out, int *out_dims)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", ndim, dims);
    int y = build(g, x, arg, mode);
    int st = y < 0 ? y : nerve_graph_compile(g, dims[0]);
    if (st >= 0) {
        test_set_values(g, x, xv, nerve_shape_numel(ndim, dims));
        nerve_forward(g, y);
        nerve_tensor t = nerve_value(g, y);
        memcpy(out, t.data, nerve_tensor_numel(&t) * sizeof(float));
        memcpy(out_dims, t.dims, (size_t)t.ndim * sizeof(int));
    }
    nerve_graph_free(g);
    return st;
}

/* Gradient check of loss = sum(w * op(x)) with random x and w. */
static int unary_gradcheck(unary_builder build, int arg, int mode, int ndim, const int *dims,
                           float atol, float rtol)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    int d1[NERVE_MAX_DIMS];
    memcpy(d1, dims, (size_t)ndim * sizeof(int));
    d1[0] = 1;
    int x = nerve_input(g, "x", ndim, d1), w = -1;
    int y = build(g, x, arg, mode);
    int loss = y < 0 ? y : test_linear_loss(g, y, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st >= 0)
        st = nerve_graph_compile(g, dims[0]);
    if (st >= 0) {
        test_fill_uniform(g, x, -2, 2, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        st = nerve_gradcheck(g, loss, 1e-2f, atol, rtol);
    }
    nerve_graph_free(g);
    return st;
}

static int build_upsample(nerve_graph *g, int x, int scale, int mode)
{
    return nerve_upsample(g, x, scale, (nerve_upsample_mode)mode);
}

static int build_d2s(nerve_graph *g, int x, int block, int mode)
{
    (void)mode;
    return nerve_depth_to_space(g, x, block);
}

static int build_s2d(nerve_graph *g, int x, int block, int mode)
{
    (void)mode;
    return nerve_space_to_depth(g, x, block);
}

/* ---- upsampling -------------------------------------------------------------------------- */

TEST(bilinear_upsampling_matches_half_pixel_hand_values)
{
    /* align_corners = 0: output o samples u = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
     * clamped to [0, 1]: weights (1, 0), (.75, .25), (.25, .75), (0, 1) per axis. The row
     * [1, 2] becomes [1, 1.25, 1.75, 2], the row [3, 4] [3, 3.25, 3.75, 4], and the middle
     * rows mix them .75/.25 and .25/.75. */
    const float x[] = {1, 2, 3, 4};
    const float want[] = {1,    1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                          2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
    float y[16];
    int dims[4];
    CHECK_OK(run_unary(build_upsample, 2, NERVE_UPSAMPLE_BILINEAR, 4, (int[]){1, 1, 2, 2}, x, y, dims));
    CHECK(dims[2] == 4 && dims[3] == 4);
    CHECK_ARRAY_NEAR(y, want, 16, 1e-6);
}

TEST(linear_upsampling_of_a_signal_by_three_clamps_at_the_edges)
{
    /* [0, 3] by 3: u = max(0, (o + 0.5) / 3 - 0.5) = 0, 0, 1/3, 2/3, 1, 4/3 -> clamped to
     * the last sample: 0, 0, 1, 2, 3, 3. */
    float y[6];
    int dims[3];
    CHECK_OK(run_unary(build_upsample, 3, NERVE_UPSAMPLE_BILINEAR, 3, (int[]){1, 1, 2},
                       (const float[]){0, 3}, y, dims));
    CHECK(dims[2] == 6);
    CHECK_ARRAY_NEAR(y, ((const float[]){0, 0, 1, 2, 3, 3}), 6, 1e-6);
    CHECK_OK(run_unary(build_upsample, 3, NERVE_UPSAMPLE_NEAREST, 3, (int[]){1, 1, 2},
                       (const float[]){5, 7}, y, dims));
    CHECK_ARRAY_NEAR(y, ((const float[]){5, 5, 5, 7, 7, 7}), 6, 0);
}

TEST(upsampling_passes_gradcheck_in_every_mode)
{
    for (int mode = NERVE_UPSAMPLE_NEAREST; mode <= NERVE_UPSAMPLE_BILINEAR; mode++)
        for (int scale = 1; scale <= 3; scale++) {
            int st = unary_gradcheck(build_upsample, scale, mode, 4, (int[]){2, 2, 3, 2}, 1e-3f, 1e-2f);
            CHECK_MSG(st == NERVE_OK, "mode %d scale %d: %s", mode, scale, nerve_last_error());
            st = unary_gradcheck(build_upsample, scale, mode, 3, (int[]){2, 2, 3}, 1e-3f, 1e-2f);
            CHECK_MSG(st == NERVE_OK, "1-D mode %d scale %d: %s", mode, scale, nerve_last_error());
        }
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 2, 2});
    CHECK(nerve_upsample(g, x, 0, NERVE_UPSAMPLE_NEAREST) == NERVE_ERR_ARG);
    CHECK(nerve_upsample(g, x, 2, (nerve_upsample_mode)7) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- depth-to-space / space-to-depth ----------------------------------------------------- */

TEST(depth_to_space_uses_the_dcr_order)
{
    /* 8 channels of 1x1 holding 0..7, block 2 -> 2 channels of 2x2:
     * y[c, i, j] = x[(2 i + j) * 2 + c], so channel 0 takes 0, 2, 4, 6. */
    float x[8], y[8];
    for (int i = 0; i < 8; i++)
        x[i] = (float)i;
    int dims[4];
    CHECK_OK(run_unary(build_d2s, 2, 0, 4, (int[]){1, 8, 1, 1}, x, y, dims));
    CHECK(dims[1] == 2 && dims[2] == 2 && dims[3] == 2);
    CHECK_ARRAY_NEAR(y, ((const float[]){0, 2, 4, 6, 1, 3, 5, 7}), 8, 0);
    /* space-to-depth of that result gives the channels back */
    float back[8];
    CHECK_OK(run_unary(build_s2d, 2, 0, 4, (int[]){1, 2, 2, 2}, y, back, dims));
    CHECK(dims[1] == 8 && dims[2] == 1 && dims[3] == 1);
    CHECK_ARRAY_NEAR(back, x, 8, 0);
}

TEST(depth_to_space_and_space_to_depth_are_inverse_and_pass_gradcheck)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    int x = nerve_input(g, "x", 4, (int[]){1, 3, 4, 6});
    int deep = nerve_space_to_depth(g, x, 2);
    int back = nerve_depth_to_space(g, deep, 2);
    int x1 = nerve_input(g, "x1", 3, (int[]){1, 6, 5});
    int wide = nerve_depth_to_space(g, x1, 3); /* [N, 2, 15] */
    int back1 = nerve_space_to_depth(g, wide, 3);
    CHECK_OK(back1);
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(g, deep, &nd, dims));
    CHECK(nd == 4 && dims[1] == 12 && dims[2] == 2 && dims[3] == 3);
    CHECK_OK(nerve_node_shape(g, wide, &nd, dims));
    CHECK(nd == 3 && dims[1] == 2 && dims[2] == 15);
    CHECK_OK(nerve_graph_compile(g, 2));
    test_fill_uniform(g, x, -1, 1, &r);
    test_fill_uniform(g, x1, -1, 1, &r);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_ARRAY_NEAR(nerve_value(g, back).data, nerve_value(g, x).data, 2 * 3 * 4 * 6, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, back1).data, nerve_value(g, x1).data, 2 * 6 * 5, 0);
    /* x1 [2, 6, 5] block 3: y[n, c, 3 l + j] = x[n, j * 2 + c, l] */
    const float *xv = nerve_value(g, x1).data, *yv = nerve_value(g, wide).data;
    CHECK(yv[(1 * 2 + 1) * 15 + 3 * 4 + 2] == xv[(1 * 6 + 2 * 2 + 1) * 5 + 4]);
    /* errors: channels not divisible by the block area, spatial size not a multiple */
    nerve_graph_free(g);
    g = nerve_graph_create();
    x = nerve_input(g, "x", 4, (int[]){1, 6, 4, 5});
    CHECK(nerve_depth_to_space(g, x, 2) == NERVE_ERR_SHAPE);
    CHECK(nerve_space_to_depth(g, x, 2) == NERVE_ERR_SHAPE);
    CHECK(nerve_space_to_depth(g, x, 0) == NERVE_ERR_ARG);
    nerve_graph_free(g);
    CHECK_OK(unary_gradcheck(build_d2s, 2, 0, 4, (int[]){2, 8, 2, 3}, 1e-3f, 1e-2f));
    CHECK_OK(unary_gradcheck(build_s2d, 2, 0, 4, (int[]){2, 2, 4, 2}, 1e-3f, 1e-2f));
    CHECK_OK(unary_gradcheck(build_s2d, 2, 0, 3, (int[]){2, 3, 4}, 1e-3f, 1e-2f));
}

/* ---- local response normalisation -------------------------------------------------------- */

typedef struct lrn_case {
    int N, C, H, W; /* H = 0: a [N, C, W] tensor */
    int size, within;
    float alpha, beta, k;
} lrn_case;

/* The course's formula, straight, in double. */
static void lrn_reference(const lrn_case *c, const float *x, double *y)
{
    int H = c->H ? c->H : 1, r = c->size / 2;
    for (int n = 0; n < c->N; n++)
        for (int ch = 0; ch < c->C; ch++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < c->W; j++) {
                    double sum = 0;
                    for (int cc = 0; cc < c->C; cc++)
                        for (int ii = 0; ii < H; ii++)
                            for (int jj = 0; jj < c->W; jj++) {
                                int near = c->within
                                               ? cc == ch && abs(ii - i) <= r && abs(jj - j) <= r
                                               : abs(cc - ch) <= r && ii == i && jj == j;
                                double v = x[((n * c->C + cc) * H + ii) * c->W + jj];
                                sum += near ? v * v : 0.0;
                            }
                    size_t at = ((size_t)(n * c->C + ch) * H + i) * c->W + j;
                    y[at] = x[at] / pow(c->k + c->alpha * sum, c->beta);
                }
}

static int lrn_node(nerve_graph *g, const lrn_case *c, int *x)
{
    *x = c->H ? nerve_input(g, "x", 4, (int[]){1, c->C, c->H, c->W})
              : nerve_input(g, "x", 3, (int[]){1, c->C, c->W});
    return nerve_lrn(g, *x, c->size, c->alpha, c->beta, c->k, c->within);
}

/* Forward against the reference, then the gradient check. */
static int check_lrn(const lrn_case *c, double tol)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 13);
    int x, w = -1;
    int y = lrn_node(g, c, &x);
    int loss = y < 0 ? y : test_linear_loss(g, y, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st >= 0)
        st = nerve_graph_compile(g, c->N);
    if (st >= 0) {
        test_fill_uniform(g, x, -2, 2, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        nerve_forward(g, loss);
        nerve_tensor xv = nerve_value(g, x), yv = nerve_value(g, y);
        size_t n = nerve_tensor_numel(&xv);
        double ref[256];
        lrn_reference(c, xv.data, ref);
        for (size_t i = 0; i < n && st >= 0; i++)
            if (!(fabs(yv.data[i] - ref[i]) <= tol))
                st = nerve_set_error(NERVE_ERR_NUMERIC, "y[%zu] = %.9g, reference %.9g", i,
                                     (double)yv.data[i], ref[i]);
        if (st >= 0)
            st = nerve_gradcheck(g, loss, 1e-2f, 2e-3f, 2e-2f);
    }
    nerve_graph_free(g);
    return st;
}

TEST(lrn_across_channels_matches_the_course_formula_and_gradcheck)
{
    /* AlexNet's values (a small effect) and a strong alpha where the neighbours matter;
     * 7 channels so that windows are clipped at both ends. */
    const lrn_case cases[] = {
        {2, 7, 2, 3, NERVE_LRN_SIZE, 0, NERVE_LRN_ALPHA, NERVE_LRN_BETA, NERVE_LRN_K},
        {2, 7, 2, 3, 5, 0, 0.5f, 0.75f, 2.0f},
        {2, 6, 0, 4, 3, 0, 0.8f, 0.6f, 1.0f}, /* [N, C, L] */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = check_lrn(&cases[i], 1e-6);
        CHECK_MSG(st == NERVE_OK, "case %zu: %s", i, nerve_last_error());
    }
    /* rank 2 [N, C] (even size 4: the window is still c - 2 .. c + 2) */
    lrn_case flat = {3, 5, 0, 1, 4, 0, 0.3f, 0.75f, 1.5f};
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 2);
    int x = nerve_input(g, "x", 2, (int[]){1, flat.C});
    int y = nerve_lrn(g, x, flat.size, flat.alpha, flat.beta, flat.k, 0);
    CHECK_OK(nerve_graph_compile(g, flat.N));
    test_fill_uniform(g, x, -2, 2, &r);
    CHECK_OK(nerve_forward(g, y));
    double ref[16];
    lrn_reference(&flat, nerve_value(g, x).data, ref);
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ref, 15, 1e-6);
    nerve_graph_free(g);
}

TEST(lrn_within_map_sums_the_square_neighbourhood_and_passes_gradcheck)
{
    const lrn_case cases[] = {
        {2, 2, 4, 5, 3, 1, 0.5f, 0.75f, 2.0f},
        {1, 3, 5, 4, 5, 1, 0.2f, 0.75f, 1.0f},
        {2, 2, 0, 6, 3, 1, 0.5f, 0.9f, 1.0f}, /* [N, C, L]: a window along L */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = check_lrn(&cases[i], 1e-6);
        CHECK_MSG(st == NERVE_OK, "case %zu: %s", i, nerve_last_error());
    }
    /* a hand value: one 1x3 map [1, 2, 3] with n = 3, alpha 1, beta 1, k 1:
     * y = [1 / (1 + 5), 2 / (1 + 14), 3 / (1 + 13)] */
    float y[3];
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 1, 3});
    int l = nerve_lrn(g, x, 3, 1, 1, 1, 1);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){1, 2, 3}, 3);
    CHECK_OK(nerve_forward(g, l));
    memcpy(y, nerve_value(g, l).data, sizeof y);
    CHECK_ARRAY_NEAR(y, ((const float[]){1.0f / 6, 2.0f / 15, 3.0f / 14}), 3, 1e-6);
    CHECK(nerve_lrn(g, x, 0, 1, 1, 1, 0) < 0);
    nerve_graph_free(g);
}

/* ---- pixel-wise softmax cross-entropy ---------------------------------------------------- */

/* sum_pix w_y (-log softmax(z)_y) / sum_pix w_y, in double; z [N, C, P], labels [N, P]. */
static double pixel_ce_reference(const float *z, const float *labels, const float *w, int N,
                                 int C, int P)
{
    double total = 0, norm = 0;
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++) {
            double m = -INFINITY, sum = 0;
            for (int c = 0; c < C; c++)
                m = fmax(m, z[(n * C + c) * P + p]);
            for (int c = 0; c < C; c++)
                sum += exp(z[(n * C + c) * P + p] - m);
            int y = (int)labels[n * P + p];
            double wy = w ? w[y] : 1.0;
            total += wy * (m + log(sum) - z[(n * C + y) * P + p]);
            norm += wy;
        }
    return total / norm;
}

TEST(pixel_softmax_ce_matches_a_direct_reference_with_and_without_weights)
{
    const int N = 2, C = 4, H = 3, W = 2, P = H * W;
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 21);
    int z = nerve_input(g, "z", 4, (int[]){1, C, H, W});
    int y = nerve_input(g, "y", 3, (int[]){1, H, W});
    int y4 = nerve_input(g, "y4", 4, (int[]){1, 1, H, W});
    int cw = nerve_state(g, "class_w", 1, (int[]){C});
    int plain = nerve_pixel_softmax_ce_loss(g, z, y, -1);
    int weighted = nerve_pixel_softmax_ce_loss(g, z, y, cw);
    int plain4 = nerve_pixel_softmax_ce_loss(g, z, y4, -1);
    CHECK_OK(plain);
    CHECK_OK(weighted);
    CHECK_OK(plain4);
    CHECK(nerve_pixel_softmax_ce_loss(g, y, y, -1) == NERVE_ERR_SHAPE);
    CHECK(nerve_pixel_softmax_ce_loss(g, z, z, -1) == NERVE_ERR_SHAPE);
    CHECK_OK(nerve_input_set_requires_grad(g, z, 1));
    CHECK_OK(nerve_graph_compile(g, N));
    test_fill_uniform(g, z, -3, 3, &r);
    float *labels = nerve_value(g, y).data;
    for (int i = 0; i < N * P; i++)
        labels[i] = (float)nerve_rng_below(&r, C);
    memcpy(nerve_value(g, y4).data, labels, (size_t)N * P * sizeof(float));
    const float wv[] = {0.5f, 2.0f, 1.0f, 3.0f};
    test_set_values(g, cw, wv, C);
    CHECK_OK(nerve_forward(g, -1));
    const float *zv = nerve_value(g, z).data;
    CHECK_NEAR(nerve_value(g, plain).data[0], pixel_ce_reference(zv, labels, NULL, N, C, P), 1e-5);
    CHECK_NEAR(nerve_value(g, weighted).data[0], pixel_ce_reference(zv, labels, wv, N, C, P), 1e-5);
    CHECK_NEAR(nerve_value(g, plain4).data[0], nerve_value(g, plain).data[0], 0);
    /* the gradient at pixel (n, p) is (softmax - onehot) / (N P) */
    CHECK_OK(nerve_backward(g, plain));
    const float *dz = nerve_grad(g, z).data;
    double sum = 0;
    for (int c = 0; c < C; c++)
        sum += exp(zv[c * P]);
    int y0 = (int)labels[0];
    CHECK_NEAR(dz[0], (exp(zv[0]) / sum - (y0 == 0)) / (N * P), 1e-6);
    CHECK_OK(nerve_gradcheck(g, plain, 1e-2f, 1e-4f, 1e-2f));
    CHECK_OK(nerve_gradcheck(g, weighted, 1e-2f, 1e-4f, 1e-2f));
    labels[3] = (float)C; /* not a class */
    CHECK_OK(nerve_forward(g, plain));
    CHECK(isnan(nerve_value(g, plain).data[0]));
    nerve_graph_free(g);
}

TEST(pixel_softmax_ce_on_a_signal_and_the_course_softmax_vector)
{
    /* [1, 3, 3] logits: the three pixels carry the course's softmax examples (5,4,2),
     * (4,2,8), (4,4,1) with labels 0, 1, 2: the mean of -log(.7054), -log(.0024),
     * -log(.0243) (computed exactly here). */
    nerve_graph *g = nerve_graph_create();
    int z = nerve_input(g, "z", 3, (int[]){1, 3, 3});
    int y = nerve_input(g, "y", 2, (int[]){1, 3});
    int loss = nerve_pixel_softmax_ce_loss(g, z, y, -1);
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, z, (const float[]){5, 4, 4, 4, 2, 4, 2, 8, 1}, 9);
    test_set_values(g, y, (const float[]){0, 1, 2}, 3);
    CHECK_OK(nerve_forward(g, loss));
    double l0 = log(exp(5) + exp(4) + exp(2)) - 5;
    double l1 = log(exp(4) + exp(2) + exp(8)) - 2;
    double l2 = log(exp(4) + exp(4) + exp(1)) - 1;
    CHECK_NEAR(nerve_value(g, loss).data[0], (l0 + l1 + l2) / 3, 1e-5);
    CHECK_NEAR(exp(-l0), 0.7054, 1e-4); /* the slide's probability */
    nerve_graph_free(g);
}

/* ---- batch size changes, no allocation ---------------------------------------------------- */

TEST(resampling_operators_follow_batch_changes_without_allocating)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 4);
    int x = nerve_input(g, "x", 4, (int[]){1, 4, 2, 3});
    int labels = nerve_input(g, "labels", 3, (int[]){1, 4, 6});
    int up = nerve_upsample(g, x, 2, NERVE_UPSAMPLE_BILINEAR);       /* [N, 4, 4, 6] */
    int norm = nerve_lrn(g, up, 3, 0.5f, 0.75f, 2.0f, 0);
    int nails = nerve_upsample(g, norm, 1, NERVE_UPSAMPLE_BED_OF_NAILS);
    int deep = nerve_space_to_depth(g, nails, 2);                   /* [N, 16, 2, 3] */
    int wide = nerve_depth_to_space(g, deep, 2);                    /* [N, 4, 4, 6] */
    int within = nerve_lrn(g, wide, 3, 0.3f, 0.75f, 1.0f, 1);
    int loss = nerve_pixel_softmax_ce_loss(g, within, labels, -1);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    test_fill_uniform(g, x, -2, 2, &r);
    float *lv = nerve_value(g, labels).data;
    for (int i = 0; i < 3 * 24; i++)
        lv[i] = (float)nerve_rng_below(&r, 4);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    float first[2 * 4 * 4 * 6];
    memcpy(first, nerve_value(g, within).data, sizeof first);
    uint64_t allocs = nerve_alloc_count();
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK_OK(nerve_graph_set_batch(g, 3));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK(nerve_alloc_count() == allocs);
    CHECK_ARRAY_NEAR(nerve_value(g, within).data, first, 2 * 4 * 4 * 6, 0);
    CHECK_OK(nerve_graph_set_batch(g, 1));
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-4f, 2e-2f));
    nerve_graph_free(g);
}
