/* Mathematical operators of src/ops/math.c (unary functions, clip, where, general
 * reductions, matmul_nd, gather, gather_elements, pad, cumsum) and the new binary
 * operators of src/ops/elementwise.c (pow, maximum, minimum, mod, fmod, comparisons,
 * logic): values against hand-computed ones, gradients against finite differences. */
#include "test.h"

#include <math.h>
#include <string.h>

static void fill_uniform(nerve_graph *g, int id, float lo, float hi, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = lo + (hi - lo) * nerve_rng_uniform(&r);
}

/* sum(y * w) with w a fixed state of y's shape. */
static int weighted_loss(nerve_graph *g, int y)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    int w = nerve_state(g, "loss_w", nd, dims);
    nerve_tensor t = nerve_value(g, w);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = 0.5f + 0.25f * (float)(k % 5);
    return nerve_sum(g, nerve_mul(g, y, w), NERVE_AXIS_ALL, 0);
}

/* Builds y = f(params) with f a callback, compiles and runs the gradient check with the
 * parameters drawn from [lo, hi). */
typedef int (*build1)(nerve_graph *g, int x, const void *ctx);

static int gradcheck_unary_like(build1 f, const void *ctx, int nd, const int *dims, float lo,
                                float hi, char *why, size_t size)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", nd, dims);
    int y = f(g, x, ctx);
    int loss = y >= 0 ? weighted_loss(g, y) : y;
    int ok = loss >= 0 && nerve_graph_compile(g, 1) == NERVE_OK;
    if (ok) {
        fill_uniform(g, x, lo, hi, 11);
        ok = nerve_gradcheck(g, loss, 1e-3f, 2e-3f, 2e-2f) == NERVE_OK;
    }
    if (!ok)
        snprintf(why, size, "%s", nerve_last_error());
    nerve_graph_free(g);
    return ok;
}

static int b_unary(nerve_graph *g, int x, const void *ctx) { return nerve_unary(g, x, ctx); }

TEST(unary_functions_match_libm_and_pass_finite_differences)
{
    /* domain of each function's derivative check, and a value to compare */
    static const struct {
        const char *fn;
        float lo, hi, x, want;
    } cases[] = {
        {"exp", -1, 1, 0.5f, 1.6487212707f},   {"log", 0.5f, 2, 2.0f, 0.6931471806f},
        {"sqrt", 0.5f, 2, 2.0f, 1.4142135624f}, {"neg", -1, 1, 0.5f, -0.5f},
        {"abs", 0.1f, 1, -0.5f, 0.5f},          {"reciprocal", 0.5f, 2, 4.0f, 0.25f},
        {"sin", -1, 1, 1.0f, 0.8414709848f},    {"cos", -1, 1, 1.0f, 0.5403023059f},
        {"tan", -1, 1, 1.0f, 1.5574077247f},    {"asin", -0.8f, 0.8f, 0.5f, 0.5235987756f},
        {"acos", -0.8f, 0.8f, 0.5f, 1.0471975512f}, {"atan", -1, 1, 1.0f, 0.7853981634f},
        {"sinh", -1, 1, 1.0f, 1.1752011936f},   {"cosh", -1, 1, 1.0f, 1.5430806348f},
        {"asinh", -1, 1, 1.0f, 0.8813735870f},  {"acosh", 1.5f, 3, 2.0f, 1.3169578969f},
        {"atanh", -0.8f, 0.8f, 0.5f, 0.5493061443f}, {"erf", -1, 1, 0.5f, 0.5204998778f},
    };
    char why[512];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK_MSG(gradcheck_unary_like(b_unary, cases[c].fn, 2, (int[]){3, 4}, cases[c].lo,
                                       cases[c].hi, why, sizeof why),
                  "%s: %s", cases[c].fn, why);
        nerve_graph *g = nerve_graph_create();
        int x = nerve_state(g, "x", 1, (int[]){1}), y = nerve_unary(g, x, cases[c].fn);
        CHECK_OK(y);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, &cases[c].x, 1);
        CHECK_OK(nerve_forward(g, y));
        CHECK_NEAR(nerve_value(g, y).data[0], cases[c].want, 1e-6);
        nerve_graph_free(g);
    }
    /* the piecewise-constant ones: values, and no gradient */
    static const struct {
        const char *fn;
        float want[6];
    } flat[] = {
        {"floor", {-2, -1, 0, 0, 1, 2}}, {"ceil", {-1, -0.0f, 0, 1, 2, 3}},
        {"round", {-2, -0.0f, 0, 0, 2, 2}}, {"trunc", {-1, -0.0f, 0, 0, 1, 2}},
        {"sign", {-1, -1, 0, 1, 1, 1}},  {"not", {0, 0, 1, 0, 0, 0}},
    };
    const float xs[6] = {-1.5f, -0.5f, 0.0f, 0.5f, 1.5f, 2.5f};
    for (size_t c = 0; c < sizeof flat / sizeof flat[0]; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 1, (int[]){6}), y = nerve_unary(g, x, flat[c].fn);
        CHECK_OK(y);
        int loss = nerve_sum(g, y, NERVE_AXIS_ALL, 0);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, xs, 6);
        CHECK_OK(nerve_forward(g, loss));
        CHECK_ARRAY_NEAR(nerve_value(g, y).data, flat[c].want, 6, 0);
        CHECK_OK(nerve_backward(g, loss));
        nerve_tensor dx = nerve_grad(g, x);
        for (int k = 0; dx.data && k < 6; k++)
            CHECK_MSG(dx.data[k] == 0.0f, "%s passes a gradient", flat[c].fn);
        nerve_graph_free(g);
    }
    nerve_graph *g = nerve_graph_create();
    int x = nerve_state(g, "x", 1, (int[]){3});
    CHECK(nerve_unary(g, x, "cube") == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "cube") != NULL);
    nerve_graph_free(g);
    CHECK(nerve_unary_name(0) && !nerve_unary_name(-1) && !nerve_unary_name(1000));
}

typedef struct bin_ctx {
    const char *op;
    int other; /* filled per graph */
} bin_ctx;

TEST(new_binary_operators_compute_and_differentiate)
{
    const float a[] = {1.5f, -2.0f, 3.0f, -0.5f, 2.0f, 0.25f};
    const float b[] = {2.0f, 2.0f, -2.0f, -0.5f, 0.5f, 1.0f};
    static const struct {
        const char *op;
        float want[6];
    } cases[] = {
        {"pow", {2.25f, 4.0f, 0.11111111f, NAN, 1.41421356f, 0.25f}}, /* (-0.5)^-0.5 */
        {"maximum", {2, 2, 3, -0.5f, 2, 1}},
        {"minimum", {1.5f, -2, -2, -0.5f, 0.5f, 0.25f}},
        {"mod", {1.5f, 0, -1, -0.0f, 0, 0.25f}},
        {"fmod", {1.5f, -0.0f, 1, -0.0f, 0, 0.25f}},
        {"equal", {0, 0, 0, 1, 0, 0}},
        {"less", {1, 1, 0, 0, 0, 1}},
        {"greater", {0, 0, 1, 0, 1, 0}},
        {"less_equal", {1, 1, 0, 1, 0, 1}},
        {"greater_equal", {0, 0, 1, 1, 1, 0}},
        {"logical_and", {1, 1, 1, 1, 1, 1}},
        {"logical_or", {1, 1, 1, 1, 1, 1}},
        {"logical_xor", {0, 0, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_state(g, "a", 1, (int[]){6}), y = nerve_state(g, "b", 1, (int[]){6});
        int z = nerve_binary(g, cases[c].op, x, y);
        CHECK_OK(z);
        CHECK(strcmp(nerve_node_op(g, z), cases[c].op) == 0);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, a, 6);
        test_set_values(g, y, b, 6);
        CHECK_OK(nerve_forward(g, z));
        const float *v = nerve_value(g, z).data;
        for (int k = 0; k < 6; k++)
            CHECK_MSG(fabsf(v[k] - cases[c].want[k]) <= 1e-6f ||
                          (isnan(v[k]) && isnan(cases[c].want[k])),
                      "%s[%d] = %g, expected %g",
                      cases[c].op, k, v[k], cases[c].want[k]);
        nerve_graph_free(g);
    }
    /* gradients of the differentiable ones, with broadcasting [2,3] op [3] */
    static const char *const diff[] = {"pow", "maximum", "minimum", "mod", "fmod"};
    for (size_t c = 0; c < sizeof diff / sizeof diff[0]; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "a", 2, (int[]){2, 3}), y = nerve_param(g, "b", 1, (int[]){3});
        int loss = weighted_loss(g, nerve_binary(g, diff[c], x, y));
        CHECK_OK(loss);
        CHECK_OK(nerve_graph_compile(g, 1));
        /* away from ties and from the jumps of mod: a in [0.5, 1.5) and b in [2, 3) */
        test_set_values(g, x, (float[]){0.6f, 1.4f, 0.9f, 1.2f, 0.7f, 1.1f}, 6);
        test_set_values(g, y, (float[]){2.2f, 0.3f, 2.7f}, 3);
        if (!strcmp(diff[c], "mod") || !strcmp(diff[c], "fmod"))
            test_set_values(g, y, (float[]){2.2f, -2.5f, 2.7f}, 3);
        CHECK_MSG(nerve_gradcheck(g, loss, 1e-3f, 2e-3f, 2e-2f) == NERVE_OK, "%s: %s", diff[c],
                  nerve_last_error());
        nerve_graph_free(g);
    }
    nerve_graph *g = nerve_graph_create();
    int x = nerve_state(g, "a", 1, (int[]){2});
    CHECK(nerve_binary(g, "hypot", x, x) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

static int b_clip(nerve_graph *g, int x, const void *ctx)
{
    (void)ctx;
    return nerve_clip(g, x, -0.5f, 0.4f);
}

TEST(clip_limits_values_and_passes_gradient_inside)
{
    char why[512];
    CHECK_MSG(gradcheck_unary_like(b_clip, NULL, 2, (int[]){4, 5}, -1, 1, why, sizeof why), "%s",
              why);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 1, (int[]){4}), y = nerve_clip(g, x, -1.0f, 2.0f);
    int loss = nerve_sum(g, y, NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){-3, -0.5f, 1.5f, 7}, 4);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){-1, -0.5f, 1.5f, 2}), 4, 0);
    CHECK_OK(nerve_backward(g, loss));
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, ((float[]){0, 1, 1, 0}), 4, 0);
    CHECK(nerve_clip(g, x, 2.0f, 1.0f) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

TEST(where_selects_with_broadcasting_and_routes_gradients)
{
    nerve_graph *g = nerve_graph_create();
    int c = nerve_state(g, "c", 2, (int[]){2, 1});
    int a = nerve_param(g, "a", 2, (int[]){2, 3}), b = nerve_param(g, "b", 1, (int[]){3});
    int y = nerve_where(g, c, a, b);
    CHECK_OK(y);
    int loss = weighted_loss(g, y);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, c, (float[]){1, 0}, 2);
    test_set_values(g, a, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, b, (float[]){-1, -2, -3}, 3);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){1, 2, 3, -1, -2, -3}), 6, 0);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

typedef struct red_ctx {
    const char *kind;
    unsigned axes;
    int keep;
} red_ctx;

static int b_reduce(nerve_graph *g, int x, const void *ctx)
{
    const red_ctx *r = ctx;
    return nerve_reduce(g, x, r->kind, r->axes, r->keep, 0);
}

TEST(general_reductions_compute_and_pass_finite_differences)
{
    /* x [2, 3] = [[1, -2, 3], [4, 5, -6]], reduced over axis 1 */
    const float xs[] = {1, -2, 3, 4, 5, -6};
    static const struct {
        const char *kind;
        float want[2];
    } cases[] = {
        {"sum", {2, 3}},         {"mean", {2.0f / 3, 1}},      {"max", {3, 5}},
        {"min", {-2, -6}},       {"prod", {-6, -120}},         {"l1", {6, 15}},
        {"l2", {3.7416574f, 8.7749643f}}, {"sum_square", {14, 77}},
        {"log_sum_exp", {3.1328452f, 5.3132739f}}, {"argmax", {2, 1}}, {"argmin", {1, 2}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_state(g, "x", 2, (int[]){2, 3});
        int y = nerve_reduce(g, x, cases[c].kind, 2u, 0, 0);
        CHECK_OK(y);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, xs, 6);
        CHECK_OK(nerve_forward(g, y));
        CHECK_MSG(fabsf(nerve_value(g, y).data[0] - cases[c].want[0]) < 1e-5f &&
                      fabsf(nerve_value(g, y).data[1] - cases[c].want[1]) < 1e-5f,
                  "%s: %g %g", cases[c].kind, nerve_value(g, y).data[0], nerve_value(g, y).data[1]);
        nerve_graph_free(g);
    }
    /* log_sum over positive values; every differentiable kind over two axes of a rank-3
     * tensor, with and without keepdim */
    static const char *const diff[] = {"sum", "mean", "max", "min", "prod", "l1", "l2",
                                       "sum_square", "log_sum", "log_sum_exp"};
    char why[512];
    for (size_t c = 0; c < sizeof diff / sizeof diff[0]; c++)
        for (int keep = 0; keep < 2; keep++) {
            red_ctx r = {diff[c], 5u, keep}; /* axes 0 and 2 */
            CHECK_MSG(gradcheck_unary_like(b_reduce, &r, 3, (int[]){2, 3, 4}, 0.2f, 1.5f, why,
                                           sizeof why),
                      "%s keep %d: %s", diff[c], keep, why);
        }
    /* select_last_index and shapes */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_state(g, "x", 1, (int[]){4});
    int first = nerve_reduce(g, x, "argmax", 1u, 1, 0), last = nerve_reduce(g, x, "argmax", 1u, 1, 1);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){1, 3, 3, 0}, 4);
    CHECK_OK(nerve_forward(g, first));
    CHECK_OK(nerve_forward(g, last));
    CHECK(nerve_value(g, first).data[0] == 1 && nerve_value(g, last).data[0] == 2);
    nerve_graph_free(g);
    g = nerve_graph_create();
    x = nerve_state(g, "x", 2, (int[]){2, 3});
    CHECK(nerve_reduce(g, x, "argmax", 3u, 0, 0) < 0); /* argmax over two axes */
    CHECK(nerve_reduce(g, x, "median", 1u, 0, 0) == NERVE_ERR_ARG);
    CHECK(nerve_reduce(g, x, "sum", 0u, 0, 0) == NERVE_ERR_ARG);
    CHECK(nerve_reduce(g, x, "sum", 4u, 0, 0) < 0); /* axis 2 of a rank-2 tensor */
    nerve_graph_free(g);
}

TEST(matmul_nd_broadcasts_batches_and_passes_finite_differences)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 3, (int[]){2, 2, 3}), b = nerve_param(g, "b", 2, (int[]){3, 2});
    int y = nerve_matmul_nd(g, a, b);
    CHECK_OK(y);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 2 && dims[2] == 2);
    int loss = weighted_loss(g, y);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, a, (float[]){1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0}, 12);
    test_set_values(g, b, (float[]){1, 0, 0, 1, 1, 1}, 6);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){4, 5, 10, 11, 1, 0, 0, 1}), 8, 1e-6);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
    /* broadcasting on both sides: [2, 1, 2, 3] x [3, 3, 2] -> [2, 3, 2, 2] */
    g = nerve_graph_create();
    a = nerve_param(g, "a", 4, (int[]){2, 1, 2, 3});
    b = nerve_param(g, "b", 3, (int[]){3, 3, 2});
    loss = weighted_loss(g, nerve_matmul_nd(g, a, b));
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    fill_uniform(g, a, -1, 1, 3);
    fill_uniform(g, b, -1, 1, 4);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
    CHECK(nerve_matmul_nd(g, a, a) < 0);
    nerve_graph_free(g);
}

TEST(gather_and_gather_elements_index_and_scatter_gradients)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){3, 2});
    int idx = nerve_state(g, "i", 2, (int[]){2, 2});
    int y = nerve_gather(g, x, idx, 0);
    CHECK_OK(y);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 2 && dims[2] == 2);
    int loss = weighted_loss(g, y);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, idx, (float[]){0, -1, 1, 0}, 4); /* -1: the last row, counted twice below */
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){1, 2, 5, 6, 3, 4, 1, 2}), 8, 0);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
    test_set_values(g, idx, (float[]){0, 3, 1, 0.5f}, 4); /* out of range and not an integer */
    CHECK_OK(nerve_forward(g, y));
    CHECK(isnan(nerve_value(g, y).data[2]) && isnan(nerve_value(g, y).data[6]));
    nerve_graph_free(g);

    g = nerve_graph_create();
    x = nerve_param(g, "x", 2, (int[]){2, 3});
    idx = nerve_state(g, "i", 2, (int[]){2, 2});
    y = nerve_gather_elements(g, x, idx, 1);
    CHECK_OK(y);
    loss = weighted_loss(g, y);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, idx, (float[]){2, 0, 1, 1}, 4);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){3, 1, 5, 5}), 4, 0);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
    CHECK(nerve_gather(g, x, idx, 2) < 0);
    nerve_graph_free(g);
}

TEST(pad_modes_place_values_and_pass_finite_differences)
{
    static const struct {
        nerve_pad_mode mode;
        float want[7];
    } cases[] = {
        {NERVE_PAD_CONSTANT, {9, 9, 1, 2, 3, 9, 9}},
        {NERVE_PAD_REFLECT, {3, 2, 1, 2, 3, 2, 1}},
        {NERVE_PAD_EDGE, {1, 1, 1, 2, 3, 3, 3}},
    };
    for (size_t c = 0; c < 3; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 2, (int[]){1, 3});
        int y = nerve_pad(g, x, (int[]){0, 2}, (int[]){0, 2}, 2, cases[c].mode, 9.0f);
        CHECK_OK(y);
        int loss = weighted_loss(g, y);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, (float[]){1, 2, 3}, 3);
        CHECK_OK(nerve_forward(g, y));
        CHECK_ARRAY_NEAR(nerve_value(g, y).data, cases[c].want, 7, 0);
        CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
        nerve_graph_free(g);
    }
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    int y = nerve_pad(g, x, (int[]){1, -1}, (int[]){0, 1}, 2, NERVE_PAD_CONSTANT, 0.0f); /* crops */
    CHECK_OK(y);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 2 && dims[0] == 3 && dims[1] == 3);
    CHECK(nerve_pad(g, x, (int[]){0, 3}, (int[]){0, 0}, 2, NERVE_PAD_REFLECT, 0.0f) < 0);
    CHECK(nerve_pad(g, x, (int[]){0, -3}, (int[]){0, 0}, 2, NERVE_PAD_CONSTANT, 0.0f) < 0);
    nerve_graph_free(g);
}

TEST(cumsum_runs_forward_exclusive_and_reverse)
{
    static const struct {
        int exclusive, reverse;
        float want[4];
    } cases[] = {
        {0, 0, {1, 3, 6, 10}}, {1, 0, {0, 1, 3, 6}}, {0, 1, {10, 9, 7, 4}}, {1, 1, {9, 7, 4, 0}},
    };
    for (size_t c = 0; c < 4; c++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 2, (int[]){1, 4});
        int y = nerve_cumsum(g, x, -1, cases[c].exclusive, cases[c].reverse);
        CHECK_OK(y);
        int loss = weighted_loss(g, y);
        CHECK_OK(nerve_graph_compile(g, 1));
        test_set_values(g, x, (float[]){1, 2, 3, 4}, 4);
        CHECK_OK(nerve_forward(g, y));
        CHECK_ARRAY_NEAR(nerve_value(g, y).data, cases[c].want, 4, 0);
        CHECK_OK(nerve_gradcheck(g, loss, 1e-3f, 1e-3f, 1e-2f));
        nerve_graph_free(g);
    }
}
