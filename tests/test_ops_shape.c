/* Shape operators: reshape and flatten (zero-copy aliases), concat, slice, transpose.
 * Values against hand-computed or index-arithmetic references, gradients against finite
 * differences, batch-size changes and error messages. */
#include "test.h"

#include <string.h>

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

/* Scalar loss sum(y * w) with a random constant w of y's shape (an input when y is
 * batched, else a state), so that a misplaced gradient element cannot go unnoticed. */
static int weighted_loss(nerve_graph *g, int y, int batched)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    int w = batched ? nerve_input(g, "loss_w", nd, dims) : nerve_state(g, "loss_w", nd, dims);
    return nerve_sum(g, nerve_mul(g, y, w), NERVE_AXIS_ALL, 0);
}

static void iota(nerve_graph *g, int id)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = (float)k;
}

static int shape_is(nerve_graph *g, int id, int ndim, const int *dims)
{
    int nd, d[NERVE_MAX_DIMS];
    nerve_node_shape(g, id, &nd, d);
    return nd == ndim && memcmp(d, dims, (size_t)ndim * sizeof(int)) == 0;
}

#define GRADCHECK(g, loss) CHECK_OK(nerve_gradcheck((g), (loss), 1e-2f, 1e-3f, 1e-2f))

/* ---- reshape, flatten ------------------------------------------------------------------ */

TEST(reshape_follows_the_batch_and_shares_buffers)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 12});
    int y = nerve_reshape(g, x, 4, (int[]){0, 1, 3, -1});
    CHECK_OK(y);
    CHECK(strcmp(nerve_node_op(g, y), "reshape") == 0);
    CHECK(shape_is(g, y, 4, (int[]){1, 1, 3, 4}));
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 5));
    CHECK(shape_is(g, y, 4, (int[]){5, 1, 3, 4}));
    CHECK(nerve_value(g, y).data == nerve_value(g, x).data);
    CHECK(nerve_grad(g, y).data == nerve_grad(g, x).data);
    randomize_leaves(g, 1);
    GRADCHECK(g, loss);
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK(shape_is(g, y, 4, (int[]){2, 1, 3, 4}));
    GRADCHECK(g, loss);
    /* d loss / dx = w, element for element: the alias passes gradients through unchanged */
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    const float *w = nerve_value(g, nerve_node_find(g, "loss_w")).data;
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, w, 24, 0);
    nerve_graph_free(g);
}

TEST(reshape_of_an_image_batch_works_at_every_batch_size)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 784});
    int y = nerve_reshape(g, x, 4, (int[]){0, 1, 28, 28});
    CHECK_OK(nerve_graph_compile(g, 8));
    for (int n = 8; n >= 1; n--) {
        CHECK_OK(nerve_graph_set_batch(g, n));
        CHECK(shape_is(g, y, 4, (int[]){n, 1, 28, 28}));
    }
    nerve_graph_free(g);
}

TEST(chained_aliases_and_repeated_use_accumulate_gradients)
{
    /* z = x + reshape(reshape(x)) * 2: x's gradient gets both paths through one buffer */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    int r = nerve_reshape(g, nerve_reshape(g, x, 1, (int[]){-1}), 2, (int[]){2, 3});
    int z = nerve_add(g, x, nerve_affine(g, r, 2.0f, 0.0f));
    int loss = nerve_sum(g, z, NERVE_AXIS_ALL, 0);
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    randomize_leaves(g, 2);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nerve_grad(g, x).data[i], 3.0, 1e-6);
    /* a second backward starts from zero again */
    CHECK_OK(nerve_backward(g, loss));
    CHECK_NEAR(nerve_grad(g, x).data[0], 3.0, 1e-6);
    nerve_graph_free(g);
}

TEST(reshape_errors_name_both_shapes)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    CHECK(nerve_reshape(g, x, 2, (int[]){4, 2}) == NERVE_ERR_SHAPE);
    const char *msg = nerve_last_error();
    CHECK_MSG(strstr(msg, "reshape") && strstr(msg, "[2, 3]") && strstr(msg, "[4, 2]"), "%s", msg);
    CHECK(nerve_reshape(g, x, 2, (int[]){-1, -1}) == NERVE_ERR_SHAPE);
    CHECK(nerve_reshape(g, x, 2, (int[]){4, -1}) == NERVE_ERR_SHAPE);
    CHECK(nerve_reshape(g, x, 3, (int[]){0, 0, 0}) == NERVE_ERR_SHAPE);
    CHECK(nerve_reshape(g, x, 2, (int[]){-2, -3}) == NERVE_ERR_SHAPE);
    CHECK_OK(nerve_reshape(g, x, 3, (int[]){3, 1, 2}));
    CHECK(nerve_reshape(g, x, 0, NULL) == NERVE_ERR_SHAPE);
    nerve_graph_free(g);
}

TEST(flatten_keeps_the_batch_and_aliases)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){0, 2, 3, 2});
    int y = nerve_flatten(g, x);
    CHECK_OK(y);
    CHECK(strcmp(nerve_node_op(g, y), "flatten") == 0);
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    CHECK(shape_is(g, y, 2, (int[]){3, 12}));
    CHECK(nerve_value(g, y).data == nerve_value(g, x).data);
    randomize_leaves(g, 3);
    GRADCHECK(g, loss);
    CHECK_OK(nerve_graph_set_batch(g, 1));
    CHECK(shape_is(g, y, 2, (int[]){1, 12}));
    GRADCHECK(g, loss);
    nerve_graph_free(g);
}

/* ---- concat ------------------------------------------------------------------------------ */

TEST(concat_matches_hand_values_on_each_axis)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 2}), b = nerve_param(g, "b", 2, (int[]){2, 3});
    int c = nerve_param(g, "c", 2, (int[]){1, 2});
    int y1 = nerve_concat(g, 2, (int[]){a, b}, 1);
    int y0 = nerve_concat(g, 2, (int[]){a, c}, -2);
    int yy = nerve_concat(g, 3, (int[]){c, a, c}, 0);
    CHECK_OK(yy);
    CHECK(strcmp(nerve_node_op(g, y1), "concat") == 0);
    CHECK(shape_is(g, y1, 2, (int[]){2, 5}) && shape_is(g, y0, 2, (int[]){3, 2}));
    CHECK_OK(nerve_graph_compile(g, 1));
    iota(g, a);
    iota(g, b);
    nerve_value(g, c).data[0] = -1;
    nerve_value(g, c).data[1] = -2;
    CHECK_OK(nerve_forward(g, -1));
    CHECK_ARRAY_NEAR(nerve_value(g, y1).data, ((float[]){0, 1, 0, 1, 2, 2, 3, 3, 4, 5}), 10, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, y0).data, ((float[]){0, 1, 2, 3, -1, -2}), 6, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, yy).data, ((float[]){-1, -2, 0, 1, 2, 3, -1, -2}), 8, 0);
    nerve_graph_free(g);
}

TEST(concat_gradients_pass_finite_differences)
{
    for (int axis = -3; axis < 3; axis++) {
        nerve_graph *g = nerve_graph_create();
        int ax = axis < 0 ? axis + 3 : axis;
        int d0[3] = {2, 3, 2}, d1[3] = {2, 3, 2}, d2[3] = {2, 3, 2};
        d1[ax] = 1;
        d2[ax] = 3;
        int a = nerve_param(g, "a", 3, d0), b = nerve_param(g, "b", 3, d1);
        int c = nerve_param(g, "c", 3, d2);
        int y = nerve_concat(g, 4, (int[]){a, b, c, a}, axis); /* a twice: gradients add */
        int loss = weighted_loss(g, y, 0);
        CHECK_OK(loss);
        CHECK_OK(nerve_graph_compile(g, 1));
        randomize_leaves(g, 10 + (uint64_t)ax);
        int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "axis %d: %s", axis, nerve_last_error());
        nerve_graph_free(g);
    }
}

TEST(concat_of_batched_inputs_follows_batch_changes)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 2}), z = nerve_input(g, "z", 2, (int[]){0, 1});
    int y = nerve_concat(g, 2, (int[]){x, z}, 1);
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, z, 1));
    CHECK_OK(nerve_graph_compile(g, 4));
    randomize_leaves(g, 4);
    GRADCHECK(g, loss);
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK(shape_is(g, y, 2, (int[]){2, 3}));
    memcpy(nerve_value(g, x).data, (float[]){1, 2, 3, 4}, 4 * sizeof(float));
    memcpy(nerve_value(g, z).data, (float[]){9, 8}, 2 * sizeof(float));
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){1, 2, 9, 3, 4, 8}), 6, 0);
    GRADCHECK(g, loss);
    nerve_graph_free(g);
}

TEST(concat_errors_name_the_mismatch)
{
    nerve_graph *g = nerve_graph_create();
    int a = nerve_param(g, "a", 2, (int[]){2, 2}), b = nerve_param(g, "b", 2, (int[]){3, 3});
    CHECK(nerve_concat(g, 2, (int[]){a, b}, 1) == NERVE_ERR_SHAPE);
    const char *msg = nerve_last_error();
    CHECK_MSG(strstr(msg, "concat") && strstr(msg, "[3, 3]") && strstr(msg, "[2, 2]"), "%s", msg);
    CHECK(nerve_concat(g, 2, (int[]){a, a}, 2) == NERVE_ERR_SHAPE);
    int v = nerve_param(g, "v", 1, (int[]){2});
    CHECK(nerve_concat(g, 2, (int[]){a, v}, 0) == NERVE_ERR_SHAPE);
    CHECK(nerve_concat(g, 0, (int[]){a}, 0) == NERVE_ERR_ARG);
    int many[NERVE_MAX_INPUTS + 1];
    for (int i = 0; i <= NERVE_MAX_INPUTS; i++)
        many[i] = a;
    CHECK(nerve_concat(g, NERVE_MAX_INPUTS + 1, many, 0) == NERVE_ERR_ARG);
    CHECK_OK(nerve_concat(g, NERVE_MAX_INPUTS, many, 0));
    nerve_graph_free(g);
}

/* ---- slice ------------------------------------------------------------------------------ */

TEST(slice_matches_hand_values)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 5});
    int s1 = nerve_slice(g, x, 1, 1, 4), s2 = nerve_slice(g, x, -1, -3, -1);
    int s3 = nerve_slice(g, x, 0, 1, 100); /* clamped to the axis */
    CHECK_OK(s3);
    CHECK(strcmp(nerve_node_op(g, s1), "slice") == 0);
    CHECK(shape_is(g, s1, 2, (int[]){2, 3}) && shape_is(g, s2, 2, (int[]){2, 2}));
    CHECK(shape_is(g, s3, 2, (int[]){1, 5}));
    CHECK_OK(nerve_graph_compile(g, 1));
    iota(g, x);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_ARRAY_NEAR(nerve_value(g, s1).data, ((float[]){1, 2, 3, 6, 7, 8}), 6, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, s2).data, ((float[]){2, 3, 7, 8}), 4, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, s3).data, ((float[]){5, 6, 7, 8, 9}), 5, 0);
    nerve_graph_free(g);
}

TEST(slice_gradients_pass_finite_differences)
{
    /* overlapping slices of one tensor: their gradients add, untouched elements get 0 */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 3, (int[]){2, 4, 3});
    int a = nerve_slice(g, x, 1, 0, 3), b = nerve_slice(g, x, -2, -3, 4);
    int c = nerve_slice(g, x, 2, 1, 2);
    int la = weighted_loss(g, a, 0);
    int wb = nerve_state(g, "wb", 3, (int[]){2, 3, 3});
    int wc = nerve_state(g, "wc", 3, (int[]){2, 4, 1});
    int lb = nerve_sum(g, nerve_mul(g, b, wb), NERVE_AXIS_ALL, 0);
    int lc = nerve_sum(g, nerve_mul(g, c, wc), NERVE_AXIS_ALL, 0);
    int loss = nerve_add(g, nerve_add(g, la, lb), lc);
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    randomize_leaves(g, 6);
    GRADCHECK(g, loss);
    nerve_graph_free(g);
}

TEST(slice_of_the_batch_follows_batch_changes)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 3});
    int y = nerve_slice(g, x, 1, -2, 3);
    int loss = weighted_loss(g, y, 1);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    randomize_leaves(g, 8);
    GRADCHECK(g, loss);
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK(shape_is(g, y, 2, (int[]){2, 2}));
    iota(g, x);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){1, 2, 4, 5}), 4, 0);
    GRADCHECK(g, loss);
    nerve_graph_free(g);
}

TEST(slice_errors_name_the_operator)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 5});
    CHECK(nerve_slice(g, x, 1, 3, 3) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "slice") && strstr(nerve_last_error(), "selects nothing"));
    CHECK(nerve_slice(g, x, 1, 4, 2) == NERVE_ERR_SHAPE);
    CHECK(nerve_slice(g, x, 2, 0, 1) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "axis 2"));
    nerve_graph_free(g);
}

/* ---- transpose -------------------------------------------------------------------------- */

TEST(transpose_matches_hand_values)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){2, 3});
    int y = nerve_transpose(g, x, (int[]){1, 0});
    CHECK_OK(y);
    CHECK(strcmp(nerve_node_op(g, y), "transpose") == 0);
    CHECK(shape_is(g, y, 2, (int[]){3, 2}));
    CHECK_OK(nerve_graph_compile(g, 1));
    iota(g, x);
    CHECK_OK(nerve_forward(g, y));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((float[]){0, 3, 1, 4, 2, 5}), 6, 0);
    nerve_graph_free(g);
}

TEST(transpose_matches_an_index_arithmetic_reference)
{
    /* x [2,3,4,5] with perm (2,0,3,1): y[i,j,k,l] = x[j,l,i,k] */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 4, (int[]){2, 3, 4, 5});
    int y = nerve_transpose(g, x, (int[]){2, 0, 3, 1});
    CHECK(shape_is(g, y, 4, (int[]){4, 2, 5, 3}));
    CHECK_OK(nerve_graph_compile(g, 1));
    iota(g, x);
    CHECK_OK(nerve_forward(g, y));
    const float *v = nerve_value(g, y).data;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 5; k++)
                for (int l = 0; l < 3; l++) {
                    float want = (float)(((j * 3 + l) * 4 + i) * 5 + k);
                    CHECK(v[((i * 2 + j) * 5 + k) * 3 + l] == want);
                }
    nerve_graph_free(g);
}

TEST(transpose_gradients_pass_finite_differences)
{
    const int perms[][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}};
    for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++) {
        /* weigh y by the same transpose of a random w, so that d loss / dx = w exactly and
         * any misplaced element shows */
        nerve_graph *g = nerve_graph_create();
        int x = nerve_input(g, "x", 3, (int[]){0, 3, 4});
        int w = nerve_input(g, "w", 3, (int[]){0, 3, 4});
        int y = nerve_transpose(g, x, perms[p]);
        int wt = nerve_transpose(g, w, perms[p]);
        int loss = nerve_sum(g, nerve_mul(g, y, wt), NERVE_AXIS_ALL, 0);
        CHECK_OK(loss);
        CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
        CHECK_OK(nerve_graph_compile(g, 2));
        randomize_leaves(g, 30 + p);
        int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "perm %zu: %s", p, nerve_last_error());
        /* and d loss / dx = w exactly */
        CHECK_OK(nerve_forward(g, loss));
        CHECK_OK(nerve_backward(g, loss));
        CHECK_ARRAY_NEAR(nerve_grad(g, x).data, nerve_value(g, w).data, 24, 1e-6);
        nerve_graph_free(g);
    }
}

TEST(every_shape_operator_adds_into_gradients_it_shares)
{
    /* x feeds the operator and the loss directly: an operator that overwrites its input's
     * gradient instead of adding to it loses the direct path */
    for (int which = 0; which < 5; which++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_param(g, "x", 3, (int[]){2, 3, 4});
        int y = which == 0   ? nerve_reshape(g, x, 2, (int[]){4, -1})
                : which == 1 ? nerve_flatten(g, x)
                : which == 2 ? nerve_concat(g, 2, (int[]){x, x}, 1)
                : which == 3 ? nerve_slice(g, x, 2, 1, 3)
                             : nerve_transpose(g, x, (int[]){2, 0, 1});
        int loss = nerve_add(g, weighted_loss(g, y, 0), weighted_loss(g, x, 0));
        CHECK_OK(loss);
        CHECK_OK(nerve_graph_compile(g, 1));
        randomize_leaves(g, 70 + (uint64_t)which);
        int st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
        CHECK_MSG(st == NERVE_OK, "operator %d: %s", which, nerve_last_error());
        nerve_graph_free(g);
    }
}

TEST(transpose_errors_name_the_operator)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 3, (int[]){2, 3, 4});
    CHECK(nerve_transpose(g, x, (int[]){0, 1, 1}) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "transpose") && strstr(nerve_last_error(), "permutation"));
    CHECK(nerve_transpose(g, x, (int[]){0, 1, 3}) == NERVE_ERR_SHAPE);
    CHECK(nerve_transpose(g, x, NULL) == NERVE_ERR_ARG);
    CHECK(nerve_transpose(g, 99, (int[]){0}) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}
