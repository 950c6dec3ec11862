/* Element-wise operators (add, sub, mul, div with broadcasting, affine) and the
 * reductions (sum, mean): values against hand-computed or independently computed ones,
 * gradients against finite differences. */
#include "test.h"

#include <string.h>

/* Fills every leaf (inputs, params, states) with uniform values in [-1, 1). */
static void randomize_leaves(nerve_graph *g, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (int i = 0; i < nerve_node_count(g); i++) {
        if (nerve_node_kind(g, i) == NERVE_NODE_OP)
            continue;
        nerve_tensor t = nerve_value(g, i);
        for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
            t.data[k] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    }
}

/* Moves every value of a leaf to +-[0.5, 1.5): safe denominators. */
static void keep_away_from_zero(nerve_graph *g, int id)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = t.data[k] < 0 ? t.data[k] - 0.5f : t.data[k] + 0.5f;
}

/* Scalar loss sum(y * w), w a random constant of y's shape: every element of y gets a
 * different gradient, which a plain sum would not give. batched: y's first dimension is
 * the batch, so w is an input; otherwise a state. */
static int weighted_loss(nerve_graph *g, int y, int batched)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    int w = batched ? nerve_input(g, "loss_w", nd, dims) : nerve_state(g, "loss_w", nd, dims);
    return nerve_sum(g, nerve_mul(g, y, w), NERVE_AXIS_ALL, 0);
}

/* ---- binary operators ------------------------------------------------------------------ */

typedef int (*binary_builder)(nerve_graph *, int, int);

static const binary_builder builders[] = {nerve_add, nerve_sub, nerve_mul, nerve_div};
static const char *const builder_names[] = {"add", "sub", "mul", "div"};

static float reference_op(int op, float a, float b)
{
    return op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : a / b;
}

/* Broadcast reference by explicit index arithmetic (independent of the library's walk):
 * out[i] = op(a[ia], b[ib]) with each output index decomposed into coordinates. */
static void reference_broadcast(int op, int na, const int *da, const float *a, int nb,
                                const int *db, const float *b, int ny, const int *dy, float *y)
{
    size_t total = nerve_shape_numel(ny, dy);
    for (size_t i = 0; i < total; i++) {
        size_t rest = i, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int k = ny - 1; k >= 0; k--) {
            size_t c = rest % (size_t)dy[k];
            rest /= (size_t)dy[k];
            int ka = k - (ny - na), kb = k - (ny - nb);
            if (ka >= 0) {
                ia += (da[ka] == 1 ? 0 : c) * sa;
                sa *= (size_t)da[ka];
            }
            if (kb >= 0) {
                ib += (db[kb] == 1 ? 0 : c) * sb;
                sb *= (size_t)db[kb];
            }
        }
        y[i] = reference_op(op, a[ia], b[ib]);
    }
}

typedef struct bcast_case {
    int na, da[4], nb, db[4], ny, dy[4];
} bcast_case;

static const bcast_case bcast_cases[] = {
    {2, {2, 3}, 2, {2, 3}, 2, {2, 3}},          /* equal shapes */
    {2, {2, 3}, 1, {3}, 2, {2, 3}},             /* [N, C] op [C] */
    {1, {3}, 2, {2, 3}, 2, {2, 3}},             /* [C] op [N, C] */
    {3, {2, 1, 4}, 2, {3, 1}, 3, {2, 3, 4}},    /* both sides broadcast */
    {2, {2, 3}, 1, {1}, 2, {2, 3}},             /* scalar-like [1] */
    {1, {1}, 2, {2, 3}, 2, {2, 3}},
    {2, {4, 1}, 2, {1, 5}, 2, {4, 5}},          /* outer product */
    {3, {2, 3, 4}, 3, {2, 1, 4}, 3, {2, 3, 4}}, /* middle axis */
    {4, {2, 3, 2, 2}, 3, {3, 1, 1}, 4, {2, 3, 2, 2}}, /* per-channel on NCHW */
    {3, {2, 3, 1}, 2, {1, 3}, 3, {2, 3, 3}},    /* column op row */
};

TEST(binary_ops_match_hand_values_for_equal_shapes)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 2}), b = nerve_param(g, "b", 2, (int[]){2, 2});
    int y[4];
    for (int op = 0; op < 4; op++)
        CHECK_OK(y[op] = builders[op](g, a, b));
    for (int op = 0; op < 4; op++)
        CHECK(strcmp(nerve_node_op(g, y[op]), builder_names[op]) == 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, a, (float[]){1, -2, 3, 0.5f}, 4);
    test_set_values(g, b, (float[]){4, 0.5f, -2, 0.25f}, 4);
    CHECK_OK(nerve_forward(g, -1));
    const float want[4][4] = {{5, -1.5f, 1, 0.75f},
                              {-3, -2.5f, 5, 0.25f},
                              {4, -1, -6, 0.125f},
                              {0.25f, -4, -1.5f, 2}};
    for (int op = 0; op < 4; op++)
        CHECK_ARRAY_NEAR(nerve_value(g, y[op]).data, want[op], 4, 1e-6);
    nerve_graph_free(g);
}

TEST(broadcasting_matches_hand_values)
{
    /* [2,3] + [3], [2,1,2] * [3,1] and [2,2] - [1], worked by hand */
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 3}), c = nerve_param(g, "c", 1, (int[]){3});
    int p = nerve_param(g, "p", 3, (int[]){2, 1, 2}), q = nerve_param(g, "q", 2, (int[]){3, 1});
    int s = nerve_param(g, "s", 1, (int[]){1});
    int y1 = nerve_add(g, a, c), y2 = nerve_mul(g, p, q), y3 = nerve_sub(g, a, s);
    CHECK_OK(y3);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y2, &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 2);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, a, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, c, (float[]){10, 20, 30}, 3);
    test_set_values(g, p, (float[]){1, 2, 3, 4}, 4);
    test_set_values(g, q, (float[]){1, 10, 100}, 3);
    test_set_values(g, s, (float[]){0.5f}, 1);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_ARRAY_NEAR(nerve_value(g, y1).data, ((float[]){11, 22, 33, 14, 25, 36}), 6, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, y2).data,
                     ((float[]){1, 2, 10, 20, 100, 200, 3, 4, 30, 40, 300, 400}), 12, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, y3).data, ((float[]){0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f}), 6,
                     0);
    nerve_graph_free(g);
}

TEST(broadcasting_matches_an_index_arithmetic_reference)
{
    for (size_t c = 0; c < sizeof bcast_cases / sizeof bcast_cases[0]; c++) {
        const bcast_case *bc = &bcast_cases[c];
        for (int op = 0; op < 4; op++) {
            nerve_graph *g = nerve_graph_create();
            int a = nerve_param(g, "a", bc->na, bc->da), b = nerve_param(g, "b", bc->nb, bc->db);
            int y = builders[op](g, a, b);
            CHECK_OK(y);
            int nd, dims[NERVE_MAX_DIMS];
            nerve_node_shape(g, y, &nd, dims);
            CHECK_MSG(nd == bc->ny && memcmp(dims, bc->dy, (size_t)nd * sizeof(int)) == 0,
                      "case %zu: wrong output shape", c);
            CHECK_OK(nerve_graph_compile(g, 1));
            randomize_leaves(g, 10 + c);
            keep_away_from_zero(g, b);
            CHECK_OK(nerve_forward(g, y));
            float want[64];
            reference_broadcast(op, bc->na, bc->da, nerve_value(g, a).data, bc->nb, bc->db,
                                nerve_value(g, b).data, bc->ny, bc->dy, want);
            const float *got = nerve_value(g, y).data;
            for (size_t i = 0; i < nerve_shape_numel(bc->ny, bc->dy); i++)
                CHECK_MSG(fabsf(got[i] - want[i]) <= 1e-6f * (1 + fabsf(want[i])),
                          "case %zu %s [%zu]: %g vs %g", c, builder_names[op], i, got[i], want[i]);
            nerve_graph_free(g);
        }
    }
}

TEST(broadcast_gradients_pass_finite_differences)
{
    for (size_t c = 0; c < sizeof bcast_cases / sizeof bcast_cases[0]; c++) {
        const bcast_case *bc = &bcast_cases[c];
        for (int op = 0; op < 4; op++) {
            nerve_graph *g = nerve_graph_create();
            int a = nerve_param(g, "a", bc->na, bc->da), b = nerve_param(g, "b", bc->nb, bc->db);
            int loss = weighted_loss(g, builders[op](g, a, b), 0);
            CHECK_OK(loss);
            CHECK_OK(nerve_graph_compile(g, 1));
            randomize_leaves(g, 100 + c);
            keep_away_from_zero(g, b);
            int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
            CHECK_MSG(st == NERVE_OK, "case %zu %s: %s", c, builder_names[op], nerve_last_error());
            nerve_graph_free(g);
        }
    }
}

TEST(bias_gradient_sums_over_the_broadcast_rows)
{
    /* y = a * b, a [2,3], b [3], loss = sum(y): db[j] = a[0,j] + a[1,j], da[i,j] = b[j] */
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 3}), b = nerve_param(g, "b", 1, (int[]){3});
    int loss = nerve_sum(g, nerve_mul(g, a, b), NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, a, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, b, (float[]){-1, 0.5f, 2}, 3);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_NEAR(nerve_value(g, loss).data[0], -5 + 3.5f + 18, 1e-5);
    CHECK_OK(nerve_backward(g, loss));
    CHECK_ARRAY_NEAR(nerve_grad(g, b).data, ((float[]){5, 7, 9}), 3, 1e-6);
    CHECK_ARRAY_NEAR(nerve_grad(g, a).data, ((float[]){-1, 0.5f, 2, -1, 0.5f, 2}), 6, 1e-6);
    nerve_graph_free(g);
}

TEST(same_node_on_both_sides_accumulates_both_gradients)
{
    /* y = x * x: dy/dx = 2x, so both operand passes must add into the one buffer */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 1, (int[]){3});
    int loss = nerve_sum(g, nerve_mul(g, x, x), NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){1, -2, 3}, 3);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, ((float[]){2, -4, 6}), 3, 1e-6);
    nerve_graph_free(g);
}

TEST(division_near_safe_denominators)
{
    /* small but safe denominators: values and the gradients -a/b^2 stay exact enough */
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 1, (int[]){4}), b = nerve_param(g, "b", 1, (int[]){4});
    int y = nerve_div(g, a, b);
    int loss = nerve_sum(g, y, NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, a, (float[]){1, -3, 0.5f, 2}, 4);
    test_set_values(g, b, (float[]){0.1f, -0.25f, 1e-3f, 4}, 4);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){10, 12, 500, 0.5f}), 4, 1e-3);
    CHECK_OK(nerve_backward(g, loss));
    const float ga[] = {10, -4, 1000, 0.25f}, gb[] = {-100, 48, -500000, -0.125f};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(nerve_grad(g, a).data[i], ga[i], 1e-4 * fabs(ga[i]));
        CHECK_NEAR(nerve_grad(g, b).data[i], gb[i], 1e-4 * fabs(gb[i]));
    }
    nerve_graph_free(g);
}

TEST(batched_inputs_follow_batch_changes_in_binary_ops)
{
    /* x [N,3] (requires grad) * scale [3] + bias [1], N from 4 down to 2 */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 3});
    int s = nerve_param(g, "s", 1, (int[]){3}), b = nerve_param(g, "b", 1, (int[]){1});
    int y = nerve_add(g, nerve_mul(g, x, s), b);
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    randomize_leaves(g, 7);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_graph_set_batch(g, 2));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 2 && dims[0] == 2 && dims[1] == 3);
    test_set_values(g, x, (float[]){1, 2, 3, 4, 5, 6}, 6);
    test_set_values(g, s, (float[]){1, -1, 2}, 3);
    test_set_values(g, b, (float[]){0.5f}, 1);
    CHECK_OK(nerve_forward(g, y));
    const float want[] = {1.5f, -1.5f, 6.5f, 4.5f, -4.5f, 12.5f};
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, want, 6, 1e-6);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(binary_shape_errors_name_both_shapes)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 3}), b = nerve_param(g, "b", 1, (int[]){4});
    CHECK(nerve_add(g, a, b) == NERVE_ERR_SHAPE);
    const char *msg = nerve_last_error();
    CHECK_MSG(strstr(msg, "add (node 'add')") && strstr(msg, "[2, 3]") && strstr(msg, "[4]"),
              "message: %s", msg);
    int c = nerve_param(g, "c", 3, (int[]){2, 1, 4});
    CHECK(nerve_mul(g, a, c) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "mul") && strstr(nerve_last_error(), "[2, 1, 4]"));
    /* fits with the build-time batch of 1 but not with the compiled batch */
    int x = nerve_input(g, "x", 2, (int[]){0, 3});
    CHECK_OK(nerve_div(g, x, a));
    CHECK(nerve_graph_compile(g, 4) == NERVE_ERR_SHAPE);
    CHECK_MSG(strstr(nerve_last_error(), "div") && strstr(nerve_last_error(), "[4, 3]"),
              "message: %s", nerve_last_error());
    nerve_graph_free(g);
}

TEST(affine_scales_and_shifts)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 2});
    int y = nerve_affine(g, x, -2.0f, 0.5f);
    CHECK_OK(y);
    CHECK(strcmp(nerve_node_op(g, y), "affine") == 0);
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    randomize_leaves(g, 3);
    test_set_values(g, x, (float[]){1, 0, -1.5f, 4}, 4);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){-1.5f, 0.5f, 3.5f, -7.5f}), 4, 1e-6);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_backward(g, loss));
    const float *w = nerve_value(g, nerve_node_find(g, "loss_w")).data;
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(nerve_grad(g, x).data[i], -2.0f * w[i], 1e-6);
    nerve_graph_free(g);
}

/* ---- reductions ------------------------------------------------------------------------ */

/* Sum over axis ax of a [2,3,4] tensor by index arithmetic. */
static void reference_sum_234(const float *x, int ax, float *y)
{
    const int d[3] = {2, 3, 4};
    int ny = 24 / d[ax];
    for (int i = 0; i < ny; i++)
        y[i] = 0;
    for (int i = 0; i < 24; i++) {
        int c[3] = {i / 12, (i / 4) % 3, i % 4}, o = 0;
        for (int k = 0; k < 3; k++)
            if (k != ax)
                o = o * d[k] + c[k];
        y[o] += x[i];
    }
}

TEST(sum_and_mean_match_a_reference_on_every_axis)
{
    for (int ax = -1; ax < 3; ax++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 3, (int[]){2, 3, 4});
        int s = nerve_sum(g, x, ax, 0), m = nerve_mean(g, x, ax, 1);
        CHECK_OK(m);
        int axis = ax < 0 ? 2 : ax, nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(g, s, &nd, dims);
        CHECK(nd == 2);
        nerve_node_shape(g, m, &nd, dims);
        CHECK(nd == 3 && dims[axis] == 1);
        CHECK_OK(nerve_graph_compile(g, 1));
        randomize_leaves(g, 20 + ax);
        CHECK_OK(nerve_forward(g, -1));
        float want[12];
        reference_sum_234(nerve_value(g, x).data, axis, want);
        int ny = 24 / (axis == 0 ? 2 : axis == 1 ? 3 : 4);
        CHECK_ARRAY_NEAR(nerve_value(g, s).data, want, ny, 1e-5);
        for (int i = 0; i < ny; i++)
            want[i] /= (float)(24 / ny);
        CHECK_ARRAY_NEAR(nerve_value(g, m).data, want, ny, 1e-5);
        nerve_graph_free(g);
    }
}

TEST(reduction_over_everything_is_a_scalar)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    int s = nerve_sum(g, x, NERVE_AXIS_ALL, 0), m = nerve_mean(g, x, NERVE_AXIS_ALL, 0);
    int k = nerve_mean(g, x, NERVE_AXIS_ALL, 1);
    CHECK_OK(k);
    int nd = -1, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, s, &nd, dims);
    CHECK(nd == 0);
    nerve_node_shape(g, k, &nd, dims);
    CHECK(nd == 2 && dims[0] == 1 && dims[1] == 1);
    CHECK(strcmp(nerve_node_op(g, s), "sum") == 0 && strcmp(nerve_node_op(g, m), "mean") == 0);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (float[]){1, 2, 3, 4, 5, -3}, 6);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_NEAR(nerve_value(g, s).data[0], 12, 1e-6);
    CHECK_NEAR(nerve_value(g, m).data[0], 2, 1e-6);
    CHECK_NEAR(nerve_value(g, k).data[0], 2, 1e-6);
    CHECK_OK(nerve_backward(g, m));
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nerve_grad(g, x).data[i], 1.0 / 6, 1e-7);
    nerve_graph_free(g);
}

TEST(reduction_gradients_pass_finite_differences)
{
    const int axes[] = {0, 1, 2, -1, -3, NERVE_AXIS_ALL};
    for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++)
        for (int mean = 0; mean < 2; mean++)
            for (int keep = 0; keep < 2; keep++) {
                nerve_graph *g = nerve_graph_create();
                int x = nerve_param(g, "x", 3, (int[]){2, 3, 4});
                int r = mean ? nerve_mean(g, x, axes[i], keep) : nerve_sum(g, x, axes[i], keep);
                int loss = weighted_loss(g, r, 0);
                CHECK_OK(loss);
                CHECK_OK(nerve_graph_compile(g, 1));
                randomize_leaves(g, 40 + i);
                int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
                CHECK_MSG(st == NERVE_OK, "axis %d mean %d keep %d: %s", axes[i], mean, keep,
                          nerve_last_error());
                nerve_graph_free(g);
            }
}

TEST(mean_over_the_batch_follows_batch_changes)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 2});
    int m = nerve_mean(g, x, 0, 0);
    int loss = weighted_loss(g, m, 0);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    randomize_leaves(g, 5);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_graph_set_batch(g, 3));
    test_set_values(g, x, (float[]){1, 10, 2, 20, 6, 60}, 6);
    CHECK_OK(nerve_forward(g, m));
    CHECK_ARRAY_NEAR(nerve_value(g, m).data, ((float[]){3, 30}), 2, 1e-5);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    const float *w = nerve_value(g, nerve_node_find(g, "loss_w")).data;
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nerve_grad(g, x).data[i], w[i % 2] / 3, 1e-6);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(every_operator_adds_into_gradients_it_shares)
{
    /* x feeds the operator and the loss directly: an operator that overwrites its input's
     * gradient instead of adding to it loses the direct path */
    for (int which = 0; which < 9; which++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 2, (int[]){2, 3}), b = nerve_param(g, "b", 1, (int[]){3});
        int y = which < 4   ? builders[which](g, x, b)
                : which == 4 ? nerve_affine(g, x, 1.5f, -0.5f)
                : which == 5 ? nerve_sum(g, x, -1, 0)
                : which == 6 ? nerve_mean(g, x, 0, 1)
                : which == 7 ? nerve_sum(g, x, NERVE_AXIS_ALL, 0)
                             : builders[which - 6](g, b, x); /* broadcast operand first */
        int loss = nerve_add(g, weighted_loss(g, y, 0), weighted_loss(g, x, 0));
        CHECK_OK(loss);
        CHECK_OK(nerve_graph_compile(g, 1));
        randomize_leaves(g, 60 + (uint64_t)which);
        keep_away_from_zero(g, b);
        int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "operator %d: %s", which, nerve_last_error());
        nerve_graph_free(g);
    }
}

TEST(reduction_axis_errors_name_the_operator)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    CHECK(nerve_sum(g, x, 2, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "sum") && strstr(nerve_last_error(), "axis 2"));
    CHECK(nerve_mean(g, x, -3, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "mean"));
    nerve_graph_free(g);
}

/* ---- large operands: threads ---------------------------------------------------------------- */

enum { EB_N = 64, EB_F = 1024, EB_COUNT = EB_N * EB_F };

typedef struct {
    float y[EB_COUNT], da[EB_COUNT], db[EB_COUNT];
} eb_result;

/* op(a [EB_N, EB_F], b) with b [EB_N, EB_F] (full) or [EB_F] (a repeating block), or
 * affine (op 4) of a; loss = sum(y * w) so dy = w. One forward and backward. */
static int eb_run(int op, int full_b, int threads, const float *av, const float *bv,
                  const float *wv, eb_result *out)
{
    nerve_set_threads(threads);
    nerve_graph *g = nerve_graph_create();
    int a = nerve_input(g, "a", 2, (int[]){1, EB_F});
    int b = full_b ? nerve_input(g, "b", 2, (int[]){1, EB_F}) : nerve_param(g, "b", 1, (int[]){EB_F});
    int w = nerve_input(g, "w", 2, (int[]){1, EB_F});
    int y = op < 4 ? builders[op](g, a, b) : nerve_affine(g, a, -1.5f, 0.25f);
    int loss = y < 0 ? y : nerve_sum(g, nerve_mul(g, y, w), NERVE_AXIS_ALL, 0);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, a, 1);
    if (st == NERVE_OK && full_b)
        st = nerve_input_set_requires_grad(g, b, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, EB_N);
    if (st == NERVE_OK) {
        test_set_values(g, a, av, EB_COUNT);
        test_set_values(g, b, bv, full_b ? EB_COUNT : EB_F);
        test_set_values(g, w, wv, EB_COUNT);
        st = nerve_forward(g, loss);
        memcpy(out->y, nerve_value(g, y).data, sizeof out->y);
    }
    if (st == NERVE_OK)
        st = nerve_backward(g, loss);
    if (st == NERVE_OK) {
        memcpy(out->da, nerve_grad(g, a).data, sizeof out->da);
        memset(out->db, 0, sizeof out->db);
        if (op < 4)
            memcpy(out->db, nerve_grad(g, b).data, (full_b ? EB_COUNT : EB_F) * sizeof(float));
    }
    nerve_graph_free(g);
    nerve_set_threads(0);
    return st;
}

TEST(elementwise_on_two_threads_matches_one_thread_bit_for_bit)
{
    static float av[EB_COUNT], bv[EB_COUNT], wv[EB_COUNT];
    static eb_result one, two;
    nerve_rng r;
    nerve_rng_seed(&r, 23);
    for (int i = 0; i < EB_COUNT; i++) {
        av[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
        float m = 0.5f + nerve_rng_uniform(&r); /* safe denominators */
        bv[i] = (nerve_rng_u32(&r) & 1) ? m : -m;
        wv[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    }
    for (int op = 0; op <= 4; op++)
        for (int full_b = 0; full_b <= 1; full_b++) {
            CHECK_OK(eb_run(op, full_b, 1, av, bv, wv, &one));
            CHECK_OK(eb_run(op, full_b, 2, av, bv, wv, &two));
            CHECK_MSG(memcmp(&one, &two, sizeof one) == 0, "op %d, full b %d: results differ",
                      op, full_b);
            for (int i = 0; i < EB_COUNT; i++) {
                float b = bv[full_b ? i : i % EB_F];
                float want = op < 4 ? reference_op(op, av[i], b) : -1.5f * av[i] + 0.25f;
                CHECK_MSG(one.y[i] == want, "op %d: y[%d] = %.9g, expected %.9g", op, i,
                          one.y[i], want);
            }
            if (op == 2 && !full_b) /* mul: db_j = sum_n w a over the 64 rows */
                for (int j = 0; j < EB_F; j++) {
                    double want = 0;
                    for (int n = 0; n < EB_N; n++)
                        want += (double)wv[n * EB_F + j] * av[n * EB_F + j];
                    CHECK_NEAR(one.db[j], want, 1e-5);
                }
        }
}
