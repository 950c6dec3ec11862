/* The compiled memory plan: pooled operator gradients zeroed just in time, in-place
 * activations, and lazily zeroed large allocations. Every plan is checked against the
 * same graph compiled with private buffers (nerve_graph_keep_buffers), bit for bit. */
#include "test.h"

#include "../src/graph/graph.h"

#include <stdint.h>
#include <string.h>

static void fill(nerve_graph *g, int id, unsigned salt)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t i = 0; i < nerve_tensor_numel(&t); i++)
        t.data[i] = test_pseudo(i, salt);
}

static int distinct_op_grad_buffers(const nerve_graph *g, int *n_ops)
{
    int distinct = 0;
    *n_ops = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        if (n->kind != NERVE_NODE_OP || !n->grad || (n->op->flags & OP_ALIAS_INPUT))
            continue;
        (*n_ops)++;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = g->nodes[j].kind == NERVE_NODE_OP && g->nodes[j].grad == n->grad;
        distinct += !seen;
    }
    return distinct;
}

/* ---- a chain of same-sized nodes: two buffers serve all of them ------------------------ */

typedef struct chain {
    nerve_graph *g;
    int x, w, h, loss;
} chain;

/* x[4,6] -> dense(w[6,6]) -> tanh -> (affine, sigmoid) x 4 -> mean. */
static int build_chain(chain *c, int keep)
{
    c->g = nerve_graph_create();
    nerve_graph *g = c->g;
    c->x = nerve_input(g, "x", 2, (int[]){4, 6});
    c->w = nerve_param(g, "w", 2, (int[]){6, 6});
    c->h = nerve_activation(g, nerve_dense(g, c->x, c->w, -1), nerve_act_default(NERVE_ACT_TANH));
    int y = c->h;
    for (int k = 0; k < 4; k++)
        y = nerve_activation(g, nerve_affine(g, y, 1.5f, 0.25f), nerve_act_default(NERVE_ACT_SIGMOID));
    c->loss = nerve_mean(g, y, NERVE_AXIS_ALL, 0);
    nerve_graph_keep_buffers(g, keep);
    int st = nerve_graph_compile(g, 4);
    if (st)
        return st;
    fill(g, c->x, 1);
    fill(g, c->w, 2);
    return NERVE_OK;
}

static int forward_backward(nerve_graph *g, int loss)
{
    int st = nerve_forward(g, loss);
    return st ? st : nerve_backward(g, loss);
}

TEST(memplan_chain_shares_two_gradient_buffers)
{
    chain s, k;
    CHECK_OK(build_chain(&s, 0));
    CHECK_OK(build_chain(&k, 1));
    int n_ops, n_ops_k;
    int distinct = distinct_op_grad_buffers(s.g, &n_ops);
    CHECK(n_ops == 11);
    CHECK_MSG(distinct == 2, "%d distinct gradient buffers for %d operators", distinct, n_ops);
    CHECK(distinct_op_grad_buffers(k.g, &n_ops_k) == n_ops_k && n_ops_k == n_ops);
    for (int pass = 0; pass < 2; pass++) { /* the second pass starts from dirty buffers */
        CHECK_OK(forward_backward(s.g, s.loss));
        CHECK_OK(forward_backward(k.g, k.loss));
        CHECK(memcmp(nerve_grad(s.g, s.w).data, nerve_grad(k.g, k.w).data, 36 * sizeof(float)) == 0);
    }
    CHECK(nerve_grad(s.g, s.h).data == NULL); /* pooled: not readable after backward */
    CHECK(nerve_grad(k.g, k.h).data != NULL);
    nerve_graph_free(s.g);
    nerve_graph_free(k.g);
}

/* requires_grad and frozen may change after compile: the plan reserved buffers for them. */
TEST(memplan_input_gradient_requested_after_compile)
{
    chain s, k;
    CHECK_OK(build_chain(&s, 0));
    CHECK_OK(build_chain(&k, 1));
    CHECK_OK(nerve_input_set_requires_grad(s.g, s.x, 1));
    CHECK_OK(nerve_input_set_requires_grad(k.g, k.x, 1));
    CHECK_OK(nerve_param_set_frozen(s.g, s.w, 1));
    CHECK_OK(nerve_param_set_frozen(k.g, k.w, 1));
    CHECK_OK(forward_backward(s.g, s.loss));
    CHECK_OK(forward_backward(k.g, k.loss));
    const float *gs = nerve_grad(s.g, s.x).data, *gk = nerve_grad(k.g, k.x).data;
    CHECK(gs && gk && nerve_grad(s.g, s.w).data == NULL);
    CHECK(memcmp(gs, gk, 24 * sizeof(float)) == 0);
    float any = 0;
    for (int i = 0; i < 24; i++)
        any += fabsf(gs[i]);
    CHECK(any > 0);
    nerve_graph_free(s.g);
    nerve_graph_free(k.g);
}

/* ---- a node reading one input twice ------------------------------------------------------ */

/* loss = sum(h*h + h*h) with h = w * x: dloss/dw = 4 h x = 4 w x^2. The pooled gradient of
 * h is zeroed once, before the first of the two accumulations from each consumer. */
TEST(memplan_node_consuming_the_same_input_twice)
{
    for (int keep = 0; keep < 2; keep++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_input(g, "x", 2, (int[]){1, 5});
        int w = nerve_param(g, "w", 2, (int[]){1, 5});
        int h = nerve_mul(g, w, x);
        int sq = nerve_mul(g, h, h);
        int loss = nerve_sum(g, nerve_add(g, sq, sq), NERVE_AXIS_ALL, 0);
        nerve_graph_keep_buffers(g, keep);
        CHECK_OK(nerve_graph_compile(g, 1));
        fill(g, x, 3);
        fill(g, w, 4);
        for (int pass = 0; pass < 2; pass++) {
            CHECK_OK(forward_backward(g, loss));
            const float *xv = nerve_value(g, x).data, *wv = nerve_value(g, w).data;
            for (int i = 0; i < 5; i++)
                CHECK_NEAR(nerve_grad(g, w).data[i], 4.0 * wv[i] * xv[i] * xv[i], 1e-5);
        }
        nerve_graph_free(g);
    }
}

/* ---- in-place activations ---------------------------------------------------------------- */

typedef struct bn_net {
    nerve_graph *g;
    int x, bn, relu, loss, params[8];
    int n_params;
} bn_net;

/* x[6,5] -> dense -> batchnorm -> relu -> dense -> mse against a fixed target. With
 * `second_reader`, the batchnorm output also feeds an add, so relu may not overwrite it. */
static int build_bn_net(bn_net *b, int keep, int second_reader)
{
    b->g = nerve_graph_create();
    nerve_graph *g = b->g;
    nerve_rng rng;
    nerve_rng_seed(&rng, 7);
    nerve_init he = {0};
    int st = nerve_init_parse("he", &he);
    if (st)
        return st;
    b->x = nerve_input(g, "x", 2, (int[]){6, 5});
    int t = nerve_input(g, "target", 2, (int[]){6, 3});
    int h = nerve_layer_dense(g, b->x, 4, 1, he, &rng, "fc1");
    b->bn = nerve_layer_batchnorm(g, h, 0.1f, 1e-5f, "bn");
    b->relu = nerve_activation(g, b->bn, nerve_act_default(NERVE_ACT_RELU));
    int y = second_reader ? nerve_add(g, b->relu, b->bn) : b->relu;
    int out = nerve_layer_dense(g, y, 3, 1, he, &rng, "fc2");
    b->loss = nerve_mse_loss(g, out, t, 0);
    nerve_graph_keep_buffers(g, keep);
    st = nerve_graph_compile(g, 6);
    if (st)
        return st;
    fill(g, b->x, 5);
    fill(g, t, 6);
    b->n_params = nerve_graph_params(g, b->params, 8);
    return NERVE_OK;
}

static int same_param_grads(nerve_graph *a, const int *pa, nerve_graph *b, const int *pb, int n)
{
    for (int i = 0; i < n; i++) {
        nerve_tensor ta = nerve_grad(a, pa[i]), tb = nerve_grad(b, pb[i]);
        size_t numel = nerve_tensor_numel(&ta);
        if (numel != nerve_tensor_numel(&tb) || memcmp(ta.data, tb.data, numel * sizeof(float)))
            return 0;
    }
    return 1;
}

TEST(memplan_relu_after_batchnorm_runs_in_place)
{
    bn_net s, k;
    CHECK_OK(build_bn_net(&s, 0, 0));
    CHECK_OK(build_bn_net(&k, 1, 0));
    CHECK(s.n_params == 6 && k.n_params == 6);
    CHECK(s.g->nodes[s.relu].in_place && s.g->nodes[s.relu].value == s.g->nodes[s.bn].value);
    CHECK(!k.g->nodes[k.relu].in_place && k.g->nodes[k.relu].value != k.g->nodes[k.bn].value);
    /* and is folded into it: the norm applies the ReLU and masks the gradient itself */
    CHECK(s.g->nodes[s.relu].fused && s.g->nodes[s.bn].fused_relu);
    CHECK(s.g->nodes[s.relu].grad == s.g->nodes[s.bn].grad);
    CHECK(!k.g->nodes[k.relu].fused && !k.g->nodes[k.bn].fused_relu);
    for (int pass = 0; pass < 4; pass++) {
        nerve_graph_set_training(s.g, pass >= 2); /* running statistics, then batch ones */
        nerve_graph_set_training(k.g, pass >= 2);
        CHECK_OK(forward_backward(s.g, s.loss));
        CHECK_OK(forward_backward(k.g, k.loss));
        CHECK(same_param_grads(s.g, s.params, k.g, k.params, 6));
        /* the relu output is right even though it overwrote the batchnorm output */
        const float *bn = nerve_value(k.g, k.bn).data, *r = nerve_value(s.g, s.relu).data;
        for (int i = 0; i < 24; i++)
            CHECK(r[i] == (bn[i] > 0 ? bn[i] : 0.0f));
    }
    nerve_graph_free(s.g);
    nerve_graph_free(k.g);
}

TEST(memplan_no_in_place_when_the_input_has_two_readers)
{
    bn_net s, k;
    CHECK_OK(build_bn_net(&s, 0, 1));
    CHECK_OK(build_bn_net(&k, 1, 1));
    CHECK(!s.g->nodes[s.relu].in_place && s.g->nodes[s.relu].value != s.g->nodes[s.bn].value);
    CHECK(!s.g->nodes[s.relu].fused && !s.g->nodes[s.bn].fused_relu);
    CHECK_OK(forward_backward(s.g, s.loss));
    CHECK_OK(forward_backward(k.g, k.loss));
    CHECK(same_param_grads(s.g, s.params, k.g, k.params, 6));
    nerve_graph_free(s.g);
    nerve_graph_free(k.g);
}

TEST(memplan_no_in_place_over_a_leaf_or_for_types_that_need_the_input)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){2, 3});
    int w = nerve_param(g, "w", 2, (int[]){3, 3});
    int on_leaf = nerve_activation(g, x, nerve_act_default(NERVE_ACT_RELU));
    int h = nerve_dense(g, on_leaf, w, -1);
    /* a negative leaky slope makes y > 0 ambiguous, so its backward needs u */
    int leaky = nerve_activation(g, h, (nerve_act){NERVE_ACT_LEAKY_RELU, -0.5f, 0.0f});
    nerve_sum(g, leaky, NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK(!g->nodes[on_leaf].in_place && !g->nodes[leaky].in_place);
    nerve_graph_free(g);
}

/* ---- whole models from cfg text ---------------------------------------------------------- */

static const char *MLP_CFG =
    "[net]\ninputs=12\nbatch=8\nclasses=4\n"
    "[connected]\noutput=16\nactivation=relu\n"
    "[connected]\noutput=16\nactivation=tanh\n"
    "[connected]\noutput=4\nactivation=linear\n"
    "[softmax]\n";

static const char *RESIDUAL_CFG =
    "[net]\nheight=8\nwidth=8\nchannels=2\nbatch=4\nclasses=3\n"
    "[convolutional]\nfilters=4\nsize=3\npadding=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\npadding=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\npadding=1\nbatch_normalize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-3\nactivation=relu\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npadding=1\nbatch_normalize=1\nactivation=relu\n"
    "[avgpool]\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\n";

/* Trains two copies of a cfg model (pooled vs private buffers) for three steps on the same
 * data and compares every parameter gradient bit for bit after each backward. */
static void check_model_plans_agree(const char *cfg, int batch, int want_in_place,
                                    int want_fused)
{
    nerve_model *m[2];
    int ids[2][64], np[2], in_place = 0, fused = 0;
    for (int keep = 0; keep < 2; keep++) {
        m[keep] = nerve_model_from_cfg(cfg, "memplan.cfg");
        CHECK(m[keep]);
        nerve_graph *g = nerve_model_graph(m[keep]);
        nerve_graph_keep_buffers(g, keep);
        CHECK_OK(nerve_model_compile(m[keep], batch));
        nerve_graph_set_training(g, 1);
        np[keep] = nerve_graph_params(g, ids[keep], 64);
        for (int i = 0; !keep && i < g->n_nodes; i++) {
            in_place += g->nodes[i].in_place;
            fused += g->nodes[i].fused;
        }
    }
    CHECK(np[0] == np[1] && np[0] > 0 && np[0] <= 64);
    CHECK_MSG(in_place >= want_in_place, "%d in-place nodes, expected at least %d", in_place,
              want_in_place);
    CHECK_MSG(fused == want_fused, "%d fused nodes, expected %d", fused, want_fused);
    for (int step = 0; step < 3; step++) {
        for (int keep = 0; keep < 2; keep++) {
            nerve_model *mm = m[keep];
            nerve_graph *g = nerve_model_graph(mm);
            fill(g, nerve_model_input(mm), 10 + (unsigned)step);
            nerve_tensor lab = nerve_value(g, nerve_model_labels(mm));
            for (size_t i = 0; i < nerve_tensor_numel(&lab); i++)
                lab.data[i] = (float)((i + (size_t)step) % 3);
            CHECK_OK(forward_backward(g, nerve_model_loss(mm)));
        }
        nerve_graph *g0 = nerve_model_graph(m[0]), *g1 = nerve_model_graph(m[1]);
        CHECK(nerve_value(g0, nerve_model_loss(m[0])).data[0] ==
              nerve_value(g1, nerve_model_loss(m[1])).data[0]);
        CHECK_MSG(same_param_grads(g0, ids[0], g1, ids[1], np[0]), "step %d: gradients differ", step);
        for (int i = 0; i < np[0]; i++) { /* a plain SGD step keeps both copies in lockstep */
            nerve_tensor v0 = nerve_value(g0, ids[0][i]), v1 = nerve_value(g1, ids[1][i]);
            const float *d = nerve_grad(g0, ids[0][i]).data;
            for (size_t j = 0; j < nerve_tensor_numel(&v0); j++) {
                v0.data[j] -= 0.1f * d[j];
                v1.data[j] -= 0.1f * d[j];
            }
        }
    }
    nerve_model_free(m[0]);
    nerve_model_free(m[1]);
}

TEST(memplan_mlp_gradients_match_private_buffers)
{
    check_model_plans_agree(MLP_CFG, 8, 0, 0);
}

TEST(memplan_residual_conv_net_gradients_match_private_buffers)
{
    check_model_plans_agree(RESIDUAL_CFG, 4, 3, 3); /* the three batch norms with a ReLU */
}

/* ---- allocation ----------------------------------------------------------------------------- */

TEST(memplan_large_float_blocks_are_zeroed_aligned_and_counted)
{
    size_t before = nerve_alloc_bytes();
    size_t sizes[] = {3, 1000, (size_t)1 << 18, ((size_t)1 << 20) + 5};
    for (size_t s = 0; s < NERVE_ARRAY_LEN(sizes); s++) {
        float *p = nerve_xalloc_floats(sizes[s]);
        CHECK(p && ((uintptr_t)p & 63) == 0);
        CHECK(nerve_alloc_bytes() >= before + sizes[s] * sizeof(float));
        for (size_t i = 0; i < sizes[s]; i += 997)
            CHECK(p[i] == 0.0f);
        CHECK(p[sizes[s] - 1] == 0.0f);
        p[0] = p[sizes[s] - 1] = 1.0f;
        nerve_xfree_aligned(p);
        CHECK(nerve_alloc_bytes() == before);
    }
}

/* ---- one workspace for the convolutions ----------------------------------------------- */

/* The convolutions' scratch is workspace of a single call: every conv of a graph uses the
 * same buffer, the graph's one, while operators whose scratch carries state from forward
 * to backward (max pooling's argmax, batch norm's statistics) keep their own. Gradients
 * through three convolutions of different shapes and routes still pass finite
 * differences, so no conv relies on what another left there. */
TEST(memplan_convolutions_share_one_workspace)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){2, 2, 7, 6});
    nerve_conv_config same = nerve_conv_default(), strided = nerve_conv_default();
    same.same = 1;
    strided.stride[0] = strided.stride[1] = 2;
    int w1 = nerve_param(g, "w1", 4, (int[]){4, 2, 3, 3});
    int w2 = nerve_param(g, "w2", 4, (int[]){3, 4, 3, 3});
    int w3 = nerve_param(g, "w3", 4, (int[]){2, 3, 1, 1});
    int c1 = nerve_conv(g, x, w1, -1, &same);
    nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_MAX, 2, 1, 0);
    int p = nerve_pool(g, nerve_activation(g, c1, nerve_act_default(NERVE_ACT_TANH)), &pc);
    int c2 = nerve_conv(g, p, w2, -1, &strided);
    int c3 = nerve_conv(g, nerve_activation(g, c2, nerve_act_default(NERVE_ACT_TANH)), w3, -1,
                        NULL);
    int loss = nerve_mean(g, nerve_mul(g, c3, c3), NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_graph_compile(g, 2));
    fill(g, x, 31);
    fill(g, w1, 32);
    fill(g, w2, 33);
    fill(g, w3, 34);
    const node *n1 = &g->nodes[c1], *n2 = &g->nodes[c2], *np = &g->nodes[p];
    CHECK(g->workspace && n1->scratch == g->workspace && n2->scratch == g->workspace);
    CHECK(np->scratch && np->scratch != g->workspace);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}
