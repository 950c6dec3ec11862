/* Feeding batches of any target kind into a model, and evaluation and prediction over a data
 * set (the fit loop in fit.c uses the same feeder).
 *
 * The label node of a model is filled according to the target its head states
 * (nerve_model_head): class labels (indices, one-hot or a value, as the label node's shape
 * asks), the data set's fixed-size targets t (values, masks, tokens) copied per sample, or
 * the clean input (reconstruction; a denoising model's input is corrupted after the copy).
 * A head that states its own feed function (boxes) gets the data set and the batch's sample
 * indices instead. The data and the head are checked against each other before the first
 * batch: a mismatch is an error that names both. */
#include "train.h"
#include "tokens.h"

#include "../core/core.h"

#include <math.h>
#include <string.h>

/* ---- checks ----------------------------------------------------------------------------- */

static const char *kind_phrase(nerve_target_kind k)
{
    switch (k) {
    case NERVE_TARGET_CLASS: return "a class label per sample";
    case NERVE_TARGET_VALUES: return "a float vector per sample (target=values)";
    case NERVE_TARGET_INPUT: return "the input itself (target=input)";
    case NERVE_TARGET_MASK: return "a class per pixel (target=mask)";
    case NERVE_TARGET_BOXES: return "a list of boxes per sample";
    case NERVE_TARGET_TOKENS: return "a token sequence per sample";
    }
    return "an unknown target";
}

/* "the model's head ([cost] on line 12, loss mse)" */
static const char *head_phrase(const nerve_head_info *h, char *buf, size_t n)
{
    if (h->section)
        snprintf(buf, n, "the model's head ([%s] on line %d, loss %s)", h->section, h->line,
                 h->loss ? h->loss : "?");
    else
        snprintf(buf, n, "the model's head (loss %s)", h->loss ? h->loss : "?");
    return buf;
}

static int check_targets(feeder *f, const nerve_dataset *d)
{
    const nerve_head_info *h = &f->head;
    char hp[160], a[64], b[64];
    head_phrase(h, hp, sizeof hp);
    if (h->target == NERVE_TARGET_INPUT)
        return NERVE_OK; /* any data set: the target is its input */
    if (d->target != h->target)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "%s needs %s, but the data set has %s; give the model a head for "
                               "this data or the data the head needs (docs/cfg.md, \"Heads\")",
                               hp, kind_phrase(h->target), kind_phrase(d->target));
    if (h->feed)
        return NERVE_OK; /* the head gathers its own targets */
    if (h->target == NERVE_TARGET_CLASS) {
        int limit = f->n_classes > 1 ? f->n_classes : 2;
        if (d->n_classes > limit)
            return nerve_set_error(NERVE_ERR_SHAPE,
                                   "the data has %d classes but the model's output has %d", d->n_classes,
                                   f->n_classes);
        return NERVE_OK;
    }
    int lnd, ldims[NERVE_MAX_DIMS];
    nerve_node_shape(f->g, f->labels, &lnd, ldims);
    if (d->target_numel != f->label_numel)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the data set's targets have shape %s (%zu values per sample) but %s "
                               "compares its output with targets of shape %s (%zu values)",
                               nerve_shape_str(d->tndim, d->tdims, a, sizeof a), d->target_numel, hp,
                               nerve_shape_str(lnd - 1, ldims + 1, b, sizeof b), f->label_numel);
    if (h->task == NERVE_TASK_SEGMENT && d->ignore_index != h->ignore_index)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the data set marks unlabelled pixels with %d but %s ignores %d; set "
                               "ignore_index=%d in the head", d->ignore_index, hp, h->ignore_index,
                               d->ignore_index);
    return NERVE_OK;
}

int feeder_init(feeder *f, nerve_model *m, const nerve_dataset *d, int targets)
{
    memset(f, 0, sizeof *f);
    f->m = m;
    f->g = nerve_model_graph(m);
    f->input = nerve_model_input(m);
    f->labels = nerve_model_labels(m);
    f->output = nerve_model_output(m);
    f->loss = nerve_model_loss(m);
    f->head = nerve_model_head(m);
    const nerve_net_config *c = nerve_model_config(m);
    f->noise = c->noise;
    f->seed = c->seed;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(f->g, f->input, &nd, dims);
    f->sample_numel = nerve_shape_numel(nd - 1, dims + 1);
    if (d->sample_numel != f->sample_numel) {
        char a[64], b[64];
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "the data has samples of shape %s (%zu values) but the model's input "
                               "expects %s (%zu values)",
                               nerve_shape_str(d->ndim, d->dims, a, sizeof a), d->sample_numel,
                               nerve_shape_str(nd - 1, dims + 1, b, sizeof b), f->sample_numel);
    }
    nerve_node_shape(f->g, f->output, &nd, dims);
    f->n_classes = nd >= 2 ? dims[1] : 1;
    f->out_numel = nerve_shape_numel(nd - 1, dims + 1);
    if (f->labels >= 0) {
        int lnd, ldims[NERVE_MAX_DIMS];
        nerve_node_shape(f->g, f->labels, &lnd, ldims);
        f->label_numel = nerve_shape_numel(lnd - 1, ldims + 1);
        if (lnd == 1)
            f->label_mode = LABELS_INDEX;
        else if (lnd == 2 && ldims[1] > 1)
            f->label_mode = LABELS_ONEHOT;
        else
            f->label_mode = LABELS_VALUE;
        int st;
        if (targets && f->head.task != NERVE_TASK_NONE && (st = check_targets(f, d)) != NERVE_OK)
            return st;
    }
    int max_batch = nerve_graph_batch(f->g);
    f->ybuf = nerve_xcalloc((size_t)max_batch, sizeof(float));
    f->idx = nerve_xcalloc((size_t)max_batch, sizeof(int));
    int values = f->head.task == NERVE_TASK_REGRESS || f->head.task == NERVE_TASK_RECONSTRUCT;
    if (f->head.logits && values)
        f->pbuf = nerve_xalloc_floats((size_t)max_batch * f->out_numel);
    if (!f->ybuf || !f->idx || (f->head.logits && values && !f->pbuf)) {
        feeder_free(f);
        return NERVE_ERR_NOMEM;
    }
    return NERVE_OK;
}

void feeder_free(feeder *f)
{
    nerve_xfree(f->ybuf);
    nerve_xfree(f->idx);
    nerve_xfree_aligned(f->pbuf);
    f->ybuf = f->pbuf = NULL;
    f->idx = NULL;
}

/* ---- feeding ----------------------------------------------------------------------------- */

/* Writes n class labels (ybuf) into the label node in the form it expects. */
static void feed_labels(feeder *f, int n)
{
    float *dst = nerve_value(f->g, f->labels).data;
    if (f->label_mode == LABELS_ONEHOT) {
        memset(dst, 0, (size_t)n * (size_t)f->n_classes * sizeof(float));
        for (int i = 0; i < n; i++) {
            int y = (int)f->ybuf[i];
            if (y >= 0 && y < f->n_classes)
                dst[(size_t)i * f->n_classes + y] = 1.0f;
        }
    } else {
        memcpy(dst, f->ybuf, (size_t)n * sizeof(float));
    }
}

/* A mask's labels must be classes (or, for segmentation, the ignore index): anything else
 * would turn the loss into NaN far from its cause. */
static int check_mask(const feeder *f, const float *t, int sample)
{
    int binary = f->head.task == NERVE_TASK_BINARY_MASK;
    int classes = binary ? 2 : f->n_classes;
    for (size_t p = 0; p < f->label_numel; p++) {
        float y = t[p];
        if (!binary && y == (float)f->head.ignore_index)
            continue;
        if (!(y >= 0 && y < (float)classes) || y != floorf(y))
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "sample %d: mask value %g at pixel %zu is not a class (0..%d)%s",
                                   sample, (double)y, p, classes - 1,
                                   binary ? "; a binary mask holds 0 and 1 only"
                                          : " nor the ignore index");
    }
    return NERVE_OK;
}

int feed_targets(feeder *f, const nerve_dataset *d, const int *idx, int n)
{
    if (f->head.feed)
        return f->head.feed(f->m, d, idx, n, f->head.user);
    if (f->labels < 0)
        return NERVE_OK;
    float *dst = nerve_value(f->g, f->labels).data;
    switch (f->head.target) {
    case NERVE_TARGET_CLASS:
        for (int i = 0; i < n; i++)
            f->ybuf[i] = d->y ? d->y[idx[i]] : -1.0f;
        feed_labels(f, n);
        return NERVE_OK;
    case NERVE_TARGET_VALUES:
    case NERVE_TARGET_MASK:
    case NERVE_TARGET_TOKENS:
        if (!d->t || d->target_numel != f->label_numel)
            return nerve_set_error(NERVE_ERR_STATE, "the data set has no %s targets",
                                   nerve_target_kind_name(f->head.target));
        for (int i = 0; i < n; i++) {
            const float *src = d->t + (size_t)idx[i] * d->target_numel;
            if (f->head.target == NERVE_TARGET_MASK) {
                int st = check_mask(f, src, idx[i]);
                if (st)
                    return st;
            }
            memcpy(dst + (size_t)i * f->label_numel, src, f->label_numel * sizeof(float));
        }
        return NERVE_OK;
    case NERVE_TARGET_INPUT: return NERVE_OK; /* feed_finish_inputs */
    case NERVE_TARGET_BOXES: break;
    }
    return nerve_set_error(NERVE_ERR_STATE, "the model's head needs %s but gives no function to feed "
                           "them", kind_phrase(f->head.target));
}

void feed_finish_inputs(feeder *f, const int *idx, int n, int epoch)
{
    float *x = nerve_value(f->g, f->input).data;
    if (f->head.target == NERVE_TARGET_INPUT && f->labels >= 0)
        memcpy(nerve_value(f->g, f->labels).data, x, (size_t)n * f->sample_numel * sizeof(float));
    nerve_noise_batch(&f->noise, x, f->sample_numel, n, f->seed, epoch, idx);
}

float *feed_mask(feeder *f)
{
    return f->head.target == NERVE_TARGET_MASK && f->labels >= 0 ? nerve_value(f->g, f->labels).data
                                                                 : NULL;
}

/* ---- measuring ----------------------------------------------------------------------------- */

int feed_metrics_init(feeder *f, nerve_metrics *mt)
{
    int st = nerve_metrics_init(mt, f->head.task == NERVE_TASK_NONE ? NERVE_TASK_CLASSIFY : f->head.task,
                                f->n_classes, (int)f->out_numel);
    mt->ignore_index = f->head.ignore_index;
    return st;
}

static float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

void feed_measure(feeder *f, nerve_metrics *mt, int n)
{
    const float *out = nerve_value(f->g, f->output).data;
    const float *labels = f->labels >= 0 ? nerve_value(f->g, f->labels).data : NULL;
    switch (mt->task) {
    case NERVE_TASK_CLASSIFY: nerve_metrics_add_classes(mt, out, f->n_classes, f->ybuf, n); break;
    case NERVE_TASK_SEGMENT:
        nerve_metrics_add_pixels(mt, out, f->n_classes, f->out_numel / (size_t)f->n_classes, labels, n);
        break;
    case NERVE_TASK_BINARY_MASK: nerve_metrics_add_pixels(mt, out, 1, f->out_numel, labels, n); break;
    case NERVE_TASK_REGRESS:
    case NERVE_TASK_RECONSTRUCT: {
        if (f->pbuf) {
            for (size_t i = 0; i < (size_t)n * f->out_numel; i++)
                f->pbuf[i] = sigmoidf(out[i]);
            out = f->pbuf;
        }
        const float *noisy = f->noise.kind != NERVE_NOISE_NONE && mt->task == NERVE_TASK_RECONSTRUCT
                                 ? nerve_value(f->g, f->input).data
                                 : NULL;
        nerve_metrics_add_values(mt, out, labels, noisy, n);
        break;
    }
    case NERVE_TASK_LANGUAGE: {
        /* a mean cross-entropy per token: the batch's nats are its loss times its tokens */
        int64_t tokens = (int64_t)n * (int64_t)f->label_numel;
        nerve_metrics_add_tokens(mt, (double)nerve_value(f->g, f->loss).data[0] * (double)tokens,
                                 tokens);
        break;
    }
    default: break;
    }
}

/* ---- evaluation and prediction ---------------------------------------------------------- */

static int predicted_class(const float *row, int n_classes)
{
    if (n_classes == 1)
        return row[0] > 0.0f;
    int best = 0;
    for (int c = 1; c < n_classes; c++)
        if (row[c] > row[best])
            best = c;
    return best;
}

/* The output as probabilities where the head takes logits (softmax over the channels at
 * each position, or sigmoid), n samples into dst. */
static void output_probabilities(const feeder *f, const float *out, float *dst, int n)
{
    size_t total = (size_t)n * f->out_numel;
    int softmax = f->head.logits && (f->head.task == NERVE_TASK_CLASSIFY || f->head.task == NERVE_TASK_SEGMENT ||
                                     f->head.task == NERVE_TASK_LANGUAGE) && f->n_classes > 1;
    if (!f->head.logits) {
        memcpy(dst, out, total * sizeof(float));
    } else if (!softmax) {
        for (size_t i = 0; i < total; i++)
            dst[i] = sigmoidf(out[i]);
    } else {
        int C = f->n_classes;
        size_t P = f->out_numel / (size_t)C;
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < P; p++) {
                const float *z = out + (size_t)i * f->out_numel + p;
                float *q = dst + (size_t)i * f->out_numel + p;
                float mx = z[0];
                for (int c = 1; c < C; c++)
                    mx = fmaxf(mx, z[(size_t)c * P]);
                double sum = 0;
                for (int c = 0; c < C; c++)
                    sum += exp((double)z[(size_t)c * P] - mx);
                for (int c = 0; c < C; c++)
                    q[(size_t)c * P] = (float)(exp((double)z[(size_t)c * P] - mx) / sum);
            }
    }
}

typedef struct run_outputs {
    nerve_metrics *mt; /* figures (with targets), or NULL */
    int *pred;         /* class per sample, or NULL */
    float *probs;      /* outputs as probabilities, or NULL */
    float *inputs;     /* the inputs the model read, or NULL */
    int lo, hi;        /* the samples lo..hi-1 (hi 0: all) */
    int (*each)(void *ctx, nerve_model *m, int start, int n); /* after each batch, or NULL */
    void *ctx;
} run_outputs;

/* Runs the model over d in eval mode, batch by batch in order. */
static int run_over(nerve_model *m, const nerve_dataset *d, run_outputs *ro)
{
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g)) {
        int st = nerve_model_compile(m, batch_for(nerve_model_config(m)->batch, d->n));
        if (st)
            return st;
    }
    nerve_head_info h = nerve_model_head(m);
    /* a language model reads token data as streams, its state carried (tokens.c) */
    if (ro->mt && !ro->pred && !ro->probs && !ro->inputs && d->target == NERVE_TARGET_TOKENS &&
        h.task == NERVE_TASK_LANGUAGE)
        return tokens_evaluate(m, d, ro->mt);
    int targets = ro->mt && h.task != NERVE_TASK_NONE && nerve_model_labels(m) >= 0 &&
                  (h.target != NERVE_TARGET_CLASS || d->target != NERVE_TARGET_CLASS ||
                   (d->y && d->n_classes > 0)); /* unlabelled class data: outputs only */
    feeder f;
    int st = feeder_init(&f, m, d, targets);
    if (st)
        return st;
    if (ro->mt && (st = feed_metrics_init(&f, ro->mt)) != NERVE_OK) {
        feeder_free(&f);
        return st;
    }
    int max_batch = nerve_graph_batch(g);
    int was_training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    /* a per-batch reader (e.g. the decoding of several detection heads) gets every node */
    int target_node = ro->each ? -1 : targets ? f.loss : f.output;
    int labels = nerve_model_labels(m);
    if (ro->each && !targets && labels >= 0) { /* the loss then runs on nothing, not stale data */
        nerve_tensor t = nerve_value(g, labels);
        memset(t.data, 0, nerve_shape_numel(t.ndim, t.dims) * sizeof *t.data);
    }
    float *x = nerve_value(g, f.input).data;
    int end = ro->hi > 0 ? ro->hi : d->n;
    for (int start = ro->lo; start < end && st == NERVE_OK; start += max_batch) {
        int n = end - start < max_batch ? end - start : max_batch;
        if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
            break;
        for (int i = 0; i < n; i++)
            f.idx[i] = start + i;
        memcpy(x, d->x + (size_t)start * f.sample_numel, (size_t)n * f.sample_numel * sizeof(float));
        if (targets && (st = feed_targets(&f, d, f.idx, n)) != NERVE_OK)
            break;
        feed_finish_inputs(&f, f.idx, n, 0);
        if (ro->inputs)
            memcpy(ro->inputs + (size_t)start * f.sample_numel, x, (size_t)n * f.sample_numel * sizeof(float));
        if ((st = nerve_forward(g, target_node)) != NERVE_OK)
            break;
        const float *out = nerve_value(g, f.output).data;
        if (targets) {
            nerve_metrics_add_loss(ro->mt, nerve_value(g, f.loss).data[0], n);
            feed_measure(&f, ro->mt, n);
        }
        for (int i = 0; ro->pred && i < n; i++)
            ro->pred[start + i] = predicted_class(out + (size_t)i * f.n_classes, f.n_classes);
        if (ro->probs)
            output_probabilities(&f, out, ro->probs + (size_t)start * f.out_numel, n);
        if (ro->each && (st = ro->each(ro->ctx, m, start, n)) != NERVE_OK)
            break;
    }
    nerve_graph_set_batch(g, max_batch);
    nerve_graph_set_training(g, was_training);
    feeder_free(&f);
    if (st && ro->mt)
        nerve_metrics_free(ro->mt);
    return st;
}

int run_batches(nerve_model *m, const nerve_dataset *d,
                int (*each)(void *ctx, nerve_model *m, int start, int n), void *ctx)
{
    if (!m || !d || !each)
        return nerve_set_error(NERVE_ERR_ARG, "run_batches: null argument");
    run_outputs ro = {NULL, NULL, NULL, NULL, 0, 0, each, ctx};
    return run_over(m, d, &ro);
}

int nerve_evaluate_metrics(nerve_model *m, const nerve_dataset *d, nerve_metrics *mt)
{
    if (!m || !d || !mt)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate: null argument");
    memset(mt, 0, sizeof *mt);
    run_outputs ro = {mt, NULL, NULL, NULL, 0, 0, NULL, NULL};
    return run_over(m, d, &ro);
}

int evaluate_range(nerve_model *m, const nerve_dataset *d, int lo, int hi, nerve_metrics *mt)
{
    if (!m || !d || !mt || lo < 0 || hi < lo || hi > d->n)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate: bad range %d..%d of %d samples", lo, hi, d ? d->n : 0);
    memset(mt, 0, sizeof *mt);
    if (hi == lo) { /* an empty share: an accumulator with nothing in it */
        feeder f;
        int st = feeder_init(&f, m, d, 1);
        if (st == NERVE_OK)
            st = feed_metrics_init(&f, mt);
        feeder_free(&f);
        return st;
    }
    run_outputs ro = {mt, NULL, NULL, NULL, lo, hi, NULL, NULL};
    return run_over(m, d, &ro);
}

int nerve_evaluate(nerve_model *m, const nerve_dataset *d, double *loss, double *accuracy,
                   int *confusion, int n_classes)
{
    if (!m || !d)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate: null model or data set");
    nerve_metrics mt;
    int st = nerve_evaluate_metrics(m, d, &mt);
    if (st)
        return st;
    if (loss)
        *loss = mt.samples ? nerve_metrics_loss(&mt) : NAN;
    if (accuracy)
        *accuracy = (mt.task == NERVE_TASK_CLASSIFY || mt.task == NERVE_TASK_LANGUAGE) && mt.counted
                        ? nerve_metrics_accuracy(&mt)
                        : NAN;
    if (confusion) {
        memset(confusion, 0, (size_t)n_classes * (size_t)n_classes * sizeof(int));
        int k = mt.n_classes < n_classes ? mt.n_classes : n_classes;
        for (int i = 0; mt.confusion && i < k; i++)
            for (int j = 0; j < k; j++)
                confusion[i * n_classes + j] = (int)mt.confusion[(size_t)i * mt.n_classes + j];
    }
    nerve_metrics_free(&mt);
    return NERVE_OK;
}

int nerve_predict(nerve_model *m, const nerve_dataset *d, int *out)
{
    if (!m || !d || !out)
        return nerve_set_error(NERVE_ERR_ARG, "predict: null argument");
    nerve_head_info h = nerve_model_head(m);
    if (h.task != NERVE_TASK_NONE && h.task != NERVE_TASK_CLASSIFY)
        return nerve_set_error(NERVE_ERR_ARG,
                               "predict gives a class per sample, but this model's head solves task "
                               "'%s'; use nerve_predict_outputs", nerve_task_name(h.task));
    run_outputs ro = {NULL, out, NULL, NULL, 0, 0, NULL, NULL};
    return run_over(m, d, &ro);
}

int nerve_predict_outputs(nerve_model *m, const nerve_dataset *d, float *out, float *inputs)
{
    if (!m || !d || !out)
        return nerve_set_error(NERVE_ERR_ARG, "predict_outputs: null argument");
    run_outputs ro = {NULL, NULL, out, inputs, 0, 0, NULL, NULL};
    return run_over(m, d, &ro);
}
