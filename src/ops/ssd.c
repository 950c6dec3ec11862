/* SSD's default boxes and MultiBox loss (Liu et al. 2016; docs/detection.md).
 *
 *   ssd_loss  pred [N, P, 4 + 1 + classes], priors [P, 4], target [N, max_boxes*5] -> a scalar
 *
 * Per default box p of pred: the offsets t_cx, t_cy, t_w, t_h, then the raw scores of the
 * background (index 0) and of each class. priors are the default boxes as corners relative to
 * the image; the target holds per sample up to max_boxes truths (x, y, w, h relative to the
 * image, class), ending at the first of width or height 0.
 *
 * Matching (a constant of the step, from the boxes alone): each truth takes the default box of
 * highest IoU with it (the first on ties; a later truth taking the same box replaces an
 * earlier one); every other default box takes the truth of highest IoU when that IoU is >=
 * match_thresh. Matched boxes are positives of class (truth's class + 1), with offset targets
 * ((g_cx - d_cx) / (v0 d_w), (g_cy - d_cy) / (v0 d_h), log(g_w / d_w) / v1, log(g_h / d_h) /
 * v1). Hard negative mining (also a constant of the step): of the unmatched boxes, the
 * neg_pos x (positives of the image) with the highest background cross-entropy -log p_0 count
 * (equal losses: the lower index first), the others not at all.
 *
 * Loss = (sum over positives and counted negatives of the softmax cross-entropy + sum over
 * positives of smooth L1 (|d| < 1: d^2 / 2, else |d| - 1/2) of each offset minus its target)
 * / (positives in the batch); 0, with no gradient, when the batch has no positive. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nerve_ssd_priors(const nerve_ssd_head *h, float *out)
{
    if (!h || h->fh < 1 || h->fw < 1 || h->fh > 4096 || h->fw > 4096 || h->n_ratios < 0 ||
        h->n_ratios > NERVE_SSD_MAX_RATIOS || !(h->scale > 0) || !(h->next_scale > 0) ||
        !isfinite(h->scale) || !isfinite(h->next_scale))
        return nerve_set_error(NERVE_ERR_ARG, "SSD default boxes: a map of %d x %d (1..4096), "
                               "scales %g and %g (> 0), %d ratios (0..%d)", h ? h->fh : 0,
                               h ? h->fw : 0, h ? h->scale : 0, h ? h->next_scale : 0,
                               h ? h->n_ratios : 0, NERVE_SSD_MAX_RATIOS);
    for (int r = 0; r < h->n_ratios; r++)
        if (!(h->ratios[r] > 0) || !isfinite(h->ratios[r]))
            return nerve_set_error(NERVE_ERR_ARG, "SSD default boxes: ratio %d is %g, not above 0",
                                   r, h->ratios[r]);
    int per = 2 + 2 * h->n_ratios;
    if (!out)
        return h->fh * h->fw * per;
    double s = h->scale, extra = sqrt((double)h->scale * h->next_scale);
    for (int y = 0; y < h->fh; y++)
        for (int x = 0; x < h->fw; x++) {
            double cx = (x + 0.5) / h->fw, cy = (y + 0.5) / h->fh;
            double wh[2 * (2 + 2 * NERVE_SSD_MAX_RATIOS)];
            wh[0] = wh[1] = s;
            wh[2] = wh[3] = extra;
            for (int r = 0; r < h->n_ratios; r++) {
                double q = sqrt((double)h->ratios[r]);
                wh[4 + 4 * r] = s * q, wh[5 + 4 * r] = s / q;
                wh[6 + 4 * r] = s / q, wh[7 + 4 * r] = s * q;
            }
            for (int b = 0; b < per; b++, out += 4) {
                out[0] = (float)(cx - wh[2 * b] / 2), out[1] = (float)(cy - wh[2 * b + 1] / 2);
                out[2] = (float)(cx + wh[2 * b] / 2), out[3] = (float)(cy + wh[2 * b + 1] / 2);
            }
        }
    return h->fh * h->fw * per;
}

int nerve_ssd_check(const nerve_ssd_config *c)
{
    if (!c || c->classes < 1 || c->classes > 100000 || c->max_boxes < 1 || c->max_boxes > 10000 ||
        !(c->match_thresh > 0 && c->match_thresh <= 1) || !(c->neg_pos >= 0 && c->neg_pos <= 1e6) ||
        !(c->variance[0] > 0) || !(c->variance[1] > 0) || !isfinite(c->variance[0]) ||
        !isfinite(c->variance[1]))
        return nerve_set_error(NERVE_ERR_ARG, "SSD loss: classes %d (1..100000), max %d boxes "
                               "(1..10000), match threshold %g (0..1], negatives per positive %g "
                               "(0..1e6), variances %g, %g (> 0)", c ? c->classes : 0,
                               c ? c->max_boxes : 0, c ? c->match_thresh : 0, c ? c->neg_pos : 0,
                               c ? c->variance[0] : 0, c ? c->variance[1] : 0);
    return NERVE_OK;
}

static int ssd_loss_infer(nerve_graph *g, node *n)
{
    const node *p = node_input(g, n, 0), *pr = node_input(g, n, 1), *t = node_input(g, n, 2);
    int E = 5 + n->attr.ssd.classes;
    if (p->ndim != 3 || p->dims[2] != E)
        return op_shape_error(n, "expects predictions [N, boxes, %d] (4 offsets, background and "
                              "%d classes)", E, n->attr.ssd.classes);
    if (pr->ndim != 2 || pr->dims[0] != p->dims[1] || pr->dims[1] != 4)
        return op_shape_error(n, "the default boxes must be [%d, 4]", p->dims[1]);
    if (t->dims[0] != p->dims[0] ||
        node_numel(t) / (size_t)t->dims[0] != (size_t)n->attr.ssd.max_boxes * 5)
        return op_shape_error(n, "the target must hold %d values per sample (5 per box)",
                              n->attr.ssd.max_boxes * 5);
    n->ndim = 0;
    return NERVE_OK;
}

/* scratch: per default box its match (truth index, or -1), its IoU with it, its mining loss,
 * and a sorted copy of the negatives' mining losses */
static size_t ssd_loss_scratch(const nerve_graph *g, const node *n)
{
    return (size_t)g->nodes[n->in[1]].dims[0] * 4;
}

typedef struct {
    const node *n;
    const float *priors;
    int P, E;
    float *match, *iou, *mine, *sorted;
} ssd_ctx;

static int n_truths(const ssd_ctx *c, const float *t)
{
    int nt = 0;
    while (nt < c->n->attr.ssd.max_boxes && t[nt * 5 + 2] > 0 && t[nt * 5 + 3] > 0)
        nt++;
    return nt;
}

/* the offsets of truth g from default box d (corners): R-CNN's coding (nerve_box_encode)
 * divided by the variances; 0 when either box has no size */
static int encode(const float *d, const float *g, const float var[2], float t[4])
{
    if (!(d[2] > d[0] && d[3] > d[1] && g[2] > g[0] && g[3] > g[1]))
        return 0;
    const float w[4] = {1.0f / var[0], 1.0f / var[0], 1.0f / var[1], 1.0f / var[1]};
    return nerve_box_encode(d, g, w, t) == NERVE_OK;
}

/* the feed checks classes; a hand-made target's truth of another class matches nothing */
static int class_ok(const ssd_ctx *c, const float *t)
{
    return t[4] >= 0 && t[4] < (float)c->n->attr.ssd.classes && t[4] == (float)(int)t[4];
}

static void truth_corners(const float *t, float out[4])
{
    out[0] = t[0] - t[2] / 2, out[1] = t[1] - t[3] / 2;
    out[2] = t[0] + t[2] / 2, out[3] = t[1] + t[3] / 2;
}

/* Matches one sample's truths to the default boxes; returns the positives. */
static int match(ssd_ctx *c, const float *t)
{
    int nt = n_truths(c, t), npos = 0;
    for (int p = 0; p < c->P; p++)
        c->match[p] = -1, c->iou[p] = 0;
    for (int k = 0; k < nt; k++) {
        float g[4];
        if (!class_ok(c, t + k * 5))
            continue;
        truth_corners(t + k * 5, g);
        for (int p = 0; p < c->P; p++) {
            float o = nerve_box_iou(c->priors + (size_t)p * 4, g);
            if (o > c->iou[p])
                c->iou[p] = o, c->match[p] = (float)k;
        }
    }
    for (int p = 0; p < c->P; p++)
        if (c->iou[p] < c->n->attr.ssd.match_thresh)
            c->match[p] = -1;
    for (int k = 0; k < nt; k++) { /* each truth's best default box is its own */
        float g[4], best = -1;
        int bp = 0;
        if (!class_ok(c, t + k * 5))
            continue;
        truth_corners(t + k * 5, g);
        for (int p = 0; p < c->P; p++) {
            float o = nerve_box_iou(c->priors + (size_t)p * 4, g);
            if (o > best)
                best = o, bp = p;
        }
        c->match[bp] = (float)k;
    }
    for (int p = 0; p < c->P; p++)
        npos += c->match[p] >= 0;
    return npos;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* log-sum-exp of the K scores s */
static double lse(const float *s, int K)
{
    float mx = s[0];
    for (int k = 1; k < K; k++)
        mx = fmaxf(mx, s[k]);
    double z = 0;
    for (int k = 0; k < K; k++)
        z += exp((double)s[k] - mx);
    return mx + log(z);
}

/* Marks the counted negatives (match -2) of one matched sample: the `want` highest mining
 * losses, equal ones by lower index. */
static void mine(ssd_ctx *c, const float *x, int npos)
{
    int K = c->E - 4, nneg = 0;
    for (int p = 0; p < c->P; p++) {
        if (c->match[p] >= 0)
            continue;
        const float *s = x + (size_t)p * c->E + 4;
        c->mine[p] = (float)(lse(s, K) - s[0]);
        c->sorted[nneg++] = c->mine[p];
    }
    double w = (double)c->n->attr.ssd.neg_pos * npos;
    int want = w < nneg ? (int)w : nneg;
    if (want <= 0)
        return;
    qsort(c->sorted, (size_t)nneg, sizeof *c->sorted, cmp_desc);
    float cut = c->sorted[want - 1];
    int above = 0;
    for (int k = 0; k < want; k++)
        above += c->sorted[k] > cut;
    int at_cut = want - above; /* of the losses equal to the cut, this many (lowest index) */
    for (int p = 0; p < c->P; p++) {
        if (c->match[p] >= 0)
            continue;
        if (c->mine[p] > cut || (c->mine[p] == cut && at_cut-- > 0))
            c->match[p] = -2;
    }
}

/* One matched, mined sample's loss; with dx, adds scale * dL/dx. */
static double sample_loss(const ssd_ctx *c, const float *x, const float *t, float *dx, float scale)
{
    const nerve_ssd_config *a = &c->n->attr.ssd;
    int K = c->E - 4;
    double L = 0;
    for (int p = 0; p < c->P; p++) {
        if (c->match[p] == -1)
            continue;
        const float *xp = x + (size_t)p * c->E;
        int label = 0;
        if (c->match[p] >= 0) {
            const float *tb = t + (int)c->match[p] * 5;
            label = (int)tb[4] + 1;
            float g[4], enc[4];
            truth_corners(tb, g);
            if (!encode(c->priors + (size_t)p * 4, g, a->variance, enc))
                continue; /* a default box without size (a truth has one) */
            for (int i = 0; i < 4; i++) {
                float gr;
                L += nerve_smooth_l1(xp[i] - enc[i], 1.0f, &gr);
                if (dx)
                    dx[(size_t)p * c->E + i] += scale * gr;
            }
        }
        const float *s = xp + 4;
        double z = lse(s, K);
        L += z - s[label];
        if (dx)
            for (int k = 0; k < K; k++)
                dx[(size_t)p * c->E + 4 + k] += scale * (float)(exp((double)s[k] - z) - (k == label));
    }
    return L;
}

static void ssd_loss_run(nerve_graph *g, node *n, float *dx, float scale)
{
    const node *x = node_input(g, n, 0), *pr = node_input(g, n, 1), *t = node_input(g, n, 2);
    int N = x->dims[0], P = x->dims[1];
    size_t per = node_numel(x) / (size_t)N, tper = node_numel(t) / (size_t)N;
    ssd_ctx c = {n, pr->value, P, x->dims[2], n->scratch, n->scratch + P, n->scratch + 2 * (size_t)P,
                 n->scratch + 3 * (size_t)P};
    int total = 0;
    for (int s = 0; s < N; s++)
        total += match(&c, t->value + s * tper);
    double L = 0;
    for (int s = 0; s < N && total > 0; s++) {
        const float *ts = t->value + s * tper;
        int npos = match(&c, ts);
        mine(&c, x->value + s * per, npos);
        L += sample_loss(&c, x->value + s * per, ts, dx ? dx + s * per : NULL, scale / (float)total);
    }
    if (!dx)
        n->value[0] = total > 0 ? (float)(L / total) : 0.0f;
}

static void ssd_loss_forward(nerve_graph *g, node *n) { ssd_loss_run(g, n, NULL, 0); }

static void ssd_loss_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        ssd_loss_run(g, n, dx, n->grad[0]);
}

static const op_def op_ssd_loss = {"ssd_loss", ssd_loss_infer, ssd_loss_scratch, ssd_loss_forward,
                                   ssd_loss_backward, 0};

int nerve_ssd_loss(nerve_graph *g, int pred, int priors, int target, const nerve_ssd_config *c)
{
    int st = nerve_ssd_check(c);
    if (st)
        return st;
    node_attr a;
    memset(&a, 0, sizeof a);
    a.ssd = *c;
    return graph_add_op(g, &op_ssd_loss, 3, (int[]){pred, priors, target}, &a, "ssd_loss");
}

const op_def *const ops_ssd[] = {&op_ssd_loss, NULL};
