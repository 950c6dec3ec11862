/* darknet's YOLO v3 ([yolo]) and YOLO v2 ([region]) heads, docs/detection.md.
 *
 *   yolo       x [N, n*(coords + 1 + classes), H, W] -> y, the same shape
 *   yolo_loss  x (the raw input of yolo), anchors [total, 2] (pixels of the network's input
 *              for [yolo], cells of the grid for [region]), target [N, max_boxes*5]
 *              -> a scalar
 *
 * Layout (darknet's): anchor a's block of (coords + 1 + classes) planes of H x W; planes 0..3
 * the box (x, y offsets in the cell, w, h as log-scales of the anchor), plane `coords` the
 * objectness, then the class scores. yolo applies darknet's activations: the logistic to x, y,
 * the objectness and ([yolo], or [region] without softmax) the class scores; [region] with
 * softmax=1 a softmax over each box's class scores. w and h stay raw.
 *
 * The loss gives darknet's gradients (its layers' deltas, negated), summed over the boxes and
 * averaged over the batch. The target holds per sample up to max_boxes truth boxes (x, y, w,
 * h relative to the image, class); the list ends at the first box of width or height 0.
 * Which prediction answers which truth, the ignore decisions and the rescore target are
 * constants of the step, as in darknet. Per prediction entry (cell, anchor):
 *
 * [yolo] (darknet's yolo_layer.c): objectness target 0, none where the predicted box overlaps
 *   some truth by more than ignore_thresh, 1 above truth_thresh; each truth's cell takes the
 *   anchor of best shape IoU among all `total` anchors and, when that anchor is one of this
 *   layer's (mask=), gets objectness 1, its class (1 for the class, 0 for the others; a second
 *   truth on the same entry only adds its class) and its box with scale 2 - w*h. Terms:
 *   x, y: scale * binary cross-entropy of the logistic against the target offset (minus its
 *   minimum), w, h: scale/2 * (raw - log(truth / anchor))², objectness and classes: binary
 *   cross-entropy of the logistic. The gradient of each is darknet's delta.
 *
 * [region] (darknet's region_layer.c, with the logistic's derivative its GPU backward applies):
 *   objectness target 0 with noobject_scale, none where the box overlaps a truth by more than
 *   thresh; each truth's cell takes the anchor whose predicted shape (bias_match=1: the
 *   anchor's shape) best matches the truth's and gets objectness 1 (rescore=1: the box's
 *   IoU) with object_scale, its box with coord_scale * (2 - w*h) and its class with
 *   class_scale. Terms: x, y: scale/2 * (logistic - t)², w, h: scale/2 * (raw - t)²,
 *   objectness scale/2 * (logistic - t)², classes: class_scale * cross-entropy of the softmax
 *   (softmax=1) or of each logistic. darknet's warm-up term (boxes pulled towards their
 *   anchors for the first 12800 images) is not applied. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* attr.yolo (src/graph/attrs.h); its flags: */
enum { F_REGION = 1, F_SOFTMAX = 2, F_RESCORE = 4, F_BIAS_MATCH = 8 };

static int entry_values(const node *n) { return n->attr.yolo.coords + 1 + n->attr.yolo.classes; }

static int yolo_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    if (x->ndim != 4)
        return op_shape_error(n, "expects [N, C, H, W], got %d dimensions", x->ndim);
    int want = n->attr.yolo.n * entry_values(n);
    if (x->dims[1] != want)
        return op_shape_error(n, "the layer before gives %d channels; %d boxes of %d classes "
                              "need num*(%d + 1 + classes) = %d (set its filters= to %d)",
                              x->dims[1], n->attr.yolo.n, n->attr.yolo.classes, n->attr.yolo.coords, want, want);
    node_copy_shape(n, x);
    return NERVE_OK;
}

static float logistic(float z) { return 1.0f / (1.0f + expf(-z)); }

/* The activations of one sample: x, y (and objectness) logistic; classes logistic or softmax. */
static void activate(const node *n, const float *x, float *y, size_t hw)
{
    int A = n->attr.yolo.n, C = n->attr.yolo.classes, coords = n->attr.yolo.coords, E = entry_values(n);
    int softmax = (n->attr.yolo.flags & F_SOFTMAX) != 0;
    for (int a = 0; a < A; a++) {
        const float *xa = x + (size_t)a * E * hw;
        float *ya = y + (size_t)a * E * hw;
        memcpy(ya, xa, (size_t)E * hw * sizeof *ya);
        for (size_t k = 0; k < 2 * hw; k++)
            ya[k] = logistic(xa[k]);
        size_t first = (size_t)coords * hw, last = softmax ? first + hw : (size_t)E * hw;
        for (size_t k = first; k < last; k++)
            ya[k] = logistic(xa[k]);
        if (!softmax)
            continue;
        const float *xc = xa + (size_t)(coords + 1) * hw;
        float *yc = ya + (size_t)(coords + 1) * hw;
        for (size_t p = 0; p < hw; p++) {
            float mx = xc[p];
            for (int c = 1; c < C; c++)
                mx = fmaxf(mx, xc[(size_t)c * hw + p]);
            double s = 0;
            for (int c = 0; c < C; c++)
                s += yc[(size_t)c * hw + p] = expf(xc[(size_t)c * hw + p] - mx);
            for (int c = 0; c < C; c++)
                yc[(size_t)c * hw + p] = (float)(yc[(size_t)c * hw + p] / s);
        }
    }
}

static void yolo_forward(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    size_t hw = (size_t)x->dims[2] * x->dims[3], per = node_numel(x) / (size_t)x->dims[0];
    for (int s = 0; s < x->dims[0]; s++)
        activate(n, x->value + s * per, n->value + s * per, hw);
}

static void yolo_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    const node *x = node_input(g, n, 0);
    size_t hw = (size_t)x->dims[2] * x->dims[3], per = node_numel(x) / (size_t)x->dims[0];
    int A = n->attr.yolo.n, C = n->attr.yolo.classes, coords = n->attr.yolo.coords, E = entry_values(n);
    int softmax = (n->attr.yolo.flags & F_SOFTMAX) != 0;
    for (int s = 0; s < x->dims[0]; s++)
        for (int a = 0; a < A; a++) {
            size_t o = s * per + (size_t)a * E * hw;
            const float *y = n->value + o, *dy = n->grad + o;
            float *d = dx + o;
            for (size_t k = 0; k < (size_t)E * hw; k++) {
                size_t plane = k / hw;
                int logi = plane < 2 || plane == (size_t)coords || (!softmax && plane > (size_t)coords);
                if (plane == 2 || plane == 3 || (plane > 3 && plane < (size_t)coords))
                    d[k] += dy[k];
                else if (logi)
                    d[k] += dy[k] * y[k] * (1 - y[k]);
            }
            if (!softmax)
                continue;
            const float *yc = y + (size_t)(coords + 1) * hw, *dyc = dy + (size_t)(coords + 1) * hw;
            float *dc = d + (size_t)(coords + 1) * hw;
            for (size_t p = 0; p < hw; p++) {
                double dot = 0;
                for (int c = 0; c < C; c++)
                    dot += (double)yc[(size_t)c * hw + p] * dyc[(size_t)c * hw + p];
                for (int c = 0; c < C; c++)
                    dc[(size_t)c * hw + p] +=
                        yc[(size_t)c * hw + p] * (float)(dyc[(size_t)c * hw + p] - dot);
            }
        }
}

static const op_def op_yolo = {"yolo", yolo_infer, NULL, yolo_forward, yolo_backward, 0};

/* ---- the loss ----------------------------------------------------------------------------- */

static int yolo_loss_infer(nerve_graph *g, node *n)
{
    int st = yolo_infer(g, n);
    if (st)
        return st;
    const node *x = node_input(g, n, 0), *an = node_input(g, n, 1), *t = node_input(g, n, 2);
    if (node_numel(an) != (size_t)n->attr.yolo.total * 2)
        return op_shape_error(n, "the anchors must hold %d values (2 per anchor)",
                              n->attr.yolo.total * 2);
    if (t->dims[0] != x->dims[0] || node_numel(t) / (size_t)t->dims[0] != (size_t)n->attr.yolo.max_boxes * 5)
        return op_shape_error(n, "the target must hold %d values per sample (5 per box)",
                              n->attr.yolo.max_boxes * 5);
    n->ndim = 0;
    return NERVE_OK;
}

/* scratch per sample: the activated output, then per entry value a target and a weight
 * (weight 0: no term) */
static size_t yolo_loss_scratch(const nerve_graph *g, const node *n)
{
    const node *x = &g->nodes[n->in[0]];
    return node_numel(x) / (size_t)x->dims[0] * 3;
}

typedef struct {
    float x, y, w, h;
} cbox;

static float cbox_iou(cbox a, cbox b)
{
    float iw = fminf(a.x + a.w / 2, b.x + b.w / 2) - fmaxf(a.x - a.w / 2, b.x - b.w / 2);
    float ih = fminf(a.y + a.h / 2, b.y + b.h / 2) - fmaxf(a.y - a.h / 2, b.y - b.h / 2);
    float inter = iw > 0 && ih > 0 ? iw * ih : 0;
    float u = a.w * a.h + b.w * b.h - inter;
    return u > 0 ? inter / u : 0;
}

typedef struct {
    const node *n;
    const float *y, *anchors;
    float *tgt, *wt; /* per entry value */
    int H, W;
    size_t hw;
} loss_ctx;

static size_t at(const loss_ctx *c, int a, int plane, int j, int i)
{
    return ((size_t)a * entry_values(c->n) + plane) * c->hw + (size_t)j * c->W + i;
}

/* the predicted box of entry (a, j, i) as a centre box relative to the image; anchor k */
static cbox pred_box(const loss_ctx *c, int a, int k, int j, int i)
{
    const node *n = c->n;
    int region = (n->attr.yolo.flags & F_REGION) != 0;
    float sw = region ? (float)c->W : (float)n->attr.yolo.net_w, sh = region ? (float)c->H : (float)n->attr.yolo.net_h;
    cbox b = {(i + c->y[at(c, a, 0, j, i)]) / c->W, (j + c->y[at(c, a, 1, j, i)]) / c->H,
              expf(c->y[at(c, a, 2, j, i)]) * c->anchors[2 * k] / sw,
              expf(c->y[at(c, a, 3, j, i)]) * c->anchors[2 * k + 1] / sh};
    return b;
}

static void set(loss_ctx *c, size_t k, float t, float w)
{
    c->tgt[k] = t;
    c->wt[k] = w;
}

/* the box terms of truth t at entry (a, j, i) with anchor k; returns the predicted box's IoU */
static float box_target(loss_ctx *c, const float *t, int a, int k, int j, int i, float scale)
{
    const node *n = c->n;
    int region = (n->attr.yolo.flags & F_REGION) != 0;
    float sw = region ? (float)c->W : (float)n->attr.yolo.net_w, sh = region ? (float)c->H : (float)n->attr.yolo.net_h;
    cbox truth = {t[0], t[1], t[2], t[3]};
    float iou = cbox_iou(pred_box(c, a, k, j, i), truth);
    set(c, at(c, a, 0, j, i), t[0] * c->W - i, scale);
    set(c, at(c, a, 1, j, i), t[1] * c->H - j, scale);
    set(c, at(c, a, 2, j, i), logf(t[2] * sw / c->anchors[2 * k]), scale);
    set(c, at(c, a, 3, j, i), logf(t[3] * sh / c->anchors[2 * k + 1]), scale);
    return iou;
}

/* the class terms: darknet's delta_*_class (a second truth on an entry of logistic classes
 * only adds its class) */
static void class_target(loss_ctx *c, int cls, int a, int j, int i, float scale, int only_add)
{
    const node *n = c->n;
    int C = n->attr.yolo.classes, coords = n->attr.yolo.coords;
    if (only_add && c->wt[at(c, a, coords + 1, j, i)] > 0) {
        set(c, at(c, a, coords + 1 + cls, j, i), 1.0f, scale);
        return;
    }
    for (int k = 0; k < C; k++)
        set(c, at(c, a, coords + 1 + k, j, i), k == cls ? 1.0f : 0.0f, scale);
}

/* Fills the targets and weights of one sample. */
static void sample_targets(loss_ctx *c, const float *truths)
{
    const node *n = c->n;
    int flags = n->attr.yolo.flags, region = (flags & F_REGION) != 0, A = n->attr.yolo.n;
    int total = n->attr.yolo.total, coords = n->attr.yolo.coords, C = n->attr.yolo.classes;
    size_t per = (size_t)A * entry_values(n) * c->hw;
    memset(c->tgt, 0, per * sizeof *c->tgt);
    memset(c->wt, 0, per * sizeof *c->wt);
    int nt = 0;
    while (nt < n->attr.yolo.max_boxes && truths[nt * 5 + 2] > 0 && truths[nt * 5 + 3] > 0)
        nt++;
    float thresh = n->attr.yolo.thresh, truth_thresh = n->attr.yolo.truth_thresh;
    float obj_s = region ? n->attr.yolo.object_scale : 1, noobj_s = region ? n->attr.yolo.noobject_scale : 1;
    float class_s = region ? n->attr.yolo.class_scale : 1, coord_s = region ? n->attr.yolo.coord_scale : 1;
    for (int j = 0; j < c->H; j++)
        for (int i = 0; i < c->W; i++)
            for (int a = 0; a < A; a++) {
                int k = region ? a : n->attr.yolo.mask[a];
                cbox p = pred_box(c, a, k, j, i);
                float best = 0;
                int best_t = 0;
                for (int t = 0; t < nt; t++) {
                    const float *tb = truths + t * 5;
                    float o = cbox_iou(p, (cbox){tb[0], tb[1], tb[2], tb[3]});
                    if (o > best)
                        best = o, best_t = t;
                }
                size_t obj = at(c, a, coords, j, i);
                set(c, obj, 0.0f, noobj_s);
                if (best > thresh)
                    set(c, obj, 0.0f, 0.0f);
                if (!region && best > truth_thresh) {
                    const float *tb = truths + best_t * 5;
                    set(c, obj, 1.0f, 1.0f);
                    class_target(c, (int)tb[4], a, j, i, 1.0f, 1);
                    box_target(c, tb, a, k, j, i, 2 - tb[2] * tb[3]);
                }
            }
    for (int t = 0; t < nt; t++) {
        const float *tb = truths + t * 5;
        int i = (int)(tb[0] * c->W), j = (int)(tb[1] * c->H);
        i = i < 0 ? 0 : i >= c->W ? c->W - 1 : i;
        j = j < 0 ? 0 : j >= c->H ? c->H - 1 : j;
        cbox shift = {0, 0, tb[2], tb[3]};
        float best = 0;
        int best_n = 0, cands = region ? A : total;
        for (int k = 0; k < cands; k++) {
            cbox p = {0, 0, 0, 0};
            if (region && !(flags & F_BIAS_MATCH)) {
                p = pred_box(c, k, k, j, i);
                p.x = p.y = 0;
            } else {
                p.w = c->anchors[2 * k] / (region ? (float)c->W : (float)n->attr.yolo.net_w);
                p.h = c->anchors[2 * k + 1] / (region ? (float)c->H : (float)n->attr.yolo.net_h);
            }
            float o = cbox_iou(p, shift);
            if (o > best)
                best = o, best_n = k;
        }
        int a = best_n;
        if (!region) {
            a = -1;
            for (int m = 0; m < A; m++)
                if (n->attr.yolo.mask[m] == best_n)
                    a = m;
            if (a < 0)
                continue;
        }
        int cls = (int)tb[4];
        if (cls < 0 || cls >= C)
            continue; /* the feed checks classes; a hand-made target is kept in range */
        float iou = box_target(c, tb, a, best_n, j, i, coord_s * (2 - tb[2] * tb[3]));
        set(c, at(c, a, coords, j, i), (flags & F_RESCORE) ? iou : 1.0f, obj_s);
        class_target(c, cls, a, j, i, class_s, !(flags & F_SOFTMAX));
    }
}

/* softplus(z) - t*z minus its minimum over z: the cross-entropy of logistic(z) against t,
 * zero at the target */
static double bce(float z, float t)
{
    double sp = z > 0 ? z + log1p(exp(-(double)z)) : log1p(exp((double)z));
    double h = 0;
    if (t > 0 && t < 1)
        h = -(t * log((double)t) + (1 - t) * log1p(-(double)t));
    return sp - (double)t * z - h;
}

/* One sample's loss from its raw input x, activated y and targets; with dx, adds
 * scale * dL/dx. */
static double sample_loss(const loss_ctx *c, const float *x, float *dx, float scale)
{
    const node *n = c->n;
    int flags = n->attr.yolo.flags, region = (flags & F_REGION) != 0, softmax = (flags & F_SOFTMAX) != 0;
    int A = n->attr.yolo.n, C = n->attr.yolo.classes, coords = n->attr.yolo.coords, E = entry_values(n);
    double L = 0;
    for (int a = 0; a < A; a++)
        for (int plane = 0; plane < E; plane++) {
            if (softmax && plane > coords)
                break;
            for (size_t p = 0; p < c->hw; p++) {
                size_t k = ((size_t)a * E + plane) * c->hw + p;
                float w = c->wt[k], t = c->tgt[k];
                if (w == 0)
                    continue;
                float d;
                if (plane == 2 || plane == 3) {
                    d = x[k] - t;
                    L += 0.5 * w * d * d;
                } else if (region && plane <= coords) {
                    float yv = c->y[k];
                    L += 0.5 * w * (yv - t) * (yv - t);
                    d = (yv - t) * yv * (1 - yv);
                } else {
                    L += w * bce(x[k], t);
                    d = c->y[k] - t;
                }
                if (dx)
                    dx[k] += scale * w * d;
            }
        }
    if (!softmax)
        return L;
    for (int a = 0; a < A; a++)
        for (size_t p = 0; p < c->hw; p++) {
            size_t k0 = ((size_t)a * E + coords + 1) * c->hw + p;
            float w = c->wt[k0];
            if (w == 0)
                continue;
            for (int cl = 0; cl < C; cl++) {
                size_t k = k0 + (size_t)cl * c->hw;
                float t = c->tgt[k], yv = c->y[k];
                if (t > 0)
                    L -= w * t * log(fmax(yv, 1e-30));
                if (dx)
                    dx[k] += scale * w * (yv - t);
            }
        }
    return L;
}

static void yolo_loss_run(nerve_graph *g, node *n, float *dx, float scale)
{
    const node *x = node_input(g, n, 0), *an = node_input(g, n, 1), *t = node_input(g, n, 2);
    int N = x->dims[0];
    size_t per = node_numel(x) / (size_t)N, tper = node_numel(t) / (size_t)N;
    loss_ctx c = {n, n->scratch, an->value, n->scratch + per, n->scratch + 2 * per,
                  x->dims[2], x->dims[3], (size_t)x->dims[2] * x->dims[3]};
    double L = 0;
    for (int s = 0; s < N; s++) {
        activate(n, x->value + s * per, n->scratch, c.hw);
        sample_targets(&c, t->value + s * tper);
        L += sample_loss(&c, x->value + s * per, dx ? dx + s * per : NULL, scale);
    }
    if (!dx)
        n->value[0] = (float)(L / N);
}

static void yolo_loss_forward(nerve_graph *g, node *n) { yolo_loss_run(g, n, NULL, 0); }

static void yolo_loss_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        yolo_loss_run(g, n, dx, n->grad[0] / (float)node_input(g, n, 0)->dims[0]);
}

static const op_def op_yolo_loss = {"yolo_loss", yolo_loss_infer, yolo_loss_scratch,
                                    yolo_loss_forward, yolo_loss_backward, 0};

int nerve_yolo_check(const nerve_yolo_config *c)
{
    if (!c || c->classes < 1 || c->classes > 100000 || c->n < 1 || c->total < 1 ||
        c->total > NERVE_YOLO_MAX_ANCHORS || c->coords != 4 || c->max_boxes < 1 ||
        c->max_boxes > 10000 || (c->region && c->n != c->total) ||
        (!c->region && c->n > NERVE_MAX_DIMS) || (!c->region && (c->net_w < 1 || c->net_h < 1)))
        return nerve_set_error(NERVE_ERR_ARG, "YOLO head: classes %d (1..100000), num %d and "
                               "total %d anchors (1..%d; [yolo]: at most %d in mask=, [region]: "
                               "all), coords %d (4), max %d boxes (1..10000)",
                               c ? c->classes : 0, c ? c->n : 0, c ? c->total : 0,
                               NERVE_YOLO_MAX_ANCHORS, NERVE_MAX_DIMS, c ? c->coords : 0,
                               c ? c->max_boxes : 0);
    for (int a = 0; a < c->n && !c->region; a++)
        if (c->mask[a] < 0 || c->mask[a] >= c->total)
            return nerve_set_error(NERVE_ERR_ARG, "YOLO head: mask entry %d is %d, not one of the "
                                   "%d anchors (0..%d)", a, c->mask[a], c->total, c->total - 1);
    for (int k = 0; k < 2 * c->total; k++)
        if (!(c->anchors[k] > 0) || !isfinite(c->anchors[k]))
            return nerve_set_error(NERVE_ERR_ARG, "YOLO head: anchor value %d is %g; anchors "
                                   "must be finite and > 0", k, c->anchors[k]);
    const float s[6] = {c->ignore_thresh, c->truth_thresh, c->object_scale, c->noobject_scale,
                        c->class_scale, c->coord_scale};
    for (int k = 0; k < 6; k++)
        if (!(s[k] >= 0) || !isfinite(s[k]))
            return nerve_set_error(NERVE_ERR_ARG, "YOLO head: thresholds and loss scales must be "
                                   "finite and >= 0");
    return NERVE_OK;
}

static node_attr yolo_attr(const nerve_yolo_config *c)
{
    node_attr a;
    memset(&a, 0, sizeof a);
    a.yolo.flags = (c->region ? F_REGION : 0) | (c->softmax ? F_SOFTMAX : 0) |
             (c->rescore ? F_RESCORE : 0) | (c->bias_match ? F_BIAS_MATCH : 0);
    a.yolo.classes = c->classes, a.yolo.n = c->n, a.yolo.total = c->total, a.yolo.max_boxes = c->max_boxes;
    a.yolo.net_w = c->net_w, a.yolo.net_h = c->net_h, a.yolo.coords = c->coords;
    for (int k = 0; k < c->n && !c->region; k++)
        a.yolo.mask[k] = c->mask[k];
    a.yolo.thresh = c->region ? c->thresh : c->ignore_thresh, a.yolo.truth_thresh = c->truth_thresh;
    a.yolo.object_scale = c->object_scale, a.yolo.noobject_scale = c->noobject_scale, a.yolo.class_scale = c->class_scale;
    a.yolo.coord_scale = c->coord_scale;
    return a;
}

int nerve_yolo(nerve_graph *g, int x, const nerve_yolo_config *c)
{
    int st = nerve_yolo_check(c);
    if (st)
        return st;
    node_attr a = yolo_attr(c);
    return graph_add_op(g, &op_yolo, 1, (int[]){x}, &a, c->region ? "region" : "yolo");
}

int nerve_yolo_loss(nerve_graph *g, int x, int anchors, int target, const nerve_yolo_config *c)
{
    int st = nerve_yolo_check(c);
    if (st)
        return st;
    node_attr a = yolo_attr(c);
    return graph_add_op(g, &op_yolo_loss, 3, (int[]){x, anchors, target}, &a, "yolo_loss");
}

const op_def *const ops_yolo[] = {&op_yolo, &op_yolo_loss, NULL};
