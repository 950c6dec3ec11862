/*
 * logic_gates.c: logic gates from single neurons, and why XOR needs a hidden layer.
 *
 * A step unit computes y = step(w0 * x0 + w1 * x1 + ... + wR * xR) with the bias folded
 * in as w0 and a constant input x0 = 1. Choosing the weights by hand gives logic gates:
 *
 *     AND: w = (-1.5, 1, 1)   fires only when x1 + x2 >= 1.5, i.e. both inputs are 1
 *     OR:  w = (-0.5, 1, 1)   fires when x1 + x2 >= 0.5, i.e. at least one input is 1
 *     R-input AND: weights 1 and bias -(R - 0.5): fires only when all R inputs are 1
 *
 * Each gate draws one straight line (a hyperplane) through input space and answers 1 on
 * one side. XOR = (0, 1, 1, 0) puts the 1s on opposite corners of the square: no single
 * line separates them, so no single unit (step or sigmoid) can compute it. We show this
 * twice: the best step unit on a grid of 4913 weight vectors gets 3 of 4 right, and a
 * sigmoid unit trained by gradient descent on cross-entropy stalls at 2 or 3 of 4 (its
 * loss goes to ln 2 = 0.693, the loss of answering 0.5 everywhere: the best it can do is
 * w = 0, b = 0, and which rows its tiny logits round the right way is a coin flip). A hidden layer of two
 * or more units bends the boundary, and a 2-4-1 network with tanh hidden units trained by
 * back-propagation gets all 4.
 *
 * Output (parsed by tests/test_examples.c):
 *     <gate> x=<bits> y=<output> want=<truth>     one line per truth-table row
 *     <gate>: <correct>/<rows>                   summary per gate (and, or, and3)
 *     xor best step unit on grid: <correct>/4
 *     xor single unit: <correct>/4
 *     xor mlp: <correct>/4
 *
 * Run: make && ./build/examples/logic_gates
 */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_INPUTS 3                 /* largest gate: the 3-input AND */
#define MAX_ROWS (1 << MAX_INPUTS)   /* rows of its truth table */

static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "logic_gates: %s failed: %s\n", what, nerve_last_error());
        exit(1);
    }
    return status;
}

/* Input bit i of truth-table row r (the first input is the most significant bit). */
static float row_bit(int r, int i, int n_inputs) { return (float)((r >> (n_inputs - 1 - i)) & 1); }

/* ---------------------------------------------------------------------------------- */
/* Step units with hand-set weights                                                     */
/* ---------------------------------------------------------------------------------- */

/* One step unit evaluated on every row of a truth table at once:
 * x [rows, 1 + R] (x0 = 1 then the R bits) -> u = x w^T [rows, 1] -> y = step(u). */
typedef struct step_unit {
    nerve_graph *g;
    int x, w, y;
    int n_inputs, rows;
} step_unit;

static step_unit step_unit_build(int n_inputs)
{
    step_unit s = {.n_inputs = n_inputs, .rows = 1 << n_inputs};
    s.g = nerve_graph_create();
    s.x = check(nerve_input(s.g, "x", 2, (int[]){1, 1 + n_inputs}), "nerve_input");
    s.w = check(nerve_param(s.g, "w", 2, (int[]){1, 1 + n_inputs}), "nerve_param");
    int u = check(nerve_dense(s.g, s.x, s.w, -1), "nerve_dense"); /* bias is w0 */
    s.y = check(nerve_activation(s.g, u, nerve_act_default(NERVE_ACT_STEP)), "nerve_activation");
    check(nerve_graph_compile(s.g, s.rows), "nerve_graph_compile");

    /* The whole truth table is the batch: row r is (1, bits of r). */
    float *x = nerve_value(s.g, s.x).data;
    for (int r = 0; r < s.rows; r++) {
        x[r * (1 + n_inputs)] = 1.0f;
        for (int i = 0; i < n_inputs; i++)
            x[r * (1 + n_inputs) + 1 + i] = row_bit(r, i, n_inputs);
    }
    return s;
}

/* Sets the weights (w0 = bias first) and returns the unit's outputs, one per row. */
static const float *step_unit_run(step_unit *s, const float *w)
{
    float *wv = nerve_value(s->g, s->w).data;
    for (int i = 0; i <= s->n_inputs; i++)
        wv[i] = w[i];
    check(nerve_forward(s->g, s->y), "nerve_forward");
    return nerve_value(s->g, s->y).data;
}

typedef int (*gate_fn)(const float *bits, int n);
static int truth_and(const float *b, int n)
{
    int all = 1;
    for (int i = 0; i < n; i++)
        all &= b[i] > 0.5f;
    return all;
}
static int truth_or(const float *b, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= b[i] > 0.5f;
    return any;
}
static int truth_xor(const float *b, int n)
{
    int odd = 0;
    for (int i = 0; i < n; i++)
        odd ^= b[i] > 0.5f;
    return odd;
}

/* Number of truth-table rows on which the unit's outputs y match the gate. */
static int count_correct(const step_unit *s, const float *y, gate_fn truth)
{
    int correct = 0;
    for (int r = 0; r < s->rows; r++) {
        float bits[MAX_INPUTS];
        for (int i = 0; i < s->n_inputs; i++)
            bits[i] = row_bit(r, i, s->n_inputs);
        correct += (int)y[r] == truth(bits, s->n_inputs);
    }
    return correct;
}

/* Prints the truth table of a hand-set step unit next to the gate it should compute. */
static void show_gate(const char *name, int n_inputs, const float *w, gate_fn truth)
{
    step_unit s = step_unit_build(n_inputs);
    const float *y = step_unit_run(&s, w);
    printf("%s w=(", name);
    for (int i = 0; i <= n_inputs; i++)
        printf("%s%g", i ? "," : "", w[i]);
    printf(")\n");
    for (int r = 0; r < s.rows; r++) {
        float bits[MAX_INPUTS];
        printf("%s x=", name);
        for (int i = 0; i < n_inputs; i++) {
            bits[i] = row_bit(r, i, n_inputs);
            printf("%s%d", i ? "," : "", (int)bits[i]);
        }
        printf(" y=%d want=%d\n", (int)y[r], truth(bits, n_inputs));
    }
    printf("%s: %d/%d\n", name, count_correct(&s, y, truth), s.rows);
    nerve_graph_free(s.g);
}

/* The best any step unit on a grid of weights in [-2, 2] (step 0.25) does on XOR. */
static int best_step_unit_on_xor(void)
{
    step_unit s = step_unit_build(2);
    int best = 0;
    for (int i = 0; i <= 16; i++)
        for (int j = 0; j <= 16; j++)
            for (int k = 0; k <= 16; k++) {
                float w[3] = {-2 + 0.25f * i, -2 + 0.25f * j, -2 + 0.25f * k};
                int c = count_correct(&s, step_unit_run(&s, w), truth_xor);
                best = c > best ? c : best;
            }
    nerve_graph_free(s.g);
    return best;
}

/* ---------------------------------------------------------------------------------- */
/* Trained networks on XOR                                                              */
/* ---------------------------------------------------------------------------------- */

/* A network with logits z [4, 1] on the four XOR rows, a = sigmoid(z) and the
 * cross-entropy loss computed from the logits (stable, and no sigma' slow-down). */
typedef struct xor_net {
    nerve_graph *g;
    int x, d, z, a, loss;
} xor_net;

/* The body between x [4, 2] and the logits [4, 1]. */
typedef int (*body_fn)(nerve_graph *g, int x, nerve_rng *rng);

/* One sigmoid unit: z = x w^T + b. */
static int single_unit_body(nerve_graph *g, int x, nerve_rng *rng)
{
    nerve_init small = {NERVE_INIT_NORMAL, 0.0f, 0.5f};
    return nerve_layer_dense(g, x, 1, 1, small, rng, "unit");
}

/* Two layers: h = tanh(x W1^T + b1) with 4 hidden units, z = h W2^T + b2. */
static int mlp_body(nerve_graph *g, int x, nerve_rng *rng)
{
    nerve_init glorot = {NERVE_INIT_GLOROT_UNIFORM, 0.0f, 0.0f};
    int h = check(nerve_layer_dense(g, x, 4, 1, glorot, rng, "hidden"), "nerve_layer_dense");
    h = check(nerve_activation(g, h, nerve_act_default(NERVE_ACT_TANH)), "nerve_activation");
    return nerve_layer_dense(g, h, 1, 1, glorot, rng, "out");
}

static xor_net xor_net_build(body_fn body, uint64_t seed)
{
    xor_net n;
    nerve_rng rng;
    nerve_rng_seed(&rng, seed);
    n.g = nerve_graph_create();
    n.x = check(nerve_input(n.g, "x", 2, (int[]){1, 2}), "nerve_input");
    n.d = check(nerve_input(n.g, "d", 2, (int[]){1, 1}), "nerve_input");
    n.z = check(body(n.g, n.x, &rng), "body");
    n.a = check(nerve_activation(n.g, n.z, nerve_act_default(NERVE_ACT_SIGMOID)), "sigmoid");
    n.loss = check(nerve_bce_logits_loss(n.g, n.z, n.d), "nerve_bce_logits_loss");
    check(nerve_graph_compile(n.g, 4), "nerve_graph_compile");

    float *x = nerve_value(n.g, n.x).data, *d = nerve_value(n.g, n.d).data;
    for (int r = 0; r < 4; r++) {
        x[2 * r] = row_bit(r, 0, 2);
        x[2 * r + 1] = row_bit(r, 1, 2);
        d[r] = (float)truth_xor(&x[2 * r], 2);
    }
    return n;
}

/* Full-batch training: forward, backward, one optimiser step, `steps` times.
 * Returns the final loss. */
static float train(xor_net *n, nerve_opt_type type, float lr, int steps)
{
    nerve_optim_config cfg = nerve_optim_default(type);
    nerve_optim *opt = nerve_optim_create(n->g, &cfg);
    if (!opt)
        check(-1, "nerve_optim_create");
    for (int s = 0; s < steps; s++) {
        nerve_optim_prepare(opt);
        check(nerve_forward(n->g, n->loss), "nerve_forward");
        check(nerve_backward(n->g, n->loss), "nerve_backward");
        nerve_optim_step(opt, lr);
    }
    nerve_optim_free(opt);
    check(nerve_forward(n->g, -1), "nerve_forward"); /* loss and outputs after the last step */
    return nerve_value(n->g, n->loss).data[0];
}

/* Prints z and a = sigmoid(z) on each row and returns how many rows round to the XOR bit
 * (y = 1 when a >= 0.5, i.e. z >= 0). */
static int report_xor(xor_net *n, const char *name)
{
    const float *x = nerve_value(n->g, n->x).data, *a = nerve_value(n->g, n->a).data;
    const float *z = nerve_value(n->g, n->z).data, *d = nerve_value(n->g, n->d).data;
    int correct = 0;
    for (int r = 0; r < 4; r++) {
        int y = a[r] >= 0.5f;
        printf("%s x=%d,%d z=%+.1e a=%.4f y=%d want=%d\n", name, (int)x[2 * r],
               (int)x[2 * r + 1], z[r], a[r], y, (int)d[r]);
        correct += y == (int)d[r];
    }
    return correct;
}

int main(void)
{
    const float and2[] = {-1.5f, 1, 1}, or2[] = {-0.5f, 1, 1};
    const float and3[] = {-(3 - 0.5f), 1, 1, 1}; /* R-input AND: bias -(R - 0.5) */
    show_gate("and", 2, and2, truth_and);
    show_gate("or", 2, or2, truth_or);
    show_gate("and3", 3, and3, truth_and);

    printf("xor best step unit on grid: %d/4\n", best_step_unit_on_xor());

    /* A single sigmoid unit, 5000 steps of plain gradient descent. */
    xor_net unit = xor_net_build(single_unit_body, 1);
    float unit_loss = train(&unit, NERVE_OPT_SGD, 0.5f, 5000);
    printf("xor single unit loss=%.4f (ln 2 = 0.6931)\n", unit_loss);
    printf("xor single unit: %d/4\n", report_xor(&unit, "xor single unit"));
    nerve_graph_free(unit.g);

    /* A 2-4-1 tanh network, 1000 Adam steps. */
    xor_net mlp = xor_net_build(mlp_body, 7);
    float mlp_loss = train(&mlp, NERVE_OPT_ADAM, 0.05f, 1000);
    printf("xor mlp loss=%.4f\n", mlp_loss);
    printf("xor mlp: %d/4\n", report_xor(&mlp, "xor mlp"));
    nerve_graph_free(mlp.g);
    return 0;
}
