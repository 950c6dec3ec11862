/* The course's experiments: the table of them, and what they share (reporting, plots,
 * Fashion-MNIST, a plain training loop). docs/experiments.md has their figures. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    const char *name, *summary;
    int (*run)(const nerve_experiment_options *o);
} experiment;

static const experiment experiments[] = {
    {"lottery", "lottery tickets: magnitude pruning rewound to the initialisation vs re-initialised", exp_lottery},
    {"collapse", "neural collapse NC1-NC4 per epoch, past zero training error", exp_collapse},
    {"recos", "trained on images, tested on their negatives (1 - x), and the reverse", exp_recos},
    {"optimisers", "optimisers on the canyon and the saddle, and a learning-rate sweep", exp_optimisers},
    {"bcd", "block coordinate descent (Zeng et al.) against SGD on a deep MLP", exp_bcd},
    {"gradients", "vanishing and exploding gradients: deep tanh/sigmoid nets, RNN vs sigma_max", exp_gradients},
    {"perceptron", "perceptron updates against the bound beta ||w_o||^2 / alpha^2", exp_perceptron},
};
#define N_EXPERIMENTS ((int)NERVE_ARRAY_LEN(experiments))

void nerve_experiment_defaults(nerve_experiment_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->seed = 1;
}

const char *nerve_experiment_name(int i) { return i >= 0 && i < N_EXPERIMENTS ? experiments[i].name : NULL; }

const char *nerve_experiment_summary(int i)
{
    return i >= 0 && i < N_EXPERIMENTS ? experiments[i].summary : NULL;
}

int nerve_experiment_run(const char *name, const nerve_experiment_options *o)
{
    nerve_experiment_options d;
    if (!o) {
        nerve_experiment_defaults(&d);
        o = &d;
    }
    if (o->epochs < 0 || o->train < 0)
        return nerve_set_error(NERVE_ERR_ARG, "experiment: epochs and training samples must not be negative");
    for (int i = 0; name && i < N_EXPERIMENTS; i++)
        if (!strcmp(name, experiments[i].name))
            return experiments[i].run(o);
    char known[256] = "";
    for (int i = 0; i < N_EXPERIMENTS; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", experiments[i].name);
    return nerve_set_error(NERVE_ERR_ARG, "unknown experiment '%s' (known: %s)", name ? name : "(null)", known);
}

/* ---- reporting ------------------------------------------------------------------------ */

void exp_say(const nerve_experiment_options *o, const char *fmt, ...)
{
    if (!o->print)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->print(o->user, line);
}

void exp_figure(const nerve_experiment_options *o, const char *key, double value)
{
    exp_say(o, "%s = %.6g", key, value);
}

int exp_path(const nerve_experiment_options *o, const char *file, char *buf, size_t size)
{
    const char *dir = o->out_dir && *o->out_dir ? o->out_dir : ".";
    int k = snprintf(buf, size, "%s/%s", dir, file);
    if (k < 0 || (size_t)k >= size)
        return nerve_set_error(NERVE_ERR_ARG, "experiment: the path %s/%s is too long", dir, file);
    return NERVE_OK;
}

int exp_plot(const nerve_experiment_options *o, const char *file, const char *title, const char *xlabel,
             const double *x, int n, const nerve_series *series, int n_series)
{
    char path[1024];
    int st = exp_path(o, file, path, sizeof path);
    if (st == NERVE_OK && (st = nerve_svg_lineplot(path, title, xlabel, x, n, series, n_series)) == NERVE_OK)
        exp_say(o, "plot: %s", path);
    return st;
}

/* ---- data ----------------------------------------------------------------------------- */

static int load_pair(const char *dir, const char *images, const char *labels, nerve_dataset *d)
{
    char pi[1024], pl[1024];
    snprintf(pi, sizeof pi, "%s/%s", dir, images);
    snprintf(pl, sizeof pl, "%s/%s", dir, labels);
    return nerve_dataset_load_idx(d, pi, pl, 1.0f / 255.0f);
}

/* Keeps the first n samples of d (balanced: the first n / C of every class, in file order). */
static int keep_first(nerve_dataset *d, int n, int balanced)
{
    if (n <= 0 || n >= d->n)
        return NERVE_OK;
    int *idx = nerve_xmalloc((size_t)n * sizeof(int));
    if (!idx)
        return NERVE_ERR_NOMEM;
    int count = 0;
    if (balanced && d->n_classes > 0) {
        int per = n / d->n_classes, seen[256] = {0};
        for (int i = 0; i < d->n && count < per * d->n_classes; i++) {
            int c = (int)d->y[i];
            if (c >= 0 && c < 256 && seen[c] < per) {
                seen[c]++;
                idx[count++] = i;
            }
        }
    } else {
        for (int i = 0; i < n; i++)
            idx[count++] = i;
    }
    nerve_dataset sub;
    memset(&sub, 0, sizeof sub);
    int st = nerve_dataset_gather(&sub, d, idx, count);
    nerve_xfree(idx);
    if (st != NERVE_OK)
        return st;
    int classes = d->n_classes;
    nerve_dataset_free(d);
    *d = sub;
    d->n_classes = classes;
    return NERVE_OK;
}

int exp_fashion(const nerve_experiment_options *o, nerve_dataset *train, int n_train, int balanced,
                nerve_dataset *test, int n_test)
{
    const char *dir = o->data_dir && *o->data_dir ? o->data_dir : "/usr/share/datasets/fashion-mnist";
    int st = NERVE_OK;
    if (o->quick && train && test && n_train > 0 && n_test > 0 && n_train + n_test <= 10000) {
        /* quick runs read the smaller test file only: its first n_train images train, the
           next n_test test */
        memset(train, 0, sizeof *train);
        memset(test, 0, sizeof *test);
        if ((st = load_pair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", train)) != NERVE_OK)
            return st;
        int *idx = nerve_xmalloc((size_t)n_test * sizeof(int));
        if (!idx) {
            nerve_dataset_free(train);
            return NERVE_ERR_NOMEM;
        }
        for (int i = 0; i < n_test; i++)
            idx[i] = n_train + i;
        st = nerve_dataset_gather(test, train, idx, n_test);
        nerve_xfree(idx);
        test->n_classes = train->n_classes;
        if (st == NERVE_OK)
            st = keep_first(train, n_train, balanced);
        if (st != NERVE_OK) {
            nerve_dataset_free(train);
            nerve_dataset_free(test);
        }
        return st;
    }
    if (train) {
        memset(train, 0, sizeof *train);
        if ((st = load_pair(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", train)) != NERVE_OK ||
            (st = keep_first(train, n_train, balanced)) != NERVE_OK)
            return st;
    }
    if (test) {
        memset(test, 0, sizeof *test);
        if ((st = load_pair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", test)) != NERVE_OK ||
            (st = keep_first(test, n_test, 0)) != NERVE_OK) {
            if (train)
                nerve_dataset_free(train);
            return st;
        }
    }
    return NERVE_OK;
}

/* ---- networks and a training loop ----------------------------------------------------- */

int exp_net_build(exp_net *n, const char *cfg_text, const char *name)
{
    memset(n, 0, sizeof *n);
    n->m = nerve_model_from_cfg(cfg_text, name);
    if (!n->m)
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_ARG;
    n->batch = nerve_model_config(n->m)->batch;
    int st = nerve_model_compile(n->m, n->batch);
    if (st != NERVE_OK) {
        exp_net_free(n);
        return st;
    }
    n->g = nerve_model_graph(n->m);
    n->in = nerve_model_input(n->m);
    n->labels = nerve_model_labels(n->m);
    n->loss = nerve_model_loss(n->m);
    n->out = nerve_model_output(n->m);
    n->n_params = nerve_graph_params(n->g, NULL, 0);
    n->params = nerve_xmalloc((size_t)(n->n_params > 0 ? n->n_params : 1) * sizeof(int));
    if (!n->params) {
        exp_net_free(n);
        return NERVE_ERR_NOMEM;
    }
    nerve_graph_params(n->g, n->params, n->n_params);
    return NERVE_OK;
}

void exp_net_free(exp_net *n)
{
    nerve_model_free(n->m);
    nerve_xfree(n->params);
    memset(n, 0, sizeof *n);
}

size_t exp_net_size(const exp_net *n)
{
    size_t total = 0;
    for (int i = 0; i < n->n_params; i++) {
        nerve_tensor t = nerve_value(n->g, n->params[i]);
        total += nerve_tensor_numel(&t);
    }
    return total;
}

void exp_net_save(exp_net *n, float *flat)
{
    for (int i = 0; i < n->n_params; i++) {
        nerve_tensor t = nerve_value(n->g, n->params[i]);
        size_t k = nerve_tensor_numel(&t);
        memcpy(flat, t.data, k * sizeof(float));
        flat += k;
    }
}

void exp_net_load(exp_net *n, const float *flat)
{
    for (int i = 0; i < n->n_params; i++) {
        nerve_tensor t = nerve_value(n->g, n->params[i]);
        size_t k = nerve_tensor_numel(&t);
        memcpy(t.data, flat, k * sizeof(float));
        flat += k;
    }
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int exp_train_epoch(exp_net *n, nerve_optim *opt, nerve_batcher *b, float lr, void (*after_step)(void *user),
                    void *user, double *loss, double *acc)
{
    nerve_graph *g = n->g;
    nerve_graph_set_training(g, 1);
    nerve_batcher_reset(b);
    float *x = nerve_value(g, n->in).data, *y = nerve_value(g, n->labels).data;
    double loss_sum = 0;
    long seen = 0, correct = 0;
    int got, st = NERVE_OK;
    while ((got = nerve_batcher_next(b, x, y)) > 0) {
        if (got != nerve_graph_batch(g) && (st = nerve_graph_set_batch(g, got)) != NERVE_OK)
            return st;
        nerve_optim_prepare(opt);
        if ((st = nerve_forward(g, n->loss)) != NERVE_OK)
            return st;
        float l = nerve_value(g, n->loss).data[0];
        if (!isfinite(l))
            return nerve_set_error(NERVE_ERR_NUMERIC, "experiment: the training loss became %g (learning rate %g)",
                                   (double)l, (double)lr);
        if ((st = nerve_backward(g, n->loss)) != NERVE_OK)
            return st;
        nerve_optim_step(opt, lr);
        if (after_step)
            after_step(user);
        nerve_tensor out = nerve_value(g, n->out);
        int classes = out.dims[out.ndim - 1];
        for (int i = 0; i < got; i++)
            correct += argmax(out.data + (size_t)i * classes, classes) == (int)y[i];
        loss_sum += (double)l * got;
        seen += got;
    }
    if (loss)
        *loss = seen ? loss_sum / seen : NAN;
    if (acc)
        *acc = seen ? (double)correct / seen : NAN;
    return NERVE_OK;
}

int exp_accuracy(exp_net *n, const nerve_dataset *d, double *acc)
{
    return nerve_evaluate(n->m, d, NULL, acc, NULL, 0);
}

/* The 8 x 8 digits that python3-sklearn ships: 1797 rows of 64 pixels (0..16) and the label,
 * gzip-compressed. */
#define DIGITS_DEFAULT "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
int exp_digits(const nerve_experiment_options *o, nerve_dataset *d)
{
    const char *path = o->digits && *o->digits ? o->digits : DIGITS_DEFAULT;
    memset(d, 0, sizeof *d);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open (the 8x8 digits come with python3-sklearn; "
                                             "--digits names another copy)", path);
    size_t cap = 1 << 20, len = 0;
    char *text = nerve_xmalloc(cap);
    int st = text ? NERVE_OK : NERVE_ERR_NOMEM;
    while (st == NERVE_OK) {
        if (len == cap) {
            if (cap >= (size_t)64 << 20) {
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: more than 64 MiB of text: not the digits", path);
                break;
            }
            char *bigger = nerve_xrealloc(text, cap * 2);
            if (!bigger) {
                st = NERVE_ERR_NOMEM;
                break;
            }
            text = bigger, cap *= 2;
        }
        int got = gzread(gz, text + len, (unsigned)(cap - len));
        if (got < 0) {
            int code;
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: %s", path, gzerror(gz, &code));
        } else if (got == 0)
            break;
        else
            len += (size_t)got;
    }
    gzclose(gz);
    if (st == NERVE_OK) {
        nerve_csv_options co = nerve_csv_default();
        co.header = NERVE_CSV_HEADER_NO;
        co.scale = 1.0f / 16.0f;
        st = nerve_dataset_parse_csv(d, text, len, path, &co);
    }
    nerve_xfree(text);
    if (st == NERVE_OK && (d->sample_numel != 64 || d->n_classes != 10)) {
        nerve_dataset_free(d);
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: expected 64 pixels and 10 classes a row (the 8x8 digits)", path);
    }
    if (st == NERVE_OK) {
        d->ndim = 3;
        d->dims[0] = 1, d->dims[1] = 8, d->dims[2] = 8;
    }
    return st;
}
