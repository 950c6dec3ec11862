/* Finite-difference gradient checking: the test every operator passes. */
#include "graph.h"

#include <math.h>
#include <string.h>

/* Forward to the scalar loss with the generator rewound, so that stochastic operators
 * (dropout) draw the same mask every time. */
static double loss_at(nerve_graph *g, int loss, const nerve_rng *rng0)
{
    g->rng = *rng0;
    nerve_forward(g, loss);
    return (double)g->nodes[loss].value[0];
}

/* Saves or restores every STATE node (batch norm updates its running statistics on each
 * training forward). */
static float **save_states(nerve_graph *g)
{
    float **saved = nerve_xcalloc((size_t)g->n_nodes, sizeof *saved);
    for (int i = 0; saved && i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind != NERVE_NODE_STATE)
            continue;
        saved[i] = nerve_xmalloc(node_numel(n) * sizeof(float));
        if (saved[i])
            memcpy(saved[i], n->value, node_numel(n) * sizeof(float));
    }
    return saved;
}

static void restore_states(nerve_graph *g, float **saved)
{
    for (int i = 0; saved && i < g->n_nodes; i++)
        if (saved[i]) {
            memcpy(g->nodes[i].value, saved[i], node_numel(&g->nodes[i]) * sizeof(float));
            nerve_xfree(saved[i]);
        }
    nerve_xfree(saved);
}

int nerve_gradcheck(nerve_graph *g, int loss, float eps, float atol, float rtol)
{
    if (!g || !g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "gradcheck needs a compiled graph");
    if (loss < 0 || loss >= g->n_nodes || node_numel(&g->nodes[loss]) != 1)
        return nerve_set_error(NERVE_ERR_ARG, "gradcheck needs a scalar loss node");
    nerve_rng rng0 = g->rng;
    float **states = save_states(g);

    /* Analytic gradients, copied out (the numeric passes overwrite nothing but values). */
    loss_at(g, loss, &rng0);
    nerve_backward(g, loss);
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        int leaf = (n->kind == NERVE_NODE_PARAM || n->kind == NERVE_NODE_INPUT) && n->needs_grad;
        if (leaf)
            total += node_numel(n);
    }
    float *analytic = nerve_xmalloc((total ? total : 1) * sizeof(float));
    if (!analytic) {
        restore_states(g, states);
        return NERVE_ERR_NOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if ((n->kind == NERVE_NODE_PARAM || n->kind == NERVE_NODE_INPUT) && n->needs_grad) {
            memcpy(analytic + off, n->grad, node_numel(n) * sizeof(float));
            off += node_numel(n);
        }
    }

    int status = NERVE_OK;
    double worst = 0;
    off = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (!((n->kind == NERVE_NODE_PARAM || n->kind == NERVE_NODE_INPUT) && n->needs_grad))
            continue;
        size_t count = node_numel(n);
        for (size_t k = 0; k < count; k++) {
            float keep = n->value[k];
            n->value[k] = keep + eps;
            double up = loss_at(g, loss, &rng0);
            n->value[k] = keep - eps;
            double down = loss_at(g, loss, &rng0);
            n->value[k] = keep;
            double numeric = (up - down) / (2.0 * (double)eps);
            double a = analytic[off + k];
            double err = fabs(a - numeric);
            double allowed = atol + rtol * fmax(fabs(a), fabs(numeric));
            if (!(err <= allowed) && err - allowed > worst) {
                worst = err - allowed;
                status = nerve_set_error(NERVE_ERR_NUMERIC,
                                         "gradient mismatch at %s[%zu]: analytic %.6g, numeric %.6g",
                                         n->name, k, a, numeric);
            }
        }
        off += count;
    }
    loss_at(g, loss, &rng0);
    g->rng = rng0;
    nerve_xfree(analytic);
    restore_states(g, states);
    return status;
}
