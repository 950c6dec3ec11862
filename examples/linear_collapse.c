/*
 * linear_collapse.c: without a nonlinearity, depth buys nothing.
 *
 * A two-layer network with the identity as its activation computes
 *
 *     y = W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2) = W x + b
 *
 * so it is exactly one linear layer with W = W2 W1 and b = W2 b1 + b2: however many linear
 * layers we stack, the network can only draw straight lines (and cannot learn XOR, see
 * logic_gates.c). This is why every hidden layer needs a nonlinear activation.
 *
 * We build a 3-4-2 network in nerve with identity activations and random weights and
 * biases, collapse it by hand into W [2, 3] and b [2], build that single layer as a second
 * nerve graph, and compare the two on random inputs.
 *
 * Output (parsed by tests/test_examples.c):
 *     W row i: ...  and  b: ...       the collapsed layer
 *     max |y| = <largest output>      so we know the comparison is not of zeros
 *     max |deep - single| = <diff>    agreement, about 1e-7 (float rounding)
 *
 * Run: make && ./build/examples/linear_collapse
 */
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N_IN = 3, N_HIDDEN = 4, N_OUT = 2, BATCH = 64 };

static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "linear_collapse: %s failed: %s\n", what, nerve_last_error());
        exit(1);
    }
    return status;
}

/* Fills a graph node with N(0, 1) samples (inputs, and the biases that layers start at 0). */
static void fill_normal(nerve_graph *g, int node, nerve_rng *rng)
{
    nerve_tensor t = nerve_value(g, node);
    for (size_t i = 0; i < nerve_tensor_numel(&t); i++)
        t.data[i] = nerve_rng_normal(rng);
}

static int param(nerve_graph *g, const char *name)
{
    return check(nerve_node_find(g, name), name);
}

int main(void)
{
    nerve_rng rng;
    nerve_rng_seed(&rng, 2024);
    nerve_act identity = nerve_act_default(NERVE_ACT_IDENTITY);
    nerve_init normal = {NERVE_INIT_NORMAL, 0.0f, 1.0f};

    /* The deep network: x [N, 3] -> fc1 [N, 4] -> identity -> fc2 [N, 2] -> identity. */
    nerve_graph *deep = nerve_graph_create();
    int x = check(nerve_input(deep, "x", 2, (int[]){1, N_IN}), "nerve_input");
    int h = check(nerve_layer_dense(deep, x, N_HIDDEN, 1, normal, &rng, "fc1"), "fc1");
    h = check(nerve_activation(deep, h, identity), "nerve_activation");
    int y = check(nerve_layer_dense(deep, h, N_OUT, 1, normal, &rng, "fc2"), "fc2");
    y = check(nerve_activation(deep, y, identity), "nerve_activation");
    check(nerve_graph_compile(deep, BATCH), "nerve_graph_compile");
    fill_normal(deep, param(deep, "fc1.bias"), &rng);
    fill_normal(deep, param(deep, "fc2.bias"), &rng);

    const float *W1 = nerve_value(deep, param(deep, "fc1.weight")).data; /* [4, 3] */
    const float *b1 = nerve_value(deep, param(deep, "fc1.bias")).data;   /* [4] */
    const float *W2 = nerve_value(deep, param(deep, "fc2.weight")).data; /* [2, 4] */
    const float *b2 = nerve_value(deep, param(deep, "fc2.bias")).data;   /* [2] */

    /* The single layer: x [N, 3] -> y = x W^T + b [N, 2]. */
    nerve_graph *single = nerve_graph_create();
    int xs = check(nerve_input(single, "x", 2, (int[]){1, N_IN}), "nerve_input");
    int Wn = check(nerve_param(single, "W", 2, (int[]){N_OUT, N_IN}), "nerve_param");
    int bn = check(nerve_param(single, "b", 1, (int[]){N_OUT}), "nerve_param");
    int ys = check(nerve_dense(single, xs, Wn, bn), "nerve_dense");
    check(nerve_graph_compile(single, BATCH), "nerve_graph_compile");

    /* Collapse by hand: W = W2 W1 and b = W2 b1 + b2. */
    float *W = nerve_value(single, Wn).data, *b = nerve_value(single, bn).data;
    for (int i = 0; i < N_OUT; i++) {
        for (int j = 0; j < N_IN; j++) {
            float s = 0;
            for (int k = 0; k < N_HIDDEN; k++)
                s += W2[i * N_HIDDEN + k] * W1[k * N_IN + j];
            W[i * N_IN + j] = s;
        }
        float s = b2[i];
        for (int k = 0; k < N_HIDDEN; k++)
            s += W2[i * N_HIDDEN + k] * b1[k];
        b[i] = s;
    }
    for (int i = 0; i < N_OUT; i++)
        printf("W row %d: %9.4f %9.4f %9.4f   b: %9.4f\n", i, W[i * N_IN], W[i * N_IN + 1],
               W[i * N_IN + 2], b[i]);

    /* The same random inputs through both networks. */
    fill_normal(deep, x, &rng);
    const float *in = nerve_value(deep, x).data;
    float *in_single = nerve_value(single, xs).data;
    for (int i = 0; i < BATCH * N_IN; i++)
        in_single[i] = in[i];
    check(nerve_forward(deep, y), "nerve_forward");
    check(nerve_forward(single, ys), "nerve_forward");

    const float *yd = nerve_value(deep, y).data, *ysv = nerve_value(single, ys).data;
    double max_y = 0, max_diff = 0;
    for (int i = 0; i < BATCH * N_OUT; i++) {
        max_y = fmax(max_y, fabs(yd[i]));
        max_diff = fmax(max_diff, fabs((double)yd[i] - ysv[i]));
    }
    printf("inputs: %d random samples\n", BATCH);
    printf("max |y| = %.4f\n", max_y);
    printf("max |deep - single| = %.3e\n", max_diff);
    printf("%s\n", max_diff <= 1e-5 ? "the two networks agree" : "MISMATCH");

    nerve_graph_free(deep);
    nerve_graph_free(single);
    return max_diff <= 1e-5 ? 0 : 1;
}
