/* Operators that overwrite a fresh input gradient (OP_GRAD_OVERWRITE: batch norm and the
 * activations) instead of adding into a zeroed one. Pooled buffers hold the previous pass's
 * values, so a missed write or a wrong overwrite shows against the same graph compiled with
 * private buffers (where nothing is ever fresh), bit for bit. */
#include "test.h"

#include "../src/graph/graph.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct net {
    nerve_graph *g;
    int x, loss;
} net;

static int compile_and_fill(net *s, int keep, int batch)
{
    nerve_graph_keep_buffers(s->g, keep);
    int st = nerve_graph_compile(s->g, batch);
    if (st)
        return st;
    nerve_tensor t = nerve_value(s->g, s->x);
    for (size_t i = 0; i < nerve_tensor_numel(&t); i++)
        t.data[i] = test_pseudo(i, 7);
    return nerve_input_set_requires_grad(s->g, s->x, 1);
}

/* x[4,6] -> a = 2x -> loss = mean(tanh(a) + step(a)). The step (created last, so first in
 * backward) is the first writer of a's gradient and adds nothing: it must still zero it. */
static int build_step_first(net *s, int keep)
{
    nerve_graph *g = s->g = nerve_graph_create();
    s->x = nerve_input(g, "x", 2, (int[]){4, 6});
    int a = nerve_affine(g, s->x, 2.0f, 0.0f);
    int t = nerve_activation(g, a, nerve_act_default(NERVE_ACT_TANH));
    int st = nerve_activation(g, a, nerve_act_default(NERVE_ACT_STEP));
    s->loss = nerve_mean(g, nerve_add(g, t, st), NERVE_AXIS_ALL, 0);
    return compile_and_fill(s, keep, 4);
}

static int forward_backward(net *s)
{
    int st = nerve_forward(s->g, s->loss);
    return st ? st : nerve_backward(s->g, s->loss);
}

TEST(grad_overwrite_step_activation_zeroes_a_fresh_gradient)
{
    net s, k;
    CHECK_OK(build_step_first(&s, 0));
    CHECK_OK(build_step_first(&k, 1));
    for (int pass = 0; pass < 3; pass++) { /* later passes start from dirty pooled buffers */
        CHECK_OK(forward_backward(&s));
        CHECK_OK(forward_backward(&k));
        const float *dx = nerve_grad(s.g, s.x).data, *x = nerve_value(s.g, s.x).data;
        CHECK(memcmp(dx, nerve_grad(k.g, k.x).data, 24 * sizeof(float)) == 0);
        for (int i = 0; i < 24; i++) { /* d/dx mean(tanh(2x)) = 2 (1 - tanh^2(2x)) / 24 */
            double th = tanh(2.0 * x[i]);
            CHECK_NEAR(dx[i], 2.0 * (1.0 - th * th) / 24.0, 1e-6);
        }
    }
    nerve_graph_free(s.g);
    nerve_graph_free(k.g);
}

/* x[4,3,2,2] -> c = 1.5x + 0.25 -> b = tanh(batchnorm(c)); loss = mean(b + c * c) with the
 * square created after the norm when `square_first` (it then runs first in backward and the
 * norm must add into c's gradient) or before it (the norm then writes c's gradient fresh). */
static int build_norm(net *s, int keep, int square_first)
{
    nerve_graph *g = s->g = nerve_graph_create();
    s->x = nerve_input(g, "x", 4, (int[]){4, 3, 2, 2});
    int c = nerve_affine(g, s->x, 1.5f, 0.25f);
    int sq = square_first ? -1 : nerve_mul(g, c, c);
    int gamma = nerve_param(g, "gamma", 1, (int[]){3}), beta = nerve_param(g, "beta", 1, (int[]){3});
    int rm = nerve_state(g, "rm", 1, (int[]){3}), rv = nerve_state(g, "rv", 1, (int[]){3});
    int bn = nerve_batchnorm(g, c, gamma, beta, rm, rv, 0.1f, 1e-5f);
    int b = nerve_activation(g, bn, nerve_act_default(NERVE_ACT_TANH));
    if (square_first)
        sq = nerve_mul(g, c, c);
    s->loss = nerve_mean(g, nerve_add(g, b, sq), NERVE_AXIS_ALL, 0);
    int st = compile_and_fill(s, keep, 4);
    if (st)
        return st;
    nerve_tensor gv = nerve_value(g, gamma), bv = nerve_value(g, beta);
    for (int i = 0; i < 3; i++) {
        gv.data[i] = 1.0f + 0.5f * (float)i;
        bv.data[i] = 0.1f * (float)i - 0.1f;
    }
    return NERVE_OK;
}

TEST(grad_overwrite_batchnorm_writes_fresh_and_adds_to_shared_gradients)
{
    for (int square_first = 0; square_first < 2; square_first++) {
        net s, k;
        CHECK_OK(build_norm(&s, 0, square_first));
        CHECK_OK(build_norm(&k, 1, square_first));
        for (int pass = 0; pass < 3; pass++) {
            CHECK_OK(forward_backward(&s));
            CHECK_OK(forward_backward(&k));
            CHECK(memcmp(nerve_grad(s.g, s.x).data, nerve_grad(k.g, k.x).data,
                         48 * sizeof(float)) == 0);
        }
        CHECK_OK(nerve_gradcheck(s.g, s.loss, 1e-2f, 1e-3f, 1e-2f));
        nerve_graph_free(s.g);
        nerve_graph_free(k.g);
    }
}
