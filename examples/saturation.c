/*
 * saturation.c: why a saturated sigmoid learns slowly under MSE and not under
 * cross-entropy (the course's version of Nielsen's demo, "Neural Networks and Deep
 * Learning", chapter 3).
 *
 * One sigmoid neuron, one training sample: input x = 1, desired output d = 0.
 *
 *     z = w x + b,   a = sigma(z)
 *
 * Two starting points: case A w = 0.6, b = 0.9 (z = 1.5, a = 0.82) and case B w = 2, b = 2
 * (z = 4, a = 0.98). Both are wrong; B is more wrong, so we might hope it learns faster.
 *
 * Under the half squared error C = (a - d)^2 / 2 the gradient is
 *
 *     dC/dw = (a - d) sigma'(z) x,      dC/db = (a - d) sigma'(z)
 *
 * and sigma'(z) = sigma(z) (1 - sigma(z)) is tiny where the sigmoid is flat: 0.149 at
 * z = 1.5 but 0.0177 at z = 4. So case B, the worse start, barely moves for the first
 * hundred-odd epochs: the neuron is "saturated".
 *
 * Under cross-entropy C = -[d ln a + (1 - d) ln(1 - a)] the sigma' cancels:
 *
 *     dC/dw = (a - d) x,                dC/db = (a - d)
 *
 * The gradient is proportional to the error itself, so the worse start learns at least as
 * fast. We compute cross-entropy from the pre-activation z (nerve_bce_logits_loss), which
 * is also the numerically stable way.
 *
 * Both runs use plain gradient descent with eta = 0.15 for 300 epochs, as in the demo.
 *
 * Output (parsed by tests/test_examples.c):
 *     case=A z=1.5000 a=0.8176 sigma'=0.1491         the starting point of each case
 *     epoch E a(mse,A) a(mse,B) a(ce,A) a(ce,B)       the output after E epochs
 *
 * Run: make && ./build/examples/saturation
 */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>

#define EPOCHS 300
static const float ETA = 0.15f;
static const int SHOW[] = {0, 50, 100, 150, 200, 250, 300}; /* epochs to print */
#define N_SHOW ((int)(sizeof SHOW / sizeof SHOW[0]))

static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "saturation: %s failed: %s\n", what, nerve_last_error());
        exit(1);
    }
    return status;
}

enum { LOSS_MSE, LOSS_CE };

/* The neuron as a graph: x [1, 1] -> z = x w^T + b [1, 1] -> a = sigma(z), and the loss
 * node of the chosen kind against the target d [1, 1]. */
typedef struct neuron {
    nerve_graph *g;
    int x, d, w, b, z, a, loss;
} neuron;

static neuron neuron_build(int loss_kind, float w0, float b0)
{
    neuron n;
    n.g = nerve_graph_create();
    n.x = check(nerve_input(n.g, "x", 2, (int[]){1, 1}), "nerve_input");
    n.d = check(nerve_input(n.g, "d", 2, (int[]){1, 1}), "nerve_input");
    n.w = check(nerve_param(n.g, "w", 2, (int[]){1, 1}), "nerve_param");
    n.b = check(nerve_param(n.g, "b", 1, (int[]){1}), "nerve_param");
    n.z = check(nerve_dense(n.g, n.x, n.w, n.b), "nerve_dense");
    n.a = check(nerve_activation(n.g, n.z, nerve_act_default(NERVE_ACT_SIGMOID)), "sigmoid");
    if (loss_kind == LOSS_MSE)
        n.loss = check(nerve_mse_loss(n.g, n.a, n.d, 1), "nerve_mse_loss"); /* half: 1/2 */
    else
        n.loss = check(nerve_bce_logits_loss(n.g, n.z, n.d), "nerve_bce_logits_loss");
    nerve_graph_keep_buffers(n.g, 1); /* z is printed: no sigmoid in place over it */
    check(nerve_graph_compile(n.g, 1), "nerve_graph_compile");

    nerve_value(n.g, n.x).data[0] = 1.0f; /* the one training sample: x = 1, d = 0 */
    nerve_value(n.g, n.d).data[0] = 0.0f;
    nerve_value(n.g, n.w).data[0] = w0;
    nerve_value(n.g, n.b).data[0] = b0;
    return n;
}

/* The neuron's output a = sigma(w x + b) for the current weights. */
static float neuron_output(neuron *n)
{
    check(nerve_forward(n->g, n->a), "nerve_forward");
    return nerve_value(n->g, n->a).data[0];
}

/* Trains for EPOCHS epochs with gradient descent, recording a at the SHOW epochs. */
static void neuron_train(neuron *n, float *a_at)
{
    nerve_optim_config cfg = nerve_optim_default(NERVE_OPT_SGD); /* w <- w - eta dC/dw */
    nerve_optim *opt = nerve_optim_create(n->g, &cfg);
    if (!opt)
        check(-1, "nerve_optim_create");
    int next = 0;
    for (int epoch = 0; epoch <= EPOCHS; epoch++) {
        if (next < N_SHOW && SHOW[next] == epoch)
            a_at[next++] = neuron_output(n);
        if (epoch == EPOCHS)
            break;
        check(nerve_forward(n->g, n->loss), "nerve_forward");
        check(nerve_backward(n->g, n->loss), "nerve_backward");
        nerve_optim_step(opt, ETA);
    }
    nerve_optim_free(opt);
}

int main(void)
{
    const char *case_name[2] = {"A", "B"};
    const float w0[2] = {0.6f, 2.0f}, b0[2] = {0.9f, 2.0f};

    /* The starting point: sigma'(z) = a (1 - a) is what scales the MSE gradient. */
    for (int c = 0; c < 2; c++) {
        neuron n = neuron_build(LOSS_MSE, w0[c], b0[c]);
        float a = neuron_output(&n);
        printf("case=%s w=%.1f b=%.1f z=%.4f a=%.4f sigma'=%.4f\n", case_name[c], w0[c], b0[c],
               nerve_value(n.g, n.z).data[0], a, a * (1 - a));
        nerve_graph_free(n.g);
    }

    /* Four runs: {MSE, CE} x {A, B}; a[run][k] is the output at epoch SHOW[k]. */
    float a[4][N_SHOW];
    for (int loss = LOSS_MSE; loss <= LOSS_CE; loss++)
        for (int c = 0; c < 2; c++) {
            neuron n = neuron_build(loss, w0[c], b0[c]);
            neuron_train(&n, a[2 * loss + c]);
            nerve_graph_free(n.g);
        }

    printf("# epoch   a(mse,A) a(mse,B) a(ce,A)  a(ce,B)\n");
    for (int k = 0; k < N_SHOW; k++)
        printf("epoch %3d %.4f   %.4f   %.4f   %.4f\n", SHOW[k], a[0][k], a[1][k], a[2][k],
               a[3][k]);
    return 0;
}
