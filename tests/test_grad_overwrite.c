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

/* x[2,3,H,W] -> c = 1.5x + 0.25 -> p = maxpool 2x2 / 2; loss = mean(tanh(p) + c * c), the
 * square created after the pool when `square_first` (the pool then adds into c's gradient)
 * or before it (the pool writes c's gradient fresh: whole, by the tiles route, when the
 * windows tile the map; zeroed first and scattered into otherwise). */
static int build_pool(net *s, int keep, int H, int W, int square_first)
{
    nerve_graph *g = s->g = nerve_graph_create();
    s->x = nerve_input(g, "x", 4, (int[]){2, 3, H, W});
    int c = nerve_affine(g, s->x, 1.5f, 0.25f);
    int sq = square_first ? -1 : nerve_mul(g, c, c);
    nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_MAX, 2, 2, 0);
    int p = nerve_activation(g, nerve_pool(g, c, &pc), nerve_act_default(NERVE_ACT_TANH));
    if (square_first)
        sq = nerve_mul(g, c, c);
    s->loss = nerve_mean(g, nerve_add(g, nerve_mean(g, p, NERVE_AXIS_ALL, 0),
                                      nerve_mean(g, sq, NERVE_AXIS_ALL, 0)),
                         NERVE_AXIS_ALL, 0);
    return compile_and_fill(s, keep, 2);
}

TEST(grad_overwrite_max_pool_writes_fresh_gradients_whole)
{
    /* tiles: two chunks a row; narrow rows (4, 5 and 3 outputs: 4, 3 and 5 output rows a
     * vector, with a shorter last one); then windows that do not tile the map */
    static const int sides[][2] = {{6, 36}, {4, 8}, {10, 10}, {14, 6}, {7, 10}};
    for (size_t t = 0; t < sizeof sides / sizeof sides[0]; t++)
        for (int square_first = 0; square_first < 2; square_first++) {
            int H = sides[t][0], W = sides[t][1], n = 6 * H * W, OH = H / 2, OW = W / 2;
            net s, k;
            CHECK_OK(build_pool(&s, 0, H, W, square_first));
            CHECK_OK(build_pool(&k, 1, H, W, square_first));
            for (int pass = 0; pass < 3; pass++) {
                CHECK_OK(forward_backward(&s));
                CHECK_OK(forward_backward(&k));
                const float *dx = nerve_grad(s.g, s.x).data, *x = nerve_value(s.g, s.x).data;
                CHECK(memcmp(dx, nerve_grad(k.g, k.x).data, (size_t)n * sizeof(float)) == 0);
                /* by hand: 1.5 (2c / n + [argmax] (1 - tanh^2(max)) / (6 OH OW)) */
                for (int m = 0; m < 6; m++)
                    for (int i = 0; i < H; i++)
                        for (int j = 0; j < W; j++) {
                            const float *map = x + m * H * W;
                            double c = 1.5 * map[i * W + j] + 0.25, want = 1.5 * 2.0 * c / n;
                            int oi = i / 2, oj = j / 2, bi = 2 * oi, bj = 2 * oj;
                            for (int a = 0; oi < OH && oj < OW && a < 4; a++) /* argmax */
                                if (map[(2 * oi + a / 2) * W + 2 * oj + a % 2] > map[bi * W + bj])
                                    bi = 2 * oi + a / 2, bj = 2 * oj + a % 2;
                            if (oi < OH && oj < OW && bi == i && bj == j) {
                                double th = tanh(1.5 * map[i * W + j] + 0.25);
                                want += 1.5 * (1.0 - th * th) / (6.0 * OH * OW);
                            }
                            CHECK_NEAR(dx[m * H * W + i * W + j], want, 1e-6);
                        }
            }
            nerve_graph_free(s.g);
            nerve_graph_free(k.g);
        }
}
