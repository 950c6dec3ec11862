/*
 * perceptron.c: Rosenblatt's perceptron rule on the course's worked example.
 *
 * A perceptron is one neuron with a step activation:
 *
 *     u = w . x          (the "induced local field"; no bias in this example)
 *     y = step(u)        (1 if u >= 0, else 0)
 *
 * Rosenblatt's rule looks at one sample at a time. The error e = d - y is -1, 0 or +1,
 * and the weights move by
 *
 *     w <- w + eta * e * x
 *
 * so a correct answer (e = 0) changes nothing, a missed "1" adds the sample to w and a
 * false "1" subtracts it. The perceptron convergence theorem says that if the classes are
 * linearly separable this stops after finitely many updates: a whole pass over the data
 * with no mistakes.
 *
 * The course's worked example: x1 = (1, 2) with d = 1, x2 = (-1, 2) and x3 = (0, -1) with
 * d = 0, start at w = (1, -0.8), eta = 1. By hand:
 *
 *     x1: u = -0.6, y = 0, e = +1, w = (2, 1.2)
 *     x2: u =  0.4, y = 1, e = -1, w = (3, -0.8)
 *     x3: u =  0.8, y = 1, e = -1, w = (3, 0.2)
 *
 * and the second pass is all correct (u = 3.4, -2.6, -0.2).
 *
 * Here the forward pass (u and y) is a nerve graph: an input [N, 2], a dense operator with
 * a [1, 2] weight parameter and no bias, then the STEP activation. The learning rule is not
 * gradient descent (the step has no useful gradient), so we apply it ourselves, in plain C,
 * to the weight tensor that nerve_value() hands us.
 *
 * Output, one line per sample presented:
 *     pass=P sample=xK x=(X1,X2) d=D u=U y=Y err=E w=(W1,W2)
 * where w is the weight vector after the rule (unchanged when err=0), then
 *     converged after N updates in P passes w=(W1,W2)
 *
 * Run: make && ./build/examples/perceptron
 */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>

/* The training set of the worked example. */
#define N_SAMPLES 3
static const float X[N_SAMPLES][2] = {{1, 2}, {-1, 2}, {0, -1}};
static const float D[N_SAMPLES] = {1, 0, 0};
static const float W_START[2] = {1.0f, -0.8f};
static const float ETA = 1.0f;
static const int MAX_PASSES = 100; /* a safety net; the example converges in 2 */

/* Stops the program with nerve's error message if a call failed. */
static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "perceptron: %s failed: %s\n", what, nerve_last_error());
        exit(1);
    }
    return status;
}

/* The perceptron as a graph: x [1, 2] -> u = x w^T [1, 1] -> y = step(u) [1, 1]. */
typedef struct perceptron {
    nerve_graph *g;
    int x, w, u, y;
} perceptron;

static perceptron perceptron_build(void)
{
    perceptron p;
    p.g = nerve_graph_create();
    if (!p.g)
        check(-1, "nerve_graph_create");
    p.x = check(nerve_input(p.g, "x", 2, (int[]){1, 2}), "nerve_input");
    p.w = check(nerve_param(p.g, "w", 2, (int[]){1, 2}), "nerve_param");
    p.u = check(nerve_dense(p.g, p.x, p.w, -1), "nerve_dense"); /* -1: no bias */
    p.y = check(nerve_activation(p.g, p.u, nerve_act_default(NERVE_ACT_STEP)),
                "nerve_activation");
    /* We print u after each forward pass: keep its buffer (by default the step may be
     * computed in place over it). Online learning: one sample at a time, so a batch of 1. */
    nerve_graph_keep_buffers(p.g, 1);
    check(nerve_graph_compile(p.g, 1), "nerve_graph_compile");
    return p;
}

/* Runs the forward pass on one sample; returns y and stores u. */
static int perceptron_classify(perceptron *p, const float *x, float *u)
{
    float *in = nerve_value(p->g, p->x).data;
    in[0] = x[0];
    in[1] = x[1];
    check(nerve_forward(p->g, p->y), "nerve_forward");
    *u = nerve_value(p->g, p->u).data[0];
    return (int)nerve_value(p->g, p->y).data[0];
}

int main(void)
{
    perceptron p = perceptron_build();

    /* The weight parameter lives in the graph; nerve_value() is a view we can write. */
    float *w = nerve_value(p.g, p.w).data;
    w[0] = W_START[0];
    w[1] = W_START[1];
    printf("start w=(%.4f,%.4f) eta=%.4f\n", w[0], w[1], ETA);

    int updates = 0, pass = 0, mistakes = 1;
    while (mistakes > 0 && pass < MAX_PASSES) {
        pass++;
        mistakes = 0;
        for (int k = 0; k < N_SAMPLES; k++) {
            float u;
            int y = perceptron_classify(&p, X[k], &u);
            int err = (int)D[k] - y; /* -1, 0 or +1 */
            if (err != 0) {
                /* Rosenblatt's rule: w <- w + eta * (d - y) * x. */
                w[0] += ETA * (float)err * X[k][0];
                w[1] += ETA * (float)err * X[k][1];
                updates++;
                mistakes++;
            }
            printf("pass=%d sample=x%d x=(%g,%g) d=%d u=%.4f y=%d err=%+d w=(%.4f,%.4f)\n",
                   pass, k + 1, X[k][0], X[k][1], (int)D[k], u, y, err, w[0], w[1]);
        }
    }
    if (mistakes > 0) {
        printf("not converged after %d passes\n", pass);
    } else {
        printf("converged after %d updates in %d passes w=(%.4f,%.4f)\n", updates, pass, w[0],
               w[1]);
    }

    nerve_graph_free(p.g);
    return mistakes > 0;
}
