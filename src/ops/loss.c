/* Loss operators: each reduces a batch to one scalar (ndim 0), averaged over the batch.
 *
 *   pointwise: pred and target of one shape, mean over all K elements
 *     mse_loss         (p - t)^2, times 0.5 when half       d/dp = 2 (p - t)
 *     l1_loss          |p - t|                               d/dp = sign(p - t), 0 at 0
 *     bce_logits_loss  max(z,0) - z t + log(1 + e^-|z|)      d/dz = sigmoid(z) - t
 *   class losses: scores [N, C], labels [N] or [N, 1] holding class indices as floats,
 *   optional class weights [C]
 *     softmax_ce_loss  sum_i sum_c q_ic (lse_i - z_ic) / Z   d/dz_ic = (s_i p_ic - q_ic) / Z
 *     nll_loss         sum_i w_yi (-lp_i,yi) / Z              d/dlp_i,yi = -w_yi / Z
 *     hinge_loss       binary (C = 1) or multi-class margin, mean over N
 *   penalty: coef sum |w| (L1) or coef/2 sum w^2 (L2) over parameters, chained in groups.
 *
 * Labels and class weights carry no gradient. forward() cannot fail, so a label that is
 * not an integer in [0, C) (or not 0/1 for the binary hinge) makes the loss NaN: the
 * training loop's NaN check then stops the run and reports it. Clamping would train on a
 * wrong class silently. backward() skips such rows so that nothing is read out of bounds.
 * Sums are accumulated in double: a batch of many small terms loses digits in float. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- pointwise losses: attr.pointwise_loss (which: POINTWISE_*, scale) ----------------- */

typedef struct pointwise_fn {
    double (*value)(double p, double t);
    double (*dpred)(double p, double t);   /* d value / d p */
    double (*dtarget)(double p, double t); /* d value / d t */
} pointwise_fn;

static double sign_of(double x) { return (double)((x > 0) - (x < 0)); }

static double sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z); /* never overflows for z < 0 */
    return e / (1.0 + e);
}

static double squared_value(double p, double t) { return (p - t) * (p - t); }
static double squared_dpred(double p, double t) { return 2.0 * (p - t); }
static double squared_dtarget(double p, double t) { return -2.0 * (p - t); }

static double absolute_value(double p, double t) { return fabs(p - t); }
static double absolute_dpred(double p, double t) { return sign_of(p - t); }
static double absolute_dtarget(double p, double t) { return -sign_of(p - t); }

/* -t log sigmoid(z) - (1-t) log(1 - sigmoid(z)) rewritten so no exp() overflows. */
static double bce_value(double z, double t) { return fmax(z, 0.0) - z * t + log1p(exp(-fabs(z))); }
static double bce_dlogit(double z, double t) { return sigmoid(z) - t; }
static double bce_dtarget(double z, double t)
{
    (void)t;
    return -z;
}

enum { POINTWISE_MSE, POINTWISE_L1, POINTWISE_BCE };

static const pointwise_fn pointwise_fns[] = {
    [POINTWISE_MSE] = {squared_value, squared_dpred, squared_dtarget},
    [POINTWISE_L1] = {absolute_value, absolute_dpred, absolute_dtarget},
    [POINTWISE_BCE] = {bce_value, bce_dlogit, bce_dtarget},
};

static int scalar_output(node *n)
{
    n->ndim = 0;
    return NERVE_OK;
}

static int pointwise_infer(nerve_graph *g, node *n)
{
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    int same = p->ndim == t->ndim;
    for (int d = 0; same && d < p->ndim; d++)
        same = p->dims[d] == t->dims[d];
    if (!same) {
        char ps[64], ts[64];
        return op_shape_error(n, "prediction %s and target %s must have the same shape",
                              nerve_shape_str(p->ndim, p->dims, ps, sizeof ps),
                              nerve_shape_str(t->ndim, t->dims, ts, sizeof ts));
    }
    return scalar_output(n);
}

static void pointwise_forward(nerve_graph *g, node *n)
{
    const pointwise_fn *f = &pointwise_fns[n->attr.pointwise_loss.which];
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    size_t count = node_numel(p);
    double sum = 0;
    for (size_t k = 0; k < count; k++)
        sum += f->value(p->value[k], t->value[k]);
    n->value[0] = (float)(n->attr.pointwise_loss.scale * sum / (double)count);
}

static void pointwise_backward(nerve_graph *g, node *n)
{
    const pointwise_fn *f = &pointwise_fns[n->attr.pointwise_loss.which];
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    float *dp = node_input_grad(g, n, 0), *dt = node_input_grad(g, n, 1);
    size_t count = node_numel(p);
    double scale = (double)n->grad[0] * n->attr.pointwise_loss.scale / (double)count;
    for (size_t k = 0; k < count; k++) {
        if (dp)
            dp[k] += (float)(scale * f->dpred(p->value[k], t->value[k]));
        if (dt)
            dt[k] += (float)(scale * f->dtarget(p->value[k], t->value[k]));
    }
}

static const op_def op_mse = {"mse_loss", pointwise_infer, NULL, pointwise_forward,
                              pointwise_backward, 0};
static const op_def op_l1 = {"l1_loss", pointwise_infer, NULL, pointwise_forward,
                             pointwise_backward, 0};
static const op_def op_bce = {"bce_logits_loss", pointwise_infer, NULL, pointwise_forward,
                              pointwise_backward, 0};

static int add_pointwise(nerve_graph *g, const op_def *op, int which, float scale, int pred,
                         int target)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.pointwise_loss.which = which;
    at.pointwise_loss.scale = scale;
    return graph_add_op(g, op, 2, (int[]){pred, target}, &at, op->name);
}

int nerve_mse_loss(nerve_graph *g, int pred, int target, int half)
{
    return add_pointwise(g, &op_mse, POINTWISE_MSE, half ? 0.5f : 1.0f, pred, target);
}

int nerve_l1_loss(nerve_graph *g, int pred, int target)
{
    return add_pointwise(g, &op_l1, POINTWISE_L1, 1.0f, pred, target);
}

int nerve_bce_logits_loss(nerve_graph *g, int logits, int target)
{
    return add_pointwise(g, &op_bce, POINTWISE_BCE, 1.0f, logits, target);
}

/* ---- class losses: inputs scores [N,C], labels [N] or [N,1] [, class weights [C]] ---- */

/* The class a label value names, or -1 unless it is an integer in [0, n_classes). */
static int label_class(float y, int n_classes)
{
    if (!(y >= 0.0f && y < (float)n_classes) || y != floorf(y))
        return -1;
    return (int)y;
}

static int class_infer(nerve_graph *g, node *n)
{
    const node *s = node_input(g, n, 0), *y = node_input(g, n, 1);
    char buf[64];
    if (s->ndim != 2)
        return op_shape_error(n, "scores must be 2-D [N, C], got %s",
                              nerve_shape_str(s->ndim, s->dims, buf, sizeof buf));
    int N = s->dims[0], C = s->dims[1];
    int labels_fit = (y->ndim == 1 || (y->ndim == 2 && y->dims[1] == 1)) && y->dims[0] == N;
    if (!labels_fit)
        return op_shape_error(n, "labels must be [%d] or [%d, 1] for scores [%d, %d], got %s", N,
                              N, N, C, nerve_shape_str(y->ndim, y->dims, buf, sizeof buf));
    if (n->n_in == 3) {
        const node *w = node_input(g, n, 2);
        if (w->ndim != 1 || w->dims[0] != C)
            return op_shape_error(n, "class weights must be [%d], got %s", C,
                                  nerve_shape_str(w->ndim, w->dims, buf, sizeof buf));
    }
    return scalar_output(n);
}

/* Class weights of the node (NULL: every class weighs 1). */
static const float *class_weights(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input(g, n, 2)->value : NULL;
}

static double weight_of(const float *w, int c) { return w ? (double)w[c] : 1.0; }

/* Denominator of the weighted mean: the summed weight of every row's class (N without
 * weights). Rows with invalid labels are left out; the loss is NaN anyway. */
static double class_normaliser(const float *labels, const float *w, int N, int C)
{
    double z = 0;
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], C);
        if (y >= 0)
            z += weight_of(w, y);
    }
    return z;
}

static int class_loss_node(nerve_graph *g, const op_def *op, int scores, int labels, int weights,
                           const node_attr *at)
{
    int in[3] = {scores, labels, weights};
    return graph_add_op(g, op, weights >= 0 ? 3 : 2, in, at, op->name);
}

/* ---- softmax cross-entropy: attr.softmax_ce.smoothing = eps; scratch = p [N,C] -------
 *
 * Target weight of class c in a row labelled y, weights w (all 1 when absent):
 *   q_c = (1 - eps) w_y [c == y] + (eps / C) w_c
 * so the unweighted target is (1 - eps) onehot + eps / C. The mean divides by
 * Z = sum_i w_yi, the labelled classes' weights only, also for the smoothing part: this is
 * the convention of PyTorch's CrossEntropyLoss(weight=, label_smoothing=), so weighted,
 * smoothed losses compare directly with it. With s = sum_c q_c the row's gradient is
 * (s p - q) / Z, which is (p - target) w_y / Z without smoothing. */

static double smoothed_target(const float *w, int y, int c, int C, double eps)
{
    return (c == y ? (1.0 - eps) * weight_of(w, y) : 0.0) + eps / C * weight_of(w, c);
}

static double total_class_weight(const float *w, int C)
{
    double sum = 0;
    for (int c = 0; c < C; c++)
        sum += weight_of(w, c);
    return sum;
}

/* p = softmax(z) over one row of C scores, max-subtracted; returns log sum exp(z). */
static double softmax_row(const float *z, float *p, int C)
{
    float m = z[0];
    for (int c = 1; c < C; c++)
        m = fmaxf(m, z[c]);
    double sum = 0;
    for (int c = 0; c < C; c++)
        sum += exp((double)z[c] - m);
    double lse = m + log(sum);
    for (int c = 0; c < C; c++)
        p[c] = (float)exp((double)z[c] - lse);
    return lse;
}

static size_t softmax_ce_scratch(const nerve_graph *g, const node *n)
{
    return node_numel(&g->nodes[n->in[0]]);
}

static void softmax_ce_forward(nerve_graph *g, node *n)
{
    const node *s = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value, *w = class_weights(g, n);
    int N = s->dims[0], C = s->dims[1];
    double eps = n->attr.softmax_ce.smoothing, total = 0;
    int bad_label = 0;
    for (int i = 0; i < N; i++) {
        const float *z = s->value + (size_t)i * C;
        double lse = softmax_row(z, n->scratch + (size_t)i * C, C);
        int y = label_class(labels[i], C);
        if (y < 0) {
            bad_label = 1;
            continue;
        }
        for (int c = 0; c < C; c++) /* -log p_c = lse - z_c */
            total += smoothed_target(w, y, c, C, eps) * (lse - z[c]);
    }
    n->value[0] = bad_label ? NAN : (float)(total / class_normaliser(labels, w, N, C));
}

static void softmax_ce_backward(nerve_graph *g, node *n)
{
    float *dz = node_input_grad(g, n, 0);
    if (!dz)
        return;
    const node *s = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value, *w = class_weights(g, n);
    int N = s->dims[0], C = s->dims[1];
    double eps = n->attr.softmax_ce.smoothing;
    double scale = n->grad[0] / class_normaliser(labels, w, N, C);
    double smooth_mass = eps / C * total_class_weight(w, C);
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], C);
        if (y < 0)
            continue;
        const float *p = n->scratch + (size_t)i * C; /* saved by forward: no exp again */
        double row_mass = (1.0 - eps) * weight_of(w, y) + smooth_mass; /* sum_c q_c */
        for (int c = 0; c < C; c++)
            dz[(size_t)i * C + c] +=
                (float)(scale * (row_mass * p[c] - smoothed_target(w, y, c, C, eps)));
    }
}

static const op_def op_softmax_ce = {"softmax_ce_loss", class_infer, softmax_ce_scratch,
                                     softmax_ce_forward, softmax_ce_backward, 0};

int nerve_softmax_ce_loss(nerve_graph *g, int logits, int labels, int class_weights,
                          float smoothing)
{
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "softmax_ce_loss: label smoothing %g outside [0, 1)",
                               (double)smoothing);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.softmax_ce.smoothing = smoothing;
    return class_loss_node(g, &op_softmax_ce, logits, labels, class_weights, &at);
}

/* ---- negative log-likelihood of log-probabilities lp [N,C] ------------------------- */

static void nll_forward(nerve_graph *g, node *n)
{
    const node *lp = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value, *w = class_weights(g, n);
    int N = lp->dims[0], C = lp->dims[1];
    double total = 0;
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], C);
        if (y < 0) {
            n->value[0] = NAN;
            return;
        }
        total -= weight_of(w, y) * lp->value[(size_t)i * C + y];
    }
    n->value[0] = (float)(total / class_normaliser(labels, w, N, C));
}

static void nll_backward(nerve_graph *g, node *n)
{
    float *dlp = node_input_grad(g, n, 0);
    if (!dlp)
        return;
    const node *lp = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value, *w = class_weights(g, n);
    int N = lp->dims[0], C = lp->dims[1];
    double scale = n->grad[0] / class_normaliser(labels, w, N, C);
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], C);
        if (y >= 0)
            dlp[(size_t)i * C + y] -= (float)(scale * weight_of(w, y));
    }
}

static const op_def op_nll = {"nll_loss", class_infer, NULL, nll_forward, nll_backward, 0};

int nerve_nll_loss(nerve_graph *g, int logprobs, int labels, int class_weights)
{
    return class_loss_node(g, &op_nll, logprobs, labels, class_weights, NULL);
}

/* ---- hinge: scores [N,1] with labels {0,1}, or [N,C>1] with class labels -------------
 * One function computes a row's loss and, given ds, adds scale times its (sub)gradient,
 * so forward and backward cannot disagree. At the kink (margin exactly 0) the
 * subgradient 0 is used. */

static double hinge_row(const float *s, int C, int y, float *ds, double scale)
{
    if (C == 1) { /* label 0/1 as t = -1/+1: max(0, 1 - t s) */
        double t = y ? 1.0 : -1.0, margin = 1.0 - t * s[0];
        if (margin <= 0)
            return 0;
        if (ds)
            ds[0] -= (float)(scale * t);
        return margin;
    }
    double loss = 0; /* sum_{j != y} max(0, 1 - s_y + s_j) */
    for (int j = 0; j < C; j++) {
        double margin = 1.0 - s[y] + s[j];
        if (j == y || margin <= 0)
            continue;
        loss += margin;
        if (ds) {
            ds[j] += (float)scale;
            ds[y] -= (float)scale;
        }
    }
    return loss;
}

/* A binary hinge has one score column but two label values. */
static int hinge_label_count(int C) { return C == 1 ? 2 : C; }

static void hinge_forward(nerve_graph *g, node *n)
{
    const node *s = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value;
    int N = s->dims[0], C = s->dims[1];
    double total = 0;
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], hinge_label_count(C));
        if (y < 0) {
            n->value[0] = NAN;
            return;
        }
        total += hinge_row(s->value + (size_t)i * C, C, y, NULL, 0);
    }
    n->value[0] = (float)(total / N);
}

static void hinge_backward(nerve_graph *g, node *n)
{
    float *ds = node_input_grad(g, n, 0);
    if (!ds)
        return;
    const node *s = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value;
    int N = s->dims[0], C = s->dims[1];
    double scale = (double)n->grad[0] / N;
    for (int i = 0; i < N; i++) {
        int y = label_class(labels[i], hinge_label_count(C));
        if (y >= 0)
            hinge_row(s->value + (size_t)i * C, C, y, ds + (size_t)i * C, scale);
    }
}

static const op_def op_hinge = {"hinge_loss", class_infer, NULL, hinge_forward, hinge_backward, 0};

int nerve_hinge_loss(nerve_graph *g, int scores, int labels)
{
    return class_loss_node(g, &op_hinge, scores, labels, -1, NULL);
}

/* ---- penalty: attr.penalty: kind, carry (input 0 is the running sum), coef
 * One node takes up to NERVE_MAX_INPUTS parameters; longer lists chain nodes, each adding
 * the previous node's scalar (gradient 1) to its own groups' penalty. */

static double penalty_term(int kind, double w)
{
    return kind == NERVE_PENALTY_L1 ? fabs(w) : 0.5 * w * w;
}

/* d term / d w; L1 takes the subgradient 0 at w = 0. */
static double penalty_slope(int kind, double w)
{
    return kind == NERVE_PENALTY_L1 ? sign_of(w) : w;
}

static int penalty_infer(nerve_graph *g, node *n)
{
    if (n->attr.penalty.carry && node_numel(node_input(g, n, 0)) != 1)
        return op_shape_error(n, "the running sum (input 0) must be a scalar");
    return scalar_output(n);
}

static void penalty_forward(nerve_graph *g, node *n)
{
    int kind = n->attr.penalty.kind, first = n->attr.penalty.carry;
    double total = first ? node_input(g, n, 0)->value[0] : 0.0, sum = 0;
    for (int k = first; k < n->n_in; k++) {
        const node *w = node_input(g, n, k);
        for (size_t e = 0; e < node_numel(w); e++)
            sum += penalty_term(kind, w->value[e]);
    }
    n->value[0] = (float)(total + n->attr.penalty.coef * sum);
}

static void penalty_backward(nerve_graph *g, node *n)
{
    int kind = n->attr.penalty.kind, first = n->attr.penalty.carry;
    double scale = (double)n->grad[0] * n->attr.penalty.coef;
    float *dcarry = first ? node_input_grad(g, n, 0) : NULL;
    if (dcarry)
        dcarry[0] += n->grad[0];
    for (int k = first; k < n->n_in; k++) {
        const node *w = node_input(g, n, k);
        float *dw = node_input_grad(g, n, k);
        for (size_t e = 0; dw && e < node_numel(w); e++)
            dw[e] += (float)(scale * penalty_slope(kind, w->value[e]));
    }
}

static const op_def op_penalty = {"penalty", penalty_infer, NULL, penalty_forward,
                                  penalty_backward, 0};

static int penalised(const node *n)
{
    return n->kind == NERVE_NODE_PARAM && !n->frozen && n->decay;
}

static int penalty_group(nerve_graph *g, int kind, float coef, const int *in, int n_in, int carry)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.penalty.kind = kind;
    at.penalty.carry = carry;
    at.penalty.coef = coef;
    return graph_add_op(g, &op_penalty, n_in, in, &at, "penalty");
}

int nerve_penalty(nerve_graph *g, int kind, float coef)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (kind != NERVE_PENALTY_L1 && kind != NERVE_PENALTY_L2)
        return nerve_set_error(NERVE_ERR_ARG, "penalty: unknown kind %d (L1 = 1, L2 = 2)", kind);
    if (!(coef >= 0.0f && isfinite(coef)))
        return nerve_set_error(NERVE_ERR_ARG, "penalty: coefficient %g must be finite and >= 0",
                               (double)coef);
    int n_before = g->n_nodes; /* the penalty nodes themselves are not walked */
    int total = -1, in[NERVE_MAX_INPUTS], n_in = 0, carry = 0, found = 0;
    for (int i = 0; i < n_before; i++) {
        if (!penalised(&g->nodes[i]))
            continue;
        found++;
        if (n_in == 0) {
            carry = total >= 0;
            if (carry)
                in[n_in++] = total;
        }
        in[n_in++] = i;
        if (n_in == NERVE_MAX_INPUTS) {
            total = penalty_group(g, kind, coef, in, n_in, carry);
            if (total < 0)
                return total;
            n_in = 0;
        }
    }
    if (!found)
        return nerve_set_error(NERVE_ERR_ARG,
                               "penalty: the graph has no trainable parameter with weight decay");
    return n_in > 0 ? penalty_group(g, kind, coef, in, n_in, carry) : total;
}

const op_def *const ops_loss[] = {&op_mse,   &op_l1,    &op_bce,     &op_softmax_ce,
                                  &op_nll,   &op_hinge, &op_penalty, NULL};
