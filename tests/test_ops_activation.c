/* Activation family: every nerve_act_type, PReLU, softmax and log-softmax.
 * Forward values against math.h (in double) and hand-computed numbers, derivatives at
 * points, the course's test vectors, and finite-difference gradient checks. */
#include "test.h"

#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* Values in +-[0.2, 2]: clear of the kinks at 0 (and of hard sigmoid's at +-2.5). */
static void fill_away_from_zero(nerve_graph *g, int id, nerve_rng *r)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++) {
        float m = 0.2f + 1.8f * nerve_rng_uniform(r);
        t.data[k] = (nerve_rng_u32(r) & 1) ? m : -m;
    }
}

/* The reference definitions, in double, written from the course's table. */
static double ref_act(nerve_act a, double u)
{
    switch (a.type) {
    case NERVE_ACT_IDENTITY:     return u;
    case NERVE_ACT_STEP:         return u >= 0 ? 1 : 0;
    case NERVE_ACT_SIGMOID:      return 1 / (1 + exp(-a.alpha * u));
    case NERVE_ACT_HARD_SIGMOID: return fmin(fmax(a.alpha * u + a.beta, 0), 1);
    case NERVE_ACT_TANH:         return tanh(u);
    case NERVE_ACT_RELU:         return u > 0 ? u : 0;
    case NERVE_ACT_LEAKY_RELU:   return fmax(u, a.alpha * u);
    case NERVE_ACT_ELU:          return u >= 0 ? u : a.alpha * (exp(u) - 1);
    case NERVE_ACT_SELU:         return a.beta * (u > 0 ? u : a.alpha * exp(u) - a.alpha);
    case NERVE_ACT_SOFTPLUS:     return log(1 + exp(u));
    case NERVE_ACT_SOFTSIGN:     return u / (1 + fabs(u));
    case NERVE_ACT_RELU6:        return fmin(fmax(0, u), a.alpha);
    case NERVE_ACT_RAMP:         return u * (u > 0) + a.alpha * u; /* darknet's ramp */
    default:                     return NAN;
    }
}

/* ---- names and parsing ----------------------------------------------------------------- */

TEST(act_parse_accepts_darknet_names_and_aliases)
{
    static const struct {
        const char *name;
        nerve_act_type type;
    } cases[] = {
        {"linear", NERVE_ACT_IDENTITY},   {"identity", NERVE_ACT_IDENTITY},
        {"step", NERVE_ACT_STEP},         {"threshold", NERVE_ACT_STEP},
        {"logistic", NERVE_ACT_SIGMOID},  {"sigmoid", NERVE_ACT_SIGMOID},
        {"hardsigmoid", NERVE_ACT_HARD_SIGMOID}, {"hard_sigmoid", NERVE_ACT_HARD_SIGMOID},
        {"tanh", NERVE_ACT_TANH},         {"relu", NERVE_ACT_RELU},
        {"leaky", NERVE_ACT_LEAKY_RELU},  {"leaky_relu", NERVE_ACT_LEAKY_RELU},
        {"elu", NERVE_ACT_ELU},           {"selu", NERVE_ACT_SELU},
        {"softplus", NERVE_ACT_SOFTPLUS}, {"softsign", NERVE_ACT_SOFTSIGN},
        {"relu6", NERVE_ACT_RELU6},       {"ReLU", NERVE_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nerve_act a;
        CHECK_OK(nerve_act_parse(cases[i].name, &a));
        CHECK_MSG(a.type == cases[i].type, "'%s' parsed as type %d", cases[i].name, (int)a.type);
    }
    nerve_act a;
    CHECK_OK(nerve_act_parse("leaky", &a)); /* darknet's slope */
    CHECK_NEAR(a.alpha, 0.1, 1e-7);
    CHECK_OK(nerve_act_parse("leaky_relu", &a)); /* the course's default */
    CHECK_NEAR(a.alpha, 0.01, 1e-7);
    CHECK_OK(nerve_act_parse("hard_sigmoid", &a));
    CHECK_NEAR(a.alpha, 0.2, 1e-7);
    CHECK_NEAR(a.beta, 0.5, 1e-7);
}

TEST(act_parse_rejects_unknown_names_listing_the_valid_ones)
{
    nerve_act a;
    CHECK(nerve_act_parse("swish", &a) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "swish") != NULL);
    CHECK(strstr(nerve_last_error(), "logistic") != NULL);
    CHECK(strstr(nerve_last_error(), "relu6") != NULL);
    CHECK(nerve_act_parse(NULL, &a) == NERVE_ERR_ARG);
    CHECK(nerve_act_parse("", &a) == NERVE_ERR_ARG);
}

TEST(act_names_parse_back_to_the_defaults)
{
    for (int t = 0; t < NERVE_ACT_COUNT; t++) {
        nerve_act a, d = nerve_act_default((nerve_act_type)t);
        const char *name = nerve_act_name((nerve_act_type)t);
        CHECK_OK(nerve_act_parse(name, &a));
        CHECK_MSG(a.type == d.type && a.alpha == d.alpha && a.beta == d.beta,
                  "'%s' does not parse back to type %d's defaults", name, t);
    }
    nerve_act selu = nerve_act_default(NERVE_ACT_SELU);
    CHECK(selu.alpha == 1.6732632423543772f && selu.beta == 1.0507009873554805f);
    CHECK(nerve_act_default(NERVE_ACT_RELU6).alpha == 6.0f);
    CHECK(nerve_act_default(NERVE_ACT_SIGMOID).alpha == 1.0f);
    CHECK(nerve_act_default(NERVE_ACT_ELU).alpha == 1.0f);
    CHECK(strcmp(nerve_act_name(NERVE_ACT_COUNT), "unknown") == 0);
}

TEST(activation_rejects_an_unknown_type)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    nerve_act bad = {NERVE_ACT_COUNT, 0, 0};
    CHECK(nerve_activation(g, x, bad) == NERVE_ERR_ARG);
    nerve_act nan_alpha = {NERVE_ACT_LEAKY_RELU, NAN, 0};
    CHECK(nerve_activation(g, x, nan_alpha) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- forward values -------------------------------------------------------------------- */

static const float points[] = {-3.0f, -1.2f, -0.3f, 0.0f, 0.4f, 1.5f, 4.0f, 7.0f};
#define N_POINTS ((int)(sizeof points / sizeof points[0]))

/* Runs act on the points as one batch; out gets N_POINTS values. */
static int run_act(nerve_act act, float *out)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, N_POINTS});
    int y = nerve_activation(g, x, act);
    int st = y < 0 ? y : nerve_graph_compile(g, 1);
    if (st == NERVE_OK) {
        memcpy(nerve_value(g, x).data, points, sizeof points);
        st = nerve_forward(g, y);
        memcpy(out, nerve_value(g, y).data, sizeof points);
    }
    nerve_graph_free(g);
    return st;
}

TEST(every_activation_matches_its_definition)
{
    for (int t = 0; t < NERVE_ACT_COUNT; t++) {
        nerve_act a = nerve_act_default((nerve_act_type)t);
        float got[N_POINTS];
        CHECK_OK(run_act(a, got));
        for (int i = 0; i < N_POINTS; i++) {
            double want = ref_act(a, points[i]);
            CHECK_MSG(fabs(got[i] - want) <= 1e-6 * fmax(1, fabs(want)), "%s(%g) = %.9g, expected %.9g",
                      nerve_act_name(a.type), points[i], got[i], want);
        }
    }
}

TEST(activation_values_by_hand)
{
    static const struct {
        nerve_act_type type;
        float u;
        double want;
    } cases[] = {
        {NERVE_ACT_STEP, 0.0f, 1.0},          /* step(0) = 1 */
        {NERVE_ACT_STEP, -1e-6f, 0.0},
        {NERVE_ACT_SIGMOID, 0.0f, 0.5},
        {NERVE_ACT_HARD_SIGMOID, 1.0f, 0.7},  /* 0.2 * 1 + 0.5 */
        {NERVE_ACT_HARD_SIGMOID, 3.0f, 1.0},
        {NERVE_ACT_HARD_SIGMOID, -3.0f, 0.0},
        {NERVE_ACT_TANH, 0.4f, 0.3799489622552249},
        {NERVE_ACT_RELU, -2.0f, 0.0},
        {NERVE_ACT_LEAKY_RELU, -3.0f, -0.03},
        {NERVE_ACT_ELU, -1.2f, -0.6988057880877979},
        {NERVE_ACT_SELU, 1.5f, 1.5760514810332207},
        {NERVE_ACT_SELU, -1.2f, -1.2285699954174891},
        {NERVE_ACT_SOFTPLUS, 0.0f, 0.6931471805599453},
        {NERVE_ACT_SOFTPLUS, 1.5f, 1.7014132779827524},
        {NERVE_ACT_SOFTSIGN, 4.0f, 0.8},
        {NERVE_ACT_SOFTSIGN, -1.0f, -0.5},
        {NERVE_ACT_RELU6, 7.0f, 6.0},
        {NERVE_ACT_RELU6, 5.5f, 5.5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_input(g, "x", 2, (int[]){1, 1});
        int y = nerve_activation(g, x, nerve_act_default(cases[i].type));
        CHECK_OK(nerve_graph_compile(g, 1));
        nerve_value(g, x).data[0] = cases[i].u;
        CHECK_OK(nerve_forward(g, y));
        CHECK_MSG(fabs(nerve_value(g, y).data[0] - cases[i].want) <= 1e-6, "%s(%g) = %.9g, expected %.9g",
                  nerve_act_name(cases[i].type), cases[i].u, nerve_value(g, y).data[0], cases[i].want);
        nerve_graph_free(g);
    }
}

TEST(sigmoid_and_softplus_are_stable_for_large_inputs)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 4});
    int s = nerve_activation(g, x, nerve_act_default(NERVE_ACT_SIGMOID));
    int p = nerve_activation(g, x, nerve_act_default(NERVE_ACT_SOFTPLUS));
    CHECK_OK(nerve_graph_compile(g, 1));
    const float xv[] = {-200.0f, -100.0f, 100.0f, 200.0f};
    memcpy(nerve_value(g, x).data, xv, sizeof xv);
    CHECK_OK(nerve_forward(g, -1));
    const float *sv = nerve_value(g, s).data, *pv = nerve_value(g, p).data;
    for (int i = 0; i < 4; i++)
        CHECK(isfinite(sv[i]) && isfinite(pv[i]) && sv[i] >= 0 && pv[i] >= 0);
    CHECK_NEAR(sv[0], 0.0, 1e-30);
    CHECK_NEAR(sv[3], 1.0, 0);
    CHECK_NEAR(pv[2], 100.0, 1e-5);
    CHECK_NEAR(pv[3], 200.0, 1e-5);
    CHECK_NEAR(pv[1], 0.0, 1e-30);
    nerve_graph_free(g);
}

/* ---- derivatives ------------------------------------------------------------------------ */

/* phi'(u) through the graph: a one-element y seeded with dy = 1. */
static int act_grad_at(nerve_act act, float u, float *dydu)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 1});
    int y = nerve_activation(g, x, act);
    int st = y < 0 ? y : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, 1);
    if (st == NERVE_OK) {
        nerve_value(g, x).data[0] = u;
        nerve_forward(g, y);
        st = nerve_backward(g, y);
        *dydu = nerve_grad(g, x).data[0];
    }
    nerve_graph_free(g);
    return st;
}

TEST(sigmoid_derivative_is_lambda_s_one_minus_s)
{
    float d;
    /* Course, sigmoid saturation demo: sigma'(1.5) = 0.149, sigma'(4) = 0.0177. */
    CHECK_OK(act_grad_at(nerve_act_default(NERVE_ACT_SIGMOID), 1.5f, &d));
    CHECK_NEAR(d, 0.149, 5e-4);
    CHECK_NEAR(d, 0.14914645207033286, 1e-6);
    CHECK_OK(act_grad_at(nerve_act_default(NERVE_ACT_SIGMOID), 4.0f, &d));
    CHECK_NEAR(d, 0.0177, 1e-4);
    CHECK_NEAR(d, 0.017662706213291107, 1e-6);
    /* Slope lambda = 2: derivative lambda S (1 - S) with S = 1/(1+e^{-2u}). */
    nerve_act steep = {NERVE_ACT_SIGMOID, 2.0f, 0.0f};
    for (float u = -2.0f; u <= 2.0f; u += 0.5f) {
        double s = 1.0 / (1.0 + exp(-2.0 * u));
        CHECK_OK(act_grad_at(steep, u, &d));
        CHECK_NEAR(d, 2.0 * s * (1.0 - s), 1e-6);
    }
}

TEST(derivatives_at_points_and_kinks)
{
    static const struct {
        nerve_act_type type;
        float u;
        double want;
    } cases[] = {
        {NERVE_ACT_RELU, 0.0f, 0.0}, /* ReLU'(0) = 0 */
        {NERVE_ACT_RELU, 0.5f, 1.0},
        {NERVE_ACT_LEAKY_RELU, -1.0f, 0.01},
        {NERVE_ACT_TANH, 0.4f, 1 - 0.3799489622552249 * 0.3799489622552249},
        {NERVE_ACT_HARD_SIGMOID, 1.0f, 0.2},
        {NERVE_ACT_HARD_SIGMOID, 3.0f, 0.0},
        {NERVE_ACT_ELU, -1.2f, 0.30119421191220214}, /* e^-1.2 */
        {NERVE_ACT_SELU, -1.2f, 1.0507009873554805 * 1.6732632423543772 * 0.30119421191220214},
        {NERVE_ACT_SELU, 2.0f, 1.0507009873554805},
        {NERVE_ACT_SOFTPLUS, 0.0f, 0.5},
        {NERVE_ACT_SOFTSIGN, 1.0f, 0.25},
        {NERVE_ACT_RELU6, 7.0f, 0.0},
        {NERVE_ACT_RELU6, 3.0f, 1.0},
        {NERVE_ACT_STEP, 0.5f, 0.0},
        {NERVE_ACT_IDENTITY, -4.0f, 1.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float d;
        CHECK_OK(act_grad_at(nerve_act_default(cases[i].type), cases[i].u, &d));
        CHECK_MSG(fabs(d - cases[i].want) <= 1e-6, "%s'(%g) = %.9g, expected %.9g",
                  nerve_act_name(cases[i].type), cases[i].u, d, cases[i].want);
    }
}

TEST(every_activation_passes_the_gradient_check)
{
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    for (int t = 0; t < NERVE_ACT_COUNT; t++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_input(g, "x", 2, (int[]){1, 4});
        int y = nerve_activation(g, x, nerve_act_default((nerve_act_type)t));
        int w, loss = test_scalar_loss(g, y, &w);
        CHECK_OK(loss);
        CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
        CHECK_OK(nerve_graph_compile(g, 3));
        fill_away_from_zero(g, x, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "%s: %s", nerve_act_name((nerve_act_type)t), nerve_last_error());
        nerve_graph_free(g);
    }
}

TEST(step_gives_zero_gradient)
{
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 5});
    int y = nerve_activation(g, x, nerve_act_default(NERVE_ACT_STEP));
    int w, loss = test_scalar_loss(g, y, &w);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    test_fill_uniform(g, x, -1, 1, &r);
    test_fill_uniform(g, w, 0.5f, 1, &r);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    const float *xv = nerve_value(g, x).data, *yv = nerve_value(g, y).data;
    for (int i = 0; i < 10; i++) {
        CHECK(yv[i] == (xv[i] >= 0 ? 1.0f : 0.0f));
        CHECK(nerve_grad(g, x).data[i] == 0.0f);
    }
    CHECK(nerve_value(g, loss).data[0] > 0); /* the loss does depend on y */
    nerve_graph_free(g);
}

/* ---- prelu ------------------------------------------------------------------------------- */

TEST(prelu_forward_shared_and_per_channel)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 3, (int[]){1, 3, 2});
    int a3 = nerve_param(g, "a3", 1, (int[]){3});
    int a1 = nerve_param(g, "a1", 1, (int[]){1});
    int yc = nerve_prelu(g, x, a3), ys = nerve_prelu(g, x, a1);
    CHECK_OK(yc);
    CHECK_OK(ys);
    CHECK_OK(nerve_graph_compile(g, 1));
    const float xv[] = {-1, 2, -2, 3, -4, 0}, a3v[] = {0.1f, 0.2f, 0.3f};
    memcpy(nerve_value(g, x).data, xv, sizeof xv);
    memcpy(nerve_value(g, a3).data, a3v, sizeof a3v);
    nerve_value(g, a1).data[0] = 0.25f;
    CHECK_OK(nerve_forward(g, -1));
    const float want_c[] = {-0.1f, 2, -0.4f, 3, -1.2f, 0}, want_s[] = {-0.25f, 2, -0.5f, 3, -1, 0};
    CHECK_ARRAY_NEAR(nerve_value(g, yc).data, want_c, 6, 1e-6);
    CHECK_ARRAY_NEAR(nerve_value(g, ys).data, want_s, 6, 1e-6);
    nerve_graph_free(g);
}

TEST(prelu_rejects_a_slope_of_the_wrong_size)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int a = nerve_param(g, "a", 1, (int[]){4});
    CHECK(nerve_prelu(g, x, a) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "prelu") != NULL);
    nerve_graph_free(g);
}

static int prelu_gradcheck(int ndim, const int *dims, int slope_n)
{
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", ndim, dims);
    int a = nerve_param(g, "slope", 1, (int[]){slope_n});
    int y = nerve_prelu(g, x, a);
    int w, loss = y < 0 ? y : test_scalar_loss(g, y, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, 2);
    if (st == NERVE_OK) {
        fill_away_from_zero(g, x, &r);
        test_fill_uniform(g, a, 0.05f, 0.5f, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
    }
    nerve_graph_free(g);
    return st;
}

TEST(prelu_gradients_for_shared_and_per_channel_slopes)
{
    CHECK_OK(prelu_gradcheck(4, (int[]){1, 3, 2, 2}, 3)); /* per channel, 4-D */
    CHECK_OK(prelu_gradcheck(2, (int[]){1, 5}, 5));       /* per channel, 2-D */
    CHECK_OK(prelu_gradcheck(2, (int[]){1, 5}, 1));       /* shared */
    CHECK_OK(prelu_gradcheck(3, (int[]){1, 2, 3}, 1));
}

/* ---- softmax and log-softmax ----------------------------------------------------------- */

/* Course worked example: three rows of logits and their softmax. */
static const float course_logits[9] = {5, 4, 2, 4, 2, 8, 4, 4, 1};
static const float course_probs[9] = {0.7054f, 0.2595f, 0.0351f, 0.0179f, 0.0024f,
                                      0.9796f, 0.4879f, 0.4879f, 0.0243f};

TEST(softmax_course_vectors)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int p = nerve_softmax(g, x, 1), lp = nerve_log_softmax(g, x, -1);
    CHECK_OK(nerve_graph_compile(g, 3));
    memcpy(nerve_value(g, x).data, course_logits, sizeof course_logits);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_ARRAY_NEAR(nerve_value(g, p).data, course_probs, 9, 1e-4);
    for (int i = 0; i < 9; i++)
        CHECK_NEAR(exp(nerve_value(g, lp).data[i]), course_probs[i], 1e-4);
    /* Exactly: (5,4,2) -> e^0, e^-1, e^-3 over their sum. */
    double z = 1 + exp(-1.0) + exp(-3.0);
    CHECK_NEAR(nerve_value(g, p).data[0], 1 / z, 1e-6);
    CHECK_NEAR(nerve_value(g, lp).data[2], -3 - log(z), 1e-6);
    nerve_graph_free(g);
}

TEST(softmax_along_axis_zero_reads_columns)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int p = nerve_softmax(g, x, 0);
    CHECK_OK(nerve_graph_compile(g, 3));
    float xt[9], want[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            xt[j * 3 + i] = course_logits[i * 3 + j];
            want[j * 3 + i] = course_probs[i * 3 + j];
        }
    memcpy(nerve_value(g, x).data, xt, sizeof xt);
    CHECK_OK(nerve_forward(g, p));
    CHECK_ARRAY_NEAR(nerve_value(g, p).data, want, 9, 1e-4);
    nerve_graph_free(g);
}

TEST(softmax_is_stable_and_sums_to_one_on_a_middle_axis)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 3, (int[]){1, 3, 2});
    int p = nerve_softmax(g, x, 1), lp = nerve_log_softmax(g, x, 1);
    CHECK_OK(nerve_graph_compile(g, 1));
    const float xv[] = {1000, -1000, 1001, 0, 1002, -999}; /* [c][k] */
    memcpy(nerve_value(g, x).data, xv, sizeof xv);
    CHECK_OK(nerve_forward(g, -1));
    const float *pv = nerve_value(g, p).data, *lv = nerve_value(g, lp).data;
    double z = 1 + exp(1.0) + exp(2.0); /* column 0 is softmax(0, 1, 2) */
    CHECK_NEAR(pv[0], 1 / z, 1e-6);
    CHECK_NEAR(pv[4], exp(2.0) / z, 1e-6);
    CHECK_NEAR(lv[0], -log(z), 1e-5);
    CHECK_NEAR(pv[1] + pv[3] + pv[5], 1.0, 1e-6);
    CHECK_NEAR(lv[1], -1000.0, 1e-3); /* column 1: log-softmax(-1000, 0, -999) */
    CHECK(isfinite(lv[1]) && pv[1] >= 0);
    nerve_graph_free(g);
}

TEST(softmax_rejects_an_axis_out_of_range)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    CHECK(nerve_softmax(g, x, 2) == NERVE_ERR_SHAPE);
    CHECK(nerve_log_softmax(g, x, -3) == NERVE_ERR_SHAPE);
    nerve_graph_free(g);
}

static int softmax_gradcheck(int axis, int log_space)
{
    nerve_rng r;
    nerve_rng_seed(&r, 5 + (uint64_t)axis);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 3, (int[]){1, 3, 4});
    int y = log_space ? nerve_log_softmax(g, x, axis) : nerve_softmax(g, x, axis);
    int w, loss = y < 0 ? y : test_scalar_loss(g, y, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, 2);
    if (st == NERVE_OK) {
        test_fill_uniform(g, x, -2, 2, &r);
        test_fill_uniform(g, w, -1, 1, &r);
        st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
    }
    nerve_graph_free(g);
    return st;
}

TEST(softmax_and_log_softmax_gradients_along_every_axis)
{
    for (int axis = -1; axis < 3; axis++) {
        int st = softmax_gradcheck(axis, 0);
        CHECK_MSG(st == NERVE_OK, "softmax axis %d: %s", axis, nerve_last_error());
        st = softmax_gradcheck(axis, 1);
        CHECK_MSG(st == NERVE_OK, "log_softmax axis %d: %s", axis, nerve_last_error());
    }
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

TEST(activation_operators_add_into_a_shared_input_gradient)
{
    nerve_rng r;
    nerve_rng_seed(&r, 31);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int a = nerve_param(g, "slope", 1, (int[]){3});
    int ys[4] = {nerve_activation(g, x, nerve_act_default(NERVE_ACT_TANH)), nerve_prelu(g, x, a),
                 nerve_softmax(g, x, 1), nerve_log_softmax(g, x, 1)};
    int losses[4], w1[4], w2[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(ys[i]);
        losses[i] = two_path_loss(g, x, ys[i], &w1[i], &w2[i]);
        CHECK_OK(losses[i]);
    }
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    fill_away_from_zero(g, x, &r);
    test_fill_uniform(g, a, 0.1f, 0.3f, &r);
    for (int i = 0; i < 4; i++) {
        test_fill_uniform(g, w1[i], -1, 1, &r);
        test_fill_uniform(g, w2[i], -1, 1, &r);
    }
    for (int i = 0; i < 4; i++) {
        int st = nerve_gradcheck(g, losses[i], 1e-2f, 2e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "%s: %s", nerve_node_op(g, ys[i]), nerve_last_error());
    }
    nerve_graph_free(g);
}

/* ---- large tensors: threads, and derivatives taken from the output ----------------------- */

/* phi'(u) in double, from the course's table (the library takes it from y where it can). */
static double ref_act_derivative(nerve_act a, double u)
{
    switch (a.type) {
    case NERVE_ACT_STEP:         return 0;
    case NERVE_ACT_SIGMOID: {
        double s = 1 / (1 + exp(-a.alpha * u));
        return a.alpha * s * (1 - s);
    }
    case NERVE_ACT_HARD_SIGMOID: {
        double v = a.alpha * u + a.beta;
        return v > 0 && v < 1 ? a.alpha : 0;
    }
    case NERVE_ACT_TANH:         return 1 - tanh(u) * tanh(u);
    case NERVE_ACT_RELU:         return u > 0 ? 1 : 0;
    case NERVE_ACT_LEAKY_RELU:   return u > 0 ? 1 : a.alpha;
    case NERVE_ACT_ELU:          return u >= 0 ? 1 : a.alpha * exp(u);
    case NERVE_ACT_SELU:         return a.beta * (u > 0 ? 1 : a.alpha * exp(u));
    case NERVE_ACT_SOFTPLUS:     return 1 / (1 + exp(-u));
    case NERVE_ACT_SOFTSIGN:     return 1 / ((1 + fabs(u)) * (1 + fabs(u)));
    case NERVE_ACT_RELU6:        return u > 0 && u < a.alpha ? 1 : 0;
    case NERVE_ACT_RAMP:         return (u > 0) + a.alpha;
    default:                     return 1;
    }
}

enum { BIG_N = 4, BIG_F = 10000 }; /* 40000 elements: two threads get one half each */

/* y = act(x) and dx for loss = sum(y * w) (so dy = w) on x [BIG_N, BIG_F], with the given
 * thread count. xv, wv: the inputs; y, dx: BIG_N * BIG_F floats out. */
static int act_run_big(nerve_act act, int threads, const float *xv, const float *wv, float *y,
                       float *dx)
{
    size_t count = (size_t)BIG_N * BIG_F;
    nerve_set_threads(threads);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, BIG_F});
    int w = nerve_input(g, "w", 2, (int[]){1, BIG_F});
    int a = nerve_activation(g, x, act);
    int loss = a < 0 ? a : nerve_sum(g, nerve_mul(g, a, w), NERVE_AXIS_ALL, 0);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, BIG_N);
    if (st == NERVE_OK) {
        memcpy(nerve_value(g, x).data, xv, count * sizeof(float));
        memcpy(nerve_value(g, w).data, wv, count * sizeof(float));
        st = nerve_forward(g, loss);
        memcpy(y, nerve_value(g, a).data, count * sizeof(float));
    }
    if (st == NERVE_OK)
        st = nerve_backward(g, loss);
    if (st == NERVE_OK)
        memcpy(dx, nerve_grad(g, x).data, count * sizeof(float));
    nerve_graph_free(g);
    nerve_set_threads(0);
    return st;
}

TEST(activations_on_two_threads_match_one_thread_bit_for_bit_and_the_reference)
{
    size_t count = (size_t)BIG_N * BIG_F;
    static float xv[BIG_N * BIG_F], wv[BIG_N * BIG_F], y1[BIG_N * BIG_F], d1[BIG_N * BIG_F],
        y2[BIG_N * BIG_F], d2[BIG_N * BIG_F];
    nerve_rng r;
    nerve_rng_seed(&r, 21);
    for (size_t i = 0; i < count; i++) { /* +-[0.2, 2]: clear of every kink */
        float m = 0.2f + 1.8f * nerve_rng_uniform(&r);
        xv[i] = (nerve_rng_u32(&r) & 1) ? m : -m;
        wv[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    }
    /* Every type with its defaults, then parameters under which y no longer determines
     * phi'(u) (the backward reads u) or that move the kinks. */
    nerve_act acts[NERVE_ACT_COUNT + 4];
    int n_acts = 0;
    for (int t = 0; t < NERVE_ACT_COUNT; t++)
        acts[n_acts++] = nerve_act_default((nerve_act_type)t);
    acts[n_acts++] = (nerve_act){NERVE_ACT_LEAKY_RELU, -0.5f, 0.0f};
    acts[n_acts++] = (nerve_act){NERVE_ACT_ELU, 0.5f, 0.0f};
    acts[n_acts++] = (nerve_act){NERVE_ACT_ELU, -0.7f, 0.0f};
    acts[n_acts++] = (nerve_act){NERVE_ACT_SELU, 1.2f, -0.8f};
    for (int k = 0; k < n_acts; k++) {
        nerve_act a = acts[k];
        CHECK_OK(act_run_big(a, 1, xv, wv, y1, d1));
        CHECK_OK(act_run_big(a, 2, xv, wv, y2, d2));
        CHECK_MSG(memcmp(y1, y2, sizeof y1) == 0, "%s: forward differs across threads",
                  nerve_act_name(a.type));
        CHECK_MSG(memcmp(d1, d2, sizeof d1) == 0, "%s: backward differs across threads",
                  nerve_act_name(a.type));
        for (size_t i = 0; i < count; i++) {
            double want_y = ref_act(a, xv[i]), want_d = wv[i] * ref_act_derivative(a, xv[i]);
            CHECK_MSG(fabs(y1[i] - want_y) <= 1e-6 * fmax(1, fabs(want_y)),
                      "%s(%g, alpha %g) = %.9g, expected %.9g", nerve_act_name(a.type), xv[i],
                      a.alpha, y1[i], want_y);
            CHECK_MSG(fabs(d1[i] - want_d) <= 1e-6 * fmax(1, fabs(want_d)),
                      "%s'(%g, alpha %g) * %g = %.9g, expected %.9g", nerve_act_name(a.type),
                      xv[i], a.alpha, wv[i], d1[i], want_d);
        }
    }
}

TEST(derivatives_from_the_output_hold_at_zero_and_in_the_tails)
{
    /* The backward reads y = phi(u): check the points where that is least obvious. In ELU's
     * tail phi' = y + alpha is accurate to y's resolution (absolute, about 1e-7), not
     * relatively: 2e-9 at u = -20 comes out as 0. Softplus keeps relative accuracy. */
    static const struct {
        nerve_act_type type;
        float u;
        double want;
    } cases[] = {
        {NERVE_ACT_ELU, 0.0f, 1.0},         /* y = 0 is the linear side */
        {NERVE_ACT_ELU, -20.0f, 2.061153622438558e-09},
        {NERVE_ACT_LEAKY_RELU, 0.0f, 0.01}, /* the flat side at the kink */
        {NERVE_ACT_SELU, 0.0f, 1.0507009873554805 * 1.6732632423543772},
        {NERVE_ACT_SOFTPLUS, -30.0f, 9.357622968839299e-14},
        {NERVE_ACT_SOFTPLUS, 30.0f, 1.0},
        {NERVE_ACT_SOFTSIGN, -3.0f, 0.0625},
        {NERVE_ACT_RELU6, 6.0f, 0.0},
        {NERVE_ACT_RELU6, 0.0f, 0.0},
        {NERVE_ACT_HARD_SIGMOID, -2.5f, 0.0},
        {NERVE_ACT_HARD_SIGMOID, 2.0f, 0.2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float d;
        CHECK_OK(act_grad_at(nerve_act_default(cases[i].type), cases[i].u, &d));
        double tol = cases[i].type == NERVE_ACT_SOFTPLUS ? 1e-6 * fabs(cases[i].want) : 1e-7;
        CHECK_MSG(fabs(d - cases[i].want) <= tol, "%s'(%g) = %.9g, expected %.9g",
                  nerve_act_name(cases[i].type), cases[i].u, d, cases[i].want);
    }
}
