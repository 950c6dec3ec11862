/* Loss operators: values against hand computations in double, the course's worked
 * examples, finite-difference gradients, label validation, shapes and batch changes. */
#include "test.h"

#include <string.h>

static void set_values(nerve_graph *g, int id, const float *v)
{
    nerve_tensor t = nerve_value(g, id);
    memcpy(t.data, v, nerve_tensor_numel(&t) * sizeof(float));
}

static float value_of(nerve_graph *g, int id) { return nerve_value(g, id).data[0]; }

static double sigmoid_d(double z) { return 1.0 / (1.0 + exp(-z)); }

/* log softmax of one row, in double. */
static void log_softmax_d(const float *z, int C, double *out)
{
    double m = z[0], sum = 0;
    for (int c = 1; c < C; c++)
        m = fmax(m, z[c]);
    for (int c = 0; c < C; c++)
        sum += exp(z[c] - m);
    for (int c = 0; c < C; c++)
        out[c] = z[c] - m - log(sum);
}

/* Cross-entropy as defined for weighted, smoothed targets: a weighted-mean NLL part plus
 * eps/C times the weighted sum of every class's -log p, both over sum_i w_yi. */
static double ce_by_hand(const float *z, const float *labels, const float *w, int N, int C,
                         double eps)
{
    double nll = 0, smooth = 0, norm = 0, lp[16];
    for (int i = 0; i < N; i++) {
        log_softmax_d(z + i * C, C, lp);
        int y = (int)labels[i];
        double wy = w ? w[y] : 1.0;
        nll += -wy * lp[y];
        norm += wy;
        for (int c = 0; c < C; c++)
            smooth += -(w ? w[c] : 1.0) * lp[c];
    }
    return (1 - eps) * nll / norm + eps / C * smooth / norm;
}

/* ---- pointwise losses ------------------------------------------------------------------ */

TEST(pointwise_losses_match_hand_values)
{
    nerve_graph *g = nerve_graph_create();
    int p = nerve_input(g, "p", 2, (int[]){1, 3});
    int t = nerve_input(g, "t", 2, (int[]){1, 3});
    int mse = nerve_mse_loss(g, p, t, 0), half = nerve_mse_loss(g, p, t, 1);
    int l1 = nerve_l1_loss(g, p, t), bce = nerve_bce_logits_loss(g, p, t);
    CHECK_OK(bce);
    int nd = -1;
    CHECK_OK(nerve_node_shape(g, mse, &nd, NULL));
    CHECK(nd == 0);
    CHECK_OK(nerve_graph_compile(g, 2));
    const float pv[] = {0.5f, -1.0f, 2.0f, 100.0f, -100.0f, 0.0f};
    const float tv[] = {1.0f, 0.0f, 0.25f, 0.0f, 0.0f, 1.0f};
    set_values(g, p, pv);
    set_values(g, t, tv);
    CHECK_OK(nerve_forward(g, -1));
    double sq = 0, ab = 0, ce = 0;
    for (int k = 0; k < 6; k++) {
        double d = pv[k] - tv[k], s = sigmoid_d(pv[k]);
        sq += d * d;
        ab += fabs(d);
        /* -t log s - (1-t) log(1-s), with log(1-s) = -z - log(1+e^-z) for large z */
        double log_s = -log1p(exp(-pv[k])), log_1ms = pv[k] > 0 ? -pv[k] + log_s : log1p(-s);
        ce += -tv[k] * log_s - (1 - tv[k]) * log_1ms;
    }
    CHECK_NEAR(value_of(g, mse), sq / 6, 1e-4);
    CHECK_NEAR(value_of(g, half), sq / 12, 1e-4);
    CHECK_NEAR(value_of(g, l1), ab / 6, 1e-5);
    CHECK_NEAR(value_of(g, l1), (0.5 + 1 + 1.75 + 100 + 100 + 1) / 6, 1e-5);
    CHECK_NEAR(value_of(g, bce), ce / 6, 1e-4);
    CHECK(isfinite(value_of(g, bce))); /* z = +-100 must not overflow */
    nerve_graph_free(g);
}

TEST(half_mse_has_half_the_gradient_of_mse)
{
    nerve_graph *g = nerve_graph_create();
    int p = nerve_input(g, "p", 2, (int[]){1, 2});
    int t = nerve_input(g, "t", 2, (int[]){1, 2});
    int mse = nerve_mse_loss(g, p, t, 0), half = nerve_mse_loss(g, p, t, 1);
    CHECK_OK(half);
    CHECK_OK(nerve_input_set_requires_grad(g, p, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    const float pv[] = {1, 2, 3, 4}, tv[] = {0, 2.5f, 1, 5};
    set_values(g, p, pv);
    set_values(g, t, tv);
    float full[4];
    CHECK_OK(nerve_forward(g, mse));
    CHECK_OK(nerve_backward(g, mse));
    memcpy(full, nerve_grad(g, p).data, sizeof full);
    for (int k = 0; k < 4; k++) /* d/dp mean (p-t)^2 = 2 (p - t) / 4 */
        CHECK_NEAR(full[k], 2.0 * (pv[k] - tv[k]) / 4, 1e-6);
    CHECK_OK(nerve_forward(g, half));
    CHECK_OK(nerve_backward(g, half));
    const float *hg = nerve_grad(g, p).data;
    for (int k = 0; k < 4; k++)
        CHECK_NEAR(hg[k], 0.5 * full[k], 1e-7);
    nerve_graph_free(g);
}

TEST(pointwise_losses_pass_gradcheck_for_prediction_and_target)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    int p = nerve_input(g, "p", 2, (int[]){1, 4});
    int t = nerve_input(g, "t", 2, (int[]){1, 4});
    int losses[] = {nerve_mse_loss(g, p, t, 0), nerve_mse_loss(g, p, t, 1), nerve_l1_loss(g, p, t),
                    nerve_bce_logits_loss(g, p, t)};
    CHECK_OK(losses[3]);
    CHECK_OK(nerve_input_set_requires_grad(g, p, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, t, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    test_fill_uniform(g, t, 0.0f, 1.0f, &r);
    nerve_tensor pv = nerve_value(g, p), tv = nerve_value(g, t);
    for (int k = 0; k < 12; k++) /* |p - t| >= 0.2: away from the kink of |.| */
        pv.data[k] = tv.data[k] + (k % 2 ? 1.0f : -1.0f) * (0.2f + 2.0f * nerve_rng_uniform(&r));
    for (int i = 0; i < 4; i++)
        CHECK_OK(nerve_gradcheck(g, losses[i], 1e-2f, 1e-4f, 1e-2f));
    nerve_graph_free(g);
}

TEST(l1_subgradient_is_zero_where_prediction_equals_target)
{
    nerve_graph *g = nerve_graph_create();
    int p = nerve_input(g, "p", 2, (int[]){1, 3});
    int t = nerve_input(g, "t", 2, (int[]){1, 3});
    int l1 = nerve_l1_loss(g, p, t);
    CHECK_OK(nerve_input_set_requires_grad(g, p, 1));
    CHECK_OK(nerve_graph_compile(g, 1));
    set_values(g, p, (float[]){1, 2, 3});
    set_values(g, t, (float[]){1, 0, 5});
    CHECK_OK(nerve_forward(g, l1));
    CHECK_NEAR(value_of(g, l1), 4.0 / 3, 1e-6);
    CHECK_OK(nerve_backward(g, l1));
    const float want[] = {0, 1.0f / 3, -1.0f / 3};
    CHECK_ARRAY_NEAR(nerve_grad(g, p).data, want, 3, 1e-7);
    nerve_graph_free(g);
}

/* ---- the course's worked examples (COURSE.md 2 and 3) ---------------------------------- */

TEST(course_softmax_ce_vector_and_gradient)
{
    nerve_graph *g = nerve_graph_create();
    int z = nerve_input(g, "z", 2, (int[]){1, 3});
    int y = nerve_input(g, "y", 2, (int[]){1, 1}); /* labels [N, 1] are accepted too */
    int ce = nerve_softmax_ce_loss(g, z, y, -1, 0.0f);
    CHECK_OK(ce);
    CHECK_OK(nerve_input_set_requires_grad(g, z, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    const float zv[] = {5, 4, 2, 4, 2, 8, 4, 4, 1};
    const float yv[] = {0, 2, 1}; /* cat, horse, dog in the slide's column order */
    set_values(g, z, zv);
    set_values(g, y, yv);
    CHECK_OK(nerve_forward(g, ce));
    /* NLL terms 0.349 + 0.0206 + 0.718 = 1.087 (the slide's three-digit values) */
    CHECK_NEAR(value_of(g, ce), 1.087 / 3, 5e-4);
    CHECK_NEAR(value_of(g, ce), ce_by_hand(zv, yv, NULL, 3, 3, 0), 1e-6);
    CHECK_OK(nerve_backward(g, ce));
    const double softmax[] = {0.7054, 0.2595, 0.0351, 0.0179, 0.0024, 0.9796,
                              0.4879, 0.4879, 0.0243};
    const float *dz = nerve_grad(g, z).data;
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) {
            double want = (softmax[i * 3 + c] - (c == (int)yv[i])) / 3;
            CHECK_NEAR(dz[i * 3 + c], want, 1e-4 / 3);
        }
    nerve_graph_free(g);
}

/* Sigmoid neuron x -> z = w x + b. BCE on the logit gives dL/dw = x (sigma(z) - d): no
 * sigma' factor. */
TEST(course_bce_on_sigmoid_output_has_no_sigma_prime_factor)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 1});
    int d = nerve_input(g, "d", 2, (int[]){1, 1});
    int w = nerve_param(g, "w", 2, (int[]){1, 1});
    int b = nerve_param(g, "b", 1, (int[]){1});
    int z = nerve_dense(g, x, w, b);
    int bce = nerve_bce_logits_loss(g, z, d);
    CHECK_OK(bce);
    CHECK_OK(nerve_graph_compile(g, 1));
    const float cases[][4] = {{2.5f, 1.0f, 0.4f, -0.3f}, {-1.5f, 0.0f, 1.2f, 0.5f}}; /* x d w b */
    for (int k = 0; k < 2; k++) {
        set_values(g, x, &cases[k][0]);
        set_values(g, d, &cases[k][1]);
        set_values(g, w, &cases[k][2]);
        set_values(g, b, &cases[k][3]);
        CHECK_OK(nerve_forward(g, bce));
        CHECK_OK(nerve_backward(g, bce));
        double zz = (double)cases[k][2] * cases[k][0] + cases[k][3];
        CHECK_NEAR(nerve_grad(g, w).data[0], cases[k][0] * (sigmoid_d(zz) - cases[k][1]), 1e-6);
        CHECK_NEAR(nerve_grad(g, b).data[0], sigmoid_d(zz) - cases[k][1], 1e-6);
    }
    nerve_graph_free(g);
}

/* Nielsen's saturation demo: x = 1, d = 0. Case A w = 0.6, b = 0.9 (z = 1.5,
 * sigma' = 0.149); case B w = 2, b = 2 (z = 4, sigma' = 0.0177). Half-MSE on sigmoid(z)
 * gives dL/dw = (a - d) sigma'(z) x; cross-entropy gives (a - d) x. */
TEST(course_sigmoid_saturation_demo_mse_has_sigma_prime_ce_does_not)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 1});
    int d = nerve_input(g, "d", 2, (int[]){1, 1});
    int w = nerve_param(g, "w", 2, (int[]){1, 1});
    int b = nerve_param(g, "b", 1, (int[]){1});
    int z = nerve_dense(g, x, w, b);
    int a = nerve_activation(g, z, nerve_act_default(NERVE_ACT_SIGMOID));
    int mse = nerve_mse_loss(g, a, d, 1);
    int ce = nerve_bce_logits_loss(g, z, d);
    CHECK_OK(ce);
    CHECK_OK(mse);
    CHECK_OK(nerve_graph_compile(g, 1));
    const struct {
        float w, b, z, sigma_prime, tol;
    } demo[] = {{0.6f, 0.9f, 1.5f, 0.149f, 5e-4f}, {2.0f, 2.0f, 4.0f, 0.0177f, 5e-5f}};
    set_values(g, x, (float[]){1});
    set_values(g, d, (float[]){0});
    for (int k = 0; k < 2; k++) {
        set_values(g, w, &demo[k].w);
        set_values(g, b, &demo[k].b);
        CHECK_OK(nerve_forward(g, -1));
        CHECK_NEAR(nerve_value(g, z).data[0], demo[k].z, 1e-6);
        double act = sigmoid_d(demo[k].z);
        CHECK_OK(nerve_backward(g, mse));
        float g_mse = nerve_grad(g, w).data[0];
        CHECK_OK(nerve_backward(g, ce));
        float g_ce = nerve_grad(g, w).data[0];
        CHECK_NEAR(g_ce, act, 1e-6);                        /* (a - d) x */
        CHECK_NEAR(g_mse, act * act * (1 - act), 1e-6);     /* (a - d) sigma' x */
        CHECK_NEAR(g_mse / g_ce, demo[k].sigma_prime, demo[k].tol);
    }
    nerve_graph_free(g);
}

/* ---- softmax cross-entropy: weights and smoothing --------------------------------------- */

/* A graph with logits [N, 5] (requires_grad), labels [N], class weights state [5] and the
 * four CE variants: plain, weighted, smoothed, weighted and smoothed. */
typedef struct ce_fixture {
    nerve_graph *g;
    int z, y, w, loss[4];
} ce_fixture;

static const float ce_weights[5] = {0.5f, 2.0f, 1.0f, 3.0f, 0.25f};
static const float ce_labels[4] = {1, 4, 0, 1};
static const float ce_eps = 0.1f;

static int ce_fixture_build(ce_fixture *f, int max_batch)
{
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    f->g = nerve_graph_create();
    f->z = nerve_input(f->g, "z", 2, (int[]){1, 5});
    f->y = nerve_input(f->g, "y", 1, (int[]){1});
    f->w = nerve_state(f->g, "w", 1, (int[]){5});
    f->loss[0] = nerve_softmax_ce_loss(f->g, f->z, f->y, -1, 0.0f);
    f->loss[1] = nerve_softmax_ce_loss(f->g, f->z, f->y, f->w, 0.0f);
    f->loss[2] = nerve_softmax_ce_loss(f->g, f->z, f->y, -1, ce_eps);
    f->loss[3] = nerve_softmax_ce_loss(f->g, f->z, f->y, f->w, ce_eps);
    if (f->loss[3] < 0)
        return f->loss[3];
    int st = nerve_input_set_requires_grad(f->g, f->z, 1);
    if (!st)
        st = nerve_graph_compile(f->g, max_batch);
    if (st)
        return st;
    test_fill_uniform(f->g, f->z, -3.0f, 3.0f, &r);
    set_values(f->g, f->y, ce_labels);
    set_values(f->g, f->w, ce_weights);
    return NERVE_OK;
}

TEST(softmax_ce_weights_and_smoothing_match_hand_values)
{
    ce_fixture f;
    CHECK_OK(ce_fixture_build(&f, 4));
    CHECK_OK(nerve_forward(f.g, -1));
    const float *z = nerve_value(f.g, f.z).data;
    const float *weights[4] = {NULL, ce_weights, NULL, ce_weights};
    const double eps[4] = {0, 0, ce_eps, ce_eps};
    for (int k = 0; k < 4; k++)
        CHECK_NEAR(value_of(f.g, f.loss[k]), ce_by_hand(z, ce_labels, weights[k], 4, 5, eps[k]),
                   1e-5);
    /* Weighted, unsmoothed gradient: (p - onehot) w_y / sum_i w_yi. */
    CHECK_OK(nerve_backward(f.g, f.loss[1]));
    const float *dz = nerve_grad(f.g, f.z).data;
    double norm = 0, lp[5];
    for (int i = 0; i < 4; i++)
        norm += ce_weights[(int)ce_labels[i]];
    for (int i = 0; i < 4; i++) {
        int y = (int)ce_labels[i];
        log_softmax_d(z + i * 5, 5, lp);
        for (int c = 0; c < 5; c++)
            CHECK_NEAR(dz[i * 5 + c], (exp(lp[c]) - (c == y)) * ce_weights[y] / norm, 1e-6);
    }
    /* Smoothed, unweighted gradient: (p - ((1 - eps) onehot + eps / C)) / N. */
    CHECK_OK(nerve_backward(f.g, f.loss[2]));
    for (int i = 0; i < 4; i++) {
        int y = (int)ce_labels[i];
        log_softmax_d(z + i * 5, 5, lp);
        for (int c = 0; c < 5; c++)
            CHECK_NEAR(dz[i * 5 + c], (exp(lp[c]) - (1 - ce_eps) * (c == y) - ce_eps / 5) / 4,
                       1e-6);
    }
    nerve_graph_free(f.g);
}

TEST(softmax_ce_variants_pass_gradcheck)
{
    ce_fixture f;
    CHECK_OK(ce_fixture_build(&f, 4));
    for (int k = 0; k < 4; k++)
        CHECK_OK(nerve_gradcheck(f.g, f.loss[k], 1e-2f, 1e-4f, 1e-2f));
    nerve_graph_free(f.g);
}

TEST(set_batch_keeps_the_mean_over_the_rows_present)
{
    ce_fixture f;
    CHECK_OK(ce_fixture_build(&f, 4));
    CHECK_OK(nerve_graph_set_batch(f.g, 2));
    CHECK_OK(nerve_forward(f.g, -1));
    const float *z = nerve_value(f.g, f.z).data;
    for (int k = 0; k < 4; k++) {
        const float *w = k % 2 ? ce_weights : NULL;
        CHECK_NEAR(value_of(f.g, f.loss[k]), ce_by_hand(z, ce_labels, w, 2, 5, k >= 2 ? ce_eps : 0),
                   1e-5);
    }
    CHECK_OK(nerve_gradcheck(f.g, f.loss[3], 1e-2f, 1e-4f, 1e-2f));
    nerve_graph_free(f.g);

    /* A pointwise loss divides by the elements of the current batch. */
    nerve_graph *g = nerve_graph_create();
    int pr = nerve_input(g, "p", 2, (int[]){1, 2});
    int t = nerve_input(g, "t", 2, (int[]){1, 2});
    int mse = nerve_mse_loss(g, pr, t, 0);
    CHECK_OK(nerve_graph_compile(g, 3));
    set_values(g, pr, (float[]){1, 2, 3, 4, 100, 100});
    set_values(g, t, (float[]){0, 0, 0, 0, 0, 0});
    CHECK_OK(nerve_forward(g, mse));
    CHECK_NEAR(value_of(g, mse), (1 + 4 + 9 + 16 + 20000) / 6.0, 1e-2);
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK_OK(nerve_forward(g, mse));
    CHECK_NEAR(value_of(g, mse), (1 + 4 + 9 + 16) / 4.0, 1e-6);
    nerve_graph_free(g);
}

/* ---- NLL and hinge ---------------------------------------------------------------------- */

TEST(nll_matches_hand_values_equals_ce_on_log_softmax_and_passes_gradcheck)
{
    nerve_graph *g = nerve_graph_create();
    int lp = nerve_input(g, "lp", 2, (int[]){1, 5});
    int z = nerve_input(g, "z", 2, (int[]){1, 5});
    int y = nerve_input(g, "y", 1, (int[]){1});
    int w = nerve_state(g, "w", 1, (int[]){5});
    int nll = nerve_nll_loss(g, lp, y, -1), nllw = nerve_nll_loss(g, lp, y, w);
    int cew = nerve_softmax_ce_loss(g, z, y, w, 0.0f);
    CHECK_OK(cew);
    CHECK_OK(nllw);
    CHECK_OK(nerve_input_set_requires_grad(g, lp, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    test_fill_uniform(g, z, -2.0f, 2.0f, &r);
    test_fill_uniform(g, lp, -4.0f, 0.0f, &r); /* any values: NLL only picks entries */
    set_values(g, y, ce_labels);
    set_values(g, w, ce_weights);
    CHECK_OK(nerve_forward(g, -1));
    const float *lv = nerve_value(g, lp).data;
    double plain = 0, weighted = 0, norm = 0;
    for (int i = 0; i < 4; i++) {
        int c = (int)ce_labels[i];
        plain -= lv[i * 5 + c];
        weighted -= ce_weights[c] * lv[i * 5 + c];
        norm += ce_weights[c];
    }
    CHECK_NEAR(value_of(g, nll), plain / 4, 1e-6);
    CHECK_NEAR(value_of(g, nllw), weighted / norm, 1e-6);
    CHECK_OK(nerve_gradcheck(g, nll, 1e-2f, 1e-4f, 1e-2f));
    CHECK_OK(nerve_gradcheck(g, nllw, 1e-2f, 1e-4f, 1e-2f));

    /* Fed the log-softmax of z, weighted NLL is weighted CE. */
    const float *zv = nerve_value(g, z).data;
    float *lw = nerve_value(g, lp).data;
    double row[5];
    for (int i = 0; i < 4; i++) {
        log_softmax_d(zv + i * 5, 5, row);
        for (int c = 0; c < 5; c++)
            lw[i * 5 + c] = (float)row[c];
    }
    CHECK_OK(nerve_forward(g, -1));
    CHECK_NEAR(value_of(g, nllw), value_of(g, cew), 1e-5);
    nerve_graph_free(g);
}

TEST(hinge_binary_and_multiclass_match_hand_values_and_pass_gradcheck)
{
    nerve_graph *g = nerve_graph_create();
    int sb = nerve_input(g, "sb", 2, (int[]){1, 1});
    int sm = nerve_input(g, "sm", 2, (int[]){1, 3});
    int y = nerve_input(g, "y", 1, (int[]){1});
    int hb = nerve_hinge_loss(g, sb, y), hm = nerve_hinge_loss(g, sm, y);
    CHECK_OK(hb);
    CHECK_OK(hm);
    CHECK_OK(nerve_input_set_requires_grad(g, sb, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, sm, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    /* labels {1,0,0,1} -> t = {+1,-1,-1,+1}; binary margins 1 - t s:
     * 0.7, -1 (-> 0), 2.5, 0.1: mean 3.3 / 4 = 0.825 */
    set_values(g, y, (float[]){1, 0, 0, 1});
    set_values(g, sb, (float[]){0.3f, -2.0f, 1.5f, 0.9f});
    /* multi-class rows with labels 1,0,0,1:
     * (1, 2.5, 0.2) y=1: margins -0.5, -1.3 -> 0
     * (0.5, 0.9, -0.4) y=0: 1.4 + 0.1 = 1.5
     * (2, 0.3, 1.6) y=0: margins 1 - 2 + 0.3 = -0.7, 1 - 2 + 1.6 = 0.6 -> 0.6
     * (0.2, 0.1, 0.4) y=1: 1.1 + 1.3 = 2.4;   mean (0 + 1.5 + 0.6 + 2.4) / 4 = 1.125 */
    set_values(g, sm, (float[]){1, 2.5f, 0.2f, 0.5f, 0.9f, -0.4f, 2, 0.3f, 1.6f, 0.2f, 0.1f, 0.4f});
    CHECK_OK(nerve_forward(g, -1));
    CHECK_NEAR(value_of(g, hb), 0.825, 1e-6);
    CHECK_NEAR(value_of(g, hm), 1.125, 1e-6);
    CHECK_OK(nerve_backward(g, hb));
    const float want_b[] = {-0.25f, 0, 0.25f, -0.25f};
    CHECK_ARRAY_NEAR(nerve_grad(g, sb).data, want_b, 4, 1e-7);
    CHECK_OK(nerve_backward(g, hm));
    const float want_m[] = {0, 0, 0, -0.5f, 0.25f, 0.25f, -0.25f, 0, 0.25f, 0.25f, -0.5f, 0.25f};
    CHECK_ARRAY_NEAR(nerve_grad(g, sm).data, want_m, 12, 1e-7);
    /* every margin is at least 0.1 away from the kink, more than the step */
    CHECK_OK(nerve_gradcheck(g, hb, 1e-2f, 1e-4f, 1e-2f));
    CHECK_OK(nerve_gradcheck(g, hm, 1e-2f, 1e-4f, 1e-2f));
    /* the mean follows the batch: the first two rows only */
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK_OK(nerve_forward(g, -1));
    CHECK_NEAR(value_of(g, hb), 0.35, 1e-6);
    CHECK_NEAR(value_of(g, hm), 0.75, 1e-6);
    nerve_graph_free(g);
}

/* ---- label validation and shapes --------------------------------------------------------- */

TEST(invalid_labels_make_the_loss_nan_and_backward_stays_in_bounds)
{
    nerve_graph *g = nerve_graph_create();
    int z = nerve_input(g, "z", 2, (int[]){1, 3});
    int s1 = nerve_input(g, "s1", 2, (int[]){1, 1});
    int y = nerve_input(g, "y", 1, (int[]){1});
    int w = nerve_state(g, "w", 1, (int[]){3});
    int losses[] = {nerve_softmax_ce_loss(g, z, y, -1, 0.1f), nerve_softmax_ce_loss(g, z, y, w, 0),
                    nerve_nll_loss(g, z, y, -1), nerve_hinge_loss(g, z, y),
                    nerve_hinge_loss(g, s1, y)};
    CHECK_OK(losses[4]);
    CHECK_OK(nerve_input_set_requires_grad(g, z, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, s1, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    set_values(g, z, (float[]){1, 2, 3, 4, 5, 6});
    set_values(g, s1, (float[]){0.5f, -0.5f});
    set_values(g, w, (float[]){1, 1, 1});
    const float bad[][2] = {{0, 3}, {-1, 0}, {1.5f, 0}, {NAN, 1}, {1e30f, 0}, {0, 2}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        set_values(g, y, bad[b]);
        CHECK_OK(nerve_forward(g, -1));
        /* label 2 is a valid class for C = 3 but not a binary label */
        size_t first = b == 5 ? 4 : 0;
        for (size_t k = first; k < 5; k++) {
            CHECK_MSG(isnan(value_of(g, losses[k])), "loss %zu with labels (%g, %g) is %g", k,
                      (double)bad[b][0], (double)bad[b][1], (double)value_of(g, losses[k]));
            CHECK_OK(nerve_backward(g, losses[k]));
        }
    }
    set_values(g, y, (float[]){2, 1});
    CHECK_OK(nerve_forward(g, -1));
    for (size_t k = 0; k < 4; k++)
        CHECK(isfinite(value_of(g, losses[k])));
    nerve_graph_free(g);
}

TEST(loss_shape_and_argument_errors_name_the_operator)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_input(g, "a", 2, (int[]){1, 3});
    int b = nerve_input(g, "b", 2, (int[]){1, 4});
    int c3 = nerve_input(g, "c3", 3, (int[]){1, 3, 2});
    int y = nerve_input(g, "y", 1, (int[]){1});
    int y2 = nerve_input(g, "y2", 2, (int[]){1, 2});
    int w4 = nerve_state(g, "w4", 1, (int[]){4});
    CHECK(nerve_mse_loss(g, a, b, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "mse_loss") != NULL);
    CHECK(nerve_l1_loss(g, a, b) == NERVE_ERR_SHAPE);
    CHECK(nerve_bce_logits_loss(g, a, c3) == NERVE_ERR_SHAPE);
    CHECK(nerve_softmax_ce_loss(g, c3, y, -1, 0) == NERVE_ERR_SHAPE);
    CHECK(nerve_softmax_ce_loss(g, a, y2, -1, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "labels") != NULL);
    CHECK(nerve_softmax_ce_loss(g, a, y, w4, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "class weights") != NULL);
    CHECK(nerve_nll_loss(g, a, y, w4) == NERVE_ERR_SHAPE);
    CHECK(nerve_hinge_loss(g, a, y2) == NERVE_ERR_SHAPE);
    CHECK(nerve_softmax_ce_loss(g, a, y, -1, 1.0f) == NERVE_ERR_ARG);
    CHECK(nerve_softmax_ce_loss(g, a, y, -1, -0.1f) == NERVE_ERR_ARG);
    CHECK(nerve_softmax_ce_loss(g, a, 999, -1, 0) == NERVE_ERR_ARG);
    CHECK_OK(nerve_softmax_ce_loss(g, a, y, -1, 0));
    nerve_graph_free(g);
}

/* ---- penalties ----------------------------------------------------------------------------- */

TEST(penalties_cover_decayed_trainable_params_and_pass_gradcheck)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    int w1 = nerve_param(g, "w1", 2, (int[]){2, 3});
    int bias = nerve_param(g, "bias", 1, (int[]){3});     /* 1-D: no decay by default */
    int frozen = nerve_param(g, "frozen", 2, (int[]){2, 2});
    int nodecay = nerve_param(g, "nodecay", 2, (int[]){2, 2});
    int decayed_bias = nerve_param(g, "decayed_bias", 1, (int[]){2});
    CHECK_OK(nerve_param_set_frozen(g, frozen, 1));
    CHECK_OK(nerve_param_set_decay(g, nodecay, 0));
    CHECK_OK(nerve_param_set_decay(g, decayed_bias, 1));
    int extra[10]; /* more than one node's worth of inputs: the sum chains */
    for (int k = 0; k < 10; k++) {
        char name[32];
        snprintf(name, sizeof name, "extra%d", k);
        extra[k] = nerve_param(g, name, 2, (int[]){1, 2});
        CHECK_OK(extra[k]);
    }
    const float coef = 0.3f;
    int l1 = nerve_penalty(g, NERVE_PENALTY_L1, coef);
    int l2 = nerve_penalty(g, NERVE_PENALTY_L2, coef);
    CHECK_OK(l1);
    CHECK_OK(l2);
    CHECK(strcmp(nerve_node_op(g, l2), "penalty") == 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    int all[] = {w1, bias, frozen, nodecay, decayed_bias};
    for (int k = 0; k < 5; k++)
        test_fill_uniform(g, all[k], 0.2f, 1.5f, &r);
    for (int k = 0; k < 10; k++)
        test_fill_uniform(g, extra[k], 0.2f, 1.5f, &r);
    nerve_value(g, w1).data[1] *= -1.0f; /* |w| is not w */
    nerve_value(g, extra[9]).data[0] *= -1.0f;
    CHECK_OK(nerve_forward(g, -1));
    double abs_sum = 0, sq_sum = 0;
    int counted[12] = {w1, decayed_bias};
    for (int k = 0; k < 10; k++)
        counted[2 + k] = extra[k];
    for (int k = 0; k < 12; k++) {
        nerve_tensor t = nerve_value(g, counted[k]);
        for (size_t e = 0; e < nerve_tensor_numel(&t); e++) {
            abs_sum += fabs(t.data[e]);
            sq_sum += (double)t.data[e] * t.data[e];
        }
    }
    CHECK_NEAR(value_of(g, l1), coef * abs_sum, 1e-5);
    CHECK_NEAR(value_of(g, l2), coef / 2 * sq_sum, 1e-5);
    CHECK_OK(nerve_backward(g, l1));
    CHECK_NEAR(nerve_grad(g, w1).data[1], -coef, 1e-7);
    CHECK_NEAR(nerve_grad(g, extra[9]).data[1], coef, 1e-7);
    CHECK_NEAR(nerve_grad(g, bias).data[0], 0, 0);
    CHECK_NEAR(nerve_grad(g, nodecay).data[0], 0, 0);
    CHECK(nerve_grad(g, frozen).data == NULL);
    CHECK_OK(nerve_backward(g, l2));
    CHECK_NEAR(nerve_grad(g, extra[4]).data[1], coef * nerve_value(g, extra[4]).data[1], 1e-7);
    CHECK_OK(nerve_gradcheck(g, l1, 1e-2f, 1e-4f, 1e-2f));
    CHECK_OK(nerve_gradcheck(g, l2, 1e-2f, 1e-4f, 1e-2f));
    nerve_graph_free(g);
}

TEST(penalty_needs_a_decayed_parameter_and_a_known_kind)
{
    nerve_graph *g = nerve_graph_create();
    int b = nerve_param(g, "b", 1, (int[]){4}); /* no decay */
    int w = nerve_param(g, "w", 2, (int[]){2, 2});
    CHECK_OK(nerve_param_set_frozen(g, w, 1));
    CHECK(nerve_penalty(g, NERVE_PENALTY_L2, 0.1f) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "decay") != NULL);
    CHECK_OK(nerve_param_set_decay(g, b, 1));
    CHECK(nerve_penalty(g, 3, 0.1f) == NERVE_ERR_ARG);
    CHECK(nerve_penalty(g, NERVE_PENALTY_L1, -1.0f) == NERVE_ERR_ARG);
    CHECK(nerve_penalty(g, NERVE_PENALTY_L1, NAN) == NERVE_ERR_ARG);
    CHECK_OK(nerve_penalty(g, NERVE_PENALTY_L1, 0.1f));
    nerve_graph_free(g);
}

TEST(ce_plus_l2_penalty_through_add_passes_gradcheck)
{
    /* The course's AlexNet objective: cross-entropy plus an L2 term on the weights only. */
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int y = nerve_input(g, "y", 1, (int[]){1});
    int w = nerve_param(g, "w", 2, (int[]){4, 3});
    int b = nerve_param(g, "b", 1, (int[]){4});
    int ce = nerve_softmax_ce_loss(g, nerve_dense(g, x, w, b), y, -1, 0.0f);
    int pen = nerve_penalty(g, NERVE_PENALTY_L2, 0.05f);
    int total = nerve_add(g, ce, pen);
    CHECK_OK(total);
    CHECK_OK(nerve_graph_compile(g, 3));
    test_fill_uniform(g, x, -1.0f, 1.0f, &r);
    test_fill_uniform(g, w, -1.0f, 1.0f, &r);
    test_fill_uniform(g, b, -1.0f, 1.0f, &r);
    set_values(g, y, (float[]){3, 0, 2});
    CHECK_OK(nerve_forward(g, -1));
    double sq = 0;
    const float *wv = nerve_value(g, w).data;
    for (int k = 0; k < 12; k++)
        sq += (double)wv[k] * wv[k];
    CHECK_NEAR(value_of(g, pen), 0.025 * sq, 1e-6);
    CHECK_NEAR(value_of(g, total), value_of(g, ce) + value_of(g, pen), 1e-6);
    CHECK_OK(nerve_gradcheck(g, total, 1e-2f, 1e-4f, 1e-2f));
    nerve_graph_free(g);
}
