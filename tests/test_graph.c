/* Graph construction, compilation, dense forward/backward and the gradient checker. */
#include "test.h"

#include <string.h>

TEST(dense_forward_matches_hand_computation)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 3});
    int w = nerve_param(g, "w", 2, (int[]){2, 3});
    int b = nerve_param(g, "b", 1, (int[]){2});
    int y = nerve_dense(g, x, w, b);
    CHECK_OK(y);
    CHECK_OK(nerve_graph_compile(g, 2));
    const float wv[] = {1, 2, 3, -1, 0, 1}, bv[] = {0.5f, -0.5f}, xv[] = {1, 1, 1, 2, 0, -1};
    memcpy(nerve_value(g, w).data, wv, sizeof wv);
    memcpy(nerve_value(g, b).data, bv, sizeof bv);
    memcpy(nerve_value(g, x).data, xv, sizeof xv);
    CHECK_OK(nerve_forward(g, y));
    const float want[] = {6.5f, -0.5f, -0.5f, -3.5f};
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, want, 4, 1e-6);
    nerve_graph_free(g);
}

TEST(dense_and_matmul_gradients_pass_finite_differences)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    int x = nerve_input(g, "x", 2, (int[]){1, 4});
    int w = nerve_param(g, "w", 2, (int[]){3, 4});
    int b = nerve_param(g, "b", 1, (int[]){3});
    int m = nerve_param(g, "m", 2, (int[]){2, 3}); /* used transposed */
    int y = nerve_dense(g, x, w, b);
    int z = nerve_matmul(g, y, m, 0, 1);  /* [N,3] x [3,2] */
    int z2 = nerve_matmul(g, m, z, 1, 1); /* [3,2] x [2,N] */
    CHECK_OK(z2);
    int ones = nerve_param(g, "ones", 2, (int[]){1, 3});
    int s = nerve_matmul(g, ones, z2, 0, 0); /* [1,N] */
    int loss = nerve_matmul(g, s, s, 0, 1); /* [1,1] = sum of squares */
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    int ids[] = {x, w, b, m, ones};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
            t.data[k] = nerve_rng_uniform(&r) * 2 - 1;
    }
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(gradcheck_detects_a_wrong_gradient)
{
    /* The checker itself must be able to fail: corrupt a weight gradient through a
     * frozen-then-unfrozen trick is not possible, so compare against a deliberately wrong
     * eps that makes no sense instead: a huge step on a curved function fails. */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 2, (int[]){1, 1});
    int y = nerve_matmul(g, x, x, 0, 0);
    int z = nerve_matmul(g, y, y, 0, 0); /* x^4 */
    CHECK_OK(nerve_graph_compile(g, 1));
    nerve_value(g, x).data[0] = 1.0f;
    CHECK(nerve_gradcheck(g, z, 1e-3f, 1e-3f, 1e-3f) == NERVE_OK);
    CHECK(nerve_gradcheck(g, z, 0.5f, 1e-3f, 1e-3f) == NERVE_ERR_NUMERIC);
    nerve_graph_free(g);
}

TEST(shape_errors_name_the_operator_and_node)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 5});
    int w = nerve_param(g, "fc1.weight", 2, (int[]){3, 4});
    int y = nerve_dense(g, x, w, -1);
    CHECK(y == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "dense") != NULL);
    CHECK(strstr(nerve_last_error(), "5 features") != NULL);
    nerve_graph_free(g);
}

TEST(smaller_batches_reuse_the_compiled_buffers)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){1, 2});
    int w = nerve_param(g, "w", 2, (int[]){1, 2});
    int y = nerve_dense(g, x, w, -1);
    CHECK_OK(nerve_graph_compile(g, 8));
    uint64_t before = nerve_alloc_count();
    CHECK_OK(nerve_graph_set_batch(g, 3));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 2 && dims[0] == 3 && dims[1] == 1);
    CHECK(nerve_graph_set_batch(g, 9) == NERVE_ERR_ARG);
    CHECK(nerve_alloc_count() == before);
    nerve_graph_free(g);
}

TEST(rng_is_reproducible_and_uniform)
{
    nerve_rng a, b;
    nerve_rng_seed(&a, 42);
    nerve_rng_seed(&b, 42);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        uint32_t u = nerve_rng_u32(&a);
        CHECK(u == nerve_rng_u32(&b));
        sum += nerve_rng_uniform(&a);
        nerve_rng_uniform(&b);
    }
    CHECK_NEAR(sum / 100000, 0.5, 0.01);
    nerve_rng_seed(&b, 43);
    CHECK(nerve_rng_u32(&a) != nerve_rng_u32(&b));
    int idx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seen = 0;
    nerve_rng_shuffle(&a, idx, 10);
    for (int i = 0; i < 10; i++)
        seen |= 1 << idx[i];
    CHECK(seen == 1023);
}
