/* Initialisers (fans, names, statistics of large fills, reproducibility) and the layer
 * builders (parameter names, shapes, initial values, decay flags, outputs). */
#include "test.h"

#include <stdlib.h>
#include <string.h>

TEST(fans_follow_out_in_kernel_layout)
{
    int in, out;
    nerve_fans(4, (int[]){4, 3, 5, 5}, &in, &out); /* conv [out, in, kh, kw] */
    CHECK(in == 3 * 25 && out == 4 * 25);
    nerve_fans(2, (int[]){6, 7}, &in, &out); /* dense [out, in] */
    CHECK(in == 7 && out == 6);
    nerve_fans(1, (int[]){10}, &in, &out);
    CHECK(in == 10 && out == 10);
    nerve_fans(3, (int[]){8, 2, 3}, &in, &out); /* conv1d */
    CHECK(in == 6 && out == 24);
}

TEST(initialiser_names_parse)
{
    const struct { const char *name; nerve_init_type type; } cases[] = {
        {"zeros", NERVE_INIT_ZEROS},
        {"constant", NERVE_INIT_CONSTANT},
        {"uniform", NERVE_INIT_UNIFORM},
        {"normal", NERVE_INIT_NORMAL},
        {"glorot", NERVE_INIT_GLOROT_UNIFORM},
        {"xavier", NERVE_INIT_GLOROT_UNIFORM},
        {"glorot_normal", NERVE_INIT_GLOROT_NORMAL},
        {"xavier_normal", NERVE_INIT_GLOROT_NORMAL},
        {"he", NERVE_INIT_HE_NORMAL},
        {"kaiming", NERVE_INIT_HE_NORMAL},
        {"he_uniform", NERVE_INIT_HE_UNIFORM},
        {"lecun", NERVE_INIT_LECUN_NORMAL},
        {"lecun_uniform", NERVE_INIT_LECUN_UNIFORM},
        {"He", NERVE_INIT_HE_NORMAL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nerve_init it;
        CHECK_OK(nerve_init_parse(cases[i].name, &it));
        CHECK_MSG(it.type == cases[i].type, "%s", cases[i].name);
    }
    nerve_init it;
    CHECK(nerve_init_parse("orthogonal", &it) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "orthogonal") != NULL);
}

/* Sample statistics of a fill. */
typedef struct fill_stats {
    double mean, var, min, max, within_1sd; /* fraction with |x − mean| < sd */
} fill_stats;

static fill_stats stats_of(const float *x, size_t n)
{
    fill_stats s = {0, 0, x[0], x[0], 0};
    for (size_t i = 0; i < n; i++) {
        s.mean += x[i];
        s.min = fmin(s.min, x[i]);
        s.max = fmax(s.max, x[i]);
    }
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        s.var += (x[i] - s.mean) * (x[i] - s.mean);
    s.var /= (double)n;
    double sd = sqrt(s.var);
    for (size_t i = 0; i < n; i++)
        s.within_1sd += fabs(x[i] - s.mean) < sd;
    s.within_1sd /= (double)n;
    return s;
}

/* A [256, 512] weight: fan_in 512, fan_out 256; 131072 samples. */
#define FAN_OUT 256
#define FAN_IN 512
#define N_FILL (FAN_OUT * FAN_IN)

static fill_stats fill_and_measure(nerve_init_type type, float a, float b, float *buf)
{
    nerve_rng r;
    nerve_rng_seed(&r, 2024);
    nerve_init it = {type, a, b};
    nerve_init_fill(buf, N_FILL, 2, (int[]){FAN_OUT, FAN_IN}, it, &r);
    return stats_of(buf, N_FILL);
}

TEST(uniform_initialisers_have_the_formula_bounds_and_variance)
{
    float *buf = malloc(N_FILL * sizeof(float));
    CHECK(buf);
    const struct { nerve_init_type t; double bound; } cases[] = {
        {NERVE_INIT_GLOROT_UNIFORM, sqrt(6.0 / (FAN_IN + FAN_OUT))},
        {NERVE_INIT_HE_UNIFORM, sqrt(6.0 / FAN_IN)},
        {NERVE_INIT_LECUN_UNIFORM, sqrt(3.0 / FAN_IN)}};
    for (size_t i = 0; i < 3; i++) {
        double s = cases[i].bound;
        fill_stats st = fill_and_measure(cases[i].t, 0, 0, buf);
        /* U(−s, s): every value inside, the extremes reached, mean 0, variance s²/3 */
        CHECK(st.min >= -s && st.max <= s);
        CHECK(st.min < -0.999 * s && st.max > 0.999 * s);
        CHECK_NEAR(st.mean, 0.0, 5 * s / sqrt(3.0 * N_FILL));
        CHECK_NEAR(st.var / (s * s / 3.0), 1.0, 0.02);
    }
    fill_stats st = fill_and_measure(NERVE_INIT_UNIFORM, 2.0f, 5.0f, buf); /* U(2, 5) */
    CHECK(st.min >= 2.0 && st.max <= 5.0);
    CHECK_NEAR(st.mean, 3.5, 0.01);
    CHECK_NEAR(st.var, 9.0 / 12.0, 0.01);
    free(buf);
}

TEST(normal_initialisers_have_the_formula_variance)
{
    float *buf = malloc(N_FILL * sizeof(float));
    CHECK(buf);
    const struct { nerve_init_type t; double var; } cases[] = {
        {NERVE_INIT_GLOROT_NORMAL, 2.0 / (FAN_IN + FAN_OUT)},
        {NERVE_INIT_HE_NORMAL, 2.0 / FAN_IN},
        {NERVE_INIT_LECUN_NORMAL, 1.0 / FAN_IN}};
    for (size_t i = 0; i < 3; i++) {
        fill_stats st = fill_and_measure(cases[i].t, 0, 0, buf);
        CHECK_NEAR(st.mean, 0.0, 5 * sqrt(cases[i].var / N_FILL));
        CHECK_NEAR(st.var / cases[i].var, 1.0, 0.02); /* sampling sd of the ratio ≈ 0.004 */
        CHECK_NEAR(st.within_1sd, 0.6827, 0.006);     /* Gaussian, not uniform (0.577) */
    }
    fill_stats st = fill_and_measure(NERVE_INIT_NORMAL, 1.0f, 0.5f, buf); /* N(1, 0.25) */
    CHECK_NEAR(st.mean, 1.0, 0.01);
    CHECK_NEAR(st.var, 0.25, 0.005);
    free(buf);
}

TEST(constant_fills_and_seeds_reproduce_bits)
{
    float a[64], b[64];
    nerve_init_fill(a, 64, 1, (int[]){64}, (nerve_init){NERVE_INIT_CONSTANT, 0.25f, 0}, NULL);
    for (int i = 0; i < 64; i++)
        CHECK(a[i] == 0.25f);
    nerve_init_fill(a, 64, 1, (int[]){64}, (nerve_init){NERVE_INIT_ZEROS, 3.0f, 0}, NULL);
    for (int i = 0; i < 64; i++)
        CHECK(a[i] == 0.0f);
    nerve_rng r1, r2;
    nerve_init he = {NERVE_INIT_HE_NORMAL, 0, 0};
    nerve_rng_seed(&r1, 9);
    nerve_rng_seed(&r2, 9);
    nerve_init_fill(a, 64, 2, (int[]){8, 8}, he, &r1);
    nerve_init_fill(b, 64, 2, (int[]){8, 8}, he, &r2);
    CHECK(memcmp(a, b, sizeof a) == 0);
    nerve_rng_seed(&r2, 10);
    nerve_init_fill(b, 64, 2, (int[]){8, 8}, he, &r2);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

TEST(init_param_uses_the_nodes_shape_for_its_fans)
{
    nerve_graph *g = nerve_graph_create();
    int w = nerve_param(g, "w", 4, (int[]){16, 8, 3, 3}); /* fan_in 72 */
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    CHECK_OK(nerve_init_param(g, w, (nerve_init){NERVE_INIT_HE_UNIFORM, 0, 0}, &r));
    const float *v = nerve_value(g, w).data;
    float s = sqrtf(6.0f / 72.0f), max = 0;
    for (int i = 0; i < 16 * 8 * 9; i++)
        max = fmaxf(max, fabsf(v[i]));
    CHECK(max <= s && max > 0.95f * s);
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    CHECK(nerve_init_param(g, x, (nerve_init){NERVE_INIT_ZEROS, 0, 0}, &r) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- layers ---------------------------------------------------------------------------- */

static int shape_is(nerve_graph *g, int id, int ndim, const int *dims)
{
    int nd, d[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, id, &nd, d) || nd != ndim)
        return 0;
    return memcmp(d, dims, (size_t)ndim * sizeof(int)) == 0;
}

/* Whether decoupled decay (θ ← θ − ε wd θ with ε = 1, wd = 0.5, zero gradient) halves
 * the parameter: the observable meaning of its decay flag. */
static int decays(nerve_graph *g, int id)
{
    nerve_tensor t = nerve_value(g, id);
    float before = t.data[0];
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_SGD);
    c.weight_decay = 0.5f;
    c.decoupled = 1;
    nerve_optim *o = nerve_optim_create(g, &c);
    nerve_optim_step(o, 1.0f);
    nerve_optim_free(o);
    int halved = t.data[0] == 0.5f * before && before != 0.0f;
    t.data[0] = before;
    return halved;
}

TEST(dense_layer_creates_weight_and_bias_and_computes_x_wT_plus_b)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 3, (int[]){1, 2, 3}); /* flattened to 6 features */
    nerve_rng r, copy;
    nerve_rng_seed(&r, 77);
    copy = r;
    nerve_init he = {NERVE_INIT_HE_NORMAL, 0, 0};
    int y = nerve_layer_dense(g, x, 4, 1, he, &r, "fc1");
    CHECK_OK(y);
    int w = nerve_node_find(g, "fc1.weight"), b = nerve_node_find(g, "fc1.bias");
    CHECK(w >= 0 && b >= 0);
    CHECK(nerve_node_kind(g, w) == NERVE_NODE_PARAM && nerve_node_kind(g, b) == NERVE_NODE_PARAM);
    CHECK(shape_is(g, w, 2, (int[]){4, 6}) && shape_is(g, b, 1, (int[]){4}));
    CHECK(shape_is(g, y, 2, (int[]){1, 4}));
    CHECK(strcmp(nerve_node_name(g, y), "fc1") == 0);
    /* the weight is exactly the initialiser's fill from the same generator state */
    float want[24];
    nerve_init_fill(want, 24, 2, (int[]){4, 6}, he, &copy);
    CHECK(memcmp(nerve_value(g, w).data, want, sizeof want) == 0);
    for (int j = 0; j < 4; j++)
        CHECK(nerve_value(g, b).data[j] == 0.0f);
    CHECK(nerve_layer_dense(g, x, 4, 1, he, &r, "fc1") == NERVE_ERR_ARG); /* taken */
    int y2 = nerve_layer_dense(g, y, 3, 0, he, &r, NULL);                 /* auto name */
    CHECK_OK(y2);
    CHECK(nerve_node_find(g, "dense1.weight") >= 0 && nerve_node_find(g, "dense1.bias") < 0);
    CHECK_OK(nerve_graph_compile(g, 2));
    /* forward: y[n, o] = Σ_i x[n, i] W[o, i] + b[o] */
    float *xv = nerve_value(g, x).data, *wv = nerve_value(g, w).data, *bv = nerve_value(g, b).data;
    for (int i = 0; i < 12; i++)
        xv[i] = (float)(i % 5) - 2.0f;
    for (int o = 0; o < 4; o++)
        bv[o] = 0.1f * (float)(o + 1);
    CHECK_OK(nerve_forward(g, y));
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 4; o++) {
            double s = bv[o];
            for (int i = 0; i < 6; i++)
                s += (double)xv[n * 6 + i] * wv[o * 6 + i];
            CHECK_NEAR(nerve_value(g, y).data[n * 4 + o], s, 1e-5);
        }
    /* decay: the weight decays, the bias does not */
    CHECK(decays(g, w));
    CHECK(decays(g, nerve_node_find(g, "dense1.weight")));
    bv[0] = 1.0f;
    CHECK(!decays(g, b));
    nerve_graph_free(g);
}

TEST(batchnorm_layer_creates_gamma_beta_and_running_statistics)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 3, 4, 4});
    int y = nerve_layer_batchnorm(g, x, 0.1f, 1e-5f, "bn1");
    CHECK_OK(y);
    const char *roles[] = {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"};
    const int kinds[] = {NERVE_NODE_PARAM, NERVE_NODE_PARAM, NERVE_NODE_STATE, NERVE_NODE_STATE};
    const float init[] = {1.0f, 0.0f, 0.0f, 1.0f};
    for (int k = 0; k < 4; k++) {
        int id = nerve_node_find(g, roles[k]);
        CHECK_MSG(id >= 0, "%s missing", roles[k]);
        CHECK(nerve_node_kind(g, id) == kinds[k]);
        CHECK(shape_is(g, id, 1, (int[]){3}));
        for (int c = 0; c < 3; c++)
            CHECK_MSG(nerve_value(g, id).data[c] == init[k], "%s[%d]", roles[k], c);
    }
    CHECK(shape_is(g, y, 4, (int[]){1, 3, 4, 4}));
    CHECK(!decays(g, nerve_node_find(g, "bn1.weight")));
    nerve_graph_free(g);
}

TEST(prelu_layer_creates_one_slope_or_one_per_channel)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 5});
    int y = nerve_layer_prelu(g, x, 1, 0.25f, "act");
    CHECK_OK(y);
    int s = nerve_node_find(g, "act.slope");
    CHECK(s >= 0 && shape_is(g, s, 1, (int[]){5}));
    for (int c = 0; c < 5; c++)
        CHECK(nerve_value(g, s).data[c] == 0.25f);
    CHECK(!decays(g, s));
    int y2 = nerve_layer_prelu(g, y, 0, 0.1f, NULL);
    CHECK_OK(y2);
    int s2 = nerve_node_find(g, "prelu1.slope");
    CHECK(s2 >= 0 && shape_is(g, s2, 1, (int[]){1}));
    CHECK(nerve_value(g, s2).data[0] == 0.1f);
    /* forward: max(u, a u) with a = 0.25 on the first, 0.1 on the second */
    CHECK_OK(nerve_graph_compile(g, 1));
    const float xv[5] = {-2, -1, 0, 1, 2};
    memcpy(nerve_value(g, x).data, xv, sizeof xv);
    CHECK_OK(nerve_forward(g, y2));
    const float want[5] = {-0.05f, -0.025f, 0, 1, 2};
    CHECK_ARRAY_NEAR(nerve_value(g, y2).data, want, 5, 1e-6);
    nerve_graph_free(g);
}
