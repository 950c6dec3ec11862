/* Models described by darknet-style cfg files.
 *
 * The [net] section fills a nerve_net_config (input shape, optimiser, schedule, training
 * and data settings); every later section appends one layer to the graph; a [softmax] or
 * [cost] head, which must come last, defines the labels input and the loss. Every error
 * reads "<file>:<line>: ..." with the line of the offending key or section. See
 * docs/cfg.md for every key. */
#include "model.h"

#include "../core/core.h"
#include "../data/augment.h"
#include "../graph/graph.h"
#include "../io/cfg.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes beyond these are surely typos; refusing them keeps garbage from asking the
 * allocator for terabytes. */
#define MAX_FEATURES (1 << 24) /* elements of one input sample */
#define MAX_SIDE (1 << 16)     /* height, width */
#define MAX_UNITS (1 << 20)    /* outputs of one layer */

static const cfg_range R_POS = {0, INFINITY, 1, 0};    /* > 0 */
static const cfg_range R_NONNEG = {0, INFINITY, 0, 0}; /* >= 0 */
static const cfg_range R_PROB = {0, 1, 0, 1};          /* [0, 1) */
static const cfg_range R_UNIT_OPEN = {0, 1, 1, 0};     /* (0, 1] */

/* ===================================================================================== */
/* [net]                                                                                  */
/* ===================================================================================== */

/* The [net] keys of the data sources beyond IDX and CSV, and of how to read them. */
#define DATA_CFG_KEYS                                                                      \
    "train_folder", "test_folder", "train_list", "test_list", "train_cifar", "test_cifar", \
        "names", "resize", "layout", "csv_sep", "csv_header", "csv_skip", "csv_label",    \
        "csv_targets", "cifar_label", "list_target"

static const char *const net_keys[] = {
    "inputs", "height", "width", "channels", "batch", "epochs", "seed", "learning_rate",
    "optimizer", "momentum", "decay", "beta1", "beta2", "rho", "epsilon", "decoupled_decay",
    "clip_norm", "policy", "gamma", "scale", "step", "steps", "scales", "epoch_step",
    "epoch_steps", "power", "burn_in", "lr_end", "tau", "warmup", "plateau_patience",
    "patience", "validation", "normalize", "input_scale", "subdivisions", "time_steps", "adam",
    "seen",
    "classes", "train_images", "train_labels", "test_images", "test_labels", "train_csv",
    "test_csv", "train_text", "seq", "max_batches", "sync_batchnorm", "corrupt", "corrupt_sigma", "corrupt_prob",
    "corrupt_clip", "adversarial", "adv_eps", "adv_steps", "adv_step", "adv_norm", "adv_warmup",
    "adv_lo", "adv_hi", "trades_beta", AUGMENT_CFG_KEYS, DATA_CFG_KEYS, NULL};

static int net_input_shape(const cfg_doc *d, const cfg_section *s, nerve_net_config *c)
{
    int inputs = 0, h = 0, w = 0, ch = 1;
    GET(has_in, cfg_get_int(d, s, "inputs", 1, MAX_FEATURES, &inputs));
    GET(has_h, cfg_get_int(d, s, "height", 1, MAX_SIDE, &h));
    GET(has_w, cfg_get_int(d, s, "width", 1, MAX_SIDE, &w));
    GET(has_c, cfg_get_int(d, s, "channels", 1, 1 << 16, &ch));
    GET(has_seq, cfg_get_int(d, s, "seq", 1, MAX_FEATURES, &c->seq));
    if (has_seq && (has_in || has_h || has_w || has_c))
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "seq")->line,
                         "seq= (a chunk of tokens) is the input shape; it does not combine with "
                         "inputs=, height=, width= or channels=");
    if (has_seq) {
        c->ndim = 1;
        c->dims[0] = c->seq;
        return NERVE_OK;
    }
    if (cfg_find(s, "train_text"))
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "train_text")->line,
                         "train_text= needs seq= (the characters each stream reads per step)");
    if (has_in && (has_h || has_w || has_c))
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "inputs")->line,
                         "give either inputs= (a vector) or height=, width=, channels= (an "
                         "image), not both");
    int steps = 1;
    GET(has_steps, cfg_get_int(d, s, "time_steps", 1, MAX_FEATURES, &steps));
    if (has_steps && !has_in)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "time_steps")->line,
                         "time_steps= (darknet: the steps of a sequence) needs inputs= (the "
                         "features of one step)");
    if (has_in && steps > 1) {
        if ((double)steps * inputs > MAX_FEATURES)
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "time_steps")->line,
                             "time_steps=%d of %d inputs is too large; at most %d values", steps,
                             inputs, MAX_FEATURES);
        c->ndim = 2; /* a sequence [time_steps, inputs] per sample */
        c->dims[0] = steps;
        c->dims[1] = inputs;
        return NERVE_OK;
    }
    if (has_in) {
        c->ndim = 1;
        c->dims[0] = inputs;
        return NERVE_OK;
    }
    if (!has_h || !has_w) {
        if (has_h || has_w || has_c) {
            const char *given = has_h ? "height" : has_w ? "width" : "channels";
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, given)->line,
                             "%s= alone does not give an image shape; expected height= and "
                             "width= (and channels=, default 1)", given);
        }
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[net] gives no input shape; expected inputs=N (a vector) or height=, "
                         "width= and channels= (an image)");
    }
    if ((double)h * w * ch > MAX_FEATURES)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "an input of %d x %d x %d values is too large; at most %d", ch, h, w,
                         MAX_FEATURES);
    c->ndim = 3;
    c->dims[0] = ch;
    c->dims[1] = h;
    c->dims[2] = w;
    return NERVE_OK;
}

/* A key that only some optimisers read is an error with the others: a silently ignored
 * momentum=0.9 is the classic darknet-to-anything surprise. */
static int only_for(const cfg_doc *d, const cfg_section *s, const char *key, int applies,
                     const char *which)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e || applies)
        return NERVE_OK;
    const cfg_entry *opt = cfg_find(s, "optimizer");
    return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                     "%s has no effect with optimizer=%s; it is used by optimizer=%s", key,
                     opt ? opt->value : "sgd (the default)", which);
}

static int net_optimizer(const cfg_doc *d, const cfg_section *s, nerve_net_config *c)
{
    nerve_opt_type t = NERVE_OPT_SGD;
    const cfg_entry *e = cfg_find(s, "optimizer");
    char q[80];
    if (e && nerve_optim_parse(e->value, &t) < 0)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "optimizer = '%s' is unknown; expected one of: sgd, momentum, nesterov, "
                         "adagrad, rmsprop, adam, adamw, adadelta",
                         cfg_quote(e->value, q, sizeof q));
    /* darknet's adam=1: Adam with its B1 0.9, B2 0.999, eps 1e-7; momentum= is then unused,
     * in darknet as here */
    int dn_adam = 0;
    TRY(cfg_get_bool(d, s, "adam", &dn_adam));
    if (dn_adam && e && t != NERVE_OPT_ADAM)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "adam")->line,
                         "adam=1 (darknet's) selects Adam, but optimizer=%s; give one", e->value);
    if (dn_adam)
        t = NERVE_OPT_ADAM;
    float momentum = 0;
    GET(has_m, cfg_get_float(d, s, "momentum", R_PROB, &momentum));
    /* darknet's SGD has momentum: momentum= > 0 with optimizer=sgd (or none) is SGD with
     * momentum */
    if (has_m && momentum > 0 && t == NERVE_OPT_SGD)
        t = NERVE_OPT_MOMENTUM;
    nerve_optim_config *o = &c->optim;
    *o = nerve_optim_default(t);
    if (dn_adam)
        o->delta = 1e-7f;
    int uses_momentum = t == NERVE_OPT_MOMENTUM || t == NERVE_OPT_NESTEROV;
    int adam = t == NERVE_OPT_ADAM || t == NERVE_OPT_ADAMW;
    int uses_rho = t == NERVE_OPT_RMSPROP || t == NERVE_OPT_ADADELTA;
    if (has_m && momentum > 0 && !dn_adam)
        TRY(only_for(d, s, "momentum", uses_momentum, "sgd, momentum or nesterov"));
    if (has_m && uses_momentum)
        o->momentum = momentum;
    TRY(only_for(d, s, "beta1", adam, "adam or adamw"));
    TRY(only_for(d, s, "beta2", adam, "adam or adamw"));
    TRY(only_for(d, s, "rho", uses_rho, "rmsprop or adadelta"));
    TRY(cfg_get_float(d, s, "beta1", R_PROB, &o->rho1));
    TRY(cfg_get_float(d, s, "beta2", R_PROB, &o->rho2));
    TRY(cfg_get_float(d, s, "rho", R_PROB, &o->rho1));
    TRY(cfg_get_float(d, s, "epsilon", R_POS, &o->delta));
    TRY(cfg_get_float(d, s, "decay", R_NONNEG, &o->weight_decay));
    TRY(cfg_get_bool(d, s, "decoupled_decay", &o->decoupled));
    TRY(cfg_get_float(d, s, "clip_norm", R_NONNEG, &o->clip_norm));
    return NERVE_OK;
}

/* Policies by darknet's names (steps, exp, poly, sigmoid: darknet counts iterations) and
 * nerve's (multistep, exponential: epochs). *iters is 1 for darknet's exp. */
static int parse_policy(const char *name, nerve_sched_type *t, int *iters)
{
    *iters = 0;
    if (strcmp(name, "steps") == 0) {
        *t = NERVE_SCHED_MULTISTEP;
        return NERVE_OK;
    }
    if (strcmp(name, "exp") == 0) {
        *t = NERVE_SCHED_EXPONENTIAL;
        *iters = 1;
        return NERVE_OK;
    }
    return nerve_schedule_parse(name, t);
}

enum {
    P_CONSTANT = 1 << NERVE_SCHED_CONSTANT,
    P_STEP = 1 << NERVE_SCHED_STEP,
    P_MULTI = 1 << NERVE_SCHED_MULTISTEP,
    P_EXP = 1 << NERVE_SCHED_EXPONENTIAL,
    P_LINEAR = 1 << NERVE_SCHED_LINEAR,
    P_COSINE = 1 << NERVE_SCHED_COSINE,
    P_PLATEAU = 1 << NERVE_SCHED_PLATEAU,
    P_POLY = 1 << NERVE_SCHED_POLY,
    P_SIGMOID = 1 << NERVE_SCHED_SIGMOID
};

static const struct {
    const char *key;
    unsigned policies;
    const char *used_by;
} schedule_keys[] = {
    {"gamma", P_STEP | P_MULTI | P_EXP | P_PLATEAU | P_SIGMOID,
     "step, steps, exp, exponential, sigmoid or plateau"},
    {"scale", P_STEP | P_MULTI | P_EXP | P_PLATEAU, "step, steps, exp or plateau"},
    {"step", P_STEP | P_SIGMOID, "step or sigmoid"},
    {"epoch_step", P_STEP, "step"},
    {"steps", P_MULTI, "steps"},
    {"epoch_steps", P_MULTI, "steps"},
    {"scales", P_MULTI, "steps"},
    {"lr_end", P_LINEAR | P_COSINE, "linear or cosine"},
    {"tau", P_LINEAR | P_COSINE, "linear or cosine"},
    {"warmup", P_COSINE, "cosine"},
    {"plateau_patience", P_PLATEAU, "plateau"},
};

static int check_schedule_keys(const cfg_doc *d, const cfg_section *s, nerve_sched_type t)
{
    const cfg_entry *pol = cfg_find(s, "policy");
    for (size_t i = 0; i < NERVE_ARRAY_LEN(schedule_keys); i++) {
        const cfg_entry *e = cfg_find(s, schedule_keys[i].key);
        if (e && !(schedule_keys[i].policies & (1u << t)))
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "%s has no effect with policy=%s; it is used by policy=%s", e->key,
                             pol ? pol->value : "constant (the default)",
                             schedule_keys[i].used_by);
    }
    return NERVE_OK;
}

/* steps= (darknet: iterations) or epoch_steps= (epochs), with scales= (one factor per step,
 * darknet's) or one gamma=/scale= for every step. */
static int schedule_milestones(const cfg_doc *d, const cfg_section *s, nerve_schedule *sc,
                               int has_gamma)
{
    const cfg_entry *it = cfg_find(s, "steps"), *ep = cfg_find(s, "epoch_steps");
    if (it && ep)
        return cfg_error(d, NERVE_ERR_FORMAT, ep->line,
                         "steps= counts iterations (darknet's) and epoch_steps= epochs; give one");
    if (!it && !ep)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "policy")->line,
                         "policy=steps needs steps= (comma-separated iterations, darknet's) or "
                         "epoch_steps= (epochs) at which the learning rate is multiplied");
    const cfg_entry *e = it ? it : ep;
    sc->in_iterations = it != NULL;
    TRY(cfg_get_int_list(d, s, e->key, it ? INT_MIN : 0, INT_MAX, sc->milestones,
                         NERVE_MAX_MILESTONES, &sc->n_milestones));
    for (int i = 1; i < sc->n_milestones; i++)
        if (sc->milestones[i] <= sc->milestones[i - 1])
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "%s must be strictly increasing (%d follows %d)", e->key,
                             sc->milestones[i], sc->milestones[i - 1]);
    int n_scales = 0;
    GET(has_scales, cfg_get_float_list(d, s, "scales", R_POS, sc->scales, NERVE_MAX_MILESTONES,
                                       &n_scales));
    if (!has_scales)
        return NERVE_OK;
    const cfg_entry *se = cfg_find(s, "scales");
    if (has_gamma)
        return cfg_error(d, NERVE_ERR_FORMAT, se->line,
                         "scales= gives a factor per step and gamma= one for all; give one");
    if (n_scales != sc->n_milestones)
        return cfg_error(d, NERVE_ERR_FORMAT, se->line,
                         "scales has %d values but %s has %d; expected one scale per step",
                         n_scales, e->key, sc->n_milestones);
    return NERVE_OK;
}

/* step= (darknet: iterations) or epoch_step= (epochs) of policy=step; sigmoid's step=. */
static int schedule_step(const cfg_doc *d, const cfg_section *s, nerve_schedule *sc,
                         nerve_sched_type t)
{
    const cfg_entry *it = cfg_find(s, "step"), *ep = cfg_find(s, "epoch_step");
    if (it && ep)
        return cfg_error(d, NERVE_ERR_FORMAT, ep->line,
                         "step= counts iterations (darknet's) and epoch_step= epochs; give one");
    if (t == NERVE_SCHED_SIGMOID) {
        sc->step = 1; /* darknet's default */
        return cfg_get_int(d, s, "step", 0, INT_MAX, &sc->step) < 0 ? nerve_last_status()
                                                                     : NERVE_OK;
    }
    if (t != NERVE_SCHED_STEP)
        return NERVE_OK;
    if (!it && !ep)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "policy")->line,
                         "policy=step needs step= (iterations between decays, darknet's) or "
                         "epoch_step= (epochs)");
    sc->in_iterations = it != NULL;
    return cfg_get_int(d, s, it ? "step" : "epoch_step", 1, INT_MAX, &sc->step) < 0
               ? nerve_last_status()
               : NERVE_OK;
}

static int net_schedule(const cfg_doc *d, const cfg_section *s, nerve_net_config *c, float lr)
{
    nerve_sched_type t = NERVE_SCHED_CONSTANT;
    const cfg_entry *e = cfg_find(s, "policy");
    char q[80];
    int iters = 0;
    if (e && strcmp(e->value, "random") == 0)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "policy=random (darknet's lr power(U(0,1), power)) is not supported");
    if (e && parse_policy(e->value, &t, &iters) < 0)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "policy = '%s' is unknown; expected one of: constant, step, steps, exp, "
                         "poly, sigmoid (darknet's), multistep, exponential, linear, cosine, "
                         "plateau", cfg_quote(e->value, q, sizeof q));
    TRY(check_schedule_keys(d, s, t));
    nerve_schedule *sc = &c->schedule;
    *sc = nerve_schedule_default(t, lr);
    sc->in_iterations = iters;
    if (iters || t == NERVE_SCHED_SIGMOID)
        sc->gamma = 1.0f; /* darknet's default */
    GET(has_gamma, cfg_get_float(d, s, "gamma", R_POS, &sc->gamma));
    float scale = 0;
    GET(has_scale, cfg_get_float(d, s, "scale", R_POS, &scale));
    if (has_gamma && has_scale)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "scale")->line,
                         "scale (darknet's name) and gamma are the same setting; give one");
    if (has_scale)
        sc->gamma = scale;
    TRY(schedule_step(d, s, sc, t));
    if (t == NERVE_SCHED_MULTISTEP)
        TRY(schedule_milestones(d, s, sc, has_gamma || has_scale));
    TRY(cfg_get_float(d, s, "lr_end", R_NONNEG, &sc->lr_end));
    TRY(cfg_get_int64(d, s, "tau", 1, INT64_MAX, &sc->tau));
    TRY(cfg_get_int64(d, s, "warmup", 0, INT64_MAX, &sc->warmup));
    TRY(cfg_get_int(d, s, "plateau_patience", 0, INT_MAX, &sc->patience));
    /* darknet reads power= always (poly and burn-in use it), so a cfg may carry it unused */
    TRY(cfg_get_float(d, s, "power", R_NONNEG, &sc->power));
    TRY(cfg_get_int64(d, s, "burn_in", 0, INT64_MAX, &sc->burn_in));
    if (t == NERVE_SCHED_POLY) {
        if (c->max_batches <= 0)
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "policy=poly needs max_batches= (the iteration where the rate "
                             "reaches 0)");
        sc->max_iter = c->max_batches;
    }
    return NERVE_OK;
}

static int resolve_path(const cfg_doc *d, const cfg_entry *e, const char *base, char *out,
                        size_t size)
{
    int n;
    if (e->value[0] == '/' || !base[0])
        n = snprintf(out, size, "%s", e->value);
    else
        n = snprintf(out, size, "%s/%s", base, e->value);
    if (n < 0 || (size_t)n >= size)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s: the path is %d characters long; at "
                         "most %zu", e->key, n, size - 1);
    return NERVE_OK;
}

/* CIFAR file lists: each comma-separated path resolved like the others. */
static int resolve_path_list(const cfg_doc *d, const cfg_entry *e, const char *base, char *out,
                             size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = e->value; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[512], full[512];
        if (n == 0 || n >= sizeof one)
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s: empty or overlong path in the list",
                             e->key);
        memcpy(one, p, n);
        one[n] = '\0';
        cfg_entry tmp = *e;
        tmp.value = one;
        TRY(resolve_path(d, &tmp, base, full, sizeof full));
        int k = snprintf(out + used, size - used, "%s%s", used ? "," : "", full);
        if (k < 0 || (size_t)k >= size - used)
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s: the list is too long", e->key);
        used += (size_t)k;
        p += n + (comma != NULL);
    }
    return NERVE_OK;
}

/* The data-source keys (docs/data.md). */
static int net_data(const cfg_doc *d, const cfg_section *s, nerve_data_config *dc,
                    const char *base)
{
    struct { const char *key; char *dst; size_t size; } paths[] = {
        {"train_folder", dc->train_folder, sizeof dc->train_folder},
        {"test_folder", dc->test_folder, sizeof dc->test_folder},
        {"train_list", dc->train_list, sizeof dc->train_list},
        {"test_list", dc->test_list, sizeof dc->test_list},
        {"names", dc->names, sizeof dc->names},
    };
    for (size_t i = 0; i < NERVE_ARRAY_LEN(paths); i++) {
        const cfg_entry *e = cfg_find(s, paths[i].key);
        if (e)
            TRY(resolve_path(d, e, base, paths[i].dst, paths[i].size));
    }
    const cfg_entry *e;
    if ((e = cfg_find(s, "train_cifar")))
        TRY(resolve_path_list(d, e, base, dc->train_cifar, sizeof dc->train_cifar));
    if ((e = cfg_find(s, "test_cifar")))
        TRY(resolve_path_list(d, e, base, dc->test_cifar, sizeof dc->test_cifar));
    dc->input_scale_set = cfg_find(s, "input_scale") != NULL;
    if ((e = cfg_find(s, "resize")) && nerve_resize_parse(e->value, &dc->resize) != NERVE_OK)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line, "resize=%s: expected none, stretch, crop "
                         "or pad", e->value);
    if ((e = cfg_find(s, "layout"))) {
        if (!strcmp(e->value, "chw"))
            dc->layout = NERVE_LAYOUT_CHW;
        else if (!strcmp(e->value, "hwc"))
            dc->layout = NERVE_LAYOUT_HWC;
        else
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "layout=%s: expected chw or hwc",
                             e->value);
    }
    dc->csv_sep = ',';
    if ((e = cfg_find(s, "csv_sep"))) {
        if (!strcmp(e->value, "tab") || !strcmp(e->value, "\\t"))
            dc->csv_sep = '\t';
        else if (!strcmp(e->value, "space"))
            dc->csv_sep = ' ';
        else if (!strcmp(e->value, "comma"))
            dc->csv_sep = ',';
        else if (!strcmp(e->value, "semicolon"))
            dc->csv_sep = ';';
        else if (strlen(e->value) == 1 && e->value[0] != '"')
            dc->csv_sep = e->value[0];
        else
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "csv_sep=%s: one character, or tab, "
                             "space, comma, semicolon", e->value);
    }
    if ((e = cfg_find(s, "csv_header"))) {
        if (!strcmp(e->value, "auto"))
            dc->csv_header = NERVE_CSV_HEADER_AUTO;
        else if (!strcmp(e->value, "1"))
            dc->csv_header = NERVE_CSV_HEADER_YES;
        else if (!strcmp(e->value, "0"))
            dc->csv_header = NERVE_CSV_HEADER_NO;
        else
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "csv_header=%s: expected 1, 0 or auto",
                             e->value);
    }
    TRY(cfg_get_int(d, s, "csv_skip", 0, 1000000, &dc->csv_skip));
    const char *v;
    int got;
    TRY(got = cfg_get_string(d, s, "csv_label", &v));
    if (got) {
        if (strlen(v) >= sizeof dc->csv_label)
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "csv_label")->line,
                             "csv_label: too long");
        snprintf(dc->csv_label, sizeof dc->csv_label, "%s", strcmp(v, "none") ? v : "");
        dc->csv_label_set = 1;
    }
    TRY(got = cfg_get_string(d, s, "csv_targets", &v));
    if (got && snprintf(dc->csv_targets, sizeof dc->csv_targets, "%s", v) >=
                   (int)sizeof dc->csv_targets)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "csv_targets")->line,
                         "csv_targets: too long");
    if ((e = cfg_find(s, "cifar_label"))) {
        if (!strcmp(e->value, "coarse"))
            dc->cifar_coarse = 1;
        else if (strcmp(e->value, "fine"))
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "cifar_label=%s: expected fine or "
                             "coarse (CIFAR-100)", e->value);
    }
    if ((e = cfg_find(s, "list_target"))) {
        if (!strcmp(e->value, "masks"))
            dc->list_masks = 1;
        else if (strcmp(e->value, "boxes"))
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "list_target=%s: expected boxes (YOLO "
                             "label files) or masks (class mask PNGs)", e->value);
    }
    return NERVE_OK;
}

static int net_paths(const cfg_doc *d, const cfg_section *s, nerve_net_config *c,
                     const char *base)
{
    struct { const char *key; char *dst; } paths[] = {
        {"train_images", c->train_images}, {"train_labels", c->train_labels},
        {"test_images", c->test_images},   {"test_labels", c->test_labels},
        {"train_csv", c->train_csv},       {"test_csv", c->test_csv},
        {"train_text", c->train_text},
    };
    for (size_t i = 0; i < NERVE_ARRAY_LEN(paths); i++) {
        const cfg_entry *e = cfg_find(s, paths[i].key);
        if (e)
            TRY(resolve_path(d, e, base, paths[i].dst, sizeof c->train_images));
    }
    return net_data(d, s, &c->data, base);
}

static int net_training(const cfg_doc *d, const cfg_section *s, nerve_net_config *c)
{
    c->batch = 32;
    c->epochs = 10;
    TRY(cfg_get_int(d, s, "batch", 1, 1 << 20, &c->batch));
    TRY(cfg_get_int(d, s, "epochs", 1, 1000000, &c->epochs));
    GET(has_max, cfg_get_int64(d, s, "max_batches", 0, INT64_MAX, &c->max_batches));
    c->max_batches_set = has_max; /* darknet's max_batches=0 trains no step */
    /* darknet's subdivisions: the batch is split into that many mini-batches whose gradients
     * add up to one update; nerve computes the same update on the whole batch at once (batch
     * norm then takes its statistics over the batch, darknet over each mini-batch) */
    c->subdivisions = 1;
    GET(has_sub, cfg_get_int(d, s, "subdivisions", 1, 1 << 20, &c->subdivisions));
    if (has_sub && c->batch % c->subdivisions != 0)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "subdivisions")->line,
                         "subdivisions=%d does not divide batch=%d (darknet would train on %d "
                         "images per update); make it a divisor", c->subdivisions, c->batch,
                         c->batch / c->subdivisions * c->subdivisions);
    int64_t seen = 0;
    TRY(cfg_get_int64(d, s, "seen", 0, INT64_MAX, &seen));
    if (seen != 0)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "seen")->line,
                         "seen=%lld (darknet: images already trained on) is not supported; a "
                         "run starts at 0 (continue a run with --resume)", (long long)seen);
    TRY(cfg_get_bool(d, s, "sync_batchnorm", &c->sync_batchnorm));
    TRY(cfg_get_u64(d, s, "seed", &c->seed));
    TRY(cfg_get_float(d, s, "validation", R_PROB, &c->validation));
    TRY(cfg_get_int(d, s, "patience", 0, INT_MAX, &c->patience));
    TRY(cfg_get_bool(d, s, "normalize", &c->normalize));
    TRY(cfg_get_int(d, s, "classes", 1, MAX_UNITS, &c->n_classes));
    /* 8-bit pixels (IDX, image files, CIFAR) are scaled by 1/255 to [0, 1] by default; CSV
     * values are taken as they are (docs/data.md). */
    static const char *pixel_keys[] = {"train_images", "test_images", "train_folder",
                                       "test_folder", "train_list", "test_list",
                                       "train_cifar", "test_cifar"};
    c->input_scale = 1.0f;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(pixel_keys); i++)
        if (cfg_find(s, pixel_keys[i]))
            c->input_scale = 1.0f / 255;
    TRY(cfg_get_float(d, s, "input_scale", R_POS, &c->input_scale));
    return NERVE_OK;
}

/* corrupt= and its keys: the input corruption of a denoising model (augment=noise is
 * something else: noise added to a classifier's training batches only). */
static int net_noise(const cfg_doc *d, const cfg_section *s, nerve_noise *nz)
{
    static const nerve_noise_kind kinds[] = {NERVE_NOISE_NONE, NERVE_NOISE_GAUSSIAN,
                                             NERVE_NOISE_SALT_PEPPER, NERVE_NOISE_MASK};
    nz->kind = NERVE_NOISE_NONE;
    nz->sigma = 0.1f;
    nz->prob = 0.1f;
    nz->lo = 0.0f;
    nz->hi = 1.0f;
    const cfg_entry *e = cfg_find(s, "corrupt");
    if (e) {
        size_t i = 0;
        while (i < NERVE_ARRAY_LEN(kinds) && strcmp(e->value, nerve_noise_name(kinds[i])) != 0)
            i++;
        if (i == NERVE_ARRAY_LEN(kinds)) {
            char q[80];
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "corrupt = '%s' is unknown; expected one of: none, gaussian, "
                             "salt_pepper, mask", cfg_quote(e->value, q, sizeof q));
        }
        nz->kind = kinds[i];
    }
    TRY(cfg_get_float(d, s, "corrupt_sigma", R_NONNEG, &nz->sigma));
    TRY(cfg_get_float(d, s, "corrupt_prob", (cfg_range){0, 1, 0, 0}, &nz->prob));
    TRY(cfg_get_bool(d, s, "corrupt_clip", &nz->clip));
    static const char *const needs_kind[] = {"corrupt_sigma", "corrupt_prob", "corrupt_clip"};
    for (size_t i = 0; i < NERVE_ARRAY_LEN(needs_kind); i++) {
        const cfg_entry *k = cfg_find(s, needs_kind[i]);
        if (k && nz->kind == NERVE_NOISE_NONE)
            return cfg_error(d, NERVE_ERR_FORMAT, k->line,
                             "%s= has no effect without corrupt= (gaussian, salt_pepper or mask)",
                             needs_kind[i]);
    }
    return NERVE_OK;
}

/* adversarial= and its keys: robust training (src/train/adversarial.c). */
static int net_adversarial(const cfg_doc *d, const cfg_section *s, nerve_adversarial *adv)
{
    adv->kind = NERVE_ADV_NONE;
    adv->attack = (nerve_attack){NERVE_NORM_LINF, 0.1f, 7, 0.0f, 1, 1, 0.0f, 1.0f, 1}; /* PGD-7 */
    adv->beta = 6.0f;
    const cfg_entry *e = cfg_find(s, "adversarial");
    if (e) {
        if (!strcmp(e->value, "pgd"))
            adv->kind = NERVE_ADV_PGD;
        else if (!strcmp(e->value, "trades"))
            adv->kind = NERVE_ADV_TRADES;
        else if (strcmp(e->value, "none")) {
            char q[80];
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "adversarial = '%s' is unknown; expected one of: "
                             "none, pgd, trades", cfg_quote(e->value, q, sizeof q));
        }
    }
    nerve_attack *a = &adv->attack;
    TRY(cfg_get_float(d, s, "adv_eps", R_NONNEG, &a->eps));
    TRY(cfg_get_int(d, s, "adv_steps", 1, 1000, &a->steps));
    TRY(cfg_get_float(d, s, "adv_step", R_NONNEG, &a->step));
    TRY(cfg_get_int(d, s, "adv_warmup", 0, 1000000, &adv->warmup));
    TRY(cfg_get_float(d, s, "adv_lo", (cfg_range){-INFINITY, INFINITY, 0, 0}, &a->lo));
    TRY(cfg_get_float(d, s, "adv_hi", (cfg_range){-INFINITY, INFINITY, 0, 0}, &a->hi));
    TRY(cfg_get_float(d, s, "trades_beta", R_NONNEG, &adv->beta));
    if ((e = cfg_find(s, "adv_norm"))) {
        if (!strcmp(e->value, "l2"))
            a->norm = NERVE_NORM_L2;
        else if (strcmp(e->value, "linf")) {
            char q[80];
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "adv_norm = '%s' is unknown; expected linf or l2",
                             cfg_quote(e->value, q, sizeof q));
        }
    }
    if (!(a->lo < a->hi)) {
        e = cfg_find(s, "adv_hi") ? cfg_find(s, "adv_hi") : cfg_find(s, "adv_lo");
        return cfg_error(d, NERVE_ERR_FORMAT, e ? e->line : s->line, "adv_hi=%g must exceed adv_lo=%g (the "
                         "valid range of input values)", (double)a->hi, (double)a->lo);
    }
    static const char *const needs_kind[] = {"adv_eps", "adv_steps", "adv_step", "adv_norm", "adv_warmup",
                                             "adv_lo", "adv_hi", "trades_beta"};
    for (size_t i = 0; i < NERVE_ARRAY_LEN(needs_kind); i++) {
        const cfg_entry *k = cfg_find(s, needs_kind[i]);
        if (k && (adv->kind == NERVE_ADV_NONE || (i == 7 && adv->kind != NERVE_ADV_TRADES)))
            return cfg_error(d, NERVE_ERR_FORMAT, k->line, "%s= has no effect without adversarial=%s",
                             needs_kind[i], i == 7 ? "trades" : "pgd or trades");
    }
    return NERVE_OK;
}

static int parse_net(const cfg_doc *d, const cfg_section *s, nerve_net_config *c,
                     const char *base)
{
    memset(c, 0, sizeof *c);
    TRY(cfg_check_keys(d, s, net_keys));
    TRY(net_input_shape(d, s, c));
    TRY(net_training(d, s, c));
    TRY(augment_from_cfg(d, s, c, &c->augment));
    TRY(net_noise(d, s, &c->noise));
    TRY(net_adversarial(d, s, &c->adversarial));
    float lr = 0.01f;
    TRY(cfg_get_float(d, s, "learning_rate", R_POS, &lr));
    TRY(net_optimizer(d, s, c));
    TRY(net_schedule(d, s, c, lr));
    return net_paths(d, s, c, base);
}

/* ===================================================================================== */
/* Layers                                                                                 */
/* ===================================================================================== */

/* build_ctx (the builder's state) is in model.h: the builders of model_conv.c share it. */

/* A graph builder failed: keep its message, prefixed with the layer's section. */
int graph_fail(build_ctx *b, int st)
{
    char msg[800];
    snprintf(msg, sizeof msg, "%s", nerve_last_error());
    return cfg_error(b->d, st < 0 ? st : NERVE_ERR_SHAPE, b->s->line, "[%s] %s: %s",
                     b->s->name, b->name, msg);
}

size_t sample_numel(nerve_graph *g, int node)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, node, &nd, dims) < 0 || nd < 1)
        return 0;
    return nerve_shape_numel(nd - 1, dims + 1);
}

int get_activation(build_ctx *b, nerve_act *act)
{
    *act = nerve_act_default(NERVE_ACT_IDENTITY);
    const cfg_entry *e = cfg_find(b->s, "activation");
    if (!e || nerve_act_parse(e->value, act) >= 0)
        return NERVE_OK;
    char names[400] = "", q[80];
    size_t used = 0;
    for (int t = 0; t < NERVE_ACT_COUNT && used < sizeof names; t++) {
        const char *n = nerve_act_name((nerve_act_type)t);
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", t ? ", " : "",
                                 n ? n : "?");
    }
    return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                     "activation = '%s' is unknown; expected one of: %s",
                     cfg_quote(e->value, q, sizeof q), names);
}

static int relu_family(nerve_act_type t)
{
    return t == NERVE_ACT_RELU || t == NERVE_ACT_LEAKY_RELU || t == NERVE_ACT_RELU6 ||
           t == NERVE_ACT_ELU;
}

/* init=, by default He for the ReLU family and Glorot for the rest. */
int get_init(build_ctx *b, nerve_act act, nerve_init *init)
{
    const cfg_entry *e = cfg_find(b->s, "init");
    const char *name = e ? e->value : relu_family(act.type) ? "he" : "glorot";
    if (nerve_init_parse(name, init) >= 0) {
        if (b->no_init)
            *init = (nerve_init){NERVE_INIT_ZEROS, 0, 0};
        return NERVE_OK;
    }
    char msg[600], q[80];
    snprintf(msg, sizeof msg, "%s", nerve_last_error());
    return cfg_error(b->d, NERVE_ERR_FORMAT, e ? e->line : b->s->line, "init = '%s': %s",
                     cfg_quote(name, q, sizeof q), msg);
}

static const char *const connected_keys[] = {"output", "activation", "batch_normalize", "bias",
                                             "init", "dropout", "per_step", "name", NULL};

/* output=N, or output=vocab: the size of the text's vocabulary (train_text=). */
static int connected_output(build_ctx *b, int *out)
{
    const cfg_entry *e = cfg_find(b->s, "output");
    if (e && strcmp(e->value, "vocab") == 0) {
        if (!b->m->vocab.n)
            return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                             "output=vocab needs a text source (train_text= in [net]) whose "
                             "vocabulary gives the size");
        *out = b->m->vocab.n;
        return NERVE_OK;
    }
    GET(has_out, cfg_get_int(b->d, b->s, "output", 1, MAX_UNITS, out));
    if (!has_out)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[connected] needs output= (the number of units, or vocab)");
    return NERVE_OK;
}

/* per_step=1: a sequence [N, T, F] is seen as N*T rows of F features (the same layer at
 * every step: a language model's output layer); the layer's output is [N, T, output]. */
static int per_step_input(build_ctx *b, int *x, int *steps)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    if (nd != 3) {
        char shape[64];
        return cfg_error(b->d, NERVE_ERR_SHAPE, cfg_find(b->s, "per_step")->line,
                         "per_step=1 needs a sequence [steps, features] per sample; the layer "
                         "before outputs %s per sample",
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    *steps = dims[1];
    *x = nerve_reshape(b->g, b->x, 2, (int[]){-1, dims[2]});
    return *x < 0 ? graph_fail(b, *x) : NERVE_OK;
}

/* init=torch: PyTorch's nn.Linear default, U(-1/sqrt(in), 1/sqrt(in)) for the weight and
 * the bias alike; otherwise get_init's named initialisers with a zero bias. */
static int connected_init(build_ctx *b, nerve_act act, size_t in, nerve_init *init, int *torch)
{
    const cfg_entry *e = cfg_find(b->s, "init");
    *torch = e && strcmp(e->value, "torch") == 0;
    if (!*torch)
        return get_init(b, act, init);
    float k = 1.0f / sqrtf((float)in);
    *init = b->no_init ? (nerve_init){NERVE_INIT_ZEROS, 0, 0}
                       : (nerve_init){NERVE_INIT_UNIFORM, -k, k};
    return NERVE_OK;
}

/* darknet's connected layer: dense, then (batch_normalize=1: without bias) batch norm,
 * then the activation; nerve adds an optional dropout after it. */
static int build_connected(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int out = 0, bn = 0, bias = 1, per_step = 0, steps = 1, torch = 0;
    float drop = 0;
    nerve_act act;
    nerve_init init;
    TRY(connected_output(b, &out));
    GET(has_per_step, cfg_get_bool(d, s, "per_step", &per_step));
    int x = b->x;
    if (!has_per_step && darknet_time_steps(b) > 1) {
        /* darknet runs every layer of a sequence network (time_steps= in [net]) on each
         * step's rows */
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(b->g, x, &nd, dims);
        per_step = nd == 3 && dims[1] == darknet_time_steps(b);
    }
    if (!has_per_step && b->m->frcnn_per_roi) { /* after RoI pooling: one row per RoI */
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(b->g, x, &nd, dims);
        per_step = nd == 3;
    }
    if (per_step)
        TRY(per_step_input(b, &x, &steps));
    TRY(get_activation(b, &act));
    TRY(cfg_get_bool(d, s, "batch_normalize", &bn));
    GET(has_bias, cfg_get_bool(d, s, "bias", &bias));
    if (bn && has_bias && bias)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "bias")->line,
                         "bias=1 with batch_normalize=1: the batch norm's shift is the bias; "
                         "expected bias=0 or no bias=");
    size_t in = sample_numel(b->g, x);
    TRY(connected_init(b, act, in, &init, &torch));
    TRY(cfg_get_float(d, s, "dropout", R_PROB, &drop));
    if ((double)in * out > MAX_WEIGHTS)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[connected] from %zu inputs to %d outputs needs %.3g weights; at most %d",
                         in, out, (double)in * out, MAX_WEIGHTS);
    int y = nerve_layer_dense(b->g, x, out, bn ? 0 : bias, init, &b->rng, b->name);
    if (y >= 0 && torch && !bn && bias) {
        char bias_name[64];
        snprintf(bias_name, sizeof bias_name, "%s.bias", b->name);
        int st = nerve_init_param(b->g, nerve_node_find(b->g, bias_name), init, &b->rng);
        y = st < 0 ? st : y;
    }
    if (y < 0)
        return graph_fail(b, y);
    b->flops = steps * (2.0 * (double)in * out + (!bn && bias ? out : 0));
    if (bn) {
        char bn_name[64];
        snprintf(bn_name, sizeof bn_name, "%s.bn", b->name);
        if ((y = nerve_layer_batchnorm(b->g, y, BN_MOMENTUM, BN_EPS, bn_name)) < 0)
            return graph_fail(b, y);
        b->flops += 2.0 * out * steps;
    }
    if (act.type != NERVE_ACT_IDENTITY) {
        if ((y = by_name_act(b->g, y, act)) < 0)
            return graph_fail(b, y);
        b->flops += (double)out * steps;
    }
    if (drop > 0 && (y = by_name_dropout(b->g, y, drop, 0)) < 0)
        return graph_fail(b, y);
    if (per_step && (y = nerve_reshape(b->g, y, 3, (int[]){-1, steps, out})) < 0)
        return graph_fail(b, y);
    b->x = y;
    return NERVE_OK;
}

static const char *const activation_keys[] = {"activation", "name", NULL};

static int build_activation(build_ctx *b)
{
    nerve_act act;
    TRY(get_activation(b, &act));
    int y = by_name_act(b->g, b->x, act);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = act.type == NERVE_ACT_IDENTITY ? 0 : (double)sample_numel(b->g, y);
    b->x = y;
    return NERVE_OK;
}

static const char *const dropout_keys[] = {"probability", "spatial", "name", NULL};

static int build_dropout(build_ctx *b)
{
    float p = 0.5f; /* darknet's default */
    int spatial = 0;
    TRY(cfg_get_float(b->d, b->s, "probability", R_PROB, &p));
    TRY(cfg_get_bool(b->d, b->s, "spatial", &spatial));
    int y = by_name_dropout(b->g, b->x, p, spatial);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 0; /* the identity at inference */
    b->x = y;
    return NERVE_OK;
}

static const char *const batchnorm_keys[] = {"momentum", "epsilon", "name", NULL};

static int build_batchnorm(build_ctx *b)
{
    float momentum = BN_MOMENTUM, eps = BN_EPS;
    TRY(cfg_get_float(b->d, b->s, "momentum", R_UNIT_OPEN, &momentum));
    TRY(cfg_get_float(b->d, b->s, "epsilon", R_POS, &eps));
    int y = nerve_layer_batchnorm(b->g, b->x, momentum, eps, b->name);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 2.0 * (double)sample_numel(b->g, y);
    b->x = y;
    return NERVE_OK;
}

static const char *const prelu_keys[] = {"per_channel", "init", "name", NULL};

static int build_prelu(build_ctx *b)
{
    int per_channel = 0;
    float slope = 0.25f;
    TRY(cfg_get_bool(b->d, b->s, "per_channel", &per_channel));
    TRY(cfg_get_float(b->d, b->s, "init", (cfg_range){-INFINITY, INFINITY, 0, 0}, &slope));
    int y = nerve_layer_prelu(b->g, b->x, per_channel, slope, b->name);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = (double)sample_numel(b->g, y);
    b->x = y;
    return NERVE_OK;
}

/* ---- recurrent layers and embeddings ------------------------------------------------ */

/* Layers pass batch-major tensors to each other ([N, ...], as the layer table shows them);
 * the recurrent operators read time-major sequences [T, N, F]. A recurrent layer therefore
 * reorders its input: an image [N, C, H, W] is read row by row (T = H steps of the C*W
 * values of a row), a sequence [N, T, F] (an [embedding], or a recurrent layer with
 * return_sequences=1) is transposed. */
static int time_major_input(build_ctx *b, int *out)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    int x;
    if (nd == 4) {
        x = by_name_transpose(b->g, b->x, 4, (int[]){2, 0, 1, 3}); /* [H, N, C, W] */
        if (x >= 0)
            x = by_name_reshape(b->g, x, 3, (int[]){0, 0, -1}); /* [H, N, C*W] */
    } else if (nd == 3) {
        x = by_name_transpose(b->g, b->x, 3, (int[]){1, 0, 2}); /* [T, N, F] */
    } else {
        char shape[64];
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[%s] needs a sequence per sample: an image (read row by row), an "
                         "[embedding] or a recurrent layer with return_sequences=1; the layer "
                         "before outputs %s per sample", b->s->name,
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    if (x < 0)
        return graph_fail(b, x);
    *out = x;
    return NERVE_OK;
}

static int is_recurrent_section(const char *name)
{
    return !strcmp(name, "rnn") || !strcmp(name, "lstm") || !strcmp(name, "gru");
}

/* return_sequences defaults to 1 exactly when the next section is another recurrent
 * layer, which needs the whole sequence (a stacked RNN). */
static int next_is_recurrent(const build_ctx *b)
{
    const cfg_section *next = b->s + 1;
    return next < b->d->sections + b->d->n_sections && is_recurrent_section(next->name);
}

static int parse_gru_form(build_ctx *b, int *form)
{
    const cfg_entry *e = cfg_find(b->s, "gru_form");
    *form = NERVE_GRU_COURSE;
    if (!e || !strcmp(e->value, "course"))
        return NERVE_OK;
    if (!strcmp(e->value, "linear_before_reset")) {
        *form = NERVE_GRU_LINEAR_BEFORE_RESET;
        return NERVE_OK;
    }
    char q[80];
    return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                     "gru_form = '%s' is unknown; expected course or linear_before_reset",
                     cfg_quote(e->value, q, sizeof q));
}

/* Forward FLOPs per sample: per step and direction, the two products (2 G H (F + H)), the
 * two biases (2 G H) and the cell's element-wise work per unit. */
static double recurrent_flops(const nerve_rnn_config *rc, int steps, int features)
{
    static const double gates[] = {1, 4, 3}, per_unit[] = {1, 9, 7};
    double g = gates[rc->cell], h = rc->hidden;
    double cell = per_unit[rc->cell] + (rc->lstm_flags & NERVE_LSTM_PEEPHOLE ? 6 : 0);
    double dirs = rc->bidirectional ? 2 : 1;
    return steps * dirs * (2 * g * h * (features + h) + 2 * g * h + cell * h);
}

static int build_recurrent(build_ctx *b, nerve_cell_type cell)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_rnn_config rc;
    memset(&rc, 0, sizeof rc);
    rc.cell = cell;
    /* darknet's [rnn] and [gru] are other networks than nerve's cells: three and six
     * connected layers over the steps of [net]'s time_steps= */
    if (cell != NERVE_CELL_LSTM && darknet_recurrent_applies(b))
        return build_darknet_recurrent(b, cell == NERVE_CELL_GRU);
    static const char *const darknet_only[] = {"activation", "batch_normalize", "shortcut",
                                               "hidden", "tanh", NULL};
    for (int i = 0; darknet_only[i]; i++)
        if (cfg_find(s, darknet_only[i]))
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, darknet_only[i])->line,
                             "%s= belongs to darknet's [%s], which reads one vector per sample "
                             "(or [net]'s time_steps=); this layer reads a sequence and is "
                             "nerve's %s cell (docs/cfg.md), which has no such key",
                             darknet_only[i], s->name, cell == NERVE_CELL_GRU ? "GRU" : "Elman");
    GET(has_out, cfg_get_int(d, s, "output", 1, MAX_UNITS, &rc.hidden));
    if (!has_out)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[%s] needs output= (the hidden size)", s->name);
    TRY(cfg_get_bool(d, s, "bidirectional", &rc.bidirectional));
    rc.return_sequences = next_is_recurrent(b);
    TRY(cfg_get_bool(d, s, "return_sequences", &rc.return_sequences));
    int peephole = 0, coupled = 0;
    TRY(cfg_get_bool(d, s, "peephole", &peephole));
    TRY(cfg_get_bool(d, s, "coupled", &coupled));
    rc.lstm_flags = (peephole ? NERVE_LSTM_PEEPHOLE : 0) | (coupled ? NERVE_LSTM_COUPLED : 0);
    TRY(parse_gru_form(b, &rc.gru_form));
    int carry = 0;
    TRY(cfg_get_bool(d, s, "carry", &carry));
    if (carry && rc.bidirectional)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "carry")->line,
                         "carry=1 continues a stream into the next chunk; a bidirectional "
                         "layer's backward direction would read the stream's future");
    int x = -1;
    TRY(time_major_input(b, &x));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, x, &nd, dims); /* [T, N, F] */
    double gates = cell == NERVE_CELL_LSTM ? 4 : cell == NERVE_CELL_GRU ? 3 : 1;
    if (gates * rc.hidden * ((double)dims[2] + rc.hidden) > MAX_WEIGHTS)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[%s] with %d features and output=%d needs too many weights; at most %d "
                         "per matrix", s->name, dims[2], rc.hidden, MAX_WEIGHTS);
    int y = nerve_layer_rnn(b->g, x, -1, &rc, carry, &b->rng, b->name);
    if (y >= 0 && rc.return_sequences)
        y = by_name_transpose(b->g, y, 3, (int[]){1, 0, 2}); /* back to batch-major [N, T, D*H] */
    if (y < 0)
        return graph_fail(b, y);
    b->flops = recurrent_flops(&rc, dims[0], dims[2]);
    b->x = y;
    return NERVE_OK;
}

static const char *const rnn_keys[] = {"output", "bidirectional", "return_sequences", "carry",
                                       "activation", "batch_normalize", "shortcut", "hidden",
                                       "name", NULL};
static const char *const lstm_keys[] = {"output", "bidirectional", "return_sequences",
                                        "peephole", "coupled", "carry", "name", NULL};
static const char *const gru_keys[] = {"output", "bidirectional", "return_sequences",
                                       "gru_form", "carry", "batch_normalize", "tanh", "name",
                                       NULL};

static int build_rnn(build_ctx *b) { return build_recurrent(b, NERVE_CELL_RNN); }
static int build_lstm(build_ctx *b) { return build_recurrent(b, NERVE_CELL_LSTM); }
static int build_gru(build_ctx *b) { return build_recurrent(b, NERVE_CELL_GRU); }

static const char *const embedding_keys[] = {"vocab", "size", "onehot", "name", NULL};

/* vocab=, by default the text's vocabulary size (train_text=); when both are known they
 * must agree. */
static int embedding_vocab(build_ctx *b, int *vocab)
{
    int text = b->m->vocab.n;
    GET(has_vocab, cfg_get_int(b->d, b->s, "vocab", 1, MAX_UNITS, vocab));
    if (has_vocab && text && *vocab != text)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "vocab")->line,
                         "vocab=%d, but the text's vocabulary has %d bytes; leave vocab= out "
                         "to take the text's", *vocab, text);
    if (!has_vocab)
        *vocab = text;
    if (*vocab < 1)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[embedding] needs vocab= (the number of distinct indices; a text "
                         "source, train_text= in [net], gives it) and size= (the length of each "
                         "embedding vector) or onehot=1");
    return NERVE_OK;
}

/* A lookup table "<layer>.weight" [vocab, size], initialised N(0, 1) as PyTorch does; the
 * input values are indices, the output gains a last axis of `size` values. onehot=1: the
 * table is the identity "<layer>.onehot" [vocab, vocab], a state (not trained), so each
 * index becomes its one-hot vector. */
static int build_embedding(build_ctx *b)
{
    int vocab = 0, size = 0, onehot = 0;
    TRY(embedding_vocab(b, &vocab));
    GET(has_size, cfg_get_int(b->d, b->s, "size", 1, MAX_UNITS, &size));
    TRY(cfg_get_bool(b->d, b->s, "onehot", &onehot));
    if (onehot && has_size)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "size")->line,
                         "onehot=1 gives vectors of vocab values; size= does not apply");
    if (onehot)
        size = vocab;
    else if (!has_size)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[embedding] needs size= (the length of each embedding vector) or "
                         "onehot=1");
    if ((double)vocab * size > MAX_WEIGHTS)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[embedding] of %d x %d needs too many weights; at most %d", vocab,
                         size, MAX_WEIGHTS);
    char name[64];
    snprintf(name, sizeof name, "%s.%s", b->name, onehot ? "onehot" : "weight");
    int table = onehot ? nerve_state(b->g, name, 2, (int[]){vocab, vocab})
                       : nerve_param(b->g, name, 2, (int[]){vocab, size});
    int st = table;
    if (table >= 0 && onehot) {
        float *eye = nerve_value(b->g, table).data;
        for (int i = 0; i < vocab; i++)
            eye[(size_t)i * vocab + i] = 1.0f;
    } else if (table >= 0) {
        st = nerve_init_param(b->g, table, (nerve_init){NERVE_INIT_NORMAL, 0, 1}, &b->rng);
    }
    int y = st < 0 ? st : nerve_embedding(b->g, b->x, table);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 0; /* a copy */
    b->x = y;
    return NERVE_OK;
}

/* ---- heads -------------------------------------------------------------------------- */

/* Adds the l1= / l2= penalties of a head's section to its loss. */
static int add_penalties(build_ctx *b, int loss)
{
    static const struct { const char *key; int kind; } pens[] = {
        {"l1", NERVE_PENALTY_L1}, {"l2", NERVE_PENALTY_L2}};
    for (size_t i = 0; i < NERVE_ARRAY_LEN(pens); i++) {
        float coef = 0;
        GET(has, cfg_get_float(b->d, b->s, pens[i].key, R_NONNEG, &coef));
        if (!has || coef == 0)
            continue;
        int p = nerve_penalty(b->g, pens[i].kind, coef);
        if (p < 0 || (loss = by_name_binary(b->g, "add", loss, p)) < 0)
            return graph_fail(b, p < 0 ? p : loss);
    }
    return loss;
}

static int finish_head(build_ctx *b, int pred, int labels, int loss, nerve_task task,
                       nerve_target_kind target, const char *loss_name, int logits)
{
    b->m->head_loss = loss;
    loss = add_penalties(b, loss);
    if (loss < 0)
        return loss;
    if (loss != b->m->head_loss)
        b->m->head_loss = -1;
    else
        b->m->head_loss = loss;
    if (nerve_node_find(b->g, "loss") < 0)
        nerve_node_set_name(b->g, loss, "loss");
    b->m->output = pred;
    b->m->labels = labels;
    b->m->loss = loss;
    b->is_head = 1;
    nerve_head_info *h = &b->m->head;
    h->task = task;
    h->target = target;
    /* the section name from the table, not from the cfg text (freed after building) */
    static const char *const heads[] = {"softmax", "cost", "detection", "yolo", "region", "ssd"};
    h->section = NULL;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(heads); i++)
        if (strcmp(b->s->name, heads[i]) == 0)
            h->section = heads[i];
    h->loss = loss_name;
    h->line = b->s->line;
    h->logits = logits;
    return NERVE_OK;
}

int model_finish_head(build_ctx *b, int pred, int labels, int loss, nerve_task task,
                      nerve_target_kind target, const char *loss_name, int logits)
{
    return finish_head(b, pred, labels, loss, task, target, loss_name, logits);
}

/* target= of a head: one of the kinds in `allowed` (NULL-terminated names), else the
 * default. */
static int head_target(build_ctx *b, const char *const *allowed, nerve_target_kind dflt,
                       nerve_target_kind *kind)
{
    *kind = dflt;
    const cfg_entry *e = cfg_find(b->s, "target");
    if (!e)
        return NERVE_OK;
    char list[160] = "";
    size_t used = 0;
    for (int i = 0; allowed[i]; i++) {
        for (int k = NERVE_TARGET_CLASS; k <= NERVE_TARGET_TOKENS; k++)
            if (strcmp(allowed[i], e->value) == 0 &&
                strcmp(nerve_target_kind_name((nerve_target_kind)k), e->value) == 0) {
                *kind = (nerve_target_kind)k;
                return NERVE_OK;
            }
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 allowed[i]);
    }
    char q[80];
    return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                     "target = '%s' is not a target of [%s]; expected one of: %s",
                     cfg_quote(e->value, q, sizeof q), b->s->name, list);
}

/* Class weights as a state [C] "<layer>.class_weights" (its values come from the cfg). */
static int class_weights_node(build_ctx *b, int classes, int *node)
{
    float w[4096];
    int n = 0;
    *node = -1;
    GET(has, cfg_get_float_list(b->d, b->s, "class_weights", R_NONNEG, w,
                                (int)NERVE_ARRAY_LEN(w), &n));
    if (!has)
        return NERVE_OK;
    if (n != classes)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "class_weights")->line,
                         "class_weights has %d values; expected %d (one per class)", n, classes);
    char name[80];
    snprintf(name, sizeof name, "%s.class_weights", b->name);
    int id = nerve_state(b->g, name, 1, &classes);
    if (id < 0)
        return graph_fail(b, id);
    memcpy(nerve_value(b->g, id).data, w, (size_t)n * sizeof(float));
    *node = id;
    return NERVE_OK;
}

static const char *const softmax_keys[] = {"label_smoothing", "class_weights", "l1", "l2",
                                           "name", "target", "ignore_index", "groups",
                                           "temperature", "tree", NULL};

/* darknet's groups= (a softmax over each of `groups` equal parts of the input; 1: one
 * softmax), temperature= (softmax(x / T)) and tree= (a softmax per level of a hierarchy). */
static int softmax_darknet_keys(build_ctx *b, nerve_target_kind target)
{
    const cfg_entry *e = cfg_find(b->s, "tree");
    if (e && target != NERVE_TARGET_CLASS)
        return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                         "tree= (darknet's hierarchical softmax) applies to target=class");
    int groups = 1;
    TRY(cfg_get_int(b->d, b->s, "groups", 1, MAX_UNITS, &groups));
    if (groups != 1)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "groups")->line,
                         "groups=%d (darknet: a softmax over each of %d parts of the input) is "
                         "not supported yet; groups=1 is one softmax", groups, groups);
    float t = 1;
    TRY(cfg_get_float(b->d, b->s, "temperature", R_POS, &t));
    if (t != 1 && target != NERVE_TARGET_CLASS)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "temperature")->line,
                         "temperature= applies to target=class");
    if (t != 1) { /* the scores become x / T: the model's output and the loss's logits */
        int y = nerve_affine(b->g, b->x, 1.0f / t, 0.0f);
        if (y < 0)
            return graph_fail(b, y);
        b->x = y;
    }
    return NERVE_OK;
}

/* target=mask: softmax over the channels of [C, H, W] (or [C, L]) scores at each pixel,
 * against a class per pixel [H, W]; pixels labelled ignore_index carry no label. */
static int build_pixel_softmax(build_ctx *b, int nd, const int *dims)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    if (nd < 3) {
        char shape[64];
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] target=mask needs class scores per pixel [C, H, W]; the "
                         "layer before outputs %s per sample",
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    const cfg_entry *ls = cfg_find(s, "label_smoothing");
    if (ls)
        return cfg_error(d, NERVE_ERR_FORMAT, ls->line,
                         "label_smoothing is not available with target=mask");
    int classes = dims[1], ignore = -1;
    TRY(cfg_get_int(d, s, "ignore_index", INT_MIN, INT_MAX, &ignore));
    if (ignore >= 0 && ignore < classes)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "ignore_index")->line,
                         "ignore_index = %d is one of the %d classes; pick a value outside "
                         "0..%d (default -1)", ignore, classes, classes - 1);
    nerve_net_config *c = &b->m->cfg;
    if (c->n_classes && c->n_classes != classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] receives %d class scores per pixel but [net] says classes=%d",
                         classes, c->n_classes);
    c->n_classes = classes;
    int weights;
    TRY(class_weights_node(b, classes, &weights));
    int ldims[NERVE_MAX_DIMS] = {1}; /* [N, H, W]: the logits' shape without the channels */
    memcpy(ldims + 1, dims + 2, (size_t)(nd - 2) * sizeof(int));
    int labels = nerve_input(b->g, "labels", nd - 1, ldims);
    if (labels < 0)
        return graph_fail(b, labels);
    int loss = nerve_pixel_softmax_ce_loss_ignore(b->g, b->x, labels, weights, 1, ignore);
    if (loss < 0)
        return graph_fail(b, loss);
    b->flops = 3.0 * (double)sample_numel(b->g, b->x);
    b->m->head.ignore_index = ignore;
    return finish_head(b, b->x, labels, loss, NERVE_TASK_SEGMENT, NERVE_TARGET_MASK,
                       "pixel_softmax_ce", 1);
}

/* The language-model head (target=tokens): scores [N, T, V] for every step of a chunk,
 * labels [N, T] (the next token at every step), softmax cross-entropy averaged over all
 * N*T positions. The output stays [N, T, V]. */
static int build_softmax_tokens(build_ctx *b, float smoothing)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    if (nd != 3) {
        char shape[64];
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] target=tokens needs scores for every step, [steps, vocab] "
                         "per sample; the layer before outputs %s per sample (a recurrent layer "
                         "with return_sequences=1, then [connected] per_step=1)",
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    int T = dims[1], V = dims[2];
    nerve_net_config *c = &b->m->cfg;
    if (b->m->vocab.n && V != b->m->vocab.n)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] target=tokens receives %d scores per step but the text's "
                         "vocabulary has %d bytes (set output=vocab in the layer before)", V,
                         b->m->vocab.n);
    if (c->n_classes && c->n_classes != V)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] receives %d scores per step but [net] says classes=%d", V,
                         c->n_classes);
    c->n_classes = V;
    int weights;
    TRY(class_weights_node(b, V, &weights));
    int labels = nerve_input(b->g, "labels", 2, (int[]){1, T});
    int flat = labels < 0 ? labels : nerve_reshape(b->g, b->x, 2, (int[]){-1, V});
    int lab = flat < 0 ? flat : nerve_reshape(b->g, labels, 1, (int[]){-1});
    int loss = lab < 0 ? lab : nerve_softmax_ce_loss(b->g, flat, lab, weights, smoothing);
    if (loss < 0)
        return graph_fail(b, loss);
    b->flops = 3.0 * V * T;
    return finish_head(b, b->x, labels, loss, NERVE_TASK_LANGUAGE, NERVE_TARGET_TOKENS,
                       "softmax_ce", 1);
}

/* darknet's [softmax] tree=: a softmax over each group of the tree's classes (darknet's
 * forward_softmax_layer with a tree); the model outputs those probabilities. Training
 * with a tree (darknet's hierarchical labels and masked cost) is refused. */
static int build_softmax_tree(build_ctx *b, const cfg_entry *e, int classes)
{
    darknet_tree t;
    TRY(darknet_tree_of(b, e, classes, &t));
    int y = -1, st = darknet_tree_softmax(b, b->x, &t, &y);
    int groups = t.groups;
    darknet_tree_free(&t);
    TRY(st);
    nerve_net_config *c = &b->m->cfg;
    if (c->n_classes && c->n_classes != classes)
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[softmax] receives %d class scores but [net] says classes=%d", classes,
                         c->n_classes);
    c->n_classes = classes;
    /* a loss node keeps the model's form (labels, loss); nerve_fit refuses it */
    int labels = nerve_input(b->g, "labels", 1, (int[]){1});
    int loss = labels < 0 ? labels : nerve_softmax_ce_loss(b->g, b->x, labels, -1, 0.0f);
    if (loss < 0)
        return graph_fail(b, loss);
    snprintf(b->m->refuse_train, sizeof b->m->refuse_train,
             "%s:%d: [softmax] tree= (darknet's hierarchical softmax over %d groups) runs "
             "forward only; training with a tree (darknet's hierarchical labels) is not "
             "supported", b->d->file ? b->d->file : "<cfg>", e->line, groups);
    b->flops = 3.0 * classes;
    return finish_head(b, y, labels, loss, NERVE_TASK_CLASSIFY, NERVE_TARGET_CLASS,
                       "softmax_ce", 0);
}

/* The classification head: softmax cross-entropy on the previous layer's output (the
 * logits, which are also the model's output) against integer labels [N]; with
 * target=mask, per pixel (build_pixel_softmax). */
static int build_softmax(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_target_kind target;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    /* a sequence network of darknet's (time_steps= in [net]) classifies every step */
    int steps = darknet_time_steps(b);
    nerve_target_kind dflt = steps > 1 && nd == 3 && dims[1] == steps ? NERVE_TARGET_TOKENS
                                                                      : NERVE_TARGET_CLASS;
    TRY(head_target(b, (const char *const[]){"class", "mask", "tokens", NULL}, dflt, &target));
    TRY(softmax_darknet_keys(b, target));
    if (target == NERVE_TARGET_MASK)
        return build_pixel_softmax(b, nd, dims);
    if (target == NERVE_TARGET_CLASS && nd == 4 && dims[2] == 1 && dims[3] == 1) {
        /* darknet's C x 1 x 1 (a global [avgpool], a 1x1 map) is a vector of scores */
        int y = by_name_flatten(b->g, b->x);
        if (y < 0)
            return graph_fail(b, y);
        b->x = y;
        nerve_node_shape(b->g, b->x, &nd, dims);
    }
    const cfg_entry *ig = cfg_find(s, "ignore_index");
    if (ig)
        return cfg_error(d, NERVE_ERR_FORMAT, ig->line,
                         "ignore_index applies to per-pixel labels; add target=mask");
    float smoothing = 0;
    TRY(cfg_get_float(d, s, "label_smoothing", R_PROB, &smoothing));
    if (target == NERVE_TARGET_TOKENS)
        return build_softmax_tokens(b, smoothing);
    if (nd != 2) {
        char shape[64];
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] needs one vector of class scores per sample; the layer "
                         "before outputs %s per sample (add a [connected] layer, or "
                         "target=mask for a class per pixel)",
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    int classes = dims[1];
    const cfg_entry *tree = cfg_find(s, "tree");
    if (tree)
        return build_softmax_tree(b, tree, classes);
    nerve_net_config *c = &b->m->cfg;
    if (c->n_classes && c->n_classes != classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[softmax] receives %d class scores but [net] says classes=%d", classes,
                         c->n_classes);
    c->n_classes = classes;
    int weights;
    TRY(class_weights_node(b, classes, &weights));
    int labels = nerve_input(b->g, "labels", 1, (int[]){1});
    if (labels < 0)
        return graph_fail(b, labels);
    int loss = nerve_softmax_ce_loss(b->g, b->x, labels, weights, smoothing);
    if (loss < 0)
        return graph_fail(b, loss);
    b->flops = 3.0 * classes;
    return finish_head(b, b->x, labels, loss, NERVE_TASK_CLASSIFY, NERVE_TARGET_CLASS,
                       "softmax_ce", 1);
}

static const char *const cost_keys[] = {"type", "l1", "l2", "name", "target", NULL};

enum { COST_MSE, COST_HALF_MSE, COST_L1, COST_BCE, COST_HINGE };

static int parse_cost_type(build_ctx *b, int *type)
{
    static const struct { const char *name; int type; } names[] = {
        {"mse", COST_MSE}, {"sse", COST_MSE}, {"half_mse", COST_HALF_MSE},
        {"l1", COST_L1},   {"L1", COST_L1},   {"bce", COST_BCE},
        {"hinge", COST_HINGE}};
    const cfg_entry *e = cfg_find(b->s, "type");
    *type = COST_MSE; /* darknet's default, sse */
    if (!e)
        return NERVE_OK;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(names); i++)
        if (strcmp(e->value, names[i].name) == 0) {
            *type = names[i].type;
            return NERVE_OK;
        }
    char q[80];
    return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                     "type = '%s' is unknown; expected one of: mse, sse, half_mse, l1, bce, hinge",
                     cfg_quote(e->value, q, sizeof q));
}

/* What a [cost] head's target= makes of it: the task, or an error naming the clash. */
static int cost_task(build_ctx *b, int type, nerve_target_kind target, int nd, const int *dims,
                     nerve_task *task)
{
    const cfg_entry *e = cfg_find(b->s, "target");
    int line = e ? e->line : b->s->line;
    char a[64], c[64];
    switch (target) {
    case NERVE_TARGET_VALUES: *task = NERVE_TASK_REGRESS; break;
    case NERVE_TARGET_INPUT: {
        const nerve_net_config *cfg = &b->m->cfg;
        size_t in = nerve_shape_numel(cfg->ndim, cfg->dims);
        if (sample_numel(b->g, b->x) != in)
            return cfg_error(b->d, NERVE_ERR_SHAPE, line,
                             "target=input: the model outputs %s per sample but its input is %s; "
                             "a reconstruction must give back as many values as it reads",
                             nerve_shape_str(nd - 1, dims + 1, a, sizeof a),
                             nerve_shape_str(cfg->ndim, cfg->dims, c, sizeof c));
        *task = NERVE_TASK_RECONSTRUCT;
        break;
    }
    case NERVE_TARGET_MASK:
        if (type != COST_BCE)
            return cfg_error(b->d, NERVE_ERR_FORMAT, line,
                             "target=mask with [cost] is a binary mask and needs type=bce (for "
                             "several classes per pixel use [softmax] target=mask)");
        if (nd < 3 || dims[1] != 1)
            return cfg_error(b->d, NERVE_ERR_SHAPE, line,
                             "target=mask needs one score per pixel [1, H, W]; the layer before "
                             "outputs %s per sample",
                             nerve_shape_str(nd - 1, dims + 1, a, sizeof a));
        *task = NERVE_TASK_BINARY_MASK;
        break;
    default: *task = NERVE_TASK_CLASSIFY; break;
    }
    if (type == COST_HINGE && target != NERVE_TARGET_CLASS)
        return cfg_error(b->d, NERVE_ERR_FORMAT, line, "type=hinge takes class labels only");
    return NERVE_OK;
}

/* Regression and other heads: the prediction is the previous layer's output; targets
 * are shaped like it, except for hinge (one label per sample). target= says where they
 * come from: class labels (the default), a float vector, the input, a binary mask. */
static int build_cost(build_ctx *b)
{
    int type;
    TRY(parse_cost_type(b, &type));
    nerve_target_kind target;
    TRY(head_target(b, (const char *const[]){"class", "values", "input", "mask", NULL},
                    NERVE_TARGET_CLASS, &target));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    nerve_task task = NERVE_TASK_CLASSIFY;
    TRY(cost_task(b, type, target, nd, dims, &task));
    int labels = type == COST_HINGE ? nerve_input(b->g, "labels", 1, (int[]){1})
                                    : nerve_input(b->g, "labels", nd, dims);
    if (labels < 0)
        return graph_fail(b, labels);
    int loss;
    switch (type) {
    case COST_MSE: loss = nerve_mse_loss(b->g, b->x, labels, 0); break;
    case COST_HALF_MSE: loss = nerve_mse_loss(b->g, b->x, labels, 1); break;
    case COST_L1: loss = nerve_l1_loss(b->g, b->x, labels); break;
    case COST_BCE: loss = nerve_bce_logits_loss(b->g, b->x, labels); break;
    default: loss = nerve_hinge_loss(b->g, b->x, labels); break;
    }
    if (loss < 0)
        return graph_fail(b, loss);
    static const double per_element[] = {3, 3, 2, 4, 2};
    static const char *const loss_names[] = {"mse", "half_mse", "l1", "bce", "hinge"};
    b->flops = per_element[type] * (double)sample_numel(b->g, b->x);
    return finish_head(b, b->x, labels, loss, task, target, loss_names[type], type == COST_BCE);
}

/* ---- the layer table ------------------------------------------------------------------ */

typedef struct layer_kind {
    const char *section;
    const char *const *keys;
    int (*build)(build_ctx *b);
} layer_kind;

static const layer_kind layer_kinds[] = {
    {"connected", connected_keys, build_connected},
    {"activation", activation_keys, build_activation},
    {"dropout", dropout_keys, build_dropout},
    {"batchnorm", batchnorm_keys, build_batchnorm},
    {"prelu", prelu_keys, build_prelu},
    {"softmax", softmax_keys, build_softmax},
    {"cost", cost_keys, build_cost},
    {"rnn", rnn_keys, build_rnn},
    {"lstm", lstm_keys, build_lstm},
    {"gru", gru_keys, build_gru},
    {"embedding", embedding_keys, build_embedding},
    {"convolutional", convolutional_keys, build_convolutional},
    {"deconvolutional", deconvolutional_keys, build_deconvolutional},
    {"maxpool", maxpool_keys, build_maxpool},
    {"avgpool", avgpool_keys, build_avgpool},
    {"local", local_keys, build_local},
    {"normalization", normalization_keys, build_normalization},
    {"route", route_keys, build_route},
    {"shortcut", shortcut_keys, build_shortcut},
    {"upsample", upsample_keys, build_upsample},
    {"unpool", unpool_keys, build_unpool},
    {"reorg", reorg_keys, build_reorg},
    {"crop", crop_keys, build_crop},
    {"detection", detection_keys, build_detection},
    {"yolo", yolo_keys, build_yolo},
    {"region", region_keys, build_region},
    {"ssd", ssd_keys, build_ssd},
    {"rpn", rpn_keys, build_rpn},
    {"roi_pool", roi_pool_keys, build_roi_pool},
    {"roi_align", roi_align_keys, build_roi_align},
    {"fast_rcnn", fast_rcnn_keys, build_fast_rcnn},
};

static int is_net(const char *name) { return strcmp(name, "net") == 0 || strcmp(name, "network") == 0; }

static const layer_kind *find_kind(const cfg_doc *d, const cfg_section *s)
{
    for (size_t i = 0; i < NERVE_ARRAY_LEN(layer_kinds); i++)
        if (strcmp(layer_kinds[i].section, s->name) == 0)
            return &layer_kinds[i];
    char q[80], names[400] = "";
    size_t used = 0; /* the list comes from the table, so new layer kinds appear in it */
    for (size_t i = 0; i < NERVE_ARRAY_LEN(layer_kinds) && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 layer_kinds[i].section);
    if (is_net(s->name))
        cfg_error(d, NERVE_ERR_FORMAT, s->line, "[%s] may appear only once, as the first section",
                  s->name);
    else
        cfg_error(d, NERVE_ERR_FORMAT, s->line,
                  "unknown section [%s]; expected one of: %s (after [net])",
                  cfg_quote(s->name, q, sizeof q), names);
    return NULL;
}

static int valid_layer_name(const char *s)
{
    if (!*s || strlen(s) > 40)
        return 0;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* name= or "<section><index>"; names are unique and may not shadow the model's inputs. */
static int layer_name(build_ctx *b, int index)
{
    nerve_model *m = b->m;
    const cfg_entry *e = cfg_find(b->s, "name");
    char q[80];
    if (e && !valid_layer_name(e->value))
        return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                         "name = '%s' is not a valid layer name; expected 1 to 40 letters, "
                         "digits, '_' or '-'", cfg_quote(e->value, q, sizeof q));
    snprintf(b->name, sizeof b->name, "%s", e ? e->value : "");
    if (!e)
        snprintf(b->name, sizeof b->name, "%.30s%d", b->s->name, index);
    int line = e ? e->line : b->s->line;
    if (strcmp(b->name, "input") == 0 || strcmp(b->name, "labels") == 0 ||
        strcmp(b->name, "loss") == 0)
        return cfg_error(b->d, NERVE_ERR_FORMAT, line,
                         "layer name '%s' is reserved for the model's %s node", b->name, b->name);
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, b->name) == 0)
            return cfg_error(b->d, NERVE_ERR_FORMAT, line,
                             "layer name '%s' is already used by the layer on line %d; set "
                             "name= to another", b->name, m->layers[i].line);
    return NERVE_OK;
}

static int push_layer_info(nerve_model *m, const nerve_layer_info *li, int out)
{
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 16;
        nerve_layer_info *p = nerve_xrealloc(m->layers, (size_t)cap * sizeof *p);
        if (p)
            m->layers = p;
        int *o = p ? nerve_xrealloc(m->layer_out, (size_t)cap * sizeof *o) : NULL;
        if (!o)
            return NERVE_ERR_NOMEM;
        m->layer_out = o;
        m->cap_layers = cap;
    }
    m->layer_out[m->n_layers] = out;
    m->layers[m->n_layers++] = *li;
    return NERVE_OK;
}

/* The layer's output node carries the layer's name (so that "connected2" is what the
 * layer outputs, after its activation); an inner node of the layer that took the name
 * first (the dense product) becomes "<name>.<op>". */
static void name_layer_output(build_ctx *b, int first_node)
{
    if (b->x < first_node)
        return; /* a head: its output is the previous layer's */
    int holder = nerve_node_find(b->g, b->name);
    if (holder == b->x)
        return;
    if (holder >= first_node) {
        char inner[64];
        snprintf(inner, sizeof inner, "%.40s.%.20s", b->name, nerve_node_op(b->g, holder));
        if (nerve_node_find(b->g, inner) >= 0 || nerve_node_set_name(b->g, holder, inner) < 0)
            return;
    } else if (holder >= 0) {
        return;
    }
    nerve_node_set_name(b->g, b->x, b->name);
}

/* One row of the layer table: shape without batch, parameters created since first_node. */
static int record_layer(build_ctx *b, int first_node)
{
    nerve_layer_info li;
    memset(&li, 0, sizeof li);
    snprintf(li.type, sizeof li.type, "%s", b->s->name);
    snprintf(li.name, sizeof li.name, "%s", b->name);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    li.ndim = nd > 0 ? nd - 1 : 0;
    memcpy(li.dims, dims + 1, (size_t)li.ndim * sizeof(int));
    for (int i = first_node; i < nerve_node_count(b->g); i++)
        if (nerve_node_kind(b->g, i) == NERVE_NODE_PARAM) {
            int pn, pd[NERVE_MAX_DIMS];
            nerve_node_shape(b->g, i, &pn, pd);
            li.params += nerve_shape_numel(pn, pd);
        }
    li.flops = b->flops;
    li.macs = model_layer_macs(b->g, first_node);
    li.line = b->s->line;
    name_layer_output(b, first_node);
    return push_layer_info(b->m, &li, b->x);
}

/* darknet's [cost] after a [softmax] (resnet101.cfg): its sse delta t - p reaches the logits
 * through the softmax's backward, which passes deltas unchanged, on top of the softmax's own
 * cross-entropy delta t - p; the same gradient is twice the cross-entropy. */
static int build_cost_after_softmax(build_ctx *b, const cfg_section *s, int index)
{
    nerve_model *m = b->m;
    static const char *const keys[] = {"type", "name", NULL};
    b->s = s;
    b->flops = 0;
    TRY(cfg_check_keys(b->d, s, keys));
    const cfg_entry *t = cfg_find(s, "type");
    /* masked (darknet9000.cfg): darknet's sse that skips the labels its hierarchical data
     * marks as unknown; only after a tree= softmax, whose training is refused anyway */
    int masked = t && !strcmp(t->value, "masked") && m->refuse_train[0];
    if (t && strcmp(t->value, "sse") && strcmp(t->value, "mse") && !masked)
        return cfg_error(b->d, NERVE_ERR_FORMAT, t->line, "[cost] type=%s after a [softmax]: "
                         "only sse (darknet's default) is supported there%s", t->value,
                         strcmp(t->value, "masked") ? "" : " (masked: after a tree= softmax)");
    if (m->loss != m->head_loss || b->cost_after_head)
        return cfg_error(b->d, NERVE_ERR_FORMAT, s->line, "[cost] after a [softmax] with l1= "
                         "or l2= penalties, or after another [cost], is not supported");
    TRY(layer_name(b, index));
    int first = nerve_node_count(b->g);
    int loss = nerve_affine(b->g, m->loss, 2.0f, 0.0f);
    if (loss < 0)
        return graph_fail(b, loss);
    if (nerve_node_find(b->g, "loss") == m->loss) {
        nerve_node_set_name(b->g, m->loss, "loss.softmax");
        nerve_node_set_name(b->g, loss, "loss");
    }
    m->loss = m->head_loss = loss;
    b->cost_after_head = 1;
    return record_layer(b, first);
}

static int build_layer(build_ctx *b, const cfg_section *s, int index)
{
    if (b->is_head && !strcmp(s->name, "cost") && b->m->head.section &&
        !strcmp(b->m->head.section, "softmax") && b->m->head.task == NERVE_TASK_CLASSIFY)
        return build_cost_after_softmax(b, s, index);
    if (b->is_head)
        return cfg_error(b->d, NERVE_ERR_FORMAT, s->line,
                         "[%s] follows the [%s] head; the head must be the last section",
                         s->name, b->m->layers[b->m->n_layers - 1].type);
    const layer_kind *k = find_kind(b->d, s);
    if (!k)
        return nerve_last_status();
    b->s = s;
    b->flops = 0;
    TRY(cfg_check_keys(b->d, s, k->keys));
    TRY(layer_name(b, index));
    int first = nerve_node_count(b->g);
    TRY(k->build(b));
    return record_layer(b, first);
}

/* ===================================================================================== */
/* The model                                                                              */
/* ===================================================================================== */

/* The input node "input" [N, sample...], then z-score normalisation if asked for. */
static int build_input(nerve_model *m, const cfg_doc *d, const cfg_section *net)
{
    nerve_net_config *c = &m->cfg;
    int dims[NERVE_MAX_DIMS] = {1};
    memcpy(dims + 1, c->dims, (size_t)c->ndim * sizeof(int));
    m->input = nerve_input(m->g, "input", c->ndim + 1, dims);
    if (m->input < 0)
        return m->input;
    if (!c->normalize)
        return m->input;
    m->mean = nerve_state(m->g, "input.mean", c->ndim, c->dims);
    m->std = nerve_state(m->g, "input.std", c->ndim, c->dims);
    if (m->mean < 0 || m->std < 0)
        return nerve_last_status();
    nerve_tensor sd = nerve_value(m->g, m->std);
    for (size_t i = 0; i < nerve_tensor_numel(&sd); i++)
        sd.data[i] = 1.0f; /* the identity until statistics are set */
    int x = by_name_zscore(m->g, m->input, m->mean, m->std);
    if (x < 0) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        return cfg_error(d, x, net->line, "[net] normalize=1: %s", msg);
    }
    return x;
}

static void base_dir_of(const char *filename, char *out, size_t size)
{
    const char *slash = filename ? strrchr(filename, '/') : NULL;
    if (!slash) {
        out[0] = '\0';
        return;
    }
    size_t n = slash == filename ? 1 : (size_t)(slash - filename); /* "/x.cfg" -> "/" */
    if (n >= size)
        n = size - 1;
    memcpy(out, filename, n);
    out[n] = '\0';
}

/* A text source: its vocabulary (unless a checkpoint gave one) and the seq override of
 * a one-step model. */
static int text_settings(nerve_model *m, const cfg_doc *d, const cfg_section *net)
{
    nerve_net_config *c = &m->cfg;
    const cfg_entry *text = cfg_find(net, "train_text");
    if (text && (c->train_images[0] || c->train_csv[0] || c->test_images[0] || c->test_csv[0]))
        return cfg_error(d, NERVE_ERR_FORMAT, text->line,
                         "train_text= is the whole data set (its end is held out with "
                         "validation=); it does not combine with train_/test_ images or csv");
    if (text && m->vocab.n == 0) {
        int st = nerve_vocab_of_file(&m->vocab, c->train_text);
        if (st < 0) {
            char msg[800];
            snprintf(msg, sizeof msg, "%s", nerve_last_error());
            return cfg_error(d, st, text->line, "train_text: %s", msg);
        }
    }
    if (m->seq_override > 0 && c->seq > 0)
        c->seq = c->dims[0] = m->seq_override;
    return NERVE_OK;
}

static int build_model(nerve_model *m, const cfg_doc *d)
{
    if (d->n_sections == 0)
        return cfg_error(d, NERVE_ERR_FORMAT, d->n_lines,
                         "no sections; a cfg starts with [net] followed by its layers");
    const cfg_section *net = &d->sections[0];
    if (!is_net(net->name)) {
        char q[80];
        return cfg_error(d, NERVE_ERR_FORMAT, net->line,
                         "the first section must be [net], found [%s]",
                         cfg_quote(net->name, q, sizeof q));
    }
    TRY(parse_net(d, net, &m->cfg, m->base_dir));
    TRY(text_settings(m, d, net));
    if (d->n_sections == 1)
        return cfg_error(d, NERVE_ERR_FORMAT, d->n_lines, "no layers after [net]");
    int x = build_input(m, d, net);
    if (x < 0)
        return x;
    build_ctx b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.g = m->g;
    b.d = d;
    b.x = x;
    b.no_init = m->no_init;
    nerve_rng_seed(&b.rng, m->cfg.seed);
    nerve_rng_seed(nerve_graph_rng(m->g), m->cfg.seed + 1);
    for (int i = 1; i < d->n_sections; i++)
        TRY(build_layer(&b, &d->sections[i], i));
    if (m->n_yolo && !b.is_head)
        TRY(finish_yolo(&b));
    if (m->n_ssd)
        TRY(finish_ssd(&b));
    if (m->has_frcnn == 1)
        return cfg_error(d, NERVE_ERR_FORMAT, d->n_lines, "an [rpn] without a [fast_rcnn] head at "
                         "the end: a Faster R-CNN ends in [roi_pool] (or [roi_align]), "
                         "[connected] layers and [fast_rcnn]");
    if (!b.is_head)
        m->output = b.x;
    const cfg_entry *adv = cfg_find(net, "adversarial");
    if (m->cfg.adversarial.kind != NERVE_ADV_NONE && (m->head.task != NERVE_TASK_CLASSIFY || !m->head.logits ||
                                                      m->cfg.noise.kind != NERVE_NOISE_NONE))
        return cfg_error(d, NERVE_ERR_FORMAT, adv->line, "adversarial= trains a classifier on attacked inputs and "
                         "needs a [softmax] head with class labels; this model's head is %s",
                         nerve_task_name(m->head.task));
    const cfg_entry *noise = cfg_find(net, "corrupt");
    if (m->cfg.noise.kind != NERVE_NOISE_NONE && m->head.task != NERVE_TASK_RECONSTRUCT)
        return cfg_error(d, NERVE_ERR_FORMAT, noise->line,
                         "corrupt= corrupts the input of a denoising model and needs a head with "
                         "target=input ([cost] type=mse target=input); this model's head is %s "
                         "(for noise augmentation of a classifier use augment=noise)",
                         nerve_task_name(m->head.task));
    return NERVE_OK;
}

nerve_model *model_from_cfg(const char *text, const char *filename, const char *base_dir)
{
    return model_from_cfg_ex(text, filename, base_dir, 1);
}

nerve_model *model_from_cfg_ex(const char *text, const char *filename, const char *base_dir,
                               int init_weights)
{
    model_build_opts o = {init_weights, NULL, 0};
    return model_from_cfg_opts(text, filename, base_dir, &o);
}

nerve_model *model_from_cfg_opts(const char *text, const char *filename, const char *base_dir,
                                 const model_build_opts *o)
{
    if (!text) {
        nerve_set_error(NERVE_ERR_ARG, "%s: no cfg text", filename ? filename : "<cfg>");
        return NULL;
    }
    nerve_model *m = nerve_xcalloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->input = m->labels = m->output = m->loss = m->mean = m->std = -1;
    m->head.target = NERVE_TARGET_CLASS;
    m->head.ignore_index = -1;
    m->no_init = !o->init_weights;
    if (o->vocab)
        m->vocab = *o->vocab;
    m->seq_override = o->seq;
    snprintf(m->file, sizeof m->file, "%s", filename ? filename : "<cfg>");
    if (base_dir)
        snprintf(m->base_dir, sizeof m->base_dir, "%s", base_dir);
    else
        base_dir_of(filename, m->base_dir, sizeof m->base_dir);
    m->text = nerve_xstrdup(text);
    m->g = nerve_graph_create();
    cfg_doc d;
    int st = m->text && m->g ? cfg_parse(&d, text, filename) : NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        st = build_model(m, &d);
        cfg_free(&d);
    }
    if (st != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    return m;
}

nerve_model *nerve_model_from_cfg(const char *text, const char *filename)
{
    return model_from_cfg(text, filename, NULL);
}

/* Reads a whole text file; a NUL byte is an error (it would silently end the text). */
static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nerve_set_error(NERVE_ERR_IO, "%s: cannot open the cfg file", path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = nerve_xmalloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            if (cap >= ((size_t)16 << 20)) {
                nerve_set_error(NERVE_ERR_FORMAT, "%s: larger than 16 MiB; not a cfg file", path);
                break;
            }
            char *p = nerve_xrealloc(buf, cap * 2);
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, fp);
        len += got;
        if (got == 0) {
            fclose(fp);
            buf[len] = '\0';
            if (strlen(buf) == len)
                return buf;
            int line = 1;
            for (const char *p = buf; *p; p++)
                line += *p == '\n';
            nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: a NUL byte; a cfg is a text file", path,
                            line);
            nerve_xfree(buf);
            return NULL;
        }
    }
    nerve_xfree(buf);
    fclose(fp);
    return NULL;
}

nerve_model *nerve_model_load_cfg(const char *path)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "null cfg path");
        return NULL;
    }
    char *text = read_text(path);
    if (!text)
        return NULL;
    nerve_model *m = nerve_model_from_cfg(text, path);
    nerve_xfree(text);
    return m;
}

void nerve_model_free(nerve_model *m)
{
    if (!m)
        return;
    nerve_graph_free(m->g);
    nerve_xfree(m->text);
    nerve_xfree(m->layers);
    nerve_xfree(m->layer_out);
    nerve_names_free(m->names, m->n_names);
    nerve_xfree(m);
}

int nerve_model_set_names(nerve_model *m, int n, const char *const *names)
{
    if (!m || n < 0 || (n > 0 && !names))
        return nerve_set_error(NERVE_ERR_ARG, "set names: bad arguments");
    char **copy = n ? nerve_xcalloc((size_t)n, sizeof *copy) : NULL;
    if (n && !copy)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        if (!(copy[i] = nerve_xstrdup(names[i]))) {
            nerve_names_free(copy, i);
            return NERVE_ERR_NOMEM;
        }
    nerve_names_free(m->names, m->n_names);
    m->names = copy;
    m->n_names = n;
    return NERVE_OK;
}

const char *const *nerve_model_names(const nerve_model *m, int *n)
{
    if (n)
        *n = m ? m->n_names : 0;
    return m && m->n_names ? (const char *const *)m->names : NULL;
}

nerve_graph *nerve_model_graph(nerve_model *m) { return m ? m->g : NULL; }
const nerve_net_config *nerve_model_config(const nerve_model *m) { return m ? &m->cfg : NULL; }
nerve_net_config *nerve_model_config_mut(nerve_model *m) { return m ? &m->cfg : NULL; }
const char *nerve_model_cfg_text(const nerve_model *m) { return m ? m->text : NULL; }
int nerve_model_input(const nerve_model *m) { return m ? m->input : -1; }
int nerve_model_labels(const nerve_model *m) { return m ? m->labels : -1; }

nerve_head_info nerve_model_head(const nerve_model *m)
{
    nerve_head_info none = {NERVE_TASK_NONE, NERVE_TARGET_CLASS, NULL, NULL, 0, 0, -1, NULL, NULL};
    return m ? m->head : none;
}

int nerve_model_set_head(nerve_model *m, const nerve_head_info *h)
{
    if (!m || !h)
        return nerve_set_error(NERVE_ERR_ARG, "set_head: null argument");
    if (h->target == NERVE_TARGET_BOXES && !h->feed)
        return nerve_set_error(NERVE_ERR_ARG, "set_head: a box head must give its feed function "
                               "(boxes have no fixed size the training loop could copy)");
    m->head = *h;
    return NERVE_OK;
}

const char *nerve_task_name(nerve_task task)
{
    static const char *const names[] = {"none", "classify", "regress", "reconstruct", "segment",
                                        "binary_mask", "language", "detect"};
    return (unsigned)task < NERVE_ARRAY_LEN(names) ? names[task] : "unknown";
}

const char *nerve_target_kind_name(nerve_target_kind k)
{
    static const char *const names[] = {"class", "values", "input", "mask", "boxes", "tokens"};
    return (unsigned)k < NERVE_ARRAY_LEN(names) ? names[k] : "unknown";
}
int nerve_model_output(const nerve_model *m) { return m ? m->output : -1; }
int nerve_model_loss(const nerve_model *m) { return m ? m->loss : -1; }
int nerve_model_normalizes(const nerve_model *m) { return m && m->mean >= 0; }

int nerve_model_vocab(const nerve_model *m, nerve_vocab *out)
{
    if (!m)
        return 0;
    if (out)
        *out = m->vocab;
    return m->vocab.n;
}
int nerve_model_layer_count(const nerve_model *m) { return m ? m->n_layers : 0; }

/* The layer that made node id: layers are built in order, each ending at its output node
 * (a head's nodes follow the last layer's output: the last layer). -1 if before the first
 * (the input). */
static int layer_of_node(const nerve_model *m, int id)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layer_out[i] >= id && (i == 0 || m->layer_out[i - 1] < id))
            return i;
    return id > m->input && m->n_layers > 0 ? m->n_layers - 1 : -1;
}

int nerve_model_compile(nerve_model *m, int max_batch)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "null model");
    int batch = max_batch > 0 ? max_batch : m->cfg.batch;
    int st = nerve_graph_compile(m->g, batch);
    if (st >= 0 || m->g->failed_node < 0)
        return st;
    /* a shape found too large at this batch (the per-layer limit): say it in cfg terms */
    char msg[800];
    snprintf(msg, sizeof msg, "%s", nerve_last_error());
    int l = layer_of_node(m, m->g->failed_node);
    if (l < 0)
        return nerve_set_error(st, "%s: [net] at batch %d: %s", m->file, batch, msg);
    const nerve_layer_info *li = &m->layers[l];
    return nerve_set_error(st, "%s:%d: [%s] %s at batch %d: %s", m->file, li->line, li->type,
                           li->name, batch, msg);
}

int nerve_model_set_input_stats(nerve_model *m, const float *mean, const float *std)
{
    if (!m || !mean || !std)
        return nerve_set_error(NERVE_ERR_ARG, "set_input_stats: null argument");
    if (m->mean < 0)
        return nerve_set_error(NERVE_ERR_STATE,
                               "the model does not normalise its inputs ([net] normalize=0)");
    nerve_tensor mt = nerve_value(m->g, m->mean), st = nerve_value(m->g, m->std);
    size_t n = nerve_tensor_numel(&mt);
    memcpy(mt.data, mean, n * sizeof(float));
    memcpy(st.data, std, n * sizeof(float));
    return NERVE_OK;
}

int nerve_model_layer_info(const nerve_model *m, int i, nerve_layer_info *out)
{
    if (!m || !out)
        return nerve_set_error(NERVE_ERR_ARG, "layer_info: null argument");
    if (i < 0 || i >= m->n_layers)
        return nerve_set_error(NERVE_ERR_ARG, "layer %d outside 0..%d", i, m->n_layers - 1);
    *out = m->layers[i];
    return NERVE_OK;
}
