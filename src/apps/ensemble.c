/* Averaging predictions: ensembles of models (and the bootstrap resamples that bagging
 * trains them on) and test-time augmentation (one model, ten views of each image). Both
 * average class probabilities, softmax of the logits (sigmoid for a single output), then
 * score the average: accuracy of its argmax and the mean of -log(p of the true class). */
#include "../core/core.h"

#include <math.h>
#include <string.h>

int nerve_dataset_bootstrap(const nerve_dataset *src, nerve_dataset *dst, uint64_t seed)
{
    if (!src || !dst || !src->x || src->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "bootstrap: no data set or an empty one");
    int *idx = nerve_xmalloc((size_t)src->n * sizeof *idx);
    if (!idx)
        return NERVE_ERR_NOMEM;
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (int i = 0; i < src->n; i++)
        idx[i] = (int)nerve_rng_below(&r, (uint32_t)src->n);
    int st = nerve_dataset_gather(dst, src, idx, src->n);
    nerve_xfree(idx);
    return st;
}

/* ---- running a model in eval mode over batches ------------------------------------------ */

typedef struct runner {
    nerve_model *m;
    nerve_graph *g;
    int input, output;
    int max_batch, was_training;
    int outputs;   /* columns of the output */
    float *x;      /* the input buffer */
    size_t numel;  /* values per sample */
} runner;

static int runner_open(runner *r, nerve_model *m, const nerve_dataset *d)
{
    memset(r, 0, sizeof *r);
    nerve_head_info h = nerve_model_head(m);
    if (h.task != NERVE_TASK_CLASSIFY && h.task != NERVE_TASK_NONE)
        return nerve_set_error(NERVE_ERR_ARG, "ensembles and test-time augmentation average class "
                               "probabilities; this model's head solves task '%s'",
                               nerve_task_name(h.task));
    r->m = m;
    r->g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(r->g)) {
        /* buffers for min(batch, data set): batches are chunks of d's samples */
        int batch = nerve_model_config(m)->batch;
        int st = nerve_model_compile(m, d->n > 0 && d->n < batch ? d->n : batch);
        if (st) {
            r->g = NULL; /* nothing to restore */
            return st;
        }
    }
    r->max_batch = nerve_graph_batch(r->g);
    r->was_training = nerve_graph_training(r->g);
    r->input = nerve_model_input(m);
    r->output = nerve_model_output(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(r->g, r->input, &nd, dims);
    r->numel = nerve_shape_numel(nd - 1, dims + 1);
    if (r->numel != d->sample_numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model "
                               "takes %zu", d->sample_numel, r->numel);
    nerve_node_shape(r->g, r->output, &nd, dims);
    if (nd != 2)
        return nerve_set_error(NERVE_ERR_SHAPE, "averaging predictions needs class scores [N, C]; "
                               "the model outputs %d-D values", nd);
    r->outputs = dims[1];
    r->x = nerve_value(r->g, r->input).data;
    nerve_graph_set_training(r->g, 0);
    return NERVE_OK;
}

static void runner_close(runner *r)
{
    if (!r->g)
        return;
    nerve_graph_set_batch(r->g, r->max_batch);
    nerve_graph_set_training(r->g, r->was_training);
}

static int classes_of(int outputs) { return outputs > 1 ? outputs : 2; }

/* Forward pass on the n samples in the input buffer; adds weight * probabilities into
 * acc [n, classes_of(outputs)]; member_correct (may be NULL) counts this pass's own hits. */
static int runner_accumulate(runner *r, int n, float *acc, float weight, const float *labels,
                             int64_t *member_correct)
{
    int st = nerve_graph_set_batch(r->g, n);
    if (st == NERVE_OK)
        st = nerve_forward(r->g, r->output);
    if (st)
        return st;
    const float *out = nerve_value(r->g, r->output).data;
    int k = classes_of(r->outputs);
    for (int i = 0; i < n; i++) {
        const float *s = out + (size_t)i * r->outputs;
        float *a = acc + (size_t)i * k;
        int best = 0;
        if (r->outputs == 1) {
            float p = 1.0f / (1.0f + expf(-s[0]));
            a[0] += weight * (1.0f - p);
            a[1] += weight * p;
            best = s[0] > 0.0f;
        } else {
            float mx = s[0];
            for (int c = 1; c < k; c++)
                if (s[c] > mx) {
                    mx = s[c];
                    best = c;
                }
            double z = 0;
            for (int c = 0; c < k; c++)
                z += exp((double)(s[c] - mx));
            for (int c = 0; c < k; c++)
                a[c] += weight * (float)(exp((double)(s[c] - mx)) / z);
        }
        if (member_correct && labels)
            *member_correct += best == (int)labels[i];
    }
    return NERVE_OK;
}

/* Adds the loss and hits of averaged probabilities probs [n, k] against labels. */
static void score(const float *probs, const float *labels, int n, int k, double *loss_sum,
                  int64_t *correct)
{
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        int best = 0;
        for (int c = 1; c < k; c++)
            if (p[c] > p[best])
                best = c;
        int y = (int)labels[i];
        *correct += best == y;
        double py = y >= 0 && y < k ? p[y] : 0.0;
        *loss_sum -= log(py > 1e-30 ? py : 1e-30);
    }
}

static int labelled(const nerve_dataset *d) { return d->y && d->n_classes > 0; }

static void finish(const nerve_dataset *d, double loss_sum, int64_t correct, double *loss,
                   double *accuracy)
{
    int ok = labelled(d) && d->n > 0;
    if (loss)
        *loss = ok ? loss_sum / d->n : NAN;
    if (accuracy)
        *accuracy = ok ? (double)correct / d->n : NAN;
}

/* ---- ensembles ------------------------------------------------------------------------- */

/* One member over the whole data set: probabilities added into acc [d->n, k]. */
static int member_pass(nerve_model *m, const nerve_dataset *d, float *acc, int k, int64_t *correct)
{
    runner r;
    int st = runner_open(&r, m, d);
    if (st == NERVE_OK && classes_of(r.outputs) != k)
        st = nerve_set_error(NERVE_ERR_SHAPE, "ensemble members disagree: %d classes and %d",
                             classes_of(r.outputs), k);
    for (int start = 0; st == NERVE_OK && start < d->n; start += r.max_batch) {
        int n = d->n - start < r.max_batch ? d->n - start : r.max_batch;
        memcpy(r.x, d->x + (size_t)start * r.numel, (size_t)n * r.numel * sizeof(float));
        st = runner_accumulate(&r, n, acc + (size_t)start * k, 1.0f, d->y ? d->y + start : NULL,
                               correct);
    }
    runner_close(&r);
    return st;
}

/* The number of classes of the first member (what every member must give). */
static int ensemble_classes(nerve_model *m, const nerve_dataset *d, int *k)
{
    runner r;
    int st = runner_open(&r, m, d);
    *k = st ? 0 : classes_of(r.outputs);
    runner_close(&r);
    return st;
}

int nerve_ensemble_evaluate(nerve_model **models, int k, const nerve_dataset *d, double *loss,
                            double *accuracy, double *member_acc)
{
    if (!models || k < 1 || !d || !d->x || d->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "ensemble_evaluate: no models or no data");
    for (int i = 0; i < k; i++)
        if (!models[i])
            return nerve_set_error(NERVE_ERR_ARG, "ensemble_evaluate: member %d is null", i);
    int classes;
    int st = ensemble_classes(models[0], d, &classes);
    if (st)
        return st;
    float *acc = nerve_xcalloc((size_t)d->n * classes, sizeof(float));
    if (!acc)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < k && st == NERVE_OK; i++) {
        int64_t correct = 0;
        st = member_pass(models[i], d, acc, classes, &correct);
        if (member_acc)
            member_acc[i] = labelled(d) ? (double)correct / d->n : NAN;
    }
    double loss_sum = 0;
    int64_t correct = 0;
    if (st == NERVE_OK && labelled(d)) {
        for (size_t i = 0; i < (size_t)d->n * classes; i++)
            acc[i] /= (float)k;
        score(acc, d->y, d->n, classes, &loss_sum, &correct);
    }
    nerve_xfree(acc);
    if (st == NERVE_OK)
        finish(d, loss_sum, correct, loss, accuracy);
    return st;
}

/* ---- test-time augmentation ------------------------------------------------------------- */

/* Writes view v (0..9) of n images [c, h, w] from src into dst: views 0..4 shift the image
 * by the offsets that bring the centres of the four corner windows and the centre window
 * to the image centre; views 5..9 are their mirrors. */
static void tta_views(float *dst, const float *src, int n, int c, int h, int w, int crop, int v)
{
    int oy = (h - crop) / 2, ox = (w - crop) / 2;
    static const int sy[5] = {1, 1, -1, -1, 0}, sx[5] = {1, -1, 1, -1, 0};
    size_t numel = (size_t)c * h * w;
    memcpy(dst, src, (size_t)n * numel * sizeof(float));
    for (int i = 0; i < n; i++) {
        float *img = dst + (size_t)i * numel;
        nerve_aug_shift(img, c, h, w, sy[v % 5] * oy, sx[v % 5] * ox);
        if (v >= 5)
            nerve_aug_flip(img, c, h, w);
    }
}

int nerve_evaluate_tta(nerve_model *m, const nerve_dataset *d, int crop, double *loss,
                       double *accuracy)
{
    if (!m || !d || !d->x || d->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate_tta: no model or no data");
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_input(m), &nd, dims);
    if (nd != 4)
        return nerve_set_error(NERVE_ERR_SHAPE, "test-time augmentation needs image inputs [C, H, W]");
    int c = dims[1], h = dims[2], w = dims[3];
    if (crop < 1 || crop > h || crop > w)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate_tta: crop %d outside 1..%d", crop,
                               h < w ? h : w);
    runner r;
    int st = runner_open(&r, m, d);
    int k = classes_of(r.outputs);
    float *acc = st ? NULL : nerve_xmalloc((size_t)r.max_batch * k * sizeof(float));
    if (st == NERVE_OK && !acc)
        st = NERVE_ERR_NOMEM;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int start = 0; st == NERVE_OK && start < d->n; start += r.max_batch) {
        int n = d->n - start < r.max_batch ? d->n - start : r.max_batch;
        memset(acc, 0, (size_t)n * k * sizeof(float));
        for (int v = 0; v < 10 && st == NERVE_OK; v++) {
            tta_views(r.x, d->x + (size_t)start * r.numel, n, c, h, w, crop, v);
            st = runner_accumulate(&r, n, acc, 0.1f, NULL, NULL);
        }
        if (st == NERVE_OK && labelled(d))
            score(acc, d->y + start, n, k, &loss_sum, &correct);
    }
    runner_close(&r);
    nerve_xfree(acc);
    if (st == NERVE_OK)
        finish(d, loss_sum, correct, loss, accuracy);
    return st;
}
