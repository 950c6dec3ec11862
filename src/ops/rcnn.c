/* Faster R-CNN's region proposal network and head losses (docs/detection.md; the contract
 * is in include/nerve.h at nerve_frcnn_config).
 *
 *   rpn_proposals   x [N, 5A, H, W], anchors [H*W*A, 4], target [N, max_boxes*5]
 *                   -> rois [N, rois, 4] (no gradient)
 *   rpn_loss        the same inputs -> a scalar
 *   fast_rcnn_loss  scores [N, rois, classes + 1 + 4*classes], rois [N, rois, 4], target
 *                   -> a scalar
 *
 * Which anchor or RoI answers which truth (and the random samples of both) is decided in
 * forward and kept in the scratch for backward: a constant of the step, as the [yolo] loss's
 * assignment. The boxes of a target are corners in the input's pixels, then the class; a row
 * of zero width or height is no box, and a class outside 0..classes-1 is left out (the data
 * feed refuses such labels before they get here). */
#include "ops.h"

#include <math.h>
#include <string.h>

#define C_ (n->attr.rcnn.c)

static int box_empty(const float *b) { return !(b[2] > b[0]) || !(b[3] > b[1]); }

/* The usable truths of one sample's target, compacted into tb [.., 4] with their classes. */
static int gather_truths(const nerve_frcnn_config *c, const float *t, float *tb, int *cls)
{
    int nt = 0;
    for (int k = 0; k < c->max_boxes; k++) {
        const float *r = t + (size_t)k * 5;
        if (box_empty(r) || !isfinite(r[0]) || !isfinite(r[1]) || !isfinite(r[2]) ||
            !isfinite(r[3]) || !(r[4] >= 0 && r[4] < (float)c->classes) || r[4] != floorf(r[4]))
            continue;
        memcpy(tb + (size_t)nt * 4, r, 4 * sizeof *tb);
        if (cls)
            cls[nt] = (int)r[4];
        nt++;
    }
    return nt;
}

/* x, anchors and target of the RPN's operators: A anchors per cell */
static int rpn_check(nerve_graph *g, node *n, int *A)
{
    const node *x = node_input(g, n, 0), *an = node_input(g, n, 1), *t = node_input(g, n, 2);
    if (x->ndim != 4 || x->dims[1] % 5)
        return op_shape_error(n, "expects [N, 5A, H, W] (A objectness planes, then 4 offset "
                              "planes per anchor)");
    *A = x->dims[1] / 5;
    size_t want = (size_t)x->dims[2] * x->dims[3] * (size_t)*A * 4;
    if (node_numel(an) != want)
        return op_shape_error(n, "the anchors must hold H*W*A*4 = %zu values, not %zu", want,
                              node_numel(an));
    if (t->dims[0] != x->dims[0] || node_numel(t) / (size_t)t->dims[0] != (size_t)C_.max_boxes * 5)
        return op_shape_error(n, "the target must hold %d values per sample (5 per box)",
                              C_.max_boxes * 5);
    return NERVE_OK;
}

static size_t n_anchors(const nerve_graph *g, const node *n)
{
    const node *an = &g->nodes[n->in[1]];
    return node_numel(an) / 4;
}

/* ---- proposals ------------------------------------------------------------------------- */

static int proposals_infer(nerve_graph *g, node *n)
{
    int A, st = rpn_check(g, n, &A);
    if (st)
        return st;
    n->ndim = 3;
    n->dims[0] = node_input(g, n, 0)->dims[0];
    n->dims[1] = C_.rois;
    n->dims[2] = 4;
    return NERVE_OK;
}

static size_t proposals_scratch(const nerve_graph *g, const node *n)
{
    size_t na = n_anchors(g, n), cand = (size_t)C_.post_nms + (size_t)C_.max_boxes;
    return na * 6 + (size_t)C_.post_nms + (size_t)C_.max_boxes * 4 + cand * 5;
}

/* idx[a] before idx[b]: higher score, then lower index */
static int before(const float *s, int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); }

static void sift(int *idx, const float *s, int i, int n)
{
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(s, idx[c], idx[c + 1]))
            c++;
        if (!before(s, idx[i], idx[c]))
            return;
        int t = idx[i];
        idx[i] = idx[c];
        idx[c] = t;
        i = c;
    }
}

/* idx[0..n) = 0..n-1 in decreasing score (heap sort: no allocation) */
static void sort_by_score(int *idx, const float *s, int n)
{
    for (int i = 0; i < n; i++)
        idx[i] = i;
    for (int i = n / 2 - 1; i >= 0; i--)
        sift(idx, s, i, n);
    for (int end = n - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift(idx, s, 0, end);
    }
}

static void proposals_forward(nerve_graph *g, node *n)
{
    const nerve_frcnn_config *c = &C_;
    const node *x = node_input(g, n, 0), *an = node_input(g, n, 1), *t = node_input(g, n, 2);
    int N = x->dims[0], A = x->dims[1] / 5, R = c->rois;
    size_t hw = (size_t)x->dims[2] * x->dims[3], na = n_anchors(g, n);
    size_t cand_max = (size_t)c->post_nms + (size_t)c->max_boxes;
    float *sc = n->scratch, *bx = sc + na;
    int *idx = (int *)(bx + na * 4), *kept = idx + na;
    float *tb = (float *)(kept + c->post_nms), *cand = tb + (size_t)c->max_boxes * 4;
    int *cm = (int *)(cand + cand_max * 4);
    int training = nerve_graph_training(g);
    nerve_rng fixed, *rng = training ? nerve_graph_rng(g) : &fixed;
    for (int s = 0; s < N; s++) {
        const float *xs = x->value + (size_t)s * 5 * A * hw;
        int nc = 0;
        for (size_t p = 0; p < hw; p++)
            for (int a = 0; a < A; a++) {
                float z = xs[(size_t)a * hw + p], d[4], *b = bx + (size_t)nc * 4;
                for (int k = 0; k < 4; k++)
                    d[k] = xs[((size_t)A + 4 * (size_t)a + k) * hw + p];
                nerve_box_decode(an->value + (p * A + a) * 4, d, NULL, b);
                b[0] = fminf(fmaxf(b[0], 0), (float)c->net_w), b[2] = fminf(fmaxf(b[2], 0), (float)c->net_w);
                b[1] = fminf(fmaxf(b[1], 0), (float)c->net_h), b[3] = fminf(fmaxf(b[3], 0), (float)c->net_h);
                float w = b[2] - b[0], h = b[3] - b[1];
                if (!isfinite(z) || !(w > 0) || !(h > 0) || w < c->min_size || h < c->min_size)
                    continue;
                sc[nc++] = z;
            }
        sort_by_score(idx, sc, nc);
        int top = nc < c->pre_nms ? nc : c->pre_nms, nk = 0;
        for (int r = 0; r < top && nk < c->post_nms; r++) {
            const float *b = bx + (size_t)idx[r] * 4;
            int drop = 0;
            for (int k = 0; k < nk && !drop; k++)
                drop = nerve_box_iou(bx + (size_t)kept[k] * 4, b) > c->rpn_nms;
            if (!drop)
                kept[nk++] = idx[r];
        }
        float *out = n->value + (size_t)s * R * 4;
        memset(out, 0, (size_t)R * 4 * sizeof *out);
        if (!training) {
            for (int k = 0; k < nk && k < R; k++)
                memcpy(out + (size_t)k * 4, bx + (size_t)kept[k] * 4, 4 * sizeof *out);
            continue;
        }
        /* the RoI minibatch: proposals and truths, foreground at IoU >= fg_iou, background
         * at IoU in [bg_iou, fg_iou) */
        int nt = gather_truths(c, t->value + (size_t)s * c->max_boxes * 5, tb, NULL);
        int ncand = 0;
        for (int k = 0; k < nk; k++)
            memcpy(cand + (size_t)ncand++ * 4, bx + (size_t)kept[k] * 4, 4 * sizeof *cand);
        memcpy(cand + (size_t)ncand * 4, tb, (size_t)nt * 4 * sizeof *cand);
        ncand += nt;
        nerve_match_boxes(cand, ncand, tb, nt, c->fg_iou, c->bg_iou, 0, cm, NULL);
        for (int k = 0; k < ncand; k++) /* below bg_iou: neither; between: background */
            cm[k] = cm[k] == -1 ? -3 : cm[k] == -2 ? -1 : cm[k];
        nerve_sample_matches(cm, ncand, R, c->fg_fraction, rng, NULL, NULL);
        int o = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < ncand; k++)
                if (pass == 0 ? cm[k] >= 0 : cm[k] == -1)
                    memcpy(out + (size_t)o++ * 4, cand + (size_t)k * 4, 4 * sizeof *out);
    }
    (void)fixed;
}

static const op_def op_rpn_proposals = {"rpn_proposals", proposals_infer, proposals_scratch,
                                        proposals_forward, NULL, 0};

/* ---- the RPN's losses ----------------------------------------------------------------------- */

static int rpn_loss_infer(nerve_graph *g, node *n)
{
    int A, st = rpn_check(g, n, &A);
    if (st)
        return st;
    n->ndim = 0;
    return NERVE_OK;
}

/* scratch: the number sampled, then each sample's anchor labels, then one sample's truths */
static size_t rpn_loss_scratch(const nerve_graph *g, const node *n)
{
    const node *x = &g->nodes[n->in[0]];
    return 1 + (size_t)x->dims[0] * n_anchors(g, n) + (size_t)C_.max_boxes * 4;
}

static float bce_logit(float z, float y, float *grad)
{
    float p = 1.0f / (1.0f + expf(-z));
    if (grad)
        *grad = p - y;
    double sp = z > 0 ? z + log1p(exp(-(double)z)) : log1p(exp((double)z)); /* softplus */
    return (float)(sp - (double)y * z);
}

/* forward: labels, then the loss; backward (dx): the gradient times scale */
static double rpn_loss_run(nerve_graph *g, node *n, float *dx, float scale)
{
    const nerve_frcnn_config *c = &C_;
    const node *x = node_input(g, n, 0), *an = node_input(g, n, 1), *t = node_input(g, n, 2);
    int N = x->dims[0], A = x->dims[1] / 5;
    size_t hw = (size_t)x->dims[2] * x->dims[3], na = n_anchors(g, n);
    int *labels = (int *)(n->scratch + 1);
    float *tb = n->scratch + 1 + (size_t)N * na;
    if (!dx) {
        int sampled = 0;
        nerve_rng fixed, *rng = nerve_graph_training(g) ? nerve_graph_rng(g) : &fixed;
        for (int s = 0; s < N; s++) {
            if (rng == &fixed)
                nerve_rng_seed(&fixed, 0x5eed0000u + (uint64_t)s);
            int nt = gather_truths(c, t->value + (size_t)s * c->max_boxes * 5, tb, NULL), np, nn;
            int *lab = labels + (size_t)s * na;
            nerve_match_boxes(an->value, (int)na, tb, nt, c->rpn_pos_iou, c->rpn_neg_iou, 1, lab, NULL);
            nerve_sample_matches(lab, (int)na, c->rpn_batch, c->rpn_pos_fraction, rng, &np, &nn);
            sampled += np + nn;
        }
        n->scratch[0] = (float)sampled;
    }
    float S = n->scratch[0] > 0 ? n->scratch[0] : 1;
    double L = 0;
    for (int s = 0; s < N; s++) {
        gather_truths(c, t->value + (size_t)s * c->max_boxes * 5, tb, NULL);
        const int *lab = labels + (size_t)s * na;
        const float *xs = x->value + (size_t)s * 5 * A * hw;
        float *ds = dx ? dx + (size_t)s * 5 * A * hw : NULL;
        for (size_t p = 0; p < hw; p++)
            for (int a = 0; a < A; a++) {
                int m = lab[p * A + a];
                if (m < -1)
                    continue;
                float gr;
                size_t ko = (size_t)a * hw + p;
                L += bce_logit(xs[ko], m >= 0 ? 1.0f : 0.0f, &gr);
                if (ds)
                    ds[ko] += scale * gr / S;
                if (m < 0)
                    continue;
                float tt[4];
                nerve_box_encode(an->value + (p * A + a) * 4, tb + (size_t)m * 4, NULL, tt);
                for (int k = 0; k < 4; k++) {
                    size_t kd = ((size_t)A + 4 * (size_t)a + k) * hw + p;
                    L += nerve_smooth_l1(xs[kd] - tt[k], c->rpn_beta, &gr);
                    if (ds)
                        ds[kd] += scale * gr / S;
                }
            }
    }
    return L / S;
}


static void rpn_loss_forward(nerve_graph *g, node *n) { n->value[0] = (float)rpn_loss_run(g, n, NULL, 0); }

static void rpn_loss_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        rpn_loss_run(g, n, dx, n->grad[0]);
}

static const op_def op_rpn_loss = {"rpn_loss", rpn_loss_infer, rpn_loss_scratch, rpn_loss_forward,
                                   rpn_loss_backward, 0};

/* ---- the head's losses ----------------------------------------------------------------------- */

static int head_values(const nerve_frcnn_config *c) { return c->classes + 1 + 4 * c->classes; }

static int head_loss_infer(nerve_graph *g, node *n)
{
    const node *s = node_input(g, n, 0), *r = node_input(g, n, 1), *t = node_input(g, n, 2);
    if (s->ndim != 3 || s->dims[2] != head_values(&C_))
        return op_shape_error(n, "the scores must be [N, RoIs, classes + 1 + 4*classes] = "
                              "[N, RoIs, %d]", head_values(&C_));
    if (r->ndim != 3 || r->dims[0] != s->dims[0] || r->dims[1] != s->dims[1] || r->dims[2] != 4)
        return op_shape_error(n, "the RoIs must be [N, %d, 4] for scores of %d RoIs", s->dims[1],
                              s->dims[1]);
    if (t->dims[0] != s->dims[0] || node_numel(t) / (size_t)t->dims[0] != (size_t)C_.max_boxes * 5)
        return op_shape_error(n, "the target must hold %d values per sample (5 per box)",
                              C_.max_boxes * 5);
    n->ndim = 0;
    return NERVE_OK;
}

/* scratch: the RoIs counted, each RoI's truth (-1 background, -2 empty), one sample's truths
 * and their classes */
static size_t head_loss_scratch(const nerve_graph *g, const node *n)
{
    const node *s = &g->nodes[n->in[0]];
    return 1 + (size_t)s->dims[0] * s->dims[1] + (size_t)C_.max_boxes * 5;
}

static double head_loss_run(nerve_graph *g, node *n, float *dx, float scale)
{
    const nerve_frcnn_config *c = &C_;
    const node *sn = node_input(g, n, 0), *rn = node_input(g, n, 1), *t = node_input(g, n, 2);
    int N = sn->dims[0], R = sn->dims[1], K = c->classes, D = head_values(c);
    int *labels = (int *)(n->scratch + 1);
    float *tb = n->scratch + 1 + (size_t)N * R;
    int *cls = (int *)(tb + (size_t)c->max_boxes * 4);
    if (!dx) {
        int counted = 0;
        for (int s = 0; s < N; s++) {
            int nt = gather_truths(c, t->value + (size_t)s * c->max_boxes * 5, tb, cls);
            int *lab = labels + (size_t)s * R;
            const float *rois = rn->value + (size_t)s * R * 4;
            nerve_match_boxes(rois, R, tb, nt, c->fg_iou, c->fg_iou, 0, lab, NULL);
            for (int r = 0; r < R; r++)
                if (box_empty(rois + (size_t)r * 4))
                    lab[r] = -2;
                else
                    counted++;
        }
        n->scratch[0] = (float)counted;
    }
    float S = n->scratch[0] > 0 ? n->scratch[0] : 1;
    double L = 0;
    for (int s = 0; s < N; s++) {
        gather_truths(c, t->value + (size_t)s * c->max_boxes * 5, tb, cls);
        for (int r = 0; r < R; r++) {
            int m = labels[(size_t)s * R + r];
            if (m < -1)
                continue;
            const float *v = sn->value + ((size_t)s * R + r) * D;
            float *d = dx ? dx + ((size_t)s * R + r) * D : NULL;
            int y = m >= 0 ? cls[m] + 1 : 0;
            float mx = v[0];
            for (int k = 1; k <= K; k++)
                mx = fmaxf(mx, v[k]);
            double z = 0;
            for (int k = 0; k <= K; k++)
                z += exp((double)(v[k] - mx));
            L += log(z) + mx - v[y];
            if (d)
                for (int k = 0; k <= K; k++)
                    d[k] += scale * (float)(exp((double)(v[k] - mx)) / z - (k == y)) / S;
            if (m < 0)
                continue;
            float tt[4], gr;
            nerve_box_encode(rn->value + ((size_t)s * R + r) * 4, tb + (size_t)m * 4, c->weights, tt);
            for (int k = 0; k < 4; k++) {
                size_t o = (size_t)K + 1 + 4 * (size_t)cls[m] + k;
                L += nerve_smooth_l1(v[o] - tt[k], c->beta, &gr);
                if (d)
                    d[o] += scale * gr / S;
            }
        }
    }
    return L / S;
}


static void head_loss_forward(nerve_graph *g, node *n) { n->value[0] = (float)head_loss_run(g, n, NULL, 0); }

static void head_loss_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        head_loss_run(g, n, dx, n->grad[0]);
}

static const op_def op_fast_rcnn_loss = {"fast_rcnn_loss", head_loss_infer, head_loss_scratch,
                                         head_loss_forward, head_loss_backward, 0};

/* ---- builders ------------------------------------------------------------------------------ */

nerve_frcnn_config nerve_frcnn_default(void)
{
    nerve_frcnn_config c;
    memset(&c, 0, sizeof c);
    c.classes = 1, c.max_boxes = 32;
    c.pre_nms = 6000, c.post_nms = 300, c.rois = 128, c.rpn_batch = 256;
    c.rpn_pos_iou = 0.7f, c.rpn_neg_iou = 0.3f, c.rpn_pos_fraction = 0.5f, c.rpn_nms = 0.7f;
    c.min_size = 0, c.rpn_beta = 1.0f / 9;
    c.fg_iou = 0.5f, c.bg_iou = 0, c.fg_fraction = 0.25f, c.beta = 1.0f / 9;
    c.weights[0] = c.weights[1] = 10, c.weights[2] = c.weights[3] = 5;
    return c;
}

int nerve_frcnn_check(const nerve_frcnn_config *c)
{
    if (!c || c->classes < 1 || c->classes > 100000 || c->net_w < 1 || c->net_h < 1 ||
        c->max_boxes < 1 || c->max_boxes > 10000 || c->pre_nms < 1 || c->post_nms < 1 ||
        c->post_nms > 100000 || c->rois < 1 || c->rois > 100000 || c->rpn_batch < 1)
        return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN: classes %d (1..100000), input %d x %d, "
                               "max %d boxes (1..10000), pre/post-NMS %d/%d proposals, %d RoIs "
                               "(1..100000), RPN batch %d (>= 1)", c ? c->classes : 0,
                               c ? c->net_w : 0, c ? c->net_h : 0, c ? c->max_boxes : 0,
                               c ? c->pre_nms : 0, c ? c->post_nms : 0, c ? c->rois : 0,
                               c ? c->rpn_batch : 0);
    const float unit[7] = {c->rpn_pos_iou, c->rpn_neg_iou, c->rpn_pos_fraction, c->rpn_nms,
                           c->fg_iou, c->bg_iou, c->fg_fraction};
    for (int k = 0; k < 7; k++)
        if (!(unit[k] >= 0 && unit[k] <= 1))
            return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN: IoU thresholds and fractions "
                                   "must be in [0, 1]");
    if (c->rpn_neg_iou > c->rpn_pos_iou || c->bg_iou > c->fg_iou)
        return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN: a negative (background) IoU bound "
                               "above the positive (foreground) one: %g > %g or %g > %g",
                               (double)c->rpn_neg_iou, (double)c->rpn_pos_iou,
                               (double)c->bg_iou, (double)c->fg_iou);
    if (!(c->rpn_beta > 0) || !(c->beta > 0) || !isfinite(c->rpn_beta) || !isfinite(c->beta) ||
        !(c->min_size >= 0) || !isfinite(c->min_size))
        return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN: smooth L1 transitions must be > 0 "
                               "and min_size >= 0");
    for (int k = 0; k < 4; k++)
        if (!(c->weights[k] > 0) || !isfinite(c->weights[k]))
            return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN: box weight %d is %g; weights "
                                   "must be finite and > 0", k, (double)c->weights[k]);
    return NERVE_OK;
}

static int add(nerve_graph *g, const op_def *op, int a, int b, int t, const nerve_frcnn_config *c,
               const char *name)
{
    int st = nerve_frcnn_check(c);
    if (st)
        return st;
    node_attr at;
    memset(&at, 0, sizeof at);
    at.rcnn.c = *c;
    return graph_add_op(g, op, 3, (int[]){a, b, t}, &at, name);
}

int nerve_rpn_proposals(nerve_graph *g, int x, int anchors, int target, const nerve_frcnn_config *c)
{
    return add(g, &op_rpn_proposals, x, anchors, target, c, "rpn_proposals");
}

int nerve_rpn_loss(nerve_graph *g, int x, int anchors, int target, const nerve_frcnn_config *c)
{
    return add(g, &op_rpn_loss, x, anchors, target, c, "rpn_loss");
}

int nerve_fast_rcnn_loss(nerve_graph *g, int scores, int rois, int target, const nerve_frcnn_config *c)
{
    return add(g, &op_fast_rcnn_loss, scores, rois, target, c, "fast_rcnn_loss");
}

const op_def *const ops_rcnn[] = {&op_rpn_proposals, &op_rpn_loss, &op_fast_rcnn_loss, NULL};
