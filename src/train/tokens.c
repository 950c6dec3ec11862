/* Token targets in the training loop: the checks, the next-token accuracy and the
 * evaluation of a text stream (bits per character = the mean NLL in nats / ln 2). */
#include "tokens.h"

#include "../core/core.h"

#include <math.h>
#include <string.h>

/* The steps and vocabulary of the model's output [N, T, V]. */
static int output_steps(nerve_model *m, int *T, int *V)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    if (nd != 3)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "token targets need a model that scores every step ([N, T, V] "
                               "output: [softmax] target=tokens); this one outputs rank %d", nd);
    *T = dims[1];
    *V = dims[2];
    return NERVE_OK;
}

int tokens_check(nerve_model *m, const nerve_dataset *d, int training)
{
    nerve_graph *g = nerve_model_graph(m);
    int labels = nerve_model_labels(m), T = 0, V = 0, lnd, ldims[NERVE_MAX_DIMS];
    int st = output_steps(m, &T, &V);
    if (st)
        return st;
    if (labels < 0 || nerve_node_shape(g, labels, &lnd, ldims) < 0 || lnd != 2 || ldims[1] != T)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "token targets need the language-model head ([softmax] "
                               "target=tokens), whose labels are one token per step");
    if ((size_t)T != d->target_numel || d->tndim != 1)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the data has %zu target tokens per sample, the model reads %d "
                               "steps (seq=)", d->target_numel, T);
    if (d->n_classes > V)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the data has %d distinct tokens but the model scores %d",
                               d->n_classes, V);
    int carried = nerve_graph_carried_states(g, NULL, 0) > 0;
    if (carried && !d->streams)
        return nerve_set_error(NERVE_ERR_ARG,
                               "the model carries its recurrent state from one batch to the "
                               "next (carry=1), which needs a text stream (train_text=), not "
                               "independent samples");
    if (!training)
        return NERVE_OK;
    if (d->streams && d->streams != nerve_graph_batch(g))
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the text is cut into %d streams but the model's batch is %d; "
                               "each batch row reads one stream", d->streams,
                               nerve_graph_batch(g));
    for (size_t i = 0; i < (size_t)d->n * d->target_numel; i++)
        if (d->t[i] < 0)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "training chunk %zu has a position without a label (a "
                                   "padded tail, made for evaluation)", i / d->target_numel);
    return NERVE_OK;
}

int64_t tokens_correct(const float *logits, const float *t, int n, int T, int V,
                       int64_t *labelled)
{
    int64_t correct = 0;
    for (size_t p = 0; p < (size_t)n * T; p++) {
        if (t[p] < 0)
            continue;
        const float *row = logits + p * V;
        int best = 0;
        for (int k = 1; k < V; k++)
            best = row[k] > row[best] ? k : best;
        correct += best == (int)t[p];
        ++*labelled;
    }
    return correct;
}

/* -log softmax(row)[k], computed stably in double. */
static double nll_of(const float *row, int V, int k)
{
    float mx = row[0];
    for (int i = 1; i < V; i++)
        mx = row[i] > mx ? row[i] : mx;
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp((double)(row[i] - mx));
    return log(z) - (double)(row[k] - mx);
}

/* Copies of the carried states (to restore after an evaluation). */
typedef struct carry_copy {
    int n;
    int ids[16];
    float *data[16];
} carry_copy;

static int carry_save(nerve_graph *g, carry_copy *c)
{
    memset(c, 0, sizeof *c);
    c->n = nerve_graph_carried_states(g, c->ids, 16);
    if (c->n > 16)
        return nerve_set_error(NERVE_ERR_STATE, "more than 8 carried recurrent layers");
    for (int i = 0; i < c->n; i++) {
        nerve_tensor v = nerve_value(g, c->ids[i]);
        c->data[i] = nerve_xmalloc(nerve_tensor_numel(&v) * sizeof(float));
        if (!c->data[i])
            return NERVE_ERR_NOMEM;
        memcpy(c->data[i], v.data, nerve_tensor_numel(&v) * sizeof(float));
    }
    return NERVE_OK;
}

static void carry_restore(nerve_graph *g, carry_copy *c)
{
    for (int i = 0; i < c->n; i++) {
        nerve_tensor v = nerve_value(g, c->ids[i]);
        if (c->data[i])
            memcpy(v.data, c->data[i], nerve_tensor_numel(&v) * sizeof(float));
        nerve_xfree(c->data[i]);
    }
}

int tokens_evaluate(nerve_model *m, const nerve_dataset *d, nerve_metrics *mt)
{
    nerve_graph *g = nerve_model_graph(m);
    int st = tokens_check(m, d, 0), T = 0, V = 0;
    if (st == NERVE_OK)
        st = output_steps(m, &T, &V);
    if (st)
        return st;
    int max_batch = nerve_graph_batch(g);
    int rows = d->streams ? d->streams : max_batch;
    if (d->streams > max_batch)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the text has %d streams, more than the model's batch of %d",
                               d->streams, max_batch);
    carry_copy saved;
    if ((st = carry_save(g, &saved)) != NERVE_OK) {
        carry_restore(g, &saved);
        return st;
    }
    int was_training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    nerve_graph_set_carry_in_eval(g, 1);
    nerve_graph_reset_carry(g);
    float *x = nerve_value(g, nerve_model_input(m)).data;
    double nll = 0;
    int64_t labelled = 0, correct = 0;
    for (int start = 0; start < d->n && st == NERVE_OK; start += rows) {
        int n = d->n - start < rows ? d->n - start : rows;
        if (!d->streams)
            nerve_graph_reset_carry(g); /* independent samples: each from a zero state */
        if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
            break;
        memcpy(x, d->x + (size_t)start * T, (size_t)n * T * sizeof(float));
        if ((st = nerve_forward(g, nerve_model_output(m))) != NERVE_OK)
            break;
        const float *z = nerve_value(g, nerve_model_output(m)).data;
        const float *t = d->t + (size_t)start * T;
        for (size_t p = 0; p < (size_t)n * T; p++)
            if (t[p] >= 0)
                nll += nll_of(z + p * V, V, (int)t[p]);
        correct += tokens_correct(z, t, n, T, V, &labelled);
    }
    nerve_graph_set_batch(g, max_batch);
    nerve_graph_set_carry_in_eval(g, 0);
    nerve_graph_set_training(g, was_training);
    carry_restore(g, &saved);
    if (st == NERVE_OK && (st = nerve_metrics_init(mt, NERVE_TASK_LANGUAGE, V, V)) == NERVE_OK) {
        nerve_metrics_add_tokens(mt, nll, labelled);
        if (labelled) /* the loss per token, and the accuracy of the most likely token */
            nerve_metrics_add_loss(mt, nll / (double)labelled, (int)(labelled < INT32_MAX ? labelled : INT32_MAX));
        mt->counted = labelled;
        mt->correct = correct;
    }
    return st;
}
