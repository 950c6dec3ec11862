/*
 * api_tour.c: a short tour of the libnerve C API, end to end.
 *
 * The problem: two classes of points in the plane, each a Gaussian blob (class 0 around
 * (-1, -1), class 1 around (1, 1), standard deviation 0.6). We train a small MLP
 * 2 -> 16 (ReLU) -> 2 with softmax cross-entropy and Adam, then measure its accuracy on
 * fresh points from the same blobs.
 *
 * The steps every nerve program follows:
 *   1. build a graph: inputs, layers (which create their parameters), a loss node;
 *   2. compile it once for the largest batch: shapes are checked and every buffer is
 *      allocated, so training allocates nothing;
 *   3. write a batch into the input tensors (nerve_value() gives views into the graph);
 *   4. loop: forward, backward, optimiser step;
 *   5. evaluate: forward to the logits (a smaller batch is fine: nerve_graph_set_batch).
 *
 * Output: the loss every 50 steps, then
 *     train accuracy: <acc>
 *     test accuracy: <acc>         (about 0.98; tests/test_examples.c wants >= 0.95)
 *
 * Run: make && ./build/examples/api_tour
 */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>

enum { N_TRAIN = 400, N_TEST = 200, HIDDEN = 16, STEPS = 300 };
static const float SPREAD = 0.6f, LR = 0.01f;

static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "api_tour: %s failed: %s\n", what, nerve_last_error());
        exit(1);
    }
    return status;
}

/* n points, alternating classes: x [n, 2], label [n] (as floats, as nerve wants them). */
static void make_blobs(nerve_rng *rng, int n, float *x, float *label)
{
    for (int i = 0; i < n; i++) {
        int c = i % 2;
        float centre = c ? 1.0f : -1.0f;
        x[2 * i] = centre + SPREAD * nerve_rng_normal(rng);
        x[2 * i + 1] = centre + SPREAD * nerve_rng_normal(rng);
        label[i] = (float)c;
    }
}

/* Fraction of the current batch whose largest logit is at the true class. */
static double accuracy(nerve_graph *g, int logits, int labels)
{
    check(nerve_forward(g, logits), "nerve_forward");
    nerve_tensor z = nerve_value(g, logits); /* [n, 2] */
    const float *y = nerve_value(g, labels).data;
    int n = z.dims[0], correct = 0;
    for (int i = 0; i < n; i++) {
        int predicted = z.data[2 * i + 1] > z.data[2 * i];
        correct += predicted == (int)y[i];
    }
    return (double)correct / n;
}

int main(void)
{
    nerve_rng rng;
    nerve_rng_seed(&rng, 42);

    /* 1. The graph. Input dims[0] is the batch: its value here is a placeholder. */
    nerve_graph *g = nerve_graph_create();
    int x = check(nerve_input(g, "x", 2, (int[]){1, 2}), "nerve_input");
    int labels = check(nerve_input(g, "labels", 1, (int[]){1}), "nerve_input");
    nerve_init he = {NERVE_INIT_HE_UNIFORM, 0, 0}, glorot = {NERVE_INIT_GLOROT_UNIFORM, 0, 0};
    int h = check(nerve_layer_dense(g, x, HIDDEN, 1, he, &rng, "fc1"), "fc1");
    h = check(nerve_activation(g, h, nerve_act_default(NERVE_ACT_RELU)), "relu");
    int logits = check(nerve_layer_dense(g, h, 2, 1, glorot, &rng, "fc2"), "fc2");
    int loss = check(nerve_softmax_ce_loss(g, logits, labels, -1, 0.0f), "loss");

    /* 2. Compile for the largest batch we will use (the whole training set). */
    check(nerve_graph_compile(g, N_TRAIN), "nerve_graph_compile");
    printf("parameters: %zu\n", nerve_graph_param_count(g));

    /* 3. The data goes straight into the input tensors. */
    make_blobs(&rng, N_TRAIN, nerve_value(g, x).data, nerve_value(g, labels).data);

    /* 4. Full-batch training with Adam (the course's defaults, learning rate 0.01). */
    nerve_optim_config cfg = nerve_optim_default(NERVE_OPT_ADAM);
    nerve_optim *opt = nerve_optim_create(g, &cfg);
    if (!opt)
        check(-1, "nerve_optim_create");
    for (int step = 1; step <= STEPS; step++) {
        nerve_optim_prepare(opt);
        check(nerve_forward(g, loss), "nerve_forward");
        check(nerve_backward(g, loss), "nerve_backward");
        nerve_optim_step(opt, LR);
        if (step == 1 || step % 50 == 0)
            printf("step %3d loss %.4f\n", step, nerve_value(g, loss).data[0]);
    }
    printf("train accuracy: %.4f\n", accuracy(g, logits, labels));

    /* 5. Fresh points from the same blobs, as a smaller batch of the same graph. */
    check(nerve_graph_set_batch(g, N_TEST), "nerve_graph_set_batch");
    make_blobs(&rng, N_TEST, nerve_value(g, x).data, nerve_value(g, labels).data);
    printf("test accuracy: %.4f\n", accuracy(g, logits, labels));

    nerve_optim_free(opt);
    nerve_graph_free(g);
    return 0;
}
