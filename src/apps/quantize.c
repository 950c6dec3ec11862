/* Post-training quantisation (nerve quantize, docs/quantize.md).
 *
 * Calibration runs the float model in evaluation mode over the first batches of a data set
 * and records, for every dense and one-group conv node, the smallest and largest value of
 * its input and of its output (the "max" statistic: the whole observed range, widened to
 * include 0). Each node's forward is run up to that node (nerve_forward(g, node)), so its
 * output is read before an in-place consumer (a ReLU, a batch norm) overwrites it. Then
 * each node gets:
 *   weights  symmetric per output channel: s_w = max|w| / 127, q = round(w / s_w) in
 *            -127..127;
 *   inputs and outputs  u8 with a zero point: s = (hi - lo) / 255, zp = round(-lo / s);
 *            an output read only by a ReLU gets lo = 0 and the ReLU is applied by the
 *            requantisation's clamp.
 * and switches to its int8 forward (src/ops/quant.c). A batch norm that alone reads a node's
 * output is folded into it first (weights w * s, bias b * s + t with the batch norm's own
 * evaluation scale s and shift t; the output range calibrated after the batch norm) and left
 * as the identity, which links of bytes pass through. The float weight leaves then hold
 * s_w * q, so that a float reader (a picture of the filters) sees the int8 weights. */
#include "../model/model.h"
#include "../ops/ops.h"

#include <math.h>
#include <string.h>

typedef struct calib {
    int id;
    int bn; /* the batch norm folded into the node, or -1 */
    float in_lo, in_hi, out_lo, out_hi;
    int relu;
    int add;          /* an add: in_* is input 0's range, b_* input 1's */
    float b_lo, b_hi;
} calib;

/* The batch norm that alone reads node id's output, with one channel per output channel of
 * its weight, or -1: folded into the node at quantisation. */
static int bn_to_fold(const nerve_graph *g, int id)
{
    int r = graph_sole_reader(g, id);
    if (r < 0)
        return -1;
    const node *b = &g->nodes[r], *n = &g->nodes[id], *w = &g->nodes[n->in[1]];
    if (!b->op || strcmp(b->op->name, "batchnorm") || b->n_in != 5 || b->ndim < 2 ||
        b->dims[1] != w->dims[0] || (int)node_numel(&g->nodes[b->in[1]]) != w->dims[0])
        return -1;
    return r;
}

/* 1 when node id's only reader is a plain ReLU. */
static int feeds_relu_only(const nerve_graph *g, int id)
{
    int readers = 0, relu = 0;
    for (int i = id + 1; i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == id) {
                readers++;
                relu = (n->flags & OP_PLAIN_RELU) != 0;
            }
    }
    return readers == 1 && relu;
}

static void range_of(const float *x, size_t n, float *lo, float *hi)
{
    for (size_t i = 0; i < n; i++) {
        *lo = x[i] < *lo ? x[i] : *lo;
        *hi = x[i] > *hi ? x[i] : *hi;
    }
}

/* Scale and zero point of u8 values covering [lo, hi] (widened to include 0). */
static void u8_params(float lo, float hi, float *scale, int *zero)
{
    lo = lo < 0 ? lo : 0;
    hi = hi > 0 ? hi : 0;
    double s = ((double)hi - lo) / 255.0;
    if (!(s > 0) || !isfinite(s)) {
        *scale = 1.0f;
        *zero = 0;
        return;
    }
    *scale = (float)s;
    long z = lround(-lo / s);
    *zero = (int)(z < 0 ? 0 : z > 255 ? 255 : z);
}

static int calibrate(nerve_model *m, const nerve_dataset *d, int batches, calib *c, int nc,
                     int *samples)
{
    nerve_graph *g = m->g;
    int B = nerve_graph_batch(g), input = nerve_model_input(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t sample = nerve_shape_numel(nd - 1, dims + 1);
    if ((size_t)d->n > 0 && d->x == NULL)
        return nerve_set_error(NERVE_ERR_ARG, "quantize: the calibration data has no inputs");
    int was_training = nerve_graph_training(g), st = NERVE_OK;
    nerve_graph_set_training(g, 0);
    *samples = 0;
    for (int b = 0; b < batches && st == NERVE_OK; b++) {
        int start = b * B, n = d->n - start < B ? d->n - start : B;
        if (n <= 0)
            break;
        if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
            break;
        memcpy(nerve_value(g, input).data, d->x + (size_t)start * sample,
               (size_t)n * sample * sizeof(float));
        for (int i = 0; i < nc && st == NERVE_OK; i++) {
            node *q = &g->nodes[c[i].id];
            if (c[i].add) { /* each input read right after its own forward (an add may run
                             * in place over input 0) */
                const node *a = &g->nodes[q->in[0]], *bb = &g->nodes[q->in[1]];
                if ((st = nerve_forward(g, q->in[0])) != NERVE_OK)
                    break;
                range_of(a->value, node_numel(a), &c[i].in_lo, &c[i].in_hi);
                if ((st = nerve_forward(g, q->in[1])) != NERVE_OK)
                    break;
                range_of(bb->value, node_numel(bb), &c[i].b_lo, &c[i].b_hi);
                if ((st = nerve_forward(g, c[i].id)) != NERVE_OK)
                    break;
                range_of(q->value, node_numel(q), &c[i].out_lo, &c[i].out_hi);
                continue;
            }
            if ((st = nerve_forward(g, c[i].id)) != NERVE_OK)
                break;
            const node *x = &g->nodes[q->in[0]];
            range_of(x->value, node_numel(x), &c[i].in_lo, &c[i].in_hi);
            if (c[i].bn >= 0) { /* the folded node's output is the batch norm's */
                if ((st = nerve_forward(g, c[i].bn)) != NERVE_OK)
                    break;
                q = &g->nodes[c[i].bn];
            }
            range_of(q->value, node_numel(q), &c[i].out_lo, &c[i].out_hi);
        }
        *samples += n;
    }
    nerve_graph_set_batch(g, g->max_batch);
    nerve_graph_set_training(g, was_training);
    for (int i = 0; i < nc && st == NERVE_OK; i++)
        if (!isfinite(c[i].in_lo) || !isfinite(c[i].in_hi) || !isfinite(c[i].out_lo) ||
            !isfinite(c[i].out_hi) || (c[i].add && (!isfinite(c[i].b_lo) || !isfinite(c[i].b_hi))))
            st = nerve_set_error(NERVE_ERR_ARG, "quantize: node '%s' saw non-finite values in "
                                 "calibration", g->nodes[c[i].id].name);
    return st;
}

/* Folds batch norm b (evaluation form: y = x * s + t, s = gamma / sqrt(var + eps) and
 * t = beta - mean * s, as its forward computes them) into node n: the weights w * s (into wf),
 * the bias b * s + t (into bias). */
static void fold_bn(nerve_graph *g, const node *n, const node *b, float *wf, float *bias)
{
    const node *wn = &g->nodes[n->in[1]];
    int N = wn->dims[0];
    size_t K = node_numel(wn) / (size_t)N;
    const float *gamma = g->nodes[b->in[1]].value, *beta = g->nodes[b->in[2]].value,
                *mean = g->nodes[b->in[3]].value, *var = g->nodes[b->in[4]].value;
    const float *nb = n->n_in == 3 ? g->nodes[n->in[2]].value : NULL;
    for (int o = 0; o < N; o++) {
        float istd = 1.0f / sqrtf(var[o] + b->attr.batchnorm.eps);
        float s = gamma[o] * istd, t = beta[o] - mean[o] * s;
        for (size_t k = 0; k < K; k++)
            wf[(size_t)o * K + k] = wn->value[(size_t)o * K + k] * s;
        bias[o] = nb ? nb[o] * s + t : t;
    }
}

/* Makes folded batch norm b the identity (op_bn_identity): gamma 1, beta 0, mean 0 and a
 * variance whose 1 / sqrt(var + eps) is exactly 1. */
static void bn_to_identity(nerve_graph *g, const node *b)
{
    int C = (int)node_numel(&g->nodes[b->in[1]]);
    float v = op_bn_identity_var(b->attr.batchnorm.eps);
    for (int c = 0; c < C; c++) {
        g->nodes[b->in[1]].value[c] = 1.0f;
        g->nodes[b->in[2]].value[c] = 0.0f;
        g->nodes[b->in[3]].value[c] = 0.0f;
        g->nodes[b->in[4]].value[c] = v;
    }
}

/* Quantises node c->id's weights (with its batch norm folded in, if any) and switches it
 * to int8. */
static int quantize_node(nerve_graph *g, const calib *c)
{
    node *n = &g->nodes[c->id], *wn = &g->nodes[n->in[1]];
    int N = wn->dims[0];
    size_t numel = node_numel(wn), K = numel / (size_t)N;
    int8_t *w = nerve_xmalloc(numel);
    float *scale = nerve_xmalloc((size_t)N * sizeof(float));
    float *wf = c->bn >= 0 ? nerve_xmalloc(numel * sizeof(float)) : NULL;
    float *bias = c->bn >= 0 ? nerve_xmalloc((size_t)N * sizeof(float)) : NULL;
    if (!w || !scale || (c->bn >= 0 && (!wf || !bias))) {
        nerve_xfree(w);
        nerve_xfree(scale);
        nerve_xfree(wf);
        nerve_xfree(bias);
        return NERVE_ERR_NOMEM;
    }
    if (c->bn >= 0)
        fold_bn(g, n, &g->nodes[c->bn], wf, bias);
    const float *wsrc = wf ? wf : wn->value;
    for (int o = 0; o < N; o++) {
        const float *row = wsrc + (size_t)o * K;
        float mx = 0;
        for (size_t k = 0; k < K; k++)
            mx = fabsf(row[k]) > mx ? fabsf(row[k]) : mx;
        scale[o] = mx > 0 && isfinite(mx) ? mx / 127.0f : 1.0f;
        for (size_t k = 0; k < K; k++) {
            long v = lroundf(row[k] / scale[o]);
            w[(size_t)o * K + k] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
    }
    op_quant_params p = {w, scale, 0, 0, 0, 0, c->relu, bias};
    u8_params(c->in_lo, c->in_hi, &p.in_scale, &p.in_zero);
    u8_params(c->relu ? 0.0f : c->out_lo, c->out_hi, &p.out_scale, &p.out_zero);
    int st = op_quantize_node(g, c->id, &p);
    for (size_t i = 0; st == NERVE_OK && i < numel; i++)
        wn->value[i] = scale[i / K] * (float)w[i];
    if (st == NERVE_OK && c->bn >= 0)
        bn_to_identity(g, &g->nodes[c->bn]);
    nerve_xfree(w);
    nerve_xfree(scale);
    nerve_xfree(wf);
    nerve_xfree(bias);
    return st;
}

/* An add node's int8 form (op_quantize_add) with its calibrated ranges. */
static int quantize_add(nerve_graph *g, const calib *c)
{
    op_quant_add_params p = {0, 0, 0, 0, 0, 0, c->relu};
    u8_params(c->in_lo, c->in_hi, &p.a_scale, &p.a_zero);
    u8_params(c->b_lo, c->b_hi, &p.b_scale, &p.b_zero);
    u8_params(c->relu ? 0.0f : c->out_lo, c->out_hi, &p.out_scale, &p.out_zero);
    return op_quantize_add(g, c->id, &p);
}

/* 1 when node id's value comes from an int8 node (mark[] says which will be) through
 * nothing but ReLUs, batch norms (folded ones become the identity) and views: where the
 * bytes of a link can reach. */
static int from_int8(const nerve_graph *g, int id, const unsigned char *mark)
{
    for (;;) {
        const node *n = &g->nodes[id];
        if (mark[id])
            return 1;
        if (!n->op || n->kind != NERVE_NODE_OP || n->n_in < 1)
            return 0;
        if (!(n->flags & (OP_PLAIN_RELU | OP_ALIAS_INPUT)) && strcmp(n->op->name, "batchnorm"))
            return 0;
        id = n->in[0];
    }
}

int nerve_model_quantize(nerve_model *m, const nerve_dataset *calib_set, int batches,
                         nerve_quantize_info *info)
{
    if (!m || !calib_set || batches < 1)
        return nerve_set_error(NERVE_ERR_ARG, "quantize: needs a model, data and at least one "
                               "calibration batch");
    if (nerve_model_quantized(m))
        return nerve_set_error(NERVE_ERR_STATE, "quantize: the model is int8 already");
    if (calib_set->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "quantize: the calibration data is empty");
    nerve_graph *g = m->g;
    int st = g->compiled ? NERVE_OK : nerve_model_compile(m, 0);
    if (st)
        return st;
    calib *c = nerve_xcalloc((size_t)g->n_nodes + 1, sizeof *c);
    if (!c)
        return NERVE_ERR_NOMEM;
    unsigned char *mark = nerve_xcalloc((size_t)g->n_nodes + 1, 1);
    if (!mark) {
        nerve_xfree(c);
        return NERVE_ERR_NOMEM;
    }
    int nc = 0, skipped = 0, samples = 0, folded = 0, adds = 0;
    for (int id = 0; id < g->n_nodes; id++) {
        const node *n = &g->nodes[id];
        if (!n->op)
            continue;
        if (op_quant_addable(g, n) && from_int8(g, n->in[0], mark) &&
            from_int8(g, n->in[1], mark)) {
            /* a residual add between int8 layers: int8 too, so that bytes flow through it */
            c[nc] = (calib){id, -1, INFINITY, -INFINITY, INFINITY, -INFINITY,
                            feeds_relu_only(g, id), 1, INFINITY, -INFINITY};
            mark[id] = 1;
            adds++;
            nc++;
        } else if (op_quantizable(g, n)) {
            mark[id] = 1;
            int bn = bn_to_fold(g, id);
            c[nc] = (calib){id, bn, INFINITY, -INFINITY, INFINITY, -INFINITY,
                            feeds_relu_only(g, bn >= 0 ? bn : id), 0, 0, 0};
            folded += bn >= 0;
            nc++;
        } else if (!strcmp(n->op->name, "conv")) {
            skipped++;
        }
    }
    if (nc == 0)
        st = nerve_set_error(NERVE_ERR_ARG, "quantize: the model has no dense or conv node");
    if (st == NERVE_OK)
        st = calibrate(m, calib_set, batches, c, nc, &samples);
    for (int i = 0; i < nc && st == NERVE_OK; i++)
        st = c[i].add ? quantize_add(g, &c[i]) : quantize_node(g, &c[i]);
    nerve_xfree(c);
    nerve_xfree(mark);
    if (st == NERVE_OK && info) {
        info->nodes = nc - adds;
        info->adds = adds;
        info->skipped = skipped;
        info->samples = samples;
        info->folded = folded;
    }
    return st;
}
