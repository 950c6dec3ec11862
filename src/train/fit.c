/* The fit loop: epochs of shuffled mini-batches, validation, early stopping, learning-rate
 * schedules, checkpoints that resume bit for bit, a CSV log and an SVG plot.
 *
 * Reproducibility: the batch order of epoch e depends only on (seed, e) and the graph's
 * generator (dropout) is saved in every checkpoint, so a run resumed from the checkpoint
 * of epoch e replays epochs e+1.. exactly as the uninterrupted run does. */
#include "../core/core.h"
#include "tokens.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- feeding a batch ------------------------------------------------------------------ */

/* How the label node is fed from per-sample class indices. */
enum { LABELS_INDEX, LABELS_ONEHOT, LABELS_VALUE };

typedef struct feeder {
    nerve_graph *g;
    int input, labels, output, loss;
    int label_mode;
    int n_classes; /* columns of the output */
    size_t sample_numel;
    float *ybuf;   /* batch labels as read from the data set */
    int tokens;    /* token targets: the label node takes t [N, T] (language models) */
    int steps;     /* T of token targets */
    float *tbuf;   /* batch targets as read from the data set (tokens) */
} feeder;

static int feeder_init(feeder *f, nerve_model *m, const nerve_dataset *d, int training)
{
    memset(f, 0, sizeof *f);
    f->g = nerve_model_graph(m);
    f->input = nerve_model_input(m);
    f->labels = nerve_model_labels(m);
    f->output = nerve_model_output(m);
    f->loss = nerve_model_loss(m);
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
    if (d->target == NERVE_TARGET_TOKENS) {
        f->tokens = 1;
        f->steps = (int)d->target_numel;
        f->n_classes = dims[nd - 1];
        return tokens_check(m, d, training);
    }
    if (nerve_model_vocab(m, NULL) > 0)
        return nerve_set_error(NERVE_ERR_ARG,
                               "a language model trains on a text stream (train_text=), not on "
                               "samples with %s targets", d->target ? "non-token" : "class");
    if (f->labels >= 0) {
        int lnd, ldims[NERVE_MAX_DIMS];
        nerve_node_shape(f->g, f->labels, &lnd, ldims);
        if (lnd == 1)
            f->label_mode = LABELS_INDEX;
        else if (lnd == 2 && ldims[1] > 1)
            f->label_mode = LABELS_ONEHOT;
        else
            f->label_mode = LABELS_VALUE;
        int limit = f->n_classes > 1 ? f->n_classes : 2;
        if (d->n_classes > limit)
            return nerve_set_error(NERVE_ERR_SHAPE,
                                   "the data has %d classes but the model's output has %d", d->n_classes,
                                   f->n_classes);
    }
    return NERVE_OK;
}

/* Writes n labels into the label node in the form it expects. */
static void feed_labels(feeder *f, int n)
{
    if (f->labels < 0)
        return;
    float *dst = nerve_value(f->g, f->labels).data;
    if (f->tokens) {
        memcpy(dst, f->tbuf, (size_t)n * (size_t)f->steps * sizeof(float));
    } else if (f->label_mode == LABELS_ONEHOT) {
        memset(dst, 0, (size_t)n * (size_t)f->n_classes * sizeof(float));
        for (int i = 0; i < n; i++)
            dst[(size_t)i * f->n_classes + (int)f->ybuf[i]] = 1.0f;
    } else {
        memcpy(dst, f->ybuf, (size_t)n * sizeof(float));
    }
}

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

/* Correct predictions of the batch; *judged gets how many were judged (samples, or the
 * labelled positions of token targets). */
static int64_t count_correct(feeder *f, int n, int64_t *judged)
{
    const float *out = nerve_value(f->g, f->output).data;
    if (f->tokens)
        return tokens_correct(out, f->tbuf, n, f->steps, f->n_classes, judged);
    *judged += n;
    int64_t correct = 0;
    for (int i = 0; i < n; i++)
        correct += predicted_class(out + (size_t)i * f->n_classes, f->n_classes) == (int)f->ybuf[i];
    return correct;
}

/* ---- evaluation ----------------------------------------------------------------------- */

/* Runs the model over d in eval mode; fills loss/accuracy/confusion/predictions. */
static int run_over(nerve_model *m, const nerve_dataset *d, double *loss, double *accuracy,
                    int *confusion, int n_conf, int *pred)
{
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g)) {
        int st = nerve_model_compile(m, nerve_model_config(m)->batch);
        if (st)
            return st;
    }
    if (d->target == NERVE_TARGET_TOKENS) {
        if (pred || confusion)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "a language model predicts a token at every step: sample "
                                   "from it (nerve_textgen) rather than predict classes");
        return tokens_evaluate(m, d, loss, accuracy);
    }
    feeder f;
    int st = feeder_init(&f, m, d, 0);
    if (st)
        return st;
    int max_batch = nerve_graph_batch(g);
    int was_training = nerve_graph_training(g);
    f.ybuf = nerve_xmalloc((size_t)max_batch * sizeof(float));
    if (!f.ybuf)
        return NERVE_ERR_NOMEM;
    nerve_graph_set_training(g, 0);
    int has_labels = d->y && d->n_classes > 0 && f.labels >= 0;
    int target = has_labels ? f.loss : f.output;
    double total_loss = 0;
    int64_t correct = 0;
    float *x = nerve_value(g, f.input).data;
    for (int start = 0; start < d->n && st == NERVE_OK; start += max_batch) {
        int n = d->n - start < max_batch ? d->n - start : max_batch;
        if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
            break;
        memcpy(x, d->x + (size_t)start * f.sample_numel, (size_t)n * f.sample_numel * sizeof(float));
        for (int i = 0; i < n; i++)
            f.ybuf[i] = d->y ? d->y[start + i] : 0.0f;
        if (has_labels)
            feed_labels(&f, n);
        if ((st = nerve_forward(g, target)) != NERVE_OK)
            break;
        if (has_labels)
            total_loss += (double)nerve_value(g, f.loss).data[0] * n;
        const float *out = nerve_value(g, f.output).data;
        for (int i = 0; i < n; i++) {
            int p = predicted_class(out + (size_t)i * f.n_classes, f.n_classes);
            if (pred)
                pred[start + i] = p;
            if (has_labels) {
                int truth = (int)f.ybuf[i];
                correct += p == truth;
                if (confusion && truth < n_conf && p < n_conf)
                    confusion[truth * n_conf + p]++;
            }
        }
    }
    nerve_graph_set_batch(g, max_batch);
    nerve_graph_set_training(g, was_training);
    nerve_xfree(f.ybuf);
    if (loss)
        *loss = has_labels && d->n ? total_loss / d->n : NAN;
    if (accuracy)
        *accuracy = has_labels && d->n ? (double)correct / d->n : NAN;
    return st;
}

int nerve_evaluate(nerve_model *m, const nerve_dataset *d, double *loss, double *accuracy,
                   int *confusion, int n_classes)
{
    if (!m || !d)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate: null model or data set");
    if (confusion)
        memset(confusion, 0, (size_t)n_classes * (size_t)n_classes * sizeof(int));
    return run_over(m, d, loss, accuracy, confusion, n_classes, NULL);
}

int nerve_predict(nerve_model *m, const nerve_dataset *d, int *out)
{
    if (!m || !d || !out)
        return nerve_set_error(NERVE_ERR_ARG, "predict: null argument");
    return run_over(m, d, NULL, NULL, NULL, 0, out);
}

/* ---- persistent tensors: best-weight snapshots ---------------------------------------- */

typedef struct snapshot {
    int n;
    int *ids;
    float **data;
} snapshot;

static int snapshot_init(snapshot *s, nerve_graph *g)
{
    s->n = nerve_graph_persistent(g, NULL, 0);
    s->ids = nerve_xcalloc((size_t)s->n + 1, sizeof(int));
    s->data = nerve_xcalloc((size_t)s->n + 1, sizeof(float *));
    if (!s->ids || !s->data)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(g, s->ids, s->n);
    for (int i = 0; i < s->n; i++) {
        nerve_tensor t = nerve_value(g, s->ids[i]);
        s->data[i] = nerve_xalloc_floats(nerve_tensor_numel(&t));
        if (!s->data[i])
            return NERVE_ERR_NOMEM;
    }
    return NERVE_OK;
}

static void snapshot_copy(snapshot *s, nerve_graph *g, int to_graph)
{
    for (int i = 0; i < s->n; i++) {
        nerve_tensor t = nerve_value(g, s->ids[i]);
        size_t bytes = nerve_tensor_numel(&t) * sizeof(float);
        if (to_graph)
            memcpy(t.data, s->data[i], bytes);
        else
            memcpy(s->data[i], t.data, bytes);
    }
}

static void snapshot_free(snapshot *s)
{
    for (int i = 0; s->data && i < s->n; i++)
        nerve_xfree_aligned(s->data[i]);
    nerve_xfree(s->data);
    nerve_xfree(s->ids);
}

/* ---- the training state that a checkpoint carries -------------------------------------- */

typedef struct run_state {
    int epoch;          /* completed epochs */
    int64_t iter;       /* completed iterations */
    int best_epoch;
    double best_val;
    int bad_epochs;
    int have_best;
    char *history;      /* CSV text of the log, header included */
    size_t history_len, history_cap;
} run_state;

static const char *CSV_HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n";

static int history_append(run_state *r, const char *line)
{
    size_t n = strlen(line);
    if (r->history_len + n + 1 > r->history_cap) {
        size_t cap = (r->history_len + n + 1) * 2;
        char *p = nerve_xrealloc(r->history, cap);
        if (!p)
            return NERVE_ERR_NOMEM;
        r->history = p;
        r->history_cap = cap;
    }
    memcpy(r->history + r->history_len, line, n + 1);
    r->history_len += n;
    return NERVE_OK;
}

/* Exact text form of a double ("%a" round-trips every bit). */
static void put_double(nerve_st_writer *w, const char *key, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v);
    nerve_st_writer_meta(w, key, buf);
}

static void put_int(nerve_st_writer *w, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    nerve_st_writer_meta(w, key, buf);
}

static int get_meta(const nerve_st_file *f, const char *key, const char **out, const char *path)
{
    *out = nerve_st_metadata(f, key);
    if (!*out)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: not a training checkpoint (no '%s' in its metadata)",
                               path, key);
    return NERVE_OK;
}

static int save_checkpoint(const char *path, nerve_model *m, nerve_optim *opt, const run_state *r,
                           const snapshot *best, const nerve_schedule *sched)
{
    nerve_st_writer *w = nerve_st_writer_create();
    if (!w)
        return nerve_last_status();
    int st = nerve_model_write_into(m, w);
    for (int i = 0; st == NERVE_OK && i < nerve_optim_state_count(opt); i++) {
        const char *name;
        nerve_tensor t;
        char key[160];
        if ((st = nerve_optim_state_get(opt, i, &name, &t)) != NERVE_OK)
            break;
        snprintf(key, sizeof key, "optim.%s", name);
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, t.data);
    }
    nerve_graph *g = nerve_model_graph(m);
    for (int i = 0; st == NERVE_OK && r->have_best && i < best->n; i++) {
        char key[160];
        nerve_tensor t = nerve_value(g, best->ids[i]);
        snprintf(key, sizeof key, "best.%s", nerve_node_name(g, best->ids[i]));
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, best->data[i]);
    }
    int carried[16], n_carried = nerve_graph_carried_states(g, carried, 16);
    for (int i = 0; st == NERVE_OK && i < n_carried && i < 16; i++) { /* where the streams are */
        char key[160];
        nerve_tensor t = nerve_value(g, carried[i]);
        snprintf(key, sizeof key, "carry.%s", nerve_node_name(g, carried[i]));
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, t.data);
    }
    if (st == NERVE_OK) {
        put_int(w, "train.epoch", r->epoch);
        put_int(w, "train.iter", r->iter);
        put_int(w, "train.optim_steps", nerve_optim_steps(opt));
        put_int(w, "train.best_epoch", r->best_epoch);
        put_double(w, "train.best_val", r->best_val);
        put_int(w, "train.bad_epochs", r->bad_epochs);
        put_int(w, "train.have_best", r->have_best);
        put_double(w, "train.sched_best", sched->best);
        put_int(w, "train.sched_bad", sched->bad_epochs);
        put_double(w, "train.sched_scale", sched->plateau_scale);
        const nerve_rng *rng = nerve_graph_rng(g);
        char buf[96];
        snprintf(buf, sizeof buf, "%" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32, rng->s[0], rng->s[1],
                 rng->s[2], rng->s[3]);
        nerve_st_writer_meta(w, "train.rng", buf);
        nerve_st_writer_meta(w, "train.history", r->history ? r->history : "");
        st = nerve_st_writer_save(w, path);
    }
    nerve_st_writer_free(w);
    return st;
}

static int load_resume(const char *path, nerve_model *m, nerve_optim *opt, run_state *r, snapshot *best,
                       nerve_schedule *sched)
{
    nerve_st_file *f = nerve_st_open(path);
    if (!f)
        return nerve_last_status();
    int st = nerve_model_read_from(m, f, 1);
    for (int i = 0; st == NERVE_OK && i < nerve_optim_state_count(opt); i++) {
        const char *name;
        nerve_tensor t;
        char key[160];
        nerve_optim_state_get(opt, i, &name, &t);
        snprintf(key, sizeof key, "optim.%s", name);
        int k = nerve_st_find(f, key);
        if (k < 0)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: optimiser state '%s' is missing (was it saved "
                                 "with another optimiser?)", path, key);
        else
            st = nerve_st_read(f, k, t.data, nerve_tensor_numel(&t));
    }
    const char *v[12];
    static const char *keys[] = {"train.epoch", "train.iter", "train.optim_steps", "train.best_epoch",
                                 "train.best_val", "train.bad_epochs", "train.have_best", "train.sched_best",
                                 "train.sched_bad", "train.sched_scale", "train.rng", "train.history"};
    for (int i = 0; st == NERVE_OK && i < 12; i++)
        st = get_meta(f, keys[i], &v[i], path);
    if (st == NERVE_OK) {
        r->epoch = atoi(v[0]);
        r->iter = strtoll(v[1], NULL, 10);
        nerve_optim_set_steps(opt, strtoll(v[2], NULL, 10));
        r->best_epoch = atoi(v[3]);
        r->best_val = strtod(v[4], NULL);
        r->bad_epochs = atoi(v[5]);
        r->have_best = atoi(v[6]);
        sched->best = (float)strtod(v[7], NULL);
        sched->bad_epochs = atoi(v[8]);
        sched->plateau_scale = (float)strtod(v[9], NULL);
        nerve_rng *rng = nerve_graph_rng(nerve_model_graph(m));
        if (sscanf(v[10], "%" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32, &rng->s[0], &rng->s[1], &rng->s[2],
                   &rng->s[3]) != 4)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: malformed train.rng", path);
        r->history_len = 0;
        if (st == NERVE_OK)
            st = history_append(r, v[11]);
    }
    nerve_graph *g = nerve_model_graph(m);
    for (int i = 0; st == NERVE_OK && r->have_best && i < best->n; i++) {
        char key[160];
        nerve_tensor t = nerve_value(g, best->ids[i]);
        snprintf(key, sizeof key, "best.%s", nerve_node_name(g, best->ids[i]));
        int k = nerve_st_find(f, key);
        if (k < 0)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: best weights '%s' are missing", path, key);
        else
            st = nerve_st_read(f, k, best->data[i], nerve_tensor_numel(&t));
    }
    int carried[16], n_carried = nerve_graph_carried_states(g, carried, 16);
    for (int i = 0; st == NERVE_OK && i < n_carried && i < 16; i++) {
        char key[160];
        nerve_tensor t = nerve_value(g, carried[i]);
        snprintf(key, sizeof key, "carry.%s", nerve_node_name(g, carried[i]));
        int k = nerve_st_find(f, key), nd, dims[NERVE_MAX_DIMS];
        if (k < 0 || nerve_st_shape(f, k, &nd, dims) != NERVE_OK ||
            !nerve_same_shape(nd, dims, t.ndim, t.dims))
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: the carried state '%s' is missing or has "
                                 "another shape (another batch?)", path, key);
        else
            st = nerve_st_read(f, k, t.data, nerve_tensor_numel(&t));
    }
    nerve_st_close(f);
    return st;
}

/* ---- outputs: CSV log and SVG plot ---------------------------------------------------- */

static int write_text_file(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "cannot write %s", tmp);
    int ok = fputs(text, fp) >= 0;
    ok &= fclose(fp) == 0;
    if (!ok || rename(tmp, path) != 0)
        return nerve_set_error(NERVE_ERR_IO, "cannot write %s", path);
    return NERVE_OK;
}

/* Re-reads the history CSV into columns and plots losses and accuracies. */
static int write_plot(const char *path, const char *history)
{
    int rows = 0;
    for (const char *p = history; *p; p++)
        rows += *p == '\n';
    rows -= 1; /* header */
    if (rows < 1)
        return NERVE_OK;
    double *cols = nerve_xcalloc((size_t)rows * 5, sizeof(double));
    if (!cols)
        return NERVE_ERR_NOMEM;
    const char *p = strchr(history, '\n') + 1;
    for (int i = 0; i < rows && *p; i++) {
        double e, tl, ta, vl, va;
        if (sscanf(p, "%lf,%lf,%lf,%lf,%lf", &e, &tl, &ta, &vl, &va) == 5) {
            cols[i] = e;
            cols[rows + i] = tl;
            cols[2 * rows + i] = ta;
            cols[3 * rows + i] = vl;
            cols[4 * rows + i] = va;
        }
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    nerve_series s[4] = {{"train loss", cols + rows},
                         {"validation loss", cols + 3 * rows},
                         {"train accuracy", cols + 2 * rows},
                         {"validation accuracy", cols + 4 * rows}};
    int st = nerve_svg_lineplot(path, "training curves", "epoch", cols, rows, s, 4);
    nerve_xfree(cols);
    return st;
}

/* ---- augmentation of training batches ------------------------------------------------ */

/* A copy of the cfg's augmentation with the PCA colour statistics of the training set (a
 * function of the data only, so a resumed run recomputes the same), and its scratch. */
static int augment_prepare(const nerve_net_config *c, const nerve_dataset *train, nerve_augment *a,
                           float **scratch)
{
    *a = c->augment;
    *scratch = NULL;
    if (!a->on)
        return NERVE_OK;
    if ((a->on & NERVE_AUG_PCA) && !a->pca_fitted) {
        nerve_dataset images = *train; /* seen with the model's [3, H, W] (CSV rows are flat) */
        images.ndim = 3;
        memcpy(images.dims, c->dims, 3 * sizeof(int));
        int st = nerve_pca_colour_fit(&images, a->pca_eigval, a->pca_eigvec);
        if (st)
            return st;
        a->pca_fitted = 1;
    }
    *scratch = nerve_xalloc_floats(nerve_augment_scratch(c->dims[0], c->dims[1], c->dims[2], 0));
    return *scratch ? NERVE_OK : NERVE_ERR_NOMEM;
}

/* Augments batch `batch` of `epoch` in place with a generator that depends on (seed, epoch,
 * batch) only, so that --resume replays it bit for bit. */
static int augment_batch(const nerve_net_config *c, const nerve_augment *a, float *x, int n, int epoch,
                         int batch, float *scratch)
{
    nerve_rng r;
    nerve_augment_seed(&r, c->seed, epoch, batch);
    return nerve_augment_apply(a, x, NULL, n, c->dims[0], c->dims[1], c->dims[2], 0, &r, scratch);
}

/* ---- the loop ------------------------------------------------------------------------- */

static int fit_epochs(nerve_model *m, const nerve_dataset *train, const nerve_dataset *val,
                      const nerve_fit_options *opt, nerve_fit_result *res, nerve_optim *optim,
                      nerve_schedule *sched, run_state *r, snapshot *best, feeder *f)
{
    const nerve_net_config *c = nerve_model_config(m);
    nerve_graph *g = f->g;
    int max_batch = nerve_graph_batch(g);
    int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
    int stop_after = opt ? opt->stop_after_epochs : 0;
    int every = opt && opt->progress_every > 0 ? opt->progress_every : 50;
    nerve_batcher b;
    /* a text stream is read in its order: batch k is chunk k of every stream */
    int st = nerve_batcher_init(&b, train, max_batch, !train->streams, c->seed);
    if (st)
        return st;
    nerve_augment aug;
    float *aug_scratch;
    if ((st = augment_prepare(c, train, &aug, &aug_scratch)) != NERVE_OK) {
        nerve_batcher_free(&b);
        return st;
    }
    float *x = nerve_value(g, f->input).data;
    double t_run = now_seconds();
    int ran = 0;
    int out_of_steps = c->max_batches > 0 && r->iter >= c->max_batches;
    for (int epoch = r->epoch + 1; epoch <= epochs && st == NERVE_OK && !out_of_steps; epoch++) {
        /* batch order of this epoch: a function of (seed, epoch) only */
        nerve_rng_seed(&b.rng, c->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch);
        for (int i = 0; i < train->n; i++)
            b.order[i] = i;
        nerve_batcher_reset(&b);
        nerve_graph_set_training(g, 1);
        nerve_graph_reset_carry(g); /* an epoch reads every stream from its start */
        double t0 = now_seconds(), loss_sum = 0;
        int64_t seen = 0, correct = 0, judged = 0;
        int batches = 0, n;
        float lr = nerve_schedule_lr(sched, r->iter, epoch - 1);
        while (!out_of_steps && (n = nerve_batcher_next_target(&b, x, f->ybuf, f->tbuf)) > 0) {
            if (aug.on && (st = augment_batch(c, &aug, x, n, epoch, batches, aug_scratch)) != NERVE_OK)
                break;
            if (n != nerve_graph_batch(g) && (st = nerve_graph_set_batch(g, n)) != NERVE_OK)
                break;
            feed_labels(f, n);
            lr = nerve_schedule_lr(sched, r->iter, epoch - 1);
            nerve_optim_prepare(optim);
            nerve_forward(g, f->loss);
            float loss = nerve_value(g, f->loss).data[0];
            if (!isfinite(loss)) {
                st = nerve_set_error(NERVE_ERR_NUMERIC,
                                     "the loss became %s at epoch %d, batch %d (learning rate %g); training "
                                     "stopped, the last checkpoint on disk is from epoch %d",
                                     isnan(loss) ? "NaN" : "infinite", epoch, batches + 1, (double)lr,
                                     r->epoch);
                break;
            }
            nerve_backward(g, f->loss);
            nerve_optim_step(optim, lr);
            r->iter++;
            batches++;
            loss_sum += (double)loss * n;
            correct += count_correct(f, n, &judged);
            seen += n;
            out_of_steps = c->max_batches > 0 && r->iter >= c->max_batches;
            if (opt && opt->on_progress && (batches % every == 0 || seen == train->n)) {
                double el = now_seconds() - t0;
                nerve_progress p = {epoch, epochs, seen, train->n, loss_sum / (double)seen,
                                    el > 0 ? (double)seen / el : 0,
                                    el > 0 ? el * (double)(train->n - seen) / (double)seen : 0};
                opt->on_progress(&p, opt->user);
            }
        }
        if (nerve_graph_batch(g) != max_batch)
            nerve_graph_set_batch(g, max_batch);
        if (st)
            break;
        double secs = now_seconds() - t0;
        nerve_epoch_stats es = {epoch, loss_sum / (double)seen, (double)correct / (double)judged, NAN, NAN, lr,
                                secs, secs > 0 ? (double)seen / secs : 0};
        if (val && val->n > 0 && (st = nerve_evaluate(m, val, &es.val_loss, &es.val_acc, NULL, 0)) != NERVE_OK)
            break;
        double metric = val && val->n > 0 ? es.val_loss : es.train_loss;
        nerve_schedule_observe(sched, (float)metric);
        if (!r->have_best || metric < r->best_val) {
            r->best_val = metric;
            r->best_epoch = epoch;
            r->bad_epochs = 0;
            r->have_best = 1;
            snapshot_copy(best, g, 0);
        } else {
            r->bad_epochs++;
        }
        char line[256];
        snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", epoch, es.train_loss, es.train_acc,
                 es.val_loss, es.val_acc, (double)lr, secs);
        if ((st = history_append(r, line)) != NERVE_OK)
            break;
        r->epoch = epoch;
        ran++;
        if (opt && opt->log_csv && (st = write_text_file(opt->log_csv, r->history)) != NERVE_OK)
            break;
        if (opt && opt->plot_svg && (st = write_plot(opt->plot_svg, r->history)) != NERVE_OK)
            break;
        if (opt && opt->checkpoint && (st = save_checkpoint(opt->checkpoint, m, optim, r, best, sched)))
            break;
        if (opt && opt->on_epoch)
            opt->on_epoch(&es, opt->user);
        if (c->patience > 0 && r->bad_epochs >= c->patience) {
            res->stopped_early = 1;
            break;
        }
        if (stop_after > 0 && ran >= stop_after)
            break;
    }
    nerve_batcher_free(&b);
    nerve_xfree_aligned(aug_scratch);
    res->epochs_run = ran;
    res->best_epoch = r->best_epoch;
    res->best_val_loss = r->best_val;
    res->seconds = now_seconds() - t_run;
    return st;
}

int nerve_fit(nerve_model *m, const nerve_dataset *train, const nerve_dataset *val,
              const nerve_fit_options *opt, nerve_fit_result *result)
{
    if (!m || !train || train->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "fit: no model or an empty training set");
    if (!train->y || train->n_classes < 1)
        return nerve_set_error(NERVE_ERR_ARG, "fit: the training set has no labels");
    nerve_fit_result res_local = {0};
    nerve_fit_result *res = result ? result : &res_local;
    memset(res, 0, sizeof *res);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_graph *g = nerve_model_graph(m);
    int st = NERVE_OK;
    if (!nerve_graph_is_compiled(g) && (st = nerve_model_compile(m, c->batch)) != NERVE_OK)
        return st;
    nerve_rng_seed(nerve_graph_rng(g), c->seed + 1);
    if (nerve_model_normalizes(m)) {
        float *mean = nerve_xmalloc(train->sample_numel * sizeof(float));
        float *std = nerve_xmalloc(train->sample_numel * sizeof(float));
        st = mean && std ? nerve_dataset_stats(train, mean, std) : NERVE_ERR_NOMEM;
        if (st == NERVE_OK)
            st = nerve_model_set_input_stats(m, mean, std);
        nerve_xfree(mean);
        nerve_xfree(std);
        if (st)
            return st;
    }
    feeder f;
    if ((st = feeder_init(&f, m, train, 1)) != NERVE_OK)
        return st;
    if (val && val->n > 0) {
        feeder fv;
        if ((st = feeder_init(&fv, m, val, 0)) != NERVE_OK)
            return st;
    }
    f.ybuf = nerve_xmalloc((size_t)nerve_graph_batch(g) * sizeof(float));
    if (f.tokens)
        f.tbuf = nerve_xmalloc((size_t)nerve_graph_batch(g) * train->target_numel * sizeof(float));
    nerve_optim *optim = nerve_optim_create(g, &c->optim);
    nerve_schedule sched = c->schedule;
    if ((sched.type == NERVE_SCHED_LINEAR || sched.type == NERVE_SCHED_COSINE) && sched.tau <= 0) {
        /* unset tau: decay over the whole run */
        int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
        int64_t per_epoch = (train->n + nerve_graph_batch(g) - 1) / nerve_graph_batch(g);
        sched.tau = per_epoch * (epochs > 0 ? epochs : 1);
        if (c->max_batches > 0 && c->max_batches < sched.tau)
            sched.tau = c->max_batches;
    }
    run_state r = {0};
    snapshot best = {0};
    if (!f.ybuf || (f.tokens && !f.tbuf) || !optim)
        st = nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = snapshot_init(&best, g);
    if (st == NERVE_OK)
        st = history_append(&r, CSV_HEADER);
    if (st == NERVE_OK && opt && opt->resume)
        st = load_resume(opt->resume, m, optim, &r, &best, &sched);
    if (st == NERVE_OK)
        st = fit_epochs(m, train, val, opt, res, optim, &sched, &r, &best, &f);
    /* Early stopping's promise: the model ends with its best weights (only meaningful
     * when a validation set chose them). */
    int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
    int finished = r.epoch >= epochs || res->stopped_early ||
                   (c->max_batches > 0 && r.iter >= c->max_batches);
    if (st == NERVE_OK && finished && val && val->n > 0 && r.have_best) {
        snapshot_copy(&best, g, 1);
        if (opt && opt->checkpoint)
            st = save_checkpoint(opt->checkpoint, m, optim, &r, &best, &sched);
    }
    snapshot_free(&best);
    nerve_optim_free(optim);
    nerve_xfree(f.ybuf);
    nerve_xfree(f.tbuf);
    nerve_xfree(r.history);
    return st;
}
